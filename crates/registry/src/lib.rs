//! berth-registry: the OCI Distribution protocol from both ends. The client resolves,
//! pulls and pushes images for the daemon; the server is `berth registry serve`, a registry
//! teams run themselves and berth's tests push to.
//!
//! The server's HTTP handlers live here, not in the daemon: they are the protocol itself,
//! share nothing with the Engine API, and are tested in this crate against real clients.
//! This is the one argued exception to "nothing below the daemon serves HTTP"
//! (docs/ARCHITECTURE.md).

pub mod client;
pub mod error;
pub mod server;

pub use error::Error;
