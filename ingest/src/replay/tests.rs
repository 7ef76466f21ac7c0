//! The pure steps of a replay: what a request selects, and what today's rules say of a
//! quarantined record.

use super::*;

fn schemas() -> SchemaRegistry {
    SchemaRegistry::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schemas"
    )))
    .expect("the repository's schemas")
}

const VIEW: &str = r#"{"session_id": "s1", "category": "page_interaction", "name": "page_view", "data": {"host": "h", "path": "/"}, "timestamp": "2024-01-01T00:00:00Z", "sent_at": "2024-01-01T00:00:05Z"}"#;
const VIEW_WITH_ID: &str = r#"{"event_id": "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10", "session_id": "s1", "category": "page_interaction", "name": "page_view", "data": {"host": "h", "path": "/"}, "timestamp": "2024-01-01T00:00:00Z"}"#;
/// Breaks page_view's schema: no `path`.
const BAD: &str = r#"{"session_id": "s1", "category": "page_interaction", "name": "page_view", "data": {"host": "h"}, "timestamp": "2024-01-01T00:00:02Z"}"#;
const CPU: &str = r#"{"session_id": "s1", "category": "machine", "name": "cpu_load", "data": {"machine_id": "m", "unit": "percent"}, "value": 12.5, "timestamp": "2024-01-01T00:00:01Z"}"#;

/// 2024-01-01T00:00:10Z: the original receipt.
const RECEIVED_US: i64 = 1_704_067_210_000_000;

fn row(source: &str, raw: &str) -> RejectedRow {
    RejectedRow {
        rejection_id: Uuid::from_u128(42),
        received_at_us: RECEIVED_US,
        source: source.into(),
        client: "c1".into(),
        codes: vec!["schema_violation".into()],
        reasons: "[]".into(),
        raw: raw.into(),
        event_id: String::new(),
        session_id: "s1".into(),
        category: "page_interaction".into(),
        name: "page_view".into(),
        raw_bytes: raw.len() as u64,
        raw_sha256: String::new(),
    }
}

fn any_category() -> ClientRules {
    ClientRules {
        categories: None,
        unknown_types: None,
    }
}

/// The codes a verdict fails for, or the ids of the events it passes.
fn outcome(v: &Verdict) -> (Vec<String>, Vec<Uuid>) {
    match v {
        Verdict::Pass(evs) => (Vec::new(), evs.iter().map(|e| e.event_id).collect()),
        Verdict::Fail(rs) => (
            rs.iter()
                .map(|r| format!("{} {}", r.field, r.code))
                .collect(),
            Vec::new(),
        ),
    }
}

#[test]
fn records_pass_or_fail_by_todays_rules() {
    let schemas = schemas();
    let limits = Limits::default();
    let today = Today {
        limits: &limits,
        schemas: &schemas,
        unknown_types: UnknownTypePolicy::Reject,
    };
    let web_only = ClientRules {
        categories: Some(vec!["page_interaction".into()]),
        unknown_types: None,
    };
    let derived = derived_id(Uuid::from_u128(42), 0);
    let given: Uuid = "0191e4e5-6a38-7d2c-9d3e-3f1f4c1b2a10"
        .parse()
        .expect("uuid");
    let mut cut = row("ingest", VIEW);
    cut.raw_bytes = 100_000;
    let two = format!("[{VIEW}, {BAD}]");
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // (case, record, client rules, failing codes, passing ids)
    let cases: Vec<(
        &str,
        RejectedRow,
        Option<ClientRules>,
        Vec<String>,
        Vec<Uuid>,
    )> = vec![
        (
            "valid now, no event_id: the derived id",
            row("ingest", VIEW),
            Some(any_category()),
            vec![],
            vec![derived],
        ),
        (
            "valid now, the client's event_id kept",
            row("ingest", VIEW_WITH_ID),
            Some(any_category()),
            vec![],
            vec![given],
        ),
        (
            "still breaks its schema",
            row("ingest", BAD),
            Some(any_category()),
            strings(&["/data/path schema_required"]),
            vec![],
        ),
        (
            "still not JSON",
            row("ingest", "[{"),
            Some(any_category()),
            strings(&[" malformed_json"]),
            vec![],
        ),
        (
            "a category the client may not write now",
            row("ingest", CPU),
            Some(web_only),
            strings(&["/category category_not_allowed"]),
            vec![],
        ),
        (
            "its client revoked",
            row("ingest", VIEW),
            None,
            strings(&[" client_unknown"]),
            vec![],
        ),
        (
            "cut by the quarantine",
            cut,
            Some(any_category()),
            strings(&[" truncated"]),
            vec![],
        ),
        (
            "another door's protocol",
            row("ingest/segment", VIEW),
            Some(any_category()),
            strings(&[" not_replayable"]),
            vec![],
        ),
        (
            "a body of two, one still bad: the record fails, pointing at the item",
            row("ingest", &two),
            Some(any_category()),
            strings(&["/1/data/path schema_required"]),
            vec![],
        ),
    ];
    for (case, r, client, codes, ids) in cases {
        let got = outcome(&rerun(&r, today, client.as_ref()));
        assert_eq!(got, (codes, ids), "{case}");
    }
}

