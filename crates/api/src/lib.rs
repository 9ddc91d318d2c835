//! The Docker Engine API as berth speaks it: wire models (from `bollard-stubs`), the query
//! parameter structs the daemon decodes and the client encodes, Docker's stdio stream
//! multiplexing, docker's daemon addresses, and an async client over a unix socket, TCP
//! or TLS.

pub mod check;
pub mod client;
pub mod detach;
pub mod host;
pub mod query;
pub mod stdcopy;

pub use bollard_stubs::models;
pub use client::{Client, ClientError, TlsOptions};
pub use host::Host;

/// The newest API version berth speaks.
pub const API_VERSION: &str = "1.41";
/// The oldest API version berth accepts.
pub const MIN_API_VERSION: &str = "1.24";
/// Header naming a build context directory on the daemon's machine instead of uploading
/// it as a tar (berth's CLI sets it when it talks to a local daemon).
pub const BERTH_CONTEXT_DIR: &str = "x-berth-context-dir";
/// The socket a daemon listens on when no `-H` is given.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

/// Docker's error body: `{"message": "..."}`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The human-readable message clients print after "Error response from daemon: ".
    pub message: String,
    /// In a progress stream's `errorDetail`: a status the client exits with (the legacy
    /// builder's failed RUN gives the command's exit code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

/// One line of the JSON progress stream that image import/pull/push/build return.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct JsonMessage {
    /// Build output text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// Status line, e.g. the imported image id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Progress-bar text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Layer or object id the status refers to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Error message, which ends the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Structured error.
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorBody>,
    /// Auxiliary data, e.g. `{"ID": "sha256:…"}` at the end of a build.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
    /// Bytes done and expected of a pull or push step (`{}` when neither is known).
    #[serde(rename = "progressDetail", default, skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
}

/// The `progressDetail` of a [`JsonMessage`]: Docker omits zero fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgressDetail {
    /// Bytes done so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    /// Bytes expected in all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
