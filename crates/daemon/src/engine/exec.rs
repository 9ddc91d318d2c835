//! Exec sessions (`docker exec`, health probes): created against a running container,
//! started once (hijacked or detached), resized, inspected. The process itself runs in the
//! container's shim (libcontainer's tenant mode), never here: this module resolves what
//! Docker resolves at create (environment, user, working directory), asks the shim to run it
//! over a connection of its own, and pumps that connection to the client. Sessions live in
//! memory, as dockerd's do, and a started one also on disk beside its container
//! (`execs/<id>.exec.json`: what it runs and its pid), while the shim records its exit code
//! in `execs/<id>.json`: a daemon restarted after a kill -9 finds the execs that were running,
//! follows them to their end and reports their codes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::models::ExecConfig;
use berth_api::stdcopy::{self, Stream};
use berth_runtime::shim::ExecSpec;
use berth_runtime::{ShimClient, ShimControl, ShimEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use berth_api::detach::DetachKeys;

use super::io::ClientIo;
use super::{Container, Engine, blocking};
use crate::error::{Error, Result};
use crate::record::Status;

/// What an exec runs and how, fixed at create.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ExecOptions {
    /// argv (entrypoint first).
    pub args: Vec<String>,
    /// The whole environment.
    pub env: Vec<String>,
    /// `user[:group]` as given (or the container's).
    pub user: String,
    /// Working directory (or the container's, or `/`).
    pub working_dir: String,
    /// Pseudo-terminal.
    pub tty: bool,
    /// Every capability.
    pub privileged: bool,
    /// Attach stdin / stdout / stderr.
    pub open_stdin: bool,
    /// Attach stdout.
    pub open_stdout: bool,
    /// Attach stderr.
    pub open_stderr: bool,
    /// The detach sequence as given (`ctrl-p,ctrl-q`), empty for the default.
    pub detach_keys: String,
    /// Initial tty size (rows, columns).
    pub console_size: Option<(u16, u16)>,
}

/// Where an exec is in its life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecState {
    /// The process runs.
    pub running: bool,
    /// Its exit code once it ended (or failed to start: 126/127 as Docker).
    pub exit_code: Option<i64>,
    /// Host pid while it runs.
    pub pid: u32,
}

/// What is kept on disk of a started exec, for a daemon restarted while it runs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ExecRecord {
    id: String,
    container_id: String,
    pid: u32,
    opts: ExecOptions,
}

/// One exec instance.
pub struct ExecSession {
    /// 64-hex id.
    pub id: String,
    /// The container's full id.
    pub container_id: String,
    /// What it runs.
    pub opts: ExecOptions,
    state: Mutex<ExecState>,
    started: Mutex<bool>,
    control: tokio::sync::Mutex<Option<ShimControl>>,
    done: watch::Sender<Option<i64>>,
}

