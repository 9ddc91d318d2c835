//! What `RUN --mount=type=bind` mounts, as BuildKit does it: the build context is seen
//! through a filtered snapshot (exactly the files `.dockerignore` lets through, owned by
//! root as in the context BuildKit receives), never the client's live directory; and a
//! bind with `rw` gets a scratch overlay over its source whose writes are thrown away
//! after the step.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::Error;
use crate::copy::{CopyOpts, SourceRoot};

/// Makes `dir` (its parent must exist) readable by root only: what lies below may hold
/// setuid files copied from a context, which no other local user may reach.
fn private_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| Error::io("create", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io("chmod", dir, e))
}

/// The build context as bind mounts see it: made on first use (a copy of the filtered
/// context under the build's work dir), shared read-only by every step of the build,
/// removed when dropped.
pub(crate) struct ContextView {
    dir: PathBuf,
    made: Mutex<Option<PathBuf>>,
}

impl ContextView {
    /// A view that will live in a new directory under `work_root`.
    pub(crate) fn new(work_root: &Path) -> ContextView {
        ContextView { dir: work_root.join(format!("ctxview-{}", berth_base::new_id())), made: Mutex::new(None) }
    }

    /// The root of the view of `context`, copying it there the first time.
    pub(crate) fn root(&self, context: &dyn SourceRoot) -> Result<PathBuf, Error> {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(root) = &*made {
            return Ok(root.clone());
        }
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        private_dir(&self.dir)?;
        let root = self.dir.join("root");
        std::fs::create_dir(&root).map_err(|e| Error::io("create", &root, e))?;
        let sources = context.visible()?;
        crate::copy::copy_into(&sources, "/", "/", &root, CopyOpts::default())?;
        *made = Some(root.clone());
        Ok(root)
    }
}

impl Drop for ContextView {
    fn drop(&mut self) {
        // Best effort: a leftover directory under the work root is swept with it.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The writable copies one RUN step's `rw` bind mounts use: an overlay over each source
/// directory (a copy for a single file), unmounted and removed when dropped, so that
/// nothing the step writes there outlives it.
#[derive(Default)]
pub(crate) struct StepScratch {
    dirs: Vec<PathBuf>,
}

impl StepScratch {
    /// A writable stand-in for `source` (a directory or a file), made under `work_root`.
    pub(crate) fn writable(&mut self, work_root: &Path, source: &Path) -> Result<PathBuf, Error> {
        std::fs::create_dir_all(work_root).map_err(|e| Error::io("create", work_root, e))?;
        let dir = work_root.join(format!("bind-{}", berth_base::new_id()));
        private_dir(&dir)?;
        self.dirs.push(dir.clone());
        let meta = std::fs::metadata(source).map_err(|e| Error::io("stat", source, e))?;
        if !meta.is_dir() {
            let copy = dir.join("file");
            std::fs::copy(source, &copy).map_err(|e| Error::io("copy", source, e))?;
            return Ok(copy);
        }
        // `rootfs` as in a step root, so the daemon's start-up sweep of builder/ unmounts a
        // copy a crash left behind.
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).map_err(|e| Error::io("create", d, e))?;
        }
        // The upper dir's root takes the source's mode and owner, as a copy-up would.
        std::fs::set_permissions(&upper, meta.permissions()).map_err(|e| Error::io("chmod", &upper, e))?;
        {
            use std::os::unix::fs::MetadataExt;
            std::os::unix::fs::chown(&upper, Some(meta.uid()), Some(meta.gid()))
                .map_err(|e| Error::io("chown", &upper, e))?;
        }
        // Each directory is named by an fd of ours, so no path can smuggle overlay's
        // `,` and `:` separators into the options.
        let open = |p: &Path| {
            rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| Error::io("open", p, e.into()))
        };
        let fds: Vec<OwnedFd> = [source, &upper, &work].into_iter().map(open).collect::<Result<_, _>>()?;
        let name = |fd: &OwnedFd| format!("/proc/self/fd/{}", fd.as_raw_fd());
        let opts = format!("lowerdir={},upperdir={},workdir={}", name(&fds[0]), name(&fds[1]), name(&fds[2]));
        let data = std::ffi::CString::new(opts)
            .map_err(|_| Error::io("mount overlay at", &merged, std::io::ErrorKind::InvalidInput.into()))?;
        rustix::mount::mount("overlay", &merged, "overlay", MountFlags::empty(), data.as_c_str())
            .map_err(|e| Error::io("mount overlay at", &merged, e.into()))?;
        Ok(merged)
    }
}

impl Drop for StepScratch {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let merged = dir.join("rootfs");
            match rustix::mount::unmount(&merged, UnmountFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => {}
                // Still pinned by a late process: detach, the kernel finishes later.
                Err(_) => {
                    let _ = rustix::mount::unmount(&merged, UnmountFlags::DETACH);
                }
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
