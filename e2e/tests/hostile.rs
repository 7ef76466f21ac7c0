//! End-to-end hardening: hostile text (quotes, backslashes, SQL fragments, NUL
//! bytes, LIKE wildcards, placeholders, very long strings, numeric edge cases) in every
//! query parameter and path id of the query service. Each answer must be a `400` in the
//! shared error shape naming that parameter, or a `200` that treats the value as a literal:
//! exactly the rows this test stored that match it, computed here from what was sent.
//! Never a 5xx, never anything else.
//!
//! Some stored session, user and machine ids are themselves probe values (`'`, `%`, `_`,
//! `' OR 1=1 --`, ...) next to near neighbours (`abc`, `a_c`, `a%c`), so a value that reached
//! SQL unescaped, or as a LIKE pattern, returns rows it must not.
//!
//! Long by design: one table of hostile values per parameter of every read route, each checked in place.

use chrono::{DateTime, SecondsFormat};
use eye_e2e::{wait_for, Stack};
use futures::stream::{self, StreamExt};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What the HTTP layer answers a request head over `EYE_HTTP_MAX_HEADER_BYTES` (32 KiB by
/// default), before any route runs. Only the 100,000-character value goes past it; the
/// 10,000-character one (30,000 bytes encoded) must reach the service.
const HEAD_TOO_LARGE: u16 = 431;
const HUGE_CHARS: usize = 100_000;

/// Every id and filter value goes into a URL percent-encoded in full, so that what the
/// server decodes is exactly the test's text (the URL parser would send `'` and `%` as they
/// are, and read a `\` in a path as `/`).
fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A probe value: text the test encodes itself, or raw URL text sent as is (to try
/// encodings a well-behaved client would not produce: a stray `%`, invalid UTF-8).
#[derive(Clone)]
enum Hostile {
    Text(String),
    Raw(&'static str),
}

impl Hostile {
    fn sent(&self) -> String {
        match self {
            Self::Text(s) => enc(s),
            Self::Raw(r) => (*r).to_owned(),
        }
    }

    /// The value the server should see: form decoding in a query (`+` is a space), plain
    /// percent-decoding in a path segment; `None` when the bytes are not UTF-8.
    fn literal(&self, in_query: bool) -> Option<String> {
        match self {
            Self::Text(s) => Some(s.clone()),
            Self::Raw(r) => {
                let r = if in_query {
                    r.replace('+', " ")
                } else {
                    (*r).to_owned()
                };
                percent_decode_str(&r)
                    .decode_utf8()
                    .ok()
                    .map(|s| s.into_owned())
            }
        }
    }

    fn is_huge(&self) -> bool {
        matches!(self, Self::Text(s) if s.chars().count() >= HUGE_CHARS)
    }

    fn label(&self) -> String {
        let shown = match self {
            Self::Text(s) => format!("{s:?}"),
            Self::Raw(r) => format!("raw {r}"),
        };
        if shown.chars().count() > 40 {
            let head: String = shown.chars().take(30).collect();
            format!("{head}... ({} chars)", shown.chars().count())
        } else {
            shown
        }
    }
}

/// The table of hostile values tried in every parameter.
fn hostile_values() -> Vec<Hostile> {
    let text = |s: &str| Hostile::Text(s.to_owned());
    let mut v: Vec<Hostile> = [
        "'",
        "' OR 1=1 --",
        "' OR '1'='1",
        "\\",
        "\\'",
        "\\\\'",
        "\"; DROP TABLE events; --",
        "1) UNION SELECT * FROM system.users --",
        "' UNION SELECT name FROM system.tables --",
        "toUUID(",
        "`",
        "\0",
        "a\0b",
        "\n",
        "\t",
        "%",
        "_",
        "a_c",
        "a%",
        "page_interactio_",
        "page%",
        "%27%5C",
        "?",
        "??",
        "?fields",
        "🦀 ünïcødé 日本語 \u{202e}",
        "",
        " ",
        "+",
        "-1",
        "0",
        "1e309",
        "99999999999999999999",
        "0x10",
        "NaN",
        "4294967296",
        "-99999999999",
        "1960-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ]
    .into_iter()
    .map(text)
    .collect();
    // Values that are also stored ids (as are `'`, `' OR 1=1 --`, `%`, `_`, `a_c` above): a
    // literal read must return exactly their rows.
    v.extend(["abc", "\\'; DROP TABLE sessions; --"].map(text));
    v.push(Hostile::Text("'\\".repeat(5_000)));
    v.push(Hostile::Text("'".repeat(HUGE_CHARS)));
    v.extend(["%27%5C", "%", "%%27", "%FF", "a%FFb", "+", "%2B", "%E2%80"].map(Hostile::Raw));
    v
}

// ---------------------------------------------------------------- what is stored

/// Session ids stored with events. Several are probe values; `abc`, `a_c` and `a%c` are
/// neighbours a LIKE pattern would confuse; U+FFFD is what a lossy decoder makes of bytes
/// that are not UTF-8.
fn stored_session_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "'",
        "' OR 1=1 --",
        "\\'",
        "\"; DROP TABLE events; --",
        "%",
        "_",
        "abc",
        "a_c",
        "a%c",
        "🦀 ünïcødé 日本語 \u{202e}",
        "?fields ?? ? `x`",
        "it's \"quoted\" \\ back\\\\slash; -- /x?y#z&w=v+u %27%5C",
        "\u{fffd}",
    ]
    .map(str::to_owned)
    .to_vec();
    // 128 characters, the longest session id ingest accepts.
    ids.push("'\\".repeat(64));
    ids
}

/// (session, user, machine, org) start records: owners named like probe values, each
/// owning one session, so `%` or `_` as an owner matches exactly one.
const STARTS: &[(&str, &str, &str, &str)] = &[
    ("'", "' OR 1=1 --", "\\'; DROP TABLE sessions; --", "%_"),
    ("abc", "abc", "m%1", "1"),
    ("a_c", "a_c", "m_1", "1"),
    ("%", "_", "%", "'"),
    ("_", "%", "_", "\\"),
];

/// The session, user and machine the endpoints with a path id are probed on.
const BASE_SESSION: &str = "abc";
const BASE_USER: &str = "' OR 1=1 --";
const BASE_MACHINE: &str = "\\'; DROP TABLE sessions; --";

/// Hostile strings stored inside `data`, read back byte for byte.
const DATA_TEXT: &[&str] = &[
    "\"'; DROP TABLE events; --",
    "\\' OR 1=1 --",
    "%_%_ \u{0} nul",
    "?fields ?? `x`",
    "🦀\u{202e}日本語",
];

struct StoredEvent {
    id: String,
    session: String,
    category: &'static str,
    name: &'static str,
    ts_us: i64,
    sent: Value,
}

struct Model {
    events: Vec<StoredEvent>,
    /// (rejection_id, received_at in µs, codes), as the unfiltered listing shows them.
    rejected: Vec<(String, i64, Vec<String>)>,
}

#[derive(Default, Clone)]
struct Filter {
    session: Option<String>,
    machine: Option<String>,
    category: Option<String>,
    name: Option<String>,
    from_us: Option<i64>,
    to_us: Option<i64>,
}

impl Model {
    fn select(&self, f: &Filter) -> Ids {
        let machine_sessions: Option<Vec<&str>> = f
            .machine
            .as_ref()
            .map(|m| STARTS.iter().filter(|s| s.2 == m).map(|s| s.0).collect());
        self.events
            .iter()
            .filter(|e| f.session.as_ref().is_none_or(|s| *s == e.session))
            .filter(|e| {
                machine_sessions
                    .as_ref()
                    .is_none_or(|ss| ss.contains(&e.session.as_str()))
            })
            .filter(|e| f.category.as_ref().is_none_or(|c| c == e.category))
            .filter(|e| f.name.as_ref().is_none_or(|n| n == e.name))
            .filter(|e| f.from_us.is_none_or(|t| e.ts_us >= t))
            .filter(|e| f.to_us.is_none_or(|t| e.ts_us < t))
            .map(|e| e.id.clone())
            .collect()
    }

    fn session_known(&self, id: &str) -> bool {
        self.events.iter().any(|e| e.session == id) || STARTS.iter().any(|s| s.0 == id)
    }

    fn rejected_where(&self, reason: Option<&str>, from: Option<i64>, to: Option<i64>) -> Ids {
        self.rejected
            .iter()
            .filter(|(_, _, codes)| reason.is_none_or(|r| codes.iter().any(|c| c == r)))
            .filter(|(_, at, _)| from.is_none_or(|t| *at >= t) && to.is_none_or(|t| *at < t))
            .map(|(id, _, _)| id.clone())
            .collect()
    }
}

type Ids = BTreeSet<String>;

// ---------------------------------------------------------------- the contract's rules

/// `session_id`, `user_id`, `machine_id`: 1 to 128 characters, no control character.
fn valid_id(s: &str) -> bool {
    (1..=128).contains(&s.chars().count()) && !s.chars().any(char::is_control)
}

/// `category` and `name`: 1 to 64 of ASCII letters, digits, `_-.:/` and inner spaces.
fn valid_type(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/ ".contains(c))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
}

/// `reason`: an error code, lower-case letters, digits and `_`.
fn valid_reason(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `from`/`to` as the README defines them, in µs: a JSON number is Unix seconds below
/// 1e11 in absolute value, milliseconds below 1e14; otherwise RFC 3339 text. Only the
/// forms the table uses are read here.
fn contract_time(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<serde_json::Number>() {
        let v = n.as_f64().filter(|v| v.is_finite())?;
        return if v.abs() < 1e11 {
            Some((v * 1e6).round() as i64)
        } else if v.abs() < 1e14 {
            Some((v * 1e3).round() as i64)
        } else {
            None
        };
    }
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_micros())
}

// ---------------------------------------------------------------- endpoints and probes

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ep {
    Events,
    Session,
    SessionEvents,
    Machine,
    User,
    Aggregate,
    Categories,
    Rejected,
}

const ENDPOINTS: [Ep; 8] = [
    Ep::Events,
    Ep::Session,
    Ep::SessionEvents,
    Ep::Machine,
    Ep::User,
    Ep::Aggregate,
    Ep::Categories,
    Ep::Rejected,
];

impl Ep {
    /// The path with `id` (already encoded) in place of the path field.
    fn path(self, id: &str) -> String {
        match self {
            Self::Events => "/v1/events".into(),
            Self::Session => format!("/v1/sessions/{id}"),
            Self::SessionEvents => format!("/v1/sessions/{id}/events"),
            Self::Machine => format!("/v1/machines/{id}/events"),
            Self::User => format!("/v1/users/{id}/sessions"),
            Self::Aggregate => "/v1/aggregate".into(),
            Self::Categories => "/v1/categories".into(),
            Self::Rejected => "/v1/rejected".into(),
        }
    }

    /// The path field's name in errors, and the stored id the other probes use.
    fn path_field(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Session | Self::SessionEvents => Some(("session_id", BASE_SESSION)),
            Self::Machine => Some(("machine_id", BASE_MACHINE)),
            Self::User => Some(("user_id", BASE_USER)),
            _ => None,
        }
    }

    fn params(self) -> &'static [&'static str] {
        match self {
            Self::Events => &[
                "session_id",
                "category",
                "name",
                "from",
                "to",
                "order",
                "limit",
                "cursor",
            ],
            Self::Session | Self::User => &["limit", "cursor"],
            Self::SessionEvents | Self::Categories => &["limit"],
            Self::Machine => &["category", "name", "from", "to", "order", "limit", "cursor"],
            Self::Aggregate => &[
                "category",
                "name",
                "from",
                "to",
                "granularity",
                "agg",
                "tz",
                "fill",
            ],
            Self::Rejected => &["reason", "from", "to", "limit", "cursor"],
        }
    }

    /// Parameters sent with every probe (a probe of the same name replaces one).
    fn base(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Aggregate => &[
                ("category", "page_interaction"),
                ("name", "page_view"),
                ("agg", "count"),
            ],
            _ => &[],
        }
    }
}

