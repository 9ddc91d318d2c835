//! OCI runtime spec generation with Docker's defaults (capabilities, masked paths, mounts,
//! devices, seccomp), plus the two look-ups Docker does inside a rootfs before starting a
//! container: resolving `--user` and finding the executable on `PATH`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use serde_json::{Value, json};

use crate::{Error, ExecFailure};

/// The cgroup every container's own is made in, unless its spec names another.
pub const CGROUP_PARENT: &str = "/berth";

/// The numeric identity the container's process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from the rootfs's /etc/group membership).
    pub additional_gids: Vec<u32>,
}

/// A host path bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mount read-only.
    pub readonly: bool,
}

/// A tmpfs mounted into the container (`run --tmpfs`, `RUN --mount=type=tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    /// Absolute path inside the container.
    pub destination: String,
    /// Mount options (`size=64m`, `mode=1777`, `noexec`…).
    pub options: Vec<String>,
}

/// How a namespace is provided to the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Namespace {
    /// A fresh namespace of its own.
    #[default]
    New,
    /// The host's (the daemon's) namespace.
    Host,
    /// Join an existing namespace, e.g. `/proc/<pid>/ns/net` or a bind-mounted netns file.
    Path(PathBuf),
}

/// Everything the daemon decides about a container that ends up in its config.json.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// Container id (used for the default hostname only when `hostname` is empty).
    pub id: String,
    /// Absolute path of the prepared root filesystem.
    pub rootfs: PathBuf,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// argv of the container's process (entrypoint + cmd, already combined).
    pub args: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// Working directory ("" = "/").
    pub cwd: String,
    /// Resolved user (see [`resolve_user`]).
    pub user: User,
    /// Allocate a pseudo-terminal.
    pub tty: bool,
    /// The terminal's size at start (rows, columns: `HostConfig.ConsoleSize`), with `tty`.
    pub console_size: Option<(u16, u16)>,
    /// Hostname inside the container's UTS namespace.
    pub hostname: String,
    /// Volumes and binds.
    pub mounts: Vec<BindMount>,
    /// tmpfs mounts, after the binds.
    pub tmpfs: Vec<TmpfsMount>,
    /// /etc/hosts, /etc/hostname, /etc/resolv.conf prepared by the daemon.
    pub etc_files: Vec<BindMount>,
    /// Network namespace.
    pub network: Namespace,
    /// IPC namespace.
    pub ipc: Namespace,
    /// PID namespace.
    pub pid: Namespace,
    /// `--uts=host`.
    pub uts_host: bool,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add` (with or without `CAP_`, any case; `ALL` allowed).
    pub cap_add: Vec<String>,
    /// `--cap-drop` (same forms).
    pub cap_drop: Vec<String>,
    /// /dev/shm size in bytes; 0 means Docker's 64 MiB.
    pub shm_size: u64,
    /// cgroup path, e.g. `/berth/<id>`; always set so libcontainer never invents one.
    pub cgroups_path: String,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory + swap limit in bytes (-1 unlimited).
    pub memory_swap: Option<i64>,
    /// CPU shares (relative weight).
    pub cpu_shares: Option<u64>,
    /// CFS quota in µs.
    pub cpu_quota: Option<i64>,
    /// CFS period in µs.
    pub cpu_period: Option<u64>,
    /// Max number of pids.
    pub pids_limit: Option<i64>,
    /// `--cpuset-cpus`: CPUs the container may run on (`0-3`, `0,1`).
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: memory nodes the container may use.
    pub cpuset_mems: Option<String>,
    /// `--memory-reservation`: the soft memory limit in bytes.
    pub memory_reservation: Option<i64>,
    /// Apply a seccomp profile (the default one unless `seccomp_profile` names another);
    /// false = unconfined.
    pub seccomp: bool,
    /// A custom seccomp profile in Docker's JSON format (`--security-opt seccomp=<json>`),
    /// used instead of the default when `seccomp` is on.
    pub seccomp_profile: Option<String>,
    /// `--security-opt apparmor=<profile>`: the AppArmor profile the process runs under.
    pub apparmor_profile: Option<String>,
    /// `--security-opt writable-cgroups=<bool>`; `None` means read-only unless privileged.
    pub writable_cgroups: Option<bool>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `HostConfig.MaskedPaths`: the paths masked in an unprivileged container; `None`
    /// means Docker's ([`MASKED_PATHS`]), empty none (`--security-opt systempaths=unconfined`).
    pub masked_paths: Option<Vec<String>>,
    /// `HostConfig.ReadonlyPaths`, as `masked_paths` is ([`READONLY_PATHS`] when `None`).
    pub readonly_paths: Option<Vec<String>>,
    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--init`: host path of an init binary, bind-mounted read-only at /sbin/docker-init
    /// and prepended to args (`<init> -- args…`).
    pub init: Option<PathBuf>,
    /// `--device`: host device nodes created in the container.
    pub devices: Vec<Device>,
    /// cgroup device rules after the default deny (`--device` permissions,
    /// `--device-cgroup-rule`).
    pub device_rules: Vec<DeviceRule>,
    /// `--ulimit` and daemon.json `default-ulimits`, merged.
    pub rlimits: Vec<Rlimit>,
    /// Edits of the CDI devices the container asked for (`--device vendor/class=name`,
    /// `--gpus` through CDI), applied last.
    pub cdi: Option<crate::cdi::ContainerEdits>,
}

