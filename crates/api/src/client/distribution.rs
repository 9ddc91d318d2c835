//! Registry endpoints from the client side: pull and push with `X-Registry-Auth` (encoded as
//! the docker CLI encodes it), and `POST /auth`.

use hyper::{Method, header};

use super::{Client, ClientError, JsonStream, Result, check, empty_body, encode_query, full_body, seg};
use crate::query;

/// Docker's `AuthConfig` as clients send it (`X-Registry-Auth`, the `POST /auth` body).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthConfig {
    /// User name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// Password or token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// The registry (`host:port`, or Docker Hub's `https://index.docker.io/v1/`).
    #[serde(default, rename = "serveraddress", skip_serializing_if = "String::is_empty")]
    pub server_address: String,
    /// A refresh token from an earlier login.
    #[serde(default, rename = "identitytoken", skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
}

impl AuthConfig {
    /// The `X-Registry-Auth` value: URL-safe base64 of the JSON, as the docker CLI sends it.
    pub fn to_header(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The answer to `POST /auth`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuthResponse {
    /// `Login Succeeded`.
    #[serde(rename = "Status", default)]
    pub status: String,
    /// A refresh token to store instead of the password.
    #[serde(rename = "IdentityToken", default)]
    pub identity_token: String,
}

impl Client {
    /// `POST /images/create?fromImage=…` with credentials.
    pub async fn pull_image_auth(
        &self,
        image: &str,
        tag: Option<&str>,
        platform: Option<&str>,
        auth: &AuthConfig,
    ) -> Result<JsonStream> {
        let q = query::CreateImage {
            from_image: Some(image.to_owned()),
            tag: tag.map(str::to_owned),
            platform: platform.map(str::to_owned),
            ..Default::default()
        };
        let mut req = self.build(Method::POST, "/images/create", Some(&encode_query(&q)?), empty_body())?;
        set_auth(&mut req, auth)?;
        let resp = check(self.send(req, false).await?).await?;
        Ok(JsonStream::new(resp.into_body()))
    }

    /// `POST /images/{name}/push?tag=…` with credentials.
    pub async fn push_image(&self, name: &str, tag: Option<&str>, auth: &AuthConfig) -> Result<JsonStream> {
        let q = tag.map(|t| format!("tag={}", percent_encode(t)));
        let mut req = self.build(Method::POST, &format!("/images/{}/push", seg(name)), q.as_deref(), empty_body())?;
        set_auth(&mut req, auth)?;
        let resp = check(self.send(req, false).await?).await?;
        Ok(JsonStream::new(resp.into_body()))
    }

    /// `POST /auth`.
    pub async fn login(&self, auth: &AuthConfig) -> Result<AuthResponse> {
        let body = serde_json::to_vec(auth).map_err(|e| ClientError::Request(e.to_string()))?;
        let mut req = self.build(Method::POST, "/auth", None, full_body(body))?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
        let resp = check(self.send(req, false).await?).await?;
        use http_body_util::BodyExt;
        let bytes = resp.into_body().collect().await?.to_bytes();
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { what: "auth response".into(), source })
    }
}

fn set_auth(req: &mut hyper::Request<super::Body>, auth: &AuthConfig) -> Result<()> {
    let v = header::HeaderValue::from_str(&auth.to_header()).map_err(|e| ClientError::Request(e.to_string()))?;
    req.headers_mut().insert("X-Registry-Auth", v);
    Ok(())
}

fn percent_encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|e| e[1..].to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_url_safe_json() {
        use base64::Engine as _;
        let a = AuthConfig {
            username: "u".into(),
            password: "p>?".into(),
            server_address: "h:1".into(),
            ..Default::default()
        };
        let h = a.to_header();
        let raw = base64::engine::general_purpose::URL_SAFE.decode(h).unwrap();
        let back: AuthConfig = serde_json::from_slice(&raw).unwrap();
        assert_eq!(back, a);
    }
}
