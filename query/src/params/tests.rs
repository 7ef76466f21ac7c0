//! Each parameter parser against what it must take and refuse.

use super::*;

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect()
}

fn field(e: QueryError) -> String {
    match e {
        QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn query_strings_decode_strictly() {
    let got = parse_query("a=x+y%27%5C&&b&c=%00").expect("valid");
    assert_eq!(got, params(&[("a", "x y'\\"), ("b", ""), ("c", "\0")]));
    assert_eq!(parse_query("").expect("empty"), Params::new());
    for (raw, want) in [
        ("session_id=%FF", "session_id:invalid_utf8"),
        ("x=a%E2%80", "x:invalid_utf8"),
        ("%FF=1", "query:invalid_utf8"),
    ] {
        assert_eq!(
            parse_query(raw).map_err(field).expect_err("must fail"),
            want,
            "{raw}"
        );
    }
}

#[test]
fn limits() {
    type Case<'a> = (&'a [(&'a str, &'a str)], Result<u32, &'a str>);
    let cases: &[Case] = &[
        (&[], Ok(100)),
        (&[("limit", "1")], Ok(1)),
        (&[("limit", "1000")], Ok(1_000)),
        (&[("limit", "0")], Err("limit:out_of_range")),
        (&[("limit", "1001")], Err("limit:out_of_range")),
        (&[("limit", "-1")], Err("limit:out_of_range")),
        (&[("limit", "ten")], Err("limit:out_of_range")),
    ];
    for (input, want) in cases {
        let got = limit(&params(input), 100, 1_000).map_err(field);
        assert_eq!(got, want.map_err(str::to_owned), "{input:?}");
    }
}

#[test]
fn times_and_ranges() {
    let ok = params(&[("from", "2021-09-26 09:15:27"), ("to", "1632648000")]);
    let (from, to) = range(&ok).expect("valid");
    assert_eq!(
        from.map(EventTime::to_rfc3339).as_deref(),
        Some("2021-09-26T09:15:27.000000Z")
    );
    assert_eq!(
        to.map(EventTime::to_rfc3339).as_deref(),
        Some("2021-09-26T09:20:00.000000Z")
    );
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("from", "yesterday")], "from:invalid_timestamp"),
        (&[("to", "1e20")], "to:epoch_out_of_range"),
        (
            &[("from", "2022-01-01"), ("to", "2021-01-01")],
            "from:invalid_timestamp",
        ),
        (
            &[
                ("from", "2022-01-01 00:00:00"),
                ("to", "2021-01-01 00:00:00"),
            ],
            "from:from_after_to",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            range(&params(input)).map_err(field).expect_err("must fail"),
            *want,
            "{input:?}"
        );
    }
}

