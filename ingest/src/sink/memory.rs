//! A sink that keeps records in memory, as the broker would have taken them: what a
//! request leaves behind is read back without a broker.

use super::{Delivery, EventSink, Failed, NotTaken, Record, Records};
use crate::error::{IngestError, Overload};
use std::sync::{Mutex, MutexGuard, PoisonError};

type Refuse = dyn Fn(&Record) -> bool + Send + Sync;

/// Takes every record, unless told to refuse some or to be full.
pub struct MemorySink {
    taken: Mutex<Vec<Record>>,
    refuse: Box<Refuse>,
    full: bool,
}

impl Default for MemorySink {
    fn default() -> Self {
        Self::refusing(|_| false)
    }
}

impl MemorySink {
    /// Takes every record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Does not take the records `refuse` picks, as a broker that failed to acknowledge
    /// them; takes the others.
    pub fn refusing(refuse: impl Fn(&Record) -> bool + Send + Sync + 'static) -> Self {
        Self {
            taken: Mutex::new(Vec::new()),
            refuse: Box::new(refuse),
            full: false,
        }
    }

    /// Refuses every request whole, as a producer whose queue is full.
    pub fn full() -> Self {
        Self {
            full: true,
            ..Self::default()
        }
    }

    /// Every record taken so far, in the order taken.
    pub fn taken(&self) -> Vec<Record> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Record>> {
        // Each push leaves the list whole, so a panic elsewhere cannot leave it half done.
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EventSink for MemorySink {
    async fn send(&self, records: Records) -> Result<Delivery, IngestError> {
        if self.full {
            return Err(IngestError::Overloaded(Overload::ProducerQueue));
        }
        let mut delivery = Delivery {
            records: records.len(),
            failed: Vec::new(),
        };
        let mut taken = self.lock();
        for r in records {
            if (self.refuse)(&r) {
                delivery.failed.push(Failed {
                    id: r.id(),
                    error: NotTaken::Refused,
                });
            } else {
                taken.push(r);
            }
        }
        Ok(delivery)
    }

    async fn check(&self) -> Result<(), String> {
        match self.full {
            true => Err("memory sink: full".to_owned()),
            false => Ok(()),
        }
    }

    async fn flush(&self) {}
}
