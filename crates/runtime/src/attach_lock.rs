//! The kernel's cgroup attach lock, switched ahead of a container's own migration.
//!
//! Moving a task into a cgroup (a write to `cgroup.procs`, as libcontainer's intermediate
//! process does for itself in every hierarchy, and an exec's process too) takes the kernel's
//! `cgroup_threadgroup_rwsem` for writing. That per-CPU rwsem is kept in a reader-fast mode;
//! the first writer after a quiet spell must first wait a whole RCU grace period to switch
//! it over, and it switches back about one grace period after the last writer. On this kind
//! of VM a grace period is 12–15 ms: measured here, the first of ten `cgroup.procs` writes
//! after a pause takes ~15 ms and the next nine ~0.03 ms each; a sparse `run --rm` spent
//! 18.6 ms in libcontainer's create, 7.3 ms when the lock was already switched.
//!
//! [`prime`] takes that slow path on a thread of its own as soon as the daemon knows a
//! container (or exec) is about to start — at create, start and exec requests — by
//! "moving" the daemon into the cgroup it is already in (a migration the kernel skips, but
//! only after taking the lock). The grace period then runs while the daemon mounts the root
//! filesystem, spawns the shim and libcontainer forks, instead of after them. For a second
//! after the last request the worker repeats the no-op move every few milliseconds, less
//! than a grace period apart, so starts that come in a burst (`compose up`, a loop in a
//! script, restart policies, `run -d` after `run -d`) all find the lock switched; then it
//! falls back to its fast mode on its own, as after any container start. No kernel setting
//! is changed. The cost while it lingers: ~0.03 ms of a core per move, and forks on the host
//! take the rwsem's shared-counter path instead of the per-CPU one.
//!
//! Written by hand: no crate exposes this; it is one file write.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The worker's wake-up: whether a prime was asked since the last one began.
struct Worker {
    asked: Mutex<bool>,
    wake: Condvar,
}

static WORKER: OnceLock<Option<&'static Worker>> = OnceLock::new();
/// Set once the target file was found wanting (no cgroup file system): priming is off.
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Asks for the attach lock to be switched now, without waiting for it. Cheap when a prime
/// is already under way (requests coalesce) and a no-op where no cgroup file system exists.
pub fn prime() {
    if DISABLED.load(Ordering::Relaxed) {
        return;
    }
    let Some(w) = *WORKER.get_or_init(start_worker) else { return };
    let mut asked = w.asked.lock().unwrap_or_else(|p| p.into_inner());
    if !*asked {
        *asked = true;
        w.wake.notify_one();
    }
}

fn start_worker() -> Option<&'static Worker> {
    let Some(target) = own_procs_file(
        &std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    ) else {
        DISABLED.store(true, Ordering::Relaxed);
        return None;
    };
    let w: &'static Worker = Box::leak(Box::new(Worker { asked: Mutex::new(false), wake: Condvar::new() }));
    let spawned =
        std::thread::Builder::new().name("cgroup-prime".into()).stack_size(64 * 1024).spawn(move || run(w, &target));
    if spawned.is_err() {
        DISABLED.store(true, Ordering::Relaxed);
        return None;
    }
    Some(w)
}

/// How long the lock is kept switched after the last request.
const LINGER: Duration = Duration::from_secs(1);
/// How often it is moved while lingering: well under one grace period (12–15 ms here).
const KEEP: Duration = Duration::from_millis(5);

fn run(w: &Worker, target: &Path) {
    let pid = std::process::id().to_string();
    let mut until: Option<Instant> = None;
    loop {
        {
            let mut asked = w.asked.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if *asked {
                    *asked = false;
                    until = Some(Instant::now() + LINGER);
                    break;
                }
                let Some(end) = until else {
                    asked = w.wake.wait(asked).unwrap_or_else(|p| p.into_inner());
                    continue;
                };
                let now = Instant::now();
                if now >= end {
                    until = None;
                    continue;
                }
                let (guard, timeout) =
                    w.wake.wait_timeout(asked, KEEP.min(end - now)).unwrap_or_else(|p| p.into_inner());
                asked = guard;
                if timeout.timed_out() && !*asked {
                    break;
                }
            }
        }
        // The write's outcome does not matter: the kernel takes the lock before it looks
        // at the request (even a refused move, e.g. into a cgroup with controllers
        // enabled below it on v2, has switched it).
        if let Err(e) = std::fs::write(target, &pid) {
            tracing::debug!("cgroup attach lock prime via {}: {e}", target.display());
        }
    }
}

