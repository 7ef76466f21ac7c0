//! Exports: every event a filter matches, one per event (the listing's `LIMIT 1 BY`), in the
//! listing's order, as NDJSON or CSV, in memory that does not grow with the export.
//!
//! The rows are read as keyset pages of at most `page_rows` (the statement of
//! `GET /v1/events`, in cluster mode too, each page resuming after the last row of the one
//! before), so each page is one bounded read under the store's `max_result_rows` backstop
//! and its own time limit, and no more than a page or two is ever held. Each row carries
//! its `cursor`: the `/v1/events` cursor of that row, from which an export resumes exactly
//! after it (`cursor=` of `GET /v1/export`, `eye-admin export --resume`).
//!
//! ClickHouse 18.16 has no Parquet output format (`system.formats` has none, and
//! `FORMAT Parquet` fails with code 73, "Unknown format Parquet"): only NDJSON and CSV are
//! offered.

use crate::filters::EventFilter;
use crate::rows::EventRow;
use crate::rows::EventSpan;
use crate::store::{Store, StoreError};
use eye_model::time::EventTime;
use futures::Stream;
use serde::Serialize;
use serde_json::value::RawValue;
use std::io::BufRead;
use std::time::Duration;
use uuid::Uuid;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, `\n`-terminated.
    Ndjson,
    /// RFC 4180: a header line, then one record per line, `\r\n`-terminated.
    Csv,
}

impl Format {
    /// `ndjson` or `csv`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ndjson" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    /// What comes before the first row: the CSV header line.
    pub fn header(self) -> &'static str {
        match self {
            Self::Ndjson => "",
            Self::Csv => CSV_HEADER,
        }
    }

    /// The cursor a row line (without its line end) carries, or `None` if it is no row.
    pub fn row_cursor(self, line: &[u8]) -> Option<String> {
        let line = std::str::from_utf8(line).ok()?;
        let cursor = match self {
            Self::Ndjson => {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                v.get("cursor")?.as_str()?.to_owned()
            }
            // The cursor is the last field, never quoted (digits, hex and `_`).
            Self::Csv => line.rsplit(',').next()?.to_owned(),
        };
        decode_cursor(&cursor)?;
        Some(cursor)
    }

    /// Where an export written to `file` resumes: read line by line (memory does not grow
    /// with it), the last complete row's cursor and the bytes up to its end. A cut header
    /// keeps nothing, to be written again. `Ok(None)` if `file` is not an export in this
    /// format (a complete line that is not a row).
    pub fn resume_point(self, mut file: impl BufRead) -> std::io::Result<Option<ResumePoint>> {
        let header = self.header().as_bytes();
        let mut line = Vec::new();
        let mut point = ResumePoint::default();
        if !header.is_empty() {
            let mut head = vec![0; header.len()];
            let mut got = 0;
            while got < head.len() {
                match file.read(&mut head[got..])? {
                    0 => break,
                    n => got += n,
                }
            }
            if head[..got] != header[..got] {
                return Ok(None);
            }
            if got < header.len() {
                return Ok(Some(point));
            }
            point.keep_bytes = header.len() as u64;
        }
        loop {
            line.clear();
            let n = file.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                return Ok(Some(point));
            }
            let text = &line[..n - 1];
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let Some(cursor) = self.row_cursor(text) else {
                return Ok(None);
            };
            point.cursor = Some(cursor);
            point.keep_bytes += n as u64;
            point.rows += 1;
        }
    }
}

/// Where a cut export resumes ([`Format::resume_point`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// The last complete row's cursor; `None` when there is none (start from the first).
    pub cursor: Option<String>,
    /// The bytes to keep: the header and the complete rows. 0 when the header is cut.
    pub keep_bytes: u64,
    /// The complete rows.
    pub rows: u64,
}

/// The CSV columns, in order; `cursor` last.
pub const CSV_COLUMNS: [&str; 11] = [
    "event_id",
    "session_id",
    "category",
    "name",
    "timestamp",
    "client_timestamp",
    "sent_at",
    "received_at",
    "value",
    "data",
    "cursor",
];

