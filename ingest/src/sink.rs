//! Where accepted events, quarantined rejections and session records go: an [`EventSink`]
//! takes a request's records together and says which, if any, it did not take. The
//! [`KafkaSink`] produces them to the broker; the [`MemorySink`] keeps them in memory, so
//! that the handling of a request is tested without a broker.

mod kafka;
mod memory;

pub use kafka::KafkaSink;
pub use memory::MemorySink;

use crate::error::IngestError;
use eye_kafka::wire::{self, Rejection, SessionUpdate};
use eye_model::event::Event;
use eye_model::session::SessionChange;
use std::future::Future;
use uuid::Uuid;

/// Takes a request's records and reports on each.
pub trait EventSink: Send + Sync + 'static {
    /// Takes `records` together and returns once every one is settled: which, if any, were
    /// not taken. An error means none was, or what became of them is unknown; the request
    /// is then refused whole. A record not taken may have been stored all the same (a
    /// timed-out acknowledgement); a client that retries with the same `event_id`s gets
    /// each event stored once, because storage keeps one copy per event.
    fn send(&self, records: Records) -> impl Future<Output = Result<Delivery, IngestError>> + Send;

    /// Whether records can be taken now (`/readyz`).
    fn check(&self) -> impl Future<Output = Result<(), String>> + Send;

    /// Waits, within the sink's own timeout, for what it holds to be settled (shutdown).
    fn flush(&self) -> impl Future<Output = ()> + Send;
}

/// The topic a record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Events,
    Rejected,
    Sessions,
}

/// One record encoded for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: Topic,
    pub key: String,
    pub payload: Vec<u8>,
}

impl Record {
    /// The event's or rejection's id inside the payload; `None` for a session record, or
    /// a payload that cannot be read back.
    pub fn id(&self) -> Option<Uuid> {
        payload_id(self.topic, &self.payload)
    }
}

fn payload_id(topic: Topic, payload: &[u8]) -> Option<Uuid> {
    match topic {
        Topic::Events => wire::decode_event(payload).ok().map(|m| m.event_id),
        Topic::Rejected => wire::decode_rejection(payload).ok().map(|r| r.rejection_id),
        Topic::Sessions => None,
    }
}

/// One request's records, not yet sent.
#[derive(Debug, Default)]
pub struct Records(Vec<Record>);

impl Records {
    /// Accepted events, then quarantined rejections.
    pub fn batch(events: &[Event], rejections: &[Rejection]) -> Self {
        let mut items = Vec::with_capacity(events.len() + rejections.len());
        for ev in events {
            items.push(Record {
                topic: Topic::Events,
                key: ev.session_id.as_str().to_owned(),
                payload: wire::encode(ev),
            });
        }
        for r in rejections {
            items.push(Record {
                topic: Topic::Rejected,
                key: r.key(),
                payload: r.encode(),
            });
        }
        Self(items)
    }

    /// A session's start or end.
    pub fn session(change: &SessionChange) -> Self {
        Self(vec![Record {
            topic: Topic::Sessions,
            key: change.session_id.as_str().to_owned(),
            payload: SessionUpdate::from(change).encode(),
        }])
    }

    /// What they occupy in the producer's queue, which copies each key and payload.
    pub fn bytes(&self) -> u64 {
        self.0
            .iter()
            .map(|r| (r.key.len() + r.payload.len()) as u64)
            .sum()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Record> {
        self.0.iter()
    }
}

impl IntoIterator for Records {
    type Item = Record;
    type IntoIter = std::vec::IntoIter<Record>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A record the sink did not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The event's `event_id` or the rejection's `rejection_id`; `None` for a session
    /// record, or a record whose payload could not be read back.
    pub id: Option<Uuid>,
    pub error: NotTaken,
}

/// Why the sink did not take a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotTaken {
    /// The broker refused it, or did not acknowledge it within the message timeout.
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A [`MemorySink`] told to refuse it.
    #[error("memory sink: record refused")]
    Refused,
}

/// What became of a request's records once every report is in: all taken, or these not.
#[derive(Debug, Default)]
pub struct Delivery {
    pub records: usize,
    pub failed: Vec<Failed>,
}

impl Delivery {
    /// Not one record was taken: the request left nothing behind, and may be refused whole.
    pub fn none_stored(&self) -> bool {
        self.failed.len() >= self.records
    }

    /// Whether the record with this id was among those not taken.
    pub fn failed(&self, id: Uuid) -> bool {
        self.failed.iter().any(|f| f.id == Some(id))
    }
}
