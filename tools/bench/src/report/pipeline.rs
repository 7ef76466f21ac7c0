//! The pipeline benchmark's sections of BENCHMARKS.md: ingest flat out and overloaded, the
//! raw limits and the consumer against them, memory, end to end and per-core scaling; each
//! pushes the targets it checks.

use super::{count, first, fmt, head, num, of, read, row, Lines, Target};
use std::fmt::Write as _;
use std::path::Path;

/// The sweep step with the most events/s: the run's best ingest rate.
pub(super) fn best_step(lines: &Lines) -> Option<&serde_json::Value> {
    of(lines, "ingest_throughput")
        .into_iter()
        .filter(|v| num(v, &["events_per_sec"]).is_finite())
        .max_by(|a, b| num(a, &["events_per_sec"]).total_cmp(&num(b, &["events_per_sec"])))
}

/// The best flat-out ingest rate of a run, for the end-to-end steps' shares.
pub fn best_ingest_rate(file: &Path) -> anyhow::Result<f64> {
    let lines = read(file)?;
    best_step(&lines)
        .map(|v| num(v, &["events_per_sec"]))
        .ok_or_else(|| anyhow::anyhow!("no ingest_throughput line in {}", file.display()))
}

/// Every run's sections, in order, with the targets they check.
pub fn runs_sections(runs: &[(&str, &Lines)], targets: &mut Vec<Target>) -> String {
    // The most records any run drained, so a run that drained fewer says so.
    let most_drained = runs
        .iter()
        .filter_map(|(_, lines)| first(lines, "consumer_drain"))
        .map(|v| num(v, &["rows"]))
        .fold(0.0, f64::max);
    let mut md = String::new();
    for (name, lines) in runs {
        let _ = writeln!(md, "## Broker storage: {name}\n");
        md.push_str(&sweep_section(lines));
        md.push_str(&limits_section(lines, name, most_drained, targets));
        md.push_str(&memory_section(lines, name, targets));
        md.push_str(&end_to_end_section(lines, name, targets));
        md.push_str(&cli_send_section(lines, name, targets));
        md.push_str(&super::query::section(lines));
        md.push_str(&scaling_section(lines));
        let _ = writeln!(md);
    }
    md
}

/// The process the load generator runs in: this one.
const GENERATOR: &str = "eye-bench";

/// Cores of one process in a step's `processes`, or "-".
fn cores(v: &serde_json::Value, process: &str) -> String {
    fmt(num(v, &["processes", process, "cores"]), 2)
}

fn rss(v: &serde_json::Value, process: &str) -> String {
    fmt(num(v, &["processes", process, "peak_rss_mib"]), 0)
}

fn sweep_section(lines: &Lines) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### Ingest throughput (flat out, 100-event batches)\n");
    head(
        &mut md,
        &[
            "connections",
            "events/s",
            "p50 ms",
            "p99 ms",
            "p999 ms",
            "cores: ingest / tansu / consumer / clickhouse / generator",
            "peak RSS MiB: ingest / consumer",
        ],
    );
    for v in of(lines, "ingest_throughput") {
        row(
            &mut md,
            &[
                v["connections"].to_string(),
                fmt(num(v, &["events_per_sec"]), 0),
                fmt(num(v, &["latency_ms", "p50"]), 1),
                fmt(num(v, &["latency_ms", "p99"]), 1),
                fmt(num(v, &["latency_ms", "p999"]), 1),
                [
                    "eye-ingest",
                    "tansu",
                    "eye-consumer",
                    "clickhouse-server",
                    GENERATOR,
                ]
                .map(|p| cores(v, p))
                .join(" / "),
                format!("{} / {}", rss(v, "eye-ingest"), rss(v, "eye-consumer")),
            ],
        );
    }
    md
}

