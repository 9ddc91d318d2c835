//! COPY and ADD: resolving sources in a context (wildcards, `.dockerignore`, escapes
//! refused), the content digest that keys the step cache, and writing the files into a
//! root filesystem with Docker's destination rules, never outside that root.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use berth_base::Digest;
use berth_base::fsroot::{Devices, open_in_root, open_root, read_in_root};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Stat, Timespec, Timestamps, Uid};
use sha2::Digest as _;

use crate::Error;
use crate::context::{Context, ExtractOpts, RootKind, extract_tar, open_dir_fd, split_parent, with_decompressed};
use crate::dockerignore::{IgnoreMatcher, clean_path, glob_match, has_wildcards};

/// Owner, permissions and modification time of a copied entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits, including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds, nanoseconds); kept on copy, not part of the digest.
    pub mtime: (i64, u32),
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file of this many bytes.
    File {
        /// Size in bytes.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link with this target, copied as a link, never followed.
    Symlink(String),
}

/// One file, directory or symlink a source contributes.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the source (`""` for the source itself, `a/b` below a directory).
    pub rel: String,
    /// Where it is inside the source root (absolute, symlinks already resolved).
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// Its metadata as it will be written (owner already 0:0 for a build context).
    pub meta: Meta,
}

/// A resolved COPY/ADD source.
#[derive(Debug, Clone)]
pub struct Source {
    /// The pattern it came from, as written.
    pub pattern: String,
    /// Its path relative to the root as matched (before following a symlink); its last
    /// component names the copy when the destination is a directory.
    pub rel: String,
    /// The part of `rel` that `COPY --parents` recreates under the destination: all of it,
    /// or what follows a `/./` pivot in the pattern (`src/./app/*.py` keeps `app/x.py`).
    pub parents_rel: String,
    /// The root it is read from.
    pub root: std::path::PathBuf,
    /// Whether it is a directory (whose contents are copied, not itself).
    pub is_dir: bool,
    /// The source itself first, then everything below it in sorted walk order, without
    /// ignored or excluded files.
    pub entries: Vec<Entry>,
}

/// Options of a COPY/ADD.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOpts {
    /// `--chown`, already resolved to numbers (see [`resolve_owner`] and [`parse_chown`]).
    pub chown: Option<(u32, u32)>,
    /// `--chmod`, octal bits.
    pub chmod: Option<u32>,
    /// `--parents`: each source keeps its path (see [`Source::parents_rel`]) below `dest`,
    /// which is then always a directory.
    pub parents: bool,
    /// ADD: a local tar archive (plain, gzip, zstd, bzip2, xz) is extracted into the
    /// destination instead of copied.
    pub add: bool,
}

/// Resolves COPY/ADD source patterns in `ctx` (Go `filepath.Match` wildcards). Files the
/// context's `.dockerignore` hides are invisible; `..` or a symlink leading out of a build
/// context is refused; a missing source is an error in Docker's words.
pub fn resolve_sources(ctx: &Context, patterns: &[String]) -> Result<Vec<Source>, Error> {
    resolve_sources_excluding(ctx, patterns, &[])
}

/// [`resolve_sources`] with `COPY --exclude` patterns, matched against paths relative to
/// each source (a file source's own name for a file).
pub fn resolve_sources_excluding(ctx: &Context, patterns: &[String], exclude: &[String]) -> Result<Vec<Source>, Error> {
    let excl = IgnoreMatcher::from_patterns(exclude)?;
    let rootfd = open_root(&ctx.root).map_err(|e| Error::io("open", &ctx.root, e))?;
    let r = Resolver { ctx, rootfd, excl };
    let mut out = Vec::new();
    for p in patterns {
        out.extend(r.pattern(p)?);
    }
    Ok(out)
}

struct Resolver<'a> {
    ctx: &'a Context,
    rootfd: OwnedFd,
    excl: IgnoreMatcher,
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() || a == "." { b.to_owned() } else { format!("{a}/{b}") }
}

fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

