//! Unit tests of the container state machine (create, start, stop, kill, restart, remove,
//! attach, restore after a daemon restart) over a fake shim launcher and a fake root store:
//! no root, no containers. The fake shims speak the real protocol on real sockets, in
//! threads of this process, so the engine's ShimClient paths run as in production.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::models::{ContainerCreateBody, HostConfig};
use berth_runtime::fake::{FakeShim, Request};
use berth_runtime::shim::ShimOptions;
use tokio::io::AsyncReadExt;

use super::traits::{RootfsStore, ShimLauncher};
use super::{AttachStreams, Engine, WaitCondition};
use crate::config::Config;
use crate::error::Error;
use crate::record::Status;

/// Launches fake shims and remembers them by container id.
#[derive(Default)]
struct FakeLauncher {
    shims: Mutex<HashMap<String, Vec<FakeShim>>>,
    cleaned: Mutex<Vec<String>>,
}

impl FakeLauncher {
    /// The latest shim of a container.
    fn shim(&self, id: &str) -> FakeShim {
        self.shims.lock().unwrap()[id].last().unwrap().clone()
    }
    fn spawned(&self, id: &str) -> usize {
        self.shims.lock().unwrap().get(id).map_or(0, Vec::len)
    }
}

impl ShimLauncher for FakeLauncher {
    fn spawn(&self, opts: &ShimOptions) -> Result<u32, berth_runtime::Error> {
        let shim = FakeShim::spawn(opts)?;
        let pid = shim.pid();
        self.shims.lock().unwrap().entry(opts.id.clone()).or_default().push(shim);
        Ok(pid)
    }

    fn cleanup(&self, _state_root: &Path, id: &str) -> Result<(), berth_runtime::Error> {
        self.cleaned.lock().unwrap().push(id.to_owned());
        Ok(())
    }
}

/// Container roots as plain directories; records what is mounted.
#[derive(Default)]
struct FakeRoots {
    mounted: Mutex<HashSet<PathBuf>>,
}

impl FakeRoots {
    fn is_mounted(&self, dir: &Path) -> bool {
        self.mounted.lock().unwrap().contains(dir)
    }
}

impl RootfsStore for FakeRoots {
    fn mount_rootfs(&self, _image: &berth_base::Digest, dir: &Path) -> Result<PathBuf, berth_image::Error> {
        let root = dir.join("rootfs");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        self.mounted.lock().unwrap().insert(dir.to_path_buf());
        Ok(root)
    }

    fn unmount_rootfs(&self, dir: &Path) -> Result<(), berth_image::Error> {
        self.mounted.lock().unwrap().remove(dir);
        Ok(())
    }
}

struct Harness {
    dir: tempfile::TempDir,
    launcher: Arc<FakeLauncher>,
    roots: Arc<FakeRoots>,
    /// A bridge and table named after this harness: a test that reaches the host's
    /// network as root never touches a real daemon's `berth0` or `inet berth`.
    network: crate::config::NetworkOptions,
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Tests keep to the host's network; this only undoes a slip, as root.
        let _ = std::process::Command::new("nft").args(["delete", "table", "inet", &self.network.nft_table]).output();
        let _ = std::process::Command::new("ip").args(["link", "del", &self.network.bridge]).output();
    }
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let tag: String =
            dir.path().file_name().unwrap().to_string_lossy().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let network = crate::config::NetworkOptions {
            bridge: format!("bu{tag}").chars().take(15).collect(),
            nft_table: format!("berth_unit_{tag}"),
            ..Default::default()
        };
        Harness { dir, launcher: Default::default(), roots: Default::default(), network }
    }

    async fn engine(&self) -> Arc<Engine> {
        let cfg = Config {
            sockets: Vec::new(),
            tcp: Vec::new(),
            tls: None,
            data_root: self.dir.path().join("data"),
            exec_root: self.dir.path().join("exec"),
            log_level: "info".into(),
            log_max_size: 1 << 20,
            log_max_files: 1,
            max_layer_size: None,
            api_header_timeout: crate::config::DEFAULT_API_HEADER_TIMEOUT,
            warnings: Vec::new(),
            init: false,
            registry: Default::default(),
            network: self.network.clone(),
            cdi_spec_dirs: Vec::new(),
            cdi_enabled: true,
            default_ulimits: Vec::new(),
        };
        Engine::open_with(cfg, Some((self.launcher.clone(), self.roots.clone()))).await.unwrap()
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("data/containers").join(id)
    }
}

