//! Volumes: named and anonymous data directories that outlive containers, as moby's
//! `local` driver keeps them. Each lives in `volumes/<name>/_data` under the data root (the
//! volume's directory 0701, `_data` 0755 root:root, as moby makes them), its record (driver,
//! labels, options, creation time) in the `volumes` table of state.db. Which containers use
//! a volume is kept in memory (rebuilt from the container records when the daemon starts):
//! a volume in use cannot be removed. A volume created with the `local` driver's `type` /
//! `device` / `o` options (tmpfs, a bind, nfs) is mounted on its `_data` when the first
//! container using it starts and unmounted when the last one stops.
//!
//! The container side: [`plan`] reads what a create request asks for (`-v name:/path`,
//! `--mount type=volume`, `--volumes-from`) without touching anything;
//! [`Engine::attach_volumes`] creates the volumes and records the container as their user;
//! [`Engine::populate_volumes`] fills new volumes from the image's content at their path
//! (moby's copy-up, owners and modes kept); [`spec_mounts`] gives the sandbox the bind
//! mounts; [`Engine::mount_volumes`] / [`Engine::unmount_volumes`] run at start and exit;
//! [`Engine::release_volumes`] at removal, which also removes the container's anonymous
//! volumes when asked (`rm -v`, `--rm`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_api::models::{HostConfig, Mount, MountType};
use berth_api::query::Filters;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use serde::{Deserialize, Serialize};

use super::{Engine, blocking};
use crate::error::{Error, Result};
use crate::record::{BindSpec, ContainerRecord, VolumeMount};

/// The label moby puts on the volumes it names itself.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
/// The one volume driver berth has.
pub const LOCAL_DRIVER: &str = "local";
/// Mode of `volumes/` and of each `volumes/<name>` (moby's: others may only traverse).
pub const VOLUME_DIR_MODE: u32 = 0o701;
/// Mode of a fresh `volumes/<name>/_data`.
pub const DATA_DIR_MODE: u32 = 0o755;

/// What is stored about one volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// The volume's name (64 hex digits for an anonymous one).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// Labels as given (`None` when the request had none, as moby echoes it).
    pub labels: Option<BTreeMap<String, String>>,
    /// The driver's options as given (`type`, `device`, `o`).
    pub options: Option<BTreeMap<String, String>>,
    /// When it was created.
    pub created: DateTime<Utc>,
}

impl VolumeRecord {
    /// Whether moby would call it anonymous (it carries [`ANONYMOUS_LABEL`]).
    pub fn anonymous(&self) -> bool {
        self.labels.as_ref().is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }

