//! The spare network namespace: one namespace made ahead of need (as [`netns::create`]
//! makes it: loopback up, nothing else), kept bind-mounted under a name of its own in the
//! netns directory, so a container start takes a finished namespace instead of making one.
//!
//! Making a namespace (unshare, bind mount, netlink socket, `lo` up) costs about 1 ms, and
//! more as the host holds more namespaces; taking the spare is one `MS_MOVE` of its bind
//! mount onto the container's file, a few microseconds, after which the namespace is at the
//! very path (`<netns dir>/<container id>`) a fresh one would be, so the rest of the daemon
//! and live restore see no difference. When the move is refused (the netns directory's
//! mount is shared, where `MS_MOVE` is not allowed) the spare is bind-mounted there instead
//! and its own mount is removed by the next refill, off the start's path.
//!
//! At most one spare exists per [`Spare`]. Its files are named `.spare-<n>`, a name no
//! container id (64 hex digits) takes, so [`Spare::remove_leftovers`] can tell the spare
//! of a daemon that was killed from a container's namespace.
//!
//! An unused spare holds one empty network namespace (its loopback device, per-namespace
//! sysctl tables and routing tables: some tens of KiB of kernel memory), one bind mount and
//! one netlink socket; no process and no thread. What a new namespace copies from the
//! host at creation (the `net.*.conf.default` sysctls the kernel inherits from the initial
//! namespace) is copied when the spare is made rather than when it is taken.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::netns;

/// The prefix of a spare's file name in the netns directory.
pub const PREFIX: &str = ".spare-";

/// How long [`Spare::close`] waits for a refill under way to end.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// A finished spare: its file and a netlink socket bound inside it.
struct Ready {
    path: PathBuf,
    netlink: Netlink,
}

#[derive(Default)]
struct State {
    ready: Option<Ready>,
    /// A refill is making a namespace now.
    filling: bool,
    /// Spare files whose namespace was bound to a container rather than moved: mounts
    /// still, removed by the next refill.
    leftover: Vec<PathBuf>,
    /// No more spares: the owner is shutting down.
    closed: bool,
    /// Numbers the spare files, so a refill never reuses a name a take still works on.
    seq: u64,
}

