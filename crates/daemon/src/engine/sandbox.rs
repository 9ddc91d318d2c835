//! The sandbox: the one place that turns an image config plus run options (and, later, a
//! network attachment and volumes) into what a process sees around it — `/etc/hosts`,
//! `/etc/hostname`, `/etc/resolv.conf`, its user and `HOME`, its working directory, its
//! mounts — and into the [`SpecOptions`] the runtime makes an OCI spec from. Containers
//! ([`for_container`]) and build steps ([`for_step`]) both come through here; where Docker
//! and BuildKit differ (the hosts file, `/etc/hostname`, the resolver) the [`Kind`] says
//! which convention applies.

use std::path::{Path, PathBuf};

use berth_api::models::{HostConfig, MountType};
use berth_build::executor::{Network, RunSpec, StepMount};
use berth_runtime::spec::{BindMount, Namespace, SpecOptions, TmpfsMount};

use crate::error::{Error, Result};
use crate::record::ContainerRecord;

/// Whose sandbox this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A container, with Docker's conventions.
    Container,
    /// A build step, with BuildKit's: a short hosts file naming the step's host, no
    /// `/etc/hostname`, and only `HOME` added to the environment.
    BuildStep,
}

/// How `/etc/resolv.conf` is made.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dns<'a> {
    /// The host's file as it is: the process shares the host's network (build steps).
    Host,
    /// The host's file without loopback name servers (they mean nothing in the container's
    /// network namespace), with `--dns` and `--dns-search` applied, as Docker does.
    Container {
        /// `--dns`.
        servers: &'a [String],
        /// `--dns-search`.
        search: &'a [String],
        /// `--dns-option`.
        options: &'a [String],
    },
}

/// The network side of a container's sandbox, made by `engine/networks.rs` at start.
#[derive(Debug, Clone)]
pub(crate) struct NetSandbox {
    /// The network namespace.
    pub namespace: Namespace,
    /// `--add-host` entries (with `host-gateway` resolved), then `--link` entries and the
    /// container's own address, each `names:address`.
    pub extra_hosts: Vec<String>,
    /// `--network container:X`: X's bundle, whose hosts, resolv.conf and hostname are used.
    pub share_files_of: Option<PathBuf>,
    /// The name servers when `--dns` gives none (a user network's embedded DNS).
    pub dns_servers: Vec<String>,
}

/// What a sandbox is made from, common to containers and build steps.
pub(crate) struct SandboxSpec<'a> {
    /// Container id (also libcontainer's id).
    pub id: String,
    /// Whose conventions apply.
    pub kind: Kind,
    /// The bundle directory, where the /etc files are written.
    pub bundle: &'a Path,
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// argv.
    pub args: Vec<String>,
    /// Environment from the image and the request, `K=V`.
    pub env: Vec<String>,
    /// `user`, `uid`, `user:group` or empty for root, resolved in the rootfs.
    pub user: &'a str,
    /// Absolute working directory, created in the rootfs if missing.
    pub cwd: &'a str,
    /// Host name.
    pub hostname: &'a str,
    /// Allocate a tty.
    pub tty: bool,
    /// `--add-host` entries, `name:address` or `name=address`.
    pub extra_hosts: &'a [String],
    /// The resolver configuration.
    pub dns: Dns<'a>,
    /// The network namespace.
    pub network: Namespace,
    /// Bind mounts besides the /etc files.
    pub mounts: Vec<BindMount>,
    /// tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
}

/// Writes the /etc files, resolves the user, creates the working directory and fills the
/// spec options every process needs; the caller adds its resources and security options.
/// Blocking.
pub(crate) fn prepare(s: SandboxSpec<'_>) -> Result<SpecOptions> {
    let user = berth_runtime::spec::resolve_user(s.rootfs, s.user)?;
    berth_base::fsroot::mkdir_all_in_root(s.rootfs, s.cwd)
        .map_err(|e| Error::io(format!("create working directory {}", s.cwd), e))?;
    let etc_files = write_etc_files(&s)?;
    let mut env = s.env;
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if s.kind == Kind::Container {
        if !has(&env, "HOSTNAME") {
            env.push(format!("HOSTNAME={}", s.hostname));
        }
        if s.tty && !has(&env, "TERM") {
            env.push("TERM=xterm".to_owned());
        }
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", home_dir(s.rootfs, user.uid)));
    }
    Ok(SpecOptions {
        id: s.id,
        rootfs: s.rootfs.to_path_buf(),
        args: s.args,
        env,
        cwd: s.cwd.to_owned(),
        user,
        tty: s.tty,
        hostname: s.hostname.to_owned(),
        mounts: s.mounts,
        tmpfs: s.tmpfs,
        etc_files,
        network: s.network,
        ..Default::default()
    })
}

