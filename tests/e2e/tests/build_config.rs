//! What the builder records beyond layers, and the RUN mounts beyond cache/secret/bind:
//! HEALTHCHECK, SHELL and ONBUILD in the image config (and their effect on child builds
//! and containers), `RUN --mount=type=tmpfs`, mount specs that use variables, and
//! `run --tmpfs`.

use berth_e2e::{Daemon, have_docker, ok, text};

fn build_in(d: &Daemon, dir: &std::path::Path, args: &[&str]) -> String {
    ok(&d.build_plain(dir, args))
}

#[test]
fn healthcheck_shell_and_onbuild_are_recorded_and_honoured() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let base = d.dir_with(
        "base",
        r#"FROM busybox
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "shell is $0" > /shell.txt
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q -O- http://localhost/ || exit 1
ONBUILD COPY marker.txt /from-child/
ONBUILD RUN echo "trigger ran in $(pwd)" > /trigger.txt
CMD echo base
"#,
    );
    build_in(&d, &base, &["-t", "onbase:1", "."]);
    let inspect = |img: &str, f: &str| ok(&d.berth(&["image", "inspect", "--format", f, img])).trim().to_owned();
    assert_eq!(inspect("onbase:1", "{{json .Config.Shell}}"), r#"["/bin/sh","-e","-c"]"#);
    let hc: serde_json::Value = serde_json::from_str(&inspect("onbase:1", "{{json .Config.Healthcheck}}")).unwrap();
    assert_eq!(
        hc,
        serde_json::json!({"Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
                           "Interval": 5_000_000_000i64, "Timeout": 2_000_000_000i64, "Retries": 4})
    );
    assert_eq!(
        inspect("onbase:1", "{{json .Config.OnBuild}}"),
        r#"["COPY marker.txt /from-child/","RUN echo \"trigger ran in $(pwd)\" \u003e /trigger.txt"]"#
    );
    // SHELL applied to RUN and to shell-form CMD.
    assert_eq!(ok(&d.berth(&["run", "--rm", "onbase:1", "cat", "/shell.txt"])), "shell is /bin/sh\n");
    assert_eq!(inspect("onbase:1", "{{json .Config.Cmd}}"), r#"["/bin/sh","-e","-c","echo base"]"#);
    // The docker CLI reads the same fields.
    if have_docker() {
        let out = ok(&d.docker(&["image", "inspect", "--format", "{{.Config.Healthcheck.Retries}}", "onbase:1"]));
        assert_eq!(out.trim(), "4");
    }
    // A container inherits the image's healthcheck.
    ok(&d.berth(&["create", "--name", "hc", "onbase:1"]));
    assert_eq!(ok(&d.berth(&["inspect", "--format", "{{.Config.Healthcheck.Interval}}", "hc"])).trim(), "5000000000");

    // A child build runs the triggers first, in its own context, and does not pass them on.
    let child = d.dir_with("child", "FROM onbase:1\nWORKDIR /w\nRUN echo \"child shell $0\" > /child.txt\n");
    std::fs::write(child.join("marker.txt"), "from the child's context\n").unwrap();
    let log = build_in(&d, &child, &["-t", "onchild:1", "."]);
    assert!(log.contains("Successfully tagged onchild:1"), "{log}");
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "onchild:1", "cat", "/from-child/marker.txt"])),
        "from the child's context\n"
    );
    assert_eq!(ok(&d.berth(&["run", "--rm", "onchild:1", "cat", "/trigger.txt"])), "trigger ran in /\n");
    assert_eq!(ok(&d.berth(&["run", "--rm", "onchild:1", "cat", "/child.txt"])), "child shell /bin/sh\n");
    assert_eq!(inspect("onchild:1", "{{json .Config.OnBuild}}"), "null");
    assert_eq!(inspect("onchild:1", "{{json .Config.Shell}}"), r#"["/bin/sh","-e","-c"]"#, "SHELL is inherited");
    // Rebuilding the child is fully cached, triggers included.
    let id = inspect("onchild:1", "{{.Id}}");
    build_in(&d, &child, &["-t", "onchild:1", "."]);
    assert_eq!(inspect("onchild:1", "{{.Id}}"), id);

    // HEALTHCHECK NONE disables an inherited check; a bad trigger fails the child build clearly.
    let none = d.dir_with("none", "FROM onbase:1\nHEALTHCHECK NONE\n");
    std::fs::write(none.join("marker.txt"), "x").unwrap();
    build_in(&d, &none, &["-t", "nohc:1", "."]);
    assert_eq!(inspect("nohc:1", "{{json .Config.Healthcheck.Test}}"), r#"["NONE"]"#);
    let missing = d.dir_with("missing", "FROM onbase:1\n");
    let out = d.berth_cmd(&["build", "-t", "never:1", "."]).current_dir(&missing).output().unwrap();
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("marker.txt"), "{all}");
}

