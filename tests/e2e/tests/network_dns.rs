//! The embedded DNS of user networks as Docker serves it: `nameserver 127.0.0.11` in the
//! container, answered inside the container's own namespace over UDP and TCP, container
//! names and aliases, empty NOERROR answers to AAAA queries for them, every other name
//! relayed to the container's `--dns` server (a tiny upstream this test runs on a loopback
//! address of the host), and all of it still answering after a daemon restart.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::process::Command;

use berth_e2e::{Daemon, ok, text};

/// A /24 for this test process that no other test daemon picks.
fn subnet() -> String {
    format!("10.207.{}.0/24", std::process::id() % 250)
}

/// The name the upstream knows, and its answer.
const EXTERNAL: &str = "outside.example";
const EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

/// A DNS answer to `q` (a query as sent): `EXTERNAL` gets one A record, anything else
/// NXDOMAIN. Written by hand from the wire format (RFC 1035), the test's upstream only.
fn upstream_answer(q: &[u8]) -> Vec<u8> {
    let mut r = q.to_vec();
    // Question name ends at the first zero label after the 12-byte header.
    let mut i = 12;
    let mut labels = Vec::new();
    while i < q.len() && q[i] != 0 {
        let l = q[i] as usize;
        labels.push(String::from_utf8_lossy(&q[i + 1..i + 1 + l]).to_ascii_lowercase());
        i += 1 + l;
    }
    let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
    r.truncate(i + 5);
    r[2] = 0x81; // response, recursion desired
    r[3] = 0x80; // recursion available, NOERROR
    r[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    if labels.join(".") == EXTERNAL && qtype == 1 {
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&EXTERNAL_IP.octets());
    } else if labels.join(".") != EXTERNAL {
        r[3] = 0x83; // NXDOMAIN
    }
    r
}

/// Serves `upstream_answer` on `ip:53`, UDP and TCP, until the test ends.
fn start_upstream(ip: Ipv4Addr) {
    let udp = UdpSocket::bind((ip, 53)).expect("bind the test's upstream (udp)");
    let tcp = TcpListener::bind((ip, 53)).expect("bind the test's upstream (tcp)");
    std::thread::spawn(move || {
        let mut b = [0u8; 1500];
        while let Ok((n, from)) = udp.recv_from(&mut b) {
            let _ = udp.send_to(&upstream_answer(&b[..n]), from);
        }
    });
    std::thread::spawn(move || {
        for c in tcp.incoming() {
            let Ok(mut c) = c else { continue };
            let mut l = [0u8; 2];
            if c.read_exact(&mut l).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(l) as usize];
            if c.read_exact(&mut q).is_ok() {
                let a = upstream_answer(&q);
                let _ = c.write_all(&(a.len() as u16).to_be_bytes());
                let _ = c.write_all(&a);
            }
        }
    });
}

