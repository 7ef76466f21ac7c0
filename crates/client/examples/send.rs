//! Sends a few events and waits for their verdicts.
//!
//! ```sh
//! make up   # then, with the key it printed:
//! EYE_API_KEY=eye_… cargo run -p eye-client --example send
//! ```

use eye_client::{Client, Credentials, NewEvent, OutcomeKind};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ingest = std::env::var("EYE_INGEST_URL").unwrap_or("http://127.0.0.1:8080".into());
    let key = std::env::var("EYE_API_KEY")?;
    let client = Client::builder(ingest, Credentials::api_key(key))
        .on_outcome(|o| match &o.kind {
            OutcomeKind::Accepted => println!("{} accepted", o.event_id),
            OutcomeKind::Rejected(errors) => {
                for e in errors {
                    println!(
                        "{} rejected: {} {}: {}",
                        o.event_id, e.field, e.code, e.message
                    );
                }
            }
            OutcomeKind::Failed(why) => println!("{} failed: {why}", o.event_id),
        })
        .build()?;
    let now = chrono_like_now();
    let data = |v: serde_json::Value| v.as_object().cloned().unwrap_or_default();
    client
        .send(
            NewEvent::new("example-session", "page_interaction", "page_view", &now)
                .with_data(data(json!({"host": "example.com", "path": "/"}))),
        )
        .await?;
    client
        .send(
            NewEvent::new("example-session", "page_interaction", "cta_click", &now).with_data(
                data(json!({"host": "example.com", "path": "/", "element": "buy"})),
            ),
        )
        .await?;
    // Rejected: `cta_click`'s schema requires `element`.
    client
        .send(
            NewEvent::new("example-session", "page_interaction", "cta_click", &now)
                .with_data(data(json!({"host": "example.com", "path": "/"}))),
        )
        .await?;
    client.shutdown().await;
    println!("{:?}", client.stats());
    Ok(())
}

/// Now as Unix seconds with a fraction, one of the timestamp forms the API takes.
fn chrono_like_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", now.as_secs(), now.subsec_micros())
}
