//! The tutorials' projects (examples/iris, mnist-trainer, flask-app, notebook) walked step by
//! step as their READMEs write them, with our CLI and then with the docker CLI, against one
//! daemon: real `pip install`s from PyPI on the python:3.12-slim stand-in that
//! scripts/mkpython makes from Debian packages, real training, real requests to the served
//! model, a push to and pull from `berth registry serve`, and the notebook's page opened by
//! headless Chromium (driven by Playwright), its screenshot kept in
//! target/test-artifacts/tutorials/.
//!
//! One daemon serves the four walks, which run side by side: the base image is imported
//! once and the docker CLI's builds reuse the layers our CLI's builds made. Host ports are
//! free ones picked at run time (the READMEs say 10000 and 4000), so the walks never collide
//! with each other or with other tests.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::registry::Registry;
use berth_e2e::{Daemon, berth_bin, docker_bin, have_docker, ok, repo_root, run_with_stdin, text};

/// The CLI a walk is made with.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cli {
    Berth,
    Docker,
}

impl Cli {
    /// Both CLIs where the docker CLI is installed, else ours alone.
    fn all() -> Vec<Cli> {
        if have_docker() {
            vec![Cli::Berth, Cli::Docker]
        } else {
            eprintln!("no docker CLI: the tutorials are walked with berth only");
            vec![Cli::Berth]
        }
    }

    fn program(self) -> String {
        match self {
            Cli::Berth => berth_bin().display().to_string(),
            Cli::Docker => docker_bin().to_owned(),
        }
    }

    /// `ARGS` in `dir`, with this CLI against `d`; our CLI gets its own config dir (for
    /// `login`) as the docker CLI does.
    fn cmd(self, d: &Daemon, dir: &Path, args: &[&str]) -> Command {
        let mut c = match self {
            Cli::Berth => {
                let mut c = d.berth_cmd(args);
                c.env("DOCKER_CONFIG", d.dir.path().join("berth-config"));
                c
            }
            Cli::Docker => d.docker_cmd(args),
        };
        c.current_dir(dir);
        c
    }

    fn run(self, d: &Daemon, dir: &Path, args: &[&str]) -> Output {
        self.cmd(d, dir, args).output().expect("run the CLI")
    }

    /// Runs `ARGS` and returns stdout, failing with the step's text otherwise.
    #[track_caller]
    fn ok(self, d: &Daemon, dir: &Path, args: &[&str]) -> String {
        let out = self.run(d, dir, args);
        assert!(
            out.status.success(),
            "{self:?}: `{}` failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `build ARGS` in `dir`: stdout and stderr together (the docker CLI's legacy builder
    /// writes steps to stdout, BuildKit-style progress goes to stderr).
    #[track_caller]
    fn build(self, d: &Daemon, dir: &Path, args: &[&str]) -> String {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        let mut c = self.cmd(d, dir, &all);
        if self == Cli::Berth {
            c.env("BUILDKIT_PROGRESS", "plain");
        }
        let out = c.output().expect("run build");
        let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{self:?}: build {} failed ({}):\n{log}", args.join(" "), out.status);
        log
    }

    /// `args` through a real pseudo-terminal (util-linux `script`), typing `input` once the
    /// container is up; returns the exit code and what the terminal showed.
    fn run_in_pty(self, d: &Daemon, dir: &Path, args: &[&str], input: &str) -> (Option<i32>, String) {
        let cmdline = format!("{} {}", self.program(), args.join(" "));
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &cmdline, "/dev/null"])
            .current_dir(dir)
            .env("BERTH_HOST", d.host())
            .env("BERTH_NO_AUTOSTART", "1")
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("script (util-linux)");
        // Held open until the session ends: an early EOF would end it.
        let mut stdin = child.stdin.take().expect("stdin");
        if !input.is_empty() {
            std::thread::sleep(Duration::from_secs(3));
            stdin.write_all(input.as_bytes()).expect("type into the session");
        }
        let out = child.wait_with_output().expect("wait for script");
        drop(stdin);
        (out.status.code(), text(&out.stdout))
    }
}