#[test]
fn tmpfs_and_variable_mounts_in_run_and_tmpfs_in_containers() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with(
        "mounts",
        r#"FROM busybox
ARG CACHE_DIR=/var/cache/tool
RUN --mount=type=tmpfs,target=/scratch,size=1m \
    grep -q ' /scratch tmpfs ' /proc/mounts && echo big > /scratch/file && cat /scratch/file > /seen
RUN --mount=type=cache,target=${CACHE_DIR} \
    echo run >> ${CACHE_DIR}/count && wc -l < ${CACHE_DIR}/count > /cache-count
"#,
    );
    build_in(&d, &p, &["-t", "mounts:1", "."]);
    assert_eq!(ok(&d.berth(&["run", "--rm", "mounts:1", "cat", "/seen"])), "big\n");
    let out = d.berth(&["run", "--rm", "mounts:1", "ls", "-A", "/scratch", "/var/cache/tool"]);
    // Mounted content stays out of the image, and so do the mount targets the runtime made
    // (BuildKit removes those stubs too).
    assert_eq!(text(&out.stdout), "", "mounted content stays out of the image");
    let err = text(&out.stderr);
    assert!(err.contains("/scratch: No such file") && err.contains("/var/cache/tool: No such file"), "{err}");
    // The cache mount (its target came from a variable) persists across builds.
    build_in(&d, &p, &["--no-cache", "-t", "mounts:2", "."]);
    assert_eq!(ok(&d.berth(&["run", "--rm", "mounts:2", "cat", "/cache-count"])).trim(), "2");

    // `run --tmpfs` with Docker's defaults (noexec) and the user's options on top.
    let mounts =
        ok(&d.berth(&["run", "--rm", "--tmpfs", "/t:size=2m,mode=1770", "busybox", "grep", " /t ", "/proc/mounts"]));
    assert!(mounts.contains("tmpfs /t tmpfs rw,nosuid,nodev,noexec"), "{mounts}");
    assert!(mounts.contains("size=2048k") && mounts.contains("mode=1770"), "{mounts}");
    let m =
        ok(&d.berth(&["run", "--rm", "--mount", "type=tmpfs,target=/m", "busybox", "grep", " /m ", "/proc/mounts"]));
    assert!(m.contains("tmpfs /m tmpfs"), "{m}");
}

