//! `GET /v1/export`: every event `/v1/events`' filters match, one per event, in its order,
//! as NDJSON or CSV, streamed.
//!
//! - The rows come from [`eye_store::export::pages`]: keyset pages of
//!   `EYE_QUERY_EXPORT_PAGE_ROWS`, each under `EYE_QUERY_EXPORT_PAGE_TIME_LIMIT_MS`. A task
//!   reads the next page while the previous one is written (a channel of one page between
//!   them), so the service holds about three pages, whatever the export's size, and a
//!   client that goes away stops it at the next page.
//! - The first page is read before the answer starts: a store that fails then is a 503
//!   like any read's. A failure after that cannot change the status any more: the
//!   response's chunked body is then cut, without its final empty chunk, which every HTTP
//!   client reports as an error (curl: exit 18, "transfer closed with outstanding read
//!   data remaining"). A body that ends normally is complete.
//! - Every row carries its `cursor` (NDJSON field, CSV last column): `cursor=` resumes after
//!   that row, so the rows after the last complete one of a cut export are exactly what a
//!   resumed export answers.

use crate::error::QueryError;
use crate::params::{self, Params};
use crate::routes::{event_filter, Reply_};
use bytes::Bytes;
use eye_model::event::FieldError;
use eye_store::export::{self, Format, Settings};
use eye_store::{EventRow, Store, StoreError};
use futures::{Stream, StreamExt};
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use warp::Reply;

const PARAMETERS: &[&str] = &[
    "format",
    "session_id",
    "category",
    "name",
    "from",
    "to",
    "order",
    "cursor",
];

/// `format=ndjson|csv`, NDJSON by default. Parquet is refused by name: ClickHouse 18.16
/// has no such output format.
pub fn format(params: &Params) -> Result<Format, QueryError> {
    let Some(raw) = params.get("format") else {
        return Ok(Format::Ndjson);
    };
    Format::parse(raw).ok_or_else(|| {
        let message = if raw == "parquet" {
            "parquet is not offered: ClickHouse 18.16 has no Parquet output format; \
             format must be ndjson or csv"
        } else {
            "format must be ndjson or csv"
        };
        QueryError::BadParameter(FieldError::new("format", "invalid_format", message))
    })
}

pub async fn export(store: Store, params: &Params, settings: Settings) -> Reply_ {
    params::only(params, PARAMETERS)?;
    let format = format(params)?;
    let filter = event_filter(params)?;
    let mut pages = Box::pin(export::pages(store, filter, settings));
    let first = pages.next().await.transpose()?;
    Ok(response(format, first, pages))
}

