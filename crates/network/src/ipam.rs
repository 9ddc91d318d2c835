//! IP address management: the pool of one network's subnet, and the choice of a subnet
//! that collides with no route on the host. The pool is rebuilt from the endpoints the
//! daemon persists, so allocations survive a daemon restart.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// One network's IPv4 pool.
#[derive(Debug, Clone)]
pub struct Pool {
    subnet: Ipv4Net,
    range: Ipv4Net,
    gateway: Ipv4Addr,
    used: BTreeSet<Ipv4Addr>,
}

impl Pool {
    /// A pool over `subnet` handing out addresses of `range` (the whole subnet by
    /// default), never the network, broadcast or gateway address.
    pub fn new(subnet: Ipv4Net, range: Option<Ipv4Net>, gateway: Ipv4Addr) -> Result<Pool> {
        let subnet = subnet.trunc();
        let range = range.map(|r| r.trunc()).unwrap_or(subnet);
        if !subnet.contains(&range) {
            return Err(Error::Invalid(format!("ip-range {range} is not contained in subnet {subnet}")));
        }
        if !subnet.contains(&gateway) {
            return Err(Error::Invalid(format!("gateway {gateway} is not contained in subnet {subnet}")));
        }
        Ok(Pool { subnet, range, gateway, used: BTreeSet::new() })
    }

    /// The subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// The gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        ip != self.subnet.network() && ip != self.subnet.broadcast() && ip != self.gateway
    }

    /// Hands out `want` (`--ip`) or the lowest free address of the range.
    pub fn allocate(&mut self, want: Option<Ipv4Addr>, network: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = want {
            if !self.subnet.contains(&ip) {
                return Err(Error::Invalid(format!(
                    "Invalid address {ip}: It does not belong to any of this network's subnets"
                )));
            }
            if !self.usable(ip) || self.used.contains(&ip) {
                return Err(Error::InUse(format!("Address already in use: {ip}")));
            }
            self.used.insert(ip);
            return Ok(ip);
        }
        let ip = self.range.hosts().find(|ip| self.usable(*ip) && !self.used.contains(ip)).ok_or_else(|| {
            Error::Exhausted(format!("no available IPv4 addresses on this network's address pools: {network}"))
        })?;
        self.used.insert(ip);
        Ok(ip)
    }

    /// Marks an address taken (an endpoint found at restore).
    pub fn reserve(&mut self, ip: Ipv4Addr) {
        self.used.insert(ip);
    }

    /// Frees an address.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip);
    }

    /// Addresses in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// Addresses of endpoints being torn down. Each stays taken in its pool while its links
/// are being deleted (the driver does that off the caller's path, see
/// [`crate::driver::Driver::teardown_then`]): until then the old endpoint can still answer
/// for the address (ARP, a late reply), so it must not go to a new one. Once the links are
/// gone ([`Releases::gone`]) the address waits here until the pools' owner takes it back
/// ([`Releases::take_freed`]) under its own lock.
#[derive(Debug, Default)]
pub struct Releases {
    state: Mutex<ReleaseState>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct ReleaseState {
    /// `(network id, address)` whose links are still being deleted.
    pending: HashSet<(String, Ipv4Addr)>,
    /// Those whose links are gone, not yet back in their pools.
    freed: Vec<(String, Ipv4Addr)>,
}

impl Releases {
    fn state(&self) -> MutexGuard<'_, ReleaseState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Notes that `ip` of network `net` is held until [`Releases::gone`].
    pub fn hold(&self, net: &str, ip: Ipv4Addr) {
        self.state().pending.insert((net.to_owned(), ip));
    }

    /// The links of `ip`'s endpoint are gone: the address may be freed.
    pub fn gone(&self, net: &str, ip: Ipv4Addr) {
        let mut g = self.state();
        let key = (net.to_owned(), ip);
        if g.pending.remove(&key) {
            g.freed.push(key);
        }
        drop(g);
        self.cv.notify_all();
    }

    /// The addresses whose links are gone since the last call, to release in their pools.
    pub fn take_freed(&self) -> Vec<(String, Ipv4Addr)> {
        std::mem::take(&mut self.state().freed)
    }

    /// Waits (at most `timeout`) until `ip` of `net` is no longer held, for a request for
    /// that very address (a container with `--ip` started again right after it stopped).
    /// Returns whether it is free of its old endpoint.
    pub fn wait_for(&self, net: &str, ip: Ipv4Addr, timeout: Duration) -> bool {
        let key = (net.to_owned(), ip);
        self.wait_while(timeout, |s| s.pending.contains(&key))
    }

    /// Whether some address of `net` is held.
    pub fn holds_any(&self, net: &str) -> bool {
        self.state().pending.iter().any(|(n, _)| n == net)
    }

    /// Waits (at most `timeout`) until no address of `net` is held, for a pool that is
    /// exhausted only because of them. Returns whether none is held any more.
    pub fn wait_network(&self, net: &str, timeout: Duration) -> bool {
        self.wait_while(timeout, |s| s.pending.iter().any(|(n, _)| n == net))
    }

