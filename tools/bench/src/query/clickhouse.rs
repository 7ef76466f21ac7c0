//! Plain HTTP to ClickHouse: the admin's statements (drop, counts, `system.query_log`) and
//! the direct path the service is compared with.

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::Deserialize;

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

/// A statement as `system.query_log` recorded it, with the settings it ran under.
#[derive(Debug, Clone, Deserialize)]
pub struct Logged {
    pub query: String,
    pub read_rows: u64,
    pub query_duration_ms: u64,
    pub setting_names: Vec<String>,
    pub setting_values: Vec<String>,
}

impl Logged {
    /// The settings to send with the statement again: every setting the log shows as
    /// changed (the service's per-query limits and the user's profile), except `readonly`,
    /// which the profile sets anyway and a read-only user may not send.
    pub fn settings(&self) -> Vec<(&str, &str)> {
        self.setting_names
            .iter()
            .zip(&self.setting_values)
            .filter(|(name, _)| name.as_str() != "readonly")
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    /// The settings as `name=value, ...`, for the report.
    pub fn settings_text(&self) -> String {
        self.settings()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The direct path: statements sent as the query service's `clickhouse` client sends them
/// (same user, database, output format, and the settings they ran under), answers read to
/// the end.
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
    ) -> Self {
        Self {
            http,
            endpoint: format!(
                "{}/?default_format=RowBinary&database={database}",
                url.trim_end_matches('/')
            ),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// Runs one statement and returns the size of its answer.
    pub async fn run(&self, statement: &Logged) -> anyhow::Result<usize> {
        let response = self
            .http
            .post(&self.endpoint)
            .query(&statement.settings())
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .body(statement.query.clone())
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
    pub async fn run_all(&self, statements: &[Logged]) -> anyhow::Result<usize> {
        let answers = futures::future::try_join_all(statements.iter().map(|s| self.run(s))).await?;
        Ok(answers.into_iter().sum())
    }
}