/// The streamed answer: the header, `first`, then each page of `rest` as it is read.
fn response<S>(format: Format, first: Option<Vec<EventRow>>, rest: S) -> warp::reply::Response
where
    S: Stream<Item = Result<Vec<EventRow>, StoreError>> + Send + Unpin + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(1);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut rows = 0u64;
        let mut chunk = format.header().as_bytes().to_vec();
        let mut rest = rest;
        let mut page = first.map(Ok);
        loop {
            if let Some(Ok(p)) = &page {
                rows += p.len() as u64;
                export::encode(format, p, &mut chunk);
            }
            if let Some(Err(e)) = page {
                tracing::error!(error = %e, rows, "export cut: store read failed");
                let _ = tx.send(Err(e)).await;
                return;
            }
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                tracing::info!(rows, "export abandoned by the client");
                return;
            }
            chunk = Vec::new();
            page = rest.next().await;
            if page.is_none() {
                break;
            }
        }
        tracing::info!(
            rows,
            secs = started.elapsed().as_secs_f64(),
            "export complete"
        );
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut res = warp::reply::stream(body).into_response();
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let disposition = match format {
        Format::Ndjson => "attachment; filename=\"events.ndjson\"",
        Format::Csv => "attachment; filename=\"events.csv\"",
    };
    headers.insert(CONTENT_DISPOSITION, HeaderValue::from_static(disposition));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_ndjson_and_csv_and_parquet_is_refused_by_name() {
        let read = |q: &str| format(&params::parse_query(q).expect("query"));
        assert_eq!(read("").ok(), Some(Format::Ndjson));
        assert_eq!(read("format=ndjson").ok(), Some(Format::Ndjson));
        assert_eq!(read("format=csv").ok(), Some(Format::Csv));
        for bad in ["format=parquet", "format=CSV", "format=json", "format="] {
            match read(bad) {
                Err(QueryError::BadParameter(f)) => {
                    assert_eq!(
                        (f.field.as_str(), &*f.code),
                        ("format", "invalid_format"),
                        "{bad}"
                    );
                    assert_eq!(
                        f.message.contains("18.16"),
                        bad.ends_with("parquet"),
                        "{bad}"
                    );
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn export_cursors_are_the_listing_cursors() {
        let row = EventRow {
            event_id: uuid::Uuid::from_u128(42),
            session_id: "s é,1".into(),
            category: "c".into(),
            name: "n".into(),
            ts_us: 1_700_000_000_123_456,
            received_at_us: 0,
            data: "{}".into(),
            value: None,
            client_ts_us: 0,
            sent_at_us: None,
        };
        let c = export::cursor(&row);
        assert_eq!(
            c,
            params::encode_event_cursor(row.ts_us, row.event_id, &row.session_id)
        );
        let parsed = params::event_cursor(&params::parse_query(&format!("cursor={c}")).expect("q"));
        assert_eq!(
            parsed.ok().flatten(),
            Some((row.ts_us, row.event_id, row.session_id.clone()))
        );
    }

    fn rows(n: u128) -> Vec<EventRow> {
        vec![EventRow {
            event_id: uuid::Uuid::from_u128(n),
            session_id: "s".into(),
            category: "c".into(),
            name: "n".into(),
            ts_us: 1_700_000_000_000_000,
            received_at_us: 0,
            data: "{}".into(),
            value: None,
            client_ts_us: 0,
            sent_at_us: None,
        }]
    }

    /// Served for real (hyper's chunked encoding): an answer whose store read fails after
    /// it began is cut, and the client sees an error, not a short but well-ended body; one
    /// that ends normally reads whole.
    #[tokio::test]
    async fn a_store_failure_mid_stream_cuts_the_body() {
        use warp::Filter;
        let route = warp::any()
            .and(warp::path::param::<String>())
            .map(|how: String| {
                let second: Result<Vec<EventRow>, StoreError> = if how == "fails" {
                    Err(eye_store::sql::identifier("no such name!")
                        .unwrap_err()
                        .into())
                } else {
                    Ok(rows(2))
                };
                response(Format::Csv, Some(rows(1)), futures::stream::iter([second]))
            })
            .recover(|_| async { Ok::<_, std::convert::Infallible>(warp::reply()) })
            .map(warp::Reply::into_response);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let http: eye_http::config::HttpConfig =
            eye_runtime::config::from_pairs(&[]).expect("defaults");
        let drain = eye_http::Drain::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            eye_http::serve(route, listener, &http, &drain, async {
                let _ = stopped.await;
            })
            .await;
        });
        let client = reqwest::Client::new();
        let whole = client
            .get(format!("http://{addr}/ends"))
            .send()
            .await
            .expect("answer");
        assert_eq!(whole.status(), 200);
        let body = whole.text().await.expect("a complete body");
        assert_eq!(body.lines().count(), 3, "{body}");
        let cut = client
            .get(format!("http://{addr}/fails"))
            .send()
            .await
            .expect("answer");
        assert_eq!(cut.status(), 200);
        assert!(
            cut.text().await.is_err(),
            "a cut body must read as an error"
        );
        let _ = stop.send(());
        let _ = server.await;
    }
}
