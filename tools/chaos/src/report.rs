//! The table `make chaos` prints: one line per scenario, figures only.

use crate::Outcome;
use std::fmt::Write as _;

pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| scenario | acked | lost | duplicated | poison found/sent | retried attempts | recovery s | drained s | events/s | p99 ms | peak RSS MiB ingest/consumer/query | result |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let rss = |name: &str| {
            o.peak_rss_mib
                .get(name)
                .map(|m| format!("{m:.0}"))
                .unwrap_or_else(|| "-".into())
        };
        let name = if o.negative_control {
            format!("{} (negative control, dedup off)", o.scenario.name())
        } else {
            o.scenario.name().to_owned()
        };
        let result = match (o.passed(), o.negative_control) {
            (true, false) => "pass",
            (true, true) => "pass (duplicates caught)",
            (false, false) => "FAIL",
            (false, true) => "FAIL (no duplicates seen)",
        };
        let name = if o.note.is_empty() {
            name
        } else {
            format!("{name} ({})", o.note)
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {}/{} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {}/{}/{} | {result} |",
            o.verdict.acked,
            o.verdict.lost,
            o.verdict.duplicated,
            o.poison_found,
            o.poison_sent,
            o.retried(),
            o.recovery.as_secs_f64(),
            o.drained.as_secs_f64(),
            o.events_per_sec,
            o.p99_ms,
            rss("eye-ingest"),
            rss("eye-consumer"),
            rss("eye-query"),
        );
    }
    s
}
