//! The benchmarks' report. Every measurement is one JSON line (`"measure": ...`); `eye-bench
//! report` turns the lines of each run into BENCHMARKS.md and bench.json, with the machine
//! and the date, and every target next to the limit it is measured against.
//!
//! Here are the parts both benchmarks share: the lines, figures and counts, nearest-rank
//! percentiles, the machine, markdown tables and the targets. The pipeline's sections are
//! in [`pipeline`]; the query benchmark's, with the tables it prints, in [`query`]; how the
//! pipeline grows beyond one machine, sized from a run, in [`sizing`]; the measured changes
//! in [`changes`].

pub mod changes;
pub mod pipeline;
pub mod query;
pub mod sizing;

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

pub type Lines = Vec<serde_json::Value>;

/// Prints one measurement as a JSON line on stdout, the form [`write`] reads back.
pub fn emit(measure: &str, fields: serde_json::Value) {
    let mut v = fields;
    v["measure"] = measure.into();
    println!("{v}");
}

/// Appends measurements to `path`, one JSON line each: `make bench` collects every step of
/// a run in one file.
pub fn append(path: &Path, lines: &[serde_json::Value]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("appending to {}", path.display()))
}

/// The measurements in `text`; other lines (a step's log, a truncated line) are skipped.
pub fn parse(text: &str) -> Lines {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("measure").is_some())
        .collect()
}

pub fn read(file: &Path) -> anyhow::Result<Lines> {
    Ok(parse(&std::fs::read_to_string(file)?))
}

pub fn of<'a>(lines: &'a Lines, measure: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|v| v["measure"] == measure).collect()
}

pub fn first<'a>(lines: &'a Lines, measure: &str) -> Option<&'a serde_json::Value> {
    lines.iter().find(|v| v["measure"] == measure)
}

/// The number at `path` inside `v`, NaN where there is none.
pub fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

/// A figure, or "-" where a run did not measure it (an older run, a step that failed).
pub fn fmt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".to_owned()
    }
}

/// 10000000 -> "10,000,000": counts a person reads at a glance.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// [`thousands`] of a figure read from a line, or "-".
pub fn count(n: f64) -> String {
    if n.is_finite() {
        thousands(n.abs().round() as u64)
    } else {
        "-".to_owned()
    }
}

/// Nearest-rank percentile: a value that was actually observed, never an interpolation.
pub fn percentile<T: Copy + Ord + Default>(samples: &[T], q: f64) -> T {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The machine the report is rendered on, which `make bench` measures on too.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub ram_gib: f64,
    pub cpu: String,
}

impl Machine {
    pub fn read() -> Self {
        let file = |path| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = file("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default();
        let mem_kib: f64 = file("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Self {
            cores: cores(),
            ram_gib: mem_kib / 1024.0 / 1024.0,
            cpu,
        }
    }
}

/// Cores of this machine (0 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// 1, 5 and 15-minute load averages: how busy the shared machine was around the figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// When a run's figures were measured: the `run` line deploy/bench.sh appends as the run
/// ends, RFC 3339 to the second. None for run files written before it did.
pub fn finished(lines: &Lines) -> Option<&str> {
    first(lines, "run").and_then(|v| v["finished"].as_str())
}

/// The report's first words: when its figures were measured, which a later rendering of
/// the same run files must not move, then when it was rendered.
fn measured(runs: &[(&str, &Lines)], machine: &Machine, rendered: &str) -> String {
    let each: Vec<String> = runs
        .iter()
        .map(|(name, lines)| match finished(lines) {
            Some(at) => format!("the {name} run finished at {at}"),
            None => format!("the {name} run at a time its lines do not record"),
        })
        .collect();
    format!(
        "Measured by `make bench`: {} ({} cores, {:.1} GiB RAM, {}); rendered from those runs' lines at {rendered}.",
        each.join(", "),
        machine.cores,
        machine.ram_gib,
        machine.cpu
    )
}

/// A markdown table's header and rule.
pub fn head(md: &mut String, columns: &[&str]) {
    let _ = writeln!(md, "| {} |", columns.join(" | "));
    let _ = writeln!(md, "|{}", "---|".repeat(columns.len()));
}

/// One markdown table row; an empty cell stays `| |`.
pub fn row<S: AsRef<str>>(md: &mut String, cells: &[S]) {
    md.push('|');
    for c in cells {
        match c.as_ref() {
            "" => md.push_str(" |"),
            c => {
                let _ = write!(md, " {c} |");
            }
        }
    }
    md.push('\n');
}

/// Text for a table cell: a `|` inside it must not end the cell.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// One row of the Targets table: what, the measured value, its ratio to the target or
/// limit (above 1 is good), met, and what the run says holds it there. A value the run
/// lacks shows as "not measured".
pub struct Target {
    pub name: String,
    pub measured: f64,
    pub ratio: f64,
    pub met: bool,
    pub limit: String,
}

impl Target {
    pub fn at_least(name: String, measured: f64, floor: f64) -> Self {
        Self {
            name,
            measured,
            ratio: measured / floor,
            met: measured >= floor,
            limit: String::new(),
        }
    }

