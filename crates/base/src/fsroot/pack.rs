//! Reading inside a root: `lstat` and symlink evaluation confined to the root, and the tar
//! writer behind `docker cp` out of a container, `GET /containers/{id}/archive` and
//! `export`.
//!
//! The start of a walk is resolved with openat2 (`RESOLVE_IN_ROOT`); below it every entry
//! is opened with `O_NOFOLLOW` relative to its parent's descriptor, so a symlink met on
//! the way is archived as a symlink and never followed, and a directory swapped for a
//! symlink while the walk runs (the CVE-2018-15664 race) is refused by the kernel instead
//! of leading the reader out of the root. Regular files are opened `O_NONBLOCK` and
//! checked with `fstat` on the opened descriptor, so a file swapped for a FIFO cannot
//! block the reader and the header always describes what is read.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::open_at_root;
use super::path::{Escape, join_components, root_components};
use crate::Error;

/// How many symlinks [`follow_symlinks`] follows before giving up (Go's `EvalSymlinks`).
const MAX_LINKS: u32 = 255;

/// `lstat` of `path` inside `root`: its parent is resolved inside the root (symlinks
/// followed, never out of it), the last component is not followed. `/` is the root.
pub fn lstat_in_root(root: &impl AsFd, path: &str) -> io::Result<Stat> {
    let comps = root_components(Path::new(path), Escape::Clamp).unwrap_or_default();
    match comps.split_last() {
        None => Ok(rustix::fs::fstat(open_at_root(root.as_fd(), Path::new("."), OFlags::PATH)?)?),
        Some((name, parent)) => {
            let dir = open_at_root(root.as_fd(), &join_components(parent), OFlags::PATH | OFlags::DIRECTORY)?;
            Ok(rustix::fs::statat(&dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW | AtFlags::EMPTY_PATH)?)
        }
    }
}

