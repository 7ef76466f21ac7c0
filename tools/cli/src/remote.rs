//! The commands that talk to the services, through `eye-client`: `eye send` and the reads
//! (`session`, `events`, `agg`, `categories`, `rejected`, `tail`).

use crate::error::CliError;
use crate::input::RawEvent;
use crate::output::{self, Format, FormatArgs, Shape};
use crate::profile::{Credentials, Resolved};
use crate::progress::Progress;
use eye_client::{
    AggregateQuery, Client, ClientError, EventQuery, FullQueue, OutcomeKind, RejectedQuery,
    RetryPolicy,
};
use futures::{Stream, StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Runs `f` on a runtime of its own: the offline commands need none.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, CliError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| CliError::Io {
            path: "<tokio runtime>".into(),
            source,
        })?;
    Ok(rt.block_on(f))
}

/// The client error as the CLI reports it, with its hint.
pub fn cli_error(e: ClientError) -> CliError {
    match e {
        ClientError::Transport { url, message, .. } => CliError::Unreachable { url, message },
        ClientError::Api { status, error, .. } => {
            CliError::from_status(status, &error.code, &error.message, "the service")
        }
        ClientError::Token { status, body } => {
            CliError::from_status(status, "token_refused", &body, "the token endpoint")
        }
        other => CliError::Usage(other.to_string()),
    }
}

fn credentials(c: &Credentials) -> eye_client::Credentials {
    match c {
        Credentials::ApiKey(k) => eye_client::Credentials::api_key(k.expose()),
        Credentials::ClientCredentials {
            client_id,
            client_secret,
        } => eye_client::Credentials::client_credentials(client_id, client_secret.expose()),
    }
}

/// A client for reads: the query URL is needed; ingest's serves the token endpoint.
fn reader(settings: &Resolved) -> Result<Client, CliError> {
    let ingest = settings
        .ingest_url
        .clone()
        .unwrap_or_else(|| settings.query_url.clone().unwrap_or_default());
    Client::builder(ingest, credentials(settings.credentials()?))
        .query_url(settings.query_url()?)
        // A person waits for the answer: a read that keeps failing is reported soon.
        .retry(RetryPolicy {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            deadline: Duration::from_secs(3),
        })
        .build()
        .map_err(cli_error)
}

fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Io {
            path: "<stdout>".into(),
            source,
        })
}

/// Whether `eye send` compresses its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Gzip {
    /// Unless ingest is on a loopback address.
    Auto,
    Always,
    Never,
}

impl Gzip {
    fn wanted(self, ingest_url: &str) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => !is_loopback(ingest_url),
        }
    }
}

/// Whether the URL's host is this machine: `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How `eye send` sends.
#[derive(Debug, Clone)]
pub struct SendOptions {
    pub batch: usize,
    pub in_flight: usize,
    pub gzip: Gzip,
    /// Where rejected events go, one JSON object per line with their reasons; stderr when
    /// `None`.
    pub rejected_out: Option<std::path::PathBuf>,
    /// Exit 0 even when events were rejected.
    pub allow_rejected: bool,
    pub quiet: bool,
}

/// A rejected or failed event as `eye send` reports it.
#[derive(serde::Serialize)]
struct Refused<'a> {
    line: Option<usize>,
    event_id: Uuid,
    outcome: &'a str,
    reasons: serde_json::Value,
    event: &'a serde_json::value::RawValue,
}

