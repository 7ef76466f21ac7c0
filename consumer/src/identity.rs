//! Who an event is about, derived from the event as stored: the rows of `identity_links`
//! and `identity_actors` (migration 0009). Pure, like [`crate::decode`]: the writer derives
//! them from a batch's first copies and inserts them after the events.
//!
//! Segment messages are stored with the message as `data` (category = message type), so
//! `data.userId` and `data.anonymousId` name who sent it, and `identify` and `alias`
//! messages say which ids are one user. Only strings are ids, and only ones the query
//! service could be asked about (`session::check_id`'s rules): anything else is ignored
//! rather than refused, as the event itself is stored whatever its data says.

use eye_model::session;
use eye_store::{ActorRow, EventRow, LinkRow};
use serde::de::IgnoredAny;
use serde::Deserialize;

/// The identity rows of a batch's events.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Identities {
    pub links: Vec<LinkRow>,
    pub actors: Vec<ActorRow>,
}

/// The fields of `data` that name people; every other field is skipped unread.
#[derive(Deserialize)]
struct Names {
    #[serde(rename = "userId")]
    user_id: Option<Id>,
    #[serde(rename = "anonymousId")]
    anonymous_id: Option<Id>,
    #[serde(rename = "previousId")]
    previous_id: Option<Id>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Other(IgnoredAny),
}

impl Id {
    fn valid(&self) -> Option<&str> {
        match self {
            Self::Text(s) if session::check_id("id", s).is_ok() => Some(s),
            _ => None,
        }
    }
}

fn id(field: &Option<Id>) -> Option<&str> {
    field.as_ref().and_then(Id::valid)
}

/// The links and actor rows of `rows`: one actor row per id an event names, and one link
/// per `identify` (userId, anonymousId) and `alias` (userId, previousId) whose ids are both
/// present and differ. Events whose data is not an object holding such ids yield nothing.
pub fn derive(rows: &[EventRow]) -> Identities {
    let mut out = Identities::default();
    for row in rows {
        let Some(names) = names(&row.data) else {
            continue;
        };
        let user = id(&names.user_id);
        let anonymous = id(&names.anonymous_id);
        for actor in [user, anonymous.filter(|a| Some(*a) != user)]
            .into_iter()
            .flatten()
        {
            out.actors.push(ActorRow {
                actor_id: actor.to_owned(),
                ts_us: row.ts_us,
                event_id: row.event_id,
                session_id: row.session_id.clone(),
                client_ts_us: row.client_ts_us,
            });
        }
        let linked = match row.category.as_str() {
            "identify" => anonymous,
            "alias" => id(&names.previous_id),
            _ => None,
        };
        if let (Some(user), Some(linked)) = (user, linked) {
            if user != linked {
                out.links.push(LinkRow {
                    user_id: user.to_owned(),
                    anonymous_id: linked.to_owned(),
                    via: row.category.clone(),
                    event_id: row.event_id,
                    session_id: row.session_id.clone(),
                    ts_us: row.ts_us,
                });
            }
        }
    }
    out
}

