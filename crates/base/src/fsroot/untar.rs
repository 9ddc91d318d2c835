//! Tar streams unpacked inside a root: the one extractor behind image layers (import, pull,
//! load), uploaded build contexts, ADD's local archives and, later, `docker cp`.
//!
//! Every entry is created with `*at` calls in a parent directory opened with openat2
//! (`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`), so `..` and symlinks — in the tar or already
//! in the root, absolute or relative — resolve as if the root were `/`, and the kernel, not a
//! check we could race, keeps every write inside it. The last component is never followed
//! (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`): an entry replaces a symlink, it is not written
//! through it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::open_at_root;
use super::path::{Escape, join_components, root_components};
use crate::Error;

/// The OCI whiteout prefix: `.wh.x` in a layer deletes `x` from the layers below.
pub const WH_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker: the directory hides everything below it.
pub const WH_OPAQUE: &str = ".wh..wh..opq";
/// The overlayfs xattr that marks a directory opaque.
pub const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// Nested dangling symlinks followed while creating parents, as the kernel's own limit.
const MAX_LINK_DEPTH: u32 = 40;

/// What to do with character and block devices and FIFOs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Devices {
    /// A tar from outside must not hand containers a host device (e.g. the host's disk):
    /// device nodes are an error; FIFOs and the 0/0 character device (an overlay whiteout)
    /// are created.
    Refuse,
    /// Left out, FIFOs too (an uploaded build context: COPY has nothing to do with them).
    Skip,
    /// Created as the tar describes them (ADD of the user's own archive, as Docker does).
    Create,
}

/// How an entry meets what is already at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Docker's layer rules: a later entry replaces whatever is there (a directory with all
    /// it holds) unless both are directories; a symlink is never merged through; a parent
    /// behind a dangling symlink is refused; an entry for the root itself (`./`) gives the
    /// root its metadata.
    Replace,
    /// Copy rules (ADD, contexts, cp): directories merge, and so do symlinks to directories
    /// inside the root (`/lib -> usr/lib`); a non-directory never replaces a directory; a
    /// parent behind a dangling symlink is created where the link points, inside the root;
    /// the entry for the root is skipped, so the destination keeps its metadata.
    Merge,
}

/// How [`unpack_tar`] treats a tar. [`TarOptions::layer`] and [`TarOptions::copy`] are the
/// two sets of rules in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarOptions {
    /// What is being unpacked, for messages (`layer`, `build context`, `archive`).
    pub label: &'static str,
    /// A name or hard-link target with `..` above the tar's root.
    pub escape: Escape,
    /// How entries meet existing ones.
    pub overwrite: Overwrite,
    /// Turn OCI whiteouts into overlayfs ones (`.wh.x` → a 0/0 character device `x`,
    /// `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory). Otherwise such names
    /// are ordinary files.
    pub whiteouts: bool,
    /// Apply `SCHILY.xattr.*` records (never `trusted.overlay.*`, which would let a tar
    /// forge opaque directories or redirects).
    pub xattrs: bool,
    /// Device nodes and FIFOs.
    pub devices: Devices,
    /// Owner for every entry and created parent instead of the tar's.
    pub owner: Option<(u32, u32)>,
    /// A header field (mode, owner, time) that does not decode, or an entry type with no
    /// meaning here, is an error; otherwise the field reads as a default (mode 0644, owner 0,
    /// time 0) and the entry is left out, as ADD has always read them.
    pub strict_headers: bool,
    /// The most the regular files may add up to, counted as the tar declares their sizes
    /// (a sparse file counts its full length, holes included): what the files weigh when
    /// read back (export, commit, cp), which is what a small hostile tar amplifies. `None`
    /// is no limit; the image store sets the daemon's `max-layer-size` here.
    pub max_size: Option<u64>,
    /// A directory entry never replaces an existing non-directory (Docker's
    /// `noOverwriteDirNonDir` for `docker cp`); with [`Overwrite::Merge`] the reverse is
    /// refused anyway.
    pub keep_non_dirs: bool,
}

