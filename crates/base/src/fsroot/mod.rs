//! The one safe-path layer: path operations confined to a root directory (a container
//! rootfs, a layer being unpacked, a build context), the lexical `clean_path`, and the tar
//! extractor that import, pull, load, ADD and build contexts (and `cp`) share. Resolution
//! uses openat2(2) with `RESOLVE_IN_ROOT`, so `..` and symlinks — absolute or relative — are
//! resolved as if the root were `/`, and the kernel guarantees nothing outside it is ever
//! reached, without check-then-use races.

mod pack;
mod path;
mod untar;

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};

pub use pack::{follow_symlinks, lstat_in_root, pack_tar};
pub use path::{Escape, Lexical, clean_path, join_components, lexical, root_components};
pub use untar::{
    Devices, OVERLAY_OPAQUE, Overwrite, TarOptions, Unpacked, WH_OPAQUE, WH_PREFIX, create_dirs, remove_all_at,
    unpack_tar,
};

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Opens `path` (interpreted inside `root`) with `flags`.
pub fn open_in_root(root: &impl AsFd, path: &str, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    open_at2(root.as_fd(), Path::new(path), flags, mode).map_err(io::Error::from)
}

/// [`open_in_root`] for a path of any bytes, keeping the OS error.
pub(crate) fn open_at_root(root: impl AsFd, path: &Path, flags: OFlags) -> Result<OwnedFd, rustix::io::Errno> {
    open_at2(root.as_fd(), path, flags, Mode::empty())
}

fn open_at2(root: std::os::fd::BorrowedFd<'_>, path: &Path, flags: OFlags, mode: Mode) -> rustix::io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    loop {
        match rustix::fs::openat2(root, rel, flags | OFlags::CLOEXEC, mode, resolve_flags()) {
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Opens a directory to serve as a root for the other functions.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).map_err(io::Error::from)
}

/// Reads a whole file inside `root`.
pub fn read_in_root(root: &Path, path: &str) -> io::Result<Vec<u8>> {
    let r = open_root(root)?;
    let fd = open_in_root(&r, path, OFlags::RDONLY, Mode::empty())?;
    let mut buf = Vec::new();
    File::from(fd).read_to_end(&mut buf)?;
    Ok(buf)
}

/// `mkdir -p` inside `root`: each missing component is created (mode 0755, owned by the
/// caller), symlinks along the way are followed but stay inside the root.
pub fn mkdir_all_in_root(root: &Path, path: &str) -> io::Result<()> {
    mkdir_all_in_root_owned(root, path, None)
}

/// `mkdir -p` inside `root` whose newly made components belong to `owner` (uid, gid), as
/// BuildKit makes a `WORKDIR` under a `USER`; components that already exist keep theirs.
pub fn mkdir_all_in_root_owned(root: &Path, path: &str, owner: Option<(u32, u32)>) -> io::Result<()> {
    let r = open_root(root)?;
    let mut cur = String::new();
    for comp in Path::new(path).components() {
        let name = match comp {
            Component::Normal(n) => n.to_string_lossy().into_owned(),
            Component::ParentDir => {
                // Resolve `..` lexically against what we built so far; it cannot leave the root.
                if let Some(i) = cur.rfind('/') {
                    cur.truncate(i);
                } else {
                    cur.clear();
                }
                continue;
            }
            _ => continue,
        };
        let parent = open_in_root(&r, &cur, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        match rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                if let Some((uid, gid)) = owner {
                    // The entry was just made by us under an O_PATH parent inside the root:
                    // no symlink can stand there, and NOFOLLOW keeps it so.
                    rustix::fs::chownat(
                        &parent,
                        name.as_str(),
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )?;
                }
            }
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(&name);
        // Fails with ENOTDIR if an existing entry is a file, as mkdir -p does.
        open_in_root(&r, &cur, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_cannot_escape() {
        let dir = std::env::temp_dir().join(format!("berth-fsroot-{}", crate::id::new_id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(dir.join("secret"), b"host").unwrap();
        std::fs::write(root.join("secret"), b"inside").unwrap();
        std::os::unix::fs::symlink("/secret", root.join("etc/abs")).unwrap();
        std::os::unix::fs::symlink("../../../secret", root.join("etc/rel")).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        assert_eq!(read_in_root(&root, "/etc/abs").unwrap(), b"inside");
        assert_eq!(read_in_root(&root, "etc/rel").unwrap(), b"inside");
        assert_eq!(read_in_root(&root, "../secret").unwrap(), b"inside");
        mkdir_all_in_root(&root, "/up/app/data").unwrap();
        assert!(root.join("app/data").is_dir(), "created inside the root, through the symlink");
        assert!(!dir.join("app").exists());
        std::fs::write(root.join("file"), b"x").unwrap();
        assert!(mkdir_all_in_root(&root, "/file/sub").is_err());
        // Only the components made now take the owner.
        mkdir_all_in_root_owned(&root, "/app/owned/deep", Some((1234, 5678))).unwrap();
        use std::os::unix::fs::MetadataExt;
        for p in ["app/owned", "app/owned/deep"] {
            let m = std::fs::metadata(root.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (1234, 5678), "{p}");
        }
        assert_eq!(std::fs::metadata(root.join("app")).unwrap().uid(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