/// The `cgroup.procs` of the cgroup this process is in, on the first cgroup hierarchy that
/// is mounted (v1 controllers first: they are what containers join on a hybrid host), from
/// the texts of `/proc/self/cgroup` and `/proc/self/mountinfo`.
fn own_procs_file(cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    // Hierarchy lines are `ID:CONTROLLERS:PATH`; v2's is `0::PATH`.
    let mut lines: Vec<(&str, &str)> = cgroup
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            Some((ctrl, path))
        })
        .collect();
    lines.sort_by_key(|(ctrl, _)| ctrl.is_empty());
    for (ctrl, path) in lines {
        let Some(mount) = mountinfo.lines().find_map(|m| cgroup_mount_for(m, ctrl)) else { continue };
        // mountinfo's root field is the cgroup path the mount shows as its top.
        let (root, point) = mount;
        let rel = path.strip_prefix(root).unwrap_or(path).trim_start_matches('/');
        let file = Path::new(point).join(rel).join("cgroup.procs");
        if file.exists() {
            return Some(file);
        }
    }
    None
}

/// `(root, mount point)` of a mountinfo line when it mounts the hierarchy of `ctrl` (a v1
/// controller list such as `pids` or `name=systemd`; empty for v2).
fn cgroup_mount_for<'a>(line: &'a str, ctrl: &str) -> Option<(&'a str, &'a str)> {
    let (left, right) = line.split_once(" - ")?;
    let f: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    let (root, point) = (*f.get(3)?, *f.get(4)?);
    let (fstype, opts) = (*r.first()?, r.get(2).copied().unwrap_or(""));
    let matches = if ctrl.is_empty() {
        fstype == "cgroup2"
    } else {
        fstype == "cgroup" && ctrl.split(',').all(|c| opts.split(',').any(|o| o == c))
    };
    matches.then_some((root, point))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mountinfo text whose cgroup mounts sit under `dir`.
    fn mountinfo(dir: &Path) -> String {
        let d = dir.display();
        format!(
            "25 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
             31 30 0:27 / {d}/cpu rw,relatime - cgroup cgroup rw,cpu\n\
             32 30 0:28 /outer {d}/pids rw,relatime - cgroup cgroup rw,pids\n\
             33 30 0:29 / {d}/unified rw,relatime - cgroup2 cgroup2 rw\n\
             34 30 0:30 / {d}/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
        )
    }

    fn procs(dir: &Path, rel: &str) -> PathBuf {
        let d = dir.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cgroup.procs"), "").unwrap();
        d.join("cgroup.procs")
    }

    #[test]
    fn a_v1_controller_comes_before_the_unified_hierarchy() {
        let t = tempfile::tempdir().unwrap();
        let v2 = procs(t.path(), "unified/daemon");
        let cg = "0::/daemon\n5:pids:/outer/daemon\n1:name=systemd:/\n";
        // Neither v1 file exists yet: the v2 one is the fallback.
        assert_eq!(own_procs_file(cg, &mountinfo(t.path())), Some(v2));
        // The pids mount shows /outer as its top, so /outer/daemon is `daemon` below it.
        let v1 = procs(t.path(), "pids/daemon");
        assert_eq!(own_procs_file(cg, &mountinfo(t.path())), Some(v1));
    }

    #[test]
    fn a_unified_host_uses_its_cgroup2_mount_whatever_v1_hierarchies_the_kernel_lists() {
        // A mount namespace with only cgroup2 at the cgroup root (a unified host, or berth's
        // cgroup_v2 e2e tests on a hybrid machine): the kernel still lists the v1
        // hierarchies mounted elsewhere, which this namespace cannot reach.
        let t = tempfile::tempdir().unwrap();
        let d = t.path().display();
        let mi = format!(
            "25 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
             40 25 0:29 / {d} rw,relatime - cgroup2 cgroup2 rw\n"
        );
        let file = procs(t.path(), "");
        let cg = "10:hugetlb:/\n4:memory:/outer\n1:cpu:/\n0::/\n";
        assert_eq!(own_procs_file(cg, &mi), Some(file));
    }

    #[test]
    fn combined_controllers_and_missing_mounts() {
        let t = tempfile::tempdir().unwrap();
        let mi = mountinfo(t.path());
        assert_eq!(cgroup_mount_for(mi.lines().nth(4).unwrap(), "name=systemd").map(|m| m.0), Some("/"));
        // `cpu,cpuacct` needs both options on one mount; this one has only cpu.
        assert_eq!(cgroup_mount_for(mi.lines().nth(1).unwrap(), "cpu,cpuacct"), None);
        assert_eq!(cgroup_mount_for(mi.lines().next().unwrap(), ""), None);
        assert_eq!(own_procs_file("3:memory:/x\n", &mi), None);
        assert_eq!(own_procs_file("", ""), None);
    }

    #[test]
    fn the_running_process_finds_its_own_procs_file() {
        let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        if !mi.contains(" - cgroup") {
            return; // no cgroup file system in this sandbox
        }
        let file = own_procs_file(&cg, &mi).expect("a cgroup.procs for this process");
        let pids = std::fs::read_to_string(&file).unwrap();
        assert!(pids.lines().any(|p| p == std::process::id().to_string()), "{} lists us", file.display());
    }
}
