//! Container lifecycle: start through a shim, watch it, stop, kill, remove, wait, and
//! reconcile with surviving shims after a daemon restart (live restore).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_api::models::RestartPolicyNameEnum;
use berth_runtime::{ShimClient, ShimEvents, StartOutcome, Streams, trace};

use super::{Container, Engine, Events, blocking, now};
use crate::error::{Error, Result};
use crate::record::{ContainerRecord, RunState, Status};

/// How long a SIGKILLed container may take to be reported dead before we give up waiting.
const KILL_GRACE: Duration = Duration::from_secs(30);

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return as soon as the container is not running (at once if it is not).
    NotRunning,
    /// Return when the next run ends.
    NextExit,
    /// Return when the container is removed.
    Removed,
}

impl WaitCondition {
    /// Parses the `condition` query value.
    pub fn parse(s: Option<&str>) -> Result<WaitCondition> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::InvalidArgument(format!("invalid condition: \"{other}\""))),
        }
    }
}

impl Engine {
    /// Lets the shim launcher get a shim ready while the request is prepared (see
    /// [`super::traits::ShimLauncher::warm`]); off the async workers, not awaited.
    pub(super) fn warm_launcher(&self) {
        let launcher = self.launcher.clone();
        drop(tokio::task::spawn_blocking(move || launcher.warm()));
    }
}

