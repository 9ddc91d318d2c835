//! The compose model: files found and loaded, merged in order, interpolated, validated
//! against the Compose Specification's schema, and normalised into typed structs.

pub mod env;
pub mod interpolate;
mod load;
pub mod merge;
pub mod normalize;
mod project;
pub mod schema;
pub mod source;
pub mod types;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use load::{DEFAULT_FILES, OVERRIDE_FILES, load, normalize_project_name};
pub use source::Location;
pub use types::*;

/// What to load, as `docker compose` takes it from its flags and environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The caller's current directory: relative `-f` and `--env-file` paths are relative
    /// to it, discovery starts in it, errors name files relative to it. Empty = the
    /// process's current directory.
    pub working_dir: PathBuf,
    /// `--project-directory`: what relative paths in the files are relative to. `None` =
    /// the directory of the first compose file.
    pub project_directory: Option<PathBuf>,
    /// `-f` files in order; empty = `COMPOSE_FILE`, else discover `compose.yaml`,
    /// `compose.yml`, `docker-compose.yml`, `docker-compose.yaml` (and the matching
    /// `*.override.*`) in `working_dir` and its parents.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file` files; empty = `<project dir>/.env` when it exists.
    pub env_files: Vec<PathBuf>,
    /// `--profile`; empty = `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// The process environment (`COMPOSE_FILE`, `COMPOSE_PROJECT_NAME`, `COMPOSE_PROFILES`,
    /// `COMPOSE_PATH_SEPARATOR` are read from it). It wins over the env files.
    pub environment: BTreeMap<String, String>,
    /// Resolve relative paths (bind sources, build contexts, env files) to absolute ones.
    pub resolve_paths: bool,
    /// What `-f -` reads: the caller passes standard input's content here.
    pub stdin: Option<String>,
}
