//! The one error type of the foundation: strings that are not digests or image references.
//! Messages follow Docker's wording, because clients match on them.

/// Why a string is not a digest or an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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
    ReferenceDigest(String),
}

impl Error {
    /// The error class: every variant is bad input.
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::InvalidArgument
    }
}
