//! The calendar of aggregation buckets. Weeks start on Monday (ISO 8601); days, months
//! and years follow the zone's calendar, daylight-saving shifts included.
//!
//! A range lies inside the window a query may name ([`EventTime::MIN_ACCEPTED`] to
//! [`EventTime::MAX_QUERYABLE`], checked where the parameters are read), so every bucket
//! start of an answer falls between 1999 and 2100 in any zone and renders as RFC 3339.

use super::{Bucket, Fill, Granularity, TooManyBuckets, MAX_BUCKETS};
use crate::time::EventTime;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

impl Granularity {
    /// The first instant of the bucket that holds `t`, in zone `tz`.
    pub fn floor(self, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = t.with_timezone(&tz);
        // Minutes and hours are cut from the instant itself, which keeps the right side of
        // an ambiguous (repeated) local hour and zones offset by 30 or 45 minutes.
        let sub = |secs: u32| t - Duration::seconds(secs.into()) - sub_second(t);
        let date = local.date_naive();
        match self {
            Self::None => t,
            Self::Minute => sub(local.second()),
            Self::Hour => sub(local.minute() * 60 + local.second()),
            Self::Day => midnight(date, tz),
            Self::Week => midnight(
                date - Duration::days(local.weekday().num_days_from_monday().into()),
                tz,
            ),
            Self::Month => midnight(date.with_day(1).unwrap_or(date), tz),
            Self::Year => midnight(
                NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date),
                tz,
            ),
        }
    }

    /// The first instant of the bucket after the one starting at `start`; `None` for
    /// `Granularity::None`, which has a single bucket.
    pub fn next(self, start: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let date = start.with_timezone(&tz).date_naive();
        Some(match self {
            Self::None => return None,
            Self::Minute => start + Duration::minutes(1),
            Self::Hour => start + Duration::hours(1),
            Self::Day => midnight(date.succ_opt()?, tz),
            Self::Week => midnight(date + Duration::days(7), tz),
            Self::Month => midnight(date.checked_add_months(chrono::Months::new(1))?, tz),
            Self::Year => midnight(NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?, tz),
        })
    }
}

fn sub_second(t: DateTime<Utc>) -> Duration {
    Duration::nanoseconds(t.nanosecond().into())
}

/// The first instant of a local date. Where midnight falls in a daylight-saving gap the
/// day starts when the gap ends; where it is repeated, at its first occurrence.
fn midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let start = NaiveDateTime::from(date);
    for minutes in 0..=(24 * 60) {
        match tz.from_local_datetime(&(start + Duration::minutes(minutes))) {
            chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
            chrono::LocalResult::None => {}
        }
    }
    // No zone skips a whole day of local time except by moving the date line, and then the
    // next date exists; fall back to reading the date as UTC.
    Utc.from_utc_datetime(&start)
}

/// Every bucket start of `[from, to)`, or an error once there would be more than
/// [`MAX_BUCKETS`]. `Granularity::None` has the one bucket starting at `from`.
pub fn bucket_starts(
    g: Granularity,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, TooManyBuckets> {
    let mut starts = Vec::new();
    let mut at = g.floor(from, tz);
    while at < to || (starts.is_empty() && g == Granularity::None) {
        if starts.len() == MAX_BUCKETS {
            return Err(TooManyBuckets(g));
        }
        starts.push(at);
        match g.next(at, tz) {
            Some(next) if next > at => at = next,
            _ => break,
        }
    }
    Ok(starts)
}

/// Merges the buckets storage found with every bucket of the range, per `fill`. A bound
/// not given is taken from the first or last bucket found.
pub fn fill(
    found: Vec<Bucket>,
    fill: Fill,
    g: Granularity,
    tz: Tz,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<Bucket>, TooManyBuckets> {
    if found.len() > MAX_BUCKETS {
        return Err(TooManyBuckets(g));
    }
    let empty_value = match fill {
        Fill::None => return Ok(found),
        Fill::Zero => Some(0.0),
        Fill::Null => None,
    };
    let first = from.or(found.first().map(|b| b.start));
    let last = to.or(found.last().map(|b| b.start + Duration::nanoseconds(1)));
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(found);
    };
    let range = (first, last);
    let mut all: BTreeMap<DateTime<Utc>, Bucket> = bucket_starts(g, tz, range.0, range.1)?
        .into_iter()
        .map(|start| {
            let empty = Bucket {
                start,
                value: empty_value,
                count: 0,
            };
            (start, empty)
        })
        .collect();
    for b in found {
        all.insert(b.start, b);
    }
    if all.len() > MAX_BUCKETS {
        return Err(TooManyBuckets(g));
    }
    Ok(all.into_values().collect())
}

/// A bucket as storage found it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    /// The bucket's first instant, Unix seconds.
    pub start_s: i64,
    /// The time of the bucket's first event, µs.
    pub first_us: i64,
    pub value: f64,
    pub events: u64,
}

/// The calendar of one answer: the buckets' size, the zone they follow, how empty ones are
/// filled, and the range asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calendar {
    pub granularity: Granularity,
    pub tz: Tz,
    pub fill: Fill,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Calendar {
    /// Buckets to ask storage for: one more than an answer may hold, so that too many shows.
    pub const STORAGE_LIMIT: usize = MAX_BUCKETS + 1;

    /// The calendar of a request for `[from, to)`, either bound open; refused when the
    /// range holds more buckets than an answer may, before the request costs storage
    /// anything.
    pub fn new(
        granularity: Granularity,
        tz: Tz,
        fill: Fill,
        from: Option<EventTime>,
        to: Option<EventTime>,
    ) -> Result<Self, TooManyBuckets> {
        let calendar = Self {
            granularity,
            tz,
            fill,
            from: from.map(utc),
            to: to.map(utc),
        };
        if let (Some(from), Some(to)) = (calendar.from, calendar.to) {
            bucket_starts(granularity, tz, from, to)?;
        }
        Ok(calendar)
    }

    /// The answer's buckets from those storage found (in bucket order), empty ones filled
    /// as asked.
    pub fn buckets(
        &self,
        found: impl IntoIterator<Item = Found>,
    ) -> Result<Vec<Bucket>, TooManyBuckets> {
        let found = found.into_iter().map(|f| self.bucket(f)).collect();
        fill(
            found,
            self.fill,
            self.granularity,
            self.tz,
            self.from,
            self.to,
        )
    }

    fn bucket(&self, f: Found) -> Bucket {
        let start = match self.granularity {
            // The one bucket starts where the range does, or with its first event. Ingest
            // stores no time outside the window a query may name; the clamp keeps the
            // answer RFC 3339 even for a row written around it.
            Granularity::None => self.from.unwrap_or_else(|| {
                let first = EventTime::from_micros(f.first_us);
                utc(first.clamp(EventTime::MIN_ACCEPTED, EventTime::MAX_QUERYABLE))
            }),
            _ => DateTime::from_timestamp(f.start_s, 0).unwrap_or_default(),
        };
        Bucket {
            start,
            value: Some(f.value),
            count: f.events,
        }
    }
}

/// Every time a query names, and every clamped one, is within chrono's range; the default
/// is never reached.
fn utc(t: EventTime) -> DateTime<Utc> {
    t.to_datetime().unwrap_or_default()
}

#[cfg(test)]
mod tests;
