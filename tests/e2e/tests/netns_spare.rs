//! The spare network namespace (crates/network/src/spare.rs): a start takes the one made
//! ahead of need, the next start gets a namespace of its own, a taken spare is just like a
//! fresh one (only `lo`, up; a bridge container gets its address and its published port
//! answers), and no spare outlives its daemon: a clean stop removes it, and the spare of a
//! daemon killed with -9 is removed by the next one (while the containers' namespaces stay).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, curl_within, ok, text, traced};

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    ok(&d.berth(&["inspect", "--format", fmt, name])).trim().to_owned()
}

fn netns_dir(d: &Daemon) -> PathBuf {
    d.exec_root.join("netns")
}

/// The spare files in the daemon's netns directory.
fn spare_files(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(netns_dir(d))
        .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.retain(|n| n.starts_with(".spare-"));
    v.sort();
    v
}

/// The mounts under the daemon's netns directory, by file name.
fn netns_mounts(d: &Daemon) -> Vec<String> {
    let dir = format!("{}/", netns_dir(d).display());
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter_map(|m| m.strip_prefix(&dir).map(str::to_owned))
        .collect();
    v.sort();
    v
}

/// Waits until the daemon has made its spare; its file name.
fn spare_ready(d: &Daemon) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = spare_files(d);
        // Made: its file is a mount (a file being made is not yet).
        if let [one] = s.as_slice()
            && netns_mounts(d).contains(one)
        {
            return one.clone();
        }
        assert!(s.len() < 2, "at most one spare, found {s:?}");
        assert!(Instant::now() < deadline, "no spare network namespace appeared: {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The network namespace of a process, as `readlink /proc/<pid>/ns/net` shows it.
fn netns_of(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap().display().to_string()
}

/// The inode of a namespace file as `net:[<inode>]`.
fn ns_file(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("net:[{}]", std::fs::metadata(p).unwrap().ino())
}

fn ended(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

#[test]
fn starts_take_the_spare_and_no_spare_outlives_its_daemon() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let trace = scratch.path().join("trace");
    // SAFETY: the only test of this binary, before it starts any thread; the daemon
    // inherits the variable (runtime/src/trace.rs).
    unsafe { std::env::set_var("BERTH_TRACE_START", &trace) };
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    assert!(spare_files(&d).is_empty(), "no spare before a container needs one");

    // A create says a namespace will be wanted: the spare is made, and the start takes it.
    ok(&d.berth(&["create", "--name", "sa", "--network", "none", "busybox", "sleep", "300"]));
    let spare = spare_ready(&d);
    let spare_ns = ns_file(&netns_dir(&d).join(&spare));
    ok(&d.berth(&["start", "sa"]));
    let a = inspect(&d, "{{.Id}}", "sa");
    assert!(traced(&trace, "daemon.netns_spare_taken").contains(&a), "the start took the spare");
    let a_pid = inspect(&d, "{{.State.Pid}}", "sa");
    assert_eq!(netns_of(&a_pid), spare_ns, "the container runs in the spare's namespace");
    assert_eq!(ns_file(&netns_dir(&d).join(&a)), spare_ns, "at the container's own file");
    assert!(!spare_files(&d).contains(&spare), "the taken spare's file is gone");
    assert_eq!(inspect(&d, "{{.NetworkSettings.SandboxKey}}", "sa"), netns_dir(&d).join(&a).display().to_string());

    // A second start right after works, in a namespace of its own.
    ok(&d.berth(&["run", "-d", "--name", "sb", "--network", "none", "busybox", "sleep", "300"]));
    let b = inspect(&d, "{{.Id}}", "sb");
    let b_pid = inspect(&d, "{{.State.Pid}}", "sb");
    assert_ne!(netns_of(&a_pid), netns_of(&b_pid), "two starts never share a namespace");
    assert_eq!(netns_of(&b_pid), ns_file(&netns_dir(&d).join(&b)));
    let taken = traced(&trace, "daemon.netns_spare_taken");
    let made = traced(&trace, "daemon.netns_made");
    assert!(taken.contains(&b) || made.contains(&b), "b's namespace was taken or made");

    // A taken spare is a fresh namespace: only lo, and it is up.
    let links = ok(&d.berth(&["exec", "sa", "ls", "/sys/class/net"]));
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"], "only lo: {links}");
    let flags = ok(&d.berth(&["exec", "sa", "cat", "/sys/class/net/lo/flags"]));
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is up");
    assert!(ok(&d.berth(&["exec", "sa", "cat", "/proc/net/dev"])).lines().skip(2).all(|l| l.trim().starts_with("lo:")));

    // A bridge container takes the spare too, and gets its address and published port.
    spare_ready(&d);
    let www = d.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "spare\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "-v",
        &format!("{}:/www:ro", www.display()),
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]));
    let web = inspect(&d, "{{.Id}}", "web");
    assert!(traced(&trace, "daemon.netns_spare_taken").contains(&web), "the bridge container took the spare");
    let ip = inspect(&d, "{{.NetworkSettings.IPAddress}}", "web");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "an address on the bridge: {ip:?}");
    let eth0 = ok(&d.berth(&["exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"]));
    assert!(eth0.contains(&format!("{ip}/")), "eth0 has {ip}: {eth0}");
    assert_eq!(curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)).as_deref(), Some("spare\n"));
    // A container's own `--sysctl net.*` is set in the spare it takes, and stays there: the
    // next spare shows what a brand-new namespace shows.
    let key = "/proc/sys/net/ipv4/tcp_syncookies";
    let fresh = Command::new("unshare").args(["-n", "cat", key]).output().unwrap();
    let fresh = text(&fresh.stdout).trim().to_owned();
    let other = if fresh == "0" { "2" } else { "0" };
    spare_ready(&d);
    let set = ok(&d.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--sysctl",
        &format!("net.ipv4.tcp_syncookies={other}"),
        "busybox",
        "cat",
        key,
    ]));
    assert_eq!(set.trim(), other);
    spare_ready(&d);
    assert_eq!(ok(&d.berth(&["run", "--rm", "--network", "none", "busybox", "cat", key])).trim(), fresh);

    // After kill -9 the next daemon removes the dead one's spare (and only that).
    let dead = d.pid().unwrap();
    let dead_spare = spare_ready(&d);
    assert!(dead_spare.starts_with(&format!(".spare-{dead}-")), "{dead_spare}");
    d.kill();
    assert_eq!(spare_files(&d), vec![dead_spare.clone()], "a killed daemon leaves its spare");
    d.start_again();
    assert!(spare_files(&d).is_empty(), "the new daemon removed the dead one's spare: {:?}", spare_files(&d));
    let mut mounts = netns_mounts(&d);
    let mut want = vec![a.clone(), b.clone(), web.clone()];
    want.sort();
    mounts.retain(|m| !m.is_empty());
    assert_eq!(mounts, want, "the running containers' namespaces stay, nothing else");
    // Live restore: the containers still run in their namespaces.
    assert_eq!(netns_of(&inspect(&d, "{{.State.Pid}}", "sa")), ns_file(&netns_dir(&d).join(&a)));
    assert_eq!(curl_within(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)).as_deref(), Some("spare\n"));
    assert_eq!(d.check_findings(), None, "system check finds nothing");
    // The new daemon makes its own spare when a container is created.
    ok(&d.berth(&["create", "--name", "sc", "--network", "none", "busybox", "true"]));
    let own = spare_ready(&d);
    assert!(own.starts_with(&format!(".spare-{}-", d.pid().unwrap())), "{own}");
    assert_eq!(d.check_findings(), None, "the spare is no container's namespace to system check");

    // `--network host` and `container:` take no spare.
    ok(&d.berth(&["run", "--rm", "--network", "host", "busybox", "true"]));
    ok(&d.berth(&["run", "--rm", "--network", "container:sa", "busybox", "true"]));
    assert_eq!(spare_files(&d), vec![own.clone()], "the spare is still there");

    // A clean stop removes the spare; the running container's namespace stays for the next
    // daemon.
    for n in ["sb", "web", "sc"] {
        ok(&d.berth(&["rm", "-f", n]));
    }
    let pid = d.pid().unwrap();
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), rustix::process::Signal::TERM)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ended(pid) {
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(spare_files(&d).is_empty(), "a clean stop leaves no spare: {:?}", spare_files(&d));
    assert_eq!(netns_mounts(&d), vec![a.clone()], "only the running container's namespace is mounted");
    d.start_again();
    assert_eq!(inspect(&d, "{{.State.Status}}", "sa"), "running");
}
