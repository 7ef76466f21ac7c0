// Many short-lived allocations per event (parsing, encoding, delivery futures); glibc's
// malloc/free were ~22% of ingest's time at 90k events/s (docs/known-issues.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use eye_ingest::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eye_runtime::telemetry::init_tracing("eye-ingest");
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.ingest.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.ingest.listen_addr))?;
    eye_ingest::run(config, listener, eye_runtime::shutdown::signal()).await
}
