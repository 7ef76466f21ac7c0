//! End-to-end: docs/openapi.json is true of the running services.
//!
//! Every documented operation is called for real, on success and on each documented error
//! status, and every answer is checked against the document: its status must be listed for
//! that path and method, its media type must be the documented one, its JSON body must
//! match the documented schema (draft 2020-12, formats asserted) and documented required
//! headers must be present and valid. Successful requests are checked too: every query
//! parameter sent must be documented and valid, and a JSON body must match the request
//! schema. The test fails if any documented operation and status was never produced, so
//! the document cannot promise an answer the services do not give.
//!
//! Broker and ClickHouse failures (503) come from a second ingest pointed at a closed port
//! and a second query service pointed at a closed port; both also have small body limits
//! where that is how a status is reached without sending megabytes.
//!
//! Every request says which credential it sends, and the answer is checked against the
//! operation's `security` too: an operation that needs none never answers 401, one that
//! needs one never answers a request without it anything but 401, a 403 comes only to a
//! credential holding none of the documented scope sets, and any other answer only to one
//! holding one of them. The services read a clients file of this test's own: the harness's
//! all-scope client, one client per narrow scope, and two throttled ones.
//!
//! Long by design: one call per documented operation and error status, each checked in place.

use anyhow::{bail, ensure, Context};
use eye_auth::config::AuthConfig;
use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_e2e::{
    auth_config, clickhouse_config, consumer_config, create_topics, http_client, ingest_config,
    kafka_config, query_config, readonly_clickhouse_config, start_consumer, start_ingest_authed,
    start_query_with, test_auth, unique, wait_ready, Service, Stack, SCHEMA_DIR,
};
use jsonschema::Validator;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The document as committed; the services must serve exactly this.
const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// A port nothing listens on, for the dependency-failure statuses.
const CLOSED: &str = "127.0.0.1:1";

/// How a path parameter's value is sent: percent-encoded but for RFC 3986's unreserved
/// characters, which mean themselves either way (`app.js`, as a browser sends it).
const PATH_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The credential a request sends.
#[derive(Clone)]
enum Cred {
    None,
    /// `Authorization: Bearer <credential>`, for a client holding these scopes.
    Bearer(String, Vec<&'static str>),
    /// `Authorization: Basic`, client authentication at the token endpoint.
    Basic(String, String),
}

/// The harness's client: every scope.
fn harness() -> Cred {
    Cred::Bearer(
        test_auth().api_key.clone(),
        Scope::ALL.iter().map(|s| s.as_str()).collect(),
    )
}

/// One request, described the way the document describes operations.
#[derive(Clone)]
struct Req {
    service: &'static str,
    base: String,
    method: &'static str,
    template: &'static str,
    path: Vec<(&'static str, String)>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<Vec<u8>>,
    /// The JSON the body carries, checked against the request schema on success.
    json: Option<Value>,
    /// A form-urlencoded body, checked against the request schema on success.
    form: Option<Vec<(&'static str, String)>>,
    cred: Cred,
}

impl Req {
    fn new(svc: &Service, method: &'static str, template: &'static str) -> Self {
        Self {
            service: svc.name,
            base: svc.url(""),
            method,
            template,
            path: Vec::new(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            json: None,
            form: None,
            cred: harness(),
        }
    }

    fn get(svc: &Service, template: &'static str) -> Self {
        Self::new(svc, "get", template)
    }

    fn delete(svc: &Service, template: &'static str) -> Self {
        Self::new(svc, "delete", template)
    }

    fn post(svc: &Service, template: &'static str, body: Value) -> Self {
        let mut r = Self::new(svc, "post", template);
        r.body = Some(body.to_string().into_bytes());
        r.json = Some(body);
        r.header("content-type", "application/json")
    }

    /// A form-urlencoded body.
    fn form(svc: &Service, template: &'static str, fields: &[(&'static str, &str)]) -> Self {
        let mut r = Self::new(svc, "post", template);
        r.form = Some(fields.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        r
    }

    fn cred(mut self, cred: Cred) -> Self {
        self.cred = cred;
        self
    }

    fn anonymous(self) -> Self {
        self.cred(Cred::None)
    }

    /// A body that is not (or not only) JSON; nothing to check it against.
    fn raw(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self.json = None;
        self
    }

    fn path(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.path.push((name, value.into()));
        self
    }

    fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    fn gzip(mut self) -> anyhow::Result<Self> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(self.body.as_deref().unwrap_or_default())?;
        self.body = Some(e.finish()?);
        Ok(self.header("content-encoding", "gzip"))
    }

    fn url(&self) -> String {
        let mut path = self.template.to_owned();
        for (name, value) in &self.path {
            let encoded = utf8_percent_encode(value, PATH_VALUE).to_string();
            path = path.replace(&format!("{{{name}}}"), &encoded);
        }
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
            .collect();
        if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, query.join("&"))
        }
    }

    fn label(&self) -> String {
        format!(
            "{} {} ({})",
            self.method.to_uppercase(),
            self.url(),
            self.service
        )
    }
}

struct Answer {
    status: u16,
    media: String,
    headers: reqwest::header::HeaderMap,
    text: String,
    body: Value,
}

/// JSON Pointer escaping of one reference token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON Pointer as a `$ref` fragment: path templates' braces are not URI characters.
fn fragment(pointer: &str) -> String {
    pointer.replace('{', "%7B").replace('}', "%7D")
}

/// A query parameter or header value as the JSON value its schema describes.
fn coerce(schema: &Value, raw: &str) -> Value {
    match (schema["type"].as_str(), raw.parse::<i64>()) {
        (Some("integer"), Ok(n)) => json!(n),
        _ => json!(raw),
    }
}

type Seen = BTreeSet<(String, String, u16)>;

struct Contract {
    doc: Value,
    http: reqwest::Client,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
    seen: Mutex<Seen>,
}