impl Resolver<'_> {
    fn pattern(&self, pattern: &str) -> Result<Vec<Source>, Error> {
        let lower = pattern.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Err(Error::RemoteSource { url: pattern.to_owned() });
        }
        // In a stage root `..` stops at `/`, as everywhere in a root filesystem.
        let cleaned =
            if self.ctx.kind == RootKind::Stage { clean_path(&format!("/{pattern}")) } else { clean_path(pattern) };
        if cleaned == ".." || cleaned.starts_with("../") {
            return Err(Error::OutsideContext { path: pattern.to_owned() });
        }
        let cleaned = cleaned.trim_start_matches('/');
        let comps: Vec<&str> = cleaned.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        // Components before a `/./` pivot are dropped by `--parents`.
        let pivot = match pattern.trim_start_matches('/').find("/./") {
            Some(i) => clean_path(&pattern.trim_start_matches('/')[..i])
                .split('/')
                .filter(|c| !c.is_empty() && *c != ".")
                .count(),
            None => 0,
        };
        let wildcard = comps.iter().any(|c| has_wildcards(c));
        // (written path, resolved path) pairs, both relative to the root.
        let mut partial: Vec<(String, String)> = vec![(String::new(), String::new())];
        for comp in &comps {
            let mut next = Vec::new();
            for (written, resolved) in &partial {
                if has_wildcards(comp) {
                    let Ok(dirfd) = open_dir_fd(&self.rootfd, &format!("/{resolved}")) else {
                        continue;
                    };
                    for name in list_dir(dirfd)? {
                        if glob_match(comp, &name)?
                            && let Some(res) = self.resolve(pattern, &join(resolved, &name))?
                        {
                            next.push((join(written, &name), res));
                        }
                    }
                } else if let Some(res) = self.resolve(pattern, &join(resolved, comp))? {
                    next.push((join(written, comp), res));
                }
            }
            partial = next;
        }
        let mut sources = Vec::new();
        for (written, resolved) in partial {
            if let Some(mut s) = self.source(pattern, &written, &resolved)? {
                s.parents_rel = written.split('/').skip(pivot).collect::<Vec<_>>().join("/");
                sources.push(s);
            }
        }
        if sources.is_empty() {
            if wildcard {
                return Err(Error::NoSourceFiles);
            }
            return Err(Error::SourceNotFound { path: pattern.to_owned() });
        }
        Ok(sources)
    }

    fn lstat(&self, rel: &str) -> Result<Option<Stat>, Error> {
        let abs = format!("/{rel}");
        let (parent, name) = split_parent(&abs);
        if name.is_empty() {
            return rustix::fs::fstat(&self.rootfd).map(Some).map_err(|e| Error::io("stat", &self.ctx.root, e.into()));
        }
        let pfd = match open_in_root(&self.rootfd, parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
            Ok(fd) => fd,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Error::io("open", self.ctx.root.join(parent.trim_start_matches('/')), e)),
        };
        match rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => Ok(None),
            Err(e) => Err(Error::io("stat", self.ctx.root.join(rel), e.into())),
        }
    }

    /// Resolves `rel` following every symlink on the way, the last one included. In a build
    /// context a link whose target lies outside the context is an error; in a stage root
    /// links resolve as if the root were `/`. `None` when something does not exist or is
    /// hidden by `.dockerignore`.
    fn resolve(&self, written: &str, rel: &str) -> Result<Option<String>, Error> {
        let mut todo: std::collections::VecDeque<String> =
            rel.split('/').filter(|c| !c.is_empty() && *c != ".").map(str::to_owned).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut links = 0;
        let scoped = self.ctx.kind == RootKind::Stage;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                if cur.pop().is_none() && !scoped {
                    return Err(Error::OutsideContext { path: written.to_owned() });
                }
                continue;
            }
            let cand = if cur.is_empty() { c.clone() } else { format!("{}/{c}", cur.join("/")) };
            let Some(st) = self.lstat(&cand)? else {
                return Ok(None);
            };
            let ft = file_type(&st);
            if ft == FileType::Symlink {
                if !scoped && self.ctx.ignore.matches(&cand, false) {
                    return Ok(None);
                }
                links += 1;
                if links > 40 {
                    return Err(Error::io(
                        "resolve",
                        self.ctx.root.join(&cand),
                        io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error()),
                    ));
                }
                let abs = format!("/{cand}");
                let (parent, name) = split_parent(&abs);
                let pfd = open_in_root(&self.rootfd, parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
                    .map_err(|e| Error::io("open", self.ctx.root.join(&cand), e))?;
                let target = rustix::fs::readlinkat(&pfd, name, Vec::new())
                    .map_err(|e| Error::io("read link", self.ctx.root.join(&cand), e.into()))?;
                let mut target = String::from_utf8_lossy(target.as_bytes()).into_owned();
                if target.starts_with('/') {
                    if !scoped {
                        // A link to an absolute host path may still point into the context.
                        let root = self.ctx.root.to_string_lossy().into_owned();
                        match target.strip_prefix(&root) {
                            Some(rest) if rest.is_empty() || rest.starts_with('/') => target = rest.to_owned(),
                            _ => return Err(Error::OutsideContext { path: written.to_owned() }),
                        }
                    }
                    cur.clear();
                }
                for (i, t) in target.split('/').filter(|c| !c.is_empty() && *c != ".").enumerate() {
                    todo.insert(i, t.to_owned());
                }
                continue;
            }
            if !todo.is_empty() && ft != FileType::Directory {
                return Ok(None);
            }
            cur.push(c);
        }
        Ok(Some(cur.join("/")))
    }

    fn meta(&self, st: &Stat, ignored_dir: bool) -> Meta {
        let mut m = Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: (st.st_mtime, st.st_mtime_nsec as u32),
        };
        if self.ctx.kind == RootKind::BuildContext {
            m.uid = 0;
            m.gid = 0;
        }
        if ignored_dir {
            // An excluded directory shown only for a re-included file inside it is not in
            // the tar the CLI sends; extraction creates it 0755, so say the same here.
            m.mode = 0o755;
        }
        m
    }

    fn source(&self, pattern: &str, written: &str, resolved: &str) -> Result<Option<Source>, Error> {
        let Some(st) = self.lstat(resolved)? else {
            return Ok(None);
        };
        let ft = file_type(&st);
        let path = format!("/{resolved}");
        let name = written.rsplit('/').next().unwrap_or(written).to_owned();
        let rel = if written.is_empty() { ".".to_owned() } else { written.to_owned() };
        let mk = |is_dir, entries| Source {
            pattern: pattern.to_owned(),
            rel: rel.clone(),
            parents_rel: String::new(),
            root: self.ctx.root.clone(),
            is_dir,
            entries,
        };
        if ft == FileType::Directory {
            let ignored = !resolved.is_empty() && self.ctx.ignore.matches(resolved, true);
            let mut entries =
                vec![Entry { rel: String::new(), path: path.clone(), kind: Kind::Dir, meta: self.meta(&st, ignored) }];
            if ignored && !self.ctx.ignore.may_include_inside(resolved) {
                return Ok(None);
            }
            self.walk(resolved, "", &mut entries)?;
            if ignored && entries.len() == 1 {
                return Ok(None);
            }
            return Ok(Some(mk(true, entries)));
        }
        if self.ctx.ignore.matches(resolved, false) || self.excl.matches(&name, false) {
            return Ok(None);
        }
        let kind = match ft {
            FileType::RegularFile => Kind::File { size: st.st_size as u64 },
            // Sockets, FIFOs and devices are not something COPY can take from a context.
            _ => return Ok(None),
        };
        Ok(Some(mk(false, vec![Entry { rel: String::new(), path, kind, meta: self.meta(&st, false) }])))
    }

    fn walk(&self, dir: &str, rel: &str, out: &mut Vec<Entry>) -> Result<(), Error> {
        let fd =
            open_dir_fd(&self.rootfd, &format!("/{dir}")).map_err(|e| Error::io("open", self.ctx.root.join(dir), e))?;
        let names = list_dir(fd.try_clone().map_err(|e| Error::io("open", self.ctx.root.join(dir), e))?)?;
        for name in names {
            let path = join(dir, &name);
            let crel = join(rel, &name);
            let st = rustix::fs::statat(&fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Error::io("stat", self.ctx.root.join(&path), e.into()))?;
            let ft = file_type(&st);
            let is_dir = ft == FileType::Directory;
            let ignored = self.ctx.ignore.matches(&path, is_dir) || self.excl.matches(&crel, is_dir);
            if is_dir {
                if ignored && !(self.ctx.ignore.may_include_inside(&path) || self.excl.may_include_inside(&crel)) {
                    continue;
                }
                let at = out.len();
                out.push(Entry {
                    rel: crel.clone(),
                    path: format!("/{path}"),
                    kind: Kind::Dir,
                    meta: self.meta(&st, ignored),
                });
                self.walk(&path, &crel, out)?;
                if ignored && out.len() == at + 1 {
                    out.truncate(at);
                }
                continue;
            }
            if ignored {
                continue;
            }
            let kind = match ft {
                FileType::RegularFile => Kind::File { size: st.st_size as u64 },
                FileType::Symlink => {
                    let t = rustix::fs::readlinkat(&fd, name.as_str(), Vec::new())
                        .map_err(|e| Error::io("read link", self.ctx.root.join(&path), e.into()))?;
                    Kind::Symlink(String::from_utf8_lossy(t.as_bytes()).into_owned())
                }
                _ => continue,
            };
            out.push(Entry { rel: crel, path: format!("/{path}"), kind, meta: self.meta(&st, false) });
        }
        Ok(())
    }
}