    fn opt(&self, k: &str) -> Option<&str> {
        self.options.as_ref().and_then(|o| o.get(k)).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Whether `_data` is a mount made at first use (the `type`/`device` options).
    pub fn needs_mount(&self) -> bool {
        self.opt("type").is_some() || self.opt("device").is_some()
    }

    /// Whether it has driver options at all (moby leaves such volumes out of prune and of
    /// size accounting: their data is not really local).
    pub fn has_options(&self) -> bool {
        self.options.as_ref().is_some_and(|o| !o.is_empty())
    }
}

/// A volume as the API shows it.
#[derive(Debug, Clone)]
pub struct VolumeView {
    /// The record.
    pub record: VolumeRecord,
    /// `volumes/<name>/_data`.
    pub mountpoint: PathBuf,
    /// Ids of the containers that use it.
    pub refs: Vec<String>,
    /// Bytes its data holds (only computed for `system df`; `None` = not computed, and
    /// `Some(-1)` for a volume whose data is not local).
    pub size: Option<i64>,
}

/// What `volume prune` removed.
#[derive(Debug, Default)]
pub struct VolumePruneReport {
    /// Names removed.
    pub deleted: Vec<String>,
    /// Bytes their data held.
    pub reclaimed: u64,
}

#[derive(Default)]
struct State {
    records: BTreeMap<String, VolumeRecord>,
    refs: HashMap<String, BTreeSet<String>>,
    /// Running users (container ids) of a volume whose `_data` is a mount.
    active: HashMap<String, HashSet<String>>,
}

/// The volume store: records in state.db, data under `volumes/`, users and active mounts
/// in memory. Its methods block.
pub struct VolumeStore {
    root: PathBuf,
    conn: Mutex<Connection>,
    state: Mutex<State>,
    prune_running: AtomicBool,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |e| Error::io(what, e)
}

impl VolumeStore {
    /// Opens the store under `data_root`: creates `volumes/` and the table, loads the
    /// records, recreates the data directory of a record whose directory is gone, removes
    /// directories no record owns (a create or a removal the daemon died in), and notes
    /// which option-mounted volumes are still mounted.
    pub fn open(data_root: &Path) -> Result<VolumeStore> {
        let root = data_root.join("volumes");
        berth_base::fsutil::create_dir_mode(&root, VOLUME_DIR_MODE)
            .map_err(io_err(format!("create {}", root.display())))?;
        let conn = Connection::open(data_root.join("state.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        crate::store::limit_cache(&conn)?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS volumes (name TEXT PRIMARY KEY, record TEXT NOT NULL);")?;
        let mut state = State::default();
        {
            let mut stmt = conn.prepare("SELECT name, record FROM volumes")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (name, json) = row?;
                match serde_json::from_str::<VolumeRecord>(&json) {
                    Ok(rec) => {
                        state.records.insert(name, rec);
                    }
                    Err(e) => tracing::error!(volume = %name, error = %e, "skipping unreadable volume record"),
                }
            }
        }
        let store = VolumeStore {
            root,
            conn: Mutex::new(conn),
            state: Mutex::new(State::default()),
            prune_running: AtomicBool::new(false),
        };
        for name in state.records.keys() {
            if !store.data_path(name).exists()
                && let Err(e) = store.make_dirs(name)
            {
                tracing::warn!(volume = %name, error = %e, "recreating a volume's missing data directory");
            }
        }
        if let Ok(rd) = std::fs::read_dir(&store.root) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_dir()) && !state.records.contains_key(&name) {
                    let p = e.path();
                    let _ = rustix::mount::unmount(p.join("_data"), rustix::mount::UnmountFlags::DETACH);
                    if let Err(err) = std::fs::remove_dir_all(&p) {
                        tracing::warn!(path = %p.display(), error = %err, "removing a volume directory no record owns");
                    }
                }
            }
        }
        *store.lock() = state;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn.lock().map_err(|_| Error::Internal("volume database lock poisoned".to_owned()))
    }

    /// Frees the connection's page cache.
    pub fn release_memory(&self) -> Result<()> {
        crate::store::release_memory(&*self.conn()?)
    }

    /// `volumes/<name>`.
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `volumes/<name>/_data`: the volume's mountpoint.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    fn make_dirs(&self, name: &str) -> Result<()> {
        let dir = self.volume_dir(name);
        berth_base::fsutil::create_dir_mode(&dir, VOLUME_DIR_MODE)
            .map_err(io_err(format!("error while creating volume root path '{}'", dir.display())))?;
        let data = self.data_path(name);
        berth_base::fsutil::create_dir_mode(&data, DATA_DIR_MODE)
            .map_err(io_err(format!("error while creating volume data path '{}'", data.display())))?;
        Ok(())
    }

    /// Creates volume `name` (a generated 64-hex name with the anonymous label when
    /// `None`), or returns the existing one of that name. `reference` (a container id) is
    /// recorded as a user in the same step, so a concurrent removal cannot slip between.
    /// Returns the record and whether it was created now.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: Option<&str>,
        labels: Option<BTreeMap<String, String>>,
        options: Option<BTreeMap<String, String>>,
        reference: Option<&str>,
    ) -> Result<(VolumeRecord, bool)> {
        let (name, labels) = match name.filter(|n| !n.is_empty()) {
            Some(n) => (n.to_owned(), labels),
            None => {
                let mut l = labels.unwrap_or_default();
                l.insert(ANONYMOUS_LABEL.to_owned(), String::new());
                (berth_base::new_id(), Some(l))
            }
        };
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or(LOCAL_DRIVER);
        if driver != LOCAL_DRIVER {
            return Err(Error::NotFound(format!(
                "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let mut st = self.lock();
        if let Some(existing) = st.records.get(&name).cloned() {
            if let Some(r) = reference {
                st.refs.entry(name.clone()).or_default().insert(r.to_owned());
            }
            return Ok((existing, false));
        }
        validate_name(&name).map_err(|m| Error::InvalidArgument(format!("create {name}: {m}")))?;
        validate_options(options.as_ref()).map_err(|m| Error::InvalidArgument(format!("create {name}: {m}")))?;
        let rec = VolumeRecord { name: name.clone(), driver: driver.to_owned(), labels, options, created: Utc::now() };
        self.make_dirs(&name)?;
        let json = serde_json::to_string(&rec).map_err(|source| Error::Encode { what: "volume record", source })?;
        if let Err(e) = self
            .conn()
            .and_then(|c| Ok(c.execute("INSERT INTO volumes (name, record) VALUES (?1, ?2)", params![name, json])?))
        {
            let _ = std::fs::remove_dir_all(self.volume_dir(&name));
            return Err(e);
        }
        st.records.insert(name.clone(), rec.clone());
        if let Some(r) = reference {
            st.refs.entry(name).or_default().insert(r.to_owned());
        }
        Ok((rec, true))
    }

    /// The record of `name`; moby's words when there is none.
    pub fn get(&self, name: &str) -> Result<VolumeRecord> {
        self.lock().records.get(name).cloned().ok_or_else(|| Error::NoSuchVolume(name.to_owned()))
    }

    /// Records container `id` as a user of `name` (which must exist).
    pub fn add_ref(&self, name: &str, id: &str) -> Result<()> {
        let mut st = self.lock();
        if !st.records.contains_key(name) {
            return Err(Error::NoSuchVolume(name.to_owned()));
        }
        st.refs.entry(name.to_owned()).or_default().insert(id.to_owned());
        Ok(())
    }

    /// Forgets container `id` as a user of `name`.
    pub fn release(&self, name: &str, id: &str) {
        let mut st = self.lock();
        if let Some(r) = st.refs.get_mut(name) {
            r.remove(id);
            if r.is_empty() {
                st.refs.remove(name);
            }
        }
    }

    /// Every volume with its users, by name.
    pub fn list(&self) -> Vec<VolumeView> {
        let st = self.lock();
        st.records
            .values()
            .map(|r| VolumeView {
                record: r.clone(),
                mountpoint: self.data_path(&r.name),
                refs: st.refs.get(&r.name).map(|s| s.iter().cloned().collect()).unwrap_or_default(),
                size: None,
            })
            .collect()
    }

    /// One volume with its users.
    pub fn view(&self, name: &str) -> Result<VolumeView> {
        let st = self.lock();
        let r = st.records.get(name).ok_or_else(|| Error::NoSuchVolume(name.to_owned()))?;
        Ok(VolumeView {
            record: r.clone(),
            mountpoint: self.data_path(name),
            refs: st.refs.get(name).map(|s| s.iter().cloned().collect()).unwrap_or_default(),
            size: None,
        })
    }

    /// Removes `name` and its data; in use is moby's 409 (`remove NAME: volume is in use -
    /// [ids]`), and an unknown name its 404 unless `force`. Returns the bytes freed.
    pub fn remove(&self, name: &str, force: bool) -> Result<u64> {
        let mut st = self.lock();
        let Some(rec) = st.records.get(name).cloned() else {
            return if force { Ok(0) } else { Err(Error::NoSuchVolume(name.to_owned())) };
        };
        if let Some(refs) = st.refs.get(name).filter(|r| !r.is_empty()) {
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                refs.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let data = self.data_path(name);
        if rec.needs_mount() {
            unmount_data(&data).map_err(io_err(format!("remove {name}: unmount {}", data.display())))?;
            st.active.remove(name);
        }
        let freed = if rec.has_options() { 0 } else { disk_usage(&data) };
        self.conn()?.execute("DELETE FROM volumes WHERE name = ?1", [name])?;
        st.records.remove(name);
        st.refs.remove(name);
        let dir = self.volume_dir(name);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // The record is gone; a leftover directory is removed at the next start.
            Err(e) => return Err(Error::io(format!("error removing volume path '{}'", dir.display()), e)),
        }
        Ok(freed)
    }

    /// Removes the unused local volumes `filters` select (`label`, `label!`, `all`), only
    /// anonymous ones unless `all`; volumes with driver options are left alone, as moby does.
    pub fn prune(&self, filters: &Filters, all: bool) -> Result<VolumePruneReport> {
        for k in filters.0.keys() {
            if !matches!(k.as_str(), "label" | "label!" | "all") {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
        }
        let all = all
            || match filters.get("all").first() {
                None => false,
                Some(v) => go_bool(v).ok_or_else(|| Error::InvalidArgument(format!("invalid filter 'all={v}'")))?,
            };
        if self.prune_running.swap(true, Ordering::SeqCst) {
            return Err(Error::Conflict("a prune operation is already running".to_owned()));
        }
        let candidates: Vec<VolumeView> = self
            .list()
            .into_iter()
            .filter(|v| {
                v.refs.is_empty()
                    && v.record.driver == LOCAL_DRIVER
                    && !v.record.has_options()
                    && (all || v.record.anonymous())
                    && labels_match(v.record.labels.as_ref(), filters)
            })
            .collect();
        let mut report = VolumePruneReport::default();
        for v in candidates {
            match self.remove(&v.record.name, false) {
                Ok(freed) => {
                    report.reclaimed += freed;
                    report.deleted.push(v.record.name);
                }
                Err(e) => tracing::warn!(volume = %v.record.name, error = %e, "could not remove volume"),
            }
        }
        self.prune_running.store(false, Ordering::SeqCst);
        Ok(report)
    }

    /// Makes `name`'s data ready for container `id`: mounts it for its first running user
    /// when it has `type`/`device` options. Returns its mountpoint. Idempotent per user.
    pub fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        let mut st = self.lock();
        let rec = st.records.get(name).cloned().ok_or_else(|| Error::NoSuchVolume(name.to_owned()))?;
        let data = self.data_path(name);
        if rec.needs_mount() {
            let users = st.active.entry(name.to_owned()).or_default();
            if users.is_empty() && !is_mounted(&data) {
                mount_data(&rec, &data)?;
            }
            users.insert(id.to_owned());
        }
        Ok(data)
    }

    /// Undoes [`VolumeStore::mount`] for `id`: the last running user unmounts.
    /// Idempotent per user.
    pub fn unmount(&self, name: &str, id: &str) {
        let mut st = self.lock();
        let Some(users) = st.active.get_mut(name) else { return };
        if !users.remove(id) || !users.is_empty() {
            return;
        }
        st.active.remove(name);
        let data = self.data_path(name);
        if let Err(e) = unmount_data(&data) {
            tracing::warn!(volume = %name, error = %e, "unmount volume");
        }
    }

    /// Counts running container `id`, found at start-up, as a user of `name`'s mount.
    pub fn restore_active(&self, name: &str, id: &str) {
        let mut st = self.lock();
        if st.records.get(name).is_some_and(VolumeRecord::needs_mount) && is_mounted(&self.data_path(name)) {
            st.active.entry(name.to_owned()).or_default().insert(id.to_owned());
        }
    }

    /// Unmounts option-mounted volumes that no running container uses (called once at
    /// start-up, after the running containers were counted).
    pub fn unmount_idle(&self) {
        let st = self.lock();
        for rec in st.records.values().filter(|r| r.needs_mount()) {
            let data = self.data_path(&rec.name);
            if !st.active.contains_key(&rec.name) && is_mounted(&data) {
                let _ = unmount_data(&data);
            }
        }
    }
}

/// Go's strconv.ParseBool.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// moby's `label=` / `label!=` filters: `key` or `key=value`.
fn labels_match(labels: Option<&BTreeMap<String, String>>, f: &Filters) -> bool {
    let empty = BTreeMap::new();
    let l = labels.unwrap_or(&empty);
    let has = |spec: &str| match spec.split_once('=') {
        Some((k, v)) => l.get(k).is_some_and(|x| x == v),
        None => l.contains_key(spec),
    };
    f.get("label").iter().all(|s| has(s)) && f.get("label!").iter().all(|s| !has(s))
}

/// moby's local driver's name rule, with its words.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.len() == 1 {
        return Err("volume name is too short, names should be at least two alphanumeric characters".to_owned());
    }
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if !ok {
        return Err(format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    Ok(())
}

/// moby's local driver's option rules (`type`, `device`, `o`, `size`), with its words.
/// berth has no quota support, so a non-zero `size` is refused as moby refuses it there.
pub fn validate_options(opts: Option<&BTreeMap<String, String>>) -> std::result::Result<(), String> {
    let Some(opts) = opts.filter(|o| !o.is_empty()) else { return Ok(()) };
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "o" | "device" | "size") {
            return Err(format!("invalid option: {k:?}"));
        }
    }
    if let Some(v) = opts.get("size") {
        let size = ram_in_bytes(v).ok_or_else(|| format!("invalid size: '{v}'"))?;
        if size > 0 {
            return Err("quota size requested but no quota support".to_owned());
        }
    }
    for (opt, needs) in [("device", &["type"][..]), ("type", &["device"][..]), ("o", &["device", "type"][..])] {
        if opts.contains_key(opt) {
            for n in needs {
                if !opts.contains_key(*n) {
                    return Err(format!("missing required option: {n:?}"));
                }
            }
        }
    }
    Ok(())
}

/// go-units' RAMInBytes (binary multiples).
fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim();
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let n: f64 = t[..end].parse().ok()?;
    let unit = t[end..].trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    Some((n * mult) as i64)
}

