//! End-to-end test harness: starts `berth daemon` on its own temp socket, data root and
//! exec root, drives it with our CLI and with the real docker CLI, and tears everything
//! down (containers, mounts, shims, daemon) even when a test fails. At the end of every
//! daemon's life `berth system check` must find nothing wrong in its data root.

pub mod distribution;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The docker CLI the tests compare against.
pub const DOCKER: &str = "/usr/local/bin/docker";
/// Debian's docker.io puts its CLI here.
pub const DOCKER_DEBIAN: &str = "/usr/bin/docker";

/// The berth binary under test: `$BERTH_BIN`, else the one built next to this test.
pub fn berth_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/berth
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("berth")).expect("target dir");
    assert!(bin.exists(), "{} is missing: run `cargo build -p berth` before the e2e tests", bin.display());
    bin
}

/// The repository root (for scripts/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A daemon of our own for one test.
pub struct Daemon {
    /// Temp dir holding everything.
    pub dir: tempfile::TempDir,
    /// API socket.
    pub socket: PathBuf,
    /// Data root.
    pub data_root: PathBuf,
    /// Exec root.
    pub exec_root: PathBuf,
    /// Further `berth daemon` arguments (more `-H`, TLS flags).
    extra_args: Vec<String>,
    child: Option<Child>,
    /// This daemon's default bridge (its own, so test daemons never share one).
    pub bridge: String,
    /// This daemon's nftables table (family inet).
    pub nft_table: String,
    /// A command the daemon is run through (`prefix… berth daemon …`), e.g. to enter
    /// namespaces first; empty for none.
    wrapper: Vec<String>,
}

impl Daemon {
    /// Starts a daemon and waits until it answers.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// Starts a daemon with further arguments (e.g. `-H tcp://…` and TLS flags) besides its
    /// own unix socket, data root and exec root, and waits until it answers on the socket.
    pub fn start_with(extra_args: &[&str]) -> Daemon {
        let mut d = Daemon::unstarted(extra_args);
        d.spawn();
        d
    }

    /// Starts a daemon run through `wrapper` (`wrapper… berth daemon ARGS`), again on every
    /// restart: e.g. a shell that enters a prepared mount and cgroup namespace first.
    pub fn start_with_wrapper(wrapper: &[&str], extra_args: &[&str]) -> Daemon {
        let mut d = Daemon::unstarted(extra_args);
        d.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        d.spawn();
        d
    }

    /// A daemon's own temp dir, socket, roots, bridge and table names, not started yet.
    fn unstarted(extra_args: &[&str]) -> Daemon {
        // Short paths: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("be2e").tempdir_in("/tmp").expect("tempdir");
        let tag: String = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().trim_start_matches("be2e").to_owned())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        Daemon {
            socket: dir.path().join("api.sock"),
            data_root: dir.path().join("data"),
            exec_root: dir.path().join("run"),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            bridge: format!("bb{tag}"),
            nft_table: format!("berth_{tag}"),
            wrapper: Vec::new(),
            dir,
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let config = self.dir.path().join("daemon.json");
        if !config.exists() {
            std::fs::write(&config, "{}").expect("daemon.json");
        }
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(berth_bin());
                c
            }
            None => Command::new(berth_bin()),
        };
        let child = cmd
            .args(["daemon", "-H"])
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--config-file")
            .arg(&config)
            .args(["--bridge", &self.bridge, "--nft-table", &self.nft_table])
            .args(&self.extra_args)
            .env("BERTH_LOG", "debug,h2=info,hyper=info,tonic=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start berth daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.berth(&["version"]).status.success() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("daemon exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon did not answer within 20 s: {}", self.log());
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Stops the daemon with SIGTERM (or SIGKILL) and starts a new one on the same roots.
    pub fn restart(&mut self, kill: bool) {
        self.stop_daemon(kill);
        self.spawn();
    }

    /// Kills the daemon with SIGKILL and leaves it down; [`Daemon::start_again`] starts a
    /// new one on the same roots.
    pub fn kill(&mut self) {
        self.stop_daemon(true);
    }

    /// The running daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts a daemon again after [`Daemon::kill`].
    pub fn start_again(&mut self) {
        self.spawn();
    }

    fn stop_daemon(&mut self, kill: bool) {
        if let Some(mut c) = self.child.take() {
            let sig = if kill { rustix::process::Signal::KILL } else { rustix::process::Signal::TERM };
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, sig);
            }
            let _ = c.wait();
        }
    }

    /// `berth system check`'s findings (stdout and stderr; a failure to check counts as
    /// one), `None` when it found nothing.
    pub fn check_findings(&self) -> Option<String> {
        let out = self.berth(&["system", "check"]);
        (!out.status.success()).then(|| format!("{}{}", text(&out.stdout), text(&out.stderr)))
    }

    /// The value for DOCKER_HOST / BERTH_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A berth CLI command against this daemon.
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(berth_bin());
        c.args(args).env("BERTH_HOST", self.host()).env("BERTH_NO_AUTOSTART", "1").stdin(Stdio::null());
        c
    }

    /// Runs our CLI.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_cmd(args).output().expect("run berth")
    }

    /// A directory `name` in the test's temp dir holding a Dockerfile with `dockerfile`.
    pub fn dir_with(&self, name: &str, dockerfile: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).expect("create build dir");
        std::fs::write(p.join("Dockerfile"), dockerfile).expect("write Dockerfile");
        p
    }

    /// `berth build --progress plain ARGS` run in `dir`.
    pub fn build_plain(&self, dir: &std::path::Path, args: &[&str]) -> Output {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        self.berth_cmd(&all).current_dir(dir).output().expect("run berth build")
    }

    /// A docker CLI command against this daemon.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_bin());
        c.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        c
    }

    /// Runs the docker CLI.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args).output().expect("run docker")
    }

    /// Imports the busybox base image made by scripts/mkbusybox as `name`.
    pub fn import_busybox(&self, name: &str) {
        let tar = Command::new("bash").arg(repo_root().join("scripts/mkbusybox")).output().expect("mkbusybox");
        assert!(tar.status.success(), "mkbusybox: {}", String::from_utf8_lossy(&tar.stderr));
        let out = self.berth_with_stdin(&["import", "-", name], &tar.stdout);
        assert!(out.status.success(), "import failed: {}", text(&out.stderr));
    }

    /// Runs our CLI with `input` on its stdin.
    pub fn berth_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_stdin(self.berth_cmd(args), input)
    }

    /// Runs the docker CLI with `input` on its stdin.
    pub fn docker_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_stdin(self.docker_cmd(args), input)
    }
}

