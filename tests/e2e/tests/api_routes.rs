//! The Engine API's edges as Docker draws them: one `page not found` for any path or
//! method no route serves, dockerd's 503 for the swarm endpoints, query parameters that
//! repeat (`changes` on import) and parameters sent twice where the first wins
//! (docker-py's `dockerfile=` for a Dockerfile outside the context).

use std::process::Command;

use berth_e2e::{Daemon, have_docker, ok, repo_root, text};

/// Sends one request with curl over the daemon's socket; returns (status, body).
fn curl(d: &Daemon, method: &str, path: &str, data: Option<&std::path::Path>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-X", method, "-o", "-", "-w", "\n%{http_code}", "--unix-socket"]).arg(&d.socket);
    if let Some(f) = data {
        c.args(["-H", "Content-Type: application/x-tar", "--data-binary"]).arg(format!("@{}", f.display()));
    }
    c.arg(format!("http://localhost{path}"));
    let out = ok(&c.output().expect("run curl"));
    let (body, code) = out.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_owned())
}

#[test]
fn unknown_routes_and_swarm_answer_as_dockerd() {
    let d = Daemon::start();
    let not_found = r#"{"message":"page not found"}"#;
    for (m, p) in [
        ("GET", "/v1.41/nope"),
        ("GET", "/nope"),
        ("POST", "/v1.41/plugins/pull"),
        ("GET", "/v1.41/images/busybox"),
        ("POST", "/v1.41/images/busybox"),
        ("GET", "/v1.41/images/busybox/nope"),
        ("PUT", "/v1.41/containers/json"),
        ("DELETE", "/v1.41/swarm"),
    ] {
        let (code, body) = curl(&d, m, p, None);
        assert_eq!((code, body.as_str()), (404, not_found), "{m} {p}");
    }
    let manager = "This node is not a swarm manager. Use \\\"docker swarm init\\\" or \\\"docker swarm join\\\" to connect this node to swarm and try again.";
    for (m, p) in [("GET", "/v1.41/swarm"), ("GET", "/v1.41/services"), ("GET", "/v1.41/nodes"), ("GET", "/secrets")] {
        let (code, body) = curl(&d, m, p, None);
        assert_eq!(code, 503, "{m} {p}: {body}");
        assert_eq!(body, format!(r#"{{"message":"{manager}"}}"#), "{m} {p}");
    }
    let (code, body) = curl(&d, "POST", "/v1.41/swarm/leave?force=1", None);
    assert_eq!((code, body.as_str()), (503, r#"{"message":"This node is not part of a swarm"}"#));
    // A bad query is a 400 in words.
    let (code, body) = curl(&d, "GET", "/v1.41/containers/json?all=perhaps", None);
    assert_eq!(code, 400);
    assert_eq!(body, r#"{"message":"invalid value for all: \"perhaps\" is not a boolean (1, 0, true or false)"}"#);
    if have_docker() {
        let out = d.docker(&["node", "ls"]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("This node is not a swarm manager."), "{}", text(&out.stderr));
    }
}

#[test]
fn import_takes_every_change() {
    let d = Daemon::start();
    let tar = Command::new("bash").arg(repo_root().join("scripts/mkbusybox")).output().expect("mkbusybox");
    assert!(tar.status.success(), "mkbusybox: {}", text(&tar.stderr));
    let file = d.dir.path().join("rootfs.tar");
    std::fs::write(&file, &tar.stdout).unwrap();
    let (code, body) = curl(
        &d,
        "POST",
        "/v1.41/images/create?fromSrc=-&repo=imp&tag=1&changes=ENV%20K%3DV&changes=CMD%20%5B%22sh%22%5D",
        Some(&file),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = curl(&d, "GET", "/v1.41/images/imp:1/json", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["Config"]["Env"].as_array().unwrap().iter().any(|e| e == "K=V"), "{body}");
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]), "{body}");
    if have_docker() {
        let out = d.docker_with_stdin(&["import", "-c", "ENV A=1", "-c", "ENV B=2", "-", "imp:2"], &tar.stdout);
        ok(&out);
        let env = ok(&d.docker(&["inspect", "--format", "{{json .Config.Env}}", "imp:2"]));
        assert!(env.contains("\"A=1\"") && env.contains("\"B=2\""), "{env}");
    }
}

const PY_OUTSIDE: &str = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
image, _ = client.images.build(path=sys.argv[2], dockerfile=sys.argv[3], tag="outside:py", rm=True)
print("env", image.attrs["Config"]["Env"])
"#;

#[test]
fn docker_py_dockerfile_outside_the_context() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hi\n").unwrap();
    let dockerfile = d.dir.path().join("elsewhere.Dockerfile");
    std::fs::write(&dockerfile, "FROM busybox\nENV FROM_OUTSIDE=yes\nCOPY hello.txt /hello.txt\n").unwrap();
    let out = Command::new("python3")
        .args(["-c", PY_OUTSIDE, &d.host(), ctx.to_str().unwrap(), dockerfile.to_str().unwrap()])
        .output()
        .unwrap();
    let o = ok(&out);
    assert!(o.contains("FROM_OUTSIDE=yes"), "{o}\n{}", text(&out.stderr));
}