    pub fn at_most(name: String, measured: f64, ceiling: f64) -> Self {
        Self {
            name,
            measured,
            ratio: ceiling / measured,
            met: measured <= ceiling,
            limit: String::new(),
        }
    }
}

fn targets_section(targets: &[Target]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Targets\n");
    head(
        &mut md,
        &[
            "target",
            "measured",
            "ratio to target or limit",
            "met",
            "what holds it",
        ],
    );
    for t in targets {
        // A missing limit leaves the ratio undefined: that is not a miss either.
        let met = match (t.measured.is_finite() && t.ratio.is_finite(), t.met) {
            (false, _) => "not measured",
            (true, true) => "yes",
            (true, false) => "**no**",
        };
        row(
            &mut md,
            &[
                t.name.clone(),
                fmt(t.measured, 0),
                fmt(t.ratio, 2),
                met.to_owned(),
                t.limit.clone(),
            ],
        );
    }
    md
}

/// Writes BENCHMARKS.md and bench.json. `runs`: `NAME=FILE` pairs, in order (e.g. memory,
/// then sqlite); `changes`: the before-and-after lines of `deploy/ab.sh`.
pub fn write(runs: &[String], markdown: &Path, json: &Path, changes: &Path) -> anyhow::Result<()> {
    let mut all: BTreeMap<String, Lines> = BTreeMap::new();
    let mut order = Vec::new();
    for r in runs {
        let (name, file) = r
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("expected NAME=FILE, got {r}"))?;
        all.insert(name.to_owned(), read(Path::new(file))?);
        order.push(name.to_owned());
    }
    // Missing is not an error: it means no change has been measured yet.
    let changes_text = std::fs::read_to_string(changes).unwrap_or_default();
    let machine = Machine::read();
    let rendered = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let runs: Vec<(&str, &Lines)> = order.iter().map(|n| (n.as_str(), &all[n])).collect();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "{} Everything ran on this one machine: broker, ClickHouse, the services and the load generator. Each figure is one run on a shared machine; compare ratios measured in the same run rather than absolute numbers.\n",
        measured(&runs, &machine, &rendered)
    );
    let mut targets = Vec::new();
    md.push_str(&pipeline::runs_sections(&runs, &mut targets));
    md.push_str(&sizing::section(&runs));
    md.push_str(&changes::section(&changes_text));
    md.push_str(&targets_section(&targets));
    std::fs::write(markdown, md)?;
    let when: BTreeMap<&str, Option<&str>> = runs.iter().map(|(n, l)| (*n, finished(l))).collect();
    let out = serde_json::json!({
        "machine": machine,
        "measured": when,
        "rendered": rendered,
        "runs": all,
        "changes": parse(&changes_text),
    });
    std::fs::write(json, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_separators() {
        // (figure, text)
        let cases: &[(f64, &str)] = &[
            (3_000_000.0, "3,000,000"),
            (999.0, "999"),
            (1_000.0, "1,000"),
            (0.0, "0"),
            (f64::NAN, "-"),
        ];
        for (n, text) in cases {
            assert_eq!(count(*n), *text, "{n}");
        }
        assert_eq!(thousands(10_000_000), "10,000,000");
    }

    #[test]
    fn nearest_rank_percentiles() {
        // (samples, q, percentile)
        let cases: &[(&[u32], f64, u32)] = &[
            (&[10, 12, 11, 60], 0.5, 11),
            (&[10, 12, 11, 60], 0.99, 60),
            (&[5], 0.5, 5),
            (&[], 0.99, 0),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9, 9),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.0, 1),
        ];
        for (samples, q, want) in cases {
            assert_eq!(percentile(samples, *q), *want, "{samples:?} at {q}");
        }
    }

    #[test]
    fn the_header_says_when_each_run_was_measured() {
        let machine = Machine {
            cores: 2,
            ram_gib: 23.5,
            cpu: "AMD EPYC".into(),
        };
        let recorded = parse(r#"{"measure":"run","finished":"2026-12-07T02:59:41Z"}"#);
        let older = parse(r#"{"measure":"raw_produce","per_sec":1}"#);
        // (runs, header)
        let cases: &[(&[(&str, &Lines)], &str)] = &[
            (
                &[("memory", &recorded)],
                "Measured by `make bench`: the memory run finished at 2026-12-07T02:59:41Z (2 cores, 23.5 GiB RAM, AMD EPYC); rendered from those runs' lines at 2026-12-08T10:00:00Z.",
            ),
            (
                &[("memory", &recorded), ("sqlite", &older)],
                "Measured by `make bench`: the memory run finished at 2026-12-07T02:59:41Z, the sqlite run at a time its lines do not record (2 cores, 23.5 GiB RAM, AMD EPYC); rendered from those runs' lines at 2026-12-08T10:00:00Z.",
            ),
        ];
        for (runs, want) in cases {
            assert_eq!(measured(runs, &machine, "2026-12-08T10:00:00Z"), *want);
        }
    }

    #[test]
    fn table_rows() {
        let mut md = String::new();
        head(&mut md, &["a", "b", "c"]);
        row(&mut md, &["1", "", "x / y"]);
        row(&mut md, &[cell("p | q"), String::new(), String::new()]);
        assert_eq!(
            md,
            "| a | b | c |\n|---|---|---|\n| 1 | | x / y |\n| p \\| q | | |\n"
        );
    }

    #[test]
    fn targets_say_when_a_figure_is_missing() {
        let targets = [
            Target::at_least("rate".into(), 150.0, 100.0),
            Target::at_most("rss".into(), 250.0, 200.0),
            Target::at_most("overload".into(), f64::NAN, 200.0),
        ];
        let md = targets_section(&targets);
        assert!(md.contains("| rate | 150 | 1.50 | yes | |"), "{md}");
        assert!(md.contains("| rss | 250 | 0.80 | **no** | |"), "{md}");
        assert!(md.contains("| overload | - | - | not measured | |"), "{md}");
    }
}
