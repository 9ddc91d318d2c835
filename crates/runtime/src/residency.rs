//! What a long-lived process of the berth binary keeps resident of the binary itself. The
//! kernel maps file pages 64 KiB at a time around each fault (fault-around), and a binary
//! that holds the CLI, the daemon, the shim and the builder has the code a process ran once
//! (its start-up, a create) spread over many such windows: when the binary is in the page
//! cache, a daemon idles with 15-19 MiB resident, most of it code it will not run again.
//! Dropping the page-table entries of clean file mappings leaves the pages in the page
//! cache (shared, reclaimable) and the process's resident set at what it touches next.

/// Drops this process's page-table entries of every non-writable, file-backed private
/// mapping that holds no anonymous (copied) page: the binary's code and read-only data and
/// the shared libraries'. The next access of a page faults it back from the page cache.
pub fn drop_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize, bool)> = None;
    let mut copied = false;
    let release = |m: Option<(usize, usize, bool)>, copied: bool| {
        if let Some((start, end, eligible)) = m
            && eligible
            && !copied
        {
            // SAFETY: the range is a whole non-writable, file-backed private mapping of this
            // process with no anonymous (copied) pages (from /proc/self/smaps). MADV_DONTNEED only
            // drops its page-table entries; the unchanged file contents are read back on the
            // next access, so no data is lost.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            release(current.take(), copied);
            let perms = f.next().unwrap_or("");
            let inode = f.nth(2).unwrap_or("0");
            let path = f.next().unwrap_or("");
            let eligible =
                end > start && perms.starts_with('r') && !perms.contains('w') && inode != "0" && path.starts_with('/');
            current = Some((start, end, eligible));
            copied = false;
        } else if first == "Anonymous:" && f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1) > 0 {
            // A copied page (relocated read-only data, say) would be lost; a page that is
            // dirty in the page cache (a binary written moments ago, `Private_Dirty` too)
            // stays there, and is no reason to keep the mapping.
            copied = true;
        }
    }
    release(current.take(), copied);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The binary's mapped code goes, nothing it holds is lost, and it runs on.
    /// Maps `len` bytes of `file` read-only and private, and reads every page.
    fn map_and_touch(file: &std::fs::File, len: usize, prot: i32) -> *mut u8 {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh private mapping of a file of at least `len` bytes, unmapped by
        // the caller; nothing else aliases it.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_PRIVATE, file.as_raw_fd(), 0) };
        assert_ne!(p, libc::MAP_FAILED);
        let p = p as *mut u8;
        for off in (0..len).step_by(4096) {
            // SAFETY: within the mapping.
            assert_eq!(unsafe { p.add(off).read_volatile() }, 7);
        }
        p
    }

    #[test]
    fn pages_dirty_in_the_page_cache_are_dropped_and_copied_ones_kept() {
        const LEN: usize = 4 << 20;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh");
        std::fs::write(&path, vec![7u8; LEN]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // Just written: its pages are dirty in the page cache, and mapped read-only.
        let fresh = map_and_touch(&file, LEN, libc::PROT_READ);
        // A private copy of one page, then made read-only (as relocated data is).
        let copy_file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let copied = map_and_touch(&copy_file, 8192, libc::PROT_READ | libc::PROT_WRITE);
        // SAFETY: within the mapping, which is writable until the mprotect below.
        unsafe {
            copied.write_volatile(42);
            assert_eq!(libc::mprotect(copied as *mut libc::c_void, 8192, libc::PROT_READ), 0);
        }
        let before = rss_file_kib();
        drop_clean_file_pages();
        let after = rss_file_kib();
        assert!(before - after >= (LEN / 1024) as u64, "RssFile {before} KiB before, {after} KiB after");
        // SAFETY: both mappings are still in place (only their page-table entries went).
        unsafe {
            assert_eq!(copied.read_volatile(), 42, "the copied page was kept");
            assert_eq!(fresh.add(LEN - 1).read_volatile(), 7, "the file's page faults back");
            libc::munmap(fresh as *mut libc::c_void, LEN);
            libc::munmap(copied as *mut libc::c_void, 8192);
        }
    }

    #[test]
    fn clean_file_pages_are_unmapped_and_fault_back() {
        let before = rss_file_kib();
        drop_clean_file_pages();
        let after = rss_file_kib();
        assert!(after < before, "RssFile {before} KiB before, {after} KiB after");
        // Code and read-only data come back from the page cache on use.
        let v: Vec<String> = (0..100).map(|i| format!("{i:04}")).collect();
        assert_eq!(v[42], "0042");
        assert!(rss_file_kib() > 0);
    }
}
