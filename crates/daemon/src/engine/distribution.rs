//! Pull, push and login as the Engine API asks for them: the registry client fetches, the
//! image store keeps, and this sends Docker's progress messages (`Pulling fs layer`,
//! `Downloading`, `Pull complete`, `Digest:`, `Status:`) as they happen. A pull is resolved
//! first (so a missing image or a refused login is an HTTP error), then streamed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::client::manifest::RemoteManifest;
use berth_api::models::{DistributionInspect, OciDescriptor, OciPlatform};
use berth_api::{JsonMessage, ProgressDetail};
use berth_base::{Digest, ErrorKind, Reference};
use berth_image::{Image, Layer, LayerSource};
use berth_registry::client::{AuthConfig, BlobProgress, Descriptor, Endpoint, Platform, Resolved, Session};
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use super::{Engine, blocking};
use crate::error::{Error, Result};

/// How many layers download at once (dockerd's `max-concurrent-downloads` default).
const CONCURRENT_DOWNLOADS: usize = 3;
/// How many layers upload at once (dockerd's `max-concurrent-uploads` default).
const CONCURRENT_UPLOADS: usize = 5;

/// Where progress messages go (the response body of a pull or push).
pub type Progress = UnboundedSender<JsonMessage>;

/// A pull, resolved and ready to stream.
pub enum PullPlan {
    /// One image from a registry.
    Remote {
        /// The reference as asked, with its tag or digest.
        reference: Reference,
        /// The session that resolved it.
        session: Arc<Session>,
        /// The manifest and config.
        resolved: Box<Resolved>,
    },
    /// Every tag of a repository (`pull -a`).
    AllTags {
        /// The repository.
        reference: Reference,
        /// Its tags, sorted.
        tags: Vec<String>,
        /// Platform requested.
        platform: Platform,
        /// Credentials.
        auth: Box<AuthConfig>,
    },
    /// The built-in hello-world image (no registry answered for it).
    Builtin(Reference),
}

/// One line of progress.
pub fn msg(status: impl Into<String>, id: Option<&str>) -> JsonMessage {
    JsonMessage { status: Some(status.into()), id: id.map(str::to_owned), ..Default::default() }
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Docker's text progress bar (`[=====>     ]  1.2MB/3.4MB`), for clients that print `progress`.
pub fn bar(current: u64, total: u64) -> String {
    let width = 50u64;
    let filled = (current.min(total) * width).checked_div(total).unwrap_or(0) as usize;
    let mut b = String::with_capacity(52);
    b.push('[');
    for i in 0..width as usize {
        b.push(if i < filled {
            '='
        } else if i == filled {
            '>'
        } else {
            ' '
        });
    }
    b.push(']');
    format!("{b} {}/{}", human(current), human(total))
}

fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{n}B") } else { format!("{v:.3}{}", units[u]).replace(".000", "") }
}

