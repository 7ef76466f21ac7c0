//! Event time: microseconds since the Unix epoch, UTC.
//!
//! Accepted text forms (anything else is an error naming the form it expected):
//! - RFC 3339 / ISO 8601 with a zone: `2021-09-26T09:15:27.243860Z`, `...+02:00`;
//!   a space may stand for the `T`.
//! - The same without a zone, read as UTC: `2021-09-26 09:15:27.243860`,
//!   `2020-11-12T11:10:00`.
//!
//! Fractions longer than six digits are truncated to the microsecond, because ClickHouse
//! stores event time as an Int64 of microseconds.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in time with microsecond precision, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTime(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("timestamp must be RFC 3339 (2021-09-26T09:15:27.243860Z) or 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC when no zone is given)")]
    Unparseable,
    #[error("timestamp is outside the representable range")]
    OutOfRange,
}

const NAIVE_FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

impl EventTime {
    pub const fn from_micros(us: i64) -> Self {
        Self(us)
    }

    pub const fn as_micros(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    /// Parses one of the documented text forms.
    pub fn parse(s: &str) -> Result<Self, TimeError> {
        let s = s.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Self::from_datetime(dt.with_timezone(&Utc));
        }
        // RFC 3339 with a space instead of 'T' and an explicit zone.
        if s.len() > 10 && s.as_bytes()[10] == b' ' {
            let with_t = format!("{}T{}", &s[..10], &s[11..]);
            if let Ok(dt) = DateTime::parse_from_rfc3339(&with_t) {
                return Self::from_datetime(dt.with_timezone(&Utc));
            }
        }
        for fmt in NAIVE_FORMATS {
            if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
                return Self::from_datetime(Utc.from_utc_datetime(&naive));
            }
        }
        Err(TimeError::Unparseable)
    }

    fn from_datetime(dt: DateTime<Utc>) -> Result<Self, TimeError> {
        // Cannot overflow for the years chrono reads from text (0..=9999); the check is for
        // constructors added later.
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

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        let dt = DateTime::parse_from_rfc3339(s).expect("test literal");
        dt.timestamp_micros()
    }

    #[test]
    fn parses_every_documented_form() {
        let cases: &[(&str, i64)] = &[
            (
                "2021-09-26 09:15:27.243860",
                us("2021-09-26T09:15:27.243860Z"),
            ),
            (
                "2021-09-26T09:15:27.243860",
                us("2021-09-26T09:15:27.243860Z"),
            ),
            ("2021-09-26T09:15:27Z", us("2021-09-26T09:15:27Z")),
            ("2021-09-26T09:15:27.5+02:00", us("2021-09-26T07:15:27.5Z")),
            ("2021-09-26 09:15:27-05:30", us("2021-09-26T14:45:27Z")),
            ("2020-11-12T11:10:00", us("2020-11-12T11:10:00Z")),
            ("2022-01-01 00:00:00.000000", us("2022-01-01T00:00:00Z")),
            (
                "2022-04-11T01:08:01.407119",
                us("2022-04-11T01:08:01.407119Z"),
            ),
            // nanoseconds truncate to the microsecond
            (
                "2022-04-11T01:08:01.407119999Z",
                us("2022-04-11T01:08:01.407119Z"),
            ),
            ("  2022-01-01 00:00:00  ", us("2022-01-01T00:00:00Z")),
        ];
        for (input, want) in cases {
            assert_eq!(
                EventTime::parse(input),
                Ok(EventTime(*want)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for input in [
            "",
            "timestamp",
            "2021-09-26",
            "2021-13-01 00:00:00",
            "2021-02-30 00:00:00",
            "26/09/2021 09:15:27",
            "2021-09-26 25:00:00",
            "2021-09-26T09:15:27+25:00",
        ] {
            assert_eq!(
                EventTime::parse(input),
                Err(TimeError::Unparseable),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn formats_with_six_fraction_digits_in_utc() {
        let t = EventTime::parse("2021-09-26T11:15:27.2438+02:00").expect("valid");
        assert_eq!(t.to_rfc3339(), "2021-09-26T09:15:27.243800Z");
        assert_eq!(EventTime::parse(&t.to_rfc3339()), Ok(t));
    }
}
