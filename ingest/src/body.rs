//! Request bodies: media type, bounded reading and gzip with a decompression cap.

use crate::error::IngestError;
use bytes::Buf;
use futures::{Stream, StreamExt};
use std::io::Read;
use std::time::Duration;

/// `application/json` or any `+json` type, parameters (charset) ignored.
pub fn check_content_type(header: Option<&str>) -> Result<(), IngestError> {
    let Some(value) = header else {
        return Err(IngestError::UnsupportedMediaType("none".into()));
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(IngestError::UnsupportedMediaType(value.to_owned()))
    }
}

/// Most gzip layers a body may carry. A proxy compressing a body its client had
/// compressed makes two; nothing legitimate nests deeper, and each layer costs a full
/// decompression of up to `EYE_INGEST_MAX_DECOMPRESSED_BYTES`.
pub const MAX_GZIP_LAYERS: usize = 2;

/// How a body is encoded: the gzip layers over it, to undo one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub gzip_layers: usize,
}

/// The codings of a body from all its `Content-Encoding` field lines: repeated lines are
/// one comma-separated list (RFC 9110 §5.3), so two lines `gzip` are `gzip, gzip`, a body
/// gzipped twice. Known codings are gzip (`x-gzip`) and identity, in any case; identity and
/// empty list elements change nothing.
pub fn content_encoding<S: AsRef<str>>(lines: &[S]) -> Result<Encoding, IngestError> {
    let mut gzip_layers = 0;
    for coding in lines.iter().flat_map(|l| l.as_ref().split(',')) {
        match coding.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => {}
            "gzip" | "x-gzip" if gzip_layers < MAX_GZIP_LAYERS => gzip_layers += 1,
            _ => {
                let list: Vec<&str> = lines.iter().map(AsRef::as_ref).collect();
                return Err(IngestError::UnsupportedEncoding(list.join(", ")));
            }
        }
    }
    Ok(Encoding { gzip_layers })
}

/// Reads the body, refusing it as soon as it passes `limit` bytes (chunked bodies too, so
/// a missing Content-Length is no way around the limit), and giving up once `timeout` has
/// passed: the whole body must arrive in that time, so a client trickling bytes cannot hold
/// a connection and a task for as long as it likes. `admit` is told the bytes received so
/// far as each chunk arrives, before it is kept, and refuses the body by returning an error.
pub async fn read_limited<S, B>(
    body: S,
    limit: u64,
    timeout: Duration,
    admit: impl FnMut(u64) -> Result<(), IngestError>,
) -> Result<Vec<u8>, IngestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    tokio::time::timeout(timeout, read_to_limit(body, limit, admit))
        .await
        .map_err(|_| IngestError::BodyTimeout {
            timeout_ms: timeout.as_millis() as u64,
        })?
}

