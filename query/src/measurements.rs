//! The measurement tracker's aggregation, `GET /api/events/{namespace}/{name}?tsMin=&
//! tsMax=&granularity=&aggregationType=`: the `value`s of one (namespace, name) — stored as
//! (category, name) — aggregated per calendar group in UTC, weeks from Monday, through the
//! same storage aggregation and calendar as `GET /v1/aggregate`.
//!
//! - `tsMin` and `tsMax` are Unix seconds (fractions allowed), both inclusive, either
//!   absent for an open end.
//! - `granularity` is `minute`, `hour`, `day`, `week`, `month`, `year` or `none` (the
//!   default: one group); `aggregationType` is `avg` (the default), `min` or `max`.
//! - The answer lists `{aggregatedTimestamp, value}` for each group holding events, in
//!   time order; `aggregatedTimestamp` is the group's first instant (ISO 8601, UTC), and
//!   for `none` the time of the first event aggregated.

use crate::error::QueryError;
use crate::params::{self, Params};
use chrono::SecondsFormat;
use eye_model::aggregate::{Aggregation, Calendar, Fill, Found, Granularity, TooManyBuckets};
use eye_model::event::{Category, EventName, FieldError};
use eye_model::time::EventTime;
use eye_store::{AggregateFilter, BucketRow};
use serde::Serialize;

const PARAMETERS: &[&str] = &["tsMin", "tsMax", "granularity", "aggregationType"];
const AGGREGATIONS: [Aggregation; 3] = [Aggregation::Avg, Aggregation::Min, Aggregation::Max];

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::BadParameter(FieldError::new(field, code, message))
}

/// An aggregation asked for.
#[derive(Debug, Clone)]
pub struct Request {
    filter: AggregateFilter,
    calendar: Calendar,
}

/// The path's two segments as sent (percent-encoded) and the query's parameters.
pub fn request(namespace: &str, name: &str, params: &Params) -> Result<Request, QueryError> {
    let namespace = params::path_id(namespace, "namespace", |s| {
        Category::parse(s)
            .map(drop)
            .map_err(|(code, m)| (code, m.replace("category", "namespace")))
    })?;
    let name = params::path_id(name, "name", |s| EventName::parse(s).map(drop))?;
    params::only(params, PARAMETERS)?;
    let from = seconds(params, "tsMin")?;
    let to = seconds(params, "tsMax")?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(bad(
                "tsMin",
                "from_after_to",
                "tsMin must not be after tsMax",
            ));
        }
    }
    let granularity = params::choice(
        params,
        "granularity",
        &Granularity::ALL,
        Granularity::as_str,
        Granularity::None,
    )?;
    let aggregation = params::choice(
        params,
        "aggregationType",
        &AGGREGATIONS,
        Aggregation::as_str,
        Aggregation::Avg,
    )?;
    // `tsMax` includes its own instant: the range is [tsMin, tsMax + 1 µs).
    let to_exclusive = to.map(|t| EventTime::from_micros(t.as_micros() + 1));
    // The one group of `none` starts with its first event, whatever the range.
    let range = match granularity {
        Granularity::None => (None, None),
        _ => (from, to_exclusive),
    };
    let calendar = Calendar::new(granularity, chrono_tz::UTC, Fill::None, range.0, range.1)
        .map_err(too_many)?;
    Ok(Request {
        filter: AggregateFilter {
            category: namespace,
            name,
            from_us: from.map(EventTime::as_micros),
            to_us: to_exclusive.map(EventTime::as_micros),
            granularity,
            aggregation,
            tz: "UTC".into(),
            limit: Calendar::STORAGE_LIMIT as u32,
        },
        calendar,
    })
}

/// Unix seconds, from 0 to [`EventTime::MAX_QUERYABLE`].
fn seconds(params: &Params, field: &str) -> Result<Option<EventTime>, QueryError> {
    let Some(raw) = params.get(field) else {
        return Ok(None);
    };
    let max_s = EventTime::MAX_QUERYABLE.as_micros() / 1_000_000;
    match raw.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=max_s as f64).contains(&s) => {
            Ok(Some(EventTime::from_micros((s * 1e6).round() as i64)))
        }
        _ => Err(bad(
            field,
            "invalid_timestamp",
            format!("{field} must be Unix seconds from 0 to {max_s}"),
        )),
    }
}

fn too_many(e: TooManyBuckets) -> QueryError {
    bad("granularity", "too_many_buckets", e.to_string())
}

/// One group of the answer.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub aggregated_timestamp: String,
    pub value: f64,
}

impl Request {
    pub fn filter(&self) -> &AggregateFilter {
        &self.filter
    }

