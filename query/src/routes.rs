//! Routes and handlers of the query API.

use crate::error::QueryError;
use crate::view::{EventView, SessionEvents};
use crate::Config;
use eye_common::event::{FieldError, SessionId};
use eye_common::store::Store;
use eye_web::error::{recover, HttpError};
use eye_web::metrics::HttpMetrics;
use eye_web::ops::{self, ReadyCheck};
use futures::FutureExt;
use prometheus::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use warp::{Filter, Reply};

const DEFAULT_LIMIT: u32 = 1_000;

pub fn routes(
    config: &Config,
    store: Store,
    registry: Registry,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let http = HttpMetrics::new(&registry);
    let ready_store = store.clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = ready_store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }.boxed()
    });
    let max_limit = config.query.session_events_max;
    let session_events = warp::path!("v1" / "sessions" / String / "events")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(move |raw_id: String, params: HashMap<String, String>| {
            let store = store.clone();
            async move {
                session_events(&store, &raw_id, &params, max_limit)
                    .await
                    .map_err(|e| warp::reject::custom(HttpError::from(e)))
            }
        });
    session_events
        .or(ops::routes(registry, ready))
        .recover(recover)
        .with(http.log(route_of))
}

async fn session_events(
    store: &Store,
    raw_id: &str,
    params: &HashMap<String, String>,
    max_limit: u32,
) -> Result<warp::reply::Json, QueryError> {
    let bad_session = |code, message| {
        QueryError::BadParameter(FieldError {
            field: "session_id".into(),
            code,
            message,
        })
    };
    // Path segments arrive percent-encoded; session ids may hold any printable character.
    let decoded = percent_encoding::percent_decode_str(raw_id)
        .decode_utf8()
        .map_err(|_| bad_session("invalid_utf8", "session_id must be UTF-8".into()))?;
    let session =
        SessionId::parse(&decoded).map_err(|(code, message)| bad_session(code, message))?;
    let limit = parse_limit(params, max_limit)?;
    let rows = store.session_events(&session, limit).await?;
    if rows.is_empty() {
        return Err(QueryError::SessionNotFound(session.into_string()));
    }
    Ok(warp::reply::json(&SessionEvents {
        session_id: session.into_string(),
        events: rows.into_iter().map(EventView::from).collect(),
    }))
}

fn parse_limit(params: &HashMap<String, String>, max: u32) -> Result<u32, QueryError> {
    for key in params.keys() {
        if key != "limit" {
            return Err(QueryError::BadParameter(FieldError {
                field: key.clone(),
                code: "unknown_parameter",
                message: "unknown parameter; this endpoint takes: limit".into(),
            }));
        }
    }
    let Some(raw) = params.get("limit") else {
        return Ok(DEFAULT_LIMIT.min(max));
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(QueryError::BadParameter(FieldError {
            field: "limit".into(),
            code: "out_of_range",
            message: format!("limit must be an integer from 1 to {max}"),
        })),
    }
}

fn route_of(path: &str) -> &'static str {
    if path.starts_with("/v1/sessions/") && path.ends_with("/events") {
        return "/v1/sessions/{session_id}/events";
    }
    eye_web::metrics::ops_route(path).unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn limit_parameter() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<u32, &'a str>);
        let cases: &[Case] = &[
            (&[], Ok(1_000)),
            (&[("limit", "1")], Ok(1)),
            (&[("limit", "5000")], Ok(5_000)),
            (&[("limit", "0")], Err("limit")),
            (&[("limit", "5001")], Err("limit")),
            (&[("limit", "-1")], Err("limit")),
            (&[("limit", "ten")], Err("limit")),
            (&[("order", "asc")], Err("order")),
        ];
        for (input, want) in cases {
            let got = parse_limit(&params(input), 5_000).map_err(|e| match e {
                QueryError::BadParameter(f) => f.field,
                other => panic!("unexpected {other}"),
            });
            assert_eq!(got, want.map_err(str::to_owned), "{input:?}");
        }
    }
}