#[test]
fn times_outside_the_window_are_refused_naming_the_parameter() {
    // (parameter, value, the time read or field:code)
    type Case<'a> = (&'a str, &'a str, Result<&'a str, &'a str>);
    let cases: &[Case] = &[
        (
            "from",
            "2000-01-01T00:00:00Z",
            Ok("2000-01-01T00:00:00.000000Z"),
        ),
        (
            "from",
            "2000-01-01T01:00:00+01:00",
            Ok("2000-01-01T00:00:00.000000Z"),
        ),
        ("from", "946684800", Ok("2000-01-01T00:00:00.000000Z")),
        ("from", "946684800000", Ok("2000-01-01T00:00:00.000000Z")),
        (
            "from",
            "1999-12-31T23:59:59.999999Z",
            Err("from:timestamp_too_old"),
        ),
        (
            "from",
            "2000-01-01T00:59:59+01:00",
            Err("from:timestamp_too_old"),
        ),
        ("from", "946684799.999999", Err("from:timestamp_too_old")),
        ("from", "0", Err("from:timestamp_too_old")),
        (
            "from",
            "1960-01-01T00:00:00Z",
            Err("from:timestamp_too_old"),
        ),
        (
            "from",
            "0001-01-01T00:00:00Z",
            Err("from:timestamp_too_old"),
        ),
        // Seconds before 1970 that chrono renders as the year -1199.
        ("from", "-99999999999", Err("from:timestamp_too_old")),
        ("from", "-99999999999999", Err("from:timestamp_too_old")),
        ("to", "-1", Err("to:timestamp_too_old")),
        (
            "to",
            "2100-01-01T00:00:00Z",
            Ok("2100-01-01T00:00:00.000000Z"),
        ),
        (
            "to",
            "2099-12-31T23:00:00-01:00",
            Ok("2100-01-01T00:00:00.000000Z"),
        ),
        ("to", "4102444800", Ok("2100-01-01T00:00:00.000000Z")),
        (
            "to",
            "2100-01-01T00:00:00.000001Z",
            Err("to:timestamp_in_future"),
        ),
        ("to", "4102444801", Err("to:timestamp_in_future")),
        ("to", "9999-12-31T23:59:59Z", Err("to:timestamp_in_future")),
        ("to", "99999999999", Err("to:timestamp_in_future")),
        ("to", "99999999999999", Err("to:timestamp_in_future")),
        (
            "from",
            "9999-12-31T23:00:00Z",
            Err("from:timestamp_in_future"),
        ),
        ("to", "1e20", Err("to:epoch_out_of_range")),
    ];
    for (name, value, want) in cases {
        let got = time(&params(&[(name, value)]), name)
            .map(|t| t.map(EventTime::to_rfc3339))
            .map_err(field);
        let want = want.map(|t| Some(t.to_owned())).map_err(str::to_owned);
        assert_eq!(got, want, "{name}={value}");
    }
    // The message names the parameter and the bound.
    let message = |name: &str, value: &str| match time(&params(&[(name, value)]), name) {
        Err(QueryError::BadParameter(f)) => f.message,
        other => panic!("{name}={value}: {other:?}"),
    };
    assert_eq!(
        message("from", "-99999999999"),
        "from must be on or after 2000-01-01T00:00:00Z, the earliest event time ingest accepts"
    );
    assert_eq!(
        message("to", "9999-12-31T23:59:59Z"),
        "to must be on or before 2100-01-01T00:00:00Z, the latest time a query may name"
    );
    // Each bound is checked before the two are compared.
    assert_eq!(
        range(&params(&[("from", "2100-01-02T00:00:00Z"), ("to", "0")]))
            .map_err(field)
            .expect_err("must fail"),
        "from:timestamp_in_future"
    );
}

#[test]
fn cursors_round_trip_and_reject_garbage() {
    let id = Uuid::now_v7();
    let (min, max) = (
        EventTime::MIN_ACCEPTED.as_micros(),
        EventTime::MAX_QUERYABLE.as_micros(),
    );
    for ts in [1_700_000_000_000_000, min, max] {
        let c = encode_cursor(ts, id);
        assert_eq!(
            cursor(&params(&[("cursor", &c)])).expect("valid"),
            Some((ts, id))
        );
    }
    // A time outside the window is no cursor this service gave out.
    let outside = [min - 1, max + 1, -5, i64::MIN].map(|ts| encode_cursor(ts, id));
    let garbage = ["", "abc", "12_", "_0191e4e5", "12_zz", "1' OR 1=1_x"];
    for bad_cursor in garbage
        .into_iter()
        .chain(outside.iter().map(String::as_str))
    {
        assert_eq!(
            cursor(&params(&[("cursor", bad_cursor)]))
                .map_err(field)
                .expect_err("must fail"),
            "cursor:invalid_cursor",
            "{bad_cursor}"
        );
        assert_eq!(
            event_cursor(&params(&[("cursor", bad_cursor)]))
                .map_err(field)
                .expect_err("must fail"),
            "cursor:invalid_cursor",
            "{bad_cursor}"
        );
    }
}

#[test]
fn event_cursors_carry_the_session() {
    let id = Uuid::now_v7();
    for session in ["s1", "a_b c&d=é/#?"] {
        let c = encode_event_cursor(1_700_000_000_000_000, id, session);
        assert_eq!(
            event_cursor(&params(&[("cursor", &c)])).expect("valid"),
            Some((1_700_000_000_000_000, id, session.to_owned()))
        );
    }
    let old = encode_cursor(1_700_000_000_000_000, id);
    assert_eq!(
        event_cursor(&params(&[("cursor", &old)])).expect("valid"),
        Some((1_700_000_000_000_000, id, String::new()))
    );
    for garbage in ["", "12", "12_zz", &format!("12_{}_zz", id.simple())] {
        assert!(
            event_cursor(&params(&[("cursor", garbage)])).is_err(),
            "{garbage}"
        );
    }
}

