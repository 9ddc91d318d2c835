//! Hostile Dockerfiles and archives against the builder (issue 12): a `RUN` bind mount of
//! the context reaches neither the client's directory nor what `.dockerignore` hides, an
//! ENV doubling bomb fails at its line without taking the daemon down, and an ADD'd tar
//! neither escapes its destination through a symlink nor brings device nodes.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_e2e::{Daemon, ok, text};

/// Everything a build printed.
fn output(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

/// Scratch directories the builder left under its work dir (context views, writable
/// bind copies).
fn leftovers(d: &Daemon) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(d.data_root.join("builder")) else { return Vec::new() };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ctxview-") || n.starts_with("bind-"))
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn run_bind_mounts_see_a_filtered_read_only_copy_of_the_context_and_rw_writes_vanish() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let df = "FROM busybox\n\
RUN --mount=type=bind,target=/ctx,rw sh -c 'echo pwned > /ctx/pwned && cp /bin/busybox /ctx/sid && \
chmod 4755 /ctx/sid && echo more >> /ctx/kept.txt && rm /ctx/Dockerfile && echo RW-WRITES-\"\"DONE'\n\
RUN --mount=type=bind,target=/ctx sh -c 'test ! -e /ctx/pwned && test ! -e /ctx/sid && test -e /ctx/Dockerfile && \
test \"$(cat /ctx/kept.txt)\" = kept && echo RW-WRITES-\"\"GONE'\n\
RUN --mount=type=bind,target=/ctx sh -c 'if cat /ctx/secret.txt 2>/dev/null; then echo SECRET-\"\"VISIBLE; \
else echo SECRET-\"\"HIDDEN; fi; ls -a /ctx'\n\
RUN --mount=type=bind,target=/ctx sh -c 'if touch /ctx/new 2>/dev/null; then echo MOUNT-\"\"WRITABLE; \
else echo MOUNT-READ-\"\"ONLY; fi'\n";
    let dir = d.dir_with("ctx", df);
    std::fs::write(dir.join("kept.txt"), "kept\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "s3cr3t-value\n").unwrap();
    std::fs::write(dir.join(".dockerignore"), "secret.txt\n").unwrap();
    let before = names_in(&dir);

    let out = d.build_plain(&dir, &["-t", "bindtest:1", "."]);
    let log = output(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("RW-WRITES-DONE"), "the rw step ran: {log}");
    assert!(log.contains("RW-WRITES-GONE"), "rw writes are discarded after the step: {log}");
    assert!(log.contains("SECRET-HIDDEN") && !log.contains("s3cr3t-value"), "ignored files are hidden: {log}");
    assert!(log.contains("MOUNT-READ-ONLY"), "without rw the mount is read-only: {log}");

    assert_eq!(names_in(&dir), before, "nothing appears in (or leaves) the user's directory");
    assert_eq!(std::fs::read_to_string(dir.join("kept.txt")).unwrap(), "kept\n", "the user's file is untouched");
    assert!(leftovers(&d).is_empty(), "scratch copies are removed: {:?}", leftovers(&d));
}

#[test]
fn an_env_doubling_bomb_fails_fast_at_its_line_and_the_daemon_stays_up() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let mut df = String::from("FROM busybox\nENV V0=x\n");
    for n in 1..=40 {
        df.push_str(&format!("ENV V{n}=$V{}$V{}\n", n - 1, n - 1));
    }
    let dir = d.dir_with("bomb", &df);
    let started = Instant::now();
    let out = d.build_plain(&dir, &["-t", "bomb:1", "."]);
    let log = output(&out);
    assert!(!out.status.success(), "{}", &log[..log.len().min(4000)]);
    assert!(started.elapsed() < Duration::from_secs(60), "fails fast: {:?}", started.elapsed());
    // V20 is 1 MiB, the bound; V21 (line 23) would double it.
    assert!(log.contains("Dockerfile:23"), "the line is named: {}", &log[..log.len().min(4000)]);
    assert!(log.contains("longer than 1048576 bytes"), "{}", &log[..log.len().min(4000)]);
    ok(&d.berth(&["version"]));
    ok(&d.berth(&["run", "--rm", "busybox", "true"]));
}

