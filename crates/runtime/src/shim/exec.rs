//! Exec inside the shim: a further process in the running container (`docker exec`, health
//! probes), joined to its namespaces and cgroup by libcontainer's tenant mode. It runs here,
//! in the container's single-threaded shim, never in the multi-threaded daemon (see the
//! runtime notes), and belongs to the connection that asked for it: that connection's
//! stdin, resize and signal requests go to the exec, and the exec's output and exit come
//! back on it. The exec outlives its connection (a daemon killed mid-exec leaves the
//! process running, its stdin closed and its output dropped) and its exit code is written
//! to the exit file the request named, so a later daemon can still read it.
//!
//! An exec carries exactly the container's confinement, as runc's exec does for Docker:
//! capabilities (all of them for `--privileged`), no_new_privileges, AppArmor, rlimits and
//! the container's seccomp filter (see [`exec_filter`] for why the filter is loaded here
//! rather than by libcontainer).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::LinuxSeccomp;
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, WaitOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ShimOptions, bind_unix, nonblocking, pipe, receive_pty};
use crate::exit::ExitInfo;
use crate::seccomp::{Filter, Program, SeccompExecutor};
use crate::{Error, ExecFailure, chain};

/// What the daemon asks a shim to run in its container; sent as JSON in the Exec frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The exec's id (names its temporary files).
    pub id: String,
    /// argv.
    pub args: Vec<String>,
    /// The whole environment, `K=V`.
    pub env: Vec<String>,
    /// Absolute working directory.
    pub cwd: String,
    /// The identity it runs as, already resolved in the container's root.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Give it a pseudo-terminal.
    pub tty: bool,
    /// Keep its stdin open for the connection's Stdin frames (else /dev/null).
    pub stdin: bool,
    /// Every capability the shim may grant (`exec --privileged`).
    pub privileged: bool,
    /// Initial tty size, rows and columns.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// Where the exit code is recorded when the exec ends (an [`ExitInfo`]).
    #[serde(default)]
    pub exit_file: Option<PathBuf>,
}

/// Why an exec did not start, as the ExecFailed frame carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecFailed {
    /// The shim's words (Docker's `exec: "x": …` for a command that cannot run).
    pub message: String,
    /// Set when the command was not found or not executable (exit code 127/126).
    #[serde(default)]
    pub failure: Option<ExecFailure>,
}

/// A running exec, owned by the shim's event loop.
pub(super) struct Exec {
    pub(super) id: String,
    /// The id of the connection that runs it; `None` once that connection has gone.
    pub(super) client: Option<u64>,
    pub(super) pid: Pid,
    pub(super) pidfd: OwnedFd,
    /// stdout pipe, or the pty master.
    pub(super) out: Option<OwnedFd>,
    pub(super) err: Option<OwnedFd>,
    /// stdin pipe's write end (with a tty, stdin goes to the master).
    pub(super) stdin: Option<OwnedFd>,
    pub(super) stdin_buf: Vec<u8>,
    pub(super) stdin_closed: bool,
    pub(super) tty: bool,
    pub(super) open_stdin: bool,
    pub(super) exit_file: Option<PathBuf>,
}

impl Exec {
    /// Where Stdin bytes go: the pipe, or the pty master when stdin is open.
    pub(super) fn stdin_fd(&self) -> Option<BorrowedFd<'_>> {
        if self.stdin_closed {
            return None;
        }
        if self.tty {
            if self.open_stdin { self.out.as_ref().map(|f| f.as_fd()) } else { None }
        } else {
            self.stdin.as_ref().map(|f| f.as_fd())
        }
    }

    /// Writes what the buffer holds as far as the fd takes it.
    pub(super) fn flush_stdin(&mut self) {
        while !self.stdin_buf.is_empty() {
            let Some(fd) = self.stdin_fd() else {
                self.stdin_buf.clear();
                return;
            };
            match rustix::io::write(fd, &self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR) => {}
                Err(_) => {
                    self.stdin_buf.clear();
                    self.stdin = None;
                }
            }
        }
    }

    /// Closes stdin once what was written is delivered (a pty has no half-close: its stdin
    /// lives as long as the process, as in Docker).
    pub(super) fn close_stdin(&mut self) {
        self.flush_stdin();
        if !self.tty && self.stdin_buf.is_empty() {
            self.stdin = None;
        }
    }

    /// Sends a signal to the exec's process.
    pub(super) fn signal(&self, sig: i32) -> Result<(), String> {
        match super::signal_of(sig) {
            Some(s) => rustix::process::pidfd_send_signal(&self.pidfd, s).map_err(|e| e.to_string()),
            None => Err(format!("invalid signal {sig}")),
        }
    }

    /// Reaps the process (it has exited: its pidfd was readable, or it was killed) and
    /// records its code in the exit file when one was asked for.
    pub(super) fn reap(&self) -> i32 {
        let code = match rustix::process::waitpid(Some(self.pid), WaitOptions::empty()) {
            Ok(Some((_, st))) => st.exit_status().or_else(|| st.terminating_signal().map(|s| 128 + s)).unwrap_or(255),
            _ => 255,
        };
        if let Some(f) = &self.exit_file {
            let finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let _ = crate::exit::write(f, &ExitInfo { code, finished_at, oom_killed: false });
        }
        code
    }
}

