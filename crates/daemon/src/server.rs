//! The Engine API over HTTP: a hyper server on unix sockets (with connection upgrades for
//! attach), the `/v1.NN` prefix check, thin axum handlers that decode a request, make one
//! engine call and encode the answer, and the ONE place an [`ErrorKind`] becomes an HTTP
//! status.

use std::convert::Infallible;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_api::models::{ContainerCreateBody, ContainerCreateResponse, ContainerWaitResponse, ImageDeleteResponseItem};
use berth_api::query;
use berth_base::ErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use crate::engine::{AttachStreams, Engine, LogOptions};
use crate::error::Error;
use crate::views;

pub mod tcp;

/// An error on its way to the client as `{"message": …}` with Docker's status code.
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// The one mapping from error kinds to HTTP statuses.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unavailable => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(status: StatusCode, message: String) -> Response {
    if status == StatusCode::NOT_MODIFIED {
        return status.into_response();
    }
    let body = serde_json::to_vec(&berth_api::ErrorBody { message }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind());
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        } else {
            tracing::debug!(error = %self.0, "request refused");
        }
        error_response(status, self.0.to_string())
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn bad_query(e: impl std::fmt::Display) -> ApiError {
    ApiError(Error::InvalidArgument(e.to_string()))
}

fn parse_query<T: serde::de::DeserializeOwned>(q: Option<&str>) -> ApiResult<T> {
    serde_urlencoded::from_str(q.unwrap_or("")).map_err(bad_query)
}

/// Builds the router over an engine.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/_ping", get(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/containers/create", post(create_container))
        .route("/containers/json", get(list_containers))
        .route("/containers/{id}/json", get(inspect_container))
        .route("/containers/{id}/start", post(start_container))
        .route("/containers/{id}/stop", post(stop_container))
        .route("/containers/{id}/restart", post(restart_container))
        .route("/containers/{id}/kill", post(kill_container))
        .route("/containers/{id}/wait", post(wait_container))
        .route("/containers/{id}/attach", post(attach_container))
        .route("/containers/{id}/resize", post(resize_container))
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}", axum::routing::delete(remove_container))
        .route("/build", post(build))
        .route("/build/prune", post(build_prune))
        .route("/system/df", get(system_df))
        .route("/images/json", get(list_images))
        .route("/images/create", post(create_image))
        .route("/images/{*rest}", get(image_get).post(image_post).delete(remove_image))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "page not found".to_owned()) })
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
    Ok(())
}

/// Serves the API on a unix socket until `shutdown` resolves.
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
    let app = router(engine);
    let mut shutdown = shutdown;
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        tokio::spawn(serve_connection(app.clone(), stream));
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// Serves the API's HTTP/1.1 (with upgrades for attach) on one accepted connection, over
/// any stream: a unix socket, TCP or TLS.
pub(crate) async fn serve_connection<I>(app: Router, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move {
            let mut req = req.map(Body::new);
            if let Err(resp) = strip_version(&mut req) {
                return Ok::<_, Infallible>(*resp);
            }
            tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
            app.oneshot(req).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc).with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn ping(method: Method) -> Response {
    let mut r = if method == Method::HEAD { Response::new(Body::empty()) } else { Response::new(Body::from("OK")) };
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(berth_api::API_VERSION));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn version(State(e): State<Arc<Engine>>) -> Response {
    json(StatusCode::OK, &crate::system::version(&e))
}

async fn info(State(e): State<Arc<Engine>>) -> Response {
    json(StatusCode::OK, &crate::system::info(&e).await)
}

async fn create_container(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q: query::CreateContainer = parse_query(req.uri().query())?;
    let body = axum::body::to_bytes(req.into_body(), 16 * 1024 * 1024).await.map_err(bad_query)?;
    let body: ContainerCreateBody = if body.is_empty() {
        ContainerCreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| bad_query(format!("invalid JSON: {err}")))?
    };
    let c = e.create_container(q.name, body).await?;
    Ok(json(StatusCode::CREATED, &ContainerCreateResponse { id: c.id, warnings: c.warnings }))
}

async fn list_containers(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q: query::ListContainers = parse_query(req.uri().query())?;
    let now = chrono::Utc::now();
    let rows: Vec<_> = e.list_containers(&q).await?.iter().map(|r| views::container_summary(r, now)).collect();
    Ok(json(StatusCode::OK, &rows))
}