/// Evaluates every symlink along `path` inside `root`, the last component included, as
/// Docker's `FollowSymlinkInScope`: the absolute path (inside the root) of what `path`
/// finally names. A missing component ends the evaluation: the rest is appended as it is,
/// so a dangling link gives the path it points to.
pub fn follow_symlinks(root: &impl AsFd, path: &str) -> io::Result<String> {
    let root = root.as_fd();
    let mut todo: Vec<OsString> =
        root_components(Path::new(path), Escape::Clamp).unwrap_or_default().into_iter().rev().collect();
    let mut cur: Vec<OsString> = Vec::new();
    let mut links = 0;
    let mut missing = false;
    while let Some(c) = todo.pop() {
        if c == ".." {
            cur.pop();
            continue;
        }
        if missing {
            cur.push(c);
            continue;
        }
        let dir = match open_at_root(root, &join_components(&cur), OFlags::PATH | OFlags::DIRECTORY) {
            Ok(d) => d,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                missing = true;
                cur.push(c);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let st = match rustix::fs::statat(&dir, c.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                missing = true;
                cur.push(c);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
            cur.push(c);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::from(Errno::LOOP));
        }
        let target = rustix::fs::readlinkat(&dir, c.as_os_str(), Vec::new())?;
        let target = target.as_bytes();
        if target.first() == Some(&b'/') {
            cur.clear();
        }
        // Pushed in reverse so they are taken in order; `..` is applied as they come.
        for part in target.split(|b| *b == b'/').rev() {
            if !part.is_empty() && part != b"." {
                todo.push(OsStr::from_bytes(part).to_os_string());
            }
        }
    }
    Ok(format!("/{}", cur.iter().map(|c| c.to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")))
}

/// Writes a tar of `dir/base` (inside `root`; `dir` may go through symlinks, which stay
/// inside the root, `base` is never followed) to `out`. Entries are named `rebase` and
/// `rebase/…` below it; `base` `.` archives the directory `dir` itself, and an empty
/// `base` archives what `dir` holds with no entry for `dir` (names as `docker export`
/// writes them: `bin/`, `etc/hosts`). Symlinks are archived as links, hard-linked files
/// once with links to the first name, sockets left out. Returns the bytes of regular file
/// content written.
pub fn pack_tar(root: &impl AsFd, dir: &str, base: &str, rebase: &str, out: &mut dyn Write) -> Result<u64, Error> {
    let root = root.as_fd();
    let dir_path = PathBuf::from(dir);
    let parent = open_at_root(root, &dir_path, OFlags::PATH | OFlags::DIRECTORY).map_err(Error::fs("open", dir))?;
    let mut w = Packer { tar: tar::Builder::new(out), links: HashMap::new(), content: 0 };
    w.tar.mode(tar::HeaderMode::Complete);
    w.tar.follow_symlinks(false);
    let name = rebase.trim_end_matches('/');
    let name = if name.is_empty() { "." } else { name };
    if base.is_empty() {
        let fd = rustix::fs::openat(&parent, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(Error::fs("open", dir))?;
        for n in sorted_names(&fd, &dir_path)? {
            let shown = n.to_string_lossy().into_owned();
            w.entry(fd.as_fd(), &n, &shown, &dir_path.join(&n), false)?;
        }
    } else if base == "." {
        let fd = rustix::fs::openat(&parent, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(Error::fs("open", dir))?;
        let st = rustix::fs::fstat(&fd).map_err(Error::fs("stat", dir))?;
        w.dir(&fd, &st, name, &dir_path)?;
    } else {
        w.entry(parent.as_fd(), OsStr::new(base), name, &dir_path.join(base), true)?;
    }
    w.tar.finish().map_err(Error::fs("write", dir))?;
    Ok(w.content)
}

/// The names in a directory, sorted (a stable order, as Go's walker gives).
fn sorted_names(fd: &OwnedFd, at: &Path) -> Result<Vec<OsString>, Error> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(fd).map_err(Error::fs("read dir", at))? {
        let e = e.map_err(Error::fs("read dir", at))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

struct Packer<'a> {
    tar: tar::Builder<&'a mut dyn Write>,
    /// First name of each multiply-linked inode, by (dev, ino).
    links: HashMap<(u64, u64), String>,
    content: u64,
}

fn header_for(st: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// A vanished or swapped entry: left out of the archive rather than failing it.
fn changed(e: Errno) -> bool {
    matches!(e, Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::NXIO)
}

impl Packer<'_> {
    /// Archives `name` in `parent` as `shown` (never following it).
    fn entry(&mut self, parent: BorrowedFd<'_>, name: &OsStr, shown: &str, at: &Path, top: bool) -> Result<(), Error> {
        let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) if changed(e) && !top => return Ok(()),
            Err(e) => return Err(Error::fs("stat", at)(e)),
        };
        let io_err = |e: io::Error| Error::fs("write", at)(e);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let fd = match rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(e) if changed(e) && !top => return Ok(()),
                    Err(e) => return Err(Error::fs("open", at)(e)),
                };
                let st = rustix::fs::fstat(&fd).map_err(Error::fs("stat", at))?;
                self.dir(&fd, &st, shown, at)
            }
            FileType::RegularFile => {
                let fd = match rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(e) if changed(e) && !top => return Ok(()),
                    Err(e) => return Err(Error::fs("open", at)(e)),
                };
                let st = rustix::fs::fstat(&fd).map_err(Error::fs("stat", at))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    // Swapped between the stat and the open: not what we came for.
                    return Ok(());
                }
                self.file(fd, &st, shown, at)
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(parent, name, Vec::new()) {
                    Ok(t) => t,
                    Err(e) if changed(e) || e == Errno::INVAL => return Ok(()),
                    Err(e) => return Err(Error::fs("readlink", at)(e)),
                };
                let h = header_for(&st, tar::EntryType::Symlink);
                self.append(h, shown, Some(target.as_bytes()), io::empty()).map_err(io_err)
            }
            ft @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                let kind = match ft {
                    FileType::CharacterDevice => tar::EntryType::Char,
                    FileType::BlockDevice => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header_for(&st, kind);
                if kind != tar::EntryType::Fifo {
                    let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
                    let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
                }
                self.append(h, shown, None, io::empty()).map_err(io_err)
            }
            // Sockets (and anything else) have no tar form.
            _ => Ok(()),
        }
    }

    /// Appends an entry named `name` byte for byte (the tar crate's own setters normalise
    /// names, dropping the `./` that Docker's archives of `dir/.` carry, and turning a
    /// link to `/` into `//`), with GNU long-name records for what does not fit.
    fn append(&mut self, mut h: tar::Header, name: &str, link: Option<&[u8]>, data: impl Read) -> io::Result<()> {
        let long = |tar: &mut tar::Builder<&mut dyn Write>, kind: tar::EntryType, v: &[u8]| {
            let mut lh = tar::Header::new_gnu();
            lh.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            lh.set_mode(0o644);
            lh.set_entry_type(kind);
            lh.set_size(v.len() as u64 + 1);
            lh.set_cksum();
            tar.append(&lh, v.chain(&b"\0"[..]))
        };
        let nb = name.as_bytes();
        if nb.len() > 100 {
            long(&mut self.tar, tar::EntryType::GNULongName, nb)?;
        }
        let n = nb.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&nb[..n]);
        if let Some(l) = link {
            if l.len() > 100 {
                long(&mut self.tar, tar::EntryType::GNULongLink, l)?;
            }
            let n = l.len().min(100);
            h.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
        }
        h.set_cksum();
        self.tar.append(&h, data)
    }

    fn dir(&mut self, fd: &OwnedFd, st: &Stat, shown: &str, at: &Path) -> Result<(), Error> {
        let h = header_for(st, tar::EntryType::Directory);
        let name = format!("{shown}/");
        self.append(h, &name, None, io::empty()).map_err(|e| Error::fs("write", at)(e))?;
        for n in sorted_names(fd, at)? {
            let child = format!("{shown}/{}", n.to_string_lossy());
            self.entry(fd.as_fd(), &n, &child, &at.join(&n), false)?;
        }
        Ok(())
    }

    fn file(&mut self, fd: OwnedFd, st: &Stat, shown: &str, at: &Path) -> Result<(), Error> {
        let io_err = |e: io::Error| Error::fs("write", at)(e);
        if st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let h = header_for(st, tar::EntryType::Link);
                let first = first.clone();
                return self.append(h, shown, Some(first.as_bytes()), io::empty()).map_err(io_err);
            }
            self.links.insert(key, shown.to_owned());
        }
        let size = st.st_size.max(0) as u64;
        let mut h = header_for(st, tar::EntryType::Regular);
        h.set_size(size);
        // Exactly `size` bytes whatever the file does meanwhile: a file that shrank is
        // padded with zeros, one that grew is cut, so the archive stays well-formed.
        let f = File::from(fd);
        let mut data = ReadExactly { inner: f.take(size), left: size };
        let r = self.append(h, shown, None, &mut data).map_err(io_err);
        self.content += size;
        r
    }
}

