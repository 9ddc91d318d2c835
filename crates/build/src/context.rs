//! The build context: the files a build may COPY, either a directory on this machine or a
//! tar stream a client uploaded (extracted safely into a private directory), together with
//! its `.dockerignore`. The client side (the tar the docker CLI sends) is
//! [`berth_context::tar_context`], re-exported here.

use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_base::fsroot::{Devices, TarOptions, open_in_root, open_root, unpack_tar};
use rustix::fs::{Mode, OFlags};

use crate::Error;
use crate::dockerignore::{IgnoreMatcher, clean_path};
/// The client side's tar writer, from `berth_context`.
pub use berth_context::tar_context;

/// What a root's files are for, which decides how symlinks and owners are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A build context: a source reached through a symlink that points outside it is an
    /// error, and copied files are owned by root unless `--chown` says otherwise.
    BuildContext,
    /// Another stage's or image's root (`COPY --from`): symlinks resolve as if the root were
    /// `/`, and files keep their owners.
    Stage,
}

/// A root directory that COPY reads from.
#[derive(Debug)]
pub struct Context {
    /// The directory (canonical path).
    pub root: PathBuf,
    /// Files it hides.
    pub ignore: IgnoreMatcher,
    /// How symlinks and owners are treated.
    pub kind: RootKind,
    /// Set when `root` is our private extraction directory, removed on drop.
    owned: bool,
}

