//! `EYE_HTTP_*`: limits, timeouts and CORS of every HTTP listener.

use crate::client::TrustedProxies;
use eye_runtime::config::Group;
use serde::Deserialize;

eye_runtime::defaults! {
    d_max_header_bytes: usize = 32 * 1024;
    d_header_read_timeout_ms: u64 = 10_000;
    d_body_read_timeout_ms: u64 = 30_000;
    d_idle_timeout_ms: u64 = 60_000;
}

/// The smallest head buffer hyper accepts (it panics below it).
pub const MIN_HEADER_BYTES: usize = 8192;

/// `EYE_HTTP_*`: limits and CORS shared by every HTTP listener (ingest, query, consumer).
#[derive(Debug, Clone, Deserialize)]
pub struct HttpConfig {
    /// Bytes of a request head (request line and headers) past which the server answers
    /// 431, whether the head has ended or not.
    #[serde(default = "d_max_header_bytes")]
    pub max_header_bytes: usize,
    /// How long a client may take to send a request head before its connection is closed,
    /// from the connection's start or a later request's first byte (idle keep-alive
    /// connections are bounded by `idle_timeout_ms` instead).
    #[serde(default = "d_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long ingest waits for a whole request body before answering 408.
    #[serde(default = "d_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// How long a connection may go without sending a byte while the server waits to read
    /// (between keep-alive requests, or inside a request) before it is closed.
    #[serde(default = "d_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Browser origins (`scheme://host[:port]`) allowed to call the APIs, comma-separated,
    /// or `*` for any; empty turns CORS off.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// How long a service keeps serving after SIGTERM while `/readyz` answers 503
    /// `draining`, so that load balancers stop sending to it before it stops accepting.
    #[serde(default)]
    pub drain_delay_ms: u64,
    /// Proxies whose `X-Forwarded-For` is believed when telling who a client is
    /// ([`crate::client`]); empty, it never is.
    #[serde(default)]
    pub trusted_proxies: TrustedProxies,
}

impl Group for HttpConfig {
    const PREFIX: &'static str = "EYE_HTTP_";

    fn check(&self) -> Result<(), String> {
        if self.max_header_bytes < MIN_HEADER_BYTES {
            return Err(format!(
                "EYE_HTTP_MAX_HEADER_BYTES must be at least {MIN_HEADER_BYTES} (got {})",
                self.max_header_bytes
            ));
        }
        let origins = &self.cors_allowed_origins;
        if origins.iter().any(|o| o == "*") {
            return match origins.len() {
                1 => Ok(()),
                _ => Err("EYE_HTTP_CORS_ALLOWED_ORIGINS: `*` must stand alone".into()),
            };
        }
        // Browsers send `Origin` in exactly this serialization and CORS compares it as
        // text, so anything else (a trailing slash, a path, a default port) never matches.
        for origin in origins {
            let canonical = url::Url::parse(origin)
                .ok()
                .map(|u| u.origin())
                .filter(url::Origin::is_tuple)
                .map(|o| o.ascii_serialization());
            if canonical.as_deref() != Some(origin.as_str()) {
                let hint = canonical.map_or(String::new(), |c| format!("; did you mean {c:?}?"));
                return Err(format!(
                    "EYE_HTTP_CORS_ALLOWED_ORIGINS: {origin:?} is not an origin \
                     (scheme://host[:port], nothing after){hint}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eye_runtime::config::from_pairs;

    #[test]
    fn http_defaults_and_lists() {
        let h: HttpConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(
            (
                h.max_header_bytes,
                h.header_read_timeout_ms,
                h.body_read_timeout_ms
            ),
            (32 * 1024, 10_000, 30_000)
        );
        assert!(h.cors_allowed_origins.is_empty());
        let h: HttpConfig = from_pairs(&[(
            "EYE_HTTP_CORS_ALLOWED_ORIGINS",
            "https://app.example.com,http://localhost:3000",
        )])
        .expect("two origins");
        assert_eq!(
            h.cors_allowed_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        let any: HttpConfig =
            from_pairs(&[("EYE_HTTP_CORS_ALLOWED_ORIGINS", "*")]).expect("any origin");
        assert_eq!(any.cors_allowed_origins, ["*"]);
    }

    /// Values hyper or warp would panic on, or that could never match, stop start-up with
    /// a message naming the variable.
    #[test]
    fn http_values_are_checked() {
        let err = |pairs: &[(&str, &str)]| {
            from_pairs::<HttpConfig>(pairs)
                .expect_err("must fail")
                .to_string()
        };
        let e = err(&[("EYE_HTTP_MAX_HEADER_BYTES", "8191")]);
        assert!(
            e.contains("EYE_HTTP_MAX_HEADER_BYTES") && e.contains("8192"),
            "{e}"
        );
        from_pairs::<HttpConfig>(&[("EYE_HTTP_MAX_HEADER_BYTES", "8192")])
            .expect("the minimum itself");
        for (origins, hint) in [
            ("https://app.example.com/", "\"https://app.example.com\""),
            ("https://app.example.com:443", "\"https://app.example.com\""),
            ("https://App.example.com", "\"https://app.example.com\""),
            (
                "https://a.example.com, https://b.example.com",
                "\"https://b.example.com\"",
            ),
            ("app.example.com", "scheme://host"),
            ("null", "scheme://host"),
            ("*,https://app.example.com", "alone"),
        ] {
            let e = err(&[("EYE_HTTP_CORS_ALLOWED_ORIGINS", origins)]);
            assert!(
                e.contains("EYE_HTTP_CORS_ALLOWED_ORIGINS"),
                "{origins}: {e}"
            );
            assert!(e.contains(hint), "{origins}: {e}");
        }
    }

    #[test]
    fn trusted_proxies_are_read_and_checked() {
        let h: HttpConfig = from_pairs(&[]).expect("defaults");
        assert!(h.trusted_proxies.is_empty());
        let h: HttpConfig = from_pairs(&[("EYE_HTTP_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1")])
            .expect("a block and an address");
        assert_eq!(
            h.trusted_proxies,
            "10.0.0.0/8,127.0.0.1".parse().expect("list")
        );
        let e = from_pairs::<HttpConfig>(&[("EYE_HTTP_TRUSTED_PROXIES", "10.0.0.0/8,lb")])
            .expect_err("not an address")
            .to_string();
        assert!(
            e.contains("EYE_HTTP_TRUSTED_PROXIES") && e.contains("\"lb\""),
            "{e}"
        );
    }

    #[test]
    fn drain_settings() {
        let h: HttpConfig = from_pairs(&[]).expect("defaults");
        assert_eq!(h.drain_delay_ms, 0);
        let h: HttpConfig = from_pairs(&[("EYE_HTTP_DRAIN_DELAY_MS", "5000")]).expect("typical");
        assert_eq!(h.drain_delay_ms, 5_000);
    }
}
