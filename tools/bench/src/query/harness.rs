//! Times one kind of request through the query service and the same statements sent
//! straight to ClickHouse.
//!
//! The direct statements are not written here: the `clickhouse` crate binds values on the
//! client, so `system.query_log` holds the exact text the service sent. Each request is
//! probed twice, each time alone in its own wall-clock second; the statements the
//! read-only user started in both seconds, and that carry the request's values, are that
//! request's statements. Anything another client ran at the same moment differs in text
//! between the two probes, so it drops out.

use super::clickhouse::{quote, Admin, Direct, Logged};
use anyhow::Context;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One question the benchmark asks, with the parameter sets it rotates through.
pub struct Kind {
    pub label: &'static str,
    /// Service routes to try, best first, each with one path per parameter set. A route
    /// that answers 404 `not_found` (no such route yet) hands over to the next one.
    pub routes: Vec<Route>,
    /// Per parameter set, values bound into its statements (session id, category, name):
    /// only statements containing all of them can be that request's.
    pub markers: Vec<Vec<String>>,
    pub samples: usize,
    pub target_p99_ms: Option<f64>,
}

pub struct Route {
    pub label: String,
    pub paths: Vec<String>,
}

impl Route {
    /// A route with one path, labelled by that path.
    pub fn fixed(path: String) -> Self {
        Self {
            label: path.clone(),
            paths: vec![path],
        }
    }
}

pub enum Outcome {
    /// Every route answered 404 `not_found`: the endpoint does not exist (yet).
    NotAvailable {
        tried: Vec<String>,
    },
    Measured(Box<Measured>),
}

pub struct Measured {
    pub route: String,
    /// The statements of the first parameter set's request, with what they read.
    pub statements: Vec<Logged>,
    pub answer_summary: String,
    pub service_bytes: usize,
    pub direct_bytes: usize,
    pub service: Vec<Duration>,
    pub direct: Vec<Duration>,
}

pub struct Harness<'a> {
    pub http: reqwest::Client,
    pub service_base: String,
    pub admin: &'a Admin,
    pub direct: Direct,
    pub query_user: String,
    pub warmup: usize,
}

