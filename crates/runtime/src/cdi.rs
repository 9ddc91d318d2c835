//! Container Device Interface (CNCF CDI, spec versions 0.3.0–1.1.0): the vendor spec files
//! in `/etc/cdi` and `/var/run/cdi` (YAML or JSON, as `nvidia-ctk cdi generate` writes them),
//! the registry of fully-qualified device names (`vendor/class=name`) they declare, and the
//! container edits (env, device nodes, mounts, hooks, extra groups) a request for some of
//! those devices makes to a container's OCI spec.
//!
//! Written here rather than taken from the `container-device-interface` crate: that crate
//! links clap, a JSON-schema engine, anyhow errors and the deprecated serde_yaml into a
//! library, for a format that is a few structs and a handful of validation rules.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::Error;

/// Where CDI specs live unless the daemon is told otherwise; later directories win.
pub const DEFAULT_SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// The CDI spec versions this reader accepts (the CDI library's list, 0.3.0 onwards).
const VERSIONS: &[&str] = &["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0"];

/// A spec file that could not be used; the registry keeps loading the others.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("failed to read CDI Spec {path:?}")]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a CDI spec document (bad YAML/JSON or unknown fields).
    #[error("failed to parse CDI Spec {path:?}")]
    Parse {
        /// The spec file.
        path: PathBuf,
        /// The YAML error (JSON is read as YAML).
        #[source]
        source: serde_norway::Error,
    },
    /// The document breaks a rule of the CDI spec; the text says which.
    #[error("invalid CDI Spec {path:?}: {reason}")]
    Invalid {
        /// The spec file.
        path: PathBuf,
        /// What is wrong, in the CDI library's words.
        reason: String,
    },
    /// The same device is declared by two specs of equal priority; neither is used.
    #[error("conflicting device {name:?} (specs {first:?}, {second:?})")]
    Conflict {
        /// The fully-qualified device name.
        name: String,
        /// One spec file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSpec {
    cdi_version: String,
    kind: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    devices: Vec<RawDevice>,
    #[serde(default)]
    container_edits: ContainerEdits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDevice {
    name: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    container_edits: ContainerEdits,
}

/// The changes CDI makes to a container (the spec's `containerEdits`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerEdits {
    /// `KEY=value` variables added to the process environment (replacing the same key).
    #[serde(default)]
    pub env: Vec<String>,
    /// Device nodes created in the container, each with a cgroup allow rule.
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    /// OCI hooks, by CDI hook name.
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// Mounts added to the container (replacing one at the same container path).
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Supplementary groups for the container's process (0 is ignored).
    #[serde(default, rename = "additionalGids")]
    pub additional_gids: Vec<u32>,
    /// Intel RDT class (spec 0.7+), handed to the runtime as `linux.intelRdt`; needs the
    /// host's resctrl filesystem.
    #[serde(default)]
    pub intel_rdt: Option<IntelRdt>,
    /// Host network interfaces moved into the container's network namespace (spec 1.1+).
    #[serde(default)]
    pub net_devices: Vec<NetDevice>,
}

/// A CDI `netDevices` entry: the host interface moved into the container, and its name there.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetDevice {
    /// The interface's name on the host.
    pub host_interface_name: String,
    /// Its name inside the container.
    pub name: String,
}

/// A CDI `intelRdt` edit, the fields of OCI's `linux.intelRdt`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntelRdt {
    /// The resctrl group (class of service) the container joins.
    #[serde(default, rename = "closID", skip_serializing_if = "Option::is_none")]
    pub clos_id: Option<String>,
    /// L3 cache allocation schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l3_cache_schema: Option<String>,
    /// Memory bandwidth allocation schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_bw_schema: Option<String>,
    /// Whole schemata lines (spec 1.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemata: Vec<String>,
    /// Whether resctrl monitoring is enabled for the group.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_monitoring: bool,
}

/// A name the kernel accepts for a network interface (its `dev_valid_name`).
fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() < 16
        && n != "."
        && n != ".."
        && !n.contains(['/', ':'])
        && !n.contains(char::is_whitespace)
}

/// A device node of a CDI spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceNode {
    /// Path inside the container.
    pub path: String,
    /// Host node to take type and numbers from (default: `path`).
    #[serde(default)]
    pub host_path: Option<String>,
    /// `c`, `b`, `u` or `p`; looked up on the host when absent.
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
    /// Major number; looked up on the host when absent.
    #[serde(default)]
    pub major: Option<i64>,
    /// Minor number.
    #[serde(default)]
    pub minor: Option<i64>,
    /// File mode bits of the node (the host node's when absent).
    #[serde(default)]
    pub file_mode: Option<u32>,
    /// cgroup access (`rwm` when absent).
    #[serde(default)]
    pub permissions: Option<String>,
    /// Owner uid of the node.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Owner gid of the node.
    #[serde(default)]
    pub gid: Option<u32>,
}