fn list_dir(fd: OwnedFd) -> Result<Vec<String>, Error> {
    let dir = rustix::fs::Dir::new(fd).map_err(|e| Error::io("read directory", "", e.into()))?;
    let mut names = Vec::new();
    for ent in dir {
        let ent = ent.map_err(|e| Error::io("read directory", "", e.into()))?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        names.push(String::from_utf8_lossy(n).into_owned());
    }
    names.sort();
    Ok(names)
}

/// The cache key of a COPY's sources: relative paths, kinds, modes, owners, file contents
/// and symlink targets, in order. Modification times are left out, so touching a file
/// does not invalidate the cache but editing it does.
pub fn hash_sources(sources: &[Source]) -> Result<Digest, Error> {
    let mut h = sha2::Sha256::new();
    for s in sources {
        h.update(format!("source\0{}\0{}\0", s.rel, s.is_dir).as_bytes());
        let rootfd = open_root(&s.root).map_err(|e| Error::io("open", &s.root, e))?;
        for e in &s.entries {
            let m = &e.meta;
            h.update(format!("{}\0{:o}\0{}\0{}\0", e.rel, m.mode, m.uid, m.gid).as_bytes());
            match &e.kind {
                Kind::Dir => h.update(b"dir\0"),
                Kind::Symlink(t) => h.update(format!("symlink\0{t}\0").as_bytes()),
                Kind::File { .. } => {
                    let fd = open_in_root(&rootfd, &e.path, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty())
                        .map_err(|err| Error::io("open", s.root.join(e.path.trim_start_matches('/')), err))?;
                    let mut fh = sha2::Sha256::new();
                    let mut f = File::from(fd);
                    let n = io::copy(&mut f, &mut fh)
                        .map_err(|err| Error::io("read", s.root.join(e.path.trim_start_matches('/')), err))?;
                    h.update(format!("file\0{n}\0").as_bytes());
                    h.update(fh.finalize());
                }
            }
            h.update(b"\n");
        }
    }
    Ok(Digest::from_hasher(h))
}

