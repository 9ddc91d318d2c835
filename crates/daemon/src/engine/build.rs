//! The daemon's side of `docker build`: a [`StepExecutor`] that runs RUN steps through the
//! shim (as containers are run, but never listed as containers), and the glue that runs
//! the builder on the blocking pool and streams its progress.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_build::executor::{BoxError, OutputStream, RunSpec, StepExecutor};
use berth_runtime::spec::SpecOptions;
use berth_runtime::{ShimClient, ShimEvent, Streams};

use super::Engine;
use crate::error::DownloadError;
use berth_build::frontend as build_frontend;

/// Runs build steps with the shim.
pub struct ShimExecutor {
    engine: Arc<Engine>,
    cancel: Arc<AtomicBool>,
}

impl ShimExecutor {
    /// An executor that stops the running step when `cancel` becomes true.
    pub fn new(engine: Arc<Engine>, cancel: Arc<AtomicBool>) -> ShimExecutor {
        ShimExecutor { engine, cancel }
    }

    /// The step's sandbox: /etc files, user, working directory, mounts, network.
    fn spec(
        &self,
        bundle_dir: &Path,
        rootfs: &Path,
        spec: &RunSpec,
        netns: Option<&Path>,
    ) -> crate::error::Result<SpecOptions> {
        super::sandbox::for_step(bundle_dir, rootfs, spec, netns)
    }
}

impl StepExecutor for ShimExecutor {
    fn run(
        &self,
        bundle_dir: &Path,
        rootfs: &Path,
        spec: &RunSpec,
        output: &mut dyn FnMut(OutputStream, &[u8]),
    ) -> Result<i32, BoxError> {
        let id = berth_base::new_id();
        // On the default bridge, the step gets a namespace and an address of its own for
        // the time it runs.
        let net = match spec.network {
            berth_build::executor::Network::Default => Some(self.engine.attach_step(&id)?),
            _ => None,
        };
        let _detach = StepNetwork(&self.engine, net.as_ref());
        let opts = self.spec(
            bundle_dir,
            rootfs,
            spec,
            net.as_ref().map(|r| self.engine.networks.netns_path(&r.id)).as_deref(),
        )?;
        let oci = berth_runtime::spec::generate(&opts)?;
        let stubs = super::mount_stubs::MountStubs::find(rootfs, &oci);
        let json = serde_json::to_vec(&oci)?;
        berth_base::fsutil::atomic_write(&bundle_dir.join("config.json"), &json)?;
        let shim_opts = berth_runtime::shim::ShimOptions {
            id: id.clone(),
            bundle: bundle_dir.to_path_buf(),
            state_root: self.engine.runtime_root(),
            socket: self.engine.shim_socket(&id),
            log_path: bundle_dir.join("log.json"),
            log_max_size: self.engine.cfg.log_max_size,
            log_max_files: 1,
            exit_file: bundle_dir.join("exit.json"),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            monitor: None,
            private_parents: Vec::new(),
        };
        let spawned = berth_runtime::shim::spawn(&self.engine.exe, &shim_opts)?;
        let mut child = spawned.child;
        let result = drive(&self.engine.rt, &shim_opts.socket, &self.cancel, output);
        let _ = child.wait();
        stubs.remove(rootfs);
        Ok(result?)
    }
}

/// Undoes a step's network attachment when the step is over, however it ends.
struct StepNetwork<'a>(&'a Engine, Option<&'a crate::record::ContainerRecord>);

impl Drop for StepNetwork<'_> {
    fn drop(&mut self) {
        if let Some(rec) = self.1 {
            for e in self.0.networks.detach(rec) {
                tracing::warn!(step = %rec.id, error = %e, "build step network teardown");
            }
        }
    }
}

