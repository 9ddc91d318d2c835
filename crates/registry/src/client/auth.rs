//! Registry credentials as Docker's clients send them: the `X-Registry-Auth` header (base64url
//! of an `AuthConfig` JSON) and the body of `POST /auth`; and the login check itself, which
//! speaks both answers a registry's `/v2/` can give (a Bearer token realm or Basic auth).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Docker's `AuthConfig`: what `docker login` stored and the CLI forwards per request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Password or personal access token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// `user:password` in base64, as config.json keeps it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    /// The registry these credentials are for (`https://index.docker.io/v1/`, `host:port`).
    #[serde(default, rename = "serveraddress", skip_serializing_if = "String::is_empty")]
    pub server_address: String,
    /// A refresh token the registry handed out at login, used instead of the password.
    #[serde(default, rename = "identitytoken", skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
    /// A bearer token for the registry itself.
    #[serde(default, rename = "registrytoken", skip_serializing_if = "String::is_empty")]
    pub registry_token: String,
    /// Obsolete; accepted and ignored, as dockerd does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
}

impl AuthConfig {
    /// Decodes an `X-Registry-Auth` header. dockerd accepts URL-safe base64 with or without
    /// padding (older clients sent standard base64); an empty header means anonymous.
    pub fn from_header(value: &str) -> Result<AuthConfig, Error> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(AuthConfig::default());
        }
        let e = base64::engine::general_purpose::URL_SAFE;
        let bytes = e
            .decode(value)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(value))
            .map_err(|_| Error::BadAuthHeader("invalid X-Registry-Auth header: not base64".to_owned()))?;
        let mut a: AuthConfig = serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadAuthHeader(format!("invalid X-Registry-Auth header: {e}")))?;
        a.expand_auth();
        Ok(a)
    }

    /// Encodes the header value as the docker CLI does (URL-safe base64 of the JSON).
    pub fn to_header(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    /// Fills `username`/`password` from `auth` when only that was given.
    pub fn expand_auth(&mut self) {
        if self.username.is_empty()
            && !self.auth.is_empty()
            && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(self.auth.trim())
            && let Ok(s) = String::from_utf8(raw)
            && let Some((u, p)) = s.split_once(':')
        {
            self.username = u.to_owned();
            self.password = p.to_owned();
        }
    }

    /// True when no credential is carried.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty() && self.identity_token.is_empty() && self.registry_token.is_empty()
    }
}

/// The credentials of every registry, as the docker CLI sends them with `POST /build` in
/// `X-Registry-Config` (URL-safe base64 of a JSON map from server address to `AuthConfig`),
/// so the builder can pull private bases. dockerd ignores a header that does not decode;
/// so does this (the build goes on anonymously).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfigs(pub std::collections::BTreeMap<String, AuthConfig>);

impl AuthConfigs {
    /// Decodes an `X-Registry-Config` header.
    pub fn from_header(value: &str) -> AuthConfigs {
        let value = value.trim();
        let e = base64::engine::general_purpose::URL_SAFE;
        let bytes = e
            .decode(value)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(value));
        let map: std::collections::BTreeMap<String, AuthConfig> =
            bytes.ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        AuthConfigs(map)
    }

    /// The credentials for registry `domain` (`docker.io` for Docker Hub names): the entry
    /// whose key, stripped of scheme and path as dockerd strips it, names that host.
    pub fn for_domain(&self, domain: &str) -> AuthConfig {
        let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
        for (k, v) in &self.0 {
            let host = k.trim_start_matches("https://").trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or_default();
            if host == domain || (hub(host) && hub(domain)) {
                let mut a = v.clone();
                a.expand_auth();
                if a.server_address.is_empty() {
                    a.server_address = k.clone();
                }
                return a;
            }
        }
        AuthConfig::default()
    }
}