/// A device node created in the container with the host node's numbers and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path inside the container.
    pub path: String,
    /// `c`, `b` or `p`.
    pub typ: char,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits.
    pub file_mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A cgroup device access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// Allow (true) or deny.
    pub allow: bool,
    /// `a` (all), `c` or `b`.
    pub typ: char,
    /// Major number; `None` for any.
    pub major: Option<i64>,
    /// Minor number; `None` for any.
    pub minor: Option<i64>,
    /// Some of `rwm`.
    pub access: String,
}

/// A resource limit of the container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// Docker's name (`nofile`, `nproc`…).
    pub name: String,
    /// Soft limit (`u64::MAX` for unlimited).
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines, indexed by number.
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths Docker masks in every unprivileged container.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker mounts read-only in every unprivileged container.
pub const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Where `--init`'s binary appears inside the container, as with Docker.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The capabilities the running kernel knows and that this process may still grant (its
/// bounding set: a host or outer container can withhold some, as this VM withholds
/// CAP_SYS_RESOURCE); privileged containers get exactly these, because asking for any
/// other makes capset fail.
pub(crate) fn host_caps() -> Vec<String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(40);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapBnd:")).and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(i, _)| *i >= 64 || bounding & (1u64 << i) != 0)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn normalize_cap(name: &str) -> Result<String, Error> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") { up } else { format!("CAP_{up}") };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::InvalidArgument(format!("invalid capability: {name:?}")))
    }
}

