//! Root integration tests of the shim with real containers. This binary has no libtest
//! harness so it can be its own shim: run as `shim <json>` it becomes one, exactly as the
//! berth binary does, and otherwise it runs the tests below one after another.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::client::{ShimClient, ShimEvent, StartOutcome, Streams};
use berth_runtime::shim::{ShimOptions, Spawned};
use berth_runtime::spec::{BindMount, SpecOptions, User};

struct Env {
    dir: PathBuf,
    n: u32,
}

impl Env {
    fn new() -> Env {
        let dir = std::env::temp_dir().join(format!("berth-shim-{}", berth_base::new_id()));
        let root = dir.join("rootfs");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        for l in ["sh", "echo", "cat", "id", "sleep", "stty", "touch", "kill"] {
            std::os::unix::fs::symlink("/bin/busybox", root.join("bin").join(l)).unwrap();
        }
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        Env { dir, n: 0 }
    }

    fn spec(&self, args: &[&str]) -> SpecOptions {
        SpecOptions {
            id: String::new(),
            rootfs: self.dir.join("rootfs"),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            seccomp: true,
            ..Default::default()
        }
    }

    fn opts(&mut self, mut spec: SpecOptions, tty: bool, open_stdin: bool) -> ShimOptions {
        self.n += 1;
        let id = format!("berthtest-{}-{}", std::process::id(), self.n);
        let c = self.dir.join(&id);
        std::fs::create_dir_all(&c).unwrap();
        spec.id = id.clone();
        spec.tty = tty;
        spec.cgroups_path = format!("/berth-test/{id}");
        let s = berth_runtime::spec::generate(&spec).unwrap();
        s.save(c.join("config.json")).unwrap();
        ShimOptions {
            id,
            bundle: c.clone(),
            state_root: self.dir.join("state"),
            socket: c.join("shim.sock"),
            log_path: c.join("log.json"),
            log_max_size: 10 << 20,
            log_max_files: 3,
            exit_file: c.join("exit.json"),
            tty,
            open_stdin,
            stdin_once: open_stdin,
            // Every test runs through the monitor hand-over once its container runs.
            monitor: Some(berth_runtime::shim::monitor::install(&self.dir).unwrap()),
            private_parents: Vec::new(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for i in 1..=self.n {
            let id = format!("berthtest-{}-{}", std::process::id(), i);
            let _ = berth_runtime::cleanup(&self.dir.join("state"), &id);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // libcontainer removes each container's cgroup but never its parent.
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in rd.flatten() {
                let _ = std::fs::remove_dir(c.path().join("berth-test"));
            }
        }
        let _ = std::fs::remove_dir("/sys/fs/cgroup/berth-test");
    }
}

/// A connection through the typed client, driven from this synchronous test on a runtime
/// of its own.
struct Conn {
    rt: tokio::runtime::Runtime,
    c: ShimClient,
}

/// What a test sends; each maps to one request of the client.
enum Req {
    Stdin(Vec<u8>),
    CloseStdin,
    Resize { rows: u16, cols: u16 },
    Signal(i32),
}

impl Conn {
    fn open(o: &ShimOptions, stdin: bool) -> Conn {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let c = rt.block_on(ShimClient::connect(&o.socket, Streams { stdin, stdout: true, stderr: true })).unwrap();
        Conn { rt, c }
    }
    fn send(&mut self, f: Req) {
        let c = &mut self.c;
        self.rt
            .block_on(async {
                match f {
                    Req::Stdin(d) => c.stdin(&d).await,
                    Req::CloseStdin => c.close_stdin().await,
                    Req::Resize { rows, cols } => c.resize(rows, cols).await,
                    Req::Signal(s) => c.signal(s).await,
                }
            })
            .unwrap();
    }
    fn next(&mut self) -> Option<ShimEvent> {
        let c = &mut self.c;
        self.rt.block_on(async {
            match tokio::time::timeout(Duration::from_secs(10), c.next_event()).await {
                Ok(Ok(e)) => e,
                _ => None,
            }
        })
    }
    /// Collects stdout+stderr until Exit; returns (output, code).
    fn until_exit(&mut self) -> (String, Option<i32>) {
        let mut out = Vec::new();
        while let Some(f) = self.next() {
            match f {
                ShimEvent::Output { data, .. } => out.extend(data),
                ShimEvent::Exited { code } => return (String::from_utf8_lossy(&out).into_owned(), Some(code)),
                _ => {}
            }
        }
        (String::from_utf8_lossy(&out).into_owned(), None)
    }
    fn start(&mut self) -> u32 {
        match self.rt.block_on(self.c.start()) {
            Ok(StartOutcome::Running { pid }) => pid,
            other => panic!("expected Started, got {other:?}"),
        }
    }
}

fn spawn(o: &ShimOptions) -> Spawned {
    let exe = std::env::current_exe().unwrap();
    berth_runtime::shim::spawn(&exe, o).unwrap()
}

fn wait_gone(mut s: Spawned) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if s.child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = s.child.kill();
    panic!("shim did not exit");
}

fn echo_reaches_client_and_log(env: &mut Env) {
    let o = env.opts(env.spec(&["sh", "-c", "echo hello; echo oops >&2; exit 3"]), false, false);
    let s = spawn(&o);
    assert!(s.init_pid > 0);
    let mut c = Conn::open(&o, false);
    c.start();
    let (out, code) = c.until_exit();
    assert_eq!(code, Some(3));
    assert!(out.contains("hello\n") && out.contains("oops\n"), "{out:?}");
    wait_gone(s);
    let info = berth_runtime::exit::read(&o.exit_file).unwrap();
    assert_eq!(info.code, 3);
    assert!(!info.oom_killed);
    let log = berth_runtime::logs::read(&o.log_path, 3).unwrap();
    assert!(log.iter().any(|e| e.data == b"hello\n" && e.stream == berth_runtime::logs::Stream::Stdout));
    assert!(log.iter().any(|e| e.data == b"oops\n" && e.stream == berth_runtime::logs::Stream::Stderr));
    assert!(!o.socket.exists(), "socket removed");
    assert!(!o.state_root.join(&o.id).exists(), "libcontainer state deleted");
    assert!(!o.state_root.join("bundles").join(&o.id).exists(), "the runtime's bundle deleted with it");
    assert!(!o.bundle.join("libcontainer").exists(), "nothing written for the runtime in the container's bundle");
}

fn stdin_is_piped(env: &mut Env) {
    let o = env.opts(env.spec(&["cat"]), false, true);
    let s = spawn(&o);
    let mut c = Conn::open(&o, true);
    c.start();
    c.send(Req::Stdin(b"piped text\n".to_vec()));
    c.send(Req::CloseStdin);
    let (out, code) = c.until_exit();
    assert_eq!(out, "piped text\n");
    assert_eq!(code, Some(0));
    wait_gone(s);
}

fn stdin_once_closes_on_disconnect(env: &mut Env) {
    let o = env.opts(env.spec(&["cat"]), false, true);
    let s = spawn(&o);
    let mut watcher = Conn::open(&o, false);
    let mut writer = Conn::open(&o, true);
    writer.start();
    writer.send(Req::Stdin(b"bye\n".to_vec()));
    drop(writer);
    let (out, code) = watcher.until_exit();
    assert_eq!(code, Some(0));
    assert_eq!(out, "bye\n");
    wait_gone(s);
}

fn tty_output_and_resize(env: &mut Env) {
    let o = env.opts(env.spec(&["sh", "-c", "read x; stty size; echo got $x"]), true, true);
    let s = spawn(&o);
    let mut c = Conn::open(&o, true);
    c.send(Req::Resize { rows: 33, cols: 77 });
    c.start();
    c.send(Req::Stdin(b"abc\n".to_vec()));
    let (out, code) = c.until_exit();
    assert_eq!(code, Some(0));
    assert!(out.contains("33 77"), "{out:?}");
    assert!(out.contains("got abc\r\n"), "tty output uses CRLF: {out:?}");
    wait_gone(s);
    let log = berth_runtime::logs::read(&o.log_path, 3).unwrap();
    assert!(log.iter().any(|e| String::from_utf8_lossy(&e.data).contains("got abc")));
}

fn signal_kills(env: &mut Env) {
    let o = env.opts(env.spec(&["sleep", "100"]), false, false);
    let s = spawn(&o);
    let mut c = Conn::open(&o, false);
    c.start();
    c.send(Req::Signal(9));
    let (_, code) = c.until_exit();
    assert_eq!(code, Some(137));
    wait_gone(s);
    assert_eq!(berth_runtime::exit::read(&o.exit_file).unwrap().code, 137);
}

fn missing_command_fails_handshake(env: &mut Env) {
    let o = env.opts(env.spec(&["nosuchcmd"]), false, false);
    let exe = std::env::current_exe().unwrap();
    let e = berth_runtime::shim::spawn(&exe, &o).unwrap_err();
    assert!(e.to_string().contains("executable file not found in $PATH"), "{e}");
    assert_eq!(e.kind(), berth_base::ErrorKind::InvalidArgument);
    assert!(!o.state_root.join(&o.id).exists());
}

fn user_is_applied(env: &mut Env) {
    let mut spec = env.spec(&["sh", "-c", "id -u; id -g"]);
    spec.user = berth_runtime::spec::resolve_user(&spec.rootfs, "1000:1000").unwrap();
    assert_eq!(spec.user, User { uid: 1000, gid: 1000, additional_gids: vec![] });
    let o = env.opts(spec, false, false);
    let s = spawn(&o);
    let mut c = Conn::open(&o, false);
    c.start();
    let (out, code) = c.until_exit();
    assert_eq!(code, Some(0));
    assert_eq!(out, "1000\n1000\n");
    wait_gone(s);
}

fn readonly_bind_refuses_writes(env: &mut Env) {
    let host = env.dir.join("vol");
    std::fs::create_dir_all(&host).unwrap();
    let mut spec = env.spec(&["sh", "-c", "touch /data/x && echo wrote; touch /rw/y && echo rw-ok"]);
    let rw = env.dir.join("rwvol");
    std::fs::create_dir_all(&rw).unwrap();
    spec.mounts = vec![
        BindMount { source: host.clone(), destination: "/data".into(), readonly: true },
        BindMount { source: rw.clone(), destination: "/rw".into(), readonly: false },
    ];
    let o = env.opts(spec, false, false);
    let s = spawn(&o);
    let mut c = Conn::open(&o, false);
    c.start();
    let (out, _) = c.until_exit();
    assert!(!out.contains("wrote"), "{out:?}");
    assert!(out.contains("Read-only file system"), "{out:?}");
    assert!(out.contains("rw-ok"), "{out:?}");
    assert!(!host.join("x").exists() && rw.join("y").exists());
    wait_gone(s);
}

fn cleanup_removes_state_of_dead_shim(env: &mut Env) {
    let o = env.opts(env.spec(&["sleep", "100"]), false, false);
    let mut s = spawn(&o);
    // A shim killed without notice (daemon reconcile finds it dead).
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    assert!(o.state_root.join(&o.id).exists());
    // The spec has Docker's default filter, which the shim loads itself: libcontainer got
    // a bundle of its own, kept beside its state.
    let runtime_bundle = o.state_root.join("bundles").join(&o.id);
    assert!(runtime_bundle.join("config.json").exists());
    berth_runtime::cleanup(&o.state_root, &o.id).unwrap();
    assert!(!o.state_root.join(&o.id).exists());
    assert!(!runtime_bundle.exists(), "cleanup removes the runtime's bundle");
    assert!(!Path::new(&format!("/proc/{}", s.init_pid)).exists() || is_zombie_or_gone(s.init_pid));
    berth_runtime::cleanup(&o.state_root, &o.id).unwrap();
}

fn is_zombie_or_gone(pid: u32) -> bool {
    std::thread::sleep(Duration::from_millis(100));
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.split_whitespace().nth(2) == Some("Z"),
        Err(_) => true,
    }
}

