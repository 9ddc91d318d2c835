//! Container root filesystems: an overlay mount of an image's layer snapshots (read-only
//! lower dirs) under a per-container upper and work dir.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::Error;

/// The option string must fit in one page, which the kernel copies for mount(2).
const MAX_OPTIONS: usize = 4000;

fn plain(p: &Path) -> Option<String> {
    let s = p.to_str()?;
    // Overlay splits lowerdir on ':' and options on ','.
    (!s.contains([',', ':'])).then(|| s.to_owned())
}

/// True when `dir/rootfs` is a mount point (it is on another device than `dir`).
fn is_mounted(dir: &Path, rootfs: &Path) -> bool {
    match (fs::metadata(dir), fs::metadata(rootfs)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        _ => false,
    }
}

/// Mounts overlay at `container_dir/rootfs` with `lowers` (top first).
pub(crate) fn mount_overlay(lowers: &[PathBuf], container_dir: &Path) -> Result<PathBuf, Error> {
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    let rootfs = container_dir.join("rootfs");
    for d in [&upper, &work, &rootfs] {
        fs::create_dir_all(d).map_err(Error::io("create", d))?;
    }
    if is_mounted(container_dir, &rootfs) {
        return Ok(rootfs);
    }
    let (upper_s, work_s) = match (plain(&upper), plain(&work)) {
        (Some(u), Some(w)) => (u, w),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "container directory {} contains ',' or ':', which overlayfs cannot take",
                container_dir.display()
            )));
        }
    };
    let mut extra = String::new();
    // Docker's overlay2 needs these off so that the upper dir diffs naively.
    for opt in ["index", "redirect_dir", "metacopy"] {
        if Path::new("/sys/module/overlay/parameters").join(opt).exists() {
            extra.push_str(&format!(",{opt}=off"));
        }
    }
    let tail = format!(",upperdir={upper_s},workdir={work_s}{extra}");
    let full: Option<Vec<String>> = lowers.iter().map(|p| plain(p)).collect();
    let mut _held: Vec<OwnedFd> = Vec::new();
    let lower = match full {
        Some(v) if v.iter().map(|s| s.len() + 1).sum::<usize>() + tail.len() + 10 < MAX_OPTIONS => v.join(":"),
        _ => {
            // Too long (or unsafe characters): name each lower dir by an fd of ours, as
            // `/proc/self/fd/N` — short, and resolved by the kernel while we hold them open.
            let mut names = Vec::new();
            for p in lowers {
                let fd = rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|e| Error::io("open", p)(e.into()))?;
                names.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                _held.push(fd);
            }
            names.join(":")
        }
    };
    let opts = format!("lowerdir={lower}{tail}");
    if opts.len() >= MAX_OPTIONS {
        return Err(Error::InvalidArgument(format!("image has too many layers to mount ({})", lowers.len())));
    }
    let data = std::ffi::CString::new(opts).map_err(|_| Error::InvalidArgument("NUL in mount options".into()))?;
    rustix::mount::mount("overlay", &rootfs, "overlay", MountFlags::empty(), data.as_c_str())
        .map_err(|e| Error::io("mount overlay at", &rootfs)(e.into()))?;
    Ok(rootfs)
}

/// Unmounts `container_dir/rootfs`; not mounted or missing is fine.
pub(crate) fn unmount(container_dir: &Path) -> Result<(), Error> {
    let rootfs = container_dir.join("rootfs");
    loop {
        match rustix::mount::unmount(&rootfs, UnmountFlags::empty()) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => {
                // Something (a late exec, a shell's cwd) still pins it: detach so the path
                // is free now and the kernel finishes when the last user goes.
                return rustix::mount::unmount(&rootfs, UnmountFlags::DETACH)
                    .map_err(|e| Error::io("unmount", &rootfs)(io::Error::from(e)));
            }
            Err(e) => return Err(Error::io("unmount", &rootfs)(e.into())),
        }
        // Stacked mounts (mounted twice by a racing caller) come off one by one.
        if !is_mounted(container_dir, &rootfs) {
            return Ok(());
        }
    }
}
