//! Image archives: `save` → `load` into a fresh data root keeps image ids; archives are
//! read by skopeo (`docker-archive:`) and umoci (the OCI layout inside); `load` takes
//! Docker archives, plain OCI layouts, gzip and zstd; a corrupt archive (digest mismatch,
//! missing blob, truncated, a path escaping the archive or a layer) is refused in words
//! and leaves the store as it was. Also `import --change/-m` with both CLIs.

use std::path::Path;
use std::process::Command;

use berth_e2e::{Daemon, have_docker, ok, run_with_stdin, text};
use sha2::Digest as _;

fn sha(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// What the store holds: image ids, blobs and snapshots.
fn store_state(d: &Daemon) -> (String, Vec<String>, Vec<String>) {
    let ls = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    (
        ok(&d.berth(&["images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"])),
        ls(&d.data_root.join("content/blobs/sha256")),
        ls(&d.data_root.join("snapshots")),
    )
}

/// A tar of `(name, bytes)` entries, names written byte for byte (`../x` included).
fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A Docker archive of an image whose layers are `layers` (tars), tagged `tag`.
fn docker_archive(layers: &[Vec<u8>], tag: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", sha(l))).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let cfg_name = format!("blobs/sha256/{}", sha(&config));
    let layer_names: Vec<String> = layers.iter().map(|l| format!("blobs/sha256/{}", sha(l))).collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg_name, "RepoTags": [tag], "Layers": layer_names,
    }]))
    .unwrap();
    let mut entries: Vec<(&str, &[u8])> = vec![(&cfg_name, &config)];
    for (n, l) in layer_names.iter().zip(layers) {
        entries.push((n, l));
    }
    entries.push(("manifest.json", &manifest));
    raw_tar(&entries)
}

/// The bytes of entry `name` of the tar `a`.
fn entry(a: &[u8], name: &str) -> Vec<u8> {
    let mut ar = tar::Archive::new(a);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return v;
        }
    }
    panic!("{name} not in the archive")
}

