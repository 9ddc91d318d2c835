//! The data root's hygiene: which mode each of its files and directories may have (one
//! policy), the tightening of an existing data root when the daemon starts, and `berth
//! system check`, which reports modes more open than the policy, blobs whose digest does
//! not verify, and snapshot or container directories that no record owns.
//!
//! Docker's model: the directories on the way to container and image content (data root,
//! `containers/`, `containers/<id>`) are 0710 root:root and the stores (`snapshots/`,
//! `content/`, `builder/`) 0700, so no other host user can reach a setuid file or a device
//! node a container or an image carries, whatever the content's own modes. Files holding
//! configuration, state and logs are 0600; the `/etc` files bind-mounted into containers
//! stay 0644 (any container user reads them) inside their 0710 directory. The roots of
//! filesystems (`snapshots/<layer>`, a container's `upper`, `work`, `rootfs`) keep their
//! image's modes: overlay shows them to the container as its `/`.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_base::Digest;
use berth_base::fsutil::{self, GUARD_DIR, PRIVATE_DIR, PRIVATE_FILE, SHARED_FILE};

use super::{Engine, blocking};
use crate::error::{Error, Result};

/// What is wrong with a path in the data root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// Permission bits beyond what the policy allows, or another owner than the daemon's.
    Permissions,
    /// A blob whose content does not hash to its name.
    Digest,
    /// A snapshot or container directory that no record owns.
    Unowned,
}

impl FindingKind {
    /// The kind's name on the wire and in the CLI's output.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Permissions => "permissions",
            FindingKind::Digest => "digest",
            FindingKind::Unowned => "unowned",
        }
    }
}

/// One problem `system check` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of problem.
    pub kind: FindingKind,
    /// The path, absolute.
    pub path: PathBuf,
    /// What was found and what was expected.
    pub detail: String,
}

/// The records that own directories: container ids, and snapshot diff ids as hex.
#[derive(Debug, Default)]
pub struct Owners {
    /// Ids of the containers the engine knows.
    pub containers: HashSet<String>,
    /// Hex of the layers (diff ids) that images, layers being added, or build cache
    /// entries hold.
    pub snapshots: HashSet<String>,
}

/// Names the container's `/etc` files have in its directory (bind-mounted, read by any
/// container user).
const SHARED_IN_CONTAINER: &[&str] = &["hosts", "hostname", "resolv.conf"];
/// Filesystem roots inside a container directory: their modes are the image's.
const ROOTS_IN_CONTAINER: &[&str] = &["upper", "work", "rootfs"];
/// Top-level files: the lock and SQLite's database with its journals.
const TOP_FILES: &[&str] = &["lock", "state.db", "state.db-wal", "state.db-shm", "state.db-journal"];
/// Top-level stores only the daemon enters.
const PRIVATE_STORES: &[&str] = &["content", "snapshots", "builder", "builder-cache-mounts"];

/// The most a path may allow, for a path at `rel` (relative to the data root, split in
/// components); `None` for what the policy leaves to the content (filesystem roots and
/// everything below them, build scratch and cache mounts).
fn allowed(rel: &[&str], is_dir: bool) -> Option<u32> {
    let other = if is_dir { PRIVATE_DIR } else { PRIVATE_FILE };
    match rel {
        [] => Some(GUARD_DIR),
        ["containers"] => Some(GUARD_DIR),
        ["containers", _] => Some(if is_dir { GUARD_DIR } else { PRIVATE_FILE }),
        ["containers", _, name] if is_dir && ROOTS_IN_CONTAINER.contains(name) => None,
        ["containers", _, name] if !is_dir && SHARED_IN_CONTAINER.contains(name) => Some(SHARED_FILE),
        ["containers", _, _] => Some(if is_dir { GUARD_DIR } else { PRIVATE_FILE }),
        ["containers", ..] => None,
        // Blobs written by older versions are 0644, which the 0700 store keeps private.
        ["content", ..] => Some(if is_dir { PRIVATE_DIR } else { SHARED_FILE }),
        [store] if PRIVATE_STORES.contains(store) => Some(PRIVATE_DIR),
        [_, ..] if PRIVATE_STORES.contains(&rel[0]) => None,
        // moby's volume modes: `volumes/` and each volume's directory 0701, the data
        // directories keep what the volume's content gives them.
        ["volumes"] | ["volumes", _] if is_dir => Some(super::volumes::VOLUME_DIR_MODE),
        ["volumes", ..] => None,
        [name] if !is_dir && TOP_FILES.contains(name) => Some(PRIVATE_FILE),
        [_] => Some(other),
        _ => None,
    }
}

