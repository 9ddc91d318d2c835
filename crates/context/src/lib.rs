//! The client side of a build context: Docker's `.dockerignore` rules and the tar the docker
//! CLI uploads. It links no engine crate, so the CLI (and compose) can send a context to a
//! remote daemon exactly as the builder reads it.

pub mod archive;
pub mod dockerignore;
pub mod error;

pub use archive::{ContextTar, tar_context};
pub use dockerignore::{IgnoreMatcher, clean_path, glob_match, has_wildcards};
pub use error::Error;
