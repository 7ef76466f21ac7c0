//! Backpressure: the bytes of request bodies ingest holds at once are bounded
//! (`EYE_INGEST_MAX_INFLIGHT_BYTES`), and so is each client's share of them
//! (`EYE_INGEST_MAX_INFLIGHT_BYTES_PER_CLIENT`).
//!
//! A request holds what has arrived, never what it declared: its reservation starts empty
//! and grows with each chunk of its body as the chunk comes in, then to the body's size
//! once gunzipped, and again by the size of its encoded records before they are produced
//! (the producer's queue holds a copy of each until the broker acknowledges it; records
//! carry ids, times and keys, and a rejection its reasons, so they can outweigh the body
//! many times over). It keeps the reservation until its answer is ready. A head that
//! declares megabytes and a body that never comes therefore holds nothing.
//!
//! When a growth does not fit, the request is refused at once (503 `overloaded`) rather
//! than queued: a queue of waiting requests would hold connections and memory of its own,
//! and the client, told to retry, can go to another instance. A refusal always comes
//! before anything of the request is produced.
//!
//! Fairness: the bytes held by one client's requests together never pass its share, so
//! however it behaves (many connections, bodies trickling in just fast enough) the rest of
//! the budget stays for the others. A request counts against its client's share for at most
//! the whole share, so one request alone always fits its share, as one request alone
//! always fits the budget: a single request that needs more than its share is admitted
//! only when its client holds nothing else.
//!
//! One semaphore permit is one byte: the budget is exact, and tokio's semaphore holds far
//! more permits than any budget (2^61 on 64-bit). One acquisition is at most `u32::MAX`
//! permits, so a single reservation is capped there, which only a body limit over 4 GiB
//! could reach. Shares are counted in a map of client to bytes, under a lock held only for
//! the arithmetic; a client's entry is removed as soon as it holds nothing, so the map
//! holds only clients with requests in flight.

use crate::error::{IngestError, Overload};
use prometheus::IntGauge;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct Budget {
    shared: Arc<Shared>,
}

struct Shared {
    permits: Arc<Semaphore>,
    /// The whole budget, in bytes (after clamping to what the semaphore can hold).
    total: u64,
    /// Most bytes one client's requests hold together; never more than `total`.
    per_client: u64,
    /// Bytes each client with requests in flight counts against its share.
    clients: Mutex<HashMap<Arc<str>, u64>>,
    inflight: IntGauge,
}

/// Bytes a request holds; given back when dropped.
pub struct Reservation {
    /// `None` until the first byte: tokio has no empty permit to start from.
    permit: Option<OwnedSemaphorePermit>,
    client: Arc<str>,
    /// What this request counts against its client's share: what it holds, up to the share.
    charged: u64,
    budget: Arc<Shared>,
}

impl Budget {
    pub fn new(max_bytes: u64, per_client_bytes: u64, inflight: IntGauge) -> Self {
        let total = max_bytes.min(Semaphore::MAX_PERMITS as u64);
        Self {
            shared: Arc::new(Shared {
                permits: Arc::new(Semaphore::new(total as usize)),
                total,
                per_client: per_client_bytes.min(total),
                clients: Mutex::new(HashMap::new()),
                inflight,
            }),
        }
    }

    /// An empty reservation for a request of `client`, to grow as its bytes arrive.
    pub fn open(&self, client: &str) -> Reservation {
        Reservation {
            permit: None,
            client: Arc::from(client),
            charged: 0,
            budget: self.shared.clone(),
        }
    }

    /// Reserves `bytes` for a request of `client` (capped as [`Reservation::grow_to`]
    /// caps), or refuses at once.
    #[cfg(test)]
    fn reserve(&self, client: &str, bytes: u64) -> Result<Reservation, IngestError> {
        let mut r = self.open(client);
        r.grow_to(bytes)?;
        Ok(r)
    }

    /// Bytes held by requests in flight.
    #[cfg(test)]
    fn held(&self) -> u64 {
        self.shared.total - self.shared.permits.available_permits() as u64
    }

