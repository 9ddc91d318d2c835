//! User-defined networks end to end: `network create/ls/inspect/connect/disconnect/rm/
//! prune` with our CLI, the docker CLI and docker-py; isolation between networks,
//! `--internal`, `--ip`, and the errors for bad input. Traffic stays inside the bridges the
//! test's daemon made.

use std::process::Command;

use berth_e2e::{Daemon, ok, text};

/// A /24 for this test process that no other test daemon picks: 10.(200+n).(pid).0/24.
fn subnet(n: u8) -> String {
    format!("10.{}.{}.0/24", 200 + n, std::process::id() % 250)
}

fn prefix(n: u8) -> String {
    subnet(n).trim_end_matches("0/24").to_owned()
}

/// Runs `nc -w 2 ip port` from a new container on `net`; true when the server answered.
fn reaches(d: &Daemon, net: &str, ip: &str) -> bool {
    let out = d.berth(&[
        "run",
        "--rm",
        "--network",
        net,
        "busybox:latest",
        "sh",
        "-c",
        &format!("echo 'GET / HTTP/1.0' | nc -w 2 {ip} 80 | head -1"),
    ]);
    text(&out.stdout).starts_with("HTTP/1.")
}

#[test]
fn user_networks_isolate_connect_and_clean_up() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let (s1, s2) = (subnet(1), subnet(2));
    let br1 = format!("{}n1", d.bridge);
    let id1 = ok(&d.berth(&[
        "network",
        "create",
        "--subnet",
        &s1,
        "--label",
        "team=a",
        "-o",
        &format!("com.docker.network.bridge.name={br1}"),
        "front",
    ]));
    assert_eq!(id1.trim().len(), 64);
    ok(&d.berth(&["network", "create", "--subnet", &s2, "back"]));
    let ls = ok(&d.berth(&["network", "ls"]));
    assert!(ls.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"), "{ls}");
    for n in ["bridge", "host", "none", "front", "back"] {
        assert!(ls.lines().any(|l| l.split_whitespace().nth(1) == Some(n)), "{ls}");
    }
    let dls = ok(&d.docker(&["network", "ls", "--format", "{{.Name}} {{.Driver}}", "-f", "label=team=a"]));
    assert_eq!(dls, "front bridge\n");
    let q = ok(&d.berth(&["network", "ls", "-q", "-f", "type=custom"]));
    assert_eq!(q.lines().count(), 2, "{q}");

    // Bad input, each refused with nothing made.
    let e = d.berth(&["network", "create", "--subnet", &s1, "again"]);
    assert!(text(&e.stderr).contains("Pool overlaps with other one on this address space"), "{}", text(&e.stderr));
    let e = d.berth(&["network", "create", "front"]);
    assert!(text(&e.stderr).contains("network with name front already exists"), "{}", text(&e.stderr));
    let e = d.berth(&["run", "--network", "front", "--ip", "10.9.9.9", "busybox:latest", "true"]);
    assert!(
        text(&e.stderr).contains("no configured subnet or ip-range contain the IP address 10.9.9.9"),
        "{}",
        text(&e.stderr)
    );
    assert_eq!(ok(&d.berth(&["network", "ls", "-q"])).lines().count(), 5);

    // Two servers on front, one on back.
    let p1 = prefix(1);
    let web = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "web1",
        "--network",
        "front",
        "--ip",
        &format!("{p1}50"),
        "--network-alias",
        "site",
        "busybox:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]));
    let ip_web = format!("{p1}50");
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", web.trim()])).trim(),
        ip_web
    );
    let other = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "web2",
        "--network",
        "back",
        "busybox:latest",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/",
    ]));
    let ip_other = ok(&d.docker(&["inspect", "-f", "{{.NetworkSettings.Networks.back.IPAddress}}", other.trim()]))
        .trim()
        .to_owned();
    assert!(ip_other.starts_with(&prefix(2)), "{ip_other}");
    assert!(reaches(&d, "front", &ip_web), "same network reaches");
    assert!(!reaches(&d, "front", &ip_other), "another network is out of reach");
    assert!(!reaches(&d, "bridge", &ip_web), "the default bridge does not reach a user network");

    // The embedded DNS answers names and aliases on the same network only.
    let look = |net: &str, name: &str| {
        text(&d.berth(&["run", "--rm", "--network", net, "busybox:latest", "nslookup", name]).stdout)
    };
    assert!(look("front", "web1").contains(&ip_web), "{}", look("front", "web1"));
    assert!(look("front", "site").contains(&ip_web), "alias");
    assert!(!look("back", "web1").contains(&ip_web), "another network does not see the name");
    let resolv = ok(&d.berth(&["run", "--rm", "--network", "front", "busybox:latest", "cat", "/etc/resolv.conf"]));
    assert!(resolv.lines().any(|l| l == "nameserver 127.0.0.11"), "{resolv}");

    // Inspect shows the container with its address; the docker CLI reads it.
    let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["network", "inspect", "front"]))).unwrap();
    assert_eq!(v[0]["Name"], "front");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], s1.as_str());
    assert_eq!(v[0]["Containers"][web.trim()]["IPv4Address"], format!("{ip_web}/24"));
    assert_eq!(v[0]["Options"]["com.docker.network.bridge.name"], br1.as_str());
    assert!(std::path::Path::new(&format!("/sys/class/net/{br1}")).exists());
    let aliases = ok(&d.berth(&["inspect", "-f", "{{json .NetworkSettings.Networks.front.Aliases}}", "web1"]));
    // API 1.41 (moby below 1.45) lists the short id (= the hostname) among the aliases.
    assert_eq!(aliases.trim(), format!("[\"site\",\"{}\"]", &web.trim()[..12]));

    // connect: web2 joins front live and is reached there; disconnect takes it away.
    ok(&d.berth(&["network", "connect", "--alias", "two", "front", "web2"]));
    let ip2 =
        ok(&d.berth(&["inspect", "-f", "{{.NetworkSettings.Networks.front.IPAddress}}", "web2"])).trim().to_owned();
    assert!(ip2.starts_with(&p1), "{ip2}");
    assert!(reaches(&d, "front", &ip2));
    let e = d.berth(&["network", "connect", "front", "web2"]);
    assert!(text(&e.stderr).contains("already exists in network front"), "{}", text(&e.stderr));
    ok(&d.berth(&["network", "disconnect", "front", "web2"]));
    assert!(!reaches(&d, "front", &ip2));

    // rm of a network in use is refused; rm of a builtin too.
    let e = d.berth(&["network", "rm", "front"]);
    assert!(text(&e.stderr).contains("has active endpoints"), "{}", text(&e.stderr));
    let e = d.berth(&["network", "rm", "bridge"]);
    assert!(text(&e.stderr).contains("bridge is a pre-defined network and cannot be removed"), "{}", text(&e.stderr));

    // --internal: no default route out of the network.
    ok(&d.berth(&["network", "create", "--internal", "--subnet", &subnet(3), "sealed"]));
    let routes = ok(&d.berth(&["run", "--rm", "--network", "sealed", "busybox:latest", "ip", "route"]));
    assert!(!routes.contains("default"), "{routes}");
    let gw_default = ok(&d.berth(&["network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", "back"]));
    let out = d.berth(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        "busybox:latest",
        "sh",
        "-c",
        &format!("echo 'GET / HTTP/1.0' | nc -w 2 {} 80 | head -1", ip_other),
    ]);
    assert!(text(&out.stdout).is_empty(), "internal network reached out: {} ({gw_default})", text(&out.stdout));

    // Clean up: after removing containers, rm and prune leave no rule of the networks.
    ok(&d.berth(&["rm", "-f", "web1", "web2"]));
    ok(&d.berth(&["network", "rm", "front"]));
    assert!(!std::path::Path::new(&format!("/sys/class/net/{br1}")).exists(), "its bridge is gone");
    let pruned = ok(&d.berth(&["network", "prune", "-f"]));
    assert!(
        pruned.starts_with("Deleted Networks:\n") && pruned.contains("back") && pruned.contains("sealed"),
        "{pruned}"
    );
    assert_eq!(ok(&d.berth(&["network", "ls", "-q"])).lines().count(), 3);
    let e = d.berth(&["network", "inspect", "front"]);
    assert!(text(&e.stderr).contains("network front not found"));
    let t = Command::new("nft").args(["list", "table", "inet", &d.nft_table]).output().unwrap();
    let rules = text(&t.stdout);
    assert!(!rules.contains("comment \"ep:"), "{rules}");
    let bridge_id = ok(&d.berth(&["network", "inspect", "-f", "{{.Id}}", "bridge"])).trim().to_owned();
    let tags: Vec<&str> = rules.split("comment \"net:").skip(1).map(|r| &r[..64]).collect();
    assert!(tags.iter().all(|t| *t == bridge_id), "only the default bridge's rules may remain: {rules}");

    // Each step was reported on the events bus, as dockerd reports it.
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let events = ok(&d.berth(&[
        "events",
        "--since",
        "0",
        "--until",
        &until.to_string(),
        "-f",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]));
    for want in ["create front", "connect front", "disconnect front", "destroy front", "destroy sealed"] {
        assert!(events.lines().any(|l| l == want), "{want} missing:\n{events}");
    }
}