/// Docker's capability arithmetic: defaults + add − drop, where `ALL` in drop starts from
/// nothing and `ALL` in add means every capability.
fn capabilities(o: &SpecOptions) -> Result<Vec<String>, Error> {
    if o.privileged {
        return Ok(host_caps());
    }
    let add = o.cap_add.iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>, _>>()?;
    let drop = o.cap_drop.iter().map(|c| normalize_cap(c)).collect::<Result<Vec<_>, _>>()?;
    let mut set: BTreeSet<String> = if drop.iter().any(|c| c == "ALL") {
        BTreeSet::new()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if add.iter().any(|c| c == "ALL") {
        set.extend(host_caps());
    } else {
        set.extend(add.iter().cloned());
    }
    for d in &drop {
        if d != "ALL" && !add.contains(d) {
            set.remove(d);
        }
    }
    // Keep the order stable and kernel-sized.
    let host = host_caps();
    Ok(host.into_iter().filter(|c| set.contains(c)).collect())
}

fn namespace(typ: &str, ns: &Namespace) -> Option<Value> {
    match ns {
        Namespace::New => Some(json!({"type": typ})),
        Namespace::Host => None,
        Namespace::Path(p) => Some(json!({"type": typ, "path": p})),
    }
}

fn bind(m: &BindMount) -> Value {
    let mut opts = vec!["rbind", "rprivate"];
    opts.push(if m.readonly { "ro" } else { "rw" });
    json!({"destination": m.destination, "type": "bind", "source": m.source, "options": opts})
}

/// Builds the OCI runtime spec for a container, Docker's defaults included.
pub fn generate(o: &SpecOptions) -> Result<oci_spec::runtime::Spec, Error> {
    if o.args.is_empty() {
        return Err(Error::InvalidArgument("no command specified".into()));
    }
    let caps = capabilities(o)?;
    let shm = if o.shm_size == 0 { DEFAULT_SHM_SIZE } else { o.shm_size };

    let mut args = o.args.clone();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
    ];
    // Docker: a privileged container gets /sys read-write unless its root is read-only, and
    // the cgroup filesystem read-write (writable-cgroups overrides either way).
    let sys_mode = if o.privileged && !o.readonly_rootfs { "rw" } else { "ro" };
    let cgroup_mode = if o.writable_cgroups.unwrap_or(o.privileged) { "rw" } else { "ro" };
    if o.network == Namespace::Host {
        // sysfs cannot be mounted without owning the network namespace; Docker binds it.
        mounts.push(json!({"destination": "/sys", "type": "bind", "source": "/sys",
                           "options": ["rbind", "nosuid", "noexec", "nodev", sys_mode]}));
    } else {
        mounts.push(json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                           "options": ["nosuid", "noexec", "nodev", sys_mode]}));
    }
    // On v1 and hybrid hosts libcontainer 0.7 drops these options; the shim re-applies `ro`
    // (see shim::finish_container_mounts).
    mounts.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": [cgroup_mode, "nosuid", "noexec", "nodev"]}));
    mounts.push(json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                       "options": ["nosuid", "noexec", "nodev"]}));
    if o.ipc != Namespace::Host {
        mounts.push(json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                           "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}));
    } else {
        mounts.push(json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                           "options": ["rbind", "rprivate", "rw"]}));
    }
    mounts.extend(o.etc_files.iter().map(bind));
    mounts.extend(o.mounts.iter().map(bind));
    mounts.extend(
        o.tmpfs
            .iter()
            .map(|t| json!({"destination": t.destination, "type": "tmpfs", "source": "tmpfs", "options": t.options})),
    );
    if let Some(init) = &o.init {
        mounts.push(json!({"destination": INIT_PATH, "type": "bind", "source": init,
                           "options": ["bind", "rprivate", "ro"]}));
        let mut a = vec![INIT_PATH.to_string(), "--".to_string()];
        a.append(&mut args);
        args = a;
    }

    let mut namespaces = vec![json!({"type": "mount"})];
    if !o.uts_host {
        namespaces.push(json!({"type": "uts"}));
    }
    namespaces.extend(namespace("ipc", &o.ipc));
    namespaces.extend(namespace("pid", &o.pid));
    namespaces.extend(namespace("network", &o.network));
    namespaces.push(json!({"type": "cgroup"}));

    let mut memory = serde_json::Map::new();
    if let Some(m) = o.memory {
        memory.insert("limit".into(), json!(m));
        // Docker: with a memory limit and no explicit swap, swap = 2 × memory.
        let swap = o.memory_swap.unwrap_or(m.saturating_mul(2));
        if swap != 0 {
            memory.insert("swap".into(), json!(swap));
        }
    } else if let Some(s) = o.memory_swap.filter(|s| *s > 0) {
        // Unlimited swap (-1) without a memory limit limits nothing: left out, as
        // libcgroups' v2 manager refuses any swap value without a memory limit (dockerd
        // records -1 beside a memory limit it had to discard).
        memory.insert("swap".into(), json!(s));
    }
    if let Some(r) = o.memory_reservation.filter(|r| *r > 0) {
        memory.insert("reservation".into(), json!(r));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(v) = o.cpu_shares {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(v) = o.cpu_quota {
        cpu.insert("quota".into(), json!(v));
    }
    if let Some(v) = o.cpu_period {
        cpu.insert("period".into(), json!(v));
    }
    if let Some(v) = o.cpuset_cpus.as_deref().filter(|v| !v.is_empty()) {
        cpu.insert("cpus".into(), json!(v));
    }
    if let Some(v) = o.cpuset_mems.as_deref().filter(|v| !v.is_empty()) {
        cpu.insert("mems".into(), json!(v));
    }
    let mut resources = serde_json::Map::new();
    resources.insert(
        "devices".into(),
        if o.privileged {
            json!([{"allow": true, "access": "rwm"}])
        } else {
            json!([{"allow": false, "access": "rwm"}])
        },
    );
    if !memory.is_empty() {
        resources.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = o.pids_limit.filter(|p| *p > 0) {
        resources.insert("pids".into(), json!({"limit": p}));
    }

    let mut linux = json!({
        "cgroupsPath": if o.cgroups_path.is_empty() { format!("{CGROUP_PARENT}/{}", o.id) } else { o.cgroups_path.clone() },
        "namespaces": namespaces,
        "resources": resources,
        "sysctl": o.sysctls,
    });
    if !o.privileged {
        linux["maskedPaths"] = o.masked_paths.as_ref().map_or_else(|| json!(MASKED_PATHS), |p| json!(p));
        linux["readonlyPaths"] = o.readonly_paths.as_ref().map_or_else(|| json!(READONLY_PATHS), |p| json!(p));
    } else {
        linux["devices"] = Value::Array(host_devices());
    }
    if o.seccomp && !o.privileged {
        linux["seccomp"] = match &o.seccomp_profile {
            Some(custom) => seccomp_profile(&parse_seccomp_profile(custom)?, &caps),
            None => default_seccomp_for(&caps)?,
        };
    }

    let mut process = json!({
        "terminal": o.tty,
        "user": {"uid": o.user.uid, "gid": o.user.gid},
        "args": args,
        "env": o.env,
        "cwd": if o.cwd.is_empty() { "/" } else { o.cwd.as_str() },
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
    });
    // Only ever `true` or absent: libcontainer 0.7 tests presence, not value, to decide
    // whether seccomp loads before the capability drop, and `false` made loading fail.
    if o.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }
    if let Some((rows, cols)) = o.console_size.filter(|_| o.tty) {
        process["consoleSize"] = json!({"height": rows, "width": cols});
    }
    if !o.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(o.user.additional_gids);
    }
    if let Some(adj) = o.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }
    if let Some(profile) = &o.apparmor_profile {
        process["apparmorProfile"] = json!(profile);
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": o.rootfs, "readonly": o.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    });
    if !o.uts_host {
        let host = if o.hostname.is_empty() { o.id.chars().take(12).collect() } else { o.hostname.clone() };
        spec["hostname"] = json!(host);
    }
    apply_devices_and_limits(&mut spec, o)?;
    serde_json::from_value(spec).map_err(|source| Error::Json { context: "invalid generated OCI spec".into(), source })
}

