//! `berth registry serve` as a process, driven by independent clients: skopeo copies a
//! busybox image (an OCI layout made by umoci) in and out and inspects it, with htpasswd
//! Basic auth (wrong and right credentials) and with TLS (a self-signed certificate made by
//! openssl); containerd's `ctr` pulls the image and runs it with runc; a kill -9 in the
//! middle of an upload leaves nothing visible and a consistent storage; a 1 GiB upload
//! leaves the server's memory flat.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::registry::{Registry, busybox_oci_layout};
use berth_e2e::{ok, text};
use sha2::Digest as _;

fn skopeo(args: &[&str]) -> Output {
    Command::new("skopeo").args(args).stdin(Stdio::null()).output().expect("run skopeo")
}

fn curl(args: &[&str]) -> Output {
    // No `Expect: 100-continue`: the answers are read as one head each.
    Command::new("curl").args(["-sS", "-H", "Expect:"]).args(args).stdin(Stdio::null()).output().expect("run curl")
}

/// A header of a curl `-i`/`-I` answer.
fn header(out: &Output, name: &str) -> Option<String> {
    let t = text(&out.stdout);
    t.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

fn status(out: &Output) -> u16 {
    let t = text(&out.stdout);
    t.lines().next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The storage's invariants, checked from outside: every blob hashes to its name and is
/// linked by some repository, every link names a stored blob, no temp file is left.
fn check_storage(root: &Path) {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    let linked: std::collections::HashSet<String> = files
        .iter()
        .filter(|f| {
            let p = f.to_string_lossy();
            p.contains("/_layers/sha256/") || p.contains("/_manifests/revisions/sha256/")
        })
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tmp-"), "temp file left: {}", f.display());
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("blobs/") {
            let data = std::fs::read(f).unwrap();
            assert_eq!(hex::encode(sha2::Sha256::digest(&data)), name, "blob {rel} does not match its name");
            assert!(linked.contains(&name), "blob {rel} is linked by no repository");
        } else if rel.contains("/_layers/sha256/") || rel.contains("/_manifests/revisions/sha256/") {
            let blob = root.join("blobs/sha256").join(&name[..2]).join(&name);
            assert!(blob.is_file(), "{rel} names no stored blob");
        }
    }
}

#[test]
fn skopeo_copies_in_and_out_and_inspects() {
    let reg = Registry::start(&[]);
    let layout = reg.dir.path().join("layout");
    let digest = busybox_oci_layout(&layout);
    let dest = format!("docker://{}/e2e/busybox:1", reg.host());
    ok(&skopeo(&["copy", "--dest-tls-verify=false", &format!("oci:{}:latest", layout.display()), &dest]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&skopeo(&["inspect", "--tls-verify=false", &dest]))).expect("inspect json");
    assert_eq!(inspect["Digest"], digest, "the manifest arrives byte for byte");
    assert_eq!(inspect["RepoTags"], serde_json::json!(["1"]));
    assert_eq!(inspect["Os"], "linux");
    let raw = ok(&skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]));
    assert_eq!(format!("sha256:{}", hex::encode(sha2::Sha256::digest(raw.as_bytes()))), digest);

    // Registry to registry (a second repository), and back out to a layout.
    let dest2 = format!("docker://{}/e2e/copy:2", reg.host());
    ok(&skopeo(&["copy", "--src-tls-verify=false", "--dest-tls-verify=false", &dest, &dest2]));
    let back = reg.dir.path().join("back");
    ok(&skopeo(&["copy", "--src-tls-verify=false", &dest2, &format!("oci:{}:x", back.display())]));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
    let catalog = ok(&curl(&[&format!("http://{}/v2/_catalog", reg.host())]));
    assert_eq!(catalog, r#"{"repositories":["e2e/busybox","e2e/copy"]}"#);

    // Unknown tags and repositories.
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{}/e2e/busybox:nope", reg.host())]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("manifest unknown"), "{}", text(&out.stderr));
    check_storage(&reg.root);
}

