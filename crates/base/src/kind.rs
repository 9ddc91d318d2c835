//! The classes of failure that cross crate boundaries. Only the daemon's server maps a
//! kind to an HTTP status; everything below it just says which kind an error is.

/// What kind of failure an error is, independent of which crate raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object does not exist (HTTP 404).
    NotFound,
    /// The request conflicts with the current state, e.g. a name in use (HTTP 409).
    Conflict,
    /// The request is malformed or asks for something impossible (HTTP 400).
    InvalidArgument,
    /// Nothing to do: the object is already in the requested state (HTTP 304).
    NotModified,
    /// The operation is not allowed in this configuration (HTTP 403).
    Forbidden,
    /// A dependency (registry, kernel feature) is unavailable right now (HTTP 503).
    Unavailable,
    /// Something berth deliberately does not do (yet) (HTTP 501).
    NotImplemented,
    /// Anything else: a bug or an unexpected OS failure (HTTP 500).
    Internal,
}
