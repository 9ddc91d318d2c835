//! `berth compose` flags end to end against one daemon, busybox only: `up --no-recreate`,
//! `--force-recreate`, `--no-deps`, `--remove-orphans` (and the orphan warning without it),
//! `--abort-on-container-exit` without `--exit-code-from`, `create` then `start`, `restart`,
//! `events --json`, `logs -f` picking up a container started after it began, and `run` with
//! `-e -w -u -v -p --entrypoint --name -d`. Wording and exit codes are docker compose v2's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_e2e::{Daemon, ok, text};

/// `berth compose ARGS` run in `dir`.
fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["compose", "--progress", "plain"];
    all.extend_from_slice(args);
    d.berth_cmd(&all).current_dir(dir).output().expect("run berth compose")
}

/// `berth compose ARGS` left running, its stdout read line by line on a thread.
fn spawn(d: &Daemon, dir: &Path, args: &[&str]) -> (Child, Lines) {
    let mut all = vec!["compose"];
    all.extend_from_slice(args);
    let stderr = dir.join(format!("{}.stderr", args[0]));
    let mut child = d
        .berth_cmd(&all)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("spawn berth compose");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, Lines { rx, stderr })
}

/// The stdout lines of a spawned command, and where its stderr goes.
struct Lines {
    rx: mpsc::Receiver<String>,
    stderr: PathBuf,
}