#[test]
fn htpasswd_basic_auth_with_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let out =
        Command::new("htpasswd").args(["-Bbn", "alice", "open sesame"]).output().expect("htpasswd (apache2-utils)");
    std::fs::write(&htpasswd, ok(&out)).unwrap();
    let reg = Registry::start(&["--htpasswd", htpasswd.to_str().unwrap()]);
    let layout = reg.dir.path().join("layout");
    busybox_oci_layout(&layout);
    let src = format!("oci:{}:latest", layout.display());
    let dest = format!("docker://{}/private/bb:1", reg.host());
    for creds in [None, Some("alice:wrong"), Some("mallory:open sesame")] {
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if let Some(c) = creds {
            args.extend(["--dest-creds", c]);
        }
        args.extend([src.as_str(), dest.as_str()]);
        let out = skopeo(&args);
        assert!(!out.status.success(), "{creds:?} got in");
        let err = text(&out.stderr);
        assert!(err.contains("authentication required"), "{creds:?}: {err}");
    }
    let r = curl(&["-i", "-u", "alice:wrong", &format!("http://{}/v2/", reg.host())]);
    assert_eq!(status(&r), 401);
    assert_eq!(header(&r, "www-authenticate").as_deref(), Some("Basic realm=\"berth-registry\""));
    assert!(
        text(&r.stdout)
            .contains(r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#)
    );
    ok(&skopeo(&["copy", "--dest-tls-verify=false", "--dest-creds", "alice:open sesame", &src, &dest]));
    let out = skopeo(&["inspect", "--tls-verify=false", &dest]);
    assert!(!out.status.success(), "reading needs credentials too");
    ok(&skopeo(&["inspect", "--tls-verify=false", "--creds", "alice:open sesame", &dest]));
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (cert, key) = (certs.join("ca.crt"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    ok(&out);
    let reg = Registry::start(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(reg.log().contains("listening on https://"), "{}", reg.log());
    let layout = reg.dir.path().join("layout");
    let digest = busybox_oci_layout(&layout);
    let dest = format!("docker://{}/secure/bb:1", reg.host());
    // Verified against the certificate (skopeo reads CAs from *.crt in the cert dir).
    ok(&skopeo(&[
        "copy",
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        &format!("oci:{}:latest", layout.display()),
        &dest,
    ]));
    let inspect = ok(&skopeo(&["inspect", "--cert-dir", certs.to_str().unwrap(), &dest]));
    assert!(inspect.contains(&digest), "{inspect}");
    // Without the CA the client refuses the certificate.
    let out = skopeo(&["inspect", &dest]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("certificate"), "{}", text(&out.stderr));
    let r = curl(&["--cacert", cert.to_str().unwrap(), &format!("https://{}/v2/", reg.host())]);
    assert_eq!(ok(&r), "{}");
}

/// containerd started by hand, with every path of its own under a temp dir; killed and
/// cleaned up (shims, mounts) when dropped.
struct Containerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new().prefix("bctd").tempdir_in("/tmp").unwrap();
        let d = dir.path().display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd (Debian package containerd)");
        let c = Containerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if c.ctr(&["version"]).status.success() {
                return c;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "containerd did not start: {}",
            std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
        );
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(self.dir.path().join("c.sock"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let me = self.dir.path().display().to_string();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&me)
                && let Some(p) = rustix::process::Pid::from_raw(pid)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> =
            mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&me)).collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

#[test]
fn containerd_pulls_from_it_and_runs_the_image() {
    let reg = Registry::start(&[]);
    let layout = reg.dir.path().join("layout");
    let digest = busybox_oci_layout(&layout);
    let image = format!("{}/e2e/ctr:1", reg.host());
    ok(&skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{image}"),
    ]));
    let ctd = Containerd::start();
    ok(&ctd.ctr(&["images", "pull", "--plain-http", &image]));
    let check = ok(&ctd.ctr(&["images", "check"]));
    let line = check.lines().find(|l| l.starts_with(&image)).unwrap_or_else(|| panic!("{check}"));
    assert!(line.contains(&digest) && line.contains("complete"), "{line}");
    let id = format!("berth-e2e-{}", std::process::id());
    let out = ctd.ctr(&["run", "--rm", &image, &id, "/bin/sh", "-c", "echo hello from $(cat /etc/hostname)"]);
    assert_eq!(ok(&out).trim(), "hello from busybox");
}

/// Bytes that do not compress and do not repeat.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn upload_range(reg: &Registry, loc: &str) -> Option<u64> {
    let r = curl(&["-i", &format!("http://{}{loc}", reg.host())]);
    if status(&r) != 204 {
        return None;
    }
    header(&r, "range").and_then(|r| r.split('-').nth(1).and_then(|e| e.parse::<u64>().ok())).map(|e| e + 1)
}

