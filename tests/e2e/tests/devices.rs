//! Devices and limits of a container, with our CLI and the docker CLI: CDI devices from
//! spec files the test writes (`--device vendor/class=name`, `--gpus` through a spec of kind
//! `nvidia.com/gpu`) show exactly what the spec grants; `--gpus` with no GPU spec fails as
//! Docker does; `--device` host paths get the cgroup permissions asked for; `--ulimit` and
//! daemon.json `default-ulimits` set rlimits and a limit above the daemon's is refused; bad
//! input exits 125 with Docker's words and creates nothing.

use std::collections::BTreeSet;

use berth_e2e::{Daemon, have_docker, ok, text};

/// The names of all containers, stopped ones included.
fn all_containers(d: &Daemon) -> String {
    ok(&d.berth(&["ps", "-aq"]))
}

/// Runs `args` with our CLI and expects exit 125, `want` in stderr and no container left.
fn refused(d: &Daemon, args: &[&str], want: &str) {
    refused_with(d, args, want, 125)
}

fn refused_with(d: &Daemon, args: &[&str], want: &str, code: i32) {
    let before = all_containers(d);
    let out = d.berth(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains(want), "{args:?}: want {want:?} in {}", text(&out.stderr));
    assert_eq!(all_containers(d), before, "{args:?} left a container");
}

fn docker_refused(d: &Daemon, args: &[&str], want: &str) {
    docker_refused_with(d, args, want, 125)
}

