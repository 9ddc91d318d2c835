//! The container monitor: once a container runs, its shim becomes the small monitor
//! (runtime/monitor/monitor.rs). It keeps serving the shim's socket, so a daemon killed
//! with SIGKILL and started again reattaches to it, follows the logs, runs execs (the
//! monitor hands the process back to the full shim for those) and learns the exit code of
//! a container that ended while no daemon was running.

use std::time::{Duration, Instant};

use berth_e2e::{Daemon, ok};

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    ok(&d.berth(&["inspect", "--format", fmt, name])).trim().to_owned()
}

/// The daemon's pid, found by its socket on the command line.
fn daemon_pid(d: &Daemon) -> i32 {
    let sock = d.socket.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmd = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default()).into_owned();
        if cmd.contains("daemon") && cmd.contains(&sock) {
            return pid;
        }
    }
    panic!("daemon not found");
}

/// The parent of a process: the process that stays with a container is its init's parent.
fn parent(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn exe_name(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Waits until the process staying with the container is the monitor; returns its pid.
fn monitor_of(d: &Daemon, name: &str) -> i32 {
    let init: i32 = inspect(d, "{{.State.Pid}}", name).parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = parent(init);
        if exe_name(p) == "berth-monitor" {
            return p;
        }
        assert!(Instant::now() < deadline, "{name}'s shim ({p}, {}) never became the monitor", exe_name(p));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_monitor_outlives_a_killed_daemon_and_reports_the_exit() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    // Ends with 42 on SIGTERM (sent from the host while no daemon runs).
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "ender",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 42' TERM; echo hello; while true; do sleep 0.1; done",
    ]));
    ok(&d.berth(&["run", "-d", "--name", "stayer", "busybox", "sh", "-c", "while true; do sleep 0.1; done"]));
    let ender = monitor_of(&d, "ender");
    let stayer = monitor_of(&d, "stayer");
    let init: i32 = inspect(&d, "{{.State.Pid}}", "ender").parse().unwrap();

    // An exec goes through the full shim and back to the monitor.
    assert_eq!(ok(&d.berth(&["exec", "stayer", "sh", "-c", "echo in; exit 0"])).trim(), "in");
    let out = d.berth(&["exec", "stayer", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(monitor_of(&d, "stayer"), stayer, "the same process, a monitor again");

    let pid = rustix::process::Pid::from_raw(daemon_pid(&d)).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    // While no daemon runs, `ender` is told to stop; its monitor reaps it and records it.
    rustix::process::kill_process(rustix::process::Pid::from_raw(init).unwrap(), rustix::process::Signal::TERM)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{ender}")).exists() && !exe_name(ender).is_empty() {
        assert!(Instant::now() < deadline, "ender's monitor did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.restart(true);

    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.ExitCode}}", "ender"), "exited 42");
    let logs = ok(&d.berth(&["logs", "ender"]));
    assert_eq!(logs, "hello\nbye\n");

    // The surviving monitor serves the new daemon: exec, then stop with its exit code.
    assert_eq!(inspect(&d, "{{.State.Status}}", "stayer"), "running");
    assert_eq!(ok(&d.berth(&["exec", "stayer", "echo", "again"])).trim(), "again");
    assert_eq!(monitor_of(&d, "stayer"), stayer);
    ok(&d.berth(&["kill", "stayer"]));
    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.ExitCode}}", "stayer"), "exited 137");
    ok(&d.berth(&["rm", "ender", "stayer"]));
}
