//! The commands: arguments (clap) and what each does with the modules of this crate.

use crate::check::{Checker, Rejection, Report, Summary};
use crate::error::{CliError, EXIT_REJECTED};
use crate::output::FormatArgs;
use crate::profile::{self, Credentials, Profile, Secret, DEFAULT_PROFILE};
use crate::progress::Progress;
use crate::remote;
use clap::{Args, Parser, Subcommand, ValueEnum};
use eye_model::schema::{UnknownTypePolicy, DEFAULT_SCHEMA_DIR};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// The Eye from the terminal: check events, store where the services are.
#[derive(Debug, Parser)]
#[command(name = "eye", version, about, max_term_width = 100)]
pub struct Cli {
    /// The profile to use (`eye login` stores them).
    #[arg(long, global = true, env = profile::env::PROFILE, default_value = DEFAULT_PROFILE)]
    pub profile: String,
    /// No progress bar.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(flatten)]
    pub format: FormatArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check events offline with ingest's rules and schemas, without sending anything.
    ///
    /// FILE holds a JSON array of events or NDJSON (one event per line); `-` reads stdin.
    /// Prints each rejected event as `line N: <field>: <code>: <message>` and a summary;
    /// exits 1 if any event was rejected, 2 if the file or schemas cannot be read.
    Check(CheckArgs),
    /// Store a profile: the services' URLs and credentials, in the config directory (0600).
    Login(LoginArgs),
    /// Show the settings the profile and the environment give, secrets not shown.
    Config,
    /// Send events to ingest: FILE holds a JSON array or NDJSON; `-` reads stdin.
    ///
    /// Batches and pipelines requests, retries what can succeed later, and gives each event
    /// an `event_id` when it has none (so retries store it once). Rejected events go to
    /// stderr (or --rejected-out) as JSON lines with their line, field and code. Exits 1 if
    /// any event was rejected or failed, unless --allow-rejected.
    Send(SendArgs),
    /// A session: its lifecycle and all its events.
    Session {
        /// The session's id.
        id: String,
    },
    /// Events matching the filters, oldest first, following every page.
    Events(EventsArgs),
    /// The `value` of one event type aggregated per bucket: a table and a chart.
    Agg(AggArgs),
    /// The event types stored, with their counts.
    Categories,
    /// Quarantined requests and events, in arrival order.
    Rejected(RejectedArgs),
    /// Follow new events of a session or a type as they become readable (Ctrl-C stops).
    Tail(TailArgs),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Events: a JSON array or NDJSON; `-` for stdin.
    pub file: PathBuf,
    /// Events per request (at most ingest's EYE_INGEST_MAX_BATCH_EVENTS, 1,000 by default).
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Compress request bodies: `auto` does unless ingest is on this machine (loopback),
    /// where gzip would cost CPU and save no time.
    #[arg(long, value_enum, default_value_t = remote::Gzip::Auto)]
    pub gzip: remote::Gzip,
    /// Write refused events here (JSON lines) instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub rejected_out: Option<PathBuf>,
    /// Exit 0 even when events were rejected.
    #[arg(long)]
    pub allow_rejected: bool,
}

/// Filters of the event listings.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// One session's events.
    #[arg(long)]
    pub session: Option<String>,
    /// One category's.
    #[arg(long)]
    pub category: Option<String>,
    /// One name's.
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// From this time on (any timestamp form the API takes), inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Newest first.
    #[arg(long)]
    pub desc: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
pub struct AggArgs {
    /// The event type's category.
    #[arg(long)]
    pub category: String,
    /// The event type's name.
    #[arg(long)]
    pub name: String,
    /// From this time on, inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// minute, hour, day, week, month, year or none.
    #[arg(long)]
    pub granularity: Option<String>,
    /// avg, min, max, sum, count, p50, p90, p95 or p99.
    #[arg(long)]
    pub agg: Option<String>,
    /// An IANA zone for the buckets (UTC by default).
    #[arg(long)]
    pub tz: Option<String>,
    /// none, zero or null: empty buckets left out, or shown as 0 or null.
    #[arg(long)]
    pub fill: Option<String>,
}