fn limits_section(
    lines: &Lines,
    name: &str,
    most_drained: f64,
    targets: &mut Vec<Target>,
) -> String {
    let per_sec = |m: &str| first(lines, m).map_or(f64::NAN, |v| num(v, &["per_sec"]));
    let (produce, consume, insert) = (
        per_sec("raw_produce"),
        per_sec("raw_consume"),
        per_sec("raw_insert"),
    );
    let drain = per_sec("consumer_drain");
    let best = best_step(lines).map_or(f64::NAN, |v| num(v, &["events_per_sec"]));
    let records = first(lines, "raw_produce").map_or(f64::NAN, |v| num(v, &["messages"]));
    let drained = first(lines, "consumer_drain").map_or(f64::NAN, |v| num(v, &["rows"]));
    let lower = consume.min(insert);
    let mut md = String::new();
    let _ = writeln!(md, "\n### Limits and ratios\n");
    head(&mut md, &["measure", "per second", "ratio"]);
    let rows = [
        [
            format!(
                "raw produce (bare rdkafka, ingest's settings; {} records)",
                count(records)
            ),
            fmt(produce, 0),
            String::new(),
        ],
        [
            "ingest, best of the sweep".to_owned(),
            fmt(best, 0),
            format!("{} of raw produce", fmt(best / produce, 2)),
        ],
        [
            "raw consume (bare rdkafka, consumer's settings)".to_owned(),
            fmt(consume, 0),
            String::new(),
        ],
        [
            "raw insert (RowBinary, consumer's batches)".to_owned(),
            fmt(insert, 0),
            String::new(),
        ],
        [
            format!(
                "consumer draining a pre-filled topic of {} records",
                count(drained)
            ),
            fmt(drain, 0),
            format!("{} of the lower limit", fmt(drain / lower, 2)),
        ],
    ];
    for r in &rows {
        row(&mut md, r);
    }
    if drained < most_drained {
        // Each record is produced, consumed raw, then drained: at this run's rates.
        let secs = |n: f64| n / produce + n / consume + n / drain;
        let _ = writeln!(
            md,
            "\nThis run uses {} records rather than {}: at its own produce, consume and drain rates those three steps take {} s with {} and would take {} s with {}, more than `make bench`'s 15 minutes can spare.",
            count(drained),
            count(most_drained),
            fmt(secs(drained), 0),
            count(drained),
            fmt(secs(most_drained), 0),
            count(most_drained),
        );
    }
    // One target: 130,000 events/s, or, where the broker caps ingest below that, 80% of
    // what the broker takes from a bare producer in the same run.
    targets.push(Target {
        name: format!(
            "ingest ≥ 130,000 events/s, or ≥ 80% of raw produce if the broker caps it ({name})"
        ),
        measured: best,
        ratio: best / 130_000.0,
        met: best >= 130_000.0 || best >= 0.8 * produce,
        limit: format!(
            "{} of raw produce ({}/s); {}",
            fmt(best / produce, 2),
            fmt(produce, 0),
            best_step(lines).map_or_else(String::new, busy)
        ),
    });
    targets.push(Target {
        name: format!("consumer ≥ 70% of min(raw consume, raw insert) ({name})"),
        measured: drain,
        ratio: drain / lower,
        met: drain >= 0.7 * lower,
        limit: format!(
            "lower limit: raw {} ({}/s)",
            if consume <= insert {
                "consume"
            } else {
                "insert"
            },
            fmt(lower, 0)
        ),
    });
    md
}

/// Where a sweep step's cores went: the broker's share, and the machine's.
fn busy(step: &serde_json::Value) -> String {
    let total: f64 = step["processes"]
        .as_object()
        .map(|p| p.values().filter_map(|v| v["cores"].as_f64()).sum())
        .unwrap_or(f64::NAN);
    let machine = super::cores();
    format!(
        "at the best step tansu used {} cores, ingest {}, and the watched processes {} of the machine's {machine}",
        cores(step, "tansu"),
        cores(step, "eye-ingest"),
        fmt(total, 2)
    )
}

/// Where an end-to-end step's cores went, busiest process first.
fn step_cores(v: &serde_json::Value) -> String {
    let Some(procs) = v["processes"].as_object() else {
        return "cores not recorded".to_owned();
    };
    let mut by: Vec<(&String, f64)> = procs
        .iter()
        .filter_map(|(name, p)| p["cores"].as_f64().map(|c| (name, c)))
        .collect();
    by.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = by.iter().map(|(_, c)| c).sum();
    let each: Vec<String> = by.iter().map(|(n, c)| format!("{n} {c:.2}")).collect();
    format!(
        "cores {} of {}: {}",
        fmt(total, 2),
        super::cores(),
        each.join(", ")
    )
}

/// MiB (what /proc reports) to the MB the targets are written in.
fn mb(mib: f64) -> f64 {
    mib * 1.048_576
}

