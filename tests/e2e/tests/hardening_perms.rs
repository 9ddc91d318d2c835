//! Issue 12, defect 1: another local user must not reach the data root (the class of
//! Docker's CVE-2021-41091). Each test performs the attack as `nobody` and shows it fail,
//! checks that non-root containers still work, and drives `berth system check`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, ok, text};

/// Runs `argv` (`[program, argv0, args…]`) as `nobody` with no supplementary groups.
/// setpriv keeps its capabilities until its own exec (whose path it resolves with them),
/// so the attack runs from a shell started as nobody, as a real local user's would;
/// `exec -a` gives busybox the applet name.
fn as_nobody(argv: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "bash", "-c", r#"exec -a "$1" "$0" "${@:2}""#])
        .args(argv)
        .output()
        .expect("run setpriv")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

fn full_id(d: &Daemon, name: &str) -> String {
    ok(&d.berth(&["inspect", "-f", "{{.Id}}", name])).trim().to_owned()
}

/// Every way into a container's secrets and setuid files that a host user might try.
fn attacks(d: &Daemon, id: &str) -> Vec<(String, Vec<String>)> {
    let c = d.data_root.join("containers").join(id);
    let p = |rel: &str| c.join(rel).display().to_string();
    let root = |rel: &str| d.data_root.join(rel).display().to_string();
    let cat = |path: String| vec!["/bin/cat".to_owned(), "cat".to_owned(), path];
    vec![
        ("setuid file in the upper dir".into(), vec![p("upper/tmp/sid"), "id".into(), "-u".into()]),
        ("setuid file in the merged root".into(), vec![p("rootfs/tmp/sid"), "id".into(), "-u".into()]),
        ("config.json".into(), cat(p("config.json"))),
        ("log".into(), cat(p(&format!("{id}-json.log")))),
        ("state.db".into(), cat(root("state.db"))),
        ("state.db-wal".into(), cat(root("state.db-wal"))),
        ("data root listing".into(), vec!["/bin/ls".into(), "ls".into(), root("")]),
    ]
}

/// Starts a container that leaves a setuid-root busybox in /tmp and prints a secret, and
/// waits until both are on disk.
fn leave_setuid_and_secret(d: &Daemon) -> String {
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "leaky",
        "-e",
        "DB_PASSWORD=secret",
        "busybox",
        "sh",
        "-c",
        "cp /bin/busybox /tmp/sid && chmod 4755 /tmp/sid && echo DB_PASSWORD=$DB_PASSWORD && sleep 300",
    ]));
    let id = full_id(d, "leaky");
    let c = d.data_root.join("containers").join(&id);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(c.join("upper/tmp/sid").exists()
        && std::fs::read_to_string(c.join(format!("{id}-json.log"))).unwrap_or_default().contains("secret"))
    {
        assert!(Instant::now() < deadline, "container did not leave its setuid file: {}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let md = std::fs::metadata(c.join("upper/tmp/sid")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o4755), "the planted file is setuid root");
    id
}

#[test]
fn other_users_cannot_reach_container_content_or_secrets() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    let id = leave_setuid_and_secret(&d);
    let c = d.data_root.join("containers").join(&id);
    assert!(std::fs::read_to_string(c.join("config.json")).unwrap().contains("DB_PASSWORD=secret"));

    // The way in works where nothing guards it: nobody runs the setuid-root file. (Debian's
    // busybox drops the privilege itself for most applets; a container can leave any
    // setuid binary, so reaching the file is what must fail.)
    let open = tempfile::Builder::new().prefix("be2e-open").tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = open.path().join("sid");
    std::fs::copy(c.join("upper/tmp/sid"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = as_nobody(&[&copy.display().to_string(), "id", "-u"]);
    assert_eq!(text(&out.stdout).trim(), "65534", "positive control: {}", text(&out.stderr));
    drop(open);

    // Only the data root guards the way: the test's own directory is open to nobody.
    let out = as_nobody(&["/bin/ls", "ls", &d.dir.path().display().to_string()]);
    assert!(out.status.success() && text(&out.stdout).contains("data"), "{}", text(&out.stderr));

    for (what, argv) in attacks(&d, &id) {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = as_nobody(&argv);
        assert!(
            !out.status.success(),
            "nobody reached the {what}: {argv:?}\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains("ermission denied"), "{what}: {}", text(&out.stderr));
    }

    // Docker's modes.
    assert_eq!(mode(&d.data_root), 0o710);
    assert_eq!(mode(&d.data_root.join("containers")), 0o710);
    assert_eq!(mode(&c), 0o710);
    assert_eq!(mode(&d.data_root.join("snapshots")), 0o700);
    assert_eq!(mode(&d.data_root.join("content")), 0o700);
    for f in ["config.json", "exit.json"].iter().map(|f| c.join(f)).chain([
        c.join(format!("{id}-json.log")),
        d.data_root.join("state.db"),
        d.data_root.join("state.db-wal"),
        d.data_root.join("lock"),
    ]) {
        if f.ends_with("exit.json") && !f.exists() {
            continue; // still running
        }
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    assert_eq!(mode(&c.join("hosts")), 0o644, "containers' users read /etc/hosts");

    // Containers running as another user still see their root and their /etc files.
    let out =
        ok(&d.berth(&["run", "--rm", "--user", "1000", "busybox", "sh", "-c", "ls / && cat /etc/hosts && id -u"]));
    assert!(out.contains("bin") && out.contains("localhost") && out.trim_end().ends_with("1000"), "{out}");
    let out = ok(&d.berth(&["run", "--rm", "--user", "65534:65534", "busybox", "ls", "/tmp", "/etc"]));
    assert!(out.contains("passwd"), "{out}");
    ok(&d.berth(&["rm", "-f", "leaky"]));
}

#[test]
fn an_open_data_root_is_tightened_when_the_daemon_starts() {
    let mut d = Daemon::start();
    d.import_busybox("busybox");
    ok(&d.berth(&[
        "run",
        "--name",
        "old",
        "-e",
        "DB_PASSWORD=secret",
        "busybox",
        "sh",
        "-c",
        "echo DB_PASSWORD=$DB_PASSWORD",
    ]));
    let id = full_id(&d, "old");
    let c = d.data_root.join("containers").join(&id);
    // As an older berth left it: every directory 0755, every file 0644.
    let root = d.data_root.clone();
    let mut open = vec![root.clone(), root.join("containers"), c.clone(), root.join("snapshots"), root.join("content")];
    open.extend(["upper", "rootfs"].map(|n| c.join(n)));
    for p in &open {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let files = [
        c.join("config.json"),
        c.join("exit.json"),
        c.join(format!("{id}-json.log")),
        root.join("state.db"),
        root.join("lock"),
    ];
    for f in &files {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // The attack works on such a data root...
    let cfg = c.join("config.json").display().to_string();
    let out = as_nobody(&["/bin/cat", "cat", &cfg]);
    assert!(out.status.success() && text(&out.stdout).contains("DB_PASSWORD=secret"), "{}", text(&out.stderr));
    // ...and `system check` says so.
    let findings = d.check_findings().expect("system check reports the open data root");
    assert!(findings.contains(&cfg) && findings.contains("PERMISSIONS"), "{findings}");

    d.restart(false);
    let out = as_nobody(&["/bin/cat", "cat", &cfg]);
    assert!(!out.status.success(), "still readable after a restart: {}", text(&out.stdout));
    assert_eq!(mode(&root), 0o710);
    assert_eq!(mode(&c), 0o710);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    assert_eq!(d.check_findings(), None);
    // The container still starts and logs.
    ok(&d.berth(&["start", "-a", "old"]));
    assert!(ok(&d.berth(&["logs", "old"])).contains("DB_PASSWORD=secret"));
}

#[test]
fn system_check_reports_planted_problems_and_passes_a_clean_root() {
    let d = Daemon::start();
    d.import_busybox("busybox");
    ok(&d.berth(&["create", "--name", "checked", "busybox", "true"]));
    let out = d.berth(&["system", "check"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).starts_with("No problems found in "), "{}", text(&out.stdout));

    let id = full_id(&d, "checked");
    let cdir = d.data_root.join("containers").join(&id);
    std::fs::set_permissions(&cdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stray = d.data_root.join("containers").join("0123456789abcdef");
    std::fs::create_dir(&stray).unwrap();
    std::fs::set_permissions(&stray, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A blob whose content no longer matches its digest.
    let blobs = d.data_root.join("content/blobs/sha256");
    let blob = std::fs::read_dir(&blobs).unwrap().flatten().map(|e| e.path()).min().expect("a blob");
    let saved = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, b"tampered").unwrap();

    let out = d.berth(&["system", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    for (kind, p) in [("PERMISSIONS", &cdir), ("UNOWNED", &stray), ("DIGEST", &blob)] {
        let line = stdout.lines().find(|l| l.contains(&*p.display().to_string())).unwrap_or_else(|| panic!("{stdout}"));
        assert!(line.starts_with(kind), "{line}");
    }
    assert!(text(&out.stderr).contains("3 problems found in "), "{}", text(&out.stderr));

    std::fs::set_permissions(&cdir, std::fs::Permissions::from_mode(0o710)).unwrap();
    std::fs::remove_dir(&stray).unwrap();
    std::fs::write(&blob, saved).unwrap();
    assert_eq!(d.check_findings(), None);
}

#[test]
#[should_panic(expected = "berth system check found problems in the data root at the end of the test")]
fn the_harness_fails_a_test_whose_daemon_leaves_a_finding() {
    let d = Daemon::start();
    std::fs::create_dir(d.data_root.join("containers").join("0123456789abcdef")).unwrap();
}
