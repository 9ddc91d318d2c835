//! A container's devices and resource limits: `--device` host paths, `--device-cgroup-rule`,
//! device requests (`--device vendor/class=name` as the `cdi` driver, `--gpus` mapped to
//! CDI devices of kind `nvidia.com/gpu` or `amd.com/gpu` as moby's GPU drivers map them) and
//! `--ulimit` merged with daemon.json's `default-ulimits`. Resolved at create, so a request
//! that cannot work leaves no container, and again at each start, when the result goes
//! into the spec options.

use std::path::{Path, PathBuf};

use berth_api::models::{DeviceRequest, HostConfig};
use berth_runtime::cdi::{ContainerEdits, Registry};
use berth_runtime::spec::{Device, DeviceRule, Rlimit, SpecOptions};

use crate::config::Config;
use crate::error::{Error, Result};

/// What a container's host config asks for, checked against this host.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    devices: Vec<Device>,
    rules: Vec<DeviceRule>,
    rlimits: Vec<Rlimit>,
    cdi: Option<ContainerEdits>,
}

impl Resolved {
    /// Moves the devices, rules, rlimits and CDI edits into a container's spec options.
    pub(crate) fn apply_to(self, o: &mut SpecOptions) {
        o.devices.extend(self.devices);
        o.device_rules.extend(self.rules);
        o.rlimits = self.rlimits;
        o.cdi = self.cdi;
    }
}

/// Resolves the devices, device requests and ulimits of `hc`. Blocking (stats device nodes
/// and reads CDI specs, only when asked for).
pub(crate) fn resolve(hc: &HostConfig, cfg: &Config) -> Result<Resolved> {
    let privileged = hc.privileged == Some(true);
    let mut out = Resolved::default();
    for m in hc.devices.iter().flatten() {
        let host = m.path_on_host.clone().unwrap_or_default();
        let inside = m.path_in_container.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| host.clone());
        let perms = m.cgroup_permissions.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "rwm".to_owned());
        if !valid_mode(&perms) {
            return Err(Error::InvalidArgument(format!("invalid device cgroup permissions {perms:?} for {host}")));
        }
        if privileged && host == inside {
            // A privileged container has every host device already.
            continue;
        }
        for d in devices_from_path(&host, &inside)? {
            if !privileged {
                out.rules.push(DeviceRule {
                    allow: true,
                    typ: d.typ,
                    major: Some(d.major),
                    minor: Some(d.minor),
                    access: perms.clone(),
                });
            }
            out.devices.push(d);
        }
    }
    for r in hc.device_cgroup_rules.iter().flatten() {
        out.rules.push(parse_cgroup_rule(r)?);
    }
    let requests = hc.device_requests.as_deref().unwrap_or(&[]);
    if !requests.is_empty() {
        let registry = Registry::load(&cfg.cdi_spec_dirs);
        for e in registry.errors() {
            tracing::warn!(error = %crate::error::chain(e), "CDI setup error");
        }
        let mut names = Vec::new();
        for req in requests {
            names.extend(cdi_names(req, &registry, cfg.cdi_enabled, !cfg.cdi_spec_dirs.is_empty())?);
        }
        if !names.is_empty() {
            let edits = registry.resolve(&names)?;
            edits.check()?;
            if !edits.net_devices.is_empty() && hc.network_mode.as_deref() == Some("host") {
                return Err(Error::InvalidArgument(
                    "CDI device injection failed: netDevices need the container's own network namespace (not --network host)"
                        .to_owned(),
                ));
            }
            out.cdi = Some(edits);
        }
    }
    out.rlimits = rlimits(hc, &cfg.default_ulimits)?;
    Ok(out)
}

/// Docker's `%v` of a capabilities list: `[[gpu] [compute utility]]`.
fn caps_text(caps: &[Vec<String>]) -> String {
    let inner: Vec<String> = caps.iter().map(|c| format!("[{}]", c.join(" "))).collect();
    format!("[{}]", inner.join(" "))
}

