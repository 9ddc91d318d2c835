//! `cp`: files between a container and the local file system, with docker's path rules
//! (moby's `go-archive` copy rules, run client-side as the docker CLI does): a trailing
//! `/.` copies a directory's content, a directory lands inside an existing directory or
//! takes the destination's name, a missing parent is an error, `-` is a tar on
//! stdin/stdout. Local reads and writes go through `base::fsroot` too: what comes out of a
//! container is unpacked with the destination directory as its root, so a tar (or a
//! symlink in it) cannot write anywhere else on this machine.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use berth_api::Client;
use berth_api::client::archive::{PutArchive, go_mode};
use berth_base::fsroot::{self, Devices, TarOptions};
use bytes::Bytes;
use clap::Args;

use super::Res;
use crate::CliError;

#[cfg_attr(doc, doc = "`cp`.")]
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Always follow symlinks in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no terminal is attached
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    pub source: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    pub destination: String,
}

fn msg(s: impl Into<String>) -> CliError {
    CliError::Message(s.into())
}

/// docker's `splitCpArg`: `CONTAINER:PATH`, unless the argument is an absolute path or
/// starts with `.` (an explicit local path such as `./file:name.txt`).
pub fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

/// Go's `filepath.Base`.
fn base(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

fn specifies_current_dir(p: &str) -> bool {
    base(p) == "."
}

fn asserts_directory(p: &str) -> bool {
    p.ends_with('/') || specifies_current_dir(p)
}

/// moby's `PreserveTrailingDotOrSeparator`.
fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut c = cleaned.to_owned();
    if !specifies_current_dir(&c) && specifies_current_dir(original) {
        if !c.ends_with('/') {
            c.push('/');
        }
        c.push('.');
    }
    if !c.ends_with('/') && original.ends_with('/') {
        c.push('/');
    }
    c
}

/// moby's `SplitPathDirEntry`: the parent and the last component, a trailing `.` kept.
pub fn split_path_dir_entry(p: &str) -> (String, String) {
    let mut cleaned = fsroot::clean_path(p);
    if specifies_current_dir(p) {
        cleaned.push_str("/.");
    }
    let (d, b) = match cleaned.rsplit_once('/') {
        Some(("", b)) => ("/".to_owned(), b.to_owned()),
        Some((d, b)) => (d.to_owned(), b.to_owned()),
        None => (".".to_owned(), cleaned.clone()),
    };
    (d, b)
}

/// An absolute local path, its trailing `/` or `/.` kept.
fn resolve_local_path(p: &str) -> Result<String, CliError> {
    let abs = if p.starts_with('/') {
        p.to_owned()
    } else {
        let cwd = std::env::current_dir()?;
        format!("{}/{p}", cwd.display())
    };
    Ok(preserve_trailing(&fsroot::clean_path(&abs), p))
}

/// What a copy's source or destination is (moby's `CopyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyInfo {
    /// The path.
    pub path: String,
    /// It exists.
    pub exists: bool,
    /// It is a directory.
    pub is_dir: bool,
    /// The name the archive's top entry must take instead of the path's own.
    pub rebase: String,
}

/// moby's `GetRebaseName`.
fn rebase_name(path: &str, resolved: &str) -> (String, String) {
    let mut r = resolved.to_owned();
    if specifies_current_dir(path) && !specifies_current_dir(&r) {
        r.push_str("/.");
    }
    if path.ends_with('/') && !r.ends_with('/') {
        r.push('/');
    }
    let rebase = if base(path) != base(&r) { base(path) } else { String::new() };
    (r, rebase)
}

/// Where the archive goes and the name its top entry must take (moby's
/// `PrepareArchiveCopy`); `None` keeps the names.
pub fn prepare_archive_copy(src: &CopyInfo, dst: &CopyInfo) -> Result<(String, Option<(String, String)>), CliError> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, mut src_base) = split_path_dir_entry(&src.path);
    if !src.rebase.is_empty() {
        src_base = src.rebase.clone();
    }
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        return Err(msg("cannot copy directory"));
    }
    if !dst.exists && !src.is_dir && asserts_directory(&dst.path) {
        return Err(msg("no such directory"));
    }
    Ok((dst_dir, Some((src_base, dst_base))))
}

/// moby's `newNameRebaser`.
fn rebase_entry(name: &str, old: &str, new: &str) -> String {
    let old = old.trim_end_matches('/');
    let new = new.trim_end_matches('/');
    if old.is_empty() {
        let n = name.trim_start_matches('/');
        return if new.is_empty() { n.to_owned() } else { format!("{new}/{n}") };
    }
    match name.strip_prefix(old) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{new}{rest}"),
        _ => name.to_owned(),
    }
}

