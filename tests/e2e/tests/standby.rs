//! The standby shim (runtime/shim/standby.rs): a create request makes the daemon start a
//! `berth shim --standby` ahead of need, the start hands the container to it instead of
//! spawning a shim then, and a daemon that dies leaves no standby behind. The standby makes
//! its mount namespace while it waits (runtime/shim/mountns.rs) and makes it again when a
//! bind source changed since: the container always sees the host as it is at its start.

use std::time::{Duration, Instant};

use berth_e2e::{Daemon, ok, traced};

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    ok(&d.berth(&["inspect", "--format", fmt, name])).trim().to_owned()
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// A process that is gone, or a zombie nobody reaped yet.
fn ended(pid: u32) -> bool {
    stat_fields(pid).is_none_or(|f| f[0] == "Z")
}

/// The daemon's waiting standby shims: its children run as `berth shim --standby …`.
fn standbys(daemon: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
        if args.get(1..3) == Some(&[b"shim".as_slice(), b"--standby".as_slice()])
            && stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[1] == daemon.to_string())
        {
            found.push(pid);
        }
    }
    found
}

fn one_standby(daemon: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = standbys(daemon);
        if s.len() == 1 {
            return s[0];
        }
        assert!(s.len() < 2, "at most one standby, found {s:?}");
        assert!(Instant::now() < deadline, "no standby shim appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_start_takes_the_standby_and_a_dead_daemon_leaves_none() {
    let scratch = tempfile::tempdir().unwrap();
    let trace = scratch.path().join("trace");
    // SAFETY: the only test of this binary, before it starts any thread; the daemon and
    // its shims inherit the variable (runtime/src/trace.rs).
    unsafe { std::env::set_var("BERTH_TRACE_START", &trace) };
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let daemon = d.pid().unwrap();
    ok(&d.berth(&["create", "--name", "first", "--network", "none", "busybox", "sh", "-c", "echo up; sleep 300"]));
    let standby = one_standby(daemon);
    // A waiting standby runs at idle priority (SCHED_IDLE, policy 5: /proc/PID/stat's
    // 41st field); the start lifts that before its container is made, which inherits it.
    let policy = |pid: u32| stat_fields(pid).map(|f| f[38].clone()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(5);
    while policy(standby) != "5" {
        assert!(Instant::now() < deadline, "the standby's policy is {}", policy(standby));
        std::thread::sleep(Duration::from_millis(10));
    }

    ok(&d.berth(&["start", "first"]));
    let init: u32 = inspect(&d, "{{.State.Pid}}", "first").parse().unwrap();
    let holder: u32 = stat_fields(init).unwrap()[1].parse().unwrap();
    assert_eq!(holder, standby, "the container's shim is the process that stood by");
    assert_eq!(policy(init), "0", "the container runs under the normal policy");
    assert_eq!(policy(holder), "0", "its shim too");
    assert_eq!(
        ok(&d.berth(&["exec", "first", "cat", "/proc/self/stat"]))
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(38),
        Some("0")
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while ok(&d.berth(&["logs", "first"])) != "up\n" {
        assert!(Instant::now() < deadline, "no output through the standby's shim");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Exec and stop go through it like through any shim.
    assert_eq!(ok(&d.berth(&["exec", "first", "echo", "in"])).trim(), "in");
    let first = inspect(&d, "{{.Id}}", "first");
    assert!(traced(&trace, "shim.mountns_prepared").contains(&first), "the prepared namespace was used");
    // Once the container runs, its shim keeps no copy of the container's root or network
    // namespace file in its own namespace (mountns::release), so the daemon's unlink and
    // rmdir of their paths at removal walk no mount table; exec above went on working.
    let held = std::fs::read_to_string(format!("/proc/{holder}/mountinfo")).unwrap();
    assert!(!held.contains(&first), "the shim still holds the container's mounts:\n{held}");

    // A bind source mounted after the standby made its namespace: the snapshot is stale
    // for this container, so the shim makes it again and the container sees the mount.
    ok(&d.berth(&["create", "--name", "waiter", "--network", "none", "busybox", "true"]));
    let late = scratch.path().join("late");
    std::fs::create_dir(&late).unwrap();
    let waiting = one_standby(daemon);
    // It was made from the daemon's template namespace (mountns.rs): handed over as a
    // descriptor, it copies the host's own mounts and none of the containers'.
    let cmdline = std::fs::read(format!("/proc/{waiting}/cmdline")).unwrap();
    assert!(cmdline.split(|b| *b == 0).any(|a| a == b"--mount-template"), "{}", String::from_utf8_lossy(&cmdline));
    let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ns(waiting) == ns(daemon) {
        assert!(Instant::now() < deadline, "the standby made no namespace of its own");
        std::thread::sleep(Duration::from_millis(10));
    }
    let root = format!("{}/", d.data_root.join("containers").join(&first).display());
    let mounts = std::fs::read_to_string(format!("/proc/{waiting}/mountinfo")).unwrap();
    assert!(std::fs::read_to_string(format!("/proc/{daemon}/mountinfo")).unwrap().contains(&root));
    assert!(!mounts.contains(&root), "a running container's root in the standby's namespace:\n{mounts}");
    std::thread::sleep(Duration::from_millis(100));
    let mounted =
        std::process::Command::new("mount").args(["-t", "tmpfs", "late", &late.display().to_string()]).status();
    assert!(mounted.unwrap().success());
    std::fs::write(late.join("f"), "on the late mount\n").unwrap();
    let out = d.berth(&[
        "run",
        "--rm",
        "--name",
        "binder",
        "--network",
        "none",
        "-v",
        &format!("{}:/late", late.display()),
        "busybox",
        "cat",
        "/late/f",
    ]);
    let _ = std::process::Command::new("umount").arg(&late).status();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "on the late mount\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!traced(&trace, "shim.mountns_redone").is_empty(), "the stale namespace was made again");
    ok(&d.berth(&["rm", "waiter"]));

    // A standby left waiting past its namespace's freshness gives the namespace up, so its
    // copies of the host's mounts keep no filesystem busy; it still starts a container.
    let idle = one_standby(daemon);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns(idle) != ns(daemon) {
        assert!(Instant::now() < deadline, "the idle standby kept its prepared namespace");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Nor does the idle daemon keep its template: no mount namespace among its descriptors.
    let held = || {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("mnt:"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while held() > 0 {
        assert!(Instant::now() < deadline, "the idle daemon still holds its template namespace");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(ok(&d.berth(&["run", "--rm", "--network", "none", "busybox", "echo", "late"])), "late\n");

    // The next request makes another; a run that fails in the runtime leaves the daemon
    // able to start the next one.
    ok(&d.berth(&["create", "--name", "second", "--network", "none", "busybox", "true"]));
    let next = one_standby(daemon);
    assert_ne!(next, standby);
    let bad = d.berth(&["run", "--rm", "--network", "none", "busybox", "/no/such/command"]);
    assert_eq!(bad.status.code(), Some(127), "{}", String::from_utf8_lossy(&bad.stderr));
    ok(&d.berth(&["start", "-a", "second"]));
    assert_eq!(inspect(&d, "{{.State.ExitCode}}", "second"), "0");

    // A daemon killed with SIGKILL: the waiting standby sees its stdin end and goes.
    ok(&d.berth(&["create", "--name", "third", "--network", "none", "busybox", "true"]));
    let waiting = one_standby(daemon);
    d.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ended(waiting) {
        assert!(Instant::now() < deadline, "the standby {waiting} outlived its daemon");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.start_again();
    assert_eq!(inspect(&d, "{{.State.Status}}", "first"), "running");
    ok(&d.berth(&["start", "third"]));
    ok(&d.berth(&["rm", "-f", "first", "second", "third"]));
}
