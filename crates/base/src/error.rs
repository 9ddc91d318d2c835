//! The one error type of the foundation: strings that are not digests or image references,
//! and tar streams or file operations that [`crate::fsroot`] refused or could not carry out.
//! Messages follow Docker's wording, because clients match on them.

use std::io;
use std::path::PathBuf;

/// Why a string is not a digest or an image reference, or why unpacking into a root failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A digest's algorithm prefix is missing or not `sha256`.
    #[error("unsupported digest algorithm: {0}")]
    DigestAlgorithm(String),
    /// A digest's encoded part is not 64 lowercase hex digits.
    #[error("invalid checksum digest format: {0}")]
    DigestFormat(String),
    /// General reference syntax error.
    #[error("invalid reference format")]
    Format,
    /// Upper-case letters in the repository path.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// A bare 64-hex string, which Docker reserves for ids.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    LooksLikeId(String),
    /// The name is longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    TooLong,
    /// The digest part of a reference does not parse (the message is the digest error's).
    #[error("invalid reference format: {0}")]
    ReferenceDigest(#[source] Box<Error>),

    /// The tar stream ended in the middle of a header or an entry.
    #[error("unexpected EOF in {label} tar")]
    TarTruncated {
        /// What was being unpacked (`layer`, `build context`, `archive`).
        label: &'static str,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The tar stream is not a tar, or a header field does not decode.
    #[error("invalid tar header in {label}: {source}")]
    TarHeader {
        /// What was being unpacked.
        label: &'static str,
        /// What the tar reader reported.
        #[source]
        source: io::Error,
    },
    /// An entry's name (or a hard link's target) climbs above the root with `..`.
    #[error("path escapes the {label} root: {path}")]
    Escape {
        /// What was being unpacked.
        label: &'static str,
        /// The name as the tar gives it.
        path: PathBuf,
    },
    /// A hard link names a file that is not (yet) in the root.
    #[error("hardlink target not found in {label}: {target}")]
    LinkTarget {
        /// What was being unpacked.
        label: &'static str,
        /// The link's target as the tar gives it.
        target: PathBuf,
    },
    /// A device node in a tar from outside, which could hand containers a host device.
    #[error("device nodes are not allowed in a {label}: {path}")]
    Device {
        /// What was being unpacked.
        label: &'static str,
        /// Where the node would have gone, relative to the root.
        path: PathBuf,
    },
    /// An entry type with no meaning here (not a file, directory, link, FIFO or device).
    #[error("invalid tar header in {label}: unsupported entry type {kind} for {path}")]
    EntryType {
        /// What was being unpacked.
        label: &'static str,
        /// The type flag as the tar gives it.
        kind: String,
        /// The entry's name.
        path: PathBuf,
    },
    /// An entry for the root itself that is not a directory.
    #[error("invalid tar entry for the {label} root: {path}")]
    RootEntry {
        /// What was being unpacked.
        label: &'static str,
        /// The entry's name.
        path: PathBuf,
    },
    /// A directory in a path is a file.
    #[error("cannot create {path}: a parent is not a directory")]
    ParentNotDir {
        /// The path being created, relative to the root.
        path: PathBuf,
    },
    /// A parent is a symlink to nothing, and the rules in force do not follow it.
    #[error("cannot create {path}: {link} is a symlink to a missing directory")]
    DanglingParent {
        /// The path being created, relative to the root.
        path: PathBuf,
        /// The dangling symlink.
        link: PathBuf,
    },
    /// A file, link or node would replace an existing directory.
    #[error("cannot replace directory {path} with a non-directory")]
    ReplaceDir {
        /// The directory, relative to the root.
        path: PathBuf,
    },
    /// The regular files of a tar add up to more than the limit in force (a sparse file
    /// counting its full length).
    #[error("{label} too large: its files add up to more than {limit} bytes, the daemon's max-layer-size")]
    TooLarge {
        /// What was being unpacked.
        label: &'static str,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A directory entry met an existing non-directory under `keep_non_dirs`.
    #[error("cannot overwrite non-directory {path} with a directory")]
    ReplaceNonDir {
        /// The entry's path.
        path: PathBuf,
    },
    /// A file system operation inside the root failed.
    #[error("{op} {path}: {source}")]
    Fs {
        /// What we were doing.
        op: &'static str,
        /// Where, relative to the root.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The error class: bad input, except a file operation that failed for a reason of
    /// its own.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Error::Fs { source, .. } if source.kind() == io::ErrorKind::NotFound => crate::ErrorKind::NotFound,
            Error::Fs { .. } => crate::ErrorKind::Internal,
            _ => crate::ErrorKind::InvalidArgument,
        }
    }

    /// Adapter for `map_err`: a failed file operation `op` on `path`.
    pub fn fs<E: Into<io::Error>>(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(E) -> Error {
        let path = path.into();
        move |e| Error::Fs { op, path, source: e.into() }
    }
}
