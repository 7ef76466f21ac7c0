//! `eye-admin retention`: what `EYE_RETENTION_*` removes now (`show`), and removing it
//! (`apply`, the consumer's scheduled run, once).

use anyhow::Context;
use eye_model::time::EventTime;
use eye_runtime::config;
use eye_store::config::ClickHouseConfig;
use eye_store::retention::{self, Plan, RetentionConfig};
use eye_store::Store;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum RetentionCommand {
    /// Print the cutoffs, and per table the partitions that would be dropped whole and the
    /// rows that would be deleted; changes nothing.
    Show,
    /// Drop the expired partitions and delete the other expired rows, waiting for the
    /// deletes to finish; on servers with table TTL (19.6+), also set it.
    Apply {
        /// Longest wait for each table's deletes, in seconds.
        #[arg(long, default_value_t = 600)]
        wait_s: u64,
    },
}

pub async fn run(cmd: RetentionCommand) -> anyhow::Result<()> {
    let c: ClickHouseConfig = config::from_env()?;
    let r: RetentionConfig = config::from_env()?;
    if !r.is_configured() {
        println!("no EYE_RETENTION_* set: everything is kept forever");
        return Ok(());
    }
    let store = Store::connect(&c).await?;
    let now = EventTime::now().as_micros();
    let plan = match cmd {
        RetentionCommand::Show => retention::plan(&store, &r, now)
            .await
            .with_context(|| format!("reading {} on {}", c.database, c.url))?,
        RetentionCommand::Apply { wait_s } => {
            if retention::apply_ttl(&store, &r).await? {
                println!("table TTL set");
            }
            retention::apply(&store, &r, now, Duration::from_secs(wait_s))
                .await
                .with_context(|| format!("applying retention to {} on {}", c.database, c.url))?
        }
    };
    print!("{}", render(&plan));
    Ok(())
}

fn time(us: i64) -> String {
    EventTime::from_micros(us).to_rfc3339()
}

/// The plan as lines for people.
pub fn render(plan: &Plan) -> String {
    let mut out = format!("now {}\n", time(plan.now_us));
    let cut = &plan.cutoffs;
    for (category, t) in &cut.categories {
        out += &format!("category {category}: events before {} expire\n", time(*t));
    }
    match cut.default {
        Some(t) => out += &format!("other categories: events before {} expire\n", time(t)),
        None => out += "other categories: kept forever\n",
    }
    match cut.quarantine {
        Some(t) => out += &format!("quarantine: records received before {} expire\n", time(t)),
        None => out += "quarantine: kept forever\n",
    }
    for (t, p) in &plan.tables {
        let months: Vec<String> = p.partitions.iter().map(|(m, _)| m.to_string()).collect();
        out += &format!(
            "{}: {} partition(s) dropped whole [{}] ({} rows), {} rows deleted\n",
            t.name(),
            p.partitions.len(),
            months.join(", "),
            p.rows_in_partitions(),
            p.rows_to_delete
        );
    }
    out
}
