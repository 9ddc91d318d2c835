//! The Engine API over HTTP: the router (one file per resource beside this one), the
//! `/v1.NN` prefix check, and the unix-socket listener; [`conn`] holds what every listener
//! shares (accept back-off, the connection bound, the header timeout, serving one
//! connection with the upgrades attach needs).
//!
//! Every request that no route serves, whatever its path or method, gets Docker's one
//! answer: 404 `{"message":"page not found"}` (dockerd's mux uses the same handler for an
//! unknown path and for a known path with the wrong method).

pub mod archive;
mod body;
pub mod build;
pub mod buildkit;
pub mod builds;
pub mod conn;
pub mod containers;
pub mod distribution;
pub mod events;
pub mod exec;
pub mod explore;
pub mod images;
pub mod networks;
pub mod prune;
pub mod reply;
pub mod system;
pub mod tcp;
pub mod volumes;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;

use crate::engine::Engine;
pub use reply::{ApiError, status_of};
use reply::{error_response, page_not_found};

/// Builds the router over an engine.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(images::routes())
        .merge(distribution::routes())
        .merge(build::routes())
        .merge(buildkit::routes())
        .merge(volumes::routes())
        .merge(prune::routes())
        .merge(archive::routes())
        .merge(events::routes())
        .merge(networks::routes())
        .merge(explore::routes())
        .merge(builds::routes())
        .fallback(page_not_found)
        .method_not_allowed_fallback(page_not_found)
        .layer(axum::Extension(buildkit::Sessions::default()))
        .with_state(engine)
}

fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |s: &str| -> (u32, u32) {
        let mut it = s.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    parse(a).cmp(&parse(b))
}

/// Strips `/v1.NN` from the path and refuses versions outside what we speak.
fn strip_version(req: &mut Request) -> Result<(), Box<Response>> {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else { return Ok(()) };
    let Some((ver, tail)) = rest.split_once('/') else { return Ok(()) };
    if ver.is_empty() || !ver.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok(());
    }
    if compare_versions(ver, berth_api::MIN_API_VERSION).is_lt() {
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            format!(
                "client version {ver} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                berth_api::MIN_API_VERSION
            ),
        )));
    }
    if compare_versions(ver, berth_api::API_VERSION).is_gt() {
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            format!("client version {ver} is too new. Maximum supported API version is {}", berth_api::API_VERSION),
        )));
    }
    let version = RequestVersion(ver.to_owned());
    let new_path = format!("/{tail}");
    let pq = match req.uri().query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req.extensions_mut().insert(version);
    Ok(())
}

/// The API version a request named in its path (`/v1.NN/…`), for the few answers that
/// depend on it; a request without one speaks the newest ([`berth_api::API_VERSION`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestVersion(pub String);

impl RequestVersion {
    /// The version of `req`.
    pub fn of<B>(req: &axum::http::Request<B>) -> RequestVersion {
        req.extensions()
            .get::<RequestVersion>()
            .cloned()
            .unwrap_or_else(|| RequestVersion(berth_api::API_VERSION.to_owned()))
    }

    /// Whether it is older than `v`.
    pub fn before(&self, v: &str) -> bool {
        compare_versions(&self.0, v).is_lt()
    }
}

/// Serves the API on a unix socket until `shutdown` resolves. Accept errors (running out
/// of descriptors) are retried with back-off; see [`conn`].
pub async fn serve(
    engine: Arc<Engine>,
    socket: &Path,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket file left by a daemon that died is stale: the data-root lock proves no
    // other daemon of ours runs, so it is safe to replace.
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(socket)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))?;
    }
    tracing::info!(socket = %socket.display(), "API listening");
    let header_timeout = engine.cfg.api_header_timeout;
    let app = router(engine);
    let name = socket.display().to_string();
    let mut shutdown = shutdown;
    let mut backoff = conn::Backoff::default();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                conn::accept_failed(&name, e, &mut backoff, &mut shutdown).await?;
                continue;
            }
        };
        backoff.reset();
        match conn::ConnSlot::try_take(conn::max_connections()) {
            Some(slot) => {
                tokio::spawn(conn::serve_connection(app.clone(), conn::Counted::new(stream, slot), header_timeout));
            }
            None => {
                conn::note_refused(&name);
                tokio::spawn(conn::refuse(stream));
            }
        }
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use berth_base::ErrorKind;

    #[test]
    fn version_prefix() {
        let mut r = Request::builder().uri("/v1.41/containers/json?all=1").body(Body::empty()).unwrap();
        strip_version(&mut r).unwrap();
        assert_eq!(r.uri().to_string(), "/containers/json?all=1");
        assert_eq!(RequestVersion::of(&r), RequestVersion("1.41".to_owned()));
        assert!(RequestVersion::of(&r).before("1.42"));
        let mut r = Request::builder().uri("/v1.12/info").body(Body::empty()).unwrap();
        assert!(strip_version(&mut r).is_err());
        let mut r = Request::builder().uri("/v1.99/info").body(Body::empty()).unwrap();
        assert!(strip_version(&mut r).is_err());
        let mut r = Request::builder().uri("/version").body(Body::empty()).unwrap();
        strip_version(&mut r).unwrap();
        assert_eq!(r.uri().path(), "/version");
        assert_eq!(status_of(ErrorKind::NotFound), StatusCode::NOT_FOUND);
    }
}