/// Starts the step and copies its output until it exits; kills it on cancellation. Runs on
/// a builder thread and drives the shim connection on the daemon's runtime one event at a
/// time: `output` may block (it sends progress to the client), so it is never called
/// inside the runtime.
fn drive(
    rt: &tokio::runtime::Handle,
    socket: &Path,
    cancel: &AtomicBool,
    output: &mut dyn FnMut(OutputStream, &[u8]),
) -> Result<i32, berth_runtime::Error> {
    let (mut control, mut events) = rt.block_on(async {
        let (shim, _) = ShimClient::connect_and_start(socket, Streams::OUTPUT).await?;
        Ok::<_, berth_runtime::Error>(shim.split())
    })?;
    let mut killed = false;
    loop {
        // `next` is cancel-safe: a timeout never loses output.
        let ev = match rt.block_on(async { tokio::time::timeout(Duration::from_millis(200), events.next()).await }) {
            Ok(ev) => ev?,
            Err(_) => {
                if cancel.load(Ordering::Relaxed) && !killed {
                    let _ = rt.block_on(control.signal(9));
                    killed = true;
                }
                continue;
            }
        };
        match ev {
            Some(ShimEvent::Output { stream: berth_runtime::logs::Stream::Stdout, data }) => {
                output(OutputStream::Stdout, &data)
            }
            Some(ShimEvent::Output { stream: berth_runtime::logs::Stream::Stderr, data }) => {
                output(OutputStream::Stderr, &data)
            }
            Some(ShimEvent::Exited { code }) => return Ok(code),
            Some(ShimEvent::Failed { message }) => return Err(berth_runtime::Error::Refused(message)),
            Some(_) => {}
            None => return Err(berth_runtime::Error::ShimGone { during: "while the build step ran" }),
        }
        if cancel.load(Ordering::Relaxed) && !killed {
            let _ = rt.block_on(control.signal(9));
            killed = true;
        }
    }
}

/// Where the build context comes from.
pub enum ContextSource {
    /// A directory on this machine (berth's CLI talking to a local daemon).
    Dir(std::path::PathBuf),
    /// A tar stream uploaded by the client.
    Tar(Box<dyn Read + Send>),
    /// `remote=`: a git repository, or a URL of a tarball or of a lone Dockerfile.
    Remote(String),
    /// A directory synced from a BuildKit client's session (built as [`ContextSource::Dir`];
    /// the build history tells them apart).
    Session(std::path::PathBuf),
}

impl ContextSource {
    /// The context's kind, as the build history names it.
    pub fn kind(&self) -> &'static str {
        match self {
            ContextSource::Dir(_) => "dir",
            ContextSource::Tar(_) => "tar",
            ContextSource::Remote(_) => "remote",
            ContextSource::Session(_) => "session",
        }
    }
}

/// Downloads for the builder (`ADD <url>`, remote contexts) with reqwest, driven from the
/// builder's blocking threads through the daemon's runtime.
pub struct HttpFetcher {
    handle: tokio::runtime::Handle,
    /// Made on the first download: most builds download nothing.
    client: std::sync::OnceLock<reqwest::Client>,
    cancel: Arc<AtomicBool>,
}

impl HttpFetcher {
    /// A fetcher that gives up when `cancel` becomes true.
    pub fn new(handle: tokio::runtime::Handle, cancel: Arc<AtomicBool>) -> HttpFetcher {
        HttpFetcher { handle, client: std::sync::OnceLock::new(), cancel }
    }

    fn client(&self) -> Result<&reqwest::Client, DownloadError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        // reqwest is built without a default crypto provider (ring instead of aws-lc-rs);
        // installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(DownloadError::Client)?;
        Ok(self.client.get_or_init(|| client))
    }
}

