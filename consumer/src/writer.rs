//! Writing a batch: its events settled against the copies storage holds, then its dead
//! letters and one INSERT per table. Every step is idempotent, so a failed one is tried
//! again, paced by what kind of failure it was:
//!
//! - transient (the network, a timeout, a server too busy or short of memory, parts or
//!   disk; an answer that is only an HTTP status): retried with exponential backoff, as the
//!   same request can succeed once the condition passes;
//! - permanent (ClickHouse refused the request itself, e.g. a row it cannot parse, a missing
//!   table or column, bad credentials; rows the client could not encode): the same batch
//!   fails the same way until someone changes the schema, the configuration or the code.
//!   It is retried all the same, at the longest pause, and logged as an error each time:
//!   dropping the batch would lose its events, and committing past it would too. The
//!   partition waits meanwhile, which the lag gauges show.
//!
//! Either way the batch's offsets are not committed until it is written ([`Written`] is
//! what the commit step takes). Once shutdown begins, a transient failure gets three more
//! attempts and a permanent one none; an unwritten batch is then left uncommitted, to be
//! read again by whichever consumer next owns its partitions.

use crate::batch::Batch;
use crate::dead_letter::DeadLetters;
use crate::dedup;
use crate::identity;
use crate::metrics::ConsumerMetrics;
use crate::suppress::Suppressions;
use backon::{ExponentialBuilder, Retryable};
use eye_model::time::EventTime;
use eye_store::{Store, StoreError, StoredCopy};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("dead-letter topic: {0}")]
    DeadLetter(#[source] KafkaError),
}

/// What kind of failure a write met, which decides how it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// May succeed as it is, later.
    Transient,
    /// Fails the same way until something outside the consumer changes.
    Permanent,
}

impl WriteError {
    pub fn class(&self) -> Class {
        match self {
            Self::Store(StoreError::ClickHouse(e)) => clickhouse_class(e),
            Self::Store(StoreError::Config(_) | StoreError::ClusterDdl(_) | StoreError::Tls(_)) => {
                Class::Permanent
            }
            Self::Store(StoreError::MutationsPending { .. }) => Class::Transient,
            Self::DeadLetter(e) => kafka_class(e),
        }
    }
}

/// ClickHouse exception codes that say the server could not take the request now, rather
/// than that it refuses it: `UNEXPECTED_END_OF_FILE`, `ATTEMPT_TO_READ_AFTER_EOF`,
/// `TIMEOUT_EXCEEDED`, `CANNOT_ALLOCATE_MEMORY`, `TOO_MANY_SIMULTANEOUS_QUERIES`,
/// `NO_FREE_CONNECTION`, `SOCKET_TIMEOUT`, `NETWORK_ERROR`, `NO_ZOOKEEPER`, `ABORTED`,
/// `MEMORY_LIMIT_EXCEEDED`, `TABLE_IS_READ_ONLY`, `NOT_ENOUGH_SPACE`, `TOO_MANY_PARTS`,
/// `TOO_FEW_LIVE_REPLICAS`, `UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE`,
/// `UNKNOWN_STATUS_OF_INSERT`, `RECEIVED_ERROR_TOO_MANY_REQUESTS`, `QUERY_WAS_CANCELLED`,
/// `SYSTEM_ERROR`, `CANNOT_SCHEDULE_TASK`, `KEEPER_EXCEPTION` (`src/Common/ErrorCodes.cpp`).
const TRANSIENT_CODES: &[u32] = &[
    3, 32, 159, 173, 202, 203, 209, 210, 225, 236, 241, 242, 243, 252, 285, 286, 319, 364, 394,
    425, 439, 999,
];