impl TarOptions {
    /// An image layer from outside (import, pull, load): Docker's layer rules, whiteouts to
    /// overlay form, xattrs kept, `..` above the root and device nodes refused.
    pub fn layer() -> TarOptions {
        TarOptions {
            label: "layer",
            escape: Escape::Reject,
            overwrite: Overwrite::Replace,
            whiteouts: true,
            xattrs: true,
            devices: Devices::Refuse,
            owner: None,
            strict_headers: true,
            max_size: None,
            keep_non_dirs: false,
        }
    }

    /// Files copied into a root (a build context, ADD's archives, cp): copy rules, `..`
    /// clamped at the root, whiteouts and xattrs ignored, owners from `owner` or the tar.
    pub fn copy(label: &'static str, owner: Option<(u32, u32)>, devices: Devices) -> TarOptions {
        TarOptions {
            label,
            escape: Escape::Clamp,
            overwrite: Overwrite::Merge,
            whiteouts: false,
            xattrs: false,
            devices,
            owner,
            strict_headers: false,
            max_size: None,
            keep_non_dirs: false,
        }
    }
}

/// What unpacking found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Sum of regular file sizes (hard links counted once), like Docker's layer size.
    pub files_size: u64,
}

/// The chunk size in which sparse files are written: a chunk of zeros becomes a hole.
const SPARSE_CHUNK: usize = 64 * 1024;

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Unpacks the tar read from `src` into the directory `dest` (an absolute path inside the
/// root `root`, `/` for the root itself; `..` in it stops at the root). Hard-link targets
/// are names in the same tar, so they resolve below `dest`; symlinks resolve inside `root`.
/// On error, what was unpacked so far stays: callers unpack into a directory they can
/// throw away.
pub fn unpack_tar(src: &mut dyn Read, root: &impl AsFd, dest: &str, opts: &TarOptions) -> Result<Unpacked, Error> {
    let root = root.as_fd();
    let label = opts.label;
    let dest_comps = root_components(Path::new(dest), Escape::Clamp).unwrap_or_default();
    let follow_dangling = opts.overwrite == Overwrite::Merge;
    let mut out = Unpacked::default();
    let mut dir_times: Vec<(Vec<OsString>, i64)> = Vec::new();
    let mut archive = tar::Archive::new(src);
    let mut buf = vec![0u8; 128 * 1024];
    for entry in archive.entries().map_err(read_err(label))? {
        let mut entry = entry.map_err(read_err(label))?;
        let etype = entry.header().entry_type();
        if matches!(etype, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            continue;
        }
        let raw = PathBuf::from(OsStr::from_bytes(&entry.path_bytes()));
        let rel = root_components(&raw, opts.escape).ok_or_else(|| Error::Escape { label, path: raw.clone() })?;
        let meta = header_meta(&mut entry, opts)?;
        let mut comps = dest_comps.clone();
        comps.extend(rel.iter().cloned());
        let shown = join_components(&comps);

        if rel.is_empty() {
            // The tar's root (`./`).
            if opts.overwrite == Overwrite::Merge {
                continue;
            }
            if etype != tar::EntryType::Directory {
                return Err(Error::RootEntry { label, path: raw });
            }
            let fd = make_dirs(root, &comps, opts.owner, follow_dangling, 0)?;
            let fd = reopen_dir(&fd, &shown)?;
            set_meta_fd(&fd, &meta, &shown)?;
            dir_times.push((comps, meta.mtime));
            continue;
        }
        let Some((name, parent)) = comps.split_last() else { continue };
        let parent_fd = make_dirs(root, parent, opts.owner, follow_dangling, 0)?;

        if opts.whiteouts && whiteout(&parent_fd, name, &raw, &shown, label)? {
            continue;
        }

        use tar::EntryType as T;
        let known = matches!(
            etype,
            T::Regular
                | T::Continuous
                | T::GNUSparse
                | T::Directory
                | T::Symlink
                | T::Link
                | T::Char
                | T::Block
                | T::Fifo
        );
        if !known {
            if opts.strict_headers {
                return Err(Error::EntryType { label, kind: format!("{etype:?}"), path: raw });
            }
            continue;
        }
        match etype {
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => match opts.devices {
                Devices::Skip => continue,
                Devices::Refuse if etype == tar::EntryType::Block => {
                    return Err(Error::Device { label, path: shown });
                }
                Devices::Refuse if etype == tar::EntryType::Char && device_number(&entry, label)? != (0, 0) => {
                    return Err(Error::Device { label, path: shown });
                }
                _ => {}
            },
            _ => {}
        }

        let is_dir = etype == tar::EntryType::Directory;
        let slot = clear_slot(root, &parent_fd, name, &comps, is_dir, opts, &shown)?;
        let name = name.as_os_str();
        match etype {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent_fd,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(Error::fs("create", &shown))?;
                let mut f = File::from(fd);
                let size = entry.size();
                if let Some(max) = opts.max_size
                    && out.files_size.saturating_add(size) > max
                {
                    return Err(Error::TooLarge { label, limit: max });
                }
                // A GNU sparse file's holes stay holes: the tar reader hands them over as
                // zeros, and chunks of zeros are seeked over rather than written (as Go's
                // tar reader does for Docker), so a 10 KB tar cannot write 4 GB of zeros.
                let sparse = etype == tar::EntryType::GNUSparse;
                let mut written = 0;
                loop {
                    let n = entry.read(&mut buf).map_err(read_err(label))?;
                    if n == 0 {
                        break;
                    }
                    if sparse {
                        for chunk in buf[..n].chunks(SPARSE_CHUNK) {
                            if all_zero(chunk) {
                                f.seek(SeekFrom::Current(chunk.len() as i64)).map_err(Error::fs("seek", &shown))?;
                            } else {
                                f.write_all(chunk).map_err(Error::fs("write", &shown))?;
                            }
                        }
                    } else {
                        f.write_all(&buf[..n]).map_err(Error::fs("write", &shown))?;
                    }
                    written += n as u64;
                }
                if written < size {
                    // The entry's data stops short of its header's size.
                    return Err(read_err(label)(io::ErrorKind::UnexpectedEof.into()));
                }
                if sparse {
                    // A trailing hole: the length comes from the size, not from a write.
                    f.set_len(written).map_err(Error::fs("truncate", &shown))?;
                }
                out.files_size += written;
                set_meta_fd(&f, &meta, &shown)?;
                rustix::fs::futimens(&f, &times(meta.mtime)).map_err(Error::fs("utimes", &shown))?;
            }
            tar::EntryType::Directory => {
                if slot == Slot::ThroughSymlink {
                    continue;
                }
                if slot == Slot::Empty {
                    rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o700))
                        .map_err(Error::fs("mkdir", &shown))?;
                }
                let fd = rustix::fs::openat(
                    &parent_fd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(Error::fs("open", &shown))?;
                set_meta_fd(&fd, &meta, &shown)?;
                dir_times.push((comps.clone(), meta.mtime));
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| no_target(label, "symlink", &shown))?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), &parent_fd, name)
                    .map_err(Error::fs("symlink", &shown))?;
                chown_at(&parent_fd, name, &meta).map_err(Error::fs("chown", &shown))?;
                rustix::fs::utimensat(&parent_fd, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(Error::fs("utimes", &shown))?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| no_target(label, "hardlink", &shown))?;
                let target = PathBuf::from(OsStr::from_bytes(&target));
                link_in_root(root, &dest_comps, &target, &parent_fd, name, &shown, opts)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match etype {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    // Checked above where it matters; elsewhere unreadable numbers are 0, as
                    // ADD has always read them.
                    tar::EntryType::Char => {
                        let (ma, mi) = device_number(&entry, label).unwrap_or((0, 0));
                        (FileType::CharacterDevice, rustix::fs::makedev(ma, mi))
                    }
                    _ => {
                        let (ma, mi) = device_number(&entry, label).unwrap_or((0, 0));
                        (FileType::BlockDevice, rustix::fs::makedev(ma, mi))
                    }
                };
                rustix::fs::mknodat(&parent_fd, name, ft, Mode::from_raw_mode(meta.mode), dev)
                    .map_err(Error::fs("mknod", &shown))?;
                chown_at(&parent_fd, name, &meta).map_err(Error::fs("chown", &shown))?;
                // Just created by us, so it cannot have become a symlink.
                rustix::fs::chmodat(&parent_fd, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                    .map_err(Error::fs("chmod", &shown))?;
                rustix::fs::utimensat(&parent_fd, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(Error::fs("utimes", &shown))?;
            }
            // Sorted out above.
            _ => {}
        }
    }
    // Creating children bumps a directory's mtime, so directories get theirs last. One
    // that a later entry replaced is no longer a directory to give a time to.
    for (comps, mtime) in dir_times.iter().rev() {
        let p = join_components(comps);
        let Ok(fd) = open_at_root(root, &p, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW) else {
            continue;
        };
        rustix::fs::futimens(&fd, &times(*mtime)).map_err(Error::fs("utimes", &p))?;
    }
    Ok(out)
}

