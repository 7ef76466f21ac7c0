//! Query-string parameters: each parser names the parameter and the rule it broke.

use crate::error::QueryError;
use eye_model::event::FieldError;
use eye_model::time::{EventTime, TimeError};
use std::collections::HashMap;
use uuid::Uuid;

pub type Params = HashMap<String, String>;

fn bad(field: &str, code: &'static str, message: impl Into<String>) -> QueryError {
    QueryError::BadParameter(FieldError::new(field, code, message))
}

/// The query string as parameters, decoded strictly: `+` is a space, `%XX` a byte, and a
/// name or value whose bytes are not UTF-8 is refused rather than replaced with U+FFFD,
/// which could equal stored text. A repeated name keeps its last value.
pub fn parse_query(raw: &str) -> Result<Params, QueryError> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|s| s.into_owned())
    };
    let mut params = Params::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let name =
            decode(k).map_err(|_| bad("query", "invalid_utf8", "parameter names must be UTF-8"))?;
        let value =
            decode(v).map_err(|_| bad(&name, "invalid_utf8", format!("{name} must be UTF-8")))?;
        params.insert(name, value);
    }
    Ok(params)
}

/// Refuses parameters the endpoint does not take, so a typo is not silently ignored.
pub fn only(params: &Params, allowed: &[&str]) -> Result<(), QueryError> {
    let mut keys: Vec<&String> = params.keys().collect();
    keys.sort();
    for key in keys {
        if !allowed.contains(&key.as_str()) {
            return Err(bad(
                key,
                "unknown_parameter",
                format!(
                    "unknown parameter; this endpoint takes: {}",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

pub fn limit(params: &Params, default: u32, max: u32) -> Result<u32, QueryError> {
    let Some(raw) = params.get("limit") else {
        return Ok(default.min(max));
    };
    match raw.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            "limit",
            "out_of_range",
            format!("limit must be an integer from 1 to {max}"),
        )),
    }
}

/// A time in any form ingest accepts (RFC 3339 / ISO 8601 text or a Unix epoch number),
/// from [`EventTime::MIN_ACCEPTED`] to [`EventTime::MAX_QUERYABLE`].
pub fn time(params: &Params, name: &str) -> Result<Option<EventTime>, QueryError> {
    let Some(raw) = params.get(name) else {
        return Ok(None);
    };
    let parsed = match raw.parse::<serde_json::Number>() {
        Ok(n) => EventTime::from_epoch_number(&n),
        Err(_) => EventTime::parse(raw),
    };
    let t = parsed.map_err(|e| bad(name, e.code(), e.to_string()))?;
    queryable(t).map_err(|(code, rule)| bad(name, code, format!("{name} {rule}")))?;
    Ok(Some(t))
}

/// Every time a query names lies from [`EventTime::MIN_ACCEPTED`] to
/// [`EventTime::MAX_QUERYABLE`], both inclusive (that constant says why its bound); outside,
/// `Err` gives ingest's code for a time before or after its window, and the rule. Inside,
/// every time an answer shows is RFC 3339 with a four-digit year.
fn queryable(t: EventTime) -> Result<(), (&'static str, String)> {
    if t < EventTime::MIN_ACCEPTED {
        return Err((
            TimeError::TooOld.code(),
            format!(
                "must be on or after {}, the earliest event time ingest accepts",
                rfc3339_seconds(EventTime::MIN_ACCEPTED)
            ),
        ));
    }
    if t > EventTime::MAX_QUERYABLE {
        return Err((
            TimeError::TooFarInFuture { max_skew_secs: 0 }.code(),
            format!(
                "must be on or before {}, the latest time a query may name",
                rfc3339_seconds(EventTime::MAX_QUERYABLE)
            ),
        ));
    }
    Ok(())
}

/// `2000-01-01T00:00:00Z`: a bound as people write it.
fn rfc3339_seconds(t: EventTime) -> String {
    t.to_datetime()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_rfc3339())
}

/// `from` and `to`, with `from` not after `to`.
pub fn range(params: &Params) -> Result<(Option<EventTime>, Option<EventTime>), QueryError> {
    let (from, to) = (time(params, "from")?, time(params, "to")?);
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(bad("from", "from_after_to", "from must not be after to"));
        }
    }
    Ok((from, to))
}

/// `order=asc|desc`, ascending by default.
pub fn descending(params: &Params) -> Result<bool, QueryError> {
    match params.get("order").map(String::as_str) {
        None | Some("asc") => Ok(false),
        Some("desc") => Ok(true),
        Some(_) => Err(bad("order", "invalid_order", "order must be asc or desc")),
    }
}

/// A text filter checked by the same parser ingest uses for that field.
pub fn text<T>(
    params: &Params,
    name: &str,
    parse: fn(&str) -> Result<T, (&'static str, String)>,
) -> Result<Option<String>, QueryError> {
    let Some(raw) = params.get(name) else {
        return Ok(None);
    };
    parse(raw).map_err(|(code, message)| bad(name, code, message))?;
    Ok(Some(raw.clone()))
}

/// A rejection code to filter on: the same alphabet every code uses.
pub fn reason(params: &Params) -> Result<Option<String>, QueryError> {
    let Some(raw) = params.get("reason") else {
        return Ok(None);
    };
    if raw.is_empty()
        || raw.len() > 64
        || !raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad(
            "reason",
            "invalid_reason",
            "reason must be an error code such as invalid_timestamp",
        ));
    }
    Ok(Some(raw.clone()))
}

