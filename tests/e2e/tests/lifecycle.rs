//! Container lifecycle verbs with our CLI and the docker CLI: restart policies (count,
//! back-off, `stop` never undone, `always` after a daemon restart), pause/unpause, rename,
//! top, update, kill-then-rm at once, GroupAdd, the `none` log driver, and inspect's full
//! HostConfig; bad input changes nothing.

use std::time::{Duration, Instant};

use berth_e2e::{Daemon, have_docker, ok, text};

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    ok(&d.berth(&["inspect", "--format", fmt, name])).trim().to_owned()
}

/// Polls until `f` is true (10 s at most).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn err_of(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure, got: {}", text(&out.stdout));
    text(&out.stderr)
}

#[test]
fn on_failure_restarts_exactly_its_count() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3"]));
    eventually("two restarts", || inspect(&d, "{{.RestartCount}} {{.State.Status}}", "flaky") == "2 exited");
    // The back-off is over (100 ms, then 200 ms): nothing more happens.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(inspect(&d, "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}", "flaky"), "2 exited 3");
    assert_eq!(
        inspect(&d, "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}", "flaky"),
        "on-failure:2"
    );
    if have_docker() {
        ok(&d.docker(&["run", "-d", "--name", "dflaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 5"]));
        eventually("docker's two restarts", || {
            text(&d.docker(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "dflaky"]).stdout).trim()
                == "2 exited"
        });
    }
    // Bad policies in dockerd's words, nothing created.
    let e = err_of(&d.berth(&["run", "-d", "--rm", "--restart", "always", "busybox", "true"]));
    assert!(e.contains("--restart and --rm"), "{e}");
    let before = ok(&d.berth(&["ps", "-aq"]));
    if have_docker() {
        let e = err_of(&d.docker(&["run", "-d", "--rm", "--restart", "always", "busybox", "true"]));
        assert!(e.contains("restart") && e.contains("rm"), "{e}");
    }
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), before);
}

#[test]
fn always_comes_back_but_a_stop_is_never_undone() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "always", "--restart", "always", "busybox", "sleep", "600"]));
    ok(&d.berth(&["run", "-d", "--name", "unless", "--restart", "unless-stopped", "busybox", "sleep", "600"]));
    // Its process dies (not the user's doing): the policy brings it back.
    let pid: i32 = inspect(&d, "{{.State.Pid}}", "always").parse().unwrap();
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::KILL).unwrap();
    eventually("a restart", || inspect(&d, "{{.RestartCount}} {{.State.Status}}", "always") == "1 running");
    assert_ne!(inspect(&d, "{{.State.Pid}}", "always"), pid.to_string());
    let ps = ok(&d.berth(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.contains("always Up"), "{ps}");

    // The user stops both: neither comes back by itself.
    ok(&d.berth(&["stop", "-t", "1", "always", "unless"]));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(inspect(&d, "{{.State.Status}}", "always"), "exited");
    assert_eq!(inspect(&d, "{{.State.Status}}", "unless"), "exited");

    // A daemon restart brings `always` back (Docker's rule), not a stopped `unless-stopped`.
    d.restart(false);
    eventually("always after a daemon restart", || inspect(&d, "{{.State.Status}}", "always") == "running");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&d, "{{.State.Status}}", "unless"), "exited");

    // kill -9 of the daemon while the container runs; its process dies while no daemon
    // watches: the new daemon records the exit and restarts it.
    ok(&d.berth(&["start", "unless"]));
    let count: i64 = inspect(&d, "{{.RestartCount}}", "unless").parse().unwrap();
    assert_eq!(count, 0, "a manual start resets the count");
    let pid: i32 = inspect(&d, "{{.State.Pid}}", "unless").parse().unwrap();
    d.restart(true);
    let _ = pid;
    let pid: i32 = inspect(&d, "{{.State.Pid}}", "unless").parse().unwrap();
    assert!(pid > 0);
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::KILL).unwrap();
    eventually("unless-stopped restarted after the kill", || {
        inspect(&d, "{{.RestartCount}} {{.State.Status}}", "unless") == "1 running"
    });
    if have_docker() {
        let o = ok(&d.docker(&["inspect", "-f", "{{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}", "unless"]));
        assert_eq!(o.trim(), "1 unless-stopped");
    }
}

