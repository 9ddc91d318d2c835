//! Read-only mounts that every container gets the same of, bound from one directory on the
//! runtime's state root instead of a filesystem of each container's own: the empty
//! directory over each masked kernel directory (`/proc/acpi`, `/sys/firmware`), and on a
//! cgroup v1 host the skeleton of `/sys/fs/cgroup` that the hierarchies are mounted into
//! ([`super::cgroupfs`]).
//!
//! Why: libcontainer covers a masked directory with a read-only tmpfs, and `/sys/fs/cgroup`
//! was a tmpfs too: three of the ten superblocks a container had. The kernel pays for every
//! superblock on the host, not only the container's own: removing a memory cgroup walks
//! the memcg-aware lists of every superblock (`memcg_reparent_list_lrus`, under the global
//! cgroup mutex that the next container's cgroup writes wait for), and each new memory
//! cgroup sizes its shrinker maps by the number of superblocks. With 1000 containers
//! running that walk was the largest part of what `run --rm` grew by. A bind mount has no
//! superblock of its own.
//!
//! The container sees what runc shows it: an empty read-only directory (mode 1777, as a
//! tmpfs root) at each masked directory, and a read-only directory with one entry per
//! hierarchy at `/sys/fs/cgroup`. The binds are cloned here (`open_tree`) and attached by
//! the shim's helper inside the container's mount namespace after the create, while the
//! container's process still waits for Start, so no path under them can have been planted;
//! the helper's read-only pass then makes them read-only. A `--privileged` container, whose
//! cgroups are writable, keeps a tmpfs of its own: a shared directory must never be
//! writable from a container.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use rustix::fs::Mode;
use rustix::io::Errno;
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use crate::Error;

/// The directory on the state root that holds the shared sources.
const DIR: &str = "shared";

/// The empty directory bound over masked directories.
const EMPTY: &str = "empty";

/// Where the masks the shim makes itself may be: the kernel's own filesystems, which the
/// container sees as the host does (the same procfs entries; sysfs differs only in the
/// network namespace's devices), so whether a path is a directory can be told on the host.
/// Other masked paths stay with libcontainer.
const KERNEL_ROOTS: [&str; 2] = ["/proc/", "/sys/"];

/// The masked paths that the shim covers with the shared empty directory: directories
/// under `/proc` or `/sys` on this host, as the container will see them.
pub(super) fn masked_dirs(spec: &Spec) -> Vec<PathBuf> {
    let Some(paths) = spec.linux().as_ref().and_then(|l| l.masked_paths().as_ref()) else { return Vec::new() };
    paths
        .iter()
        .filter(|p| KERNEL_ROOTS.iter().any(|r| p.starts_with(r)) && !p.contains("/../") && !p.ends_with("/.."))
        .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .map(PathBuf::from)
        .collect()
}

/// `spec` without the masked paths in `dirs` (libcontainer would mount a tmpfs on each).
pub(super) fn without_masks(mut spec: Spec, dirs: &[PathBuf]) -> Spec {
    if let Some(linux) = spec.linux_mut().as_mut()
        && let Some(paths) = linux.masked_paths().clone()
    {
        let kept: Vec<String> =
            paths.into_iter().filter(|p| !dirs.iter().any(|d| d.as_os_str() == p.as_str())).collect();
        linux.set_masked_paths(Some(kept));
    }
    spec
}

/// The shared empty directory, made on first use.
fn empty_dir(state_root: &Path) -> Result<PathBuf, Error> {
    let dir = state_root.join(DIR).join(EMPTY);
    if !dir.is_dir() {
        publish(state_root, EMPTY, |tmp| {
            // A tmpfs root's mode, which is what runc's masks show.
            rustix::fs::chmod(tmp, Mode::from_raw_mode(0o1777)).map_err(|e| Error::io("failed to chmod", tmp, e.into()))
        })?;
    }
    Ok(dir)
}

/// The skeleton of a v1 `/sys/fs/cgroup`: a directory per hierarchy and a symlink per
/// controller of a co-mounted one (`cpu` → `cpu,cpuacct`), as the shim's tmpfs held them.
/// One per set of hierarchies (the host may mount another later), made on first use.
pub(super) fn cgroup_skeleton(state_root: &Path, names: &[&str]) -> Result<PathBuf, Error> {
    let key = berth_base::digest::Digest::of(names.join("\n").as_bytes());
    let name = format!("cgroup-{}", &key.hex()[..16]);
    let dir = state_root.join(DIR).join(&name);
    if dir.is_dir() {
        return Ok(dir);
    }
    publish(state_root, &name, |tmp| {
        rustix::fs::chmod(tmp, Mode::from_raw_mode(0o755)).map_err(|e| Error::io("failed to chmod", tmp, e.into()))?;
        for n in names {
            let d = tmp.join(n);
            std::fs::create_dir(&d).map_err(|e| Error::io("failed to create", &d, e))?;
            if n.contains(',') {
                for part in n.split(',') {
                    let l = tmp.join(part);
                    std::os::unix::fs::symlink(n, &l).map_err(|e| Error::io("failed to create", &l, e))?;
                }
            }
        }
        Ok(())
    })?;
    Ok(dir)
}

