//! The changes `deploy/ab.sh` measured before and after (tools/bench/changes.jsonl), as
//! BENCHMARKS.md's table of them.

use super::{cell, fmt, head, num, row, Lines};
use std::fmt::Write as _;

/// Changes measured before and after (`deploy/ab.sh`, one JSON line each), as a table.
pub fn section(text: &str) -> String {
    let changes: Lines = super::parse(text)
        .into_iter()
        .filter(|v| v["measure"] == "change")
        .collect();
    let mut md = String::new();
    let _ = writeln!(md, "## Changes measured\n");
    if changes.is_empty() {
        let _ = writeln!(
            md,
            "No change has been measured yet (`tools/bench/changes.jsonl`, written by `deploy/ab.sh`, is empty).\n"
        );
        return md;
    }
    let _ = writeln!(
        md,
        "Each change measured by `deploy/ab.sh` on a memory-broker stack of its own: ingest flat out, the binaries before and after taking turns; medians per side (`tools/bench/changes.jsonl`).\n"
    );
    head(
        &mut md,
        &[
            "change",
            "before events/s",
            "after events/s",
            "ratio",
            "events per ingest core before / after",
            "ratio",
            "p99 ms before / after",
        ],
    );
    for c in &changes {
        let side = |s: &str, k: &str| num(c, &[s, k]);
        row(
            &mut md,
            &[
                cell(c["change"].as_str().unwrap_or("")),
                fmt(side("before", "events_per_sec"), 0),
                fmt(side("after", "events_per_sec"), 0),
                fmt(num(c, &["ratio_events_per_sec"]), 2),
                format!(
                    "{} / {}",
                    fmt(side("before", "events_per_ingest_core"), 0),
                    fmt(side("after", "events_per_ingest_core"), 0)
                ),
                fmt(num(c, &["ratio_per_core"]), 2),
                format!(
                    "{} / {}",
                    fmt(side("before", "p99_ms"), 1),
                    fmt(side("after", "p99_ms"), 1)
                ),
            ],
        );
    }
    let _ = writeln!(md);
    for c in &changes {
        let _ = writeln!(
            md,
            "- **{}** ({}; {} rounds of {} s at {} connections): {}",
            c["change"].as_str().unwrap_or(""),
            c["date"].as_str().unwrap_or(""),
            c["rounds"],
            c["seconds"],
            c["connections"],
            c["detail"].as_str().unwrap_or(""),
        );
    }
    let _ = writeln!(md);
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_change_and_says_when_there_is_none() {
        let fixture = concat!(
            r#"{"measure":"change","change":"Ingest on mimalloc","detail":"glibc malloc was 22% of the profile.","date":"2026-11-25T17:00:00Z","rounds":4,"connections":64,"seconds":15,"before":{"events_per_sec":107764.2,"p99_ms":150.1,"ingest_cores":0.8,"events_per_ingest_core":134705.3,"peak_rss_mib":45},"after":{"events_per_sec":122335.4,"p99_ms":131.9,"ingest_cores":0.8,"events_per_ingest_core":152919.0,"peak_rss_mib":48},"ratio_events_per_sec":1.1352,"ratio_per_core":1.1352}"#,
            "\n",
            r#"{"measure":"change","change":"Parse once | encode once","detail":"One pass.","date":"2026-11-26T09:00:00Z","rounds":3,"connections":64,"seconds":15,"before":{"events_per_sec":122000,"p99_ms":130,"ingest_cores":0.8,"events_per_ingest_core":152500,"peak_rss_mib":48},"after":{"events_per_sec":140300,"p99_ms":110.2,"ingest_cores":0.8,"events_per_ingest_core":175375,"peak_rss_mib":47},"ratio_events_per_sec":1.15,"ratio_per_core":1.15}"#,
            "\n"
        );
        let md = section(fixture);
        assert!(
            md.contains("| Ingest on mimalloc | 107764 | 122335 | 1.14 | 134705 / 152919 | 1.14 | 150.1 / 131.9 |"),
            "{md}"
        );
        // A pipe in a title must not break the table.
        assert!(
            md.contains("| Parse once \\| encode once | 122000 | 140300 | 1.15 | 152500 / 175375 | 1.15 | 130.0 / 110.2 |"),
            "{md}"
        );
        assert!(md.contains(
            "- **Ingest on mimalloc** (2026-11-25T17:00:00Z; 4 rounds of 15 s at 64 connections): glibc malloc was 22% of the profile."
        ));
        assert!(!md.contains("No change has been measured yet"));
        for empty in ["", "\n", "not json\n"] {
            assert!(section(empty).contains("No change has been measured yet"));
        }
    }
}