#[test]
fn pause_freezes_and_unpause_resumes() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.1; done",
    ]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ok(&d.berth(&["pause", "ticker"])), "ticker\n");
    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", "ticker"), "paused true true");
    let info = ok(&d.berth(&["info", "--format", "{{.ContainersRunning}} {{.ContainersPaused}}"]));
    assert_eq!(info.trim(), "0 1");
    let ps = ok(&d.berth(&["ps", "--format", "{{.Status}}", "-f", "name=ticker"]));
    assert!(ps.trim().ends_with("(Paused)"), "{ps}");
    let ps = ok(&d.berth(&["ps", "-q", "-f", "status=paused"]));
    assert_eq!(ps.lines().count(), 1, "{ps}");
    let lines = |d: &Daemon| ok(&d.berth(&["logs", "ticker"])).lines().count();
    std::thread::sleep(Duration::from_millis(300));
    let frozen = lines(&d);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(lines(&d), frozen, "no new output while paused");
    // Errors: already paused (409), start of a paused container, rm without force.
    let e = err_of(&d.berth(&["pause", "ticker"]));
    assert!(e.contains("is already paused"), "{e}");
    let e = err_of(&d.berth(&["rm", "ticker"]));
    assert!(e.contains("You cannot remove a paused container") && e.contains("Unpause and then stop"), "{e}");
    if have_docker() {
        assert_eq!(ok(&d.docker(&["unpause", "ticker"])), "ticker\n");
    } else {
        ok(&d.berth(&["unpause", "ticker"]));
    }
    std::thread::sleep(Duration::from_millis(1000));
    assert!(lines(&d) > frozen + 3, "output resumes after unpause");
    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.Paused}}", "ticker"), "running false");
    let e = err_of(&d.berth(&["unpause", "ticker"]));
    assert!(e.contains("is not paused"), "{e}");
    let e = err_of(&d.berth(&["pause", "nosuch"]));
    assert!(e.contains("No such container: nosuch"), "{e}");
    ok(&d.berth(&["stop", "-t", "0", "ticker"]));
    let e = err_of(&d.berth(&["pause", "ticker"]));
    assert!(e.contains("is not running"), "{e}");
    // A paused container is stopped, and force-removed, cleanly.
    ok(&d.berth(&["start", "ticker"]));
    ok(&d.berth(&["pause", "ticker"]));
    ok(&d.berth(&["stop", "-t", "1", "ticker"]));
    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.Paused}}", "ticker"), "exited false");
    ok(&d.berth(&["start", "ticker"]));
    ok(&d.berth(&["pause", "ticker"]));
    ok(&d.berth(&["rm", "-f", "ticker"]));
}

