//! Published ports on IPv6: `-p P:80` answers on `[::1]:P` through the container's userland
//! proxy process as well as on IPv4 through DNAT, is reported as docker 20.10 reports it
//! (`0.0.0.0:P->80/tcp, :::P->80/tcp`), keeps answering while the daemon is killed with -9
//! and after it starts again, and is gone after `rm`. `-p [::1]:P:80`, `-P`, and a port in use on IPv6 only. Only 127.0.0.1 and ::1
//! are contacted.

use std::net::{Ipv6Addr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{DOCKER_DEBIAN, Daemon, curl_within, host_has_ipv6, ok, text};

/// A TCP port free on both 127.0.0.1 and ::1 (bound then released).
fn free_port() -> u16 {
    loop {
        let p = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if TcpListener::bind((Ipv6Addr::LOCALHOST, p)).is_ok() {
            return p;
        }
    }
}

/// Whether nothing answers on `port` at 127.0.0.1 and ::1, waiting a little for sockets to
/// close.
fn closed(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let v4 = TcpStream::connect(("127.0.0.1", port)).is_err();
        let v6 = TcpStream::connect((Ipv6Addr::LOCALHOST, port)).is_err();
        if v4 && v6 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn httpd(d: &Daemon, publish: &[&str], www: &str) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(publish);
    args.extend_from_slice(&["-v", www, "busybox:latest", "httpd", "-f", "-p", "80", "-h", "/www"]);
    ok(&d.berth(&args)).trim().to_owned()
}

/// docker 20.10's CLI (Debian's), the one whose shapes `ps`/`port` follow.
fn docker20(d: &Daemon, args: &[&str]) -> Option<String> {
    if !std::path::Path::new(DOCKER_DEBIAN).exists() {
        return None;
    }
    let out = Command::new(DOCKER_DEBIAN)
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .expect("run docker");
    Some(ok(&out))
}

#[test]
fn published_ports_answer_on_ipv6_and_are_reported_as_docker_does() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let www = d.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello v6\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let v6 = host_has_ipv6();

    let port = free_port();
    let id = httpd(&d, &["-p", &format!("{port}:80")], &vol);
    assert_eq!(
        curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(3)).as_deref(),
        Some("hello v6\n")
    );
    if !v6 {
        // As docker: IPv4 only, no error.
        assert_eq!(ok(&d.berth(&["port", &id])), format!("80/tcp -> 0.0.0.0:{port}\n"));
        eprintln!("no IPv6 on this host: the IPv6 half is not exercised");
        return;
    }
    assert_eq!(curl_within(&format!("http://[::1]:{port}/"), Duration::from_secs(3)).as_deref(), Some("hello v6\n"));

    // The API's shapes: inspect and the container list.
    let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", &id]))).unwrap();
    assert_eq!(
        v[0]["NetworkSettings"]["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": port.to_string()}, {"HostIp": "::", "HostPort": port.to_string()}])
    );
    let list = Command::new("curl")
        .args(["-s", "--unix-socket", &d.socket.display().to_string(), "http://localhost/containers/json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let ports = &list.as_array().unwrap().iter().find(|c| c["Id"] == id.as_str()).unwrap()["Ports"];
    assert_eq!(
        ports,
        &serde_json::json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}
        ])
    );
    // Our CLI and docker 20.10's print the same.
    let want_ps = format!("0.0.0.0:{port}->80/tcp, :::{port}->80/tcp\n");
    let want_port = format!("80/tcp -> 0.0.0.0:{port}\n80/tcp -> :::{port}\n");
    assert_eq!(ok(&d.berth(&["ps", "--format", "{{.Ports}}", "-f", &format!("id={id}")])), want_ps);
    assert_eq!(ok(&d.berth(&["port", &id])), want_port);
    assert_eq!(ok(&d.berth(&["port", &id, "80"])), format!("0.0.0.0:{port}\n:::{port}\n"));
    if let Some(ps) = docker20(&d, &["ps", "--format", "{{.Ports}}", "-f", &format!("id={id}")]) {
        assert_eq!(ps, want_ps);
        assert_eq!(docker20(&d, &["port", &id]).unwrap(), want_port);
    }

    // Only ::1: IPv6 only, and IPv4 does not answer.
    let p1 = free_port();
    let id1 = httpd(&d, &["-p", &format!("[::1]:{p1}:80")], &vol);
    assert_eq!(curl_within(&format!("http://[::1]:{p1}/"), Duration::from_secs(3)).as_deref(), Some("hello v6\n"));
    assert!(TcpStream::connect(("127.0.0.1", p1)).is_err(), "[::1] publishes no IPv4 side");
    assert_eq!(ok(&d.berth(&["port", &id1])), format!("80/tcp -> ::1:{p1}\n"));
    // `::` alone: IPv6 only too.
    let p2 = free_port();
    let id2 = httpd(&d, &["-p", &format!("[::]:{p2}:80")], &vol);
    assert_eq!(curl_within(&format!("http://[::1]:{p2}/"), Duration::from_secs(3)).as_deref(), Some("hello v6\n"));
    assert_eq!(ok(&d.berth(&["port", &id2])), format!("80/tcp -> :::{p2}\n"));
    // -P: one ephemeral port number for both families.
    let id3 = httpd(&d, &["-P", "--expose", "80"], &vol);
    let got = ok(&d.berth(&["port", &id3, "80"]));
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 2, "{got}");
    let ep: u16 = lines[0].strip_prefix("0.0.0.0:").unwrap().parse().unwrap();
    assert_eq!(lines[1], format!(":::{ep}"));
    assert_eq!(curl_within(&format!("http://[::1]:{ep}/"), Duration::from_secs(3)).as_deref(), Some("hello v6\n"));

    // A port in use on IPv6 only: a clear error at start, nothing half-started.
    let q = free_port();
    let squat = TcpListener::bind((Ipv6Addr::LOCALHOST, q)).unwrap();
    let out = d.berth(&["run", "-d", "--name", "clash", "-p", &format!("{q}:80"), "busybox:latest", "sleep", "30"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("Error starting userland proxy: listen tcp6 [::]:{q}: bind: address already in use")),
        "{err}"
    );
    assert_eq!(ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "clash"])).trim(), "created");
    assert!(TcpListener::bind(("0.0.0.0", q)).is_ok(), "the IPv4 side of the failed start is not held");
    drop(squat);
    ok(&d.berth(&["rm", "clash"]));

    // A daemon killed with -9 and started again serves the IPv6 side again.
    d.restart(true);
    assert_eq!(curl_within(&format!("http://[::1]:{port}/"), Duration::from_secs(3)).as_deref(), Some("hello v6\n"));
    assert_eq!(
        curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(3)).as_deref(),
        Some("hello v6\n")
    );
    assert_eq!(ok(&d.berth(&["port", &id])), want_port);

    // After rm, nothing listens on the ports.
    ok(&d.berth(&["rm", "-f", &id, &id1, &id2, &id3]));
    for p in [port, p1, p2, ep] {
        assert!(closed(p), "port {p} still answers after rm");
    }
}

