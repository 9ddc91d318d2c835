//! Executables berth carries inside its own (the `--init` and the container monitor), and
//! how the daemon writes them out without reading them through its own memory.
//!
//! Each is 1.3 MB of the binary's read-only data. Comparing or writing them from the
//! `&'static [u8]` faulted every one of those pages into the daemon at each start and kept
//! them there: 2.6 MB of an idle daemon's 19.4 MB resident set, for bytes used once. The
//! daemon instead finds where the bytes lie in its executable file (`/proc/self/maps`)
//! and compares and copies them from `/proc/self/exe` with file reads and the kernel's
//! file-to-file copy, so those pages are never mapped. Where the file cannot be found (an
//! unusual mapping), the bytes in memory are used.
//!
//! Written by hand: locating a static in the running executable is a few lines over
//! `/proc/self/maps` that no crate provides.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::Error;

/// Writes `bytes` (a static of this executable) as `dir/name` with mode 0755, unless that
/// file holds the same bytes already; returns its path.
pub fn install(dir: &Path, name: &str, bytes: &'static [u8]) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    match in_executable(bytes) {
        Some(range) => install_from(&path, bytes.len(), || range.reader()),
        None => install_from(&path, bytes.len(), || Ok(bytes)),
    }?;
    Ok(path)
}

/// Writes what `open` reads (`len` bytes) as `path`, unless the file has those bytes.
fn install_from<R: Read>(path: &Path, len: usize, open: impl Fn() -> io::Result<R>) -> Result<(), Error> {
    let source = |e| Error::io("failed to read", Path::new("/proc/self/exe"), e);
    if same_as_file(&mut open().map_err(source)?, len, path) {
        return Ok(());
    }
    berth_base::fsutil::atomic_write_from(path, &mut open().map_err(source)?, 0o755)
        .map_err(|e| Error::io("failed to write", path, e))
}

/// Where a static's bytes lie in the executable file.
#[derive(Debug, PartialEq, Eq)]
struct FileRange {
    offset: u64,
    len: u64,
}

impl FileRange {
    /// A reader of exactly those bytes of `/proc/self/exe` (the running executable's
    /// inode, even if its path was replaced since).
    fn reader(&self) -> io::Result<io::Take<File>> {
        let mut f = File::open("/proc/self/exe")?;
        f.seek(SeekFrom::Start(self.offset))?;
        Ok(f.take(self.len))
    }
}

fn in_executable(bytes: &'static [u8]) -> Option<FileRange> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    file_range(&maps, &exe, bytes.as_ptr() as u64, bytes.len() as u64)
}

/// The file range of `len` bytes at address `addr`, from a `/proc/PID/maps` text: the
/// bytes must lie within one mapping of `exe`.
fn file_range(maps: &str, exe: &Path, addr: u64, len: u64) -> Option<FileRange> {
    maps.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (range, _perms, offset) = (f.next()?, f.next()?, f.next()?);
        let (_dev, _inode) = (f.next()?, f.next()?);
        let path: Vec<&str> = f.collect();
        if Path::new(&path.join(" ")) != exe {
            return None;
        }
        let (start, end) = range.split_once('-')?;
        let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
        let offset = u64::from_str_radix(offset, 16).ok()?;
        (addr >= start && addr.checked_add(len)? <= end).then(|| FileRange { offset: offset + (addr - start), len })
    })
}

/// Whether the file at `path` has exactly the `len` bytes `src` reads, compared a chunk
/// at a time.
fn same_as_file(src: &mut impl Read, len: usize, path: &Path) -> bool {
    let Ok(mut f) = File::open(path) else { return false };
    if f.metadata().map(|m| m.len()).ok() != Some(len as u64) {
        return false;
    }
    let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let mut left = len;
    while left > 0 {
        let n = left.min(a.len());
        if src.read_exact(&mut a[..n]).is_err() || f.read_exact(&mut b[..n]).is_err() || a[..n] != b[..n] {
            return false;
        }
        left -= n;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    static PAYLOAD: [u8; 300_000] = {
        let mut a = [0u8; 300_000];
        let mut i = 0;
        while i < a.len() {
            a[i] = (i % 251) as u8;
            i += 1;
        }
        a
    };

    #[test]
    fn a_static_is_found_in_the_executable_and_written_from_it() {
        let range = in_executable(&PAYLOAD).expect("the test executable maps its read-only data from its file");
        let mut copy = Vec::new();
        range.reader().unwrap().read_to_end(&mut copy).unwrap();
        assert!(copy == PAYLOAD, "the file range holds the static's bytes");

        let dir = tempfile::tempdir().unwrap();
        let p = install(dir.path(), "payload", &PAYLOAD).unwrap();
        assert!(std::fs::read(&p).unwrap() == PAYLOAD);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o755);

        // Same bytes: left alone (same inode); different bytes or length: replaced.
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = ino(&p);
        install(dir.path(), "payload", &PAYLOAD).unwrap();
        assert_eq!(ino(&p), before);
        let mut changed = PAYLOAD.to_vec();
        changed[299_999] ^= 1;
        std::fs::write(&p, &changed).unwrap();
        install(dir.path(), "payload", &PAYLOAD).unwrap();
        assert!(std::fs::read(&p).unwrap() == PAYLOAD);
        std::fs::write(&p, &PAYLOAD[..10]).unwrap();
        install(dir.path(), "payload", &PAYLOAD).unwrap();
        assert!(std::fs::read(&p).unwrap() == PAYLOAD);
    }

    #[test]
    fn file_ranges_come_from_one_mapping_of_the_executable() {
        let maps = "\
55d000000000-55d000010000 r--p 00000000 fe:00 12 /usr/bin/berth
55d000010000-55d000030000 r-xp 00010000 fe:00 12 /usr/bin/berth
55d000030000-55d000040000 r--p 00030000 fe:00 12 /opt/my dir/berth
7f0000000000-7f0000001000 r--p 00000000 fe:00 13 /usr/lib/libc.so.6
";
        let exe = Path::new("/usr/bin/berth");
        assert_eq!(file_range(maps, exe, 0x55d000010100, 0x100), Some(FileRange { offset: 0x10100, len: 0x100 }));
        assert_eq!(file_range(maps, exe, 0x55d000000000, 0x10000), Some(FileRange { offset: 0, len: 0x10000 }));
        // Across the end of a mapping, in another file, or nowhere: not found.
        assert_eq!(file_range(maps, exe, 0x55d00000ff00, 0x200), None);
        assert_eq!(file_range(maps, exe, 0x7f0000000000, 1), None);
        assert_eq!(file_range(maps, exe, 0x10, 1), None);
        assert_eq!(
            file_range(maps, Path::new("/opt/my dir/berth"), 0x55d000030000, 4),
            Some(FileRange { offset: 0x30000, len: 4 })
        );
    }
}
