//! The per-container shim: a single-threaded process (one per container, like
//! containerd-shim or conmon) that creates the container with libcontainer, owns its stdio,
//! writes the json-file log, serves attach/start/resize/signal on a unix socket, waits for
//! the init to exit, records the exit status and removes the container. It outlives the
//! daemon, which is what makes live restore possible.

use std::io::{BufRead, BufReader, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitOptions};
use serde::{Deserialize, Serialize};

use crate::exit::ExitInfo;
use crate::logs::{LogWriter, Stream};
use crate::proto::{ClientFrame, Decoder, ShimFrame};
use crate::{Error, ExecFailure, chain};

mod cgroupfs;
mod devices_v2;
mod exec;
pub mod monitor;
mod mountns;
pub(crate) mod plain_delete;
mod shared;
pub mod standby;
mod vfork;
pub use exec::{ExecFailed, ExecSpec};

/// A client whose unsent output passes this is dropped, so a slow reader never stalls the
/// container (the log still has everything).
const MAX_CLIENT_BUFFER: usize = 8 * 1024 * 1024;
const READ_CHUNK: usize = 32 * 1024;

/// Everything the daemon tells a shim; passed as one JSON argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimOptions {
    /// Container id (libcontainer's id too).
    pub id: String,
    /// OCI bundle directory holding config.json.
    pub bundle: PathBuf,
    /// libcontainer's state root.
    pub state_root: PathBuf,
    /// The shim's unix socket.
    pub socket: PathBuf,
    /// json-file log path; empty for the `none` log driver (nothing is written).
    pub log_path: PathBuf,
    /// Rotate the log past this size (0 = never).
    pub log_max_size: u64,
    /// Number of log files kept, the current one included.
    pub log_max_files: u32,
    /// Where the exit record is written.
    pub exit_file: PathBuf,
    /// Give the container a pseudo-terminal.
    pub tty: bool,
    /// Keep stdin open (else it is /dev/null).
    pub open_stdin: bool,
    /// Close stdin when the first stdin client detaches.
    pub stdin_once: bool,
    /// The container monitor executable ([`monitor::install`]): once the container runs,
    /// the shim becomes it and stays small. None keeps the whole shim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<PathBuf>,
    /// The daemon's parent mounts of per-container mounts (`image::ensure_parent_mount`):
    /// the shim leaves them out of its own mount namespace ([`mountns`]), so starting,
    /// exec and delete cost the same however many containers run. Empty: no such namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_parents: Vec<PathBuf>,
}

/// A shim that finished its handshake: the container is created and waits for Start.
#[derive(Debug)]
pub struct Spawned {
    /// The shim's pid.
    pub shim_pid: u32,
    /// The container init's host pid.
    pub init_pid: u32,
    /// The shim process, for the daemon to reap.
    pub child: Child,
}

/// The one line the shim writes on its stdout once it is ready or has failed.
#[derive(Debug, Serialize, Deserialize)]
struct Ready {
    #[serde(default)]
    init_pid: Option<u32>,
    #[serde(default)]
    error: Option<String>,
    /// The error is an exec failure (Docker's `exec: "x": …` text), and which.
    #[serde(default)]
    exec_failure: Option<ExecFailure>,
}

/// Starts `exe shim <options>` and waits until the container is created and the shim's
/// socket listens. Blocking.
pub fn spawn(exe: &Path, o: &ShimOptions) -> Result<Spawned, Error> {
    let arg = serde_json::to_string(o)
        .map_err(|source| Error::Json { context: "failed to encode shim options".into(), source })?;
    let child = Command::new(exe)
        .arg("shim")
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("failed to run shim", exe, e))?;
    await_ready(child)
}

/// Reads the shim's one ready line: the container is created, or why not. Blocking.
fn await_ready(mut child: Child) -> Result<Spawned, Error> {
    let shim_pid = child.id();
    let line = match child.stdout.take() {
        Some(out) => {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            line
        }
        None => String::new(),
    };
    let ready: Option<Ready> = serde_json::from_str(line.trim()).ok();
    match ready {
        Some(Ready { init_pid: Some(init_pid), error: None, .. }) => Ok(Spawned { shim_pid, init_pid, child }),
        Some(Ready { error: Some(message), exec_failure, .. }) => {
            let _ = child.wait();
            Err(match exec_failure {
                Some(failure) => Error::Exec { failure, message },
                None => Error::Shim(message),
            })
        }
        _ => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            Err(Error::Shim(format!("shim exited before it was ready ({status})")))
        }
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Catches SIGPIPE and SIGHUP with a no-op handler rather than SIG_IGN: the shim must
/// survive a vanished daemon or client, but an ignored disposition would be inherited by
/// the container's process through exec, and a handler is reset to the default there.
fn guard_signals() {
    for sig in [libc::SIGPIPE, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (does
        // nothing) and sigaction has no other preconditions.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = ignore_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Once the exit is reported, the delete that follows (cgroups, state: ~2 ms of CPU) is
/// the shim's last work and nobody waits for it, while the daemon, on the same cores,
/// records the exit and answers the client's wait: the shim lowers its priority (nice 10)
/// so that path goes first. Not idle priority: on a host kept busy the delete must still
/// end soon, since a next start of the same id waits for its lock.
fn yield_to_the_exit() {
    let _ = rustix::process::setpriority_process(None, 10);
}

/// The shim process's entry point: `args` are the arguments after the executable (a
/// leading `shim` is skipped). Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    if let Some(fd) = monitor::resume_fd(args) {
        guard_signals();
        let _ = std::env::set_current_dir("/");
        return match monitor::resume(fd) {
            Ok(mut shim) => {
                crate::trace::mark(&shim.opts.id, "shim.resumed");
                if let Some((_, lock)) = shim.reported_exit.take() {
                    crate::trace::mark(&shim.opts.id, "shim.exit_sent");
                    yield_to_the_exit();
                    shim.delete_container();
                    drop(lock);
                    return 0;
                }
                shim.serve_handed_back();
                shim.run();
                0
            }
            Err(_) => 1,
        };
    }
    let mut prepared = None;
    let opts = if args.iter().any(|a| a == standby::STANDBY_ARG) {
        // A standby makes its mount namespace while it waits (mountns.rs), then waits; the
        // daemon going away before handing options over is a normal end.
        prepared = mountns::prepare(&standby::parents(args), standby::template(args));
        warm_procfs();
        let Some(opts) = standby::wait_for_options(&mut prepared) else { return 0 };
        opts
    } else {
        let Some(opts) = args.iter().rev().find_map(|a| serde_json::from_str::<ShimOptions>(a).ok()) else {
            eprintln!("berth shim: missing or invalid options argument");
            return 2;
        };
        warm_procfs();
        opts
    };
    crate::trace::mark(&opts.id, "shim.main");
    guard_signals();
    // Own session: a signal to the daemon's process group or terminal never reaches us.
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    let result = Shim::setup(&opts, prepared);
    let ready = match &result {
        Ok(s) => Ready { init_pid: Some(s.init_pid.as_raw_nonzero().get() as u32), error: None, exec_failure: None },
        Err(e) => Ready { init_pid: None, error: Some(e.to_string()), exec_failure: e.exec_failure() },
    };
    let mut line = serde_json::to_string(&ready).unwrap_or_else(|_| "{}".into());
    line.push('\n');
    let _ = std::io::stdout().write_all(line.as_bytes());
    let _ = std::io::stdout().flush();
    crate::trace::mark(&opts.id, "shim.ready");
    detach_stdio();
    // A shim with a monitor to become replaces its whole image right after the start (see
    // `run`), so shrinking it here would only take CPU from the start that is under way.
    if opts.monitor.is_none() {
        release_setup_memory();
    }
    match result {
        Ok(mut shim) => {
            shim.run();
            0
        }
        Err(_) => 1,
    }
}

/// Opens pathrs' process-wide procfs handle (a detached, `subset=pid` mount of `proc`) in
/// the shim, before libcontainer forks its intermediate and init processes, which then
/// inherit it. Without it the intermediate made a procfs of its own (fsopen, fsconfig,
/// fsmount: a new superblock) on every create, and the init, which inherits the
/// intermediate's, held its last reference: the command's execve closed it (it is
/// close-on-exec, so no container command ever has it) and the kernel tore that mount down,
/// waiting for an RCU grace period, between the start and the command's first instruction.
/// Held here, those closes only drop a reference.
fn warm_procfs() {
    if let Err(e) = pathrs::procfs::ProcfsHandle::new() {
        tracing::debug!(error = %e, "no cached procfs handle; libcontainer's processes make their own");
    }
}

/// Points fds 0–2 at /dev/null so nothing ties the shim to the daemon after the handshake.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
}

/// Binds a unix socket even when its path exceeds sun_path (108 bytes), by binding the
/// file name from inside its directory (the shim is single-threaded, so chdir is safe).
fn bind_unix(path: &Path) -> Result<UnixListener, Error> {
    let _ = std::fs::remove_file(path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::io("invalid socket path", path, std::io::ErrorKind::InvalidInput.into()));
    };
    std::env::set_current_dir(dir).map_err(|e| Error::io("failed to enter socket dir", dir, e))?;
    let l = UnixListener::bind(name);
    let _ = std::env::set_current_dir("/");
    let l = l.map_err(|e| Error::io("failed to listen on", path, e))?;
    l.set_nonblocking(true).map_err(|e| Error::io("failed to configure", path, e))?;
    Ok(l)
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::io("failed to create pipe", Path::new("pipe"), e.into()))
}