/// Handles `name` if it is a whiteout; false if it is an ordinary name.
fn whiteout(parent: &OwnedFd, name: &OsStr, raw: &Path, shown: &Path, label: &'static str) -> Result<bool, Error> {
    let bytes = name.as_bytes();
    if bytes == WH_OPAQUE.as_bytes() {
        let dir = reopen_dir(parent, shown)?;
        rustix::fs::fsetxattr(&dir, OVERLAY_OPAQUE, b"y", XattrFlags::empty()).map_err(Error::fs("setxattr", shown))?;
        return Ok(true);
    }
    let Some(target) = bytes.strip_prefix(WH_PREFIX.as_bytes()) else { return Ok(false) };
    if target.starts_with(WH_PREFIX.as_bytes()) || target.is_empty() {
        // Other `.wh..wh.` names are AUFS bookkeeping with no overlay meaning.
        return Ok(true);
    }
    if target == b".." || target == b"." {
        return Err(Error::Escape { label, path: raw.to_path_buf() });
    }
    let target = OsStr::from_bytes(target);
    remove_all_at(parent, target).map_err(Error::fs("remove", shown))?;
    rustix::fs::mknodat(parent, target, FileType::CharacterDevice, Mode::empty(), 0)
        .map_err(Error::fs("mknod", shown))?;
    Ok(true)
}

