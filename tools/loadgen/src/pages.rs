//! Every page of a query-API listing: requests follow `next_cursor` until a page has none.
//! The end-to-end tests, the fault-injection suite and the benchmarks read listings with
//! this one walker.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;

/// RFC 3986's unreserved characters stay as they are; everything else in a value is
/// percent-encoded.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One listing to walk.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    /// The query service's base URL, e.g. `http://127.0.0.1:8081`.
    pub base: &'a str,
    /// Path and query, without `cursor`: `/v1/rejected?reason=undecodable`.
    pub path: &'a str,
    /// The array each page carries its items in: `events`, `rejected`, `sessions`.
    pub key: &'a str,
    /// Sent as `Authorization: Bearer`; needs the listing's read scope.
    pub api_key: &'a str,
    /// `limit` of every request; `None` when `path` carries it or the service's default
    /// will do.
    pub limit: Option<u32>,
}

/// Why a walk stopped; `page` counts from 1, `url` is the request that failed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("page {page}, GET {url}: {source}")]
    Transport {
        page: usize,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("page {page}, GET {url}: answered {status}: {body}")]
    Status {
        page: usize,
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("page {page}, GET {url}: {source}")]
    Shape {
        page: usize,
        url: String,
        #[source]
        source: ShapeError,
    },
}

/// A 200 answer that is not a page of the listing.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no `{0}` array")]
    NoItems(String),
    #[error("an item of `{key}`: {source}")]
    Item {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`next_cursor` is neither a string nor null")]
    Cursor,
}

/// Items of every page, in order. Anything but `200` stops the walk.
pub async fn walk<T: DeserializeOwned>(
    http: &reqwest::Client,
    listing: Listing<'_>,
) -> Result<Vec<T>, PageError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 1.. {
        let url = page_url(listing, cursor.as_deref());
        let transport = |source| PageError::Transport {
            page,
            url: url.clone(),
            source,
        };
        let res = http
            .get(&url)
            .bearer_auth(listing.api_key)
            .send()
            .await
            .map_err(transport)?;
        let status = res.status();
        let body = res.bytes().await.map_err(transport)?;
        if status != reqwest::StatusCode::OK {
            return Err(PageError::Status {
                page,
                url,
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let (mut these, next) =
            read_page(&body, listing.key).map_err(|source| PageError::Shape {
                page,
                url: url.clone(),
                source,
            })?;
        items.append(&mut these);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(items)
}

/// The request for one page: `path` with `limit` and `cursor` added to its query.
pub fn page_url(listing: Listing<'_>, cursor: Option<&str>) -> String {
    let mut url = format!("{}{}", listing.base.trim_end_matches('/'), listing.path);
    let mut sep = if listing.path.contains('?') { '&' } else { '?' };
    let mut add = |name: &str, value: &str| {
        url.push(sep);
        url.push_str(name);
        url.push('=');
        url.extend(percent_encoding::utf8_percent_encode(value, VALUE));
        sep = '&';
    };
    if let Some(limit) = listing.limit {
        add("limit", &limit.to_string());
    }
    if let Some(c) = cursor {
        add("cursor", c);
    }
    url
}

/// One page's items under `key`, and the cursor of the next page if there is one.
pub fn read_page<T: DeserializeOwned>(
    body: &[u8],
    key: &str,
) -> Result<(Vec<T>, Option<String>), ShapeError> {
    let mut page: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)?;
    let items = match page.remove(key) {
        Some(serde_json::Value::Array(items)) => items,
        _ => return Err(ShapeError::NoItems(key.to_owned())),
    };
    let items = items
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|source| ShapeError::Item {
            key: key.to_owned(),
            source,
        })?;
    let next = match page.remove("next_cursor") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(c)) => Some(c),
        Some(_) => return Err(ShapeError::Cursor),
    };
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(path: &str, limit: Option<u32>) -> Listing<'_> {
        Listing {
            base: "http://q:8081/",
            path,
            key: "events",
            api_key: "k",
            limit,
        }
    }

    #[test]
    fn page_urls() {
        // (path, limit, cursor, url)
        let cases: &[(&str, Option<u32>, Option<&str>, &str)] = &[
            ("/v1/events", None, None, "http://q:8081/v1/events"),
            (
                "/v1/events",
                Some(100),
                None,
                "http://q:8081/v1/events?limit=100",
            ),
            (
                "/v1/rejected?reason=undecodable",
                Some(1000),
                Some("abc"),
                "http://q:8081/v1/rejected?reason=undecodable&limit=1000&cursor=abc",
            ),
            (
                "/v1/rejected?limit=7",
                None,
                Some("a-b_c"),
                "http://q:8081/v1/rejected?limit=7&cursor=a-b_c",
            ),
            // A cursor is opaque: whatever it holds arrives as it was sent.
            (
                "/v1/events",
                None,
                Some("a+b/c="),
                "http://q:8081/v1/events?cursor=a%2Bb%2Fc%3D",
            ),
        ];
        for (path, limit, cursor, url) in cases {
            assert_eq!(page_url(listing(path, *limit), *cursor), *url, "{path}");
        }
    }

    #[test]
    fn pages() {
        type Page = Result<(Vec<u32>, Option<String>), String>;
        // (body, key, items and next cursor, or the error's text)
        let cases: &[(&str, &str, Page)] = &[
            (
                r#"{"events":[1,2],"next_cursor":"c2"}"#,
                "events",
                Ok((vec![1, 2], Some("c2".into()))),
            ),
            (
                r#"{"events":[],"next_cursor":null}"#,
                "events",
                Ok((vec![], None)),
            ),
            (
                r#"{"session_id":"s","events":[3]}"#,
                "events",
                Ok((vec![3], None)),
            ),
            (
                r#"{"rejected":[1]}"#,
                "events",
                Err("no `events` array".into()),
            ),
            (
                r#"{"events":{"a":1}}"#,
                "events",
                Err("no `events` array".into()),
            ),
            (
                r#"{"events":["x"]}"#,
                "events",
                Err("an item of `events`: invalid type: string \"x\", expected u32".into()),
            ),
            (
                r#"{"events":[],"next_cursor":7}"#,
                "events",
                Err("`next_cursor` is neither a string nor null".into()),
            ),
            (
                "[1]",
                "events",
                Err("not JSON: invalid type: sequence, expected a map at line 1 column 0".into()),
            ),
        ];
        for (body, key, want) in cases {
            let got = read_page::<u32>(body.as_bytes(), key).map_err(|e| e.to_string());
            assert_eq!(&got, want, "{body}");
        }
    }
}