impl berth_build::executor::Fetcher for HttpFetcher {
    fn fetch(&self, url: &str, dest: &Path) -> Result<berth_build::executor::Fetched, BoxError> {
        use tokio::io::AsyncWriteExt;
        let transfer = |op, source| DownloadError::Transfer { op, url: url.to_owned(), source };
        let file_err = |op, source| DownloadError::File { op, path: dest.to_path_buf(), source };
        let fetched: Result<_, DownloadError> = self.handle.block_on(async {
            let mut resp = self.client()?.get(url).send().await.map_err(|e| transfer("GET", e))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(DownloadError::Status { url: url.to_owned(), status });
            }
            let header = |name: reqwest::header::HeaderName| {
                resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
            };
            let modified = header(reqwest::header::LAST_MODIFIED)
                .and_then(|v| chrono::DateTime::parse_from_rfc2822(&v).ok())
                .map(std::time::SystemTime::from);
            let filename = header(reqwest::header::CONTENT_DISPOSITION).and_then(|v| {
                v.split(';').find_map(|p| p.trim().strip_prefix("filename=").map(|f| f.trim_matches('"').to_owned()))
            });
            let mut file = tokio::fs::File::create(dest).await.map_err(|e| file_err("create", e))?;
            while let Some(chunk) = resp.chunk().await.map_err(|e| transfer("read", e))? {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(DownloadError::Cancelled);
                }
                file.write_all(&chunk).await.map_err(|e| file_err("write", e))?;
            }
            file.flush().await.map_err(|e| file_err("write", e))?;
            Ok(berth_build::executor::Fetched { modified, filename })
        });
        Ok(fetched?)
    }
}

/// The legacy builder's message for a RUN step that failed, `The command '/bin/sh -c exit
/// 1' returned a non-zero code: 1`, and the exit code.
fn legacy_run_failure(e: &berth_build::Error) -> Option<(String, i32)> {
    match e {
        berth_build::Error::Step { source, .. } => legacy_run_failure(source),
        berth_build::Error::RunFailed { command, code, .. } => {
            Some((format!("The command '{command}' returned a non-zero code: {code}"), *code))
        }
        _ => None,
    }
}

/// A step's output as the legacy builder streams it: stdout as it is, stderr wrapped in
/// the bright-red escape codes dockerd's stderr formatter puts around each write.
fn legacy_output(stream: berth_build::executor::OutputStream, data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    match stream {
        berth_build::executor::OutputStream::Stdout => text.into_owned(),
        berth_build::executor::OutputStream::Stderr => format!("\x1b[91m{text}\x1b[0m"),
    }
}

/// Puts the legacy builder's text in step order. That stream cannot say which step a line
/// belongs to, so while stages build at the same time, the text of a later step is held
/// back until every earlier step is done: docker's clients see what the legacy builder
/// would have printed, the first running step live.
#[derive(Default)]
struct LegacyOrder {
    /// The step whose text goes out as it comes (1-based; 0 before the first).
    current: usize,
    /// Text held back, by step.
    held: std::collections::BTreeMap<usize, Vec<String>>,
    /// Steps that finished while held back.
    finished: std::collections::BTreeSet<usize>,
}

impl LegacyOrder {
    /// Takes one piece of text of step `index` (`done` for its last); returns what may be
    /// sent now, in order.
    fn push(&mut self, index: usize, text: String, done: bool) -> Vec<String> {
        if self.current == 0 {
            self.current = 1;
        }
        self.held.entry(index).or_default().push(text);
        if done {
            self.finished.insert(index);
        }
        let mut out = Vec::new();
        loop {
            out.extend(self.held.remove(&self.current).unwrap_or_default());
            if self.finished.remove(&self.current) {
                self.current += 1;
            } else {
                return out;
            }
        }
    }

    /// Everything still held back (a failed build's stopped stages), in step order.
    fn drain(&mut self) -> Vec<String> {
        std::mem::take(&mut self.held).into_values().flatten().collect()
    }
}

/// A scratch directory removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stream_msg(text: impl Into<String>) -> berth_api::JsonMessage {
    berth_api::JsonMessage { stream: Some(text.into()), ..Default::default() }
}