/// A mount of a CDI spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    /// Source on the host.
    pub host_path: String,
    /// Destination in the container.
    pub container_path: String,
    /// Mount options (`ro`, `bind`, `nosuid`…).
    #[serde(default)]
    pub options: Vec<String>,
    /// Filesystem type (spec 0.4+).
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
}

/// A hook of a CDI spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    /// `prestart`, `createRuntime`, `createContainer`, `startContainer`, `poststart` or
    /// `poststop`.
    pub hook_name: String,
    /// Executable on the host.
    pub path: String,
    /// argv, `args[0]` included.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment of the hook.
    #[serde(default)]
    pub env: Vec<String>,
    /// Seconds before the hook is killed.
    #[serde(default)]
    pub timeout: Option<i64>,
}

const HOOK_NAMES: &[&str] =
    &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

impl ContainerEdits {
    fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.device_nodes.is_empty()
            && self.hooks.is_empty()
            && self.mounts.is_empty()
            && self.additional_gids.is_empty()
            && self.intel_rdt.is_none()
            && self.net_devices.is_empty()
    }

    fn append(&mut self, o: &ContainerEdits) {
        self.env.extend(o.env.iter().cloned());
        self.device_nodes.extend(o.device_nodes.iter().cloned());
        self.hooks.extend(o.hooks.iter().cloned());
        self.mounts.extend(o.mounts.iter().cloned());
        self.additional_gids.extend(o.additional_gids.iter().copied());
        if o.intel_rdt.is_some() {
            self.intel_rdt = o.intel_rdt.clone();
        }
        self.net_devices.extend(o.net_devices.iter().cloned());
    }

    /// The CDI library's validation rules for edits, with its wording.
    fn validate(&self) -> Result<(), String> {
        let mut hosts = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for n in &self.net_devices {
            if !valid_ifname(&n.host_interface_name) {
                return Err(format!(
                    "invalid container edits: invalid net device host interface name {:?}",
                    n.host_interface_name
                ));
            }
            if !valid_ifname(&n.name) {
                return Err(format!("invalid container edits: invalid net device name {:?}", n.name));
            }
            if !hosts.insert(n.host_interface_name.as_str()) {
                return Err(format!(
                    "invalid container edits: duplicate net device host interface {:?}",
                    n.host_interface_name
                ));
            }
            if !names.insert(n.name.as_str()) {
                return Err(format!("invalid container edits: duplicate net device name {:?}", n.name));
            }
        }
        for e in &self.env {
            if e.find('=').is_none_or(|i| i == 0) {
                return Err(format!("invalid container edits: invalid environment variable {e:?}"));
            }
        }
        for d in &self.device_nodes {
            if d.path.is_empty() {
                return Err("invalid (empty) device path".into());
            }
            if let Some(t) = &d.typ
                && !matches!(t.as_str(), "" | "b" | "c" | "u" | "p")
            {
                return Err(format!("device {:?}: invalid type {t:?}", d.path));
            }
            if let Some(p) = &d.permissions
                && p.chars().any(|c| !matches!(c, 'r' | 'w' | 'm'))
            {
                return Err(format!("device {:?}: invalid permissions {p:?}", d.path));
            }
        }
        for h in &self.hooks {
            if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
                return Err(format!("invalid hook name {:?}", h.hook_name));
            }
            if h.path.is_empty() {
                return Err(format!("invalid hook {:?} with empty path", h.hook_name));
            }
        }
        for m in &self.mounts {
            if m.host_path.is_empty() {
                return Err("invalid mount, empty host path".into());
            }
            if m.container_path.is_empty() {
                return Err("invalid mount, empty container path".into());
            }
        }
        Ok(())
    }

    /// The lowest spec version that has every field these edits use (the CDI library's
    /// rules; the spec-level ones are in [`read_spec`]).
    fn min_version(&self) -> &'static str {
        if !self.net_devices.is_empty() {
            "1.1.0"
        } else if self.intel_rdt.is_some() || !self.additional_gids.is_empty() {
            "0.7.0"
        } else if self.device_nodes.iter().any(|d| d.host_path.as_deref().is_some_and(|h| !h.is_empty())) {
            "0.5.0"
        } else if self.mounts.iter().any(|m| m.typ.as_deref().is_some_and(|t| !t.is_empty())) {
            "0.4.0"
        } else {
            "0.3.0"
        }
    }
}

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// The CDI rule for vendor and class names: a letter first, a letter or digit last, and
/// letters, digits, `_`, `-` and `.` between.
fn check_vendor_or_class(what: &str, name: &str) -> Result<(), String> {
    let err = |m: String| Err(format!("invalid {what}. {m}"));
    let Some(first) = name.chars().next() else { return err("empty name".into()) };
    if !first.is_ascii_alphabetic() {
        return err(format!("{name:?}, should start with letter"));
    }
    let inner: Vec<char> = name.chars().collect();
    if inner.len() > 2 {
        for &c in &inner[1..inner.len() - 1] {
            if !(is_alnum(c) || matches!(c, '_' | '-' | '.')) {
                return err(format!("invalid character '{c}' in name {name:?}"));
            }
        }
    }
    if !inner.last().is_some_and(|c| is_alnum(*c)) {
        return err(format!("{name:?}, should end with a letter or digit"));
    }
    Ok(())
}

