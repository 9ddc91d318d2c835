//! The driver interface, shaped like netavark's: a network is created once, then each
//! container's attachment is set up in its network namespace and torn down again.
//! Teardown is idempotent and keeps going after a failure, reporting every error.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;

use crate::error::Result;
use crate::netlink::Netlink;
use crate::nft::PortRule;

/// A network as the driver sees it.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    /// Network id.
    pub id: String,
    /// Network name.
    pub name: String,
    /// The Linux bridge.
    pub bridge: String,
    /// IPv4 subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address, the containers' gateway.
    pub gateway: Ipv4Addr,
    /// No route out of the network.
    pub internal: bool,
}

/// One container's attachment to one network.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// Endpoint id (rules are tagged with it).
    pub endpoint_id: String,
    /// The container's network namespace file.
    pub netns: PathBuf,
    /// Interface name inside the namespace (`eth0`, `eth1`, …).
    pub ifname: String,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// The container's MAC address.
    pub mac: [u8; 6],
    /// Whether this network gives the default route.
    pub default_route: bool,
    /// Published ports.
    pub ports: Vec<PortRule>,
}

impl Attachment {
    /// The host end of the veth pair: `vb` and 11 characters of the endpoint id (an
    /// interface name has at most 15).
    pub fn host_ifname(&self) -> String {
        format!("vb{}", &self.endpoint_id[..self.endpoint_id.len().min(11)])
    }
}

/// A network driver.
pub trait Driver: Send + Sync {
    /// Makes the network ready on the host (bridge, addresses, rules); idempotent, and
    /// remakes what someone removed (a deleted bridge).
    fn create_network(&self, net: &NetworkSpec) -> Result<()>;
    /// Removes everything the network put on the host.
    fn remove_network(&self, net: &NetworkSpec) -> Result<()>;
    /// Connects a namespace to the network. `ns` is a netlink socket inside the
    /// namespace. On failure nothing of the attachment is left.
    fn setup(&self, net: &NetworkSpec, att: &Attachment, ns: &mut Netlink) -> Result<()>;
    /// Disconnects it again; what is already gone is fine. Its published ports (`att.ports`)
    /// leave the port maps.
    fn teardown(&self, net: &NetworkSpec, att: &Attachment) -> Result<()>;
    /// [`Driver::teardown`], and calls `gone` once the attachment's links no longer exist
    /// (at once when the driver deletes them before returning). A caller frees the
    /// endpoint's address only then, so that it is never handed to a new endpoint while
    /// the old one can still answer for it.
    fn teardown_then(&self, net: &NetworkSpec, att: &Attachment, gone: Gone) -> Result<()> {
        let r = self.teardown(net, att);
        gone();
        r
    }
}

/// What [`Driver::teardown_then`] calls when an attachment's links are gone.
pub type Gone = Box<dyn FnOnce() + Send>;

/// Docker's MAC for an IPv4 address: `02:42` and the address's four bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(format_mac(&mac_for("172.17.0.2".parse().unwrap())), "02:42:ac:11:00:02");
        assert_eq!(parse_mac("02:42:AC:11:00:02"), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("zz:42:ac:11:00:02"), None);
    }
}