/// A `WWW-Authenticate` challenge, parsed (`Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic`, lower-cased.
    pub scheme: String,
    /// The parameters, names lower-cased.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Parses the header value; `None` when it names no scheme.
    pub fn parse(v: &str) -> Option<Challenge> {
        let v = v.trim();
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.is_empty() {
            return None;
        }
        let mut params = Vec::new();
        let mut s = rest.trim();
        while !s.is_empty() {
            let Some((k, tail)) = s.split_once('=') else { break };
            let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
            let tail = tail.trim_start();
            let (val, next) = if let Some(q) = tail.strip_prefix('"') {
                // A quoted string: backslash escapes one character.
                let mut out = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                (out, &q[end.min(q.len())..])
            } else {
                let end = tail.find(',').unwrap_or(tail.len());
                (tail[..end].trim().to_owned(), &tail[end..])
            };
            params.push((k, val));
            s = next.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
    }

    /// The value of parameter `k`.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
}

/// What a successful login returns: Docker's `IdentityToken` when the token server gave a
/// refresh token (empty otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginOutcome {
    /// The refresh token to store instead of the password, if any.
    pub identity_token: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    refresh_token: String,
}

/// Checks `auth` against the registry at `base` (`http(s)://host:port`) as `docker login`
/// does: `GET /v2/`; a Bearer challenge sends the credentials to the token realm (asking for
/// a refresh token), a Basic one repeats `/v2/` with them.
pub(crate) async fn login(http: &reqwest::Client, base: &str, auth: &AuthConfig) -> Result<LoginOutcome, Error> {
    let url = format!("{base}/v2/");
    let res = http.get(&url).send().await.map_err(|e| Error::http(&url, e))?;
    if res.status().is_success() {
        return Ok(LoginOutcome::default());
    }
    let challenge =
        res.headers().get(reqwest::header::WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()).and_then(Challenge::parse);
    let status = res.status();
    let Some(ch) = challenge.filter(|_| status == reqwest::StatusCode::UNAUTHORIZED) else {
        return Err(Error::LoginFailed { url, status: status.as_u16(), reason: reason(status) });
    };
    if ch.scheme == "bearer" {
        let realm =
            ch.param("realm").ok_or_else(|| Error::Protocol(format!("{url}: Bearer challenge without realm")))?;
        let mut q: Vec<(&str, &str)> = vec![("client_id", "docker"), ("offline_token", "true")];
        if let Some(s) = ch.param("service") {
            q.push(("service", s));
        }
        if !auth.username.is_empty() {
            q.push(("account", &auth.username));
        }
        let mut req = http.get(realm).query(&q);
        if !auth.identity_token.is_empty() {
            req = http.post(realm).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", auth.identity_token.as_str()),
                ("client_id", "docker"),
                ("service", ch.param("service").unwrap_or_default()),
            ]);
        } else if !auth.username.is_empty() {
            req = req.basic_auth(&auth.username, Some(&auth.password));
        }
        let res = req.send().await.map_err(|e| Error::http(realm, e))?;
        let st = res.status();
        if !st.is_success() {
            let body = res.text().await.unwrap_or_default();
            return Err(Error::Unauthorized(token_error_text(&body, st)));
        }
        let t: TokenAnswer =
            res.json().await.map_err(|e| Error::Protocol(format!("{realm}: malformed token answer: {e}")))?;
        if t.token.is_empty() && t.access_token.is_empty() {
            return Err(Error::Protocol(format!("{realm}: the token server answered without a token")));
        }
        return Ok(LoginOutcome { identity_token: t.refresh_token });
    }
    let res = http
        .get(&url)
        .basic_auth(&auth.username, Some(&auth.password))
        .send()
        .await
        .map_err(|e| Error::http(&url, e))?;
    if res.status().is_success() {
        Ok(LoginOutcome::default())
    } else {
        Err(Error::LoginFailed { url, status: res.status().as_u16(), reason: reason(res.status()) })
    }
}

fn reason(s: reqwest::StatusCode) -> String {
    s.canonical_reason().unwrap_or("").to_owned()
}

