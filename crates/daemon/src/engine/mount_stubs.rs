//! Mount stubs of a build step: the empty files and directories the runtime makes in a
//! step's root so that its mounts have a target (`/etc/hosts`, `/proc` on a bare image, the
//! target of `RUN --mount=type=cache,target=/root/.cache/pip` and its missing parents).
//! BuildKit removes them once the step is over, so they never reach the step's layer; so
//! does berth. Everything goes through the safe-path layer: the step may have replaced a
//! parent with a symlink pointing anywhere.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::Path;

use berth_base::fsroot::{self, Escape};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};

/// One mount target that did not exist before the step: the chain of paths the runtime will
/// create for it, outermost first, and the times of the existing directory above them.
struct Stub {
    /// Components of the first missing path's parent (an existing directory).
    parent: Vec<OsString>,
    /// The missing components below `parent`, outermost first.
    missing: Vec<OsString>,
    /// `parent`'s access and modification times before the step.
    times: Option<Timestamps>,
}

/// The stubs a step's mounts will need, found before the step runs.
pub(super) struct MountStubs {
    stubs: Vec<Stub>,
}

impl MountStubs {
    /// Looks up each mount destination in `rootfs` (following symlinks inside it, as the
    /// runtime does) and notes those that are missing.
    pub(super) fn find(rootfs: &Path, spec: &oci_spec::runtime::Spec) -> MountStubs {
        let mut stubs = Vec::new();
        let Ok(root) = fsroot::open_root(rootfs) else { return MountStubs { stubs } };
        for m in spec.mounts().iter().flatten() {
            let Some(dest) = m.destination().to_str() else { continue };
            let real = fsroot::follow_symlinks(&root, dest).unwrap_or_else(|_| dest.to_owned());
            let Some(comps) = fsroot::root_components(Path::new(&real), Escape::Clamp) else { continue };
            let first_missing = (1..=comps.len()).find(|&i| {
                matches!(
                    fsroot::lstat_in_root(&root, &fsroot::join_components(&comps[..i]).to_string_lossy()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound
                )
            });
            let Some(i) = first_missing else { continue };
            let parent = comps[..i - 1].to_vec();
            if stubs.iter().any(|s: &Stub| s.parent == parent && s.missing == comps[i - 1..]) {
                continue;
            }
            let times = open_dir(&root, &parent).ok().and_then(|fd| rustix::fs::fstat(&fd).ok()).map(|st| Timestamps {
                last_access: rustix::fs::Timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec as _ },
                last_modification: rustix::fs::Timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec as _ },
            });
            stubs.push(Stub { parent, missing: comps[i - 1..].to_vec(), times });
        }
        // Deepest first, so a stub directory is empty by the time its own turn comes.
        stubs.sort_by_key(|s| std::cmp::Reverse(s.parent.len() + s.missing.len()));
        MountStubs { stubs }
    }

    /// Removes what is still a stub after the step: empty regular files and empty
    /// directories along each chain, innermost first, and gives the parent back its times.
    /// Anything the step filled or replaced stays.
    pub(super) fn remove(&self, rootfs: &Path) {
        let Ok(root) = fsroot::open_root(rootfs) else { return };
        for s in &self.stubs {
            let mut removed_all = true;
            for depth in (0..s.missing.len()).rev() {
                let mut dir = s.parent.clone();
                dir.extend_from_slice(&s.missing[..depth]);
                let name = &s.missing[depth];
                if !remove_stub(&root, &dir, name) {
                    removed_all = false;
                    break;
                }
            }
            if removed_all
                && let (Some(times), Ok(fd)) = (&s.times, open_dir(&root, &s.parent))
                && let Err(e) = rustix::fs::futimens(&fd, times)
            {
                tracing::debug!(error = %e, "restoring a directory's times after removing mount stubs");
            }
        }
    }
}

/// Opens the directory `comps` inside `root` for reading (never leaving the root).
fn open_dir(root: &OwnedFd, comps: &[OsString]) -> std::io::Result<OwnedFd> {
    let path = fsroot::join_components(comps);
    fsroot::open_in_root(root, &path.to_string_lossy(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
}

/// Removes `dir/name` if it is an empty file or an empty directory; true when it is gone.
fn remove_stub(root: &OwnedFd, dir: &[OsString], name: &OsString) -> bool {
    let Ok(d) = open_dir(root, dir) else { return false };
    let Ok(st) = rustix::fs::statat(&d, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) else { return true };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile if st.st_size == 0 => {
            rustix::fs::unlinkat(&d, name.as_os_str(), AtFlags::empty()).is_ok()
        }
        FileType::Directory => rustix::fs::unlinkat(&d, name.as_os_str(), AtFlags::REMOVEDIR).is_ok(),
        _ => false,
    }
}
