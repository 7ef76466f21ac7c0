//! Trusted clients: who is calling, what they may do, and how fast.
//!
//! A request carries `Authorization: Bearer <credential>`, where the credential is either
//! an API key (`eye_<id>.<secret>`, see [`clients`]) or a token from `POST /oauth/token`
//! (an HS256 JWT naming the client and its granted scopes). Either way the client must
//! still be declared and not revoked in the clients file, which is re-read when it
//! changes, so a revocation also ends the client's outstanding tokens.
//!
//! Each client has two budgets, requests and events, each a GCRA bucket (governor's). By
//! default every process keeps its own; with `EYE_AUTH_REDIS_URL` set, every replica of a
//! service shares them through Redis ([`shared`]).
//!
//! HTTP lives in the services (`eye_http::auth` maps [`AuthError`] to 401/403/429).
//! Nothing here logs a credential: errors name the client id at most.

pub mod clients;
pub mod config;
pub mod shared;

pub use clients::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};

use crate::config::AuthConfig;
use crate::shared::{Cells, SharedLimits, Verdict};
use arc_swap::ArcSwap;
use governor::{clock::Clock, DefaultDirectRateLimiter, Quota};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const ISSUER: &str = "the-eye";

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    ApiKey,
    Token,
}

/// A client's rules for what it writes, as its record in the clients file sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRules {
    /// Categories the client may write; `None` means any.
    pub categories: Option<Vec<String>>,
    /// Its own policy for event types without a schema, if it has one.
    pub unknown_types: Option<eye_model::schema::UnknownTypePolicy>,
}

impl ClientRules {
    /// Whether the client may write events of `category`.
    pub fn may_write(&self, category: &str) -> bool {
        category_allowed(self.categories.as_deref(), category)
    }
}

/// Whether an allow-list of categories (`None`: any) admits `category`.
fn category_allowed(categories: Option<&[String]>, category: &str) -> bool {
    categories.is_none_or(|allowed| allowed.iter().any(|c| c == category))
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub client_id: String,
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    pub categories: Option<Vec<String>>,
    /// The client's own policy for event types without a schema, when its record sets one.
    pub unknown_types: Option<eye_model::schema::UnknownTypePolicy>,
    pub via: Via,
    limiters: Arc<Limiters>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    pub fn has_any(&self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|s| self.has(*s))
    }

    /// Whether the client may write events of `category`.
    pub fn may_write(&self, category: &str) -> bool {
        category_allowed(self.categories.as_deref(), category)
    }

    /// Takes one request from the client's bucket (shared by the service's replicas when
    /// Redis is configured: one round trip).
    pub async fn admit_request(&self) -> Result<(), AuthError> {
        self.limiters.requests.admit(1).await
    }

    /// Takes `n` events from the client's bucket (as [`Principal::admit_request`]).
    pub async fn admit_events(&self, n: u32) -> Result<(), AuthError> {
        self.limiters.events.admit(n).await
    }
}

/// One budget of one client: governor's bucket in this process and, when Redis is
/// configured, the bucket every replica shares.
struct Budget {
    limit: &'static str,
    /// The budget as configured: the shared bucket's quota.
    quota: Quota,
    /// Without Redis, the budget itself; with Redis, this replica's fallback share of it
    /// (`1/EYE_AUTH_REPLICAS`), used only while Redis does not answer.
    local: DefaultDirectRateLimiter,
    shared: Option<SharedBudget>,
    /// The outage ([`SharedLimits::outage`]) the fallback bucket was last emptied for.
    emptied_for: AtomicU64,
}

struct SharedBudget {
    limits: Arc<SharedLimits>,
    key: String,
    cells: Cells,
}

