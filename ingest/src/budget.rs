//! Backpressure: the bytes of request bodies ingest holds at once are bounded
//! (`EYE_INGEST_MAX_INFLIGHT_BYTES`).
//!
//! A request reserves its size before its body is read, grows the reservation if the body
//! is larger once gunzipped, and again by the size of its encoded records before they are
//! produced (the producer's queue holds a copy of each until the broker acknowledges it;
//! records carry ids, times and keys, and a rejection its reasons, so they can outweigh
//! the body many times over). It keeps the reservation until its answer is ready. When the
//! budget is spent, a request is refused at once (503 `overloaded`) rather than queued: a
//! queue of waiting requests would hold connections and memory of its own, and the client,
//! told to retry, can go to another instance. A refusal always comes before anything of
//! the request is produced.
//!
//! One semaphore permit is one byte: the budget is exact, and tokio's semaphore holds far
//! more permits than any budget (2^61 on 64-bit). One acquisition is at most `u32::MAX`
//! permits, so a single reservation is capped there, which only a body limit over 4 GiB
//! could reach.

use crate::error::{IngestError, Overload};
use prometheus::IntGauge;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    /// The whole budget, in bytes (after clamping to what the semaphore can hold).
    total: u64,
    inflight: IntGauge,
}

/// Bytes a request holds; given back when dropped.
pub struct Reservation {
    permit: OwnedSemaphorePermit,
    budget: Budget,
}

