//! `POST /build?version=2`: the docker CLI's BuildKit build (20.10 with `DOCKER_BUILDKIT=1`).
//! The context comes through the client's session (`remote=client-session`): the
//! Dockerfile's directory, the context's `.dockerignore`, then the context with those
//! patterns excluded, each synced incrementally into a directory kept per session shared
//! key. Then berth's builder runs as for the legacy `/build`, and its step records go back
//! as BuildKit's `StatusResponse`s in `aux` messages with id `moby.buildkit.trace` (the
//! protobuf bytes, which JSON shows as base64), as dockerd streams them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use berth_api::JsonMessage;
use berth_api::query::{self, BuildProgress};
use bytes::Bytes;
use prost::Message;

use super::filesync::{self, SyncRequest, Synced};
use super::names::VertexNames;
use super::proto::{StatusResponse, Timestamp, Vertex, VertexLog, VertexStatus};
use super::session::{Session, Sessions};
use crate::engine::{ContextSource, Engine};
use crate::error::{Error, Result};
use crate::server::reply::{self, ApiResult};

/// `remote=` value saying the context comes through the session.
pub const CLIENT_SESSION: &str = "client-session";
/// The `aux` id of BuildKit status records.
pub const TRACE_ID: &str = "moby.buildkit.trace";
/// The `aux` id of the built image's id.
pub const IMAGE_ID: &str = "moby.image.id";
/// How long a build waits for the session it names to connect.
const SESSION_WAIT: Duration = Duration::from_secs(10);

/// The parameters of `/build` that only BuildKit builds have.
#[derive(Debug, Default, PartialEq, serde::Deserialize)]
pub struct V2Query {
    /// `version`: `2` asks for BuildKit.
    #[serde(default)]
    pub version: String,
    /// `session`: the session that serves the context and secrets.
    #[serde(default)]
    pub session: String,
    /// `buildid`: names the build for `/build/cancel`.
    #[serde(default)]
    pub buildid: String,
}

impl V2Query {
    /// Decodes the query; `None` for a legacy build.
    pub fn decode(q: Option<&str>) -> Result<Option<V2Query>> {
        let v: V2Query = reply::query(q)?;
        Ok((v.version == "2").then_some(v))
    }
}

/// Where a build's status records go.
pub(super) enum Sink {
    /// `aux` messages of `/build?version=2`'s JSON stream.
    Json(tokio::sync::mpsc::Sender<JsonMessage>),
    /// The `Status` stream of the control API.
    Status(tokio::sync::mpsc::Sender<StatusResponse>),
}

/// One build's progress as BuildKit's status records.
pub(super) struct Trace {
    sink: Sink,
    build_id: String,
    /// Step vertices by step index, as last sent.
    steps: HashMap<usize, Vertex>,
    /// The last step that started, which an error is reported on.
    last_step: Option<usize>,
    /// BuildKit's names for the plan's vertices, once the plan is known.
    names: Option<VertexNames>,
    /// Steps that make no vertex (ENV, ARG, a FROM of a stage), by index.
    hidden: HashSet<usize>,
    /// `[internal] load metadata for …` vertices still open.
    metadata: Vec<Vertex>,
    /// Manifest digests of the bases this build pulled, by tagged name.
    pulled: HashMap<String, String>,
    /// A pulled manifest's digest, until its `Status:` line names the image.
    pull_digest: Option<String>,
}

impl Trace {
    /// A trace of build `build_id` (which makes its vertex digests) into `sink`.
    pub(super) fn new(sink: Sink, build_id: String) -> Trace {
        Trace {
            sink,
            build_id,
            steps: HashMap::new(),
            last_step: None,
            names: None,
            hidden: HashSet::new(),
            metadata: Vec::new(),
            pulled: HashMap::new(),
            pull_digest: None,
        }
    }

    fn digest(&self, key: &str) -> String {
        berth_base::Digest::of(format!("{}/{key}", self.build_id).as_bytes()).to_string()
    }