/// What [`clear_slot`] left at an entry's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Nothing: create the entry.
    Empty,
    /// A directory, for a directory entry: merge into it.
    Dir,
    /// A symlink to a directory inside the root, for a directory entry: merge through it.
    ThroughSymlink,
}

/// Makes room for an entry at `parent/name` under the `overwrite` rules.
fn clear_slot(
    root: impl AsFd,
    parent: &OwnedFd,
    name: &OsStr,
    comps: &[OsString],
    is_dir: bool,
    opts: &TarOptions,
    shown: &Path,
) -> Result<Slot, Error> {
    let overwrite = opts.overwrite;
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Slot::Empty),
        Err(e) => return Err(Error::fs("stat", shown)(e)),
    };
    let ft = FileType::from_raw_mode(st.st_mode);
    if ft == FileType::Directory {
        if is_dir {
            return Ok(Slot::Dir);
        }
        if overwrite == Overwrite::Merge {
            return Err(Error::ReplaceDir { path: shown.to_path_buf() });
        }
    }
    if ft == FileType::Symlink
        && is_dir
        && overwrite == Overwrite::Merge
        && open_at_root(root, &join_components(comps), OFlags::PATH | OFlags::DIRECTORY).is_ok()
    {
        return Ok(Slot::ThroughSymlink);
    }
    if is_dir && opts.keep_non_dirs {
        return Err(Error::ReplaceNonDir { path: shown.to_path_buf() });
    }
    remove_all_at(parent, name).map_err(Error::fs("remove", shown))?;
    Ok(Slot::Empty)
}

/// Hard-links `parent/name` to `target`, a name in the tar (so below `dest`). The target's
/// last component is not followed: a link to a symlink is a second name for the symlink.
fn link_in_root(
    root: impl AsFd,
    dest: &[OsString],
    target: &Path,
    parent: &OwnedFd,
    name: &OsStr,
    shown: &Path,
    opts: &TarOptions,
) -> Result<(), Error> {
    let label = opts.label;
    let rel = root_components(target, opts.escape).ok_or_else(|| Error::Escape { label, path: target.into() })?;
    let not_found = || Error::LinkTarget { label, target: target.to_path_buf() };
    let mut tcomps = dest.to_vec();
    tcomps.extend(rel);
    if tcomps.len() == dest.len() {
        return Err(not_found());
    }
    let Some((tname, tparent)) = tcomps.split_last() else { return Err(not_found()) };
    let tdir = match open_at_root(root, &join_components(tparent), OFlags::PATH | OFlags::DIRECTORY) {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Err(not_found()),
        Err(e) => return Err(Error::fs("open", target)(e)),
    };
    match rustix::fs::linkat(&tdir, tname.as_os_str(), parent, name, AtFlags::empty()) {
        Ok(()) => Ok(()),
        Err(Errno::NOENT) => Err(not_found()),
        Err(e) => Err(Error::fs("link", shown)(e)),
    }
}

