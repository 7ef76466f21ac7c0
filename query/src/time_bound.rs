//! Time bounds as the seed APIs write them: a date (`2022-01-01`) or an instant in any
//! form ingest accepts (`2022-01-01T10:00:00Z`, `2022-01-01 10:00:00.123456`, epoch
//! seconds), UTC when no zone is given. Both ends of a range include what they name: a
//! start date from its midnight, an end date to the end of that day, an end instant up to
//! and including that microsecond.

use crate::error::QueryError;
use chrono::NaiveDate;
use eye_model::event::FieldError;
use eye_model::time::{EventTime, TimeError};

const DAY_US: i64 = 86_400_000_000;

/// One end of a range as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A whole day, UTC: its midnight.
    Day(EventTime),
    Instant(EventTime),
}

impl Bound {
    /// The first microsecond the bound admits, as a range's start.
    pub fn start_us(self) -> i64 {
        match self {
            Self::Day(t) | Self::Instant(t) => t.as_micros(),
        }
    }

    /// The first microsecond after the bound, as a range's (exclusive) end.
    pub fn end_us(self) -> i64 {
        match self {
            Self::Day(t) => t.as_micros() + DAY_US,
            Self::Instant(t) => t.as_micros() + 1,
        }
    }
}

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::BadParameter(FieldError::new(field, code, message))
}

/// Reads `raw` as the value of `field`: a date, or an instant.
pub fn parse(field: &str, raw: &str) -> Result<Bound, QueryError> {
    let raw = raw.trim();
    let bound = if raw.len() == 10 && raw.as_bytes()[4] == b'-' {
        let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
            bad(
                field,
                TimeError::Unparseable.code(),
                format!("{field} must be a date (2022-01-01) or a timestamp"),
            )
        })?;
        let midnight = day
            .and_hms_opt(0, 0, 0)
            .map(|d| d.and_utc().timestamp_micros());
        Bound::Day(EventTime::from_micros(midnight.unwrap_or_default()))
    } else {
        let parsed = match raw.parse::<serde_json::Number>() {
            Ok(n) => EventTime::from_epoch_number(&n),
            Err(_) => EventTime::parse(raw),
        };
        Bound::Instant(parsed.map_err(|e| {
            bad(
                field,
                e.code(),
                format!("{field} must be a date (2022-01-01) or a timestamp: {e}"),
            )
        })?)
    };
    let t = EventTime::from_micros(bound.start_us());
    if !(EventTime::MIN_ACCEPTED..=EventTime::MAX_QUERYABLE).contains(&t) {
        return Err(bad(
            field,
            TimeError::OutOfRange.code(),
            format!("{field} must lie from 2000-01-01 to 2100-01-01"),
        ));
    }
    Ok(bound)
}

/// `[start, end]` read from two optional fields, in µs as `[from, to)`; a start after the
/// end is refused, naming the start's field.
pub fn range(
    (start_field, start): (&str, Option<&str>),
    (end_field, end): (&str, Option<&str>),
) -> Result<(Option<i64>, Option<i64>), QueryError> {
    let from = start.map(|s| parse(start_field, s)).transpose()?;
    let to = end.map(|s| parse(end_field, s)).transpose()?;
    let (from, to) = (from.map(Bound::start_us), to.map(Bound::end_us));
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(bad(
                start_field,
                "start_after_end",
                format!("{start_field} must not be after {end_field}"),
            ));
        }
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: QueryError) -> String {
        match e {
            QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn dates_and_instants_become_bounds() {
        // (text, start µs, end µs) or the error
        let cases: [(&str, Result<(i64, i64), &str>); 9] = [
            (
                "2022-01-01",
                Ok((1_640_995_200_000_000, 1_641_081_600_000_000)),
            ),
            (
                "2022-04-11T01:08:01.407119",
                Ok((1_649_639_281_407_119, 1_649_639_281_407_120)),
            ),
            (
                "2022-04-11 01:08:01.407119",
                Ok((1_649_639_281_407_119, 1_649_639_281_407_120)),
            ),
            (
                "2022-04-11T03:08:01+02:00",
                Ok((1_649_639_281_000_000, 1_649_639_281_000_001)),
            ),
            (
                "1641081600",
                Ok((1_641_081_600_000_000, 1_641_081_600_000_001)),
            ),
            ("2022-02-30", Err("t:invalid_timestamp")),
            ("yesterday", Err("t:invalid_timestamp")),
            ("1999-12-31", Err("t:out_of_range")),
            ("2022-01-01 10:00", Err("t:invalid_timestamp")),
        ];
        for (raw, want) in cases {
            let got = parse("t", raw)
                .map(|b| (b.start_us(), b.end_us()))
                .map_err(code);
            assert_eq!(got, want.map_err(str::to_owned), "{raw}");
        }
    }

    #[test]
    fn ranges_include_both_ends() {
        let day = |s| ("start_time", Some(s));
        let end = |s| ("end_time", Some(s));
        assert_eq!(
            range(day("2022-01-01"), end("2022-01-01")).map_err(code),
            Ok((Some(1_640_995_200_000_000), Some(1_641_081_600_000_000)))
        );
        assert_eq!(
            range(("start_time", None), end("2022-01-01 00:00:00")).map_err(code),
            Ok((None, Some(1_640_995_200_000_001)))
        );
        assert_eq!(
            range(day("2022-01-02"), end("2022-01-01")).map_err(code),
            Err("start_time:start_after_end".to_owned())
        );
        assert_eq!(
            range(day("2022-01-01"), ("end_time", None)).map_err(code),
            Ok((Some(1_640_995_200_000_000), None))
        );
    }
}
