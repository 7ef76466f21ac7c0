//! Plain HTTP to ClickHouse: the admin's statements (drop, counts, `system.query_log`) and
//! the direct path the service is compared with.

use anyhow::Context;
use serde::de::DeserializeOwned;

/// Statements run as the admin user, with text answers.
pub struct Admin {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
}

impl Admin {
    pub fn new(http: reqwest::Client, url: &str, user: &str, password: &str) -> Self {
        Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Runs one statement and returns its answer as text; a ClickHouse error is an error.
    pub async fn execute(&self, sql: &str) -> anyhow::Result<String> {
        // 18.16 quotes 64-bit integers in JSON by default; numbers parse more simply.
        let response = self
            .http
            .post(format!(
                "{}/?output_format_json_quote_64bit_integers=0",
                self.url
            ))
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .body(sql.to_owned())
            .send()
            .await
            .with_context(|| format!("sending to ClickHouse at {}", self.url))?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "ClickHouse answered {status} to `{sql}`: {}",
            text.trim()
        );
        Ok(text)
    }

    /// Runs a SELECT and parses its rows (`FORMAT JSONEachRow` is appended).
    pub async fn rows<T: DeserializeOwned>(&self, select: &str) -> anyhow::Result<Vec<T>> {
        let text = self
            .execute(&format!("{select} FORMAT JSONEachRow"))
            .await?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).with_context(|| format!("parsing row {l}")))
            .collect()
    }
}

/// A string literal for SQL text this program writes itself (admin look-ups only; the
/// benchmarked statements are never built here).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The direct path: statements sent exactly as the query service's `clickhouse` client
/// sends them (same user, database, output format and time limit, as URL parameters and
/// headers), answers read to the end.
#[derive(Clone)]
pub struct Direct {
    http: reqwest::Client,
    endpoint: String,
    user: String,
    password: String,
}

impl Direct {
    pub fn new(
        http: reqwest::Client,
        url: &str,
        database: &str,
        user: &str,
        password: &str,
        max_execution_time_secs: u64,
    ) -> Self {
        Self {
            http,
            endpoint: format!(
                "{}/?default_format=RowBinary&database={database}&max_execution_time={max_execution_time_secs}",
                url.trim_end_matches('/')
            ),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Runs one statement and returns the size of its answer.
    pub async fn run(&self, sql: &str) -> anyhow::Result<usize> {
        let response = self
            .http
            .post(&self.endpoint)
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .body(sql.to_owned())
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "ClickHouse answered {status} to the direct statement: {}",
            String::from_utf8_lossy(&body).trim()
        );
        Ok(body.len())
    }

    /// Runs one request's statements concurrently, as the service does, and returns the
    /// total size of the answers.
    pub async fn run_all(&self, statements: &[String]) -> anyhow::Result<usize> {
        let answers = futures::future::try_join_all(statements.iter().map(|s| self.run(s))).await?;
        Ok(answers.into_iter().sum())
    }
}
