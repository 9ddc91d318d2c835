//! The image builder, a straight pipeline: the Dockerfile [`frontend`] (parser, typed
//! instructions, BuildKit's shell-word expansion, lowering) makes a [`plan`], which the
//! [`solver`] runs into layers, stage by stage, step by step. Around it: the build
//! context (.dockerignore, tar or directory), COPY/ADD file operations ([`copy`]),
//! remote sources, the step cache. Running a RUN step is the one thing it asks of the
//! daemon, through [`executor::StepExecutor`]; nothing here knows HTTP or libcontainer.

mod bindmount;
pub mod cache;
pub mod context;
pub mod copy;
pub mod error;
pub mod executor;
pub mod frontend;
pub mod plan;
pub mod platform;
pub mod remote;
mod rootfs;
pub mod solver;

/// `.dockerignore` matching lives in `berth_context` (the CLI links it too); re-exported so
/// the builder's paths stay as they were.
pub use berth_context::dockerignore;
pub use error::Error;
