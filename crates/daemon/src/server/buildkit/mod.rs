//! BuildKit's API, served by berth's own builder, for the docker clients that build through
//! BuildKit: sessions (`POST /session`, [`session`]) whose file sync brings the context
//! ([`filesync`]), and the 20.10 CLI's `POST /build?version=2` ([`build`]), which streams
//! BuildKit's progress records. The wire messages are in [`proto`]; [`grpc`] puts tonic
//! on the hijacked connections.

pub mod auth;
pub mod bridge;
pub mod build;
pub mod control;
pub mod filesync;
mod grpc;
pub mod names;
pub mod proto;
pub mod session;
pub mod ssh;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::routing::post;

use crate::engine::Engine;
pub use session::Sessions;

/// The routes of BuildKit's API (`/build?version=2` goes through `/build`'s route).
pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/session", post(session::session))
        .route("/build/cancel", post(build::cancel))
        .route("/grpc", post(control::grpc))
}

/// What can go wrong talking to a client's session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No session with this id is open (moby's words).
    #[error("no active session for {id}: context deadline exceeded")]
    NoSession {
        /// The id the request named.
        id: String,
    },
    /// A call to one of the client's services failed.
    #[error("{method}: {}", source.message())]
    Call {
        /// The gRPC method.
        method: &'static str,
        /// What the client (or the connection) said.
        #[source]
        source: tonic::Status,
    },
    /// The client reported an error in the file-sync stream.
    #[error("error from sender: {message}")]
    Remote {
        /// Its words.
        message: String,
    },
    /// The session's connection closed before the transfer ended.
    #[error("session closed before the transfer ended")]
    Closed,
    /// The client sent a path that is not clean and relative, or whose parent it never
    /// sent as a directory.
    #[error("invalid path in the file sync: {path:?}")]
    BadPath {
        /// The path as sent.
        path: String,
    },
    /// The daemon's side of a transfer failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl SessionError {
    fn io(op: &'static str, path: &Path, source: std::io::Error) -> SessionError {
        SessionError::Io { op, path: path.to_path_buf(), source }
    }

    /// The kind of error, for its HTTP status.
    pub fn kind(&self) -> berth_base::ErrorKind {
        match self {
            SessionError::NoSession { .. } | SessionError::BadPath { .. } => berth_base::ErrorKind::InvalidArgument,
            _ => berth_base::ErrorKind::Internal,
        }
    }
}
