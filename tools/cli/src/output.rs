//! Rendering the query API's answers (`eye_model::api`) for people and for scripts.
//!
//! [`Format`] comes from `--json`, `--ndjson` or `--csv`; without one it is a table when
//! standard output is a terminal, else NDJSON for listings and JSON for single objects
//! ([`Format::choose`]). Every renderer is pure: it takes the answer and returns the text.
//!
//! - JSON: the answer as the service sent it (single objects), or an array (listings).
//! - NDJSON: one object per line: the items of a listing, a session's events.
//! - CSV: a header row, then a row per item; `data` and `reasons` as compact JSON.
//! - Table: comfy-table, with `data` as compact JSON cut to [`DATA_WIDTH`] characters.

use comfy_table::{presets, Table};
use eye_model::api::{
    Aggregate, BucketView, Categories, EventView, RejectedView, SessionDetail, SessionEvents,
    SessionView,
};
use serde::Serialize;
use std::io::IsTerminal;

/// The widest `data` (and `reasons`) column of a table, in characters.
pub const DATA_WIDTH: usize = 48;
/// The longest bar of an aggregation's chart, in characters.
pub const CHART_WIDTH: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Ndjson,
    Csv,
}

/// Whether an answer is a list of items or one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Listing,
    Single,
}

/// The output flags every read command takes.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct FormatArgs {
    /// Print JSON (one document).
    #[arg(long, global = true, conflicts_with_all = ["ndjson", "csv"])]
    pub json: bool,
    /// Print NDJSON (one JSON object per line).
    #[arg(long, global = true, conflicts_with = "csv")]
    pub ndjson: bool,
    /// Print CSV with a header row.
    #[arg(long, global = true, conflicts_with = "table")]
    pub csv: bool,
    /// Print a table, even when standard output is not a terminal.
    #[arg(long, global = true, conflicts_with_all = ["json", "ndjson"])]
    pub table: bool,
}

impl Format {
    /// The format the flags ask for, else a table on a terminal, else NDJSON for a listing
    /// and JSON for a single object.
    pub fn choose(flags: FormatArgs, terminal: bool, shape: Shape) -> Self {
        match (flags.json, flags.ndjson, flags.csv) {
            (true, _, _) => Self::Json,
            (_, true, _) => Self::Ndjson,
            (_, _, true) => Self::Csv,
            _ if terminal || flags.table => Self::Table,
            _ => match shape {
                Shape::Listing => Self::Ndjson,
                Shape::Single => Self::Json,
            },
        }
    }

    /// [`Format::choose`] for this process's standard output.
    pub fn for_stdout(flags: FormatArgs, shape: Shape) -> Self {
        Self::choose(flags, std::io::stdout().is_terminal(), shape)
    }
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn ndjson<'a, T: Serialize + 'a>(items: impl IntoIterator<Item = &'a T>) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str(&serde_json::to_string(item).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let write = || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header)?;
        for row in rows {
            w.write_record(&row)?;
        }
        Ok(w.into_inner()?)
    };
    String::from_utf8(write().unwrap_or_default()).unwrap_or_default()
}

fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    for row in rows {
        t.add_row(row);
    }
    format!("{t}\n")
}

/// `text` cut to `width` characters, the last one `…` when cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// JSON text without insignificant white space.
pub fn compact(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| raw.to_owned())
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

const EVENT_COLUMNS: [&str; 8] = [
    "timestamp",
    "session_id",
    "category",
    "name",
    "value",
    "data",
    "event_id",
    "received_at",
];
const EVENT_TABLE_COLUMNS: [&str; 6] = [
    "timestamp",
    "session_id",
    "category",
    "name",
    "value",
    "data",
];

fn event_row(e: &EventView) -> Vec<String> {
    vec![
        e.timestamp.clone(),
        e.session_id.clone(),
        e.category.clone(),
        e.name.clone(),
        opt(&e.value),
        compact(e.data.get()),
        e.event_id.to_string(),
        e.received_at.clone(),
    ]
}

