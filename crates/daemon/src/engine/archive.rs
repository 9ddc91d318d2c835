//! A container's files from outside: the stat, tar and extract behind `docker cp` and the
//! archive API, `export`, and `diff` (changes against the image).
//!
//! Every path is resolved inside the container's root through `base::fsroot` (openat2
//! with `RESOLVE_IN_ROOT`), never by the host's path walk, and nothing from the container
//! is executed or loaded: the daemon reads and writes the files itself.
//!
//! Which root: a running container's is `/proc/<pid>/root` of its init — its overlay
//! root with its bind mounts as the container sees them, so a path under a bind mount
//! reaches the bind's source, and a symlink inside it still resolves inside the
//! container. The descriptor is checked to be the container's own overlay (same device
//! and inode as its rootfs mount), so a pid reused by a host process cannot hand out the
//! host's `/`. A stopped container's root is mounted for the copy on a thread of its own
//! in a private mount namespace (moby's `openContainerFS` shape): the overlay, then each
//! bind mount on a target resolved inside it and pinned by a descriptor; the namespace,
//! and every mount in it, goes away with the thread when the copy ends. The container's
//! lifecycle lock is held meanwhile, so it cannot start on the same upper dir.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::client::archive::{PathStat, go_mode};
use berth_api::models::{ChangeType, FilesystemChange};
use berth_base::fsroot::{self, Devices, TarOptions};
use bytes::Bytes;
use rustix::fs::{FileType, Mode, OFlags};
use tokio::sync::mpsc;

use super::{Container, Engine, blocking, join_err};
use crate::error::{Error, Result};
use crate::record::{BindSpec, ContainerRecord, Status};

/// A tar streamed to the client in chunks; an `Err` ends it early.
pub type TarStream = mpsc::Receiver<io::Result<Bytes>>;

/// A container's root opened for a copy. Dropping it ends the private mount namespace of a
/// stopped container's view.
pub struct RootView {
    root: OwnedFd,
    _keep: Option<std::sync::mpsc::Sender<()>>,
}

impl RootView {
    fn fd(&self) -> &OwnedFd {
        &self.root
    }
}

/// Writes into a channel of chunks (a tar produced on a blocking thread).
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter { tx, buf: Vec::with_capacity(64 * 1024) }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        // The client went away: stop writing.
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

/// Paths the runtime creates in every container (Docker keeps them in its init layer, so
/// `diff` never shows them).
const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
];