    /// Bytes `client` counts against its share.
    #[cfg(test)]
    fn held_by(&self, client: &str) -> u64 {
        self.shared.clients().get(client).copied().unwrap_or(0)
    }

    /// Clients with requests holding bytes.
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.shared.clients().len()
    }
}

impl Shared {
    fn cap(&self, bytes: u64) -> u64 {
        bytes.min(self.total).min(u64::from(u32::MAX))
    }

    fn clients(&self) -> MutexGuard<'_, HashMap<Arc<str>, u64>> {
        // The map is consistent after every statement that changes it, so a panic
        // elsewhere while it was locked leaves nothing half done.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Reservation {
    pub fn bytes(&self) -> u64 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u64)
    }

    /// Grows the reservation to `bytes` (capped by the whole budget) when it holds less: as
    /// its body arrives, for a body that turned out larger once decompressed, and for its
    /// records. Refused like a new request when the client's share or the budget cannot
    /// cover the difference; a refused request is answered 503 and nothing else, so its
    /// bytes are given back at once, under the same lock as the check. Were they kept until
    /// the request unwinds, two requests of one client could each be refused for the
    /// other's bytes, and neither would be left to hold its share.
    pub fn grow_to(&mut self, bytes: u64) -> Result<(), IngestError> {
        // Its own handle on the budget, so that a refusal can empty `self` under the lock.
        let budget = self.budget.clone();
        let b = &*budget;
        let target = b.cap(bytes);
        let held = self.bytes();
        if target <= held {
            return Ok(());
        }
        // At least what it counted so far: `target` is above what is held.
        let charge = target.min(b.per_client);
        // Locked across the semaphore too, so that two requests of one client cannot both
        // pass the share check; `try_acquire` never waits.
        let mut clients = b.clients();
        let others = clients.get(&*self.client).copied().unwrap_or(0) - self.charged;
        if others + charge > b.per_client {
            return Err(self.refuse(&mut clients, Overload::ClientInflightBytes));
        }
        // `cap` keeps every reservation within u32.
        let more = u32::try_from(target - held).unwrap_or(u32::MAX);
        let Ok(permit) = b.permits.clone().try_acquire_many_owned(more) else {
            return Err(self.refuse(&mut clients, Overload::InflightBytes));
        };
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
        b.inflight.add(i64::from(more));
        if charge > self.charged {
            *clients.entry(self.client.clone()).or_insert(0) += charge - self.charged;
            self.charged = charge;
        }
        Ok(())
    }
}

