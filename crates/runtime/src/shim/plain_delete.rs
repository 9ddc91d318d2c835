//! The delete of a container that simply ended: its cgroup directories and runtime state
//! removed by path, without libcontainer.
//!
//! libcontainer's delete finds each v1 controller's mount by reading `/proc/self/mountinfo`
//! and `/proc/self/cgroup` again for every controller (14 and 9 reads here, each also
//! parsed), loads the state and its config, reads every `cgroup.procs` and only then
//! removes the directories: about 2 ms of CPU after every exit, on the two cores the
//! daemon's teardown and the next `run` share. When nothing of that is needed — the
//! container had its own pid namespace, so its processes all died with its init, no
//! poststop hook is to run, no Intel RDT group is to go, and the cgroups are plain
//! cgroupfs paths (the shim never uses the systemd driver) — the delete is one read of the
//! mount table, one `rmdir` per hierarchy and the state directory's removal; cgroups the
//! container made below its own go first, as Docker's runtime removes them. Anything
//! unexpected (a cgroup still busy with a process) hands the delete back to libcontainer,
//! which kills and retries as before.
//!
//! libcontainer's delete, where it stays, fails on a cgroup with children too; [`delete`]
//! removes the children by path and lets it try again, so that no path of a delete leaves
//! a container's cgroups behind once its state is gone.
//!
//! Written by hand: libcontainer offers no delete that skips its discovery.

use std::path::{Path, PathBuf};

/// Whether a container of `spec` may be deleted by path ([`run`]).
pub(super) fn eligible(spec: &oci_spec::runtime::Spec) -> bool {
    let Some(linux) = spec.linux() else { return false };
    let plain = linux.cgroups_path().as_deref().is_some_and(plain_path);
    super::delete_after_exit(spec) && linux.intel_rdt().is_none() && plain
}

/// Whether `cgroups_path` is a cgroupfs path below the root that stays inside the cgroup
/// file systems. A `..` (from a hostile `--cgroup-parent`) would lead the rmdirs out of
/// them: libcontainer's own joins refuse it, so its delete keeps that case.
fn plain_path(cgroups_path: &Path) -> bool {
    cgroups_path
        .to_str()
        .is_some_and(|p| p.starts_with('/') && !p.contains(':') && p.len() > 1 && !p.split('/').any(|c| c == ".."))
}

/// libcontainer's delete of `container` (force: its processes are killed first), for a
/// container not [`eligible`] for [`run`] or whose [`run`] failed. That delete fails on a
/// cgroup the container made below its own (the rmdir of a cgroup with children fails as
/// one with a process does), and its caller would then remove the state and leave every
/// cgroup of the container behind; so when it fails, the child cgroups are removed by path
/// and the delete is tried once more.
pub(crate) fn delete(
    container: &mut libcontainer::container::Container,
) -> Result<(), libcontainer::error::LibcontainerError> {
    let first = match container.delete(true) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let Ok(config) = container.spec() else { return Err(first) };
    if !plain_path(&config.cgroup_path) {
        return Err(first);
    }
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return Err(first) };
    if !remove_children(&cgroup_dirs(&mountinfo, &config.cgroup_path)) {
        return Err(first);
    }
    tracing::debug!(id = container.id(), error = %first, "removed the container's own child cgroups; deleting again");
    container.delete(true)
}

/// Removes every cgroup below each of `dirs` (not the directories themselves); true when
/// there was at least one and all went.
fn remove_children(dirs: &[PathBuf]) -> bool {
    let mut removed = false;
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        for entry in rd.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if remove_cgroup(&entry.path()).is_err() {
                    return false;
                }
                removed = true;
            }
        }
    }
    removed
}

/// Removes the cgroup directories of `cgroups_path` on every cgroup hierarchy mounted here,
/// then the runtime's state directory `state_dir`. False when a step failed: the caller
/// then deletes through libcontainer, which skips what is already gone.
pub(super) fn run(cgroups_path: &Path, state_dir: &Path) -> bool {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    remove(&cgroup_dirs(&mountinfo, cgroups_path), state_dir)
}

/// Removes each of `dirs` (already gone is fine), then `state_dir` with what it holds; stops
/// at the first that cannot be removed.
fn remove(dirs: &[PathBuf], state_dir: &Path) -> bool {
    for dir in dirs {
        if let Err(e) = remove_cgroup(dir) {
            tracing::debug!(dir = %dir.display(), error = %e, "not removed by path");
            return false;
        }
    }
    match std::fs::remove_dir_all(state_dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
    }
}

