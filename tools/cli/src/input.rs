//! Events from a file or standard input, as text: a JSON array, or NDJSON (one event per
//! line, blank lines skipped), told apart by the first byte that is not white space (`[`
//! starts an array).
//!
//! NDJSON is streamed line by line, so a file of any length is never held whole. An array
//! is read whole (it is one JSON document) and split into the text of each item without
//! building a `Value`. Either way each event comes with the line it starts on, and its
//! text exactly as written, so that checks and sends see what the file holds.

use eye_model::event::json_error_message;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One event as the input holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The 1-based line the event starts on.
    pub line: usize,
    /// The event's text: the whole line for NDJSON (without its line break), the item's
    /// text for an array.
    pub text: String,
}

/// How the input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Array,
    Ndjson,
}

/// Why the input could not be read. Each names where.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: {source}", source_name.display())]
    Io {
        source_name: PathBuf,
        source: io::Error,
    },
    #[error("{}: line {line} is not UTF-8 text", source_name.display())]
    NotUtf8 { source_name: PathBuf, line: usize },
    /// The JSON array is not valid JSON: no event of it can be read.
    #[error("{}: not valid JSON: {message} at line {line}, column {column}", source_name.display())]
    MalformedArray {
        source_name: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: the array holds no events", source_name.display())]
    EmptyArray { source_name: PathBuf },
}

/// The events of one input, in order. Stops after the first error.
pub struct Events {
    name: PathBuf,
    layout: Layout,
    inner: Inner,
    /// Bytes consumed so far, for progress against [`Events::total_bytes`].
    position: u64,
    total_bytes: Option<u64>,
    done: bool,
}

enum Inner {
    Ndjson {
        reader: Box<dyn BufRead>,
        /// The number of the last line read.
        line: usize,
        buf: Vec<u8>,
    },
    Array {
        text: String,
        /// Byte ranges of the items, in order.
        items: std::vec::IntoIter<(usize, usize)>,
        /// Line of `counted_to`, the offset up to which line breaks were counted.
        line: usize,
        counted_to: usize,
    },
}

/// Opens `path`, or standard input for `-`.
pub fn open(path: &Path) -> Result<Events, InputError> {
    if path == Path::new("-") {
        from_reader(
            Box::new(BufReader::new(io::stdin())),
            "<stdin>".into(),
            None,
        )
    } else {
        let io_err = |source| InputError::Io {
            source_name: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        from_reader(
            Box::new(BufReader::with_capacity(256 * 1024, file)),
            path.to_owned(),
            Some(len),
        )
    }
}

/// Reads events from `reader`; `name` names it in errors, `total_bytes` is its length when
/// known (for progress).
pub fn from_reader(
    mut reader: Box<dyn BufRead>,
    name: PathBuf,
    total_bytes: Option<u64>,
) -> Result<Events, InputError> {
    let io_err = |source| InputError::Io {
        source_name: name.clone(),
        source,
    };
    let (first, skipped_lines, skipped_bytes) = skip_space(&mut reader).map_err(io_err)?;
    if first == Some(b'[') {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(io_err)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = 1 + skipped_lines + count_lines(&e.as_bytes()[..at]);
            InputError::NotUtf8 {
                source_name: name.clone(),
                line,
            }
        })?;
        let items = split_array(&text).map_err(|e| InputError::MalformedArray {
            source_name: name.clone(),
            line: e.line() + skipped_lines,
            column: e.column(),
            message: json_error_message(&e),
        })?;
        if items.is_empty() {
            return Err(InputError::EmptyArray { source_name: name });
        }
        Ok(Events {
            name,
            layout: Layout::Array,
            inner: Inner::Array {
                text,
                items: items.into_iter(),
                line: 1 + skipped_lines,
                counted_to: 0,
            },
            position: skipped_bytes,
            total_bytes,
            done: false,
        })
    } else {
        Ok(Events {
            name,
            layout: Layout::Ndjson,
            inner: Inner::Ndjson {
                reader,
                line: skipped_lines,
                buf: Vec::new(),
            },
            position: skipped_bytes,
            total_bytes,
            done: false,
        })
    }
}

