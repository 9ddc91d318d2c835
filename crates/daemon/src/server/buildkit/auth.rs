//! Registry credentials through the session: BuildKit clients do not send
//! `X-Registry-Config`; they serve `moby.filesync.v1.Auth` in their session and the daemon
//! asks it for each registry the build pulls from. `Credentials` answers with the user's
//! `docker login` (a user name and password, or an identity token), which berth's registry
//! client then uses as it uses the legacy header's: Basic auth, or the token dance with
//! those credentials. (`FetchToken` and `GetTokenAuthority` let a daemon leave the token
//! request to the client; berth's client fetches tokens itself, so it needs only this.)

use berth_base::Reference;
use berth_registry::client::{AuthConfig, AuthConfigs};

use super::SessionError;
use super::proto;
use super::session::Session;

/// gRPC method of the client's registry auth provider.
pub const CREDENTIALS: &str = "/moby.filesync.v1.Auth/Credentials";

/// The host name BuildKit asks the client about for Docker Hub (its authprovider maps it
/// to the CLI's `https://index.docker.io/v1/` entry).
const HUB_HOST: &str = "registry-1.docker.io";
/// The key of Docker Hub's entry in the CLI's config.
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// The registry hosts of the plan's base images, as BuildKit names them to the client:
/// FROM lines that name neither an earlier stage nor `scratch` (a base with variables is
/// skipped, as the pull of bases skips it).
pub fn base_hosts(plan: &berth_build::plan::Plan) -> Vec<String> {
    let mut stages: Vec<&str> = Vec::new();
    let mut hosts = Vec::new();
    for st in &plan.stages {
        if let Some((_, _, berth_build::plan::Step::From { base, .. })) = st.steps.first() {
            let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(base));
            if !is_stage
                && base != "scratch"
                && !base.contains('$')
                && let Ok(r) = Reference::parse(base)
            {
                let host = if r.domain() == "docker.io" { HUB_HOST.to_owned() } else { r.domain().to_owned() };
                if !hosts.contains(&host) {
                    hosts.push(host);
                }
            }
        }
        if let Some(n) = &st.name {
            stages.push(n);
        }
    }
    hosts
}

impl Session {
    /// The client's credentials for registry `host`; `None` when it serves no auth
    /// provider or has no login for that host.
    pub async fn credentials(&self, host: &str) -> Result<Option<AuthConfig>, SessionError> {
        if !self.serves(CREDENTIALS) {
            return Ok(None);
        }
        let mut grpc = self.channel().grpc();
        let call = |source| SessionError::Call { method: CREDENTIALS, source };
        grpc.ready().await.map_err(|e| call(tonic::Status::unavailable(e.to_string())))?;
        let req = tonic::Request::new(proto::CredentialsRequest { host: host.to_owned() });
        let path = axum::http::uri::PathAndQuery::from_static(CREDENTIALS);
        let r = grpc
            .unary(req, path, tonic_prost::ProstCodec::<_, proto::CredentialsResponse>::default())
            .await
            .map_err(call)?
            .into_inner();
        Ok(credentials_config(host, r))
    }

    /// Credentials for every registry the plan's bases come from, keyed as the CLI's
    /// config keys them, for the builder's pulls.
    pub async fn registry_auths(&self, plan: &berth_build::plan::Plan) -> Result<AuthConfigs, SessionError> {
        let mut out = AuthConfigs::default();
        for host in base_hosts(plan) {
            let found = self.credentials(&host).await?;
            tracing::info!(session = %self.id, host = %host, found = found.is_some(), "registry credentials from the session");
            if let Some(a) = found {
                let key = if host == HUB_HOST { HUB_KEY.to_owned() } else { host };
                out.0.insert(key, a);
            }
        }
        Ok(out)
    }
}

/// A `CredentialsResponse` as an auth config: no secret is no login; a secret without a
/// user name is an identity token (as the CLI's provider answers for one).
fn credentials_config(host: &str, r: proto::CredentialsResponse) -> Option<AuthConfig> {
    if r.secret.is_empty() {
        return None;
    }
    let server_address = if host == HUB_HOST { HUB_KEY.to_owned() } else { host.to_owned() };
    Some(if r.username.is_empty() {
        AuthConfig { identity_token: r.secret, server_address, ..Default::default() }
    } else {
        AuthConfig { username: r.username, password: r.secret, server_address, ..Default::default() }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_hosts_are_the_registries_of_image_bases() {
        let plan = berth_build::frontend::plan(
            "FROM busybox AS a\nFROM 127.0.0.1:5000/private/base:1 AS b\nFROM a\nFROM scratch\nARG X=y\nFROM $X\nFROM 127.0.0.1:5000/other\n",
            "Dockerfile",
        )
        .unwrap();
        assert_eq!(base_hosts(&plan), ["registry-1.docker.io", "127.0.0.1:5000"]);
    }

    #[test]
    fn a_secret_alone_is_an_identity_token() {
        let r = |u: &str, s: &str| proto::CredentialsResponse { username: u.into(), secret: s.into() };
        assert_eq!(credentials_config("h:1", r("", "")), None);
        let a = credentials_config("h:1", r("u", "p")).unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str(), a.server_address.as_str()), ("u", "p", "h:1"));
        let a = credentials_config(HUB_HOST, r("", "tok")).unwrap();
        assert_eq!((a.identity_token.as_str(), a.server_address.as_str()), ("tok", HUB_KEY));
    }
}
