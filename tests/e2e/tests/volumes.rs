//! Volumes end to end, through our CLI, the real docker CLI and docker-py: named volumes
//! shared by containers over time, filled from the image, refused removal while in use,
//! anonymous volumes from `VOLUME` and `-v /path` (kept by `rm`, removed by `rm -v` and
//! `run --rm`), `--volumes-from`, the local driver's mount options, survival across a
//! daemon restart, and bad input that changes nothing.

use std::os::unix::fs::MetadataExt;

use berth_e2e::{Daemon, have_docker, ok, text};

fn setup() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    d
}

fn volume_names(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = ok(&d.berth(&["volume", "ls", "-q"])).lines().map(str::to_owned).collect();
    v.sort();
    v
}

fn inspect(d: &Daemon, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(&d.berth(args))).unwrap()
}

#[track_caller]
fn fails(out: &std::process::Output, code: i32, msg: &str) {
    assert_eq!(out.status.code(), Some(code), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stderr).contains(msg), "wanted {msg:?} in: {}", text(&out.stderr));
}

#[test]
fn named_volume_outlives_containers_and_is_refused_removal_while_in_use() {
    let d = setup();
    assert_eq!(ok(&d.berth(&["volume", "create", "data"])), "data\n");
    let v = inspect(&d, &["volume", "inspect", "data"]);
    let mp = d.data_root.join("volumes/data/_data");
    assert_eq!(v[0]["Mountpoint"], mp.display().to_string());
    assert_eq!((v[0]["Driver"].as_str(), v[0]["Scope"].as_str()), (Some("local"), Some("local")));
    assert_eq!(std::fs::metadata(d.data_root.join("volumes")).unwrap().mode() & 0o7777, 0o701);
    assert_eq!(std::fs::metadata(d.data_root.join("volumes/data")).unwrap().mode() & 0o7777, 0o701);
    assert_eq!(std::fs::metadata(&mp).unwrap().mode() & 0o7777, 0o755);

    ok(&d.berth(&["run", "--rm", "-v", "data:/d", "busybox", "sh", "-c", "echo hi > /d/f"]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f"])), "hi\n");
    let out = d.berth(&["run", "--rm", "-v", "data:/d:ro", "busybox", "touch", "/d/g"]);
    assert_ne!(out.status.code(), Some(0), "a read-only volume refuses writes");
    // A volume named in -v that does not exist yet is created.
    ok(&d.berth(&["run", "--rm", "-v", "fresh:/f", "busybox", "true"]));
    assert_eq!(volume_names(&d), ["data", "fresh"]);
    let ls = ok(&d.berth(&["volume", "ls"]));
    assert!(ls.starts_with("DRIVER    VOLUME NAME\nlocal     data\n"), "{ls}");

    let id = ok(&d.berth(&["create", "--name", "holder", "-v", "data:/d", "busybox", "true"])).trim().to_owned();
    let c = inspect(&d, &["inspect", "holder"]);
    let m = &c[0]["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Name"], "data");
    assert_eq!(m["Source"], mp.display().to_string());
    assert_eq!(m["Destination"], "/d");
    assert_eq!((m["Driver"].as_str(), m["Mode"].as_str(), m["RW"].as_bool()), (Some("local"), Some("z"), Some(true)));
    assert_eq!(ok(&d.berth(&["ps", "-aq", "--no-trunc", "-f", "volume=data"])).trim(), id, "ps filters by volume");
    let out = d.berth(&["volume", "rm", "data"]);
    fails(&out, 1, &format!("Error response from daemon: remove data: volume is in use - [{id}]"));
    assert!(mp.join("f").exists(), "a refused removal keeps the data");
    let out = d.berth(&["volume", "rm", "-f", "data"]);
    fails(&out, 1, "volume is in use");
    ok(&d.berth(&["rm", "holder"]));
    assert_eq!(ok(&d.berth(&["volume", "rm", "data", "fresh"])), "data\nfresh\n");
    assert!(!d.data_root.join("volumes/data").exists());
    assert!(volume_names(&d).is_empty());
}

#[test]
fn bad_input_changes_nothing() {
    let d = setup();
    ok(&d.berth(&["volume", "create", "keep"]));
    for (args, msg) in [
        (
            vec!["volume", "create", "a"],
            "create a: volume name is too short, names should be at least two alphanumeric characters",
        ),
        (vec!["volume", "create", "-x"], "unknown shorthand flag"),
        (
            vec!["volume", "create", "bad!name"],
            "\"bad!name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
        ),
        (vec!["volume", "create", "--opt", "bogus=1", "opted"], "create opted: invalid option: \"bogus\""),
        (vec!["volume", "create", "--opt", "type=tmpfs", "opted"], "create opted: missing required option: \"device\""),
        (vec!["volume", "create", "-d", "nfsplugin", "plugged"], "error looking up volume plugin nfsplugin"),
        (vec!["volume", "inspect", "nope"], "Error response from daemon: get nope: no such volume"),
        (vec!["volume", "rm", "nope"], "Error response from daemon: get nope: no such volume"),
        (vec!["volume", "ls", "-f", "bogus=1"], "invalid filter 'bogus'"),
    ] {
        let out = d.berth(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stderr).contains(msg), "{args:?}: {}", text(&out.stderr));
    }
    ok(&d.berth(&["volume", "rm", "-f", "nope"]));
    for args in [
        vec!["run", "--rm", "-v", "x!:/d", "busybox", "true"],
        vec!["run", "--rm", "-v", "ok1:/d", "-v", "ok2:/d", "busybox", "true"],
        vec!["run", "--rm", "--volumes-from", "nosuchcontainer", "busybox", "true"],
        vec!["run", "--rm", "--mount", "type=volume,src=ok3,dst=/d,volume-opt=bogus=1", "busybox", "true"],
    ] {
        let out = d.berth(&args);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", text(&out.stderr));
    }
    assert_eq!(volume_names(&d), ["keep"], "no volume made by a refused request");
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "", "no container made by a refused request");
}

