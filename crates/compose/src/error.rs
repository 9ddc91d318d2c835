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
    /// A command-line value the planner was given is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The daemon refused or failed a call.
    #[error(transparent)]
    Api(#[from] berth_api::client::ClientError),
}
