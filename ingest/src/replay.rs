//! `POST /v1/rejected/replay`: a front door of ingest whose items come from the quarantine
//! instead of the network. Each selected record's raw text is run through the rules as
//! they are now (the schemas in force, the time bounds, its client's allow-list and
//! `unknown_types` policy from the clients file) with its ORIGINAL time of receipt, so the
//! skew-corrected time, and so the stored event, is the same however often it is replayed.
//! An event that names no `event_id` gets one derived from the rejection id ([`derived_id`]).
//!
//! What passes is produced to the events topic like any door's events, and only once the
//! broker acknowledged them is the record's outcome (`replayed`, or `rejected` with its new
//! reasons) written to `rejected_replays` through the store; the quarantine row itself is
//! kept. A record whose latest outcome is `replayed` is skipped: a second replay produces
//! nothing, and were an outcome lost, the consumer's first-copy rule would still store the
//! identical event once. A dry run tallies the same verdicts per reason and writes nothing.
//!
//! The answer streams NDJSON ([`ReplayLine`]): a `progress` line per page of the
//! quarantine (read in key order, [`PAGE_ROWS`] at a time, so memory stays bounded), then
//! one `summary`, or an `error` line that ends a replay cut short (each page done before
//! it stays done; replaying again resumes, skipping what was replayed).

use crate::adapter::Adapter;
use crate::batch::category_not_allowed;
use crate::error::IngestError;
use crate::routes::{State, Write};
use crate::sink::{Delivery, EventSink, Records};
use bytes::Bytes;
use eye_auth::ClientRules;
use eye_kafka::wire::Reason;
use eye_model::api::{ReasonCounts, ReplayCounts, ReplayLine, ReplayRequest};
use eye_model::event::{parse_again, Event, FieldError, Item, Limits, Rules};
use eye_model::schema::{SchemaRegistry, UnknownTypePolicy};
use eye_model::time::EventTime;
use eye_store::{RejectedFilter, RejectedRow, ReplayRow, Store};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::reply::Response;
use warp::Reply;

/// Replaying writes events in other clients' names: its own scope (or `admin`), never
/// implied by `events:write`.
pub(crate) const REPLAY: &[eye_auth::Scope] = &[eye_auth::Scope::Replay];

/// A store on the default settings that nothing connects to until used: the state of
/// handler tests that never replay.
#[cfg(test)]
pub fn offline_store() -> Store {
    let config: eye_store::config::ClickHouseConfig =
        eye_runtime::config::from_iter(std::iter::empty()).expect("defaults");
    Store::new(&config).expect("default settings")
}

/// Records read from the quarantine, replayed and answered for at a time.
pub const PAGE_ROWS: u32 = 250;

/// The namespace of the ids derived for replayed events that carried none.
const REPLAY_NAMESPACE: Uuid = Uuid::from_u128(0x6579_655f_7265_706c_6179_5f69_6473_0001);

/// The quarantine sources whose raw text is in the event shape (`POST /v1/events`): the
/// other doors keep what their clients sent in their own protocols.
const REPLAYABLE_SOURCES: [&str; 2] = [eye_kafka::wire::SOURCE_INGEST, "ingest/replay"];

/// The `event_id` of the `index`th event of the quarantined record `rejection_id`, when
/// the client sent none: the same for every replay of the record.
pub fn derived_id(rejection_id: Uuid, index: usize) -> Uuid {
    let mut name = rejection_id.as_bytes().to_vec();
    if index > 0 {
        name.extend_from_slice(&(index as u64).to_be_bytes());
    }
    Uuid::new_v5(&REPLAY_NAMESPACE, &name)
}