fn nonblocking(fd: &OwnedFd) -> Result<(), Error> {
    rustix::io::ioctl_fionbio(fd, true).map_err(|e| Error::io("failed to configure fd", Path::new("fd"), e.into()))
}

/// Receives the pty master libcontainer sends over the console socket.
fn receive_pty(listener: &UnixListener) -> Result<OwnedFd, Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                let mut fds = [PollFd::new(listener, PollFlags::IN)];
                let ts = rustix::event::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
                let _ = rustix::event::poll(&mut fds, Some(&ts));
            }
            Err(e) => return Err(Error::io("no pty from the runtime", Path::new("console socket"), e)),
        }
    };
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 512];
    let mut iov = [IoSliceMut::new(&mut buf)];
    rustix::net::recvmsg(&conn, &mut iov, &mut cmsg, rustix::net::RecvFlags::CMSG_CLOEXEC)
        .map_err(|e| Error::io("failed to receive pty", Path::new("console socket"), e.into()))?;
    for msg in cmsg.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(Error::Shim("the runtime sent no pty master".into()))
}

struct Client {
    id: u64,
    sock: UnixStream,
    decoder: Decoder,
    out: Vec<u8>,
    hello: bool,
    stdout: bool,
    stderr: bool,
}

struct Shim {
    opts: ShimOptions,
    /// None only when a resumed shim could not load libcontainer's state (it is then
    /// removed by path at exit).
    container: Option<Container>,
    /// The berth executable, kept for the monitor's hand-back.
    exe: Option<OwnedFd>,
    init_pid: Pid,
    pidfd: OwnedFd,
    listener: UnixListener,
    cgroups_path: Option<PathBuf>,
    /// Whether the exit may be reported before the container is deleted ([`delete_after_exit`]).
    delete_after_exit: bool,
    /// Whether the delete may remove the cgroups and state by path ([`plain_delete`]).
    plain_delete: bool,
    /// The container's mount namespace, held from create until its exit is reported, so
    /// the namespace's teardown (the unmount of every mount in it, with an RCU grace
    /// period the kernel waits for) happens here after the report instead of in the
    /// init's exit, before anyone can see that exit. Not kept across the monitor's
    /// hand-off: a container that ran that long pays it in its exit, as before.
    mnt_ns: Option<OwnedFd>,
    /// A shim resumed after its monitor reported the exit: the code, and the lock on the
    /// runtime's state the monitor took for the delete that is left.
    reported_exit: Option<(i32, Option<OwnedFd>)>,
    /// stdout pipe read end, or the pty master when tty.
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// Write end of the stdin pipe (not used with a tty: the master takes stdin).
    stdin: Option<OwnedFd>,
    stdin_buf: Vec<u8>,
    stdin_close: bool,
    stdin_owner: Option<u64>,
    stdin_claimed: bool,
    clients: Vec<Client>,
    next_client: u64,
    started: bool,
    /// When this process started the container (None in a resumed shim: long ago).
    started_at: Option<Instant>,
    log: Option<LogWriter>,
    /// Processes exec'd into the running container.
    execs: Vec<exec::Exec>,
    /// The daemon's mounts copied into this process's private namespace for the create,
    /// detached once the container runs ([`mountns::release`]).
    attached: Vec<PathBuf>,
}

#[derive(Clone, Copy)]
enum Src {
    Listener,
    Pidfd,
    Out,
    Err,
    Stdin,
    Client(usize),
    ExecPid(usize),
    ExecOut(usize),
    ExecErr(usize),
    ExecStdin(usize),
}

