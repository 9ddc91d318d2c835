//! `run -it` through a real pseudo-terminal (util-linux `script` gives the CLI a tty), with
//! our CLI and with the docker CLI.

use berth_e2e::{Daemon, berth_bin, have_docker, text};
use std::io::Write;
use std::process::{Command, Stdio};

fn run_in_pty(d: &Daemon, program: &str, extra_env: &[(&str, String)], input: &str) -> (Option<i32>, String) {
    let cmdline = format!("{program} run -it --rm busybox sh");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &cmdline, "/dev/null"])
        .env("BERTH_HOST", d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("script");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        // Give the container a moment to start so the shell reads our line from its tty.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = stdin.write_all(input.as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(3000));
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (out.status.code(), text(&out.stdout))
}

#[test]
fn interactive_tty_session() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let berth = berth_bin().display().to_string();
    let (code, out) = run_in_pty(&d, &berth, &[], "echo tty-$((6*7)); tty; exit 5\n");
    assert!(out.contains("tty-42"), "{out}");
    assert!(out.contains("/dev/pts/"), "the shell has a terminal: {out}");
    assert_eq!(code, Some(5), "{out}");
    if have_docker() {
        let (code, out) =
            run_in_pty(&d, berth_e2e::docker_bin(), &[("DOCKER_HOST", d.host())], "echo tty-$((6*7)); exit 6\n");
        assert!(out.contains("tty-42"), "{out}");
        assert_eq!(code, Some(6), "{out}");
    }
}

/// Runs `stty cols 123 rows 45; <line>` under a pseudo-terminal and returns what it printed.
fn sized_pty(d: &Daemon, line: &str) -> String {
    let cmdline = format!("stty cols 123 rows 45; {line}");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &cmdline, "/dev/null"])
        .env("BERTH_HOST", d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("script");
    // Nothing is typed; stdin stays open until the command is done.
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    text(&out.stdout)
}

/// The command of `run -it` (and of berth's `exec -it`) sees the client's terminal size
/// from its first instruction: the size goes with the create (`HostConfig.ConsoleSize`,
/// or the exec's) and is set before the command starts, not by the resize that follows.
#[test]
fn the_command_sees_the_terminals_size_from_its_start() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let berth = berth_bin().display().to_string();
    let mut clis = vec![berth.clone()];
    if have_docker() {
        clis.push(berth_e2e::docker_bin().to_owned());
    }
    for cli in &clis {
        for _ in 0..2 {
            let out = sized_pty(&d, &format!("{cli} run --rm -it --network none busybox stty size"));
            assert!(out.contains("45 123"), "{cli} run -it: {out:?}");
        }
    }
    let out = sized_pty(&d, &format!("{berth} run -d -it --name sized --network none busybox sh"));
    assert!(!out.contains("Error"), "{out}");
    for extra in ["", "--privileged"] {
        for _ in 0..2 {
            let out = sized_pty(&d, &format!("{berth} exec -it {extra} sized stty size"));
            assert!(out.contains("45 123"), "exec -it {extra}: {out:?}");
        }
    }
}