fn clickhouse_class(e: &clickhouse::error::Error) -> Class {
    use clickhouse::error::Error as E;
    match e {
        E::BadResponse(reason) => match exception_code(reason) {
            Some(code) if !TRANSIENT_CODES.contains(&code) => Class::Permanent,
            // A busy server, or no exception at all: an HTTP status from the server or a
            // proxy in front of it.
            _ => Class::Transient,
        },
        // Rows this consumer cannot encode, or a stored-copies answer it cannot decode.
        E::InvalidParams(_)
        | E::SequenceMustHaveLength
        | E::DeserializeAnyNotSupported
        | E::NotEnoughData
        | E::InvalidUtf8Encoding(_)
        | E::InvalidTagEncoding(_)
        | E::VariantDiscriminatorIsOutOfBound(_)
        | E::Custom(_)
        | E::SchemaMismatch(_)
        | E::Unsupported(_) => Class::Permanent,
        // The network, timeouts, and whatever is not known to be the request's own fault.
        _ => Class::Transient,
    }
}

/// The exception code of a ClickHouse error answer: `Code: 27. DB::Exception: ...` (and
/// 18.16's `Code: 27, e.displayText() = ...`), or the code alone when the client had only
/// the `X-ClickHouse-Exception-Code` header; `None` for anything else.
fn exception_code(reason: &str) -> Option<u32> {
    let reason = reason.trim();
    let digits = match reason.strip_prefix("Code:") {
        Some(rest) => rest.trim_start(),
        None if reason.bytes().all(|b| b.is_ascii_digit()) => reason,
        None => return None,
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

fn kafka_class(e: &KafkaError) -> Class {
    use RDKafkaErrorCode as C;
    match e.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidRecord
            | C::TopicAuthorizationFailed,
        ) => Class::Permanent,
        _ => Class::Transient,
    }
}

/// Failures a transient error is given once shutdown has begun.
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// Whether to try again after a failure of `class`; `failed_since_stop` counts the
/// failures since shutdown began, this one included (0 while running).
fn again(class: Class, stopping: bool, failed_since_stop: u32) -> bool {
    match (stopping, class) {
        (false, _) => true,
        (true, Class::Transient) => failed_since_stop <= SHUTDOWN_ATTEMPTS,
        (true, Class::Permanent) => false,
    }
}

/// The pause before the next attempt: the backoff's after a transient failure, the
/// longest after a permanent one, which asking sooner would not change.
fn pause(class: Class, backoff: Option<Duration>, longest: Duration) -> Option<Duration> {
    match class {
        Class::Transient => backoff,
        Class::Permanent => Some(longest),
    }
}

/// A batch written whole: the only thing its offsets may be committed for.
pub struct Written<'a>(&'a Batch);

impl Written<'_> {
    pub fn batch(&self) -> &Batch {
        self.0
    }
}

pub struct Writer {
    pub store: Store,
    pub dead_letters: DeadLetters,
    pub metrics: ConsumerMetrics,
    /// The longest pause between attempts (`EYE_CONSUMER_INSERT_BACKOFF_MAX_MS`).
    pub backoff_max: Duration,
    pub stopping: Arc<AtomicBool>,
    /// The server deduplicates a retried insert by token (current ClickHouse; not 18.16).
    pub insert_tokens: bool,
    /// Subjects whose data was deleted, read again before a batch is written when older
    /// than `suppression_refresh` (`EYE_CONSUMER_SUPPRESSION_REFRESH_MS`).
    pub suppressions: tokio::sync::Mutex<Suppressions>,
    pub suppression_refresh: Duration,
}

