//! The verdict, read the way users read: through the query API, never straight from
//! ClickHouse. A duplicate is an event id that a listing returns more than once.

use eye_loadgen::events::TYPES;
use eye_loadgen::pages::{self, Listing, PageError};
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

/// Every acknowledged id, compared with what the listings return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub acked: usize,
    /// Acknowledged, and not returned.
    pub lost: usize,
    /// Returned more than once: the extra copies, summed over ids.
    pub duplicated: usize,
    /// Returned but never acknowledged: a batch that failed or was given up after its
    /// events were written. Allowed (at-least-once for unacknowledged sends).
    pub unacked_stored: usize,
}

impl Verdict {
    pub fn of(acked: &[Uuid], seen: &HashMap<Uuid, u32>) -> Self {
        let mut lost = 0;
        for id in acked {
            if !seen.contains_key(id) {
                lost += 1;
            }
        }
        let duplicated = seen.values().map(|n| (*n as usize).saturating_sub(1)).sum();
        let acked_set: std::collections::HashSet<&Uuid> = acked.iter().collect();
        let unacked_stored = seen.keys().filter(|id| !acked_set.contains(id)).count();
        Self {
            acked: acked.len(),
            lost,
            duplicated,
            unacked_stored,
        }
    }

    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }
}

/// Reads the query service as an authenticated client.
pub struct Reader {
    pub http: reqwest::Client,
    pub base: String,
    pub api_key: String,
}

#[derive(Deserialize)]
struct Listed {
    event_id: Uuid,
}

#[derive(Deserialize)]
struct Categories {
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct Category {
    events: u64,
}

impl Reader {
    async fn get<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> anyhow::Result<T> {
        let res = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .bearer_auth(&self.api_key)
            .send()
            .await?;
        let status = res.status();
        let body = res.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "GET {path_and_query}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(serde_json::from_slice(&body)?)
    }

    /// Distinct stored events over all types (`/v1/categories`): cheap, for polling until
    /// the pipeline has caught up before the exact walk.
    pub async fn distinct_events(&self) -> anyhow::Result<u64> {
        let c: Categories = self.get("/v1/categories").await?;
        Ok(c.categories.iter().map(|c| c.events).sum())
    }

    /// Walks `/v1/events` page by page for every generated type and counts each id.
    pub async fn listed_ids(&self) -> anyhow::Result<HashMap<Uuid, u32>> {
        let mut seen: HashMap<Uuid, u32> = HashMap::new();
        for (category, name) in TYPES {
            let path = format!("/v1/events?category={category}&name={name}");
            let listed: Vec<Listed> = self.walk(&path, "events").await?;
            for e in listed {
                *seen.entry(e.event_id).or_default() += 1;
            }
        }
        Ok(seen)
    }

    /// Quarantined records whose reason is `undecodable`: the poison messages.
    pub async fn undecodable(&self) -> anyhow::Result<usize> {
        let rejected: Vec<serde::de::IgnoredAny> = self
            .walk("/v1/rejected?reason=undecodable", "rejected")
            .await?;
        Ok(rejected.len())
    }

    async fn walk<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Vec<T>, PageError> {
        let listing = Listing {
            base: &self.base,
            path,
            key,
            api_key: &self.api_key,
            limit: Some(1000),
        };
        pages::walk(&self.http, listing).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn verdicts() {
        // (acked ids, listed ids with counts, lost, duplicated, unacked stored)
        let cases: &[(&[u128], &[(u128, u32)], usize, usize, usize)] = &[
            (&[1, 2, 3], &[(1, 1), (2, 1), (3, 1)], 0, 0, 0),
            (&[1, 2, 3], &[(1, 1), (3, 1)], 1, 0, 0),
            (&[1, 2], &[(1, 2), (2, 3)], 0, 3, 0),
            (&[1], &[(1, 1), (9, 2)], 0, 1, 1),
            (&[], &[], 0, 0, 0),
        ];
        for (acked, listed, lost, dup, extra) in cases {
            let acked: Vec<Uuid> = acked.iter().map(|n| id(*n)).collect();
            let seen: HashMap<Uuid, u32> = listed.iter().map(|(n, c)| (id(*n), *c)).collect();
            let v = Verdict::of(&acked, &seen);
            assert_eq!(
                (v.lost, v.duplicated, v.unacked_stored),
                (*lost, *dup, *extra),
                "{acked:?} {listed:?}"
            );
            assert_eq!(v.clean(), *lost == 0 && *dup == 0);
        }
    }
}
