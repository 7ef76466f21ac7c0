//! Bucketed aggregation of event values: what may be asked (granularity, aggregation,
//! fill) and what an answer holds; where buckets start is the calendar's.
//!
//! ClickHouse computes the buckets that hold events (eye-store's `sql::aggregate`); the
//! calendar here knows where each bucket of a range starts in a time zone, so that a
//! request can be refused before it reaches ClickHouse when it spans too many buckets, and
//! so that empty buckets can be filled.

mod calendar;

pub use calendar::{bucket_starts, fill, Calendar, Found};

use chrono::{DateTime, Utc};

/// The most buckets one answer may hold.
pub const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    /// One bucket over the whole range.
    None,
}

impl Granularity {
    pub const ALL: [Granularity; 7] = [
        Self::Minute,
        Self::Hour,
        Self::Day,
        Self::Week,
        Self::Month,
        Self::Year,
        Self::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
            Self::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    /// Quantiles are exact and nearest-rank: of n sorted values, the one at index
    /// `min(floor(q * n), n - 1)`, counting from 0 (ClickHouse's `quantileExact`).
    P50,
    P90,
    P95,
    P99,
}

impl Aggregation {
    pub const ALL: [Aggregation; 9] = [
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::Sum,
        Self::Count,
        Self::P50,
        Self::P90,
        Self::P95,
        Self::P99,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
            Self::Count => "count",
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P95 => "p95",
            Self::P99 => "p99",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// `count` counts every matching event; the others aggregate events that carry a
    /// numeric `value`, and ignore those that do not.
    pub fn needs_value(self) -> bool {
        self != Self::Count
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Only buckets that hold events.
    None,
    /// Every bucket of the range; empty ones have value 0 and count 0.
    Zero,
    /// Every bucket of the range; empty ones have value null and count 0.
    Null,
}

impl Fill {
    pub const ALL: [Fill; 3] = [Self::None, Self::Zero, Self::Null];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zero => "zero",
            Self::Null => "null",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// One bucket of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub value: Option<f64>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the range holds more than {MAX_BUCKETS} {} buckets; narrow from/to or use a coarser granularity", .0.as_str())]
pub struct TooManyBuckets(pub Granularity);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for g in Granularity::ALL {
            assert_eq!(Granularity::parse(g.as_str()), Some(g));
        }
        for a in Aggregation::ALL {
            assert_eq!(Aggregation::parse(a.as_str()), Some(a));
        }
        for f in Fill::ALL {
            assert_eq!(Fill::parse(f.as_str()), Some(f));
        }
        assert_eq!(Granularity::parse("fortnight"), None);
        assert_eq!(Aggregation::parse("median"), None);
        assert_eq!(Fill::parse("linear"), None);
    }
}