impl Harness<'_> {
    pub async fn measure(&self, kind: &Kind) -> anyhow::Result<Outcome> {
        let Some(route) = self.resolve(kind).await? else {
            return Ok(Outcome::NotAvailable {
                tried: kind.routes.iter().map(|r| r.label.clone()).collect(),
            });
        };
        let (_, first_body) = self.service(&route.paths[0]).await?;
        let answer_summary = summarize(&first_body);

        let mut statements = Vec::new();
        for (path, markers) in route.paths.iter().zip(&kind.markers) {
            statements.push(self.capture(path, markers).await.with_context(|| {
                format!("finding the statements of GET {path} in system.query_log")
            })?);
        }

        // Warm-up: connections, caches and the service's code paths, on both sides.
        for i in 0..self.warmup {
            let case = i % route.paths.len();
            self.service(&route.paths[case]).await?;
            self.direct.run_all(&statements[case]).await?;
        }

        let mut service = Vec::with_capacity(kind.samples);
        let mut direct = Vec::with_capacity(kind.samples);
        let (mut service_bytes, mut direct_bytes) = (0, 0);
        for i in 0..kind.samples {
            let case = i % route.paths.len();
            // Alternate which side goes first, so neither always runs on a warmer server.
            let service_first = (i / route.paths.len()) % 2 == 0;
            if service_first {
                let (t, n) = self.time_service(&route.paths[case]).await?;
                service.push(t);
                service_bytes = n;
                let (t, n) = self.time_direct(&statements[case]).await?;
                direct.push(t);
                direct_bytes = n;
            } else {
                let (t, n) = self.time_direct(&statements[case]).await?;
                direct.push(t);
                direct_bytes = n;
                let (t, n) = self.time_service(&route.paths[case]).await?;
                service.push(t);
                service_bytes = n;
            }
        }
        Ok(Outcome::Measured(Box::new(Measured {
            route: route.label.clone(),
            statements: statements.swap_remove(0),
            answer_summary,
            service_bytes,
            direct_bytes,
            service,
            direct,
        })))
    }

    /// The first route of `kind` that exists; `None` when none does.
    async fn resolve<'k>(&self, kind: &'k Kind) -> anyhow::Result<Option<&'k Route>> {
        for route in &kind.routes {
            let path = &route.paths[0];
            let response = self.http.get(self.url(path)).send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            if status.is_success() {
                return Ok(Some(route));
            }
            if status == reqwest::StatusCode::NOT_FOUND && error_code(&body) == Some("not_found") {
                println!(
                    "  {}: GET {} answers 404 not_found",
                    kind.label, route.label
                );
                continue;
            }
            anyhow::bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(None)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.service_base)
    }

    /// One request to the service; anything but 200 is an error.
    async fn service(&self, path: &str) -> anyhow::Result<(Duration, bytes::Bytes)> {
        let started = Instant::now();
        let response = self.http.get(self.url(path)).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            status == reqwest::StatusCode::OK,
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok((elapsed, body))
    }

    async fn time_service(&self, path: &str) -> anyhow::Result<(Duration, usize)> {
        let (elapsed, body) = self.service(path).await?;
        Ok((elapsed, body.len()))
    }

    async fn time_direct(&self, statements: &[Logged]) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        let n = self.direct.run_all(statements).await?;
        Ok((started.elapsed(), n))
    }

    /// The statements one request to `path` makes, found in `system.query_log`.
    async fn capture(&self, path: &str, markers: &[String]) -> anyhow::Result<Vec<Logged>> {
        let first = self.probe(path, markers).await?;
        let second = self.probe(path, markers).await?;
        let kept: Vec<Logged> = first
            .into_iter()
            .filter(|a| second.iter().any(|b| b.query == a.query))
            .collect();
        anyhow::ensure!(
            !kept.is_empty(),
            "no statement of user {} appeared in both probes",
            self.query_user
        );
        Ok(kept)
    }

    async fn probe(&self, path: &str, markers: &[String]) -> anyhow::Result<Vec<Logged>> {
        // Start just after a second boundary, so this request has its seconds to itself
        // (query_log's times have whole-second resolution on 18.16).
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let to_next = Duration::from_secs(1) - Duration::from_nanos(now.subsec_nanos().into());
        tokio::time::sleep(to_next + Duration::from_millis(10)).await;
        let from_s = unix_secs();
        self.service(path).await?;
        let to_s = unix_secs();
        let mut conditions = vec![
            "event_date >= yesterday()".to_owned(),
            // 2 = QueryFinish on 18.16 (an enum there is a plain UInt8).
            "type = 2".to_owned(),
            format!("user = {}", quote(&self.query_user)),
            format!("toUnixTimestamp(query_start_time) BETWEEN {from_s} AND {to_s}"),
        ];
        conditions.extend(
            markers
                .iter()
                .map(|m| format!("position(query, {}) > 0", quote(m))),
        );
        let select = format!(
            "SELECT query, read_rows, query_duration_ms, Settings.Names AS setting_names, \
             Settings.Values AS setting_values FROM system.query_log WHERE {} ORDER BY query",
            conditions.join(" AND ")
        );
        // The log is written every second; asking for a flush saves most of the wait. A
        // statement may be logged a moment after the answer went out, so the look-up
        // repeats until two in a row agree: a missing statement would otherwise vanish
        // from the direct side without a word.
        let mut previous: Option<usize> = None;
        for _ in 0..20 {
            self.admin.execute("SYSTEM FLUSH LOGS").await?;
            let rows: Vec<Logged> = self.admin.rows(&select).await?;
            if !rows.is_empty() && previous == Some(rows.len()) {
                return Ok(rows);
            }
            previous = Some(rows.len());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        anyhow::bail!("system.query_log did not settle for GET {path} within 6 s")
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The `error.code` of an error answer in the services' shape.
fn error_code(body: &[u8]) -> Option<&'static str> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v.pointer("/error/code")?.as_str()? {
        "not_found" => Some("not_found"),
        _ => Some("other"),
    }
}

/// "events: 100": the length of each top-level array of a JSON answer, so the report
/// shows that a request returned what it was asked for.
fn summarize(body: &[u8]) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) else {
        return format!("{} bytes", body.len());
    };
    let parts: Vec<String> = map
        .iter()
        .filter_map(|(k, v)| v.as_array().map(|a| format!("{k}: {}", a.len())))
        .collect();
    if parts.is_empty() {
        format!("{} bytes", body.len())
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        assert_eq!(
            summarize(br#"{"session_id":"s","events":[1,2,3],"next_cursor":null}"#),
            "events: 3"
        );
        assert_eq!(summarize(b"not json"), "8 bytes");
        assert_eq!(
            error_code(br#"{"error":{"code":"not_found","message":"no such route"}}"#),
            Some("not_found")
        );
        assert_eq!(
            error_code(br#"{"error":{"code":"session_not_found"}}"#),
            Some("other")
        );
    }
}