fn memory_section(lines: &Lines, name: &str, targets: &mut Vec<Target>) -> String {
    let overload = first(lines, "ingest_overload");
    let drain = first(lines, "consumer_drain");
    let mut md = String::new();
    let _ = writeln!(md, "\n### Memory and cores under overload\n");
    head(
        &mut md,
        &[
            "step",
            "load",
            "events/s",
            "refused 503 / 429",
            "peak RSS MiB: ingest / consumer / tansu / clickhouse",
            "cores: ingest / tansu / consumer / clickhouse",
        ],
    );
    const PROCESSES: [&str; 4] = ["eye-ingest", "eye-consumer", "tansu", "clickhouse-server"];
    const BY_CORES: [&str; 4] = ["eye-ingest", "tansu", "eye-consumer", "clickhouse-server"];
    let rss_of = |v| PROCESSES.map(|p| rss(v, p)).join(" / ");
    let cores_of = |v| BY_CORES.map(|p| cores(v, p)).join(" / ");
    if let Some(why) = overload.and_then(|v| v["skipped"].as_str()) {
        let load = format!("not run: {why}");
        row(&mut md, &["ingest overloaded", &load, "", "", "", ""]);
    } else if let Some(v) = overload {
        row(
            &mut md,
            &[
                "ingest overloaded".to_owned(),
                format!(
                    "{} connections × {}-event batches, {} s",
                    v["connections"],
                    v["batch"],
                    fmt(num(v, &["elapsed_s"]), 0)
                ),
                fmt(num(v, &["events_per_sec"]), 0),
                format!("{} / {}", v["refused"]["503"], v["refused"]["429"]),
                rss_of(v),
                cores_of(v),
            ],
        );
    }
    if let Some(v) = drain {
        row(
            &mut md,
            &[
                "consumer draining a backlog".to_owned(),
                format!("{} pre-filled records", count(num(v, &["rows"]))),
                fmt(num(v, &["per_sec"]), 0),
                "-".to_owned(),
                rss_of(v),
                cores_of(v),
            ],
        );
    }
    if overload.is_none() && drain.is_none() {
        row(&mut md, &["not measured in this run", "", "", "", "", ""]);
    }
    let _ = writeln!(
        md,
        "\nRefused requests are retried by the load generator with the same body; a 503 is ingest's backpressure (its in-flight budget is full), a 429 a client's rate limit. Events/s under overload counts acknowledged events only."
    );
    let ingest = overload.map_or(f64::NAN, |v| {
        num(v, &["processes", "eye-ingest", "peak_rss_mib"])
    });
    let consumer = drain.map_or(f64::NAN, |v| {
        num(v, &["processes", "eye-consumer", "peak_rss_mib"])
    });
    targets.push(Target::at_most(
        format!("ingest ≤ 200 MB RSS under overload ({name})"),
        mb(ingest),
        200.0,
    ));
    targets.push(Target::at_most(
        format!("consumer ≤ 500 MB RSS draining the backlog ({name})"),
        mb(consumer),
        500.0,
    ));
    md
}

/// `eye send` of a file against the load generator, in turns (`eye-bench cli-send`).
fn cli_send_section(lines: &Lines, name: &str, targets: &mut Vec<Target>) -> String {
    let Some(v) = first(lines, "cli_send") else {
        return String::new();
    };
    let list = |path: &[&str]| -> String {
        v.pointer(&format!("/{}", path.join("/")))
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .map(|x| fmt(x.as_f64().unwrap_or(f64::NAN), 0))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let (generator, cli) = (
        num(v, &["loadgen", "median"]),
        num(v, &["eye_send", "median"]),
    );
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### `eye send` of a file against the load generator ({} events each run, in turns)\n",
        count(num(v, &["events"]))
    );
    head(&mut md, &["sender", "events/s per run", "median"]);
    row(
        &mut md,
        &[
            format!(
                "eye-loadgen, {} connections × {}-event batches",
                v["loadgen"]["connections"], v["loadgen"]["batch"]
            ),
            list(&["loadgen", "events_per_sec"]),
            fmt(generator, 0),
        ],
    );
    row(
        &mut md,
        &[
            "`eye send FILE --quiet` (NDJSON, defaults)".to_owned(),
            list(&["eye_send", "events_per_sec"]),
            fmt(cli, 0),
        ],
    );
    let ratio = cli / generator;
    let _ = writeln!(
        md,
        "\n`eye send` reaches {} of the load generator's rate.",
        pct(ratio)
    );
    targets.push(Target {
        name: format!("`eye send` ≥ 80% of the load generator's events/s ({name})"),
        measured: cli,
        ratio: ratio / 0.8,
        met: ratio >= 0.8,
        limit: format!("load generator {} events/s", fmt(generator, 0)),
    });
    md
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}%", x * 100.0)
    } else {
        "-".into()
    }
}

