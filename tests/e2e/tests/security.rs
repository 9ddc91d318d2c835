//! The security and limit flags that reach the OCI spec, seen from inside the container:
//! `--cap-add/--cap-drop` (CapEff), `--security-opt no-new-privileges` and `seccomp=`
//! (unconfined, default, a profile file), `--shm-size`, `--oom-score-adj`, `--group-add`,
//! and `--memory` exceeded: exit 137 with `State.OOMKilled: true`. With our CLI and the
//! docker CLI where the request's shape matters.

use berth_e2e::{Daemon, have_docker, ok, seccomp_deny_opt, text};

/// A `/proc/self/status` field of the container's command.
fn status_field(d: &Daemon, flags: &[&str], field: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "grep", field, "/proc/self/status"]);
    let out = ok(&d.berth(&args));
    out.split_whitespace().nth(1).unwrap_or_default().to_owned()
}

fn cap_bit(caps_hex: &str, bit: u32) -> bool {
    u64::from_str_radix(caps_hex, 16).unwrap() & (1 << bit) != 0
}

#[test]
fn security_flags_reach_the_process() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_NET_RAW: u32 = 13;
    let default = status_field(&d, &[], "CapEff");
    assert!(cap_bit(&default, CAP_NET_RAW) && !cap_bit(&default, CAP_NET_ADMIN), "{default}");
    let dropped = status_field(&d, &["--cap-drop", "NET_RAW"], "CapEff");
    assert!(!cap_bit(&dropped, CAP_NET_RAW), "{dropped}");
    let added = status_field(&d, &["--cap-add", "NET_ADMIN"], "CapEff");
    assert!(cap_bit(&added, CAP_NET_ADMIN), "{added}");
    assert_eq!(
        u64::from_str_radix(&added, 16).unwrap() & !(1 << CAP_NET_ADMIN),
        u64::from_str_radix(&default, 16).unwrap()
    );

    assert_eq!(status_field(&d, &[], "NoNewPrivs"), "0");
    assert_eq!(status_field(&d, &["--security-opt", "no-new-privileges"], "NoNewPrivs"), "1");
    assert_eq!(status_field(&d, &[], "Seccomp:"), "2");
    assert_eq!(status_field(&d, &["--security-opt", "seccomp=unconfined"], "Seccomp:"), "0");

    // A profile file that denies mkdir: the CLI sends its JSON, the kernel refuses mkdir.
    let opt = seccomp_deny_opt(d.dir.path(), "no-mkdir.json", &["mkdir", "mkdirat"]);
    let run_mkdir = |out: std::process::Output| {
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains("Operation not permitted"), "{err}");
    };
    run_mkdir(d.berth(&["run", "--rm", "--security-opt", &opt, "busybox", "mkdir", "/x"]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "busybox", "sh", "-c", "mkdir /x && echo made"])), "made\n");

    // /dev/shm size, the OOM score, extra groups.
    let df = ok(&d.berth(&["run", "--rm", "--shm-size", "16m", "busybox", "df", "-k", "/dev/shm"]));
    assert_eq!(df.lines().nth(1).and_then(|l| l.split_whitespace().nth(1)), Some("16384"), "{df}");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "--oom-score-adj", "500", "busybox", "cat", "/proc/1/oom_score_adj"])),
        "500\n"
    );
    let ids = ok(&d.berth(&["run", "--rm", "--group-add", "1234", "--group-add", "daemon", "busybox", "id", "-G"]));
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert!(ids.contains(&"1234") && ids.contains(&"1"), "{ids:?}");

    if have_docker() {
        let out = d.docker(&["run", "--rm", "--security-opt", &opt, "busybox", "mkdir", "/x"]);
        run_mkdir(out);
        let out = ok(&d.docker(&[
            "run",
            "--rm",
            "--cap-drop",
            "NET_RAW",
            "--security-opt",
            "no-new-privileges",
            "--shm-size",
            "16m",
            "--oom-score-adj",
            "500",
            "--group-add",
            "1234",
            "busybox",
            "sh",
            "-c",
            "grep -E 'CapEff|NoNewPrivs' /proc/self/status; df -k /dev/shm | tail -1; cat /proc/1/oom_score_adj; id -G",
        ]));
        let lines: Vec<&str> = out.lines().collect();
        let eff = lines[0].split_whitespace().nth(1).unwrap();
        assert!(!cap_bit(eff, CAP_NET_RAW), "{out}");
        assert!(lines[1].ends_with("\t1") || lines[1].ends_with(" 1"), "{out}");
        assert_eq!(lines[2].split_whitespace().nth(1), Some("16384"), "{out}");
        assert_eq!(lines[3], "500", "{out}");
        assert!(lines[4].split_whitespace().any(|g| g == "1234"), "{out}");
    }
}

#[test]
fn memory_limit_exceeded_is_oom_killed() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    // `tail` keeps the one endless "line" of /dev/zero in memory. Swap is limited to the
    // memory limit so the hog cannot spill into swap, where the host has any.
    let out =
        d.berth(&["run", "--name", "hog", "--memory", "32m", "--memory-swap", "32m", "busybox", "tail", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    let state = ok(&d.berth(&["inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", "hog"]));
    assert_eq!(state.trim(), "true 137");
    let mem = ok(&d.berth(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}", "hog"]));
    assert_eq!(mem.trim(), "33554432 33554432");

    // A container that stays under its limit is not marked.
    ok(&d.berth(&["run", "--name", "calm", "--memory", "32m", "busybox", "true"]));
    assert_eq!(ok(&d.berth(&["inspect", "-f", "{{.State.OOMKilled}}", "calm"])).trim(), "false");

    if have_docker() {
        let out = d.docker(&["run", "--name", "dhog", "--memory", "32m", "busybox", "tail", "/dev/zero"]);
        assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
        let state = ok(&d.docker(&["inspect", "-f", "{{.State.OOMKilled}}", "dhog"]));
        assert_eq!(state.trim(), "true");
    }
}
