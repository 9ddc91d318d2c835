//! Networks: the built-in `bridge`, `host` and `none`, user-defined bridge networks, and
//! each container's attachment, made at start in a network namespace of its own
//! (bind-mounted under the exec root, handed to the runtime by path) and undone at exit.
//! The namespace is usually the spare made ahead of need (`berth_network::spare`), moved
//! to the container's file, so the start does not pay for making one.
//!
//! Network records are JSON files in `<data-root>/networks/` (kept apart from state.db so
//! the store's schema is untouched); a container's endpoints and published ports live in
//! its own record, so the address pools are rebuilt from the records at restart. The bridge
//! and our nftables table are made on first use and remade at restart for the containers
//! still running; at shutdown with nothing running both are removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use berth_network::bridge::BridgeDriver;
use berth_network::driver::{Attachment, Driver, NetworkSpec, format_mac, mac_for, parse_mac};
use berth_network::ipam::{self, Pool};
use berth_network::nft::{Firewall, PortRule, Proto};
use berth_network::spare::Spare;
use berth_network::{dns, netns, portmap, proxy};
use berth_runtime::spec::Namespace;
use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{Engine, blocking};
use crate::config::NetworkOptions;
use crate::error::{Error, Result};
use crate::record::{ContainerRecord, EndpointRecord, PublishedPort, Status};

/// How long a request for an address waits for the veth of its earlier endpoint to go.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where daemons on one host take turns choosing subnets, so two never pick the same one.
const SUBNET_LOCK: &str = "/run/lock/berth-network.lock";

/// One network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// 64-hex id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// IPv4 subnet (`None` for host/none, and for the default bridge until first use).
    pub subnet: Option<Ipv4Net>,
    /// Gateway (the bridge's address).
    pub gateway: Option<Ipv4Addr>,
    /// `--ip-range`.
    pub ip_range: Option<Ipv4Net>,
    /// The Linux bridge.
    pub bridge: String,
    /// `--internal`.
    pub internal: bool,
    /// Whether the user chose the subnet (only then is `--ip` allowed, as in Docker).
    pub user_subnet: bool,
    /// `--label`.
    #[serde(default)]
    pub labels: HashMap<String, String>,
    /// `-o` driver options.
    #[serde(default)]
    pub options: HashMap<String, String>,
}

impl NetworkRecord {
    /// Whether this is one of the built-in networks.
    pub fn builtin(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    fn spec(&self) -> Option<NetworkSpec> {
        Some(NetworkSpec {
            id: self.id.clone(),
            name: self.name.clone(),
            bridge: self.bridge.clone(),
            subnet: self.subnet?,
            gateway: self.gateway?,
            internal: self.internal,
        })
    }
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewNetwork {
    /// Name.
    pub name: String,
    /// Driver (`bridge` or empty).
    pub driver: String,
    /// `--subnet`.
    pub subnet: Option<Ipv4Net>,
    /// `--gateway`.
    pub gateway: Option<Ipv4Addr>,
    /// `--ip-range`.
    pub ip_range: Option<Ipv4Net>,
    /// `--internal`.
    pub internal: bool,
    /// `--label`.
    pub labels: HashMap<String, String>,
    /// `-o`.
    pub options: HashMap<String, String>,
}

/// How a container is networked, from its `NetworkMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The host's namespace.
    Host,
    /// Only a loopback.
    None,
    /// Another container's namespace.
    Container(String),
    /// A bridge network, by name or id.
    Network(String),
}

/// Parses a `NetworkMode`.
pub fn mode_of(network_mode: Option<&str>) -> Mode {
    match network_mode.unwrap_or("") {
        "" | "default" | "bridge" => Mode::Network("bridge".to_owned()),
        "host" => Mode::Host,
        "none" => Mode::None,
        m => match m.strip_prefix("container:") {
            Some(c) => Mode::Container(c.to_owned()),
            None => Mode::Network(m.to_owned()),
        },
    }
}

/// What the start path gets from an attachment.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    /// The namespace for the OCI spec.
    pub namespace: Option<Namespace>,
    /// Endpoints with their addresses.
    pub endpoints: BTreeMap<String, EndpointRecord>,
    /// Published ports as bound.
    pub ports: Vec<PublishedPort>,
    /// Lines for /etc/hosts after the `--add-host` ones, as `names:ip`.
    pub hosts: Vec<String>,
    /// Take /etc/hosts, /etc/resolv.conf and /etc/hostname from this container's bundle
    /// (`--network container:`).
    pub share_files_of: Option<PathBuf>,
    /// The embedded DNS server of the primary network, for resolv.conf.
    pub nameserver: Option<Ipv4Addr>,
}

/// The start path's pending network work ([`Engine::complete_network`]).
pub(crate) struct NetReady(Option<tokio::task::JoinHandle<Result<()>>>);

/// The kernel side of a planned attachment ([`Networks::plan`]), for
/// [`Networks::complete`].
pub(crate) struct NetSetup {
    rec: ContainerRecord,
    /// A netlink socket inside the container's namespace (it also keeps the namespace).
    ns: berth_network::netlink::Netlink,
    steps: Vec<SetupStep>,
    /// Every planned endpoint, for the embedded resolver's view.
    endpoints: BTreeMap<String, EndpointRecord>,
}

/// One endpoint of a [`NetSetup`].
struct SetupStep {
    spec: NetworkSpec,
    att: Attachment,
    /// The endpoint as the container asked for it (its aliases go to the DNS).
    requested: EndpointRecord,
    /// Its published IPv6 ports, bound, for the proxy process.
    listeners: Vec<proxy::Listener>,
}

struct Inner {
    nets: Vec<NetworkRecord>,
    pools: HashMap<String, Pool>,
    /// Networks whose bridge and rules this daemon run has made.
    ready: HashSet<String>,
    table_ready: bool,
    /// Host ports held per container.
    held: HashMap<String, Vec<portmap::Reserved>>,
    /// The IPv6 proxy process of each container with published IPv6 ports (it holds
    /// those ports).
    proxies: HashMap<String, proxy::ProxyProcess>,
    /// Name tables of user-defined networks, by network id.
    dns: HashMap<String, dns::Table>,
    /// Embedded resolvers (127.0.0.11 in their namespaces) of containers on user networks,
    /// by container id.
    resolvers: HashMap<String, dns::Resolver>,
}

/// The daemon's networks.
pub(crate) struct Networks {
    dir: PathBuf,
    netns_dir: PathBuf,
    /// The network namespace made ahead of need, which the next start takes.
    spare: Arc<Spare>,
    /// Where the IPv6 proxy processes keep their pid files (`<id>.pid`).
    proxy_dir: PathBuf,
    /// Addresses of detached endpoints whose veths are still being deleted.
    releases: Arc<ipam::Releases>,
    opts: NetworkOptions,
    driver: OnceLock<Arc<BridgeDriver>>,
    inner: Mutex<Inner>,
}