/// moby's `CopyInfoDestinationPath` for a local path: symlinks at the end followed, and a
/// missing destination needs an existing parent directory.
fn local_destination(path: &str) -> Result<CopyInfo, CliError> {
    let mut path = path.to_owned();
    let mut n = 0;
    loop {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                n += 1;
                if n > 10 {
                    return Err(msg(format!("too many symlinks in {path}")));
                }
                let t = std::fs::read_link(&path)?.to_string_lossy().into_owned();
                path = if t.starts_with('/') { t } else { format!("{}/{t}", split_path_dir_entry(&path).0) };
                path = fsroot::clean_path(&path);
            }
            Ok(m) => return Ok(CopyInfo { path, exists: true, is_dir: m.is_dir(), rebase: String::new() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let (parent, _) = split_path_dir_entry(&path);
                let pm = std::fs::metadata(&parent).map_err(|e| msg(format!("stat {parent}: {}", io_text(&e))))?;
                if !pm.is_dir() {
                    return Err(msg("not a directory"));
                }
                return Ok(CopyInfo { path, ..Default::default() });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Go's wording of common OS errors.
fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// docker's `ValidateOutputPath`.
fn validate_output_path(path: &str) -> Result<(), CliError> {
    let dir = split_path_dir_entry(&fsroot::clean_path(path)).0;
    if !dir.is_empty() && dir != "." && !Path::new(&dir).exists() {
        return Err(msg(format!("invalid output path: directory \"{dir}\" does not exist")));
    }
    if let Ok(m) = std::fs::metadata(path) {
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        if !m.is_dir() && !m.is_file() {
            let why =
                if ft.is_block_device() || ft.is_char_device() { "got a device" } else { "got an irregular file" };
            return Err(msg(format!("invalid output path: \"{path}\" must be a directory or a regular file: {why}")));
        }
    }
    Ok(())
}

/// A blocking reader over chunks an async task feeds it.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(Ok(b)) => self.cur = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

fn chunk_reader(mut s: berth_api::client::ByteStream) -> ChunkReader {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    tokio::spawn(async move {
        while let Some(c) = s.next_chunk().await {
            let c = c.map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()));
            let stop = c.is_err();
            let tx = tx.clone();
            if !tokio::task::spawn_blocking(move || tx.send(c).is_ok()).await.unwrap_or(false) || stop {
                break;
            }
        }
    });
    ChunkReader { rx, cur: Bytes::new() }
}

/// Copies `src` (a tar) to `dst`, renaming top entries `old` → `new`.
fn rebase_tar(src: &mut dyn Read, dst: &mut dyn Write, old: &str, new: &str) -> io::Result<()> {
    let mut a = tar::Archive::new(src);
    let mut b = tar::Builder::new(dst);
    for e in a.entries()? {
        let mut e = e?;
        let mut h = e.header().clone();
        let name = rebase_entry(&String::from_utf8_lossy(&e.path_bytes()), old, new);
        let link = e.link_name_bytes().map(|l| String::from_utf8_lossy(l.as_ref()).into_owned());
        let link = match (h.entry_type(), link) {
            (tar::EntryType::Link, Some(l)) => Some(rebase_entry(&l, old, new)),
            (tar::EntryType::Symlink, Some(l)) => Some(l),
            _ => None,
        };
        match link {
            // Byte for byte when it fits: `append_link` would turn a link to `/` into `//`.
            Some(l) if l.len() <= 100 => {
                h.set_link_name_literal(l.as_bytes())?;
                b.append_data(&mut h, &name, io::empty())?;
            }
            Some(l) => b.append_link(&mut h, &name, &l)?,
            None => b.append_data(&mut h, &name, &mut e)?,
        }
    }
    b.finish()
}

/// Unpacks a tar into the local directory `dir` (confined to it), as docker's client
/// does: directories and non-directories never replace each other, files belong to the
/// caller.
fn untar_local(src: &mut dyn Read, dir: &str) -> Result<(), CliError> {
    let root = fsroot::open_root(Path::new(dir)).map_err(|e| msg(format!("open {dir}: {}", io_text(&e))))?;
    let owner = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    let devices = if owner.0 == 0 { Devices::Create } else { Devices::Skip };
    let mut opts = TarOptions::copy("archive", Some(owner), devices);
    opts.keep_non_dirs = true;
    fsroot::unpack_tar(src, &root, "/", &opts).map_err(|e| msg(e.to_string()))?;
    Ok(())
}

fn tty_summary(quiet: bool) -> bool {
    !quiet && rustix::termios::isatty(std::io::stdout())
}

/// `cp`.
pub async fn cp(c: &Client, a: CpArgs) -> Res {
    if a.source.is_empty() {
        return Err(msg("source can not be empty"));
    }
    if a.destination.is_empty() {
        return Err(msg("destination can not be empty"));
    }
    let (sc, sp) = split_cp_arg(&a.source);
    let (dc, dp) = split_cp_arg(&a.destination);
    match (sc, dc) {
        (Some(ctr), None) => from_container(c, ctr, sp, dp, &a).await,
        (None, Some(ctr)) => to_container(c, ctr, sp, dp, &a).await,
        (Some(_), Some(_)) => Err(msg("copying between containers is not supported")),
        (None, None) => Err(msg("must specify at least one container source")),
    }
}

async fn from_container(c: &Client, ctr: &str, src: &str, dst: &str, a: &CpArgs) -> Res {
    let dst = if dst == "-" { dst.to_owned() } else { resolve_local_path(dst)? };
    if dst != "-" {
        validate_output_path(&dst)?;
    }
    let mut src_path = src.to_owned();
    let mut rebase = String::new();
    if a.follow_link
        && let Ok(st) = c.container_stat_path(ctr, src).await
        && st.is_symlink()
    {
        let mut target = st.link_target.clone();
        if !target.starts_with('/') {
            target = fsroot::clean_path(&format!("{}/{target}", split_path_dir_entry(src).0));
        }
        (src_path, rebase) = rebase_name(src, &target);
    }
    let (stat, stream) = c.container_archive(ctr, &src_path).await?;
    if dst == "-" {
        let mut s = stream;
        let mut out = tokio::io::stdout();
        while let Some(chunk) = s.next_chunk().await {
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk?).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out).await?;
        return Ok(());
    }
    let src_info = CopyInfo { path: src_path.clone(), exists: true, is_dir: stat.is_dir(), rebase: rebase.clone() };
    let reader = chunk_reader(stream);
    let dst2 = dst.clone();
    let total = tokio::task::spawn_blocking(move || -> Result<(), CliError> {
        let mut reader = reader;
        let dst_info = local_destination(&dst2)?;
        let mut rename: Option<(String, String)> = None;
        if !rebase.is_empty() {
            rename = Some((split_path_dir_entry(&src_info.path).1, rebase.clone()));
        }
        let (dir, prep) = prepare_archive_copy(&src_info, &dst_info)?;
        // Both renames (the -L target's and the destination's) compose: old → rebase → new.
        let rename = match (rename, prep) {
            (Some((o, _)), Some((_, n))) => Some((o, n)),
            (r, None) => r,
            (None, p) => p,
        };
        match rename {
            None => untar_local(&mut reader, &dir),
            Some((old, new)) => {
                let (pr, pw) = rustix::pipe::pipe().map_err(io::Error::from)?;
                let mut pr = std::fs::File::from(pr);
                let writer = std::thread::spawn(move || {
                    let mut pw = std::fs::File::from(pw);
                    rebase_tar(&mut reader, &mut pw, &old, &new)
                });
                let r = untar_local(&mut pr, &dir);
                drop(pr);
                let w = writer.join().map_err(|_| msg("the archive reader failed"))?;
                r?;
                w.map_err(CliError::from)
            }
        }
    })
    .await
    .map_err(|e| msg(e.to_string()))?;
    total?;
    if tty_summary(a.quiet) {
        let size = if stat.is_dir() { 0 } else { stat.size.max(0) as u64 };
        crate::output::err_line(&format!("Successfully copied {} to {dst}", crate::format::human_size(size as f64)));
    }
    Ok(())
}

