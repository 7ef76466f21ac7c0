//! A user across Segment's ids: the ids `identify` and `alias` linked to it, and its
//! events under all of them, whatever their session key (`identity_links` and
//! `identity_actors`, migration 0009, filled by the consumer).
//!
//! An id is known when some link names it as the user or some stored event names it as
//! its userId or anonymousId; any other id is answered `404 identity_not_found`, so a
//! mistyped id is not mistaken for a user without events.

use crate::error::QueryError;
use crate::params::{self, Params};
use crate::routes::{event_cursor, next_cursor, Reply_};
use crate::view::{self, EventPage};
use eye_model::session;
use eye_store::{IdentityEventsFilter, Store};
use serde::Serialize;
use std::collections::BTreeSet;
use warp::Reply;

/// The most ids an answer lists, and a user's events are read under (the user's own
/// included in neither count).
pub const MAX_LINKED_IDS: usize = 1_000;
/// How many links deep an alias chain is followed (alias of an alias of an identified user).
const LINK_ROUNDS: usize = 8;
const EVENTS_DEFAULT_LIMIT: u32 = 100;
const EVENTS_MAX_LIMIT: u32 = 1_000;

#[derive(Debug, Serialize)]
pub struct IdentityView {
    pub user_id: String,
    /// Every id linked to the user, sorted: anonymousIds of its `identify` messages and
    /// previousIds of its `alias` messages, and theirs in turn when a previousId was itself
    /// an identified user.
    pub anonymous_ids: Vec<String>,
}

fn user_id(raw: &str) -> Result<String, QueryError> {
    params::path_id(raw, "user_id", |s| session::check_id("user_id", s))
}

/// Following links out from a user: to the ids linked to it, then to the ids linked to
/// those that are users themselves (an alias of a former userId), each id once. An
/// anonymous id shared by two users leads to neither from the other, as links are
/// followed from user to id only.
struct LinkWalk {
    user: String,
    known: BTreeSet<String>,
    next: Vec<String>,
    rounds: usize,
}

impl LinkWalk {
    fn new(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            known: BTreeSet::from([user.to_owned()]),
            next: vec![user.to_owned()],
            rounds: 0,
        }
    }

    /// The ids whose links to look up next, or `None` when the walk is over.
    fn pending(&self) -> Option<Vec<&str>> {
        let more = !self.next.is_empty()
            && self.rounds < LINK_ROUNDS
            && self.known.len() <= MAX_LINKED_IDS;
        more.then(|| self.next.iter().map(String::as_str).collect())
    }

    /// The ids linked to the last [`LinkWalk::pending`] ids.
    fn found(&mut self, ids: Vec<String>) {
        self.next = ids
            .into_iter()
            .filter(|id| self.known.insert(id.clone()))
            .collect();
        self.rounds += 1;
    }

    /// Every id reached, sorted, the user's own left out; at most [`MAX_LINKED_IDS`].
    fn linked(mut self) -> Vec<String> {
        self.known.remove(&self.user);
        self.known.into_iter().take(MAX_LINKED_IDS).collect()
    }
}

async fn linked_ids(store: &Store, user: &str) -> Result<Vec<String>, QueryError> {
    let mut walk = LinkWalk::new(user);
    while let Some(ids) = walk.pending() {
        let found = store.linked_ids(&ids, MAX_LINKED_IDS as u32).await?;
        walk.found(found);
    }
    Ok(walk.linked())
}

/// `GET /v1/identities/{user_id}`: the ids linked to the user.
pub async fn identity(store: &Store, raw_id: &str, params: &Params) -> Reply_ {
    let user = user_id(raw_id)?;
    params::only(params, &[])?;
    let anonymous_ids = linked_ids(store, &user).await?;
    if anonymous_ids.is_empty() && !store.actor_seen(&user).await? {
        return Err(QueryError::IdentityNotFound(user));
    }
    Ok(warp::reply::json(&IdentityView {
        user_id: user,
        anonymous_ids,
    })
    .into_response())
}

