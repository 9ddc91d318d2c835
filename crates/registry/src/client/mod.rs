//! The distribution client: which endpoint serves a reference (mirrors for Docker Hub names,
//! HTTPS-then-HTTP for insecure registries, CAs and client certificates from `certs.d`), a session
//! per registry and repository (`transport.rs`: the token flow and the requests), and the
//! pull and push steps the daemon drives. Everything here is async and HTTP-only: storing what arrives is the
//! image crate's business.

pub mod auth;
pub mod pull;
pub mod push;
pub mod resolve;
pub mod transport;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_base::Reference;

pub use auth::{AuthConfig, AuthConfigs, Challenge, LoginOutcome};
pub use pull::{BlobProgress, fetch_blob};
pub use resolve::{Descriptor, Platform, Resolved};

use crate::error::Error;

/// Docker Hub's registry host, where `docker.io/...` names are served.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
/// The server address `docker login` uses for Docker Hub.
pub const DOCKER_HUB_INDEX: &str = "https://index.docker.io/v1/";

/// The daemon's registry settings (daemon.json's `insecure-registries`, `registry-mirrors`)
/// and where per-registry certificates live.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `host[:port]` names or CIDRs reached over plain HTTP (loopback always is, as in Docker).
    pub insecure: Vec<String>,
    /// Mirror base URLs tried first for Docker Hub names (`http://127.0.0.1:5000`).
    pub mirrors: Vec<String>,
    /// Directories holding `HOST[:PORT]/*.crt` CA files (`/etc/docker/certs.d`, berth's own).
    pub certs_dirs: Vec<PathBuf>,
}

/// One endpoint that may serve a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as it goes into URLs.
    pub host: String,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// True for a Docker Hub mirror (a failure there falls through to the next endpoint).
    pub mirror: bool,
    /// An insecure registry (loopback, `insecure-registries`): HTTPS is tried first without
    /// verifying the certificate, then plain HTTP, as dockerd does.
    pub insecure: bool,
}

impl Endpoint {
    /// `scheme://host`.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

impl RegistryOptions {
    /// True when `host` (`host[:port]`) is reached without TLS: loopback addresses and
    /// `localhost`, and whatever `insecure-registries` lists by name or by CIDR.
    pub fn is_insecure(&self, host: &str) -> bool {
        let hostname = split_port(host);
        if hostname == "localhost" || hostname.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        let ip = hostname.parse::<IpAddr>().ok();
        self.insecure.iter().any(|entry| {
            let entry = entry.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
            if entry == host || entry == hostname {
                return true;
            }
            match (ip, entry.split_once('/')) {
                (Some(ip), Some((net, bits))) => in_cidr(ip, net, bits),
                _ => false,
            }
        })
    }

    /// The endpoints to try for `r`, in order: mirrors first for Docker Hub names.
    pub fn endpoints(&self, r: &Reference) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if r.domain() == berth_base::reference::DEFAULT_DOMAIN {
            for m in &self.mirrors {
                let (scheme, host) = match m.split_once("://") {
                    Some(("http", h)) => ("http", h),
                    Some((_, h)) => ("https", h),
                    None => ("https", m.as_str()),
                };
                let host = host.trim_end_matches('/').to_owned();
                let insecure = scheme == "https" && self.is_insecure(&host);
                out.push(Endpoint { host, scheme, mirror: true, insecure });
            }
            out.push(Endpoint { host: DOCKER_HUB_HOST.to_owned(), scheme: "https", mirror: false, insecure: false });
        } else {
            let host = r.domain().to_owned();
            let insecure = self.is_insecure(&host);
            out.push(Endpoint { host, scheme: "https", mirror: false, insecure });
        }
        out
    }

    /// The endpoint for a registry named as `docker login` names it (`host:port`, a URL,
    /// or empty / Docker Hub's index for Docker Hub).
    pub fn login_endpoint(&self, server: &str) -> Endpoint {
        let s = server.trim();
        let host = s.trim_start_matches("https://").trim_start_matches("http://");
        let host = host.split('/').next().unwrap_or_default();
        if host.is_empty() || host == "index.docker.io" || host == "docker.io" || host == DOCKER_HUB_HOST {
            return Endpoint { host: DOCKER_HUB_HOST.to_owned(), scheme: "https", mirror: false, insecure: false };
        }
        if s.starts_with("http://") {
            return Endpoint { host: host.to_owned(), scheme: "http", mirror: false, insecure: false };
        }
        Endpoint { host: host.to_owned(), scheme: "https", mirror: false, insecure: self.is_insecure(host) }
    }

