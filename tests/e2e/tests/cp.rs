//! `cp` and the archive API with our CLI, the docker CLI and docker-py: files and
//! directories both ways, `-` both ways, docker's path rules and wording, running and
//! stopped containers, bind mounts — and the escapes: symlinks in the container to `/`,
//! `/etc` or `../../..`, a link swapped in a loop while cp runs (CVE-2018-15664), files a
//! copier might load (CVE-2019-14271). Each attack is performed, and the host is checked
//! to have gained or given nothing.

use std::path::Path;
use std::process::Command;

use berth_e2e::{Daemon, have_docker, ok, run_with_stdin, text};

/// A running container `name` with a few files and links to copy.
fn fixture(d: &Daemon, name: &str) {
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo one > /d/a && echo two > /d/sub/b && echo hi > /f && ln -s /d /dl && sleep 1000",
    ]));
    // The command above has run once `/dl` exists.
    for _ in 0..100 {
        if d.berth(&["cp", &format!("{name}:/dl"), "-"]).status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("fixture never became ready");
}

fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn cp_out_and_in_with_our_cli_and_dockers() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    fixture(&d, "c1");
    let w = d.dir.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    let ws = w.to_str().unwrap();

    // Out: a file, a directory (new name), a directory's content (`/.`), into an existing dir.
    ok(&d.berth(&["cp", "c1:/f", &format!("{ws}/f")]));
    assert_eq!(read(&w.join("f")), "hi\n");
    ok(&d.berth(&["cp", "c1:/d", &format!("{ws}/dnew")]));
    assert_eq!(read(&w.join("dnew/sub/b")), "two\n");
    std::fs::create_dir(w.join("exists")).unwrap();
    ok(&d.berth(&["cp", "c1:/d", &format!("{ws}/exists")]));
    assert_eq!(read(&w.join("exists/d/a")), "one\n");
    ok(&d.berth(&["cp", "c1:/d/.", &format!("{ws}/content")]));
    assert_eq!(read(&w.join("content/a")), "one\n");
    // A symlink is copied as a link, or followed with -L.
    ok(&d.berth(&["cp", "c1:/dl", &format!("{ws}/link")]));
    assert_eq!(std::fs::read_link(w.join("link")).unwrap(), Path::new("/d"));
    ok(&d.berth(&["cp", "-L", "c1:/dl", &format!("{ws}/followed")]));
    assert_eq!(read(&w.join("followed/a")), "one\n");
    // `-` streams a tar out.
    let out = d.berth(&["cp", "c1:/d", "-"]);
    let names = tar_names(&out.stdout);
    assert!(names.contains(&"d/".to_owned()) && names.contains(&"d/sub/b".to_owned()), "{names:?}");

    // In: a file, a directory into a directory, a tar on stdin.
    std::fs::create_dir_all(w.join("up/in")).unwrap();
    std::fs::write(w.join("up/x"), "x\n").unwrap();
    std::fs::write(w.join("up/in/y"), "y\n").unwrap();
    ok(&d.berth(&["cp", &format!("{ws}/up/x"), "c1:/tmp/x"]));
    ok(&d.berth(&["cp", &format!("{ws}/up"), "c1:/tmp/"]));
    let tar = Command::new("tar").args(["-cf", "-", "-C", &format!("{ws}/up"), "."]).output().unwrap().stdout;
    ok(&run_with_stdin(d.berth_cmd(&["cp", "-", "c1:/d"]), &tar));
    let check = d.berth(&["cp", "c1:/tmp", "-"]);
    let names = tar_names(&check.stdout);
    for n in ["tmp/x", "tmp/up/x", "tmp/up/in/y"] {
        assert!(names.contains(&n.to_owned()), "{n} not in {names:?}");
    }
    let srv = tar_names(&d.berth(&["cp", "c1:/d/.", "-"]).stdout);
    assert!(srv.contains(&"./in/y".to_owned()) && srv.contains(&"./a".to_owned()), "{srv:?}");

    // Docker's errors, in docker's words.
    let e = d.berth(&["cp", "c1:/nope", ws]);
    assert_eq!(e.status.code(), Some(1));
    assert_eq!(text(&e.stderr).trim(), "Error response from daemon: Could not find the file /nope in container c1");
    let e = d.berth(&["cp", &format!("{ws}/up/x"), "c1:/missing/dir/x"]);
    assert_eq!(e.status.code(), Some(1));
    assert_eq!(
        text(&e.stderr).trim(),
        "Error response from daemon: Could not find the file /missing/dir in container c1"
    );
    let e = d.berth(&["cp", "c1:/f", "/nonexistent-berth-dir/f"]);
    assert_eq!(text(&e.stderr).trim(), "invalid output path: directory \"/nonexistent-berth-dir\" does not exist");
    let e = d.berth(&["cp", &format!("{ws}/up"), "c1:/f"]);
    assert_eq!(text(&e.stderr).trim(), "cannot copy directory");
    let e = run_with_stdin(d.berth_cmd(&["cp", "-", "c1:/f"]), &tar);
    assert_eq!(text(&e.stderr).trim(), "destination \"c1:/f\" must be a directory");
    let e = d.berth(&["cp", "c1:/f", "c1:/g"]);
    assert_eq!(text(&e.stderr).trim(), "copying between containers is not supported");

    if have_docker() {
        // The docker CLI drives the same API to the same results.
        let dw = w.join("docker");
        std::fs::create_dir(&dw).unwrap();
        let dws = dw.to_str().unwrap();
        ok(&d.docker(&["cp", "c1:/d", &format!("{dws}/d")]));
        assert_eq!(read(&dw.join("d/sub/b")), "two\n");
        ok(&d.docker(&["cp", "c1:/d/.", &format!("{dws}/c")]));
        assert_eq!(read(&dw.join("c/a")), "one\n");
        ok(&d.docker(&["cp", "-L", "c1:/dl", &format!("{dws}/l")]));
        assert_eq!(read(&dw.join("l/a")), "one\n");
        ok(&d.docker(&["cp", &format!("{ws}/up"), "c1:/dock"]));
        ok(&run_with_stdin(d.docker_cmd(&["cp", "-", "c1:/dock"]), &tar));
        let names = tar_names(&d.docker(&["cp", "c1:/dock", "-"]).stdout);
        assert!(names.contains(&"dock/in/y".to_owned()) && names.contains(&"dock/x".to_owned()), "{names:?}");
        let e = d.docker(&["cp", "c1:/nope", dws]);
        assert!(text(&e.stderr).contains("Could not find the file /nope in container c1"), "{}", text(&e.stderr));
        let e = d.docker(&["cp", &format!("{ws}/up/x"), "c1:/missing/dir/x"]);
        assert!(
            text(&e.stderr).contains("Could not find the file /missing/dir in container c1"),
            "{}",
            text(&e.stderr)
        );
    }

    // A stopped container: the root is mounted for the copy and unmounted after.
    ok(&d.berth(&["stop", "-t", "1", "c1"]));
    ok(&d.berth(&["cp", "c1:/tmp/up/in/y", &format!("{ws}/y-stopped")]));
    assert_eq!(read(&w.join("y-stopped")), "y\n");
    ok(&d.berth(&["cp", &format!("{ws}/up/x"), "c1:/after-stop"]));
    assert!(tar_names(&d.berth(&["cp", "c1:/after-stop", "-"]).stdout).contains(&"after-stop".to_owned()));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // `containers/` itself is a mount the daemon keeps (the parent of container roots).
    let parent = d.data_root.join("containers");
    let left: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| std::path::Path::new(m).starts_with(&d.data_root) && std::path::Path::new(m) != parent)
        .collect();
    assert!(left.is_empty(), "a copy left a mount behind: {left:?}");
    // A created, never started container too.
    ok(&d.berth(&["create", "--name", "fresh", "busybox", "true"]));
    ok(&d.berth(&["cp", &format!("{ws}/up/x"), "fresh:/x"]));
    assert_eq!(tar_names(&d.berth(&["cp", "fresh:/x", "-"]).stdout), ["x"]);
    // It starts afterwards with what was copied in.
    ok(&d.berth(&["start", "c1"]));
    ok(&d.berth(&["cp", "c1:/after-stop", &format!("{ws}/after")]));
    assert_eq!(read(&w.join("after")), "x\n");
}

