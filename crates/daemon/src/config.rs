//! Daemon configuration: dockerd's flag names (`-H`, `--data-root`, `--exec-root`,
//! `--config-file`, `--log-level`, `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`,
//! `--tlskey`), berth's own limits (`--max-layer-size`, `--api-header-timeout`) and a
//! dockerd-style `daemon.json`. Keys of daemon.json
//! that berth knows but does not apply yet are accepted with a warning; unknown keys are an
//! error, as dockerd treats them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::error::{Error, Result};

/// Where the daemon's config file is looked for when `--config-file` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

/// The default `max-layer-size`: 100 GiB. Docker has no such limit; berth has one because a
/// few KB of tar (sparse headers, or gzip/zstd of zeros) can otherwise expand into a full
/// disk or a read of terabytes. 100 GiB is well above the largest real layers (CUDA and
/// model layers reach tens of GiB uncompressed), so no honest image meets it, while it still
/// bounds what one hostile tar costs; hosts with bigger layers raise it, `0` removes it.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 100 << 30;

/// The default `api-header-timeout`: dockerd's `ReadHeaderTimeout` (5 minutes). A client
/// must send a request's headers (and on TLS finish its handshake) within it, and an idle
/// keep-alive connection is closed after it, as Go's server does with the same setting.
pub const DEFAULT_API_HEADER_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// `berth daemon` flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "berth daemon", about = "Run the berth daemon (Docker Engine API server)")]
pub struct DaemonArgs {
    /// Socket(s) to listen on, e.g. unix:///run/berth/berth.sock
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Root directory of persistent state
    #[arg(long = "data-root")]
    pub data_root: Option<PathBuf>,
    /// Root directory for execution state (shim sockets, runtime state)
    #[arg(long = "exec-root")]
    pub exec_root: Option<PathBuf>,
    /// Daemon configuration file
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Logging level: debug, info, warn, error, fatal
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Use TLS; implied by --tlsverify
    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Use TLS and verify the remote (clients must present a certificate signed by --tlscacert)
    #[arg(long = "tlsverify", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certs signed only by this CA (default "~/.docker/ca.pem")
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default "~/.docker/cert.pem")
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file (default "~/.docker/key.pem")
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    /// Refuse image layers whose files add up to more than this once unpacked (e.g. 100g; 0 for no limit)
    #[arg(long = "max-layer-size")]
    pub max_layer_size: Option<String>,
    /// Time a client has to send a request's headers or finish a TLS handshake (e.g. 5m, 30s)
    #[arg(long = "api-header-timeout")]
    pub api_header_timeout: Option<String>,
    /// Enable insecure registry communication (host[:port] or CIDR; repeatable)
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Preferred registry mirror for Docker Hub images (repeatable)
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
    /// Directory of per-registry certificates, HOST:PORT/{*.crt,*.cert,*.key} (default /etc/docker/certs.d and /etc/berth/certs.d)
    #[arg(long = "registry-certs-dir")]
    pub registry_certs_dir: Option<PathBuf>,
    /// Name of the default bridge network's Linux bridge (default "berth0")
    #[arg(short = 'b', long = "bridge")]
    pub bridge: Option<String>,
    /// Default bridge network's gateway address and subnet, e.g. 172.17.0.1/16
    #[arg(long = "bip")]
    pub bip: Option<String>,
    /// Subnet of the default bridge network that containers' addresses are taken from
    #[arg(long = "fixed-cidr")]
    pub fixed_cidr: Option<String>,
    /// Name of berth's own nftables table (family inet; default "berth")
    #[arg(long = "nft-table")]
    pub nft_table: Option<String>,
    /// CDI specification directories to use (repeatable; replaces /etc/cdi and /var/run/cdi)
    #[arg(long = "cdi-spec-dir")]
    pub cdi_spec_dirs: Vec<PathBuf>,
}

/// dockerd's registry settings: `insecure-registries` and `registry-mirrors` (daemon.json
/// or flags, the two lists merged as dockerd merges them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `host[:port]` or CIDR entries reached over plain HTTP (loopback always is).
    pub insecure: Vec<String>,
    /// Mirror URLs tried first for Docker Hub names.
    pub mirrors: Vec<String>,
    /// Where `HOST:PORT/` certificate directories are looked up instead of the defaults.
    pub certs_dir: Option<PathBuf>,
}

