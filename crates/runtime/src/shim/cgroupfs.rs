//! The container's `/sys/fs/cgroup` on a cgroup v1 (or hybrid) host, mounted by the shim.
//!
//! Given a `cgroup` mount, libcontainer 0.7 mounts a tmpfs and then each of the host's v1
//! hierarchies into it, one by one, each through its hardened mount path (a procfs handle
//! checked around every step, `/proc/self/mountinfo` and `/proc/self/cgroup` read again per
//! hierarchy): about 770 system calls and 1.5–2 ms of every container's create on a host
//! with ten hierarchies. Nothing in that needs the hardening: the tmpfs is fresh and the
//! container's process has not run yet (it waits for Start), so no path under it can have
//! been planted.
//!
//! So when the host is not cgroup2-only and the container has a cgroup namespace of its
//! own, libcontainer is not given the mount ([`runtime_spec`]), and after the create the
//! shim's helper, inside the init's mount and cgroup namespaces, binds the shared skeleton
//! there (a directory per hierarchy and a symlink per controller of a co-mounted one,
//! `cpu` → `cpu,cpuacct`: [`super::shared`]) and makes one namespaced `cgroup` mount per
//! hierarchy (`nosuid,nodev,noexec`, as libcontainer does); the read-only pass that follows
//! covers them (`finish_container_mounts`). A writable (`--privileged`) mount gets a tmpfs
//! of its own from libcontainer instead, and the helper makes the directories and links
//! in it.
//! The container sees the same mounts, in the host's order, as libcontainer would make.
//! A cgroup2-only host keeps libcontainer's single `cgroup2` mount.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, MountBuilder, Spec};
use rustix::io::Errno;
use rustix::mount::MountFlags;

/// The v1 hierarchies to mount at a container's cgroup mount.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct V1Tree {
    /// The spec mount's destination (`/sys/fs/cgroup`).
    pub(super) dest: PathBuf,
    /// In the host's mount order.
    pub(super) hierarchies: Vec<Hierarchy>,
    /// The mount is read-only (not `--privileged`): the hierarchies go into the shared
    /// skeleton ([`super::shared`]) rather than into a tmpfs of the container's own.
    pub(super) skeleton: bool,
}

/// One v1 hierarchy as the host mounts it under `/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hierarchy {
    /// The directory's name on the host (`memory`, `cpu,cpuacct`, `systemd`).
    pub(super) name: String,
    /// The mount data naming it: its controllers, or `name=…` for a named hierarchy.
    pub(super) data: String,
}

/// The flags of each hierarchy's mount (libcontainer's).
const FLAGS: MountFlags = MountFlags::NOSUID.union(MountFlags::NODEV).union(MountFlags::NOEXEC);

/// What the shim mounts itself for `spec`, or None when libcontainer should: the host is
/// cgroup2-only, the spec has no `cgroup` mount, or the container shares a cgroup namespace
/// (libcontainer then binds the host's cgroup directories instead).
pub(super) fn plan(spec: &Spec) -> Option<V1Tree> {
    let mount = spec.mounts().as_ref()?.iter().find(|m| m.typ().as_deref() == Some("cgroup"))?;
    let dest = mount.destination().clone();
    let skeleton = mount.options().iter().flatten().any(|o| o == "ro");
    let own_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup && n.path().is_none()));
    if !own_ns || unified_only() {
        return None;
    }
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let hierarchies = hierarchies(&info, Path::new("/sys/fs/cgroup"));
    (!hierarchies.is_empty()).then_some(V1Tree { dest, hierarchies, skeleton })
}

/// Whether `/sys/fs/cgroup` is itself the cgroup2 filesystem (libcontainer's test).
fn unified_only() -> bool {
    rustix::fs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.f_type == libc::CGROUP2_SUPER_MAGIC)
}

/// The v1 hierarchies mounted directly under `root`, from a mountinfo text, in its order.
fn hierarchies(mountinfo: &str, root: &Path) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let point = left.split(' ').nth(4).unwrap_or("");
        let mut r = right.split(' ');
        if r.next() != Some("cgroup") {
            continue;
        }
        let super_opts = r.nth(1).unwrap_or("");
        let point = Path::new(point);
        let Some(name) = point.file_name().and_then(|n| n.to_str()) else { continue };
        if point.parent() != Some(root) || name.contains('\\') {
            continue;
        }
        let data: Vec<&str> = super_opts
            .split(',')
            .filter(|o| {
                !matches!(*o, "rw" | "ro" | "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode" | "favordynmods")
                    && !o.starts_with("release_agent=")
            })
            .collect();
        if data.is_empty() {
            continue;
        }
        // A later mount at the same place hides the earlier one.
        out.retain(|h| h.name != name);
        out.push(Hierarchy { name: name.to_owned(), data: data.join(",") });
    }
    out
}

/// The spec libcontainer is given: `spec` without its cgroup mount (the shim binds the
/// skeleton there), or for a writable one with the tmpfs libcontainer would mount there
/// first.
pub(super) fn runtime_spec(spec: &Spec, tree: &V1Tree) -> Spec {
    let mut seen = spec.clone();
    if tree.skeleton {
        if let Some(mounts) = seen.mounts_mut().as_mut() {
            mounts.retain(|m| m.typ().as_deref() != Some("cgroup"));
        }
        return seen;
    }
    if let Some(mounts) = seen.mounts_mut().as_mut()
        && let Some(m) = mounts.iter_mut().find(|m| m.typ().as_deref() == Some("cgroup"))
        && let Ok(tmpfs) = MountBuilder::default()
            .destination(tree.dest.clone())
            .typ("tmpfs")
            .source("tmpfs")
            .options(["noexec", "nosuid", "nodev", "mode=755"].map(String::from).to_vec())
            .build()
    {
        *m = tmpfs;
    }
    seen
}

