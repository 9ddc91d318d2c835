//! Root integration test of the bridge driver: two namespaces on a bridge of their own
//! reach each other, a published port answers on 127.0.0.1 through our nftables table,
//! and teardown leaves no rule and no veth. Skipped when not root or without `nft`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};

use berth_network::driver::{Attachment, Driver, NetworkSpec, mac_for};
use berth_network::nft::{Firewall, PortRule, Proto};
use berth_network::{bridge::BridgeDriver, netns};

fn usable() -> bool {
    rustix::process::geteuid().is_root() && std::process::Command::new("nft").arg("--version").output().is_ok()
}

#[test]
fn two_namespaces_on_a_bridge_and_a_published_port() {
    if !usable() {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let tag = format!("{:x}", std::process::id() & 0xffff);
    let dir = tempfile::tempdir().unwrap();
    let fw = Firewall::new(&format!("berth_t{tag}"));
    fw.reset().unwrap();
    // Whatever happens, the table and the bridge go (a leftover bridge would hold the subnet).
    struct Cleanup(Firewall, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = self.0.delete_table();
            let _ = std::process::Command::new("ip").args(["link", "del", &self.1]).output();
        }
    }
    let _cleanup = Cleanup(fw.clone(), format!("bt{tag}"));
    let drv = BridgeDriver::new(fw.clone()).unwrap();
    let net = NetworkSpec {
        id: format!("n{tag}"),
        name: "t".into(),
        bridge: format!("bt{tag}"),
        subnet: "10.213.7.0/24".parse().unwrap(),
        gateway: "10.213.7.1".parse().unwrap(),
        internal: false,
    };
    drv.create_network(&net).unwrap();
    let att = |n: u8, ports: Vec<PortRule>| {
        let ip = Ipv4Addr::new(10, 213, 7, n);
        Attachment {
            endpoint_id: format!("e{tag}{n:02}abcdef0123"),
            netns: dir.path().join(format!("ns{n}")),
            ifname: "eth0".into(),
            ip,
            mac: mac_for(ip),
            default_route: true,
            ports,
        }
    };
    let hp = 47000 + (std::process::id() % 1000) as u16;
    let a = att(2, vec![]);
    let b = att(
        3,
        vec![PortRule {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: hp,
            container_ip: Ipv4Addr::new(10, 213, 7, 3),
            container_port: 80,
        }],
    );
    for x in [&a, &b] {
        let mut ns = netns::create(&x.netns).unwrap();
        drv.setup(&net, x, &mut ns).unwrap();
    }
    // A server in b's namespace (the socket stays there after the thread ends).
    let listener: TcpListener = netns::run_in(&b.netns, || Ok(TcpListener::bind("0.0.0.0:80").unwrap())).unwrap();
    let srv = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"hi").unwrap();
        }
    });
    let got = netns::run_in(&a.netns, || {
        let mut s = TcpStream::connect("10.213.7.3:80").unwrap();
        let mut v = String::new();
        s.read_to_string(&mut v).unwrap();
        Ok(v)
    })
    .unwrap();
    assert_eq!(got, "hi", "a reaches b over the bridge");
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, hp)).expect("published port on 127.0.0.1");
    let mut v = String::new();
    s.read_to_string(&mut v).unwrap();
    assert_eq!(v, "hi");
    srv.join().unwrap();
    assert_eq!(fw.published_count().unwrap(), 1);
    for x in [&a, &b] {
        drv.teardown(&net, x).unwrap();
        drv.teardown(&net, x).unwrap(); // idempotent
        netns::remove(&x.netns).unwrap();
    }
    assert_eq!(fw.published_count().unwrap(), 0, "no published port left");
    drv.remove_network(&net).unwrap();
    assert!(!fw.rules().unwrap().iter().any(|(_, t)| t.starts_with("net:")), "no network rule left");
    fw.delete_table().unwrap();
    assert!(!fw.exists());
    assert!(!std::path::Path::new(&format!("/sys/class/net/{}", net.bridge)).exists());
}

/// Drops a test's nftables table and bridge however the test ends.
struct Cleanup(Firewall, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.0.delete_table();
        let _ = std::process::Command::new("ip").args(["link", "del", &self.1]).output();
    }
}

