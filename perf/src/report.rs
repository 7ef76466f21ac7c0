//! BENCHMARKS.md and bench.json from the JSON lines of each run, with the machine and the
//! date, and every target next to the limit it is measured against.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

type Lines = Vec<serde_json::Value>;

fn read(file: &Path) -> anyhow::Result<Lines> {
    let text = std::fs::read_to_string(file)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("measure").is_some())
        .collect())
}

fn of<'a>(lines: &'a Lines, measure: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|v| v["measure"] == measure).collect()
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

/// The best flat-out ingest rate of a run, for the end-to-end steps' shares.
pub fn best_ingest_rate(file: &Path) -> anyhow::Result<f64> {
    let lines = read(file)?;
    of(&lines, "ingest_throughput")
        .iter()
        .map(|v| num(v, &["events_per_sec"]))
        .filter(|r| r.is_finite())
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
        .ok_or_else(|| anyhow::anyhow!("no ingest_throughput line in {}", file.display()))
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "ram_gib": mem_kib / 1024.0 / 1024.0,
        "cpu": model,
        "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    })
}

/// `runs`: `NAME=FILE` pairs, in order (e.g. memory, then sqlite).
pub fn write(runs: &[String], markdown: &Path, json: &Path) -> anyhow::Result<()> {
    let mut all: BTreeMap<String, Lines> = BTreeMap::new();
    let mut order = Vec::new();
    for r in runs {
        let (name, file) = r
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected NAME=FILE, got {r}"))?;
        all.insert(name.to_owned(), read(Path::new(file))?);
        order.push(name.to_owned());
    }
    let machine = machine();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `make bench` on {} ({} cores, {:.1} GiB RAM, {}). Everything ran on this one machine: broker, ClickHouse, the services and the load generator. Each figure is one run on a shared machine; compare ratios measured in the same run rather than absolute numbers.\n",
        machine["date"].as_str().unwrap_or(""),
        machine["cores"],
        num(&machine, &["ram_gib"]),
        machine["cpu"].as_str().unwrap_or("")
    );
    let mut targets = Vec::new();
    for name in &order {
        let lines = &all[name];
        let _ = writeln!(md, "## Broker storage: {name}\n");
        let _ = writeln!(md, "### Ingest throughput (flat out, 100-event batches)\n");
        let _ = writeln!(
            md,
            "| connections | events/s | p50 ms | p99 ms | p999 ms | cores: ingest / tansu / consumer / clickhouse / generator | peak RSS MiB: ingest / consumer |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        let mut best = 0.0f64;
        for v in of(lines, "ingest_throughput") {
            // A process not running (or not watched by an older run) shows as "-".
            let cores = |p: &str| {
                let c = num(v, &["processes", p, "cores"]);
                if c.is_finite() {
                    format!("{c:.2}")
                } else {
                    "-".to_owned()
                }
            };
            let rss = |p: &str| num(v, &["processes", p, "peak_rss_mib"]);
            best = best.max(num(v, &["events_per_sec"]));
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {} / {} / {} / {} / {} | {:.0} / {:.0} |",
                v["connections"],
                num(v, &["events_per_sec"]),
                num(v, &["latency_ms", "p50"]),
                num(v, &["latency_ms", "p99"]),
                num(v, &["latency_ms", "p999"]),
                cores("eye-ingest"),
                cores("tansu"),
                cores("eye-consumer"),
                cores("clickhouse-server"),
                cores("eye-perf"),
                rss("eye-ingest"),
                rss("eye-consumer"),
            );
        }
        let raw = |m: &str| {
            of(lines, m)
                .first()
                .map(|v| num(v, &["per_sec"]))
                .unwrap_or(f64::NAN)
        };
        let (produce, consume, insert) =
            (raw("raw_produce"), raw("raw_consume"), raw("raw_insert"));
        let drain = raw("consumer_drain");
        let _ = writeln!(md, "\n### Limits and ratios\n");
        let _ = writeln!(md, "| measure | per second | ratio |");
        let _ = writeln!(md, "|---|---|---|");
        let _ = writeln!(
            md,
            "| raw produce (bare rdkafka, ingest's settings) | {produce:.0} | |"
        );
        let _ = writeln!(
            md,
            "| ingest, best of the sweep | {best:.0} | {:.2} of raw produce |",
            best / produce
        );
        let _ = writeln!(
            md,
            "| raw consume (bare rdkafka, consumer's settings) | {consume:.0} | |"
        );
        let _ = writeln!(
            md,
            "| raw insert (RowBinary, consumer's batches) | {insert:.0} | |"
        );
        let lower = consume.min(insert);
        let _ = writeln!(
            md,
            "| consumer draining a pre-filled topic | {drain:.0} | {:.2} of the lower limit |",
            drain / lower
        );
        targets.push((
            format!("ingest ≥ 130,000 events/s ({name})"),
            best,
            best / 130_000.0,
            best >= 130_000.0,
        ));
        targets.push((
            format!("ingest ≥ 80% of raw produce ({name})"),
            best,
            best / produce,
            best >= 0.8 * produce,
        ));
        targets.push((
            format!("consumer ≥ 70% of min(raw consume, raw insert) ({name})"),
            drain,
            drain / lower,
            drain >= 0.7 * lower,
        ));
        let _ = writeln!(
            md,
            "\n### End to end (fixed rate, canaries through the query API)\n"
        );
        let _ = writeln!(md, "| share of max | target events/s | achieved | queryable p50 ms | p99 ms | canaries missing | lag max | lag slope msgs/s |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for v in of(lines, "end_to_end") {
            let share = num(v, &["share_of_max"]);
            let achieved = num(v, &["events_per_sec"]);
            let p99 = num(v, &["queryable_latency_ms", "p99"]);
            let slope = num(v, &["lag", "slope_per_sec"]);
            let _ = writeln!(
                md,
                "| {:.0}% | {:.0} | {:.0} | {:.0} | {:.0} | {} | {:.0} | {:.1} |",
                share * 100.0,
                num(v, &["target_rate"]),
                achieved,
                num(v, &["queryable_latency_ms", "p50"]),
                p99,
                v["canaries_missing"],
                num(v, &["lag", "max"]),
                slope,
            );
            if (share - 0.5).abs() < 1e-9 {
                targets.push((
                    format!("end-to-end p99 ≤ 2 s at 50% ({name})"),
                    p99,
                    2_000.0 / p99.max(1.0),
                    p99 <= 2_000.0,
                ));
                let need = if name == "memory" { 50_000.0 } else { 30_000.0 };
                // Bounded: not growing by more than 1% of the rate; shrinking is fine.
                let bounded = slope < 0.01 * achieved;
                targets.push((
                    format!("≥ {need:.0} events/s sustained 60 s, lag bounded ({name})"),
                    achieved,
                    achieved / need,
                    achieved >= need && bounded,
                ));
            }
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| target | measured | ratio to target or limit | met |");
    let _ = writeln!(md, "|---|---|---|---|");
    for (t, v, r, ok) in &targets {
        let _ = writeln!(
            md,
            "| {t} | {v:.0} | {r:.2} | {} |",
            if *ok { "yes" } else { "**no**" }
        );
    }
    std::fs::write(markdown, md)?;
    let out = serde_json::json!({"machine": machine, "runs": all});
    std::fs::write(json, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}