/// One hierarchy as the helper mounts it: its mount point, its mount data, the symlinks
/// (link path) that point at its directory name, and that name.
type HierarchyMount = (CString, CString, Vec<CString>, CString);

/// [`V1Tree`] as the forked helper uses it: every path and string made before the fork.
pub(super) struct Prepared {
    /// Per hierarchy, in the host's order.
    mounts: Vec<HierarchyMount>,
    /// The bind of the shared skeleton, which holds the directories and links already.
    skeleton: Option<super::shared::Bind>,
}

impl Prepared {
    /// The mounts of `tree`, the skeleton taken from (or made on) `state_root`.
    pub(super) fn new(tree: &V1Tree, state_root: &Path) -> Result<Prepared, crate::Error> {
        let skeleton = match tree.skeleton {
            true => {
                let names: Vec<&str> = tree.hierarchies.iter().map(|h| h.name.as_str()).collect();
                let dir = super::shared::cgroup_skeleton(state_root, &names)?;
                Some(super::shared::Bind::new(&dir, &tree.dest)?)
            }
            false => None,
        };
        let mounts = Self::mounts(tree)
            .ok_or_else(|| crate::Error::Shim("a cgroup hierarchy's name holds a NUL byte".into()))?;
        Ok(Prepared { mounts, skeleton })
    }

    fn mounts(tree: &V1Tree) -> Option<Vec<HierarchyMount>> {
        let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).ok();
        let mut mounts = Vec::new();
        for h in &tree.hierarchies {
            let point = c(&tree.dest.join(&h.name))?;
            let data = CString::new(h.data.as_str()).ok()?;
            let links = match h.name.contains(',') {
                true => h.name.split(',').filter_map(|part| c(&tree.dest.join(part))).collect(),
                false => Vec::new(),
            };
            mounts.push((point, data, links, CString::new(h.name.as_str()).ok()?));
        }
        Some(mounts)
    }

    /// The mount points, for the read-only pass: the skeleton's first.
    pub(super) fn points(&self) -> impl Iterator<Item = &CString> {
        self.skeleton.iter().map(|s| &s.target).chain(self.mounts.iter().map(|m| &m.0))
    }

    /// In the helper, already in the container's mount and cgroup namespaces: the
    /// skeleton's bind and the mounts, or in a tmpfs the directories, the mounts and the
    /// co-mount symlinks.
    pub(super) fn mount(&self) -> Result<(), Errno> {
        if let Some(s) = &self.skeleton {
            s.attach()?;
            for (point, data, _, _) in &self.mounts {
                rustix::mount::mount(c"cgroup", point.as_c_str(), c"cgroup", FLAGS, data.as_c_str())?;
            }
            return Ok(());
        }
        for (point, data, links, name) in &self.mounts {
            match rustix::fs::mkdir(point.as_c_str(), rustix::fs::Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
            rustix::mount::mount(c"cgroup", point.as_c_str(), c"cgroup", FLAGS, data.as_c_str())?;
            for link in links {
                match rustix::fs::symlink(name.as_c_str(), link.as_c_str()) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// The flags of the read-only remount of a hierarchy's mount.
pub(super) const READONLY: MountFlags = MountFlags::BIND.union(MountFlags::RDONLY).union(FLAGS);

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
31 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
32 26 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
33 26 0:31 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
40 30 0:31 / /mnt/elsewhere rw,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
41 32 0:30 /x /sys/fs/cgroup/memory/x rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn the_hosts_v1_hierarchies_in_order() {
        let h = hierarchies(HYBRID, Path::new("/sys/fs/cgroup"));
        let got: Vec<(&str, &str)> = h.iter().map(|h| (h.name.as_str(), h.data.as_str())).collect();
        assert_eq!(
            got,
            [
                ("systemd", "name=systemd"),
                ("cpu,cpuacct", "cpu,cpuacct"),
                ("memory", "memory"),
                ("net_cls,net_prio", "net_cls,net_prio")
            ]
        );
    }

    #[test]
    fn the_runtime_sees_a_tmpfs_in_place_of_the_cgroup_mount() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["ro", "nosuid", "noexec", "nodev"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue"}
            ],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "cgroup"}]}
        }))
        .unwrap();
        let tree = V1Tree {
            dest: "/sys/fs/cgroup".into(),
            hierarchies: hierarchies(HYBRID, Path::new("/sys/fs/cgroup")),
            skeleton: false,
        };
        let seen = runtime_spec(&spec, &tree);
        let m = seen.mounts().as_ref().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].typ().as_deref(), Some("tmpfs"));
        assert_eq!(m[1].destination(), Path::new("/sys/fs/cgroup"));
        assert_eq!(m[2].typ().as_deref(), Some("mqueue"));
        // Read-only, the shim binds the shared skeleton there: libcontainer mounts nothing.
        let seen = runtime_spec(&spec, &V1Tree { skeleton: true, ..tree.clone() });
        let m = seen.mounts().as_ref().unwrap();
        assert_eq!(m.iter().map(|m| m.destination().to_str().unwrap()).collect::<Vec<_>>(), ["/proc", "/dev/mqueue"]);
        // The co-mounted hierarchies get a link per controller.
        let p = Prepared::new(&tree, Path::new("/nonexistent")).unwrap();
        let links: Vec<String> =
            p.mounts.iter().flat_map(|m| m.2.iter().map(|l| l.to_string_lossy().into_owned())).collect();
        assert_eq!(
            links,
            ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/net_cls", "/sys/fs/cgroup/net_prio"]
        );
    }
}