/// The CDI rule for device names: letters and digits at both ends, and `_`, `-`, `.`, `:`
/// between.
fn check_device_name(name: &str) -> Result<(), String> {
    let chars: Vec<char> = name.chars().collect();
    let Some(first) = chars.first() else { return Err("invalid (empty) device name".into()) };
    if !is_alnum(*first) {
        return Err(format!("invalid class {name:?}, should start with a letter or digit"));
    }
    if chars.len() == 1 {
        return Ok(());
    }
    for &c in &chars[1..chars.len() - 1] {
        if !(is_alnum(c) || matches!(c, '_' | '-' | '.' | ':')) {
            return Err(format!("invalid character '{c}' in device name {name:?}"));
        }
    }
    if !chars.last().is_some_and(|c| is_alnum(*c)) {
        return Err(format!("invalid name {name:?}, should end with a letter or digit"));
    }
    Ok(())
}

/// Splits a fully-qualified device name `vendor/class=name`; `None` when `device` is not
/// one (a path such as `/dev/x`, or a bare name). This is how the docker CLI tells a CDI
/// `--device` from a device path.
pub fn parse_qualified_name(device: &str) -> Option<(&str, &str, &str)> {
    if device.starts_with('/') {
        return None;
    }
    let (kind, name) = device.split_once('=')?;
    let (vendor, class) = kind.split_once('/')?;
    if check_vendor_or_class("vendor", vendor).is_err()
        || check_vendor_or_class("class", class).is_err()
        || check_device_name(name).is_err()
    {
        return None;
    }
    Some((vendor, class, name))
}

/// One loaded spec file.
#[derive(Debug)]
struct Spec {
    path: PathBuf,
    priority: usize,
    kind: String,
    edits: ContainerEdits,
}

/// A device of the registry: which spec declares it and its own edits.
#[derive(Debug)]
struct Device {
    spec: usize,
    edits: ContainerEdits,
}

/// Every CDI device declared in a set of spec directories.
#[derive(Debug, Default)]
pub struct Registry {
    specs: Vec<Spec>,
    devices: BTreeMap<String, Device>,
    errors: Vec<SpecError>,
}

impl Registry {
    /// Loads every `*.yaml`, `*.yml` and `*.json` file of `dirs` (a missing directory is
    /// empty). A device declared again in a later directory replaces the earlier one; two
    /// declarations in the same directory cancel each other. Files that cannot be used are
    /// kept as [`Registry::errors`] and do not stop the others.
    pub fn load(dirs: &[PathBuf]) -> Registry {
        let mut reg = Registry::default();
        let mut conflicts = BTreeSet::new();
        for (priority, dir) in dirs.iter().enumerate() {
            let Ok(rd) = std::fs::read_dir(dir) else { continue };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) && p.is_file()
                })
                .collect();
            files.sort();
            for path in files {
                let (spec, devices) = match read_spec(&path, priority) {
                    Ok(s) => s,
                    Err(e) => {
                        reg.errors.push(e);
                        continue;
                    }
                };
                let idx = reg.specs.len();
                let kind = spec.kind.clone();
                reg.specs.push(spec);
                for (name, edits) in devices {
                    let qualified = format!("{kind}={name}");
                    if let Some(old) = reg.devices.get(&qualified) {
                        let old_spec = &reg.specs[old.spec];
                        if old_spec.priority == priority {
                            reg.errors.push(SpecError::Conflict {
                                name: qualified.clone(),
                                first: old_spec.path.clone(),
                                second: path.clone(),
                            });
                            conflicts.insert(qualified);
                            continue;
                        }
                    }
                    reg.devices.insert(qualified, Device { spec: idx, edits });
                }
            }
        }
        for c in conflicts {
            reg.devices.remove(&c);
        }
        reg
    }

    /// The spec files that could not be used, and device conflicts.
    pub fn errors(&self) -> &[SpecError] {
        &self.errors
    }

    /// The fully-qualified names of all devices, sorted.
    pub fn device_names(&self) -> Vec<String> {
        self.devices.keys().cloned().collect()
    }

    /// Whether any device of kind `vendor/class` is declared.
    pub fn has_kind(&self, kind: &str) -> bool {
        self.devices.values().any(|d| self.specs[d.spec].kind == kind)
    }

    /// The merged edits for `names` (fully-qualified): each spec's own edits once, then each
    /// device's, in request order. An unknown name fails the whole request with the CDI
    /// library's wording, as Docker reports it.
    pub fn resolve(&self, names: &[String]) -> Result<ContainerEdits, Error> {
        let unresolved: Vec<&str> =
            names.iter().filter(|n| !self.devices.contains_key(n.as_str())).map(String::as_str).collect();
        if !unresolved.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "CDI device injection failed: unresolvable CDI devices {}",
                unresolved.join(", ")
            )));
        }
        let mut out = ContainerEdits::default();
        let mut seen = BTreeSet::new();
        for n in names {
            let d = &self.devices[n.as_str()];
            if seen.insert(d.spec) {
                out.append(&self.specs[d.spec].edits);
            }
            out.append(&d.edits);
        }
        Ok(out)
    }
}

