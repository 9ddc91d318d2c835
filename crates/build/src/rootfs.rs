//! Step roots: a build step's root filesystem mounted from a state's layers in a scratch
//! directory, its changes turned into a layer; and the read-only roots of stages and
//! images that `COPY --from` and `RUN --mount from=` read.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_base::Digest;
use berth_image::{ImageStore, Layer};

use crate::Error;

/// Mounts `layers` in a new scratch directory under `work_root`, runs `f` with that
/// directory and the mounted root, and turns the changes into a layer (None when nothing
/// changed). The scratch directory is always unmounted and removed.
pub(crate) fn with_root(
    images: &ImageStore,
    work_root: &Path,
    layers: &[Layer],
    f: impl FnOnce(&Path, &Path) -> Result<(), Error>,
) -> Result<Option<Layer>, Error> {
    let dir = work_root.join(berth_base::new_id());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    // Unmounted and removed however this ends, a panic in a step included (a daemon that
    // shuts down under a running build), so no root stays mounted behind it.
    let _scratch = Scratch { images, dir: &dir };
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    (|| {
        let rootfs = images.mount_layers(&diff_ids, &dir)?;
        let r = f(&dir, &rootfs);
        images.unmount_rootfs(&dir)?;
        r?;
        let upper = dir.join("upper");
        let lowers: Vec<PathBuf> = diff_ids.iter().rev().map(|d| images.snapshot_dir(d)).collect();
        prune_copied_up_dirs(&upper, Path::new(""), &lowers);
        let changed = std::fs::read_dir(&upper).map(|mut d| d.next().is_some()).unwrap_or(false);
        if !changed {
            return Ok(None);
        }
        Ok(Some(images.diff_layer(&dir)?))
    })()
}

/// A step's scratch directory, unmounted and removed when dropped.
struct Scratch<'a> {
    images: &'a ImageStore,
    dir: &'a Path,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.images.unmount_rootfs(self.dir);
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

/// Removes from a step's upper directory the directories overlayfs copied up only because
/// something was made below them and removed again (the mount stubs the daemon clears after
/// a RUN step): empty, not opaque, and with the mode, owner and modification time of the
/// same directory in the topmost lower layer (`lowers`, top first) that has the path. They
/// would otherwise put unchanged directories into the step's layer. Works bottom-up and
/// only on real directories of the upper dir (a symlink there is never followed). Returns
/// whether `rel` is empty afterwards.
fn prune_copied_up_dirs(upper: &Path, rel: &Path, lowers: &[PathBuf]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(upper.join(rel)) else { return false };
    let mut empty = true;
    for e in rd.flatten() {
        let child = rel.join(e.file_name());
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_dir || !prune_copied_up_dirs(upper, &child, lowers) {
            empty = false;
            continue;
        }
        let path = upper.join(&child);
        let mut flag = [0u8; 1];
        let opaque =
            rustix::fs::lgetxattr(&path, "trusted.overlay.opaque", &mut flag).is_ok_and(|n| n == 1 && flag[0] == b'y');
        let same_as_lower = std::fs::symlink_metadata(&path).ok().is_some_and(|m| {
            lowers.iter().find_map(|l| std::fs::symlink_metadata(l.join(&child)).ok()).is_some_and(|l| {
                l.is_dir()
                    && (l.mode(), l.uid(), l.gid(), l.mtime(), l.mtime_nsec())
                        == (m.mode(), m.uid(), m.gid(), m.mtime(), m.mtime_nsec())
            })
        });
        if opaque || !same_as_lower || std::fs::remove_dir(&path).is_err() {
            empty = false;
        }
    }
    empty
}

/// The root of `layers` (a stage's or image's, standing for `key`), mounted once per
/// build under `work_root` and shared by the steps that read it. `lock` serialises the
/// mounting, since stages run concurrently.
pub(crate) fn mount_read_only(
    images: &ImageStore,
    work_root: &Path,
    lock: &Mutex<()>,
    layers: &[Digest],
    key: &Digest,
) -> Result<PathBuf, Error> {
    let dir = work_root.join(format!("from-{}", key.hex()));
    let _one_at_a_time = lock.lock().unwrap_or_else(|p| p.into_inner());
    if !dir.join("rootfs").is_dir()
        || std::fs::read_dir(dir.join("rootfs")).map(|mut d| d.next().is_none()).unwrap_or(true)
    {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        images.mount_layers(layers, &dir)?;
    }
    Ok(dir.join("rootfs"))
}

/// Unmounts and removes the roots [`mount_read_only`] mounted under `work_root`.
pub(crate) fn cleanup(images: &ImageStore, work_root: &Path) {
    if let Ok(rd) = std::fs::read_dir(work_root) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("from-") {
                let _ = images.unmount_rootfs(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
