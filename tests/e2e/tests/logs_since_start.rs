//! `State.StartedAt` is taken before the container's process runs, so `logs --since
//! <StartedAt>` (what docker compose's `logs -f` asks for a container that starts while it
//! follows) includes the very first line the process prints.

use berth_e2e::{Daemon, have_docker, ok};

#[test]
fn logs_since_started_at_include_the_first_line() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    for i in 0..5 {
        let name = format!("first{i}");
        ok(&d.berth(&["run", "-d", "--name", &name, "busybox", "echo", "first line"]));
        ok(&d.berth(&["wait", &name]));
        let started = ok(&d.berth(&["inspect", "-f", "{{.State.StartedAt}}", &name])).trim().to_owned();
        let logs = ok(&d.berth(&["logs", "--since", &started, &name]));
        assert_eq!(logs, "first line\n", "run {i}: since {started}");
        // Restarting moves StartedAt on, and the new run's line is after it too.
        ok(&d.berth(&["start", &name]));
        ok(&d.berth(&["wait", &name]));
        let again = ok(&d.berth(&["inspect", "-f", "{{.State.StartedAt}}", &name])).trim().to_owned();
        assert_ne!(again, started);
        assert_eq!(ok(&d.berth(&["logs", "--since", &again, &name])), "first line\n", "run {i}: since {again}");
        if have_docker() {
            assert_eq!(ok(&d.docker(&["logs", "--since", &again, &name])), "first line\n", "docker, run {i}");
        }
    }
}
