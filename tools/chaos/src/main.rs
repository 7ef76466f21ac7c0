use clap::Parser;
use eye_chaos::{Scenario, Size, Suite};
use std::time::Duration;

/// Fault-injection suite: every scenario must end with 0 lost and 0 duplicated events as
/// seen through the query API; the negative control (deduplication off) must report
/// duplicates.
#[derive(Parser, Debug)]
#[command(name = "eye-chaos", version)]
struct Args {
    /// Events per scenario.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per second the generator holds.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds ClickHouse stays stopped or refusing inserts.
    #[arg(long, default_value_t = 30)]
    outage_s: u64,
    /// Undecodable messages in the poison scenario.
    #[arg(long, default_value_t = 1_000)]
    poison: usize,
    /// Only these scenarios (repeatable); default all.
    #[arg(long, value_enum)]
    scenario: Vec<Scenario>,
    /// A scenario still running after this many seconds fails.
    #[arg(long, default_value_t = 1_800)]
    scenario_timeout_s: u64,
    /// Skip the negative control.
    #[arg(long)]
    no_control: bool,
    /// Leave the suite's broker and ClickHouse running afterwards.
    #[arg(long)]
    keep_servers: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize()?;
    let size = Size {
        events: a.events,
        rate: a.rate,
        connections: a.connections,
        outage: Duration::from_secs(a.outage_s),
        poison: a.poison,
        drain_timeout: Duration::from_secs(600),
        scenario_timeout: Duration::from_secs(a.scenario_timeout_s),
    };
    let scenarios = if a.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        a.scenario.clone()
    };
    let suite = Suite::start(&root)?;
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    let mut runs: Vec<(Scenario, bool)> = scenarios.iter().map(|s| (*s, false)).collect();
    if !a.no_control {
        runs.push((Scenario::ConsumerAbortAfterInsert, true));
    }
    for (scenario, control) in runs {
        eprintln!(
            "eye-chaos: {}{} ...",
            scenario.name(),
            if control { " (negative control)" } else { "" }
        );
        match suite.run(scenario, &size, control).await {
            Ok(o) => {
                eprint!("{}", eye_chaos::report::table(std::slice::from_ref(&o)));
                outcomes.push(o);
            }
            Err(e) => {
                eprintln!("eye-chaos: {} could not run: {e:#}", scenario.name());
                errors.push(format!("{}: {e:#}", scenario.name()));
            }
        }
    }
    if !a.keep_servers {
        suite.finish()?;
    }
    println!(
        "\n{} events per scenario at {} events/s, ClickHouse outage {} s, {:.0} s in all. Logs: {}\n",
        size.events,
        size.rate,
        a.outage_s,
        started.elapsed().as_secs_f64(),
        suite.log_dir.display()
    );
    print!("{}", eye_chaos::report::table(&outcomes));
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
    anyhow::ensure!(
        failed.is_empty() && errors.is_empty(),
        "{} scenario(s) failed, {} could not run: {errors:?}",
        failed.len(),
        errors.len()
    );
    Ok(())
}