/// Docker's `PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)`.
fn abs_path(path: &str) -> String {
    let clean = fsroot::clean_path(&format!("/{path}"));
    let dot = path == "." || path.ends_with("/.");
    let mut out = clean;
    if dot && !out.ends_with("/.") {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push('.');
    } else if !dot && path.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Go's `filepath.Base` of a slash path.
fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".to_owned();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

fn mtime_rfc3339(secs: i64, nsec: i64) -> String {
    chrono::DateTime::from_timestamp(secs, nsec.clamp(0, 999_999_999) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The stat of `path` inside `root` (Docker's `containerFSView.Stat`): the last component
/// is not followed; a symlink's `linkTarget` is where it finally leads.
fn stat_path(root: &impl AsFd, path: &str) -> io::Result<PathStat> {
    // A trailing `/` or `/.` asks for the directory itself (through a symlink).
    let lookup = if path.ends_with('/') || path.ends_with("/.") {
        fsroot::follow_symlinks(root, path)?
    } else {
        path.to_owned()
    };
    let st = fsroot::lstat_in_root(root, &lookup)?;
    let mut link_target = String::new();
    if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        link_target = fsroot::follow_symlinks(root, &lookup)?;
    }
    if (path.ends_with('/') || path.ends_with("/.")) && FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(io::Error::from(rustix::io::Errno::NOTDIR));
    }
    Ok(PathStat {
        name: base_name(path),
        size: st.st_size,
        mode: go_mode::from_unix(st.st_mode),
        mtime: mtime_rfc3339(st.st_mtime, st.st_mtime_nsec as i64),
        link_target,
    })
}

/// Opens the root of a running container's init, checked to be its own overlay root.
fn proc_root(pid: u32, rootfs: &Path) -> Result<OwnedFd> {
    let p = format!("/proc/{pid}/root");
    let fd = rustix::fs::open(p.as_str(), OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::io(format!("open {p}"), e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io(format!("stat {p}"), e.into()))?;
    let want = std::fs::metadata(rootfs).map_err(|e| Error::io(format!("stat {}", rootfs.display()), e))?;
    if st.st_dev != want.dev() || st.st_ino != want.ino() {
        return Err(Error::Conflict(format!("container process {pid} has exited")));
    }
    Ok(fd)
}

/// Mounts a stopped container's root (and, with `binds`, its bind mounts) in a private
/// mount namespace on a thread of its own, and returns the root's descriptor; the
/// namespace lives until the returned sender is dropped.
fn private_root(
    images: Arc<berth_image::ImageStore>,
    image: berth_base::Digest,
    dir: PathBuf,
    binds: Vec<BindSpec>,
) -> Result<RootView> {
    let (res_tx, res_rx) = std::sync::mpsc::channel::<Result<OwnedFd>>();
    let (keep_tx, keep_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("berth-cpfs".into())
        .spawn(move || {
            let r = (|| -> Result<OwnedFd> {
                // SAFETY: this thread is ours alone and never returns to a pool; it leaves
                // the process's shared fs context (CLONE_FS, implied) and mount namespace,
                // which affects no other thread, and exits when the view is dropped.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
                    .map_err(|e| Error::io("unshare the mount namespace", e.into()))?;
                // Nothing mounted here may propagate back to the host's namespace.
                rustix::mount::mount_change(
                    "/",
                    rustix::mount::MountPropagationFlags::DOWNSTREAM | rustix::mount::MountPropagationFlags::REC,
                )
                .map_err(|e| Error::io("make / a slave mount", e.into()))?;
                let rootfs = images.mount_rootfs(&image, &dir)?;
                let root = fsroot::open_root(&rootfs).map_err(|e| Error::io("open the container root", e))?;
                for b in &binds {
                    mount_bind(&root, b)?;
                }
                Ok(root)
            })();
            let ok = r.is_ok();
            let _ = res_tx.send(r);
            if ok {
                // Keep the namespace (and so the mounts) until the view is dropped.
                let _ = keep_rx.recv();
            }
        })
        .map_err(|e| Error::io("start the copy thread", e))?;
    let root = res_rx.recv().map_err(|_| Error::Internal("the copy thread ended early".into()))??;
    Ok(RootView { root, _keep: Some(keep_tx) })
}

/// Bind-mounts `b.source` on its destination resolved inside `root` (created when
/// missing, as the runtime does at start), through a descriptor so that a symlink swapped
/// in meanwhile cannot redirect the mount. Runs in the private namespace.
fn mount_bind(root: &OwnedFd, b: &BindSpec) -> Result<()> {
    let is_dir = std::fs::metadata(&b.source).map(|m| m.is_dir()).unwrap_or(true);
    let dest = b.destination.as_str();
    if is_dir {
        fsroot::create_dirs(root, dest, None, true)?;
    } else {
        let parent = Path::new(dest).parent().and_then(|p| p.to_str()).unwrap_or("/");
        let pfd = fsroot::create_dirs(root, parent, None, true)?;
        let name = Path::new(dest).file_name().unwrap_or(OsStr::new("."));
        match rustix::fs::openat(
            &pfd,
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o755),
        ) {
            Ok(_) | Err(rustix::io::Errno::ISDIR) => {}
            Err(e) => return Err(Error::io(format!("create mount point {dest}"), e.into())),
        }
    }
    let target = fsroot::open_in_root(root, dest, OFlags::PATH | OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| Error::io(format!("open mount point {dest}"), e))?;
    let fd_path = format!("/proc/thread-self/fd/{}", target.as_raw_fd());
    rustix::mount::mount_bind_recursive(&b.source, fd_path.as_str())
        .map_err(|e| Error::io(format!("bind {} on {dest}", b.source.display()), e.into()))?;
    if b.readonly {
        let real = std::fs::read_link(&fd_path).map_err(|e| Error::io(format!("readlink {fd_path}"), e))?;
        rustix::mount::mount_remount(&real, rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY, "")
            .map_err(|e| Error::io(format!("make {dest} read-only"), e.into()))?;
    }
    Ok(())
}

/// Whether `abs` (resolved) lies in a read-only place of the container: Docker's words.
/// The container's bind mounts and volumes, parents first, as the container sees them.
fn view_binds(rec: &ContainerRecord) -> Vec<BindSpec> {
    let mut all = rec.binds.clone();
    all.extend(rec.volumes.iter().map(|v| BindSpec {
        source: v.source.clone(),
        destination: v.destination.clone(),
        readonly: v.readonly,
        mode: v.mode.clone(),
        from_mount_flag: v.from_mount_flag,
    }));
    all.sort_by_key(|b| super::volumes::depth(&b.destination));
    all
}

fn check_writable(binds: &[BindSpec], readonly_rootfs: bool, abs: &str) -> Result<()> {
    let best = binds
        .iter()
        .filter(|b| {
            let d = b.destination.trim_end_matches('/');
            abs == d || abs.starts_with(&format!("{d}/")) || d.is_empty()
        })
        .max_by_key(|b| b.destination.len());
    match best {
        Some(b) if b.readonly => Err(Error::InvalidArgument("mounted volume is marked read-only".into())),
        Some(_) => Ok(()),
        None if readonly_rootfs => Err(Error::InvalidArgument("container rootfs is marked read-only".into())),
        None => Ok(()),
    }
}

/// Maps "not there" to Docker's `Could not find the file`.
fn not_found(path: &str, container: &str) -> impl Fn(io::Error) -> Error {
    let (path, container) = (path.to_owned(), container.to_owned());
    move |e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::FileNotFound { path: path.clone(), container: container.clone() }
        } else if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) {
            Error::InvalidArgument(format!("not a directory: {path}"))
        } else {
            Error::io(format!("stat {path}"), e)
        }
    }
}