const PY: &str = r#"
import sys, docker, urllib.request, time
client = docker.DockerClient(base_url=sys.argv[1])
net = client.networks.create("pynet", driver="bridge", ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=sys.argv[2])]))
print("created", net.name)
c = client.containers.run("busybox", ["httpd", "-f", "-p", "80", "-h", "/"], detach=True, ports={"80/tcp": ("127.0.0.1", None)})
c.reload()
port = c.ports["80/tcp"][0]["HostPort"]
code = None
for _ in range(40):
    try:
        code = urllib.request.urlopen("http://127.0.0.1:%s/" % port, timeout=2).status
        break
    except urllib.error.HTTPError as e:
        code = e.code
        break
    except Exception:
        time.sleep(0.05)
print("http", code)
net.connect(c, aliases=["pyweb"])
net.reload()
print("members", [x.name for x in net.containers])
net.disconnect(c)
c.remove(force=True)
net.remove()
print("networks", sorted(n.name for n in client.networks.list()))
"#;

#[test]
fn docker_py_networks_and_ports() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let out = Command::new("python3").args(["-c", PY, &d.host(), &subnet(4)]).output().unwrap();
    let o = ok(&out);
    assert!(o.contains("created pynet"), "{o}\n{}", text(&out.stderr));
    assert!(o.contains("http 404") || o.contains("http 200"), "{o}");
    assert!(o.contains("members ['"), "{o}");
    assert!(o.contains("networks ['bridge', 'host', 'none']"), "{o}");
}

