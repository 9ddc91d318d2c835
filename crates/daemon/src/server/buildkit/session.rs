//! `POST /session`: a client's BuildKit session. The client upgrades its connection to
//! HTTP/2 and serves its attachables on it (file sync of the context, secrets, registry
//! auth, SSH); the daemon is their gRPC client. Sessions are found by the id the client
//! names in `X-Docker-Expose-Session-Uuid` and live as long as the connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::SessionError;
use super::grpc::Channel;
use super::proto;
use crate::error::Error;
use crate::server::reply::ApiResult;

/// The headers a client names its session with (moby's `session.Manager` reads these).
const HEADER_ID: &str = "x-docker-expose-session-uuid";
const HEADER_NAME: &str = "x-docker-expose-session-name";
const HEADER_SHARED_KEY: &str = "x-docker-expose-session-sharedkey";
const HEADER_METHOD: &str = "x-docker-expose-session-grpc-method";

/// gRPC method of the client's secrets provider.
pub const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
/// gRPC method of the client's file-sync provider.
pub const DIFF_COPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";

/// One client's session.
pub struct Session {
    /// Its id (`X-Docker-Expose-Session-Uuid`).
    pub id: String,
    /// Its name (the context directory's base name).
    pub name: String,
    /// Same for every build of one directory on one client: a rebuild syncs against what
    /// the last session with this key left.
    pub shared_key: String,
    /// The gRPC methods the client serves.
    pub methods: Vec<String>,
    channel: Channel,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl Session {
    /// Whether the client serves `method` (`/pkg.Service/Method`).
    pub fn serves(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    /// The channel to the client's services.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Resolves when the session's connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow() || self.channel.is_closed()
    }

    /// The secret `id` from the client's secrets provider; `None` when the client has no
    /// such secret (or serves no secrets at all).
    pub async fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, SessionError> {
        if !self.serves(GET_SECRET) {
            return Ok(None);
        }
        let mut grpc = self.channel.grpc();
        let call = |source| SessionError::Call { method: GET_SECRET, source };
        grpc.ready().await.map_err(|e| call(tonic::Status::unavailable(e.to_string())))?;
        let req = tonic::Request::new(proto::GetSecretRequest { id: id.to_owned(), ..Default::default() });
        let path = axum::http::uri::PathAndQuery::from_static(GET_SECRET);
        match grpc.unary(req, path, tonic_prost::ProstCodec::<_, proto::GetSecretResponse>::default()).await {
            Ok(r) => Ok(Some(r.into_inner().data)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(call(s)),
        }
    }
}

/// The daemon's open sessions.
#[derive(Clone, Default)]
pub struct Sessions {
    open: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    added: Arc<tokio::sync::Notify>,
    keys: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    builds: Arc<Mutex<HashMap<String, Arc<std::sync::atomic::AtomicBool>>>>,
    /// Status streams of the control API's solves.
    pub status: super::control::StatusBoard,
    /// Builds whose frontend runs in the client.
    pub gateway: super::bridge::GatewayBoard,
}

/// A running build's entry in [`Sessions`], removed when dropped.
pub struct BuildEntry {
    builds: Arc<Mutex<HashMap<String, Arc<std::sync::atomic::AtomicBool>>>>,
    id: String,
}

impl Drop for BuildEntry {
    fn drop(&mut self) {
        self.builds.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl Sessions {
    /// The session `id`, waiting up to `wait` for it: the client opens its session and
    /// starts its build at the same time, so the build may arrive first.
    pub async fn get(&self, id: &str, wait: Duration) -> Result<Arc<Session>, SessionError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let added = self.added.notified();
            if let Some(s) = self.lock().get(id) {
                return Ok(s.clone());
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return Err(SessionError::NoSession { id: id.to_owned() });
            }
        }
    }

    /// The lock of a shared key: builds of one key sync into the same directories, so
    /// they take turns.
    pub fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.to_owned()).or_default().clone()
    }