/// A reader giving exactly `left` bytes: the file's, then zeros.
struct ReadExactly {
    inner: io::Take<File>,
    left: u64,
}

impl Read for ReadExactly {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = out.len().min(self.left as usize);
        let n = match self.inner.read(&mut out[..want]) {
            Ok(0) => {
                out[..want].fill(0);
                want
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<(String, tar::EntryType, Option<String>)> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
                (e.path().unwrap().to_string_lossy().into_owned(), e.header().entry_type(), link)
            })
            .collect()
    }

    #[test]
    fn packs_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("app/sub")).unwrap();
        std::fs::write(dir.path().join("secret"), b"host").unwrap();
        std::fs::write(root.join("app/a"), b"aaa").unwrap();
        std::fs::hard_link(root.join("app/a"), root.join("app/sub/b")).unwrap();
        std::os::unix::fs::symlink("/", root.join("app/up")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("link")).unwrap();
        let fd = super::super::open_root(&root).unwrap();
        let mut out = Vec::new();
        let n = pack_tar(&fd, "/", "app", "app", &mut out).unwrap();
        assert_eq!(n, 3);
        let got = names(&out);
        assert_eq!(got[0].0, "app/");
        assert!(got.contains(&("app/a".into(), tar::EntryType::Regular, None)));
        assert!(got.contains(&("app/sub/b".into(), tar::EntryType::Link, Some("app/a".into()))));
        assert!(got.contains(&("app/up".into(), tar::EntryType::Symlink, Some("/".into()))), "{got:?}");
        // Through a symlink to `../../..` the start stays inside the root.
        let mut out = Vec::new();
        pack_tar(&fd, "/link", "secret", "secret", &mut out).unwrap_err();
        std::fs::write(root.join("secret"), b"inside").unwrap();
        let mut out = Vec::new();
        pack_tar(&fd, "/link", "secret", "x", &mut out).unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let mut e = a.entries().unwrap().next().unwrap().unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!((e.path().unwrap().to_string_lossy().into_owned(), s.as_str()), ("x".into(), "inside"));
        // `.` archives the directory's content under `./`.
        let mut out = Vec::new();
        pack_tar(&fd, "/app/sub", ".", ".", &mut out).unwrap();
        let got: Vec<String> = names(&out).into_iter().map(|n| n.0).collect();
        assert_eq!(got, ["./", "./b"]);
        // An empty base: the content, without an entry for the directory.
        let mut out = Vec::new();
        pack_tar(&fd, "/app", "", "", &mut out).unwrap();
        let got: Vec<String> = names(&out).into_iter().map(|n| n.0).collect();
        assert_eq!(got, ["a", "sub/", "sub/b", "up"]);
    }

    #[test]
    fn symlinks_evaluate_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("e")).unwrap();
        std::os::unix::fs::symlink("../../../../etc/passwd", root.join("etc/p")).unwrap();
        std::os::unix::fs::symlink("nowhere/x", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let fd = super::super::open_root(&root).unwrap();
        assert_eq!(follow_symlinks(&fd, "/e/p").unwrap(), "/etc/passwd");
        assert_eq!(follow_symlinks(&fd, "e").unwrap(), "/etc");
        assert_eq!(follow_symlinks(&fd, "/dangling").unwrap(), "/nowhere/x");
        assert_eq!(follow_symlinks(&fd, "/").unwrap(), "/");
        assert!(follow_symlinks(&fd, "/loop").is_err());
        let st = lstat_in_root(&fd, "/e").unwrap();
        assert_eq!(FileType::from_raw_mode(st.st_mode), FileType::Symlink);
        let st = lstat_in_root(&fd, "/e/").unwrap();
        assert_eq!(FileType::from_raw_mode(st.st_mode), FileType::Symlink, "the last component is not followed");
        assert!(lstat_in_root(&fd, "/e/p/x").is_err());
    }
}
