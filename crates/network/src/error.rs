//! The network crate's error type.

use std::io;

use berth_base::ErrorKind;

/// Everything that can go wrong while setting up or tearing down networking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or netlink request failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `nft` refused or failed to run a batch.
    #[error("nftables: {what}: {source}")]
    Nft {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: nftables::helper::NftablesError,
    },
    /// A rule batch we built did not match nftables' JSON schema (a bug in berth).
    #[error("nftables: invalid rule batch: {0}")]
    NftSchema(#[source] serde_json::Error),
    /// A helper thread panicked.
    #[error("a network helper thread panicked")]
    Thread,
    /// An address or port the caller asked for is taken.
    #[error("{0}")]
    InUse(String),
    /// Bad input: an address outside the subnet, a malformed subnet, an overlap.
    #[error("{0}")]
    Invalid(String),
    /// The pool has no address left.
    #[error("{0}")]
    Exhausted(String),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }

    /// The kind of failure, for the daemon's HTTP mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::InvalidArgument,
            Error::InUse(_) | Error::Exhausted(_) => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
