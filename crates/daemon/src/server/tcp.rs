//! The API over TCP, as dockerd serves `-H tcp://…`: plain (loopback only, the config
//! refuses anything else), TLS (`--tls`), or mutual TLS (`--tlsverify`: the client must
//! present a certificate signed by `--tlscacert`, checked by rustls' WebPKI verifier).

use std::io;
use std::sync::Arc;

use berth_api::client::tls::{load_certs, load_key, load_roots, provider};
use rustls::server::WebPkiClientVerifier;

use super::conn;
use crate::config::{TcpHost, TlsSettings};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// The rustls server configuration for `tls`: the server's certificate and key, and with
/// `verify` a client-certificate verifier over the CA.
pub fn server_config(tls: &TlsSettings) -> Result<Arc<rustls::ServerConfig>> {
    let load = |what: &str, path: &std::path::Path, e: rustls::pki_types::pem::Error| {
        Error::io(format!("load the TLS {what} {}", path.display()), io::Error::other(e))
    };
    let chain = load_certs(&tls.cert).map_err(|e| load("certificate", &tls.cert, e))?;
    let key = load_key(&tls.key).map_err(|e| load("key", &tls.key, e))?;
    let tls_err = |what: &str, e: rustls::Error| Error::io(format!("configure TLS: {what}"), io::Error::other(e));
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocol versions", e))?;
    let builder = if tls.verify {
        let roots = load_roots(&tls.ca_cert).map_err(|e| {
            Error::io(format!("load the TLS CA certificate {}", tls.ca_cert.display()), io::Error::other(e))
        })?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::io("configure TLS client verification", io::Error::other(e)))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| tls_err("certificate and key", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves the API on `host` until `shutdown` turns true; with `tls`, each connection's TLS
/// handshake runs in its own task so a slow or refused client holds up no one else, and
/// must finish within the header timeout. Accept errors and the connection bound are
/// handled as on the unix socket (see [`super::conn`]).
pub async fn serve(
    engine: Arc<Engine>,
    host: &TcpHost,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(host.addr()).await?;
    let name = format!("tcp://{}", host.addr());
    tracing::info!(host = %name, tls = tls.is_some(), "API listening");
    let header_timeout = engine.cfg.api_header_timeout;
    let app = super::router(engine);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut shutdown = shutdown;
    let mut backoff = conn::Backoff::default();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                conn::accept_failed(&name, e, &mut backoff, &mut shutdown).await?;
                continue;
            }
        };
        backoff.reset();
        let _ = stream.set_nodelay(true);
        let Some(slot) = conn::ConnSlot::try_take(conn::max_connections()) else {
            conn::note_refused(&name);
            if acceptor.is_none() {
                tokio::spawn(conn::refuse(stream));
            }
            // Over TLS the connection is just closed: answering would take a handshake.
            continue;
        };
        let app = app.clone();
        let stream = conn::Counted::new(stream, slot);
        match &acceptor {
            None => {
                tokio::spawn(conn::serve_connection(app, stream, header_timeout));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => conn::serve_connection(app, s, header_timeout).await,
                        Ok(Err(e)) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    Ok(())
}