const CSV_HEADER: &str = "event_id,session_id,category,name,timestamp,client_timestamp,\
                          sent_at,received_at,value,data,cursor\r\n";

/// The keyset cursor of a row, the same text as `/v1/events`' `next_cursor`:
/// `<ts_us>_<event_id, 32 hex digits>_<session_id, hex of its UTF-8>`.
pub fn cursor(r: &EventRow) -> String {
    format!(
        "{}_{}_{}",
        r.ts_us,
        r.event_id.simple(),
        hex_encode(r.session_id.as_bytes())
    )
}

/// The `(ts_us, event_id, session_id)` of a [`cursor`], or `None` if it is not one.
pub fn decode_cursor(raw: &str) -> Option<(i64, Uuid, String)> {
    let mut parts = raw.splitn(3, '_');
    let ts = parts.next()?.parse::<i64>().ok()?;
    let id = Uuid::try_parse(parts.next()?).ok()?;
    let session = hex_decode(parts.next()?)?;
    Some((ts, id, String::from_utf8(session).ok()?))
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn time(us: i64) -> String {
    EventTime::from_micros(us).to_rfc3339()
}

/// An exported NDJSON line: `GET /v1/events`' event, plus its `cursor`.
#[derive(Serialize)]
struct NdjsonRow<'a> {
    event_id: Uuid,
    session_id: &'a str,
    category: &'a str,
    name: &'a str,
    timestamp: String,
    client_timestamp: String,
    /// Absent when absent, as in the listing.
    #[serde(skip_serializing_if = "Option::is_none")]
    sent_at: Option<String>,
    received_at: String,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    cursor: String,
}

/// Appends the rows to `out` in `format` (without the header).
pub fn encode(format: Format, rows: &[EventRow], out: &mut Vec<u8>) {
    for r in rows {
        match format {
            Format::Ndjson => ndjson_row(r, out),
            Format::Csv => csv_row(r, out),
        }
    }
}

fn ndjson_row(r: &EventRow, out: &mut Vec<u8>) {
    // Stored JSON text as is; `null` if a row written by something else is not JSON.
    let null: &RawValue = serde_json::from_str("null").unwrap_or_else(|_| unreachable!());
    let data = serde_json::from_str::<&RawValue>(&r.data).unwrap_or(null);
    let line = NdjsonRow {
        event_id: r.event_id,
        session_id: &r.session_id,
        category: &r.category,
        name: &r.name,
        timestamp: time(r.ts_us),
        client_timestamp: time(r.client_ts_us),
        sent_at: r.sent_at_us.map(time),
        received_at: time(r.received_at_us),
        data,
        // JSON has no NaN or infinity: such a value is left out, as none.
        value: r.value.filter(|v| v.is_finite()),
        cursor: cursor(r),
    };
    serde_json::to_writer(&mut *out, &line).unwrap_or_else(|_| unreachable!("into a Vec"));
    out.push(b'\n');
}

