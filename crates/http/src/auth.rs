//! Authentication on the wire: the filter every API route puts in front of its handler, the
//! one mapping of [`AuthError`] to HTTP, per-client metrics, and `POST /oauth/token`.
//!
//! Credentials never reach a log line or a metric label: labels carry client ids (public,
//! and bounded by the clients file), failures carry a reason.

use crate::error::HttpError;
use base64::Engine;
use eye_auth::{AuthError, Authenticator, Principal, Scope, TokenError};
use prometheus::{IntCounterVec, Opts, Registry};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The realm in every challenge.
const REALM: &str = "the-eye";
/// At most this many distinct client labels per service; later clients count as `other`.
const MAX_CLIENT_LABELS: usize = 1_000;

/// The one mapping of authentication failures to HTTP (RFC 6750 §3 for 401 and 403).
pub fn http_error(e: &AuthError) -> HttpError {
    let message = e.to_string();
    let code = error_code(e);
    match e {
        AuthError::Missing => HttpError::new(StatusCode::UNAUTHORIZED, code, message)
            .with_www_authenticate(format!("Bearer realm=\"{REALM}\"")),
        AuthError::Malformed | AuthError::Invalid | AuthError::Expired => {
            HttpError::new(StatusCode::UNAUTHORIZED, code, message).with_www_authenticate(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                if *e == AuthError::Expired {
                    "the token has expired"
                } else {
                    "the credential is not valid"
                }
            ))
        }
        // RFC 6750 §3: a credential that does not enable access to the resource gets a
        // challenge too, so a client library can tell a missing scope from a bad token.
        AuthError::Forbidden(_) => HttpError::new(StatusCode::FORBIDDEN, code, message)
            .with_www_authenticate(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\""
            )),
        AuthError::BatchOverBurst(_) => {
            HttpError::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
        }
        AuthError::RateLimited { .. } => {
            let secs = e.retry_after_secs().unwrap_or(1);
            HttpError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
                .with_retry_after(u32::try_from(secs).unwrap_or(u32::MAX))
        }
    }
}

/// The error code [`http_error`] answers `e` with.
pub fn error_code(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "unauthenticated",
        AuthError::Malformed | AuthError::Invalid | AuthError::Expired => "invalid_credentials",
        AuthError::Forbidden(_) => "insufficient_scope",
        AuthError::BatchOverBurst(_) => "batch_exceeds_event_burst",
        AuthError::RateLimited { .. } => "rate_limited",
    }
}

fn reason(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "missing",
        AuthError::Malformed => "malformed",
        AuthError::Invalid => "invalid",
        AuthError::Expired => "expired",
        AuthError::Forbidden(_) => "forbidden",
        AuthError::BatchOverBurst(_) => "batch_over_burst",
        AuthError::RateLimited { .. } => "rate_limited",
    }
}

/// Per-client counters, with client labels bounded by [`MAX_CLIENT_LABELS`].
#[derive(Clone)]
pub struct AuthMetrics {
    failures: IntCounterVec,
    throttled: IntCounterVec,
    events: IntCounterVec,
    requests: IntCounterVec,
    labels: Arc<Mutex<HashSet<String>>>,
}