#[test]
fn kill_9_mid_upload_leaves_nothing_visible_and_the_upload_resumable() {
    let mut reg = Registry::start(&[]);
    let data = noise(32 << 20);
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
    let r = curl(&["-i", "-X", "POST", &format!("http://{}/v2/crash/blobs/uploads/", reg.host())]);
    assert_eq!(status(&r), 202);
    let loc = header(&r, "location").unwrap();

    // A monolithic upload the client cuts short stores nothing.
    let full = reg.dir.path().join("full");
    std::fs::write(&full, &data).unwrap();
    let cut = curl(&[
        "-X",
        "POST",
        "--max-time",
        "1",
        "--limit-rate",
        "2M",
        "--data-binary",
        &format!("@{}", full.display()),
        &format!("http://{}/v2/crash/blobs/uploads/?digest={digest}", reg.host()),
    ]);
    assert!(!cut.status.success());

    // A chunk streams in (curl sends what we feed it) and the server dies half way.
    let mut push = Command::new("curl")
        .args(["-sS", "-X", "PATCH", "-H", "Content-Type: application/octet-stream", "-T", "-"])
        .arg(format!("http://{}{loc}", reg.host()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = push.stdin.take().unwrap();
    stdin.write_all(&data[..12 << 20]).unwrap();
    stdin.flush().unwrap();
    let staged = |reg: &Registry| {
        let uploads = reg.root.join("repositories/crash/_uploads");
        std::fs::read_dir(&uploads)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while staged(&reg) < 1 << 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(staged(&reg) >= 1 << 20, "the chunk did not start arriving");
    reg.kill();
    drop(stdin);
    let _ = push.wait();
    reg.restart();
    // Nothing visible: the blob is unknown, the storage consistent.
    let head = curl(&["-I", &format!("http://{}/v2/crash/blobs/{digest}", reg.host())]);
    assert_eq!(status(&head), 404);
    check_storage(&reg.root);
    let have = upload_range(&reg, &loc).expect("the upload survives the crash");
    assert!(have > 0 && have <= 12 << 20, "{have}");
    assert_eq!(staged(&reg), have);

    // Resume where the staged bytes end, finish, and get the blob back whole.
    let rest = reg.dir.path().join("rest");
    std::fs::write(&rest, &data[have as usize..]).unwrap();
    let r = curl(&[
        "-i",
        "-X",
        "PATCH",
        "-H",
        &format!("Content-Range: {have}-{}", data.len() - 1),
        "--data-binary",
        &format!("@{}", rest.display()),
        &format!("http://{}{loc}", reg.host()),
    ]);
    assert_eq!(status(&r), 202, "{}", text(&r.stdout));
    let r = curl(&["-i", "-X", "PUT", &format!("http://{}{loc}?digest={digest}", reg.host())]);
    assert_eq!(status(&r), 201, "{}", text(&r.stdout));
    let got =
        Command::new("curl").args(["-sS", &format!("http://{}/v2/crash/blobs/{digest}", reg.host())]).output().unwrap();
    assert!(got.stdout == data, "the blob comes back whole");
    check_storage(&reg.root);
}

/// The peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn memory_stays_flat_while_a_1_gib_blob_streams_in_and_out() {
    let reg = Registry::start(&[]);
    const GIB: u64 = 1 << 30;
    let sum = Command::new("bash").args(["-c", &format!("head -c {GIB} /dev/zero | sha256sum")]).output().unwrap();
    let digest = format!("sha256:{}", text(&sum.stdout).split_whitespace().next().unwrap());
    let r = curl(&["-i", "-X", "POST", &format!("http://{}/v2/big/blobs/uploads/", reg.host())]);
    let loc = header(&r, "location").unwrap();
    // One chunked PATCH of 1 GiB, then the PUT.
    let push = Command::new("bash")
        .args(["-c", &format!("head -c {GIB} /dev/zero | curl -sS -f -X PATCH -H 'Content-Type: application/octet-stream' -T - 'http://{}{loc}'", reg.host())])
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", text(&push.stderr));
    let r = curl(&["-i", "-X", "PUT", &format!("http://{}{loc}?digest={digest}", reg.host())]);
    assert_eq!(status(&r), 201, "{}", text(&r.stdout));
    // And out again.
    let pull = Command::new("bash")
        .args(["-c", &format!("curl -sS -f 'http://{}/v2/big/blobs/{digest}' | sha256sum", reg.host())])
        .output()
        .unwrap();
    assert_eq!(format!("sha256:{}", text(&pull.stdout).split_whitespace().next().unwrap_or("")), digest);
    let peak = peak_rss(reg.pid());
    eprintln!("berth registry serve: peak RSS {} MiB after 1 GiB in and out", peak >> 20);
    assert!(peak < 128 << 20, "peak RSS {} MiB: the body was buffered", peak >> 20);
    let r = curl(&["-i", "-X", "DELETE", &format!("http://{}/v2/big/blobs/{digest}", reg.host())]);
    assert_eq!(status(&r), 202);
    assert!(
        std::fs::read_dir(reg.root.join("blobs/sha256"))
            .unwrap()
            .flatten()
            .all(|fan| std::fs::read_dir(fan.path()).unwrap().next().is_none()),
        "the blob's bytes are reclaimed"
    );
}

/// Validates a JSON document against one of the OCI image-spec JSON schemas handed to us
/// in `shared/testdata/oci-image-schema` (draft-04; every `$ref` resolved to the local
/// files), with Python's jsonschema.
const SCHEMA_CHECK: &str = r##"
import json, os, sys, warnings
warnings.simplefilter("ignore")
import jsonschema
schema_dir, schema_name, instance = sys.argv[1], sys.argv[2], sys.argv[3]
load = lambda name: json.load(open(os.path.join(schema_dir, name)))
local = lambda uri: load(uri.split("#")[0].rstrip("/").rsplit("/", 1)[-1])
schema = load(schema_name)
resolver = jsonschema.RefResolver(schema["id"], schema, handlers={"https": local, "http": local})
jsonschema.Draft4Validator(schema, resolver=resolver).validate(json.load(open(instance)))
"##;

fn oci_schemas() -> std::path::PathBuf {
    let root = berth_e2e::repo_root();
    let found = [root.join("../shared"), root.join("../../shared")]
        .into_iter()
        .map(|s| s.join("testdata/oci-image-schema"))
        .find(|p| p.is_dir());
    found.expect("the OCI image schemas are missing: expected shared/testdata/oci-image-schema beside the project root")
}

#[track_caller]
fn assert_schema_valid(schema: &str, doc: &[u8], scratch: &Path) {
    let file = scratch.join("doc.json");
    std::fs::write(&file, doc).unwrap();
    let out = Command::new("python3")
        .args(["-c", SCHEMA_CHECK])
        .arg(oci_schemas())
        .arg(schema)
        .arg(&file)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{schema}: {}\n{}", text(&out.stderr), text(doc));
}

#[test]
fn referrers_listing_is_a_valid_oci_index() {
    let reg = Registry::start(&[]);
    let layout = reg.dir.path().join("layout");
    let digest = busybox_oci_layout(&layout);
    let base = format!("http://{}/v2/e2e/art", reg.host());
    ok(&skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{}/e2e/art:1", reg.host()),
    ]));
    let image = Command::new("curl").args(["-sS", "-f", &format!("{base}/manifests/1")]).output().unwrap();
    assert_schema_valid("image-manifest-schema.json", &image.stdout, reg.dir.path());

    // An SBOM-like artifact about the image: the empty config, one layer, a subject.
    let push = |data: &[u8]| {
        let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
        let f = reg.dir.path().join("blob");
        std::fs::write(&f, data).unwrap();
        let r = curl(&[
            "-i",
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", f.display()),
            &format!("{base}/blobs/uploads/?digest={d}"),
        ]);
        assert_eq!(status(&r), 201, "{}", text(&r.stdout));
        (d, data.len())
    };
    let (empty, _) = push(b"{}");
    let (sbom, sbom_len) = push(b"{\"packages\":[\"busybox\"]}");
    let artifact = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.example.sbom.v1+json", "digest": sbom, "size": sbom_len}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": image.stdout.len()},
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    });
    let bytes = serde_json::to_vec(&artifact).unwrap();
    assert_schema_valid("image-manifest-schema.json", &bytes, reg.dir.path());
    let art_digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    let f = reg.dir.path().join("artifact.json");
    std::fs::write(&f, &bytes).unwrap();
    let r = curl(&[
        "-i",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("{base}/manifests/{art_digest}"),
    ]);
    assert_eq!(status(&r), 201, "{}", text(&r.stdout));
    assert_eq!(header(&r, "oci-subject").as_deref(), Some(digest.as_str()));

    let listing = Command::new("curl").args(["-sS", "-f", &format!("{base}/referrers/{digest}")]).output().unwrap();
    assert_schema_valid("image-index-schema.json", &listing.stdout, reg.dir.path());
    let v: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(v["manifests"][0]["digest"], art_digest);
    assert_eq!(v["manifests"][0]["artifactType"], "application/vnd.example.sbom.v1+json");
    // skopeo still sees the image itself unchanged.
    let inspect = ok(&skopeo(&["inspect", "--tls-verify=false", &format!("docker://{}/e2e/art:1", reg.host())]));
    assert!(inspect.contains(&digest));
}
