//! Network namespaces kept as bind-mounted files (as `ip netns` does), made before the
//! container exists so its network is set up before (and apart from) the runtime's create.
//!
//! Every change of namespace happens on a short-lived thread of its own that ends when the
//! work is done: no thread of the daemon ever stays in another network namespace.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::netlink::Netlink;

/// Runs `f` on a new thread that has joined the network namespace at `path`, and returns
/// what it returns. The thread ends with `f`.
pub fn run_in<T: Send + 'static>(path: &Path, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let ns = File::open(path).map_err(|e| Error::io(format!("open network namespace {}", path.display()), e))?;
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .map_err(|e| Error::io(format!("join network namespace {}", p.display()), e.into()))?;
        f()
    })
    .join()
    .map_err(|_| Error::Thread)?
}

/// Opens a route netlink socket inside the namespace at `path`.
pub fn netlink_in(path: &Path) -> Result<Netlink> {
    run_in(path, || Netlink::open().map_err(|e| Error::io("open netlink socket", e)))
}

/// Creates a network namespace bind-mounted at `path`, with its loopback up, and returns a
/// netlink socket that works inside it. A file already there is replaced.
pub fn create(path: &Path) -> Result<Netlink> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    }
    let _ = remove(path);
    File::create(path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    let p: PathBuf = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<Netlink> {
        // SAFETY: only CLONE_NEWNET is unshared, on a thread that ends right after; no file
        // descriptor table is unshared, so no other thread's descriptors change meaning.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
            .map_err(|e| Error::io("unshare the network namespace", e.into()))?;
        rustix::mount::mount_bind("/proc/thread-self/ns/net", &p)
            .map_err(|e| Error::io(format!("bind the network namespace to {}", p.display()), e.into()))?;
        let mut nl = Netlink::open().map_err(|e| Error::io("open netlink socket", e))?;
        // The loopback is always index 1 in a new namespace.
        nl.set_up(1, None).map_err(|e| Error::io("set lo up", e))?;
        Ok(nl)
    })
    .join()
    .map_err(|_| Error::Thread)?;
    if made.is_err() {
        let _ = remove(path);
    }
    made
}

/// Unmounts and removes a namespace file; one already gone is fine. The namespace itself
/// (with the container's end of its veth) goes away when no process holds it any more.
pub fn remove(path: &Path) -> Result<()> {
    match rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(Error::io(format!("unmount {}", path.display()), e.into())),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}
