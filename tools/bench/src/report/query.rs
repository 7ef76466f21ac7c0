//! The query benchmark's figures: percentiles and verdicts of each question, the tables
//! `eye-bench query` prints, its JSON lines, and its section of BENCHMARKS.md.

use super::{cell, count, first, fmt, head, num, of, percentile, row, thousands, Lines};
use crate::query::harness::{Kind, Measured, Outcome};
use std::fmt::Write as _;
use std::time::Duration;

/// The service may cost at most this much more than ClickHouse alone (the 1.2x).
pub const MAX_OVERHEAD: f64 = 1.2;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub struct Row<'a> {
    pub kind: &'a Kind,
    pub outcome: &'a Outcome,
}

/// A measured question's percentiles (service, then direct), ratios, and what it missed.
pub struct Figures {
    pub service: [Duration; 2],
    pub direct: [Duration; 2],
    pub ratio: [f64; 2],
    pub misses: Vec<String>,
}

pub fn figures(kind: &Kind, m: &Measured) -> Figures {
    let (s50, s99) = (percentile(&m.service, 0.5), percentile(&m.service, 0.99));
    let (d50, d99) = (percentile(&m.direct, 0.5), percentile(&m.direct, 0.99));
    let (r50, r99) = (ratio(s50, d50), ratio(s99, d99));
    let mut misses = Vec::new();
    if let Some(t) = kind.target_p99_ms {
        if ms(s99) > t {
            misses.push(format!("p99 {:.1} ms > {t:.0} ms", ms(s99)));
        }
    }
    for (name, r) in [("p50", r50), ("p99", r99)] {
        if r > MAX_OVERHEAD {
            misses.push(format!("{name} overhead {r:.2}x > {MAX_OVERHEAD}x"));
        }
    }
    Figures {
        service: [s50, s99],
        direct: [d50, d99],
        ratio: [r50, r99],
        misses,
    }
}