fn end_to_end_section(lines: &Lines, name: &str, targets: &mut Vec<Target>) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### End to end (fixed rate, canaries through the query API)\n"
    );
    head(
        &mut md,
        &[
            "share of max",
            "target events/s",
            "achieved",
            "queryable p50 ms",
            "p99 ms",
            "canaries missing",
            "lag max",
            "lag slope msgs/s",
        ],
    );
    for v in of(lines, "end_to_end") {
        let share = num(v, &["share_of_max"]);
        let achieved = num(v, &["events_per_sec"]);
        let p99 = num(v, &["queryable_latency_ms", "p99"]);
        let slope = num(v, &["lag", "slope_per_sec"]);
        row(
            &mut md,
            &[
                format!("{}%", fmt(share * 100.0, 0)),
                fmt(num(v, &["target_rate"]), 0),
                fmt(achieved, 0),
                fmt(num(v, &["queryable_latency_ms", "p50"]), 0),
                fmt(p99, 0),
                v["canaries_missing"].to_string(),
                fmt(num(v, &["lag", "max"]), 0),
                fmt(slope, 1),
            ],
        );
        if (share - 0.5).abs() < 1e-9 {
            // At 50% of the flat-out rate the machine may still be short of cores: the
            // consumer and ClickHouse work too, which the flat-out sweep does not wait for.
            let asked = num(v, &["target_rate"]);
            let best = best_step(lines).map_or(f64::NAN, |b| num(b, &["events_per_sec"]));
            let limit = format!(
                "asked {}/s (half the best flat-out ingest rate, {}/s), achieved {}/s; {}",
                fmt(asked, 0),
                fmt(best, 0),
                fmt(achieved, 0),
                step_cores(v)
            );
            targets.push(Target {
                name: format!("end-to-end p99 ≤ 2 s at 50% ({name})"),
                measured: p99,
                ratio: 2_000.0 / p99.max(1.0),
                met: p99 <= 2_000.0,
                limit: limit.clone(),
            });
            let need = if name == "memory" { 50_000.0 } else { 30_000.0 };
            // Bounded: not growing by more than 1% of the rate; shrinking is fine.
            let bounded = slope < 0.01 * achieved;
            let mut t = Target::at_least(
                format!("≥ {need:.0} events/s sustained 60 s, lag bounded ({name})"),
                achieved,
                need,
            );
            t.met &= bounded;
            t.limit = format!("{limit}; lag slope {} msgs/s", fmt(slope, 1));
            if best < need {
                // No fixed rate can be sustained above what flat out reached.
                t.limit.push_str(&format!(
                    "; the target is above this run's best flat-out ingest rate ({} of it), see the ingest row",
                    fmt(need / best, 2)
                ));
            }
            targets.push(t);
        }
    }
    md
}

/// Events/s one core of a component handles, from this run's own figures.
struct PerCore {
    component: &'static str,
    per_core: f64,
    basis: String,
}

fn per_core(lines: &Lines) -> Vec<PerCore> {
    let mut out = Vec::new();
    if let Some(step) = best_step(lines) {
        let rate = num(step, &["events_per_sec"]);
        for (component, process) in [("ingest", "eye-ingest"), ("tansu (broker)", "tansu")] {
            let c = num(step, &["processes", process, "cores"]);
            out.push(PerCore {
                component,
                per_core: rate / c,
                basis: format!(
                    "{} events/s ÷ {} cores, best sweep step ({} connections)",
                    fmt(rate, 0),
                    fmt(c, 2),
                    step["connections"]
                ),
            });
        }
    }
    if let Some(drain) = first(lines, "consumer_drain") {
        let rate = num(drain, &["per_sec"]);
        for (component, process) in [
            ("consumer", "eye-consumer"),
            ("ClickHouse", "clickhouse-server"),
        ] {
            let c = num(drain, &["processes", process, "cores"]);
            out.push(PerCore {
                component,
                per_core: rate / c,
                basis: format!(
                    "{} rows/s ÷ {} cores, consumer drain",
                    fmt(rate, 0),
                    fmt(c, 2)
                ),
            });
        }
    }
    out
}

