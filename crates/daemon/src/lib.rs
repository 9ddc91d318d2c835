//! The berth daemon: the engine (containers over the image store and the runtime) and the
//! Docker Engine API server in front of it. `main` is what `berth daemon` runs.

pub mod config;
pub mod engine;
pub mod error;
mod hello;
pub mod memory;
mod names;
pub mod record;
pub mod server;
mod store;
pub mod system;
pub mod views;

/// `berth netproxy`: the process that serves a container's published IPv6 ports.
pub use berth_network::proxy::main as netproxy_main;
pub use error::{Error, Result};

use clap::Parser;

/// Runs `berth daemon` with its arguments (after the word `daemon`); returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let parsed = match config::DaemonArgs::try_parse_from(std::iter::once("berth daemon".to_owned()).chain(args)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 125 } else { 0 };
        }
    };
    let cfg = match config::Config::load(&parsed) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth daemon: {e}");
            return 1;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{},hyper=warn", cfg.log_level)));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    memory::limit_arenas();
    // Blocking-pool threads left idle end after BLOCKING_IDLE rather than tokio's 10 s, so
    // the stacks and malloc caches of a burst's threads go back soon after it.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(memory::BLOCKING_IDLE)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth daemon: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("berth daemon: {e}");
            1
        }
    }
}

/// Opens the engine and serves every configured socket and TCP address until SIGTERM or SIGINT. Running
/// containers are left running (their shims own them) and are picked up again at the next
/// start.
pub async fn run(cfg: config::Config) -> Result<()> {
    let sockets = cfg.sockets.clone();
    let tcp = cfg.tcp.clone();
    // Certificates are read before anything starts: a bad one ends the daemon at once.
    let tls = match (&cfg.tls, tcp.is_empty()) {
        (Some(t), false) => Some(server::tcp::server_config(t)?),
        _ => None,
    };
    let engine = engine::Engine::open(cfg).await?;
    // Opening the engine (image gc, restore) freed its scratch memory.
    engine.release_memory();
    memory::trim();
    let e = engine.clone();
    let trimmer = tokio::spawn(memory::trimmer(move || e.release_memory()));
    // Once the first requests (a client waiting for the socket) have come and gone, what
    // start-up ran is given back again.
    memory::note_freed();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for s in sockets {
        let engine = engine.clone();
        let rx = rx.clone();
        servers.spawn(async move {
            let r = server::serve(engine, &s, rx).await;
            r.map_err(|e| Error::io(format!("serve the API on {}", s.display()), e))
        });
    }
    for h in tcp {
        let engine = engine.clone();
        let rx = rx.clone();
        let tls = tls.clone();
        servers.spawn(async move {
            let r = server::tcp::serve(engine, &h, tls, rx).await;
            r.map_err(|e| Error::io(format!("serve the API on tcp://{}", h.addr()), e))
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::io("install SIGTERM handler", e))?;
    tracing::info!(version = system::VERSION, "berth daemon ready");
    let mut result = Ok(());
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        // A listener that cannot bind or fails ends the daemon: serving half the sockets
        // silently would leave clients hanging.
        Some(done) = servers.join_next() => {
            result = match done {
                Ok(Err(e)) => Err(e),
                Ok(Ok(())) => Ok(()),
                Err(e) => Err(Error::Internal(format!("API server task failed: {e}"))),
            };
        }
    }
    let _ = tx.send(true);
    while let Some(done) = servers.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::error!(error = %e, "serving failed");
        }
    }
    trimmer.abort();
    engine.shutdown_networks().await;
    result
}