/// Builds the reference a pull asks for from `fromImage` and `tag` (which may be a digest).
pub fn pull_reference(from_image: &str, tag: Option<&str>) -> Result<Reference> {
    let full = match tag.filter(|t| !t.is_empty()) {
        Some(t) if t.contains(':') => format!("{from_image}@{t}"),
        Some(t) => format!("{from_image}:{t}"),
        None => from_image.to_owned(),
    };
    Reference::parse(&full).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Moby's words for a pull the registry refused.
fn pull_error(r: &Reference, e: berth_registry::Error) -> Error {
    let tag = r.tag().map(str::to_owned).or_else(|| r.digest().map(|d| d.to_string())).unwrap_or_default();
    let sep = if r.digest().is_some() && r.tag().is_none() { "@" } else { ":" };
    match e.registry_code() {
        Some("MANIFEST_UNKNOWN") | Some("NOT_FOUND") => Error::RegistryRefused {
            message: format!("manifest for {}{sep}{tag} not found: {e}", r.familiar_name()),
            source: e,
        },
        Some("NAME_UNKNOWN") | Some("DENIED") | Some("UNAUTHORIZED") => Error::RegistryRefused {
            message: format!(
                "pull access denied for {}, repository does not exist or may require 'docker login': {e}",
                r.familiar_name()
            ),
            source: e,
        },
        _ => Error::Registry(e),
    }
}

struct LayerProgress {
    tx: Progress,
    id: String,
    total: u64,
    last: Instant,
    sent: u64,
}

impl BlobProgress for LayerProgress {
    fn advanced(&mut self, done: u64) {
        if done == self.total || done - self.sent >= 1 << 20 || self.last.elapsed() >= Duration::from_millis(100) {
            self.sent = done;
            self.last = Instant::now();
            let _ = self.tx.send(JsonMessage {
                status: Some("Downloading".into()),
                id: Some(self.id.clone()),
                progress: Some(bar(done, self.total)),
                progress_detail: Some(ProgressDetail { current: done, total: self.total }),
                ..Default::default()
            });
        }
    }

    fn retrying(&mut self, _done: u64, wait: Duration, err: &berth_registry::Error) {
        tracing::warn!(layer = %self.id, error = %err, "blob download broke; resuming");
        let _ = self.tx.send(msg(
            format!("Retrying in {} second{}", wait.as_secs().max(1), if wait.as_secs() > 1 { "s" } else { "" }),
            Some(&self.id),
        ));
    }
}

impl Engine {
    /// Opens a session on the first endpoint that resolves `r`: mirrors first for Docker Hub
    /// names, then the registry itself. The last error is reported when none does.
    async fn resolve_remote(
        &self,
        r: &Reference,
        platform: &Platform,
        auth: &AuthConfig,
    ) -> Result<(Arc<Session>, Resolved)> {
        let opts = self.cfg.registry.options();
        let want =
            r.digest().map(|d| d.to_string()).or_else(|| r.tag().map(str::to_owned)).unwrap_or_else(|| "latest".into());
        let mut last = None;
        for ep in opts.endpoints(r) {
            let s = Arc::new(opts.session(&ep, r.path(), auth, false).await?);
            let res = s.resolve(&want, platform).await.map(|res| (s, res));
            match res {
                Ok(v) => return Ok(v),
                Err(e) if ep.mirror => {
                    tracing::info!(mirror = %ep.base(), error = %e, "mirror did not serve the image");
                    last = Some(e);
                }
                Err(e) => return Err(pull_error(r, e)),
            }
        }
        Err(last.map(|e| pull_error(r, e)).unwrap_or_else(|| Error::Internal("no registry endpoint".into())))
    }

    /// Resolves a pull before its stream starts: the manifest and config are fetched here,
    /// so that a missing image or refused credentials answer with an HTTP error.
    pub async fn prepare_pull(
        &self,
        from_image: &str,
        tag: Option<&str>,
        platform: Option<&str>,
        auth: AuthConfig,
    ) -> Result<PullPlan> {
        let platform = match platform.filter(|p| !p.is_empty()) {
            Some(p) => Platform::parse(p).map_err(|e| Error::InvalidArgument(e.to_string()))?,
            None => Platform::host(),
        };
        let r = pull_reference(from_image, tag)?;
        if r.tag().is_none() && r.digest().is_none() {
            let opts = self.cfg.registry.options();
            let mut last = None;
            for ep in opts.endpoints(&r) {
                let s = opts.session(&ep, r.path(), &auth, false).await?;
                match s.tags().await {
                    Ok(mut tags) => {
                        tags.sort();
                        return Ok(PullPlan::AllTags { reference: r, tags, platform, auth: Box::new(auth) });
                    }
                    Err(e) => last = Some(e),
                }
            }
            return Err(last.map(|e| pull_error(&r, e)).unwrap_or_else(|| Error::Internal("no endpoint".into())));
        }
        let r = if r.digest().is_none() { r.with_default_tag() } else { r };
        match self.resolve_remote(&r, &platform, &auth).await {
            Ok((session, resolved)) => Ok(PullPlan::Remote { reference: r, session, resolved: Box::new(resolved) }),
            Err(e) if is_hello_world(&r) && e.kind() != ErrorKind::Forbidden => {
                tracing::info!(error = %e, "no registry served hello-world; using the built-in image");
                Ok(PullPlan::Builtin(r))
            }
            Err(e) => Err(e),
        }
    }

    /// Streams a prepared pull into the store, sending progress to `tx`.
    pub async fn run_pull(self: &Arc<Self>, plan: PullPlan, tx: &Progress) -> Result<Option<Image>> {
        match plan {
            PullPlan::Builtin(r) => {
                let _ = tx.send(msg(format!("Pulling from {}", r.path()), r.tag()));
                let existed = self.images.resolve(&r.to_string()).is_ok();
                let img = self.resolve_image_for_run(&r.to_string()).await?;
                let _ = tx.send(msg(format!("Digest: {}", img.manifest_digest), None));
                let _ = tx.send(msg(status_line(existed, &r), None));
                Ok(Some(img))
            }
            PullPlan::Remote { reference, session, resolved } => {
                let img = self.pull_one(&reference, &session, *resolved, tx).await?;
                Ok(Some(img))
            }
            PullPlan::AllTags { reference, tags, platform, auth } => {
                for t in &tags {
                    let r = reference.clone().with_tag(t).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                    let (s, res) = self.resolve_remote(&r, &platform, &auth).await?;
                    self.pull_one_quiet_status(&r, &s, res, tx).await?;
                }
                let _ = tx.send(msg(format!("Status: Downloaded newer image for {}", reference.familiar_name()), None));
                Ok(None)
            }
        }
    }

    async fn pull_one_quiet_status(
        &self,
        r: &Reference,
        s: &Arc<Session>,
        res: Resolved,
        tx: &Progress,
    ) -> Result<Image> {
        let (img, _existed) = self.pull_layers(r, s, res, tx).await?;
        self.emit_image(&r.familiar(), &r.familiar_name(), "pull");
        Ok(img)
    }

    async fn pull_one(&self, r: &Reference, s: &Arc<Session>, res: Resolved, tx: &Progress) -> Result<Image> {
        let digest = res.digest.clone();
        let (img, existed) = self.pull_layers(r, s, res, tx).await?;
        self.emit_image(&r.familiar(), &r.familiar_name(), "pull");
        let _ = tx.send(msg(format!("Digest: {digest}"), None));
        let _ = tx.send(msg(status_line(existed, r), None));
        Ok(img)
    }

    /// Fetches what is missing of one resolved image and records it. Returns the image and
    /// whether it was already there under this reference.
    async fn pull_layers(
        &self,
        r: &Reference,
        s: &Arc<Session>,
        res: Resolved,
        tx: &Progress,
    ) -> Result<(Image, bool)> {
        let tag_id =
            r.tag().map(str::to_owned).unwrap_or_else(|| r.digest().map(|d| d.to_string()).unwrap_or_default());
        let _ = tx.send(msg(format!("Pulling from {}", r.path()), Some(&tag_id)));
        let cfg: serde_json::Value = serde_json::from_slice(&res.config)
            .map_err(|e| Error::Registry(berth_registry::Error::Protocol(format!("malformed image config: {e}"))))?;
        let diff_ids: Vec<Digest> = cfg
            .pointer("/rootfs/diff_ids")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|d| d.as_str().and_then(|s| s.parse().ok())).collect())
            .unwrap_or_default();
        if diff_ids.len() != res.layers.len() {
            return Err(Error::Registry(berth_registry::Error::Protocol(format!(
                "the manifest has {} layers but the config {} diff ids",
                res.layers.len(),
                diff_ids.len()
            ))));
        }
        let before = {
            let images = self.images.clone();
            let name = r.to_string();
            blocking(move || Ok(images.resolve(&name).ok().map(|i| i.id))).await?
        };
        let sources: Vec<LayerSource> = res
            .layers
            .iter()
            .zip(&diff_ids)
            .map(|(d, diff)| LayerSource {
                blob: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
                diff_id: diff.clone(),
            })
            .collect();
        // What is present already, and what must come over the wire.
        let mut layers: Vec<Option<Layer>> = Vec::new();
        for src in &sources {
            let images = self.images.clone();
            let src2 = src.clone();
            let have = blocking(move || Ok(images.find_layer(&src2)?)).await?;
            let id = short(&src.blob);
            let _ = tx.send(msg(if have.is_some() { "Already exists" } else { "Pulling fs layer" }, Some(&id)));
            layers.push(have);
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_DOWNLOADS));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (src, desc)) in sources.iter().zip(&res.layers).enumerate() {
            if layers[i].is_some() {
                continue;
            }
            let (src, desc, s, tx, images, sem) =
                (src.clone(), desc.clone(), s.clone(), tx.clone(), self.images.clone(), sem.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                (i, fetch_layer(&s, &desc, &src, &images, &tx).await)
            });
        }
        let mut first_err = None;
        let mut fetched: Vec<Layer> = Vec::new();
        while let Some(j) = tasks.join_next().await {
            match j {
                Ok((i, Ok(l))) => {
                    fetched.push(l.clone());
                    layers[i] = Some(l);
                }
                Ok((_, Err(e))) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                        tasks.abort_all();
                    }
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => {
                    first_err.get_or_insert(Error::Task(e));
                }
            }
        }
        if let Some(e) = first_err {
            self.discard(fetched).await;
            return Err(e);
        }
        let layers: Vec<Layer> = layers.into_iter().flatten().collect();
        let images = self.images.clone();
        let tags: Vec<Reference> = if r.tag().is_some() { vec![r.clone()] } else { Vec::new() };
        let repo_digest = Reference::parse(&format!("{}@{}", r.name(), res.digest)).ok();
        let (config, manifest) = (res.config, res.manifest);
        let committed =
            blocking(move || Ok(images.commit_pulled(&config, &manifest, &layers, &tags, repo_digest.as_ref())?)).await;
        let img = match committed {
            Ok(img) => img,
            Err(e) => {
                self.discard(fetched).await;
                return Err(e);
            }
        };
        Ok((img.clone(), before.as_ref() == Some(&img.id)))
    }
}

