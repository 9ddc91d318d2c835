//! NAT, forwarding and published ports in an nftables table of our own (`inet berth` by
//! default). Nothing outside that table is ever listed for change, flushed or edited: the
//! host's, Docker's and Podman's rules stay as they are. Rules are sent as JSON batches
//! through the `nftables` crate (`nft -j -f -`); each rule carries a comment naming what it
//! belongs to (`net:<id>`), so removal deletes exactly those rules. Published ports are
//! not rules but elements of four maps that two fixed rules look up; containers add and
//! remove elements over netlink (`nfnl`), never through an `nft` run.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::schema::Nftables;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The lowercase name, as in `80/tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// Parses `tcp`, `udp` or `sctp`.
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// One published port: traffic to `host_ip:host_port` goes to `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    /// The protocol.
    pub proto: Proto,
    /// The host address it answers on; `None` for every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address.
    pub container_ip: Ipv4Addr,
    /// The container's port.
    pub container_port: u16,
}

/// What one bridge network needs in the table.
#[derive(Debug, Clone)]
pub struct NetworkRules<'a> {
    /// The network's id (rules are tagged `net:<id>`).
    pub id: &'a str,
    /// The bridge's name.
    pub bridge: &'a str,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// No route out: no masquerade, and the forward chain drops what crosses the bridge.
    pub internal: bool,
}

/// Our table.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
    /// The netlink socket published ports' elements go through (shared by clones).
    nfnl: std::sync::Arc<crate::nfnl::Channel>,
}

const BRIDGES_SET: &str = "bridges";
/// Published ports bound on one host address: `ip daddr . l4proto . dport` → the
/// container's address, and → its port.
const MAP_IP_ADDR: &str = "ports4_ip_addr";
const MAP_IP_PORT: &str = "ports4_ip_port";
/// Published ports bound on every address: `l4proto . dport` → address, → port.
const MAP_ANY_ADDR: &str = "ports4_any_addr";
const MAP_ANY_PORT: &str = "ports4_any_port";

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