/// moby's `ResolveHostSourcePath` + `CopyInfoSourcePath`.
fn local_source(path: &str, follow: bool) -> Result<CopyInfo, CliError> {
    let lstat = |p: &str| std::fs::symlink_metadata(p).map_err(|e| msg(format!("lstat {p}: {}", io_text(&e))));
    let (resolved, rebase) = if follow {
        let r = std::fs::canonicalize(path).map_err(|e| msg(format!("lstat {path}: {}", io_text(&e))))?;
        rebase_name(path, &r.to_string_lossy())
    } else {
        let (d, b) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let rd = if d.is_empty() {
            std::env::current_dir()?
        } else {
            std::fs::canonicalize(d).map_err(|e| msg(format!("lstat {d}: {}", io_text(&e))))?
        };
        let r = format!("{}/{b}", rd.display().to_string().trim_end_matches('/'));
        let rebase = if path.ends_with('/') && base(path) != base(&r) { base(path) } else { String::new() };
        (r, rebase)
    };
    let m = lstat(&resolved)?;
    Ok(CopyInfo { path: resolved, exists: true, is_dir: m.is_dir(), rebase })
}

async fn to_container(c: &Client, ctr: &str, src: &str, dst: &str, a: &CpArgs) -> Res {
    let src = if src == "-" { src.to_owned() } else { resolve_local_path(src)? };
    let mut dst_info = CopyInfo { path: dst.to_owned(), ..Default::default() };
    if let Ok(mut st) = c.container_stat_path(ctr, dst).await {
        let mut ok = true;
        if st.is_symlink() {
            let mut t = st.link_target.clone();
            if !t.starts_with('/') {
                t = fsroot::clean_path(&format!("{}/{t}", split_path_dir_entry(dst).0));
            }
            dst_info.path = t.clone();
            match c.container_stat_path(ctr, &t).await {
                Ok(s) => st = s,
                Err(_) => ok = false,
            }
        }
        if ok {
            if st.mode & go_mode::DEVICE != 0 {
                return Err(msg(format!(
                    "destination \"{ctr}:{dst}\" must be a directory or a regular file: got a device"
                )));
            }
            dst_info.exists = true;
            dst_info.is_dir = st.is_dir();
        }
    }
    let q = |path: String| PutArchive { path, no_overwrite_dir_non_dir: true, copy_uid_gid: a.archive };
    if src == "-" {
        if !dst_info.is_dir {
            return Err(msg(format!("destination \"{ctr}:{dst}\" must be a directory")));
        }
        let body = berth_api::client::reader_body(tokio::io::stdin());
        c.put_container_archive(ctr, &q(dst_info.path.clone()), body).await?;
        return Ok(());
    }
    let src_info = local_source(&src, a.follow_link)?;
    let (dir, rename) = prepare_archive_copy(&src_info, &dst_info)?;
    let (src_dir, src_base) = split_path_dir_entry(&src_info.path);
    // The archive's top entry: the source's own name, or what the copy renames it to.
    let top = match &rename {
        Some((_, new)) => new.clone(),
        None if !src_info.rebase.is_empty() => src_info.rebase.clone(),
        None => src_base.clone(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone(), buf: Vec::new() };
        let r = (|| -> io::Result<()> {
            let host = fsroot::open_root(Path::new("/"))?;
            fsroot::pack_tar(&host.as_fd(), &src_dir, &src_base, &top, &mut w)
                .map_err(|e| io::Error::other(e.to_string()))?;
            w.flush()
        })();
        if let Err(e) = r {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let body = berth_api::client::channel_body(rx);
    let r = c.put_container_archive(ctr, &q(dir), body).await;
    let _ = writer.await;
    r?;
    if tty_summary(a.quiet) {
        let size = local_content_size(Path::new(&src_info.path));
        crate::output::err_line(&format!(
            "Successfully copied {} to {ctr}:{}",
            crate::format::human_size(size as f64),
            dst_info.path
        ));
    }
    Ok(())
}

/// The bytes of regular file content at `p` (docker's `localContentSize`), for the summary.
fn local_content_size(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| local_content_size(&e.path())).sum()).unwrap_or(0)
        }
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    }
}

