//! The registry crate's one error type, for the client and the server alike.

use std::path::PathBuf;

/// Everything that can go wrong talking to, or serving, a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the registry's storage could not be used.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server could not listen on its address.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A `--addr` value that is not `HOST:PORT`.
    #[error("invalid --addr {0:?}: expected HOST:PORT (e.g. 127.0.0.1:5000)")]
    Addr(String),
    /// The TLS certificate or key could not be loaded or used.
    #[error("TLS {what} {path}: {source}")]
    Tls {
        /// What was being loaded ("certificate", "key", "configuration").
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The htpasswd file could not be read.
    #[error("htpasswd file {path}: {source}")]
    Htpasswd {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another `berth registry serve` holds the storage root.
    #[error("storage root {0} is in use by another berth registry")]
    RootInUse(PathBuf),
}