impl Engine {
    /// Drops the layers a failed pull fetched (nothing of it stays on disk).
    async fn discard(&self, fetched: Vec<Layer>) {
        if fetched.is_empty() {
            return;
        }
        let images = self.images.clone();
        if let Err(e) = blocking(move || Ok(images.discard_layers(&fetched)?)).await {
            tracing::warn!(error = %e, "removing the layers of a failed pull");
        }
    }
}

fn status_line(existed: bool, r: &Reference) -> String {
    if existed {
        format!("Status: Image is up to date for {}", r.familiar())
    } else {
        format!("Status: Downloaded newer image for {}", r.familiar())
    }
}

fn is_hello_world(r: &Reference) -> bool {
    r.domain() == "docker.io" && r.path() == "library/hello-world" && r.tag() == Some("latest")
}

/// Downloads one layer while a blocking thread unpacks and verifies it.
async fn fetch_layer(
    s: &Session,
    desc: &Descriptor,
    src: &LayerSource,
    images: &Arc<berth_image::ImageStore>,
    tx: &Progress,
) -> Result<Layer> {
    let id = short(&src.blob);
    let (btx, mut brx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(64);
    let images = images.clone();
    let src2 = src.clone();
    let unpack = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader { rx: &mut brx, cur: bytes::Bytes::new() };
        images.ingest_layer(&mut reader, &src2)
    });
    let mut prog = LayerProgress { tx: tx.clone(), id: id.clone(), total: desc.size, last: Instant::now(), sent: 0 };
    let fetched = berth_registry::client::fetch_blob(s, desc, &btx, &mut prog).await;
    if let Err(e) = &fetched {
        // The unpacker sees the stream end early and fails; our error is the one to report.
        let _ = btx.send(Err(std::io::Error::other(e.to_string()))).await;
    } else {
        let _ = tx.send(msg("Verifying Checksum", Some(&id)));
        let _ = tx.send(msg("Download complete", Some(&id)));
    }
    drop(btx);
    let unpacked = unpack.await.map_err(Error::Task)?;
    match (fetched, unpacked) {
        (Err(berth_registry::Error::Cancelled), Err(e)) => Err(Error::Image(e)),
        (Err(e), _) => Err(Error::Registry(e)),
        (Ok(()), Err(e)) => Err(Error::Image(e)),
        (Ok(()), Ok(l)) => {
            let _ = tx.send(msg("Pull complete", Some(&id)));
            Ok(l)
        }
    }
}