impl Budget {
    pub fn new(max_bytes: u64, inflight: IntGauge) -> Self {
        let total = max_bytes.min(Semaphore::MAX_PERMITS as u64);
        Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            inflight,
        }
    }

    /// What a request reserves before its body is read: its `Content-Length`, or without
    /// one the most it may send. Never more than the whole budget, so that one request
    /// alone always fits.
    pub fn initial(&self, content_length: Option<u64>, max_body_bytes: u64) -> u64 {
        let wanted = content_length.map_or(max_body_bytes, |n| n.min(max_body_bytes));
        self.cap(wanted)
    }

    fn cap(&self, bytes: u64) -> u64 {
        bytes.min(self.total).min(u64::from(u32::MAX))
    }

    /// Reserves `bytes` (capped as [`Self::initial`] caps), or refuses at once.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, IngestError> {
        let permit = self.take(self.cap(bytes))?;
        Ok(Reservation {
            permit,
            budget: self.clone(),
        })
    }

    fn take(&self, bytes: u64) -> Result<OwnedSemaphorePermit, IngestError> {
        // `cap` keeps every request within u32.
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| IngestError::Overloaded(Overload::InflightBytes))?;
        self.inflight.add(i64::from(n));
        Ok(permit)
    }

    /// Bytes held by requests in flight.
    #[cfg(test)]
    fn held(&self) -> u64 {
        self.total - self.permits.available_permits() as u64
    }
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.permit.num_permits() as u64
    }

    /// Grows the reservation to `bytes` (capped by the whole budget) when it holds less:
    /// for a body that turned out larger once decompressed, and for its records. Refused
    /// like a new request when the budget cannot cover the difference; the reservation is
    /// then unchanged.
    pub fn grow_to(&mut self, bytes: u64) -> Result<(), IngestError> {
        let target = self.budget.cap(bytes);
        let held = self.bytes();
        if target > held {
            let more = self.budget.take(target - held)?;
            self.permit.merge(more);
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // The permit itself returns to the semaphore when it is dropped, right after this.
        self.budget.inflight.sub(self.permit.num_permits() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(total: u64) -> Budget {
        Budget::new(total, IntGauge::new("inflight", "test").expect("gauge"))
    }

    fn overloaded(r: Result<impl Sized, IngestError>) -> bool {
        matches!(r, Err(IngestError::Overloaded(Overload::InflightBytes)))
    }

    #[test]
    fn initial_reservation() {
        // (budget, content-length, body limit, reserved)
        let cases = [
            (1000, Some(100), 500, 100),
            (1000, None, 500, 500),
            (1000, Some(0), 500, 0),
            // A Content-Length over the body limit meets a 413; it never holds more.
            (1000, Some(800), 500, 500),
            // One request alone always fits: never more than the whole budget.
            (300, Some(400), 500, 300),
            (300, None, 500, 300),
            (u64::MAX, None, u64::MAX, u64::from(u32::MAX)),
        ];
        for (total, content_length, max_body, want) in cases {
            assert_eq!(
                budget(total).initial(content_length, max_body),
                want,
                "budget {total}, content-length {content_length:?}, limit {max_body}"
            );
        }
    }

    /// Requests arrive and leave; each step says whether the new one fits and what is held
    /// afterwards. Reservations live until the step that ends them.
    #[test]
    fn requests_fit_until_the_budget_is_spent() {
        enum Step {
            Reserve(u64, bool),
            Release(usize),
        }
        use Step::{Release, Reserve};
        let steps = [
            (Reserve(400, true), 400),
            (Reserve(400, true), 800),
            // 200 left: a request of 201 is refused, nothing changes.
            (Reserve(201, false), 800),
            (Reserve(200, true), 1000),
            (Reserve(1, false), 1000),
            // Empty bodies hold nothing and always fit.
            (Reserve(0, true), 1000),
            (Release(0), 600),
            (Reserve(401, false), 600),
            (Reserve(400, true), 1000),
            (Release(1), 600),
            (Release(2), 400),
            (Release(3), 400),
            (Release(4), 0),
        ];
        let b = budget(1000);
        let mut held: Vec<Option<Reservation>> = Vec::new();
        for (i, (step, want_held)) in steps.into_iter().enumerate() {
            match step {
                Reserve(n, fits) => {
                    let r = b.reserve(n);
                    assert_eq!(r.is_ok(), fits, "step {i}: reserve {n}");
                    if let Ok(r) = r {
                        held.push(Some(r));
                    } else {
                        assert!(overloaded(r), "step {i}");
                    }
                }
                Release(k) => drop(held[k].take().expect("held")),
            }
            assert_eq!(b.held(), want_held, "step {i}: held");
            assert_eq!(b.inflight.get() as u64, want_held, "step {i}: gauge");
        }
    }

    #[test]
    fn growing_after_decompression() {
        // (budget, held by others, reserved, decompressed, outcome, held by this request)
        let cases = [
            // Smaller or equal once decompressed: nothing changes.
            (1000, 0, 300, 200, true, 300),
            (1000, 0, 300, 300, true, 300),
            // Larger: the difference is added.
            (1000, 0, 300, 900, true, 900),
            // Larger than the whole budget: capped there, so a lone request still passes.
            (1000, 0, 300, 5000, true, 1000),
            // The difference does not fit beside others: refused, reservation unchanged.
            (1000, 500, 300, 900, false, 300),
            (1000, 500, 300, 500, true, 500),
        ];
        for (total, others, reserved, decompressed, fits, want) in cases {
            let case = format!(
                "budget {total}, others {others}, reserved {reserved}, decompressed {decompressed}"
            );
            let b = budget(total);
            let _others = b.reserve(others).expect("others");
            let mut r = b.reserve(reserved).expect("first reservation");
            let grown = r.grow_to(decompressed);
            assert_eq!(grown.is_ok(), fits, "{case}");
            if !fits {
                assert!(overloaded(grown), "{case}");
            }
            assert_eq!(r.bytes(), want, "{case}");
            assert_eq!(b.held(), others + want, "{case}");
            assert_eq!(b.inflight.get() as u64, others + want, "{case}: gauge");
            drop(r);
            assert_eq!(b.held(), others, "{case}: released");
            assert_eq!(b.inflight.get() as u64, others, "{case}: gauge released");
        }
    }
}