#[test]
fn session_cursors_carry_any_session_id() {
    let at = 1_675_354_935_000_000;
    for id in ["s1", "a_b c&d=é/#?", "0191e4e5-7c8b-7d4e-9a1b-123456789abc"] {
        let c = encode_session_cursor(at, id);
        assert!(c
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'));
        assert_eq!(
            session_cursor(&params(&[("cursor", &c)])).expect("valid"),
            Some((at, id.to_owned()))
        );
    }
    let outside = [
        EventTime::MIN_ACCEPTED.as_micros() - 1,
        EventTime::MAX_QUERYABLE.as_micros() + 1,
        -5,
    ]
    .map(|ts| encode_session_cursor(ts, "s1"));
    let garbage = ["", "12", "x_73", "12_7", "12_zz", "12_ff"];
    for garbage in garbage
        .into_iter()
        .chain(outside.iter().map(String::as_str))
    {
        assert_eq!(
            session_cursor(&params(&[("cursor", garbage)]))
                .map_err(field)
                .expect_err("must fail"),
            "cursor:invalid_cursor",
            "{garbage}"
        );
    }
}

#[test]
fn choices_zones_and_path_ids() {
    use eye_model::aggregate::Granularity;
    let g = |v: &[(&str, &str)]| {
        choice(
            &params(v),
            "granularity",
            &Granularity::ALL,
            Granularity::as_str,
            Granularity::None,
        )
        .map_err(field)
    };
    assert_eq!(g(&[]), Ok(Granularity::None));
    assert_eq!(g(&[("granularity", "week")]), Ok(Granularity::Week));
    assert_eq!(
        g(&[("granularity", "fortnight")]),
        Err("granularity:invalid_choice".into())
    );
    assert_eq!(time_zone(&params(&[])).map_err(field), Ok(chrono_tz::UTC));
    assert_eq!(
        time_zone(&params(&[("tz", "Europe/Paris")])).map_err(field),
        Ok(chrono_tz::Europe::Paris)
    );
    assert_eq!(
        time_zone(&params(&[("tz", "Mars/Olympus")])).map_err(field),
        Err("tz:invalid_timezone".into())
    );
    let id = |raw| {
        path_id(raw, "machine_id", |s| {
            eye_model::session::check_id("machine_id", s)
        })
        .map_err(field)
    };
    assert_eq!(id("host%2F1"), Ok("host/1".into()));
    assert_eq!(id(""), Err("machine_id:empty".into()));
    assert_eq!(id("%0A"), Err("machine_id:control_character".into()));
    assert_eq!(id("%FF"), Err("machine_id:invalid_utf8".into()));
    assert_eq!(
        required_text(&params(&[]), "name", eye_model::event::EventName::parse).map_err(field),
        Err("name:required".into())
    );
}

#[test]
fn order_and_text_filters() {
    assert_eq!(descending(&params(&[])).map_err(field), Ok(false));
    assert_eq!(
        descending(&params(&[("order", "desc")])).map_err(field),
        Ok(true)
    );
    assert_eq!(
        descending(&params(&[("order", "up")])).map_err(field),
        Err("order:invalid_order".into())
    );
    let cat = |v: &str| {
        text(
            &params(&[("category", v)]),
            "category",
            eye_model::event::Category::parse,
        )
        .map_err(field)
    };
    assert_eq!(cat("page_interaction"), Ok(Some("page_interaction".into())));
    assert_eq!(
        cat("x'; DROP TABLE events; --"),
        Err("category:invalid_characters".into())
    );
    assert_eq!(cat(""), Err("category:empty".into()));
}

#[test]
fn reasons_and_unknown_parameters() {
    assert_eq!(
        reason(&params(&[("reason", "invalid_timestamp")]))
            .expect("ok")
            .as_deref(),
        Some("invalid_timestamp")
    );
    for bad_reason in ["", "x'; DROP TABLE events", "Invalid", &"a".repeat(65)] {
        assert!(
            reason(&params(&[("reason", bad_reason)])).is_err(),
            "{bad_reason}"
        );
    }
    assert_eq!(
        only(&params(&[("limit", "1")]), &["limit"]).map_err(field),
        Ok(())
    );
    assert_eq!(
        only(&params(&[("order", "x")]), &["limit"]).map_err(field),
        Err("order:unknown_parameter".into())
    );
}
