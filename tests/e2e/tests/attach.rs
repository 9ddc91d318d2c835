//! Detach keys: ctrl-p ctrl-q (or `--detach-keys`, or `detachKeys` in the client's config
//! file, or the API's `detachKeys` query parameter) end an attach, `run -it` or
//! `exec -it` session and leave the container running; with our CLI, the docker CLI and
//! a raw API client.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::{Daemon, berth_bin, have_docker, ok, text};

/// Runs `program args` under a pseudo-terminal, typing each input after its delay; returns
/// the exit code and what the terminal showed.
fn in_pty(d: &Daemon, program: &str, args: &str, inputs: &[(u64, &[u8])]) -> (Option<i32>, String) {
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
    let inputs: Vec<(u64, Vec<u8>)> = inputs.iter().map(|(t, b)| (*t, b.to_vec())).collect();
    let writer = std::thread::spawn(move || {
        for (delay, bytes) in inputs {
            std::thread::sleep(Duration::from_millis(delay));
            let _ = stdin.write_all(&bytes);
            let _ = stdin.flush();
        }
        // Keep the terminal open a while: a session that did not detach would block here.
        std::thread::sleep(Duration::from_millis(3000));
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (out.status.code(), text(&out.stdout))
}

fn running(d: &Daemon, name: &str) -> bool {
    ok(&d.berth(&["inspect", "-f", "{{.State.Running}}", name])).trim() == "true"
}

#[test]
fn ctrl_p_ctrl_q_detaches_run_attach_and_exec() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let berth = berth_bin().display().to_string();
    // run -it: the session ends quietly with 0, the container runs on.
    let (code, out) =
        in_pty(&d, &berth, "run -it --name box busybox sh", &[(1500, b"echo first-$((1+1))\n"), (800, b"\x10\x11")]);
    assert!(out.contains("first-2"), "{out}");
    assert_eq!(code, Some(0), "{out}");
    assert!(running(&d, "box"));
    // attach: the same keys end it ("read escape sequence", 1, as docker's attach).
    let (code, out) = in_pty(&d, &berth, "attach box", &[(1000, b"echo again-$((2+2))\n"), (800, b"\x10\x11")]);
    assert!(out.contains("again-4"), "{out}");
    assert!(out.contains("read escape sequence"), "{out}");
    assert_eq!(code, Some(1), "{out}");
    assert!(running(&d, "box"));
    // --detach-keys, and a lone ctrl-p that is not the sequence reaches the shell.
    let (code, out) =
        in_pty(&d, &berth, "attach --detach-keys ctrl-a,x box", &[(1000, b"echo keys-$((3+3))\n"), (500, b"\x01x")]);
    assert!(out.contains("keys-6"), "{out}");
    assert_eq!(code, Some(1), "{out}");
    assert!(running(&d, "box"));
    // detachKeys from the client's config file.
    let cfg = d.dir.path().join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), r#"{"detachKeys": "ctrl-e,e"}"#).unwrap();
    let (code, out) = in_pty(&d, &berth, "attach box", &[(1000, b"echo conf-$((4+4))\n"), (500, b"\x05e")]);
    assert!(out.contains("conf-8"), "{out}");
    assert_eq!(code, Some(1), "{out}");
    // exec -it detaches too, leaving the exec's process running.
    let (code, out) = in_pty(&d, &berth, "exec -it box sh", &[(1000, b"echo in-exec\n"), (500, b"\x05e")]);
    assert!(out.contains("in-exec"), "{out}");
    assert_eq!(code, Some(1), "{out}");
    std::fs::remove_file(cfg.join("config.json")).unwrap();
    assert!(running(&d, "box"));
    if have_docker() {
        let docker = berth_e2e::docker_bin();
        let (code, out) = in_pty(&d, docker, "attach box", &[(1500, b"echo docker-$((5+5))\n"), (800, b"\x10\x11")]);
        assert!(out.contains("docker-10"), "{out}");
        assert_eq!(code, Some(1), "{out}");
        assert!(running(&d, "box"));
        let (code, out) =
            in_pty(&d, docker, "run -it --name dbox busybox sh", &[(1500, b"echo drun\n"), (800, b"\x10\x11")]);
        assert!(out.contains("drun"), "{out}");
        assert_eq!(code, Some(0), "{out}");
        assert!(running(&d, "dbox"));
    }
    // The shell is still there and answers.
    assert_eq!(ok(&d.berth(&["exec", "box", "echo", "alive"])), "alive\n");
}

/// The daemon watches attached stdin itself: a raw API client (no terminal, no CLI) that
/// sends the `detachKeys` sequence sees its stream closed; the container keeps running
/// and got only what came before the keys.
#[test]
fn the_daemon_ends_an_attach_at_the_detach_keys() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let id = ok(&d.berth(&["run", "-d", "-i", "--name", "cat", "busybox", "sh", "-c", "cat > /tmp/in"]));
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "POST /containers/{}/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-a,d HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
        id.trim()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1);
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s.write_all(b"kept\x01dropped").unwrap();
    let mut rest = Vec::new();
    // The daemon closes the stream: read ends (no timeout error).
    s.read_to_end(&mut rest).unwrap();
    assert!(running(&d, "cat"));
    assert_eq!(ok(&d.berth(&["exec", "cat", "cat", "/tmp/in"])), "kept");
    // A bad sequence is refused before the upgrade.
    let out = d.berth(&["attach", "--detach-keys", "ctrl-foo", "cat"]);
    assert!(text(&out.stderr).contains("invalid detach keys"), "{}", text(&out.stderr));
}
