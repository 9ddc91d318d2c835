//! The planner: turns a loaded project into Engine API calls (networks, volumes, builds,
//! containers with docker compose's names and labels) and converges what runs to what the
//! project says.

pub mod converge;
pub mod create;
pub mod images;
pub mod logs;
pub mod names;
pub mod progress;
pub mod state;
