//! The compose crate's one error type: what went wrong loading a project (with the file,
//! line and key it came from) or converging it through the Engine API.

/// Everything that can go wrong in compose.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    // ---- loading the model (model/) ----
    /// A compose file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A compose file is not valid YAML.
    #[error("{file}{}: {message}", line.map(|l| format!(": line {l}")).unwrap_or_default())]
    Yaml {
        /// The file.
        file: String,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// The parser's message.
        message: String,
    },

    /// A compose file breaks the Compose Specification's schema (compose's wording).
    #[error("{at}: {message}")]
    Schema {
        /// File, line and key.
        at: crate::model::Location,
        /// What is wrong (`additional properties 'imgae' not allowed`).
        message: String,
    },

    /// A variable could not be substituted.
    #[error("{at}: {source}")]
    Interpolation {
        /// File, line and key.
        at: crate::model::Location,
        /// Why.
        #[source]
        source: crate::model::interpolate::TemplateError,
    },

    /// A value means nothing to compose once written out (a port or volume spec that
    /// does not parse, a reference to an undefined network, a missing build context…);
    /// the message says which, in compose's words where it has some.
    #[error("{at}: {message}")]
    Invalid {
        /// File, line and key.
        at: crate::model::Location,
        /// What is wrong.
        message: String,
    },

    /// An env file (`.env`, `--env-file`, `env_file:`) does not parse.
    #[error("failed to read {path}: {source}")]
    EnvFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: crate::model::env::EnvFileError,
    },

    /// No compose file was given and none was found.
    #[error("no configuration file provided: not found")]
    NoComposeFile {
        /// Where we looked (and its parents).
        dir: std::path::PathBuf,
    },

    /// `-p` or `COMPOSE_PROJECT_NAME` is not a valid project name.
    #[error(
        "invalid project name {name:?}: must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
    )]
    ProjectName {
        /// The name given.
        name: String,
    },

    /// No name could be derived for the project.
    #[error("project name must not be empty")]
    EmptyProjectName,

    /// `extends` or `include` loops back on itself.
    #[error("{kind} cycle detected: {}", chain.join(" -> "))]
    ReferenceCycle {
        /// `extends` or `include`.
        kind: &'static str,
        /// The chain, the first repeated at the end.
        chain: Vec<String>,
    },

    /// The project has no service by this name.
    #[error("no such service: {name}")]
    NoSuchService {
        /// The name asked for.
        name: String,
    },

    /// A service needs (depends_on, links, network_mode, volumes_from) a service that is
    /// not defined.
    #[error("service {service:?} depends on undefined service {dependency:?}: invalid compose project")]
    UndefinedDependency {
        /// The service that needs it.
        service: String,
        /// The missing one.
        dependency: String,
    },

    /// Services need each other in a circle.
    #[error("dependency cycle detected: {}", cycle.join(" -> "))]
    DependencyCycle {
        /// The services on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },

    /// The project could not be printed as YAML.
    #[error("cannot print the project: {source}")]
    Print {
        /// Why.
        #[source]
        source: serde_norway::Error,
    },

    // ---- converging a project (planner/) ----
    /// A service asks for something the planner cannot give it.
    #[error("service {service:?}: {what} is not supported")]
    Unsupported {
        /// The service.
        service: String,
        /// What it asked for.
        what: String,
    },
    /// A service has no container to act on (`exec`, `port`, `cp`).
    #[error("service {service:?} is not running")]
    NotRunning {
        /// The service.
        service: String,
    },
    /// A service can neither be pulled nor built.
    #[error("service {service:?} has neither an image nor a build context specified")]
    NoImage {
        /// The service.
        service: String,
    },
    /// Building a service's image failed.
    #[error("failed to build service {service:?}: {message}")]
    Build {
        /// The service.
        service: String,
        /// The builder's error.
        message: String,
    },
    /// Pulling an image failed.
    #[error("failed to pull {image}: {message}")]
    Pull {
        /// The image.
        image: String,
        /// The registry's or daemon's error.
        message: String,
    },
    /// Pushing an image failed.
    #[error("failed to push {image}: {message}")]
    Push {
        /// The image.
        image: String,
        /// The registry's or daemon's error.
        message: String,
    },
    /// A build context could not be read or packed.
    #[error("failed to read the build context of service {service:?}: {source}")]
    Context {
        /// The service.
        service: String,
        /// Why.
        #[source]
        source: berth_context::Error,
    },
    /// A dependency did not reach the condition its dependant waits for.
    #[error("dependency failed to start: {0}")]
    Dependency(String),
    /// `--wait` or a dependency wait ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// A request the planner refuses (a malformed `-p`, a missing external network).
    #[error("{0}")]
    Refused(String),
    /// The daemon refused or failed a call.
    #[error(transparent)]
    Api(#[from] berth_api::client::ClientError),
}