async fn create_with(e: &Arc<Engine>, cmd: &[&str], mut hc: HostConfig) -> String {
    // Unit tests run without root: the host's network needs no namespace or bridge.
    hc.network_mode.get_or_insert_with(|| "host".into());
    let body = ContainerCreateBody {
        image: Some("hello-world".into()),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        host_config: Some(hc),
        ..Default::default()
    };
    e.create_container(None, body).await.unwrap().id
}

async fn create(e: &Arc<Engine>, cmd: &[&str]) -> String {
    create_with(e, cmd, HostConfig::default()).await
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("timed out")
}

fn status(e: &Engine, id: &str) -> (Status, i64) {
    let r = e.get(id).unwrap().snapshot();
    (r.state.status, r.state.exit_code)
}

fn signals(shim: &FakeShim) -> Vec<i32> {
    shim.requests()
        .into_iter()
        .filter_map(|r| match r {
            Request::Signal(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ends_with_its_exit_recorded_and_its_root_unmounted() {
    let h = Harness::new();
    let e = h.engine().await;
    let id = create(&e, &["exit", "3"]).await;
    assert_eq!(status(&e, &id), (Status::Created, 0));
    let wait = e.wait_container(&id, WaitCondition::NextExit).unwrap();
    e.start_container(&id).await.unwrap();
    assert_eq!(within(wait).await, 3);
    let r = e.get(&id).unwrap().snapshot();
    assert_eq!((r.state.status, r.state.exit_code, r.state.pid), (Status::Exited, 3, 0));
    assert!(r.state.started_at.is_some() && r.state.finished_at.is_some());
    assert!(!h.roots.is_mounted(&h.container_dir(&id)));
    assert_eq!(
        h.launcher.shim(&id).requests()[..2],
        [Request::Hello { stdin: false, stdout: false, stderr: false }, Request::Start]
    );
    // The bundle the shim was given is the one the sandbox wrote.
    let dir = h.container_dir(&id);
    for f in ["config.json", "hosts", "hostname", "resolv.conf"] {
        assert!(dir.join(f).exists(), "{f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kill_and_restart() {
    let h = Harness::new();
    let e = h.engine().await;
    let id = create(&e, &["sleep", "100"]).await;
    e.start_container(&id).await.unwrap();
    assert_eq!(status(&e, &id).0, Status::Running);
    assert_eq!(e.get(&id).unwrap().snapshot().state.pid, h.launcher.shim(&id).pid());
    assert!(h.roots.is_mounted(&h.container_dir(&id)));
    assert!(matches!(e.start_container(&id).await, Err(Error::NotModified(_))));

    within(e.stop_container(&id, Some(10), None)).await.unwrap();
    assert_eq!(status(&e, &id), (Status::Exited, 143));
    assert_eq!(signals(&h.launcher.shim(&id)), [15]);
    assert!(matches!(e.stop_container(&id, None, None).await, Err(Error::NotModified(_))));
    assert!(matches!(e.kill_container(&id, None).await, Err(Error::Conflict(_))));

    e.start_container(&id).await.unwrap();
    assert_eq!(h.launcher.spawned(&id), 2, "a new shim for each run");
    let wait = e.wait_container(&id, WaitCondition::NextExit).unwrap();
    e.kill_container(&id, Some("SIGINT")).await.unwrap();
    assert_eq!(within(wait).await, 130);
    assert_eq!(signals(&h.launcher.shim(&id)), [2]);

    e.start_container(&id).await.unwrap();
    within(e.restart_container(&id, Some(5), Some("SIGQUIT"))).await.unwrap();
    assert_eq!(h.launcher.spawned(&id), 4);
    let shims = h.launcher.shims.lock().unwrap()[&id].clone();
    assert_eq!(signals(&shims[2]), [3], "restart stops the old run with the given signal");
    assert_eq!(shims[2].exited(), Some(131));
    assert_eq!(status(&e, &id).0, Status::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_refuses_a_running_container_unless_forced() {
    let h = Harness::new();
    let e = h.engine().await;
    let id = create(&e, &["sleep", "100"]).await;
    e.start_container(&id).await.unwrap();
    let err = e.remove_container(&id, false, false).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(m) if m.contains("You cannot remove a running container")), "{err}");
    let gone = e.wait_container(&id, WaitCondition::Removed).unwrap();
    within(e.remove_container(&id[..12], true, false)).await.unwrap();
    within(gone).await;
    assert_eq!(signals(&h.launcher.shim(&id)), [9]);
    assert!(matches!(e.get(&id), Err(Error::NoSuchContainer(_))));
    assert_eq!(*h.launcher.cleaned.lock().unwrap(), vec![id.clone()]);
    assert!(!h.container_dir(&id).exists());
    assert!(!h.roots.is_mounted(&h.container_dir(&id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_starts_record_dockers_exit_codes() {
    let h = Harness::new();
    let e = h.engine().await;
    for (cmd, code) in [("nosuchcmd", 127), ("/noexec", 126)] {
        let id = create(&e, &[cmd]).await;
        let err = e.start_container(&id).await.unwrap_err();
        assert!(matches!(err, Error::StartFailed { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("failed to create task for container: unable to start container process: exec:")
        );
        let r = e.get(&id).unwrap().snapshot();
        assert_eq!((r.state.status, r.state.exit_code), (Status::Created, code), "{cmd}");
        assert_eq!(r.state.error, err.to_string());
        assert!(!h.roots.is_mounted(&h.container_dir(&id)), "the root is unmounted after a failed start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_remove_after_exit() {
    let h = Harness::new();
    let e = h.engine().await;
    let id = create_with(&e, &["true"], HostConfig { auto_remove: Some(true), ..Default::default() }).await;
    let removed = e.wait_container(&id, WaitCondition::Removed).unwrap();
    e.start_container(&id).await.unwrap();
    assert_eq!(within(removed).await, 0);
    assert!(matches!(e.get(&id), Err(Error::NoSuchContainer(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_before_start_gets_all_output_framed() {
    let h = Harness::new();
    let e = h.engine().await;
    let id = create(&e, &["echo", "hi", "there"]).await;
    let (ours, mut theirs) = tokio::io::duplex(4096);
    let streams = AttachStreams { stdout: true, stderr: true, stream: true, ..Default::default() };
    e.attach(e.get(&id).unwrap(), streams, Box::new(ours), None).await;
    e.start_container(&id).await.unwrap();
    let mut got = Vec::new();
    within(theirs.read_to_end(&mut got)).await.unwrap();
    let mut want = Vec::new();
    berth_api::stdcopy::encode(berth_api::stdcopy::Stream::Stdout, b"hi there\n", &mut want);
    assert_eq!(got, want);
}

/// The client's start can reach the engine before its attach connection has finished
/// upgrading (it sends the start the moment it reads the 101): the place kept before the
/// 101 makes the start wait for the connection, so no output is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_overtakes_the_attach_upgrade_loses_no_output() {
    let h = Harness::new();
    let e = h.engine().await;
    let id = create(&e, &["echo", "raced"]).await;
    let c = e.get(&id).unwrap();
    let streams = AttachStreams { stdout: true, stderr: true, stream: true, ..Default::default() };
    let slot = e.reserve_attach(&c, &streams);
    assert!(slot.is_some(), "a created container keeps a place for the attach");
    let start = tokio::spawn({
        let (e, id) = (e.clone(), id.clone());
        async move { e.start_container(&id).await }
    });
    // The upgrade resolves only after the start is under way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (ours, mut theirs) = tokio::io::duplex(4096);
    e.attach(c.clone(), streams.clone(), Box::new(ours), slot).await;
    within(start).await.unwrap().unwrap();
    let mut got = Vec::new();
    within(theirs.read_to_end(&mut got)).await.unwrap();
    let mut want = Vec::new();
    berth_api::stdcopy::encode(berth_api::stdcopy::Stream::Stdout, b"raced\n", &mut want);
    assert_eq!(got, want);
    // A running container keeps no place: an attach then joins it as it runs.
    let id = create(&e, &["sleep", "100"]).await;
    e.start_container(&id).await.unwrap();
    assert!(e.reserve_attach(&e.get(&id).unwrap(), &streams).is_none());
    within(e.kill_container(&id, None)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_reaches_the_shim_of_a_running_container() {
    let h = Harness::new();
    let e = h.engine().await;
    let id = create(&e, &["sleep", "100"]).await;
    assert!(matches!(e.resize(&id, 1, 1).await, Err(Error::Conflict(_))));
    e.start_container(&id).await.unwrap();
    e.resize(&id, 33, 77).await.unwrap();
    let shim = h.launcher.shim(&id);
    within(async {
        while !shim.requests().contains(&Request::Resize { rows: 33, cols: 77 }) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    within(e.kill_container(&id, None)).await.unwrap();
}

/// The daemon dies (its runtime and every task go) while one container runs on and
/// another exits; a new daemon reattaches to the first and records the second's exit.
#[test]
fn restore_after_a_daemon_restart() {
    let h = Harness::new();
    let runtime = || tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rt = runtime();
    let (running, exits) = rt.block_on(async {
        let e = h.engine().await;
        let a = create(&e, &["sleep", "100"]).await;
        let b = create(&e, &["sleep", "100"]).await;
        e.start_container(&a).await.unwrap();
        e.start_container(&b).await.unwrap();
        (a, b)
    });
    drop(rt);
    h.launcher.shim(&exits).exit(3);

    let rt = runtime();
    rt.block_on(async {
        let e = h.engine().await;
        assert_eq!(status(&e, &exits), (Status::Exited, 3), "the exit file tells what happened meanwhile");
        assert_eq!(status(&e, &running).0, Status::Running);
        let shim = h.launcher.shim(&running);
        // The new daemon reconnected (the fake handles the hello on a thread of its own).
        within(async {
            while shim.requests().iter().filter(|r| matches!(r, Request::Hello { .. })).count() < 2 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        within(e.stop_container(&running, Some(10), None)).await.unwrap();
        assert_eq!(status(&e, &running), (Status::Exited, 143));
        assert_eq!(h.launcher.spawned(&running), 1, "no new shim: the old one was driven");
    });
}

fn restart_policy(name: berth_api::models::RestartPolicyNameEnum, max: i64) -> HostConfig {
    HostConfig {
        restart_policy: Some(berth_api::models::RestartPolicy { name: Some(name), maximum_retry_count: Some(max) }),
        ..Default::default()
    }
}

async fn settle(e: &Engine, id: &str, want: Status) {
    within(async {
        while status(e, id).0 != want {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Waits until container `id` has been spawned `runs` times and is exited, then half a
/// second more, in which a policy that was not spent would restart it again.
async fn spent_after(h: &Harness, e: &Engine, id: &str, runs: usize) {
    within(async {
        while h.launcher.spawned(id) < runs || status(e, id).0 != Status::Exited {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_exactly_its_count_with_events() {
    use berth_api::models::RestartPolicyNameEnum as P;
    let h = Harness::new();
    let e = h.engine().await;
    let (_, mut rx) = e.subscribe_events(None, None);
    let id = create_with(&e, &["exit", "3"], restart_policy(P::ON_FAILURE, 2)).await;
    e.start_container(&id).await.unwrap();
    spent_after(&h, &e, &id, 3).await;
    assert_eq!(h.launcher.spawned(&id), 3, "the first run and two restarts");
    let r = e.get(&id).unwrap().snapshot();
    assert_eq!((r.restart_count, r.state.exit_code, r.state.status), (2, 3, Status::Exited));
    let mut actions = Vec::new();
    while let Ok(m) = rx.try_recv() {
        actions.push(m.action.clone());
        if m.action == "die" {
            assert_eq!(m.actor.attributes["exitCode"], "3");
        }
    }
    assert_eq!(actions, ["create", "start", "die", "start", "die", "start", "die"]);
    // A manual start resets the count: the policy, spent before it, restarts the container
    // twice more. (Reading the count right after the start raced the first of those
    // restarts on a loaded machine.)
    e.start_container(&id).await.unwrap();
    spent_after(&h, &e, &id, 6).await;
    assert_eq!(h.launcher.spawned(&id), 6, "the manual start and two restarts more");
    assert_eq!(e.get(&id).unwrap().snapshot().restart_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_is_never_undone_by_the_policy() {
    use berth_api::models::RestartPolicyNameEnum as P;
    let h = Harness::new();
    let e = h.engine().await;
    let id = create_with(&e, &["sleep", "100"], restart_policy(P::ALWAYS, 0)).await;
    e.start_container(&id).await.unwrap();
    within(e.stop_container(&id, Some(10), None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&e, &id).0, Status::Exited);
    assert_eq!(h.launcher.spawned(&id), 1);
    // A crash (a signal the user did not send) is restarted.
    e.start_container(&id).await.unwrap();
    h.launcher.shim(&id).exit(1);
    within(async {
        while h.launcher.spawned(&id) < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    settle(&e, &id, Status::Running).await;
    assert_eq!(e.get(&id).unwrap().snapshot().restart_count, 1);
    // kill (SIGKILL) returns with the exit recorded and cancels restarts.
    within(e.kill_container(&id, None)).await.unwrap();
    assert_eq!(status(&e, &id).0, Status::Exited);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(h.launcher.spawned(&id), 3);
    e.remove_container(&id, false, false).await.unwrap();
}

/// `always` comes back after a daemon restart even when stopped by hand; `unless-stopped`
/// only when it was not; a run that died with the daemon is restarted by its policy.
#[test]
fn restart_policies_resume_when_the_daemon_starts() {
    use berth_api::models::RestartPolicyNameEnum as P;
    let h = Harness::new();
    let runtime = || tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let rt = runtime();
    let (always, unless, stopped_unless) = rt.block_on(async {
        let e = h.engine().await;
        let always = create_with(&e, &["sleep", "100"], restart_policy(P::ALWAYS, 0)).await;
        let unless = create_with(&e, &["sleep", "100"], restart_policy(P::UNLESS_STOPPED, 0)).await;
        let stopped_unless = create_with(&e, &["sleep", "100"], restart_policy(P::UNLESS_STOPPED, 0)).await;
        for id in [&always, &unless, &stopped_unless] {
            e.start_container(id).await.unwrap();
        }
        within(e.stop_container(&always, Some(10), None)).await.unwrap();
        within(e.stop_container(&stopped_unless, Some(10), None)).await.unwrap();
        (always, unless, stopped_unless)
    });
    drop(rt);
    h.launcher.shim(&unless).exit(0);
    let rt = runtime();
    rt.block_on(async {
        let e = h.engine().await;
        settle(&e, &always, Status::Running).await;
        settle(&e, &unless, Status::Running).await;
        assert_eq!(h.launcher.spawned(&always), 2);
        assert_eq!(h.launcher.spawned(&unless), 2);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(status(&e, &stopped_unless).0, Status::Exited, "unless-stopped honours a manual stop");
        assert_eq!(h.launcher.spawned(&stopped_unless), 1);
        for id in [&always, &unless] {
            within(e.kill_container(id, None)).await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execs_run_in_the_containers_shim() {
    let h = Harness::new();
    let e = h.engine().await;
    let body = ContainerCreateBody {
        image: Some("hello-world".into()),
        cmd: Some(vec!["sleep".into(), "100".into()]),
        env: Some(vec!["A=1".into()]),
        working_dir: Some("/srv".into()),
        host_config: Some(HostConfig { network_mode: Some("host".into()), ..Default::default() }),
        ..Default::default()
    };
    let id = e.create_container(None, body).await.unwrap().id;
    let cfg = |cmd: &[&str]| berth_api::models::ExecConfig {
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        env: Some(vec!["B=2".into()]),
        attach_stdout: Some(true),
        ..Default::default()
    };
    let err = e.create_exec(&id, cfg(&["true"])).await.unwrap_err();
    assert_eq!(err.to_string(), format!("container {id} is not running"));
    assert_eq!(crate::server::status_of(err.kind()).as_u16(), 409);
    e.start_container(&id).await.unwrap();
    let (code, out) =
        within(e.exec_capture(&id, vec!["echo".into(), "hi".into()], Duration::from_secs(5), 100)).await.unwrap();
    assert_eq!((code, out), (Some(0), b"hi\n".to_vec()));
    let shim = h.launcher.shim(&id);
    let spec = shim
        .requests()
        .into_iter()
        .find_map(|r| match r {
            Request::Exec(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(spec.cwd, "/srv", "the container's working directory");
    assert!(spec.env.contains(&"A=1".to_owned()) && spec.env.iter().any(|v| v.starts_with("HOSTNAME=")));
    assert!(spec.exit_file.is_some());

    // Created, started once, inspected; a second start is a conflict.
    let x = e.create_exec(&id, cfg(&["exit", "3"])).await.unwrap();
    assert_eq!(e.exec_ids(&id), std::slice::from_ref(&x));
    let s = e.claim_exec(&x).unwrap();
    e.start_exec_detached(s).await.unwrap();
    let s = e.inspect_exec(&x).unwrap();
    within(async {
        while s.state().exit_code.is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(s.state(), super::ExecState { running: false, exit_code: Some(3), pid: 0 });
    assert!(s.opts.env.contains(&"B=2".to_owned()));
    assert!(e.exec_ids(&id).is_empty(), "an ended exec leaves ExecIDs");
    let err = e.claim_exec(&x).err().unwrap();
    assert_eq!(err.to_string(), format!("exec command {x} has already run"));

    // A command that cannot run ends the exec with Docker's 127.
    let x = e.create_exec(&id, cfg(&["nosuchcmd"])).await.unwrap();
    let s = e.claim_exec(&x).unwrap();
    let err = e.start_exec_detached(s.clone()).await.unwrap_err();
    assert!(err.to_string().contains("executable file not found"), "{err}");
    assert_eq!(s.state().exit_code, Some(127));
    assert!(matches!(e.inspect_exec("nope"), Err(Error::NoSuchExec(_))));
    assert!(e.create_exec(&id, cfg(&[])).await.is_err(), "no command");
    e.kill_container(&id, None).await.unwrap();
}
