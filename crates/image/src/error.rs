//! The image store's one error type, with the [`ErrorKind`] each variant maps to.

use std::io;
use std::path::PathBuf;

use berth_base::ErrorKind;

/// Everything that can go wrong in the image store. `Display` is what users see, so the
/// messages that Docker has wording for use that wording.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image matches the name or id the user gave.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A layer named in a request is not in the store.
    #[error("layer {0} not found in the image store")]
    LayerNotFound(String),
    /// An `rmi` or tag request conflicts with the current state (Docker's wording).
    #[error("{0}")]
    Conflict(String),
    /// The input (tarball, reference, change instruction) is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// A reference does not parse.
    #[error(transparent)]
    Reference(#[from] berth_base::Error),
    /// A layer tar could not be unpacked: malformed, truncated, trying to leave its root,
    /// or a file operation inside the snapshot failed.
    #[error(transparent)]
    Unpack(berth_base::Error),
    /// A compressed layer stream does not decode.
    #[error("invalid {format} stream: {source}")]
    Decompress {
        /// `gzip` or `zstd`.
        format: &'static str,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// Reading a layer stream failed after its tar had ended (padding, compressed trailer).
    #[error("invalid layer stream: {source}")]
    LayerStream {
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// A stored layer's tar could not be read to the end (`image explore`).
    #[error("reading layer {diff_id}: {source}")]
    ReadLayer {
        /// The layer's diff id.
        diff_id: String,
        /// The read or tar error.
        #[source]
        source: io::Error,
    },
    /// Content did not match the digest it was announced with.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller promised.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The state database failed.
    #[error("image database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored JSON document (config, manifest) could not be read or written.
    #[error("image metadata {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Stored state is inconsistent (a bug, or someone edited the data root by hand).
    #[error("image store is inconsistent: {0}")]
    Corrupt(String),
    /// A digest stored in the database does not parse.
    #[error("image store is inconsistent: bad digest {value}: {source}")]
    StoredDigest {
        /// The stored text.
        value: String,
        /// Why it is not a digest.
        #[source]
        source: berth_base::Error,
    },
    /// An OCI document we build from our own data was refused by its builder.
    #[error("image store is inconsistent: {0}")]
    Spec(#[source] oci_spec::OciSpecError),
}

impl Error {
    /// The class of failure, for the daemon's HTTP mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) | Error::LayerNotFound(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::InvalidArgument(_)
            | Error::Reference(_)
            | Error::DigestMismatch { .. }
            | Error::Decompress { .. }
            | Error::LayerStream { .. } => ErrorKind::InvalidArgument,
            // A file operation inside the snapshot that failed is ours, not the input's.
            Error::Unpack(berth_base::Error::Fs { .. }) => ErrorKind::Internal,
            Error::Unpack(e) => e.kind(),
            Error::Io { .. }
            | Error::Db(_)
            | Error::Json { .. }
            | Error::Corrupt(_)
            | Error::StoredDigest { .. }
            | Error::ReadLayer { .. }
            | Error::Spec(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
