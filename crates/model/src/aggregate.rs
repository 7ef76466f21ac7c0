//! Bucketed aggregation of event values.
//!
//! ClickHouse computes the buckets that hold events ([`crate::store::sql::aggregate`]).
//! This module knows the calendar: where each bucket of a range starts in a time zone, so
//! that a request can be refused before it reaches ClickHouse when it spans too many
//! buckets, and so that empty buckets can be filled. Weeks start on Monday (ISO 8601);
//! days, months and years follow the zone's calendar, daylight-saving shifts included.
//!
//! A range lies inside the window a query may name ([`EventTime::MIN_ACCEPTED`] to
//! [`EventTime::MAX_QUERYABLE`], checked where the parameters are read), so every bucket
//! start of an answer falls between 1999 and 2100 in any zone and renders as RFC 3339.
//!
//! [`EventTime::MIN_ACCEPTED`]: crate::time::EventTime::MIN_ACCEPTED
//! [`EventTime::MAX_QUERYABLE`]: crate::time::EventTime::MAX_QUERYABLE

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;

/// The most buckets one answer may hold.
pub const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    /// One bucket over the whole range.
    None,
}

impl Granularity {
    pub const ALL: [Granularity; 7] = [
        Self::Minute,
        Self::Hour,
        Self::Day,
        Self::Week,
        Self::Month,
        Self::Year,
        Self::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
            Self::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    /// Quantiles are exact and nearest-rank: of n sorted values, the one at index
    /// `min(floor(q * n), n - 1)`, counting from 0 (ClickHouse's `quantileExact`).
    P50,
    P90,
    P95,
    P99,
}

impl Aggregation {
    pub const ALL: [Aggregation; 9] = [
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::Sum,
        Self::Count,
        Self::P50,
        Self::P90,
        Self::P95,
        Self::P99,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
            Self::Count => "count",
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P95 => "p95",
            Self::P99 => "p99",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// `count` counts every matching event; the others aggregate events that carry a
    /// numeric `value`, and ignore those that do not.
    pub fn needs_value(self) -> bool {
        self != Self::Count
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Only buckets that hold events.
    None,
    /// Every bucket of the range; empty ones have value 0 and count 0.
    Zero,
    /// Every bucket of the range; empty ones have value null and count 0.
    Null,
}

impl Fill {
    pub const ALL: [Fill; 3] = [Self::None, Self::Zero, Self::Null];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zero => "zero",
            Self::Null => "null",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One bucket of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub value: Option<f64>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the range holds more than {MAX_BUCKETS} {} buckets; narrow from/to or use a coarser granularity", .0.as_str())]
pub struct TooManyBuckets(pub Granularity);

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

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn tz(name: &str) -> Tz {
        name.parse().expect("zone")
    }

    #[test]
    fn floors_in_the_requested_zone() {
        // (granularity, zone, instant, bucket start)
        let cases = [
            (
                Granularity::Minute,
                "UTC",
                "2026-03-29T01:30:59.999Z",
                "2026-03-29T01:30:00Z",
            ),
            (
                Granularity::Hour,
                "Asia/Kolkata",
                "2023-11-14T22:13:20Z",
                "2023-11-14T21:30:00Z",
            ),
            (
                Granularity::Hour,
                "Asia/Kathmandu",
                "2023-11-14T22:13:20Z",
                "2023-11-14T21:15:00Z",
            ),
            // The repeated hour of the autumn shift: each occurrence is its own bucket.
            (
                Granularity::Hour,
                "Europe/Paris",
                "2026-10-25T00:30:00Z",
                "2026-10-25T00:00:00Z",
            ),
            (
                Granularity::Hour,
                "Europe/Paris",
                "2026-10-25T01:30:00Z",
                "2026-10-25T01:00:00Z",
            ),
            (
                Granularity::Day,
                "Europe/Paris",
                "2023-11-14T22:13:20Z",
                "2023-11-13T23:00:00Z",
            ),
            (
                Granularity::Day,
                "America/New_York",
                "2026-03-08T12:00:00Z",
                "2026-03-08T05:00:00Z",
            ),
            // 2026-11-25 is a Wednesday; ISO weeks start on Monday.
            (
                Granularity::Week,
                "UTC",
                "2026-11-25T10:00:00Z",
                "2026-11-23T00:00:00Z",
            ),
            (
                Granularity::Week,
                "UTC",
                "2026-11-23T00:00:00Z",
                "2026-11-23T00:00:00Z",
            ),
            (
                Granularity::Month,
                "Europe/Paris",
                "2026-03-31T22:30:00Z",
                "2026-03-31T22:00:00Z",
            ),
            (
                Granularity::Month,
                "Europe/Paris",
                "2026-03-15T00:00:00Z",
                "2026-02-28T23:00:00Z",
            ),
            (
                Granularity::Year,
                "Asia/Tokyo",
                "2026-12-31T16:00:00Z",
                "2026-12-31T15:00:00Z",
            ),
            // Midnight skipped by a daylight-saving shift: the day starts at 01:00.
            (
                Granularity::Day,
                "America/Sao_Paulo",
                "2018-11-04T12:00:00Z",
                "2018-11-04T03:00:00Z",
            ),
        ];
        for (g, zone, t, want) in cases {
            assert_eq!(g.floor(utc(t), tz(zone)), utc(want), "{g:?} {zone} {t}");
        }
    }

    #[test]
    fn bucket_starts_follow_the_calendar() {
        let paris = tz("Europe/Paris");
        // Days across the spring shift are 24, 23 and 24 hours long.
        let days = bucket_starts(
            Granularity::Day,
            paris,
            utc("2026-03-28T10:00:00Z"),
            utc("2026-03-30T23:00:00Z"),
        )
        .expect("few");
        assert_eq!(
            days,
            [
                "2026-03-27T23:00:00Z",
                "2026-03-28T23:00:00Z",
                "2026-03-29T22:00:00Z",
                "2026-03-30T22:00:00Z"
            ]
            .map(utc)
        );
        let months = bucket_starts(
            Granularity::Month,
            tz("UTC"),
            utc("2026-01-31T00:00:00Z"),
            utc("2026-04-01T00:00:00Z"),
        )
        .expect("few");
        assert_eq!(
            months,
            [
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z"
            ]
            .map(utc)
        );
        let none = bucket_starts(
            Granularity::None,
            paris,
            utc("2026-01-31T00:00:00Z"),
            utc("2026-01-31T00:00:00Z"),
        )
        .expect("one");
        assert_eq!(none, [utc("2026-01-31T00:00:00Z")]);
    }

    #[test]
    fn refuses_more_than_the_bucket_ceiling() {
        let utc_tz = tz("UTC");
        let from = utc("2026-01-01T00:00:00Z");
        let exactly = from + Duration::minutes(MAX_BUCKETS as i64);
        assert_eq!(
            bucket_starts(Granularity::Minute, utc_tz, from, exactly).map(|b| b.len()),
            Ok(MAX_BUCKETS)
        );
        assert_eq!(
            bucket_starts(
                Granularity::Minute,
                utc_tz,
                from,
                exactly + Duration::seconds(1)
            ),
            Err(TooManyBuckets(Granularity::Minute))
        );
        assert!(bucket_starts(Granularity::Year, utc_tz, from, exactly).is_ok());
    }

    #[test]
    fn fills_empty_buckets_as_asked() {
        let utc_tz = tz("UTC");
        let found = vec![Bucket {
            start: utc("2026-01-01T01:00:00Z"),
            value: Some(2.5),
            count: 2,
        }];
        let (from, to) = (
            Some(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-01T03:00:00Z")),
        );
        let values = |f| -> Vec<(Option<f64>, u64)> {
            fill(found.clone(), f, Granularity::Hour, utc_tz, from, to)
                .expect("few")
                .into_iter()
                .map(|b| (b.value, b.count))
                .collect()
        };
        assert_eq!(values(Fill::None), [(Some(2.5), 2)]);
        assert_eq!(
            values(Fill::Zero),
            [(Some(0.0), 0), (Some(2.5), 2), (Some(0.0), 0)]
        );
        assert_eq!(values(Fill::Null), [(None, 0), (Some(2.5), 2), (None, 0)]);
        // Without a range, the gaps between the buckets found are filled.
        let sparse = vec![
            found[0].clone(),
            Bucket {
                start: utc("2026-01-01T04:00:00Z"),
                value: Some(1.0),
                count: 1,
            },
        ];
        let filled = fill(
            sparse.clone(),
            Fill::Zero,
            Granularity::Hour,
            utc_tz,
            None,
            None,
        )
        .expect("few");
        assert_eq!(filled.len(), 4);
        assert_eq!(filled[3].start, utc("2026-01-01T04:00:00Z"));
        // One bound given: the other comes from the data.
        let filled = fill(sparse, Fill::Null, Granularity::Hour, utc_tz, from, None).expect("few");
        assert_eq!(filled.len(), 5);
        assert_eq!(
            filled[0],
            Bucket {
                start: utc("2026-01-01T00:00:00Z"),
                value: None,
                count: 0
            }
        );
        // Nothing found and no range: nothing to fill.
        assert_eq!(
            fill(vec![], Fill::Zero, Granularity::Day, utc_tz, None, None),
            Ok(vec![])
        );
    }

    /// A bucket start as the query service renders it.
    fn rendered(t: DateTime<Utc>, zone: Tz) -> String {
        t.with_timezone(&zone)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    }

    /// RFC 3339 has four-digit years only; chrono writes others with a sign.
    fn is_rfc3339(text: &str) -> bool {
        let year_digits = text
            .get(..4)
            .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()));
        year_digits && DateTime::parse_from_rfc3339(text).is_ok()
    }

    #[test]
    fn times_outside_the_window_can_render_outside_rfc3339() {
        // What the window keeps out of answers: chrono signs years outside 0..=9999.
        let cases = [
            (-99_999_999_999, "UTC", "-1199-02-15T14:13:21Z"),
            (
                253_402_300_799,
                "Pacific/Kiritimati",
                "+10000-01-01T13:59:59+14:00",
            ),
        ];
        for (secs, zone, want) in cases {
            let t = DateTime::from_timestamp(secs, 0).expect("in chrono's range");
            let text = rendered(t, tz(zone));
            assert_eq!(text, want);
            assert!(!is_rfc3339(&text), "{text}");
        }
    }

    fn window() -> (DateTime<Utc>, DateTime<Utc>) {
        let at = |t: crate::time::EventTime| t.to_datetime().expect("in chrono's range");
        (
            at(crate::time::EventTime::MIN_ACCEPTED),
            at(crate::time::EventTime::MAX_QUERYABLE),
        )
    }

    #[test]
    fn bucket_starts_at_the_window_edges_render_as_rfc3339() {
        let (min, max) = window();
        let hour = Duration::hours(1);
        // (granularity, zone, from, to, first start, last start), as rendered. The zones
        // have the widest offsets in use (+14, -12) and fractional ones.
        let cases = [
            (
                Granularity::Year,
                "America/New_York",
                min,
                min + hour,
                "1999-01-01T00:00:00-05:00",
                "1999-01-01T00:00:00-05:00",
            ),
            (
                Granularity::Year,
                "Pacific/Kiritimati",
                min,
                min + hour,
                "2000-01-01T00:00:00+14:00",
                "2000-01-01T00:00:00+14:00",
            ),
            (
                Granularity::Month,
                "Etc/GMT+12",
                min,
                min + hour,
                "1999-12-01T00:00:00-12:00",
                "1999-12-01T00:00:00-12:00",
            ),
            // 2000-01-01 is a Saturday; its ISO week starts on Monday 1999-12-27.
            (
                Granularity::Week,
                "UTC",
                min,
                min + hour,
                "1999-12-27T00:00:00Z",
                "1999-12-27T00:00:00Z",
            ),
            (
                Granularity::Day,
                "Etc/GMT+12",
                min,
                min + hour,
                "1999-12-31T00:00:00-12:00",
                "1999-12-31T00:00:00-12:00",
            ),
            (
                Granularity::Hour,
                "Asia/Kathmandu",
                min,
                min + hour,
                "2000-01-01T05:00:00+05:45",
                "2000-01-01T06:00:00+05:45",
            ),
            (
                Granularity::None,
                "Pacific/Kiritimati",
                min,
                min,
                "2000-01-01T14:00:00+14:00",
                "2000-01-01T14:00:00+14:00",
            ),
            (
                Granularity::Year,
                "Pacific/Kiritimati",
                max - hour,
                max,
                "2100-01-01T00:00:00+14:00",
                "2100-01-01T00:00:00+14:00",
            ),
            (
                Granularity::Year,
                "Etc/GMT+12",
                max - hour,
                max,
                "2099-01-01T00:00:00-12:00",
                "2099-01-01T00:00:00-12:00",
            ),
            // 2100-01-01 is a Friday.
            (
                Granularity::Week,
                "Pacific/Chatham",
                max - hour,
                max,
                "2099-12-28T00:00:00+13:45",
                "2099-12-28T00:00:00+13:45",
            ),
            (
                Granularity::Minute,
                "UTC",
                max - Duration::minutes(2),
                max,
                "2099-12-31T23:58:00Z",
                "2099-12-31T23:59:00Z",
            ),
            (
                Granularity::None,
                "Pacific/Kiritimati",
                max,
                max,
                "2100-01-01T14:00:00+14:00",
                "2100-01-01T14:00:00+14:00",
            ),
        ];
        for (g, zone, from, to, first, last) in cases {
            let zone = tz(zone);
            let starts = bucket_starts(g, zone, from, to).expect("few");
            let shown: Vec<String> = starts.iter().map(|s| rendered(*s, zone)).collect();
            assert_eq!(
                (
                    shown.first().map(String::as_str),
                    shown.last().map(String::as_str)
                ),
                (Some(first), Some(last)),
                "{g:?} {zone}"
            );
            for text in &shown {
                assert!(is_rfc3339(text), "{g:?} {zone}: {text}");
            }
        }
    }

    #[test]
    fn every_bucket_of_the_whole_window_renders_as_rfc3339() {
        let (min, max) = window();
        for zone in [
            "Pacific/Kiritimati",
            "Etc/GMT+12",
            "Pacific/Chatham",
            "America/St_Johns",
        ] {
            let zone = tz(zone);
            for g in [
                Granularity::Week,
                Granularity::Month,
                Granularity::Year,
                Granularity::None,
            ] {
                let buckets = fill(vec![], Fill::Zero, g, zone, Some(min), Some(max)).expect("few");
                assert!(!buckets.is_empty(), "{g:?} {zone}");
                for b in buckets {
                    let text = rendered(b.start, zone);
                    assert!(is_rfc3339(&text), "{g:?} {zone}: {text}");
                }
            }
            // Finer buckets over the whole window are more than an answer may hold.
            assert_eq!(
                fill(
                    vec![],
                    Fill::Zero,
                    Granularity::Day,
                    zone,
                    Some(min),
                    Some(max)
                ),
                Err(TooManyBuckets(Granularity::Day))
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for g in Granularity::ALL {
            assert_eq!(Granularity::parse(g.as_str()), Some(g));
        }
        for a in Aggregation::ALL {
            assert_eq!(Aggregation::parse(a.as_str()), Some(a));
        }
        for f in Fill::ALL {
            assert_eq!(Fill::parse(f.as_str()), Some(f));
        }
        assert_eq!(Granularity::parse("fortnight"), None);
        assert_eq!(Aggregation::parse("median"), None);
        assert_eq!(Fill::parse("linear"), None);
    }
}
