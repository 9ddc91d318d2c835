//! The receiving side of fsutil's file sync (`/moby.filesync.v1.FileSync/DiffCopy`): the
//! client walks its directory (with the include/exclude patterns the daemon sends as gRPC
//! metadata) and sends one `STAT` packet per entry, in walk order, then an empty one; the
//! daemon compares them with what a directory kept from an earlier sync holds, asks
//! (`REQ`, by the entry's index in the walk) only for files that differ, receives their
//! `DATA` (an empty packet ends a file), removes what the client no longer has, and ends
//! with `FIN`. So a rebuild transfers only the files that changed.
//!
//! The client is not trusted: every path must be relative and clean, and its parent must
//! be a directory sent earlier in the same walk; file contents are written through
//! `fsroot::open_in_root`, so nothing lands outside the destination.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_base::fsroot;
use rustix::fs::{Mode, OFlags, Timespec, Timestamps};

use super::SessionError;
use super::grpc::Channel;
use super::proto::{Packet, PacketType, Stat};

// Go's os.FileMode bits, which fsutil puts in Stat.mode.
const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;
const GO_TYPE: u32 =
    GO_DIR | 1 << 30 | 1 << 29 | 1 << 28 | GO_SYMLINK | 1 << 26 | 1 << 25 | 1 << 24 | 1 << 21 | 1 << 19;
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

/// What to sync: the client's directory by name, and its filters.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    /// `dir-name`: `context` or `dockerfile`.
    pub dir_name: String,
    /// `include-patterns`.
    pub includes: Vec<String>,
    /// `exclude-patterns` (`.dockerignore`'s lines).
    pub excludes: Vec<String>,
}

/// What a sync did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Synced {
    /// Entries the client has.
    pub entries: usize,
    /// Files whose content was transferred.
    pub files: usize,
    /// Bytes of content transferred.
    pub bytes: u64,
}

/// Metadata values must be printable ASCII; fsutil's peers agree on URL-encoding others
/// and saying so in `<key>-encoded`.
fn put_metadata(md: &mut tonic::metadata::MetadataMap, key: &'static str, values: &[String]) {
    let encode = values.iter().any(|v| v.bytes().any(|b| !(0x20..0x7f).contains(&b)));
    for v in values {
        let v = if encode {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        } else {
            v.clone()
        };
        if let Ok(v) = v.parse() {
            md.append(key, v);
        }
    }
    if encode {
        let k = format!("{key}-encoded");
        if let (Ok(k), Ok(v)) = (k.parse::<tonic::metadata::MetadataKey<_>>(), "1".parse()) {
            md.insert(k, v);
        }
    }
}