#[derive(Debug, Args)]
pub struct RejectedArgs {
    /// One rule's code (invalid_timestamp, unknown_field, ...).
    #[arg(long)]
    pub reason: Option<String>,
    /// Received from this time on, inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Received before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("followed").required(true).args(["session", "category"]))]
pub struct TailArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Time between two polls, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub interval_ms: u64,
    /// How far back each poll looks, in seconds: events whose time is older are not shown.
    #[arg(long, default_value_t = 300)]
    pub window_s: u64,
    /// Stop after this many polls (for scripts and tests).
    #[arg(long, hide = true)]
    pub polls: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Events: a JSON array or NDJSON; `-` for stdin.
    pub file: PathBuf,
    /// Directory of JSON Schemas, `<category>/<name>.json`, as ingest's
    /// EYE_INGEST_SCHEMA_DIR.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_SCHEMA_DIR)]
    pub schemas: PathBuf,
    /// Event types without a schema: rejected (ingest's default) or accepted unchecked.
    #[arg(long, value_enum, default_value_t = UnknownTypes::Reject)]
    pub unknown_types: UnknownTypes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnknownTypes {
    Accept,
    Reject,
}

impl From<UnknownTypes> for UnknownTypePolicy {
    fn from(u: UnknownTypes) -> Self {
        match u {
            UnknownTypes::Accept => Self::Accept,
            UnknownTypes::Reject => Self::Reject,
        }
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("credentials").required(true).args(["api_key", "client_id"]))]
pub struct LoginArgs {
    /// Ingest's URL. Default: the profile's, else http://127.0.0.1:8080 (`make up`).
    #[arg(long, value_name = "URL")]
    pub ingest_url: Option<String>,
    /// The query service's URL. Default: the profile's, else http://127.0.0.1:8081.
    #[arg(long, value_name = "URL")]
    pub query_url: Option<String>,
    /// An API key; `-` reads it from stdin (keeps it out of the shell's history).
    #[arg(long, value_name = "KEY", conflicts_with_all = ["client_id", "client_secret"])]
    pub api_key: Option<String>,
    /// An OAuth2 client id (with --client-secret).
    #[arg(long, value_name = "ID", requires = "client_secret")]
    pub client_id: Option<String>,
    /// The client's secret; `-` reads it from stdin.
    #[arg(long, value_name = "SECRET", requires = "client_id")]
    pub client_secret: Option<String>,
}

/// Runs the command; `Ok` carries the exit status of a run that did its work.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Check(ref args) => check(&cli, args),
        Command::Login(ref args) => login(&cli, args),
        Command::Config => config(&cli),
        Command::Send(ref args) => {
            let options = remote::SendOptions {
                batch: args.batch.clamp(1, 1_000),
                in_flight: args.concurrency.max(1),
                gzip: args.gzip,
                rejected_out: args.rejected_out.clone(),
                allow_rejected: args.allow_rejected,
                quiet: cli.quiet,
            };
            remote::send(&settings(&cli)?, &args.file, &options)
        }
        Command::Session { ref id } => remote::session(&settings(&cli)?, id, cli.format),
        Command::Events(ref a) => {
            let f = filters(&a.filters, a.from.clone(), a.to.clone());
            remote::events(&settings(&cli)?, &f, a.desc, a.limit, cli.format)
        }
        Command::Agg(ref a) => {
            let query = eye_client::AggregateQuery {
                from: a.from.clone(),
                to: a.to.clone(),
                granularity: a.granularity.clone(),
                agg: a.agg.clone(),
                tz: a.tz.clone(),
                fill: a.fill.clone(),
                ..eye_client::AggregateQuery::new(&a.category, &a.name)
            };
            remote::aggregate(&settings(&cli)?, &query, cli.format)
        }
        Command::Categories => remote::categories(&settings(&cli)?, cli.format),
        Command::Rejected(ref a) => {
            let query = eye_client::RejectedQuery {
                reason: a.reason.clone(),
                from: a.from.clone(),
                to: a.to.clone(),
                page_size: Some(1_000),
            };
            remote::rejected(&settings(&cli)?, &query, a.limit, cli.format)
        }
        Command::Tail(ref a) => remote::tail(
            &settings(&cli)?,
            &filters(&a.filters, None, None),
            std::time::Duration::from_millis(a.interval_ms.max(10)),
            std::time::Duration::from_secs(a.window_s),
            a.polls,
            cli.format,
        ),
    }
}

/// The profile with the environment's overrides.
fn settings(cli: &Cli) -> Result<profile::Resolved, CliError> {
    let path = profile::default_path()?;
    let profiles = profile::load(&path)?;
    profile::resolve(&profiles, &path, &cli.profile, &|k| std::env::var(k).ok())
}

fn filters(a: &FilterArgs, from: Option<String>, to: Option<String>) -> remote::Filters {
    remote::Filters {
        session_id: a.session.clone(),
        category: a.category.clone(),
        name: a.name.clone(),
        from,
        to,
    }
}

fn stdout_err(source: std::io::Error) -> CliError {
    CliError::Io {
        path: "<stdout>".into(),
        source,
    }
}

