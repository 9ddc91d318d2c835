//! berth's container runtime: OCI spec generation, the per-container shim that drives
//! youki's libcontainer in its own single-threaded process, the typed client of the shim's
//! socket (its protocol stays private to this crate), the json-file log and the recorded
//! exit status.

pub mod attach_lock;
pub mod cdi;
pub mod client;
pub mod command;
pub mod embedded;
pub mod exit;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod init;
pub mod logs;
mod proto;
pub mod residency;
pub mod seccomp;
pub mod shim;
pub mod spec;
mod state;
pub mod trace;

pub use client::{ShimClient, ShimControl, ShimEvent, ShimEvents, StartOutcome, Streams};
pub use state::{bundle_ids, cleanup};

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
    /// The container's command cannot be executed; the text is Docker's `exec: "x": …`
    /// wording that the CLI maps to exit codes 127/126, `failure` says which.
    #[error("{message}")]
    Exec {
        /// Not found, or found but not executable.
        failure: ExecFailure,
        /// Docker's wording.
        message: String,
    },
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
    Protocol(#[source] ProtocolError),
    /// The shim refused a request (start, signal, resize); its own words.
    #[error("{0}")]
    Refused(String),
    /// The shim closed its socket before answering.
    #[error("the shim closed its socket {during}")]
    ShimGone {
        /// What the client was waiting for.
        during: &'static str,
    },
}

/// Why a container's command cannot be executed, as the exit code of a failed `docker run`
/// tells it (Docker's 127 and 126).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecFailure {
    /// No such file, or not found in `$PATH`.
    NotFound,
    /// Found, but not an executable file (or permission denied).
    NotExecutable,
}

impl ExecFailure {
    /// Docker's exit code for a run that failed this way.
    pub fn exit_code(self) -> i32 {
        match self {
            ExecFailure::NotFound => 127,
            ExecFailure::NotExecutable => 126,
        }
    }
}

/// A malformed frame of the shim protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The length prefix exceeds the protocol's limit.
    #[error("frame of {len} bytes is too large")]
    TooLarge {
        /// The announced payload length.
        len: usize,
    },
    /// A frame type this side does not know.
    #[error("unknown {side} frame type {tag}")]
    UnknownFrame {
        /// `client` or `shim`.
        side: &'static str,
        /// The type byte.
        tag: u8,
    },
    /// A fixed-size payload had the wrong length.
    #[error("payload of {len} bytes, expected {expected}")]
    BadPayload {
        /// Received length.
        len: usize,
        /// Expected length.
        expected: usize,
    },
}

impl Error {
    /// The class of failure, for the daemon's HTTP mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) | Error::Exec { .. } => ErrorKind::InvalidArgument,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        }
    }

    /// How a failed start of the container's command ends the run (127/126), when that is
    /// what this error is.
    pub fn exec_failure(&self) -> Option<ExecFailure> {
        match self {
            Error::Exec { failure, .. } => Some(*failure),
            _ => None,
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
