//! Confinement a container cannot undo (issue 12, defects 2, 7 and parts of 8): its own
//! resource limits behind a read-only cgroup filesystem, `--security-opt` applied or
//! refused in Docker's words, Docker's memory floor, `--privileged`'s writable `/sys`, and
//! generated names that survive concurrent creates. Each test performs the attack.

use std::process::{Command, Output};

use berth_e2e::{Daemon, have_docker, ok, text};

fn setup() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    d
}

/// Sends one JSON request with curl over the daemon's socket; returns (status, body).
fn post_json(d: &Daemon, path: &str, body: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "-H", "Content-Type: application/json", "-d", body])
        .args(["-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("run curl");
    let out = ok(&out);
    let (body, code) = out.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_owned())
}

/// A shell script that tries to write `value` into each of `files` that exists in the
/// container, printing `WROTE <file>` when the write lands and `<file>=<content>` after.
fn raise(value: &str, files: &[&str]) -> String {
    format!(
        "for f in {}; do [ -e $f ] || continue; if echo {value} > $f; then echo WROTE $f; fi; echo $f=$(cat $f); done",
        files.join(" ")
    )
}

const MEMORY_FILES: &[&str] = &[
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/unified/memory.max",
];
const PIDS_FILES: &[&str] =
    &["/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/unified/pids.max"];

#[test]
fn a_container_cannot_raise_its_own_limits() {
    let d = setup();
    // -m 32m: the attack raises the limit to 1 GiB from inside.
    let out = ok(&d.berth(&["run", "--rm", "-m", "32m", "busybox", "sh", "-c", &raise("1073741824", MEMORY_FILES)]));
    assert!(!out.contains("WROTE"), "a memory limit was raised from inside: {out}");
    let limits: Vec<&str> = out.lines().filter(|l| !l.contains("memsw")).collect();
    assert!(!limits.is_empty(), "no memory limit file in the container: {out}");
    assert!(limits.iter().all(|l| l.ends_with("=33554432")), "limit changed: {out}");

    // --pids-limit 10: the attack lifts it.
    let out = ok(&d.berth(&["run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c", &raise("max", PIDS_FILES)]));
    assert!(!out.contains("WROTE"), "the pids limit was lifted from inside: {out}");
    assert!(!out.is_empty() && out.lines().all(|l| l.ends_with("=10")), "pids limit changed: {out}");

    // On the host's network /sys is the host's, bound, with the host's cgroup mounts under
    // libcontainer's: the visible ones are read-only all the same.
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        &raise("1073741824", MEMORY_FILES),
    ]));
    assert!(!out.contains("WROTE"), "a memory limit was raised from inside (host network): {out}");

    // Nor can it make a cgroup of its own, or remount the hierarchy writable.
    let script = "mkdir /sys/fs/cgroup/escape 2>/dev/null && echo MADE; \
                  for m in /sys/fs/cgroup /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do \
                    [ -d $m ] && mount -o remount,rw $m 2>/dev/null && echo REMOUNTED $m; done; \
                  grep -c ' /sys/fs/cgroup[^ ]* [^ ]* rw,' /proc/mounts";
    let out = d.berth(&["run", "--rm", "-m", "32m", "busybox", "sh", "-c", script]);
    let o = text(&out.stdout);
    assert!(!o.contains("MADE") && !o.contains("REMOUNTED"), "{o}");
    assert_eq!(o.trim(), "0", "a cgroup mount is writable in the container: {o}");
}