impl Networks {
    /// Loads the network records and adds the built-in ones the first time. Blocking.
    pub fn open(data_root: &Path, exec_root: &Path, opts: &NetworkOptions) -> Result<Networks> {
        let dir = data_root.join("networks");
        berth_base::fsutil::create_dir_mode(&dir, berth_base::fsutil::PRIVATE_DIR)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let mut nets = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?.flatten() {
            if e.path().extension().is_none_or(|x| x != "json") {
                continue;
            }
            let data = std::fs::read(e.path()).map_err(|err| Error::io(format!("read {}", e.path().display()), err))?;
            match serde_json::from_slice::<NetworkRecord>(&data) {
                Ok(n) => nets.push(n),
                Err(err) => {
                    tracing::warn!(file = %e.path().display(), error = %err, "skipping unreadable network record")
                }
            }
        }
        let netns_dir = exec_root.join("netns");
        // The data root's lock is held: spares in the netns directory are an earlier
        // daemon's, killed before it could remove them.
        match Spare::remove_leftovers(&netns_dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "removed the spare network namespace of an earlier daemon"),
            Err(e) => tracing::warn!(error = %e, "removing an earlier daemon's spare network namespace"),
        }
        let n = Networks {
            dir,
            spare: Arc::new(Spare::new(&netns_dir)),
            netns_dir,
            proxy_dir: exec_root.join("netproxy"),
            releases: Arc::default(),
            opts: opts.clone(),
            driver: OnceLock::new(),
            inner: Mutex::new(Inner {
                nets,
                pools: HashMap::new(),
                ready: HashSet::new(),
                table_ready: false,
                held: HashMap::new(),
                proxies: HashMap::new(),
                dns: HashMap::new(),
                resolvers: HashMap::new(),
            }),
        };
        n.ensure_builtin()?;
        Ok(n)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Gives back the spare capacity of the per-container maps (after a burst of
    /// removals).
    pub(crate) fn release_memory(&self) {
        let mut inner = self.lock();
        inner.held.shrink_to_fit();
        inner.proxies.shrink_to_fit();
        inner.resolvers.shrink_to_fit();
    }

    fn driver(&self) -> Result<Arc<BridgeDriver>> {
        if let Some(d) = self.driver.get() {
            return Ok(d.clone());
        }
        let d = Arc::new(BridgeDriver::new(Firewall::new(&self.opts.nft_table))?);
        Ok(self.driver.get_or_init(|| d).clone())
    }

    fn save(&self, n: &NetworkRecord) -> Result<()> {
        let p = self.dir.join(format!("{}.json", n.id));
        let data = serde_json::to_vec_pretty(n).map_err(|source| Error::Encode { what: "network record", source })?;
        berth_base::fsutil::atomic_write(&p, &data).map_err(|e| Error::io(format!("write {}", p.display()), e))
    }

    /// The built-in networks; the default bridge follows `bridge`, `bip` and `fixed-cidr`
    /// (a changed setting replaces the stored subnet).
    fn ensure_builtin(&self) -> Result<()> {
        let mut g = self.lock();
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            let existing = g.nets.iter().position(|n| n.name == name);
            let mut rec = match existing {
                Some(i) => g.nets[i].clone(),
                None => NetworkRecord {
                    id: berth_base::new_id(),
                    name: name.to_owned(),
                    driver: driver.to_owned(),
                    created: Utc::now(),
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    bridge: String::new(),
                    internal: false,
                    user_subnet: false,
                    labels: HashMap::new(),
                    options: HashMap::new(),
                },
            };
            let before = serde_json::to_value(&rec).ok();
            if name == "bridge" {
                rec.bridge = self.opts.bridge.clone();
                if let Some(bip) = self.opts.bip {
                    rec.subnet = Some(bip.trunc());
                    rec.gateway = Some(bip.addr());
                }
                rec.ip_range = self.opts.fixed_cidr;
                rec.options = HashMap::from([
                    ("com.docker.network.bridge.default_bridge".to_owned(), "true".to_owned()),
                    ("com.docker.network.bridge.name".to_owned(), rec.bridge.clone()),
                    ("com.docker.network.bridge.enable_ip_masquerade".to_owned(), "true".to_owned()),
                ]);
            }
            if existing.is_none() || before != serde_json::to_value(&rec).ok() {
                self.save(&rec)?;
                match existing {
                    Some(i) => g.nets[i] = rec,
                    None => g.nets.push(rec),
                }
            }
        }
        Ok(())
    }

    /// Every network.
    pub fn list(&self) -> Vec<NetworkRecord> {
        let mut v = self.lock().nets.clone();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A network by full id, name, or unique id prefix.
    pub fn find(&self, key: &str) -> Result<NetworkRecord> {
        let g = self.lock();
        find_in(&g.nets, key).cloned()
    }

    /// The netns file of a container.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_dir.join(id)
    }

    /// Makes the table (once per daemon run), the network's subnet (the default bridge's
    /// is chosen at first use), its bridge and rules, and its pool. Returns its spec.
    fn ready(&self, g: &mut Inner, net_id: &str) -> Result<NetworkSpec> {
        let drv = self.driver()?;
        for (net, ip) in self.releases.take_freed() {
            if let Some(p) = g.pools.get_mut(&net) {
                p.release(ip);
            }
        }
        if !g.table_ready {
            drv.firewall().reset()?;
            g.table_ready = true;
            g.ready.clear();
        }
        let idx = g.nets.iter().position(|n| n.id == net_id).ok_or_else(|| Error::NoSuchNetwork(net_id.to_owned()))?;
        if g.nets[idx].driver != "bridge" {
            return Err(Error::InvalidArgument(format!("network {} has no bridge", g.nets[idx].name)));
        }
        if g.nets[idx].subnet.is_none() {
            let _lock = SubnetLock::take()?;
            let others: Vec<Ipv4Net> = g.nets.iter().filter_map(|n| n.subnet).collect();
            let subnet = self.pick_subnet(&drv, &others)?;
            let n = &mut g.nets[idx];
            n.subnet = Some(subnet);
            n.gateway = Some(ipam::first_host(subnet));
            let rec = n.clone();
            self.save(&rec)?;
            let spec = rec.spec().ok_or_else(|| Error::Internal("network without subnet".into()))?;
            drv.ensure_bridge(&spec)?;
        }
        let rec = g.nets[idx].clone();
        let spec = rec.spec().ok_or_else(|| Error::Internal(format!("network {} has no subnet", rec.name)))?;
        if !g.ready.contains(&rec.id) {
            drv.create_network(&spec)?;
            g.ready.insert(rec.id.clone());
            if !rec.builtin() {
                g.dns.entry(rec.id.clone()).or_default();
            }
        }
        if !g.pools.contains_key(&rec.id) {
            g.pools.insert(rec.id.clone(), Pool::new(spec.subnet, rec.ip_range, spec.gateway)?);
        }
        Ok(spec)
    }

    /// A subnet of the address pools that overlaps no route or address on the host and no
    /// other network.
    fn pick_subnet(&self, drv: &BridgeDriver, others: &[Ipv4Net]) -> Result<Ipv4Net> {
        let mut taken = drv.host_subnets()?;
        taken.extend_from_slice(others);
        ipam::pick_subnet(&self.opts.pools, &taken).ok_or_else(|| {
            Error::Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".to_owned())
        })
    }

    /// The address `host-gateway` stands for: the default bridge's gateway.
    pub fn host_gateway(&self) -> Result<Ipv4Addr> {
        let mut g = self.lock();
        let id = find_in(&g.nets, "bridge")?.id.clone();
        Ok(self.ready(&mut g, &id)?.gateway)
    }

    /// The endpoints a new container asks for, validated: the networks exist, `--ip` only
    /// on a network whose subnet the user chose and inside it.
    pub fn endpoints_at_create(
        &self,
        mode: &Mode,
        requested: &HashMap<String, berth_api::models::EndpointSettings>,
        mac: Option<&str>,
    ) -> Result<BTreeMap<String, EndpointRecord>> {
        let mut out = BTreeMap::new();
        let Mode::Network(primary) = mode else {
            if mode != &Mode::Host && mode != &Mode::None && !requested.is_empty() {
                return Err(Error::InvalidArgument(
                    "conflicting options: container type network can't be used with links. This would result in undefined behavior".into(),
                ));
            }
            return Ok(out);
        };
        // The docker CLI names the default network `default`.
        let requested: HashMap<String, berth_api::models::EndpointSettings> = requested
            .iter()
            .map(|(k, v)| (if k == "default" { "bridge".to_owned() } else { k.clone() }, v.clone()))
            .collect();
        let mut names: Vec<&String> = requested.keys().collect();
        if !requested.contains_key(primary) {
            names.insert(0, primary);
        }
        for name in names {
            let net = self.find(name)?;
            if net.driver != "bridge" {
                return Err(Error::InvalidArgument(
                    "container cannot be disconnected from host network or connected to host network".into(),
                ));
            }
            let es = requested.get(name).cloned().unwrap_or_default();
            let ip = es
                .ipam_config
                .as_ref()
                .and_then(|c| c.ipv4_address.clone())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<Ipv4Addr>().map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {s}")))
                })
                .transpose()?;
            if let Some(ip) = ip {
                if !net.user_subnet {
                    return Err(Error::InvalidArgument(
                        "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                    ));
                }
                if net.subnet.is_some_and(|s| !s.contains(&ip)) {
                    return Err(Error::InvalidArgument(format!(
                        "no configured subnet or ip-range contain the IP address {ip}"
                    )));
                }
            }
            let mac_req = es
                .mac_address
                .clone()
                .filter(|m| !m.is_empty())
                .or_else(|| (name == primary).then(|| mac.map(str::to_owned)).flatten().filter(|m| !m.is_empty()));
            if let Some(m) = &mac_req
                && parse_mac(m).is_none()
            {
                return Err(Error::InvalidArgument(format!("invalid MAC address: {m}")));
            }
            let aliases = es.aliases.clone().unwrap_or_default();
            if !aliases.is_empty() && net.name == "bridge" {
                return Err(Error::InvalidArgument(
                    "network-scoped alias is supported only for containers in user defined networks".into(),
                ));
            }
            out.insert(
                net.name.clone(),
                EndpointRecord {
                    network_id: net.id.clone(),
                    aliases,
                    links: es.links.clone().unwrap_or_default(),
                    ipv4_request: ip,
                    mac_request: mac_req,
                    ..Default::default()
                },
            );
        }
        Ok(out)
    }