/// The naming fields of `data`, when it is a JSON object (serde would also read a struct
/// from an array, by position).
fn names(data: &str) -> Option<Names> {
    if !data.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event(category: &str, data: &str) -> EventRow {
        EventRow {
            event_id: Uuid::from_u128(7),
            session_id: "s".into(),
            category: category.into(),
            name: category.into(),
            ts_us: 20,
            received_at_us: 30,
            data: data.into(),
            value: None,
            client_ts_us: 10,
            sent_at_us: None,
        }
    }

    #[test]
    fn each_event_yields_its_actors_and_links() {
        let long = "x".repeat(session::MAX_ID_CHARS + 1);
        // (case, category, data, actor ids, links as (user, linked, via))
        type Case<'a> = (
            &'a str,
            &'a str,
            String,
            Vec<&'a str>,
            Vec<(&'a str, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "identify links the anonymous id",
                "identify",
                r#"{"userId":"u","anonymousId":"a","traits":{"userId":"nested"}}"#.into(),
                vec!["u", "a"],
                vec![("u", "a")],
            ),
            (
                "alias links the previous id",
                "alias",
                r#"{"userId":"u2","previousId":"u1"}"#.into(),
                vec!["u2"],
                vec![("u2", "u1")],
            ),
            (
                "a track names its ids but links nothing",
                "track",
                r#"{"userId":"u","anonymousId":"a","previousId":"p"}"#.into(),
                vec!["u", "a"],
                vec![],
            ),
            (
                "an anonymous page view",
                "page",
                r#"{"anonymousId":"a","properties":{}}"#.into(),
                vec!["a"],
                vec![],
            ),
            (
                "identify without an anonymous id",
                "identify",
                r#"{"userId":"u"}"#.into(),
                vec!["u"],
                vec![],
            ),
            (
                "identify of an id with itself",
                "identify",
                r#"{"userId":"u","anonymousId":"u"}"#.into(),
                vec!["u"],
                vec![],
            ),
            (
                "ids that are not strings, or empty, name no one",
                "identify",
                r#"{"userId":42,"anonymousId":"","previousId":null}"#.into(),
                vec![],
                vec![],
            ),
            (
                "an id the query service could not be asked about is skipped",
                "identify",
                format!(r#"{{"userId":"{long}","anonymousId":"a\u0001"}}"#),
                vec![],
                vec![],
            ),
            (
                "alias with a previous id that is not a string",
                "alias",
                r#"{"userId":"u","previousId":{"id":"p"}}"#.into(),
                vec!["u"],
                vec![],
            ),
            (
                "data that is not an object",
                "identify",
                r#"["u","a","p"]"#.into(),
                vec![],
                vec![],
            ),
            (
                "data that is not JSON",
                "identify",
                "{".into(),
                vec![],
                vec![],
            ),
            (
                "other producers' events without ids",
                "page_interaction",
                r#"{"host":"h","path":"/"}"#.into(),
                vec![],
                vec![],
            ),
        ];
        for (case, category, data, actors, links) in cases {
            let got = derive(&[event(category, &data)]);
            let got_actors: Vec<&str> = got.actors.iter().map(|a| a.actor_id.as_str()).collect();
            assert_eq!(got_actors, actors, "{case}");
            let got_links: Vec<(&str, &str)> = got
                .links
                .iter()
                .map(|l| (l.user_id.as_str(), l.anonymous_id.as_str()))
                .collect();
            assert_eq!(got_links, links, "{case}");
            for l in &got.links {
                assert_eq!(l.via, category, "{case}");
            }
        }
    }

    #[test]
    fn rows_carry_the_events_identity_and_time() {
        let e = event("identify", r#"{"userId":"u","anonymousId":"a"}"#);
        let got = derive(std::slice::from_ref(&e));
        for a in &got.actors {
            assert_eq!(
                (a.ts_us, a.event_id, a.session_id.as_str(), a.client_ts_us),
                (e.ts_us, e.event_id, "s", e.client_ts_us)
            );
        }
        assert_eq!(
            got.links,
            vec![LinkRow {
                user_id: "u".into(),
                anonymous_id: "a".into(),
                via: "identify".into(),
                event_id: e.event_id,
                session_id: "s".into(),
                ts_us: e.ts_us,
            }]
        );
    }

    #[test]
    fn a_replayed_event_derives_the_same_rows() {
        let e = event("identify", r#"{"userId":"u","anonymousId":"a"}"#);
        let once = derive(std::slice::from_ref(&e));
        let twice = derive(&[e.clone(), e]);
        assert_eq!(twice.actors[..2], once.actors[..]);
        assert_eq!(twice.actors[2..], once.actors[..]);
        assert_eq!(twice.links, [once.links.clone(), once.links].concat());
    }
}