/// `GET /v1/identities/{user_id}/events?order=&limit=&cursor=`: the events of the user and
/// of every id linked to it, in the `/v1/events` order and pages, each event once.
pub async fn events(store: &Store, raw_id: &str, params: &Params) -> Reply_ {
    let user = user_id(raw_id)?;
    params::only(params, &["order", "limit", "cursor"])?;
    let after = params::event_cursor(params)?;
    let descending = params::descending(params)?;
    let limit = params::limit(params, EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT)?;
    let linked = linked_ids(store, &user).await?;
    let first_page = after.is_none();
    let filter = IdentityEventsFilter {
        actor_ids: std::iter::once(user.clone())
            .chain(linked.iter().cloned())
            .collect(),
        after,
        descending,
        limit,
    };
    let rows = store.identity_events(&filter).await?;
    // A first page holds an event whenever any is stored under the ids.
    if rows.is_empty() && linked.is_empty() && first_page {
        return Err(QueryError::IdentityNotFound(user));
    }
    Ok(warp::reply::json(&EventPage {
        next_cursor: next_cursor(&rows, filter.limit, event_cursor),
        events: rows.into_iter().map(view::event).collect(),
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The walk over `links` (user → linked ids), run as the handler runs it.
    fn walk(user: &str, links: &HashMap<&str, Vec<&str>>) -> (Vec<String>, usize) {
        let mut walk = LinkWalk::new(user);
        let mut lookups = 0;
        while let Some(ids) = walk.pending() {
            lookups += 1;
            let mut found: Vec<String> = ids
                .iter()
                .flat_map(|id| links.get(id).into_iter().flatten())
                .map(|s| (*s).to_owned())
                .collect();
            found.sort();
            found.dedup();
            walk.found(found);
        }
        (walk.linked(), lookups)
    }

    #[test]
    fn links_are_followed_from_users_to_their_ids_once_each() {
        let chain: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
        let mut links: HashMap<&str, Vec<&str>> = HashMap::from([
            ("u", vec!["a1", "a2"]),
            // u2 aliased u's former id u1, which identify linked to a3.
            ("u2", vec!["u1"]),
            ("u1", vec!["a3"]),
            // v shares a device (a1) with u: neither reaches the other.
            ("v", vec!["a1"]),
            // A cycle: each id is visited once.
            ("x", vec!["y"]),
            ("y", vec!["x", "z"]),
        ]);
        for pair in chain.windows(2) {
            links.insert(pair[0].as_str(), vec![pair[1].as_str()]);
        }
        // (user, linked ids, lookups)
        let cases: Vec<(&str, Vec<&str>, usize)> = vec![
            ("u", vec!["a1", "a2"], 2),
            ("u2", vec!["a3", "u1"], 3),
            ("u1", vec!["a3"], 2),
            ("v", vec!["a1"], 2),
            ("a1", vec![], 1),
            ("nobody", vec![], 1),
            ("x", vec!["y", "z"], 3),
            // A chain longer than the rounds followed stops after LINK_ROUNDS lookups.
            (
                "c0",
                vec!["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"],
                LINK_ROUNDS,
            ),
        ];
        for (user, want, lookups) in cases {
            assert_eq!(
                walk(user, &links),
                (want.iter().map(|s| (*s).to_owned()).collect(), lookups),
                "{user}"
            );
        }
    }

    #[test]
    fn at_most_the_cap_of_ids_is_listed_and_followed() {
        let many: Vec<String> = (0..MAX_LINKED_IDS + 5)
            .map(|i| format!("a{i:05}"))
            .collect();
        let deeper: Vec<String> = vec!["deeper".into()];
        let mut links: HashMap<&str, Vec<&str>> =
            HashMap::from([("u", many.iter().map(String::as_str).collect())]);
        links.insert("a00000", deeper.iter().map(String::as_str).collect());
        let (linked, lookups) = walk("u", &links);
        assert_eq!(linked.len(), MAX_LINKED_IDS);
        assert_eq!(linked[..], many[..MAX_LINKED_IDS]);
        assert_eq!(lookups, 1, "a walk at the cap looks no further");
    }

    #[test]
    fn path_ids_follow_the_id_rules() {
        let long = "x".repeat(session::MAX_ID_CHARS + 1);
        // (raw segment, decoded id or field:code)
        let cases = [
            ("u1", Ok("u1")),
            ("user%40example.com", Ok("user@example.com")),
            ("a%2Fb%20c", Ok("a/b c")),
            ("", Err("user_id:empty")),
            ("%01", Err("user_id:control_character")),
            ("%FF", Err("user_id:invalid_utf8")),
            (long.as_str(), Err("user_id:too_long")),
        ];
        for (raw, want) in cases {
            let got = user_id(raw).map_err(|e| match e {
                QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
                other => panic!("unexpected {other}"),
            });
            assert_eq!(
                got.as_deref(),
                want.map_err(str::to_owned).as_deref(),
                "{raw}"
            );
        }
    }
}