/// `mkdir -p` of `path` (absolute or relative to the root; `..` stops at the root) inside
/// `root`, returning an `O_PATH` descriptor of the directory. Created directories are 0755
/// and belong to `owner` (else to the caller); symlinks on the way resolve inside the root.
/// A dangling symlink on the way is followed, creating what it points to inside the root,
/// when `follow_dangling` (as `mkdir -p` through it would), and an error otherwise.
pub fn create_dirs(
    root: &impl AsFd,
    path: &str,
    owner: Option<(u32, u32)>,
    follow_dangling: bool,
) -> Result<OwnedFd, Error> {
    let comps = root_components(Path::new(path), Escape::Clamp).unwrap_or_default();
    make_dirs(root.as_fd(), &comps, owner, follow_dangling, 0)
}

/// [`create_dirs`] of components, `depth` dangling symlinks deep.
fn make_dirs(
    root: impl AsFd,
    comps: &[OsString],
    owner: Option<(u32, u32)>,
    follow_dangling: bool,
    depth: u32,
) -> Result<OwnedFd, Error> {
    let root = root.as_fd();
    let full = join_components(comps);
    let flags = OFlags::PATH | OFlags::DIRECTORY;
    match open_at_root(root, &full, flags) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => {}
        Err(e) => return Err(Error::fs("open", &full)(e)),
    }
    if depth > MAX_LINK_DEPTH {
        return Err(Error::fs("create", &full)(Errno::LOOP));
    }
    let mut fd = open_at_root(root, Path::new("."), flags).map_err(Error::fs("open", "."))?;
    for (i, comp) in comps.iter().enumerate() {
        let prefix = join_components(&comps[..=i]);
        match open_at_root(root, &prefix, flags) {
            Ok(f) => {
                fd = f;
                continue;
            }
            Err(Errno::NOENT) => {}
            Err(Errno::NOTDIR) => return Err(Error::ParentNotDir { path: full }),
            Err(e) => return Err(Error::fs("open", &prefix)(e)),
        }
        match rustix::fs::mkdirat(&fd, comp.as_os_str(), Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                let dfd = rustix::fs::openat(
                    &fd,
                    comp.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(Error::fs("open", &prefix))?;
                if let Some((u, g)) = owner {
                    rustix::fs::fchown(&dfd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                        .map_err(Error::fs("chown", &prefix))?;
                }
                // Not through the umask.
                rustix::fs::fchmod(&dfd, Mode::from_raw_mode(0o755)).map_err(Error::fs("chmod", &prefix))?;
            }
            Err(Errno::EXIST) => {
                // A symlink to nothing (or something raced us, which the open below sorts out).
                let st = rustix::fs::statat(&fd, comp.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(Error::fs("stat", &prefix))?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    if !follow_dangling {
                        return Err(Error::DanglingParent { path: full, link: prefix });
                    }
                    let t = rustix::fs::readlinkat(&fd, comp.as_os_str(), Vec::new())
                        .map_err(Error::fs("readlink", &prefix))?;
                    let t = Path::new(OsStr::from_bytes(t.as_bytes()));
                    let abs = if t.is_absolute() { t.to_path_buf() } else { join_components(&comps[..i]).join(t) };
                    let tcomps = root_components(&abs, Escape::Clamp).unwrap_or_default();
                    make_dirs(root, &tcomps, owner, follow_dangling, depth + 1)?;
                }
            }
            Err(e) => return Err(Error::fs("mkdir", &prefix)(e)),
        }
        fd = match open_at_root(root, &prefix, flags) {
            Ok(f) => f,
            Err(Errno::NOTDIR) => return Err(Error::ParentNotDir { path: full }),
            Err(e) => return Err(Error::fs("open", &prefix)(e)),
        };
    }
    Ok(fd)
}