/// A container's spec options from its record: the merged config, the host config's
/// mounts, namespaces, resources and security options. Blocking.
pub(crate) fn for_container(rec: &ContainerRecord, dir: &Path, rootfs: &Path, net: &NetSandbox) -> Result<SpecOptions> {
    let hc = &rec.host_config;
    let hostname = rec.config.hostname.clone().unwrap_or_else(|| rec.id[..12].to_owned());
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    let ns = |mode: Option<&str>| if mode == Some("host") { Namespace::Host } else { Namespace::New };
    let base = prepare(SandboxSpec {
        id: rec.id.clone(),
        kind: Kind::Container,
        bundle: dir,
        rootfs,
        args,
        env: rec.config.env.clone().unwrap_or_default(),
        user: rec.config.user.as_deref().unwrap_or(""),
        cwd: rec.config.working_dir.as_deref().unwrap_or("/"),
        hostname: &hostname,
        tty: rec.tty(),
        extra_hosts: &net.extra_hosts,
        dns: match net.namespace {
            // The host's own network: its resolver as it is, loopback servers included.
            Namespace::Host => Dns::Host,
            _ => Dns::Container {
                // On a user network the embedded resolver is the one name server; `--dns`
                // servers are where it relays other names (as in Docker).
                servers: if net.dns_servers.is_empty() {
                    hc.dns.as_deref().unwrap_or(&[])
                } else {
                    net.dns_servers.as_slice()
                },
                search: hc.dns_search.as_deref().unwrap_or(&[]),
                options: hc.dns_options.as_deref().unwrap_or(&[]),
            },
        },
        network: net.namespace.clone(),
        mounts: bind_mounts(rec)?,
        tmpfs: tmpfs_mounts(hc),
    })?;
    let mut base = base;
    for g in group_add(rootfs, hc.group_add.as_deref().unwrap_or(&[]))? {
        if !base.user.additional_gids.contains(&g) {
            base.user.additional_gids.push(g);
        }
    }
    if let Some(other) = &net.share_files_of {
        for f in ["hosts", "resolv.conf", "hostname"] {
            if let Ok(data) = std::fs::read(other.join(f)) {
                berth_base::fsutil::atomic_write_mode(&dir.join(f), &data, berth_base::fsutil::SHARED_FILE)
                    .map_err(|e| Error::io(format!("write {f}"), e))?;
            }
        }
    }
    let privileged = hc.privileged == Some(true);
    let security = security_opts(hc.security_opt.as_deref().unwrap_or(&[]))?;
    let (seccomp, seccomp_profile) = match security.seccomp {
        Seccomp::Default => (!privileged, None),
        Seccomp::Unconfined => (false, None),
        Seccomp::Custom(json) => (!privileged, Some(json)),
    };
    Ok(SpecOptions {
        console_size: super::exec::console_size(hc.console_size.as_deref()),
        readonly_rootfs: hc.readonly_rootfs == Some(true),
        ipc: ns(hc.ipc_mode.as_deref()),
        pid: ns(hc.pid_mode.as_deref()),
        uts_host: hc.uts_mode.as_deref() == Some("host"),
        privileged,
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        shm_size: hc.shm_size.unwrap_or(0).max(0) as u64,
        cgroups_path: format!("/berth/{}", rec.id),
        memory: hc.memory.filter(|m| *m > 0),
        memory_swap: hc.memory_swap.filter(|m| *m != 0),
        cpu_shares: hc.cpu_shares.filter(|s| *s > 0).map(|s| s as u64),
        cpu_quota: hc.cpu_quota.filter(|q| *q > 0).or_else(|| hc.nano_cpus.filter(|n| *n > 0).map(|n| n / 10_000)),
        cpu_period: hc
            .cpu_period
            .filter(|p| *p > 0)
            .map(|p| p as u64)
            .or_else(|| hc.nano_cpus.filter(|n| *n > 0).map(|_| 100_000)),
        pids_limit: hc.pids_limit.filter(|p| *p > 0),
        cpuset_cpus: hc.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        cpuset_mems: hc.cpuset_mems.clone().filter(|s| !s.is_empty()),
        memory_reservation: hc.memory_reservation.filter(|r| *r > 0),
        seccomp,
        seccomp_profile,
        no_new_privileges: security.no_new_privileges,
        masked_paths: hc.masked_paths.clone(),
        readonly_paths: hc.readonly_paths.clone(),
        apparmor_profile: security.apparmor,
        writable_cgroups: security.writable_cgroups,
        sysctls: hc.sysctls.clone().unwrap_or_default().into_iter().collect(),
        oom_score_adj: hc.oom_score_adj.map(|o| o as i32),
        init: None,
        ..base
    })
}