/// Splits a mount(8)-style option string into flags and the data string passed to the
/// filesystem, as moby's mount package does for the local driver's `o` option.
pub fn parse_mount_options(o: &str) -> (rustix::mount::MountFlags, String) {
    use rustix::mount::MountFlags as F;
    let mut flags = F::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "ro" => (F::RDONLY, F::empty()),
            "rw" => (F::empty(), F::RDONLY),
            "bind" => (F::BIND, F::empty()),
            "rbind" => (F::BIND | F::REC, F::empty()),
            "nosuid" => (F::NOSUID, F::empty()),
            "suid" => (F::empty(), F::NOSUID),
            "nodev" => (F::NODEV, F::empty()),
            "dev" => (F::empty(), F::NODEV),
            "noexec" => (F::NOEXEC, F::empty()),
            "exec" => (F::empty(), F::NOEXEC),
            "sync" => (F::SYNCHRONOUS, F::empty()),
            "async" => (F::empty(), F::SYNCHRONOUS),
            "dirsync" => (F::DIRSYNC, F::empty()),
            "noatime" => (F::NOATIME, F::empty()),
            "atime" => (F::empty(), F::NOATIME),
            "nodiratime" => (F::NODIRATIME, F::empty()),
            "diratime" => (F::empty(), F::NODIRATIME),
            "relatime" => (F::RELATIME, F::empty()),
            "norelatime" => (F::empty(), F::RELATIME),
            "strictatime" => (F::STRICTATIME, F::empty()),
            "defaults" => (F::empty(), F::empty()),
            other => {
                data.push(other.to_owned());
                continue;
            }
        };
        flags |= set;
        flags &= !clear;
    }
    (flags, data.join(","))
}

fn mount_data(rec: &VolumeRecord, data: &Path) -> Result<()> {
    let device = rec.opt("device").unwrap_or("");
    let fstype = rec.opt("type").unwrap_or("");
    let (flags, options) = parse_mount_options(rec.opt("o").unwrap_or(""));
    let fail = |e: rustix::io::Errno| Error::Io {
        what: format!("failed to mount local volume: mount {device}:{}", data.display()),
        source: e.into(),
    };
    if flags.contains(rustix::mount::MountFlags::BIND) {
        if flags.contains(rustix::mount::MountFlags::REC) {
            rustix::mount::mount_bind_recursive(device, data).map_err(fail)?;
        } else {
            rustix::mount::mount_bind(device, data).map_err(fail)?;
        }
        // A bind takes its other flags (ro, nosuid…) only through a remount.
        let rest = flags & !(rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::REC);
        if !rest.is_empty()
            && let Err(e) = rustix::mount::mount_remount(data, rest | rustix::mount::MountFlags::BIND, "")
        {
            let _ = unmount_data(data);
            return Err(fail(e));
        }
        return Ok(());
    }
    let options = CString::new(options).map_err(|_| Error::InvalidArgument("invalid mount options".to_owned()))?;
    rustix::mount::mount(device, data, fstype, flags, Some(options.as_c_str())).map_err(fail)
}

