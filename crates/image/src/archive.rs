//! Image archives: `docker save` and `docker load`.
//!
//! `save` writes Docker's archive format (`manifest.json`, `repositories`) as Docker 25+
//! does, around an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`): the
//! same blobs serve both readers. `load` takes that, older Docker archives
//! (`<id>/layer.tar`, `<id>.json`) and plain OCI layouts, plain or gzip/zstd-compressed,
//! layers plain or compressed.
//!
//! A load never stores anything from a corrupt archive: the archive is first spooled into
//! the content store's ingest directory (each file hashed on the way), then every blob an
//! index or manifest names is checked against its digest, every layer's uncompressed
//! digest against the config's `diff_ids`, and only then are layers unpacked (through the
//! store's layer import: `base::fsroot`, the layer size limit) and images recorded. A layer
//! that fails to unpack after others were added takes the new ones back out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_base::{Digest, Reference};
use sha2::Digest as _;

use crate::error::Error;
use crate::store::{Image, ImageStore, Layer};

const INDEX_MEDIA: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_MEDIA: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST_MEDIA: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST_MEDIA: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const NAME_ANNOTATION: &str = "io.containerd.image.name";
const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// One image to save and the tags to write for it (familiar form, `busybox:latest`).
#[derive(Debug, Clone)]
pub struct SaveItem {
    /// The image.
    pub image: Image,
    /// Tags to record for it (may be empty).
    pub tags: Vec<Reference>,
}

/// What [`load`] reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadEvent {
    /// A layer is being unpacked: `current` of `total` bytes of its file read.
    Progress {
        /// The layer's short id (12 hex of its diff id).
        id: String,
        /// Bytes read so far.
        current: u64,
        /// The layer file's size.
        total: u64,
    },
    /// A tag now points at a loaded image (familiar form).
    Loaded(String),
    /// An image was loaded without any tag.
    LoadedId(Digest),
}

fn json_err(what: &str) -> impl FnOnce(serde_json::Error) -> Error + '_ {
    move |source| Error::Json { what: what.to_owned(), source }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn append_bytes(tar: &mut tar::Builder<&mut dyn Write>, name: &str, data: &[u8]) -> Result<(), Error> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    tar.append_data(&mut h, name, data).map_err(Error::io("write archive", name))
}

fn append_dir(tar: &mut tar::Builder<&mut dyn Write>, name: &str) -> Result<(), Error> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_size(0);
    tar.append_data(&mut h, name, io::empty()).map_err(Error::io("write archive", name))
}

/// Writes the archive of `items` to `out` (Docker 25+'s layout).
pub fn save(store: &ImageStore, items: &[SaveItem], out: &mut dyn Write) -> Result<(), Error> {
    let mut tar = tar::Builder::new(out);
    append_dir(&mut tar, "blobs/")?;
    append_dir(&mut tar, "blobs/sha256/")?;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut manifest_items = Vec::new();
    let mut index = Vec::new();
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in items {
        let img = &item.image;
        let layers = store.image_layers(&img.id)?;
        let blob_name = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        // Config, layers and the OCI manifest as stored: the image id and manifest digest
        // the archive carries are the ones this store computed.
        for d in
            std::iter::once(&img.id).chain(layers.iter().map(|l| &l.blob)).chain(std::iter::once(&img.manifest_digest))
        {
            if !written.insert(d.clone()) {
                continue;
            }
            let f = store.content().open_blob(d)?;
            let size = f.metadata().map_err(Error::io("stat", store.content().path(d)))?.len();
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_size(size);
            tar.append_data(&mut h, blob_name(d), f.take(size)).map_err(Error::io("write archive", blob_name(d)))?;
        }
        let manifest_size = store.content().read(&img.manifest_digest)?.len();
        let mut repo_tags = Vec::new();
        for t in &item.tags {
            let tag = t.tag().unwrap_or("latest").to_owned();
            repo_tags.push(t.familiar());
            if let Some(top) = layers.last() {
                repos.entry(t.familiar_name()).or_default().insert(tag.clone(), top.diff_id.hex().to_owned());
            }
            index.push(serde_json::json!({
                "mediaType": MANIFEST_MEDIA,
                "digest": img.manifest_digest.to_string(),
                "size": manifest_size,
                "annotations": { NAME_ANNOTATION: t.to_string(), REF_ANNOTATION: tag },
            }));
        }
        if item.tags.is_empty() {
            index.push(serde_json::json!({
                "mediaType": MANIFEST_MEDIA, "digest": img.manifest_digest.to_string(), "size": manifest_size,
            }));
        }
        manifest_items.push(serde_json::json!({
            "Config": blob_name(&img.id),
            "RepoTags": if repo_tags.is_empty() { serde_json::Value::Null } else { repo_tags.into() },
            "Layers": layers.iter().map(|l| blob_name(&l.blob)).collect::<Vec<_>>(),
        }));
    }
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": INDEX_MEDIA, "manifests": index });
    append_bytes(&mut tar, "index.json", &serde_json::to_vec(&index).map_err(json_err("index.json"))?)?;
    let mut mj = serde_json::to_vec(&manifest_items).map_err(json_err("manifest.json"))?;
    mj.push(b'\n');
    append_bytes(&mut tar, "manifest.json", &mj)?;
    append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion": "1.0.0"}"#)?;
    if !repos.is_empty() {
        let mut r = serde_json::to_vec(&repos).map_err(json_err("repositories"))?;
        r.push(b'\n');
        append_bytes(&mut tar, "repositories", &r)?;
    }
    tar.finish().map_err(Error::io("write archive", "end"))?;
    Ok(())
}