/// Makes `<state root>/shared/<name>` by filling a fresh directory and renaming it into
/// place, so a concurrent shim sees it whole or not at all; if another shim won the race,
/// its copy is kept.
fn publish(state_root: &Path, name: &str, fill: impl FnOnce(&Path) -> Result<(), Error>) -> Result<(), Error> {
    let parent = state_root.join(DIR);
    berth_base::fsutil::create_dir_mode(&parent, berth_base::fsutil::PRIVATE_DIR)
        .map_err(|e| Error::io("failed to create", &parent, e))?;
    let tmp = parent.join(format!(".{name}-{}", berth_base::new_id()));
    std::fs::create_dir(&tmp).map_err(|e| Error::io("failed to create", &tmp, e))?;
    let done = fill(&tmp).and_then(|()| {
        let dest = parent.join(name);
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(()),
            // The other shim's copy is in place: the same contents.
            Err(e) if dest.is_dir() && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) => Ok(()),
            Err(e) => Err(Error::io("failed to rename", &tmp, e)),
        }
    });
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    done
}

/// A detached copy of a bind of `source`, to be attached inside the container.
fn clone_of(source: &Path) -> Result<OwnedFd, Error> {
    rustix::mount::open_tree(rustix::fs::CWD, source, OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC)
        .map_err(|e| Error::io("failed to clone a bind of", source, e.into()))
}

/// A bind of a shared directory, ready before the helper runs.
pub(super) struct Bind {
    tree: OwnedFd,
    /// The mount point inside the container.
    pub(super) target: CString,
}

impl Bind {
    /// A bind of `source` for `target` (a path inside the container).
    pub(super) fn new(source: &Path, target: &Path) -> Result<Bind, Error> {
        let target = CString::new(target.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Shim(format!("mount point {target:?} holds a NUL byte")))?;
        Ok(Bind { tree: clone_of(source)?, target })
    }

    /// In the helper, inside the container's mount namespace: attaches the bind.
    pub(super) fn attach(&self) -> Result<(), Errno> {
        rustix::mount::move_mount(
            &self.tree,
            c"",
            rustix::fs::CWD,
            self.target.as_c_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
    }
}

/// The masks the helper makes: one bind of the empty directory per masked directory.
pub(super) fn mask_binds(state_root: &Path, dirs: &[PathBuf]) -> Result<Vec<Bind>, Error> {
    if dirs.is_empty() {
        return Ok(Vec::new());
    }
    let empty = empty_dir(state_root)?;
    dirs.iter().map(|d| Bind::new(&empty, d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_kernel_directories_are_taken_from_the_runtime() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"maskedPaths": ["/proc/kcore", "/proc/sys", "/sys/firmware", "/etc", "/proc/../etc",
                                      "/proc/no-such-entry"]}
        }))
        .unwrap();
        let dirs = masked_dirs(&spec);
        // /proc/kcore is a file (libcontainer binds /dev/null), /etc is the image's.
        let want: Vec<PathBuf> =
            ["/proc/sys", "/sys/firmware"].iter().map(PathBuf::from).filter(|p| p.is_dir()).collect();
        assert_eq!(dirs, want);
        let seen = without_masks(spec, &dirs);
        let left = seen.linux().as_ref().unwrap().masked_paths().clone().unwrap();
        assert!(left.contains(&"/proc/kcore".to_owned()) && left.contains(&"/etc".to_owned()));
        assert!(!left.contains(&"/proc/sys".to_owned()));
    }

    #[test]
    fn the_skeleton_is_made_once_and_whole() {
        let root = tempfile::tempdir().unwrap();
        let names = ["systemd", "cpu,cpuacct", "memory"];
        let a = cgroup_skeleton(root.path(), &names).unwrap();
        let b = cgroup_skeleton(root.path(), &names).unwrap();
        assert_eq!(a, b);
        let mut entries: Vec<String> =
            std::fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        entries.sort();
        assert_eq!(entries, ["cpu", "cpu,cpuacct", "cpuacct", "memory", "systemd"]);
        assert_eq!(std::fs::read_link(a.join("cpu")).unwrap(), Path::new("cpu,cpuacct"));
        // Another set of hierarchies gets a skeleton of its own; no temporary is left.
        let c = cgroup_skeleton(root.path(), &["memory"]).unwrap();
        assert_ne!(a, c);
        let left: Vec<_> = std::fs::read_dir(root.path().join(DIR)).unwrap().collect();
        assert_eq!(left.len(), 2);
        let e = empty_dir(root.path()).unwrap();
        assert_eq!(std::fs::metadata(&e).unwrap().permissions().mode() & 0o7777, 0o1777);
        assert_eq!(std::fs::read_dir(&e).unwrap().count(), 0);
    }
}