fn unmount_data(data: &Path) -> io::Result<()> {
    match rustix::mount::unmount(data, rustix::mount::UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(rustix::io::Errno::BUSY) => {
            rustix::mount::unmount(data, rustix::mount::UnmountFlags::DETACH).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether `path` is a mount point (per /proc/self/mountinfo).
fn is_mounted(path: &Path) -> bool {
    let want = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().filter_map(|l| l.split(' ').nth(4)).any(|mp| mp == want))
        .unwrap_or(false)
}

/// Bytes held by the files under `path`, as moby's directory.Size counts them: file sizes,
/// each inode once, directories not counted.
pub fn disk_usage(path: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else { return 0 };
        let mut total = 0;
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else { continue };
            if md.is_dir() {
                total += walk(&e.path(), seen);
            } else if md.nlink() <= 1 || seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
        total
    }
    walk(path, &mut HashSet::new())
}

// ---- the container side --------------------------------------------------------------

/// A volume a create request asks for, before anything exists.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRequest {
    /// The volume's name; `None` for an anonymous one.
    pub name: Option<String>,
    /// Absolute, cleaned path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// The mode string as given (`-v`), for inspect.
    pub mode: String,
    /// Fill a new volume from the image (not with `nocopy` / `volume-nocopy`).
    pub copy_data: bool,
    /// From `--mount` rather than `-v`.
    pub from_mount_flag: bool,
    /// `volume-driver`.
    pub driver: Option<String>,
    /// `volume-label`s for a volume the mount creates.
    pub labels: Option<BTreeMap<String, String>>,
    /// `volume-opt`s for a volume the mount creates.
    pub options: Option<BTreeMap<String, String>>,
}

/// What a create request asks for besides binds: volumes and `--volumes-from`.
#[derive(Debug, Default, PartialEq)]
pub struct VolumePlan {
    /// `-v name:/path` and `--mount type=volume`, in request order.
    pub requests: Vec<VolumeRequest>,
    /// `--volumes-from`: container and mode (`rw`, `ro`).
    pub volumes_from: Vec<(String, String)>,
}

const VALID_MODES: &[&str] =
    &["ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy"];

fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut rw = 0;
    let mut copy = 0;
    let mut label = 0;
    let mut prop = 0;
    for m in mode.split(',') {
        if !VALID_MODES.contains(&m) {
            return false;
        }
        match m {
            "ro" | "rw" => rw += 1,
            "nocopy" => copy += 1,
            "z" | "Z" => label += 1,
            _ => prop += 1,
        }
    }
    rw <= 1 && copy <= 1 && label <= 1 && prop <= 1
}

fn clean_dest(d: &str) -> String {
    berth_base::fsroot::clean_path(d)
}

/// True when a `Binds` entry names a volume (its source is not an absolute path).
pub fn bind_is_volume(b: &str) -> bool {
    let src = b.split(':').next().unwrap_or("");
    !src.is_empty() && !src.starts_with('/') && b.contains(':')
}

/// The host config without what [`plan`] takes: volume `Binds` and `type=volume` mounts,
/// so the bind parser sees only binds.
pub fn without_volumes(hc: &HostConfig) -> HostConfig {
    let mut out = hc.clone();
    if let Some(b) = &mut out.binds {
        b.retain(|b| !bind_is_volume(b));
    }
    if let Some(m) = &mut out.mounts {
        m.retain(|m| m.typ != Some(MountType::VOLUME));
    }
    out
}

/// Reads the volumes a create request asks for, with moby's checks and words; creates
/// nothing.
pub fn plan(hc: &HostConfig) -> Result<VolumePlan> {
    let mut out = VolumePlan::default();
    for b in hc.binds.iter().flatten().filter(|b| bind_is_volume(b)) {
        let invalid = || Error::InvalidArgument(format!("invalid volume specification: '{b}'"));
        let parts: Vec<&str> = b.splitn(4, ':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => return Err(invalid()),
        };
        if dst.is_empty() {
            return Err(invalid());
        }
        if !valid_mode(mode) {
            return Err(Error::InvalidArgument(format!("invalid mode: {mode}")));
        }
        if !dst.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "invalid volume specification: '{b}': invalid mount config for type \"volume\": invalid mount path: '{dst}' mount path must be absolute"
            )));
        }
        if clean_dest(dst) == "/" {
            return Err(Error::InvalidArgument(format!(
                "invalid volume specification: '{b}': invalid mount config for type \"volume\": invalid specification: destination can't be '/'"
            )));
        }
        validate_name(src).map_err(|m| Error::InvalidArgument(format!("create {src}: {m}")))?;
        let modes: Vec<&str> = mode.split(',').collect();
        out.requests.push(VolumeRequest {
            name: Some(src.to_owned()),
            destination: clean_dest(dst),
            readonly: modes.contains(&"ro"),
            mode: mode.to_owned(),
            copy_data: !modes.contains(&"nocopy"),
            from_mount_flag: false,
            driver: hc.volume_driver.clone().filter(|d| !d.is_empty()),
            labels: None,
            options: None,
        });
    }
    for m in hc.mounts.iter().flatten().filter(|m| m.typ == Some(MountType::VOLUME)) {
        out.requests.push(mount_request(m)?);
    }
    for spec in hc.volumes_from.iter().flatten() {
        if spec.is_empty() {
            return Err(Error::InvalidArgument("volumes-from specification cannot be an empty string".to_owned()));
        }
        let (id, mode) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
        let mode = if mode.is_empty() { "rw" } else { mode };
        let bad = mode.split(',').any(|m| !matches!(m, "ro" | "rw" | "z" | "Z")) || !valid_mode(mode);
        if bad {
            return Err(Error::InvalidArgument(format!("invalid mode: {mode}")));
        }
        out.volumes_from.push((id.to_owned(), mode.to_owned()));
    }
    Ok(out)
}

fn mount_request(m: &Mount) -> Result<VolumeRequest> {
    let invalid = |msg: &str| Error::InvalidArgument(format!("invalid mount config for type \"volume\": {msg}"));
    let target = m.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(invalid("field Target must not be empty"));
    }
    if !target.starts_with('/') {
        return Err(invalid(&format!("invalid mount path: '{target}' mount path must be absolute")));
    }
    if clean_dest(&target) == "/" {
        return Err(invalid("invalid specification: destination can't be '/'"));
    }
    if m.bind_options.is_some() {
        return Err(invalid("field BindOptions must not be specified"));
    }
    if m.tmpfs_options.is_some() {
        return Err(invalid("field TmpfsOptions must not be specified"));
    }
    let src = m.source.clone().filter(|s| !s.is_empty());
    let vo = m.volume_options.clone().unwrap_or_default();
    if vo.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::NotImplemented("volume subpaths are not supported yet".to_owned()));
    }
    if let Some(s) = &src {
        validate_name(s).map_err(|msg| Error::InvalidArgument(format!("create {s}: {msg}")))?;
    } else if vo.driver_config.as_ref().is_some_and(|d| d.options.as_ref().is_some_and(|o| !o.is_empty())) {
        // An anonymous volume with options is created per container like any other.
    }
    let dc = vo.driver_config.clone().unwrap_or_default();
    Ok(VolumeRequest {
        name: src,
        destination: clean_dest(&target),
        readonly: m.read_only == Some(true),
        mode: String::new(),
        copy_data: vo.no_copy != Some(true),
        from_mount_flag: true,
        driver: dc.name.filter(|d| !d.is_empty()),
        labels: vo.labels.map(|l| l.into_iter().collect()),
        options: dc.options.map(|o| o.into_iter().collect()),
    })
}

