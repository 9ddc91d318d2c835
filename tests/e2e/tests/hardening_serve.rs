//! The API server under connection abuse (issue 12, defect 6): more idle connections than
//! the daemon has descriptors for must not end it (accept errors are retried, the excess is
//! answered 503 `too many connections`), and a client that sends half a header is dropped
//! after the header timeout (a TLS client that stalls its handshake too) — while hijacked
//! attach and streaming wait and logs connections, which are past their headers, are not.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, ok, text};

/// The pid of the daemon serving `socket` (its command line names the socket).
fn daemon_pid(socket: &Path) -> rustix::process::Pid {
    let want = socket.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline =
            String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default()).into_owned();
        let args: Vec<&str> = cmdline.split('\0').collect();
        if args.get(1) == Some(&"daemon") && cmdline.contains(&want) {
            return rustix::process::Pid::from_raw(pid).unwrap();
        }
    }
    panic!("no daemon process for {want}");
}

/// One request on the daemon's socket; the whole answer.
fn request(socket: &Path, req: &str) -> String {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    text(&out)
}

fn ping(socket: &Path) -> String {
    request(socket, "GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n")
}

#[test]
fn idle_connections_past_the_descriptor_limit_leave_the_daemon_serving() {
    let d = Daemon::start();
    // A daemon with 256 descriptors, so a few hundred connections run it out (before the
    // fix, accept's EMFILE ended the serve loop and with it the daemon).
    let pid = daemon_pid(&d.socket);
    // The daemon inherited our limits: keep its hard limit, lower the soft one.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let lim = rustix::process::Rlimit { current: Some(256), maximum: hard };
    rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, lim).unwrap();

    let mut conns = Vec::new();
    for _ in 0..600 {
        match UnixStream::connect(&d.socket) {
            Ok(s) => conns.push(s),
            // The backlog is full while the daemon backs off: that is the point.
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    assert!(conns.len() > 300, "only {} connections opened", conns.len());
    // Past the bound, connections are told why and closed.
    let mut refused = 0;
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = s.read(&mut buf)
            && text(&buf[..n]).contains(r#"{"message":"too many connections"}"#)
        {
            assert!(text(&buf[..n]).starts_with("HTTP/1.1 503 "), "{}", text(&buf[..n]));
            refused += 1;
        }
    }
    assert!(refused > 100, "{refused} connections were answered 503");
    let log = d.log();
    eprintln!(
        "{} connections, {refused} answered 503, {} accept errors retried",
        conns.len(),
        log.matches("accept failed; retrying").count()
    );
    drop(conns);

    // Once they are gone the daemon answers again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = ping(&d.socket);
        if last.starts_with("HTTP/1.1 200") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(last.starts_with("HTTP/1.1 200") && last.ends_with("OK"), "{last}\n{}", d.log());
    assert!(rustix::process::test_kill_process(pid).is_ok(), "the daemon died: {}", d.log());
    assert!(d.log().contains("accept failed; retrying") || d.log().contains("too many connections"), "{}", d.log());
    ok(&d.berth(&["version"]));
}

/// Sends half a request head on `s` and returns how long until the daemon closed it.
fn half_header_dropped_after(mut s: impl Read + Write) -> Duration {
    let start = Instant::now();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nX-Slow: ").unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            // hyper may answer 408 before closing; either way the connection ends.
            Ok(n) if n > 0 => continue,
            _ => return start.elapsed(),
        }
    }
}

#[test]
fn a_half_sent_header_is_dropped_after_the_timeout_but_attach_and_wait_are_not() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with(&["--api-header-timeout", "2s", "-H", &tcp]);

    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let took = half_header_dropped_after(s);
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "unix: dropped after {took:?}");

    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let took = half_header_dropped_after(s);
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "tcp: dropped after {took:?}");

    // A client that does send its headers in time is served.
    assert!(ping(&d.socket).starts_with("HTTP/1.1 200"));

    // Attach (hijacked) and wait (a streaming answer) outlive the header timeout.
    d.import_busybox("busybox");
    let out = d.berth(&["run", "--rm", "busybox", "sh", "-c", "sleep 5; echo done"]);
    assert_eq!(ok(&out).trim(), "done", "{}", text(&out.stderr));
    let id = ok(&d.berth(&["run", "-d", "busybox", "sh", "-c", "sleep 5; echo late"])).trim().to_owned();
    let logs = ok(&d.berth(&["logs", "-f", &id]));
    assert_eq!(logs.trim(), "late");
}

#[test]
fn a_stalled_tls_handshake_is_dropped_after_the_timeout() {
    let certs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(certs.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl: {}", text(&out.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let d = Daemon::start_with(&[
        "--api-header-timeout",
        "2s",
        "-H",
        &tcp,
        "--tls",
        "--tlscert",
        cert.to_str().unwrap(),
        "--tlskey",
        key.to_str().unwrap(),
    ]);
    // The first bytes of a ClientHello, and then nothing.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let start = Instant::now();
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let mut buf = [0u8; 1024];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(15), "dropped after {took:?}");
    // The daemon logs after it has closed the connection: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !d.log().contains("TLS handshake timed out") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(d.log().contains("TLS handshake timed out"), "{}", d.log());
}
