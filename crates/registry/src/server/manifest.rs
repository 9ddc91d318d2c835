//! What the registry understands of a pushed manifest: its media type (OCI or Docker,
//! image or index), the blobs and child manifests it references (which the repository
//! must hold, as distribution insists: MANIFEST_BLOB_UNKNOWN), its `subject` (for the
//! referrers API) and what a referrers listing shows of it. Everything else in the
//! document is kept byte for byte and never rewritten: its digest is its name.

use super::digest::Digest;
use serde_json::Value;

use super::reply::{ApiError, Code};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The largest manifest accepted (distribution's and the spec's 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;

const SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// A manifest that passed the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// Its media type: one of the four this registry serves.
    pub media_type: &'static str,
    /// The blobs it references (config and layers) that must be in the repository.
    pub blobs: Vec<Digest>,
    /// The manifests it references (an index's entries) that must be in the repository.
    pub manifests: Vec<Digest>,
    /// Its `subject`, the manifest it refers to.
    pub subject: Option<Digest>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::detail(Code::ManifestInvalid, detail.into())
}

/// A descriptor's digest, after checking the descriptor has the fields the schema requires.
fn descriptor(v: &Value, what: &str) -> Result<Digest, ApiError> {
    if !v.is_object() {
        return Err(invalid(format!("{what}: not a descriptor")));
    }
    if !v["mediaType"].is_string() {
        return Err(invalid(format!("{what}: mediaType missing")));
    }
    if v["size"].as_i64().is_none_or(|s| s < 0) {
        return Err(invalid(format!("{what}: size missing or negative")));
    }
    let d = v["digest"].as_str().ok_or_else(|| invalid(format!("{what}: digest missing")))?;
    d.parse::<Digest>().map_err(|e| invalid(format!("{what}: digest {d:?}: {e}")))
}

/// Checks `bytes`, pushed with `content_type` (the header, parameters stripped; `None`
/// when absent): the type must be known and agree with the document's own `mediaType`;
/// descriptors must be complete. Which references must already be stored is returned.
pub fn check(content_type: Option<&str>, bytes: &[u8]) -> Result<Checked, ApiError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("a manifest is a JSON object"));
    }
    let field = v["mediaType"].as_str();
    let known = |t: &str| [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].into_iter().find(|k| *k == t);
    // Generic types say nothing about which manifest this is.
    let ct = content_type.filter(|t| !t.is_empty() && *t != "application/octet-stream" && *t != "application/json");
    let media_type = match (ct, field) {
        (Some(t), _) if SCHEMA1.contains(&t) => {
            return Err(ApiError::detail(Code::ManifestInvalid, "Docker schema 1 manifests are not supported"));
        }
        (Some(t), Some(f)) if known(t).is_some() && t != f => {
            return Err(invalid(format!("mediaType in manifest should be '{t}' not '{f}'")));
        }
        (Some(t), _) if known(t).is_some() => known(t),
        // No usable Content-Type: the document says what it is, or its shape does (OCI
        // lets a manifest omit mediaType).
        (None, Some(f)) | (Some(_), Some(f)) => known(f),
        (_, None) if v.get("manifests").is_some() => Some(OCI_INDEX),
        (_, None) if v.get("config").is_some() => Some(OCI_MANIFEST),
        _ => None,
    };
    let Some(media_type) = media_type else {
        let t = field.or(ct).unwrap_or("(none)");
        return Err(invalid(format!("unsupported manifest media type {t}")));
    };
    if v["schemaVersion"].as_i64() != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let mut checked = Checked { media_type, blobs: Vec::new(), manifests: Vec::new(), subject: None };
    if !v["subject"].is_null() {
        checked.subject = Some(descriptor(&v["subject"], "subject")?);
    }
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        let list = v["manifests"].as_array().ok_or_else(|| invalid("manifests must be an array"))?;
        for (i, m) in list.iter().enumerate() {
            let d = descriptor(m, &format!("manifests[{i}]"))?;
            checked.manifests.push(d);
        }
    } else {
        checked.blobs.push(descriptor(&v["config"], "config")?);
        let layers = v["layers"].as_array().ok_or_else(|| invalid("layers must be an array"))?;
        for (i, l) in layers.iter().enumerate() {
            let d = descriptor(l, &format!("layers[{i}]"))?;
            // Foreign (non-distributable) layers with URLs are fetched from elsewhere.
            let foreign = l["urls"].as_array().is_some_and(|u| !u.is_empty());
            if !foreign {
                checked.blobs.push(d);
            }
        }
    }
    Ok(checked)
}