impl Events {
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// What the input is called in messages: its path, or `<stdin>`.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Bytes of the input consumed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The input's length in bytes, when it is a file.
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    fn next_line(&mut self) -> Option<Result<RawEvent, InputError>> {
        let Inner::Ndjson { reader, line, buf } = &mut self.inner else {
            return None;
        };
        loop {
            buf.clear();
            let n = match reader.read_until(b'\n', buf) {
                Ok(n) => n,
                Err(source) => {
                    return Some(Err(InputError::Io {
                        source_name: self.name.clone(),
                        source,
                    }))
                }
            };
            if n == 0 {
                return None;
            }
            self.position += n as u64;
            *line += 1;
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let end = buf.len() - usize::from(buf.ends_with(b"\n"));
            let end = end - usize::from(buf[..end].ends_with(b"\r"));
            return Some(match std::str::from_utf8(&buf[..end]) {
                Ok(text) => Ok(RawEvent {
                    line: *line,
                    text: text.to_owned(),
                }),
                Err(_) => Err(InputError::NotUtf8 {
                    source_name: self.name.clone(),
                    line: *line,
                }),
            });
        }
    }

    fn next_item(&mut self) -> Option<RawEvent> {
        let Inner::Array {
            text,
            items,
            line,
            counted_to,
        } = &mut self.inner
        else {
            return None;
        };
        let (start, end) = items.next()?;
        *line += count_lines(&text.as_bytes()[*counted_to..start]);
        *counted_to = start;
        self.position = self.position.max(end as u64);
        Some(RawEvent {
            line: *line,
            text: text[start..end].to_owned(),
        })
    }
}

impl Iterator for Events {
    type Item = Result<RawEvent, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.layout {
            Layout::Ndjson => self.next_line(),
            Layout::Array => self.next_item().map(Ok),
        };
        if matches!(item, None | Some(Err(_))) {
            self.done = true;
        }
        if item.is_none() {
            if let Some(total) = self.total_bytes {
                self.position = total;
            }
        }
        item
    }
}