impl Engine {
    /// `POST /containers/{id}/start`.
    pub async fn start_container(self: &Arc<Self>, name: &str) -> Result<()> {
        let c = self.get(name)?;
        trace::mark(&c.id, "daemon.start_request");
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        match rec.state.status {
            Status::Running if rec.state.paused => {
                return Err(Error::Conflict("cannot start a paused container, try unpause instead".to_owned()));
            }
            Status::Running | Status::Restarting => return Err(Error::NotModified("started")),
            Status::Removing => {
                return Err(Error::Conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.id
                )));
            }
            _ => {}
        }
        // A manual start: a fresh restart manager and count, as dockerd's
        // ResetRestartManager, and no longer "stopped by the user".
        c.backoff().reset();
        c.update(|r| {
            r.restart_count = 0;
            r.state.manually_stopped = false;
        });
        let rec = c.snapshot();
        match self.start_locked(&c, &rec).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.start_failed(&c, &e).await;
                Err(e)
            }
        }
    }

    pub(super) async fn start_locked(self: &Arc<Self>, c: &Arc<Container>, rec: &ContainerRecord) -> Result<()> {
        let t0 = std::time::Instant::now();
        berth_runtime::attach_lock::prime();
        self.warm_launcher();
        let engine = self.clone();
        let rec2 = rec.clone();
        let (shim_opts, net, setup) = blocking(move || engine.prepare(&rec2)).await?;
        c.update(|r| {
            r.networks = net.endpoints;
            r.ports = net.ports;
        });
        let t_prepare = t0.elapsed();
        trace::mark(&c.id, "daemon.prepared");
        // The network's kernel side is made while the shim creates the container; the
        // container's process starts only once both are done.
        let net_ready = self.complete_network(&c.id, setup);
        let launcher = self.launcher.clone();
        let spawned = blocking(move || {
            launcher.spawn(&shim_opts).map_err(|e| match e {
                // Docker's wording, which clients match to choose exit codes 126/127.
                e @ berth_runtime::Error::Exec { .. } => Error::StartFailed { source: e },
                other => Error::from(other),
            })
        })
        .await;
        self.network_ready(c, net_ready, spawned.is_ok()).await?;
        spawned?;
        let t_spawn = t0.elapsed();
        trace::mark(&c.id, "daemon.shim_ready");
        let _starting = StartingGuard(c);
        let pending = match c.pending.lock() {
            Ok(mut p) => p.take_for_start(),
            Err(p) => p.into_inner().take_for_start(),
        };
        self.connect_pending(c, pending).await;
        trace::mark(&c.id, "daemon.attached");
        // StartedAt is taken before the process runs: clients (compose's `logs -f`) ask for
        // the logs since StartedAt, and a line printed at once must not fall before it.
        let started_at = now();
        let (shim, started) = match ShimClient::connect_and_start(&self.shim_socket(&c.id), Streams::NONE).await {
            Ok(s) => s,
            Err(e @ berth_runtime::Error::Refused(_)) => return Err(Error::StartFailed { source: e }),
            Err(e) => return Err(e.into()),
        };
        let pid = match started {
            StartOutcome::Running { pid } => pid,
            StartOutcome::Exited { code } => {
                // It ran and ended before we heard it had started: record both.
                c.update(|r| r.state.started_at = Some(started_at));
                self.emit_container(&c.snapshot(), "start", &[]);
                self.finish_run(c, Some(code)).await;
                return Ok(());
            }
        };
        trace::mark(&c.id, "daemon.started");
        let (control, events) = shim.split();
        tracing::debug!(
            container = %c.id,
            prepare_ms = t_prepare.as_secs_f64() * 1e3,
            shim_ready_ms = t_spawn.as_secs_f64() * 1e3,
            started_ms = t0.elapsed().as_secs_f64() * 1e3,
            "container started"
        );
        *c.control.lock().await = Some(control);
        c.update(|r| {
            r.state = RunState {
                status: Status::Running,
                pid,
                exit_code: 0,
                error: String::new(),
                started_at: Some(started_at),
                finished_at: r.state.finished_at,
                oom_killed: false,
                paused: false,
                manually_stopped: r.state.manually_stopped,
            }
        });
        self.persist(c);
        self.apply_blkio_weight(c, pid).await;
        c.events.send_modify(|e| e.running = true);
        self.emit_container(&c.snapshot(), "start", &[]);
        let engine = self.clone();
        let c2 = c.clone();
        tokio::spawn(async move { engine.monitor(c2, events).await });
        self.start_health_monitor(c);
        trace::mark(&c.id, "daemon.start_done");
        Ok(())
    }

    /// `--blkio-weight` goes to the live cgroup once the container runs, through the same
    /// code as `update`: libcontainer 0.7 writes only `blkio.weight`, which hosts whose
    /// block layer uses BFQ do not have (they have `blkio.bfq.weight`, which
    /// `cgroups::Cgroup::apply` picks, as runc does). A weight the kernel refuses is logged;
    /// it is a relative share, never a limit the container could exceed.
    async fn apply_blkio_weight(&self, c: &Container, pid: u32) {
        let Some(weight) = c.snapshot().host_config.blkio_weight.filter(|w| *w != 0) else { return };
        let limits = super::cgroups::Limits { blkio_weight: Some(weight), ..Default::default() };
        let applied = blocking(move || {
            super::cgroups::Cgroup::of_pid(pid).and_then(|cg| cg.apply(&limits)).map_err(|e| Error::io("cgroup", e))
        })
        .await;
        if let Err(e) = applied {
            tracing::warn!(container = %c.id, error = %e, "cannot set the blkio weight");
        }
    }

    /// Records a failed start the way Docker does: exit code 127 for a missing command,
    /// 126 for one that cannot run, 128 otherwise; then auto-removes if asked to.
    pub(super) async fn start_failed(self: &Arc<Self>, c: &Arc<Container>, e: &Error) {
        let msg = e.to_string();
        let code = e.start_exit_code();
        if let Ok(mut p) = c.pending.lock() {
            p.clear();
            p.start_done();
        }
        let dir = self.container_dir(&c.id);
        let rootfs = self.rootfs.clone();
        let _ = blocking(move || Ok(rootfs.unmount_rootfs(&dir)?)).await;
        self.unmount_volumes(&c.snapshot());
        self.detach_network(c).await;
        c.update(|r| {
            r.state.exit_code = code;
            r.state.error = msg.clone();
            r.state.status = if r.state.started_at.is_some() { Status::Exited } else { Status::Created };
        });
        self.persist(c);
        c.events.send_modify(|ev| {
            ev.exits += 1;
            ev.exit_code = code;
            ev.running = false;
        });
        if c.snapshot().host_config.auto_remove == Some(true) {
            let engine = self.clone();
            let c = c.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.remove_inner(&c, true, true).await {
                    tracing::warn!(container = %c.id, error = %e, "auto-remove after failed start");
                }
            });
        }
    }

    /// Mounts the root, writes the container's /etc files and OCI bundle, and returns the
    /// shim's options. Blocking.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        rec: &ContainerRecord,
    ) -> Result<(berth_runtime::shim::ShimOptions, super::networks::Attached, Option<super::networks::NetSetup>)> {
        let dir = self.container_dir(&rec.id);
        let _ = std::fs::remove_file(self.exit_file(&rec.id));
        let image_id: berth_base::Digest = rec.image_id.parse().map_err(|source| Error::Corrupt {
            what: "image id",
            value: rec.image_id.clone(),
            source,
        })?;
        let rootfs = self.rootfs.mount_rootfs(&image_id, &dir)?;
        let (net, setup) = match self.attach_network(rec) {
            Ok(n) => n,
            Err(e) => {
                let _ = self.rootfs.unmount_rootfs(&dir);
                return Err(e);
            }
        };
        let result = self.mount_volumes(rec).and_then(|()| self.prepare_mounted(rec, &dir, &rootfs, &net));
        if result.is_err() {
            self.unmount_volumes(rec);
            let _ = self.rootfs.unmount_rootfs(&dir);
            let mut undo = rec.clone();
            undo.networks = net.endpoints.clone();
            for e in self.networks.detach(&undo) {
                tracing::warn!(container = %rec.id, error = %e, "network teardown after a failed prepare");
            }
        }
        result.map(|o| (o, net, setup))
    }

    fn prepare_mounted(
        &self,
        rec: &ContainerRecord,
        dir: &Path,
        rootfs: &Path,
        net: &super::networks::Attached,
    ) -> Result<berth_runtime::shim::ShimOptions> {
        let mut extra_hosts = self.extra_hosts(rec)?;
        extra_hosts.extend(net.hosts.iter().cloned());
        let net = super::sandbox::NetSandbox {
            namespace: net.namespace.clone().unwrap_or(berth_runtime::spec::Namespace::New),
            extra_hosts,
            share_files_of: net.share_files_of.clone(),
            dns_servers: net.nameserver.iter().map(|ip| ip.to_string()).collect(),
        };
        let mut opts = super::sandbox::for_container(rec, dir, rootfs, &net)?;
        super::devices::resolve(&rec.host_config, &self.cfg)?.apply_to(&mut opts);
        // `--init` (or daemon.json's `init`, which `--init=false` overrides).
        if rec.host_config.init.unwrap_or(self.cfg.init) {
            opts.init = Some(self.cfg.exec_root.join(berth_runtime::init::FILE_NAME));
        }
        let spec = berth_runtime::spec::generate(&opts)?;
        let json = serde_json::to_vec(&spec).map_err(|source| Error::Encode { what: "OCI spec", source })?;
        // Regenerated at every start: no fsync (see `replace_file_mode`).
        berth_base::fsutil::replace_file_mode(&dir.join("config.json"), &json, berth_base::fsutil::PRIVATE_FILE)
            .map_err(|e| Error::io("write config.json", e))?;
        Ok(berth_runtime::shim::ShimOptions {
            id: rec.id.clone(),
            bundle: dir.to_path_buf(),
            state_root: self.runtime_root(),
            socket: self.shim_socket(&rec.id),
            log_path: if rec.log_driver_none() { PathBuf::new() } else { self.log_path(&rec.id) },
            log_max_size: self.cfg.log_max_size,
            log_max_files: self.cfg.log_max_files,
            exit_file: self.exit_file(&rec.id),
            tty: rec.tty(),
            open_stdin: rec.config.open_stdin == Some(true),
            stdin_once: rec.config.stdin_once == Some(true),
            monitor: Some(self.cfg.exec_root.join(berth_runtime::shim::monitor::FILE_NAME)),
            private_parents: private_parents(&self.cfg),
        })
    }

    /// Follows the monitor connection until the shim reports the exit.
    async fn monitor(self: Arc<Self>, c: Arc<Container>, mut events: ShimEvents) {
        let code = events.wait().await.ok().flatten();
        trace::mark(&c.id, "daemon.exit_event");
        self.finish_run(&c, code).await;
    }

    /// Records the end of a run: exit status from the shim's exit file (authoritative, it
    /// survives a daemon restart), unmounts the root, wakes waiters, auto-removes.
    async fn finish_run(self: &Arc<Self>, c: &Arc<Container>, frame_code: Option<i32>) {
        // Read in place: a file of a hundred bytes the shim has just written to the exec root
        // (a tmpfs) takes microseconds, and a hop to the blocking pool and back took 0.5 ms
        // of every exit on a busy 2-core host.
        let info = berth_runtime::exit::read(&self.exit_file(&c.id));
        let (code, finished, oom, error) = match info {
            Some(i) => {
                let t =
                    chrono::DateTime::parse_from_rfc3339(&i.finished_at).map(|t| t.to_utc()).unwrap_or_else(|_| now());
                (i64::from(i.code), t, i.oom_killed, String::new())
            }
            None => match frame_code {
                Some(code) => (i64::from(code), now(), false, String::new()),
                None => (255, now(), false, "the container's shim exited without recording an exit status".to_owned()),
            },
        };
        trace::mark(&c.id, "daemon.exit_read");
        *c.control.lock().await = None;
        let dir = self.container_dir(&c.id);
        let rootfs = self.rootfs.clone();
        let unmount_root = async {
            if let Err(e) = blocking(move || Ok(rootfs.unmount_rootfs(&dir)?)).await {
                tracing::warn!(container = %c.id, error = %e, "unmount container root");
            }
            trace::mark(&c.id, "daemon.unmounted");
        };
        // The volumes and the network are released beside the root's unmount: the root's
        // overlay and the network namespace's bind mount each wait for an RCU grace period
        // when unmounted, and two waits at once share one. Nothing of either needs the other.
        let release = async {
            self.unmount_volumes(&c.snapshot());
            self.detach_network(c).await;
            trace::mark(&c.id, "daemon.net_detached");
        };
        tokio::join!(unmount_root, release);
        c.update(|r| {
            r.state.status = Status::Exited;
            r.state.pid = 0;
            r.state.exit_code = code;
            r.state.finished_at = Some(finished);
            r.state.oom_killed = oom;
            r.state.error = error;
            r.state.paused = false;
        });
        self.persist(c);
        let rec = c.snapshot();
        if oom {
            self.emit_container(&rec, "oom", &[]);
        }
        // Docker 20.10's attributes (execDuration came with a later API).
        self.emit_container(&rec, "die", &[("exitCode", code.to_string())]);
        // The restart decision is made before waiters wake, so one that checks the state
        // at once already sees `restarting`.
        let restarting = self.schedule_restart(c);
        c.events.send_modify(|e| {
            e.exits += 1;
            e.exit_code = code;
            e.running = false;
        });
        trace::mark(&c.id, "daemon.exit_recorded");
        if !restarting
            && c.snapshot().host_config.auto_remove == Some(true)
            && !c.manual_restart.load(std::sync::atomic::Ordering::SeqCst)
        {
            let engine = self.clone();
            let c = c.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.remove_inner(&c, true, true).await
                    && !matches!(e, Error::NoSuchContainer(_))
                {
                    tracing::warn!(container = %c.id, error = %e, "auto-remove failed");
                }
            });
        }
    }

    /// Sends a signal to the container's init through its shim.
    async fn signal(&self, c: &Container, sig: i32) -> Result<()> {
        let mut ctl = c.control.lock().await;
        if let Some(w) = ctl.as_mut()
            && w.signal(sig).await.is_ok()
        {
            return Ok(());
        }
        // No shim connection (it is going away): signal the process directly.
        let pid = c.snapshot().state.pid;
        if pid > 1
            && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
            && let Some(s) = rustix::process::Signal::from_named_raw(sig)
        {
            let _ = rustix::process::kill_process(p, s);
        }
        Ok(())
    }

    async fn wait_stopped(c: &Container, limit: Option<Duration>) -> bool {
        let mut rx = c.subscribe();
        let fut = rx.wait_for(|e| !e.running);
        match limit {
            Some(d) => matches!(tokio::time::timeout(d, fut).await, Ok(Ok(_))),
            None => fut.await.is_ok(),
        }
    }

    /// `POST /containers/{id}/stop`.
    pub async fn stop_container(self: &Arc<Self>, name: &str, t: Option<i64>, signal: Option<&str>) -> Result<()> {
        let c = self.get(name)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, t, signal).await
    }

    async fn stop_locked(&self, c: &Container, t: Option<i64>, signal: Option<&str>) -> Result<()> {
        let rec = c.snapshot();
        if rec.state.status == Status::Restarting {
            // Between runs: cancelling the pending restart is the whole stop.
            self.cancel_restart(c);
            self.emit_container(&c.snapshot(), "stop", &[]);
            return Ok(());
        }
        if rec.state.status != Status::Running {
            return Err(Error::NotModified("stopped"));
        }
        let sig = match signal.filter(|s| !s.is_empty()).or(rec.config.stop_signal.as_deref()) {
            Some(s) => parse_signal(s)?,
            None => 15,
        };
        let timeout = t.or(rec.config.stop_timeout).unwrap_or(10);
        self.kill_signal(c, sig).await?;
        let limit = (timeout >= 0).then(|| Duration::from_secs(timeout as u64));
        if !Self::wait_stopped(c, limit).await {
            self.kill_signal(c, 9).await?;
            if !Self::wait_stopped(c, Some(KILL_GRACE)).await {
                return Err(Error::Internal(format!("container {} did not exit after SIGKILL", rec.id)));
            }
        }
        self.emit_container(&c.snapshot(), "stop", &[]);
        Ok(())
    }

    /// dockerd's killWithSignal: the user's signal marks the container manually stopped;
    /// SIGKILL, or its stop signal (any signal when it has none), also cancels restarts by
    /// its policy until the next manual start and thaws a paused container so the signal
    /// lands. Then the signal goes out and a `kill` event is logged.
    async fn kill_signal(&self, c: &Container, sig: i32) -> Result<()> {
        let rec = c.snapshot();
        let stop_sig = rec.config.stop_signal.as_deref().filter(|s| !s.is_empty()).and_then(|s| parse_signal(s).ok());
        let exit_on_next = sig == 9 || stop_sig.is_none_or(|s| s == sig);
        if exit_on_next {
            c.backoff().cancel();
        }
        c.update(|r| r.state.manually_stopped = true);
        self.persist(c);
        self.signal(c, sig).await?;
        if exit_on_next && rec.state.paused {
            let pid = rec.state.pid;
            let thawed = blocking(move || {
                super::cgroups::Cgroup::of_pid(pid)
                    .and_then(|cg| cg.freeze(false))
                    .map_err(|e| Error::io("thaw the container", e))
            })
            .await;
            match thawed {
                Ok(()) => c.update(|r| r.state.paused = false),
                Err(e) => tracing::warn!(container = %c.id, error = %e, "cannot unpause container"),
            }
        }
        self.emit_container(&c.snapshot(), "kill", &[("signal", sig.to_string())]);
        Ok(())
    }

    /// Cancels a pending restart: the container is then simply exited, stopped by the user.
    fn cancel_restart(&self, c: &Container) {
        c.backoff().cancel();
        c.update(|r| {
            if r.state.status == Status::Restarting {
                r.state.status = Status::Exited;
            }
            r.state.manually_stopped = true;
        });
        self.persist(c);
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart_container(self: &Arc<Self>, name: &str, t: Option<i64>, signal: Option<&str>) -> Result<()> {
        let c = self.get(name)?;
        // A `--rm` container is kept through its restart, as dockerd keeps it.
        c.manual_restart.store(true, std::sync::atomic::Ordering::SeqCst);
        let stopped = {
            let _op = c.op.lock().await;
            match self.stop_locked(&c, t, signal).await {
                Ok(()) | Err(Error::NotModified(_)) => Ok(()),
                Err(e) => Err(e),
            }
        };
        let started = match stopped {
            Ok(()) => self.start_container(&c.id).await,
            Err(e) => Err(e),
        };
        c.manual_restart.store(false, std::sync::atomic::Ordering::SeqCst);
        started?;
        self.emit_container(&c.snapshot(), "restart", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill_container(self: &Arc<Self>, name: &str, signal: Option<&str>) -> Result<()> {
        let c = self.get(name)?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("KILL"))?;
        let rec = c.snapshot();
        if rec.state.status == Status::Restarting {
            // No process between runs: the kill cancels the pending restart (dockerd's
            // ExitOnNext), so a `kill; rm` that follows finds it stopped.
            self.cancel_restart(&c);
            return Ok(());
        }
        if rec.state.status != Status::Running {
            return Err(Error::Conflict(format!("Cannot kill container: {name}: Container {} is not running", rec.id)));
        }
        self.kill_signal(&c, sig).await?;
        // As dockerd: a SIGKILL returns once the exit is recorded, so what follows (an
        // inspect, an rm) sees the container stopped.
        if sig == 9 && !Self::wait_stopped(&c, Some(KILL_GRACE)).await {
            return Err(Error::Internal(format!("container {} did not exit after SIGKILL", rec.id)));
        }
        Ok(())
    }

    /// `DELETE /containers/{id}`; `volumes` (`rm -v`) also removes its anonymous volumes.
    pub async fn remove_container(self: &Arc<Self>, name: &str, force: bool, volumes: bool) -> Result<()> {
        let c = self.get(name)?;
        self.remove_inner(&c, force, volumes).await
    }

    async fn remove_inner(self: &Arc<Self>, c: &Arc<Container>, force: bool, volumes: bool) -> Result<()> {
        let _op = c.op.lock().await;
        if c.events.borrow().removed {
            return Err(Error::NoSuchContainer(c.id.clone()));
        }
        let rec = c.snapshot();
        // Docker 20.10's words (the API version berth speaks).
        let refuse = |state: &str, procedure: &str| {
            Error::Conflict(format!("You cannot remove a {state} container {}. {procedure}", rec.id))
        };
        const PROCEDURE: &str = "Stop the container before attempting removal or force remove";
        if rec.state.status == Status::Restarting {
            if !force {
                return Err(refuse("restarting", PROCEDURE));
            }
            self.cancel_restart(c);
        }
        if rec.state.status == Status::Running {
            if !force {
                return Err(if rec.state.paused {
                    refuse("paused", "Unpause and then stop the container before attempting removal or force remove")
                } else {
                    refuse("running", PROCEDURE)
                });
            }
            self.kill_signal(c, 9).await?;
            if !Self::wait_stopped(c, Some(KILL_GRACE)).await {
                return Err(Error::Internal(format!("could not kill running container {}, cannot remove", rec.id)));
            }
        }
        c.update(|r| r.state.status = Status::Removing);
        trace::mark(&c.id, "daemon.remove_begin");
        let dir = self.container_dir(&c.id);
        let rootfs = self.rootfs.clone();
        let launcher = self.launcher.clone();
        let runtime_root = self.runtime_root();
        let sock = self.shim_socket(&c.id);
        let id = c.id.clone();
        // `run --rm`: its files are deleted after the removal is answered (see trash.rs).
        let later = rec.host_config.auto_remove == Some(true);
        // Teardown keeps going after a failure and reports every error at the end.
        let errors = blocking(move || {
            let mut errors = Vec::new();
            if let Err(e) = rootfs.unmount_rootfs(&dir) {
                errors.push(e.to_string());
            }
            let _ = std::fs::remove_file(&sock);
            if later && errors.is_empty() && super::trash::discard(&dir).is_ok() {
                // The runtime's state too: its shim may still be deleting it, after
                // reporting the exit (see berth_runtime::cleanup), and waiting for that
                // is no part of the removal a client waits for.
                super::trash::later(move || {
                    if let Err(e) = launcher.cleanup(&runtime_root, &id) {
                        tracing::warn!(container = %id, error = %e, "runtime state of a removed container");
                    }
                });
                return Ok(errors);
            }
            if let Err(e) = launcher.cleanup(&runtime_root, &id) {
                errors.push(e.to_string());
            }
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => errors.push(format!("remove {}: {e}", dir.display())),
            }
            Ok(errors)
        })
        .await?;
        trace::mark(&c.id, "daemon.fs_removed");
        if !errors.is_empty() {
            c.update(|r| r.state.status = Status::Dead);
            self.persist(c);
            return Err(Error::Internal(format!("unable to remove filesystem for {}: {}", c.id, errors.join("; "))));
        }
        self.store.delete(&c.id)?;
        trace::mark(&c.id, "daemon.record_deleted");
        self.forget(c);
        crate::memory::note_freed();
        self.release_volumes(&rec, volumes).await;
        self.forget_execs(&c.id);
        c.events.send_modify(|e| e.removed = true);
        trace::mark(&c.id, "daemon.removed");
        self.emit_container(&rec, "destroy", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/wait`: registers the waiter now (so a start that follows
    /// cannot be missed) and returns a future for the exit code.
    pub fn wait_container(&self, name: &str, cond: WaitCondition) -> Result<impl Future<Output = i64> + Send + use<>> {
        let c = self.get(name)?;
        let mut rx = c.subscribe();
        let start: Events = rx.borrow().clone();
        Ok(async move {
            loop {
                let ev = rx.borrow_and_update().clone();
                let done = match cond {
                    WaitCondition::NotRunning => !ev.running,
                    WaitCondition::NextExit => ev.exits > start.exits || ev.removed,
                    WaitCondition::Removed => ev.removed,
                };
                if done || rx.changed().await.is_err() {
                    return ev.exit_code;
                }
            }
        })
    }

    /// Startup reconciliation: reload records, reattach to live shims, record exits that
    /// happened while the daemon was down, finish interrupted removals.
    pub(super) async fn restore(self: &Arc<Self>) -> Result<()> {
        let store_recs = {
            let engine = self.clone();
            blocking(move || engine.store.load_all()).await?
        };
        for rec in store_recs {
            let c = Container::new(rec.clone());
            self.insert(c.clone());
            self.restore_volumes(&rec, rec.state.status == Status::Running);
            match rec.state.status {
                Status::Running => match ShimClient::connect(&self.shim_socket(&rec.id), Streams::NONE).await {
                    Ok(shim) => {
                        let (control, events) = shim.split();
                        *c.control.lock().await = Some(control);
                        let nets = self.networks.clone();
                        let r = rec.clone();
                        if let Err(e) = blocking(move || nets.restore(&r)).await {
                            tracing::warn!(container = %rec.id, error = %e, "restoring the container's network");
                        }
                        self.resume_health_monitor(&c);
                        self.restore_execs(&c).await;
                        let engine = self.clone();
                        tokio::spawn(async move { engine.monitor(c, events).await });
                        tracing::info!(container = %rec.id, "reattached to running container");
                    }
                    Err(_) => self.finish_run(&c, None).await,
                },
                Status::Removing | Status::Dead => {
                    if let Err(e) = self.remove_inner(&c, true, false).await {
                        tracing::warn!(container = %rec.id, error = %e, "finishing an interrupted removal");
                    }
                }
                Status::Created | Status::Exited | Status::Restarting => {
                    // A crash between mount and start can leave the root mounted.
                    let dir = self.container_dir(&rec.id);
                    let rootfs = self.rootfs.clone();
                    let _ = blocking(move || Ok(rootfs.unmount_rootfs(&dir)?)).await;
                    // …and a crash between attach and start its namespace and addresses.
                    self.detach_network(&c).await;
                    if rec.host_config.auto_remove == Some(true) && rec.state.status == Status::Exited {
                        let _ = self.remove_inner(&c, true, true).await;
                    }
                }
            }
        }
        self.restart_on_boot().await;
        Ok(())
    }
}

/// The resources and restart policy `update` may change (dockerd's UpdateConfig); zero or
/// absent fields keep their value.
pub type UpdateRequest = berth_api::models::ContainerUpdateBody;

impl Engine {
    /// `POST /containers/{id}/pause`: freezes every process of the container.
    pub async fn pause_container(self: &Arc<Self>, name: &str) -> Result<()> {
        let c = self.get(name)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        match rec.state.status {
            Status::Running => {}
            Status::Restarting => return Err(restarting(&rec.id)),
            _ => return Err(Error::Conflict(format!("Container {} is not running", rec.id))),
        }
        if rec.state.paused {
            return Err(Error::Conflict(format!("Container {} is already paused", rec.id)));
        }
        self.freeze(&rec, true)
            .await
            .map_err(|e| Error::Internal(format!("Cannot pause container {}: {e}", rec.id)))?;
        c.update(|r| r.state.paused = true);
        self.persist(&c);
        self.emit_container(&c.snapshot(), "pause", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause_container(self: &Arc<Self>, name: &str) -> Result<()> {
        let c = self.get(name)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if rec.state.status != Status::Running || !rec.state.paused {
            // dockerd answers this one with a plain error, hence 500.
            return Err(Error::Internal(format!("Container {} is not paused", rec.id)));
        }
        self.freeze(&rec, false)
            .await
            .map_err(|e| Error::Internal(format!("Cannot unpause container {}: {e}", rec.id)))?;
        c.update(|r| r.state.paused = false);
        self.persist(&c);
        self.emit_container(&c.snapshot(), "unpause", &[]);
        Ok(())
    }

    async fn freeze(&self, rec: &ContainerRecord, frozen: bool) -> Result<()> {
        let pid = rec.state.pid;
        blocking(move || {
            super::cgroups::Cgroup::of_pid(pid).and_then(|cg| cg.freeze(frozen)).map_err(|e| Error::io("freezer", e))
        })
        .await
    }

    /// `POST /containers/{id}/rename?name=`: dockerd's checks and wording.
    pub async fn rename_container(self: &Arc<Self>, name: &str, new_name: &str) -> Result<()> {
        let old_key = name.trim();
        let new = new_name.trim();
        let new = new.strip_prefix('/').unwrap_or(new);
        if old_key.strip_prefix('/').unwrap_or(old_key).is_empty() || new.is_empty() {
            return Err(Error::InvalidArgument("Neither old nor new names may be empty".to_owned()));
        }
        let c = self.get(old_key)?;
        let _op = c.op.lock().await;
        let old = c.snapshot().name;
        if old == new {
            return Err(Error::InvalidArgument(
                "Renaming a container with the same name as its current name".to_owned(),
            ));
        }
        // dockerd's reserveName, whose errors it wraps.
        const ALLOCATING: &str = "Error when allocating new name: ";
        if !crate::names::valid(new) {
            return Err(Error::InvalidArgument(format!(
                "{ALLOCATING}Invalid container name (/{new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let taken = |other: &str| Error::Conflict(format!("{ALLOCATING}{}", crate::store::name_conflict(new, other)));
        // The name index is the reservation: a create or rename racing for `new` sees it
        // taken from here on.
        if let Err(other) = self.table_mut().rename(&c.id, &old, new) {
            return Err(taken(&other));
        }
        c.update(|r| r.name = new.to_owned());
        let rec = c.snapshot();
        let engine = self.clone();
        let stored = blocking(move || engine.store.update(&rec)).await;
        if let Err(e) = stored {
            c.update(|r| r.name = old.clone());
            let _ = self.table_mut().rename(&c.id, new, &old);
            // The store's unique name is the final word when two renames race.
            return Err(match e {
                Error::Db(_) => match self.name_owner(new).filter(|o| *o != c.id) {
                    Some(other) => taken(&other),
                    None => e,
                },
                e => e,
            });
        }
        self.emit_container(&c.snapshot(), "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `POST /containers/{id}/update`: validates as dockerd does, records the new limits
    /// and restart policy, and applies the limits to the live cgroup of a running
    /// container (the old ones are restored when that fails). Returns the warnings.
    pub async fn update_container(self: &Arc<Self>, name: &str, mut u: UpdateRequest) -> Result<Vec<String>> {
        validate_update(&u)?;
        // dockerd's update verifies as its create does: what the host cannot enforce is
        // dropped with a warning, so it is neither recorded nor written to the cgroup.
        // The unlimited swap dockerd puts beside a discarded memory limit is left out here:
        // there is no limit to keep it beside, and the record stays as it was.
        let asked_swap = u.memory_swap;
        let warnings =
            super::sysinfo::discard_unsupported(super::sysinfo::SysInfo::host(), super::sysinfo::resources_mut!(u))?;
        if u.memory == Some(0) && asked_swap != Some(-1) {
            u.memory_swap = asked_swap;
        }
        let c = self.get(name)?;
        let _op = c.op.lock().await;
        let before = c.snapshot();
        let id = before.id.clone();
        let cannot = |msg: String| Error::Conflict(format!("Cannot update container {id}: {msg}"));
        if matches!(before.state.status, Status::Removing | Status::Dead) {
            return Err(cannot("container is marked for removal and cannot be \"update\"".to_owned()));
        }
        let hc = &before.host_config;
        let nz = |v: Option<i64>| v.filter(|v| *v != 0);
        let gt0 = |v: Option<i64>| v.is_some_and(|v| v > 0);
        if gt0(u.nano_cpus) && gt0(hc.cpu_period) {
            return Err(cannot(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set".into(),
            ));
        }
        if gt0(u.nano_cpus) && gt0(hc.cpu_quota) {
            return Err(cannot(
                "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set".into(),
            ));
        }
        if gt0(u.cpu_period) && gt0(hc.nano_cpus) {
            return Err(cannot(
                "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set".into(),
            ));
        }
        if gt0(u.cpu_quota) && gt0(hc.nano_cpus) {
            return Err(cannot(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set".into(),
            ));
        }
        // The swap limit in force: Docker records 2 × memory when only memory was given.
        let cur_swap = match (nz(hc.memory_swap), nz(hc.memory)) {
            (Some(s), _) => s,
            (None, Some(m)) if m > 0 => m * 2,
            _ => 0,
        };
        if let Some(m) = nz(u.memory)
            && nz(u.memory_swap).is_none()
            && cur_swap > 0
            && m > cur_swap
        {
            return Err(cannot(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
                    .into(),
            ));
        }
        let policy =
            u.restart_policy.clone().filter(|p| p.name.as_ref().is_some_and(|n| *n != RestartPolicyNameEnum::EMPTY));
        if let Some(p) = &policy
            && hc.auto_remove == Some(true)
            && p.name != Some(RestartPolicyNameEnum::NO)
        {
            return Err(cannot(
                "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
            ));
        }
        c.update(|r| {
            let h = &mut r.host_config;
            if let Some(v) = nz(u.cpu_shares) {
                h.cpu_shares = Some(v);
            }
            if let Some(v) = nz(u.nano_cpus) {
                h.nano_cpus = Some(v);
            }
            if let Some(v) = nz(u.cpu_period) {
                h.cpu_period = Some(v);
            }
            if let Some(v) = nz(u.cpu_quota) {
                h.cpu_quota = Some(v);
            }
            if let Some(v) = u.cpuset_cpus.clone().filter(|s| !s.is_empty()) {
                h.cpuset_cpus = Some(v);
            }
            if let Some(v) = u.cpuset_mems.clone().filter(|s| !s.is_empty()) {
                h.cpuset_mems = Some(v);
            }
            if let Some(v) = u.blkio_weight.filter(|w| *w != 0) {
                h.blkio_weight = Some(v);
            }
            if let Some(v) = nz(u.memory) {
                if nz(h.memory_swap).is_none() {
                    // Keep the swap limit in force on record: twice the old memory limit,
                    // or unlimited (the live cgroup's memsw is left as it is).
                    h.memory_swap = Some(if cur_swap > 0 { cur_swap } else { -1 });
                }
                h.memory = Some(v);
            }
            if let Some(v) = nz(u.memory_swap) {
                h.memory_swap = Some(v);
            }
            if let Some(v) = nz(u.memory_reservation) {
                h.memory_reservation = Some(v);
            }
            if u.pids_limit.is_some() {
                h.pids_limit = u.pids_limit;
            }
            if let Some(p) = &policy {
                h.restart_policy = Some(p.clone());
            }
        });
        let after = c.snapshot();
        if after.state.status == Status::Running && after.state.pid > 0 {
            let limits = super::cgroups::Limits {
                memory: nz(u.memory),
                memory_swap: nz(u.memory_swap),
                cpu_shares: nz(u.cpu_shares),
                cpu_quota: nz(u.cpu_quota).or_else(|| nz(u.nano_cpus).map(|n| n / 10_000)),
                cpu_period: nz(u.cpu_period).or_else(|| nz(u.nano_cpus).map(|_| 100_000)),
                pids_limit: u.pids_limit,
                blkio_weight: u.blkio_weight.filter(|w| *w != 0),
                cpuset_cpus: u.cpuset_cpus.clone().filter(|s| !s.is_empty()),
                cpuset_mems: u.cpuset_mems.clone().filter(|s| !s.is_empty()),
                memory_reservation: nz(u.memory_reservation),
            };
            let pid = after.state.pid;
            let applied = blocking(move || {
                super::cgroups::Cgroup::of_pid(pid).and_then(|cg| cg.apply(&limits)).map_err(|e| Error::io("cgroup", e))
            })
            .await;
            if let Err(e) = applied {
                c.update(|r| r.host_config = before.host_config.clone());
                return Err(Error::Internal(format!("Cannot update container {id}: {e}")));
            }
        }
        self.persist(&c);
        self.emit_container(&c.snapshot(), "update", &[]);
        Ok(warnings)
    }
}

/// dockerd's verifyContainerSettings for an update (before the container is looked up).
fn validate_update(u: &UpdateRequest) -> Result<()> {
    if let Some(m) = u.memory
        && m != 0
        && m < MIN_MEMORY
    {
        return Err(Error::InvalidArgument("Minimum memory limit allowed is 6MB".to_owned()));
    }
    if let (Some(m), Some(s)) = (u.memory, u.memory_swap)
        && m > 0
        && s > 0
        && s < m
    {
        return Err(Error::InvalidArgument(
            "Minimum memoryswap limit should be larger than memory limit, see usage".to_owned(),
        ));
    }
    super::cgroups::check_resources(
        u.blkio_weight,
        u.cpuset_cpus.as_deref(),
        u.cpuset_mems.as_deref(),
        u.memory,
        u.memory_reservation,
    )?;
    if let Some(n) = u.nano_cpus.filter(|n| *n != 0) {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if n < 0 || n > cpus * 1_000_000_000 {
            return Err(Error::InvalidArgument(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
    }
    if let Some(p) = &u.restart_policy {
        super::restart::validate(p)?;
    }
    Ok(())
}

fn restarting(id: &str) -> Error {
    Error::Conflict(format!("Container {id} is restarting, wait until the container is running"))
}

/// Docker's smallest memory limit (linuxMinMemory), 6 MiB.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Parses `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<i32> {
    const NAMES: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("POLL", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    let invalid = || Error::InvalidArgument(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) { Ok(n) } else { Err(invalid()) };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(invalid)
}

/// Marks a container's start as over when the start path returns, however it returns, so
/// attaches wait for the next start again.
struct StartingGuard<'a>(&'a Container);

impl Drop for StartingGuard<'_> {
    fn drop(&mut self) {
        match self.0.pending.lock() {
            Ok(mut p) => p.start_done(),
            Err(p) => p.into_inner().start_done(),
        }
    }
}

/// The parent mounts that are in place, which shims leave out of their mount namespace.
pub(super) fn private_parents(cfg: &crate::config::Config) -> Vec<PathBuf> {
    parent_mounts(cfg).into_iter().filter(|d| berth_image::is_parent_mount(d)).collect()
}

/// The directories under which the daemon makes one mount per container: container roots
/// and network namespace files.
fn parent_mounts(cfg: &crate::config::Config) -> [PathBuf; 2] {
    [cfg.data_root.join("containers"), cfg.exec_root.join("netns")]
}

/// Makes each of [`parent_mounts`] a mount of its own (`image::ensure_parent_mount`), so a
/// shim can leave all the per-container mounts out of its mount namespace at once and
/// container start, exec and delete stay as fast with 1000 containers running as with
/// none. Best effort: without them containers work, only slower as their number grows.
pub(super) fn make_parent_mounts(cfg: &crate::config::Config) {
    for d in parent_mounts(cfg) {
        if let Err(e) = berth_image::ensure_parent_mount(&d) {
            tracing::warn!(dir = %d.display(), error = %e, "cannot make a parent mount; starts will slow down as containers are added");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn wait_conditions() {
        assert_eq!(WaitCondition::parse(None).unwrap(), WaitCondition::NotRunning);
        assert_eq!(WaitCondition::parse(Some("removed")).unwrap(), WaitCondition::Removed);
        assert!(WaitCondition::parse(Some("bogus")).is_err());
    }
}
