//! What a long-lived process of the berth binary keeps resident of the binary itself. The
//! kernel maps file pages 64 KiB at a time around each fault (fault-around), and a binary
//! that holds the CLI, the daemon, the shim and the builder has the code a process ran once
//! (its start-up, a create) spread over many such windows: when the binary is in the page
//! cache, a daemon idles with 15-19 MiB resident, most of it code it will not run again.
//! Dropping the page-table entries of clean file mappings leaves the pages in the page
//! cache (shared, reclaimable) and the process's resident set at what it touches next.

/// Drops this process's page-table entries of every non-writable, file-backed private
/// mapping that holds no private (copied) page: the binary's code and read-only data and
/// the shared libraries'. The next access of a page faults it back from the page cache.
pub fn drop_clean_file_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let mut current: Option<(usize, usize, bool)> = None;
    let mut dirty = false;
    let release = |m: Option<(usize, usize, bool)>, dirty: bool| {
        if let Some((start, end, eligible)) = m
            && eligible
            && !dirty
        {
            // SAFETY: the range is a whole non-writable, file-backed private mapping of this
            // process with no dirty private pages (from /proc/self/smaps). MADV_DONTNEED only
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
            release(current.take(), dirty);
            let perms = f.next().unwrap_or("");
            let inode = f.nth(2).unwrap_or("0");
            let path = f.next().unwrap_or("");
            let eligible =
                end > start && perms.starts_with('r') && !perms.contains('w') && inode != "0" && path.starts_with('/');
            current = Some((start, end, eligible));
            dirty = false;
        } else if (first == "Private_Dirty:" || first == "Anonymous:")
            && f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1) > 0
        {
            dirty = true;
        }
    }
    release(current.take(), dirty);
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
