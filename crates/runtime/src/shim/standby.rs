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
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::mountns::{FRESH, Handed, Template};
use super::{ShimOptions, Spawned, await_ready};
use crate::Error;

/// The argument that makes `berth shim` wait for its options on stdin.
pub const STANDBY_ARG: &str = "--standby";
/// Each following argument names one of the daemon's parent mounts, which the standby
/// leaves out of its mount namespace before its options come ([`super::mountns::prepare`]).
pub const PARENT_ARG: &str = "--private-parent";
/// Names the daemon's [`Template`] for the standby: the next argument is the path that
/// opens it (the daemon's descriptor, `/proc/<daemon>/fd/<n>`), the one after when it was
/// made ([`Template::made_arg`]). A path rather than an inherited descriptor: handing a
/// descriptor to the child takes a `pre_exec` step, which makes std fork the daemon (its
/// page tables and every descriptor) instead of using `posix_spawn`'s vfork.
pub const TEMPLATE_ARG: &str = "--mount-template";
/// How long the daemon hands out one template: a standby made from it then has at least
/// the other half of [`FRESH`] to be used in.
const TEMPLATE_REUSE: Duration = Duration::from_secs(1);

/// The daemon's side: at most one waiting shim process of `exe`.
#[derive(Debug)]
pub struct Standby {
    exe: PathBuf,
    parents: Vec<PathBuf>,
    waiting: Mutex<Option<Child>>,
    /// The mount namespace standbys are made from while it is young; dropped by a timer
    /// once it is too old to hand out, so an idle daemon holds no copy of the host's mounts
    /// (which would keep a filesystem unmounted on the host busy).
    template: Arc<Mutex<Option<Arc<Template>>>>,
}

impl Standby {
    /// No standby yet; [`Standby::warm`] starts one. `parents` are the daemon's parent
    /// mounts, as in [`ShimOptions::private_parents`].
    pub fn new(exe: &Path, parents: Vec<PathBuf>) -> Self {
        Standby { exe: exe.to_owned(), parents, waiting: Mutex::new(None), template: Arc::default() }
    }

    /// The template to hand a new standby: the current one while it is young, else a new
    /// one. Blocking: making one copies and drops the daemon's mounts (O(N) with N
    /// containers running), at most once per [`TEMPLATE_REUSE`].
    fn template(&self) -> Option<Arc<Template>> {
        let mut slot = self.template.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = slot.as_ref()
            && t.age() < TEMPLATE_REUSE
        {
            return Some(t.clone());
        }
        *slot = None;
        let t = Arc::new(Template::make(&self.parents, || {
            thread_policy(libc::SCHED_IDLE);
        })?);
        *slot = Some(t.clone());
        drop(slot);
        let (weak_slot, weak_t) = (Arc::downgrade(&self.template), Arc::downgrade(&t));
        // Kept until every standby handed it has had the time to open it (they are made
        // within TEMPLATE_REUSE, and a standby's copy is of no use after FRESH anyway).
        let expire = move || {
            std::thread::sleep(FRESH);
            let Some(slot) = weak_slot.upgrade() else { return };
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            if slot.as_ref().is_some_and(|cur| Weak::ptr_eq(&Arc::downgrade(cur), &weak_t)) {
                *slot = None;
            }
        };
        if std::thread::Builder::new().name("mount-template".into()).spawn(expire).is_err() {
            // No timer: not kept, so nothing outlives its use.
            *self.template.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        Some(t)
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
        let template = self.template();
        let previous = thread_policy(libc::SCHED_IDLE);
        let mut cmd = Command::new(&self.exe);
        cmd.args(["shim", STANDBY_ARG])
            .args(self.parents.iter().flat_map(|p| [std::ffi::OsStr::new(PARENT_ARG), p.as_os_str()]));
        if let Some(t) = &template {
            let path = format!("/proc/{}/fd/{}", std::process::id(), t.fd().as_raw_fd());
            cmd.args([TEMPLATE_ARG, &path, &t.made_arg()]);
        }
        let child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok();
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

/// The template a standby's arguments name, opened; None without the argument or when
/// it can no longer be opened (the daemon dropped it, and the standby makes its namespace
/// the long way). Whatever the path opens must be a mount namespace: entering it checks.
pub(super) fn template(args: &[String]) -> Option<Handed> {
    let at = args.iter().position(|a| a == TEMPLATE_ARG)?;
    let (path, made) = (args.get(at + 1)?, args.get(at + 2)?);
    let ns = rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    Some(Handed { ns, made: made.clone() })
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
/// be used ([`FRESH`]): its copies of the host's mounts would otherwise
/// keep those filesystems busy for as long as the standby waits.
pub(super) fn wait_for_options(prepared: &mut Option<super::mountns::Prepared>) -> Option<ShimOptions> {
    if prepared.is_some() {
        let stdin = std::io::stdin();
        let mut fds = [rustix::event::PollFd::new(&stdin, rustix::event::PollFlags::IN)];
        let fresh = prepared.as_ref().map_or(FRESH, |p| p.remaining());
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