/// Copies `sources` to `dest` inside `root`, Docker's way: a relative `dest` is relative to
/// `workdir`; a `dest` ending in `/` (or `.`), several sources, or an existing directory
/// make it a directory; a directory source copies its contents; missing directories are
/// created 0755; files keep their mode unless `--chmod` and belong to root (or the source's
/// owner for `COPY --from`) unless `--chown`. Every path is resolved inside `root`, so
/// symlinks already in `root` cannot send a write outside it.
pub fn copy_into(sources: &[Source], dest: &str, workdir: &str, root: &Path, opts: CopyOpts) -> Result<(), Error> {
    let mut patterns: Vec<&str> = sources.iter().map(|s| s.pattern.as_str()).collect();
    patterns.dedup();
    let dir_hint = dest.is_empty() || dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    if patterns.len() > 1 && !dir_hint {
        return Err(Error::DestNotDir);
    }
    let abs = if dest.starts_with('/') {
        dest.to_owned()
    } else {
        format!("{}/{dest}", if workdir.is_empty() { "/" } else { workdir })
    };
    let dest_abs = clean_path(&format!("/{abs}"));
    let rootfd = open_root(root).map_err(|e| Error::io("open", root, e))?;
    let owner = opts.chown.unwrap_or((0, 0));
    let existing_dir = open_in_root(&rootfd, &dest_abs, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).is_ok();
    let into_dir = dir_hint || sources.len() > 1 || existing_dir || opts.parents;
    let with_opts = |m: &Meta| Meta {
        mode: opts.chmod.unwrap_or(m.mode),
        uid: opts.chown.map_or(m.uid, |c| c.0),
        gid: opts.chown.map_or(m.gid, |c| c.1),
        mtime: m.mtime,
    };
    for s in sources {
        let srcfd = open_root(&s.root).map_err(|e| Error::io("open", &s.root, e))?;
        let dest_abs = if opts.parents && !s.parents_rel.is_empty() {
            let sub = if s.is_dir {
                s.parents_rel.clone()
            } else {
                split_parent(&format!("/{}", s.parents_rel)).0.to_owned()
            };
            clean_path(&format!("{dest_abs}/{sub}"))
        } else {
            dest_abs.clone()
        };
        if s.is_dir {
            let created = open_in_root(&rootfd, &dest_abs, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).is_err();
            ensure_dir(&rootfd, &dest_abs, owner).map_err(|e| Error::io("create directory", &dest_abs, e))?;
            let mut dirs: Vec<(String, Meta)> = Vec::new();
            for e in &s.entries {
                if e.rel.is_empty() {
                    if created && dest_abs != "/" {
                        let (parent, name) = split_parent(&dest_abs);
                        let pfd = open_parent(&rootfd, parent)?;
                        apply_meta_at(&pfd, name, &with_opts(&e.meta), false)?;
                        dirs.push((dest_abs.clone(), e.meta));
                    }
                    continue;
                }
                let target = clean_path(&format!("{dest_abs}/{}", e.rel));
                let (parent, name) = split_parent(&target);
                let pfd = open_parent(&rootfd, parent)?;
                let existed = rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok();
                write_entry(&rootfd, &srcfd, &pfd, name, e, &with_opts(&e.meta), &target, &s.root)?;
                if e.kind == Kind::Dir && !existed {
                    dirs.push((target, e.meta));
                }
            }
            for (path, meta) in dirs.iter().rev() {
                let (parent, name) = split_parent(path);
                if let Ok(pfd) = open_parent(&rootfd, parent) {
                    let _ = set_times_at(&pfd, name, meta.mtime);
                }
            }
            continue;
        }
        let Some(e) = s.entries.first() else { continue };
        if opts.add && is_archive(&srcfd, &e.path, &s.root)? {
            // The destination is the archive's root, as Docker unpacks it chrooted there: a
            // symlink in the tar (`x -> /tmp`) resolves inside it, so `x/evil` lands in
            // dest/tmp, never in the image's /tmp.
            let destfd =
                ensure_dir(&rootfd, &dest_abs, owner).map_err(|err| Error::io("create directory", &dest_abs, err))?;
            let fd = open_in_root(&srcfd, &e.path, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty())
                .map_err(|err| Error::io("open", s.root.join(e.path.trim_start_matches('/')), err))?;
            // Device nodes and FIFOs are left out, as Docker leaves them out where it may
            // not create devices (rootless, user namespaces); `import` refuses them.
            let xopts = ExtractOpts { devices: Devices::Skip, label: "tar archive", owner: opts.chown };
            with_decompressed(BufReader::new(File::from(fd)), |r| extract_tar(r, &destfd, "/", &xopts))
                .map_err(|source| Error::Archive { what: "archive", source })?;
            continue;
        }
        let base = s.rel.rsplit('/').next().unwrap_or(&s.rel);
        let target = if into_dir { clean_path(&format!("{dest_abs}/{base}")) } else { dest_abs.clone() };
        let (parent, name) = split_parent(&target);
        let pfd = ensure_dir(&rootfd, parent, owner).map_err(|err| Error::io("create directory", parent, err))?;
        write_entry(&rootfd, &srcfd, &pfd, name, e, &with_opts(&e.meta), &target, &s.root)?;
    }
    Ok(())
}

