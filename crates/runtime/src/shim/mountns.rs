//! The shim's own mount namespace, without the other containers' mounts.
//!
//! The daemon mounts every container's overlay root (and binds every network namespace
//! file) in the host's mount namespace, so with N containers running the host has about
//! 2N more mounts. Left there, each new container pays for all of them: its mount
//! namespace is cloned from the shim's (N mounts copied), made `rslave` (N walked), the
//! old root is detached after `pivot_root` (N unmounted), and libcontainer and libcgroups
//! parse `/proc/self/mountinfo` line by line about 30 times per create (cgroup v1 mount
//! points, the rootfs' parent mount) and again at delete and at every exec. Measured on
//! the 2-core bench host, `run --rm true` went from 59 ms with 10 running to 186 ms
//! with 1000.
//!
//! So before libcontainer runs, the shim moves to a mount namespace of its own, private
//! (nothing it does there reaches the host), and drops the daemon's parent mounts of
//! those per-container mounts (`image::ensure_parent_mount`: the containers directory and
//! the netns directory, each a bind of itself) with one lazy unmount each, after taking a
//! detached copy (`open_tree(OPEN_TREE_CLONE)`) of the few mounts under them that this
//! container needs (its root, the network namespace file it joins, any bind source that
//! lives there), which are then attached again at the same paths (`move_mount`). Paths
//! under the dropped parents keep resolving, to the very same directories (the parents
//! are binds of themselves). The container's mount namespace is then cloned from one
//! holding only the host's own mounts plus these, and everything that reads mountinfo
//! there reads a short file. The daemon keeps using its mounts in the host namespace
//! (cp, export, diff, commit, rm, live restore), so nothing else changes.
//!
//! The unshare copies every mount of the daemon's namespace and the lazy unmount walks
//! every container's mount: O(N), 5 ms with 1000 containers running. A standby shim
//! ([`super::standby`]) does that part ahead of need ([`prepare`]), keeping a descriptor of
//! the namespace it left; when its container's options arrive, [`isolate_prepared`]
//! returns there for a moment, takes the detached copies of the container's mounts, and
//! attaches them in the namespace it prepared. A prepared namespace is a snapshot: it is
//! used only while it is young ([`FRESH`]) and only when every path the container binds from
//! outside the parents shows the same file in it as in the daemon's namespace; otherwise
//! the shim isolates afresh as above.
//!
//! Even off the start path that O(N) work was paid once per container, on the same two
//! cores as everything else: with 1000 running, the standby's unshare, lazy unmount and
//! the namespace's later teardown took about 9 ms of CPU per `run --rm`, more than any
//! other part that grows with N. So the daemon makes the namespace without the parents once
//! ([`Template`], in a thread of its own) and hands it to each standby it starts while the
//! template is young; the standby enters it and unshares there, copying only the host's
//! own mounts. The standby's snapshot is then as old as the template, which is what
//! [`FRESH`] is measured against.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, CWD, StatxFlags};
use rustix::io::Errno;
use rustix::mount::{MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags};

use crate::Error;

/// The device a path is on (not following a final symlink), or None when it is missing.
fn device(p: &Path) -> Option<(u32, u32)> {
    rustix::fs::statx(CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)
        .ok()
        .map(|s| (s.stx_dev_major, s.stx_dev_minor))
}

/// A file as a path shows it: device major, minor and inode.
type Identity = (u32, u32, u64);

/// Detached copies of mounts, each with the path it came from.
type Held = Vec<(OwnedFd, PathBuf)>;

/// The device and inode a path shows (not following a final symlink).
fn identity(p: &Path) -> Option<Identity> {
    rustix::fs::statx(CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)
        .ok()
        .map(|s| (s.stx_dev_major, s.stx_dev_minor, s.stx_ino))
}

