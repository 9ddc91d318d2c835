//! berth's image store: content-addressed blobs, image records and tags in SQLite,
//! layers unpacked once into overlay-ready snapshots, and container root filesystems
//! mounted from them.

mod apply;
pub mod content;
mod error;

pub use error::Error;
