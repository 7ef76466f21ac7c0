//! The query benchmark, `eye-bench query` (`make bench-query`).
//!
//! Loads a deterministic data set (10 million events by default) into its own database,
//! starts the query service in this process as the read-only user, and times four
//! questions through the service against the very statements the service sent, run
//! straight on ClickHouse in the same run. The figures that matter are the ratios: the
//! machine is shared, so absolute times move from run to run while both sides move
//! together. A missed target is printed, not failed: this is a benchmark, not a test.

pub mod clickhouse;
pub mod harness;
mod load;

use crate::report::query as report;
use crate::report::{load_average, thousands, Machine};
use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clickhouse::{quote, Admin, Direct};
use eye_query::config::QueryConfig;
use eye_runtime::config;
use eye_store::config::ClickHouseConfig;
use harness::{Harness, Kind, Outcome, Route};
use load::{Dataset, Loader, ANCHOR_US, DAY_US, SPAN_DAYS};
use serde::Deserialize;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events in the data set.
    #[arg(long, env = "EYE_BENCH_EVENTS", default_value_t = 10_000_000)]
    events: u64,
    /// Seed of the generator; the same seed loads the same rows.
    #[arg(long, env = "EYE_BENCH_SEED", default_value_t = 20_250_101)]
    seed: u64,
    /// Drop the benchmark database and load it again even when it is complete.
    #[arg(long)]
    reload: bool,
    /// Load (or check) the data set and stop.
    #[arg(long)]
    load_only: bool,
    /// ClickHouse HTTP interface.
    #[arg(
        long,
        env = "EYE_BENCH_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    clickhouse_url: String,
    /// Database the data set lives in (dropped and recreated by a load).
    #[arg(long, env = "EYE_BENCH_DATABASE", default_value = "eye_bench")]
    database: String,
    /// ClickHouse user that loads the data and reads system.query_log.
    #[arg(long, env = "EYE_BENCH_ADMIN_USER", default_value = "default")]
    admin_user: String,
    #[arg(long, env = "EYE_BENCH_ADMIN_PASSWORD", default_value = "")]
    admin_password: String,
    /// ClickHouse user of the query service and of the direct statements (read-only).
    #[arg(long, env = "EYE_BENCH_QUERY_USER", default_value = "eye_query")]
    query_user: String,
    #[arg(long, env = "EYE_BENCH_QUERY_PASSWORD", default_value = "eye_query")]
    query_password: String,
    /// Rows per INSERT while loading.
    #[arg(long, default_value_t = 100_000)]
    batch_rows: usize,
    /// INSERTs in flight at once while loading.
    #[arg(long, default_value_t = 2)]
    insert_concurrency: usize,
    /// Timed requests per question (each also timed directly), for the fast questions.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Timed requests for the daily p95 over a year, the slowest question.
    #[arg(long, default_value_t = 40)]
    slow_samples: usize,
    /// Untimed requests per question before timing, on each side.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Sessions and days the session and category questions rotate through.
    #[arg(long, default_value_t = 4)]
    cases: usize,
    /// Also append the figures to FILE as JSON lines, one per question and one for the
    /// load, for `make bench`'s report (`eye-bench report`).
    #[arg(long, value_name = "FILE")]
    jsonl: Option<std::path::PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(args.cases > 0 && args.insert_concurrency > 0 && args.batch_rows > 0);
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;
    let admin = Admin::new(
        http.clone(),
        &args.clickhouse_url,
        &args.admin_user,
        &args.admin_password,
    );
    let version = admin
        .execute("SELECT version()")
        .await
        .context("is ClickHouse running? `deploy/stack.sh servers` starts it")?;
    print_machine(version.trim());

    let admin_ch = clickhouse_config(&args, &args.admin_user, &args.admin_password)?;
    let loader = Loader {
        admin: &admin,
        clickhouse: admin_ch,
        batch_rows: args.batch_rows,
        concurrency: args.insert_concurrency,
    };
    let dataset = Dataset {
        events: args.events,
        seed: args.seed,
    };
    let load_started = std::time::Instant::now();
    let loaded = loader.ensure(dataset, args.reload).await?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    println!(
        "data: {}.events holds {} rows, {} distinct events",
        args.database,
        thousands(loaded.stored_rows),
        thousands(loaded.distinct_events)
    );
    if args.load_only {
        return Ok(());
    }

    let db = eye_store::sql::identifier(&args.database)?;
    let table_rows = loaded.stored_rows;
    let kinds = kinds(&admin, db, &args).await?;

    let service_ch = clickhouse_config(&args, &args.query_user, &args.query_password)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (auth, api_key) = bench_client()?;
    let service = tokio::spawn(eye_query::run(
        eye_query::Config {
            query: query_config()?,
            clickhouse: service_ch,
            auth,
            http: config::from_env()?,
            deletion: config::from_env()?,
            retention: Default::default(),
        },
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    println!(
        "service: eye-query in this process on {addr}, database {db} as ClickHouse user {}",
        args.query_user
    );

    // The service is called as a declared client, as in production: authentication is
    // part of what the service's side of each ratio pays for.
    let service_http = {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {api_key}"))?,
        );
        reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()?
    };
    let harness = Harness {
        http: service_http,
        service_base: format!("http://{addr}"),
        admin: &admin,
        direct: Direct::new(
            http.clone(),
            &args.clickhouse_url,
            db,
            &args.query_user,
            &args.query_password,
        ),
        query_user: args.query_user.clone(),
        warmup: args.warmup,
    };
    let mut outcomes = Vec::new();
    for kind in &kinds {
        println!(
            "measuring: {} ({} samples per side)",
            kind.label, kind.samples
        );
        outcomes.push(
            harness
                .measure(kind)
                .await
                .with_context(|| format!("measuring {}", kind.label))?,
        );
    }
    let _ = stop.send(());
    service.await??;

    let rows: Vec<report::Row> = kinds
        .iter()
        .zip(&outcomes)
        .map(|(kind, outcome)| report::Row { kind, outcome })
        .collect();
    let missed = report::print_timings(&rows);
    report::print_reads(&rows, table_rows);
    if let Some(path) = &args.jsonl {
        let mut lines = vec![serde_json::json!({
            "measure": "query_load",
            "events": args.events,
            "stored_rows": table_rows,
            // False when the database already held the data set: then no load was timed.
            "loaded": loaded.loaded,
            "seconds": load_seconds,
            "rows_per_sec": args.events as f64 / load_seconds,
        })];
        lines.extend(rows.iter().map(|row| report::json_line(row, table_rows)));
        crate::report::append(path, &lines)?;
    }
    let unavailable = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::NotAvailable { .. }))
        .count();
    println!();
    println!(
        "summary: {} measured, {missed} MISSED, {unavailable} not available; finished {}, load average {}",
        outcomes.len() - unavailable,
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        load_average()
    );
    Ok(())
}

