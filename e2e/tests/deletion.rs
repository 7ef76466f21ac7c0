//! End-to-end: deleting a user's, a session's and a machine's data, on the real broker and
//! ClickHouse, with ingest, the consumer and the query service running in-process.
//!
//! User U has two sessions; machine M and session S one each; others have their own. U is
//! deleted while events for one of U's sessions keep being sent, and a new session of U
//! starts during the deletion and another after it. Once the deletion is `done`, no read
//! (sessions, listings, the user's sessions, identities), no export and no direct count in
//! any table finds U or any of its sessions, including the events sent while it ran and
//! after; the same for S and M; everyone else's data is intact; `GET /v1/deletions/{id}`
//! shows `done` with counts, and the audit row names who asked. A caller without the
//! `delete` scope is refused, an unknown deletion id is a JSON 404. M is deleted with
//! `eye-admin delete machine`, which follows the deletion to its end, and
//! `eye-admin deletion` shows it.

use anyhow::{ensure, Context};
use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_e2e::{
    auth_config, bin, clickhouse_config, consumer_config, create_topics, ingest_config,
    kafka_config, query_config, readonly_clickhouse_config, start_consumer, start_ingest_authed,
    start_query_config, unique, wait_for, wait_ready, Service,
};
use eye_store::deletion::{self, Subject, SubjectKind};
use eye_store::{LinkRow, ReplayRow, Store};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Env {
    ingest: Service,
    consumer: Service,
    query: Service,
    admin: reqwest::Client,
    admin_key: String,
    reader: reqwest::Client,
    admin_id: String,
    store: Store,
    auth: eye_auth::config::AuthConfig,
}

