//! Live restore, all of it at once (issue 8, part 9): the daemon is killed with SIGKILL
//! while containers run, an `exec -d` session is open and health checks are due, and stays
//! away while some containers end. The new daemon finds every container, follows logs and
//! reads stats of the running ones, records the exits that happened meanwhile with their
//! codes (the exec's too), removes the `--rm` one that ended, resumes `--restart always`,
//! and keeps each container's health (status, failing streak, log) and goes on checking.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, ok};
use serde_json::Value;

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    ok(&d.berth(&["inspect", "--format", fmt, name])).trim().to_owned()
}

fn health(d: &Daemon, name: &str) -> Value {
    serde_json::from_str(&inspect(d, "{{json .State.Health}}", name)).unwrap()
}

/// Polls `cond` on the container's health for up to `secs` seconds.
fn wait_health(d: &Daemon, name: &str, secs: u64, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let h = health(d, name);
        if cond(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{name}: health never got there: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn exec_inspect(d: &Daemon, id: &str) -> Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket", d.socket.to_str().unwrap(), &format!("http://x/exec/{id}/json")])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
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

fn streak(h: &Value) -> i64 {
    h["FailingStreak"].as_i64().unwrap()
}

#[test]
fn a_killed_daemon_is_replaced_by_one_that_carries_on() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let loop_cmd = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done";
    ok(&d.berth(&["run", "-d", "--name", "runner", "busybox", "sh", "-c", loop_cmd]));
    // Healthy until /tmp/bad appears.
    let hc = ["--health-interval", "300ms", "--health-retries", "3"];
    let mut run = vec!["run", "-d", "--name", "hc", "--health-cmd", "test ! -e /tmp/bad"];
    run.extend_from_slice(&hc);
    run.extend_from_slice(&["busybox", "sleep", "1000"]);
    ok(&d.berth(&run));
    // Always failing, with retries enough to stay `starting`: its streak only grows.
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "300ms",
        "--health-retries",
        "1000",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&d.berth(&["run", "-d", "--name", "ender", "busybox", "sh", "-c", "sleep 2; exit 7"]));
    let gone = ok(&d.berth(&["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 2"])).trim().to_owned();
    ok(&d.berth(&["run", "-d", "--name", "back", "--restart", "always", "busybox", "sh", "-c", "sleep 2; exit 1"]));
    let before_hc = wait_health(&d, "hc", 15, |h| h["Status"] == "healthy");
    let before_sick = wait_health(&d, "sick", 15, |h| streak(h) >= 5);
    assert_eq!(before_sick["Status"], "starting", "{before_sick}");
    let first_hc_log = before_hc["Log"][0]["Start"].as_str().unwrap().to_owned();
    // An exec session still open when the daemon dies; it ends while no daemon runs.
    ok(&d.berth(&["exec", "-d", "runner", "sh", "-c", "sleep 2; exit 5"]));
    let execs: Vec<String> = serde_json::from_str(&inspect(&d, "{{json .ExecIDs}}", "runner")).unwrap();
    assert_eq!(execs.len(), 1, "{execs:?}");

    // libcontainer's state is on a tmpfs of the daemon's (the test's exec root is on the
    // disk of /tmp): one mount, kept across the kill and not stacked by the next daemon.
    let runtime = d.exec_root.join("runtime");
    let runtime_mounts = || {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let point = runtime.to_str().unwrap().to_owned();
        info.lines().filter(|l| l.split(' ').nth(4) == Some(point.as_str()) && l.contains(" - tmpfs ")).count()
    };
    // Where the exec root itself is on a tmpfs (magic 0x01021994), nothing is mounted.
    let expected = usize::from(!rustix::fs::statfs(&d.exec_root).is_ok_and(|s| s.f_type == 0x0102_1994));
    assert_eq!(runtime_mounts(), expected, "runtime state not on a tmpfs");

    let pid = rustix::process::Pid::from_raw(daemon_pid(&d)).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    // Probes fall due while no daemon runs (interval 300 ms); the short containers end.
    std::thread::sleep(Duration::from_secs(3));
    d.restart(true);
    assert_eq!(runtime_mounts(), expected, "the restarted daemon stacked a tmpfs on the state");
    let e = exec_inspect(&d, &execs[0]);
    assert_eq!((e["Running"].clone(), e["ExitCode"].clone()), (Value::Bool(false), Value::from(5)), "{e}");

    // Health is kept, not back to `starting` with a zero streak…
    let h = health(&d, "hc");
    assert_eq!(h["Status"], "healthy", "{h}");
    assert!(!h["Log"].as_array().unwrap().is_empty(), "the log was lost: {h}");
    let h = health(&d, "sick");
    assert!(streak(&h) >= streak(&before_sick), "failing streak reset: {h} (was {before_sick})");
    let ps = ok(&d.berth(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.lines().any(|l| l.starts_with("hc ") && l.ends_with("(healthy)")), "{ps}");
    // …and checks go on: the streak keeps growing, the log moves, and a new failure turns
    // `hc` unhealthy after its three retries.
    let now = streak(&health(&d, "sick"));
    wait_health(&d, "sick", 10, |h| streak(h) >= now + 2);
    ok(&d.berth(&["exec", "hc", "touch", "/tmp/bad"]));
    let h = wait_health(&d, "hc", 10, |h| h["Status"] == "unhealthy");
    assert!(streak(&h) >= 3, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert_eq!(log.len(), 5, "{h}");
    assert_ne!(log[0]["Start"].as_str().unwrap(), first_hc_log, "{h}");
    assert_eq!(log[4]["ExitCode"], 1, "{h}");

    // Every container is known; exits that happened meanwhile are recorded with their codes.
    assert_eq!(inspect(&d, "{{.State.Status}}", "runner"), "running");
    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.ExitCode}}", "ender"), "exited 7");
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.berth(&["inspect", &gone]).status.success() {
        assert!(Instant::now() < deadline, "the --rm container that ended was not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // `--restart always` resumes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = inspect(&d, "{{.RestartCount}} {{.State.Status}}", "back");
        let (count, status) = st.split_once(' ').unwrap();
        if count.parse::<i64>().unwrap() >= 1 && (status == "running" || status == "restarting") {
            break;
        }
        assert!(Instant::now() < deadline, "restart policy did not resume: {st}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // logs -f follows the surviving container's new output; stats read its cgroup.
    let mut f = d.berth_cmd(&["logs", "-f", "--tail", "1", "runner"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut r = BufReader::new(f.stdout.take().unwrap());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0);
        seen.push(line.trim().to_owned());
    }
    let _ = f.kill();
    let _ = f.wait();
    let n = |s: &str| s.trim_start_matches("line").parse::<u64>().unwrap();
    assert!(n(&seen[2]) > n(&seen[0]), "new lines arrive: {seen:?}");
    let out = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "runner"]));
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[0], "runner");
    assert!(f[1].parse::<u64>().unwrap() >= 1, "{out}");
    for c in ["runner", "hc", "sick", "ender", "back"] {
        ok(&d.berth(&["rm", "-f", c]));
    }
}