/// The descriptor a referrers listing shows for a stored manifest: its media type, digest,
/// size, `artifactType` (its own, else an image manifest's config media type) and
/// annotations.
pub fn referrer_descriptor(media_type: &str, digest: &Digest, bytes: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let mut d = serde_json::json!({
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": bytes.len(),
    });
    let artifact = v["artifactType"].as_str().or_else(|| {
        if media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST {
            v["config"]["mediaType"].as_str()
        } else {
            None
        }
    });
    if let Some(a) = artifact {
        d["artifactType"] = a.into();
    }
    if v["annotations"].is_object() {
        d["annotations"] = v["annotations"].clone();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(mt: &str, data: &[u8]) -> Value {
        serde_json::json!({"mediaType": mt, "digest": Digest::of(data).to_string(), "size": data.len()})
    }

    #[test]
    fn image_manifests_reference_their_config_and_layers() {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc("application/vnd.oci.image.config.v1+json", b"{}"),
            "layers": [desc("application/vnd.oci.image.layer.v1.tar", b"l"),
                       {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
                        "digest": Digest::of(b"f").to_string(), "size": 1, "urls": ["https://x"]}],
            "subject": desc(OCI_MANIFEST, b"s"),
        });
        let c = check(Some(OCI_MANIFEST), &serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(c.blobs, [Digest::of(b"{}"), Digest::of(b"l")]);
        assert_eq!(c.subject, Some(Digest::of(b"s")));
        // Without Content-Type the document's mediaType decides; without both, its shape.
        assert_eq!(check(None, &serde_json::to_vec(&m).unwrap()).unwrap().media_type, OCI_MANIFEST);
        let r = check(Some(DOCKER_MANIFEST), &serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert_eq!(r.code(), Code::ManifestInvalid);
    }

    #[test]
    fn indexes_and_bad_documents() {
        let i = serde_json::json!({"schemaVersion": 2, "manifests": [desc(DOCKER_MANIFEST, b"m")]});
        let c = check(Some(DOCKER_LIST), &serde_json::to_vec(&i).unwrap()).unwrap();
        assert_eq!((c.media_type, c.manifests.clone()), (DOCKER_LIST, vec![Digest::of(b"m")]));
        assert_eq!(check(None, &serde_json::to_vec(&i).unwrap()).unwrap().media_type, OCI_INDEX);
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"schemaVersion":1,"config":{}}"#,
            br#"{"schemaVersion":2,"mediaType":"x/y"}"#,
            br#"{"schemaVersion":2,"config":{"mediaType":"a","size":1,"digest":"sha256:zz"},"layers":[]}"#,
            br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:00"}]}"#,
        ] {
            assert_eq!(check(None, bad).unwrap_err().code(), Code::ManifestInvalid, "{}", String::from_utf8_lossy(bad));
        }
        let s1 = check(Some(SCHEMA1[1]), b"{}").unwrap_err();
        assert_eq!(s1.code(), Code::ManifestInvalid);
    }

    #[test]
    fn referrer_descriptors_carry_the_artifact_type() {
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc("application/vnd.example.sbom", b"{}"), "layers": [],
            "annotations": {"a": "b"}});
        let bytes = serde_json::to_vec(&m).unwrap();
        let d = referrer_descriptor(OCI_MANIFEST, &Digest::of(&bytes), &bytes);
        assert_eq!(d["artifactType"], "application/vnd.example.sbom");
        assert_eq!(d["annotations"]["a"], "b");
        assert_eq!(d["size"], bytes.len());
    }
}