fn build_seeded(d: &Daemon) {
    let dir = d.dir_with(
        "seeded",
        "FROM busybox\n\
         RUN mkdir -p /srv/app/sub && echo seed > /srv/app/seed && chown 1234:55 /srv/app/seed && chmod 640 /srv/app/seed && chmod 750 /srv/app/sub && ln -s seed /srv/app/link\n\
         VOLUME /cache\n",
    );
    ok(&d.build_plain(&dir, &["-t", "seeded", "."]));
}

#[test]
fn new_volumes_are_filled_from_the_image_and_anonymous_ones_follow_their_container() {
    let d = setup();
    build_seeded(&d);
    assert_eq!(ok(&d.berth(&["run", "--rm", "-v", "filled:/srv/app", "seeded", "cat", "/srv/app/seed"])), "seed\n");
    let data = d.data_root.join("volumes/filled/_data");
    let md = std::fs::metadata(data.join("seed")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (1234, 55, 0o640));
    assert_eq!(std::fs::metadata(data.join("sub")).unwrap().mode() & 0o7777, 0o750);
    assert_eq!(std::fs::read_link(data.join("link")).unwrap(), std::path::Path::new("seed"));
    // Not filled again once it has content, even from another image path.
    ok(&d.berth(&["run", "--rm", "-v", "filled:/srv/app", "seeded", "rm", "/srv/app/seed"]));
    let out = ok(&d.berth(&["run", "--rm", "-v", "filled:/srv/app", "seeded", "ls", "/srv/app"]));
    assert!(!out.contains("seed\n") && out.contains("sub"), "{out}");
    // nocopy, and --mount volume-nocopy, leave a new volume empty.
    assert_eq!(ok(&d.berth(&["run", "--rm", "-v", "bare:/srv/app:nocopy", "seeded", "ls", "/srv/app"])), "");
    let m = "type=volume,src=bare2,dst=/srv/app,volume-nocopy";
    assert_eq!(ok(&d.berth(&["run", "--rm", "--mount", m, "seeded", "ls", "/srv/app"])), "");
    let m = "type=volume,src=full2,dst=/srv/app";
    assert_eq!(ok(&d.berth(&["run", "--rm", "--mount", m, "seeded", "cat", "/srv/app/seed"])), "seed\n");

    let named = volume_names(&d);
    // VOLUME /cache: an anonymous volume, kept by plain rm.
    ok(&d.berth(&["create", "--name", "a1", "seeded", "true"]));
    let c = inspect(&d, &["inspect", "a1"]);
    let m = &c[0]["Mounts"][0];
    let anon = m["Name"].as_str().unwrap().to_owned();
    assert_eq!((anon.len(), m["Destination"].as_str(), m["Type"].as_str()), (64, Some("/cache"), Some("volume")));
    let v = inspect(&d, &["volume", "inspect", &anon]);
    assert_eq!(v[0]["Labels"]["com.docker.volume.anonymous"], "");
    ok(&d.berth(&["rm", "a1"]));
    assert!(volume_names(&d).contains(&anon), "plain rm keeps anonymous volumes");
    // rm -v removes them, run --rm too; named ones stay.
    ok(&d.berth(&["create", "--name", "a2", "-v", "/extra", "-v", "filled:/srv/app", "seeded", "true"]));
    assert_eq!(volume_names(&d).len(), named.len() + 3);
    ok(&d.berth(&["rm", "-v", "a2"]));
    ok(&d.berth(&["run", "--rm", "-v", "/extra", "seeded", "true"]));
    let mut want = named.clone();
    want.push(anon.clone());
    want.sort();
    assert_eq!(volume_names(&d), want);
    // dangling filter, then prune -a removes the unused ones.
    ok(&d.berth(&["create", "--name", "user", "-v", "filled:/x", "busybox", "true"]));
    let dangling = ok(&d.berth(&["volume", "ls", "-q", "-f", "dangling=true"]));
    assert!(!dangling.contains("filled") && dangling.contains(&anon), "{dangling}");
    ok(&d.berth(&["volume", "create", "unused"]));
    let out = ok(&d.berth(&["volume", "prune", "-f"]));
    assert!(out.contains(&anon) && !out.contains("unused"), "without -a only anonymous volumes go: {out}");
    let out = ok(&d.berth(&["volume", "prune", "-a", "-f"]));
    assert!(
        out.contains("Deleted Volumes:") && out.contains("unused") && out.contains("Total reclaimed space: "),
        "{out}"
    );
    assert_eq!(volume_names(&d), ["filled"]);
}

