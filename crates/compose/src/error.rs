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

    // ---- converging a project (planner/) ----
    /// The daemon refused or failed a call.
    #[error(transparent)]
    Api(#[from] berth_api::client::ClientError),
}
