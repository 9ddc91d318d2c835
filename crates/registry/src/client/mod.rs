//! The distribution client: which endpoint serves a reference (mirrors for Docker Hub names,
//! plain HTTP for insecure registries, CAs from `certs.d`), a session per registry and
//! repository on top of `oci-client` (its token flow and blob calls), and the pull and push
//! steps the daemon drives. Everything here is async and HTTP-only: storing what arrives is the
//! image crate's business.

pub mod auth;
pub mod pull;
pub mod push;
pub mod resolve;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_base::Reference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

pub use auth::{AuthConfig, Challenge, LoginOutcome};
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
                let scheme = if self.is_insecure(&host) { "http" } else { scheme };
                out.push(Endpoint { host, scheme, mirror: true });
            }
            out.push(Endpoint { host: DOCKER_HUB_HOST.to_owned(), scheme: "https", mirror: false });
        } else {
            let host = r.domain().to_owned();
            let scheme = if self.is_insecure(&host) { "http" } else { "https" };
            out.push(Endpoint { host, scheme, mirror: false });
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
            return Endpoint { host: DOCKER_HUB_HOST.to_owned(), scheme: "https", mirror: false };
        }
        let scheme = if self.is_insecure(host) || s.starts_with("http://") { "http" } else { "https" };
        Endpoint { host: host.to_owned(), scheme, mirror: false }
    }

    /// The CA certificates `certs.d/HOST[:PORT]/*.crt` holds for `host`.
    fn certificates(&self, host: &str) -> Result<Vec<Certificate>, Error> {
        let mut out = Vec::new();
        for dir in &self.certs_dirs {
            let d = dir.join(host);
            let Ok(rd) = std::fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "crt") {
                    let data = std::fs::read(&p).map_err(|source| Error::Io { path: p.clone(), source })?;
                    out.push(Certificate { encoding: CertificateEncoding::Pem, data });
                }
            }
        }
        Ok(out)
    }

    /// A plain HTTP client for `endpoint` (login checks), trusting its `certs.d` CAs.
    pub fn http_client(&self, endpoint: &Endpoint) -> Result<reqwest::Client, Error> {
        install_crypto();
        let mut b = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60));
        for c in self.certificates(&endpoint.host)? {
            let cert = reqwest::Certificate::from_pem(&c.data)
                .map_err(|e| Error::Protocol(format!("certs.d CA for {}: {e}", endpoint.host)))?;
            b = b.tls_certs_merge([cert]);
        }
        b.build().map_err(|e| Error::http(&endpoint.base(), e))
    }

    /// Checks credentials against a registry as `docker login` does.
    pub async fn login(&self, auth: &AuthConfig) -> Result<LoginOutcome, Error> {
        let ep = self.login_endpoint(&auth.server_address);
        let http = self.http_client(&ep)?;
        auth::login(&http, &ep.base(), auth).await
    }

    /// `auth` ready for a session: a refresh token (`identitytoken`) is traded for an access
    /// token scoped to `repository` first; other credentials pass unchanged.
    pub async fn credentials(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        push: bool,
        auth: &AuthConfig,
    ) -> Result<AuthConfig, Error> {
        if auth.identity_token.is_empty() || !auth.registry_token.is_empty() {
            return Ok(auth.clone());
        }
        let http = self.http_client(endpoint)?;
        let token = auth::refresh(&http, &endpoint.base(), repository, push, auth).await?;
        Ok(AuthConfig { registry_token: token, ..auth.clone() })
    }

    /// A session on `repository` at `endpoint` with `auth`.
    pub fn session(&self, endpoint: &Endpoint, repository: &str, auth: &AuthConfig) -> Result<Session, Error> {
        install_crypto();
        let protocol =
            if endpoint.scheme == "http" { ClientProtocol::Http } else { ClientProtocol::HttpsExcept(Vec::new()) };
        let config = ClientConfig {
            protocol,
            extra_root_certificates: self.certificates(&endpoint.host)?,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: USER_AGENT,
            // Monolithic uploads: one PUT per layer with its length known, the fast path.
            use_monolithic_push: true,
            platform_resolver: None,
            ..Default::default()
        };
        let oci = oci_client::Client::try_from(config).map_err(Error::client)?;
        Ok(Session { oci, endpoint: endpoint.clone(), repository: repository.to_owned(), auth: auth.registry_auth() })
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

/// A connection to one repository of one registry: `oci-client` with the token it fetched.
pub struct Session {
    pub(crate) oci: oci_client::Client,
    /// Where it talks to.
    pub endpoint: Endpoint,
    /// The repository path (`library/busybox`).
    pub repository: String,
    pub(crate) auth: RegistryAuth,
}

impl Session {
    /// An `oci-client` reference to `tag_or_digest` of this session's repository.
    pub(crate) fn oci_ref(&self, tag_or_digest: &str) -> oci_client::Reference {
        if tag_or_digest.contains(':') {
            oci_client::Reference::with_digest(
                self.endpoint.host.clone(),
                self.repository.clone(),
                tag_or_digest.to_owned(),
            )
        } else {
            oci_client::Reference::with_tag(
                self.endpoint.host.clone(),
                self.repository.clone(),
                tag_or_digest.to_owned(),
            )
        }
    }

    /// Authenticates for `op` (fetching a Bearer token when the registry asks for one).
    pub async fn authenticate(&self, push: bool) -> Result<(), Error> {
        let op = if push { oci_client::RegistryOperation::Push } else { oci_client::RegistryOperation::Pull };
        let r = self.oci_ref("latest");
        self.oci.auth(&r, &self.auth, op).await.map_err(Error::client)?;
        Ok(())
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
        assert_eq!((eps[0].base(), eps[0].mirror), ("http://127.0.0.1:5001".to_owned(), true));
        assert_eq!(eps[1].host, DOCKER_HUB_HOST);
        let eps = o.endpoints(&Reference::parse("127.0.0.1:5000/a/b:1").unwrap());
        assert_eq!(eps, vec![Endpoint { host: "127.0.0.1:5000".into(), scheme: "http", mirror: false }]);
        assert_eq!(o.login_endpoint("").host, DOCKER_HUB_HOST);
        assert_eq!(o.login_endpoint("https://index.docker.io/v1/").host, DOCKER_HUB_HOST);
        assert_eq!(o.login_endpoint("127.0.0.1:5000").base(), "http://127.0.0.1:5000");
    }
}