/// The bind mounts the sandbox makes for a container's volumes.
pub(crate) fn spec_mounts(rec: &ContainerRecord) -> Vec<berth_runtime::spec::BindMount> {
    rec.volumes
        .iter()
        .map(|v| berth_runtime::spec::BindMount {
            source: v.source.clone(),
            destination: v.destination.clone(),
            readonly: v.readonly,
        })
        .collect()
}

/// Number of components of a destination, for moby's mount order (parents first).
pub(crate) fn depth(dest: &str) -> usize {
    dest.split('/').filter(|c| !c.is_empty()).count()
}

/// The events the volume side emits, named as moby names them (`create`, `mount`,
/// `unmount`, `destroy`, `prune`) with moby's attributes.
///
impl Engine {
    /// Publishes a volume event on the engine's events bus.
    pub(crate) fn volume_event(&self, action: &str, name: &str, attributes: &[(&str, String)]) {
        let mut ev = super::events::Event::new(super::events::EventType::Volume, action, name);
        for (k, v) in attributes {
            ev = ev.attr(*k, v.clone());
        }
        self.emit(ev);
    }
}

impl Engine {
    /// The volume store.
    pub fn volume_store(&self) -> &VolumeStore {
        &self.volumes
    }

    /// Creates the volumes a new container asks for and records it as their user: named
    /// ones on first use, anonymous ones for `--mount` without a source and for the
    /// image's and the request's `Volumes` that no other mount covers; `--volumes-from`
    /// copies the other container's volumes and binds. Returns the container's volumes
    /// and the binds it inherits. On failure nothing stays created or referenced.
    pub(crate) async fn attach_volumes(
        self: &Arc<Self>,
        id: &str,
        plan: VolumePlan,
        binds: &[BindSpec],
        hc: &HostConfig,
        config_volumes: &[String],
    ) -> Result<(Vec<VolumeMount>, Vec<BindSpec>)> {
        // --volumes-from first: binds and volumes of this request override them (moby).
        let mut from: Vec<(Option<VolumeMount>, Option<BindSpec>)> = Vec::new();
        for (other, mode) in &plan.volumes_from {
            let c = self.get(other).map_err(|_| Error::InvalidArgument(format!("No such container: {other}")))?;
            let rec = c.snapshot();
            let rw = !mode.split(',').any(|m| m == "ro");
            for v in rec.volumes {
                from.push((Some(VolumeMount { readonly: v.readonly || !rw, copy_data: false, ..v }), None));
            }
            for b in rec.binds {
                from.push((None, Some(BindSpec { readonly: b.readonly || !rw, ..b })));
            }
        }
        let mut taken: HashSet<String> = binds.iter().map(|b| b.destination.clone()).collect();
        let mut seen_req: HashSet<String> = HashSet::new();
        for r in &plan.requests {
            if taken.contains(&r.destination) || !seen_req.insert(r.destination.clone()) {
                return Err(Error::InvalidArgument(format!("Duplicate mount point: {}", r.destination)));
            }
        }
        taken.extend(seen_req);
        let mut inherited_binds = Vec::new();
        let mut wanted: Vec<(VolumeRequest, Option<VolumeMount>)> = Vec::new();
        for (v, b) in from {
            if let Some(v) = v
                && !taken.contains(&v.destination)
            {
                taken.insert(v.destination.clone());
                wanted.push((
                    VolumeRequest {
                        name: Some(v.name.clone()),
                        destination: v.destination.clone(),
                        readonly: v.readonly,
                        mode: v.mode.clone(),
                        copy_data: false,
                        from_mount_flag: v.from_mount_flag,
                        driver: Some(v.driver.clone()),
                        labels: None,
                        options: None,
                    },
                    Some(v),
                ));
            }
            if let Some(b) = b
                && !taken.contains(&b.destination)
            {
                taken.insert(b.destination.clone());
                inherited_binds.push(b);
            }
        }
        for r in plan.requests {
            wanted.push((r, None));
        }
        let tmpfs: HashSet<String> = hc
            .tmpfs
            .iter()
            .flatten()
            .map(|(d, _)| clean_dest(d))
            .chain(
                hc.mounts
                    .iter()
                    .flatten()
                    .filter(|m| m.typ == Some(MountType::TMPFS))
                    .filter_map(|m| m.target.as_deref().map(clean_dest)),
            )
            .collect();
        for d in config_volumes {
            if !d.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "invalid volume specification: '{d}': invalid mount config for type \"volume\": invalid mount path: '{d}' mount path must be absolute"
                )));
            }
            let dest = clean_dest(d);
            if dest == "/" || taken.contains(&dest) || tmpfs.contains(&dest) {
                continue;
            }
            taken.insert(dest.clone());
            wanted.push((
                VolumeRequest {
                    name: None,
                    destination: dest,
                    readonly: false,
                    mode: String::new(),
                    copy_data: true,
                    from_mount_flag: false,
                    driver: hc.volume_driver.clone().filter(|d| !d.is_empty()),
                    labels: None,
                    options: None,
                },
                None,
            ));
        }
        let engine = self.clone();
        let id = id.to_owned();
        blocking(move || {
            let store = &engine.volumes;
            let mut made: Vec<VolumeMount> = Vec::new();
            let mut created_now: Vec<String> = Vec::new();
            let undo = |made: &[VolumeMount], created_now: &[String]| {
                for m in made {
                    store.release(&m.name, &id);
                }
                for n in created_now {
                    let _ = store.remove(n, true);
                }
            };
            for (req, inherited) in wanted {
                let result = match &inherited {
                    Some(v) => store.add_ref(&v.name, &id).map(|()| (store.get(&v.name), false)),
                    None => store
                        .create(
                            req.name.as_deref(),
                            req.driver.as_deref(),
                            req.labels.clone(),
                            req.options.clone(),
                            Some(&id),
                        )
                        .map(|(r, new)| (Ok(r), new)),
                };
                let (rec, new) = match result {
                    Ok((Ok(r), new)) => (r, new),
                    Ok((Err(e), _)) | Err(e) => {
                        undo(&made, &created_now);
                        return Err(e);
                    }
                };
                if new {
                    created_now.push(rec.name.clone());
                    engine.volume_event("create", &rec.name, &[("driver", rec.driver.clone())]);
                }
                // moby: a local volume from `-v` or `--mount` shows mode `z` unless given;
                // an image's (or `-v /path`'s) anonymous volume and an inherited one show none.
                let mode = match &inherited {
                    Some(_) => String::new(),
                    None if req.from_mount_flag => "z".to_owned(),
                    None if req.name.is_some() && req.mode.is_empty() => "z".to_owned(),
                    None => req.mode.clone(),
                };
                made.push(VolumeMount {
                    name: rec.name.clone(),
                    driver: rec.driver.clone(),
                    source: store.data_path(&rec.name),
                    destination: req.destination,
                    readonly: req.readonly,
                    mode,
                    // Only a volume this container brings into being is filled from its image.
                    copy_data: req.copy_data && inherited.is_none(),
                    named: req.name.is_some(),
                    from_mount_flag: req.from_mount_flag,
                });
            }
            Ok((made, inherited_binds))
        })
        .await
    }

    /// Forgets `id` as the user of `mounts` after a create that failed (and removes the
    /// volumes the create made, which nobody else can know of yet).
    pub(crate) async fn detach_volumes(self: &Arc<Self>, id: &str, mounts: &[VolumeMount]) {
        let engine = self.clone();
        let id = id.to_owned();
        let mounts = mounts.to_vec();
        let _ = blocking(move || {
            for m in &mounts {
                engine.volumes.release(&m.name, &id);
                if !m.named {
                    let _ = engine.volumes.remove(&m.name, true);
                }
            }
            Ok(())
        })
        .await;
    }

    /// moby's copy-up, at create: each volume the container asked to fill (not
    /// `nocopy`) gets the image's content at its destination when the volume is still
    /// empty, with owners, modes, times and links kept. The container's root is mounted
    /// for the copy and unmounted after it.
    pub(crate) async fn populate_volumes(self: &Arc<Self>, rec: &ContainerRecord) -> Result<()> {
        let todo: Vec<VolumeMount> = rec.volumes.iter().filter(|v| v.copy_data).cloned().collect();
        if todo.is_empty() {
            return Ok(());
        }
        let engine = self.clone();
        let dir = self.container_dir(&rec.id);
        let image_id: berth_base::Digest = rec.image_id.parse().map_err(|source| Error::Corrupt {
            what: "image id",
            value: rec.image_id.clone(),
            source,
        })?;
        blocking(move || {
            let rootfs = engine.rootfs.mount_rootfs(&image_id, &dir)?;
            let mut result = Ok(());
            for v in &todo {
                let Ok(vrec) = engine.volumes.get(&v.name) else { continue };
                if vrec.needs_mount() {
                    // Its data is not in _data until a container runs; moby's copy
                    // would land in a mount it takes away again.
                    continue;
                }
                if let Err(e) = copy_up(&rootfs, &v.destination, &v.source) {
                    result = Err(Error::io(format!("failed to populate volume {} from {}", v.name, v.destination), e));
                    break;
                }
            }
            if let Err(e) = engine.rootfs.unmount_rootfs(&dir) {
                tracing::warn!(container = %dir.display(), error = %e, "unmount root after populating volumes");
            }
            result
        })
        .await
    }

    /// Mounts what the container's volumes need before it starts (blocking); on failure
    /// what was mounted is undone.
    pub(crate) fn mount_volumes(&self, rec: &ContainerRecord) -> Result<()> {
        let mut done: Vec<&str> = Vec::new();
        for v in &rec.volumes {
            if let Err(e) = self.volumes.mount(&v.name, &rec.id) {
                for n in done {
                    self.volumes.unmount(n, &rec.id);
                }
                return Err(e);
            }
            self.volume_event(
                "mount",
                &v.name,
                &[
                    ("driver", v.driver.clone()),
                    ("container", rec.id.clone()),
                    ("destination", v.destination.clone()),
                    ("read/write", (!v.readonly).to_string()),
                    ("propagation", String::new()),
                ],
            );
            done.push(&v.name);
        }
        Ok(())
    }

    /// Undoes [`Engine::mount_volumes`] once the container has stopped or failed to start
    /// (blocking; idempotent).
    pub(crate) fn unmount_volumes(&self, rec: &ContainerRecord) {
        for v in &rec.volumes {
            self.volumes.unmount(&v.name, &rec.id);
            self.volume_event("unmount", &v.name, &[("driver", v.driver.clone()), ("container", rec.id.clone())]);
        }
    }

    /// At start-up: records a container's volume uses, and counts a running one's mounts.
    pub(crate) fn restore_volumes(&self, rec: &ContainerRecord, running: bool) {
        for v in &rec.volumes {
            if self.volumes.add_ref(&v.name, &rec.id).is_err() {
                tracing::warn!(container = %rec.id, volume = %v.name, "a container's volume is gone");
                continue;
            }
            if running {
                self.volumes.restore_active(&v.name, &rec.id);
            }
        }
    }

    /// After a container is removed: forgets it as its volumes' user and, with
    /// `remove_anonymous` (`rm -v`, `--rm`), removes the anonymous ones that nobody else
    /// uses (moby leaves named volumes alone, and a volume still in use is no error).
    pub(crate) async fn release_volumes(self: &Arc<Self>, rec: &ContainerRecord, remove_anonymous: bool) {
        if rec.volumes.is_empty() {
            return;
        }
        let engine = self.clone();
        let rec = rec.clone();
        let _ = blocking(move || {
            for v in &rec.volumes {
                engine.volumes.release(&v.name, &rec.id);
                if !remove_anonymous || v.named {
                    continue;
                }
                match engine.volumes.remove(&v.name, true) {
                    Ok(_) => engine.volume_event("destroy", &v.name, &[("driver", v.driver.clone())]),
                    Err(Error::Conflict(_)) => {}
                    Err(e) => tracing::warn!(volume = %v.name, error = %e, "removing an anonymous volume"),
                }
            }
            Ok(())
        })
        .await;
    }

    /// `POST /volumes/create`.
    pub async fn create_volume(self: &Arc<Self>, req: berth_api::models::VolumeCreateRequest) -> Result<VolumeView> {
        let engine = self.clone();
        blocking(move || {
            let labels = req.labels.map(|l| l.into_iter().collect());
            let options = req.driver_opts.map(|o| o.into_iter().collect());
            let (rec, new) =
                engine.volumes.create(req.name.as_deref(), req.driver.as_deref(), labels, options, None)?;
            if new {
                engine.volume_event("create", &rec.name, &[("driver", rec.driver.clone())]);
            }
            engine.volumes.view(&rec.name)
        })
        .await
    }

    /// `GET /volumes`: moby's filters `dangling`, `name` (a substring), `driver`, `label`.
    pub async fn list_volumes(&self, filters: &Filters) -> Result<Vec<VolumeView>> {
        for k in filters.0.keys() {
            if !matches!(k.as_str(), "dangling" | "name" | "driver" | "label" | "label!") {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
        }
        let dangling = match filters.get("dangling").first() {
            None => None,
            Some(v) => {
                Some(go_bool(v).ok_or_else(|| Error::InvalidArgument(format!("invalid filter 'dangling={v}'")))?)
            }
        };
        Ok(self
            .volumes
            .list()
            .into_iter()
            .filter(|v| {
                dangling.is_none_or(|d| d == v.refs.is_empty())
                    && filters.get("name").iter().all(|n| v.record.name.contains(n.as_str()))
                    && (filters.get("driver").is_empty() || filters.get("driver").contains(&v.record.driver))
                    && labels_match(v.record.labels.as_ref(), filters)
            })
            .collect())
    }

    /// `GET /volumes/{name}`.
    pub fn inspect_volume(&self, name: &str) -> Result<VolumeView> {
        self.volumes.view(name)
    }

    /// `DELETE /volumes/{name}`.
    pub async fn remove_volume(self: &Arc<Self>, name: &str, force: bool) -> Result<()> {
        let engine = self.clone();
        let name = name.to_owned();
        blocking(move || {
            let driver = engine.volumes.get(&name).map(|r| r.driver).ok();
            engine.volumes.remove(&name, force)?;
            if let Some(driver) = driver {
                engine.volume_event("destroy", &name, &[("driver", driver)]);
            }
            Ok(())
        })
        .await
    }

    /// `POST /volumes/prune`.
    pub async fn prune_volumes(self: &Arc<Self>, filters: Filters, all: bool) -> Result<VolumePruneReport> {
        let engine = self.clone();
        blocking(move || {
            let report = engine.volumes.prune(&filters, all)?;
            for n in &report.deleted {
                engine.volume_event("destroy", n, &[("driver", LOCAL_DRIVER.to_owned())]);
            }
            engine.volume_event("prune", "", &[("reclaimed", report.reclaimed.to_string())]);
            Ok(report)
        })
        .await
    }

    /// Every volume with its size, for `GET /system/df`.
    pub async fn volume_usage(self: &Arc<Self>) -> Result<Vec<VolumeView>> {
        let engine = self.clone();
        blocking(move || {
            Ok(engine
                .volumes
                .list()
                .into_iter()
                .map(|mut v| {
                    v.size = Some(if v.record.has_options() { -1 } else { disk_usage(&v.mountpoint) as i64 });
                    v
                })
                .collect())
        })
        .await
    }
}

