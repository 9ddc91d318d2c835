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
    /// No volume has this name (moby's words, from its volume store's `get`).
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    /// Some other object is missing, with Docker's full message.
    #[error("{0}")]
    NotFound(String),
    /// No exec instance has this id (Docker's wording).
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    /// An exec's process could not be started: its command cannot be executed (127/126),
    /// or the container's shim refused. The runtime's wording, as dockerd passes it on.
    #[error("OCI runtime exec failed: exec failed: unable to start container process: {source}: unknown")]
    ExecFailed {
        /// What the shim reported.
        #[source]
        source: berth_runtime::Error,
    },
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
    /// A BuildKit session (its connection, file sync or secrets) failed.
    #[error(transparent)]
    BuildSession(#[from] crate::server::buildkit::SessionError),
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    /// The runtime (spec generation, shim) failed.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    /// Container networking failed.
    #[error(transparent)]
    Network(#[from] berth_network::Error),
    /// The operation is not allowed (a pre-defined network, an overlapping pool).
    #[error("{0}")]
    Forbidden(String),
    /// No network has that name or id (Docker's wording).
    #[error("network {0} not found")]
    NoSuchNetwork(String),
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
    /// A download for the builder (`ADD <url>`, a remote context) failed.
    #[error("{0}")]
    Download(#[from] DownloadError),
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
    /// A registry failed or refused (pull, push, login).
    #[error(transparent)]
    Registry(#[from] berth_registry::Error),
    /// A registry refused, in moby's words for the operation (`pull access denied for …`).
    #[error("{message}")]
    RegistryRefused {
        /// The message clients print.
        message: String,
        /// What the registry said.
        #[source]
        source: berth_registry::Error,
    },
    /// An internal invariant broke (a bug): reported, never panicked on.
    #[error("{0}")]
    Internal(String),
    /// A path that is not in the container (Docker's wording).
    #[error("Could not find the file {path} in container {container}")]
    FileNotFound {
        /// The path as the client gave it.
        path: String,
        /// The container as the client named it.
        container: String,
    },
    /// Reading or writing files inside a container's root failed.
    #[error(transparent)]
    Fs(#[from] berth_base::Error),
}

impl Error {
    /// The class of failure, for the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchVolume(_) | Error::NotFound(_) => ErrorKind::NotFound,
            Error::NoSuchContainer(_) | Error::FileNotFound { .. } => ErrorKind::NotFound,
            Error::Fs(e) => e.kind(),
            Error::NoSuchExec(_) => ErrorKind::NotFound,
            Error::ExecFailed { .. } => ErrorKind::InvalidArgument,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::InvalidArgument(_) | Error::Config(_) | Error::StartFailed { .. } => ErrorKind::InvalidArgument,
            Error::NotModified(_) => ErrorKind::NotModified,
            Error::Query(_) | Error::InvalidJson(_) | Error::RequestBody(_) => ErrorKind::InvalidArgument,
            Error::PageNotFound => ErrorKind::NotFound,
            Error::NotSwarmManager | Error::NotInSwarm => ErrorKind::Unavailable,
            Error::NotImplemented(_) => ErrorKind::NotImplemented,
            Error::Image(e) => e.kind(),
            Error::BuildSession(e) => e.kind(),
            Error::Registry(e) | Error::RegistryRefused { source: e, .. } => e.kind(),
            Error::Runtime(e) => e.kind(),
            Error::Network(e) => e.kind(),
            Error::NoSuchNetwork(_) => ErrorKind::NotFound,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Db(_)
            | Error::Io { .. }
            | Error::Internal(_)
            | Error::Task(_)
            | Error::Download(_)
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

/// Why a download over HTTP failed; the message names the URL and the whole cause chain
/// (connection refused, DNS), since reqwest's own text says only "error sending request".
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The HTTP client could not be built.
    #[error("HTTP client: {}", chain(.0))]
    Client(#[source] reqwest::Error),
    /// The request or reading its body failed.
    #[error("{op} {url}: {}", chain(.source))]
    Transfer {
        /// `GET` or `read`.
        op: &'static str,
        /// The URL.
        url: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("failed to GET {url} with status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status it answered.
        status: reqwest::StatusCode,
    },
    /// Writing the downloaded file failed.
    #[error("{op} {}: {source}", .path.display())]
    File {
        /// `create` or `write`.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The build was cancelled during the download.
    #[error("cancelled")]
    Cancelled,
}

/// An error's message followed by those of its causes that it does not already contain.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = c.source();
    }
    out
}

/// The daemon's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