impl AuthMetrics {
    fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
            // A second registration (two services in one test process) is harmless.
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        Self {
            failures: counter(
                "eye_auth_failures_total",
                "Requests refused by authentication or authorization, by reason.",
                &["reason"],
            ),
            throttled: counter(
                "eye_client_throttled_total",
                "Requests refused with 429, by client and by the limit hit (requests or events).",
                &["client", "limit"],
            ),
            events: counter(
                "eye_client_events_total",
                "Events per client, by outcome (accepted, rejected).",
                &["client", "outcome"],
            ),
            requests: counter(
                "eye_client_requests_total",
                "Authenticated requests per client.",
                &["client"],
            ),
            labels: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The label for a client: its id while fewer than [`MAX_CLIENT_LABELS`] are in use.
    fn label(&self, client: &str) -> String {
        let mut seen = self
            .labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.contains(client) || seen.len() < MAX_CLIENT_LABELS {
            seen.insert(client.to_owned());
            client.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts a request's events by outcome.
    pub fn events(&self, client: &str, accepted: usize, rejected: usize) {
        let label = self.label(client);
        for (outcome, n) in [("accepted", accepted), ("rejected", rejected)] {
            if n > 0 {
                self.events
                    .with_label_values(&[label.as_str(), outcome])
                    .inc_by(n as u64);
            }
        }
    }

    /// Counts a refusal; throttling also by client.
    pub fn refused(&self, client: Option<&str>, e: &AuthError) {
        self.failures.with_label_values(&[reason(e)]).inc();
        if let (Some(c), AuthError::RateLimited { limit, .. }) = (client, e) {
            let label = self.label(c);
            self.throttled
                .with_label_values(&[label.as_str(), limit])
                .inc();
        }
    }
}

/// Authentication for one service: the authenticator and its metrics. Cheap to clone.
#[derive(Clone)]
pub struct Guard {
    auth: Authenticator,
    metrics: AuthMetrics,
}

impl Guard {
    pub fn new(auth: Authenticator, registry: &Registry) -> Self {
        auth.register_metrics(registry);
        Self {
            auth,
            metrics: AuthMetrics::new(registry),
        }
    }

    pub fn metrics(&self) -> &AuthMetrics {
        &self.metrics
    }

    /// The clients as the file declares them now.
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Admits a caller holding any of `scopes`, within its request budget; rejects with
    /// 401, 403 or 429 otherwise.
    pub fn require(
        &self,
        scopes: &'static [Scope],
    ) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
        let guard = self.clone();
        authorization().and_then(move |authorization: Option<HeaderValue>| {
            let guard = guard.clone();
            async move {
                guard
                    .admit(authorization.as_ref(), scopes)
                    .await
                    .map_err(warp::reject::custom)
            }
        })
    }

    async fn admit(
        &self,
        authorization: Option<&HeaderValue>,
        scopes: &[Scope],
    ) -> Result<Principal, HttpError> {
        let refuse = |client: Option<&str>, e: AuthError| {
            self.metrics.refused(client, &e);
            http_error(&e)
        };
        // Every credential scheme here is visible ASCII (RFC 6750 token68, RFC 7617), so a
        // value with other bytes is a bad credential like any other, not a bad request.
        let Ok(authorization) = authorization.map(HeaderValue::to_str).transpose() else {
            let mut e = refuse(None, AuthError::Malformed);
            e.body.message = "the Authorization header must be visible ASCII, \
                              `Bearer <API key or token>`"
                .into();
            return Err(e);
        };
        let principal = self
            .auth
            .authenticate(authorization)
            .map_err(|e| refuse(None, e))?;
        self.authorize(principal, scopes)
            .await
            .map_err(|e| http_error(&e))
    }

    /// Admits an authenticated caller holding any of `scopes`, within its request budget;
    /// a refusal is counted here.
    async fn authorize(
        &self,
        principal: Principal,
        scopes: &[Scope],
    ) -> Result<Principal, AuthError> {
        let refuse = |e: AuthError| {
            self.metrics.refused(Some(&principal.client_id), &e);
            e
        };
        if !principal.has_any(scopes) {
            let needed = scopes.iter().map(|s| s.as_str()).collect();
            return Err(refuse(AuthError::Forbidden(needed)));
        }
        principal.admit_request().await.map_err(refuse)?;
        let label = self.metrics.label(&principal.client_id);
        self.metrics.requests.with_label_values(&[&label]).inc();
        Ok(principal)
    }

    /// Segment's credential: the write key (an API key) as the user name of HTTP Basic,
    /// or any credential [`Guard::require`] takes. `None` when the request has no
    /// `Authorization` header: the key may then come in the body, for
    /// [`Guard::admit_write_key`] once the body is read.
    pub fn require_write_key(
        &self,
        scopes: &'static [Scope],
    ) -> impl Filter<Extract = (Option<Principal>,), Error = warp::Rejection> + Clone {
        let guard = self.clone();
        authorization().and_then(move |authorization: Option<HeaderValue>| {
            let guard = guard.clone();
            async move {
                let Some(value) = authorization else {
                    return Ok(None);
                };
                match value.to_str().ok().and_then(write_key_from_basic) {
                    Some(key) => guard
                        .admit_write_key(&key, scopes)
                        .await
                        .map(Some)
                        .map_err(|e| warp::reject::custom(http_error(&e))),
                    None => guard
                        .admit(Some(&value), scopes)
                        .await
                        .map(Some)
                        .map_err(warp::reject::custom),
                }
            }
        })
    }

    /// Admits the holder of the write key `key` (an API key sent bare) with any of
    /// `scopes`, within its request budget; a refusal is counted here and answered by
    /// [`http_error`] in the service's own mapping.
    pub async fn admit_write_key(
        &self,
        key: &str,
        scopes: &[Scope],
    ) -> Result<Principal, AuthError> {
        let principal = self
            .auth
            .authenticate_api_key(key)
            .inspect_err(|e| self.metrics.refused(None, e))?;
        self.authorize(principal, scopes).await
    }

    /// Takes `n` events from the client's budget; a refusal is counted here and answered
    /// by [`http_error`] in the service's own mapping.
    pub async fn admit_events(&self, principal: &Principal, n: usize) -> Result<(), AuthError> {
        principal
            .admit_events(u32::try_from(n).unwrap_or(u32::MAX))
            .await
            .inspect_err(|e| self.metrics.refused(Some(&principal.client_id), e))
    }

    /// `POST /oauth/token`: the OAuth2 client-credentials grant (RFC 6749 §4.4). Client
    /// credentials come by HTTP Basic or in the form body; answers and errors are the RFC's
    /// (§5.1, §5.2), not the API's error shape, so that OAuth2 client libraries work.
    pub fn token_route(
        &self,
    ) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
        self.token_endpoint(warp::path!("oauth" / "token"), ScopeNames::Full)
    }

    /// The token endpoint at `path`, its granted scopes named as `names` says.
    fn token_endpoint(
        &self,
        path: impl Filter<Extract = (), Error = warp::Rejection> + Clone,
        names: ScopeNames,
    ) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
        let guard = self.clone();
        path.and(warp::post())
            .and(authorization())
            .and(warp::body::content_length_limit(16 * 1024))
            .and(warp::body::bytes())
            .map(
                move |authorization: Option<HeaderValue>, body: bytes::Bytes| {
                    // A value that is not visible ASCII cannot be HTTP Basic: it counts as no
                    // client authentication by header, as an unreadable Basic value does.
                    let authorization = authorization.as_ref().and_then(|v| v.to_str().ok());
                    guard.token(authorization, &body, names)
                },
            )
    }

