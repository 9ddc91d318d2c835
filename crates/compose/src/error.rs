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
    /// The daemon refused or failed a call.
    #[error(transparent)]
    Api(#[from] berth_api::client::ClientError),
}