impl Shim {
    fn setup(o: &ShimOptions, prepared: Option<mountns::Prepared>) -> Result<Shim, Error> {
        let config = o.bundle.join("config.json");
        let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| Error::Runtime {
            context: format!("failed to load {}", config.display()),
            message: chain(&e),
        })?;
        crate::trace::mark(&o.id, "shim.spec_loaded");
        let rootfs = spec.root().as_ref().map(|r| r.path().clone()).unwrap_or_else(|| PathBuf::from("rootfs"));
        let rootfs = if rootfs.is_absolute() { rootfs } else { o.bundle.join(rootfs) };
        let attached = match prepared {
            Some(p) => {
                let (used, attached) = mountns::isolate_prepared(p, &spec, &rootfs, &o.private_parents)?;
                crate::trace::mark(&o.id, if used { "shim.mountns_prepared" } else { "shim.mountns_redone" });
                attached
            }
            None => mountns::isolate(&spec, &rootfs, &o.private_parents)?,
        };
        crate::trace::mark(&o.id, "shim.mountns");
        // A first look in the image's root: a command found there but not executable fails
        // now (126). One not found there may still come from a bind mount or volume, which
        // only the created container's mount namespace shows; it is looked up there below.
        let precheck = match spec.process() {
            Some(p) => {
                let args = p.args().clone().unwrap_or_default();
                let env = p.env().clone().unwrap_or_default();
                let cwd = p.cwd().to_string_lossy().into_owned();
                let cmd = match (args.first(), args.get(1), args.get(2)) {
                    (Some(init), Some(dashes), Some(cmd)) if init == crate::spec::INIT_PATH && dashes == "--" => cmd,
                    (Some(cmd), _, _) => cmd,
                    (None, _, _) => return Err(Error::InvalidArgument("no command specified".into())),
                };
                crate::spec::find_executable(&rootfs, cmd, &env, &cwd)
            }
            None => Ok(()),
        };
        let precheck = match precheck {
            Err(e) if e.exec_failure() == Some(ExecFailure::NotExecutable) => return Err(e),
            other => other,
        };
        let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        let log = match o.log_path.as_os_str().is_empty() {
            true => None,
            false => Some(LogWriter::open(&o.log_path, o.log_max_size, o.log_max_files)?),
        };
        std::fs::create_dir_all(&o.state_root).map_err(|e| Error::io("failed to create", &o.state_root, e))?;
        // The v1 cgroup hierarchies and the masked kernel directories the shim mounts itself:
        // libcontainer sees a spec without them.
        let cgroup_tree = cgroupfs::plan(&spec);
        let masked_dirs = shared::masked_dirs(&spec);
        let changed = match (&cgroup_tree, masked_dirs.is_empty()) {
            (None, true) => None,
            (tree, _) => {
                let seen = tree.as_ref().map_or_else(|| spec.clone(), |t| cgroupfs::runtime_spec(&spec, t));
                Some(shared::without_masks(seen, &masked_dirs))
            }
        };
        // A precompiled filter, loaded by our executor: libcontainer sees a spec without it.
        // The previous run of this container may still be deleting its state, and the
        // runtime's bundle with it, which is written again below.
        crate::state::wait_unlocked(&o.state_root, &o.id);
        let seccomp =
            crate::seccomp::Plan::prepare(changed.as_ref().unwrap_or(&spec), &o.bundle, &o.state_root, &o.id)?;
        crate::trace::mark(&o.id, "shim.seccomp_ready");
        let listener = bind_unix(&o.socket)?;
        crate::trace::mark(&o.id, "shim.listening");