    fn token(&self, authorization: Option<&str>, body: &[u8], names: ScopeNames) -> Response {
        let form: HashMap<String, String> = match serde_urlencoded::from_bytes(body) {
            Ok(f) => f,
            Err(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the body must be application/x-www-form-urlencoded",
                )
            }
        };
        match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => {}
            Some(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "only grant_type=client_credentials is supported",
                )
            }
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "grant_type is required",
                )
            }
        }
        let basic = authorization.and_then(basic_credentials);
        let in_body = form
            .get("client_id")
            .zip(form.get("client_secret"))
            .map(|(i, s)| (i.clone(), s.clone()));
        // RFC 6749 §2.3: a client must not use more than one authentication method.
        let (id, secret) = match (basic, in_body) {
            (Some(_), Some(_)) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "send client credentials either by HTTP Basic or in the body, not both",
                )
            }
            (Some((i, s)), None) => (i, s),
            (None, Some((i, s))) => (i, s),
            (None, None) => {
                self.metrics.refused(None, &AuthError::Missing);
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client_id and client_secret are required (HTTP Basic or form body)",
                );
            }
        };
        match self
            .auth
            .issue_token(&id, &secret, form.get("scope").map(String::as_str))
        {
            Ok(mut token) => {
                if names == ScopeNames::Short {
                    token.scope = short_scope_names(&token.scope);
                }
                let mut res = warp::reply::json(&token).into_response();
                // RFC 6749 §5.1: token answers must not be cached.
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                res.headers_mut()
                    .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
                res
            }
            Err(TokenError::InvalidClient) => {
                self.metrics.refused(None, &AuthError::Invalid);
                oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication failed",
                )
            }
            Err(e @ TokenError::InvalidScope(_)) => {
                oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string())
            }
        }
    }
}

