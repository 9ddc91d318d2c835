//! Container root filesystems: an overlay mount of an image's layer snapshots (read-only
//! lower dirs) under a per-container upper and work dir.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::Error;

/// The option string must fit in one page, which the kernel copies for mount(2).
const MAX_OPTIONS: usize = 4000;

fn plain(p: &Path) -> Option<String> {
    let s = p.to_str()?;
    // Overlay splits lowerdir on ':' and options on ','.
    (!s.contains([',', ':'])).then(|| s.to_owned())
}

/// True when `dir/rootfs` is a mount point (it is on another device than `dir`).
fn is_mounted(dir: &Path, rootfs: &Path) -> bool {
    match (fs::metadata(dir), fs::metadata(rootfs)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// A directory's detached, child-less mount (`open_tree(OPEN_TREE_CLONE)`, not recursive),
/// held open so that overlay can be given upper and work dirs through it.
///
/// Why: overlay takes a private clone of its upper dir's mount, and the kernel first walks
/// every mount attached under that mount (`has_locked_children`). The containers directory
/// is one mount with every running container's root attached under it, so that walk grew
/// with the number of containers (0.4 ms of each start with 1000 running, here). Through
/// this clone the upper dir's mount has no children. Kernels before 6.15 refuse a detached
/// mount there; overlay then gets the plain paths ([`DetachedDir::refused`]).
#[derive(Debug)]
pub struct DetachedDir {
    dir: PathBuf,
    fd: OwnedFd,
    refused: std::sync::atomic::AtomicBool,
}

impl DetachedDir {
    /// Clones the mount at `dir` (which must exist), without the mounts under it.
    pub fn open(dir: &Path) -> Result<DetachedDir, Error> {
        use rustix::mount::OpenTreeFlags;
        let fd = rustix::mount::open_tree(
            rustix::fs::CWD,
            dir,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(|e| Error::io("clone the mount of", dir)(e.into()))?;
        Ok(DetachedDir { dir: dir.to_path_buf(), fd, refused: false.into() })
    }

    /// `path` (under the directory) as this process reaches it through the clone.
    fn alias(&self, path: &Path) -> Option<String> {
        if self.refused() {
            return None;
        }
        let rel = path.strip_prefix(&self.dir).ok()?;
        plain(&Path::new(&format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(rel))
    }

    /// Whether the kernel refused the clone as an overlay layer once (and it is not used).
    pub fn refused(&self) -> bool {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Mounts overlay at `container_dir/rootfs` with `lowers` (top first); the upper and work
/// dirs through `base` when `container_dir` is in its directory.
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    container_dir: &Path,
    base: Option<&DetachedDir>,
) -> Result<PathBuf, Error> {
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    let rootfs = container_dir.join("rootfs");
    for d in [&upper, &work, &rootfs] {
        fs::create_dir_all(d).map_err(Error::io("create", d))?;
    }
    if is_mounted(container_dir, &rootfs) {
        return Ok(rootfs);
    }
    let (upper_s, work_s) = match (plain(&upper), plain(&work)) {
        (Some(u), Some(w)) => (u, w),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "container directory {} contains ',' or ':', which overlayfs cannot take",
                container_dir.display()
            )));
        }
    };
    if let Some(b) = base
        && let (Some(u), Some(w)) = (b.alias(&upper), b.alias(&work))
    {
        match mount_with(lowers, &rootfs, &u, &w) {
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                // Refused: the kernel's (older than 6.15) if the plain paths do.
                let done = mount_with(lowers, &rootfs, &upper_s, &work_s)?;
                tracing::debug!("overlay refuses an upper dir on a detached mount here; plain paths from now on");
                b.refused.store(true, std::sync::atomic::Ordering::Relaxed);
                return Ok(done);
            }
            done => return done,
        }
    }
    mount_with(lowers, &rootfs, &upper_s, &work_s)
}