#[test]
fn volumes_from_and_driver_mount_options() {
    let d = setup();
    ok(&d.berth(&["create", "--name", "src", "-v", "shared:/s", "-v", "/anon", "busybox", "true"]));
    ok(&d.berth(&["run", "--rm", "--volumes-from", "src", "busybox", "sh", "-c", "echo x > /s/x && echo y > /anon/y"]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "-v", "shared:/t", "busybox", "cat", "/t/x"])), "x\n");
    let out = d.berth(&["run", "--rm", "--volumes-from", "src:ro", "busybox", "touch", "/s/z"]);
    assert_ne!(out.status.code(), Some(0), "volumes-from :ro mounts read-only");
    assert_eq!(ok(&d.berth(&["run", "--rm", "--volumes-from", "src:ro", "busybox", "cat", "/anon/y"])), "y\n");
    let out = d.berth(&["run", "--rm", "--volumes-from", "src:shared", "busybox", "true"]);
    fails(&out, 125, "invalid mode: shared");

    // type=tmpfs: mounted while a container uses it, gone after.
    ok(&d.berth(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=1m,mode=0777",
        "tv",
    ]));
    let out = ok(&d.berth(&["run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts"]));
    assert!(out.starts_with("tmpfs /t tmpfs") && out.contains("size=1024k"), "{out}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&d.data_root.join("volumes/tv/_data").display().to_string()), "unmounted after use");
    // type=none,o=bind: a host directory.
    let host = d.dir.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    let dev = format!("device={}", host.display());
    ok(&d.berth(&["volume", "create", "--opt", "type=none", "--opt", &dev, "--opt", "o=bind", "bv"]));
    ok(&d.berth(&["run", "--rm", "-v", "bv:/b", "busybox", "sh", "-c", "echo bound > /b/f"]));
    assert_eq!(std::fs::read_to_string(host.join("f")).unwrap(), "bound\n");
    let v = inspect(&d, &["volume", "inspect", "bv"]);
    assert_eq!(v[0]["Options"]["o"], "bind");
}

