//! The Grafana dashboard (`deploy/grafana/dashboards/the-eye.json`) queries only metrics
//! the services export: every `eye_*` name in a panel's PromQL must appear as a metric
//! family (`# TYPE name ...`) in the `/metrics` of ingest, the consumer or the query
//! service, after real traffic through the pipeline on the real broker and ClickHouse.

use eye_e2e::{test_auth, unique, wait_for, Stack};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const DASHBOARD: &str = include_str!("../../deploy/grafana/dashboards/the-eye.json");

/// Ingest's in-flight budget in this test: small enough for one held request to spend.
const INFLIGHT_BYTES: u64 = 64 * 1024;

/// Series Prometheus derives from one histogram (or summary) family.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// The `eye_*` metric names in one PromQL expression, histogram series mapped back to
/// their family (`eye_x_bucket` is `eye_x`). Quoted text (label values, `route="/v1/x"`)
/// is skipped, so only names in metric position count.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    // A trailing separator flushes the last word.
    for c in expr.chars().chain(std::iter::once(' ')) {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if word.starts_with("eye_") {
            names.insert(family(&word).to_owned());
        }
        word.clear();
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
        }
    }
    names
}

fn family(series: &str) -> &str {
    HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|s| series.strip_suffix(s))
        .unwrap_or(series)
}

/// Every panel target's `expr`, rows' nested panels included.
fn exprs(dashboard: &Value) -> Vec<String> {
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(e) = target["expr"].as_str() {
                    out.push(e.to_owned());
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn dashboard_metrics(dashboard: &Value) -> BTreeSet<String> {
    exprs(dashboard)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect()
}

/// Metric families a scrape declares (`# TYPE name type`).
fn families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The names of `wanted` that no scrape declares.
fn missing(wanted: &BTreeSet<String>, scrapes: &BTreeMap<&str, String>) -> Vec<String> {
    let exported: BTreeSet<String> = scrapes.values().flat_map(|s| families(s)).collect();
    wanted.difference(&exported).cloned().collect()
}

fn parsed_dashboard() -> Value {
    serde_json::from_str(DASHBOARD).expect("the dashboard is JSON")
}

/// The dashboard with one more panel querying `expr`.
fn with_extra_panel(dashboard: &Value, expr: &str) -> Value {
    let mut copy = dashboard.clone();
    let panels = copy["panels"].as_array_mut().expect("panels");
    panels.push(json!({
        "type": "timeseries",
        "title": "made up",
        "targets": [{"refId": "A", "expr": expr}],
    }));
    copy
}

#[test]
fn names_are_read_from_promql() {
    let got = metric_names(
        r#"histogram_quantile(0.99, sum by (le) (rate(eye_http_request_duration_seconds_bucket{job="eye_ingest", route=~"/v1/.*"}[1m]))) / ignoring(x) eye_a_sum + sum(eye_consumer_lag_messages) + up"#,
    );
    let want: BTreeSet<String> = [
        "eye_http_request_duration_seconds",
        "eye_a",
        "eye_consumer_lag_messages",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        got, want,
        "label values such as \"eye_ingest\" are not names"
    );
    assert!(metric_names("rate(not_eye_metric[1m])").is_empty());
}

#[test]
fn the_dashboard_is_a_grafana_dashboard_over_the_prometheus_datasource() {
    let d = parsed_dashboard();
    assert_eq!(d["uid"], "the-eye");
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().expect("panel id")), "{p}");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "prometheus", "{}", p["title"]);
            assert!(!p["targets"].as_array().expect("targets").is_empty());
        }
    }
    assert!(!dashboard_metrics(&d).is_empty());
}

/// The check can fail: a name the services do not export, in a copy of the dashboard, is
/// reported, and only it.
#[test]
fn a_made_up_name_is_reported() {
    let scrape = "# HELP eye_a_seconds A.\n# TYPE eye_a_seconds histogram\neye_a_seconds_bucket{le=\"1\"} 0\n# TYPE eye_b_total counter\neye_b_total 1\n";
    let scrapes = BTreeMap::from([("svc", scrape.to_owned())]);
    let d = json!({"panels": [{"type": "row", "panels": [{"targets": [
        {"expr": "histogram_quantile(0.5, sum by (le) (rate(eye_a_seconds_bucket[1m])))"},
        {"expr": "rate(eye_b_total[1m])"},
    ]}]}]});
    assert!(missing(&dashboard_metrics(&d), &scrapes).is_empty());
    let d = with_extra_panel(&d, "rate(eye_made_up_total[1m])");
    assert_eq!(
        missing(&dashboard_metrics(&d), &scrapes),
        ["eye_made_up_total"]
    );
}

async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let res = http.get(url).send().await?;
    anyhow::ensure!(res.status() == 200, "GET {url}: {}", res.status());
    Ok(res.text().await?)
}

async fn scrape_all(stack: &Stack) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let http = reqwest::Client::new();
    let mut out = BTreeMap::new();
    for svc in [&stack.ingest, &stack.consumer, &stack.query] {
        out.insert(svc.name, scrape(&http, &svc.url("/metrics")).await?);
    }
    Ok(out)
}