/// The OCI process of an exec: the request's argv, env, cwd, user and tty, with the
/// container's confinement (capabilities, no_new_privileges, AppArmor, rlimits), or every
/// capability the shim holds when privileged.
fn process_json(container: &oci_spec::runtime::Spec, s: &ExecSpec) -> serde_json::Value {
    let proc_ = container.process().as_ref();
    let mut caps = proc_
        .and_then(|p| p.capabilities().as_ref())
        .map(|c| serde_json::to_value(c).unwrap_or(json!({})))
        .unwrap_or(json!({}));
    if s.privileged {
        let all = crate::spec::host_caps();
        caps = json!({"bounding": all, "effective": all, "permitted": all});
    }
    if borrows_sys_admin(container, s) {
        let permitted = caps.get_mut("permitted").and_then(|p| p.as_array_mut());
        match permitted {
            Some(p) => p.push(json!(SYS_ADMIN)),
            None => caps["permitted"] = json!([SYS_ADMIN]),
        }
    }
    let mut user = json!({"uid": s.uid, "gid": s.gid});
    if !s.additional_gids.is_empty() {
        user["additionalGids"] = json!(s.additional_gids);
    }
    let mut p = json!({
        "terminal": s.tty,
        "user": user,
        "args": s.args,
        "env": s.env,
        "cwd": if s.cwd.is_empty() { "/" } else { s.cwd.as_str() },
        "capabilities": caps,
    });
    if let Some((rows, cols)) = s.console_size.filter(|_| s.tty) {
        p["consoleSize"] = json!({"height": rows, "width": cols});
    }
    if proc_.and_then(|p| p.no_new_privileges()) == Some(true) {
        p["noNewPrivileges"] = json!(true);
    }
    if let Some(a) = proc_.and_then(|p| p.apparmor_profile().clone()) {
        p["apparmorProfile"] = json!(a);
    }
    if let Some(r) = proc_.and_then(|p| p.rlimits().clone()) {
        p["rlimits"] = serde_json::to_value(r).unwrap_or(json!([]));
    }
    p
}

const SYS_ADMIN: &str = "CAP_SYS_ADMIN";

/// The container's seccomp profile, which every exec gets (Docker's exec, `--privileged`
/// included, keeps the container's filter; only a privileged container has none).
fn container_seccomp(container: &oci_spec::runtime::Spec) -> Option<&LinuxSeccomp> {
    container.linux().as_ref().and_then(|l| l.seccomp().as_ref())
}

/// Whether the exec must hold CAP_SYS_ADMIN in its permitted set until its filter is
/// loaded: without no_new_privileges the kernel loads a filter only for a task with
/// CAP_SYS_ADMIN in its effective set, and by the time [`SeccompExecutor`] runs
/// libcontainer has already dropped the capabilities to the container's.
fn borrows_sys_admin(container: &oci_spec::runtime::Spec, s: &ExecSpec) -> bool {
    container_seccomp(container).is_some() && !s.privileged && crate::seccomp::must_borrow_sys_admin(container)
}

