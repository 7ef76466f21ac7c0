//! Request bodies of the seed read routes: small JSON objects (`{"sessionId": ...}`, a GET
//! carrying `{"start_time", "end_time"}`), read up to a fixed size whether or not the
//! request says its length, so a GET without a body needs no `Content-Length`.

use crate::error::QueryError;
use bytes::Buf;
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use warp::Filter;

/// Far above any question these routes take; a body this large is no such question.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The body's bytes, at most [`MAX_BODY_BYTES`].
pub fn bytes(
) -> impl Filter<Extract = (Result<Vec<u8>, QueryError>,), Error = warp::Rejection> + Clone {
    warp::body::stream().then(read_limited)
}

async fn read_limited<S, B>(stream: S) -> Result<Vec<u8>, QueryError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| QueryError::MalformedBody(e.to_string()))?;
        if out.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(QueryError::BodyTooLarge(MAX_BODY_BYTES));
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

/// The body as a JSON object; an empty body is no object.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, QueryError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(QueryError::MalformedBody(format!(
            "expected a JSON object, got {}",
            kind(&other)
        ))),
        Err(e) => Err(QueryError::MalformedBody(e.to_string())),
    }
}

/// The body as an optional JSON object: nothing, or only whitespace, is `None`.
pub fn optional_object(bytes: &[u8]) -> Result<Option<Map<String, Value>>, QueryError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    object(bytes).map(Some)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(r: Result<Option<Map<String, Value>>, QueryError>) -> String {
        match r {
            Ok(None) => "none".into(),
            Ok(Some(m)) => Value::Object(m).to_string(),
            Err(QueryError::MalformedBody(m)) => format!("malformed: {m}"),
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn bodies_are_objects_or_nothing() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "none"),
            (b" \n", "none"),
            (br#"{"sessionId": "s"}"#, r#"{"sessionId":"s"}"#),
            (b"[1]", "malformed: expected a JSON object, got an array"),
            (b"null", "malformed: expected a JSON object, got null"),
            (
                br#"{"a": 1,}"#,
                "malformed: trailing comma at line 1 column 9",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(outcome(optional_object(body)), want, "{body:?}");
        }
        assert!(matches!(
            object(b""),
            Err(QueryError::MalformedBody(m)) if m.contains("EOF")
        ));
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        let chunks = |sizes: &[usize]| {
            let parts: Vec<Result<&[u8], warp::Error>> = sizes
                .iter()
                .map(|n| Ok(&[b' '; MAX_BODY_BYTES + 1][..*n]))
                .collect();
            futures::stream::iter(parts)
        };
        let at_limit = read_limited(chunks(&[MAX_BODY_BYTES - 1, 1])).await;
        assert_eq!(at_limit.map(|b| b.len()).ok(), Some(MAX_BODY_BYTES));
        let over = read_limited(chunks(&[MAX_BODY_BYTES, 1])).await;
        assert!(matches!(over, Err(QueryError::BodyTooLarge(_))));
    }
}
