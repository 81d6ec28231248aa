//! The static SMART Health Links viewer under `/view`: one HTML page, its script and
//! its style sheet, built into the binary. The page reads the `shlink:/` payload from
//! the URL fragment (never sent to a server), fetches the encrypted file through the
//! SHL protocol and decrypts it in the browser with WebCrypto.
//!
//! Served with a strict Content-Security-Policy (scripts and styles from this server
//! only, no inline code, network requests to any SHL host) and `Referrer-Policy:
//! no-referrer`. The page makes no request but the manifest and file requests the
//! protocol needs.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The page, with `{{PREFIX}}` where the public URL's path goes.
const PAGE: &str = include_str!("../../viewer/index.html");
/// The script (also loadable by node, for tests).
const SCRIPT: &str = include_str!("../../viewer/viewer.js");
/// The style sheet.
const STYLE: &str = include_str!("../../viewer/viewer.css");

/// The policy every viewer response carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src *; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// The viewer's state: the page, its asset links resolved against the public URL.
pub struct Viewer {
    page: String,
}

impl Viewer {
    /// The viewer for a server reached at `public_base` (its path, if any, prefixes
    /// the asset links, for a server behind a proxy under a sub-path).
    pub fn new(public_base: &str) -> Self {
        Viewer {
            page: PAGE.replace("{{PREFIX}}", &path_prefix(public_base)),
        }
    }
}

/// The path of a base URL without its trailing slash (`https://h/carry/` →
/// `/carry`), or nothing when it has none or holds characters unfit for an attribute.
fn path_prefix(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.trim_end_matches('/');
    let fit = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b));
    if fit {
        path.to_string()
    } else {
        String::new()
    }
}

/// The viewer's routes.
pub fn routes<S: Clone + Send + Sync + 'static>(viewer: Arc<Viewer>) -> Router<S> {
    Router::new()
        .route("/view", get(page))
        .route("/view/", get(page))
        .route("/view/viewer.js", get(script))
        .route("/view/viewer.css", get(style))
        .with_state(viewer)
}

/// An asset with the viewer's security headers.
fn asset(content_type: &'static str, body: String) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

async fn page(State(viewer): State<Arc<Viewer>>) -> Response {
    asset("text/html; charset=utf-8", viewer.page.clone())
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT.to_string())
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_its_assets_under_the_public_path() {
        assert_eq!(path_prefix("http://127.0.0.1:8080"), "");
        assert_eq!(path_prefix("https://carry.example/"), "");
        assert_eq!(path_prefix("https://carry.example/sub/"), "/sub");
        assert_eq!(path_prefix("https://carry.example/a\"b"), "");
        let v = Viewer::new("https://carry.example/sub");
        assert!(v.page.contains("src=\"/sub/view/viewer.js\""));
        assert!(v.page.contains("href=\"/sub/view/viewer.css\""));
        assert!(!Viewer::new("http://h").page.contains("{{PREFIX}}"));
    }

    #[test]
    fn the_page_has_no_inline_code_and_the_script_no_inner_html() {
        assert!(!PAGE.contains("<script>") && !PAGE.contains("<style"));
        assert!(!PAGE.contains("style=") && !PAGE.contains("onclick"));
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(banned), "viewer.js uses {banned}");
        }
    }
}
