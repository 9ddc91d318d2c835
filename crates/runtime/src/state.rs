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
//!
//! The bundle libcontainer is given when the shim changes the container's spec (a filter
//! it loads itself, a cgroup filesystem it mounts itself) is kept beside that state, in
//! [`bundle_dir`], and deleted with it: the state root is a tmpfs (`/run`, or one the daemon
//! mounts), where a start's files cost no disk writes, and libcontainer reads the bundle
//! again for every exec while the container runs.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
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

/// The directory of the runtime bundles, inside the state root (not a container id, so
/// nothing takes it for libcontainer's state).
const BUNDLES: &str = "bundles";

/// Where the bundle libcontainer is given for container `id` is written (see the module's
/// text).
pub(crate) fn bundle_dir(state_root: &Path, id: &str) -> PathBuf {
    state_root.join(BUNDLES).join(id)
}

/// The ids that have a runtime bundle under `state_root`.
pub fn bundle_ids(state_root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(state_root.join(BUNDLES)) else { return Vec::new() };
    rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()
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
    let bundle = bundle_dir(state_root, id);
    if !dir.exists() {
        return remove_bundle(&bundle);
    }
    match libcontainer::container::Container::load(dir.clone()) {
        Ok(mut c) => {
            if let Err(e) = crate::shim::plain_delete::delete(&mut c) {
                // A half-written state dir cannot be deleted through libcontainer; removing
                // the directory is all that is left to do.
                if dir.exists() {
                    tracing::warn!(id, error = %chain(&e), "libcontainer delete failed; removing state dir");
                }
            }
        }
        Err(e) => tracing::warn!(id, error = %chain(&e), "unloadable container state; removing it"),
    }
    // Before the state directory: whoever waits for that to go ([`wait_unlocked`] once the
    // lock is gone with it) may write the bundle again.
    remove_bundle(&bundle)?;
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("failed to remove container state", &dir, e)),
    }
}

/// Removes the runtime bundle of `id` (libcontainer's delete does not read it: it keeps
/// what it needs in its state directory).
pub(crate) fn remove_bundle_of(state_root: &Path, id: &str) -> Result<(), Error> {
    remove_bundle(&bundle_dir(state_root, id))
}

fn remove_bundle(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("failed to remove the runtime's bundle", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_bundle_goes_with_the_state() {
        let root = tempfile::tempdir().unwrap();
        for id in ["c1", "c2"] {
            std::fs::create_dir_all(bundle_dir(root.path(), id)).unwrap();
            std::fs::write(bundle_dir(root.path(), id).join("config.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(root.path().join("c1")).unwrap();
        let mut ids = bundle_ids(root.path());
        ids.sort();
        assert_eq!(ids, ["c1", "c2"]);
        // With its state (unloadable here, so only removed) and without any.
        cleanup(root.path(), "c1").unwrap();
        remove(root.path(), "c2").unwrap();
        assert!(bundle_ids(root.path()).is_empty());
        assert!(!root.path().join("c1").exists());
        assert!(cleanup(root.path(), "c1").is_ok(), "already gone is success");
    }

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
