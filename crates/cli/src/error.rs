//! The CLI's one error type: what a command can fail with, and the exit code and kind it
//! maps to.

use berth_api::ClientError;

/// Everything a command can fail with; `main` prints it and picks the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon or the connection to it failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A flag value was rejected before any request was sent; printed like a daemon error.
    #[error("{0}")]
    Opt(String),
    /// A `--format` template did not parse or execute.
    #[error("template parsing error: {0}")]
    Template(#[from] gotmpl::TemplateError),
    /// Local I/O (reading an env file, stdin, the terminal).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The build context could not be read or its `.dockerignore` is malformed.
    #[error("unable to prepare context: {0}")]
    Context(#[from] berth_context::Error),
    /// A failure already printed; only the exit code remains.
    #[error("exit status {0}")]
    Status(i32),
    /// Any other message, printed as is.
    #[error("{0}")]
    Message(String),
}

impl CliError {
    /// The error class.
    pub fn kind(&self) -> berth_base::ErrorKind {
        match self {
            CliError::Client(e) => e.kind(),
            CliError::Opt(_) | CliError::Template(_) => berth_base::ErrorKind::InvalidArgument,
            CliError::Context(e) => e.kind(),
            _ => berth_base::ErrorKind::Internal,
        }
    }
}