/// Writes `content` as the file `path` (absolute, or relative to `workdir`) inside `root`:
/// for `COPY <<EOF` heredocs. Missing directories are created 0755 for `owner`; an existing
/// file is replaced; the modification time is now.
pub fn write_file(
    root: &Path,
    path: &str,
    workdir: &str,
    content: &[u8],
    mode: u32,
    owner: (u32, u32),
) -> Result<(), Error> {
    let abs = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{}/{path}", if workdir.is_empty() { "/" } else { workdir })
    };
    let target = clean_path(&format!("/{abs}"));
    let rootfd = open_root(root).map_err(|e| Error::io("open", root, e))?;
    let (parent, name) = split_parent(&target);
    if name.is_empty() {
        return Err(Error::ReplaceDir { path: target });
    }
    let pfd = ensure_dir(&rootfd, parent, owner).map_err(|e| Error::io("create directory", parent, e))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let meta = Meta { mode, uid: owner.0, gid: owner.1, mtime: (now.as_secs() as i64, now.subsec_nanos()) };
    create_file(&pfd, name, &meta, &mut &content[..], &target)
}

/// Extracts a tar stream (plain, gzip, zstd, bzip2 or xz) into the directory `dest` inside
/// `root`, creating it if needed, usable for any tar that must land in a root filesystem.
/// `dest` is the tar's root: nothing is written outside it, whatever symlinks the tar
/// holds; owners come from the tar unless `chown` is given; FIFOs are created and device
/// nodes refused, as `import` refuses them.
pub fn extract_archive(
    reader: impl Read + Send,
    root: &Path,
    dest: &str,
    chown: Option<(u32, u32)>,
) -> Result<(), Error> {
    let rootfd = open_root(root).map_err(|e| Error::io("open", root, e))?;
    let dest = clean_path(&format!("/{dest}"));
    let destfd =
        ensure_dir(&rootfd, &dest, chown.unwrap_or((0, 0))).map_err(|e| Error::io("create directory", &dest, e))?;
    let xopts = ExtractOpts { devices: Devices::Refuse, label: "tar archive", owner: chown };
    with_decompressed(BufReader::new(reader), |r| extract_tar(r, &destfd, "/", &xopts))
        .map_err(|source| Error::Archive { what: "archive", source })
}

fn open_parent(rootfd: &OwnedFd, parent: &str) -> Result<OwnedFd, Error> {
    open_in_root(rootfd, parent, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| Error::io("open", parent, e))
}

#[allow(clippy::too_many_arguments)]
fn write_entry(
    rootfd: &OwnedFd,
    srcfd: &OwnedFd,
    pfd: &OwnedFd,
    name: &str,
    e: &Entry,
    meta: &Meta,
    target: &str,
    src_root: &Path,
) -> Result<(), Error> {
    match &e.kind {
        Kind::File { .. } => {
            let fd = open_in_root(srcfd, &e.path, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty())
                .map_err(|err| Error::io("open", src_root.join(e.path.trim_start_matches('/')), err))?;
            create_file(pfd, name, meta, &mut File::from(fd), target)
        }
        k => make_entry(rootfd, pfd, name, k, meta, target, Existing::Keep),
    }
}

