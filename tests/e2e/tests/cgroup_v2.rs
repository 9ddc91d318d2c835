//! berth on a cgroup v2 (unified) host, on a machine whose controllers are all bound to
//! cgroup v1 (a hybrid host: cgroup2 at /sys/fs/cgroup/unified with no controllers).
//!
//! Each test makes a cgroup of its own under the cgroup2 root and a "holder" process in it
//! that unshares a mount and a cgroup namespace, replaces the v1 tmpfs at /sys/fs/cgroup
//! with a fresh cgroup2 mount (rooted at that cgroup), and sleeps. The daemon (and every
//! restart of it) joins that cgroup and enters those namespaces: there `/sys/fs/cgroup` is
//! a unified host, so libcontainer uses its v2 manager and the daemon its v2 paths
//! (cgroup.freeze, cgroup.events, cpu.stat, cgroup.procs). No controller can be enabled
//! (all are bound to v1, and rebinding them would break every other test), so the memory,
//! pids, io and cpu limit files do not exist: limits must be discarded as dockerd does on
//! such a host, and stats must report them as dockerd does, never fail.
//!
//! On a host without a cgroup2 mount at /sys/fs/cgroup/unified (pure v1, or pure v2 where
//! every other e2e test already runs under v2) these tests say so and do nothing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, have_docker, ok, text};

/// The hybrid host's cgroup2 mount.
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// cgroup2's file system magic.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// A prepared unified-host namespace: the test's own cgroup (on the host's cgroup2
/// hierarchy) and the holder process keeping the namespaces alive. Dropped after the
/// daemon: kills whatever is left in the cgroup and removes every cgroup under it.
struct V2Host {
    /// The test's cgroup, as the host sees it (`/sys/fs/cgroup/unified/be2e-v2-…`).
    cg: PathBuf,
    holder: Child,
}

impl V2Host {
    /// `None` (with a note) when this host has no cgroup2 hierarchy beside v1.
    fn new() -> Option<V2Host> {
        #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between architectures
        let magic = rustix::fs::statfs(UNIFIED).map(|s| s.f_type as i64).unwrap_or(0);
        if magic != CGROUP2_SUPER_MAGIC {
            eprintln!("no cgroup2 mount at {UNIFIED}: not a hybrid host, nothing to test here");
            return None;
        }
        let cg = Path::new(UNIFIED).join(format!("be2e-v2-{}-{}", std::process::id(), next_id()));
        std::fs::create_dir(&cg).expect("create the test's cgroup");
        let script = format!(
            "echo $$ > {procs} && exec unshare -m -C --propagation private sh -c \
             'umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec sleep infinity'",
            procs = cg.join("cgroup.procs").display()
        );
        let holder = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the namespace holder");
        let host = V2Host { cg, holder };
        // Ready once its mount namespace has the cgroup2 mount at /sys/fs/cgroup.
        let mountinfo = format!("/proc/{}/mountinfo", host.holder.id());
        wait_for("the holder's cgroup2 mount", Duration::from_secs(10), || {
            std::fs::read_to_string(&mountinfo)
                .unwrap_or_default()
                .lines()
                .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "))
        });
        Some(host)
    }

    /// The daemon, started (and restarted) in the test's cgroup and the holder's namespaces.
    fn daemon(&self) -> Daemon {
        let script = format!(
            "echo $$ > {procs} && exec nsenter -t {pid} -m -C -- \"$@\"",
            procs = self.cg.join("cgroup.procs").display(),
            pid = self.holder.id()
        );
        let d = Daemon::start_with_wrapper(&["sh", "-c", &script, "sh"], &[]);
        d.import_busybox("busybox:latest");
        d
    }

    /// A container's cgroup as the host sees it (the daemon's `/sys/fs/cgroup/berth/<id>`).
    fn container_cg(&self, id: &str) -> PathBuf {
        self.cg.join("berth").join(id)
    }

