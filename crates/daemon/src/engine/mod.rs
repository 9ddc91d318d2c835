//! The engine: berth's object store of containers (in memory, mirrored to state.db) on top
//! of the image store and the runtime. HTTP-free: the server module calls it and maps its
//! errors. Every operation that touches the disk or forks runs on the blocking pool.

pub mod archive;
mod build;
pub mod build_contexts;
mod build_history;
mod cgroups;
mod check;
mod commit;
mod create;
mod devices;
pub mod distribution;
pub mod events;
mod exec;
pub mod explore;
mod health;
mod images;
mod io;
mod lifecycle;
mod mount_stubs;
pub mod networks;
mod prune;
mod release;
mod restart;
mod runtime_state;
mod sandbox;
mod stats;
pub mod sysinfo;
mod table;
#[cfg(test)]
mod tests;
pub mod traits;
mod trash;
pub mod volumes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use berth_base::fsutil::FileLock;
use berth_image::ImageStore;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::record::{ContainerRecord, Status};
use crate::store::Store;
use traits::{RootfsStore, ShimLauncher, ShimProcesses};

pub use berth_api::detach::DetachKeys;
pub use build::{ContextSource, PruneReport};
pub use check::{Finding, FindingKind};
pub use commit::CommitRequest;
pub use events::{Event, EventFilter, EventType};
pub use exec::{ExecOptions, ExecSession, ExecState};
pub use images::{DiskUsage, ImageUsage};
pub use io::{AttachSlot, AttachStreams, LogOptions};
pub use lifecycle::{UpdateRequest, WaitCondition};
pub use prune::{ContainerPruneReport, ImagePruneReport};
pub use volumes::{VolumePruneReport, VolumeView};

/// What waiters observe about a container.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// How many runs have ended so far (wait `next-exit` waits for this to grow).
    pub exits: u64,
    /// Exit code of the last run.
    pub exit_code: i64,
    /// Whether the process runs now.
    pub running: bool,
    /// Whether the container has been removed.
    pub removed: bool,
}

/// One container: its record, a lock that serialises lifecycle operations, and the
/// channels that wake waiters and attached clients.
pub struct Container {
    /// Full id.
    pub id: String,
    rec: Mutex<ContainerRecord>,
    op: tokio::sync::Mutex<()>,
    events: watch::Sender<Events>,
    pending: Mutex<io::Pending>,
    /// The control connection to the running container's shim (signal, resize).
    control: tokio::sync::Mutex<Option<berth_runtime::ShimControl>>,
    /// Restart policy state: back-off, cancellation, the pending restart.
    restart: Mutex<restart::Backoff>,
    /// Set while `restart` stops the container to start it again: its exit then does not
    /// auto-remove a `--rm` container (dockerd's `HasBeenManuallyRestarted`).
    manual_restart: std::sync::atomic::AtomicBool,
}

