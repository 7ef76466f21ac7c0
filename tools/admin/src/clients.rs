//! `eye-admin clients`: declare, list and revoke the clients in `EYE_AUTH_CLIENTS_FILE`.
//! A new client's secret is printed once and never stored; the file keeps its SHA-256.

use anyhow::Context;
use clap::Subcommand;
use eye_auth::config::AuthConfig;
use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
use eye_model::schema::UnknownTypePolicy;
use eye_runtime::config;
use std::path::Path;

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Declare a client and print its credentials, once.
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: events:write, events:read, aggregations:read, delete, admin.
        #[arg(long, value_delimiter = ',', required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// Comma-separated categories the client may write; any when absent.
        #[arg(long, value_delimiter = ',')]
        categories: Option<Vec<String>>,
        #[arg(long)]
        requests_per_s: Option<u32>,
        #[arg(long)]
        requests_burst: Option<u32>,
        #[arg(long)]
        events_per_s: Option<u32>,
        #[arg(long)]
        events_burst: Option<u32>,
        /// What becomes of this client's events of a type without a schema: accept or
        /// reject; EYE_INGEST_UNKNOWN_TYPE_POLICY when absent.
        #[arg(long, value_parser = parse_unknown_types)]
        unknown_types: Option<UnknownTypePolicy>,
        /// Print the credentials as shell lines (`export EYE_API_KEY=...`, EYE_CLIENT_ID,
        /// EYE_CLIENT_SECRET) instead of prose: `source` them, and `eye` and the examples
        /// read them.
        #[arg(long)]
        shell: bool,
    },
    /// List the declared clients (never a secret).
    List,
    /// Revoke a client: its API key and tokens stop working at the services' next reload.
    Revoke { id: String },
}

fn parse_unknown_types(s: &str) -> Result<UnknownTypePolicy, String> {
    match s {
        "accept" => Ok(UnknownTypePolicy::Accept),
        "reject" => Ok(UnknownTypePolicy::Reject),
        _ => Err(format!("unknown policy {s:?}; one of accept, reject")),
    }
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).ok_or_else(|| {
        format!("unknown scope {s:?}; one of events:write, events:read, aggregations:read, delete, admin")
    })
}

pub fn run(cmd: ClientsCommand) -> anyhow::Result<()> {
    let auth: AuthConfig = config::from_env()?;
    let path = auth.clients_file.as_path();
    match cmd {
        ClientsCommand::Create {
            name,
            scopes,
            categories,
            requests_per_s,
            requests_burst,
            events_per_s,
            events_burst,
            unknown_types,
            shell,
        } => {
            let mut file = load_or_empty(path)?;
            let creds = NewCredentials::generate().context("reading random bytes")?;
            file.clients.push(ClientRecord {
                categories,
                rate_limits: RateLimits {
                    requests_per_s,
                    requests_burst,
                    events_per_s,
                    events_burst,
                },
                unknown_types,
                ..creds.record(&name, scopes)
            });
            file.save(path)?;
            if shell {
                println!("export EYE_API_KEY={}", creds.api_key());
                println!("export EYE_CLIENT_ID={}", creds.id);
                println!("export EYE_CLIENT_SECRET={}", creds.secret);
            } else {
                println!("client {name:?} created in {}", path.display());
                println!("  client id:     {}", creds.id);
                println!("  client secret: {}", creds.secret);
                println!("  API key:       {}", creds.api_key());
                println!("The secret is shown only now; the file keeps its SHA-256.");
            }
            Ok(())
        }
        ClientsCommand::List => {
            let file = load_or_empty(path)?;
            println!("{:<16}  {:<24}  {:<40}  status", "id", "name", "scopes");
            for c in &file.clients {
                let scopes: Vec<&str> = c.scopes.iter().map(|s| s.as_str()).collect();
                let status = match &c.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_owned(),
                };
                println!(
                    "{:<16}  {:<24}  {:<40}  {status}",
                    c.id,
                    c.name,
                    scopes.join(",")
                );
            }
            Ok(())
        }
        ClientsCommand::Revoke { id } => {
            let mut file = ClientsFile::load(path)?;
            let client = file
                .clients
                .iter_mut()
                .find(|c| c.id == id)
                .with_context(|| format!("no client {id} in {}", path.display()))?;
            if client.revoked_at.is_none() {
                client.revoked_at = Some(now());
            }
            file.save(path)?;
            println!("client {id} revoked");
            Ok(())
        }
    }
}

fn load_or_empty(path: &Path) -> anyhow::Result<ClientsFile> {
    if path.exists() {
        Ok(ClientsFile::load(path)?)
    } else {
        Ok(ClientsFile::default())
    }
}

fn now() -> String {
    eye_model::time::EventTime::now().to_rfc3339()
}