#[derive(Clone, Debug)]
enum Target {
    Path,
    Param(&'static str),
    /// The hostile value under an unknown name.
    UnknownValue,
    /// The hostile value as the name of an unknown parameter.
    UnknownName,
}

/// What a `200` must contain; a `400` naming the field is always acceptable.
#[derive(Debug)]
enum Expect {
    /// The contract refuses this value here: only a 400 is right.
    Refused,
    /// An empty path segment matches no route: 404 `not_found`.
    NoRoute,
    Events(Ids),
    /// `counted`: the answer also carries `event_count` (`/v1/sessions/{id}` does;
    /// `/v1/sessions/{id}/events`, the plain-list shape, does not).
    Session {
        id: String,
        events: Ids,
        counted: bool,
    },
    /// A valid session id nothing was stored for: 404 `session_not_found`.
    NoSession,
    Sessions {
        user: String,
        ids: Ids,
    },
    /// `agg=count` over the whole range: the number of events, or no bucket at all.
    Buckets {
        category: String,
        name: String,
        count: usize,
    },
    Rejected(Ids),
    /// Bytes that are not UTF-8 can equal no stored text: a 400, or an empty answer.
    Nothing,
}

struct Probe {
    what: String,
    /// Path and query, as sent.
    target: String,
    /// The name a 400 must give in `error.details[0].field`.
    field: String,
    /// Sent past the head limit: only the HTTP layer's refusal is right.
    huge: bool,
    expect: Expect,
}

fn probe(model: &Model, ep: Ep, target: Target, value: &Hostile) -> Probe {
    let (id_field, base_id) = ep.path_field().unzip();
    let mut id = base_id.unwrap_or_default().to_owned();
    let mut params: Vec<(String, String)> = ep
        .base()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), enc(v)))
        .collect();
    let field;
    let expect;
    match &target {
        Target::Path => {
            field = id_field.unwrap_or_default().to_owned();
            let lit = value.literal(false);
            expect = match (ep, lit) {
                (_, None) => Expect::Nothing,
                (_, Some(l)) if l.is_empty() => Expect::NoRoute,
                (_, Some(l)) if !valid_id(&l) => Expect::Refused,
                (Ep::Session | Ep::SessionEvents, Some(l)) => {
                    if model.session_known(&l) {
                        let events = model.select(&Filter {
                            session: Some(l.clone()),
                            ..Filter::default()
                        });
                        Expect::Session {
                            id: l,
                            events,
                            counted: ep == Ep::Session,
                        }
                    } else {
                        Expect::NoSession
                    }
                }
                (Ep::Machine, Some(l)) => Expect::Events(model.select(&Filter {
                    machine: Some(l),
                    ..Filter::default()
                })),
                (_, Some(l)) => Expect::Sessions {
                    ids: STARTS
                        .iter()
                        .filter(|s| s.1 == l)
                        .map(|s| s.0.to_owned())
                        .collect(),
                    user: l,
                },
            };
            id = value.sent();
        }
        Target::Param(name) => {
            field = (*name).to_owned();
            params.retain(|(k, _)| k != name);
            params.push((field.clone(), value.sent()));
            expect = param_expect(model, ep, name, value.literal(true));
        }
        Target::UnknownValue => {
            field = "bogus".into();
            params.push((field.clone(), value.sent()));
            expect = Expect::Refused;
        }
        Target::UnknownName => {
            field = value.literal(true).unwrap_or_default();
            params.push((value.sent(), "1".into()));
            expect = Expect::Refused;
        }
    }
    if !matches!(target, Target::Path) {
        id = enc(&id);
    }
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut path = ep.path(&id);
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    Probe {
        what: format!("{ep:?} {target:?} = {}", value.label()),
        target: path,
        field,
        huge: value.is_huge(),
        expect,
    }
}