impl RegistryConfig {
    /// The settings as the registry client takes them; certificates come from
    /// `--registry-certs-dir`, else `/etc/docker/certs.d` and berth's own `/etc/berth/certs.d`.
    pub fn options(&self) -> berth_registry::client::RegistryOptions {
        berth_registry::client::RegistryOptions {
            insecure: self.insecure.clone(),
            mirrors: self.mirrors.clone(),
            certs_dirs: match &self.certs_dir {
                Some(d) => vec![d.clone()],
                None => berth_registry::client::default_certs_dirs(Path::new("/etc/berth")),
            },
        }
    }
}

/// A TCP address the API is served on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpHost {
    /// Host name or IP address to bind.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl TcpHost {
    /// `host:port` for binding (IPv6 in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether only this machine can reach the address (a loopback IP or `localhost`).
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// The TLS settings of the TCP listeners, as dockerd takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA whose certificates clients must present (used with `verify`).
    pub ca_cert: PathBuf,
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// Mutual TLS: a client certificate signed by `ca_cert` is required.
    pub verify: bool,
}

/// dockerd's warning for a TCP listener without client verification.
pub const INSECURE_TCP_WARNING: &str = "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.";

/// The effective configuration after flags and daemon.json are merged (flags win).
#[derive(Debug, Clone)]
pub struct Config {
    /// unix socket paths to serve the API on.
    pub sockets: Vec<PathBuf>,
    /// TCP addresses to serve the API on.
    pub tcp: Vec<TcpHost>,
    /// TLS for the TCP listeners (`--tls`/`--tlsverify`), `None` for plain TCP.
    pub tls: Option<TlsSettings>,
    /// Persistent state: images, containers, state.db.
    pub data_root: PathBuf,
    /// Volatile state: shim sockets and libcontainer state.
    pub exec_root: PathBuf,
    /// tracing filter.
    pub log_level: String,
    /// Container log rotation: bytes per file.
    pub log_max_size: u64,
    /// Container log rotation: files kept.
    pub log_max_files: u32,
    /// The most an image layer's files may add up to once unpacked; `None` for no limit.
    pub max_layer_size: Option<u64>,
    /// Time a client has to send a request's headers (and finish a TLS handshake).
    pub api_header_timeout: Duration,
    /// Warnings to print once logging is up (ignored daemon.json keys).
    pub warnings: Vec<String>,
    /// `init: true`: containers run berth's init as PID 1 unless they say `--init=false`.
    pub init: bool,
    /// Registry settings (`insecure-registries`, `registry-mirrors`).
    pub registry: RegistryConfig,
    /// Container networking: the default bridge, address pools, our nftables table.
    pub network: NetworkOptions,
    /// `cdi-spec-dirs`: where CDI specs are read, later directories winning; empty
    /// disables CDI.
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// `features.cdi` (default on, as in dockerd 28): off empties `cdi_spec_dirs`.
    pub cdi_enabled: bool,
    /// `default-ulimits`: rlimits for containers that do not set the same `--ulimit`.
    pub default_ulimits: Vec<berth_runtime::spec::Rlimit>,
}

/// daemon.json keys dockerd knows that berth accepts but does not act on yet.
const ACCEPTED_IGNORED: &[&str] = &[
    "authorization-plugins",
    "cgroup-parent",
    "containerd",
    "default-cgroupns-mode",
    "default-gateway",
    "default-ipc-mode",
    "default-runtime",
    "default-shm-size",
    "dns",
    "dns-opts",
    "dns-search",
    "exec-opts",
    "experimental",
    "fixed-cidr-v6",
    "group",
    "icc",
    "init-path",
    "insecure-registries",
    "ip",
    "ip-forward",
    "ip-masq",
    "iptables",
    "ip6tables",
    "ipv6",
    "labels",
    "live-restore",
    "log-driver",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "max-download-attempts",
    "metrics-addr",
    "mtu",
    "no-new-privileges",
    "oom-score-adjust",
    "pidfile",
    "raw-logs",
    "registry-mirrors",
    "runtimes",
    "seccomp-profile",
    "selinux-enabled",
    "shutdown-timeout",
    "storage-driver",
    "storage-opts",
    "userland-proxy",
    "userns-remap",
];

