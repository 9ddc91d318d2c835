//! The daemon's build history (`GET /berth/builds`, `GET /berth/builds/{id}`): builds by
//! berth's CLI, the docker CLI's legacy builder and (with Debian's 20.10 CLI) BuildKit's
//! session path are all recorded, survive `builder prune --all` and a daemon restart, and a
//! build whose client goes away ends canceled.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{DOCKER_DEBIAN, Daemon, ok, text};

/// `GET path` on the daemon's socket: status and JSON body.
fn api(d: &Daemon, path: &str) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .arg(format!("http://berth{path}"))
        .output()
        .expect("curl");
    let body = text(&out.stdout);
    let (json, code) = body.rsplit_once('\n').expect("a status line");
    (code.parse().unwrap(), serde_json::from_str(json).unwrap_or(serde_json::Value::Null))
}

fn history(d: &Daemon) -> Vec<serde_json::Value> {
    let (code, v) = api(d, "/berth/builds");
    assert_eq!(code, 200, "{v}");
    v.as_array().expect("a list").clone()
}

fn field<'a>(b: &'a serde_json::Value, k: &str) -> &'a str {
    b[k].as_str().unwrap_or("")
}

fn have_docker_20() -> bool {
    let Ok(out) = Command::new(DOCKER_DEBIAN).arg("--version").output() else { return false };
    text(&out.stdout).contains("version 20.10")
}

fn docker_build(d: &Daemon, bin: &str, dir: &Path, buildkit: &str, tag: &str) {
    let out = Command::new(bin)
        .args(["build", "-t", tag, "."])
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", buildkit)
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .expect("run docker build");
    assert!(out.status.success(), "docker build {tag}: {}{}", text(&out.stdout), text(&out.stderr));
}

#[test]
fn every_builder_path_is_recorded_and_the_history_outlives_prune_and_restart() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = d.dir_with("ctx", "FROM busybox:latest\nRUN echo hi > /hi\n");
    let b = d.build_plain(&dir, &["-t", "hist:1", "."]);
    assert!(b.status.success(), "{}", text(&b.stderr));
    docker_build(&d, berth_e2e::docker_bin(), &dir, "0", "hist:2");
    let mut want = vec![("hist:2", "tar"), ("hist:1", "dir")];
    if have_docker_20() {
        docker_build(&d, DOCKER_DEBIAN, &dir, "1", "hist:3");
        want.insert(0, ("hist:3", "session"));
    }
    let list = history(&d);
    let seen: Vec<(&str, &str)> =
        list.iter().map(|b| (b["Tags"][0].as_str().unwrap_or(""), field(b, "Context"))).collect();
    assert_eq!(seen, want, "{list:#?}");
    for b in &list {
        assert_eq!(field(b, "Status"), "completed", "{b:#}");
        assert_eq!(field(b, "Dockerfile"), "Dockerfile", "{b:#}");
        assert!(b.get("Steps").is_none(), "the list leaves steps out: {b:#}");
        assert!(field(b, "ImageID").starts_with("sha256:"), "{b:#}");
    }
    // The second build found the RUN step in the cache.
    let id = field(&list[list.len() - 2], "ID");
    let (code, second) = api(&d, &format!("/berth/builds/{}", &id[..12]));
    assert_eq!(code, 200, "a unique prefix names a build: {second}");
    assert_eq!(field(&second, "ID"), id);
    let steps = second["Steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{second:#}");
    assert_eq!((field(&steps[1], "Text"), steps[1]["Cached"].as_bool()), ("RUN echo hi > /hi", Some(true)));
    assert_eq!(second["CachedSteps"], 1);

    // The history is not the cache.
    ok(&d.berth(&["builder", "prune", "--all", "--force"]));
    assert_eq!(history(&d).len(), want.len(), "builder prune --all leaves the history");
    d.restart(false);
    assert_eq!(history(&d), list, "the history survives a restart");

    let (code, err) = api(&d, "/berth/builds/0123456789ab");
    assert_eq!(code, 404, "{err}");
    assert_eq!(field(&err, "message"), "no such build: 0123456789ab");
    let (code, _) = api(&d, "/berth/builds/not-hex");
    assert_eq!(code, 404);
}

#[test]
fn a_build_whose_client_goes_away_ends_canceled() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = d.dir_with("slow", "FROM busybox:latest\nRUN echo started; sleep 60\n");
    let mut cli = d.berth_cmd(&["build", "--progress", "plain", "-t", "slow:1", "."]);
    let mut child = cli.current_dir(&dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // While it runs, the history shows it running, its RUN step too.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = history(&d);
        if let Some(b) = list.first() {
            let (_, rec) = api(&d, &format!("/berth/builds/{}", field(b, "ID")));
            let steps = rec["Steps"].as_array().cloned().unwrap_or_default();
            if steps.len() == 2 && field(&steps[1], "Status") == "running" {
                assert_eq!(field(&rec, "Status"), "running", "{rec:#}");
                assert!(rec.get("CompletedAt").is_none() && rec.get("Duration").is_none(), "{rec:#}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "the running build never showed: {list:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let rec = loop {
        let list = history(&d);
        if field(&list[0], "Status") != "running" {
            break api(&d, &format!("/berth/builds/{}", field(&list[0], "ID"))).1;
        }
        assert!(Instant::now() < deadline, "the build never ended: {list:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(field(&rec, "Status"), "canceled", "{rec:#}");
    assert!(rec.get("Error").is_some() && rec.get("ImageID").is_none(), "{rec:#}");
    let step = &rec["Steps"][1];
    assert_eq!(field(step, "Status"), "canceled", "{rec:#}");
    assert!(field(step, "Output").contains("started"), "a stopped step keeps its output: {rec:#}");
    assert!(rec["Duration"].as_f64().unwrap() < 30.0, "{rec:#}");
}