/// Adds `--device` nodes and rules, rlimits and CDI edits to a generated spec document.
fn apply_devices_and_limits(spec: &mut Value, o: &SpecOptions) -> Result<(), Error> {
    if !o.devices.is_empty() {
        if !spec["linux"]["devices"].is_array() {
            spec["linux"]["devices"] = json!([]);
        }
        if let Some(devs) = spec["linux"]["devices"].as_array_mut() {
            for d in &o.devices {
                devs.retain(|x| x["path"] != json!(d.path));
                devs.push(json!({"path": d.path, "type": d.typ.to_string(), "major": d.major, "minor": d.minor,
                                 "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid}));
            }
        }
    }
    if !o.privileged
        && let Some(rules) = spec["linux"]["resources"]["devices"].as_array_mut()
    {
        rules.extend(o.device_rules.iter().map(|r| {
            let mut v = json!({"allow": r.allow, "type": r.typ.to_string(), "access": r.access});
            if let Some(m) = r.major {
                v["major"] = json!(m);
            }
            if let Some(m) = r.minor {
                v["minor"] = json!(m);
            }
            v
        }));
    }
    if !o.rlimits.is_empty() {
        let mut out = Vec::new();
        for r in &o.rlimits {
            let typ = rlimit_type(&r.name)
                .ok_or_else(|| Error::InvalidArgument(format!("invalid ulimit type: {}", r.name)))?;
            out.push(json!({"type": typ, "soft": r.soft, "hard": r.hard}));
        }
        spec["process"]["rlimits"] = Value::Array(out);
    }
    if let Some(edits) = &o.cdi {
        edits.apply(spec)?;
    }
    Ok(())
}

/// The OCI name of a Docker ulimit name (go-units' table; `as` is not one of them).
pub fn rlimit_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        _ => return None,
    })
}

/// The host's device nodes, which a privileged container gets as Docker gives them.
fn host_devices() -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
            let ft = md.file_type();
            if ft.is_dir() {
                let skip = ["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd"];
                if !skip.iter().any(|s| p == Path::new(s)) {
                    stack.push(p);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if p == Path::new("/dev/console") || p == Path::new("/dev/ptmx") {
                continue;
            }
            let rdev = md.rdev();
            out.push(json!({
                "path": p, "type": typ,
                "major": rustix::fs::major(rdev), "minor": rustix::fs::minor(rdev),
                "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
            }));
        }
    }
    out
}

/// Docker's default seccomp profile (moby's profiles/seccomp/default.json, as data).
const DEFAULT_PROFILE: &str = include_str!("seccomp_default.json");

/// moby's name for the architecture we run on, as used in the profile's `arches` filters.
fn native_arch() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
        "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
        "s390x" => ("s390x", "SCMP_ARCH_S390X"),
        "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
        "x86" => ("x86", "SCMP_ARCH_X86"),
        "arm" => ("arm", "SCMP_ARCH_ARM"),
        "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
        other => (other, "SCMP_ARCH_NATIVE"),
    }
}

fn str_list(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn default_seccomp_profile() -> Result<Value, Error> {
    serde_json::from_str(DEFAULT_PROFILE)
        .map_err(|source| Error::Json { context: "invalid built-in seccomp profile".into(), source })
}

/// Docker's default profile converted for these capabilities. Parsing and converting the
/// 20 KB profile for every container was a fixed cost of each start, so both are done once:
/// the parsed profile for the process, the conversion once per distinct capability set
/// (a daemon sees few: the default set and a handful of `--cap-add` variants).
fn default_seccomp_for(caps: &[String]) -> Result<Value, Error> {
    static PARSED: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    static CONVERTED: std::sync::Mutex<Vec<(Vec<String>, Value)>> = std::sync::Mutex::new(Vec::new());
    const KEEP: usize = 16;
    let mut key = caps.to_vec();
    key.sort();
    let mut cache = CONVERTED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, v)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(v.clone());
    }
    let parsed = match PARSED.get() {
        Some(p) => p,
        None => {
            let p = default_seccomp_profile()?;
            PARSED.get_or_init(|| p)
        }
    };
    let v = seccomp_profile(parsed, caps);
    if cache.len() >= KEEP {
        cache.remove(0);
    }
    cache.push((key, v.clone()));
    Ok(v)
}

