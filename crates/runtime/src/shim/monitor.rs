//! The hand-over between the full shim and the container monitor (`monitor/monitor.rs`,
//! built by build.rs as a small static executable and installed by the daemon in its exec
//! root, as the `--init` is).
//!
//! Once a container runs and no exec is in flight, the shim `execve`s the monitor in its
//! own process: the pid stays (the container's init stays its child, so its exit status
//! can still be reaped), and so does every descriptor it passes — the socket listener, the
//! init's pidfd, the output pipes or pty, stdin, each connection with the bytes it has
//! buffered both ways. The state travels in a memfd as `key value` lines (strings and
//! buffers in hex). The monitor hands the process back (`berth shim --resume <fd>`, the
//! berth executable reached through an `O_PATH` descriptor it keeps, so an upgraded or
//! removed binary does not matter) when the init exits, an Exec arrives, or a request
//! needs the shim's answer; that frame is still unread in the connection's buffer, so the
//! shim serves it exactly as it does without a monitor. The socket protocol itself does
//! not change: a daemon sees the same bytes from either form.

/// The hand-over codec and socket flush, shared with the monitor program itself.
#[path = "../../monitor/handover.rs"]
pub(super) mod handover;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use rustix::process::Pid;

use super::{Client, Shim, ShimOptions};
use crate::Error;
use crate::logs::LogWriter;
use crate::proto::Decoder;
use handover::{hex, unhex};

/// The monitor executable.
pub const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-monitor"));

/// The monitor's file name in the exec root.
pub const FILE_NAME: &str = "berth-monitor";

/// Writes the monitor into `dir` (0755), unless the same bytes are there already; returns
/// its path, which the daemon puts in [`ShimOptions::monitor`]. Every shim executes the
/// same file, so its code pages are shared between all running containers.
pub fn install(dir: &Path) -> Result<PathBuf, Error> {
    crate::embedded::install(dir, FILE_NAME, BINARY)
}

fn inheritable(fd: impl AsFd) -> std::io::Result<()> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).map_err(std::io::Error::from)
}

fn bad_state(what: &str) -> Error {
    Error::Shim(format!("invalid monitor state: {what}"))
}