#[test]
fn privileged_gets_dockers_writable_cgroups_and_sys() {
    let d = setup();
    let script = format!("{}; grep ' /sys ' /proc/mounts", raise("67108864", &MEMORY_FILES[..1]));
    let out = ok(&d.berth(&["run", "--rm", "--privileged", "-m", "32m", "busybox", "sh", "-c", &script]));
    if std::path::Path::new(MEMORY_FILES[0]).exists() {
        assert!(out.contains("WROTE") && out.contains("=67108864"), "{out}");
    }
    assert!(out.contains(" /sys sysfs rw,"), "privileged /sys is read-write as in Docker: {out}");
    let out = ok(&d.berth(&["run", "--rm", "busybox", "grep", " /sys ", "/proc/mounts"]));
    assert!(out.contains(" /sys sysfs ro,"), "{out}");
    // Docker keeps /sys read-only for a privileged container with a read-only root.
    let out =
        ok(&d.berth(&["run", "--rm", "--privileged", "--read-only", "busybox", "grep", " /sys ", "/proc/mounts"]));
    assert!(out.contains(" /sys sysfs ro,"), "{out}");
}

#[test]
fn security_opts_are_applied() {
    let d = setup();
    let profile = d.dir.path().join("nomkdir.json");
    std::fs::write(
        &profile,
        r#"{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [ { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" } ]
}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let mut clis: Vec<fn(&Daemon, &[&str]) -> Output> = vec![Daemon::berth];
    if have_docker() {
        clis.push(Daemon::docker);
    }
    for run in &clis {
        let out = run(&d, &["run", "--rm", "--security-opt", &opt, "busybox", "sh", "-c", "mkdir /x; echo rc=$?"]);
        assert!(text(&out.stdout).contains("rc=1"), "{}{}", text(&out.stdout), text(&out.stderr));
        assert!(text(&out.stderr).contains("Operation not permitted"), "{}", text(&out.stderr));
    }
    let out = ok(&d.berth(&["run", "--rm", "busybox", "sh", "-c", "mkdir /x && echo made"]));
    assert_eq!(out, "made\n");

    // The default profile refuses a user namespace without CAP_SYS_ADMIN; unconfined does not.
    let out = d.berth(&["run", "--rm", "busybox", "unshare", "-U", "true"]);
    assert!(!out.status.success(), "default profile let unshare(CLONE_NEWUSER) through");
    let userns = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if userns > 0 {
        ok(&d.berth(&["run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "unshare", "-U", "true"]));
    }

    for (o, want) in [("no-new-privileges", "1"), ("no-new-privileges=true", "1"), ("no-new-privileges=false", "0")] {
        let out =
            ok(&d.berth(&["run", "--rm", "--security-opt", o, "busybox", "grep", "NoNewPrivs", "/proc/self/status"]));
        assert_eq!(out.split_whitespace().last(), Some(want), "{o}: {out}");
    }
    // No SELinux here: Docker accepts label options silently, and so does berth.
    ok(&d.berth(&["run", "--rm", "--security-opt", "label=disable", "busybox", "true"]));
}

/// `--security-opt systempaths=unconfined` (the client's: empty `MaskedPaths` and
/// `ReadonlyPaths`) leaves /proc and /sys unmasked and writable where the default masks and
/// write-protects them; a list given through the API is the one applied.
#[test]
fn masked_and_read_only_paths_follow_the_host_config() {
    let d = setup();
    // The mount points of /proc/keys (masked) and /proc/sys (read-only) in the container.
    let probe = "grep -cE ' /proc/(keys|sys) ' /proc/self/mountinfo; true";
    let mut clis: Vec<fn(&Daemon, &[&str]) -> Output> = vec![Daemon::berth];
    if have_docker() {
        clis.push(Daemon::docker);
    }
    for run in &clis {
        let out = run(&d, &["run", "--rm", "--network", "none", "busybox", "sh", "-c", probe]);
        assert_eq!(text(&out.stdout), "2\n", "default: {}", text(&out.stderr));
        let out = run(
            &d,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "--security-opt",
                "systempaths=unconfined",
                "busybox",
                "sh",
                "-c",
                probe,
            ],
        );
        assert_eq!(text(&out.stdout), "0\n", "unconfined: {}", text(&out.stderr));
    }
    ok(&d.berth(&["create", "--name", "open", "--security-opt", "systempaths=unconfined", "busybox", "true"]));
    let shown =
        ok(&d.berth(&["inspect", "-f", "{{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}}", "open"]));
    assert_eq!(shown.trim(), "[] []");

    let (code, body) = post_json(
        &d,
        "/containers/create?name=own",
        r#"{"Image": "busybox", "Cmd": ["sh", "-c", "wc -c < /proc/cpuinfo; grep -c ' /proc/sys ' /proc/self/mountinfo; true"],
            "HostConfig": {"NetworkMode": "none", "MaskedPaths": ["/proc/cpuinfo"], "ReadonlyPaths": []}}"#,
    );
    assert_eq!(code, 201, "{body}");
    let out = ok(&d.berth(&["start", "-a", "own"]));
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0"], "cpuinfo masked, /proc/sys left: {out}");
}

#[test]
fn unknown_and_unavailable_security_opts_are_refused() {
    let d = setup();
    let want = r#"invalid --security-opt 2: "bogus=1""#;
    let out = d.berth(&["run", "--rm", "--security-opt", "bogus=1", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    if have_docker() {
        let out = d.docker(&["run", "--rm", "--security-opt", "bogus=1", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125));
        assert!(text(&out.stderr).contains(&format!("Error response from daemon: {want}")), "{}", text(&out.stderr));
    }
    let (code, body) = post_json(
        &d,
        "/v1.41/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"SecurityOpt":["bogus=1"]}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(body.trim(), format!("{{\"message\":{}}}", serde_json::to_string(want).unwrap()));
    let (code, body) = post_json(
        &d,
        "/v1.41/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"SecurityOpt":["no-new-privileges=maybe"]}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains(r#"invalid --security-opt 2: \"no-new-privileges=maybe\""#), "{body}");
    let (code, body) = post_json(
        &d,
        "/v1.41/containers/create",
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"SecurityOpt":["seccomp={not json"]}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Decoding seccomp profile failed"), "{body}");

    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'));
    if !apparmor {
        let out = d.berth(&["run", "--rm", "--security-opt", "apparmor=docker-default", "busybox", "true"]);
        assert_eq!(out.status.code(), Some(125));
        assert!(text(&out.stderr).contains("AppArmor is not enabled on this host"), "{}", text(&out.stderr));
        ok(&d.berth(&["run", "--rm", "--security-opt", "apparmor=unconfined", "busybox", "true"]));
    }
    // Nothing was created by the refused requests.
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
}

#[test]
fn memory_below_dockers_floor_is_refused() {
    let d = setup();
    for m in ["-5", "1", "6291455"] {
        let (code, body) = post_json(
            &d,
            "/v1.41/containers/create",
            &format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"Memory":{m}}}}}"#),
        );
        assert_eq!((code, body.trim()), (400, r#"{"message":"Minimum memory limit allowed is 6MB"}"#), "Memory {m}");
    }
    let out = d.berth(&["run", "--rm", "-m", "1", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("Minimum memory limit allowed is 6MB"), "{}", text(&out.stderr));
    if have_docker() {
        let out = d.docker(&["run", "--rm", "-m", "1", "busybox", "true"]);
        assert!(
            text(&out.stderr).contains("Error response from daemon: Minimum memory limit allowed is 6MB"),
            "{}",
            text(&out.stderr)
        );
    }
    ok(&d.berth(&["run", "--rm", "-m", "6m", "busybox", "true"]));
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
}

#[test]
fn concurrent_unnamed_creates_all_get_a_name() {
    let d = setup();
    let n = 50;
    let results: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| d.berth(&["create", "busybox", "true"]))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let failed: Vec<String> = results.iter().filter(|o| !o.status.success()).map(|o| text(&o.stderr)).collect();
    assert!(failed.is_empty(), "{} of {n} creates failed: {failed:?}", failed.len());
    let names = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}"]));
    let mut names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), n);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "duplicate names: {names:?}");
}