/// Parses a custom seccomp profile in Docker's JSON format (what `--security-opt
/// seccomp=<file>` sends: the file's content) and checks that it converts, so a bad profile
/// is refused when the container is created rather than when it starts.
pub fn parse_seccomp_profile(json: &str) -> Result<Value, Error> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("Decoding seccomp profile failed: {e}")))?;
    if !v.is_object() {
        return Err(Error::InvalidArgument("Decoding seccomp profile failed: not a JSON object".into()));
    }
    if v.get("archMap").is_some_and(|m| !m.is_null()) && v.get("architectures").is_some_and(|a| !a.is_null()) {
        return Err(Error::InvalidArgument(
            "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'"
                .into(),
        ));
    }
    let converted = seccomp_profile(&v, &[]);
    serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(converted)
        .map_err(|e| Error::InvalidArgument(format!("invalid seccomp profile: {e}")))?;
    Ok(v)
}

/// Converts a profile in moby's format (the built-in one or a user's) into the spec's
/// LinuxSeccomp for this architecture and these capabilities: rules are kept when their
/// `includes` match and their `excludes` do not, as moby does when it loads a profile.
/// Both of moby's shapes are read: `archMap` or a flat `architectures` list, and a rule's
/// `names` or older single `name`.
fn seccomp_profile(profile: &Value, caps: &[String]) -> Value {
    let (arch, scmp_arch) = native_arch();
    let mut arches = Vec::new();
    for m in profile["archMap"].as_array().into_iter().flatten() {
        if m["architecture"] == scmp_arch {
            arches.push(scmp_arch.to_string());
            arches.extend(str_list(m, "subArchitectures"));
        }
    }
    arches.extend(str_list(profile, "architectures"));
    let mut syscalls = Vec::new();
    for rule in profile["syscalls"].as_array().into_iter().flatten() {
        let inc = &rule["includes"];
        let exc = &rule["excludes"];
        let inc_arches = str_list(inc, "arches");
        let inc_caps = str_list(inc, "caps");
        if !inc_arches.is_empty() && !inc_arches.iter().any(|a| a == arch) {
            continue;
        }
        if !inc_caps.iter().all(|c| caps.contains(c)) {
            continue;
        }
        if str_list(exc, "arches").iter().any(|a| a == arch) || str_list(exc, "caps").iter().any(|c| caps.contains(c)) {
            continue;
        }
        let mut names = str_list(rule, "names");
        if let Some(n) = rule.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            names.push(n.to_string());
        }
        // minKernel (4.8 in the default profile) is below anything that runs berth.
        let mut r = json!({"names": names, "action": rule["action"]});
        if let Some(e) = rule.get("errnoRet").filter(|e| !e.is_null()) {
            r["errnoRet"] = e.clone();
        }
        if let Some(a) = rule.get("args").filter(|a| a.is_array()) {
            r["args"] = a.clone();
        }
        syscalls.push(r);
    }
    let mut out = json!({
        "defaultAction": profile["defaultAction"],
        "architectures": arches,
        "syscalls": syscalls,
    });
    if let Some(e) = profile.get("defaultErrnoRet").filter(|e| !e.is_null()) {
        out["defaultErrnoRet"] = e.clone();
    }
    if let Some(f) = profile.get("flags").filter(|f| f.is_array()) {
        out["flags"] = f.clone();
    }
    out
}

/// Reads a file of the rootfs without following symlinks out of it; a missing file reads
/// as empty, as Docker treats a missing passwd/group.
fn read_rootfs_file(rootfs: &Path, path: &str) -> Result<String, Error> {
    match berth_base::fsroot::read_in_root(rootfs, path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("failed to read", &rootfs.join(path.trim_start_matches('/')), e)),
    }
}

/// Resolves Docker's `--user` forms (`""`, `name`, `uid`, `name:group`, `uid:gid`,
/// `uid:groupname`) against the rootfs's /etc/passwd and /etc/group.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<User, Error> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_rootfs_file(rootfs, "/etc/passwd")?;
    let group = read_rootfs_file(rootfs, "/etc/group")?;
    // (name, uid, gid)
    let pw: Vec<(&str, u32, u32)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some((f[0], f[2].parse().ok()?, f[3].parse().ok()?))
        })
        .collect();
    // (name, gid, members)
    let gr: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            let members = f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
            Some((f[0], f[2].parse().ok()?, members))
        })
        .collect();

    let u = if u.is_empty() { "0" } else { u };
    let (name, uid, mut gid) = if let Ok(uid) = u.parse::<u32>() {
        match pw.iter().find(|p| p.1 == uid) {
            Some(p) => (Some(p.0), uid, p.2),
            None => (None, uid, 0),
        }
    } else {
        match pw.iter().find(|p| p.0 == u) {
            Some(p) => (Some(p.0), p.1, p.2),
            None => {
                return Err(Error::InvalidArgument(format!(
                    "unable to find user {u}: no matching entries in passwd file"
                )));
            }
        }
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = if let Ok(n) = g.parse::<u32>() {
            n
        } else {
            match gr.iter().find(|e| e.0 == g) {
                Some(e) => e.1,
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    )));
                }
            }
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = name {
        for e in &gr {
            if e.2.contains(&name) && e.1 != gid && !additional_gids.contains(&e.1) {
                additional_gids.push(e.1);
            }
        }
    }
    Ok(User { uid, gid, additional_gids })
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a path inside the rootfs turned out to be.
enum Probe {
    Missing,
    NotExecutable,
    Executable,
}