/// How a token answer names the scopes it grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopeNames {
    /// This API's names (`events:read`).
    Full,
    /// django-oauth-toolkit's names (`read`, `write`, `aggregation`), which its clients ask
    /// for and read back.
    Short,
}

/// `events:write events:read` as `read write`: each scope by the short name
/// [`Scope::parse`] also reads, in the order the toolkit's clients write them
/// (`read write aggregation`); a scope without one keeps its own, last.
fn short_scope_names(scope: &str) -> String {
    let mut names: Vec<(u8, &str)> = scope
        .split_whitespace()
        .map(|name| match Scope::parse(name) {
            Some(Scope::EventsRead) => (0, "read"),
            Some(Scope::EventsWrite) => (1, "write"),
            Some(Scope::AggregationsRead) => (2, "aggregation"),
            _ => (3, name),
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|(_, name)| name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Django REST framework's and django-oauth-toolkit's conventions, for the clients built
/// against them.
impl Guard {
    /// As [`Guard::require`], and also taking `Authorization: Token <credential>`, the
    /// scheme of Django REST framework's `TokenAuthentication`: the credential (an API key
    /// or an access token) is checked exactly as after `Bearer`.
    pub fn require_allowing_token_scheme(
        &self,
        scopes: &'static [Scope],
    ) -> impl Filter<Extract = (Principal,), Error = warp::Rejection> + Clone {
        let guard = self.clone();
        authorization().and_then(move |authorization: Option<HeaderValue>| {
            let guard = guard.clone();
            async move {
                let authorization = authorization.map(|v| token_scheme_as_bearer(&v).unwrap_or(v));
                guard
                    .admit(authorization.as_ref(), scopes)
                    .await
                    .map_err(warp::reject::custom)
            }
        })
    }

    /// `POST /o/token/`, django-oauth-toolkit's client-credentials endpoint: the grant of
    /// `POST /oauth/token`, with the granted scopes named as that toolkit names them
    /// (`read write aggregation`).
    pub fn oauth_toolkit_token_route(
        &self,
    ) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
        // warp takes `/o/token/` and `/o/token` alike.
        self.token_endpoint(warp::path!("o" / "token"), ScopeNames::Short)
    }
}

/// `Token <credential>` as `Bearer <credential>`; `None` for any other scheme.
fn token_scheme_as_bearer(value: &HeaderValue) -> Option<HeaderValue> {
    let (scheme, credential) = value.to_str().ok()?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    HeaderValue::from_str(&format!("Bearer {}", credential.trim())).ok()
}

/// The raw `Authorization` value, if any. warp's typed header extraction refuses a value
/// that is not visible ASCII with its own 400 before the guard could answer it.
fn authorization() -> impl Filter<Extract = (Option<HeaderValue>,), Error = Infallible> + Clone {
    warp::header::value("authorization")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
}

/// `(client_id, client_secret)` from `Authorization: Basic ...` (RFC 6749 §2.3.1: both
/// form-urlencoded before base64).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// The write key of `Authorization: Basic base64(key ":" password)`: the user name, as
/// Segment's SDKs send it (with an empty password). The password is not looked at: the key
/// alone is the secret, and some HTTP tools insist on sending one. Unlike OAuth2's client
/// credentials, the user name is taken as sent (keys hold no characters to escape).
fn write_key_from_basic(header: &str) -> Option<String> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok());
    // Unreadable Basic credentials are a wrong key (401), not another scheme.
    let text = decoded.unwrap_or_default();
    let key = text.split_once(':').map_or(text.as_str(), |(user, _)| user);
    Some(key.to_owned())
}

