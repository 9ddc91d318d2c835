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
    /// An `X-Registry-Auth` header or `POST /auth` body that does not decode.
    #[error("{0}")]
    BadAuthHeader(String),
    /// A request could not be sent or its answer not read (the causes follow, so a TLS
    /// refusal says which certificate was wrong).
    #[error("{url}: {}", causes(source))]
    Http {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// `docker login` against a Basic-auth registry failed (moby's wording).
    #[error("login attempt to {url} failed with status: {status} {reason}")]
    LoginFailed {
        /// The `/v2/` URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The registry refused the credentials (or asked for some).
    #[error("{0}")]
    Unauthorized(String),
    /// The registry answered with a distribution-spec error (`manifest unknown`, `denied`…).
    #[error("{}: {message}", code.to_ascii_lowercase().replace('_', " "))]
    Registry {
        /// The spec's code (`MANIFEST_UNKNOWN`).
        code: String,
        /// Its message.
        message: String,
    },
    /// The registry broke the protocol (a malformed manifest, a blob longer than announced…).
    #[error("{0}")]
    Protocol(String),
    /// Content did not match its digest.
    #[error("{what} digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest promised.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// An index has no manifest for the requested platform (Docker's wording).
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform {
        /// `os/arch[/variant]`.
        platform: String,
    },
    /// `--platform` does not parse.
    #[error("invalid platform {0:?}: expected os[/arch[/variant]]")]
    BadPlatform(String),
    /// A blob stream broke.
    #[error("reading blob {digest}: {source}")]
    Stream {
        /// The blob.
        digest: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A blob download failed every attempt.
    #[error("downloading {digest} failed after {attempts} attempts: {source}")]
    BlobDownload {
        /// The blob.
        digest: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last error.
        #[source]
        source: Box<Error>,
    },
    /// The consumer of a download went away (it reports its own error).
    #[error("the download was cancelled")]
    Cancelled,
    /// The registry answered with a status the request does not take, and no error body.
    #[error("{url}: the registry answered {status}")]
    Status {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
}

/// An error and its sources, `: `-separated (reqwest's own message says only "error sending
/// request").
fn causes(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

impl Error {
    /// A transport error for `url`.
    pub fn http(url: &str, source: reqwest::Error) -> Error {
        Error::Http { url: url.to_owned(), source }
    }

    /// True for failures worth another attempt: the connection broke, or the registry
    /// answered 5xx / 429.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http { .. } | Error::Stream { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            Error::Registry { code, .. } => code == "TOOMANYREQUESTS",
            _ => false,
        }
    }

    /// The registry's error code (`MANIFEST_UNKNOWN`), if the registry sent one.
    pub fn registry_code(&self) -> Option<&str> {
        match self {
            Error::Registry { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The class of failure, for the daemon's HTTP mapping.
    pub fn kind(&self) -> berth_base::ErrorKind {
        use berth_base::ErrorKind as K;
        match self {
            Error::BadAuthHeader(_) | Error::BadPlatform(_) => K::InvalidArgument,
            Error::LoginFailed { .. } | Error::Unauthorized(_) => K::Forbidden,
            Error::Registry { code, .. } => match code.as_str() {
                "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN" | "NOT_FOUND" => K::NotFound,
                "UNAUTHORIZED" | "DENIED" => K::Forbidden,
                "UNSUPPORTED" => K::NotImplemented,
                "TOOMANYREQUESTS" => K::Unavailable,
                _ => K::InvalidArgument,
            },
            Error::NoMatchingPlatform { .. } => K::NotFound,
            Error::Protocol(_) | Error::DigestMismatch { .. } => K::InvalidArgument,
            Error::Http { .. } | Error::Stream { .. } | Error::BlobDownload { .. } => K::Unavailable,
            Error::Status { status, .. } if *status >= 500 || *status == 429 => K::Unavailable,
            Error::Status { .. } => K::InvalidArgument,
            Error::Cancelled | Error::Io { .. } => K::Internal,
            // The server's own start-up failures.
            Error::Addr(_) => K::InvalidArgument,
            Error::RootInUse(_) => K::Conflict,
            Error::Listen { .. } | Error::Tls { .. } | Error::Htpasswd { .. } => K::Internal,
        }
    }
}
