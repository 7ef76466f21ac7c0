//! How the client proves who it is: an API key sent as is, or OAuth2 client credentials
//! exchanged for a bearer token at `POST /oauth/token`, fetched again before it expires.

use crate::error::ClientError;
use serde::Deserialize;
use std::fmt;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// A client's credentials, as `eye-admin clients create` prints them.
#[derive(Clone)]
pub enum Credentials {
    /// `eye_<id>.<secret>`, sent as `Authorization: Bearer <key>`.
    ApiKey(String),
    /// Exchanged for a token; `scope` as the token endpoint takes it (space-separated,
    /// e.g. `events:write events:read`), or every scope of the client when `None`.
    ClientCredentials {
        /// The client's id.
        client_id: String,
        /// The client's secret.
        client_secret: String,
        /// The scopes to ask for.
        scope: Option<String>,
    },
}

impl Credentials {
    /// An API key (`eye_<id>.<secret>`).
    pub fn api_key(key: impl Into<String>) -> Self {
        Self::ApiKey(key.into())
    }

    /// A client id and secret, for tokens of every scope of the client.
    pub fn client_credentials(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self::ClientCredentials {
            client_id: id.into(),
            client_secret: secret.into(),
            scope: None,
        }
    }
}

/// Secrets stay out of logs and panics.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Self::ClientCredentials {
                client_id, scope, ..
            } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .field("scope", scope)
                .finish(),
        }
    }
}

/// A token is fetched again once less than this share of its lifetime is left (and at
/// least [`MIN_REFRESH_MARGIN`] before it expires), so no request carries one that expires
/// on the way.
const REFRESH_SHARE: f64 = 0.2;
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

struct Token {
    header: String,
    refresh_at: Instant,
}

/// The `Authorization` header for each request, with the token cache.
pub(crate) struct Auth {
    credentials: Credentials,
    token_url: String,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
}

impl Auth {
    pub(crate) fn new(credentials: Credentials, token_url: String, http: reqwest::Client) -> Self {
        Self {
            credentials,
            token_url,
            http,
            token: Mutex::new(None),
        }
    }

    /// The header value to send now.
    pub(crate) async fn header(&self) -> Result<String, ClientError> {
        let (client_id, client_secret, scope) = match &self.credentials {
            Credentials::ApiKey(key) => return Ok(format!("Bearer {key}")),
            Credentials::ClientCredentials {
                client_id,
                client_secret,
                scope,
            } => (client_id, client_secret, scope),
        };
        let mut token = self.token.lock().await;
        if let Some(t) = token.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.header.clone());
        }
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let res = self
            .http
            .post(&self.token_url)
            .basic_auth(client_id, Some(client_secret))
            .form(&form)
            .send()
            .await
            .map_err(|e| ClientError::transport(&self.token_url, e))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .map_err(|e| ClientError::transport(&self.token_url, e))?;
        if !status.is_success() {
            return Err(ClientError::Token {
                status: status.as_u16(),
                body: text,
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&text)
            .map_err(|e| ClientError::Decode(format!("token answer: {e}")))?;
        let header = format!("Bearer {}", answer.access_token);
        *token = Some(Token {
            header: header.clone(),
            refresh_at: Instant::now() + refresh_after(Duration::from_secs(answer.expires_in)),
        });
        Ok(header)
    }

    /// Drops the cached token after a 401, so the next request fetches a new one (the
    /// client may have been re-keyed, or the server's clock is ahead).
    pub(crate) async fn forget_token(&self) -> bool {
        match self.credentials {
            Credentials::ApiKey(_) => false,
            Credentials::ClientCredentials { .. } => self.token.lock().await.take().is_some(),
        }
    }
}

/// How long a token of `lifetime` is used before a new one is fetched.
fn refresh_after(lifetime: Duration) -> Duration {
    let margin = lifetime.mul_f64(REFRESH_SHARE).max(MIN_REFRESH_MARGIN);
    lifetime.saturating_sub(margin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        // (lifetime, used for)
        let cases = [(900, 720), (60, 48), (20, 15), (5, 0), (0, 0)];
        for (lifetime, used) in cases {
            assert_eq!(
                refresh_after(Duration::from_secs(lifetime)),
                Duration::from_secs(used),
                "{lifetime} s"
            );
        }
    }

    #[test]
    fn debug_output_has_no_secret() {
        let cases = [
            Credentials::api_key("eye_0123.secret-key"),
            Credentials::client_credentials("0123", "secret-key"),
        ];
        for c in cases {
            let shown = format!("{c:?}");
            assert!(!shown.contains("secret-key"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
}