impl Reservation {
    /// Empties the reservation for a refusal: its client's count and the budget get its
    /// bytes back now, while `clients` is still locked.
    fn refuse(&mut self, clients: &mut HashMap<Arc<str>, u64>, why: Overload) -> IngestError {
        if self.charged > 0 {
            if let Some(n) = clients.get_mut(&*self.client) {
                *n -= self.charged;
                if *n == 0 {
                    clients.remove(&*self.client);
                }
            }
            self.charged = 0;
        }
        if let Some(permit) = self.permit.take() {
            self.budget.inflight.sub(permit.num_permits() as i64);
        }
        IngestError::Overloaded(why)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let b = &*self.budget;
        if self.charged > 0 {
            let mut clients = b.clients();
            if let Some(n) = clients.get_mut(&*self.client) {
                *n -= self.charged;
                if *n == 0 {
                    clients.remove(&*self.client);
                }
            }
        }
        // The permit itself returns to the semaphore when it is dropped, right after this.
        b.inflight.sub(self.bytes() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MIB: u64 = 1024 * 1024;

    fn budget(total: u64, per_client: u64) -> Budget {
        Budget::new(
            total,
            per_client,
            IntGauge::new("inflight", "test").expect("gauge"),
        )
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        Fits,
        /// Refused: the whole budget is spent.
        Full,
        /// Refused: the client's share is spent.
        Share,
    }
    use Outcome::{Fits, Full, Share};

    fn outcome(r: &Result<(), IngestError>) -> Outcome {
        match r {
            Ok(()) => Fits,
            Err(IngestError::Overloaded(Overload::InflightBytes)) => Full,
            Err(IngestError::Overloaded(Overload::ClientInflightBytes)) => Share,
            Err(e) => panic!("unexpected refusal: {e}"),
        }
    }

    enum Step {
        /// Request `n` of `client` (opened on first use) grows to `bytes`.
        Grow(usize, &'static str, u64, Outcome),
        /// Request `n` is answered: its reservation is dropped.
        Release(usize),
    }
    use Step::{Grow, Release};

    /// Runs `steps` on `b`; after each, the budget holds the given bytes, and each client
    /// named the given bytes (clients not named hold nothing and have no entry).
    fn run(b: &Budget, steps: Vec<(Step, u64, Vec<(&str, u64)>)>) {
        let mut requests: HashMap<usize, Reservation> = HashMap::new();
        for (i, (step, want_held, want_clients)) in steps.into_iter().enumerate() {
            match step {
                Grow(n, client, bytes, want) => {
                    let r = requests.entry(n).or_insert_with(|| b.open(client));
                    let before = r.bytes();
                    let got = r.grow_to(bytes);
                    assert_eq!(outcome(&got), want, "step {i}: request {n} to {bytes}");
                    if want != Fits {
                        assert_eq!(r.bytes(), 0, "step {i}: refused, emptied (held {before})");
                    }
                }
                Release(n) => drop(requests.remove(&n).expect("request held")),
            }
            assert_eq!(b.held(), want_held, "step {i}: held");
            assert_eq!(b.shared.inflight.get() as u64, want_held, "step {i}: gauge");
            for (client, bytes) in &want_clients {
                assert_eq!(b.held_by(client), *bytes, "step {i}: held by {client}");
            }
            assert_eq!(
                b.clients(),
                want_clients.len(),
                "step {i}: clients in the map"
            );
        }
    }

    /// Requests arrive and leave; the budget refuses what does not fit and changes nothing
    /// then. Each request is its own client, whose share is the whole budget, so only the
    /// budget speaks.
    #[test]
    fn requests_fit_until_the_budget_is_spent() {
        run(
            &budget(1000, 1000),
            vec![
                (Grow(0, "a", 400, Fits), 400, vec![("a", 400)]),
                (Grow(1, "b", 400, Fits), 800, vec![("a", 400), ("b", 400)]),
                // 200 left: a request of 201 is refused, nothing changes.
                (Grow(2, "c", 201, Full), 800, vec![("a", 400), ("b", 400)]),
                (
                    Grow(2, "c", 200, Fits),
                    1000,
                    vec![("a", 400), ("b", 400), ("c", 200)],
                ),
                (
                    Grow(3, "d", 1, Full),
                    1000,
                    vec![("a", 400), ("b", 400), ("c", 200)],
                ),
                // Empty bodies hold nothing and always fit.
                (
                    Grow(4, "e", 0, Fits),
                    1000,
                    vec![("a", 400), ("b", 400), ("c", 200)],
                ),
                (Release(0), 600, vec![("b", 400), ("c", 200)]),
                (Grow(5, "f", 401, Full), 600, vec![("b", 400), ("c", 200)]),
                (
                    Grow(5, "f", 400, Fits),
                    1000,
                    vec![("b", 400), ("c", 200), ("f", 400)],
                ),
                (Release(1), 600, vec![("c", 200), ("f", 400)]),
                (Release(2), 400, vec![("f", 400)]),
                (Release(3), 400, vec![("f", 400)]),
                (Release(4), 400, vec![("f", 400)]),
                // The last bytes of a client go: its entry goes with them.
                (Release(5), 0, vec![]),
            ],
        );
    }

    /// A body is reserved as it arrives, chunk by chunk: a request that declared a large body
    /// and sent nothing holds nothing, and one whose next chunk does not fit is refused and
    /// gives back what it had at once.
    #[test]
    fn bodies_hold_what_has_arrived() {
        run(
            &budget(1000, 1000),
            vec![
                // Opened (its head read), no byte of its body yet.
                (Grow(0, "a", 0, Fits), 0, vec![]),
                (Grow(1, "b", 0, Fits), 0, vec![]),
                (Grow(0, "a", 300, Fits), 300, vec![("a", 300)]),
                (Grow(1, "b", 300, Fits), 600, vec![("a", 300), ("b", 300)]),
                (Grow(0, "a", 700, Fits), 1000, vec![("a", 700), ("b", 300)]),
                (Grow(1, "b", 301, Full), 700, vec![("a", 700)]),
                // Smaller than held (a shorter body once decompressed): nothing changes.
                (Grow(0, "a", 500, Fits), 700, vec![("a", 700)]),
                (Release(1), 700, vec![("a", 700)]),
                (Release(0), 0, vec![]),
            ],
        );
    }

    /// A client's requests together hold at most its share, whatever is left in the budget;
    /// the others keep the rest.
    #[test]
    fn each_client_holds_at_most_its_share() {
        run(
            &budget(1000, 400),
            vec![
                (Grow(0, "a", 300, Fits), 300, vec![("a", 300)]),
                (Grow(1, "a", 100, Fits), 400, vec![("a", 400)]),
                // 600 free, but not for a.
                (Grow(2, "a", 1, Share), 400, vec![("a", 400)]),
                (Grow(3, "b", 400, Fits), 800, vec![("a", 400), ("b", 400)]),
                // c is within its share; the budget is what refuses.
                (Grow(4, "c", 201, Full), 800, vec![("a", 400), ("b", 400)]),
                (
                    Grow(4, "c", 200, Fits),
                    1000,
                    vec![("a", 400), ("b", 400), ("c", 200)],
                ),
                (Release(0), 700, vec![("a", 100), ("b", 400), ("c", 200)]),
                // a's other request grows into the room a freed.
                (
                    Grow(1, "a", 250, Fits),
                    850,
                    vec![("a", 250), ("b", 400), ("c", 200)],
                ),
                (
                    Grow(2, "a", 151, Share),
                    850,
                    vec![("a", 250), ("b", 400), ("c", 200)],
                ),
                (Release(1), 600, vec![("b", 400), ("c", 200)]),
                (Release(3), 200, vec![("c", 200)]),
                (Release(4), 0, vec![]),
                (Release(2), 0, vec![]),
            ],
        );
    }

    /// A request that alone needs more than its client's share (its records, a body grown
    /// by gunzip) still passes when the client holds nothing else, counting as the whole
    /// share; the budget still counts every byte of it.
    #[test]
    fn one_request_alone_always_fits_its_share() {
        run(
            &budget(1000, 250),
            vec![
                (Grow(0, "a", 600, Fits), 600, vec![("a", 250)]),
                (Grow(1, "a", 1, Share), 600, vec![("a", 250)]),
                (Grow(2, "b", 100, Fits), 700, vec![("a", 250), ("b", 100)]),
                (Grow(2, "b", 400, Fits), 1000, vec![("a", 250), ("b", 250)]),
                (Grow(3, "c", 1, Full), 1000, vec![("a", 250), ("b", 250)]),
                // Refused: its 600 go back at once.
                (Grow(0, "a", 700, Full), 400, vec![("b", 250)]),
                (Release(2), 0, vec![]),
                (Grow(0, "a", 700, Fits), 700, vec![("a", 250)]),
                (Release(0), 0, vec![]),
                (Release(1), 0, vec![]),
                (Release(3), 0, vec![]),
            ],
        );
    }

    /// The attack the share exists for, at the defaults: seven requests of one client
    /// declaring about 32 MiB in all hold nothing; sending their bodies, they hold the
    /// client's share at most (each refused request gives its bytes back, so one whole
    /// 5 MiB body is what stays); another client's largest request still fits, three times.
    #[test]
    fn a_greedy_client_leaves_the_others_the_rest() {
        let b = budget(32 * MIB, 8 * MIB);
        let mut greedy: Vec<Reservation> = (0..7).map(|_| b.open("greedy")).collect();
        assert_eq!(b.held(), 0, "declared, not arrived");
        let mut refused = 0;
        for r in &mut greedy {
            for chunk in 1..=5 {
                if r.grow_to(chunk * MIB).is_err() {
                    refused += 1;
                    break;
                }
            }
        }
        assert_eq!(b.held_by("greedy"), 5 * MIB);
        assert_eq!(b.held(), 5 * MIB);
        assert_eq!(refused, 6, "every request past the share is refused");
        let others: Vec<Reservation> = ["b", "c", "d"]
            .into_iter()
            .map(|c| {
                let mut r = b.open(c);
                r.grow_to(5 * MIB).map(|()| r)
            })
            .collect::<Result<_, _>>()
            .expect("the others' requests fit");
        assert_eq!(b.held(), 20 * MIB);
        drop(greedy);
        drop(others);
        assert_eq!((b.held(), b.clients()), (0, 0));
    }

    /// Two requests of one client reach the share together: the one refused gives its
    /// bytes back within the same check, so the other still fits and holds its body. Had
    /// the refused request kept its bytes until it unwound, the other could be refused for
    /// them in the meantime, and the client would hold nothing at all.
    #[test]
    fn a_refused_request_cannot_take_its_sibling_down() {
        let b = budget(1000, 400);
        let mut first = b.open("a");
        let mut second = b.open("a");
        first.grow_to(200).expect("fits");
        second.grow_to(190).expect("fits");
        // 190 + 211 > 400: the first is refused, and its 200 are free before it is dropped.
        assert_eq!(outcome(&first.grow_to(211)), Share);
        assert_eq!((b.held_by("a"), b.held()), (190, 190));
        // The second grows into them, while the refused one still exists.
        second.grow_to(400).expect("the sibling's bytes are free");
        assert_eq!((b.held_by("a"), b.held()), (400, 400));
        drop(first);
        assert_eq!(
            (b.held_by("a"), b.held()),
            (400, 400),
            "nothing given back twice"
        );
        drop(second);
        assert_eq!((b.held(), b.clients(), b.shared.inflight.get()), (0, 0, 0));
    }

    #[test]
    fn reservations_are_capped() {
        // (budget, share, grown to, held by the request, counted against its client)
        let cases = [
            // Never more than the whole budget, so that one request alone always fits.
            (1000, 1000, 5000, 1000, 1000),
            // A share larger than the budget is the budget.
            (1000, 5000, 5000, 1000, 1000),
            // The share bounds what a request counts against its client, not what it holds.
            (1000, 250, 600, 600, 250),
            // One acquisition is at most u32::MAX permits.
            (
                u64::MAX,
                u64::MAX,
                u64::MAX,
                u64::from(u32::MAX),
                u64::from(u32::MAX),
            ),
        ];
        for (total, share, grown, held, counted) in cases {
            let case = format!("budget {total}, share {share}, grown to {grown}");
            let b = budget(total, share);
            let r = b.reserve("a", grown).expect(&case);
            assert_eq!(r.bytes(), held, "{case}");
            assert_eq!(b.held_by("a"), counted, "{case}");
            drop(r);
            assert_eq!((b.held(), b.clients()), (0, 0), "{case}: released");
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
            // The difference does not fit beside others: refused, and the request's bytes
            // given back at once.
            (1000, 500, 300, 900, false, 0),
            (1000, 500, 300, 500, true, 500),
        ];
        for (total, others, reserved, decompressed, fits, want) in cases {
            let case = format!(
                "budget {total}, others {others}, reserved {reserved}, decompressed {decompressed}"
            );
            let b = budget(total, total);
            let _others = b.reserve("others", others).expect("others");
            let mut r = b.reserve("a", reserved).expect("first reservation");
            let grown = r.grow_to(decompressed);
            assert_eq!(outcome(&grown), if fits { Fits } else { Full }, "{case}");
            assert_eq!(r.bytes(), want, "{case}");
            assert_eq!(b.held(), others + want, "{case}");
            assert_eq!(
                b.shared.inflight.get() as u64,
                others + want,
                "{case}: gauge"
            );
            drop(r);
            assert_eq!(b.held(), others, "{case}: released");
            assert_eq!(
                b.shared.inflight.get() as u64,
                others,
                "{case}: gauge released"
            );
        }
    }
}
