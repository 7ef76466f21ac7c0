//! The SDKs producers already use, unchanged, against the whole pipeline: the real
//! `segment-analytics-python`, `rudder-sdk-python` (which gzips every request) and
//! `@segment/analytics-node`, at the versions pinned in `e2e/sdk/` and installed from their
//! registries by `deploy/sdks.sh`. Each is driven by a script there (`send.py`, `send.js`)
//! that goes through the SDK's own queue, batching and retries and reports every answer
//! it got.
//!
//! Rules out: a message type, an SDK or a batching mode that ingest refuses or stores
//! wrongly (a message must be readable once, with its properties or traits, under the
//! session, category and name the README's mapping gives); an SDK retry after a 503 that
//! loses a message or stores it twice; README examples that do not work as written.
//! Nothing is skipped: a missing SDK, driver, broker binary or Segment route fails the
//! test and says which.

use anyhow::Context;
use eye_e2e::{
    clickhouse_config, consumer_config, create_topics, ingest_config, kafka_config_with,
    readonly_clickhouse_config, start_consumer, start_ingest_with, start_query, test_auth, unique,
    wait_for, wait_ready, Service, Stack,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Longest an SDK may take to deliver one run, retries included. The slowest retry
/// schedule, rudder-sdk-python's (exponential with full jitter from 1 s), needs about
/// 15 s for the outage of the 503 test at worst.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the 503 test's broker stays down after the SDKs started sending: long enough
/// for each SDK's first request to time out in ingest's producer (1 s) and be refused.
const OUTAGE: Duration = Duration::from_secs(4);

/// The ingest settings of the SDK runs: Segment's message types have no schema in
/// `schemas/`, and these runs are about the protocol, not the tracking plan.
const ACCEPT_UNKNOWN_TYPES: &[(&str, &str)] = &[("UNKNOWN_TYPE_POLICY", "accept")];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sdk {
    SegmentPython,
    RudderPython,
    SegmentNode,
}

impl Sdk {
    const ALL: [Sdk; 3] = [Sdk::SegmentPython, Sdk::RudderPython, Sdk::SegmentNode];

    fn command(self, tools: &Tools, mode: Mode) -> Command {
        let mut cmd = match self {
            Sdk::SegmentPython | Sdk::RudderPython => {
                let mut c = Command::new(&tools.python);
                let name = if self == Sdk::SegmentPython {
                    "segment"
                } else {
                    "rudder"
                };
                c.arg(tools.dir.join("send.py")).arg(name);
                c
            }
            Sdk::SegmentNode => {
                let mut c = Command::new(&tools.node);
                c.arg(tools.dir.join("send.js"));
                c
            }
        };
        cmd.arg(mode.as_str()).current_dir(&tools.dir);
        cmd
    }

    /// Only rudder-sdk-python compresses its requests, by default.
    fn gzips(self) -> bool {
        self == Sdk::RudderPython
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The SDK's default batching: the six messages go in one request.
    Batch,
    /// One message per request (`upload_size=1`, `flushAt: 1`).
    Alone,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::Alone => "alone",
        }
    }
}

/// The interpreters the drivers run with, after `deploy/sdks.sh` installed the SDKs.
struct Tools {
    python: PathBuf,
    node: PathBuf,
    dir: PathBuf,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits in the workspace")
        .to_owned()
}

/// Runs `deploy/sdks.sh` once per test process (it returns at once when everything is
/// installed) and reads where it put the interpreters.
fn tools() -> anyhow::Result<&'static Tools> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    let found = TOOLS.get_or_init(|| {
        let root = repo_root();
        let out = std::process::Command::new(root.join("deploy/sdks.sh"))
            .arg("paths")
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running deploy/sdks.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "deploy/sdks.sh failed ({}): the SDKs are not installed",
                out.status
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let path = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(PathBuf::from)
                .ok_or_else(|| format!("deploy/sdks.sh paths printed no {key}: {text}"))
        };
        Ok(Tools {
            python: path("python")?,
            node: path("node")?,
            dir: root.join("e2e/sdk"),
        })
    });
    found.as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

