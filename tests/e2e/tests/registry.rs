//! Pull, push and login against real registries: Debian's `docker-registry` (distribution
//! 2.8) started per test on 127.0.0.1, with and without htpasswd Basic auth, and a tiny
//! hostile registry of our own for the failures a real one will not produce (wrong bytes,
//! a connection dropped mid-blob, a manifest naming a missing blob). Images go from one data
//! root to another; our CLI and the docker CLI both drive the daemon.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_e2e::{Daemon, have_docker, ok, text};
use sha2::Digest as _;

use berth_e2e::distribution::DockerRegistry as Registry;

fn inspect(d: &Daemon, name: &str) -> serde_json::Value {
    let out = d.berth(&["image", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    v[0].clone()
}

fn config_dir(d: &Daemon) -> PathBuf {
    d.socket.parent().unwrap().join("berth-docker-config")
}

fn berth(d: &Daemon, args: &[&str]) -> std::process::Output {
    d.berth_cmd(args).env("DOCKER_CONFIG", config_dir(d)).output().unwrap()
}

fn image_count(d: &Daemon) -> usize {
    ok(&d.berth(&["images", "-q"])).lines().filter(|l| !l.is_empty()).count()
}

#[test]
fn push_then_pull_into_another_data_root() {
    let reg = Registry::start(None);
    let a = Daemon::start();
    let name = reg.name("team/bb:1");
    a.import_busybox(&name);
    let out = berth(&a, &["push", &name]);
    let pushed = ok(&out);
    assert!(pushed.contains(&format!("The push refers to repository [{}]", reg.name("team/bb"))), "{pushed}");
    let line = pushed.lines().find(|l| l.starts_with("1: digest: sha256:")).unwrap_or_else(|| panic!("{pushed}"));
    let digest = line.split_whitespace().nth(2).unwrap().to_owned();
    let src = inspect(&a, &name);
    assert!(
        src["RepoDigests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str() == Some(&format!("{}@{digest}", reg.name("team/bb")))),
        "{src}"
    );

    // Pushing again sends no layer.
    let again = ok(&berth(&a, &["push", &name]));
    assert!(again.contains("Layer already exists") && !again.contains("Pushed"), "{again}");
    assert!(again.contains(&format!("1: digest: {digest}")), "{again}");

    let b = Daemon::start();
    let out = berth(&b, &["pull", &name]);
    let pulled = ok(&out);
    assert!(pulled.contains("1: Pulling from team/bb"), "{pulled}");
    assert!(pulled.contains("Pull complete"), "{pulled}");
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert!(pulled.contains(&format!("Status: Downloaded newer image for {name}")), "{pulled}");
    assert!(pulled.trim_end().ends_with(&name), "{pulled}");
    let dst = inspect(&b, &name);
    assert_eq!(dst["Id"], src["Id"]);
    assert_eq!(dst["RootFS"]["Layers"], src["RootFS"]["Layers"]);
    assert_eq!(dst["RepoDigests"], serde_json::json!([format!("{}@{digest}", reg.name("team/bb"))]));
    // The file trees agree: a file from the image, read back through a container's view.
    let out = ok(&b.berth(&["run", "--rm", "--network", "none", &name, "sh", "-c", "ls /bin | wc -l"]));
    let out_a = ok(&a.berth(&["run", "--rm", "--network", "none", &name, "sh", "-c", "ls /bin | wc -l"]));
    assert_eq!(out, out_a);

    // All present: nothing to download.
    let again = ok(&berth(&b, &["pull", &name]));
    assert!(again.contains("Status: Image is up to date for"), "{again}");
    assert!(!again.contains("Pull complete"), "{again}");

    // By digest too; `images --digests` shows it.
    let by_digest = format!("{}@{digest}", reg.name("team/bb"));
    ok(&berth(&b, &["pull", "-q", &by_digest]));
    let listing = ok(&b.berth(&["images", "--digests"]));
    assert!(listing.contains(&digest), "{listing}");

    // The pulled image pushes back to a second repository by mounting, not uploading.
    let other = reg.name("other/bb:2");
    ok(&b.berth(&["tag", &name, &other]));
    let out = ok(&berth(&b, &["push", &other]));
    assert!(out.contains("Mounted from team/bb") || out.contains("Layer already exists"), "{out}");
    assert!(out.contains(&format!("2: digest: {digest}")), "the pulled manifest goes back unchanged: {out}");

    // Both daemons reported what they did on their events bus, as dockerd does.
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let events = |d: &Daemon| {
        ok(&d.berth(&[
            "events",
            "--since",
            "0",
            "--until",
            &until.to_string(),
            "-f",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ]))
    };
    assert!(events(&a).contains(&format!("push {name}")), "{}", events(&a));
    assert!(events(&b).contains(&format!("pull {name}")), "{}", events(&b));
    assert!(events(&b).contains(&format!("push {other}")), "{}", events(&b));
}

#[test]
fn unknown_tags_and_repositories_fail_cleanly() {
    let reg = Registry::start(None);
    let d = Daemon::start();
    let out = berth(&d, &["pull", &reg.name("nothing/here:1")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("manifest unknown") || err.contains("pull access denied"), "{err}");
    assert_eq!(image_count(&d), 0);
    d.import_busybox(&reg.name("some/bb:1"));
    ok(&berth(&d, &["push", &reg.name("some/bb:1")]));
    let out = berth(&d, &["pull", &reg.name("some/bb:2")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("manifest for {} not found: manifest unknown", reg.name("some/bb:2"))), "{err}");
    let out = berth(&d, &["push", &reg.name("not/local:1")]);
    assert!(text(&out.stderr).contains("An image does not exist locally with the tag"), "{}", text(&out.stderr));
}

#[test]
fn basic_auth_login_push_pull() {
    let reg = Registry::start(Some(("alice", "s3cret")));
    let d = Daemon::start();
    let server = format!("127.0.0.1:{}", reg.port);
    let name = reg.name("private/bb:1");
    d.import_busybox(&name);

    let out = berth(&d, &["push", &name]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unauthorized: authentication required"), "{}", text(&out.stderr));

    let mut cmd = d.berth_cmd(&["login", "-u", "alice", "--password-stdin", &server]);
    cmd.env("DOCKER_CONFIG", config_dir(&d));
    let out = berth_e2e::run_with_stdin(cmd, b"wrong\n");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("401 Unauthorized"), "{}", text(&out.stderr));
    assert!(
        !config_dir(&d).join("config.json").exists()
            || !std::fs::read_to_string(config_dir(&d).join("config.json")).unwrap().contains(&server)
    );

    let out = ok(&berth(&d, &["login", "-u", "alice", "-p", "s3cret", &server]));
    assert!(out.contains("Login Succeeded"), "{out}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config_dir(&d).join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["auths"][&server]["auth"], "YWxpY2U6czNjcmV0");

    ok(&berth(&d, &["push", &name]));
    let b = Daemon::start();
    std::fs::create_dir_all(config_dir(&b)).unwrap();
    std::fs::copy(config_dir(&d).join("config.json"), config_dir(&b).join("config.json")).unwrap();
    let out = berth(&b, &["pull", &name]);
    ok(&out);
    assert_eq!(inspect(&b, &name)["Id"], inspect(&d, &name)["Id"]);

    let out = ok(&berth(&b, &["logout", &server]));
    assert!(out.contains(&format!("Removing login credentials for {server}")), "{out}");
    ok(&b.berth(&["rmi", &name]));
    let out = berth(&b, &["pull", &name]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unauthorized"), "{}", text(&out.stderr));
    assert_eq!(image_count(&b), 0);
}

#[test]
fn docker_hub_names_come_from_the_mirror() {
    let reg = Registry::start(None);
    let a = Daemon::start();
    let hub_name = reg.name("library/busybox:latest");
    a.import_busybox(&hub_name);
    ok(&berth(&a, &["push", &hub_name]));
    let mirror = format!("http://127.0.0.1:{}", reg.port);
    let b = Daemon::start_with(&["--registry-mirror", &mirror]);
    let out = ok(&berth(&b, &["pull", "busybox"]));
    assert!(out.starts_with("Using default tag: latest"), "{out}");
    assert!(out.contains("latest: Pulling from library/busybox"), "{out}");
    assert!(out.trim_end().ends_with("docker.io/library/busybox:latest"), "{out}");
    assert_eq!(inspect(&b, "busybox")["Id"], inspect(&a, &hub_name)["Id"]);
    // `run` of a missing image pulls it first.
    ok(&b.berth(&["rmi", "busybox"]));
    let out = b.berth(&["run", "--rm", "--network", "none", "busybox", "echo", "hi"]);
    assert_eq!(ok(&out).trim(), "hi");
    assert!(text(&out.stderr).contains("Unable to find image 'busybox:latest' locally"), "{}", text(&out.stderr));
    let out = b.berth(&["run", "--rm", "--pull", "never", "--network", "none", "nosuch/thing", "true"]);
    assert!(!out.status.success());
}

#[test]
fn docker_cli_pulls_and_pushes_through_berth() {
    if !have_docker() {
        return;
    }
    let reg = Registry::start(Some(("bob", "pw")));
    let d = Daemon::start();
    let server = format!("127.0.0.1:{}", reg.port);
    let name = reg.name("cli/bb:1");
    d.import_busybox(&name);
    let out = d.docker(&["login", "-u", "bob", "-p", "nope", &server]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let out = ok(&d.docker(&["login", "-u", "bob", "-p", "pw", &server]));
    assert!(out.contains("Login Succeeded"), "{out}");
    let out = ok(&d.docker(&["push", &name]));
    assert!(out.contains("1: digest: sha256:") && out.contains("Pushed"), "{out}");
    ok(&d.docker(&["rmi", &name]));
    let out = ok(&d.docker(&["pull", &name]));
    assert!(out.contains("Pull complete") && out.contains("Status: Downloaded newer image for"), "{out}");
    let out = d.docker(&["pull", &reg.name("cli/none:1")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("manifest unknown"), "{}", text(&out.stderr));
}

/// What the hostile registry does with the layer blob.
#[derive(Clone, Copy)]
enum Hostile {
    WrongBytes,
    DropMidBlob,
    MissingBlob,
    DropOnceThenServe,
}

/// A registry that serves one image (`evil/img:1`) and misbehaves with its layer.
fn hostile_registry(mode: Hostile) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let layer: Vec<u8> = {
        let mut b = tar::Builder::new(Vec::new());
        let data = vec![7u8; 300_000];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "data.bin", &data[..]).unwrap();
        b.into_inner().unwrap()
    };
    let hex = |b: &[u8]| format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)));
    let layer_digest = hex(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))
    .unwrap();
    let config_digest = hex(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len() }],
    }))
    .unwrap();
    let blob_requests = Arc::new(AtomicUsize::new(0));
    let counter = blob_requests.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut range_from = 0usize;
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                headers.push(h.trim().to_owned());
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range_from = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                }
            }
            let send = |s: &mut TcpStream, status: &str, ct: &str, body: &[u8], extra: &str| {
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
            };
            if path == "/v2/" {
                send(&mut s, "200 OK", "application/json", b"{}", "");
            } else if path.contains("/manifests/") {
                let extra = format!("Docker-Content-Digest: {}\r\n", hex(&manifest));
                send(&mut s, "200 OK", "application/vnd.oci.image.manifest.v1+json", &manifest, &extra);
            } else if path.ends_with(&config_digest) {
                send(&mut s, "200 OK", "application/octet-stream", &config, "");
            } else if path.ends_with(&layer_digest) {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                eprintln!("hostile registry: request {n} for the layer, headers {headers:?}");
                match mode {
                    Hostile::WrongBytes => {
                        let mut bad = layer.clone();
                        bad[1000] ^= 1;
                        send(&mut s, "200 OK", "application/octet-stream", &bad, "");
                    }
                    Hostile::MissingBlob => {
                        send(
                            &mut s,
                            "404 Not Found",
                            "application/json",
                            br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                            "",
                        );
                    }
                    Hostile::DropMidBlob => {
                        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", layer.len());
                        let _ = s.write_all(&layer[..layer.len() / 2]);
                    }
                    Hostile::DropOnceThenServe => {
                        if n == 0 {
                            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", layer.len());
                            let _ = s.write_all(&layer[..layer.len() / 3]);
                        } else {
                            let part = &layer[range_from..];
                            let extra =
                                format!("Content-Range: bytes {range_from}-{}/{}\r\n", layer.len() - 1, layer.len());
                            send(
                                &mut s,
                                if range_from > 0 { "206 Partial Content" } else { "200 OK" },
                                "application/octet-stream",
                                part,
                                &extra,
                            );
                        }
                    }
                }
            } else {
                send(
                    &mut s,
                    "404 Not Found",
                    "application/json",
                    br#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#,
                    "",
                );
            }
            let _ = s.flush();
            let mut sink = [0u8; 1];
            let _ = s.set_read_timeout(Some(Duration::from_millis(10)));
            let _ = s.read(&mut sink);
        }
    });
    (port, blob_requests)
}

