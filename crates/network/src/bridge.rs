//! The bridge driver: a Linux bridge per network with the gateway address on it, a veth
//! pair per attachment (its container end created directly inside the namespace), the
//! network's NAT and isolation rules and each endpoint's published ports.

use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use crate::driver::{Attachment, Driver, Gone, NetworkSpec};
use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::nft::{Firewall, NetworkRules};

/// The bridge driver over the host's network namespace.
pub struct BridgeDriver {
    host: Mutex<Netlink>,
    fw: Firewall,
    /// Where torn-down veths go to be deleted (see `reap`), each with what to call once
    /// it is gone.
    reaper: Mutex<Option<std::sync::mpsc::Sender<(String, Gone)>>>,
}

impl BridgeDriver {
    /// A driver whose rules live in `fw`; opens a netlink socket in the caller's (the
    /// host's) network namespace.
    pub fn new(fw: Firewall) -> Result<BridgeDriver> {
        Ok(BridgeDriver {
            host: Mutex::new(Netlink::open().map_err(|e| Error::io("open netlink socket", e))?),
            fw,
            reaper: Mutex::new(None),
        })
    }

    /// Deletes the link called `name` on a thread of its own, so that a container's stop
    /// does not wait for it: deleting a veth waits for an RCU grace period in the kernel
    /// (15-30 ms on a busy host), the largest part of a container's network teardown.
    /// `gone` is called once the link no longer exists (also when it could not be looked
    /// up or deleted: the error is logged, and nothing better can be done). Falls back to
    /// deleting it here when the thread cannot be had.
    fn reap(&self, name: String, gone: Gone) -> Result<()> {
        let mut g = match self.reaper.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<(String, Gone)>();
            // The thread is made from the daemon's (host) namespace and opens its socket there.
            let spawned = std::thread::Builder::new().name("veth-reaper".into()).spawn(move || {
                let mut nl: Option<Netlink> = None;
                for (name, gone) in rx {
                    let r = match nl.as_mut() {
                        Some(nl) => delete_link(nl, &name),
                        None => Netlink::open()
                            .map_err(|e| Error::io("open netlink socket", e))
                            .and_then(|s| delete_link(nl.insert(s), &name)),
                    };
                    if let Err(e) = r {
                        tracing::warn!(link = %name, error = %e, "delete veth");
                    }
                    gone();
                }
            });
            if spawned.is_ok() {
                *g = Some(tx);
            }
        }
        let (name, gone) = match g.as_ref() {
            Some(tx) => match tx.send((name, gone)) {
                Ok(()) => return Ok(()),
                Err(e) => e.0,
            },
            None => (name, gone),
        };
        // A reaper that could not be started or has died is tried again next time.
        *g = None;
        drop(g);
        let r = delete_link(&mut self.host(), &name);
        gone();
        r
    }

    /// The firewall.
    pub fn firewall(&self) -> &Firewall {
        &self.fw
    }

    fn host(&self) -> std::sync::MutexGuard<'_, Netlink> {
        match self.host.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Makes sure the bridge exists, carries the gateway address and is up; returns its
    /// index. A bridge someone deleted is made again.
    pub fn ensure_bridge(&self, net: &NetworkSpec) -> Result<u32> {
        let mut nl = self.host();
        let br = &net.bridge;
        let idx = match nl.link_index(br).map_err(|e| Error::io(format!("look up bridge {br}"), e))? {
            Some(i) => i,
            None => {
                match nl.add_bridge(br) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(Error::io(format!("create bridge {br}"), e)),
                }
                nl.link_index(br)
                    .map_err(|e| Error::io(format!("look up bridge {br}"), e))?
                    .ok_or_else(|| Error::io(format!("bridge {br} vanished"), std::io::ErrorKind::NotFound.into()))?
            }
        };
        let have = nl.addresses(Some(idx)).map_err(|e| Error::io(format!("list addresses of {br}"), e))?;
        if !have.iter().any(|(_, ip, _)| *ip == IpAddr::V4(net.gateway)) {
            nl.add_address(idx, IpAddr::V4(net.gateway), net.subnet.prefix_len())
                .map_err(|e| Error::io(format!("add {} to {br}", net.gateway), e))?;
        }
        nl.set_up(idx, None).map_err(|e| Error::io(format!("set {br} up"), e))?;
        // 127.0.0.1 → published port: DNAT in output turns loopback traffic into traffic for
        // the bridge, which the kernel drops as martian unless the bridge allows it.
        sysctl(&format!("net/ipv4/conf/{br}/route_localnet"), "1")?;
        Ok(idx)
    }

    /// The host's IPv4 routes and addresses as subnets (for choosing a free subnet).
    pub fn host_subnets(&self) -> Result<Vec<ipnet::Ipv4Net>> {
        let mut nl = self.host();
        let mut out: Vec<ipnet::Ipv4Net> = nl
            .ipv4_routes()
            .map_err(|e| Error::io("list routes", e))?
            .into_iter()
            .filter(|(_, len)| *len > 0)
            .filter_map(|(ip, len)| ipnet::Ipv4Net::new(ip, len).ok())
            .collect();
        for (_, ip, len) in nl.addresses(None).map_err(|e| Error::io("list addresses", e))? {
            if let IpAddr::V4(v4) = ip
                && !v4.is_loopback()
                && let Ok(n) = ipnet::Ipv4Net::new(v4, len)
            {
                out.push(n.trunc());
            }
        }
        Ok(out)
    }
}