/// The expectation for `name=<lit>` on `ep`, the other parameters at their base.
fn param_expect(model: &Model, ep: Ep, name: &str, lit: Option<String>) -> Expect {
    let Some(lit) = lit else {
        return Expect::Nothing;
    };
    let mut f = Filter::default();
    match ep {
        Ep::Machine => f.machine = Some(BASE_MACHINE.into()),
        Ep::Aggregate => {
            f.category = Some("page_interaction".into());
            f.name = Some("page_view".into());
        }
        _ => {}
    }
    let ok = match name {
        "session_id" if valid_id(&lit) => {
            f.session = Some(lit.clone());
            true
        }
        "category" if valid_type(&lit) => {
            f.category = Some(lit.clone());
            true
        }
        "name" if valid_type(&lit) => {
            f.name = Some(lit.clone());
            true
        }
        "from" | "to" => match contract_time(&lit) {
            Some(t) if name == "from" => {
                f.from_us = Some(t);
                true
            }
            Some(t) => {
                f.to_us = Some(t);
                true
            }
            None => false,
        },
        "reason" => valid_reason(&lit),
        _ => false,
    };
    if !ok {
        return Expect::Refused;
    }
    match ep {
        Ep::Aggregate => Expect::Buckets {
            count: model.select(&f).len(),
            category: f.category.unwrap_or_default(),
            name: f.name.unwrap_or_default(),
        },
        Ep::Rejected => Expect::Rejected(model.rejected_where(
            (name == "reason").then_some(lit.as_str()),
            f.from_us,
            f.to_us,
        )),
        _ => Expect::Events(model.select(&f)),
    }
}

