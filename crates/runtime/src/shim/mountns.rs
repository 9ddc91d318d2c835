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

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

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

/// The paths under `parents` that the container needs and that are not plain files or
/// directories of the parent's filesystem (a mount of their own: the overlay root, an
/// nsfs file, or something inside another mount): `rootfs`, the spec's namespace paths
/// and bind-mount sources.
fn needed(spec: &oci_spec::runtime::Spec, rootfs: &Path, parents: &[(PathBuf, (u32, u32))]) -> Vec<PathBuf> {
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
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let Some((_, dev)) = parents.iter().find(|(d, _)| p.starts_with(d) && p != *d) else { continue };
        if device(&p).is_some_and(|d| d != *dev) && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Moves this (single-threaded) process to a private mount namespace without the mounts
/// under `parents`, keeping those the container needs at their paths. `parents` lists the
/// daemon's parent mounts (`image::ensure_parent_mount`); an empty list (an older daemon,
/// or one that could not make them) leaves the process where it is.
pub(crate) fn isolate(spec: &oci_spec::runtime::Spec, rootfs: &Path, parents: &[PathBuf]) -> Result<(), Error> {
    let parents: Vec<(PathBuf, (u32, u32))> =
        parents.iter().filter_map(|p| device(p).map(|dev| (p.clone(), dev))).collect();
    if parents.is_empty() {
        return Ok(());
    }
    let keep = needed(spec, rootfs, &parents);
    let fail = |what: &'static str, p: &Path, e: Errno| Error::io(what, p, e.into());
    // SAFETY: the shim is single-threaded (see the module doc of `shim`), so no other
    // thread shares this process's filesystem context that unshare would split.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| fail("failed to unshare the mount namespace for", rootfs, e))?;
    // Private first: unmounts below must never propagate back to the host's mounts.
    rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|e| fail("failed to make private", Path::new("/"), e))?;
    let mut held: Vec<(OwnedFd, &Path)> = Vec::with_capacity(keep.len());
    for p in &keep {
        match rustix::mount::open_tree(
            CWD,
            p,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE
                | OpenTreeFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(fd) => held.push((fd, p)),
            // A kernel before 5.2: stay in the (private) copy with every mount in it.
            Err(Errno::NOSYS) => return Ok(()),
            Err(e) => return Err(fail("failed to copy the mount at", p, e)),
        }
    }
    for (dir, _) in &parents {
        match rustix::mount::unmount(dir, UnmountFlags::DETACH) {
            // Not a mount point (here) after all: its children stay, which costs time only.
            Ok(()) | Err(Errno::INVAL) => {}
            Err(e) => return Err(fail("failed to unmount", dir, e)),
        }
    }
    for (fd, p) in held {
        rustix::mount::move_mount(fd, c"", CWD, p, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
            .map_err(|e| fail("failed to attach the mount again at", p, e))?;
    }
    Ok(())
}