impl Contract {
    fn new(http: reqwest::Client) -> anyhow::Result<Self> {
        Ok(Self {
            doc: serde_json::from_str(DOCUMENT).context("docs/openapi.json")?,
            http,
            validators: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    /// The value at `pointer`, following `$ref`s; with the pointer it was found at.
    fn resolve(&self, mut pointer: String) -> anyhow::Result<(String, &Value)> {
        for _ in 0..8 {
            let v = self
                .doc
                .pointer(&pointer)
                .with_context(|| format!("nothing at {pointer}"))?;
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => pointer = r.trim_start_matches('#').to_owned(),
                None => return Ok((pointer, v)),
            }
        }
        bail!("$ref loop at {pointer}")
    }

    /// A validator for the schema at `pointer`, compiled against the whole document so
    /// that `#/components/...` references resolve from the root.
    fn validator(&self, pointer: &str) -> anyhow::Result<Arc<Validator>> {
        let mut cache = self.validators.lock().expect("not poisoned");
        if let Some(v) = cache.get(pointer) {
            return Ok(v.clone());
        }
        let mut rooted = self.doc.clone();
        rooted["$ref"] = json!(format!("#{}", fragment(pointer)));
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&rooted)
            .map_err(|e| anyhow::anyhow!("schema at {pointer} does not compile: {e}"))?;
        let v = Arc::new(v);
        cache.insert(pointer.to_owned(), v.clone());
        Ok(v)
    }

    fn check_value(&self, pointer: &str, value: &Value, what: &str) -> anyhow::Result<()> {
        let v = self.validator(pointer)?;
        let errors: Vec<String> = v
            .iter_errors(value)
            .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
            .collect();
        ensure!(
            errors.is_empty(),
            "{what} does not match {pointer}:\n  {}",
            errors.join("\n  ")
        );
        Ok(())
    }

    async fn fetch(&self, req: &Req) -> anyhow::Result<Answer> {
        let method = reqwest::Method::from_bytes(req.method.to_uppercase().as_bytes())?;
        let mut b = self.http.request(method, req.url());
        for (k, v) in &req.headers {
            b = b.header(*k, *v);
        }
        if let Some(body) = &req.body {
            b = b.body(body.clone());
        }
        if let Some(form) = &req.form {
            b = b.form(form);
        }
        b = match &req.cred {
            Cred::None => b,
            Cred::Bearer(c, _) => b.bearer_auth(c),
            Cred::Basic(id, secret) => b.basic_auth(id, Some(secret)),
        };
        let res = b.send().await.with_context(|| req.label())?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let media = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let text = res.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            media,
            headers,
            text,
            body,
        })
    }

    /// Sends `req` and checks the answer (and, on success, the request) against the document.
    async fn send(&self, req: &Req) -> anyhow::Result<Answer> {
        let ans = self.fetch(req).await?;
        self.check(req, &ans).with_context(|| {
            let text: String = ans.text.chars().take(2000).collect();
            format!("{} answered {}: {text}", req.label(), ans.status)
        })?;
        Ok(ans)
    }

    /// Sends `req`, which must answer `status` (and, for errors, `code`).
    async fn expect(&self, req: Req, status: u16, code: Option<&str>) -> anyhow::Result<Answer> {
        let ans = self.send(&req).await?;
        ensure!(
            ans.status == status,
            "{}: wanted {status}, got {}: {}",
            req.label(),
            ans.status,
            ans.text
        );
        if let Some(code) = code {
            ensure!(
                ans.body["error"]["code"] == code,
                "{}: wanted code {code}: {}",
                req.label(),
                ans.text
            );
        }
        Ok(ans)
    }

    /// Sends `req` until `ready` holds; every answer on the way is checked too.
    async fn poll(&self, req: Req, ready: impl Fn(&Answer) -> bool) -> anyhow::Result<Answer> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ans = self.send(&req).await?;
            if ready(&ans) {
                return Ok(ans);
            }
            ensure!(
                Instant::now() < deadline,
                "{}: not ready after 60 s; last answer {}: {}",
                req.label(),
                ans.status,
                ans.text
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn check(&self, req: &Req, ans: &Answer) -> anyhow::Result<()> {
        let op_at = format!("/paths/{}/{}", escape(req.template), req.method);
        let op = self
            .doc
            .pointer(&op_at)
            .with_context(|| format!("{} {} is not documented", req.method, req.template))?;
        let servers: Vec<&str> = op["servers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["description"].as_str())
            .collect();
        let served_by = format!("eye-{} ", req.service);
        ensure!(
            servers.iter().any(|d| d.starts_with(&served_by)),
            "{} is not documented as served by eye-{}: {servers:?}",
            req.template,
            req.service
        );
        let status = ans.status.to_string();
        let (resp_at, resp) = self
            .resolve(format!("{op_at}/responses/{status}"))
            .with_context(|| {
                format!(
                    "status {status} is not documented for {} {}",
                    req.method, req.template
                )
            })?;
        let content = resp["content"].as_object().context("no content")?;
        if content.is_empty() {
            // Documented without a body (a redirect): none, and no type.
            ensure!(
                ans.media.is_empty() && ans.text.is_empty(),
                "documented without a body, answered {:?} with {} bytes",
                ans.media,
                ans.text.len()
            );
        } else {
            ensure!(
                content.contains_key(&ans.media),
                "answered as {:?}, documented as {:?}",
                ans.media,
                content.keys().collect::<Vec<_>>()
            );
        }
        if ans.media == "application/json" {
            ensure!(
                serde_json::from_str::<Value>(&ans.text).is_ok(),
                "body is not JSON"
            );
            let schema_at = format!("{resp_at}/content/{}/schema", escape(&ans.media));
            self.check_value(&schema_at, &ans.body, "response body")?;
        }
        for name in resp["headers"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
        {
            let header_at = format!("{resp_at}/headers/{}", escape(name));
            let (header_at, h) = self.resolve(header_at)?;
            match ans.headers.get(name.as_str()).map(|v| v.to_str()) {
                None if h["required"] == true => bail!("required header {name} missing"),
                None => {}
                Some(v) => {
                    let (schema_at, schema) = self.resolve(format!("{header_at}/schema"))?;
                    self.check_value(&schema_at, &coerce(schema, v?), name)?;
                }
            }
        }
        self.check_security(op, req, ans)?;
        if (200..300).contains(&ans.status) {
            self.check_request(&op_at, op, req, ans.status)?;
        }
        self.seen.lock().expect("not poisoned").insert((
            req.template.to_owned(),
            req.method.to_owned(),
            ans.status,
        ));
        Ok(())
    }

    /// The answer agrees with the operation's `security` (the document's when it has none).
    fn check_security(&self, op: &Value, req: &Req, ans: &Answer) -> anyhow::Result<()> {
        let security = op
            .get("security")
            .unwrap_or(&self.doc["security"])
            .as_array()
            .context("security is not a list")?;
        // No requirement, or an empty one among them: a request may come without credentials.
        let open = security.is_empty()
            || security
                .iter()
                .any(|r| r.as_object().is_some_and(|m| m.is_empty()));
        if open {
            // A 401 only where client authentication is documented as one of the ways in
            // (the token endpoint: Basic, or credentials in the body).
            let authenticates = security
                .iter()
                .any(|r| r.as_object().is_some_and(|m| !m.is_empty()));
            ensure!(
                ans.status != 401 || authenticates,
                "answered 401, but the document says no credential is needed"
            );
            return Ok(());
        }
        match &req.cred {
            Cred::None | Cred::Basic(..) => ensure!(
                ans.status == 401,
                "answered {} without a bearer credential, which the document requires",
                ans.status
            ),
            Cred::Bearer(_, held) if ans.status != 401 => {
                let holds = |s: &str| held.contains(&s) || held.contains(&"admin");
                let enough = security.iter().any(|r| {
                    r.as_object().is_some_and(|m| {
                        m.values().all(|scopes| {
                            scopes
                                .as_array()
                                .is_some_and(|l| l.iter().all(|s| holds(s.as_str().unwrap_or(""))))
                        })
                    })
                });
                ensure!(
                    enough == (ans.status != 403),
                    "answered {} to a client holding {held:?}; the document asks for {}",
                    ans.status,
                    json!(security)
                );
            }
            Cred::Bearer(..) => {}
        }
        Ok(())
    }

    /// A request the service accepted must be one the document allows.
    fn check_request(&self, op_at: &str, op: &Value, req: &Req, status: u16) -> anyhow::Result<()> {
        let mut params = Vec::new();
        for i in 0..op["parameters"].as_array().map_or(0, Vec::len) {
            params.push(self.resolve(format!("{op_at}/parameters/{i}"))?);
        }
        let find = |name: &str, place: &str| {
            params.iter().find(|(_, p)| {
                p["in"] == place
                    && p["name"]
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
        };
        let sent = req
            .query
            .iter()
            .map(|(k, v)| (*k, v.as_str(), "query"))
            .chain(req.path.iter().map(|(k, v)| (*k, v.as_str(), "path")))
            .chain(
                req.headers
                    .iter()
                    .filter(|(k, _)| !k.eq_ignore_ascii_case("content-type"))
                    .map(|(k, v)| (*k, *v, "header")),
            );
        for (name, value, place) in sent {
            let (at, _) = find(name, place)
                .with_context(|| format!("{place} parameter {name} is not documented"))?;
            let (schema_at, schema) = self.resolve(format!("{at}/schema"))?;
            self.check_value(
                &schema_at,
                &coerce(schema, value),
                &format!("{place} parameter {name}"),
            )?;
        }
        for (_, p) in &params {
            if p["required"] == true && p["in"] != "header" {
                let name = p["name"].as_str().unwrap_or_default();
                ensure!(
                    req.query.iter().chain(&req.path).any(|(k, _)| *k == name),
                    "required parameter {name} not sent"
                );
            }
        }
        // A 207 is the answer to a batch with invalid events in it, by definition.
        if let (Some(json), false) = (&req.json, status == 207) {
            let (body_at, _) = self.resolve(format!("{op_at}/requestBody"))?;
            let schema_at = format!("{body_at}/content/application~1json/schema");
            self.check_value(&schema_at, json, "request body")?;
        }
        if let Some(form) = &req.form {
            let (body_at, _) = self.resolve(format!("{op_at}/requestBody"))?;
            let schema_at = format!("{body_at}/content/application~1x-www-form-urlencoded/schema");
            let fields: serde_json::Map<String, Value> = form
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            self.check_value(&schema_at, &Value::Object(fields), "form body")?;
        }
        Ok(())
    }

    /// An answer outside any operation (unknown path, wrong method): the error shape.
    async fn off_document(&self, req: Req, status: u16, code: &str) -> anyhow::Result<()> {
        let ans = self.fetch(&req).await?;
        ensure!(
            ans.status == status && ans.body["error"]["code"] == code,
            "{}: wanted {status} {code}, got {}: {}",
            req.label(),
            ans.status,
            ans.text
        );
        self.check_value("/components/schemas/Error", &ans.body, "error body")
    }

    fn documented(&self) -> Seen {
        let mut out = Seen::new();
        for (path, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for status in op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|r| r.0)
                {
                    out.insert((path.clone(), method.clone(), status.parse().unwrap_or(0)));
                }
            }
        }
        out
    }

    /// Fails unless every documented operation, and every status of it, was produced.
    fn coverage(&self) -> anyhow::Result<usize> {
        let documented = self.documented();
        let seen = self.seen.lock().expect("not poisoned").clone();
        let ops = |s: &Seen| -> BTreeSet<(String, String)> {
            s.iter().map(|(p, m, _)| (p.clone(), m.clone())).collect()
        };
        let never: Vec<_> = ops(&documented).difference(&ops(&seen)).cloned().collect();
        ensure!(never.is_empty(), "operations never exercised: {never:?}");
        let missing: Vec<_> = documented.difference(&seen).collect();
        ensure!(
            missing.is_empty(),
            "documented answers never produced: {missing:?}"
        );
        Ok(documented.len())
    }
}

/// Segment's routes, and the message type each implies (`batch`: each message says).
const SEGMENT_ROUTES: [(&str, &str); 7] = [
    ("/v1/batch", "batch"),
    ("/v1/track", "track"),
    ("/v1/identify", "identify"),
    ("/v1/page", "page"),
    ("/v1/screen", "screen"),
    ("/v1/group", "group"),
    ("/v1/alias", "alias"),
];

/// The clients the services under test know.
struct Clients {
    /// `events:write`, accepting event types without a schema, its write key by Basic.
    segment: Cred,
    auth: AuthConfig,
    dir: std::path::PathBuf,
    /// `events:write` only.
    writer: Cred,
    /// `events:read` only.
    reader: Cred,
    /// Every scope, one request a second, burst 1.
    throttled: Cred,
    /// `events:write`, one event a second, burst 1.
    stingy: Cred,
}

impl Clients {
    fn write(id: &str) -> anyhow::Result<Self> {
        let h = test_auth();
        // The harness's client, so that the harness's own HTTP client works here too.
        let harness = NewCredentials {
            id: h.client_id.clone(),
            secret: h.client_secret.clone(),
        };
        let mut records = vec![record(&harness, Scope::ALL.to_vec(), RateLimits::default())];
        let c = NewCredentials::generate()?;
        records.push(ClientRecord {
            unknown_types: Some(eye_model::schema::UnknownTypePolicy::Accept),
            ..record(&c, vec![Scope::EventsWrite], RateLimits::default())
        });
        let segment = Cred::Basic(c.api_key(), String::new());
        let mut cred = |scopes: Vec<Scope>, limits: RateLimits| -> anyhow::Result<Cred> {
            let c = NewCredentials::generate()?;
            records.push(record(&c, scopes.clone(), limits));
            Ok(Cred::Bearer(
                c.api_key(),
                scopes.iter().map(|s| s.as_str()).collect(),
            ))
        };
        let writer = cred(vec![Scope::EventsWrite], RateLimits::default())?;
        let reader = cred(vec![Scope::EventsRead], RateLimits::default())?;
        let throttled = cred(
            Scope::ALL.to_vec(),
            RateLimits {
                requests_per_s: Some(1),
                requests_burst: Some(1),
                ..RateLimits::default()
            },
        )?;
        let stingy = cred(
            vec![Scope::EventsWrite],
            RateLimits {
                events_per_s: Some(1),
                events_burst: Some(1),
                ..RateLimits::default()
            },
        )?;
        let dir = std::env::temp_dir().join(format!("eye-e2e-{id}"));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("clients.toml");
        ClientsFile { clients: records }.save(&path)?;
        Ok(Self {
            auth: auth_config(&path),
            dir,
            segment,
            writer,
            reader,
            throttled,
            stingy,
        })
    }
}

fn record(c: &NewCredentials, scopes: Vec<Scope>, rate_limits: RateLimits) -> ClientRecord {
    ClientRecord {
        rate_limits,
        ..c.record("openapi", scopes)
    }
}

/// [`Stack::start`], reading `auth`'s clients file.
async fn start_stack(auth: &AuthConfig) -> anyhow::Result<Stack> {
    let id = unique("openapi");
    let kafka = kafka_config(&format!("eye.test.{id}"));
    let clickhouse = clickhouse_config(&format!("eye_test_{id}"));
    let group = format!("eye-test-{id}");
    create_topics(&kafka).await?;
    let ingest = eye_e2e::start_ingest_replaying_authed(
        ingest_config(&[]),
        kafka.clone(),
        auth.clone(),
        clickhouse.clone(),
    )
    .await?;
    let consumer =
        start_consumer(consumer_config(&group), kafka.clone(), clickhouse.clone()).await?;
    let ro = readonly_clickhouse_config(&clickhouse.database);
    // `GET /v1/pipeline` reads this stack's own ingest and consumer.
    let (ingest_metrics, consumer_metrics) = (ingest.url("/metrics"), consumer.url("/metrics"));
    let settings = query_config(&[
        ("INGEST_METRICS_URL", &ingest_metrics),
        ("CONSUMER_METRICS_URL", &consumer_metrics),
    ]);
    let query = start_query_with(settings, ro, auth.clone()).await?;
    let http = http_client();
    wait_ready(&[&ingest, &consumer, &query]).await?;
    Ok(Stack {
        kafka,
        clickhouse,
        group,
        ingest,
        consumer,
        query,
        http,
    })
}

fn event(session: &str, name: &str, ts: &str, value: Option<f64>) -> Value {
    let mut data = json!({"host": "example.com", "path": "/"});
    if name == "cta_click" {
        data["element"] = json!("buy");
    }
    let mut ev = json!({"session_id": session, "category": "page_interaction", "name": name,
                        "data": data, "timestamp": ts});
    if let Some(v) = value {
        ev["value"] = json!(v);
    }
    ev
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_answer_matches_the_document() -> anyhow::Result<()> {
    let id = unique("oa");
    let clients = Clients::write(&id)?;
    let stack = start_stack(&clients.auth).await?;
    // No default credential: each request says what it sends. Redirects are answers to
    // check, not to follow.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let c = Contract::new(http)?;
    let (ingest, query) = (&stack.ingest, &stack.query);

    // Dependencies that do not answer, and an ingest whose body limit is small.
    let mut dead_kafka = kafka_config(&format!("eye.test.{id}"));
    dead_kafka.brokers = CLOSED.into();
    dead_kafka.message_timeout_ms = 1_000;
    let mut dead_clickhouse = clickhouse_config(&format!("eye_test_{id}"));
    dead_clickhouse.url = format!("http://{CLOSED}");
    let dead_ingest = eye_e2e::start_ingest_replaying_authed(
        ingest_config(&[("MAX_BODY_BYTES", "1000")]),
        dead_kafka,
        clients.auth.clone(),
        dead_clickhouse.clone(),
    )
    .await?;
    // Its schema and explorer directories are missing too, its ingest does not answer and
    // it has no consumer to read.
    let missing = clients.dir.join("missing");
    let missing = missing.to_str().context("temp dir is UTF-8")?;
    let dead_ingest_metrics = format!("http://{CLOSED}/metrics");
    let dead_settings = query_config(&[
        ("SCHEMA_DIR", missing),
        ("UI_DIR", missing),
        ("INGEST_METRICS_URL", &dead_ingest_metrics),
    ]);
    let dead_query = start_query_with(dead_settings, dead_clickhouse, clients.auth.clone()).await?;

    // The document itself, as both services serve it.
    for svc in [ingest, query] {
        let ans = c
            .expect(Req::get(svc, "/openapi.json").anonymous(), 200, None)
            .await?;
        ensure!(ans.text == DOCUMENT, "{} serves another document", svc.name);
    }

    // ---- ingest
    let session = format!("{id}-s1");
    let (user, machine) = (format!("user {id}/1"), format!("machine-{id}"));
    let start = json!({"session_id": session, "user_id": user, "machine_id": machine,
                       "org_id": 7, "started_at": "2024-03-01 09:59:00"});
    c.expect(Req::post(ingest, "/v1/sessions", start.clone()), 202, None)
        .await?;
    // A second session of the same user, without events, and with a server-chosen id.
    let second = json!({"user_id": user, "machine_id": machine, "org_id": "org",
                        "started_at": "2024-03-02T08:00:00Z"});
    c.expect(Req::post(ingest, "/v1/sessions", second), 202, None)
        .await?;
    let end = |s: &str, body: Value| {
        Req::post(ingest, "/v1/sessions/{session_id}/end", body).path("session_id", s)
    };
    c.expect(
        end(&session, json!({"ended_at": "2024-03-01 12:00:00"})),
        202,
        None,
    )
    .await?;
    // A session with an end and nothing else: every lifecycle field but one is null.
    let ended_only = format!("{id}-s2");
    c.expect(end(&ended_only, json!({"ended_at": 1709290800})), 202, None)
        .await?;

    let mut first = event(&session, "page_view", "2024-03-01T10:00:01Z", Some(1.0));
    first["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    let mut skewed = event(&session, "page_view", "2024-03-01 10:00:02", Some(2.0));
    skewed["sent_at"] = json!("2024-03-01 10:00:03");
    let batch = json!([
        first,
        skewed,
        event(&session, "cta_click", "2024-03-01 10:30:00", None)
    ]);
    c.expect(Req::post(ingest, "/v1/events", batch), 202, None)
        .await?;
    let one = event(&session, "page_view", "2024-03-01 11:00:00", Some(4.0));
    c.expect(Req::post(ingest, "/v1/events", one).gzip()?, 202, None)
        .await?;
    let mixed = json!([
        event(&session, "page_view", "2024-03-01 11:30:00", None),
        event(&session, "page_view", "26/09/2021", None)
    ]);
    c.expect(Req::post(ingest, "/v1/events", mixed), 207, None)
        .await?;
    let all_bad = json!([event(&session, "page_view", "never", None), {"session_id": session}]);
    c.expect(
        Req::post(ingest, "/v1/events", all_bad),
        400,
        Some("invalid_events"),
    )
    .await?;
    // An event naming a Segment userId and anonymousId in its data, in a session of its own.
    let actor = format!("{id}-actor");
    let mut named = event(
        &format!("{id}-s4"),
        "page_view",
        "2024-02-01 00:00:00",
        None,
    );
    named["data"]["userId"] = json!(actor);
    named["data"]["anonymousId"] = json!(format!("{id}-anon"));
    c.expect(Req::post(ingest, "/v1/events", named), 202, None)
        .await?;
    let malformed = Req::post(ingest, "/v1/events", json!(null)).raw(r#"{"session_id": "s",}"#);
    c.expect(malformed, 400, Some("malformed_json")).await?;
    let plain = Req::post(ingest, "/v1/events", json!({})).header("content-type", "text/plain");
    c.expect(plain, 415, Some("unsupported_media_type")).await?;
    let brotli = Req::post(ingest, "/v1/events", json!({})).header("content-encoding", "br");
    c.expect(brotli, 415, Some("unsupported_encoding")).await?;
    let too_big = Req::post(&dead_ingest, "/v1/events", json!(null)).raw(vec![b' '; 2_000]);
    c.expect(too_big, 413, Some("payload_too_large")).await?;
    let valid = event(&session, "page_view", "2024-03-01 11:00:00", None);
    let unacknowledged = Req::post(&dead_ingest, "/v1/events", valid);
    let ans = c
        .expect(unacknowledged, 503, Some("broker_unavailable"))
        .await?;
    ensure!(ans.headers.contains_key("retry-after"));

    // Segment's routes, each with every answer it documents; the write key by Basic. Their
    // messages go to a session of their own, so the /v1 session keeps its five events.
    let segment_user = format!("{session}-segment");
    for (route, kind) in SEGMENT_ROUTES {
        let message = |user: Value| {
            let mut m = json!({"userId": user, "event": "Order Completed", "name": "Home",
                "properties": {"order_id": "o-1", "revenue": 3}});
            if kind == "batch" {
                m["type"] = json!("track");
                json!({"batch": [m], "sentAt": "2024-03-01T11:00:00Z"})
            } else {
                m
            }
        };
        let segment = clients.segment.clone();
        let ok = Req::post(ingest, route, message(json!(&segment_user))).cred(segment.clone());
        let ans = c.expect(ok, 200, None).await?;
        ensure!(ans.body["success"] == true, "{route}: {}", ans.text);
        let bad = Req::post(ingest, route, message(Value::Null)).cred(segment.clone());
        c.expect(bad, 400, Some("invalid_messages")).await?;
        let nobody = Req::post(ingest, route, message(json!(&segment_user))).anonymous();
        c.expect(nobody, 401, Some("unauthenticated")).await?;
        let plain = Req::post(ingest, route, json!({})).header("content-type", "text/plain");
        c.expect(plain, 415, Some("unsupported_media_type")).await?;
        let too_big = Req::post(&dead_ingest, route, json!(null)).raw(vec![b' '; 2_000]);
        c.expect(too_big, 413, Some("payload_too_large")).await?;
        let unacknowledged = Req::post(&dead_ingest, route, message(json!(&segment_user)));
        let ans = c
            .expect(
                unacknowledged.cred(segment),
                503,
                Some("broker_unavailable"),
            )
            .await?;
        ensure!(ans.headers.contains_key("retry-after"), "{route}");
    }

    c.expect(
        Req::post(ingest, "/v1/sessions", json!({"user_id": "u"})),
        400,
        Some("invalid_session"),
    )
    .await?;
    c.expect(
        Req::post(ingest, "/v1/sessions", start.clone()).header("content-type", "text/plain"),
        415,
        None,
    )
    .await?;
    let padded = |r: Req| r.raw(vec![b' '; 2_000]);
    c.expect(
        padded(Req::post(&dead_ingest, "/v1/sessions", json!(null))),
        413,
        None,
    )
    .await?;
    c.expect(
        Req::post(&dead_ingest, "/v1/sessions", start),
        503,
        Some("broker_unavailable"),
    )
    .await?;
    c.expect(
        end("\n", json!({"ended_at": "2024-03-01 12:00:00"})),
        400,
        Some("invalid_session_id"),
    )
    .await?;
    c.expect(end(&session, json!({})), 400, Some("invalid_session"))
        .await?;
    c.expect(
        end(&session, json!({})).header("content-encoding", "br"),
        415,
        None,
    )
    .await?;
    let dead_end = |body: Value| {
        Req::post(&dead_ingest, "/v1/sessions/{session_id}/end", body).path("session_id", "s")
    };
    c.expect(padded(dead_end(json!(null))), 413, None).await?;
    c.expect(
        dead_end(json!({"ended_at": "2024-03-01 12:00:00"})),
        503,
        None,
    )
    .await?;

    // ---- query: wait until the consumer stored everything, then read it every way.
    let session_events =
        || Req::get(query, "/v1/sessions/{session_id}/events").path("session_id", &session);
    c.poll(session_events(), |a| {
        a.status == 200
            && a.body["events"].as_array().map(Vec::len) == Some(5)
            && a.body["session"]["ended_at"].is_string()
    })
    .await?;
    c.expect(
        session_events().query("limit", "0"),
        400,
        Some("invalid_parameter"),
    )
    .await?;
    let nobody = format!("{id}-nobody");
    c.expect(
        Req::get(query, "/v1/sessions/{session_id}/events").path("session_id", &nobody),
        404,
        Some("session_not_found"),
    )
    .await?;
    c.poll(
        Req::get(query, "/v1/sessions/{session_id}/events").path("session_id", &ended_only),
        |a| a.status == 200,
    )
    .await?;

    let detail = || Req::get(query, "/v1/sessions/{session_id}").path("session_id", &session);
    let page = c.expect(detail().query("limit", "2"), 200, None).await?;
    let cursor = page.body["next_cursor"]
        .as_str()
        .context("a full page has a next_cursor")?
        .to_owned();
    c.expect(
        detail().query("limit", "2").query("cursor", cursor),
        200,
        None,
    )
    .await?;
    c.expect(detail().query("cursor", "nope"), 400, None)
        .await?;
    c.expect(
        Req::get(query, "/v1/sessions/{session_id}").path("session_id", &nobody),
        404,
        None,
    )
    .await?;
    c.expect(
        Req::get(query, "/v1/sessions/{session_id}").path("session_id", &ended_only),
        200,
        None,
    )
    .await?;

    let events = || Req::get(query, "/v1/events");
    c.expect(
        events()
            .query("session_id", &session)
            .query("category", "page_interaction")
            .query("name", "page_view")
            .query("from", "2024-03-01T00:00:00Z")
            .query("to", "1709337600")
            .query("order", "desc")
            .query("limit", "2"),
        200,
        None,
    )
    .await?;
    c.expect(events().query("order", "up"), 400, None).await?;

    // The export: both media types, every filter, a resumed walk, and a refused format.
    let export = || Req::get(query, "/v1/export");
    let filtered = || {
        export()
            .query("session_id", &session)
            .query("category", "page_interaction")
            .query("name", "page_view")
            .query("from", "2024-03-01T00:00:00Z")
            .query("to", "1709337600")
            .query("order", "desc")
    };
    let whole = c
        .expect(filtered().query("format", "ndjson"), 200, None)
        .await?;
    let rows: Vec<Value> = whole
        .text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(!rows.is_empty(), "the export of {session} is empty");
    for row in &rows {
        c.check_value("/components/schemas/ExportRow", row, "an export line")?;
    }
    // Resumed after its first row: the others.
    let first = rows[0]["cursor"].as_str().unwrap_or_default();
    let resumed = c
        .expect(filtered().query("cursor", first), 200, None)
        .await?;
    let rest: Vec<&str> = whole.text.lines().skip(1).collect();
    ensure!(
        resumed.text.lines().collect::<Vec<_>>() == rest,
        "{}",
        resumed.text
    );
    let csv = c
        .expect(
            export()
                .query("format", "csv")
                .query("session_id", &session),
            200,
            None,
        )
        .await?;
    ensure!(
        csv.text.starts_with("event_id,session_id,category,name,") && csv.text.ends_with("\r\n"),
        "{}",
        csv.text
    );
    c.expect(export().query("format", "parquet"), 400, None)
        .await?;
    c.expect(export().query("limit", "10"), 400, None).await?;

    let machine_events =
        || Req::get(query, "/v1/machines/{machine_id}/events").path("machine_id", &machine);
    c.expect(machine_events().query("limit", "3"), 200, None)
        .await?;
    c.expect(machine_events().query("limit", "0"), 400, None)
        .await?;

    let user_sessions = || Req::get(query, "/v1/users/{user_id}/sessions").path("user_id", &user);
    let page = c
        .poll(user_sessions().query("limit", "1"), |a| {
            a.body["next_cursor"].is_string()
        })
        .await?;
    let cursor = page.body["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    c.expect(
        user_sessions().query("limit", "1").query("cursor", cursor),
        200,
        None,
    )
    .await?;
    c.expect(user_sessions().query("cursor", "zz"), 400, None)
        .await?;

    let identity = || Req::get(query, "/v1/identities/{user_id}").path("user_id", &actor);
    c.poll(identity(), |a| a.status == 200).await?;
    c.expect(identity().query("limit", "1"), 400, None).await?;
    let identity_events =
        || Req::get(query, "/v1/identities/{user_id}/events").path("user_id", &actor);
    c.expect(
        identity_events().query("order", "desc").query("limit", "1"),
        200,
        None,
    )
    .await?;
    c.expect(identity_events().query("limit", "0"), 400, None)
        .await?;
    for template in [
        "/v1/identities/{user_id}",
        "/v1/identities/{user_id}/events",
    ] {
        c.expect(
            Req::get(query, template).path("user_id", &nobody),
            404,
            Some("identity_not_found"),
        )
        .await?;
    }

    // Deletions, of subjects nothing else here reads: accepted, then shown until done.
    let gone = |what: &str| format!("{id}-gone-{what}");
    let deletes = [
        ("/v1/users/{user_id}", "user_id", gone("user")),
        ("/v1/sessions/{session_id}", "session_id", gone("session")),
        ("/v1/machines/{machine_id}", "machine_id", gone("machine")),
    ];
    let delete_subject = |(template, param, value): &(&'static str, &'static str, String)| {
        Req::delete(query, template).path(param, value)
    };
    let mut deletion_ids = Vec::new();
    for d in &deletes {
        let ans = c.expect(delete_subject(d), 202, None).await?;
        deletion_ids.push(
            ans.body["deletion_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        c.expect(delete_subject(d).query("now", "1"), 400, None)
            .await?;
    }
    c.expect(
        Req::delete(query, "/v1/users/{user_id}").path("user_id", "a\u{7}b"),
        400,
        None,
    )
    .await?;
    let deletion = |deletion_id: &str| {
        Req::get(query, "/v1/deletions/{deletion_id}").path("deletion_id", deletion_id)
    };
    for deletion_id in &deletion_ids {
        c.poll(deletion(deletion_id), |a| a.body["status"] == "done")
            .await?;
    }
    c.expect(deletion("not-a-uuid"), 400, None).await?;
    c.expect(
        deletion(&uuid::Uuid::now_v7().to_string()),
        404,
        Some("deletion_not_found"),
    )
    .await?;

    let aggregate = || {
        Req::get(query, "/v1/aggregate")
            .query("category", "page_interaction")
            .query("name", "page_view")
    };
    let ans = c
        .expect(
            aggregate()
                .query("granularity", "hour")
                .query("agg", "avg")
                .query("tz", "Europe/Paris")
                .query("fill", "null")
                .query("from", "2024-03-01T09:00:00Z")
                .query("to", "2024-03-01T13:00:00Z"),
            200,
            None,
        )
        .await?;
    ensure!(
        ans.body["buckets"]
            .as_array()
            .is_some_and(|b| b.iter().any(|x| x["value"].is_null())),
        "fill=null shows empty buckets: {}",
        ans.text
    );
    c.expect(aggregate().query("agg", "count"), 200, None)
        .await?;
    c.expect(aggregate().query("granularity", "fortnight"), 400, None)
        .await?;

    c.expect(Req::get(query, "/v1/categories"), 200, None)
        .await?;
    c.expect(
        Req::get(query, "/v1/categories").query("limit", "0"),
        400,
        None,
    )
    .await?;

    // The schema directory, as ingest reads it; the reader scope is enough.
    let ans = c
        .expect(
            Req::get(query, "/v1/schemas").cred(clients.reader.clone()),
            200,
            None,
        )
        .await?;
    let shipped = eye_model::schema::documents(std::path::Path::new(SCHEMA_DIR))?;
    ensure!(
        ans.body["schemas"].as_array().map(Vec::len) == Some(shipped.len()) && !shipped.is_empty(),
        "{} schemas shipped: {}",
        shipped.len(),
        ans.text
    );
    c.expect(
        Req::get(query, "/v1/schemas").query("category", "page_interaction"),
        400,
        Some("invalid_parameter"),
    )
    .await?;
    c.expect(
        Req::get(&dead_query, "/v1/schemas"),
        503,
        Some("schemas_unavailable"),
    )
    .await?;

    // The pipeline's counters: this stack's ingest and consumer answer; the dead query
    // service's ingest does not, and it has no consumer configured.
    let ans = c
        .expect(
            Req::get(query, "/v1/pipeline").cred(clients.reader.clone()),
            200,
            None,
        )
        .await?;
    ensure!(
        ans.body["ingest"]["up"] == true
            && ans.body["consumer"]["up"] == true
            && ans.body["ingest"]["url"] == stack.ingest.url("/metrics")
            && ans.body["consumer"]["url"] == stack.consumer.url("/metrics"),
        "{}",
        ans.text
    );
    let ans = c
        .expect(Req::get(&dead_query, "/v1/pipeline"), 200, None)
        .await?;
    ensure!(
        ans.body["ingest"]["up"] == false
            && ans.body["ingest"]["error"].is_string()
            && ans.body["consumer"].is_null(),
        "{}",
        ans.text
    );
    c.expect(
        Req::get(query, "/v1/pipeline").query("limit", "1"),
        400,
        Some("invalid_parameter"),
    )
    .await?;

    let rejected = || Req::get(query, "/v1/rejected");
    // 1 from the 207, 2 from the 400, the malformed body whole, and one invalid message per
    // Segment route. All of them are stored before paging: one stored late could sort before
    // the first page's cursor.
    let stored = 4 + SEGMENT_ROUTES.len();
    c.poll(rejected(), |a| {
        a.body["rejected"].as_array().map(Vec::len) == Some(stored)
    })
    .await?;
    let first_page = (stored - 1).to_string();
    let page = c
        .expect(rejected().query("limit", &first_page), 200, None)
        .await?;
    let cursor = page.body["next_cursor"]
        .as_str()
        .context("a full page has a next_cursor")?
        .to_owned();
    let last = c
        .expect(
            rejected()
                .query("limit", &first_page)
                .query("cursor", cursor),
            200,
            None,
        )
        .await?;
    ensure!(
        last.body["rejected"].as_array().map(Vec::len) == Some(1),
        "{}",
        last.text
    );
    c.expect(
        rejected()
            .query("reason", "invalid_timestamp")
            .query("from", "2020-01-01 00:00:00")
            .query("to", "2100-01-01T00:00:00Z"),
        200,
        None,
    )
    .await?;
    c.expect(rejected().query("reason", "Bad"), 400, None)
        .await?;

    // The replay of the quarantine: a dry run of all of it, then a replay of the malformed
    // body alone (it still fails, so nothing is produced, and its outcome is listed).
    let replay = |body: Value| Req::post(ingest, "/v1/rejected/replay", body);
    let lines = |text: &str| -> anyhow::Result<Vec<Value>> {
        Ok(text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?)
    };
    let dry = c
        .expect(replay(json!({"dry_run": true})), 200, None)
        .await?;
    let done = c
        .expect(replay(json!({"reason": "malformed_json"})), 200, None)
        .await?;
    for line in lines(&dry.text)?.iter().chain(&lines(&done.text)?) {
        c.check_value("/components/schemas/ReplayLine", line, "a replay line")?;
    }
    let judged = lines(&done.text)?
        .last()
        .and_then(|l| l["counts"]["rejected"].as_u64())
        .unwrap_or(0);
    ensure!(judged >= 1, "{}", done.text);
    let outcome = c
        .expect(rejected().query("reason", "malformed_json"), 200, None)
        .await?;
    let listed = outcome.body["rejected"].as_array().context("a page")?;
    ensure!(
        listed.len() as u64 == judged && listed.iter().all(|r| r["replay"]["result"] == "rejected"),
        "{}",
        outcome.text
    );
    c.expect(
        replay(json!({"from": "yesterday"})),
        400,
        Some("invalid_replay"),
    )
    .await?;
    c.expect(
        replay(json!({"dry_run": true})).anonymous(),
        401,
        Some("unauthenticated"),
    )
    .await?;
    c.expect(
        replay(json!({"dry_run": true})).cred(clients.writer.clone()),
        403,
        Some("insufficient_scope"),
    )
    .await?;
    let mut throttled = None;
    for _ in 0..5 {
        let req = replay(json!({"dry_run": true})).cred(clients.throttled.clone());
        let ans = c.send(&req).await?;
        if ans.status == 429 {
            throttled = Some(ans);
            break;
        }
    }
    let ans = throttled.context("the replay was never throttled")?;
    ensure!(ans.body["error"]["code"] == "rate_limited", "{}", ans.text);
    c.expect(
        Req::post(
            &dead_ingest,
            "/v1/rejected/replay",
            json!({"dry_run": true}),
        ),
        503,
        Some("clickhouse_unavailable"),
    )
    .await?;

    // ---- the seeds' read APIs, on the same events.
    let tracker_session = |body: Value| Req::post(query, "/get_session", body);
    c.expect(tracker_session(json!({"sessionId": session})), 200, None)
        .await?;
    c.expect(
        tracker_session(json!({"sessionId": nobody})),
        404,
        Some("session_not_found"),
    )
    .await?;
    c.expect(tracker_session(json!({})), 400, Some("invalid_parameter"))
        .await?;
    c.expect(
        tracker_session(json!(null)).raw(r#"{"sessionId": "s",}"#),
        400,
        Some("malformed_json"),
    )
    .await?;
    let tracker_machine = |body: Value| Req::post(query, "/get_machine_events", body);
    c.expect(tracker_machine(json!({"machineId": machine})), 200, None)
        .await?;
    c.expect(tracker_machine(json!({"machineId": []})), 400, None)
        .await?;
    let pages = || Req::get(query, "/events");
    c.expect(
        pages()
            .query("session_id", &session)
            .query("category", "page_interaction")
            .query("start_time", "2024-03-01")
            .query("end_time", "2024-03-01 23:59:59.999999")
            .query("page", "1"),
        200,
        None,
    )
    .await?;
    let mut ranged = pages().header("content-type", "application/json");
    let range = json!({"start_time": "2024-03-01T10:00:00", "end_time": "2024-03-01"});
    ranged.body = Some(range.to_string().into_bytes());
    ranged.json = Some(range);
    c.expect(ranged, 200, None).await?;
    // The session has fewer than 10 events, so one page: its second is past the last.
    c.expect(
        pages().query("session_id", &session).query("page", "2"),
        404,
        Some("invalid_page"),
    )
    .await?;
    c.expect(pages().query("page", "0"), 400, None).await?;
    let measurements = || {
        Req::get(query, "/api/events/{namespace}/{name}")
            .path("namespace", "page_interaction")
            .path("name", "page_view")
    };
    c.expect(
        measurements()
            .query("tsMin", "1709251200")
            .query("tsMax", "1709337600.5")
            .query("granularity", "hour")
            .query("aggregationType", "max"),
        200,
        None,
    )
    .await?;
    c.expect(measurements().query("granularity", "fortnight"), 400, None)
        .await?;
    let collector = [
        Req::get(query, "/eye/event").query("session_id", &session),
        Req::get(query, "/eye/category-events")
            .query("category", "page_interaction")
            .query("session_id", &session),
        Req::get(query, "/eye/range-events")
            .query("start_time", "2024-03-01")
            .query("end_time", "2024-03-01T23:59:59Z"),
        Req::get(query, "/eye/invalid-time").query("session_id", &session),
    ];
    for req in &collector {
        let ans = c.expect(req.clone(), 200, None).await?;
        ensure!(
            ans.body.as_array().is_some_and(|a| !a.is_empty()),
            "{}: {}",
            req.label(),
            ans.text
        );
        c.expect(req.clone().query("limit", "1"), 400, None).await?;
    }

    // The store does not answer: every read says so, with Retry-After.
    let dq = &dead_query;
    for req in [
        Req::get(dq, "/v1/sessions/{session_id}/events").path("session_id", "s"),
        Req::get(dq, "/v1/sessions/{session_id}").path("session_id", "s"),
        Req::get(dq, "/v1/events"),
        Req::get(dq, "/v1/export"),
        Req::get(dq, "/v1/machines/{machine_id}/events").path("machine_id", "m"),
        Req::get(dq, "/v1/users/{user_id}/sessions").path("user_id", "u"),
        Req::get(dq, "/v1/identities/{user_id}").path("user_id", "u"),
        Req::get(dq, "/v1/identities/{user_id}/events").path("user_id", "u"),
        Req::get(dq, "/v1/aggregate")
            .query("category", "c")
            .query("name", "n"),
        Req::get(dq, "/v1/categories"),
        Req::get(dq, "/v1/rejected"),
        Req::post(dq, "/get_session", json!({"sessionId": "s"})),
        Req::post(dq, "/get_machine_events", json!({"machineId": "m"})),
        Req::get(dq, "/events"),
        Req::get(dq, "/api/events/{namespace}/{name}")
            .path("namespace", "n")
            .path("name", "e"),
        Req::get(dq, "/eye/event").query("session_id", "s"),
        Req::get(dq, "/eye/category-events").query("category", "c"),
        Req::get(dq, "/eye/range-events")
            .query("start_time", "2024-03-01")
            .query("end_time", "2024-03-02"),
        Req::get(dq, "/eye/invalid-time"),
        Req::delete(dq, "/v1/users/{user_id}").path("user_id", "u"),
        Req::delete(dq, "/v1/sessions/{session_id}").path("session_id", "s"),
        Req::delete(dq, "/v1/machines/{machine_id}").path("machine_id", "m"),
        Req::get(dq, "/v1/deletions/{deletion_id}").path("deletion_id", &deletion_ids[0]),
    ] {
        c.expect(req, 503, Some("store_unavailable")).await?;
    }

    seed_doors(&c, &dead_ingest, &clients, &id).await?;

    // ---- credentials, on every API operation: none, a wrong one, one without the scope,
    // and a client over its request budget. Last, so that what they write changes no count
    // above.
    let h = test_auth();
    let basic = Cred::Basic(h.client_id.clone(), h.client_secret.clone());
    let s3 = format!("{id}-s3");
    let api = [
        Req::post(
            ingest,
            "/v1/events",
            event(&s3, "page_view", "2024-03-01 11:45:00", None),
        ),
        Req::post(
            ingest,
            "/v1/sessions",
            json!({"session_id": s3, "user_id": "u", "machine_id": "m", "org_id": 1,
                   "started_at": "2024-03-01 09:00:00"}),
        ),
        end(&s3, json!({"ended_at": "2024-03-01 12:00:00"})),
        session_events(),
        detail(),
        events(),
        export(),
        machine_events(),
        user_sessions(),
        identity(),
        identity_events(),
        aggregate(),
        Req::get(query, "/v1/categories"),
        rejected(),
        Req::get(query, "/v1/schemas"),
        Req::get(query, "/v1/pipeline"),
        tracker_session(json!({"sessionId": session})),
        tracker_machine(json!({"machineId": machine})),
        pages(),
        measurements(),
        delete_subject(&deletes[0]),
        delete_subject(&deletes[1]),
        delete_subject(&deletes[2]),
        deletion(&deletion_ids[0]),
    ];
    let api: Vec<Req> = api
        .into_iter()
        .chain(seed_requests(ingest, &s3))
        .chain(collector)
        .collect();
    let wrong = Cred::Bearer("eye_0000000000000000.00".into(), Vec::new());
    for req in &api {
        c.expect(req.clone().anonymous(), 401, Some("unauthenticated"))
            .await?;
        c.expect(
            req.clone().cred(wrong.clone()),
            401,
            Some("invalid_credentials"),
        )
        .await?;
        // A Basic credential is no bearer credential, even the client's own.
        c.expect(
            req.clone().cred(basic.clone()),
            401,
            Some("invalid_credentials"),
        )
        .await?;
        let narrow = if req.service == "ingest" {
            &clients.reader
        } else {
            &clients.writer
        };
        c.expect(
            req.clone().cred(narrow.clone()),
            403,
            Some("insufficient_scope"),
        )
        .await?;
        // One request a second gets through; the next within that second is refused.
        let mut refused = None;
        for _ in 0..5 {
            let ans = c.send(&req.clone().cred(clients.throttled.clone())).await?;
            if ans.status == 429 {
                refused = Some(ans);
                break;
            }
        }
        let ans = refused.with_context(|| format!("{}: never throttled", req.label()))?;
        ensure!(ans.body["error"]["code"] == "rate_limited", "{}", ans.text);
    }
    // The event budget (burst 1): two events at once can never pass (413); one spends the
    // bucket, and the next one, right after, must wait (429).
    let two = json!([
        event(&s3, "page_view", "2024-03-01 11:46:00", None),
        event(&s3, "page_view", "2024-03-01 11:47:00", None)
    ]);
    c.expect(
        Req::post(ingest, "/v1/events", two).cred(clients.stingy.clone()),
        413,
        Some("batch_exceeds_event_burst"),
    )
    .await?;
    for (at, status, code) in [
        ("2024-03-01 11:48:00", 202, None),
        ("2024-03-01 11:49:00", 429, Some("rate_limited")),
    ] {
        let one = json!([event(&s3, "page_view", at, None)]);
        c.expect(
            Req::post(ingest, "/v1/events", one).cred(clients.stingy.clone()),
            status,
            code,
        )
        .await?;
    }

    // ---- the token endpoint, on both services.
    let grant = ("grant_type", "client_credentials");
    let token = |svc: &Service, fields: &[(&'static str, &str)]| {
        Req::form(svc, "/oauth/token", fields).cred(basic.clone())
    };
    for svc in [ingest, query] {
        let ans = c.expect(token(svc, &[grant]), 200, None).await?;
        // The token is a credential for its scopes, on either service.
        let as_cred = |ans: &Answer| -> anyhow::Result<Cred> {
            let scopes = ans.body["scope"]
                .as_str()
                .context("scope")?
                .split(' ')
                .filter_map(Scope::parse)
                .map(Scope::as_str)
                .collect();
            let token = ans.body["access_token"].as_str().context("access_token")?;
            Ok(Cred::Bearer(token.to_owned(), scopes))
        };
        c.expect(
            Req::get(query, "/v1/categories").cred(as_cred(&ans)?),
            200,
            None,
        )
        .await?;
        // Credentials in the body, a scope by its short OAuth2 name: events:read, so no aggregate.
        let in_body = Req::form(
            svc,
            "/oauth/token",
            &[
                grant,
                ("client_id", &h.client_id),
                ("client_secret", &h.client_secret),
                ("scope", "read"),
            ],
        )
        .anonymous();
        let ans = c.expect(in_body, 200, None).await?;
        let reader = as_cred(&ans)?;
        c.expect(events().cred(reader.clone()), 200, None).await?;
        c.expect(aggregate().cred(reader), 403, Some("insufficient_scope"))
            .await?;
        for (fields, code) in [
            (&[("grant_type", "password")][..], "unsupported_grant_type"),
            (&[("scope", "read")][..], "invalid_request"),
            (&[grant, ("scope", "root")][..], "invalid_scope"),
        ] {
            let ans = c.expect(token(svc, fields), 400, None).await?;
            ensure!(ans.body["error"] == code, "{}", ans.text);
        }
        let wrong_secret = token(svc, &[grant]).cred(Cred::Basic(h.client_id.clone(), "x".into()));
        let ans = c.expect(wrong_secret, 401, None).await?;
        ensure!(ans.body["error"] == "invalid_client", "{}", ans.text);
        // No body at all, so no Content-Length.
        c.expect(
            Req::new(svc, "post", "/oauth/token").cred(basic.clone()),
            411,
            Some("length_required"),
        )
        .await?;
        let big = "x".repeat(17 * 1024);
        c.expect(
            token(svc, &[grant, ("scope", &big)]),
            413,
            Some("payload_too_large"),
        )
        .await?;
    }

    // ---- operations, on every service that serves them, without credentials.
    for svc in [ingest, query, &stack.consumer] {
        c.expect(Req::get(svc, "/healthz").anonymous(), 200, None)
            .await?;
        c.expect(Req::get(svc, "/readyz").anonymous(), 200, None)
            .await?;
        let metrics = c
            .expect(Req::get(svc, "/metrics").anonymous(), 200, None)
            .await?;
        ensure!(metrics.text.contains("eye_http_requests_total"));
    }
    for svc in [&dead_ingest, &dead_query] {
        c.expect(Req::get(svc, "/readyz").anonymous(), 503, Some("not_ready"))
            .await?;
    }

    // The explorer: its page and files, without credentials; from the binary, or from a
    // directory that is missing (the dead query service's).
    c.expect(Req::get(query, "/ui").anonymous(), 308, None)
        .await?;
    let page = c
        .expect(Req::get(query, "/ui/").anonymous(), 200, None)
        .await?;
    ensure!(page.media == "text/html", "{}", page.media);
    let file = |name: &str| Req::get(query, "/ui/{file}").path("file", name).anonymous();
    for (name, media) in [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("index.html", "text/html"),
    ] {
        let ans = c.expect(file(name), 200, None).await?;
        ensure!(ans.media == media, "/ui/{name}: {}", ans.media);
    }
    c.expect(file("events"), 404, Some("not_found")).await?;
    c.expect(
        Req::get(&dead_query, "/ui/").anonymous(),
        404,
        Some("not_found"),
    )
    .await?;
    c.expect(
        Req::get(&dead_query, "/ui/{file}")
            .path("file", "app.js")
            .anonymous(),
        404,
        Some("not_found"),
    )
    .await?;

    // Outside every operation, still the one error shape.
    c.off_document(Req::get(ingest, "/nope"), 404, "not_found")
        .await?;
    c.off_document(
        Req::new(query, "post", "/v1/events"),
        405,
        "method_not_allowed",
    )
    .await?;

    let answers = c.coverage()?;
    println!("checked all {answers} documented answers");
    dead_ingest.stop().await?;
    dead_query.stop().await?;
    stack.stop().await?;
    std::fs::remove_dir_all(&clients.dir).ok();
    Ok(())
}

/// One request to each seed door that the harness's stack (unknown types refused) answers
/// with a documented status, for the credential checks.
fn seed_requests(ingest: &Service, session: &str) -> Vec<Req> {
    let typed = json!({"session_id": session, "category": "page_interaction", "name": "page_view",
                       "data": {"host": "example.com", "path": "/"}, "timestamp": "2024-03-01 11:50:00"});
    vec![
        Req::post(
            ingest,
            "/start_session",
            json!({"sessionId": session, "userId": "u", "machineId": "m", "orgId": 1,
                   "startAt": "2024-03-01 09:00:00"}),
        ),
        Req::post(
            ingest,
            "/add_event",
            json!({"sessionId": session, "events": [{"eventAt": 1709290800, "eventType": "cpu_load",
                   "payload": {"machine_id": "m", "unit": "percent"}}]}),
        ),
        Req::post(
            ingest,
            "/end_session",
            json!({"sessionId": session, "endAt": "2024-03-01 12:00:00"}),
        ),
        Req::post(ingest, "/events", typed.clone()),
        Req::post(ingest, "/eye/collector", typed),
        Req::post(
            ingest,
            "/api/track/",
            json!({"namespace": "machine", "name": "cpu_load", "timestamp": 1709290800, "value": 1}),
        ),
    ]
}

/// Every answer of the seed doors but the credential refusals: on an ingest of their own
/// that takes unknown types (its topics read by nobody, so nothing here changes what the
/// query service answers), and on the ingest whose broker is closed.
async fn seed_doors(
    c: &Contract,
    dead_ingest: &Service,
    clients: &Clients,
    id: &str,
) -> anyhow::Result<()> {
    let kafka = kafka_config(&format!("eye.test.{id}.seeds"));
    create_topics(&kafka).await?;
    let ingest = &start_ingest_authed(
        ingest_config(&[("UNKNOWN_TYPE_POLICY", "accept")]),
        kafka,
        clients.auth.clone(),
    )
    .await?;
    wait_ready(&[ingest]).await?;
    let session = format!("{id}-seed");
    let start = json!({"userId": "asfla-asdf-asdfa", "machineId": "2343-asdf-fads",
                       "startAt": "2023-02-02 16:22:15", "orgId": 11232});
    let add = json!({"sessionId": session, "events": [{"eventAt": "2023-02-02 16:22:15",
                     "eventType": "applicationStarted", "payload": {"info": "someInfo"}}]});
    let end = json!({"sessionId": session, "endAt": "2023-02-09 02:00:00"});
    let one = json!({"session_id": session, "category": "form interaction", "name": "submit",
                     "data": {"host": "www.consumeraffairs.com", "path": "/"},
                     "timestamp": "2022-01-09 09:15:27.243860"});
    let measurement = json!({"namespace": "this is namespace", "name": "this is a name",
                             "timestamp": "2020-11-12T11:10:00", "value": 1});
    // (path, a body answered with success, its status, a body refused by the door's rules)
    let doors = [
        (
            "/start_session",
            start.clone(),
            200,
            json!({"userId": "u", "machineId": "m", "startAt": "timestamp", "orgId": 1}),
        ),
        (
            "/add_event",
            add,
            200,
            json!({"sessionId": session, "events": [{"eventAt": "timestamp", "eventType": "x", "payload": {}}]}),
        ),
        (
            "/end_session",
            end,
            200,
            json!({"sessionId": session, "endAt": "timestamp"}),
        ),
        (
            "/events",
            one.clone(),
            201,
            json!({"session_id": session, "category": "party", "name": "AppName", "data": {}, "timestamp": "never"}),
        ),
        (
            "/eye/collector",
            one,
            201,
            json!({"session_id": session, "category": "form interaction", "name": "submit", "data": {}, "timestamp": "2999-01-01 00:00:00"}),
        ),
        (
            "/api/track/",
            measurement,
            201,
            json!({"namespace": "n", "name": "m", "timestamp": "2020-11-12T11:10:00"}),
        ),
    ];
    for (path, good, status, bad) in doors {
        c.expect(Req::post(ingest, path, good.clone()), status, None)
            .await?;
        c.expect(Req::post(ingest, path, bad), 400, None).await?;
        let malformed = Req::post(ingest, path, json!(null)).raw(r#"{"a": 1,}"#);
        c.expect(malformed, 400, Some("malformed_json")).await?;
        let plain = Req::post(ingest, path, good.clone()).header("content-type", "text/plain");
        c.expect(plain, 415, Some("unsupported_media_type")).await?;
        let too_big = Req::post(dead_ingest, path, json!(null)).raw(vec![b' '; 2_000]);
        c.expect(too_big, 413, Some("payload_too_large")).await?;
        c.expect(
            Req::post(dead_ingest, path, good),
            503,
            Some("broker_unavailable"),
        )
        .await?;
    }
    // The session the server named is in the header.
    let ans = c
        .expect(Req::post(ingest, "/start_session", start), 200, None)
        .await?;
    ensure!(ans.headers.contains_key("x-session-id"), "no X-Session-Id");

    // django-oauth-toolkit's token endpoint, on both services' paths.
    let h = test_auth();
    let basic = Cred::Basic(h.client_id.clone(), h.client_secret.clone());
    let grant = ("grant_type", "client_credentials");
    let all = ("scope", "read write aggregation");
    let token = |fields: &[(&'static str, &str)]| {
        Req::form(ingest, "/o/token/", fields).cred(basic.clone())
    };
    let ans = c.expect(token(&[grant, all]), 200, None).await?;
    ensure!(
        ans.body["scope"] == "read write aggregation",
        "{}",
        ans.text
    );
    let in_body = Req::form(
        ingest,
        "/o/token/",
        &[
            grant,
            ("client_id", &h.client_id),
            ("client_secret", &h.client_secret),
            all,
        ],
    )
    .anonymous();
    c.expect(in_body, 200, None).await?;
    for (fields, code) in [
        (&[("grant_type", "password")][..], "unsupported_grant_type"),
        (&[("scope", "read")][..], "invalid_request"),
        (&[grant, ("scope", "root")][..], "invalid_scope"),
    ] {
        let ans = c.expect(token(fields), 400, None).await?;
        ensure!(ans.body["error"] == code, "{}", ans.text);
    }
    let wrong = token(&[grant]).cred(Cred::Basic(h.client_id.clone(), "x".into()));
    c.expect(wrong, 401, None).await?;
    c.expect(
        Req::new(ingest, "post", "/o/token/").cred(basic.clone()),
        411,
        Some("length_required"),
    )
    .await?;
    let big = "x".repeat(17 * 1024);
    c.expect(
        token(&[grant, ("scope", &big)]),
        413,
        Some("payload_too_large"),
    )
    .await?;
    Ok(())
}