impl Budget {
    fn new(limit: &'static str, quota: Quota, shared: Option<(&Arc<SharedLimits>, &str)>) -> Self {
        let Some((limits, client)) = shared else {
            return Self {
                limit,
                quota,
                local: DefaultDirectRateLimiter::direct(quota),
                shared: None,
                emptied_for: AtomicU64::new(0),
            };
        };
        Self {
            limit,
            quota,
            local: DefaultDirectRateLimiter::direct(share(quota, limits.replicas)),
            shared: Some(SharedBudget {
                limits: Arc::clone(limits),
                key: limits.key(client, limit, &quota),
                cells: Cells::of(&quota),
            }),
            emptied_for: AtomicU64::new(0),
        }
    }

    async fn admit(&self, n: u32) -> Result<(), AuthError> {
        let Some(cells) = NonZeroU32::new(n) else {
            return Ok(());
        };
        let Some(shared) = &self.shared else {
            return admit_local(&self.local, cells, self.limit);
        };
        let burst = self.quota.burst_size().get();
        if n > burst {
            return Err(AuthError::BatchOverBurst(burst));
        }
        match shared
            .limits
            .admit(&shared.key, shared.cells, n, self.limit)
            .await
        {
            Some(Verdict::Admitted) => Ok(()),
            Some(Verdict::Wait(retry_after)) => Err(AuthError::RateLimited {
                limit: self.limit,
                retry_after,
            }),
            Some(Verdict::OverBurst(burst)) => Err(AuthError::BatchOverBurst(burst)),
            None => match self.admit_fallback(&shared.limits, cells) {
                // Within the budget, beyond this replica's share of it: the batch may pass
                // once Redis answers again, so it is a wait, not a refusal for good.
                Err(AuthError::BatchOverBurst(_)) => Err(AuthError::RateLimited {
                    limit: self.limit,
                    retry_after: shared.limits.retry_interval(),
                }),
                other => other,
            },
        }
    }
}

impl Budget {
    /// The fallback share's verdict. Each outage starts it empty: the shared burst may have
    /// just been spent, and a full share on every replica would grant it again.
    fn admit_fallback(&self, limits: &SharedLimits, n: NonZeroU32) -> Result<(), AuthError> {
        let outage = limits.outage();
        if self.emptied_for.swap(outage, Ordering::AcqRel) != outage {
            drain(&self.local);
        }
        admit_local(&self.local, n, self.limit)
    }
}

/// Takes every cell `limiter` has (in at most a few dozen calls).
fn drain(limiter: &DefaultDirectRateLimiter) {
    for bit in (0..32).rev() {
        let n = NonZeroU32::new(1 << bit).unwrap_or(NonZeroU32::MIN);
        while let Ok(Ok(())) = limiter.check_n(n) {}
    }
}

/// `1/replicas` of `quota`: the emission interval times `replicas`, the burst divided (at
/// least one).
fn share(quota: Quota, replicas: u32) -> Quota {
    let replicas = replicas.max(1);
    let burst = NonZeroU32::new(quota.burst_size().get() / replicas).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(quota.replenish_interval().saturating_mul(replicas))
        .unwrap_or(quota)
        .allow_burst(burst)
}

/// governor's verdict in this process.
fn admit_local(
    limiter: &DefaultDirectRateLimiter,
    n: NonZeroU32,
    limit: &'static str,
) -> Result<(), AuthError> {
    match limiter.check_n(n) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(AuthError::RateLimited {
            limit,
            retry_after: not_until.wait_time_from(governor::clock::DefaultClock::default().now()),
        }),
        // More than the burst in one go can never pass, however long the client waits.
        Err(governor::InsufficientCapacity(burst)) => Err(AuthError::BatchOverBurst(burst)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs credentials: Authorization: Bearer <API key or token>")]
    Missing,
    #[error("the Authorization header must be `Bearer <API key or token>`")]
    Malformed,
    #[error("the credential is not valid")]
    Invalid,
    #[error("the token has expired; request a new one from /oauth/token")]
    Expired,
    #[error("this client lacks the scope this endpoint needs: one of {}", .0.join(", "))]
    Forbidden(Vec<&'static str>),
    #[error("this client may send at most {0} events at once (its event burst); split the batch")]
    BatchOverBurst(u32),
    #[error("rate limit on {limit} exceeded; retry after {}", retry_secs(.retry_after))]
    RateLimited {
        limit: &'static str,
        retry_after: Duration,
    },
}

fn retry_secs(d: &Duration) -> String {
    format!("{} s", d.as_secs_f64().ceil().max(1.0))
}

impl AuthError {
    /// Whole seconds to wait, at least one (for `Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => {
                Some((retry_after.as_secs_f64().ceil() as u64).max(1))
            }
            _ => None,
        }
    }
}

