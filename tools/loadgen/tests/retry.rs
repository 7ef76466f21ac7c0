//! The generator's client behaviour against a scripted server (error paths only; the real
//! services are exercised by the chaos suite): 503s, 429s and timeouts are retried with
//! the very same body, refusals are not, and only 2xx ids count as acknowledged.

use eye_loadgen::{Config, Progress};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warp::Filter;

/// What the server does with the n-th request it sees (0-based); past the script, 202.
#[derive(Clone, Copy, Debug)]
enum Step {
    Status(u16),
    /// Answer 202, but only after the client's timeout.
    Stall,
}

struct Seen {
    bodies: Vec<bytes::Bytes>,
}

async fn server(script: Vec<Step>) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen { bodies: Vec::new() }));
    let s = seen.clone();
    let route = warp::post()
        .and(warp::path!("v1" / "events"))
        .and(warp::body::bytes())
        .then(move |body: bytes::Bytes| {
            let seen = s.clone();
            let script = script.clone();
            async move {
                let n = {
                    let mut g = seen.lock().unwrap();
                    g.bodies.push(body.clone());
                    g.bodies.len() - 1
                };
                let step = script.get(n).copied().unwrap_or(Step::Status(202));
                let ids: Vec<serde_json::Value> =
                    serde_json::from_slice::<Vec<serde_json::Value>>(&body)
                        .unwrap()
                        .into_iter()
                        .map(|e| e["event_id"].clone())
                        .collect();
                let accepted = warp::reply::with_status(
                    warp::reply::json(
                        &serde_json::json!({"accepted": ids.len(), "event_ids": ids}),
                    ),
                    warp::http::StatusCode::ACCEPTED,
                );
                match step {
                    Step::Stall => {
                        tokio::time::sleep(Duration::from_millis(600)).await;
                        warp::reply::with_header(accepted, "x-step", "stall").into_response_boxed()
                    }
                    Step::Status(202) => {
                        warp::reply::with_header(accepted, "x-step", "ok").into_response_boxed()
                    }
                    Step::Status(code) => warp::reply::with_header(
                        warp::reply::with_status(
                            warp::reply::json(&serde_json::json!({"error": {"code": "scripted"}})),
                            warp::http::StatusCode::from_u16(code).unwrap(),
                        ),
                        "retry-after",
                        "0",
                    )
                    .into_response_boxed(),
                }
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}"), seen)
}

trait Boxed {
    fn into_response_boxed(self) -> warp::reply::Response;
}
impl<T: warp::Reply> Boxed for T {
    fn into_response_boxed(self) -> warp::reply::Response {
        self.into_response()
    }
}

fn config(url: String, events: u64) -> Config {
    Config {
        url,
        api_key: "k".into(),
        connections: 1,
        batch: 10,
        sessions: 5,
        seed: 9,
        rate: None,
        events: Some(events),
        duration: None,
        timeout: Duration::from_millis(300),
        retry_for: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn transient_failures_are_retried_with_the_same_body_until_acknowledged() {
    // (script, attempts expected for one batch of 10, outcome labels that must appear)
    let cases: Vec<(Vec<Step>, usize, &[&str])> = vec![
        (vec![], 1, &["202"]),
        (
            vec![Step::Status(503), Step::Status(503)],
            3,
            &["503", "202"],
        ),
        (
            vec![Step::Status(429), Step::Status(502)],
            3,
            &["429", "502"],
        ),
        (vec![Step::Stall], 2, &["timeout"]),
        (
            vec![Step::Status(408), Step::Stall, Step::Status(500)],
            4,
            &["408", "timeout", "500"],
        ),
    ];
    for (script, attempts, labels) in cases {
        let (url, seen) = server(script.clone()).await;
        let report = eye_loadgen::run(config(url, 10), Arc::new(Progress::default()))
            .await
            .expect("run");
        let bodies = seen.lock().unwrap().bodies.clone();
        assert_eq!(bodies.len(), attempts, "{script:?}");
        assert!(
            bodies.iter().all(|b| *b == bodies[0]),
            "{script:?}: a retry changed the body"
        );
        assert_eq!(report.receipts.acked.len(), 10, "{script:?}");
        let sent: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&bodies[0])
            .unwrap()
            .iter()
            .map(|e| e["event_id"].as_str().unwrap().to_owned())
            .collect();
        let acked: Vec<String> = report
            .receipts
            .acked
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(acked, sent, "{script:?}");
        for l in labels {
            assert!(
                report.outcomes.attempts.contains_key(*l),
                "{script:?}: no {l} in {:?}",
                report.outcomes.attempts
            );
        }
        assert_eq!(report.retries(), (attempts - 1) as u64, "{script:?}");
    }
}

#[tokio::test]
async fn refusals_are_not_retried_and_not_acknowledged() {
    let (url, seen) = server(vec![Step::Status(400), Step::Status(401)]).await;
    let report = eye_loadgen::run(config(url, 20), Arc::new(Progress::default()))
        .await
        .expect("run");
    assert_eq!(seen.lock().unwrap().bodies.len(), 2);
    assert_eq!(
        (report.receipts.refused, report.receipts.acked.len()),
        (20, 0)
    );
    let by_label: HashMap<_, _> = report.outcomes.attempts.clone().into_iter().collect();
    assert_eq!(
        (by_label.get("400"), by_label.get("401")),
        (Some(&1), Some(&1))
    );
}

#[tokio::test]
async fn a_batch_is_given_up_after_retry_for() {
    let (url, _seen) = server(vec![Step::Status(503); 1_000]).await;
    let mut c = config(url, 10);
    c.retry_for = Duration::from_millis(300);
    let report = eye_loadgen::run(c, Arc::new(Progress::default()))
        .await
        .expect("run");
    assert_eq!(
        (report.receipts.given_up, report.receipts.acked.len()),
        (10, 0)
    );
    assert_eq!(report.receipts.given_up_ids.len(), 10);
}

#[tokio::test]
async fn a_fixed_rate_holds_its_schedule() {
    let (url, seen) = server(vec![]).await;
    let mut c = config(url, 200);
    c.rate = Some(400.0);
    c.connections = 2;
    let started = std::time::Instant::now();
    let report = eye_loadgen::run(c, Arc::new(Progress::default()))
        .await
        .expect("run");
    let secs = started.elapsed().as_secs_f64();
    // 200 events at 400/s: the last batch is scheduled at 0.475 s.
    assert!((0.45..1.5).contains(&secs), "{secs} s");
    assert_eq!(seen.lock().unwrap().bodies.len(), 20);
    assert_eq!(report.receipts.acked.len(), 200);
}