    /// What `certs.d/HOST[:PORT]/` holds for `host`, read as dockerd reads it: every `*.crt`
    /// is a CA to trust, every `NAME.cert` a client certificate whose key is `NAME.key`
    /// (a certificate without its key, or a key without its certificate, is an error).
    fn certificates(&self, host: &str) -> Result<(Vec<reqwest::Certificate>, Option<reqwest::Identity>), Error> {
        let mut cas = Vec::new();
        let mut identity = None;
        for dir in &self.certs_dirs {
            let d = dir.join(host);
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            names.sort();
            for p in names {
                let read = |p: &Path| std::fs::read(p).map_err(|source| Error::Io { path: p.to_owned(), source });
                match p.extension().and_then(|x| x.to_str()) {
                    Some("crt") => {
                        let pem = read(&p)?;
                        let certs = reqwest::Certificate::from_pem_bundle(&pem)
                            .map_err(|e| Error::Protocol(format!("CA certificate {}: {e}", p.display())))?;
                        cas.extend(certs);
                    }
                    Some("cert") => {
                        let key = p.with_extension("key");
                        if !key.exists() {
                            return Err(Error::Protocol(format!(
                                "missing key {} for client certificate {}. CA certificates must use the extension .crt",
                                key.display(),
                                p.display()
                            )));
                        }
                        let mut pem = read(&p)?;
                        pem.push(b'\n');
                        pem.extend(read(&key)?);
                        let id = reqwest::Identity::from_pem(&pem)
                            .map_err(|e| Error::Protocol(format!("client certificate {}: {e}", p.display())))?;
                        // dockerd offers every pair; rustls presents one, so the first one wins.
                        identity.get_or_insert(id);
                    }
                    Some("key") => {
                        let cert = p.with_extension("cert");
                        if !cert.exists() {
                            return Err(Error::Protocol(format!(
                                "missing client certificate {} for key {}",
                                cert.display(),
                                p.display()
                            )));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok((cas, identity))
    }

    /// An HTTP client for `endpoint`, trusting its `certs.d` CAs and presenting its client
    /// certificate (for TLS endpoints: dockerd reads `certs.d` only for secure registries;
    /// an insecure registry's certificate is not verified at all).
    pub fn http_client(&self, endpoint: &Endpoint) -> Result<reqwest::Client, Error> {
        install_crypto();
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60));
        if endpoint.scheme == "https" && endpoint.insecure {
            b = b.tls_danger_accept_invalid_certs(true);
        } else if endpoint.scheme == "https" {
            let (cas, identity) = self.certificates(&endpoint.host)?;
            if !cas.is_empty() {
                b = b.tls_certs_merge(cas);
            }
            if let Some(id) = identity {
                b = b.identity(id);
            }
        }
        b.build().map_err(|e| Error::http(&endpoint.base(), e))
    }

    /// Checks credentials against a registry as `docker login` does.
    pub async fn login(&self, auth: &AuthConfig) -> Result<LoginOutcome, Error> {
        let ep = self.negotiate(&self.login_endpoint(&auth.server_address)).await;
        let http = self.http_client(&ep)?;
        auth::login(&http, &ep.base(), auth).await
    }

    /// The endpoint to talk to for `endpoint`: itself, except that an insecure registry is
    /// asked over HTTPS (certificate unchecked) first and reached over plain HTTP when that
    /// fails below HTTP (no TLS there), as dockerd falls back from its HTTPS endpoint.
    pub async fn negotiate(&self, endpoint: &Endpoint) -> Endpoint {
        if !(endpoint.insecure && endpoint.scheme == "https") {
            return endpoint.clone();
        }
        let url = format!("{}/v2/", endpoint.base());
        let probe = match self.http_client(endpoint) {
            Ok(http) => {
                http.get(&url).timeout(Duration::from_secs(15)).send().await.map(|_| ()).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match probe {
            Ok(()) => endpoint.clone(),
            Err(e) => {
                tracing::debug!(%url, error = %e, "no TLS on an insecure registry; falling back to plain HTTP");
                Endpoint { scheme: "http", ..endpoint.clone() }
            }
        }
    }

    /// A session on `repository` at `endpoint` with `auth`, for pulling or (`push`) pushing:
    /// its token, when the registry wants one, is scoped to that. An insecure registry's
    /// scheme is settled here ([`RegistryOptions::negotiate`]).
    pub async fn session(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        auth: &AuthConfig,
        push: bool,
    ) -> Result<Session, Error> {
        let endpoint = self.negotiate(endpoint).await;
        Ok(Session {
            http: self.http_client(&endpoint)?,
            endpoint,
            repository: repository.to_owned(),
            creds: auth.clone(),
            push,
            scheme: std::sync::OnceLock::new(),
            authz: tokio::sync::Mutex::new(None),
        })
    }
}

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

fn install_crypto() {
    // reqwest is built without a default provider (ring is the workspace's choice); a second
    // install is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn split_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else { return false };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A connection to one repository of one registry, with the credentials it was opened with
/// and the token (or Basic header) it settled on.
pub struct Session {
    pub(crate) http: reqwest::Client,
    /// Where it talks to.
    pub endpoint: Endpoint,
    /// The repository path (`library/busybox`).
    pub repository: String,
    pub(crate) creds: AuthConfig,
    pub(crate) push: bool,
    pub(crate) scheme: std::sync::OnceLock<transport::Scheme>,
    /// The `Authorization` value for the session's own scope, once settled (`Some(None)`:
    /// anonymous).
    pub(crate) authz: tokio::sync::Mutex<Option<Option<reqwest::header::HeaderValue>>>,
}

impl Session {
    /// Settles the credentials before any content moves (fetching a Bearer token when the
    /// registry wants one), so a refusal is reported first.
    pub async fn authenticate(&self) -> Result<(), Error> {
        let url = format!("{}/v2/", self.endpoint.base());
        let res = self.send(&url, &[], |h| h.get(&url)).await?;
        if res.status().is_success() {
            return Ok(());
        }
        Err(transport::status_error(&url, res, None).await)
    }
}

/// Where a data root keeps berth's own `certs.d` (alongside `/etc/docker/certs.d`).
pub fn default_certs_dirs(berth_config_dir: &Path) -> Vec<PathBuf> {
    vec![PathBuf::from("/etc/docker/certs.d"), berth_config_dir.join("certs.d")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_rules() {
        let o = RegistryOptions { insecure: vec!["reg.local:5000".into(), "10.1.0.0/16".into()], ..Default::default() };
        assert!(o.is_insecure("127.0.0.1:5000"));
        assert!(o.is_insecure("localhost:1234"));
        assert!(o.is_insecure("[::1]:5000"));
        assert!(o.is_insecure("reg.local:5000"));
        assert!(o.is_insecure("10.1.2.3:443"));
        assert!(!o.is_insecure("10.2.0.1"));
        assert!(!o.is_insecure("registry-1.docker.io"));
    }

    #[test]
    fn docker_hub_names_try_mirrors_first() {
        let o = RegistryOptions { mirrors: vec!["http://127.0.0.1:5001/".into()], ..Default::default() };
        let eps = o.endpoints(&Reference::parse("busybox").unwrap());
        assert_eq!(eps.len(), 2);
        assert_eq!((eps[0].base(), eps[0].mirror, eps[0].insecure), ("http://127.0.0.1:5001".to_owned(), true, false));
        assert_eq!(eps[1].host, DOCKER_HUB_HOST);
        let eps = o.endpoints(&Reference::parse("127.0.0.1:5000/a/b:1").unwrap());
        assert_eq!(
            eps,
            vec![Endpoint { host: "127.0.0.1:5000".into(), scheme: "https", mirror: false, insecure: true }]
        );
        let eps = o.endpoints(&Reference::parse("reg.example:5000/a/b:1").unwrap());
        assert!(!eps[0].insecure);
        assert_eq!(o.login_endpoint("").host, DOCKER_HUB_HOST);
        assert_eq!(o.login_endpoint("https://index.docker.io/v1/").host, DOCKER_HUB_HOST);
        let ep = o.login_endpoint("127.0.0.1:5000");
        assert_eq!((ep.base(), ep.insecure), ("https://127.0.0.1:5000".to_owned(), true));
        assert_eq!(o.login_endpoint("http://127.0.0.1:5000").base(), "http://127.0.0.1:5000");
    }
}