fn read_spec(path: &Path, priority: usize) -> Result<(Spec, Vec<(String, ContainerEdits)>), SpecError> {
    let data = std::fs::read(path).map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
    // JSON is YAML, so one parser reads both forms.
    let raw: RawSpec =
        serde_norway::from_slice(&data).map_err(|source| SpecError::Parse { path: path.to_path_buf(), source })?;
    let invalid = |reason: String| SpecError::Invalid { path: path.to_path_buf(), reason };
    if !VERSIONS.contains(&raw.cdi_version.as_str()) {
        return Err(invalid(format!("invalid version {:?}", raw.cdi_version)));
    }
    let Some((vendor, class)) = raw.kind.split_once('/') else {
        return Err(invalid(format!("invalid vendor/class {:?} in Spec", raw.kind)));
    };
    check_vendor_or_class("vendor", vendor).map_err(invalid)?;
    check_vendor_or_class("class", class).map_err(invalid)?;
    raw.container_edits.validate().map_err(invalid)?;
    let mut need = raw.container_edits.min_version();
    // Annotations and a dotted class came with 0.6.0.
    if !raw.annotations.is_empty() || raw.devices.iter().any(|d| !d.annotations.is_empty()) || class.contains('.') {
        need = need.max("0.6.0");
    }
    let mut devices: Vec<(String, ContainerEdits)> = Vec::new();
    for d in raw.devices {
        check_device_name(&d.name).map_err(|e| invalid(format!("failed add device {:?}: {e}", d.name)))?;
        if d.container_edits.is_empty() {
            return Err(invalid(format!("failed add device {:?}: invalid device, empty device edits", d.name)));
        }
        d.container_edits
            .validate()
            .map_err(|e| invalid(format!("failed add device {:?}: invalid device {:?}: {e}", d.name, d.name)))?;
        if devices.iter().any(|(n, _)| *n == d.name) {
            return Err(invalid(format!("invalid spec, multiple device {:?}", d.name)));
        }
        need = need.max(d.container_edits.min_version());
        // Names starting with a digit ("0", as nvidia-ctk writes) came with 0.5.0.
        if d.name.starts_with(|c: char| c.is_ascii_digit()) {
            need = need.max("0.5.0");
        }
        devices.push((d.name, d.container_edits));
    }
    if devices.is_empty() {
        return Err(invalid("invalid spec, no devices".into()));
    }
    // Versions compare as strings here: all are x.y.0 with single digits.
    if need > raw.cdi_version.as_str() {
        return Err(invalid(format!("the spec version must be at least v{need}")));
    }
    let spec = Spec { path: path.to_path_buf(), priority, kind: raw.kind, edits: raw.container_edits };
    Ok((spec, devices))
}

/// What a host device node is: its OCI type, numbers and permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostNode {
    /// `c`, `b` or `p`.
    pub typ: char,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits.
    pub mode: u32,
}

/// Looks a device node up on the host (without following a final symlink, as CDI does).
pub fn host_node(path: &Path) -> std::io::Result<HostNode> {
    let md = std::fs::symlink_metadata(path)?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        return Err(std::io::Error::other("not a device node"));
    };
    let rdev = md.rdev();
    Ok(HostNode {
        typ,
        major: i64::from(rustix::fs::major(rdev)),
        minor: i64::from(rustix::fs::minor(rdev)),
        mode: md.mode() & 0o7777,
    })
}

