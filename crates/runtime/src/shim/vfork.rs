//! A helper child that shares the shim's memory, for the short jobs the shim does inside a
//! container's namespaces (enter them, mount, leave). A `fork` would copy the page tables of
//! the whole shim (the big binary's mappings, its heap) for a child that makes a handful of
//! system calls, and the child's exit would tear that copy down again: on the start path of
//! every container that was about half a millisecond of CPU. A child made with
//! `CLONE_VM | CLONE_VFORK` copies nothing; the calling thread sleeps until it has exited.
//!
//! Written against `libc::clone` by hand: neither rustix nor the crates we already link offer
//! a vfork-style clone with a closure (nix's `sched::clone` boxes the callback and is not a
//! dependency of ours).

use std::ffi::c_void;

use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

/// The helper's own stack: its jobs are a few system calls deep.
const STACK_SIZE: usize = 64 * 1024;

/// The child's entry: runs the job that `run` passed by pointer and returns its exit code
/// (glibc's clone wrapper then ends the child with it).
extern "C" fn trampoline(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` points at `run`'s `job` reference, which outlives the child: `run`'s
    // thread sleeps in the vfork until the child has exited.
    let job = unsafe { &mut *(arg as *mut &mut dyn FnMut() -> i32) };
    job()
}

/// Runs `job` in a child that shares this process's memory and returns the child's exit
/// status (`None` when a signal ended it).
///
/// The job must only make system calls on memory prepared before it: no allocation, no
/// locks, no panics (it runs on the caller's memory while the caller sleeps, with the
/// caller's thread-local storage). Every signal is blocked around the clone, so no handler
/// runs on the helper's stack; the child leaves with its exit code and never unblocks them.
/// For single-threaded callers (the shim): another thread could still run beside the child.
pub(super) fn run(job: &mut dyn FnMut() -> i32) -> Result<Option<i32>, Errno> {
    let mut stack: Vec<u8> = Vec::with_capacity(STACK_SIZE);
    // The stack grows down from its 16-byte aligned top.
    let top = (stack.as_mut_ptr() as usize + STACK_SIZE) & !15;
    let mut job_ref: &mut dyn FnMut() -> i32 = job;
    // SAFETY: sigset_t is plain data, valid all zeroes.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigfillset and pthread_sigmask only write the sets they are given.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: the stack is owned memory of STACK_SIZE bytes, alive until `run` returns, which is
    // after the child has exited (CLONE_VFORK); `job_ref` lives as long; the child only runs
    // `trampoline`. Without CLONE_FS the child may enter another mount namespace.
    let child = unsafe {
        libc::clone(
            trampoline,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut job_ref as *mut &mut dyn FnMut() -> i32 as *mut c_void,
        )
    };
    let clone_error = Errno::from_io_error(&std::io::Error::last_os_error());
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    let pid = match Pid::from_raw(child) {
        Some(p) if child > 0 => p,
        _ => return Err(clone_error.unwrap_or(Errno::AGAIN)),
    };
    let status = loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Err(Errno::INTR) => continue,
            other => break other?,
        }
    };
    Ok(status.and_then(|(_, s)| s.exit_status()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_shares_memory_and_its_exit_code_comes_back() {
        let mut seen = 0u32;
        let status = run(&mut || {
            seen = 7;
            3
        })
        .expect("clone");
        assert_eq!(status, Some(3));
        // A write the child made to the caller's memory is visible: no copy was made.
        assert_eq!(seen, 7);
    }

    #[test]
    fn the_child_runs_in_a_process_of_its_own() {
        let parent = rustix::process::getpid();
        let mut child_pid = 0;
        let status = run(&mut || {
            child_pid = rustix::process::getpid().as_raw_nonzero().get();
            0
        })
        .expect("clone");
        assert_eq!(status, Some(0));
        assert_ne!(child_pid, 0);
        assert_ne!(child_pid, parent.as_raw_nonzero().get());
    }
}