fn scaling_section(lines: &Lines) -> String {
    let figures = per_core(lines);
    if figures.is_empty() {
        return String::new();
    }
    const SIZES: [f64; 3] = [100_000.0, 1_000_000.0, 10_000_000.0];
    let mut md = String::new();
    let _ = writeln!(
        md,
        "\n### Scaling: events/s per core, and cores for a given rate\n"
    );
    head(
        &mut md,
        &[
            "component",
            "events/s per core",
            "from",
            "cores for 100k/s",
            "1M/s",
            "10M/s",
        ],
    );
    for f in &figures {
        let mut cells = vec![f.component.to_owned(), fmt(f.per_core, 0), f.basis.clone()];
        cells.extend(SIZES.iter().map(|s| fmt(s / f.per_core, 1)));
        row(&mut md, &cells);
    }
    if let Some(p) = first(lines, "raw_produce").and_then(|v| v["partitions"].as_u64()) {
        let _ = writeln!(md, "\n`eye.events` had {p} partitions in this run.");
    }
    let _ = writeln!(
        md,
        "\nCores = rate ÷ events/s per core, as if every core did what one did here; measured on two cores shared by every process, so each figure includes that contention."
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_core_figures_come_from_the_best_step_and_the_drain() {
        let lines = super::super::parse(concat!(
            r#"{"measure":"ingest_throughput","connections":8,"events_per_sec":60000,"processes":{"eye-ingest":{"cores":0.5},"tansu":{"cores":0.1}}}"#,
            "\n",
            r#"{"measure":"ingest_throughput","connections":64,"events_per_sec":100000,"processes":{"eye-ingest":{"cores":0.8},"tansu":{"cores":0.2}}}"#,
            "\n",
            r#"{"measure":"consumer_drain","per_sec":150000,"rows":3000000,"processes":{"eye-consumer":{"cores":0.3},"clickhouse-server":{"cores":0.6}}}"#,
            "\n"
        ));
        let want = [
            ("ingest", 125_000.0),
            ("tansu (broker)", 500_000.0),
            ("consumer", 500_000.0),
            ("ClickHouse", 250_000.0),
        ];
        let got = per_core(&lines);
        assert_eq!(got.len(), want.len());
        for (f, (component, per_core)) in got.iter().zip(want) {
            assert_eq!(f.component, component);
            assert!(
                (f.per_core - per_core).abs() < 1e-6,
                "{component}: {}",
                f.per_core
            );
        }
        let md = scaling_section(&lines);
        // 1M events/s at 125,000 per ingest core: 8 cores.
        assert!(md.contains("| ingest | 125000 | 100000 events/s ÷ 0.80 cores, best sweep step (64 connections) | 0.8 | 8.0 | 80.0 |"), "{md}");
    }

    #[test]
    fn eye_send_is_measured_against_the_generator() {
        let line = |cli: f64| {
            super::super::parse(&format!(
                r#"{{"measure":"cli_send","events":1000000,"rounds":2,"loadgen":{{"connections":64,"batch":100,"events_per_sec":[100000,120000],"median":110000}},"eye_send":{{"events_per_sec":[{cli},{cli}],"median":{cli}}},"ratio":0}}"#
            ))
        };
        // (eye send's events/s, target met)
        for (cli, met) in [(99_000.0, true), (88_000.0, true), (80_000.0, false)] {
            let mut targets = Vec::new();
            let md = cli_send_section(&line(cli), "memory", &mut targets);
            assert!(
                md.contains(
                    "| eye-loadgen, 64 connections × 100-event batches | 100000, 120000 | 110000 |"
                ),
                "{md}"
            );
            assert_eq!(targets.len(), 1);
            assert_eq!(targets[0].met, met, "{cli}: {md}");
        }
        assert!(cli_send_section(&Lines::default(), "memory", &mut Vec::new()).is_empty());
    }

    #[test]
    fn memory_targets_in_mb_and_a_step_not_run() {
        let lines = super::super::parse(concat!(
            r#"{"measure":"ingest_overload","skipped":"the broker wedges"}"#,
            "\n",
            r#"{"measure":"consumer_drain","per_sec":150000,"rows":3000000,"processes":{"eye-consumer":{"cores":0.3,"peak_rss_mib":100}}}"#,
            "\n"
        ));
        let mut targets = Vec::new();
        let md = memory_section(&lines, "sqlite", &mut targets);
        assert!(
            md.contains("| ingest overloaded | not run: the broker wedges |"),
            "{md}"
        );
        assert!(
            md.contains("| consumer draining a backlog | 3,000,000 pre-filled records | 150000 |"),
            "{md}"
        );
        let [ingest, consumer] = &targets[..] else {
            panic!("two memory targets, got {}", targets.len());
        };
        assert!(ingest.measured.is_nan(), "a step not run is not measured");
        // 100 MiB is 104.9 MB, under the 500 MB ceiling.
        assert!((consumer.measured - 104.857_6).abs() < 1e-9);
        assert!(consumer.met);
    }
}
