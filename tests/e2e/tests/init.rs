//! `--init`: berth's own init runs as PID 1 (mounted at /sbin/docker-init, as Docker's),
//! the command as PID 2; orphans are reaped, SIGTERM reaches the command (so `stop` ends
//! it at once with 143), the command's status is the container's. `init: true` in
//! daemon.json makes it the default and `--init=false` opts out. Also with the docker CLI.

use berth_e2e::{Daemon, have_docker, ok, text};

fn ps(out: &str) -> Vec<(String, String)> {
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_owned(), f.last()?.to_owned()))
        })
        .collect()
}

#[test]
fn init_is_pid_1_reaps_and_forwards() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let out = ok(&d.berth(&["run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm"]));
    let procs = ps(&out);
    assert_eq!(procs[0], ("1".to_owned(), "docker-init".to_owned()), "{out}");
    assert_eq!(procs[1], ("2".to_owned(), "ps".to_owned()), "{out}");
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.HostConfig.Init}}", &{
            ok(&d.berth(&["create", "--init", "busybox", "true"])).trim().to_owned()
        }]))
        .trim(),
        "true"
    );

    // Orphans: three background sleeps whose shell parent is gone. With the init they are
    // reaped; without it (sleep as PID 1 never waits) they stay zombies.
    let orphans = "for i in 1 2 3; do (sleep 0.2 &); done; exec sleep 1000";
    ok(&d.berth(&["run", "-d", "--init", "--name", "with", "busybox", "sh", "-c", orphans]));
    ok(&d.berth(&["run", "-d", "--name", "without", "busybox", "sh", "-c", orphans]));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stat = |name: &str| ok(&d.berth(&["exec", name, "ps", "-o", "stat"]));
    assert!(!stat("with").contains('Z'), "{}", stat("with"));
    assert!(stat("without").contains('Z'), "the check can fail: {}", stat("without"));

    // SIGTERM is forwarded to the command, which dies of it at once: 143, not the 137 of
    // a kill after the grace period.
    ok(&d.berth(&["stop", "-t", "60", "with"]));
    assert_eq!(ok(&d.berth(&["inspect", "-f", "{{.State.ExitCode}}", "with"])).trim(), "143");
    ok(&d.berth(&["rm", "-f", "without"]));

    // The command's status is the container's; a missing command is still 127.
    assert_eq!(d.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 4"]).status.code(), Some(4));
    assert_eq!(d.berth(&["run", "--rm", "--init", "busybox", "nosuchcmd"]).status.code(), Some(127));

    // daemon.json's init makes it the default; --init=false opts out.
    std::fs::write(d.dir.path().join("daemon.json"), r#"{"init": true}"#).unwrap();
    d.restart(false);
    let out = ok(&d.berth(&["run", "--rm", "busybox", "ps", "-o", "pid,comm"]));
    assert_eq!(ps(&out)[0].1, "docker-init", "{out}");
    let out = ok(&d.berth(&["run", "--rm", "--init=false", "busybox", "ps", "-o", "pid,comm"]));
    assert_eq!(ps(&out)[0], ("1".to_owned(), "ps".to_owned()), "{out}");

    if have_docker() {
        let out = d.docker(&["run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm"]);
        let procs = ps(&ok(&out));
        assert_eq!(procs[0].1, "docker-init", "{}", text(&out.stdout));
        assert_eq!(procs[1], ("2".to_owned(), "ps".to_owned()));
    }
}
