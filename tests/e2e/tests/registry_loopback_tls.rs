//! A TLS registry on loopback with no `certs.d`: loopback registries are insecure, so berth
//! tries HTTPS without checking the certificate first and falls back to plain HTTP, as
//! dockerd does. `berth registry serve --tls-cert/--tls-key` on 127.0.0.1 with a self-signed
//! certificate takes a push and serves the pull; the same daemon still reaches a plain-HTTP
//! registry on loopback.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, berth_bin, ok, text};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn serve(root: &Path, port: u16, tls: Option<(&Path, &Path)>) -> Proc {
    let mut cmd = Command::new(berth_bin());
    cmd.args(["registry", "serve", "--addr", &format!("127.0.0.1:{port}"), "--root"]).arg(root);
    if let Some((cert, key)) = tls {
        cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
    }
    let p = Proc(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

fn self_signed(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "srv.key",
            "-out",
            "srv.crt",
        ])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", text(&out.stderr));
}

fn berth(d: &Daemon, args: &[&str]) -> std::process::Output {
    d.berth_cmd(args).env("DOCKER_CONFIG", d.dir.path().join("docker-config")).output().unwrap()
}

#[test]
fn tls_registry_on_loopback_works_without_certs_d() {
    let certs = tempfile::tempdir().unwrap();
    self_signed(certs.path());
    let root = tempfile::tempdir().unwrap();
    let port = free_port();
    let _reg = serve(root.path(), port, Some((&certs.path().join("srv.crt"), &certs.path().join("srv.key"))));

    let d = Daemon::start();
    let name = format!("127.0.0.1:{port}/tls/bb:1");
    d.import_busybox(&name);
    let pushed = ok(&berth(&d, &["push", &name]));
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");
    // It went over TLS: the registry answers nothing useful over plain HTTP.
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/v2/tls/bb/tags/list"))
        .output()
        .unwrap();
    assert_ne!(text(&plain.stdout).trim(), "200", "the registry answered plain HTTP");
    let tags = Command::new("curl")
        .args(["-sk"])
        .arg(format!("https://127.0.0.1:{port}/v2/tls/bb/tags/list"))
        .output()
        .unwrap();
    assert!(text(&tags.stdout).contains("\"1\""), "{}", text(&tags.stdout));

    let id = ok(&d.berth(&["image", "inspect", "--format", "{{.Id}}", &name]));
    ok(&d.berth(&["rmi", &name]));
    let pulled = ok(&berth(&d, &["pull", &name]));
    assert!(pulled.contains("Pull complete"), "{pulled}");
    assert_eq!(ok(&d.berth(&["image", "inspect", "--format", "{{.Id}}", &name])), id);

    // A plain-HTTP registry on loopback is still reached (HTTPS fails below HTTP, then HTTP).
    let root2 = tempfile::tempdir().unwrap();
    let port2 = free_port();
    let _plain = serve(root2.path(), port2, None);
    let name2 = format!("127.0.0.1:{port2}/plain/bb:2");
    ok(&d.berth(&["tag", &name, &name2]));
    let pushed = ok(&berth(&d, &["push", &name2]));
    assert!(pushed.contains("2: digest: sha256:"), "{pushed}");
    ok(&d.berth(&["rmi", &name2]));
    ok(&berth(&d, &["pull", &name2]));
}