fn probe(rootfs: &Path, path: &str) -> Probe {
    let Ok(root) = berth_base::fsroot::open_root(rootfs) else { return Probe::Missing };
    let Ok(fd) = berth_base::fsroot::open_in_root(&root, path, OFlags::PATH, Mode::empty()) else {
        return Probe::Missing;
    };
    match rustix::fs::fstat(&fd) {
        Ok(st) => {
            let is_file = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
            if is_file && st.st_mode & 0o111 != 0 { Probe::Executable } else { Probe::NotExecutable }
        }
        Err(_) => Probe::Missing,
    }
}

/// Checks, as exec would inside the container, that `cmd` can be executed; the errors
/// carry Docker's texts.
pub fn find_executable(rootfs: &Path, cmd: &str, env: &[String], cwd: &str) -> Result<(), Error> {
    if cmd.contains('/') {
        let full = if cmd.starts_with('/') {
            cmd.to_string()
        } else {
            format!("{}/{}", if cwd.is_empty() { "/" } else { cwd }.trim_end_matches('/'), cmd)
        };
        return match probe(rootfs, &full) {
            Probe::Executable => Ok(()),
            Probe::NotExecutable => {
                Err(exec_error(ExecFailure::NotExecutable, format!("exec: \"{cmd}\": permission denied")))
            }
            Probe::Missing => Err(exec_error(
                ExecFailure::NotFound,
                format!("exec: \"{cmd}\": stat {cmd}: no such file or directory"),
            )),
        };
    }
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let full = if dir.starts_with('/') {
            format!("{}/{cmd}", dir.trim_end_matches('/'))
        } else {
            format!("{}/{dir}/{cmd}", if cwd.is_empty() { "" } else { cwd.trim_end_matches('/') })
        };
        match probe(rootfs, &full) {
            Probe::Executable => return Ok(()),
            Probe::NotExecutable => denied = true,
            Probe::Missing => {}
        }
    }
    if denied {
        Err(exec_error(ExecFailure::NotExecutable, format!("exec: \"{cmd}\": permission denied")))
    } else {
        Err(exec_error(ExecFailure::NotFound, format!("exec: \"{cmd}\": executable file not found in $PATH")))
    }
}