/// A CDI device node with its type and numbers filled in from the host, as the CDI
/// library's `fillMissingInfo` does.
fn complete_node(d: &DeviceNode) -> Result<DeviceNode, Error> {
    let mut d = d.clone();
    let typ = d.typ.clone().unwrap_or_default();
    let minimal = !typ.is_empty() && (d.major.unwrap_or(0) != 0 || typ == "p");
    let host = d.host_path.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| d.path.clone());
    let info = match host_node(Path::new(&host)) {
        Ok(i) => i,
        Err(e) if !minimal => {
            return Err(Error::InvalidArgument(format!(
                "CDI device injection failed: failed to inject devices: failed to stat CDI host device {host:?}: {e}"
            )));
        }
        Err(_) => return Ok(d),
    };
    if d.file_mode.is_none() {
        d.file_mode = Some(info.mode);
    }
    if minimal {
        return Ok(d);
    }
    let host_typ = info.typ.to_string();
    // CDI's "u" is an unbuffered character device: the host reports it as "c".
    if !typ.is_empty() && typ != host_typ && !(typ == "u" && host_typ == "c") {
        return Err(Error::InvalidArgument(format!(
            "CDI device injection failed: failed to inject devices: CDI device ({:?}, {host:?}), host type mismatch ({typ}, {host_typ})",
            d.path
        )));
    }
    if typ.is_empty() {
        d.typ = Some(host_typ);
    }
    if d.major.unwrap_or(0) == 0 && info.typ != 'p' {
        d.major = Some(info.major);
        d.minor = Some(info.minor);
    }
    Ok(d)
}

impl ContainerEdits {
    /// Checks that these edits can be applied here: host nodes exist and match, and no
    /// edit asks for what berth's runtime cannot do. Done at create so that a request that
    /// cannot work leaves no container behind.
    pub fn check(&self) -> Result<(), Error> {
        if self.intel_rdt.is_some() && !Path::new("/sys/fs/resctrl/schemata").exists() {
            return Err(Error::InvalidArgument(
                "CDI device injection failed: intelRdt edits need the resctrl filesystem, which is not mounted at /sys/fs/resctrl on this host".into(),
            ));
        }
        for n in &self.net_devices {
            if !Path::new("/sys/class/net").join(&n.host_interface_name).exists() {
                return Err(Error::InvalidArgument(format!(
                    "CDI device injection failed: network device {:?} not found on the host",
                    n.host_interface_name
                )));
            }
        }
        for d in &self.device_nodes {
            complete_node(d)?;
        }
        Ok(())
    }

    /// Applies the edits to an OCI spec document, as the CDI library's `Apply` does: env
    /// replaces or adds, device nodes (completed from the host) replace a node at the same
    /// path and get an allow rule, mounts replace one at the same destination and the mount
    /// list is ordered by depth, hooks are added, and non-zero extra groups are added.
    pub fn apply(&self, spec: &mut Value) -> Result<(), Error> {
        self.check()?;
        let env = spec["process"]["env"].as_array().cloned().unwrap_or_default();
        let mut env: Vec<String> = env.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        for e in &self.env {
            let key = e.split('=').next().unwrap_or_default();
            match env.iter_mut().find(|x| x.split('=').next() == Some(key)) {
                Some(x) => *x = e.clone(),
                None => env.push(e.clone()),
            }
        }
        spec["process"]["env"] = json!(env);

        let uid = spec["process"]["user"]["uid"].as_u64().unwrap_or(0);
        let gid = spec["process"]["user"]["gid"].as_u64().unwrap_or(0);
        for d in &self.device_nodes {
            let d = complete_node(d)?;
            let typ = d.typ.clone().unwrap_or_default();
            let mut dev =
                json!({"path": d.path, "type": typ, "major": d.major.unwrap_or(0), "minor": d.minor.unwrap_or(0)});
            if let Some(m) = d.file_mode {
                dev["fileMode"] = json!(m);
            }
            match d.uid {
                Some(u) => dev["uid"] = json!(u),
                None if uid > 0 => dev["uid"] = json!(uid),
                None => {}
            }
            match d.gid {
                Some(g) => dev["gid"] = json!(g),
                None if gid > 0 => dev["gid"] = json!(gid),
                None => {}
            }
            let devices = list(&mut spec["linux"], "devices");
            devices.retain(|x| x["path"] != json!(d.path));
            devices.push(dev);
            if typ == "b" || typ == "c" || typ == "u" {
                let access = d.permissions.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "rwm".into());
                let rule = json!({"allow": true, "type": if typ == "u" { "c" } else { typ.as_str() },
                                  "major": d.major.unwrap_or(0), "minor": d.minor.unwrap_or(0), "access": access});
                list(&mut spec["linux"]["resources"], "devices").push(rule);
            }
        }

