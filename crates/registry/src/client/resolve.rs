//! Resolving a reference to one image: fetch its manifest (OCI or Docker schema 2), follow an
//! index / manifest list to the requested platform, and fetch and verify the config.

use berth_base::Digest;
use futures_util::TryStreamExt;
use serde::Deserialize;

use super::Session;
use crate::error::Error;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Docker schema 2 config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

const ACCEPT: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
/// The most a manifest or config may weigh: the spec's 4 MiB suggestion, times a margin.
const MAX_DOCUMENT: usize = 16 << 20;

/// A content descriptor (`mediaType`, `digest`, `size`) as manifests carry them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Descriptor {
    /// Media type.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Platform (index entries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
pub struct Platform {
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// `amd64`, `arm64`…
    #[serde(default)]
    pub architecture: String,
    /// `v8`, `v7`…
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    /// The host's platform, in Go's names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant: String::new() }
    }

    /// Parses `os[/arch[/variant]]` as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let mut parts = s.split('/');
        let os = parts.next().unwrap_or_default().to_ascii_lowercase();
        let architecture = parts.next().unwrap_or_default().to_ascii_lowercase();
        let variant = parts.next().unwrap_or_default().to_ascii_lowercase();
        if os.is_empty() || parts.next().is_some() {
            return Err(Error::BadPlatform(s.to_owned()));
        }
        let host = Platform::host();
        let architecture = match architecture.as_str() {
            "" => host.architecture,
            "x86_64" | "x86-64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            _ => architecture,
        };
        Ok(Platform { os, architecture, variant })
    }

    fn matches(&self, p: &Platform) -> bool {
        self.os == p.os
            && self.architecture == p.architecture
            && (self.variant.is_empty() || self.variant == p.variant || (p.variant.is_empty() && self.variant == "v8"))
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// One image, resolved: its manifest and config bytes as the registry holds them.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The manifest's digest (what `Digest:` and RepoDigests show: the index's when the
    /// tag named an index, as Docker does).
    pub digest: Digest,
    /// The image manifest's own digest.
    pub manifest_digest: Digest,
    /// The image manifest's bytes.
    pub manifest: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// The config's bytes (verified against the manifest).
    pub config: Vec<u8>,
    /// The config's digest: the image id.
    pub config_digest: Digest,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
}

impl Session {
    /// Fetches the manifest `tag_or_digest`, verified when it is a digest.
    pub async fn manifest(&self, tag_or_digest: &str) -> Result<(Vec<u8>, Digest), Error> {
        let (body, _) = self.manifest_typed(tag_or_digest).await?;
        let computed = Digest::of(&body);
        Ok((body, computed))
    }