/// A build step's spec options: the step's command, user, working directory and mounts on
/// the host's network (or none), BuildKit's hosts file with the build's `--add-host`
/// entries, and the host's resolver. Blocking.
pub(crate) fn for_step(bundle: &Path, rootfs: &Path, spec: &RunSpec, netns: Option<&Path>) -> Result<SpecOptions> {
    let mut mounts = Vec::new();
    let mut tmpfs = Vec::new();
    for m in &spec.mounts {
        match m {
            StepMount::Bind { source, target, readonly } => {
                mounts.push(BindMount { source: source.clone(), destination: target.clone(), readonly: *readonly })
            }
            StepMount::Tmpfs { target, size } => tmpfs.push(TmpfsMount {
                destination: target.clone(),
                options: std::iter::once("nosuid".to_owned())
                    .chain((*size > 0).then(|| format!("size={size}")))
                    .collect(),
            }),
        }
    }
    let base = prepare(SandboxSpec {
        id: bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        kind: Kind::BuildStep,
        bundle,
        rootfs,
        args: spec.args.clone(),
        env: spec.env.clone(),
        user: &spec.user,
        cwd: &spec.cwd,
        hostname: &spec.hostname,
        tty: false,
        extra_hosts: &spec.extra_hosts,
        dns: match spec.network {
            Network::Host => Dns::Host,
            _ => Dns::Container { servers: &[], search: &[], options: &[] },
        },
        network: match (spec.network, netns) {
            (Network::Host, _) => Namespace::Host,
            (Network::Default, Some(p)) => Namespace::Path(p.to_path_buf()),
            _ => Namespace::New,
        },
        mounts,
        tmpfs,
    })?;
    Ok(SpecOptions {
        cgroups_path: format!("/berth/build-{}", berth_base::new_id()),
        seccomp: !spec.privileged,
        privileged: spec.privileged,
        shm_size: spec.shm_size,
        ..base
    })
}

/// The seccomp filter `--security-opt seccomp=` chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Seccomp {
    /// Docker's default profile (no option, or `seccomp=builtin`).
    #[default]
    Default,
    /// `seccomp=unconfined`.
    Unconfined,
    /// A profile in Docker's JSON format, sent by the client as the file's content.
    Custom(String),
}

/// What a container's `--security-opt` list asks for, parsed as Docker's daemon does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SecurityOpts {
    /// The seccomp filter.
    pub seccomp: Seccomp,
    /// `no-new-privileges[=bool]`.
    pub no_new_privileges: bool,
    /// `apparmor=<profile>`, on a host with AppArmor.
    pub apparmor: Option<String>,
    /// `writable-cgroups=<bool>`; `None` leaves it to `--privileged`.
    pub writable_cgroups: Option<bool>,
}

/// Go's strconv.ParseBool, which Docker uses for boolean security options.
/// `--group-add`: numeric gids as given, names looked up in the rootfs's /etc/group
/// (dockerd's wording when one is missing).
pub(super) fn group_add(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let text = match berth_base::fsroot::read_in_root(rootfs, "/etc/group") {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io("read /etc/group", e)),
    };
    groups
        .iter()
        .map(|g| {
            if let Ok(n) = g.parse::<u32>() {
                return Ok(n);
            }
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    Some((f.next()?, f.nth(1)?.parse::<u32>().ok()?))
                })
                .find(|(name, _)| name == g)
                .map(|(_, gid)| gid)
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("Unable to find group {g}: no matching entries in group file"))
                })
        })
        .collect()
}

fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim().starts_with('Y'))
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Parses `--security-opt` as moby's parseSecurityOpt does, with its wording for what it
/// refuses (`invalid --security-opt 2: "bogus=1"`). Checked at create (a 400, as Docker's
/// verifyContainerSettings answers) and again when the spec is made.
///
/// Where berth differs from Docker, it refuses rather than ignores: Docker drops `apparmor=`
/// silently on a host without AppArmor; berth accepts only `apparmor=unconfined` there and
/// refuses a named profile, so nobody believes a container confined that is not. `label=`
/// is accepted as Docker accepts it on a host without SELinux (go-selinux's InitLabels
/// answers empty labels there); on a host with SELinux berth does not label processes, so
/// anything but `label=disable` is refused.
pub(crate) fn security_opts(opts: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts::default();
    let invalid2 = |opt: &str| Error::InvalidArgument(format!("invalid --security-opt 2: {opt:?}"));
    for opt in opts {
        if opt == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        let Some((k, v)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
            return Err(Error::InvalidArgument(format!("invalid --security-opt 1: {opt:?}")));
        };
        match k {
            "label" => {
                if selinux_enabled() && v != "disable" {
                    return Err(Error::InvalidArgument(format!(
                        "--security-opt {opt:?}: berth does not apply SELinux labels; only label=disable is accepted on this host"
                    )));
                }
            }
            "apparmor" => {
                if apparmor_enabled() {
                    out.apparmor = Some(v.to_owned());
                } else if v != "unconfined" {
                    return Err(Error::InvalidArgument(format!(
                        "--security-opt {opt:?}: AppArmor is not enabled on this host, so the profile cannot be applied"
                    )));
                }
            }
            "seccomp" => {
                out.seccomp = match v {
                    "unconfined" => Seccomp::Unconfined,
                    "" | "builtin" => Seccomp::Default,
                    json => {
                        berth_runtime::spec::parse_seccomp_profile(json)?;
                        Seccomp::Custom(json.to_owned())
                    }
                }
            }
            "no-new-privileges" => out.no_new_privileges = go_bool(v).ok_or_else(|| invalid2(opt))?,
            "writable-cgroups" => out.writable_cgroups = Some(go_bool(v).ok_or_else(|| invalid2(opt))?),
            _ => return Err(invalid2(opt)),
        }
    }
    Ok(out)
}

/// The container's bind mounts and volumes; `-v` creates a missing host directory as
/// Docker does, `--mount` refuses it (checked at create).
fn bind_mounts(rec: &ContainerRecord) -> Result<Vec<BindMount>> {
    let mut mounts = Vec::new();
    for b in &rec.binds {
        if !b.from_mount_flag && !b.source.exists() {
            std::fs::create_dir_all(&b.source)
                .map_err(|e| Error::io(format!("create bind source {}", b.source.display()), e))?;
        }
        if !b.source.exists() {
            return Err(Error::InvalidArgument(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                b.source.display()
            )));
        }
        mounts.push(BindMount { source: b.source.clone(), destination: b.destination.clone(), readonly: b.readonly });
    }
    mounts.extend(super::volumes::spec_mounts(rec));
    // Parents before what is mounted inside them, as moby sorts mounts.
    mounts.sort_by_key(|m| super::volumes::depth(&m.destination));
    Ok(mounts)
}

/// `--tmpfs dst[:opts]` and `--mount type=tmpfs`, with Docker's defaults (noexec, nosuid,
/// nodev) overridden by what the user gave, later options winning.
fn tmpfs_mounts(hc: &HostConfig) -> Vec<TmpfsMount> {
    let mut out = Vec::new();
    let mut push = |dest: &str, extra: Vec<String>| {
        let mut opts: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
        for o in extra.into_iter().filter(|o| !o.is_empty()) {
            let key = |x: &str| -> String {
                let k = x.split('=').next().unwrap_or(x);
                k.strip_prefix("no").filter(|r| matches!(*r, "exec" | "suid" | "dev" | "atime")).unwrap_or(k).to_owned()
            };
            let k = key(&o);
            opts.retain(|x| key(x) != k);
            opts.push(o);
        }
        out.push(TmpfsMount { destination: dest.to_owned(), options: opts });
    };
    let mut dests: Vec<(&String, &String)> = hc.tmpfs.iter().flatten().collect();
    dests.sort();
    for (dest, data) in dests {
        push(dest, data.split(',').map(str::to_owned).collect());
    }
    for m in hc.mounts.iter().flatten() {
        if m.typ == Some(MountType::TMPFS) {
            let mut extra = Vec::new();
            if let Some(o) = &m.tmpfs_options {
                if let Some(sz) = o.size_bytes.filter(|s| *s > 0) {
                    extra.push(format!("size={sz}"));
                }
                if let Some(mode) = o.mode.filter(|m| *m > 0) {
                    extra.push(format!("mode={mode:o}"));
                }
            }
            push(m.target.as_deref().unwrap_or_default(), extra);
        }
    }
    out
}

