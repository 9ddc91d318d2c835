//! Live restore: the daemon is killed with SIGKILL while containers run and stays away
//! while some of them end. The new daemon finds every container, follows logs and reads
//! stats of the ones still running, records the exits that happened meanwhile with their
//! codes, removes the `--rm` ones that ended, and resumes restart policies.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
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

#[test]
fn a_daemon_killed_mid_flight_finds_everything_again() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let loop_cmd = "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done";
    ok(&d.berth(&["run", "-d", "--name", "runner", "busybox", "sh", "-c", loop_cmd]));
    ok(&d.berth(&["run", "-d", "--name", "ender", "busybox", "sh", "-c", "sleep 1; exit 7"]));
    let gone = ok(&d.berth(&["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 1"])).trim().to_owned();
    ok(&d.berth(&["run", "-d", "--name", "back", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 1"]));
    // Let `back` reach its (long) second run only after the kill.
    let pid = rustix::process::Pid::from_raw(daemon_pid(&d)).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    d.restart(true);

    // Every container is known; the exits are recorded with their codes.
    assert_eq!(inspect(&d, "{{.State.Status}}", "runner"), "running");
    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.ExitCode}}", "ender"), "exited 7");
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.berth(&["inspect", &gone]).status.success() {
        assert!(Instant::now() < deadline, "the --rm container that ended was not removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The restart policy resumes: `back` runs again.
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

    // logs -f follows the surviving container's new output.
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

    // stats read the surviving container's cgroup.
    let out = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "runner"]));
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(f[0], "runner");
    assert!(f[1].parse::<u64>().unwrap() >= 1, "{out}");
    ok(&d.berth(&["stop", "-t", "1", "runner"]));
    assert_eq!(inspect(&d, "{{.State.Status}}", "runner"), "exited");
}