/// Syncs the client's directory into `dest` (created if missing), transferring only what
/// differs from what `dest` holds. `progress` gets the bytes received so far.
pub async fn sync(
    channel: &Channel,
    req: &SyncRequest,
    dest: &Path,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Synced, SessionError> {
    let call = |source| SessionError::Call { method: super::session::DIFF_COPY, source };
    tracing::debug!(dir = %req.dir_name, includes = ?req.includes, excludes = ?req.excludes, "session: syncing dir");
    let (tx, rx) = tokio::sync::mpsc::channel::<Packet>(64);
    let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
    let mut request = tonic::Request::new(outbound);
    let md = request.metadata_mut();
    put_metadata(md, "dir-name", std::slice::from_ref(&req.dir_name));
    put_metadata(md, "include-patterns", &req.includes);
    put_metadata(md, "exclude-patterns", &req.excludes);
    let mut grpc = channel.grpc();
    grpc.ready().await.map_err(|e| call(tonic::Status::unavailable(e.to_string())))?;
    let path = axum::http::uri::PathAndQuery::from_static(super::session::DIFF_COPY);
    let mut inbound = grpc
        .streaming(request, path, tonic_prost::ProstCodec::<Packet, Packet>::default())
        .await
        .map_err(call)?
        .into_inner();
    let mut next = async || -> Result<Packet, SessionError> {
        match inbound.message().await.map_err(call)? {
            Some(p) if p.r#type == PacketType::Err as i32 => {
                Err(SessionError::Remote { message: String::from_utf8_lossy(&p.data).into_owned() })
            }
            Some(p) => Ok(p),
            None => Err(SessionError::Closed),
        }
    };
    let mut stats = Vec::new();
    loop {
        let p = next().await?;
        if p.r#type == PacketType::Stat as i32 {
            match p.stat {
                Some(s) => stats.push(s),
                None => break,
            }
        }
    }
    std::fs::create_dir_all(dest).map_err(|e| SessionError::io("create", dest, e))?;
    let entries = stats.len();
    let mut recv = tokio::task::block_in_place(|| Receiver::plan(dest, stats))?;
    for id in recv.wanted() {
        tx.send(Packet { r#type: PacketType::Req as i32, id, ..Default::default() })
            .await
            .map_err(|_| SessionError::Closed)?;
    }
    let files = recv.pending.len();
    let mut bytes = 0u64;
    while !recv.pending.is_empty() {
        let p = next().await?;
        if p.r#type != PacketType::Data as i32 {
            continue;
        }
        bytes += p.data.len() as u64;
        tokio::task::block_in_place(|| recv.data(p.id, &p.data))?;
        progress(bytes);
    }
    tx.send(Packet { r#type: PacketType::Fin as i32, ..Default::default() }).await.map_err(|_| SessionError::Closed)?;
    // The sender answers FIN with FIN and ends its stream.
    loop {
        match inbound.message().await {
            Ok(Some(p)) if p.r#type == PacketType::Fin as i32 => break,
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(s) => return Err(call(s)),
        }
    }
    drop(tx);
    tokio::task::block_in_place(|| recv.finish())?;
    Ok(Synced { entries, files, bytes })
}

/// A file being received.
struct Pending {
    path: String,
    stat: Stat,
    file: Option<File>,
}

/// The filesystem side of one sync.
struct Receiver {
    dest: PathBuf,
    root: OwnedFd,
    pending: HashMap<u32, Pending>,
    links: Vec<(String, String)>,
    dirs: Vec<(String, Stat)>,
}

fn perm_of(mode: u32) -> u32 {
    let mut p = mode & 0o777;
    if mode & GO_SETUID != 0 {
        p |= 0o4000;
    }
    if mode & GO_SETGID != 0 {
        p |= 0o2000;
    }
    if mode & GO_STICKY != 0 {
        p |= 0o1000;
    }
    p
}

fn timestamps(ns: i64) -> Timestamps {
    let t = Timespec { tv_sec: ns.div_euclid(1_000_000_000), tv_nsec: ns.rem_euclid(1_000_000_000) as _ };
    Timestamps { last_access: t, last_modification: t }
}

/// A path as fsutil sends it, if it is relative and clean.
fn valid_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\0')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn parent_of(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Dir,
    Symlink,
    File,
    Other,
}

fn kind_of(mode: u32) -> Kind {
    if mode & GO_DIR != 0 {
        Kind::Dir
    } else if mode & GO_SYMLINK != 0 {
        Kind::Symlink
    } else if mode & GO_TYPE == 0 {
        Kind::File
    } else {
        Kind::Other
    }
}

fn kind_on_disk(md: &std::fs::Metadata) -> Kind {
    let t = md.file_type();
    if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else if t.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

fn remove_any(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Receiver {
    /// Compares the client's walk with `dest`: removes what is gone or changed kind,
    /// creates directories and symlinks, and notes which files to ask for.
    fn plan(dest: &Path, stats: Vec<Stat>) -> Result<Receiver, SessionError> {
        let io = |op, p: &Path| {
            let p = p.to_path_buf();
            move |e| SessionError::io(op, &p, e)
        };
        let mut want: HashMap<&str, Kind> = HashMap::new();
        for s in &stats {
            if !valid_path(&s.path) {
                return Err(SessionError::BadPath { path: s.path.clone() });
            }
            let parent = parent_of(&s.path);
            if !parent.is_empty() && want.get(parent) != Some(&Kind::Dir) {
                return Err(SessionError::BadPath { path: s.path.clone() });
            }
            want.insert(&s.path, kind_of(s.mode));
        }
        // What the destination holds that the client does not (or holds as another kind).
        let mut stack = vec![String::new()];
        while let Some(dir) = stack.pop() {
            let abs = dest.join(&dir);
            for e in std::fs::read_dir(&abs).map_err(io("read", &abs))? {
                let e = e.map_err(io("read", &abs))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = if dir.is_empty() { name } else { format!("{dir}/{name}") };
                let md = e.path().symlink_metadata().map_err(io("stat", &e.path()))?;
                let have = kind_on_disk(&md);
                match want.get(rel.as_str()) {
                    Some(k) if *k == have && have == Kind::Dir => stack.push(rel),
                    Some(k) if *k == have => {}
                    _ => remove_any(&e.path()).map_err(io("remove", &e.path()))?,
                }
            }
        }
        let root = fsroot::open_root(dest).map_err(io("open", dest))?;
        let mut r =
            Receiver { dest: dest.to_path_buf(), root, pending: HashMap::new(), links: Vec::new(), dirs: Vec::new() };
        for (i, s) in stats.into_iter().enumerate() {
            let abs = dest.join(&s.path);
            let have = std::fs::symlink_metadata(&abs).ok();
            match kind_of(s.mode) {
                Kind::Dir => {
                    if have.is_none() {
                        std::fs::create_dir(&abs).map_err(io("create", &abs))?;
                    }
                    r.dirs.push((s.path.clone(), s));
                }
                Kind::Symlink => {
                    let same =
                        have.is_some() && std::fs::read_link(&abs).is_ok_and(|t| t.as_os_str() == s.linkname.as_str());
                    if !same {
                        remove_any(&abs).map_err(io("remove", &abs))?;
                        std::os::unix::fs::symlink(&s.linkname, &abs).map_err(io("symlink", &abs))?;
                    }
                    let _ = std::os::unix::fs::lchown(&abs, Some(s.uid), Some(s.gid));
                    let fd = rustix::fs::CWD;
                    let _ =
                        rustix::fs::utimensat(fd, &abs, &timestamps(s.mod_time), rustix::fs::AtFlags::SYMLINK_NOFOLLOW);
                }
                Kind::File if !s.linkname.is_empty() => {
                    if !valid_path(&s.linkname) {
                        return Err(SessionError::BadPath { path: s.linkname.clone() });
                    }
                    r.links.push((s.path.clone(), s.linkname.clone()));
                }
                Kind::File => {
                    let same = have.is_some_and(|md| {
                        md.len() as i64 == s.size
                            && md.mtime() * 1_000_000_000 + md.mtime_nsec() == s.mod_time
                            && md.mode() & 0o7777 == perm_of(s.mode)
                            && md.uid() == s.uid
                            && md.gid() == s.gid
                            && md.nlink() == 1
                    });
                    if !same {
                        r.pending.insert(i as u32, Pending { path: s.path.clone(), stat: s, file: None });
                    }
                }
                // Device nodes, FIFOs and sockets in a build context are left out.
                Kind::Other => tracing::debug!(path = %s.path, "sync: special file left out"),
            }
        }
        Ok(r)
    }

    /// The ids of the files to ask for, in walk order.
    fn wanted(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.pending.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// One `DATA` packet: a chunk of file `id`, or its end when empty.
    fn data(&mut self, id: u32, data: &[u8]) -> Result<(), SessionError> {
        let Some(p) = self.pending.get_mut(&id) else {
            return Err(SessionError::Remote { message: format!("data for a file not asked for ({id})") });
        };
        let abs = self.dest.join(&p.path);
        if p.file.is_none() {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW;
            let fd = fsroot::open_in_root(&self.root, &p.path, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| SessionError::io("create", &abs, e))?;
            p.file = Some(File::from(fd));
        }
        let Some(f) = p.file.as_mut() else { return Ok(()) };
        if !data.is_empty() {
            return f.write_all(data).map_err(|e| SessionError::io("write", &abs, e));
        }
        let s = &p.stat;
        rustix::fs::fchown(&*f, Some(rustix::fs::Uid::from_raw(s.uid)), Some(rustix::fs::Gid::from_raw(s.gid)))
            .map_err(|e| SessionError::io("chown", &abs, e.into()))?;
        rustix::fs::fchmod(&*f, Mode::from_raw_mode(perm_of(s.mode)))
            .map_err(|e| SessionError::io("chmod", &abs, e.into()))?;
        rustix::fs::futimens(&*f, &timestamps(s.mod_time)).map_err(|e| SessionError::io("utimes", &abs, e.into()))?;
        self.pending.remove(&id);
        Ok(())
    }

    /// Hard links, then directories' metadata (last: writing inside changes their mtime).
    fn finish(self) -> Result<(), SessionError> {
        for (path, target) in &self.links {
            let (abs, to) = (self.dest.join(path), self.dest.join(target));
            remove_any(&abs).map_err(|e| SessionError::io("remove", &abs, e))?;
            std::fs::hard_link(&to, &abs).map_err(|e| SessionError::io("link", &abs, e))?;
        }
        let seen: HashSet<&str> = self.dirs.iter().map(|(p, _)| p.as_str()).collect();
        debug_assert_eq!(seen.len(), self.dirs.len());
        for (path, s) in self.dirs.iter().rev() {
            let abs = self.dest.join(path);
            let _ = std::os::unix::fs::lchown(&abs, Some(s.uid), Some(s.gid));
            rustix::fs::chmod(&abs, Mode::from_raw_mode(perm_of(s.mode)))
                .map_err(|e| SessionError::io("chmod", &abs, e.into()))?;
            let _ = rustix::fs::utimensat(
                rustix::fs::CWD,
                &abs,
                &timestamps(s.mod_time),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(path: &str, mode: u32, size: i64, mtime: i64) -> Stat {
        Stat { path: path.into(), mode, size, mod_time: mtime, ..Default::default() }
    }

    #[test]
    fn paths_must_be_clean_and_inside() {
        for p in ["a", "a/b", "a.b/..c"] {
            assert!(valid_path(p), "{p}");
        }
        for p in ["", "/a", "../a", "a/../b", "a//b", "./a", "a/."] {
            assert!(!valid_path(p), "{p}");
        }
    }

    #[test]
    fn go_modes_map_to_kinds_and_perms() {
        assert!(kind_of(GO_DIR | 0o755) == Kind::Dir);
        assert!(kind_of(GO_SYMLINK | 0o777) == Kind::Symlink);
        assert!(kind_of(0o644) == Kind::File);
        assert!(kind_of(1 << 25 | 0o644) == Kind::Other);
        assert_eq!(perm_of(GO_SETUID | GO_STICKY | 0o755), 0o5755);
    }

    #[test]
    fn only_changed_files_are_asked_for_and_stale_ones_go() {
        let d = tempfile::tempdir().unwrap();
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let own = |mut s: Stat| {
            s.uid = uid;
            s.gid = gid;
            s
        };
        let walk = vec![
            own(stat("a.txt", 0o644, 2, 1_000_000_000)),
            own(stat("sub", GO_DIR | 0o755, 0, 0)),
            own(stat("sub/b.txt", 0o600, 1, 2_000_000_000)),
        ];
        let mut r = Receiver::plan(d.path(), walk.clone()).unwrap();
        assert_eq!(r.wanted(), [0, 2]);
        r.data(0, b"hi").unwrap();
        r.data(0, b"").unwrap();
        r.data(2, b"x").unwrap();
        r.data(2, b"").unwrap();
        r.finish().unwrap();
        assert_eq!(std::fs::read(d.path().join("a.txt")).unwrap(), b"hi");
        std::fs::write(d.path().join("stale"), b"old").unwrap();
        // Same walk again: nothing to transfer, and what the client lacks is removed.
        let r = Receiver::plan(d.path(), walk.clone()).unwrap();
        assert!(r.wanted().is_empty());
        r.finish().unwrap();
        assert!(!d.path().join("stale").exists());
        // One file changed (its mtime and size): only it is asked for.
        let mut w2 = walk.clone();
        w2[2] = own(stat("sub/b.txt", 0o600, 2, 3_000_000_000));
        let r = Receiver::plan(d.path(), w2).unwrap();
        assert_eq!(r.wanted(), [2]);
    }

    #[test]
    fn a_walk_cannot_write_through_its_own_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let mut link = stat("l", GO_SYMLINK | 0o777, 0, 0);
        link.linkname = "/etc".into();
        let e = Receiver::plan(d.path(), vec![link, stat("l/passwd", 0o644, 1, 0)]).err().unwrap();
        assert!(matches!(e, SessionError::BadPath { .. }));
        let e = Receiver::plan(d.path(), vec![stat("../x", 0o644, 1, 0)]).err().unwrap();
        assert!(matches!(e, SessionError::BadPath { .. }));
    }
}
