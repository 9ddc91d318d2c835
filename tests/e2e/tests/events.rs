//! `events` and `GET /events` with our CLI, the docker CLI and docker-py: a container's
//! create/start/die/destroy (and kill, stop, pause, rename) with Docker's attributes, image
//! events, `--since`/`--until` replay, filters, and a live follower.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_e2e::{Daemon, have_docker, ok, text};

fn now_secs() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

#[test]
fn container_and_image_events_replay_filter_and_follow() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    // A live follower, started before anything happens.
    let mut follower = d
        .berth_cmd(&["events", "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let since = now_secs();
    let out = d.berth(&["run", "--name", "ev1", "--label", "team=ml", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    ok(&d.berth(&["run", "-d", "--name", "ev2", "busybox", "sleep", "600"]));
    ok(&d.berth(&["pause", "ev2"]));
    ok(&d.berth(&["unpause", "ev2"]));
    ok(&d.berth(&["rename", "ev2", "ev3"]));
    ok(&d.berth(&["stop", "-t", "1", "ev3"]));
    ok(&d.berth(&["rm", "ev1", "ev3"]));
    ok(&d.berth(&["tag", "busybox", "mybox:1"]));
    ok(&d.berth(&["rmi", "mybox:1"]));
    std::thread::sleep(Duration::from_millis(100));
    let until = now_secs();

    let out = ok(&d.berth(&["events", "--since", &since, "--until", &until]));
    let lines: Vec<&str> = out.lines().collect();
    let find = |pat: &str| lines.iter().find(|l| l.contains(pat)).copied();
    let create = find("container create").unwrap_or_else(|| panic!("{out}"));
    assert!(create.contains("image=busybox") && create.contains("name=ev1") && create.contains("team=ml"), "{create}");
    let die = find("container die").unwrap_or_else(|| panic!("{out}"));
    assert!(die.contains("exitCode=3"), "{die}");
    assert!(find("container kill").is_some_and(|l| l.contains("signal=15")), "{out}");
    assert!(find("container stop").is_some(), "{out}");
    assert!(find("container rename").is_some_and(|l| l.contains("oldName=/ev2") && l.contains("name=ev3")), "{out}");
    assert!(find("container attach").is_some(), "{out}");
    assert!(find("image tag").is_some_and(|l| l.contains("name=mybox:1")), "{out}");
    assert!(find("image untag").is_some(), "{out}");
    let actions: Vec<&str> =
        lines.iter().filter(|l| l.contains("name=ev1")).map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(actions, ["create", "attach", "start", "die", "destroy"], "{out}");
    // Each line is docker's: RFC 3339 time with nanoseconds, type, action, id, attributes.
    assert!(create.split(' ').next().unwrap().len() >= 30, "{create}");

    // Filters: one container's events, one action.
    let out = ok(&d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "container=ev1",
        "-f",
        "event=die",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.exitCode}} {{.Status}}",
    ]));
    assert_eq!(out, "container die 3 die\n");
    let out =
        ok(&d.berth(&["events", "--since", &since, "--until", &until, "-f", "type=image", "--format", "{{.Action}}"]));
    assert_eq!(out, "tag\nuntag\n", "{out}");
    let out = d.berth(&["events", "--since", &since, "--until", &until, "-f", "colour=red"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("invalid filter 'colour'"), "{}", text(&out.stderr));

    // The follower saw the same story as it happened.
    let mut r = BufReader::new(follower.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut line = String::new();
    while !seen.iter().any(|l: &String| l == "destroy ev3") {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "follower ended early: {seen:?}");
        seen.push(line.trim().to_owned());
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(&seen[..5], ["create ev1", "attach ev1", "start ev1", "die ev1", "create ev2"], "{seen:?}");
    assert!(seen.iter().any(|l| l == "pause ev2") && seen.iter().any(|l| l == "unpause ev2"), "{seen:?}");

    if have_docker() {
        let out = ok(&d.docker(&["events", "--since", &since, "--until", &until, "--filter", "event=create"]));
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.contains("container create") && out.contains("name=ev2"), "{out}");
    }
    // docker-py decodes the stream.
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
evs = list(c.events(since=float(sys.argv[2]), until=float(sys.argv[3]), decode=True, filters={"event": "destroy"}))
print(" ".join(sorted(e["Actor"]["Attributes"]["name"] for e in evs)), evs[0]["Type"], evs[0]["status"])
"#;
    let out = std::process::Command::new("python3").args(["-c", script, &d.host(), &since, &until]).output().unwrap();
    assert_eq!(ok(&out).trim(), "ev1 ev3 container destroy", "{}", text(&out.stderr));
}

