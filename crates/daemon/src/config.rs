//! Daemon configuration: dockerd's flag names (`-H`, `--data-root`, `--exec-root`,
//! `--config-file`, `--log-level`) and a dockerd-style `daemon.json`. Keys of daemon.json
//! that berth knows but does not apply yet are accepted with a warning; unknown keys are an
//! error, as dockerd treats them.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::error::{Error, Result};

/// Where the daemon's config file is looked for when `--config-file` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

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
}

/// The effective configuration after flags and daemon.json are merged (flags win).
#[derive(Debug, Clone)]
pub struct Config {
    /// unix socket paths to serve the API on.
    pub sockets: Vec<PathBuf>,
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
    /// Warnings to print once logging is up (ignored daemon.json keys).
    pub warnings: Vec<String>,
}

/// daemon.json keys dockerd knows that berth accepts but does not act on yet.
const ACCEPTED_IGNORED: &[&str] = &[
    "authorization-plugins",
    "bip",
    "bridge",
    "cgroup-parent",
    "containerd",
    "default-address-pools",
    "default-cgroupns-mode",
    "default-gateway",
    "default-ipc-mode",
    "default-runtime",
    "default-shm-size",
    "default-ulimits",
    "dns",
    "dns-opts",
    "dns-search",
    "exec-opts",
    "experimental",
    "features",
    "fixed-cidr",
    "fixed-cidr-v6",
    "group",
    "icc",
    "init",
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
    "tls",
    "tlscacert",
    "tlscert",
    "tlskey",
    "tlsverify",
    "userland-proxy",
    "userns-remap",
];

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
            data_root: PathBuf::from("/var/lib/berth"),
            exec_root: PathBuf::from("/run/berth"),
            log_level: "info".to_owned(),
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 3,
            warnings: Vec::new(),
        };
        let mut file_hosts = Vec::new();
        if let Some(json) = json {
            cfg.apply_file(&file, &json, &mut file_hosts)?;
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
        cfg.sockets = hosts.iter().map(|h| parse_host(h)).collect::<Result<_>>()?;
        if cfg.sockets.is_empty() {
            cfg.sockets.push(PathBuf::from(berth_api::DEFAULT_SOCKET));
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
        Ok(cfg)
    }

    fn apply_file(&mut self, file: &Path, json: &str, hosts: &mut Vec<String>) -> Result<()> {
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

/// `unix:///path`, `unix://path` or a bare absolute path. TCP needs TLS, which berth does not serve yet.
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
    if h.starts_with("tcp://") || h.starts_with("fd://") {
        return Err(Error::Config(format!(
            "listening on {h} is not supported: berth serves the API on unix sockets only"
        )));
    }
    Err(Error::Config(format!("invalid host: {h}")))
}

/// Docker's size syntax for log-opts: `10m`, `512k`, `1g`, plain bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last()? {
        'k' => (&s[..s.trim_end_matches('b').len() - 1], 1024),
        'm' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024),
        'g' => (&s[..s.trim_end_matches('b').len() - 1], 1024 * 1024 * 1024),
        _ => (s.trim_end_matches('b'), 1),
    };
    let n: f64 = num.parse().ok()?;
    (n > 0.0).then_some((n * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
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
}
