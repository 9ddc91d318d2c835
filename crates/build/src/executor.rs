//! The one thing the builder cannot do itself: run a command inside a root filesystem.
//! The daemon implements [`StepExecutor`] with its shim, so the builder never touches
//! libcontainer or the API.

use std::path::{Path, PathBuf};

/// The error a [`StepExecutor`] or [`Fetcher`] gives: whatever its implementation meets
/// (the daemon's shim or HTTP client errors), kept as the cause of the build's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Which standard stream output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

/// Where a RUN step's network comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The daemon's default bridge network, with outbound access (BuildKit's default).
    Default,
    /// The host's network (`RUN --network=host`, `build --network host`).
    Host,
    /// Loopback only (`RUN --network=none`, `build --network none`).
    None,
}

/// A mount into a RUN step.
#[derive(Debug, Clone)]
pub enum StepMount {
    /// A host path (cache mounts, secrets, `--mount=type=bind`).
    Bind {
        /// Host path.
        source: PathBuf,
        /// Absolute path in the container.
        target: String,
        /// Read-only.
        readonly: bool,
    },
    /// `--mount=type=tmpfs`: an empty tmpfs, gone after the step.
    Tmpfs {
        /// Absolute path in the container.
        target: String,
        /// Size limit in bytes (0: the kernel's default, half of RAM).
        size: i64,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// argv.
    pub args: Vec<String>,
    /// Environment, `K=V`.
    pub env: Vec<String>,
    /// Working directory (absolute; created by the builder beforehand).
    pub cwd: String,
    /// User as written in the Dockerfile (`app`, `1000:1000`, empty for root).
    pub user: String,
    /// Network.
    pub network: Network,
    /// Extra mounts.
    pub mounts: Vec<StepMount>,
    /// Hostname.
    pub hostname: String,
    /// `RUN --security=insecure` (allowed by the build's `security.insecure` entitlement).
    pub privileged: bool,
    /// Size of /dev/shm in bytes (0: Docker's 64 MiB).
    pub shm_size: u64,
    /// Extra /etc/hosts entries, `name:address`.
    pub extra_hosts: Vec<String>,
}

/// Runs commands for the builder.
pub trait StepExecutor: Sync {
    /// Runs `spec` in `rootfs` (already mounted; writes land in its overlay upper dir),
    /// using `bundle_dir` for the OCI bundle and logs. Streams output to `output` and
    /// returns the exit code. An `Err` means the command could not be started at all.
    fn run(
        &self,
        bundle_dir: &Path,
        rootfs: &Path,
        spec: &RunSpec,
        output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<i32, BoxError>;
}

/// What a download told about the file besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    /// `Last-Modified`, which becomes the file's mtime (as Docker does).
    pub modified: Option<std::time::SystemTime>,
    /// The name from `Content-Disposition`, if the server sent one.
    pub filename: Option<String>,
}

/// Downloads for `ADD <url>`: the daemon implements it with its HTTP client, so the
/// builder has no network code of its own.
pub trait Fetcher: Sync {
    /// Writes the body at `url` to `dest` (a new file). An error says why, with the URL.
    fn fetch(&self, url: &str, dest: &Path) -> Result<Fetched, BoxError>;
}