/// A readable descriptor of the directory behind an `O_PATH` one (for xattrs and times).
fn reopen_dir(fd: &OwnedFd, shown: &Path) -> Result<OwnedFd, Error> {
    rustix::fs::openat(fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(Error::fs("open", shown))
}

/// Removes `name` in `dir` whatever it is, recursing into directories without following
/// symlinks. Missing is fine.
pub fn remove_all_at(dir: &impl AsFd, name: &OsStr) -> Result<(), Errno> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return rustix::fs::unlinkat(dir, name, AtFlags::empty());
    }
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    for n in names {
        remove_all_at(&fd, &n)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// A read error of the tar stream: a short read is a truncated tar, anything else a bad one.
fn read_err(label: &'static str) -> impl Fn(io::Error) -> Error {
    move |source| {
        // The tar crate reports a short read as a plain error with this text.
        let text = source.to_string();
        if source.kind() == io::ErrorKind::UnexpectedEof
            || text.contains("failed to read entire block")
            || text.contains("unexpected EOF")
        {
            Error::TarTruncated { label, source }
        } else {
            // The tar reader quotes the bytes it could not read (a garbage "header" is
            // binary): the message a client shows must stay printable text.
            let source = io::Error::new(source.kind(), printable(&text));
            Error::TarHeader { label, source }
        }
    }
}

/// `s` with every character other than printable ASCII escaped (`\u{fffd}`, `\n`, `\0`…), so
/// bytes quoted from a binary stream cannot reach a terminal as control sequences.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// Zeros to compare sparse chunks with.
static ZEROS: [u8; SPARSE_CHUNK] = [0; SPARSE_CHUNK];

/// True when `b` (at most [`SPARSE_CHUNK`] bytes) holds only zero bytes: a byte-slice
/// comparison is a `memcmp`, fast even in a debug build.
fn all_zero(b: &[u8]) -> bool {
    b.len() <= ZEROS.len() && b == &ZEROS[..b.len()]
}

fn bad_header(label: &'static str, msg: String) -> Error {
    Error::TarHeader { label, source: io::Error::new(io::ErrorKind::InvalidData, msg) }
}

fn no_target(label: &'static str, what: &str, shown: &Path) -> Error {
    bad_header(label, format!("{what} {} has no target", shown.display()))
}

fn device_number<R: Read>(entry: &tar::Entry<'_, R>, label: &'static str) -> Result<(u32, u32), Error> {
    let h = entry.header();
    let major = h.device_major().map_err(read_err(label))?.unwrap_or(0);
    let minor = h.device_minor().map_err(read_err(label))?.unwrap_or(0);
    Ok((major, minor))
}

fn header_meta<R: Read>(entry: &mut tar::Entry<'_, R>, opts: &TarOptions) -> Result<Meta, Error> {
    let label = opts.label;
    let strict = opts.strict_headers;
    // A field that does not decode: an error, or `default` when headers are read leniently.
    let field = |r: io::Result<u64>, default: u64| match r {
        Ok(v) => Ok(v),
        Err(_) if !strict => Ok(default),
        Err(e) => Err(read_err(label)(e)),
    };
    let h = entry.header();
    let mode = field(h.mode().map(u64::from), 0o644)? as u32 & 0o7777;
    let mtime = field(h.mtime(), 0)?;
    let (uid, gid) = match opts.owner {
        Some(o) => o,
        None => {
            let to_u32 = |v: u64, what: &str| match u32::try_from(v) {
                Ok(v) => Ok(v),
                Err(_) if !strict => Ok(v as u32),
                Err(_) => Err(bad_header(label, format!("{what} {v} out of range"))),
            };
            (to_u32(field(h.uid(), 0)?, "uid")?, to_u32(field(h.gid(), 0)?, "gid")?)
        }
    };
    let mut xattrs = Vec::new();
    if opts.xattrs
        && let Some(exts) = entry.pax_extensions().map_err(read_err(label))?
    {
        for ext in exts {
            let ext = ext.map_err(read_err(label))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.")
                && !name.starts_with("trusted.overlay.")
            {
                xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta { mode, uid, gid, mtime: i64::try_from(mtime).unwrap_or(i64::MAX), xattrs })
}

/// Applies owner, mode and xattrs through a descriptor of the node itself.
fn set_meta_fd(fd: &impl AsFd, m: &Meta, path: &Path) -> Result<(), Error> {
    // chown first: it clears setuid/setgid bits that chmod then sets.
    rustix::fs::fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid))).map_err(Error::fs("chown", path))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode)).map_err(Error::fs("chmod", path))?;
    for (k, v) in &m.xattrs {
        match rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()) {
            // Filesystems without xattr support of that namespace: skip, as Docker does.
            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
            Err(e) => return Err(Error::fs("setxattr", path)(e)),
        }
    }
    Ok(())
}

