//! Async Engine API client: one HTTP/1.1 connection per request over a unix socket, typed
//! methods for the endpoints berth's CLI uses, and upgraded streams for attach.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UnixStream;

use crate::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerWaitResponse,
    ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImageSummary, SystemInfo, SystemVersion,
};
use crate::query;
use crate::{API_VERSION, BERTH_CONTEXT_DIR, ErrorBody, JsonMessage};

/// A request body: empty, a buffer, or a stream read from a file or stdin.
pub type Body = BoxBody<Bytes, io::Error>;

/// The bidirectional stream of an attached container once the connection is upgraded.
pub type AttachIo = TokioIo<hyper::upgrade::Upgraded>;

/// Everything that can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (or it does not exist).
    #[error("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")]
    Connect {
        /// The host as the user gave it, e.g. `unix:///run/berth/berth.sock`.
        host: String,
        /// Why the connection failed.
        #[source]
        source: io::Error,
    },
    /// The daemon answered with a non-2xx status; `message` is Docker's `{"message": …}`.
    #[error("{message}")]
    Daemon {
        /// HTTP status code.
        status: u16,
        /// The daemon's error message.
        message: String,
    },
    /// The `-H` value names a transport berth's client does not speak.
    #[error("unsupported host {0}: TLS/tcp is not supported yet, use unix:///path/to.sock")]
    UnsupportedHost(String),
    /// HTTP-level failure after connecting.
    #[error("error during connect: {0}")]
    Http(#[from] hyper::Error),
    /// A request could not be built (bad path or header).
    #[error("invalid request: {0}")]
    Request(String),
    /// A response body was not the JSON the endpoint documents.
    #[error("invalid response from daemon for {what}: {source}")]
    Decode {
        /// Which endpoint's answer failed to decode.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading a request body or writing through an attached stream failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The daemon did not switch protocols for attach.
    #[error("attach: the daemon did not upgrade the connection (status {0})")]
    NoUpgrade(u16),
}

impl ClientError {
    /// The error class, derived from the HTTP status for daemon errors.
    pub fn kind(&self) -> berth_base::ErrorKind {
        use berth_base::ErrorKind;
        match self {
            ClientError::Daemon { status, .. } => match *status {
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                400 => ErrorKind::InvalidArgument,
                304 => ErrorKind::NotModified,
                403 => ErrorKind::Forbidden,
                503 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            ClientError::Connect { .. } => ErrorKind::Unavailable,
            ClientError::UnsupportedHost(_) | ClientError::Request(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }

    /// The HTTP status of a daemon error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Result alias for client calls.
pub type Result<T> = std::result::Result<T, ClientError>;

/// An Engine API client bound to one daemon socket.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    socket: PathBuf,
}

/// Builds an empty body.
pub fn empty_body() -> Body {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
}

/// Builds a body from bytes already in memory.
pub fn full_body(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).map_err(|never| match never {}).boxed()
}

/// Builds a body that streams `reader` to the daemon in 64 KiB chunks.
pub fn reader_body<R: AsyncRead + Send + Sync + Unpin + 'static>(reader: R) -> Body {
    let s = stream::unfold(Some(reader), |state| async move {
        let mut r = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some(r)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    StreamBody::new(s).boxed()
}

/// A response body read chunk by chunk (logs, raw streams).
pub struct ByteStream {
    body: Incoming,
}

impl ByteStream {
    /// The next chunk of data, `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        loop {
            match self.body.frame().await? {
                Ok(f) => {
                    if let Ok(d) = f.into_data() {
                        return Some(Ok(d));
                    }
                }
                Err(e) => return Some(Err(ClientError::Http(e))),
            }
        }
    }
}

/// A JSON-lines progress stream (pull, import, build).
pub struct JsonStream {
    bytes: ByteStream,
    buf: Vec<u8>,
    done: bool,
}

impl JsonStream {
    /// The next message, `None` at the end. Blank lines are skipped.
    pub async fn next_message(&mut self) -> Option<Result<JsonMessage>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(decode(&line, "progress stream"));
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let line = std::mem::take(&mut self.buf);
                return Some(decode(&line, "progress stream"));
            }
            match self.bytes.next_chunk().await {
                Some(Ok(c)) => self.buf.extend_from_slice(&c),
                Some(Err(e)) => {
                    self.done = true;
                    self.buf.clear();
                    return Some(Err(e));
                }
                None => self.done = true,
            }
        }
    }
}