    /// Gives the container a namespace and connects it to its networks, binding its
    /// published ports. On failure nothing is left. Blocking.
    pub fn attach(&self, rec: &ContainerRecord) -> Result<Attached> {
        let (out, setup) = self.plan(rec)?;
        if let Some(s) = setup
            && let Err(e) = self.complete(s)
        {
            self.undo(rec, &out);
            return Err(e);
        }
        Ok(out)
    }

    /// Undoes an attachment that [`Networks::plan`] made (and [`Networks::complete`] may
    /// have begun), logging what cannot be undone.
    fn undo(&self, rec: &ContainerRecord, out: &Attached) {
        let mut undo = rec.clone();
        undo.networks = out.endpoints.clone();
        undo.ports = out.ports.clone();
        for err in self.detach(&undo) {
            tracing::warn!(container = %rec.id, error = %err, "undoing a failed attachment");
        }
    }

    /// The first half of an attachment, the part whose outcome the container's bundle
    /// needs: the namespace (with `lo` up), an address and endpoint id per network and the
    /// published ports bound. The kernel work that only the running container needs
    /// (veths, addresses, routes, port map elements, the embedded resolver) is returned as
    /// a [`NetSetup`] for [`Networks::complete`], which the start path runs while the
    /// runtime creates the container. On failure nothing is left. Blocking.
    pub fn plan(&self, rec: &ContainerRecord) -> Result<(Attached, Option<NetSetup>)> {
        let mode = mode_of(rec.host_config.network_mode.as_deref());
        if mode == Mode::Host {
            return Ok((Attached { namespace: Some(Namespace::Host), ..Default::default() }, None));
        }
        let path = self.netns_path(&rec.id);
        let ns = match self.spare.take(&path) {
            Some(ns) => {
                berth_runtime::trace::mark(&rec.id, "daemon.netns_spare_taken");
                ns
            }
            None => {
                let ns = netns::create(&path)?;
                berth_runtime::trace::mark(&rec.id, "daemon.netns_made");
                ns
            }
        };
        let mut out = Attached { namespace: Some(Namespace::Path(path.clone())), ..Default::default() };
        let Mode::Network(primary) = &mode else { return Ok((out, None)) };
        let primary_name = self.find(primary).map(|n| n.name).unwrap_or_default();
        let mut order: Vec<(&String, &EndpointRecord)> = rec.networks.iter().collect();
        order.sort_by_key(|(n, _)| **n != primary_name);
        let mut steps = Vec::with_capacity(order.len());
        for (i, (name, ep)) in order.iter().enumerate() {
            match self.plan_endpoint(rec, i, name, ep, &mut out) {
                Ok(s) => steps.push(s),
                Err(e) => {
                    self.undo(rec, &out);
                    return Err(e);
                }
            }
        }
        let endpoints = out.endpoints.clone();
        Ok((out, Some(NetSetup { rec: rec.clone(), ns, steps, endpoints })))
    }

    /// The second half of an attachment: veths, addresses and routes, published ports in
    /// the port maps, names in the networks' DNS and the embedded resolver. On failure the
    /// caller undoes the whole attachment with [`Networks::detach`] of the record holding
    /// the planned endpoints and ports (as the start path's failure handling does).
    /// Blocking.
    pub fn complete(&self, s: NetSetup) -> Result<()> {
        let NetSetup { rec, mut ns, steps, endpoints } = s;
        for mut st in steps {
            self.setup_endpoint(&rec, &mut ns, &st)?;
            let listeners = std::mem::take(&mut st.listeners);
            self.start_proxy(&rec.id, listeners)?;
        }
        self.refresh_resolver(&rec, &endpoints, true)
    }

    /// Where the proxy process of container `id` is named.
    fn proxy_state(&self, id: &str) -> PathBuf {
        self.proxy_dir.join(id)
    }

    /// Hands a container's bound IPv6 sockets to a proxy process of their own.
    fn start_proxy(&self, id: &str, listeners: Vec<proxy::Listener>) -> Result<()> {
        if listeners.is_empty() {
            return Ok(());
        }
        let exe = std::env::current_exe().map_err(|e| Error::io("find the berth executable", e))?;
        let p = proxy::ProxyProcess::spawn(&exe, &self.proxy_state(id), listeners)
            .map_err(|e| Error::io("start the IPv6 port proxy", e))?;
        if let Some(old) = self.lock().proxies.insert(id.to_owned(), p) {
            old.stop();
        }
        Ok(())
    }

    /// Stops a container's proxy process: this daemon's, or one an earlier daemon left.
    fn stop_proxy(&self, id: &str) {
        let state = self.proxy_state(id);
        let p = self.lock().proxies.remove(id).or_else(|| proxy::ProxyProcess::adopt(&state));
        match p {
            Some(p) => p.stop(),
            None => proxy::ProxyProcess::forget(&state),
        }
    }

    /// Plans one endpoint (`eth<i>`; the first one gets the default route, the published
    /// ports and the hosts line): its address, id and MAC, and for the first its host
    /// ports bound. What it did is in `out` even when it fails, for the caller to undo.
    fn plan_endpoint(
        &self,
        rec: &ContainerRecord,
        i: usize,
        name: &str,
        ep: &EndpointRecord,
        out: &mut Attached,
    ) -> Result<SetupStep> {
        let path = self.netns_path(&rec.id);
        let mut done = ep.clone();
        // `--ip` of a container started again right after it stopped: its old veth may
        // still be going away.
        if let Some(ip) = ep.ipv4_request
            && !self.releases.wait_for(&ep.network_id, ip, RELEASE_WAIT)
        {
            tracing::warn!(container = %rec.id, %ip, "the address's earlier endpoint is still being deleted");
        }
        let (spec, att, held) = {
            let (mut g, spec, ip) = self.allocate(&ep.network_id, ep.ipv4_request)?;
            let mac = ep.mac_request.as_deref().and_then(parse_mac).unwrap_or_else(|| mac_for(ip));
            let endpoint_id = berth_base::new_id();
            let (ports, rules, (held, proxies)) = if i == 0 {
                match publish(rec, &endpoint_id, ip) {
                    Ok(x) => x,
                    Err(e) => {
                        if let Some(p) = g.pools.get_mut(&spec.id) {
                            p.release(ip);
                        }
                        return Err(e);
                    }
                }
            } else {
                Default::default()
            };
            out.ports.extend(ports);
            done.endpoint_id = endpoint_id.clone();
            done.ip = Some(ip);
            done.prefix_len = spec.subnet.prefix_len();
            done.gateway = Some(spec.gateway);
            done.mac = format_mac(&mac);
            let att = Attachment {
                endpoint_id,
                netns: path,
                ifname: format!("eth{i}"),
                ip,
                mac,
                default_route: i == 0,
                ports: rules,
            };
            if i == 0 && g.dns.contains_key(&spec.id) {
                out.nameserver = Some(dns::RESOLVER_IP);
            }
            (spec, att, (held, proxies))
        };
        // Recorded before the kernel work, so a failure later is undone by detach.
        out.endpoints.insert(name.to_owned(), done);
        let (held, listeners) = held;
        self.lock().held.entry(rec.id.clone()).or_default().extend(held);
        if i == 0 {
            let hostname = rec.config.hostname.clone().unwrap_or_else(|| rec.id[..12].to_owned());
            out.hosts.push(format!("{hostname}:{}", att.ip));
        }
        Ok(SetupStep { spec, att, requested: ep.clone(), listeners })
    }

