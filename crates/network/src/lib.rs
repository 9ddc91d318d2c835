//! Container networking: network namespaces, Linux bridges and veth pairs (route
//! netlink), IPAM, NAT and published ports in an nftables table of our own. Knows nothing
//! of containers or HTTP: the daemon asks for an attachment and gets one.

pub mod bridge;
pub mod dns;
pub mod driver;
mod error;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod nfnl;
pub mod nft;
pub mod portmap;
pub mod proxy;
pub mod spare;

pub use error::{Error, Result};
