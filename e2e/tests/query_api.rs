//! End-to-end: the query API's session, history and aggregation endpoints, on data sent
//! through ingest, Kafka and the consumer, with answers computed independently here.

use chrono::{
    DateTime, Datelike, Duration as Days, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use eye_e2e::{unique, wait_for, Stack};
use serde_json::{json, Value};
use std::time::Duration;

async fn get(stack: &Stack, path: &str) -> anyhow::Result<(u16, Value)> {
    let res = stack.http.get(stack.query.url(path)).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

async fn post(stack: &Stack, path: &str, body: Value) -> anyhow::Result<u16> {
    let res = stack
        .http
        .post(stack.ingest.url(path))
        .json(&body)
        .send()
        .await?;
    Ok(res.status().as_u16())
}

fn page_view(session: &str, ts: &str, value: Option<f64>) -> Value {
    let mut ev = json!({
        "session_id": session,
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "example.com", "path": "/"},
        "timestamp": ts,
    });
    if let Some(v) = value {
        ev["value"] = json!(v);
    }
    ev
}

/// Polls `path` until `ready` holds for its 200 body.
async fn wait_body(
    stack: &Stack,
    path: &str,
    ready: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    wait_for(Duration::from_secs(60), path, || async {
        match get(stack, path).await {
            Ok((200, body)) if ready(&body) => Some(body),
            _ => None,
        }
    })
    .await
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_machines_and_users() -> anyhow::Result<()> {
    let stack = Stack::start("history").await?;
    let id = unique("h");
    let (user1, user2) = (format!("user-1-{id}"), format!("user/2 {id}"));
    let (m1, m2) = (format!("machine-1-{id}"), format!("machine-2-{id}"));
    let s = |n: u32| format!("{id}-s{n}");
    // (session, user, machine, started_at, event times)
    let sessions = [
        (
            s(1),
            &user1,
            &m1,
            "2026-03-01 10:00:00",
            vec!["10:00:05", "10:00:01", "10:00:09"],
        ),
        (
            s(2),
            &user1,
            &m1,
            "2026-03-02 10:00:00",
            vec!["10:00:02", "10:00:03"],
        ),
        (s(3), &user2, &m1, "2026-03-01 12:00:00", vec!["12:00:00"]),
        (s(4), &user1, &m2, "2026-03-03 10:00:00", vec!["10:00:00"]),
    ];
    for (session, user, machine, started, times) in &sessions {
        let start = json!({"session_id": session, "user_id": user, "machine_id": machine,
                           "org_id": 7, "started_at": started});
        assert_eq!(post(&stack, "/v1/sessions", start).await?, 202);
        let day = &started[..10];
        let events: Vec<Value> = times
            .iter()
            .map(|t| page_view(session, &format!("{day} {t}"), None))
            .collect();
        assert_eq!(
            stack.post_events(&Value::Array(events)).await?.status(),
            202
        );
    }
    let end = json!({"ended_at": "2026-03-01 10:30:00"});
    assert_eq!(
        post(&stack, &format!("/v1/sessions/{}/end", s(1)), end).await?,
        202
    );

    // The session: metadata, statistics and its events in time order.
    let body = wait_body(&stack, &format!("/v1/sessions/{}", s(1)), |b| {
        b["event_count"] == 3 && b["ended_at"].is_string()
    })
    .await?;
    let times: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["timestamp"].as_str())
        .collect();
    assert_eq!(
        times,
        [
            "2026-03-01T10:00:01.000000Z",
            "2026-03-01T10:00:05.000000Z",
            "2026-03-01T10:00:09.000000Z"
        ]
    );
    let summary = |b: &Value| {
        let mut b = b.clone();
        if let Some(o) = b.as_object_mut() {
            o.remove("events");
            o.remove("next_cursor");
        }
        b
    };
    assert_eq!(
        summary(&body),
        json!({"session_id": s(1), "user_id": user1, "machine_id": m1, "org_id": "7",
               "started_at": "2026-03-01T10:00:00.000000Z", "ended_at": "2026-03-01T10:30:00.000000Z",
               "event_count": 3, "first_event_at": "2026-03-01T10:00:01.000000Z",
               "last_event_at": "2026-03-01T10:00:09.000000Z"})
    );
    assert_eq!(body["next_cursor"], Value::Null);
    // Pages of two: every event once, in order.
    let walked = stack
        .walk_pages(&format!("/v1/sessions/{}?limit=2", s(1)), "events")
        .await?;
    let walked: Vec<&str> = walked
        .iter()
        .filter_map(|e| e["timestamp"].as_str())
        .collect();
    assert_eq!(walked, times);
    let (status, body) = get(&stack, &format!("/v1/sessions/{id}-nobody")).await?;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("session_not_found"))
    );

    // A machine's history across sessions and users, in time order.
    let machine_path = format!("/v1/machines/{m1}/events?limit=2");
    wait_body(&stack, &format!("/v1/machines/{m1}/events"), |b| {
        len(&b["events"]) == 6
    })
    .await?;
    let history = stack.walk_pages(&machine_path, "events").await?;
    let seen: Vec<(String, String)> = history
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_str().unwrap_or("").to_owned(),
                e["session_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut want: Vec<(String, String)> = sessions[..3]
        .iter()
        .flat_map(|(session, _, _, started, times)| {
            times
                .iter()
                .map(move |t| (format!("{}T{t}.000000Z", &started[..10]), session.clone()))
        })
        .collect();
    want.sort();
    assert_eq!(seen, want);
    let (_, newest) = get(
        &stack,
        &format!("/v1/machines/{m1}/events?order=desc&limit=1&from=2026-03-01T11:00:00Z"),
    )
    .await?;
    assert_eq!(newest["events"][0]["session_id"], s(2));
    assert_eq!(
        newest["events"][0]["timestamp"],
        "2026-03-02T10:00:03.000000Z"
    );

    // A user's sessions, newest start first, one page at a time.
    let user_path = format!("/v1/users/{}/sessions", urlencode(&user1));
    wait_body(&stack, &user_path, |b| len(&b["sessions"]) == 3).await?;
    let listed = stack
        .walk_pages(&format!("{user_path}?limit=1"), "sessions")
        .await?;
    let ids: Vec<&str> = listed
        .iter()
        .filter_map(|x| x["session_id"].as_str())
        .collect();
    assert_eq!(ids, [s(4), s(2), s(1)]);
    assert_eq!(
        listed[2],
        json!({"session_id": s(1), "user_id": user1, "machine_id": m1, "org_id": "7",
               "started_at": "2026-03-01T10:00:00.000000Z", "ended_at": "2026-03-01T10:30:00.000000Z",
               "event_count": 3, "first_event_at": "2026-03-01T10:00:01.000000Z",
               "last_event_at": "2026-03-01T10:00:09.000000Z"})
    );
    let other = wait_body(
        &stack,
        &format!("/v1/users/{}/sessions", urlencode(&user2)),
        |b| len(&b["sessions"]) == 1,
    )
    .await?;
    assert_eq!(other["sessions"][0]["session_id"], s(3));
    let (status, body) = get(&stack, &format!("/v1/users/{id}-nobody/sessions")).await?;
    assert_eq!((status, len(&body["sessions"])), (200, 0));

    for (path, field) in [
        ("/v1/machines/%0A/events".to_owned(), "machine_id"),
        (
            format!("/v1/machines/{m1}/events?session_id=x"),
            "session_id",
        ),
        (format!("/v1/machines/{m1}/events?cursor=1_x"), "cursor"),
        (format!("/v1/users/{id}/sessions?cursor=zz"), "cursor"),
        (format!("/v1/users/{id}/sessions?limit=0"), "limit"),
        ("/v1/sessions/x?cursor=nope".to_owned(), "cursor"),
        ("/v1/sessions/x?order=desc".to_owned(), "order"),
    ] {
        let (status, body) = get(&stack, &path).await?;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            body["error"]["details"][0]["field"], field,
            "{path}: {body}"
        );
    }
    stack.stop().await
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bucket holding `t`, computed here from local calendar fields, independently of the
/// service's calendar code.
fn bucket(g: &str, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let l = t.with_timezone(&tz);
    let local = |d: NaiveDate, h: u32, m: u32| {
        tz.with_ymd_and_hms(d.year(), d.month(), d.day(), h, m, 0)
            .earliest()
            .expect("test data avoids skipped local times")
            .with_timezone(&Utc)
    };
    let date = l.date_naive();
    match g {
        "minute" => local(date, l.hour(), l.minute()),
        "hour" => local(date, l.hour(), 0),
        "day" => local(date, 0, 0),
        "week" => local(
            date - Days::days(i64::from(date.weekday().num_days_from_monday())),
            0,
            0,
        ),
        "month" => local(
            NaiveDate::from_ymd_opt(date.year(), date.month(), 1).expect("date"),
            0,
            0,
        ),
        "year" => local(
            NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("date"),
            0,
            0,
        ),
        other => panic!("{other}"),
    }
}

