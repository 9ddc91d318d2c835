//! TLS for the client as the docker CLI sets it up: `--tlsverify` checks the daemon's
//! certificate against `--tlscacert`; `--tls` alone encrypts without checking it; a client
//! certificate and key, when given, are presented for the daemon's mutual TLS. rustls with
//! the ring provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The client's TLS settings, already resolved from flags and environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates (PEM) the daemon's certificate must chain to, when `verify`.
    pub ca_cert: Option<PathBuf>,
    /// The client certificate (PEM) presented to the daemon.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Whether the daemon's certificate is verified (`--tlsverify`).
    pub verify: bool,
}

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("Could not read CA certificate {}: {source}", path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// `--tlsverify` without a CA file.
    #[error("--tlsverify needs a CA certificate (--tlscacert)")]
    NoCa,
    /// The client certificate or key could not be read.
    #[error("Could not load X509 key pair from {}: {source}", path.display())]
    KeyPair {
        /// The certificate or key file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// Only one of certificate and key was given.
    #[error("Could not load X509 key pair: both a certificate (--tlscert) and a key (--tlskey) are needed")]
    HalfKeyPair,
    /// rustls refused the configuration (unsupported key, bad CA certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The host is not a valid DNS name or IP address for TLS.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// The crypto provider berth uses everywhere: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    let certs = CertificateDer::pem_file_iter(path)?.collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(rustls::pki_types::pem::Error::NoItemsFound);
    }
    Ok(certs)
}

/// Reads the private key of a PEM file (PKCS#1, PKCS#8 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, rustls::pki_types::pem::Error> {
    PrivateKeyDer::from_pem_file(path)
}

/// A root store holding the certificates of a CA file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let ca = |source| TlsError::Ca { path: path.to_owned(), source };
    let mut roots = RootCertStore::empty();
    for c in load_certs(path).map_err(ca)? {
        roots.add(c)?;
    }
    Ok(roots)
}

impl TlsOptions {
    /// The rustls client configuration these options describe.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = provider();
        let builder =
            rustls::ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let builder = if self.verify {
            let ca = self.ca_cert.as_deref().ok_or(TlsError::NoCa)?;
            builder.with_root_certificates(load_roots(ca)?)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
        };
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = load_certs(cert).map_err(|source| TlsError::KeyPair { path: cert.clone(), source })?;
                let key = load_key(key).map_err(|source| TlsError::KeyPair { path: key.clone(), source })?;
                builder.with_client_auth_cert(chain, key)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::HalfKeyPair),
        };
        Ok(Arc::new(config))
    }
}

/// The name the daemon's certificate is checked against: an IP address or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
}

/// `--tls` without `--tlsverify`: any server certificate is accepted (Go's
/// `InsecureSkipVerify`), but the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