    /// Readies the network and takes an address from its pool (`want`, else the lowest
    /// free one). A pool exhausted only because addresses wait for their old veths to go
    /// waits for those (at most [`RELEASE_WAIT`]). Returns with the lock held.
    fn allocate(&self, net_id: &str, want: Option<Ipv4Addr>) -> Result<(MutexGuard<'_, Inner>, NetworkSpec, Ipv4Addr)> {
        let mut waited = false;
        loop {
            let mut g = self.lock();
            let spec = self.ready(&mut g, net_id)?;
            let pool = g.pools.get_mut(&spec.id).ok_or_else(|| Error::Internal("no pool".into()))?;
            match pool.allocate(want, &spec.name) {
                Ok(ip) => return Ok((g, spec, ip)),
                Err(berth_network::Error::Exhausted(_)) if !waited && self.releases.holds_any(&spec.id) => {
                    drop(g);
                    self.releases.wait_network(&spec.id, RELEASE_WAIT);
                    waited = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Does one planned endpoint's kernel work (`ns` is a netlink socket inside the
    /// container's namespace) and publishes its names.
    fn setup_endpoint(
        &self,
        rec: &ContainerRecord,
        ns: &mut berth_network::netlink::Netlink,
        st: &SetupStep,
    ) -> Result<()> {
        self.driver()?.setup(&st.spec, &st.att, ns)?;
        self.add_names(rec, &st.spec.id, &st.att.endpoint_id, &st.requested, st.att.ip);
        Ok(())
    }

    /// What a container's embedded resolver serves: the name tables of its user networks,
    /// and where other names go (its `--dns` servers, else the host's resolvers; none when
    /// all its user networks are internal).
    fn resolver_view(&self, rec: &ContainerRecord, eps: &BTreeMap<String, EndpointRecord>) -> dns::View {
        let g = self.lock();
        let mut networks = Vec::new();
        let mut all_internal = true;
        for ep in eps.values() {
            if let Some(t) = g.dns.get(&ep.network_id) {
                networks.push((ep.network_id.clone(), t.clone()));
                all_internal &= g.nets.iter().any(|n| n.id == ep.network_id && n.internal);
            }
        }
        drop(g);
        let upstream = if networks.is_empty() || all_internal {
            Vec::new()
        } else {
            let own: Vec<std::net::SocketAddr> = rec
                .host_config
                .dns
                .iter()
                .flatten()
                .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
                .map(|ip| std::net::SocketAddr::new(ip, 53))
                .collect();
            if own.is_empty() {
                dns::upstreams(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
            } else {
                own
            }
        };
        dns::View { networks, upstream }
    }

    /// Gives the container's resolver the view of `eps`: starts it (when `start` and the
    /// container is on a user network), updates it, or stops it when no user network is
    /// left.
    fn refresh_resolver(
        &self,
        rec: &ContainerRecord,
        eps: &BTreeMap<String, EndpointRecord>,
        start: bool,
    ) -> Result<()> {
        let view = self.resolver_view(rec, eps);
        let mut g = self.lock();
        if view.networks.is_empty() {
            g.resolvers.remove(&rec.id);
            return Ok(());
        }
        if let Some(r) = g.resolvers.get(&rec.id) {
            r.update(|v| *v = view);
            return Ok(());
        }
        drop(g);
        if start {
            let r = dns::Resolver::start(&self.netns_path(&rec.id), view)?;
            self.lock().resolvers.insert(rec.id.clone(), r);
        }
        Ok(())
    }

    /// Publishes an endpoint's names in its network's DNS.
    fn add_names(&self, rec: &ContainerRecord, net_id: &str, endpoint_id: &str, ep: &EndpointRecord, ip: Ipv4Addr) {
        let g = self.lock();
        let Some(table) = g.dns.get(net_id) else { return };
        let mut names = vec![rec.name.clone(), rec.id.chars().take(12).collect()];
        names.extend(ep.aliases.iter().cloned());
        if let Some(h) = rec.config.hostname.clone().filter(|h| !h.is_empty()) {
            names.push(h);
        }
        if let Ok(mut n) = table.write() {
            n.add(endpoint_id, names, ip);
        }
    }

    fn remove_names(&self, net_id: &str, endpoint_id: &str) {
        let g = self.lock();
        if let Some(table) = g.dns.get(net_id)
            && let Ok(mut n) = table.write()
        {
            n.remove(endpoint_id);
        }
    }

    /// Connects a running container to one more network (`network connect`). Blocking.
    pub fn connect_live(&self, rec: &ContainerRecord, name: &str, ep: &EndpointRecord) -> Result<EndpointRecord> {
        let mut ns = netns::netlink_in(&self.netns_path(&rec.id))?;
        let i = (0..).find(|i| ns.link_index(&format!("eth{i}")).ok().flatten().is_none()).unwrap_or(0);
        let mut out = Attached::default();
        let r = self
            .plan_endpoint(rec, i.max(1), name, ep, &mut out)
            .and_then(|st| self.setup_endpoint(rec, &mut ns, &st))
            .and_then(|()| {
                let mut eps = rec.networks.clone();
                eps.extend(out.endpoints.clone());
                self.refresh_resolver(rec, &eps, true)
            });
        if let Err(e) = r {
            self.detach_endpoint(rec, out.endpoints.values().next().unwrap_or(ep), i.max(1));
            return Err(e);
        }
        out.endpoints.remove(name).ok_or_else(|| Error::Internal("endpoint lost".into()))
    }

    /// Disconnects one endpoint of a running container. Blocking.
    pub fn detach_endpoint(&self, rec: &ContainerRecord, ep: &EndpointRecord, i: usize) -> Vec<Error> {
        let mut errs = Vec::new();
        let Some(ip) = ep.ip else { return errs };
        self.remove_names(&ep.network_id, &ep.endpoint_id);
        if let Some(r) = self.lock().resolvers.get(&rec.id) {
            r.update(|v| v.networks.retain(|(id, _)| *id != ep.network_id));
        }
        let spec = self.lock().nets.iter().find(|n| n.id == ep.network_id).and_then(NetworkRecord::spec);
        let drv = self.driver();
        let (Some(spec), Ok(drv)) = (spec, drv) else {
            // No veth of ours to wait for.
            if let Some(p) = self.lock().pools.get_mut(&ep.network_id) {
                p.release(ip);
            }
            return errs;
        };
        let att = Attachment {
            endpoint_id: ep.endpoint_id.clone(),
            netns: self.netns_path(&rec.id),
            ifname: format!("eth{i}"),
            ip,
            mac: [0; 6],
            default_route: false,
            // Published ports go with the primary endpoint only: their map elements are
            // keyed by host port, and another endpoint's teardown must not take them.
            ports: if self.is_primary(rec, ep) { port_rules(&rec.ports, ip) } else { Vec::new() },
        };
        // The address is freed once the veth is gone (the driver deletes it off this
        // path): until then the old endpoint could still answer for it.
        self.releases.hold(&ep.network_id, ip);
        let releases = self.releases.clone();
        let net_id = ep.network_id.clone();
        if let Err(e) = drv.teardown_then(&spec, &att, Box::new(move || releases.gone(&net_id, ip))) {
            errs.push(e.into());
        }
        errs
    }

    /// Whether `ep` is on the network the container's `NetworkMode` names (the endpoint
    /// that carries its published ports and default route).
    fn is_primary(&self, rec: &ContainerRecord, ep: &EndpointRecord) -> bool {
        let Mode::Network(p) = mode_of(rec.host_config.network_mode.as_deref()) else { return false };
        self.find(&p).is_ok_and(|n| n.id == ep.network_id)
    }

    /// Makes a user-defined bridge network (`network create`). Blocking.
    pub fn create(&self, req: NewNetwork) -> Result<NetworkRecord> {
        if !crate::names::valid(&req.name) {
            return Err(Error::InvalidArgument(format!("invalid network name: {:?}", req.name)));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            d => return Err(Error::NoSuchNetwork(format!("plugin \"{d}\" (driver)"))),
        }
        let drv = self.driver()?;
        let mut g = self.lock();
        if g.nets.iter().any(|n| n.name == req.name) {
            return Err(Error::Conflict(format!("network with name {} already exists", req.name)));
        }
        let id = berth_base::new_id();
        let bridge =
            req.options.get("com.docker.network.bridge.name").cloned().unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge.len() > 15 || g.nets.iter().any(|n| n.bridge == bridge) {
            return Err(Error::InvalidArgument(format!("invalid or taken bridge name: {bridge}")));
        }
        let _lock = SubnetLock::take()?;
        let others: Vec<Ipv4Net> = g.nets.iter().filter_map(|n| n.subnet).collect();
        let (subnet, user_subnet) = match req.subnet {
            Some(s) => {
                if let Some(o) = others.iter().find(|o| ipam::overlaps(o, &s.trunc())) {
                    return Err(Error::Forbidden(format!(
                        "invalid pool request: Pool overlaps with other one on this address space ({o})"
                    )));
                }
                (s.trunc(), true)
            }
            None => (self.pick_subnet(&drv, &others)?, false),
        };
        let gateway = req.gateway.unwrap_or_else(|| ipam::first_host(subnet));
        Pool::new(subnet, req.ip_range, gateway)?;
        let rec = NetworkRecord {
            id,
            name: req.name,
            driver: "bridge".to_owned(),
            created: Utc::now(),
            subnet: Some(subnet),
            gateway: Some(gateway),
            ip_range: req.ip_range,
            bridge,
            internal: req.internal,
            user_subnet,
            labels: req.labels,
            options: req.options,
        };
        self.save(&rec)?;
        g.nets.push(rec.clone());
        if let Err(e) = self.ready(&mut g, &rec.id) {
            g.nets.retain(|n| n.id != rec.id);
            let _ = std::fs::remove_file(self.dir.join(format!("{}.json", rec.id)));
            return Err(e);
        }
        Ok(rec)
    }

    /// Removes a user-defined network (its bridge and rules go too). Blocking.
    pub fn remove(&self, id: &str) -> Result<()> {
        let mut g = self.lock();
        let rec = find_in(&g.nets, id)?.clone();
        if rec.builtin() {
            return Err(Error::Forbidden(format!("{} is a pre-defined network and cannot be removed", rec.name)));
        }
        if g.ready.remove(&rec.id)
            && let Some(spec) = rec.spec()
        {
            self.driver()?.remove_network(&spec)?;
        } else if let Some(spec) = rec.spec()
            && let Ok(drv) = self.driver()
        {
            // Made by an earlier run: its bridge may still be there.
            let _ = drv.remove_network(&spec);
        }
        g.pools.remove(&rec.id);
        g.dns.remove(&rec.id);
        g.nets.retain(|n| n.id != rec.id);
        let p = self.dir.join(format!("{}.json", rec.id));
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", p.display()), e)),
        }
    }

    /// Disconnects the container from its networks, frees its addresses and host ports and
    /// removes its namespace. Keeps going after a failure; returns every error. Blocking.
    pub fn detach(&self, rec: &ContainerRecord) -> Vec<Error> {
        let mut errs = Vec::new();
        // The namespace's mount goes first: unmounting waits for an RCU grace period, and
        // would queue behind the one the veths' deletion (below, on the driver's thread)
        // starts. Nothing below needs the mount: veths and port elements are found from
        // the host's side.
        if let Err(e) = netns::remove(&self.netns_path(&rec.id)) {
            errs.push(e.into());
        }
        berth_runtime::trace::mark(&rec.id, "daemon.net_ns_removed");
        for (i, ep) in rec.networks.values().enumerate() {
            errs.extend(self.detach_endpoint(rec, ep, i));
        }
        berth_runtime::trace::mark(&rec.id, "daemon.net_endpoints_down");
        {
            let mut g = self.lock();
            g.held.remove(&rec.id);
            g.resolvers.remove(&rec.id);
        }
        self.stop_proxy(&rec.id);
        errs
    }

    /// After a daemon restart, takes back a running container's addresses and host ports
    /// and remakes its rules. Blocking.
    pub fn restore(&self, rec: &ContainerRecord) -> Result<()> {
        for ep in rec.networks.values() {
            let Some(ip) = ep.ip else { continue };
            {
                let mut g = self.lock();
                self.ready(&mut g, &ep.network_id)?;
                if let Some(p) = g.pools.get_mut(&ep.network_id) {
                    p.reserve(ip);
                }
            }
            self.add_names(rec, &ep.network_id, &ep.endpoint_id, ep, ip);
        }
        // The resolver's sockets died with the earlier daemon; its namespace is still there.
        if let Err(e) = self.refresh_resolver(rec, &rec.networks, true) {
            tracing::warn!(container = %rec.id, error = %e, "embedded DNS not restored");
        }
        let Some(primary) = rec.networks.values().find(|e| e.ip.is_some() && !e.endpoint_id.is_empty()) else {
            return Ok(());
        };
        let cip = primary.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let rules = port_rules(&rec.ports, cip);
        let mut held = Vec::new();
        let mut listeners = Vec::new();
        // The IPv6 proxy process outlives a daemon: take it back when it still runs.
        let adopted = proxy::ProxyProcess::adopt(&self.proxy_state(&rec.id));
        for p in &rec.ports {
            let proto = Proto::parse(&p.proto).unwrap_or(Proto::Tcp);
            let r = match p.host_ip {
                IpAddr::V4(ip) => portmap::reserve(proto, ip, p.host_port).map(|r| held.push(r)),
                IpAddr::V6(_) if adopted.is_some() => Ok(()),
                // The proxy process is gone (killed, the host restarted); the container is not.
                IpAddr::V6(ip) => proxy::bind(proto, ip, p.host_port, SocketAddrV4::new(cip, p.container_port))
                    .map(|x| listeners.push(x)),
            };
            if let Err(e) = r {
                tracing::warn!(container = %rec.id, port = p.host_port, error = %e, "could not hold a published port again")
            }
        }
        {
            let mut g = self.lock();
            g.held.insert(rec.id.clone(), held);
            if let Some(p) = adopted {
                g.proxies.insert(rec.id.clone(), p);
            }
        }
        if let Err(e) = self.start_proxy(&rec.id, listeners) {
            tracing::warn!(container = %rec.id, error = %e, "IPv6 published ports not restored");
        }
        let drv = self.driver()?;
        // The table was made anew at this daemon's first use of it; adding an element
        // already there with the same value is fine.
        drv.firewall().add_ports(&rules)?;
        Ok(())
    }

    /// Makes the spare network namespace on a thread of its own unless there is one, so
    /// the next start that needs a namespace (bridge or none) takes it instead of making
    /// one. Called when a container is created with such a network and when a start that
    /// took (or had to make) its namespace hands over to its shim; never waits.
    pub fn warm_spare(&self) {
        let spare = self.spare.clone();
        if spare.is_ready() {
            return;
        }
        let made = std::thread::Builder::new().name("netns-spare".into()).spawn(move || {
            if let Err(e) = spare.fill() {
                tracing::warn!(error = %e, "making the spare network namespace");
            }
        });
        if let Err(e) = made {
            tracing::warn!(error = %e, "starting the thread that makes the spare network namespace");
        }
    }

    /// At shutdown: removes the spare network namespace and, with no container attached,
    /// our table and the bridges this run made. Blocking.
    pub fn shutdown(&self, any_attached: bool) {
        self.spare.close();
        if any_attached {
            return;
        }
        let g = self.lock();
        if !g.table_ready {
            return;
        }
        let Ok(drv) = self.driver() else { return };
        for n in g.nets.iter().filter(|n| g.ready.contains(&n.id)) {
            if let Some(spec) = n.spec()
                && let Err(e) = drv.remove_network(&spec)
            {
                tracing::warn!(network = %n.name, error = %e, "removing network at shutdown");
            }
        }
        if let Err(e) = drv.firewall().delete_table() {
            tracing::warn!(error = %e, "removing our nftables table at shutdown");
        }
    }
}

fn find_in<'a>(nets: &'a [NetworkRecord], key: &str) -> Result<&'a NetworkRecord> {
    if let Some(n) = nets.iter().find(|n| n.id == key).or_else(|| nets.iter().find(|n| n.name == key)) {
        return Ok(n);
    }
    let m: Vec<&NetworkRecord> = nets.iter().filter(|n| !key.is_empty() && n.id.starts_with(key)).collect();
    match m.len() {
        1 => Ok(m[0]),
        0 => Err(Error::NoSuchNetwork(key.to_owned())),
        _ => Err(Error::InvalidArgument(format!(
            "network {key} is ambiguous ({} matches found based on ID prefix)",
            m.len()
        ))),
    }
}

/// A process-wide flock on [`SUBNET_LOCK`], held while a subnet is chosen and its bridge
/// made.
struct SubnetLock(std::fs::File);

impl SubnetLock {
    fn take() -> Result<SubnetLock> {
        let p = Path::new(SUBNET_LOCK);
        if let Some(d) = p.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .map_err(|e| Error::io(format!("open {SUBNET_LOCK}"), e))?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io(format!("lock {SUBNET_LOCK}"), e.into()))?;
        Ok(SubnetLock(f))
    }
}

impl Drop for SubnetLock {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0, rustix::fs::FlockOperation::Unlock);
    }
}