/// The loader of the container's filter for an exec: the precompiled program from the
/// same cache the container's init used, or libcontainer's compiler for a notify profile
/// (which then refuses: an exec has nobody to hand the listener to).
///
/// The loading is ours because libcontainer 0.7 cannot do it: its tenant builder
/// (`as_tenant`) builds the exec's `linux` section afresh from the container's namespaces,
/// cgroupsPath, personality and time offsets only, so `linux.seccomp` is dropped and its
/// init code, which would load the filter, never sees one. The process half (capabilities,
/// no_new_privileges, AppArmor, rlimits, user) comes whole from our process.json, so the
/// filter is the one thing missing (runc loads the filter before dropping capabilities,
/// which ends in the same state).
fn exec_filter(o: &ShimOptions, sc: &LinuxSeccomp) -> Result<Filter, Error> {
    if !crate::seccomp::precompilable(sc) {
        return Ok(Filter::Profile(sc.clone()));
    }
    Program::for_profile(sc, &crate::seccomp::cache_dir(&o.state_root)).map(Filter::Program)
}

/// Starts an exec in the container whose init is `init`: checks the command resolves in
/// the container's mount namespace (Docker's 127/126), then runs it through libcontainer's
/// tenant mode with pipes or a pty. Blocking, a few milliseconds.
pub(super) fn start(o: &ShimOptions, init: Pid, s: &ExecSpec) -> Result<Exec, Error> {
    let Some(cmd) = s.args.first() else {
        return Err(Error::InvalidArgument("No exec command specified".into()));
    };
    crate::spec::find_executable(&super::container_root(init), cmd, &s.env, &s.cwd)?;
    let config = o.bundle.join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config)
        .map_err(|e| Error::Runtime { context: format!("failed to load {}", config.display()), message: chain(&e) })?;
    let tag = &berth_base::new_id()[..12];
    let process_path = o.bundle.join(format!("exec-{tag}.json"));
    let body = serde_json::to_vec(&process_json(&spec, s))
        .map_err(|source| Error::Json { context: "failed to encode exec process".into(), source })?;
    berth_base::fsutil::atomic_write(&process_path, &body)
        .map_err(|e| Error::io("failed to write", &process_path, e))?;
    let executor = match container_seccomp(&spec) {
        Some(sc) => Some(SeccompExecutor::new(exec_filter(o, sc)?, borrows_sys_admin(&spec, s))),
        None => None,
    };
    let result = start_tenant(o, s, &process_path, tag, executor);
    let _ = std::fs::remove_file(&process_path);
    // libcontainer's notify socket handling may leave us in its directory.
    let _ = std::env::set_current_dir("/");
    result
}

fn start_tenant(
    o: &ShimOptions,
    s: &ExecSpec,
    process: &Path,
    tag: &str,
    executor: Option<SeccompExecutor>,
) -> Result<Exec, Error> {
    let runtime_err =
        |context: &str, e: &dyn std::error::Error| Error::Runtime { context: context.to_owned(), message: chain(e) };
    let mut builder = ContainerBuilder::new(o.id.clone(), SyscallType::default())
        .with_root_path(&o.state_root)
        .map_err(|e| runtime_err("invalid state root", &e))?;
    builder = match executor {
        Some(x) => builder.with_executor(x),
        None => builder.with_executor(crate::command::TenantExecutor),
    };
    let (mut out, mut err, mut stdin, mut console) = (None, None, None, None);
    if s.tty {
        let path = o.bundle.join(format!("exec-console-{tag}.sock"));
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
        if s.stdin {
            let (r, w) = pipe()?;
            nonblocking(&w)?;
            stdin = Some(w);
            builder = builder.with_stdin(r);
        } else {
            let null =
                std::fs::File::open("/dev/null").map_err(|e| Error::io("failed to open", Path::new("/dev/null"), e))?;
            builder = builder.with_stdin(OwnedFd::from(null));
        }
    }
    let built = builder.validate_id().and_then(|b| b.as_tenant().with_process(Some(process)).with_detach(true).build());
    let pid = match built {
        Ok(p) => p,
        Err(e) => {
            if let Some((_, p)) = &console {
                let _ = std::fs::remove_file(p);
            }
            let message = chain(&e);
            return Err(exec_failure_of(&message)
                .map(|failure| Error::Exec { failure, message: message.clone() })
                .unwrap_or(Error::Runtime { context: "failed to exec in container".into(), message }));
        }
    };
    let Some(pid) = Pid::from_raw(pid.as_raw()) else {
        return Err(Error::Shim("the runtime reported no exec pid".into()));
    };
    if let Some((l, p)) = console {
        let master = receive_pty(&l).and_then(|m| nonblocking(&m).map(|()| m));
        let _ = std::fs::remove_file(&p);
        match master {
            Ok(m) => {
                out = Some(m);
            }
            Err(e) => {
                kill_and_reap(pid);
                return Err(e);
            }
        }
    }
    let pidfd = match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            kill_and_reap(pid);
            return Err(Error::io("pidfd_open failed", Path::new("exec"), e.into()));
        }
    };
    Ok(Exec {
        id: s.id.clone(),
        client: None,
        pid,
        pidfd,
        out,
        err,
        stdin,
        stdin_buf: Vec::new(),
        stdin_closed: false,
        tty: s.tty,
        open_stdin: s.stdin,
        exit_file: s.exit_file.clone(),
    })
}