async fn read_to_limit<S, B>(
    mut body: S,
    limit: u64,
    mut admit: impl FnMut(u64) -> Result<(), IngestError>,
) -> Result<Vec<u8>, IngestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(IngestError::Body)?;
        let received = (out.len() + chunk.remaining()) as u64;
        // Too large is final; no room yet is worth a retry, so it comes second.
        if received > limit {
            return Err(IngestError::BodyTooLarge { limit });
        }
        admit(received)?;
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// Undoes gzip, stopping at `limit` decompressed bytes: a small bomb cannot expand into
/// memory.
pub fn gunzip_limited(compressed: &[u8], limit: u64) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(IngestError::InvalidGzip)?;
    if out.len() as u64 > limit {
        return Err(IngestError::DecompressedTooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn content_types() {
        let cases = [
            (Some("application/json"), true),
            (Some("application/json; charset=utf-8"), true),
            (Some("Application/JSON"), true),
            (Some("application/vnd.eye+json"), true),
            (Some("text/plain"), false),
            (Some("application/x-www-form-urlencoded"), false),
            (None, false),
        ];
        for (header, ok) in cases {
            assert_eq!(check_content_type(header).is_ok(), ok, "{header:?}");
        }
    }

    #[test]
    fn encodings() {
        // (field lines, gzip layers, or None for 415)
        let cases: [(&[&str], Option<usize>); 17] = [
            (&[], Some(0)),
            (&[""], Some(0)),
            (&["identity"], Some(0)),
            (&["gzip"], Some(1)),
            (&["GZIP"], Some(1)),
            (&["x-gzip"], Some(1)),
            (&[" gzip "], Some(1)),
            (&["identity, gzip"], Some(1)),
            // One list, on one line or on several.
            (&["gzip, gzip"], Some(2)),
            (&["gzip", "gzip"], Some(2)),
            (&["gzip,", "x-gzip"], Some(2)),
            (&["gzip", "identity", "gzip"], Some(2)),
            (&["gzip", "gzip", "gzip"], None),
            (&["gzip, gzip, gzip"], None),
            (&["br"], None),
            (&["deflate"], None),
            (&["gzip", "br"], None),
        ];
        for (lines, want) in cases {
            let got = content_encoding(lines);
            assert_eq!(got.as_ref().ok().map(|e| e.gzip_layers), want, "{lines:?}");
            if let Err(e) = got {
                assert!(
                    matches!(&e, IngestError::UnsupportedEncoding(v) if *v == lines.join(", ")),
                    "{lines:?}: {e}"
                );
            }
        }
    }

    #[test]
    fn gzip_is_capped() {
        let body = b"[{\"a\": 1}]".repeat(100);
        assert_eq!(gunzip_limited(&gzip(&body), 10_000).expect("fits"), body);
        assert_eq!(
            gunzip_limited(&gzip(&body), body.len() as u64).expect("exactly fits"),
            body
        );
        // A bomb: 50 MB of zeros compress to ~50 KB, and stop at the cap.
        let bomb = gzip(&vec![0u8; 50 * 1024 * 1024]);
        assert!(bomb.len() < 100 * 1024);
        assert!(matches!(
            gunzip_limited(&bomb, 5 * 1024 * 1024),
            Err(IngestError::DecompressedTooLarge { .. })
        ));
        assert!(matches!(
            gunzip_limited(b"not gzip", 100),
            Err(IngestError::InvalidGzip(_))
        ));
    }

    #[tokio::test]
    async fn reading_stops_at_the_limit() {
        let chunks = |n: usize| {
            futures::stream::iter(
                (0..n).map(|_| Ok::<_, warp::Error>(bytes::Bytes::from_static(b"0123456789"))),
            )
        };
        let ample = Duration::from_secs(5);
        let admit_all = |_| Ok(());
        assert_eq!(
            read_limited(chunks(3), 30, ample, admit_all)
                .await
                .expect("fits")
                .len(),
            30
        );
        assert!(matches!(
            read_limited(chunks(4), 30, ample, admit_all).await,
            Err(IngestError::BodyTooLarge { limit: 30 })
        ));
    }

    /// Each chunk is admitted as it arrives, with the total so far; a refusal stops the
    /// reading there, and the body limit speaks before the admission.
    #[tokio::test]
    async fn chunks_are_admitted_as_they_arrive() {
        let chunks = |n: usize| {
            futures::stream::iter(
                (0..n).map(|_| Ok::<_, warp::Error>(bytes::Bytes::from_static(b"0123456789"))),
            )
        };
        let ample = Duration::from_secs(5);
        // (chunks sent, body limit, admitted up to, totals admitted, outcome)
        let cases: [(usize, u64, u64, &[u64], Result<usize, &str>); 5] = [
            (3, 100, 100, &[10, 20, 30], Ok(30)),
            (0, 100, 100, &[], Ok(0)),
            (3, 100, 15, &[10, 20], Err("overloaded")),
            (3, 100, 0, &[10], Err("overloaded")),
            (3, 25, 0, &[10], Err("overloaded")),
        ];
        for (sent, limit, room, want_seen, want) in cases {
            let mut seen = Vec::new();
            let got = read_limited(chunks(sent), limit, ample, |n| {
                seen.push(n);
                if n <= room {
                    Ok(())
                } else {
                    Err(IngestError::Overloaded(
                        crate::error::Overload::InflightBytes,
                    ))
                }
            })
            .await;
            let case = format!("{sent} chunks, limit {limit}, room {room}");
            assert_eq!(seen, want_seen, "{case}");
            assert_eq!(
                got.as_ref().map(Vec::len).map_err(IngestError::code),
                want,
                "{case}"
            );
        }
        // Past the limit: 413 without asking for room.
        let mut asked = Vec::new();
        let got = read_limited(chunks(3), 25, ample, |n| {
            asked.push(n);
            Ok(())
        })
        .await;
        assert!(matches!(got, Err(IngestError::BodyTooLarge { limit: 25 })));
        assert_eq!(asked, [10, 20]);
    }

    /// The timeout bounds the whole body, not each chunk: a client sending a chunk just
    /// often enough to never stall for long is still cut off.
    #[tokio::test(start_paused = true)]
    async fn reading_stops_at_the_timeout() {
        let trickle = |n: usize| {
            futures::stream::iter(0..n).then(|_| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok::<_, warp::Error>(bytes::Bytes::from_static(b"x"))
            })
        };
        let timeout = Duration::from_secs(1);
        assert_eq!(
            read_limited(Box::pin(trickle(2)), 30, timeout, |_| Ok(()))
                .await
                .expect("in time"),
            b"xx"
        );
        assert!(matches!(
            read_limited(Box::pin(trickle(3)), 30, timeout, |_| Ok(())).await,
            Err(IngestError::BodyTimeout { timeout_ms: 1000 })
        ));
    }
}