/// The message of a token server's refusal: the spec's `errors` envelope, or `details`, or the status.
fn token_error_text(body: &str, st: reqwest::StatusCode) -> String {
    #[derive(Deserialize)]
    struct Env {
        #[serde(default)]
        errors: Vec<Item>,
        #[serde(default)]
        details: String,
    }
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<Env>(body) {
        if let Some(i) = e.errors.first() {
            return format!("{}: {}", i.code.to_ascii_lowercase(), i.message);
        }
        if !e.details.is_empty() {
            return e.details;
        }
    }
    if st == reqwest::StatusCode::UNAUTHORIZED {
        "unauthorized: incorrect username or password".to_owned()
    } else {
        format!("token request failed with status {st}")
    }
}

/// Fetches a Bearer token for `scopes` (`repository:NAME:pull[,push]`, several at once for a
/// cross-repository mount) from `realm`: with a refresh token (`identitytoken`, from an
/// earlier login) through OAuth2's `refresh_token` grant, else a GET with Basic credentials
/// (or none, for an anonymous token), as Docker's client does.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: &str,
    scopes: &[String],
    auth: &AuthConfig,
) -> Result<String, Error> {
    let req = if !auth.identity_token.is_empty() {
        // The form takes all scopes space-separated in one field (RFC 6749 §3.3).
        let scope = scopes.join(" ");
        http.post(realm).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", auth.identity_token.as_str()),
            ("client_id", "docker"),
            ("service", service),
            ("scope", scope.as_str()),
        ])
    } else {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if !service.is_empty() {
            q.push(("service", service));
        }
        for s in scopes {
            q.push(("scope", s));
        }
        let mut req = http.get(realm).query(&q);
        if !auth.username.is_empty() {
            req = req.query(&[("account", auth.username.as_str())]).basic_auth(&auth.username, Some(&auth.password));
        }
        req
    };
    let res = req.send().await.map_err(|e| Error::http(realm, e))?;
    let st = res.status();
    if !st.is_success() {
        let body = res.text().await.unwrap_or_default();
        return Err(Error::Unauthorized(token_error_text(&body, st)));
    }
    let t: TokenAnswer =
        res.json().await.map_err(|e| Error::Protocol(format!("{realm}: malformed token answer: {e}")))?;
    let token = if t.token.is_empty() { t.access_token } else { t.token };
    if token.is_empty() {
        return Err(Error::Protocol(format!("{realm}: the token server answered without a token")));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_auth_field() {
        let a = AuthConfig {
            username: "u".into(),
            password: "p?>".into(),
            server_address: "127.0.0.1:5000".into(),
            ..Default::default()
        };
        let h = a.to_header();
        assert!(!h.contains('+') && !h.contains('/'));
        assert_eq!(AuthConfig::from_header(&h).unwrap(), a);
        assert!(AuthConfig::from_header("").unwrap().is_anonymous());
        let raw = base64::engine::general_purpose::STANDARD.encode(br#"{"auth":"dTpwdw=="}"#);
        let b = AuthConfig::from_header(&raw).unwrap();
        assert_eq!((b.username.as_str(), b.password.as_str()), ("u", "pw"));
        assert!(AuthConfig::from_header("%%%").is_err());
    }

    #[test]
    fn build_auth_configs_pick_the_registry() {
        let json =
            br#"{"https://index.docker.io/v1/":{"auth":"aHViOnB3"},"127.0.0.1:5000":{"username":"u","password":"p"}}"#;
        let h = base64::engine::general_purpose::URL_SAFE.encode(json);
        let c = AuthConfigs::from_header(&h);
        assert_eq!(c.for_domain("127.0.0.1:5000").username, "u");
        assert_eq!(c.for_domain("docker.io").username, "hub");
        assert!(c.for_domain("127.0.0.1:5001").is_anonymous());
        assert!(AuthConfigs::from_header("%%").0.is_empty());
    }

    #[test]
    fn challenges_parse() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("scope"), Some("repository:library/busybox:pull,push"));
        let b = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!((b.scheme.as_str(), b.param("realm")), ("basic", Some("Registry Realm")));
    }

    #[test]
    fn token_errors_read_well() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        assert_eq!(token_error_text(body, reqwest::StatusCode::UNAUTHORIZED), "unauthorized: authentication required");
        assert_eq!(
            token_error_text("nope", reqwest::StatusCode::UNAUTHORIZED),
            "unauthorized: incorrect username or password"
        );
    }
}