fn kill_and_reap(pid: Pid) {
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
}

/// The exec failure a runtime error describes, when the process's execve failed after the
/// shim's own check passed (the file changed in between).
fn exec_failure_of(message: &str) -> Option<ExecFailure> {
    let m = message.to_ascii_lowercase();
    if m.contains("no such file or directory") || m.contains("not found") {
        Some(ExecFailure::NotFound)
    } else if m.contains("permission denied") || m.contains("is a directory") {
        Some(ExecFailure::NotExecutable)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_process_keeps_the_containers_confinement() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "/r"},
            "process": {
                "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]},
                "noNewPrivileges": true
            }
        }))
        .unwrap();
        let s = ExecSpec {
            id: "e".into(),
            args: vec!["id".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/tmp".into(),
            uid: 1000,
            gid: 100,
            additional_gids: vec![10],
            tty: true,
            console_size: Some((24, 80)),
            ..Default::default()
        };
        let p = process_json(&spec, &s);
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_CHOWN"]));
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["user"], json!({"uid": 1000, "gid": 100, "additionalGids": [10]}));
        assert_eq!(p["consoleSize"], json!({"height": 24, "width": 80}));
        assert_eq!(p["cwd"], "/tmp");
        let parsed: oci_spec::runtime::Process = serde_json::from_value(p).unwrap();
        assert_eq!(parsed.args().as_deref(), Some(&["id".to_owned()][..]));
        let privileged = process_json(&spec, &ExecSpec { privileged: true, ..s });
        assert!(privileged["capabilities"]["bounding"].as_array().unwrap().len() > 1);
    }

    #[test]
    fn exec_borrows_sys_admin_only_to_load_a_filter_it_could_not_load_otherwise() {
        let spec = |nnp: bool, caps: &[&str], seccomp: bool| -> oci_spec::runtime::Spec {
            let mut v = json!({
                "ociVersion": "1.0.2",
                "root": {"path": "/r"},
                "process": {
                    "args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                },
                "linux": {}
            });
            if nnp {
                v["process"]["noNewPrivileges"] = json!(true);
            }
            if seccomp {
                v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
            }
            serde_json::from_value(v).unwrap()
        };
        let s = ExecSpec { args: vec!["id".into()], ..Default::default() };
        let plain = spec(false, &["CAP_CHOWN"], true);
        assert!(borrows_sys_admin(&plain, &s));
        let p = process_json(&plain, &s);
        assert_eq!(p["capabilities"]["permitted"], json!(["CAP_CHOWN", "CAP_SYS_ADMIN"]));
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_CHOWN"]));
        assert_eq!(p["capabilities"]["effective"], json!(["CAP_CHOWN"]));
        // No filter, no_new_privileges, the capability already held, or --privileged: no borrowing.
        assert!(!borrows_sys_admin(&spec(false, &["CAP_CHOWN"], false), &s));
        assert!(!borrows_sys_admin(&spec(true, &["CAP_CHOWN"], true), &s));
        assert!(!borrows_sys_admin(&spec(false, &["CAP_SYS_ADMIN"], true), &s));
        assert!(!borrows_sys_admin(&plain, &ExecSpec { privileged: true, ..s }));
    }

    #[test]
    fn late_exec_errors_are_typed() {
        assert_eq!(exec_failure_of("exec: No such file or directory (os error 2)"), Some(ExecFailure::NotFound));
        assert_eq!(exec_failure_of("Permission denied"), Some(ExecFailure::NotExecutable));
        assert_eq!(exec_failure_of("cgroup busy"), None);
    }
}
