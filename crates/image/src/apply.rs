//! Layer application: a tar stream unpacked safely into a snapshot directory, with OCI
//! whiteouts turned into overlayfs ones (`.wh.x` → a 0/0 character device `x`,
//! `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory).
//!
//! Safety: every parent directory is opened with openat2(`RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS`), so symlinks and `..` resolve as if the snapshot were `/` and
//! the kernel, not a check we could race, keeps every write inside it. The last component
//! is never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`). `..` that would climb above the
//! root is rejected outright rather than clamped, as Docker does.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::Error;

/// The OCI whiteout prefix.
pub(crate) const WH_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
pub(crate) const WH_OPAQUE: &str = ".wh..wh..opq";
/// The overlayfs xattr that marks a directory opaque.
pub(crate) const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// What applying a layer found.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Sum of regular file sizes (hardlinks counted once), like Docker's layer size.
    pub files_size: u64,
}

fn bad_input(e: io::Error) -> Error {
    // The tar crate reports a short read as a plain error with this text.
    if e.kind() == io::ErrorKind::UnexpectedEof || e.to_string().contains("failed to read entire block") {
        Error::InvalidArgument("unexpected EOF in layer tar".into())
    } else {
        Error::InvalidArgument(format!("invalid tar header in layer: {e}"))
    }
}