/// Feeds a channel body from a blocking writer.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_arguments_split_as_dockers() {
        assert_eq!(split_cp_arg("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split_cp_arg("/abs:x"), (None, "/abs:x"));
        assert_eq!(split_cp_arg("./file:name"), (None, "./file:name"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
    }

    #[test]
    fn paths_split_and_keep_trailing_dots() {
        assert_eq!(split_path_dir_entry("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_path_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_path_dir_entry("/a"), ("/".into(), "a".into()));
        assert_eq!(preserve_trailing("/a/b", "x/b/."), "/a/b/.");
        assert_eq!(preserve_trailing("/a/b", "x/b/"), "/a/b/");
        assert_eq!(rebase_entry("./x", ".", "out"), "out/x");
        assert_eq!(rebase_entry("dir/x", "dir", "new"), "new/x");
        assert_eq!(rebase_entry("dirx/y", "dir", "new"), "dirx/y");
    }

    #[test]
    fn copy_rules_are_mobys() {
        let file = |p: &str| CopyInfo { path: p.into(), exists: true, ..Default::default() };
        let dir = |p: &str| CopyInfo { path: p.into(), exists: true, is_dir: true, ..Default::default() };
        let none = |p: &str| CopyInfo { path: p.into(), ..Default::default() };
        // Into an existing directory: no renaming.
        assert_eq!(prepare_archive_copy(&file("/s/f"), &dir("/d")).unwrap(), ("/d".into(), None));
        // A directory onto a file.
        assert_eq!(prepare_archive_copy(&dir("/s/d"), &file("/d/f")).unwrap_err().to_string(), "cannot copy directory");
        // A file into a missing directory named with a trailing slash.
        assert_eq!(prepare_archive_copy(&file("/s/f"), &none("/d/new/")).unwrap_err().to_string(), "no such directory");
        // A new name.
        assert_eq!(
            prepare_archive_copy(&dir("/s/d/."), &none("/d/new")).unwrap(),
            ("/d".into(), Some((".".into(), "new".into())))
        );
        assert_eq!(rebase_name("/l", "/target/dir"), ("/target/dir".into(), "l".into()));
    }
}