/// A `wait` whose request the daemon has accepted; the body arrives when the condition is met.
pub struct WaitHandle {
    body: Incoming,
}

impl WaitHandle {
    /// Waits for the container to reach the condition and returns its exit status.
    pub async fn result(self) -> Result<ContainerWaitResponse> {
        let bytes = self.body.collect().await?.to_bytes();
        decode(&bytes, "container wait")
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| ClientError::Decode { what: what.to_owned(), source })
}

fn encode_query<Q: Serialize>(q: &Q) -> Result<String> {
    serde_urlencoded::to_string(q).map_err(|e| ClientError::Request(e.to_string()))
}

/// Escapes a path segment the daemon will read back as one name (names and references never
/// contain these characters in practice, but a typo must not become another endpoint).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

/// Parses Docker's `{"message": …}` from an error body, falling back to the raw text.
fn error_message(status: StatusCode, bytes: &[u8]) -> String {
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(bytes) {
        return b.message;
    }
    let text = String::from_utf8_lossy(bytes).trim().to_owned();
    if text.is_empty() { status.canonical_reason().unwrap_or("unknown error").to_owned() } else { text }
}

impl Client {
    /// A client for `host`: `unix:///path.sock` or a bare socket path. `tcp://` is refused.
    pub fn new(host: &str) -> Result<Client> {
        let socket = if let Some(p) = host.strip_prefix("unix://") {
            p
        } else if host.starts_with('/') {
            host
        } else {
            return Err(ClientError::UnsupportedHost(host.to_owned()));
        };
        if socket.is_empty() {
            return Err(ClientError::UnsupportedHost(host.to_owned()));
        }
        let host = if host.starts_with("unix://") { host.to_owned() } else { format!("unix://{host}") };
        Ok(Client { host, socket: PathBuf::from(socket) })
    }

