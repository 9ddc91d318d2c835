//! A running container's cgroups as files: where they are (from the container's init pid
//! in `/proc/<pid>/cgroup` and the cgroup mounts in `/proc/self/mountinfo`, so cgroup v1,
//! v2 and hybrid hosts all work), freezing and thawing them (`pause`), reading their
//! counters (`stats`), listing their processes (`top`) and changing their limits
//! (`update`). Plain file reads and writes: safe from the multi-threaded daemon, unlike
//! libcontainer, which only the shim calls.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directories of one process's cgroups.
#[derive(Debug, Clone, Default)]
pub struct Cgroup {
    /// cgroup v1: controller name → directory.
    v1: HashMap<String, PathBuf>,
    /// cgroup v2 (unified) directory, if the host mounts one and the process is below its root.
    v2: Option<PathBuf>,
}

/// Limits to apply to a live cgroup (`update`); `None` leaves a limit as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in bytes (-1: unlimited).
    pub memory: Option<i64>,
    /// Memory + swap limit in bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// CPU shares (relative weight).
    pub cpu_shares: Option<i64>,
    /// CFS quota in µs (-1: unlimited) and period in µs.
    pub cpu_quota: Option<i64>,
    /// CFS period in µs.
    pub cpu_period: Option<i64>,
    /// Max pids (0 or -1: unlimited).
    pub pids_limit: Option<i64>,
    /// Block I/O weight, 10..=1000.
    pub blkio_weight: Option<u16>,
    /// CPUs allowed (`0-3,5`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed (`0,1`).
    pub cpuset_mems: Option<String>,
    /// Memory soft limit in bytes.
    pub memory_reservation: Option<i64>,
}

struct Mount {
    root: String,
    point: PathBuf,
    v2: bool,
    controllers: Vec<String>,
}

fn cgroup_mounts() -> io::Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else { continue };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let v2 = match post[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            post[2].split(',').filter(|o| !matches!(*o, "rw" | "ro")).map(str::to_owned).collect()
        };
        out.push(Mount { root: pre[3].to_owned(), point: PathBuf::from(unescape(pre[4])), v2, controllers });
    }
    Ok(out)
}

/// mountinfo escapes spaces and a few others as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

fn under(m: &Mount, path: &str) -> PathBuf {
    let rel = if m.root == "/" { path } else { path.strip_prefix(m.root.as_str()).unwrap_or(path) };
    m.point.join(rel.trim_start_matches('/'))
}