    async fn send(&self, sr: StatusResponse) {
        match &self.sink {
            Sink::Json(tx) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(sr.encode_to_vec());
                let aux = Some(serde_json::Value::String(b64));
                let _ = tx.send(JsonMessage { id: Some(TRACE_ID.into()), aux, ..Default::default() }).await;
            }
            Sink::Status(tx) => {
                let _ = tx.send(sr).await;
            }
        }
    }

    /// A vertex that only says something (an option berth ignores), started and done.
    pub(super) async fn note(&self, key: &str, name: &str) {
        let v = self.begin(key, name).await;
        self.end(v, None).await
    }

    async fn vertex(&self, v: Vertex) {
        self.send(StatusResponse { vertexes: vec![v], ..Default::default() }).await
    }

    /// A vertex of the daemon's own work (`[internal] …`, `exporting to image`), started.
    async fn begin(&self, key: &str, name: &str) -> Vertex {
        let v = Vertex {
            digest: self.digest(key),
            name: name.to_owned(),
            started: Some(Timestamp::now()),
            ..Default::default()
        };
        self.vertex(v.clone()).await;
        v
    }

    async fn end(&self, mut v: Vertex, error: Option<String>) {
        v.completed = Some(Timestamp::now());
        v.error = error.unwrap_or_default();
        self.vertex(v).await
    }

    async fn status(&self, v: &Vertex, id: &str, current: i64, done: bool) {
        let now = Timestamp::now();
        let s = VertexStatus {
            id: id.to_owned(),
            vertex: v.digest.clone(),
            current,
            timestamp: Some(now),
            started: v.started,
            completed: done.then_some(now),
            ..Default::default()
        };
        self.send(StatusResponse { statuses: vec![s], ..Default::default() }).await
    }

    async fn log(&self, digest: &str, stream: i64, msg: Vec<u8>) {
        let l = VertexLog { vertex: digest.to_owned(), timestamp: Some(Timestamp::now()), stream, msg };
        self.send(StatusResponse { logs: vec![l], ..Default::default() }).await
    }

    /// Names the vertices as BuildKit's frontend names them for this plan, and opens
    /// its `[internal] load metadata for …` vertices.
    async fn set_names(&mut self, names: VertexNames) {
        for (i, m) in names.metadata().iter().enumerate() {
            let v = self.begin(&format!("metadata-{i}"), &format!("[internal] load metadata for {m}")).await;
            self.metadata.push(v);
        }
        self.names = Some(names);
    }

    /// Ends the open metadata vertices; the first carries `error`, if any.
    async fn end_metadata(&mut self, mut error: Option<String>) {
        for v in std::mem::take(&mut self.metadata) {
            self.end(v, error.take()).await;
        }
    }

    /// A line of the bases' pulls: logged on the metadata vertex; a pull's `Digest:`
    /// and `Status: … for <image>` lines say which manifest the FROM uses.
    async fn pull_line(&mut self, text: &str) {
        let line = text.trim_end();
        if let Some(d) = line.strip_prefix("Digest: ") {
            self.pull_digest = Some(d.trim().to_owned());
        } else if let Some(name) = line.strip_prefix("Status: ").and_then(|s| s.rsplit(" for ").next())
            && let Some(d) = self.pull_digest.take()
            && let Ok(r) = berth_base::Reference::parse(name.trim())
        {
            self.pulled.insert(r.with_default_tag().to_string(), d);
        }
        if let Some(v) = self.metadata.first() {
            let d = v.digest.clone();
            self.log(&d, 1, format!("{line}\n").into_bytes()).await;
        }
    }

    /// The vertex name of a starting step: BuildKit's when the plan is known (`None`
    /// when BuildKit makes no vertex of it), else the builder's numbering.
    fn step_name(&self, p: &BuildProgress) -> Option<String> {
        let text = p.text.clone().unwrap_or_default();
        if let (Some(names), Some(si), Some(pos)) = (&self.names, p.stage_index, p.position) {
            let pulled = |t: &str| self.pulled.get(t).cloned();
            return names.step(si, pos, &text, &pulled);
        }
        let total = p.total.unwrap_or(0);
        Some(match &p.stage {
            Some(s) => format!("[{s} {}/{total}] {text}", p.index),
            None => format!("[{}/{total}] {text}", p.index),
        })
    }

    /// One of the builder's step records.
    async fn step(&mut self, p: BuildProgress) {
        let now = Some(Timestamp::now());
        if p.event != "start" && self.hidden.contains(&p.index) {
            return;
        }
        match p.event.as_str() {
            "start" => {
                self.end_metadata(None).await;
                let Some(name) = self.step_name(&p) else {
                    self.hidden.insert(p.index);
                    return;
                };
                let inputs = self.last_step.map(|i| self.digest(&format!("step-{i}"))).into_iter().collect();
                let v = Vertex {
                    digest: self.digest(&format!("step-{}", p.index)),
                    inputs,
                    name,
                    started: now,
                    ..Default::default()
                };
                self.last_step = Some(p.index);
                self.steps.insert(p.index, v.clone());
                self.vertex(v).await;
            }
            "cached" => {
                if let Some(v) = self.steps.get_mut(&p.index) {
                    v.cached = true;
                    let v = v.clone();
                    self.vertex(v).await;
                }
            }
            "output" => {
                let d = self.digest(&format!("step-{}", p.index));
                self.log(&d, 1, p.data.unwrap_or_default().into_bytes()).await;
            }
            "done" => {
                if let Some(mut v) = self.steps.remove(&p.index) {
                    v.completed = now;
                    self.vertex(v).await;
                }
            }
            // The error comes with the build's result, which names the failing step.
            "error" => self.last_step = Some(p.index),
            _ => {}
        }
    }

    /// The build failed: the step it failed in (or the last one) carries the error, or
    /// the metadata vertex when no step began (a base that could not be pulled).
    async fn fail(&mut self, message: &str) {
        if !self.metadata.is_empty() {
            return self.end_metadata(Some(message.to_owned())).await;
        }
        let v = self.last_step.and_then(|i| self.steps.remove(&i));
        if let Some(mut v) = v {
            v.completed = Some(Timestamp::now());
            v.error = message.to_owned();
            self.vertex(v).await;
        }
    }
}