#[test]
fn cp_archive_mode_owns_files_as_the_container_user() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "owned", "--user", "1234:5678", "busybox", "sleep", "1000"]));
    let f = d.dir.path().join("mine");
    std::fs::write(&f, "m\n").unwrap();
    std::os::unix::fs::chown(&f, Some(42), Some(43)).unwrap();
    let owner = |path: &str| {
        let out = d.berth(&["cp", &format!("owned:{path}"), "-"]);
        let mut a = tar::Archive::new(&out.stdout[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        (e.header().uid().unwrap(), e.header().gid().unwrap())
    };
    // Without -a the tar's owner is kept (as dockerd does); with -a the container user's.
    ok(&d.berth(&["cp", f.to_str().unwrap(), "owned:/tmp/plain"]));
    assert_eq!(owner("/tmp/plain"), (42, 43));
    ok(&d.berth(&["cp", "-a", f.to_str().unwrap(), "owned:/tmp/archived"]));
    assert_eq!(owner("/tmp/archived"), (1234, 5678));
    if have_docker() {
        ok(&d.docker(&["cp", "-a", f.to_str().unwrap(), "owned:/tmp/docker-archived"]));
        assert_eq!(owner("/tmp/docker-archived"), (1234, 5678));
    }
    // Out of the container, files belong to whoever copies.
    let out = d.dir.path().join("back");
    ok(&d.berth(&["cp", "owned:/tmp/archived", out.to_str().unwrap()]));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), rustix::process::getuid().as_raw());
}