/// The quarantine filter a replay request selects, or the field at fault.
pub fn selection(req: &ReplayRequest) -> Result<RejectedFilter, IngestError> {
    let time = |field: &str, v: &Option<String>| -> Result<Option<i64>, IngestError> {
        v.as_deref()
            .map(|t| {
                EventTime::parse(t).map(EventTime::as_micros).map_err(|_| {
                    IngestError::InvalidReplay(FieldError::new(
                        format!("/{field}"),
                        "invalid_time",
                        format!("{field} must be an RFC 3339 time, e.g. 2024-01-01T00:00:00Z"),
                    ))
                })
            })
            .transpose()
    };
    let (from_us, to_us) = (time("from", &req.from)?, time("to", &req.to)?);
    if let (Some(f), Some(t)) = (from_us, to_us) {
        if f >= t {
            return Err(IngestError::InvalidReplay(FieldError::new(
                "/to",
                "empty_range",
                "to must be later than from",
            )));
        }
    }
    let text = |field: &str, v: &Option<String>| -> Result<Option<String>, IngestError> {
        match v.as_deref() {
            Some("") => Err(IngestError::InvalidReplay(FieldError::new(
                format!("/{field}"),
                "empty",
                format!("{field} must not be empty; leave it out to select any"),
            ))),
            other => Ok(other.map(str::to_owned)),
        }
    };
    Ok(RejectedFilter {
        reason: text("reason", &req.reason)?,
        from_us,
        to_us,
        client: text("client", &req.client)?,
        category: text("category", &req.category)?,
        name: text("name", &req.name)?,
        after: None,
        limit: PAGE_ROWS,
    })
}

/// What the rules of today say of one quarantined record.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every event in it passes: these are produced.
    Pass(Vec<Event>),
    /// It still breaks a rule, for these reasons.
    Fail(Vec<Reason>),
}

/// The rules of today, less the client's own parts.
#[derive(Clone, Copy)]
pub struct Today<'a> {
    pub limits: &'a Limits,
    pub schemas: &'a SchemaRegistry,
    /// The service's `EYE_INGEST_UNKNOWN_TYPE_POLICY`, for clients without their own.
    pub unknown_types: UnknownTypePolicy,
}