/// `eye send FILE`: every event of the file, pipelined, with a progress bar; rejected
/// events reported with their line and reasons.
pub fn send(settings: &Resolved, file: &Path, o: &SendOptions) -> Result<ExitCode, CliError> {
    let mut events = crate::input::open(file)?;
    let ingest = settings.ingest_url()?.to_owned();
    let creds = credentials(settings.credentials()?);
    let mut sink: Box<dyn Write + Send> = match &o.rejected_out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| CliError::Io {
                path: path.clone(),
                source,
            })?,
        )),
        None => Box::new(std::io::stderr()),
    };
    block_on(async move {
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        // Lines of the events not yet answered for, to name them when refused.
        let lines: Arc<Mutex<HashMap<Uuid, usize>>> = Arc::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let client = {
            let (accepted, refused, lines) = (accepted.clone(), refused.clone(), lines.clone());
            Client::builder(ingest.clone(), creds)
                .max_batch_events(o.batch)
                .max_in_flight(o.in_flight)
                .gzip(o.gzip.wanted(&ingest))
                .queue(o.batch * o.in_flight * 4, FullQueue::Wait)
                .on_outcome(move |outcome| {
                    let line = lines
                        .lock()
                        .ok()
                        .and_then(|mut l| l.remove(&outcome.event_id));
                    let (kind, reasons) = match &outcome.kind {
                        OutcomeKind::Accepted => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        OutcomeKind::Rejected(errors) => {
                            ("rejected", serde_json::to_value(errors).unwrap_or_default())
                        }
                        OutcomeKind::Failed(why) => ("failed", serde_json::json!(why)),
                    };
                    refused.fetch_add(1, Ordering::Relaxed);
                    // Events are queued as JSON objects, so the text is JSON.
                    let Ok(event) =
                        serde_json::from_str::<&serde_json::value::RawValue>(&outcome.event)
                    else {
                        return;
                    };
                    let record = Refused {
                        line,
                        event_id: outcome.event_id,
                        outcome: kind,
                        reasons,
                        event,
                    };
                    let _ = tx.send(serde_json::to_string(&record).unwrap_or_default());
                })
                .build()
                .map_err(cli_error)?
        };
        // Refused events are written as they come, off the sending path.
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(line) = rx.blocking_recv() {
                if writeln!(sink, "{line}").is_err() {
                    break;
                }
            }
            sink.flush()
        });
        let mut progress = Progress::for_stderr(events.total_bytes(), o.quiet, "accepted");
        let (mut seen_ok, mut seen_refused) = (0, 0);
        let (mut read, mut sent) = (0u64, 0u64);
        let mut first_error = None;
        while let Some(event) = events.next() {
            let RawEvent { line, text } = match event {
                Ok(e) => {
                    read += 1;
                    e
                }
                Err(e) => {
                    first_error = Some(CliError::from(e));
                    break;
                }
            };
            match client.send_text(&text).await {
                Ok(id) => {
                    if let Ok(mut l) = lines.lock() {
                        l.insert(id, line);
                    }
                    sent += 1;
                }
                // Not an object: refused here, as ingest would.
                Err(ClientError::Decode(why)) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    progress.println(&format!("line {line}: (event): not_an_object: {why}"));
                }
                Err(e) => {
                    first_error = Some(cli_error(e));
                    break;
                }
            }
            let (ok, bad) = (
                accepted.load(Ordering::Relaxed),
                refused.load(Ordering::Relaxed),
            );
            progress.record(ok - seen_ok, bad - seen_refused, events.position());
            (seen_ok, seen_refused) = (ok, bad);
        }
        client.shutdown().await;
        let (ok, bad) = (
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        );
        progress.record(ok - seen_ok, bad - seen_refused, events.position());
        progress.finish();
        drop(client);
        let _ = writer.await;
        if let Some(e) = first_error {
            return Err(e);
        }
        let stats = format!("sent {sent}, accepted {ok}, rejected or failed {bad}\n");
        if !o.quiet {
            eprint!("{stats}");
        }
        if bad > 0 && !o.allow_rejected {
            return Err(CliError::Rejected {
                rejected: bad,
                total: read,
            });
        }
        Ok(ExitCode::SUCCESS)
    })?
}

/// The filters `eye events` and `eye tail` take.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub session_id: Option<String>,
    pub category: Option<String>,
    pub name: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `eye session ID`: the session's lifecycle and all its events.
