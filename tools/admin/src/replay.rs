//! `eye-admin rejected replay`: runs `POST /v1/rejected/replay` on ingest with the given
//! filters and draws its progress from the streamed NDJSON lines on stderr (a spinner
//! with the running counts, as `eye-admin export` draws its bar); then prints the summary,
//! per original reason what passes now and what still fails.

use anyhow::{bail, Context};
use eye_model::api::{ReplayCounts, ReplayLine, ReplayRequest};

#[derive(clap::Subcommand)]
pub enum RejectedCommand {
    /// Run quarantined records through today's rules again: those that pass are stored
    /// as events (once, however often replayed), the others keep their new reasons.
    Replay(ReplayArgs),
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Ingest's base URL.
    #[arg(long, env = "EYE_INGEST_URL", default_value = "http://127.0.0.1:8080")]
    ingest_url: String,
    /// An API key of a client with the `replay` (or `admin`) scope.
    #[arg(long, env = "EYE_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Records quarantined for this reason code (e.g. schema_required).
    #[arg(long)]
    reason: Option<String>,
    /// Records received at or after this time (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Records received before this time (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Records sent by this client id.
    #[arg(long)]
    client: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// Report per reason what would pass; produce nothing, record nothing.
    #[arg(long)]
    dry_run: bool,
    /// No progress (it is drawn only on a terminal anyway).
    #[arg(long)]
    quiet: bool,
}

pub async fn run(cmd: RejectedCommand) -> anyhow::Result<()> {
    match cmd {
        RejectedCommand::Replay(args) => replay(args).await,
    }
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let request = ReplayRequest {
        reason: args.reason,
        from: args.from,
        to: args.to,
        client: args.client,
        category: args.category,
        name: args.name,
        dry_run: args.dry_run,
    };
    let url = format!(
        "{}/v1/rejected/replay",
        args.ingest_url.trim_end_matches('/')
    );
    let mut res = reqwest::Client::new()
        .post(&url)
        .bearer_auth(args.api_key.trim())
        .json(&request)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = res.status();
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        bail!("POST {url}: {status}: {body}");
    }
    let bar = crate::progress::spinner(args.quiet);
    let mut buffer = Vec::new();
    let mut last = None;
    while let Some(chunk) = res.chunk().await.context("reading the replay's answer")? {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line: ReplayLine = serde_json::from_slice(&line).with_context(|| {
                format!("a line of the answer: {}", String::from_utf8_lossy(&line))
            })?;
            if let ReplayLine::Progress { counts } = &line {
                bar.set_message(describe(counts));
            }
            last = Some(line);
        }
    }
    bar.finish_and_clear();
    match last {
        Some(ReplayLine::Summary {
            replay_id,
            dry_run,
            counts,
            by_reason,
        }) => {
            let what = if dry_run { "dry run" } else { "replay" };
            println!("{what} {replay_id}: {}", describe(&counts));
            println!("{:<32} {:>10} {:>10}", "reason", "pass", "fail");
            for (reason, n) in by_reason {
                println!("{reason:<32} {:>10} {:>10}", n.pass, n.fail);
            }
            Ok(())
        }
        Some(ReplayLine::Error {
            code,
            message,
            counts,
        }) => bail!(
            "replay cut short ({code}: {message}) after {}; run it again to resume",
            describe(&counts)
        ),
        _ => bail!("the replay's answer ended before its summary; run it again to resume"),
    }
}

fn describe(c: &ReplayCounts) -> String {
    format!(
        "{} scanned · {} replayed · {} still failing · {} skipped (replayed before) · {} failed",
        c.scanned, c.replayed, c.rejected, c.skipped, c.failed
    )
}
