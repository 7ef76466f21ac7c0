//! `GET /events`, the listing two REST event services share: numbered pages of ten
//! events, newest first, as Django REST framework pages them
//! (`{count, next, previous, results}`).
//!
//! - Filters `session_id`, `category`, `start_time` and `end_time` combine freely. A time
//!   is a date (`2022-01-01`, the whole day) or a timestamp (ISO 8601 or
//!   `YYYY-MM-DD HH:MM:SS.ffffff`, UTC without a zone); both ends are inclusive.
//! - The time range may also come as a JSON body on the GET,
//!   `{"start_time": ..., "end_time": ...}`. A bound given in both places must be the same
//!   text, else 400 `conflicting_values`: neither place silently wins.
//! - `?page=N`, from 1. Page 1 always exists (empty when nothing matches); a later page
//!   past the last is 404 `invalid_page` in the one error shape (DRF's "Invalid page.").
//! - `next` and `previous` are absolute URLs built from the request's `Host`, keeping the
//!   filters (the body's bound ones too, as query parameters), `null` at either end; as in
//!   DRF, the link to page 1 carries no `page`.
//! - The newest first by the stored event time, ties by event id and session; `count` and
//!   the pages count each event once.

use crate::error::QueryError;
use crate::params::{self, Params};
use crate::time_bound;
use crate::view::{self, SentEvent};
use eye_model::event::{Category, FieldError, SessionId};
use eye_store::{EventFilter, EventRow};
use serde::Serialize;
use serde_json::{Map, Value};

pub const PAGE_SIZE: u32 = 10;
/// Pages beyond this are refused before storage is asked: a million events deep.
pub const MAX_PAGE: u64 = 100_000;
const PARAMETERS: &[&str] = &["session_id", "category", "start_time", "end_time", "page"];
const BODY_FIELDS: &[&str] = &["start_time", "end_time"];

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::BadParameter(FieldError::new(field, code, message))
}

/// A page asked for: the filters, the page number and how to link to its neighbours.
#[derive(Debug, Clone)]
pub struct Request {
    filter: EventFilter,
    page: u64,
    /// The filters as query parameters, in the order sent, without `page`.
    links: Vec<(String, String)>,
    base: String,
}

/// Reads the query string (`raw` as sent, `params` decoded), the optional JSON body and the
/// `Host` the request came to.
pub fn request(
    raw: &str,
    params: &Params,
    body: Option<&Map<String, Value>>,
    host: Option<&str>,
) -> Result<Request, QueryError> {
    params::only(params, PARAMETERS)?;
    let mut links: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut bounds: Vec<Option<String>> = vec![None; BODY_FIELDS.len()];
    for (i, field) in BODY_FIELDS.iter().enumerate() {
        let in_query = params.get(*field).cloned();
        let in_body = body.map(|b| body_text(b, field)).transpose()?.flatten();
        bounds[i] = match (in_query, in_body) {
            (Some(q), Some(b)) if q != b => {
                return Err(bad(
                    field,
                    "conflicting_values",
                    format!("{field} differs between the query string and the body"),
                ))
            }
            (Some(q), _) => Some(q),
            (None, Some(b)) => {
                links.push(((*field).to_owned(), b.clone()));
                Some(b)
            }
            (None, None) => None,
        };
    }
    if let Some(extra) = body.and_then(|b| b.keys().find(|k| !BODY_FIELDS.contains(&k.as_str()))) {
        return Err(bad(
            extra,
            "unknown_field",
            "the body may hold only start_time and end_time",
        ));
    }
    let (from_us, to_us) = time_bound::range(
        ("start_time", bounds[0].as_deref()),
        ("end_time", bounds[1].as_deref()),
    )?;
    let page = page(params)?;
    Ok(Request {
        filter: EventFilter {
            session_id: params::text(params, "session_id", SessionId::parse)?,
            category: params::text(params, "category", Category::parse)?,
            from_us,
            to_us,
            descending: true,
            offset: (page - 1) * u64::from(PAGE_SIZE),
            limit: PAGE_SIZE,
            ..EventFilter::default()
        },
        page,
        links,
        base: format!("http://{}/events", host.unwrap_or("localhost")),
    })
}

/// A body bound: text, or an epoch number as its text.
fn body_text(body: &Map<String, Value>, field: &str) -> Result<Option<String>, QueryError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(bad(
            field,
            "wrong_type",
            format!("{field} must be a date or a timestamp, as text"),
        )),
    }
}

fn page(params: &Params) -> Result<u64, QueryError> {
    let Some(raw) = params.get("page") else {
        return Ok(1);
    };
    match raw.parse::<u64>() {
        Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        _ => Err(bad(
            "page",
            "invalid_page",
            format!("page must be an integer from 1 to {MAX_PAGE}"),
        )),
    }
}

/// One page, as DRF's `PageNumberPagination` answers.
#[derive(Debug, Serialize)]
pub struct Page {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<SentEvent>,
}

impl Request {
    /// What storage is asked for: the page's events, and (with its offset and limit
    /// ignored) the count of every match.
    pub fn filter(&self) -> &EventFilter {
        &self.filter
    }

    /// Refuses a page past the last, once the count is known; page 1 always exists.
    pub fn check_page(&self, count: u64) -> Result<(), QueryError> {
        let pages = count.div_ceil(u64::from(PAGE_SIZE)).max(1);
        if self.page > pages {
            return Err(QueryError::PageNotFound(FieldError::new(
                "page",
                "invalid_page",
                format!("page {} is past the last page, {pages}", self.page),
            )));
        }
        Ok(())
    }