/// Resolves the container user (`Config.User`) to numeric ids inside `root`.
fn container_owner(root: &OwnedFd, user: &str) -> Result<Option<(u32, u32)>> {
    if user.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(format!("/proc/thread-self/fd/{}", root.as_raw_fd()));
    let u = berth_runtime::spec::resolve_user(&path, user)?;
    Ok(Some((u.uid, u.gid)))
}

impl Engine {
    /// Opens a container's root for a copy. For a stopped container the returned guard
    /// holds its lifecycle lock; with `binds`, the bind mounts are part of the view
    /// (`export` leaves them out, as Docker does).
    async fn open_view<'a>(
        &self,
        c: &'a Container,
        with_binds: bool,
    ) -> Result<(RootView, Option<tokio::sync::MutexGuard<'a, ()>>)> {
        let rec = c.snapshot();
        let dir = self.container_dir(&c.id);
        if rec.state.status == Status::Running && rec.state.pid > 0 {
            let (pid, rootfs) = (rec.state.pid, dir.join("rootfs"));
            if with_binds {
                let root = blocking(move || proc_root(pid, &rootfs)).await?;
                return Ok((RootView { root, _keep: None }, None));
            }
            // The overlay alone, as the host mounted it for the running container.
            let root = blocking(move || {
                let fd = fsroot::open_root(&rootfs).map_err(|e| Error::io("open the container root", e))?;
                let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("stat the container root", e.into()))?;
                let parent = std::fs::metadata(rootfs.parent().unwrap_or(Path::new("/")))
                    .map_err(|e| Error::io("stat the container dir", e))?;
                if st.st_dev == parent.dev() {
                    return Err(Error::Conflict("the container's root is not mounted".into()));
                }
                Ok(fd)
            })
            .await?;
            return Ok((RootView { root, _keep: None }, None));
        }
        if rec.state.status == Status::Removing {
            return Err(Error::Conflict(format!("container {} is marked for removal and cannot be used", c.id)));
        }
        let guard = c.op.lock().await;
        let image: berth_base::Digest =
            rec.image_id.parse().map_err(|e| Error::Internal(format!("bad image id {}: {e}", rec.image_id)))?;
        let images = self.images.clone();
        let binds = if with_binds { view_binds(&rec) } else { Vec::new() };
        let view =
            tokio::task::spawn_blocking(move || private_root(images, image, dir, binds)).await.map_err(join_err)??;
        Ok((view, Some(guard)))
    }

    /// `HEAD /containers/{id}/archive`: what `path` is.
    pub async fn container_stat_path(&self, name: &str, path: &str) -> Result<PathStat> {
        let c = self.get(name)?;
        let (view, guard) = self.open_view(&c, true).await?;
        let (p, n) = (path.to_owned(), name.to_owned());
        let r = blocking(move || stat_path(view.fd(), &p).map_err(not_found(&p, &n))).await;
        drop(guard);
        r
    }

    /// `GET /containers/{id}/archive`: the stat of `path` and a tar of it, streamed while
    /// the view stays open (and a stopped container stays locked).
    pub async fn container_archive(self: &Arc<Self>, name: &str, path: &str) -> Result<(PathStat, TarStream)> {
        let c = self.get(name)?;
        let (stat_tx, stat_rx) = tokio::sync::oneshot::channel::<Result<PathStat>>();
        let (tx, rx) = mpsc::channel(8);
        let e = self.clone();
        let (path, name) = (path.to_owned(), name.to_owned());
        tokio::spawn(async move {
            let (view, guard) = match e.open_view(&c, true).await {
                Ok(v) => v,
                Err(err) => {
                    let _ = stat_tx.send(Err(err));
                    return;
                }
            };
            let work = tokio::task::spawn_blocking(move || {
                let abs = abs_path(&path);
                let stat = match stat_path(view.fd(), &abs).map_err(not_found(&path, &name)) {
                    Ok(s) => s,
                    Err(err) => {
                        let _ = stat_tx.send(Err(err));
                        return;
                    }
                };
                let (dir, base) = if stat.is_dir() {
                    (abs.clone(), ".".to_owned())
                } else {
                    let t = abs.trim_end_matches('/');
                    let (d, b) = t.rsplit_once('/').unwrap_or(("", t));
                    (if d.is_empty() { "/".to_owned() } else { d.to_owned() }, b.to_owned())
                };
                let rebase = base_name(&abs);
                let _ = stat_tx.send(Ok(stat));
                let mut w = ChannelWriter::new(tx.clone());
                let r = fsroot::pack_tar(view.fd(), &dir, &base, &rebase, &mut w)
                    .map_err(|e| io::Error::other(e.to_string()))
                    .and_then(|_| w.flush());
                if let Err(err) = r {
                    tracing::warn!(error = %err, "archive of a container path ended early");
                    let _ = tx.blocking_send(Err(err));
                }
                drop(view);
            });
            let _ = work.await;
            drop(guard);
        });
        let stat = stat_rx.await.map_err(|_| Error::Internal("the archive task ended early".into()))??;
        Ok((stat, rx))
    }

    /// `PUT /containers/{id}/archive`: extracts the tar `src` into the directory `path`
    /// (symlinks followed, inside the container), with cp's copy rules.
    pub async fn container_extract(
        &self,
        name: &str,
        path: &str,
        copy_uid_gid: bool,
        no_overwrite_dir_non_dir: bool,
        src: Box<dyn Read + Send>,
    ) -> Result<()> {
        let c = self.get(name)?;
        let rec = c.snapshot();
        let (view, guard) = self.open_view(&c, true).await?;
        let (p, n) = (path.to_owned(), name.to_owned());
        let binds = view_binds(&rec);
        let readonly_rootfs = rec.host_config.readonly_rootfs.unwrap_or(false);
        let user = rec.config.user.clone().unwrap_or_default();
        let r = blocking(move || {
            let mut src = src;
            let root = view.fd();
            let abs = fsroot::follow_symlinks(root, &format!("/{p}")).map_err(not_found(&p, &n))?;
            let st = fsroot::lstat_in_root(root, &abs).map_err(not_found(&p, &n))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                return Err(Error::InvalidArgument("extraction point is not a directory".into()));
            }
            check_writable(&binds, readonly_rootfs, &abs)?;
            let owner = if copy_uid_gid { container_owner(root, &user)? } else { None };
            // Decompressed here, by the daemon: nothing of the container's is run.
            let mut plain = berth_image::decompress(&mut src)?;
            let mut opts = TarOptions::copy("archive", owner, Devices::Create);
            opts.keep_non_dirs = no_overwrite_dir_non_dir;
            fsroot::unpack_tar(&mut plain, root, &abs, &opts).map_err(|e| match &e {
                berth_base::Error::Fs { source, .. }
                    if source.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()) =>
                {
                    Error::InvalidArgument("mounted volume is marked read-only".into())
                }
                _ => Error::Fs(e),
            })?;
            Ok(())
        })
        .await;
        drop(guard);
        r
    }

    /// `GET /containers/{id}/export`: the container's root filesystem (without its bind
    /// mounts) as a tar.
    pub async fn container_export(self: &Arc<Self>, name: &str) -> Result<TarStream> {
        let c = self.get(name)?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        let (tx, rx) = mpsc::channel(8);
        let e = self.clone();
        tokio::spawn(async move {
            let (view, guard) = match e.open_view(&c, false).await {
                Ok(v) => v,
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let work = tokio::task::spawn_blocking(move || {
                let mut w = ChannelWriter::new(tx.clone());
                let r = export_tar(view.fd(), &mut w).and_then(|_| w.flush());
                if let Err(err) = r {
                    tracing::warn!(error = %err, "export ended early");
                    let _ = tx.blocking_send(Err(err));
                }
            });
            let _ = work.await;
            drop(guard);
        });
        ready_rx.await.map_err(|_| Error::Internal("the export task ended early".into()))??;
        Ok(rx)
    }

    /// `GET /containers/{id}/changes`: what the container changed against its image, from
    /// its overlay upper dir, sorted by path.
    pub async fn container_changes(&self, name: &str) -> Result<Vec<FilesystemChange>> {
        let c = self.get(name)?;
        let rec = c.snapshot();
        let image: berth_base::Digest =
            rec.image_id.parse().map_err(|e| Error::Internal(format!("bad image id {}: {e}", rec.image_id)))?;
        let images = self.images.clone();
        let upper = self.container_dir(&c.id).join("upper");
        blocking(move || {
            let lowers: Vec<PathBuf> =
                images.image_layers(&image)?.iter().rev().map(|l| images.snapshot_dir(&l.diff_id)).collect();
            changes(&upper, &lowers)
        })
        .await
    }
}