async fn inspect_container(State(e): State<Arc<Engine>>, UrlPath(id): UrlPath<String>) -> ApiResult<Response> {
    let c = e.get(&id)?;
    let rec = c.snapshot();
    Ok(json(StatusCode::OK, &views::container_inspect(&rec, &e.paths(&rec.id))))
}

async fn start_container(State(e): State<Arc<Engine>>, UrlPath(id): UrlPath<String>) -> ApiResult<StatusCode> {
    e.start_container(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop_container(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> ApiResult<StatusCode> {
    let q: query::StopContainer = parse_query(req.uri().query())?;
    e.stop_container(&id, q.t, q.signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart_container(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> ApiResult<StatusCode> {
    let q: query::StopContainer = parse_query(req.uri().query())?;
    e.restart_container(&id, q.t, q.signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill_container(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> ApiResult<StatusCode> {
    let q: query::KillContainer = parse_query(req.uri().query())?;
    e.kill_container(&id, q.signal.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Headers go out at once (clients such as the docker CLI block until they arrive, then
/// start the container); the body follows when the condition is met.
async fn wait_container(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> ApiResult<Response> {
    let q: query::WaitContainer = parse_query(req.uri().query())?;
    let cond = crate::engine::WaitCondition::parse(q.condition.as_deref())?;
    let fut = e.wait_container(&id, cond)?;
    let stream = futures_util::stream::once(async move {
        let code = fut.await;
        let body = serde_json::to_vec(&ContainerWaitResponse { status_code: code, error: None }).unwrap_or_default();
        Ok::<_, Infallible>(Bytes::from(body))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

async fn attach_container(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let q: query::AttachContainer = parse_query(req.uri().query())?;
    let c = e.get(&id)?;
    let tty = c.snapshot().tty();
    let upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let streams = AttachStreams { stdin: q.stdin, stdout: q.stdout, stderr: q.stderr, logs: q.logs, stream: q.stream };
    let content_type =
        if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    let wants_upgrade = req.headers().get(header::UPGRADE).is_some();
    let Some(upgrade) = upgrade.filter(|_| wants_upgrade) else {
        return Err(bad_query("attach needs a connection upgrade (Connection: Upgrade, Upgrade: tcp)"));
    };
    tokio::spawn(async move {
        match upgrade.await {
            Ok(up) => e.attach(c, streams, Box::new(TokioIo::new(up))).await,
            Err(err) => tracing::debug!(error = %err, "attach upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

async fn resize_container(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> ApiResult<StatusCode> {
    let q: query::Resize = parse_query(req.uri().query())?;
    e.resize(&id, q.h.unwrap_or(0), q.w.unwrap_or(0)).await?;
    Ok(StatusCode::OK)
}

fn parse_time(s: Option<&str>) -> ApiResult<Option<f64>> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match s.parse::<f64>() {
            Ok(0.0) => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(bad_query(format!("invalid value for time: {s}"))),
        },
    }
}

async fn container_logs(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> ApiResult<Response> {
    let q: query::Logs = parse_query(req.uri().query())?;
    let tail = match q.tail.as_deref() {
        None | Some("") | Some("all") => None,
        Some(t) => Some(t.parse::<usize>().map_err(|_| bad_query(format!("invalid value for tail: {t}")))?),
    };
    let opts = LogOptions {
        follow: q.follow,
        stdout: q.stdout,
        stderr: q.stderr,
        since: parse_time(q.since.as_deref())?,
        until: parse_time(q.until.as_deref())?,
        timestamps: q.timestamps,
        tail,
    };
    let (tty, rx) = e.logs(&id, opts).await?;
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) });
    let ct = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

async fn remove_container(
    State(e): State<Arc<Engine>>,
    UrlPath(id): UrlPath<String>,
    req: Request,
) -> ApiResult<StatusCode> {
    let q: query::RemoveContainer = parse_query(req.uri().query())?;
    e.remove_container(&id, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_images(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q: query::ListImages = parse_query(req.uri().query())?;
    let images = e.list_images(&q.filters).await?;
    let recs = e.records();
    let rows: Vec<_> = images
        .iter()
        .map(|img| {
            let id = img.id.to_string();
            let n = recs.iter().filter(|r| r.image_id == id).count() as i64;
            views::image_summary(img, n)
        })
        .collect();
    Ok(json(StatusCode::OK, &rows))
}

/// Feeds an async request body to blocking readers (the image store reads with `std::io::Read`).
struct BodyReader {
    rx: std::sync::mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

fn body_reader(body: Body) -> BodyReader {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    tokio::spawn(async move {
        let mut s = body.into_data_stream();
        while let Some(chunk) = s.next().await {
            let item = chunk.map_err(|e| format!("reading the request body: {e}"));
            let stop = item.is_err();
            let tx = tx.clone();
            // The channel is bounded so a slow import applies back-pressure to the upload.
            let sent = tokio::task::spawn_blocking(move || tx.send(item).is_ok()).await.unwrap_or(false);
            if stop || !sent {
                break;
            }
        }
    });
    BodyReader { rx, cur: Bytes::new() }
}

/// `POST /build`: the build runs while its progress streams back as JSON lines; a failure
/// after the stream began is reported in it, as Docker does. A client that goes away
/// cancels the build.
async fn build(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q = query::Build::parse(req.uri().query().unwrap_or("")).map_err(bad_query)?;
    let dir =
        req.headers().get(berth_api::BERTH_CONTEXT_DIR).and_then(|v| v.to_str().ok()).map(std::path::PathBuf::from);
    let source = match dir {
        Some(d) if d.is_absolute() && d.is_dir() => crate::engine::ContextSource::Dir(d),
        Some(d) => return Err(bad_query(format!("unable to prepare context: path {:?} not found", d.display()))),
        None => match q.remote.clone() {
            Some(url) => crate::engine::ContextSource::Remote(url),
            None => crate::engine::ContextSource::Tar(Box::new(body_reader(req.into_body()))),
        },
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<berth_api::JsonMessage>(256);
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch_tx = tx.clone();
    let watch_cancel = cancel.clone();
    // Holds a sender while it waits, so it must be stopped when the build ends or the
    // response stream would never see its end.
    let watcher = tokio::spawn(async move {
        watch_tx.closed().await;
        tracing::debug!("build client went away: cancelling the build");
        watch_cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    tokio::spawn(async move {
        let result = e.build(q, source, tx.clone(), cancel).await;
        watcher.abort();
        if let Err(err) = result {
            let msg = err.to_string();
            let _ = tx
                .send(berth_api::JsonMessage {
                    error: Some(msg.clone()),
                    error_detail: Some(berth_api::ErrorBody { message: msg }),
                    ..Default::default()
                })
                .await;
        }
    });
    // A silent RUN step writes nothing for a long time, and only a failed write tells the
    // server its client left: a newline each second (JSON decoders skip whitespace between
    // values) makes a vanished client drop this stream, which cancels the build.
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        tokio::select! {
            m = rx.recv() => {
                let mut b = serde_json::to_vec(&m?).unwrap_or_default();
                b.extend_from_slice(b"\r\n");
                Some((Ok::<_, Infallible>(Bytes::from(b)), rx))
            }
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                Some((Ok::<_, Infallible>(Bytes::from_static(b"\n")), rx))
            }
        }
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
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

async fn build_prune(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    #[derive(serde::Deserialize)]
    struct Q {
        #[serde(default, deserialize_with = "query::de_bool")]
        all: bool,
        #[serde(default)]
        filters: query::Filters,
    }
    let q: Q = parse_query(req.uri().query())?;
    let until = match q.filters.get("until").first() {
        Some(u) => Some(parse_until(u).ok_or_else(|| bad_query(format!("invalid filter 'until={u}'")))?),
        None => None,
    };
    let r = e.builder_prune(q.all, until).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "CachesDeleted": r.removed, "SpaceReclaimed": r.reclaimed })))
}

/// `GET /system/df` in the API 1.41 shape the docker CLI reads.
async fn system_df(State(e): State<Arc<Engine>>) -> ApiResult<Response> {
    let images = e.list_images(&query::Filters::default()).await?;
    let recs = e.records();
    let now = chrono::Utc::now();
    let image_rows: Vec<_> = images
        .iter()
        .map(|img| {
            let id = img.id.to_string();
            views::image_summary(img, recs.iter().filter(|r| r.image_id == id).count() as i64)
        })
        .collect();
    let layers_size: i64 = images.iter().map(|i| i.size as i64).sum();
    let containers: Vec<_> = recs
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(views::container_summary(r, now)).unwrap_or_default();
            v["SizeRw"] = serde_json::json!(0);
            v["SizeRootFs"] = serde_json::json!(0);
            v
        })
        .collect();
    let cache = e.build_cache_usage().await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "LayersSize": layers_size, "Images": image_rows, "Containers": containers,
            "Volumes": [], "BuildCache": cache,
        }),
    ))
}

fn json_lines(msgs: &[berth_api::JsonMessage]) -> Response {
    let mut out = Vec::new();
    for m in msgs {
        if let Ok(b) = serde_json::to_vec(m) {
            out.extend_from_slice(&b);
            out.extend_from_slice(b"\r\n");
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response()
}

async fn create_image(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let q: query::CreateImage = parse_query(req.uri().query())?;
    if let Some(from) = q.from_image.clone() {
        let img = e.pull_image(&from, q.tag.as_deref()).await?;
        let r = berth_base::Reference::parse(&from).map(|r| r.familiar()).unwrap_or(from);
        let tag = q.tag.clone().unwrap_or_else(|| "latest".to_owned());
        return Ok(json_lines(&[
            berth_api::JsonMessage {
                status: Some(format!("Pulling from {r}")),
                id: Some(tag.clone()),
                ..Default::default()
            },
            berth_api::JsonMessage { status: Some(format!("Digest: {}", img.manifest_digest)), ..Default::default() },
            berth_api::JsonMessage {
                status: Some(format!("Status: Image is up to date for {r}:{tag}")),
                ..Default::default()
            },
        ]));
    }
    let reader = body_reader(req.into_body());
    let img = e.import_image(Box::new(reader), q).await?;
    Ok(json_lines(&[berth_api::JsonMessage { status: Some(img.id.to_string()), ..Default::default() }]))
}

/// `/images/{name}/json` and `/images/{name}/history`; names may contain slashes.
async fn image_get(State(e): State<Arc<Engine>>, UrlPath(rest): UrlPath<String>) -> ApiResult<Response> {
    let (name, op) =
        rest.rsplit_once('/').ok_or_else(|| ApiError(Error::NotImplemented("page not found".to_owned())))?;
    match op {
        "json" => Ok(json(StatusCode::OK, &views::image_inspect(&e.image(name).await?))),
        "history" => {
            let h: Vec<_> = e.image_history(name).await?.iter().map(views::history_item).collect();
            Ok(json(StatusCode::OK, &h))
        }
        _ => Ok(error_response(StatusCode::NOT_FOUND, "page not found".to_owned())),
    }
}

async fn image_post(
    State(e): State<Arc<Engine>>,
    UrlPath(rest): UrlPath<String>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    let _ = headers;
    let (name, op) =
        rest.rsplit_once('/').ok_or_else(|| ApiError(Error::InvalidArgument("page not found".to_owned())))?;
    match op {
        "tag" => {
            let q: query::TagImage = parse_query(req.uri().query())?;
            e.tag_image(name, &q.repo, q.tag.as_deref()).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        "push" => Err(ApiError(Error::NotImplemented(
            "push is not supported yet: this berth build has no registry client".to_owned(),
        ))),
        _ => Ok(error_response(StatusCode::NOT_FOUND, "page not found".to_owned())),
    }
}

async fn remove_image(
    State(e): State<Arc<Engine>>,
    UrlPath(name): UrlPath<String>,
    req: Request,
) -> ApiResult<Response> {
    let q: query::RemoveImage = parse_query(req.uri().query())?;
    let items: Vec<ImageDeleteResponseItem> = e
        .remove_image(&name, q.force, q.noprune)
        .await?
        .into_iter()
        .map(|i| match i {
            berth_image::DeleteItem::Untagged(s) => ImageDeleteResponseItem { untagged: Some(s), deleted: None },
            berth_image::DeleteItem::Deleted(s) => ImageDeleteResponseItem { untagged: None, deleted: Some(s) },
        })
        .collect();
    Ok(json(StatusCode::OK, &items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix() {
        let mut r = Request::builder().uri("/v1.41/containers/json?all=1").body(Body::empty()).unwrap();
        strip_version(&mut r).unwrap();
        assert_eq!(r.uri().to_string(), "/containers/json?all=1");
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
