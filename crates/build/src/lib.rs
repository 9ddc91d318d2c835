//! The image builder: the Dockerfile language (parser, typed instructions, BuildKit's
//! shell-word expansion), the build context (.dockerignore, tar or directory), COPY/ADD
//! file operations, the step cache, and the solver that turns stages into layers. Running
//! a RUN step is the one thing it asks of the daemon, through [`executor::StepExecutor`];
//! nothing here knows HTTP or libcontainer.

pub mod cache;
pub mod context;
pub mod copy;
pub mod error;
pub mod executor;
pub mod glue;
pub mod instructions;
pub mod parser;
pub mod remote;
pub mod shell;
pub mod solver;

/// `.dockerignore` matching lives in `berth_context` (the CLI links it too); re-exported so
/// the builder's paths stay as they were.
pub use berth_context::dockerignore;
pub use error::Error;
