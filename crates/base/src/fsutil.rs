//! Crash-safe file primitives: atomic replace (temp file, fsync, rename, fsync dir) and
//! advisory locks that guard a data root against a second daemon.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `data` to `path` so that readers see either the old content or all of the new,
/// never a prefix, even across a crash.
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_sibling(path);
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// A unique temporary path next to `path` (same directory, so rename is atomic).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = &crate::id::new_id()[..12];
    path.with_file_name(format!(".tmp-{name}-{suffix}"))
}

/// fsyncs a directory so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive advisory lock on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock without waiting; `Ok(None)` when another process holds it.
    pub fn try_lock(path: &Path) -> io::Result<Option<FileLock>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_lock_excludes() {
        let dir = std::env::temp_dir().join(format!("berth-base-test-{}", crate::id::new_id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp files left behind");
        let l = FileLock::try_lock(&dir.join("lock")).unwrap();
        assert!(l.is_some());
        // flock locks are per open file description, so a second open conflicts.
        assert!(FileLock::try_lock(&dir.join("lock")).unwrap().is_none());
        drop(l);
        assert!(FileLock::try_lock(&dir.join("lock")).unwrap().is_some());
        fs::remove_dir_all(&dir).unwrap();
    }
}
