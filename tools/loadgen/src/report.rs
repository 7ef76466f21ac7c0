//! What a run did: events/s, latency percentiles, and the receipts.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use uuid::Uuid;

/// Attempts by outcome: an HTTP status (`202`, `503`, ...) or `timeout`, `connect_error`,
/// `transport_error`, `body_cut`.
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    pub attempts: BTreeMap<String, u64>,
}

/// What was sent and what became of it: one worker's share, or (merged) the whole run's.
pub struct Receipts {
    /// Time from a batch's scheduled send to its 2xx, retries included.
    pub latency_us: Histogram<u64>,
    /// Every event id answered 2xx, each once.
    pub acked: Vec<Uuid>,
    /// Ids of batches given up after `retry_for`: their fate is unknown (possibly stored).
    pub given_up_ids: Vec<Uuid>,
    pub given_up: u64,
    /// Events in batches the server refused outright (4xx other than 408/429).
    pub refused: u64,
    /// Events the server answered as rejected inside a 207.
    pub rejected: u64,
    pub batches: u64,
}

impl Receipts {
    pub fn new() -> Self {
        Self {
            latency_us: latency_histogram(),
            acked: Vec::new(),
            given_up_ids: Vec::new(),
            given_up: 0,
            refused: 0,
            rejected: 0,
            batches: 0,
        }
    }

    fn merge(&mut self, w: Receipts) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&w.latency_us);
        self.acked.extend(w.acked);
        self.given_up_ids.extend(w.given_up_ids);
        self.given_up += w.given_up;
        self.refused += w.refused;
        self.rejected += w.rejected;
        self.batches += w.batches;
    }
}

impl Default for Receipts {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram<u64> {
    // 1 µs to 10 min at 3 significant digits; larger values saturate.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

pub struct Report {
    pub connections: usize,
    pub batch: usize,
    pub target_rate: Option<f64>,
    pub elapsed: Duration,
    pub receipts: Receipts,
    pub outcomes: Outcomes,
}

impl Report {
    pub(crate) fn new(config: &crate::Config) -> Self {
        Self {
            connections: config.connections,
            batch: config.batch,
            target_rate: config.rate,
            elapsed: Duration::ZERO,
            receipts: Receipts::new(),
            outcomes: Outcomes::default(),
        }
    }

    pub(crate) fn merge(&mut self, w: Receipts) {
        self.receipts.merge(w);
    }

    /// Acknowledged events per second over the whole run.
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.receipts.acked.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency at quantile `q` (0..=1), in milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        self.receipts.latency_us.value_at_quantile(q) as f64 / 1_000.0
    }

    /// Attempts that were retried (every non-2xx attempt).
    pub fn retries(&self) -> u64 {
        self.outcomes
            .attempts
            .iter()
            .filter(|(k, _)| !k.starts_with('2'))
            .map(|(_, v)| v)
            .sum()
    }

    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let rate = self
            .target_rate
            .map(|r| format!("{r:.0} events/s target"))
            .unwrap_or_else(|| "flat out".into());
        let _ = writeln!(
            s,
            "{} events acknowledged in {:.2} s: {:.0} events/s ({rate}, {} connections, {} events per batch)",
            self.receipts.acked.len(),
            self.elapsed.as_secs_f64(),
            self.events_per_sec(),
            self.connections,
            self.batch,
        );
        let _ = writeln!(
            s,
            "latency to 2xx: p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms, max {:.1} ms ({} batches)",
            self.latency_ms(0.50),
            self.latency_ms(0.99),
            self.latency_ms(0.999),
            self.receipts.latency_us.max() as f64 / 1_000.0,
            self.receipts.batches,
        );
        let attempts: Vec<String> = self
            .outcomes
            .attempts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            s,
            "attempts: {}; given up: {} events; refused: {}; rejected in 207s: {}",
            attempts.join(", "),
            self.receipts.given_up,
            self.receipts.refused,
            self.receipts.rejected,
        );
        s
    }

    /// Every figure, for machines.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "acked": self.receipts.acked.len(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "events_per_sec": self.events_per_sec(),
            "connections": self.connections,
            "batch": self.batch,
            "target_rate": self.target_rate,
            "latency_ms": {
                "p50": self.latency_ms(0.50),
                "p99": self.latency_ms(0.99),
                "p999": self.latency_ms(0.999),
                "max": self.receipts.latency_us.max() as f64 / 1_000.0,
            },
            "batches": self.receipts.batches,
            "given_up": self.receipts.given_up,
            "refused": self.receipts.refused,
            "rejected": self.receipts.rejected,
            "attempts": self.outcomes.attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(latencies_ms: &[u64], acked: usize, secs: f64) -> Report {
        let mut r = Report::new(&crate::Config::default());
        let mut w = Receipts::new();
        for ms in latencies_ms {
            w.latency_us.record(ms * 1_000).expect("in range");
        }
        w.acked = (0..acked).map(|i| Uuid::from_u128(i as u128)).collect();
        r.merge(w);
        r.elapsed = Duration::from_secs_f64(secs);
        r
    }

    #[test]
    fn rates_and_percentiles() {
        // (latencies in ms, acked, seconds, events/s, p50 ms, p99 ms)
        let cases: &[(&[u64], usize, f64, f64, f64, f64)] = &[
            (&[10; 100], 1_000, 2.0, 500.0, 10.0, 10.0),
            (&[1, 2, 3, 4, 100], 5, 0.5, 10.0, 3.0, 100.0),
            (&[], 0, 0.0, 0.0, 0.0, 0.0),
        ];
        for (lat, acked, secs, eps, p50, p99) in cases {
            let r = report_with(lat, *acked, *secs);
            assert_eq!(r.events_per_sec(), *eps, "{lat:?}");
            // hdrhistogram keeps 3 significant digits.
            assert!((r.latency_ms(0.5) - p50).abs() <= p50 / 500.0, "{lat:?}");
            assert!((r.latency_ms(0.99) - p99).abs() <= p99 / 500.0, "{lat:?}");
        }
    }

    #[test]
    fn retries_count_every_non_2xx_attempt() {
        let mut r = Report::new(&crate::Config::default());
        for (k, v) in [
            ("202", 10),
            ("207", 1),
            ("503", 4),
            ("timeout", 2),
            ("429", 1),
        ] {
            r.outcomes.attempts.insert(k.into(), v);
        }
        assert_eq!(r.retries(), 7);
        assert!(r.summary().contains("503: 4"));
    }
}