#[test]
fn cp_reaches_bind_mounts_and_respects_read_only() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let rw = d.dir.path().join("rw");
    let ro = d.dir.path().join("ro");
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("r"), "ro-file\n").unwrap();
    // Inside the bind source, a link that climbs out: it must resolve inside the container.
    std::os::unix::fs::symlink("../../../../../../etc", rw.join("up")).unwrap();
    let v1 = format!("{}:/data", rw.display());
    let v2 = format!("{}:/ro:ro", ro.display());
    ok(&d.berth(&["run", "-d", "--name", "bm", "-v", &v1, "-v", &v2, "busybox", "sleep", "1000"]));
    let f = d.dir.path().join("payload");
    std::fs::write(&f, "p\n").unwrap();
    ok(&d.berth(&["cp", f.to_str().unwrap(), "bm:/data/payload"]));
    assert_eq!(read(&rw.join("payload")), "p\n", "written to the bind's source");
    let out = d.berth(&["cp", "bm:/ro/r", "-"]);
    assert_eq!(tar_names(&out.stdout), ["r"]);
    let e = d.berth(&["cp", f.to_str().unwrap(), "bm:/ro/x"]);
    assert_eq!(text(&e.stderr).trim(), "Error response from daemon: mounted volume is marked read-only");
    assert!(!ro.join("x").exists());
    // /data/up → ../../../etc resolves to the container's /etc.
    let marker = format!("berth-cp-marker-{}", std::process::id());
    ok(&d.berth(&["cp", f.to_str().unwrap(), &format!("bm:/data/up/{marker}")]));
    assert!(!Path::new("/etc").join(&marker).exists(), "wrote into the host's /etc");
    assert!(tar_names(&d.berth(&["cp", &format!("bm:/etc/{marker}"), "-"]).stdout).contains(&marker));
    // The same for a stopped container, whose binds are mounted for the copy.
    ok(&d.berth(&["stop", "-t", "1", "bm"]));
    ok(&d.berth(&["cp", f.to_str().unwrap(), "bm:/data/payload2"]));
    assert_eq!(read(&rw.join("payload2")), "p\n");
    let e = d.berth(&["cp", f.to_str().unwrap(), "bm:/ro/x"]);
    assert!(!e.status.success());
    assert!(!ro.join("x").exists());
}

#[test]
fn cp_reaches_named_volumes_of_running_and_stopped_containers() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "vc", "-v", "cpvol:/vol", "busybox", "sleep", "1000"]));
    let f = d.dir.path().join("payload");
    std::fs::write(&f, "v\n").unwrap();
    ok(&d.berth(&["cp", f.to_str().unwrap(), "vc:/vol/running"]));
    ok(&d.berth(&["stop", "-t", "1", "vc"]));
    // Stopped: the volume is part of the copy's view, not the image's empty /vol.
    ok(&d.berth(&["cp", f.to_str().unwrap(), "vc:/vol/stopped"]));
    let names = tar_names(&d.berth(&["cp", "vc:/vol/.", "-"]).stdout);
    assert!(names.iter().any(|n| n.ends_with("running")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("stopped")), "{names:?}");
    // The next container using the volume sees both files.
    let out = d.berth(&["run", "--rm", "-v", "cpvol:/vol", "busybox", "ls", "/vol"]);
    assert_eq!(text(&out.stdout).split_whitespace().collect::<Vec<_>>(), ["running", "stopped"]);
}

