//! What clients of the legacy builder (the docker CLI with `DOCKER_BUILDKIT=0`, docker-py)
//! see: dockerd's wording for a failed RUN, a 500 for a context without its Dockerfile, and
//! `cache_from` that reuses only what the named images hold (nothing, when they are missing).

use std::process::Command;

use berth_e2e::{Daemon, have_docker, ok, text};

fn legacy_docker(d: &Daemon, args: &[&str], dir: &std::path::Path) -> std::process::Output {
    let mut c = d.docker_cmd(args);
    c.env("DOCKER_BUILDKIT", "0").current_dir(dir);
    c.output().unwrap()
}

#[test]
fn legacy_clients_get_dockerds_words_and_statuses() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let fail = d.dir_with("fail", "FROM busybox\nRUN exit 1\n");
    if have_docker() {
        let out = legacy_docker(&d, &["build", "-t", "f", "."], &fail);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("The command '/bin/sh -c exit 1' returned a non-zero code: 1"),
            "{}",
            text(&out.stderr)
        );
    }
    // A context without its Dockerfile: a 500 before any output, as dockerd answers.
    let empty = d.dir.path().join("ctx.tar");
    ok(&Command::new("tar")
        .args(["-cf", empty.to_str().unwrap(), "-C", d.dir.path().to_str().unwrap(), "fail/Dockerfile"])
        .output()
        .unwrap());
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-tar",
            "--data-binary",
        ])
        .arg(format!("@{}", empty.display()))
        .arg("--unix-socket")
        .arg(&d.socket)
        .arg("http://localhost/build?t=x")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "{\"message\":\"Cannot locate specified Dockerfile: Dockerfile\"}\n500");

    // docker-py reads the same words from the stream.
    let py = r#"
import io, sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 1\n"), tag="pyfail")
except docker.errors.BuildError as e:
    print("builderror", e.msg)
try:
    list(c.api.build(fileobj=open(sys.argv[2], "rb"), custom_context=True, tag="x"))
    print("no error")
except docker.errors.APIError as e:
    print("apierror", e.status_code, e.explanation)
"#;
    if Command::new("python3").args(["-c", "import docker"]).status().is_ok_and(|s| s.success()) {
        let out = Command::new("python3").args(["-c", py, &d.host(), empty.to_str().unwrap()]).output().unwrap();
        let o = ok(&out);
        assert!(o.contains("builderror The command '/bin/sh -c exit 1' returned a non-zero code: 1"), "{o}");
        assert!(o.contains("apierror 500 Cannot locate specified Dockerfile: Dockerfile"), "{o}");
    }
}

#[test]
fn cache_from_reuses_only_what_the_named_images_hold() {
    if !have_docker() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = d.dir_with("app", "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n");
    ok(&legacy_docker(&d, &["build", "-t", "app:1", "."], &dir));
    let again = ok(&legacy_docker(&d, &["build", "-t", "app:2", "."], &dir));
    assert_eq!(again.matches("Using cache").count(), 2, "{again}");
    // A missing image to take the cache from: nothing is reused.
    let missing = ok(&legacy_docker(&d, &["build", "--cache-from", "nosuch:latest", "-t", "app:3", "."], &dir));
    assert_eq!(missing.matches("Using cache").count(), 0, "{missing}");
    // The image the cache now holds: its layers are reused. (The cache keeps the latest
    // result of each step, so an image built before `app:3` reran the steps can lend only
    // the layers the two builds share.)
    let from = ok(&legacy_docker(&d, &["build", "--cache-from", "app:3", "-t", "app:4", "."], &dir));
    assert_eq!(from.matches("Using cache").count(), 2, "{from}");
    // An image that holds only the first step's layer: the second step runs.
    let base = d.dir_with("base", "FROM busybox\nRUN echo one > /one\n");
    ok(&legacy_docker(&d, &["build", "-t", "base:1", "."], &base));
    let dir2 = d.dir_with("app2", "FROM busybox\nRUN echo one > /one\nRUN echo three > /three\n");
    ok(&legacy_docker(&d, &["build", "-t", "app:5", "."], &dir2));
    let part = ok(&legacy_docker(&d, &["build", "--cache-from", "base:1", "-t", "app:6", "."], &dir2));
    assert_eq!(part.matches("Using cache").count(), 1, "{part}");
}