/// Mounts overlay at `rootfs` with `lowers` (top first) and the upper and work dirs named.
fn mount_with(lowers: &[PathBuf], rootfs: &Path, upper_s: &str, work_s: &str) -> Result<PathBuf, Error> {
    let mut extra = String::new();
    // Docker's overlay2 needs these off so that the upper dir diffs naively.
    for opt in ["index", "redirect_dir", "metacopy"] {
        if Path::new("/sys/module/overlay/parameters").join(opt).exists() {
            extra.push_str(&format!(",{opt}=off"));
        }
    }
    let tail = format!(",upperdir={upper_s},workdir={work_s}{extra}");
    let full: Option<Vec<String>> = lowers.iter().map(|p| plain(p)).collect();
    let mut _held: Vec<OwnedFd> = Vec::new();
    let lower = match full {
        Some(v) if v.iter().map(|s| s.len() + 1).sum::<usize>() + tail.len() + 10 < MAX_OPTIONS => v.join(":"),
        _ => {
            // Too long (or unsafe characters): name each lower dir by an fd of ours, as
            // `/proc/self/fd/N` — short, and resolved by the kernel while we hold them open.
            let mut names = Vec::new();
            for p in lowers {
                let fd = rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| Error::io("open", p)(e.into()))?;
                names.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                _held.push(fd);
            }
            names.join(":")
        }
    };
    let opts = format!("lowerdir={lower}{tail}");
    if opts.len() >= MAX_OPTIONS {
        return Err(Error::InvalidArgument(format!("image has too many layers to mount ({})", lowers.len())));
    }
    let data = std::ffi::CString::new(opts).map_err(|_| Error::InvalidArgument("NUL in mount options".into()))?;
    rustix::mount::mount("overlay", rootfs, "overlay", MountFlags::empty(), data.as_c_str())
        .map_err(|e| Error::io("mount overlay at", rootfs)(e.into()))?;
    Ok(rootfs.to_path_buf())
}

/// Unmounts `container_dir/rootfs`; not mounted or missing is fine.
pub(crate) fn unmount(container_dir: &Path) -> Result<(), Error> {
    let rootfs = container_dir.join("rootfs");
    loop {
        match rustix::mount::unmount(&rootfs, UnmountFlags::empty()) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => {
                // Something (a late exec, a shell's cwd) still pins it: detach so the path
                // is free now and the kernel finishes when the last user goes.
                return rustix::mount::unmount(&rootfs, UnmountFlags::DETACH)
                    .map_err(|e| Error::io("unmount", &rootfs)(io::Error::from(e)));
            }
            Err(e) => return Err(Error::io("unmount", &rootfs)(e.into())),
        }
        // Stacked mounts (mounted twice by a racing caller) come off one by one.
        if !is_mounted(container_dir, &rootfs) {
            return Ok(());
        }
    }
}

/// Makes `dir` (created if missing) a mount of its own: a private bind mount of itself,
/// so that every mount made under it (container roots, network namespace files) is a
/// child of that one mount. A process that needs none of them can then drop them all
/// from a mount namespace of its own with a single lazy unmount of `dir`, whatever their
/// number (each unmount costs an RCU grace period, so one per child would not do); the
/// shim does so before libcontainer runs (`runtime::shim::mountns`). Already such a mount
/// (a daemon restart): nothing is done. The bind is private, so nothing mounted under it
/// propagates to other namespaces. It stays when the daemon stops, for the containers
/// that keep running; as in Docker's overlay2 home, nothing else depends on it.
pub fn ensure_parent_mount(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    if is_parent_mount(dir) {
        return Ok(());
    }
    rustix::mount::mount_bind(dir, dir).map_err(|e| Error::io("bind-mount onto itself", dir)(e.into()))?;
    rustix::mount::mount_change(dir, rustix::mount::MountPropagationFlags::PRIVATE)
        .map_err(|e| Error::io("make private", dir)(e.into()))
}

/// Whether `dir` is a mount root on the same filesystem as its parent directory: a bind
/// mount of a directory of that filesystem, as [`ensure_parent_mount`] makes. A different
/// filesystem mounted there (an admin's disk) is not one: hiding it would hide its files.
pub fn is_parent_mount(dir: &Path) -> bool {
    use rustix::fs::{AtFlags, CWD, StatxAttributes, StatxFlags};
    let Some(parent) = dir.parent() else { return false };
    let flags = AtFlags::SYMLINK_NOFOLLOW;
    match (
        rustix::fs::statx(CWD, dir, flags, StatxFlags::BASIC_STATS),
        rustix::fs::statx(CWD, parent, flags, StatxFlags::BASIC_STATS),
    ) {
        (Ok(d), Ok(p)) => {
            d.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && d.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
                && (d.stx_dev_major, d.stx_dev_minor) == (p.stx_dev_major, p.stx_dev_minor)
        }
        _ => false,
    }
}
