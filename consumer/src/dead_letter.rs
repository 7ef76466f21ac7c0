//! Messages that cannot be decoded are never dropped and never block their partition:
//! each becomes a rejection, sent to the dead-letter topic, or, when it came from the
//! dead-letter topic itself, stored straight in the quarantine table.

use crate::batch::Position;
use eye_kafka::wire::{DecodeError, Reason, Rejection, SOURCE_CONSUMER};
use eye_model::time::EventTime;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

/// The rejection an undecodable message becomes, keyed by the message's key. Its id
/// derives from the message's position, so a replay quarantines it once.
pub fn rejection(
    at: Position<'_>,
    key: Option<&[u8]>,
    payload: &[u8],
    error: &DecodeError,
    received_at: EventTime,
) -> Rejection {
    let mut rejection = Rejection::new(
        SOURCE_CONSUMER,
        "",
        received_at,
        payload,
        vec![Reason {
            field: String::new(),
            code: "undecodable".into(),
            message: format!(
                "{} partition {} offset {}: {error}",
                at.topic, at.partition, at.offset
            ),
        }],
        Default::default(),
    );
    rejection.session_id = key
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    rejection.rejection_id = uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{}/{}/{}", at.topic, at.partition, at.offset).as_bytes(),
    );
    rejection
}

/// The dead-letter topic, written before a batch's offsets are committed.
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
}

/// How long one dead letter may wait for room in the producer's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

impl DeadLetters {
    pub fn new(producer: FutureProducer, topic: String) -> Self {
        Self { producer, topic }
    }

    /// Sends every rejection and waits until the broker has acknowledged each; the first
    /// failure is the error. Sending one again is harmless: the quarantine keeps each
    /// rejection id once.
    pub async fn send(&self, rejections: &[Rejection]) -> Result<(), KafkaError> {
        let sends = rejections.iter().map(|r| {
            let payload = r.encode();
            let key = r.key();
            async move {
                let record = FutureRecord::to(&self.topic).key(&key).payload(&payload);
                self.producer
                    .send(record, QUEUE_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            }
        });
        futures::future::join_all(sends).await.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_message_is_named_by_its_position() {
        let at = |offset| Position {
            topic: "t.events",
            partition: 2,
            offset,
        };
        let error = DecodeError::Version(9);
        let received = EventTime::from_micros(5);
        let r = rejection(at(40), Some(b"s1"), b"\x00garbage", &error, received);
        assert_eq!(r.source, SOURCE_CONSUMER);
        assert_eq!((r.session_id.as_str(), r.key()), ("s1", "s1".to_owned()));
        assert_eq!(r.reasons[0].code, "undecodable");
        assert!(
            r.reasons[0]
                .message
                .starts_with("t.events partition 2 offset 40: "),
            "{}",
            r.reasons[0].message
        );
        assert_eq!(r.received_at_us, 5);
        // The same position is the same rejection; another is another.
        let again = rejection(at(40), None, b"other", &error, received);
        assert_eq!(again.rejection_id, r.rejection_id);
        assert_eq!(
            again.key(),
            r.rejection_id.to_string(),
            "keyless: keyed by its id"
        );
        assert_ne!(
            rejection(at(41), Some(b"s1"), b"\x00garbage", &error, received).rejection_id,
            r.rejection_id
        );
    }
}
