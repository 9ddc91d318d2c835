//! `update` applies blkio weight, cpuset and memory reservation to a running container's
//! cgroup, not only to its record (read back from the cgroup files on the host), and
//! refuses out-of-range values in dockerd's words, changing nothing.

use std::path::PathBuf;

use berth_e2e::{Daemon, have_docker, ok, text};

/// The host file `file` of the container's cgroup for controller `ctrl` (v1), or of its
/// unified cgroup when the host has no v1 hierarchy for it.
fn cgroup_file(pid: &str, ctrl: &str, file: &str) -> Option<PathBuf> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cg.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let base = if ctrls.split(',').any(|c| c == ctrl) {
            PathBuf::from(format!("/sys/fs/cgroup/{ctrl}"))
        } else if ctrls.is_empty() && !PathBuf::from(format!("/sys/fs/cgroup/{ctrl}")).exists() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            continue;
        };
        let p = base.join(path.trim_start_matches('/')).join(file);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

fn read(p: &PathBuf) -> String {
    std::fs::read_to_string(p).unwrap().trim().to_owned()
}

#[test]
fn update_applies_blkio_cpuset_and_reservation_live() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "1000"]));
    let pid = ok(&d.berth(&["inspect", "-f", "{{.State.Pid}}", "live"])).trim().to_owned();
    let weight = ["blkio.weight", "blkio.bfq.weight", "io.bfq.weight", "io.weight"]
        .iter()
        .find_map(|f| cgroup_file(&pid, if f.starts_with("io.") { "io" } else { "blkio" }, f))
        .expect("no blkio weight file for the container");
    let cpus = cgroup_file(&pid, "cpuset", "cpuset.cpus").expect("no cpuset.cpus");
    let mems = cgroup_file(&pid, "cpuset", "cpuset.mems").expect("no cpuset.mems");
    let reservation = cgroup_file(&pid, "memory", "memory.soft_limit_in_bytes")
        .or_else(|| cgroup_file(&pid, "memory", "memory.low"))
        .expect("no memory reservation file");

    ok(&d.berth(&["update", "--blkio-weight", "300", "--cpuset-cpus", "0", "--memory-reservation", "64m", "live"]));
    let w = read(&weight);
    // io.weight reads `default N` on N's 1..10000 scale; the others hold the weight.
    if weight.ends_with("io.weight") {
        assert_eq!(w, format!("default {}", 1 + (300 - 10) * 9999 / 990), "{}", weight.display());
    } else {
        assert_eq!(w.split_whitespace().last(), Some("300"), "{}: {w}", weight.display());
    }
    assert_eq!(read(&cpus), "0");
    assert_eq!(read(&reservation), (64u64 << 20).to_string());
    let rec = ok(&d.berth(&[
        "inspect",
        "-f",
        "{{.HostConfig.BlkioWeight}} {{.HostConfig.CpusetCpus}} {{.HostConfig.MemoryReservation}}",
        "live",
    ]));
    assert_eq!(rec.trim(), format!("300 0 {}", 64u64 << 20));
    // The process itself is held to the cpuset.
    let allowed = ok(&d.berth(&["exec", "live", "grep", "Cpus_allowed_list", "/proc/1/status"]));
    assert_eq!(allowed.split_whitespace().last(), Some("0"), "{allowed}");

    // Out of range: dockerd's words, status 400 (the CLI's exit 1), nothing changed.
    let online = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.cpus")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/cpuset.cpus.effective"))
        .unwrap();
    for (args, want) in [
        (&["--blkio-weight", "5"][..], "Range of blkio weight is from 10 to 1000".to_owned()),
        (
            &["--cpuset-cpus", "999"][..],
            format!("Requested CPUs are not available - requested 999, available: {}", online.trim()),
        ),
        (&["--cpuset-cpus", "0-x"][..], "Invalid value 0-x for cpuset cpus".to_owned()),
        (&["--memory-reservation", "1m"][..], "Minimum memory reservation allowed is 6MB".to_owned()),
        (
            &["-m", "32m", "--memory-reservation", "64m"][..],
            "Minimum memory limit can not be less than memory reservation limit, see usage".to_owned(),
        ),
    ] {
        let mut a = vec!["update"];
        a.extend_from_slice(args);
        a.push("live");
        let out = d.berth(&a);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(text(&out.stderr).contains(&want), "{args:?}: {}", text(&out.stderr));
    }
    assert_eq!(read(&cpus), "0");
    assert_eq!(read(&reservation), (64u64 << 20).to_string());
    let rec = ok(&d.berth(&["inspect", "-f", "{{.HostConfig.BlkioWeight}} {{.HostConfig.CpusetCpus}}", "live"]));
    assert_eq!(rec.trim(), "300 0");

    // The docker CLI's update reaches the same cgroup, cpuset-mems included.
    if have_docker() {
        let last = online.trim().rsplit([',', '-']).next().unwrap().to_owned();
        ok(&d.docker(&["update", "--cpuset-cpus", &last, "--cpuset-mems", "0", "--blkio-weight", "700", "live"]));
        assert_eq!(read(&cpus), last);
        assert_eq!(read(&mems), "0");
        if !weight.ends_with("io.weight") {
            assert_eq!(read(&weight).split_whitespace().last(), Some("700"));
        }
        let out = d.docker(&["update", "--blkio-weight", "2000", "live"]);
        assert!(text(&out.stderr).contains("Range of blkio weight is from 10 to 1000"), "{}", text(&out.stderr));
    }
    ok(&d.berth(&["rm", "-f", "live"]));
}