fn check(cli: &Cli, args: &CheckArgs) -> Result<ExitCode, CliError> {
    if cli.format.ndjson || cli.format.csv || cli.format.table {
        return Err(CliError::Usage(
            "`eye check` prints lines for people, or one report with --json".into(),
        ));
    }
    let checker = Checker::load(&args.schemas, args.unknown_types.into())?;
    let events = crate::input::open(&args.file)?;
    let mut progress = Progress::for_stderr(events.total_bytes(), cli.quiet, "valid");
    let json = cli.format.json;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut summary = Summary::default();
    let mut rejections = Vec::new();
    let mut events = events;
    while let Some(event) = events.next() {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                progress.finish();
                return Err(e.into());
            }
        };
        summary.checked += 1;
        match checker.check(&event.text) {
            Ok(()) => {
                summary.valid += 1;
                progress.record(1, 0, events.position());
            }
            Err(errors) => {
                summary.rejected += 1;
                progress.record(0, 1, events.position());
                let r = Rejection::new(&event, errors);
                if json {
                    rejections.push(r);
                } else {
                    let hidden = progress.is_hidden();
                    let mut write = || -> std::io::Result<()> {
                        for line in r.lines() {
                            writeln!(out, "{line}")?;
                        }
                        // The bar shares the terminal: the lines go out while it is cleared.
                        if hidden {
                            Ok(())
                        } else {
                            out.flush()
                        }
                    };
                    if hidden {
                        write()
                    } else {
                        progress.suspend(write)
                    }
                    .map_err(stdout_err)?;
                }
            }
        }
    }
    progress.finish();
    if json {
        let report = Report {
            summary: &summary,
            rejections: &rejections,
        };
        let text = serde_json::to_string(&report).unwrap_or_default();
        writeln!(out, "{text}").map_err(stdout_err)?;
    } else {
        writeln!(out, "{}", summary.line()).map_err(stdout_err)?;
    }
    out.flush().map_err(stdout_err)?;
    Ok(if summary.rejected > 0 {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// A secret from its flag, or from stdin's first line for `-`.
fn secret(value: &str, what: &str) -> Result<Secret, CliError> {
    if value != "-" {
        return Ok(Secret::new(value));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|source| CliError::Io {
            path: "<stdin>".into(),
            source,
        })?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(CliError::Usage(format!(
            "{what}: stdin held no line to read it from"
        )));
    }
    Ok(Secret::new(line))
}

fn login(cli: &Cli, args: &LoginArgs) -> Result<ExitCode, CliError> {
    let path = profile::default_path()?;
    let mut profiles = profile::load(&path)?;
    let old = profiles
        .profiles
        .get(&cli.profile)
        .cloned()
        .unwrap_or_default();
    let url = |flag: &str, given: &Option<String>, old: &Option<String>, local: &str| match given {
        Some(u) => profile::check_url(flag, u),
        None => Ok(old.clone().unwrap_or_else(|| local.to_owned())),
    };
    let ingest_url = url(
        "--ingest-url",
        &args.ingest_url,
        &old.ingest_url,
        "http://127.0.0.1:8080",
    )?;
    let query_url = url(
        "--query-url",
        &args.query_url,
        &old.query_url,
        "http://127.0.0.1:8081",
    )?;
    let credentials = match (&args.api_key, &args.client_id, &args.client_secret) {
        (Some(key), _, _) => Credentials::ApiKey(secret(key, "--api-key")?),
        (None, Some(id), Some(s)) => Credentials::ClientCredentials {
            client_id: id.clone(),
            client_secret: secret(s, "--client-secret")?,
        },
        _ => {
            return Err(CliError::Usage(
                "give --api-key, or --client-id with --client-secret".into(),
            ))
        }
    };
    let (api_key, client_id, client_secret, what) = match credentials {
        Credentials::ApiKey(k) => (Some(k), None, None, "API key".to_owned()),
        Credentials::ClientCredentials {
            client_id,
            client_secret,
        } => (
            None,
            Some(client_id.clone()),
            Some(client_secret),
            format!("client {client_id} and its secret"),
        ),
    };
    profiles.profiles.insert(
        cli.profile.clone(),
        Profile {
            ingest_url: Some(ingest_url.clone()),
            query_url: Some(query_url.clone()),
            api_key,
            client_id,
            client_secret,
        },
    );
    profile::save(&path, &profiles)?;
    println!(
        "saved profile {:?} in {}: ingest {ingest_url}, query {query_url}, {what} (not shown)",
        cli.profile,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn config(cli: &Cli) -> Result<ExitCode, CliError> {
    let path = profile::default_path()?;
    let profiles = profile::load(&path)?;
    let resolved = profile::resolve(&profiles, &path, &cli.profile, &|k| std::env::var(k).ok())?;
    println!("{}file: {}", resolved.describe(), path.display());
    Ok(ExitCode::SUCCESS)
}
