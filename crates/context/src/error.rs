//! The one error type of the build-context crate: bad ignore patterns and file-system
//! failures while reading a context.

use std::io;
use std::path::Path;

/// Why a `.dockerignore` could not be compiled or a context could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed `.dockerignore` or `--exclude` pattern.
    #[error("invalid pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file-system operation on the context failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// An I/O failure of `op` on `path`.
    pub fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { op, path: path.as_ref().display().to_string(), source }
    }

    /// The error class.
    pub fn kind(&self) -> berth_base::ErrorKind {
        match self {
            Error::BadPattern { .. } => berth_base::ErrorKind::InvalidArgument,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => berth_base::ErrorKind::NotFound,
            Error::Io { .. } => berth_base::ErrorKind::Internal,
        }
    }
}
