//! How the builder schedules and selects: independent stages at the same time (and a
//! failing stage stopping its siblings), `--no-cache-filter`, platforms (`--platform`,
//! `FROM --platform`, the automatic `TARGETARCH`… args), the predefined proxy args, and
//! the live progress view on a terminal.

use std::process::{Command, Stdio};

use berth_e2e::{Daemon, berth_bin, have_docker, ok, text};

fn process_running(needle: &[u8]) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).map(|c| c.windows(needle.len()).any(|w| w == needle)).unwrap_or(false)
    })
}

/// Each stage waits (up to 20 s) for the other's marker in a shared cache mount: the build
/// only succeeds when both run at the same time.
const RENDEZVOUS: &str = r#"FROM busybox AS left
RUN --mount=type=cache,target=/sync,id=rendezvous touch /sync/left && \
    i=0; while [ ! -e /sync/right ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
    [ -e /sync/right ] && echo left > /who && echo left-says-hi

FROM busybox AS right
RUN --mount=type=cache,target=/sync,id=rendezvous touch /sync/right && \
    i=0; while [ ! -e /sync/left ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; \
    [ -e /sync/left ] && echo right > /who && echo right-says-hi

FROM busybox
COPY --from=left /who /left
COPY --from=right /who /right
CMD ["cat", "/left", "/right"]
"#;

#[test]
fn independent_stages_build_at_the_same_time() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with("rv", RENDEZVOUS);
    let out = d.build_plain(&p, &["-t", "rv:1", "."]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(ok(&d.berth(&["run", "--rm", "rv:1"])), "left\nright\n");

    // docker's CLI reads the legacy stream, which cannot name steps: it gets each step's
    // text in step order, a later stage's held back until the earlier one is done.
    if have_docker() {
        let out = d
            .docker_cmd(&["build", "--no-cache", "-t", "rv:docker", "."])
            .env("DOCKER_BUILDKIT", "0")
            .current_dir(&p)
            .output()
            .unwrap();
        let log = ok(&out);
        let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("{needle:?} missing: {log}"));
        assert!(at("Step 2/8") < at("left-says-hi") && at("left-says-hi") < at("Step 3/8"), "{log}");
        assert!(at("Step 4/8") < at("right-says-hi") && at("right-says-hi") < at("Step 5/8"), "{log}");
    }

    // --no-cache-filter: the named stage runs again, the others come from the cache.
    let log = ok(&d.build_plain(&p, &["-t", "rv:2", "--no-cache-filter", "left", "."]));
    let step_of = |needle: &str| -> String {
        let l = log.lines().find(|l| l.contains(needle) && l.contains(" [")).unwrap_or_else(|| panic!("{log}"));
        l.split_whitespace().next().unwrap().to_owned()
    };
    let (left, right) = (step_of("[left 2/"), step_of("[right 4/"));
    assert!(!log.contains(&format!("{left} CACHED")), "{log}");
    assert!(log.contains(&format!("{right} CACHED")), "{log}");
}

#[test]
fn a_failing_stage_stops_the_stages_beside_it() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with(
        "fail",
        "FROM busybox AS slow\nRUN sleep 43; echo never\n\nFROM busybox AS broken\nRUN sleep 0.5; exit 7\n\n\
         FROM busybox\nCOPY --from=slow /etc/hostname /a\nCOPY --from=broken /etc/hostname /b\n",
    );
    let started = std::time::Instant::now();
    let out = d.build_plain(&p, &["-t", "fail:1", "."]);
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("exit code: 7"), "the real failure is reported: {all}");
    assert!(all.lines().any(|l| l.starts_with('#') && l.ends_with(" ERROR")), "the failed step is marked: {all}");
    assert!(started.elapsed() < std::time::Duration::from_secs(40), "the slow stage was not stopped");
    assert!(!process_running(b"sleep\x0043"), "the slow stage's step is still running");
}

#[test]
fn platforms_and_predefined_args() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let host =
        ok(&d.berth(&["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "busybox"])).trim().to_owned();
    let p = d.dir_with(
        "plat",
        r#"FROM --platform=$BUILDPLATFORM busybox AS tools
ARG TARGETARCH
ARG BUILDPLATFORM
RUN echo "target=$TARGETARCH build=$BUILDPLATFORM" > /info && echo "proxy=$HTTP_PROXY" >> /info

FROM busybox
COPY --from=tools /info /info
"#,
    );
    ok(&d.build_plain(
        &p,
        &["-t", "plat:1", "--platform", &host, "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128", "."],
    ));
    let arch = host.split('/').nth(1).unwrap();
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "plat:1", "cat", "/info"])),
        format!("target={arch} build={host}\nproxy=http://proxy.invalid:3128\n")
    );
    let history = ok(&d.berth(&["history", "--no-trunc", "plat:1"]));
    assert!(!history.contains("proxy.invalid"), "proxy args stay out of the history: {history}");

    // A base that does not match the wanted platform is refused with Docker's words.
    let other = if arch == "arm64" { "linux/amd64" } else { "linux/arm64" };
    let bad = d.dir_with("bad", &format!("FROM --platform={other} busybox\nRUN true\n"));
    let out = d.build_plain(&bad, &["-t", "bad:1", "."]);
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains(&format!("does not match the specified platform: wanted {other}, actual: {host}")), "{all}");
    // A scratch image takes the target platform.
    let scratch = d.dir_with("scratch", "FROM scratch\nCOPY Dockerfile /\n");
    ok(&d.build_plain(&scratch, &["-t", "scratch:other", "--platform", other, "."]));
    let got = ok(&d.berth(&["image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", "scratch:other"]));
    assert_eq!(got.trim(), other);
    let out = d.build_plain(&scratch, &["-t", "x", "--platform", "linux/", "."]);
    assert!(text(&out.stderr).contains("failed to parse platform"), "{}", text(&out.stderr));
}

/// `berth build -t live:1 .` in `dir`, with a pseudo-terminal as its stdout (util-linux
/// `script`), as a user at a terminal runs it.
fn build_in_pty(d: &Daemon, dir: &std::path::Path) -> std::process::Output {
    let cmdline = format!("{} build -t live:1 .", berth_bin().display());
    Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .current_dir(dir)
        .env("BERTH_HOST", d.host())
        .env("BERTH_NO_AUTOSTART", "1")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_terminal_gets_the_live_view() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with("live", "FROM busybox\nRUN for i in 1 2 3; do echo line-$i; sleep 0.3; done\nCMD [\"true\"]\n");
    let out = build_in_pty(&d, &p);
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("[+] Building"), "{screen}");
    assert!(screen.contains("FINISHED"), "{screen}");
    assert!(screen.contains("\x1b[2K"), "redrawn in place: {screen}");
    assert!(screen.contains(" => => line-2"), "running output is shown under its step: {screen}");
    assert!(screen.contains("Successfully tagged live:1"), "{screen}");

    // A failing build ends the view with the failed step marked and its output kept.
    std::fs::write(p.join("Dockerfile"), "FROM busybox\nRUN echo last-words; exit 4\n").unwrap();
    let out = build_in_pty(&d, &p);
    let screen = text(&out.stdout);
    assert!(!out.status.success(), "{screen}");
    assert!(screen.contains("FAILED") && screen.contains("=> ERROR [2/2] RUN echo last-words"), "{screen}");
    assert!(screen.contains("exit code: 4"), "{screen}");
}
