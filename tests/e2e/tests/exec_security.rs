//! An exec runs under exactly the container's confinement, as Docker's exec does: the same
//! seccomp filter, no_new_privileges flag and capability sets as the container's PID 1
//! (all capabilities, still filtered, with `exec --privileged`), and a syscall the
//! container's profile denies fails inside an exec too.

use berth_e2e::{Daemon, ok, text};

const STATUS_LINES: &str = "Seccomp|NoNewPrivs|Cap(Eff|Prm|Bnd|Inh|Amb)";

fn setup() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    d
}

/// The confinement lines of /proc/<pid>/status as seen from an exec in `c`.
fn status(d: &Daemon, c: &str, extra: &[&str], pid: &str) -> String {
    let path = format!("/proc/{pid}/status");
    let mut args = vec!["exec"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[c, "grep", "-E", STATUS_LINES, &path]);
    ok(&d.berth(&args)).replace("\r\n", "\n")
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[test]
fn exec_has_the_containers_seccomp_caps_and_no_new_privs() {
    let d = setup();
    let cases: &[(&str, &[&str], &str, &str)] = &[
        ("dflt", &[], "2", "0"),
        ("unconf", &["--security-opt", "seccomp=unconfined"], "0", "0"),
        ("capdrop", &["--cap-drop", "ALL"], "2", "0"),
        ("nnp", &["--security-opt", "no-new-privileges"], "2", "1"),
    ];
    for (name, opts, seccomp, nnp) in cases {
        let mut run = vec!["run", "-d", "--name", name];
        run.extend_from_slice(opts);
        run.extend_from_slice(&["busybox", "sleep", "1000"]);
        ok(&d.berth(&run));
        let init = status(&d, name, &[], "1");
        assert_eq!(field(&init, "Seccomp"), *seccomp, "{name}: the container's own PID 1: {init}");
        assert_eq!(field(&init, "NoNewPrivs"), *nnp, "{name}: {init}");
        let exec = status(&d, name, &[], "self");
        assert_eq!(exec, init, "{name}: an exec differs from the container's PID 1");
        // With a terminal, and detached (its output in a file of the container).
        let tty = status(&d, name, &["-t"], "self");
        assert_eq!(tty, init, "{name}: an exec with a tty differs from PID 1");
        ok(&d.berth(&["exec", "-d", name, "sh", "-c", &format!("grep -E '{STATUS_LINES}' /proc/self/status > /st")]));
        let mut detached = String::new();
        for _ in 0..50 {
            detached = ok(&d.berth(&["exec", name, "cat", "/st"]));
            if !detached.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(detached, init, "{name}: a detached exec differs from PID 1");

        // Another user: the same filter, no capabilities left (the exec borrowed
        // CAP_SYS_ADMIN to load its filter and gave it back before running the command).
        let user = status(&d, name, &["-u", "1000:1000"], "self");
        assert_eq!(field(&user, "Seccomp"), *seccomp, "{name} as 1000: {user}");
        assert_eq!(field(&user, "NoNewPrivs"), *nnp, "{name} as 1000: {user}");
        for cap in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
            assert_eq!(u64::from_str_radix(field(&user, cap), 16).unwrap(), 0, "{name} as 1000: {user}");
        }
        assert_eq!(field(&user, "CapBnd"), field(&init, "CapBnd"), "{name} as 1000: {user}");
    }
    // cap-drop ALL leaves no capability, default keeps Docker's 14; neither holds CAP_SYS_ADMIN.
    let none = status(&d, "capdrop", &[], "self");
    assert_eq!(u64::from_str_radix(field(&none, "CapEff"), 16).unwrap(), 0, "{none}");
    let dflt = status(&d, "dflt", &[], "self");
    let eff = u64::from_str_radix(field(&dflt, "CapEff"), 16).unwrap();
    assert_eq!(eff.count_ones(), 14, "Docker's default capabilities: {dflt}");
    assert_eq!(eff & (1 << 21), 0, "CAP_SYS_ADMIN leaked into an exec: {dflt}");
    assert_eq!(u64::from_str_radix(field(&dflt, "CapPrm"), 16).unwrap(), eff, "{dflt}");

    // exec --privileged: every capability a privileged container gets, the filter kept
    // (Docker's exec keeps the container's seccomp profile; only caps change).
    let privileged = ok(&d.berth(&["run", "--rm", "--privileged", "busybox", "grep", "CapEff", "/proc/self/status"]));
    for name in ["dflt", "capdrop", "nnp"] {
        let p = status(&d, name, &["--privileged"], "self");
        assert_eq!(field(&p, "CapEff"), field(&privileged, "CapEff"), "{name} --privileged: {p}");
        assert_eq!(field(&p, "CapBnd"), field(&privileged, "CapEff"), "{name} --privileged: {p}");
        assert_eq!(field(&p, "Seccomp"), "2", "{name} --privileged keeps the filter: {p}");
    }
    for name in ["dflt", "unconf", "capdrop", "nnp"] {
        ok(&d.berth(&["rm", "-f", name]));
    }

    // The user and groups: the container's (its --group-add included), or the one asked
    // for with the container's --group-add added, as dockerd's exec does.
    // (berth's CLI has no --group-add: the API, as the docker CLI sends it.)
    let body = r#"{"Image":"busybox","Cmd":["sleep","1000"],"User":"1000:1000","HostConfig":{"GroupAdd":["44"]}}"#;
    ok(&std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", "-H", "Content-Type: application/json", "-d", body, "--unix-socket"])
        .arg(&d.socket)
        .arg("http://x/v1.41/containers/create?name=groups")
        .output()
        .unwrap());
    ok(&d.berth(&["start", "groups"]));
    let ids = |extra: &[&str], pid: &str| {
        let path = format!("/proc/{pid}/status");
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["groups", "grep", "-E", "^(Uid|Gid|Groups)", &path]);
        ok(&d.berth(&args))
    };
    let init = ids(&[], "1");
    assert!(init.contains("Groups:\t44"), "{init}");
    assert_eq!(ids(&[], "self"), init);
    let root = ids(&["-u", "0"], "self");
    assert!(root.starts_with("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"), "{root}");
    assert!(root.lines().any(|l| l.starts_with("Groups:") && l.split_whitespace().any(|g| g == "44")), "{root}");
    ok(&d.berth(&["rm", "-f", "groups"]));
}