fn client(key: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))?,
    );
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// Ingest, a consumer reading the suppression list every 200 ms, and the query service
/// reading as the read-only user and deleting as the default one, as a deployment would.
async fn start() -> anyhow::Result<Env> {
    let id = unique("deletion");
    let dir = std::env::temp_dir().join(format!("eye-e2e-{id}"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("clients.toml");
    let (admin, reader) = (NewCredentials::generate()?, NewCredentials::generate()?);
    ClientsFile {
        clients: vec![
            ClientRecord {
                rate_limits: RateLimits::unlimited(),
                ..admin.record(
                    "deleter",
                    vec![Scope::EventsWrite, Scope::EventsRead, Scope::Delete],
                )
            },
            ClientRecord {
                rate_limits: RateLimits::unlimited(),
                ..reader.record("reader", vec![Scope::EventsRead])
            },
        ],
    }
    .save(&path)?;
    let auth = auth_config(&path);
    let kafka = kafka_config(&format!("eye.test.{id}"));
    let ch = clickhouse_config(&format!("eye_test_{id}"));
    create_topics(&kafka).await?;
    let ingest = start_ingest_authed(ingest_config(&[]), kafka.clone(), auth.clone()).await?;
    let mut consumer_cfg = consumer_config(&format!("eye-test-{id}"));
    consumer_cfg.suppression_refresh_ms = 200;
    let consumer = start_consumer(consumer_cfg, kafka, ch.clone()).await?;
    wait_ready(&[&ingest, &consumer]).await?;
    let query = start_query_config(eye_query::Config {
        query: query_config(&[]),
        clickhouse: readonly_clickhouse_config(&ch.database),
        auth: auth.clone(),
        http: eye_e2e::http_config(&[]),
        // Refresh 200 ms + batch wait 200 ms, with room to spare.
        deletion: eye_e2e::config(&[("SETTLE_MS", "1500"), ("CLICKHOUSE_USER", &ch.user)]),
        retention: Default::default(),
    })
    .await?;
    wait_ready(&[&query]).await?;
    Ok(Env {
        ingest,
        consumer,
        query,
        admin: client(&admin.api_key())?,
        admin_key: admin.api_key(),
        reader: client(&reader.api_key())?,
        admin_id: admin.id.clone(),
        store: Store::new(&ch)?,
        auth,
    })
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn page_view(session: &str, data: Value) -> Value {
    json!({"session_id": session, "category": "page_interaction", "name": "page_view",
           "data": data, "timestamp": now()})
}

impl Env {
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<u16> {
        let res = self
            .admin
            .post(self.ingest.url(path))
            .json(body)
            .send()
            .await?;
        let status = res.status().as_u16();
        if status != 202 {
            let text = res.text().await?;
            anyhow::bail!("POST {path}: {status} {text}");
        }
        Ok(status)
    }

    async fn start_session(&self, session: &str, user: &str, machine: &str) -> anyhow::Result<()> {
        let body = json!({"session_id": session, "user_id": user, "machine_id": machine,
                          "org_id": 7, "started_at": now()});
        ensure!(
            self.post("/v1/sessions", &body).await? == 202,
            "start {session}"
        );
        Ok(())
    }

    async fn events(&self, session: &str, n: usize) -> anyhow::Result<()> {
        let batch: Vec<Value> = (0..n)
            .map(|i| {
                page_view(
                    session,
                    json!({"host": "example.com", "path": format!("/{i}")}),
                )
            })
            .collect();
        ensure!(
            self.post("/v1/events", &Value::Array(batch)).await? == 202,
            "events {session}"
        );
        Ok(())
    }

    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let res = self.admin.get(self.query.url(path)).send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// Events of `session` the query service shows (0 when it knows no such session).
    async fn session_events(&self, session: &str) -> anyhow::Result<usize> {
        let (status, body) = self
            .get(&format!("/v1/sessions/{session}/events?limit=10000"))
            .await?;
        Ok(match status {
            200 => body["events"].as_array().map_or(0, Vec::len),
            404 => 0,
            other => anyhow::bail!("session {session}: {other} {body}"),
        })
    }

    async fn wait_events(&self, session: &str, n: usize) -> anyhow::Result<()> {
        wait_for(Duration::from_secs(60), session, || async {
            (self.session_events(session).await.ok()? >= n).then_some(())
        })
        .await
    }

    /// `DELETE` the subject; its deletion id once the deletion is `done`, and its view.
    async fn delete(&self, path: &str) -> anyhow::Result<(String, Value)> {
        let res = self.admin.delete(self.query.url(path)).send().await?;
        ensure!(res.status() == 202, "DELETE {path}: {}", res.status());
        let location = res.headers()["location"].to_str()?.to_owned();
        let body: Value = res.json().await?;
        let id = body["deletion_id"]
            .as_str()
            .context("deletion_id")?
            .to_owned();
        ensure!(location == format!("/v1/deletions/{id}"), "{location}");
        ensure!(body["status"] == "pending", "{body}");
        Ok((id, body))
    }

    async fn wait_done(&self, id: &str) -> anyhow::Result<Value> {
        let view = wait_for(Duration::from_secs(120), "deletion done", || async {
            let (status, body) = self.get(&format!("/v1/deletions/{id}")).await.ok()?;
            (status == 200 && (body["status"] == "done" || body["status"] == "failed"))
                .then_some(body)
        })
        .await?;
        ensure!(view["status"] == "done", "{view}");
        Ok(view)
    }

    /// `eye-admin` against this query service, as the deleting client: its stdout.
    async fn eye_admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = std::process::Command::new(bin("eye-admin")?);
        cmd.args(args)
            .env("EYE_QUERY_URL", self.query.url(""))
            .env("EYE_API_KEY", &self.admin_key);
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        let stdout = String::from_utf8(out.stdout)?;
        ensure!(
            out.status.success(),
            "eye-admin {args:?}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(stdout)
    }

    /// Every row of every table the subject's deletion covers, counted in ClickHouse: those
    /// of its sessions, and the replay outcomes of its quarantined records, `rejections`.
    async fn rows(
        &self,
        subject: &Subject,
        sessions: &[String],
        rejections: &[String],
    ) -> anyhow::Result<u64> {
        let mut sessions = sessions.to_vec();
        sessions.sort();
        let targets = deletion::plan(subject, &sessions, rejections);
        Ok(self.store.count_rows(&targets).await?.iter().sum())
    }
}

fn subject(kind: SubjectKind, id: &str) -> Subject {
    Subject {
        kind,
        id: id.to_owned(),
    }
}

#[tokio::test]
async fn deleting_a_user_session_and_machine_leaves_no_trace_and_nothing_comes_back(
) -> anyhow::Result<()> {
    let env = start().await?;
    let tag = unique("d");
    let name = |s: &str| format!("{s}-{tag}");
    let (user, machine, other_user) = (name("user-u"), name("machine-m"), name("user-o"));
    let (u1, u2, u3, u4) = (name("u1"), name("u2"), name("u3"), name("u4"));
    let (s1, m1, o1, o2) = (name("s1"), name("m1"), name("o1"), name("o2"));
    let anonymous = name("anon-of-u");

    // Stored data: U's two sessions (one naming U in its events' data, one with a
    // quarantined event), M's, S's and two of somebody else's.
    env.start_session(&u1, &user, &name("mx")).await?;
    env.start_session(&u2, &user, &name("my")).await?;
    env.start_session(&m1, &other_user, &machine).await?;
    env.start_session(&s1, &other_user, &name("mz")).await?;
    env.start_session(&o1, &other_user, &name("mz")).await?;
    env.start_session(&o2, &name("user-p"), &name("mz")).await?;
    for s in [&u1, &u2, &m1, &s1, &o1, &o2] {
        env.events(s, 3).await?;
    }
    let named = page_view(
        &u1,
        json!({"host": "example.com", "path": "/me", "userId": user}),
    );
    ensure!(env.post("/v1/events", &json!([named])).await? == 202);
    // Refused by the schema (no path): quarantined under U's session.
    let refused = page_view(&u2, json!({"host": "example.com"}));
    let res = env
        .admin
        .post(env.ingest.url("/v1/events"))
        .json(&json!([refused]))
        .send()
        .await?;
    ensure!(res.status() == 400, "{}", res.status());
    env.store
        .insert_links(&[LinkRow {
            user_id: user.clone(),
            anonymous_id: anonymous.clone(),
            via: "identify".into(),
            event_id: uuid::Uuid::now_v7(),
            session_id: u1.clone(),
            ts_us: 0,
        }])
        .await?;
    for (s, n) in [(&u1, 4), (&u2, 3), (&m1, 3), (&s1, 3), (&o1, 3), (&o2, 3)] {
        env.wait_events(s, n).await?;
    }
    let user_subject = subject(SubjectKind::User, &user);
    wait_for(
        Duration::from_secs(60),
        "U's quarantined record",
        || async {
            let rejected = deletion::plan(
                &subject(SubjectKind::Session, &u2),
                std::slice::from_ref(&u2),
                &[],
            )
            .into_iter()
            .find(|t| t.table == "rejected_events")?;
            (env.store.count_rows(&[rejected]).await.ok()?[0] > 0).then_some(())
        },
    )
    .await?;
    let all_u = vec![u1.clone(), u2.clone(), u3.clone(), u4.clone()];
    // The quarantined record was replayed once (and failed again): its outcome must go too.
    let u_rejections = env.store.subject_rejections(&user_subject, &all_u).await?;
    ensure!(!u_rejections.is_empty(), "U's quarantined record");
    let outcomes: Vec<ReplayRow> = u_rejections
        .iter()
        .map(|id| {
            Ok(ReplayRow {
                rejection_id: uuid::Uuid::parse_str(id)?,
                replay_id: uuid::Uuid::now_v7(),
                replayed_at_us: chrono::Utc::now().timestamp_micros(),
                replayed_by: env.admin_id.clone(),
                result: "rejected".into(),
                codes: vec!["invalid_timestamp".into()],
                reasons: "[]".into(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    env.store.insert_replays(&outcomes).await?;
    let before = env.rows(&user_subject, &all_u, &u_rejections).await?;
    ensure!(before >= 21, "U's rows before: {before}");

    // Not without the scope.
    let res = env
        .reader
        .delete(env.query.url(&format!("/v1/users/{user}")))
        .send()
        .await?;
    ensure!(res.status() == 403, "{}", res.status());

    // Events for U's session keep coming while U is deleted.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let env = Arc::new(env);
    let producer = {
        let (env, stop, sent, u1) = (env.clone(), stop.clone(), sent.clone(), u1.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if env.events(&u1, 2).await.is_ok() {
                    sent.fetch_add(2, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (user_deletion, _) = env.delete(&format!("/v1/users/{user}")).await?;
    // A session U starts while the deletion runs, with events.
    env.start_session(&u3, &user, &name("mx")).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.events(&u3, 3).await?;
    let view = env.wait_done(&user_deletion).await?;
    // And after it: more events for U's sessions, and another new session.
    env.start_session(&u4, &user, &name("mx")).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.events(&u4, 3).await?;
    env.events(&u3, 2).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    producer.await?;
    ensure!(
        sent.load(Ordering::SeqCst) > 10,
        "the producer sent too little"
    );
    // A marker sent last: once it is stored, everything sent before it has been consumed.
    env.events(&o1, 1).await?;
    env.wait_events(&o1, 4).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The deletion's view and its audit row.
    println!("user deletion: {view}");
    let counts = &view["counts"];
    for table in deletion::TABLES {
        ensure!(counts[table].is_u64(), "{table} missing from {view}");
    }
    ensure!(counts["events"].as_u64() >= Some(7), "{view}");
    ensure!(counts["sessions"].as_u64() >= Some(2), "{view}");
    ensure!(counts["rejected_events"].as_u64() >= Some(1), "{view}");
    ensure!(
        counts["rejected_replays"].as_u64() == Some(u_rejections.len() as u64),
        "{view}"
    );
    ensure!(counts["identity_links"].as_u64() >= Some(1), "{view}");
    ensure!(counts["identity_actors"].as_u64() >= Some(1), "{view}");
    ensure!(
        view["subject"] == json!({"kind": "user", "id": user}),
        "{view}"
    );
    ensure!(view["requested_by"] == env.admin_id.as_str(), "{view}");
    ensure!(
        view["finished_at"].is_string() && view["error"].is_null(),
        "{view}"
    );
    let audit = env
        .store
        .deletion(user_deletion.parse()?)
        .await?
        .context("the audit row")?;
    ensure!(
        audit.status == "done" && audit.requested_by == env.admin_id,
        "{audit:?}"
    );

    // Session S and machine M.
    let (session_deletion, _) = env.delete(&format!("/v1/sessions/{s1}")).await?;
    let followed = env
        .eye_admin(&["delete", "machine", &machine, "--json", "--quiet"])
        .await?;
    let m_view: Value = serde_json::from_str(followed.trim())
        .with_context(|| format!("eye-admin delete: {followed}"))?;
    ensure!(
        m_view["status"] == "done"
            && m_view["subject"] == json!({"kind": "machine", "id": machine}),
        "{m_view}"
    );
    let machine_deletion = m_view["deletion_id"].as_str().context("deletion_id")?;
    let shown = env.eye_admin(&["deletion", machine_deletion]).await?;
    ensure!(
        shown.starts_with(&format!(
            "deletion {machine_deletion} of machine {machine}: done\n"
        )) && shown.contains(&format!("\n{:<24} {:>12}\n", "events", 3)),
        "eye-admin deletion: {shown}"
    );
    let s_view = env.wait_done(&session_deletion).await?;
    ensure!(s_view["counts"]["events"] == 3, "{s_view}");
    ensure!(m_view["counts"]["events"] == 3, "{m_view}");

    // No read finds them.
    for s in all_u.iter().chain([&s1, &m1]) {
        let n = env.session_events(s).await?;
        ensure!(n == 0, "session {s} still shows {n} events");
        let (status, body) = env.get(&format!("/v1/sessions/{s}")).await?;
        ensure!(status == 404, "GET /v1/sessions/{s}: {status} {body}");
    }
    let (_, sessions) = env.get(&format!("/v1/users/{user}/sessions")).await?;
    ensure!(sessions["sessions"] == json!([]), "{sessions}");
    let (_, events) = env.get(&format!("/v1/machines/{machine}/events")).await?;
    ensure!(events["events"] == json!([]), "{events}");
    let (status, body) = env.get(&format!("/v1/identities/{user}")).await?;
    ensure!(status == 404, "identity of U: {status} {body}");
    let deleted: BTreeSet<&String> = all_u.iter().chain([&s1, &m1]).collect();
    let (_, listing) = env.get("/v1/events?limit=1000").await?;
    for e in listing["events"].as_array().context("events")? {
        let s = e["session_id"].as_str().unwrap_or_default().to_owned();
        ensure!(!deleted.contains(&s), "listing shows {e}");
    }
    // No export.
    let export = env
        .admin
        .get(env.query.url("/v1/export"))
        .send()
        .await?
        .text()
        .await?;
    let mut exported = 0;
    for line in export.lines() {
        let e: Value = serde_json::from_str(line)?;
        let s = e["session_id"].as_str().unwrap_or_default().to_owned();
        ensure!(!deleted.contains(&s), "export shows {line}");
        exported += 1;
    }
    ensure!(
        exported == 3 + 4,
        "export holds {exported} events: {export}"
    );
    // No direct count in any table.
    for (sub, sessions, rejections) in [
        (user_subject.clone(), all_u.clone(), u_rejections.clone()),
        (subject(SubjectKind::Session, &s1), vec![s1.clone()], vec![]),
        (
            subject(SubjectKind::Machine, &machine),
            vec![m1.clone()],
            vec![],
        ),
    ] {
        let left = env.rows(&sub, &sessions, &rejections).await?;
        ensure!(left == 0, "{sub:?}: {left} rows left");
    }
    let anon_rows = env
        .rows(&subject(SubjectKind::User, &anonymous), &[], &[])
        .await?;
    ensure!(anon_rows == 0, "links naming U's anonymous id: {anon_rows}");

    // Everyone else intact.
    ensure!(env.session_events(&o1).await? == 4);
    ensure!(env.session_events(&o2).await? == 3);
    let (_, others) = env.get(&format!("/v1/users/{other_user}/sessions")).await?;
    let listed: Vec<&str> = others["sessions"]
        .as_array()
        .context("sessions")?
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    ensure!(listed == [o1.as_str()], "{others}");

    // What the consumer dropped, and what the deletions did, in metrics.
    let consumer_metrics = reqwest::get(env.consumer.url("/metrics"))
        .await?
        .text()
        .await?;
    let suppressed: f64 = consumer_metrics
        .lines()
        .filter(|l| l.starts_with("eye_consumer_rows_suppressed_total{table=\"events\"}"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    ensure!(suppressed >= 5.0, "suppressed events: {suppressed}");
    println!(
        "events sent for U's session meanwhile: {}; events the consumer suppressed: {suppressed}",
        sent.load(Ordering::SeqCst)
    );
    let query_metrics = reqwest::get(env.query.url("/metrics"))
        .await?
        .text()
        .await?;
    ensure!(
        query_metrics.contains("eye_deletions_total{status=\"done\"} 3"),
        "{query_metrics}"
    );
    ensure!(query_metrics.contains("eye_deletion_rows_deleted_total{table=\"events\"}"));

    // Unknown and malformed deletion ids.
    let (status, body) = env
        .get(&format!("/v1/deletions/{}", uuid::Uuid::now_v7()))
        .await?;
    ensure!(
        status == 404 && body["error"]["code"] == "deletion_not_found",
        "{status} {body}"
    );
    let (status, body) = env.get("/v1/deletions/not-a-uuid").await?;
    ensure!(status == 400, "{status} {body}");
    let res = env
        .reader
        .get(env.query.url(&format!("/v1/deletions/{user_deletion}")))
        .send()
        .await?;
    ensure!(res.status() == 403, "{}", res.status());

    // A deletion left pending by a query service that stopped is resumed by the next one.
    let env = Arc::try_unwrap(env).map_err(|_| anyhow::anyhow!("env still shared"))?;
    let Env {
        ingest,
        consumer,
        query,
        admin,
        store,
        auth,
        ..
    } = env;
    query.stop().await?;
    let left = uuid::Uuid::now_v7();
    let at = eye_model::time::EventTime::now().as_micros();
    store
        .insert_deletion(&deletion::DeletionRow {
            deletion_id: left,
            subject_kind: "session".into(),
            subject_id: o2.clone(),
            requested_by: "a-stopped-service".into(),
            requested_at_us: at,
            status: "pending".into(),
            tables: vec![],
            counts: vec![],
            finished_at_us: 0,
            error: String::new(),
            updated_at_us: at,
        })
        .await?;
    let ch = eye_e2e::clickhouse_config(store.database());
    let query = start_query_config(eye_query::Config {
        query: query_config(&[]),
        clickhouse: readonly_clickhouse_config(store.database()),
        auth,
        http: eye_e2e::http_config(&[]),
        deletion: eye_e2e::config(&[("SETTLE_MS", "200"), ("CLICKHOUSE_USER", &ch.user)]),
        retention: Default::default(),
    })
    .await?;
    wait_ready(&[&query]).await?;
    let resumed = wait_for(Duration::from_secs(60), "resumed deletion", || async {
        let res = admin
            .get(query.url(&format!("/v1/deletions/{left}")))
            .send()
            .await
            .ok()?;
        let body: Value = res.json().await.ok()?;
        (body["status"] == "done").then_some(body)
    })
    .await?;
    ensure!(resumed["counts"]["events"] == 3, "{resumed}");
    let res = admin
        .get(query.url(&format!("/v1/sessions/{o2}/events")))
        .send()
        .await?;
    ensure!(res.status() == 404, "{}", res.status());

    ingest.stop().await?;
    consumer.stop().await?;
    query.stop().await?;
    Ok(())
}
