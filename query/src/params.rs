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
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn field(e: QueryError) -> String {
        match e {
            QueryError::BadParameter(f) => format!("{}:{}", f.field, f.code),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn query_strings_decode_strictly() {
        let got = parse_query("a=x+y%27%5C&&b&c=%00").expect("valid");
        assert_eq!(got, params(&[("a", "x y'\\"), ("b", ""), ("c", "\0")]));
        assert_eq!(parse_query("").expect("empty"), Params::new());
        for (raw, want) in [
            ("session_id=%FF", "session_id:invalid_utf8"),
            ("x=a%E2%80", "x:invalid_utf8"),
            ("%FF=1", "query:invalid_utf8"),
        ] {
            assert_eq!(
                parse_query(raw).map_err(field).expect_err("must fail"),
                want,
                "{raw}"
            );
        }
    }

    #[test]
    fn limits() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<u32, &'a str>);
        let cases: &[Case] = &[
            (&[], Ok(100)),
            (&[("limit", "1")], Ok(1)),
            (&[("limit", "1000")], Ok(1_000)),
            (&[("limit", "0")], Err("limit:out_of_range")),
            (&[("limit", "1001")], Err("limit:out_of_range")),
            (&[("limit", "-1")], Err("limit:out_of_range")),
            (&[("limit", "ten")], Err("limit:out_of_range")),
        ];
        for (input, want) in cases {
            let got = limit(&params(input), 100, 1_000).map_err(field);
            assert_eq!(got, want.map_err(str::to_owned), "{input:?}");
        }
    }

    #[test]
    fn times_and_ranges() {
        let ok = params(&[("from", "2021-09-26 09:15:27"), ("to", "1632648000")]);
        let (from, to) = range(&ok).expect("valid");
        assert_eq!(
            from.map(EventTime::to_rfc3339).as_deref(),
            Some("2021-09-26T09:15:27.000000Z")
        );
        assert_eq!(
            to.map(EventTime::to_rfc3339).as_deref(),
            Some("2021-09-26T09:20:00.000000Z")
        );
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("from", "yesterday")], "from:invalid_timestamp"),
            (&[("to", "1e20")], "to:epoch_out_of_range"),
            (
                &[("from", "2022-01-01"), ("to", "2021-01-01")],
                "from:invalid_timestamp",
            ),
            (
                &[
                    ("from", "2022-01-01 00:00:00"),
                    ("to", "2021-01-01 00:00:00"),
                ],
                "from:from_after_to",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                range(&params(input)).map_err(field).expect_err("must fail"),
                *want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn times_outside_the_window_are_refused_naming_the_parameter() {
        // (parameter, value, the time read or field:code)
        type Case<'a> = (&'a str, &'a str, Result<&'a str, &'a str>);
        let cases: &[Case] = &[
            (
                "from",
                "2000-01-01T00:00:00Z",
                Ok("2000-01-01T00:00:00.000000Z"),
            ),
            (
                "from",
                "2000-01-01T01:00:00+01:00",
                Ok("2000-01-01T00:00:00.000000Z"),
            ),
            ("from", "946684800", Ok("2000-01-01T00:00:00.000000Z")),
            ("from", "946684800000", Ok("2000-01-01T00:00:00.000000Z")),
            (
                "from",
                "1999-12-31T23:59:59.999999Z",
                Err("from:timestamp_too_old"),
            ),
            (
                "from",
                "2000-01-01T00:59:59+01:00",
                Err("from:timestamp_too_old"),
            ),
            ("from", "946684799.999999", Err("from:timestamp_too_old")),
            ("from", "0", Err("from:timestamp_too_old")),
            (
                "from",
                "1960-01-01T00:00:00Z",
                Err("from:timestamp_too_old"),
            ),
            (
                "from",
                "0001-01-01T00:00:00Z",
                Err("from:timestamp_too_old"),
            ),
            // Seconds before 1970 that chrono renders as the year -1199.
            ("from", "-99999999999", Err("from:timestamp_too_old")),
            ("from", "-99999999999999", Err("from:timestamp_too_old")),
            ("to", "-1", Err("to:timestamp_too_old")),
            (
                "to",
                "2100-01-01T00:00:00Z",
                Ok("2100-01-01T00:00:00.000000Z"),
            ),
            (
                "to",
                "2099-12-31T23:00:00-01:00",
                Ok("2100-01-01T00:00:00.000000Z"),
            ),
            ("to", "4102444800", Ok("2100-01-01T00:00:00.000000Z")),
            (
                "to",
                "2100-01-01T00:00:00.000001Z",
                Err("to:timestamp_in_future"),
            ),
            ("to", "4102444801", Err("to:timestamp_in_future")),
            ("to", "9999-12-31T23:59:59Z", Err("to:timestamp_in_future")),
            ("to", "99999999999", Err("to:timestamp_in_future")),
            ("to", "99999999999999", Err("to:timestamp_in_future")),
            (
                "from",
                "9999-12-31T23:00:00Z",
                Err("from:timestamp_in_future"),
            ),
            ("to", "1e20", Err("to:epoch_out_of_range")),
        ];
        for (name, value, want) in cases {
            let got = time(&params(&[(name, value)]), name)
                .map(|t| t.map(EventTime::to_rfc3339))
                .map_err(field);
            let want = want.map(|t| Some(t.to_owned())).map_err(str::to_owned);
            assert_eq!(got, want, "{name}={value}");
        }
        // The message names the parameter and the bound.
        let message = |name: &str, value: &str| match time(&params(&[(name, value)]), name) {
            Err(QueryError::BadParameter(f)) => f.message,
            other => panic!("{name}={value}: {other:?}"),
        };
        assert_eq!(
            message("from", "-99999999999"),
            "from must be on or after 2000-01-01T00:00:00Z, the earliest event time ingest accepts"
        );
        assert_eq!(
            message("to", "9999-12-31T23:59:59Z"),
            "to must be on or before 2100-01-01T00:00:00Z, the latest time a query may name"
        );
        // Each bound is checked before the two are compared.
        assert_eq!(
            range(&params(&[("from", "2100-01-02T00:00:00Z"), ("to", "0")]))
                .map_err(field)
                .expect_err("must fail"),
            "from:timestamp_in_future"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = Uuid::now_v7();
        let (min, max) = (
            EventTime::MIN_ACCEPTED.as_micros(),
            EventTime::MAX_QUERYABLE.as_micros(),
        );
        for ts in [1_700_000_000_000_000, min, max] {
            let c = encode_cursor(ts, id);
            assert_eq!(
                cursor(&params(&[("cursor", &c)])).expect("valid"),
                Some((ts, id))
            );
        }
        // A time outside the window is no cursor this service gave out.
        let outside = [min - 1, max + 1, -5, i64::MIN].map(|ts| encode_cursor(ts, id));
        let garbage = ["", "abc", "12_", "_0191e4e5", "12_zz", "1' OR 1=1_x"];
        for bad_cursor in garbage
            .into_iter()
            .chain(outside.iter().map(String::as_str))
        {
            assert_eq!(
                cursor(&params(&[("cursor", bad_cursor)]))
                    .map_err(field)
                    .expect_err("must fail"),
                "cursor:invalid_cursor",
                "{bad_cursor}"
            );
            assert_eq!(
                event_cursor(&params(&[("cursor", bad_cursor)]))
                    .map_err(field)
                    .expect_err("must fail"),
                "cursor:invalid_cursor",
                "{bad_cursor}"
            );
        }
    }

    #[test]
    fn event_cursors_carry_the_session() {
        let id = Uuid::now_v7();
        for session in ["s1", "a_b c&d=é/#?"] {
            let c = encode_event_cursor(1_700_000_000_000_000, id, session);
            assert_eq!(
                event_cursor(&params(&[("cursor", &c)])).expect("valid"),
                Some((1_700_000_000_000_000, id, session.to_owned()))
            );
        }
        let old = encode_cursor(1_700_000_000_000_000, id);
        assert_eq!(
            event_cursor(&params(&[("cursor", &old)])).expect("valid"),
            Some((1_700_000_000_000_000, id, String::new()))
        );
        for garbage in ["", "12", "12_zz", &format!("12_{}_zz", id.simple())] {
            assert!(
                event_cursor(&params(&[("cursor", garbage)])).is_err(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn session_cursors_carry_any_session_id() {
        let at = 1_675_354_935_000_000;
        for id in ["s1", "a_b c&d=é/#?", "0191e4e5-7c8b-7d4e-9a1b-123456789abc"] {
            let c = encode_session_cursor(at, id);
            assert!(c
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'));
            assert_eq!(
                session_cursor(&params(&[("cursor", &c)])).expect("valid"),
                Some((at, id.to_owned()))
            );
        }
        let outside = [
            EventTime::MIN_ACCEPTED.as_micros() - 1,
            EventTime::MAX_QUERYABLE.as_micros() + 1,
            -5,
        ]
        .map(|ts| encode_session_cursor(ts, "s1"));
        let garbage = ["", "12", "x_73", "12_7", "12_zz", "12_ff"];
        for garbage in garbage
            .into_iter()
            .chain(outside.iter().map(String::as_str))
        {
            assert_eq!(
                session_cursor(&params(&[("cursor", garbage)]))
                    .map_err(field)
                    .expect_err("must fail"),
                "cursor:invalid_cursor",
                "{garbage}"
            );
        }
    }

    #[test]
    fn choices_zones_and_path_ids() {
        use eye_model::aggregate::Granularity;
        let g = |v: &[(&str, &str)]| {
            choice(
                &params(v),
                "granularity",
                &Granularity::ALL,
                Granularity::as_str,
                Granularity::None,
            )
            .map_err(field)
        };
        assert_eq!(g(&[]), Ok(Granularity::None));
        assert_eq!(g(&[("granularity", "week")]), Ok(Granularity::Week));
        assert_eq!(
            g(&[("granularity", "fortnight")]),
            Err("granularity:invalid_choice".into())
        );
        assert_eq!(time_zone(&params(&[])).map_err(field), Ok(chrono_tz::UTC));
        assert_eq!(
            time_zone(&params(&[("tz", "Europe/Paris")])).map_err(field),
            Ok(chrono_tz::Europe::Paris)
        );
        assert_eq!(
            time_zone(&params(&[("tz", "Mars/Olympus")])).map_err(field),
            Err("tz:invalid_timezone".into())
        );
        let id = |raw| {
            path_id(raw, "machine_id", |s| {
                eye_model::session::check_id("machine_id", s)
            })
            .map_err(field)
        };
        assert_eq!(id("host%2F1"), Ok("host/1".into()));
        assert_eq!(id(""), Err("machine_id:empty".into()));
        assert_eq!(id("%0A"), Err("machine_id:control_character".into()));
        assert_eq!(id("%FF"), Err("machine_id:invalid_utf8".into()));
        assert_eq!(
            required_text(&params(&[]), "name", eye_model::event::EventName::parse).map_err(field),
            Err("name:required".into())
        );
    }

    #[test]
    fn order_and_text_filters() {
        assert_eq!(descending(&params(&[])).map_err(field), Ok(false));
        assert_eq!(
            descending(&params(&[("order", "desc")])).map_err(field),
            Ok(true)
        );
        assert_eq!(
            descending(&params(&[("order", "up")])).map_err(field),
            Err("order:invalid_order".into())
        );
        let cat = |v: &str| {
            text(
                &params(&[("category", v)]),
                "category",
                eye_model::event::Category::parse,
            )
            .map_err(field)
        };
        assert_eq!(cat("page_interaction"), Ok(Some("page_interaction".into())));
        assert_eq!(
            cat("x'; DROP TABLE events; --"),
            Err("category:invalid_characters".into())
        );
        assert_eq!(cat(""), Err("category:empty".into()));
    }

    #[test]
    fn reasons_and_unknown_parameters() {
        assert_eq!(
            reason(&params(&[("reason", "invalid_timestamp")]))
                .expect("ok")
                .as_deref(),
            Some("invalid_timestamp")
        );
        for bad_reason in ["", "x'; DROP TABLE events", "Invalid", &"a".repeat(65)] {
            assert!(
                reason(&params(&[("reason", bad_reason)])).is_err(),
                "{bad_reason}"
            );
        }
        assert_eq!(
            only(&params(&[("limit", "1")]), &["limit"]).map_err(field),
            Ok(())
        );
        assert_eq!(
            only(&params(&[("order", "x")]), &["limit"]).map_err(field),
            Err("order:unknown_parameter".into())
        );
    }
}