/// The ClickHouse settings the services would read from `EYE_CLICKHOUSE_*`, pointed at the
/// benchmark database as `user`.
fn clickhouse_config(args: &Args, user: &str, password: &str) -> anyhow::Result<ClickHouseConfig> {
    let mut c: ClickHouseConfig = config::from_env()?;
    c.url = args.clickhouse_url.clone();
    c.database = args.database.clone();
    c.user = user.to_owned();
    c.password = password.into();
    Ok(c)
}

/// A clients file with one reading client, in a temporary directory, and its API key.
fn bench_client() -> anyhow::Result<(eye_auth::config::AuthConfig, String)> {
    use eye_auth::{ClientRecord, ClientsFile, NewCredentials, RateLimits, Scope};
    let dir = std::env::temp_dir().join(format!("eye-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("clients.toml");
    let creds = NewCredentials::generate()?;
    ClientsFile {
        clients: vec![ClientRecord {
            rate_limits: RateLimits::unlimited(),
            ..creds.record(
                "eye-bench",
                vec![Scope::EventsRead, Scope::AggregationsRead],
            )
        }],
    }
    .save(&path)?;
    let auth = config::from_iter([(
        "EYE_AUTH_CLIENTS_FILE".to_owned(),
        path.display().to_string(),
    )])?;
    Ok((auth, creds.api_key()))
}

/// `EYE_QUERY_*` as the service reads it; the listen address is ignored (the benchmark
/// binds its own port).
fn query_config() -> anyhow::Result<QueryConfig> {
    Ok(config::from_env()?)
}

fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

#[derive(Clone, Deserialize)]
struct SessionPick {
    session_id: String,
}

#[derive(Clone, Deserialize)]
struct DayPick {
    day_us: i64,
}

#[derive(Deserialize)]
struct Count {
    n: u64,
}

/// `n` items spread evenly over `all` (first, ..., last), so picks cover the whole data.
fn spread<T: Clone>(all: &[T], n: usize) -> Vec<T> {
    if all.len() <= n {
        return all.to_vec();
    }
    (0..n)
        .map(|i| all[i * (all.len() - 1) / (n - 1).max(1)].clone())
        .collect()
}

/// The four questions, with parameters picked from the loaded data.
async fn kinds(admin: &Admin, db: &str, args: &Args) -> anyhow::Result<Vec<Kind>> {
    // Sessions long enough for a full page of 100 events.
    let sessions: Vec<SessionPick> = admin
        .rows(&format!(
            "SELECT session_id FROM {db}.events GROUP BY session_id HAVING count() >= 100 ORDER BY session_id"
        ))
        .await?;
    let sessions = spread(&sessions, args.cases);
    anyhow::ensure!(
        !sessions.is_empty(),
        "no session with 100 events or more; load more events"
    );
    // Days with at least a page of page_interaction events.
    let days: Vec<DayPick> = admin
        .rows(&format!(
            "SELECT intDiv(ts_us, {DAY_US}) * {DAY_US} AS day_us FROM {db}.events_by_type \
             WHERE category = 'page_interaction' GROUP BY day_us HAVING count() >= 100 ORDER BY day_us"
        ))
        .await?;
    let days = spread(&days, args.cases);
    anyhow::ensure!(!days.is_empty(), "no day with 100 page_interaction events");

    let month_from = ANCHOR_US - 30 * DAY_US;
    let year_from = ANCHOR_US - SPAN_DAYS * DAY_US;
    for (category, name, from) in [
        ("machine", "cpu_load", month_from),
        ("page_interaction", "page_view", year_from),
    ] {
        let count: Vec<Count> = admin
            .rows(&format!(
                "SELECT count() AS n FROM {db}.events_by_type WHERE category = {} AND name = {} \
                 AND ts_us >= {from} AND ts_us < {ANCHOR_US}",
                quote(category),
                quote(name)
            ))
            .await?;
        let n = count.first().map_or(0, |c| c.n);
        anyhow::ensure!(n > 0, "no {category}/{name} events to aggregate");
        println!(
            "data: {} {category}/{name} events from {} to {}",
            thousands(n),
            rfc3339(from),
            rfc3339(ANCHOR_US)
        );
    }
    let (anchor, month, year) = (rfc3339(ANCHOR_US), rfc3339(month_from), rfc3339(year_from));
    println!(
        "picked: sessions {}; days {}",
        sessions
            .iter()
            .map(|s| s.session_id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        days.iter()
            .map(|d| rfc3339(d.day_us)[..10].to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let per_session = |f: &dyn Fn(&str) -> String| -> Vec<String> {
        sessions.iter().map(|s| f(&s.session_id)).collect()
    };
    Ok(vec![
        Kind {
            label: "session lookup (100 events)",
            routes: vec![
                Route {
                    label: "/v1/sessions/{id}?limit=100".into(),
                    paths: per_session(&|id| format!("/v1/sessions/{id}?limit=100")),
                },
                Route {
                    label: "/v1/events?session_id={id}&limit=100".into(),
                    paths: per_session(&|id| format!("/v1/events?session_id={id}&limit=100")),
                },
            ],
            // A session id is unique to its request: it alone singles out the statements.
            markers: sessions.iter().map(|s| vec![s.session_id.clone()]).collect(),
            samples: args.samples,
            target_p99_ms: Some(50.0),
        },
        Kind {
            label: "category page (1 day)",
            routes: vec![Route {
                label: "/v1/events?category=page_interaction&from={day}&to={day+1}&limit=100"
                    .into(),
                paths: days
                    .iter()
                    .map(|d| {
                        format!(
                            "/v1/events?category=page_interaction&from={}&to={}&limit=100",
                            rfc3339(d.day_us),
                            rfc3339(d.day_us + DAY_US)
                        )
                    })
                    .collect(),
            }],
            markers: vec![vec!["page_interaction".into()]; days.len()],
            samples: args.samples,
            target_p99_ms: Some(100.0),
        },
        Kind {
            label: "hourly avg, 30 days",
            routes: vec![Route::fixed(format!(
                "/v1/aggregate?category=machine&name=cpu_load&granularity=hour&agg=avg&from={month}&to={anchor}"
            ))],
            markers: vec![vec!["cpu_load".into()]],
            samples: args.samples,
            target_p99_ms: Some(500.0),
        },
        Kind {
            label: "daily p95, 1 year",
            routes: vec![Route::fixed(format!(
                "/v1/aggregate?category=page_interaction&name=page_view&granularity=day&agg=p95&from={year}&to={anchor}"
            ))],
            markers: vec![vec!["page_view".into()]],
            samples: args.slow_samples,
            target_p99_ms: None,
        },
    ])
}

fn print_machine(clickhouse_version: &str) {
    let m = Machine::read();
    println!("eye-bench: query benchmark");
    println!(
        "machine: {} cores ({}), {:.1} GiB memory, load average {}",
        m.cores,
        m.cpu,
        m.ram_gib,
        load_average()
    );
    println!(
        "date: {}; ClickHouse {clickhouse_version}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
}