/// Feeds a blocking reader from the download's channel.
struct ChannelReader<'a> {
    rx: &'a mut tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    cur: bytes::Bytes,
}

impl std::io::Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

impl Engine {
    /// `POST /auth`: checks credentials against the registry.
    pub async fn login(&self, auth: AuthConfig) -> Result<berth_registry::client::LoginOutcome> {
        let opts = self.cfg.registry.options();
        opts.login(&auth).await.map_err(Error::Registry)
    }

    /// The endpoint that serves `r` (the registry itself, never a mirror).
    pub fn registry_endpoint(&self, r: &Reference) -> Option<Endpoint> {
        self.cfg.registry.options().endpoints(r).into_iter().find(|e| !e.mirror)
    }
}

/// A push, checked and authenticated, ready to stream.
pub struct PushPlan {
    /// The repository (no tag).
    repo: Reference,
    /// The tags to push with their images.
    items: Vec<(Reference, Image)>,
    session: Arc<Session>,
}

struct UploadBar {
    tx: Progress,
    id: String,
    total: u64,
    last: Instant,
}

impl berth_registry::client::push::UploadProgress for UploadBar {
    fn sent(&mut self, done: u64) {
        if done >= self.total || self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            let _ = self.tx.send(JsonMessage {
                status: Some("Pushing".into()),
                id: Some(self.id.clone()),
                progress: Some(bar(done.min(self.total), self.total)),
                progress_detail: Some(ProgressDetail { current: done.min(self.total), total: self.total }),
                ..Default::default()
            });
        }
    }
}