/// The CDI device names a request stands for, choosing its driver as moby's handleDevice
/// does: by name when given, else the first driver whose capabilities match. With
/// `features.cdi` off there is no "cdi" driver at all, as in dockerd.
fn cdi_names(req: &DeviceRequest, reg: &Registry, cdi_feature: bool, cdi_enabled: bool) -> Result<Vec<String>> {
    let driver = req.driver.clone().unwrap_or_default();
    let caps = req.capabilities.clone().unwrap_or_default();
    let incompatible = || {
        Error::InvalidArgument(format!(
            "could not select device driver {driver:?} with capabilities: {}",
            caps_text(&caps)
        ))
    };
    // The GPU drivers exist only where a CDI spec declares GPUs of their vendor.
    let gpu_kind = |vendor: &str| {
        let kind = format!("{vendor}/gpu");
        (cdi_enabled && reg.has_kind(&kind)).then_some(kind)
    };
    let nvidia = gpu_kind("nvidia.com");
    let amd = gpu_kind("amd.com");
    let matches =
        |set: &[&str]| caps.iter().any(|and| !and.is_empty() && and.iter().all(|c| set.contains(&c.as_str())));
    const NVIDIA_CAPS: &[&str] = &["gpu", "nvidia", "compute", "compat32", "graphics", "utility", "video", "display"];
    let gpu = match driver.as_str() {
        "cdi" if !cdi_feature => return Err(incompatible()),
        "cdi" => {
            if !cdi_enabled {
                return Err(Error::InvalidArgument(
                    "CDI device injection failed: no CDI specification directories specified".to_owned(),
                ));
            }
            if req.count.unwrap_or(0) != 0 {
                return Err(Error::InvalidArgument("unexpected count in CDI device request".to_owned()));
            }
            if req.options.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(Error::InvalidArgument("unexpected options in CDI device request".to_owned()));
            }
            return Ok(req.device_ids.clone().unwrap_or_default());
        }
        "" if nvidia.is_some() && matches(NVIDIA_CAPS) => nvidia,
        "" if amd.is_some() && matches(&["gpu", "amd"]) => amd,
        "nvidia" | "nvidia.cdi" if nvidia.is_some() => nvidia,
        "amd" if amd.is_some() => amd,
        _ => return Err(incompatible()),
    };
    let Some(kind) = gpu else { return Err(incompatible()) };
    let count = req.count.unwrap_or(0);
    let ids = req.device_ids.clone().unwrap_or_default();
    if count != 0 && !ids.is_empty() {
        return Err(Error::InvalidArgument("cannot set both Count and DeviceIDs on device request".to_owned()));
    }
    let ids: Vec<String> = if !ids.is_empty() {
        ids
    } else if count > 0 {
        (0..count).map(|i| i.to_string()).collect()
    } else if count < 0 {
        vec!["all".to_owned()]
    } else {
        Vec::new()
    };
    Ok(ids.into_iter().map(|id| if id.contains('=') { id } else { format!("{kind}={id}") }).collect())
}

fn valid_mode(m: &str) -> bool {
    !m.is_empty() && m.len() <= 3 && m.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) && {
        let mut seen = m.chars().collect::<Vec<_>>();
        seen.sort_unstable();
        seen.dedup();
        seen.len() == m.len()
    }
}

/// The device nodes at `host` (one node, or every node under a directory) as they appear
/// at `inside`, like moby's DevicesFromPath.
fn devices_from_path(host: &str, inside: &str) -> Result<Vec<Device>> {
    let gather = |reason: String| {
        Error::InvalidArgument(format!(
            "error gathering device information while adding custom device {host:?}: {reason}"
        ))
    };
    let resolved = std::fs::canonicalize(host).unwrap_or_else(|_| PathBuf::from(host));
    let node = |p: &Path| -> std::io::Result<Option<(berth_runtime::cdi::HostNode, u32, u32)>> {
        use std::os::unix::fs::MetadataExt;
        match berth_runtime::cdi::host_node(p) {
            Ok(n) if n.typ != 'p' => {
                let md = std::fs::symlink_metadata(p)?;
                Ok(Some((n, md.uid(), md.gid())))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::Other => Ok(None),
            Err(e) => Err(e),
        }
    };
    let errno_text = |e: &std::io::Error| {
        let s = e.to_string();
        s.split(" (os error").next().unwrap_or(&s).to_ascii_lowercase()
    };
    let mk = |(n, uid, gid): (berth_runtime::cdi::HostNode, u32, u32), path: String| Device {
        path,
        typ: n.typ,
        major: n.major,
        minor: n.minor,
        file_mode: n.mode,
        uid,
        gid,
    };
    match node(&resolved) {
        Ok(Some(n)) => return Ok(vec![mk(n, inside.to_owned())]),
        Ok(None) => {}
        Err(e) => return Err(gather(errno_text(&e))),
    }
    let mut out = Vec::new();
    if resolved.is_dir() {
        let mut stack = vec![resolved.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                    stack.push(p);
                } else if let Ok(Some(n)) = node(&p)
                    && let Ok(rel) = p.strip_prefix(&resolved)
                {
                    out.push(mk(n, format!("{}/{}", inside.trim_end_matches('/'), rel.display())));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(gather("not a device node".to_owned()));
    }
    Ok(out)
}

/// Parses `--device-cgroup-rule` (`c 1:3 rwm`, `a *:* m`) as moby does.
fn parse_cgroup_rule(r: &str) -> Result<DeviceRule> {
    let bad = || Error::InvalidArgument(format!("invalid device cgroup rule format: '{r}'"));
    let parts: Vec<&str> = r.split(' ').collect();
    let [typ, nums, access] = parts.as_slice() else { return Err(bad()) };
    let typ = match *typ {
        "a" => 'a',
        "b" => 'b',
        "c" => 'c',
        _ => return Err(bad()),
    };
    let (maj, min) = nums.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>> {
        if s == "*" {
            Ok(None)
        } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map(Some).map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    if !(1..=3).contains(&access.len()) || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad());
    }
    Ok(DeviceRule { allow: true, typ, major: num(maj)?, minor: num(min)?, access: (*access).to_owned() })
}

fn rustix_resource(name: &str) -> Option<rustix::process::Resource> {
    use rustix::process::Resource as R;
    Some(match name {
        "core" => R::Core,
        "cpu" => R::Cpu,
        "data" => R::Data,
        "fsize" => R::Fsize,
        "locks" => R::Locks,
        "memlock" => R::Memlock,
        "msgqueue" => R::Msgqueue,
        "nice" => R::Nice,
        "nofile" => R::Nofile,
        "nproc" => R::Nproc,
        "rss" => R::Rss,
        "rtprio" => R::Rtprio,
        "rttime" => R::Rttime,
        "sigpending" => R::Sigpending,
        "stack" => R::Stack,
        _ => return None,
    })
}

/// Whether this process may raise hard limits (CAP_SYS_RESOURCE in its effective set).
fn can_raise_limits() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .is_some_and(|eff| eff & (1 << CAP_SYS_RESOURCE) != 0)
}

