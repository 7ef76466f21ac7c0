//! `GET /openapi.json`: the OpenAPI 3.1 description of the ingest and query APIs
//! (`docs/openapi.json`), served by both services.
//!
//! The document is embedded at build time, so a binary always serves the description of
//! the code it was built from. `e2e/tests/openapi.rs` keeps the two in step: it sends
//! every documented operation real requests and checks each answer against the document.

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Rejection};

/// The document, as committed in `docs/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

pub fn route() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("openapi.json").and(warp::get()).map(|| {
        let mut res = Response::new(DOCUMENT.into());
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
    }

    /// Every `(JSON Pointer, value)` in `v`, depth first.
    fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        out.push((at.clone(), v));
        let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    walk(child, format!("{at}/{}", escape(k)), out);
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    walk(child, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    fn all(doc: &Value) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        walk(doc, String::new(), &mut out);
        out
    }

    /// The operations: `(path, method, operation object)`.
    fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                out.push((path.as_str(), method.as_str(), op));
            }
        }
        out
    }

    /// A JSON Pointer as a URI fragment: path templates' braces must be percent-encoded.
    fn fragment(pointer: &str) -> String {
        pointer.replace('{', "%7B").replace('}', "%7D")
    }

    /// Follows a local `$ref`, if `v` is one.
    fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {r}")),
            None => v,
        }
    }

    #[test]
    fn is_openapi_3_1_and_every_ref_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut refs = 0;
        for (at, v) in all(&doc) {
            let Some(r) = v.get("$ref") else { continue };
            let r = r
                .as_str()
                .unwrap_or_else(|| panic!("{at}: $ref is not text"));
            // Only document-local references: the document must stand on its own.
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{at}: {r} is not local"));
            assert!(doc.pointer(pointer).is_some(), "{at}: {r} does not resolve");
            refs += 1;
        }
        assert!(refs > 50, "only {refs} references: is the document whole?");
    }

    /// What the official OAS 3.1 schema would check and matters here: path parameters
    /// match the templates, ids are unique, tags are declared, every operation says where
    /// it is served and answers something.
    #[test]
    fn operations_are_well_formed() {
        let doc = document();
        let tags: BTreeSet<&str> = doc["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        let mut ids = BTreeSet::new();
        let ops = operations(&doc);
        assert_eq!(ops.len(), 51, "operations documented");
        for (path, method, op) in ops {
            let at = format!("{method} {path}");
            assert!(
                ["get", "post", "delete"].contains(&method),
                "{at}: the services answer GET, POST and DELETE only"
            );
            let id = op["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id), "{at}: operationId {id} twice");
            for t in op["tags"].as_array().expect("tags") {
                assert!(tags.contains(t.as_str().unwrap_or("")), "{at}: tag {t}");
            }
            assert!(
                op["servers"].as_array().is_some_and(|s| !s.is_empty()),
                "{at}: no servers"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{at}: no responses");
            for (status, r) in responses {
                assert!(
                    status.len() == 3 && status.parse::<u16>().is_ok(),
                    "{at}: status {status}: name statuses exactly, no ranges or default"
                );
                let r = deref(&doc, r);
                assert!(r["description"].is_string(), "{at} {status}: description");
                assert!(r["content"].is_object(), "{at} {status}: content");
            }
            let templated: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let mut declared = BTreeSet::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = deref(&doc, p);
                assert!(p["schema"].is_object(), "{at}: parameter {p} has no schema");
                if p["in"] == "path" {
                    assert_eq!(p["required"], true, "{at}: path parameters are required");
                    declared.insert(p["name"].as_str().expect("name"));
                }
            }
            assert_eq!(templated, declared, "{at}: path parameters");
        }
    }

    /// Every operation says what credential it needs, in terms the document declares:
    /// the API operations a bearer credential (API key or token) with named scopes, and
    /// 401, 403 and 429 among their answers; the operational routes and the explorer's
    /// files nothing, and none of those answers; the token endpoint client authentication
    /// by Basic or in the body.
    #[test]
    fn every_operation_declares_its_security() {
        let doc = document();
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("securitySchemes");
        assert_eq!(schemes["bearer"]["type"], "http");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["clientBasic"]["scheme"], "basic");
        let flow = &schemes["oauth2"]["flows"]["clientCredentials"];
        assert_eq!(flow["tokenUrl"], "/oauth/token");
        let scopes: BTreeSet<&str> = flow["scopes"]
            .as_object()
            .expect("scopes")
            .keys()
            .map(String::as_str)
            .collect();
        // The scopes eye_auth::Scope knows, by the names the clients file uses.
        let known: BTreeSet<&str> = eye_auth::Scope::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(scopes, known);
        // The explorer's page needs none either: its script sends the person's credential.
        let open = [
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/ui",
            "/ui/",
            "/ui/{file}",
        ];
        for (path, method, op) in operations(&doc) {
            let at = format!("{method} {path}");
            let security = op
                .get("security")
                .unwrap_or(&doc["security"])
                .as_array()
                .unwrap_or_else(|| panic!("{at}: security is not a list"));
            for requirement in security {
                for (scheme, needed) in requirement.as_object().expect("requirement") {
                    assert!(schemes.contains_key(scheme), "{at}: scheme {scheme}");
                    for s in needed.as_array().expect("scope list") {
                        let s = s.as_str().unwrap_or_default();
                        assert!(scopes.contains(s), "{at}: scope {s:?} not declared");
                    }
                }
            }
            let responses = op["responses"].as_object().expect("responses");
            let refusals = ["401", "403", "429"].map(|s| responses.get(s));
            if open.contains(&path) {
                assert_eq!(security.len(), 0, "{at}: needs no credential");
                assert_eq!(refusals, [None; 3], "{at}: refuses nobody");
                continue;
            }
            if path == "/oauth/token" || path == "/o/token/" {
                assert_eq!(
                    op["security"],
                    json!([{"clientBasic": []}, {}]),
                    "{at}: Basic, or credentials in the body"
                );
                continue;
            }
            // Segment's routes take what Segment's SDKs send: the write key (a client's API
            // key) by Basic, as a bearer key, or as `writeKey` in the body; not a token.
            if path.starts_with("/v1/")
                && [
                    "batch", "track", "identify", "page", "screen", "group", "alias",
                ]
                .contains(&path.trim_start_matches("/v1/"))
            {
                assert_eq!(
                    op["security"],
                    json!([{"writeKey": []}, {"bearer": ["events:write"]}, {}]),
                    "{at}: a write key by Basic, bearer or body"
                );
                assert!(refusals[0].is_some(), "{at}: no 401");
                continue;
            }
            // Every API operation: each scope set offered both ways, and the refusals.
            assert!(!security.is_empty(), "{at}: no security");
            let by = |scheme: &str| -> BTreeSet<String> {
                security
                    .iter()
                    .filter_map(|r| r.get(scheme))
                    .map(Value::to_string)
                    .collect()
            };
            assert!(!by("bearer").is_empty(), "{at}: no bearer requirement");
            assert_eq!(by("bearer"), by("oauth2"), "{at}: API key and token differ");
            assert!(
                security.iter().all(|r| r
                    .as_object()
                    .is_some_and(|m| m.len() == 1 && m.values().all(|v| v != &json!([])))),
                "{at}: every requirement names its scopes"
            );
            for (status, r) in ["401", "403", "429"].iter().zip(refusals) {
                let r = deref(&doc, r.unwrap_or_else(|| panic!("{at}: no {status}")));
                let header = if *status == "429" {
                    "Retry-After"
                } else {
                    "WWW-Authenticate"
                };
                let h = deref(&doc, &r["headers"][header]);
                assert_eq!(h["required"], true, "{at} {status}: {header} required");
            }
        }
    }

    /// Every schema in the document is a valid JSON Schema 2020-12 schema and compiles with
    /// its references, formats and patterns, as the end-to-end test will use it.
    #[test]
    fn every_schema_is_valid_json_schema() {
        let doc = document();
        let mut schemas: Vec<String> = doc["components"]["schemas"]
            .as_object()
            .expect("components/schemas")
            .keys()
            .map(|k| format!("/components/schemas/{k}"))
            .collect();
        schemas.extend(
            all(&doc)
                .into_iter()
                .filter(|(at, _)| at.ends_with("/schema"))
                .map(|(at, _)| at),
        );
        assert!(schemas.len() > 60, "found only {} schemas", schemas.len());
        for at in &schemas {
            let mut schema = doc.pointer(at).expect("found by walking").clone();
            if let Some(m) = schema.as_object_mut() {
                m.insert(
                    "$schema".into(),
                    json!("https://json-schema.org/draft/2020-12/schema"),
                );
            }
            if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
                panic!("{at}: not a JSON Schema 2020-12 schema: {e}");
            }
            // Compiled against the whole document so `#/components/...` references resolve.
            let mut rooted = doc.clone();
            rooted["$ref"] = json!(format!("#{}", fragment(at)));
            if let Err(e) = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&rooted)
            {
                panic!("{at}: does not compile: {e}");
            }
        }
    }

    #[test]
    fn schemas_are_strict_enough_to_catch_drift() {
        let doc = document();
        let check = |name: &str, instance: Value| {
            let mut rooted = doc.clone();
            rooted["$ref"] = json!(format!("#/components/schemas/{name}"));
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&rooted)
                .expect("compiles")
                .is_valid(&instance)
        };
        let summary = json!({"session_id": "s", "user_id": null, "machine_id": null,
            "org_id": null, "started_at": null, "ended_at": "2023-02-02T17:00:00.000000Z",
            "event_count": 0, "first_event_at": null, "last_event_at": null});
        assert!(check("SessionSummary", summary.clone()));
        let mut extra = summary.clone();
        extra["user"] = json!("u");
        assert!(!check("SessionSummary", extra), "unknown field accepted");
        let mut missing = summary.clone();
        missing.as_object_mut().map(|m| m.remove("user_id"));
        assert!(!check("SessionSummary", missing), "missing field accepted");
        let mut detail = summary.clone();
        detail["events"] = json!([]);
        detail["next_cursor"] = json!(null);
        assert!(check("SessionDetail", detail.clone()));
        assert!(!check("SessionSummary", detail), "page fields in a summary");
        let mut bad_time = summary;
        bad_time["ended_at"] = json!("2023-02-02 17:00:00");
        assert!(
            !check("SessionSummary", bad_time),
            "time format not checked"
        );
        let error = json!({"error": {"code": "not_found", "message": "no such route"}});
        assert!(check("Error", error));
        assert!(!check(
            "Error",
            json!({"error": {"code": "x", "message": "m", "details": []}})
        ));
        assert!(!check("Event", json!({"event_id": "not-a-uuid"})));
        // A scraped service has its figures exactly when it is up, and a reason when not.
        let up = json!({"url": "u", "up": true, "error": null,
            "events": {"produced": 1.0, "quarantined": 0.0, "failed": 0.0}});
        let down = json!({"url": "u", "up": false, "error": "connection refused"});
        assert!(check("IngestScrape", up.clone()));
        assert!(check("IngestScrape", down.clone()));
        let mut down_with_figures = down.clone();
        down_with_figures["events"] = up["events"].clone();
        assert!(
            !check("IngestScrape", down_with_figures),
            "figures while down"
        );
        let mut up_without = up.clone();
        up_without.as_object_mut().map(|m| m.remove("events"));
        assert!(!check("IngestScrape", up_without), "up without figures");
        let mut silent = down.clone();
        silent["error"] = json!(null);
        assert!(!check("IngestScrape", silent), "down without a reason");
        assert!(check("ConsumerScrape", down));
        for (name, text, ok) in [
            ("SessionId", "user/2 é", true),
            ("SessionId", "a\nb", false),
            ("SessionId", "a\u{85}b", false),
            ("EventType", "form interaction", true),
            ("EventType", " page", false),
            ("EventType", "page'", false),
        ] {
            assert_eq!(check(name, json!(text)), ok, "{name} {text:?}");
        }
    }

    #[tokio::test]
    async fn served_as_json() {
        let res = warp::test::request()
            .method("GET")
            .path("/openapi.json")
            .reply(&route())
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(res.body(), DOCUMENT.as_bytes());
        let post = warp::test::request()
            .method("POST")
            .path("/openapi.json")
            .filter(&route())
            .await;
        assert!(post.is_err(), "only GET serves the document");
    }
}