impl Drop for Context {
    fn drop(&mut self) {
        if self.owned {
            // Best effort: a leftover directory under the work root is swept by its owner.
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

impl Context {
    /// A context directory on this machine, with the ignore file that belongs to
    /// `dockerfile` (a path relative to `dir`, or absolute).
    pub fn from_dir(dir: &Path, dockerfile: &Path) -> Result<Context, Error> {
        let root = std::fs::canonicalize(dir).map_err(|e| Error::io("open build context", dir, e))?;
        if !root.is_dir() {
            return Err(Error::io("open build context", dir, io::Error::from(io::ErrorKind::NotADirectory)));
        }
        let ignore = IgnoreMatcher::load(&root, dockerfile)?;
        Ok(Context { root, ignore, kind: RootKind::BuildContext, owned: false })
    }

    /// Extracts an uploaded context (tar, possibly gzip, zstd, bzip2 or xz compressed) into
    /// a new private directory under `work_dir`, removed again when the `Context` is dropped.
    /// `dockerfile` is the Dockerfile's name inside the context (the API's `dockerfile`
    /// parameter); its ignore file is read from the extracted tree. Entries never land
    /// outside the directory and device nodes are skipped.
    pub fn from_tar<R: Read + Send>(reader: R, work_dir: &Path, dockerfile: &str) -> Result<Context, Error> {
        std::fs::create_dir_all(work_dir).map_err(|e| Error::io("create", work_dir, e))?;
        let dir = work_dir.join(format!("context-{}", berth_base::new_id()));
        std::fs::create_dir(&dir).map_err(|e| Error::io("create", &dir, e))?;
        // From here on the directory is ours: dropping `ctx` on an error removes it.
        let mut ctx =
            Context { root: dir.clone(), ignore: IgnoreMatcher::default(), kind: RootKind::BuildContext, owned: true };
        ctx.root = std::fs::canonicalize(&dir).map_err(|e| Error::io("open", &dir, e))?;
        let rootfd = open_root(&ctx.root).map_err(|e| Error::io("open", &ctx.root, e))?;
        let opts = ExtractOpts { devices: Devices::Skip, label: "build context", owner: Some((0, 0)) };
        with_decompressed(BufReader::new(reader), |r| extract_tar(r, &rootfd, "/", &opts))
            .map_err(|source| Error::Archive { what: "build context", source })?;
        let df = clean_path(dockerfile.trim_start_matches('/'));
        ctx.ignore = IgnoreMatcher::load(&ctx.root, Path::new(&df))?;
        Ok(ctx)
    }

    /// Another stage's or an image's root filesystem, for `COPY --from`.
    pub fn stage(root: &Path) -> Context {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        Context { root, ignore: IgnoreMatcher::default(), kind: RootKind::Stage, owned: false }
    }

    /// A context over `root` with the given ignore rules, not removed on drop.
    pub fn new(root: PathBuf, ignore: IgnoreMatcher, kind: RootKind) -> Context {
        Context { root, ignore, kind, owned: false }
    }
}

/// Options for [`extract_tar`].
pub(crate) struct ExtractOpts {
    /// What becomes of device nodes and FIFOs (see [`Devices`]).
    pub devices: Devices,
    /// What is unpacked, for messages (`archive`, `build context`).
    pub label: &'static str,
    /// Owner for everything extracted; `None` keeps the tar's.
    pub owner: Option<(u32, u32)>,
}

/// Runs `f` on `r` decompressed according to its magic bytes. gzip and zstd are decoded
/// in-process; bzip2 and xz go through the system's `bzip2`/`xz`, as dockerd does for xz.
pub(crate) fn with_decompressed<R: BufRead + Send, T>(
    mut r: R,
    f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
) -> io::Result<T> {
    // A network body may arrive a few bytes at a time: collect the whole magic first.
    let mut head = Vec::with_capacity(8);
    while head.len() < 8 {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(8 - head.len());
        head.extend_from_slice(&buf[..n]);
        r.consume(n);
    }
    let kind = compression_of(&head);
    let mut r = io::Cursor::new(head).chain(r);
    match kind {
        Compression::None => f(&mut r),
        Compression::Gzip => f(&mut flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => f(&mut zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::Bzip2 => through_command("bzip2", r, f),
        Compression::Xz => through_command("xz", r, f),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

pub(crate) fn compression_of(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

fn through_command<R: Read + Send, T>(
    program: &str,
    mut input: R,
    f: impl FnOnce(&mut dyn Read) -> io::Result<T>,
) -> io::Result<T> {
    let mut child = std::process::Command::new(program)
        .args(["-d", "-c", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{program} is needed to decompress this archive: {e}")))?;
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!("{program}: no pipes")));
    };
    let result = std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            // A consumer that stops early closes the pipe; that is not our error to report.
            let r = io::copy(&mut input, &mut stdin);
            drop(stdin);
            r
        });
        let out = f(&mut stdout);
        // Drain so the feeder is never blocked on a full pipe, then let it finish.
        let _ = io::copy(&mut stdout, &mut io::sink());
        let fed = feeder.join().unwrap_or_else(|_| Err(io::Error::other("decompressor feeder panicked")));
        (out, fed)
    });
    let status = child.wait()?;
    let (out, fed) = result;
    let value = out?;
    if !status.success() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{program} -d failed: {status}")));
    }
    fed?;
    Ok(value)
}

/// Splits a cleaned absolute path into its parent and final name.
pub(crate) fn split_parent(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

/// Extracts a tar stream into `dest` (an absolute path inside the root `rootfd`) with
/// `berth_base::fsroot`'s copy rules: neither `..` nor symlinks (in the tar or already in
/// the root) can send a write outside the root.
pub(crate) fn extract_tar(r: &mut dyn Read, rootfd: &OwnedFd, dest: &str, opts: &ExtractOpts) -> io::Result<()> {
    unpack_tar(r, rootfd, dest, &TarOptions::copy(opts.label, opts.owner, opts.devices)).map(drop).map_err(
        |e| match e {
            berth_base::Error::Fs { ref source, .. } => io::Error::new(source.kind(), e),
            e => io::Error::new(io::ErrorKind::InvalidData, e),
        },
    )
}

/// Borrowed view used by [`crate::copy`] to open files below a context's root.
pub(crate) fn open_dir_fd(root: &impl AsFd, path: &str) -> io::Result<OwnedFd> {
    open_in_root(root, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW, Mode::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_magic() {
        assert_eq!(compression_of(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(compression_of(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(compression_of(b"BZh9"), Compression::Bzip2);
        assert_eq!(compression_of(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Compression::Xz);
        assert_eq!(compression_of(b"Dockerfile"), Compression::None);
    }

    /// Reads one byte at a time, like a slow network body.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn magic_split_across_reads() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, b"payload").unwrap();
        let data = gz.finish().unwrap();
        let r = BufReader::with_capacity(1, Trickle(&data));
        let out = with_decompressed(r, |r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v)?;
            Ok(v)
        })
        .unwrap();
        assert_eq!(out, b"payload");
    }

    #[test]
    fn parents() {
        assert_eq!(split_parent("/a"), ("/", "a"));
        assert_eq!(split_parent("/a/b/c"), ("/a/b", "c"));
    }
}
