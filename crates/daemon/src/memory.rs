//! The daemon's own memory: what it keeps resident when idle and what it gives back after
//! a burst of work. glibc's malloc hands each thread that allocates an arena of its own
//! (up to eight per core) and keeps freed memory in them; a daemon that served a burst
//! of requests on its blocking pool kept several MiB it no longer used. Here the arenas
//! are capped and freed memory is returned to the kernel once a burst is over, with the
//! pages of code the burst ran. None of this changes what the daemon does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Arenas glibc may create: the main one only, shared by the tokio workers and the
/// blocking pool. Each arena a burst grew keeps its own freed pages pinned around the few
/// small allocations that outlive the burst (`malloc_trim` can give back only whole free
/// pages): after 1000 containers were started and removed, two arenas held 8.0 MiB of
/// anonymous memory and one holds 4.8. The daemon's allocations are small and short-lived
/// (request bodies, records, JSON) and each thread's malloc cache serves most of them, so
/// the shared lock costs nothing measurable (interleaved `run -d` and `run --rm`: 0.98 and
/// 0.99 of the two-arena times).
const ARENA_MAX: i32 = 1;

/// How long a thread of the blocking pool may sit idle before it ends (tokio's default is
/// 10 s): each keeps its touched stack and its malloc thread cache. Starting one again
/// costs tens of microseconds, and a burst of work keeps its threads busy.
pub const BLOCKING_IDLE: Duration = Duration::from_secs(2);

/// How long the daemon must have freed nothing in bulk before the trimmer runs: a burst
/// (1000 `rm -f` one after another) is trimmed once, after its end. Longer than
/// [`BLOCKING_IDLE`]: the burst's blocking-pool threads have ended by then, and what their
/// malloc caches held went back to the arena to be trimmed with the rest (trimmed a second
/// after 1000 removals, while they still ran, the daemon kept 7.0 MiB of anonymous memory;
/// after they ended, 3.9).
const QUIET: Duration = Duration::from_secs(3);

/// Set when a large share of the daemon's memory may have become free (a container
/// removed, a build finished); the trimmer clears it.
static FREED: AtomicBool = AtomicBool::new(false);

/// Wakes the trimmer from its idle wait: an idle daemon has no timer running for it.
static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Caps malloc's arenas. Call before any thread is started (arenas are made per thread on
/// first use).
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a malloc tunable (under malloc's own lock); no pointer is
    // passed.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX);
    }
}

/// Notes that memory was freed in bulk: the trimmer returns it to the kernel soon.
pub fn note_freed() {
    if !FREED.swap(true, Ordering::Relaxed) {
        WAKE.notify_one();
    }
}

/// Returns free heap memory to the kernel now, and lets go of the mapped pages of code
/// and read-only data the daemon is not running ([`berth_runtime::residency`]): once it
/// has started, and after a burst, most of what it ran will not run again soon (start-up,
/// restore, the burst's own paths), and the kernel had mapped it 64 KiB around every
/// fault. The pages stay in the page cache; the next request faults back what it uses.
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes malloc's own locks; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
    berth_runtime::residency::drop_clean_file_pages();
}

/// Runs forever on the current runtime: once memory was freed in bulk and then nothing
/// more for [`QUIET`], calls `release` (caches give back what they hold for things that
/// are gone) and then trims the heap, both on the blocking pool (trimming walks every
/// arena under its lock). Idle, it waits without a timer.
pub async fn trimmer(release: impl Fn() + Send + Sync + 'static) {
    let release = std::sync::Arc::new(release);
    loop {
        if !FREED.load(Ordering::Relaxed) {
            WAKE.notified().await;
        }
        // Wait out the burst: another second for as long as something was freed.
        while FREED.swap(false, Ordering::Relaxed) {
            tokio::time::sleep(QUIET).await;
        }
        let release = release.clone();
        let _ = tokio::task::spawn_blocking(move || {
            release();
            trim();
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trimmer waits for the end of a burst, then releases and trims once. Other tests
    /// of this binary remove containers too (and so mark memory freed): they can only
    /// delay a trim, so the test allows for that.
    #[test]
    fn the_heap_is_trimmed_once_a_burst_has_ended() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        limit_arenas();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let released = Arc::new(AtomicUsize::new(0));
        let r = released.clone();
        rt.spawn(trimmer(move || {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        // A burst: something freed every 100 ms for 2 s.
        for _ in 0..20 {
            let v: Vec<Vec<u8>> = (0..100).map(|_| vec![1u8; 64 * 1024]).collect();
            drop(v);
            note_freed();
            std::thread::sleep(Duration::from_millis(100));
        }
        let during = released.load(Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while released.load(Ordering::SeqCst) == during && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(during, 0, "the trimmer ran in the middle of a burst");
        assert!(released.load(Ordering::SeqCst) > during, "no trim after the burst ended");
    }
}