/// A fresh copy of examples/NAME, so outputs (artifacts/, models/) stay out of the tree.
fn project(d: &Daemon, name: &str, cli: Cli) -> PathBuf {
    fn copy_dir(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).expect("mkdir");
        for e in std::fs::read_dir(src).expect("read example") {
            let e = e.expect("dir entry");
            let to = dst.join(e.file_name());
            if e.file_type().expect("file type").is_dir() {
                copy_dir(&e.path(), &to);
            } else {
                std::fs::copy(e.path(), &to).expect("copy");
            }
        }
    }
    let p = d.dir.path().join(format!("{name}-{cli:?}"));
    copy_dir(&repo_root().join("examples").join(name), &p);
    p
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

/// `curl -s ARGS URL`: the body and the HTTP status.
fn curl(args: &[&str], url: &str) -> (String, u16) {
    let out =
        Command::new("curl").args(["-s", "--max-time", "20", "-w", "\n%{http_code}"]).args(args).arg(url).output();
    let body = text(&out.expect("curl").stdout);
    let (body, code) = body.rsplit_once('\n').unwrap_or(("", "0"));
    (body.to_owned(), code.trim().parse().unwrap_or(0))
}

/// Waits until `url` answers 200 (servers take a few seconds to import their libraries).
#[track_caller]
fn wait_http(d: &Daemon, url: &str, container: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if curl(&[], url).1 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let logs = d.berth(&["logs", container]);
    panic!("{url} did not answer 200 within 90 s; {container}'s log:\n{}{}", text(&logs.stdout), text(&logs.stderr));
}

/// The step number of the first build step whose line contains `needle` ("#4 [4/10] RUN …").
fn step_no(log: &str, needle: &str) -> Option<String> {
    log.lines().find(|l| l.starts_with('#') && l.contains(needle)).and_then(|l| l.split(' ').next()).map(str::to_owned)
}

/// "uid:gid" of this process, what `"$(id -u):$(id -g)"` expands to.
fn me() -> String {
    format!("{}:{}", rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw())
}

/// The number after `prefix` in `out`, e.g. the accuracy in "accuracy on 30 …: 0.900".
fn number_after(out: &str, prefix: &str) -> f64 {
    let line = out.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"));
    line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no number in `{line}`"))
}