/// Gives a just-created entry (never followed, symlinks included) its owner.
fn chown_at(dir: &OwnedFd, name: &OsStr, m: &Meta) -> Result<(), Errno> {
    rustix::fs::chownat(dir, name, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)), AtFlags::SYMLINK_NOFOLLOW)
}

fn times(secs: i64) -> Timestamps {
    let t = Timespec { tv_sec: secs, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::process::Command;

    use super::*;

    /// A GNU tar (which the tar crate cannot write) holding `f`: `len` bytes, all hole but
    /// for "data" at 1 MiB.
    fn sparse_tar(dir: &Path, len: u64) -> Vec<u8> {
        let f = dir.join("f");
        let file = File::create(&f).unwrap();
        file.set_len(len).unwrap();
        std::os::unix::fs::FileExt::write_at(&file, b"data", 1 << 20).unwrap();
        let out = Command::new("tar").arg("--sparse").arg("-cf").arg("-").arg("-C").arg(dir).arg("f").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::remove_file(&f).unwrap();
        out.stdout
    }

    #[test]
    fn sparse_files_keep_their_holes() {
        let dir = tempfile::tempdir().unwrap();
        let tar = sparse_tar(dir.path(), 1 << 30);
        assert!(tar.len() < 64 * 1024, "GNU tar wrote {} bytes", tar.len());
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let fd = super::super::open_root(&root).unwrap();
        let u = unpack_tar(&mut &tar[..], &fd, "/", &TarOptions::layer()).unwrap();
        assert_eq!(u.files_size, 1 << 30);
        let md = std::fs::metadata(root.join("f")).unwrap();
        assert_eq!(md.len(), 1 << 30);
        assert!(md.blocks() * 512 < 1 << 20, "{} bytes on disk", md.blocks() * 512);
        let mut data = [0u8; 4];
        std::os::unix::fs::FileExt::read_exact_at(&File::open(root.join("f")).unwrap(), &mut data, 1 << 20).unwrap();
        assert_eq!(&data, b"data");
    }

    #[test]
    fn files_past_the_size_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tar = sparse_tar(dir.path(), 1 << 30);
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let fd = super::super::open_root(&root).unwrap();
        let opts = TarOptions { max_size: Some(1 << 29), ..TarOptions::layer() };
        let e = unpack_tar(&mut &tar[..], &fd, "/", &opts).unwrap_err();
        assert!(matches!(e, Error::TooLarge { limit: 536870912, .. }), "{e}");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        // Refused before any data is written.
        assert!(std::fs::metadata(root.join("f")).map(|m| m.len()).unwrap_or(0) == 0);
        let opts = TarOptions { max_size: Some(1 << 30), ..TarOptions::layer() };
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::create_dir(&root).unwrap();
        let fd = super::super::open_root(&root).unwrap();
        unpack_tar(&mut &tar[..], &fd, "/", &opts).unwrap();
    }

    #[test]
    fn garbage_is_described_in_printable_text() {
        let mut garbage = vec![0u8; 1024];
        for (i, b) in garbage.iter_mut().enumerate() {
            *b = (i * 151 % 256) as u8;
        }
        let dir = tempfile::tempdir().unwrap();
        let fd = super::super::open_root(dir.path()).unwrap();
        let e = unpack_tar(&mut &garbage[..], &fd, "/", &TarOptions::layer()).unwrap_err().to_string();
        assert!(e.starts_with("invalid tar header in layer: "), "{e}");
        assert!(e.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{e:?}");
        assert_eq!(printable("a\u{1b}[2J\n\u{fffd}"), "a\\u{1b}[2J\\n\\u{fffd}");
    }
}
