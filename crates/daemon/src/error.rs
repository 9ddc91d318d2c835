//! The daemon's one error type. Each variant knows its [`ErrorKind`]; the server module is
//! the only place that turns a kind into an HTTP status. Messages use Docker's wording
//! because clients print them verbatim and some match on them.

use berth_base::ErrorKind;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container matches the name or id.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// A name, state or reference conflict, with Docker's full message.
    #[error("{0}")]
    Conflict(String),
    /// Bad request parameters, with Docker's message.
    #[error("{0}")]
    InvalidArgument(String),
    /// The container is already in the requested state.
    #[error("container already {0}")]
    NotModified(&'static str),
    /// Something we deliberately do not support yet, said plainly.
    #[error("{0}")]
    NotImplemented(String),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    /// The runtime (spec generation, shim) failed.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    /// The container's process could not be started: its command cannot be executed, or the
    /// runtime refused to start it. Docker's wording, which clients match.
    #[error("failed to create task for container: unable to start container process: {source}")]
    StartFailed {
        /// What the shim reported.
        #[source]
        source: berth_runtime::Error,
    },
    /// The state database failed.
    #[error("state database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A filesystem or OS operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the daemon was doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task of the engine panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A document the engine writes (the OCI spec) could not be encoded.
    #[error("encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored record is corrupt (an id that does not parse).
    #[error("bad {what} {value}: {source}")]
    Corrupt {
        /// Which field.
        what: &'static str,
        /// Its stored value.
        value: String,
        /// Why it does not parse.
        #[source]
        source: berth_base::Error,
    },
    /// Configuration is invalid (flags or daemon.json).
    #[error("{0}")]
    Config(String),
    /// An internal invariant broke (a bug): reported, never panicked on.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The class of failure, for the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchContainer(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::InvalidArgument(_) | Error::Config(_) | Error::StartFailed { .. } => ErrorKind::InvalidArgument,
            Error::NotModified(_) => ErrorKind::NotModified,
            Error::NotImplemented(_) => ErrorKind::Unavailable,
            Error::Image(e) => e.kind(),
            Error::Runtime(e) => e.kind(),
            Error::Db(_)
            | Error::Io { .. }
            | Error::Internal(_)
            | Error::Task(_)
            | Error::Encode { .. }
            | Error::Corrupt { .. } => ErrorKind::Internal,
        }
    }

    /// The exit code Docker records for a start that failed with this error: 127 for a
    /// command that does not exist, 126 for one that cannot be executed, 128 otherwise.
    pub fn start_exit_code(&self) -> i64 {
        match self {
            Error::StartFailed { source } => source.exec_failure().map_or(128, |f| i64::from(f.exit_code())),
            _ => 128,
        }
    }

    /// Wraps an I/O error with what the daemon was doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}

/// The daemon's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
