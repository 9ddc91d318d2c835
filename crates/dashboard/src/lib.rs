//! `berth dashboard`: a web UI for the daemon, served on loopback by this process. It is a
//! client of the Engine API like the CLI: the page's requests go through an allow-listing
//! forwarder (`forward`) and websockets (`streams`) to the daemon's socket, and it never
//! reads the data root. Who may connect is decided in `guard`; the page itself, built from
//! `dashboard/` at the repository root, is embedded by `assets`.

pub mod assets;
pub mod forward;
pub mod guard;
pub mod streams;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};
use berth_api::Client;
use clap::Parser;

/// Everything that can stop the dashboard from serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OS gave no random bytes for the token.
    #[error("cannot make a token: {0}")]
    Random(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The daemon does not answer.
    #[error("{0}")]
    Daemon(#[source] berth_api::ClientError),
}

/// `berth dashboard` flags.
#[derive(Debug, Parser)]
#[command(name = "berth dashboard", about = "Serve a web dashboard for the daemon (on loopback)")]
pub struct Args {
    /// Address to listen on; anything but loopback is reachable from other machines
    #[arg(long, default_value = "127.0.0.1:0")]
    pub addr: SocketAddr,
    /// Open the dashboard in a browser (xdg-open, or $BROWSER when set)
    #[arg(long)]
    pub open: bool,
}

/// What the routes share.
pub struct App {
    /// The daemon's client, as the CLI would make it (-H, DOCKER_HOST, TLS).
    pub client: Client,
}

/// The router: the page, the forwarder and the websockets, all behind the guard.
pub fn router(client: Client, guard: guard::Guard) -> Router {
    let app = Arc::new(App { client });
    Router::new()
        .route("/api/{*path}", any(forward::forward))
        .route("/ws/logs/{id}", get(streams::logs))
        .route("/ws/exec/{id}", get(streams::exec))
        .route("/ws/attach/{id}", get(streams::attach))
        .fallback(get(assets::serve))
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard::middleware))
}

fn err_line(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Runs `berth dashboard` with `args` (after the subcommand) against `client`; returns the
/// exit code.
pub fn main(args: &[String], client: Client) -> i32 {
    let argv = std::iter::once("berth dashboard".to_owned()).chain(args.iter().cloned());
    let a = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 125 } else { 0 };
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            err_line(&format!("berth: failed to start the runtime: {e}"));
            return 1;
        }
    };
    match rt.block_on(serve(a, client)) {
        Ok(()) => 0,
        Err(e) => {
            err_line(&format!("berth dashboard: {e}"));
            1
        }
    }
}

/// The URL to print for a dashboard bound to `addr`: an unspecified address is reachable
/// on loopback too, and that is the one to open here.
pub fn url(addr: SocketAddr, token: &str) -> String {
    let ip = if addr.ip().is_unspecified() {
        if addr.is_ipv4() { "127.0.0.1".to_owned() } else { "[::1]".to_owned() }
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    format!("http://{ip}:{}/?token={token}", addr.port())
}

async fn serve(a: Args, client: Client) -> Result<(), Error> {
    client.ping().await.map_err(Error::Daemon)?;
    let remote_ok = !a.addr.ip().is_loopback();
    let listener =
        tokio::net::TcpListener::bind(a.addr).await.map_err(|source| Error::Listen { addr: a.addr, source })?;
    let bound = listener.local_addr().map_err(|source| Error::Listen { addr: a.addr, source })?;
    if remote_ok {
        err_line(&format!(
            "WARNING: the dashboard listens on {bound}, beyond loopback: anyone who can reach this \
             address and learns the token controls the daemon. Use --addr 127.0.0.1:PORT to keep it local."
        ));
    }
    let token = guard::new_token()?;
    let url = url(bound, &token);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{url}");
    let _ = out.flush();
    if !assets::built() {
        err_line(&format!("berth dashboard: the page is not built into this binary; {}", assets::HOW_TO_BUILD));
    }
    if a.open {
        open_browser(&url);
    }
    let app = router(client, guard::Guard::new(token, bound.port(), remote_ok));
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>());
    // Not axum's graceful shutdown: it would wait for the page's event stream and
    // websockets, which never end by themselves. Dropping the runtime closes them.
    tokio::select! {
        r = server => r.map_err(Error::Serve),
        () = shutdown() => Ok(()),
    }
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Opens `url` with `$BROWSER` (as xdg-open reads it: the first of its `:`-separated
/// commands), else `xdg-open`; says so when neither starts.
fn open_browser(url: &str) {
    let browser = std::env::var("BROWSER").ok().and_then(|b| b.split(':').next().map(str::to_owned));
    let cmd = browser.filter(|b| !b.is_empty()).unwrap_or_else(|| "xdg-open".to_owned());
    let spawned = std::process::Command::new(&cmd)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        err_line(&format!("berth dashboard: cannot open a browser with {cmd}: {e}; open the URL above by hand"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_url() {
        assert_eq!(url("127.0.0.1:8080".parse().unwrap(), "t"), "http://127.0.0.1:8080/?token=t");
        assert_eq!(url("0.0.0.0:81".parse().unwrap(), "t"), "http://127.0.0.1:81/?token=t");
        assert_eq!(url("[::1]:81".parse().unwrap(), "t"), "http://[::1]:81/?token=t");
        assert_eq!(url("[::]:81".parse().unwrap(), "t"), "http://[::1]:81/?token=t");
    }

    #[test]
    fn flags() {
        let a = Args::try_parse_from(["x"]).unwrap();
        assert_eq!(a.addr, "127.0.0.1:0".parse().unwrap());
        assert!(!a.open);
        let a = Args::try_parse_from(["x", "--addr", "0.0.0.0:9999", "--open"]).unwrap();
        assert!(a.open && a.addr.port() == 9999);
        assert!(Args::try_parse_from(["x", "--addr", "localhost"]).is_err());
    }
}
