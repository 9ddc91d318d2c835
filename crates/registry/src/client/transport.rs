//! HTTP to one repository of one registry, as Docker's distribution client speaks it: the
//! `GET /v2/` ping that tells which authentication the registry wants, Bearer tokens for a
//! set of scopes (several at once for a cross-repository mount, as dockerd asks for them),
//! Basic credentials, one re-authentication when a token expires mid-operation, and the
//! spec's error envelope read into Docker's `code: message` wording.
//!
//! Written on reqwest directly rather than through a distribution crate (this used
//! `oci-client`): berth needs per-registry client certificates from `certs.d`, token requests
//! naming several repositories, and blob streams it hashes once itself — none of which that
//! crate lets a caller do.

use base64::Engine as _;
use reqwest::header::{self, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use super::auth::{self, Challenge};
use super::{Endpoint, Session};
use crate::error::Error;

/// What a registry's `GET /v2/` answered: nothing needed, Basic, or a token realm.
#[derive(Debug, Clone)]
pub(crate) enum Scheme {
    /// The registry serves anonymous requests.
    Open,
    /// `Basic`: credentials go on every request.
    Basic,
    /// `Bearer`: a token from `realm` for `service`.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter to pass.
        service: String,
    },
}

/// The `repository:NAME:ACTIONS` scope string of the token protocol.
pub fn repository_scope(repository: &str, push: bool) -> String {
    format!("repository:{repository}:{}", if push { "pull,push" } else { "pull" })
}

impl Session {
    /// `scheme://host/v2/<repository>/<tail>`.
    pub(crate) fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.endpoint.base(), self.repository)
    }

    /// Pings `/v2/` once per session and remembers what it asked for.
    async fn scheme(&self) -> Result<Scheme, Error> {
        if let Some(s) = self.scheme.get() {
            return Ok(s.clone());
        }
        let url = format!("{}/v2/", self.endpoint.base());
        let res = self.http.get(&url).send().await.map_err(|e| Error::http(&url, e))?;
        let status = res.status();
        let s = if status.is_success() {
            Scheme::Open
        } else if status == StatusCode::UNAUTHORIZED {
            let ch = res
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|h| h.to_str().ok())
                .and_then(Challenge::parse)
                .ok_or_else(|| Error::Protocol(format!("{url}: 401 without a WWW-Authenticate challenge")))?;
            match ch.scheme.as_str() {
                "bearer" => Scheme::Bearer {
                    realm: ch
                        .param("realm")
                        .ok_or_else(|| Error::Protocol(format!("{url}: Bearer challenge without realm")))?
                        .to_owned(),
                    service: ch.param("service").unwrap_or_default().to_owned(),
                },
                _ => Scheme::Basic,
            }
        } else {
            return Err(status_error(&url, res, None).await);
        };
        let _ = self.scheme.set(s.clone());
        Ok(s)
    }

    /// The `Authorization` value for `scopes` (this session's own scope plus `extra`), fetched
    /// again when `renew` (a token that expired).
    async fn authorization(&self, extra: &[String], renew: bool) -> Result<Option<HeaderValue>, Error> {
        if extra.is_empty()
            && !renew
            && let Some(v) = self.authz.lock().await.clone()
        {
            return Ok(v);
        }
        let v = if !self.creds.registry_token.is_empty() {
            Some(format!("Bearer {}", self.creds.registry_token))
        } else {
            match self.scheme().await? {
                Scheme::Open => None,
                Scheme::Basic if self.creds.username.is_empty() => None,
                Scheme::Basic => {
                    let raw = format!("{}:{}", self.creds.username, self.creds.password);
                    Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw)))
                }
                Scheme::Bearer { realm, service } => {
                    let mut scopes = vec![repository_scope(&self.repository, self.push)];
                    scopes.extend(extra.iter().cloned());
                    let token = auth::fetch_token(&self.http, &realm, &service, &scopes, &self.creds).await?;
                    Some(format!("Bearer {token}"))
                }
            }
        };
        let v = v
            .map(|s| HeaderValue::from_str(&s))
            .transpose()
            .map_err(|_| Error::Protocol("credentials that cannot go in an HTTP header".into()))?;
        if extra.is_empty() {
            *self.authz.lock().await = Some(v.clone());
        }
        Ok(v)
    }

    /// Sends the request `build` makes with the session's credentials (and the extra token
    /// scopes `extra`); a 401 renews the credentials once and sends it again. The answer is
    /// returned whatever its status.
    pub(crate) async fn send(
        &self,
        url: &str,
        extra: &[String],
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let mut renew = false;
        loop {
            let mut req = build(&self.http);
            if let Some(a) = self.authorization(extra, renew).await? {
                req = req.header(header::AUTHORIZATION, a);
            }
            let res = req.send().await.map_err(|e| Error::http(url, e))?;
            if res.status() == StatusCode::UNAUTHORIZED && !renew && self.creds.registry_token.is_empty() {
                renew = true;
                continue;
            }
            return Ok(res);
        }
    }

    /// Sends a request whose body cannot be made twice (a streamed upload), with the
    /// credentials as they are.
    pub(crate) async fn send_once(&self, url: &str, req: RequestBuilder) -> Result<Response, Error> {
        let req = match self.authorization(&[], false).await? {
            Some(a) => req.header(header::AUTHORIZATION, a),
            None => req,
        };
        req.send().await.map_err(|e| Error::http(url, e))
    }
}

/// Turns a refusal into an error: the spec's envelope when the registry sent one (`manifest
/// unknown`, `denied`…), Docker's wording for a bare 401, else the status. `not_found` is the
/// code a 404 without an envelope stands for.
pub(crate) async fn status_error(url: &str, res: Response, not_found: Option<&str>) -> Error {
    #[derive(Deserialize)]
    struct Env {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let status = res.status();
    let body = res.bytes().await.unwrap_or_default();
    if let Ok(env) = serde_json::from_slice::<Env>(&body)
        && let Some(first) = env.errors.into_iter().next()
        && !first.code.is_empty()
    {
        if first.code == "UNAUTHORIZED" {
            return Error::Unauthorized(format!("unauthorized: {}", first.message));
        }
        return Error::Registry { code: first.code, message: first.message };
    }
    match (status, not_found) {
        (StatusCode::UNAUTHORIZED, _) => Error::Unauthorized("unauthorized: authentication required".to_owned()),
        (StatusCode::FORBIDDEN, _) => {
            Error::Registry { code: "DENIED".into(), message: "requested access to the resource is denied".into() }
        }
        (StatusCode::NOT_FOUND, Some(code)) => {
            Error::Registry { code: code.to_owned(), message: code.to_ascii_lowercase().replace('_', " ") }
        }
        _ => Error::Status { url: url.to_owned(), status: status.as_u16() },
    }
}

/// Resolves an upload `Location` (absolute or relative to the registry) and adds `params`.
pub(crate) fn location(endpoint: &Endpoint, res: &Response, params: &[(&str, &str)]) -> Result<String, Error> {
    let loc = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Protocol("the registry started an upload without a Location".into()))?;
    let base = reqwest::Url::parse(&format!("{}/", endpoint.base()))
        .map_err(|e| Error::Protocol(format!("registry address {}: {e}", endpoint.base())))?;
    let mut url = base.join(loc).map_err(|e| Error::Protocol(format!("upload location {loc:?}: {e}")))?;
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_as_the_token_protocol_says() {
        assert_eq!(repository_scope("a/b", false), "repository:a/b:pull");
        assert_eq!(repository_scope("a/b", true), "repository:a/b:pull,push");
    }
}
