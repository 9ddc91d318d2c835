//! berth's container runtime: OCI spec generation, the per-container shim that drives
//! youki's libcontainer in its own single-threaded process, the shim socket protocol, the
//! json-file log and the recorded exit status.

pub mod exit;
pub mod logs;
pub mod proto;
pub mod shim;
pub mod spec;

use std::io;
use std::path::{Path, PathBuf};

use berth_base::ErrorKind;

/// Every failure this crate reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be satisfied as given (bad user, unknown capability…); the text is
    /// Docker's wording.
    #[error("{0}")]
    InvalidArgument(String),
    /// The container's command cannot be executed (not found, not executable); the text is
    /// Docker's `exec: "x": …` wording that the CLI maps to exit codes 127/126.
    #[error("{0}")]
    Exec(String),
    /// libcontainer refused to create, start or delete the container.
    #[error("{context}: {message}")]
    Runtime {
        /// What was being done.
        context: String,
        /// libcontainer's error with its whole source chain.
        message: String,
    },
    /// The shim failed before the container was created, or died during the handshake.
    #[error("shim: {0}")]
    Shim(String),
    /// A file or socket operation failed.
    #[error("{context} {path}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A JSON document (spec, log line, options) could not be encoded or decoded.
    #[error("{context}")]
    Json {
        /// What was being encoded or decoded.
        context: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A shim protocol frame was malformed.
    #[error("shim protocol: {0}")]
    Protocol(String),
}

impl Error {
    /// The class of failure, for the daemon's HTTP mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) | Error::Exec(_) => ErrorKind::InvalidArgument,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(context: &'static str, path: &Path, source: io::Error) -> Error {
        Error::Io { context, path: path.to_path_buf(), source }
    }
}

/// Formats an error with all its sources, because libcontainer's top-level messages
/// ("failed to create container") hide the cause users need.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Deletes the libcontainer state (and cgroup, and any process still in it) of a container
/// whose shim died. Already gone is success, so this can be called on every reconcile.
pub fn cleanup(state_root: &Path, id: &str) -> Result<(), Error> {
    let dir = state_root.join(id);
    if !dir.exists() {
        return Ok(());
    }
    match libcontainer::container::Container::load(dir.clone()) {
        Ok(mut c) => {
            if let Err(e) = c.delete(true) {
                // A half-written state dir cannot be deleted through libcontainer; removing
                // the directory is all that is left to do.
                if dir.exists() {
                    tracing::warn!(id, error = %chain(&e), "libcontainer delete failed; removing state dir");
                }
            }
        }
        Err(e) => tracing::warn!(id, error = %chain(&e), "unloadable container state; removing it"),
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("failed to remove container state", &dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_of_missing_state_is_ok() {
        let dir = std::env::temp_dir().join(format!("berth-rt-cleanup-{}", berth_base::new_id()));
        assert!(cleanup(&dir, "nothing").is_ok());
        std::fs::create_dir_all(dir.join("junk")).unwrap();
        assert!(cleanup(&dir, "junk").is_ok());
        assert!(!dir.join("junk").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
