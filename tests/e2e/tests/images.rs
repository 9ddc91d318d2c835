//! Images through the API: import, tag, inspect (layer digests), history, rmi rules, and
//! bad input that must fail clearly and change nothing.

use berth_e2e::{Daemon, have_docker, ok, text};

fn busybox_tar() -> Vec<u8> {
    let out =
        std::process::Command::new("bash").arg(berth_e2e::repo_root().join("scripts/mkbusybox")).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn image_ids(d: &Daemon) -> String {
    ok(&d.berth(&["images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]))
}

#[test]
fn images_inspect_and_history_show_layers() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let images = ok(&d.berth(&["images"]));
    let header = images.lines().next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(images.lines().any(|l| l.starts_with("busybox ") && l.contains("latest")), "{images}");
    let layers = ok(&d.berth(&["inspect", "--format", "{{json .RootFS.Layers}}", "busybox"]));
    let layers: Vec<String> = serde_json::from_str(layers.trim()).unwrap();
    assert_eq!(layers.len(), 1);
    assert!(layers[0].starts_with("sha256:") && layers[0].len() == 71, "{layers:?}");
    let inspect: serde_json::Value = serde_json::from_str(&ok(&d.berth(&["image", "inspect", "busybox"])))
        .unwrap_or_else(|_| serde_json::from_str(&ok(&d.berth(&["inspect", "busybox"]))).unwrap());
    assert_eq!(inspect[0]["RootFS"]["Layers"][0].as_str().unwrap(), layers[0]);
    assert!(ok(&d.berth(&["history", "busybox"])).contains("Imported from -"));
    if have_docker() {
        let l = ok(&d.docker(&["image", "inspect", "--format", "{{index .RootFS.Layers 0}}", "busybox"]));
        assert_eq!(l.trim(), layers[0]);
        assert!(ok(&d.docker(&["images"])).contains("busybox"));
        ok(&d.docker(&["tag", "busybox", "localhost:5000/team/bb:v1"]));
        assert!(
            ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])).contains("localhost:5000/team/bb:v1")
        );
        assert!(ok(&d.docker(&["history", "busybox"])).contains("IMAGE"));
    }
}

#[test]
fn rmi_is_refused_while_a_container_uses_the_image() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "--name", "user1", "busybox", "true"]));
    let out = d.berth(&["rmi", "busybox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("conflict: unable to remove repository reference \"busybox\""),
        "{}",
        text(&out.stderr)
    );
    assert!(image_ids(&d).contains("busybox:latest"), "the image is still there");
    if have_docker() {
        let out = d.docker(&["rmi", "busybox"]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("container"), "{}", text(&out.stderr));
    }
    ok(&d.berth(&["rm", "user1"]));
    let out = ok(&d.berth(&["rmi", "busybox"]));
    assert!(out.contains("Untagged: busybox:latest") && out.contains("Deleted: sha256:"), "{out}");
    assert!(!image_ids(&d).contains("busybox"));
    // The store really freed the layer: a fresh import works and nothing is left behind.
    d.import_busybox("busybox:latest");
}

#[test]
fn tag_and_untag_keep_the_image_until_the_last_reference() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["tag", "busybox", "iris-train:1.0.0"]));
    let out = ok(&d.berth(&["rmi", "iris-train:1.0.0"]));
    assert_eq!(out.trim(), "Untagged: iris-train:1.0.0");
    assert!(image_ids(&d).contains("busybox:latest"));
}

#[test]
fn bad_input_fails_clearly_and_changes_nothing() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let before = image_ids(&d);

    let out = d.berth(&["run", "--rm", "nosuchimage"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("nosuchimage"), "{}", text(&out.stderr));

    let out = d.berth(&["run", "--bogus", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("unknown flag: --bogus"), "{}", text(&out.stderr));

    let out = d.berth(&["run", "--rm", "-v", "/a:/b:c:d", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("invalid"), "{}", text(&out.stderr));

    // A truncated and a corrupt tarball.
    let tar = busybox_tar();
    let out = d.berth_with_stdin(&["import", "-", "broken:1"], &tar[..tar.len() / 2 + 100]);
    assert!(!out.status.success(), "truncated tar accepted");
    let mut gz = flate_gzip(&tar);
    let n = gz.len();
    gz.truncate(n - n / 3);
    let out = d.berth_with_stdin(&["import", "-", "broken:2"], &gz);
    assert!(!out.status.success(), "truncated gzip accepted");
    let out = d.berth_with_stdin(&["import", "-", "broken:3"], b"this is not a tarball at all, just words ....");
    assert!(!out.status.success(), "garbage accepted");

    // Path escapes.
    for (name, tar) in [("dotdot", escape_tar_dotdot()), ("symlink", escape_tar_symlink())] {
        let out = d.berth_with_stdin(&["import", "-", &format!("evil:{name}")], &tar);
        assert!(!out.status.success(), "{name} escape accepted");
    }
    assert!(!std::path::Path::new("/tmp/berth-escaped").exists());
    assert_eq!(image_ids(&d), before, "no image appeared or vanished");
    ok(&d.berth(&["run", "--rm", "busybox", "true"]));
}

fn flate_gzip(data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    out.stdout
}

/// A raw ustar header + body for a file named `path` (the tar crate refuses to write `..`).
fn raw_entry(path: &str, kind: u8, link: &str, body: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..path.len()].copy_from_slice(path.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    let size = format!("{:011o}", body.len());
    h[124..135].copy_from_slice(size.as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let sum = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(sum.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn escape_tar_dotdot() -> Vec<u8> {
    let mut t = raw_entry("../../../../../../tmp/berth-escaped", b'0', "", b"pwned\n");
    t.extend(vec![0u8; 1024]);
    t
}

fn escape_tar_symlink() -> Vec<u8> {
    let mut t = raw_entry("link", b'2', "/tmp", b"");
    t.extend(raw_entry("link/berth-escaped", b'0', "", b"pwned\n"));
    t.extend(vec![0u8; 1024]);
    t
}
