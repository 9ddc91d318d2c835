//! Reaching the daemon as the docker CLI does: the address from `-H`, `BERTH_HOST` or
//! `DOCKER_HOST`; TLS from `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`,
//! `DOCKER_TLS`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`; and starting a local daemon on
//! the default socket when none answers.

use std::path::PathBuf;
use std::time::Duration;

use berth_api::{Client, ClientError, TlsOptions};
use clap::Args;

use crate::output::err_line;

/// The default daemon address.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// The global flags that say where the daemon is and how to talk to it.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectArgs {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host")]
    pub host: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls: Option<bool>,
    /// Use TLS and verify the remote
    #[arg(long = "tlsverify", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certs signed only by this CA (default "$DOCKER_CERT_PATH/ca.pem")
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default "$DOCKER_CERT_PATH/cert.pem")
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file (default "$DOCKER_CERT_PATH/key.pem")
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
}

/// Global flags that take a value, for finding the subcommand before clap runs.
pub const VALUE_FLAGS: &[&str] = &["-H", "--host", "--log-level", "--tlscacert", "--tlscert", "--tlskey"];

/// Picks the daemon address: `-H`, then `BERTH_HOST`, then `DOCKER_HOST`, then the default
/// socket. `BERTH_HOST` comes before `DOCKER_HOST` so that a shell set up for another
/// engine's daemon does not send berth's commands there.
pub fn resolve_host(flag: Option<&str>) -> String {
    resolve_host_with(flag, &|k| std::env::var(k).ok())
}

fn resolve_host_with(flag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some(h) = flag.filter(|h| !h.is_empty()) {
        return h.to_owned();
    }
    ["BERTH_HOST", "DOCKER_HOST"]
        .iter()
        .find_map(|k| env(k).filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_owned())
}

/// The TLS settings the docker CLI would use, or `None` for plain connections. As docker:
/// `--tlsverify` (or a non-empty `DOCKER_TLS_VERIFY`) turns TLS on and verifies the daemon;
/// `--tls` alone encrypts without verifying; file flags default to `ca.pem`, `cert.pem` and
/// `key.pem` in `DOCKER_CERT_PATH` (else the docker config directory, `~/.docker`), and a
/// default certificate or key that does not exist is simply not presented.
pub fn tls_options(a: &ConnectArgs) -> Option<TlsOptions> {
    tls_options_with(a, &|k| std::env::var(k).ok())
}

fn tls_options_with(a: &ConnectArgs, env: &dyn Fn(&str) -> Option<String>) -> Option<TlsOptions> {
    let env_verify = env("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    let verify = a.tlsverify.unwrap_or(env_verify);
    // DOCKER_TLS can only turn TLS on, never off, as in the docker CLI.
    let env_tls = env("DOCKER_TLS").is_some_and(|v| !v.is_empty());
    if !(a.tls.unwrap_or(false) || env_tls || a.tlsverify.is_some() || verify) {
        return None;
    }
    let dir = env("DOCKER_CERT_PATH").filter(|p| !p.is_empty()).map(PathBuf::from).unwrap_or_else(|| {
        env("DOCKER_CONFIG")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env("HOME").unwrap_or_default()).join(".docker"))
    });
    let or_default = |flag: &Option<PathBuf>, name: &str| match flag {
        Some(p) => Some(p.clone()),
        None => Some(dir.join(name)).filter(|p| p.exists()),
    };
    Some(TlsOptions {
        ca_cert: Some(a.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem"))),
        cert: or_default(&a.tlscert, "cert.pem"),
        key: or_default(&a.tlskey, "key.pem"),
        verify,
    })
}

/// A client for the daemon the flags and environment name.
pub fn client(a: &ConnectArgs) -> Result<Client, ClientError> {
    Client::with_tls(&resolve_host(a.host.as_deref()), tls_options(a).as_ref())
}

/// Starts `berth daemon` in the background when the default socket has no listener, we
/// are root and `BERTH_NO_AUTOSTART` is unset; waits up to 10 s for `/_ping`.
pub async fn autostart(c: &Client) {
    let Some(socket) = c.socket() else { return };
    if c.host() != DEFAULT_HOST
        || std::env::var_os("BERTH_NO_AUTOSTART").is_some()
        || !rustix::process::geteuid().is_root()
    {
        return;
    }
    if tokio::net::UnixStream::connect(socket).await.is_ok() {
        return;
    }
    let log_path = "/run/berth/daemon.log";
    if std::fs::create_dir_all("/run/berth").is_err() {
        return;
    }
    let Ok(log) = std::fs::OpenOptions::new().create(true).append(true).open(log_path) else {
        return;
    };
    let Ok(log2) = log.try_clone() else {
        return;
    };
    // The resolved path, so `ps` shows `berth daemon` rather than `exe daemon`.
    let exe = std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from("/proc/self/exe"));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("daemon").stdin(std::process::Stdio::null()).stdout(log).stderr(log2);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it
        // detaches the daemon from our session so it outlives this terminal.
        unsafe {
            cmd.pre_exec(|| rustix::process::setsid().map(|_| ()).map_err(std::io::Error::from));
        }
    }
    if cmd.spawn().is_err() {
        return;
    }
    err_line(&format!("berth: starting the daemon (log: {log_path})"));
    for _ in 0..100 {
        if c.ping().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_resolution() {
        assert_eq!(resolve_host(Some("unix:///a.sock")), "unix:///a.sock");
        let env = |k: &str| match k {
            "BERTH_HOST" => None,
            "DOCKER_HOST" => Some("tcp://d:1".to_owned()),
            _ => None,
        };
        assert_eq!(resolve_host_with(None, &env), "tcp://d:1");
        assert_eq!(resolve_host_with(Some("tcp://h:2"), &env), "tcp://h:2");
        let both = |k: &str| Some(format!("tcp://{k}:1"));
        assert_eq!(resolve_host_with(None, &both), "tcp://BERTH_HOST:1");
        assert_eq!(resolve_host_with(None, &|_| None), DEFAULT_HOST);
    }

    #[test]
    fn tls_like_docker() {
        let none = |_: &str| None;
        assert_eq!(tls_options_with(&ConnectArgs::default(), &none), None);
        let certs = |k: &str| match k {
            "DOCKER_CERT_PATH" => Some("/nonexistent/certs".to_owned()),
            _ => None,
        };
        let verify = ConnectArgs { tlsverify: Some(true), ..Default::default() };
        let o = tls_options_with(&verify, &certs).unwrap();
        assert!(o.verify);
        assert_eq!(o.ca_cert, Some(PathBuf::from("/nonexistent/certs/ca.pem")));
        assert_eq!((o.cert, o.key), (None, None), "missing default files are not presented");
        let tls = ConnectArgs { tls: Some(true), tlscert: Some("c.pem".into()), ..Default::default() };
        let o = tls_options_with(&tls, &certs).unwrap();
        assert!(!o.verify);
        assert_eq!(o.cert, Some(PathBuf::from("c.pem")));
        let env_verify = |k: &str| (k == "DOCKER_TLS_VERIFY").then(|| "1".to_owned());
        assert!(tls_options_with(&ConnectArgs::default(), &env_verify).unwrap().verify);
        let off = ConnectArgs { tlsverify: Some(false), ..Default::default() };
        let o = tls_options_with(&off, &env_verify).unwrap();
        assert!(!o.verify, "--tlsverify=false still means TLS, unverified");
        let env_tls = |k: &str| (k == "DOCKER_TLS").then(|| "1".to_owned());
        assert!(tls_options_with(&ConnectArgs::default(), &env_tls).is_some_and(|o| !o.verify));
    }
}