#[test]
fn rename_top_and_update() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "svc", "--memory", "32m", "busybox", "sleep", "600"]));
    ok(&d.berth(&["run", "-d", "--name", "other", "busybox", "sleep", "600"]));
    assert_eq!(ok(&d.berth(&["rename", "svc", "web"])), "");
    assert_eq!(inspect(&d, "{{.Name}}", "web"), "/web");
    let e = err_of(&d.berth(&["rename", "web", "other"]));
    assert!(e.contains("Conflict. The container name \"/other\" is already in use"), "{e}");
    let e = err_of(&d.berth(&["rename", "web", "web"]));
    assert!(e.contains("Renaming a container with the same name as its current name"), "{e}");
    let e = err_of(&d.berth(&["rename", "web", "a/b"]));
    assert!(e.contains("Error when allocating new name: Invalid container name (/a/b)"), "{e}");
    assert!(e.contains("Error: failed to rename container named web"), "{e}");
    let e = err_of(&d.berth(&["rename", "nosuch", "xy"]));
    assert!(e.contains("No such container: nosuch"), "{e}");
    assert_eq!(inspect(&d, "{{.Name}}", "web"), "/web");

    let top = ok(&d.berth(&["top", "web"]));
    let mut lines = top.lines();
    assert!(lines.next().unwrap().starts_with("UID"), "{top}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "only the container's process: {top}");
    assert!(rows[0].ends_with("sleep 600"), "{top}");
    let top = ok(&d.berth(&["top", "web", "-o", "pid,comm"]));
    assert!(top.starts_with("PID"), "{top}");
    assert!(top.contains("sleep"), "{top}");
    if have_docker() {
        let top = ok(&d.docker(&["top", "web"]));
        assert!(top.contains("sleep 600"), "{top}");
    }

    // update applies to the live cgroup and to inspect.
    let pid = inspect(&d, "{{.State.Pid}}", "web");
    let mem_dir = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_owned()));
    let limit = |p: &Option<String>| -> Option<String> {
        let p = p.as_ref()?;
        Some(std::fs::read_to_string(format!("/sys/fs/cgroup/memory{p}/memory.limit_in_bytes")).ok()?.trim().to_owned())
    };
    assert_eq!(
        ok(&d.berth(&["update", "--memory", "48m", "--pids-limit", "50", "--restart", "always", "web"])),
        "web\n"
    );
    assert_eq!(
        inspect(&d, "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}", "web"),
        "50331648 50 always"
    );
    if let Some(l) = limit(&mem_dir) {
        assert_eq!(l, "50331648");
    }
    // Bad input changes nothing.
    let e = err_of(&d.berth(&["update", "--memory", "1k", "web"]));
    assert!(e.contains("Minimum memory limit allowed is 6MB"), "{e}");
    let e = err_of(&d.berth(&["update", "--memory", "64m", "nosuch"]));
    assert!(e.contains("No such container: nosuch"), "{e}");
    let e = err_of(&d.berth(&["update", "--memory", "512m", "web"]));
    assert!(e.contains("Memory limit should be smaller than already set memoryswap limit"), "{e}");
    assert_eq!(inspect(&d, "{{.HostConfig.Memory}}", "web"), "50331648");
    if let Some(l) = limit(&mem_dir) {
        assert_eq!(l, "50331648");
    }
    if have_docker() {
        let e = err_of(&d.docker(&["update", "--memory", "1k", "web"]));
        assert!(e.contains("Minimum memory limit allowed is 6MB"), "{e}");
        assert_eq!(ok(&d.docker(&["update", "--cpus", "0.5", "web"])), "web\n");
        assert_eq!(inspect(&d, "{{.HostConfig.NanoCpus}}", "web"), "500000000");
    }
    // A container without a memory limit gets one; its swap stays unlimited.
    assert_eq!(ok(&d.berth(&["update", "--memory", "64m", "other"])), "other\n");
    assert_eq!(inspect(&d, "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", "other"), "67108864 -1");
    // Bad signal names change nothing.
    let e = err_of(&d.berth(&["kill", "-s", "SIGNOPE", "web"]));
    assert!(e.contains("Invalid signal: SIGNOPE"), "{e}");
    assert_eq!(inspect(&d, "{{.State.Status}}", "web"), "running");
    // Removing a running container: dockerd's words, and it keeps running.
    let e = err_of(&d.berth(&["rm", "web"]));
    let id = inspect(&d, "{{.Id}}", "web");
    assert!(
        e.contains(&format!(
            "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
        )),
        "{e}"
    );
    assert_eq!(inspect(&d, "{{.State.Status}}", "web"), "running");
}

#[test]
fn kill_then_rm_at_once_for_fifty_containers() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(ok(&d.berth(&["run", "-d", "busybox", "sleep", "600"])).trim().to_owned());
    }
    let mut args = vec!["kill"];
    args.extend(ids.iter().map(String::as_str));
    ok(&d.berth(&args));
    let st = inspect(&d, "{{.State.Running}} {{.State.ExitCode}}", &ids[0]);
    assert_eq!(st, "false 137", "kill returns once the exit is recorded");
    args[0] = "rm";
    ok(&d.berth(&args));
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
    if have_docker() {
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(ok(&d.docker(&["run", "-d", "busybox", "sleep", "600"])).trim().to_owned());
        }
        let mut args = vec!["kill"];
        args.extend(ids.iter().map(String::as_str));
        ok(&d.docker(&args));
        args[0] = "rm";
        ok(&d.docker(&args));
        assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
    }
}

