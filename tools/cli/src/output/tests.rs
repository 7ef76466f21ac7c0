use super::*;
use eye_model::api::EventPage;

const EVENTS: &str = r#"{"events":[
  {"event_id":"00000000-0000-0000-0000-000000000001","session_id":"s-1","category":"page_interaction","name":"page_view","timestamp":"2024-05-01T10:00:00.000000Z","client_timestamp":"2024-05-01T10:00:00.000000Z","received_at":"2024-05-01T10:00:01.000000Z","data":{"host": "example.com", "path": "/a,b"}},
  {"event_id":"00000000-0000-0000-0000-000000000002","session_id":"s-1","category":"machine","name":"cpu_load","timestamp":"2024-05-01T10:00:02.000000Z","client_timestamp":"2024-05-01T10:00:02.000000Z","received_at":"2024-05-01T10:00:03.000000Z","data":{"machine_id":"m-1","unit":"percent","note":"a rather long text that goes past the width of the data column"},"value":42.5}
],"next_cursor":null}"#;

fn page() -> EventPage {
    serde_json::from_str(EVENTS).expect("events")
}

fn session_detail() -> SessionDetail {
    let page = page();
    let text = format!(
        r#"{{"session_id":"s-1","user_id":"u-1","machine_id":null,"org_id":null,"started_at":"2024-05-01T09:59:00.000000Z","ended_at":null,"event_count":2,"first_event_at":"2024-05-01T10:00:00.000000Z","last_event_at":"2024-05-01T10:00:02.000000Z","events":{},"next_cursor":"c-2"}}"#,
        serde_json::to_string(&page.events).expect("JSON")
    );
    serde_json::from_str(&text).expect("session")
}

fn aggregate_answer() -> Aggregate {
    serde_json::from_str(
        r#"{"category":"machine","name":"cpu_load","granularity":"hour","agg":"avg","tz":"UTC","fill":"null","buckets":[
          {"start":"2024-05-01T10:00:00+00:00","value":50.0,"count":2},
          {"start":"2024-05-01T11:00:00+00:00","value":null,"count":0},
          {"start":"2024-05-01T12:00:00+00:00","value":12.5,"count":1}]}"#,
    )
    .expect("aggregate")
}

fn categories_answer() -> Categories {
    serde_json::from_str(
        r#"{"categories":[{"category":"machine","name":"cpu_load","events":3,"first_seen":"2024-05-01T10:00:00.000000Z","last_seen":"2024-05-01T12:00:00.000000Z"}]}"#,
    )
    .expect("categories")
}

fn rejected_answer() -> Vec<RejectedView> {
    let page: eye_model::api::RejectedPage = serde_json::from_str(
        r#"{"rejected":[{"rejection_id":"00000000-0000-0000-0000-00000000000a","received_at":"2024-05-01T10:00:00.000000Z","source":"events","client":"loadgen","reasons":[{"field":"/name","code":"required","message":"name is required"},{"field":"","code":"unknown_event_type","message":"no schema"}],"raw":"{\"session_id\": \"s\"}","raw_bytes":17,"raw_sha256":"ab","raw_truncated":false,"event_id":"","session_id":"s","category":"","name":""}],"next_cursor":null}"#,
    )
    .expect("rejected");
    page.rejected
}

#[test]
fn the_format_follows_the_flags_then_the_terminal() {
    let flags = |json, ndjson, csv| FormatArgs {
        json,
        ndjson,
        csv,
        table: false,
    };
    let table = FormatArgs {
        table: true,
        ..FormatArgs::default()
    };
    let cases = [
        (table, false, Shape::Listing, Format::Table),
        (table, false, Shape::Single, Format::Table),
        (
            flags(true, false, false),
            true,
            Shape::Listing,
            Format::Json,
        ),
        (
            flags(false, true, false),
            true,
            Shape::Single,
            Format::Ndjson,
        ),
        (flags(false, false, true), false, Shape::Single, Format::Csv),
        (
            flags(false, false, false),
            true,
            Shape::Listing,
            Format::Table,
        ),
        (
            flags(false, false, false),
            true,
            Shape::Single,
            Format::Table,
        ),
        (
            flags(false, false, false),
            false,
            Shape::Listing,
            Format::Ndjson,
        ),
        (
            flags(false, false, false),
            false,
            Shape::Single,
            Format::Json,
        ),
    ];
    for (f, terminal, shape, want) in cases {
        assert_eq!(
            Format::choose(f, terminal, shape),
            want,
            "{f:?} {terminal} {shape:?}"
        );
    }
}