/// Consumes leading white space; returns the first other byte (not consumed), and the
/// line breaks and bytes skipped.
fn skip_space(reader: &mut dyn BufRead) -> io::Result<(Option<u8>, usize, u64)> {
    let (mut lines, mut bytes) = (0, 0u64);
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((None, lines, bytes));
        }
        let ws = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
        lines += count_lines(&buf[..ws]);
        let first = buf.get(ws).copied();
        // Only whole lines are skipped, so that the line count stays right: the spaces
        // before the first event, on its own line, stay part of that line.
        let consume = match first {
            Some(_) => buf[..ws]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1),
            None => ws,
        };
        reader.consume(consume);
        if first.is_some() {
            return Ok((first, lines, bytes + consume as u64));
        }
        bytes += consume as u64;
    }
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// The byte range of each item of the JSON array `text`, without parsing the items.
fn split_array(text: &str) -> Result<Vec<(usize, usize)>, serde_json::Error> {
    let items: Vec<&serde_json::value::RawValue> = match serde_json::from_str(text) {
        Ok(items) => items,
        // Skipping over items reports some errors vaguely ("key must be a string" for a
        // trailing comma), so on failure the text is parsed in full for the precise message,
        // as ingest does.
        Err(e) => {
            return Err(serde_json::from_str::<serde_json::Value>(text)
                .err()
                .unwrap_or(e))
        }
    };
    let base = text.as_ptr() as usize;
    Ok(items
        .into_iter()
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - base;
            (start, start + raw.get().len())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<(Layout, Vec<(usize, String)>), String> {
        let events = from_reader(
            Box::new(io::Cursor::new(text.as_bytes().to_vec())),
            "t".into(),
            Some(text.len() as u64),
        )
        .map_err(|e| e.to_string())?;
        let layout = events.layout();
        let mut out = Vec::new();
        for e in events {
            let e = e.map_err(|e| e.to_string())?;
            out.push((e.line, e.text));
        }
        Ok((layout, out))
    }

    fn ok(pairs: &[(usize, &str)]) -> Vec<(usize, String)> {
        pairs.iter().map(|(l, t)| (*l, (*t).to_owned())).collect()
    }

    #[test]
    fn ndjson_lines_and_arrays_split_into_items_with_their_lines() {
        use Layout::*;
        let cases: &[(&str, Layout, Vec<(usize, String)>)] = &[
            (
                "{\"a\":1}\n{\"b\":2}\n",
                Ndjson,
                ok(&[(1, "{\"a\":1}"), (2, "{\"b\":2}")]),
            ),
            (
                "\n\n  {\"a\":1}\r\n\n   \n{\"b\":2}",
                Ndjson,
                ok(&[(3, "  {\"a\":1}"), (6, "{\"b\":2}")]),
            ),
            // A broken line is still an event's text: the checker reports it.
            ("{\"a\":\n{}\n", Ndjson, ok(&[(1, "{\"a\":"), (2, "{}")])),
            (
                "[{\"a\":1}, {\"b\": [1, 2]}]",
                Array,
                ok(&[(1, "{\"a\":1}"), (1, "{\"b\": [1, 2]}")]),
            ),
            (
                "\n [\n  {\"a\": 1},\n\n  {\n   \"b\": 2\n  },\n  3\n]\n",
                Array,
                ok(&[(3, "{\"a\": 1}"), (5, "{\n   \"b\": 2\n  }"), (8, "3")]),
            ),
            ("", Ndjson, vec![]),
            ("  \n\n", Ndjson, vec![]),
        ];
        for (text, layout, want) in cases {
            assert_eq!(read(text), Ok((*layout, want.clone())), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_input_and_the_line() {
        let cases = [
            (
                "[\n{\"a\": 1},\n{\"b\": 2,}\n]",
                "t: not valid JSON: trailing comma: remove the comma after the last member of the object or array at line 3, column 9",
            ),
            ("\n\n[{\"a\": 1}", "t: not valid JSON: EOF while parsing a list at line 3, column 9"),
            ("[]", "t: the array holds no events"),
            ("{}\n{\"a\": \"\u{e9}\"}\n", ""),
        ];
        for (text, want) in cases {
            let got = read(text).err().unwrap_or_default();
            assert_eq!(got, want, "{text:?}");
        }
        let bad = b"{}\n{\"a\": \"\xff\"}\n".to_vec();
        let events = from_reader(Box::new(io::Cursor::new(bad)), "t".into(), None).expect("opens");
        let got: Vec<String> = events
            .map(|e| e.map(|e| e.text).unwrap_or_else(|e| e.to_string()))
            .collect();
        assert_eq!(got, ["{}", "t: line 2 is not UTF-8 text"]);
    }

    #[test]
    fn position_reaches_the_total() {
        let text = "{\"a\":1}\n\n{\"b\":2}\n";
        let mut events = from_reader(
            Box::new(io::Cursor::new(text.as_bytes().to_vec())),
            "t".into(),
            Some(text.len() as u64),
        )
        .expect("opens");
        assert_eq!(events.position(), 0);
        events.next();
        assert_eq!(events.position(), 8);
        events.next();
        assert_eq!(events.position(), 17);
        assert!(events.next().is_none());
        assert_eq!(events.position(), text.len() as u64);
    }

    /// An endless NDJSON input: `{"n":0}`, `{"n":1}`, ... for ever.
    struct Endless {
        n: u64,
        pending: Vec<u8>,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pending.is_empty() {
                self.pending = format!("{{\"n\":{}}}\n", self.n).into_bytes();
                self.n += 1;
            }
            let k = buf.len().min(self.pending.len());
            buf[..k].copy_from_slice(&self.pending[..k]);
            self.pending.drain(..k);
            Ok(k)
        }
    }

    /// NDJSON is streamed: events come out of an input that never ends, which could not be
    /// read whole.
    #[test]
    fn ndjson_is_streamed() {
        let endless = Endless {
            n: 0,
            pending: Vec::new(),
        };
        let events =
            from_reader(Box::new(BufReader::new(endless)), "endless".into(), None).expect("opens");
        let got: Vec<(usize, String)> = events
            .skip(99_999)
            .take(2)
            .map(|e| e.map(|e| (e.line, e.text)).expect("an event"))
            .collect();
        assert_eq!(
            got,
            [
                (100_000, "{\"n\":99999}".to_owned()),
                (100_001, "{\"n\":100000}".to_owned())
            ]
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = open(Path::new("/nonexistent/events.ndjson"))
            .err()
            .expect("fails");
        assert!(
            err.to_string()
                .starts_with("/nonexistent/events.ndjson: No such file"),
            "{err}"
        );
    }
}
