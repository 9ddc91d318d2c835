//! Compose: multi-container applications described by a compose file. `model` loads,
//! merges, interpolates and validates the files into a typed project (no I/O beyond reading
//! them); `planner` turns a project into Engine API calls through `berth_api::Client` and is
//! what `berth compose` runs. Nothing here touches the daemon's data root.

pub mod error;
pub mod model;
pub mod planner;

pub use error::ComposeError;
