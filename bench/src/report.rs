//! Percentiles, verdicts and the printed tables.

use crate::generate::fmt_int;
use crate::harness::{Kind, Measured, Outcome};
use std::time::Duration;

/// The service may cost at most this much more than ClickHouse alone (the 1.2x).
pub const MAX_OVERHEAD: f64 = 1.2;

/// Nearest-rank percentile: a value that was actually observed, never an interpolation.
pub fn percentile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub struct Row<'a> {
    pub kind: &'a Kind,
    pub outcome: &'a Outcome,
}

/// Prints the timing table and returns how many rows missed a target.
pub fn print_timings(rows: &[Row]) -> usize {
    println!();
    println!(
        "{:<32} {:>4}  {:>17}  {:>17}  {:>13}  {:<17} result",
        "query", "n", "service p50/p99", "direct p50/p99", "ratio p50/p99", "target (service)"
    );
    println!("{}", "-".repeat(124));
    let mut missed = 0;
    for row in rows {
        let target = match row.kind.target_p99_ms {
            Some(t) => format!("p99 <= {t:.0} ms"),
            None => "none".to_owned(),
        };
        let m = match row.outcome {
            Outcome::NotAvailable { .. } => {
                println!(
                    "{:<32} {:>4}  {:>17}  {:>17}  {:>13}  {:<17} not available",
                    row.kind.label, "-", "-", "-", "-", target
                );
                continue;
            }
            Outcome::Measured(m) => m,
        };
        let (s50, s99) = (percentile(&m.service, 0.5), percentile(&m.service, 0.99));
        let (d50, d99) = (percentile(&m.direct, 0.5), percentile(&m.direct, 0.99));
        let (r50, r99) = (ratio(s50, d50), ratio(s99, d99));
        let mut misses = Vec::new();
        if let Some(t) = row.kind.target_p99_ms {
            if ms(s99) > t {
                misses.push(format!("p99 {:.1} ms > {t:.0} ms", ms(s99)));
            }
        }
        for (name, r) in [("p50", r50), ("p99", r99)] {
            if r > MAX_OVERHEAD {
                misses.push(format!("{name} overhead {r:.2}x > {MAX_OVERHEAD}x"));
            }
        }
        let result = if misses.is_empty() {
            "ok".to_owned()
        } else {
            missed += 1;
            format!("MISSED: {}", misses.join("; "))
        };
        println!(
            "{:<32} {:>4}  {:>17}  {:>17}  {:>13}  {:<17} {result}",
            row.kind.label,
            m.service.len(),
            format!("{:.1} / {:.1} ms", ms(s50), ms(s99)),
            format!("{:.1} / {:.1} ms", ms(d50), ms(d99)),
            format!("{r50:.2} / {r99:.2}"),
            target,
        );
    }
    println!(
        "ratio = service / direct ClickHouse, same statements, same run, samples interleaved; \
         targets: the service's p99, and at most {MAX_OVERHEAD}x overhead at p50 and p99."
    );
    missed
}

fn ratio(service: Duration, direct: Duration) -> f64 {
    if direct.is_zero() {
        f64::INFINITY
    } else {
        service.as_secs_f64() / direct.as_secs_f64()
    }
}

/// What each request read, next to the table size: a read far below the table size means
/// ClickHouse used a primary-key prefix.
pub fn print_reads(rows: &[Row], table_rows: u64) {
    println!();
    println!(
        "Reads of one request, from system.query_log (events table: {} rows; events_by_type the same)",
        fmt_int(table_rows)
    );
    for row in rows {
        match row.outcome {
            Outcome::NotAvailable { tried } => {
                println!(
                    "  {}: not available (404 not_found from {})",
                    row.kind.label,
                    tried.join(", ")
                );
            }
            Outcome::Measured(m) => print_measured(row.kind, m, table_rows),
        }
    }
}

fn print_measured(kind: &Kind, m: &Measured, table_rows: u64) {
    let read: u64 = m.statements.iter().map(|s| s.read_rows).sum();
    println!(
        "  {}: GET {}  answer {} ({} bytes JSON; direct {} bytes RowBinary)",
        kind.label, m.route, m.answer_summary, m.service_bytes, m.direct_bytes
    );
    println!(
        "    read_rows {} = {:.3}% of the table, in {} statement(s):",
        fmt_int(read),
        100.0 * read as f64 / table_rows.max(1) as f64,
        m.statements.len()
    );
    for s in &m.statements {
        println!(
            "    - read_rows {:>10}, {:>5} ms  {}",
            fmt_int(s.read_rows),
            s.query_duration_ms,
            s.query
        );
    }
    if let Some(first) = m.statements.first() {
        println!(
            "    settings (sent again on the direct path): {}",
            first.settings_text()
        );
    }
}