/// Writes /etc/hostname (containers only), /etc/hosts and /etc/resolv.conf into the bundle
/// and returns their bind mounts.
fn write_etc_files(s: &SandboxSpec<'_>) -> Result<Vec<BindMount>> {
    let write = |name: &str, data: &str| -> Result<PathBuf> {
        let p = s.bundle.join(name);
        // Any container user reads these (as in Docker); the bundle dir keeps host users out.
        // Rewritten at every start, so not fsynced (`replace_file_mode`).
        berth_base::fsutil::replace_file_mode(&p, data.as_bytes(), berth_base::fsutil::SHARED_FILE)
            .map_err(|e| Error::io(format!("write {}", p.display()), e))?;
        Ok(p)
    };
    let hosts = hosts_file(s.kind, s.hostname, s.extra_hosts)?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = match s.dns {
        Dns::Host => host_resolv,
        Dns::Container { servers, search, options } => {
            let r = resolv_conf(&host_resolv, servers, search, options);
            if servers.iter().any(|s| s == "127.0.0.11") { with_ndots0(&r) } else { r }
        }
    };
    let mut out = Vec::new();
    if s.kind == Kind::Container {
        out.push(BindMount {
            source: write("hostname", &format!("{}\n", s.hostname))?,
            destination: "/etc/hostname".to_owned(),
            readonly: false,
        });
    }
    out.push(BindMount { source: write("hosts", &hosts)?, destination: "/etc/hosts".to_owned(), readonly: false });
    out.push(BindMount {
        source: write("resolv.conf", &resolv)?,
        destination: "/etc/resolv.conf".to_owned(),
        readonly: false,
    });
    Ok(out)
}

/// The hosts file: Docker's localhost and IPv6 entries for a container, BuildKit's two
/// localhost lines naming the step's host for a build step; then the `--add-host`
/// entries. A container skips an entry it cannot read (the CLI validated it); a build step
/// refuses it, as BuildKit does.
fn hosts_file(kind: Kind, hostname: &str, extra: &[String]) -> Result<String> {
    let mut hosts = match kind {
        Kind::Container => String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        ),
        Kind::BuildStep => format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    };
    for h in extra {
        match split_host_entry(h) {
            Some((name, addr)) => hosts.push_str(&format!("{addr}\t{name}\n")),
            None if kind == Kind::BuildStep => {
                return Err(Error::InvalidArgument(format!("invalid host entry {h:?}")));
            }
            None => {}
        }
    }
    Ok(hosts)
}

/// `name=address`, or `name:address` split at the first colon (the address may be IPv6).
fn split_host_entry(h: &str) -> Option<(&str, &str)> {
    h.split_once('=').or_else(|| h.split_once(':'))
}

/// Docker's `options ndots:0` for a container whose name server is the embedded resolver
/// (unless an `ndots` option is already there).
fn with_ndots0(resolv: &str) -> String {
    if resolv.lines().any(|l| l.trim().starts_with("options") && l.contains("ndots:")) {
        return resolv.to_owned();
    }
    let mut out = String::new();
    let mut done = false;
    for l in resolv.lines() {
        out.push_str(l);
        if !done && l.trim().starts_with("options") {
            out.push_str(" ndots:0");
            done = true;
        }
        out.push('\n');
    }
    if !done {
        out.push_str("options ndots:0\n");
    }
    out
}