/// The cgroup v1 hierarchies mounted directly under `/sys/fs/cgroup` in a mountinfo text:
/// (directory, controllers or name=…), in order.
fn v1_hierarchies(mountinfo: &str) -> Vec<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            (r.next()? == "cgroup").then_some(())?;
            let name = point.strip_prefix("/sys/fs/cgroup/").filter(|n| !n.contains('/'))?;
            let data: Vec<&str> = r.nth(1)?.split(',').filter(|o| !matches!(*o, "rw" | "ro" | "xattr")).collect();
            Some((name.to_owned(), data.join(",")))
        })
        .collect()
}

/// On a v1 or hybrid host the shim mounts the container's cgroup hierarchies itself (not
/// libcontainer): the container must see what Docker's containers see, every hierarchy of
/// the host in a read-only directory, namespaced (its own cgroup as the root), read-only
/// unless privileged. The directory is the shim's shared skeleton, not a filesystem of the
/// container's own; a privileged container, whose tree is writable, gets its own tmpfs.
#[test]
fn the_cgroup_tree_mirrors_the_hosts_hierarchies() {
    let host = v1_hierarchies(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    let d = setup();
    let script = "grep ' /sys/fs/cgroup' /proc/self/mountinfo; echo ==; cat /proc/self/cgroup";
    let out = ok(&d.berth(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", script]));
    let (mounts, cgroups) = out.split_once("==\n").unwrap();
    if host.is_empty() {
        // A cgroup2-only host: libcontainer's one cgroup2 mount.
        assert!(mounts.contains(" /sys/fs/cgroup ro,") && mounts.contains(" - cgroup2 "), "{mounts}");
        return;
    }
    let lines: Vec<&str> = mounts.lines().collect();
    assert!(lines[0].contains(" /sys/fs/cgroup ro,nosuid,nodev,noexec"), "{mounts}");
    let root = lines[0].split(' ').nth(3).unwrap();
    assert!(root.starts_with("/shared/cgroup-"), "the shared skeleton is bound there: {mounts}");
    assert_eq!(v1_hierarchies(mounts), host, "the container's hierarchies: {mounts}");
    for l in &lines[1..] {
        if l.contains(" - cgroup ") {
            assert!(l.split(' ').nth(5).unwrap().starts_with("ro,nosuid,nodev,noexec"), "{l}");
            assert_eq!(l.split(' ').nth(3), Some("/"), "mounted in the container's cgroup namespace: {l}");
        }
    }
    // Its own cgroup is its root in every hierarchy.
    assert!(cgroups.lines().all(|l| l.ends_with(":/")), "{cgroups}");
    // Co-mounted controllers are reachable by each name, as on the host.
    for (name, _) in host.iter().filter(|(n, _)| n.contains(',')) {
        for part in name.split(',') {
            let link = ok(&d.berth(&["run", "--rm", "busybox", "readlink", &format!("/sys/fs/cgroup/{part}")]));
            assert_eq!(link.trim(), name.as_str());
        }
    }
    // Privileged: the same tree, writable.
    let out =
        ok(&d.berth(&["run", "--rm", "--privileged", "busybox", "grep", " /sys/fs/cgroup", "/proc/self/mountinfo"]));
    assert_eq!(v1_hierarchies(&out), host);
    assert!(out.lines().all(|l| l.split(' ').nth(5).unwrap().starts_with("rw,")), "{out}");
    let first: Vec<&str> = out.lines().next().unwrap().split(' ').collect();
    assert!(first[3] == "/" && out.lines().next().unwrap().contains(" - tmpfs "), "a tmpfs of its own: {out}");
}

/// Docker's masked kernel directories (`/proc/acpi`, `/sys/firmware`, …) are empty and
/// read-only in the container, and cost it no filesystem of its own: each is a bind of the
/// shim's one shared empty directory. A container on `--network none` brings exactly seven
/// filesystems (superblocks) of its own: its root, proc, sysfs, /dev, devpts, mqueue and
/// /dev/shm. Every superblock on the host makes every container start and removal slower.
#[test]
fn masked_directories_are_empty_read_only_binds_of_one_source() {
    let d = setup();
    let dirs: Vec<&str> =
        ["/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
            .into_iter()
            .filter(|p| std::path::Path::new(p).is_dir())
            .collect();
    let script = format!(
        "cat /proc/self/mountinfo; echo ==; for m in {0}; do ls -A $m; done; echo ==; \
         for m in {0}; do mkdir $m/x 2>&1; done; true",
        dirs.join(" ")
    );
    // Read in a running container, with the host's table read before it stops: once its
    // superblocks are gone, their device numbers go to new mounts of other tests.
    ok(&d.berth(&["run", "-d", "--name", "masks", "--network", "none", "busybox", "sleep", "1000"]));
    let out = ok(&d.berth(&["exec", "masks", "sh", "-c", &script]));
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    ok(&d.berth(&["rm", "-f", "masks"]));
    let parts: Vec<&str> = out.split("==\n").collect();
    let (mounts, listed, written) = (parts[0], parts[1], parts[2]);
    assert_eq!(listed.trim(), "", "a masked directory shows something: {listed}");
    assert_eq!(written.lines().filter(|l| l.contains("Read-only file system")).count(), dirs.len(), "{written}");
    for dir in &dirs {
        let line =
            mounts.lines().find(|l| l.split(' ').nth(4) == Some(dir)).unwrap_or_else(|| panic!("{dir}: {mounts}"));
        let f: Vec<&str> = line.split(' ').collect();
        assert!(f[5].starts_with("ro,"), "{line}");
        assert_eq!(f[3], "/shared/empty", "{line}");
    }
    // Superblocks the container has that the host does not.
    // The daemon's mount of this container's root is the container's own.
    let ours = format!("{}/", d.data_root.join("containers").display());
    let host_devs: std::collections::HashSet<&str> = host
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| !m.starts_with(&ours)))
        .filter_map(|l| l.split(' ').nth(2))
        .collect();
    let mut own: Vec<(&str, &str)> = mounts
        .lines()
        .filter_map(|l| {
            let dev = l.split(' ').nth(2)?;
            let fstype = l.split_once(" - ")?.1.split(' ').next()?;
            (!host_devs.contains(dev)).then_some((dev, fstype))
        })
        .collect();
    own.sort();
    own.dedup();
    let mut types: Vec<&str> = own.iter().map(|(_, t)| *t).collect();
    types.sort();
    assert_eq!(types, ["devpts", "mqueue", "overlay", "proc", "sysfs", "tmpfs", "tmpfs"], "{mounts}");
}

/// The shim holds descriptors of its own while it creates a container (its cached handle
/// on a private procfs, sockets, the log): none may reach the container's processes, where
/// a procfs of the host's pid namespace would show every process on the host. The init's
/// command and an exec'd process hold their stdio and nothing else.
#[test]
fn no_descriptor_of_the_shim_reaches_the_container() {
    let d = setup();
    let id = ok(&d.berth(&["run", "-d", "--network", "none", "busybox", "sleep", "60"])).trim().to_owned();
    let init_fds = ok(&d.berth(&["exec", &id, "ls", "/proc/1/fd"]));
    assert_eq!(init_fds.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2"], "the command's fds");
    // `sh -c` execs its last command: `ls` lists its own fds, 3 being the directory it reads.
    let exec_fds = ok(&d.berth(&["exec", &id, "sh", "-c", "ls /proc/$$/fd"]));
    assert_eq!(exec_fds.split_whitespace().collect::<Vec<_>>(), ["0", "1", "2", "3"], "an exec's fds");
    // Whatever the numbers, no descriptor points at a procfs: a link to a proc mount's root
    // reads `/` (or `/proc`), and a detached mount's is unreachable (`cannot read link`).
    let links =
        ok(&d.berth(&["exec", &id, "sh", "-c", "for f in /proc/1/fd/*; do readlink $f || echo unreadable $f; done"]));
    assert!(!links.contains("unreadable") && !links.lines().any(|l| l == "/" || l == "/proc"), "{links}");
    ok(&d.berth(&["rm", "-f", &id]));
}
