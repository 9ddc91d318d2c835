//! berth's container monitor: the small form a shim takes while its container runs.
//!
//! The shim (`berth shim`, the whole berth binary with libcontainer) creates and starts the
//! container; once it is running and nothing needs libcontainer, the shim `execve`s this
//! program in the same process (same pid, so the container's init stays its child, and
//! every descriptor it passes stays open) with its state in a memfd. This program only
//! waits: it copies the container's output to the json-file log and to subscribed
//! connections, feeds stdin, answers Hello/Start/Stdin/CloseStdin/Resize/Signal on the
//! shim's socket with the same bytes the shim would. Anything else — the init's exit, an
//! Exec request, a frame it cannot handle or a request that fails — hands the process
//! back to the full shim (`berth shim --resume <fd>`), with the unhandled frame left
//! unread in that connection's buffer, so the shim answers it exactly as it always has.
//!
//! Why a separate, std-only program: a shim lives as long as its container, and hundreds
//! of them are resident on a busy host. The berth binary costs each one megabytes (its
//! relocated data, libcontainer's heap); this program, statically linked and built by
//! build.rs with plain rustc like the `--init`, costs a few hundred kilobytes, most of
//! them shared. It uses no crates, so the few libc calls it needs are declared here.

mod handover;
use handover::{hex, unhex};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

const MAX_CLIENT_BUFFER: usize = 8 * 1024 * 1024;
const READ_CHUNK: usize = 32 * 1024;
const MAX_FRAME: usize = 16 * 1024 * 1024;

// Frame tags (runtime/src/proto.rs).
const HELLO: u8 = 1;
const START: u8 = 2;
const STDIN: u8 = 3;
const CLOSE_STDIN: u8 = 4;
const RESIZE: u8 = 5;
const SIGNAL: u8 = 6;
const STARTED: u8 = 101;
const STDOUT: u8 = 102;
const STDERR: u8 = 103;

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}
const POLLIN: i16 = 0x1;
const POLLOUT: i16 = 0x4;
const POLLERR: i16 = 0x8;
const POLLHUP: i16 = 0x10;

#[repr(C)]
struct Winsize {
    row: u16,
    col: u16,
    x: u16,
    y: u16,
}
const TIOCSWINSZ: u64 = 0x5414;
const F_SETFD: i32 = 2;
const SYS_PIDFD_SEND_SIGNAL: i64 = 424;
const SIGPIPE: i32 = 13;
const SIGHUP: i32 = 1;

unsafe extern "C" {
    fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
    fn ioctl(fd: i32, req: u64, ...) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    fn syscall(n: i64, ...) -> i64;
    fn signal(sig: i32, handler: extern "C" fn(i32)) -> usize;
    fn memfd_create(name: *const u8, flags: u32) -> i32;
    fn malloc_trim(pad: usize) -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn flock(fd: i32, op: i32) -> i32;
}
const WNOHANG: i32 = 1;
const LOCK_EX: i32 = 2;
const EXIT: u8 = 104;

extern "C" fn ignore(_: i32) {}

/// One connection on the shim's socket.
struct Client {
    id: u64,
    sock: UnixStream,
    hello: bool,
    stdout: bool,
    stderr: bool,
    /// Bytes received and not yet handled (a partial frame, or one left for the shim).
    inbuf: Vec<u8>,
    /// Bytes to send.
    out: Vec<u8>,
}

/// Everything handed over between the shim and the monitor (see `shim/monitor.rs`).
struct State {
    /// The shim's options, as the JSON it was started with: passed back untouched.
    opts_json: String,
    /// The berth executable (an O_PATH descriptor), for the hand-back.
    exe_fd: RawFd,
    init_pid: u32,
    pidfd: RawFd,
    listener: UnixListener,
    out: Option<File>,
    err: Option<File>,
    stdin: Option<File>,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    log_path: PathBuf,
    log_max_size: u64,
    log_max_files: u32,
    stdin_buf: Vec<u8>,
    stdin_close: bool,
    stdin_owner: u64,
    stdin_claimed: bool,
    next_client: u64,
    clients: Vec<Client>,
    /// Set when this program reports the init's exit itself (see [`Monitor::report_exit`]).
    report: Option<Report>,
    /// After [`Monitor::report_exit`]: the exit code, and the lock on the runtime's state
    /// the shim holds until it has deleted the container.
    exited: Option<i32>,
    state_lock: RawFd,
}

