//! Event time: microseconds since the Unix epoch, UTC.
//!
//! ClickHouse stores event time as an Int64 of microseconds, so that is the precision kept
//! everywhere; anything finer is dropped as described below.
//!
//! # 1. Text forms ([`EventTime::parse`])
//!
//! RFC 3339 and ISO 8601 extended date-times, `YYYY-MM-DD` + separator + `HH:MM:SS` +
//! optional fraction + optional zone:
//! - Separator between date and time: `T`, `t` or a single space.
//! - Seconds are required (`2021-09-26T09:15Z` is rejected).
//! - Fraction: optional, `.` followed by 1 to 9 digits. Digits past the sixth (below the
//!   microsecond) are truncated, not rounded. More than 9 digits is an error
//!   ([`TimeError::FractionTooLong`]).
//! - Zone: optional, `Z` or `z` (UTC), or an offset `±hh:mm`, `±hhmm` or `±hh` (hours at
//!   most 23). No zone means UTC.
//! - Leading and trailing whitespace is ignored.
//! - The date must exist (`2021-02-30` is rejected) and fields have exactly their ISO widths
//!   (4-digit year, 2-digit month, day, hour, minute and second).
//! - A leap second (`:60`, which RFC 3339 allows) is read as the first instant of the next
//!   second, because Unix time has no leap seconds.
//!
//! Examples: `2021-09-26T09:15:27.243860Z`, `2021-09-26t09:15:27z`,
//! `2021-09-26 09:15:27.5+02:00`, `2021-09-26T09:15:27-0530`, `2021-09-26T09:15:27+02`,
//! `2021-09-26 09:15:27.243860` (UTC).
//!
//! # 2. Unix epoch numbers ([`EventTime::from_epoch_number`])
//!
//! A JSON number is a Unix epoch time whose unit is chosen by its absolute value:
//! - |value| < 100_000_000_000 (1e11): SECONDS, integer or fraction.
//! - 100_000_000_000 (1e11) <= |value| < 100_000_000_000_000 (1e14): MILLISECONDS, integer
//!   or fraction.
//! - Anything else (microseconds, nanoseconds, NaN, non-finite) is an error
//!   ([`TimeError::EpochOutOfRange`]).
//!
//! This is unambiguous for every time that can be accepted: any instant from 2000-01-01 to
//! the year 5138 in seconds is between 9.46e8 and 1e11, and every instant after 1973-03-03
//! in milliseconds is >= 1e11; times before 2000 are rejected anyway (rule 4). Negative
//! numbers follow the same magnitude rule but then fail rule 4.
//!
//! Integers are converted exactly. A number with a fraction arrives as a 64-bit binary
//! float (`1700000000.123456` is not exactly representable), so it is rounded to the
//! nearest microsecond rather than truncated: truncating would sometimes lose a microsecond
//! the client did send. This recovers every microsecond-precision value exactly for any
//! time before the year 2106; beyond that a float cannot carry microseconds.
//!
//! # 3. JSON values ([`EventTime::from_json`])
//!
//! A string is read as text (rule 1), a number as a Unix epoch number (rule 2); anything
//! else (bool, null, array, object) is [`TimeError::WrongType`].
//!
//! # 4. Bounds ([`TimeBounds::check`])
//!
//! An accepted time must be on or after 2000-01-01T00:00:00Z ([`EventTime::MIN_ACCEPTED`],
//! else [`TimeError::TooOld`]) and at most `received_at + max_future_skew` (else
//! [`TimeError::TooFarInFuture`]). The default skew is 24 hours.
//!
//! The query API takes times (`from`, `to`, a cursor's time) from the same earliest
//! instant to a fixed latest one, [`EventTime::MAX_QUERYABLE`] (2100-01-01T00:00:00Z),
//! both inclusive: it cannot know ingest's skew, and its doc says why that bound.
//!
//! # 5. Clock-skew correction ([`EventTime::corrected`])
//!
//! When a client reports both the event time and the time it sent the batch, the event time
//! is shifted by the difference between the server's and the client's clocks:
//! `timestamp + (received_at - sent_at)`, with saturating arithmetic. This is what Segment
//! and Snowplow do.
//!
//! # 6. Errors ([`TimeError`])
//!
//! Every error's message says what is accepted, and [`TimeError::code`] gives a stable
//! machine code per variant.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// A point in time with microsecond precision, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTime(i64);

