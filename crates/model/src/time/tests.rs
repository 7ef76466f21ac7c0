use super::*;
use serde_json::{json, Number, Value};

fn us(s: &str) -> i64 {
    let dt = DateTime::parse_from_rfc3339(s).expect("test literal");
    dt.timestamp_micros()
}

fn num(s: &str) -> Number {
    serde_json::from_str(s).expect("test literal is a JSON number")
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
        // separators
        ("2021-09-26t09:15:27Z", us("2021-09-26T09:15:27Z")),
        ("2021-09-26 09:15:27Z", us("2021-09-26T09:15:27Z")),
        // zones
        ("2021-09-26T09:15:27z", us("2021-09-26T09:15:27Z")),
        ("2021-09-26t09:15:27z", us("2021-09-26T09:15:27Z")),
        ("2021-09-26T09:15:27+02:00", us("2021-09-26T07:15:27Z")),
        ("2021-09-26T09:15:27+0200", us("2021-09-26T07:15:27Z")),
        ("2021-09-26T09:15:27+02", us("2021-09-26T07:15:27Z")),
        ("2021-09-26T09:15:27-05:30", us("2021-09-26T14:45:27Z")),
        ("2021-09-26T09:15:27-0530", us("2021-09-26T14:45:27Z")),
        ("2021-09-26T09:15:27-05", us("2021-09-26T14:15:27Z")),
        ("2021-09-26T09:15:27.25-0530", us("2021-09-26T14:45:27.25Z")),
        ("2021-09-26 09:15:27.123+02", us("2021-09-26T07:15:27.123Z")),
        ("2021-09-26T09:15:27+00:00", us("2021-09-26T09:15:27Z")),
        ("2021-09-26T09:15:27-00:00", us("2021-09-26T09:15:27Z")),
        ("2021-09-26T09:15:27+23:59", us("2021-09-25T09:16:27Z")),
        // no zone is UTC
        ("2021-09-26T09:15:27", us("2021-09-26T09:15:27Z")),
        // fractions of 1..=9 digits; below the microsecond truncates
        ("2021-09-26T09:15:27.1Z", us("2021-09-26T09:15:27.1Z")),
        ("2021-09-26T09:15:27.12Z", us("2021-09-26T09:15:27.12Z")),
        ("2021-09-26T09:15:27.123Z", us("2021-09-26T09:15:27.123Z")),
        ("2021-09-26T09:15:27.1234Z", us("2021-09-26T09:15:27.1234Z")),
        (
            "2021-09-26T09:15:27.12345Z",
            us("2021-09-26T09:15:27.12345Z"),
        ),
        (
            "2021-09-26T09:15:27.123456Z",
            us("2021-09-26T09:15:27.123456Z"),
        ),
        (
            "2021-09-26T09:15:27.1234567Z",
            us("2021-09-26T09:15:27.123456Z"),
        ),
        (
            "2021-09-26T09:15:27.12345678Z",
            us("2021-09-26T09:15:27.123456Z"),
        ),
        (
            "2021-09-26T09:15:27.123456789Z",
            us("2021-09-26T09:15:27.123456Z"),
        ),
        (
            "2021-09-26 09:15:27.999999999",
            us("2021-09-26T09:15:27.999999Z"),
        ),
        // whitespace of any kind around the value
        ("\t2021-09-26T09:15:27Z\n", us("2021-09-26T09:15:27Z")),
        // real dates only, but a real Feb 29 is fine
        ("2024-02-29T00:00:00Z", us("2024-02-29T00:00:00Z")),
        // a leap second is the first instant of the next second
        ("2016-12-31T23:59:60Z", us("2017-01-01T00:00:00Z")),
        ("2016-12-31T23:59:60.5Z", us("2017-01-01T00:00:00.5Z")),
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
        "   ",
        "timestamp",
        "2021-09-26",
        "2021-13-01 00:00:00",
        "2021-02-30 00:00:00",
        "2021-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2021-04-31T00:00:00Z",
        "26/09/2021 09:15:27",
        "2021-09-26 25:00:00",
        "2021-09-26T09:15:27+25:00",
        "2021-09-26T09:15:27+24",
        // seconds are required
        "2021-09-26T09:15Z",
        "2021-09-26T09:15",
        "2021-09-26T09:15+02:00",
        // exact field widths
        "2021-9-26T09:15:27Z",
        "2021-09-26T9:15:27Z",
        "21-09-26T09:15:27Z",
        "+2021-09-26T09:15:27Z",
        // one separator, one of T, t, space
        "2021-09-26  09:15:27Z",
        "2021-09-26_09:15:27Z",
        "2021-09-2609:15:27Z",
        "20210926T091527Z",
        // malformed fractions and zones
        "2021-09-26T09:15:27.Z",
        "2021-09-26T09:15:27.",
        "2021-09-26T09:15:27,5Z",
        "2021-09-26T09:15:27.5x",
        "2021-09-26T09:15:27 Z",
        "2021-09-26T09:15:27 +02:00",
        "2021-09-26T09:15:27+2",
        "2021-09-26T09:15:27+2:00",
        "2021-09-26T09:15:27+02:0",
        "2021-09-26T09:15:27+020",
        "2021-09-26T09:15:27+02:000",
        "2021-09-26T09:15:27+02:60",
        "2021-09-26T09:15:27+1é2",
        "2021-09-26T09:15:27+0é",
        "2021-09-26T09:15:27ZZ",
        "2021-09-26T09:15:27Z+02:00",
        "2021-09-26T09:15:27+02:00Z",
        "2021-09-26T09:15:27 UTC",
        "2021-09-26T09:15:27GMT",
        // a long fraction on garbage is still garbage
        "garbage.1234567890",
        "2021-09-26X09:15:27.1234567890",
        "1632647727",
        "é",
        "2021-09-26Té9:15:27Z",
    ] {
        assert_eq!(
            EventTime::parse(input),
            Err(TimeError::Unparseable),
            "input {input:?}"
        );
    }
}