/// A CDI directory list as dockerd reads it: a single empty entry disables CDI.
fn cdi_dirs(mut dirs: Vec<PathBuf>) -> Vec<PathBuf> {
    if dirs.len() == 1 && dirs[0].as_os_str().is_empty() {
        dirs.clear();
    }
    dirs
}

/// Whether a daemon.json text (already validated by `apply_file`) sets `key` at its top level.
fn json_has_key(json: &str, key: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json).ok().is_some_and(|v| v.get(key).is_some())
}

/// daemon.json's `default-ulimits`: `{"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}}`
/// (dockerd's units.Ulimit map; `Name` may be left out).
fn parse_default_ulimits(v: &serde_json::Value) -> std::result::Result<Vec<berth_runtime::spec::Rlimit>, String> {
    let obj = v.as_object().ok_or_else(|| "default-ulimits must be an object".to_owned())?;
    let mut out = Vec::new();
    for (name, l) in obj {
        if berth_runtime::spec::rlimit_type(name).is_none() {
            return Err(format!("invalid ulimit type: {name}"));
        }
        let num = |k: &str| l.get(k).and_then(serde_json::Value::as_i64);
        let (Some(soft), Some(hard)) = (num("Soft"), num("Hard")) else {
            return Err(format!("default-ulimits.{name} must have numeric Soft and Hard"));
        };
        let lim = |n: i64| if n < 0 { u64::MAX } else { n as u64 };
        if hard != -1 && (soft == -1 || soft > hard) {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"));
        }
        out.push(berth_runtime::spec::Rlimit { name: name.clone(), soft: lim(soft), hard: lim(hard) });
    }
    Ok(out)
}