/// At most one network namespace made ahead of need, in one netns directory.
pub struct Spare {
    dir: PathBuf,
    state: Mutex<State>,
    idle: Condvar,
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Spare {
    /// No spare yet in `dir` (the directory holding the containers' namespace files);
    /// [`Spare::fill`] makes one.
    pub fn new(dir: &Path) -> Spare {
        Spare { dir: dir.to_owned(), state: Mutex::default(), idle: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unmounts and removes every spare file in `dir`: what a daemon that was killed left.
    /// Call before the first [`Spare::fill`] of the daemon that owns `dir` now. Returns
    /// how many were removed. Blocking.
    pub fn remove_leftovers(dir: &Path) -> Result<usize> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(format!("read {}", dir.display()), e)),
        };
        let mut n = 0;
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(PREFIX) {
                netns::remove(&e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Makes the spare unless there is one, one is being made, or the spare was closed.
    /// Blocking (about a millisecond of kernel work): run it on a thread of its own, never
    /// on a request's path. A failure is returned and leaves no spare; takes then make
    /// their namespaces as before.
    pub fn fill(&self) -> Result<()> {
        let (path, leftover) = {
            let mut g = self.lock();
            if g.closed || g.filling || g.ready.is_some() {
                return Ok(());
            }
            g.filling = true;
            g.seq += 1;
            (self.dir.join(format!("{PREFIX}{}-{}", std::process::id(), g.seq)), std::mem::take(&mut g.leftover))
        };
        for p in leftover {
            if let Err(e) = netns::remove(&p) {
                tracing::warn!(path = %p.display(), error = %e, "removing a taken spare's file");
            }
        }
        let made = netns::create(&path);
        let mut g = self.lock();
        g.filling = false;
        self.idle.notify_all();
        let netlink = made?;
        if g.closed {
            drop(g);
            return netns::remove(&path);
        }
        g.ready = Some(Ready { path, netlink });
        Ok(())
    }

    /// Takes the spare when there is one: its namespace ends up bind-mounted at `path`
    /// (any file there is replaced), as [`netns::create`] would have left it, and the
    /// netlink socket bound inside it is returned. None when there is no spare (or it
    /// could not be put at `path`, and was dropped): the caller makes the namespace itself.
    /// Two callers never get the same spare.
    pub fn take(&self, path: &Path) -> Option<Netlink> {
        let Ready { path: from, netlink } = self.lock().ready.take()?;
        match put(&from, path) {
            Ok(Put::Moved) => {
                if let Err(e) = std::fs::remove_file(&from) {
                    tracing::warn!(path = %from.display(), error = %e, "removing a taken spare's file");
                }
                Some(netlink)
            }
            Ok(Put::Bound) => {
                self.lock().leftover.push(from);
                Some(netlink)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the spare network namespace could not be used");
                let _ = netns::remove(&from);
                let _ = netns::remove(path);
                None
            }
        }
    }

    /// Whether a spare is ready now.
    pub fn is_ready(&self) -> bool {
        self.lock().ready.is_some()
    }

    /// Removes the spare and makes no more: at the owner's shutdown. Waits a little for a
    /// refill under way, so it leaves nothing behind either. Blocking.
    pub fn close(&self) {
        let mut g = self.lock();
        g.closed = true;
        while g.filling {
            match self.idle.wait_timeout(g, CLOSE_WAIT) {
                Ok((next, t)) if !t.timed_out() => g = next,
                Ok((next, _)) => {
                    g = next;
                    break;
                }
                Err(p) => g = p.into_inner().0,
            }
        }
        let mut gone: Vec<PathBuf> = std::mem::take(&mut g.leftover);
        gone.extend(g.ready.take().map(|r| r.path));
        drop(g);
        for p in gone {
            if let Err(e) = netns::remove(&p) {
                tracing::warn!(path = %p.display(), error = %e, "removing the spare network namespace");
            }
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        self.close();
    }
}

/// How a spare got to a container's path.
enum Put {
    /// Its mount was moved there; the spare's file is a plain empty file now.
    Moved,
    /// It was bind-mounted there; the spare's file is still a mount.
    Bound,
}

/// Puts the namespace mounted at `from` at `to`: `MS_MOVE` of the mount, or a bind mount
/// where moving is not allowed (a shared parent mount).
fn put(from: &Path, to: &Path) -> Result<Put> {
    let _ = netns::remove(to);
    std::fs::File::create(to).map_err(|e| Error::io(format!("create {}", to.display()), e))?;
    match rustix::mount::mount_move(from, to) {
        Ok(()) => Ok(Put::Moved),
        Err(rustix::io::Errno::INVAL) => rustix::mount::mount_bind(from, to)
            .map(|()| Put::Bound)
            .map_err(|e| Error::io(format!("bind the spare network namespace to {}", to.display()), e.into())),
        Err(e) => Err(Error::io(format!("move the spare network namespace to {}", to.display()), e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    fn ns_inode(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    }

    fn is_mount(p: &Path) -> bool {
        let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let want = p.to_str().unwrap();
        s.lines().any(|l| l.split(' ').nth(4) == Some(want))
    }

    #[test]
    fn take_moves_the_spare_and_two_takes_never_share_one() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let spare = Spare::new(dir.path());
        assert!(spare.take(&dir.path().join("a")).is_none(), "no spare before a fill");
        spare.fill().unwrap();
        assert!(spare.is_ready());
        let made = std::fs::read_dir(dir.path()).unwrap().flatten().next().unwrap().path();
        let made_ino = ns_inode(&made);
        let a = dir.path().join("a");
        let mut nl = spare.take(&a).expect("the spare");
        assert!(!spare.is_ready());
        assert_eq!(ns_inode(&a), made_ino, "the container's file is the spare's namespace");
        assert!(is_mount(&a));
        assert!(!made.exists(), "the spare's file is gone once moved");
        // The socket works inside the taken namespace: lo is up there.
        nl.set_up(1, None).unwrap();
        let b = dir.path().join("b");
        assert!(spare.take(&b).is_none(), "a second take finds no spare");
        spare.fill().unwrap();
        spare.take(&b).expect("the new spare");
        assert_ne!(ns_inode(&a), ns_inode(&b), "each take gets a namespace of its own");
        netns::remove(&a).unwrap();
        netns::remove(&b).unwrap();
        spare.fill().unwrap();
        spare.close();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "close leaves nothing");
        spare.fill().unwrap();
        assert!(!spare.is_ready(), "no fill after close");
    }

    #[test]
    fn take_binds_where_moving_is_refused_and_the_refill_removes_the_old_file() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("netns");
        std::fs::create_dir(&dir).unwrap();
        // A shared mount of its own: MS_MOVE of a mount below it is refused (EINVAL).
        rustix::mount::mount_bind(&dir, &dir).unwrap();
        rustix::mount::mount_change(&dir, rustix::mount::MountPropagationFlags::SHARED).unwrap();
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
            }
        }
        let _unmount = Unmount(dir.clone());
        let spare = Spare::new(&dir);
        spare.fill().unwrap();
        let made = std::fs::read_dir(&dir).unwrap().flatten().next().unwrap().path();
        let made_ino = ns_inode(&made);
        let a = dir.join("a");
        spare.take(&a).expect("the spare, bound instead of moved");
        assert_eq!(ns_inode(&a), made_ino);
        assert!(is_mount(&a));
        assert!(is_mount(&made), "the spare's own mount stays until the refill");
        spare.fill().unwrap();
        assert!(!made.exists(), "the refill removed the taken spare's file");
        assert_eq!(ns_inode(&a), made_ino, "the container's namespace stays");
        netns::remove(&a).unwrap();
        spare.close();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_a_killed_owner_are_removed_and_containers_kept() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let spare = Spare::new(dir.path());
        spare.fill().unwrap();
        // A killed daemon runs no destructor.
        std::mem::forget(spare);
        let container = dir.path().join("0123abcd".repeat(8));
        netns::create(&container).unwrap();
        assert_eq!(Spare::remove_leftovers(dir.path()).unwrap(), 1);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(left, vec![container.clone()]);
        let prefix = format!("{}/{PREFIX}", dir.path().display());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&prefix))),
            "no spare mount left"
        );
        netns::remove(&container).unwrap();
    }

    #[test]
    fn concurrent_takes_get_distinct_namespaces() {
        if !root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let spare = std::sync::Arc::new(Spare::new(dir.path()));
        spare.fill().unwrap();
        let got: Vec<bool> = (0..4)
            .map(|i| {
                let s = spare.clone();
                let p = dir.path().join(format!("c{i}"));
                std::thread::spawn(move || s.take(&p).is_some())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert_eq!(got.iter().filter(|t| **t).count(), 1, "exactly one take gets the spare");
        for i in 0..4 {
            netns::remove(&dir.path().join(format!("c{i}"))).unwrap();
        }
    }
}