/// The container's rlimits: its `--ulimit`s, then the daemon's defaults for other names.
/// A hard limit above the daemon's own is refused when the daemon cannot raise it, because
/// the container's start would fail on it anyway (Docker's containers inherit the daemon's
/// limits the same way).
fn rlimits(hc: &HostConfig, defaults: &[Rlimit]) -> Result<Vec<Rlimit>> {
    let lim = |n: i64| if n < 0 { u64::MAX } else { n as u64 };
    let mut out: Vec<Rlimit> = Vec::new();
    for u in hc.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        if berth_runtime::spec::rlimit_type(&name).is_none() {
            return Err(Error::InvalidArgument(format!("invalid ulimit type: {name}")));
        }
        let soft = u.soft.unwrap_or(0);
        let hard = u.hard.unwrap_or(soft);
        if hard != -1 && (soft == -1 || soft > hard) {
            return Err(Error::InvalidArgument(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        out.retain(|r| r.name != name);
        out.push(Rlimit { name, soft: lim(soft), hard: lim(hard) });
    }
    for d in defaults {
        if !out.iter().any(|r| r.name == d.name) {
            out.push(d.clone());
        }
    }
    if !out.is_empty() && !can_raise_limits() {
        for r in &out {
            let Some(res) = rustix_resource(&r.name) else { continue };
            let own = rustix::process::getrlimit(res).maximum.unwrap_or(u64::MAX);
            if r.hard > own {
                let shown = |v: u64| if v == u64::MAX { "unlimited".to_owned() } else { v.to_string() };
                return Err(Error::InvalidArgument(format!(
                    "ulimit {}: hard limit {} is above the daemon's own hard limit of {}, which it cannot raise (no CAP_SYS_RESOURCE)",
                    r.name,
                    shown(r.hard),
                    shown(own)
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::{DeviceMapping, ResourcesUlimits};

    fn cfg(dirs: Vec<PathBuf>) -> Config {
        use clap::Parser;
        let f = std::env::temp_dir().join(format!("berth-devcfg-{}.json", berth_base::new_id()));
        std::fs::write(&f, "{}").unwrap();
        let args = crate::config::DaemonArgs::parse_from(["berth daemon", "--config-file", f.to_str().unwrap()]);
        let mut c = Config::load(&args).unwrap();
        std::fs::remove_file(&f).unwrap();
        c.cdi_spec_dirs = dirs;
        c
    }

    fn gpus(count: i64, ids: &[&str]) -> DeviceRequest {
        DeviceRequest {
            driver: Some(String::new()),
            count: Some(count),
            device_ids: (!ids.is_empty()).then(|| ids.iter().map(|s| s.to_string()).collect()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            options: None,
        }
    }

    #[test]
    fn gpus_map_to_cdi_names_like_moby() {
        let d = std::env::temp_dir().join(format!("berth-gpu-{}", berth_base::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        let reg = Registry::load(std::slice::from_ref(&d));
        let e = cdi_names(&gpus(-1, &[]), &reg, true, true).unwrap_err();
        assert_eq!(e.to_string(), "could not select device driver \"\" with capabilities: [[gpu]]");
        std::fs::write(
            d.join("nvidia.yaml"),
            "cdiVersion: 0.3.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n  containerEdits:\n    env: [A=1]\n",
        )
        .unwrap();
        let reg = Registry::load(std::slice::from_ref(&d));
        assert_eq!(cdi_names(&gpus(-1, &[]), &reg, true, true).unwrap(), ["nvidia.com/gpu=all"]);
        assert_eq!(cdi_names(&gpus(2, &[]), &reg, true, true).unwrap(), ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        assert_eq!(
            cdi_names(&gpus(0, &["GPU-1", "x.com/y=z"]), &reg, true, true).unwrap(),
            ["nvidia.com/gpu=GPU-1", "x.com/y=z"]
        );
        assert!(
            cdi_names(&gpus(1, &["0"]), &reg, true, true).unwrap_err().to_string().contains("both Count and DeviceIDs")
        );
        assert!(cdi_names(&gpus(-1, &[]), &reg, true, false).is_err(), "CDI disabled: no GPU driver");
        let cdi = DeviceRequest {
            driver: Some("cdi".into()),
            device_ids: Some(vec!["v.com/c=d".into()]),
            ..Default::default()
        };
        assert_eq!(cdi_names(&cdi, &reg, true, true).unwrap(), ["v.com/c=d"]);
        let off = cdi_names(&cdi, &reg, false, false).unwrap_err().to_string();
        assert!(off.contains(r#"could not select device driver "cdi" with capabilities: []"#), "{off}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn device_paths_rules_and_ulimits() {
        let hc = HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/mynull".into()),
                cgroup_permissions: Some("r".into()),
            }]),
            device_cgroup_rules: Some(vec!["c 10:* rm".into()]),
            ulimits: Some(vec![ResourcesUlimits { name: Some("nofile".into()), soft: Some(100), hard: Some(200) }]),
            ..Default::default()
        };
        let defaults = vec![
            Rlimit { name: "nproc".into(), soft: 50, hard: 50 },
            Rlimit { name: "nofile".into(), soft: 1, hard: 1 },
        ];
        let mut c = cfg(Vec::new());
        c.default_ulimits = defaults;
        let r = resolve(&hc, &c).unwrap();
        assert_eq!(
            (r.devices[0].path.as_str(), r.devices[0].typ, r.devices[0].major, r.devices[0].minor),
            ("/dev/mynull", 'c', 1, 3)
        );
        assert_eq!(
            r.rules[0],
            DeviceRule { allow: true, typ: 'c', major: Some(1), minor: Some(3), access: "r".into() }
        );
        assert_eq!(r.rules[1], DeviceRule { allow: true, typ: 'c', major: Some(10), minor: None, access: "rm".into() });
        assert_eq!(
            r.rlimits.iter().map(|r| (r.name.as_str(), r.hard)).collect::<Vec<_>>(),
            [("nofile", 200), ("nproc", 50)]
        );

        let bad = |hc: HostConfig| resolve(&hc, &cfg(Vec::new())).unwrap_err().to_string();
        let dev = |p: &str| HostConfig {
            devices: Some(vec![DeviceMapping { path_on_host: Some(p.into()), ..Default::default() }]),
            ..Default::default()
        };
        assert_eq!(
            bad(dev("/dev/nosuch-berth")),
            "error gathering device information while adding custom device \"/dev/nosuch-berth\": no such file or directory"
        );
        assert!(bad(dev("/etc/hostname")).ends_with("not a device node"));
        assert_eq!(
            bad(HostConfig { device_cgroup_rules: Some(vec!["x 1:2 r".into()]), ..Default::default() }),
            "invalid device cgroup rule format: 'x 1:2 r'"
        );
        let ul = |soft, hard| HostConfig {
            ulimits: Some(vec![ResourcesUlimits { name: Some("nofile".into()), soft: Some(soft), hard: Some(hard) }]),
            ..Default::default()
        };
        if !can_raise_limits() {
            let own = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(u64::MAX);
            if own < 1 << 40 {
                assert!(bad(ul(1 << 40, 1 << 40)).contains("above the daemon's own hard limit"));
            }
        }
        assert!(bad(ul(3, 2)).contains("soft limit must be less than or equal to hard limit: 3 > 2"));
    }

    #[test]
    fn cgroup_rules_parse() {
        assert_eq!(
            parse_cgroup_rule("a *:* rwm").unwrap(),
            DeviceRule { allow: true, typ: 'a', major: None, minor: None, access: "rwm".into() }
        );
        for bad in ["c 1:3", "c 1:3 rwmx", "c a:3 r", "c 1:3 x", "c  1:3 r"] {
            assert!(parse_cgroup_rule(bad).is_err(), "{bad}");
        }
    }
}
