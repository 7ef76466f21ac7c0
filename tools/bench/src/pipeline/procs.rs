//! CPU and memory of the pipeline's processes, read from /proc while a load runs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The processes a report names, by executable file name.
pub const WATCHED: [&str; 6] = [
    "eye-ingest",
    "eye-consumer",
    "eye-query",
    "tansu",
    "clickhouse-server",
    // The load generator runs inside eye-bench: on two cores its share matters.
    "eye-bench",
];

/// CPU ticks (user + system) and resident memory of every watched process, now.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub at: Option<Instant>,
    /// name -> (cpu ticks, rss KiB)
    pub procs: BTreeMap<String, (u64, u64)>,
}

pub fn snapshot() -> Snapshot {
    let mut procs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Snapshot::default();
    };
    // Another stack on the machine (deploy/ab.sh beside make bench) runs processes of the
    // same names. With EYE_HOME set, only the stack's own count (deploy/stack.sh starts each
    // one in a directory under it), and this process, the load generator.
    let home = std::env::var_os("EYE_HOME").and_then(|h| std::fs::canonicalize(h).ok());
    let me = std::process::id().to_string();
    for entry in dir.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        let Some(name) = exe.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let name = name.trim_end_matches(" (deleted)");
        let Some(watched) = WATCHED.iter().find(|w| name == **w) else {
            continue;
        };
        if let Some(home) = &home {
            let ours = std::fs::read_link(format!("/proc/{pid}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(home));
            if !ours && pid != me {
                continue;
            }
        }
        let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| cpu_ticks(&s))
            .unwrap_or(0);
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| kib(&s, "VmRSS:"))
            .unwrap_or(0);
        let e = procs.entry((*watched).to_owned()).or_default();
        e.0 += ticks;
        e.1 += rss;
    }
    Snapshot {
        at: Some(Instant::now()),
        procs,
    }
}

/// utime + stime from /proc/PID/stat (fields 14 and 15, after the parenthesised name).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) is index 11.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Per process between two snapshots: cores used on average, and the larger RSS in MiB.
pub fn usage(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, (f64, f64)> {
    // USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK)); no libc call for one constant.
    const TICKS_PER_SEC: f64 = 100.0;
    let secs = match (before.at, after.at) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    }
    .as_secs_f64();
    after
        .procs
        .iter()
        .map(|(name, (ticks, rss))| {
            let (t0, rss0) = before.procs.get(name).copied().unwrap_or((*ticks, 0));
            let cores = if secs > 0.0 {
                ticks.saturating_sub(t0) as f64 / TICKS_PER_SEC / secs
            } else {
                0.0
            };
            (name.clone(), (cores, (*rss).max(rss0) as f64 / 1024.0))
        })
        .collect()
}

/// Peak RSS of every watched process, sampled every 500 ms while a step runs: RSS rises and
/// falls, so two snapshots would miss the peak that the memory targets are about.
pub struct Watch {
    peak: Arc<Mutex<BTreeMap<String, u64>>>,
    done: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub fn start() -> Self {
        let peak: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            tokio::task::spawn_blocking(move || {
                while !done.load(Ordering::Relaxed) {
                    let snap = snapshot();
                    let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                    for (name, (_, rss)) in snap.procs {
                        let e = p.entry(name).or_default();
                        *e = (*e).max(rss);
                    }
                    drop(p);
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        };
        Self {
            peak,
            done,
            sampler,
        }
    }

    /// Stops sampling. Per process: `{"cores", "peak_rss_mib"}`, cores between `before` and
    /// `after` (the caller picks the interval that is the step), RSS the peak seen meanwhile.
    pub async fn finish(
        mut self,
        before: &Snapshot,
        after: &Snapshot,
    ) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        self.done.store(true, Ordering::Relaxed);
        (&mut self.sampler).await?;
        let peak = self.peak.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(usage(before, after)
            .into_iter()
            .map(|(name, (cores, rss))| {
                // A step shorter than one sample still has the two snapshots' RSS.
                let peak = (peak.get(&name).copied().unwrap_or(0) as f64 / 1024.0).max(rss);
                (
                    name,
                    serde_json::json!({"cores": cores, "peak_rss_mib": peak}),
                )
            })
            .collect())
    }
}

impl Drop for Watch {
    /// A step that failed must still stop the sampler: the runtime waits for blocking
    /// tasks on shutdown, so a sampler left running would hang the process.
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// This process's own peak RSS in MiB (VmHWM): what generating the records costs.
pub fn own_peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| kib(&s, "VmHWM:"))
        .unwrap_or(0) as f64
        / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_and_rss() {
        // A name with spaces and parentheses must not shift the fields.
        let stat = "1234 (eye ingest (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1000 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        let status = "Name:\teye-ingest\nVmHWM:\t  40000 kB\nVmRSS:\t   30720 kB\n";
        assert_eq!(kib(status, "VmRSS:"), Some(30_720));
        assert_eq!(kib(status, "VmSwap:"), None);
    }

    #[test]
    fn usage_is_cores_over_the_interval() {
        let t0 = Instant::now();
        let before = Snapshot {
            at: Some(t0),
            procs: BTreeMap::from([("tansu".to_owned(), (1_000, 1024))]),
        };
        let after = Snapshot {
            at: Some(t0 + Duration::from_secs(2)),
            procs: BTreeMap::from([("tansu".to_owned(), (1_300, 2048))]),
        };
        let u = usage(&before, &after);
        assert_eq!(u["tansu"], (1.5, 2.0));
    }
}