/// Runs `cmd` with `input` on its stdin.
pub fn run_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

impl Drop for Daemon {
    /// Teardown keeps going after failures: remove every container through the API (stops
    /// shims, unmounts roots), stop the daemon, kill stray shims, unmount leftovers.
    fn drop(&mut self) {
        let mut findings = None;
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq", "--no-trunc"]);
            for id in text(&ids.stdout).lines().filter(|l| !l.is_empty()) {
                let _ = self.berth(&["rm", "-f", id]);
            }
            // A test that killed the daemon for good has nothing left to check.
            if self.berth(&["version"]).status.success() {
                findings = self.check_findings();
            }
        }
        self.stop_daemon(false);
        // Shims whose command line names our exec root.
        let me = self.exec_root.display().to_string();
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
                let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&me)
                    && let Some(p) = rustix::process::Pid::from_raw(pid)
                {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
        // A daemon that was killed leaves its table and bridges (ours only: named after us).
        let _ = Command::new("nft").args(["delete", "table", "inet", &self.nft_table]).output();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
        let root = self.dir.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<&str> =
            mounts.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&root)).collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
        }
        // Asserted last, once everything is cleaned up; a panic while already unwinding
        // would abort the whole test binary.
        if let Some(f) = findings
            && !std::thread::panicking()
        {
            panic!("berth system check found problems in the data root at the end of the test:\n{f}");
        }
    }
}

/// Bytes as text.
/// Writes `<dir>/<name>` as a Docker-format seccomp profile that allows everything but
/// `calls` (refused with EPERM) and returns the `--security-opt` value naming it.
pub fn seccomp_deny_opt(dir: &Path, name: &str, calls: &[&str]) -> String {
    let path = dir.join(name);
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": calls, "action": "SCMP_ACT_ERRNO"}],
    });
    std::fs::write(&path, profile.to_string()).expect("writing a seccomp profile");
    format!("seccomp={}", path.display())
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The docker CLI to compare with: the machine's own, else Debian's.
pub fn docker_bin() -> &'static str {
    if Path::new(DOCKER).exists() { DOCKER } else { DOCKER_DEBIAN }
}

/// True when a docker CLI is on this machine.
pub fn have_docker() -> bool {
    Path::new(docker_bin()).exists()
}

/// Whether this host has IPv6 (an address and not disabled), as the daemon decides whether
/// to publish ports on `::` too.
pub fn host_has_ipv6() -> bool {
    let disabled =
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").map_or(true, |s| s.trim() == "1");
    let addrs = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty());
    addrs && !disabled
}

/// GETs `url` with curl (`-g`: IPv6 literals in brackets), retrying until `within` has
/// passed; the body, or None if it never answered.
pub fn curl_within(url: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let out = Command::new("curl").args(["-gs", "--max-time", "2", url]).output().expect("curl");
        if out.status.success() {
            return Some(text(&out.stdout));
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The container ids for which a `BERTH_TRACE_START` file records `phase`.
pub fn traced(trace: &Path, phase: &str) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(3) == Some(&phase)).then(|| f[2].to_owned())
        })
        .collect()
}