fn shim_memory(env: &mut Env) {
    let o = env.opts(env.spec(&["sleep", "100"]), false, false);
    let s = spawn(&o);
    let mut c = Conn::open(&o, false);
    c.start();
    // Once the container runs, the shim becomes the monitor (same pid).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{}/exe", s.shim_pid)).unwrap().file_name().unwrap() != "berth-monitor" {
        assert!(Instant::now() < deadline, "the shim did not become the monitor");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.shim_pid)).unwrap();
    let rss = status.lines().find(|l| l.starts_with("VmRSS")).unwrap_or("").to_string();
    let pss = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", s.shim_pid))
        .ok()
        .map(|r| {
            r.lines().filter(|l| l.starts_with("Pss:") || l.starts_with("Anonymous:")).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_default();
    println!("  monitor memory (one running container): {rss} | {pss}");
    // PID 1 of a namespace ignores SIGTERM without a handler (as under Docker), so kill.
    c.send(Req::Signal(9));
    let (_, code) = c.until_exit();
    assert_eq!(code, Some(137));
    wait_gone(s);
}

fn monitor_logs_and_streams_like_the_shim(env: &mut Env) {
    // Output after the hand-over is written by the monitor: the same json-file lines
    // (escapes, invalid UTF-8, partial lines) and the same frames.
    let script =
        "sleep 0.5; printf 'late\\n'; printf 'tab\\there \"q\" back\\\\slash \\001\\377\\n' >&2; printf partial";
    let o = env.opts(env.spec(&["sh", "-c", script]), false, false);
    let s = spawn(&o);
    let mut c = Conn::open(&o, false);
    c.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{}/exe", s.shim_pid)).unwrap().file_name().unwrap() != "berth-monitor" {
        assert!(Instant::now() < deadline, "the shim did not become the monitor");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (out, code) = c.until_exit();
    assert_eq!(code, Some(0));
    let want_err = "tab\there \"q\" back\\slash \u{1}\u{fffd}\n";
    // stdout and stderr are separate pipes: their relative order is not kept.
    assert!(out.contains("late\n") && out.contains("partial") && out.contains(want_err), "{out:?}");
    wait_gone(s);
    let log = berth_runtime::logs::read(&o.log_path, 3).unwrap();
    let text: Vec<(String, &str)> = log
        .iter()
        .map(|e| {
            let st = if e.stream == berth_runtime::logs::Stream::Stdout { "out" } else { "err" };
            (String::from_utf8_lossy(&e.data).into_owned(), st)
        })
        .collect();
    assert!(text.contains(&("late\n".to_owned(), "out")), "{text:?}");
    assert!(text.contains(&(want_err.to_owned(), "err")), "{text:?}");
    assert!(text.contains(&("partial".to_owned(), "out")), "{text:?}");
    // Every line is exactly what serde_json writes for it.
    let raw = std::fs::read_to_string(&o.log_path).unwrap();
    for (line, e) in raw.lines().zip(&log) {
        #[derive(serde::Serialize)]
        struct L<'a> {
            log: &'a str,
            stream: &'a str,
            time: String,
        }
        let stream = if e.stream == berth_runtime::logs::Stream::Stdout { "stdout" } else { "stderr" };
        let time = e.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let want = serde_json::to_string(&L { log: &String::from_utf8_lossy(&e.data), stream, time }).unwrap();
        assert_eq!(line, want);
    }
}