impl Config {
    /// Merges flags with the config file. A missing default config file is fine; a missing
    /// explicit one, bad JSON, an unknown key or a wrong type is an error.
    pub fn load(args: &DaemonArgs) -> Result<Config> {
        let (file, explicit) = match &args.config_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let json = match std::fs::read_to_string(&file) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => None,
            Err(e) => {
                return Err(Error::Config(format!("unable to configure the daemon with file {}: {e}", file.display())));
            }
        };
        let mut cfg = Config {
            sockets: Vec::new(),
            tcp: Vec::new(),
            tls: None,
            data_root: PathBuf::from("/var/lib/berth"),
            exec_root: PathBuf::from("/run/berth"),
            log_level: "info".to_owned(),
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 3,
            max_layer_size: Some(DEFAULT_MAX_LAYER_SIZE),
            api_header_timeout: DEFAULT_API_HEADER_TIMEOUT,
            warnings: Vec::new(),
            init: false,
            registry: RegistryConfig::default(),
            network: NetworkOptions::default(),
            cdi_spec_dirs: berth_runtime::cdi::DEFAULT_SPEC_DIRS.iter().map(PathBuf::from).collect(),
            cdi_enabled: true,
            default_ulimits: Vec::new(),
        };
        let mut file_hosts = Vec::new();
        let mut file_tls = FileTls::default();
        let mut file_has_cdi_dirs = false;
        if let Some(json) = json {
            cfg.apply_file(&file, &json, &mut file_hosts, &mut file_tls)?;
            file_has_cdi_dirs = json_has_key(&json, "cdi-spec-dirs");
        }
        if !args.cdi_spec_dirs.is_empty() {
            if file_has_cdi_dirs {
                return Err(Error::Config(format!(
                    "unable to configure the daemon with file {}: the following directives are specified both as a flag and in the configuration file: cdi-spec-dirs",
                    file.display()
                )));
            }
            cfg.cdi_spec_dirs = cdi_dirs(args.cdi_spec_dirs.clone());
        }
        // dockerd: CDI is on unless `features.cdi` is false, which empties the directories.
        if !cfg.cdi_enabled {
            cfg.cdi_spec_dirs.clear();
        }
        let hosts = if !args.hosts.is_empty() {
            if !file_hosts.is_empty() {
                return Err(Error::Config(format!(
                    "unable to configure the daemon with file {}: the following directives are specified both as a flag and in the configuration file: hosts",
                    file.display()
                )));
            }
            args.hosts.clone()
        } else {
            file_hosts
        };
        let env_verify = std::env::var("DOCKER_TLS_VERIFY").is_ok_and(|v| !v.is_empty());
        let verify = args.tlsverify.or(file_tls.tlsverify).unwrap_or(env_verify);
        // --tlsverify implies --tls, as in dockerd.
        let tls = args.tls.or(file_tls.tls).unwrap_or(false) || verify;
        for h in &hosts {
            match berth_api::Host::parse(h, tls) {
                Ok(berth_api::Host::Tcp { host, port }) => cfg.tcp.push(TcpHost { host, port }),
                Ok(berth_api::Host::Unix(_)) => cfg.sockets.push(parse_host(h)?),
                Err(e) => return Err(Error::Config(e.to_string())),
            }
        }
        if hosts.is_empty() {
            cfg.sockets.push(PathBuf::from(berth_api::DEFAULT_SOCKET));
        }
        if tls {
            let dir = std::env::var_os("DOCKER_CERT_PATH")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"));
            let pick = |flag: &Option<PathBuf>, file: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
                absolute(&flag.clone().or_else(|| file.clone()).unwrap_or_else(|| dir.join(name)))
            };
            cfg.tls = Some(TlsSettings {
                ca_cert: pick(&args.tlscacert, &file_tls.tlscacert, "ca.pem")?,
                cert: pick(&args.tlscert, &file_tls.tlscert, "cert.pem")?,
                key: pick(&args.tlskey, &file_tls.tlskey, "key.pem")?,
                verify,
            });
        }
        for t in &cfg.tcp {
            if !tls && !t.is_loopback() {
                return Err(Error::Config(format!(
                    "refusing to serve the API on tcp://{} without TLS: anyone who can reach that address would get root access on this machine; use --tlsverify (or --tls) with certificates, or bind to 127.0.0.1",
                    t.addr()
                )));
            }
            if !verify {
                cfg.warnings.push(format!("{INSECURE_TCP_WARNING} (host: tcp://{})", t.addr()));
            }
        }
        if let Some(d) = &args.data_root {
            cfg.data_root = absolute(d)?;
        }
        if let Some(d) = &args.exec_root {
            cfg.exec_root = absolute(d)?;
        }
        if let Some(l) = &args.log_level {
            cfg.log_level = parse_level(l)?;
        }
        if args.debug {
            cfg.log_level = "debug".to_owned();
        }
        if let Some(v) = &args.max_layer_size {
            cfg.max_layer_size = parse_limit(v).map_err(Error::Config)?;
        }
        if let Some(v) = &args.api_header_timeout {
            cfg.api_header_timeout = parse_timeout(v).map_err(Error::Config)?;
        }
        cfg.registry.insecure.extend(args.insecure_registries.iter().cloned());
        cfg.registry.mirrors.extend(args.registry_mirrors.iter().cloned());
        if let Some(d) = &args.registry_certs_dir {
            cfg.registry.certs_dir = Some(d.clone());
        }
        for m in &cfg.registry.mirrors {
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                return Err(Error::Config(format!("invalid mirror: unsupported scheme \"\" in \"{m}\"")));
            }
        }
        cfg.network.apply_flags(args)?;
        Ok(cfg)
    }

    fn apply_file(&mut self, file: &Path, json: &str, hosts: &mut Vec<String>, tls: &mut FileTls) -> Result<()> {
        let bad =
            |msg: String| Error::Config(format!("unable to configure the daemon with file {}: {msg}", file.display()));
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| bad("the configuration must be a JSON object".to_owned()))?;
        let string = |k: &str, v: &serde_json::Value| -> Result<String> {
            v.as_str().map(str::to_owned).ok_or_else(|| bad(format!("{k} must be a string")))
        };
        for (k, v) in obj {
            match k.as_str() {
                "hosts" => {
                    let arr = v.as_array().ok_or_else(|| bad("hosts must be a list of strings".to_owned()))?;
                    for h in arr {
                        hosts.push(string(k, h)?);
                    }
                }
                "tls" => tls.tls = Some(v.as_bool().ok_or_else(|| bad("tls must be a boolean".to_owned()))?),
                "tlsverify" => {
                    tls.tlsverify = Some(v.as_bool().ok_or_else(|| bad("tlsverify must be a boolean".to_owned()))?)
                }
                "tlscacert" => tls.tlscacert = Some(PathBuf::from(string(k, v)?)),
                "tlscert" => tls.tlscert = Some(PathBuf::from(string(k, v)?)),
                "tlskey" => tls.tlskey = Some(PathBuf::from(string(k, v)?)),
                "data-root" | "graph" => self.data_root = absolute(Path::new(&string(k, v)?))?,
                "exec-root" => self.exec_root = absolute(Path::new(&string(k, v)?))?,
                "log-level" => self.log_level = parse_level(&string(k, v)?)?,
                "debug" => {
                    if v.as_bool().ok_or_else(|| bad("debug must be a boolean".to_owned()))? {
                        self.log_level = "debug".to_owned();
                    }
                }
                "log-opts" => {
                    let opts = v.as_object().ok_or_else(|| bad("log-opts must be an object".to_owned()))?;
                    for (ok, ov) in opts {
                        let s = string(ok, ov)?;
                        match ok.as_str() {
                            "max-size" => {
                                self.log_max_size =
                                    parse_size(&s).ok_or_else(|| bad(format!("invalid max-size: {s}")))?
                            }
                            "max-file" => {
                                self.log_max_files = s
                                    .parse()
                                    .ok()
                                    .filter(|n| *n >= 1)
                                    .ok_or_else(|| bad(format!("invalid max-file: {s}")))?
                            }
                            _ => self
                                .warnings
                                .push(format!("daemon.json: log-opts.{ok} is not supported yet and was ignored")),
                        }
                    }
                }
                "cdi-spec-dirs" => {
                    let arr = v.as_array().ok_or_else(|| bad("cdi-spec-dirs must be a list of strings".to_owned()))?;
                    let mut dirs = Vec::new();
                    for d in arr {
                        dirs.push(PathBuf::from(string(k, d)?));
                    }
                    self.cdi_spec_dirs = cdi_dirs(dirs);
                }
                "features" => {
                    let obj = v.as_object().ok_or_else(|| bad("features must be an object".to_owned()))?;
                    for (fk, fv) in obj {
                        let on = fv.as_bool().ok_or_else(|| bad(format!("features.{fk} must be a boolean")))?;
                        // Other features (buildkit, containerd-snapshotter, ...) name what berth
                        // always or never does; dockerd accepts unknown names too.
                        if fk == "cdi" {
                            self.cdi_enabled = on;
                        }
                    }
                }
                "default-ulimits" => self.default_ulimits = parse_default_ulimits(v).map_err(bad)?,
                "init" => self.init = v.as_bool().ok_or_else(|| bad("init must be a boolean".to_owned()))?,
                "max-layer-size" => self.max_layer_size = parse_limit(&string(k, v)?).map_err(bad)?,
                "api-header-timeout" => self.api_header_timeout = parse_timeout(&string(k, v)?).map_err(bad)?,
                "insecure-registries" | "registry-mirrors" => {
                    let arr = v.as_array().ok_or_else(|| bad(format!("{k} must be a list of strings")))?;
                    let mut list = Vec::new();
                    for h in arr {
                        list.push(string(k, h)?);
                    }
                    if k == "insecure-registries" {
                        self.registry.insecure.extend(list);
                    } else {
                        self.registry.mirrors.extend(list);
                    }
                }
                "bridge" | "bip" | "fixed-cidr" | "nft-table" | "default-address-pools" => {
                    self.network.apply_key(k, v).map_err(bad)?
                }
                other if ACCEPTED_IGNORED.contains(&other) => {
                    self.warnings.push(format!("daemon.json: {other} is not applied by berth yet and was ignored"))
                }
                other => {
                    return Err(bad(format!("the following directives don't match any configuration option: {other}")));
                }
            }
        }
        Ok(())
    }
}

