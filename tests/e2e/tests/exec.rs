//! `exec` end to end: with our CLI, the docker CLI and docker-py's `exec_run`, a command in
//! a running container sees its namespaces, cgroup, env, user and workdir; exit codes are
//! the command's own or Docker's 126/127; a stopped container is a 409; `-i` forwards stdin
//! to EOF; `-t` gives a terminal; `-d` detaches; the exec survives a daemon killed with -9.

use std::process::{Command, Stdio};

use berth_e2e::{Daemon, berth_bin, have_docker, ok, text};

fn running(d: &Daemon, name: &str) {
    ok(&d.berth(&["run", "-d", "--name", name, "-e", "FROM_RUN=1", "-w", "/srv", "busybox", "sleep", "1000"]));
}

#[test]
fn exec_with_our_cli() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    running(&d, "box");
    assert_eq!(ok(&d.berth(&["exec", "box", "echo", "hello"])), "hello\n");
    // The container's env and workdir; the same pid namespace and cgroup as its init.
    let out =
        ok(&d.berth(&["exec", "box", "sh", "-c", "echo $FROM_RUN $HOSTNAME; pwd; cat /proc/1/cmdline | tr '\\0' ' '"]));
    let inspect = ok(&d.berth(&["inspect", "-f", "{{.Config.Hostname}}", "box"]));
    assert_eq!(out, format!("1 {}\n/srv\nsleep 1000 ", inspect.trim()));
    let pid = ok(&d.berth(&["inspect", "-f", "{{.State.Pid}}", "box"]));
    let host_cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let out = ok(&d.berth(&["exec", "-d", "box", "sh", "-c", "echo $$ > /tmp/pid; sleep 30"]));
    assert_eq!(out, "");
    let mut exec_pid = String::new();
    for _ in 0..50 {
        exec_pid = text(&d.berth(&["exec", "box", "cat", "/tmp/pid"]).stdout);
        if !exec_pid.trim().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!exec_pid.trim().is_empty(), "the detached exec ran");
    // Overrides: user, workdir, env.
    let out = ok(&d.berth(&[
        "exec",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "-e",
        "FROM_RUN=2",
        "box",
        "sh",
        "-c",
        "id -u; id -g; pwd; echo $FROM_RUN",
    ]));
    assert_eq!(out, "1000\n1000\n/tmp\n2\n");
    // --privileged gives every capability; without it the container's set applies.
    let caps = |args: &[&str]| {
        let out = ok(&d.berth(args));
        u64::from_str_radix(out.trim().rsplit('\t').next().unwrap_or("").trim(), 16).unwrap()
    };
    let plain = caps(&["exec", "box", "sh", "-c", "grep CapEff /proc/self/status"]);
    let full = caps(&["exec", "--privileged", "box", "sh", "-c", "grep CapEff /proc/self/status"]);
    assert!(full.count_ones() > plain.count_ones() && full & plain == plain, "{plain:x} {full:x}");
    assert_eq!(plain & (1 << 21), 0, "no CAP_SYS_ADMIN without --privileged");
    // The exec runs in the container's cgroup (a host view of the same path).
    let ids = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "box"]));
    assert!(host_cg.contains(&format!("/berth/{}", ids.trim())), "{host_cg}");
    // Exit codes.
    assert_eq!(d.berth(&["exec", "box", "sh", "-c", "exit 3"]).status.code(), Some(3));
    let out = d.berth(&["exec", "box", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("executable file not found in $PATH"), "{}", text(&out.stdout));
    assert_eq!(d.berth(&["exec", "box", "/etc/passwd"]).status.code(), Some(126));
    // stdin to EOF.
    let out = d.berth_with_stdin(&["exec", "-i", "box", "sh", "-c", "cat; echo done"], b"line1\nline2\n");
    assert_eq!(ok(&out), "line1\nline2\ndone\n");
    // ExecIDs lists the detached exec still running.
    let ids = ok(&d.berth(&["inspect", "-f", "{{len .ExecIDs}}", "box"]));
    assert_eq!(ids.trim(), "1");
    // A stopped container: 409 with Docker's words, exit 1.
    ok(&d.berth(&["kill", "box"]));
    ok(&d.berth(&["wait", "box"]));
    let out = d.berth(&["exec", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let id = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "box"]));
    assert!(text(&out.stderr).contains(&format!("container {} is not running", id.trim())), "{}", text(&out.stderr));
    let out = d.berth(&["exec", "nosuch", "true"]);
    assert!(text(&out.stderr).contains("No such container: nosuch"), "{}", text(&out.stderr));
}