    /// The host this client talks to, in `unix://` form.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The socket path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    async fn connect(&self) -> Result<TokioIo<UnixStream>> {
        UnixStream::connect(&self.socket)
            .await
            .map(TokioIo::new)
            .map_err(|source| ClientError::Connect { host: self.host.clone(), source })
    }

    fn build(&self, method: Method, path: &str, query: Option<&str>, body: Body) -> Result<Request<Body>> {
        let mut uri = format!("/v{API_VERSION}{path}");
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            uri.push('?');
            uri.push_str(q);
        }
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "docker")
            .header(header::USER_AGENT, concat!("berth-cli/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .map_err(|e| ClientError::Request(e.to_string()))
    }

    async fn send(&self, req: Request<Body>, upgrades: bool) -> Result<Response<Incoming>> {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        if upgrades {
            tokio::spawn(async move {
                let _ = conn.with_upgrades().await;
            });
        } else {
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        Ok(sender.send_request(req).await?)
    }

    /// Raw escape hatch: sends any request and returns the response whatever its status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: Option<Body>,
    ) -> Result<Response<Incoming>> {
        let req = self.build(method, path, query, body.unwrap_or_else(empty_body))?;
        self.send(req, false).await
    }

    /// Sends a request and turns a non-2xx answer into [`ClientError::Daemon`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: Option<Body>,
    ) -> Result<Response<Incoming>> {
        let resp = self.request(method, path, query, body).await?;
        check(resp).await
    }

    async fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
        body: Option<Body>,
    ) -> Result<T> {
        let resp = self.call(method, path, query, body).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        decode(&bytes, path)
    }

    async fn call_raw(&self, method: Method, path: &str, query: Option<&str>) -> Result<Bytes> {
        let resp = self.call(method, path, query, None).await?;
        Ok(resp.into_body().collect().await?.to_bytes())
    }

    /// `GET /_ping`: Ok when the daemon answers.
    pub async fn ping(&self) -> Result<()> {
        self.call_raw(Method::GET, "/_ping", None).await.map(|_| ())
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<SystemVersion> {
        self.call_json(Method::GET, "/version", None, None).await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<SystemInfo> {
        self.call_json(Method::GET, "/info", None, None).await
    }

    /// `GET /info` as the daemon sent it, for templates over fields the models may not know.
    pub async fn info_raw(&self) -> Result<serde_json::Value> {
        self.call_json(Method::GET, "/info", None, None).await
    }

    /// `POST /containers/create`.
    pub async fn create_container(
        &self,
        q: &query::CreateContainer,
        body: &ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Request(e.to_string()))?;
        let req = self.build(Method::POST, "/containers/create", Some(&encode_query(q)?), full_body(json))?;
        let mut req = req;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let resp = check(self.send(req, false).await?).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        decode(&bytes, "container create")
    }

    /// `POST /containers/{id}/start`. A 304 (already started) is not an error.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let resp = self.request(Method::POST, &format!("/containers/{}/start", seg(id)), None, None).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        check(resp).await.map(|_| ())
    }

    /// `POST /containers/{id}/wait`: returns once the daemon has accepted the wait (its
    /// response headers arrived), so a following start cannot race past it.
    pub async fn wait_container(&self, id: &str, q: &query::WaitContainer) -> Result<WaitHandle> {
        let resp =
            self.call(Method::POST, &format!("/containers/{}/wait", seg(id)), Some(&encode_query(q)?), None).await?;
        Ok(WaitHandle { body: resp.into_body() })
    }

    /// `POST /containers/{id}/attach` with a protocol upgrade; the returned stream carries the
    /// container's output (multiplexed unless it has a tty) and accepts its stdin.
    pub async fn attach_container(&self, id: &str, q: &query::AttachContainer) -> Result<AttachIo> {
        let mut req = self.build(
            Method::POST,
            &format!("/containers/{}/attach", seg(id)),
            Some(&encode_query(q)?),
            empty_body(),
        )?;
        req.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("Upgrade"));
        req.headers_mut().insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
        let resp = self.send(req, true).await?;
        let status = resp.status();
        if status != StatusCode::SWITCHING_PROTOCOLS && status != StatusCode::OK {
            return Err(check(resp).await.err().unwrap_or(ClientError::NoUpgrade(status.as_u16())));
        }
        let upgraded = hyper::upgrade::on(resp).await.map_err(|_| ClientError::NoUpgrade(status.as_u16()))?;
        Ok(TokioIo::new(upgraded))
    }

    /// `POST /containers/{id}/resize`.
    pub async fn resize_container(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let qs = format!("h={height}&w={width}");
        self.call_raw(Method::POST, &format!("/containers/{}/resize", seg(id)), Some(&qs)).await.map(|_| ())
    }

    /// `GET /containers/json`.
    pub async fn list_containers(&self, q: &query::ListContainers) -> Result<Vec<ContainerSummary>> {
        self.call_json(Method::GET, "/containers/json", Some(&encode_query(q)?), None).await
    }

    /// `GET /containers/{id}/json`, typed.
    pub async fn inspect_container(&self, id: &str, q: &query::InspectContainer) -> Result<ContainerInspectResponse> {
        self.call_json(Method::GET, &format!("/containers/{}/json", seg(id)), Some(&encode_query(q)?), None).await
    }

    /// `GET /containers/{id}/json`, the daemon's bytes untouched (field order kept).
    pub async fn inspect_container_raw(&self, id: &str, q: &query::InspectContainer) -> Result<Bytes> {
        self.call_raw(Method::GET, &format!("/containers/{}/json", seg(id)), Some(&encode_query(q)?)).await
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove_container(&self, id: &str, q: &query::RemoveContainer) -> Result<()> {
        self.call_raw(Method::DELETE, &format!("/containers/{}", seg(id)), Some(&encode_query(q)?)).await.map(|_| ())
    }

    /// `GET /containers/{id}/logs`: a raw stream (multiplexed unless the container has a tty).
    pub async fn container_logs(&self, id: &str, q: &query::Logs) -> Result<ByteStream> {
        let resp =
            self.call(Method::GET, &format!("/containers/{}/logs", seg(id)), Some(&encode_query(q)?), None).await?;
        Ok(ByteStream { body: resp.into_body() })
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill_container(&self, id: &str, q: &query::KillContainer) -> Result<()> {
        self.call_raw(Method::POST, &format!("/containers/{}/kill", seg(id)), Some(&encode_query(q)?)).await.map(|_| ())
    }

    /// `POST /containers/{id}/stop`. A 304 (already stopped) is not an error.
    pub async fn stop_container(&self, id: &str, q: &query::StopContainer) -> Result<()> {
        let resp =
            self.request(Method::POST, &format!("/containers/{}/stop", seg(id)), Some(&encode_query(q)?), None).await?;
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        check(resp).await.map(|_| ())
    }

    /// `POST /images/create` (pull with `fromImage`, import with `fromSrc=-` and a body).
    pub async fn create_image(&self, q: &query::CreateImage, body: Option<Body>) -> Result<JsonStream> {
        let mut req =
            self.build(Method::POST, "/images/create", Some(&encode_query(q)?), body.unwrap_or_else(empty_body))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-tar"));
        let resp = check(self.send(req, false).await?).await?;
        Ok(JsonStream { bytes: ByteStream { body: resp.into_body() }, buf: Vec::new(), done: false })
    }

    /// `POST /build` with a context `body` (a tar, or empty with `context_dir` naming a
    /// directory on the daemon's machine); the answer is the build's progress stream.
    pub async fn build_image(&self, q: &query::Build, context_dir: Option<&str>, body: Body) -> Result<JsonStream> {
        let mut req = self.build(Method::POST, "/build", Some(&q.to_query()), body)?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-tar"));
        if let Some(dir) = context_dir {
            let v = header::HeaderValue::from_str(dir).map_err(|e| ClientError::Request(e.to_string()))?;
            req.headers_mut().insert(BERTH_CONTEXT_DIR, v);
        }
        let resp = check(self.send(req, false).await?).await?;
        Ok(JsonStream { bytes: ByteStream { body: resp.into_body() }, buf: Vec::new(), done: false })
    }

    /// Pulls `image` (`fromImage`, optional `tag`).
    pub async fn pull_image(&self, image: &str, tag: Option<&str>, platform: Option<&str>) -> Result<JsonStream> {
        let q = query::CreateImage {
            from_image: Some(image.to_owned()),
            tag: tag.map(str::to_owned),
            platform: platform.map(str::to_owned),
            ..Default::default()
        };
        self.create_image(&q, None).await
    }

    /// Imports a rootfs tarball streamed from `body` (`fromSrc=-`).
    pub async fn import_image(&self, q: &query::CreateImage, body: Body) -> Result<JsonStream> {
        let mut q = q.clone();
        if q.from_src.is_none() {
            q.from_src = Some("-".to_owned());
        }
        self.create_image(&q, Some(body)).await
    }

    /// `GET /images/json`.
    pub async fn list_images(&self, q: &query::ListImages) -> Result<Vec<ImageSummary>> {
        self.call_json(Method::GET, "/images/json", Some(&encode_query(q)?), None).await
    }

    /// `GET /images/{name}/json`, typed.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        self.call_json(Method::GET, &format!("/images/{}/json", seg(name)), None, None).await
    }

    /// `GET /images/{name}/json`, the daemon's bytes untouched.
    pub async fn inspect_image_raw(&self, name: &str) -> Result<Bytes> {
        self.call_raw(Method::GET, &format!("/images/{}/json", seg(name)), None).await
    }

    /// `DELETE /images/{name}`.
    pub async fn remove_image(&self, name: &str, q: &query::RemoveImage) -> Result<Vec<ImageDeleteResponseItem>> {
        self.call_json(Method::DELETE, &format!("/images/{}", seg(name)), Some(&encode_query(q)?), None).await
    }

    /// `POST /images/{name}/tag`.
    pub async fn tag_image(&self, name: &str, q: &query::TagImage) -> Result<()> {
        self.call_raw(Method::POST, &format!("/images/{}/tag", seg(name)), Some(&encode_query(q)?)).await.map(|_| ())
    }

    /// `POST /build/prune`: `{"CachesDeleted": [...], "SpaceReclaimed": n}`.
    pub async fn prune_build_cache(&self, all: bool, filters: &query::Filters) -> Result<serde_json::Value> {
        let mut q = format!("all={}", if all { 1 } else { 0 });
        if !filters.is_empty() {
            q.push_str("&filters=");
            q.push_str(&serde_urlencoded::to_string([("", filters.to_json())]).unwrap_or_default()[1..]);
        }
        self.call_json(Method::POST, "/build/prune", Some(&q), None).await
    }

    /// `GET /system/df`, as raw JSON (the 1.41 shape).
    pub async fn system_df(&self) -> Result<serde_json::Value> {
        self.call_json(Method::GET, "/system/df", None, None).await
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>> {
        self.call_json(Method::GET, &format!("/images/{}/history", seg(name)), None, None).await
    }
}

/// Passes a 2xx response through; turns anything else into [`ClientError::Daemon`].
async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
        return Ok(resp);
    }
    let bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    Err(ClientError::Daemon { status: status.as_u16(), message: error_message(status, &bytes) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixListener;

    #[test]
    fn host_forms() {
        assert_eq!(Client::new("unix:///run/x.sock").unwrap().socket(), std::path::Path::new("/run/x.sock"));
        assert_eq!(Client::new("/run/x.sock").unwrap().host(), "unix:///run/x.sock");
        let e = Client::new("tcp://1.2.3.4:2375").unwrap_err();
        assert!(e.to_string().contains("not supported yet"), "{e}");
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn connect_error_wording() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let c = Client::new(&format!("unix://{}", sock.display())).unwrap();
        let e = rt().block_on(c.ping()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Cannot connect to the berth daemon at unix://{}. Is the berth daemon running?", sock.display())
        );
    }

    /// Serves one canned HTTP response per connection and returns the request heads seen.
    async fn serve_once(l: &UnixListener, response: &'static [u8]) -> (String, tokio::net::UnixStream) {
        let (s, _) = l.accept().await.unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let mut s = r.into_inner();
        s.write_all(response).await.unwrap();
        (head, s)
    }

    #[test]
    fn daemon_error_and_attach() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("d.sock");
        rt().block_on(async {
            let l = UnixListener::bind(&sock).unwrap();
            let c = Client::new(sock.to_str().unwrap()).unwrap();
            let server = tokio::spawn(async move {
                let (head, _s) = serve_once(
                    &l,
                    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 35\r\n\r\n{\"message\":\"No such container: x\"}\n",
                )
                .await;
                assert!(head.starts_with("DELETE /v1.41/containers/x?force=true&v=false&link=false HTTP/1.1"), "{head}");
                let (head, mut s) = serve_once(
                    &l,
                    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
                )
                .await;
                assert!(head.contains("Upgrade: tcp") || head.contains("upgrade: tcp"), "{head}");
                s.write_all(b"hello").await.unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                assert_eq!(got, b"input");
            });
            let e = c
                .remove_container("x", &query::RemoveContainer { force: true, ..Default::default() })
                .await
                .unwrap_err();
            assert_eq!(e.to_string(), "No such container: x");
            assert_eq!(e.status(), Some(404));
            assert_eq!(e.kind(), berth_base::ErrorKind::NotFound);
            let mut io = c
                .attach_container("c", &query::AttachContainer { stream: true, stdout: true, ..Default::default() })
                .await
                .unwrap();
            let mut buf = [0u8; 5];
            io.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"hello");
            io.write_all(b"input").await.unwrap();
            io.shutdown().await.unwrap();
            server.await.unwrap();
        });
    }
}