fn errno(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> Error {
    let path = path.to_path_buf();
    move |e| Error::Io { op, path, source: e.into() }
}

/// Normalises a tar path into components below the root. Absolute paths are taken
/// relative to the root; `..` that would leave it is an error.
pub(crate) fn clean_path(raw: &Path) -> Result<Vec<OsString>, Error> {
    let mut out: Vec<OsString> = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err(Error::InvalidArgument(format!("path escapes the layer root: {}", raw.display())));
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

fn join(comps: &[OsString]) -> PathBuf {
    if comps.is_empty() { PathBuf::from(".") } else { comps.iter().collect() }
}

/// openat2 confined to `root`.
pub(crate) fn open_in(root: &impl AsFd, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let rel = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    loop {
        match rustix::fs::openat2(
            root,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Opens (creating 0755 dirs as needed) the directory `comps` inside `root`.
fn open_dir_creating(root: &OwnedFd, comps: &[OsString], flags: OFlags) -> Result<OwnedFd, Error> {
    let full = join(comps);
    match open_in(root, &full, flags | OFlags::DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => {}
        Err(e) => return Err(errno("open", &full)(e)),
    }
    for i in 0..comps.len() {
        let prefix = join(&comps[..=i]);
        match open_in(root, &prefix, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(_) => continue,
            Err(Errno::NOENT) => {
                let parent = open_in(root, &join(&comps[..i]), OFlags::PATH | OFlags::DIRECTORY)
                    .map_err(errno("open", &prefix))?;
                match rustix::fs::mkdirat(&parent, comps[i].as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    // A dangling symlink: following it to create its target is not worth
                    // the risk; no sane layer needs it.
                    Err(Errno::EXIST) => {
                        return Err(Error::InvalidArgument(format!(
                            "cannot create {}: {} is a symlink to a missing directory",
                            full.display(),
                            prefix.display()
                        )));
                    }
                    Err(e) => return Err(errno("mkdir", &prefix)(e)),
                }
            }
            Err(Errno::NOTDIR) => {
                return Err(Error::InvalidArgument(format!(
                    "cannot create {}: a parent is not a directory",
                    full.display()
                )));
            }
            Err(e) => return Err(errno("open", &prefix)(e)),
        }
    }
    open_in(root, &full, flags | OFlags::DIRECTORY).map_err(errno("open", &full))
}

/// Removes `name` in `dir` whatever it is, recursing into directories without following
/// symlinks.
pub(crate) fn remove_all_at(dir: &impl AsFd, name: &OsStr) -> Result<(), Errno> {
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

fn ts(secs: u64) -> Timestamps {
    let t = Timespec { tv_sec: secs.min(i64::MAX as u64) as i64, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn header_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta, Error> {
    let h = entry.header();
    let mode = h.mode().map_err(bad_input)? & 0o7777;
    let uid = h.uid().map_err(bad_input)?;
    let gid = h.gid().map_err(bad_input)?;
    let mtime = h.mtime().map_err(bad_input)?;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(bad_input)? {
        for ext in exts {
            let ext = ext.map_err(bad_input)?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                // Overlay's own xattrs would let a layer forge opaque dirs or redirects.
                if !name.starts_with("trusted.overlay.") {
                    xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    let to_u32 = |v: u64, what: &str| {
        u32::try_from(v)
            .map_err(|_| Error::InvalidArgument(format!("invalid tar header in layer: {what} {v} out of range")))
    };
    Ok(Meta { mode, uid: to_u32(uid, "uid")?, gid: to_u32(gid, "gid")?, mtime, xattrs })
}

/// Applies owner, mode and xattrs through an fd of the node itself.
fn set_meta_fd(fd: &impl AsFd, m: &Meta, path: &Path) -> Result<(), Error> {
    rustix::fs::fchown(fd, Some(uid(m.uid)), Some(gid(m.gid))).map_err(errno("chown", path))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode)).map_err(errno("chmod", path))?;
    for (k, v) in &m.xattrs {
        match rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()) {
            // Filesystems without xattr support of that namespace: skip, as Docker does.
            Ok(()) | Err(Errno::NOTSUP) | Err(Errno::PERM) => {}
            Err(e) => return Err(errno("setxattr", path)(e)),
        }
    }
    Ok(())
}

/// Gives a just-created entry (never followed, symlinks included) the tar's owner.
fn chown_entry<Fd: rustix::fd::AsFd>(dir: Fd, name: &std::ffi::OsStr, u: u32, g: u32) -> Result<(), Errno> {
    rustix::fs::chownat(dir, name, Some(uid(u)), Some(gid(g)), AtFlags::SYMLINK_NOFOLLOW)
}

fn uid(v: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(v)
}
fn gid(v: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(v)
}

/// Unpacks the tar read from `src` into the empty directory `root`.
/// Char and block devices other than the 0/0 whiteout are refused: a tarball from outside
/// must not be able to hand containers a host device (e.g. the host's disk) to open.
pub(crate) fn apply_tar(src: &mut dyn Read, root: &Path) -> Result<Applied, Error> {
    let root_fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(errno("open", root))?;
    let mut applied = Applied::default();
    let mut dir_times: Vec<(Vec<OsString>, u64)> = Vec::new();
    let mut archive = tar::Archive::new(src);
    let mut buf = vec![0u8; 128 * 1024];
    for entry in archive.entries().map_err(bad_input)? {
        let mut entry = entry.map_err(bad_input)?;
        let etype = entry.header().entry_type();
        if matches!(etype, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            continue;
        }
        let raw = entry.path().map_err(bad_input)?.into_owned();
        let comps = clean_path(&raw)?;
        let meta = header_meta(&mut entry)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            // The root itself ("./"): only a directory entry makes sense.
            if etype == tar::EntryType::Directory {
                let fd = open_in(&root_fd, Path::new("."), OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(errno("open", root))?;
                set_meta_fd(&fd, &meta, root)?;
                dir_times.push((Vec::new(), meta.mtime));
                continue;
            }
            return Err(Error::InvalidArgument(format!("invalid tar entry for the layer root: {}", raw.display())));
        };
        let shown = join(&comps);
        let name_bytes = name.as_bytes();

        // OCI whiteouts become overlay whiteouts.
        if name_bytes == WH_OPAQUE.as_bytes() {
            let dir = open_dir_creating(&root_fd, parent_comps, OFlags::RDONLY)?;
            rustix::fs::fsetxattr(&dir, OVERLAY_OPAQUE, b"y", XattrFlags::empty())
                .map_err(errno("setxattr", &shown))?;
            continue;
        }
        if let Some(target) = name_bytes.strip_prefix(WH_PREFIX.as_bytes()) {
            if target.starts_with(WH_PREFIX.as_bytes()) || target.is_empty() {
                // Other `.wh..wh.` names are AUFS bookkeeping with no overlay meaning.
                continue;
            }
            let target = OsStr::from_bytes(target);
            if target == ".." || target == "." {
                return Err(Error::InvalidArgument(format!("path escapes the layer root: {}", raw.display())));
            }
            let dir = open_dir_creating(&root_fd, parent_comps, OFlags::PATH)?;
            remove_all_at(&dir, target).map_err(errno("remove", &shown))?;
            rustix::fs::mknodat(&dir, target, FileType::CharacterDevice, Mode::empty(), 0)
                .map_err(errno("mknod", &shown))?;
            continue;
        }

        let dir = open_dir_creating(&root_fd, parent_comps, OFlags::PATH)?;
        // A later entry replaces an earlier one, except dir over dir, which merges.
        match rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if !(is_dir && etype == tar::EntryType::Directory) {
                    remove_all_at(&dir, name).map_err(errno("remove", &shown))?;
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(errno("stat", &shown)(e)),
        }

        match etype {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &dir,
                    name.as_os_str(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno("create", &shown))?;
                let mut f = File::from(fd);
                loop {
                    let n = entry.read(&mut buf).map_err(bad_input)?;
                    if n == 0 {
                        break;
                    }
                    f.write_all(&buf[..n]).map_err(Error::io("write", &shown))?;
                    applied.files_size += n as u64;
                }
                set_meta_fd(&f, &meta, &shown)?;
                rustix::fs::futimens(&f, &ts(meta.mtime)).map_err(errno("utimes", &shown))?;
            }
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&dir, name.as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(errno("mkdir", &shown)(e)),
                }
                let fd = rustix::fs::openat(
                    &dir,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno("open", &shown))?;
                set_meta_fd(&fd, &meta, &shown)?;
                dir_times.push((comps.clone(), meta.mtime));
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(bad_input)?.ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "invalid tar header in layer: symlink {} has no target",
                        shown.display()
                    ))
                })?;
                rustix::fs::symlinkat(target.as_os_str(), &dir, name.as_os_str()).map_err(errno("symlink", &shown))?;
                chown_entry(&dir, name.as_os_str(), meta.uid, meta.gid).map_err(errno("chown", &shown))?;
                rustix::fs::utimensat(&dir, name.as_os_str(), &ts(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno("utimes", &shown))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(bad_input)?
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "invalid tar header in layer: hardlink {} has no target",
                            shown.display()
                        ))
                    })?
                    .into_owned();
                let tcomps = clean_path(&target)?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(Error::InvalidArgument(format!("invalid hardlink target: {}", target.display())));
                };
                let tdir = match open_in(&root_fd, &join(tparent), OFlags::PATH | OFlags::DIRECTORY) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                        return Err(Error::InvalidArgument(format!(
                            "hardlink target not found in layer: {}",
                            target.display()
                        )));
                    }
                    Err(e) => return Err(errno("open", &target)(e)),
                };
                match rustix::fs::linkat(&tdir, tname.as_os_str(), &dir, name.as_os_str(), AtFlags::empty()) {
                    Ok(()) => {}
                    Err(Errno::NOENT) => {
                        return Err(Error::InvalidArgument(format!(
                            "hardlink target not found in layer: {}",
                            target.display()
                        )));
                    }
                    Err(e) => return Err(errno("link", &shown)(e)),
                }
            }
            tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
                let (ftype, dev) = match etype {
                    tar::EntryType::Fifo => (FileType::Fifo, 0),
                    tar::EntryType::Block => {
                        return Err(Error::InvalidArgument(format!(
                            "device nodes are not allowed in image layers: {}",
                            shown.display()
                        )));
                    }
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().map_err(bad_input)?.unwrap_or(0);
                        let minor = h.device_minor().map_err(bad_input)?.unwrap_or(0);
                        let is_whiteout = etype == tar::EntryType::Char && major == 0 && minor == 0;
                        if !is_whiteout {
                            return Err(Error::InvalidArgument(format!(
                                "device nodes are not allowed in image layers: {}",
                                shown.display()
                            )));
                        }
                        let ft = if etype == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                rustix::fs::mknodat(&dir, name.as_os_str(), ftype, Mode::from_raw_mode(meta.mode), dev)
                    .map_err(errno("mknod", &shown))?;
                chown_entry(&dir, name.as_os_str(), meta.uid, meta.gid).map_err(errno("chown", &shown))?;
                // Just created by us in a private directory, so it cannot have become a symlink.
                rustix::fs::chmodat(&dir, name.as_os_str(), Mode::from_raw_mode(meta.mode), AtFlags::empty())
                    .map_err(errno("chmod", &shown))?;
                rustix::fs::utimensat(&dir, name.as_os_str(), &ts(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(errno("utimes", &shown))?;
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "invalid tar header in layer: unsupported entry type {:?} for {}",
                    other,
                    shown.display()
                )));
            }
        }
    }
    // Creating children bumps a directory's mtime, so directories get theirs last.
    for (comps, mtime) in dir_times.iter().rev() {
        let p = join(comps);
        let fd = open_in(&root_fd, &p, OFlags::RDONLY | OFlags::DIRECTORY).map_err(errno("open", &p))?;
        rustix::fs::futimens(&fd, &ts(*mtime)).map_err(errno("utimes", &p))?;
    }
    Ok(applied)
}