#[test]
fn group_add_log_driver_none_and_full_inspect() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    // GroupAdd through the API (the docker CLI's --group-add).
    if have_docker() {
        let out = ok(&d.docker(&["run", "--rm", "--group-add", "1234", "--group-add", "5678", "busybox", "id", "-G"]));
        let gids: Vec<&str> = out.split_whitespace().collect();
        assert!(gids.contains(&"1234") && gids.contains(&"5678"), "{out}");
        let e = err_of(&d.docker(&["run", "--rm", "--group-add", "nosuchgroup", "busybox", "true"]));
        assert!(e.contains("Unable to find group nosuchgroup"), "{e}");
    }

    // The none log driver: attached output still flows, nothing is kept.
    assert_eq!(ok(&d.berth(&["run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi"])), "hi\n");
    let e = err_of(&d.berth(&["logs", "quiet"]));
    assert!(e.contains("configured logging driver does not support reading"), "{e}");
    let id = inspect(&d, "{{.Id}}", "quiet");
    assert!(!d.data_root.join("containers").join(&id).join(format!("{id}-json.log")).exists());
    assert_eq!(inspect(&d, "{{.HostConfig.LogConfig.Type}}", "quiet"), "none");
    let out = d.berth(&["run", "--log-driver", "bogus", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("error looking up logging plugin bogus: plugin \"bogus\" not found"),
        "{}",
        text(&out.stderr)
    );

    // Inspect sends every HostConfig field dockerd sends.
    ok(&d.berth(&["create", "--name", "plain", "busybox", "true"]));
    let raw = ok(&d.berth(&["inspect", "plain"]));
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let hc = &v[0]["HostConfig"];
    assert_eq!(hc["Runtime"], "runc");
    assert_eq!(hc["LogConfig"], serde_json::json!({"Type": "json-file", "Config": {}}));
    assert_eq!(hc["ShmSize"], 67108864);
    for k in
        ["Binds", "CapAdd", "GroupAdd", "Links", "PidsLimit", "DeviceRequests", "Devices", "Ulimits", "MaskedPaths"]
    {
        assert!(hc.get(k).is_some(), "HostConfig.{k} missing: {hc}");
    }
    if have_docker() {
        let o = ok(&d.docker(&["inspect", "-f", "{{.HostConfig.Runtime}} {{json .HostConfig.LogConfig}}", "plain"]));
        assert_eq!(o.trim(), r#"runc {"Type":"json-file","Config":{}}"#);
    }
}

#[test]
fn a_restarting_container_shows_as_such_and_stop_ends_it() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "looper", "--restart", "always", "busybox", "sh", "-c", "exit 1"]));
    // The back-off grows (100 ms, 200 ms, …): the container is soon seen between runs.
    eventually("the restarting state", || {
        let ps = ok(&d.berth(&["ps", "--filter", "status=restarting", "--format", "{{.Names}} {{.Status}}"]));
        ps.starts_with("looper Restarting (1) ")
    });
    let st = inspect(&d, "{{.State.Status}} {{.State.Restarting}} {{.State.Running}}", "looper");
    assert!(st == "restarting true true" || st.starts_with("running"), "{st}");
    let e = err_of(&d.berth(&["rm", "looper"]));
    assert!(
        e.contains("You cannot remove a restarting container") || e.contains("You cannot remove a running container"),
        "{e}"
    );
    ok(&d.berth(&["stop", "-t", "1", "looper"]));
    let count = inspect(&d, "{{.RestartCount}}", "looper");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(inspect(&d, "{{.State.Status}} {{.RestartCount}}", "looper"), format!("exited {count}"));
    ok(&d.berth(&["rm", "looper"]));
}

#[test]
fn restart_keeps_a_removed_on_exit_container() {
    // dockerd keeps a `--rm` container through `restart` and removes it at its next exit.
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "keep",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo x >> /runs; sleep 600",
    ]));
    let id = inspect(&d, "{{.Id}}", "keep");
    ok(&d.berth(&["restart", "-t", "1", "keep"]));
    assert_eq!(inspect(&d, "{{.State.Status}} {{.Id}}", "keep"), format!("running {id}"));
    // The same upper dir, mounted again: the first run's write is there with the second's.
    eventually("the second run's write", || ok(&d.berth(&["exec", "keep", "cat", "/runs"])) == "x\nx\n");
    ok(&d.berth(&["stop", "-t", "1", "keep"]));
    eventually("its removal at the exit", || d.berth(&["inspect", "keep"]).status.code() == Some(1));
    assert!(!d.data_root.join("containers").join(&id).exists());
}