#[test]
fn volumes_survive_a_daemon_restart() {
    let mut d = setup();
    ok(&d.berth(&["volume", "create", "--label", "team=ml", "keep"]));
    ok(&d.berth(&["run", "--rm", "-v", "keep:/k", "busybox", "sh", "-c", "echo 42 > /k/answer"]));
    let id = ok(&d.berth(&["create", "-v", "keep:/k", "busybox", "true"])).trim().to_owned();
    d.restart(false);
    let v = inspect(&d, &["volume", "inspect", "keep"]);
    assert_eq!(v[0]["Labels"]["team"], "ml");
    assert_eq!(ok(&d.berth(&["volume", "ls", "-q", "-f", "label=team=ml"])), "keep\n");
    fails(&d.berth(&["volume", "rm", "keep"]), 1, &format!("volume is in use - [{id}]"));
    ok(&d.berth(&["rm", &id]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "-v", "keep:/k", "busybox", "cat", "/k/answer"])), "42\n");
    d.restart(true);
    assert_eq!(volume_names(&d), ["keep"]);
}

#[test]
fn docker_cli_drives_volumes() {
    if !have_docker() {
        return;
    }
    let d = setup();
    assert_eq!(ok(&d.docker(&["volume", "create", "dv"])), "dv\n");
    ok(&d.docker(&["run", "--rm", "-v", "dv:/d", "busybox", "sh", "-c", "echo docker > /d/f"]));
    assert_eq!(ok(&d.docker(&["run", "--rm", "--mount", "source=dv,target=/m", "busybox", "cat", "/m/f"])), "docker\n");
    let ls = ok(&d.docker(&["volume", "ls"]));
    assert!(ls.contains("local     dv"), "{ls}");
    let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["volume", "inspect", "dv"]))).unwrap();
    assert_eq!(v[0]["Name"], "dv");
    let id = ok(&d.docker(&["create", "-v", "dv:/d", "-v", "/anon", "busybox", "true"])).trim().to_owned();
    let out = d.docker(&["volume", "rm", "dv"]);
    fails(&out, 1, &format!("remove dv: volume is in use - [{id}]"));
    let c: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", &id]))).unwrap();
    assert_eq!(c[0]["Mounts"].as_array().unwrap().len(), 2);
    ok(&d.docker(&["rm", "-v", &id]));
    assert_eq!(volume_names(&d), ["dv"], "rm -v removed the anonymous volume only");
    let out = d.docker(&["volume", "inspect", "nope"]);
    fails(&out, 1, "get nope: no such volume");
    // API 1.41, which berth speaks: moby prunes every unused volume for such a client.
    let out = ok(&d.docker(&["volume", "prune", "-f"]));
    assert!(out.contains("dv"), "{out}");
    assert!(volume_names(&d).is_empty());
}

const PY: &str = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
v = c.volumes.create("pyvol", labels={"a": "b"})
print("created", v.name, v.attrs["Labels"])
out = c.containers.run("busybox", ["sh", "-c", "echo py > /d/f; cat /d/f"], volumes={"pyvol": {"bind": "/d", "mode": "rw"}}, remove=True)
print("run", out.decode().strip())
out = c.containers.run("busybox", ["cat", "/e/f"], volumes=["pyvol:/e:ro"], remove=True)
print("again", out.decode().strip())
print("list", sorted(x.name for x in c.volumes.list()))
print("get", c.volumes.get("pyvol").attrs["Mountpoint"].endswith("/volumes/pyvol/_data"))
ctr = c.containers.create("busybox", ["true"], volumes={"pyvol": {"bind": "/d", "mode": "rw"}})
try:
    c.volumes.get("pyvol").remove()
    print("removed while in use")
except docker.errors.APIError as e:
    print("refused", e.status_code, "volume is in use" in str(e))
ctr.remove()
c.volumes.get("pyvol").remove()
try:
    c.volumes.get("pyvol")
except docker.errors.NotFound:
    print("gone")
"#;

#[test]
fn docker_py_drives_volumes() {
    let d = setup();
    let out = std::process::Command::new("python3").args(["-c", PY, &d.host()]).output().unwrap();
    let o = ok(&out);
    assert!(o.contains("created pyvol {'a': 'b'}"), "{o}");
    assert!(o.contains("run py\n") && o.contains("again py\n"), "{o}");
    assert!(o.contains("list ['pyvol']") && o.contains("get True"), "{o}");
    assert!(o.contains("refused 409 True") && o.contains("gone"), "{o}");
}
