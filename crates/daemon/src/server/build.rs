//! `/build` and `/build/prune`: the legacy builder's API. A build streams its progress as
//! JSON lines while it runs; its context is a directory on this machine (berth's CLI, by
//! header), a remote URL, or the uploaded tar body.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use berth_api::query;
use bytes::Bytes;

use super::body::body_reader;
use super::reply::{self, ApiResult, json};
use crate::engine::{ContextSource, Engine};
use crate::error::{Error, Result};

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new().route("/build", post(build)).route("/build/prune", post(prune))
}

/// Where a build's context comes from, as the request says.
#[derive(Debug, PartialEq)]
pub enum ContextChoice {
    /// A directory on the daemon's machine (berth's CLI sends its path in a header).
    Dir(PathBuf),
    /// `remote=`: a git repository or a URL.
    Remote(String),
    /// The request body, a tar.
    Upload,
}

/// `POST /build`, decoded.
#[derive(Debug, PartialEq)]
pub struct BuildRequest {
    /// The builder's parameters.
    pub query: query::Build,
    /// Where the context is.
    pub context: ContextChoice,
    /// Registry credentials for pulling bases (`X-Registry-Config`).
    pub auths: berth_registry::client::AuthConfigs,
}

fn context_not_found(d: &std::path::Path) -> Error {
    Error::InvalidArgument(format!("unable to prepare context: path {:?} not found", d.display()))
}

impl BuildRequest {
    /// Decodes the query and the context header.
    pub fn decode(q: Option<&str>, headers: &HeaderMap) -> Result<BuildRequest> {
        let query = query::Build::parse(q.unwrap_or(""))?;
        let dir = headers.get(berth_api::BERTH_CONTEXT_DIR).and_then(|v| v.to_str().ok()).map(PathBuf::from);
        let context = match dir {
            Some(d) if d.is_absolute() => ContextChoice::Dir(d),
            Some(d) => return Err(context_not_found(&d)),
            None => match query.remote.clone() {
                Some(url) => ContextChoice::Remote(url),
                None => ContextChoice::Upload,
            },
        };
        let auths = headers
            .get("x-registry-config")
            .and_then(|v| v.to_str().ok())
            .map(berth_registry::client::AuthConfigs::from_header)
            .unwrap_or_default();
        Ok(BuildRequest { query, context, auths })
    }
}

/// `POST /build/prune`, decoded.
#[derive(Debug, PartialEq)]
pub struct PruneRequest {
    /// Remove everything, not only what is unused.
    pub all: bool,
    /// Only entries older than this many seconds.
    pub until: Option<i64>,
}

impl PruneRequest {
    /// Decodes the query, whose `until` filter is a duration.
    pub fn decode(q: Option<&str>) -> Result<PruneRequest> {
        #[derive(serde::Deserialize)]
        struct Q {
            #[serde(default, deserialize_with = "query::de_bool")]
            all: bool,
            #[serde(default)]
            filters: query::Filters,
        }
        let q: Q = reply::query(q)?;
        let until = match q.filters.get("until").first() {
            Some(u) => {
                Some(parse_until(u).ok_or_else(|| Error::InvalidArgument(format!("invalid filter 'until={u}'")))?)
            }
            None => None,
        };
        Ok(PruneRequest { all: q.all, until })
    }
}

/// Docker's `until` filter: a duration (`24h`, `90m`, `30s`) back from now, in seconds.
fn parse_until(s: &str) -> Option<i64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().ok()?;
    Some(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return None,
    })
}

