//! The page: files of `dashboard/dist` embedded at build time (see build.rs), or, in a binary
//! built without them, a page that says how to build them.

use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The one command that builds the page, for binaries built without it.
pub const HOW_TO_BUILD: &str =
    "build it with `(cd dashboard && npm ci && npm run build)` (or scripts/setup), then `cargo build` again";

/// Whether the front end was built into this binary.
pub fn built() -> bool {
    FILES.iter().any(|(p, _)| *p == "index.html")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json" | "map") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Looks a path up among the embedded files; `/` and unknown paths without an extension
/// are the page itself (its views live in the URL's fragment).
pub fn lookup(path: &str) -> Option<(&'static str, &'static [u8])> {
    let rel = path.trim_start_matches('/');
    let rel =
        if rel.is_empty() || !rel.rsplit('/').next().unwrap_or_default().contains('.') { "index.html" } else { rel };
    FILES.iter().find(|(p, _)| *p == rel).map(|(p, b)| (content_type(p), *b))
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>berth dashboard: page not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#111}
code{background:#eee;padding:.1rem .3rem}</style></head>
<body><main><h1>The dashboard's page is not built into this binary</h1>
<p>This <code>berth</code> was built without the front end. From the source tree, run</p>
<pre><code>(cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build) &amp;&amp; cargo build -p berth</code></pre>
<p>(<code>scripts/setup</code> does it too, with Debian's <code>nodejs</code> and <code>npm</code>),
then start <code>berth dashboard</code> again. The Engine API forwarder at <code>/api/</code> works meanwhile.</p>
</main></body></html>
"#;

/// `GET` of anything that is not the API or a websocket.
pub async fn serve(uri: Uri) -> Response {
    if !built() {
        return (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Html(NOT_BUILT)).into_response();
    }
    match lookup(uri.path()) {
        Some((ct, body)) => (
            [
                (header::CONTENT_TYPE, ct),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                ),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    #[test]
    fn views_fall_back_to_the_page() {
        if built() {
            assert!(lookup("/").is_some());
            assert_eq!(lookup("/images").map(|(c, _)| c), Some("text/html; charset=utf-8"));
            assert!(lookup("/nope.js").is_none());
        } else {
            assert!(lookup("/").is_none());
        }
    }
}