/// One requested binding: `host_ip:host ports` → `container_port/proto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub proto: Proto,
    pub container_port: u16,
    /// `None` when no address was given: `0.0.0.0` and, on a host with IPv6, `::` (as
    /// Docker 20.10 does; an explicit `0.0.0.0` is IPv4 only, `::` or `::1` IPv6 only).
    pub host_ip: Option<IpAddr>,
    /// Inclusive range; `(0, 0)` for an ephemeral port.
    pub host_ports: (u16, u16),
}

/// The bindings a container asks for: `PortBindings`, then every other exposed port
/// when `PublishAllPorts`.
pub(crate) fn requested_bindings(rec: &ContainerRecord) -> Result<Vec<Binding>> {
    let hc = &rec.host_config;
    let mut out = Vec::new();
    let mut keys: Vec<(&String, &Option<Vec<berth_api::models::PortBinding>>)> =
        hc.port_bindings.iter().flatten().collect();
    keys.sort_by_key(|(k, _)| (*k).clone());
    for (key, list) in keys {
        let (port, proto) = parse_port_key(key)?;
        for b in list.iter().flatten() {
            let ip = b.host_ip.as_deref().unwrap_or("");
            let host_ip = match ip {
                "" => None,
                s => match s.trim_matches(['[', ']']).parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => return Err(Error::InvalidArgument(format!("invalid host IP address: {s}"))),
                },
            };
            let hp = b.host_port.as_deref().unwrap_or("");
            let bad = || Error::InvalidArgument(format!("invalid host port: {hp}"));
            let host_ports = match hp {
                "" | "0" => (0, 0),
                s => match s.split_once('-') {
                    Some((a, z)) => {
                        let (a, z) = (a.parse::<u16>().map_err(|_| bad())?, z.parse::<u16>().map_err(|_| bad())?);
                        if a == 0 || z < a {
                            return Err(bad());
                        }
                        (a, z)
                    }
                    None => {
                        let p = s.parse::<u16>().map_err(|_| bad())?;
                        (p, p)
                    }
                },
            };
            out.push(Binding { proto, container_port: port, host_ip, host_ports });
        }
    }
    if hc.publish_all_ports == Some(true) {
        let mut exposed: Vec<&String> = rec.config.exposed_ports.iter().flatten().collect();
        exposed.sort();
        for key in exposed {
            let (port, proto) = parse_port_key(key)?;
            if !out.iter().any(|b| b.container_port == port && b.proto == proto) {
                out.push(Binding { proto, container_port: port, host_ip: None, host_ports: (0, 0) });
            }
        }
    }
    Ok(out)
}