/// The lines of a `.dockerignore`, as the patterns the client's file sync excludes.
fn exclude_patterns(text: &str) -> Vec<String> {
    berth_build::dockerignore::patterns(text)
}

/// Secret ids the Dockerfile's RUN steps mount.
fn secret_ids(plan: &berth_build::plan::Plan) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for stage in &plan.stages {
        for (_, _, step) in &stage.steps {
            if let berth_build::plan::Step::Run { mounts, .. } = step {
                for m in mounts {
                    if let berth_build::plan::RunMount::Secret { id, required, .. } = m {
                        out.push((id.clone(), *required));
                    }
                }
            }
        }
    }
    out
}

/// The per-shared-key directories a session's syncs land in.
struct SyncDirs {
    root: PathBuf,
}

impl SyncDirs {
    fn new(data_root: &Path, shared_key: &str) -> SyncDirs {
        let key = berth_base::Digest::of(shared_key.as_bytes());
        SyncDirs { root: crate::engine::build_contexts::root(data_root).join(&key.hex()[..32]) }
    }
    fn dockerfile(&self) -> PathBuf {
        self.root.join("dockerfile")
    }
    fn ignore(&self) -> PathBuf {
        self.root.join("dockerignore")
    }
    fn context(&self) -> PathBuf {
        self.root.join("context")
    }
}