/// Where a reported exit goes (the shim's options, which this program does not parse).
#[derive(Clone)]
struct Report {
    exit_file: PathBuf,
    socket: PathBuf,
    state_dir: PathBuf,
    /// The container's cgroup path, for the OOM record.
    cgroup: String,
}



fn fd_file(fd: i64) -> Option<File> {
    // SAFETY: the shim handed this descriptor over for this process to own.
    (fd >= 0).then(|| unsafe { File::from_raw_fd(fd as RawFd) })
}

impl State {
    fn parse(text: &str) -> Option<State> {
        let (mut opts_json, mut exe_fd, mut init_pid, mut pidfd) = (String::new(), -1, 0, -1);
        let mut listener = None;
        let (mut out, mut err, mut stdin) = (None, None, None);
        let (mut tty, mut open_stdin, mut stdin_once) = (false, false, false);
        let (mut log_path, mut log_max_size, mut log_max_files) = (PathBuf::new(), 0, 1);
        let (mut stdin_buf, mut stdin_close, mut stdin_owner, mut stdin_claimed) = (Vec::new(), false, 0, false);
        let mut next_client = 1;
        let mut clients = Vec::new();
        let mut report = None;
        for line in text.lines() {
            let mut f = line.split(' ');
            let key = f.next()?;
            let v: Vec<&str> = f.collect();
            let n = |i: usize| v.get(i).and_then(|x| x.parse::<i64>().ok());
            let h = |i: usize| v.get(i).and_then(|x| unhex(x));
            match key {
                "opts" => opts_json = String::from_utf8(h(0)?).ok()?,
                "exe" => exe_fd = n(0)? as RawFd,
                "init_pid" => init_pid = n(0)? as u32,
                "pidfd" => pidfd = n(0)? as RawFd,
                // SAFETY: handed over by the shim, owned from now on.
                "listener" => listener = Some(unsafe { UnixListener::from_raw_fd(n(0)? as RawFd) }),
                "out" => out = fd_file(n(0)?),
                "err" => err = fd_file(n(0)?),
                "stdin" => stdin = fd_file(n(0)?),
                "tty" => tty = n(0)? != 0,
                "open_stdin" => open_stdin = n(0)? != 0,
                "stdin_once" => stdin_once = n(0)? != 0,
                "log" => log_path = PathBuf::from(String::from_utf8(h(0)?).ok()?),
                "log_max_size" => log_max_size = n(0)? as u64,
                "log_max_files" => log_max_files = (n(0)? as u32).max(1),
                "stdin_buf" => stdin_buf = h(0)?,
                "stdin_close" => stdin_close = n(0)? != 0,
                "stdin_owner" => stdin_owner = n(0)? as u64,
                "stdin_claimed" => stdin_claimed = n(0)? != 0,
                "next_client" => next_client = n(0)? as u64,
                "report_exit" => {
                    let path = |i: usize| Some(PathBuf::from(String::from_utf8(h(i)?).ok()?));
                    report = Some(Report {
                        exit_file: path(0)?,
                        socket: path(1)?,
                        state_dir: path(2)?,
                        cgroup: String::from_utf8(h(3)?).ok()?,
                    });
                }
                "client" => {
                    // SAFETY: handed over by the shim, owned from now on.
                    let sock = unsafe { UnixStream::from_raw_fd(n(1)? as RawFd) };
                    clients.push(Client {
                        id: n(0)? as u64,
                        sock,
                        hello: n(2)? != 0,
                        stdout: n(3)? != 0,
                        stderr: n(4)? != 0,
                        out: h(5)?,
                        inbuf: h(6)?,
                    });
                }
                _ => {}
            }
        }
        if pidfd < 0 || exe_fd < 0 || opts_json.is_empty() || init_pid == 0 {
            return None;
        }
        Some(State {
            opts_json,
            exe_fd,
            init_pid,
            pidfd,
            listener: listener?,
            out,
            err,
            stdin,
            tty,
            open_stdin,
            stdin_once,
            log_path,
            log_max_size,
            log_max_files,
            stdin_buf,
            stdin_close,
            stdin_owner,
            stdin_claimed,
            next_client,
            clients,
            report,
            exited: None,
            state_lock: -1,
        })
    }