/// Removes a cgroup directory, and first the cgroups the container made below it (a
/// writable cgroup mount lets it; Docker's runtime removes them too): a cgroup with
/// children refuses its rmdir with EBUSY, as one with a process does, which stays an
/// error. A cgroup directory holds only the kernel's control files, which go with it.
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => return Err(e),
        Err(_) => {}
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The directory of `cgroups_path` under each cgroup (v1) and cgroup2 mount of a
/// mountinfo text, once per mount point, as libcontainer's managers place it (the mount
/// point joined with the path).
fn cgroup_dirs(mountinfo: &str, cgroups_path: &Path) -> Vec<PathBuf> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    let mut out: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(point) = left.split(' ').nth(4) else { continue };
        if !matches!(right.split(' ').next(), Some("cgroup" | "cgroup2")) || point.contains('\\') {
            continue;
        }
        let dir = Path::new(point).join(rel);
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        Hook, HooksBuilder, LinuxBuilder, LinuxIntelRdtBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, SpecBuilder,
    };

    fn spec(cgroups: Option<&str>, own_pid_ns: bool) -> oci_spec::runtime::SpecBuilder {
        let mut ns = vec![LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Mount).build().unwrap()];
        if own_pid_ns {
            ns.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Pid).build().unwrap());
        }
        let mut linux = LinuxBuilder::default().namespaces(ns);
        if let Some(c) = cgroups {
            linux = linux.cgroups_path(PathBuf::from(c));
        }
        SpecBuilder::default().linux(linux.build().unwrap())
    }

    #[test]
    fn only_a_container_whose_delete_has_nothing_else_to_do_is_eligible() {
        assert!(eligible(&spec(Some("/berth/abc"), true).build().unwrap()));
        // Processes may outlive the init: only libcontainer's delete kills them.
        assert!(!eligible(&spec(Some("/berth/abc"), false).build().unwrap()));
        // systemd's slice:prefix:name form, a relative path, none at all.
        assert!(!eligible(&spec(Some("system.slice:berth:abc"), true).build().unwrap()));
        assert!(!eligible(&spec(Some("berth/abc"), true).build().unwrap()));
        assert!(!eligible(&spec(Some("/"), true).build().unwrap()));
        assert!(!eligible(&spec(None, true).build().unwrap()));
        assert!(!eligible(&spec(Some("/berth/../../etc/abc"), true).build().unwrap()));
        let hook = Hook::default();
        let hooks = HooksBuilder::default().poststop(vec![hook]).build().unwrap();
        assert!(!eligible(&spec(Some("/berth/abc"), true).hooks(hooks).build().unwrap()));
        let mut with_rdt = spec(Some("/berth/abc"), true).build().unwrap();
        let mut linux = with_rdt.linux().clone().unwrap();
        linux.set_intel_rdt(Some(LinuxIntelRdtBuilder::default().clos_id("gold").build().unwrap()));
        with_rdt.set_linux(Some(linux));
        assert!(!eligible(&with_rdt));
    }

    #[test]
    fn the_cgroup_directories_are_those_of_every_cgroup_mount() {
        let info = "25 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
             30 25 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n\
             31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
             32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
             33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
             34 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
             35 25 0:30 / /odd\\040dir rw - cgroup cgroup rw,pids\n";
        let dirs = cgroup_dirs(info, Path::new("/berth/abc"));
        let want: Vec<PathBuf> = ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"]
            .iter()
            .map(|p| Path::new(p).join("berth/abc"))
            .collect();
        assert_eq!(dirs, want);
    }

    #[test]
    fn a_busy_directory_leaves_the_delete_to_libcontainer_and_the_state_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("state.json"), "{}").unwrap();
        let (gone, missing, nested, busy) =
            (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"), tmp.path().join("d"));
        std::fs::create_dir(&gone).unwrap();
        std::fs::create_dir_all(nested.join("child/grandchild")).unwrap();
        // Stands for a cgroup with a process in it: its rmdir fails however often it is tried.
        std::fs::create_dir_all(busy.join("child")).unwrap();
        std::fs::write(busy.join("child/pid"), "1").unwrap();
        assert!(!remove(&[gone.clone(), missing.clone(), nested.clone(), busy.clone()], &state));
        assert!(!gone.exists() && !nested.exists() && busy.join("child/pid").exists());
        assert!(state.join("state.json").exists());
        assert!(remove(&[gone, missing, nested], &state));
        assert!(!state.exists());
    }

    #[test]
    fn only_the_children_go_and_a_retry_is_asked_for_only_when_some_went() {
        let tmp = tempfile::tempdir().unwrap();
        let (plain, parent, busy) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
        // Stands for a cgroup's own control file, which is no child.
        std::fs::create_dir(&plain).unwrap();
        std::fs::write(plain.join("cgroup.procs"), "").unwrap();
        assert!(!remove_children(std::slice::from_ref(&plain)), "nothing below: no second delete");
        std::fs::create_dir_all(parent.join("sub/deeper")).unwrap();
        assert!(remove_children(&[plain.clone(), parent.clone(), tmp.path().join("missing")]));
        assert!(parent.exists() && !parent.join("sub").exists() && plain.join("cgroup.procs").exists());
        std::fs::create_dir_all(busy.join("sub")).unwrap();
        std::fs::write(busy.join("sub/pid"), "1").unwrap();
        assert!(!remove_children(std::slice::from_ref(&busy)), "a child that stays leaves libcontainer's error");
    }
}