/// A tar holding `x -> /tmp` then `x/evil`, a character and a block device, and a file.
fn hostile_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "x", "/tmp").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(12);
    h.set_mode(0o644);
    b.append_data(&mut h, "x/evil", &b"EV1L-CONTENT"[..]).unwrap();
    for (name, kind, major, minor) in [("mem", tar::EntryType::Char, 1, 1), ("sda", tar::EntryType::Block, 8, 0)] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "ok.txt", &b"ok\n"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_of_a_hostile_tar_stays_in_its_destination_without_devices() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let df = "FROM busybox\nADD evil.tar /dest/\n\
RUN if [ -e /tmp/evil ]; then echo ESC''APED; fi; if [ -e /dest/mem ] || [ -e /dest/sda ]; then echo DEV''ICES; fi; \
cat /dest/ok.txt /dest/tmp/evil; echo; echo ADD-CHE''CKED\n";
    let dir = d.dir_with("add", df);
    std::fs::write(dir.join("evil.tar"), hostile_tar()).unwrap();
    let out = d.build_plain(&dir, &["-t", "addtest:1", "."]);
    let log = output(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("ADD-CHECKED"), "{log}");
    assert!(!log.contains("ESCAPED"), "x/evil must not land in the image's /tmp: {log}");
    assert!(!log.contains("DEVICES"), "device nodes are left out: {log}");
    assert!(log.contains("EV1L-CONTENT"), "the symlinked entry lands inside the destination: {log}");
    let ls = ok(&d.berth(&["run", "--rm", "addtest:1", "ls", "/tmp"]));
    assert!(!ls.contains("evil"), "{ls}");
}

#[test]
fn rw_bind_mounts_of_a_stage_do_not_change_what_later_steps_read() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let df = "FROM busybox AS base\nRUN mkdir -p /data && echo orig > /data/f\n\
FROM busybox\n\
RUN --mount=type=bind,from=base,source=/data,target=/d,rw sh -c 'echo CHAN''GED > /d/f && touch /d/new'\n\
RUN --mount=type=bind,from=base,source=/data,target=/d sh -c 'cat /d/f; ls /d'\n\
COPY --from=base /data /copied\n";
    let dir = d.dir_with("stagebind", df);
    let out = d.build_plain(&dir, &["-t", "stagebind:1", "."]);
    let log = output(&out);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("CHANGED"), "the rw step's write is gone in the next step: {log}");
    let ls = ok(&d.berth(&["run", "--rm", "stagebind:1", "sh", "-c", "cat /copied/f; ls /copied"]));
    assert_eq!(ls, "orig\nf\n", "COPY --from sees the stage as it was built");
    assert!(leftovers(&d).is_empty(), "scratch copies are removed: {:?}", leftovers(&d));
}

#[test]
fn a_run_step_with_a_context_bind_reruns_when_the_files_it_sees_change() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = d.dir_with("rerun", "FROM busybox\nRUN --mount=type=bind,target=/ctx cat /ctx/v.txt\n");
    std::fs::write(dir.join("v.txt"), "VALUE-ONE\n").unwrap();
    let log = output(&d.build_plain(&dir, &["-t", "rerun:1", "."]));
    assert!(log.contains("VALUE-ONE"), "{log}");
    let log = output(&d.build_plain(&dir, &["-t", "rerun:1", "."]));
    assert!(log.contains(" CACHED"), "unchanged: cached: {log}");
    std::fs::write(dir.join("v.txt"), "VALUE-TWO\n").unwrap();
    let log = output(&d.build_plain(&dir, &["-t", "rerun:1", "."]));
    assert!(log.contains("VALUE-TWO"), "a changed file reruns the step: {log}");
}