#[test]
fn copy_parents_and_exclude_entitlements_hosts_and_shm() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with(
        "opts",
        r#"FROM busybox
COPY --parents src/./pkg/*.py /app/
COPY --exclude=*.log --exclude=tmp logs/ /logs/
RUN grep -q 'registry.internal' /etc/hosts && df -k /dev/shm | tail -1 | awk '{print $2}' > /shm-kb
"#,
    );
    for f in ["src/pkg/a.py", "src/pkg/b.py", "src/pkg/c.txt", "logs/keep.txt", "logs/drop.log", "logs/tmp/x"] {
        let path = p.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, f).unwrap();
    }
    build_in(&d, &p, &["-t", "opts:1", "--add-host", "registry.internal:10.1.2.3", "--shm-size", "128m", "."]);
    let ls = ok(&d.berth(&["run", "--rm", "opts:1", "find", "/app", "/logs", "-type", "f"]));
    let mut files: Vec<&str> = ls.lines().collect();
    files.sort();
    assert_eq!(files, ["/app/pkg/a.py", "/app/pkg/b.py", "/logs/keep.txt"], "--parents keeps pkg/, --exclude drops");
    assert_eq!(ok(&d.berth(&["run", "--rm", "opts:1", "cat", "/shm-kb"])).trim(), "131072");

    // RUN --security=insecure needs the entitlement; with it the step is privileged.
    let ins = d.dir_with(
        "insecure",
        "FROM busybox\nRUN --security=insecure mkdir -p /m && mount -t tmpfs none /m && echo mounted\n",
    );
    let out = d.build_plain(&ins, &["-t", "ins:1", "."]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("security.insecure"), "{}", text(&out.stderr));
    let log = build_in(&d, &ins, &["-t", "ins:1", "--allow", "security.insecure", "."]);
    assert!(log.contains("mounted"), "{log}");
}

#[test]
fn deletions_in_a_step_hide_lower_files_in_the_image() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let p = d.dir_with(
        "wh",
        "FROM busybox\nRUN mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b\n\
         RUN rm /data/a && rm -r /data/sub && mkdir /data/sub && echo new > /data/sub/c && rm /bin/ls\n",
    );
    build_in(&d, &p, &["-t", "wh:1", "."]);
    let out = ok(&d.berth(&["run", "--rm", "wh:1", "sh", "-c", "find /data | sort; [ -e /bin/ls ] || echo no-ls"]));
    assert_eq!(out, "/data\n/data/sub\n/data/sub/c\nno-ls\n");
    // The layer blob carries the same deletions (whiteouts) as the snapshot.
    let history = ok(&d.berth(&["image", "inspect", "--format", "{{len .RootFS.Layers}}", "wh:1"]));
    assert_eq!(history.trim(), "3");
    let blobs = d.data_root.join("content/blobs/sha256");
    let found = std::fs::read_dir(&blobs).unwrap().flatten().any(|e| {
        let data = std::fs::read(e.path()).unwrap();
        data.windows(7).any(|w| w == b".wh.ls\0") || data.windows(6).any(|w| w == b".wh.ls")
    });
    assert!(found, "a whiteout for /bin/ls is in a layer blob");
}

#[test]
fn ssh_agent_sockets_are_forwarded_to_run_steps() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    // A listening unix socket stands in for the agent: the step sees it as a socket.
    let sock = d.dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let p = d.dir_with(
        "ssh",
        "FROM busybox\nRUN --mount=type=ssh [ -S \"$SSH_AUTH_SOCK\" ] && echo \"agent at $SSH_AUTH_SOCK\"\n\
         RUN --mount=type=ssh,id=other,required=true true\n",
    );
    // Without the agent a required mount fails clearly.
    let out = d.build_plain(&p, &["-t", "ssh:1", "--ssh", &format!("default={}", sock.display()), "."]);
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("agent at /run/buildkit/ssh_agent.0"), "{all}");
    assert!(all.contains("no SSH agent \"other\""), "{all}");
    let out = d.build_plain(
        &p,
        &[
            "-t",
            "ssh:1",
            "--ssh",
            &format!("default={}", sock.display()),
            "--ssh",
            &format!("other={}", sock.display()),
            ".",
        ],
    );
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    // A key file is not an agent.
    let key = d.dir.path().join("id_ed25519");
    std::fs::write(&key, "not a socket").unwrap();
    let out = d.build_plain(&p, &["-t", "ssh:2", "--ssh", &format!("default={}", key.display()), "."]);
    assert!(text(&out.stderr).contains("is not an agent socket"), "{}", text(&out.stderr));
}

#[test]
fn workdir_made_under_a_user_belongs_to_that_user() {
    // BuildKit makes a WORKDIR (and its missing parents) as the stage's USER, so the user
    // can write there; directories that already existed keep their owner.
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let dir = d.dir_with(
        "wd",
        "FROM busybox\nRUN echo 'app:x:1000:1001::/home/app:/bin/sh' >> /etc/passwd\nUSER app\n\
         WORKDIR /w/x\nRUN touch mine\nUSER 2000:3000\nWORKDIR /w/x/y\nUSER root\nWORKDIR /root/z\n",
    );
    build_in(&d, &dir, &["-t", "wd:1", "."]);
    let out = ok(&d.berth(&[
        "run",
        "--rm",
        "wd:1",
        "stat",
        "-c",
        "%n %u:%g",
        "/w",
        "/w/x",
        "/w/x/mine",
        "/w/x/y",
        "/root/z",
    ]));
    assert_eq!(out, "/w 1000:1001\n/w/x 1000:1001\n/w/x/mine 1000:1001\n/w/x/y 2000:3000\n/root/z 0:0\n");
}

#[test]
fn rmi_during_a_build_leaves_the_layers_the_build_reuses() {
    // A build that reused a cached step of image `x` (and stands on busybox) keeps those
    // layers while it runs, even when `x` and busybox are removed under it.
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let x = d.dir_with("x", "FROM busybox\nWORKDIR /app\nRUN echo a > a\n");
    build_in(&d, &x, &["-t", "x:1", "."]);
    let marker = d.dir_with("y", "FROM busybox\nWORKDIR /app\nRUN touch /started && sleep 3\nRUN echo b > b\n");
    let mut child = d
        .berth_cmd(&["build", "--progress", "plain", "-t", "y:1", "."])
        .current_dir(&marker)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the sleeping step to start, then remove the images whose layers it stands on.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("RUN touch /started") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("the RUN step started");
    std::thread::sleep(std::time::Duration::from_millis(500));
    ok(&d.berth(&["rmi", "x:1"]));
    ok(&d.berth(&["rmi", "busybox:latest"]));
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    assert!(status.success(), "{log}");
    assert_eq!(ok(&d.berth(&["run", "--rm", "y:1", "cat", "/app/b"])), "b\n");
    // Once the build is over nothing holds the layers: removing y frees them all.
    ok(&d.berth(&["rmi", "y:1"]));
    assert_eq!(ok(&d.berth(&["images", "-q"])).trim(), "");
}