    fn wait_while(&self, timeout: Duration, busy: impl Fn(&ReleaseState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.state();
        while busy(&g) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = match self.cv.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// One entry of daemon.json's `default-address-pools`: `base` split into subnets of `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    /// The block subnets are carved from.
    pub base: Ipv4Net,
    /// Prefix length of each subnet.
    pub size: u8,
}

/// Docker's local default pools as the issue orders them: 172.17–31.0.0/16, then
/// 192.168.0.0/16 in /20s, then 10.0.0.0/8 in /16s.
pub fn default_pools() -> Vec<AddressPool> {
    let net = |s: &str, size| AddressPool { base: s.parse().unwrap_or_default(), size };
    vec![
        net("172.17.0.0/16", 16),
        net("172.18.0.0/15", 16),
        net("172.20.0.0/14", 16),
        net("172.24.0.0/13", 16),
        net("192.168.0.0/16", 20),
        net("10.0.0.0/8", 16),
    ]
}

/// The first subnet of `pools` that overlaps none of `taken` (host routes, other networks).
pub fn pick_subnet(pools: &[AddressPool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    pools
        .iter()
        .flat_map(|p| p.base.subnets(p.size).into_iter().flatten())
        .find(|s| !taken.iter().any(|t| overlaps(s, t)))
}

/// Whether two subnets share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first host address of a subnet (Docker's default gateway).
pub fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    subnet.hosts().next().unwrap_or(subnet.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_and_refuses_bad_requests() {
        let mut p = Pool::new("10.9.0.0/24".parse().unwrap(), None, "10.9.0.1".parse().unwrap()).unwrap();
        assert_eq!(p.allocate(None, "n").unwrap().to_string(), "10.9.0.2");
        assert_eq!(p.allocate(Some("10.9.0.7".parse().unwrap()), "n").unwrap().to_string(), "10.9.0.7");
        assert_eq!(p.allocate(None, "n").unwrap().to_string(), "10.9.0.3");
        let e = p.allocate(Some("10.8.0.7".parse().unwrap()), "n").unwrap_err();
        assert_eq!(e.to_string(), "Invalid address 10.8.0.7: It does not belong to any of this network's subnets");
        assert!(matches!(p.allocate(Some("10.9.0.7".parse().unwrap()), "n"), Err(Error::InUse(_))));
        assert!(matches!(p.allocate(Some("10.9.0.1".parse().unwrap()), "n"), Err(Error::InUse(_))));
        p.release("10.9.0.2".parse().unwrap());
        assert_eq!(p.allocate(None, "n").unwrap().to_string(), "10.9.0.2");
        let mut small = Pool::new("10.9.1.0/30".parse().unwrap(), None, "10.9.1.1".parse().unwrap()).unwrap();
        small.allocate(None, "n").unwrap();
        assert!(matches!(small.allocate(None, "n"), Err(Error::Exhausted(_))));
    }

    #[test]
    fn a_held_address_is_freed_only_when_its_links_are_gone() {
        let mut p = Pool::new("10.9.0.0/24".parse().unwrap(), None, "10.9.0.1".parse().unwrap()).unwrap();
        let r = Releases::default();
        let ip = p.allocate(None, "n").unwrap();
        r.hold("n", ip);
        assert!(r.take_freed().is_empty());
        assert_eq!(p.allocate(None, "n").unwrap().to_string(), "10.9.0.3", "a held address is not handed out");
        assert!(!r.wait_for("n", ip, Duration::from_millis(1)), "still held");
        assert!(r.holds_any("n") && !r.holds_any("m"));
        assert!(!r.wait_network("n", Duration::from_millis(1)));
        assert!(r.wait_network("m", Duration::ZERO));
        r.gone("n", ip);
        assert!(!r.holds_any("n") && r.wait_network("n", Duration::ZERO));
        assert!(r.wait_for("n", ip, Duration::ZERO));
        for (net, a) in r.take_freed() {
            assert_eq!(net, "n");
            p.release(a);
        }
        assert!(r.take_freed().is_empty(), "taken once");
        assert_eq!(p.allocate(None, "n").unwrap(), ip, "free again");
        r.gone("n", "10.9.0.9".parse().unwrap());
        assert!(r.take_freed().is_empty(), "an address never held is not freed");
    }

    #[test]
    fn a_waiter_wakes_when_the_address_is_freed() {
        let r = std::sync::Arc::new(Releases::default());
        let ip: Ipv4Addr = "10.9.0.2".parse().unwrap();
        r.hold("n", ip);
        let r2 = r.clone();
        let t = std::thread::spawn(move || r2.wait_for("n", ip, Duration::from_secs(10)));
        r.gone("n", ip);
        assert!(t.join().unwrap());
    }

    #[test]
    fn ip_range_limits_the_pool() {
        let mut p = Pool::new(
            "10.9.0.0/16".parse().unwrap(),
            Some("10.9.5.0/24".parse().unwrap()),
            "10.9.0.1".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(p.allocate(None, "n").unwrap().to_string(), "10.9.5.1");
        assert!(
            Pool::new(
                "10.9.0.0/16".parse().unwrap(),
                Some("10.8.0.0/24".parse().unwrap()),
                "10.9.0.1".parse().unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn picks_a_subnet_clear_of_routes() {
        let taken: Vec<Ipv4Net> =
            vec!["172.17.0.0/16".parse().unwrap(), "172.18.5.0/24".parse().unwrap(), "0.0.0.0/0".parse().unwrap()];
        // The default route overlaps everything and is not a collision to avoid.
        let taken: Vec<Ipv4Net> = taken.into_iter().filter(|t| t.prefix_len() > 0).collect();
        assert_eq!(pick_subnet(&default_pools(), &taken).unwrap().to_string(), "172.19.0.0/16");
        let pools = [AddressPool { base: "10.10.0.0/16".parse().unwrap(), size: 24 }];
        assert_eq!(pick_subnet(&pools, &["10.10.0.0/24".parse().unwrap()]).unwrap().to_string(), "10.10.1.0/24");
    }
}
