// A row's strings are allocated per message and freed per batch; glibc's malloc and free
// were ~20% of the consumer's time draining a backlog (`make profile`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use eye_consumer::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    eye_runtime::telemetry::init_tracing("eye-consumer");
    let config = Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.consumer.listen_addr)
        .await
        .with_context(|| format!("binding {}", config.consumer.listen_addr))?;
    eye_consumer::run(config, listener, eye_runtime::shutdown::signal()).await
}
