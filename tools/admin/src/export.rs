//! `eye-admin export`: the events `GET /v1/export` would stream (the same pages, rows and
//! order, read straight from ClickHouse with the `EYE_CLICKHOUSE_*` settings), written to a
//! file, with a progress bar on stderr. `--resume` continues a cut file after its last
//! complete row: the file's rows plus the resumed ones are the whole export, each once.

use anyhow::{bail, ensure, Context};
use eye_model::event::{Category, EventName, SessionId};
use eye_model::time::EventTime;
use eye_runtime::config;
use eye_store::config::ClickHouseConfig;
use eye_store::export::{self, Format, Settings};
use eye_store::{EventFilter, Store};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::OpenOptions;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The file to write. It must not exist, unless --resume.
    #[arg(long)]
    output: PathBuf,
    /// ndjson or csv (the rows of GET /v1/export; ClickHouse 18.16 has no Parquet).
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv"])]
    format: String,
    /// Continue the file after its last complete row (a cut row is dropped); start it if
    /// it does not exist. Give the same filters and format as the run that wrote it.
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    session_id: Option<String>,
    #[arg(long)]
    category: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// Events at or after this time: RFC 3339, or epoch seconds/milliseconds.
    #[arg(long)]
    from: Option<String>,
    /// Events before this time.
    #[arg(long)]
    to: Option<String>,
    /// asc (oldest first) or desc.
    #[arg(long, default_value = "asc", value_parser = ["asc", "desc"])]
    order: String,
    /// Rows per read (at most 100,000), as EYE_QUERY_EXPORT_PAGE_ROWS for the service.
    #[arg(long, default_value_t = 10_000)]
    page_rows: u32,
    /// Time limit of each read, in milliseconds (whole seconds, at least 1).
    #[arg(long, default_value_t = 60_000)]
    page_time_limit_ms: u64,
    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    quiet: bool,
}

fn checked(
    value: Option<String>,
    field: &str,
    parse: impl Fn(&str) -> Result<(), (&'static str, String)>,
) -> anyhow::Result<Option<String>> {
    if let Some(v) = &value {
        parse(v).map_err(|(code, message)| anyhow::anyhow!("--{field}: {message} ({code})"))?;
    }
    Ok(value)
}

fn time(value: Option<&str>, field: &str) -> anyhow::Result<Option<i64>> {
    let Some(raw) = value else {
        return Ok(None);
    };
    let t = match raw.parse::<serde_json::Number>() {
        Ok(n) => EventTime::from_epoch_number(&n),
        Err(_) => EventTime::parse(raw),
    }
    .map_err(|e| anyhow::anyhow!("--{field}: {e}"))?;
    Ok(Some(t.as_micros()))
}

impl ExportArgs {
    fn filter(&self) -> anyhow::Result<EventFilter> {
        let filter = EventFilter {
            session_id: checked(self.session_id.clone(), "session-id", |s| {
                SessionId::parse(s).map(drop)
            })?,
            category: checked(self.category.clone(), "category", |s| {
                Category::parse(s).map(drop)
            })?,
            name: checked(self.name.clone(), "name", |s| EventName::parse(s).map(drop))?,
            from_us: time(self.from.as_deref(), "from")?,
            to_us: time(self.to.as_deref(), "to")?,
            descending: self.order == "desc",
            ..EventFilter::default()
        };
        if let (Some(f), Some(t)) = (filter.from_us, filter.to_us) {
            ensure!(f <= t, "--from must not be after --to");
        }
        Ok(filter)
    }
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let format = Format::parse(&args.format).context("--format")?;
    let mut filter = args.filter()?;
    ensure!(
        (1..=eye_store::MAX_RESULT_ROWS).contains(&u64::from(args.page_rows)),
        "--page-rows must be from 1 to {}",
        eye_store::MAX_RESULT_ROWS
    );
    let settings = Settings {
        page_rows: args.page_rows,
        page_time_limit: Duration::from_millis(args.page_time_limit_ms),
    };
    let path = &args.output;
    let exists = path.exists();
    if exists && !args.resume {
        bail!(
            "{} exists: pass --resume to continue it, or remove it",
            path.display()
        );
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let point = if exists {
        let point = format
            .resume_point(BufReader::new(&file))
            .with_context(|| format!("reading {}", path.display()))?
            .with_context(|| format!("{} is not a {} export", path.display(), args.format))?;
        file.set_len(point.keep_bytes)?;
        point
    } else {
        export::ResumePoint::default()
    };
    file.seek(SeekFrom::End(0))?;
    if let Some(c) = &point.cursor {
        filter.after = export::decode_cursor(c);
        eprintln!(
            "resuming {} after {} complete rows (cursor {c})",
            path.display(),
            point.rows
        );
    }
    let mut out = BufWriter::with_capacity(1 << 20, file);
    if point.keep_bytes == 0 {
        out.write_all(format.header().as_bytes())?;
    }

    let c: ClickHouseConfig = config::from_env()?;
    // The service's reads leave out what has expired; so does a file written beside them.
    let r: eye_store::retention::RetentionConfig = config::from_env()?;
    let store = Store::connect(&c).await?.with_retention(r);
    let total = store
        .event_count(&filter)
        .await
        .context("counting the matching events")?;
    let bar = progress(total, point.rows, args.quiet);
    let started = Instant::now();
    let mut written = 0u64;
    let mut pages = std::pin::pin!(export::pages(store, filter, settings));
    let mut chunk = Vec::new();
    while let Some(page) = pages.next().await {
        let rows = page.context("reading the events")?;
        chunk.clear();
        export::encode(format, &rows, &mut chunk);
        out.write_all(&chunk)?;
        written += rows.len() as u64;
        bar.inc(rows.len() as u64);
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} rows ({written} this run) in {secs:.1} s, {:.0} rows/s",
        path.display(),
        point.rows + written,
        written as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// A bar over the matching events on stderr, hidden with `--quiet` or off a terminal.
fn progress(total: u64, done: u64, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(total.max(done)), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{bar:30}] {percent:>3}% {human_pos}/{human_len} rows · \
         {per_sec} · eta {eta}",
    ) {
        bar.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    bar.set_position(done);
    if !quiet {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}