        if !self.mounts.is_empty() {
            let mounts = list(spec, "mounts");
            for m in &self.mounts {
                mounts.retain(|x| x["destination"] != json!(m.container_path));
                let mut v = json!({"source": m.host_path, "destination": m.container_path, "options": m.options});
                if let Some(t) = m.typ.as_deref().filter(|t| !t.is_empty()) {
                    v["type"] = json!(t);
                } else if m.options.iter().any(|o| o == "bind" || o == "rbind") {
                    // OCI leaves the type of a bind mount to the options; libcontainer
                    // wants it spelled out.
                    v["type"] = json!("bind");
                }
                mounts.push(v);
            }
            let depth = |v: &Value| {
                let d = v["destination"].as_str().unwrap_or("");
                Path::new(d).components().filter(|c| matches!(c, std::path::Component::Normal(_))).count()
            };
            mounts.sort_by_key(depth);
        }

        for h in &self.hooks {
            let mut v = json!({"path": h.path});
            if !h.args.is_empty() {
                v["args"] = json!(h.args);
            }
            if !h.env.is_empty() {
                v["env"] = json!(h.env);
            }
            if let Some(t) = h.timeout {
                v["timeout"] = json!(t);
            }
            if !spec["hooks"].is_object() {
                spec["hooks"] = json!({});
            }
            list(&mut spec["hooks"], &h.hook_name).push(v);
        }

        if !self.net_devices.is_empty() {
            let own_netns = spec["linux"]["namespaces"]
                .as_array()
                .is_some_and(|a| a.iter().any(|ns| ns["type"] == json!("network")));
            if !own_netns {
                return Err(Error::InvalidArgument(
                    "CDI device injection failed: netDevices need the container's own network namespace (not --network host)"
                        .into(),
                ));
            }
            if !spec["linux"]["netDevices"].is_object() {
                spec["linux"]["netDevices"] = json!({});
            }
            for n in &self.net_devices {
                spec["linux"]["netDevices"][&n.host_interface_name] = json!({"name": n.name});
            }
        }
        if let Some(rdt) = &self.intel_rdt {
            spec["linux"]["intelRdt"] = json!(rdt);
        }

        let gids: Vec<u32> = self.additional_gids.iter().copied().filter(|g| *g != 0).collect();
        if !gids.is_empty() {
            let have = list(&mut spec["process"]["user"], "additionalGids");
            for g in gids {
                if !have.contains(&json!(g)) {
                    have.push(json!(g));
                }
            }
        }
        Ok(())
    }
}

