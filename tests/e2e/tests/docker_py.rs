//! docker-py, a real third-party client, against berth: it builds a small busybox project
//! through `POST /build` (tar upload), runs the image and reads its logs.

use berth_e2e::{Daemon, ok, repo_root, text};

const SCRIPT: &str = r#"
import sys, docker
client = docker.DockerClient(base_url=sys.argv[1])
assert client.ping()
image, logs = client.images.build(path=sys.argv[2], dockerfile="stats.dockerfile", tag="csvstats:py", rm=True)
steps = [l["stream"] for l in logs if "stream" in l and l["stream"].startswith("Step ")]
print("steps", len(steps))
out = client.containers.run("csvstats:py", ["--column", "3"], user="0:0", remove=True)
print(out.decode().strip().splitlines()[-1])
c = client.containers.run("busybox", ["sh", "-c", "echo from-py"], detach=True)
print("exit", c.wait()["StatusCode"], c.logs().decode().strip())
c.remove()
print("tags", image.tags)
"#;

#[test]
fn docker_py_builds_runs_and_reads_logs() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, &d.host(), repo_root().join("tests/e2e/fixtures/csvstats").to_str().unwrap()])
        .output()
        .unwrap();
    let o = ok(&out);
    assert!(o.contains("steps 12"), "{o}\n{}", text(&out.stderr));
    assert!(o.contains("saved /app/out/summary.txt"), "{o}");
    assert!(o.contains("exit 0 from-py"), "{o}");
    assert!(o.contains("tags ['csvstats:py']"), "{o}");
}
