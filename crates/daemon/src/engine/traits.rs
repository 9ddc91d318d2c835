//! The narrow interfaces through which the container state machine reaches the OS: shims
//! ([`ShimLauncher`]) and container roots ([`RootfsStore`]). The daemon uses the real ones
//! (`berth shim` processes, the overlay snapshotter); the engine's unit tests use fakes,
//! so create/start/stop/kill/restart/remove and restore run without root. Talking to a
//! running shim always goes through [`berth_runtime::ShimClient`] on the shim's socket,
//! whichever launcher started it.

use std::path::{Path, PathBuf};

use berth_base::Digest;
use berth_image::ImageStore;
use berth_runtime::shim::ShimOptions;

/// Starts shims for prepared bundles and cleans up after dead ones.
pub trait ShimLauncher: Send + Sync {
    /// Starts a shim for `opts` and returns once the container is created (waiting for
    /// Start) and the shim listens on `opts.socket`, with the init's host pid. The launcher
    /// reaps the shim when it exits. Blocking.
    fn spawn(&self, opts: &ShimOptions) -> Result<u32, berth_runtime::Error>;

    /// Removes what the runtime left of container `id` under `state_root` (its shim is
    /// gone). Already gone is success. Blocking.
    fn cleanup(&self, state_root: &Path, id: &str) -> Result<(), berth_runtime::Error>;

    /// Says a [`ShimLauncher::spawn`] will probably follow soon, so the launcher may get
    /// ready for it. Blocking, but short.
    fn warm(&self) {}
}

/// The real launcher: `<exe> shim <options>`, one single-threaded process per container,
/// handed to a standby shim when one waits ([`berth_runtime::shim::standby`]).
pub struct ShimProcesses {
    standby: std::sync::Arc<berth_runtime::shim::standby::Standby>,
}

impl ShimProcesses {
    /// Shims of the berth executable `exe`; `parents` as in `ShimOptions::private_parents`.
    pub fn new(exe: &Path, parents: Vec<PathBuf>) -> Self {
        ShimProcesses { standby: std::sync::Arc::new(berth_runtime::shim::standby::Standby::new(exe, parents)) }
    }
}

impl ShimLauncher for ShimProcesses {
    fn spawn(&self, opts: &ShimOptions) -> Result<u32, berth_runtime::Error> {
        let spawned = self.standby.spawn(opts);
        // The next start finds a standby that has made its mount namespace already (with
        // many containers running that takes milliseconds); off this start's path.
        let standby = self.standby.clone();
        drop(std::thread::Builder::new().name("standby".into()).spawn(move || standby.warm()));
        let spawned = spawned?;
        reap_later(spawned.child);
        Ok(spawned.init_pid)
    }

    fn warm(&self) {
        self.standby.warm();
    }

    fn cleanup(&self, state_root: &Path, id: &str) -> Result<(), berth_runtime::Error> {
        berth_runtime::cleanup(state_root, id)
    }
}

/// The shim is our child until it exits; reaps it then, so it never lingers as a zombie.
/// A task waiting on the shim's pidfd, not a thread per shim: a thread's stack and malloc
/// arena per running container made the daemon grow with every container.
fn reap_later(mut child: std::process::Child) {
    let pidfd = rustix::process::Pid::from_raw(child.id() as i32)
        .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK).ok());
    match (tokio::runtime::Handle::try_current(), pidfd) {
        (Ok(rt), Some(fd)) => {
            rt.spawn(async move {
                // SAFETY: the AsyncFd owns the pidfd (an OwnedFd), which stays open and the
                // same descriptor for the AsyncFd's whole life.
                let registered =
                    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) };
                match registered {
                    Ok(fd) => {
                        let _ = fd.readable().await;
                        // Readable: the shim has exited, so this does not block.
                        let _ = child.wait();
                    }
                    Err(_) => {
                        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
                    }
                }
            });
        }
        _ => {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

/// Container root filesystems, as the lifecycle uses the image store.
pub trait RootfsStore: Send + Sync {
    /// Mounts the image's layers as `container_dir/rootfs` (writes go to
    /// `container_dir/upper`) and returns the mount point. Blocking.
    fn mount_rootfs(&self, image: &Digest, container_dir: &Path) -> Result<PathBuf, berth_image::Error>;

    /// Unmounts `container_dir/rootfs`; not mounted is success. Blocking.
    fn unmount_rootfs(&self, container_dir: &Path) -> Result<(), berth_image::Error>;
}

impl RootfsStore for ImageStore {
    fn mount_rootfs(&self, image: &Digest, container_dir: &Path) -> Result<PathBuf, berth_image::Error> {
        ImageStore::mount_rootfs(self, image, container_dir)
    }

    fn unmount_rootfs(&self, container_dir: &Path) -> Result<(), berth_image::Error> {
        ImageStore::unmount_rootfs(self, container_dir)
    }
}