/// A TCP DNS query for the A record of `name` sent to 127.0.0.11:53 inside the network
/// namespace of process `pid`; returns the answers' addresses.
fn tcp_query(pid: &str, name: &str) -> Vec<String> {
    let script = r#"
import socket, struct, sys
name = sys.argv[1]
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
for l in name.split("."):
    q += bytes([len(l)]) + l.encode()
q += b"\0" + struct.pack(">HH", 1, 1)
s = socket.create_connection(("127.0.0.11", 53), timeout=5)
s.sendall(struct.pack(">H", len(q)) + q)
n = struct.unpack(">H", s.recv(2))[0]
a = b""
while len(a) < n:
    a += s.recv(n - len(a))
an = struct.unpack(">H", a[6:8])[0]
i = 12
while a[i] != 0:
    i += 1 + a[i]
i += 5
for _ in range(an):
    i += 2 if a[i] & 0xc0 else 0
    typ, _, _, ln = struct.unpack(">HHIH", a[i:i + 10])
    if typ == 1:
        print(".".join(str(b) for b in a[i + 10:i + 14]))
    i += 10 + ln
"#;
    let out =
        Command::new("nsenter").args(["-t", pid, "-n", "python3", "-c", script, name]).output().expect("run nsenter");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

/// `nslookup ARGS` run in the container `client`, stdout and stderr.
fn look(d: &Daemon, client: &str, args: &[&str]) -> String {
    let mut a = vec!["exec", client, "nslookup"];
    a.extend_from_slice(args);
    let out = d.berth(&a);
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// What the client's resolver must answer.
fn check(d: &Daemon, client: &str, web_ip: &str) {
    let a = look(d, client, &["web"]);
    assert!(a.contains(&format!("Address: {web_ip}")) && a.contains("127.0.0.11"), "{a}");
    let a = look(d, client, &["site"]);
    assert!(a.contains(&format!("Address: {web_ip}")), "the alias: {a}");
    let a = look(d, client, &[EXTERNAL]);
    assert!(a.contains(&format!("Address: {EXTERNAL_IP}")), "relayed to the upstream: {a}");
    let a = look(d, client, &["nowhere.example"]);
    assert!(a.contains("NXDOMAIN"), "the upstream's NXDOMAIN: {a}");
    // AAAA for a container name: an empty NOERROR answer, as Docker gives.
    let a = look(d, client, &["-type=aaaa", "web"]);
    assert!(!a.contains("NXDOMAIN") && !a.contains(web_ip), "{a}");
}

#[test]
fn embedded_dns_on_127_0_0_11_answers_names_aliases_and_relays_the_rest() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    let pid = std::process::id();
    let upstream = Ipv4Addr::new(127, 53, (pid >> 8) as u8, pid as u8);
    start_upstream(upstream);
    ok(&d.berth(&["network", "create", "--subnet", &subnet(), "dnsnet"]));
    let web = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "dnsnet",
        "--network-alias",
        "site",
        "busybox:latest",
        "sleep",
        "300",
    ]));
    let web_ip = ok(&d.berth(&["inspect", "-f", "{{.NetworkSettings.Networks.dnsnet.IPAddress}}", web.trim()]))
        .trim()
        .to_owned();
    // A client that stays up (for exec and for its namespace), relaying to the test's upstream.
    let client = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "dnsnet",
        "--dns",
        &upstream.to_string(),
        "busybox:latest",
        "sleep",
        "300",
    ]));
    let client = client.trim().to_owned();
    let resolv = ok(&d.berth(&["exec", &client, "cat", "/etc/resolv.conf"]));
    assert!(resolv.lines().any(|l| l == "nameserver 127.0.0.11"), "{resolv}");
    assert_eq!(resolv.matches("nameserver").count(), 1, "the embedded resolver only: {resolv}");
    assert!(resolv.lines().any(|l| l.starts_with("options") && l.contains("ndots:0")), "{resolv}");

    check(&d, &client, &web_ip);
    // Over TCP too, inside the client's own namespace.
    let cpid = ok(&d.berth(&["inspect", "-f", "{{.State.Pid}}", &client])).trim().to_owned();
    assert_eq!(tcp_query(&cpid, "web"), vec![web_ip.clone()]);
    assert_eq!(tcp_query(&cpid, EXTERNAL), vec![EXTERNAL_IP.to_string()]);
    // Nothing listens on the host's 127.0.0.11: the resolver is in the container's namespace.
    assert!(std::net::TcpStream::connect(("127.0.0.11", 53)).is_err());

    // A restarted daemon (and one killed) serves the running containers again.
    d.restart(false);
    check(&d, &client, &web_ip);
    d.restart(true);
    check(&d, &client, &web_ip);
    assert_eq!(tcp_query(&cpid, "site"), vec![web_ip.clone()]);

    // The default bridge keeps the host's resolvers (no embedded DNS there, as in Docker).
    let plain = ok(&d.berth(&["run", "--rm", "busybox:latest", "cat", "/etc/resolv.conf"]));
    assert!(!plain.contains("127.0.0.11"), "{plain}");
    ok(&d.berth(&["rm", "-f", "web", "client"]));
    ok(&d.berth(&["network", "rm", "dnsnet"]));
}
