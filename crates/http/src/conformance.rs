//! The request-head rules of RFC 9112 that hyper leaves to the application, applied by
//! [`crate::serve`] to every request on every listener before any route runs:
//!
//! - **Framing** (§6.1, §11.2): a request carrying both `Content-Length` and
//!   `Transfer-Encoding` is answered 400 `invalid_framing`. A proxy in front that believes
//!   the `Content-Length` would see the bytes after the chunked body as part of this
//!   request, while the server would read them as the next one: request smuggling.
//! - **Host** (§3.2): an HTTP/1.1 request without `Host`, any request with more than one
//!   `Host` line, or with a value that is not `host[:port]`, is answered 400
//!   `invalid_host`. HTTP/1.0 requests may leave `Host` out.
//!
//! Every such refusal closes the connection (`Connection: close`, after which hyper stops
//! reading): a head that breaks these rules cannot be trusted to say where the next request
//! starts. hyper removes a `Content-Length` sent beside `Transfer-Encoding` from the head it
//! hands over (and closes the connection after the answer), so the framing rule reads the
//! head's bytes as they came ([`crate::conn::Heads`]). A request carrying
//! `Transfer-Encoding` is therefore served by its chunked body alone only when no
//! `Content-Length` was seen, which §6.1 allows, and its connection is closed after the
//! answer, which §6.1 requires whenever both were sent and which covers a head whose bytes
//! were not kept (one hyper had read ahead, pipelined). Clients sending chunked bodies
//! therefore reconnect for each one; everything else keeps its connection.

use crate::error::HttpError;
use std::convert::Infallible;
use std::future::Future;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::uri::Authority;
use warp::http::{Request, StatusCode, Version};
use warp::reply::Response;

/// hyper's limit on the number of header lines, so that a head it accepted fits.
const MAX_HEADERS: usize = 100;

/// What to do with a request, from its head.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Serve it; the connection may carry another request.
    Serve,
    /// Serve it, then close the connection.
    ServeThenClose,
    /// Answer this instead of serving it, then close the connection.
    Refuse(HttpError),
}

/// Checks a request head against the rules in the module docs; `raw` is the head as it
/// was read, when it was kept (empty otherwise).
pub(crate) fn check(version: Version, headers: &HeaderMap, raw: &[u8]) -> Verdict {
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if chunked && (headers.contains_key(header::CONTENT_LENGTH) || sent_content_length(raw)) {
        return Verdict::Refuse(HttpError::new(
            StatusCode::BAD_REQUEST,
            "invalid_framing",
            "a request must not carry both Content-Length and Transfer-Encoding \
             (RFC 9112 section 6.1); the connection is closed",
        ));
    }
    if let Err(e) = host(version, headers) {
        return Verdict::Refuse(e);
    }
    if chunked {
        Verdict::ServeThenClose
    } else {
        Verdict::Serve
    }
}

/// RFC 9112 §3.2: exactly one `Host` in HTTP/1.1 (at most one before it), holding
/// `host[:port]` or nothing (an empty value stands for a target without an authority).
fn host(version: Version, headers: &HeaderMap) -> Result<(), HttpError> {
    let refuse = |message: String| HttpError::new(StatusCode::BAD_REQUEST, "invalid_host", message);
    let mut lines = headers.get_all(header::HOST).iter();
    match (lines.next(), lines.next()) {
        (None, _) if !matches!(version, Version::HTTP_09 | Version::HTTP_10) => Err(refuse(
            "an HTTP/1.1 request must carry a Host header (RFC 9112 section 3.2); \
             the connection is closed"
                .into(),
        )),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(refuse(format!(
            "a request must not carry more than one Host header, and this one has {} \
             (RFC 9112 section 3.2); the connection is closed",
            headers.get_all(header::HOST).iter().count()
        ))),
        (Some(value), None) if !is_host_value(value) => Err(refuse(
            "the Host header must be host[:port] (RFC 9112 section 3.2); \
             the connection is closed"
                .into(),
        )),
        (Some(_), None) => Ok(()),
    }
}

/// Whether the head at the start of `raw` has a `Content-Length` line. Bytes that do not
/// start with a complete head (none kept, or kept from its middle) tell nothing.
fn sent_content_length(raw: &[u8]) -> bool {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut lines);
    matches!(head.parse(raw), Ok(httparse::Status::Complete(_)))
        && head
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(header::CONTENT_LENGTH.as_str()))
}

/// `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2), or empty.
fn is_host_value(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return true;
    }
    // An authority may also carry user information, which a Host value may not, and
    // `Authority` leaves the port's digits unchecked.
    let after_ip_literal = bytes
        .iter()
        .rposition(|&b| b == b']')
        .map_or(bytes, |end| &bytes[end..]);
    let port_is_digits = match after_ip_literal.iter().rposition(|&b| b == b':') {
        Some(colon) => after_ip_literal[colon + 1..].iter().all(u8::is_ascii_digit),
        None => true,
    };
    port_is_digits && !bytes.contains(&b'@') && Authority::try_from(bytes).is_ok()
}