/// The same limits given to `run` reach the cgroup before the command runs (cpuset and
/// reservation through the OCI spec, the weight right after start), and a value dockerd
/// refuses at create is refused at create, leaving no container.
#[test]
fn run_applies_cpuset_reservation_shares_and_weight_at_create() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "born",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--memory-reservation",
        "48m",
        "--cpu-shares",
        "512",
        "--blkio-weight",
        "250",
        "busybox",
        "sleep",
        "1000",
    ]));
    let pid = ok(&d.berth(&["inspect", "-f", "{{.State.Pid}}", "born"])).trim().to_owned();
    assert_eq!(read(&cgroup_file(&pid, "cpuset", "cpuset.cpus").unwrap()), "0");
    assert_eq!(read(&cgroup_file(&pid, "cpuset", "cpuset.mems").unwrap()), "0");
    let reservation = cgroup_file(&pid, "memory", "memory.soft_limit_in_bytes")
        .or_else(|| cgroup_file(&pid, "memory", "memory.low"))
        .unwrap();
    assert_eq!(read(&reservation), (48u64 << 20).to_string());
    if let Some(shares) = cgroup_file(&pid, "cpu", "cpu.shares") {
        assert_eq!(read(&shares), "512");
    }
    let weight = ["blkio.weight", "blkio.bfq.weight", "io.bfq.weight", "io.weight"]
        .iter()
        .find_map(|f| cgroup_file(&pid, if f.starts_with("io.") { "io" } else { "blkio" }, f))
        .expect("no blkio weight file for the container");
    if !weight.ends_with("io.weight") {
        assert_eq!(read(&weight).split_whitespace().last(), Some("250"), "{}", weight.display());
    }
    // The first process is already held to CPU 0.
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "--cpuset-cpus",
        "0",
        "busybox",
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]));
    assert_eq!(out.split_whitespace().last(), Some("0"), "{out}");

    for (args, want) in [
        (&["--blkio-weight", "5"][..], "Range of blkio weight is from 10 to 1000"),
        (&["--cpuset-cpus", "999"][..], "Requested CPUs are not available - requested 999"),
        (&["--memory-reservation", "1m"][..], "Minimum memory reservation allowed is 6MB"),
    ] {
        let mut argv = vec!["run", "-d", "--name", "refused"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["busybox", "true"]);
        let o = d.berth(&argv);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(text(&o.stderr).contains(want), "{args:?}: {}", text(&o.stderr));
        assert!(!d.berth(&["inspect", "refused"]).status.success(), "{args:?} left a container");
    }
}
