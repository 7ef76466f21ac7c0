//! The listing walker against a scripted server: it follows `next_cursor` to the end,
//! sends the credential and the page size on every request, and names the page that failed.

use eye_loadgen::pages::{walk, Listing, PageError};
use std::sync::{Arc, Mutex};
use warp::Filter;

/// Serves `/v1/events` in pages of two from `items`, the cursor being the next index; the
/// request for the page at index `fail_at` answers 500. Records every query string and
/// Authorization header it sees.
async fn server(items: Vec<u32>, fail_at: Option<usize>) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let route = warp::get()
        .and(warp::path!("v1" / "events"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("authorization"))
        .map(move |query: String, auth: Option<String>| {
            s.lock()
                .unwrap()
                .push(format!("{query} {}", auth.unwrap_or_default()));
            let from: usize = query
                .split('&')
                .find_map(|p| p.strip_prefix("cursor="))
                .map_or(0, |c| c.parse().unwrap());
            if Some(from) == fail_at {
                return warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({"error": {"code": "internal"}})),
                    warp::http::StatusCode::INTERNAL_SERVER_ERROR,
                );
            }
            let to = (from + 2).min(items.len());
            let next = (to < items.len()).then(|| to.to_string());
            warp::reply::with_status(
                warp::reply::json(&serde_json::json!({
                    "events": &items[from..to], "next_cursor": next,
                })),
                warp::http::StatusCode::OK,
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (format!("http://{addr}"), seen)
}

fn listing(base: &str) -> Listing<'_> {
    Listing {
        base,
        path: "/v1/events?category=machine",
        key: "events",
        api_key: "secret",
        limit: Some(2),
    }
}

#[tokio::test]
async fn follows_every_cursor() {
    let (base, seen) = server(vec![1, 2, 3, 4, 5], None).await;
    let items: Vec<u32> = walk(&reqwest::Client::new(), listing(&base)).await.unwrap();
    assert_eq!(items, [1, 2, 3, 4, 5]);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "category=machine&limit=2 Bearer secret",
            "category=machine&limit=2&cursor=2 Bearer secret",
            "category=machine&limit=2&cursor=4 Bearer secret",
        ]
    );
}

#[tokio::test]
async fn names_the_page_that_failed() {
    let (base, _) = server(vec![1, 2, 3, 4, 5], Some(2)).await;
    let err = walk::<u32>(&reqwest::Client::new(), listing(&base))
        .await
        .unwrap_err();
    let PageError::Status {
        page, url, status, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*page, status.as_u16()), (2, 500));
    assert!(
        url.ends_with("/v1/events?category=machine&limit=2&cursor=2"),
        "{url}"
    );
    assert!(err.to_string().starts_with("page 2, GET "), "{err}");
}
