//! Container directories whose removal is taken off the critical path of `run --rm`: the
//! directory is renamed into `containers/.trash/` (one rename: the container's name and
//! record are free at once, as Docker's auto-removal leaves them) and a background task
//! deletes its files, which took 1.4–1.8 ms of every `run --rm` here. A daemon that died
//! before a deletion finished empties the trash when it starts.
//!
//! The trash lives inside `containers/` because that directory is a mount of its own
//! (`image::ensure_parent_mount`) and a rename cannot cross mounts.

use std::io;
use std::path::{Path, PathBuf};

/// The trash's name inside `containers/`; `system check` owns it.
pub(super) const NAME: &str = ".trash";

/// Moves `dir` (a directory in `containers/`) into the trash and deletes it in the
/// background. An error (nothing moved) leaves the caller to remove it itself.
pub(super) fn discard(dir: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let trash = parent.join(NAME);
    berth_base::fsutil::create_dir_mode(&trash, berth_base::fsutil::GUARD_DIR)?;
    let target = trash.join(name);
    // A leftover of the same id (a removal interrupted by a crash) goes first.
    remove(&target)?;
    std::fs::rename(dir, &target)?;
    delete_later(target);
    Ok(())
}

/// Deletes whatever the trash of `containers` holds, in the background (daemon start).
pub(super) fn empty(containers: &Path) {
    let trash = containers.join(NAME);
    if trash.exists() {
        delete_later(trash);
    }
}

fn delete_later(path: PathBuf) {
    later(move || {
        if let Err(e) = remove(&path) {
            tracing::warn!(path = %path.display(), error = %e, "deleting a removed container's files");
        }
    });
}

/// Runs the rest of a removal, `job` (blocking), in the background; inline without a runtime.
pub(super) fn later(job: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(job)),
        Err(_) => job(),
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_directory_is_gone_at_once_and_deleted_later() {
        let t = tempfile::tempdir().unwrap();
        let containers = t.path().join("containers");
        let dir = containers.join("abc");
        std::fs::create_dir_all(dir.join("upper/deep")).unwrap();
        std::fs::write(dir.join("upper/deep/file"), b"x").unwrap();
        // Without a runtime the deletion runs inline.
        discard(&dir).unwrap();
        assert!(!dir.exists());
        assert!(!containers.join(NAME).join("abc").exists());

        // A leftover of the same id in the trash does not block a second discard.
        std::fs::create_dir_all(dir.join("upper")).unwrap();
        std::fs::create_dir_all(containers.join(NAME).join("abc/old")).unwrap();
        discard(&dir).unwrap();
        assert!(!dir.exists() && !containers.join(NAME).join("abc").exists());

        // Nothing to move: an error, and nothing else touched.
        assert!(discard(&containers.join("missing")).is_err());
        std::fs::create_dir_all(containers.join(NAME).join("left/x")).unwrap();
        empty(&containers);
        assert!(!containers.join(NAME).exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn with_a_runtime_the_deletion_runs_in_the_background() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("containers/abc");
        std::fs::create_dir_all(dir.join("work")).unwrap();
        discard(&dir).unwrap();
        assert!(!dir.exists());
        let trashed = t.path().join("containers").join(NAME).join("abc");
        for _ in 0..200 {
            if !trashed.exists() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("{} was never deleted", trashed.display());
    }
}