/// The value of an unlabelled gauge in a scrape.
fn gauge(scrape: &str, name: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

/// Opens `POST /v1/events` with a chunked body and sends only its first chunk: ingest
/// reserves the most a body may be (here the whole in-flight budget) until it ends.
async fn hold_budget(stack: &Stack) -> anyhow::Result<TcpStream> {
    let mut conn = TcpStream::connect(stack.ingest.addr).await?;
    // Bytes are held as they arrive: the body's first chunk is the whole budget (a `[` and
    // white space), and the body never ends.
    let chunk = format!("[{}", " ".repeat(INFLIGHT_BYTES as usize - 1));
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n",
        stack.ingest.addr,
        test_auth().api_key,
        chunk.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.flush().await?;
    Ok(conn)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_queries_is_exported() -> anyhow::Result<()> {
    let dashboard = parsed_dashboard();
    let wanted = dashboard_metrics(&dashboard);
    assert!(!wanted.is_empty(), "no eye_* metric in the dashboard");
    println!("the dashboard queries {} metrics:", wanted.len());
    for name in &wanted {
        println!("  {name}");
    }

    let budget = INFLIGHT_BYTES.to_string();
    let stack = Stack::start_with(
        "dashboard",
        // librdkafka statistics (lag, producer queue and batches) every 500 ms.
        &[("STATISTICS_INTERVAL_MS", "500")],
        // One client holds it all: its share is the whole budget.
        &[
            ("MAX_INFLIGHT_BYTES", &budget),
            ("MAX_INFLIGHT_BYTES_PER_CLIENT", &budget),
        ],
    )
    .await?;
    let http = reqwest::Client::new();

    // A 503 (eye_ingest_unavailable_total): one request holds the whole budget.
    let held = hold_budget(&stack).await?;
    let metrics_url = stack.ingest.url("/metrics");
    wait_for(Duration::from_secs(10), "the budget held", || async {
        let s = scrape(&http, &metrics_url).await.ok()?;
        (gauge(&s, "eye_ingest_inflight_bytes")? >= INFLIGHT_BYTES as f64).then_some(())
    })
    .await?;
    let session = unique("dashboard");
    let event = |i: usize| {
        json!({
            "session_id": session,
            "category": "page_interaction",
            "name": "page_view",
            "data": {"host": "www.consumeraffairs.com", "path": format!("/{i}")},
            "timestamp": format!("2024-03-01 12:00:{i:02}"),
        })
    };
    let res = stack.post_events(&json!([event(0)])).await?;
    assert_eq!(res.status(), 503, "{}", res.text().await?);
    // Closing the connection ends the held request, which gives its reservation back.
    drop(held);
    wait_for(Duration::from_secs(10), "the budget given back", || async {
        let s = scrape(&http, &metrics_url).await.ok()?;
        (gauge(&s, "eye_ingest_inflight_bytes")? == 0.0).then_some(())
    })
    .await?;

    // A request refused as a whole (eye_ingest_rejected_requests_total).
    let res = stack
        .http
        .post(stack.ingest.url("/v1/events"))
        .header("content-type", "application/json")
        .body("[{")
        .send()
        .await?;
    assert_eq!(res.status(), 400);

    // Twenty valid events and one the schema refuses, which is quarantined.
    let mut batch: Vec<Value> = (0..20).map(event).collect();
    let mut bad = event(20);
    bad["data"] = json!({"host": "h"});
    batch.push(bad);
    let res = stack.post_events(&Value::Array(batch)).await?;
    assert_eq!(res.status(), 207, "{}", res.text().await?);

    wait_for(
        Duration::from_secs(60),
        "events queryable",
        || async {
            matches!(stack.session(&session).await, Ok((200, b)) if b["events"].as_array().map(Vec::len) == Some(20))
                .then_some(())
        },
    )
    .await?;
    wait_for(Duration::from_secs(60), "rejection queryable", || async {
        let rejected = stack
            .walk_pages("/v1/rejected?limit=1000", "rejected")
            .await
            .ok()?;
        (!rejected.is_empty()).then_some(())
    })
    .await?;
    for path in [
        format!("/v1/sessions/{session}"),
        "/v1/categories".to_owned(),
        "/v1/events?category=page_interaction&limit=5".to_owned(),
    ] {
        let res = stack.http.get(stack.query.url(&path)).send().await?;
        assert_eq!(res.status(), 200, "GET {path}");
    }

    // Statistics-based gauges appear after the first statistics callback.
    let mut scrapes = scrape_all(&stack).await?;
    let mut absent = missing(&wanted, &scrapes);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !absent.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        scrapes = scrape_all(&stack).await?;
        absent = missing(&wanted, &scrapes);
    }

    // The same scrapes report a name the services do not export.
    let doctored = with_extra_panel(&dashboard, "rate(eye_dashboard_made_up_total[1m])");
    let reported = missing(&dashboard_metrics(&doctored), &scrapes);
    assert!(
        reported.contains(&"eye_dashboard_made_up_total".to_owned()),
        "{reported:?}"
    );

    stack.stop().await?;
    for (svc, s) in &scrapes {
        let mine: Vec<String> = families(s).intersection(&wanted).cloned().collect();
        println!("{svc} exports {mine:?}");
    }
    assert!(
        absent.is_empty(),
        "the dashboard queries metrics no service exports: {absent:?}"
    );
    Ok(())
}