impl ExecSession {
    /// A copy of its state.
    pub fn state(&self) -> ExecState {
        self.state.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set(&self, f: impl FnOnce(&mut ExecState)) {
        match self.state.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    fn finish(&self, code: i64) {
        self.set(|s| {
            s.running = false;
            s.pid = 0;
            s.exit_code = Some(code);
        });
        self.done.send_replace(Some(code));
    }
}

/// Docker's `ReplaceOrAppendEnvValues`: later `K=V` replace earlier ones with the same key,
/// a bare `K` removes it, everything else is appended.
fn replace_or_append(mut env: Vec<String>, over: &[String]) -> Vec<String> {
    for o in over {
        let key = o.split('=').next().unwrap_or(o);
        let pos = env.iter().position(|e| e.split('=').next() == Some(key));
        match (pos, o.contains('=')) {
            (Some(i), true) => env[i] = o.clone(),
            (Some(i), false) => {
                env.remove(i);
            }
            (None, true) => env.push(o.clone()),
            (None, false) => {}
        }
    }
    env
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The 409s Docker answers for a container that cannot take an exec.
fn check_execable(c: &Container) -> Result<()> {
    let rec = c.snapshot();
    // "paused" comes with pause/unpause; the wording is moby's errExecPaused.
    if rec.state_name() == "paused" {
        return Err(Error::Conflict(format!("Container {} is paused, unpause the container before exec", rec.id)));
    }
    if rec.state.status == Status::Restarting {
        return Err(Error::Conflict(format!(
            "Container {} is restarting, wait until the container is running",
            rec.id
        )));
    }
    if rec.state.status != Status::Running {
        return Err(Error::Conflict(format!("container {} is not running", rec.id)));
    }
    Ok(())
}

impl Engine {
    fn exec_session(&self, id: &str) -> Result<Arc<ExecSession>> {
        let map = self.execs.read().unwrap_or_else(|p| p.into_inner());
        map.get(id).cloned().ok_or_else(|| Error::NoSuchExec(id.to_owned()))
    }

    /// `POST /containers/{id}/exec`: Docker's checks (running, not paused, a command, a
    /// user that exists) and its environment: PATH, HOSTNAME and TERM under a tty, the
    /// container's env, then the request's.
    pub async fn create_exec(&self, name: &str, body: ExecConfig) -> Result<String> {
        // Its start usually follows at once: see berth_runtime::attach_lock.
        berth_runtime::attach_lock::prime();
        let c = self.get(name)?;
        check_execable(&c)?;
        let cmd = body.cmd.clone().unwrap_or_default();
        if cmd.is_empty() {
            return Err(Error::InvalidArgument("No exec command specified".to_owned()));
        }
        let detach_keys = body.detach_keys.clone().unwrap_or_default();
        if !detach_keys.is_empty() && DetachKeys::parse(&detach_keys).is_err() {
            return Err(Error::InvalidArgument(format!("Invalid escape keys ({detach_keys}) provided")));
        }
        let rec = c.snapshot();
        let tty = body.tty.unwrap_or(false);
        let user = body.user.clone().filter(|u| !u.is_empty()).or(rec.config.user.clone()).unwrap_or_default();
        let pid = rec.state.pid;
        let u = user.clone();
        blocking(move || Ok(berth_runtime::spec::resolve_user(&proc_root(pid), &u)?)).await?;
        let hostname = rec.config.hostname.clone().unwrap_or_else(|| rec.id[..12].to_owned());
        let mut env = vec![DEFAULT_PATH.to_owned(), format!("HOSTNAME={hostname}")];
        if tty {
            env.push("TERM=xterm".to_owned());
        }
        let env = replace_or_append(env, rec.config.env.as_deref().unwrap_or(&[]));
        let env = replace_or_append(env, body.env.as_deref().unwrap_or(&[]));
        let opts = ExecOptions {
            args: cmd,
            env,
            user,
            working_dir: body
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .or(rec.config.working_dir.clone().filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".to_owned()),
            tty,
            privileged: body.privileged.unwrap_or(false),
            open_stdin: body.attach_stdin.unwrap_or(false),
            open_stdout: body.attach_stdout.unwrap_or(false),
            open_stderr: body.attach_stderr.unwrap_or(false),
            detach_keys,
            console_size: console_size(body.console_size.as_deref()),
        };
        let s = self.register_exec(&c.id, opts);
        self.emit_exec(&s, "exec_create", &[]);
        Ok(s.id.clone())
    }

    /// Publishes an exec event as moby names it (`exec_create: sh -c ls`, `exec_die`).
    fn emit_exec(&self, s: &ExecSession, action: &str, extra: &[(&str, String)]) {
        let Ok(c) = self.get(&s.container_id) else { return };
        let action = match action {
            "exec_die" => action.to_owned(),
            _ => format!("{action}: {}", s.opts.args.join(" ")),
        };
        let mut attrs = vec![("execID", s.id.clone())];
        attrs.extend(extra.iter().cloned());
        self.emit_container(&c.snapshot(), &action, &attrs);
    }

    fn register_exec(&self, container_id: &str, opts: ExecOptions) -> Arc<ExecSession> {
        let s = Arc::new(ExecSession {
            id: berth_base::new_id(),
            container_id: container_id.to_owned(),
            opts,
            state: Mutex::new(ExecState::default()),
            started: Mutex::new(false),
            control: tokio::sync::Mutex::new(None),
            done: watch::channel(None).0,
        });
        self.execs.write().unwrap_or_else(|p| p.into_inner()).insert(s.id.clone(), s.clone());
        s
    }

    /// `GET /exec/{id}/json`.
    pub fn inspect_exec(&self, id: &str) -> Result<Arc<ExecSession>> {
        self.exec_session(id)
    }

    /// Execs of a container that have not ended (inspect's `ExecIDs`).
    pub fn exec_ids(&self, container_id: &str) -> Vec<String> {
        let map = self.execs.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<String> = map
            .values()
            .filter(|s| s.container_id == container_id && s.state().exit_code.is_none())
            .map(|s| s.id.clone())
            .collect();
        v.sort();
        v
    }

    /// Forgets the execs of a removed container.
    pub(super) fn forget_execs(&self, container_id: &str) {
        self.execs.write().unwrap_or_else(|p| p.into_inner()).retain(|_, s| s.container_id != container_id);
    }

    /// The checks of `POST /exec/{id}/start` that come before the connection is hijacked:
    /// the exec exists, its container runs, it has not started yet. Marks it started.
    pub fn claim_exec(&self, id: &str) -> Result<Arc<ExecSession>> {
        let s = self.exec_session(id)?;
        let c = self.get(&s.container_id).map_err(|_| Error::NoSuchContainer(id.to_owned()))?;
        check_execable(&c)?;
        let mut started = s.started.lock().unwrap_or_else(|p| p.into_inner());
        if *started {
            let st = s.state();
            return Err(Error::Conflict(if st.exit_code.is_some() {
                format!("exec command {} has already run", s.id)
            } else {
                format!("exec command {} is already running", s.id)
            }));
        }
        *started = true;
        drop(started);
        Ok(s)
    }

    /// Starts a claimed exec in the container's shim. A command that cannot run ends the
    /// exec with 127/126 (Docker's codes) and is returned as [`Error::StartFailed`].
    async fn spawn_exec(&self, s: &ExecSession, console: Option<(u16, u16)>) -> Result<ShimClient> {
        berth_runtime::attach_lock::prime();
        let c = self.get(&s.container_id)?;
        let rec = c.snapshot();
        let pid = rec.state.pid;
        let o = s.opts.clone();
        // dockerd's getUser: the user's groups, then the container's --group-add ones.
        let group_add = rec.host_config.group_add.clone().unwrap_or_default();
        let user = blocking(move || {
            let root = proc_root(pid);
            let mut user = berth_runtime::spec::resolve_user(&root, &o.user)?;
            for g in super::sandbox::group_add(&root, &group_add)? {
                if !user.additional_gids.contains(&g) {
                    user.additional_gids.push(g);
                }
            }
            Ok(user)
        })
        .await?;
        let spec = ExecSpec {
            id: s.id.clone(),
            args: s.opts.args.clone(),
            env: s.opts.env.clone(),
            cwd: s.opts.working_dir.clone(),
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.additional_gids,
            tty: s.opts.tty,
            stdin: s.opts.open_stdin,
            privileged: s.opts.privileged,
            console_size: console.or(s.opts.console_size),
            exit_file: Some(self.exec_exit_file(&c.id, &s.id)),
        };
        if let Some(dir) = spec.exit_file.as_ref().and_then(|f| f.parent()) {
            berth_base::fsutil::create_dir_mode(dir, berth_base::fsutil::PRIVATE_DIR)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        self.emit_exec(s, "exec_start", &[]);
        match ShimClient::exec(&self.shim_socket(&c.id), &spec).await {
            Ok((client, pid)) => {
                s.set(|st| {
                    st.running = true;
                    st.pid = pid;
                });
                let rec = ExecRecord { id: s.id.clone(), container_id: c.id.clone(), pid, opts: s.opts.clone() };
                let path = self.exec_record_file(&c.id, &s.id);
                if let Ok(json) = serde_json::to_vec(&rec)
                    && let Err(e) = berth_base::fsutil::atomic_write(&path, &json)
                {
                    tracing::warn!(exec = %s.id, error = %e, "failed to record exec");
                }
                Ok(client)
            }
            Err(e) => {
                let code = e.exec_failure().map_or(126, |f| i64::from(f.exit_code()));
                s.finish(code);
                Err(match e {
                    e @ berth_runtime::Error::Exec { .. } => Error::ExecFailed { source: e },
                    e @ berth_runtime::Error::Refused(_) => Error::ExecFailed { source: e },
                    e => Error::from(e),
                })
            }
        }
    }

    fn exec_record_file(&self, container_id: &str, exec_id: &str) -> std::path::PathBuf {
        self.container_dir(container_id).join("execs").join(format!("{exec_id}.exec.json"))
    }

    /// After a daemon restart: the execs a running container had are registered again from
    /// their records; those that ended meanwhile get the code the shim wrote, those still
    /// running are followed (through a pidfd) until they end.
    pub(super) async fn restore_execs(self: &Arc<Self>, c: &Container) {
        let dir = self.container_dir(&c.id).join("execs");
        let Ok(rd) = std::fs::read_dir(&dir) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(exec_id) = name.strip_suffix(".exec.json") else { continue };
            let Some(rec) = std::fs::read(e.path()).ok().and_then(|b| serde_json::from_slice::<ExecRecord>(&b).ok())
            else {
                continue;
            };
            let s = Arc::new(ExecSession {
                id: exec_id.to_owned(),
                container_id: c.id.clone(),
                opts: rec.opts,
                state: Mutex::new(ExecState { running: true, exit_code: None, pid: rec.pid }),
                started: Mutex::new(true),
                control: tokio::sync::Mutex::new(None),
                done: watch::channel(None).0,
            });
            self.execs.write().unwrap_or_else(|p| p.into_inner()).insert(s.id.clone(), s.clone());
            let engine = self.clone();
            tokio::spawn(async move {
                let exit = engine.exec_exit_file(&s.container_id, &s.id);
                // Ended already (its code is written): its pid may belong to another process now.
                let pidfd = rustix::process::Pid::from_raw(rec.pid as i32)
                    .filter(|_| !exit.exists())
                    .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
                // A pidfd turns readable when the process ends (checked every 200 ms: a
                // restored exec is rare and needs no reactor registration).
                if let Some(fd) = pidfd {
                    loop {
                        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
                        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
                        if !matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(0)) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                // The shim writes the code right after reaping; give it a moment.
                for _ in 0..50 {
                    if exit.exists() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                engine.exec_ended(&s, None).await;
            });
        }
    }

    fn exec_exit_file(&self, container_id: &str, exec_id: &str) -> std::path::PathBuf {
        self.container_dir(container_id).join("execs").join(format!("{exec_id}.json"))
    }

    /// `POST /exec/{id}/start` with `Detach`: starts it and returns; its exit is recorded
    /// when it comes.
    pub async fn start_exec_detached(self: &Arc<Self>, s: Arc<ExecSession>) -> Result<()> {
        let client = self.spawn_exec(&s, None).await?;
        let (control, mut events) = client.split();
        *s.control.lock().await = Some(control);
        let engine = self.clone();
        tokio::spawn(async move {
            let code = events.wait_exec().await.ok().flatten();
            engine.exec_ended(&s, code).await;
        });
        Ok(())
    }

    /// `POST /exec/{id}/start` on a hijacked connection: runs the exec and pumps the
    /// connection both ways until it exits (or the client detaches with the detach keys).
    /// A failure to start is written into the stream, as dockerd does, for the client to
    /// print; the exit code is then the exec's (127/126).
    pub async fn run_exec_attached(self: &Arc<Self>, s: Arc<ExecSession>, mut io: Box<dyn ClientIo>) {
        let tty = s.opts.tty;
        let client = match self.spawn_exec(&s, None).await {
            Ok(c) => c,
            Err(e) => {
                let mut out = Vec::new();
                let msg = format!("{e}\r\n");
                if tty {
                    out.extend_from_slice(msg.as_bytes());
                } else {
                    stdcopy::encode(Stream::Stdout, msg.as_bytes(), &mut out);
                }
                let _ = io.write_all(&out).await;
                let _ = io.shutdown().await;
                return;
            }
        };
        let (control, mut events) = client.split();
        *s.control.lock().await = Some(control);
        let (mut crd, mut cwr) = tokio::io::split(io);
        let keys = DetachKeys::parse(&s.opts.detach_keys).unwrap_or_default();
        let (detach_tx, mut detach_rx) = tokio::sync::mpsc::channel::<()>(1);
        let input = if s.opts.open_stdin {
            let s2 = s.clone();
            Some(tokio::spawn(async move {
                let mut scanner = keys.scanner();
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match crd.read(&mut buf).await {
                        Ok(0) | Err(_) => {
                            if let Some(c) = s2.control.lock().await.as_mut() {
                                let _ = c.close_stdin().await;
                            }
                            return;
                        }
                        Ok(n) => {
                            let (data, detached) = scanner.feed(&buf[..n]);
                            if let Some(c) = s2.control.lock().await.as_mut()
                                && !data.is_empty()
                            {
                                let _ = c.stdin(&data).await;
                            }
                            if detached {
                                let _ = detach_tx.send(()).await;
                                return;
                            }
                        }
                    }
                }
            }))
        } else {
            None
        };
        let mut out = Vec::new();
        let code = loop {
            let ev = tokio::select! {
                ev = events.next() => ev,
                Some(()) = detach_rx.recv() => {
                    // Detached: the exec runs on, the client's stream ends.
                    let engine = self.clone();
                    let s2 = s.clone();
                    tokio::spawn(async move {
                        let code = events.wait_exec().await.ok().flatten();
                        engine.exec_ended(&s2, code).await;
                    });
                    let _ = cwr.shutdown().await;
                    return;
                }
            };
            out.clear();
            match ev {
                Ok(Some(ShimEvent::Output { stream, data })) => {
                    let (want, st) = match stream {
                        berth_runtime::logs::Stream::Stdout => (s.opts.open_stdout, Stream::Stdout),
                        berth_runtime::logs::Stream::Stderr => (s.opts.open_stderr, Stream::Stderr),
                    };
                    if !want {
                        continue;
                    }
                    if tty {
                        out.extend_from_slice(&data);
                    } else {
                        stdcopy::encode(st, &data, &mut out);
                    }
                    if cwr.write_all(&out).await.is_err() {
                        // The client went away: the exec runs on without it.
                        let code = events.wait_exec().await.ok().flatten();
                        break code;
                    }
                }
                Ok(Some(ShimEvent::ExecExited { code })) => break Some(code),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break None,
            }
        };
        if let Some(t) = input {
            t.abort();
        }
        self.exec_ended(&s, code).await;
        let _ = cwr.flush().await;
        let _ = cwr.shutdown().await;
    }

    /// Records an exec's end: the code from its connection, else from the exit file the
    /// shim wrote, else 255 (the shim vanished).
    async fn exec_ended(&self, s: &ExecSession, code: Option<i32>) {
        *s.control.lock().await = None;
        let code = match code {
            Some(c) => i64::from(c),
            None => {
                let f = self.exec_exit_file(&s.container_id, &s.id);
                blocking(move || Ok(berth_runtime::exit::read(&f)))
                    .await
                    .ok()
                    .flatten()
                    .map_or(255, |i| i64::from(i.code))
            }
        };
        s.finish(code);
        self.emit_exec(s, "exec_die", &[("exitCode", code.to_string())]);
        let _ = std::fs::remove_file(self.exec_exit_file(&s.container_id, &s.id));
        let _ = std::fs::remove_file(self.exec_record_file(&s.container_id, &s.id));
    }

    /// `POST /exec/{id}/resize`.
    /// A resize that arrives while the exec is still starting waits for it (up to 10 s,
    /// as dockerd waits), since clients send it right after the start.
    pub async fn resize_exec(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let s = self.exec_session(id)?;
        let claimed = *s.started.lock().unwrap_or_else(|p| p.into_inner());
        if claimed {
            let mut done = s.done.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(10), async {
                while s.control.lock().await.is_none() && done.borrow_and_update().is_none() {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                        _ = done.changed() => {}
                    }
                }
            })
            .await;
        }
        let mut ctl = s.control.lock().await;
        match ctl.as_mut() {
            Some(c) => Ok(c.resize(rows, cols).await?),
            None => Err(Error::Conflict(format!("exec {} is not running", s.id))),
        }
    }

    /// Runs `args` in a running container as its own user and working directory, with
    /// its environment, and collects stdout and stderr (at most `max_output` bytes) until it
    /// exits or `timeout` passes (then it is killed). For health probes. Returns the exit
    /// code (`None` on timeout) and the output.
    pub(crate) async fn exec_capture(
        &self,
        container: &str,
        args: Vec<String>,
        timeout: Duration,
        max_output: usize,
    ) -> Result<(Option<i64>, Vec<u8>)> {
        let id = self
            .create_exec(
                container,
                ExecConfig {
                    cmd: Some(args),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let s = self.claim_exec(&id)?;
        let result = self.capture_claimed(&s, timeout, max_output).await;
        self.execs.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
        result
    }

    async fn capture_claimed(
        &self,
        s: &ExecSession,
        timeout: Duration,
        max_output: usize,
    ) -> Result<(Option<i64>, Vec<u8>)> {
        let client = self.spawn_exec(s, None).await?;
        let (mut control, mut events) = client.split();
        let mut output = Vec::new();
        let collect = async {
            while let Ok(Some(ev)) = events.next().await {
                match ev {
                    ShimEvent::Output { data, .. } => {
                        let room = max_output.saturating_sub(output.len());
                        output.extend_from_slice(&data[..data.len().min(room)]);
                    }
                    ShimEvent::ExecExited { code } => return Some(code),
                    _ => {}
                }
            }
            None
        };
        match tokio::time::timeout(timeout, collect).await {
            Ok(code) => {
                self.exec_ended(s, code).await;
                Ok((s.state().exit_code, output))
            }
            Err(_) => {
                let _ = control.signal(9).await;
                let code = tokio::time::timeout(Duration::from_secs(10), events.wait_exec()).await.ok();
                self.exec_ended(s, code.and_then(|r| r.ok().flatten())).await;
                Ok((None, output))
            }
        }
    }
}

/// The container init's root, through which its mount namespace is seen.
fn proc_root(pid: u32) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/{pid}/root"))
}

/// A `ConsoleSize` of the API (`[height, width]`), when both are set.
pub(super) fn console_size(v: Option<&[usize]>) -> Option<(u16, u16)> {
    match v {
        Some([h, w]) if *h > 0 && *w > 0 => {
            Some(((*h).min(u16::MAX as usize) as u16, (*w).min(u16::MAX as usize) as u16))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_replaced_or_appended_as_docker_does() {
        let base = vec!["PATH=/bin".to_owned(), "HOSTNAME=h".to_owned()];
        let env = replace_or_append(base, &["PATH=/usr/bin".into(), "A=1".into(), "HOSTNAME".into(), "NOPE".into()]);
        assert_eq!(env, ["PATH=/usr/bin", "A=1"]);
    }

    #[test]
    fn console_sizes() {
        assert_eq!(console_size(Some(&[24, 80])), Some((24, 80)));
        assert_eq!(console_size(Some(&[0, 80])), None);
        assert_eq!(console_size(None), None);
    }
}