fn csv_row(r: &EventRow, out: &mut Vec<u8>) {
    let value = r
        .value
        .filter(|v| v.is_finite())
        .map(|v| v.to_string())
        .unwrap_or_default();
    let fields = [
        r.event_id.to_string(),
        csv_field(&r.session_id),
        csv_field(&r.category),
        csv_field(&r.name),
        time(r.ts_us),
        time(r.client_ts_us),
        r.sent_at_us.map(time).unwrap_or_default(),
        time(r.received_at_us),
        value,
        csv_field(&r.data),
        cursor(r),
    ];
    out.extend_from_slice(fields.join(",").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A CSV field (RFC 4180): quoted, its quotes doubled, when it holds a comma, a quote or a
/// line break, or starts or ends with a space; as is otherwise.
pub fn csv_field(s: &str) -> String {
    let quote = s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ');
    if quote {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// How an export reads: rows per page and each page's time limit.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// At most [`crate::MAX_RESULT_ROWS`].
    pub page_rows: u32,
    pub page_time_limit: Duration,
}

/// The filter's events as pages of at most `page_rows`, in the filter's order, starting
/// after its cursor (`after`); its `offset` and `limit` are ignored. Each page is read when
/// the stream is polled for it: nothing else is held.
///
/// Each page is also bounded in time. The listing's order (time first) is not the key
/// order of `events_by_type` (type first), so a page cut only by its cursor makes
/// ClickHouse read and sort every row after the cursor: the whole export would read
/// rows × pages / 2, quadratic in its size (measured: 566,000 rows read per page of
/// 10,000 over 1,000,000 events). So the walk reads windows of time sized from the span
/// of the matches ([`Store::event_span`], one read at the start) to hold about a page
/// each. A window that fills a page shrinks; one that does not is done, and the next one
/// starts where it ended, twice as wide when it held less than half a page. Past the last
/// event time of the span, the window is unbounded, so events stored meanwhile are still
/// found, as a walk of `/v1/events` would. Same rows, same order: the windows only cut what
/// each read looks at.
pub fn pages(
    store: Store,
    filter: EventFilter,
    settings: Settings,
) -> impl Stream<Item = Result<Vec<EventRow>, StoreError>> + Send {
    let base = EventFilter {
        offset: 0,
        limit: settings.page_rows.clamp(1, crate::MAX_RESULT_ROWS as u32),
        ..filter
    };
    futures::stream::try_unfold(Walk::Start(base), move |walk| {
        let store = store.clone();
        async move { walk.next(&store, settings.page_time_limit).await }
    })
}

/// Where a walk stands.
enum Walk {
    Start(EventFilter),
    Windows(Windows),
    Done,
}

/// A walk by time windows. Ascending: the current window is `[from, edge)`, `from` the
/// filter's own or the end of the previous window; descending: `[edge, to)`.
struct Windows {
    /// The caller's filter, its cursor moved to the last row returned.
    f: EventFilter,
    /// The start of the current window (the earlier bound ascending, the later one
    /// descending), once the first is done.
    start: Option<i64>,
    /// The far bound of the current window; `None`: unbounded.
    edge: Option<i64>,
    width: i64,
    /// The span's last event time in the walk's direction.
    last_us: i64,
}

impl Walk {
    async fn next(
        self,
        store: &Store,
        limit: Duration,
    ) -> Result<Option<(Vec<EventRow>, Walk)>, StoreError> {
        let mut w = match self {
            Walk::Done => return Ok(None),
            Walk::Windows(w) => w,
            Walk::Start(f) => {
                let span = store.event_span(&f, limit).await?;
                Windows::new(f, span)
            }
        };
        loop {
            let rows = store.export_page(&w.filter(), limit).await?;
            match w.advance(&rows) {
                None => return Ok((!rows.is_empty()).then_some((rows, Walk::Done))),
                // An empty window (a gap in time): on to the next, without a page.
                Some(next) if rows.is_empty() => w = next,
                Some(next) => return Ok(Some((rows, Walk::Windows(next)))),
            }
        }
    }
}

impl Windows {
    fn new(f: EventFilter, span: EventSpan) -> Self {
        let mut w = Windows {
            f,
            start: None,
            edge: None,
            width: 1,
            last_us: 0,
        };
        if span.copies == 0 {
            // Nothing yet: one unbounded read, for whatever was stored meanwhile.
            return w;
        }
        // About a page per window, were the copies spread evenly.
        let range = i128::from(span.last_us) - i128::from(span.first_us) + 1;
        let width = range * i128::from(w.f.limit) / i128::from(span.copies);
        w.width = i64::try_from(width.max(1)).unwrap_or(i64::MAX);
        let (first, last) = if w.f.descending {
            (span.last_us, span.first_us)
        } else {
            (span.first_us, span.last_us)
        };
        w.last_us = last;
        w.edge = Some(w.step(first, w.width));
        w
    }

    /// `from` moved `by` in the walk's direction: the far bound of a window starting there.
    fn step(&self, from: i64, by: i64) -> i64 {
        if self.f.descending {
            // Inclusive lower bound of `(from - by, from]`.
            from.saturating_sub(by).saturating_add(1)
        } else {
            // Exclusive upper bound of `[from, from + by)`.
            from.saturating_add(by)
        }
    }

    /// The page's filter: the caller's, narrowed to the current window.
    fn filter(&self) -> EventFilter {
        let mut f = self.f.clone();
        let (near, far) = if f.descending {
            (&mut f.to_us, &mut f.from_us)
        } else {
            (&mut f.from_us, &mut f.to_us)
        };
        let desc = self.f.descending;
        // The nearer of two bounds on the window's start side, the tighter on its far side.
        let tighter = |a: Option<i64>, b: Option<i64>, later: bool| match (a, b) {
            (Some(a), Some(b)) => Some(if later { a.max(b) } else { a.min(b) }),
            (a, b) => a.or(b),
        };
        *near = tighter(*near, self.start, !desc);
        *far = tighter(*far, self.edge, desc);
        f
    }

    /// After a page of `rows`: the walk's next state, `None` when it is over.
    fn advance(mut self, rows: &[EventRow]) -> Option<Self> {
        let full = rows.len() == self.f.limit as usize;
        if let Some(last) = rows.last() {
            self.f.after = Some((last.ts_us, last.event_id, last.session_id.clone()));
        }
        let Some(edge) = self.edge else {
            // Unbounded: the rest fit in this page, or the next one continues after it.
            return full.then_some(self);
        };
        if let (true, Some(last)) = (full, rows.last()) {
            // More in this window: read a narrower one after the last row.
            self.width = (self.width / 2).max(1);
            let narrower = self.step(last.ts_us, self.width.saturating_add(1));
            self.edge = Some(if self.f.descending {
                edge.max(narrower)
            } else {
                edge.min(narrower)
            });
            return Some(self);
        }
        // The window is done. It ended the caller's range, or the next one starts at its
        // edge (unbounded past the span's last time).
        let ends_range = if self.f.descending {
            self.f.from_us.is_some_and(|from| edge <= from)
        } else {
            self.f.to_us.is_some_and(|to| edge >= to)
        };
        if ends_range {
            return None;
        }
        if rows.is_empty() || rows.len() < self.f.limit as usize / 2 {
            self.width = self.width.saturating_mul(2);
        }
        self.start = Some(edge);
        let past_last = if self.f.descending {
            edge <= self.last_us
        } else {
            edge > self.last_us
        };
        self.edge = if past_last {
            None
        } else {
            let from = if self.f.descending {
                edge.saturating_sub(1)
            } else {
                edge
            };
            Some(self.step(from, self.width))
        };
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u128, session: &str, data: &str, value: Option<f64>) -> EventRow {
        EventRow {
            event_id: Uuid::from_u128(n),
            session_id: session.to_owned(),
            category: "page_interaction".into(),
            name: "page_view".into(),
            ts_us: 1_700_000_000_000_000 + n as i64,
            received_at_us: 1_700_000_000_500_000,
            data: data.to_owned(),
            value,
            client_ts_us: 1_700_000_000_000_000,
            sent_at_us: None,
        }
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let cases = [
            ("plain", "plain"),
            ("", ""),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("cr\r", "\"cr\r\""),
            (" padded", "\" padded\""),
            ("{\"a\":1,\"b\":[2]}", "\"{\"\"a\"\":1,\"\"b\"\":[2]}\""),
            ("=SUM(A1)", "=SUM(A1)"),
        ];
        for (raw, want) in cases {
            assert_eq!(csv_field(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn csv_rows_have_every_column_and_end_with_the_cursor() {
        let r = row(7, "s,1", r#"{"q":"a\"b"}"#, Some(2.5));
        let mut out = Vec::new();
        encode(Format::Csv, std::slice::from_ref(&r), &mut out);
        let line = String::from_utf8(out).expect("UTF-8");
        assert_eq!(
            line,
            format!(
                "00000000-0000-0000-0000-000000000007,\"s,1\",page_interaction,page_view,\
                 2023-11-14T22:13:20.000007Z,2023-11-14T22:13:20.000000Z,,\
                 2023-11-14T22:13:20.500000Z,2.5,\"{{\"\"q\"\":\"\"a\\\"\"b\"\"}}\",{}\r\n",
                cursor(&r)
            )
        );
        assert_eq!(
            CSV_HEADER.trim_end().split(',').collect::<Vec<_>>(),
            CSV_COLUMNS
        );
    }

    #[test]
    fn ndjson_rows_are_the_listing_event_and_its_cursor() {
        let rows = [
            row(1, "s1", r#"{"n":1}"#, None),
            row(2, "s1", "not json", Some(f64::NAN)),
        ];
        let mut out = Vec::new();
        encode(Format::Ndjson, &rows, &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["data"], serde_json::json!({"n": 1}));
        assert_eq!(lines[0]["value"], serde_json::Value::Null);
        assert_eq!(lines[0]["timestamp"], "2023-11-14T22:13:20.000001Z");
        assert_eq!(lines[1]["data"], serde_json::Value::Null);
        assert_eq!(lines[1]["value"], serde_json::Value::Null);
        assert_eq!(lines[1]["cursor"], cursor(&rows[1]));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn cursors_round_trip() {
        for session in ["s1", "", "ünï_cödé,\"x\""] {
            let r = row(0xabcdef, session, "{}", None);
            let c = cursor(&r);
            assert!(
                c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{c}"
            );
            assert_eq!(
                decode_cursor(&c),
                Some((r.ts_us, r.event_id, session.to_owned()))
            );
        }
        for bad in [
            "",
            "x_00000000000000000000000000000001_",
            "1_nope_",
            "1_00000000000000000000000000000001_abc",
            "1_00000000000000000000000000000001_zz",
            "1_00000000000000000000000000000001_ff",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_cut_export_resumes_after_its_last_complete_row() {
        let rows = [
            row(1, "a", "{}", None),
            row(2, "b", "{\"x\":\"1,2\"}", None),
        ];
        let point = |format: Format, text: &[u8]| format.resume_point(text).expect("in memory");
        let at = |cursor: Option<String>, keep_bytes: usize, rows: u64| {
            Some(ResumePoint {
                cursor,
                keep_bytes: keep_bytes as u64,
                rows,
            })
        };
        for format in [Format::Ndjson, Format::Csv] {
            let mut full = format.header().as_bytes().to_vec();
            let header = full.len();
            encode(format, &rows[..1], &mut full);
            let one = full.len();
            encode(format, &rows[1..], &mut full);
            let (first, last) = (Some(cursor(&rows[0])), Some(cursor(&rows[1])));
            assert_eq!(point(format, &full), at(last, full.len(), 2), "{format:?}");
            // Cut anywhere inside the second row: the first is the last complete one.
            for cut in one..full.len() {
                let got = point(format, &full[..cut]);
                assert_eq!(got, at(first.clone(), one, 1), "{format:?} cut at {cut}");
            }
            // Cut inside the first row: only the header is kept.
            for cut in header..one {
                let got = point(format, &full[..cut]);
                assert_eq!(got, at(None, header, 0), "{format:?} cut at {cut}");
            }
            // Cut inside the header: nothing is.
            for cut in 0..header {
                let got = point(format, &full[..cut]);
                assert_eq!(got, at(None, 0, 0), "{format:?} cut at {cut}");
            }
        }
        assert_eq!(point(Format::Csv, b"not,an,export\r\n"), None);
        assert_eq!(point(Format::Ndjson, b"{\"a\":1}\n"), None);
        let mut csv = CSV_HEADER.as_bytes().to_vec();
        csv.extend_from_slice(b"a,b\r\n");
        assert_eq!(point(Format::Csv, &csv), None);
    }

    /// What ClickHouse answers for a page's filter, over `rows` (distinct events).
    fn page(rows: &[EventRow], f: &EventFilter) -> Vec<EventRow> {
        let key = |r: &EventRow| (r.ts_us, r.event_id, r.session_id.clone());
        let mut out: Vec<EventRow> = rows
            .iter()
            .filter(|r| f.from_us.is_none_or(|t| r.ts_us >= t))
            .filter(|r| f.to_us.is_none_or(|t| r.ts_us < t))
            .filter(|r| match &f.after {
                None => true,
                Some(a) if f.descending => key(r) < *a,
                Some(a) => key(r) > *a,
            })
            .cloned()
            .collect();
        out.sort_by_key(key);
        if f.descending {
            out.reverse();
        }
        out.truncate(f.limit as usize);
        out
    }

    fn span(rows: &[EventRow], f: &EventFilter) -> EventSpan {
        let all = page(
            rows,
            &EventFilter {
                limit: u32::MAX,
                ..f.clone()
            },
        );
        EventSpan {
            copies: all.len() as u64,
            first_us: all.iter().map(|r| r.ts_us).min().unwrap_or(0),
            last_us: all.iter().map(|r| r.ts_us).max().unwrap_or(0),
        }
    }

    /// The walk's pages over `rows`, and how many reads it took.
    fn walk(rows: &[EventRow], f: EventFilter) -> (Vec<EventRow>, usize) {
        let mut w = Windows::new(f.clone(), span(rows, &f));
        let (mut out, mut reads) = (Vec::new(), 0);
        loop {
            let got = page(rows, &w.filter());
            reads += 1;
            assert!(got.len() <= f.limit as usize);
            out.extend_from_slice(&got);
            match w.advance(&got) {
                Some(next) => w = next,
                None => return (out, reads),
            }
            assert!(reads < 100_000, "the walk does not end");
        }
    }

    #[test]
    fn time_windows_walk_every_event_once_in_order() {
        // Bursts, ties of time, gaps of years, and a lone late event.
        let mut rows = Vec::new();
        let mut n = 0u128;
        let mut at = |ts_us: i64, session: &str| {
            n += 1;
            EventRow {
                ts_us,
                ..row(n, session, "{}", None)
            }
        };
        for i in 0..500 {
            rows.push(at(1_000_000 + i * 7, "a"));
        }
        for _ in 0..300 {
            rows.push(at(5_000_000, "tie"));
        }
        for i in 0..50 {
            rows.push(at(9_000_000_000 + i * 1_000_000_000, "sparse"));
        }
        rows.push(at(4_000_000_000_000_000, "late"));
        let all = |desc: bool| {
            page(
                &rows,
                &EventFilter {
                    limit: u32::MAX,
                    descending: desc,
                    ..EventFilter::default()
                },
            )
        };
        for descending in [false, true] {
            let everything = all(descending);
            for limit in [1, 7, 64, 1000] {
                let f = EventFilter {
                    limit,
                    descending,
                    ..EventFilter::default()
                };
                let (got, reads) = walk(&rows, f);
                assert_eq!(got, everything, "limit {limit} desc {descending}");
                assert!(
                    reads <= 4 * rows.len() / limit as usize + 64,
                    "{reads} reads"
                );
            }
            // Within bounds, and after a cursor.
            let (from, to) = (Some(1_000_700), Some(9_000_000_000 + 20 * 1_000_000_000));
            let bounded = EventFilter {
                from_us: from,
                to_us: to,
                limit: 16,
                descending,
                ..EventFilter::default()
            };
            let want = page(
                &rows,
                &EventFilter {
                    limit: u32::MAX,
                    ..bounded.clone()
                },
            );
            assert_eq!(walk(&rows, bounded.clone()).0, want);
            let cut = &want[40];
            let after = EventFilter {
                after: Some((cut.ts_us, cut.event_id, cut.session_id.clone())),
                ..bounded
            };
            assert_eq!(walk(&rows, after).0, want[41..].to_vec());
        }
        // Nothing matches: one read.
        let none = EventFilter {
            from_us: Some(i64::MAX - 1),
            limit: 10,
            ..EventFilter::default()
        };
        assert_eq!(walk(&rows, none), (Vec::new(), 1));
    }
}