#[test]
fn hostile_registries_store_nothing() {
    let d = Daemon::start();
    for (mode, want) in [
        (Hostile::WrongBytes, "digest mismatch"),
        (Hostile::MissingBlob, "blob unknown"),
        (Hostile::DropMidBlob, "failed after 5 attempts"),
    ] {
        let (port, _) = hostile_registry(mode);
        let out = berth(&d, &["pull", &format!("127.0.0.1:{port}/evil/img:1")]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains(want), "{want}: {err}");
        assert_eq!(image_count(&d), 0);
        let leftovers: Vec<_> = std::fs::read_dir(d.data_root.join("snapshots"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(std::fs::read_dir(d.data_root.join("content/ingest")).unwrap().count(), 0);
    }
    // A broken connection is resumed with Range and the pull completes.
    let (port, requests) = hostile_registry(Hostile::DropOnceThenServe);
    let out = berth(&d, &["pull", &format!("127.0.0.1:{port}/evil/img:1")]);
    ok(&out);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert_eq!(image_count(&d), 1);
}

const PY_PUSH_PULL: &str = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
name, repo = sys.argv[2], sys.argv[3]
auth = {"username": "py", "password": "pw"}
out = client.images.push(name, tag="1", auth_config=auth)
assert "digest: sha256:" in out, out
client.images.remove(name + ":1")
img = client.images.pull(name, tag="1", auth_config=auth)
print("tags", img.tags)
print("digests", len(img.attrs["RepoDigests"]))
try:
    client.images.pull(repo + "/nothing", tag="1", auth_config=auth)
    print("no error")
except docker.errors.NotFound as e:
    print("notfound", "manifest unknown" in str(e) or "not found" in str(e))
"#;

#[test]
fn docker_py_pushes_and_pulls() {
    let reg = Registry::start(Some(("py", "pw")));
    let d = Daemon::start();
    let name = reg.name("py/bb");
    d.import_busybox(&format!("{name}:1"));
    let out = Command::new("python3")
        .args(["-c", PY_PUSH_PULL, &d.host(), &name, &format!("127.0.0.1:{}", reg.port)])
        .output()
        .unwrap();
    let o = ok(&out);
    assert!(o.contains(&format!("tags ['{name}:1']")), "{o}");
    assert!(o.contains("digests 1"), "{o}");
    assert!(o.contains("notfound True"), "{o}");
}

#[test]
fn build_pulls_a_missing_base() {
    let reg = Registry::start(None);
    let a = Daemon::start();
    let base = reg.name("base/bb:1");
    a.import_busybox(&base);
    ok(&berth(&a, &["push", &base]));
    let b = Daemon::start();
    let dir = b.dir_with("ctx", &format!("FROM {base}\nRUN echo built > /x\n"));
    let out = b.build_plain(&dir, &["-t", "child:1", "."]);
    let o = ok(&out);
    assert!(o.contains("Pull complete") || text(&out.stderr).contains("Pull complete"), "{o}{}", text(&out.stderr));
    assert_eq!(inspect(&b, &base)["Id"], inspect(&a, &base)["Id"]);
    // --pull fetches again even when present (and finds it up to date).
    let out = b.build_plain(&dir, &["--pull", "-t", "child:2", "."]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("Image is up to date"), "{all}");
}

#[test]
fn build_pulls_a_private_base_with_the_users_credentials() {
    let reg = Registry::start(Some(("erin", "b4se")));
    let server = format!("127.0.0.1:{}", reg.port);
    let base = reg.name("private/base:1");
    let a = Daemon::start();
    a.import_busybox(&base);
    ok(&berth(&a, &["login", "-u", "erin", "-p", "b4se", &server]));
    ok(&berth(&a, &["push", &base]));

    let b = Daemon::start();
    let dir = b.dir_with("ctx", &format!("FROM {base}\nRUN echo built > /x\n"));
    let build = |args: &[&str]| {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        b.berth_cmd(&all).current_dir(&dir).env("DOCKER_CONFIG", config_dir(&b)).output().unwrap()
    };
    // Anonymous: the registry refuses, the build says so and stores nothing.
    let out = build(&["-t", "child:1", "."]);
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("unauthorized"), "{all}");
    assert_eq!(image_count(&b), 0);

    // After login, the CLI sends its credentials in X-Registry-Config and the base comes.
    ok(&berth(&b, &["login", "-u", "erin", "-p", "b4se", &server]));
    let out = build(&["-t", "child:1", "."]);
    let o = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{o}");
    assert!(o.contains("Pull complete"), "{o}");
    assert_eq!(inspect(&b, &base)["Id"], inspect(&a, &base)["Id"]);

    // The docker CLI sends the same header from its own config (legacy builder).
    if have_docker() {
        let c = Daemon::start();
        ok(&c.docker(&["login", "-u", "erin", "-p", "b4se", &server]));
        let dir = c.dir_with("ctx", &format!("FROM {base}\nRUN echo built > /x\n"));
        let out = c
            .docker_cmd(&["build", "-t", "child:1", "."])
            .current_dir(&dir)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(inspect(&c, &base)["Id"], inspect(&a, &base)["Id"]);
    }
}

/// A token server (Docker's registry token protocol) for a `docker-registry` configured with
/// `auth: token`: Basic credentials (or a refresh token) in, an RS256 JWT scoped to what was
/// asked out. Signing goes through `openssl dgst` with a key the test generates.
struct TokenAuth {
    port: u16,
    dir: tempfile::TempDir,
    /// The scopes of each token request, in order.
    scopes: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

fn b64url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn token_server(user: &'static str, password: &'static str) -> TokenAuth {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=berth-test-token"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let der = Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert).output().unwrap().stdout;
    let x5c = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scopes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = scopes.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut basic = None;
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if lower.starts_with("authorization: basic ") {
                    use base64::Engine as _;
                    let raw =
                        base64::engine::general_purpose::STANDARD.decode(h.trim()[21..].trim()).unwrap_or_default();
                    basic = Some(String::from_utf8_lossy(&raw).into_owned());
                }
                if let Some(v) = lower.strip_prefix("content-length: ") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = r.read_exact(&mut body);
            let query = target.split_once('?').map(|(_, q)| q.to_owned()).unwrap_or_default();
            let form = format!("{query}&{}", String::from_utf8_lossy(&body));
            let params: Vec<(String, String)> = form
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                .collect();
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            // Several scopes come as repeated `scope` parameters (GET) or space-separated in
            // one (the OAuth2 form).
            let asked: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "scope")
                .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
                .filter(|v| !v.is_empty())
                .collect();
            seen.lock().unwrap().push(asked.clone());
            let refresh_ok = get("grant_type").as_deref() == Some("refresh_token")
                && get("refresh_token").as_deref() == Some(&format!("refresh-{user}"));
            let creds_ok = basic.as_deref() == Some(&format!("{user}:{password}"));
            if !(refresh_ok || creds_ok) {
                let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
                continue;
            }
            let access: Vec<serde_json::Value> = asked
                .iter()
                .filter_map(|v| {
                    let mut it = v.splitn(3, ':');
                    let (t, name, actions) = (it.next()?, it.next()?, it.next()?);
                    Some(serde_json::json!({ "type": t, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
                })
                .collect();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let header = serde_json::json!({ "typ": "JWT", "alg": "RS256", "x5c": [x5c] });
            let claims = serde_json::json!({
                "iss": "berth-test-issuer", "sub": user, "aud": get("service").unwrap_or_default(),
                "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
                "access": access,
            });
            let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
            let sig = {
                let mut c = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
                c.wait_with_output().unwrap().stdout
            };
            let jwt = format!("{input}.{}", b64url(&sig));
            let mut answer = serde_json::json!({ "token": jwt, "access_token": jwt, "expires_in": 300 });
            if get("offline_token").as_deref() == Some("true") {
                answer["refresh_token"] = serde_json::Value::String(format!("refresh-{user}"));
            }
            let body = answer.to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    TokenAuth { port, dir, scopes }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `docker-registry` that trusts tokens from `auth`.
fn start_token(auth: &TokenAuth) -> Registry {
    Registry::start_with_auth(&format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
        auth.port,
        auth.dir.path().join("cert.pem").display()
    ))
}

#[test]
fn bearer_tokens_with_refresh() {
    let auth = token_server("carol", "tok-pw");
    let reg = start_token(&auth);
    let d = Daemon::start();
    let server = format!("127.0.0.1:{}", reg.port);
    let name = reg.name("tok/bb:1");
    d.import_busybox(&name);

    let out = berth(&d, &["push", &name]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unauthorized"), "{}", text(&out.stderr));

    let out = berth(&d, &["login", "-u", "carol", "-p", "bad", &server]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unauthorized: authentication required"), "{}", text(&out.stderr));

    let out = ok(&berth(&d, &["login", "-u", "carol", "-p", "tok-pw", &server]));
    assert!(out.contains("Login Succeeded"), "{out}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config_dir(&d).join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["auths"][&server]["identitytoken"], "refresh-carol", "{cfg}");

    // Push and pull on the refresh token alone.
    let pushed = ok(&berth(&d, &["push", &name]));
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");
    ok(&d.berth(&["rmi", &name]));
    let pulled = ok(&berth(&d, &["pull", &name]));
    assert!(pulled.contains("Pull complete"), "{pulled}");

    if have_docker() {
        let out = ok(&d.docker(&["login", "-u", "carol", "-p", "tok-pw", &server]));
        assert!(out.contains("Login Succeeded"), "{out}");
        ok(&d.docker(&["rmi", &name]));
        let out = ok(&d.docker(&["pull", &name]));
        assert!(out.contains("Downloaded newer image"), "{out}");
    }
}

#[test]
fn cross_repository_mount_asks_one_token_for_both_repositories() {
    let auth = token_server("dave", "mount-pw");
    let reg = start_token(&auth);
    let d = Daemon::start();
    let server = format!("127.0.0.1:{}", reg.port);
    let (a, b) = (reg.name("src/bb:1"), reg.name("dst/bb:1"));
    d.import_busybox(&a);
    ok(&berth(&d, &["login", "-u", "dave", "-p", "mount-pw", &server]));
    ok(&berth(&d, &["push", &a]));
    ok(&d.berth(&["tag", &a, &b]));
    auth.scopes.lock().unwrap().clear();
    let out = ok(&berth(&d, &["push", &b]));
    assert!(out.contains("Mounted from src/bb"), "{out}");
    let asked = auth.scopes.lock().unwrap().clone();
    let want = vec!["repository:dst/bb:pull,push".to_owned(), "repository:src/bb:pull".to_owned()];
    assert!(asked.contains(&want), "token requests: {asked:?}");

    // The same with Basic credentials on a GET (no refresh token stored).
    let c = reg.name("dst2/bb:1");
    ok(&d.berth(&["tag", &a, &c]));
    let cfg = config_dir(&d).join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["auths"][&server] = serde_json::json!({ "auth": b64std("dave:mount-pw") });
    std::fs::write(&cfg, v.to_string()).unwrap();
    auth.scopes.lock().unwrap().clear();
    let out = ok(&berth(&d, &["push", &c]));
    assert!(out.contains("Mounted from"), "{out}");
    let asked = auth.scopes.lock().unwrap().clone();
    assert!(
        asked.iter().any(|s| s.len() == 2
            && s[0] == "repository:dst2/bb:pull,push"
            && (s[1] == "repository:src/bb:pull" || s[1] == "repository:dst/bb:pull")),
        "token requests: {asked:?}"
    );
}

fn b64std(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A small ext4 filesystem on a loop device mounted at a path, unmounted on drop.
struct SmallFs {
    mnt: PathBuf,
    _img: tempfile::TempDir,
}

impl SmallFs {
    fn mount_at(mnt: &std::path::Path, mib: u32) -> SmallFs {
        let img = tempfile::tempdir().unwrap();
        let file = img.path().join("fs.img");
        let st = Command::new("truncate").arg("-s").arg(format!("{mib}M")).arg(&file).status().unwrap();
        assert!(st.success());
        let st = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&file).status().unwrap();
        assert!(st.success());
        std::fs::create_dir_all(mnt).unwrap();
        let st = Command::new("mount").args(["-o", "loop"]).arg(&file).arg(mnt).status().unwrap();
        assert!(st.success());
        SmallFs { mnt: mnt.to_path_buf(), _img: img }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

#[test]
fn a_full_disk_during_pull_leaves_nothing() {
    let reg = Registry::start(None);
    let a = Daemon::start();
    let name = reg.name("big/img:1");
    // 24 MiB that do not compress, in a one-layer image.
    let mut tarball = tar::Builder::new(Vec::new());
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    tarball.append_data(&mut h, "noise.bin", &data[..]).unwrap();
    let tarball = tarball.into_inner().unwrap();
    ok(&a.berth_with_stdin(&["import", "-", &name], &tarball));
    ok(&berth(&a, &["push", &name]));

    let b = Daemon::start();
    // The content store of the second daemon gets 16 MiB: the layer's blob cannot fit.
    let content = b.data_root.join("content");
    let small = SmallFs::mount_at(&content, 16);
    for d in ["", "blobs", "blobs/sha256", "ingest"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(small.mnt.join(d)).unwrap();
        std::fs::set_permissions(small.mnt.join(d), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let _ = std::fs::remove_dir_all(small.mnt.join("lost+found"));
    let out = berth(&b, &["pull", &name]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(image_count(&b), 0);
    assert_eq!(std::fs::read_dir(content.join("ingest")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(content.join("blobs/sha256")).unwrap().count(), 0);
    let snaps: Vec<_> = std::fs::read_dir(b.data_root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "empty")
        .collect();
    assert!(snaps.is_empty(), "{snaps:?}");
    drop(b);
    drop(small);
}

#[test]
fn indexes_pick_the_platform_and_all_tags_come_with_a() {
    let reg = Registry::start(None);
    let a = Daemon::start();
    let name = reg.name("multi/bb:1");
    a.import_busybox(&name);
    let pushed = ok(&berth(&a, &["push", &name]));
    let line = pushed.lines().find(|l| l.starts_with("1: digest: ")).unwrap();
    let (digest, size) = (line.split_whitespace().nth(2).unwrap(), line.split_whitespace().nth(4).unwrap());
    let host = std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64");
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size.parse::<u64>().unwrap(),
              "platform": { "os": "linux", "architecture": other } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size.parse::<u64>().unwrap(),
              "platform": { "os": "linux", "architecture": host } },
        ],
    })
    .to_string();
    let put = Command::new("curl")
        .args(["-sf", "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.index.v1+json", "--data-binary"])
        .arg(&index)
        .arg(format!("http://127.0.0.1:{}/v2/multi/bb/manifests/multi", reg.port))
        .status()
        .unwrap();
    assert!(put.success());
    let index_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(index.as_bytes())));

    let b = Daemon::start();
    let out = ok(&berth(&b, &["pull", &reg.name("multi/bb:multi")]));
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let img = inspect(&b, &reg.name("multi/bb:multi"));
    assert_eq!(img["Id"], inspect(&a, &name)["Id"]);
    assert!(img["RepoDigests"].to_string().contains(&index_digest), "{img}");
    let out = berth(&b, &["pull", "--platform", "linux/s390x", &reg.name("multi/bb:multi")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{}",
        text(&out.stderr)
    );

    let c = Daemon::start();
    let out = ok(&berth(&c, &["pull", "-a", &reg.name("multi/bb")]));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let tags = ok(&c.berth(&["images", "--format", "{{.Tag}}"]));
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, ["1", "multi"]);
}