/// An archive spooled to disk: each regular file by its cleaned name, with its sha256.
struct Spool {
    dir: tempfile::TempDir,
    files: HashMap<String, (PathBuf, Digest, u64)>,
    links: HashMap<String, String>,
}

impl Spool {
    /// The file at `name` (symlinks inside the archive followed, a few deep).
    fn get(&self, name: &str) -> Option<&(PathBuf, Digest, u64)> {
        let mut n = clean(name)?;
        for _ in 0..8 {
            if let Some(f) = self.files.get(&n) {
                return Some(f);
            }
            n = self.links.get(&n)?.clone();
        }
        None
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, Error> {
        let (p, _, _) = self.get(name).ok_or_else(|| invalid(format!("invalid archive: {name} is missing")))?;
        std::fs::read(p).map_err(Error::io("read", p))
    }

    /// The blob `d` of an OCI layout, checked against its digest.
    fn blob(&self, d: &Digest) -> Result<&(PathBuf, Digest, u64), Error> {
        let name = format!("blobs/{}/{}", d.algorithm(), d.hex());
        let f = self.get(&name).ok_or_else(|| invalid(format!("invalid archive: blob {d} is missing")))?;
        if &f.1 != d {
            return Err(Error::DigestMismatch { expected: d.to_string(), actual: f.1.to_string() });
        }
        Ok(f)
    }
}

/// A name inside the archive, cleaned; `None` if it climbs out of it.
fn clean(name: &str) -> Option<String> {
    let comps = berth_base::fsroot::root_components(Path::new(name), berth_base::fsroot::Escape::Reject)?;
    Some(comps.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/"))
}

fn spool(store: &ImageStore, src: &mut dyn Read) -> Result<Spool, Error> {
    let dir = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.content().ingest_dir())
        .map_err(Error::io("create", store.content().ingest_dir()))?;
    let mut plain = crate::apply::decompress(src)?;
    let mut archive = tar::Archive::new(&mut plain);
    let mut files = HashMap::new();
    let mut links = HashMap::new();
    let trunc = |e: io::Error| Error::Unpack(berth_base::Error::TarTruncated { label: "archive", source: e });
    let mut n = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for entry in archive.entries().map_err(trunc)? {
        let mut entry = entry.map_err(trunc)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean(&raw)
            .ok_or_else(|| Error::Unpack(berth_base::Error::Escape { label: "archive", path: raw.clone().into() }))?;
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                n += 1;
                let p = dir.path().join(n.to_string());
                let mut f = File::create(&p).map_err(Error::io("create", &p))?;
                let mut h = sha2::Sha256::new();
                let mut size = 0u64;
                loop {
                    let k = entry.read(&mut buf).map_err(trunc)?;
                    if k == 0 {
                        break;
                    }
                    h.update(&buf[..k]);
                    f.write_all(&buf[..k]).map_err(Error::io("write", &p))?;
                    size += k as u64;
                }
                if size < entry.size() {
                    return Err(trunc(io::ErrorKind::UnexpectedEof.into()));
                }
                files.insert(name, (p, Digest::from_hasher(h), size));
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target =
                    entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                let joined = if entry.header().entry_type() == tar::EntryType::Symlink && !target.starts_with('/') {
                    match name.rsplit_once('/') {
                        Some((d, _)) => format!("{d}/{target}"),
                        None => target,
                    }
                } else {
                    target
                };
                if let Some(t) = clean(&joined) {
                    links.insert(name, t);
                }
            }
            _ => {}
        }
    }
    // Whatever follows the end marker must still read (a truncated compressed stream fails here).
    io::copy(&mut plain, &mut io::sink()).map_err(trunc)?;
    Ok(Spool { dir, files, links })
}

/// One image found in the archive, checked, before anything is stored.
struct Found {
    config: Vec<u8>,
    config_digest: Digest,
    /// Layer files, bottom first, with the diff id each must have.
    layers: Vec<(PathBuf, u64, Digest)>,
    tags: Vec<Reference>,
}

