//! `GET /v1/aggregate`: its parameters read into one request, and the buckets storage found
//! turned into the answer. Where buckets start and which are filled is the model's
//! calendar ([`Calendar`]).

use crate::error::QueryError;
use crate::params::{self, Params};
use crate::view::{self, Aggregate};
use eye_model::aggregate::{Aggregation, Calendar, Fill, Found, Granularity, TooManyBuckets};
use eye_model::event::{Category, EventName, FieldError};
use eye_store::{AggregateFilter, BucketRow};

const PARAMETERS: &[&str] = &[
    "category",
    "name",
    "from",
    "to",
    "granularity",
    "agg",
    "tz",
    "fill",
];

/// An aggregation asked for: one event type's values, aggregated per calendar bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    category: String,
    name: String,
    aggregation: Aggregation,
    calendar: Calendar,
}

/// `?category=&name=&from=&to=&granularity=&agg=&tz=&fill=`, checked; a range of more
/// buckets than an answer may hold is refused here, before storage is asked.
pub fn request(params: &Params) -> Result<Request, QueryError> {
    params::only(params, PARAMETERS)?;
    let category = params::required_text(params, "category", Category::parse)?;
    let name = params::required_text(params, "name", EventName::parse)?;
    let (from, to) = params::range(params)?;
    let granularity = params::choice(
        params,
        "granularity",
        &Granularity::ALL,
        Granularity::as_str,
        Granularity::None,
    )?;
    let aggregation = params::choice(
        params,
        "agg",
        &Aggregation::ALL,
        Aggregation::as_str,
        Aggregation::Avg,
    )?;
    let fill = params::choice(params, "fill", &Fill::ALL, Fill::as_str, Fill::None)?;
    let tz = params::time_zone(params)?;
    let calendar = Calendar::new(granularity, tz, fill, from, to).map_err(too_many)?;
    Ok(Request {
        category,
        name,
        aggregation,
        calendar,
    })
}

impl Request {
    /// What storage is asked for.
    pub fn filter(&self) -> AggregateFilter {
        let c = &self.calendar;
        AggregateFilter {
            category: self.category.clone(),
            name: self.name.clone(),
            from_us: c.from.map(|t| t.timestamp_micros()),
            to_us: c.to.map(|t| t.timestamp_micros()),
            granularity: c.granularity,
            aggregation: self.aggregation,
            tz: c.tz.name().to_owned(),
            limit: Calendar::STORAGE_LIMIT as u32,
        }
    }

    /// The answer from the buckets storage found.
    pub fn answer(self, rows: Vec<BucketRow>) -> Result<Aggregate, QueryError> {
        let c = self.calendar;
        let found = rows.into_iter().map(|r| Found {
            start_s: r.start_s,
            first_us: r.first_us,
            value: r.value,
            events: r.events,
        });
        let buckets = c.buckets(found).map_err(too_many)?;
        Ok(Aggregate {
            category: self.category,
            name: self.name,
            granularity: c.granularity.as_str().into(),
            agg: self.aggregation.as_str().into(),
            tz: c.tz.name().to_owned(),
            fill: c.fill.as_str().into(),
            buckets: buckets.into_iter().map(|b| view::bucket(b, c.tz)).collect(),
        })
    }
}

fn too_many(e: TooManyBuckets) -> QueryError {
    QueryError::BadParameter(FieldError::new(
        "granularity",
        "too_many_buckets",
        e.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        params::parse_query(query).expect("a query string")
    }

    fn field(e: QueryError) -> String {
        match e {
            QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn parameters_become_one_request() {
        // (query, the filter's granularity, aggregation, zone, from_us, to_us, or the error)
        type Want = Result<(&'static str, &'static str, &'static str, Option<i64>), &'static str>;
        let cases: [(&str, Want); 11] = [
            (
                "category=machine&name=cpu_load",
                Ok(("none", "avg", "UTC", None)),
            ),
            (
                "category=machine&name=cpu_load&granularity=hour&agg=p99&tz=Asia/Kolkata&fill=zero&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
                Ok(("hour", "p99", "Asia/Kolkata", Some(1_767_225_600_000_000))),
            ),
            ("name=cpu_load", Err("category:required")),
            ("category=machine", Err("name:required")),
            ("category=machine&name=cpu_load&granularity=fortnight", Err("granularity:invalid_choice")),
            ("category=machine&name=cpu_load&agg=median", Err("agg:invalid_choice")),
            ("category=machine&name=cpu_load&fill=linear", Err("fill:invalid_choice")),
            ("category=machine&name=cpu_load&tz=Mars/Olympus", Err("tz:invalid_timezone")),
            ("category=machine&name=cpu_load&limit=5", Err("limit:unknown_parameter")),
            (
                "category=machine&name=cpu_load&granularity=minute&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
                Err("granularity:too_many_buckets"),
            ),
            (
                "category=machine&name=cpu_load&granularity=year&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
                Ok(("year", "avg", "UTC", Some(946_684_800_000_000))),
            ),
        ];
        for (query, want) in cases {
            let got = request(&params(query)).map(|r| r.filter()).map_err(field);
            let got = got.as_ref().map(|f| {
                (
                    f.granularity.as_str(),
                    f.aggregation.as_str(),
                    f.tz.as_str(),
                    f.from_us,
                )
            });
            assert_eq!(got.map_err(String::as_str), want, "{query}");
        }
        let f = request(&params("category=machine&name=cpu_load"))
            .expect("valid")
            .filter();
        assert_eq!(
            (f.category.as_str(), f.name.as_str()),
            ("machine", "cpu_load")
        );
        assert_eq!(f.limit, 10_001, "one more than an answer may hold");
    }

    #[test]
    fn the_answer_shows_buckets_in_the_requested_zone() {
        let r = request(&params(
            "category=machine&name=cpu_load&granularity=day&tz=Europe/Paris&fill=null&from=2026-03-28T10:00:00Z&to=2026-03-29T12:00:00Z",
        ))
        .expect("valid");
        let rows = vec![BucketRow {
            start_s: 1_774_738_800, // 2026-03-28T23:00:00Z, midnight in Paris
            value: 4.0,
            events: 2,
            first_us: 0,
        }];
        let answer = serde_json::to_value(r.answer(rows).expect("few")).expect("serialises");
        assert_eq!(
            answer,
            serde_json::json!({
                "category": "machine",
                "name": "cpu_load",
                "granularity": "day",
                "agg": "avg",
                "tz": "Europe/Paris",
                "fill": "null",
                "buckets": [
                    {"start": "2026-03-28T00:00:00+01:00", "value": null, "count": 0},
                    {"start": "2026-03-29T00:00:00+01:00", "value": 4.0, "count": 2},
                ],
            })
        );
    }
}