/// A `remote=` context: a git checkout, a downloaded tarball, or a downloaded text file
/// that becomes the Dockerfile of an otherwise empty context (Docker's three cases).
fn open_remote_context(
    url: &str,
    scratch: &Path,
    work_root: &Path,
    dockerfile: &str,
    fetcher: &HttpFetcher,
) -> Result<(berth_build::context::Context, String, String), berth_build::Error> {
    use berth_build::Error as BuildError;
    use berth_build::executor::Fetcher;
    let io = |op, path: &Path| {
        let path = path.display().to_string();
        move |source| BuildError::Io { op, path, source }
    };
    if berth_build::remote::is_git_url(url) {
        let co = berth_build::remote::git_checkout(url, &scratch.join("tree"), false)?;
        return berth_build::frontend::open_context(&co.root, dockerfile);
    }
    if !berth_build::remote::is_http_url(url) {
        let unsupported = BuildError::UnsupportedRemoteContext { url: url.to_owned() };
        return Err(BuildError::PrepareContext(Box::new(unsupported)));
    }
    std::fs::create_dir_all(scratch).map_err(io("create", scratch))?;
    let download = scratch.join("download");
    fetcher.fetch(url, &download).map_err(|e| BuildError::PrepareContext(Box::new(BuildError::Fetch(e))))?;
    let mut head = [0u8; 512];
    let n = std::fs::File::open(&download).and_then(|mut f| f.read(&mut head)).map_err(io("read", &download))?;
    let head = &head[..n];
    let archive = head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z'])
        || (head.len() >= 262 && &head[257..262] == b"ustar");
    if archive {
        let mut f: Box<dyn Read + Send> = Box::new(std::fs::File::open(&download).map_err(io("open", &download))?);
        return berth_build::frontend::open_tar_context(&mut f, work_root, dockerfile);
    }
    let dir = scratch.join("context");
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    std::fs::rename(&download, dir.join("Dockerfile")).map_err(io("rename", &download))?;
    berth_build::frontend::open_context(&dir, "Dockerfile")
}

