//! Remote manifests from the client side: `GET /distribution/{name}/json` (the Engine API's
//! descriptor and platforms) and berth's own `GET /berth/distribution/{name}/manifest`, which
//! hands `manifest inspect` the manifest bytes as the registry served them, so the CLI
//! prints them as the docker CLI does without talking to the registry itself.

use bollard_stubs::models::{DistributionInspect, OciPlatform};
use hyper::{Method, header};

use super::distribution::AuthConfig;
use super::{Client, ClientError, Result, decode, empty_body, seg};

/// The berth-only route prefix: `{BERTH_MANIFEST_PREFIX}{name}/manifest`.
pub const BERTH_MANIFEST_PREFIX: &str = "/berth/distribution/";

/// A manifest as a registry serves it, with what `docker manifest inspect` shows beside it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoteManifest {
    /// The media type the registry served it as (the document's own when it sent none).
    #[serde(rename = "MediaType")]
    pub media_type: String,
    /// `sha256:…` of the bytes.
    #[serde(rename = "Digest")]
    pub digest: String,
    /// Length of the bytes.
    #[serde(rename = "Size")]
    pub size: i64,
    /// The bytes, base64 (standard alphabet).
    #[serde(rename = "Raw")]
    pub raw: String,
    /// An image manifest's platform, from its config; an index entry's, from the index.
    #[serde(rename = "Platform", default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<OciPlatform>,
    /// An index's manifests, fetched, in the index's order (empty for an image manifest).
    #[serde(rename = "Manifests", default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<RemoteManifest>,
}

impl RemoteManifest {
    /// The manifest bytes.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.raw)
            .map_err(|e| ClientError::Request(format!("manifest bytes from the daemon: {e}")))
    }
}

impl Client {
    async fn get_with_auth(&self, path: &str, query: Option<&str>, auth: &AuthConfig) -> Result<bytes::Bytes> {
        use http_body_util::BodyExt as _;
        let mut req = self.build(Method::GET, path, query, empty_body())?;
        let v = header::HeaderValue::from_str(&auth.to_header()).map_err(|e| ClientError::Request(e.to_string()))?;
        req.headers_mut().insert("X-Registry-Auth", v);
        let resp = super::check(self.send(req, false).await?).await?;
        Ok(resp.into_body().collect().await?.to_bytes())
    }

    /// `GET /distribution/{name}/json`.
    pub async fn distribution_inspect(&self, name: &str, auth: &AuthConfig) -> Result<DistributionInspect> {
        let path = format!("/distribution/{}/json", seg(name));
        let b = self.get_with_auth(&path, None, auth).await?;
        decode(&b, &path)
    }

    /// `GET /berth/distribution/{name}/manifest[?insecure=1]`: the manifest `name` names (an
    /// index with its manifests).
    pub async fn remote_manifest(&self, name: &str, insecure: bool, auth: &AuthConfig) -> Result<RemoteManifest> {
        let path = format!("{BERTH_MANIFEST_PREFIX}{}/manifest", seg(name));
        let b = self.get_with_auth(&path, insecure.then_some("insecure=1"), auth).await?;
        decode(&b, &path)
    }
}