fn docker_refused_with(d: &Daemon, args: &[&str], want: &str, code: i32) {
    let before = all_containers(d);
    let out = d.docker(args);
    assert_eq!(out.status.code(), Some(code), "docker {args:?}: {}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains(want), "docker {args:?}: want {want:?} in {}", text(&out.stderr));
    assert_eq!(all_containers(d), before, "docker {args:?} left a container");
}

fn dev_names(listing: &str) -> BTreeSet<String> {
    listing.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn cdi_devices_and_gpus_grant_exactly_the_spec() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");

    // No GPU spec anywhere: Docker's error, exit 125, nothing created.
    refused(
        &d,
        &["run", "--gpus", "all", "busybox", "true"],
        "could not select device driver \"\" with capabilities: [[gpu]]",
    );

    if have_docker() {
        docker_refused(
            &d,
            &["run", "--gpus", "all", "busybox", "true"],
            "could not select device driver \"\" with capabilities: [[gpu]]",
        );
    }

    let cdi = d.dir.path().join("cdi");
    std::fs::create_dir_all(&cdi).unwrap();
    let conf = d.dir.path().join("vendor.conf");
    std::fs::write(&conf, "granted by CDI\n").unwrap();
    std::fs::write(
        cdi.join("vendor.yaml"),
        format!(
            "---\ncdiVersion: 0.5.0\nkind: vendor.com/device\ndevices:\n- name: dev0\n  containerEdits:\n    deviceNodes:\n    - path: /dev/vendor0\n      hostPath: /dev/null\n    env:\n    - VENDOR_DEVICE=dev0\n    mounts:\n    - hostPath: {}\n      containerPath: /etc/vendor.conf\n      options: [ro, nosuid, nodev, bind]\n",
            conf.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.dir.path().join("daemon.json"),
        format!(
            r#"{{"cdi-spec-dirs": ["{}"], "default-ulimits": {{"nofile": {{"Name": "nofile", "Soft": 512, "Hard": 1024}}}}}}"#,
            cdi.display()
        ),
    )
    .unwrap();
    d.restart(false);

    let plain_dev = dev_names(&ok(&d.berth(&["run", "--rm", "busybox", "ls", "/dev"])));
    let plain_env = ok(&d.berth(&["run", "--rm", "busybox", "env"]));
    let with = |cli: &str| {
        let args = ["run", "--rm", "--device", "vendor.com/device=dev0", "busybox", "sh", "-c"];
        let script = "ls /dev; echo ---; ls -l /dev/vendor0; echo ---; env; echo ---; cat /etc/vendor.conf; \
                      echo x > /dev/vendor0 && echo wrote; echo y > /etc/vendor.conf 2>/dev/null || echo read-only";
        let mut a = args.to_vec();
        a.push(script);
        if cli == "docker" { ok(&d.docker(&a)) } else { ok(&d.berth(&a)) }
    };
    let mut clis = vec!["berth"];
    if have_docker() {
        clis.push("docker");
    }
    for cli in clis {
        let out = with(cli);
        let parts: Vec<&str> = out.split("---\n").collect();
        assert_eq!(parts.len(), 4, "{cli}: {out}");
        let extra: Vec<String> = dev_names(parts[0]).difference(&plain_dev).cloned().collect();
        assert_eq!(extra, ["vendor0"], "{cli}: only the spec's node is added: {out}");
        assert!(parts[1].starts_with("crw-rw-rw-") && parts[1].contains("1,   3"), "{cli}: {}", parts[1]);
        let env_extra: Vec<&str> = parts[2]
            .lines()
            .filter(|l| !matches!(l.split('=').next(), Some("SHLVL" | "PWD")))
            .filter(|l| !plain_env.lines().any(|p| p.split('=').next() == l.split('=').next()))
            .collect();
        assert_eq!(env_extra, ["VENDOR_DEVICE=dev0"], "{cli}: {out}");
        assert_eq!(parts[3], "granted by CDI\nwrote\nread-only\n", "{cli}: {out}");
    }

    // Unknown CDI devices: the CDI wording, exit 125, nothing created.
    refused(
        &d,
        &["run", "--device", "vendor.com/device=nope", "busybox", "true"],
        "CDI device injection failed: unresolvable CDI devices vendor.com/device=nope",
    );
    if have_docker() {
        docker_refused(
            &d,
            &["run", "--device", "vendor.com/device=nope", "busybox", "true"],
            "unresolvable CDI devices vendor.com/device=nope",
        );
    }
    // Still no GPU spec: a vendor spec is not a GPU driver.
    refused(&d, &["run", "--gpus", "all", "busybox", "true"], "could not select device driver");

    // A GPU spec as nvidia-ctk writes it (JSON this time): --gpus maps to its devices.
    std::fs::write(
        cdi.join("nvidia.json"),
        r#"{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu",
            "devices":[
              {"name":"0","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia0","hostPath":"/dev/zero"}]}},
              {"name":"GPU-4a1b","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia0","hostPath":"/dev/zero"}]}},
              {"name":"all","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia0","hostPath":"/dev/zero"},
                                                            {"path":"/dev/nvidia1","hostPath":"/dev/zero"}]}}],
            "containerEdits":{"env":["NVIDIA_VISIBLE_DEVICES=void"],
                              "deviceNodes":[{"path":"/dev/nvidiactl","hostPath":"/dev/null"}],
                              "hooks":[{"hookName":"createRuntime","path":"/bin/true","args":["true"]}]}}"#,
    )
    .unwrap();
    let gpus = |flag: &str| {
        let out = ok(&d.berth(&["run", "--rm", "--gpus", flag, "busybox", "sh", "-c", "ls /dev; echo ---; env"]));
        let (devs, env) = out.split_once("---\n").unwrap();
        let extra: Vec<String> = dev_names(devs).difference(&plain_dev).cloned().collect();
        assert!(env.contains("NVIDIA_VISIBLE_DEVICES=void"), "{flag}: {env}");
        extra
    };
    assert_eq!(gpus("all"), ["nvidia0", "nvidia1", "nvidiactl"]);
    assert_eq!(gpus("1"), ["nvidia0", "nvidiactl"]);
    assert_eq!(gpus("device=GPU-4a1b"), ["nvidia0", "nvidiactl"]);
    assert_eq!(gpus("\"device=0,GPU-4a1b\""), ["nvidia0", "nvidiactl"]);
    assert_eq!(gpus("\"capabilities=compute,utility\""), ["nvidia0", "nvidiactl"]);
    refused(
        &d,
        &["run", "--gpus", "device=GPU-ffff", "busybox", "true"],
        "unresolvable CDI devices nvidia.com/gpu=GPU-ffff",
    );
    refused(&d, &["run", "--gpus", "2", "busybox", "true"], "unresolvable CDI devices nvidia.com/gpu=1");
    if have_docker() {
        let out = ok(&d.docker(&["run", "--rm", "--gpus", "all", "busybox", "ls", "/dev/nvidia1"]));
        assert_eq!(out.trim(), "/dev/nvidia1");
    }

    // `info` shows the spec dirs and the devices found there, as Docker 28 does.
    let info = ok(&d.berth(&["system", "info", "--format", "{{json .CDISpecDirs}} {{json .DiscoveredDevices}}"]));
    assert!(info.starts_with(&format!("[\"{}\"]", cdi.display())), "{info}");
    assert!(info.contains(r#""ID":"vendor.com/device=dev0""#) && info.contains(r#""Source":"cdi""#), "{info}");

    // daemon.json default-ulimits apply unless --ulimit sets the same name.
    assert_eq!(ok(&d.berth(&["run", "--rm", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"])), "512\n1024\n");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"])),
        "100\n200\n"
    );
    assert!(d.check_findings().is_none(), "{:?}", d.check_findings());
}

#[test]
fn device_paths_ulimits_and_bad_input() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");

    // The node appears with the host's numbers. /dev/null stays writable whatever the
    // permissions, as with Docker: the default cgroup rules already allow 1:3 for the
    // container's own /dev/null, and device rules go by number, not by path.
    let o = ok(&d.berth(&["run", "--rm", "--device", "/dev/null:/dev/mynull:r", "busybox", "ls", "-l", "/dev/mynull"]));
    assert!(o.starts_with("crw-rw-rw-") && o.contains("1,   3"), "{o}");
    // A device outside the defaults (/dev/fuse, 10:229) gets exactly the access asked for:
    // with `r` an open for writing is refused by the device cgroup, with `rw` it is not.
    if std::path::Path::new("/dev/fuse").exists() {
        let open = |perm: &str| {
            d.berth(&[
                "run",
                "--rm",
                "--device",
                &format!("/dev/fuse:/dev/myfuse:{perm}"),
                "busybox",
                "sh",
                "-c",
                "exec 3</dev/myfuse && echo read; exec 4>/dev/myfuse && echo wrote",
            ])
        };
        let out = open("r");
        assert_eq!(text(&out.stdout), "read\n", "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("Operation not permitted"), "{}", text(&out.stderr));
        assert_eq!(ok(&open("rw")), "read\nwrote\n");
        // --device-cgroup-rule allows a device by number: one made with mknod inside.
        let script = "mknod /tmp/f c 10 229 && exec 3</tmp/f && echo opened";
        let out = d.berth(&["run", "--rm", "busybox", "sh", "-c", script]);
        assert!(text(&out.stderr).contains("Operation not permitted"), "{}", text(&out.stderr));
        assert_eq!(
            ok(&d.berth(&["run", "--rm", "--device-cgroup-rule", "c 10:229 rm", "busybox", "sh", "-c", script])),
            "opened\n"
        );
    }
    refused(
        &d,
        &["run", "--device-cgroup-rule", "c 10:229", "busybox", "true"],
        "invalid argument \"c 10:229\" for \"--device-cgroup-rule\" flag: invalid device cgroup format 'c 10:229'",
    );
    // Full access by default, and a directory of devices adds each node under it.
    assert_eq!(
        ok(&d.berth(&[
            "run",
            "--rm",
            "--device",
            "/dev/zero:/dev/z",
            "busybox",
            "sh",
            "-c",
            "echo x > /dev/z && echo ok"
        ])),
        "ok\n"
    );
    let net = d.dir.path().join("devdir");
    std::fs::create_dir_all(&net).unwrap();
    for (n, src) in [("a", "/dev/null"), ("b", "/dev/zero")] {
        let st = std::fs::metadata(src).unwrap();
        use std::os::unix::fs::MetadataExt;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            net.join(n),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            st.rdev(),
        )
        .unwrap();
    }
    let listing = ok(&d.berth(&[
        "run",
        "--rm",
        "--device",
        &format!("{}:/dev/extra", net.display()),
        "busybox",
        "ls",
        "/dev/extra",
    ]));
    assert_eq!(listing, "a\nb\n");

    // --ulimit sets soft and hard; above the daemon's own hard limit is refused at create.
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn"])),
        "1024\n2048\n"
    );
    let own = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum.unwrap_or(u64::MAX);
    if own < 1048576 {
        refused(&d, &["run", "--ulimit", "nofile=1048576", "busybox", "true"], "above the daemon's own hard limit");
    }

    // Bad input: Docker's words, exit 125, nothing created.
    refused(&d, &["run", "--memory", "1k", "busybox", "true"], "Minimum memory limit allowed is 6MB");
    refused(&d, &["run", "--device", "/dev/null:/dev/x:rwx", "busybox", "true"], "bad mode specified: rwx");
    refused(&d, &["run", "--device", "/dev/null:dev/x", "busybox", "true"], "dev/x is not an absolute path");
    refused(&d, &["run", "--device", "/a:/b:r:w", "busybox", "true"], "bad format for path: /a:/b:r:w");
    // The docker CLI exits 127 when a failed run's error says "no such file or directory".
    refused_with(
        &d,
        &["run", "--device", "/dev/nosuch-berth", "busybox", "true"],
        "error gathering device information while adding custom device \"/dev/nosuch-berth\": no such file or directory",
        127,
    );
    refused(&d, &["run", "--device", "/etc/hostname", "busybox", "true"], "not a device node");
    refused(
        &d,
        &["run", "--ulimit", "nofile", "busybox", "true"],
        "invalid argument \"nofile\" for \"--ulimit\" flag: invalid ulimit argument: nofile",
    );
    refused(&d, &["run", "--ulimit", "nofile=a", "busybox", "true"], "strconv.ParseInt: parsing \"a\": invalid syntax");
    refused(&d, &["run", "--ulimit", "bogus=1", "busybox", "true"], "invalid ulimit type: bogus");
    refused(
        &d,
        &["run", "--ulimit", "nofile=3:2", "busybox", "true"],
        "ulimit soft limit must be less than or equal to hard limit: 3 > 2",
    );
    if have_docker() {
        docker_refused(&d, &["run", "--memory", "1k", "busybox", "true"], "Minimum memory limit allowed is 6MB");
        docker_refused_with(
            &d,
            &["run", "--device", "/dev/nosuch-berth", "busybox", "true"],
            "error gathering device information while adding custom device",
            127,
        );
        if own < 1048576 {
            docker_refused(
                &d,
                &["run", "--ulimit", "nofile=1048576", "busybox", "true"],
                "above the daemon's own hard limit",
            );
        }
        // The docker CLI sends --device and --ulimit in its own shapes; the container gets them.
        let out = ok(&d.docker(&[
            "run",
            "--rm",
            "--device",
            "/dev/zero:/dev/myzero:r",
            "--ulimit",
            "nofile=1024:2048",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn; ls -l /dev/myzero",
        ]));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[..2], ["1024", "2048"], "{out}");
        assert!(lines[2].starts_with("crw-rw-rw-") && lines[2].contains("1,   5"), "{out}");
        if std::path::Path::new("/dev/fuse").exists() {
            let out = ok(&d.docker(&[
                "run",
                "--rm",
                "--device",
                "/dev/fuse:/dev/myfuse:r",
                "busybox",
                "sh",
                "-c",
                "exec 3</dev/myfuse && echo read; (exec 4>/dev/myfuse) 2>/dev/null || echo refused",
            ]));
            assert_eq!(out, "read\nrefused\n");
        }
    }
}