#[test]
fn exec_with_the_docker_cli_and_docker_py() {
    if !have_docker() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    running(&d, "box");
    assert_eq!(ok(&d.docker(&["exec", "box", "echo", "hi"])), "hi\n");
    let out = d.docker(&["exec", "box", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!((out.status.code(), text(&out.stdout), text(&out.stderr)), (Some(3), "out\n".into(), "err\n".into()));
    let out = d.docker(&["exec", "box", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(text(&out.stdout).contains("executable file not found"), "{}", text(&out.stdout));
    assert_eq!(d.docker(&["exec", "box", "/etc"]).status.code(), Some(126));
    let out = d.docker_with_stdin(&["exec", "-i", "box", "cat"], b"through docker\n");
    assert_eq!(ok(&out), "through docker\n");
    ok(&d.docker(&["exec", "-d", "box", "sh", "-c", "echo bg > /tmp/bg"]));
    // docker-py: exec_run, its exit code and output, and exec_inspect.
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1]).containers.get("box")
r = c.exec_run(["sh", "-c", "echo py-$((40+2)); exit 4"])
print(r.exit_code, r.output.decode().strip())
api = docker.APIClient(base_url=sys.argv[1])
e = api.exec_create("box", ["sh", "-c", "exit 5"])
api.exec_start(e["Id"])
i = api.exec_inspect(e["Id"])
print(i["ExitCode"], i["Running"], i["ContainerID"] == c.id, i["ProcessConfig"]["entrypoint"])
"#;
    let out = Command::new("python3").args(["-c", script, &d.host()]).output().unwrap();
    assert_eq!(ok(&out), "4 py-42\n5 False True sh\n", "{}", text(&out.stderr));
    ok(&d.docker(&["stop", "-t", "0", "box"]));
    let out = d.docker(&["exec", "box", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not running"), "{}", text(&out.stderr));
}

fn in_pty(d: &Daemon, program: &str, args: &str, input: &str) -> (Option<i32>, String) {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{program} {args}"), "/dev/null"])
        .env("BERTH_HOST", d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("script");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = stdin.write_all(input.as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(2500));
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (out.status.code(), text(&out.stdout))
}

#[test]
fn exec_it_under_a_pty() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    running(&d, "box");
    let berth = berth_bin().display().to_string();
    let (code, out) = in_pty(&d, &berth, "exec -it box sh", "echo pty-$((6*7)); tty; exit 7\n");
    assert!(out.contains("pty-42"), "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");
    assert_eq!(code, Some(7), "{out}");
    if have_docker() {
        let (code, out) = in_pty(&d, berth_e2e::docker_bin(), "exec -it box sh", "echo pty-$((6*7)); tty; exit 8\n");
        assert!(out.contains("pty-42") && out.contains("/dev/pts/"), "{out}");
        assert_eq!(code, Some(8), "{out}");
    }
}

#[test]
fn an_exec_outlives_a_killed_daemon() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    running(&d, "box");
    ok(&d.berth(&["exec", "-d", "box", "sh", "-c", "sleep 2; echo survived > /tmp/mark; exit 6"]));
    ok(&d.berth(&["exec", "-d", "box", "sh", "-c", "sleep 5; exit 9"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ids: Vec<String> = serde_json::from_str(&ok(&d.berth(&["inspect", "-f", "{{json .ExecIDs}}", "box"]))).unwrap();
    assert_eq!(ids.len(), 2);
    d.restart(true);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(ok(&d.berth(&["exec", "box", "cat", "/tmp/mark"])), "survived\n");
    // The new daemon knows both execs: the one that ended while no daemon listened, with
    // the code its shim recorded, and the one still running, followed to its end.
    let inspect = |id: &str| -> serde_json::Value {
        let out = std::process::Command::new("curl")
            .args(["-s", "--unix-socket", d.socket.to_str().unwrap(), &format!("http://x/exec/{id}/json")])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let states: Vec<serde_json::Value> = ids.iter().map(|i| inspect(i)).collect();
    let codes: Vec<(bool, serde_json::Value)> =
        states.iter().map(|s| (s["Running"] == true, s["ExitCode"].clone())).collect();
    assert!(codes.contains(&(false, serde_json::json!(6))), "{states:?}");
    assert!(codes.contains(&(true, serde_json::Value::Null)), "{states:?}");
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let codes: Vec<serde_json::Value> = ids.iter().map(|i| inspect(i)["ExitCode"].clone()).collect();
    assert!(codes.contains(&serde_json::json!(9)) && codes.contains(&serde_json::json!(6)), "{codes:?}");
    assert_eq!(ok(&d.berth(&["inspect", "-f", "{{json .ExecIDs}}", "box"])).trim(), "null");
}

/// `logs` right after `start` of a short container holds its output, every time: the
/// start is answered once the command has run far enough to settle, its output logged.
#[test]
fn logs_right_after_start_never_miss_output() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let mut missed = Vec::new();
    for i in 0..100 {
        let id = ok(&d.berth(&["create", "busybox", "echo", &format!("line {i}")]));
        ok(&d.berth(&["start", id.trim()]));
        let logs = ok(&d.berth(&["logs", id.trim()]));
        if logs != format!("line {i}\n") {
            missed.push((i, logs));
        }
        ok(&d.berth(&["rm", "-f", id.trim()]));
    }
    assert!(missed.is_empty(), "{} of 100 missed: {missed:?}", missed.len());
}

/// A command that lives on a bind mount is found as the runtime sees the container's
/// mounts (Docker's 127 still applies to what is found nowhere).
#[test]
fn a_command_on_a_mount_runs() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let tools = d.dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::copy("/bin/busybox", tools.join("busybox")).unwrap();
    let bind = format!("{}:/hb:ro", tools.display());
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "-v", &bind, "busybox", "/hb/busybox", "echo", "from-mount"])),
        "from-mount\n"
    );
    let out = d.berth(&["run", "--rm", "-v", &bind, "-e", "PATH=/hb:/bin", "busybox", "busybox", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d.berth(&["run", "--rm", "-v", &bind, "busybox", "/hb/nope"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no such file or directory"), "{}", text(&out.stderr));
    // exec too.
    ok(&d.berth(&["run", "-d", "--name", "mnt", "-v", &bind, "busybox", "sleep", "100"]));
    assert_eq!(ok(&d.berth(&["exec", "mnt", "/hb/busybox", "echo", "exec-mount"])), "exec-mount\n");
}

/// An unknown command is refused in docker's words, exit 1.
#[test]
fn unknown_commands_say_so_as_docker_does() {
    let d = Daemon::start();
    let out = d.berth(&["frobnicate", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "berth: unknown command: berth frobnicate\n\nRun 'berth --help' for more information\n"
    );
    if have_docker() {
        let out = d.docker(&["frobnicate", "x"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            text(&out.stderr),
            "docker: unknown command: docker frobnicate\n\nRun 'docker --help' for more information\n"
        );
    }
}