#[test]
fn cp_never_reads_or_writes_the_host_through_container_links() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let id = std::process::id();
    // A host file the container does not have, under a directory it does have.
    let secret_dir = format!("/tmp/berth-cp-secret-{id}");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(format!("{secret_dir}/secret"), "HOST-SECRET\n").unwrap();
    let script = format!(
        "ln -s / /rootlink; ln -s /etc /etclink; ln -s ../../../.. /up; ln -s {secret_dir} /hostlink; \
         mkdir -p /lib/x86_64-linux-gnu /usr/lib; \
         for l in libnss_files.so.2 libnss_dns.so.2 libc.so.6; do echo 'touch /tmp/pwned-{id}' > /lib/x86_64-linux-gnu/$l; done; \
         printf '#!/bin/sh\\ntouch /tmp/pwned-{id}\\n' > /bin/tar; chmod +x /bin/tar; cp /bin/tar /bin/gzip; cp /bin/tar /bin/xz; \
         sleep 1000"
    );
    ok(&d.berth(&["run", "-d", "--name", "evil", "busybox", "sh", "-c", &script]));
    let payload = d.dir.path().join("payload");
    std::fs::write(&payload, "payload\n").unwrap();
    let p = payload.to_str().unwrap();
    for _ in 0..100 {
        if d.berth(&["cp", "evil:/hostlink", "-"]).status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let marker = format!("berth-escape-{id}");
    // Writes through links to `/`, `/etc` and `../../..` land in the container.
    for dest in
        [format!("evil:/rootlink/{marker}"), format!("evil:/etclink/{marker}"), format!("evil:/up/tmp/{marker}")]
    {
        let _ = d.berth(&["cp", p, &dest]);
        if have_docker() {
            let _ = d.docker(&["cp", p, &dest]);
        }
    }
    for host in [format!("/{marker}"), format!("/etc/{marker}"), format!("/tmp/{marker}")] {
        assert!(!Path::new(&host).exists(), "cp wrote {host} on the host");
    }
    let inside = tar_names(&d.berth(&["cp", "evil:/etc/.", "-"]).stdout);
    assert!(inside.contains(&format!("./{marker}")), "{inside:?}");
    // Reads through a link to a host path get the container's view (nothing there).
    let out = d.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for src in ["evil:/hostlink/secret", "evil:/up/tmp/berth-cp-secret", "evil:/rootlink/etc/shadow"] {
        let _ = d.berth(&["cp", src, out.to_str().unwrap()]);
        let _ = d.berth(&["cp", "-L", src, out.to_str().unwrap()]);
    }
    let _ = d.berth(&["cp", "-L", "evil:/hostlink", &format!("{}/hl", out.display())]);
    let got = d.berth(&["cp", &format!("evil:/up{secret_dir}/secret"), "-"]);
    assert!(!got.status.success(), "read a host-only file through ../../..");
    assert!(!text(&got.stdout).contains("HOST-SECRET"));
    let walk = Command::new("grep").args(["-r", "HOST-SECRET", out.to_str().unwrap()]).output().unwrap();
    assert!(walk.stdout.is_empty(), "host secret copied out: {}", text(&walk.stdout));
    // What came out as links stays links inside the destination, never followed there.
    assert!(!Path::new(&format!("{secret_dir}/payload")).exists());
    // CVE-2019-14271: nothing of the container's was run or loaded by the copier.
    assert!(!Path::new(&format!("/tmp/pwned-{id}")).exists(), "the copier ran a binary from the container");
    let _ = std::fs::remove_dir_all(&secret_dir);
}

