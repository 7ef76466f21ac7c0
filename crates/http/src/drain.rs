//! Graceful drain, shared by every service.
//!
//! Stopping a service behind a load balancer in one step loses requests: the balancer
//! keeps sending to it until its next readiness probe fails, and those requests meet a
//! closed port. So shutdown has two steps. From the moment the signal arrives, `/readyz`
//! answers 503 `draining` ([`crate::ops::routes`]) while everything else is still served;
//! `EYE_HTTP_DRAIN_DELAY_MS` later, [`crate::serve`] stops accepting and answers what is
//! in flight. The consumer starts draining when its pipeline starts stopping, and its ops
//! listener stays up until the last batch is committed.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
// tokio's clock rather than std's, so tests can run it paused.
use tokio::time::Instant;

/// Whether, and since when, a service is draining. Clones share one state.
#[derive(Clone, Debug)]
pub struct Drain {
    since: Arc<watch::Sender<Option<Instant>>>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        Self {
            since: Arc::new(watch::channel(None).0),
        }
    }

    /// Starts draining. Later calls keep the first moment, so the delay counts from the
    /// signal however many parts of the service react to it.
    pub fn begin(&self) {
        let began = self.since.send_if_modified(|since| match since {
            Some(_) => false,
            None => {
                *since = Some(Instant::now());
                true
            }
        });
        if began {
            tracing::info!("draining: /readyz now answers 503 draining");
        }
    }

    pub fn is_draining(&self) -> bool {
        self.since.borrow().is_some()
    }

    /// Resolves once draining has begun and `delay` has passed since then.
    pub async fn elapsed(&self, delay: Duration) {
        let mut rx = self.since.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let since = match rx.wait_for(Option::is_some).await {
            Ok(since) => *since,
            Err(_) => return,
        };
        if let Some(since) = since {
            tokio::time::sleep_until(since + delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_delay_counts_from_the_first_begin() {
        let drain = Drain::new();
        assert!(!drain.is_draining());
        let waiter = tokio::spawn({
            let drain = drain.clone();
            async move {
                drain.elapsed(Duration::from_secs(5)).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiter.is_finished(), "nothing to wait for before draining");
        let began = Instant::now();
        drain.clone().begin();
        assert!(drain.is_draining());
        tokio::time::sleep(Duration::from_secs(3)).await;
        drain.begin();
        let done = waiter.await.expect("waiter");
        assert_eq!(done - began, Duration::from_secs(5));
        // Once the delay is over, waiting is immediate.
        let before = Instant::now();
        drain.elapsed(Duration::from_secs(5)).await;
        assert_eq!(Instant::now(), before);
    }
}
