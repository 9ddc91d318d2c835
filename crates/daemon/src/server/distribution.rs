//! Registry endpoints: the pull branch of `POST /images/create`, `POST /images/{name}/push`,
//! `POST /auth`, `GET /distribution/{name}/json`, and berth's own
//! `GET /berth/distribution/{name}/manifest` (the manifest bytes `manifest inspect` prints). Credentials arrive in `X-Registry-Auth` (or the `/auth` body); progress
//! goes out as Docker's JSON lines, chunk by chunk as it happens. An error before the stream
//! starts is an HTTP status; one after it is an `errorDetail` line, as dockerd sends it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use berth_api::{ErrorBody, JsonMessage, query};
use berth_registry::client::AuthConfig;
use bytes::Bytes;
use futures_util::StreamExt;

use super::reply::{self, ApiResult, json, read_body, streaming};
use crate::engine::Engine;
use crate::engine::distribution::Progress;
use crate::error::{Error, Result};

/// The routes of this resource (`/images/create` and `/images/{name}/push` are routed by
/// images.rs, which hands over here).
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/auth", post(auth))
        .route("/distribution/{*rest}", get(distribution_inspect))
        .route(&format!("{}{{*rest}}", berth_api::client::manifest::BERTH_MANIFEST_PREFIX), get(remote_manifest))
}

/// `GET /distribution/{name}/json`: the Engine API's descriptor and platforms.
async fn distribution_inspect(
    State(e): State<Arc<Engine>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let name = rest.strip_suffix("/json").filter(|n| !n.is_empty()).ok_or(Error::PageNotFound)?;
    let auth = registry_auth(&headers)?;
    Ok(json(StatusCode::OK, &e.distribution_inspect(name, &auth).await?))
}

/// `GET /berth/distribution/{name}/manifest[?insecure=1]`.
async fn remote_manifest(State(e): State<Arc<Engine>>, Path(rest): Path<String>, req: Request) -> ApiResult<Response> {
    #[derive(serde::Deserialize, Default)]
    struct Q {
        #[serde(default)]
        insecure: Option<String>,
    }
    let name = rest.strip_suffix("/manifest").filter(|n| !n.is_empty()).ok_or(Error::PageNotFound)?;
    let q: Q = reply::query(req.uri().query())?;
    let insecure = q.insecure.as_deref().is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let auth = registry_auth(req.headers())?;
    Ok(json(StatusCode::OK, &e.remote_manifest(name, &auth, insecure, true).await?))
}

/// The credentials a request carries in `X-Registry-Auth` (anonymous when absent).
pub fn registry_auth(headers: &HeaderMap) -> Result<AuthConfig> {
    match headers.get("x-registry-auth") {
        None => Ok(AuthConfig::default()),
        Some(v) => {
            let s = v.to_str().map_err(|_| Error::InvalidArgument("invalid X-Registry-Auth header".into()))?;
            Ok(AuthConfig::from_header(s)?)
        }
    }
}

fn encode(m: &JsonMessage) -> Bytes {
    let mut b = serde_json::to_vec(m).unwrap_or_default();
    b.extend_from_slice(b"\r\n");
    Bytes::from(b)
}

/// The error line that ends a stream (dockerd's shape).
pub fn error_message(e: &Error) -> JsonMessage {
    let message = e.to_string();
    JsonMessage {
        error: Some(message.clone()),
        error_detail: Some(ErrorBody { message, code: None }),
        ..Default::default()
    }
}

/// Runs `work` with a progress channel whose messages become the streamed body.
fn stream_progress<F, Fut>(work: F) -> Response
where
    F: FnOnce(Progress) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<JsonMessage>();
    tokio::spawn(async move {
        let tx2 = tx.clone();
        if let Err(e) = work(tx).await {
            tracing::info!(error = %e, "registry operation failed after its stream started");
            let _ = tx2.send(error_message(&e));
        }
    });
    let body = tokio_stream_from(rx).map(|m| Ok::<_, Infallible>(encode(&m)));
    streaming("application/json", body)
}

fn tokio_stream_from(
    rx: tokio::sync::mpsc::UnboundedReceiver<JsonMessage>,
) -> impl futures_util::Stream<Item = JsonMessage> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

/// `POST /images/create?fromImage=…&tag=…&platform=…`.
pub async fn pull(e: Arc<Engine>, req: Request) -> ApiResult<Response> {
    let q: query::CreateImage = reply::query(req.uri().query())?;
    let from = q.from_image.clone().unwrap_or_default();
    let auth = registry_auth(req.headers())?;
    let plan = e.prepare_pull(&from, q.tag.as_deref(), q.platform.as_deref(), auth).await?;
    Ok(stream_progress(move |tx| async move {
        e.run_pull(plan, &tx).await?;
        Ok(())
    }))
}

/// `POST /images/{name}/push?tag=…`.
pub async fn push(e: Arc<Engine>, name: String, req: Request) -> ApiResult<Response> {
    #[derive(serde::Deserialize, Default)]
    struct PushQuery {
        #[serde(default)]
        tag: Option<String>,
    }
    let q: PushQuery = reply::query(req.uri().query())?;
    let auth = registry_auth(req.headers())?;
    let plan = e.prepare_push(&name, q.tag.as_deref(), auth).await?;
    Ok(stream_progress(move |tx| async move { e.run_push(plan, &tx).await }))
}

/// `POST /auth`: `{"Status":"Login Succeeded","IdentityToken":…}`.
async fn auth(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let body = read_body(req.into_body()).await?;
    let mut a: AuthConfig = reply::json_body(&body)?;
    a.expand_auth();
    let out = e.login(a).await?;
    let mut v = serde_json::json!({ "Status": "Login Succeeded" });
    if !out.identity_token.is_empty() {
        v["IdentityToken"] = serde_json::Value::String(out.identity_token);
    }
    Ok(json(StatusCode::OK, &v))
}