/// `80/tcp` (or `80`) into port and protocol.
pub(crate) fn parse_port_key(key: &str) -> Result<(u16, Proto)> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = Proto::parse(proto).ok_or_else(|| Error::InvalidArgument(format!("invalid proto: {proto}")))?;
    let port = p
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::InvalidArgument(format!("invalid port: {key}")))?;
    Ok((port, proto))
}

type Published = (Vec<PublishedPort>, Vec<PortRule>, (Vec<portmap::Reserved>, Vec<proxy::Listener>));

/// The DNAT rules of recorded published ports towards `cip`.
fn port_rules(ports: &[PublishedPort], cip: Ipv4Addr) -> Vec<PortRule> {
    ports
        .iter()
        .filter_map(|p| match p.host_ip {
            IpAddr::V4(ip) => Some((p, ip)),
            // The IPv6 side goes through the proxy, not the kernel's DNAT.
            IpAddr::V6(_) => None,
        })
        .map(|(p, ip)| PortRule {
            proto: Proto::parse(&p.proto).unwrap_or(Proto::Tcp),
            host_ip: (!ip.is_unspecified()).then_some(ip),
            host_port: p.host_port,
            container_ip: cip,
            container_port: p.container_port,
        })
        .collect()
}

/// Tries for an ephemeral port whose IPv4 and IPv6 sides are both free.
const EPHEMERAL_TRIES: usize = 16;

/// Binds the host ports of a container's published ports (all or none). A binding without
/// an address gets both families on the same port number (IPv6 only when the host has it);
/// the IPv6 side is a [`proxy::Listener`] for the container's proxy process.
fn publish(rec: &ContainerRecord, endpoint_id: &str, cip: Ipv4Addr) -> Result<Published> {
    let mut ports = Vec::new();
    let mut rules = Vec::new();
    let mut held = Vec::new();
    let mut proxies = Vec::new();
    let host_v6 = proxy::host_has_ipv6();
    let ep = format!("{} ({})", rec.name, endpoint_id);
    for b in requested_bindings(rec)? {
        let (want4, want6) = match b.host_ip {
            None => (Some(Ipv4Addr::UNSPECIFIED), (host_v6 && b.proto != Proto::Sctp).then_some(Ipv6Addr::UNSPECIFIED)),
            Some(IpAddr::V4(a)) => (Some(a), None),
            Some(IpAddr::V6(a)) => (None, Some(a)),
        };
        let target = SocketAddrV4::new(cip, b.container_port);
        let candidates: Vec<u16> = match b.host_ports {
            (0, 0) => vec![0; EPHEMERAL_TRIES],
            (lo, hi) => (lo..=hi).collect(),
        };
        let mut last_err = None;
        let mut got = None;
        for port in candidates {
            let r4 = match want4 {
                Some(ip) => match portmap::reserve(b.proto, ip, port) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        last_err = Some(portmap::bind_error(&ep, ip, port, cip, b.container_port, b.proto, e));
                        continue;
                    }
                },
                None => None,
            };
            let port = r4.as_ref().map_or(port, |r| r.port);
            // Dropping `r4` on a failure here frees the IPv4 side: nothing half-bound.
            let r6 = match want6 {
                Some(ip) => match proxy::bind(b.proto, ip, port, target) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        last_err = Some(proxy::start_error(&ep, ip, port, b.proto, e));
                        continue;
                    }
                },
                None => None,
            };
            got = Some((r4, r6));
            break;
        }
        let Some((r4, r6)) = got else {
            let e = last_err.unwrap_or_else(|| {
                portmap::bind_error(
                    &ep,
                    Ipv4Addr::UNSPECIFIED,
                    b.host_ports.0,
                    cip,
                    b.container_port,
                    b.proto,
                    std::io::ErrorKind::AddrInUse.into(),
                )
            });
            return Err(e.into());
        };
        if let Some(r) = r4 {
            ports.push(PublishedPort {
                proto: b.proto.as_str().to_owned(),
                container_port: b.container_port,
                host_ip: IpAddr::V4(r.ip),
                host_port: r.port,
            });
            rules.push(PortRule {
                proto: b.proto,
                host_ip: (!r.ip.is_unspecified()).then_some(r.ip),
                host_port: r.port,
                container_ip: cip,
                container_port: b.container_port,
            });
            held.push(r);
        }
        if let Some(x) = r6 {
            ports.push(PublishedPort {
                proto: b.proto.as_str().to_owned(),
                container_port: b.container_port,
                host_ip: IpAddr::V6(x.forward.ip),
                host_port: x.forward.port,
            });
            proxies.push(x);
        }
    }
    Ok((ports, rules, (held, proxies)))
}

