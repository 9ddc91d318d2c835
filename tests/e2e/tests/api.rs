//! The Engine API as docker's own CLI sees it: version/info, inspect, list filters, the
//! lifecycle verbs and Docker's error wording.

use berth_e2e::{Daemon, have_docker, ok, text};

#[test]
fn docker_cli_sees_a_docker_engine() {
    if !have_docker() {
        eprintln!("no docker CLI on this machine: skipped");
        return;
    }
    let d = Daemon::start();
    let v = ok(&d.docker(&["version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}"]));
    assert_eq!(v.trim(), "1.41 1.24 linux");
    let info = ok(&d.docker(&["info", "--format", "{{.OSType}} {{.Driver}} {{.LoggingDriver}}"]));
    assert_eq!(info.trim(), "linux overlay2 json-file");

    d.import_busybox("busybox:latest");
    let id = ok(&d.docker(&["create", "--name", "web", "--label", "tier=front", "busybox", "sleep", "60"]))
        .trim()
        .to_owned();
    ok(&d.docker(&["create", "--name", "other", "--label", "tier=back", "busybox", "true"]));
    let st = ok(&d.docker(&["inspect", "--format", "{{.State.Status}} {{.Name}} {{.Config.Image}}", "web"]));
    assert_eq!(st.trim(), "created /web busybox");
    let f = ok(&d.docker(&["ps", "-a", "--filter", "label=tier=front", "--format", "{{.Names}}"]));
    assert_eq!(f.trim(), "web");
    let f = ok(&d.docker(&["ps", "-a", "--filter", "ancestor=busybox", "-q"]));
    assert_eq!(f.lines().count(), 2, "{f}");
    let f = ok(&d.docker(&["ps", "-a", "--filter", "name=oth", "--format", "{{.Names}}"]));
    assert_eq!(f.trim(), "other");

    ok(&d.docker(&["start", "web"]));
    assert!(ok(&d.docker(&["ps", "--format", "{{.Names}} {{.Status}}"])).contains("web Up"));
    let out = d.docker(&["rm", "web"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("You cannot remove a running container"), "{}", text(&out.stderr));
    ok(&d.docker(&["stop", "-t", "1", "web"]));
    let code = ok(&d.docker(&["wait", "web"]));
    assert_eq!(code.trim(), "137", "PID 1 ignores SIGTERM without a handler, so stop ends in SIGKILL");
    ok(&d.docker(&["rm", &id]));

    let out = d.docker(&["inspect", "nosuch"]);
    assert!(text(&out.stderr).contains("No such object: nosuch"), "{}", text(&out.stderr));
    let out = d.docker(&["rm", "nosuch"]);
    assert!(
        text(&out.stderr).contains("Error response from daemon: No such container: nosuch"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&["start", "-a", "other"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn logs_and_start_attach_with_our_cli() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let out = d.berth(&["run", "--name", "talk", "busybox", "sh", "-c", "echo one; echo two >&2; echo three"]);
    assert_eq!(ok(&out), "one\nthree\n");
    assert_eq!(ok(&d.berth(&["logs", "talk"])), "one\nthree\n");
    // Lines from two pipes have no defined order between them, so count across both.
    let out = d.berth(&["logs", "--tail", "1", "talk"]);
    assert_eq!(ok(&out).lines().count() + text(&out.stderr).lines().count(), 1);
    let out = ok(&d.berth(&["start", "-a", "talk"]));
    assert_eq!(out, "one\nthree\n", "start -a streams the new run");
    assert_eq!(ok(&d.berth(&["logs", "talk"])).lines().count(), 4, "the log holds both runs");
    let id = ok(&d.berth(&["run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"]));
    let follow = ok(&d.berth(&["logs", "-f", id.trim()]));
    assert_eq!(follow, "tick 1\ntick 2\ntick 3\n");
}
