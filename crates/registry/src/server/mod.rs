//! `berth registry serve`: a registry speaking the OCI Distribution Spec v1.1, for teams to
//! run themselves and for berth's tests to push to and pull from.
//!
//! - [`serve`] starts one in-process (tests bind `127.0.0.1:0` and read [`Handle::addr`]);
//!   [`main`] is the command, run until SIGINT/SIGTERM.
//! - [`routes`] decodes URLs into typed routes, [`handlers`] answers them over
//!   [`storage`] (the on-disk layout and its crash-safety argument are written there),
//!   [`manifest`] checks pushed manifests, [`auth`] checks htpasswd credentials, and
//!   [`reply`] is the one place an error becomes the spec's JSON and a status.
//! - It binds to loopback unless told otherwise (`--addr 127.0.0.1:5000`; `:5000` means
//!   loopback too) and warns when it listens elsewhere without TLS or authentication.

pub mod auth;
pub mod digest;
pub mod handlers;
pub mod manifest;
pub mod names;
pub mod reply;
pub mod routes;
pub mod storage;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;
use handlers::App;
use storage::Storage;

/// The default storage root.
pub const DEFAULT_ROOT: &str = "/var/lib/berth-registry";
/// The default listening address: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:5000";

/// How a registry is served.
#[derive(Debug, Clone)]
pub struct Config {
    /// `HOST:PORT` to listen on (`:PORT` is loopback; port 0 picks a free one).
    pub addr: String,
    /// The storage root.
    pub root: PathBuf,
    /// An htpasswd file of bcrypt entries: every request must then authenticate.
    pub htpasswd: Option<PathBuf>,
    /// A PEM certificate chain and key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse every write.
    pub read_only: bool,
}

impl Config {
    /// Plain HTTP on `addr`, storing under `root`, no authentication.
    pub fn new(addr: impl Into<String>, root: impl Into<PathBuf>) -> Config {
        Config { addr: addr.into(), root: root.into(), htpasswd: None, tls: None, read_only: false }
    }
}