fn event_table_row(e: &EventView) -> Vec<String> {
    let mut row = event_row(e);
    row.truncate(EVENT_TABLE_COLUMNS.len());
    row[5] = cut(&row[5], DATA_WIDTH);
    row
}

/// A list of events (`eye events`, `eye tail`).
pub fn events(events: &[EventView], format: Format) -> String {
    match format {
        Format::Json => json(events),
        Format::Ndjson => ndjson(events),
        Format::Csv => csv(&EVENT_COLUMNS, events.iter().map(event_row)),
        Format::Table if events.is_empty() => "no events\n".into(),
        Format::Table => table(&EVENT_TABLE_COLUMNS, events.iter().map(event_table_row)),
    }
}

fn header(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            let v = if v.is_empty() { "-" } else { v.as_str() };
            format!("{k:<width$}  {v}\n")
        })
        .collect()
}

fn lifecycle(v: &SessionView) -> Vec<(&'static str, String)> {
    vec![
        ("user_id", opt(&v.user_id)),
        ("machine_id", opt(&v.machine_id)),
        ("org_id", opt(&v.org_id)),
        ("started_at", opt(&v.started_at)),
        ("ended_at", opt(&v.ended_at)),
    ]
}

/// A session with a page of its events (`GET /v1/sessions/{id}`): a header of the
/// session's fields, then its events. NDJSON and CSV carry the events (each names its
/// session); JSON the whole answer.
pub fn session(s: &SessionDetail, format: Format) -> String {
    match format {
        Format::Json => json(s),
        Format::Ndjson | Format::Csv => events(&s.events, format),
        Format::Table => {
            let m = &s.summary;
            let mut pairs = vec![("session_id", m.session_id.clone())];
            pairs.extend(lifecycle(&m.lifecycle));
            pairs.extend([
                ("event_count", m.event_count.to_string()),
                ("first_event_at", opt(&m.first_event_at)),
                ("last_event_at", opt(&m.last_event_at)),
            ]);
            let mut out = header(&pairs);
            out.push('\n');
            out.push_str(&events(&s.events, Format::Table));
            if let Some(cursor) = &s.next_cursor {
                out.push_str(&format!("more events: --cursor {cursor}\n"));
            }
            out
        }
    }
}

/// A session's events (`GET /v1/sessions/{id}/events`), as [`session`] shows a session.
pub fn session_events(s: &SessionEvents, format: Format) -> String {
    match format {
        Format::Json => json(s),
        Format::Ndjson | Format::Csv => events(&s.events, format),
        Format::Table => {
            let mut pairs = vec![("session_id", s.session_id.clone())];
            match &s.session {
                Some(v) => pairs.extend(lifecycle(v)),
                None => pairs.push(("lifecycle", "no start or end recorded".into())),
            }
            let mut out = header(&pairs);
            out.push('\n');
            out.push_str(&events(&s.events, Format::Table));
            out
        }
    }
}

fn bucket_row(b: &BucketView) -> Vec<String> {
    vec![b.start.clone(), opt(&b.value), b.count.to_string()]
}

/// An aggregation (`GET /v1/aggregate`): a table of the buckets and a bar chart of their
/// values. NDJSON and CSV carry the buckets.
pub fn aggregate(a: &Aggregate, format: Format) -> String {
    const COLUMNS: [&str; 3] = ["start", "value", "count"];
    match format {
        Format::Json => json(a),
        Format::Ndjson => ndjson(&a.buckets),
        Format::Csv => csv(&COLUMNS, a.buckets.iter().map(bucket_row)),
        Format::Table => {
            let mut out = format!(
                "{}/{}: {} per {} ({}, fill {})\n",
                a.category, a.name, a.agg, a.granularity, a.tz, a.fill
            );
            if a.buckets.is_empty() {
                out.push_str("no buckets\n");
                return out;
            }
            out.push_str(&table(&COLUMNS, a.buckets.iter().map(bucket_row)));
            out.push('\n');
            out.push_str(&chart(&a.buckets, CHART_WIDTH));
            out
        }
    }
}