/// The elements published ports put in the maps, as the kernel stores them: each field of
/// a concatenated key padded to 4 bytes, numbers in network order.
fn port_elements(ports: &[PortRule]) -> [(&'static str, Vec<crate::nfnl::Elem>); 4] {
    use crate::nfnl::Elem;
    let mut out: [(&'static str, Vec<Elem>); 4] =
        [(MAP_IP_ADDR, vec![]), (MAP_IP_PORT, vec![]), (MAP_ANY_ADDR, vec![]), (MAP_ANY_PORT, vec![])];
    for p in ports {
        let hp = p.host_port.to_be_bytes();
        let mut key = Vec::with_capacity(12);
        if let Some(ip) = p.host_ip {
            key.extend_from_slice(&ip.octets());
        }
        key.extend_from_slice(&[proto_number(p.proto), 0, 0, 0, hp[0], hp[1], 0, 0]);
        let i = if p.host_ip.is_some() { 0 } else { 2 };
        out[i].1.push(Elem { key: key.clone(), data: Some(p.container_ip.octets().to_vec()) });
        out[i + 1].1.push(Elem { key, data: Some(p.container_port.to_be_bytes().to_vec()) });
    }
    out
}

impl Firewall {
    /// The table called `table` in the `inet` family.
    pub fn new(table: &str) -> Firewall {
        Firewall { table: table.to_owned(), nfnl: Default::default() }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn apply(&self, what: &str, cmds: Vec<Value>) -> Result<()> {
        let batch: Nftables<'static> = serde_json::from_value(json!({ "nftables": cmds })).map_err(Error::NftSchema)?;
        nftables::helper::apply_ruleset(&batch).map_err(|source| Error::Nft { what: what.to_owned(), source })
    }

    fn rule(&self, chain: &str, comment: &str, expr: Vec<Value>) -> Value {
        json!({"add": {"rule": {"family": "inet", "table": self.table, "chain": chain, "expr": expr, "comment": comment}}})
    }

    fn chain(&self, name: &str, typ: &str, hook: &str, prio: i32) -> Value {
        json!({"add": {"chain": {"family": "inet", "table": self.table, "name": name,
            "type": typ, "hook": hook, "prio": prio, "policy": "accept"}}})
    }

    /// Makes the table anew (dropping any of ours left from an earlier run) with its base
    /// chains and the maps of published ports. `ports` is reached for traffic to any local
    /// address, from outside (prerouting) and from the host itself (output); its two rules
    /// look the destination up in the maps, whose elements each container adds and removes
    /// (`add_ports`), so the rules never change while containers come and go.
    pub fn reset(&self) -> Result<()> {
        let t = &self.table;
        let local_jump = vec![
            json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}),
            json!({"jump": {"target": "ports"}}),
        ];
        let l4 = json!({"meta": {"key": "l4proto"}});
        let dport = json!({"payload": {"protocol": "th", "field": "dport"}});
        let daddr = json!({"payload": {"protocol": "ip", "field": "daddr"}});
        let map = |name: &str, key: &[&str], data: &str| json!({"add": {"map": {"family": "inet", "table": t, "name": name, "type": key, "map": data}}});
        let lookup = |key: Vec<Value>, addr: &str, port: &str| {
            let k = json!({"concat": key});
            vec![
                json!({"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": "ipv4"}}),
                json!({"match": {"op": "==", "left": l4.clone(), "right": {"set": ["tcp", "udp", "sctp"]}}}),
                json!({"dnat": {"family": "ip",
                    "addr": {"map": {"key": k.clone(), "data": format!("@{addr}")}},
                    "port": {"map": {"key": k, "data": format!("@{port}")}}}}),
            ]
        };
        let cmds = vec![
            json!({"add": {"table": {"family": "inet", "name": t}}}),
            json!({"delete": {"table": {"family": "inet", "name": t}}}),
            json!({"add": {"table": {"family": "inet", "name": t}}}),
            json!({"add": {"set": {"family": "inet", "table": t, "name": BRIDGES_SET, "type": "ifname"}}}),
            map(MAP_IP_ADDR, &["ipv4_addr", "inet_proto", "inet_service"], "ipv4_addr"),
            map(MAP_IP_PORT, &["ipv4_addr", "inet_proto", "inet_service"], "inet_service"),
            map(MAP_ANY_ADDR, &["inet_proto", "inet_service"], "ipv4_addr"),
            map(MAP_ANY_PORT, &["inet_proto", "inet_service"], "inet_service"),
            json!({"add": {"chain": {"family": "inet", "table": t, "name": "ports"}}}),
            self.rule("ports", "ports", lookup(vec![daddr, l4.clone(), dport.clone()], MAP_IP_ADDR, MAP_IP_PORT)),
            self.rule("ports", "ports", lookup(vec![l4.clone(), dport.clone()], MAP_ANY_ADDR, MAP_ANY_PORT)),
            self.chain("prerouting", "nat", "prerouting", -100),
            self.chain("output", "nat", "output", -100),
            self.chain("postrouting", "nat", "postrouting", 100),
            self.chain("forward", "filter", "forward", 0),
            self.rule("prerouting", "base", local_jump.clone()),
            self.rule("output", "base", local_jump),
        ];
        self.apply("create table", cmds)
    }

    /// Removes the whole table (ours); one already gone is fine.
    pub fn delete_table(&self) -> Result<()> {
        let t = &self.table;
        self.apply(
            "delete table",
            vec![
                json!({"add": {"table": {"family": "inet", "name": t}}}),
                json!({"delete": {"table": {"family": "inet", "name": t}}}),
            ],
        )
    }

    /// Adds a network's rules: masquerade of what leaves the subnet (not for `internal`),
    /// masquerade of host-local sources (127.0.0.1 reaching a published port) and of hairpin
    /// traffic (a container reaching a published port on the same bridge), and isolation
    /// from every other bridge of ours.
    pub fn add_network(&self, n: &NetworkRules<'_>) -> Result<()> {
        let tag = format!("net:{}", n.id);
        let br = n.bridge;
        let iif = |op: &str| json!({"match": {"op": op, "left": {"meta": {"key": "iifname"}}, "right": br}});
        let oif = |op: &str| json!({"match": {"op": op, "left": {"meta": {"key": "oifname"}}, "right": br}});
        let saddr = |net: String, len: u8| {
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": net, "len": len}}}})
        };
        let masq = json!({"masquerade": null});
        let mut cmds = vec![
            json!({"add": {"element": {"family": "inet", "table": self.table, "name": BRIDGES_SET, "elem": [br]}}}),
        ];
        if !n.internal {
            cmds.push(self.rule(
                "postrouting",
                &tag,
                vec![saddr(n.subnet.network().to_string(), n.subnet.prefix_len()), oif("!="), masq.clone()],
            ));
        }
        cmds.push(self.rule("postrouting", &tag, vec![oif("=="), saddr("127.0.0.0".into(), 8), masq.clone()]));
        // Hairpin: a container reaching a published port (its own included) through an
        // address of the host comes back out on the bridge; masqueraded, the answer goes
        // back through the host and is un-NATed. Matched on the source subnet rather than
        // on the input interface: with `br_netfilter` loaded the DNAT happens on the bridge
        // path, where postrouting has no input interface, and a packet to the container's
        // own address from that same address would be dropped by the container.
        cmds.push(self.rule(
            "postrouting",
            &tag,
            vec![
                oif("=="),
                saddr(n.subnet.network().to_string(), n.subnet.prefix_len()),
                json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
                masq,
            ],
        ));
        // Other networks of ours are out of reach.
        cmds.push(self.rule(
            "forward",
            &tag,
            vec![
                iif("=="),
                json!({"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": format!("@{BRIDGES_SET}")}}),
                oif("!="),
                json!({"drop": null}),
            ],
        ));
        if n.internal {
            cmds.push(self.rule("forward", &tag, vec![iif("=="), oif("!="), json!({"drop": null})]));
            cmds.push(self.rule("forward", &tag, vec![oif("=="), iif("!="), json!({"drop": null})]));
        }
        self.apply("add network rules", cmds)
    }

    /// Removes a network's rules and its bridge from the isolation set.
    pub fn remove_network(&self, id: &str, bridge: &str) -> Result<()> {
        let mut errs = Vec::new();
        if let Err(e) = self.remove_tagged(&format!("net:{id}")) {
            errs.push(e);
        }
        let del = json!({"delete": {"element": {"family": "inet", "table": self.table, "name": BRIDGES_SET, "elem": [bridge]}}});
        if let Err(e) = self.apply("remove bridge from set", vec![del])
            && self.has_bridge(bridge).unwrap_or(true)
        {
            errs.push(e);
        }
        errs.into_iter().next().map_or(Ok(()), Err)
    }

    fn has_bridge(&self, bridge: &str) -> Result<bool> {
        Ok(self.list()?.iter().any(|o| {
            o.get("set").is_some_and(|s| {
                s["name"] == BRIDGES_SET && s["elem"].as_array().is_some_and(|e| e.iter().any(|x| x == bridge))
            })
        }))
    }

    /// Adds the DNAT map elements of published ports, in one netlink transaction (no
    /// `nft` run): all of them or none.
    pub fn add_ports(&self, ports: &[PortRule]) -> Result<()> {
        self.nfnl
            .apply(&self.table, crate::nfnl::Op::Add, &port_elements(ports))
            .map_err(|e| Error::io(format!("add published ports to table inet {}", self.table), e))
    }

    /// Removes the map elements of published ports (those already gone are fine). No
    /// listing is needed: the keys follow from the ports, which the caller recorded.
    pub fn remove_ports(&self, ports: &[PortRule]) -> Result<()> {
        use crate::nfnl::Op;
        let apply = |table: &str, op, maps: &[(&str, Vec<crate::nfnl::Elem>)]| self.nfnl.apply(table, op, maps);
        let what = || format!("remove published ports from table inet {}", self.table);
        match apply(&self.table, Op::Delete, &port_elements(ports)) {
            Ok(()) => Ok(()),
            // One of them was gone (or the whole table): delete one by one, skipping those.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => {
                for p in ports {
                    match apply(&self.table, Op::Delete, &port_elements(std::slice::from_ref(p))) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => {}
                        Err(e) => return Err(Error::io(what(), e)),
                    }
                }
                Ok(())
            }
            Err(e) => Err(Error::io(what(), e)),
        }
    }

    /// How many published ports the table's maps hold (for checks and tests).
    pub fn published_count(&self) -> Result<usize> {
        let objs = match self.list() {
            Ok(o) => o,
            Err(_) if !self.exists() => return Ok(0),
            Err(e) => return Err(e),
        };
        Ok(objs
            .iter()
            .filter_map(|o| o.get("map"))
            .filter(|m| m["name"] == MAP_IP_ADDR || m["name"] == MAP_ANY_ADDR)
            .map(|m| m["elem"].as_array().map_or(0, Vec::len))
            .sum())
    }

    /// Our table as `nft -j` lists it. Read as plain JSON rather than through the crate's
    /// schema types: their strict deserializer refuses some listings of nft 1.0 (and only
    /// rules' chain, handle and comment are needed here).
    fn list(&self) -> Result<Vec<Value>> {
        let raw = nftables::helper::get_current_ruleset_raw(
            nftables::helper::DEFAULT_NFT,
            ["list", "table", "inet", &self.table],
        )
        .map_err(|source| Error::Nft { what: format!("list table inet {}", self.table), source })?;
        let v: Value = serde_json::from_str(&raw).map_err(Error::NftSchema)?;
        Ok(v["nftables"].as_array().cloned().unwrap_or_default())
    }

    fn listed_rules(&self) -> Result<Vec<(String, u64, String)>> {
        let objs = match self.list() {
            Ok(o) => o,
            Err(_) if !self.exists() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(objs
            .iter()
            .filter_map(|o| {
                let r = o.get("rule")?;
                Some((
                    r["chain"].as_str()?.to_owned(),
                    r["handle"].as_u64()?,
                    r["comment"].as_str().unwrap_or_default().to_owned(),
                ))
            })
            .collect())
    }

    /// The rules of our table as `(chain, comment)`; an empty list when the table is gone.
    pub fn rules(&self) -> Result<Vec<(String, String)>> {
        Ok(self.listed_rules()?.into_iter().map(|(c, _, t)| (c, t)).collect())
    }

    /// Whether the table exists.
    pub fn exists(&self) -> bool {
        nftables::helper::get_current_ruleset_raw(nftables::helper::DEFAULT_NFT, ["list", "tables", "inet"]).is_ok_and(
            |s| {
                s.contains(&format!("\"name\": \"{}\"", self.table))
                    || s.contains(&format!("\"name\":\"{}\"", self.table))
            },
        )
    }

    fn remove_tagged(&self, tag: &str) -> Result<()> {
        let cmds: Vec<Value> = self
            .listed_rules()?
            .into_iter()
            .filter(|(_, _, t)| t == tag)
            .map(|(chain, handle, _)| {
                json!({"delete": {"rule": {"family": "inet", "table": self.table, "chain": chain, "handle": handle, "expr": []}}})
            })
            .collect();
        if cmds.is_empty() {
            return Ok(());
        }
        self.apply("remove rules", cmds)
    }
}
