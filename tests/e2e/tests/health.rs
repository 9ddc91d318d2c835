//! Health checks: `--health-*` flags and an image's HEALTHCHECK run as exec probes;
//! `State.Health` in inspect (status, failing streak, the last five results), `ps` STATUS
//! `(health: starting)` → `(healthy)` / `(unhealthy)`, `--no-healthcheck`; with our CLI
//! and the docker CLI.

use std::time::{Duration, Instant};

use berth_e2e::{Daemon, have_docker, ok, text};

fn wait_status(d: &Daemon, name: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = ok(&d.berth(&["inspect", "-f", "{{.State.Health.Status}}", name]));
        if st.trim() == want || Instant::now() > deadline {
            return st.trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ps_status(out: &str, name: &str) -> String {
    out.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or("").to_owned()
}

#[test]
fn failing_and_passing_checks() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "echo probe-out; exit 1",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&d.berth(&["run", "-d", "--name", "plain", "busybox", "sleep", "1000"]));
    let ps = ok(&d.berth(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps_status(&ps, "sick").ends_with("(health: starting)"), "{ps}");
    assert_eq!(wait_status(&d, "sick", "unhealthy"), "unhealthy");
    assert_eq!(wait_status(&d, "fine", "healthy"), "healthy");
    let ps = ok(&d.berth(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps_status(&ps, "sick").ends_with("(unhealthy)"), "{ps}");
    assert!(ps_status(&ps, "fine").ends_with("(healthy)"), "{ps}");
    assert!(!ps_status(&ps, "plain").contains("health"), "{ps}");
    let health: serde_json::Value =
        serde_json::from_str(&ok(&d.berth(&["inspect", "-f", "{{json .State.Health}}", "sick"]))).unwrap();
    assert!(health["FailingStreak"].as_i64().unwrap() >= 2, "{health}");
    let log = health["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{health}");
    assert_eq!(log[0]["ExitCode"], 1);
    assert_eq!(log[0]["Output"], "probe-out\n");
    assert!(log[0]["Start"].as_str().unwrap() <= log[0]["End"].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    let health: serde_json::Value =
        serde_json::from_str(&ok(&d.berth(&["inspect", "-f", "{{json .State.Health}}", "sick"]))).unwrap();
    assert_eq!(health["Log"].as_array().unwrap().len(), 5, "the last five are kept: {health}");
    let plain = ok(&d.berth(&["inspect", "-f", "{{json .State.Health}}", "plain"]));
    assert_eq!(plain.trim(), "null");
    // The probes' execs are not left behind (one may be running right now).
    let ids = ok(&d.berth(&["inspect", "-f", "{{json .ExecIDs}}", "sick"]));
    let ids: Option<Vec<String>> = serde_json::from_str(ids.trim()).unwrap();
    assert!(ids.unwrap_or_default().len() <= 1);

    if have_docker() {
        let out = d.docker(&["ps", "--format", "{{.Names}} {{.Status}}"]);
        let ps = ok(&out);
        assert!(ps_status(&ps, "sick").ends_with("(unhealthy)"), "{ps}");
        assert!(ps_status(&ps, "fine").ends_with("(healthy)"), "{ps}");
        ok(&d.docker(&[
            "run",
            "-d",
            "--name",
            "dsick",
            "--health-cmd",
            "false",
            "--health-interval",
            "200ms",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "1000",
        ]));
        assert_eq!(wait_status(&d, "dsick", "unhealthy"), "unhealthy");
        let st = ok(&d.docker(&["inspect", "-f", "{{.State.Health.Status}} {{.State.Health.FailingStreak}}", "dsick"]));
        assert!(st.starts_with("unhealthy "), "{st}");
    }
}

#[test]
fn image_healthcheck_and_no_healthcheck() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir =
        d.dir_with("hc", "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD [\"sh\", \"-c\", \"exit 1\"]\n");
    let out = d.build_plain(&dir, &["-t", "hc:1", "."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(&d.berth(&["run", "-d", "--name", "img", "hc:1", "sleep", "1000"]));
    assert_eq!(wait_status(&d, "img", "unhealthy"), "unhealthy");
    // A flag overrides the image's command and keeps its interval.
    ok(&d.berth(&["run", "-d", "--name", "over", "--health-cmd", "true", "hc:1", "sleep", "1000"]));
    assert_eq!(wait_status(&d, "over", "healthy"), "healthy");
    ok(&d.berth(&["run", "-d", "--name", "off", "--no-healthcheck", "hc:1", "sleep", "1000"]));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(ok(&d.berth(&["inspect", "-f", "{{json .State.Health}}", "off"])).trim(), "null");
    let ps = ok(&d.berth(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(!ps_status(&ps, "off").contains("health"), "{ps}");
    let out = d.berth(&["run", "--no-healthcheck", "--health-cmd", "true", "busybox"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("--no-healthcheck conflicts with --health-* options"), "{}", text(&out.stderr));
}