#[test]
fn events_in_each_format() {
    let events = page().events;
    let json_out = super::events(&events, Format::Json);
    let back: Vec<serde_json::Value> = serde_json::from_str(&json_out).expect("a JSON array");
    assert_eq!(back.len(), 2);
    assert_eq!(back[1]["value"], 42.5);
    assert_eq!(back[0]["data"]["path"], "/a,b");

    let nd = super::events(&events, Format::Ndjson);
    let lines: Vec<&str> = nd.lines().collect();
    assert_eq!(lines.len(), 2);
    let first: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(first["event_id"], "00000000-0000-0000-0000-000000000001");

    let csv_out = super::events(&events, Format::Csv);
    let lines: Vec<&str> = csv_out.lines().collect();
    assert_eq!(
        lines[0],
        "timestamp,session_id,category,name,value,data,event_id,received_at"
    );
    assert_eq!(
        lines[1],
        r#"2024-05-01T10:00:00.000000Z,s-1,page_interaction,page_view,,"{""host"":""example.com"",""path"":""/a,b""}",00000000-0000-0000-0000-000000000001,2024-05-01T10:00:01.000000Z"#
    );
    assert_eq!(lines.len(), 3);

    let t = super::events(&events, Format::Table);
    assert!(t.contains("│ timestamp"), "{t}");
    assert!(t.contains(r#"{"host":"example.com","path":"/a,b"}"#), "{t}");
    // The long data is cut to the column's width.
    let cut_data = cut(&compact(events[1].data.get()), DATA_WIDTH);
    assert_eq!(cut_data.chars().count(), DATA_WIDTH);
    assert!(cut_data.ends_with('…'));
    assert!(t.contains(&cut_data), "{t}");
    assert!(!t.contains("goes past"), "{t}");
    assert!(t.contains("42.5"), "{t}");
    assert_eq!(super::events(&[], Format::Table), "no events\n");
    assert_eq!(super::events(&[], Format::Json), "[]\n");
}

#[test]
fn a_session_has_a_header_then_its_events() {
    let s = session_detail();
    let t = session(&s, Format::Table);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines[0], "session_id      s-1");
    assert_eq!(lines[1], "user_id         u-1");
    assert_eq!(lines[2], "machine_id      -");
    assert!(t.contains("event_count     2\n"), "{t}");
    assert!(t.contains("┆ page_view"), "{t}");
    assert!(t.ends_with("more events: --cursor c-2\n"), "{t}");

    let j: serde_json::Value = serde_json::from_str(&session(&s, Format::Json)).expect("JSON");
    assert_eq!(j["user_id"], "u-1");
    assert_eq!(j["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(j["next_cursor"], "c-2");
    assert_eq!(session(&s, Format::Ndjson).lines().count(), 2);
    assert_eq!(session(&s, Format::Csv).lines().count(), 3);

    let se: SessionEvents = serde_json::from_str(&format!(
        r#"{{"session_id":"s-2","session":null,"events":{}}}"#,
        serde_json::to_string(&s.events).expect("JSON")
    ))
    .expect("session events");
    let t = session_events(&se, Format::Table);
    assert!(
        t.starts_with("session_id  s-2\nlifecycle   no start or end recorded\n"),
        "{t}"
    );
    assert!(t.contains("┆ cpu_load"), "{t}");
    assert_eq!(session_events(&se, Format::Ndjson).lines().count(), 2);
}

#[test]
fn an_aggregate_is_a_table_and_a_chart() {
    let a = aggregate_answer();
    let t = aggregate(&a, Format::Table);
    assert!(
        t.starts_with("machine/cpu_load: avg per hour (UTC, fill null)\n"),
        "{t}"
    );
    assert!(
        t.contains("│ 2024-05-01T11:00:00+00:00 ┆       ┆ 0     │"),
        "{t}"
    );
    let chart_lines: Vec<&str> = t.lines().rev().take(3).collect();
    assert_eq!(
        chart_lines,
        [
            format!("2024-05-01T12:00:00+00:00 │{} 12.5", "█".repeat(10)),
            "2024-05-01T11:00:00+00:00 │ -".to_owned(),
            format!("2024-05-01T10:00:00+00:00 │{} 50", "█".repeat(40)),
        ]
    );
    assert_eq!(
        aggregate(&a, Format::Csv),
        "start,value,count\n2024-05-01T10:00:00+00:00,50,2\n2024-05-01T11:00:00+00:00,,0\n2024-05-01T12:00:00+00:00,12.5,1\n"
    );
    let nd = aggregate(&a, Format::Ndjson);
    assert_eq!(
        nd.lines().next(),
        Some(r#"{"start":"2024-05-01T10:00:00+00:00","value":50.0,"count":2}"#)
    );
    let j: serde_json::Value = serde_json::from_str(&aggregate(&a, Format::Json)).expect("JSON");
    assert_eq!(j["buckets"][1]["value"], serde_json::Value::Null);
}

#[test]
fn the_chart_draws_eighths() {
    let b = |v: Option<f64>| BucketView {
        start: "t".into(),
        value: v,
        count: 1,
    };
    let cases = [
        (
            1,
            vec![b(Some(8.0)), b(Some(1.0))],
            vec!["t │█ 8", "t │▏ 1"],
        ),
        (
            2,
            vec![b(Some(16.0)), b(Some(3.0))],
            vec!["t │██ 16", "t │▍ 3"],
        ),
        (
            2,
            vec![b(Some(0.0)), b(Some(-2.0))],
            vec!["t │ 0", "t │ -2"],
        ),
        (2, vec![b(None)], vec!["t │ -"]),
    ];
    for (width, buckets, want) in cases {
        let got = chart(&buckets, width);
        let got: Vec<&str> = got.lines().collect();
        assert_eq!(got, want);
    }
}

#[test]
fn categories_and_rejected_in_each_format() {
    let c = categories_answer();
    assert_eq!(
        categories(&c, Format::Csv),
        "category,name,events,first_seen,last_seen\nmachine,cpu_load,3,2024-05-01T10:00:00.000000Z,2024-05-01T12:00:00.000000Z\n"
    );
    assert!(categories(&c, Format::Table).contains("│ machine  ┆ cpu_load ┆ 3 "));
    assert_eq!(categories(&c, Format::Ndjson).lines().count(), 1);
    let j: serde_json::Value = serde_json::from_str(&categories(&c, Format::Json)).expect("JSON");
    assert_eq!(j["categories"][0]["events"], 3);

    let r = rejected_answer();
    let t = rejected(&r, Format::Table);
    assert!(t.contains("/name: required, unknown_event_type"), "{t}");
    assert!(t.contains(r#"{"session_id":"s"}"#), "{t}");
    let csv_out = rejected(&r, Format::Csv);
    let mut reader = csv::Reader::from_reader(csv_out.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][8], r#"{"session_id": "s"}"#);
    assert!(
        rows[0][7].starts_with(r#"[{"code":"required""#)
            || rows[0][7].starts_with(r#"[{"field":"/name""#),
        "{:?}",
        &rows[0][7]
    );
    let nd = rejected(&r, Format::Ndjson);
    let back: serde_json::Value = serde_json::from_str(nd.trim_end()).expect("JSON line");
    assert_eq!(back["reasons"][0]["code"], "required");
    assert_eq!(rejected(&[], Format::Table), "no rejected events\n");
}

#[test]
fn cut_counts_characters() {
    let cases = [
        ("abc", 3, "abc"),
        ("abcd", 3, "ab…"),
        ("ééééé", 4, "ééé…"),
        ("", 0, ""),
    ];
    for (text, width, want) in cases {
        assert_eq!(cut(text, width), want);
    }
    assert_eq!(compact("{ \"a\" : [1, 2] }"), r#"{"a":[1,2]}"#);
    assert_eq!(compact("not json"), "not json");
}
