//! Recovery time, measured end to end: one event sent after the repair, retried until
//! ingest acknowledges it, then polled through the query API until it is readable.

use crate::check::Reader;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct Canary {
    pub event_id: Uuid,
    pub session_id: String,
}

pub async fn send(http: &reqwest::Client, ingest: &str, api_key: &str) -> anyhow::Result<Canary> {
    let canary = Canary {
        event_id: Uuid::new_v4(),
        session_id: format!("canary-{}", Uuid::new_v4()),
    };
    let body = serde_json::json!({
        "event_id": canary.event_id,
        "session_id": canary.session_id,
        "category": "page_interaction",
        "name": "page_view",
        "data": {"host": "canary.example", "path": "/"},
        "timestamp": eye_loadgen::events::now_rfc3339(),
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let res = http
            .post(format!("{ingest}/v1/events"))
            .bearer_auth(api_key)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => return Ok(canary),
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                anyhow::bail!(
                    "canary refused: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )
            }
            _ if Instant::now() >= deadline => {
                anyhow::bail!("ingest did not take the canary within 180 s")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub async fn wait_visible(
    reader: &Reader,
    canary: &Canary,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let url = format!("{}/v1/sessions/{}/events", reader.base, canary.session_id);
    let needle = canary.event_id.to_string();
    loop {
        let found = match reader
            .http
            .get(&url)
            .bearer_auth(&reader.api_key)
            .timeout(Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                r.text().await.unwrap_or_default().contains(&needle)
            }
            _ => false,
        };
        if found {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the canary was not queryable within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