fn reason(field: &str, code: &str, message: impl Into<String>) -> Reason {
    Reason {
        field: field.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Runs one quarantined record through `today`'s rules and its client's (`None`: the
/// client is no longer declared, or was revoked). A record is replayed whole or not at
/// all: a body quarantined whole passes only when every event in it does, and its reasons
/// then point into its events by index (`/2/data`).
pub fn rerun(row: &RejectedRow, today: Today<'_>, client: Option<&ClientRules>) -> Verdict {
    if !REPLAYABLE_SOURCES.contains(&row.source.as_str()) {
        return Verdict::Fail(vec![reason(
            "",
            "not_replayable",
            format!(
                "quarantined by the {:?} door, in its client's own protocol: replay takes records sent as events (POST /v1/events)",
                row.source
            ),
        )]);
    }
    if row.raw_bytes > row.raw.len() as u64 {
        return Verdict::Fail(vec![reason(
            "",
            "truncated",
            format!(
                "the quarantine kept {} of the {} bytes sent: the event cannot be rebuilt",
                row.raw.len(),
                row.raw_bytes
            ),
        )]);
    }
    let Some(client) = client else {
        return Verdict::Fail(vec![reason(
            "",
            "client_unknown",
            format!(
                "client {:?} is not declared, or was revoked: its rules cannot be applied",
                row.client
            ),
        )]);
    };
    let rules = Rules {
        limits: today.limits,
        schemas: today.schemas,
        unknown_types: client.unknown_types.unwrap_or(today.unknown_types),
    };
    let received_at = EventTime::from_micros(row.received_at_us);
    let items = match parse_again(row.raw.as_bytes(), received_at, rules, |i| {
        derived_id(row.rejection_id, i)
    }) {
        Ok(items) => items,
        Err(e) => return Verdict::Fail(vec![reason("", e.code(), e.to_string())]),
    };
    let several = items.len() > 1;
    let mut events = Vec::with_capacity(items.len());
    let mut reasons = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let errors = match item {
            Item::Accepted(ev) if client.may_write(ev.category.as_str()) => {
                events.push(ev);
                continue;
            }
            Item::Accepted(ev) => category_not_allowed(ev).errors,
            Item::Rejected(r) => r.errors,
        };
        for e in &errors {
            let mut r = Reason::from(e);
            if several {
                r.field = format!("/{i}{}", r.field);
            }
            reasons.push(r);
        }
    }
    match reasons.is_empty() {
        true => Verdict::Pass(events),
        false => Verdict::Fail(reasons),
    }
}

/// A replay's running counts, and per original reason how many pass and fail.
#[derive(Debug, Default)]
pub struct Tally {
    pub counts: ReplayCounts,
    pub by_reason: BTreeMap<String, ReasonCounts>,
}

impl Tally {
    /// Counts a record quarantined for `codes` that passes now (or not), once per code.
    pub fn verdict(&mut self, codes: &[String], pass: bool) {
        let mut codes: Vec<&str> = codes.iter().map(String::as_str).collect();
        codes.sort_unstable();
        codes.dedup();
        if codes.is_empty() {
            codes.push("(none)");
        }
        for c in codes {
            let n = self.by_reason.entry(c.to_owned()).or_default();
            match pass {
                true => n.pass += 1,
                false => n.fail += 1,
            }
        }
    }
}

/// `POST /v1/rejected/replay` (behind `replay` or `admin`): the body is a [`ReplayRequest`]. The first
/// page is read before answering, so a quarantine that cannot be read is a 503, not a
/// stream that fails at once.
pub async fn replay<S: EventSink>(w: Write<S>) -> Result<Response, IngestError> {
    let Write {
        state,
        guard,
        caller,
        body,
        held,
        ..
    } = w;
    drop(held);
    let req: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            IngestError::InvalidReplay(FieldError::new(
                "",
                "invalid_body",
                eye_model::event::json_error_message(&e),
            ))
        })?
    };
    let mut filter = selection(&req)?;
    let first = state
        .quarantine
        .rejected(&filter)
        .await
        .map_err(|e| IngestError::QuarantineUnavailable(e.to_string()))?;
    let run = Run {
        replay_id: Uuid::now_v7(),
        by: caller.client_id.clone(),
        dry_run: req.dry_run,
        schemas: Arc::clone(&state.schemas.current()),
        state,
        guard,
    };
    tracing::info!(replay_id = %run.replay_id, by = %run.by, dry_run = run.dry_run, ?req, "replay started");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(1);
    tokio::spawn(async move {
        let mut tally = Tally::default();
        let mut page = first;
        let last = loop {
            let full = page.len() as u32 >= filter.limit;
            filter.after = page.last().map(|r| (r.received_at_us, r.rejection_id));
            if let Err(e) = run.page(&page, &mut tally).await {
                break Some(e);
            }
            if !full {
                break None;
            }
            let line = ReplayLine::Progress {
                counts: tally.counts,
            };
            if tx.send(Ok(ndjson(&line))).await.is_err() {
                tracing::info!(replay_id = %run.replay_id, counts = ?tally.counts, "replay abandoned by the client");
                return;
            }
            page = match run.state.quarantine.rejected(&filter).await {
                Ok(p) => p,
                Err(e) => break Some(PageError::Store(e.to_string())),
            };
        };
        let line = match last {
            None => {
                tracing::info!(replay_id = %run.replay_id, counts = ?tally.counts, "replay done");
                ReplayLine::Summary {
                    replay_id: run.replay_id,
                    dry_run: run.dry_run,
                    counts: tally.counts,
                    by_reason: tally.by_reason,
                }
            }
            Some(e) => {
                tracing::warn!(replay_id = %run.replay_id, error = %e, counts = ?tally.counts, "replay cut short");
                ReplayLine::Error {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                    counts: tally.counts,
                }
            }
        };
        let _ = tx.send(Ok(ndjson(&line))).await;
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut res = warp::reply::stream(body).into_response();
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn ndjson(line: &ReplayLine) -> Bytes {
    let mut out = serde_json::to_vec(line).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Why a replay stopped before its end.
#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("the quarantine store failed: {0}")]
    Store(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl PageError {
    fn code(&self) -> &'static str {
        match self {
            Self::Store(_) => "clickhouse_unavailable",
            Self::Ingest(e) => e.code(),
        }
    }
}

/// One replay in progress.
struct Run<S> {
    replay_id: Uuid,
    by: String,
    dry_run: bool,
    schemas: Arc<SchemaRegistry>,
    state: Arc<State<S>>,
    guard: eye_http::auth::Guard,
}

impl<S: EventSink> Run<S> {
    /// Replays one page of the quarantine: verdicts, then (unless a dry run) the events of
    /// the records that pass, then, once the broker acknowledged them, every outcome.
    async fn page(&self, rows: &[RejectedRow], tally: &mut Tally) -> Result<(), PageError> {
        let store: &Store = &self.state.quarantine;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.rejection_id).collect();
        let done: HashSet<Uuid> = store
            .replay_outcomes(&ids)
            .await
            .map_err(|e| PageError::Store(e.to_string()))?
            .into_iter()
            .filter(|o| o.result == "replayed")
            .map(|o| o.rejection_id)
            .collect();
        let today = Today {
            limits: &self.state.limits,
            schemas: &self.schemas,
            unknown_types: self.state.unknown_types,
        };
        let auth = self.guard.authenticator();
        let mut verdicts: Vec<(&RejectedRow, Verdict)> = Vec::with_capacity(rows.len());
        for row in rows {
            tally.counts.scanned += 1;
            if done.contains(&row.rejection_id) {
                tally.counts.skipped += 1;
                continue;
            }
            let v = rerun(row, today, auth.client_rules(&row.client).as_ref());
            tally.verdict(&row.codes, matches!(v, Verdict::Pass(_)));
            verdicts.push((row, v));
        }
        let m = &self.state.metrics;
        let count = |result: &str, n: u64| {
            if !self.dry_run {
                m.replay_records.with_label_values(&[result]).inc_by(n);
            }
        };
        count("skipped", (rows.len() - verdicts.len()) as u64);
        if self.dry_run {
            for (_, v) in &verdicts {
                match v {
                    Verdict::Pass(_) => tally.counts.replayed += 1,
                    Verdict::Fail(_) => tally.counts.rejected += 1,
                }
            }
            return Ok(());
        }
        let events: Vec<Event> = verdicts
            .iter()
            .flat_map(|(_, v)| match v {
                Verdict::Pass(evs) => evs.clone(),
                Verdict::Fail(_) => Vec::new(),
            })
            .collect();
        let delivery = self.produce(&events).await;
        let now = EventTime::now().as_micros();
        let mut outcomes = Vec::with_capacity(verdicts.len());
        let (mut replayed, mut rejected, mut failed) = (0u64, 0u64, 0u64);
        for (row, v) in verdicts {
            let (result, reasons) = match v {
                Verdict::Pass(evs) => {
                    let taken = match &delivery {
                        Ok(d) => evs.iter().all(|e| !d.failed(e.event_id)),
                        Err(_) => false,
                    };
                    if !taken {
                        failed += 1;
                        continue;
                    }
                    replayed += 1;
                    ("replayed", Vec::new())
                }
                Verdict::Fail(reasons) => {
                    rejected += 1;
                    ("rejected", reasons)
                }
            };
            outcomes.push(ReplayRow {
                rejection_id: row.rejection_id,
                replay_id: self.replay_id,
                replayed_at_us: now,
                replayed_by: self.by.clone(),
                result: result.to_owned(),
                codes: reasons.iter().map(|r| r.code.clone()).collect(),
                reasons: serde_json::to_string(&reasons).unwrap_or_else(|_| "[]".into()),
            });
        }
        let produced = events.len() as u64 - events_failed(&delivery, &events);
        m.events
            .with_label_values(&[Adapter::Replay.as_str(), "produced"])
            .inc_by(produced);
        tally.counts.failed += failed;
        count("failed", failed);
        store
            .insert_replays(&outcomes)
            .await
            .map_err(|e| PageError::Store(e.to_string()))?;
        tally.counts.replayed += replayed;
        tally.counts.rejected += rejected;
        count("replayed", replayed);
        count("rejected", rejected);
        match delivery {
            Err(e) => Err(e.into()),
            Ok(_) => Ok(()),
        }
    }

    /// Produces a page's events within the caller's share of the in-flight budget, and
    /// waits for every acknowledgement.
    async fn produce(&self, events: &[Event]) -> Result<Delivery, IngestError> {
        if events.is_empty() {
            return Ok(Delivery::default());
        }
        let records = Records::batch(events, &[]);
        let mut held = self.state.budget.open(&self.by);
        held.grow_to(records.bytes())?;
        let delivery = self.state.sink.send(records).await;
        if let Ok(d) = &delivery {
            if !d.failed.is_empty() {
                self.state
                    .metrics
                    .events
                    .with_label_values(&[Adapter::Replay.as_str(), "failed"])
                    .inc_by(d.failed.len() as u64);
            }
        }
        delivery
    }
}

fn events_failed(delivery: &Result<Delivery, IngestError>, events: &[Event]) -> u64 {
    match delivery {
        Ok(d) => d.failed.len() as u64,
        Err(_) => events.len() as u64,
    }
}

#[cfg(test)]
mod tests;