/// What a driver printed: the messageId the SDK gave each message, every answer it got.
#[derive(Debug, Deserialize)]
struct Report {
    sent: Vec<Sent>,
    responses: Vec<Answer>,
    failed: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct Sent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "messageId")]
    message_id: String,
}

#[derive(Debug, Deserialize)]
struct Answer {
    status: u16,
    method: String,
    url: String,
    messages: usize,
    gzip: bool,
    auth: String,
}

/// Sends `messages` through `sdk` to the ingest at `ingest_url` with the harness's API
/// key as the write key, and waits until the SDK has delivered them or given up.
async fn drive(
    sdk: Sdk,
    mode: Mode,
    ingest_url: &str,
    messages: &[Value],
) -> anyhow::Result<Report> {
    drive_as(sdk, mode, ingest_url, &test_auth().api_key, messages, true).await
}

/// As [`drive`], with `write_key`; unless `must_deliver`, a run in which the SDK gave up
/// on messages also reports (its `failed`).
async fn drive_as(
    sdk: Sdk,
    mode: Mode,
    ingest_url: &str,
    write_key: &str,
    messages: &[Value],
    must_deliver: bool,
) -> anyhow::Result<Report> {
    let what = format!("{sdk:?} ({})", mode.as_str());
    let mut child = sdk
        .command(tools()?, mode)
        .env("EYE_INGEST_URL", ingest_url)
        .env("EYE_WRITE_KEY", write_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the {what} driver"))?;
    let mut stdin = child.stdin.take().context("driver stdin")?;
    stdin.write_all(&serde_json::to_vec(messages)?).await?;
    drop(stdin);
    let stdout = read_all(child.stdout.take().context("driver stdout")?);
    let stderr = read_all(child.stderr.take().context("driver stderr")?);
    let status = match tokio::time::timeout(DRIVER_TIMEOUT, child.wait()).await {
        Ok(status) => Some(status?),
        Err(_) => {
            child.kill().await?;
            None
        }
    };
    let (stdout, stderr) = (stdout.await??, stderr.await??);
    let Some(status) = status else {
        anyhow::bail!("{what} did not deliver within {DRIVER_TIMEOUT:?}; its log:\n{stderr}");
    };
    anyhow::ensure!(
        status.success() || (!must_deliver && status.code() == Some(1)),
        "{what} exited with {status}\nstdout: {stdout}\nstderr: {stderr}"
    );
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("{what} printed no report: {stdout}\nstderr: {stderr}"))
}

