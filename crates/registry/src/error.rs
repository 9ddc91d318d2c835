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
}