#[test]
fn a_replayed_event_is_the_same_every_time() {
    let schemas = schemas();
    let limits = Limits::default();
    let today = Today {
        limits: &limits,
        schemas: &schemas,
        unknown_types: UnknownTypePolicy::Reject,
    };
    let r = row("ingest", VIEW);
    let run = || match rerun(&r, today, Some(&any_category())) {
        Verdict::Pass(evs) => evs,
        Verdict::Fail(rs) => panic!("{rs:?}"),
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    // Received at the original time; the client's clock was 5 s ahead of its sent_at.
    assert_eq!(a[0].received_at.as_micros(), RECEIVED_US);
    assert_eq!(a[0].timestamp.as_micros(), 1_704_067_205_000_000);
    assert_ne!(derived_id(r.rejection_id, 0), derived_id(r.rejection_id, 1));
}

#[test]
fn a_selection_names_the_field_at_fault() {
    let req = |f: fn(&mut ReplayRequest)| {
        let mut r = ReplayRequest::default();
        f(&mut r);
        r
    };
    let code = |r: &ReplayRequest| match selection(r) {
        Ok(_) => "ok".to_owned(),
        Err(IngestError::InvalidReplay(d)) => format!("{} {}", d.field, d.code),
        Err(e) => panic!("{e}"),
    };
    let cases: Vec<(&str, ReplayRequest, &str)> = vec![
        ("everything", ReplayRequest::default(), "ok"),
        (
            "a range",
            req(|r| {
                r.from = Some("2024-01-01T00:00:00Z".into());
                r.to = Some("2024-01-02T00:00:00Z".into());
            }),
            "ok",
        ),
        (
            "a bad time",
            req(|r| r.from = Some("yesterday".into())),
            "/from invalid_time",
        ),
        (
            "an empty range",
            req(|r| {
                r.from = Some("2024-01-02T00:00:00Z".into());
                r.to = Some("2024-01-01T00:00:00Z".into());
            }),
            "/to empty_range",
        ),
        (
            "an empty client",
            req(|r| r.client = Some(String::new())),
            "/client empty",
        ),
    ];
    for (case, r, want) in cases {
        assert_eq!(code(&r), want, "{case}");
    }
    let f = selection(&req(|r| {
        r.reason = Some("schema_violation".into());
        r.client = Some("c1".into());
        r.category = Some("machine".into());
        r.name = Some("cpu_load".into());
    }))
    .expect("valid");
    assert_eq!(
        (f.reason, f.client, f.category, f.name, f.limit),
        (
            Some("schema_violation".into()),
            Some("c1".into()),
            Some("machine".into()),
            Some("cpu_load".into()),
            PAGE_ROWS
        )
    );
}

#[test]
fn the_tally_counts_each_original_reason() {
    let mut t = Tally::default();
    t.verdict(&["a".into(), "b".into()], true);
    t.verdict(&["a".into(), "a".into()], false);
    t.verdict(&[], false);
    let got: Vec<(String, u64, u64)> = t
        .by_reason
        .iter()
        .map(|(k, v)| (k.clone(), v.pass, v.fail))
        .collect();
    assert_eq!(
        got,
        [
            ("(none)".to_owned(), 0, 1),
            ("a".to_owned(), 1, 1),
            ("b".to_owned(), 1, 0)
        ]
    );
}