/// The whole root, names without `./` (as `docker export` writes them).
fn export_tar(root: &OwnedFd, w: &mut dyn Write) -> io::Result<()> {
    fsroot::pack_tar(root, "/", "", "", w).map(|_| ()).map_err(|e| io::Error::other(e.to_string()))
}

/// Whether `rel` exists in the image, looking down the layers (top first) until one has
/// it or hides it with a whiteout.
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    for l in lowers {
        match std::fs::symlink_metadata(l.join(rel)) {
            Ok(m) => {
                // An overlay whiteout: a 0/0 character device.
                return !(m.file_type().is_char_device_like() && m.rdev() == 0);
            }
            Err(_) => continue,
        }
    }
    false
}

trait CharDev {
    fn is_char_device_like(&self) -> bool;
}

impl CharDev for std::fs::FileType {
    fn is_char_device_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_char_device()
    }
}

/// Walks the upper dir: a whiteout is a deletion, an entry the image has a modification,
/// anything else an addition (and nothing below an added directory is listed again).
fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<FilesystemChange>> {
    let mut out: BTreeMap<String, ChangeType> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
        };
        for e in rd {
            let e = e.map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
            let name = e.file_name();
            let child = rel.join(&name);
            let shown = format!("/{}", child.display());
            let m = e.metadata().map_err(|e| Error::io(format!("stat {shown}"), e))?;
            if m.file_type().is_char_device_like() && m.rdev() == 0 {
                out.insert(shown, ChangeType::_2);
                continue;
            }
            let existed = in_lowers(lowers, &child);
            out.insert(shown, if existed { ChangeType::_0 } else { ChangeType::_1 });
            if m.is_dir() {
                // An added directory's content is new too (Docker lists it all).
                stack.push(child);
            }
        }
    }
    // The runtime's mount points, and directories changed only by them.
    out.retain(|p, _| !INIT_PATHS.contains(&p.as_str()) && !p.starts_with("/dev/"));
    let keep: Vec<String> = out.keys().cloned().collect();
    out.retain(|p, k| {
        *k != ChangeType::_0 || !is_init_parent(p) || keep.iter().any(|q| q.starts_with(&format!("{p}/")))
    });
    Ok(out.into_iter().map(|(path, kind)| FilesystemChange { path, kind }).collect())
}