fn ids(list: &Value, key: &str) -> Option<Ids> {
    list.as_array()?
        .iter()
        .map(|x| x[key].as_str().map(str::to_owned))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Refused,
    Literal,
    NotFound,
    HeadTooLarge,
}

/// Judges one answer against the contract; `Err` says what broke it.
fn judge(p: &Probe, status: u16, body: &Value) -> Result<Outcome, String> {
    if p.huge {
        return if status == HEAD_TOO_LARGE {
            Ok(Outcome::HeadTooLarge)
        } else {
            Err(format!("status {status}, expected {HEAD_TOO_LARGE}"))
        };
    }
    let error = &body["error"];
    match status {
        400 => {
            let d = &error["details"][0];
            let shape = error["code"] == "invalid_parameter"
                && error["message"].is_string()
                && d["code"].is_string()
                && d["message"].is_string();
            if !shape {
                return Err("400 not in the shared error shape".into());
            }
            if d["field"] != p.field.as_str() {
                return Err(format!("400 names {} instead of {:?}", d["field"], p.field));
            }
            Ok(Outcome::Refused)
        }
        404 => match (&p.expect, error["code"].as_str()) {
            (Expect::NoRoute, Some("not_found"))
            | (Expect::NoSession | Expect::Nothing, Some("session_not_found")) => {
                Ok(Outcome::NotFound)
            }
            _ => Err("unexpected 404".into()),
        },
        200 => judge_ok(&p.expect, body).map(|()| Outcome::Literal),
        s => Err(format!("status {s}")),
    }
}

