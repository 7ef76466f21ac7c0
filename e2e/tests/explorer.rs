//! End-to-end: the explorer (`/ui/`) in Debian's headless Chromium, against the real
//! pipeline, over 1,000,000 stored events.
//!
//! The known data goes through ingest (a session with its start and end, a paged listing,
//! hourly measurements and an event rejected with a `<script>` in it); a million other
//! events are written straight into the store first, so that every view answers over a
//! realistic table. The browser is driven by `web/test/explorer.mjs` (playwright-core, the
//! driver the front end is written with), which only observes and reports: what each view
//! showed, console errors, Performance API timings and a screenshot per view. Every check
//! of what the views showed is made here, against what was sent and what the API answers.
//!
//! Needs Node.js, `web/node_modules` and Chromium: `deploy/ui.sh deps browser` installs them
//! (`make test` runs it first).

use anyhow::{ensure, Context};
use chrono::{DateTime, Duration as Span, DurationRound, SecondsFormat, Utc};
use eye_e2e::{test_auth, wait_for, Stack};
use eye_store::EventRow;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

const BACKGROUND_EVENTS: usize = 1_000_000;
const LISTING_EVENTS: usize = 250;
const SESSION_EVENTS: usize = 12;
const TREND_HOURS: i64 = 6;
/// Markup that would run if rendered as HTML; no `"`, which the raw JSON payload escapes.
const MARKER: &str = "<script>window.__eyePwned=1</script><img src=x onerror=window.__eyePwned=2>";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The browser, Node.js and the driver's packages, or what to run to get them.
fn browser_tools() -> anyhow::Result<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(
        std::env::var("EYE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
    );
    let playwright = root().join("web/node_modules/playwright-core");
    ensure!(
        chromium.exists() && playwright.exists(),
        "the browser test needs {} and {}: run deploy/ui.sh deps browser (make test does)",
        chromium.display(),
        playwright.display()
    );
    let node = which("node").context("node is not on PATH (deploy/ui.sh deps needs it too)")?;
    Ok((node, chromium))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A year of web and machine sessions, written as the consumer writes them.
async fn store_background(stack: &Stack, now: DateTime<Utc>) -> anyhow::Result<()> {
    const TYPES: [(&str, &str, bool); 5] = [
        ("page_interaction", "page_view", false),
        ("page_interaction", "cta_click", false),
        ("form_interaction", "submit", false),
        ("machine", "cpu_load", true),
        ("machine", "memory_used", true),
    ];
    const PER_SESSION: usize = 500;
    let store = stack.store()?;
    let started = Instant::now();
    let year_us = Span::days(365).num_microseconds().expect("fits");
    let end_us = now.timestamp_micros() - Span::days(1).num_microseconds().expect("fits");
    for chunk in 0..BACKGROUND_EVENTS / 100_000 {
        let rows: Vec<EventRow> = (0..100_000)
            .map(|i| {
                let n = chunk * 100_000 + i;
                let session = n / PER_SESSION;
                let (category, name, measured) = TYPES[n % TYPES.len()];
                // Spread over the year: each session's events a second apart.
                let ts_us = end_us - year_us
                    + (session as i64 * 15_700_000_000) % year_us
                    + (n % PER_SESSION) as i64 * 1_000_000;
                EventRow {
                    event_id: Uuid::from_u128(0xb0_0000_0000 + n as u128),
                    session_id: format!("bg-{session}"),
                    category: category.to_owned(),
                    name: name.to_owned(),
                    ts_us,
                    received_at_us: ts_us + 50_000,
                    data: format!("{{\"n\":{n}}}"),
                    value: measured.then_some((n % 97) as f64),
                    client_ts_us: ts_us,
                    sent_at_us: None,
                }
            })
            .collect();
        store.insert_events(&rows).await?;
    }
    println!(
        "background: {BACKGROUND_EVENTS} events stored in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn event(session: &str, category: &str, name: &str, at: DateTime<Utc>, data: Value) -> Value {
    json!({
        "event_id": Uuid::now_v7().to_string(),
        "session_id": session,
        "category": category,
        "name": name,
        "timestamp": rfc3339(at),
        "data": data,
    })
}

async fn send(stack: &Stack, events: &[Value]) -> anyhow::Result<Value> {
    let mut answers = Vec::new();
    for batch in events.chunks(500) {
        let res = stack.post_events(&Value::Array(batch.to_vec())).await?;
        let status = res.status();
        let body: Value = res.json().await?;
        ensure!(status.is_success(), "ingest answered {status}: {body}");
        answers.push(body);
    }
    Ok(Value::Array(answers))
}

async fn post(stack: &Stack, path: &str, body: Value) -> anyhow::Result<()> {
    let res = stack
        .http
        .post(stack.ingest.url(path))
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    ensure!(
        status.is_success(),
        "{path}: {status} {}",
        res.text().await?
    );
    Ok(())
}

async fn get(stack: &Stack, path_and_query: &str) -> anyhow::Result<Value> {
    let res = stack
        .http
        .get(stack.query.url(path_and_query))
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    ensure!(status.is_success(), "{path_and_query}: {status} {body}");
    Ok(body)
}

fn ids(values: &Value) -> Vec<String> {
    values
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_explores_sessions_events_trends_and_rejections_in_a_real_browser(
) -> anyhow::Result<()> {
    let (node, chromium) = browser_tools()?;
    let stack = Stack::start_with("explorer", &[], &[("UNKNOWN_TYPE_POLICY", "accept")]).await?;
    let now = Utc::now();
    store_background(&stack, now).await?;

    // A session of a known user on a known machine: started, twelve events, ended.
    let suffix = &Uuid::now_v7().simple().to_string()[20..];
    let (session, user, machine) = (
        format!("ui-session-{suffix}"),
        format!("ui-user-{suffix}"),
        format!("ui-machine-{suffix}"),
    );
    let t0 = now.duration_trunc(Span::hours(1))? - Span::hours(TREND_HOURS + 2);
    post(
        &stack,
        "/v1/sessions",
        json!({"session_id": session, "user_id": user, "machine_id": machine, "org_id": 7,
               "started_at": rfc3339(t0)}),
    )
    .await?;
    let mut session_events: Vec<Value> = (0..SESSION_EVENTS)
        .map(|i| {
            let (category, name) = [("page_interaction", "page_view"), ("ui_flow", "step")][i % 2];
            event(
                &session,
                category,
                name,
                t0 + Span::seconds(37 * i as i64 + 1),
                json!({"host": "shop.example", "path": format!("/step/{i}"), "step": i}),
            )
        })
        .collect();
    // Sent newest first: the timeline must order them.
    session_events.reverse();
    send(&stack, &session_events).await?;
    session_events.reverse();
    post(
        &stack,
        &format!("/v1/sessions/{session}/end"),
        json!({"ended_at": rfc3339(t0 + Span::minutes(10))}),
    )
    .await?;
    let want_session: Vec<String> = session_events
        .iter()
        .map(|e| e["event_id"].as_str().expect("set").to_owned())
        .collect();

    // A listing of 250 events, more than two pages.
    let listing_category = format!("ui_list_{suffix}");
    let listing: Vec<Value> = (0..LISTING_EVENTS)
        .map(|i| {
            event(
                &format!("ui-list-{}", i % 25),
                &listing_category,
                "item",
                t0 + Span::seconds(i as i64),
                json!({"i": i}),
            )
        })
        .collect();
    send(&stack, &listing).await?;
    let want_listing: BTreeSet<String> = listing
        .iter()
        .map(|e| e["event_id"].as_str().expect("set").to_owned())
        .collect();

    // Hourly measurements: hour h holds values h, h+1, ..., h+4.
    let trend_category = format!("ui_metric_{suffix}");
    let trend_from = t0;
    let trend_to = t0 + Span::hours(TREND_HOURS);
    let mut measurements = Vec::new();
    let mut want_avg = BTreeMap::new();
    for h in 0..TREND_HOURS {
        let values: Vec<f64> = (0..5).map(|k| (h + k) as f64 * 1.5).collect();
        want_avg.insert(
            t0 + Span::hours(h),
            values.iter().sum::<f64>() / values.len() as f64,
        );
        for (k, v) in values.iter().enumerate() {
            let mut e = event(
                &format!("ui-metric-{h}"),
                &trend_category,
                "latency",
                t0 + Span::hours(h) + Span::minutes(11 * k as i64),
                json!({}),
            );
            e["value"] = json!(v);
            measurements.push(e);
        }
    }
    send(&stack, &measurements).await?;

    // Rejected: a timestamp that is no time, with markup in the payload.
    let rejected_session = format!("ui-rejected-{suffix}");
    let res = stack
        .post_events(
            &json!([{"session_id": rejected_session, "category": "ui_flow", "name": "step",
                 "timestamp": "not a time", "data": {"note": MARKER}}]),
        )
        .await?;
    ensure!(res.status() == 400, "the bad event: {}", res.status());
    let answer: Value = res.json().await?;
    println!("rejected event's answer: {answer}");

    // Everything queryable before the browser opens.
    let listing_query = format!(
        "category={listing_category}&name=item&from={}&to={}",
        rfc3339(t0),
        rfc3339(t0 + Span::seconds(LISTING_EVENTS as i64))
    );
    wait_for(Duration::from_secs(90), "the known data queryable", || {
        let (stack, session, listing_query) = (&stack, &session, &listing_query);
        async move {
            let (status, body) = stack.session(session).await.ok()?;
            let n = body["events"].as_array().map_or(0, Vec::len);
            let listed = stack
                .walk_pages(&format!("/v1/events?{listing_query}&limit=1000"), "events")
                .await
                .ok()?
                .len();
            let rejected = get(stack, "/v1/rejected?limit=1000").await.ok()?;
            let quarantined = rejected["rejected"].as_array().is_some_and(|r| {
                r.iter().any(|r| {
                    r["raw"]
                        .as_str()
                        .is_some_and(|raw| raw.contains("__eyePwned"))
                })
            });
            (status == 200 && n == SESSION_EVENTS && listed == LISTING_EVENTS && quarantined)
                .then_some(())
        }
    })
    .await?;
    let aggregate = get(
        &stack,
        &format!(
            "/v1/aggregate?category={trend_category}&name=latency&from={}&to={}&granularity=hour&agg=avg&tz=UTC",
            rfc3339(trend_from),
            rfc3339(trend_to)
        ),
    )
    .await?;
    let api_points: Vec<(String, f64, u64)> = aggregate["buckets"]
        .as_array()
        .context("buckets")?
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap_or_default().to_owned(),
                b["value"].as_f64().unwrap_or(f64::NAN),
                b["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    ensure!(
        api_points.len() == TREND_HOURS as usize,
        "aggregate: {aggregate}"
    );
    for (start, value, count) in &api_points {
        let at = DateTime::parse_from_rfc3339(start)?.with_timezone(&Utc);
        let want = want_avg
            .get(&at)
            .with_context(|| format!("bucket {start} not sent"))?;
        ensure!(
            (value - want).abs() < 1e-9 && *count == 5,
            "{start}: {value} × {count}"
        );
    }

    // A year of daily buckets over the background's machine measurements.
    let year_to = now.duration_trunc(Span::days(1))?;
    let year_from = year_to - Span::days(366);
    let year = get(
        &stack,
        &format!(
            "/v1/aggregate?category=machine&name=cpu_load&from={}&to={}&granularity=day&agg=avg&tz=UTC",
            rfc3339(year_from),
            rfc3339(year_to)
        ),
    )
    .await?;
    let year_buckets = year["buckets"].as_array().map_or(0, Vec::len);
    ensure!(
        year_buckets >= 300,
        "a year of daily buckets: {year_buckets}"
    );

    // The browser.
    let shots = root().join("target/test-output/ui");
    std::fs::create_dir_all(&shots)?;
    let input = json!({
        "base_url": stack.query.url(""),
        "api_key": test_auth().api_key,
        "client_id": test_auth().client_id,
        "client_secret": test_auth().client_secret,
        "screenshots_dir": shots,
        "session_id": session,
        "user_id": user,
        "machine_id": machine,
        "listing": {"category": listing_category, "name": "item", "from": rfc3339(t0),
                    "to": rfc3339(t0 + Span::seconds(LISTING_EVENTS as i64))},
        "trend": {"category": trend_category, "name": "latency", "from": rfc3339(trend_from),
                  "to": rfc3339(trend_to), "granularity": "hour", "agg": "avg", "tz": "UTC"},
        "trend_year": {"category": "machine", "name": "cpu_load", "from": rfc3339(year_from),
                       "to": rfc3339(year_to), "granularity": "day", "agg": "avg", "tz": "UTC"},
        "rejected": {"marker": MARKER},
        "live": {"ingest_url": stack.ingest.url(""), "category": format!("ui_live_{suffix}"),
                 "name": "tick", "count": 3},
    });
    let input_path = std::env::temp_dir().join(format!("eye-explorer-{suffix}.json"));
    std::fs::write(&input_path, serde_json::to_vec_pretty(&input)?)?;
    let started = Instant::now();
    let out = tokio::process::Command::new(&node)
        .arg(root().join("web/test/explorer.mjs"))
        .arg(&input_path)
        .env("EYE_CHROMIUM", &chromium)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "the driver failed ({}):\n{stderr}",
        out.status
    );
    println!(
        "driver: {:.1} s; its log:\n{stderr}",
        started.elapsed().as_secs_f64()
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("driver output: {}", String::from_utf8_lossy(&out.stdout)))?;

    // Sign-in: the credential lives in the tab's session storage, and nowhere else.
    let signin = &report["signin"];
    for (check, want) in [
        ("api_key_ok", true),
        ("token_in_session_storage", true),
        ("cleared_on_sign_out", true),
        ("credential_in_url", false),
        ("unauthorized_returns_to_signin", true),
    ] {
        ensure!(signin[check] == want, "sign-in {check}: {signin}");
    }

    // The session: exactly its events, in time order.
    ensure!(
        ids(&report["session_event_ids"]) == want_session,
        "session view showed {}, want {want_session:?}",
        report["session_event_ids"]
    );

    // The listing, paged: every event once.
    let shown = ids(&report["listing_event_ids"]);
    let distinct: BTreeSet<String> = shown.iter().cloned().collect();
    ensure!(
        shown.len() == distinct.len(),
        "listing showed {} rows for {} events",
        shown.len(),
        distinct.len()
    );
    ensure!(
        distinct == want_listing,
        "listing: {} of {} events shown",
        distinct.intersection(&want_listing).count(),
        want_listing.len()
    );

    // Live mode: what was sent after the view opened appeared without a reload, including an
    // event timed before those already shown (a late arrival).
    let live = &report["live"];
    let sent: BTreeSet<String> = ids(&live["sent"]).into_iter().collect();
    let shown: BTreeSet<String> = ids(&live["shown"]).into_iter().collect();
    let late = live["late"].as_str().unwrap_or_default();
    ensure!(
        sent.len() == 4 && sent.contains(late),
        "live mode: the driver sent {sent:?}, late {late:?}"
    );
    ensure!(
        shown.contains(late),
        "live mode did not show the late event {late}: showed {shown:?} of {sent:?}"
    );
    ensure!(sent == shown, "live mode showed {shown:?} of {sent:?}");
    println!(
        "live mode: 3 events shown {} ms after sending began, then a late one",
        live["ms"]
    );

    // The trend's points are the API's.
    let drawn: Vec<(String, f64, u64)> = report["trend_points"]
        .as_array()
        .context("trend_points")?
        .iter()
        .map(|p| {
            (
                p["start"].as_str().unwrap_or_default().to_owned(),
                p["value"].as_f64().unwrap_or(f64::NAN),
                p["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    ensure!(
        drawn.len() == api_points.len(),
        "trend drew {drawn:?}, the API answered {api_points:?}"
    );
    for ((ds, dv, dc), (s, v, c)) in drawn.iter().zip(&api_points) {
        let same_start =
            DateTime::parse_from_rfc3339(ds).ok() == DateTime::parse_from_rfc3339(s).ok();
        ensure!(
            same_start && (dv - v).abs() < 1e-9 && dc == c,
            "trend drew {drawn:?}, the API answered {api_points:?}"
        );
    }
    ensure!(
        !report["trend_tooltip"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "hovering the chart showed nothing"
    );

    ensure!(
        report["trend_year_points"] == year_buckets,
        "a year of daily buckets: {} drawn, the API answered {year_buckets}",
        report["trend_year_points"]
    );

    // The rejected payload, shown as text, ran nothing.
    let rejected = &report["rejected"];
    ensure!(rejected["found"] == true, "rejected: {rejected}");
    ensure!(
        rejected["text"]
            .as_str()
            .unwrap_or_default()
            .contains("<script>window.__eyePwned=1</script>"),
        "the payload is not shown verbatim: {rejected}"
    );
    ensure!(
        rejected["script_executed"] == false,
        "the payload ran: {rejected}"
    );

    // Find by user and by machine.
    ensure!(
        ids(&report["user_sessions"]).contains(&session),
        "user's sessions: {}",
        report["user_sessions"]
    );
    ensure!(
        ids(&report["machine_event_ids"])
            .iter()
            .collect::<BTreeSet<_>>()
            == want_session.iter().collect::<BTreeSet<_>>(),
        "machine's events: {}",
        report["machine_event_ids"]
    );

    // The catalogue counts what is stored.
    let categories = get(&stack, "/v1/categories").await?;
    let catalogue = report["catalogue_types"]
        .as_array()
        .context("catalogue_types")?;
    for c in categories["categories"].as_array().context("categories")? {
        let shown = catalogue
            .iter()
            .find(|t| t["category"] == c["category"] && t["name"] == c["name"]);
        ensure!(
            shown.is_some_and(|t| t["events"] == c["events"]),
            "catalogue row for {c}: {shown:?}"
        );
    }
    let with_schema = catalogue.iter().filter(|t| t["has_schema"] == true).count();
    ensure!(
        with_schema >= 5,
        "types shown with their schema: {with_schema}"
    );
    ensure!(
        report["pipeline"]["shown"] == true,
        "pipeline: {}",
        report["pipeline"]
    );

    // No view logged an error. The driver's last step sends a bogus credential on purpose,
    // and Chromium logs that 401 as an error: that step is checked above, by its reason.
    let errors = report["console_errors"]
        .as_object()
        .context("console_errors")?;
    ensure!(
        errors.len() >= 8,
        "console errors were read for {} views",
        errors.len()
    );
    for (view, list) in errors {
        if view == "unauthorized" {
            continue;
        }
        ensure!(
            list.as_array().is_some_and(Vec::is_empty),
            "console errors on {view}: {list}"
        );
    }

    // Figures: Performance API timings, over the stored million.
    let timings = report["timings_ms"].as_object().context("timings_ms")?;
    let cold = report["cold_open_ms"].as_object().context("cold_open_ms")?;
    println!(
        "explorer over {BACKGROUND_EVENTS} stored events (Performance API, ms; targets: \
         interactive within 1000 of opening, trends redrawn within 300 of the answer)"
    );
    println!(
        "  {:<20} {:>14} {:>12}",
        "view", "opened in app", "opened cold"
    );
    for (view, ms) in timings {
        let cold_ms = cold.get(view).and_then(Value::as_f64);
        println!(
            "  {view:<20} {:>14.1} {:>12}",
            ms.as_f64().unwrap_or(f64::NAN),
            cold_ms.map_or("-".to_owned(), |c| format!("{c:.1}"))
        );
        ensure!(
            ms.as_f64().is_some_and(|ms| ms > 0.0),
            "no timing for {view}: {ms}"
        );
    }
    ensure!(cold.len() == 7, "cold opens: {cold:?}");
    let screenshots = ids(&report["screenshots"]);
    ensure!(screenshots.len() >= 7, "screenshots: {screenshots:?}");
    for shot in &screenshots {
        let size = std::fs::metadata(shot).with_context(|| shot.clone())?.len();
        ensure!(size > 10_000, "{shot} is {size} bytes");
    }
    println!("screenshots: {}", shots.display());
    std::fs::remove_file(&input_path).ok();
    stack.stop().await
}