    /// The state in the hand-over format; every descriptor it names is made inheritable.
    fn serialize(&self) -> String {
        let mut t = String::new();
        let b = |x: bool| u8::from(x);
        let fd = |f: &Option<File>| f.as_ref().map_or(-1, |f| f.as_raw_fd());
        t += &format!("opts {}\nexe {}\ninit_pid {}\npidfd {}\n", hex(self.opts_json.as_bytes()), self.exe_fd, self.init_pid, self.pidfd);
        t += &format!("listener {}\nout {}\nerr {}\nstdin {}\n", self.listener.as_raw_fd(), fd(&self.out), fd(&self.err), fd(&self.stdin));
        t += &format!("tty {}\nopen_stdin {}\nstdin_once {}\n", b(self.tty), b(self.open_stdin), b(self.stdin_once));
        t += &format!(
            "log {}\nlog_max_size {}\nlog_max_files {}\n",
            hex(self.log_path.as_os_str().as_encoded_bytes()),
            self.log_max_size,
            self.log_max_files
        );
        t += &format!(
            "stdin_buf {}\nstdin_close {}\nstdin_owner {}\nstdin_claimed {}\nnext_client {}\n",
            hex(&self.stdin_buf),
            b(self.stdin_close),
            self.stdin_owner,
            b(self.stdin_claimed),
            self.next_client
        );
        if let Some(r) = &self.report {
            let h = |p: &Path| hex(p.as_os_str().as_encoded_bytes());
            t += &format!(
                "report_exit {} {} {} {}\n",
                h(&r.exit_file),
                h(&r.socket),
                h(&r.state_dir),
                hex(r.cgroup.as_bytes())
            );
        }
        if let Some(code) = self.exited {
            t += &format!("exited {code}\nstate_lock {}\n", self.state_lock);
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
                hex(&c.inbuf)
            );
        }
        t
    }

    fn inheritable_fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.exe_fd, self.pidfd, self.listener.as_raw_fd()];
        v.extend([&self.out, &self.err, &self.stdin].iter().filter_map(|f| f.as_ref().map(|f| f.as_raw_fd())));
        v.extend(self.clients.iter().map(|c| c.sock.as_raw_fd()));
        if self.state_lock >= 0 {
            v.push(self.state_lock);
        }
        v
    }
}

/// Hands the process back to the full shim, which resumes from this state. Never returns
/// unless the exec itself failed.
fn hand_back(s: &State) -> std::io::Error {
    let text = s.serialize();
    // SAFETY: a NUL-terminated name; flags 0 (inheritable across exec).
    let mfd = unsafe { memfd_create(c"berth-shim-state".as_ptr().cast(), 0) };
    if mfd < 0 {
        return std::io::Error::last_os_error();
    }
    // SAFETY: a descriptor just created here.
    let mut m = unsafe { File::from_raw_fd(mfd) };
    if let Err(e) = m.write_all(text.as_bytes()).and_then(|()| m.seek(SeekFrom::Start(0)).map(|_| ())) {
        return e;
    }
    for fd in s.inheritable_fds() {
        // SAFETY: clears FD_CLOEXEC on a descriptor this process owns.
        unsafe { fcntl(fd, F_SETFD, 0) };
    }
    let exe = format!("/proc/self/fd/{}", s.exe_fd);
    let e = std::process::Command::new(exe).arg0("berth").args(["shim", "--resume", &mfd.to_string()]).exec();
    std::mem::forget(m);
    e
}