/// A bar per bucket, `width` characters for the largest value, in eighths of a character
/// (Unicode block elements). An empty bucket (`null`) has no bar; negative values are
/// drawn as none (their value is printed).
pub fn chart(buckets: &[BucketView], width: usize) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let max = buckets
        .iter()
        .filter_map(|b| b.value)
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let label = buckets
        .iter()
        .map(|b| b.start.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for b in buckets {
        let (bar, value) = match b.value {
            None => (String::new(), "-".to_owned()),
            Some(v) => {
                let eighths = if max > 0.0 && v > 0.0 {
                    ((v / max) * (width * 8) as f64).round() as usize
                } else {
                    0
                };
                let mut bar = "█".repeat(eighths / 8);
                if eighths % 8 > 0 {
                    bar.push(EIGHTHS[eighths % 8]);
                }
                (bar, v.to_string())
            }
        };
        out.push_str(&format!("{:<label$} │{bar} {value}\n", b.start));
    }
    out
}

/// Event types and their counts (`GET /v1/categories`).
pub fn categories(c: &Categories, format: Format) -> String {
    const COLUMNS: [&str; 5] = ["category", "name", "events", "first_seen", "last_seen"];
    let rows = || {
        c.categories.iter().map(|v| {
            vec![
                v.category.clone(),
                v.name.clone(),
                v.events.to_string(),
                v.first_seen.clone(),
                v.last_seen.clone(),
            ]
        })
    };
    match format {
        Format::Json => json(c),
        Format::Ndjson => ndjson(&c.categories),
        Format::Csv => csv(&COLUMNS, rows()),
        Format::Table if c.categories.is_empty() => "no event types\n".into(),
        Format::Table => table(&COLUMNS, rows()),
    }
}

/// Quarantined events (`GET /v1/rejected`).
pub fn rejected(items: &[RejectedView], format: Format) -> String {
    const COLUMNS: [&str; 12] = [
        "received_at",
        "source",
        "client",
        "session_id",
        "category",
        "name",
        "event_id",
        "reasons",
        "raw",
        "raw_bytes",
        "raw_truncated",
        "rejection_id",
    ];
    const TABLE: [&str; 6] = [
        "received_at",
        "client",
        "category",
        "name",
        "reasons",
        "raw",
    ];
    let row = |r: &RejectedView| {
        vec![
            r.received_at.clone(),
            r.source.clone(),
            r.client.clone(),
            r.session_id.clone(),
            r.category.clone(),
            r.name.clone(),
            r.event_id.clone(),
            compact(r.reasons.get()),
            r.raw.clone(),
            r.raw_bytes.to_string(),
            r.raw_truncated.to_string(),
            r.rejection_id.to_string(),
        ]
    };
    match format {
        Format::Json => json(items),
        Format::Ndjson => ndjson(items),
        Format::Csv => csv(&COLUMNS, items.iter().map(row)),
        Format::Table if items.is_empty() => "no rejected events\n".into(),
        Format::Table => table(
            &TABLE,
            items.iter().map(|r| {
                vec![
                    r.received_at.clone(),
                    r.client.clone(),
                    r.category.clone(),
                    r.name.clone(),
                    cut(&reason_codes(r.reasons.get()), DATA_WIDTH),
                    cut(&compact(&r.raw), DATA_WIDTH),
                ]
            }),
        ),
    }
}

/// `field: code` of each reason, or the compact JSON when the reasons have another shape.
fn reason_codes(reasons: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Reason {
        #[serde(default)]
        field: String,
        code: String,
    }
    match serde_json::from_str::<Vec<Reason>>(reasons) {
        Ok(list) => list
            .iter()
            .map(|r| {
                if r.field.is_empty() {
                    r.code.clone()
                } else {
                    format!("{}: {}", r.field, r.code)
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(_) => compact(reasons),
    }
}

#[cfg(test)]
mod tests;