struct Limiters {
    requests: Budget,
    events: Budget,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Limiters")
    }
}

fn quota(per_s: u32, burst: u32) -> Quota {
    let per_s = NonZeroU32::new(per_s).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(per_s);
    Quota::per_second(per_s).allow_burst(burst)
}

/// The loaded clients: records by id, each with its rate limiters, which survive reloads
/// as long as the client's limits do not change.
struct Loaded {
    clients: HashMap<String, (ClientRecord, Arc<Limiters>)>,
    /// Modification time and inode of the file read: every save renames a new file into
    /// place, so the inode tells two saves apart even within one mtime tick.
    version: Option<(SystemTime, u64)>,
}

fn file_version(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, inode))
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    scope: String,
    iat: u64,
    exp: u64,
}

/// A granted token, as `POST /oauth/token` answers it (RFC 6749 §5.1). `Debug` leaves the
/// token out: it is a credential until it expires.
#[derive(Clone, Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Why an [`Authenticator`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Clients(#[from] clients::ClientsFileError),
    #[error("EYE_AUTH_TOKEN_SECRET is not set and no random key could be drawn")]
    RandomKey(#[source] getrandom::Error),
    #[error("EYE_AUTH_TOKEN_SECRET is not a usable HMAC key")]
    SigningKey(#[source] jsonwebtoken::errors::Error),
    #[error(transparent)]
    SharedLimits(#[from] shared::SharedLimitsError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// RFC 6749 §5.2 `invalid_client`.
    #[error("client authentication failed")]
    InvalidClient,
    /// RFC 6749 §5.2 `invalid_scope`.
    #[error("requested scope is unknown or not granted to this client: {0}")]
    InvalidScope(String),
}

/// Checks credentials against the clients file and issues tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    loaded: ArcSwap<Loaded>,
    reload: Mutex<()>,
    config: AuthConfig,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The budgets' shared buckets (Redis), when `EYE_AUTH_REDIS_URL` is set.
    shared: Option<Arc<SharedLimits>>,
}

impl Authenticator {
    /// Loads the clients file; fails when it is missing or invalid, so a service never
    /// starts open by accident. Every budget is this process's own.
    pub fn load(config: &AuthConfig) -> Result<Self, LoadError> {
        Self::load_with(config, None)
    }

    /// As [`Authenticator::load`], for the service `service` (`ingest`, `query`): with
    /// `EYE_AUTH_REDIS_URL` set, its budgets are shared with every replica of the same
    /// service through Redis (see [`shared`]). Must run inside a Tokio runtime; does not
    /// wait for Redis.
    pub fn load_for(config: &AuthConfig, service: &str) -> Result<Self, LoadError> {
        let shared = match config.shares_limits() {
            true => Some(Arc::new(SharedLimits::new(config, service)?)),
            false => None,
        };
        if let Some(s) = &shared {
            tracing::info!(
                service,
                replicas = s.replicas,
                "rate limits are shared by every replica through Redis (EYE_AUTH_REDIS_URL)"
            );
        }
        Self::load_with(config, shared)
    }

    fn load_with(
        config: &AuthConfig,
        shared: Option<Arc<SharedLimits>>,
    ) -> Result<Self, LoadError> {
        let configured = config.token_secret.expose_secret().as_bytes();
        let mut random = [0u8; 32];
        let secret: &[u8] = if configured.is_empty() {
            tracing::warn!(
                "EYE_AUTH_TOKEN_SECRET is not set: tokens are signed with a random key and only this process accepts them"
            );
            getrandom::fill(&mut random).map_err(LoadError::RandomKey)?;
            &random
        } else {
            configured
        };
        let inner = Inner {
            path: config.clients_file.clone(),
            loaded: ArcSwap::from_pointee(Loaded {
                clients: HashMap::new(),
                version: None,
            }),
            reload: Mutex::new(()),
            config: config.clone(),
            encoding: EncodingKey::from_secret(secret).map_err(LoadError::SigningKey)?,
            decoding: DecodingKey::from_secret(secret).map_err(LoadError::SigningKey)?,
            shared,
        };
        let auth = Self {
            inner: Arc::new(inner),
        };
        auth.reload()?;
        Ok(auth)
    }

    /// Re-reads the clients file if it changed since the last read. A file that no longer
    /// loads keeps the previous clients in force (and the error is returned to be logged).
    pub fn reload_if_changed(&self) -> Result<bool, clients::ClientsFileError> {
        let version = file_version(&self.inner.path);
        if version.is_some() && version == self.inner.loaded.load().version {
            return Ok(false);
        }
        self.reload().map(|()| true)
    }

    fn reload(&self) -> Result<(), clients::ClientsFileError> {
        let _one_at_a_time = self
            .inner
            .reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let version = file_version(&self.inner.path);
        let file = ClientsFile::load(&self.inner.path)?;
        let previous = self.inner.loaded.load();
        let c = &self.inner.config;
        let clients = file
            .clients
            .into_iter()
            .map(|record| {
                let kept = previous
                    .clients
                    .get(&record.id)
                    .filter(|(old, _)| old.rate_limits == record.rate_limits)
                    .map(|(_, l)| Arc::clone(l));
                let limiters = kept.unwrap_or_else(|| {
                    let l = record.rate_limits;
                    let shared = self.inner.shared.as_ref().map(|s| (s, record.id.as_str()));
                    Arc::new(Limiters {
                        requests: Budget::new(
                            "requests",
                            quota(
                                l.requests_per_s.unwrap_or(c.requests_per_s),
                                l.requests_burst.unwrap_or(c.requests_burst),
                            ),
                            shared,
                        ),
                        events: Budget::new(
                            "events",
                            quota(
                                l.events_per_s.unwrap_or(c.events_per_s),
                                l.events_burst.unwrap_or(c.events_burst),
                            ),
                            shared,
                        ),
                    })
                });
                (record.id.clone(), (record, limiters))
            })
            .collect::<HashMap<_, _>>();
        tracing::info!(clients = clients.len(), path = %self.inner.path.display(), "clients loaded");
        self.inner
            .loaded
            .store(Arc::new(Loaded { clients, version }));
        Ok(())
    }

    /// Re-reads the clients file every `EYE_AUTH_RELOAD_INTERVAL_MS` until the process ends.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let auth = self.clone();
        let every = Duration::from_millis(self.inner.config.reload_interval_ms.max(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = auth.reload_if_changed() {
                    tracing::error!(error = %e, "clients file not reloaded; the previous clients stay in force");
                }
            }
        })
    }

    /// Who sent `authorization` (the header's value), or why not.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let (scheme, credential) = header.split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || credential.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        let credential = credential.trim();
        match clients::split_api_key(credential) {
            Some((id, secret)) => self.by_secret(id, secret).map_err(|_| AuthError::Invalid),
            None => self.by_token(credential),
        }
    }

    /// Who holds `key`, an API key sent bare rather than in a Bearer header (as Segment's
    /// write key is, by HTTP Basic or in the body). Tokens are not accepted this way:
    /// only keys are write keys.
    pub fn authenticate_api_key(&self, key: &str) -> Result<Principal, AuthError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(AuthError::Missing);
        }
        let (id, secret) = clients::split_api_key(key).ok_or(AuthError::Invalid)?;
        self.by_secret(id, secret).map_err(|_| AuthError::Invalid)
    }

    /// The client whose id and secret these are; revoked clients fail like unknown ones.
    fn by_secret(&self, id: &str, secret: &str) -> Result<Principal, TokenError> {
        let loaded = self.inner.loaded.load();
        let (record, limiters) = loaded.clients.get(id).ok_or(TokenError::InvalidClient)?;
        // Compare even for a revoked client, so timing does not tell revoked from wrong.
        let matches = record.secret_matches(secret);
        if !matches || record.revoked_at.is_some() {
            return Err(TokenError::InvalidClient);
        }
        Ok(principal(
            record,
            limiters,
            record.scopes.iter().copied().collect(),
            Via::ApiKey,
        ))
    }

    fn by_token(&self, token: &str) -> Result<Principal, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Lifetimes are short and clocks are one: no grace period.
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Claims>(token, &self.inner.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let loaded = self.inner.loaded.load();
        let (record, limiters) = loaded
            .clients
            .get(&data.claims.sub)
            .filter(|(r, _)| r.revoked_at.is_none())
            .ok_or(AuthError::Invalid)?;
        // A scope removed from the client since the token was issued no longer counts.
        let granted: BTreeSet<Scope> = data
            .claims
            .scope
            .split_whitespace()
            .filter_map(Scope::parse)
            .filter(|s| record.scopes.contains(s))
            .collect();
        Ok(principal(record, limiters, granted, Via::Token))
    }

    /// RFC 6749 §4.4: checks the client's id and secret and grants the requested scopes
    /// (all of the client's when `scope` is absent or empty).
    pub fn issue_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<IssuedToken, TokenError> {
        let client = self.by_secret(client_id, client_secret)?;
        let requested: Vec<&str> = scope.unwrap_or("").split_whitespace().collect();
        let granted: BTreeSet<Scope> = if requested.is_empty() {
            client.scopes.clone()
        } else {
            let mut granted = BTreeSet::new();
            for name in requested {
                match Scope::parse(name) {
                    Some(s) if client.scopes.contains(&s) => {
                        granted.insert(s);
                    }
                    _ => return Err(TokenError::InvalidScope(name.to_owned())),
                }
            }
            granted
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let ttl = self.inner.config.token_ttl_s.max(1);
        let scope = granted
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let claims = Claims {
            iss: ISSUER.into(),
            sub: client.client_id,
            scope: scope.clone(),
            iat: now,
            exp: now + ttl,
        };
        let access_token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.inner.encoding,
        )
        .map_err(|_| TokenError::InvalidClient)?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            scope,
        })
    }

    /// Registers the shared limits' metrics (`eye_auth_redis_*`), when Redis is configured.
    pub fn register_metrics(&self, registry: &prometheus::Registry) {
        if let Some(s) = &self.inner.shared {
            s.register(registry);
        }
    }

    /// What the client `id` may write now, as the clients file says (its category
    /// allow-list and its policy for types without a schema); `None` when no such client
    /// is declared, or it was revoked. Replays hold a record to its client's rules of today.
    pub fn client_rules(&self, id: &str) -> Option<ClientRules> {
        let loaded = self.inner.loaded.load();
        let (record, _) = loaded.clients.get(id)?;
        if record.revoked_at.is_some() {
            return None;
        }
        Some(ClientRules {
            categories: record.categories.clone(),
            unknown_types: record.unknown_types,
        })
    }

    /// Ids of the declared clients, for bounded metric labels.
    pub fn client_ids(&self) -> Vec<String> {
        self.inner.loaded.load().clients.keys().cloned().collect()
    }
}

fn principal(
    record: &ClientRecord,
    limiters: &Arc<Limiters>,
    scopes: BTreeSet<Scope>,
    via: Via,
) -> Principal {
    Principal {
        client_id: record.id.clone(),
        name: record.name.clone(),
        scopes,
        categories: record.categories.clone(),
        unknown_types: record.unknown_types,
        via,
        limiters: Arc::clone(limiters),
    }
}

#[cfg(test)]
mod tests;
