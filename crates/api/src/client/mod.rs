//! Async Engine API client: the transport (one HTTP/1.1 connection per request over a unix
//! socket, TCP, or TCP with TLS as docker's clients speak it), error decoding and response
//! streams. The typed methods live in one file per resource.

pub mod archive;
pub mod build;
pub mod builds;
mod containers;
pub mod distribution;
mod exec;
pub mod explore;
mod images;
pub mod manifest;
mod networks;
mod system;
pub mod tls;
mod volumes;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

pub use self::tls::TlsOptions;
use crate::host::{Host, HostError};
use crate::models::ContainerWaitResponse;
use crate::{API_VERSION, ErrorBody, JsonMessage};

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
    /// The `-H` value is not an address docker's clients accept.
    #[error("unable to parse docker host `{host}`: {source}")]
    UnsupportedHost {
        /// The address as given.
        host: String,
        /// Why it was refused.
        #[source]
        source: HostError,
    },
    /// The TLS settings could not be loaded (a missing or malformed certificate or key).
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// The TLS handshake with the daemon failed (untrusted certificate, refused client).
    #[error("error during connect: {host}: {source}")]
    Handshake {
        /// The daemon address.
        host: String,
        /// The TLS failure.
        #[source]
        source: io::Error,
    },
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
    /// A multiplexed stdio stream had a frame for no known stream.
    #[error("unrecognized input header: {0}")]
    StreamHeader(u8),
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
            ClientError::UnsupportedHost { .. } | ClientError::Tls(_) | ClientError::Request(_) => {
                ErrorKind::InvalidArgument
            }
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

/// An Engine API client bound to one daemon address.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    transport: Transport,
}

/// How a connection to the daemon is opened.
#[derive(Clone)]
enum Transport {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP, with TLS when a config is given.
    Tcp { addr: String, tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)> },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Unix(p) => f.debug_tuple("Unix").field(p).finish(),
            Transport::Tcp { addr, tls } => {
                f.debug_struct("Tcp").field("addr", addr).field("tls", &tls.is_some()).finish()
            }
        }
    }
}

/// Any stream an HTTP connection can run over (unix, TCP, TLS).
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

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

/// Builds a body from chunks another task produces (e.g. a tar written on a blocking
/// thread); an `Err` chunk aborts the request.
pub fn channel_body(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> Body {
    let s = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r.map(Frame::data), rx)) });
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
    fn new(body: Incoming) -> JsonStream {
        JsonStream { bytes: ByteStream { body }, buf: Vec::new(), done: false }
    }

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
    /// A client for `host` (`unix:///path.sock`, a bare socket path, `tcp://host:port` or
    /// `host:port`) without TLS.
    pub fn new(host: &str) -> Result<Client> {
        Client::with_tls(host, None)
    }

    /// A client for `host`; with `tls`, a tcp address is spoken over TLS (and its default
    /// port is 2376), as the docker CLI does with `--tls`/`--tlsverify`. A unix socket
    /// ignores `tls`.
    pub fn with_tls(host: &str, tls: Option<&TlsOptions>) -> Result<Client> {
        let parsed = Host::parse(host, tls.is_some())
            .map_err(|source| ClientError::UnsupportedHost { host: host.to_owned(), source })?;
        let transport = match &parsed {
            Host::Unix(p) => Transport::Unix(p.clone()),
            Host::Tcp { host: name, .. } => {
                let tls = match tls {
                    Some(o) => Some((o.client_config()?, tls::server_name(name)?)),
                    None => None,
                };
                Transport::Tcp { addr: parsed.tcp_addr().unwrap_or_default(), tls }
            }
        };
        Ok(Client { host: parsed.to_string(), transport })
    }

    /// The host this client talks to, in canonical form (`unix:///path`, `tcp://host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The socket path when the daemon is reached over a unix socket (on this machine).
    pub fn socket(&self) -> Option<&Path> {
        match &self.transport {
            Transport::Unix(p) => Some(p),
            Transport::Tcp { .. } => None,
        }
    }

    /// Whether the daemon is on this machine (a unix socket), so it can read local paths.
    pub fn is_local(&self) -> bool {
        matches!(self.transport, Transport::Unix(_))
    }

    async fn connect(&self) -> Result<TokioIo<Box<dyn Io>>> {
        let connect_err = |source| ClientError::Connect { host: self.host.clone(), source };
        let io: Box<dyn Io> = match &self.transport {
            Transport::Unix(p) => Box::new(UnixStream::connect(p).await.map_err(connect_err)?),
            Transport::Tcp { addr, tls } => {
                let tcp = TcpStream::connect(addr.as_str()).await.map_err(connect_err)?;
                let _ = tcp.set_nodelay(true);
                match tls {
                    None => Box::new(tcp),
                    Some((config, name)) => {
                        let s = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name.clone(), tcp)
                            .await
                            .map_err(|source| ClientError::Handshake { host: self.host.clone(), source })?;
                        Box::new(s)
                    }
                }
            }
        };
        Ok(TokioIo::new(io))
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
    use crate::query;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixListener;

    #[test]
    fn host_forms() {
        assert_eq!(Client::new("unix:///run/x.sock").unwrap().socket(), Some(std::path::Path::new("/run/x.sock")));
        assert_eq!(Client::new("/run/x.sock").unwrap().host(), "unix:///run/x.sock");
        let c = Client::new("tcp://1.2.3.4").unwrap();
        assert_eq!((c.host(), c.is_local()), ("tcp://1.2.3.4:2375", false));
        let e = Client::new("ssh://me@host").unwrap_err();
        assert!(e.to_string().contains("Invalid bind address format"), "{e}");
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
