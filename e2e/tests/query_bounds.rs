//! End-to-end: the query API takes times only inside the window a query may name, from
//! 2000-01-01T00:00:00Z (`EventTime::MIN_ACCEPTED`, ingest's earliest) to
//! 2100-01-01T00:00:00Z (`EventTime::MAX_QUERYABLE`), both inclusive, on every route and in
//! every time parameter: `from`, `to` and the time inside a cursor. Anything outside is a
//! 400 in the shared error shape naming the parameter, so no answer shows a time outside
//! RFC 3339; the edges themselves are answered.

use chrono::DateTime;
use eye_e2e::{unique, wait_for, Stack};
use serde_json::{json, Value};
use std::time::Duration;

async fn get(stack: &Stack, path: &str) -> anyhow::Result<(u16, Value)> {
    let res = stack.http.get(stack.query.url(path)).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

/// The one event type stored, counted per bucket.
const AGG: &str = "/v1/aggregate?category=page_interaction&name=page_view&agg=count";

/// RFC 3339 has four-digit years only; chrono writes others with a sign (`-1199-...`).
fn is_rfc3339(text: &str) -> bool {
    let year_digits = text
        .get(..4)
        .is_some_and(|y| y.bytes().all(|b| b.is_ascii_digit()));
    year_digits && DateTime::parse_from_rfc3339(text).is_ok()
}

fn starts(body: &Value) -> Vec<String> {
    body["buckets"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(|x| x["start"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn counted(body: &Value) -> u64 {
    body["buckets"]
        .as_array()
        .map(|b| b.iter().filter_map(|x| x["count"].as_u64()).sum())
        .unwrap_or_default()
}

/// Why a 400 is not the refusal naming `field` with `code`, or `None` when it is.
fn refusal_mismatch(status: u16, body: &Value, field: &str, code: &str) -> Option<String> {
    let error = &body["error"];
    let detail = &error["details"][0];
    let right = status == 400
        && error["code"] == "invalid_parameter"
        && error["message"].is_string()
        && detail["field"] == field
        && detail["code"] == code
        && detail["message"]
            .as_str()
            .is_some_and(|m| m.contains(field));
    (!right).then(|| format!("{status} {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn query_times_outside_the_window_are_refused() -> anyhow::Result<()> {
    let stack = Stack::start("query_bounds").await?;
    let session = unique("bounds");
    let machine = unique("machine");
    let start = json!({"session_id": session, "user_id": "u", "machine_id": machine, "org_id": 7,
                       "started_at": "2021-09-26T09:00:00Z"});
    let res = stack
        .http
        .post(stack.ingest.url("/v1/sessions"))
        .json(&start)
        .send()
        .await?;
    assert_eq!(res.status(), 202);
    // One event, so that an aggregate over any range holding it has a bucket.
    let event = json!({"session_id": session, "category": "page_interaction",
                       "name": "page_view", "data": {"host": "example.com", "path": "/"},
                       "timestamp": "2021-09-26T09:15:27Z", "value": 1.5});
    assert_eq!(stack.post_events(&json!([event])).await?.status(), 202);
    wait_for(
        Duration::from_secs(60),
        "the event in an aggregate",
        || async {
            match get(&stack, AGG).await {
                Ok((200, body)) if counted(&body) == 1 => Some(()),
                _ => None,
            }
        },
    )
    .await?;
    let history = format!("/v1/machines/{machine}/events");
    wait_for(Duration::from_secs(60), "the machine's history", || async {
        match get(&stack, &history).await {
            Ok((200, body)) if body["events"].as_array().map_or(0, Vec::len) == 1 => Some(()),
            _ => None,
        }
    })
    .await?;

    let id = uuid::Uuid::now_v7().simple();
    let (before, after) = ("946684799999999", "4102444800000001");
    // (request, the parameter a 400 names, its code)
    let refused: Vec<(String, &str, &str)> = vec![
        // The far-past aggregate: its one bucket starts at `from`, shown as
        // -1199-02-15T14:13:21Z when this was answered.
        (
            format!("{AGG}&from=-99999999999"),
            "from",
            "timestamp_too_old",
        ),
        (
            format!("{AGG}&from=-99999999999999&to=2022-01-01T00:00:00Z&fill=zero"),
            "from",
            "timestamp_too_old",
        ),
        (
            format!("{AGG}&granularity=year&fill=null&from=0&to=2001-01-01T00:00:00Z"),
            "from",
            "timestamp_too_old",
        ),
        (
            format!("{AGG}&from=1999-12-31T23:59:59.999999Z"),
            "from",
            "timestamp_too_old",
        ),
        // Far future: a time of the year 9999 in a zone ahead of UTC is in the year 10000.
        (
            format!(
                "{AGG}&fill=zero&tz=Pacific/Kiritimati\
                 &from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:59Z"
            ),
            "from",
            "timestamp_in_future",
        ),
        (
            format!("{AGG}&to=2100-01-01T00:00:00.000001Z"),
            "to",
            "timestamp_in_future",
        ),
        (
            "/v1/events?to=99999999999".into(),
            "to",
            "timestamp_in_future",
        ),
        ("/v1/events?from=-1".into(), "from", "timestamp_too_old"),
        (
            format!("/v1/machines/{machine}/events?to=9999-12-31T23:59:59Z"),
            "to",
            "timestamp_in_future",
        ),
        ("/v1/rejected?from=0".into(), "from", "timestamp_too_old"),
        (
            "/v1/rejected?to=99999999999999".into(),
            "to",
            "timestamp_in_future",
        ),
        // A cursor's time is a stored time: outside the window it is no cursor given out.
        (
            format!("/v1/events?cursor={before}_{id}"),
            "cursor",
            "invalid_cursor",
        ),
        (
            format!("/v1/sessions/{session}?cursor=-5_{id}"),
            "cursor",
            "invalid_cursor",
        ),
        (
            format!("/v1/machines/{machine}/events?cursor={after}_{id}"),
            "cursor",
            "invalid_cursor",
        ),
        (
            format!("/v1/rejected?cursor={after}_{id}"),
            "cursor",
            "invalid_cursor",
        ),
        (
            format!("/v1/users/u/sessions?cursor={before}_{}", hex(&session)),
            "cursor",
            "invalid_cursor",
        ),
    ];
    let mut wrong = Vec::new();
    for (path, field, code) in &refused {
        let (status, body) = get(&stack, path).await?;
        if let Some(got) = refusal_mismatch(status, &body, field, code) {
            wrong.push(format!("GET {path}: want 400 {field} {code}, got {got}"));
        }
    }

    // The edges are answered, and every bucket start shown is RFC 3339.
    // (request, bucket starts wanted: the first and last, and how many)
    let aggregates = [
        (
            format!("{AGG}&from=2000-01-01T00:00:00Z"),
            ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00Z", 1),
        ),
        (
            format!("{AGG}&from=946684800&to=4102444800"),
            ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00Z", 1),
        ),
        // Years in New York: 2000-01-01T00:00:00Z is still 1999 there.
        (
            format!(
                "{AGG}&granularity=year&tz=America/New_York&fill=zero\
                 &from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"
            ),
            (
                "1999-01-01T00:00:00-05:00",
                "2099-01-01T00:00:00-05:00",
                101,
            ),
        ),
        (
            format!(
                "{AGG}&granularity=month&tz=Pacific/Kiritimati&fill=null\
                 &from=2099-11-15T00:00:00Z&to=2100-01-01T00:00:00Z"
            ),
            ("2099-11-01T00:00:00+14:00", "2100-01-01T00:00:00+14:00", 3),
        ),
    ];
    for (path, (first, last, n)) in &aggregates {
        let (status, body) = get(&stack, path).await?;
        let shown = starts(&body);
        let ok = status == 200
            && shown.len() == *n
            && shown.first().map(String::as_str) == Some(*first)
            && shown.last().map(String::as_str) == Some(*last)
            && shown.iter().all(|s| is_rfc3339(s));
        if !ok {
            wrong.push(format!(
                "GET {path}: want 200 with {n} buckets {first} .. {last}, got {status} {shown:?}"
            ));
        }
    }
    let listings = [
        (
            "/v1/events?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z".to_owned(),
            "events",
            1,
        ),
        (
            format!("/v1/machines/{machine}/events?from=946684800000&to=4102444800000"),
            "events",
            1,
        ),
        (
            "/v1/rejected?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z".to_owned(),
            "rejected",
            0,
        ),
    ];
    for (path, key, n) in &listings {
        let (status, body) = get(&stack, path).await?;
        let rows = body[*key].as_array().map_or(0, Vec::len);
        if status != 200 || rows != *n {
            wrong.push(format!(
                "GET {path}: want 200 with {n} {key}, got {status} {body}"
            ));
        }
    }
    stack.stop().await?;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