/// Container networking settings (dockerd's `bridge`, `bip`, `fixed-cidr`,
/// `default-address-pools`; berth's `nft-table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkOptions {
    /// The default bridge network's Linux bridge.
    pub bridge: String,
    /// `bip`: the bridge's address with the subnet's prefix length.
    pub bip: Option<ipnet::Ipv4Net>,
    /// `fixed-cidr`: where the default bridge's containers get addresses.
    pub fixed_cidr: Option<ipnet::Ipv4Net>,
    /// `default-address-pools`: where subnets of new networks are chosen.
    pub pools: Vec<berth_network::ipam::AddressPool>,
    /// Our nftables table (family inet).
    pub nft_table: String,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            bridge: "berth0".to_owned(),
            bip: None,
            fixed_cidr: None,
            pools: berth_network::ipam::default_pools(),
            nft_table: "berth".to_owned(),
        }
    }
}

impl NetworkOptions {
    fn apply_flags(&mut self, a: &DaemonArgs) -> Result<()> {
        let c = |r: std::result::Result<(), String>| r.map_err(Error::Config);
        for (k, v) in
            [("bridge", &a.bridge), ("bip", &a.bip), ("fixed-cidr", &a.fixed_cidr), ("nft-table", &a.nft_table)]
        {
            if let Some(v) = v {
                c(self.apply_key(k, &serde_json::Value::String(v.clone())))?;
            }
        }
        if let (Some(bip), Some(fixed)) = (self.bip, self.fixed_cidr)
            && !bip.trunc().contains(&fixed)
        {
            return Err(Error::Config(format!("fixed-cidr {fixed} is not within bip {bip}")));
        }
        Ok(())
    }