impl Cgroup {
    /// The cgroups of a running process.
    pub fn of_pid(pid: u32) -> io::Result<Cgroup> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        let mounts = cgroup_mounts()?;
        let mut cg = Cgroup::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
            if ctrls.is_empty() {
                if let Some(m) = mounts.iter().find(|m| m.v2) {
                    cg.v2 = Some(under(m, path));
                }
                continue;
            }
            for ctrl in ctrls.split(',') {
                if let Some(m) = mounts.iter().find(|m| !m.v2 && m.controllers.iter().any(|c| c == ctrl)) {
                    cg.v1.insert(ctrl.to_owned(), under(m, path));
                }
            }
        }
        Ok(cg)
    }

    /// The directory of a v1 controller.
    pub fn v1(&self, ctrl: &str) -> Option<&Path> {
        self.v1.get(ctrl).map(PathBuf::as_path)
    }

    /// The unified directory when the host is v2-only (no v1 controllers in use).
    pub fn unified(&self) -> Option<&Path> {
        if self.v1.keys().any(|k| !k.starts_with("name=")) { None } else { self.v2.as_deref() }
    }

    /// Freezes (or thaws) every process of the cgroup and waits until the kernel says so.
    pub fn freeze(&self, frozen: bool) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(dir) = self.v1("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            let state = dir.join("freezer.state");
            loop {
                std::fs::write(&state, want)?;
                if std::fs::read_to_string(&state)?.trim() == want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, format!("freezer stuck before {want}")));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let dir = self
            .v2
            .as_deref()
            .filter(|d| d.join("cgroup.freeze").exists())
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no freezer cgroup for this container"))?;
        std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        loop {
            if std::fs::read_to_string(dir.join("cgroup.events"))?.lines().any(|l| l.trim() == want) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "cgroup did not freeze"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether the cgroup is frozen or freezing (v1's freezer.state, v2's cgroup.freeze).
    pub fn frozen(&self) -> bool {
        if let Some(dir) = self.v1("freezer") {
            let state = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
            return matches!(state.trim(), "FROZEN" | "FREEZING");
        }
        self.v2
            .as_deref()
            .is_some_and(|d| std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1"))
    }

    /// The pids of every process in the cgroup.
    pub fn pids(&self) -> io::Result<Vec<u32>> {
        let dir = self
            .v1("pids")
            .or_else(|| self.v1("memory"))
            .or_else(|| self.v1("freezer"))
            .or(self.v2.as_deref())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup for this container"))?;
        let text = std::fs::read_to_string(dir.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Applies new limits to the live cgroup.
    pub fn apply(&self, l: &Limits) -> io::Result<()> {
        if let Some(dir) = self.unified() {
            return apply_v2(dir, l);
        }
        if let Some(dir) = self.v1("memory") {
            let mem = l.memory.map(|m| if m <= 0 { -1 } else { m });
            let swap = l.memory_swap.map(|m| if m <= 0 { -1 } else { m });
            let has_swap = dir.join("memory.memsw.limit_in_bytes").exists();
            let set_mem = |v: i64| std::fs::write(dir.join("memory.limit_in_bytes"), v.to_string());
            let set_swap = |v: i64| match has_swap {
                true => std::fs::write(dir.join("memory.memsw.limit_in_bytes"), v.to_string()),
                false => Ok(()),
            };
            // memory ≤ memsw always holds in the kernel: raise swap first when growing.
            match (mem, swap) {
                (Some(m), Some(s)) => {
                    if set_swap(s).is_err() {
                        set_mem(m)?;
                        set_swap(s)?;
                    } else {
                        set_mem(m)?;
                    }
                }
                (Some(m), None) => set_mem(m)?,
                (None, Some(s)) => set_swap(s)?,
                (None, None) => {}
            }
        }
        if let Some(dir) = self.v1("cpu") {
            if let Some(s) = l.cpu_shares.filter(|s| *s > 0) {
                std::fs::write(dir.join("cpu.shares"), s.to_string())?;
            }
            if let Some(p) = l.cpu_period.filter(|p| *p > 0) {
                std::fs::write(dir.join("cpu.cfs_period_us"), p.to_string())?;
            }
            if let Some(q) = l.cpu_quota {
                std::fs::write(dir.join("cpu.cfs_quota_us"), if q <= 0 { "-1".to_owned() } else { q.to_string() })?;
            }
        }
        if let (Some(dir), Some(p)) = (self.v1("pids"), l.pids_limit) {
            std::fs::write(dir.join("pids.max"), if p <= 0 { "max".to_owned() } else { p.to_string() })?;
        }
        if let (Some(dir), Some(w)) = (self.v1("blkio"), l.blkio_weight) {
            // runc's choice: blkio.weight (CFQ) where the kernel has it, else BFQ's file.
            let file = if dir.join("blkio.weight").exists() { "blkio.weight" } else { "blkio.bfq.weight" };
            std::fs::write(dir.join(file), w.to_string())?;
        }
        if let Some(dir) = self.v1("cpuset") {
            write_cpuset(dir, l)?;
        }
        if let (Some(dir), Some(r)) = (self.v1("memory"), l.memory_reservation) {
            std::fs::write(dir.join("memory.soft_limit_in_bytes"), r.to_string())?;
        }
        Ok(())
    }
}

/// cpuset.cpus and cpuset.mems, the same file names in v1 and v2.
fn write_cpuset(dir: &Path, l: &Limits) -> io::Result<()> {
    if let Some(c) = &l.cpuset_cpus {
        std::fs::write(dir.join("cpuset.cpus"), c)?;
    }
    if let Some(m) = &l.cpuset_mems {
        std::fs::write(dir.join("cpuset.mems"), m)?;
    }
    Ok(())
}

/// dockerd's checks (verifyPlatformContainerResources) of the resources this module
/// applies: blkio weight range, cpusets within the host's, a memory reservation of at
/// least 6 MiB and not above the memory limit. Absent or zero values are not checked.
pub fn check_resources(
    blkio_weight: Option<u16>,
    cpuset_cpus: Option<&str>,
    cpuset_mems: Option<&str>,
    memory: Option<i64>,
    memory_reservation: Option<i64>,
) -> crate::error::Result<()> {
    use crate::error::Error::InvalidArgument;
    let reservation = memory_reservation.unwrap_or(0);
    if reservation > 0 && reservation < 6 * 1024 * 1024 {
        return Err(InvalidArgument("Minimum memory reservation allowed is 6MB".into()));
    }
    if memory.unwrap_or(0) > 0 && reservation > 0 && memory.unwrap_or(0) < reservation {
        return Err(InvalidArgument(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    let (cpus, mems) = available_cpuset();
    for (asked, have, what, unit) in [(cpuset_cpus, cpus, "cpus", "CPUs"), (cpuset_mems, mems, "mems", "memory nodes")]
    {
        let Some(asked) = asked.filter(|s| !s.is_empty()) else { continue };
        let Some(set) = parse_cpu_list(asked) else {
            return Err(InvalidArgument(format!("Invalid value {asked} for cpuset {what}: invalid format: {asked}")));
        };
        let available = parse_cpu_list(&have).unwrap_or_default();
        if !set.is_subset(&available) {
            return Err(InvalidArgument(format!(
                "Requested {unit} are not available - requested {asked}, available: {have}"
            )));
        }
    }
    if blkio_weight.is_some_and(|w| w > 0 && !(10..=1000).contains(&w)) {
        return Err(InvalidArgument("Range of blkio weight is from 10 to 1000".into()));
    }
    Ok(())
}

/// Parses a cpuset list (`0-3,5`) as the kernel and moby's ParseUintList read it;
/// `None` when malformed.
pub fn parse_cpu_list(s: &str) -> Option<std::collections::BTreeSet<u32>> {
    let mut set = std::collections::BTreeSet::new();
    if s.trim().is_empty() {
        return Some(set);
    }
    for part in s.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if b < a {
                    return None;
                }
                set.extend(a..=b);
            }
            None => {
                set.insert(part.parse().ok()?);
            }
        }
    }
    Some(set)
}

/// Makes the v1 cpuset cgroup `parent` (e.g. `/berth`, relative to the hierarchy's root)
/// hand its CPUs and memory nodes to every child the kernel creates in it
/// (`cgroup.clone_children`). Without it a new cpuset cgroup starts empty and libcontainer
/// writes `cpuset.cpus` and `cpuset.mems` into each container's, and the kernel checks
/// each write against every sibling (`validate_change`) and rebuilds its scheduling
/// accounting: with 1000 containers running, about half a millisecond of every start.
/// With the flag, the copy is made at `mkdir` and libcontainer finds the files filled.
/// A container's own `--cpuset-cpus` is still written as before. Returns whether the
/// host has a v1 cpuset hierarchy mounted at its root (cgroup2-only hosts need nothing).
pub fn prepare_cpuset_parent(parent: &str) -> io::Result<bool> {
    let mounts = cgroup_mounts()?;
    let Some(m) = mounts.iter().find(|m| !m.v2 && m.root == "/" && m.controllers.iter().any(|c| c == "cpuset")) else {
        return Ok(false);
    };
    // Each level below the root, as libcontainer fills them: an empty one takes its
    // parent's values.
    let mut dir = m.point.clone();
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        let up = dir.clone();
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if std::fs::read_to_string(dir.join(f))?.trim().is_empty() {
                std::fs::write(dir.join(f), std::fs::read_to_string(up.join(f))?.trim())?;
            }
        }
    }
    if std::fs::read_to_string(dir.join("cgroup.clone_children"))?.trim() != "1" {
        std::fs::write(dir.join("cgroup.clone_children"), "1")?;
    }
    Ok(true)
}

/// The CPUs and memory nodes containers may use on this host (the root cpuset: moby's
/// sysinfo), as lists.
pub fn available_cpuset() -> (String, String) {
    let read = |names: &[&str]| {
        names.iter().find_map(|n| std::fs::read_to_string(n).ok()).map(|s| s.trim().to_owned()).unwrap_or_default()
    };
    (
        read(&[
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
            "/sys/fs/cgroup/cpuset.cpus.effective",
            "/sys/devices/system/cpu/online",
        ]),
        read(&[
            "/sys/fs/cgroup/cpuset/cpuset.mems",
            "/sys/fs/cgroup/cpuset.mems.effective",
            "/sys/devices/system/node/online",
        ]),
    )
}

/// Writes a limit file of a v2 cgroup. A file that is not there means its controller is
/// not enabled for the cgroup (not in the parent's `cgroup.subtree_control`): said so,
/// rather than the kernel's bare "permission denied" for creating a file in cgroupfs.
fn write_v2(dir: &Path, file: &str, value: impl AsRef<[u8]>) -> io::Result<()> {
    let p = dir.join(file);
    if !p.exists() {
        let ctrl = file.split('.').next().unwrap_or(file);
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("the {ctrl} controller is not enabled for the container's cgroup ({} is missing)", p.display()),
        ));
    }
    std::fs::write(p, value)
}

