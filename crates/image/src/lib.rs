//! berth's image store: content-addressed blobs, image records and tags in SQLite,
//! layers unpacked once into overlay-ready snapshots, and container root filesystems
//! mounted from them.

mod apply;
pub mod archive;
pub mod changes;
mod compress;
pub mod content;
mod diff;
mod error;
pub mod explore;
pub mod extras;
mod ingest;
mod mount;
mod store;

pub use apply::decompress;
pub use compress::MEDIA_TYPE_LAYER_GZIP;
pub use error::Error;
pub use extras::{ConfigExtras, HealthConfig};
pub use ingest::LayerSource;
pub use mount::{ensure_parent_mount, is_parent_mount};
pub use store::{
    ContainerUse, DeleteItem, HistoryEntry, Image, ImageStore, ImportOptions, Layer, LayerLease, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST, chain_ids,
};