    fn apply_key(&mut self, k: &str, v: &serde_json::Value) -> std::result::Result<(), String> {
        let s = || v.as_str().map(str::to_owned).ok_or_else(|| format!("{k} must be a string"));
        let cidr = |x: &str| x.parse::<ipnet::Ipv4Net>().map_err(|_| format!("invalid {k}: {x:?} is not an IPv4 CIDR"));
        match k {
            "bridge" => {
                let b = s()?;
                if b.is_empty() || b.len() > 15 || b.contains(['/', ' ', ':']) {
                    return Err(format!("invalid bridge name: {b:?}"));
                }
                self.bridge = b;
            }
            "bip" => {
                let bip = cidr(&s()?)?;
                if bip.prefix_len() > 30 {
                    return Err(format!(
                        "invalid bip {bip}: a /{} subnet has no address for containers",
                        bip.prefix_len()
                    ));
                }
                self.bip = Some(bip);
            }
            "fixed-cidr" => self.fixed_cidr = Some(cidr(&s()?)?.trunc()),
            "nft-table" => {
                let t = s()?;
                if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("invalid nft-table name: {t:?}"));
                }
                self.nft_table = t;
            }
            "default-address-pools" => {
                let arr = v.as_array().ok_or("default-address-pools must be a list")?;
                let mut pools = Vec::new();
                for p in arr {
                    let base = p["base"].as_str().ok_or("default-address-pools: base must be a string")?;
                    let size = p["size"].as_u64().ok_or("default-address-pools: size must be a number")?;
                    let base = cidr(base)?.trunc();
                    if size > 30 || (size as u8) < base.prefix_len() {
                        return Err(format!("invalid default-address-pools size {size} for {base}"));
                    }
                    pools.push(berth_network::ipam::AddressPool { base, size: size as u8 });
                }
                self.pools = pools;
            }
            _ => return Err(format!("unknown network key {k}")),
        }
        Ok(())
    }
}

/// The TLS keys of daemon.json (flags win over them).
#[derive(Debug, Default)]
struct FileTls {
    tls: Option<bool>,
    tlsverify: Option<bool>,
    tlscacert: Option<PathBuf>,
    tlscert: Option<PathBuf>,
    tlskey: Option<PathBuf>,
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::Config(format!("invalid path {}: {e}", p.display())))
}

fn parse_level(l: &str) -> Result<String> {
    match l {
        "debug" | "info" | "warn" | "error" => Ok(l.to_owned()),
        "fatal" | "panic" => Ok("error".to_owned()),
        "trace" => Ok("trace".to_owned()),
        other => Err(Error::Config(format!("unable to parse logging level: {other}"))),
    }
}

/// A unix socket address: `unix:///path`, `unix://path` or a bare absolute path. TCP
/// addresses are taken by [`Config::load`] (see [`TcpHost`]), not here.
pub fn parse_host(h: &str) -> Result<PathBuf> {
    if let Some(p) = h.strip_prefix("unix://") {
        if p.is_empty() {
            return Ok(PathBuf::from(berth_api::DEFAULT_SOCKET));
        }
        return Ok(PathBuf::from(p));
    }
    if h.starts_with('/') {
        return Ok(PathBuf::from(h));
    }
    if h.starts_with("tcp://") {
        return Err(Error::Config(format!("{h} is not a unix socket")));
    }
    if h.starts_with("fd://") {
        return Err(Error::Config(format!(
            "listening on {h} is not supported: berth does not take sockets from systemd"
        )));
    }
    Err(Error::Config(format!("invalid host: {h}")))
}