/// A bridge network of a test's own: table `berth_<letter><tag>`, bridge
/// `b<letter><tag>` on 10.213.<octet>.0/24, with the tag made from this process's id and
/// `salt` so parallel tests never share names.
struct Fixture {
    tag: String,
    fw: Firewall,
    drv: BridgeDriver,
    net: NetworkSpec,
    _cleanup: Cleanup,
}

fn fixture(letter: &str, salt: u32, octet: u8) -> Fixture {
    let tag = format!("{:x}", (std::process::id() & 0xffff) ^ salt);
    let fw = Firewall::new(&format!("berth_{letter}{tag}"));
    fw.reset().unwrap();
    let cleanup = Cleanup(fw.clone(), format!("b{letter}{tag}"));
    let drv = BridgeDriver::new(fw.clone()).unwrap();
    let net = NetworkSpec {
        id: format!("{letter}{tag}"),
        name: letter.into(),
        bridge: format!("b{letter}{tag}"),
        subnet: format!("10.213.{octet}.0/24").parse().unwrap(),
        gateway: format!("10.213.{octet}.1").parse().unwrap(),
        internal: false,
    };
    drv.create_network(&net).unwrap();
    Fixture { tag, fw, drv, net, _cleanup: cleanup }
}

#[test]
fn a_published_udp_port_reaches_the_namespace() {
    if !usable() {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Fixture { tag, drv, net, _cleanup, .. } = fixture("u", 0x5a5a, 9);
    let ip = Ipv4Addr::new(10, 213, 9, 2);
    let hp = 46000 + (std::process::id() % 1000) as u16;
    let att = Attachment {
        endpoint_id: format!("u{tag}abcdef0123456"),
        netns: dir.path().join("ns"),
        ifname: "eth0".into(),
        ip,
        mac: mac_for(ip),
        default_route: true,
        ports: vec![PortRule {
            proto: Proto::Udp,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: hp,
            container_ip: ip,
            container_port: 53,
        }],
    };
    let mut ns = netns::create(&att.netns).unwrap();
    drv.setup(&net, &att, &mut ns).unwrap();
    let server: std::net::UdpSocket =
        netns::run_in(&att.netns, || Ok(std::net::UdpSocket::bind("0.0.0.0:53").unwrap())).unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        server.send_to(&buf[..n], from).unwrap();
    });
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
    c.send_to(b"ping", ("127.0.0.1", hp)).unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv(&mut buf).expect("udp echo through the published port");
    assert_eq!(&buf[..n], b"ping");
    echo.join().unwrap();
    drv.teardown(&net, &att).unwrap();
    netns::remove(&att.netns).unwrap();
    drv.remove_network(&net).unwrap();
}

#[test]
fn teardown_reports_the_veth_gone_only_once_it_is() {
    if !usable() {
        eprintln!("skipped: needs root and nft");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Fixture { tag, fw, drv, net, _cleanup } = fixture("g", 0x3c3c, 11);
    let hp = 45000 + (std::process::id() % 1000) as u16;
    // Several in a row, so that some are still queued for deletion when asked about.
    let mut done = Vec::new();
    for n in 2..6u8 {
        let ip = Ipv4Addr::new(10, 213, 11, n);
        let att = Attachment {
            endpoint_id: format!("g{tag}{n:02}abcdef0123"),
            netns: dir.path().join(format!("ns{n}")),
            ifname: "eth0".into(),
            ip,
            mac: mac_for(ip),
            default_route: true,
            ports: vec![PortRule {
                proto: Proto::Tcp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: hp + u16::from(n),
                container_ip: ip,
                container_port: 80,
            }],
        };
        let mut ns = netns::create(&att.netns).unwrap();
        drv.setup(&net, &att, &mut ns).unwrap();
        drop(ns);
        let link = format!("/sys/class/net/{}", att.host_ifname());
        assert!(std::path::Path::new(&link).exists());
        let (tx, rx) = std::sync::mpsc::channel();
        let l = link.clone();
        drv.teardown_then(&net, &att, Box::new(move || tx.send(std::path::Path::new(&l).exists()).unwrap())).unwrap();
        netns::remove(&att.netns).unwrap();
        done.push((link, rx));
    }
    assert_eq!(fw.published_count().unwrap(), 0, "the port map elements go at once");
    for (link, rx) in done {
        let existed = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("gone is called");
        assert!(!existed, "{link} still existed when reported gone");
    }
    drv.remove_network(&net).unwrap();
}