/// Creates the daemon's directories with their modes and tightens what an older version
/// left open. Only the top levels are walked (the data root, its files, `containers/*`
/// and their files), never the content of layers, so start-up stays fast however many
/// images there are. The image store sets `content/` and `snapshots/` itself.
pub(crate) fn prepare_data_root(root: &Path) -> io::Result<()> {
    fsutil::create_dir_mode(root, GUARD_DIR)?;
    fsutil::create_dir_mode(&root.join("containers"), GUARD_DIR)?;
    for store in ["builder", "builder-cache-mounts"] {
        fsutil::create_dir_mode(&root.join(store), PRIVATE_DIR)?;
    }
    let mut errors = Vec::new();
    let mut tighten = |rel: &[&str], path: &Path, md: &Metadata| {
        if md.file_type().is_symlink() {
            return;
        }
        if let Some(max) = allowed(rel, md.is_dir()) {
            match fsutil::tighten(path, max) {
                Ok(true) => tracing::info!(path = %path.display(), "tightened permissions"),
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
    };
    for top in read_dir(root)? {
        let name = top.0.clone();
        tighten(&[&name], &top.1, &top.2);
        if name != "containers" {
            continue;
        }
        for c in read_dir(&top.1)? {
            tighten(&["containers", &c.0], &c.1, &c.2);
            if !c.2.is_dir() {
                continue;
            }
            for f in read_dir(&c.1)? {
                tighten(&["containers", &c.0, &f.0], &f.1, &f.2);
            }
        }
    }
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The entries of a directory: name, path, metadata (not following symlinks).
fn read_dir(dir: &Path) -> io::Result<Vec<(String, PathBuf, Metadata)>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let md = match fs::symlink_metadata(e.path()) {
            Ok(m) => m,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        out.push((e.file_name().to_string_lossy().into_owned(), e.path(), md));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Walks the data root at `root` and returns every problem, in path order. `uid` is the
/// owner every policed path must have (the daemon's).
pub fn check_tree(root: &Path, owners: &Owners, uid: u32) -> io::Result<Vec<Finding>> {
    let mut out = Vec::new();
    let md = fs::symlink_metadata(root)?;
    let mut ck = Checker { owners, uid, out: &mut out };
    ck.visit(&mut Vec::new(), root, &md)?;
    Ok(out)
}

struct Checker<'a> {
    owners: &'a Owners,
    uid: u32,
    out: &'a mut Vec<Finding>,
}

impl Checker<'_> {
    fn push(&mut self, kind: FindingKind, path: &Path, detail: String) {
        self.out.push(Finding { kind, path: path.to_path_buf(), detail });
    }

    fn visit(&mut self, rel: &mut Vec<String>, path: &Path, md: &Metadata) -> io::Result<()> {
        if md.file_type().is_symlink() {
            return Ok(());
        }
        let parts: Vec<&str> = rel.iter().map(String::as_str).collect();
        if let Some(max) = allowed(&parts, md.is_dir()) {
            let mode = md.mode() & 0o7777;
            if mode & !max != 0 {
                let what = if md.is_dir() { "directory" } else { "file" };
                self.push(FindingKind::Permissions, path, format!("{what} mode {mode:04o}, at most {max:04o} allowed"));
            }
            if md.uid() != self.uid {
                self.push(FindingKind::Permissions, path, format!("owned by uid {}, expected {}", md.uid(), self.uid));
            }
        }
        match parts.as_slice() {
            ["containers", id] if md.is_dir() && *id != super::trash::NAME && !self.owners.containers.contains(*id) => {
                self.push(FindingKind::Unowned, path, "container directory that no container record owns".into());
            }
            ["content", "blobs", "sha256", name] if md.is_file() => self.verify_blob(path, name),
            ["snapshots", name] => {
                // `.tmp-*` are layers being unpacked now (a daemon removes leftovers when
                // it starts); `empty` is the lower dir of images without layers.
                let owned = name.starts_with(".tmp-")
                    || *name == "empty"
                    || (Digest::from_hex(name).is_ok() && self.owners.snapshots.contains(*name));
                if !owned {
                    self.push(FindingKind::Unowned, path, "snapshot that no image or build cache record owns".into());
                }
                return Ok(());
            }
            _ => {}
        }
        if !md.is_dir() || allowed(&parts, true).is_none() {
            return Ok(());
        }
        let entries = match read_dir(path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for (name, p, m) in entries {
            rel.push(name);
            self.visit(rel, &p, &m)?;
            rel.pop();
        }
        Ok(())
    }

    fn verify_blob(&mut self, path: &Path, name: &str) {
        let Ok(expected) = Digest::from_hex(name) else {
            self.push(FindingKind::Digest, path, "blob whose name is not a sha256 digest".into());
            return;
        };
        match berth_image::content::digest_file(path) {
            Ok(actual) if actual == expected => {}
            Ok(actual) => self.push(FindingKind::Digest, path, format!("content has digest {actual}")),
            Err(e) => self.push(FindingKind::Digest, path, format!("cannot be read: {e}")),
        }
    }
}

impl Engine {
    /// `berth system check`: every problem in the data root (see the module doc).
    pub async fn system_check(self: &Arc<Self>) -> Result<Vec<Finding>> {
        let engine = self.clone();
        blocking(move || {
            let mut owners =
                Owners { containers: engine.all().iter().map(|c| c.id.clone()).collect(), snapshots: HashSet::new() };
            for d in engine.images.owned_snapshots()? {
                owners.snapshots.insert(d.strip_prefix("sha256:").unwrap_or(&d).to_owned());
            }
            let cache = berth_build::cache::BuildCache::open(&engine.cfg.data_root)?;
            for (_, _, _, state) in cache.entries() {
                for l in state.iter().flat_map(|s| &s.layers) {
                    owners.snapshots.insert(l.diff_id.hex().to_owned());
                }
            }
            let uid = rustix::process::geteuid().as_raw();
            check_tree(&engine.cfg.data_root, &owners, uid)
                .map_err(|e| Error::io(format!("check {}", engine.cfg.data_root.display()), e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ID: &str = "c0ffee";

    fn planted() -> (tempfile::TempDir, PathBuf, Owners, String) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("data");
        prepare_data_root(&root).unwrap();
        let c = root.join("containers").join(ID);
        fsutil::create_dir_mode(&c, GUARD_DIR).unwrap();
        for d in ["upper/tmp", "work", "rootfs"] {
            fs::create_dir_all(c.join(d)).unwrap();
        }
        fsutil::atomic_write(&c.join("config.json"), b"{}").unwrap();
        fsutil::atomic_write_mode(&c.join("hosts"), b"127.0.0.1 localhost\n", SHARED_FILE).unwrap();
        drop(fsutil::open_append_mode(&c.join(format!("{ID}-json.log")), PRIVATE_FILE).unwrap());
        // Content of a container's root is the container's business.
        fs::write(c.join("upper/tmp/sid"), b"x").unwrap();
        fsutil::set_mode(&c.join("upper/tmp/sid"), 0o4755).unwrap();
        let blobs = root.join("content/blobs/sha256");
        for d in ["content", "content/blobs", "content/blobs/sha256"] {
            fsutil::create_dir_mode(&root.join(d), PRIVATE_DIR).unwrap();
        }
        let good = Digest::of(b"layer");
        fsutil::atomic_write(&blobs.join(good.hex()), b"layer").unwrap();
        let snap = root.join("snapshots").join(good.hex());
        fsutil::create_dir_mode(&root.join("snapshots"), PRIVATE_DIR).unwrap();
        fs::create_dir_all(snap.join("bin")).unwrap();
        fsutil::set_mode(&snap, 0o755).unwrap();
        fsutil::ensure_file_mode(&root.join("state.db"), PRIVATE_FILE).unwrap();
        let owners = Owners {
            containers: [ID.to_owned()].into_iter().collect(),
            snapshots: [good.hex().to_owned()].into_iter().collect(),
        };
        (t, root, owners, good.hex().to_owned())
    }

    fn uid() -> u32 {
        rustix::process::geteuid().as_raw()
    }

    #[test]
    fn a_fresh_data_root_has_no_findings() {
        let (_t, root, owners, _) = planted();
        assert_eq!(check_tree(&root, &owners, uid()).unwrap(), vec![]);
        let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(""), 0o710);
        assert_eq!(mode("containers"), 0o710);
        assert_eq!(mode("builder"), 0o700);
        assert_eq!(mode("builder-cache-mounts"), 0o700);
    }

    #[test]
    fn planted_problems_are_each_reported() {
        let (_t, root, owners, good) = planted();
        let c = root.join("containers").join(ID);
        fsutil::set_mode(&root, 0o755).unwrap();
        fsutil::set_mode(&c, 0o755).unwrap();
        fsutil::set_mode(&c.join("config.json"), 0o644).unwrap();
        fsutil::set_mode(&c.join("hosts"), 0o666).unwrap();
        fsutil::set_mode(&root.join("state.db"), 0o644).unwrap();
        fsutil::set_mode(&root.join("snapshots"), 0o711).unwrap();
        // A blob whose content changed, and one that is not named by a digest.
        let blobs = root.join("content/blobs/sha256");
        fs::write(blobs.join(&good), b"tampered").unwrap();
        fs::write(blobs.join("junk"), b"").unwrap();
        fsutil::set_mode(&blobs.join("junk"), 0o600).unwrap();
        // Directories no record owns.
        let stray_snap = root.join("snapshots").join(Digest::of(b"other").hex());
        fs::create_dir(&stray_snap).unwrap();
        let stray_ctr = root.join("containers").join("deadbeef");
        fsutil::create_dir_mode(&stray_ctr, GUARD_DIR).unwrap();

        let found = check_tree(&root, &owners, uid()).unwrap();
        let got: Vec<(FindingKind, PathBuf)> = found.iter().map(|f| (f.kind, f.path.clone())).collect();
        use FindingKind::{Digest as BadDigest, Permissions, Unowned};
        let want = vec![
            (Permissions, root.clone()),
            (Permissions, c.clone()),
            (Permissions, c.join("config.json")),
            (Permissions, c.join("hosts")),
            (Unowned, stray_ctr.clone()),
            (BadDigest, blobs.join(&good)),
            (BadDigest, blobs.join("junk")),
            (Permissions, root.join("snapshots")),
            (Unowned, stray_snap.clone()),
            (Permissions, root.join("state.db")),
        ];
        for w in &want {
            assert!(got.contains(w), "missing {w:?} in {found:#?}");
        }
        assert_eq!(got.len(), want.len(), "{found:#?}");
        let f = found.iter().find(|f| f.path == c.join("config.json")).unwrap();
        assert_eq!(f.detail, "file mode 0644, at most 0600 allowed");

        // Another owner is reported too.
        let other = check_tree(&root, &owners, uid() + 1).unwrap();
        assert!(other.iter().any(|f| f.path == root && f.detail.starts_with("owned by uid")));
    }

    #[test]
    fn start_up_tightens_an_open_data_root() {
        let (_t, root, owners, _) = planted();
        let c = root.join("containers").join(ID);
        for (p, m) in [
            (root.clone(), 0o755),
            (root.join("containers"), 0o755),
            (c.clone(), 0o755),
            (root.join("builder"), 0o755),
            (c.join("config.json"), 0o644),
            (c.join(format!("{ID}-json.log")), 0o644),
            (c.join("hosts"), 0o666),
            (root.join("state.db"), 0o644),
        ] {
            fsutil::set_mode(&p, m).unwrap();
        }
        fs::write(root.join("state.db-wal"), b"").unwrap();
        fsutil::set_mode(&root.join("state.db-wal"), 0o644).unwrap();
        assert!(check_tree(&root, &owners, uid()).unwrap().len() >= 8);
        prepare_data_root(&root).unwrap();
        assert_eq!(check_tree(&root, &owners, uid()).unwrap(), vec![]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&c.join("hosts")), 0o644, "container users still read /etc/hosts");
        assert_eq!(mode(&c.join("upper/tmp/sid")), 0o4755, "layer content is left alone");
        assert_eq!(mode(&root.join("snapshots").join(Digest::of(b"layer").hex())), 0o755, "a snapshot is an image's /");
    }
}
