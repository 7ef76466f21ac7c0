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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

pub fn content_encoding(header: Option<&str>) -> Result<Encoding, IngestError> {
    match header.map(|h| h.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(Encoding::Identity),
        Some("gzip") | Some("x-gzip") => Ok(Encoding::Gzip),
        Some(_) => Err(IngestError::UnsupportedEncoding(
            header.unwrap_or_default().to_owned(),
        )),
    }
}

/// Reads the body, refusing it as soon as it passes `limit` bytes (chunked bodies too, so
/// a missing Content-Length is no way around the limit), and giving up once `timeout` has
/// passed: the whole body must arrive in that time, so a client trickling bytes cannot hold
/// a connection and a task for as long as it likes.
pub async fn read_limited<S, B>(
    body: S,
    limit: u64,
    timeout: Duration,
) -> Result<Vec<u8>, IngestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    tokio::time::timeout(timeout, read_to_limit(body, limit))
        .await
        .map_err(|_| IngestError::BodyTimeout {
            timeout_ms: timeout.as_millis() as u64,
        })?
}

async fn read_to_limit<S, B>(mut body: S, limit: u64) -> Result<Vec<u8>, IngestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| IngestError::Body(e.to_string()))?;
        if (out.len() + chunk.remaining()) as u64 > limit {
            return Err(IngestError::BodyTooLarge { limit });
        }
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
        .map_err(|e| IngestError::InvalidGzip(e.to_string()))?;
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
        let cases = [
            (None, Some(Encoding::Identity)),
            (Some("identity"), Some(Encoding::Identity)),
            (Some("gzip"), Some(Encoding::Gzip)),
            (Some("GZIP"), Some(Encoding::Gzip)),
            (Some("br"), None),
            (Some("deflate"), None),
        ];
        for (header, want) in cases {
            assert_eq!(content_encoding(header).ok(), want, "{header:?}");
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
        assert_eq!(
            read_limited(chunks(3), 30, ample)
                .await
                .expect("fits")
                .len(),
            30
        );
        assert!(matches!(
            read_limited(chunks(4), 30, ample).await,
            Err(IngestError::BodyTooLarge { limit: 30 })
        ));
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
            read_limited(Box::pin(trickle(2)), 30, timeout)
                .await
                .expect("in time"),
            b"xx"
        );
        assert!(matches!(
            read_limited(Box::pin(trickle(3)), 30, timeout).await,
            Err(IngestError::BodyTimeout { timeout_ms: 1000 })
        ));
    }
}