    /// The container cgroups left under the daemon's `/berth` parent.
    fn leftover_cgroups(&self) -> Vec<String> {
        std::fs::read_dir(self.cg.join("berth"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops the daemon (which removes every container) and checks that no container's
    /// cgroup outlived it.
    fn finish(self, d: Daemon) {
        drop(d);
        let left = self.leftover_cgroups();
        assert!(left.is_empty(), "container cgroups left after every container was removed: {left:?}");
    }
}

impl Drop for V2Host {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        // Anything still in the subtree (a stray shim or container after a failure).
        let _ = std::fs::write(self.cg.join("cgroup.kill"), "1");
        let events = self.cg.join("cgroup.events");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && std::fs::read_to_string(&events).is_ok_and(|s| s.lines().any(|l| l == "populated 1"))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        rmdir_tree(&self.cg);
    }
}

/// Removes a cgroup and every cgroup below it, deepest first (cgroupfs takes only rmdir).
fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        eprintln!("cannot remove cgroup {}: {e}", dir.display());
    }
}

fn next_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[track_caller]
fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    ok(&d.berth(&["inspect", "-f", fmt, name])).trim().to_owned()
}

fn log_lines(d: &Daemon, name: &str) -> usize {
    ok(&d.berth(&["logs", name])).lines().count()
}