        let mut builder = ContainerBuilder::new(o.id.clone(), SyscallType::default())
            .with_root_path(&o.state_root)
            .map_err(|e| Error::Runtime { context: "invalid state root".into(), message: chain(&e) })?;
        let bundle = match (seccomp, &changed) {
            (Some(plan), _) => {
                builder = builder.with_executor(plan.executor);
                plan.bundle
            }
            (None, Some(seen)) => {
                builder = builder.with_executor(crate::command::InitExecutor);
                crate::seccomp::runtime_bundle(seen, &o.bundle, &crate::state::bundle_dir(&o.state_root, &o.id))?
            }
            (None, None) => {
                builder = builder.with_executor(crate::command::InitExecutor);
                o.bundle.clone()
            }
        };
        let mut out = None;
        let mut err = None;
        let mut stdin = None;
        let mut console = None;
        if o.tty {
            let path = o.bundle.join(format!("console-{}.sock", &berth_base::new_id()[..8]));
            console = Some((bind_unix(&path)?, path.clone()));
            builder = builder.with_console_socket(Some(&path));
        } else {
            let (r, w) = pipe()?;
            nonblocking(&r)?;
            out = Some(r);
            builder = builder.with_stdout(w);
            let (r, w) = pipe()?;
            nonblocking(&r)?;
            err = Some(r);
            builder = builder.with_stderr(w);
        }
        if o.open_stdin && !o.tty {
            let (r, w) = pipe()?;
            nonblocking(&w)?;
            stdin = Some(w);
            builder = builder.with_stdin(r);
        } else if !o.tty {
            let null =
                std::fs::File::open("/dev/null").map_err(|e| Error::io("failed to open", Path::new("/dev/null"), e))?;
            builder = builder.with_stdin(OwnedFd::from(null));
        }
        let built =
            builder.validate_id().and_then(|b| b.as_init(&bundle).with_systemd(false).with_detach(true).build());
        crate::trace::mark(&o.id, "shim.created");
        let container = match built {
            Ok(c) => c,
            Err(e) => {
                if let Some((_, p)) = &console {
                    let _ = std::fs::remove_file(p);
                }
                let _ = std::fs::remove_file(&o.socket);
                let _ = crate::cleanup(&o.state_root, &o.id);
                let message = chain(&e);
                // libcontainer looks the command up inside the container (binds included)
                // before create returns: its verdict in Docker's words.
                if message.contains("not found in $PATH") || message.contains("does not have correct permissions") {
                    return Err(match precheck {
                        Err(pre) => pre,
                        Ok(()) => Error::Exec { failure: ExecFailure::NotFound, message },
                    });
                }
                return Err(Error::Runtime { context: "failed to create container".into(), message });
            }
        };
        let fail = |container: Container, e: Error| -> Error {
            drop(container);
            let _ = std::fs::remove_file(&o.socket);
            let _ = crate::cleanup(&o.state_root, &o.id);
            e
        };
        if let Some((l, p)) = console {
            let master = receive_pty(&l);
            let _ = std::fs::remove_file(&p);
            match master.and_then(|m| nonblocking(&m).map(|()| m)) {
                Ok(m) => {
                    // The size the client asked for at create (`HostConfig.ConsoleSize`):
                    // libcontainer does not apply it, and the command must see it from
                    // its first instruction, not after the client's resize.
                    // Best effort: the client resizes again anyway.
                    if let Some(ws) = crate::command::console_winsize(&spec) {
                        let _ = rustix::termios::tcsetwinsize(&m, ws);
                    }
                    out = Some(m)
                }
                Err(e) => return Err(fail(container, e)),
            }
        }
        let Some(init_pid) = container.pid().and_then(|p| Pid::from_raw(p.as_raw())) else {
            return Err(fail(container, Error::Shim("the runtime reported no init pid".into())));
        };
        if let Err(e) = finish_container_mounts(&spec, init_pid, cgroup_tree.as_ref(), &o.state_root, &masked_dirs) {
            return Err(fail(container, e));
        }
        crate::trace::mark(&o.id, "shim.cgroups_ro");
        if let Err(e) = devices_v2::apply(&spec, init_pid) {
            return Err(fail(container, e));
        }
        // The command is looked up as exec will see it: through the init's root, in its
        // finished mount namespace, so a command on a bind mount or volume is found.
        if let Err(e) = check_command(&spec, init_pid) {
            return Err(fail(container, e));
        }
        crate::trace::mark(&o.id, "shim.command_checked");
        let pidfd = match rustix::process::pidfd_open(init_pid, PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => return Err(fail(container, Error::io("pidfd_open failed", Path::new("init"), e.into()))),
        };
        Ok(Shim {
            opts: o.clone(),
            container: Some(container),
            exe: None,
            init_pid,
            pidfd,
            listener,
            cgroups_path,
            delete_after_exit: delete_after_exit(&spec),
            plain_delete: plain_delete::eligible(&spec),
            mnt_ns: std::fs::File::open(format!("/proc/{}/ns/mnt", init_pid.as_raw_nonzero())).ok().map(OwnedFd::from),
            reported_exit: None,
            out,
            err,
            stdin,
            stdin_buf: Vec::new(),
            stdin_close: false,
            stdin_owner: None,
            stdin_claimed: false,
            clients: Vec::new(),
            next_client: 1,
            started: false,
            started_at: None,
            log,
            execs: Vec::new(),
            attached,
        })
    }

    /// Where Stdin bytes go: the pipe, or the pty master.
    fn stdin_fd(&self) -> Option<BorrowedFd<'_>> {
        if self.opts.tty {
            if self.opts.open_stdin { self.out.as_ref().map(|f| f.as_fd()) } else { None }
        } else {
            self.stdin.as_ref().map(|f| f.as_fd())
        }
    }

    fn run(&mut self) {
        loop {
            // Idle and running: become the small monitor (returns only if that failed), once
            // the container has run for HAND_OFF_AFTER: a short command ends in this form,
            // without the monitor's exec between its exit and the report of it.
            let young = self.started_at.map(|t| HAND_OFF_AFTER.saturating_sub(t.elapsed())).filter(|d| !d.is_zero());
            let hand_off_in = young.filter(|_| self.can_hand_off());
            if hand_off_in.is_none()
                && self.can_hand_off()
                && let Err(e) = self.hand_off()
            {
                tracing::warn!(id = %self.opts.id, error = %e, "staying a full shim");
                self.opts.monitor = None;
                release_setup_memory();
            }
            let mut srcs: Vec<(Src, BorrowedFd<'_>, PollFlags)> = vec![
                (Src::Listener, self.listener.as_fd(), PollFlags::IN),
                (Src::Pidfd, self.pidfd.as_fd(), PollFlags::IN),
            ];
            if let Some(f) = &self.out {
                srcs.push((Src::Out, f.as_fd(), PollFlags::IN));
            }
            if let Some(f) = &self.err {
                srcs.push((Src::Err, f.as_fd(), PollFlags::IN));
            }
            if !self.stdin_buf.is_empty()
                && let Some(f) = self.stdin_fd()
            {
                srcs.push((Src::Stdin, f, PollFlags::OUT));
            }
            for (i, x) in self.execs.iter().enumerate() {
                srcs.push((Src::ExecPid(i), x.pidfd.as_fd(), PollFlags::IN));
                if let Some(f) = &x.out {
                    srcs.push((Src::ExecOut(i), f.as_fd(), PollFlags::IN));
                }
                if let Some(f) = &x.err {
                    srcs.push((Src::ExecErr(i), f.as_fd(), PollFlags::IN));
                }
                if !x.stdin_buf.is_empty()
                    && let Some(f) = x.stdin_fd()
                {
                    srcs.push((Src::ExecStdin(i), f, PollFlags::OUT));
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                let mut fl = PollFlags::IN;
                if !c.out.is_empty() {
                    fl |= PollFlags::OUT;
                }
                srcs.push((Src::Client(i), c.sock.as_fd(), fl));
            }
            let mut fds: Vec<PollFd<'_>> = srcs.iter().map(|(_, fd, fl)| PollFd::from_borrowed_fd(*fd, *fl)).collect();
            let timeout = hand_off_in
                .map(|d| rustix::event::Timespec { tv_sec: 0, tv_nsec: d.as_nanos().min(999_999_999) as i64 });
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
            let ready: Vec<(Src, PollFlags)> = srcs
                .iter()
                .zip(fds.iter())
                .filter(|(_, f)| !f.revents().is_empty())
                .map(|(s, f)| (s.0, f.revents()))
                .collect();
            drop(fds);
            drop(srcs);
            let mut exited = false;
            let mut dead_clients = Vec::new();
            let mut ended_execs = Vec::new();
            for (src, rev) in ready {
                match src {
                    Src::ExecPid(i) => ended_execs.push(self.execs[i].id.clone()),
                    Src::ExecOut(i) => {
                        self.read_exec_output(i, Stream::Stdout);
                    }
                    Src::ExecErr(i) => {
                        self.read_exec_output(i, Stream::Stderr);
                    }
                    Src::ExecStdin(i) => self.execs[i].flush_stdin(),
                    Src::Listener => self.accept(),
                    Src::Pidfd => exited = true,
                    Src::Out => {
                        self.read_output(Stream::Stdout);
                    }
                    Src::Err => {
                        self.read_output(Stream::Stderr);
                    }
                    Src::Stdin => self.flush_stdin(),
                    Src::Client(i) => {
                        if !self.service_client(i, rev) {
                            dead_clients.push(i);
                        }
                    }
                }
            }
            for id in ended_execs {
                self.end_exec(&id);
            }
            for i in dead_clients.into_iter().rev() {
                self.drop_client(i);
            }
            let overfull: Vec<usize> =
                (0..self.clients.len()).filter(|i| self.clients[*i].out.len() > MAX_CLIENT_BUFFER).collect();
            for i in overfull.into_iter().rev() {
                self.drop_client(i);
            }
            if exited && self.finish() {
                return;
            }
        }
    }

    fn accept(&mut self) {
        while let Ok((sock, _)) = self.listener.accept() {
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_client;
            self.next_client += 1;
            self.clients.push(Client {
                id,
                sock,
                decoder: Decoder::new(),
                out: Vec::new(),
                hello: false,
                stdout: false,
                stderr: false,
            });
        }
    }

    /// Reads what is available; returns false at EOF (or EIO: a pty with no slave left).
    fn read_output(&mut self, stream: Stream) -> bool {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let fd = match stream {
                Stream::Stdout => self.out.as_ref(),
                Stream::Stderr => self.err.as_ref(),
            };
            let Some(fd) = fd else { return false };
            match rustix::io::read(fd, &mut buf) {
                Ok(0) | Err(Errno::IO) => {
                    // The pty master stays open for stdin/resize until the container exits;
                    // pipes are simply closed.
                    match stream {
                        Stream::Stdout => self.out = None,
                        Stream::Stderr => self.err = None,
                    }
                    return false;
                }
                Ok(n) => self.emit(stream, &buf[..n]),
                Err(Errno::AGAIN) => return true,
                Err(Errno::INTR) => {}
                Err(_) => {
                    match stream {
                        Stream::Stdout => self.out = None,
                        Stream::Stderr => self.err = None,
                    }
                    return false;
                }
            }
        }
    }

    fn emit(&mut self, stream: Stream, data: &[u8]) {
        if let Some(log) = self.log.as_mut() {
            let _ = log.write_chunk(stream, data, chrono::Utc::now());
        }
        let frame = crate::proto::encode_shim(&match stream {
            Stream::Stdout => ShimFrame::Stdout(data.to_vec()),
            Stream::Stderr => ShimFrame::Stderr(data.to_vec()),
        });
        for c in &mut self.clients {
            let wants = match stream {
                Stream::Stdout => c.stdout,
                Stream::Stderr => c.stderr,
            };
            if c.hello && wants {
                c.out.extend_from_slice(&frame);
            }
        }
        for i in 0..self.clients.len() {
            flush_client(&mut self.clients[i]);
        }
    }

    fn flush_stdin(&mut self) {
        while !self.stdin_buf.is_empty() {
            let Some(fd) = self.stdin_fd() else {
                self.stdin_buf.clear();
                break;
            };
            match rustix::io::write(fd, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => {}
                Err(_) => {
                    // EPIPE: the container closed its stdin; nothing more will be read.
                    self.stdin_buf.clear();
                    self.stdin = None;
                }
            }
        }
        if self.stdin_close && self.stdin_buf.is_empty() {
            self.stdin = None;
        }
    }

    fn close_stdin(&mut self) {
        self.stdin_close = true;
        self.flush_stdin();
    }

    /// Reads and handles a client's frames and flushes its output; false = drop it.
    fn service_client(&mut self, i: usize, rev: PollFlags) -> bool {
        if rev.contains(PollFlags::OUT) && !flush_client(&mut self.clients[i]) {
            return false;
        }
        if !rev.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            return true;
        }
        let mut buf = [0u8; 16 * 1024];
        let mut alive = true;
        loop {
            match (&self.clients[i].sock).read(&mut buf) {
                Ok(0) => {
                    alive = false;
                    break;
                }
                Ok(n) => self.clients[i].decoder.feed(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    alive = false;
                    break;
                }
            }
        }
        self.handle_frames(i) && alive && flush_client(&mut self.clients[i])
    }

    /// Handles the complete frames connection `i` has received; false = drop it.
    fn handle_frames(&mut self, i: usize) -> bool {
        loop {
            match self.clients[i].decoder.next_client() {
                Ok(Some(f)) => self.handle(i, f),
                Ok(None) => return true,
                Err(e) => {
                    self.reply(i, ShimFrame::Error(e.to_string()));
                    return false;
                }
            }
        }
    }

    /// After a monitor's hand-back: serves the frames it left unread (the reason for the
    /// hand-back), which no poll would report again.
    fn serve_handed_back(&mut self) {
        for i in (0..self.clients.len()).rev() {
            if !(self.handle_frames(i) && flush_client(&mut self.clients[i])) {
                self.drop_client(i);
            }
        }
    }

    fn reply(&mut self, i: usize, f: ShimFrame) {
        let c = &mut self.clients[i];
        c.out.extend_from_slice(&crate::proto::encode_shim(&f));
        flush_client(c);
    }

    fn handle(&mut self, i: usize, f: ClientFrame) {
        match f {
            ClientFrame::Hello { stdin, stdout, stderr } => {
                let c = &mut self.clients[i];
                c.hello = true;
                c.stdout = stdout;
                c.stderr = stderr;
                if stdin && !self.stdin_claimed {
                    self.stdin_claimed = true;
                    self.stdin_owner = Some(c.id);
                }
            }
            ClientFrame::Start => {
                if !self.started {
                    crate::trace::mark(&self.opts.id, "shim.start_request");
                    let Some(container) = self.container.as_mut() else {
                        self.reply(i, ShimFrame::Error("failed to start container: no container state".into()));
                        return;
                    };
                    if let Err(e) = container.start() {
                        self.reply(i, ShimFrame::Error(format!("failed to start container: {}", chain(&e))));
                        return;
                    }
                    self.started = true;
                    self.started_at = Some(Instant::now());
                    crate::trace::mark(&self.opts.id, "shim.started");
                    // While the command execs, which the settle below waits for anyway: each
                    // unmount waits for an RCU grace period, which after the reply would delay
                    // the report of a short command's exit.
                    mountns::release(&std::mem::take(&mut self.attached));
                    self.settle_after_start();
                    crate::trace::mark(&self.opts.id, "shim.settled");
                }
                let pid = self.init_pid.as_raw_nonzero().get() as u32;
                self.reply(i, ShimFrame::Started { pid });
            }
            ClientFrame::Exec(json) => self.start_exec(i, &json),
            ClientFrame::Stdin(data) if self.exec_of(i).is_some() => {
                if let Some(x) = self.exec_of(i).map(|x| &mut self.execs[x]) {
                    x.stdin_buf.extend_from_slice(&data);
                    x.flush_stdin();
                }
            }
            ClientFrame::CloseStdin if self.exec_of(i).is_some() => {
                if let Some(x) = self.exec_of(i).map(|x| &mut self.execs[x]) {
                    x.close_stdin();
                }
            }
            ClientFrame::Resize { rows, cols } if self.exec_of(i).is_some() => {
                if let Some(x) = self.exec_of(i).map(|x| &self.execs[x])
                    && x.tty
                    && let Some(m) = x.out.as_ref()
                {
                    let ws = rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
                    if let Err(e) = rustix::termios::tcsetwinsize(m, ws) {
                        self.reply(i, ShimFrame::Error(format!("failed to resize tty: {e}")));
                    }
                }
            }
            ClientFrame::Signal(sig) if self.exec_of(i).is_some() => {
                if let Some(Err(e)) = self.exec_of(i).map(|x| self.execs[x].signal(sig)) {
                    self.reply(i, ShimFrame::Error(format!("failed to signal exec: {e}")));
                }
            }
            ClientFrame::Stdin(data) => {
                if self.stdin_fd().is_some() && !self.stdin_close {
                    self.stdin_buf.extend_from_slice(&data);
                    self.flush_stdin();
                }
            }
            ClientFrame::CloseStdin => {
                // A pty has no half-close; its stdin lives as long as the container.
                if !self.opts.tty {
                    self.close_stdin();
                }
            }
            ClientFrame::Resize { rows, cols } => {
                if let (true, Some(m)) = (self.opts.tty, self.out.as_ref()) {
                    let ws = rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
                    if let Err(e) = rustix::termios::tcsetwinsize(m, ws) {
                        self.reply(i, ShimFrame::Error(format!("failed to resize tty: {e}")));
                    }
                }
            }
            ClientFrame::Signal(sig) => {
                let res = match signal_of(sig) {
                    Some(s) => rustix::process::pidfd_send_signal(&self.pidfd, s).map_err(|e| e.to_string()),
                    None => Err(format!("invalid signal {sig}")),
                };
                if let Err(e) = res {
                    self.reply(i, ShimFrame::Error(format!("failed to signal container: {e}")));
                }
            }
        }
    }

    fn drop_client(&mut self, i: usize) {
        let c = self.clients.remove(i);
        // Its exec keeps running without it (Docker closes the exec's stdin when the
        // attach ends); its output is dropped from now on.
        if let Some(x) = self.execs.iter_mut().find(|x| x.client == Some(c.id)) {
            x.client = None;
            x.close_stdin();
            x.stdin_closed = !x.tty;
        }
        if self.opts.stdin_once && self.stdin_owner == Some(c.id) && !self.opts.tty {
            self.close_stdin();
        }
    }

    /// The init may have exited: reap it and wind down. False if it had not exited yet.
    fn finish(&mut self) -> bool {
        let status = match rustix::process::waitpid(Some(self.init_pid), WaitOptions::NOHANG) {
            Ok(Some((_, st))) => st,
            Ok(None) => return false,
            // ECHILD: someone else reaped it; its status is lost.
            Err(_) => return self.wind_down(255),
        };
        let code = if let Some(c) = status.exit_status() {
            c
        } else if let Some(s) = status.terminating_signal() {
            128 + s
        } else {
            return false;
        };
        self.wind_down(code)
    }

    fn wind_down(&mut self, code: i32) -> bool {
        crate::trace::mark(&self.opts.id, "shim.exited");
        // Everything written before the exit is still in the pipes or the pty.
        while self.out.is_some() && self.read_output(Stream::Stdout) {
            if !self.has_more(Stream::Stdout) {
                break;
            }
        }
        while self.err.is_some() && self.read_output(Stream::Stderr) {
            if !self.has_more(Stream::Stderr) {
                break;
            }
        }
        let oom_killed = self.oom_killed();
        // Execs end with the container (the kernel kills them with the pid namespace's
        // init; with a shared pid namespace they are killed here), and say so first.
        for x in &self.execs {
            let _ = x.signal(9);
        }
        let ids: Vec<String> = self.execs.iter().map(|x| x.id.clone()).collect();
        for id in ids {
            self.end_exec(&id);
        }
        self.out = None;
        self.err = None;
        self.stdin = None;
        crate::trace::mark(&self.opts.id, "shim.drained");
        // The exit is reported before libcontainer's delete (cgroups, state: ~2 ms) when
        // nothing can tell: the state stays locked until the delete is done, and whoever
        // reuses the id waits for that lock (see `crate::state`). Otherwise (poststop hooks,
        // whose effects the exit must follow; processes outside a pid namespace of the
        // container's own, which only the delete kills) the container is deleted first.
        let held = match self.delete_after_exit {
            true => crate::state::lock(&self.opts.state_root.join(&self.opts.id)),
            false => None,
        };
        if held.is_none() {
            self.delete_container();
        }
        let finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let _ = crate::exit::write(&self.opts.exit_file, &ExitInfo { code, finished_at, oom_killed });
        let _ = std::fs::remove_file(&self.opts.socket);
        let frame = crate::proto::encode_shim(&ShimFrame::Exit { code });
        for c in &mut self.clients {
            c.out.extend_from_slice(&frame);
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = c.sock.write_all(&c.out);
            c.out.clear();
        }
        self.clients.clear();
        crate::trace::mark(&self.opts.id, "shim.exit_sent");
        self.mnt_ns = None;
        if held.is_some() {
            yield_to_the_exit();
            self.delete_container();
        }
        drop(held);
        true
    }

    /// Deletes the container through libcontainer (its cgroups and state), or its state
    /// directory by path when libcontainer cannot.
    fn delete_container(&mut self) {
        // The runtime bundle first, while the state directory (and its lock) still tells a
        // next start of this id to wait: that start writes the bundle again.
        if let Err(e) = crate::state::remove_bundle_of(&self.opts.state_root, &self.opts.id) {
            tracing::warn!(id = %self.opts.id, error = %e, "failed to remove the runtime's bundle");
        }
        if self.plain_delete
            && let Some(cgroups) = &self.cgroups_path
            && plain_delete::run(cgroups, &self.opts.state_root.join(&self.opts.id))
        {
            crate::trace::mark(&self.opts.id, "shim.deleted");
            return;
        }
        match self.container.as_mut().map(plain_delete::delete) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::warn!(id = %self.opts.id, error = %chain(&e), "failed to delete container");
                let _ = crate::state::remove(&self.opts.state_root, &self.opts.id);
            }
            None => {
                let _ = crate::state::remove(&self.opts.state_root, &self.opts.id);
            }
        }
        crate::trace::mark(&self.opts.id, "shim.deleted");
    }

    /// True when the fd still has bytes right now (read_output stops at EAGAIN).
    fn has_more(&self, stream: Stream) -> bool {
        let fd = match stream {
            Stream::Stdout => self.out.as_ref(),
            Stream::Stderr => self.err.as_ref(),
        };
        let Some(fd) = fd else { return false };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0) && fds[0].revents().contains(PollFlags::IN)
    }

    /// Whether the container's cgroup recorded an OOM kill (v1 or v2 layout).
    fn oom_killed(&self) -> bool {
        let Some(p) = &self.cgroups_path else { return false };
        let rel = p.to_string_lossy().trim_start_matches('/').to_string();
        let candidates = [
            (format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"), "oom_kill "),
            (format!("/sys/fs/cgroup/{rel}/memory.events"), "oom_kill "),
            (format!("/sys/fs/cgroup/unified/{rel}/memory.events"), "oom_kill "),
        ];
        candidates.iter().any(|(f, key)| {
            std::fs::read_to_string(f).ok().is_some_and(|s| {
                s.lines().any(|l| l.strip_prefix(key).and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > 0))
            })
        })
    }
}