/// Reads lines until one satisfies `want` (returning it) or 15 s pass (panicking with all read).
fn wait_line(lines: &Lines, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.rx.recv_timeout(left) {
            Ok(l) if want(&l) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    let err = std::fs::read_to_string(&lines.stderr).unwrap_or_default();
    panic!("no line with {what} in:\n{}\nstderr:\n{err}", seen.join("\n"));
}

/// The id of the project's container `name`.
fn id(d: &Daemon, name: &str) -> String {
    ok(&d.berth(&["inspect", "-f", "{{.Id}}", name])).trim().to_owned()
}

/// `{{.State.StartedAt}}` of `name`.
fn started_at(d: &Daemon, name: &str) -> String {
    ok(&d.berth(&["inspect", "-f", "{{.State.StartedAt}}", name])).trim().to_owned()
}

fn state(d: &Daemon, name: &str) -> String {
    ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", name])).trim().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str) -> String {
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

fn project_dir(d: &Daemon, name: &str) -> PathBuf {
    let p = d.dir.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn file(subnet_octet: u32, a_greeting: &str, with_b: bool) -> String {
    let mut s = format!(
        r#"
name: fl
services:
  a:
    image: busybox
    init: true
    environment:
      GREETING: {a_greeting}
    command: ["sh", "-c", "echo a-says-$$GREETING; exec sleep 300"]
"#
    );
    if with_b {
        s.push_str(
            r#"  b:
    image: busybox
    init: true
    depends_on: [a]
    command: ["sh", "-c", "echo b-up; exec sleep 300"]
"#,
        );
    }
    s.push_str(&format!(
        "networks:\n  default:\n    ipam:\n      config:\n        - subnet: 10.214.{subnet_octet}.0/24\n"
    ));
    s
}

#[test]
fn compose_flags_behave_as_docker_compose() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = project_dir(&d, "fl");
    let octet = std::process::id() % 250;
    let yaml = dir.join("compose.yaml");
    std::fs::write(&yaml, file(octet, "one", true)).unwrap();

    // create then start: created, not running; start runs both.
    ok(&compose(&d, &dir, &["create"]));
    assert_eq!(state(&d, "fl-a-1"), "created");
    assert_eq!(state(&d, "fl-b-1"), "created");
    ok(&compose(&d, &dir, &["start"]));
    assert_eq!(state(&d, "fl-a-1"), "running");
    assert_eq!(state(&d, "fl-b-1"), "running");
    let (a0, b0) = (id(&d, "fl-a-1"), id(&d, "fl-b-1"));

    // --no-recreate: a's configuration changed, yet it is kept.
    std::fs::write(&yaml, file(octet, "two", true)).unwrap();
    ok(&compose(&d, &dir, &["up", "-d", "--no-recreate"]));
    assert_eq!(id(&d, "fl-a-1"), a0, "--no-recreate recreated a");
    assert_eq!(id(&d, "fl-b-1"), b0);

    // --no-deps with --force-recreate on b: only b is recreated, a (changed) is left alone.
    ok(&compose(&d, &dir, &["up", "-d", "--no-deps", "--force-recreate", "b"]));
    assert_eq!(id(&d, "fl-a-1"), a0, "--no-deps touched the dependency");
    let b1 = id(&d, "fl-b-1");
    assert_ne!(b1, b0, "--force-recreate kept b");

    // Plain up recreates the changed a, keeps unchanged b; --force-recreate then recreates b too.
    ok(&compose(&d, &dir, &["up", "-d"]));
    let a1 = id(&d, "fl-a-1");
    assert_ne!(a1, a0, "changed a not recreated");
    assert_eq!(id(&d, "fl-b-1"), b1, "unchanged b recreated by plain up");
    ok(&compose(&d, &dir, &["up", "-d", "--force-recreate"]));
    let (a2, b2) = (id(&d, "fl-a-1"), id(&d, "fl-b-1"));
    assert!(a2 != a1 && b2 != b1, "--force-recreate kept an unchanged container");

    // logs -f, started before a second replica exists, shows it; events --json sees the start.
    let (mut logs, log_lines) = spawn(&d, &dir, &["logs", "-f", "--no-color"]);
    let (mut events, event_lines) = spawn(&d, &dir, &["events", "--json"]);
    wait_line(&log_lines, "a-1's line", |l| l == "a-1  | a-says-two");
    ok(&compose(&d, &dir, &["up", "-d", "--scale", "a=2"]));
    wait_line(&log_lines, "a-2's line", |l| l == "a-2  | a-says-two");
    let start = wait_line(&event_lines, "a start of fl-a-2", |l| l.contains("\"start\"") && l.contains("fl-a-2"));
    let ev: serde_json::Value = serde_json::from_str(&start).unwrap();
    assert_eq!(ev["type"], "container", "{start}");
    assert_eq!(ev["action"], "start", "{start}");
    assert_eq!(ev["service"], "a", "{start}");
    assert_eq!(ev["id"], id(&d, "fl-a-2"), "{start}");
    assert_eq!(ev["attributes"]["name"], "fl-a-2", "{start}");
    assert_eq!(ev["attributes"]["image"], "busybox", "{start}");
    let t = ev["time"].as_str().unwrap();
    // Go's RFC3339Nano in UTC: `2026-11-30T13:47:17.781704958Z`.
    assert!(t.len() >= 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z') && !t.contains('+'), "{start}");

    // restart: same containers, started again; logs -f reads the new run of a-1.
    let before = started_at(&d, "fl-a-1");
    ok(&compose(&d, &dir, &["restart", "a"]));
    assert_eq!(id(&d, "fl-a-1"), a2);
    assert_eq!(state(&d, "fl-a-1"), "running");
    assert_ne!(started_at(&d, "fl-a-1"), before, "restart did not restart a-1");
    wait_line(&event_lines, "the restart of fl-a-1", |l| l.contains("\"restart\"") && l.contains("fl-a-1"));
    wait_line(&log_lines, "a-1's end, said as docker compose says it", |l| l == "\r\x1b[Ka-1 exited with code 143");
    wait_line(&log_lines, "a-1's line after the restart", |l| l == "a-1  | a-says-two");
    // The text form, replayed: docker compose's Event.String() and its blank line after.
    let (mut replay, replayed) = spawn(&d, &dir, &["events", "--since", "60s", "a"]);
    let want = format!(" container restart {a2} (image=busybox, name=fl-a-1)");
    let line = wait_line(&replayed, "the restart in text", |l| l.ends_with(&want));
    let stamp = &line[..line.len() - want.len()];
    assert_eq!(stamp.len(), "2026-11-30 13:53:45.223654".len(), "{line}");
    assert_eq!((stamp.as_bytes()[10], stamp.as_bytes()[19]), (b' ', b'.'), "{line}");
    assert_eq!(replayed.rx.recv_timeout(Duration::from_secs(5)).as_deref(), Ok(""), "no blank line after {line}");
    let _ = replay.kill();
    let _ = replay.wait();
    let _ = logs.kill();
    let _ = logs.wait();
    let _ = events.kill();
    let _ = events.wait();
    ok(&compose(&d, &dir, &["up", "-d", "--scale", "a=1"]));

    // Orphans: b removed from the file is warned about as docker compose words it and kept;
    // --remove-orphans removes it.
    std::fs::write(&yaml, file(octet, "two", false)).unwrap();
    let up = compose(&d, &dir, &["up", "-d"]);
    ok(&up);
    let err = text(&up.stderr);
    let warning = "level=warning msg=\"Found orphan containers ([fl-b-1]) for this project. If you removed or \
                   renamed this service in your compose file, you can run this command with the \
                   --remove-orphans flag to clean it up.\"";
    assert!(err.contains(warning), "{err}");
    assert_eq!(state(&d, "fl-b-1"), "running");
    let logs = ok(&compose(&d, &dir, &["logs", "--no-color"]));
    assert!(!logs.contains("b-up"), "logs shows the orphan's output:\n{logs}");
    let up = compose(&d, &dir, &["up", "-d", "--remove-orphans"]);
    ok(&up);
    assert!(text(&up.stderr).contains("Container fl-b-1  Removed"), "{}", text(&up.stderr));
    let left = ok(&d.berth(&["ps", "-aq", "--filter", "name=fl-b-1"]));
    assert!(left.is_empty(), "orphan left: {left}");

    // run -e -w -u -v -p --entrypoint --name -d: prints the id, the container has it all.
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::set_permissions(&host, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let run = compose(
        &d,
        &dir,
        &[
            "run",
            "-d",
            "--name",
            "fl-custom",
            "-e",
            "K=from-run",
            "-w",
            "/tmp",
            "-u",
            "1000",
            "-v",
            "./host:/mnt",
            "-p",
            &publish,
            "--entrypoint",
            "sh",
            "a",
            "-c",
            "echo \"$K $(pwd) $(id -u) $GREETING\" > /mnt/out; exec httpd -f -p 8080 -h /mnt",
        ],
    );
    let printed = ok(&run);
    assert_eq!(printed.trim(), id(&d, "fl-custom"), "run -d prints the container id");
    // Nothing about the one-off itself on stderr (its dependencies run already).
    assert!(!text(&run.stderr).contains("fl-custom"), "{}", text(&run.stderr));
    let body = http_get(port, "/out");
    assert!(body.ends_with("from-run /tmp 1000 two\n"), "{body}");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap(), "from-run /tmp 1000 two\n");
    let labels =
        ok(&d.berth(&["inspect", "-f", "{{index .Config.Labels \"com.docker.compose.oneoff\"}}", "fl-custom"]));
    assert_eq!(labels.trim(), "True");
    let ep = ok(&d.berth(&["inspect", "-f", "{{json .Config.Entrypoint}}", "fl-custom"]));
    assert_eq!(ep.trim(), "[\"sh\"]");
    ok(&d.berth(&["rm", "-f", "fl-custom"]));

    // --abort-on-container-exit without --exit-code-from: the first container's exit code (3),
    // the others stopped.
    std::fs::write(
        dir.join("abort.yaml"),
        format!(
            r#"
name: flabort
services:
  long:
    image: busybox
    init: true
    command: ["sh", "-c", "echo long-up; exec sleep 300"]
  short:
    image: busybox
    command: ["sh", "-c", "sleep 1; echo short-done; exit 3"]
networks:
  default:
    ipam:
      config:
        - subnet: 10.215.{octet}.0/24
"#
        ),
    )
    .unwrap();
    let up = compose(&d, &dir, &["-f", "abort.yaml", "up", "--abort-on-container-exit", "--no-color"]);
    let out = text(&up.stdout);
    assert_eq!(up.status.code(), Some(3), "{out}\n{}", text(&up.stderr));
    assert!(out.contains("\r\x1b[Kshort-1 exited with code 3\n"), "{out}");
    assert!(text(&up.stderr).contains("Aborting on container exit..."), "{}", text(&up.stderr));
    assert_eq!(state(&d, "flabort-long-1"), "exited");
    ok(&compose(&d, &dir, &["-f", "abort.yaml", "down"]));

    ok(&compose(&d, &dir, &["down"]));
    let left = ok(&d.berth(&["ps", "-aq", "--filter", "label=com.docker.compose.project=fl"]));
    assert!(left.is_empty(), "{left}");
}
