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