impl Engine {
    /// Checks a push before its stream starts: the local image(s) exist and the registry
    /// accepts the credentials.
    pub async fn prepare_push(&self, name: &str, tag: Option<&str>, auth: AuthConfig) -> Result<PushPlan> {
        let repo = Reference::parse(name).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let images = self.images.clone();
        let repo_name = repo.name();
        let tag = tag.filter(|t| !t.is_empty()).map(str::to_owned).or_else(|| repo.tag().map(str::to_owned));
        let items = blocking(move || {
            let mut out = Vec::new();
            match tag {
                Some(t) => {
                    let r = Reference::parse(&format!("{repo_name}:{t}"))
                        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
                    match images.resolve(&r.to_string()) {
                        Ok(img) => out.push((r, img)),
                        Err(e) if e.kind() == ErrorKind::NotFound => {
                            return Err(Error::RegistryRefused {
                                message: format!("An image does not exist locally with the tag: {}", r.familiar_name()),
                                source: berth_registry::Error::Registry {
                                    code: "NOT_FOUND".into(),
                                    message: "no such image".into(),
                                },
                            });
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {
                    for img in images.list()? {
                        for t in &img.repo_tags {
                            if let Ok(r) = Reference::parse(t)
                                && r.name() == repo_name
                            {
                                out.push((r, img.clone()));
                            }
                        }
                    }
                    if out.is_empty() {
                        return Err(Error::RegistryRefused {
                            message: format!(
                                "An image does not exist locally with the tag: {}",
                                Reference::parse(&repo_name).map(|r| r.familiar_name()).unwrap_or(repo_name.clone())
                            ),
                            source: berth_registry::Error::Registry {
                                code: "NOT_FOUND".into(),
                                message: "no such image".into(),
                            },
                        });
                    }
                    out.sort_by_key(|a| a.0.to_string());
                }
            }
            Ok(out)
        })
        .await?;
        let ep = self.registry_endpoint(&repo).ok_or_else(|| Error::Internal("no registry endpoint".into()))?;
        let opts = self.cfg.registry.options();
        let session = Arc::new(opts.session(&ep, repo.path(), &auth, true).await?);
        session.authenticate().await?;
        Ok(PushPlan { repo, items, session })
    }

    /// Streams a prepared push.
    pub async fn run_push(&self, plan: PushPlan, tx: &Progress) -> Result<()> {
        let _ = tx.send(msg(format!("The push refers to repository [{}]", plan.repo.name()), None));
        for (r, img) in &plan.items {
            self.push_one(&plan, r, img, tx).await?;
        }
        Ok(())
    }

    async fn push_one(&self, plan: &PushPlan, r: &Reference, img: &Image, tx: &Progress) -> Result<()> {
        let s = &plan.session;
        let images = self.images.clone();
        let id = img.id.clone();
        let layers = blocking(move || Ok(images.image_layers(&id)?)).await?;
        for l in layers.iter().rev() {
            let _ = tx.send(msg("Preparing", Some(&short(&l.diff_id))));
        }
        // Layers go up concurrently (dockerd's max-concurrent-uploads is 5), so one layer's
        // compression overlaps another's upload; the manifest lists them in order.
        let uploads: Vec<_> = layers.iter().map(|l| Box::pin(self.push_layer(s, r, l, tx))).collect();
        let pushed: Vec<Layer> = futures_util::stream::iter(uploads)
            .buffered(CONCURRENT_UPLOADS)
            .collect::<Vec<Result<Layer>>>()
            .await
            .into_iter()
            .collect::<Result<Vec<Layer>>>()?;
        // The config, byte for byte: the image id stays the same on the other side.
        let config = self.images.content().read(&img.id)?;
        if !s.blob_exists(&img.id).await? {
            s.upload_bytes(&img.id, config.clone()).await?;
        }
        let stored = self.images.manifest_bytes(img).ok();
        let (body, media_type) = match stored.as_deref().and_then(|b| reuse_manifest(b, &img.id, &pushed)) {
            Some(v) => v,
            None => (
                oci_manifest(&img.id, config.len() as u64, &pushed)?,
                berth_registry::client::resolve::OCI_MANIFEST.to_owned(),
            ),
        };
        let size = body.len();
        let tag = r.tag().unwrap_or("latest").to_owned();
        let digest = s.put_manifest(&tag, body, &media_type).await?;
        let images = self.images.clone();
        let (id, rd) = (img.id.clone(), Reference::parse(&format!("{}@{digest}", r.name())).ok());
        if let Some(rd) = rd {
            blocking(move || Ok(images.add_repo_digest(&id, &rd)?)).await?;
        }
        self.emit_image(&r.familiar(), &r.familiar_name(), "push");
        let _ = tx.send(msg(format!("{tag}: digest: {digest} size: {size}"), None));
        let _ = tx.send(JsonMessage {
            aux: Some(serde_json::json!({ "Tag": tag, "Digest": digest.to_string(), "Size": size })),
            ..Default::default()
        });
        Ok(())
    }

    /// Pushes one layer: its compressed form (made once and kept), unless the registry has
    /// it already or can mount it from another repository.
    async fn push_layer(&self, s: &Session, r: &Reference, l: &Layer, tx: &Progress) -> Result<Layer> {
        let sid = short(&l.diff_id);
        let images = self.images.clone();
        let l2 = l.clone();
        // Compressed once, kept: a second push finds it in the store.
        let blob = blocking(move || Ok(images.push_blob(&l2)?)).await?;
        if s.blob_exists(&blob.blob).await? {
            let _ = tx.send(msg("Layer already exists", Some(&sid)));
        } else if let Some(from) = self.mount_source(r, &blob.blob).await
            && s.mount(&blob.blob, &from).await
        {
            let _ = tx.send(msg(format!("Mounted from {from}"), Some(&sid)));
        } else {
            let src = self.images.content().open_blob(&blob.blob)?;
            let bar = UploadBar { tx: tx.clone(), id: sid.clone(), total: blob.size, last: Instant::now() };
            s.upload_blob(&blob.blob, blob.size, Box::new(src), Box::new(bar)).await?;
            let _ = tx.send(msg("Pushed", Some(&sid)));
        }
        Ok(blob)
    }

    /// Another repository of the same registry that an image holding `blob` came from or went
    /// to (from the RepoDigests), for a cross-repository mount.
    async fn mount_source(&self, target: &Reference, blob: &Digest) -> Option<String> {
        let images = self.images.clone();
        let (target, blob) = (target.clone(), blob.clone());
        blocking(move || {
            for img in images.list()? {
                let Ok(layers) = images.image_layers(&img.id) else { continue };
                let holds = layers.iter().any(|l| l.blob == blob)
                    || layers.iter().any(|l| {
                        images
                            .compressed_blob(&l.diff_id, berth_image::MEDIA_TYPE_LAYER_GZIP)
                            .ok()
                            .flatten()
                            .is_some_and(|c| c.blob == blob)
                    });
                if !holds {
                    continue;
                }
                for rd in &img.repo_digests {
                    if let Ok(r) = Reference::parse(rd)
                        && r.domain() == target.domain()
                        && r.path() != target.path()
                    {
                        return Ok(Some(r.path().to_owned()));
                    }
                }
            }
            Ok(None)
        })
        .await
        .ok()
        .flatten()
    }
}

/// The stored manifest, when it still describes exactly what is pushed (a pulled image going
/// back out): pushing it unchanged keeps its digest.
fn reuse_manifest(bytes: &[u8], config: &Digest, layers: &[Layer]) -> Option<(Vec<u8>, String)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if v.pointer("/config/digest")?.as_str()? != config.to_string() {
        return None;
    }
    let ls = v.get("layers")?.as_array()?;
    if ls.len() != layers.len() {
        return None;
    }
    for (a, b) in ls.iter().zip(layers) {
        if a.get("digest")?.as_str()? != b.blob.to_string() {
            return None;
        }
    }
    let mt =
        v.get("mediaType").and_then(|m| m.as_str()).unwrap_or(berth_registry::client::resolve::OCI_MANIFEST).to_owned();
    Some((bytes.to_vec(), mt))
}

/// An OCI image manifest for a config and compressed layers.
fn oci_manifest(config: &Digest, config_size: u64, layers: &[Layer]) -> Result<Vec<u8>> {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": berth_registry::client::resolve::OCI_MANIFEST,
        "config": { "mediaType": berth_image::MEDIA_TYPE_CONFIG, "digest": config.to_string(), "size": config_size },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.blob.to_string(), "size": l.size,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&m).map_err(|source| Error::Encode { what: "manifest", source })
}

impl Engine {
    /// Pulls the base images a Dockerfile names that are not stored (all of them when
    /// `always`, as `build --pull` asks), before the build starts. Progress goes to `say` as
    /// text lines. Bases named through a build argument are left to the solver (which
    /// reports them missing by name); `scratch` and earlier stages are not images. A base
    /// from a registry that wants credentials is pulled with those `auths` holds for it.
    pub(crate) fn pull_build_bases(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        plan: &berth_build::plan::Plan,
        always: bool,
        platform: Option<&str>,
        auths: &berth_registry::client::AuthConfigs,
        say: &dyn Fn(String),
    ) -> Result<()> {
        let mut stages: Vec<String> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for st in &plan.stages {
            if let Some((_, _, berth_build::plan::Step::From { base, platform: p })) = st.steps.first() {
                let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(base));
                if !is_stage && base != "scratch" && !base.contains('$') && !seen.contains(base) {
                    seen.push(base.clone());
                    let present = self.images.resolve(base).is_ok();
                    if always || !present {
                        let plat = p.as_deref().filter(|p| !p.contains('$')).or(platform);
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<JsonMessage>();
                        let engine = self.clone();
                        let b = base.clone();
                        let plat = plat.map(str::to_owned);
                        // The user's credentials for the base's registry, as the CLI sent them.
                        let auth = Reference::parse(base).map(|r| auths.for_domain(r.domain())).unwrap_or_default();
                        let res = handle.block_on(async move {
                            let plan = engine.prepare_pull(&b, None, plat.as_deref(), auth).await?;
                            engine.run_pull(plan, &tx).await
                        });
                        while let Ok(m) = rx.try_recv() {
                            if let Some(status) = m.status
                                && m.progress_detail.is_none()
                            {
                                say(match m.id {
                                    Some(id) => format!("{id}: {status}\n"),
                                    None => format!("{status}\n"),
                                });
                            }
                        }
                        match res {
                            Ok(_) => {}
                            // A stored base that the registry does not have is still usable.
                            Err(e) if present => {
                                say(format!("WARNING: pulling {base} failed, using the stored image: {e}\n"))
                            }
                            // BuildKit's words, so the error names the base even when the
                            // registry's own message (an unreachable host) does not.
                            Err(Error::Registry(e)) => {
                                let name = Reference::parse(base).map_or_else(|_| base.clone(), |r| r.to_string());
                                return Err(Error::RegistryRefused {
                                    message: format!("failed to resolve source metadata for {name}: {e}"),
                                    source: e,
                                });
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            if let Some(n) = &st.name {
                stages.push(n.clone());
            }
        }
        Ok(())
    }
}

/// Media types of image indexes (Docker's manifest list, OCI's index).
const INDEX_TYPES: [&str; 2] =
    ["application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json"];

/// The registry errors after which the docker CLI tries the next endpoint and, with none
/// left, says `no such manifest`.
fn manifest_missing(e: &berth_registry::Error) -> bool {
    matches!(e.registry_code(), Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "UNAUTHORIZED" | "NOT_FOUND"))
        || matches!(e, berth_registry::Error::Unauthorized(_))
}

/// An image config's platform fields, as Go reads them into an OCI platform.
fn config_platform(config: &[u8]) -> Option<OciPlatform> {
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        os: String,
        #[serde(default, rename = "os.version")]
        os_version: String,
        #[serde(default, rename = "os.features")]
        os_features: Vec<String>,
        #[serde(default)]
        variant: String,
    }
    let p: P = serde_json::from_slice(config).ok()?;
    let some = |s: String| (!s.is_empty()).then_some(s);
    Some(OciPlatform {
        architecture: Some(p.architecture),
        os: Some(p.os),
        os_version: some(p.os_version),
        os_features: (!p.os_features.is_empty()).then_some(p.os_features),
        variant: some(p.variant),
    })
}

/// An index entry's platform (architecture and os always present, as Docker's
/// `PlatformSpec` marshals them).
fn entry_platform(v: &serde_json::Value) -> OciPlatform {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let features: Vec<String> = v
        .get("os.features")
        .and_then(|x| x.as_array())
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    OciPlatform {
        architecture: Some(s("architecture").unwrap_or_default()),
        os: Some(s("os").unwrap_or_default()),
        os_version: s("os.version").filter(|x| !x.is_empty()),
        os_features: (!features.is_empty()).then_some(features),
        variant: s("variant").filter(|x| !x.is_empty()),
    }
}

/// A manifest's bytes as a [`RemoteManifest`] (without children or platform yet).
fn remote(body: &[u8], media_type: String) -> Result<(RemoteManifest, serde_json::Value)> {
    use base64::Engine as _;
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::Registry(berth_registry::Error::Protocol(format!("malformed manifest: {e}"))))?;
    let media_type = if media_type.is_empty() || media_type == "application/json" {
        doc.get("mediaType").and_then(|m| m.as_str()).unwrap_or_default().to_owned()
    } else {
        media_type
    };
    let m = RemoteManifest {
        media_type,
        digest: Digest::of(body).to_string(),
        size: body.len() as i64,
        raw: base64::engine::general_purpose::STANDARD.encode(body),
        platform: None,
        manifests: Vec::new(),
    };
    Ok((m, doc))
}

impl Engine {
    /// The manifest `name` names at its registry, as `manifest inspect` and
    /// `GET /distribution/{name}/json` want it: an image manifest with its config's platform,
    /// or an index with (`children`) each of its manifests fetched. `insecure` treats the
    /// registry as an insecure one (`manifest inspect --insecure`). A reference no endpoint
    /// serves is `no such manifest: REF` (the docker CLI's words), a NotFound.
    pub async fn remote_manifest(
        &self,
        name: &str,
        auth: &AuthConfig,
        insecure: bool,
        children: bool,
    ) -> Result<RemoteManifest> {
        let r = Reference::parse(name).map_err(|e| Error::InvalidArgument(format!("invalid reference format: {e}")))?;
        let r = if r.digest().is_none() { r.with_default_tag() } else { r };
        let mut opts = self.cfg.registry.options();
        if insecure {
            opts.insecure.push(r.domain().to_owned());
        }
        let want =
            r.digest().map(|d| d.to_string()).or_else(|| r.tag().map(str::to_owned)).unwrap_or_else(|| "latest".into());
        for ep in opts.endpoints(&r) {
            let s = opts.session(&ep, r.path(), auth, false).await?;
            let (body, media_type) = match s.manifest_typed(&want).await {
                Ok(v) => v,
                Err(e) if manifest_missing(&e) || ep.mirror => {
                    tracing::debug!(endpoint = %ep.base(), error = %e, "no manifest here; next endpoint");
                    continue;
                }
                Err(e) => return Err(Error::Registry(e)),
            };
            let (mut m, doc) = remote(&body, media_type)?;
            if INDEX_TYPES.contains(&m.media_type.as_str()) {
                let entries = doc.get("manifests").and_then(|v| v.as_array()).cloned().unwrap_or_default();
                for entry in entries.iter().filter(|_| children) {
                    let digest = entry.get("digest").and_then(|d| d.as_str()).unwrap_or_default();
                    let (b, t) = s.manifest_typed(digest).await.map_err(Error::Registry)?;
                    let (mut child, _) = remote(&b, t)?;
                    child.platform = Some(entry_platform(entry.get("platform").unwrap_or(&serde_json::Value::Null)));
                    m.manifests.push(child);
                }
                if !children {
                    // The Engine API's answer needs only the entries' platforms.
                    m.manifests = entries
                        .iter()
                        .map(|e| RemoteManifest {
                            platform: Some(entry_platform(e.get("platform").unwrap_or(&serde_json::Value::Null))),
                            ..Default::default()
                        })
                        .collect();
                }
            } else if let Some(config) = doc.get("config") {
                let config: Descriptor = serde_json::from_value(config.clone()).map_err(|e| {
                    Error::Registry(berth_registry::Error::Protocol(format!("malformed manifest config: {e}")))
                })?;
                let bytes = s.small_blob(&config).await.map_err(Error::Registry)?;
                m.platform = config_platform(&bytes);
            }
            return Ok(m);
        }
        Err(Error::NotFound(format!("no such manifest: {r}")))
    }

