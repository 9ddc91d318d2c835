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
    /// A query parameter does not decode.
    #[error(transparent)]
    Query(#[from] berth_api::query::QueryError),
    /// A JSON request body does not decode (Docker's wording).
    #[error("invalid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The request body could not be read (the client went away, or it is too large).
    #[error("reading the request body: {0}")]
    RequestBody(#[source] axum::Error),
    /// No route serves this method and path: Docker's one answer for it.
    #[error("page not found")]
    PageNotFound,
    /// A swarm endpoint, on a daemon that is never part of a swarm (dockerd's wording).
    #[error(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
    )]
    NotSwarmManager,
    /// `POST /swarm/leave` outside a swarm (dockerd's wording).
    #[error("This node is not part of a swarm")]
    NotInSwarm,
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    /// The runtime (spec generation, shim) failed.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
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
            Error::InvalidArgument(_) | Error::Config(_) => ErrorKind::InvalidArgument,
            Error::NotModified(_) => ErrorKind::NotModified,
            Error::Query(_) | Error::InvalidJson(_) | Error::RequestBody(_) => ErrorKind::InvalidArgument,
            Error::PageNotFound => ErrorKind::NotFound,
            Error::NotSwarmManager | Error::NotInSwarm => ErrorKind::Unavailable,
            Error::NotImplemented(_) => ErrorKind::NotImplemented,
            Error::Image(e) => e.kind(),
            Error::Runtime(e) => e.kind(),
            Error::Db(_) | Error::Io { .. } | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Wraps an I/O error with what the daemon was doing.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}

/// The daemon's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