/// The pid in the container's proxy process's pid file, once it is there.
fn proxy_pid(d: &Daemon, id: &str) -> Option<i32> {
    let f = d.exec_root.join("netproxy").join(format!("{id}.pid"));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(p) = std::fs::read_to_string(&f).ok().and_then(|s| s.trim().parse().ok()) {
            return Some(p);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` runs (a zombie waiting for whoever adopted it does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn published_ipv6_ports_answer_while_no_daemon_runs() {
    if !host_has_ipv6() {
        eprintln!("no IPv6 on this host: nothing to check");
        return;
    }
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let www = d.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "still here\n").unwrap();
    let vol = format!("{}:/www:ro", www.display());
    let port = free_port();
    let id = httpd(&d, &["-p", &format!("{port}:80")], &vol);
    let v6 = format!("http://[::1]:{port}/");
    assert_eq!(curl_within(&v6, Duration::from_secs(3)).as_deref(), Some("still here\n"));
    let pid = proxy_pid(&d, &id).expect("the container's proxy process writes its pid");

    // No daemon: the proxy process serves on, as docker-proxy does (IPv4 is kernel DNAT).
    d.kill();
    assert_eq!(
        curl_within(&v6, Duration::from_secs(3)).as_deref(),
        Some("still here\n"),
        "[::1] while the daemon is down"
    );
    assert_eq!(
        curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(3)).as_deref(),
        Some("still here\n")
    );

    // A new daemon takes the same process back rather than starting another.
    d.start_again();
    assert_eq!(curl_within(&v6, Duration::from_secs(3)).as_deref(), Some("still here\n"), "[::1] after the restart");
    assert_eq!(proxy_pid(&d, &id), Some(pid), "the proxy process was replaced");
    assert_eq!(ok(&d.berth(&["port", &id, "80"])), format!("0.0.0.0:{port}\n:::{port}\n"));

    // rm: the process, its pid file and both sides of the port are gone.
    ok(&d.berth(&["rm", "-f", &id]));
    assert!(closed(port), "port {port} still answers after rm");
    assert!(!alive(pid), "proxy process {pid} outlived its container");
    assert!(!d.exec_root.join("netproxy").join(format!("{id}.pid")).exists(), "pid file left behind");

    // A container that ends while no daemon runs: the next daemon stops its proxy.
    let port = free_port();
    let id = ok(&d.berth(&[
        "run",
        "-d",
        "-p",
        &format!("{port}:80"),
        "-v",
        &vol,
        "busybox:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]))
    .trim()
    .to_owned();
    assert_eq!(curl_within(&format!("http://[::1]:{port}/"), Duration::from_secs(3)).as_deref(), Some("still here\n"));
    let pid = proxy_pid(&d, &id).expect("pid file");
    let init = ok(&d.berth(&["inspect", "-f", "{{.State.Pid}}", &id])).trim().to_owned();
    d.kill();
    assert!(Command::new("kill").args(["-9", &init]).status().unwrap().success());
    d.start_again();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "proxy of an exited container left running");
    assert!(closed(port), "port {port} still answers after its container ended");
    ok(&d.berth(&["rm", "-f", &id]));
}
