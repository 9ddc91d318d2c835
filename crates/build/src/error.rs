//! The one error type of the builder: Dockerfile syntax and instruction errors, shell-word
//! expansion, the build context (`.dockerignore`, COPY/ADD) and the solver.

use std::borrow::Cow;
use std::io;
use std::path::Path;

use berth_base::ErrorKind;

use crate::shell::go_quote;

/// Why a build, or one of its parts, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Dockerfile text itself is malformed (BuildKit's parser reports these without a
    /// prefix).
    #[error("{message}")]
    Syntax {
        /// Docker's message, e.g. `unterminated heredoc`.
        message: String,
        /// First line concerned (1-based).
        start_line: usize,
        /// Last line concerned (1-based).
        end_line: usize,
    },
    /// An instruction is invalid (BuildKit's instruction layer).
    #[error("dockerfile parse error on line {start_line}: {message}")]
    Instruction {
        /// Docker's message, e.g. `unknown instruction: RUNN (did you mean RUN?)`.
        message: String,
        /// First line of the instruction (1-based).
        start_line: usize,
        /// Last line of the instruction (1-based).
        end_line: usize,
    },
    /// A word that could not be expanded; the message is BuildKit's.
    #[error("failed to process {}: {message}", go_quote(word))]
    Shell {
        /// The word as given.
        word: String,
        /// What went wrong, e.g. `syntax error: missing '}'`.
        message: String,
    },
    /// A malformed `.dockerignore` or `--exclude` pattern.
    #[error("invalid pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A source path leaves the context through `..` or a symlink.
    #[error("COPY failed: forbidden path outside the build context: {path}")]
    OutsideContext {
        /// The source as written.
        path: String,
    },
    /// A source does not exist, or `.dockerignore` hides it.
    #[error(
        "COPY failed: file not found in build context or excluded by .dockerignore: stat {path}: file does not exist"
    )]
    SourceNotFound {
        /// The source as written.
        path: String,
    },
    /// A wildcard matched nothing.
    #[error("COPY failed: no source files were specified")]
    NoSourceFiles,
    /// `ADD <url>`: downloads are the build engine's job, not the context's.
    #[error("ADD from a URL is not a local source: {url}")]
    RemoteSource {
        /// The URL.
        url: String,
    },
    /// A remote source (a git repository or a URL) could not be fetched.
    #[error("failed to fetch {url}: {message}")]
    Remote {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// More than one source was given and the destination does not end in `/`.
    #[error("When using COPY with more than one source file, the destination must be a directory and end with a /")]
    DestNotDir,
    /// A file or symlink would replace an existing directory.
    #[error("cannot replace directory {path} with a non-directory")]
    ReplaceDir {
        /// Path in the destination root.
        path: String,
    },
    /// A `--chown` user or group that the image does not know.
    #[error("unable to find {what} {name}: no matching entries in {file} file")]
    UnknownOwner {
        /// `user` or `group`.
        what: &'static str,
        /// The name as written.
        name: String,
        /// `passwd` or `group`.
        file: &'static str,
    },
    /// The uploaded context or an ADD archive is not a readable tar.
    #[error("failed to read {what}: {source}")]
    Archive {
        /// What was being read.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file system operation failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The solver could not make sense of the plan (bad target, stage without FROM, ...).
    #[error("{0}")]
    Parse(String),
    /// A step failed: `Dockerfile:7: RUN pip install x: exit code 1`.
    #[error("{file}:{line}: {instruction}: {message}")]
    Step {
        /// Dockerfile name.
        file: String,
        /// 1-based line.
        line: usize,
        /// The instruction as written.
        instruction: String,
        /// What went wrong.
        message: String,
    },
    /// The build was cancelled.
    #[error("build cancelled")]
    Cancelled,
    /// The image store failed.
    #[error(transparent)]
    Image(#[from] berth_image::Error),
}

impl Error {
    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Syntax { .. }
            | Error::Instruction { .. }
            | Error::Shell { .. }
            | Error::BadPattern { .. }
            | Error::OutsideContext { .. }
            | Error::NoSourceFiles
            | Error::RemoteSource { .. }
            | Error::Remote { .. }
            | Error::DestNotDir
            | Error::ReplaceDir { .. }
            | Error::UnknownOwner { .. }
            | Error::Archive { .. }
            | Error::Parse(_)
            | Error::Step { .. } => ErrorKind::InvalidArgument,
            Error::SourceNotFound { .. } => ErrorKind::NotFound,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => ErrorKind::NotFound,
            Error::Io { .. } => ErrorKind::Internal,
            Error::Cancelled => ErrorKind::Conflict,
            Error::Image(e) => e.kind(),
        }
    }

    /// A Dockerfile syntax error covering `start_line..=end_line`.
    pub(crate) fn syntax(message: impl Into<String>, start_line: usize, end_line: usize) -> Self {
        Self::Syntax { message: message.into(), start_line, end_line: end_line.max(start_line) }
    }

    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Error {
        Error::Io { op, path: path.as_ref().display().to_string(), source }
    }

    /// The message without location: Docker's own message for Dockerfile and shell errors,
    /// the whole `Display` text otherwise.
    pub fn message(&self) -> Cow<'_, str> {
        match self {
            Self::Syntax { message, .. } | Self::Instruction { message, .. } | Self::Shell { message, .. } => {
                Cow::Borrowed(message)
            }
            other => Cow::Owned(other.to_string()),
        }
    }

    /// The first Dockerfile line the error concerns (1-based), 0 when it concerns none.
    pub fn line(&self) -> usize {
        match self {
            Self::Syntax { start_line, .. } | Self::Instruction { start_line, .. } => *start_line,
            _ => 0,
        }
    }

    /// The last Dockerfile line the error concerns (1-based), 0 when it concerns none.
    pub fn end_line(&self) -> usize {
        match self {
            Self::Syntax { end_line, .. } | Self::Instruction { end_line, .. } => *end_line,
            _ => 0,
        }
    }

    /// `Dockerfile:7: unknown instruction: RUNN`, the form users see with the file name.
    /// Errors not tied to a line read `Dockerfile: <message>`.
    pub fn located(&self, file: &str) -> String {
        match self.line() {
            0 => format!("{file}: {}", self.message()),
            line => format!("{file}:{line}: {}", self.message()),
        }
    }
}

impl From<berth_context::Error> for Error {
    /// Context errors keep their variant (and so their kind and wording) in the builder's enum.
    fn from(e: berth_context::Error) -> Self {
        match e {
            berth_context::Error::BadPattern { pattern, reason } => Error::BadPattern { pattern, reason },
            berth_context::Error::Io { op, path, source } => Error::Io { op, path, source },
        }
    }
}