impl Engine {
    /// The start path's network step: the container's namespace, its endpoints and ports,
    /// its extra hosts lines (`--link`, its own address) and `host-gateway` resolved, and
    /// the kernel work still to do ([`Engine::complete_network`]). A container with `net.*`
    /// sysctls gets its network made here at once: the runtime writes those in the
    /// container's namespace during its create, and they may name its interfaces. On
    /// failure nothing is left. Blocking.
    pub(crate) fn attach_network(&self, rec: &ContainerRecord) -> Result<(Attached, Option<NetSetup>)> {
        berth_runtime::trace::mark(&rec.id, "daemon.net_begin");
        if let Mode::Container(other) = mode_of(rec.host_config.network_mode.as_deref()) {
            let o = self.get(&other)?.snapshot();
            if o.state.status != Status::Running {
                return Err(Error::Conflict(format!(
                    "cannot join network namespace of a non running container: {}",
                    o.id
                )));
            }
            let ns = self.networks.netns_path(&o.id);
            let namespace = if ns.exists() {
                Namespace::Path(ns)
            } else if matches!(mode_of(o.host_config.network_mode.as_deref()), Mode::Host) {
                Namespace::Host
            } else {
                Namespace::Path(PathBuf::from(format!("/proc/{}/ns/net", o.state.pid)))
            };
            return Ok((
                Attached {
                    namespace: Some(namespace),
                    share_files_of: Some(self.container_dir(&o.id)),
                    ..Default::default()
                },
                None,
            ));
        }
        let mut links = Vec::new();
        for l in rec.host_config.links.iter().flatten() {
            let (name, alias) = l.split_once(':').unwrap_or((l, l));
            let name = name.trim_start_matches('/');
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            let t = self
                .get(name)
                .map_err(|_| Error::InvalidArgument(format!("could not get container for {name}")))?
                .snapshot();
            if t.state.status != Status::Running {
                return Err(Error::InvalidArgument(format!(
                    "Cannot link to a non running container: /{} AS /{}/{alias}",
                    t.name, rec.name
                )));
            }
            let Some(ip) = t.networks.values().find_map(|e| e.ip) else {
                return Err(Error::InvalidArgument(format!(
                    "Cannot link to /{}, as it does not belong to the default network",
                    t.name
                )));
            };
            let mut names = vec![alias.to_owned(), t.id[..12].to_owned(), t.name.clone()];
            names.dedup();
            links.push(format!("{}:{ip}", names.join(" ")));
        }
        let (mut a, mut setup) = self.networks.plan(rec)?;
        berth_runtime::trace::mark(&rec.id, "daemon.net_planned");
        let net_sysctls = rec.host_config.sysctls.iter().flatten().any(|(k, _)| k.starts_with("net."));
        if net_sysctls && let Some(s) = setup.take() {
            if let Err(e) = self.networks.complete(s) {
                self.networks.undo(rec, &a);
                return Err(e);
            }
        }
        links.append(&mut a.hosts);
        a.hosts = links;
        Ok((a, setup))
    }

    /// Starts the kernel side of a planned attachment on the blocking pool, to run while
    /// the runtime creates the container; [`Engine::network_ready`] waits for it.
    pub(crate) fn complete_network(&self, id: &str, setup: Option<NetSetup>) -> NetReady {
        // The next start's namespace is made now, while this one's shim creates the
        // container (the daemon only waits then), not during the prepare it would slow.
        if setup.is_some()
            || self.get(id).is_ok_and(|c| {
                matches!(mode_of(c.snapshot().host_config.network_mode.as_deref()), Mode::None | Mode::Network(_))
            })
        {
            self.networks.warm_spare();
        }
        NetReady(setup.map(|s| {
            let nets = self.networks.clone();
            let id = id.to_owned();
            tokio::task::spawn_blocking(move || {
                let r = nets.complete(s);
                berth_runtime::trace::mark(&id, "daemon.net_ready");
                r
            })
        }))
    }

    /// Waits for [`Engine::complete_network`]'s work; the container's process must not
    /// start before. When it failed and the shim has already created the container
    /// (`created`), the container is killed and its shim waited for, so the caller's
    /// failure handling (which detaches the network) finds nothing running in the
    /// namespace. Always awaited, so no network work runs on after a failed start.
    pub(crate) async fn network_ready(&self, c: &super::Container, ready: NetReady, created: bool) -> Result<()> {
        let Some(task) = ready.0 else { return Ok(()) };
        let r = task.await.map_err(super::join_err).and_then(|r| r);
        if r.is_err() && created {
            self.abort_created(c).await;
        }
        r
    }

    /// Kills a created container that will not be started, and waits for its shim to
    /// report the exit (it then deletes the runtime's container and ends).
    async fn abort_created(&self, c: &super::Container) {
        use berth_runtime::client::{ShimClient, Streams};
        let socket = self.shim_socket(&c.id);
        let killed = async {
            let mut s = ShimClient::connect(&socket, Streams::NONE).await?;
            s.signal(libc::SIGKILL).await?;
            s.wait().await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), killed).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(container = %c.id, error = %e, "killing a container whose network failed"),
            Err(_) => tracing::warn!(container = %c.id, "the shim of a container whose network failed did not end"),
        }
    }

    /// `--add-host` entries with `host-gateway` replaced by the default bridge's gateway.
    pub(crate) fn extra_hosts(&self, rec: &ContainerRecord) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for h in rec.host_config.extra_hosts.iter().flatten() {
            let (name, addr) = h.split_once('=').or_else(|| h.split_once(':')).unwrap_or((h, ""));
            if addr == "host-gateway" {
                out.push(format!("{name}:{}", self.networks.host_gateway()?));
            } else {
                out.push(h.clone());
            }
        }
        Ok(out)
    }

    /// Undoes a container's attachment and clears its addresses in the record.
    pub(crate) async fn detach_network(&self, c: &super::Container) {
        let rec = c.snapshot();
        let engine_nets = self.networks.clone();
        let r = rec.clone();
        let errs = blocking(move || Ok(engine_nets.detach(&r))).await.unwrap_or_default();
        for e in errs {
            tracing::warn!(container = %rec.id, error = %e, "network teardown");
        }
        c.update(|r| {
            for ep in r.networks.values_mut() {
                ep.endpoint_id.clear();
                ep.ip = None;
                ep.gateway = None;
                ep.prefix_len = 0;
                ep.mac.clear();
            }
            r.ports.clear();
        });
    }
}

impl Engine {
    /// Validates a create request's networking (mode, networks, `--ip`, `--mac-address`,
    /// aliases, published ports) and returns the endpoints to record.
    pub(crate) fn check_networking(
        &self,
        body: &berth_api::models::ContainerCreateBody,
        hc: &berth_api::models::HostConfig,
        config: &berth_api::models::ContainerConfig,
    ) -> Result<BTreeMap<String, EndpointRecord>> {
        let mode = mode_of(hc.network_mode.as_deref());
        match &mode {
            Mode::Container(other) => {
                self.get(other)?;
                if hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || hc.publish_all_ports == Some(true) {
                    return Err(Error::InvalidArgument(
                        "conflicting options: port publishing and the container type network mode".into(),
                    ));
                }
                if body.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                    return Err(Error::InvalidArgument("conflicting options: hostname and the network mode".into()));
                }
            }
            Mode::Host | Mode::None => {
                if hc.links.as_ref().is_some_and(|l| !l.is_empty()) {
                    return Err(Error::InvalidArgument(
                        "conflicting options: host type networking can't be used with links. This would result in undefined behavior".into(),
                    ));
                }
            }
            Mode::Network(_) => {}
        }
        let requested = body.networking_config.as_ref().and_then(|n| n.endpoints_config.clone()).unwrap_or_default();
        // The container-wide MacAddress of older API versions is not in the models berth
        // decodes; clients of API >= 1.44 send it per endpoint.
        let eps = self.networks.endpoints_at_create(&mode, &requested, None)?;
        // Malformed bindings are refused now rather than at start.
        let probe = ContainerRecord {
            id: String::new(),
            name: String::new(),
            created: Utc::now(),
            image: String::new(),
            image_id: String::new(),
            path: String::new(),
            args: Vec::new(),
            config: config.clone(),
            host_config: hc.clone(),
            binds: Vec::new(),
            state: Default::default(),
            restart_count: 0,
            volumes: Vec::new(),
            networks: BTreeMap::new(),
            ports: Vec::new(),
            health: None,
        };
        requested_bindings(&probe)?;
        Ok(eps)
    }

    /// `GET /networks`, `/networks/{id}` support: every network.
    pub fn networks(&self) -> Vec<NetworkRecord> {
        self.networks.list()
    }

    /// Has the spare network namespace made when a container about to be created will
    /// need a namespace of its own (`none`, `bridge` or a user network; not `host` or
    /// `container:<id>`), so its start finds one ready. Never waits.
    pub(crate) fn warm_spare_netns(&self, network_mode: Option<&str>) {
        if matches!(mode_of(network_mode), Mode::None | Mode::Network(_)) {
            self.networks.warm_spare();
        }
    }

    /// At daemon shutdown: removes the spare network namespace, and our table and bridges
    /// when no container is attached.
    pub async fn shutdown_networks(&self) {
        let attached = self.all().iter().any(|c| c.snapshot().networks.values().any(|e| e.ip.is_some()));
        let nets = self.networks.clone();
        let _ = blocking(move || {
            nets.shutdown(attached);
            Ok(())
        })
        .await;
    }
}

impl Engine {
    /// `POST /networks/create`.
    pub async fn create_network(&self, req: NewNetwork) -> Result<NetworkRecord> {
        let nets = self.networks.clone();
        let n = blocking(move || nets.create(req)).await?;
        self.network_event("create", &n, None);
        Ok(n)
    }

