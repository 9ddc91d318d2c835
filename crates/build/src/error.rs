//! The one error type of the builder: Dockerfile syntax and instruction errors, shell-word
//! expansion, the build context (`.dockerignore`, COPY/ADD) and the solver.

use std::borrow::Cow;
use std::io;
use std::path::Path;

use berth_base::{Digest, ErrorKind};

use crate::frontend::shell::go_quote;

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
    #[error("{}", instruction_text(message, *start_line))]
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
    #[error("failed to fetch {url}: {source}")]
    Remote {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The `git` program is not installed.
    #[error("git was not found: install git to build from a git repository")]
    GitNotFound,
    /// The `git` program could not be started.
    #[error("run git: {0}")]
    GitSpawn(#[source] io::Error),
    /// `git` failed; the last line it wrote on stderr says why.
    #[error("{stderr}")]
    GitCommand {
        /// git's last line of stderr.
        stderr: String,
    },
    /// `repo.git#ref:dir` names a directory the checkout does not have.
    #[error("subdirectory {subdir:?} not found in the repository")]
    GitSubdir {
        /// The sub-directory asked for.
        subdir: String,
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
    /// A Dockerfile could not be parsed or lowered: the error carries its line, this its
    /// file (`Dockerfile:7: unknown instruction: RUNN`).
    #[error("{}", located(file, source))]
    Dockerfile {
        /// Dockerfile name.
        file: String,
        /// The error, with its line.
        #[source]
        source: Box<Error>,
    },
    /// A step failed: `Dockerfile:7: RUN pip install x: exit code 1`.
    #[error("{file}:{line}: {instruction}: {source}")]
    Step {
        /// Dockerfile name.
        file: String,
        /// 1-based line.
        line: usize,
        /// The instruction as written.
        instruction: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// The context could not be opened or unpacked.
    #[error("unable to prepare context: {0}")]
    PrepareContext(#[source] Box<Error>),
    /// A `remote=` context that is neither a git repository nor an HTTP(S) URL.
    #[error("unsupported remote context {url:?}")]
    UnsupportedRemoteContext {
        /// The context as given.
        url: String,
    },
    /// The Dockerfile is not in the context (or not at the absolute path given).
    #[error("Cannot locate specified Dockerfile: {name}")]
    DockerfileNotFound {
        /// The name as given.
        name: String,
    },
    /// The Dockerfile is not text.
    #[error("{name} is not valid UTF-8")]
    DockerfileNotUtf8 {
        /// The name as given.
        name: String,
    },
    /// `--platform` or `FROM --platform` is not `os/arch[/variant]`.
    #[error("failed to parse platform {spec:?}: expected os/arch[/variant]")]
    Platform {
        /// The platform as given.
        spec: String,
    },
    /// A local base image is for another platform than the one wanted.
    #[error(
        "image with reference {image} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"
    )]
    PlatformMismatch {
        /// The base as named.
        image: String,
        /// The platform wanted.
        wanted: String,
        /// The image's platform.
        actual: String,
    },
    /// `--target` names no stage.
    #[error("failed to reach build target {target} in Dockerfile")]
    UnknownTarget {
        /// The target as given.
        target: String,
    },
    /// The plan has no stage.
    #[error("file with no instructions")]
    EmptyPlan,
    /// A FROM names an image the store does not have.
    #[error("failed to resolve base image {name}: {source} (berth cannot pull images yet: import or build it first)")]
    BaseImage {
        /// The base as named.
        name: String,
        /// The store's answer.
        #[source]
        source: berth_image::Error,
    },
    /// `COPY --from` or `--mount from=` names neither a stage nor a stored image.
    #[error("failed to resolve --from={name}: {source}")]
    FromImage {
        /// The name as written.
        name: String,
        /// The store's answer.
        #[source]
        source: berth_image::Error,
    },
    /// An instruction before any FROM reached the solver.
    #[error("no FROM before this instruction")]
    NoFrom,
    /// A stage the plan depends on was not built (a bug in the scheduler).
    #[error("stage {stage} was not built")]
    StageNotBuilt {
        /// The stage's name or index.
        stage: String,
    },
    /// A stage's thread panicked.
    #[error("a build stage panicked")]
    StagePanicked,
    /// One of the base image's ONBUILD triggers failed.
    #[error("ONBUILD trigger {trigger:?}: {source}")]
    Trigger {
        /// The trigger as recorded in the base image.
        trigger: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
    /// An ONBUILD trigger that Docker refuses (`FROM`, `ONBUILD`, `MAINTAINER`).
    #[error("{instruction} isn't allowed as an ONBUILD trigger")]
    TriggerNotAllowed {
        /// The instruction, upper case.
        instruction: String,
    },
    /// An ONBUILD trigger without an instruction.
    #[error("empty trigger")]
    EmptyTrigger,
    /// `RUN --device` (CDI devices are not supported).
    #[error("RUN --device={name} needs CDI devices, which berth does not support")]
    CdiDevice {
        /// The device as written.
        name: String,
    },
    /// `COPY <url>`: only ADD downloads.
    #[error("source can't be a URL for COPY: {url} (ADD downloads URLs)")]
    CopyUrl {
        /// The URL.
        url: String,
    },
    /// `RUN --security=insecure` without the build's entitlement.
    #[error("RUN --security=insecure needs the security.insecure entitlement: build with --allow security.insecure")]
    InsecureNotAllowed,
    /// A RUN step could not be started (the [`crate::executor::StepExecutor`]'s error).
    #[error("{0}")]
    Exec(#[source] crate::executor::BoxError),
    /// A RUN step's command exited with a non-zero code.
    #[error("process \"{command}\" did not complete successfully: exit code: {code}{}", tail_text(tail))]
    RunFailed {
        /// The argv, joined with spaces.
        command: String,
        /// The exit code.
        code: i32,
        /// The last lines of its output.
        tail: Vec<String>,
    },
    /// `--chmod` is not an octal mode.
    #[error("invalid chmod: {mode}")]
    InvalidChmod {
        /// The mode as written.
        mode: String,
    },
    /// `SHELL []`.
    #[error("SHELL requires at least one argument")]
    EmptyShell,
    /// `ADD --checksum` with a source that is not a single URL.
    #[error("checksum can't be specified for non-HTTP(S) sources")]
    ChecksumNotHttp,
    /// `ADD --checksum` names another commit than the one checked out.
    #[error("expected checksum to match {want}, got {got}")]
    GitChecksum {
        /// The checksum asked for.
        want: String,
        /// The commit checked out.
        got: String,
    },
    /// `ADD --checksum` is not a digest.
    #[error("invalid checksum {checksum}: {source}")]
    InvalidChecksum {
        /// The checksum as written.
        checksum: String,
        /// Why it is not a digest.
        #[source]
        source: berth_base::Error,
    },
    /// A download's digest is not the one `ADD --checksum` asked for.
    #[error("digest mismatch for {url}: expected {want}, got {got}")]
    DigestMismatch {
        /// The URL.
        url: String,
        /// The digest asked for.
        want: Digest,
        /// The body's digest.
        got: Digest,
    },
    /// Neither the URL nor the server named the downloaded file.
    #[error("cannot determine a file name from URL {url}: give the destination's file name")]
    NoFileName {
        /// The URL.
        url: String,
    },
    /// A download failed (the [`crate::executor::Fetcher`]'s error).
    #[error("{0}")]
    Fetch(#[source] crate::executor::BoxError),
    /// `RUN --mount=type=secret,required` and the build was given no such secret.
    #[error("secret {id} not found")]
    SecretNotFound {
        /// The secret's id.
        id: String,
    },
    /// `RUN --mount=type=ssh,required` and the client forwarded no such agent.
    #[error("no SSH agent {id:?} forwarded from the client (build --ssh {id}=<socket>)")]
    NoSshAgent {
        /// The agent's id.
        id: String,
    },
    /// The image config grew past the builder's bound (see
    /// [`crate::solver::MAX_CONFIG_BYTES`]).
    #[error("image config is {size} bytes, more than the {limit} bytes a build may make")]
    ConfigTooLarge {
        /// Its size, serialised.
        size: usize,
        /// The bound.
        limit: usize,
    },
    /// A bind mount's source does not exist.
    #[error("bind source {path}: {source}")]
    BindSource {
        /// The source as written.
        path: String,
        /// Why it cannot be used.
        #[source]
        source: io::Error,
    },
    /// A bind mount's source leaves its root.
    #[error("bind source {path} is outside its root")]
    BindOutside {
        /// The source as written.
        path: String,
    },
    /// The image config could not be built.
    #[error("{0}")]
    ImageConfig(#[source] oci_spec::OciSpecError),
    /// The image config could not be encoded.
    #[error("{0}")]
    Json(#[source] serde_json::Error),
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
            | Error::GitCommand { .. }
            | Error::GitSubdir { .. }
            | Error::DestNotDir
            | Error::ReplaceDir { .. }
            | Error::UnknownOwner { .. }
            | Error::Archive { .. }
            | Error::PrepareContext(_)
            | Error::UnsupportedRemoteContext { .. }
            | Error::DockerfileNotFound { .. }
            | Error::DockerfileNotUtf8 { .. }
            | Error::Dockerfile { .. }
            | Error::Platform { .. }
            | Error::PlatformMismatch { .. }
            | Error::UnknownTarget { .. }
            | Error::EmptyPlan
            | Error::BaseImage { .. }
            | Error::FromImage { .. }
            | Error::NoFrom
            | Error::Trigger { .. }
            | Error::TriggerNotAllowed { .. }
            | Error::EmptyTrigger
            | Error::CdiDevice { .. }
            | Error::CopyUrl { .. }
            | Error::InsecureNotAllowed
            | Error::Exec(_)
            | Error::RunFailed { .. }
            | Error::InvalidChmod { .. }
            | Error::EmptyShell
            | Error::ChecksumNotHttp
            | Error::GitChecksum { .. }
            | Error::InvalidChecksum { .. }
            | Error::DigestMismatch { .. }
            | Error::NoFileName { .. }
            | Error::Fetch(_)
            | Error::SecretNotFound { .. }
            | Error::NoSshAgent { .. }
            | Error::BindSource { .. }
            | Error::BindOutside { .. }
            | Error::ConfigTooLarge { .. } => ErrorKind::InvalidArgument,
            // A step's own failures are the Dockerfile's fault; the image store's are not.
            Error::Step { source, .. } => match **source {
                Error::Image(ref e) => e.kind(),
                _ => ErrorKind::InvalidArgument,
            },
            Error::GitNotFound
            | Error::GitSpawn(_)
            | Error::StageNotBuilt { .. }
            | Error::StagePanicked
            | Error::ImageConfig(_)
            | Error::Json(_) => ErrorKind::Internal,
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
            Self::Step { line, .. } => *line,
            Self::Dockerfile { source, .. } => source.line(),
            _ => 0,
        }
    }

    /// The last Dockerfile line the error concerns (1-based), 0 when it concerns none.
    pub fn end_line(&self) -> usize {
        match self {
            Self::Syntax { end_line, .. } | Self::Instruction { end_line, .. } => *end_line,
            Self::Step { line, .. } => *line,
            Self::Dockerfile { source, .. } => source.end_line(),
            _ => 0,
        }
    }

    /// The Dockerfile and line the error comes from, when it comes from one.
    pub fn location(&self) -> Option<(&str, usize)> {
        match self {
            Self::Step { file, line, .. } => Some((file, *line)),
            Self::Dockerfile { file, source } => Some((file, source.line())),
            _ => None,
        }
    }

    /// The same error at lines `start_line..=end_line` of the Dockerfile (for errors found
    /// before the caller knew where they were).
    pub(crate) fn at_lines(self, start_line: usize, end_line: usize) -> Self {
        match self {
            Self::Syntax { message, .. } => Self::syntax(message, start_line, end_line),
            Self::Instruction { message, .. } => Self::Instruction { message, start_line, end_line },
            other => other,
        }
    }

    /// An instruction error whose line is set later ([`Error::at_lines`]).
    pub(crate) fn instruction(message: impl Into<String>) -> Self {
        Self::Instruction { message: message.into(), start_line: 0, end_line: 0 }
    }

    /// This error, found in Dockerfile `file`.
    pub fn in_file(self, file: &str) -> Self {
        Self::Dockerfile { file: file.to_owned(), source: Box::new(self) }
    }

    /// `Dockerfile:7: unknown instruction: RUNN`, the form users see with the file name.
    /// Errors not tied to a line read `Dockerfile: <message>`.
    pub fn located(&self, file: &str) -> String {
        located(file, self)
    }
}

fn located(file: &str, e: &Error) -> String {
    match e.line() {
        0 => format!("{file}: {}", e.message()),
        line => format!("{file}:{line}: {}", e.message()),
    }
}

fn instruction_text(message: &str, line: usize) -> String {
    match line {
        0 => message.to_owned(),
        line => format!("dockerfile parse error on line {line}: {message}"),
    }
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() { String::new() } else { format!("\n{}", tail.join("\n")) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_docker_and_buildkit_write_them() {
        assert_eq!(Error::instruction("bad flag").to_string(), "bad flag");
        assert_eq!(
            Error::instruction("bad flag").at_lines(4, 3).to_string(),
            "dockerfile parse error on line 4: bad flag"
        );
        let run = Error::RunFailed { command: "/bin/sh -c exit 3".into(), code: 3, tail: vec!["a".into(), "b".into()] };
        assert_eq!(run.to_string(), "process \"/bin/sh -c exit 3\" did not complete successfully: exit code: 3\na\nb");
        let run = Error::RunFailed { command: "true".into(), code: 1, tail: Vec::new() };
        assert_eq!(run.to_string(), "process \"true\" did not complete successfully: exit code: 1");
    }

    #[test]
    fn a_step_error_keeps_its_location_and_cause() {
        let e = Error::Step {
            file: "Dockerfile".into(),
            line: 7,
            instruction: "RUN make".into(),
            source: Box::new(Error::RunFailed { command: "make".into(), code: 2, tail: Vec::new() }),
        };
        assert_eq!(e.location(), Some(("Dockerfile", 7)));
        assert_eq!((e.line(), e.kind()), (7, ErrorKind::InvalidArgument));
        assert!(e.to_string().starts_with("Dockerfile:7: RUN make: process \"make\""));
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("process \"make\" did not complete successfully: exit code: 2"));
        let git = Error::Remote { url: "git://h/r".into(), source: Box::new(Error::GitNotFound) };
        assert!(std::error::Error::source(&git).is_some());
        assert_eq!(
            Error::Syntax { message: "x".into(), start_line: 2, end_line: 2 }.in_file("D").to_string(),
            "D:2: x"
        );
    }
}
