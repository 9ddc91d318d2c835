//! The plan: a Dockerfile lowered into stages of steps, which is all the solver reads.
//! It holds no Dockerfile syntax; the few things that can only be lowered once the build
//! runs (words that use variables, `--mount` specs with variables, the base image's
//! ONBUILD triggers) go back to the frontend through the one [`Lowering`] interface.

use std::sync::Arc;

use berth_image::HealthConfig;

use crate::Error;
use crate::executor::Network;

/// A step as the solver runs it, lowered from the parser's typed instructions.
#[derive(Debug, Clone)]
pub enum Step {
    /// `FROM [--platform=p] image [AS name]` (unexpanded).
    From {
        /// Base image or stage name.
        base: String,
        /// `--platform`.
        platform: Option<String>,
    },
    /// `RUN`.
    Run {
        /// Shell form text, or exec form argv.
        cmd: Command,
        /// `--mount` specs.
        mounts: Vec<RunMount>,
        /// `--network`.
        network: Option<Network>,
        /// `--security=insecure`.
        insecure: bool,
    },
    /// `COPY`/`ADD`.
    Copy {
        /// ADD rather than COPY.
        add: bool,
        /// Sources (unexpanded).
        sources: Vec<String>,
        /// Destination (unexpanded).
        dest: String,
        /// `--from`.
        from: Option<String>,
        /// `--chown`.
        chown: Option<String>,
        /// `--chmod` (octal text).
        chmod: Option<String>,
        /// Inline heredoc files: (name, content, whether variables in it are expanded:
        /// the delimiter was not quoted).
        heredocs: Vec<(String, String, bool)>,
        /// `ADD --checksum` (sha256 digest of a URL's body, or a git commit).
        checksum: Option<String>,
        /// `ADD --keep-git-dir`.
        keep_git_dir: bool,
        /// `COPY --parents`.
        parents: bool,
        /// `--exclude` patterns (unexpanded).
        exclude: Vec<String>,
    },
    /// `WORKDIR`.
    Workdir(String),
    /// `ENV`.
    Env(Vec<(String, String)>),
    /// `LABEL`.
    Label(Vec<(String, String)>),
    /// `EXPOSE`.
    Expose(Vec<String>),
    /// `USER`.
    User(String),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL`.
    Shell(Vec<String>),
    /// `ARG name[=default]`.
    Arg(Vec<(String, Option<String>)>),
    /// `ONBUILD` (recorded in the config).
    OnBuild(String),
    /// `MAINTAINER`.
    Maintainer(String),
    /// `HEALTHCHECK` (None for `HEALTHCHECK NONE`).
    Healthcheck(Option<HealthConfig>),
}

/// Shell or exec form.
#[derive(Debug, Clone)]
pub enum Command {
    /// `RUN echo hi`.
    Shell(String),
    /// `RUN ["echo", "hi"]`.
    Exec(Vec<String>),
}

/// A `RUN --mount`.
#[derive(Debug, Clone)]
pub enum RunMount {
    /// `type=cache,target=…[,id=…]`.
    Cache {
        /// Mount point.
        target: String,
        /// Cache id (defaults to the target).
        id: Option<String>,
    },
    /// `type=secret,id=…[,target=…]`.
    Secret {
        /// Secret id.
        id: String,
        /// Mount point (default `/run/secrets/<id>`).
        target: Option<String>,
        /// Fail when the secret was not given.
        required: bool,
    },
    /// `type=bind[,from=…],source=…,target=…[,rw]`.
    Bind {
        /// Stage or image, or the context when None.
        from: Option<String>,
        /// Path in the source.
        source: String,
        /// Mount point.
        target: String,
        /// Writable (changes are discarded).
        rw: bool,
    },
    /// `type=tmpfs,target=…[,size=…]`.
    Tmpfs {
        /// Mount point.
        target: String,
        /// `size=` in bytes (0: the kernel's default).
        size: i64,
    },
    /// `type=ssh[,id=…][,target=…]`: the client's SSH agent socket.
    Ssh {
        /// Which forwarded agent (`default` when not given).
        id: String,
        /// Mount point (default `/run/buildkit/ssh_agent.<n>`).
        target: Option<String>,
        /// Fail when the build was given no such agent.
        required: bool,
    },
    /// A spec that uses variables, parsed once the step's variables are known.
    Deferred(String),
}

/// One stage, lowered.
#[derive(Debug, Clone)]
pub struct StageSteps {
    /// `AS name`.
    pub name: Option<String>,
    /// Steps with their 1-based line and original text; the first is `From`.
    pub steps: Vec<(usize, String, Step)>,
}

/// A parsed Dockerfile, lowered for the solver.
#[derive(Clone)]
pub struct Plan {
    /// ARGs before the first FROM.
    pub global_args: Vec<(String, Option<String>)>,
    /// Stages in file order.
    pub stages: Vec<StageSteps>,
    /// What is lowered while the build runs, by the frontend that made this plan.
    pub lowering: Arc<dyn Lowering>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan").field("global_args", &self.global_args).field("stages", &self.stages).finish()
    }
}

impl Plan {
    /// A stage by name (case-insensitively) or index, as `FROM`, `COPY --from` and
    /// `--mount from=` name them.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        if let Some(i) =
            self.stages.iter().position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < self.stages.len())
    }
}

/// The one way back into the Dockerfile frontend while the solver runs: what can only be
/// lowered once values known at solve time are (the variables a step sees, the base image
/// found for a FROM). Everything else was lowered before the solver started.
pub trait Lowering: Send + Sync {
    /// Expands one word with BuildKit's rules in the step's variables `env`.
    fn expand_word(&self, word: &str, env: &[(String, String)]) -> Result<String, Error>;
    /// Expands variables in a heredoc's content, leaving its quotes as they are.
    fn expand_heredoc(&self, data: &str, env: &[(String, String)]) -> Result<String, Error>;
    /// Lowers a `RUN --mount` spec that uses variables ([`RunMount::Deferred`]).
    fn mount(&self, raw: &str, env: &[(String, String)]) -> Result<RunMount, Error>;
    /// Lowers one ONBUILD trigger of a base image (`RUN make`).
    fn trigger(&self, text: &str) -> Result<Step, Error>;
}