fn exec_error(failure: ExecFailure, message: String) -> Error {
    Error::Exec { failure, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> SpecOptions {
        SpecOptions {
            id: "0123456789abcdef".into(),
            rootfs: "/r".into(),
            args: vec!["sh".into()],
            seccomp: true,
            cgroups_path: "/berth/x".into(),
            ..Default::default()
        }
    }

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-spec-{}", berth_base::new_id()));
        std::fs::create_dir_all(d.join("etc")).unwrap();
        d
    }

    #[test]
    fn default_spec_is_dockers() {
        let s = generate(&opts()).unwrap();
        let v = serde_json::to_value(&s).unwrap();
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), DEFAULT_CAPS.len());
        assert!(v["process"]["capabilities"].get("inheritable").is_none());
        assert_eq!(v["hostname"], "0123456789ab");
        assert_eq!(v["linux"]["cgroupsPath"], "/berth/x");
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().iter().any(|p| p == "/proc/kcore"));
        let shm = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/dev/shm").unwrap();
        assert!(shm["options"].as_array().unwrap().iter().any(|o| o == "size=67108864"));
        let sc = &v["linux"]["seccomp"];
        assert_eq!(sc["defaultAction"], "SCMP_ACT_ERRNO");
        let names: Vec<&str> = sc["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()))
            .collect();
        assert!(names.contains(&"read"));
        assert!(!names.contains(&"mount"), "mount needs CAP_SYS_ADMIN");
        assert!(names.contains(&"clone3"), "clone3 answers ENOSYS without CAP_SYS_ADMIN");
        assert!(v["process"].get("rlimits").is_none());
        assert!(v["process"].get("noNewPrivileges").is_none());
    }

    #[test]
    fn host_config_lists_and_console_size() {
        let mut o = opts();
        o.masked_paths = Some(vec!["/proc/cpuinfo".into()]);
        o.readonly_paths = Some(Vec::new());
        o.console_size = Some((45, 123));
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        assert_eq!(v["linux"]["maskedPaths"], serde_json::json!(["/proc/cpuinfo"]));
        assert_eq!(v["linux"]["readonlyPaths"], serde_json::json!([]));
        assert!(v["process"].get("consoleSize").is_none(), "no terminal, no size");
        o.tty = true;
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        assert_eq!(v["process"]["consoleSize"], serde_json::json!({"height": 45, "width": 123}));
        o.privileged = true;
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        assert!(v["linux"].get("maskedPaths").is_none(), "privileged masks nothing");
    }

    #[test]
    fn caps_privileged_and_namespaces() {
        let mut o = opts();
        o.cap_add = vec!["sys_admin".into()];
        o.cap_drop = vec!["CAP_CHOWN".into()];
        o.network = Namespace::Host;
        o.pid = Namespace::Path("/proc/1/ns/pid".into());
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        let caps: Vec<&str> =
            v["process"]["capabilities"]["effective"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert!(caps.contains(&"CAP_SYS_ADMIN") && !caps.contains(&"CAP_CHOWN"));
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(!ns.iter().any(|n| n["type"] == "network"));
        assert!(ns.iter().any(|n| n["type"] == "pid" && n["path"] == "/proc/1/ns/pid"));
        o.cap_add = vec!["nope".into()];
        assert_eq!(generate(&o).unwrap_err().kind(), berth_base::ErrorKind::InvalidArgument);

        let mut p = opts();
        p.privileged = true;
        let v = serde_json::to_value(generate(&p).unwrap()).unwrap();
        assert!(v["linux"].get("seccomp").is_none());
        assert!(v["linux"].get("maskedPaths").is_none());
        assert!(v["process"]["capabilities"]["bounding"].as_array().unwrap().len() > 30);
    }

    fn mount_options(v: &Value, dest: &str) -> Vec<String> {
        let m = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == dest).unwrap();
        m["options"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn sys_and_cgroup_modes_follow_docker() {
        let v = serde_json::to_value(generate(&opts()).unwrap()).unwrap();
        assert!(mount_options(&v, "/sys").contains(&"ro".to_owned()));
        assert!(mount_options(&v, "/sys/fs/cgroup").contains(&"ro".to_owned()));
        let mut p = opts();
        p.privileged = true;
        let v = serde_json::to_value(generate(&p).unwrap()).unwrap();
        assert!(mount_options(&v, "/sys").contains(&"rw".to_owned()));
        assert!(mount_options(&v, "/sys/fs/cgroup").contains(&"rw".to_owned()));
        p.readonly_rootfs = true;
        p.writable_cgroups = Some(false);
        let v = serde_json::to_value(generate(&p).unwrap()).unwrap();
        assert!(mount_options(&v, "/sys").contains(&"ro".to_owned()));
        assert!(mount_options(&v, "/sys/fs/cgroup").contains(&"ro".to_owned()));
    }

    #[test]
    fn default_profile_is_converted_once_per_capability_set() {
        let chown = vec!["CAP_CHOWN".to_owned()];
        let a = default_seccomp_for(&chown).unwrap();
        assert_eq!(a, default_seccomp_for(&chown).unwrap());
        assert_eq!(a, seccomp_profile(&default_seccomp_profile().unwrap(), &chown));
        let admin = vec!["CAP_SYS_ADMIN".to_owned()];
        assert_ne!(a, default_seccomp_for(&admin).unwrap(), "CAP_SYS_ADMIN adds mount and friends");
        assert_eq!(default_seccomp_for(&admin).unwrap(), seccomp_profile(&default_seccomp_profile().unwrap(), &admin));
    }

    /// Docker's default profile, converted for no capabilities, the default set and
    /// CAP_SYS_ADMIN, lets an init's last steps through, so it is loaded before the start.
    #[test]
    fn the_default_profile_is_loaded_before_the_start() {
        for caps in [vec![], vec!["CAP_CHOWN".to_owned(), "CAP_KILL".to_owned()], vec!["CAP_SYS_ADMIN".to_owned()]] {
            let v = default_seccomp_for(&caps).unwrap();
            let sc: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v).unwrap();
            assert!(crate::seccomp::allows_start_window(&sc), "{caps:?}");
        }
    }

    #[test]
    fn custom_seccomp_and_apparmor() {
        let mut o = opts();
        o.seccomp_profile = Some(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                            {"name":"rmdir","action":"SCMP_ACT_ERRNO"},
                            {"names":["chown"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#
                .into(),
        );
        o.apparmor_profile = Some("docker-default".into());
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        let sc = &v["linux"]["seccomp"];
        assert_eq!(sc["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(sc["architectures"], json!(["SCMP_ARCH_X86_64"]));
        let rules = sc["syscalls"].as_array().unwrap();
        assert_eq!(rules.len(), 2, "the CAP_SYS_ADMIN rule is left out: {rules:?}");
        assert_eq!(rules[0]["names"], json!(["mkdir"]));
        assert_eq!(rules[1]["names"], json!(["rmdir"]));
        assert_eq!(v["process"]["apparmorProfile"], "docker-default");

        for bad in ["{not json", "[]", r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, r#"{"archMap":[],"architectures":[]}"#] {
            let e = parse_seccomp_profile(bad).unwrap_err();
            assert_eq!(e.kind(), berth_base::ErrorKind::InvalidArgument, "{bad}: {e}");
        }
        assert!(parse_seccomp_profile("{x").unwrap_err().to_string().starts_with("Decoding seccomp profile failed"));
    }

    #[test]
    fn resources_and_init() {
        let mut o = opts();
        o.memory = Some(1 << 20);
        o.pids_limit = Some(10);
        o.cpuset_cpus = Some("0".into());
        o.cpuset_mems = Some("0".into());
        o.memory_reservation = Some(1 << 19);
        o.init = Some("/usr/bin/tini".into());
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 1 << 20);
        assert_eq!(v["linux"]["resources"]["memory"]["reservation"], 1 << 19);
        assert_eq!(v["linux"]["resources"]["cpu"]["cpus"], "0");
        assert_eq!(v["linux"]["resources"]["cpu"]["mems"], "0");
        assert_eq!(v["linux"]["resources"]["memory"]["swap"], 2 << 20);
        assert_eq!(v["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(v["process"]["args"], json!(["/sbin/docker-init", "--", "sh"]));
    }

    #[test]
    fn unlimited_swap_without_memory_limit_is_left_out() {
        let mut o = opts();
        o.memory_swap = Some(-1);
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        assert!(v["linux"]["resources"]["memory"].get("swap").is_none(), "{}", v["linux"]["resources"]);
        o.memory = Some(1 << 23);
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        assert_eq!(v["linux"]["resources"]["memory"]["swap"], -1);
    }

    #[test]
    fn devices_rules_rlimits_and_cdi() {
        let mut o = opts();
        o.devices =
            vec![Device { path: "/dev/mynull".into(), typ: 'c', major: 1, minor: 3, file_mode: 0o666, uid: 0, gid: 0 }];
        o.device_rules = vec![DeviceRule { allow: true, typ: 'c', major: Some(1), minor: Some(3), access: "r".into() }];
        o.rlimits = vec![Rlimit { name: "nofile".into(), soft: 1024, hard: 2048 }];
        o.cdi = Some(crate::cdi::ContainerEdits { env: vec!["CDI=1".into()], ..Default::default() });
        let v = serde_json::to_value(generate(&o).unwrap()).unwrap();
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/mynull");
        assert_eq!(v["linux"]["devices"][0]["fileMode"], 0o666);
        let rules = v["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules[0]["allow"], false);
        assert_eq!(rules[1], json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}));
        assert_eq!(v["process"]["rlimits"], json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]));
        assert!(v["process"]["env"].as_array().unwrap().contains(&json!("CDI=1")));
        o.rlimits = vec![Rlimit { name: "as".into(), soft: 1, hard: 1 }];
        assert_eq!(generate(&o).unwrap_err().to_string(), "invalid ulimit type: as");
    }

    #[test]
    fn users_resolve_like_docker() {
        let d = tmp();
        std::fs::write(d.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            .unwrap();
        std::fs::write(d.join("etc/group"), "root:x:0:\napp:x:1000:\nwheel:x:10:app,bob\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_user(&d, "").unwrap(), User { uid: 0, gid: 0, additional_gids: vec![] });
        assert_eq!(resolve_user(&d, "app").unwrap(), User { uid: 1000, gid: 1000, additional_gids: vec![10] });
        assert_eq!(resolve_user(&d, "app:staff").unwrap().gid, 50);
        assert_eq!(resolve_user(&d, "4242:7").unwrap(), User { uid: 4242, gid: 7, additional_gids: vec![] });
        assert_eq!(resolve_user(&d, "1000:staff").unwrap().gid, 50);
        let e = resolve_user(&d, "nobody").unwrap_err();
        assert_eq!(e.to_string(), "unable to find user nobody: no matching entries in passwd file");
        assert_eq!(e.kind(), berth_base::ErrorKind::InvalidArgument);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn executables_are_found_like_exec() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(d.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("etc/passwd"), "").unwrap();
        let env = vec!["PATH=/bin".to_string()];
        assert!(find_executable(&d, "tool", &env, "/").is_ok());
        assert!(find_executable(&d, "/bin/tool", &[], "/").is_ok());
        assert_eq!(
            find_executable(&d, "nosuchcmd", &env, "/").unwrap_err().to_string(),
            "exec: \"nosuchcmd\": executable file not found in $PATH"
        );
        assert_eq!(
            find_executable(&d, "/x", &env, "/").unwrap_err().to_string(),
            "exec: \"/x\": stat /x: no such file or directory"
        );
        assert_eq!(
            find_executable(&d, "/etc/passwd", &env, "/").unwrap_err().to_string(),
            "exec: \"/etc/passwd\": permission denied"
        );
        assert_eq!(
            find_executable(&d, "/etc", &env, "/").unwrap_err().to_string(),
            "exec: \"/etc\": permission denied"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
