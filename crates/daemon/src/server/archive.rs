//! Files in and out: a container's paths (`HEAD/GET/PUT /containers/{id}/archive`, with
//! the `X-Docker-Container-Path-Stat` header), `export`, `changes`, and image archives
//! (`GET /images/get`, `GET /images/{name}/get` through the images router, `POST
//! /images/load`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_api::client::archive::PATH_STAT_HEADER;
use berth_image::archive::LoadEvent;
use bytes::Bytes;
use futures_util::StreamExt;

use super::body::body_reader;
use super::reply::{self, ApiResult, Path, Query, json};
use crate::engine::Engine;
use crate::engine::archive::TarStream;
use crate::error::Error;

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/containers/{id}/archive", get(get_archive).head(head_archive).put(put_archive))
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
        .route("/images/get", get(save))
        .route("/images/load", post(load))
}

/// `?path=` of the archive calls.
#[derive(Debug, serde::Deserialize)]
pub struct PathQuery {
    /// The path in the container.
    #[serde(default)]
    pub path: Option<String>,
}

/// `PUT /containers/{id}/archive`'s query.
#[derive(Debug, serde::Deserialize, PartialEq)]
pub struct PutQuery {
    /// The directory to extract into.
    #[serde(default)]
    pub path: Option<String>,
    /// Refuse to replace a directory with a non-directory and the reverse.
    #[serde(rename = "noOverwriteDirNonDir", default, deserialize_with = "berth_api::query::de_bool")]
    pub no_overwrite_dir_non_dir: bool,
    /// Own the files as the container's user.
    #[serde(rename = "copyUIDGID", default, deserialize_with = "berth_api::query::de_bool")]
    pub copy_uid_gid: bool,
}

fn required_path(p: Option<String>) -> Result<String, Error> {
    p.filter(|p| !p.is_empty()).ok_or_else(|| Error::InvalidArgument("path cannot be empty".into()))
}

/// A tar stream as a 200 body; an error mid-stream cuts the connection (the client sees a
/// truncated tar, never a well-formed partial one).
fn tar_response(rx: TarStream) -> Response {
    let s = tokio_stream(rx);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from_stream(s))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn tokio_stream(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) })
}

async fn head_archive(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    let stat = e.container_stat_path(&id, &required_path(q.path)?).await?;
    let mut r = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&stat.to_header()) {
        r.headers_mut().insert(PATH_STAT_HEADER, v);
    }
    Ok(r)
}

async fn get_archive(
    State(e): State<Arc<Engine>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> ApiResult<Response> {
    let (stat, rx) = e.container_archive(&id, &required_path(q.path)?).await?;
    let mut r = tar_response(rx);
    if let Ok(v) = HeaderValue::from_str(&stat.to_header()) {
        r.headers_mut().insert(PATH_STAT_HEADER, v);
    }
    Ok(r)
}

async fn put_archive(State(e): State<Arc<Engine>>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let q: PutQuery = reply::query(req.uri().query())?;
    let path = required_path(q.path)?;
    let src = Box::new(body_reader(req.into_body()));
    e.container_extract(&id, &path, q.copy_uid_gid, q.no_overwrite_dir_non_dir, src).await?;
    Ok(StatusCode::OK.into_response())
}

async fn export(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(tar_response(e.container_export(&id).await?))
}

async fn changes(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = e.container_changes(&id).await?;
    if c.is_empty() {
        // dockerd answers `null` when nothing changed.
        return Ok(json(StatusCode::OK, &serde_json::Value::Null));
    }
    Ok(json(StatusCode::OK, &c))
}

/// `GET /images/get?names=…` (`names` repeats).
async fn save(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let names: Vec<String> = form_names(req.uri().query().unwrap_or(""));
    save_names(&e, names).await
}

/// The `names` values of a query, in order.
fn form_names(q: &str) -> Vec<String> {
    berth_api::query::from_query::<NamesQuery>(q).map(|n| n.names).unwrap_or_default()
}

#[derive(serde::Deserialize, Default)]
struct NamesQuery {
    #[serde(default)]
    names: Vec<String>,
}

/// Streams the archive of `names` (also `GET /images/{name}/get`).
pub async fn save_names(e: &Arc<Engine>, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(Error::InvalidArgument("no images specified".into()).into());
    }
    Ok(tar_response(e.save_images(names).await?))
}

#[derive(serde::Deserialize, Default)]
struct LoadQuery {
    #[serde(default, deserialize_with = "berth_api::query::de_bool")]
    quiet: bool,
}

fn load_line(ev: &LoadEvent) -> berth_api::JsonMessage {
    match ev {
        LoadEvent::Progress { id, current, total } => berth_api::JsonMessage {
            status: Some("Loading layer".into()),
            id: Some(id.clone()),
            progress: Some(progress_bar(*current, *total)),
            ..Default::default()
        },
        LoadEvent::Loaded(t) => {
            berth_api::JsonMessage { stream: Some(format!("Loaded image: {t}\n")), ..Default::default() }
        }
        LoadEvent::LoadedId(d) => {
            berth_api::JsonMessage { stream: Some(format!("Loaded image ID: {d}\n")), ..Default::default() }
        }
    }
}

/// Docker's progress text: a 50-column bar and the sizes (`[==>   ] 1.05MB/3.15MB`).
fn progress_bar(current: u64, total: u64) -> String {
    let width = 50;
    let filled = (current.min(total) * width as u64).checked_div(total).map_or(width, |f| f as usize);
    let bar = if filled >= width {
        "=".repeat(width)
    } else {
        format!("{}>{}", "=".repeat(filled), " ".repeat(width - filled - 1))
    };
    format!("[{bar}] {}/{}", human(current), human(total))
}

/// Decimal sizes as Docker's `units.HumanSize` writes them.
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", units[i])
}

fn encode_line(m: &berth_api::JsonMessage) -> Bytes {
    let mut b = serde_json::to_vec(m).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// `POST /images/load?quiet=`: an error before any output is the HTTP status (as dockerd,
/// whose writer has not flushed yet); after that, an `error` message ends the stream.
async fn load(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q: LoadQuery = reply::query(req.uri().query())?;
    let src = Box::new(body_reader(req.into_body()));
    let mut rx = e.load_images(src, q.quiet);
    let first = match rx.recv().await {
        Some(Ok(ev)) => encode_line(&load_line(&ev)),
        Some(Err(err)) => return Err(err.into()),
        None => Bytes::new(),
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = match rx.recv().await? {
            Ok(ev) => encode_line(&load_line(&ev)),
            Err(err) => encode_line(&berth_api::JsonMessage {
                error: Some(err.to_string()),
                error_detail: Some(berth_api::ErrorBody { message: err.to_string(), code: None }),
                ..Default::default()
            }),
        };
        Some((Ok::<_, Infallible>(item), rx))
    });
    let s = futures_util::stream::once(async move { Ok::<_, Infallible>(first) }).chain(rest);
    Ok(reply::streaming("application/json", s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_as_dockers() {
        assert_eq!(form_names("names=busybox&names=alpine%3A3"), ["busybox", "alpine:3"]);
        let q: PutQuery = reply::query(Some("path=%2Ftmp&noOverwriteDirNonDir=true&copyUIDGID=1")).unwrap();
        assert_eq!(q, PutQuery { path: Some("/tmp".into()), no_overwrite_dir_non_dir: true, copy_uid_gid: true });
        assert!(required_path(None).is_err());
        let m = load_line(&LoadEvent::Loaded("busybox:latest".into()));
        assert_eq!(m.stream.as_deref(), Some("Loaded image: busybox:latest\n"));
    }
}
