//! Which resource limits this host's cgroups can enforce (moby's `pkg/sysinfo`), and
//! dockerd's treatment of a limit the host cannot enforce (`verifyPlatformContainerResources`):
//! discarded with a warning, or refused where Docker refuses it, before anything is
//! recorded or handed to the runtime.
//!
//! On a unified (cgroup v2 only) host a controller exists for containers only when the
//! cgroup root lists it in `cgroup.controllers`: without `memory`, libcontainer cannot
//! write `memory.max` and the start would fail, so `--memory` there is dropped with
//! Docker's warning instead, as dockerd does. On v1 and hybrid hosts berth keeps its
//! behaviour of applying what it is asked (every v1 controller is mounted where berth
//! runs) and reports everything as supported.

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// cgroup2's file system magic (`CGROUP2_SUPER_MAGIC`), as libcontainer tells the modes apart.
const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

/// What the host's cgroups can enforce, read once per daemon (dockerd reads it at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysInfo {
    /// `/sys/fs/cgroup` is a cgroup2 mount (no v1 hierarchies in use).
    pub unified: bool,
    /// `--memory`.
    pub memory_limit: bool,
    /// `--memory-swap`.
    pub swap_limit: bool,
    /// `--memory-reservation`.
    pub memory_reservation: bool,
    /// `--memory-swappiness`.
    pub memory_swappiness: bool,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--pids-limit`.
    pub pids_limit: bool,
    /// `--cpu-shares`.
    pub cpu_shares: bool,
    /// `--cpu-period`, `--cpu-quota`, `--cpus`.
    pub cpu_cfs: bool,
    /// `--cpuset-cpus`, `--cpuset-mems`.
    pub cpuset: bool,
    /// `--blkio-weight`.
    pub blkio_weight: bool,
}

impl SysInfo {
    /// Everything supported: berth's v1 behaviour (limits go to the runtime as asked).
    pub fn all() -> SysInfo {
        SysInfo {
            unified: false,
            memory_limit: true,
            swap_limit: true,
            memory_reservation: true,
            memory_swappiness: true,
            oom_kill_disable: true,
            pids_limit: true,
            cpu_shares: true,
            cpu_cfs: true,
            cpuset: true,
            blkio_weight: true,
        }
    }

    /// A unified host whose cgroup root offers `controllers` (moby's newV2); `swap` says
    /// whether `memory.swap.max` exists in the daemon's own cgroup.
    pub fn v2(controllers: &HashSet<String>, swap: bool) -> SysInfo {
        let has = |c: &str| controllers.contains(c);
        SysInfo {
            unified: true,
            memory_limit: has("memory"),
            swap_limit: has("memory") && swap,
            memory_reservation: has("memory"),
            // Neither exists in cgroup v2; dockerd reports both unsupported there.
            memory_swappiness: false,
            oom_kill_disable: false,
            pids_limit: has("pids"),
            cpu_shares: has("cpu"),
            cpu_cfs: has("cpu"),
            cpuset: has("cpuset"),
            blkio_weight: has("io"),
        }
    }

    /// This host's, read on first use.
    pub fn host() -> &'static SysInfo {
        static INFO: OnceLock<SysInfo> = OnceLock::new();
        INFO.get_or_init(|| SysInfo::read(Path::new("/sys/fs/cgroup")))
    }

    /// Reads the cgroup layout mounted at `root`.
    fn read(root: &Path) -> SysInfo {
        let unified = rustix::fs::statfs(root).is_ok_and(|s| s.f_type as u64 == CGROUP2_SUPER_MAGIC);
        if !unified {
            return SysInfo::all();
        }
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
            .unwrap_or_default();
        let swap = root.join(own.trim_start_matches('/')).join("memory.swap.max").exists();
        SysInfo::v2(&controllers, swap)
    }

    /// dockerd's `docker info` warnings (daemon/info_unix.go) for what a unified host cannot
    /// enforce; none on v1 and hybrid hosts, where berth reports everything as supported.
    pub fn info_warnings(&self) -> Vec<String> {
        if !self.unified {
            return Vec::new();
        }
        let mut w = Vec::new();
        let mut say = |missing: bool, what: &str| {
            if missing {
                w.push(format!("WARNING: No {what} support"));
            }
        };
        say(!self.memory_limit, "memory limit");
        say(!self.swap_limit, "swap limit");
        say(!self.cpu_cfs, "cpu cfs quota");
        say(!self.cpu_cfs, "cpu cfs period");
        say(!self.cpu_shares, "cpu shares");
        say(!self.cpuset, "cpuset");
        // The io controller brings io.weight and io.max together (moby's applyIOCgroupInfoV2).
        for what in [
            "io.weight",
            "io.weight (per device)",
            "io.max (rbps)",
            "io.max (wbps)",
            "io.max (riops)",
            "io.max (wiops)",
        ] {
            say(!self.blkio_weight, what);
        }
        w
    }
}

/// The resource fields of a create's `HostConfig` or of an update's body, borrowed for
/// [`discard_unsupported`] (both API types carry them under the same names).
pub struct ResourcesMut<'a> {
    /// `Memory`.
    pub memory: &'a mut Option<i64>,
    /// `MemorySwap`.
    pub memory_swap: &'a mut Option<i64>,
    /// `MemoryReservation`.
    pub memory_reservation: &'a mut Option<i64>,
    /// `MemorySwappiness`.
    pub memory_swappiness: &'a mut Option<i64>,
    /// `OomKillDisable`.
    pub oom_kill_disable: &'a mut Option<bool>,
    /// `PidsLimit`.
    pub pids_limit: &'a mut Option<i64>,
    /// `CpuShares`.
    pub cpu_shares: &'a mut Option<i64>,
    /// `CpuPeriod`.
    pub cpu_period: &'a mut Option<i64>,
    /// `CpuQuota`.
    pub cpu_quota: &'a mut Option<i64>,
    /// `NanoCpus`.
    pub nano_cpus: &'a mut Option<i64>,
    /// `CpusetCpus`.
    pub cpuset_cpus: &'a mut Option<String>,
    /// `CpusetMems`.
    pub cpuset_mems: &'a mut Option<String>,
    /// `BlkioWeight`.
    pub blkio_weight: &'a mut Option<u16>,
}

/// Borrows the resource fields of a `HostConfig` or `ContainerUpdateBody`.
macro_rules! resources_mut {
    ($r:expr) => {
        $crate::engine::sysinfo::ResourcesMut {
            memory: &mut $r.memory,
            memory_swap: &mut $r.memory_swap,
            memory_reservation: &mut $r.memory_reservation,
            memory_swappiness: &mut $r.memory_swappiness,
            oom_kill_disable: &mut $r.oom_kill_disable,
            pids_limit: &mut $r.pids_limit,
            cpu_shares: &mut $r.cpu_shares,
            cpu_period: &mut $r.cpu_period,
            cpu_quota: &mut $r.cpu_quota,
            nano_cpus: &mut $r.nano_cpus,
            cpuset_cpus: &mut $r.cpuset_cpus,
            cpuset_mems: &mut $r.cpuset_mems,
            blkio_weight: &mut $r.blkio_weight,
        }
    };
}
pub(crate) use resources_mut;

/// dockerd's verifyPlatformContainerResources for the limits `info` says the host cannot
/// enforce: each is reset as dockerd resets it and a warning in dockerd's words is
/// returned; `--cpus` without CFS is refused, as dockerd refuses it. Limits the host
/// supports are left for the range checks elsewhere.
pub fn discard_unsupported(info: &SysInfo, r: ResourcesMut<'_>) -> Result<Vec<String>> {
    let mut w = Vec::new();
    let pos = |v: &Option<i64>| v.is_some_and(|v| v > 0);
    if pos(r.memory) && !info.memory_limit {
        w.push("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.".to_owned());
        *r.memory = Some(0);
        *r.memory_swap = Some(-1);
    }
    if pos(r.memory) && *r.memory_swap != Some(-1) && !info.swap_limit {
        w.push(
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                .to_owned(),
        );
        *r.memory_swap = Some(-1);
    }
    if r.memory_swappiness.is_some_and(|s| s != -1) && !info.memory_swappiness {
        w.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".to_owned());
        *r.memory_swappiness = None;
    }
    if pos(r.memory_reservation) && !info.memory_reservation {
        w.push("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.".to_owned());
        *r.memory_reservation = Some(0);
    }
    if r.oom_kill_disable.is_some() && !info.oom_kill_disable {
        if *r.oom_kill_disable == Some(true) {
            w.push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".to_owned());
        }
        *r.oom_kill_disable = None;
    }
    if r.pids_limit.is_some() && !info.pids_limit {
        if pos(r.pids_limit) {
            w.push(
                "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded."
                    .to_owned(),
            );
        }
        *r.pids_limit = None;
    }
    if pos(r.nano_cpus) && !info.cpu_cfs {
        return Err(Error::InvalidArgument(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted"
                .to_owned(),
        ));
    }
    if pos(r.cpu_shares) && !info.cpu_shares {
        w.push("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.".to_owned());
        *r.cpu_shares = Some(0);
    }
    if (r.cpu_period.is_some_and(|v| v != 0) || r.cpu_quota.is_some_and(|v| v != 0)) && !info.cpu_cfs {
        w.push("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.".to_owned());
        *r.cpu_period = Some(0);
        *r.cpu_quota = Some(0);
    }
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    if (set(r.cpuset_cpus) || set(r.cpuset_mems)) && !info.cpuset {
        w.push("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.".to_owned());
        *r.cpuset_cpus = Some(String::new());
        *r.cpuset_mems = Some(String::new());
    }
    if r.blkio_weight.is_some_and(|v| v > 0) && !info.blkio_weight {
        w.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".to_owned(),
        );
        *r.blkio_weight = Some(0);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::HostConfig;

    fn none() -> SysInfo {
        SysInfo::v2(&HashSet::new(), false)
    }

    #[test]
    fn a_v2_root_without_controllers_supports_no_limit() {
        let i = none();
        assert!(i.unified);
        assert!(!(i.memory_limit || i.pids_limit || i.cpu_cfs || i.cpu_shares || i.cpuset || i.blkio_weight));
        let all: HashSet<String> = ["cpu", "memory", "pids", "io", "cpuset"].iter().map(|s| s.to_string()).collect();
        let i = SysInfo::v2(&all, true);
        assert!(i.memory_limit && i.swap_limit && i.pids_limit && i.cpu_cfs && i.cpuset && i.blkio_weight);
        assert!(!i.memory_swappiness && !i.oom_kill_disable);
        assert!(none().info_warnings().contains(&"WARNING: No memory limit support".to_owned()));
        assert_eq!(none().info_warnings().len(), 12);
        assert!(SysInfo::all().info_warnings().is_empty());
    }

    #[test]
    fn unsupported_limits_are_discarded_with_dockerds_warnings() {
        let mut hc = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            memory_reservation: Some(32 << 20),
            pids_limit: Some(10),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpuset_cpus: Some("0".into()),
            blkio_weight: Some(300),
            oom_kill_disable: Some(false),
            ..Default::default()
        };
        let w = discard_unsupported(&none(), resources_mut!(hc)).unwrap();
        assert_eq!(w.len(), 7, "{w:?}");
        assert!(w[0].starts_with("Your kernel does not support memory limit capabilities"), "{w:?}");
        assert_eq!((hc.memory, hc.memory_swap, hc.memory_reservation), (Some(0), Some(-1), Some(0)));
        assert_eq!((hc.pids_limit, hc.cpu_shares, hc.cpu_quota), (None, Some(0), Some(0)));
        assert_eq!((hc.cpuset_cpus.as_deref(), hc.blkio_weight, hc.oom_kill_disable), (Some(""), Some(0), None));
        // Nothing asked: nothing said, nothing changed.
        let mut plain = HostConfig::default();
        assert!(discard_unsupported(&none(), resources_mut!(plain)).unwrap().is_empty());
        assert_eq!(plain, HostConfig::default());
    }

    #[test]
    fn supported_limits_stay_and_cpus_without_cfs_is_refused() {
        let mut hc = HostConfig { memory: Some(64 << 20), pids_limit: Some(5), ..Default::default() };
        assert!(discard_unsupported(&SysInfo::all(), resources_mut!(hc)).unwrap().is_empty());
        assert_eq!((hc.memory, hc.pids_limit), (Some(64 << 20), Some(5)));
        let mut hc = HostConfig { nano_cpus: Some(500_000_000), ..Default::default() };
        let e = discard_unsupported(&none(), resources_mut!(hc)).unwrap_err();
        assert!(e.to_string().starts_with("NanoCPUs can not be set"), "{e}");
    }

    #[test]
    fn memory_without_swap_support_keeps_the_limit_without_swap() {
        let mem: HashSet<String> = ["memory".to_owned()].into();
        let mut hc = HostConfig { memory: Some(64 << 20), memory_swap: Some(128 << 20), ..Default::default() };
        let w = discard_unsupported(&SysInfo::v2(&mem, false), resources_mut!(hc)).unwrap();
        assert_eq!(w.len(), 1);
        assert!(w[0].ends_with("Memory limited without swap."), "{w:?}");
        assert_eq!((hc.memory, hc.memory_swap), (Some(64 << 20), Some(-1)));
    }
}