/// Every path the container takes from the host: its root, the spec's namespace paths and
/// bind-mount sources.
fn sources(spec: &oci_spec::runtime::Spec, rootfs: &Path) -> Vec<PathBuf> {
    let mut paths = vec![rootfs.to_path_buf()];
    if let Some(linux) = spec.linux() {
        paths.extend(linux.namespaces().iter().flatten().filter_map(|n| n.path().clone()));
    }
    paths.extend(
        spec.mounts()
            .iter()
            .flatten()
            .filter(|m| m.options().iter().flatten().any(|o| o == "bind" || o == "rbind"))
            .filter_map(|m| m.source().clone()),
    );
    paths
}

/// The paths under `parents` that the container needs and that are not plain files or
/// directories of the parent's filesystem (a mount of their own: the overlay root, an
/// nsfs file, or something inside another mount): `rootfs`, the spec's namespace paths
/// and bind-mount sources.
fn needed(spec: &oci_spec::runtime::Spec, rootfs: &Path, parents: &[(PathBuf, (u32, u32))]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in sources(spec, rootfs) {
        let Some((_, dev)) = parents.iter().find(|(d, _)| p.starts_with(d) && p != *d) else { continue };
        if device(&p).is_some_and(|d| d != *dev) && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Moves this (single-threaded) process to a private mount namespace without the mounts
/// under `parents`, keeping those the container needs at their paths; returns those paths
/// (the copies attached in the private namespace, see [`release`]). `parents` lists the
/// daemon's parent mounts (`image::ensure_parent_mount`); an empty list (an older daemon,
/// or one that could not make them) leaves the process where it is, with nothing attached.
pub(crate) fn isolate(
    spec: &oci_spec::runtime::Spec,
    rootfs: &Path,
    parents: &[PathBuf],
) -> Result<Vec<PathBuf>, Error> {
    let parents = with_devices(parents);
    if parents.is_empty() {
        return Ok(Vec::new());
    }
    let keep = needed(spec, rootfs, &parents);
    unshare_private(rootfs)?;
    let Some(held) = clone_all(&keep)? else { return Ok(Vec::new()) };
    detach_parents(&parents)?;
    attach_all(held)?;
    Ok(keep)
}

/// Detaches the copies [`isolate`] attached in this process's private namespace, once the
/// container runs: its own namespace has its root and its network namespace from them, and
/// nothing the shim does later (start, exec, delete) goes through their paths. While a copy
/// is attached here, the path under the daemon's parent is a mount point in some namespace,
/// so the daemon's unlink of the network namespace file and rmdir of the root's directory
/// at removal walk every mount of the daemon's namespace (`__is_local_mountpoint`): with
/// 1000 containers running, about a millisecond of every `run --rm`. Errors are ignored:
/// a copy that stays only costs that time. Only ever given paths in a private namespace.
pub(crate) fn release(attached: &[PathBuf]) {
    for p in attached {
        let _ = rustix::mount::unmount(p, UnmountFlags::DETACH);
    }
}

fn fail(what: &'static str, p: &Path, e: Errno) -> Error {
    Error::io(what, p, e.into())
}

fn with_devices(parents: &[PathBuf]) -> Vec<(PathBuf, (u32, u32))> {
    parents.iter().filter_map(|p| device(p).map(|dev| (p.clone(), dev))).collect()
}

/// A private copy of the current mount namespace, entered.
fn unshare_private(what: &Path) -> Result<(), Error> {
    // SAFETY: the shim is single-threaded (see the module doc of `shim`), so no other
    // thread shares this process's filesystem context that unshare would split.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| fail("failed to unshare the mount namespace for", what, e))?;
    // Private first: unmounts below must never propagate back to the host's mounts.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|e| fail("failed to make private", Path::new("/"), e))
}

/// Detached copies of the mounts at `keep`; None on a kernel without open_tree (5.2).
fn clone_all(keep: &[PathBuf]) -> Result<Option<Held>, Error> {
    let mut held = Vec::with_capacity(keep.len());
    for p in keep {
        match rustix::mount::open_tree(
            CWD,
            p,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE
                | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(fd) => held.push((fd, p.clone())),
            // A kernel before 5.2: stay in the (private) copy with every mount in it.
            Err(Errno::NOSYS) => return Ok(None),
            Err(e) => return Err(fail("failed to copy the mount at", p, e)),
        }
    }
    Ok(Some(held))
}

fn detach_parents(parents: &[(PathBuf, (u32, u32))]) -> Result<(), Error> {
    for (dir, _) in parents {
        match rustix::mount::unmount(dir, UnmountFlags::DETACH) {
            // Not a mount point (here) after all: its children stay, which costs time only.
            Ok(()) | Err(Errno::INVAL) => {}
            Err(e) => return Err(fail("failed to unmount", dir, e)),
        }
    }
    Ok(())
}

fn attach_all(held: Held) -> Result<(), Error> {
    for (fd, p) in held {
        rustix::mount::move_mount(fd, c"", CWD, &p, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .map_err(|e| fail("failed to attach the mount again at", &p, e))?;
    }
    Ok(())
}

/// How long a prepared namespace may be used after it was made: a standby is normally
/// handed its container within milliseconds of being started.
pub(crate) const FRESH: Duration = Duration::from_secs(2);

/// A private mount namespace without the daemon's parent mounts, made ahead of need, and
/// the namespace it was made from.
pub(crate) struct Prepared {
    host: OwnedFd,
    own: OwnedFd,
    parents: Vec<(PathBuf, (u32, u32))>,
    made: Instant,
}

fn open_ns() -> Option<OwnedFd> {
    rustix::fs::open(
        "/proc/thread-self/ns/mnt",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

fn enter(ns: &OwnedFd) -> Result<(), Error> {
    rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Mount))
        .map_err(|e| fail("failed to enter the mount namespace", Path::new("/proc/thread-self/ns/mnt"), e))
}

impl Prepared {
    /// Returns to the daemon's namespace; the prepared one ends with its last descriptor.
    pub(crate) fn abandon(self) {
        let _ = enter(&self.host);
    }

    /// How much longer it may be used ([`FRESH`]).
    pub(crate) fn remaining(&self) -> Duration {
        FRESH.saturating_sub(self.made.elapsed())
    }
}

/// The time on `CLOCK_MONOTONIC`, which every process on the host reads alike (a
/// [`Template`]'s age crosses from the daemon to the standby shim as one).
fn monotonic() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A private mount namespace without the daemon's parent mounts (and so without any
/// container's root or network namespace file), made by the daemon for the standby shims
/// it starts while the template is young: each enters it and unshares, copying only the
/// host's own mounts ([`prepare`]). Held by this descriptor alone.
#[derive(Debug)]
pub struct Template {
    ns: OwnedFd,
    /// When the snapshot was taken, on `CLOCK_MONOTONIC`.
    made: Duration,
}

impl Template {
    /// Makes the template in a thread of its own (a thread can unshare its mount namespace
    /// by itself: the unshare gives it a filesystem context of its own), which ends once it
    /// has opened the namespace. `idle` runs that thread at `SCHED_IDLE` first. None when
    /// there are no parents or the kernel refuses.
    pub fn make(parents: &[PathBuf], idle: impl FnOnce() + Send + 'static) -> Option<Template> {
        let parents = with_devices(parents);
        if parents.is_empty() {
            return None;
        }
        let made = monotonic();
        let ns = std::thread::Builder::new()
            .name("mount-template".into())
            .spawn(move || {
                idle();
                // SAFETY: this thread exists only for this; the unshare splits its own
                // filesystem context (CLONE_NEWNS implies CLONE_FS) from the daemon's other
                // threads, which keep theirs, and it ends once it has opened the namespace.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.ok()?;
                rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC).ok()?;
                detach_parents(&parents).ok()?;
                open_ns()
            })
            .ok()?
            .join()
            .ok()??;
        Some(Template { ns, made })
    }

    /// How long ago the snapshot was taken.
    pub fn age(&self) -> Duration {
        monotonic().saturating_sub(self.made)
    }

    /// The namespace, to hand to a standby.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ns.as_fd()
    }

    /// When it was made, as the standby's argument carries it (nanoseconds on
    /// `CLOCK_MONOTONIC`).
    pub fn made_arg(&self) -> String {
        self.made.as_nanos().to_string()
    }
}

/// A template handed over by the daemon: its namespace and the argument that says when it
/// was made ([`Template::made_arg`]).
pub(crate) struct Handed {
    pub ns: OwnedFd,
    pub made: String,
}

/// Makes this (single-threaded) process's private namespace without the mounts under
/// `parents` now, for [`isolate_prepared`] to complete: a copy of `template` when one was
/// handed over, else of the daemon's namespace with the parents dropped. None (and the
/// process back where it was) when that cannot be done here.
pub(crate) fn prepare(parents: &[PathBuf], template: Option<Handed>) -> Option<Prepared> {
    let parents = with_devices(parents);
    if parents.is_empty() {
        return None;
    }
    let host = open_ns()?;
    if let Some(t) = template
        && let Some(p) = from_template(t, &host, &parents)
    {
        return Some(p);
    }
    if unshare_private(Path::new("/")).is_err() {
        return None;
    }
    let made = (|| {
        detach_parents(&parents).ok()?;
        let own = open_ns()?;
        Some(Prepared { host: host.try_clone().ok()?, own, parents, made: Instant::now() })
    })();
    if made.is_none() {
        let _ = enter(&host);
    }
    made
}

/// [`prepare`]'s copy of a template; None (and the process back in `host`) when the
/// template is already too old or cannot be entered.
fn from_template(t: Handed, host: &OwnedFd, parents: &[(PathBuf, (u32, u32))]) -> Option<Prepared> {
    let age = monotonic().saturating_sub(Duration::from_nanos(t.made.parse().ok()?));
    let made = Instant::now().checked_sub(age)?;
    if age > FRESH {
        return None;
    }
    enter(&t.ns).ok()?;
    drop(t.ns);
    let own = unshare_private(Path::new("/")).ok().and_then(|()| open_ns());
    match (own, host.try_clone()) {
        (Some(own), Ok(host)) => Some(Prepared { host, own, parents: parents.to_vec(), made }),
        _ => {
            let _ = enter(host);
            None
        }
    }
}

/// [`isolate`] for a process that [`prepare`]d: copies the container's mounts from the
/// daemon's namespace into the prepared one. Falls back to [`isolate`] when the prepared
/// namespace is old or shows any of the container's outside sources differently; says
/// whether the prepared namespace was used.
pub(crate) fn isolate_prepared(
    p: Prepared,
    spec: &oci_spec::runtime::Spec,
    rootfs: &Path,
    parents: &[PathBuf],
) -> Result<(bool, Vec<PathBuf>), Error> {
    // Back in the daemon's namespace, where the container's mounts are.
    enter(&p.host)?;
    if p.made.elapsed() > FRESH || p.parents.iter().map(|(d, _)| d).ne(parents.iter()) {
        return isolate(spec, rootfs, parents).map(|a| (false, a));
    }
    let keep = needed(spec, rootfs, &p.parents);
    let outside: Vec<(PathBuf, Option<Identity>)> = sources(spec, rootfs)
        .into_iter()
        .filter(|s| !p.parents.iter().any(|(d, _)| s.starts_with(d)))
        .map(|s| {
            let id = identity(&s);
            (s, id)
        })
        .collect();
    let Some(held) = clone_all(&keep)? else { return isolate(spec, rootfs, parents).map(|a| (false, a)) };
    enter(&p.own)?;
    if outside.iter().any(|(s, id)| identity(s) != *id) {
        // The snapshot is stale for this container: start over from the daemon's view.
        drop(held);
        enter(&p.host)?;
        return isolate(spec, rootfs, parents).map(|a| (false, a));
    }
    attach_all(held)?;
    Ok((true, keep))
}