/// Syncs the context, runs the build and reports it on `trace`; returns the image id.
pub(super) async fn run(
    e: &Arc<Engine>,
    sessions: &Sessions,
    session: &Arc<Session>,
    mut q: query::Build,
    trace: &mut Trace,
    cancel: Arc<AtomicBool>,
) -> Result<String> {
    let dirs = SyncDirs::new(&e.cfg.data_root, &session.shared_key);
    let lock = sessions.key_lock(&session.shared_key);
    let _held = lock.lock().await;
    let root = dirs.root.clone();
    let _lease = tokio::task::spawn_blocking(move || crate::engine::build_contexts::lease(&root))
        .await
        .map_err(|err| Error::Internal(err.to_string()))?
        .map_err(|err| Error::io("lease the session's context", err))?;
    let dockerfile = q.dockerfile.clone().unwrap_or_else(|| "Dockerfile".to_owned());
    if dockerfile.contains('/') || dockerfile == ".." {
        return Err(Error::InvalidArgument(format!("invalid Dockerfile name {dockerfile:?}")));
    }
    let channel = session.channel().clone();
    let mut quiet_progress = |_: u64| {};
    // The Dockerfile (and a Dockerfile-specific ignore file beside it).
    let v = trace.begin("dockerfile", &format!("[internal] load build definition from {dockerfile}")).await;
    let req = SyncRequest {
        dir_name: "dockerfile".into(),
        includes: vec![dockerfile.clone(), format!("{dockerfile}.dockerignore")],
        ..Default::default()
    };
    let synced = filesync::sync(&channel, &req, &dirs.dockerfile(), &mut quiet_progress).await;
    trace.end(v.clone(), synced.as_ref().err().map(|e| e.to_string())).await;
    synced?;
    let df_path = dirs.dockerfile().join(&dockerfile);
    let text = std::fs::read_to_string(&df_path).map_err(|_| {
        Error::Internal(format!("failed to read dockerfile: open {dockerfile}: no such file or directory"))
    })?;
    // `.dockerignore`: the Dockerfile's own, else the context's.
    let v = trace.begin("dockerignore", "[internal] load .dockerignore").await;
    let own_ignore = std::fs::read_to_string(dirs.dockerfile().join(format!("{dockerfile}.dockerignore"))).ok();
    let ignore_text = match own_ignore {
        Some(t) => t,
        None => {
            let req = SyncRequest {
                dir_name: "context".into(),
                includes: vec![".dockerignore".into()],
                ..Default::default()
            };
            let synced = filesync::sync(&channel, &req, &dirs.ignore(), &mut quiet_progress).await;
            if let Err(err) = synced {
                trace.end(v, Some(err.to_string())).await;
                return Err(err.into());
            }
            std::fs::read_to_string(dirs.ignore().join(".dockerignore")).unwrap_or_default()
        }
    };
    trace.end(v, None).await;
    // The context.
    let v = trace.begin("context", "[internal] load build context").await;
    let req =
        SyncRequest { dir_name: "context".into(), excludes: exclude_patterns(&ignore_text), ..Default::default() };
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let mut progress = move |b: u64| {
        let _ = ptx.send(b);
    };
    let ctx_dir = dirs.context();
    let sync = filesync::sync(&channel, &req, &ctx_dir, &mut progress);
    tokio::pin!(sync);
    let synced = loop {
        tokio::select! {
            r = &mut sync => break r,
            Some(b) = prx.recv() => trace.status(&v, "transferring context:", b as i64, false).await,
        }
    };
    let synced: Synced = match synced {
        Ok(s) => s,
        Err(err) => {
            trace.end(v, Some(err.to_string())).await;
            return Err(err.into());
        }
    };
    trace.status(&v, "transferring context:", synced.bytes as i64, true).await;
    trace.end(v, None).await;
    tracing::info!(
        session = %session.id, entries = synced.entries, files = synced.files, bytes = synced.bytes,
        "build context synced: {} files transferred", synced.files
    );
    // Secrets the Dockerfile mounts, from the client's secrets provider.
    let plan = berth_build::frontend::plan(&text, &dockerfile).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let secrets_dir = tempfile_dir(&e.cfg.data_root.join("builder"))?;
    for (id, _required) in secret_ids(&plan) {
        if q.secrets.contains_key(&id) {
            continue;
        }
        if let Some(data) = session.secret(&id).await? {
            let p = secrets_dir.0.join(berth_base::Digest::of(id.as_bytes()).hex());
            write_secret(&p, &data)?;
            q.secrets.insert(id, p.display().to_string());
        }
    }
    // SSH agents the RUN steps mount, forwarded from the client's session.
    let agents = super::ssh::forward(session, &super::ssh::ssh_ids(&plan), &e.cfg.data_root.join("builder"))
        .await
        .map_err(|err| match err {
            super::ssh::ForwardError::Session(s) => Error::from(s),
            other => Error::InvalidArgument(other.to_string()),
        })?;
    for (id, sock) in &agents.sockets {
        q.ssh.insert(id.clone(), sock.display().to_string());
    }
    // Registry credentials for the bases, from the client's auth provider.
    let auths = session.registry_auths(&plan).await?;
    trace.set_names(VertexNames::new(&plan, q.target.as_deref())).await;
    q.dockerfile = Some(df_path.display().to_string());
    q.progress_records = true;
    q.quiet = false;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<JsonMessage>(256);
    let build = e.build(q.clone(), ContextSource::Session(dirs.context()), auths, tx, cancel);
    let relay = async {
        while let Some(m) = rx.recv().await {
            if m.id.as_deref() == Some(query::BUILD_PROGRESS_ID) {
                if let Some(p) = m.aux.and_then(|a| serde_json::from_value::<BuildProgress>(a).ok()) {
                    trace.step(p).await;
                }
            } else if let Some(text) = m.stream.or(m.status).filter(|_| trace.last_step.is_none()) {
                // Base image pulls, before the steps (the legacy builder's closing
                // "Successfully built" lines come after them and are left out).
                trace.pull_line(&text).await;
            }
        }
    };
    let (built, ()) = tokio::join!(build, relay);
    drop(secrets_dir);
    drop(agents);
    // Keep the synced contexts bounded; this one stays, as its lease is held.
    let data_root = e.cfg.data_root.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let pruned = crate::engine::build_contexts::bound(&data_root, Default::default());
        if !pruned.removed.is_empty() {
            tracing::info!(removed = ?pruned.removed, bytes = pruned.reclaimed, "session contexts trimmed");
        }
    })
    .await;
    let id = match built {
        Ok(id) => {
            trace.end_metadata(None).await;
            id
        }
        Err(err) => {
            let err = buildkit_words(err);
            trace.fail(err.to_string().lines().next().unwrap_or_default()).await;
            return Err(err);
        }
    };
    let v = trace.begin("export", "exporting to image").await;
    trace.status(&v, "exporting layers", 0, true).await;
    trace.status(&v, &format!("writing image {id}"), 0, true).await;
    for t in &q.tags {
        if let Ok(r) = berth_base::Reference::parse(t) {
            trace.status(&v, &format!("naming to {}", r.with_default_tag()), 0, true).await;
        }
    }
    trace.end(v, None).await;
    Ok(id)
}