fn read_all(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<std::io::Result<String>> {
    tokio::spawn(async move {
        let mut buf = Vec::new();
        pipe.read_to_end(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    })
}

/// One run's ids: every message but the alias is on `anonymous_id`, which is its session;
/// the alias carries only `userId` and `previousId` (as the SDKs send it), so it is on
/// `user_id`'s session.
struct Run {
    sdk: Sdk,
    mode: Mode,
    anonymous_id: String,
    user_id: String,
}

impl Run {
    fn new(sdk: Sdk, mode: Mode) -> Self {
        let tag = unique(&format!("{sdk:?}_{}", mode.as_str())).to_lowercase();
        Self {
            sdk,
            mode,
            anonymous_id: format!("anon-{tag}"),
            user_id: format!("user-{tag}"),
        }
    }

    /// One message of each type, with properties or traits no other run has.
    fn messages(&self) -> Vec<Value> {
        let (anon, user) = (&self.anonymous_id, &self.user_id);
        vec![
            json!({"type": "track", "anonymousId": anon, "userId": user, "event": "Order Completed",
                   "properties": {"run": anon, "order_id": "o-1", "revenue": 12.5, "items": ["a", "b"]}}),
            json!({"type": "identify", "anonymousId": anon, "userId": user,
                   "traits": {"run": anon, "email": "ada@example.com", "plan": "pro"}}),
            json!({"type": "page", "anonymousId": anon, "name": "Pricing",
                   "properties": {"run": anon, "path": "/pricing", "referrer": "https://example.com/"}}),
            json!({"type": "screen", "anonymousId": anon, "name": "Settings",
                   "properties": {"run": anon, "tab": "privacy", "depth": 2}}),
            json!({"type": "group", "anonymousId": anon, "userId": user, "groupId": format!("group-{anon}"),
                   "traits": {"run": anon, "name": "Acme", "employees": 12}}),
            json!({"type": "alias", "userId": user, "previousId": anon}),
        ]
    }

    fn session_of(&self, message: &Value) -> &str {
        if message["type"] == "alias" {
            &self.user_id
        } else {
            &self.anonymous_id
        }
    }
}

/// Fails at once, saying so, when ingest has no Segment batch route: otherwise each SDK
/// would only log its refusals (and rudder-sdk-python retries them for minutes).
/// `want` is the status the route must answer now.
async fn probe_batch_route(ingest_url: &str, want: u16) -> anyhow::Result<()> {
    let body = json!({"batch": [{"type": "track", "anonymousId": unique("probe"), "event": "Probe", "properties": {}}]});
    let res = reqwest::Client::new()
        .post(format!("{ingest_url}/v1/batch"))
        .basic_auth(&test_auth().api_key, Some(""))
        .json(&body)
        .send()
        .await?;
    let status = res.status().as_u16();
    let retry_after = res.headers().get("retry-after").cloned();
    let text = res.text().await?;
    anyhow::ensure!(
        status != 404 && status != 405,
        "POST /v1/batch answered {status} {text}: ingest has no Segment tracking API, so no SDK can deliver"
    );
    anyhow::ensure!(
        status == want,
        "POST /v1/batch with the write key as HTTP Basic answered {status} {text}, not {want}"
    );
    match status {
        200 => {
            let answer: Value = serde_json::from_str(&text)?;
            anyhow::ensure!(
                answer == json!({"success": true}),
                "Segment's answer is {{\"success\": true}}, got {text}"
            );
        }
        503 => anyhow::ensure!(retry_after.is_some(), "a 503 without Retry-After: {text}"),
        _ => {}
    }
    Ok(())
}

/// Checks what an SDK reported about one run that met no fault: every message went out
/// once, as a POST to /v1/batch with HTTP Basic, gzipped by the SDKs that do, batched as
/// the mode says, and every answer was 200.
fn check_answers(run: &Run, report: &Report) -> anyhow::Result<()> {
    let what = format!("{:?} ({})", run.sdk, run.mode.as_str());
    anyhow::ensure!(
        report.failed.is_empty(),
        "{what}: undelivered {:?}",
        report.failed
    );
    anyhow::ensure!(report.sent.len() == 6, "{what}: sent {:?}", report.sent);
    for a in &report.responses {
        anyhow::ensure!(a.status == 200, "{what}: answered {a:?}");
        anyhow::ensure!(
            a.method == "POST" && a.url.ends_with("/v1/batch") && a.auth == "Basic",
            "{what}: request {a:?}"
        );
        anyhow::ensure!(a.gzip == run.sdk.gzips(), "{what}: gzip in {a:?}");
    }
    let carried: usize = report.responses.iter().map(|a| a.messages).sum();
    anyhow::ensure!(carried == 6, "{what}: requests carried {carried} messages");
    match run.mode {
        Mode::Batch => anyhow::ensure!(
            report.responses.iter().any(|a| a.messages > 1),
            "{what}: no request carried several messages: {:?}",
            report.responses
        ),
        Mode::Alone => anyhow::ensure!(
            report.responses.len() == 6,
            "{what}: {} requests for 6 messages",
            report.responses.len()
        ),
    }
    Ok(())
}

async fn session_events(
    http: &reqwest::Client,
    query: &Service,
    session: &str,
) -> anyhow::Result<Vec<Value>> {
    let res = http
        .get(query.url(&format!("/v1/sessions/{session}/events?limit=1000")))
        .send()
        .await?;
    if res.status() == 404 {
        return Ok(Vec::new());
    }
    anyhow::ensure!(res.status() == 200, "session {session}: {}", res.status());
    let body: Value = res.json().await?;
    Ok(body["events"].as_array().cloned().unwrap_or_default())
}

/// Every message of every run is readable through the query API exactly once, under the
/// README's mapping: session, category (the type), name, `data` with the message's ids
/// and properties or traits, and the messageId as event id when it is a UUID.
async fn check_stored(
    http: &reqwest::Client,
    query: &Service,
    runs: &[(Run, Report)],
) -> anyhow::Result<()> {
    let mut want: HashMap<String, Vec<(Sdk, Value, &Sent)>> = HashMap::new();
    for (run, report) in runs {
        let messages = run.messages();
        anyhow::ensure!(
            messages.len() == report.sent.len(),
            "{:?}: {} messages, {} reported",
            run.sdk,
            messages.len(),
            report.sent.len()
        );
        for (message, sent) in messages.into_iter().zip(&report.sent) {
            anyhow::ensure!(
                message["type"] == sent.kind.as_str(),
                "{sent:?} for {message}"
            );
            let session = run.session_of(&message).to_owned();
            want.entry(session)
                .or_default()
                .push((run.sdk, message, sent));
        }
    }
    // Events are readable once the consumer's batch is in; wait until every session has
    // as many as were sent, then require exactly those.
    let mut stored: HashMap<String, Vec<Value>> = HashMap::new();
    let started = Instant::now();
    for (session, expected) in &want {
        let remaining = Duration::from_secs(60).saturating_sub(started.elapsed());
        let events = wait_for(
            remaining,
            &format!("{} events of session {session}", expected.len()),
            || async {
                let events = session_events(http, query, session).await.ok()?;
                (events.len() >= expected.len()).then_some(events)
            },
        )
        .await;
        let events = match events {
            Ok(e) => e,
            Err(e) => {
                let got = session_events(http, query, session).await?;
                anyhow::bail!("{e}; stored: {got:#?}");
            }
        };
        stored.insert(session.clone(), events);
    }
    for (session, expected) in &want {
        let events = &stored[session];
        anyhow::ensure!(
            events.len() == expected.len(),
            "session {session}: {} events stored for {} messages sent: {events:#?}",
            events.len(),
            expected.len()
        );
        for (sdk, message, sent) in expected {
            let copies: Vec<&Value> = events
                .iter()
                .filter(|e| e["data"]["messageId"] == sent.message_id.as_str())
                .collect();
            anyhow::ensure!(
                copies.len() == 1,
                "message {} ({}) is stored {} times in session {session}: {events:#?}",
                sent.message_id,
                sent.kind,
                copies.len()
            );
            check_event(copies[0], *sdk, message, sent, session)?;
        }
    }
    Ok(())
}

fn check_event(
    event: &Value,
    sdk: Sdk,
    message: &Value,
    sent: &Sent,
    session: &str,
) -> anyhow::Result<()> {
    let kind = sent.kind.as_str();
    let name = match kind {
        "track" => message["event"].as_str(),
        "page" | "screen" => message["name"].as_str(),
        _ => Some(kind),
    };
    let context = format!("{kind} {}: {event:#}", sent.message_id);
    anyhow::ensure!(event["session_id"] == session, "session of {context}");
    anyhow::ensure!(event["category"] == kind, "category of {context}");
    anyhow::ensure!(event["name"].as_str() == name, "name of {context}");
    if let Ok(id) = uuid::Uuid::parse_str(&sent.message_id) {
        anyhow::ensure!(event["event_id"] == id.to_string(), "event_id of {context}");
    }
    let data = &event["data"];
    for field in [
        "properties",
        "traits",
        "userId",
        "anonymousId",
        "groupId",
        "previousId",
        "event",
        "name",
    ] {
        let Some(v) = message.get(field) else {
            continue;
        };
        // rudder-sdk-python sends an identify's traits as context.traits, RudderStack's way.
        let stored = if field == "traits" && kind == "identify" && sdk == Sdk::RudderPython {
            &data["context"]["traits"]
        } else {
            &data[field]
        };
        anyhow::ensure!(stored == v, "data.{field} of {context}: sent {v}");
    }
    for dropped in ["type", "timestamp", "sentAt", "writeKey"] {
        anyhow::ensure!(
            data.get(dropped).is_none(),
            "data.{dropped} kept in {context}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_sdk_sends_every_message_type_in_batches_and_alone() -> anyhow::Result<()> {
    tools()?;
    let stack = Stack::start_with("sdks", &[], ACCEPT_UNKNOWN_TYPES).await?;
    let ingest_url = stack.ingest.url("");
    probe_batch_route(&ingest_url, 200).await?;

    let runs: Vec<Run> = Sdk::ALL
        .into_iter()
        .flat_map(|sdk| [Run::new(sdk, Mode::Batch), Run::new(sdk, Mode::Alone)])
        .collect();
    let messages: Vec<Vec<Value>> = runs.iter().map(Run::messages).collect();
    let reports = futures::future::join_all(
        runs.iter()
            .zip(&messages)
            .map(|(r, m)| drive(r.sdk, r.mode, &ingest_url, m)),
    )
    .await;
    let mut done = Vec::new();
    for (run, report) in runs.into_iter().zip(reports) {
        let report = report?;
        check_answers(&run, &report)?;
        done.push((run, report));
    }
    check_stored(&stack.http, &stack.query, &done).await?;
    stack.stop().await
}

/// What can never succeed is sent once: each SDK gives up at ingest's first 400 or 401
/// instead of retrying it. The Python SDKs read `code` and `message` at the top of an error
/// body (a `KeyError` without them, which they retry like a network failure).
#[tokio::test(flavor = "multi_thread")]
async fn each_sdk_gives_up_at_once_on_what_can_never_succeed() -> anyhow::Result<()> {
    tools()?;
    // The tracking plan refuses an `Order Completed` without its required properties.
    let stack =
        Stack::start_with("sdk_refusals", &[], &[("UNKNOWN_TYPE_POLICY", "reject")]).await?;
    let ingest_url = stack.ingest.url("");
    let id = unique("refused");
    let valid_key = test_auth().api_key.clone();
    let wrong_key = format!("{}x", valid_key);
    // (what, write key, message, status, code)
    let cases = [
        (
            "an unknown write key",
            &wrong_key,
            json!({"type": "track", "anonymousId": id, "event": "Order Completed",
                   "properties": {"order_id": "o1"}}),
            401,
            "invalid_credentials",
        ),
        (
            "a message of an unknown type, refused by the plan",
            &valid_key,
            json!({"type": "track", "anonymousId": id, "event": "Nothing Planned"}),
            400,
            "invalid_messages",
        ),
    ];
    for sdk in Sdk::ALL {
        for (what, key, message, status, code) in &cases {
            let report = drive_as(
                sdk,
                Mode::Alone,
                &ingest_url,
                key,
                std::slice::from_ref(message),
                false,
            )
            .await?;
            let statuses: Vec<u16> = report.responses.iter().map(|a| a.status).collect();
            anyhow::ensure!(
                statuses == [*status],
                "{sdk:?}, {what}: one request answered {status} wanted, got {statuses:?}"
            );
            anyhow::ensure!(
                report.failed.len() == 1,
                "{sdk:?}, {what}: the SDK must report the message as failed: {:?}",
                report.failed
            );
            // The Python SDKs' APIError names the code it read from the body.
            if sdk != Sdk::SegmentNode {
                let error = report.failed[0]["error"].as_str().unwrap_or_default();
                anyhow::ensure!(
                    error.contains(code),
                    "{sdk:?}, {what}: the SDK's error does not name {code}: {error}"
                );
            }
        }
    }
    stack.stop().await
}

/// A port nothing listens on, for a broker started later.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn find_tansu() -> anyhow::Result<PathBuf> {
    let cargo_bin = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin"));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
        .context("tansu not found on PATH or in ~/.cargo/bin: `make install` builds it")
}

/// A tansu broker of the test's own (memory storage) on `port`, so that its outage hits
/// nothing else.
async fn start_broker(port: u16) -> anyhow::Result<Child> {
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(find_tansu()?)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting tansu")?;
    wait_for(
        Duration::from_secs(30),
        "the test's broker listening",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await?;
    Ok(child)
}

async fn unavailable_total(ingest: &Service) -> anyhow::Result<f64> {
    let text = reqwest::get(ingest.url("/metrics")).await?.text().await?;
    let mut total = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("eye_ingest_unavailable_total"))
    {
        let value = line.rsplit(' ').next().unwrap_or_default();
        total += value
            .parse::<f64>()
            .with_context(|| format!("metric line {line}"))?;
    }
    Ok(total)
}

/// Ingest starts against a broker that is not there yet, so it answers 503 (its producer
/// times out after 1 s) to every SDK's first requests; the broker comes up while they
/// back off. Each SDK must retry until it is answered 200, and each message must then be
/// stored exactly once. The 503s are counted by ingest and by the SDKs, and must match.
#[tokio::test(flavor = "multi_thread")]
async fn each_sdk_retries_through_503s_without_loss_or_duplicate() -> anyhow::Result<()> {
    tools()?;
    let port = free_port()?;
    let brokers = format!("127.0.0.1:{port}");
    let id = unique("sdks_503");
    let kafka = kafka_config_with(
        &format!("eye.test.{id}"),
        &[("BROKERS", &brokers), ("MESSAGE_TIMEOUT_MS", "1000")],
    );
    let ingest = start_ingest_with(ingest_config(ACCEPT_UNKNOWN_TYPES), kafka.clone()).await?;
    let ingest_url = ingest.url("");
    probe_batch_route(&ingest_url, 503).await?;

    let runs: Vec<Run> = Sdk::ALL
        .into_iter()
        .map(|s| Run::new(s, Mode::Batch))
        .collect();
    let sending = Instant::now();
    let drivers: Vec<_> = runs
        .iter()
        .map(|r| {
            let (sdk, mode, url, messages) = (r.sdk, r.mode, ingest_url.clone(), r.messages());
            tokio::spawn(async move { drive(sdk, mode, &url, &messages).await })
        })
        .collect();
    // The probe's 503 plus at least one per SDK, and the outage long enough for each.
    wait_for(Duration::from_secs(30), "a 503 for each SDK", || async {
        let refused = unavailable_total(&ingest).await.ok()?;
        (refused >= 1.0 + Sdk::ALL.len() as f64 && sending.elapsed() >= OUTAGE).then_some(())
    })
    .await?;

    let mut broker = start_broker(port).await?;
    create_topics(&kafka).await?;
    let clickhouse = clickhouse_config(&format!("eye_test_{id}"));
    let consumer = start_consumer(
        consumer_config(&format!("eye-test-{id}")),
        kafka.clone(),
        clickhouse.clone(),
    )
    .await?;
    let query = start_query(readonly_clickhouse_config(&clickhouse.database)).await?;
    wait_ready(&[&consumer, &query]).await?;

    let mut done = Vec::new();
    let mut refused_seen = 0;
    for (run, driver) in runs.into_iter().zip(drivers) {
        let report = driver.await??;
        let what = format!("{:?}", run.sdk);
        anyhow::ensure!(
            report.failed.is_empty(),
            "{what}: undelivered {:?}",
            report.failed
        );
        let statuses: Vec<u16> = report.responses.iter().map(|a| a.status).collect();
        let refused = statuses.iter().filter(|&&s| s == 503).count();
        anyhow::ensure!(refused > 0, "{what} was never refused: {statuses:?}");
        anyhow::ensure!(
            statuses.iter().all(|&s| s == 503 || s == 200) && statuses.last() == Some(&200),
            "{what}: answers {statuses:?}"
        );
        println!("{what}: answers {statuses:?}");
        refused_seen += refused;
        done.push((run, report));
    }
    let counted = unavailable_total(&ingest).await?;
    anyhow::ensure!(
        counted == (1 + refused_seen) as f64,
        "ingest counted {counted} 503s; the probe and the SDKs saw {}",
        1 + refused_seen
    );

    let http = eye_e2e::http_client();
    check_stored(&http, &query, &done).await?;
    drop(http);
    ingest.stop().await?;
    consumer.stop().await?;
    query.stop().await?;
    broker.kill().await?;
    Ok(())
}

/// The code blocks of the README's "Sending from existing SDKs" section, by language.
fn readme_examples() -> anyhow::Result<Vec<(String, String)>> {
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Sending from existing SDKs"))
        .context("README has no \"## Sending from existing SDKs\" section")?;
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let (lang, body) = after.split_once('\n').context("unterminated code block")?;
        let end = body.find("```").context("unterminated code block")?;
        blocks.push((lang.trim().to_owned(), body[..end].to_owned()));
        rest = &body[end + 3..];
    }
    Ok(blocks)
}

/// The README's Python and Node examples, run as written; only the address of ingest is
/// this stack's. Each sends an identify and a track on its own anonymous id. Neither type
/// has a schema: `make up`'s development client accepts them (`--unknown-types accept`),
/// and here the stack's ingest does.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_sdk_examples_work_as_written() -> anyhow::Result<()> {
    let tools = tools()?;
    let examples = readme_examples()?;
    let stack = Stack::start_with("sdks_readme", &[], ACCEPT_UNKNOWN_TYPES).await?;
    let ingest_url = stack.ingest.url("");
    probe_batch_route(&ingest_url, 200).await?;

    for (lang, session) in [("python", "visitor-42"), ("js", "visitor-43")] {
        let code = examples
            .iter()
            .find(|(l, _)| l == lang)
            .map(|(_, c)| c)
            .with_context(|| format!("README's SDK section has no {lang} example"))?;
        anyhow::ensure!(
            code.contains("http://127.0.0.1:8080") && code.contains(session),
            "README's {lang} example should send to make up's ingest (http://127.0.0.1:8080) as {session}"
        );
        let code = code.replace("http://127.0.0.1:8080", &ingest_url);
        let program = if lang == "python" {
            &tools.python
        } else {
            &tools.node
        };
        let mut child = Command::new(program)
            .arg("-")
            .current_dir(&tools.dir)
            .env("EYE_API_KEY", &test_auth().api_key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().context("stdin")?;
        stdin.write_all(code.as_bytes()).await?;
        drop(stdin);
        let out = tokio::time::timeout(DRIVER_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("README's {lang} example did not finish"))??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(
            out.status.success() && stderr.trim().is_empty(),
            "README's {lang} example: {}\n{stderr}",
            out.status
        );
        let events = wait_for(
            Duration::from_secs(30),
            &format!("the {lang} example's events"),
            || async {
                let events = session_events(&stack.http, &stack.query, session)
                    .await
                    .ok()?;
                (events.len() >= 2).then_some(events)
            },
        )
        .await?;
        let mut kinds: Vec<&str> = events
            .iter()
            .filter_map(|e| e["category"].as_str())
            .collect();
        kinds.sort_unstable();
        anyhow::ensure!(
            kinds == ["identify", "track"],
            "the {lang} example stored {events:#?}"
        );
    }
    stack.stop().await
}
