//! Precompiled seccomp filters (runtime `seccomp.rs`): the shim compiles each distinct
//! profile once into `<exec root>/seccomp/`, hands libcontainer a spec without it and loads
//! the program itself (in an init while it waits for its start, or just before execve when
//! the profile would stop that wait). The container must end exactly as libcontainer's own
//! loading left it: the capability sets, NoNewPrivs, the seccomp mode and the number of
//! filters in `/proc/1/status` below are what the libcontainer path produced (recorded on
//! this kind of host before the change), and denied syscalls stay denied.

use berth_e2e::{Daemon, ok, seccomp_deny_opt, text};

const FIELDS: &str = "Seccomp|NoNewPrivs|Cap(Eff|Prm|Bnd|Inh|Amb)";

/// The confinement fields of the container's PID 1 (the grep itself), one line.
fn status(d: &Daemon, flags: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "grep", "-E", FIELDS, "/proc/self/status"]);
    ok(&d.berth(&args)).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cached_programs(d: &Daemon) -> Vec<String> {
    match std::fs::read_dir(d.exec_root.join("seccomp")) {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Docker's default capability set (moby's `caps.DefaultCapabilities`).
const DEFAULT_CAPS: &str = "00000000a80425fb";

fn expect(caps: &str, prm_eff: &str, nnp: u8, seccomp: u8) -> String {
    let filters = if seccomp == 2 { 1 } else { 0 };
    format!(
        "CapInh: 0000000000000000 CapPrm: {prm_eff} CapEff: {prm_eff} CapBnd: {caps} CapAmb: 0000000000000000 \
         NoNewPrivs: {nnp} Seccomp: {seccomp} Seccomp_filters: {filters}"
    )
}

#[test]
fn a_precompiled_filter_leaves_the_container_as_libcontainer_did() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let file_opt = seccomp_deny_opt(d.dir.path(), "no-mkdir.json", &["mkdir", "mkdirat"]);
    // A profile that denies a call of the init's wait for its start (reading the start
    // message) is loaded just before execve instead of during that wait, so the container
    // still starts.
    let late_opt = seccomp_deny_opt(d.dir.path(), "no-recvfrom.json", &["recvfrom", "mkdir"]);
    const NONE: &str = "0000000000000000";
    let with_sys_admin = "00000000a82425fb";
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec![], expect(DEFAULT_CAPS, DEFAULT_CAPS, 0, 2)),
        (vec!["--cap-drop", "ALL"], expect(NONE, NONE, 0, 2)),
        (vec!["--cap-add", "SYS_ADMIN"], expect(with_sys_admin, with_sys_admin, 0, 2)),
        (vec!["--security-opt", "no-new-privileges"], expect(DEFAULT_CAPS, DEFAULT_CAPS, 1, 2)),
        (vec!["--security-opt", "seccomp=unconfined"], expect(DEFAULT_CAPS, DEFAULT_CAPS, 0, 0)),
        (vec!["--security-opt", &file_opt], expect(DEFAULT_CAPS, DEFAULT_CAPS, 0, 2)),
        (vec!["--security-opt", &late_opt], expect(DEFAULT_CAPS, DEFAULT_CAPS, 0, 2)),
        (vec!["--security-opt", &late_opt, "-u", "1000"], expect(DEFAULT_CAPS, NONE, 0, 2)),
        (vec!["-u", "1000"], expect(DEFAULT_CAPS, NONE, 0, 2)),
        (vec!["-u", "1000", "--security-opt", "no-new-privileges"], expect(DEFAULT_CAPS, NONE, 1, 2)),
        (vec!["--cap-drop", "ALL", "--cap-add", "SYS_ADMIN", "-u", "1000"], expect("0000000000200000", NONE, 0, 2)),
    ];
    for (flags, want) in &cases {
        assert_eq!(status(&d, flags), *want, "{flags:?}");
    }
    // --privileged has every capability the shim holds (host-dependent) and no filter.
    let privileged = status(&d, &["--privileged"]);
    let bnd = privileged.split_whitespace().skip_while(|w| *w != "CapBnd:").nth(1).unwrap();
    assert_eq!(privileged, expect(bnd, bnd, 0, 0));
    let bnd = u64::from_str_radix(bnd, 16).unwrap();
    assert_eq!(bnd & 0xa82425fb, 0xa82425fb, "{privileged}");

    // Denied syscalls stay denied: the default profile's unshare and mount, the file's mkdir.
    for cmd in [&["unshare", "-U", "true"][..], &["sh", "-c", "mount -t tmpfs x /mnt"][..]] {
        let mut args = vec!["run", "--rm", "--network", "none", "busybox"];
        args.extend_from_slice(cmd);
        let out = d.berth(&args);
        assert!(!out.status.success(), "{cmd:?} succeeded");
    }
    let out = d.berth(&["run", "--rm", "--security-opt", &file_opt, "busybox", "mkdir", "/x"]);
    assert!(!out.status.success() && text(&out.stderr).contains("Operation not permitted"), "{}", text(&out.stderr));
    // …and an exec (the same cache serves it) is confined the same way.
    ok(&d.berth(&["run", "-d", "--name", "sc", "--network", "none", "busybox", "sleep", "1000"]));
    let out = d.berth(&["exec", "sc", "unshare", "-U", "true"]);
    assert!(!out.status.success() && text(&out.stderr).contains("Operation not permitted"), "{}", text(&out.stderr));
    let init = ok(&d.berth(&["exec", "sc", "grep", "-E", FIELDS, "/proc/1/status"]));
    let exec = ok(&d.berth(&["exec", "sc", "grep", "-E", FIELDS, "/proc/self/status"]));
    assert_eq!(init, exec);
    ok(&d.berth(&["rm", "-f", "sc"]));

    // A command the filter refuses to exec: Docker's (runc's) word on stderr and status 1,
    // not a silent 255.
    let no_exec = seccomp_deny_opt(d.dir.path(), "no-execve.json", &["execve", "execveat"]);
    let out = d.berth(&["run", "--rm", "--network", "none", "--security-opt", &no_exec, "busybox", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("exec /bin/true: operation not permitted"), "{}", text(&out.stderr));
    let out = d.berth(&["run", "--rm", "--security-opt", &late_opt, "busybox", "mkdir", "/x"]);
    assert!(!out.status.success() && text(&out.stderr).contains("Operation not permitted"), "{}", text(&out.stderr));

    // One program per distinct (converted) profile: the default one for the default
    // capabilities, for none, with CAP_SYS_ADMIN, for SYS_ADMIN alone, and the three files';
    // a second run of any of them adds nothing.
    let programs = cached_programs(&d);
    assert_eq!(programs.len(), 7, "{programs:?}");
    assert!(programs.iter().all(|p| p.len() == 64 + 4 && p.ends_with(".bpf")), "{programs:?}");
    status(&d, &[]);
    assert_eq!(cached_programs(&d).len(), 7);
}

#[test]
fn a_corrupt_or_missing_cache_is_rebuilt() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let want = expect(DEFAULT_CAPS, DEFAULT_CAPS, 0, 2);
    assert_eq!(status(&d, &[]), want);
    let programs = cached_programs(&d);
    assert_eq!(programs.len(), 1, "{programs:?}");
    let path = d.exec_root.join("seccomp").join(&programs[0]);
    // A truncated program (not whole instructions) is recompiled, not loaded.
    std::fs::write(&path, b"short").unwrap();
    assert_eq!(status(&d, &[]), want);
    assert_eq!(std::fs::metadata(&path).unwrap().len() % 8, 0);
    assert!(std::fs::metadata(&path).unwrap().len() > 8);
    std::fs::remove_dir_all(d.exec_root.join("seccomp")).unwrap();
    assert_eq!(status(&d, &[]), want);
    assert_eq!(cached_programs(&d).len(), 1);
    let out = d.berth(&["run", "--rm", "--network", "none", "busybox", "unshare", "-U", "true"]);
    assert!(!out.status.success());
}
