use anyhow::Context;
use eye_query::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eye_runtime::telemetry::init_tracing("eye-query");
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.query.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.query.listen_addr))?;
    eye_query::run(config, listener, eye_runtime::shutdown::signal()).await
}
