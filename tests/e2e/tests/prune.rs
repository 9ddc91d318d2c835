//! `container prune`, `image prune [-a]`, `system prune -a --volumes` and `system df`:
//! what they remove, what they keep (running containers, images in use, named volumes),
//! and that the space they report as reclaimed really is free afterwards, measured with
//! `du` on the data root.

use std::process::Command;

use berth_e2e::{Daemon, have_docker, ok, text};

fn setup() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    d
}

/// Apparent bytes under `p`, as `du -sb` counts them.
fn du(p: &std::path::Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(p).output().unwrap();
    text(&out.stdout).split_whitespace().next().unwrap().parse().unwrap()
}

/// The number after "Total reclaimed space: ", in bytes (docker's decimal units).
fn reclaimed(out: &str) -> f64 {
    let line = out.lines().find_map(|l| l.strip_prefix("Total reclaimed space: ")).expect(out);
    let end = line.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap();
    let n: f64 = line[..end].parse().unwrap();
    n * match &line[end..] {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        u => panic!("unit {u}"),
    }
}

#[test]
fn container_and_image_prune_keep_what_is_in_use() {
    let d = setup();
    let a = ok(&d.berth(&["create", "busybox", "true"])).trim().to_owned();
    ok(&d.berth(&["run", "--name", "done", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /f"]));
    let done = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "done"])).trim().to_owned();
    ok(&d.berth(&["run", "-d", "--name", "up", "busybox", "sleep", "300"]));
    let out = ok(&d.berth(&["container", "prune", "-f"]));
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains(&a) && out.contains(&done), "{out}");
    assert!(reclaimed(&out) >= 100_000.0, "{out}");
    assert_eq!(ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}"])), "up\n");

    // A dangling image goes with plain prune; a tagged one only with -a, and not while used.
    let dir = d.dir_with("img", "FROM busybox\nRUN head -c 300000 /dev/urandom > /blob\n");
    ok(&d.build_plain(&dir, &["-t", "big:1", "."]));
    ok(&d.berth(&["tag", "big:1", "big:2"]));
    ok(&d.berth(&["rmi", "big:1", "big:2"]));
    let dir = d.dir_with("img2", "FROM busybox\nRUN head -c 200000 /dev/urandom > /blob\n");
    ok(&d.build_plain(&dir, &["-t", "dangling:1", "."]));
    let dangling_id = ok(&d.berth(&["images", "-q", "--no-trunc", "dangling:1"])).trim().to_owned();
    ok(&d.build_plain(&dir, &["--no-cache", "-t", "dangling:1", "."]));
    let out = ok(&d.berth(&["image", "prune", "-f"]));
    assert!(out.contains(&format!("deleted: {dangling_id}")), "{out}");
    assert!(reclaimed(&out) >= 200_000.0, "{out}");
    let out = ok(&d.berth(&["image", "prune", "-a", "-f"]));
    assert!(out.contains("untagged: dangling:1"), "{out}");
    assert!(!out.contains("busybox"), "busybox is used by a running container: {out}");
    assert_eq!(ok(&d.berth(&["images", "--format", "{{.Repository}}"])), "busybox\n");
    if have_docker() {
        let out = ok(&d.docker(&["container", "prune", "-f"]));
        assert_eq!(out, "Total reclaimed space: 0B\n");
        let out = d.docker(&["image", "prune", "--filter", "bogus=1", "-f"]);
        assert_ne!(out.status.code(), Some(0));
        assert!(text(&out.stderr).contains("invalid filter 'bogus'"), "{}", text(&out.stderr));
    }
}

#[test]
fn system_prune_all_volumes_frees_what_du_says() {
    let d = setup();
    let dir = d.dir_with("big", "FROM busybox\nRUN head -c 6000000 /dev/urandom > /big\n");
    ok(&d.build_plain(&dir, &["-t", "big:1", "."]));
    ok(&d.berth(&[
        "run",
        "--name",
        "writer",
        "-v",
        "/v",
        "-v",
        "named:/n",
        "big:1",
        "sh",
        "-c",
        "head -c 3000000 /dev/urandom > /v/f; head -c 2000000 /dev/urandom > /c; echo kept > /n/k",
    ]));
    ok(&d.berth(&["run", "-d", "--name", "keep", "busybox", "sleep", "300"]));
    let df = ok(&d.berth(&["system", "df"]));
    assert!(df.contains("Local Volumes   2 "), "{df}");
    let dfv = ok(&d.berth(&["system", "df", "-v"]));
    assert!(dfv.contains("Local Volumes space usage:") && dfv.contains("named "), "{dfv}");
    let before = du(&d.data_root);
    let out = ok(&d.berth(&["system", "prune", "-a", "--volumes", "-f"]));
    let after = du(&d.data_root);
    let said = reclaimed(&out);
    assert!(out.contains("Deleted Containers:") && out.contains("Deleted Volumes:\n"), "{out}");
    assert!(!out.contains("named"), "a named volume stays, as with Docker 23: {out}");
    assert!(out.contains("Deleted Images:") && out.contains("untagged: big:1"), "{out}");
    assert!(said >= 11_000_000.0, "the image layer, the volume and the container: {out}");
    let freed = before.saturating_sub(after) as f64;
    eprintln!("system prune -a --volumes: reported {said} bytes, du -sb of the data root dropped by {freed}");
    assert!(freed >= said * 0.95, "du says {freed} bytes freed, prune said {said}: {out}");
    assert!(freed <= said * 1.05 + 2_000_000.0, "du says {freed} bytes freed, prune said {said}: {out}");
    assert_eq!(ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}"])), "keep\n");
    assert_eq!(ok(&d.berth(&["images", "--format", "{{.Repository}}"])), "busybox\n");
    assert_eq!(ok(&d.berth(&["volume", "ls", "-q"])), "named\n");
    assert_eq!(ok(&d.berth(&["run", "--rm", "-v", "named:/n", "busybox", "cat", "/n/k"])), "kept\n");
    // Nothing left: a second prune reclaims nothing.
    let out = ok(&d.berth(&["system", "prune", "-a", "--volumes", "-f"]));
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
}