/// Unmounts (lazily) the paths it holds when dropped, a failing test included.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// With `private_parents`, the shim's mount namespace holds its own container's root but
/// none of the other mounts under the parent, and the container runs from that root.
fn shim_drops_other_containers_mounts(env: &mut Env) {
    use rustix::mount::{MountFlags, MountPropagationFlags};
    let parent = env.dir.clone();
    let mut held = Mounts(Vec::new());
    rustix::mount::mount_bind(&parent, &parent).unwrap();
    held.0.push(parent.clone());
    rustix::mount::mount_change(&parent, MountPropagationFlags::PRIVATE).unwrap();
    // Another container's root, and ours: each a filesystem of its own under the parent.
    let other = parent.join("other-root");
    let ours = parent.join("our-root");
    for d in [&other, &ours] {
        std::fs::create_dir_all(d).unwrap();
        rustix::mount::mount("tmpfs", d, "tmpfs", MountFlags::empty(), c"mode=0755").unwrap();
        held.0.push(d.clone());
    }
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(ours.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", ours.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("/bin/busybox", ours.join("bin/sh")).unwrap();
    let mut spec = env.spec(&["sh", "-c", "echo from our root"]);
    spec.rootfs = ours.clone();
    let mut o = env.opts(spec, false, false);
    o.private_parents = vec![parent.clone()];
    let s = spawn(&o);
    let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", s.shim_pid)).unwrap();
    let points: Vec<&str> = info.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    assert!(points.contains(&ours.to_str().unwrap()), "own root missing from the shim's mounts: {points:?}");
    assert!(!points.contains(&other.to_str().unwrap()), "another root is in the shim's mounts: {points:?}");
    // The host's view is untouched.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(host.contains(&format!(" {} ", other.display())), "the shim changed the host's mounts");
    let mut c = Conn::open(&o, false);
    c.start();
    let (out, code) = c.until_exit();
    assert_eq!((out.as_str(), code), ("from our root\n", Some(0)));
    wait_gone(s);
}

/// One root test: gets a fresh rootfs and state dir, cleaned up afterwards.
type TestFn = fn(&mut Env);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(berth_runtime::shim::main(&args[1..]));
    }
    if !rustix::process::geteuid().is_root() {
        println!("shim tests need root; skipped");
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let tests: &[(&str, TestFn)] = &[
        ("echo_reaches_client_and_log", echo_reaches_client_and_log),
        ("stdin_is_piped", stdin_is_piped),
        ("monitor_logs_and_streams_like_the_shim", monitor_logs_and_streams_like_the_shim),
        ("stdin_once_closes_on_disconnect", stdin_once_closes_on_disconnect),
        ("tty_output_and_resize", tty_output_and_resize),
        ("signal_kills", signal_kills),
        ("missing_command_fails_handshake", missing_command_fails_handshake),
        ("user_is_applied", user_is_applied),
        ("readonly_bind_refuses_writes", readonly_bind_refuses_writes),
        ("cleanup_removes_state_of_dead_shim", cleanup_removes_state_of_dead_shim),
        ("shim_memory", shim_memory),
        ("shim_drops_other_containers_mounts", shim_drops_other_containers_mounts),
    ];
    let mut failed = Vec::new();
    let mut passed = 0;
    for (name, t) in tests {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let mut env = Env::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t(&mut env)));
        drop(env);
        println!("test {name} ... {}", if r.is_ok() { "ok" } else { "FAILED" });
        if r.is_err() {
            failed.push(*name);
        } else {
            passed += 1;
        }
    }
    println!("shim: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}