impl Engine {
    /// Runs a build to the end, sending Docker's progress messages to `tx`. Returns the
    /// image id. The build stops when `cancel` is set (the client went away).
    pub async fn build(
        self: &Arc<Self>,
        q: berth_api::query::Build,
        source: ContextSource,
        auths: berth_registry::client::AuthConfigs,
        tx: tokio::sync::mpsc::Sender<berth_api::JsonMessage>,
        cancel: Arc<AtomicBool>,
    ) -> crate::error::Result<String> {
        use crate::error::Error;
        let engine = self.clone();
        let handle = tokio::runtime::Handle::current();
        super::blocking(move || {
            let send = |m: berth_api::JsonMessage| {
                let _ = tx.blocking_send(m);
            };
            let work_root = engine.cfg.data_root.join("builder");
            std::fs::create_dir_all(&work_root).map_err(|e| Error::io("create builder dir", e))?;
            let mut tags = Vec::new();
            for t in &q.tags {
                let r = berth_base::Reference::parse(t)
                    .map_err(|e| Error::InvalidArgument(format!("invalid tag {t:?}: {e}")))?
                    .with_default_tag();
                tags.push(r);
            }
            let dockerfile = q.dockerfile.clone().unwrap_or_else(|| "Dockerfile".to_owned());
            // A session's Dockerfile comes as its path in the synced directory; the history
            // shows the name the client gave.
            let shown = match &source {
                ContextSource::Session(_) => {
                    Path::new(&dockerfile).file_name().map_or(dockerfile.clone(), |n| n.to_string_lossy().into_owned())
                }
                _ => dockerfile.clone(),
            };
            let history =
                super::build_history::Recorder::start(&engine.cfg.data_root, q.tags.clone(), shown, source.kind())?;
            // Whether the solver stopped because the build was cancelled; the solver sets
            // `cancel` itself when a step fails (to stop the others), so the flag alone
            // cannot tell a failed build from a cancelled one.
            let solver_cancelled = std::cell::Cell::new(None);
            let result = (|| {
                let fetcher = HttpFetcher::new(handle.clone(), cancel.clone());
                let scratch = ScratchDir(work_root.join(format!("remote-{}", berth_base::new_id())));
                // A tar context is unpacked (safely) into a scratch dir that the context
                // removes when it is dropped.
                let (ctx, text, name) = match source {
                    ContextSource::Dir(d) | ContextSource::Session(d) => {
                        berth_build::frontend::open_context(&d, &dockerfile)
                    }
                    ContextSource::Tar(mut r) => build_frontend::open_tar_context(&mut r, &work_root, &dockerfile),
                    ContextSource::Remote(url) => {
                        send(stream_msg(format!("Fetching the build context from {url}\n")));
                        open_remote_context(&url, &scratch.0, &work_root, &dockerfile, &fetcher)
                    }
                }
                .map_err(|e| match e {
                    // dockerd answers a context without its Dockerfile with a 500.
                    berth_build::Error::DockerfileNotFound { .. } => Error::Internal(e.to_string()),
                    e => Error::InvalidArgument(e.to_string()),
                })?;
                let plan =
                    berth_build::frontend::plan(&text, &name).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                // Missing base images are pulled first (all of them with --pull).
                engine.pull_build_bases(&handle, &plan, q.pull, q.platform.as_deref(), &auths, &|t| {
                    if !q.quiet {
                        send(stream_msg(t))
                    }
                })?;
                let cache = berth_build::cache::BuildCache::open(&engine.cfg.data_root)?;
                let exec = ShimExecutor::new(engine.clone(), cancel.clone());
                let solver = berth_build::solver::Solver {
                    images: &engine.images,
                    cache: &cache,
                    exec: &exec,
                    fetch: &fetcher,
                    work_root: work_root.clone(),
                    cache_mounts: engine.cache_mounts_dir(),
                    cancel: &cancel,
                    from_roots: Default::default(),
                };
                let req = berth_build::solver::BuildRequest {
                    dockerfile: text.clone(),
                    dockerfile_name: name,
                    tags: tags.clone(),
                    build_args: q.build_args.clone(),
                    target: q.target.clone(),
                    no_cache: q.no_cache,
                    labels: q.labels.clone(),
                    network: match q.network_mode.as_deref() {
                        Some("none") => Some(berth_build::executor::Network::None),
                        Some("host") => Some(berth_build::executor::Network::Host),
                        None | Some("") | Some("default") | Some("bridge") => None,
                        Some(other) => {
                            return Err(Error::InvalidArgument(format!(
                                "network mode {other:?} not supported by buildkit"
                            )));
                        }
                    },
                    secrets: q.secrets.iter().map(|(k, v)| (k.clone(), std::path::PathBuf::from(v))).collect(),
                    ssh: q.ssh.iter().map(|(k, v)| (k.clone(), std::path::PathBuf::from(v))).collect(),
                    platform: q.platform.clone(),
                    no_cache_filter: q.no_cache_filter.clone(),
                    allow: q.allow.clone(),
                    shm_size: q.shm_size.unwrap_or(0),
                    extra_hosts: q.extra_hosts.clone(),
                    cache_from: (!q.cache_from.is_empty()).then(|| {
                        q.cache_from.iter().filter_map(|n| engine.images.resolve(n).ok()).map(|i| i.diff_ids).collect()
                    }),
                };
                let (quiet, records) = (q.quiet, q.progress_records);
                let legacy = std::sync::Mutex::new(LegacyOrder::default());
                let on_event = |ev: berth_build::solver::Event| {
                    use berth_build::solver::EventKind;
                    history.event(&ev);
                    if quiet {
                        return;
                    }
                    if records {
                        let mut p = berth_api::query::BuildProgress { index: ev.index, ..Default::default() };
                        match ev.kind {
                            EventKind::Step { total, stage, text, stage_index, position } => {
                                (p.event, p.total, p.stage, p.text) = ("start".into(), Some(total), stage, Some(text));
                                (p.stage_index, p.position) = (Some(stage_index), Some(position));
                            }
                            EventKind::Cached => p.event = "cached".into(),
                            EventKind::Output(_, data) => {
                                (p.event, p.data) = ("output".into(), Some(String::from_utf8_lossy(&data).into_owned()))
                            }
                            EventKind::StepDone { seconds } => (p.event, p.seconds) = ("done".into(), Some(seconds)),
                            EventKind::Failed => p.event = "error".into(),
                        }
                        send(berth_api::JsonMessage {
                            id: Some(berth_api::query::BUILD_PROGRESS_ID.to_owned()),
                            aux: serde_json::to_value(&p).ok(),
                            ..Default::default()
                        });
                        return;
                    }
                    let done = matches!(ev.kind, EventKind::StepDone { .. });
                    let text = match ev.kind {
                        EventKind::Step { total, text, .. } => format!("Step {}/{total} : {text}\n", ev.index),
                        EventKind::Cached => " ---> Using cache\n".to_owned(),
                        EventKind::Output(stream, data) => legacy_output(stream, &data),
                        EventKind::StepDone { seconds } => format!(" ---> Done in {seconds:.2}s\n"),
                        // The error message that ends the stream says what failed.
                        EventKind::Failed => return,
                    };
                    let mut order = legacy.lock().unwrap_or_else(|p| p.into_inner());
                    for t in order.push(ev.index, text, done) {
                        send(stream_msg(t));
                    }
                };
                let built = solver.build(&plan, &req, &ctx, &on_event);
                for t in legacy.lock().unwrap_or_else(|p| p.into_inner()).drain() {
                    send(stream_msg(t));
                }
                solver.cleanup();
                solver_cancelled.set(Some(matches!(built, Err(berth_build::Error::Cancelled))));
                built.map_err(|e| match (legacy_run_failure(&e), e.kind()) {
                    // The legacy builder's words, which its API clients match on, with the
                    // command's exit code, which the docker CLI exits with; sent here as
                    // the stream's last message because only the stream carries the code.
                    (Some((m, code)), _) if !records => {
                        send(berth_api::JsonMessage {
                            error: Some(m.clone()),
                            error_detail: Some(berth_api::ErrorBody { message: m.clone(), code: Some(code.into()) }),
                            ..Default::default()
                        });
                        Error::InvalidArgument(m)
                    }
                    (_, berth_base::ErrorKind::InvalidArgument) => Error::InvalidArgument(e.to_string()),
                    _ => Error::Internal(e.to_string()),
                })
            })();
            let img = match result {
                Ok(img) => {
                    history.finish(Ok(&img.id.to_string()));
                    img
                }
                Err(e) => {
                    let status = if solver_cancelled.get().unwrap_or_else(|| cancel.load(Ordering::Relaxed)) {
                        berth_api::client::builds::BUILD_CANCELED
                    } else {
                        berth_api::client::builds::BUILD_FAILED
                    };
                    history.finish(Err((status, e.to_string())));
                    return Err(e);
                }
            };
            let id = img.id.to_string();
            send(berth_api::JsonMessage { aux: Some(serde_json::json!({ "ID": id })), ..Default::default() });
            if !q.quiet {
                send(stream_msg(format!("Successfully built {}\n", berth_base::short_id(&id))));
                for t in &tags {
                    send(stream_msg(format!("Successfully tagged {}\n", t.familiar())));
                }
            }
            Ok(id)
        })
        .await
    }
}