/// Wraps `src` in the decompressor its magic bytes call for (gzip, zstd, or none).
pub(crate) fn decompress<'a>(src: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>, Error> {
    let mut peek = [0u8; 6];
    let mut n = 0;
    while n < peek.len() {
        match src.read(&mut peek[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad_input(e)),
        }
    }
    let head = peek[..n].to_vec();
    let chained = io::Cursor::new(head.clone()).chain(src);
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(chained)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::new(chained)
            .map_err(|e| Error::InvalidArgument(format!("invalid zstd stream: {e}")))?;
        Ok(Box::new(d))
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Err(Error::InvalidArgument("unsupported compression (bzip2/xz); use a plain, gzip or zstd tarball".into()))
    } else {
        Ok(Box::new(chained))
    }
}

/// A reader that copies every byte it reads into a writer (the blob being ingested).
pub(crate) struct Tee<'a, W: Write> {
    pub inner: &'a mut dyn Read,
    pub sink: &'a mut W,
    pub sink_err: Option<io::Error>,
}

impl<W: Write> Read for Tee<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let kind = e.kind();
            self.sink_err = Some(e);
            return Err(io::Error::new(kind, "writing the layer blob failed"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_confines() {
        assert_eq!(clean_path(Path::new("/a/./b/../c")).unwrap(), vec![OsString::from("a"), OsString::from("c")]);
        assert!(clean_path(Path::new("./")).unwrap().is_empty());
        assert!(clean_path(Path::new("a/../../etc/passwd")).is_err());
        let e = clean_path(Path::new("../../etc/passwd")).unwrap_err();
        assert_eq!(e.to_string(), "path escapes the layer root: ../../etc/passwd");
    }
}
