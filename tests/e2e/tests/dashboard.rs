//! `berth dashboard` end to end: the daemon, a busybox httpd container with a published port
//! and an image built to waste bytes; then the dashboard on loopback, its refusals checked
//! over raw HTTP (no token, a foreign Host, a cross-site Origin, a path off the allow-list),
//! and a person's session replayed in Chromium by Playwright (dashboard/tests/e2e.mjs):
//! open, see, click the port, read live logs, `echo hi` in the terminal, attach, the compose
//! project, a volume's files, Docker's refusal to remove an image in use, tag and push to a
//! registry on 127.0.0.1, the run form, stop, remove, the image's layers and wasted bytes,
//! and axe's accessibility check. Screenshots land in
//! target/test-artifacts/dashboard/.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, ok, repo_root, text};

/// A `berth dashboard` process, killed on drop.
struct Dashboard {
    child: Child,
    url: String,
    port: u16,
    token: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `berth dashboard ARGS`, its stderr going to `stderr`, and reads the URL it prints.
fn start_dashboard(d: &Daemon, args: &[&str], stderr: &Path) -> Dashboard {
    start_dashboard_cmd(d.berth_cmd(&[&["dashboard"][..], args].concat()), stderr)
}

fn start_dashboard_cmd(mut cmd: Command, stderr: &Path) -> Dashboard {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("start berth dashboard");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read the URL");
    let url = line.trim().to_owned();
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("printed URL: {url:?}"));
    let rest = rest.split_once(':').map(|(_, r)| r).unwrap_or_else(|| panic!("printed URL: {url:?}"));
    let (port, token) = rest.split_once("/?token=").expect("URL with a token");
    Dashboard { port: port.parse().expect("port"), token: token.to_owned(), url, child }
}

/// Sends one raw HTTP/1.1 request; returns the status code and the body.
fn raw(port: u16, req: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the dashboard");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let resp = String::from_utf8_lossy(&out).into_owned();
    let code = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (code, body)
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    raw(port, &req)
}

/// Bytes stored in one layer for files that a later layer overwrites or deletes, summed
/// over the image, computed from the layer tars of `berth save` (whiteouts included).
fn wasted_bytes(d: &Daemon, image: &str) -> u64 {
    let tar_path = d.dir.path().join("waste.tar");
    ok(&d.berth(&["save", "-o", tar_path.to_str().unwrap(), image]));
    let dir = d.dir.path().join("waste");
    std::fs::create_dir_all(&dir).unwrap();
    tar::Archive::new(std::fs::File::open(&tar_path).unwrap()).unpack(&dir).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    // path -> size of the regular file visible so far
    let mut visible: BTreeMap<String, u64> = BTreeMap::new();
    let mut wasted = 0;
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let f = std::fs::File::open(dir.join(layer.as_str().unwrap())).unwrap();
        let mut rd: Box<dyn Read> = Box::new(f);
        let mut magic = [0u8; 2];
        let mut buf = Vec::new();
        rd.read_to_end(&mut buf).unwrap();
        magic.copy_from_slice(&buf[..2]);
        let data: Box<dyn Read> = if magic == [0x1f, 0x8b] {
            let mut out = Vec::new();
            Command::new("gzip")
                .args(["-dc"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    c.stdin.take().unwrap().write_all(&buf)?;
                    c.stdout.take().unwrap().read_to_end(&mut out)?;
                    c.wait()
                })
                .unwrap();
            Box::new(std::io::Cursor::new(out))
        } else {
            Box::new(std::io::Cursor::new(buf))
        };
        let mut ar = tar::Archive::new(data);
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let p = format!("/{}", e.path().unwrap().display()).trim_end_matches('/').to_owned();
            let (dirname, base) = p.rsplit_once('/').unwrap();
            let gone = |prefix: &str, visible: &mut BTreeMap<String, u64>| -> u64 {
                let keys: Vec<String> =
                    visible.keys().filter(|k| *k == prefix || k.starts_with(&format!("{prefix}/"))).cloned().collect();
                keys.iter().map(|k| visible.remove(k).unwrap_or(0)).sum()
            };
            if base == ".wh..wh..opq" {
                let kids: Vec<String> =
                    visible.keys().filter(|k| k.starts_with(&format!("{dirname}/"))).cloned().collect();
                wasted += kids.iter().map(|k| visible.remove(k).unwrap_or(0)).sum::<u64>();
            } else if let Some(name) = base.strip_prefix(".wh.") {
                wasted += gone(&format!("{dirname}/{name}"), &mut visible);
            } else if e.header().entry_type().is_file() {
                wasted += visible.insert(p, e.header().size().unwrap()).unwrap_or(0);
            } else {
                wasted += gone(&p, &mut visible);
            }
        }
    }
    wasted
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

