//! berth's `--init`: the container's PID 1 (mounted at /sbin/docker-init, as Docker's
//! tini), run as `docker-init -- CMD ARGS…`. It starts the command as PID 2 in its own
//! process group, forwards every signal it receives to it, reaps every child the kernel
//! gives it (orphans included, so no zombie piles up), and exits with the command's status
//! (128+signal when a signal ended it).
//!
//! Built by the runtime crate's build.rs with plain `rustc` and a statically linked C
//! library, so it runs in any image (busybox has no libc), and embedded in the berth
//! binary. It uses only std and a handful of libc calls declared below: no crates, so
//! build.rs needs nothing but the compiler.

use std::ffi::{CString, c_char, c_int};

#[repr(C)]
struct SigSet([u64; 16]);

#[repr(C)]
struct SigInfo {
    signo: c_int,
    errno: c_int,
    code: c_int,
    _rest: [u8; 116],
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigtimedwait(set: *const SigSet, info: *mut SigInfo, timeout: *const Timespec) -> c_int;
    fn fork() -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn setpgid(pid: c_int, pgid: c_int) -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: c_int) -> c_int;
    fn getpgrp() -> c_int;
    fn signal(sig: c_int, handler: usize) -> usize;
    fn _exit(code: c_int) -> !;
    fn __errno_location() -> *mut c_int;
}

const SIG_SETMASK: c_int = 2;
const SIGCHLD: c_int = 17;
const SIGTTIN: c_int = 21;
const SIGTTOU: c_int = 22;
const SIGTSTP: c_int = 20;
const SIG_IGN: usize = 1;
const WNOHANG: c_int = 1;
const EINTR: c_int = 4;
const EAGAIN: c_int = 11;
const ENOENT: c_int = 2;

fn fatal(msg: &str) -> ! {
    eprintln!("[FATAL berth-init] {msg}");
    // SAFETY: ends the process; no state needs unwinding.
    unsafe { _exit(1) }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd: Vec<String> = match args.iter().position(|a| a == "--") {
        Some(i) => args[i + 1..].to_vec(),
        None => args,
    };
    if cmd.is_empty() {
        fatal("no command given (usage: docker-init -- CMD [ARG...])");
    }
    let cargs: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| fatal("an argument holds a NUL byte")))
        .collect();
    let mut argv: Vec<*const c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());

    let mut all = SigSet([0; 16]);
    let mut old = SigSet([0; 16]);
    // SAFETY: plain libc calls on valid, owned memory. Every signal is blocked here and
    // taken with sigtimedwait below; the child restores the original mask before exec.
    unsafe {
        sigfillset(&mut all);
        sigprocmask(SIG_SETMASK, &all, &mut old);
    }
    // SAFETY: the process is single-threaded; the child only calls async-signal-safe
    // functions (setpgid, tcsetpgrp, signal, sigprocmask, execvp, _exit) before exec.
    let child = unsafe { fork() };
    if child < 0 {
        fatal("fork failed");
    }
    if child == 0 {
        // SAFETY: see above; argv is NUL-terminated and outlives the exec.
        unsafe {
            setpgid(0, 0);
            // Take the terminal's foreground when there is one (an interactive shell then
            // gets job control); the calls fail harmlessly without a tty.
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(0, getpgrp());
            signal(SIGTTOU, 0);
            sigprocmask(SIG_SETMASK, &old, std::ptr::null_mut());
            execvp(argv[0], argv.as_ptr());
            let code = if *__errno_location() == ENOENT { 127 } else { 126 };
            eprintln!("[FATAL berth-init] exec {} failed: {}", cmd[0], std::io::Error::last_os_error());
            _exit(code);
        }
    }
    // SAFETY: as for the child; the parent also puts it in its group to win the race.
    unsafe {
        setpgid(child, child);
    }
    let timeout = Timespec { sec: 1, nsec: 0 };
    loop {
        let mut info = SigInfo { signo: 0, errno: 0, code: 0, _rest: [0; 116] };
        // SAFETY: valid pointers to owned values.
        let sig = unsafe { sigtimedwait(&all, &mut info, &timeout) };
        if sig < 0 {
            // SAFETY: reads this thread's errno.
            let e = unsafe { *__errno_location() };
            if e != EAGAIN && e != EINTR {
                fatal("sigtimedwait failed");
            }
        } else if !matches!(sig, SIGCHLD | SIGTSTP | SIGTTIN | SIGTTOU) {
            // Forwarded to the command (as tini does without -g); job-control stops are
            // for the terminal's foreground group, which the command holds.
            // SAFETY: kill has no memory preconditions.
            unsafe {
                kill(child, sig);
            }
        }
        // Reap everything that has ended: the command, and orphans reparented to us.
        loop {
            let mut status: c_int = 0;
            // SAFETY: valid pointer to an owned int.
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) };
                // SAFETY: ends the process; orphans left die with the pid namespace.
                unsafe { _exit(code) }
            }
        }
    }
}