fn judge_ok(expect: &Expect, body: &Value) -> Result<(), String> {
    let same = |got: Option<Ids>, want: &Ids| {
        if got.as_ref() == Some(want) {
            Ok(())
        } else {
            Err(format!("200 with rows {got:?}, expected exactly {want:?}"))
        }
    };
    match expect {
        Expect::Refused => Err("200 for a value the contract refuses".into()),
        Expect::NoRoute | Expect::NoSession => Err("200 for something that does not exist".into()),
        Expect::Events(want) => same(ids(&body["events"], "event_id"), want),
        Expect::Session {
            id,
            events,
            counted,
        } => {
            if body["session_id"] != id.as_str() {
                return Err(format!("200 for session {}", body["session_id"]));
            }
            if *counted && body["event_count"] != events.len() {
                return Err(format!("event_count {}", body["event_count"]));
            }
            same(ids(&body["events"], "event_id"), events)
        }
        Expect::Sessions { user, ids: want } => {
            if body["user_id"] != user.as_str() {
                return Err(format!("200 for user {}", body["user_id"]));
            }
            same(ids(&body["sessions"], "session_id"), want)
        }
        Expect::Buckets {
            category,
            name,
            count,
        } => {
            if body["category"] != category.as_str() || body["name"] != name.as_str() {
                return Err(format!("200 for {} / {}", body["category"], body["name"]));
            }
            let buckets = body["buckets"].as_array().cloned().unwrap_or_default();
            let counted: u64 = buckets.iter().filter_map(|b| b["count"].as_u64()).sum();
            if counted == *count as u64 && buckets.len() == usize::from(*count > 0) {
                Ok(())
            } else {
                Err(format!(
                    "200 with buckets {buckets:?}, expected {count} events"
                ))
            }
        }
        Expect::Rejected(want) => same(ids(&body["rejected"], "rejection_id"), want),
        Expect::Nothing => {
            let empty = ["events", "sessions", "rejected", "buckets"]
                .iter()
                .all(|k| body[*k].as_array().is_none_or(Vec::is_empty));
            if empty {
                Ok(())
            } else {
                Err("200 with rows for bytes that are not UTF-8".into())
            }
        }
    }
}

// ---------------------------------------------------------------- requests