fn is_archive(srcfd: &OwnedFd, path: &str, root: &Path) -> Result<bool, Error> {
    let fd = open_in_root(srcfd, path, OFlags::RDONLY | OFlags::NOFOLLOW, Mode::empty())
        .map_err(|e| Error::io("open", root.join(path.trim_start_matches('/')), e))?;
    let r = with_decompressed(BufReader::new(File::from(fd)), |r| {
        let mut block = [0u8; 512];
        let mut n = 0;
        while n < 512 {
            match r.read(&mut block[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n == 512 && tar_checksum_ok(&block))
    });
    // Something that does not decompress is not an archive: ADD copies it as it is.
    Ok(r.unwrap_or(false))
}

/// Whether a 512-byte block is a tar header: its checksum field matches, as Go's
/// `archive/tar` requires before it accepts anything else about it.
fn tar_checksum_ok(block: &[u8; 512]) -> bool {
    let field = &block[148..156];
    let text: String = field.iter().take_while(|b| **b != 0 && **b != b' ').map(|b| *b as char).collect();
    let text = text.trim();
    let Ok(want) = u32::from_str_radix(text, 8) else {
        return false;
    };
    let sum: u32 =
        block.iter().enumerate().map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) }).sum();
    sum == want && block.iter().any(|b| *b != 0)
}

/// `mkdir -p` of `path` inside the root: missing directories are created 0755 and given to
/// `owner`; symlinks on the way resolve inside the root. Returns an `O_PATH` descriptor.
pub(crate) fn ensure_dir(rootfd: &OwnedFd, path: &str, owner: (u32, u32)) -> io::Result<OwnedFd> {
    ensure_dir_depth(rootfd, path, owner, 0)
}

fn ensure_dir_depth(rootfd: &OwnedFd, path: &str, owner: (u32, u32), depth: u32) -> io::Result<OwnedFd> {
    if depth > 40 {
        return Err(io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error()));
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY;
    if let Ok(fd) = open_in_root(rootfd, path, flags, Mode::empty()) {
        return Ok(fd);
    }
    let mut cur = String::from("/");
    let mut fd = open_in_root(rootfd, "/", flags, Mode::empty())?;
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let next = clean_path(&format!("{cur}/{comp}"));
        match open_in_root(rootfd, &next, flags, Mode::empty()) {
            Ok(f) => fd = f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(&fd, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {
                        let dfd = rustix::fs::openat(
                            &fd,
                            comp,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )?;
                        rustix::fs::fchown(
                            &dfd,
                            Some(Uid::from_raw_unchecked(owner.0)),
                            Some(Gid::from_raw_unchecked(owner.1)),
                        )?;
                        // mkdir's mode went through the umask.
                        rustix::fs::fchmod(&dfd, Mode::from_raw_mode(0o755))?;
                    }
                    Err(rustix::io::Errno::EXIST) => {
                        // A dangling symlink: create what it points to, inside the root, as
                        // mkdir -p through it would.
                        let st = rustix::fs::statat(&fd, comp, AtFlags::SYMLINK_NOFOLLOW)?;
                        if file_type(&st) == FileType::Symlink {
                            let t = rustix::fs::readlinkat(&fd, comp, Vec::new())?;
                            let t = String::from_utf8_lossy(t.as_bytes()).into_owned();
                            let abs = if t.starts_with('/') { t } else { format!("{cur}/{t}") };
                            ensure_dir_depth(rootfd, &clean_path(&abs), owner, depth + 1)?;
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                fd = open_in_root(rootfd, &next, flags, Mode::empty())?;
            }
            Err(e) => return Err(e),
        }
        cur = next;
    }
    Ok(fd)
}

/// Removes a non-directory at `parent/name` so something new can be created there.
pub(crate) fn remove_existing(parent: &OwnedFd, name: &str, path: &str) -> Result<(), Error> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if file_type(&st) == FileType::Directory => Err(Error::ReplaceDir { path: path.to_owned() }),
        Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(|e| Error::io("remove", path, e.into())),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::io("stat", path, e.into())),
    }
}

/// Creates a regular file at `parent/name` (replacing a non-directory) from `content`.
pub(crate) fn create_file(
    parent: &OwnedFd,
    name: &str,
    meta: &Meta,
    content: &mut dyn Read,
    path: &str,
) -> Result<(), Error> {
    remove_existing(parent, name, path)?;
    let fd = rustix::fs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::io("create", path, e.into()))?;
    let mut f = File::from(fd);
    io::copy(content, &mut f).map_err(|e| Error::io("write", path, e))?;
    set_fd_meta(&f, meta).map_err(|e| Error::io("set attributes of", path, e))?;
    rustix::fs::futimens(&f, &times(meta.mtime)).map_err(|e| Error::io("set times of", path, e.into()))?;
    Ok(())
}