/// Rewrites the archive `a`, mapping each entry through `f` (`None` drops it).
fn rewrite(a: &[u8], f: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut ar = tar::Archive::new(a);
    let mut b = tar::Builder::new(Vec::new());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let mut h = e.header().clone();
        if let Some(data) = f(&name, data) {
            h.set_size(data.len() as u64);
            b.append_data(&mut h, &name, &data[..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn save_then_load_into_a_fresh_root_keeps_ids_and_tools_read_it() {
    let a = Daemon::start();
    a.import_busybox("busybox:latest");
    ok(&a.berth(&["tag", "busybox", "team/bb:v1"]));
    let id = ok(&a.berth(&["inspect", "--format", "{{.Id}}", "busybox"])).trim().to_owned();
    let f = a.dir.path().join("bb.tar");
    let fs = f.to_str().unwrap();
    ok(&a.berth(&["save", "-o", fs, "busybox", "team/bb:v1"]));
    let names: Vec<String> = tar::Archive::new(&std::fs::read(&f).unwrap()[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    for n in ["manifest.json", "repositories", "index.json", "oci-layout", &format!("blobs/sha256/{}", &id[7..])] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    // Into a fresh data root: same id, same tags.
    let b = Daemon::start();
    let out = ok(&b.berth(&["load", "-i", fs]));
    assert_eq!(out, "Loaded image: busybox:latest\nLoaded image: team/bb:v1\n");
    assert_eq!(ok(&b.berth(&["inspect", "--format", "{{.Id}}", "team/bb:v1"])).trim(), id);
    assert_eq!(ok(&b.berth(&["run", "--rm", "busybox", "echo", "loaded"])).trim(), "loaded");
    // Loading again changes nothing.
    let before = store_state(&b);
    ok(&b.berth(&["load", "-q", "-i", fs]));
    assert_eq!(store_state(&b), before);

    // Compressed archives, and a plain OCI layout (no manifest.json), load too.
    let c = Daemon::start();
    let gz = Command::new("gzip").args(["-c", fs]).output().unwrap().stdout;
    assert_eq!(
        ok(&run_with_stdin(c.berth_cmd(&["load"]), &gz)),
        "Loaded image: busybox:latest\nLoaded image: team/bb:v1\n"
    );
    ok(&c.berth(&["rmi", "busybox", "team/bb:v1"]));
    let zst = Command::new("zstd").args(["-q", "-c", fs]).output().unwrap().stdout;
    ok(&run_with_stdin(c.berth_cmd(&["load"]), &zst));
    assert_eq!(ok(&c.berth(&["inspect", "--format", "{{.Id}}", "busybox"])).trim(), id);
    ok(&c.berth(&["rmi", "busybox", "team/bb:v1"]));
    let oci = rewrite(&std::fs::read(&f).unwrap(), |n, d| (n != "manifest.json" && n != "repositories").then_some(d));
    let out = ok(&run_with_stdin(c.berth_cmd(&["load"]), &oci));
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    assert_eq!(ok(&c.berth(&["inspect", "--format", "{{.Id}}", "busybox"])).trim(), id);

    // A save of an id carries no tag; its load says the id.
    let g = a.dir.path().join("byid.tar");
    ok(&a.berth(&["save", "-o", g.to_str().unwrap(), &id[7..19]]));
    let e = Daemon::start();
    assert_eq!(ok(&e.berth(&["load", "-i", g.to_str().unwrap()])), format!("Loaded image ID: {id}\n"));

    // skopeo reads the Docker archive; umoci unpacks the OCI layout inside it.
    if Path::new("/usr/bin/skopeo").exists() {
        let out =
            Command::new("skopeo").args(["inspect", &format!("docker-archive:{fs}:busybox:latest")]).output().unwrap();
        let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
        let layer_ids = ok(&a.berth(&["inspect", "--format", "{{json .RootFS.Layers}}", "busybox"]));
        assert_eq!(v["Layers"], serde_json::from_str::<serde_json::Value>(&layer_ids).unwrap());
    } else {
        eprintln!("skopeo is not installed; scripts/test installs it");
    }
    if Path::new("/usr/bin/umoci").exists() {
        let layout = a.dir.path().join("layout");
        std::fs::create_dir(&layout).unwrap();
        ok(&Command::new("tar").args(["-xf", fs, "-C", layout.to_str().unwrap()]).output().unwrap());
        let bundle = a.dir.path().join("bundle");
        let out = Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:v1", layout.display()), bundle.to_str().unwrap()])
            .output()
            .unwrap();
        ok(&out);
        assert!(bundle.join("rootfs/bin/busybox").is_file());
    } else {
        eprintln!("umoci is not installed; scripts/test installs it");
    }

    // The docker CLI: save and load through our daemon.
    if have_docker() {
        let h = a.dir.path().join("docker.tar");
        ok(&a.docker(&["save", "-o", h.to_str().unwrap(), "team/bb:v1"]));
        let out = a.docker(&["image", "save", "busybox"]);
        assert!(out.status.success() && !out.stdout.is_empty());
        let fresh = Daemon::start();
        let out = ok(&fresh.docker(&["load", "-i", h.to_str().unwrap()]));
        assert!(out.contains("Loaded image: team/bb:v1"), "{out}");
        assert_eq!(ok(&fresh.docker(&["inspect", "--format", "{{.Id}}", "team/bb:v1"])).trim(), id);
        let out = ok(&run_with_stdin(fresh.docker_cmd(&["load"]), &std::fs::read(&f).unwrap()));
        assert!(out.contains("Loaded image: busybox:latest"), "{out}");
        let e = fresh.docker(&["save", "nosuch:tag"]);
        assert!(text(&e.stderr).contains("No such image: nosuch:tag"), "{}", text(&e.stderr));
    }
}

#[test]
fn corrupt_archives_are_refused_and_store_nothing() {
    let a = Daemon::start();
    a.import_busybox("busybox:latest");
    let f = a.dir.path().join("bb.tar");
    ok(&a.berth(&["save", "-o", f.to_str().unwrap(), "busybox"]));
    let good = std::fs::read(&f).unwrap();
    let d = Daemon::start();
    let before = store_state(&d);
    let load = |bytes: &[u8]| run_with_stdin(d.berth_cmd(&["load"]), bytes);
    let refused = |bytes: &[u8], want: &str| {
        let out = load(bytes);
        assert!(!out.status.success(), "loaded a corrupt archive ({want})");
        assert!(text(&out.stderr).contains(want), "want {want:?}, got {}", text(&out.stderr));
        assert_eq!(store_state(&d), before, "a refused load ({want}) changed the store");
    };

    // A layer whose bytes do not match its digest.
    let manifest: serde_json::Value = serde_json::from_slice(&entry(&good, "manifest.json")).unwrap();
    let layer_name = manifest[0]["Layers"][0].as_str().unwrap().to_owned();
    let tampered = rewrite(&good, |n, mut d| {
        if n == layer_name {
            let at = d.len() / 2;
            d[at] ^= 0xff;
        }
        Some(d)
    });
    refused(&tampered, "digest mismatch");
    // A blob that is not there.
    let missing = rewrite(&good, |n, d| (n != layer_name).then_some(d));
    refused(&missing, "is missing");
    // Cut short.
    refused(&good[..good.len() / 2], "unexpected EOF");
    // Not an image archive at all.
    refused(&raw_tar(&[("hello", b"world")]), "invalid archive: does not contain a manifest.json");
    // An archive entry that climbs out of it.
    let mut escaping = raw_tar(&[("../escape", b"x")]);
    escaping.truncate(escaping.len() - 1024);
    escaping.extend(raw_tar(&[("manifest.json", b"[]")]));
    refused(&escaping, "path escapes the archive root");
    assert!(!d.dir.path().join("escape").exists() && !d.data_root.join("content/escape").exists());
    // A layer that climbs out of its root, after a good one that the load had added.
    let good_layer = raw_tar(&[("ok-file", b"fine")]);
    let bad_layer = raw_tar(&[("../../../../../../tmp/berth-layer-escape", b"bad")]);
    refused(&docker_archive(&[good_layer, bad_layer], "evil:1"), "path escapes the layer root");
    assert!(!Path::new("/tmp/berth-layer-escape").exists());
    // The untouched archive still loads.
    assert_eq!(ok(&load(&good)), "Loaded image: busybox:latest\n");
}

#[test]
fn import_change_and_message_with_both_clis() {
    let d = Daemon::start();
    let tar = Command::new("bash").arg(berth_e2e::repo_root().join("scripts/mkbusybox")).output().unwrap().stdout;
    let out = run_with_stdin(
        d.berth_cmd(&["import", "--change", "ENV K=V", "-c", "CMD [\"sh\"]", "-m", "from berth", "-", "imp:1"]),
        &tar,
    );
    ok(&out);
    assert_eq!(
        ok(&d.berth(&["inspect", "--format", "{{json .Config.Env}} {{json .Config.Cmd}}", "imp:1"])).trim(),
        r#"["K=V"] ["sh"]"#
    );
    let hist = ok(&d.berth(&["history", "--format", "{{.Comment}}", "imp:1"]));
    assert_eq!(hist.trim(), "from berth");
    assert_eq!(ok(&d.berth(&["run", "--rm", "imp:1", "sh", "-c", "echo $K"])).trim(), "V");
    if have_docker() {
        let out = run_with_stdin(
            d.docker_cmd(&[
                "import",
                "--change",
                "ENV K=W",
                "--change",
                "WORKDIR /tmp",
                "-m",
                "from docker",
                "-",
                "imp:2",
            ]),
            &tar,
        );
        ok(&out);
        assert_eq!(
            ok(&d.docker(&["inspect", "--format", "{{json .Config.Env}} {{.Config.WorkingDir}}", "imp:2"])).trim(),
            r#"["K=W"] /tmp"#
        );
        assert_eq!(ok(&d.docker(&["history", "--format", "{{.Comment}}", "imp:2"])).trim(), "from docker");
        // A single --change, which docker sends as one `changes` value.
        ok(&run_with_stdin(d.docker_cmd(&["import", "-c", "ENV ONE=1", "-", "imp:3"]), &tar));
        assert_eq!(ok(&d.docker(&["inspect", "--format", "{{json .Config.Env}}", "imp:3"])).trim(), r#"["ONE=1"]"#);
    }
    let e = run_with_stdin(d.berth_cmd(&["import", "-c", "BOGUS x", "-", "imp:4"]), &tar);
    assert!(!e.status.success());
}

/// `curl` against the daemon's socket: (status, body, headers).
fn curl(d: &Daemon, method: &str, path: &str, body: Option<&Path>) -> (u16, String, String) {
    let hdrs = d.dir.path().join("curl-headers");
    let mut c = Command::new("curl");
    c.args(["-s", "-X", method, "-D"])
        .arg(&hdrs)
        .args(["-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket);
    if method == "HEAD" {
        c.arg("-I");
    }
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/x-tar", "--data-binary"]).arg(format!("@{}", b.display()));
    }
    c.arg(format!("http://localhost{path}"));
    let out = c.output().unwrap();
    let s = text(&out.stdout);
    let (body, code) = s.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned(), std::fs::read_to_string(&hdrs).unwrap_or_default())
}

#[test]
fn the_api_answers_as_dockerd() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let f = d.dir.path().join("bb.tar");
    let (code, _, _) = curl(&d, "GET", "/v1.41/images/busybox/get", None);
    assert_eq!(code, 200);
    ok(&d.berth(&["save", "-o", f.to_str().unwrap(), "busybox"]));
    let (code, body, _) = curl(&d, "GET", "/images/get?names=nosuch", None);
    assert_eq!((code, body.as_str()), (404, r#"{"message":"No such image: nosuch:latest"}"#));
    // Progress, then the result, one JSON message a line.
    let (code, body, _) = curl(&d, "POST", "/images/load?quiet=0", Some(&f));
    assert_eq!(code, 200);
    let lines: Vec<serde_json::Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["status"] == "Loading layer" && l["progress"].as_str().is_some()), "{body}");
    assert_eq!(lines.last().unwrap()["stream"], "Loaded image: busybox:latest\n");
    let (code, body, _) = curl(&d, "POST", "/images/load?quiet=1", Some(&f));
    assert_eq!((code, body.trim()), (200, r#"{"stream":"Loaded image: busybox:latest\n"}"#));
    // A bad archive before any output is the HTTP status, as dockerd answers it.
    let junk = d.dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let (code, body, _) = curl(&d, "POST", "/images/load?quiet=1", Some(&junk));
    assert_eq!(code, 400, "{body}");
    // The path stat header on HEAD and GET.
    ok(&d.berth(&["run", "-d", "--name", "st", "busybox", "sleep", "1000"]));
    let (code, _, h) = curl(&d, "HEAD", "/containers/st/archive?path=/bin", None);
    assert_eq!(code, 200);
    let v = h
        .lines()
        .find_map(|l| {
            l.strip_prefix("X-Docker-Container-Path-Stat: ").or(l.strip_prefix("x-docker-container-path-stat: "))
        })
        .unwrap();
    let dec = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = {
        use std::io::Write;
        let mut dec = dec;
        dec.stdin.take().unwrap().write_all(v.trim().as_bytes()).unwrap();
        dec.wait_with_output().unwrap()
    };
    let stat: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stat["name"], "bin");
    assert_eq!(stat["mode"].as_u64().unwrap() & (1 << 31), 1 << 31, "{stat}");
    let (code, _, _) = curl(&d, "HEAD", "/containers/st/archive?path=/nope", None);
    assert_eq!(code, 404);
    let (code, body, _) = curl(&d, "GET", "/containers/st/archive", None);
    assert_eq!((code, body.as_str()), (400, r#"{"message":"path cannot be empty"}"#));
    let (code, body, _) = curl(&d, "PUT", "/containers/st/archive?path=/bin/busybox", Some(&f));
    assert_eq!((code, body.as_str()), (400, r#"{"message":"extraction point is not a directory"}"#));
    let (code, body, _) = curl(&d, "GET", "/containers/nosuch/changes", None);
    assert_eq!((code, body.as_str()), (404, r#"{"message":"No such container: nosuch"}"#));
    let (code, body, _) = curl(&d, "GET", "/containers/st/changes", None);
    assert_eq!((code, body.as_str()), (200, "null"));
}

const PY_SAVE_LOAD: &str = r#"
import sys, docker
a = docker.DockerClient(base_url=sys.argv[1])
b = docker.DockerClient(base_url=sys.argv[2])
img = a.images.get("busybox:latest")
data = b"".join(img.save(named=True))
loaded = b.images.load(data)
print("loaded", [i.id for i in loaded], [t for i in loaded for t in i.tags])
print("same", loaded[0].id == img.id)
"#;

#[test]
fn docker_py_saves_and_loads() {
    if Command::new("python3").args(["-c", "import docker"]).status().map(|s| !s.success()).unwrap_or(true) {
        eprintln!("docker-py is not installed; scripts/test installs it");
        return;
    }
    let a = Daemon::start();
    a.import_busybox("busybox:latest");
    let b = Daemon::start();
    let out = Command::new("python3").args(["-c", PY_SAVE_LOAD, &a.host(), &b.host()]).output().unwrap();
    let o = ok(&out);
    assert!(o.contains("'busybox:latest'") && o.contains("same True"), "{o}\n{}", text(&out.stderr));
}