#[test]
fn ps_filters_by_network_published_and_exposed_ports() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["network", "create", "--subnet", &subnet(41), "filt"]));
    ok(&d.berth(&["create", "--name", "onnet", "--network", "filt", "--expose", "7000-7001/udp", "busybox", "true"]));
    ok(&d.berth(&["create", "--name", "pub", "-p", "127.0.0.1::8080", "busybox", "true"]));
    let names = |f: &str| ok(&d.berth(&["ps", "-a", "-f", f, "--format", "{{.Names}}"]));
    assert_eq!(names("network=filt"), "onnet\n");
    assert_eq!(names("network=bridge"), "pub\n");
    assert_eq!(names("publish=8080"), "pub\n");
    assert_eq!(names("publish=8000-8090/tcp"), "pub\n");
    assert_eq!(names("publish=8080/udp"), "");
    assert_eq!(names("expose=7001/udp"), "onnet\n");
    assert_eq!(names("expose=7001"), "");
    let bad = d.berth(&["ps", "-f", "publish=eighty"]);
    assert!(text(&bad.stderr).contains("invalid port filter: eighty"), "{}", text(&bad.stderr));
    ok(&d.berth(&["rm", "onnet", "pub"]));
    ok(&d.berth(&["network", "rm", "filt"]));
}
