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
