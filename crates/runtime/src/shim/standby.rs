//! The standby shim: a `berth shim --standby` process started ahead of need, already past
//! `exec`, the dynamic loader and the runtime's own start-up, waiting on its stdin for the
//! options of the container it is to create. Handing it the options replaces a fork and
//! exec of the 45 MB executable on the start path (about 2 ms here) with one pipe write.
//!
//! The daemon keeps at most one ([`Standby`]), started when a create, start or exec
//! request says a shim will soon be wanted; a start takes it and the next request makes
//! another. An unused standby ends when its stdin reaches end of file: when the daemon
//! exits or dies, nothing is left behind.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use super::{ShimOptions, Spawned, await_ready};
use crate::Error;

/// The argument that makes `berth shim` wait for its options on stdin.
pub const STANDBY_ARG: &str = "--standby";
/// Each following argument names one of the daemon's parent mounts, which the standby
/// leaves out of its mount namespace before its options come ([`super::mountns::prepare`]).
pub const PARENT_ARG: &str = "--private-parent";

/// The daemon's side: at most one waiting shim process of `exe`.
#[derive(Debug)]
pub struct Standby {
    exe: PathBuf,
    parents: Vec<PathBuf>,
    waiting: Mutex<Option<Child>>,
}

impl Standby {
    /// No standby yet; [`Standby::warm`] starts one. `parents` are the daemon's parent
    /// mounts, as in [`ShimOptions::private_parents`].
    pub fn new(exe: &Path, parents: Vec<PathBuf>) -> Self {
        Standby { exe: exe.to_owned(), parents, waiting: Mutex::new(None) }
    }

    /// Starts a standby shim unless one is waiting. Blocking (a fork and exec), but the
    /// new process's start-up runs on its own.
    pub fn warm(&self) {
        let alive = |w: &mut Option<Child>| w.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if alive(&mut self.waiting.lock().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        // Its start-up (exec, loading, relocation, the mount namespace) runs only on CPU
        // time nothing else wants: on a small machine it would otherwise take turns with
        // the start that made it, whose path it is meant to shorten. The policy is the
        // calling thread's while it spawns, so the child has it from its first instruction
        // (set on the child after the spawn, its exec and loading ran at the normal
        // policy); taking it lifts this. The lock is not held meanwhile: a start that
        // takes the waiting standby must never wait behind an idle-priority spawn.
        let previous = thread_policy(libc::SCHED_IDLE);
        let child = Command::new(&self.exe)
            .args(["shim", STANDBY_ARG])
            .args(self.parents.iter().flat_map(|p| [std::ffi::OsStr::new(PARENT_ARG), p.as_os_str()]))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        if let Some(policy) = previous {
            thread_policy(policy);
        }
        let Some(mut child) = child else { return };
        let mut w = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if alive(&mut w) {
            // Another warm got there first: one standby is enough.
            drop(w);
            drop(child.stdin.take());
            let _ = child.wait();
            return;
        }
        *w = Some(child);
    }

    /// Starts the shim for `o` in the waiting process when there is one, else in a new
    /// one, and waits until the container is created, as [`super::spawn`]. Blocking.
    pub fn spawn(&self, o: &ShimOptions) -> Result<Spawned, Error> {
        let taken = self.waiting.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(child) = taken.and_then(|c| hand_over(c, o)) {
            return await_ready(child);
        }
        super::spawn(&self.exe, o)
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if let Some(mut c) = self.waiting.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            // Closing its stdin ends it; reap it so no zombie stays with a long-lived owner.
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

/// Writes the options line to a waiting process; None (and the process reaped) when it
/// has already gone, so the caller starts a fresh shim instead.
fn hand_over(mut child: Child, o: &ShimOptions) -> Option<Child> {
    let alive = matches!(child.try_wait(), Ok(None));
    // Back to the normal policy before it wakes: the container it creates inherits it.
    let alive = alive && set_policy(&child, libc::SCHED_OTHER);
    let sent = alive
        && child.stdin.take().is_some_and(|mut stdin| {
            serde_json::to_vec(o).is_ok_and(|mut line| {
                line.push(b'\n');
                stdin.write_all(&line).is_ok()
            })
        });
    if sent {
        return Some(child);
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Sets the calling thread's scheduling policy (static priority 0); returns the one it had,
/// or None when it could not be changed.
fn thread_policy(policy: libc::c_int) -> Option<libc::c_int> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 names the calling thread; `param` is a valid sched_param for the call.
    unsafe {
        let previous = libc::sched_getscheduler(0);
        (previous >= 0 && libc::sched_setscheduler(0, policy, &param) == 0).then_some(previous)
    }
}

/// Sets the scheduling policy of the (single-threaded) process `c` (static priority 0).
fn set_policy(c: &Child, policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call's duration; the pid is our own
    // unreaped child, so it names no other process.
    unsafe { libc::sched_setscheduler(c.id() as libc::pid_t, policy, &param) == 0 }
}

/// The parent mounts a standby's arguments name.
pub(super) fn parents(args: &[String]) -> Vec<PathBuf> {
    args.windows(2).filter(|w| w[0] == PARENT_ARG).map(|w| PathBuf::from(&w[1])).collect()
}

/// The shim's side: waits for the options line on stdin, then points stdin at /dev/null
/// as a freshly spawned shim has it. None at end of file (the daemon went away) or on a
/// line that is not options. A prepared mount namespace is given up once it is too old to
/// be used ([`super::mountns::FRESH`]): its copies of the host's mounts would otherwise
/// keep those filesystems busy for as long as the standby waits.
pub(super) fn wait_for_options(prepared: &mut Option<super::mountns::Prepared>) -> Option<ShimOptions> {
    if prepared.is_some() {
        let stdin = std::io::stdin();
        let mut fds = [rustix::event::PollFd::new(&stdin, rustix::event::PollFlags::IN)];
        let fresh = super::mountns::FRESH;
        let ts = rustix::event::Timespec { tv_sec: fresh.as_secs() as i64, tv_nsec: fresh.subsec_nanos() as i64 };
        if matches!(rustix::event::poll(&mut fds, Some(&ts)), Ok(0)) {
            if let Some(p) = prepared.take() {
                p.abandon();
            }
        }
    }
    let mut line = String::new();
    BufReader::new(std::io::stdin().lock()).read_line(&mut line).ok()?;
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
    }
    serde_json::from_str(line.trim()).ok()
}