    pub fn answer(&self, count: u64, rows: Vec<EventRow>) -> Page {
        let last = count.div_ceil(u64::from(PAGE_SIZE)).max(1);
        Page {
            count,
            next: (self.page < last).then(|| self.link(Some(self.page + 1))),
            previous: (self.page > 1).then(|| self.link((self.page > 2).then_some(self.page - 1))),
            results: rows.into_iter().map(view::sent_event).collect(),
        }
    }

    fn link(&self, page: Option<u64>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.links {
            query.append_pair(k, v);
        }
        if let Some(n) = page {
            query.append_pair("page", &n.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            self.base.clone()
        } else {
            format!("{}?{query}", self.base)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(raw: &str, body: Option<Value>) -> Result<Request, QueryError> {
        let params = params::parse_query(raw)?;
        let body = body.and_then(|b| b.as_object().cloned());
        request(raw, &params, body.as_ref(), Some("eye.test:8000"))
    }

    fn code(e: QueryError) -> String {
        match e {
            QueryError::BadParameter(f) | QueryError::PageNotFound(f) => {
                format!("{}:{}", f.field, f.code)
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn filters_combine_from_the_query_and_the_body() {
        // (query, body, session, category, from_us, to_us, offset) or the error
        type Want = Result<
            (
                Option<&'static str>,
                Option<&'static str>,
                Option<i64>,
                Option<i64>,
                u64,
            ),
            &'static str,
        >;
        let jan = Some(1_640_995_200_000_000);
        let feb_end = Some(1_643_760_000_000_000);
        let cases: Vec<(&str, Option<Value>, Want)> = vec![
            ("", None, Ok((None, None, None, None, 0))),
            (
                "session_id=abc123",
                None,
                Ok((Some("abc123"), None, None, None, 0)),
            ),
            (
                "category=name&page=3",
                None,
                Ok((None, Some("name"), None, None, 20)),
            ),
            (
                "session_id=abc123&category=name&start_time=2022-01-01&end_time=2022-02-01",
                None,
                Ok((Some("abc123"), Some("name"), jan, feb_end, 0)),
            ),
            (
                "",
                Some(json!({"start_time": "2022-01-01", "end_time": "2022-02-01"})),
                Ok((None, None, jan, feb_end, 0)),
            ),
            (
                "start_time=2022-01-01",
                Some(json!({"start_time": "2022-01-01", "end_time": "2022-02-01"})),
                Ok((None, None, jan, feb_end, 0)),
            ),
            (
                "start_time=2022-01-02",
                Some(json!({"start_time": "2022-01-01"})),
                Err("start_time:conflicting_values"),
            ),
            (
                "",
                Some(json!({"session_id": "s"})),
                Err("session_id:unknown_field"),
            ),
            (
                "",
                Some(json!({"end_time": true})),
                Err("end_time:wrong_type"),
            ),
            (
                "start_time=2022-02-02&end_time=2022-02-01",
                None,
                Err("start_time:start_after_end"),
            ),
            ("start_time=soon", None, Err("start_time:invalid_timestamp")),
            ("page=0", None, Err("page:invalid_page")),
            ("page=two", None, Err("page:invalid_page")),
            ("page=100001", None, Err("page:invalid_page")),
            ("name=x", None, Err("name:unknown_parameter")),
            ("category=a%0Ab", None, Err("category:invalid_characters")),
        ];
        for (raw, body, want) in cases {
            let got = read(raw, body.clone()).map_err(code).map(|r| {
                let f = r.filter().clone();
                (f.session_id, f.category, f.from_us, f.to_us, f.offset)
            });
            let got = got
                .as_ref()
                .map(|(s, c, f, t, o)| (s.as_deref(), c.as_deref(), *f, *t, *o));
            assert_eq!(got.map_err(String::as_str), want, "{raw} {body:?}");
        }
        let f = read("", None).expect("valid").filter().clone();
        assert_eq!((f.descending, f.limit), (true, PAGE_SIZE));
    }

    #[test]
    fn pages_link_to_their_neighbours_keeping_the_filters() {
        // (query, body, count, next, previous) or the page's error
        type Want = Result<(Option<&'static str>, Option<&'static str>), &'static str>;
        let cases: Vec<(&str, Option<Value>, u64, Want)> = vec![
            ("", None, 0, Ok((None, None))),
            ("", None, 10, Ok((None, None))),
            ("", None, 11, Ok((Some("http://eye.test:8000/events?page=2"), None))),
            ("page=2", None, 11, Ok((None, Some("http://eye.test:8000/events")))),
            ("page=3", None, 11, Err("page:invalid_page")),
            ("page=2", None, 0, Err("page:invalid_page")),
            (
                "category=form+interaction&page=2&session_id=a%26b",
                None,
                31,
                Ok((
                    Some("http://eye.test:8000/events?category=form+interaction&session_id=a%26b&page=3"),
                    Some("http://eye.test:8000/events?category=form+interaction&session_id=a%26b"),
                )),
            ),
            (
                "page=3",
                Some(json!({"start_time": "2022-01-01 00:00:00.000000"})),
                40,
                Ok((
                    Some("http://eye.test:8000/events?start_time=2022-01-01+00%3A00%3A00.000000&page=4"),
                    Some("http://eye.test:8000/events?start_time=2022-01-01+00%3A00%3A00.000000&page=2"),
                )),
            ),
        ];
        for (raw, body, count, want) in cases {
            let r = read(raw, body).expect("valid");
            let got = r.check_page(count).map_err(code).map(|()| {
                let page = r.answer(count, Vec::new());
                assert_eq!(page.count, count);
                (page.next, page.previous)
            });
            let got = got.as_ref().map(|(n, p)| (n.as_deref(), p.as_deref()));
            assert_eq!(got.map_err(String::as_str), want, "{raw} ({count})");
        }
    }
}