/// `res`, telling the client and hyper that the connection ends after it.
fn closing(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Serves `req` with `service` when its head (`raw` as read) passes [`check`]; answers the
/// refusal otherwise.
pub(crate) async fn serve<B, S, F>(req: Request<B>, raw: &[u8], service: S) -> Response
where
    S: FnOnce(Request<B>) -> F,
    F: Future<Output = Result<Response, Infallible>>,
{
    let close = match check(req.version(), req.headers(), raw) {
        Verdict::Serve => false,
        Verdict::ServeThenClose => true,
        Verdict::Refuse(e) => return closing(e.into_response()),
    };
    let res = match service(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    if close {
        closing(res)
    } else {
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(lines: &[(&str, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            let name = header::HeaderName::from_bytes(name.as_bytes()).expect("header name");
            headers.append(name, HeaderValue::from_bytes(value).expect("header value"));
        }
        headers
    }

    /// The error code of a refusal, `"serve"` or `"serve_then_close"` otherwise.
    fn outcome(version: Version, lines: &[(&str, &[u8])]) -> String {
        match check(version, &head(lines), b"") {
            Verdict::Serve => "serve".into(),
            Verdict::ServeThenClose => "serve_then_close".into(),
            Verdict::Refuse(e) => {
                assert_eq!(e.status, StatusCode::BAD_REQUEST);
                assert!(e.body.message.contains("RFC 9112"), "{}", e.body.message);
                e.body.code.into()
            }
        }
    }

    #[test]
    fn http_1_1_needs_exactly_one_host_and_http_1_0_at_most_one() {
        let v11 = Version::HTTP_11;
        let v10 = Version::HTTP_10;
        assert_eq!(outcome(v11, &[("host", b"eye")]), "serve");
        assert_eq!(outcome(v11, &[]), "invalid_host");
        assert_eq!(
            outcome(v11, &[("host", b"eye"), ("host", b"eye")]),
            "invalid_host"
        );
        assert_eq!(outcome(v10, &[]), "serve");
        assert_eq!(outcome(v10, &[("host", b"eye")]), "serve");
        assert_eq!(
            outcome(v10, &[("host", b"a"), ("host", b"b")]),
            "invalid_host"
        );
        let Verdict::Refuse(e) = check(v11, &head(&[("host", b"a"), ("host", b"b")]), b"") else {
            panic!("two Host lines were not refused");
        };
        assert!(e.body.message.contains("has 2"), "{}", e.body.message);
    }

    #[test]
    fn a_host_value_is_host_and_optional_port() {
        for good in [
            &b"eye"[..],
            b"127.0.0.1:8080",
            b"[::1]:8080",
            b"api.example.com",
            b"eye:",
            b"",
        ] {
            assert_eq!(
                outcome(Version::HTTP_11, &[("host", good)]),
                "serve",
                "{:?}",
                String::from_utf8_lossy(good)
            );
        }
        for bad in [
            &b"user@eye"[..],
            b"eye/path",
            b"a b",
            b"eye:80:80",
            b"eye:port",
            b"\xff\xfe",
        ] {
            assert_eq!(
                outcome(Version::HTTP_11, &[("host", bad)]),
                "invalid_host",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn content_length_with_transfer_encoding_is_refused_and_chunked_alone_closes() {
        let host: (&str, &[u8]) = ("host", b"eye");
        assert_eq!(
            outcome(
                Version::HTTP_11,
                &[
                    host,
                    ("content-length", b"5"),
                    ("transfer-encoding", b"chunked")
                ]
            ),
            "invalid_framing"
        );
        // Framing comes first: it decides whether the connection can go on.
        assert_eq!(
            outcome(
                Version::HTTP_11,
                &[("content-length", b"5"), ("transfer-encoding", b"chunked")]
            ),
            "invalid_framing"
        );
        assert_eq!(
            outcome(Version::HTTP_11, &[host, ("transfer-encoding", b"chunked")]),
            "serve_then_close"
        );
        assert_eq!(
            outcome(Version::HTTP_11, &[host, ("content-length", b"5")]),
            "serve"
        );
    }

    /// hyper hands over only `Transfer-Encoding` when both came; the bytes tell.
    #[test]
    fn a_content_length_hyper_dropped_is_seen_in_the_bytes_read() {
        let te_only = head(&[("host", b"eye"), ("transfer-encoding", b"chunked")]);
        let cases: [(&str, &[u8], &str); 6] = [
            (
                "length first",
                b"POST / HTTP/1.1\r\nhost: eye\r\ncontent-length: 5\r\n\
                  transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
                "invalid_framing",
            ),
            (
                "length last, any case",
                b"POST / HTTP/1.1\r\nhost: eye\r\ntransfer-encoding: chunked\r\n\
                  Content-Length: 5\r\n\r\n",
                "invalid_framing",
            ),
            (
                "chunked alone",
                b"POST / HTTP/1.1\r\nhost: eye\r\ntransfer-encoding: chunked\r\n\r\n\
                  0\r\n\r\nPOST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
                "serve_then_close",
            ),
            ("nothing kept", b"", "serve_then_close"),
            (
                "kept from the middle of the head",
                b"content-length: 5\r\n\r\n",
                "serve_then_close",
            ),
            (
                "an unfinished head",
                b"POST / HTTP/1.1\r\ncontent-length: 5\r\n",
                "serve_then_close",
            ),
        ];
        for (case, raw, want) in cases {
            let got = match check(Version::HTTP_11, &te_only, raw) {
                Verdict::Serve => "serve".into(),
                Verdict::ServeThenClose => "serve_then_close".into(),
                Verdict::Refuse(e) => e.body.code,
            };
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_refusal_is_the_error_shape_and_closes() {
        let Verdict::Refuse(e) = check(Version::HTTP_11, &HeaderMap::new(), b"") else {
            panic!("a request without Host was not refused");
        };
        let res = closing(e.into_response());
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()[header::CONNECTION], "close");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }
}
