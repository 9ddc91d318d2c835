//! Container networking end to end: the default bridge, published ports (busybox httpd
//! answering curl on the host), `port`, `ps` and inspect shapes, the network modes and
//! options, restarts (also after kill -9) and clean-up of our table and veths. Traffic goes
//! only to 127.0.0.1 and to addresses inside the bridges the daemons made.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, curl_within, ok, text};

/// A free TCP port on 127.0.0.1 (bound then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A directory with index.html for httpd to serve.
fn site(d: &Daemon, body: &str) -> String {
    let p = d.dir.path().join("www");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("index.html"), body).unwrap();
    p.display().to_string()
}

/// How many published ports our daemon's table holds (elements of its two address maps,
/// one per published port), and the whole table as `nft` lists it.
fn table_rules(d: &Daemon) -> (usize, String) {
    let out = Command::new("nft").args(["-j", "list", "table", "inet", &d.nft_table]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let n = v["nftables"]
        .as_array()
        .map(|objs| {
            objs.iter()
                .filter_map(|o| o.get("map"))
                .filter(|m| m["name"] == "ports4_ip_addr" || m["name"] == "ports4_any_addr")
                .map(|m| m["elem"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    let listing = Command::new("nft").args(["list", "table", "inet", &d.nft_table]).output().unwrap();
    (n, text(&listing.stdout))
}

/// The veths on the daemon's bridge once it holds `n` of them (a torn-down veth is deleted
/// in the background: its deletion waits for the kernel), or as they are after 3 seconds.
fn veths_settled(d: &Daemon, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let v = veths_of(d);
        if v.len() == n || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn veths_of(d: &Daemon) -> Vec<String> {
    let master = format!("/sys/class/net/{}/brif", d.bridge);
    std::fs::read_dir(master)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn published_port_answers_on_loopback_and_host_address_and_is_cleaned_up() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let www = site(&d, "hello from berth\n");
    let port = free_port();
    let t0 = Instant::now();
    let id = ok(&d.berth(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "-v",
        &format!("{www}:/www:ro"),
        "busybox:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]));
    let id = id.trim();
    let got = curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(1));
    assert_eq!(
        got.as_deref(),
        Some("hello from berth\n"),
        "answered within a second of run -d ({:?})\n{}",
        t0.elapsed(),
        d.log()
    );

    // port, ps and inspect show it as Docker does.
    assert_eq!(ok(&d.berth(&["port", id])), format!("80/tcp -> 127.0.0.1:{port}\n"));
    assert_eq!(ok(&d.berth(&["port", id, "80"])), format!("127.0.0.1:{port}\n"));
    let ps = ok(&d.berth(&["ps", "--format", "{{.Ports}}"]));
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    let docker_ps = ok(&d.docker(&["ps", "--format", "{{.Ports}}"]));
    assert_eq!(docker_ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    let v: serde_json::Value = serde_json::from_str(&ok(&d.berth(&["inspect", id]))).unwrap();
    let ns = &v[0]["NetworkSettings"];
    assert_eq!(ns["Ports"]["80/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(ns["Ports"]["80/tcp"][0]["HostPort"], port.to_string());
    let ip = ns["Networks"]["bridge"]["IPAddress"].as_str().unwrap().to_owned();
    assert!(!ip.is_empty() && ns["IPAddress"] == ip.as_str(), "{ns}");
    assert_eq!(ns["Networks"]["bridge"]["Gateway"], ns["Gateway"]);
    assert!(ns["Networks"]["bridge"]["MacAddress"].as_str().unwrap().starts_with("02:42:"));
    assert_eq!(ok(&d.docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", id])).trim(), ip);
    // The container's own /etc/hosts names it with its address; lo is up inside.
    let hosts = std::fs::read_to_string(v[0]["HostsPath"].as_str().unwrap()).unwrap();
    assert!(hosts.lines().any(|l| l == format!("{ip}\t{}", &id[..12])), "{hosts}");
    // Inside its namespace, its server answers on 127.0.0.1 (lo is up).
    let from_inside = ok(&d.berth(&[
        "run",
        "--rm",
        "--network",
        &format!("container:{id}"),
        "busybox:latest",
        "sh",
        "-c",
        "echo 'GET / HTTP/1.0' | nc 127.0.0.1 80 | tail -1",
    ]));
    assert_eq!(from_inside, "hello from berth\n");
    assert_eq!(table_rules(&d).0, 1, "{}", table_rules(&d).1);
    assert_eq!(veths_of(&d).len(), 1);

    // Another container reaches it by its address, and through the published port of
    // a port bound on all addresses (hairpin).
    let port2 = free_port();
    let id2 = ok(&d.berth(&[
        "run",
        "-d",
        "-p",
        &format!("{port2}:80"),
        "-v",
        &format!("{www}:/www:ro"),
        "busybox:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]));
    let id2 = id2.trim();
    assert_eq!(
        curl_within(&format!("http://127.0.0.1:{port2}/"), Duration::from_secs(2)).as_deref(),
        Some("hello from berth\n")
    );
    let gw = ns["Gateway"].as_str().unwrap().to_owned();
    // The host's own address on the bridge (an address of this host) answers too.
    assert_eq!(
        curl_within(&format!("http://{gw}:{port2}/"), Duration::from_secs(2)).as_deref(),
        Some("hello from berth\n")
    );
    let via = ok(&d.berth(&[
        "run",
        "--rm",
        "busybox:latest",
        "sh",
        "-c",
        &format!("echo 'GET / HTTP/1.0' | nc -w 5 {gw} {port2} | tail -1"),
    ]));
    assert_eq!(via, "hello from berth\n", "another container, through the published port");
    // The container itself, through its own published port on the host's address (self
    // hairpin: masqueraded, whether the host's br_netfilter is loaded or not).
    let own =
        ok(&d.berth(&["exec", id2, "sh", "-c", &format!("echo 'GET / HTTP/1.0' | nc -w 5 {gw} {port2} | tail -1")]));
    assert_eq!(own, "hello from berth\n", "the container itself, through its own published port");
    let direct = ok(&d.berth(&[
        "run",
        "--rm",
        "busybox:latest",
        "sh",
        "-c",
        &format!("echo 'GET / HTTP/1.0' | nc -w 5 {ip} 80 | tail -1"),
    ]));
    assert_eq!(direct, "hello from berth\n");
    // On a host with IPv6 the port is published on `::` too (see network_v6.rs).
    let v6 = if berth_e2e::host_has_ipv6() { format!("80/tcp -> :::{port2}\n") } else { String::new() };
    assert_eq!(ok(&d.berth(&["port", id2])), format!("80/tcp -> 0.0.0.0:{port2}\n{v6}"));

    // The same host port again: a clear error, and nothing half-started.
    let busy =
        d.berth(&["run", "-d", "--name", "clash", "-p", &format!("{port2}:80"), "busybox:latest", "sleep", "30"]);
    assert!(!busy.status.success());
    let err = text(&busy.stderr);
    assert!(err.contains(&format!("0.0.0.0:{port2}")) && err.contains("address already in use"), "{err}");
    let st = ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "clash"]));
    assert_eq!(st.trim(), "created");
    assert_eq!(table_rules(&d).0, 2, "no rule of the failed start");
    assert_eq!(veths_settled(&d, 2).len(), 2, "no veth of the failed start");
    ok(&d.berth(&["rm", "clash"]));

    // A daemon restart, and a kill -9, keep the published port answering.
    let mut d = d;
    d.restart(false);
    assert_eq!(
        curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)).as_deref(),
        Some("hello from berth\n")
    );
    d.restart(true);
    assert_eq!(
        curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2)).as_deref(),
        Some("hello from berth\n")
    );
    assert_eq!(table_rules(&d).0, 2, "rules restored once, not twice: {}", table_rules(&d).1);
    // The address survives the restarts too (IPAM is rebuilt from the records).
    assert_eq!(ok(&d.berth(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", id])).trim(), ip);
    let id3 = ok(&d.berth(&["run", "-d", "busybox:latest", "sleep", "30"]));
    let ip3 = ok(&d.berth(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", id3.trim()]));
    assert_ne!(ip3.trim(), ip, "a new container does not get a held address");

    // Removing everything leaves no published port in the maps and no veth.
    ok(&d.berth(&["rm", "-f", id, id2, id3.trim()]));
    assert_eq!(table_rules(&d).0, 0, "{}", table_rules(&d).1);
    assert!(veths_settled(&d, 0).is_empty(), "{:?}", veths_of(&d));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "the port is closed again");
    // A stopped daemon with nothing running leaves neither its table nor its bridge.
    let table = d.nft_table.clone();
    let bridge = d.bridge.clone();
    drop(d);
    let t = Command::new("nft").args(["list", "table", "inet", &table]).output().unwrap();
    assert!(!t.status.success(), "table {table} is gone");
    assert!(!std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists());
}

#[test]
fn ephemeral_ports_publish_all_and_udp() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let www = site(&d, "eph\n");
    let id = ok(&d.berth(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1::80",
        "-v",
        &format!("{www}:/www:ro"),
        "busybox:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]));
    let id = id.trim();
    let p = ok(&d.berth(&["port", id, "80/tcp"]));
    let hp: u16 = p.trim().strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    assert!(hp > 0);
    assert_eq!(curl_within(&format!("http://127.0.0.1:{hp}/"), Duration::from_secs(2)).as_deref(), Some("eph\n"));
    // -P publishes every exposed port on an ephemeral host port.
    let id2 = ok(&d.berth(&[
        "run",
        "-d",
        "-P",
        "--expose",
        "80",
        "-v",
        &format!("{www}:/www:ro"),
        "busybox:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]));
    let p2 = ok(&d.berth(&["port", id2.trim(), "80"]));
    let hp2: u16 = p2.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(curl_within(&format!("http://127.0.0.1:{hp2}/"), Duration::from_secs(2)).as_deref(), Some("eph\n"));
    let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", id2.trim()]))).unwrap();
    assert_eq!(v[0]["HostConfig"]["PublishAllPorts"], true);
    assert_eq!(v[0]["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"], hp2.to_string());
    // udp: the mapping is made and shown (busybox has no UDP server; the kernel path of
    // a UDP DNAT is covered by the network crate's root test).
    let up = free_port();
    let id3 = ok(&d.berth(&["run", "-d", "-p", &format!("127.0.0.1:{up}:53/udp"), "busybox:latest", "sleep", "30"]));
    assert_eq!(ok(&d.berth(&["port", id3.trim()])), format!("53/udp -> 127.0.0.1:{up}\n"));
    assert!(table_rules(&d).1.contains(&format!("127.0.0.1 . udp . {up} : ")), "{}", table_rules(&d).1);
    assert!(std::net::UdpSocket::bind(("127.0.0.1", up)).is_err(), "the host port is held");
    // Malformed -p is refused before anything is created.
    let bad = d.berth(&["run", "-d", "-p", "x:80", "busybox:latest", "true"]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("invalid"), "{}", text(&bad.stderr));
}

#[test]
fn modes_and_options() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    // none: only lo, and it is up (a server on 127.0.0.1 answers inside).
    let out = ok(&d.berth(&["run", "--rm", "--network", "none", "busybox:latest", "sh", "-c",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; (httpd -f -p 127.0.0.1:81 -h / &) ; sleep 0.2; echo 'GET / HTTP/1.0' | nc 127.0.0.1 81 | head -1"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "{out}");
    assert_eq!(lines[2], "0x9", "lo is UP|LOOPBACK: {out}");
    assert!(lines[3].starts_with("HTTP/1."), "{out}");
    // host: the host's interfaces.
    let host_ifs = ok(&d.berth(&["run", "--rm", "--network", "host", "busybox:latest", "ls", "/sys/class/net"]));
    assert!(host_ifs.lines().any(|l| l == d.bridge.as_str()) || host_ifs.lines().count() > 1, "{host_ifs}");
    let mine: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(host_ifs.lines().all(|l| mine.iter().any(|m| m == l) || l.starts_with("vb")), "{host_ifs}");
    // bridge: eth0 with the address, a default route via the gateway.
    let a = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "alpha1",
        "--hostname",
        "alpha",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--dns",
        "10.9.9.9",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        "--mac-address",
        "92:d0:c6:0a:29:33",
        "busybox:latest",
        "sleep",
        "60",
    ]));
    let a = a.trim();
    let ip = ok(&d.berth(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", a])).trim().to_owned();
    let gw = ok(&d.berth(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", a])).trim().to_owned();
    let inspect: serde_json::Value = serde_json::from_str(&ok(&d.berth(&["inspect", a]))).unwrap();
    let file = |k: &str| std::fs::read_to_string(inspect[0][k].as_str().unwrap()).unwrap();
    let hosts = file("HostsPath");
    assert!(
        hosts.contains("10.1.2.3\tdb\n")
            && hosts.contains(&format!("{gw}\tgw\n"))
            && hosts.contains(&format!("{ip}\talpha\n")),
        "{hosts}"
    );
    assert_eq!(file("HostnamePath"), "alpha\n");
    assert_eq!(file("ResolvConfPath"), "nameserver 10.9.9.9\nsearch example.org\noptions ndots:2\n");
    let inside =
        |cmd: &str| ok(&d.berth(&["run", "--rm", "--network", "container:alpha1", "busybox:latest", "sh", "-c", cmd]));
    assert_eq!(inside("cat /sys/class/net/eth0/address"), "92:d0:c6:0a:29:33\n");
    let route = inside("ip route");
    assert!(route.contains(&format!("default via {gw}")), "{route}");
    // container:a shares a's interfaces and files.
    let shared = ok(&d.berth(&[
        "run",
        "--rm",
        "--network",
        "container:alpha1",
        "busybox:latest",
        "cat",
        "/sys/class/net/eth0/address",
        "/etc/hosts",
    ]));
    assert!(shared.starts_with("92:d0:c6:0a:29:33\n") && shared.contains(&format!("{ip}\talpha")), "{shared}");
    // --link names the other container in /etc/hosts.
    let linked = ok(&d.berth(&["run", "--rm", "--link", "alpha1:dbalias", "busybox:latest", "cat", "/etc/hosts"]));
    assert!(linked.contains(&format!("{ip}\tdbalias {} alpha1\n", &a[..12])), "{linked}");
    // Bad input: unknown network, --ip on the default bridge.
    let e = d.berth(&["run", "--network", "nosuchnet", "busybox:latest", "true"]);
    assert!(text(&e.stderr).contains("network nosuchnet not found"), "{}", text(&e.stderr));
    let e = d.berth(&["run", "--ip", "10.1.1.1", "busybox:latest", "true"]);
    assert!(
        text(&e.stderr).contains(
            "user specified IP address is supported only when connecting to networks with user configured subnets"
        ),
        "{}",
        text(&e.stderr)
    );
    let e = d.docker(&["run", "--network", "container:nosuch", "busybox:latest", "true"]);
    assert!(!e.status.success());
}

#[test]
fn build_steps_use_the_default_bridge_none_and_host() {
    let bip = format!("10.199.{}.1/24", std::process::id() % 250);
    let d = Daemon::start_with(&["--bip", &bip]);
    d.import_busybox("busybox:latest");
    // The bridge exists once something used it; then a server listens on its address.
    ok(&d.berth(&["run", "--rm", "busybox:latest", "true"]));
    let gw = bip.trim_end_matches("/24").to_owned();
    let l = TcpListener::bind((gw.as_str(), 0)).expect("bind on the bridge's address");
    let port = l.local_addr().unwrap().port();
    let srv = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, _) = l.accept().unwrap();
        let _ = s.write_all(b"from-host\n");
    });
    let dir = d.dir_with(
        "netbuild",
        &format!(
            "FROM busybox:latest\nRUN nc -w 5 {gw} {port} > /got; cat /got\nRUN --network=none ls /sys/class/net > /none\nRUN ip route > /route\n"
        ),
    );
    let out = d.build_plain(&dir, &["-t", "netbuild:1", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    srv.join().unwrap();
    let got = ok(&d.berth(&["run", "--rm", "netbuild:1", "cat", "/got", "/none", "/route"]));
    assert!(got.starts_with("from-host\nlo\n"), "{got}");
    assert!(got.contains(&format!("default via {gw}")), "a RUN step has the default bridge's route: {got}");
    // build --network host: the host's interfaces, the bridge among them.
    let dir = d.dir_with("hostbuild", "FROM busybox:latest\nRUN ls /sys/class/net > /ifs\n");
    let out = d.build_plain(&dir, &["--network", "host", "-t", "hostbuild:1", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ifs = ok(&d.berth(&["run", "--rm", "hostbuild:1", "cat", "/ifs"]));
    assert!(ifs.lines().any(|l| l == d.bridge), "{ifs}");
    let bad = d.build_plain(&dir, &["--network", "weird", dir.to_str().unwrap()]);
    assert!(!bad.status.success());
}
