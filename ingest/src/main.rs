use anyhow::Context;
use eye_ingest::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eye_common::telemetry::init_tracing("eye-ingest");
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.ingest.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.ingest.listen_addr))?;
    eye_ingest::run(config, listener, eye_common::shutdown::signal()).await
}