#[test]
fn cp_under_a_symlink_swapped_in_a_loop_stays_inside() {
    // CVE-2018-15664: a process in the container turns /w from a directory into a link to
    // `/` and back, as fast as it can, while the copies run.
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let id = std::process::id();
    let host_dir = format!("/tmp/berth-swap-{id}");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(format!("{host_dir}/hostonly"), "HOST\n").unwrap();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "swap",
        "busybox",
        "sh",
        "-c",
        &format!(
            "mkdir -p /tmp{host_dir}; while true; do rm -rf /w; mkdir -p /w/tmp; ln -s / /w2; mv /w2 /w 2>/dev/null; rm -rf /w; ln -s / /w; rm -f /w; done"
        ),
    ]));
    let payload = d.dir.path().join("p");
    std::fs::write(&payload, "p\n").unwrap();
    let out = d.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut wrote_inside = 0;
    for i in 0..60 {
        let name = format!("swapped-{id}-{i}");
        if d.berth(&["cp", payload.to_str().unwrap(), &format!("swap:/w/tmp/{name}")]).status.success() {
            wrote_inside += 1;
        }
        assert!(!Path::new(&format!("/tmp/{name}")).exists(), "a swapped link let cp write the host's /tmp");
        let r = d.berth(&["cp", &format!("swap:/w{host_dir}/hostonly"), "-"]);
        assert!(!text(&r.stdout).contains("HOST"), "a swapped link let cp read the host");
        let _ = d.berth(&["cp", "swap:/w", &format!("{}/w{i}", out.display())]);
    }
    let walk = Command::new("grep").args(["-r", "HOST", out.to_str().unwrap()]).output().unwrap();
    assert!(walk.stdout.is_empty(), "{}", text(&walk.stdout));
    eprintln!("{wrote_inside} of 60 copies landed while /w was a directory or a link inside");
    let _ = std::fs::remove_dir_all(&host_dir);
}

#[test]
fn export_and_diff_with_both_clis() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&[
        "run",
        "--name",
        "ch",
        "busybox",
        "sh",
        "-c",
        "echo x > /etc/x; rm /bin/cat; mkdir /new; touch /new/f",
    ]));
    let diff = ok(&d.berth(&["diff", "ch"]));
    let want = "C /bin\nD /bin/cat\nC /etc\nA /etc/x\nA /new\nA /new/f\n";
    assert_eq!(diff, want);
    if have_docker() {
        assert_eq!(ok(&d.docker(&["diff", "ch"])), want);
        assert_eq!(ok(&d.docker(&["container", "diff", "ch"])), want);
    }
    let f = d.dir.path().join("exp.tar");
    ok(&d.berth(&["export", "-o", f.to_str().unwrap(), "ch"]));
    let names = tar_names(&std::fs::read(&f).unwrap());
    assert!(names.contains(&"etc/x".to_owned()) && names.contains(&"new/f".to_owned()), "{names:?}");
    assert!(!names.contains(&"bin/cat".to_owned()));
    assert!(names.contains(&"bin/busybox".to_owned()));
    if have_docker() {
        let out = d.docker(&["export", "ch"]);
        assert_eq!(tar_names(&out.stdout), names);
    }
    // An exported root imports as an image that runs.
    ok(&run_with_stdin(d.berth_cmd(&["import", "-", "exported"]), &std::fs::read(&f).unwrap()));
    assert_eq!(ok(&d.berth(&["run", "--rm", "exported", "/bin/busybox", "cat", "/etc/x"])).trim(), "x");
    let e = d.berth(&["diff", "nosuch"]);
    assert_eq!(text(&e.stderr).trim(), "Error response from daemon: No such container: nosuch");
}

const PY: &str = r#"
import io, sys, tarfile, docker
c = docker.DockerClient(base_url=sys.argv[1]).containers.get("py")
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"from-py\n"
    i = tarfile.TarInfo("pyfile"); i.size = len(data); t.addfile(i, io.BytesIO(data))
assert c.put_archive("/tmp", buf.getvalue())
bits, stat = c.get_archive("/tmp/pyfile")
raw = b"".join(bits)
t = tarfile.open(fileobj=io.BytesIO(raw))
print(stat["name"], stat["size"], t.extractfile("pyfile").read().decode().strip())
try:
    c.get_archive("/nope")
except docker.errors.NotFound as e:
    print("notfound", e.explanation)
"#;

#[test]
fn docker_py_get_and_put_archive() {
    if Command::new("python3").args(["-c", "import docker"]).status().map(|s| !s.success()).unwrap_or(true) {
        eprintln!("docker-py is not installed; scripts/test installs it");
        return;
    }
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    ok(&d.berth(&["run", "-d", "--name", "py", "busybox", "sleep", "1000"]));
    let out = Command::new("python3").args(["-c", PY, &d.host()]).output().unwrap();
    let o = ok(&out);
    assert!(o.contains("pyfile 8 from-py"), "{o}\n{}", text(&out.stderr));
    // docker-py names the container by its id.
    assert!(o.contains("notfound Could not find the file /nope in container "), "{o}");
}