    /// Fetches the manifest `tag_or_digest` with the media type the registry served it as,
    /// checking its digest against the reference (or the registry's `Docker-Content-Digest`).
    pub async fn manifest_typed(&self, tag_or_digest: &str) -> Result<(Vec<u8>, String), Error> {
        let url = self.url(&format!("manifests/{tag_or_digest}"));
        let accept = ACCEPT.join(", ");
        let res = self.send(&url, &[], |h| h.get(&url).header(reqwest::header::ACCEPT, &accept)).await?;
        if !res.status().is_success() {
            return Err(super::transport::status_error(&url, res, Some("MANIFEST_UNKNOWN")).await);
        }
        let header_digest =
            res.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let media_type = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if res.content_length().is_some_and(|n| n as usize > MAX_DOCUMENT) {
            return Err(Error::Protocol(format!("manifest {tag_or_digest} is larger than {MAX_DOCUMENT} bytes")));
        }
        let mut body = Vec::new();
        let mut st = res.bytes_stream();
        while let Some(chunk) = st.try_next().await.map_err(|e| Error::http(&url, e))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(Error::Protocol(format!("manifest {tag_or_digest} is larger than {MAX_DOCUMENT} bytes")));
            }
        }
        let computed = Digest::of(&body);
        if tag_or_digest.starts_with("sha256:") && computed.to_string() != tag_or_digest {
            return Err(Error::DigestMismatch {
                what: "manifest".into(),
                expected: tag_or_digest.into(),
                actual: computed.to_string(),
            });
        }
        if header_digest.starts_with("sha256:") && header_digest != computed.to_string() {
            return Err(Error::DigestMismatch {
                what: "manifest".into(),
                expected: header_digest,
                actual: computed.to_string(),
            });
        }
        Ok((body, media_type))
    }

    /// Resolves `tag_or_digest` to one image for `platform`.
    pub async fn resolve(&self, tag_or_digest: &str, platform: &Platform) -> Result<Resolved, Error> {
        let (mut bytes, top) = self.manifest(tag_or_digest).await?;
        let mut digest = top.clone();
        let mut doc = parse_doc(&bytes)?;
        if let Some(list) = doc.manifests.take() {
            let pick = list
                .iter()
                .filter(|d| d.media_type != "application/vnd.in-toto+json")
                .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
                .ok_or_else(|| Error::NoMatchingPlatform { platform: platform.to_string() })?;
            let (b, d) = self.manifest(&pick.digest.to_string()).await?;
            bytes = b;
            digest = d;
            doc = parse_doc(&bytes)?;
            if doc.manifests.is_some() {
                return Err(Error::Protocol("an image index points at another index".into()));
            }
        }
        let media_type = if doc.media_type.is_empty() { OCI_MANIFEST.to_owned() } else { doc.media_type.clone() };
        if doc.schema_version == 1 || media_type.starts_with("application/vnd.docker.distribution.manifest.v1") {
            return Err(Error::Protocol(
                "Docker Image manifest version 2, schema 1 is no longer supported; the image must be re-pushed".into(),
            ));
        }
        let config = doc.config.ok_or_else(|| Error::Protocol("the manifest has no config".into()))?;
        let layers = doc.layers.unwrap_or_default();
        let config_bytes = self.small_blob(&config).await?;
        Ok(Resolved {
            digest: top,
            manifest_digest: digest,
            manifest: bytes,
            media_type,
            config: config_bytes,
            config_digest: config.digest,
            layers,
        })
    }

    /// The repository's tags (`GET /v2/<name>/tags/list`, following `n`/`last` pagination).
    pub async fn tags(&self) -> Result<Vec<String>, Error> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        const PAGE: usize = 1000;
        let mut out: Vec<String> = Vec::new();
        loop {
            let mut url = self.url(&format!("tags/list?n={PAGE}"));
            if let Some(last) = out.last() {
                url.push_str("&last=");
                url.push_str(
                    &percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC).to_string(),
                );
            }
            let res = self.send(&url, &[], |h| h.get(&url)).await?;
            if !res.status().is_success() {
                return Err(super::transport::status_error(&url, res, Some("NAME_UNKNOWN")).await);
            }
            let more = res.headers().get(reqwest::header::LINK).is_some();
            let page: Page =
                res.json().await.map_err(|e| Error::Protocol(format!("{url}: malformed tag list: {e}")))?;
            let tags = page.tags.unwrap_or_default();
            let n = tags.len();
            out.extend(tags);
            if n == 0 || (n < PAGE && !more) {
                return Ok(out);
            }
        }
    }

    /// Fetches a small blob (a config) whole, verifying its digest and size.
    pub async fn small_blob(&self, d: &Descriptor) -> Result<Vec<u8>, Error> {
        if d.size as usize > MAX_DOCUMENT {
            return Err(Error::Protocol(format!("config {} is larger than {MAX_DOCUMENT} bytes", d.digest)));
        }
        let url = self.url(&format!("blobs/{}", d.digest));
        let res = self.send(&url, &[], |h| h.get(&url)).await?;
        if !res.status().is_success() {
            return Err(super::transport::status_error(&url, res, Some("BLOB_UNKNOWN")).await);
        }
        let mut out = Vec::with_capacity(d.size as usize);
        let mut st = res.bytes_stream();
        while let Some(chunk) = st.try_next().await.map_err(|e| Error::http(&url, e))? {
            out.extend_from_slice(&chunk);
            if out.len() as u64 > d.size {
                return Err(Error::Protocol(format!("blob {} is larger than announced", d.digest)));
            }
        }
        let got = Digest::of(&out);
        if got != d.digest {
            return Err(Error::DigestMismatch {
                what: "config".into(),
                expected: d.digest.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(out)
    }
}

fn parse_doc(bytes: &[u8]) -> Result<Doc, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Protocol(format!("malformed manifest: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux/arm64").unwrap().matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: "v8".into()
        }));
        assert!(!Platform::parse("linux/amd64").unwrap().matches(&Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: String::new()
        }));
        assert!(Platform::parse("a/b/c/d").is_err());
        assert_eq!(Platform::parse("linux").unwrap().architecture, Platform::host().architecture);
    }
}
