//! `stats` with our CLI, the docker CLI and docker-py: memory usage against a `--memory`
//! limit, CPU % of a busy container, PIDs, the one-shot and streaming API forms, and a
//! stopped container's zeros.

use berth_e2e::{Daemon, have_docker, ok, text};

#[test]
fn stats_report_memory_cpu_and_pids() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "capped", "--memory", "32m", "busybox", "sleep", "600"]));
    ok(&d.berth(&["run", "-d", "--name", "busy", "busybox", "sh", "-c", "while true; do :; done"]));
    ok(&d.berth(&["create", "--name", "idle", "busybox", "true"]));

    let out = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "capped"]));
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!((f[0], f[2], f[3], f[4]), ("capped", "/", "32MiB", "1"), "{out}");
    assert!(f[1].ends_with("B"), "{out}");
    let out = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy"]));
    let cpu: f64 = out.trim().trim_end_matches('%').parse().unwrap();
    assert!(cpu > 20.0, "a spinning shell uses CPU: {out}");
    // The default table lists running containers.
    let out = ok(&d.berth(&["stats", "--no-stream"]));
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("CONTAINER ID   NAME"), "{out}");
    assert_eq!(lines.count(), 2, "{out}");
    let out = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.Name}} {{.CPUPerc}} {{.MemUsage}}", "idle"]));
    assert_eq!(out, "idle 0.00% 0B / 0B\n");
    let out = d.berth(&["stats", "--no-stream", "nosuch"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("No such container: nosuch"), "{}", text(&out.stderr));

    if have_docker() {
        let out = ok(&d.docker(&["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "capped"]));
        assert!(out.trim().starts_with("capped ") && out.trim().ends_with("/ 32MiB"), "{out}");
    }

    // Streaming without names: a container started later joins the table.
    let mut live = d
        .berth_cmd(&["stats", "--format", "{{.Name}} {{.PIDs}}"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = std::io::BufReader::new(live.stdout.take().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    ok(&d.berth(&["run", "-d", "--name", "late", "busybox", "sleep", "600"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = String::new();
    while !seen.contains("late 1") {
        assert!(std::time::Instant::now() < deadline, "late container never shown: {seen}");
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut r, &mut line).unwrap() > 0, "stats ended: {seen}");
        seen.push_str(&line);
    }
    assert!(seen.contains("capped 1"), "{seen}");
    let _ = live.kill();
    let _ = live.wait();

    // docker-py: one-shot, the two-sample form and the stream.
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1]).containers.get("capped")
s = c.stats(stream=False)
print(s["memory_stats"]["limit"], s["memory_stats"]["usage"] > 0, s["pids_stats"]["current"], s["name"])
print(s["precpu_stats"]["system_cpu_usage"] > 0, s["cpu_stats"]["online_cpus"] >= 1)
o = c.stats(stream=False, one_shot=True)
print(o["preread"], "system_cpu_usage" in o["precpu_stats"])
it = c.stats(stream=True, decode=True)
a = next(it); b = next(it)
print(b["precpu_stats"]["cpu_usage"]["total_usage"] == a["cpu_stats"]["cpu_usage"]["total_usage"], b["read"] > a["read"])
"#;
    let out = std::process::Command::new("python3").args(["-c", script, &d.host()]).output().unwrap();
    let o = ok(&out);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "33554432 True 1 /capped", "{o}\n{}", text(&out.stderr));
    assert_eq!(lines[1], "True True", "{o}");
    assert_eq!(lines[2], "0001-01-01T00:00:00Z False", "{o}");
    assert_eq!(lines[3], "True True", "{o}");
}
