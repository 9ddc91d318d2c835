//! Registries over TLS with per-registry certificates under `certs.d/HOST:PORT/`, as dockerd
//! reads them: `*.crt` CAs to trust (against `berth registry serve --tls-cert/--tls-key`) and
//! `client.cert` + `client.key` client certificates (against Debian's `docker-registry` with
//! `http.tls.clientcas`). Certificates are made by the test with openssl.
//!
//! Loopback registries are insecure by default (as in Docker, which then ignores `certs.d`),
//! so the registry listens on an address of a bridge the test makes and removes.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, berth_bin, ok, text};

/// A Linux bridge with one address, removed on drop.
struct Bridge {
    name: String,
    addr: String,
}

impl Bridge {
    fn new(salt: u32) -> Bridge {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let n = (std::process::id().wrapping_mul(7919) ^ nanos).wrapping_add(salt);
        let name = format!("btls{}", n % 100_000);
        let addr = format!("10.252.{}.{}", (n >> 8) % 250 + 1, n % 250 + 1);
        let run = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        run(&["link", "add", &name, "type", "bridge"]);
        let b = Bridge { name, addr };
        run(&["addr", "add", &format!("{}/32", b.addr), "dev", &b.name]);
        run(&["link", "set", &b.name, "up"]);
        b
    }

    fn free_port(&self) -> u16 {
        TcpListener::bind((self.addr.as_str(), 0)).unwrap().local_addr().unwrap().port()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).status();
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
}

/// A CA, a server certificate for `ip` and a client certificate, all signed by the CA.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn make(ip: &str) -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=berth-test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
            d,
        );
        std::fs::write(d.join("srv.ext"), format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")).unwrap();
        std::fs::write(d.join("cli.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("srv", ip), ("client", "berth-test-client")] {
            openssl(
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
                d,
            );
            let ext = if name == "srv" { "srv.ext" } else { "cli.ext" };
            openssl(
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    ext,
                    "-out",
                    &format!("{name}.crt"),
                ],
                d,
            );
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(addr: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect((addr, port)).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start on {addr}:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn berth(d: &Daemon, args: &[&str]) -> std::process::Output {
    d.berth_cmd(args).env("DOCKER_CONFIG", d.dir.path().join("docker-config")).output().unwrap()
}

#[test]
fn certs_d_ca_makes_a_tls_registry_trusted() {
    let br = Bridge::new(1);
    let certs = Certs::make(&br.addr);
    let port = br.free_port();
    let root = tempfile::tempdir().unwrap();
    let _reg = Proc(
        Command::new(berth_bin())
            .args(["registry", "serve", "--addr", &format!("{}:{port}", br.addr), "--root"])
            .arg(root.path())
            .arg("--tls-cert")
            .arg(certs.path("srv.crt"))
            .arg("--tls-key")
            .arg(certs.path("srv.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(&br.addr, port);
    let certs_d = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(&["--registry-certs-dir", certs_d.path().to_str().unwrap()]);
    let host = format!("{}:{port}", br.addr);
    let name = format!("{host}/tls/bb:1");
    d.import_busybox(&name);

    // Not trusted yet: the push fails on the certificate.
    let out = berth(&d, &["push", &name]);
    assert!(!out.status.success());
    let err = text(&out.stderr).to_ascii_lowercase();
    assert!(err.contains("certificate") || err.contains("unknownissuer"), "{err}");

    // The CA under certs.d/HOST:PORT/ca.crt: trusted, read per request (no restart).
    let dir = certs_d.path().join(&host);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(certs.path("ca.crt"), dir.join("ca.crt")).unwrap();
    let pushed = ok(&berth(&d, &["push", &name]));
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");
    let id = ok(&d.berth(&["image", "inspect", "--format", "{{.Id}}", &name]));
    ok(&d.berth(&["rmi", &name]));
    let pulled = ok(&berth(&d, &["pull", &name]));
    assert!(pulled.contains("Pull complete"), "{pulled}");
    assert_eq!(ok(&d.berth(&["image", "inspect", "--format", "{{.Id}}", &name])), id);

    // A stray key without its certificate is refused, as dockerd refuses it.
    std::fs::copy(certs.path("client.key"), dir.join("stray.key")).unwrap();
    let out = berth(&d, &["pull", &name]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing client certificate"), "{}", text(&out.stderr));
}

#[test]
fn certs_d_client_certificate_is_presented() {
    let br = Bridge::new(500_009);
    let certs = Certs::make(&br.addr);
    let port = br.free_port();
    let store = tempfile::tempdir().unwrap();
    let cfg = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {}:{port}\n  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
        store.path().join("store").display(),
        br.addr,
        certs.path("srv.crt").display(),
        certs.path("srv.key").display(),
        certs.path("ca.crt").display(),
    );
    let cfg_path = store.path().join("config.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let _reg = Proc(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry"),
    );
    wait_port(&br.addr, port);
    let certs_d = tempfile::tempdir().unwrap();
    let host = format!("{}:{port}", br.addr);
    let dir = certs_d.path().join(&host);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(certs.path("ca.crt"), dir.join("ca.crt")).unwrap();
    let d = Daemon::start_with(&["--registry-certs-dir", certs_d.path().to_str().unwrap()]);
    let name = format!("{host}/mtls/bb:1");
    d.import_busybox(&name);

    // The CA alone: the registry wants a client certificate and ends the handshake.
    let out = berth(&d, &["push", &name]);
    assert!(!out.status.success(), "{}", text(&out.stdout));

    // client.cert + client.key: presented, the push and pull go through.
    std::fs::copy(certs.path("client.crt"), dir.join("client.cert")).unwrap();
    std::fs::copy(certs.path("client.key"), dir.join("client.key")).unwrap();
    let pushed = ok(&berth(&d, &["push", &name]));
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");
    ok(&d.berth(&["rmi", &name]));
    let pulled = ok(&berth(&d, &["pull", &name]));
    assert!(pulled.contains("Pull complete"), "{pulled}");

    // A certificate without its key is refused with dockerd's words.
    std::fs::remove_file(dir.join("client.key")).unwrap();
    let out = berth(&d, &["pull", &name]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing key"), "{}", text(&out.stderr));
}