/// Whether the container's cgroup recorded an OOM kill (v1 or v2 layout), as the shim's
/// `oom_killed` reads it.
fn oom_killed(cgroup: &str) -> bool {
    if cgroup.is_empty() {
        return false;
    }
    let rel = cgroup.trim_start_matches('/');
    [
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
        format!("/sys/fs/cgroup/{rel}/memory.events"),
        format!("/sys/fs/cgroup/unified/{rel}/memory.events"),
    ]
    .iter()
    .any(|f| {
        std::fs::read_to_string(f).is_ok_and(|s| {
            s.lines().any(|l| l.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > 0))
        })
    })
}

/// Writes the exit record (runtime/src/exit.rs's `ExitInfo` as serde_json writes it)
/// atomically with mode 0600, as `fsutil::replace_file_mode` does.
fn write_exit_file(path: &Path, code: i32, oom: bool) -> std::io::Result<()> {
    let body = format!("{{\"code\":{code},\"finished_at\":\"{}\",\"oom_killed\":{oom}}}", now_rfc3339());
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".tmp-{name}-m{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let res = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(body.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The json-file log (runtime/src/logs.rs writes the same bytes).
struct Log {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_files: u32,
}

fn open_log(path: &Path) -> Option<File> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).ok()?;
    let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    Some(f)
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// RFC 3339 UTC with nanoseconds, as chrono's `to_rfc3339_opts(Nanos, true)`.
fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// A JSON string as serde_json writes it.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 => {
                let v = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(b"0123456789abcdef"[usize::from(v >> 4)]);
                out.push(b"0123456789abcdef"[usize::from(v & 15)]);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