    /// Notes a running build, so that `/build/cancel` can stop it.
    pub fn register_build(&self, id: &str, cancel: Arc<std::sync::atomic::AtomicBool>) -> BuildEntry {
        self.builds.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), cancel);
        BuildEntry { builds: self.builds.clone(), id: id.to_owned() }
    }

    /// Stops the build `id`, if it runs.
    pub fn cancel_build(&self, id: &str) {
        if let Some(c) = self.builds.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            c.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, s: Arc<Session>) {
        self.lock().insert(s.id.clone(), s);
        self.added.notify_waiters();
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// What a `POST /session` says about the session.
#[derive(Debug, PartialEq)]
pub struct SessionRequest {
    /// `X-Docker-Expose-Session-Uuid`.
    pub id: String,
    /// `X-Docker-Expose-Session-Name`.
    pub name: String,
    /// `X-Docker-Expose-Session-Sharedkey`.
    pub shared_key: String,
    /// `X-Docker-Expose-Session-Grpc-Method`, every value.
    pub methods: Vec<String>,
}

impl SessionRequest {
    /// Decodes the headers; a session needs an id and an `Upgrade: h2c`.
    pub fn decode(h: &HeaderMap) -> Result<SessionRequest, Error> {
        let one = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let id = one(HEADER_ID);
        if id.is_empty() {
            return Err(Error::InvalidArgument("no session ID in the request".into()));
        }
        let upgrade = h.get(header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !upgrade.eq_ignore_ascii_case("h2c") {
            return Err(Error::InvalidArgument(format!("session: unsupported upgrade protocol {upgrade:?}")));
        }
        let methods = h
            .get_all(HEADER_METHOD)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        Ok(SessionRequest { id, name: one(HEADER_NAME), shared_key: one(HEADER_SHARED_KEY), methods })
    }
}

/// `POST /session`: answers 101 and, on the upgraded connection, speaks HTTP/2 as the
/// client of the services the caller exposes.
pub async fn session(mut req: Request) -> ApiResult<Response> {
    let r = SessionRequest::decode(req.headers())?;
    let Some(sessions) = req.extensions().get::<Sessions>().cloned() else {
        return Err(Error::Internal("sessions are not set up".into()).into());
    };
    let Some(upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(Error::InvalidArgument("session needs a connection upgrade".into()).into());
    };
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(up) => hyper_util::rt::TokioIo::new(up),
            Err(e) => return tracing::debug!(error = %e, "session upgrade failed"),
        };
        let (channel, drive) = match super::grpc::connect(io).await {
            Ok(c) => c,
            Err(e) => return tracing::debug!(error = %e, "session: HTTP/2 handshake failed"),
        };
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let id = r.id.clone();
        tracing::debug!(session = %id, name = %r.name, methods = ?r.methods, "session opened");
        sessions.insert(Arc::new(Session {
            id: r.id,
            name: r.name,
            shared_key: r.shared_key,
            methods: r.methods,
            channel,
            closed,
        }));
        drive.await;
        sessions.remove(&id);
        let _ = closed_tx.send(true);
        tracing::debug!(session = %id, "session closed");
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "h2c")
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_session_headers_name_it() {
        let mut h = HeaderMap::new();
        let e = SessionRequest::decode(&h).unwrap_err();
        assert_eq!(e.to_string(), "no session ID in the request");
        h.insert(HEADER_ID, HeaderValue::from_static("s1"));
        h.insert(HEADER_NAME, HeaderValue::from_static("app"));
        h.insert(HEADER_SHARED_KEY, HeaderValue::from_static("k"));
        h.append(HEADER_METHOD, HeaderValue::from_static(DIFF_COPY));
        h.append(HEADER_METHOD, HeaderValue::from_static(GET_SECRET));
        assert!(SessionRequest::decode(&h).unwrap_err().to_string().contains("unsupported upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        let r = SessionRequest::decode(&h).unwrap();
        assert_eq!((r.id.as_str(), r.name.as_str(), r.shared_key.as_str()), ("s1", "app", "k"));
        assert_eq!(r.methods, [DIFF_COPY, GET_SECRET]);
    }

    #[tokio::test]
    async fn a_missing_session_is_an_error_after_the_wait() {
        let s = Sessions::default();
        let e = s.get("nope", Duration::from_millis(10)).await.err().unwrap();
        assert_eq!(e.to_string(), "no active session for nope: context deadline exceeded");
    }
}