// ---- copy-up -------------------------------------------------------------------------

/// Copies what the image has at `dest` (resolved inside `rootfs`, never outside it) into
/// the volume's `data` directory if `data` is empty, as moby's copyExistingContents:
/// entries with their owners, modes and times, symlinks as links, device nodes and fifos
/// recreated, and `data` itself takes the directory's owner and mode.
pub fn copy_up(rootfs: &Path, dest: &str, data: &Path) -> io::Result<()> {
    let root = berth_base::fsroot::open_root(rootfs)?;
    // The destination is followed as the runtime will (symlinks inside the root only).
    let src = match berth_base::fsroot::open_in_root(&root, dest, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()) {
        Ok(fd) => fd,
        // Nothing (or no directory) there in the image: nothing to copy.
        Err(e)
            if [rustix::io::Errno::NOENT, rustix::io::Errno::NOTDIR, rustix::io::Errno::LOOP]
                .iter()
                .any(|n| e.raw_os_error() == Some(n.raw_os_error())) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let dst =
        rustix::fs::open(data, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    if !dir_is_empty(&dst)? {
        return Ok(());
    }
    copy_dir_contents(&src, &dst)?;
    let st = rustix::fs::fstat(&src)?;
    copy_meta(&dst, &st)?;
    Ok(())
}

fn dir_is_empty(fd: &OwnedFd) -> io::Result<bool> {
    let dup = rustix::fs::openat(fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let dir = rustix::fs::Dir::new(dup)?;
    for e in dir {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

fn copy_meta(fd: &impl AsFd, st: &rustix::fs::Stat) -> io::Result<()> {
    let uid = rustix::fs::Uid::from_raw(st.st_uid);
    let gid = rustix::fs::Gid::from_raw(st.st_gid);
    rustix::fs::fchown(fd, Some(uid), Some(gid))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    let times = Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: st.st_atime as _, tv_nsec: st.st_atime_nsec as _ },
        last_modification: rustix::fs::Timespec { tv_sec: st.st_mtime as _, tv_nsec: st.st_mtime_nsec as _ },
    };
    rustix::fs::futimens(fd, &times)?;
    Ok(())
}

fn copy_dir_contents(src: &OwnedFd, dst: &OwnedFd) -> io::Result<()> {
    let dup = rustix::fs::openat(src, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let dir = rustix::fs::Dir::new(dup)?;
    let mut names: Vec<CString> = Vec::new();
    for e in dir {
        let e = e?;
        let n = e.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    for name in names {
        let st = rustix::fs::statat(src, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let perm = Mode::from_raw_mode(st.st_mode & 0o7777);
        match ft {
            rustix::fs::FileType::Directory => {
                rustix::fs::mkdirat(dst, name.as_c_str(), Mode::from_raw_mode(0o700))?;
                let s = rustix::fs::openat(
                    src,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let d = rustix::fs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                copy_dir_contents(&s, &d)?;
                copy_meta(&d, &st)?;
            }
            rustix::fs::FileType::RegularFile => {
                let s = rustix::fs::openat(
                    src,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let d = rustix::fs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut sf = std::fs::File::from(s);
                let mut df = std::fs::File::from(d);
                io::copy(&mut sf, &mut df)?;
                copy_meta(&df, &st)?;
            }
            rustix::fs::FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name.as_c_str(), Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name.as_c_str())?;
                let uid = rustix::fs::Uid::from_raw(st.st_uid);
                let gid = rustix::fs::Gid::from_raw(st.st_gid);
                rustix::fs::chownat(dst, name.as_c_str(), Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
            }
            rustix::fs::FileType::Fifo
            | rustix::fs::FileType::CharacterDevice
            | rustix::fs::FileType::BlockDevice
            | rustix::fs::FileType::Socket => {
                rustix::fs::mknodat(dst, name.as_c_str(), ft, perm, st.st_rdev)?;
                let uid = rustix::fs::Uid::from_raw(st.st_uid);
                let gid = rustix::fs::Gid::from_raw(st.st_gid);
                rustix::fs::chownat(dst, name.as_c_str(), Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
                rustix::fs::chmodat(dst, name.as_c_str(), perm, AtFlags::empty())?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(binds: &[&str]) -> HostConfig {
        HostConfig { binds: Some(binds.iter().map(|s| s.to_string()).collect()), ..Default::default() }
    }

    #[test]
    fn names_follow_mobys_rule() {
        assert!(validate_name("data").is_ok());
        assert!(validate_name("a1_.-b").is_ok());
        assert_eq!(
            validate_name("a").unwrap_err(),
            "volume name is too short, names should be at least two alphanumeric characters"
        );
        assert_eq!(
            validate_name("-x").unwrap_err(),
            "\"-x\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("..").is_err());
    }

    #[test]
    fn options_follow_mobys_rules() {
        let o = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(validate_options(None).is_ok());
        assert!(validate_options(Some(&o(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]))).is_ok());
        assert_eq!(validate_options(Some(&o(&[("bogus", "1")]))).unwrap_err(), "invalid option: \"bogus\"");
        assert_eq!(
            validate_options(Some(&o(&[("type", "tmpfs")]))).unwrap_err(),
            "missing required option: \"device\""
        );
        assert_eq!(validate_options(Some(&o(&[("o", "x")]))).unwrap_err(), "missing required option: \"device\"");
        assert!(validate_options(Some(&o(&[("size", "0")]))).is_ok());
        assert!(validate_options(Some(&o(&[("size", "1g")]))).is_err());
    }

    #[test]
    fn mount_options_split_into_flags_and_data() {
        use rustix::mount::MountFlags as F;
        let (f, d) = parse_mount_options("size=64m,uid=1000,nosuid,ro,noexec");
        assert_eq!(f, F::NOSUID | F::RDONLY | F::NOEXEC);
        assert_eq!(d, "size=64m,uid=1000");
        let (f, d) = parse_mount_options("bind,ro,rw");
        assert_eq!((f, d.as_str()), (F::BIND, ""));
    }

    #[test]
    fn plans_read_volume_binds_mounts_and_volumes_from() {
        let mut h = hc(&["data:/data", "/host:/h", "cache:/c/../cache:ro,nocopy"]);
        h.mounts =
            Some(vec![Mount { typ: Some(MountType::VOLUME), target: Some("/anon".into()), ..Default::default() }]);
        h.volumes_from = Some(vec!["other:ro".into(), "third".into()]);
        let p = plan(&h).unwrap();
        assert_eq!(p.requests.len(), 3);
        assert_eq!(p.requests[0].name.as_deref(), Some("data"));
        assert!(p.requests[0].copy_data && !p.requests[0].readonly);
        assert_eq!(p.requests[1].destination, "/cache");
        assert!(p.requests[1].readonly && !p.requests[1].copy_data);
        assert_eq!(p.requests[2].name, None);
        assert!(p.requests[2].from_mount_flag);
        assert_eq!(p.volumes_from, [("other".to_owned(), "ro".to_owned()), ("third".to_owned(), "rw".to_owned())]);
        let only_binds = without_volumes(&h);
        assert_eq!(only_binds.binds.unwrap(), ["/host:/h"]);
        assert!(only_binds.mounts.unwrap().is_empty());
        for (bad, want) in [
            ("x:/d", "create x: volume name is too short"),
            ("v!:/d", "includes invalid characters"),
            ("data:rel", "mount path must be absolute"),
            ("data:/d:bogus", "invalid mode: bogus"),
            ("data:/", "destination can't be '/'"),
        ] {
            let e = plan(&hc(&[bad])).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
        let h = HostConfig { volumes_from: Some(vec!["c:shared".into()]), ..Default::default() };
        assert_eq!(plan(&h).unwrap_err().to_string(), "invalid mode: shared");
    }

    #[test]
    fn store_creates_refuses_in_use_and_prunes() {
        let dir = tempfile::tempdir().unwrap();
        let s = VolumeStore::open(dir.path()).unwrap();
        let (a, new) = s.create(Some("data"), None, None, None, Some("c1")).unwrap();
        assert!(new && a.driver == "local");
        let md = std::fs::metadata(s.volume_dir("data")).unwrap();
        assert_eq!(md.mode() & 0o7777, VOLUME_DIR_MODE);
        assert_eq!(std::fs::metadata(s.data_path("data")).unwrap().mode() & 0o7777, DATA_DIR_MODE);
        let (_, new) = s.create(Some("data"), Some("local"), None, None, None).unwrap();
        assert!(!new, "a second create returns the volume");
        std::fs::write(s.data_path("data").join("f"), b"12345").unwrap();
        let e = s.remove("data", false).unwrap_err();
        assert_eq!(e.to_string(), "remove data: volume is in use - [c1]");
        assert_eq!(e.kind(), berth_base::ErrorKind::Conflict);
        let e = s.remove("nope", false).unwrap_err();
        assert_eq!(e.to_string(), "get nope: no such volume");
        assert_eq!(e.kind(), berth_base::ErrorKind::NotFound);
        assert_eq!(s.remove("nope", true).unwrap(), 0);
        let e = s.create(Some("x"), None, None, None, None).unwrap_err();
        assert_eq!(e.kind(), berth_base::ErrorKind::InvalidArgument);
        assert!(!s.volume_dir("x").exists(), "a refused create leaves nothing");
        let e = s.create(Some("zz"), Some("nfs-plugin"), None, None, None).unwrap_err();
        assert_eq!(e.kind(), berth_base::ErrorKind::NotFound);
        let (anon, _) = s.create(None, None, None, None, None).unwrap();
        assert!(anon.anonymous() && anon.name.len() == 64);
        std::fs::write(s.data_path(&anon.name).join("g"), b"123").unwrap();
        // Survives a reopen (the daemon's restart).
        drop(s);
        let s = VolumeStore::open(dir.path()).unwrap();
        assert!(s.get("data").is_ok());
        // Users are the engine's to restore: "data" is free now.
        let r = s.prune(&Filters::default(), false).unwrap();
        assert_eq!((r.deleted.clone(), r.reclaimed), (vec![anon.name.clone()], 3), "only anonymous ones without -a");
        assert!(!s.volume_dir(&anon.name).exists());
        let r = s.prune(&Filters::default(), true).unwrap();
        assert_eq!((r.deleted, r.reclaimed), (vec!["data".to_owned()], 5));
        assert!(s.list().is_empty());
        let mut f = Filters::default();
        f.add("until", "1h");
        assert!(s.prune(&f, true).is_err());
    }

    #[test]
    fn copy_up_keeps_owners_modes_and_links_and_stays_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        let src = root.join("srv/app");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        rustix::fs::chown(
            src.join("sub/f"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(55)),
        )
        .ok();
        rustix::fs::chmod(src.join("sub"), Mode::from_raw_mode(0o750)).unwrap();
        rustix::fs::chmod(&src, Mode::from_raw_mode(0o711)).unwrap();
        // A symlinked destination resolves inside the root, never to the host's /etc.
        std::os::unix::fs::symlink("/etc", root.join("escape")).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        copy_up(&root, "/srv/app", &data).unwrap();
        assert_eq!(std::fs::read(data.join("sub/f")).unwrap(), b"hello");
        assert_eq!(std::fs::read_link(data.join("link")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(std::fs::metadata(data.join("sub")).unwrap().mode() & 0o7777, 0o750);
        assert_eq!(std::fs::metadata(&data).unwrap().mode() & 0o7777, 0o711);
        if rustix::process::geteuid().is_root() {
            assert_eq!(std::fs::metadata(data.join("sub/f")).unwrap().uid(), 1234);
        }
        // Not empty any more: a second copy changes nothing.
        std::fs::remove_file(data.join("sub/f")).unwrap();
        copy_up(&root, "/srv/app", &data).unwrap();
        assert!(!data.join("sub/f").exists());
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        copy_up(&root, "/escape", &other).unwrap();
        assert!(std::fs::read_dir(&other).unwrap().next().is_none(), "a link to /etc outside the root copies nothing");
        copy_up(&root, "/missing", &other).unwrap();
    }
}