impl Log {
    fn write_chunk(&mut self, stream: &str, data: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let time = now_rfc3339();
        let mut out = Vec::new();
        for line in data.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(b"{\"log\":");
            json_str(&mut out, &String::from_utf8_lossy(line));
            out.extend_from_slice(b",\"stream\":");
            json_str(&mut out, stream);
            out.extend_from_slice(b",\"time\":");
            json_str(&mut out, &time);
            out.extend_from_slice(b"}\n");
        }
        if out.is_empty() {
            return;
        }
        if self.max_size > 0 && self.size > 0 && self.size + out.len() as u64 > self.max_size {
            self.rotate();
        }
        if let Some(f) = self.file.as_mut()
            && f.write_all(&out).is_ok()
        {
            self.size += out.len() as u64;
        }
    }

    fn rotate(&mut self) {
        if self.max_files <= 1 {
            if let Some(f) = &self.file {
                let _ = f.set_len(0);
            }
            self.size = 0;
            return;
        }
        let _ = std::fs::remove_file(rotated(&self.path, self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        if std::fs::rename(&self.path, rotated(&self.path, 1)).is_ok() {
            self.file = open_log(&self.path);
            self.size = 0;
        }
    }
}

fn frame(t: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(t);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Writes what the socket takes; false when the client is gone.
fn flush_client(c: &mut Client) -> bool {
    handover::flush(&c.sock, &mut c.out)
}

struct Monitor {
    s: State,
    log: Log,
}

#[derive(Clone, Copy)]
enum Src {
    Listener,
    Pidfd,
    Out,
    Err,
    Stdin,
    Client(usize),
}

impl Monitor {
    fn stdin_fd(&self) -> Option<RawFd> {
        if self.s.tty {
            if self.s.open_stdin { self.s.out.as_ref().map(|f| f.as_raw_fd()) } else { None }
        } else {
            self.s.stdin.as_ref().map(|f| f.as_raw_fd())
        }
    }

    /// Serves until something needs the shim.
    fn run(&mut self) {
        loop {
            let mut srcs: Vec<(Src, RawFd, i16)> =
                vec![(Src::Listener, self.s.listener.as_raw_fd(), POLLIN), (Src::Pidfd, self.s.pidfd, POLLIN)];
            if let Some(f) = &self.s.out {
                srcs.push((Src::Out, f.as_raw_fd(), POLLIN));
            }
            if let Some(f) = &self.s.err {
                srcs.push((Src::Err, f.as_raw_fd(), POLLIN));
            }
            if !self.s.stdin_buf.is_empty()
                && let Some(fd) = self.stdin_fd()
            {
                srcs.push((Src::Stdin, fd, POLLOUT));
            }
            for (i, c) in self.s.clients.iter().enumerate() {
                let ev = if c.out.is_empty() { POLLIN } else { POLLIN | POLLOUT };
                srcs.push((Src::Client(i), c.sock.as_raw_fd(), ev));
            }
            let mut fds: Vec<PollFd> = srcs.iter().map(|(_, fd, ev)| PollFd { fd: *fd, events: *ev, revents: 0 }).collect();
            // SAFETY: `fds` is a valid array of pollfd of the given length.
            let n = unsafe { poll(fds.as_mut_ptr(), fds.len() as u64, -1) };
            if n < 0 {
                continue;
            }
            let mut dead = Vec::new();
            for (k, (src, _, _)) in srcs.iter().enumerate() {
                let rev = fds[k].revents;
                if rev == 0 {
                    continue;
                }
                match *src {
                    // The init exited: the shim drains, records and removes; or, when it
                    // may, this program reports the exit first and the shim only removes.
                    Src::Pidfd => {
                        self.report_exit();
                        return;
                    }
                    Src::Listener => self.accept(),
                    Src::Out => self.read_output(true),
                    Src::Err => self.read_output(false),
                    Src::Stdin => self.flush_stdin(),
                    Src::Client(i) => match self.service_client(i, rev) {
                        Some(true) => {}
                        Some(false) => dead.push(i),
                        None => return,
                    },
                }
            }
            for i in dead.into_iter().rev() {
                self.drop_client(i);
            }
            let overfull: Vec<usize> =
                (0..self.s.clients.len()).filter(|i| self.s.clients[*i].out.len() > MAX_CLIENT_BUFFER).collect();
            for i in overfull.into_iter().rev() {
                self.drop_client(i);
            }
        }
    }

    /// Reports the init's exit as the shim does (`Shim::wind_down`), when the shim asked
    /// for it (its container's delete may follow the report): reaps the init, drains its
    /// output, takes the runtime state's lock, writes the exit record, removes the socket
    /// and tells every connection. The shim it hands back to then deletes the container
    /// under that lock. Does nothing when not asked, or when the init has not exited.
    fn report_exit(&mut self) {
        let Some(r) = self.s.report.clone() else { return };
        let mut status = 0i32;
        // SAFETY: reaps our own child (the init) without blocking; `status` is valid.
        if unsafe { waitpid(self.s.init_pid as i32, &mut status, WNOHANG) } != self.s.init_pid as i32 {
            return;
        }
        let code = match (status & 0x7f, (status >> 8) & 0xff) {
            (0, c) => c,
            (sig, _) => 128 + sig,
        };
        while self.s.out.is_some() || self.s.err.is_some() {
            let (o, e) = (self.s.out.is_some(), self.s.err.is_some());
            if o {
                self.read_output(true);
            }
            if e {
                self.read_output(false);
            }
            if !self.has_more() {
                break;
            }
        }
        self.log.file = None;
        let oom = oom_killed(&r.cgroup);
        if let Ok(dir) = File::open(&r.state_dir) {
            // SAFETY: flock on a descriptor this process owns.
            if unsafe { flock(dir.as_raw_fd(), LOCK_EX) } == 0 {
                self.s.state_lock = dir.as_raw_fd();
                std::mem::forget(dir);
            }
        }
        let _ = write_exit_file(&r.exit_file, code, oom);
        let _ = std::fs::remove_file(&r.socket);
        let fr = frame(EXIT, &code.to_be_bytes());
        for c in &mut self.s.clients {
            c.out.extend_from_slice(&fr);
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.set_write_timeout(Some(std::time::Duration::from_secs(2)));
            let _ = c.sock.write_all(&c.out);
        }
        self.s.clients.clear();
        self.s.exited = Some(code);
    }

    /// Whether the output pipes still hold bytes right now.
    fn has_more(&self) -> bool {
        let mut fds: Vec<PollFd> = [&self.s.out, &self.s.err]
            .iter()
            .filter_map(|f| f.as_ref().map(|f| PollFd { fd: f.as_raw_fd(), events: POLLIN, revents: 0 }))
            .collect();
        // SAFETY: `fds` is a valid array of pollfd of the given length.
        let n = unsafe { poll(fds.as_mut_ptr(), fds.len() as u64, 0) };
        n > 0 && fds.iter().any(|f| f.revents & POLLIN != 0)
    }

    fn accept(&mut self) {
        while let Ok((sock, _)) = self.s.listener.accept() {
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.s.next_client;
            self.s.next_client += 1;
            self.s.clients.push(Client {
                id,
                sock,
                hello: false,
                stdout: false,
                stderr: false,
                inbuf: Vec::new(),
                out: Vec::new(),
            });
        }
    }

    fn read_output(&mut self, stdout: bool) {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let f = if stdout { self.s.out.as_mut() } else { self.s.err.as_mut() };
            let Some(f) = f else { return };
            match f.read(&mut buf) {
                Ok(0) => {
                    self.close_output(stdout);
                    return;
                }
                Ok(n) => self.emit(stdout, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: a pty with no slave left; any other error ends the stream as well.
                Err(_) => {
                    self.close_output(stdout);
                    return;
                }
            }
        }
    }

    fn close_output(&mut self, stdout: bool) {
        if stdout {
            self.s.out = None;
        } else {
            self.s.err = None;
        }
    }

    fn emit(&mut self, stdout: bool, data: &[u8]) {
        self.log.write_chunk(if stdout { "stdout" } else { "stderr" }, data);
        let fr = frame(if stdout { STDOUT } else { STDERR }, data);
        for c in &mut self.s.clients {
            if c.hello && (if stdout { c.stdout } else { c.stderr }) {
                c.out.extend_from_slice(&fr);
            }
        }
        for c in &mut self.s.clients {
            flush_client(c);
        }
    }

    fn flush_stdin(&mut self) {
        while !self.s.stdin_buf.is_empty() {
            let Some(fd) = self.stdin_fd() else {
                self.s.stdin_buf.clear();
                break;
            };
            // SAFETY: borrowed for one write; the File is forgotten, not closed.
            let f = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
            match (&*f).write(&self.s.stdin_buf) {
                Ok(n) => {
                    self.s.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.s.stdin_buf.clear();
                    self.s.stdin = None;
                }
            }
        }
        if self.s.stdin_close && self.s.stdin_buf.is_empty() {
            self.s.stdin = None;
        }
    }

    /// Reads a client's frames and handles those it can. `Some(false)`: drop the client;
    /// `None`: hand back to the shim (the frame stays in the client's buffer).
    fn service_client(&mut self, i: usize, rev: i16) -> Option<bool> {
        if rev & POLLOUT != 0 && !flush_client(&mut self.s.clients[i]) {
            return Some(false);
        }
        if rev & (POLLIN | POLLHUP | POLLERR) == 0 {
            return Some(true);
        }
        let mut buf = [0u8; 16 * 1024];
        let mut alive = true;
        loop {
            match (&self.s.clients[i].sock).read(&mut buf) {
                Ok(0) => {
                    alive = false;
                    break;
                }
                Ok(n) => self.s.clients[i].inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    alive = false;
                    break;
                }
            }
        }
        loop {
            let b = &self.s.clients[i].inbuf;
            if b.len() < 5 {
                break;
            }
            let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
            if len > MAX_FRAME {
                return None;
            }
            if b.len() < 5 + len {
                break;
            }
            let (t, p) = (b[0], b[5..5 + len].to_vec());
            if !self.handle(i, t, &p) {
                // The shim sees this frame again; a client that went away meanwhile is
                // its to drop too.
                return None;
            }
            self.s.clients[i].inbuf.drain(..5 + len);
        }
        Some(alive && flush_client(&mut self.s.clients[i]))
    }

    /// Handles one frame; false to leave it to the shim.
    fn handle(&mut self, i: usize, t: u8, p: &[u8]) -> bool {
        match (t, p.len()) {
            (HELLO, 3) => {
                let c = &mut self.s.clients[i];
                c.hello = true;
                c.stdout = p[1] != 0;
                c.stderr = p[2] != 0;
                if p[0] != 0 && !self.s.stdin_claimed {
                    self.s.stdin_claimed = true;
                    self.s.stdin_owner = c.id;
                }
                true
            }
            (START, 0) => {
                let c = &mut self.s.clients[i];
                c.out.extend_from_slice(&frame(STARTED, &self.s.init_pid.to_be_bytes()));
                flush_client(c);
                true
            }
            (STDIN, _) => {
                if self.stdin_fd().is_some() && !self.s.stdin_close {
                    self.s.stdin_buf.extend_from_slice(p);
                    self.flush_stdin();
                }
                true
            }
            (CLOSE_STDIN, 0) => {
                if !self.s.tty {
                    self.s.stdin_close = true;
                    self.flush_stdin();
                }
                true
            }
            (RESIZE, 4) => {
                let (Some(m), true) = (self.s.out.as_ref(), self.s.tty) else { return true };
                let ws = Winsize { row: u16::from_be_bytes([p[0], p[1]]), col: u16::from_be_bytes([p[2], p[3]]), x: 0, y: 0 };
                // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
                unsafe { ioctl(m.as_raw_fd(), TIOCSWINSZ, &ws as *const Winsize) == 0 }
            }
            (SIGNAL, 4) => {
                let sig = i32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                if !(1..=64).contains(&sig) {
                    return false;
                }
                // SAFETY: pidfd_send_signal(pidfd, sig, NULL, 0).
                unsafe { syscall(SYS_PIDFD_SEND_SIGNAL, self.s.pidfd, sig, std::ptr::null::<u8>(), 0u32) == 0 }
            }
            _ => false,
        }
    }

    fn drop_client(&mut self, i: usize) {
        let c = self.s.clients.remove(i);
        if self.s.stdin_once && self.s.stdin_owner == c.id && !self.s.tty {
            self.s.stdin_close = true;
            self.flush_stdin();
        }
    }
}

fn main() {
    // SAFETY: installs no-op handlers (async-signal-safe): a vanished client or daemon
    // must not end the monitor.
    unsafe {
        signal(SIGPIPE, ignore);
        signal(SIGHUP, ignore);
    }
    let Some(fd) = std::env::args().nth(1).and_then(|a| a.parse::<RawFd>().ok()) else {
        eprintln!("berth-monitor: usage: berth-monitor <state fd>");
        std::process::exit(2);
    };
    // SAFETY: the shim passed this memfd for us to read and close.
    let mut m = unsafe { File::from_raw_fd(fd) };
    let mut text = String::new();
    let state = m.read_to_string(&mut text).ok().and_then(|_| State::parse(&text));
    drop(m);
    drop(text);
    let Some(s) = state else {
        eprintln!("berth-monitor: invalid state");
        std::process::exit(2);
    };
    let log = Log {
        file: if s.log_path.as_os_str().is_empty() { None } else { open_log(&s.log_path) },
        size: 0,
        path: s.log_path.clone(),
        max_size: s.log_max_size,
        max_files: s.log_max_files,
    };
    let size = log.file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
    let mut mon = Monitor { s, log: Log { size, ..log } };
    // SAFETY: only releases free heap memory.
    unsafe { malloc_trim(0) };
    mon.run();
    mon.log.file = None;
    let e = hand_back(&mon.s);
    eprintln!("berth-monitor: cannot hand back to the shim: {e}");
    std::process::exit(1);
}