/// Aggregates values the plain way: nearest-rank quantiles at index floor(q * n).
fn aggregate(agg: &str, values: &[f64], events: usize) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((p * v.len() as f64) as usize).min(v.len() - 1)];
    match agg {
        "avg" => v.iter().sum::<f64>() / v.len() as f64,
        "min" => v[0],
        "max" => v[v.len() - 1],
        "sum" => v.iter().sum(),
        "count" => events as f64,
        "p50" => q(0.5),
        "p90" => q(0.9),
        "p95" => q(0.95),
        "p99" => q(0.99),
        other => panic!("{other}"),
    }
}

fn rfc3339(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn aggregates_match_an_independent_computation() -> anyhow::Result<()> {
    let stack = Stack::start("aggregate").await?;
    let session = unique("agg");
    // Around Europe's spring daylight-saving shift (2026-03-29), across a month end.
    let mut data: Vec<(String, Option<f64>)> = [
        ("2026-03-27T10:15:00Z", Some(1.0)),
        ("2026-03-27T10:15:40Z", Some(9.5)),
        ("2026-03-27T10:45:00Z", Some(4.0)),
        ("2026-03-28T22:30:00Z", Some(2.0)),
        ("2026-03-28T23:10:00Z", Some(8.0)),
        ("2026-03-29T09:00:00Z", Some(3.0)),
        ("2026-03-29T09:00:01Z", Some(-2.5)),
        ("2026-03-30T00:20:00Z", Some(5.0)),
        ("2026-03-30T19:00:00Z", Some(7.25)),
        ("2026-04-02T12:00:00Z", Some(6.0)),
        // No value: counted by agg=count only.
        ("2026-04-02T12:00:30Z", None),
        ("2026-03-27T10:16:00Z", None),
    ]
    .iter()
    .map(|(t, v)| ((*t).to_owned(), *v))
    .collect();
    // A hundred values in one hour, sent in a scrambled order, tell the quantiles apart.
    for i in 0..100u32 {
        let v = (i * 37) % 100;
        data.push((
            format!("2026-03-30T08:{:02}:{:02}Z", i / 60, i % 60),
            Some(f64::from(v)),
        ));
    }
    let mut events: Vec<Value> = data
        .iter()
        .map(|(ts, v)| {
            let mut ev = page_view(&session, ts, *v);
            ev["event_id"] = json!(uuid::Uuid::now_v7().to_string());
            ev
        })
        .collect();
    // Another type's values must not leak in.
    let mut click = page_view(&session, "2026-03-27T10:15:00Z", Some(1000.0));
    click["name"] = json!("cta_click");
    click["data"]["element"] = json!("buy");
    events.push(click);
    assert_eq!(
        stack
            .post_events(&Value::Array(events.clone()))
            .await?
            .status(),
        202
    );
    // Delivered twice: aggregated once.
    assert_eq!(stack.post_events(&events[2]).await?.status(), 202);
    assert_eq!(stack.post_events(&events[3]).await?.status(), 202);
    wait_body(
        &stack,
        "/v1/aggregate?category=page_interaction&name=page_view&agg=count",
        |b| b["buckets"][0]["count"] == 112,
    )
    .await?;

    let parsed: Vec<(DateTime<Utc>, Option<f64>)> = data
        .iter()
        .map(|(ts, v)| (ts.parse().expect("time"), *v))
        .collect();
    let (from, to) = ("2026-03-27T00:00:00Z", "2026-04-03T00:00:00Z");
    let from_t: DateTime<Utc> = from.parse()?;
    let mut checked = 0;
    for zone in ["UTC", "Europe/Paris", "Asia/Kolkata"] {
        let tz: Tz = zone.parse().expect("zone");
        for g in ["minute", "hour", "day", "week", "month", "year", "none"] {
            // Minutes over a week would be 10,080 buckets: one hour of them instead.
            let (f, t) = if g == "minute" {
                ("2026-03-27T10:00:00Z", "2026-03-27T11:00:00Z")
            } else {
                (from, to)
            };
            let (ft, tt): (DateTime<Utc>, DateTime<Utc>) = (f.parse()?, t.parse()?);
            for agg in [
                "avg", "min", "max", "sum", "count", "p50", "p90", "p95", "p99",
            ] {
                let mut groups: std::collections::BTreeMap<DateTime<Utc>, (Vec<f64>, usize)> =
                    Default::default();
                for (at, v) in &parsed {
                    if *at < ft || *at >= tt || (agg != "count" && v.is_none()) {
                        continue;
                    }
                    let start = if g == "none" { ft } else { bucket(g, *at, tz) };
                    let e = groups.entry(start).or_default();
                    e.0.extend(*v);
                    e.1 += 1;
                }
                let want: Vec<Value> = groups
                    .iter()
                    .map(|(start, (values, n))| {
                        json!({"start": rfc3339(*start, tz), "value": aggregate(agg, values, *n), "count": n})
                    })
                    .collect();
                let path = format!(
                    "/v1/aggregate?category=page_interaction&name=page_view&granularity={g}&agg={agg}&tz={zone}&from={f}&to={t}"
                );
                let (status, body) = get(&stack, &path).await?;
                assert_eq!(status, 200, "{path}: {body}");
                assert_eq!(body["buckets"], Value::Array(want), "{path}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 7 * 9);

    // Paris days, every one of the range: empty ones filled as asked.
    let paris: Tz = "Europe/Paris".parse().expect("zone");
    let days = [
        ("2026-03-27T00:00:00+01:00", 3, Some(14.5)),
        ("2026-03-28T00:00:00+01:00", 1, Some(2.0)),
        ("2026-03-29T00:00:00+01:00", 3, Some(8.5)),
        ("2026-03-30T00:00:00+02:00", 102, Some(4962.25)),
        ("2026-03-31T00:00:00+02:00", 0, None),
        ("2026-04-01T00:00:00+02:00", 0, None),
        ("2026-04-02T00:00:00+02:00", 1, Some(6.0)),
    ];
    for (fill, empty) in [("zero", json!(0.0)), ("null", Value::Null)] {
        let path = format!(
            "/v1/aggregate?category=page_interaction&name=page_view&granularity=day&agg=sum&tz=Europe/Paris&fill={fill}&from=2026-03-26T23:00:00Z&to=2026-04-02T22:00:00Z"
        );
        let (status, body) = get(&stack, &path).await?;
        assert_eq!(status, 200, "{body}");
        let want: Vec<Value> = days
            .iter()
            .map(|(start, count, v)| {
                json!({"start": start, "value": v.map_or(empty.clone(), |x| json!(x)), "count": count})
            })
            .collect();
        assert_eq!(body["buckets"], Value::Array(want), "{fill}");
    }
    // No range given: one bucket starting at the first event.
    let (_, body) = get(
        &stack,
        "/v1/aggregate?category=page_interaction&name=page_view&agg=max&tz=Europe/Paris",
    )
    .await?;
    assert_eq!(
        body["buckets"],
        json!([{"start": rfc3339(from_t + Days::minutes(10 * 60 + 15), paris), "value": 99.0, "count": 110}])
    );
    assert_eq!(body["granularity"], "none");
    assert_eq!(body["agg"], "max");

    for (query, field, code) in [
        ("name=page_view", "category", "required"),
        ("category=page_interaction", "name", "required"),
        ("granularity=fortnight", "granularity", "invalid_choice"),
        ("agg=median", "agg", "invalid_choice"),
        ("fill=linear", "fill", "invalid_choice"),
        ("tz=Mars/Olympus", "tz", "invalid_timezone"),
        (
            "from=2026-04-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "from",
            "from_after_to",
        ),
        (
            "granularity=minute&from=2026-03-27T00:00:00Z&to=2026-04-03T00:00:00Z",
            "granularity",
            "too_many_buckets",
        ),
        (
            "granularity=hour&fill=zero&from=2025-01-01T00:00:00Z&to=2026-04-03T00:00:00Z",
            "granularity",
            "too_many_buckets",
        ),
        ("limit=5", "limit", "unknown_parameter"),
    ] {
        let full = if query.starts_with("name=") || query.starts_with("category=") {
            query.to_owned()
        } else {
            format!("category=page_interaction&name=page_view&{query}")
        };
        let (status, body) = get(&stack, &format!("/v1/aggregate?{full}")).await?;
        assert_eq!(status, 400, "{full}: {body}");
        let detail = &body["error"]["details"][0];
        assert_eq!(
            (&detail["field"], &detail["code"]),
            (&json!(field), &json!(code)),
            "{full}: {body}"
        );
        if code == "too_many_buckets" {
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("10000"),
                "{body}"
            );
        }
    }
    stack.stop().await
}