#[derive(serde::Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn diff_ids_of(config: &[u8]) -> Result<Vec<Digest>, Error> {
    let v: serde_json::Value = serde_json::from_slice(config).map_err(json_err("image config"))?;
    let ids = v.pointer("/rootfs/diff_ids").and_then(|d| d.as_array()).cloned().unwrap_or_default();
    ids.iter()
        .map(|d| {
            d.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid(format!("invalid image config: bad diff id {d}")))
        })
        .collect()
}

fn docker_images(sp: &Spool) -> Result<Vec<Found>, Error> {
    let items: Option<Vec<ManifestItem>> = serde_json::from_slice(&sp.read("manifest.json")?)
        .map_err(|source| Error::Json { what: "invalid archive: failed to decode manifest.json".into(), source })?;
    let items = items.ok_or_else(|| invalid("invalid manifest, manifest cannot be null (but can be [])"))?;
    let mut out = Vec::new();
    for m in items {
        let (cp, cd, _) =
            sp.get(&m.config).ok_or_else(|| invalid(format!("invalid archive: {} is missing", m.config)))?;
        let config = std::fs::read(cp).map_err(Error::io("read", cp))?;
        let diff_ids = diff_ids_of(&config)?;
        if diff_ids.len() != m.layers.len() {
            return Err(invalid(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                m.layers.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (l, d) in m.layers.iter().zip(diff_ids) {
            let (p, _, size) = sp.get(l).ok_or_else(|| invalid(format!("invalid archive: layer {l} is missing")))?;
            // A blob named by its digest must hash to it.
            if let Some(hex) = clean(l).and_then(|c| c.strip_prefix("blobs/sha256/").map(str::to_owned)) {
                let named = Digest::from_hex(&hex)?;
                let actual = &sp.get(l).map(|f| f.1.clone()).unwrap_or(named.clone());
                if actual != &named {
                    return Err(Error::DigestMismatch { expected: named.to_string(), actual: actual.to_string() });
                }
            }
            layers.push((p.clone(), *size, d));
        }
        let mut tags = Vec::new();
        for t in m.repo_tags.unwrap_or_default() {
            let r = Reference::parse(&t)?;
            if r.tag().is_none() {
                return Err(invalid(format!("invalid tag \"{t}\"")));
            }
            tags.push(r);
        }
        out.push(Found { config, config_digest: cd.clone(), layers, tags });
    }
    Ok(out)
}

fn host_platform_matches(p: &serde_json::Value) -> bool {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    p.get("os").and_then(|v| v.as_str()).is_none_or(|o| o == "linux")
        && p.get("architecture").and_then(|v| v.as_str()).is_none_or(|a| a == arch)
}

/// Images of a plain OCI layout: `index.json`'s manifests (nested indexes resolved to the
/// host's platform), tagged by their `io.containerd.image.name` annotation.
fn oci_images(sp: &Spool) -> Result<Vec<Found>, Error> {
    let index: serde_json::Value = serde_json::from_slice(&sp.read("index.json")?).map_err(json_err("index.json"))?;
    let mut out = Vec::new();
    let mut todo: Vec<(serde_json::Value, Option<String>)> = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            let name = d
                .pointer(&format!("/annotations/{}", NAME_ANNOTATION.replace('/', "~1")))
                .and_then(|v| v.as_str())
                .map(str::to_owned);
            (d, name)
        })
        .collect();
    let mut seen = 0;
    while let Some((desc, name)) = todo.pop() {
        seen += 1;
        if seen > 1000 {
            return Err(invalid("invalid archive: too many manifests"));
        }
        let digest: Digest = desc
            .get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| invalid("invalid archive: a descriptor without a digest"))?;
        let media = desc.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
        let (p, _, _) = sp.blob(&digest)?;
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p).map_err(Error::io("read", p))?).map_err(json_err("manifest"))?;
        if media == INDEX_MEDIA || media == DOCKER_LIST_MEDIA || doc.get("manifests").is_some() {
            for d in doc.get("manifests").and_then(|m| m.as_array()).cloned().unwrap_or_default() {
                if d.get("platform").is_none_or(host_platform_matches) {
                    todo.push((d, name.clone()));
                    break;
                }
            }
            continue;
        }
        if !(media.is_empty() || media == MANIFEST_MEDIA || media == DOCKER_MANIFEST_MEDIA) {
            continue;
        }
        let cd: Digest = doc
            .pointer("/config/digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| invalid("invalid archive: a manifest without a config"))?;
        let (cp, _, _) = sp.blob(&cd)?;
        let config = std::fs::read(cp).map_err(Error::io("read", cp))?;
        let diff_ids = diff_ids_of(&config)?;
        let ls = doc.get("layers").and_then(|l| l.as_array()).cloned().unwrap_or_default();
        if ls.len() != diff_ids.len() {
            return Err(invalid(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                ls.len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (l, d) in ls.iter().zip(diff_ids) {
            let ld: Digest = l
                .get("digest")
                .and_then(|d| d.as_str())
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| invalid("invalid archive: a layer without a digest"))?;
            let (p, _, size) = sp.blob(&ld)?;
            layers.push((p.clone(), *size, d));
        }
        let tags = name.iter().filter_map(|n| Reference::parse(n).ok()).filter(|r| r.tag().is_some()).collect();
        out.push(Found { config, config_digest: cd, layers, tags });
    }
    out.reverse();
    Ok(out)
}

/// The digest of a layer file once decompressed.
fn diff_id_of(path: &Path) -> Result<Digest, Error> {
    let mut f = File::open(path).map_err(Error::io("open", path))?;
    let mut r = crate::apply::decompress(&mut f)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf).map_err(|source| Error::LayerStream { source })?;
        if n == 0 {
            return Ok(Digest::from_hasher(h));
        }
        h.update(&buf[..n]);
    }
}

