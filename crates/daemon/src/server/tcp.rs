//! The API over TCP, as dockerd serves `-H tcp://…`: plain (loopback only, the config
//! refuses anything else), TLS (`--tls`), or mutual TLS (`--tlsverify`: the client must
//! present a certificate signed by `--tlscacert`, checked by rustls' WebPKI verifier).

use std::io;
use std::sync::Arc;

use berth_api::client::tls::{load_certs, load_key, load_roots, provider};
use rustls::server::WebPkiClientVerifier;

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
/// handshake runs in its own task so a slow or refused client holds up no one else.
pub async fn serve(
    engine: Arc<Engine>,
    host: &TcpHost,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::bind(host.addr()).await?;
    tracing::info!(host = %format!("tcp://{}", host.addr()), tls = tls.is_some(), "API listening");
    let app = super::router(engine);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut shutdown = shutdown;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => r?,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        match &acceptor {
            None => {
                tokio::spawn(super::serve_connection(app, stream));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(s) => super::serve_connection(app, s).await,
                        Err(e) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                    }
                });
            }
        }
    }
    Ok(())
}