/// What `builder prune` removed.
pub struct PruneReport {
    /// Cache entries removed.
    pub removed: Vec<String>,
    /// Bytes freed on disk.
    pub reclaimed: u64,
}

pub(crate) fn dir_size(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum()).unwrap_or(0)
}

impl Engine {
    fn cache_mounts_dir(&self) -> std::path::PathBuf {
        self.cfg.data_root.join("builder-cache-mounts")
    }

    /// `POST /build/prune`: without `all`, entries whose layers are gone and entries older
    /// than `until` (seconds); with `all`, every entry and every `RUN --mount=type=cache`
    /// directory. Either way, session contexts no build holds (older than `until`).
    /// Layers themselves belong to images and go with them.
    pub async fn builder_prune(self: &Arc<Self>, all: bool, until: Option<i64>) -> crate::error::Result<PruneReport> {
        let engine = self.clone();
        super::blocking(move || {
            let cache = berth_build::cache::BuildCache::open(&engine.cfg.data_root)?;
            let now = chrono::Utc::now().timestamp();
            let mut removed = Vec::new();
            for (key, _created, last_used, state) in cache.entries() {
                let stale = state.as_ref().is_none_or(|s| !s.layers.iter().all(|l| engine.images.has_layer(l)));
                let old = until.is_some_and(|u| last_used < now - u);
                if all || stale || old {
                    cache.remove(&key)?;
                    removed.push(key);
                }
            }
            let mut reclaimed = 0;
            if all && let Ok(rd) = std::fs::read_dir(engine.cache_mounts_dir()) {
                for e in rd.flatten() {
                    reclaimed += dir_size(&e.path());
                    let _ = std::fs::remove_dir_all(e.path());
                    removed.push(format!("cachemount:{}", e.file_name().to_string_lossy()));
                }
            }
            // Contexts synced from BuildKit sessions that no running build holds.
            let contexts = super::build_contexts::prune(&engine.cfg.data_root, until);
            removed.extend(contexts.removed.into_iter().map(|n| format!("session:{n}")));
            reclaimed += contexts.reclaimed;
            Ok(PruneReport { removed, reclaimed })
        })
        .await
    }