/// A required text parameter, checked by the same parser ingest uses for that field.
pub fn required_text<T>(
    params: &Params,
    name: &str,
    parse: fn(&str) -> Result<T, (&'static str, String)>,
) -> Result<String, QueryError> {
    text(params, name, parse)?.ok_or_else(|| bad(name, "required", format!("{name} is required")))
}

/// One of a closed set of names, or `default` when absent; the error lists the choices.
pub fn choice<T: Copy>(
    params: &Params,
    name: &str,
    all: &[T],
    as_str: fn(T) -> &'static str,
    default: T,
) -> Result<T, QueryError> {
    let Some(raw) = params.get(name) else {
        return Ok(default);
    };
    all.iter()
        .copied()
        .find(|c| as_str(*c) == raw)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|c| as_str(*c)).collect();
            bad(
                name,
                "invalid_choice",
                format!("{name} must be one of: {}", names.join(", ")),
            )
        })
}

/// `tz`: an IANA time zone such as `Europe/Paris`; UTC when absent.
pub fn time_zone(params: &Params) -> Result<chrono_tz::Tz, QueryError> {
    let Some(raw) = params.get("tz") else {
        return Ok(chrono_tz::UTC);
    };
    raw.parse().map_err(|_| {
        bad(
            "tz",
            "invalid_timezone",
            "tz must be an IANA time zone name such as Europe/Paris or UTC",
        )
    })
}

/// A path segment naming something: percent-decoded, then checked by `check`.
pub fn path_id(
    raw: &str,
    field: &str,
    check: impl Fn(&str) -> Result<(), (&'static str, String)>,
) -> Result<String, QueryError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad(field, "invalid_utf8", format!("{field} must be UTF-8")))?;
    check(&decoded).map_err(|(code, message)| bad(field, code, message))?;
    Ok(decoded.into_owned())
}

fn invalid_cursor() -> QueryError {
    bad(
        "cursor",
        "invalid_cursor",
        "cursor must be a next_cursor value from a previous page",
    )
}

/// Keyset cursor over `(started_at_us, session_id)`: `<micros>_<hex of the session id>`,
/// so that any session id travels in a URL unchanged.
pub fn encode_session_cursor(started_at_us: i64, session_id: &str) -> String {
    format!("{started_at_us}_{}", hex::encode(session_id))
}

/// A cursor's time is a stored time, so one outside [`queryable`]'s window is no cursor this
/// service gave out.
fn cursor_time(ts: &str) -> Option<i64> {
    let us = ts.parse::<i64>().ok()?;
    queryable(EventTime::from_micros(us)).ok().map(|()| us)
}

pub fn session_cursor(params: &Params) -> Result<Option<(i64, String)>, QueryError> {
    let Some(raw) = params.get("cursor") else {
        return Ok(None);
    };
    let parsed = raw.split_once('_').and_then(|(ts, id)| {
        let id = String::from_utf8(hex::decode(id).ok()?).ok()?;
        Some((cursor_time(ts)?, id))
    });
    parsed.map(Some).ok_or_else(invalid_cursor)
}

/// Keyset cursor over `(time_us, id)`: `<micros>_<uuid>`, for events and rejections alike.
pub fn encode_cursor(received_at_us: i64, id: Uuid) -> String {
    format!("{received_at_us}_{}", id.simple())
}

/// Keyset cursor over an event listing's order `(ts_us, event_id, session_id)`:
/// `<micros>_<uuid>_<hex of the session id>`. The session is part of it because an
/// `event_id` is unique only within its session: two sessions may hold events with the same
/// id and time. A cursor without the session part (from before it was added) resumes
/// after every session's event with that time and id but the ones it cannot tell apart.
pub fn encode_event_cursor(ts_us: i64, id: Uuid, session_id: &str) -> String {
    format!("{ts_us}_{}_{}", id.simple(), hex::encode(session_id))
}

pub fn event_cursor(params: &Params) -> Result<Option<(i64, Uuid, String)>, QueryError> {
    let Some(raw) = params.get("cursor") else {
        return Ok(None);
    };
    let mut parts = raw.splitn(3, '_');
    let parsed = (|| {
        let ts = cursor_time(parts.next()?)?;
        let id = Uuid::try_parse(parts.next()?).ok()?;
        let session = match parts.next() {
            Some(hex_id) => String::from_utf8(hex::decode(hex_id).ok()?).ok()?,
            None => String::new(),
        };
        Some((ts, id, session))
    })();
    parsed.map(Some).ok_or_else(invalid_cursor)
}

pub fn cursor(params: &Params) -> Result<Option<(i64, Uuid)>, QueryError> {
    let Some(raw) = params.get("cursor") else {
        return Ok(None);
    };
    let parsed = raw
        .split_once('_')
        .and_then(|(ts, id)| Some((cursor_time(ts)?, Uuid::try_parse(id).ok()?)));
    parsed.map(Some).ok_or_else(invalid_cursor)
}

#[cfg(test)]
mod tests;