/// A directory the runtime's mount points live in (`/etc`, `/`).
fn is_init_parent(p: &str) -> bool {
    INIT_PATHS.iter().any(|i| i.starts_with(&format!("{p}/")))
}

/// Docker's `diff` letters.
pub fn change_letter(k: ChangeType) -> &'static str {
    match k {
        ChangeType::_0 => "C",
        ChangeType::_1 => "A",
        ChangeType::_2 => "D",
    }
}

/// What `POST /images/load` streams: progress and results, or the error that ended it.
pub type LoadStream = mpsc::Receiver<Result<berth_image::archive::LoadEvent>>;

impl Engine {
    /// `GET /images/get`: an archive of the named images. A name with a tag saves that
    /// tag, a bare repository name every tag of that repository, an id no tag (as Docker).
    pub async fn save_images(self: &Arc<Self>, names: Vec<String>) -> Result<TarStream> {
        let mut items: Vec<berth_image::archive::SaveItem> = Vec::new();
        for n in &names {
            let img = self.image(n).await?;
            let tags: Vec<berth_base::Reference> = match berth_base::Reference::parse(n) {
                Ok(r) if r.digest().is_some() => Vec::new(),
                Ok(r) if r.tag().is_some() => vec![r],
                Ok(r) => img
                    .repo_tags
                    .iter()
                    .filter_map(|t| berth_base::Reference::parse(t).ok())
                    .filter(|t| t.name() == r.name())
                    .collect(),
                Err(_) => Vec::new(),
            };
            match items.iter_mut().find(|i| i.image.id == img.id) {
                Some(i) => {
                    for t in tags {
                        if !i.tags.contains(&t) {
                            i.tags.push(t);
                        }
                    }
                }
                None => items.push(berth_image::archive::SaveItem { image: img, tags }),
            }
        }
        for (i, n) in items.iter().zip(&names) {
            self.emit_image(&i.image.id.to_string(), n, "save");
        }
        let (tx, rx) = mpsc::channel(8);
        let images = self.images.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter::new(tx.clone());
            let r = berth_image::archive::save(&images, &items, &mut w)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|_| w.flush());
            if let Err(err) = r {
                tracing::warn!(error = %err, "image save ended early");
                let _ = tx.blocking_send(Err(err));
            }
        });
        Ok(rx)
    }

    /// `POST /images/load`: loads the archive read from `src` on the blocking pool;
    /// progress (left out with `quiet`) and results arrive on the returned channel.
    pub fn load_images(self: &Arc<Self>, src: Box<dyn Read + Send>, quiet: bool) -> LoadStream {
        let (tx, rx) = mpsc::channel(64);
        let images = self.images.clone();
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut src = src;
            let mut on = |ev: berth_image::archive::LoadEvent| {
                match &ev {
                    berth_image::archive::LoadEvent::Loaded(name) => engine.emit_image(name, name, "load"),
                    berth_image::archive::LoadEvent::LoadedId(id) => {
                        engine.emit_image(&id.to_string(), &id.to_string(), "load")
                    }
                    berth_image::archive::LoadEvent::Progress { .. } => {}
                }
                if quiet && matches!(ev, berth_image::archive::LoadEvent::Progress { .. }) {
                    return;
                }
                let _ = tx.blocking_send(Ok(ev));
            };
            if let Err(e) = berth_image::archive::load(&images, &mut src, &mut on) {
                let _ = tx.blocking_send(Err(e.into()));
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_trailing_dots_and_slashes() {
        assert_eq!(abs_path("etc"), "/etc");
        assert_eq!(abs_path("/etc/"), "/etc/");
        assert_eq!(abs_path("/etc/."), "/etc/.");
        assert_eq!(abs_path("../../etc/./x"), "/etc/x");
        assert_eq!(abs_path("/"), "/");
        assert_eq!(base_name("/etc/."), ".");
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/"), "/");
    }

    #[test]
    fn read_only_places_are_refused_in_dockers_words() {
        let b = |d: &str, ro: bool| BindSpec {
            source: "/srv".into(),
            destination: d.into(),
            readonly: ro,
            mode: String::new(),
            from_mount_flag: false,
        };
        let binds = [b("/data", true), b("/data/rw", false)];
        assert_eq!(
            check_writable(&binds, false, "/data/x").unwrap_err().to_string(),
            "mounted volume is marked read-only"
        );
        check_writable(&binds, false, "/data/rw/x").unwrap();
        check_writable(&binds, false, "/database").unwrap();
        assert_eq!(
            check_writable(&binds, true, "/tmp").unwrap_err().to_string(),
            "container rootfs is marked read-only"
        );
    }

    #[test]
    fn changes_from_an_upper_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, lower) = (dir.path().join("upper"), dir.path().join("lower"));
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), b"").unwrap();
        std::fs::write(lower.join("gone"), b"").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("new/sub")).unwrap();
        std::fs::write(upper.join("etc/x"), b"").unwrap();
        std::fs::write(upper.join("etc/passwd"), b"").unwrap();
        std::fs::write(upper.join("etc/hosts"), b"").unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        // A whiteout needs mknod (root); the unit test covers it when it can.
        let whiteout =
            rustix::fs::mknodat(rustix::fs::CWD, upper.join("gone"), FileType::CharacterDevice, Mode::empty(), 0)
                .is_ok();
        let got: Vec<String> = changes(&upper, &[lower])
            .unwrap()
            .into_iter()
            .map(|c| format!("{} {}", change_letter(c.kind), c.path))
            .collect();
        let mut want = vec!["C /etc", "C /etc/passwd", "A /etc/x"];
        if whiteout {
            want.push("D /gone");
        }
        want.extend(["A /new", "A /new/sub"]);
        assert_eq!(got, want);
    }
}
