//! The HTTP(S) client under the ClickHouse client: plain HTTP for an `http://` URL; for an
//! `https://` URL, TLS (rustls) trusting the CA of `EYE_CLICKHOUSE_CA_FILE`, or, unset, the
//! system's roots (what a managed service such as ClickHouse Cloud needs).

use crate::config::ClickHouseConfig;
use hyper_rustls::ConfigBuilderExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// As the crate's own client: TCP keep-alive, and idle connections dropped before the
/// server's keep-alive timeout (3 s by default) closes them under a request.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("EYE_CLICKHOUSE_CA_FILE {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("the system's CA certificates (set EYE_CLICKHOUSE_CA_FILE instead?): {0}")]
    SystemRoots(std::io::Error),
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A ClickHouse client (no URL or credentials yet) over the transport `cfg.url` asks for.
pub fn client(cfg: &ClickHouseConfig) -> Result<clickhouse::Client, TlsError> {
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(TCP_KEEPALIVE));
    let pool = || {
        let mut b = HyperClient::builder(TokioExecutor::new());
        b.pool_idle_timeout(POOL_IDLE_TIMEOUT);
        b
    };
    if !cfg.url.starts_with("https://") {
        return Ok(clickhouse::Client::with_http_client(pool().build(http)));
    }
    http.enforce_http(false);
    // ring, deprecated by rustls 0.23.48 only for lacking post-quantum key exchange: the
    // alternative (aws-lc-rs) is a far larger C build on every fresh machine, and classical
    // ECDHE is what ClickHouse's own servers offer today.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?;
    let tls = match &cfg.ca_file {
        Some(path) => tls.with_root_certificates(roots_from(path)?),
        None => tls.with_native_roots().map_err(TlsError::SystemRoots)?,
    }
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(clickhouse::Client::with_http_client(pool().build(https)))
}

/// Every certificate of a PEM file, as the only roots trusted.
fn roots_from(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let bad = |reason: String| TlsError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> ClickHouseConfig {
        eye_runtime::config::from_pairs(pairs).expect("config")
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let missing = config(&[
            ("EYE_CLICKHOUSE_URL", "https://ch.example:8443"),
            ("EYE_CLICKHOUSE_CA_FILE", "/nonexistent/ca.pem"),
        ]);
        let e = client(&missing).map(|_| ()).expect_err("refused");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let empty = std::env::temp_dir().join(format!("eye-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").expect("written");
        let c = config(&[
            ("EYE_CLICKHOUSE_URL", "https://ch.example:8443"),
            ("EYE_CLICKHOUSE_CA_FILE", empty.to_str().expect("utf-8")),
        ]);
        let e = client(&c).map(|_| ()).expect_err("refused");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn a_ca_file_needs_an_https_url() {
        let e = eye_runtime::config::from_pairs::<ClickHouseConfig>(&[(
            "EYE_CLICKHOUSE_CA_FILE",
            "/etc/ssl/certs/ca-certificates.crt",
        )])
        .expect_err("refused");
        assert!(e.to_string().contains("not https://"), "{e}");
    }
}