async fn get(stack: &Stack, url: &str) -> anyhow::Result<(u16, Value)> {
    // Errors without the URL: some URLs here are tens of kilobytes.
    let res = stack
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| e.without_url())?;
    let status = res.status().as_u16();
    let text = res.text().await.map_err(|e| e.without_url())?;
    // Everything the service answers is JSON; anything else fails the judgement.
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// The status the server answers to `GET <target>`, sent over a plain socket. reqwest cannot
/// send this request at all (the `http` crate refuses a URI over 65,534 bytes while building
/// it), and hyper answers an oversized head before any filter runs, authentication
/// included, so the client's credentials are not needed here.
fn raw_status(addr: SocketAddr, target: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // The server stops reading at its head limit and answers; the rest of the request may
    // then fail to send. What counts is the answer, read below.
    let _ = s.write_all(request.as_bytes());
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while head.len() < 12 {
        match s.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    // "HTTP/1.1 431 Request Header Fields Too Large"
    let line = String::from_utf8_lossy(&head);
    line.get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {line:?}")))
}

/// At most 300 characters of `v`, for failure messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 300 {
        format!("{}...", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

async fn get_path(stack: &Stack, path: &str) -> anyhow::Result<(u16, Value)> {
    get(stack, &stack.query.url(path)).await
}

/// Sends `body` to ingest exactly as given, so a rejection's `raw` can be compared to it.
async fn post_text(stack: &Stack, path: &str, body: &str) -> anyhow::Result<(u16, Value)> {
    let res = stack
        .http
        .post(stack.ingest.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

fn rfc3339(ts_us: i64) -> String {
    DateTime::from_timestamp_micros(ts_us)
        .expect("test times are in range")
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Events with hostile session ids and data, every one accepted by ingest.
fn stored_events() -> Vec<StoredEvent> {
    // 2021-01-01T00:00:00Z, one day per session, an hour per event.
    let base_s = 1_609_459_200_i64;
    let mut out = Vec::new();
    let mut add = |session: &str,
                   category: &'static str,
                   name: &'static str,
                   ts_us: i64,
                   data: Value,
                   value: Option<f64>| {
        let id = uuid::Uuid::now_v7().to_string();
        let mut sent = json!({"event_id": id, "session_id": session, "category": category,
                              "name": name, "timestamp": rfc3339(ts_us), "data": data});
        if let Some(v) = value {
            sent["value"] = json!(v);
        }
        out.push(StoredEvent {
            id,
            session: session.to_owned(),
            category,
            name,
            ts_us,
            sent,
        });
    };
    for (i, session) in stored_session_ids().iter().enumerate() {
        let day = base_s + 86_400 * i as i64;
        let text = |k: usize| DATA_TEXT[(i + k) % DATA_TEXT.len()];
        add(
            session,
            "page_interaction",
            "page_view",
            day * 1_000_000,
            json!({"host": text(0), "path": format!("/{}", text(1))}),
            (i % 3 == 0).then_some(-1.5e300),
        );
        add(
            session,
            "form_interaction",
            "submit",
            (day + 3_600) * 1_000_000 + 7,
            json!({"host": text(2), "path": "/'\\\"", "form": {
                "'; DROP TABLE events; --": text(3), "%": "_", "\u{0}": "\u{0}",
                "?fields": ["??", {"`": "\\\\'"}]}}),
            None,
        );
    }
    // The earliest time ingest accepts, 2000-01-01T00:00:00Z, and a click whose element
    // is SQL.
    add(
        BASE_SESSION,
        "page_interaction",
        "page_view",
        946_684_800_000_000,
        json!({"host": "h", "path": "/"}),
        Some(0.0),
    );
    add(
        "'",
        "page_interaction",
        "cta_click",
        1_609_459_200_000_000 + 60_000_000,
        json!({"host": "h", "path": "/", "element": "1) UNION SELECT * FROM system.users --"}),
        None,
    );
    out
}

/// Hostile values in the event fields ingest validates: (field, value, pointer, code).
fn hostile_ingest() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    vec![
        (
            "category",
            json!("'; DROP TABLE events; --"),
            "/category",
            "invalid_characters",
        ),
        (
            "category",
            json!("page%"),
            "/category",
            "invalid_characters",
        ),
        (
            "category",
            json!("x".repeat(10_000)),
            "/category",
            "too_long",
        ),
        (
            "name",
            json!("\\' OR 1=1 --"),
            "/name",
            "invalid_characters",
        ),
        (
            "name",
            json!("page_view\u{0}"),
            "/name",
            "invalid_characters",
        ),
        (
            "session_id",
            json!("a\u{0}b"),
            "/session_id",
            "control_character",
        ),
        (
            "session_id",
            json!("'".repeat(129)),
            "/session_id",
            "too_long",
        ),
        ("session_id", json!(""), "/session_id", "empty"),
        (
            "event_id",
            json!("' OR 1=1 --"),
            "/event_id",
            "invalid_uuid",
        ),
        (
            "timestamp",
            json!("2021-09-26'; --"),
            "/timestamp",
            "invalid_timestamp",
        ),
        (
            "value",
            json!("1; DROP TABLE events"),
            "/value",
            "wrong_type",
        ),
        // An unknown field's pointer escapes '/' and '~' (RFC 6901).
        ("'/~\"; --", json!(1), "/'~1~0\"; --", "unknown_field"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_is_refused_or_literal() -> anyhow::Result<()> {
    let stack = Stack::start("hostile").await?;

    // 3. Ingest: hostile values in validated fields are refused naming the field, and
    // quarantined with the payload exactly as sent.
    let mut raws = Vec::new();
    for (field, value, pointer, code) in hostile_ingest() {
        let mut ev = json!({"session_id": "s", "category": "page_interaction",
                            "name": "page_view", "data": {"host": "h", "path": "/"},
                            "timestamp": "2021-09-26T09:15:27Z"});
        ev[field] = value;
        let body = serde_json::to_string(&ev)?;
        let (status, answer) = post_text(&stack, "/v1/events", &body).await?;
        let errors = &answer["results"][0]["errors"];
        let named = errors.as_array().is_some_and(|es| {
            es.iter()
                .any(|e| e["field"] == pointer && e["code"] == code)
        });
        assert!(
            status == 400 && answer["error"]["code"] == "invalid_events" && named,
            "ingest {field}: {status} {answer}"
        );
        raws.push(body);
    }
    for (body, field) in [
        (
            json!({"user_id": "u\u{0}", "machine_id": "m", "org_id": 1}),
            "/user_id",
        ),
        (
            json!({"user_id": "u", "machine_id": "'".repeat(129), "org_id": 1}),
            "/machine_id",
        ),
    ] {
        let (status, answer) = post_text(&stack, "/v1/sessions", &body.to_string()).await?;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{answer}");
    }
    let (status, answer) = post_text(
        &stack,
        &format!("/v1/sessions/{}/end", enc("a\0b")),
        r#"{"ended_at": "2021-09-26 09:20:00"}"#,
    )
    .await?;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["details"][0]["field"], "session_id");

    // 1. Store events and sessions whose text is hostile, all accepted.
    let events = stored_events();
    let batch = Value::Array(events.iter().map(|e| e.sent.clone()).collect());
    let res = stack.post_events(&batch).await?;
    assert_eq!(res.status(), 202, "{}", res.text().await?);
    for (session, user, machine, org) in STARTS {
        let body = json!({"session_id": session, "user_id": user, "machine_id": machine,
                          "org_id": org, "started_at": "2021-01-01 00:00:00"});
        let (status, answer) = post_text(&stack, "/v1/sessions", &body.to_string()).await?;
        assert_eq!(status, 202, "{answer}");
    }
    let all = wait_for(Duration::from_secs(60), "every stored event", || async {
        match get_path(&stack, "/v1/events?limit=1000").await {
            Ok((200, b)) if b["events"].as_array().map(Vec::len) == Some(events.len()) => Some(b),
            _ => None,
        }
    })
    .await?;
    for (session, user, ..) in STARTS {
        let path = format!("/v1/users/{}/sessions", enc(user));
        wait_for(Duration::from_secs(60), "the start records", || async {
            match get_path(&stack, &path).await {
                Ok((200, b)) if b["sessions"][0]["session_id"] == *session => Some(()),
                _ => None,
            }
        })
        .await?;
    }
    let rejected = wait_for(
        Duration::from_secs(60),
        "the quarantined events",
        || async {
            match get_path(&stack, "/v1/rejected?limit=1000").await {
                Ok((200, b)) if b["rejected"].as_array().map(Vec::len) == Some(raws.len()) => {
                    Some(b)
                }
                _ => None,
            }
        },
    )
    .await?;
    let rejected = rejected["rejected"].as_array().cloned().unwrap_or_default();
    let quarantined: BTreeSet<&str> = rejected.iter().filter_map(|r| r["raw"].as_str()).collect();
    let sent: BTreeSet<&str> = raws.iter().map(String::as_str).collect();
    assert_eq!(quarantined, sent, "raw payloads, byte for byte");
    let model = Model {
        events,
        rejected: rejected
            .iter()
            .map(|r| {
                let at = DateTime::parse_from_rfc3339(r["received_at"].as_str().unwrap_or(""))
                    .map(|t| t.timestamp_micros())
                    .unwrap_or(i64::MIN);
                let codes = r["reasons"]
                    .as_array()
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|x| x["code"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    r["rejection_id"].as_str().unwrap_or("").to_owned(),
                    at,
                    codes,
                )
            })
            .collect(),
    };

    // Every event reads back as sent, through each read of a session.
    // `session`, when given, is the only session the list may hold.
    let read_back = |list: &Value, session: Option<&str>| -> Result<usize, String> {
        let list = list.as_array().ok_or("no events")?;
        for got in list {
            let sent = model
                .events
                .iter()
                .find(|e| got["event_id"] == e.id.as_str())
                .ok_or(format!("unknown event {got}"))?;
            for key in [
                "session_id",
                "category",
                "name",
                "timestamp",
                "data",
                "value",
            ] {
                if got[key] != sent.sent[key] {
                    return Err(format!("{key}: {} != {}", got[key], sent.sent[key]));
                }
            }
            if session.is_some_and(|s| s != sent.session) {
                return Err(format!("event of {:?} in {session:?}", sent.session));
            }
        }
        Ok(list.len())
    };
    assert_eq!(read_back(&all["events"], None), Ok(model.events.len()));
    let check_intact = || async {
        let mut n = 0;
        for session in stored_session_ids() {
            let want = model
                .select(&Filter {
                    session: Some(session.clone()),
                    ..Filter::default()
                })
                .len();
            for path in [
                format!("/v1/sessions/{}", enc(&session)),
                format!("/v1/sessions/{}/events", enc(&session)),
                format!("/v1/events?session_id={}", enc(&session)),
            ] {
                let (status, body) = get_path(&stack, &path).await?;
                anyhow::ensure!(status == 200, "{path}: {status} {body}");
                if !path.starts_with("/v1/events") {
                    anyhow::ensure!(body["session_id"] == session.as_str(), "{path}: {body}");
                }
                let got = read_back(&body["events"], Some(&session))
                    .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                anyhow::ensure!(got == want, "{path}: {got} events, expected {want}");
                n += 1;
            }
        }
        // The start records' hostile owners, as sent.
        for (session, user, machine, org) in STARTS {
            let path = format!("/v1/sessions/{}", enc(session));
            let (status, body) = get_path(&stack, &path).await?;
            let owners = [&body["user_id"], &body["machine_id"], &body["org_id"]];
            anyhow::ensure!(
                status == 200 && owners == [user, machine, org],
                "{path}: {status} {body}"
            );
            n += 1;
        }
        // Wildcards and near neighbours match nothing of the others.
        for session in ["a%", "a_", "%c", "_bc", "ab%", "A_C", "' OR '1'='1"] {
            let (status, body) =
                get_path(&stack, &format!("/v1/events?session_id={}", enc(session))).await?;
            anyhow::ensure!(
                status == 200 && body["events"] == json!([]),
                "{session}: {status} {body}"
            );
            n += 1;
        }
        let (status, _) = get_path(&stack, "/readyz").await?;
        anyhow::ensure!(status == 200, "/readyz answered {status}");
        anyhow::Ok(n + 1)
    };
    let before = check_intact().await?;

    // 2. Every parameter of every endpoint, with every hostile value.
    let values = hostile_values();
    let mut probes = Vec::new();
    let mut targets_tried = 0;
    for ep in ENDPOINTS {
        let mut targets: Vec<Target> = ep.params().iter().copied().map(Target::Param).collect();
        if ep.path_field().is_some() {
            targets.push(Target::Path);
        }
        targets.push(Target::UnknownValue);
        targets_tried += targets.len() + 1;
        for target in targets {
            for value in &values {
                probes.push(probe(&model, ep, target.clone(), value));
            }
        }
        for value in values.iter().filter(|v| matches!(v, Hostile::Text(_))) {
            probes.push(probe(&model, ep, Target::UnknownName, value));
        }
    }
    // Parameter pollution: a repeated parameter must still mean one literal value.
    let polluted = stack.query.url(&format!(
        "/v1/events?session_id={}&session_id={}",
        enc("abc"),
        enc("a_c")
    ));
    let shared = &stack;
    let addr = stack.query.addr;
    let answers: Vec<(usize, anyhow::Result<(u16, Value)>)> = stream::iter(probes.iter())
        .enumerate()
        .map(|(i, p)| async move {
            let answer = if p.huge {
                let target = p.target.clone();
                tokio::task::spawn_blocking(move || raw_status(addr, &target))
                    .await
                    .map_err(anyhow::Error::from)
                    .and_then(|r| Ok((r?, Value::Null)))
            } else {
                get(shared, &shared.query.url(&p.target)).await
            };
            (i, answer)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut counts = std::collections::BTreeMap::<Outcome, usize>::new();
    let mut failures = Vec::new();
    for (i, answer) in answers {
        let p = &probes[i];
        match answer {
            Ok((status, body)) => match judge(p, status, &body) {
                Ok(o) => *counts.entry(o).or_default() += 1,
                Err(why) => failures.push(format!("{}: {why}; body {}", p.what, short(&body))),
            },
            Err(e) => failures.push(format!("{}: request failed: {e}", p.what)),
        }
    }
    let (status, body) = get(&stack, &polluted).await?;
    let one_of = [Some("abc"), Some("a_c")].map(|s| {
        model.select(&Filter {
            session: s.map(str::to_owned),
            ..Filter::default()
        })
    });
    let got = ids(&body["events"], "event_id");
    match status {
        400 if body["error"]["details"][0]["field"] == "session_id" => {
            *counts.entry(Outcome::Refused).or_default() += 1;
        }
        200 if one_of.iter().any(|w| got.as_ref() == Some(w)) => {
            *counts.entry(Outcome::Literal).or_default() += 1;
        }
        _ => failures.push(format!("repeated session_id: {status} {}", short(&body))),
    }

    // The data is intact afterwards.
    let after = check_intact().await?;
    let n = |o| counts.get(&o).copied().unwrap_or(0);
    println!(
        "hostile: {} probe requests ({} parameters, path ids and unknown names x {} values, \
         and one repeated parameter): {} refused with 400 naming the parameter, {} answered \
         200 with exactly the literal rows, {} 404 (unknown session or no route), {} refused \
         by the HTTP layer with {HEAD_TOO_LARGE}; {} failures; plus {} ingest requests and {} \
         read-back requests",
        probes.len() + 1,
        targets_tried,
        values.len(),
        n(Outcome::Refused),
        n(Outcome::Literal),
        n(Outcome::NotFound),
        n(Outcome::HeadTooLarge),
        failures.len(),
        raws.len() + 3 + 1 + STARTS.len(),
        before + after,
    );
    assert!(
        failures.is_empty(),
        "{} of {} probes broke the contract:\n{}",
        failures.len(),
        probes.len() + 1,
        failures.join("\n")
    );
    stack.stop().await
}
