//! The API over TCP with mutual TLS, as dockerd serves it: certificates made here with
//! `openssl`, a daemon on `tcp://127.0.0.1:PORT --tlsverify`, our CLI and the docker CLI
//! driving it (version, run, a build whose context is uploaded as a tar with a
//! `.dockerignore`), and clients without a valid certificate refused. Also: a plain TCP
//! listener on a non-loopback address is refused at start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, berth_bin, docker_bin, have_docker, ok, text};

/// Runs openssl in `dir`, failing the test on error.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
}

/// A CA (`<ca>.pem`, `<ca>-key.pem`).
fn make_ca(dir: &Path, ca: &str) {
    let (cert, key) = (format!("{ca}.pem"), format!("{ca}-key.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            &key,
            "-out",
            &cert,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `<name>-cert.pem` / `<name>-key.pem` signed by `ca`, with extensions `ext`.
fn make_cert(dir: &Path, ca: &str, name: &str, ext: &str) {
    let (cert, key, csr, extfile) =
        (format!("{name}-cert.pem"), format!("{name}-key.pem"), format!("{name}.csr"), format!("{name}.ext"));
    std::fs::write(dir.join(&extfile), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            &extfile,
        ],
    );
}

/// The certificates of one test: a CA with a server and a client certificate, and a second
/// CA nobody trusts with a client certificate of its own.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn new(dir: PathBuf) -> Certs {
        std::fs::create_dir_all(&dir).unwrap();
        make_ca(&dir, "ca");
        make_cert(&dir, "ca", "server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        make_cert(&dir, "ca", "client", "extendedKeyUsage=clientAuth\n");
        make_ca(&dir, "rogue-ca");
        make_cert(&dir, "rogue-ca", "rogue", "extendedKeyUsage=clientAuth\n");
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The client flags, as the docker CLI takes them, for the client certificate `who`.
    fn client_flags(&self, host: &str, who: &str) -> Vec<String> {
        vec![
            "-H".into(),
            host.into(),
            "--tlsverify".into(),
            "--tlscacert".into(),
            self.path("ca.pem"),
            "--tlscert".into(),
            self.path(&format!("{who}-cert.pem")),
            "--tlskey".into(),
            self.path(&format!("{who}-key.pem")),
        ]
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn with(flags: &[String], args: &[&str]) -> Vec<String> {
    flags.iter().cloned().chain(args.iter().map(|s| s.to_string())).collect()
}

/// Our CLI over TCP: `-H` wins over the BERTH_HOST the harness sets.
fn berth(d: &Daemon, args: &[String], dir: Option<&Path>) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = d.berth_cmd(&refs);
    if let Some(dir) = dir {
        c.current_dir(dir);
    }
    c.output().expect("run berth")
}

/// The docker CLI over TCP, with no DOCKER_HOST of its own.
fn docker(d: &Daemon, args: &[String], dir: Option<&Path>) -> Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = d.docker_cmd(&refs);
    c.env_remove("DOCKER_HOST").env("DOCKER_BUILDKIT", "0");
    if let Some(dir) = dir {
        c.current_dir(dir);
    }
    c.output().expect("run docker")
}

/// A context whose `.dockerignore` leaves out a big file; the Dockerfile copies everything.
fn context(d: &Daemon, name: &str) -> PathBuf {
    let p = d.dir_with(name, "FROM busybox\nCOPY . /ctx\n");
    std::fs::write(p.join(".dockerignore"), "big.bin\n*.log\n").unwrap();
    std::fs::write(p.join("big.bin"), vec![7u8; 4 << 20]).unwrap();
    std::fs::write(p.join("debug.log"), "noise").unwrap();
    std::fs::write(p.join("keep.txt"), "kept").unwrap();
    p
}

fn assert_context_image(out: String) {
    let files: Vec<&str> = out.split_whitespace().collect();
    assert!(files.contains(&"keep.txt") && files.contains(&"Dockerfile"), "{out}");
    assert!(files.contains(&".dockerignore"), "the ignore file is sent, as docker does: {out}");
    assert!(!files.contains(&"big.bin") && !files.contains(&"debug.log"), "ignored files reached the image: {out}");
}

#[test]
fn mutual_tls_with_our_cli_and_dockers() {
    let port = free_port();
    let tmp = tempfile::Builder::new().prefix("be2e-tls").tempdir_in("/tmp").unwrap();
    let certs = Certs::new(tmp.path().join("certs"));
    let host = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with(&[
        "-H",
        &host,
        "--tlsverify",
        "--tlscacert",
        &certs.path("ca.pem"),
        "--tlscert",
        &certs.path("server-cert.pem"),
        "--tlskey",
        &certs.path("server-key.pem"),
    ]);
    d.import_busybox("busybox:latest");
    let good = certs.client_flags(&host, "client");

    // Our CLI.
    let v = ok(&berth(&d, &with(&good, &["version", "--format", "{{.Server.ApiVersion}}"]), None));
    assert!(!v.trim().is_empty(), "{v}");
    assert_eq!(ok(&berth(&d, &with(&good, &["run", "--rm", "busybox", "echo", "hi"]), None)), "hi\n");
    let ctx = context(&d, "ctx-berth");
    ok(&berth(&d, &with(&good, &["build", "--progress", "plain", "-t", "tls-berth", "."]), Some(&ctx)));
    assert_context_image(ok(&berth(&d, &with(&good, &["run", "--rm", "tls-berth", "ls", "-a", "/ctx"]), None)));
    // A Dockerfile outside the context travels inside the tar, as docker sends it.
    let outside = d.dir_with("df-outside", "FROM busybox\nCOPY keep.txt /k\n");
    let df = outside.join("Dockerfile").display().to_string();
    ok(&berth(&d, &with(&good, &["build", "-q", "-f", &df, "-t", "tls-outside", "."]), Some(&ctx)));
    assert_eq!(ok(&berth(&d, &with(&good, &["run", "--rm", "tls-outside", "cat", "/k"]), None)), "kept");

    // The same through DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
    let env_dir = tmp.path().join("env-certs");
    std::fs::create_dir_all(&env_dir).unwrap();
    for (from, to) in [("ca.pem", "ca.pem"), ("client-cert.pem", "cert.pem"), ("client-key.pem", "key.pem")] {
        std::fs::copy(certs.dir.join(from), env_dir.join(to)).unwrap();
    }
    let out = d
        .berth_cmd(&["version"])
        .env_remove("BERTH_HOST")
        .env("DOCKER_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &env_dir)
        .output()
        .unwrap();
    assert!(ok(&out).contains("Server"), "{}", text(&out.stdout));

    // Refused: no client certificate, a certificate from a CA the daemon does not trust,
    // and plain HTTP to the TLS port.
    let no_cert = vec!["-H".to_owned(), host.clone(), "--tlsverify".into(), "--tlscacert".into(), certs.path("ca.pem")];
    let rogue = certs.client_flags(&host, "rogue");
    let plain = vec!["-H".to_owned(), host.clone()];
    for (what, flags) in [("no certificate", &no_cert), ("untrusted certificate", &rogue), ("no TLS", &plain)] {
        let out = berth(&d, &with(flags, &["version", "--format", "{{.Server.ApiVersion}}"]), None);
        assert!(!out.status.success(), "{what}: berth was served: {}", text(&out.stdout));
        let out = berth(&d, &with(flags, &["ps"]), None);
        assert!(!out.status.success(), "{what}: berth ps was served: {}", text(&out.stdout));
    }

    // The docker CLI.
    if !have_docker() {
        eprintln!("no docker CLI at {}: skipping its half", docker_bin());
        return;
    }
    let v = ok(&docker(&d, &with(&good, &["version", "--format", "{{.Server.APIVersion}}"]), None));
    assert!(!v.trim().is_empty(), "{v}");
    assert_eq!(ok(&docker(&d, &with(&good, &["run", "--rm", "busybox", "echo", "hi"]), None)), "hi\n");
    let ctx = context(&d, "ctx-docker");
    ok(&docker(&d, &with(&good, &["build", "-t", "tls-docker", "."]), Some(&ctx)));
    assert_context_image(ok(&docker(&d, &with(&good, &["run", "--rm", "tls-docker", "ls", "-a", "/ctx"]), None)));
    for (what, flags) in [("no certificate", &no_cert), ("untrusted certificate", &rogue)] {
        let out = docker(&d, &with(flags, &["ps"]), None);
        assert!(!out.status.success(), "{what}: docker was served: {}", text(&out.stdout));
    }
}

#[test]
fn plain_tcp_only_on_loopback() {
    let tmp = tempfile::Builder::new().prefix("be2e-tcp").tempdir_in("/tmp").unwrap();
    let config = tmp.path().join("daemon.json");
    std::fs::write(&config, "{}").unwrap();
    let mut child = Command::new(berth_bin())
        .args(["daemon", "-H"])
        .arg(format!("tcp://0.0.0.0:{}", free_port()))
        .arg("--data-root")
        .arg(tmp.path().join("data"))
        .arg("--exec-root")
        .arg(tmp.path().join("run"))
        .arg("--config-file")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth daemon");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a plain TCP listener on 0.0.0.0 was started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("without TLS") && err.contains("--tlsverify"), "{err}");
    assert!(!tmp.path().join("data").exists(), "nothing is created before the refusal");
}