#[test]
fn rejects_fractions_over_nine_digits() {
    for input in [
        "2021-09-26T09:15:27.1234567890Z",
        "2021-09-26T09:15:27.1234567890",
        "2021-09-26 09:15:27.0000000000+02:00",
        "2021-09-26t09:15:27.12345678901234567890z",
        "2021-09-26T09:15:27.1234567890-0530",
    ] {
        assert_eq!(
            EventTime::parse(input),
            Err(TimeError::FractionTooLong),
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

#[test]
fn min_accepted_is_the_year_2000() {
    assert_eq!(
        EventTime::MIN_ACCEPTED.as_micros(),
        us("2000-01-01T00:00:00Z")
    );
}

#[test]
fn max_queryable_is_the_year_2100() {
    assert_eq!(
        EventTime::MAX_QUERYABLE.as_micros(),
        us("2100-01-01T00:00:00Z")
    );
}

#[test]
fn reads_epoch_numbers_by_magnitude() {
    let cases: &[(&str, i64)] = &[
        // seconds, integer
        ("1632647727", us("2021-09-26T09:15:27Z")),
        ("946684800", us("2000-01-01T00:00:00Z")),
        ("0", 0),
        ("-5", -5_000_000),
        // seconds, fraction, kept to the microsecond
        ("1632647727.5", us("2021-09-26T09:15:27.5Z")),
        ("1632647727.243860", us("2021-09-26T09:15:27.243860Z")),
        ("1700000000.123456", us("2023-11-14T22:13:20.123456Z")),
        // truncating this float would give .971511
        ("2191287338.971512", us("2039-06-10T02:55:38.971512Z")),
        // below the microsecond rounds to the nearest
        ("1632647727.2438602", us("2021-09-26T09:15:27.243860Z")),
        ("1632647727.2438608", us("2021-09-26T09:15:27.243861Z")),
        ("1.5e9", us("2017-07-14T02:40:00Z")),
        ("-1.5", -1_500_000),
        // the last value read as seconds, on both sides of the 1e11 boundary
        ("99999999999", 99_999_999_999_000_000),
        ("99999999999.5", 99_999_999_999_500_000),
        ("-99999999999", -99_999_999_999_000_000),
        // milliseconds, integer
        ("100000000000", 100_000_000_000_000),
        ("1e11", 100_000_000_000_000),
        ("-100000000000", -100_000_000_000_000),
        ("1632647727243", us("2021-09-26T09:15:27.243Z")),
        ("946684800000", us("2000-01-01T00:00:00Z")),
        // milliseconds, fraction
        ("1632647727243.86", us("2021-09-26T09:15:27.24386Z")),
        ("1632647727243.5", us("2021-09-26T09:15:27.2435Z")),
        // truncating this float would give .360999
        ("2243614609897.361", 2_243_614_609_897_361),
        ("100000000000.001", 100_000_000_000_001),
        // the last value read as milliseconds
        ("99999999999999", 99_999_999_999_999_000),
        ("-99999999999999", -99_999_999_999_999_000),
    ];
    for (input, want) in cases {
        assert_eq!(
            EventTime::from_epoch_number(&num(input)),
            Ok(EventTime(*want)),
            "input {input}"
        );
    }
    // Just below 1e14 a float no longer carries microseconds, but it is still milliseconds.
    let last = EventTime::from_epoch_number(&num("99999999999999.9")).expect("milliseconds");
    assert!((last.as_micros() - 99_999_999_999_999_900).abs() < 100);
}

#[test]
fn rejects_epoch_microseconds_and_beyond() {
    for input in [
        "100000000000000",
        "1e14",
        "100000000000000.5",
        "-100000000000000",
        "1632647727243860",
        "1632647727243860000",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551615",
        "1e300",
        "-1e300",
    ] {
        assert_eq!(
            EventTime::from_epoch_number(&num(input)),
            Err(TimeError::EpochOutOfRange),
            "input {input}"
        );
    }
}

#[test]
fn reads_json_values_by_type() {
    let ok: &[(Value, i64)] = &[
        (json!("2021-09-26T09:15:27Z"), us("2021-09-26T09:15:27Z")),
        (json!(" 2021-09-26 09:15:27 "), us("2021-09-26T09:15:27Z")),
        (json!(1_632_647_727), us("2021-09-26T09:15:27Z")),
        (json!(1_632_647_727.5), us("2021-09-26T09:15:27.5Z")),
        (json!(1_632_647_727_243_u64), us("2021-09-26T09:15:27.243Z")),
    ];
    for (input, want) in ok {
        assert_eq!(
            EventTime::from_json(input),
            Ok(EventTime(*want)),
            "input {input}"
        );
    }
    let err: &[(Value, TimeError)] = &[
        (json!(true), TimeError::WrongType),
        (json!(false), TimeError::WrongType),
        (Value::Null, TimeError::WrongType),
        (json!({"ts": 1_632_647_727}), TimeError::WrongType),
        (json!([1_632_647_727]), TimeError::WrongType),
        (json!("yesterday"), TimeError::Unparseable),
        (json!("1632647727"), TimeError::Unparseable),
        (
            json!("2021-09-26T09:15:27.1234567890Z"),
            TimeError::FractionTooLong,
        ),
        (json!(1_632_647_727_243_860_u64), TimeError::EpochOutOfRange),
    ];
    for (input, want) in err {
        assert_eq!(
            EventTime::from_json(input).as_ref(),
            Err(want),
            "input {input}"
        );
    }
}

#[test]
fn bounds_accept_from_2000_to_received_plus_skew() {
    let received = EventTime(us("2021-09-26T09:15:27Z"));
    let bounds = TimeBounds::default();
    assert_eq!(bounds.max_future_skew, Duration::from_secs(86_400));
    let day = 86_400_000_000;
    let in_future = TimeError::TooFarInFuture {
        max_skew_secs: 86_400,
    };
    let cases: &[(i64, Result<(), TimeError>)] = &[
        (us("1999-12-31T23:59:59.999999Z"), Err(TimeError::TooOld)),
        (us("1970-01-01T00:00:00Z"), Err(TimeError::TooOld)),
        (-1, Err(TimeError::TooOld)),
        (i64::MIN, Err(TimeError::TooOld)),
        (us("2000-01-01T00:00:00Z"), Ok(())),
        (us("2000-01-01T00:00:00.000001Z"), Ok(())),
        (received.0 - day, Ok(())),
        (received.0, Ok(())),
        (received.0 + day, Ok(())),
        (received.0 + day + 1, Err(in_future.clone())),
        (i64::MAX, Err(in_future)),
    ];
    for (t, want) in cases {
        let want = want.clone().map(|()| EventTime(*t));
        assert_eq!(bounds.check(EventTime(*t), received), want, "t {t}");
    }

    let tight = TimeBounds {
        max_future_skew: Duration::from_millis(1500),
    };
    assert_eq!(
        tight.check(EventTime(received.0 + 1_500_000), received),
        Ok(EventTime(received.0 + 1_500_000))
    );
    assert_eq!(
        tight.check(EventTime(received.0 + 1_500_001), received),
        Err(TimeError::TooFarInFuture { max_skew_secs: 1 })
    );
    // A huge skew saturates instead of overflowing.
    let huge = TimeBounds {
        max_future_skew: Duration::MAX,
    };
    assert_eq!(
        huge.check(EventTime(i64::MAX), received),
        Ok(EventTime(i64::MAX))
    );
}

#[test]
fn corrects_for_client_clock_skew() {
    let t = EventTime;
    let cases: &[(i64, i64, i64, i64)] = &[
        // (timestamp, sent_at, received_at, want)
        // client clock 10 s behind the server
        (1_000, 5_000, 10_005_000, 10_001_000),
        // client clock 3 s ahead
        (10_000_000, 12_000_000, 9_000_000, 7_000_000),
        // clocks agree
        (42, 100, 100, 42),
        // event sent long after it happened
        (0, 60_000_000, 61_000_000, 1_000_000),
        // saturation at both ends
        (i64::MAX - 1, 0, 10, i64::MAX),
        (i64::MIN + 1, 10, 0, i64::MIN),
        (0, i64::MIN, i64::MAX, i64::MAX),
        (0, i64::MAX, i64::MIN, i64::MIN),
    ];
    for &(timestamp, sent_at, received_at, want) in cases {
        assert_eq!(
            EventTime::corrected(t(timestamp), t(sent_at), t(received_at)),
            t(want),
            "({timestamp}, {sent_at}, {received_at})"
        );
    }
    let corrected = EventTime::corrected(
        EventTime::parse("2021-09-26T09:15:27Z").expect("valid"),
        EventTime::parse("2021-09-26T09:20:00Z").expect("valid"),
        EventTime::parse("2021-09-26T09:20:02.5Z").expect("valid"),
    );
    assert_eq!(corrected.to_rfc3339(), "2021-09-26T09:15:29.500000Z");
}

#[test]
fn error_codes_are_distinct_and_messages_say_what_is_accepted() {
    let all = [
        TimeError::Unparseable,
        TimeError::FractionTooLong,
        TimeError::EpochOutOfRange,
        TimeError::WrongType,
        TimeError::TooOld,
        TimeError::TooFarInFuture {
            max_skew_secs: 86_400,
        },
        TimeError::OutOfRange,
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(TimeError::code).collect();
    assert_eq!(codes.len(), all.len(), "codes {codes:?}");
    let want = [
        "invalid_timestamp",
        "fraction_too_long",
        "epoch_out_of_range",
        "wrong_type",
        "timestamp_too_old",
        "timestamp_in_future",
        "out_of_range",
    ];
    for (e, code) in all.iter().zip(want) {
        assert_eq!(e.code(), code);
        assert!(e.to_string().contains("must"), "{e}");
    }
    assert!(TimeError::Unparseable
        .to_string()
        .contains("Unix epoch number in seconds or milliseconds"));
    assert!(TimeError::TooFarInFuture {
        max_skew_secs: 86_400
    }
    .to_string()
    .contains("86400 seconds"));
}