    /// `GET /distribution/{name}/json`: the descriptor of what `name` names and the
    /// platforms it serves (an index's entries, or the image config's platform).
    pub async fn distribution_inspect(&self, name: &str, auth: &AuthConfig) -> Result<DistributionInspect> {
        let m = self.remote_manifest(name, auth, false, false).await?;
        let platforms = if m.manifests.is_empty() {
            m.platform
                .into_iter()
                .filter(|p| {
                    p.os.as_deref().is_some_and(|s| !s.is_empty())
                        || p.architecture.as_deref().is_some_and(|s| !s.is_empty())
                })
                .collect()
        } else {
            m.manifests.into_iter().filter_map(|c| c.platform).collect()
        };
        Ok(DistributionInspect {
            descriptor: OciDescriptor {
                media_type: Some(m.media_type),
                digest: Some(m.digest),
                size: Some(m.size),
                ..Default::default()
            },
            platforms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_bars() {
        assert_eq!(pull_reference("busybox", Some("1.36")).unwrap().to_string(), "docker.io/library/busybox:1.36");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(pull_reference("x/y", Some(&d)).unwrap().digest().unwrap().to_string(), d);
        assert!(pull_reference("x/y", None).unwrap().tag().is_none());
        assert!(bar(5, 10).starts_with("[=========================>"));
        assert_eq!(human(1_500_000), "1.500MB");
    }

    #[test]
    fn moby_wording_for_refusals() {
        let r = Reference::parse("127.0.0.1:5000/nope:1").unwrap();
        let e = pull_error(
            &r,
            berth_registry::Error::Registry { code: "MANIFEST_UNKNOWN".into(), message: "manifest unknown".into() },
        );
        assert_eq!(e.to_string(), "manifest for 127.0.0.1:5000/nope:1 not found: manifest unknown: manifest unknown");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let e = pull_error(
            &r,
            berth_registry::Error::Registry {
                code: "NAME_UNKNOWN".into(),
                message: "repository name not known to registry".into(),
            },
        );
        assert!(e.to_string().starts_with("pull access denied for 127.0.0.1:5000/nope, repository does not exist or may require 'docker login': name unknown"));
    }
}
