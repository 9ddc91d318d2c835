//! Crash-safe file primitives: atomic replace (temp file, fsync, rename, fsync dir),
//! files and directories created with an explicit mode (never the process umask's), and
//! advisory locks that guard a data root against a second daemon.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Files holding configuration, state, secrets or logs: the owner (root) only.
pub const PRIVATE_FILE: u32 = 0o600;
/// Files bind-mounted into containers (`/etc/hosts`…), which any container user reads;
/// the directory holding them keeps other host users out.
pub const SHARED_FILE: u32 = 0o644;
/// Directories only the daemon enters.
pub const PRIVATE_DIR: u32 = 0o700;
/// Directories on the path to container roots: root may traverse by group (as Docker's
/// 0710 `root:root`), other users may not.
pub const GUARD_DIR: u32 = 0o710;

/// Writes `data` to `path` so that readers see either the old content or all of the new,
/// never a prefix, even across a crash. The file is private ([`PRIVATE_FILE`]).
pub fn atomic_write(path: &Path, data: &[u8]) -> io::Result<()> {
    atomic_write_mode(path, data, PRIVATE_FILE)
}

/// [`atomic_write`] giving the file exactly `mode`, whatever the process umask.
pub fn atomic_write_mode(path: &Path, mut data: &[u8], mode: u32) -> io::Result<()> {
    atomic_write_from(path, &mut data, mode)
}

/// [`atomic_write_mode`] of what `src` reads to its end. From a file (or a `Take` of one),
/// the kernel copies the bytes without them passing through this process's memory.
pub fn atomic_write_from(path: &Path, src: &mut impl io::Read, mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_sibling(path);
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode & 0o600).open(&tmp)?;
        f.set_permissions(Permissions::from_mode(mode))?;
        io::copy(src, &mut f)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Like [`atomic_write_mode`] — readers see the old content or all of the new, and a
/// process killed mid-write leaves no partial file — but without the two fsyncs, so the
/// file may be lost or empty after a host crash (power loss, kernel panic). For files
/// that are regenerated on every container start (the OCI bundle, `/etc` files) or that
/// only matter while the host stays up (a container's exit record: a host crash ends its
/// container too). Each fsync costs milliseconds on a busy disk, on the start path.
pub fn replace_file_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode & 0o600).open(&tmp)?;
        f.set_permissions(Permissions::from_mode(mode))?;
        f.write_all(data)?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Opens `path` for appending, creating it; the file gets exactly `mode` (an existing file
/// is brought to it too).
pub fn open_append_mode(path: &Path, mode: u32) -> io::Result<File> {
    let f = OpenOptions::new().create(true).append(true).mode(mode & 0o600).open(path)?;
    f.set_permissions(Permissions::from_mode(mode))?;
    Ok(f)
}

/// Creates `path` as a file with exactly `mode` unless it exists; an existing file is
/// brought to `mode`. Used before a library (SQLite) opens it with its own default.
pub fn ensure_file_mode(path: &Path, mode: u32) -> io::Result<()> {
    let f = OpenOptions::new().write(true).create(true).truncate(false).mode(mode & 0o600).open(path)?;
    f.set_permissions(Permissions::from_mode(mode))
}

/// Creates the directory `path` (and missing parents, which get the usual 0755) and gives
/// `path` exactly `mode`, also when it already existed: a data root made by an older
/// version is tightened this way.
pub fn create_dir_mode(path: &Path, mode: u32) -> io::Result<()> {
    match fs::DirBuilder::new().mode(mode & 0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(path)?;
        }
        Err(e) => return Err(e),
    }
    set_mode(path, mode)
}

/// Sets the permission bits of `path` (following symlinks) to `mode`.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, Permissions::from_mode(mode))
}

/// Brings `path` to at most `max` permission bits when it exists: bits outside `max` are
/// cleared, bits it lacks are not added. Symlinks are left alone. Returns whether it changed.
pub fn tighten(path: &Path, max: u32) -> io::Result<bool> {
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if md.file_type().is_symlink() {
        return Ok(false);
    }
    let mode = md.permissions().mode() & 0o7777;
    if mode & !max == 0 {
        return Ok(false);
    }
    set_mode(path, mode & max)?;
    Ok(true)
}

/// A unique temporary path next to `path` (same directory, so rename is atomic).
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = &crate::id::new_id()[..12];
    path.with_file_name(format!(".tmp-{name}-{suffix}"))
}

/// fsyncs a directory so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An exclusive advisory lock on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock without waiting; `Ok(None)` when another process holds it.
    pub fn try_lock(path: &Path) -> io::Result<Option<FileLock>> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(PRIVATE_FILE).open(path)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_lock_excludes() {
        let dir = std::env::temp_dir().join(format!("berth-base-test-{}", crate::id::new_id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temp files left behind");
        let l = FileLock::try_lock(&dir.join("lock")).unwrap();
        assert!(l.is_some());
        // flock locks are per open file description, so a second open conflicts.
        assert!(FileLock::try_lock(&dir.join("lock")).unwrap().is_none());
        drop(l);
        assert!(FileLock::try_lock(&dir.join("lock")).unwrap().is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn modes_are_explicit_whatever_the_umask() {
        let dir = std::env::temp_dir().join(format!("berth-base-mode-{}", crate::id::new_id()));
        // A permissive umask must not open anything up. (A strict one is not tried: the
        // umask is process-wide and would disturb the tests running beside this one.)
        let old = rustix::process::umask(rustix::fs::Mode::empty());
        create_dir_mode(&dir.join("a/b"), GUARD_DIR).unwrap();
        atomic_write(&dir.join("secret"), b"x").unwrap();
        atomic_write_mode(&dir.join("hosts"), b"x", SHARED_FILE).unwrap();
        drop(open_append_mode(&dir.join("log"), PRIVATE_FILE).unwrap());
        ensure_file_mode(&dir.join("db"), PRIVATE_FILE).unwrap();
        rustix::process::umask(old);
        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("a/b"), 0o710);
        assert_eq!(mode("secret"), 0o600);
        assert_eq!(mode("hosts"), 0o644);
        assert_eq!(mode("log"), 0o600);
        assert_eq!(mode("db"), 0o600);
        set_mode(&dir.join("log"), 0o4755).unwrap();
        assert!(tighten(&dir.join("log"), 0o600).unwrap());
        assert_eq!(mode("log"), 0o600);
        assert!(!tighten(&dir.join("log"), 0o644).unwrap(), "never adds bits");
        assert!(!tighten(&dir.join("missing"), 0o600).unwrap());
        // An existing directory is brought to the mode too.
        set_mode(&dir.join("a/b"), 0o777).unwrap();
        create_dir_mode(&dir.join("a/b"), PRIVATE_DIR).unwrap();
        assert_eq!(mode("a/b"), 0o700);
        fs::remove_dir_all(&dir).unwrap();
    }
}