    /// The groups storage found, each at its first instant.
    pub fn answer(&self, rows: Vec<BucketRow>) -> Result<Vec<Group>, QueryError> {
        let found = rows.into_iter().map(|r| Found {
            start_s: r.start_s,
            first_us: r.first_us,
            value: r.value,
            events: r.events,
        });
        let buckets = self.calendar.buckets(found).map_err(too_many)?;
        Ok(buckets
            .into_iter()
            .filter_map(|b| {
                Some(Group {
                    aggregated_timestamp: b.start.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    value: b.value?,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: QueryError) -> String {
        match e {
            QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn the_path_and_query_become_one_aggregation() {
        // (namespace, name, query) → (category, name, granularity, aggregation, from, to)
        type Want = Result<
            (
                &'static str,
                &'static str,
                &'static str,
                &'static str,
                Option<i64>,
                Option<i64>,
            ),
            &'static str,
        >;
        let cases: Vec<(&str, &str, &str, Want)> = vec![
            (
                "this%20is%20namespace",
                "this%20is%20a%20name",
                "tsMin=42&tsMax=69&granularity=month&aggregationType=avg",
                Ok((
                    "this is namespace",
                    "this is a name",
                    "month",
                    "avg",
                    Some(42_000_000),
                    Some(69_000_001),
                )),
            ),
            (
                "Server-1",
                "availableMemory",
                "",
                Ok(("Server-1", "availableMemory", "none", "avg", None, None)),
            ),
            (
                "Frontend",
                "pageView",
                "granularity=week&aggregationType=max&tsMin=1605179400.5",
                Ok((
                    "Frontend",
                    "pageView",
                    "week",
                    "max",
                    Some(1_605_179_400_500_000),
                    None,
                )),
            ),
            (
                "Frontend",
                "pageView",
                "aggregationType=min",
                Ok(("Frontend", "pageView", "none", "min", None, None)),
            ),
            (
                "Frontend",
                "pageView",
                "aggregationType=sum",
                Err("aggregationType:invalid_choice"),
            ),
            (
                "Frontend",
                "pageView",
                "granularity=fortnight",
                Err("granularity:invalid_choice"),
            ),
            (
                "Frontend",
                "pageView",
                "tsMin=yesterday",
                Err("tsMin:invalid_timestamp"),
            ),
            (
                "Frontend",
                "pageView",
                "tsMax=-1",
                Err("tsMax:invalid_timestamp"),
            ),
            (
                "Frontend",
                "pageView",
                "tsMin=70&tsMax=69",
                Err("tsMin:from_after_to"),
            ),
            (
                "Frontend",
                "pageView",
                "agg=avg",
                Err("agg:unknown_parameter"),
            ),
            (
                "%20lead",
                "pageView",
                "",
                Err("namespace:invalid_characters"),
            ),
            ("Frontend", "%FF", "", Err("name:invalid_utf8")),
            (
                "Frontend",
                "pageView",
                "granularity=minute&tsMin=0&tsMax=4000000000",
                Err("granularity:too_many_buckets"),
            ),
        ];
        for (namespace, name, query, want) in cases {
            let params = params::parse_query(query).expect("a query string");
            let got = request(namespace, name, &params).map_err(code);
            let got = got.as_ref().map(|r| {
                let f = r.filter();
                (
                    f.category.as_str(),
                    f.name.as_str(),
                    f.granularity.as_str(),
                    f.aggregation.as_str(),
                    f.from_us,
                    f.to_us,
                )
            });
            assert_eq!(
                got.map_err(String::as_str),
                want,
                "{namespace}/{name}?{query}"
            );
        }
    }

    #[test]
    fn groups_start_at_their_first_instant() {
        let row = |start_s, first_us, value| BucketRow {
            start_s,
            value,
            events: 2,
            first_us,
        };
        // (query, rows, answer)
        let cases = [
            (
                "granularity=week&tsMin=1605139200",
                // Monday 2020-11-09 and Monday 2020-11-16, as storage's toMonday gives them.
                vec![
                    row(1_604_880_000, 1_605_179_400_000_000, 1.5),
                    row(1_605_484_800, 1_605_484_800_000_000, 3.0),
                ],
                vec![("2020-11-09T00:00:00Z", 1.5), ("2020-11-16T00:00:00Z", 3.0)],
            ),
            (
                "granularity=month",
                vec![row(1_604_188_800, 1_605_179_400_000_000, 2.0)],
                vec![("2020-11-01T00:00:00Z", 2.0)],
            ),
            // `none`: the first event's time, even with a range given.
            (
                "granularity=none&tsMin=0",
                vec![row(0, 1_605_179_400_243_860, 7.0)],
                vec![("2020-11-12T11:10:00.243860Z", 7.0)],
            ),
            ("granularity=day", vec![], vec![]),
        ];
        for (query, rows, want) in cases {
            let params = params::parse_query(query).expect("a query string");
            let r = request("n", "e", &params).expect("valid");
            let got = r.answer(rows).expect("few groups");
            let got: Vec<(&str, f64)> = got
                .iter()
                .map(|g| (g.aggregated_timestamp.as_str(), g.value))
                .collect();
            assert_eq!(got, want, "{query}");
        }
    }
}