impl Shim {
    /// Whether the shim can become the monitor now: there is one to become, the container
    /// runs, no exec is in flight and the init has not exited.
    pub(super) fn can_hand_off(&self) -> bool {
        if self.opts.monitor.is_none() || !self.started || !self.execs.is_empty() {
            return false;
        }
        let mut fds = [rustix::event::PollFd::new(&self.pidfd, rustix::event::PollFlags::IN)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        !matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }

    /// Becomes the monitor. Returns only if that failed; the shim then keeps serving.
    pub(super) fn hand_off(&mut self) -> Result<(), Error> {
        let Some(monitor) = self.opts.monitor.clone() else { return Ok(()) };
        let io = |e: std::io::Error| Error::io("failed to hand over to", &monitor, e);
        let exe = match &self.exe {
            Some(fd) => fd.as_raw_fd(),
            None => {
                let fd = rustix::fs::open("/proc/self/exe", rustix::fs::OFlags::PATH, rustix::fs::Mode::empty())
                    .map_err(|e| io(e.into()))?;
                let raw = fd.as_raw_fd();
                self.exe = Some(fd);
                raw
            }
        };
        let opts = serde_json::to_string(&self.opts)
            .map_err(|source| Error::Json { context: "failed to encode shim options".into(), source })?;
        let fd = |f: &Option<OwnedFd>| f.as_ref().map_or(-1, |f| f.as_raw_fd());
        let b = u8::from;
        let mut t = format!(
            "opts {}\nexe {exe}\ninit_pid {}\npidfd {}\nlistener {}\nout {}\nerr {}\nstdin {}\n",
            hex(opts.as_bytes()),
            self.init_pid.as_raw_nonzero(),
            self.pidfd.as_raw_fd(),
            self.listener.as_raw_fd(),
            fd(&self.out),
            fd(&self.err),
            fd(&self.stdin)
        );
        t += &format!(
            "tty {}\nopen_stdin {}\nstdin_once {}\nlog {}\nlog_max_size {}\nlog_max_files {}\n",
            b(self.opts.tty),
            b(self.opts.open_stdin),
            b(self.opts.stdin_once),
            hex(self.opts.log_path.as_os_str().as_encoded_bytes()),
            self.opts.log_max_size,
            self.opts.log_max_files
        );
        t += &format!(
            "stdin_buf {}\nstdin_close {}\nstdin_owner {}\nstdin_claimed {}\nnext_client {}\n",
            hex(&self.stdin_buf),
            b(self.stdin_close),
            self.stdin_owner.unwrap_or(0),
            b(self.stdin_claimed),
            self.next_client
        );
        // The monitor reports the exit itself when the delete may follow it (see
        // `Shim::wind_down`); it needs the places the shim's options name.
        if self.delete_after_exit {
            let h = |p: &Path| hex(p.as_os_str().as_encoded_bytes());
            let cgroup = self.cgroups_path.as_deref().unwrap_or(Path::new(""));
            t += &format!(
                "report_exit {} {} {} {}\n",
                h(&self.opts.exit_file),
                h(&self.opts.socket),
                h(&self.opts.state_root.join(&self.opts.id)),
                h(cgroup)
            );
        }
        for c in &self.clients {
            t += &format!(
                "client {} {} {} {} {} {} {}\n",
                c.id,
                c.sock.as_raw_fd(),
                b(c.hello),
                b(c.stdout),
                b(c.stderr),
                hex(&c.out),
                hex(c.decoder.pending())
            );
        }
        let memfd =
            rustix::fs::memfd_create("berth-shim-state", rustix::fs::MemfdFlags::empty()).map_err(|e| io(e.into()))?;
        let mut m = std::fs::File::from(memfd);
        m.write_all(t.as_bytes()).and_then(|()| m.seek(SeekFrom::Start(0)).map(|_| ())).map_err(io)?;
        let mut fds: Vec<RawFd> = vec![exe, self.pidfd.as_raw_fd(), self.listener.as_raw_fd()];
        fds.extend([&self.out, &self.err, &self.stdin].into_iter().filter_map(|f| f.as_ref().map(|f| f.as_raw_fd())));
        fds.extend(self.clients.iter().map(|c| c.sock.as_raw_fd()));
        let borrow = |raw: RawFd| {
            // SAFETY: every fd in the list is owned by `self` and stays open across the
            // calls that borrow it here.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) }
        };
        let set = fds.iter().try_for_each(|raw| inheritable(borrow(*raw)));
        let e = match set {
            Ok(()) => {
                crate::trace::mark(&self.opts.id, "shim.hand_off");
                std::process::Command::new(&monitor).arg0(FILE_NAME).arg(m.as_raw_fd().to_string()).exec()
            }
            Err(e) => e,
        };
        // Still here: the shim goes on serving, and what it starts later inherits none
        // of its descriptors.
        for raw in fds {
            let _ = rustix::io::fcntl_setfd(borrow(raw), rustix::io::FdFlags::CLOEXEC);
        }
        Err(io(e))
    }
}

/// Rebuilds the shim from the state a monitor handed back (`berth shim --resume <fd>`).
pub(super) fn resume(state_fd: RawFd) -> Result<Shim, Error> {
    // SAFETY: the monitor passed this memfd to us to read and close.
    let mut m = unsafe { std::fs::File::from_raw_fd(state_fd) };
    let mut text = String::new();
    m.read_to_string(&mut text).map_err(|e| Error::io("failed to read", Path::new("monitor state"), e))?;
    drop(m);
    let mut kv: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        let mut f = line.split(' ');
        if let Some(k) = f.next() {
            kv.push((k, f.collect()));
        }
    }
    let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| v.as_slice()).unwrap_or(&[]);
    let num = |k: &str| get(k).first().and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| bad_state(k));
    let flag = |k: &str| num(k).map(|v| v != 0);
    let own = |k: &str| -> Result<Option<OwnedFd>, Error> {
        let n = num(k)?;
        Ok((n >= 0).then(|| {
            // SAFETY: the monitor passed these descriptors on for this process to own; each
            // number appears once in the state.
            unsafe { OwnedFd::from_raw_fd(n as RawFd) }
        }))
    };
    let opts_hex = get("opts").first().ok_or_else(|| bad_state("opts"))?;
    let opts: ShimOptions =
        unhex(opts_hex).and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(|| bad_state("options"))?;
    let init_pid = Pid::from_raw(num("init_pid")? as i32).ok_or_else(|| bad_state("init_pid"))?;
    let pidfd = own("pidfd")?.ok_or_else(|| bad_state("pidfd"))?;
    let listener = UnixListener::from(own("listener")?.ok_or_else(|| bad_state("listener"))?);
    let exe = own("exe")?;
    for fd in [Some(&pidfd), exe.as_ref()].into_iter().flatten() {
        let _ = rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC);
    }
    let _ = rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::CLOEXEC);
    let cloexec = |f: Option<OwnedFd>| {
        if let Some(f) = &f {
            let _ = rustix::io::fcntl_setfd(f, rustix::io::FdFlags::CLOEXEC);
        }
        f
    };
    let out = cloexec(own("out")?);
    let err = cloexec(own("err")?);
    let stdin = cloexec(own("stdin")?);
    let mut clients = Vec::new();
    for (k, v) in &kv {
        if *k != "client" {
            continue;
        }
        let n = |i: usize| v.get(i).and_then(|x| x.parse::<i64>().ok()).ok_or_else(|| bad_state("client"));
        let h = |i: usize| v.get(i).and_then(|x| unhex(x)).ok_or_else(|| bad_state("client"));
        // SAFETY: see `own`.
        let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(n(1)? as RawFd) });
        let _ = rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::CLOEXEC);
        clients.push(Client {
            id: n(0)? as u64,
            sock,
            decoder: Decoder::with_pending(h(6)?),
            out: h(5)?,
            hello: n(2)? != 0,
            stdout: n(3)? != 0,
            stderr: n(4)? != 0,
        });
    }
    let log = match opts.log_path.as_os_str().is_empty() {
        true => None,
        false => Some(LogWriter::open(&opts.log_path, opts.log_max_size, opts.log_max_files)?),
    };
    // The libcontainer container, for its removal at exit; a state that cannot be loaded
    // is removed by path then.
    let container = libcontainer::container::Container::load(opts.state_root.join(&opts.id)).ok();
    let spec = oci_spec::runtime::Spec::load(opts.bundle.join("config.json")).ok();
    let cgroups_path = spec.as_ref().and_then(|s| s.linux().as_ref().and_then(|l| l.cgroups_path().clone()));
    let delete_after_exit = spec.as_ref().is_some_and(super::delete_after_exit);
    let plain_delete = spec.as_ref().is_some_and(super::plain_delete::eligible);
    let stdin_owner = num("stdin_owner")? as u64;
    // The monitor already reported the exit: only the delete is left, under its lock.
    let reported_exit = match get("exited").first().and_then(|v| v.parse::<i32>().ok()) {
        Some(code) => {
            let lock = own("state_lock")?;
            if let Some(l) = &lock {
                let _ = rustix::io::fcntl_setfd(l, rustix::io::FdFlags::CLOEXEC);
            }
            Some((code, lock))
        }
        None => None,
    };
    Ok(Shim {
        reported_exit,
        stdin_buf: unhex(get("stdin_buf").first().copied().unwrap_or("")).ok_or_else(|| bad_state("stdin_buf"))?,
        stdin_close: flag("stdin_close")?,
        stdin_owner: (stdin_owner != 0).then_some(stdin_owner),
        stdin_claimed: flag("stdin_claimed")?,
        next_client: num("next_client")? as u64,
        opts,
        container,
        init_pid,
        pidfd,
        listener,
        cgroups_path,
        delete_after_exit,
        plain_delete,
        mnt_ns: None,
        out,
        err,
        stdin,
        clients,
        started: true,
        started_at: None,
        log,
        execs: Vec::new(),
        attached: Vec::new(),
        exe,
    })
}

/// `berth shim --resume <fd>`: the state fd, if these are the arguments of a resume.
pub(super) fn resume_fd(args: &[String]) -> Option<RawFd> {
    let i = args.iter().position(|a| a == "--resume")?;
    args.get(i + 1)?.parse().ok()
}