/// The host's resolv.conf with loopback name servers removed and `--dns`/`--dns-search`
/// applied, as Docker does.
fn resolv_conf(host: &str, dns: &[String], search: &[String], options: &[String]) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if !dns.is_empty() || ns.starts_with("127.") || ns == "::1" {
                continue;
            }
            servers += 1;
        }
        if !search.is_empty() && (t.starts_with("search") || t.starts_with("domain")) {
            continue;
        }
        if !options.is_empty() && t.starts_with("options") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
        servers += 1;
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// The user's home from the image's /etc/passwd; without an entry `/root` for root and `/`
/// for anyone else (as runc does).
fn home_dir(rootfs: &Path, uid: u32) -> String {
    let passwd = berth_base::fsroot::read_in_root(rootfs, "/etc/passwd").unwrap_or_default();
    for line in String::from_utf8_lossy(&passwd).lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid) && !f[5].is_empty() {
            return f[5].to_owned();
        }
    }
    if uid == 0 { "/root".to_owned() } else { "/".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opts_parse_as_dockers() {
        let v = |o: &[&str]| security_opts(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let s = v(&["no-new-privileges", "seccomp=unconfined", "label=disable", "writable-cgroups=1"]).unwrap();
        assert!(s.no_new_privileges);
        assert_eq!(s.seccomp, Seccomp::Unconfined);
        assert_eq!(s.writable_cgroups, Some(true));
        assert!(!v(&["no-new-privileges:false"]).unwrap().no_new_privileges);
        assert_eq!(v(&["seccomp=builtin"]).unwrap().seccomp, Seccomp::Default);
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
        assert_eq!(v(&[&format!("seccomp={json}")]).unwrap().seccomp, Seccomp::Custom(json.to_owned()));
        for (opt, want) in [
            ("bogus=1", r#"invalid --security-opt 2: "bogus=1""#),
            ("bogus", r#"invalid --security-opt 1: "bogus""#),
            ("no-new-privileges=maybe", r#"invalid --security-opt 2: "no-new-privileges=maybe""#),
        ] {
            assert_eq!(v(&[opt]).unwrap_err().to_string(), want);
        }
        assert!(v(&["seccomp={"]).unwrap_err().to_string().contains("Decoding seccomp profile failed"));
    }

    #[test]
    fn resolv_drops_loopback() {
        let r = resolv_conf("nameserver 127.0.0.53\nsearch lan\n", &[], &[], &[]);
        assert!(r.contains("8.8.8.8") && !r.contains("127.0.0.53") && r.contains("search lan"));
        let r = resolv_conf(
            "nameserver 10.0.0.1\noptions x\n",
            &["1.1.1.1".into()],
            &["x.org".into()],
            &["ndots:2".into()],
        );
        assert_eq!(r, "nameserver 1.1.1.1\nsearch x.org\noptions ndots:2\n");
    }

    #[test]
    fn hosts_files_follow_docker_and_buildkit() {
        let extra = vec!["db:10.0.0.2".to_owned(), "v6=::1".to_owned(), "bad".to_owned()];
        let c = hosts_file(Kind::Container, "abc", &extra).unwrap();
        assert!(c.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0"));
        assert!(c.ends_with("10.0.0.2\tdb\n::1\tv6\n"), "{c}");
        let s = hosts_file(Kind::BuildStep, "buildkitsandbox", &extra[..2]).unwrap();
        assert_eq!(
            s,
            "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tdb\n::1\tv6\n"
        );
        assert!(hosts_file(Kind::BuildStep, "x", &extra).is_err(), "a step refuses an unreadable entry");
    }

    #[test]
    fn sandboxes_of_containers_and_steps() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
            .unwrap();
        let spec = |kind, user| SandboxSpec {
            id: "x".into(),
            kind,
            bundle: dir.path(),
            rootfs: &rootfs,
            args: vec!["true".into()],
            env: vec!["PATH=/bin".into()],
            user,
            cwd: "/work/dir",
            hostname: "h",
            tty: true,
            extra_hosts: &[],
            dns: Dns::Host,
            network: Namespace::Host,
            mounts: Vec::new(),
            tmpfs: Vec::new(),
        };
        let c = prepare(spec(Kind::Container, "app")).unwrap();
        assert_eq!(c.env, ["PATH=/bin", "HOSTNAME=h", "TERM=xterm", "HOME=/home/app"]);
        assert_eq!(c.user.uid, 1000);
        assert!(rootfs.join("work/dir").is_dir());
        let dests: Vec<_> = c.etc_files.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]);
        let s = prepare(spec(Kind::BuildStep, "app")).unwrap();
        assert_eq!(s.env, ["PATH=/bin", "HOME=/home/app"], "a step's HOME comes from passwd too");
        let dests: Vec<_> = s.etc_files.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/etc/hosts", "/etc/resolv.conf"]);
        let r = prepare(spec(Kind::BuildStep, "")).unwrap();
        assert!(r.env.contains(&"HOME=/root".to_owned()));
    }
}
