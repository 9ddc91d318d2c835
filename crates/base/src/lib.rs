//! berth's foundation types: object ids, content digests, image references, the error
//! kinds every crate maps its errors to, crash-safe file primitives, and the one safe-path
//! layer (`fsroot`: paths and tar streams confined to a root). No async, no policy: just the
//! vocabulary the other crates share.

pub mod digest;
pub mod error;
pub mod fsroot;
pub mod fsutil;
pub mod id;
pub mod kind;
pub mod reference;

pub use digest::Digest;
pub use error::Error;
pub use id::{is_full_id, new_id, short_id};
pub use kind::ErrorKind;
pub use reference::Reference;