/// Why a timestamp was not accepted. The message says what is accepted; [`TimeError::code`]
/// is the stable machine code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("timestamp must be RFC 3339 / ISO 8601 text with seconds, such as 2021-09-26T09:15:27.243860Z, 2021-09-26 09:15:27+02:00 or 2021-09-26T09:15:27 (UTC when no zone is given), or a Unix epoch number in seconds or milliseconds")]
    Unparseable,
    #[error("timestamp fraction of a second must have 1 to 9 digits (it is kept to the microsecond), e.g. 2021-09-26T09:15:27.243860Z")]
    FractionTooLong,
    #[error("a numeric timestamp must be Unix epoch seconds (absolute value below 100000000000) or milliseconds (from 100000000000 to below 100000000000000); for microseconds or nanoseconds send RFC 3339 text such as 2021-09-26T09:15:27.243860Z")]
    EpochOutOfRange,
    #[error("timestamp must be a string (RFC 3339 / ISO 8601, e.g. 2021-09-26T09:15:27.243860Z) or a number (Unix epoch seconds or milliseconds)")]
    WrongType,
    #[error("timestamp must be on or after 2000-01-01T00:00:00Z")]
    TooOld,
    #[error("timestamp must be at most {max_skew_secs} seconds after the time the server received the event; check the client's clock")]
    TooFarInFuture { max_skew_secs: u64 },
    #[error("timestamp is outside the representable range; it must be on or after 2000-01-01T00:00:00Z and not far in the future")]
    OutOfRange,
}

impl TimeError {
    /// A stable machine-readable code, distinct per variant.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unparseable => "invalid_timestamp",
            Self::FractionTooLong => "fraction_too_long",
            Self::EpochOutOfRange => "epoch_out_of_range",
            Self::WrongType => "wrong_type",
            Self::TooOld => "timestamp_too_old",
            Self::TooFarInFuture { .. } => "timestamp_in_future",
            Self::OutOfRange => "out_of_range",
        }
    }
}

/// Below this absolute value an epoch number is seconds (rule 2).
const EPOCH_SECONDS_BELOW: i64 = 100_000_000_000;
/// Below this absolute value (and at or above [`EPOCH_SECONDS_BELOW`]) it is milliseconds.
const EPOCH_MILLIS_BELOW: i64 = 100_000_000_000_000;
/// Most fraction digits accepted in text (nanoseconds).
const MAX_FRACTION_DIGITS: usize = 9;

impl EventTime {
    /// 2000-01-01T00:00:00Z, the earliest time [`TimeBounds::check`] accepts.
    pub const MIN_ACCEPTED: EventTime = EventTime(946_684_800_000_000);

    /// 2100-01-01T00:00:00Z, the latest time a query may name (`from`, `to`, a cursor's
    /// time); the earliest is [`EventTime::MIN_ACCEPTED`], as at ingest.
    ///
    /// Ingest's upper bound moves with its clock and `EYE_INGEST_MAX_FUTURE_SKEW_MS`, which
    /// the query service does not know, so this one is fixed, and chosen so that:
    /// - it lies far past anything ingest accepts with a skew of hours or days (24 hours by
    ///   default), so no range over stored events needs a later bound;
    /// - storage can place every time up to it: the `ts` partition column is a ClickHouse
    ///   `DateTime`, seconds in a UInt32, which ends at 2106-02-07T06:28:15Z, so a later
    ///   bound would promise ranges that storage cannot filter or bucket;
    /// - every instant an answer shows for a range inside the window, bucket starts in any
    ///   zone's offset included (1999 at the earliest, 2100 at the latest), is RFC 3339 with
    ///   a four-digit year.
    pub const MAX_QUERYABLE: EventTime = EventTime(4_102_444_800_000_000);