/// Whether a container's exit may be reported before libcontainer deletes it: only when
/// the delete has nothing the exit must wait for — no poststop hooks, and a pid namespace
/// of the container's own (its processes all died with its init; otherwise the delete is
/// what kills those left).
fn delete_after_exit(spec: &oci_spec::runtime::Spec) -> bool {
    let poststop = spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()).is_some_and(|p| !p.is_empty());
    let own_pid_ns = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).is_some_and(|ns| {
        ns.iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none())
    });
    !poststop && own_pid_ns
}

/// How long a started container runs under the full shim before it becomes the monitor.
const HAND_OFF_AFTER: Duration = Duration::from_millis(20);

/// How long a start waits for the container's process to settle (see
/// [`Shim::settle_after_start`]); a process still computing after this is left to run.
const SETTLE_LIMIT: Duration = Duration::from_millis(250);
/// How often the settle loop looks at a process that raised no event.
const SETTLE_STEP: Duration = Duration::from_micros(200);

impl Shim {
    /// Holds the answer to Start until the container's command has begun and settled: it
    /// has exec'd (its `/proc/<pid>/exe` is no longer this binary, whose clone libcontainer's
    /// init is) and then exited, blocked (sleeping, waiting on I/O) or written output, which
    /// is read into the log here. libcontainer's start returns when it has signalled the
    /// init, before the command runs, so without this a `logs` right after `start` of a
    /// short container found nothing about one time in ten.
    fn settle_after_start(&mut self) {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let own = std::fs::read_link("/proc/self/exe").ok();
        let pid = self.init_pid.as_raw_nonzero().get();
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let stat = PathBuf::from(format!("/proc/{pid}/stat"));
        let mut exec_seen = false;
        loop {
            // Wakes at once on the process's exit or its first output; otherwise looks
            // again after SETTLE_STEP (an exec and a change of state raise no event).
            let mut fds = vec![PollFd::new(&self.pidfd, PollFlags::IN)];
            fds.extend(self.out.as_ref().map(|fd| PollFd::new(fd, PollFlags::IN)));
            fds.extend(self.err.as_ref().map(|fd| PollFd::new(fd, PollFlags::IN)));
            let wait = deadline.saturating_duration_since(Instant::now()).min(SETTLE_STEP);
            let ts = rustix::event::Timespec { tv_sec: 0, tv_nsec: wait.as_nanos() as i64 };
            let _ = rustix::event::poll(&mut fds, Some(&ts));
            let exited = fds[0].revents().contains(PollFlags::IN);
            // Output, or every writer gone (a hang-up would wake every poll from now on).
            let output = fds[1..].iter().any(|f| f.revents().intersects(PollFlags::IN | PollFlags::HUP));
            drop(fds);
            if exited {
                break;
            }
            if !exec_seen {
                let now_exe = std::fs::read_link(&exe).ok();
                exec_seen = now_exe.is_some() && now_exe != own;
            }
            if exec_seen {
                if output {
                    break;
                }
                // The state is the field after the parenthesised command name.
                let state = std::fs::read_to_string(&stat)
                    .ok()
                    .and_then(|s| s.rsplit_once(')').and_then(|(_, r)| r.trim_start().chars().next()));
                // Running (R) or in uninterruptible sleep (D: loading its pages) is not settled.
                if !matches!(state, Some('R' | 'D')) {
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // What it wrote so far goes to the log before the start is answered.
        if self.has_more(Stream::Stdout) {
            self.read_output(Stream::Stdout);
        }
        if self.has_more(Stream::Stderr) {
            self.read_output(Stream::Stderr);
        }
    }

    /// The exec that connection `i` runs, as an index into `execs`.
    fn exec_of(&self, i: usize) -> Option<usize> {
        let id = self.clients.get(i)?.id;
        self.execs.iter().position(|x| x.client == Some(id))
    }

    /// Handles an Exec frame: starts the process and binds it to connection `i`.
    fn start_exec(&mut self, i: usize, json: &[u8]) {
        let c = &self.clients[i];
        let refused = if c.stdout || c.stderr {
            Some("exec on a connection that receives the container's output")
        } else if self.exec_of(i).is_some() {
            Some("this connection already runs an exec")
        } else if !self.started {
            Some("the container is not running")
        } else {
            None
        };
        if let Some(why) = refused {
            self.reply(i, exec_failed(why.to_owned(), None));
            return;
        }
        let spec: ExecSpec = match serde_json::from_slice(json) {
            Ok(s) => s,
            Err(e) => {
                self.reply(i, exec_failed(format!("invalid exec request: {e}"), None));
                return;
            }
        };
        match exec::start(&self.opts, self.init_pid, &spec) {
            Ok(mut x) => {
                x.client = Some(self.clients[i].id);
                let pid = x.pid.as_raw_nonzero().get() as u32;
                self.execs.push(x);
                self.reply(i, ShimFrame::ExecStarted { pid });
            }
            Err(e) => self.reply(i, exec_failed(e.to_string(), e.exec_failure())),
        }
    }

    /// Reads an exec's output and sends it to its connection; false at EOF.
    fn read_exec_output(&mut self, x: usize, stream: Stream) -> bool {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let e = &mut self.execs[x];
            let fd = match stream {
                Stream::Stdout => e.out.as_ref(),
                Stream::Stderr => e.err.as_ref(),
            };
            let Some(fd) = fd else { return false };
            match rustix::io::read(fd, &mut buf) {
                Ok(n) if n > 0 => {
                    let frame = crate::proto::encode_shim(&match stream {
                        Stream::Stdout => ShimFrame::Stdout(buf[..n].to_vec()),
                        Stream::Stderr => ShimFrame::Stderr(buf[..n].to_vec()),
                    });
                    let owner = e.client;
                    if let Some(c) = self.clients.iter_mut().find(|c| Some(c.id) == owner) {
                        c.out.extend_from_slice(&frame);
                        flush_client(c);
                    }
                }
                Err(Errno::AGAIN) => return true,
                Err(Errno::INTR) => {}
                _ => {
                    match stream {
                        Stream::Stdout => e.out = None,
                        Stream::Stderr => e.err = None,
                    }
                    return false;
                }
            }
        }
    }

    /// An exec's process ended: drain its output, reap it, record and report its code.
    fn end_exec(&mut self, id: &str) {
        let Some(x) = self.execs.iter().position(|e| e.id == id) else { return };
        for stream in [Stream::Stdout, Stream::Stderr] {
            // A pty may still hold the last output after the process is gone; its reads end
            // with EIO once drained.
            while self.read_exec_output(x, stream) {
                let fd = match stream {
                    Stream::Stdout => self.execs[x].out.as_ref(),
                    Stream::Stderr => self.execs[x].err.as_ref(),
                };
                let Some(fd) = fd else { break };
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                let wait = rustix::event::Timespec { tv_sec: 0, tv_nsec: 20_000_000 };
                if !matches!(rustix::event::poll(&mut fds, Some(&wait)), Ok(n) if n > 0) {
                    break;
                }
            }
        }
        let e = self.execs.remove(x);
        let code = e.reap();
        if let Some(c) = self.clients.iter_mut().find(|c| Some(c.id) == e.client) {
            c.out.extend_from_slice(&crate::proto::encode_shim(&ShimFrame::ExecExit { code }));
            flush_client(c);
        }
    }
}

fn exec_failed(message: String, failure: Option<ExecFailure>) -> ShimFrame {
    ShimFrame::ExecFailed(serde_json::to_vec(&ExecFailed { message, failure }).unwrap_or_default())
}

/// A signal number as rustix takes it; realtime signals have no name in rustix but are
/// valid to send.
fn signal_of(sig: i32) -> Option<rustix::process::Signal> {
    rustix::process::Signal::from_named_raw(sig).or_else(|| {
        (1..=64).contains(&sig).then(|| {
            // SAFETY: the value is only passed to pidfd_send_signal, never used to install
            // a handler, so libc's reserved signals are no concern.
            unsafe { rustix::process::Signal::from_raw_unchecked(sig) }
        })
    })
}

/// The container's root as its init sees it: `/proc/<pid>/root` resolves paths through the
/// mounts of the init's mount namespace (binds and volumes included).
fn container_root(init: Pid) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root", init.as_raw_nonzero()))
}

/// Checks that the spec's command can be executed in the created container (Docker's
/// 127/126). With `--init` the init is checked, and the command it will run too.
fn check_command(spec: &oci_spec::runtime::Spec, init: Pid) -> Result<(), Error> {
    let Some(p) = spec.process() else { return Ok(()) };
    let args = p.args().clone().unwrap_or_default();
    let env = p.env().clone().unwrap_or_default();
    let cwd = p.cwd().to_string_lossy().into_owned();
    let root = container_root(init);
    let Some(cmd) = args.first() else { return Err(Error::InvalidArgument("no command specified".into())) };
    crate::spec::find_executable(&root, cmd, &env, &cwd)?;
    if cmd == crate::spec::INIT_PATH
        && args.get(1).map(String::as_str) == Some("--")
        && let Some(user_cmd) = args.get(2)
    {
        crate::spec::find_executable(&root, user_cmd, &env, &cwd)?;
    }
    Ok(())
}

/// Writes as much buffered output as the socket takes; false when the client is gone.
fn flush_client(c: &mut Client) -> bool {
    monitor::handover::flush(&c.sock, &mut c.out)
}

/// Finishes the container's mounts after create, from inside its namespaces: makes its
/// cgroup filesystem read-only as its spec asks, and makes the mounts libcontainer was not
/// given (the v1 hierarchies, the masks).
///
/// libcontainer 0.7 honours `ro` on a `cgroup` mount only on pure cgroup2 hosts: on v1 and
/// hybrid hosts its `mount_cgroup_v1` builds its own mounts (a tmpfs at the destination,
/// then each controller) with fixed options and drops the spec's, so every controller is
/// writable and a container could raise its own memory or pids limit. runc remounts them
/// read-only after setting them up; the spec cannot express that, so it is done here, the
/// only place libcontainer runs: once create has returned, the init waits for `start`
/// inside its finished mount namespace, and a forked child of this single-threaded process
/// enters that namespace and bind-remounts every mount at or under the destination
/// read-only (the flag is per mount: the superblocks and the host's view are untouched).
/// Without CAP_SYS_ADMIN the container cannot remount them back; `--privileged` asks for
/// `rw` and gets Docker's writable cgroups.
///
/// With `tree` (see [`cgroupfs`]), the same child first enters the init's cgroup namespace
/// too and mounts the v1 hierarchies that libcontainer was not asked to. It also covers
/// `masked` (directories libcontainer was not asked to mask) with binds of the shared
/// empty directory ([`shared`]), read-only; a masked directory the container does not
/// have is skipped, as libcontainer skips it.
fn finish_container_mounts(
    spec: &oci_spec::runtime::Spec,
    init: Pid,
    tree: Option<&cgroupfs::V1Tree>,
    state_root: &Path,
    masked: &[PathBuf],
) -> Result<(), Error> {
    use rustix::mount::MountFlags;
    let dests: Vec<PathBuf> = spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| m.typ().as_deref() == Some("cgroup"))
        .filter(|m| m.options().iter().flatten().any(|o| o == "ro"))
        .map(|m| m.destination().clone())
        .collect();
    if dests.is_empty() && tree.is_none() && masked.is_empty() {
        return Ok(());
    }
    // With the skeleton, everything at the destination is the helper's own (its points);
    // what mountinfo shows there now came with a `/sys` bound from the host and is hidden.
    let skeleton = tree.is_some_and(|t| t.skeleton);
    let tree = match tree {
        Some(t) => Some(cgroupfs::Prepared::new(t, state_root)?),
        None => None,
    };
    let masks = shared::mask_binds(state_root, masked)?;
    let proc_dir = PathBuf::from(format!("/proc/{}", init.as_raw_nonzero()));
    let info_path = proc_dir.join("mountinfo");
    let info = std::fs::read_to_string(&info_path).map_err(|e| Error::io("failed to read", &info_path, e))?;
    // mountinfo: id parent major:minor root mount-point per-mount-options …; the mount
    // points are as the init sees them, inside its root.
    // A `/sys` bound from the host (host network, build steps) brings the host's cgroup
    // mounts along, and libcontainer's tmpfs then hides them: only the mounts made after
    // the last one at a destination are visible there, so only those are remounted.
    let lines: Vec<(String, &str)> = info
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Some((unescape_mountinfo(f.get(4)?), *f.get(5)?))
        })
        .collect();
    let mut targets: Vec<(std::ffi::CString, MountFlags)> = Vec::new();
    for d in dests.iter().filter(|_| !skeleton) {
        let top = lines.iter().rposition(|(p, _)| Path::new(p) == d.as_path()).unwrap_or(0);
        for (point, opts) in &lines[top..] {
            if !Path::new(point).starts_with(d) {
                continue;
            }
            let mut flags = MountFlags::BIND | MountFlags::RDONLY;
            for o in opts.split(',') {
                flags |= match o {
                    "nosuid" => MountFlags::NOSUID,
                    "nodev" => MountFlags::NODEV,
                    "noexec" => MountFlags::NOEXEC,
                    "noatime" => MountFlags::NOATIME,
                    "nodiratime" => MountFlags::NODIRATIME,
                    "relatime" => MountFlags::RELATIME,
                    "strictatime" => MountFlags::STRICTATIME,
                    _ => MountFlags::empty(),
                };
            }
            let c = std::ffi::CString::new(point.clone())
                .map_err(|_| Error::Shim(format!("mount point {point:?} holds a NUL byte")))?;
            targets.push((c, flags));
        }
    }
    // The hierarchies mounted below are made after the mountinfo above was read.
    if let Some(t) = &tree
        && !dests.is_empty()
    {
        targets.extend(t.points().map(|p| (p.clone(), cgroupfs::READONLY)));
    }
    let open_ns = |name: &str| {
        let path = proc_dir.join(name);
        rustix::fs::open(&path, rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
            .map_err(|e| Error::io("failed to open", &path, e.into()))
    };
    let ns = open_ns("ns/mnt")?;
    let cgroup_ns = match tree {
        Some(_) => Some(open_ns("ns/cgroup")?),
        None => None,
    };
    // The helper shares the shim's memory (see [`vfork`]): it only makes syscalls on what
    // was prepared above.
    let status = vfork::run(&mut || {
        use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
        let entered =
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Mount)).and_then(|()| match &cgroup_ns {
                Some(c) => move_into_link_name_space(c.as_fd(), Some(LinkNameSpaceType::ControlGroup)),
                None => Ok(()),
            });
        match entered {
            Err(e) => 100 + e.raw_os_error().min(99),
            Ok(()) => tree
                .as_ref()
                .map_or(Ok(()), |t| t.mount())
                .and_then(|()| {
                    targets.iter().try_for_each(|(t, flags)| rustix::mount::mount_remount(t.as_c_str(), *flags, c""))
                })
                .and_then(|()| {
                    masks.iter().try_for_each(|m| match m.attach() {
                        Err(Errno::NOENT) => Ok(()),
                        Err(e) => Err(e),
                        Ok(()) => rustix::mount::mount_remount(m.target.as_c_str(), MASK_FLAGS, c""),
                    })
                })
                .err()
                .map_or(0, |e| e.raw_os_error().min(99)),
        }
    })
    .map_err(|e| Error::io("clone failed", Path::new("cgroup remount"), e.into()))?;
    match status {
        Some(0) => Ok(()),
        Some(c) if c > 100 => Err(Error::Shim(format!(
            "entering the container's namespaces to set up /sys/fs/cgroup: {}",
            Errno::from_raw_os_error(c - 100)
        ))),
        Some(c) => {
            Err(Error::Shim(format!("setting up the container's /sys/fs/cgroup: {}", Errno::from_raw_os_error(c))))
        }
        None => Err(Error::Shim("the cgroup remount helper died".into())),
    }
}

/// A mask's bind: read-only, and nothing on it could run or be a device anyway.
const MASK_FLAGS: rustix::mount::MountFlags = rustix::mount::MountFlags::BIND
    .union(rustix::mount::MountFlags::RDONLY)
    .union(rustix::mount::MountFlags::NOSUID)
    .union(rustix::mount::MountFlags::NODEV)
    .union(rustix::mount::MountFlags::NOEXEC);

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Gives back what the create left behind, for a shim that stays with its container: the
/// heap libcontainer freed, and the pages of set-up code (argument parsing, libcontainer,
/// serde) it will never run again, which an idle shim would otherwise keep resident
/// ([`crate::residency`]; relocated, dirty mappings are left alone).
fn release_setup_memory() {
    // SAFETY: malloc_trim only releases free memory of glibc's allocator; no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    crate::residency::drop_clean_file_pages();
}