/// A base that could not be pulled, as BuildKit's frontend words it: the name as
/// written, then the tagged name it resolved (`x: failed to resolve source metadata for
/// docker.io/library/x:latest: …`).
fn buildkit_words(err: Error) -> Error {
    const LEAD: &str = "failed to resolve source metadata for ";
    match err {
        Error::RegistryRefused { message, source } if message.starts_with(LEAD) => {
            let rest = &message[LEAD.len()..];
            let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
            let message = match berth_base::Reference::parse(name) {
                Ok(r) => format!("{}: {LEAD}{}: {why}", r.familiar(), r.with_default_tag()),
                Err(_) => message.clone(),
            };
            Error::RegistryRefused { message, source }
        }
        other => other,
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir(parent: &Path) -> Result<TempDir> {
    use std::os::unix::fs::DirBuilderExt;
    let p = parent.join(format!("secrets-{}", berth_base::new_id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&p)
        .map_err(|e| Error::io("create secrets dir", e))?;
    Ok(TempDir(p))
}

fn write_secret(p: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)
        .map_err(|e| Error::io("write secret", e))?;
    f.write_all(data).map_err(|e| Error::io("write secret", e))
}

/// `POST /build?version=2`: streams the build as BuildKit's status records, then the image
/// id (`moby.image.id`), or the error. A client that goes away, or whose session closes,
/// cancels the build; nothing is tagged then.
pub async fn build(
    e: Arc<Engine>,
    sessions: Sessions,
    raw: Option<&str>,
    v2: V2Query,
) -> ApiResult<axum::response::Response> {
    let q = query::Build::parse(raw.unwrap_or(""))?;
    match q.remote.as_deref() {
        Some(CLIENT_SESSION) => {}
        Some(other) => {
            return Err(Error::NotImplemented(format!(
                "BuildKit builds on berth take their context from the client's session; remote context {other:?} is not supported"
            ))
            .into());
        }
        None => return Err(Error::InvalidArgument("remote context is required for BuildKit builds".into()).into()),
    }
    if v2.session.is_empty() {
        return Err(Error::InvalidArgument("BuildKit builds need a session (session=)".into()).into());
    }
    let session = sessions.get(&v2.session, SESSION_WAIT).await.map_err(Error::from)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<JsonMessage>(256);
    let cancel = Arc::new(AtomicBool::new(false));
    let (watch_tx, watch_cancel, watch_session) = (tx.clone(), cancel.clone(), session.clone());
    let watcher = tokio::spawn(async move {
        tokio::select! {
            _ = watch_tx.closed() => tracing::debug!("build client went away: cancelling the build"),
            _ = watch_session.closed() => tracing::debug!("build session closed: cancelling the build"),
        }
        watch_cancel.store(true, Ordering::Relaxed);
    });
    let build_id = if v2.buildid.is_empty() { berth_base::new_id() } else { v2.buildid.clone() };
    let registered = sessions.register_build(&build_id, cancel.clone());
    tokio::spawn(async move {
        let _registered = registered;
        let mut trace = Trace::new(Sink::Json(tx.clone()), build_id);
        let result = tokio::select! {
            r = run(&e, &sessions, &session, q, &mut trace, cancel.clone()) => r,
            _ = session.closed() => Err(super::SessionError::Closed.into()),
        };
        watcher.abort();
        let m = match result {
            Ok(id) => JsonMessage {
                id: Some(IMAGE_ID.into()),
                aux: Some(serde_json::json!({ "ID": id })),
                ..Default::default()
            },
            Err(err) => {
                // The first line: the failing step's output is in its vertex's logs.
                let msg = err.to_string().lines().next().unwrap_or_default().to_owned();
                JsonMessage {
                    error: Some(msg.clone()),
                    error_detail: Some(berth_api::ErrorBody { message: msg, code: None }),
                    ..Default::default()
                }
            }
        };
        let _ = tx.send(m).await;
    });
    let encode = |m: JsonMessage| {
        let mut b = serde_json::to_vec(&m).unwrap_or_default();
        b.extend_from_slice(b"\r\n");
        Bytes::from(b)
    };
    // As the legacy route: a newline each second makes a vanished client fail a write,
    // which drops this stream and cancels the build.
    let body = futures_util::stream::unfold(Some(rx), move |rx| async move {
        let mut rx = rx?;
        tokio::select! {
            m = rx.recv() => m.map(|m| (Ok::<_, Infallible>(encode(m)), Some(rx))),
            _ = tokio::time::sleep(Duration::from_secs(1)) => Some((Ok(Bytes::from_static(b"\n")), Some(rx))),
        }
    });
    Ok(reply::streaming("application/json", body))
}

/// `POST /build/cancel?id=`: stops the build with that id, as the docker CLI asks when
/// interrupted. An unknown id is no error (dockerd's answer too).
pub async fn cancel(
    axum::Extension(sessions): axum::Extension<Sessions>,
    reply::Query(q): reply::Query<CancelQuery>,
) -> axum::http::StatusCode {
    sessions.cancel_build(&q.id);
    axum::http::StatusCode::OK
}

/// `POST /build/cancel`'s query.
#[derive(Debug, serde::Deserialize)]
pub struct CancelQuery {
    /// The build's id (`buildid=` of its `/build`).
    #[serde(default)]
    pub id: String,
}

/// `BTreeMap` of build args as BuildKit's frontend attributes name them (`build-arg:NAME`).
pub fn frontend_build_args(attrs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    attrs.iter().filter_map(|(k, v)| k.strip_prefix("build-arg:").map(|n| (n.to_owned(), v.clone()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_2_is_a_buildkit_build() {
        assert_eq!(V2Query::decode(Some("t=a&nocache=1")).unwrap(), None);
        let v = V2Query::decode(Some("version=2&session=abc&buildid=b1&remote=client-session")).unwrap().unwrap();
        assert_eq!((v.session.as_str(), v.buildid.as_str()), ("abc", "b1"));
        assert_eq!(V2Query::decode(Some("version=1")).unwrap(), None);
    }

    #[test]
    fn build_args_come_from_their_attributes() {
        let attrs = BTreeMap::from([("build-arg:A".into(), "1".into()), ("target".into(), "x".into())]);
        assert_eq!(frontend_build_args(&attrs), BTreeMap::from([("A".into(), "1".into())]));
    }

    #[tokio::test]
    async fn steps_become_vertices_with_logs() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let mut t = Trace::new(Sink::Json(tx), "b".into());
        let start = |i, text: &str| BuildProgress {
            index: i,
            event: "start".into(),
            total: Some(2),
            text: Some(text.into()),
            ..Default::default()
        };
        t.step(start(1, "FROM busybox")).await;
        t.step(BuildProgress { index: 1, event: "cached".into(), ..Default::default() }).await;
        t.step(start(2, "RUN echo hi")).await;
        t.step(BuildProgress { index: 2, event: "output".into(), data: Some("hi\n".into()), ..Default::default() })
            .await;
        t.fail("process \"/bin/sh -c echo hi\" did not complete successfully: exit code: 1").await;
        let mut got = Vec::new();
        while let Ok(m) = rx.try_recv() {
            assert_eq!(m.id.as_deref(), Some(TRACE_ID));
            let b64 = m.aux.unwrap().as_str().unwrap().to_owned();
            let raw = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            got.push(StatusResponse::decode(&raw[..]).unwrap());
        }
        assert_eq!(got[0].vertexes[0].name, "[1/2] FROM busybox");
        assert!(got[1].vertexes[0].cached);
        assert_eq!(got[2].vertexes[0].inputs, [got[0].vertexes[0].digest.clone()]);
        assert_eq!(got[3].logs[0].msg, b"hi\n");
        assert!(got[4].vertexes[0].error.contains("exit code: 1"));
        assert!(got[4].vertexes[0].completed.is_some());
    }
}