    pub const fn from_micros(us: i64) -> Self {
        Self(us)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    /// Parses the text forms of rule 1 in the module documentation.
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        let s = s.trim();
        let (local, zone) = split_zone(s);
        // chrono's RFC 3339 parser is strict about widths and dates and accepts `T`, `t` or a
        // space; only the zone needs rewriting into the one form it reads.
        let zone: Cow<'_, str> = match zone.len() {
            0 => "Z".into(),
            // ±hh
            3 => format!("{zone}:00").into(),
            // ±hhmm
            5 if zone.is_ascii() && !zone.contains(':') => {
                format!("{}:{}", &zone[..3], &zone[3..]).into()
            }
            _ => zone.into(),
        };
        let dt = DateTime::parse_from_rfc3339(&format!("{local}{zone}"))
            .map_err(|_| TimeError::Unparseable)?;
        // chrono skips fraction digits past the ninth; the contract rejects them. The text is
        // known to be well formed here, so everything after the '.' is the fraction.
        if local
            .split_once('.')
            .is_some_and(|(_, fraction)| fraction.len() > MAX_FRACTION_DIGITS)
        {
            return Err(TimeError::FractionTooLong);
        }
        Self::from_datetime(dt.with_timezone(&Utc))
    }

    /// Reads a Unix epoch number by rule 2 in the module documentation: absolute value
    /// below 1e11 is seconds, from 1e11 to below 1e14 is milliseconds, anything else is
    /// [`TimeError::EpochOutOfRange`].
    pub fn from_epoch_number(n: &serde_json::Number) -> Result<Self, TimeError> {
        if let Some(i) = n.as_i64() {
            let magnitude = i.unsigned_abs();
            return if magnitude < EPOCH_SECONDS_BELOW.unsigned_abs() {
                Ok(Self(i * 1_000_000))
            } else if magnitude < EPOCH_MILLIS_BELOW.unsigned_abs() {
                Ok(Self(i * 1_000))
            } else {
                Err(TimeError::EpochOutOfRange)
            };
        }
        // A fraction, or an integer too large for i64 (which the magnitude check rejects).
        let v = n
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or(TimeError::EpochOutOfRange)?;
        let magnitude = v.abs();
        let micros = if magnitude < EPOCH_SECONDS_BELOW as f64 {
            v * 1e6
        } else if magnitude < EPOCH_MILLIS_BELOW as f64 {
            v * 1e3
        } else {
            return Err(TimeError::EpochOutOfRange);
        };
        // |micros| < 1e17, well inside i64.
        Ok(Self(micros.round() as i64))
    }

    /// Reads a JSON timestamp by rule 3: a string is [`EventTime::parse`]d, a number goes
    /// to [`EventTime::from_epoch_number`], anything else is [`TimeError::WrongType`].
    pub fn from_json(v: &serde_json::Value) -> Result<Self, TimeError> {
        match v {
            serde_json::Value::String(s) => Self::parse(s),
            serde_json::Value::Number(n) => Self::from_epoch_number(n),
            _ => Err(TimeError::WrongType),
        }
    }

    /// Clock-skew correction (rule 5), as Segment and Snowplow do it: the client's
    /// `timestamp` shifted by how far the server's clock (`received_at`) is ahead of the
    /// client's (`sent_at`), i.e. `timestamp + (received_at - sent_at)`, saturating at the
    /// ends of the range instead of overflowing.
    pub fn corrected(timestamp: EventTime, sent_at: EventTime, received_at: EventTime) -> Self {
        Self(
            timestamp
                .0
                .saturating_add(received_at.0.saturating_sub(sent_at.0)),
        )
    }

    fn from_datetime(dt: DateTime<Utc>) -> Result<Self, TimeError> {
        // Cannot overflow for the years chrono reads from text (0..=9999); kept as a guard.
        let us = dt.timestamp_micros();
        DateTime::from_timestamp_micros(us)
            .map(|_| Self(us))
            .ok_or(TimeError::OutOfRange)
    }

    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }

    /// RFC 3339 in UTC with exactly six fractional digits, e.g. `2021-09-26T09:15:27.243860Z`.
    pub fn to_rfc3339(self) -> String {
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => self.0.to_string(),
        }
    }
}

/// Splits trimmed text into the part chrono reads as is and the zone suffix: `Z`/`z`, a
/// signed offset, or empty when there is none. Only picks the form; chrono validates it.
fn split_zone(s: &str) -> (&str, &str) {
    if s.ends_with(['Z', 'z']) {
        return s.split_at(s.len() - 1);
    }
    // The date `YYYY-MM-DD` and separator take the first 11 bytes; a sign after that can only
    // start an offset.
    match s.get(11..).and_then(|time| time.find(['+', '-'])) {
        Some(at) => s.split_at(11 + at),
        None => (s, ""),
    }
}

/// Rule 4 of the module documentation: the window of event times accepted.
#[derive(Debug, Clone, Copy)]
pub struct TimeBounds {
    /// How far after `received_at` an event time may be.
    pub max_future_skew: Duration,
}

impl Default for TimeBounds {
    /// A future skew of 24 hours.
    fn default() -> Self {
        Self {
            max_future_skew: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl TimeBounds {
    /// Returns `t` if `EventTime::MIN_ACCEPTED <= t <= received_at + max_future_skew`
    /// (both ends inclusive), else [`TimeError::TooOld`] or [`TimeError::TooFarInFuture`].
    pub fn check(&self, t: EventTime, received_at: EventTime) -> Result<EventTime, TimeError> {
        if t < EventTime::MIN_ACCEPTED {
            return Err(TimeError::TooOld);
        }
        let skew_us = i64::try_from(self.max_future_skew.as_micros()).unwrap_or(i64::MAX);
        if t.0 > received_at.0.saturating_add(skew_us) {
            return Err(TimeError::TooFarInFuture {
                max_skew_secs: self.max_future_skew.as_secs(),
            });
        }
        Ok(t)
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests;
