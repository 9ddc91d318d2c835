//! A container's network teardown, which deletes its veth off the `run --rm` path (the
//! kernel's deletion waits for RCU grace periods): back-to-back `run --rm` with published
//! ports leave no veth, no port map element, no proxy process and no namespace file; an
//! address goes to a new container only once the veth that held it is gone; and a
//! container asking for a fixed address (`--ip`) again right after it stopped, or for the
//! only address of a small network, gets it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, host_has_ipv6, ok};

fn subnet() -> String {
    format!("10.215.{}.0/24", std::process::id() % 250)
}

fn prefix() -> String {
    subnet().trim_end_matches("0/24").to_owned()
}

/// The veths on the daemon's bridge once it holds `n` of them, or as they are after 3 s.
fn veths_settled(bridge: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let v: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        if v.len() == n || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Elements of the daemon's port maps.
fn port_elements(d: &Daemon) -> usize {
    let out = Command::new("nft").args(["-j", "list", "table", "inet", &d.nft_table]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .map(|objs| objs.iter().filter_map(|o| o.get("map")).map(|m| m["elem"].as_array().map_or(0, Vec::len)).sum())
        .unwrap_or(0)
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn inspect(d: &Daemon, id: &str, format: &str) -> String {
    ok(&d.berth(&["inspect", "-f", format, id])).trim().to_owned()
}

#[test]
fn run_rm_leaves_nothing_and_addresses_wait_for_their_old_veth() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");

    // Back to back, as a script or the bench runs them.
    let mut publish = vec!["127.0.0.1::80"];
    if host_has_ipv6() {
        // Both families: the IPv6 side goes through a proxy process.
        publish.push("80");
    }
    for _ in 0..4 {
        for p in &publish {
            ok(&d.berth(&["run", "--rm", "-p", p, "busybox:latest", "true"]));
        }
    }
    assert!(veths_settled(&d.bridge, 0).is_empty(), "no veth left on {}", d.bridge);
    assert_eq!(port_elements(&d), 0, "no published port left in table inet {}", d.nft_table);
    // The daemon's spare namespace (made ahead of the next start) is the only file there.
    let netns = files_in(&d.exec_root.join("netns"));
    assert!(netns.iter().all(|f| f.starts_with(".spare-")) && netns.len() <= 1, "no namespace file left: {netns:?}");
    assert!(
        files_in(&d.exec_root.join("netproxy")).iter().all(|f| !f.ends_with(".pid")),
        "no proxy process left: {:?}",
        files_in(&d.exec_root.join("netproxy"))
    );

    // A fixed address asked for again right after its container stopped: the start waits
    // for the old veth rather than failing with "Address already in use".
    ok(&d.berth(&["network", "create", "--subnet", &subnet(), "tdown"]));
    let fixed = format!("{}9", prefix());
    for _ in 0..3 {
        ok(&d.berth(&["run", "--rm", "--network", "tdown", "--ip", &fixed, "busybox:latest", "true"]));
    }
    // A network with a single address: the next container waits for the last one's veth
    // rather than finding the pool exhausted.
    let tiny = format!("10.216.{}.0/30", std::process::id() % 250);
    ok(&d.berth(&["network", "create", "--subnet", &tiny, "tiny"]));
    for _ in 0..3 {
        ok(&d.berth(&["run", "--rm", "--network", "tiny", "busybox:latest", "true"]));
    }
    let id = ok(&d.berth(&["run", "-d", "--network", "tdown", "--ip", &fixed, "busybox:latest", "sleep", "60"]));
    let id = id.trim();
    for _ in 0..2 {
        ok(&d.berth(&["restart", "-t", "0", id]));
        assert_eq!(inspect(&d, id, "{{.NetworkSettings.Networks.tdown.IPAddress}}"), fixed);
    }
    ok(&d.berth(&["rm", "-f", id]));

    // An address goes to a new container only once the veth that held it is gone: watch
    // the kernel's link events while several containers stop at once (their veths'
    // deletions queue up) and another starts at once.
    let mut monitor = Command::new("ip")
        .args(["-o", "monitor", "link"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip monitor");
    // Read as they come: a full pipe would make the kernel drop events.
    let stdout = monitor.stdout.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(200));
    let mut rounds = Vec::new();
    for round in 0..3 {
        let mut old = Vec::new();
        for _ in 0..8 {
            let a = ok(&d.berth(&["run", "-d", "busybox:latest", "sleep", "60"])).trim().to_owned();
            let ip = inspect(&d, &a, "{{.NetworkSettings.IPAddress}}");
            let ep = inspect(&d, &a, "{{.NetworkSettings.Networks.bridge.EndpointID}}");
            old.push((a, ip, format!("vb{}", &ep[..11])));
        }
        let mut kill = vec!["kill"];
        kill.extend(old.iter().map(|(a, _, _)| a.as_str()));
        ok(&d.berth(&kill));
        let b = ok(&d.berth(&["run", "-d", "busybox:latest", "sleep", "60"])).trim().to_owned();
        let b_ip = inspect(&d, &b, "{{.NetworkSettings.IPAddress}}");
        let b_ep = inspect(&d, &b, "{{.NetworkSettings.Networks.bridge.EndpointID}}");
        let mut rm = vec!["rm", "-f", b.as_str()];
        rm.extend(old.iter().map(|(a, _, _)| a.as_str()));
        ok(&d.berth(&rm));
        rounds.push((round, old, b_ip, format!("vb{}", &b_ep[..11])));
    }
    assert!(veths_settled(&d.bridge, 0).is_empty());
    std::thread::sleep(Duration::from_millis(200));
    let _ = monitor.kill();
    let _ = monitor.wait();
    let events = reader.join().unwrap();
    for (round, old, b_ip, b_veth) in rounds {
        let made = events.iter().position(|l| !l.starts_with("Deleted") && l.contains(&format!("{b_veth}@")));
        let made = made.unwrap_or_else(|| panic!("round {round}: no event for {b_veth} among {} events", events.len()));
        for (_, a_ip, a_veth) in old.iter().filter(|(_, ip, _)| *ip == b_ip) {
            let gone = events.iter().position(|l| l.starts_with("Deleted") && l.contains(&format!("{a_veth}@")));
            assert!(
                gone.is_some_and(|g| g < made),
                "round {round}: {a_ip} went to {b_veth} before {a_veth} was deleted"
            );
        }
    }
    let log = d.log();
    assert!(!log.contains("delete veth"), "{log}");
}