/// `max-layer-size`: a size as [`parse_size`] reads it, `0` for no limit.
fn parse_limit(s: &str) -> std::result::Result<Option<u64>, String> {
    if s.trim() == "0" {
        return Ok(None);
    }
    parse_size(s).map(Some).ok_or_else(|| format!("invalid max-layer-size: {s}"))
}

/// `api-header-timeout`: a Go-style duration (`300ms`, `30s`, `5m`, `1h`) or plain seconds,
/// more than zero.
fn parse_timeout(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid api-header-timeout: {s} (a duration such as 30s or 5m)");
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(secs > 0.0 && secs < 1e9) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Docker's size syntax for log-opts: `10m`, `512k`, `1g`, plain bytes (and `t` for the
/// layer limit).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last()? {
        'k' => (&s[..s.trim_end_matches('b').len() - 1], 1024),
        'm' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024),
        'g' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024 * 1024),
        't' => (&s[..s.trim_end_matches('b').len() - 1], 1u64 << 40),
        _ => (s.trim_end_matches('b'), 1),
    };
    let n: f64 = num.parse().ok()?;
    (n > 0.0).then_some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {

    #[test]
    fn cdi_dirs_and_default_ulimits() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let load = |json: &str| {
            let f = dir.path().join("daemon.json");
            std::fs::write(&f, json).unwrap();
            Config::load(&DaemonArgs::parse_from(["berth daemon", "--config-file", f.to_str().unwrap()]))
        };
        let c = load("{}").unwrap();
        assert_eq!(c.cdi_spec_dirs, [PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")]);
        assert!(c.default_ulimits.is_empty());
        let c = load(r#"{"cdi-spec-dirs": ["/x/cdi"], "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 10, "Hard": -1}}}"#)
            .unwrap();
        assert_eq!(c.cdi_spec_dirs, [PathBuf::from("/x/cdi")]);
        assert_eq!(
            c.default_ulimits,
            [berth_runtime::spec::Rlimit { name: "nofile".into(), soft: 10, hard: u64::MAX }]
        );
        assert!(load(r#"{"cdi-spec-dirs": [""]}"#).unwrap().cdi_spec_dirs.is_empty());
        assert!(
            load(r#"{"default-ulimits": {"as": {"Soft": 1, "Hard": 1}}}"#)
                .unwrap_err()
                .to_string()
                .contains("invalid ulimit type: as")
        );
        assert!(load(r#"{"default-ulimits": {"nofile": {"Soft": 3, "Hard": 2}}}"#).is_err());
        assert!(load(r#"{"cdi-spec-dirs": "/x"}"#).is_err());
    }

    #[test]
    fn cdi_flag_and_feature() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("daemon.json");
        let load = |json: &str, extra: &[&str]| {
            std::fs::write(&f, json).unwrap();
            let mut argv = vec!["berth daemon", "--config-file", f.to_str().unwrap()];
            argv.extend_from_slice(extra);
            Config::load(&DaemonArgs::parse_from(argv))
        };
        let c = load("{}", &["--cdi-spec-dir", "/a", "--cdi-spec-dir", "/b"]).unwrap();
        assert_eq!(c.cdi_spec_dirs, [PathBuf::from("/a"), PathBuf::from("/b")]);
        let err = load(r#"{"cdi-spec-dirs": ["/x"]}"#, &["--cdi-spec-dir", "/a"]).unwrap_err().to_string();
        assert!(err.ends_with("specified both as a flag and in the configuration file: cdi-spec-dirs"), "{err}");
        let c = load(r#"{"features": {"cdi": false}}"#, &["--cdi-spec-dir", "/a"]).unwrap();
        assert!(!c.cdi_enabled);
        assert!(c.cdi_spec_dirs.is_empty());
        let c = load(r#"{"features": {"cdi": true, "containerd-snapshotter": false}}"#, &[]).unwrap();
        assert_eq!(c.cdi_spec_dirs, [PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")]);
        assert!(
            load(r#"{"features": {"cdi": "no"}}"#, &[])
                .unwrap_err()
                .to_string()
                .contains("features.cdi must be a boolean")
        );
    }

    use super::*;

    fn args(v: &[&str]) -> DaemonArgs {
        DaemonArgs::try_parse_from(std::iter::once("daemon").chain(v.iter().copied())).unwrap()
    }

    #[test]
    fn flags_and_file_merge() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("daemon.json");
        std::fs::write(&f, r#"{"data-root":"/x/data","log-opts":{"max-size":"1m","max-file":"2"},"iptables":false}"#)
            .unwrap();
        let c = Config::load(&args(&["--config-file", f.to_str().unwrap(), "-H", "unix:///tmp/s.sock"])).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/x/data"));
        assert_eq!(c.sockets, vec![PathBuf::from("/tmp/s.sock")]);
        assert_eq!((c.log_max_size, c.log_max_files), (1024 * 1024, 2));
        assert_eq!(c.warnings.len(), 1);
        std::fs::write(&f, r#"{"no-such-key":1}"#).unwrap();
        let e = Config::load(&args(&["--config-file", f.to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("don't match any configuration option: no-such-key"), "{e}");
        std::fs::write(&f, r#"{"hosts":["unix:///a.sock"]}"#).unwrap();
        assert!(Config::load(&args(&["--config-file", f.to_str().unwrap(), "-H", "/b.sock"])).is_err());
        assert!(Config::load(&args(&["--config-file", "/nonexistent/daemon.json"])).is_err());
        assert!(parse_host("tcp://0.0.0.0:2375").is_err());
        assert_eq!(parse_size("10m"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("bogus"), None);
    }

    #[test]
    fn limits() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("daemon.json");
        std::fs::write(&f, "{}").unwrap();
        let cf = f.to_str().unwrap();
        let c = Config::load(&args(&["--config-file", cf])).unwrap();
        assert_eq!(c.max_layer_size, Some(DEFAULT_MAX_LAYER_SIZE));
        assert_eq!(c.api_header_timeout, Duration::from_secs(300));
        let c =
            Config::load(&args(&["--config-file", cf, "--max-layer-size", "0", "--api-header-timeout", "2s"])).unwrap();
        assert_eq!((c.max_layer_size, c.api_header_timeout), (None, Duration::from_secs(2)));
        std::fs::write(&f, r#"{"max-layer-size":"1t","api-header-timeout":"500ms"}"#).unwrap();
        let c = Config::load(&args(&["--config-file", cf])).unwrap();
        assert_eq!((c.max_layer_size, c.api_header_timeout), (Some(1 << 40), Duration::from_millis(500)));
        for bad in [["--max-layer-size", "lots"], ["--api-header-timeout", "0"], ["--api-header-timeout", "5 days"]] {
            let mut a = vec!["--config-file", cf];
            a.extend(bad);
            assert!(Config::load(&args(&a)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tcp_and_tls() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("daemon.json");
        std::fs::write(&f, "{}").unwrap();
        let cf = f.to_str().unwrap();
        let e = Config::load(&args(&["--config-file", cf, "-H", "tcp://0.0.0.0:2375"])).unwrap_err();
        assert!(e.to_string().contains("without TLS"), "{e}");
        let c =
            Config::load(&args(&["--config-file", cf, "-H", "tcp://127.0.0.1:2375", "-H", "unix:///a.sock"])).unwrap();
        assert_eq!(c.tcp, vec![TcpHost { host: "127.0.0.1".into(), port: 2375 }]);
        assert_eq!(c.sockets, vec![PathBuf::from("/a.sock")]);
        assert!(c.warnings.iter().any(|w| w.starts_with(INSECURE_TCP_WARNING)));
        let c = Config::load(&args(&[
            "--config-file",
            cf,
            "-H",
            "tcp://0.0.0.0",
            "--tlsverify",
            "--tlscacert",
            "/ca.pem",
            "--tlscert",
            "/c.pem",
            "--tlskey",
            "/k.pem",
        ]))
        .unwrap();
        assert_eq!(c.tcp[0].port, 2376);
        assert!(c.sockets.is_empty());
        assert_eq!(
            c.tls,
            Some(TlsSettings { ca_cert: "/ca.pem".into(), cert: "/c.pem".into(), key: "/k.pem".into(), verify: true })
        );
        assert!(c.warnings.is_empty());
        std::fs::write(&f, r#"{"hosts":["tcp://0.0.0.0:2376"],"tls":true,"tlscert":"/c.pem","tlskey":"/k.pem"}"#)
            .unwrap();
        let c = Config::load(&args(&["--config-file", cf])).unwrap();
        assert!(c.tls.as_ref().is_some_and(|t| !t.verify && t.cert == Path::new("/c.pem")));
        assert_eq!(c.warnings.len(), 1, "TLS without client verification is warned about");
    }
}