/// Deletes the link called `name`; one already gone is fine.
fn delete_link(nl: &mut Netlink, name: &str) -> Result<()> {
    match nl.link_index(name) {
        // Gone between the look-up and the delete (its namespace was destroyed) is fine.
        Ok(Some(i)) => nl.del_link(i).map_err(|e| Error::io(format!("delete {name}"), e)),
        Ok(None) => Ok(()),
        Err(e) => Err(Error::io(format!("look up {name}"), e)),
    }
}

/// Writes `/proc/sys/<key>`.
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let p = format!("/proc/sys/{key}");
    std::fs::write(&p, value).map_err(|e| Error::io(format!("write {p}"), e))
}

impl Driver for BridgeDriver {
    fn create_network(&self, net: &NetworkSpec) -> Result<()> {
        self.ensure_bridge(net)?;
        if !net.internal {
            sysctl("net/ipv4/ip_forward", "1")?;
        }
        self.fw.add_network(&NetworkRules {
            id: &net.id,
            bridge: &net.bridge,
            subnet: net.subnet,
            internal: net.internal,
        })
    }

    fn remove_network(&self, net: &NetworkSpec) -> Result<()> {
        let mut errs = Vec::new();
        if let Err(e) = self.fw.remove_network(&net.id, &net.bridge) {
            errs.push(e);
        }
        let mut nl = self.host();
        match nl.link_index(&net.bridge) {
            Ok(Some(i)) => {
                if let Err(e) = nl.del_link(i) {
                    errs.push(Error::io(format!("delete bridge {}", net.bridge), e));
                }
            }
            Ok(None) => {}
            Err(e) => errs.push(Error::io(format!("look up bridge {}", net.bridge), e)),
        }
        errs.into_iter().next().map_or(Ok(()), Err)
    }

    fn setup(&self, net: &NetworkSpec, att: &Attachment, ns: &mut Netlink) -> Result<()> {
        // The network was made ready when first used in this daemon run; a bridge that is
        // still there needs no more than its index (listing every address of the host and
        // rewriting its settings at each start costs more than the rest of the attachment).
        // One someone deleted is made again.
        let found =
            self.host().link_index(&net.bridge).map_err(|e| Error::io(format!("look up bridge {}", net.bridge), e))?;
        let br = match found {
            Some(i) => i,
            None => self.ensure_bridge(net)?,
        };
        let host_if = att.host_ifname();
        let nsfile = std::fs::File::open(&att.netns)
            .map_err(|e| Error::io(format!("open network namespace {}", att.netns.display()), e))?;
        {
            let mut nl = self.host();
            // Up and on the bridge from the start: no look-up of its index, no second request.
            let mut made = nl.add_veth(&host_if, &att.ifname, nsfile.as_raw_fd(), Some(att.mac), Some(br));
            if made.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) {
                // A veth of an earlier run that was never torn down (daemon killed) goes first.
                delete_link(&mut nl, &host_if)?;
                made = nl.add_veth(&host_if, &att.ifname, nsfile.as_raw_fd(), Some(att.mac), Some(br));
            }
            made.map_err(|e| Error::io(format!("create veth {host_if} on {}", net.bridge), e))?;
        }
        let result = (|| -> Result<()> {
            // A container reaching its own published port: the DNATed packet goes back out
            // the bridge port it came in on, which a bridge allows only in hairpin mode.
            let hp = format!("/sys/class/net/{host_if}/brport/hairpin_mode");
            std::fs::write(&hp, "1").map_err(|e| Error::io(format!("write {hp}"), e))?;
            let ci = ns
                .link_index(&att.ifname)
                .map_err(|e| Error::io(format!("look up {}", att.ifname), e))?
                .ok_or_else(|| Error::io(format!("{} vanished", att.ifname), std::io::ErrorKind::NotFound.into()))?;
            ns.add_address(ci, IpAddr::V4(att.ip), net.subnet.prefix_len())
                .map_err(|e| Error::io(format!("add {} to {}", att.ip, att.ifname), e))?;
            ns.set_up(ci, None).map_err(|e| Error::io(format!("set {} up", att.ifname), e))?;
            if att.default_route && !net.internal {
                ns.add_default_route(IpAddr::V4(net.gateway))
                    .map_err(|e| Error::io(format!("add default route via {}", net.gateway), e))?;
            }
            self.fw.add_ports(&att.ports)
        })();
        if result.is_err() {
            let _ = self.teardown(net, att);
        }
        result
    }

    fn teardown(&self, net: &NetworkSpec, att: &Attachment) -> Result<()> {
        self.teardown_then(net, att, Box::new(|| {}))
    }

    fn teardown_then(&self, _net: &NetworkSpec, att: &Attachment, gone: Gone) -> Result<()> {
        let mut errs = Vec::new();
        if let Err(e) = self.fw.remove_ports(&att.ports) {
            errs.push(e);
        }
        // The veth (both ends) goes on the reaper's thread: the container is detached from
        // the bridge as soon as the deletion starts, and nothing waits for it to end.
        if let Err(e) = self.reap(att.host_ifname(), gone) {
            errs.push(e);
        }
        for e in &errs[1.min(errs.len())..] {
            tracing::warn!(error = %e, "network teardown");
        }
        errs.into_iter().next().map_or(Ok(()), Err)
    }
}