    /// The build cache as `GET /system/df` lists it: step entries (their layers are
    /// accounted to images) and cache-mount directories with their sizes.
    pub async fn build_cache_usage(self: &Arc<Self>) -> crate::error::Result<Vec<serde_json::Value>> {
        let engine = self.clone();
        super::blocking(move || {
            let cache = berth_build::cache::BuildCache::open(&engine.cfg.data_root)?;
            let ts = |t: i64| chrono::DateTime::from_timestamp(t, 0).map(|d| d.to_rfc3339()).unwrap_or_default();
            let mut out: Vec<serde_json::Value> = cache
                .entries()
                .into_iter()
                .map(|(key, created, used, _)| {
                    serde_json::json!({
                        "ID": &key[key.len().saturating_sub(25)..], "Parent": "", "Type": "regular",
                        "Description": "build step", "InUse": false, "Shared": true, "Size": 0,
                        "CreatedAt": ts(created), "LastUsedAt": ts(used), "UsageCount": 1,
                    })
                })
                .collect();
            if let Ok(rd) = std::fs::read_dir(engine.cache_mounts_dir()) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    out.push(serde_json::json!({
                        "ID": &name[..name.len().min(25)], "Parent": "", "Type": "exec.cachemount",
                        "Description": "cached mount (RUN --mount=type=cache)", "InUse": false, "Shared": false,
                        "Size": dir_size(&e.path()), "CreatedAt": "", "LastUsedAt": "", "UsageCount": 1,
                    }));
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::LegacyOrder;

    #[test]
    fn later_steps_wait_for_earlier_ones() {
        let mut o = LegacyOrder::default();
        assert_eq!(o.push(1, "s1".into(), false), ["s1"]);
        assert!(o.push(3, "s3".into(), false).is_empty(), "step 3 waits for 1 and 2");
        assert_eq!(o.push(1, "d1".into(), true), ["d1"]);
        assert_eq!(o.push(2, "s2".into(), false), ["s2"]);
        assert!(o.push(3, "d3".into(), true).is_empty());
        assert_eq!(o.push(2, "d2".into(), true), ["d2", "s3", "d3"]);
        assert!(o.push(5, "s5".into(), false).is_empty());
        assert_eq!(o.drain(), ["s5"]);
    }
}