/// The array at `v[key]`, created when missing.
fn list<'a>(v: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    if !v.is_object() {
        *v = json!({});
    }
    if !v[key].is_array() {
        v[key] = json!([]);
    }
    match v[key].as_array_mut() {
        Some(a) => a,
        None => unreachable!("just made an array"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-cdi-{}", berth_base::new_id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const NVIDIA: &str = r#"---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
- name: GPU-7f3c
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
      hostPath: /dev/null
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-cdi-hook
    args: [nvidia-cdi-hook, update-ldcache]
  mounts:
  - hostPath: /etc/hostname
    containerPath: /usr/lib/libcuda.so.1
    options: [ro, nosuid, nodev, bind]
"#;

    #[test]
    fn loads_yaml_and_json_and_resolves() {
        let d = dir();
        std::fs::write(d.join("nvidia.yaml"), NVIDIA).unwrap();
        std::fs::write(
            d.join("vendor.json"),
            r#"{"cdiVersion":"0.7.0","kind":"vendor.com/device","devices":[{"name":"dev0","containerEdits":
               {"env":["VENDOR=1"],"deviceNodes":[{"path":"/dev/vendor0","hostPath":"/dev/null","permissions":"r"}],
                "additionalGids":[0,44]}}]}"#,
        )
        .unwrap();
        std::fs::write(d.join("ignored.txt"), "not a spec").unwrap();
        let reg = Registry::load(std::slice::from_ref(&d));
        assert!(reg.errors().is_empty(), "{:?}", reg.errors());
        assert_eq!(
            reg.device_names(),
            ["nvidia.com/gpu=0", "nvidia.com/gpu=GPU-7f3c", "nvidia.com/gpu=all", "vendor.com/device=dev0"]
        );
        assert!(reg.has_kind("nvidia.com/gpu") && !reg.has_kind("amd.com/gpu"));

        let e = reg.resolve(&["nvidia.com/gpu=0".into(), "vendor.com/device=dev0".into()]).unwrap();
        assert_eq!(e.env, ["NVIDIA_VISIBLE_DEVICES=void", "VENDOR=1"]);
        assert_eq!(e.hooks.len(), 1, "the spec's edits come once");
        let mut spec = json!({"process": {"env": ["PATH=/bin", "VENDOR=0"], "user": {"uid": 0, "gid": 0}},
                              "mounts": [{"destination": "/proc"}, {"destination": "/dev"}, {"destination": "/dev/shm"}],
                              "linux": {"resources": {"devices": [{"allow": false, "access": "rwm"}]}}});
        e.apply(&mut spec).unwrap();
        assert_eq!(spec["process"]["env"], json!(["PATH=/bin", "VENDOR=1", "NVIDIA_VISIBLE_DEVICES=void"]));
        let devs = spec["linux"]["devices"].as_array().unwrap();
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0]["path"], "/dev/nvidia0");
        assert_eq!(
            (devs[1]["type"].as_str(), devs[1]["major"].as_i64(), devs[1]["minor"].as_i64()),
            (Some("c"), Some(1), Some(3))
        );
        let rules = spec["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(rules.last().unwrap(), &json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"}));
        assert_eq!(spec["hooks"]["createContainer"][0]["args"], json!(["nvidia-cdi-hook", "update-ldcache"]));
        assert_eq!(spec["process"]["user"]["additionalGids"], json!([44]));
        let dests: Vec<&str> =
            spec["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(dests, ["/proc", "/dev", "/dev/shm", "/usr/lib/libcuda.so.1"]);
        assert_eq!(spec["mounts"][3]["type"], "bind");

        let err = reg.resolve(&["vendor.com/device=nope".into(), "x.com/y=z".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CDI device injection failed: unresolvable CDI devices vendor.com/device=nope, x.com/y=z"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn later_dirs_win_and_equal_priority_conflicts_cancel() {
        let (a, b) = (dir(), dir());
        let spec = |env: &str| {
            format!("cdiVersion: 0.3.0\nkind: v.com/c\ndevices:\n- name: d\n  containerEdits:\n    env: [{env}]\n")
        };
        std::fs::write(a.join("one.yaml"), spec("X=a")).unwrap();
        std::fs::write(b.join("one.yml"), spec("X=b")).unwrap();
        let reg = Registry::load(&[a.clone(), b.clone(), PathBuf::from("/nonexistent/cdi")]);
        assert_eq!(reg.resolve(&["v.com/c=d".into()]).unwrap().env, ["X=b"]);
        std::fs::write(b.join("two.yaml"), spec("X=c")).unwrap();
        let reg = Registry::load(&[a.clone(), b.clone()]);
        assert!(reg.resolve(&["v.com/c=d".into()]).is_err());
        assert!(matches!(reg.errors(), [SpecError::Conflict { .. }]));
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn bad_specs_are_reported_not_loaded() {
        let d = dir();
        let cases = [
            (
                "version.yaml",
                "cdiVersion: 0.2.9\nkind: v.com/c\ndevices: [{name: d, containerEdits: {env: [A=1]}}]\n",
                "invalid version",
            ),
            (
                "kind.yaml",
                "cdiVersion: 0.3.0\nkind: vc\ndevices: [{name: d, containerEdits: {env: [A=1]}}]\n",
                "invalid vendor/class",
            ),
            (
                "vendor.yaml",
                "cdiVersion: 0.3.0\nkind: 1v.com/c\ndevices: [{name: d, containerEdits: {env: [A=1]}}]\n",
                "should start with letter",
            ),
            (
                "name.yaml",
                "cdiVersion: 0.3.0\nkind: v.com/c\ndevices: [{name: 'd!x', containerEdits: {env: [A=1]}}]\n",
                "invalid character '!'",
            ),
            (
                "empty.yaml",
                "cdiVersion: 0.3.0\nkind: v.com/c\ndevices: [{name: d, containerEdits: {}}]\n",
                "empty device edits",
            ),
            ("none.yaml", "cdiVersion: 0.3.0\nkind: v.com/c\ndevices: []\n", "no devices"),
            (
                "env.yaml",
                "cdiVersion: 0.3.0\nkind: v.com/c\ndevices: [{name: d, containerEdits: {env: [NOEQ]}}]\n",
                "invalid environment variable",
            ),
            (
                "hook.yaml",
                "cdiVersion: 0.3.0\nkind: v.com/c\ndevices: [{name: d, containerEdits: {hooks: [{hookName: later, path: /x}]}}]\n",
                "invalid hook name",
            ),
            (
                "minver.yaml",
                "cdiVersion: 0.3.0\nkind: v.com/c\ndevices: [{name: d, containerEdits: {deviceNodes: [{path: /dev/x, hostPath: /dev/null}]}}]\n",
                "at least v0.5.0",
            ),
            (
                "unknown.yaml",
                "cdiVersion: 0.3.0\nkind: v.com/c\nbogus: 1\ndevices: [{name: d, containerEdits: {env: [A=1]}}]\n",
                "failed to parse",
            ),
        ];
        for (f, body, _) in &cases {
            std::fs::write(d.join(f), body).unwrap();
        }
        let reg = Registry::load(std::slice::from_ref(&d));
        assert!(reg.device_names().is_empty());
        let errs: Vec<String> = reg.errors().iter().map(|e| format!("{e}")).collect();
        for (f, _, want) in &cases {
            assert!(errs.iter().any(|e| e.contains(f) && e.contains(want)), "{f}: {want} not in {errs:#?}");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn missing_host_nodes_fail_unless_fully_described() {
        let missing = ContainerEdits {
            device_nodes: vec![DeviceNode { path: "/dev/nosuch-berth".into(), ..Default::default() }],
            ..Default::default()
        };
        assert!(
            missing.check().unwrap_err().to_string().contains("failed to stat CDI host device \"/dev/nosuch-berth\"")
        );
        let described = ContainerEdits {
            device_nodes: vec![DeviceNode {
                path: "/dev/nosuch-berth".into(),
                typ: Some("c".into()),
                major: Some(195),
                minor: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut spec = json!({"process": {"env": [], "user": {"uid": 1000, "gid": 1000}}, "linux": {}});
        described.apply(&mut spec).unwrap();
        assert_eq!(
            spec["linux"]["devices"][0],
            json!({"path": "/dev/nosuch-berth", "type": "c", "major": 195, "minor": 0, "uid": 1000, "gid": 1000})
        );
    }

    #[test]
    fn net_devices_validate_and_apply() {
        let edits = |v: Value| serde_json::from_value::<ContainerEdits>(v).unwrap();
        let e = edits(json!({"netDevices": [{"hostInterfaceName": "lo", "name": "ctr0"}]}));
        assert!(e.validate().is_ok());
        let mut spec = json!({"process": {}, "linux": {"namespaces": [{"type": "network", "path": "/run/x"}]}});
        e.apply(&mut spec).unwrap();
        assert_eq!(spec["linux"]["netDevices"], json!({"lo": {"name": "ctr0"}}));
        let mut host = json!({"process": {}, "linux": {"namespaces": [{"type": "mount"}]}});
        assert!(e.apply(&mut host).unwrap_err().to_string().contains("own network namespace"));
        let bad = |v: Value| edits(json!({ "netDevices": v })).validate().unwrap_err();
        assert!(bad(json!([{"hostInterfaceName": "a/b", "name": "x"}])).contains("host interface name"));
        assert!(bad(json!([{"hostInterfaceName": "a", "name": "0123456789abcdef"}])).contains("net device name"));
        assert!(
            bad(json!([{"hostInterfaceName": "a", "name": "x"}, {"hostInterfaceName": "a", "name": "y"}]))
                .contains("duplicate net device host interface")
        );
        assert!(
            bad(json!([{"hostInterfaceName": "a", "name": "x"}, {"hostInterfaceName": "b", "name": "x"}]))
                .contains("duplicate net device name")
        );
        let missing = edits(json!({"netDevices": [{"hostInterfaceName": "nosuchif0", "name": "x"}]}));
        assert!(missing.check().unwrap_err().to_string().contains("\"nosuchif0\" not found on the host"));
        let rdt = edits(json!({"intelRdt": {"closID": "c1", "l3CacheSchema": "L3:0=f"}}));
        let mut spec = json!({"process": {}, "linux": {}});
        if std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
            rdt.apply(&mut spec).unwrap();
            assert_eq!(spec["linux"]["intelRdt"], json!({"closID": "c1", "l3CacheSchema": "L3:0=f"}));
        } else {
            assert!(rdt.apply(&mut spec).unwrap_err().to_string().contains("resctrl"));
        }
    }

    #[test]
    fn qualified_names() {
        assert_eq!(parse_qualified_name("nvidia.com/gpu=0"), Some(("nvidia.com", "gpu", "0")));
        assert_eq!(parse_qualified_name("vendor.com/device=GPU-1:2"), Some(("vendor.com", "device", "GPU-1:2")));
        for bad in ["/dev/null", "/dev/a=b/c", "gpu=0", "nvidia.com/gpu", "nvidia.com/gpu=", "-x/y=z", "x/y=z-"] {
            assert_eq!(parse_qualified_name(bad), None, "{bad}");
        }
    }
}
