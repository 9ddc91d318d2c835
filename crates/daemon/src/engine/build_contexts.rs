//! The build contexts BuildKit clients' sessions synced, kept under
//! `builder/sessions/<hash of the session's shared key>/` so that the next build of the
//! same directory transfers only what changed. A build holds its context's lease (an
//! exclusive `flock` on the directory's `.lease` file) while it runs; what no build holds
//! is the build cache's to trim: `builder prune` removes it, and after each build the
//! store is bounded as BuildKit bounds its local-source records by default: what was not
//! used for 48 hours goes, then the least recently used until the rest fits in 512 MiB.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The lease file inside each context directory; its mtime is the context's last use.
const LEASE: &str = ".lease";

/// How much of the store is kept after a build (BuildKit's default GC rule for local
/// sources: 48 hours, 512 MiB).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Contexts unused for longer go.
    pub keep_duration: Duration,
    /// Then the least recently used go until the rest fits.
    pub keep_bytes: u64,
}

impl Default for Bound {
    fn default() -> Bound {
        Bound { keep_duration: Duration::from_secs(48 * 3600), keep_bytes: 512 << 20 }
    }
}

/// A running build's hold on its context directory; released when dropped.
#[derive(Debug)]
pub struct Lease {
    _file: File,
}

/// The store's root: `<data root>/builder/sessions`.
pub fn root(data_root: &Path) -> PathBuf {
    data_root.join("builder").join("sessions")
}

/// Takes the lease of context directory `dir` (created if missing), waiting for a
/// prune that holds it, and marks the context used now.
pub fn lease(dir: &Path) -> io::Result<Lease> {
    std::fs::create_dir_all(dir)?;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LEASE))?;
    rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::LockExclusive)?;
    file.set_modified(SystemTime::now())?;
    Ok(Lease { _file: file })
}

/// One context directory as the store sees it.
struct Entry {
    path: PathBuf,
    last_used: SystemTime,
    size: u64,
}

fn entries(root: &Path) -> Vec<Entry> {
    let Ok(rd) = std::fs::read_dir(root) else { return Vec::new() };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            let path = e.path();
            let stamp = std::fs::metadata(path.join(LEASE)).or_else(|_| e.metadata());
            let last_used = stamp.and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            let size = super::build::dir_size(&path);
            Entry { path, last_used, size }
        })
        .collect()
}

/// Removes `dir` unless a build holds it; whether it was removed.
fn remove_unleased(dir: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LEASE)) else {
        return false;
    };
    if rustix::fs::flock(file.as_fd(), rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return false;
    }
    // Held while removing: a build that wants this context waits, then syncs it anew.
    std::fs::remove_dir_all(dir).is_ok()
}

/// What a prune of the store removed: directory names and bytes freed.
#[derive(Debug, Default, PartialEq)]
pub struct Pruned {
    /// The removed contexts' directory names.
    pub removed: Vec<String>,
    /// Bytes freed.
    pub reclaimed: u64,
}

impl Pruned {
    fn take(&mut self, e: &Entry) {
        if remove_unleased(&e.path) {
            self.removed.push(e.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
            self.reclaimed += e.size;
        }
    }
}

/// `builder prune`: removes every context no build holds, or with `until` (seconds)
/// only those unused for longer.
pub fn prune(data_root: &Path, until: Option<i64>) -> Pruned {
    let now = SystemTime::now();
    let mut out = Pruned::default();
    for e in entries(&root(data_root)) {
        let age = now.duration_since(e.last_used).unwrap_or_default();
        if until.is_none_or(|u| age > Duration::from_secs(u.max(0) as u64)) {
            out.take(&e);
        }
    }
    out
}

/// Bounds the store after a build: contexts unused for longer than the bound's duration
/// go, then the least recently used until the others fit in its bytes. Held contexts stay.
pub fn bound(data_root: &Path, b: Bound) -> Pruned {
    let now = SystemTime::now();
    let mut all = entries(&root(data_root));
    all.sort_by_key(|e| std::cmp::Reverse(e.last_used));
    let mut out = Pruned::default();
    let mut kept = 0u64;
    for e in &all {
        let old = now.duration_since(e.last_used).unwrap_or_default() > b.keep_duration;
        if old || kept + e.size > b.keep_bytes {
            let before = out.removed.len();
            out.take(e);
            if out.removed.len() == before {
                kept += e.size;
            }
        } else {
            kept += e.size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(data_root: &Path, name: &str, bytes: usize, age: Duration) -> PathBuf {
        let d = root(data_root).join(name);
        std::fs::create_dir_all(d.join("context")).unwrap();
        std::fs::write(d.join("context/f"), vec![0u8; bytes]).unwrap();
        drop(lease(&d).unwrap());
        let f = File::options().write(true).open(d.join(LEASE)).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        d
    }

    #[test]
    fn prune_removes_what_no_build_holds() {
        let t = tempfile::tempdir().unwrap();
        let a = context(t.path(), "a", 10, Duration::ZERO);
        let b = context(t.path(), "b", 10, Duration::from_secs(7200));
        let held = lease(&a).unwrap();
        assert_eq!(prune(t.path(), Some(3600)).removed, ["b"]);
        assert!(!b.exists());
        context(t.path(), "c", 10, Duration::ZERO);
        let p = prune(t.path(), None);
        assert_eq!(p.removed, ["c"]);
        assert!(p.reclaimed >= 10);
        assert!(a.join("context/f").exists(), "a held context is kept");
        drop(held);
        assert_eq!(prune(t.path(), None).removed, ["a"]);
    }

    #[test]
    fn the_store_is_bounded_by_age_and_size() {
        let t = tempfile::tempdir().unwrap();
        context(t.path(), "old", 10, Duration::from_secs(3 * 24 * 3600));
        context(t.path(), "lru", 4000, Duration::from_secs(300));
        context(t.path(), "mid", 4000, Duration::from_secs(200));
        let new = context(t.path(), "new", 4000, Duration::from_secs(100));
        let _held = lease(&new).unwrap();
        let b = Bound { keep_duration: Duration::from_secs(48 * 3600), keep_bytes: 10_000 };
        let mut removed = bound(t.path(), b).removed;
        removed.sort();
        assert_eq!(removed, ["lru", "old"]);
        let mut left: Vec<_> = std::fs::read_dir(root(t.path()))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["mid", "new"]);
    }
}
