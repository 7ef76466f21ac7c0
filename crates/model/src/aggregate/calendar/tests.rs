//! The calendar against known dates: zones, daylight-saving shifts, the window's edges.

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

fn at(s: &str) -> EventTime {
    EventTime::from_micros(utc(s).timestamp_micros())
}

#[test]
fn a_calendar_refuses_a_range_of_too_many_buckets() {
    let from = "2026-01-01T00:00:00Z";
    // 10,000 minutes later, and a second more.
    let (exactly, over) = ("2026-01-07T22:40:00Z", "2026-01-07T22:40:01Z");
    // (granularity, from, to, accepted)
    let cases = [
        (Granularity::Minute, Some(from), Some(exactly), true),
        (Granularity::Minute, Some(from), Some(over), false),
        (Granularity::Hour, Some(from), Some(over), true),
        (Granularity::None, Some(from), Some(from), true),
        // An open bound is refused only once storage has answered.
        (Granularity::Minute, None, Some(over), true),
        (Granularity::Minute, Some(from), None, true),
    ];
    for (g, from, to, accepted) in cases {
        let got = Calendar::new(g, tz("UTC"), Fill::None, from.map(at), to.map(at));
        assert_eq!(got.is_ok(), accepted, "{g:?} {from:?} {to:?}");
        if let Err(e) = got {
            assert_eq!(e, TooManyBuckets(g));
        }
    }
}

#[test]
fn buckets_start_where_storage_found_them_or_where_the_range_does() {
    let found = |start: &str, first_us: i64| Found {
        start_s: utc(start).timestamp(),
        first_us,
        value: 2.5,
        events: 3,
    };
    let (min, max) = (EventTime::MIN_ACCEPTED, EventTime::MAX_QUERYABLE);
    let first = at("2026-01-01T00:10:00Z").as_micros();
    // (granularity, from, found, the bucket's start)
    let cases = [
        (
            Granularity::Hour,
            None,
            found("2026-01-01T00:00:00Z", first),
            "2026-01-01T00:00:00Z",
        ),
        (
            Granularity::Day,
            Some("2025-12-31T12:00:00Z"),
            found("2026-01-01T00:00:00Z", first),
            "2026-01-01T00:00:00Z",
        ),
        (
            Granularity::None,
            Some("2025-12-31T12:00:00Z"),
            found("1970-01-01T00:00:00Z", first),
            "2025-12-31T12:00:00Z",
        ),
        (
            Granularity::None,
            None,
            found("1970-01-01T00:00:00Z", first),
            "2026-01-01T00:10:00Z",
        ),
        // A row written outside the window starts at its edge.
        (
            Granularity::None,
            None,
            found("1970-01-01T00:00:00Z", min.as_micros() - 1),
            "2000-01-01T00:00:00Z",
        ),
        (
            Granularity::None,
            None,
            found("1970-01-01T00:00:00Z", max.as_micros() + 1),
            "2100-01-01T00:00:00Z",
        ),
    ];
    for (g, from, f, want) in cases {
        let calendar = Calendar::new(g, tz("UTC"), Fill::None, from.map(at), None).expect("few");
        let buckets = calendar.buckets([f]).expect("few");
        assert_eq!(
            buckets,
            [Bucket {
                start: utc(want),
                value: Some(2.5),
                count: 3
            }],
            "{g:?} {from:?}"
        );
    }
}

#[test]
fn a_calendar_fills_its_range() {
    let calendar = Calendar::new(
        Granularity::Day,
        tz("Europe/Paris"),
        Fill::Zero,
        Some(at("2026-03-28T10:00:00Z")),
        Some(at("2026-03-30T23:00:00Z")),
    )
    .expect("few");
    let found = Found {
        start_s: utc("2026-03-28T23:00:00Z").timestamp(),
        first_us: 0,
        value: 1.0,
        events: 1,
    };
    let got: Vec<(String, Option<f64>)> = calendar
        .buckets([found])
        .expect("few")
        .into_iter()
        .map(|b| (b.start.to_rfc3339(), b.value))
        .collect();
    assert_eq!(
        got,
        [
            ("2026-03-27T23:00:00+00:00".to_owned(), Some(0.0)),
            ("2026-03-28T23:00:00+00:00".to_owned(), Some(1.0)),
            ("2026-03-29T22:00:00+00:00".to_owned(), Some(0.0)),
            ("2026-03-30T22:00:00+00:00".to_owned(), Some(0.0)),
        ]
    );
    // Storage found more than an answer may hold.
    let many = (0..Calendar::STORAGE_LIMIT as i64).map(|i| Found {
        start_s: i * 86_400,
        first_us: 0,
        value: 0.0,
        events: 1,
    });
    let open = Calendar::new(Granularity::Day, tz("UTC"), Fill::None, None, None).expect("open");
    assert_eq!(open.buckets(many), Err(TooManyBuckets(Granularity::Day)));
}
