//! Typed reads of the query API. Listings are `Stream`s that follow the keyset cursors
//! (`next_cursor`) until the last page, so a caller walks every match once.

use crate::error::{retry_after, ClientError};
use crate::retry::Retries;
use crate::Client;
use eye_model::api::{
    Aggregate, Categories, EventPage, EventView, RejectedPage, RejectedView, SessionDetail,
    SessionEvents,
};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

/// Filters of `GET /v1/events`; every field is optional. Times in any form the API takes
/// (RFC 3339 is the plainest); `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// One session's events.
    pub session_id: Option<String>,
    /// One category's.
    pub category: Option<String>,
    /// One name's.
    pub name: Option<String>,
    /// From this time on, inclusive.
    pub from: Option<String>,
    /// Before this time.
    pub to: Option<String>,
    /// Newest first.
    pub descending: bool,
    /// Events per request (1–1,000; the service's default when `None`).
    pub page_size: Option<u32>,
}

impl EventQuery {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        let fields = [
            ("session_id", &self.session_id),
            ("category", &self.category),
            ("name", &self.name),
            ("from", &self.from),
            ("to", &self.to),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                p.push((key, v.clone()));
            }
        }
        if self.descending {
            p.push(("order", "desc".into()));
        }
        if let Some(n) = self.page_size {
            p.push(("limit", n.to_string()));
        }
        p
    }
}

/// `GET /v1/aggregate`: the `value`s of one event type per bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateQuery {
    /// The event type's category.
    pub category: String,
    /// The event type's name.
    pub name: String,
    /// From this time on, inclusive.
    pub from: Option<String>,
    /// Before this time.
    pub to: Option<String>,
    /// `minute`, `hour`, `day`, `week`, `month`, `year` or `none` (the service's default).
    pub granularity: Option<String>,
    /// `avg` (default), `min`, `max`, `sum`, `count`, `p50`, `p90`, `p95`, `p99`.
    pub agg: Option<String>,
    /// An IANA zone; UTC by default.
    pub tz: Option<String>,
    /// `none` (default), `zero` or `null`.
    pub fill: Option<String>,
}

impl AggregateQuery {
    /// The type's aggregation with the service's defaults (one bucket, `avg`, UTC).
    pub fn new(category: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            category: category.into(),
            name: name.into(),
            from: None,
            to: None,
            granularity: None,
            agg: None,
            tz: None,
            fill: None,
        }
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("category", self.category.clone()),
            ("name", self.name.clone()),
        ];
        let fields = [
            ("from", &self.from),
            ("to", &self.to),
            ("granularity", &self.granularity),
            ("agg", &self.agg),
            ("tz", &self.tz),
            ("fill", &self.fill),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                p.push((key, v.clone()));
            }
        }
        p
    }
}

/// `GET /v1/rejected`: quarantined requests and events, in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectedQuery {
    /// One rule's code (`invalid_timestamp`, …).
    pub reason: Option<String>,
    /// Received from this time on, inclusive.
    pub from: Option<String>,
    /// Received before this time.
    pub to: Option<String>,
    /// Records per request (1–1,000; the service's default when `None`).
    pub page_size: Option<u32>,
}

impl RejectedQuery {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        for (key, value) in [
            ("reason", &self.reason),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = value {
                p.push((key, v.clone()));
            }
        }
        if let Some(n) = self.page_size {
            p.push(("limit", n.to_string()));
        }
        p
    }
}

/// A page of a listing and the cursor of the next one.
trait Page: DeserializeOwned {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl Page for EventPage {
    type Item = EventView;
    fn into_parts(self) -> (Vec<EventView>, Option<String>) {
        (self.events, self.next_cursor)
    }
}

impl Page for RejectedPage {
    type Item = RejectedView;
    fn into_parts(self) -> (Vec<RejectedView>, Option<String>) {
        (self.rejected, self.next_cursor)
    }
}

impl Client {
    /// `GET /v1/sessions/{id}`: the session's lifecycle, statistics and its first
    /// `events_limit` events (the service's default page when `None`).
    pub async fn session(
        &self,
        session_id: &str,
        events_limit: Option<u32>,
    ) -> Result<SessionDetail, ClientError> {
        let params: Vec<(&str, String)> = events_limit
            .map(|n| vec![("limit", n.to_string())])
            .unwrap_or_default();
        self.get(&["v1", "sessions", session_id], &params).await
    }

    /// `GET /v1/sessions/{id}/events`: the session's lifecycle and all its events (up to
    /// the service's `EYE_QUERY_SESSION_EVENTS_MAX`), in time order.
    pub async fn session_events(&self, session_id: &str) -> Result<SessionEvents, ClientError> {
        self.get(&["v1", "sessions", session_id, "events"], &[])
            .await
    }

