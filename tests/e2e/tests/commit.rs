//! `commit` end to end: a container's changes (added and deleted files) become a new
//! layer over its image, `--change` instructions shape the config, author and message
//! reach inspect and history, a running container is paused only while it is read and keeps
//! running; through our CLI and the docker CLI; bad input makes no image.

use berth_e2e::{Daemon, have_docker, ok, text};

fn setup() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    d
}

fn image_count(d: &Daemon) -> usize {
    ok(&d.berth(&["images", "-q"])).lines().count()
}

#[test]
fn commit_then_run_the_new_image() {
    let d = setup();
    ok(&d.berth(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "mkdir /w && echo a > /w/a && echo b > /w/b && echo committed > /hello",
    ]));
    let id = ok(&d.berth(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/hello\"]",
        "-c",
        "ENV X=1",
        "-m",
        "first",
        "-a",
        "me <me@x>",
        "c1",
        "snap:v1",
    ]));
    assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
    assert_eq!(ok(&d.berth(&["run", "--rm", "snap:v1"])), "committed\n");
    assert_eq!(ok(&d.berth(&["run", "--rm", "snap:v1", "sh", "-c", "echo $X; ls /w"])), "1\na\nb\n");
    let v: serde_json::Value = serde_json::from_str(&ok(&d.berth(&["inspect", "snap:v1"]))).unwrap();
    assert_eq!(v[0]["Id"], id.trim());
    assert_eq!(v[0]["Author"], "me <me@x>");
    assert_eq!(v[0]["Comment"], "first");
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2, "the image's layer and one more");
    let hist = ok(&d.berth(&["history", "--no-trunc", "snap:v1"]));
    assert!(hist.contains("first"), "{hist}");

    // A deletion is carried as a whiteout: the next image lacks the file.
    ok(&d.berth(&["run", "--name", "c2", "snap:v1", "rm", "/w/a"]));
    ok(&d.berth(&["commit", "c2", "snap:v2"]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "snap:v2", "ls", "/w"])), "b\n");
    // The committed container is still whole: it starts again on its own changes (its
    // `mkdir /w` now finds the directory it made).
    let out = d.berth(&["start", "-a", "c1"]);
    assert!(text(&out.stderr).contains("can't create directory '/w': File exists"), "{}", text(&out.stderr));

    // Nothing changed: the new image has no new layer, only a history entry.
    ok(&d.berth(&["create", "--name", "c3", "busybox", "true"]));
    ok(&d.berth(&["commit", "c3", "same:1"]));
    let v: serde_json::Value = serde_json::from_str(&ok(&d.berth(&["inspect", "same:1"]))).unwrap();
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn commit_pauses_a_running_container_only_while_reading_it() {
    let d = setup();
    ok(&d.berth(&["run", "-d", "--name", "live", "busybox", "sh", "-c", "echo live > /l; exec sleep 300"]));
    for _ in 0..100 {
        if d.berth(&["commit", "--pause=false", "live", "probe:1"]).status.success()
            && text(&d.berth(&["run", "--rm", "probe:1", "cat", "/l"]).stdout) == "live\n"
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ok(&d.berth(&["commit", "live", "live:1"]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "live:1", "cat", "/l"])), "live\n");
    let v: serde_json::Value = serde_json::from_str(&ok(&d.berth(&["inspect", "live"]))).unwrap();
    assert_eq!(v[0]["State"]["Running"], true);
    let id = v[0]["Id"].as_str().unwrap();
    for state in
        [format!("/sys/fs/cgroup/freezer/berth/{id}/freezer.state"), format!("/sys/fs/cgroup/berth/{id}/cgroup.freeze")]
    {
        if let Ok(s) = std::fs::read_to_string(&state) {
            assert!(s.trim() == "THAWED" || s.trim() == "0", "{state}: {s}");
        }
    }
}

#[test]
fn docker_cli_commits_and_bad_input_makes_no_image() {
    let d = setup();
    ok(&d.berth(&["run", "--name", "c1", "busybox", "sh", "-c", "echo hi > /hello"]));
    let before = image_count(&d);
    for (args, msg) in [
        (vec!["commit", "nope", "x:1"], "No such container: nope"),
        (vec!["commit", "c1", "Bad:Ref:x"], "invalid reference format"),
        (vec!["commit", "-c", "BOGUS x", "c1", "y:1"], "BOGUS"),
    ] {
        let out = d.berth(&args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stderr).to_lowercase().contains(&msg.to_lowercase()), "{args:?}: {}", text(&out.stderr));
    }
    assert_eq!(image_count(&d), before, "a refused commit makes no image");
    if have_docker() {
        let id = ok(&d.docker(&["commit", "-c", "CMD [\"cat\", \"/hello\"]", "c1", "dsnap"]));
        assert!(id.starts_with("sha256:"), "{id}");
        assert_eq!(ok(&d.docker(&["run", "--rm", "dsnap"])), "hi\n");
        let out = d.docker(&["container", "commit", "nope"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stderr).contains("No such container: nope"), "{}", text(&out.stderr));
    }
}