/// A running registry.
pub struct Handle {
    addr: SocketAddr,
    tls: bool,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL (`http://127.0.0.1:PORT` or `https://…`).
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Stops it: no new connections, open ones are closed, and once nothing uses the
    /// storage any more its root is unlocked (another server may then open it).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// The address `--addr` names: `HOST:PORT`, `[V6]:PORT`, or `:PORT` for loopback.
pub async fn resolve_addr(addr: &str) -> Result<SocketAddr, Error> {
    let full = if addr.starts_with(':') { format!("127.0.0.1{addr}") } else { addr.to_owned() };
    if let Ok(a) = full.parse::<SocketAddr>() {
        return Ok(a);
    }
    let mut found = tokio::net::lookup_host(&full).await.map_err(|_| Error::Addr(addr.to_owned()))?;
    found.next().ok_or_else(|| Error::Addr(addr.to_owned()))
}

fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let tls = |what, path: &Path, e: Box<dyn std::error::Error + Send + Sync>| Error::Tls {
        what,
        path: path.to_owned(),
        source: e,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls("certificate", cert, e.into()))?;
    if certs.is_empty() {
        return Err(tls("certificate", cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls("key", key, e.into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls("configuration", cert, e.into()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls("certificate and key", cert, e.into()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Starts a registry as `config` says, on the current tokio runtime, and returns once it
/// listens. Errors: the root cannot be opened or is in use, the htpasswd file or the TLS
/// files cannot be read, the address cannot be bound.
pub async fn serve(config: Config) -> Result<Handle, Error> {
    // Everything that can be wrong in the configuration is found before anything is made.
    let addr = resolve_addr(&config.addr).await?;
    let auth = config.htpasswd.as_deref().map(auth::Htpasswd::load).transpose()?.map(Arc::new);
    let tls = config.tls.as_ref().map(|(c, k)| tls_config(c, k)).transpose()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { addr: config.addr.clone(), source })?;
    let root = config.root.clone();
    let storage = tokio::task::spawn_blocking(move || Storage::open(&root))
        .await
        .map_err(|e| Error::Io { path: config.root.clone(), source: std::io::Error::other(e) })??;
    let addr = listener.local_addr().map_err(|source| Error::Listen { addr: config.addr.clone(), source })?;
    if !addr.ip().is_loopback() && tls.is_none() && auth.is_none() {
        tracing::warn!(%addr, "listening beyond loopback without TLS and authentication: anyone who can reach it can read (and push)");
    } else if !addr.ip().is_loopback() && auth.is_none() {
        tracing::warn!(%addr, "listening beyond loopback without authentication: anyone who can reach it can read (and push)");
    } else if !addr.ip().is_loopback() && tls.is_none() {
        tracing::warn!(%addr, "listening beyond loopback without TLS: passwords cross the network in the clear");
    }
    let storage = Arc::new(storage);
    let app = Arc::new(App { storage: storage.clone(), auth, read_only: config.read_only });
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(purge_stale_uploads(Arc::downgrade(&storage), rx.clone()));
    let task = tokio::spawn(accept_loop(listener, app, tls.map(tokio_rustls::TlsAcceptor::from), rx, storage));
    Ok(Handle { addr, tls: config.tls.is_some(), shutdown: tx, task })
}

/// Every hour, removes uploads abandoned for [`storage::UPLOAD_MAX_AGE`] (at start,
/// [`Storage::open`] already did), until shutdown.
async fn purge_stale_uploads(storage: std::sync::Weak<Storage>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let Some(st) = storage.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = st.purge_uploads(storage::UPLOAD_MAX_AGE) {
                tracing::warn!(error = %e, "purging stale uploads");
            }
        })
        .await;
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    storage: Arc<Storage>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::error!(error = %e, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        match &tls {
            None => {
                conns.spawn(serve_connection(app, stream));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                conns.spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_connection(app, s).await,
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    conns.shutdown().await;
    drop(app);
    // Uploads run in tasks of their own (a dropped connection must not cut them half
    // way); they end as soon as their body does. Wait for them to let go of the storage.
    let weak = Arc::downgrade(&storage);
    drop(storage);
    for _ in 0..200 {
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!("storage still in use 10 s after shutdown");
}

async fn serve_connection<IO>(app: Arc<App>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handlers::handle(app, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(120))
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// `berth registry serve`'s arguments.
#[derive(Debug, Parser)]
#[command(name = "berth registry serve", about = "Serve an OCI distribution registry (OCI Distribution Spec v1.1)")]
struct Args {
    /// Address to listen on (HOST:PORT; `:PORT` is loopback)
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: String,
    /// Directory holding the registry's blobs and repositories
    #[arg(long, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// htpasswd file of bcrypt entries (`htpasswd -B`): require HTTP Basic authentication
    #[arg(long)]
    htpasswd: Option<PathBuf>,
    /// TLS certificate chain (PEM): serve HTTPS
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse every write (push, delete)
    #[arg(long)]
    read_only: bool,
}

/// `berth registry serve ARGS…`: serves until SIGINT or SIGTERM. Returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let args =
        match Args::try_parse_from(std::iter::once("berth registry serve".to_owned()).chain(args.iter().cloned())) {
            Ok(a) => a,
            Err(e) => {
                let _ = e.print();
                return e.exit_code();
            }
        };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr).try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth registry serve: start the runtime: {e}");
            return 1;
        }
    };
    let config = Config {
        addr: args.addr,
        root: args.root,
        htpasswd: args.htpasswd,
        tls: args.tls_cert.zip(args.tls_key),
        read_only: args.read_only,
    };
    rt.block_on(async move {
        let handle = match serve(config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("berth registry serve: {e}");
                return 1;
            }
        };
        eprintln!("berth registry: listening on {}", handle.url());
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("berth registry serve: install the SIGTERM handler: {e}");
                return 1;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        handle.shutdown().await;
        0
    })
}
