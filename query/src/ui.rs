//! The explorer (`/ui/`): a single page, built from `web/` into `query/ui/` and embedded in
//! the binary, so the service needs nothing beside it to serve the page. It reads the same
//! API as any other client, with the credential the person signs in with.

use std::path::PathBuf;
use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The page may run only its own script and style, talk only to this origin, and never be
/// framed: event values are attacker-controlled text, and this keeps any that slipped into
/// markup inert.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The built files, by name under `/ui/`.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/app.css"),
    ),
];

/// Where the files come from.
#[derive(Clone, Debug)]
pub enum Source {
    Embedded,
    /// A directory read at each request (`EYE_QUERY_UI_DIR`).
    Dir(PathBuf),
}

/// `GET /ui` (redirected to `/ui/`), `GET /ui/` and its files; any other path under `/ui/`
/// is not found.
pub fn routes(
    source: Source,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path("ui")
        .and(warp::get().or(warp::head()).unify())
        .and(warp::path::full())
        .and(warp::path::tail())
        .and_then(move |full: warp::path::FullPath, tail: warp::path::Tail| {
            let source = source.clone();
            async move {
                // Relative asset URLs resolve against `/ui/`, not `/`.
                if full.as_str() == "/ui" {
                    return Ok(
                        warp::redirect::permanent(warp::http::Uri::from_static("/ui/"))
                            .into_response(),
                    );
                }
                // The page routes by the URL's fragment: a deeper path would resolve the
                // page's relative asset URLs to nothing, so it is no page at all.
                let file = match tail.as_str() {
                    "" => "index.html",
                    name => ASSETS
                        .iter()
                        .map(|(n, _, _)| *n)
                        .find(|n| *n == name)
                        .ok_or_else(warp::reject::not_found)?,
                };
                serve(&source, file)
                    .await
                    .ok_or_else(warp::reject::not_found)
            }
        })
}

/// One of [`ASSETS`], by name; `None` when the development directory lacks it.
async fn serve(source: &Source, name: &str) -> Option<warp::reply::Response> {
    let content_type = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or(ASSETS[0].1, |(_, content_type, _)| *content_type);
    let mut response = match source {
        Source::Embedded => Response::new(embedded(name).into()),
        Source::Dir(dir) => match tokio::fs::read(dir.join(name)).await {
            Ok(bytes) => Response::new(bytes.into()),
            Err(e) => {
                tracing::warn!(file = %dir.join(name).display(), error = %e, "explorer file unreadable");
                return None;
            }
        },
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Files keep their names across releases: ask every time, so a new build shows at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

fn embedded(name: &str) -> &'static [u8] {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, bytes)| *bytes)
        .unwrap_or(ASSETS[0].2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the build writes is served: a new one cannot be left out of the binary.
    #[test]
    fn every_built_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut built: Vec<String> = std::fs::read_dir(&dir)
            .expect("query/ui")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        built.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|(n, _, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(built, embedded);
    }

    #[tokio::test]
    async fn files_carry_their_type_and_the_policy() {
        let api = routes(Source::Embedded);
        for (path, content_type, name) in [
            ("/ui/", "text/html; charset=utf-8", "index.html"),
            ("/ui/app.js", "text/javascript; charset=utf-8", "app.js"),
            ("/ui/app.css", "text/css; charset=utf-8", "app.css"),
        ] {
            let res = warp::test::request().path(path).reply(&api).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(res.headers()["content-type"], content_type, "{path}");
            assert_eq!(
                res.headers()["content-security-policy"],
                CONTENT_SECURITY_POLICY,
                "{path}"
            );
            assert_eq!(res.headers()["x-content-type-options"], "nosniff");
            assert_eq!(res.body().as_ref(), embedded(name), "{path}");
        }
        let res = warp::test::request()
            .path("/ui/events/anything")
            .reply(&api)
            .await;
        assert_eq!(res.status(), 404, "a deeper path would load no script");
        let res = warp::test::request().path("/ui").reply(&api).await;
        assert_eq!(res.status(), 308);
        assert_eq!(res.headers()["location"], "/ui/");
        let res = warp::test::request()
            .method("POST")
            .path("/ui/")
            .reply(&api)
            .await;
        assert_ne!(res.status(), 200, "the explorer has no write path");
    }

    /// The page itself names no inline script or style, which the policy would block.
    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = std::str::from_utf8(embedded("index.html")).expect("utf-8");
        assert!(!page.contains("<style"), "{page}");
        assert!(!page.contains("style="), "{page}");
        for script in page.split("<script").skip(1) {
            let open = &script[..script.find('>').expect("closed tag")];
            assert!(open.contains("src="), "inline script: <script{open}>");
        }
    }
}