pub fn session(settings: &Resolved, id: &str, flags: FormatArgs) -> Result<ExitCode, CliError> {
    let answer = block_on(async {
        reader(settings)?
            .session_events(id)
            .await
            .map_err(cli_error)
    })??;
    print(&output::session_events(
        &answer,
        Format::for_stdout(flags, Shape::Single),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Collects a listing, at most `limit` items.
async fn collect<T>(
    stream: impl Stream<Item = Result<T, ClientError>>,
    limit: Option<usize>,
) -> Result<Vec<T>, ClientError> {
    let stream = std::pin::pin!(stream);
    match limit {
        Some(n) => stream.take(n).try_collect().await,
        None => stream.try_collect().await,
    }
}

/// `eye events`: every matching event, following pages.
pub fn events(
    settings: &Resolved,
    f: &Filters,
    descending: bool,
    limit: Option<usize>,
    flags: FormatArgs,
) -> Result<ExitCode, CliError> {
    let query = EventQuery {
        session_id: f.session_id.clone(),
        category: f.category.clone(),
        name: f.name.clone(),
        from: f.from.clone(),
        to: f.to.clone(),
        descending,
        page_size: Some(1_000),
    };
    let found = block_on(async {
        collect(reader(settings)?.events(&query), limit)
            .await
            .map_err(cli_error)
    })??;
    print(&output::events(
        &found,
        Format::for_stdout(flags, Shape::Listing),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `eye agg`.
pub fn aggregate(
    settings: &Resolved,
    query: &AggregateQuery,
    flags: FormatArgs,
) -> Result<ExitCode, CliError> {
    let answer = block_on(async { reader(settings)?.aggregate(query).await.map_err(cli_error) })??;
    print(&output::aggregate(
        &answer,
        Format::for_stdout(flags, Shape::Single),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `eye categories`.
pub fn categories(settings: &Resolved, flags: FormatArgs) -> Result<ExitCode, CliError> {
    let answer = block_on(async { reader(settings)?.categories().await.map_err(cli_error) })??;
    print(&output::categories(
        &answer,
        Format::for_stdout(flags, Shape::Single),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `eye rejected`.
pub fn rejected(
    settings: &Resolved,
    query: &RejectedQuery,
    limit: Option<usize>,
    flags: FormatArgs,
) -> Result<ExitCode, CliError> {
    let found = block_on(async {
        collect(reader(settings)?.rejected(query), limit)
            .await
            .map_err(cli_error)
    })??;
    print(&output::rejected(
        &found,
        Format::for_stdout(flags, Shape::Listing),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Ids printed by `eye tail`, the oldest forgotten first: a window of them is enough,
/// since each poll reads a bounded span of time.
struct Seen {
    ids: HashSet<Uuid>,
    order: VecDeque<Uuid>,
    cap: usize,
}

impl Seen {
    fn new(cap: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// True the first time `id` is seen.
    fn first(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// `eye tail`: prints the matching events as they become readable, each once, until
/// interrupted (or `max_polls`, for tests). Each poll reads the events whose time is within
/// `window` of now: an event stored later than that after its own timestamp is not shown.
pub fn tail(
    settings: &Resolved,
    f: &Filters,
    interval: Duration,
    window: Duration,
    max_polls: Option<u64>,
    flags: FormatArgs,
) -> Result<ExitCode, CliError> {
    // A table per poll would repeat its header: lines suit following.
    let format = match Format::for_stdout(flags, Shape::Listing) {
        Format::Table => Format::Ndjson,
        other => other,
    };
    block_on(async {
        let client = reader(settings)?;
        let mut seen = Seen::new(1_000_000);
        let mut polls = 0u64;
        loop {
            let since = std::time::SystemTime::now()
                .checked_sub(window)
                .unwrap_or(std::time::UNIX_EPOCH);
            let since = since
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let query = EventQuery {
                session_id: f.session_id.clone(),
                category: f.category.clone(),
                name: f.name.clone(),
                from: Some(format!("{}.{:06}", since.as_secs(), since.subsec_micros())),
                to: None,
                descending: false,
                page_size: Some(1_000),
            };
            let found: Vec<_> = collect(client.events(&query), None)
                .await
                .map_err(cli_error)?;
            let fresh: Vec<_> = found
                .into_iter()
                .filter(|e| seen.first(e.event_id))
                .collect();
            if !fresh.is_empty() {
                print(&output::events(&fresh, format))?;
            }
            polls += 1;
            if max_polls.is_some_and(|m| polls >= m) {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(interval).await;
        }
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_skipped_on_loopback_only() {
        let cases = [
            ("http://127.0.0.1:8080", false),
            ("http://127.9.9.9:8080/", false),
            ("http://localhost:8080", false),
            ("http://[::1]:8080", false),
            ("https://ingest.example.com", true),
            ("http://10.0.0.5:8080", true),
            ("http://[2001:db8::1]:8080", true),
        ];
        for (url, gzip) in cases {
            assert_eq!(Gzip::Auto.wanted(url), gzip, "{url}");
            assert!(Gzip::Always.wanted(url));
            assert!(!Gzip::Never.wanted(url));
        }
    }

    #[test]
    fn tail_shows_each_event_once_within_its_memory() {
        let mut seen = Seen::new(2);
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let got: Vec<bool> = [a, a, b, c, b, a]
            .into_iter()
            .map(|id| seen.first(id))
            .collect();
        // `a` is forgotten once two newer ids are held.
        assert_eq!(got, [true, false, true, true, false, true]);
    }

    #[test]
    fn client_errors_become_errors_with_hints() {
        let cases = [
            (
                ClientError::Transport {
                    url: "http://127.0.0.1:1/v1/events".into(),
                    message: "connection refused".into(),
                    connect: true,
                },
                "cannot reach http://127.0.0.1:1/v1/events",
                "make up",
            ),
            (
                ClientError::Api {
                    status: 401,
                    error: eye_client::api::ErrorDetail {
                        code: "invalid_credentials".into(),
                        message: "the credential is not valid".into(),
                        details: Vec::new(),
                    },
                    retry_after: None,
                },
                "401 invalid_credentials",
                "eye login",
            ),
        ];
        for (e, error, hint) in cases {
            let report = cli_error(e).report();
            assert!(report.contains(error), "{report}");
            assert!(report.contains(hint), "{report}");
        }
    }
}