/// `POST /build`: the build runs while its progress streams back as JSON lines; a failure
/// after the stream began is reported in it, as Docker does. A client that goes away
/// cancels the build.
async fn build(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    if let Some(v2) = super::buildkit::build::V2Query::decode(req.uri().query())? {
        let sessions = req.extensions().get::<super::buildkit::Sessions>().cloned().unwrap_or_default();
        return super::buildkit::build::build(e, sessions, req.uri().query(), v2).await;
    }
    let r = BuildRequest::decode(req.uri().query(), req.headers())?;
    let source = match r.context {
        ContextChoice::Dir(d) if d.is_dir() => ContextSource::Dir(d),
        ContextChoice::Dir(d) => return Err(context_not_found(&d).into()),
        ContextChoice::Remote(url) => ContextSource::Remote(url),
        ContextChoice::Upload => ContextSource::Tar(Box::new(body_reader(req.into_body()))),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<berth_api::JsonMessage>(256);
    let cancel = Arc::new(AtomicBool::new(false));
    let watch_tx = tx.clone();
    let watch_cancel = cancel.clone();
    // Holds a sender while it waits, so it must be stopped when the build ends or the
    // response stream would never see its end.
    let watcher = tokio::spawn(async move {
        watch_tx.closed().await;
        tracing::debug!("build client went away: cancelling the build");
        watch_cancel.store(true, Ordering::Relaxed);
    });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<String>>();
    tokio::spawn(async move {
        let result = e.build(r.query, source, r.auths, tx, cancel).await;
        watcher.abort();
        let _ = done_tx.send(result);
    });
    // A build that fails before its first message (no context, no Dockerfile) is
    // answered with its status, as dockerd's handler does before it has written anything;
    // after that, the error is the stream's last message.
    let mut rx = rx;
    let (first, done_rx) = match rx.recv().await {
        Some(m) => (Some(m), Some(done_rx)),
        None => match done_rx.await {
            Ok(Err(err)) => return Err(err.into()),
            _ => (None, None),
        },
    };
    let ended = |done: Option<tokio::sync::oneshot::Receiver<Result<String>>>| async move {
        match done?.await {
            Ok(Err(err)) => {
                let msg = err.to_string();
                Some(berth_api::JsonMessage {
                    error: Some(msg.clone()),
                    error_detail: Some(berth_api::ErrorBody { message: msg, code: None }),
                    ..Default::default()
                })
            }
            _ => None,
        }
    };
    let encode = |m: &berth_api::JsonMessage| {
        let mut b = serde_json::to_vec(m).unwrap_or_default();
        b.extend_from_slice(b"\r\n");
        Bytes::from(b)
    };
    // An error the build already put in the stream (the legacy builder's failed RUN, with
    // its exit code) ends it: the build's result is not reported twice.
    let done_rx = done_rx.filter(|_| first.as_ref().is_none_or(|m| m.error.is_none()));
    // A silent RUN step writes nothing for a long time, and only a failed write tells the
    // server its client left: a newline each second (JSON decoders skip whitespace between
    // values) makes a vanished client drop this stream, which cancels the build.
    let head = futures_util::stream::iter(first.map(|m| Ok::<_, Infallible>(encode(&m))));
    let body = futures_util::stream::unfold((Some(rx), done_rx), move |(rx, done)| async move {
        let mut rx = rx?;
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    let done = if m.error.is_some() { None } else { done };
                    Some((Ok::<_, Infallible>(encode(&m)), (Some(rx), done)))
                }
                None => ended(done).await.map(|m| (Ok(encode(&m)), (None, None))),
            },
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                Some((Ok::<_, Infallible>(Bytes::from_static(b"\n")), (Some(rx), done)))
            }
        }
    });
    Ok(reply::streaming("application/json", futures_util::StreamExt::chain(head, body)))
}

async fn prune(State(e): State<Arc<Engine>>, req: Request<Body>) -> ApiResult<Response> {
    let r = PruneRequest::decode(req.uri().query())?;
    let report = e.builder_prune(r.all, r.until).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "CachesDeleted": report.removed, "SpaceReclaimed": report.reclaimed }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use berth_base::ErrorKind;

    #[test]
    fn the_context_is_a_local_dir_a_remote_or_the_body() {
        let mut h = HeaderMap::new();
        let r = BuildRequest::decode(Some("t=app%3A1&t=app%3Alatest&nocache=1"), &h).unwrap();
        assert_eq!(r.context, ContextChoice::Upload);
        assert_eq!(r.query.tags, ["app:1", "app:latest"]);
        assert!(r.query.no_cache);
        let r = BuildRequest::decode(Some("remote=https%3A%2F%2Fexample.com%2Fr.git"), &h).unwrap();
        assert_eq!(r.context, ContextChoice::Remote("https://example.com/r.git".into()));
        h.insert(berth_api::BERTH_CONTEXT_DIR, HeaderValue::from_static("/srv/app"));
        let r = BuildRequest::decode(None, &h).unwrap();
        assert_eq!(r.context, ContextChoice::Dir("/srv/app".into()));
        h.insert(berth_api::BERTH_CONTEXT_DIR, HeaderValue::from_static("relative/dir"));
        let e = BuildRequest::decode(None, &h).unwrap_err();
        assert_eq!(e.to_string(), "unable to prepare context: path \"relative/dir\" not found");
    }

    #[test]
    fn docker_py_dockerfile_outside_the_context_takes_the_name() {
        let r = BuildRequest::decode(
            Some("t=x&dockerfile=.dockerfile.4f2a&dockerfile=FROM+busybox%0A&rm=1"),
            &HeaderMap::new(),
        )
        .unwrap();
        assert_eq!(r.query.dockerfile.as_deref(), Some(".dockerfile.4f2a"));
    }

    #[test]
    fn bad_build_queries_are_400_in_words() {
        let e = BuildRequest::decode(Some("pull=perhaps"), &HeaderMap::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.to_string(), "invalid value for pull: \"perhaps\" is not a boolean (1, 0, true or false)");
        let e = BuildRequest::decode(Some("labels=%5B%5D"), &HeaderMap::new()).unwrap_err();
        assert!(e.to_string().starts_with("invalid value for labels: invalid JSON: invalid type: sequence"), "{e}");
    }

    #[test]
    fn prune_decodes_all_and_until() {
        assert_eq!(PruneRequest::decode(None).unwrap(), PruneRequest { all: false, until: None });
        let r = PruneRequest::decode(Some("all=1&filters=%7B%22until%22%3A%5B%2224h%22%5D%7D")).unwrap();
        assert_eq!(r, PruneRequest { all: true, until: Some(86_400) });
        let r = PruneRequest::decode(Some("filters=%7B%22until%22%3A%7B%2290m%22%3Atrue%7D%7D")).unwrap();
        assert_eq!(r.until, Some(5_400));
        let e = PruneRequest::decode(Some("filters=%7B%22until%22%3A%5B%22soon%22%5D%7D")).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter 'until=soon'");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
