//! `berth manifest inspect [-v] [--insecure] REF` and `GET /distribution/{name}/json`
//! against real registries on 127.0.0.1: `berth registry serve` and Debian's
//! `docker-registry` (distribution 2.8). What the CLI prints is checked against what the
//! registry serves (bytes re-indented as the docker CLI does, digests, sizes), for an image
//! manifest and for an OCI index the test puts together and pushes itself.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, berth_bin, have_docker, ok, text};
use sha2::Digest as _;

struct Proc(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the registry did not start on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn berth_registry() -> (Proc, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(berth_bin())
        .args(["registry", "serve", "--addr", &format!("127.0.0.1:{port}"), "--root"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    (Proc(child, dir), port)
}

fn debian_registry() -> (berth_e2e::distribution::DockerRegistry, u16) {
    let reg = berth_e2e::distribution::DockerRegistry::start(None);
    let port = reg.port;
    (reg, port)
}

const ACCEPT: &str = "Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The manifest bytes the registry serves for `repo:reference`.
fn served(port: u16, repo: &str, reference: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sf", "-H", ACCEPT])
        .arg(format!("http://127.0.0.1:{port}/v2/{repo}/manifests/{reference}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "curl manifest {repo}:{reference}");
    out.stdout
}

fn digest_of(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn berth(d: &Daemon, args: &[&str]) -> Output {
    d.berth_cmd(args).env("DOCKER_CONFIG", d.dir.path().join("docker-config")).output().unwrap()
}

/// `GET path` on the daemon's socket with curl.
fn api_get(d: &Daemon, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .arg(format!("http://localhost{path}"))
        .output()
        .unwrap();
    let s = text(&out.stdout);
    let (body, code) = s.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

fn check_registry(d: &Daemon, port: u16) {
    let name = format!("127.0.0.1:{port}/mi/bb:1");
    d.import_busybox(&name);
    ok(&berth(d, &["push", &name]));
    let raw = served(port, "mi/bb", "1");
    let want: serde_json::Value = serde_json::from_slice(&raw).unwrap();

    // Plain: the served bytes, re-indented with tabs.
    let plain = ok(&berth(d, &["manifest", "inspect", &name]));
    // Python's json.dumps with a tab indent spells JSON as Go's json.Indent does (key order
    // kept, `": "`, no trailing spaces) for these ASCII documents.
    let mut py = Command::new("python3");
    py.args(["-c", "import json,sys; print(json.dumps(json.load(sys.stdin), indent='\\t'))"]);
    let expected = ok(&berth_e2e::run_with_stdin(py, &raw));
    assert_eq!(plain, expected);
    assert!(plain.contains("\n\t\"schemaVersion\": 2"), "{plain}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&plain).unwrap(), want);

    // Verbose: Ref, Descriptor (digest and size of the served bytes, the config's platform).
    let v: serde_json::Value = serde_json::from_str(&ok(&berth(d, &["manifest", "inspect", "-v", &name]))).unwrap();
    assert_eq!(v["Ref"], name);
    assert_eq!(v["Descriptor"]["digest"], digest_of(&raw));
    assert_eq!(v["Descriptor"]["size"], raw.len());
    assert_eq!(v["Descriptor"]["platform"]["os"], "linux");
    let field = if want["mediaType"] == "application/vnd.oci.image.manifest.v1+json" {
        "OCIManifest"
    } else {
        "SchemaV2Manifest"
    };
    assert_eq!(v[field], want, "{v}");

    // The Engine API's view of the same.
    let (code, body) = api_get(d, &format!("/v1.41/distribution/{name}/json"));
    assert_eq!(code, 200, "{body}");
    let di: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(di["Descriptor"]["digest"], digest_of(&raw));
    assert_eq!(di["Descriptor"]["size"], raw.len());
    assert_eq!(di["Descriptor"]["mediaType"], want["mediaType"]);
    assert_eq!(di["Platforms"][0]["os"], "linux");

    // docker-py's inspect_distribution reads the same answer.
    if Command::new("python3").args(["-c", "import docker"]).status().is_ok_and(|s| s.success()) {
        let script = format!(
            "import docker,json; c=docker.APIClient(base_url='unix://{}'); print(json.dumps(c.inspect_distribution('{name}')))",
            d.socket.display()
        );
        let v: serde_json::Value =
            serde_json::from_str(&ok(&Command::new("python3").args(["-c", &script]).output().unwrap())).unwrap();
        assert_eq!(v["Descriptor"]["digest"], digest_of(&raw));
        assert_eq!(v["Platforms"][0]["architecture"], di["Platforms"][0]["architecture"]);
    }

    // An OCI index over the pushed manifest, put together here and pushed with curl.
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": want["mediaType"], "digest": digest_of(&raw), "size": raw.len(),
             "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
            {"mediaType": want["mediaType"], "digest": digest_of(&raw), "size": raw.len(),
             "platform": {"architecture": "amd64", "os": "linux"}}
        ]
    });
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let mut put = Command::new("curl");
    put.args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        "@-",
    ])
    .arg(format!("http://127.0.0.1:{port}/v2/mi/bb/manifests/multi"));
    let out = berth_e2e::run_with_stdin(put, &index_bytes);
    assert!(out.status.success(), "PUT index: {}", text(&out.stdout));
    let list_name = format!("127.0.0.1:{port}/mi/bb:multi");
    let list = ok(&berth(d, &["manifest", "inspect", &list_name]));
    let lt = if want["mediaType"] == "application/vnd.oci.image.manifest.v1+json" {
        "application/vnd.oci.image.index.v1+json"
    } else {
        "application/vnd.docker.distribution.manifest.list.v2+json"
    };
    assert!(
        list.starts_with(&format!(
            "{{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"{lt}\",\n   \"manifests\": [\n      {{\n"
        )),
        "{list}"
    );
    let lv: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(lv["manifests"][0]["digest"], digest_of(&raw));
    assert_eq!(lv["manifests"][0]["size"], raw.len());
    assert_eq!(
        lv["manifests"][0]["platform"],
        serde_json::json!({"architecture": "arm", "os": "linux", "variant": "v7"})
    );
    let vv: serde_json::Value =
        serde_json::from_str(&ok(&berth(d, &["manifest", "inspect", "--verbose", &list_name]))).unwrap();
    assert_eq!(vv.as_array().unwrap().len(), 2);
    assert_eq!(vv[1]["Ref"], format!("{list_name}@{}", digest_of(&raw)));
    assert_eq!(vv[1]["Descriptor"]["platform"]["architecture"], "amd64");
    assert_eq!(vv[1][field], want);
    let (code, body) = api_get(d, &format!("/distribution/{list_name}/json"));
    assert_eq!(code, 200, "{body}");
    let di: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(di["Descriptor"]["digest"], digest_of(&index_bytes));
    assert_eq!(di["Descriptor"]["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(di["Platforms"].as_array().unwrap().len(), 2);
    assert_eq!(di["Platforms"][0]["variant"], "v7");

    // By digest.
    let by_digest = format!("127.0.0.1:{port}/mi/bb@{}", digest_of(&raw));
    let p2 = ok(&berth(d, &["manifest", "inspect", &by_digest]));
    assert_eq!(p2, plain);

    // The docker CLI, which reads the registry itself, prints the same.
    if have_docker() {
        for args in [
            vec![name.as_str()],
            vec!["-v", name.as_str()],
            vec![list_name.as_str()],
            vec!["-v", list_name.as_str()],
            vec![by_digest.as_str()],
        ] {
            let mut full = vec!["manifest", "inspect", "--insecure"];
            full.extend(&args);
            let theirs = Command::new(berth_e2e::docker_bin())
                .args(&full)
                .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
                .output()
                .unwrap();
            assert_eq!(text(&berth(d, &full).stdout), ok(&theirs), "{args:?}");
        }
    }

    // Unknown tag and unknown repository: docker's words, exit 1.
    for missing in [format!("127.0.0.1:{port}/mi/bb:nope"), format!("127.0.0.1:{port}/mi/none")] {
        let out = berth(d, &["manifest", "inspect", &missing]);
        assert_eq!(out.status.code(), Some(1));
        let full = if missing.ends_with("none") { format!("{missing}:latest") } else { missing.clone() };
        assert_eq!(text(&out.stderr).trim(), format!("no such manifest: {full}"));
        if have_docker() {
            let theirs = Command::new(berth_e2e::docker_bin())
                .args(["manifest", "inspect", "--insecure", &missing])
                .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
                .output()
                .unwrap();
            assert_eq!(theirs.status.code(), Some(1));
            assert_eq!(text(&theirs.stderr).trim(), text(&out.stderr).trim());
        }
        assert!(out.stdout.is_empty());
        let (code, body) = api_get(d, &format!("/distribution/{missing}/json"));
        assert_eq!(code, 404, "{body}");
    }
}

#[test]
fn manifest_inspect_against_berth_registry() {
    let (_reg, port) = berth_registry();
    let d = Daemon::start();
    check_registry(&d, port);
}

#[test]
fn manifest_inspect_against_docker_registry() {
    let (_reg, port) = debian_registry();
    let d = Daemon::start();
    check_registry(&d, port);
}

#[test]
fn manifest_inspect_bad_reference() {
    let d = Daemon::start();
    let out = berth(&d, &["manifest", "inspect", "Not/Valid::ref"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("invalid reference format"), "{}", text(&out.stderr));
}

/// A TLS registry with a self-signed certificate on a bridge address (not loopback, so not
/// insecure by default): refused on the certificate, read with `--insecure` as the docker
/// CLI reads it.
#[test]
fn manifest_inspect_insecure_flag() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let n = std::process::id().wrapping_mul(7919) ^ nanos;
    let (br, addr) = (format!("bmi{}", n % 100_000), format!("10.251.{}.{}", (n >> 8) % 250 + 1, n % 250 + 1));
    let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
    ip(&["link", "add", &br, "type", "bridge"]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        }
    }
    let _del = Del(br.clone());
    ip(&["addr", "add", &format!("{addr}/32"), "dev", &br]);
    ip(&["link", "set", &br, "up"]);

    // Content first, through a plain registry on loopback over the same storage.
    let root = tempfile::tempdir().unwrap();
    let d = Daemon::start();
    let port = free_port();
    let mut plain = Command::new(berth_bin())
        .args(["registry", "serve", "--addr", &format!("127.0.0.1:{port}"), "--root"])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    let local = format!("127.0.0.1:{port}/sec/bb:1");
    d.import_busybox(&local);
    ok(&berth(&d, &["push", &local]));
    let _ = plain.kill();
    let _ = plain.wait();

    let certs = tempfile::tempdir().unwrap();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &format!("/CN={addr}")])
        .args(["-addext", &format!("subjectAltName=IP:{addr}"), "-keyout", "k.pem", "-out", "c.pem"])
        .current_dir(certs.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", text(&out.stderr));
    let tport = TcpListener::bind((addr.as_str(), 0)).unwrap().local_addr().unwrap().port();
    let _tls = Proc(
        Command::new(berth_bin())
            .args(["registry", "serve", "--addr", &format!("{addr}:{tport}"), "--root"])
            .arg(root.path())
            .arg("--tls-cert")
            .arg(certs.path().join("c.pem"))
            .arg("--tls-key")
            .arg(certs.path().join("k.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect((addr.as_str(), tport)).is_err() {
        assert!(Instant::now() < deadline, "the TLS registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let name = format!("{addr}:{tport}/sec/bb:1");
    let refused = berth(&d, &["manifest", "inspect", &name]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).to_ascii_lowercase().contains("certificate"), "{}", text(&refused.stderr));
    let ours = ok(&berth(&d, &["manifest", "inspect", "--insecure", &name]));
    assert!(ours.contains("\"schemaVersion\": 2"), "{ours}");
    if have_docker() {
        let theirs = Command::new(berth_e2e::docker_bin())
            .args(["manifest", "inspect", "--insecure", &name])
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .output()
            .unwrap();
        assert_eq!(ours, ok(&theirs));
    }
}