impl Writer {
    /// Drops the batch's later copies of stored events, then writes it, each step tried
    /// until it succeeds or shutdown gives up on it.
    pub async fn write<'a>(&self, batch: &'a mut Batch) -> Result<Written<'a>, WriteError> {
        let started = Instant::now();
        self.retrying(|| self.refresh_suppressions()).await?;
        let new = {
            let mut list = self.suppressions.lock().await;
            let dropped = list.filter(batch, EventTime::now().as_micros());
            let m = &self.metrics.suppressed;
            m.with_label_values(&["events"])
                .inc_by(dropped.events as u64);
            m.with_label_values(&["sessions"])
                .inc_by(dropped.sessions as u64);
            m.with_label_values(&["rejected_events"])
                .inc_by(dropped.rejected as u64);
            dropped.new
        };
        // Stored before the batch: a later event of such a session, read by any consumer
        // (after a crash, this one again), is dropped too.
        self.retrying(|| async { Ok(self.store.insert_suppressions(&new).await?) })
            .await?;
        let stored = self.retrying(|| self.stored_copies(batch)).await?;
        self.metrics
            .lookup_duration
            .observe(started.elapsed().as_secs_f64());
        let (kept, dropped) = dedup::first_copies(std::mem::take(&mut batch.events), &stored);
        batch.events = kept;
        batch.identities = identity::derive(&batch.events);
        self.metrics.duplicates.inc_by(dropped as u64);
        let suppressed = self
            .suppressions
            .lock()
            .await
            .filter_identities(&mut batch.identities);
        self.metrics
            .suppressed
            .with_label_values(&["identities"])
            .inc_by(suppressed as u64);
        self.retrying(|| self.insert(batch)).await?;
        self.count(batch, started);
        Ok(Written(batch))
    }

    /// Reads the suppressions added since the last read, when that is older than the
    /// refresh interval.
    async fn refresh_suppressions(&self) -> Result<(), WriteError> {
        let mut list = self.suppressions.lock().await;
        if list.due(self.suppression_refresh, Instant::now()) {
            list.refresh(&self.store, EventTime::now().as_micros())
                .await?;
            self.metrics.suppressions.set(list.len() as i64);
        }
        Ok(())
    }

    /// What storage already holds of the batch's events (see [`dedup`]).
    async fn stored_copies(&self, batch: &Batch) -> Result<Vec<StoredCopy>, WriteError> {
        Ok(self
            .store
            .stored_copies(&dedup::keys(&batch.events))
            .await?)
    }

    /// Dead letters first (each is acknowledged by the broker), then one INSERT per table.
    /// Identity rows go after the events they point at: a reader that finds an actor row
    /// finds its event, so a page picked from actor rows is never short of a stored event.
    async fn insert(&self, batch: &Batch) -> Result<(), WriteError> {
        self.dead_letters
            .send(&batch.dead_letters)
            .await
            .map_err(WriteError::DeadLetter)?;
        let store = if self.insert_tokens {
            self.store.with_insert_token(&batch.dedup_token())
        } else {
            self.store.clone()
        };
        store.insert_events(&batch.events).await?;
        store.insert_rejected(&batch.rejected).await?;
        store.insert_sessions(&batch.sessions).await?;
        store.insert_links(&batch.identities.links).await?;
        store.insert_actors(&batch.identities.actors).await?;
        Ok(())
    }

    /// Runs `op` until it succeeds, paced and given up on by the class of each failure.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, WriteError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, WriteError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(self.backoff_max)
            .with_jitter()
            .without_max_times();
        let stopping = self.stopping.clone();
        let mut failed_since_stop = 0u32;
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(move |e: &WriteError| {
                let stopping = stopping.load(Ordering::SeqCst);
                if stopping {
                    failed_since_stop += 1;
                }
                again(e.class(), stopping, failed_since_stop)
            })
            .adjust(|e, backoff| pause(e.class(), backoff, self.backoff_max))
            .notify(|e, pause| {
                self.metrics.insert_failures.inc();
                match e.class() {
                    Class::Transient => {
                        tracing::warn!(error = %e, retry_in = ?pause, "write failed; retrying")
                    }
                    Class::Permanent => {
                        tracing::error!(error = %e, retry_in = ?pause, "ClickHouse refused the batch; it is retried until the cause is fixed, and its partitions wait")
                    }
                }
            })
            .await
    }

    /// The batch is stored: its rows, size, time and freshness.
    fn count(&self, batch: &Batch, started: Instant) {
        let m = &self.metrics;
        if !batch.events.is_empty() {
            let rows = batch.events.len();
            m.insert_duration.observe(started.elapsed().as_secs_f64());
            m.rows_inserted.inc_by(rows as u64);
            m.batch_rows.observe(rows as f64);
            m.batch_bytes.observe(batch.bytes() as f64);
            // End-to-end freshness: from ingest's receipt to ClickHouse's confirmation.
            let now_us = EventTime::now().as_micros();
            for row in &batch.events {
                let secs = (now_us - row.received_at_us).max(0) as f64 / 1e6;
                m.freshness.observe(secs);
            }
        }
        m.quarantined.inc_by(batch.rejected.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error as E;

    fn io(kind: std::io::ErrorKind) -> Box<dyn std::error::Error + Send + Sync> {
        Box::new(std::io::Error::from(kind))
    }

    #[test]
    fn clickhouse_failures_have_classes() {
        use Class::{Permanent, Transient};
        let bad = |s: &str| E::BadResponse(s.to_owned());
        let cases = [
            (E::Network(io(std::io::ErrorKind::ConnectionRefused)), Transient),
            (E::TimedOut, Transient),
            (bad("Code: 241. DB::Exception: Memory limit (total) exceeded"), Transient),
            (bad("Code: 252. DB::Exception: Too many parts (300)"), Transient),
            (bad("Code: 159, e.displayText() = DB::Exception: Timeout exceeded"), Transient),
            (bad("Code: 27. DB::Exception: Cannot parse input: expected '\\t'"), Permanent),
            (bad("Code: 60. DB::Exception: Table eye.events doesn't exist"), Permanent),
            (bad("Code: 81, e.displayText() = DB::Exception: Database nope doesn't exist, e.what() = DB::Exception"), Permanent),
            (bad("Code: 516. DB::Exception: default: Authentication failed"), Permanent),
            // The exception code alone, from the response header.
            (bad("53"), Permanent),
            (bad("202"), Transient),
            // An HTTP status with no exception: the server or a proxy in front of it.
            (bad("502 Bad Gateway"), Transient),
            (bad("503 Service Unavailable"), Transient),
            (bad(""), Transient),
            (E::Custom("invalid value: NaN".into()), Permanent),
            (E::NotEnoughData, Permanent),
            (E::SchemaMismatch("column count".into()), Permanent),
            (E::Other(io(std::io::ErrorKind::BrokenPipe)), Transient),
        ];
        for (e, want) in cases {
            let text = e.to_string();
            let got = WriteError::Store(StoreError::ClickHouse(e)).class();
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn dead_letter_failures_have_classes() {
        use RDKafkaErrorCode as C;
        let cases = [
            (C::MessageTimedOut, Class::Transient),
            (C::QueueFull, Class::Transient),
            (C::BrokerTransportFailure, Class::Transient),
            (C::MessageSizeTooLarge, Class::Permanent),
            (C::TopicAuthorizationFailed, Class::Permanent),
        ];
        for (code, want) in cases {
            let e = WriteError::DeadLetter(KafkaError::MessageProduction(code));
            assert_eq!(e.class(), want, "{code:?}");
        }
    }

    #[test]
    fn exception_codes_are_read_from_either_server_format() {
        let cases = [
            ("Code: 27. DB::Exception: x", Some(27)),
            ("Code: 81, e.displayText() = DB::Exception: x", Some(81)),
            ("Code:999. x", Some(999)),
            ("  241  ", Some(241)),
            ("500 Internal Server Error", None),
            ("Code: x", None),
            ("DB::Exception: no code", None),
        ];
        for (reason, want) in cases {
            assert_eq!(exception_code(reason), want, "{reason:?}");
        }
    }

    #[test]
    fn retries_follow_the_class_and_shutdown() {
        use Class::{Permanent, Transient};
        // (class, stopping, failures since stop, again)
        let cases = [
            (Transient, false, 0, true),
            (Permanent, false, 0, true),
            (Transient, true, 1, true),
            (Transient, true, 3, true),
            (Transient, true, 4, false),
            (Permanent, true, 1, false),
        ];
        for (class, stopping, failed, want) in cases {
            assert_eq!(
                again(class, stopping, failed),
                want,
                "{class:?} stopping={stopping} failed={failed}"
            );
        }
        let longest = Duration::from_secs(5);
        let backoff = Some(Duration::from_millis(200));
        assert_eq!(pause(Transient, backoff, longest), backoff);
        assert_eq!(pause(Permanent, backoff, longest), Some(longest));
    }
}