    /// Publishes a network event as moby names it (`create`, `connect`, `disconnect`,
    /// `destroy`, with the network's name and type, and the container where one is concerned).
    fn network_event(&self, action: &str, n: &NetworkRecord, container: Option<&str>) {
        let mut ev = super::events::Event::new(super::events::EventType::Network, action, n.id.clone())
            .attr("name", n.name.clone())
            .attr("type", n.driver.clone());
        if let Some(c) = container {
            ev = ev.attr("container", c);
        }
        self.emit(ev);
    }

    /// Containers attached to a network now (running, with an address), as
    /// `(container, endpoint)`.
    fn network_users(&self, net_id: &str) -> Vec<(ContainerRecord, EndpointRecord)> {
        self.records()
            .into_iter()
            .filter_map(|r| {
                let ep = r.networks.values().find(|e| e.network_id == net_id && e.ip.is_some())?.clone();
                Some((r, ep))
            })
            .collect()
    }

    /// `GET /networks/{id}`: the network in Docker's shape, with its containers.
    pub fn inspect_network(&self, key: &str) -> Result<serde_json::Value> {
        let n = self.networks.find(key)?;
        Ok(network_json(&n, &self.network_users(&n.id)))
    }

    /// `GET /networks`: Docker's filters (name, id, driver, label, type, dangling).
    pub fn list_networks(&self, f: &berth_api::query::Filters) -> Result<Vec<serde_json::Value>> {
        for k in f.0.keys() {
            if !matches!(k.as_str(), "name" | "id" | "driver" | "label" | "type" | "dangling" | "scope") {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
        }
        for t in f.get("type") {
            if t != "custom" && t != "builtin" {
                return Err(Error::InvalidArgument(format!("invalid filter: 'type'='{t}'")));
            }
        }
        let used: HashSet<String> =
            self.records().iter().flat_map(|r| r.networks.values().map(|e| e.network_id.clone())).collect();
        let mut out = Vec::new();
        for n in self.networks.list() {
            let keep = f.get("name").iter().all(|p| n.name.contains(p.as_str()))
                && f.get("id").iter().all(|p| n.id.starts_with(p.as_str()))
                && f.get("driver").iter().all(|d| *d == n.driver)
                && f.get("scope").iter().all(|s| s == "local")
                && f.get("type").iter().all(|t| (t == "builtin") == n.builtin())
                && f.get("label").iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                    None => n.labels.contains_key(l.as_str()),
                })
                && f.get("dangling").iter().all(|d| {
                    let dangling = !n.builtin() && !used.contains(&n.id);
                    matches!(d.as_str(), "true" | "1") == dangling
                });
            if keep {
                out.push(network_json(&n, &[]));
            }
        }
        Ok(out)
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, key: &str) -> Result<()> {
        let n = self.networks.find(key)?;
        if !n.builtin() && !self.network_users(&n.id).is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        let nets = self.networks.clone();
        let id = n.id.clone();
        blocking(move || nets.remove(&id)).await?;
        self.network_event("destroy", &n, None);
        Ok(())
    }

    /// `POST /networks/prune`: removes user networks no container refers to.
    pub async fn prune_networks(&self, f: &berth_api::query::Filters) -> Result<Vec<String>> {
        let used: HashSet<String> =
            self.records().iter().flat_map(|r| r.networks.values().map(|e| e.network_id.clone())).collect();
        let mut removed = Vec::new();
        for n in self.networks.list() {
            let labels_ok = f.get("label").iter().all(|l| match l.split_once('=') {
                Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                None => n.labels.contains_key(l.as_str()),
            });
            if n.builtin() || used.contains(&n.id) || !labels_ok {
                continue;
            }
            let nets = self.networks.clone();
            let id = n.id.clone();
            blocking(move || nets.remove(&id)).await?;
            self.network_event("destroy", &n, None);
            removed.push(n.name);
        }
        Ok(removed)
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect_network(
        &self,
        key: &str,
        container: &str,
        es: berth_api::models::EndpointSettings,
    ) -> Result<()> {
        let n = self.networks.find(key)?;
        let c = self.get(container)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        let mode = mode_of(rec.host_config.network_mode.as_deref());
        if !matches!(mode, Mode::Network(_)) {
            return Err(Error::Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        if rec.networks.contains_key(&n.name) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, n.name
            )));
        }
        let eps = self.networks.endpoints_at_create(
            &Mode::Network(n.name.clone()),
            &HashMap::from([(n.name.clone(), es)]),
            None,
        )?;
        let ep = eps.get(&n.name).cloned().ok_or_else(|| Error::Internal("endpoint lost".into()))?;
        let ep = if rec.state.status == Status::Running {
            let nets = self.networks.clone();
            let (r, name) = (rec.clone(), n.name.clone());
            blocking(move || nets.connect_live(&r, &name, &ep)).await?
        } else {
            ep
        };
        c.update(|r| r.networks.insert(n.name.clone(), ep));
        self.persist(&c);
        self.network_event("connect", &n, Some(&rec.id));
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(&self, key: &str, container: &str, _force: bool) -> Result<()> {
        let n = self.networks.find(key)?;
        let c = self.get(container)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        let Some(pos) = rec.networks.keys().position(|k| *k == n.name) else {
            return Err(Error::Forbidden(format!("container {} is not connected to network {}", rec.id, n.name)));
        };
        if rec.state.status == Status::Running {
            let ep = rec.networks[&n.name].clone();
            let nets = self.networks.clone();
            let r = rec.clone();
            let errs = blocking(move || Ok(nets.detach_endpoint(&r, &ep, pos))).await?;
            if let Some(e) = errs.into_iter().next() {
                return Err(e);
            }
        }
        c.update(|r| r.networks.remove(&n.name));
        self.persist(&c);
        self.network_event("disconnect", &n, Some(&rec.id));
        Ok(())
    }
}

/// A network in the Engine API's shape (`GET /networks/{id}`; the list leaves
/// `Containers` empty, as Docker's does).
pub fn network_json(n: &NetworkRecord, users: &[(ContainerRecord, EndpointRecord)]) -> serde_json::Value {
    let mut config = Vec::new();
    if let Some(s) = n.subnet {
        let mut c = serde_json::json!({"Subnet": s.to_string()});
        if let Some(g) = n.gateway {
            c["Gateway"] = g.to_string().into();
        }
        if let Some(r) = n.ip_range {
            c["IPRange"] = r.to_string().into();
        }
        config.push(c);
    }
    let containers: serde_json::Map<String, serde_json::Value> = users
        .iter()
        .map(|(r, e)| {
            (
                r.id.clone(),
                serde_json::json!({
                    "Name": r.name,
                    "EndpointID": e.endpoint_id,
                    "MacAddress": e.mac,
                    "IPv4Address": e.ip.map(|ip| format!("{ip}/{}", e.prefix_len)).unwrap_or_default(),
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": n.driver == "bridge",
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

impl Engine {
    /// Attaches a build step to the default bridge; returns the record to detach it with.
    /// Blocking.
    pub(crate) fn attach_step(&self, id: &str) -> Result<ContainerRecord> {
        let bridge = self.networks.find("bridge")?;
        let mut rec = ContainerRecord {
            id: id.to_owned(),
            name: format!("buildstep-{}", &id[..12]),
            created: Utc::now(),
            image: String::new(),
            image_id: String::new(),
            path: String::new(),
            args: Vec::new(),
            config: Default::default(),
            host_config: Default::default(),
            binds: Vec::new(),
            state: Default::default(),
            restart_count: 0,
            volumes: Vec::new(),
            networks: BTreeMap::from([(
                bridge.name.clone(),
                EndpointRecord { network_id: bridge.id.clone(), ..Default::default() },
            )]),
            ports: Vec::new(),
            health: None,
        };
        let a = self.networks.attach(&rec)?;
        rec.networks = a.endpoints;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_of(None), Mode::Network("bridge".into()));
        assert_eq!(mode_of(Some("default")), Mode::Network("bridge".into()));
        assert_eq!(mode_of(Some("host")), Mode::Host);
        assert_eq!(mode_of(Some("none")), Mode::None);
        assert_eq!(mode_of(Some("container:abc")), Mode::Container("abc".into()));
        assert_eq!(mode_of(Some("mynet")), Mode::Network("mynet".into()));
    }

    #[test]
    fn port_keys() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, Proto::Tcp));
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, Proto::Udp));
        assert_eq!(parse_port_key("80").unwrap(), (80, Proto::Tcp));
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("80/bogus").is_err());
    }
}