fn apply_v2(dir: &Path, l: &Limits) -> io::Result<()> {
    let max = |v: i64| if v <= 0 { "max".to_owned() } else { v.to_string() };
    if let Some(m) = l.memory {
        write_v2(dir, "memory.max", max(m))?;
    }
    if let Some(s) = l.memory_swap {
        // v2 limits swap alone: memory-swap minus memory.
        let v = match (s, l.memory) {
            (s, _) if s <= 0 => "max".to_owned(),
            (s, Some(m)) if m > 0 => (s - m).max(0).to_string(),
            (s, _) => s.to_string(),
        };
        write_v2(dir, "memory.swap.max", v)?;
    }
    if let Some(s) = l.cpu_shares.filter(|s| *s > 0) {
        // runc's conversion of shares (2..262144) to weight (1..10000).
        let w = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
        write_v2(dir, "cpu.weight", w.to_string())?;
    }
    if l.cpu_quota.is_some() || l.cpu_period.is_some() {
        let cur = std::fs::read_to_string(dir.join("cpu.max")).unwrap_or_default();
        let mut it = cur.split_whitespace();
        let (cq, cp) = (it.next().unwrap_or("max").to_owned(), it.next().unwrap_or("100000").to_owned());
        let q = l.cpu_quota.map_or(cq, max);
        let p = l.cpu_period.filter(|p| *p > 0).map_or(cp, |p| p.to_string());
        write_v2(dir, "cpu.max", format!("{q} {p}"))?;
    }
    if let Some(p) = l.pids_limit {
        write_v2(dir, "pids.max", max(p))?;
    }
    if let Some(w) = l.blkio_weight {
        // runc: BFQ's weight as is where it exists, else io.weight on its 1..10000 scale.
        if dir.join("io.bfq.weight").exists() {
            write_v2(dir, "io.bfq.weight", w.to_string())?;
        } else {
            let v = 1 + (u64::from(w).saturating_sub(10)) * 9999 / 990;
            write_v2(dir, "io.weight", v.to_string())?;
        }
    }
    write_cpuset(dir, l)?;
    if let Some(r) = l.memory_reservation {
        write_v2(dir, "memory.low", r.to_string())?;
    }
    Ok(())
}