#[test]
fn a_syscall_the_profile_denies_fails_in_an_exec() {
    let d = setup();
    let profile = d.dir.path().join("nomkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    ok(&d.berth(&["run", "-d", "--name", "nomkdir", "--security-opt", &opt, "busybox", "sleep", "1000"]));
    ok(&d.berth(&["run", "-d", "--name", "dflt", "busybox", "sleep", "1000"]));
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "unconf",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "sleep",
        "1000",
    ]));

    for extra in [&[][..], &["-u", "1000"][..], &["--privileged"][..]] {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["nomkdir", "mkdir", "/tmp/x"]);
        let out = d.berth(&args);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: mkdir got through the filter: {}", text(&out.stdout));
        assert!(text(&out.stderr).contains("Operation not permitted"), "{extra:?}: {}", text(&out.stderr));
    }
    ok(&d.berth(&["exec", "dflt", "mkdir", "/tmp/x"]));

    // The default profile refuses a user namespace to a container without CAP_SYS_ADMIN,
    // in an exec as in the container; unconfined lets it through where the host allows it.
    let out = d.berth(&["exec", "dflt", "unshare", "-U", "true"]);
    assert!(!out.status.success(), "default profile let unshare(CLONE_NEWUSER) through an exec");
    assert!(text(&out.stderr).contains("Operation not permitted"), "{}", text(&out.stderr));
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if userns > 0 {
        ok(&d.berth(&["exec", "unconf", "unshare", "-U", "true"]));
    }
    for name in ["nomkdir", "dflt", "unconf"] {
        ok(&d.berth(&["rm", "-f", name]));
    }
}