/// The cgroup directories a container `id` would have on this host, in every hierarchy
/// (v1 controllers, the hybrid's unified tree, or a cgroup2-only root), under berth's
/// `/berth` parent.
fn cgroup_dirs_of(id: &str) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("berth").join(id)];
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        dirs.push(e.path().join("berth").join(id));
    }
    dirs
}

/// The cgroup directories and runtime state of container `id` that are still there.
fn left_of(d: &Daemon, id: &str) -> Vec<std::path::PathBuf> {
    let mut left: Vec<_> = cgroup_dirs_of(id).into_iter().filter(|p| p.exists()).collect();
    left.extend(Some(d.exec_root.join("runtime").join(id)).filter(|p| p.exists()));
    left
}

/// Polls for up to 15 s until nothing of `id` is left ([`left_of`]), then names whatever
/// is still there.
fn wait_gone(d: &Daemon, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !left_of(d, id).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(left_of(d, id), Vec::<std::path::PathBuf>::new());
}

/// A privileged container that makes cgroups below its own, then sleeps; returns its id
/// once they are there (on a host with a v1 pids hierarchy).
fn cgroup_maker(d: &Daemon, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--privileged", "--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "busybox",
        "sh",
        "-c",
        "mkdir /sys/fs/cgroup/pids/sub /sys/fs/cgroup/memory/sub && mkdir /sys/fs/cgroup/pids/sub/deeper; exec sleep 60",
    ]);
    let id = ok(&d.berth(&args)).trim().to_owned();
    let pid = inspect(d, "{{.State.Pid}}", &id);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    if cgroup.lines().any(|l| l.split(':').nth(1) == Some("pids")) {
        let sub = std::path::Path::new("/sys/fs/cgroup/pids/berth").join(&id).join("sub/deeper");
        eventually("the container's own child cgroup", || sub.exists());
    }
    id
}

/// The other ways a container is deleted leave none of its cgroups either when it made
/// some below its own: libcontainer's delete (a container sharing the host's pid
/// namespace, whose processes may outlive its init) and the daemon's clean-up of a
/// container whose shim was killed.
#[test]
fn a_container_that_made_child_cgroups_leaves_none_on_any_delete_path() {
    let d = Daemon::start();
    d.import_busybox("busybox");

    let id = cgroup_maker(&d, &["--pid", "host"]);
    ok(&d.berth(&["kill", &id]));
    eventually("the kill", || inspect(&d, "{{.State.Status}}", &id) == "exited");
    ok(&d.berth(&["rm", &id]));
    wait_gone(&d, &id);

    let id = cgroup_maker(&d, &[]);
    let init: i32 = inspect(&d, "{{.State.Pid}}", &id).parse().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap();
    let shim: i32 = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap().parse().unwrap();
    rustix::process::kill_process(rustix::process::Pid::from_raw(shim).unwrap(), rustix::process::Signal::KILL)
        .unwrap();
    ok(&d.berth(&["rm", "-f", &id]));
    wait_gone(&d, &id);
    // Gone, or a zombie of whichever process adopted it.
    let state = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.rsplit_once(") ").unwrap().1.starts_with('Z'), "not killed: {state}");
}

/// A container that ended leaves nothing of its own behind once deleted: not its cgroup in
/// any hierarchy, nor its runtime state, whether it went at its exit (`--rm`) or was
/// killed and then removed; the cgroups a privileged container made below its own go with
/// it, as with Docker.
#[test]
fn an_ended_container_leaves_no_cgroup_or_runtime_state() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let left = |id: &str| left_of(&d, id);
    let wait_gone = |id: &str| wait_gone(&d, id);

    let id = ok(&d.berth(&["run", "-d", "--rm", "--network", "none", "busybox", "true"])).trim().to_owned();
    eventually("the --rm container's removal", || !d.berth(&["inspect", &id]).status.success());
    wait_gone(&id);

    let id = cgroup_maker(&d, &[]);
    ok(&d.berth(&["kill", &id]));
    eventually("the kill", || inspect(&d, "{{.State.Status}}", &id) == "exited");
    wait_gone(&id);
    ok(&d.berth(&["rm", &id]));
    assert_eq!(left(&id), Vec::<std::path::PathBuf>::new());
}
