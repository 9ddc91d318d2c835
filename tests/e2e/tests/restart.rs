//! The daemon restarts (cleanly or killed) without losing images or containers, and a
//! container keeps running across the restart (live restore).

use berth_e2e::{Daemon, ok, text};

#[test]
fn state_survives_daemon_restart_and_kill() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let out = d.berth(&["run", "--name", "done", "busybox", "sh", "-c", "echo bye; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    let id = ok(&d.berth(&["run", "-d", "--name", "sleeper", "busybox", "sh", "-c", "echo started; sleep 600"]))
        .trim()
        .to_owned();
    assert_eq!(id.len(), 64, "{id}");

    d.restart(false);
    assert!(ok(&d.berth(&["images"])).contains("busybox"));
    let ps = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.contains("done Exited (4)"), "{ps}");
    assert!(ps.contains("sleeper Up"), "running container survived a clean restart: {ps}");

    d.restart(true);
    let ps = ok(&d.berth(&["ps", "--format", "{{.Names}}"]));
    assert!(ps.contains("sleeper"), "running container survived SIGKILL of the daemon: {ps}");
    assert_eq!(ok(&d.berth(&["logs", "done"])), "bye\n");
    assert!(ok(&d.berth(&["logs", "sleeper"])).contains("started"));

    // It can still be stopped and its exit is recorded.
    ok(&d.berth(&["stop", "-t", "1", "sleeper"]));
    let st = ok(&d.berth(&["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "sleeper"]));
    assert_eq!(st.trim(), "exited 137", "{st}");
    let out = d.berth(&["rm", "nosuch"]);
    assert!(text(&out.stderr).contains("No such container: nosuch"), "{}", text(&out.stderr));
}

#[test]
fn a_daemon_killed_mid_build_cleans_up_when_it_comes_back() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir.path().join("slow");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("Dockerfile"), "FROM busybox\nRUN echo step-started; sleep 53\n").unwrap();
    let mut child = d
        .berth_cmd(&["build", "-t", "slow:1", "."])
        .current_dir(&p)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("step-started") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "build ended early");
    }
    d.restart(true);
    let _ = child.wait();
    let builder = d.data_root.join("builder");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(builder.to_str().unwrap()), "a build root is still mounted");
    assert_eq!(std::fs::read_dir(&builder).map(|r| r.count()).unwrap_or(0), 0, "scratch left in builder/");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).map(|c| c.windows(8).any(|w| w == b"sleep\x0053")).unwrap_or(false)
        })
    };
    while running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!running(), "the interrupted step still runs");
    assert!(!d.berth(&["image", "inspect", "slow:1"]).status.success());
    std::fs::write(p.join("Dockerfile"), "FROM busybox\nRUN echo again > /again\n").unwrap();
    ok(&d.berth_cmd(&["build", "-q", "-t", "fast:1", "."]).current_dir(&p).output().unwrap());
    assert_eq!(ok(&d.berth(&["run", "--rm", "fast:1", "cat", "/again"])), "again\n");
}