/// An RFC 6749 §5.2 error. A 401 always names the scheme to authenticate with: RFC 9110
/// §15.5.2 requires a challenge on every 401, and RFC 6749 §5.2 lets it advertise Basic even
/// when the credentials came in the body.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut res = warp::reply::with_status(warp::reply::json(&body), status).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"the-eye\""),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_decoded_per_rfc_6749() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(
            basic_credentials(&enc("abc:s3cret")),
            Some(("abc".into(), "s3cret".into()))
        );
        assert_eq!(
            basic_credentials(&enc("a%3Ab:x+y")),
            Some(("a:b".into(), "x y".into()))
        );
        for bad in ["Bearer x", "Basic !!!", &enc("no-colon"), "Basic"] {
            assert_eq!(basic_credentials(bad), None, "{bad}");
        }
    }

    #[test]
    fn write_keys_are_the_user_name_of_basic() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        let cases = [
            (enc("eye_a.b:"), Some("eye_a.b")),
            (enc("eye_a.b:ignored"), Some("eye_a.b")),
            (enc("eye_a.b"), Some("eye_a.b")),
            (format!("basic {}", &enc("k:")[6..]), Some("k")),
            ("Basic !!!".to_owned(), Some("")),
            (enc(":eye_a.b"), Some("")),
            ("Bearer eye_a.b".to_owned(), None),
            ("Basic".to_owned(), None),
        ];
        for (header, want) in cases {
            assert_eq!(write_key_from_basic(&header).as_deref(), want, "{header}");
        }
    }

    /// A guard over an empty clients file: no credential passes, which is all these tests need.
    fn guard() -> Guard {
        let dir = std::env::temp_dir().join(format!("eye-web-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("clients.toml");
        std::fs::write(&path, "").expect("clients file");
        let path = path.display().to_string();
        let config = eye_runtime::config::from_iter(
            [
                ("EYE_AUTH_CLIENTS_FILE", path.as_str()),
                ("EYE_AUTH_TOKEN_SECRET", "k"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .expect("auth config");
        Guard::new(
            Authenticator::load(&config).expect("empty clients file"),
            &Registry::new(),
        )
    }

    /// The answer to a request through `filter` with `authorization` as its raw bytes.
    async fn answer<F, R>(filter: &F, authorization: &[u8]) -> Response
    where
        F: Filter<Extract = (R,), Error = warp::Rejection> + 'static,
        R: Reply + Send + 'static,
    {
        let value = HeaderValue::from_bytes(authorization).expect("a legal header value");
        match warp::test::request()
            .method("POST")
            .path("/oauth/token")
            .header("authorization", value)
            .body("grant_type=client_credentials")
            .filter(filter)
            .await
        {
            Ok(reply) => reply.into_response(),
            Err(rejection) => crate::error::recover(rejection)
                .await
                .unwrap_or_else(|never| match never {}),
        }
    }

    async fn json(res: Response) -> serde_json::Value {
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&body).expect("a JSON body")
    }

    #[tokio::test]
    async fn bytes_outside_visible_ascii_are_a_bad_credential_not_a_bad_request() {
        let guard = guard();
        let require = guard.require(&[Scope::EventsRead]).map(|_| "admitted");
        // The control is an ASCII credential that is just as wrong: both get the same answer.
        for value in [
            &b"Bearer \x80\xff\xfe"[..],
            b"Bearer caf\xe9",
            b"\xc3\xa9",
            b"Bearer not-a-key",
        ] {
            let shown = String::from_utf8_lossy(value).into_owned();
            let res = answer(&require, value).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{shown}");
            let challenge = res.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .expect("ASCII challenge")
                .to_owned();
            assert!(
                challenge.starts_with("Bearer realm=\"the-eye\", error=\"invalid_token\""),
                "{shown}: {challenge}"
            );
            let body = json(res).await;
            assert_eq!(
                body["error"]["code"], "invalid_credentials",
                "{shown}: {body}"
            );
            let message = body["error"]["message"].as_str().unwrap_or_default();
            if !value.is_ascii() {
                assert!(
                    message.contains("Authorization header must be visible ASCII"),
                    "{shown}: {message}"
                );
            }
        }

        // The token endpoint treats such a value as it treats unreadable Basic credentials:
        // no client authentication, so RFC 6749's 401 `invalid_client`, not a 400.
        let token = guard.token_route();
        for value in [&b"Basic \xff\xfe"[..], b"Basic !!!"] {
            let res = answer(&token, value).await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
            assert_eq!(json(res).await["error"], "invalid_client");
        }
    }

    #[test]
    fn auth_errors_map_to_status_and_challenge() {
        let cases = [
            (AuthError::Missing, 401, Some("Bearer realm=\"the-eye\"")),
            (AuthError::Invalid, 401, Some("error=\"invalid_token\"")),
            (AuthError::Expired, 401, Some("has expired")),
            (
                AuthError::Forbidden(vec!["events:read"]),
                403,
                Some("error=\"insufficient_scope\""),
            ),
            (AuthError::BatchOverBurst(5), 413, None),
        ];
        for (e, status, challenge) in cases {
            let res = http_error(&e).into_response();
            assert_eq!(res.status().as_u16(), status, "{e:?}");
            let got = res
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match challenge {
                Some(c) => assert!(got.as_deref().unwrap_or("").contains(c), "{e:?}: {got:?}"),
                None => assert_eq!(got, None, "{e:?}"),
            }
        }
        // Token errors: every 401 challenges (RFC 9110 §15.5.2), a 400 does not; none is cached.
        for (status, challenged) in [
            (StatusCode::UNAUTHORIZED, true),
            (StatusCode::BAD_REQUEST, false),
        ] {
            let res = oauth_error(status, "invalid_client", "d");
            assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(
                res.headers().get(header::WWW_AUTHENTICATE).is_some(),
                challenged,
                "{status}"
            );
        }
        let res = http_error(&AuthError::RateLimited {
            limit: "requests",
            retry_after: std::time::Duration::from_millis(1_500),
        })
        .into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    }
}

#[cfg(test)]
mod django_conventions {
    use super::*;
    use eye_auth::{ClientsFile, NewCredentials};

    #[test]
    fn short_scope_names_are_the_toolkits() {
        let cases = [
            ("events:write events:read", "read write"),
            ("aggregations:read", "aggregation"),
            (
                "admin aggregations:read events:write",
                "write aggregation admin",
            ),
            ("", ""),
        ];
        for (full, short) in cases {
            assert_eq!(short_scope_names(full), short, "{full}");
        }
    }

    #[test]
    fn only_the_token_scheme_is_rewritten() {
        let cases = [
            ("Token eye_a.b", Some("Bearer eye_a.b")),
            ("token  eye_a.b ", Some("Bearer eye_a.b")),
            ("TOKEN x", Some("Bearer x")),
            ("Bearer eye_a.b", None),
            ("Basic YTpi", None),
            ("Token", None),
            ("Tokens x", None),
        ];
        for (sent, want) in cases {
            let got = token_scheme_as_bearer(&HeaderValue::from_static(sent));
            assert_eq!(got.as_ref().and_then(|v| v.to_str().ok()), want, "{sent}");
        }
    }

    /// A guard over a clients file holding one client with `scopes`, and its credentials.
    fn guard_with(scopes: Vec<Scope>) -> (Guard, NewCredentials) {
        let dir = std::env::temp_dir().join(format!(
            "eye-web-auth-django-{}-{}",
            std::process::id(),
            scopes.len()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("clients.toml");
        let creds = NewCredentials::generate().expect("random bytes");
        ClientsFile {
            clients: vec![creds.record("django", scopes)],
        }
        .save(&path)
        .expect("clients file");
        let path = path.display().to_string();
        let config = eye_runtime::config::from_iter(
            [
                ("EYE_AUTH_CLIENTS_FILE", path.as_str()),
                ("EYE_AUTH_TOKEN_SECRET", "k"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        )
        .expect("auth config");
        let guard = Guard::new(
            Authenticator::load(&config).expect("loads"),
            &Registry::new(),
        );
        (guard, creds)
    }

    async fn post<F, R>(filter: &F, path: &str, authorization: Option<&str>, body: &str) -> Response
    where
        F: Filter<Extract = (R,), Error = warp::Rejection> + 'static,
        R: Reply + Send + 'static,
    {
        let mut req = warp::test::request().method("POST").path(path).body(body);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        match req.filter(filter).await {
            Ok(reply) => reply.into_response(),
            Err(rejection) => crate::error::recover(rejection)
                .await
                .unwrap_or_else(|never| match never {}),
        }
    }

    async fn json(res: Response) -> serde_json::Value {
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .expect("body")
            .to_bytes();
        serde_json::from_slice(&body).expect("a JSON body")
    }

    #[tokio::test]
    async fn the_toolkit_endpoint_grants_its_scope_names() {
        let (guard, creds) = guard_with(vec![
            Scope::EventsRead,
            Scope::EventsWrite,
            Scope::AggregationsRead,
        ]);
        let route = guard.oauth_toolkit_token_route();
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", creds.id, creds.secret))
        );
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=read+write+aggregation",
            creds.id, creds.secret
        );
        let grant = "grant_type=client_credentials&scope=read%20write%20aggregation";
        // (path, Authorization, body, status, what the answer says)
        let cases: Vec<(&str, Option<&str>, &str, u16, serde_json::Value)> = vec![
            (
                "/o/token/",
                Some(&basic),
                grant,
                200,
                serde_json::json!("read write aggregation"),
            ),
            (
                "/o/token/",
                None,
                &form,
                200,
                serde_json::json!("read write aggregation"),
            ),
            (
                "/o/token",
                Some(&basic),
                "grant_type=client_credentials&scope=read",
                200,
                serde_json::json!("read"),
            ),
            (
                "/o/token/",
                Some(&basic),
                "grant_type=password",
                400,
                serde_json::json!("unsupported_grant_type"),
            ),
            (
                "/o/token/",
                Some(&basic),
                "scope=read",
                400,
                serde_json::json!("invalid_request"),
            ),
            (
                "/o/token/",
                Some(&basic),
                "grant_type=client_credentials&scope=everything",
                400,
                serde_json::json!("invalid_scope"),
            ),
            (
                "/o/token/",
                None,
                "grant_type=client_credentials",
                401,
                serde_json::json!("invalid_client"),
            ),
            (
                "/o/token/",
                Some("Basic d3Jvbmc6d3Jvbmc="),
                "grant_type=client_credentials",
                401,
                serde_json::json!("invalid_client"),
            ),
        ];
        for (i, (path, authorization, body, status, said)) in cases.into_iter().enumerate() {
            let res = post(&route, path, authorization, body).await;
            assert_eq!(res.status().as_u16(), status, "case {i}");
            let body = json(res).await;
            if status == 200 {
                assert_eq!(body["scope"], said, "case {i}: {body}");
                assert_eq!(body["token_type"], "Bearer", "case {i}");
                assert!(
                    body["expires_in"].as_u64().is_some_and(|s| s > 0),
                    "case {i}"
                );
                // The token is a credential like any other, by either scheme.
                let token = body["access_token"].as_str().expect("a token");
                let require = guard
                    .require_allowing_token_scheme(&[Scope::EventsRead])
                    .map(|p: Principal| p.client_id);
                for scheme in ["Bearer", "Token"] {
                    let res = post(&require, "/", Some(&format!("{scheme} {token}")), "").await;
                    assert_eq!(res.status(), StatusCode::OK, "case {i}: {scheme}");
                }
            } else {
                assert_eq!(body["error"], said, "case {i}: {body}");
            }
        }
    }

    #[tokio::test]
    async fn the_token_scheme_is_taken_only_where_a_route_allows_it() {
        let (guard, creds) = guard_with(vec![Scope::EventsWrite]);
        let key = creds.api_key();
        let allowing = guard
            .require_allowing_token_scheme(&[Scope::EventsWrite])
            .map(|p: Principal| p.client_id);
        let plain = guard
            .require(&[Scope::EventsWrite])
            .map(|p: Principal| p.client_id);
        let reading = guard
            .require_allowing_token_scheme(&[Scope::EventsRead])
            .map(|p: Principal| p.client_id);
        let token = format!("Token {key}");
        let bearer = format!("Bearer {key}");
        let cases = [
            (post(&allowing, "/", Some(&token), "").await, 200),
            (post(&allowing, "/", Some(&bearer), "").await, 200),
            (
                post(&allowing, "/", Some("Token eye_nope.nope"), "").await,
                401,
            ),
            (post(&allowing, "/", None, "").await, 401),
            (post(&plain, "/", Some(&token), "").await, 401),
            (post(&plain, "/", Some(&bearer), "").await, 200),
            (post(&reading, "/", Some(&token), "").await, 403),
        ];
        for (i, (res, status)) in cases.into_iter().enumerate() {
            assert_eq!(res.status().as_u16(), status, "case {i}");
        }
    }
}
