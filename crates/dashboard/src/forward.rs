//! The forwarder: `/api/<Engine API path>` from the page goes to the daemon unchanged, if the
//! method and path are on the allow-list of what the views use. Nothing else reaches the
//! daemon through the dashboard: no build, no archive upload, no hijacked stream over plain
//! HTTP (those go through the websockets in `streams`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::App;

/// One allowed request shape: a method and path segments, where `*` is one segment and
/// `**` one or more (image names carry slashes: `registry:5000/team/app:tag`).
type Rule = (Method, &'static [&'static str]);

fn rules() -> &'static [Rule] {
    use Method as M;
    static RULES: std::sync::OnceLock<Vec<Rule>> = std::sync::OnceLock::new();
    RULES.get_or_init(|| {
        vec![
            (M::GET, &["_ping"]),
            (M::GET, &["version"]),
            (M::GET, &["info"]),
            (M::GET, &["events"]),
            (M::GET, &["system", "df"]),
            (M::GET, &["containers", "json"]),
            (M::GET, &["containers", "*", "json"]),
            (M::GET, &["containers", "*", "logs"]),
            (M::GET, &["containers", "*", "stats"]),
            (M::GET, &["containers", "*", "top"]),
            (M::GET, &["containers", "*", "archive"]),
            (M::POST, &["containers", "create"]),
            (M::POST, &["containers", "*", "start"]),
            (M::POST, &["containers", "*", "stop"]),
            (M::POST, &["containers", "*", "restart"]),
            (M::POST, &["containers", "*", "kill"]),
            (M::POST, &["containers", "*", "pause"]),
            (M::POST, &["containers", "*", "unpause"]),
            (M::POST, &["containers", "*", "exec"]),
            (M::POST, &["containers", "*", "resize"]),
            (M::DELETE, &["containers", "*"]),
            (M::GET, &["exec", "*", "json"]),
            (M::POST, &["exec", "*", "resize"]),
            (M::GET, &["images", "json"]),
            (M::GET, &["images", "**", "json"]),
            (M::GET, &["images", "**", "history"]),
            (M::POST, &["images", "**", "tag"]),
            (M::POST, &["images", "**", "push"]),
            (M::DELETE, &["images", "**"]),
            (M::GET, &["berth", "images", "**", "explore"]),
            (M::GET, &["berth", "builds"]),
            (M::GET, &["berth", "builds", "*"]),
            (M::GET, &["volumes"]),
            (M::GET, &["volumes", "*"]),
            (M::POST, &["volumes", "create"]),
            (M::DELETE, &["volumes", "*"]),
            (M::GET, &["networks"]),
            (M::GET, &["networks", "*"]),
            (M::POST, &["networks", "create"]),
            (M::DELETE, &["networks", "*"]),
        ]
    })
}

fn matches(pat: &[&str], segs: &[&str]) -> bool {
    match (pat.first(), segs.first()) {
        (None, None) => true,
        (Some(&"**"), Some(_)) => {
            // One or more segments, then the rest of the pattern.
            (1..=segs.len()).any(|n| matches(&pat[1..], &segs[n..]))
        }
        (Some(&"*"), Some(_)) => matches(&pat[1..], &segs[1..]),
        (Some(p), Some(s)) => p == s && matches(&pat[1..], &segs[1..]),
        _ => false,
    }
}

/// Whether `method path` (path without `/api`, without the `/v1.NN` prefix) may be forwarded.
pub fn allowed(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else { return false };
    // Segments the daemon would decode into something else ("%2F", "..") are not ours to
    // judge: refuse them rather than guess.
    let lower = rest.to_ascii_lowercase();
    if rest.is_empty() || lower.contains("%2f") || lower.contains("%2e") || lower.contains('\\') {
        return false;
    }
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return false;
    }
    rules().iter().any(|(m, pat)| m == method && matches(pat, &segs))
}

/// The largest request body forwarded.
const MAX_BODY: usize = 1 << 20;

fn message(status: StatusCode, msg: String) -> Response {
    (status, axum::Json(serde_json::json!({ "message": msg }))).into_response()
}

/// `ANY /api/{*path}`: forwards an allowed request and streams the answer back.
pub async fn forward(State(app): State<Arc<App>>, method: Method, uri: Uri, body: Body) -> Response {
    let path = uri.path().strip_prefix("/api").unwrap_or_default();
    if !allowed(&method, path) {
        return message(StatusCode::FORBIDDEN, format!("berth dashboard does not forward {method} {path}"));
    }
    // Bodies of the allowed requests are small JSON (create, exec, tag): read whole.
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return message(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")),
    };
    match app.client.request(method, path, uri.query(), Some(berth_api::client::full_body(body))).await {
        Ok(resp) => {
            let (mut parts, incoming) = resp.into_parts();
            for h in [header::CONNECTION, header::TRANSFER_ENCODING, header::UPGRADE] {
                parts.headers.remove(h);
            }
            parts.headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
            Response::from_parts(parts, Body::new(incoming))
        }
        Err(e) => message(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_views_use_is_allowed() {
        for (m, p) in [
            (Method::GET, "/containers/json"),
            (Method::GET, "/containers/abc/stats"),
            (Method::POST, "/containers/web/stop"),
            (Method::DELETE, "/containers/web"),
            (Method::GET, "/images/localhost:5000/team/app:1.0/json"),
            (Method::GET, "/images/busybox/history"),
            (Method::POST, "/images/sha256:abcd/tag"),
            (Method::DELETE, "/images/localhost:5000/team/app:1.0"),
            (Method::GET, "/berth/images/waste:1/explore"),
            (Method::GET, "/berth/builds"),
            (Method::GET, "/berth/builds/0123abcd"),
            (Method::GET, "/events"),
        ] {
            assert!(allowed(&m, p), "{m} {p}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for (m, p) in [
            (Method::POST, "/build"),
            (Method::PUT, "/containers/web/archive"),
            (Method::POST, "/containers/web/attach"),
            (Method::POST, "/exec/abc/start"),
            (Method::POST, "/images/load"),
            (Method::POST, "/session"),
            (Method::GET, "/containers/web/../../build"),
            (Method::GET, "/containers/a%2F..%2Fb/json"),
            (Method::GET, "/containers//json"),
            (Method::GET, "/images/json/extra"),
            (Method::DELETE, "/containers/a/b"),
            (Method::GET, ""),
            (Method::GET, "/"),
            (Method::POST, "/containers/json"),
        ] {
            assert!(!allowed(&m, p), "{m} {p}");
        }
    }
}