/// `npm ci` in dashboard/ when its node_modules lack Playwright (CI starts fresh).
fn npm_ready(web: &Path) {
    if web.join("node_modules/playwright/package.json").exists()
        && web.join("node_modules/@axe-core/playwright").exists()
    {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .current_dir(web)
        .output()
        .expect("run npm ci");
    assert!(out.status.success(), "npm ci: {}{}", text(&out.stdout), text(&out.stderr));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn dashboard_end_to_end_in_a_browser() {
    let t0 = Instant::now();
    assert!(
        have("node") && have("chromium"),
        "the dashboard test needs node and chromium (scripts/test installs them)"
    );
    let web = repo_root().join("dashboard");
    npm_ready(&web);

    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let waste = d.dir_with(
        "waste",
        "FROM busybox:latest\nRUN dd if=/dev/zero of=/blob bs=1000 count=300 && mkdir -p /var/cache/x && echo cached > /var/cache/x/c\nRUN rm /blob && echo v2 > /var/cache/x/c\n",
    );
    let b = d.build_plain(&waste, &["-t", "waste:1", "."]);
    assert!(b.status.success(), "build: {}", text(&b.stderr));
    let wasted = wasted_bytes(&d, "waste:1");
    // The builds the page watches: ok.dockerfile's first RUN is cached by this build, its
    // second is fresh; fail.dockerfile's second RUN fails after printing a marker.
    let builds_dir = d.dir_with("builds", "FROM busybox:latest\nRUN echo one > /one\n");
    std::fs::write(builds_dir.join("ok.dockerfile"), "FROM busybox:latest\nRUN echo one > /one\nRUN echo two > /two\n")
        .unwrap();
    std::fs::write(
        builds_dir.join("fail.dockerfile"),
        "FROM busybox:latest\nRUN echo one > /one\nRUN echo boom-from-the-step; exit 3\n",
    )
    .unwrap();
    let b = d.build_plain(&builds_dir, &["-t", "built:1", "."]);
    assert!(b.status.success(), "build: {}", text(&b.stderr));
    assert!(wasted >= 300_000, "the test image wastes {wasted} bytes");

    let www = d.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from the dashboard's app\n").unwrap();
    let app_port = free_port();
    let name = "dash-web";
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        &format!("127.0.0.1:{app_port}:80"),
        "-v",
        &format!("{}:/www:ro", www.display()),
        "-v",
        "dash-vol:/data",
        "--label",
        "com.docker.compose.project=demo",
        "--label",
        "com.docker.compose.service=web",
        "--health-cmd",
        "wget -q -O /dev/null http://127.0.0.1/",
        "--health-interval",
        "1s",
        "busybox:latest",
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo hello > /data/greeting.txt; httpd -p 80 -h /www; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done",
    ]));

    let registry = berth_e2e::registry::Registry::start(&[]);
    let push_tag = format!("{}/dash/busybox:1", registry.host());

    let dash = start_dashboard(&d, &["--addr", "127.0.0.1:0"], &d.dir.path().join("dashboard.err"));
    assert!(dash.url.starts_with("http://127.0.0.1:"), "{}", dash.url);
    let host = format!("127.0.0.1:{}", dash.port);

    // Refusals, over raw HTTP.
    let (code, body) = get(dash.port, "/", &[("Host", &host)]);
    assert_eq!(code, 401, "no token: {body}");
    let (code, _) = get(dash.port, "/api/containers/json", &[("Host", &host)]);
    assert_eq!(code, 401, "API without the token");
    let (code, _) = get(dash.port, "/?token=0000", &[("Host", &host)]);
    assert_eq!(code, 401, "wrong token");
    let tok = dash.token.as_str();
    let (code, _) =
        get(dash.port, "/api/_ping", &[("Host", &format!("rebind.example:{}", dash.port)), ("X-Berth-Token", tok)]);
    assert_eq!(code, 403, "DNS-rebinding Host");
    let (code, _) =
        get(dash.port, "/api/_ping", &[("Host", &host), ("X-Berth-Token", tok), ("Origin", "http://evil.example")]);
    assert_eq!(code, 403, "cross-site Origin");
    let (code, body) = get(dash.port, "/api/_ping", &[("Host", &host), ("X-Berth-Token", tok)]);
    assert_eq!((code, body.as_str()), (200, "OK"), "ping through the forwarder");
    let cookie = format!("berth_dashboard_{}={tok}", dash.port);
    // A websocket handshake; only the status line is read (a 101 stays open).
    let ws = |origin: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", dash.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /ws/logs/{name} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nOrigin: {origin}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        line.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).unwrap_or(0)
    };
    assert_eq!(ws("http://evil.example"), 403, "cross-site websocket");
    assert_eq!(ws(&format!("http://{host}")), 101, "the page's own websocket");
    let req = format!(
        "POST /api/build HTTP/1.1\r\nHost: {host}\r\nX-Berth-Token: {tok}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (code, body) = raw(dash.port, &req);
    assert_eq!(code, 403, "off the allow-list: {body}");
    let (code, body) = get(dash.port, &format!("/?token={tok}"), &[("Host", &host)]);
    assert_eq!(code, 303, "the token becomes a cookie: {body}");
    let (code, body) =
        get(dash.port, "/", &[("Host", &host), ("Cookie", &format!("berth_dashboard_{}={tok}", dash.port))]);
    assert_eq!(code, 200);
    assert!(
        body.contains("app.js"),
        "the page is built into the binary (run `npm run build` in dashboard/ before cargo build): {body}"
    );

    // A person's session in the browser.
    let artifacts: PathBuf = repo_root().join("target/test-artifacts/dashboard");
    let out = Command::new("node")
        .arg("tests/e2e.mjs")
        .current_dir(&web)
        .env("DASHBOARD_URL", &dash.url)
        .env("CONTAINER", name)
        .env("APP_PORT", app_port.to_string())
        .env("APP_TEXT", "hello from the dashboard's app")
        .env("IMAGE", "waste:1")
        .env("VOLUME", "dash-vol")
        .env("PUSH_TAG", &push_tag)
        .env("WASTED", wasted.to_string())
        .env("ARTIFACTS", &artifacts)
        .env("BERTH", berth_e2e::berth_bin())
        .env("BERTH_HOST", d.host())
        .env("BUILD_DIR", &builds_dir)
        .output()
        .expect("run node");
    let log = format!("{}{}", text(&out.stdout), text(&out.stderr));
    println!("{log}");
    assert!(out.status.success(), "playwright: {log}\n(screenshots in {})", artifacts.display());
    assert!(log.contains("all steps passed"), "{log}");

    // What the page did, the daemon did.
    let ps = ok(&d.berth(&["ps", "-a", "--format", "{{.Names}}"]));
    assert!(!ps.lines().any(|l| l == name), "removed from the page, still listed: {ps}");
    let tags = Command::new("curl")
        .args(["-s", &format!("http://{}/v2/dash/busybox/tags/list", registry.host())])
        .output()
        .expect("curl");
    assert!(text(&tags.stdout).contains("\"1\""), "pushed from the page: {}", text(&tags.stdout));
    // The build history the page showed, as the API lists it: newest first, right statuses.
    let api = |path: &str| -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sf", "--unix-socket"])
            .arg(&d.socket)
            .arg(format!("http://berth{path}"))
            .output()
            .expect("curl");
        assert!(out.status.success(), "GET {path}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", text(&out.stdout)))
    };
    let history = api("/berth/builds");
    let seen: Vec<(String, &str)> = history
        .as_array()
        .expect("a list")
        .iter()
        .map(|b| {
            let tags: Vec<&str> = b["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
            (tags.join(","), b["Status"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("broken:1".to_owned(), "failed"),
            ("built:2".to_owned(), "completed"),
            ("built:1".to_owned(), "completed"),
            ("waste:1".to_owned(), "completed"),
        ],
        "{history:#}"
    );
    let ok2 = api(&format!("/berth/builds/{}", history[1]["ID"].as_str().unwrap()));
    let steps = ok2["Steps"].as_array().expect("steps");
    let cached: Vec<&str> = steps.iter().filter(|s| s["Cached"] == true).map(|s| s["Text"].as_str().unwrap()).collect();
    assert!(cached.contains(&"RUN echo one > /one") && !cached.contains(&"RUN echo two > /two"), "{ok2:#}");
    let failed = api(&format!("/berth/builds/{}", history[0]["ID"].as_str().unwrap()));
    let step = failed["Steps"].as_array().unwrap().iter().find(|s| s["Status"] == "failed").expect("a failed step");
    assert!(step["Text"].as_str().unwrap().contains("exit 3"), "{failed:#}");
    assert!(step["Output"].as_str().unwrap().contains("boom-from-the-step"), "{failed:#}");
    assert!(failed["Error"].is_string() && failed.get("ImageID").is_none(), "{failed:#}");
    println!("dashboard test took {:?}", t0.elapsed());
}

/// A network namespace joined to the host by a veth pair, deleted on drop.
struct Peer {
    ns: String,
    host_if: String,
    host_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), text(&out.stderr));
}

