//! End-to-end: which ids are one user, and a user's events across them, on Segment-shaped
//! events (category = message type, data = the message) sent through `/v1/events`, Kafka
//! and the consumer, read from the query service.

use eye_e2e::{unique, wait_for, Stack};
use eye_store::{ActorRow, IdentityEventsFilter};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

async fn get(stack: &Stack, path: &str) -> anyhow::Result<(u16, Value)> {
    let res = stack.http.get(stack.query.url(path)).send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

fn segment(path_id: &str) -> String {
    utf8_percent_encode(path_id, NON_ALPHANUMERIC).to_string()
}

/// One Segment message as the Segment front door stores it.
struct Message {
    event_id: Uuid,
    session_id: String,
    category: &'static str,
    name: &'static str,
    data: Value,
    timestamp: String,
}

impl Message {
    fn new(session_id: &str, category: &'static str, name: &'static str, data: Value) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            session_id: session_id.to_owned(),
            category,
            name,
            data,
            timestamp: String::new(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "event_id": self.event_id.to_string(),
            "session_id": self.session_id,
            "category": self.category,
            "name": self.name,
            "data": self.data,
            "timestamp": self.timestamp,
        })
    }
}

fn ids(events: &Value) -> Vec<String> {
    events
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_ids_and_events_are_found_across_session_keys() -> anyhow::Result<()> {
    let stack = Stack::start_with("ident", &[], &[("UNKNOWN_TYPE_POLICY", "accept")]).await?;
    let run = unique("who");
    let user = format!("{run}-user@example.com");
    let anon = format!("{run}-anon");
    let old_user = format!("{run}-old-user");
    let old_anon = format!("{run}-anon-old");
    let (other, other_anon) = (format!("{run}-other"), format!("{run}-other-anon"));
    // RudderStack's context.sessionId: the session key whoever the visitor turns out to be.
    let ctx = format!("{run}-ctx");
    let context = json!({"sessionId": ctx, "library": {"name": "analytics-python"}});

    // In time order, each with the session key the Segment mapping gives it.
    let mut user_messages = [
        // The former account: identified on another device, later aliased to `user`.
        Message::new(
            &old_anon,
            "identify",
            "identify",
            json!({"userId": old_user, "anonymousId": old_anon, "traits": {"plan": "free"}}),
        ),
        Message::new(
            &old_anon,
            "track",
            "Signed_Up",
            json!({"anonymousId": old_anon, "event": "Signed_Up", "properties": {}}),
        ),
        // An anonymous visitor, keyed by its anonymousId, then by context.sessionId.
        Message::new(
            &anon,
            "page",
            "Home",
            json!({"anonymousId": anon, "name": "Home", "properties": {"path": "/"}}),
        ),
        Message::new(
            &ctx,
            "track",
            "Viewed_Pricing",
            json!({"anonymousId": anon, "event": "Viewed_Pricing", "context": context}),
        ),
        // Logs in: identify links the anonymous id to the user.
        Message::new(
            &ctx,
            "identify",
            "identify",
            json!({"userId": user, "anonymousId": anon, "traits": {"email": user}, "context": context}),
        ),
        Message::new(
            &ctx,
            "track",
            "Bought",
            json!({"userId": user, "anonymousId": anon, "event": "Bought", "properties": {"total": 9.5}, "context": context}),
        ),
        // Server side, userId only: keyed by the userId.
        Message::new(
            &user,
            "track",
            "Invoiced",
            json!({"userId": user, "event": "Invoiced"}),
        ),
        Message::new(
            &user,
            "alias",
            "alias",
            json!({"userId": user, "previousId": old_user}),
        ),
    ];
    // Someone else in the same context session: not one of the user's events.
    let mut stranger = Message::new(
        &ctx,
        "identify",
        "identify",
        json!({"userId": other, "anonymousId": other_anon, "context": context}),
    );
    for (i, m) in user_messages.iter_mut().enumerate() {
        m.timestamp = format!("2025-06-01T10:00:{:02}.000100Z", i * 2);
    }
    stranger.timestamp = "2025-06-01T10:00:05Z".into();
    let mut batch: Vec<Value> = user_messages.iter().map(Message::json).collect();
    batch.push(stranger.json());
    let res = stack.post_events(&json!(batch)).await?;
    assert_eq!(res.status(), 202, "{}", res.text().await?);
    // An SDK's retry of the purchase, sent again: one event.
    let res = stack.post_events(&user_messages[5].json()).await?;
    assert_eq!(res.status(), 202, "{}", res.text().await?);

    let want_all: Vec<String> = user_messages
        .iter()
        .map(|m| m.event_id.to_string())
        .collect();
    let user_path = segment(&user);
    let listing = format!("/v1/identities/{user_path}/events?limit=1000");
    let page = wait_for(Duration::from_secs(60), "the user's events", || async {
        match get(&stack, &listing).await {
            Ok((200, body)) if ids(&body["events"]).len() >= want_all.len() => Some(body),
            _ => None,
        }
    })
    .await?;
    assert_eq!(
        ids(&page["events"]),
        want_all,
        "every event of the user's ids, once, in time order, and no stranger's"
    );
    assert!(page["next_cursor"].is_null(), "{page}");
    let first = &page["events"][4];
    assert_eq!(
        (
            first["category"].as_str(),
            first["session_id"].as_str(),
            first["data"]["traits"]["email"].as_str()
        ),
        (Some("identify"), Some(ctx.as_str()), Some(user.as_str())),
        "events come whole: {first}"
    );

    // Links: the identified anonymous id, the aliased former id, and that one's own.
    let mut linked = vec![anon.clone(), old_anon.clone(), old_user.clone()];
    linked.sort();
    let (status, body) = get(&stack, &format!("/v1/identities/{user_path}")).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"user_id": user, "anonymous_ids": linked}));
    let (status, body) = get(&stack, &format!("/v1/identities/{}", segment(&old_user))).await?;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"user_id": old_user, "anonymous_ids": [old_anon]})
        ),
        "links are followed from a user to its ids, not back"
    );
    // The stranger in the user's context session sees only its own.
    let (status, body) = get(&stack, &format!("/v1/identities/{}", segment(&other))).await?;
    assert_eq!(
        (status, body["anonymous_ids"].clone()),
        (200, json!([other_anon]))
    );
    let (_, body) = get(
        &stack,
        &format!("/v1/identities/{}/events", segment(&other)),
    )
    .await?;
    assert_eq!(ids(&body["events"]), vec![stranger.event_id.to_string()]);
    // An anonymous id is known from its events, and linked to nothing itself.
    let (status, body) = get(&stack, &format!("/v1/identities/{}", segment(&anon))).await?;
    assert_eq!((status, body["anonymous_ids"].clone()), (200, json!([])));

    // Pages of 3, both ways: the same events, once each.
    let walked = stack
        .walk_pages(
            &format!("/v1/identities/{user_path}/events?limit=3"),
            "events",
        )
        .await?;
    assert_eq!(ids(&Value::Array(walked)), want_all);
    let mut newest_first = want_all.clone();
    newest_first.reverse();
    let walked = stack
        .walk_pages(
            &format!("/v1/identities/{user_path}/events?limit=3&order=desc"),
            "events",
        )
        .await?;
    assert_eq!(ids(&Value::Array(walked)), newest_first);

    // A replayed batch stored again whole, events and identity rows alike: still once each.
    let store = stack.store()?;
    let ctx_session =
        eye_model::event::SessionId::parse(&ctx).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let rows: Vec<_> = store
        .session_events(&ctx_session, 100)
        .await?
        .into_iter()
        .filter(|r| want_all.contains(&r.event_id.to_string()))
        .collect();
    assert_eq!(
        rows.len(),
        3,
        "the user's events keyed by its context session"
    );
    // Each of them named the anonymous id: the rows the consumer derived for it.
    let actors: Vec<ActorRow> = rows
        .iter()
        .map(|r| ActorRow {
            actor_id: anon.clone(),
            ts_us: r.ts_us,
            event_id: r.event_id,
            session_id: r.session_id.clone(),
            client_ts_us: r.client_ts_us,
        })
        .collect();
    store.insert_events(&rows).await?;
    store.insert_actors(&actors).await?;
    let (_, body) = get(&stack, &listing).await?;
    assert_eq!(ids(&body["events"]), want_all);
    let direct = store
        .identity_events(&IdentityEventsFilter {
            actor_ids: vec![anon.clone()],
            limit: 100,
            ..IdentityEventsFilter::default()
        })
        .await?;
    let anon_events: Vec<String> = direct.iter().map(|r| r.event_id.to_string()).collect();
    assert_eq!(
        anon_events,
        want_all[2..6],
        "each event once, replays and all"
    );

    // Unknown ids, and ids no id rule allows.
    for path in [
        format!("/v1/identities/{run}-nobody"),
        format!("/v1/identities/{run}-nobody/events"),
    ] {
        let (status, body) = get(&stack, &path).await?;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("identity_not_found")),
            "{path}: {body}"
        );
    }
    for (path, field) in [
        ("/v1/identities/%01", "user_id"),
        ("/v1/identities/u/events?limit=0", "limit"),
        ("/v1/identities/u/events?cursor=nope", "cursor"),
        ("/v1/identities/u?order=desc", "order"),
    ] {
        let (status, body) = get(&stack, path).await?;
        assert_eq!(
            (status, body["error"]["details"][0]["field"].as_str()),
            (400, Some(field)),
            "{path}: {body}"
        );
    }
    stack.stop().await
}