fn set_fd_meta(fd: &impl AsFd, meta: &Meta) -> io::Result<()> {
    // chown first: it clears setuid/setgid bits that chmod then sets.
    rustix::fs::fchown(fd, Some(Uid::from_raw_unchecked(meta.uid)), Some(Gid::from_raw_unchecked(meta.gid)))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))?;
    Ok(())
}

fn times(mtime: (i64, u32)) -> Timestamps {
    let t = Timespec { tv_sec: mtime.0, tv_nsec: i64::from(mtime.1) };
    Timestamps { last_access: t, last_modification: t }
}

/// Sets the modification (and access) time of `parent/name` without following a symlink.
pub(crate) fn set_times_at(parent: &OwnedFd, name: &str, mtime: (i64, u32)) -> io::Result<()> {
    rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Applies owner, mode and (except for directories, whose times are set last) mtime to
/// `parent/name` without following a symlink there.
pub(crate) fn apply_meta_at(parent: &OwnedFd, name: &str, meta: &Meta, is_symlink: bool) -> Result<(), Error> {
    let err = |op, e: rustix::io::Errno| Error::io(op, name, e.into());
    if is_symlink {
        rustix::fs::chownat(
            parent,
            name,
            Some(Uid::from_raw_unchecked(meta.uid)),
            Some(Gid::from_raw_unchecked(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| err("chown", e))?;
        return set_times_at(parent, name, meta.mtime).map_err(|e| Error::io("set times of", name, e));
    }
    let st = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| err("stat", e))?;
    match file_type(&st) {
        FileType::Directory => {
            let fd = rustix::fs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| err("open", e))?;
            set_fd_meta(&fd, meta).map_err(|e| Error::io("set attributes of", name, e))
        }
        FileType::Symlink => Err(Error::io("set attributes of", name, io::Error::other("became a symlink"))),
        _ => {
            rustix::fs::chownat(
                parent,
                name,
                Some(Uid::from_raw_unchecked(meta.uid)),
                Some(Gid::from_raw_unchecked(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| err("chown", e))?;
            rustix::fs::chmodat(parent, name, Mode::from_raw_mode(meta.mode & 0o7777), AtFlags::empty())
                .map_err(|e| err("chmod", e))?;
            set_times_at(parent, name, meta.mtime).map_err(|e| Error::io("set times of", name, e))
        }
    }
}

/// What happens to the metadata of a directory that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Left alone: BuildKit's copy only sets metadata on directories it creates. (Tar
    /// extraction, which overwrites it, is `berth_base::fsroot::unpack_tar`'s.)
    Keep,
}

/// Creates a directory or symlink at `parent/name`. An existing directory is kept (its
/// attributes updated); an existing symlink to a directory inside the root is kept and
/// merged through, as tar and Docker's copy do for `/lib -> usr/lib`.
pub(crate) fn make_entry(
    rootfd: &OwnedFd,
    parent: &OwnedFd,
    name: &str,
    kind: &Kind,
    meta: &Meta,
    path: &str,
    existing: Existing,
) -> Result<(), Error> {
    match kind {
        Kind::Dir => {
            match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if file_type(&st) == FileType::Directory => {
                    if existing == Existing::Keep {
                        return Ok(());
                    }
                }
                Ok(st)
                    if file_type(&st) == FileType::Symlink
                        && open_in_root(rootfd, path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).is_ok() =>
                {
                    return Ok(());
                }
                Ok(_) => {
                    rustix::fs::unlinkat(parent, name, AtFlags::empty())
                        .map_err(|e| Error::io("remove", path, e.into()))?;
                    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| Error::io("create directory", path, e.into()))?;
                }
                Err(_) => {
                    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| Error::io("create directory", path, e.into()))?;
                }
            }
            apply_meta_at(parent, name, meta, false)
        }
        Kind::Symlink(target) => {
            remove_existing(parent, name, path)?;
            rustix::fs::symlinkat(target.as_str(), parent, name)
                .map_err(|e| Error::io("create symlink", path, e.into()))?;
            apply_meta_at(parent, name, meta, true)
        }
        Kind::File { .. } => create_file(parent, name, meta, &mut io::empty(), path),
    }
}