#[test]
fn cdi_spec_dir_flag_and_cdi_feature() {
    let specs = tempfile::Builder::new().prefix("be2ecdi").tempdir_in("/tmp").unwrap();
    std::fs::write(
        specs.path().join("vendor.json"),
        r#"{"cdiVersion":"0.6.0","kind":"vendor.com/device",
            "devices":[{"name":"dev0","containerEdits":{"env":["FROM_FLAG_DIR=1"]}}]}"#,
    )
    .unwrap();
    let dir = specs.path().to_str().unwrap();
    let mut d = Daemon::start_with(&["--cdi-spec-dir", dir]);
    d.import_busybox("busybox:latest");
    let info = ok(&d.berth(&["system", "info", "--format", "{{json .CDISpecDirs}}"]));
    assert_eq!(info.trim(), format!("[\"{dir}\"]"));
    let env = ok(&d.berth(&["run", "--rm", "--device", "vendor.com/device=dev0", "busybox", "env"]));
    assert!(env.contains("FROM_FLAG_DIR=1"), "{env}");

    let conf = d.dir.path().join("daemon.json");
    // features.cdi = false: no CDI driver at all, as dockerd 28 says it.
    std::fs::write(&conf, r#"{"features": {"cdi": false}}"#).unwrap();
    d.restart(false);
    assert_eq!(ok(&d.berth(&["system", "info", "--format", "{{json .CDISpecDirs}}"])).trim(), "[]");
    refused(
        &d,
        &["run", "--device", "vendor.com/device=dev0", "busybox", "true"],
        r#"could not select device driver "cdi" with capabilities: []"#,
    );
    if have_docker() {
        docker_refused(
            &d,
            &["run", "--device", "vendor.com/device=dev0", "busybox", "true"],
            r#"could not select device driver "cdi" with capabilities: []"#,
        );
    }
}