impl Peer {
    fn new() -> Peer {
        let id = std::process::id() % 100_000;
        let (ns, host_if, ns_if) = (format!("bdash{id}"), format!("bdh{id}"), format!("bdn{id}"));
        let net = 16 + (id % 200) * 4;
        let (host_ip, peer_ip) =
            (format!("10.251.{}.{}", net / 256, net % 256 + 1), format!("10.251.{}.{}", net / 256, net % 256 + 2));
        let p = Peer { ns: ns.clone(), host_if: host_if.clone(), host_ip: host_ip.clone() };
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if]);
        ip(&["link", "set", &ns_if, "netns", &ns]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{peer_ip}/30"), "dev", &ns_if]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", &ns_if, "up"]);
        ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        p
    }

    /// `curl` from inside the namespace: the HTTP status, or None when nothing answered.
    fn curl(&self, url: &str, headers: &[&str]) -> Option<u16> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"]);
        for h in headers {
            c.args(["-H", h]);
        }
        let out = c.arg(url).output().expect("run curl");
        text(&out.stdout).trim().parse().ok().filter(|c| *c != 0)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[test]
fn nothing_listens_beyond_loopback_unless_asked_and_then_with_a_warning() {
    let d = Daemon::start();
    let peer = Peer::new();

    // The default: loopback only, so a peer on another address finds nothing there. The
    // daemon is the one the global -H names, over BERTH_HOST, as for any command; --open
    // runs $BROWSER with the URL.
    let opened = d.dir.path().join("opened");
    let browser = d.dir.path().join("browser.sh");
    std::fs::write(&browser, format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display())).unwrap();
    std::fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = d.berth_cmd(&["-H", &d.host(), "dashboard", "--open"]);
    cmd.env("BERTH_HOST", "unix:///nonexistent.sock").env("BROWSER", &browser);
    let local = start_dashboard_cmd(cmd, &d.dir.path().join("local.err"));
    assert!(local.url.starts_with("http://127.0.0.1:"), "{}", local.url);
    let url = format!("http://{}:{}/api/_ping", peer.host_ip, local.port);
    assert_eq!(peer.curl(&url, &[&format!("X-Berth-Token: {}", local.token)]), None, "reached {url}");
    let err = std::fs::read_to_string(d.dir.path().join("local.err")).unwrap();
    assert!(!err.contains("WARNING"), "{err}");
    let host = format!("127.0.0.1:{}", local.port);
    let (code, body) = get(local.port, "/api/_ping", &[("Host", &host), ("X-Berth-Token", &local.token)]);
    assert_eq!((code, body.as_str()), (200, "OK"), "forwarded to the daemon -H names");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !opened.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&opened).unwrap_or_default().trim(), local.url, "--open");

    // Asked for another address: it warns, and still wants the token.
    let remote_err = d.dir.path().join("remote.err");
    let remote = start_dashboard(&d, &["--addr", &format!("{}:0", peer.host_ip)], &remote_err);
    assert!(remote.url.starts_with(&format!("http://{}:", peer.host_ip)), "{}", remote.url);
    let err = std::fs::read_to_string(&remote_err).unwrap();
    assert!(err.contains("WARNING") && err.contains("beyond loopback"), "{err}");
    let url = format!("http://{}:{}/api/_ping", peer.host_ip, remote.port);
    assert_eq!(peer.curl(&url, &[]), Some(401), "without the token");
    assert_eq!(peer.curl(&url, &[&format!("X-Berth-Token: {}", remote.token)]), Some(200), "with it");
    let rebound = format!("Host: rebind.example:{}", remote.port);
    assert_eq!(peer.curl(&url, &[&format!("X-Berth-Token: {}", remote.token), &rebound]), Some(403), "a DNS name");
}