    /// Every event matching `query`, page after page, each once.
    pub fn events(
        &self,
        query: &EventQuery,
    ) -> impl Stream<Item = Result<EventView, ClientError>> + Send + 'static {
        self.pages::<EventPage>(&["v1", "events"], query.params())
    }

    /// `GET /v1/aggregate`.
    pub async fn aggregate(&self, query: &AggregateQuery) -> Result<Aggregate, ClientError> {
        self.get(&["v1", "aggregate"], &query.params()).await
    }

    /// `GET /v1/categories`: every event type stored, with counts.
    pub async fn categories(&self) -> Result<Categories, ClientError> {
        self.get(&["v1", "categories"], &[]).await
    }

    /// Every quarantined record matching `query`, page after page.
    pub fn rejected(
        &self,
        query: &RejectedQuery,
    ) -> impl Stream<Item = Result<RejectedView, ClientError>> + Send + 'static {
        self.pages::<RejectedPage>(&["v1", "rejected"], query.params())
    }

    fn pages<P: Page + Send + 'static>(
        &self,
        path: &[&str],
        params: Vec<(&'static str, String)>,
    ) -> impl Stream<Item = Result<P::Item, ClientError>> + Send + 'static
    where
        P::Item: Send + 'static,
    {
        let client = self.clone();
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        // State: the next page's cursor; `None` once the last page was read.
        futures::stream::try_unfold(Some(None::<String>), move |cursor| {
            let (client, path, mut params) = (client.clone(), path.clone(), params.clone());
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                if let Some(c) = cursor {
                    params.push(("cursor", c));
                }
                let segments: Vec<&str> = path.iter().map(String::as_str).collect();
                let page: P = client.get(&segments, &params).await?;
                let (items, next) = page.into_parts();
                Ok(Some((items, next.map(Some))))
            }
        })
        .map_ok(|items| futures::stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    /// A GET of the query API, retried as sends are while the answer is 429, 503 or no
    /// answer at all.
    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        params: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let url = self.query_url(segments)?;
        let mut retries = Retries::new(&self.inner.send_config.retry);
        let mut token_renewed = false;
        loop {
            match self.get_once(&url, params).await {
                Err(e)
                    if e.status() == Some(401)
                        && !token_renewed
                        && self.inner.auth.forget_token().await =>
                {
                    token_renewed = true;
                }
                Err(e) if e.is_retryable() => match retries.next_pause(e.retry_after()) {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }

    async fn get_once<T: DeserializeOwned>(
        &self,
        url: &reqwest::Url,
        params: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let auth = self.inner.auth.header().await?;
        let res = self
            .inner
            .http
            .get(url.clone())
            .query(params)
            .header(reqwest::header::AUTHORIZATION, auth)
            .send()
            .await
            .map_err(|e| ClientError::transport(url.as_str(), e))?;
        let status = res.status().as_u16();
        let retry_after = retry_after(res.headers());
        let text = res
            .text()
            .await
            .map_err(|e| ClientError::transport(url.as_str(), e))?;
        if status != 200 {
            return Err(ClientError::from_answer(status, retry_after, &text));
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Decode(format!("{url}: {e}")))
    }

    /// The query service's URL of a path, each segment percent-encoded.
    fn query_url(&self, segments: &[&str]) -> Result<reqwest::Url, ClientError> {
        let base = self.inner.query.as_ref().ok_or(ClientError::NoQueryUrl)?;
        Ok(crate::join(base, segments))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_send_only_what_was_set() {
        let q = EventQuery {
            category: Some("page_interaction".into()),
            from: Some("2024-01-01T00:00:00Z".into()),
            descending: true,
            page_size: Some(50),
            ..EventQuery::default()
        };
        assert_eq!(
            q.params(),
            vec![
                ("category", "page_interaction".to_owned()),
                ("from", "2024-01-01T00:00:00Z".to_owned()),
                ("order", "desc".to_owned()),
                ("limit", "50".to_owned()),
            ]
        );
        assert!(EventQuery::default().params().is_empty());
        let a = AggregateQuery {
            granularity: Some("day".into()),
            ..AggregateQuery::new("m", "cpu")
        };
        assert_eq!(
            a.params(),
            vec![
                ("category", "m".to_owned()),
                ("name", "cpu".to_owned()),
                ("granularity", "day".to_owned()),
            ]
        );
        let r = RejectedQuery {
            reason: Some("invalid_timestamp".into()),
            ..RejectedQuery::default()
        };
        assert_eq!(r.params(), vec![("reason", "invalid_timestamp".to_owned())]);
    }
}