/// `ip` on the host, for the dummy interface a CDI spec hands to a container.
fn ip(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip").args(args).output().expect("run ip")
}

#[test]
fn cdi_net_devices_move_a_host_interface_and_intel_rdt_needs_resctrl() {
    let mut d = Daemon::start();
    d.import_busybox("busybox:latest");
    // A veth pair named after this test's daemon, so parallel tests never share it (this
    // kernel has no dummy driver); one end goes into the container.
    let tag: String = d.bridge[2..].chars().take(10).collect();
    let (host_if, peer) = (format!("cdi{tag}a"), format!("cdi{tag}b"));
    let cdi = d.dir.path().join("cdi");
    std::fs::create_dir_all(&cdi).unwrap();
    std::fs::write(
        cdi.join("net.json"),
        format!(
            r#"{{"cdiVersion":"1.1.0","kind":"vendor.com/net",
                "devices":[{{"name":"nic","containerEdits":{{"netDevices":[{{"hostInterfaceName":"{host_if}","name":"ctr0"}}]}}}},
                           {{"name":"rdt","containerEdits":{{"intelRdt":{{"closID":"berth-test"}}}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(d.dir.path().join("daemon.json"), format!(r#"{{"cdi-spec-dirs": ["{}"]}}"#, cdi.display())).unwrap();
    d.restart(false);

    // The host interface does not exist yet: refused at create, nothing made.
    refused(
        &d,
        &["run", "--device", "vendor.com/net=nic", "busybox", "true"],
        &format!("network device \"{host_if}\" not found on the host"),
    );
    let made = ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &peer]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    // Not with the host's network namespace.
    refused(
        &d,
        &["run", "--network", "host", "--device", "vendor.com/net=nic", "busybox", "true"],
        "netDevices need the container's own network namespace",
    );
    // Inside, the interface is there under its new name, and up; the host no longer has it.
    let out =
        ok(&d.berth(&["run", "--rm", "--device", "vendor.com/net=nic", "busybox", "sh", "-c", "ip -o link show ctr0"]));
    assert!(out.contains(": ctr0@") && out.contains(",UP"), "{out}");
    // A virtual interface dies with the container's namespace (physical ones go back to the
    // host), and a veth's peer with it.
    let mut gone = false;
    for _ in 0..50 {
        if !ip(&["link", "show", &peer]).status.success() {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if !gone {
        let _ = ip(&["link", "del", &peer]);
    }
    assert!(gone, "{peer} still on the host after the container ended");
    assert!(!ip(&["link", "show", &host_if]).status.success(), "{host_if} came back to the host");

    // intelRdt goes to the runtime only where the host has resctrl.
    if !std::path::Path::new("/sys/fs/resctrl/schemata").exists() {
        refused(
            &d,
            &["run", "--device", "vendor.com/net=rdt", "busybox", "true"],
            "intelRdt edits need the resctrl filesystem",
        );
    }
}