/// python:3.12-slim in `d`: the stand-in scripts/mkpython makes (no registry here has the
/// real one); its root filesystem is cached in /var/cache/berth between runs.
fn python_base(d: &Daemon) {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/mkpython"))
        .env("BERTH", berth_bin())
        .env("BERTH_HOST", d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .stdin(Stdio::null())
        .output()
        .expect("scripts/mkpython");
    assert!(out.status.success(), "scripts/mkpython: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains("importing a stand-in made from Debian 12 packages"), "{}", text(&out.stderr));
    let v =
        ok(&d.berth(&["run", "--rm", "python:3.12-slim", "python", "-c", "import sys; print(sys.version_info[0])"]));
    assert_eq!(v.trim(), "3");
    let cmd = ok(&d.berth(&["image", "inspect", "--format", "{{json .Config.Cmd}}", "python:3.12-slim"]));
    assert_eq!(cmd.trim(), r#"["python3"]"#);
}

/// examples/iris: train into ./artifacts, serve on a published port, predict, push to a
/// registry with a password, remove, pull, predict with the pulled image.
fn iris(d: &Daemon, cli: Cli) {
    let p = project(d, "iris", cli);
    let log = cli.build(d, &p, &["-f", "train.dockerfile", "-t", "iris-train:1.0.0", "."]);
    if cli == Cli::Berth {
        assert!(log.contains("Successfully installed"), "pip really installed the requirements: {log}");
        assert!(log.contains("scikit-learn-1.7.2"), "{log}");
    }
    std::fs::create_dir_all(p.join("artifacts")).expect("mkdir artifacts");
    let user = me();
    let out = cli.ok(d, &p, &["run", "--rm", "-v", "./artifacts:/app/artifacts", "--user", &user, "iris-train:1.0.0"]);
    assert!(out.contains("training a random forest (100 trees) on 120 samples"), "{out}");
    let accuracy = number_after(&out, "accuracy on 30 held-out samples:");
    assert!(accuracy >= 0.85, "a real classifier does better than {accuracy}: {out}");
    assert!(out.contains("model saved to /app/artifacts/model.pkl"), "{out}");
    let model = std::fs::metadata(p.join("artifacts/model.pkl")).expect("model.pkl on the host");
    assert!(model.len() > 10_000, "a pickled forest, not a placeholder: {} bytes", model.len());
    // The image's own user, app, is the default.
    let who = cli.ok(d, &p, &["run", "--rm", "--entrypoint", "id", "iris-train:1.0.0", "-un"]);
    assert_eq!(who.trim(), "app");

    let log = cli.build(d, &p, &["-f", "serve.dockerfile", "-t", "iris-serve:1.0.0", "."]);
    // Both Dockerfiles start alike, so the serving image reuses the pip layer.
    let lines: Vec<&str> = log.lines().collect();
    if cli == Cli::Berth {
        // BuildKit-style: "#4 [4/11] RUN pip install …" … "#4 CACHED".
        let pip = step_no(&log, "RUN pip install").unwrap_or_else(|| panic!("no pip step: {log}"));
        assert!(lines.contains(&format!("{pip} CACHED").as_str()), "{log}");
    } else {
        // The legacy builder's: "Step 4/11 : RUN pip install …" then " ---> Using cache".
        let at = lines.iter().position(|l| l.starts_with("Step ") && l.contains("RUN pip install"));
        let next = at.and_then(|i| lines.get(i + 1)).map(|l| l.trim());
        assert_eq!(next, Some("---> Using cache"), "{log}");
    }
    let port = free_port().to_string();
    let publish = format!("{port}:8080");
    cli.ok(d, &p, &["run", "-d", "--name", "iris-api", "-p", &publish, "iris-serve:1.0.0"]);
    let base = format!("http://localhost:{port}");
    wait_http(d, &format!("{base}/health"), "iris-api");
    let predict = |base: &str| {
        let (body, code) = curl(
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                r#"{"features": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}"#,
            ],
            &format!("{base}/predict"),
        );
        (body.trim_end().to_owned(), code)
    };
    assert_eq!(predict(&base), (r#"{"predictions":["setosa","virginica"]}"#.to_owned(), 200));
    let (body, code) = curl(&["-X", "POST", "-d", "not json"], &format!("{base}/predict"));
    assert_eq!(code, 400, "bad input is refused: {body}");
    let logs = cli.ok(d, &p, &["logs", "iris-api"]);
    assert!(logs.contains("serving /app/artifacts/model.pkl on port 8080"), "{logs}");
    // The server exits on SIGTERM: stop does not wait out its 10 s.
    let started = Instant::now();
    cli.ok(d, &p, &["stop", "iris-api"]);
    assert!(started.elapsed() < Duration::from_secs(8), "stop took {:?}", started.elapsed());
    cli.ok(d, &p, &["rm", "iris-api"]);

    // Ship: a registry with a password on loopback; login, tag, push, rmi, pull, run.
    let htpasswd = p.join("htpasswd");
    let line = Command::new("htpasswd").args(["-Bbn", "student", "secret"]).output().expect("htpasswd (apache2-utils)");
    std::fs::write(&htpasswd, ok(&line)).expect("write htpasswd");
    let reg = Registry::start(&["--htpasswd", htpasswd.to_str().expect("utf-8 path")]);
    let host = reg.host().to_owned();
    let login = ["login", host.as_str(), "-u", "student", "--password-stdin"];
    let out = run_with_stdin(cli.cmd(d, &p, &login), b"secret\n");
    assert!(ok(&out).contains("Login Succeeded"), "{}", text(&out.stderr));
    let remote = format!("{host}/iris/serve:1.0.0");
    cli.ok(d, &p, &["tag", "iris-serve:1.0.0", &remote]);
    let pushed = cli.ok(d, &p, &["push", &remote]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    let removed = cli.ok(d, &p, &["rmi", "iris-serve:1.0.0", &remote]);
    assert!(removed.contains(&format!("Untagged: {remote}")), "{removed}");
    assert!(!cli.run(d, &p, &["image", "inspect", &remote]).status.success(), "the image is gone before the pull");
    let pulled = cli.ok(d, &p, &["pull", &remote]);
    assert!(pulled.contains("Downloaded newer image") || pulled.contains("Status: "), "{pulled}");
    let port = free_port().to_string();
    let publish = format!("{port}:8080");
    cli.ok(d, &p, &["run", "-d", "--name", "iris-api-pulled", "-p", &publish, &remote]);
    let base = format!("http://localhost:{port}");
    wait_http(d, &format!("{base}/health"), "iris-api-pulled");
    assert_eq!(
        predict(&base),
        (r#"{"predictions":["setosa","virginica"]}"#.to_owned(), 200),
        "the pulled image serves"
    );
    cli.ok(d, &p, &["rm", "-f", "iris-api-pulled"]);
    cli.ok(d, &p, &["logout", &host]);
    cli.ok(d, &p, &["rmi", &remote]);
}

/// examples/mnist-trainer: a named container's model copied out, then `-v`; a second image
/// using the model; a shell through `--entrypoint`; `--init --ipc=host --user` with a tty.
fn mnist(d: &Daemon, cli: Cli) {
    let p = project(d, "mnist-trainer", cli);
    cli.build(d, &p, &["-f", "trainer.dockerfile", "-t", "mnist-trainer", "."]);
    let out = cli.ok(d, &p, &["run", "--name", "experiment1", "mnist-trainer", "--epochs", "20"]);
    assert!(out.contains("on 1347 digits for 20 epochs"), "{out}");
    assert!(out.contains("epoch 20: loss "), "{out}");
    std::fs::create_dir_all(p.join("models")).expect("mkdir models");
    cli.ok(d, &p, &["cp", "experiment1:/models/model.pkl", "./models/model.pkl"]);
    let copied = std::fs::metadata(p.join("models/model.pkl")).expect("the copied model");
    assert!(copied.len() > 10_000, "{} bytes", copied.len());
    cli.ok(d, &p, &["rm", "experiment1"]);

    std::fs::remove_file(p.join("models/model.pkl")).expect("rm model");
    let user = me();
    let out = cli.ok(d, &p, &["run", "--rm", "-v", "./models:/models", "--user", &user, "mnist-trainer"]);
    assert!(out.contains("for 50 epochs"), "{out}");
    let trained = number_after(&out, "epoch 50:");
    assert!(trained >= 0.9, "{out}");
    assert!(p.join("models/model.pkl").exists(), "-v wrote the model to the host");

    cli.build(d, &p, &["-f", "predict.dockerfile", "-t", "mnist-predict", "."]);
    let out = cli.ok(d, &p, &["run", "--rm", "-v", "./models:/models", "mnist-predict"]);
    assert!(out.contains("read as "), "{out}");
    let read = number_after(&out, "accuracy on 450 held-out digits:");
    assert!((read - trained).abs() < 1e-9, "the predictor reads as the trainer measured: {read} vs {trained}\n{out}");

    let (code, screen) = cli.run_in_pty(
        d,
        &p,
        &["run", "-it", "--rm", "--entrypoint", "sh", "mnist-trainer"],
        "id -un; python -c 'import sklearn; print(\"sklearn\", sklearn.__version__)'; exit\n",
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("app\r\n"), "{screen}");
    assert!(screen.contains("sklearn 1.7.2"), "{screen}");

    let args =
        ["run", "--rm", "-it", "--init", "--ipc=host", "--user", &user, "-v", "./models:/models", "mnist-trainer"];
    let mut long = args.to_vec();
    long.extend(["--epochs", "10"]);
    let (code, screen) = cli.run_in_pty(d, &p, &long, "");
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("epoch 10: loss "), "{screen}");
    // What the flags did: an init at PID 1, the host's IPC namespace.
    let mut probe = args.to_vec();
    probe.retain(|a| *a != "-it");
    probe.pop();
    probe.extend(["--entrypoint", "sh", "mnist-trainer", "-c", "cat /proc/1/comm; readlink /proc/self/ns/ipc"]);
    let out = cli.ok(d, &p, &probe);
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").expect("host ipc ns");
    let mut lines = out.lines();
    assert_ne!(lines.next(), Some("sh"), "--init runs an init as PID 1: {out}");
    assert_eq!(lines.next(), host_ipc.to_str(), "{out}");
}

/// examples/flask-app: build, run with a published port, stop, `rmi` refused while the
/// container exists, rm, rmi; and the same app in the foreground.
fn flask(d: &Daemon, cli: Cli) {
    let p = project(d, "flask-app", cli);
    cli.build(d, &p, &["-t", "simple-app", "."]);
    let port = free_port().to_string();
    let publish = format!("{port}:8080");
    let id = cli.ok(d, &p, &["run", "-d", "--name", "simple", "-p", &publish, "simple-app"]);
    let short = &id.trim()[..12];
    let url = format!("http://localhost:{port}/");
    wait_http(d, &url, "simple");
    let (body, _) = curl(&[], &url);
    assert_eq!(body, format!("Hello from {short}! This page has been seen 2 time(s).\n"), "the wait was visit 1");
    let ps = cli.ok(d, &p, &["ps", "--filter", "name=simple"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->8080/tcp")), "{ps}");
    // Flask's banner goes to stdout, its request log to stderr: logs keeps them apart.
    let logs = cli.run(d, &p, &["logs", "simple"]);
    assert!(text(&logs.stdout).contains("Serving Flask app 'app'"), "{}", text(&logs.stdout));
    assert!(text(&logs.stderr).contains("\"GET / HTTP/1.1\" 200"), "{}", text(&logs.stderr));
    cli.ok(d, &p, &["stop", "simple"]);

    let image = cli.ok(d, &p, &["image", "inspect", "--format", "{{.Id}}", "simple-app"]);
    let image_short = &image.trim().trim_start_matches("sha256:")[..12];
    let out = cli.run(d, &p, &["rmi", "simple-app"]);
    assert_eq!(out.status.code(), Some(1), "{cli:?}: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "Error response from daemon: conflict: unable to remove repository reference \"simple-app\" (must force) - container {short} is using its referenced image {image_short}"
        )
    );
    cli.ok(d, &p, &["image", "inspect", "simple-app"]);
    cli.ok(d, &p, &["rm", "simple"]);

    // In the foreground (no -d): the CLI stays attached until the container stops.
    let port = free_port().to_string();
    let publish = format!("{port}:8080");
    let mut fg = cli
        .cmd(d, &p, &["run", "--name", "simple-fg", "-p", &publish, "simple-app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run in the foreground");
    wait_http(d, &format!("http://localhost:{port}/"), "simple-fg");
    cli.ok(d, &p, &["stop", "simple-fg"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = fg.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the foreground run did not end after stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "the app exits 0 on SIGTERM");
    cli.ok(d, &p, &["rm", "simple-fg"]);

    let out = cli.ok(d, &p, &["rmi", "simple-app"]);
    assert!(out.contains("Untagged: simple-app:latest"), "{out}");
    assert!(out.contains(&format!("Deleted: {}", image.trim())), "{out}");
}

/// examples/notebook: the server on a published port, its token from the log, the page in
/// a real browser (our CLI's walk) and over HTTP (the docker CLI's).
fn notebook(d: &Daemon, cli: Cli, artifacts: &Path) {
    let p = project(d, "notebook", cli);
    let log = cli.build(d, &p, &["-t", "notebook", "."]);
    if cli == Cli::Berth {
        assert!(log.contains("notebook-7.6.5"), "{log}");
    }
    // As the README starts it: Jupyter picks a token and prints it.
    let port = free_port().to_string();
    let publish = format!("{port}:8888");
    cli.ok(d, &p, &["run", "-d", "--name", "notebook", "-p", &publish, "notebook"]);
    wait_http(d, &format!("http://127.0.0.1:{port}/api"), "notebook");
    let logs = cli.run(d, &p, &["logs", "notebook"]);
    let all = format!("{}{}", text(&logs.stdout), text(&logs.stderr));
    let token = all
        .split("http://127.0.0.1:8888/tree?token=")
        .nth(1)
        .map(|t| t.chars().take_while(char::is_ascii_alphanumeric).collect::<String>())
        .unwrap_or_else(|| panic!("no tokened URL in the log:\n{all}"));
    assert!(token.len() >= 32, "{token}");
    let (_, code) = curl(&[], &format!("http://localhost:{port}/api/contents"));
    assert_eq!(code, 403, "the API wants the token");
    let (body, code) = curl(&[], &format!("http://localhost:{port}/api/contents?token={token}"));
    assert_eq!(code, 200, "{body}");
    cli.ok(d, &p, &["rm", "-f", "notebook"]);

    // With a token of our own (JUPYTER_TOKEN), opened in headless Chromium.
    let port = free_port().to_string();
    let publish = format!("{port}:8888");
    let token = "tutorial-test-token";
    let env = format!("JUPYTER_TOKEN={token}");
    cli.ok(d, &p, &["run", "-d", "--name", "notebook", "-p", &publish, "-e", &env, "notebook"]);
    wait_http(d, &format!("http://127.0.0.1:{port}/api"), "notebook");
    let url = format!("http://localhost:{port}/tree?token={token}");
    // A notebook made through the server's API, which the browser must then list.
    let (body, code) = curl(
        &["-X", "PUT", "-H", &format!("Authorization: token {token}"), "-d", r#"{"type": "notebook"}"#],
        &format!("http://localhost:{port}/api/contents/hello.ipynb"),
    );
    assert_eq!(code, 201, "{body}");
    if cli == Cli::Berth {
        let shot = artifacts.join("notebook.png");
        let seen = browse(&url, &shot);
        assert!(seen.contains("title: Home"), "{seen}");
        assert!(seen.contains("listed: hello.ipynb"), "the file browser rendered: {seen}");
        let png = std::fs::read(&shot).expect("the screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    } else {
        let (body, code) = curl(&["-L"], &url);
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("<title>Home</title>"), "{body}");
    }
    cli.ok(d, &p, &["rm", "-f", "notebook"]);
}

/// The Python interpreter with Playwright that scripts/test prepares.
const PLAYWRIGHT_PYTHON: &str = "/var/cache/berth/playwright/bin/python";

/// Opens `url` in Debian's Chromium (headless) through Playwright, waits until Jupyter's
/// file browser lists hello.ipynb, saves a screenshot to `shot` and returns what it saw.
fn browse(url: &str, shot: &Path) -> String {
    const SCRIPT: &str = r#"
import sys
from playwright.sync_api import sync_playwright
url, shot = sys.argv[1], sys.argv[2]
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(url, wait_until="networkidle", timeout=60000)
    item = page.locator(".jp-DirListing-item", has_text="hello.ipynb")
    item.first.wait_for(state="visible", timeout=60000)
    page.screenshot(path=shot, full_page=True)
    print("title:", page.title())
    print("listed:", item.first.inner_text().split()[0])
    browser.close()
"#;
    let python = std::env::var("BERTH_PLAYWRIGHT_PYTHON").unwrap_or_else(|_| PLAYWRIGHT_PYTHON.to_owned());
    assert!(
        Path::new(&python).exists(),
        "{python} is missing: scripts/test makes it (python3 -m venv {} && pip install playwright)",
        "/var/cache/berth/playwright"
    );
    let out = Command::new(&python).args(["-c", SCRIPT, url]).arg(shot).output().expect("run playwright");
    assert!(out.status.success(), "playwright: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Where the screenshot is kept: target/test-artifacts/tutorials/.
fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/test-artifacts/tutorials
    let target = exe.ancestors().nth(3).expect("target dir");
    let dir = target.join("test-artifacts/tutorials");
    std::fs::create_dir_all(&dir).expect("mkdir test-artifacts");
    dir
}

/// Runs `walk` with each CLI, printing how long each took.
fn walk_both(d: &Daemon, name: &str, walk: &dyn Fn(&Daemon, Cli)) {
    for cli in Cli::all() {
        let started = Instant::now();
        walk(d, cli);
        eprintln!("{name} with {cli:?}: {:.0?}", started.elapsed());
    }
}

#[test]
fn tutorials_walk_their_readmes_with_both_clis() {
    let d = Daemon::start();
    python_base(&d);
    let artifacts = artifacts_dir();
    // flask-app's walk ends with `rmi simple-app`, which frees the layers no tagged image
    // holds, among them the `WORKDIR /app` layer every project here shares; a build that
    // took that layer from the cache meanwhile would fail. So flask-app goes once iris and
    // mnist-trainer have tagged their images. (Notebook shares none of its layers.)
    let failed = std::thread::scope(|s| {
        let d = &d;
        let artifacts = &artifacts;
        let nb = s.spawn(move || walk_both(d, "notebook", &|d, cli| notebook(d, cli, artifacts)));
        let ir = s.spawn(move || walk_both(d, "iris", &iris));
        let mn = s.spawn(move || walk_both(d, "mnist-trainer", &mnist));
        let mut failed = Vec::new();
        for (name, h) in [("iris", ir), ("mnist-trainer", mn)] {
            if h.join().is_err() {
                failed.push(name);
            }
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| walk_both(d, "flask-app", &flask))).is_err() {
            failed.push("flask-app");
        }
        if nb.join().is_err() {
            failed.push("notebook");
        }
        failed
    });
    assert!(failed.is_empty(), "tutorials that failed (their panics are above): {failed:?}");
}
