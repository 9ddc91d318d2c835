//! The builder end to end: a small busybox project (tests/e2e/fixtures/csvstats) built with
//! our CLI and with the docker CLI (legacy builder API), the layer cache on rebuilds,
//! multi-stage builds, build args, .dockerignore, secrets, and broken input.

use std::path::{Path, PathBuf};

use berth_e2e::{Daemon, have_docker, ok, repo_root, text};

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// A fresh copy of the csvstats fixture, so tests can edit it.
fn project(d: &Daemon, name: &str) -> PathBuf {
    let p = d.dir.path().join(name);
    copy_dir(&repo_root().join("tests/e2e/fixtures/csvstats"), &p);
    p
}

fn build_in(d: &Daemon, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    d.berth_cmd(&all).current_dir(dir).output().unwrap()
}

fn image_id(d: &Daemon, name: &str) -> String {
    ok(&d.berth(&["inspect", "--format", "{{.Id}}", name])).trim().to_owned()
}

#[test]
fn example_project_builds_runs_and_rebuilds_from_cache() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = project(&d, "csvstats");
    let out = build_in(&d, &p, &["-f", "stats.dockerfile", "-t", "csvstats:1.0.0", "."]);
    let log = ok(&out);
    assert!(log.contains("indexed 3 species"), "RUN output is shown: {log}");
    assert!(log.contains("Successfully tagged csvstats:1.0.0"), "{log}");
    let first = image_id(&d, "csvstats:1.0.0");

    std::fs::create_dir_all(p.join("out")).unwrap();
    let vol = format!("{}:/app/out", p.join("out").display());
    let out = d.berth(&["run", "--rm", "-v", &vol, "--user", "0:0", "csvstats:1.0.0", "--column", "2"]);
    let run = ok(&out);
    assert!(run.contains("summarising 6 rows as root, 3 species indexed"), "{run}");
    assert!(run.contains("sepal_width: mean 3.15 over 6 rows"), "{run}");
    assert_eq!(std::fs::read_to_string(p.join("out/summary.txt")).unwrap(), "sepal_width: mean 3.15 over 6 rows\n");
    let out = d.berth(&["run", "--rm", "--entrypoint", "id", "csvstats:1.0.0", "-un"]);
    assert_eq!(ok(&out).trim(), "app", "USER app is the default user");
    let cfg = ok(&d.berth(&[
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.WorkingDir}}",
        "csvstats:1.0.0",
    ]));
    assert_eq!(cfg.trim(), r#"["sh","/app/src/stats.sh"] ["--column","1"] /app"#);

    // No change: every step from the cache, the same image.
    let log = ok(&build_in(&d, &p, &["-f", "stats.dockerfile", "-t", "csvstats:1.0.0", "."]));
    let is_step = |l: &str| l.starts_with('#') && l.split_once(' ').is_some_and(|(_, r)| r.starts_with('['));
    let steps = log.lines().filter(|l| is_step(l)).count();
    let cached = log.lines().filter(|l| l.ends_with(" CACHED")).count();
    assert_eq!(cached, steps - 1, "all but FROM cached: {log}");
    assert_eq!(image_id(&d, "csvstats:1.0.0"), first);

    // Touching a file's mtime changes nothing; changing its content rebuilds from its COPY on.
    let script = p.join("src/stats.sh");
    let body = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, &body).unwrap();
    let log = ok(&build_in(&d, &p, &["-f", "stats.dockerfile", "-t", "csvstats:1.0.0", "."]));
    assert_eq!(log.lines().filter(|l| l.ends_with(" CACHED")).count(), steps - 1, "{log}");
    std::fs::write(&script, body.replace("saved ", "stored ")).unwrap();
    let log = ok(&build_in(&d, &p, &["-f", "stats.dockerfile", "-t", "csvstats:1.0.0", "."]));
    assert!(!log.contains("indexed 3 species"), "the index step stayed cached: {log}");
    let step_of = |needle: &str| log.lines().position(|l| is_step(l) && l.contains(needle)).unwrap();
    let after_copy_src = &log.lines().skip(step_of("COPY src/")).collect::<Vec<_>>().join("\n");
    assert!(!after_copy_src.contains(" CACHED"), "{log}");
    assert!(log.lines().any(|l| l.starts_with("#4 CACHED")), "BuildKit-style progress: {log}");
    assert!(log.lines().any(|l| l.contains(" DONE ")), "steps report their time: {log}");
    assert_ne!(image_id(&d, "csvstats:1.0.0"), first);

    // Ignored files never reach the image.
    std::fs::write(p.join("src/debug.log"), "secret-ish").unwrap();
    ok(&build_in(&d, &p, &["-f", "stats.dockerfile", "-t", "csvstats:1.0.1", "."]));
    let out = d.berth(&["run", "--rm", "--entrypoint", "ls", "csvstats:1.0.1", "/app/src"]);
    assert!(!ok(&out).contains("debug.log"));

    // The cache is visible in `system df` and `builder prune -af` really empties it.
    let df = ok(&d.berth(&["system", "df"]));
    let cache_row = df.lines().find(|l| l.starts_with("Build Cache")).unwrap_or_else(|| panic!("{df}"));
    assert!(cache_row.split_whitespace().nth(2).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0) > 0, "{df}");
    ok(&d.berth(&["builder", "prune", "-af"]));
    let log = ok(&build_in(&d, &p, &["-f", "stats.dockerfile", "-t", "csvstats:1.0.1", "."]));
    assert!(!log.contains(" CACHED"), "nothing cached after prune: {log}");
}

