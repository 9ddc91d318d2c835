//! Layer diffs: a container's overlay upper directory written out as an OCI layer tar.
//! Overlay whiteouts (0/0 character devices) become `.wh.<name>` files and opaque
//! directories (`trusted.overlay.opaque=y`) gain a `.wh..wh..opq` entry.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::apply::{OVERLAY_OPAQUE, WH_OPAQUE, WH_PREFIX};
use crate::error::Error;

/// Writes the tar of `upper` to `out`, entries sorted by name so equal trees give equal
/// bytes (and so equal diff ids).
pub(crate) fn write_upper_tar(upper: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Complete);
    b.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(upper, "", &mut b, &mut links)?;
    b.into_inner().map_err(Error::io("write layer tar", upper))?;
    Ok(())
}

/// Bytes in the regular files under `dir` (a snapshot's size as `images` reports it).
pub(crate) fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// Removes overlay's own xattrs (`trusted.overlay.origin`, `impure`…) from an upper dir
/// about to serve as a lower layer, keeping `opaque`, which is content.
pub(crate) fn strip_overlay_bookkeeping(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let mut names = vec![0u8; 4096];
        if let Ok(n) = rustix::fs::llistxattr(&p, &mut names[..]) {
            for raw in names[..n].split(|c| *c == 0).filter(|s| !s.is_empty()) {
                if let Ok(name) = std::str::from_utf8(raw)
                    && name.starts_with("trusted.overlay.")
                    && name != OVERLAY_OPAQUE
                {
                    let _ = rustix::fs::lremovexattr(&p, name);
                }
            }
        }
        if p.symlink_metadata().is_ok_and(|m| m.is_dir())
            && let Ok(rd) = fs::read_dir(&p)
        {
            stack.extend(rd.flatten().map(|e| e.path()));
        }
    }
}

fn read_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else { return out };
    for raw in names[..n].split(|c| *c == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else { continue };
        // Overlay's bookkeeping is not content.
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut val = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, name, &mut val[..]) {
            val.truncate(len);
            out.push((name.to_owned(), val));
        }
    }
    out
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, OVERLAY_OPAQUE, &mut v[..]), Ok(1) if v[0] == b'y')
}

fn werr(p: &Path) -> impl FnOnce(io::Error) -> Error + use<> {
    let path = p.to_path_buf();
    move |source| Error::Io { op: "write layer tar", path, source }
}

fn header_for(md: &fs::Metadata, ty: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn walk<W: Write>(
    dir: &Path,
    prefix: &str,
    b: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<(), Error> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(Error::io("read dir", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(Error::io("read dir", dir))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let rel = format!("{prefix}{}", name.to_string_lossy());
        let md = fs::symlink_metadata(&path).map_err(Error::io("stat", &path))?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            let wh = format!("{prefix}{WH_PREFIX}{}", name.to_string_lossy());
            let mut h = header_for(&md, tar::EntryType::Regular);
            h.set_mode(0o644);
            b.append_data(&mut h, &wh, io::empty()).map_err(werr(&path))?;
            continue;
        }
        let xattrs = read_xattrs(&path);
        if !xattrs.is_empty() {
            let pax: Vec<(String, Vec<u8>)> =
                xattrs.into_iter().map(|(k, v)| (format!("SCHILY.xattr.{k}"), v)).collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).map_err(werr(&path))?;
        }
        if ft.is_dir() {
            let mut h = header_for(&md, tar::EntryType::Directory);
            b.append_data(&mut h, format!("{rel}/"), io::empty()).map_err(werr(&path))?;
            if is_opaque(&path) {
                let mut h = header_for(&md, tar::EntryType::Regular);
                h.set_mode(0o644);
                b.append_data(&mut h, format!("{rel}/{WH_OPAQUE}"), io::empty()).map_err(werr(&path))?;
            }
            walk(&path, &format!("{rel}/"), b, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(Error::io("readlink", &path))?;
            let mut h = header_for(&md, tar::EntryType::Symlink);
            b.append_link(&mut h, &rel, &target).map_err(werr(&path))?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = links.get(&key) {
                    let mut h = header_for(&md, tar::EntryType::Link);
                    b.append_link(&mut h, &rel, first).map_err(werr(&path))?;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            let mut h = header_for(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            let f = fs::File::open(&path).map_err(Error::io("open", &path))?;
            b.append_data(&mut h, &rel, f).map_err(werr(&path))?;
        } else {
            let ty = if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                // Sockets have no tar form and no meaning in an image.
                continue;
            };
            let mut h = header_for(&md, ty);
            if ty != tar::EntryType::Fifo {
                let rdev = md.rdev();
                h.set_device_major(rustix::fs::major(rdev)).map_err(werr(&path))?;
                h.set_device_minor(rustix::fs::minor(rdev)).map_err(werr(&path))?;
            }
            b.append_data(&mut h, &rel, io::empty()).map_err(werr(&path))?;
        }
    }
    Ok(())
}