/// Counts what a layer file has given so far, for progress.
struct Counting<'a, R: Read> {
    inner: R,
    read: u64,
    total: u64,
    last: u64,
    id: &'a str,
    on: &'a mut dyn FnMut(LoadEvent),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(b)?;
        self.read += n as u64;
        if self.read - self.last >= 512 * 1024 || (n == 0 && self.read != self.last) || self.read == self.total {
            self.last = self.read;
            (self.on)(LoadEvent::Progress { id: self.id.to_owned(), current: self.read, total: self.total });
        }
        Ok(n)
    }
}

/// Loads the archive read from `src` into `store`, reporting as it goes; returns the
/// loaded images. Nothing is stored unless the whole archive checks out.
pub fn load(store: &ImageStore, src: &mut dyn Read, on: &mut dyn FnMut(LoadEvent)) -> Result<Vec<Image>, Error> {
    let sp = spool(store, src)?;
    let found = if sp.get("manifest.json").is_some() {
        docker_images(&sp)?
    } else if sp.get("index.json").is_some() {
        oci_images(&sp)?
    } else {
        return Err(invalid("invalid archive: does not contain a manifest.json"));
    };
    // Every layer's content must be what its config says, before anything is stored.
    for f in &found {
        for (p, _, want) in &f.layers {
            let got = diff_id_of(p)?;
            if &got != want {
                return Err(invalid(format!("invalid diffID for layer: expected \"{want}\", got \"{got}\"")));
            }
        }
        if Digest::of(&f.config) != f.config_digest {
            return Err(Error::DigestMismatch {
                expected: f.config_digest.to_string(),
                actual: Digest::of(&f.config).to_string(),
            });
        }
    }
    let mut added: Vec<Layer> = Vec::new();
    let res = (|| {
        let mut images = Vec::new();
        for f in &found {
            let mut layers = Vec::new();
            for (p, size, diff_id) in &f.layers {
                let known = Layer {
                    diff_id: diff_id.clone(),
                    blob: diff_id.clone(),
                    size: 0,
                    media_type: crate::MEDIA_TYPE_LAYER_TAR.to_owned(),
                };
                let existed = store.has_layer(&known);
                let short = diff_id.hex()[..12].to_owned();
                let mut file = File::open(p).map_err(Error::io("open", p))?;
                let mut counting =
                    Counting { inner: &mut file, read: 0, total: *size, last: 0, id: &short, on: &mut *on };
                let layer = store.add_layer(&mut counting)?;
                if !existed {
                    added.push(layer.clone());
                }
                layers.push(layer);
            }
            let config: oci_spec::image::ImageConfiguration =
                serde_json::from_slice(&f.config).map_err(json_err("image config"))?;
            let extras = crate::ConfigExtras::from_config_json(
                &serde_json::from_slice(&f.config).map_err(json_err("image config"))?,
            );
            let img = store.create_image_raw(&f.config, config, &extras, &layers, &f.tags)?;
            images.push((img, f.tags.clone()));
        }
        Ok::<_, Error>(images)
    })();
    let images = match res {
        Ok(i) => i,
        Err(e) => {
            // Best effort: what cannot be taken back now is left to gc.
            if let Err(d) = store.discard_layers(&added) {
                tracing::warn!(error = %d, "taking back the layers of a failed load");
            }
            return Err(e);
        }
    };
    let mut out = Vec::new();
    let mut last_tagged = true;
    let mut ids = Vec::new();
    for (img, tags) in images {
        for t in &tags {
            on(LoadEvent::Loaded(t.familiar()));
        }
        last_tagged = !tags.is_empty();
        ids.push(img.id.clone());
        out.push(img);
    }
    if !last_tagged {
        for id in ids {
            on(LoadEvent::LoadedId(id));
        }
    }
    drop(sp.dir);
    Ok(out)
}