#[test]
fn docker_cli_builds_through_the_legacy_api() {
    if !have_docker() {
        eprintln!("no docker CLI: skipped");
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = project(&d, "csvstats");
    let out = d
        .docker_cmd(&["build", "-f", "stats.dockerfile", "-t", "csvstats:docker", "."])
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(&p)
        .output()
        .unwrap();
    let log = ok(&out);
    assert!(log.contains("Successfully tagged csvstats:docker"), "{log}\n{}", text(&out.stderr));
    let run = ok(&d.docker(&["run", "--rm", "--user", "0:0", "csvstats:docker"]));
    assert!(run.contains("sepal_length: mean 5.92 over 6 rows"), "{run}");
    assert!(ok(&d.docker(&["system", "df"])).contains("Build Cache"));
    // Same context through the tar path and through our CLI's directory path: same image.
    ok(&build_in(&d, &p, &["-f", "stats.dockerfile", "-t", "csvstats:berth", "."]));
    assert_eq!(image_id(&d, "csvstats:docker"), image_id(&d, "csvstats:berth"));
}

#[test]
fn multi_stage_target_build_args_and_secrets() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir.path().join("ms");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("Dockerfile"),
        r#"ARG BASE=busybox
FROM ${BASE} AS build
ARG VERSION=0.1
RUN mkdir /out && echo "built $VERSION" > /out/artifact
RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /out/token-length

FROM busybox AS test
RUN echo testing && exit 0

FROM busybox
COPY --from=build /out/ /srv/
CMD ["cat", "/srv/artifact"]
"#,
    )
    .unwrap();
    let secret = d.dir.path().join("token.txt");
    std::fs::write(&secret, "s3cr3t-value-123").unwrap();
    let sec = format!("id=token,src={}", secret.display());
    let log = ok(&build_in(&d, &p, &["-t", "ms:1", "--build-arg", "VERSION=2.0", "--secret", &sec, "."]));
    assert!(!log.contains("testing"), "an unneeded stage is not built: {log}");
    assert_eq!(ok(&d.berth(&["run", "--rm", "ms:1"])), "built 2.0\n");
    assert_eq!(ok(&d.berth(&["run", "--rm", "ms:1", "cat", "/srv/token-length"])).trim(), "16");
    // The secret is in no layer blob.
    let blobs = d.data_root.join("content/blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!data.windows(16).any(|w| w == b"s3cr3t-value-123"), "secret leaked into a blob");
    }
    let log = ok(&build_in(&d, &p, &["--target", "build", "-t", "ms:build", "--secret", &sec, "."]));
    assert!(log.contains("Successfully tagged ms:build"), "{log}");
    assert_eq!(ok(&d.berth(&["run", "--rm", "ms:build", "cat", "/out/artifact"])), "built 0.1\n");

    // `-f -`: the Dockerfile on stdin, the context from the directory.
    let mut cmd = d.berth_cmd(&["build", "-f", "-", "-t", "stdin:1", "."]);
    cmd.current_dir(&p);
    let out =
        berth_e2e::run_with_stdin(cmd, b"FROM busybox\nCOPY Dockerfile /copied\nCMD [\"head\", \"-1\", \"/copied\"]\n");
    ok(&out);
    assert_eq!(ok(&d.berth(&["run", "--rm", "stdin:1"])), "ARG BASE=busybox\n");
}

#[test]
fn broken_builds_fail_clearly_and_tag_nothing() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir.path().join("bad");
    std::fs::create_dir_all(&p).unwrap();
    let cases: &[(&str, &str)] = &[
        ("FROM busybox\nRUNN echo hi\n", "Dockerfile:2"),
        ("FROM busybox\nRUN echo failing; exit 3\n", "exit code: 3"),
        ("FROM busybox\nCOPY ../outside /x\n", "outside the build context"),
        ("FROM busybox\nCOPY missing.txt /x\n", "missing.txt"),
        ("FROM nosuchbase\n", "nosuchbase"),
    ];
    for (df, expect) in cases {
        std::fs::write(p.join("Dockerfile"), df).unwrap();
        let out = build_in(&d, &p, &["-t", "bad:1", "."]);
        assert!(!out.status.success(), "{df} built");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(all.contains(expect), "{df}: expected {expect:?} in {all}");
    }
    let out = d.berth(&["image", "inspect", "bad:1"]);
    assert!(!out.status.success(), "a failed build tags nothing");
    ok(&d.berth(&["run", "--rm", "busybox", "true"]));
}

#[test]
fn a_build_whose_client_goes_away_is_cancelled() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir.path().join("slow");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("Dockerfile"), "FROM busybox\nRUN echo started-cancel-test; sleep 47; echo never\n").unwrap();
    let mut child = d
        .berth_cmd(&["build", "-t", "slow:1", "."])
        .current_dir(&p)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the RUN step is running, then kill the client as ctrl-c would.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "build ended early");
        if line.contains("started-cancel-test") {
            break;
        }
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).map(|c| c.windows(8).any(|w| w == b"sleep\x0047")).unwrap_or(false)
        })
    };
    while running() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!running(), "the build step is still running after its client went away");
    assert!(!d.berth(&["image", "inspect", "slow:1"]).status.success(), "a cancelled build tags nothing");
    ok(&d.berth(&["run", "--rm", "busybox", "true"]));
}
