//! `run` semantics through both our CLI and the real docker CLI: output, exit codes,
//! env, workdir, user, entrypoint, bind mounts, stdin, ps.

use berth_e2e::{Daemon, have_docker, ok, text};
use std::process::Output;

/// Which client drives the daemon.
#[derive(Clone, Copy, Debug)]
enum Cli {
    Berth,
    Docker,
}

fn clis() -> Vec<Cli> {
    if have_docker() { vec![Cli::Berth, Cli::Docker] } else { vec![Cli::Berth] }
}

fn run(d: &Daemon, cli: Cli, args: &[&str]) -> Output {
    match cli {
        Cli::Berth => d.berth(args),
        Cli::Docker => d.docker(args),
    }
}

fn setup() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    d
}

#[test]
fn run_prints_output_and_propagates_exit_codes() {
    let d = setup();
    for cli in clis() {
        let out = run(&d, cli, &["run", "--rm", "busybox", "echo", "hi"]);
        assert_eq!(ok(&out), "hi\n", "{cli:?}");
        let out = run(&d, cli, &["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
        assert_eq!(out.status.code(), Some(3), "{cli:?}: {}", text(&out.stderr));
        let out = run(&d, cli, &["run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2"]);
        assert_eq!(ok(&out), "out\n", "{cli:?}");
        assert!(text(&out.stderr).contains("err"), "{cli:?}: stderr kept apart: {}", text(&out.stderr));
        let out = run(&d, cli, &["run", "busybox", "nosuchcmd"]);
        assert_eq!(out.status.code(), Some(127), "{cli:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("executable file not found"), "{cli:?}: {}", text(&out.stderr));
        let out = run(&d, cli, &["run", "--rm", "busybox", "/etc/passwd"]);
        assert_eq!(out.status.code(), Some(126), "{cli:?}: {}", text(&out.stderr));
    }
    // --rm removed every container it ran; the failed start without --rm stays, as Docker.
    let ps = ok(&d.berth(&["ps", "-a", "--format", "{{.Command}} {{.Status}}"]));
    assert_eq!(ps.lines().count(), clis().len(), "{ps}");
    assert!(ps.lines().all(|l| l.contains("nosuchcmd") && l.contains("Created")), "{ps}");
}

#[test]
fn env_workdir_user_entrypoint() {
    let d = setup();
    let env_file = d.dir.path().join("env.list");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    for cli in clis() {
        let out = run(
            &d,
            cli,
            &[
                "run",
                "--rm",
                "-e",
                "GREETING=hello world",
                "--env-file",
                env_file.to_str().unwrap(),
                "busybox",
                "sh",
                "-c",
                "echo \"$GREETING $FROM_FILE\"",
            ],
        );
        assert_eq!(ok(&out), "hello world yes\n", "{cli:?}");
        let out = run(&d, cli, &["run", "--rm", "-w", "/srv/app", "busybox", "pwd"]);
        assert_eq!(ok(&out), "/srv/app\n", "{cli:?}: a missing workdir is created");
        let out = run(&d, cli, &["run", "--rm", "--user", "1000:1000", "busybox", "sh", "-c", "id -u; id -g"]);
        assert_eq!(ok(&out), "1000\n1000\n", "{cli:?}");
        let out = run(&d, cli, &["run", "--rm", "--user", "nobody", "busybox", "id", "-u"]);
        assert_eq!(ok(&out), "65534\n", "{cli:?}: names resolve in the image's /etc/passwd");
        let out = run(&d, cli, &["run", "--rm", "--user", "nosuchuser", "busybox", "true"]);
        assert_ne!(out.status.code(), Some(0), "{cli:?}");
        assert!(text(&out.stderr).contains("nosuchuser"), "{cli:?}: {}", text(&out.stderr));
        let out = run(&d, cli, &["run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint"]);
        assert_eq!(ok(&out), "from entrypoint\n", "{cli:?}");
        let out = run(&d, cli, &["run", "--rm", "--hostname", "trainer", "busybox", "hostname"]);
        assert_eq!(ok(&out), "trainer\n", "{cli:?}");
    }
}

#[test]
fn bind_mounts_read_write_and_read_only() {
    let d = setup();
    for cli in clis() {
        let host = d.dir.path().join(format!("artifacts-{cli:?}"));
        let spec = format!("{}:/app/artifacts", host.display());
        let out =
            run(&d, cli, &["run", "--rm", "-v", &spec, "busybox", "sh", "-c", "echo model > /app/artifacts/model.txt"]);
        ok(&out);
        assert_eq!(
            std::fs::read_to_string(host.join("model.txt")).unwrap(),
            "model\n",
            "{cli:?}: written through the bind"
        );
        let ro = format!("{spec}:ro");
        let out = run(&d, cli, &["run", "--rm", "-v", &ro, "busybox", "sh", "-c", "echo x > /app/artifacts/y"]);
        assert_ne!(out.status.code(), Some(0), "{cli:?}: ro bind refuses writes");
        assert!(text(&out.stderr).contains("Read-only file system"), "{cli:?}: {}", text(&out.stderr));
        let m = format!("type=bind,source={},target=/data,readonly", host.display());
        let out = run(&d, cli, &["run", "--rm", "--mount", &m, "busybox", "cat", "/data/model.txt"]);
        assert_eq!(ok(&out), "model\n", "{cli:?}");
    }
    // Relative paths are resolved by our CLI against its working directory.
    let work = d.dir.path().join("proj");
    std::fs::create_dir_all(&work).unwrap();
    let out = d
        .berth_cmd(&["run", "--rm", "-v", "./artifacts:/out", "busybox", "touch", "/out/done"])
        .current_dir(&work)
        .output()
        .unwrap();
    ok(&out);
    assert!(work.join("artifacts/done").exists());
}

#[test]
fn stdin_is_forwarded_with_i() {
    let d = setup();
    let out = d.berth_with_stdin(&["run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z"], b"shout\n");
    assert_eq!(ok(&out), "SHOUT\n");
    if have_docker() {
        let out = d.docker_with_stdin(&["run", "--rm", "-i", "busybox", "wc", "-l"], b"a\nb\nc\n");
        assert_eq!(ok(&out).trim(), "3");
    }
}

#[test]
fn ps_shows_exited_containers_with_docker_columns() {
    let d = setup();
    let out = d.berth(&["run", "--name", "job1", "busybox", "sh", "-c", "exit 2"]);
    assert_eq!(out.status.code(), Some(2));
    let ps = ok(&d.berth(&["ps", "-a"]));
    let header = ps.lines().next().unwrap();
    for col in ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
        assert!(header.contains(col), "missing {col} in {header}");
    }
    let row = ps.lines().find(|l| l.contains("job1")).unwrap_or_else(|| panic!("{ps}"));
    assert!(row.contains("Exited (2)") && row.contains("busybox"), "{row}");
    assert!(!ok(&d.berth(&["ps"])).contains("job1"), "plain ps lists running containers only");
    if have_docker() {
        let ps = ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.Image}}"]));
        assert!(ps.lines().any(|l| l.starts_with("job1|Exited (2)") && l.ends_with("|busybox")), "{ps}");
        let f = ok(&d.docker(&["ps", "-a", "-q", "--filter", "status=exited"]));
        assert_eq!(f.lines().count(), 1, "{f}");
    }
    let out = d.berth(&["run", "--name", "job1", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("is already in use"), "{}", text(&out.stderr));
}

#[test]
fn hello_world_works_without_a_registry() {
    let d = Daemon::start();
    let out = d.berth(&["run", "--rm", "hello-world"]);
    assert!(ok(&out).contains("Hello from berth!"));
    if have_docker() {
        assert!(ok(&d.docker(&["run", "--rm", "hello-world"])).contains("Hello from berth!"));
    }
}

#[test]
fn privileged_and_tmpfs_containers() {
    let d = setup();
    for cli in clis() {
        // Every capability the daemon itself holds (this host withholds some: asking for
        // those must not make the container fail to start).
        let out = run(
            &d,
            cli,
            &[
                "run",
                "--rm",
                "--privileged",
                "busybox",
                "sh",
                "-c",
                "mkdir -p /m && mount -t tmpfs none /m && echo mounted",
            ],
        );
        assert_eq!(ok(&out), "mounted\n", "{cli:?}");
        let out = run(
            &d,
            cli,
            &[
                "run",
                "--rm",
                "--tmpfs",
                "/scratch:size=1m",
                "busybox",
                "sh",
                "-c",
                "grep -c ' /scratch tmpfs ' /proc/mounts",
            ],
        );
        assert_eq!(ok(&out), "1\n", "{cli:?}");
    }
}

/// `run --rm` answers once the container is gone from the API; its files go to
/// `containers/.trash` and are deleted right after, leaving nothing behind.
#[test]
fn run_rm_leaves_no_files_behind() {
    let d = setup();
    let containers = d.data_root.join("containers");
    for cli in clis() {
        let out = run(&d, cli, &["run", "--rm", "--name", "gone", "busybox", "sh", "-c", "echo hi > /f; echo done"]);
        assert_eq!(text(&out.stdout), "done\n", "{cli:?}");
        // The name is free at once.
        ok(&d.berth(&["create", "--name", "gone", "busybox", "true"]));
        ok(&d.berth(&["rm", "gone"]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left: Vec<String> = std::fs::read_dir(&containers)
                .unwrap()
                .chain(std::fs::read_dir(containers.join(".trash")).into_iter().flatten())
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".trash")
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{cli:?}: left behind: {left:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    // The trash directory itself is no stray container directory.
    assert!(ok(&d.berth(&["system", "check"])).starts_with("No problems found in "));
    // The runtime's state goes too (its shim deletes it after reporting the exit).
    let runtime = d.exec_root.join("runtime");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir(&runtime)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "runtime state left behind: {left:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A container started again the moment it exited: its shim reports the exit before it
/// has deleted the runtime's state of that run, and the next start of the same id waits for
/// that delete (without the wait, libcontainer refuses: the container already exists).
#[test]
fn a_container_started_again_at_once_after_its_exit() {
    let d = setup();
    ok(&d.berth(&["create", "--name", "again", "busybox", "sh", "-c", "echo run"]));
    for i in 0..25 {
        let out = d.berth(&["start", "-a", "again"]);
        assert!(out.status.success(), "start {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "run\n", "start {i}");
    }
    // The same when the container lived long enough for its shim to become the monitor,
    // which then reports the exit itself and leaves the delete to the shim it hands back to.
    ok(&d.berth(&["create", "--name", "slow", "busybox", "sh", "-c", "sleep 0.3; echo late; exit 3"]));
    for i in 0..5 {
        let out = d.berth(&["start", "-a", "slow"]);
        assert_eq!(out.status.code(), Some(3), "start {i}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "late\n", "start {i}");
        assert_eq!(ok(&d.berth(&["inspect", "--format", "{{.State.ExitCode}}", "slow"])).trim(), "3");
    }
    ok(&d.berth(&["rm", "slow"]));
    // And the quickest path there is: `restart` of a container that just exited.
    for i in 0..10 {
        ok(&d.berth(&["start", "again"]));
        let out = d.berth(&["restart", "-t", "0", "again"]);
        assert!(out.status.success(), "restart {i}: {}", text(&out.stderr));
    }
    ok(&d.berth(&["rm", "-f", "again"]));
}
