//! End-to-end: authentication, authorization and per-client limits on every API endpoint
//! of eye-ingest and eye-query, against real services, broker and ClickHouse.
//!
//! For each of the eleven API endpoints: no credential, eight kinds of wrong credential, an
//! expired token, a revoked client's key and earlier token, each narrow scope (as an API
//! key and as a token narrowed with the short OAuth2 scope names), a scope taken away after its
//! token was issued, and a request rate exceeded then recovered. Then what is not per
//! endpoint: the category allow-list (per event, quarantined under the client's id), the
//! event budget (a throttled batch leaves nothing behind), `POST /oauth/token` and its RFC
//! 6749 errors on both services, the per-client metrics, open operational routes, and no
//! credential in any metric or log line.
//!
//! Every refusal is paired with the same request admitted for a client that may make it,
//! so no check passes because the endpoint refuses everything.
//!
//! Long by design: every endpoint against every kind of credential, scope and limit, each case spelled out.

use anyhow::{ensure, Context};
use eye_auth::{ClientRecord, ClientsFile, NewCredentials, Scope};
use eye_e2e::{
    auth_config, clickhouse_config, consumer_config, create_topics, ingest_config, kafka_config,
    readonly_clickhouse_config, start_consumer, start_ingest_authed, start_query_authed, unique,
    wait_for, wait_ready, LogBuffer, Service,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const REALM_CHALLENGE: &str = "Bearer realm=\"the-eye\"";
const ALL_SCOPES: &str = "events:write events:read aggregations:read";
const WRITE: &[Scope] = &[Scope::EventsWrite];
const READ: &[Scope] = &[Scope::EventsRead];
const AGGREGATE: &[Scope] = &[Scope::AggregationsRead];
const CATALOGUE: &[Scope] = &[Scope::EventsRead, Scope::AggregationsRead];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Svc {
    Ingest,
    Query,
}

/// One API endpoint, with a request to it that succeeds for a client holding `scopes`.
#[derive(Clone)]
struct Endpoint {
    svc: Svc,
    method: Method,
    /// The route, as documented (for messages).
    route: &'static str,
    /// The concrete path and query.
    path: String,
    body: Option<Value>,
    /// The status a permitted request gets.
    ok: u16,
    /// Any of these admits (`admin` would too).
    scopes: &'static [Scope],
}

impl Endpoint {
    fn label(&self) -> String {
        format!("{} {} ({:?})", self.method, self.path, self.svc)
    }

    fn admits(&self, held: &[Scope]) -> bool {
        held.iter().any(|s| self.scopes.contains(s))
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(code, message)` of the one error shape, checked strictly: `{"error": {"code",
    /// "message", "details"?}}` and nothing else.
    fn error(&self) -> anyhow::Result<(&str, &str)> {
        let top = self.body.as_object().context("not a JSON object")?;
        ensure!(
            top.len() == 1 && top.contains_key("error"),
            "not the error shape: {}",
            self.text
        );
        let e = self.body["error"]
            .as_object()
            .context("error is no object")?;
        ensure!(
            e.keys()
                .all(|k| ["code", "message", "details"].contains(&k.as_str())),
            "unexpected keys: {}",
            self.text
        );
        let code = e["code"].as_str().context("no code")?;
        let message = e["message"].as_str().context("no message")?;
        ensure!(!message.is_empty(), "empty message");
        Ok((code, message))
    }

    fn retry_after(&self) -> anyhow::Result<u64> {
        let v = self.header("retry-after").context("no Retry-After")?;
        let secs: u64 = v.parse().with_context(|| format!("Retry-After {v:?}"))?;
        ensure!(secs >= 1, "Retry-After {secs}");
        Ok(secs)
    }
}

struct Client {
    creds: NewCredentials,
    record: ClientRecord,
}

impl Client {
    fn bearer(&self) -> String {
        format!("Bearer {}", self.creds.api_key())
    }
}

/// Declared clients, by role.
fn clients(endpoints: usize) -> anyhow::Result<BTreeMap<String, Client>> {
    let mut out = BTreeMap::new();
    let mut add = |role: &str, scopes: &[Scope], edit: &dyn Fn(&mut ClientRecord)| {
        let creds = NewCredentials::generate()?;
        let mut record = creds.record(role, scopes.to_vec());
        edit(&mut record);
        out.insert(role.to_owned(), Client { creds, record });
        anyhow::Ok(())
    };
    let none = &|_: &mut ClientRecord| {};
    let all = [
        Scope::EventsWrite,
        Scope::EventsRead,
        Scope::AggregationsRead,
    ];
    add("all", &all, none)?;
    add("writer", &[Scope::EventsWrite], none)?;
    add("reader", &[Scope::EventsRead], none)?;
    add("aggregator", &[Scope::AggregationsRead], none)?;
    add("doomed", &all, none)?;
    add(
        "demoted",
        &[Scope::EventsRead, Scope::AggregationsRead],
        none,
    )?;
    add("narrow", &[Scope::EventsWrite], &|r| {
        r.categories = Some(vec!["page_interaction".into()]);
    })?;
    add("stingy", &[Scope::EventsWrite], &|r| {
        r.rate_limits.events_per_s = Some(1);
        r.rate_limits.events_burst = Some(5);
    })?;
    // One request-throttled client per endpoint, so the endpoints are throttled at once
    // without sharing a bucket.
    for i in 0..endpoints {
        add(&format!("slow-{i}"), &all, &|r| {
            r.rate_limits.requests_per_s = Some(1);
            r.rate_limits.requests_burst = Some(2);
        })?;
    }
    Ok(out)
}

struct World {
    ingest: Service,
    consumer: Service,
    query: Service,
    /// Same clients and key, tokens live one second.
    short: Service,
    /// Same clients, another signing key.
    foreign: Service,
    http: reqwest::Client,
    path: PathBuf,
    clients: BTreeMap<String, Client>,
    endpoints: Vec<Endpoint>,
    /// Every access token issued, to look for in metrics and logs.
    tokens: Mutex<Vec<String>>,
    /// Answers checked, by kind of case.
    cases: Mutex<BTreeMap<&'static str, usize>>,
    id: String,
}

fn event(session: &str, category: &str, name: &str, ts: &str) -> Value {
    let mut data = json!({"host": "example.com", "path": "/"});
    if name == "submit" {
        data["form"] = json!({"email": "a@example.com"});
    }
    json!({"session_id": session, "category": category, "name": name, "data": data,
           "timestamp": ts, "value": 1.0})
}

fn page_view(session: &str) -> Value {
    event(
        session,
        "page_interaction",
        "page_view",
        "2024-03-01 10:00:00",
    )
}

impl World {
    async fn start() -> anyhow::Result<Self> {
        let id = unique("auth");
        let kafka = kafka_config(&format!("eye.test.{id}"));
        let clickhouse = clickhouse_config(&format!("eye_test_{id}"));
        create_topics(&kafka).await?;

        let (seed, matrix) = (format!("{id}-seed"), format!("{id}-matrix"));
        let (user, machine) = (format!("u-{id}"), format!("m-{id}"));
        let (r, a, ra) = (READ, AGGREGATE, CATALOGUE);
        let post = |route, path: String, body: Value| Endpoint {
            svc: Svc::Ingest,
            method: Method::POST,
            route,
            path,
            body: Some(body),
            ok: 202,
            scopes: WRITE,
        };
        let get = |route, path: String, scopes: &'static [Scope]| Endpoint {
            svc: Svc::Query,
            method: Method::GET,
            route,
            path,
            body: None,
            ok: 200,
            scopes,
        };
        let endpoints = vec![
            post("/v1/events", "/v1/events".into(), page_view(&matrix)),
            post(
                "/v1/sessions",
                "/v1/sessions".into(),
                json!({"session_id": matrix, "user_id": user, "machine_id": machine,
                       "org_id": 1, "started_at": "2024-03-01 09:00:00"}),
            ),
            post(
                "/v1/sessions/{session_id}/end",
                format!("/v1/sessions/{matrix}/end"),
                json!({"ended_at": "2024-03-01 12:00:00"}),
            ),
            get(
                "/v1/sessions/{session_id}",
                format!("/v1/sessions/{seed}"),
                r,
            ),
            get(
                "/v1/sessions/{session_id}/events",
                format!("/v1/sessions/{seed}/events"),
                r,
            ),
            get("/v1/events", format!("/v1/events?session_id={seed}"), r),
            get(
                "/v1/machines/{machine_id}/events",
                format!("/v1/machines/{machine}/events"),
                r,
            ),
            get(
                "/v1/users/{user_id}/sessions",
                format!("/v1/users/{user}/sessions"),
                r,
            ),
            get(
                "/v1/aggregate",
                "/v1/aggregate?category=page_interaction&name=page_view".into(),
                a,
            ),
            get("/v1/categories", "/v1/categories".into(), ra),
            get("/v1/rejected", "/v1/rejected".into(), r),
        ];

        let clients = clients(endpoints.len())?;
        let dir = std::env::temp_dir().join(format!("eye-e2e-{id}"));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("clients.toml");
        ClientsFile {
            clients: clients.values().map(|c| c.record.clone()).collect(),
        }
        .save(&path)?;
        let auth = auth_config(&path);
        let mut short_auth = auth.clone();
        short_auth.token_ttl_s = 1;
        let mut foreign_auth = auth.clone();
        foreign_auth.token_secret = "another-token-key-also-32-bytes-or-more".into();

        let ingest = start_ingest_authed(ingest_config(&[]), kafka.clone(), auth.clone()).await?;
        let group = format!("eye-test-{id}");
        let consumer =
            start_consumer(consumer_config(&group), kafka.clone(), clickhouse.clone()).await?;
        let ro = readonly_clickhouse_config(&clickhouse.database);
        let query = start_query_authed(ro.clone(), auth).await?;
        let short = start_query_authed(ro.clone(), short_auth).await?;
        let foreign = start_query_authed(ro, foreign_auth).await?;
        // No default credential: every request below says what it sends.
        let http = reqwest::Client::new();
        wait_ready(&[&ingest, &consumer, &query]).await?;
        Ok(Self {
            ingest,
            consumer,
            query,
            short,
            foreign,
            http,
            path,
            clients,
            endpoints,
            tokens: Mutex::default(),
            cases: Mutex::default(),
            id,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        drop(self.http);
        for svc in [
            self.ingest,
            self.consumer,
            self.query,
            self.short,
            self.foreign,
        ] {
            svc.stop().await?;
        }
        std::fs::remove_dir_all(self.path.parent().context("dir")?).ok();
        Ok(())
    }

    fn client(&self, role: &str) -> &Client {
        &self.clients[role]
    }

    fn svc(&self, svc: Svc) -> &Service {
        match svc {
            Svc::Ingest => &self.ingest,
            Svc::Query => &self.query,
        }
    }

    fn count(&self, case: &'static str) {
        *self
            .cases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(case)
            .or_default() += 1;
    }

    async fn fetch(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            text,
            body,
        })
    }

    /// Calls `ep` with `authorization` as the header's value (none when `None`).
    async fn call(&self, ep: &Endpoint, authorization: Option<&str>) -> anyhow::Result<Answer> {
        let url = self.svc(ep.svc).url(&ep.path);
        let mut req = self.http.request(ep.method.clone(), url);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(b) = &ep.body {
            req = req.json(b);
        }
        self.fetch(req).await.with_context(|| ep.label())
    }

    /// Calls `ep` and checks it answered `want` (`None`: the endpoint's success status).
    async fn expect(
        &self,
        ep: &Endpoint,
        authorization: Option<&str>,
        want: Option<u16>,
        case: &'static str,
    ) -> anyhow::Result<Answer> {
        let ans = self.call(ep, authorization).await?;
        let want = want.unwrap_or(ep.ok);
        ensure!(
            ans.status == want,
            "{case}: {} answered {}, wanted {want}: {}",
            ep.label(),
            ans.status,
            ans.text
        );
        self.count(case);
        Ok(ans)
    }

    /// A 401 with the error shape, `code`, and a challenge that starts with `challenge`.
    async fn expect_401(
        &self,
        ep: &Endpoint,
        authorization: Option<&str>,
        code: &str,
        challenge: &str,
        case: &'static str,
    ) -> anyhow::Result<()> {
        let ans = self.expect(ep, authorization, Some(401), case).await?;
        let ctx = || format!("{case}: {}: {}", ep.label(), ans.text);
        ensure!(ans.error().with_context(ctx)?.0 == code, "{}", ctx());
        let got = ans.header("www-authenticate").unwrap_or_default();
        ensure!(
            got.starts_with(challenge),
            "{}: WWW-Authenticate {got:?}, wanted {challenge:?}...",
            ctx()
        );
        Ok(())
    }

    async fn expect_403(
        &self,
        ep: &Endpoint,
        authorization: &str,
        case: &'static str,
    ) -> anyhow::Result<()> {
        let ans = self
            .expect(ep, Some(authorization), Some(403), case)
            .await?;
        let ctx = || format!("{case}: {}: {}", ep.label(), ans.text);
        let (code, message) = ans.error().with_context(ctx)?;
        ensure!(code == "insufficient_scope", "{}", ctx());
        // The message names what would have been enough.
        for s in ep.scopes {
            ensure!(message.contains(s.as_str()), "{}: {s:?} not named", ctx());
        }
        let challenge = ans.header("www-authenticate").unwrap_or_default();
        ensure!(
            challenge.starts_with(REALM_CHALLENGE)
                && challenge.contains("error=\"insufficient_scope\""),
            "{}: WWW-Authenticate {challenge:?}",
            ctx()
        );
        Ok(())
    }

    /// A 429 `rate_limited` with a Retry-After of at least a second; returns it.
    fn rate_limited(&self, ans: &Answer, what: &str) -> anyhow::Result<u64> {
        ensure!(ans.status == 429, "{what}: {} {}", ans.status, ans.text);
        let (code, _) = ans.error().with_context(|| what.to_owned())?;
        ensure!(code == "rate_limited", "{what}: {}", ans.text);
        ans.retry_after().with_context(|| what.to_owned())
    }

    /// `POST /oauth/token` on `svc`, credentials by Basic when `basic` is set; `form` is
    /// the body.
    async fn oauth(
        &self,
        svc: &Service,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.post(svc.url("/oauth/token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        self.fetch(req).await
    }

    /// An RFC 6749 §5.2 error: `status`, `{"error": code, "error_description": ...}` and
    /// nothing else, not cacheable.
    fn oauth_error(&self, ans: &Answer, status: u16, code: &str, what: &str) -> anyhow::Result<()> {
        ensure!(
            ans.status == status && ans.body["error"] == code,
            "{what}: wanted {status} {code}, got {} {}",
            ans.status,
            ans.text
        );
        let keys = keys(&ans.body)?;
        ensure!(
            keys == ["error", "error_description"] && ans.body["error_description"].is_string(),
            "{what}: {}",
            ans.text
        );
        ensure!(
            ans.header("cache-control") == Some("no-store"),
            "{what}: cacheable"
        );
        self.count("oauth error (RFC 6749 §5.2)");
        Ok(())
    }

    /// A token for `role` from `svc`, by Basic, checking the RFC 6749 §5.1 answer.
    async fn token(
        &self,
        svc: &Service,
        role: &str,
        scope: Option<&str>,
    ) -> anyhow::Result<String> {
        let c = self.client(role);
        let form: Vec<(&str, &str)> = [("grant_type", "client_credentials")]
            .into_iter()
            .chain(scope.map(|s| ("scope", s)))
            .collect();
        let ans = self
            .oauth(svc, Some((&c.creds.id, &c.creds.secret)), &form)
            .await?;
        let what = format!("token for {role} from {}", svc.name);
        let token = self.token_answer(&ans, &what)?;
        Ok(token)
    }

    fn token_answer(&self, ans: &Answer, what: &str) -> anyhow::Result<String> {
        ensure!(ans.status == 200, "{what}: {} {}", ans.status, ans.text);
        ensure!(
            keys(&ans.body)? == ["access_token", "expires_in", "scope", "token_type"],
            "{what}: {}",
            ans.text
        );
        ensure!(ans.body["token_type"] == "Bearer", "{what}: {}", ans.text);
        ensure!(
            ans.body["expires_in"].as_u64().is_some_and(|s| s >= 1),
            "{what}: {}",
            ans.text
        );
        ensure!(
            ans.header("cache-control") == Some("no-store"),
            "{what}: cacheable"
        );
        ensure!(
            ans.header("pragma") == Some("no-cache"),
            "{what}: no Pragma"
        );
        let token = ans.body["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned();
        ensure!(
            !token.starts_with("eye_"),
            "{what}: a token is not an API key"
        );
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(token.clone());
        self.count("oauth token issued");
        Ok(token)
    }

    /// The endpoint of `route` on `svc` (`/v1/events` is on both).
    fn by_route(&self, svc: Svc, route: &str) -> anyhow::Result<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.svc == svc && e.route == route)
            .with_context(|| format!("no endpoint {route}"))
    }

    /// Data for the query endpoints to find: a session with a user, a machine and events.
    async fn seed(&self) -> anyhow::Result<()> {
        let all = self.client("all").bearer();
        let seed = format!("{}-seed", self.id);
        let start = json!({"session_id": seed, "user_id": format!("u-{}", self.id),
                           "machine_id": format!("m-{}", self.id), "org_id": 1, "started_at": "2024-03-01 09:00:00"});
        let ans = self
            .fetch(
                self.http
                    .post(self.ingest.url("/v1/sessions"))
                    .header("authorization", &all)
                    .json(&start),
            )
            .await?;
        ensure!(ans.status == 202, "seed session: {}", ans.text);
        let ans = self
            .fetch(
                self.http
                    .post(self.ingest.url("/v1/events"))
                    .header("authorization", &all)
                    .json(&json!([page_view(&seed), page_view(&seed)])),
            )
            .await?;
        ensure!(ans.status == 202, "seed events: {}", ans.text);
        self.stored_events(&seed, 2).await?;
        Ok(())
    }

    /// The events stored for `session`, once there are at least `n`.
    async fn stored_events(&self, session: &str, n: usize) -> anyhow::Result<Vec<Value>> {
        let url = self
            .query
            .url(&format!("/v1/sessions/{session}/events?limit=1000"));
        let all = self.client("all").bearer();
        wait_for(Duration::from_secs(60), "events stored", || {
            let req = self.http.get(&url).header("authorization", &all);
            async move {
                let ans = self.fetch(req).await.ok()?;
                let events = ans.body["events"].as_array()?.clone();
                (ans.status == 200 && events.len() >= n).then_some(events)
            }
        })
        .await
    }

    /// The quarantined records of `client`, once there are at least `n`.
    async fn quarantined(&self, client: &str, n: usize) -> anyhow::Result<Vec<Value>> {
        let url = self.query.url("/v1/rejected?limit=1000");
        let all = self.client("all").bearer();
        wait_for(Duration::from_secs(60), "rejections stored", || {
            let req = self.http.get(&url).header("authorization", &all);
            async move {
                let ans = self.fetch(req).await.ok()?;
                let mine: Vec<Value> = ans.body["rejected"]
                    .as_array()?
                    .iter()
                    .filter(|r| r["client"] == client)
                    .cloned()
                    .collect();
                (mine.len() >= n).then_some(mine)
            }
        })
        .await
    }

    /// Credentials that identify nobody, each on every endpoint: 401 `invalid_token`.
    async fn wrong_credentials(&self, expired: &str) -> anyhow::Result<()> {
        let all = self.client("all");
        let other = NewCredentials::generate()?;
        let good = self.token(&self.ingest, "all", None).await?;
        // The last character of a JWT carries spare bits: change one in the middle.
        let mut tampered = good.clone().into_bytes();
        let mid = tampered.len() / 2;
        tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered)?;
        let foreign = self.token(&self.foreign, "all", None).await?;
        let wrong: Vec<(&'static str, String)> = vec![
            (
                "wrong secret",
                format!("Bearer eye_{}.{}", all.creds.id, other.secret),
            ),
            ("unknown id", format!("Bearer {}", other.api_key())),
            ("garbage", "Bearer not-a-credential".into()),
            (
                "API key without its secret",
                format!("Bearer eye_{}", all.creds.id),
            ),
            ("empty bearer", "Bearer".into()),
            (
                "Basic scheme with the right id and secret",
                self.http
                    .get("http://127.0.0.1/")
                    .basic_auth(&all.creds.id, Some(&all.creds.secret))
                    .build()?
                    .headers()["authorization"]
                    .to_str()?
                    .to_owned(),
            ),
            ("tampered token", format!("Bearer {tampered}")),
            ("token signed with another key", format!("Bearer {foreign}")),
        ];
        for ep in &self.endpoints {
            // The same request with the real credential passes: the refusals are the
            // credential's doing.
            self.expect(
                ep,
                Some(&all.bearer()),
                None,
                "admitted (all scopes, API key)",
            )
            .await?;
            self.expect(
                ep,
                Some(&format!("Bearer {good}")),
                None,
                "admitted (all scopes, token)",
            )
            .await?;
            self.expect_401(
                ep,
                None,
                "unauthenticated",
                REALM_CHALLENGE,
                "no credential",
            )
            .await?;
            let ans = self.call(ep, None).await?;
            ensure!(
                ans.header("www-authenticate") == Some(REALM_CHALLENGE),
                "no credential: the challenge carries no error: {:?}",
                ans.header("www-authenticate")
            );
            for (what, header) in &wrong {
                let ans = self.call(ep, Some(header)).await?;
                self.check_invalid(
                    ep,
                    &ans,
                    what,
                    "the credential is not valid",
                    "wrong credential",
                )?;
            }
            let ans = self.call(ep, Some(&format!("Bearer {expired}"))).await?;
            self.check_invalid(
                ep,
                &ans,
                "expired token",
                "the token has expired",
                "expired token",
            )?;
        }
        Ok(())
    }

    fn check_invalid(
        &self,
        ep: &Endpoint,
        ans: &Answer,
        what: &str,
        description: &str,
        case: &'static str,
    ) -> anyhow::Result<()> {
        let ctx = || format!("{what}: {}: {} {}", ep.label(), ans.status, ans.text);
        ensure!(ans.status == 401, "{}", ctx());
        ensure!(
            ans.error().with_context(ctx)?.0 == "invalid_credentials",
            "{}",
            ctx()
        );
        let want = format!(
            "{REALM_CHALLENGE}, error=\"invalid_token\", error_description=\"{description}\""
        );
        ensure!(
            ans.header("www-authenticate") == Some(want.as_str()),
            "{}: WWW-Authenticate {:?}",
            ctx(),
            ans.header("www-authenticate")
        );
        self.count(case);
        Ok(())
    }

    /// Each narrow scope, as an API key and as a token narrowed by the short OAuth2 scope names:
    /// admitted where it is enough, 403 `insufficient_scope` elsewhere.
    async fn scopes(&self) -> anyhow::Result<()> {
        let mut callers: Vec<(String, Vec<Scope>, String)> = Vec::new();
        for (role, scope) in [
            ("writer", Scope::EventsWrite),
            ("reader", Scope::EventsRead),
            ("aggregator", Scope::AggregationsRead),
        ] {
            callers.push((
                format!("{role} key"),
                vec![scope],
                self.client(role).bearer(),
            ));
        }
        for (name, scope) in [
            ("write", Scope::EventsWrite),
            ("read", Scope::EventsRead),
            ("aggregation", Scope::AggregationsRead),
        ] {
            // The all-scope client asks for one scope by its short OAuth2 name; our name comes back.
            let svc = if name == "write" {
                &self.query
            } else {
                &self.ingest
            };
            let c = self.client("all");
            let ans = self
                .oauth(
                    svc,
                    None,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_id", &c.creds.id),
                        ("client_secret", &c.creds.secret),
                        ("scope", name),
                    ],
                )
                .await?;
            let token = self.token_answer(&ans, &format!("scope={name}"))?;
            ensure!(
                ans.body["scope"] == scope.as_str(),
                "scope={name}: {}",
                ans.text
            );
            callers.push((
                format!("token scope={name}"),
                vec![scope],
                format!("Bearer {token}"),
            ));
        }
        for ep in &self.endpoints {
            for (who, held, header) in &callers {
                if ep.admits(held) {
                    self.expect(ep, Some(header), None, "admitted with a narrow scope")
                        .await
                        .with_context(|| who.clone())?;
                } else {
                    self.expect_403(ep, header, "wrong scope")
                        .await
                        .with_context(|| who.clone())?;
                }
            }
        }
        Ok(())
    }

    /// A client allowed `page_interaction` only: its other events are rejected one by one
    /// with `category_not_allowed` and quarantined under its id; its allowed ones land.
    async fn categories(&self) -> anyhow::Result<()> {
        let narrow = self.client("narrow");
        let session = format!("{}-category", self.id);
        let events = self.by_route(Svc::Ingest, "/v1/events")?;
        let post = |body: Value| Endpoint {
            body: Some(body),
            ..events.clone()
        };
        let form = event(
            &session,
            "form_interaction",
            "submit",
            "2024-03-01 10:00:05",
        );
        let allowed = event(
            &session,
            "page_interaction",
            "page_view",
            "2024-03-01 10:00:00",
        );

        // The same form event is valid: a client without an allow-list gets it accepted.
        let other = format!("{}-category-any", self.id);
        let mut form_any = form.clone();
        form_any["session_id"] = json!(other);
        self.expect(
            &post(form_any),
            Some(&self.client("all").bearer()),
            Some(202),
            "category allowed (no allow-list)",
        )
        .await?;

        let mixed = self
            .expect(
                &post(json!([allowed, form])),
                Some(&narrow.bearer()),
                Some(207),
                "category not allowed (mixed batch)",
            )
            .await?;
        let results = mixed.body["results"].as_array().context("results")?;
        ensure!(
            results.len() == 2
                && results[0]["status"] == "accepted"
                && results[1]["status"] == "rejected"
                && mixed.body["accepted"] == 1
                && mixed.body["rejected"] == 1,
            "mixed batch: {}",
            mixed.text
        );
        ensure!(
            results[1]["errors"]
                == json!([{"field": "/category", "code": "category_not_allowed",
                "message": "this client may not write events of category \"form_interaction\""}]),
            "mixed batch: {}",
            mixed.text
        );
        let accepted_id = results[0]["event_id"]
            .as_str()
            .context("event_id")?
            .to_owned();

        let refused = self
            .expect(
                &post(form.clone()),
                Some(&narrow.bearer()),
                Some(400),
                "category not allowed (whole batch)",
            )
            .await?;
        ensure!(
            refused.body["error"]["code"] == "invalid_events"
                && refused.body["results"][0]["errors"][0]["code"] == "category_not_allowed",
            "{}",
            refused.text
        );

        // The allow-list is about events: the client still records sessions.
        let sessions = self.by_route(Svc::Ingest, "/v1/sessions")?;
        self.expect(
            sessions,
            Some(&narrow.bearer()),
            None,
            "category allow-list leaves sessions alone",
        )
        .await?;

        let stored = self.stored_events(&session, 1).await?;
        ensure!(
            stored.len() == 1 && stored[0]["event_id"] == accepted_id.as_str(),
            "only the allowed event is stored: {stored:?}"
        );
        let q = self.quarantined(&narrow.creds.id, 2).await?;
        ensure!(q.len() == 2, "two quarantined: {q:?}");
        for r in &q {
            ensure!(
                r["category"] == "form_interaction"
                    && r["session_id"] == session.as_str()
                    && r["source"] == "ingest"
                    && r["reasons"][0]["code"] == "category_not_allowed"
                    && r["reasons"][0]["field"] == "/category"
                    && r["raw"]
                        .as_str()
                        .is_some_and(|raw| raw.contains("form_interaction")),
                "quarantined record: {r}"
            );
        }
        self.count("category quarantined under the client");
        Ok(())
    }

    /// A client with an event budget of 5 (1/s): a batch over the burst is refused whole
    /// with 413, one over what is left with 429, and either leaves nothing behind, not even its invalid event in the
    /// quarantine; after Retry-After the same batch passes.
    async fn event_budget(&self) -> anyhow::Result<()> {
        let stingy = self.client("stingy").bearer();
        let session = format!("{}-budget", self.id);
        let events = self.by_route(Svc::Ingest, "/v1/events")?;
        let post = |body: Value| Endpoint {
            body: Some(body),
            ..events.clone()
        };
        let valid = |i: usize| {
            event(
                &session,
                "page_interaction",
                "page_view",
                &format!("2024-03-01 10:00:{i:02}"),
            )
        };
        let invalid = event(&session, "page_interaction", "page_view", "never");

        let mut over: Vec<Value> = (0..5).map(valid).collect();
        over.push(invalid.clone());
        let ans = self.call(&post(json!(over)), Some(&stingy)).await?;
        // No wait would admit it: 413, not a 429 the client would retry forever.
        ensure!(
            ans.status == 413
                && ans.body["error"]["code"] == "batch_exceeds_event_burst"
                && ans.headers.get("retry-after").is_none(),
            "a batch over the event burst: {} {}",
            ans.status,
            ans.text
        );
        self.count("batch over the event burst");

        let ans = self
            .expect(
                &post(json!([valid(10), valid(11), valid(12)])),
                Some(&stingy),
                Some(202),
                "within the event budget",
            )
            .await?;
        let mut accepted: Vec<Value> = ans.body["event_ids"].as_array().context("ids")?.clone();

        let rest = json!([valid(20), valid(21), invalid]);
        let ans = self.call(&post(rest.clone()), Some(&stingy)).await?;
        let wait = self.rate_limited(&ans, "a batch over what is left of the budget")?;
        self.count("event budget exceeded");
        // Other clients are not held back by this one's budget.
        self.expect(
            events,
            Some(&self.client("all").bearer()),
            None,
            "another client unaffected",
        )
        .await?;
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let ans = self
            .expect(
                &post(rest),
                Some(&stingy),
                Some(207),
                "event budget recovered after Retry-After",
            )
            .await?;
        accepted.extend(
            ans.body["event_ids"]
                .as_array()
                .context("ids")?
                .iter()
                .cloned(),
        );

        // Events of one session share a partition and are stored in order, and so are its
        // quarantined records: once the last batch is in, a refused batch that had been
        // produced would be in too.
        let stored = self.stored_events(&session, 5).await?;
        let ids: Vec<&Value> = stored.iter().map(|e| &e["event_id"]).collect();
        ensure!(
            stored.len() == 5 && accepted.iter().all(|a| ids.contains(&a)),
            "only the admitted batches are stored: {ids:?} vs {accepted:?}"
        );
        let q = self.quarantined(&self.client("stingy").creds.id, 1).await?;
        ensure!(
            q.len() == 1,
            "only the admitted batch's invalid event: {q:?}"
        );
        self.count("throttled batch left nothing behind");
        Ok(())
    }

    /// Every endpoint at once, each with its own client allowed 1 request/s, burst 2.
    async fn request_rate(&self) -> anyhow::Result<()> {
        let runs = self.endpoints.iter().enumerate().map(|(i, ep)| async move {
            let slow = self.client(&format!("slow-{i}")).bearer();
            let mut retry = None;
            for round in 0..3 {
                let started = Instant::now();
                self.expect(ep, Some(&slow), None, "within the request burst")
                    .await?;
                self.expect(ep, Some(&slow), None, "within the request burst")
                    .await?;
                let third = self.call(ep, Some(&slow)).await?;
                if third.status == 429 {
                    retry = Some(self.rate_limited(&third, &ep.label())?);
                    break;
                }
                // The bucket refills one request a second: only a third request sent within
                // that second must be refused. On a slow machine, try again from full.
                ensure!(
                    started.elapsed() > Duration::from_millis(900),
                    "{}: third request within a second answered {}: {}",
                    ep.label(),
                    third.status,
                    third.text
                );
                eprintln!(
                    "{}: round {round} took {:?}; again",
                    ep.label(),
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(2_500)).await;
            }
            let wait = retry.with_context(|| format!("{}: never throttled", ep.label()))?;
            self.count("request rate exceeded");
            self.expect(
                ep,
                Some(&self.client("all").bearer()),
                None,
                "another client unaffected",
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(wait)).await;
            self.expect(ep, Some(&slow), None, "recovered after Retry-After")
                .await?;
            anyhow::Ok(())
        });
        for r in futures::future::join_all(runs).await {
            r?;
        }
        Ok(())
    }

    /// A client's key and earlier token work everywhere until the client is revoked in the
    /// file, then nowhere; a scope taken away stops counting in a token issued before.
    async fn revocation(&self) -> anyhow::Result<()> {
        let doomed = self.client("doomed");
        let key = doomed.bearer();
        let token = format!("Bearer {}", self.token(&self.query, "doomed", None).await?);
        let demoted_key = self.client("demoted").bearer();
        let demoted_token = format!(
            "Bearer {}",
            self.token(&self.ingest, "demoted", None).await?
        );
        let aggregate = self.by_route(Svc::Query, "/v1/aggregate")?;
        let events = self.by_route(Svc::Query, "/v1/events")?;
        let read = self.by_route(Svc::Query, "/v1/rejected")?;
        for ep in &self.endpoints {
            self.expect(ep, Some(&key), None, "admitted before revocation")
                .await?;
            self.expect(ep, Some(&token), None, "admitted before revocation")
                .await?;
        }
        for h in [&demoted_key, &demoted_token] {
            self.expect(
                aggregate,
                Some(h),
                None,
                "admitted before the scope is removed",
            )
            .await?;
        }

        let mut file = ClientsFile::load(&self.path)?;
        for r in &mut file.clients {
            if r.id == doomed.creds.id {
                r.revoked_at = Some("2026-01-02T00:00:00Z".into());
            }
            if r.id == self.client("demoted").creds.id {
                r.scopes = vec![Scope::EventsRead];
            }
        }
        file.save(&self.path)?;
        // Both services re-read the file within EYE_AUTH_RELOAD_INTERVAL_MS (100 ms).
        for svc in [&self.ingest, &self.query] {
            wait_for(
                Duration::from_secs(10),
                "revocation in force",
                || async move {
                    let ans = self
                        .oauth(
                            svc,
                            Some((&doomed.creds.id, &doomed.creds.secret)),
                            &[("grant_type", "client_credentials")],
                        )
                        .await
                        .ok()?;
                    (ans.status != 200).then_some(ans)
                },
            )
            .await
            .and_then(|ans| self.oauth_error(&ans, 401, "invalid_client", "revoked client"))?;
        }
        for ep in &self.endpoints {
            for (what, h) in [("revoked key", &key), ("revoked client's token", &token)] {
                let ans = self.call(ep, Some(h)).await?;
                self.check_invalid(ep, &ans, what, "the credential is not valid", "revoked")?;
            }
        }
        for h in [&demoted_key, &demoted_token] {
            self.expect_403(aggregate, h, "scope removed after issue")
                .await?;
            self.expect(events, Some(h), None, "remaining scope still admitted")
                .await?;
            self.expect(read, Some(h), None, "remaining scope still admitted")
                .await?;
        }
        Ok(())
    }

    /// `POST /oauth/token` on both services: RFC 6749 §4.4 and its §5.2 errors.
    async fn oauth_flow(&self) -> anyhow::Result<()> {
        let all = self.client("all");
        let (id, secret) = (all.creds.id.as_str(), all.creds.secret.as_str());
        let grant = ("grant_type", "client_credentials");
        let categories = self.by_route(Svc::Query, "/v1/categories")?;
        let sessions = self.by_route(Svc::Ingest, "/v1/sessions")?;
        let post_events = self.by_route(Svc::Ingest, "/v1/events")?;
        let aggregate = self.by_route(Svc::Query, "/v1/aggregate")?;
        for svc in [&self.ingest, &self.query] {
            let n = svc.name;
            let basic = self.oauth(svc, Some((id, secret)), &[grant]).await?;
            let by_basic = self.token_answer(&basic, &format!("{n}: Basic"))?;
            ensure!(
                basic.body["scope"] == ALL_SCOPES && basic.body["expires_in"] == 900,
                "{n}: {}",
                basic.text
            );
            let body = self
                .oauth(
                    svc,
                    None,
                    &[grant, ("client_id", id), ("client_secret", secret)],
                )
                .await?;
            let by_body = self.token_answer(&body, &format!("{n}: form body"))?;
            // Both services accept a token either issued (one signing key).
            for t in [&by_basic, &by_body] {
                let h = format!("Bearer {t}");
                self.expect(categories, Some(&h), None, "token accepted across services")
                    .await?;
                self.expect(sessions, Some(&h), None, "token accepted across services")
                    .await?;
            }

            // The short OAuth2 scope names, granted under ours, and only those.
            let narrowed = self
                .oauth(
                    svc,
                    Some((id, secret)),
                    &[grant, ("scope", "read aggregation")],
                )
                .await?;
            let t = format!(
                "Bearer {}",
                self.token_answer(&narrowed, "short scope names")?
            );
            ensure!(
                narrowed.body["scope"] == "events:read aggregations:read",
                "{n}: {}",
                narrowed.text
            );
            self.expect(aggregate, Some(&t), None, "short scope name admitted")
                .await?;
            self.expect(categories, Some(&t), None, "short scope name admitted")
                .await?;
            self.expect_403(post_events, &t, "short scope name: write not granted")
                .await?;

            let ans = self
                .oauth(svc, Some((id, secret)), &[("scope", "read")])
                .await?;
            self.oauth_error(&ans, 400, "invalid_request", "missing grant_type")?;
            let ans = self
                .oauth(svc, Some((id, secret)), &[("grant_type", "password")])
                .await?;
            self.oauth_error(&ans, 400, "unsupported_grant_type", "grant_type=password")?;
            let ans = self.oauth(svc, Some((id, "wrong")), &[grant]).await?;
            self.oauth_error(&ans, 401, "invalid_client", "wrong secret by Basic")?;
            ensure!(
                ans.header("www-authenticate") == Some("Basic realm=\"the-eye\""),
                "{n}: wrong secret by Basic: {:?}",
                ans.header("www-authenticate")
            );
            let ans = self
                .oauth(
                    svc,
                    None,
                    &[grant, ("client_id", id), ("client_secret", "wrong")],
                )
                .await?;
            self.oauth_error(&ans, 401, "invalid_client", "wrong secret in the body")?;
            // RFC 9110 §15.5.2: every 401 names a scheme.
            ensure!(
                ans.header("www-authenticate") == Some("Basic realm=\"the-eye\""),
                "{n}: wrong secret in the body: {:?}",
                ans.header("www-authenticate")
            );
            let ans = self.oauth(svc, None, &[grant]).await?;
            self.oauth_error(&ans, 401, "invalid_client", "no client credentials")?;
            let unknown = NewCredentials::generate()?;
            let ans = self
                .oauth(svc, Some((&unknown.id, &unknown.secret)), &[grant])
                .await?;
            self.oauth_error(&ans, 401, "invalid_client", "unknown client")?;
            let writer = self.client("writer");
            let ans = self
                .oauth(
                    svc,
                    Some((&writer.creds.id, &writer.creds.secret)),
                    &[grant, ("scope", "read")],
                )
                .await?;
            self.oauth_error(&ans, 400, "invalid_scope", "scope not granted")?;
            let ans = self
                .oauth(svc, Some((id, secret)), &[grant, ("scope", "root")])
                .await?;
            self.oauth_error(&ans, 400, "invalid_scope", "unknown scope")?;
            let ans = self
                .oauth(
                    svc,
                    Some((id, secret)),
                    &[grant, ("client_id", id), ("client_secret", secret)],
                )
                .await?;
            self.oauth_error(&ans, 400, "invalid_request", "Basic and body credentials")?;
            // An API key is not a client authentication for the token endpoint.
            let ans = self
                .fetch(
                    self.http
                        .post(svc.url("/oauth/token"))
                        .header("authorization", all.bearer())
                        .form(&[grant]),
                )
                .await?;
            self.oauth_error(
                &ans,
                401,
                "invalid_client",
                "API key as client authentication",
            )?;
        }
        Ok(())
    }

    /// Health, readiness, metrics and the document need no credential, and ignore a bad one.
    async fn open_routes(&self) -> anyhow::Result<()> {
        for svc in [&self.ingest, &self.query, &self.consumer] {
            let paths: &[&str] = if svc.name == "consumer" {
                &["/healthz", "/readyz", "/metrics"]
            } else {
                &["/healthz", "/readyz", "/metrics", "/openapi.json"]
            };
            for path in paths {
                for auth in [None, Some("Bearer not-a-credential")] {
                    let mut req = self.http.get(svc.url(path));
                    if let Some(a) = auth {
                        req = req.header("authorization", a);
                    }
                    let ans = self.fetch(req).await?;
                    ensure!(
                        ans.status == 200,
                        "{} {path} with {auth:?}: {} {}",
                        svc.name,
                        ans.status,
                        ans.text
                    );
                    self.count("open route");
                }
            }
        }
        Ok(())
    }

    /// Per-client counters, by client id and never by credential.
    async fn metrics(&self) -> anyhow::Result<Vec<String>> {
        let mut texts = Vec::new();
        for svc in [&self.ingest, &self.query, &self.short, &self.foreign] {
            let ans = self.fetch(self.http.get(svc.url("/metrics"))).await?;
            ensure!(ans.status == 200, "{} /metrics: {}", svc.name, ans.status);
            texts.push(ans.text);
        }
        let (ingest, query) = (&texts[0], &texts[1]);
        let id = |role: &str| self.client(role).creds.id.clone();
        let has = |text: &str, name: &str, labels: &[(&str, &str)], at_least: f64| {
            let got = metric(text, name, labels);
            ensure!(
                got.is_some_and(|v| v >= at_least),
                "{name}{labels:?}: {got:?}, wanted at least {at_least}"
            );
            self.count("per-client metric");
            Ok(())
        };
        let exactly = |text: &str, name: &str, labels: &[(&str, &str)], want: f64| {
            let got = metric(text, name, labels);
            ensure!(
                got == Some(want),
                "{name}{labels:?}: {got:?}, wanted {want}"
            );
            self.count("per-client metric");
            anyhow::Ok(())
        };
        for (i, ep) in self.endpoints.iter().enumerate() {
            let text = if ep.svc == Svc::Ingest { ingest } else { query };
            let c = id(&format!("slow-{i}"));
            has(
                text,
                "eye_client_throttled_total",
                &[("client", &c), ("limit", "requests")],
                1.0,
            )?;
            has(text, "eye_client_requests_total", &[("client", &c)], 3.0)?;
        }
        let thr = "eye_client_throttled_total";
        exactly(
            ingest,
            thr,
            &[("client", &id("stingy")), ("limit", "events")],
            1.0,
        )?;
        // The batch over the whole burst is refused for good, not throttled.
        exactly(
            ingest,
            "eye_auth_failures_total",
            &[("reason", "batch_over_burst")],
            1.0,
        )?;
        let ev = "eye_client_events_total";
        exactly(
            ingest,
            ev,
            &[("client", &id("narrow")), ("outcome", "accepted")],
            1.0,
        )?;
        exactly(
            ingest,
            ev,
            &[("client", &id("narrow")), ("outcome", "rejected")],
            2.0,
        )?;
        exactly(
            ingest,
            ev,
            &[("client", &id("stingy")), ("outcome", "accepted")],
            5.0,
        )?;
        exactly(
            ingest,
            ev,
            &[("client", &id("stingy")), ("outcome", "rejected")],
            1.0,
        )?;
        for text in [ingest, query] {
            for reason in [
                "missing",
                "malformed",
                "invalid",
                "expired",
                "forbidden",
                "rate_limited",
            ] {
                has(text, "eye_auth_failures_total", &[("reason", reason)], 1.0)?;
            }
        }
        Ok(texts)
    }
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> anyhow::Result<Vec<&str>> {
    let mut k: Vec<&str> = v
        .as_object()
        .context("not a JSON object")?
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    Ok(k)
}

/// The value of the sample `name{labels}` (exactly these labels) in Prometheus text.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let pairs: Vec<(&str, &str)> = rest
                .strip_suffix('}')?
                .split(',')
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            (pairs.len() == labels.len() && labels.iter().all(|l| pairs.contains(l)))
                .then(|| value.parse().ok())
                .flatten()
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_authenticates_authorizes_and_throttles_per_client() -> anyhow::Result<()> {
    let log = LogBuffer::install(tracing_subscriber::filter::LevelFilter::DEBUG)?;
    let w = World::start().await?;
    // Issued first, so that it has long expired (its lifetime is one second) when used.
    let expired = {
        let ans = w
            .oauth(
                &w.short,
                Some((&w.client("all").creds.id, &w.client("all").creds.secret)),
                &[("grant_type", "client_credentials")],
            )
            .await?;
        let t = w.token_answer(&ans, "short-lived token")?;
        ensure!(ans.body["expires_in"] == 1, "{}", ans.text);
        t
    };
    let issued = Instant::now();
    w.seed().await.context("seeding")?;
    // `exp` is in whole seconds and checked without leeway: two seconds are enough.
    tokio::time::sleep(Duration::from_millis(2_200).saturating_sub(issued.elapsed())).await;

    w.wrong_credentials(&expired).await.context("credentials")?;
    w.scopes().await.context("scopes")?;
    w.oauth_flow().await.context("oauth")?;
    w.categories().await.context("categories")?;
    w.event_budget().await.context("event budget")?;
    w.request_rate().await.context("request rate")?;
    w.revocation().await.context("revocation")?;
    w.open_routes().await.context("open routes")?;
    let metrics = w.metrics().await.context("metrics")?;

    // No secret, API key or token in any metric or log line; the log is not empty.
    let log = log.text();
    ensure!(
        log.contains("clients loaded"),
        "the log capture caught nothing: {} bytes",
        log.len()
    );
    let mut secrets: Vec<String> = w
        .clients
        .values()
        .flat_map(|c| [c.creds.secret.clone(), c.creds.api_key()])
        .collect();
    secrets.extend(w.tokens.lock().expect("not poisoned").iter().cloned());
    secrets.push(expired);
    for s in &secrets {
        for (i, text) in metrics.iter().enumerate() {
            ensure!(
                !text.contains(s.as_str()),
                "a credential in the metrics of service {i}"
            );
        }
        ensure!(!log.contains(s.as_str()), "a credential in the log");
    }
    w.count("no credential in metrics or log");

    let cases = w.cases.lock().expect("not poisoned").clone();
    let total: usize = cases.values().sum();
    for (case, n) in &cases {
        println!("{n:>5}  {case}");
    }
    println!(
        "{total} checked answers, {} credentials looked for",
        secrets.len()
    );
    w.stop().await
}