/// Reads a file holding one number (`max` reads as `None`).
pub fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Reads a `key value` file (memory.stat, cpu.stat, cpuacct.stat).
pub fn read_kv(p: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroups_resolve_to_directories() {
        let cg = Cgroup::of_pid(std::process::id()).unwrap();
        // Whatever the host's layout, every path found is a cgroup directory.
        for d in cg.v1.values().chain(cg.v2.iter()) {
            assert!(d.join("cgroup.procs").exists(), "{}", d.display());
        }
        assert!(!cg.v1.is_empty() || cg.v2.is_some());
    }

    #[test]
    fn cpu_lists_parse_as_the_kernel_reads_them() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap().into_iter().collect::<Vec<_>>(), [0, 1, 2, 5]);
        assert_eq!(parse_cpu_list("1").unwrap().len(), 1);
        assert!(parse_cpu_list("").unwrap().is_empty());
        for bad in ["a", "1-", "3-1", "1,,2", "-1"] {
            assert!(parse_cpu_list(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn v2_limits_without_their_controller_fail_clearly_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        let e = apply_v2(dir.path(), &Limits { memory: Some(64 << 20), ..Default::default() }).unwrap_err();
        assert!(e.to_string().starts_with("the memory controller is not enabled"), "{e}");
        let e = apply_v2(dir.path(), &Limits { pids_limit: Some(5), ..Default::default() }).unwrap_err();
        assert!(e.to_string().starts_with("the pids controller is not enabled"), "{e}");
        assert!(!dir.path().join("memory.max").exists() && !dir.path().join("pids.max").exists());
        std::fs::write(dir.path().join("pids.max"), "max").unwrap();
        apply_v2(dir.path(), &Limits { pids_limit: Some(5), ..Default::default() }).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("pids.max")).unwrap(), "5");
    }

    #[test]
    fn kv_files_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memory.stat");
        std::fs::write(&p, "cache 10\nrss 20\nbogus\n").unwrap();
        let kv = read_kv(&p);
        assert_eq!((kv["cache"], kv["rss"], kv.len()), (10, 20, 2));
        std::fs::write(&p, "max\n").unwrap();
        assert_eq!(read_u64(&p), None);
    }

    /// As root on a host with a v1 cpuset hierarchy: a child made under the prepared
    /// parent has its CPUs and memory nodes without anyone writing them.
    #[test]
    fn children_of_the_cpuset_parent_start_with_its_cpus() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let parent = format!("/berth-unit-{}", std::process::id());
        if !prepare_cpuset_parent(&parent).unwrap() {
            return;
        }
        let m = cgroup_mounts().unwrap().into_iter().find(|m| !m.v2 && m.controllers.iter().any(|c| c == "cpuset"));
        let dir = m.unwrap().point.join(parent.trim_start_matches('/'));
        let child = dir.join("c");
        std::fs::create_dir(&child).unwrap();
        let cpus = std::fs::read_to_string(child.join("cpuset.cpus")).unwrap();
        let mems = std::fs::read_to_string(child.join("cpuset.mems")).unwrap();
        let want = std::fs::read_to_string(dir.join("cpuset.cpus")).unwrap();
        std::fs::remove_dir(&child).unwrap();
        // Preparing again changes nothing.
        assert!(prepare_cpuset_parent(&parent).unwrap());
        std::fs::remove_dir(&dir).unwrap();
        assert!(!cpus.trim().is_empty() && !mems.trim().is_empty());
        assert_eq!(cpus, want);
    }
}