impl Container {
    fn new(rec: ContainerRecord) -> Arc<Container> {
        let ev = Events {
            exits: 0,
            exit_code: rec.state.exit_code,
            running: rec.state.status == Status::Running,
            removed: false,
        };
        Arc::new(Container {
            id: rec.id.clone(),
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            events: watch::channel(ev).0,
            pending: Mutex::new(io::Pending::default()),
            control: tokio::sync::Mutex::new(None),
            restart: Mutex::new(restart::Backoff::default()),
            manual_restart: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A copy of the current record.
    pub fn snapshot(&self) -> ContainerRecord {
        match self.rec.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reads the current record in place, under its lock (no copy).
    fn read<R>(&self, f: impl FnOnce(&ContainerRecord) -> R) -> R {
        match self.rec.lock() {
            Ok(r) => f(&r),
            Err(p) => f(&p.into_inner()),
        }
    }

    fn update<R>(&self, f: impl FnOnce(&mut ContainerRecord) -> R) -> R {
        match self.rec.lock() {
            Ok(mut r) => f(&mut r),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// The container's name (without the leading `/`).
    pub fn name(&self) -> String {
        self.update(|r| r.name.clone())
    }

    /// Subscribes to state changes.
    pub fn subscribe(&self) -> watch::Receiver<Events> {
        self.events.subscribe()
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, restart::Backoff> {
        match self.restart.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        }
    }
}

/// The engine. Cheap to share behind an `Arc`.
pub struct Engine {
    /// Effective configuration.
    pub cfg: Config,
    /// The image store.
    pub images: Arc<ImageStore>,
    store: Store,
    containers: RwLock<table::Table<Container>>,
    /// Exec instances by id.
    execs: RwLock<HashMap<String, Arc<ExecSession>>>,
    /// Starts container shims.
    launcher: Arc<dyn ShimLauncher>,
    /// Mounts container roots.
    rootfs: Arc<dyn RootfsStore>,
    /// Volumes: records, data directories, users.
    volumes: volumes::VolumeStore,
    exe: PathBuf,
    /// The daemon's async runtime, for blocking threads (build steps) that talk to shims.
    rt: tokio::runtime::Handle,
    /// The events bus (`GET /events`).
    bus: events::EventBus,
    /// Networks and container attachments.
    networks: Arc<networks::Networks>,
    _lock: FileLock,
}

impl Engine {
    /// Opens the data root (taking its lock), the stores, and reconciles containers with
    /// the shims that are still alive.
    pub async fn open(cfg: Config) -> Result<Arc<Engine>> {
        Engine::open_with(cfg, None).await
    }

    /// [`Engine::open`] with the shim launcher and the root store replaced (tests); `None`
    /// uses the real ones.
    pub(crate) async fn open_with(
        cfg: Config,
        fakes: Option<(Arc<dyn ShimLauncher>, Arc<dyn RootfsStore>)>,
    ) -> Result<Arc<Engine>> {
        // The data root and the exec root's shim sockets and runtime state are root's
        // alone (modes set explicitly, not left to the umask); an older data root is
        // tightened here. The exec root itself stays traversable: it may hold the API socket.
        check::prepare_data_root(&cfg.data_root)
            .map_err(|e| Error::io(format!("prepare data root {}", cfg.data_root.display()), e))?;
        std::fs::create_dir_all(&cfg.exec_root)
            .map_err(|e| Error::io(format!("create {}", cfg.exec_root.display()), e))?;
        for d in [cfg.exec_root.join("s"), cfg.exec_root.join("runtime")] {
            berth_base::fsutil::create_dir_mode(&d, berth_base::fsutil::PRIVATE_DIR)
                .map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        // libcontainer's state on a tmpfs (see runtime_state.rs); the fakes of the engine's
        // tests run no libcontainer and leave no mount behind.
        if fakes.is_none() {
            let runtime = cfg.exec_root.join("runtime");
            match runtime_state::ensure_tmpfs(&runtime) {
                Ok(true) => tracing::debug!(dir = %runtime.display(), "mounted a tmpfs for the runtime's state"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(dir = %runtime.display(), error = %e, "runtime state stays on the exec root's filesystem")
                }
            }
        }
        // The `--init` executable, which containers bind-mount from here.
        berth_runtime::init::install(&cfg.exec_root)?;
        berth_runtime::shim::monitor::install(&cfg.exec_root)?;
        let lock_path = cfg.data_root.join("lock");
        let lock = FileLock::try_lock(&lock_path)
            .map_err(|e| Error::io(format!("lock {}", lock_path.display()), e))?
            .ok_or_else(|| {
            Error::Config(format!(
                "another berth daemon is using the data root {} (lock held on {})",
                cfg.data_root.display(),
                lock_path.display()
            ))
        })?;
        let root = cfg.data_root.clone();
        let max_layer_size = cfg.max_layer_size;
        let nets = Arc::new(networks::Networks::open(&cfg.data_root, &cfg.exec_root, &cfg.network)?);
        if fakes.is_none() {
            lifecycle::make_parent_mounts(&cfg);
            if let Err(e) = cgroups::prepare_cpuset_parent(berth_runtime::spec::CGROUP_PARENT) {
                tracing::warn!(error = %e, "containers' cpuset cgroups are filled one by one");
            }
        }
        let real = fakes.is_none();
        let (images, store, volumes) = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut images = ImageStore::open(&root)?.with_max_layer_size(max_layer_size);
            if real {
                images = images.with_detached_parent(&root.join("containers"));
            }
            if let Err(e) = images.gc() {
                tracing::warn!(error = %e, "image store garbage collection failed");
            }
            build_history::HistoryStore::open(&root)?.mark_interrupted()?;
            Ok((images, Store::open(&root)?, volumes::VolumeStore::open(&root)?))
        })
        .await
        .map_err(join_err)??;
        let exe = std::fs::read_link("/proc/self/exe").map_err(|e| Error::io("find own executable", e))?;
        let images = Arc::new(images);
        let (launcher, rootfs) = match fakes {
            Some(f) => f,
            None => (
                Arc::new(ShimProcesses::new(&exe, lifecycle::private_parents(&cfg))) as Arc<dyn ShimLauncher>,
                images.clone() as _,
            ),
        };
        let engine = Arc::new(Engine {
            cfg,
            images,
            store,
            containers: RwLock::new(table::Table::default()),
            execs: RwLock::new(HashMap::new()),
            launcher,
            rootfs,
            volumes,
            exe,
            rt: tokio::runtime::Handle::current(),
            bus: events::EventBus::default(),
            networks: nets,
            _lock: lock,
        });
        engine.restore().await?;
        trash::empty(&engine.cfg.data_root.join("containers"));
        engine.sweep_runtime_state();
        engine.volumes.unmount_idle();
        engine.stop_orphan_step_shims().await;
        let e = engine.clone();
        blocking(move || {
            e.clean_builder_scratch();
            Ok(())
        })
        .await?;
        Ok(engine)
    }

    /// Shims that belong to no container ran build steps of a daemon that died mid-build:
    /// their steps are killed (the shims then exit on their own).
    async fn stop_orphan_step_shims(&self) {
        let Ok(rd) = std::fs::read_dir(self.cfg.exec_root.join("s")) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".sock") else { continue };
            if self.get(id).is_ok() {
                continue;
            }
            if let Ok(mut shim) = berth_runtime::ShimClient::connect(&e.path(), berth_runtime::Streams::NONE).await {
                let _ = shim.signal(9).await;
                tracing::info!(shim = %id, "stopped the step of a build interrupted by a daemon restart");
            }
        }
    }

    /// The runtime's state (and runtime bundle) of containers that no longer exist (a
    /// removal cut short by a daemon that died while the shim was still deleting it) is
    /// removed in the background.
    /// Build steps' shims (a socket under `s/`) delete their own.
    fn sweep_runtime_state(self: &Arc<Self>) {
        let root = self.runtime_root();
        let Ok(rd) = std::fs::read_dir(&root) else { return };
        let mut orphans: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .chain(berth_runtime::bundle_ids(&root))
            .filter(|id| berth_base::id::is_full_id(id) && self.get(id).is_err() && !self.shim_socket(id).exists())
            .collect();
        orphans.sort();
        orphans.dedup();
        for id in orphans {
            let (launcher, root) = (self.launcher.clone(), root.clone());
            trash::later(move || {
                if let Err(e) = launcher.cleanup(&root, &id) {
                    tracing::warn!(container = %id, error = %e, "leftover runtime state");
                }
            });
        }
    }

    /// Build steps and unpacked contexts live in `builder/` only while a build runs; a
    /// daemon that died mid-build leaves them (possibly mounted) behind. Nothing is building
    /// at startup, so everything there is unmounted and removed.
    fn clean_builder_scratch(&self) {
        let dir = self.cfg.data_root.join("builder");
        let Ok(rd) = std::fs::read_dir(&dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if let Err(err) = self.images.unmount_rootfs(&p) {
                tracing::warn!(path = %p.display(), error = %err, "unmount leftover build root");
                continue;
            }
            if let Err(err) = std::fs::remove_dir_all(&p) {
                tracing::warn!(path = %p.display(), error = %err, "remove leftover build root");
            }
        }
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_root.join("containers").join(id)
    }

    pub(crate) fn shim_socket(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("s").join(format!("{id}.sock"))
    }

    pub(crate) fn runtime_root(&self) -> PathBuf {
        self.cfg.exec_root.join("runtime")
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }

    fn exit_file(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("exit.json")
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, table::Table<Container>> {
        self.containers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn table_mut(&self) -> std::sync::RwLockWriteGuard<'_, table::Table<Container>> {
        self.containers.write().unwrap_or_else(|p| p.into_inner())
    }

    fn all(&self) -> Vec<Arc<Container>> {
        self.table().all()
    }

    fn insert(&self, c: Arc<Container>) {
        let name = c.name();
        self.table_mut().insert(&c.id.clone(), &name, c);
    }

    fn forget(&self, c: &Container) {
        let name = c.name();
        self.table_mut().remove(&c.id, &name);
    }

    /// The id of the container named `name`, if any.
    fn name_owner(&self, name: &str) -> Option<String> {
        self.table().name_owner(name).map(str::to_owned)
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if key.is_empty() {
            return Err(Error::NoSuchContainer(name_or_id.to_owned()));
        }
        match self.table().find(key) {
            table::Found::One(c) => Ok(c),
            table::Found::None => Err(Error::NoSuchContainer(name_or_id.to_owned())),
            table::Found::Ambiguous => {
                Err(Error::InvalidArgument(format!("multiple IDs found with provided prefix: {key}")))
            }
        }
    }

    /// Containers using an image, for `rmi`'s conflict rules.
    fn image_users(&self, image_id: &berth_base::Digest) -> Vec<berth_image::ContainerUse> {
        let id = image_id.to_string();
        self.all()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| r.image_id == id)
            .map(|r| berth_image::ContainerUse { id: r.id, running: r.state.status == Status::Running })
            .collect()
    }

    /// Records of every container, newest first.
    pub fn records(&self) -> Vec<ContainerRecord> {
        let mut v: Vec<_> = self.all().iter().map(|c| c.snapshot()).collect();
        v.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        v
    }

    fn persist(&self, c: &Container) {
        let rec = c.snapshot();
        if let Err(e) = self.store.update(&rec) {
            tracing::error!(container = %rec.id, error = %e, "failed to persist container state");
        }
    }

    /// Host paths for inspect.
    pub fn paths(&self, id: &str) -> ContainerPaths {
        let dir = self.container_dir(id);
        ContainerPaths {
            hosts: dir.join("hosts"),
            hostname: dir.join("hostname"),
            resolv_conf: dir.join("resolv.conf"),
            log: self.log_path(id),
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            netns: self.networks.netns_path(id),
        }
    }
}

/// Where a container's files live on the host.
pub struct ContainerPaths {
    /// /etc/hosts source.
    pub hosts: PathBuf,
    /// /etc/hostname source.
    pub hostname: PathBuf,
    /// /etc/resolv.conf source.
    pub resolv_conf: PathBuf,
    /// json-file log.
    pub log: PathBuf,
    /// overlay upper dir.
    pub upper: PathBuf,
    /// overlay work dir.
    pub work: PathBuf,
    /// overlay mount point.
    pub rootfs: PathBuf,
    /// The network namespace file (the API's `SandboxKey`).
    pub netns: PathBuf,
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Task(e)
}

/// Runs blocking work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(join_err)?
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

impl Engine {
    /// `GET /containers/json`: Docker's filters (id, name, label, status, ancestor, exited,
    /// before, since), newest first, stopped ones only with `all`, a status filter or a limit.
    /// Each listed record is given to `view` in place, under its lock, and only what `view`
    /// makes of it is kept: `ps` lists every running container, and copying every record
    /// whole to filter it cost as much as the rest of the list.
    pub async fn list_containers<T>(
        self: &Arc<Self>,
        q: &berth_api::query::ListContainers,
        view: impl Fn(&ContainerRecord) -> T,
    ) -> Result<Vec<T>> {
        let f = &q.filters;
        for k in f.0.keys() {
            if !matches!(
                k.as_str(),
                "id" | "name"
                    | "label"
                    | "status"
                    | "ancestor"
                    | "exited"
                    | "before"
                    | "since"
                    | "network"
                    | "volume"
                    | "health"
                    | "is-task"
                    | "publish"
                    | "expose"
            ) {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
        }
        for s in f.get("status") {
            if !matches!(s.as_str(), "created" | "restarting" | "running" | "removing" | "paused" | "exited" | "dead") {
                return Err(Error::InvalidArgument(format!("invalid filter 'status={s}'")));
            }
        }
        for h in f.get("health") {
            if !matches!(h.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(Error::InvalidArgument(format!("Unrecognised filter value for health: {h}")));
            }
        }
        let publish = f.get("publish").iter().map(|v| port_filter(v)).collect::<Result<Vec<_>>>()?;
        let expose = f.get("expose").iter().map(|v| port_filter(v)).collect::<Result<Vec<_>>>()?;
        let mut ancestors = Vec::new();
        for a in f.get("ancestor") {
            match self.image(a).await {
                Ok(img) => ancestors.push(img.id.to_string()),
                Err(_) => ancestors.push(a.clone()),
            }
        }
        let created_of = |key: &str| -> Result<DateTime<Utc>> { Ok(self.get(key)?.snapshot().created) };
        let before = f.get("before").first().map(|k| created_of(k)).transpose()?;
        let since = f.get("since").first().map(|k| created_of(k)).transpose()?;
        let show_all =
            q.all || q.limit.is_some_and(|l| l > 0) || !f.get("status").is_empty() || !f.get("exited").is_empty();
        let mut out = Vec::new();
        for c in self.all() {
            let listed = c.read(|r| {
                if !show_all && !matches!(r.state.status, Status::Running | Status::Restarting) {
                    return None;
                }
                let keep = f.get("id").iter().all(|p| r.id.starts_with(p.as_str()))
                    && f.get("name").iter().all(|p| name_matches(p, &r.name))
                    && f.get("label").iter().all(|l| {
                        let labels = r.config.labels.as_ref();
                        match l.split_once('=') {
                            Some((k, v)) => labels.and_then(|m| m.get(k)).is_some_and(|x| x == v),
                            None => labels.is_some_and(|m| m.contains_key(l.as_str())),
                        }
                    })
                    && (f.get("status").is_empty() || f.get("status").iter().any(|s| s == r.state_name()))
                    && (ancestors.is_empty() || ancestors.iter().any(|a| *a == r.image_id || *a == r.image))
                    && (f.get("exited").is_empty()
                        || (r.state.status == Status::Exited
                            && f.get("exited").iter().any(|c| c.parse::<i64>().ok() == Some(r.state.exit_code))))
                    && f.get("volume").iter().all(|v| {
                        r.volumes.iter().any(|m| m.name == *v || m.destination == *v)
                            || r.binds.iter().any(|b| b.destination == *v || b.source.to_str() == Some(v.as_str()))
                    })
                    && (f.get("health").is_empty() || {
                        let h = match self.health_of(r).and_then(|h| h.status) {
                            Some(s) => s.to_string(),
                            None => "none".to_owned(),
                        };
                        f.get("health").contains(&h)
                    })
                    && f.get("network").iter().all(|n| {
                        r.networks
                            .iter()
                            .any(|(name, ep)| name == n || (!n.is_empty() && ep.network_id.starts_with(n.as_str())))
                    })
                    && (publish.is_empty()
                        || r.host_config
                            .port_bindings
                            .iter()
                            .flatten()
                            .any(|(k, _)| publish.iter().any(|p| p.matches(k))))
                    && (expose.is_empty()
                        || r.config.exposed_ports.iter().flatten().any(|k| expose.iter().any(|p| p.matches(k))))
                    && before.is_none_or(|b| r.created < b)
                    && since.is_none_or(|s| r.created > s);
                keep.then(|| (r.created, r.id.clone()))
            });
            out.extend(listed.map(|(created, id)| (created, id, c)));
        }
        // Newest first, as `records()` orders them; only the rows returned are viewed.
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        if let Some(l) = q.limit.filter(|l| *l > 0) {
            out.truncate(l as usize);
        }
        Ok(out.iter().map(|(_, _, c)| c.read(&view)).collect())
    }
}

/// A `publish=` or `expose=` filter value: `80`, `80/udp` or `8000-8080/tcp` (tcp when no
/// protocol is given), as moby reads it.
struct PortFilter {
    first: u16,
    last: u16,
    proto: String,
}

impl PortFilter {
    /// Whether a port key of the API (`80/tcp`) is within the filter.
    fn matches(&self, key: &str) -> bool {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        proto == self.proto && port.parse::<u16>().is_ok_and(|p| (self.first..=self.last).contains(&p))
    }
}

fn port_filter(v: &str) -> Result<PortFilter> {
    let bad = || Error::InvalidArgument(format!("invalid port filter: {v}"));
    let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let (first, last) = ports.split_once('-').unwrap_or((ports, ports));
    let (first, last) = (first.parse::<u16>().map_err(|_| bad())?, last.parse::<u16>().map_err(|_| bad())?);
    if first > last || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    Ok(PortFilter { first, last, proto: proto.to_owned() })
}

/// Docker matches `name=` filters as a regular expression against the name; berth supports
/// the forms people type: a substring, with optional `^` and `$` anchors.
fn name_matches(pattern: &str, name: &str) -> bool {
    let p = pattern.strip_prefix('/').unwrap_or(pattern);
    let (p, start) = match p.strip_prefix('^') {
        Some(rest) => (rest.strip_prefix('/').unwrap_or(rest), true),
        None => (p, false),
    };
    let (p, end) = match p.strip_suffix('$') {
        Some(rest) => (rest, true),
        None => (p, false),
    };
    match (start, end) {
        (true, true) => name == p,
        (true, false) => name.starts_with(p),
        (false, true) => name.ends_with(p),
        (false, false) => name.contains(p),
    }
}
