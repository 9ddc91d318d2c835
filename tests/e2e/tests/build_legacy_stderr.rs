//! A failing RUN step's output as dockerd 20.10's legacy builder streams it to its clients
//! (`POST /build` without BuildKit: the docker CLI with `DOCKER_BUILDKIT=0`, docker-py):
//! stderr writes wrapped in `\x1b[91m` … `\x1b[0m`, stdout as is, then one error message
//! whose `errorDetail` carries the command's exit code, which the docker CLI exits with.

use std::process::Command;

use berth_e2e::{Daemon, have_docker, ok, text};
use serde_json::Value;

const DOCKERFILE: &str = "FROM busybox\nRUN echo to-out; echo to-err >&2; echo more-err >&2; exit 3\n";
const MESSAGE: &str =
    "The command '/bin/sh -c echo to-out; echo to-err >&2; echo more-err >&2; exit 3' returned a non-zero code: 3";

#[test]
fn a_failing_steps_stderr_arrives_wrapped_and_its_code_ends_the_stream() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = d.dir_with("fail", DOCKERFILE);

    // The raw stream, as dockerd 20.10 sends it.
    let tar = d.dir.path().join("ctx.tar");
    ok(&Command::new("tar")
        .args(["-cf", tar.to_str().unwrap(), "-C", dir.to_str().unwrap(), "Dockerfile"])
        .output()
        .unwrap());
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "-H", "Content-Type: application/x-tar", "--data-binary"])
        .arg(format!("@{}", tar.display()))
        .arg("--unix-socket")
        .arg(&d.socket)
        .arg("http://x/v1.41/build?t=f")
        .output()
        .unwrap();
    let msgs: Vec<Value> = text(&out.stdout)
        .split("\r\n")
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let streams: Vec<&str> = msgs.iter().filter_map(|m| m["stream"].as_str()).collect();
    let err: String = streams.iter().filter(|s| s.starts_with("\x1b[91m")).copied().collect();
    assert!(!err.is_empty(), "no stderr chunk in {streams:?}");
    assert!(streams.iter().filter(|s| s.starts_with("\x1b[91m")).all(|s| s.ends_with("\x1b[0m")), "{streams:?}");
    assert_eq!(err.replace("\x1b[91m", "").replace("\x1b[0m", ""), "to-err\nmore-err\n", "{streams:?}");
    assert!(streams.contains(&"to-out\n"), "stdout goes unwrapped: {streams:?}");
    let errors: Vec<&Value> = msgs.iter().filter(|m| m.get("error").is_some()).collect();
    assert_eq!(errors.len(), 1, "one error ends the stream: {msgs:?}");
    assert_eq!(errors[0]["error"], MESSAGE);
    assert_eq!(errors[0]["errorDetail"], serde_json::json!({"code": 3, "message": MESSAGE}));
    assert_eq!(msgs.last(), Some(errors[0]), "the error is the last message");

    // The docker CLI's legacy builder prints it as it came and exits with the code.
    if have_docker() {
        let out =
            d.docker_cmd(&["build", "-t", "f", "."]).env("DOCKER_BUILDKIT", "0").current_dir(&dir).output().unwrap();
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(3), "{all}");
        assert!(all.contains("\x1b[91mto-err\n"), "{all:?}");
        assert!(all.replace("\x1b[91m", "").replace("\x1b[0m", "").contains("to-err\nmore-err\n"), "{all:?}");
        assert!(all.contains(MESSAGE), "{all}");
    }

    // docker-py's BuildError carries the message and the stream it saw.
    if Command::new("python3").args(["-c", "import docker"]).status().is_ok_and(|s| s.success()) {
        let py = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
try:
    c.images.build(path=sys.argv[2], tag="f")
    print("built")
except docker.errors.BuildError as e:
    print("reason", e.msg)
    print("stderr", repr("".join(l.get("stream", "") for l in e.build_log if l.get("stream", "").startswith("\x1b[91m"))))
"#;
        let out = Command::new("python3").args(["-c", py, &d.host(), dir.to_str().unwrap()]).output().unwrap();
        let o = ok(&out);
        assert!(o.contains(&format!("reason {MESSAGE}")), "{o}");
        assert!(o.contains(r"stderr '\x1b[91mto-err\n"), "{o}");
    }
}