/// `GET path` on the daemon's socket (HTTP/1.0, so the answer is not chunked): the body.
fn api_get(d: &Daemon, path: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect to the API socket");
    write!(s, "GET {path} HTTP/1.0\r\nHost: berth\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    body.to_owned()
}

/// `usage_usec` of a v2 cgroup, in ns.
fn cpu_usage_ns(cg: &Path) -> u64 {
    let st = std::fs::read_to_string(cg.join("cpu.stat")).expect("cpu.stat");
    let usec: u64 = st.lines().find_map(|l| l.strip_prefix("usage_usec ")).and_then(|v| v.trim().parse().ok()).unwrap();
    usec * 1000
}

fn frozen(cg: &Path) -> bool {
    std::fs::read_to_string(cg.join("cgroup.events")).unwrap().lines().any(|l| l == "frozen 1")
}

/// Pauses with `cli` (berth or docker), checks that the container's v2 cgroup is frozen and
/// its output stops, and that inspect and ps say so; unpauses and checks it goes on.
fn pause_cycle(d: &Daemon, v2: &V2Host, id: &str, docker: bool) {
    let run = |args: &[&str]| if docker { d.docker(args) } else { d.berth(args) };
    let cg = v2.container_cg(id);
    ok(&run(&["pause", "loop"]));
    assert!(frozen(&cg), "cgroup.events of {} does not say frozen", cg.display());
    assert_eq!(std::fs::read_to_string(cg.join("cgroup.freeze")).unwrap().trim(), "1");
    assert_eq!(inspect(d, "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", "loop"), "paused true true");
    let ps = ok(&run(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.lines().any(|l| l.starts_with("loop ") && l.ends_with("(Paused)")), "{ps}");
    // A frozen loop writes nothing: it prints every 100 ms when running.
    let before = log_lines(d, "loop");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(log_lines(d, "loop"), before, "output went on while paused");
    // Paused containers refuse exec, as Docker's do.
    let out = run(&["exec", "loop", "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is paused"), "{}", text(&out.stderr));

    ok(&run(&["unpause", "loop"]));
    assert!(!frozen(&cg), "still frozen after unpause");
    assert_eq!(inspect(d, "{{.State.Status}} {{.State.Paused}}", "loop"), "running false");
    wait_for("output after unpause", Duration::from_secs(5), || log_lines(d, "loop") > before + 2);
}

/// Lifecycle, exec, top, pause/unpause (our CLI and docker's), stats (CLI and API) and
/// removal on a unified host; the containers' cgroups are where a v2 host puts them, with
/// the container's view of them as Docker gives it.
/// Starts `loop`, a container that prints a growing count ten times a second; its id.
fn start_counter(d: &Daemon) -> String {
    let script = "i=0; while true; do i=$((i+1)); echo $i; usleep 100000; done";
    ok(&d.berth(&["run", "-d", "--name", "loop", "busybox", "sh", "-c", script])).trim().to_owned()
}

#[test]
fn containers_run_pause_and_report_stats_on_a_unified_host() {
    let Some(v2) = V2Host::new() else { return };
    let d = v2.daemon();

    // The daemon sees a v2 host.
    let info = ok(&d.berth(&["info", "--format", "{{.CgroupVersion}} {{.CgroupDriver}}"]));
    assert_eq!(info.trim(), "2 cgroupfs");

    // Foreground run, with the container's view of its cgroup: a read-only cgroup2 mount
    // with its own cgroup as the root, in a cgroup namespace of its own.
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "grep ' /sys/fs/cgroup ' /proc/self/mountinfo; grep '^0::' /proc/self/cgroup; \
         cat /sys/fs/cgroup/cgroup.procs | wc -l; mkdir /sys/fs/cgroup/x 2>&1; readlink /proc/self/ns/cgroup",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(" - cgroup2 ") && lines[0].split(' ').nth(3) == Some("/"), "{out}");
    assert!(lines[0].split(' ').nth(5).is_some_and(|o| o.split(',').any(|x| x == "ro")), "not read-only: {out}");
    assert_eq!(lines[1], "0::/", "{out}");
    // sh, grep/cat, wc: only the container's own processes are in its root.
    let procs: usize = lines[2].trim().parse().unwrap();
    assert!((1..=4).contains(&procs), "{out}");
    assert!(lines[3].contains("Read-only file system"), "{out}");
    let daemon_ns = std::fs::read_link(format!("/proc/{}/ns/cgroup", d.pid().unwrap())).unwrap();
    assert_ne!(lines[4], daemon_ns.to_string_lossy(), "the container shares the daemon's cgroup namespace");

    let id = start_counter(&d);
    let cg = v2.container_cg(&id);
    let pid = inspect(&d, "{{.State.Pid}}", "loop");
    // The init process is in the container's v2 cgroup, as the host sees it.
    let members = std::fs::read_to_string(cg.join("cgroup.procs")).expect("the container's v2 cgroup");
    assert!(members.lines().any(|l| l == pid), "{pid} not in {}: {members}", cg.display());

    // exec joins the container's cgroup.
    let out = ok(&d.berth(&["exec", "loop", "sh", "-c", "grep '^0::' /proc/self/cgroup; echo $$"]));
    let mut it = out.lines();
    assert_eq!(it.next(), Some("0::/"), "{out}");
    wait_for("the loop's first lines", Duration::from_secs(5), || log_lines(&d, "loop") >= 3);

    // top lists the container's processes (from its v2 cgroup.procs).
    let top = ok(&d.berth(&["top", "loop"]));
    assert!(top.lines().any(|l| l.contains(&pid) && l.contains("while true")), "{top}");

    pause_cycle(&d, &v2, &id, false);
    if have_docker() {
        pause_cycle(&d, &v2, &id, true);
    }

    // commit freezes the running container while it reads its changes and thaws it after;
    // one the user paused stays paused.
    ok(&d.berth(&["exec", "loop", "sh", "-c", "echo v2 > /marker"]));
    ok(&d.berth(&["commit", "loop", "v2img"]));
    assert!(!frozen(&cg), "still frozen after commit");
    assert_eq!(inspect(&d, "{{.State.Paused}}", "loop"), "false");
    let before = log_lines(&d, "loop");
    wait_for("output after commit", Duration::from_secs(5), || log_lines(&d, "loop") > before);
    assert_eq!(ok(&d.berth(&["run", "--rm", "v2img", "cat", "/marker"])), "v2\n");
    ok(&d.berth(&["pause", "loop"]));
    ok(&d.berth(&["commit", "loop", "v2img2"]));
    assert!(frozen(&cg), "a paused container was thawed by commit");
    ok(&d.berth(&["unpause", "loop"]));

    // Stats, one shot from the API: CPU from the cgroup's cpu.stat; memory and pids as
    // dockerd reports them for a cgroup without those controllers (zeros, pids omitted).
    let low = cpu_usage_ns(&cg);
    let body = api_get(&d, "/containers/loop/stats?stream=false&one-shot=true");
    let high = cpu_usage_ns(&cg);
    let v: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    let total = v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    assert!(low > 0 && low <= total && total <= high, "{low} <= {total} <= {high}: {body}");
    let user = v["cpu_stats"]["cpu_usage"]["usage_in_usermode"].as_u64().unwrap();
    let kernel = v["cpu_stats"]["cpu_usage"]["usage_in_kernelmode"].as_u64().unwrap();
    assert!(user + kernel > 0 && user + kernel <= total + 1_000_000, "{body}");
    assert!(v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(
        (v["memory_stats"]["usage"].as_u64(), v["memory_stats"]["limit"].as_u64()),
        (Some(0), Some(0)),
        "{body}"
    );
    assert_eq!(v["memory_stats"]["stats"]["anon"].as_u64(), Some(0), "{body}");
    assert_eq!(v["pids_stats"], serde_json::json!({}), "{body}");
    assert!(v["blkio_stats"]["io_service_bytes_recursive"].is_null(), "{body}");
    // The streaming form's first document has the same shape.
    let s = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}"]));
    let row: Vec<&str> = s.trim().split('|').collect();
    assert_eq!(row[0], "loop", "{s}");
    assert!(row[1].ends_with('%') && row[1].trim_end_matches('%').parse::<f64>().is_ok(), "{s}");
    assert_eq!((row[2], row[3]), ("0B / 0B", "0"), "{s}");
    if have_docker() {
        let s = ok(&d.docker(&["stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}"]));
        let row: Vec<&str> = s.trim().split('|').collect();
        assert_eq!(row[0], "loop", "{s}");
        assert!(row[1].ends_with('%'), "{s}");
        assert_eq!((row[2], row[3]), ("0B / 0B", "0"), "{s}");
    }

    // kill waits for the exit; rm removes the container's cgroup.
    ok(&d.berth(&["kill", "loop"]));
    assert_eq!(inspect(&d, "{{.State.Running}} {{.State.ExitCode}}", "loop"), "false 137");
    ok(&d.berth(&["rm", "loop"]));
    assert!(!cg.exists(), "{} left after rm", cg.display());

    // stop sends SIGTERM (sh as PID 1 ignores it: SIGKILL after the timeout), then rm.
    let id = ok(&d.berth(&["run", "-d", "--name", "stopme", "busybox", "sleep", "1000"])).trim().to_owned();
    assert!(v2.container_cg(&id).join("cgroup.procs").exists());
    ok(&d.berth(&["stop", "-t", "1", "stopme"]));
    assert_eq!(inspect(&d, "{{.State.Status}}", "stopme"), "exited");
    ok(&d.berth(&["rm", "stopme"]));
    assert!(!v2.container_cg(&id).exists());

    // --rm: the container and its cgroup go when it exits.
    let out = d.berth(&["run", "--rm", "--name", "gone", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    wait_for("--rm removal", Duration::from_secs(10), || !d.berth(&["inspect", "gone"]).status.success());

    v2.finish(d);
}

/// Limits the unified host cannot enforce (no controller in its cgroup root): dropped with
/// dockerd's warnings at run and update, recorded as dockerd records them, the container
/// running; `--cpus` refused as dockerd refuses it; `docker info` warns.
#[test]
fn limits_without_controllers_are_discarded_as_dockerd_does() {
    let Some(v2) = V2Host::new() else { return };
    let d = v2.daemon();

    let info = ok(&d.berth(&["info", "--format", "{{json .Warnings}} {{.MemoryLimit}} {{.PidsLimit}}"]));
    assert!(info.contains("WARNING: No memory limit support"), "{info}");
    assert!(info.contains("WARNING: No io.weight support"), "{info}");
    assert!(info.trim().ends_with("false false"), "{info}");

    let out = d.berth(&["run", "--rm", "--memory", "32m", "--pids-limit", "10", "busybox", "echo", "ran"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ran\n");
    let err = text(&out.stderr);
    assert!(
        err.contains("WARNING: Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded."),
        "{err}"
    );
    assert!(
        err.contains("WARNING: Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded."),
        "{err}"
    );

    ok(&d.berth(&["create", "--name", "lim", "--memory", "64m", "--cpu-shares", "512", "busybox", "sleep", "1000"]));
    assert_eq!(
        inspect(&d, "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}}", "lim"),
        "0 -1 0"
    );
    ok(&d.berth(&["start", "lim"]));

    // A build's RUN steps run under the v2 manager too.
    let dir = d.dir_with("b", "FROM busybox:latest\nRUN echo built > /built && grep '^0::' /proc/self/cgroup\n");
    let out = d.build_plain(&dir, &["-t", "v2build", "."]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(ok(&d.berth(&["run", "--rm", "v2build", "cat", "/built"])), "built\n");

    // --cpus cannot be discarded: dockerd refuses it without CFS.
    let out = d.berth(&["run", "--rm", "--cpus", "0.5", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is not mounted"
        ),
        "{}",
        text(&out.stderr)
    );

    // update: warned, nothing recorded, nothing written, the container untouched.
    let id = inspect(&d, "{{.Id}}", "lim");
    let before = inspect(&d, "{{json .HostConfig}}", "lim");
    // Both CLIs print the name, then the warnings, on stdout.
    let out = d.berth(&["update", "--memory", "128m", "--pids-limit", "5", "lim"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "lim\nYour kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.\n\
         Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.\n"
    );
    assert_eq!(inspect(&d, "{{json .HostConfig}}", "lim"), before);
    assert!(!v2.container_cg(&id).join("memory.max").exists());
    assert_eq!(inspect(&d, "{{.State.Status}}", "lim"), "running");
    if have_docker() {
        let out = d.docker(&["run", "--rm", "--memory", "32m", "busybox", "echo", "ran"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("Limitation discarded."), "{}", text(&out.stderr));
        let out = d.docker(&["update", "--memory", "128m", "--pids-limit", "5", "lim"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("lim\nYour kernel does not support memory limit"),
            "{}",
            text(&out.stdout)
        );
        assert_eq!(inspect(&d, "{{json .HostConfig}}", "lim"), before);
        let info = ok(&d.docker(&["info"]));
        assert!(info.contains("Cgroup Version: 2"), "{info}");
    }
    v2.finish(d);
}

/// Live restore under v2: after the daemon is killed with SIGKILL a new one (in the same
/// namespaces, as a daemon restarted on a real v2 host) finds the running container,
/// pauses it through cgroup.freeze, reads its stats and brings back a restart policy.
#[test]
fn live_restore_and_restart_policy_on_a_unified_host() {
    let Some(v2) = V2Host::new() else { return };
    let mut d = v2.daemon();
    let id = start_counter(&d);
    ok(&d.berth(&["run", "-d", "--name", "flaky", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 3"]));
    let pid = inspect(&d, "{{.State.Pid}}", "loop");

    d.kill();
    d.start_again();
    assert_eq!(inspect(&d, "{{.State.Status}} {{.State.Pid}}", "loop"), format!("running {pid}"));
    let before = log_lines(&d, "loop");
    wait_for("output after the restore", Duration::from_secs(5), || log_lines(&d, "loop") > before);
    pause_cycle(&d, &v2, &id, false);
    let s = ok(&d.berth(&["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", "loop"]));
    assert_eq!(s.trim(), "loop 0B / 0B");
    wait_for("the restart policy acting after the restore", Duration::from_secs(20), || {
        inspect(&d, "{{.RestartCount}}", "flaky").parse::<u32>().unwrap_or(0) >= 2
    });
    ok(&d.berth(&["rm", "-f", "loop", "flaky"]));
    assert!(!v2.container_cg(&id).exists());
    v2.finish(d);
}

/// Device rules on v2 are an eBPF program the shim attaches to the container's cgroup: a
/// node the container may create (mknod is allowed for every device, as Docker allows it)
/// does not open unless a rule grants it, as on v1; `--privileged` opens it.
#[test]
fn device_rules_are_enforced_on_a_unified_host() {
    let Some(v2) = V2Host::new() else { return };
    let d = v2.daemon();
    let probe = "mknod /tmp/fuse c 10 229 && (exec 3<>/tmp/fuse) 2>&1; echo rc=$?";
    let out = ok(&d.berth(&["run", "--rm", "busybox", "sh", "-c", probe]));
    assert!(out.contains("Operation not permitted") && out.ends_with("rc=1\n"), "{out}");
    let out = ok(&d.berth(&["run", "--rm", "--device-cgroup-rule", "c 10:229 rwm", "busybox", "sh", "-c", probe]));
    assert_eq!(out, "rc=0\n");
    // Read access only: an open for reading and writing is refused.
    let out = ok(&d.berth(&["run", "--rm", "--device-cgroup-rule", "c 10:229 r", "busybox", "sh", "-c", probe]));
    assert!(out.ends_with("rc=1\n"), "{out}");
    let out = ok(&d.berth(&["run", "--rm", "--privileged", "busybox", "sh", "-c", probe]));
    assert_eq!(out, "rc=0\n");
    // The standard nodes stay usable, exec'd processes are held to the same rules.
    ok(&d.berth(&["run", "-d", "--name", "dev", "busybox", "sleep", "1000"]));
    let out = ok(&d.berth(&["exec", "dev", "sh", "-c", "echo x > /dev/null && head -c 4 /dev/urandom | wc -c"]));
    assert_eq!(out.trim(), "4");
    let out = ok(&d.berth(&["exec", "dev", "sh", "-c", probe]));
    assert!(out.ends_with("rc=1\n"), "{out}");
    v2.finish(d);
}
