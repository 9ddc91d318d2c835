//! libcontainer's per-container state directory (`<state root>/<id>`): its removal, and
//! the lock that orders that removal against whoever comes next for the same id.
//!
//! A shim reports its container's exit before it asks libcontainer to delete the
//! container (the cgroups and the state directory, about 2 ms on a cgroup v1 host), so a
//! `run --rm` or a `stop` is answered without waiting for it. Whoever acts on that exit
//! and needs the state gone — the daemon removing the container, a new start of the same
//! container, a reconcile — must then wait until the delete has finished, or it would race
//! libcontainer's own delete (two deletes of one cgroup, or a new container's cgroup
//! removed under it). The shim holds an exclusive `flock` on the state directory from
//! before it reports the exit until the delete is done; [`wait_unlocked`] and [`cleanup`]
//! take the same lock first. The kernel drops the lock when the shim exits, so a shim that
//! dies mid-delete blocks nobody.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::FlockOperation;

use crate::{Error, chain};

/// How long a waiter waits for a shim's delete before going on regardless (a delete stuck
/// on a process that cannot be killed must not hang a removal forever).
const LOCK_LIMIT: Duration = Duration::from_secs(10);
/// How often a waiter tries the lock again.
const LOCK_STEP: Duration = Duration::from_micros(250);

/// A held lock on a state directory; released when dropped (or when the process exits).
pub(crate) struct StateLock(#[allow(dead_code)] File);

/// Takes the exclusive lock on the state directory `dir`, waiting for a holder at most
/// [`LOCK_LIMIT`]. None when the directory does not exist, or the wait timed out.
pub(crate) fn lock(dir: &Path) -> Option<StateLock> {
    let f = File::open(dir).ok()?;
    let deadline = Instant::now() + LOCK_LIMIT;
    loop {
        match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Some(StateLock(f)),
            Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < deadline => std::thread::sleep(LOCK_STEP),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "the runtime state stayed locked; going on");
                return None;
            }
        }
    }
}

/// Waits until no shim is deleting the state of `id` (its directory unlocked or gone).
pub(crate) fn wait_unlocked(state_root: &Path, id: &str) {
    drop(lock(&state_root.join(id)));
}

/// Deletes the libcontainer state (and cgroup, and any process still in it) of a container
/// whose shim is gone or is finishing. Waits for a shim that is still deleting it (see the
/// module's text). Already gone is success, so this can be called on every reconcile.
pub fn cleanup(state_root: &Path, id: &str) -> Result<(), Error> {
    let dir = state_root.join(id);
    let _held = lock(&dir);
    remove(state_root, id)
}

/// [`cleanup`] for a caller that holds the state's lock itself (the shim at exit).
pub(crate) fn remove(state_root: &Path, id: &str) -> Result<(), Error> {
    let dir = state_root.join(id);
    if !dir.exists() {
        return Ok(());
    }
    match libcontainer::container::Container::load(dir.clone()) {
        Ok(mut c) => {
            if let Err(e) = c.delete(true) {
                // A half-written state dir cannot be deleted through libcontainer; removing
                // the directory is all that is left to do.
                if dir.exists() {
                    tracing::warn!(id, error = %chain(&e), "libcontainer delete failed; removing state dir");
                }
            }
        }
        Err(e) => tracing::warn!(id, error = %chain(&e), "unloadable container state; removing it"),
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("failed to remove container state", &dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_of_missing_state_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        assert!(cleanup(dir.path(), "nothing").is_ok());
        std::fs::create_dir_all(dir.path().join("junk")).unwrap();
        assert!(cleanup(dir.path(), "junk").is_ok());
        assert!(!dir.path().join("junk").exists());
    }

    #[test]
    fn cleanup_waits_for_the_holder_of_the_lock() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c1");
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        let held = lock(&dir).expect("the directory exists");
        let (tx, rx) = std::sync::mpsc::channel();
        let r = root.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            cleanup(&r, "c1").unwrap();
            tx.send(started.elapsed()).unwrap();
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "cleanup went on while the lock was held");
        assert!(dir.exists());
        drop(held);
        let waited = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        waiter.join().unwrap();
        assert!(waited >= Duration::from_millis(100), "waited only {waited:?}");
        assert!(!dir.exists(), "the state was removed once the lock was free");
    }

    #[test]
    fn a_lock_is_not_needed_for_a_missing_directory() {
        let root = tempfile::tempdir().unwrap();
        assert!(lock(&root.path().join("gone")).is_none());
        wait_unlocked(root.path(), "gone");
    }
}
