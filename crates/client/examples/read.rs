//! Walks a session's events page by page, then prints the event types stored.
//!
//! ```sh
//! EYE_API_KEY=eye_… cargo run -p eye-client --example read -- example-session
//! ```

use eye_client::{Client, Credentials, EventQuery};
use futures::TryStreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ingest = std::env::var("EYE_INGEST_URL").unwrap_or("http://127.0.0.1:8080".into());
    let query = std::env::var("EYE_QUERY_URL").unwrap_or("http://127.0.0.1:8081".into());
    let key = std::env::var("EYE_API_KEY")?;
    let session = std::env::args().nth(1).unwrap_or("example-session".into());
    let client = Client::builder(ingest, Credentials::api_key(key))
        .query_url(query)
        .build()?;
    let events = client.events(&EventQuery {
        session_id: Some(session),
        page_size: Some(100),
        ..EventQuery::default()
    });
    futures::pin_mut!(events);
    while let Some(e) = events.try_next().await? {
        println!("{} {}/{} {}", e.timestamp, e.category, e.name, e.data);
    }
    for c in client.categories().await?.categories {
        println!("{}/{}: {} events", c.category, c.name, c.events);
    }
    Ok(())
}