/// Resolves a `--chown` value (`user`, `user:group`, numeric or names) with the caller's
/// lookups: `users` gives a name's uid and primary gid, `groups` a group's gid. A user
/// alone uses its primary group, a uid alone the same number as gid (Docker's rule).
pub fn parse_chown(
    spec: &str,
    users: &dyn Fn(&str) -> Option<(u32, u32)>,
    groups: &dyn Fn(&str) -> Option<u32>,
) -> Result<(u32, u32), Error> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => {
            users(user).ok_or_else(|| Error::UnknownOwner { what: "user", name: user.to_owned(), file: "passwd" })?
        }
    };
    let gid = match group {
        None | Some("") => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                groups(g).ok_or_else(|| Error::UnknownOwner { what: "group", name: g.to_owned(), file: "group" })?
            }
        },
    };
    Ok((uid, gid))
}

/// [`parse_chown`] with the names looked up in `rootfs`'s `/etc/passwd` and `/etc/group`
/// (read inside the root, so links in the image cannot point the lookup elsewhere).
pub fn resolve_owner(rootfs: &Path, spec: &str) -> Result<(u32, u32), Error> {
    let passwd =
        read_in_root(rootfs, "/etc/passwd").map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let group =
        read_in_root(rootfs, "/etc/group").map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let users = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?))).flatten()
        })
    };
    let groups = |name: &str| {
        group.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok()).flatten()
        })
    };
    parse_chown(spec, &users, &groups)
}

/// Files a COPY reads: the build context, or a stage's or image's root.
pub trait SourceRoot: Sync {
    /// Resolves patterns to sources, leaving out what `exclude` matches, and hashes them
    /// for the cache key.
    fn resolve(&self, patterns: &[String], exclude: &[String]) -> Result<(Vec<Source>, Digest), Error>;
    /// Host path of the root.
    fn path(&self) -> &Path;
    /// Everything the root shows (the whole tree but what `.dockerignore` hides), as one
    /// directory source, without hashing it: what a bind mount of the root may see.
    fn visible(&self) -> Result<Vec<Source>, Error>;
}

impl SourceRoot for Context {
    fn resolve(&self, patterns: &[String], exclude: &[String]) -> Result<(Vec<Source>, Digest), Error> {
        let sources = resolve_sources_excluding(self, patterns, exclude)?;
        let digest = hash_sources(&sources)?;
        Ok((sources, digest))
    }

    fn path(&self) -> &Path {
        &self.root
    }

    fn visible(&self) -> Result<Vec<Source>, Error> {
        resolve_sources(self, &[".".to_owned()])
    }
}

/// A stage's or image's root for `COPY --from`, or a fetched remote source.
pub struct DirRoot(Context);

impl DirRoot {
    /// Wraps a mounted root.
    pub fn new(root: &Path) -> DirRoot {
        DirRoot(Context::stage(root))
    }
}

impl SourceRoot for DirRoot {
    fn resolve(&self, patterns: &[String], exclude: &[String]) -> Result<(Vec<Source>, Digest), Error> {
        self.0.resolve(patterns, exclude)
    }

    fn path(&self) -> &Path {
        &self.0.root
    }

    fn visible(&self) -> Result<Vec<Source>, Error> {
        self.0.visible()
    }
}

/// Writes `COPY <<EOF` heredoc files (name, content) at `dest`: into it as a directory
/// when it ends in `/` or there are several, as the file `dest` otherwise.
pub fn write_heredocs(
    heredocs: &[(String, String)],
    dest: &str,
    workdir: &str,
    rootfs: &Path,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
) -> Result<(), Error> {
    let into_dir = dest.ends_with('/') || heredocs.len() > 1;
    for (name, content) in heredocs {
        let path = if into_dir { format!("{}/{name}", dest.trim_end_matches('/')) } else { dest.to_owned() };
        write_file(rootfs, &path, workdir, content.as_bytes(), chmod.unwrap_or(0o644), owner.unwrap_or((0, 0)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chown_rules() {
        let users = |n: &str| (n == "app").then_some((1000, 1001));
        let groups = |n: &str| (n == "staff").then_some(50);
        assert_eq!(parse_chown("10", &users, &groups).unwrap(), (10, 10));
        assert_eq!(parse_chown("10:20", &users, &groups).unwrap(), (10, 20));
        assert_eq!(parse_chown("app", &users, &groups).unwrap(), (1000, 1001));
        assert_eq!(parse_chown("app:staff", &users, &groups).unwrap(), (1000, 50));
        let e = parse_chown("nobody", &users, &groups).unwrap_err();
        assert_eq!(e.to_string(), "unable to find user nobody: no matching entries in passwd file");
        assert!(parse_chown("app:nogroup", &users, &groups).is_err());
    }

    #[test]
    fn tar_header_detection() {
        let mut h = tar::Header::new_gnu();
        h.set_path("a").unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut block = [0u8; 512];
        block.copy_from_slice(h.as_bytes());
        assert!(tar_checksum_ok(&block));
        block[0] = b'b';
        assert!(!tar_checksum_ok(&block));
        assert!(!tar_checksum_ok(&[0u8; 512]));
    }
}