#[test]
fn volume_commit_save_and_load_events() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let since = now_secs();
    ok(&d.berth(&["volume", "create", "evvol"]));
    ok(&d.berth(&["run", "--name", "evc", "-v", "evvol:/v", "busybox", "touch", "/v/x"]));
    ok(&d.berth(&["commit", "-m", "snap", "evc", "evimg:1"]));
    let tar = d.dir.path().join("evimg.tar");
    ok(&d.berth(&["save", "-o", tar.to_str().unwrap(), "evimg:1"]));
    ok(&d.berth(&["rmi", "evimg:1"]));
    ok(&d.berth(&["load", "-i", tar.to_str().unwrap()]));
    ok(&d.berth(&["rm", "evc"]));
    ok(&d.berth(&["volume", "rm", "evvol"]));
    std::thread::sleep(Duration::from_millis(100));
    let until = now_secs();
    let out = ok(&d.berth(&["events", "--since", &since, "--until", &until, "--format", "{{.Type}} {{.Action}}"]));
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "volume create",
        "volume mount",
        "volume unmount",
        "container commit",
        "image save",
        "image load",
        "volume destroy",
    ] {
        assert!(lines.contains(&want), "{want} missing from:\n{out}");
    }
    let commit = ok(&d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "event=commit",
        "--format",
        "{{.Actor.Attributes.comment}} {{.Actor.Attributes.imageRef}}",
    ]));
    assert_eq!(commit, "snap evimg:1\n");
}

#[test]
fn exec_and_health_events_and_exec_on_a_paused_container() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let since = now_secs();
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "hx",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "600",
    ]));
    let out = d.berth(&["exec", "hx", "sh", "-c", "exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    // Wait for the first health verdict.
    for _ in 0..100 {
        if ok(&d.berth(&["ps", "--format", "{{.Status}}"])).contains("(healthy)") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // `ps` filters on the verdict, as docker's does.
    let names = |f: &str| ok(&d.berth(&["ps", "-a", "-f", f, "--format", "{{.Names}}"]));
    ok(&d.berth(&["create", "--name", "nohc", "busybox", "true"]));
    assert_eq!(names("health=healthy"), "hx\n");
    assert_eq!(names("health=none"), "nohc\n");
    assert_eq!(names("health=unhealthy"), "");
    let bad = d.berth(&["ps", "-f", "health=sickly"]);
    assert!(text(&bad.stderr).contains("Unrecognised filter value for health: sickly"), "{}", text(&bad.stderr));
    ok(&d.berth(&["pause", "hx"]));
    let out = d.berth(&["exec", "hx", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is paused, unpause the container before exec"), "{}", text(&out.stderr));
    ok(&d.berth(&["unpause", "hx"]));
    std::thread::sleep(Duration::from_millis(100));
    let until = now_secs();
    let out = ok(&d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "container=hx",
        "--format",
        "{{.Action}}|{{.Actor.Attributes.exitCode}}",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    // A missing attribute prints as Go's templates print it.
    assert!(lines.contains(&"exec_create: sh -c exit 4|<no value>"), "{out}");
    assert!(lines.contains(&"exec_start: sh -c exit 4|<no value>"), "{out}");
    assert!(lines.contains(&"exec_die|4"), "{out}");
    assert!(lines.contains(&"health_status: healthy|<no value>"), "{out}");
    ok(&d.berth(&["rm", "-f", "hx"]));
}