/// One JSON line per question, for `make bench`'s report (`eye-bench report`).
pub fn json_line(row: &Row, table_rows: u64) -> serde_json::Value {
    let m = match row.outcome {
        Outcome::NotAvailable { tried } => {
            return serde_json::json!({
                "measure": "query", "label": row.kind.label, "available": false, "tried": tried,
            });
        }
        Outcome::Measured(m) => m,
    };
    let f = figures(row.kind, m);
    let pair = |d: [Duration; 2]| serde_json::json!({"p50": ms(d[0]), "p99": ms(d[1])});
    serde_json::json!({
        "measure": "query",
        "label": row.kind.label,
        "request": format!("GET {}", m.route),
        "samples": m.service.len(),
        "service_ms": pair(f.service),
        "direct_ms": pair(f.direct),
        "ratio": {"p50": f.ratio[0], "p99": f.ratio[1]},
        "read_rows": m.statements.iter().map(|s| s.read_rows).sum::<u64>(),
        "table_rows": table_rows,
        "target_p99_ms": row.kind.target_p99_ms,
        "max_overhead": MAX_OVERHEAD,
        "ok": f.misses.is_empty(),
        "misses": f.misses,
    })
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
        let Figures {
            service: [s50, s99],
            direct: [d50, d99],
            ratio: [r50, r99],
            misses,
        } = figures(row.kind, m);
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
        thousands(table_rows)
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
        thousands(read),
        100.0 * read as f64 / table_rows.max(1) as f64,
        m.statements.len()
    );
    for s in &m.statements {
        println!(
            "    - read_rows {:>10}, {:>5} ms  {}",
            thousands(s.read_rows),
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

/// `eye-bench`'s figures (`make bench-query`), when this run has them.
pub fn section(lines: &Lines) -> String {
    let questions = of(lines, "query");
    if questions.is_empty() {
        return String::new();
    }
    let mut md = String::new();
    let _ = writeln!(md, "\n### Query (`eye-bench`, as `make bench-query`)\n");
    if let Some(load) = first(lines, "query_load") {
        let events = num(load, &["events"]);
        let how = if load["loaded"] == false {
            "already in the database, so not timed".to_owned()
        } else {
            format!(
                "loaded in {} s ({} events/s, the merge to one part per partition included)",
                fmt(num(load, &["seconds"]), 1),
                fmt(num(load, &["rows_per_sec"]), 0)
            )
        };
        let _ = writeln!(
            md,
            "Data set: {} generated events ({} rows stored in `events`), {how}.{}\n",
            count(events),
            count(num(load, &["stored_rows"])),
            if events < 10_000_000.0 {
                " Fewer than `make bench-query`'s 10 million, so that the whole `make bench` fits its 15 minutes."
            } else {
                ""
            }
        );
    }
    head(
        &mut md,
        &[
            "question",
            "request",
            "samples",
            "service p50 / p99 ms",
            "direct p50 / p99 ms",
            "ratio p50 / p99",
            "rows read (% of table)",
            "target",
            "ok",
        ],
    );
    for q in questions {
        let label = q["label"].as_str().unwrap_or("");
        if q["available"] == false {
            row(
                &mut md,
                &[label, "not available", "", "", "", "", "", "", ""],
            );
            continue;
        }
        let target = match q["target_p99_ms"].as_f64() {
            Some(t) => format!("p99 ≤ {t:.0} ms"),
            None => "none".to_owned(),
        };
        let read = num(q, &["read_rows"]);
        // "p50 / p99" of one figure.
        let pair = |figure: &str, digits| {
            let at = |p| fmt(num(q, &[figure, p]), digits);
            format!("{} / {}", at("p50"), at("p99"))
        };
        row(
            &mut md,
            &[
                label.to_owned(),
                format!("`{}`", cell(q["request"].as_str().unwrap_or(""))),
                q["samples"].to_string(),
                pair("service_ms", 1),
                pair("direct_ms", 1),
                pair("ratio", 2),
                format!(
                    "{} ({}%)",
                    count(read),
                    fmt(100.0 * read / num(q, &["table_rows"]), 3)
                ),
                format!("{target}, ≤ {}x", num(q, &["max_overhead"])),
                if q["ok"] == true { "yes" } else { "**no**" }.to_owned(),
            ],
        );
    }
    let _ = writeln!(
        md,
        "\nratio = the service ÷ the same statements sent straight to ClickHouse as the same read-only user, in the same run, samples interleaved."
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::clickhouse::Logged;

    #[test]
    fn json_line_carries_the_figures_and_the_verdict() {
        let kind = Kind {
            label: "session lookup (100 events)",
            routes: Vec::new(),
            markers: Vec::new(),
            samples: 4,
            target_p99_ms: Some(50.0),
        };
        let ms = |v: &[u64]| v.iter().map(|&x| Duration::from_millis(x)).collect();
        let logged = |read_rows| Logged {
            query: "SELECT 1".into(),
            read_rows,
            query_duration_ms: 1,
            setting_names: Vec::new(),
            setting_values: Vec::new(),
        };
        let outcome = Outcome::Measured(Box::new(Measured {
            route: "/v1/sessions/{id}?limit=100".into(),
            statements: vec![logged(8_192), logged(100)],
            answer_summary: "events: 100".into(),
            service_bytes: 1,
            direct_bytes: 1,
            service: ms(&[10, 12, 11, 60]),
            direct: ms(&[10, 10, 10, 40]),
        }));
        let v = json_line(
            &Row {
                kind: &kind,
                outcome: &outcome,
            },
            1_000_000,
        );
        assert_eq!(v["measure"], "query");
        assert_eq!(v["request"], "GET /v1/sessions/{id}?limit=100");
        assert_eq!(
            v["service_ms"],
            serde_json::json!({"p50": 11.0, "p99": 60.0})
        );
        assert_eq!(v["ratio"]["p99"], 1.5);
        assert_eq!(v["read_rows"], 8_292);
        assert_eq!(v["table_rows"], 1_000_000);
        // p99 60 ms over its 50 ms target, and 1.5x over ClickHouse alone.
        assert_eq!(v["ok"], false);
        assert_eq!(v["misses"].as_array().map(Vec::len), Some(2));

        let gone = Outcome::NotAvailable {
            tried: vec!["/v1/x".into()],
        };
        let v = json_line(
            &Row {
                kind: &kind,
                outcome: &gone,
            },
            1,
        );
        assert_eq!(v["available"], false);
    }
}
