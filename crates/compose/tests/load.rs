//! The compose model end to end: real files on disk loaded through `model::load`, merged,
//! interpolated, validated and normalised; `config` output checked against the schema and
//! loaded again; every bad input the issue names reported with file, line and key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_compose::ComposeError;
use berth_compose::model::{self, Condition, DeviceCount, LoadOptions, Project, VolumeType, schema};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn opts(dir: &Path) -> LoadOptions {
    LoadOptions { working_dir: dir.to_path_buf(), resolve_paths: true, ..Default::default() }
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A temp project: `files` written under a fresh directory.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn load_err(files: &[(&str, &str)]) -> String {
    let dir = project(files);
    model::load(&opts(dir.path())).unwrap_err().to_string()
}

/// `to_yaml()` validates against the schema and loads back to the same project.
fn round_trip(p: &Project, o: &LoadOptions) {
    let yaml = p.to_yaml().unwrap();
    let value: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
    if let Err(f) = schema::validate(&value) {
        panic!("config output breaks the schema at {:?}: {}\n{yaml}", f.path, f.message);
    }
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("printed.yaml");
    std::fs::write(&printed, &yaml).unwrap();
    let again = model::load(&LoadOptions {
        files: vec![printed],
        project_directory: Some(p.working_dir.clone()),
        env_files: vec![],
        ..o.clone()
    })
    .unwrap_or_else(|e| panic!("config output does not load again: {e}\n{yaml}"));
    assert_eq!(again.to_yaml().unwrap(), yaml);
    let active = |p: &Project| -> BTreeMap<String, model::Service> {
        p.active_services().into_iter().map(|s| (s.name.clone(), s.clone())).collect()
    };
    assert_eq!(active(&again), active(p));
    // config shows only what the services use, as compose does.
    let used = p.without_unused_resources();
    assert_eq!(again.networks, used.networks);
    assert_eq!(again.volumes, used.volumes);
    assert_eq!(again.secrets, used.secrets);
    assert_eq!(again.configs, used.configs);
    assert_eq!(again.extensions, p.extensions);
    assert_eq!(again.name, p.name);
}

#[test]
fn full_example_covers_every_key() {
    let dir = data("full");
    let o = LoadOptions {
        environment: env(&[("FROM_SHELL", "shell value"), ("API_KEY", "k"), ("HOME", "/home/u")]),
        profiles: vec!["cache".into()],
        ..opts(&dir)
    };
    let p = model::load(&o).unwrap();
    assert_eq!(p.name, "fullproject");
    assert_eq!(p.working_dir, dir);
    assert_eq!(p.config_files, vec![dir.join("compose.yaml")]);
    let names: Vec<&str> = p.services.keys().map(String::as_str).collect();
    assert_eq!(names, ["web", "db", "migrate", "cache", "inline"], "file order kept");

    let web = p.service("web").unwrap();
    assert_eq!(web.name, "web");
    let b = web.build.as_ref().unwrap();
    assert_eq!(b.context, dir.join("app").to_string_lossy());
    assert_eq!(b.dockerfile.as_deref(), Some("Dockerfile"));
    assert_eq!(b.args.get("VERSION"), Some(&Some("1.0".into())));
    assert_eq!(b.args.get("EMPTY_ARG"), None, "no value, none in the environment: left out");
    assert_eq!(b.target.as_deref(), Some("runtime"));
    assert_eq!(b.ssh, ["default"]);
    assert_eq!(b.secrets[0].source, "build_token");
    assert_eq!(b.network.as_deref(), Some("host"));
    assert_eq!(web.command.as_deref().unwrap(), ["python", "-m", "http.server", "8000", "--bind", "0.0.0.0"]);
    assert_eq!(web.entrypoint.as_deref().unwrap(), ["/usr/bin/env"]);
    // environment wins over env_file; a bare name comes from the process environment.
    assert_eq!(web.environment["MODE"].as_deref(), Some("production"));
    assert_eq!(web.environment["FILE_ONLY"].as_deref(), Some("only in the file"));
    assert_eq!(web.environment["FROM_SHELL"].as_deref(), Some("shell value"));
    assert!(web.env_file.is_empty(), "merged into environment, then dropped as compose does");
    // Ports: one entry per port, ranges expanded.
    type PortRow<'a> = (Option<&'a str>, u16, Option<&'a str>, &'a str, &'a str);
    let ports: Vec<PortRow> = web
        .ports
        .iter()
        .map(|p| (p.host_ip.as_deref(), p.target, p.published.as_deref(), p.protocol.as_str(), p.mode.as_str()))
        .collect();
    assert_eq!(
        ports,
        [
            (None, 8000, Some("8000"), "tcp", "ingress"),
            (Some("127.0.0.1"), 9000, Some("9000"), "udp", "ingress"),
            (Some("127.0.0.1"), 9001, Some("9001"), "udp", "ingress"),
            (Some("127.0.0.1"), 8443, Some("8443"), "tcp", "host"),
        ]
    );
    assert_eq!(web.expose, ["3000", "3001"]);
    let v = &web.volumes;
    assert_eq!(
        (v[0].kind, v[0].source.as_deref(), v[0].read_only),
        (VolumeType::Bind, Some(&*dir.join("static").to_string_lossy()), true)
    );
    assert!(v[0].bind.as_ref().unwrap().create_host_path);
    assert_eq!((v[1].kind, v[1].source.as_deref()), (VolumeType::Volume, Some("data")));
    assert_eq!(
        (v[2].kind, v[2].source.as_deref(), v[2].target.as_str()),
        (VolumeType::Volume, None, "/var/cache/anon")
    );
    assert_eq!(v[3].kind, VolumeType::Tmpfs);
    assert_eq!(v[3].tmpfs.as_ref().unwrap().size, Some(model::Bytes(64 << 20)));
    assert_eq!(v[3].tmpfs.as_ref().unwrap().mode, Some(0o1777));
    assert!(!v[4].bind.as_ref().unwrap().create_host_path);
    assert_eq!(v[5].volume.as_ref().unwrap().subpath.as_deref(), Some("sub"));
    let front = web.networks["front"].as_ref().unwrap();
    assert_eq!(front.aliases, ["www", "site"]);
    assert_eq!(front.ipv4_address.as_deref(), Some("172.28.0.10"));
    assert_eq!(web.networks["back"], None);
    assert_eq!(web.depends_on["db"].condition, Condition::ServiceHealthy);
    assert!(web.depends_on["db"].restart);
    assert_eq!(web.depends_on["migrate"].condition, Condition::ServiceCompletedSuccessfully);
    assert!(!web.depends_on["cache"].required);
    let h = web.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, ["CMD-SHELL", "curl -fsS http://localhost:8000/ || exit 1"]);
    assert_eq!(h.start_period.unwrap().0, std::time::Duration::from_secs(90));
    assert_eq!(h.retries, Some(3));
    assert_eq!(web.restart.as_deref(), Some("unless-stopped"), "from the anchor");
    assert_eq!(web.logging.as_ref().unwrap().options["max-file"], "3");
    assert_eq!(web.user.as_deref(), Some("1000:1000"));
    assert_eq!(web.labels["org.example.empty"], "");
    assert_eq!((web.init, web.tty, web.stdin_open), (Some(true), Some(true), Some(true)));
    assert_eq!(web.stop_grace_period.unwrap().to_string(), "20s");
    assert_eq!(web.secrets[1].target.as_deref(), Some("/run/secrets/api"));
    let d = web.deploy.as_ref().unwrap();
    assert_eq!(d.replicas, Some(2));
    assert_eq!((web.replicas(), p.service("db").unwrap().replicas()), (2, 1));
    let limits = d.resources.limits.as_ref().unwrap();
    assert_eq!((limits.cpus, limits.memory, limits.pids), (Some(0.5), Some(model::Bytes(512 << 20)), Some(100)));
    let dev = &d.resources.reservations.as_ref().unwrap().devices[0];
    assert_eq!(
        (dev.driver.as_deref(), dev.device_ids.as_slice()),
        (Some("cdi"), &["vendor.com/device=0".to_string()][..])
    );

    let db = p.service("db").unwrap();
    assert_eq!(db.environment["POSTGRES_PASSWORD_FILE"].as_deref(), Some("/run/secrets/db_password"));
    assert_eq!(db.ulimits["nproc"], model::Ulimit { soft: 65535, hard: 65535 });
    assert_eq!(db.shm_size, Some(model::Bytes(256 << 20)));
    let inline = p.service("inline").unwrap();
    assert_eq!(inline.gpus[0].count, Some(DeviceCount::All));
    assert!(inline.build.as_ref().unwrap().dockerfile_inline.as_deref().unwrap().starts_with("FROM busybox"));
    assert_eq!(inline.networks.keys().collect::<Vec<_>>(), ["default"], "no networks: the default one");
    let cache = p.service("cache").unwrap();
    assert_eq!(cache.network_mode.as_deref(), Some("service:db"));
    assert!(cache.depends_on["db"].restart, "network_mode: service:db is a dependency, as compose writes it");
    assert_eq!(inline.build.as_ref().unwrap().dockerfile, None, "dockerfile_inline: no default Dockerfile");
    assert_eq!(p.service("migrate").unwrap().volumes_from, ["db:ro"]);
    assert!(!p.service("migrate").unwrap().depends_on["db"].restart);
    assert!(p.service("migrate").unwrap().extensions.contains_key("x-note"));
    assert_eq!(p.secrets["db_password"].name.as_deref(), Some("fullproject_db_password"));

    assert_eq!(p.networks["default"].name, "fullproject_default");
    assert_eq!(p.networks["front"].name, "fullproject_front");
    assert_eq!(p.networks["outside"].name, "shared-outside");
    assert!(p.networks["outside"].external);
    assert_eq!(p.volumes["data"].name, "fullproject_data");
    assert_eq!(p.volumes["legacy"].name, "preexisting-volume");
    assert_eq!(p.volumes["db-data"].labels["org.example.vol"], "db");
    assert_eq!(p.secrets["db_password"].file.as_deref(), Some(&*dir.join("secrets/db_password.txt").to_string_lossy()));
    assert_eq!(p.configs["inline_config"].content.as_deref(), Some("key=value\n"));
    assert!(p.extensions.contains_key("x-common"));

    // db and migrate before web; cache (needs db) before web; inline anywhere.
    let order = p.dependency_order(&[], false).unwrap();
    let pos = |s: &str| order.iter().position(|x| *x == s).unwrap();
    assert!(
        pos("db") < pos("migrate")
            && pos("migrate") < pos("web")
            && pos("db") < pos("cache")
            && pos("cache") < pos("web")
    );
    assert!(p.to_yaml().unwrap().contains("restart: \"no\""), "quoted for YAML 1.1 readers, as compose does");
    round_trip(&p, &o);
}

#[test]
fn every_data_project_loads_and_round_trips() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut seen = 0;
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let o = LoadOptions {
            environment: env(&[("FROM_SHELL", "shell value"), ("API_KEY", "k")]),
            profiles: vec!["*".into()],
            ..opts(&entry.path())
        };
        let p = model::load(&o).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        round_trip(&p, &o);
        seen += 1;
    }
    assert!(seen >= 3);
}

#[test]
fn layered_project() {
    let dir = data("layered");
    let p = model::load(&LoadOptions { environment: env(&[("API_PORT", "1234")]), ..opts(&dir) }).unwrap();
    assert_eq!(p.config_files, [dir.join("compose.yaml"), dir.join("compose.override.yaml")]);
    let api = p.service("api").unwrap();
    // From the library file, its paths relative to it.
    assert_eq!(api.build.as_ref().unwrap().context, dir.join("lib/py").to_string_lossy());
    assert_eq!(api.working_dir.as_deref(), Some("/app"));
    let sources: Vec<_> = api.volumes.iter().map(|v| v.source.clone().unwrap()).collect();
    assert_eq!(sources, [dir.join("lib/cache").to_string_lossy(), dir.join("src").to_string_lossy()]);
    // The anchor, then the override file.
    assert_eq!(api.restart.as_deref(), Some("on-failure"));
    assert_eq!(api.environment["LOG_LEVEL"].as_deref(), Some("debug"));
    assert_eq!(api.ports.len(), 1, "!override replaced the ports");
    assert_eq!(api.ports[0].published.as_deref(), Some("9090"));
    // The included sub-project.
    assert!(p.service("worker").is_some());
    assert_eq!(p.volumes["jobs"].name, "layered_jobs");
    assert_eq!(p.dependency_order(&[], true).unwrap(), ["worker", "api"]);
    assert_eq!(p.dependency_order(&["debug".into()], true).unwrap(), ["worker", "api", "debug"]);
}

#[test]
fn tutorial_project() {
    let dir = data("tutorial");
    let p = model::load(&opts(&dir)).unwrap();
    assert_eq!(p.name, "tutorial");
    let m = p.service("mymodel").unwrap();
    assert_eq!(m.build.as_ref().unwrap().context, dir.to_string_lossy());
    assert_eq!(m.volumes[0].kind, VolumeType::Bind);
    assert_eq!(m.volumes[0].source.as_deref(), Some("/home/user/modelDir"));
    assert_eq!(m.environment["JUPYTER_ENABLE_LAB"].as_deref(), Some("yes"));
    assert!(p.to_yaml().unwrap().contains("JUPYTER_ENABLE_LAB: \"yes\""));
}

#[test]
fn unset_variables_warn_and_go_blank() {
    let dir = project(&[("compose.yaml", "services:\n  a:\n    image: busybox:${TAG}\n")]);
    let p = model::load(&opts(dir.path())).unwrap();
    assert_eq!(p.service("a").unwrap().image.as_deref(), Some("busybox:"));
    assert_eq!(p.warnings, ["The \"TAG\" variable is not set. Defaulting to a blank string."]);
}

#[test]
fn obsolete_version_warns_and_a_service_without_body_fails() {
    let dir = project(&[("compose.yaml", "version: '3.8'\nservices:\n  a:\n    image: busybox\n  b:\n")]);
    let e = model::load(&opts(dir.path())).unwrap_err().to_string();
    assert_eq!(e, "compose.yaml: line 5: services.b: must be a mapping");
    let dir = project(&[("compose.yaml", "version: '3.8'\nservices:\n  a:\n    image: busybox\n")]);
    let p = model::load(&opts(dir.path())).unwrap();
    assert_eq!(
        p.warnings,
        [
            "compose.yaml: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"
        ]
    );
    assert!(!p.to_yaml().unwrap().contains("version"));
}

#[test]
fn dot_env_env_file_and_process_env() {
    let files = [
        (
            "compose.yaml",
            "services:\n  a:\n    image: ${IMAGE}\n    environment:\n      WHO: ${WHO:-nobody}\n      BOTH: $$literal-${BOTH}\n",
        ),
        (".env", "IMAGE=busybox:dotenv\nWHO=dotenv\nBOTH=dotenv\nCOMPOSE_PROJECT_NAME=fromdotenv\n"),
        ("other.env", "IMAGE=busybox:other\n"),
    ];
    let dir = project(&files);
    let p = model::load(&LoadOptions { environment: env(&[("BOTH", "process")]), ..opts(dir.path()) }).unwrap();
    let a = p.service("a").unwrap();
    assert_eq!(a.image.as_deref(), Some("busybox:dotenv"));
    assert_eq!(a.environment["WHO"].as_deref(), Some("dotenv"));
    assert_eq!(a.environment["BOTH"].as_deref(), Some("$literal-process"), "process env wins, $$ is a dollar");
    assert!(p.to_yaml().unwrap().contains("BOTH: $$literal-process"), "config prints a dollar as $$");
    round_trip(&p, &LoadOptions { environment: env(&[("BOTH", "process")]), ..opts(dir.path()) });
    assert_eq!(p.name, "fromdotenv");
    // --env-file replaces .env.
    let p = model::load(&LoadOptions { env_files: vec!["other.env".into()], ..opts(dir.path()) }).unwrap();
    assert_eq!(p.service("a").unwrap().image.as_deref(), Some("busybox:other"));
    assert_eq!(p.service("a").unwrap().environment["WHO"].as_deref(), Some("nobody"));
    // A missing --env-file is an error.
    let e = model::load(&LoadOptions { env_files: vec!["nope.env".into()], ..opts(dir.path()) }).unwrap_err();
    assert!(e.to_string().contains("nope.env"), "{e}");
}

#[test]
fn project_name_rules() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("My_App.v2");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("compose.yaml"), "services:\n  a:\n    image: busybox\n").unwrap();
    assert_eq!(model::load(&opts(&sub)).unwrap().name, "my_appv2", "directory name normalised");
    std::fs::write(sub.join("compose.yaml"), "name: From-File\nservices:\n  a:\n    image: busybox\n").unwrap();
    assert_eq!(model::load(&opts(&sub)).unwrap().name, "from-file");
    let o = LoadOptions { environment: env(&[("COMPOSE_PROJECT_NAME", "envname")]), ..opts(&sub) };
    assert_eq!(model::load(&o).unwrap().name, "envname");
    let o = LoadOptions { project_name: Some("flag".into()), ..o };
    assert_eq!(model::load(&o).unwrap().name, "flag");
    // The name is known to the files' own variables.
    std::fs::write(
        sub.join("compose.yaml"),
        "name: ${N:-From-Var}\nservices:\n  a:\n    image: busybox\n    container_name: c-${COMPOSE_PROJECT_NAME}\n",
    )
    .unwrap();
    let p = model::load(&opts(&sub)).unwrap();
    assert_eq!((p.name.as_str(), p.service("a").unwrap().container_name.as_deref()), ("from-var", Some("c-from-var")));
    let o = LoadOptions { project_name: Some("Bad Name".into()), ..opts(&sub) };
    assert_eq!(
        model::load(&o).unwrap_err().to_string(),
        "invalid project name \"Bad Name\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
    );
}

#[test]
fn discovery_override_files_and_f_order() {
    let files = [
        (
            "docker-compose.yml",
            "services:\n  a:\n    image: base\n    environment: [A=1, B=1]\n    ports: ['8080:80']\n    command: [one]\n",
        ),
        (
            "docker-compose.override.yml",
            "services:\n  a:\n    environment:\n      B: 2\n    ports: ['8081:81']\n    command: [two]\n",
        ),
        ("extra.yaml", "services:\n  a:\n    image: extra\n  b:\n    image: busybox\n"),
    ];
    let dir = project(&files);
    // Discovery from a sub-directory finds the file in the parent, plus its override.
    let sub = dir.path().join("deep/er");
    std::fs::create_dir_all(&sub).unwrap();
    let p = model::load(&opts(&sub)).unwrap();
    assert_eq!(p.config_files, [dir.path().join("docker-compose.yml"), dir.path().join("docker-compose.override.yml")]);
    assert_eq!(p.working_dir, dir.path());
    let a = p.service("a").unwrap();
    assert_eq!(a.environment["A"].as_deref(), Some("1"));
    assert_eq!(a.environment["B"].as_deref(), Some("2"));
    assert_eq!(a.ports.iter().map(|p| p.target).collect::<Vec<_>>(), [80, 81]);
    assert_eq!(a.command.as_deref().unwrap(), ["two"]);
    // -f in order: later files win; no override discovery.
    let o = LoadOptions { files: vec!["extra.yaml".into(), "docker-compose.yml".into()], ..opts(dir.path()) };
    let p = model::load(&o).unwrap();
    assert_eq!(p.service("a").unwrap().image.as_deref(), Some("base"));
    assert!(p.service("b").is_some());
    let o = LoadOptions { files: vec!["docker-compose.yml".into(), "extra.yaml".into()], ..opts(dir.path()) };
    assert_eq!(model::load(&o).unwrap().service("a").unwrap().image.as_deref(), Some("extra"));
    // COMPOSE_FILE with COMPOSE_PATH_SEPARATOR.
    let o = LoadOptions {
        environment: env(&[("COMPOSE_FILE", "docker-compose.yml;extra.yaml"), ("COMPOSE_PATH_SEPARATOR", ";")]),
        ..opts(dir.path())
    };
    let p = model::load(&o).unwrap();
    assert_eq!(p.config_files.len(), 2);
    assert_eq!(p.service("a").unwrap().image.as_deref(), Some("extra"));
    // Nothing to find.
    let empty = tempfile::tempdir().unwrap();
    let found_above = empty.path().ancestors().any(|d| model::DEFAULT_FILES.iter().any(|f| d.join(f).is_file()));
    if !found_above {
        let e = model::load(&opts(empty.path())).unwrap_err();
        assert!(matches!(e, ComposeError::NoComposeFile { .. }));
        assert_eq!(e.to_string(), "no configuration file provided: not found");
    }
}

#[test]
fn stdin_file_and_json_output() {
    let dir = project(&[("x.txt", "data\n")]);
    let o = LoadOptions {
        files: vec!["-".into()],
        stdin: Some(
            "services:\n  a:\n    image: busybox\n    volumes: ['./x.txt:/x']\n    command: echo $$HOME\n".into(),
        ),
        ..opts(dir.path())
    };
    let p = model::load(&o).unwrap();
    assert_eq!(p.working_dir, dir.path(), "stdin: the working directory is the project's");
    assert_eq!(
        p.service("a").unwrap().volumes[0].source.as_deref(),
        Some(&*dir.path().join("x.txt").to_string_lossy())
    );
    let json: serde_json::Value = serde_json::from_str(&p.to_json().unwrap()).unwrap();
    assert_eq!(json["services"]["a"]["command"], serde_json::json!(["echo", "$$HOME"]));
    assert_eq!(json["name"], p.name.as_str());
    let e = model::load(&LoadOptions { stdin: Some("services:\n  a:\n    imgae: x\n".into()), ..o }).unwrap_err();
    assert_eq!(e.to_string(), "-: line 3: services.a: additional properties 'imgae' not allowed");
}

#[test]
fn reset_and_override_tags() {
    let files = [
        (
            "compose.yaml",
            "services:\n  app:\n    image: myapp\n    ports: ['8080:80']\n    environment:\n      FOO: BAR\n      KEEP: x\n    labels: {a: b}\n    command: [sleep, '1']\n",
        ),
        (
            "compose.override.yaml",
            "services:\n  app:\n    image: myapp\n    ports: !reset []\n    environment:\n      FOO: !reset null\n    labels: !override {c: d}\n    command: !reset\n",
        ),
    ];
    let dir = project(&files);
    let p = model::load(&opts(dir.path())).unwrap();
    let app = p.service("app").unwrap();
    assert!(app.ports.is_empty());
    assert_eq!(app.environment.keys().collect::<Vec<_>>(), ["KEEP"]);
    assert_eq!(app.labels, BTreeMap::from([("c".to_string(), "d".to_string())]));
    assert_eq!(app.command, None);
    // !reset in the same file drops what an anchor merged in.
    let dir = project(&[(
        "compose.yaml",
        "x-base: &base\n  image: busybox\n  ports: ['80:80']\nservices:\n  a:\n    <<: *base\n    ports: !reset []\n",
    )]);
    let p = model::load(&opts(dir.path())).unwrap();
    assert!(p.service("a").unwrap().ports.is_empty());
    assert_eq!(p.service("a").unwrap().image.as_deref(), Some("busybox"));
}

#[test]
fn extends_same_file_other_file_and_chains() {
    let files = [
        (
            "compose.yaml",
            "services:\n  base:\n    image: busybox\n    user: root\n    environment: {TZ: utc, PORT: '80'}\n    volumes: ['common:/var/lib/backup/data:rw']\n    security_opt: ['label:role:ROLE']\n  common:\n    extends: base\n  cli:\n    extends:\n      service: common\n    environment: {PORT: '8080'}\n    volumes: ['cli:/var/lib/backup/data:ro']\n    security_opt: ['label:user:USER']\n  remote:\n    extends:\n      file: lib/base.yaml\n      service: worker\nvolumes:\n  common:\n  cli:\n",
        ),
        (
            "lib/base.yaml",
            "services:\n  worker:\n    build: ./ctx\n    env_file: worker.env\n    volumes: ['./data:/data']\n",
        ),
        ("lib/ctx/Dockerfile", "FROM busybox\n"),
        ("lib/worker.env", "W=1\n"),
    ];
    let dir = project(&files);
    let p = model::load(&opts(dir.path())).unwrap();
    let cli = p.service("cli").unwrap();
    assert_eq!(cli.user.as_deref(), Some("root"), "through two levels");
    assert_eq!(cli.environment["PORT"].as_deref(), Some("8080"));
    assert_eq!(cli.environment["TZ"].as_deref(), Some("utc"));
    assert_eq!(cli.volumes.len(), 1, "volumes merged by target");
    assert_eq!((cli.volumes[0].source.as_deref(), cli.volumes[0].read_only), (Some("cli"), true));
    assert_eq!(cli.security_opt, ["label:role:ROLE", "label:user:USER"]);
    // Relative paths of an extended file are relative to that file.
    let remote = p.service("remote").unwrap();
    let lib = dir.path().join("lib");
    assert_eq!(remote.build.as_ref().unwrap().context, lib.join("ctx").to_string_lossy());
    assert_eq!(remote.volumes[0].source.as_deref(), Some(&*lib.join("data").to_string_lossy()));
    assert_eq!(remote.environment["W"].as_deref(), Some("1"));

    let e = load_err(&[("compose.yaml", "services:\n  a:\n    image: x\n    extends: nope\n")]);
    assert!(e.starts_with("compose.yaml: line 4: services.a.extends: cannot extend service \"a\" in /"), "{e}");
    assert!(e.ends_with(": service \"nope\" not found"), "{e}");
    let e = load_err(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    extends: b\n  b:\n    image: x\n    extends: a\n",
    )]);
    assert!(e.starts_with("extends cycle detected: a -> b -> a"), "{e}");
}

#[test]
fn include_loads_a_sub_project() {
    let files = [
        (
            "compose.yaml",
            "include:\n  - sub/compose.yaml\nservices:\n  web:\n    image: busybox\n    depends_on: [db]\n",
        ),
        ("sub/compose.yaml", "services:\n  db:\n    image: ${DB_IMAGE}\n    volumes: ['./data:/data']\n"),
        ("sub/.env", "DB_IMAGE=postgres:sub\n"),
    ];
    let dir = project(&files);
    let p = model::load(&opts(dir.path())).unwrap();
    let db = p.service("db").unwrap();
    assert_eq!(db.image.as_deref(), Some("postgres:sub"), "the included project's own .env");
    assert_eq!(db.volumes[0].source.as_deref(), Some(&*dir.path().join("sub/data").to_string_lossy()));
    assert_eq!(p.dependency_order(&["web".into()], true).unwrap(), ["db", "web"]);

    let e = load_err(&[
        ("compose.yaml", "include: [sub.yaml]\nservices:\n  db:\n    image: x\n"),
        ("sub.yaml", "services:\n  db:\n    image: y\n"),
    ]);
    assert_eq!(e, "compose.yaml: line 3: services.db: conflicts with imported resource");
    let e = load_err(&[("compose.yaml", "include: [a.yaml]\nservices: {}\n"), ("a.yaml", "include: [compose.yaml]\n")]);
    assert!(e.starts_with("include cycle detected: "), "{e}");
}

#[test]
fn profiles() {
    // The Compose Specification's illustrative example, case by case.
    let text = "services:\n  foo:\n    image: foo\n  bar:\n    image: bar\n    profiles: [test]\n  baz:\n    image: baz\n    depends_on: [bar]\n    profiles: [test]\n  zot:\n    image: zot\n    depends_on: [bar]\n    profiles: [debug]\n";
    let dir = project(&[("compose.yaml", text)]);
    let with = |profiles: &[&str]| LoadOptions {
        profiles: profiles.iter().map(|p| p.to_string()).collect(),
        ..opts(dir.path())
    };
    let names = |p: &Project| p.active_services().iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let undefined = "service \"zot\" depends on undefined service \"bar\"";

    let none = model::load(&with(&[])).unwrap();
    assert_eq!(names(&none), ["foo"]);
    assert!(!none.to_yaml().unwrap().contains("bar:"), "config shows enabled services only");
    assert_eq!(names(&model::load(&with(&["test"])).unwrap()), ["foo", "bar", "baz"]);
    let e = model::load(&with(&["debug"])).unwrap_err().to_string();
    assert_eq!(e, format!("compose.yaml: line 13: services.zot.depends_on.bar: {undefined}: invalid compose project"));
    assert_eq!(names(&model::load(&with(&["debug", "test"])).unwrap()), ["foo", "bar", "baz", "zot"]);
    assert_eq!(names(&model::load(&with(&["*"])).unwrap()), ["foo", "bar", "baz", "zot"]);
    // Naming a service enables its profiles; what it needs comes along when enabled.
    assert_eq!(none.dependency_order(&["bar".into()], true).unwrap(), ["bar"]);
    assert_eq!(none.dependency_order(&["baz".into()], true).unwrap(), ["bar", "baz"]);
    let e = none.dependency_order(&["zot".into()], true).unwrap_err().to_string();
    assert!(e.starts_with(undefined), "{e}");
    let test = model::load(&with(&["test"])).unwrap();
    assert_eq!(test.dependency_order(&["zot".into()], true).unwrap(), ["bar", "zot"]);
    assert_eq!(test.dependency_order(&["zot".into()], false).unwrap(), ["zot"], "--no-deps");
    assert_eq!(test.dependency_order(&[], true).unwrap(), ["foo", "bar", "baz"]);
    // COMPOSE_PROFILES when no --profile.
    let p = model::load(&LoadOptions { environment: env(&[("COMPOSE_PROFILES", "debug, test")]), ..opts(dir.path()) })
        .unwrap();
    assert_eq!(p.profiles, ["debug", "test"]);
    assert_eq!(names(&p), ["foo", "bar", "baz", "zot"]);
    assert!(matches!(p.dependency_order(&["nope".into()], true), Err(ComposeError::NoSuchService { .. })));
    // required: false on a disabled service is skipped.
    let dir = project(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_started, required: false}\n  b:\n    image: x\n    profiles: [off]\n",
    )]);
    let p = model::load(&opts(dir.path())).unwrap();
    assert_eq!(p.dependency_order(&[], true).unwrap(), ["a"]);
}

#[test]
fn relative_paths_resolve_against_the_project_directory() {
    let files = [
        (
            "compose.yaml",
            "services:\n  a:\n    build: .\n    volumes: ['./x:/x', '../up:/up']\n    env_file: conf/a.env\n    secrets: [s]\nsecrets:\n  s:\n    file: ./conf/s.txt\n",
        ),
        ("Dockerfile", "FROM busybox\n"),
        ("conf/a.env", "A=1\n"),
        ("conf/s.txt", "x\n"),
        // An override file in another directory: its paths are relative to the project.
        ("over/o.yaml", "services:\n  a:\n    volumes: ['./y:/y']\n"),
    ];
    let dir = project(&files);
    let root = dir.path();
    let o = LoadOptions { files: vec!["compose.yaml".into(), "over/o.yaml".into()], ..opts(root) };
    let p = model::load(&o).unwrap();
    let a = p.service("a").unwrap();
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    assert_eq!(a.build.as_ref().unwrap().context, s(root.to_path_buf()));
    let sources: Vec<_> = a.volumes.iter().map(|v| v.source.clone().unwrap()).collect();
    assert_eq!(sources, [s(root.join("x")), s(root.parent().unwrap().join("up")), s(root.join("y"))]);
    assert_eq!(a.environment["A"].as_deref(), Some("1"));
    assert_eq!(p.secrets["s"].file.as_deref(), Some(&*s(root.join("conf/s.txt"))));
    // --project-directory moves the base.
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("Dockerfile"), "FROM busybox\n").unwrap();
    std::fs::create_dir(elsewhere.path().join("conf")).unwrap();
    std::fs::write(elsewhere.path().join("conf/a.env"), "A=2\n").unwrap();
    std::fs::write(elsewhere.path().join("conf/s.txt"), "y\n").unwrap();
    let o = LoadOptions {
        project_directory: Some(elsewhere.path().to_path_buf()),
        files: vec!["compose.yaml".into()],
        ..opts(root)
    };
    let p = model::load(&o).unwrap();
    assert_eq!(p.service("a").unwrap().environment["A"].as_deref(), Some("2"));
    // resolve_paths off keeps them as written.
    let o = LoadOptions { resolve_paths: false, ..opts(root) };
    let p = model::load(&o).unwrap();
    assert_eq!(p.service("a").unwrap().volumes[0].source.as_deref(), Some("./x"));
}

// ---- bad input: each names the file, the line and the key ----

#[test]
fn unknown_key() {
    let e = load_err(&[("compose.yaml", "services:\n  web:\n    image: busybox\n\n    imgae: busybox\n")]);
    assert_eq!(e, "compose.yaml: line 5: services.web: additional properties 'imgae' not allowed");
    let e = load_err(&[("compose.yaml", "services:\n  web:\n    image: busybox\nvolume:\n  x:\n")]);
    assert_eq!(e, "compose.yaml: line 4: (root): additional properties 'volume' not allowed");
}

#[test]
fn bad_interpolation() {
    let e = load_err(&[(
        "compose.yaml",
        "services:\n  web:\n    image: busybox\n    environment:\n      X: ${VAR:?must be set}\n",
    )]);
    assert_eq!(
        e,
        "compose.yaml: line 5: services.web.environment.X: required variable VAR is missing a value: must be set"
    );
    let e = load_err(&[("compose.yaml", "services:\n  web:\n    image: \"busybox:${TAG\"\n")]);
    assert_eq!(
        e,
        "compose.yaml: line 3: services.web.image: invalid interpolation format \"busybox:${TAG\": you may need to escape any $ with another $"
    );
    let e = load_err(&[("compose.yaml", "services:\n  web:\n    image: busybox\n    tty: ${TTY:-maybe}\n")]);
    assert_eq!(e, "compose.yaml: line 4: services.web.tty: failed to cast to expected type: invalid boolean: maybe");
}

#[test]
fn depends_on_cycle() {
    let e = load_err(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on:\n      c:\n        condition: service_healthy\n  c:\n    image: x\n    links: [a]\n",
    )]);
    assert_eq!(e, "compose.yaml: line 4: services.a.depends_on.b: dependency cycle detected: a -> b -> c -> a");
    let e = load_err(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    depends_on:\n      ghost:\n        condition: service_started\n",
    )]);
    assert_eq!(
        e,
        "compose.yaml: line 5: services.a.depends_on.ghost: service \"a\" depends on undefined service \"ghost\": invalid compose project"
    );
}

#[test]
fn missing_build_context_fails_at_load() {
    let dir = project(&[("compose.yaml", "services:\n  web:\n    build: ./nope\n")]);
    let e = model::load(&opts(dir.path())).unwrap_err().to_string();
    let abs = dir.path().join("nope");
    assert_eq!(
        e,
        format!(
            "compose.yaml: line 3: services.web.build.context: build context {0:?} does not exist: unable to prepare context: path {0:?} not found",
            abs.to_string_lossy()
        )
    );
}

#[test]
fn other_bad_input() {
    let cases: &[(&str, &str)] = &[
        ("services:\n  web:\n    image: [x\n", "compose.yaml: line 4: did not find expected ',' or ']'"),
        ("# nothing but a comment\n", "compose.yaml: empty compose file"),
        ("services:\n", "compose.yaml: line 1: services: must be a mapping"),
        ("- a\n- b\n", "compose.yaml: line 1: top-level object must be a mapping"),
        (
            "services:\n  \"bad name\":\n    image: x\n",
            "compose.yaml: line 2: services: additional properties 'bad name' not allowed",
        ),
        (
            "services:\n  a:\n    image: x\n    depends_on:\n      b:\n        condition: service_bogus\n  b:\n    image: x\n",
            "compose.yaml: line 6: services.a.depends_on.b.condition: value must be one of 'service_started', 'service_healthy', 'service_completed_successfully'",
        ),
        (
            "services:\n  web:\n    image: x\n    ports: ['80:http']\n",
            "compose.yaml: line 4: services.web.ports.0: invalid port \"80:http\": invalid containerPort: http",
        ),
        (
            "services:\n  web:\n    image: x\n    volumes: ['data:/d']\n",
            "compose.yaml: line 4: services.web.volumes.0: service \"web\" refers to undefined volume data: invalid compose project",
        ),
        (
            "services:\n  web:\n    image: x\n    networks: [back]\n",
            "compose.yaml: line 4: services.web.networks.back: service \"web\" refers to undefined network back: invalid compose project",
        ),
        (
            "services:\n  web:\n    command: x\n",
            "compose.yaml: line 2: services.web: service \"web\" has neither an image nor a build context specified: invalid compose project",
        ),
        (
            "services:\n  web:\n    image: x\n    env_file: missing.env\n",
            "compose.yaml: line 4: services.web.env_file.0: env file ",
        ),
        (
            "services:\n  web:\n    image: x\n    healthcheck:\n      interval: soon\n",
            "compose.yaml: line 5: services.web.healthcheck.interval: time: invalid duration \"soon\"",
        ),
        (
            "services:\n  web:\n    image: x\n    mem_limit: lots\n",
            "compose.yaml: line 4: services.web.mem_limit: invalid size: 'lots'",
        ),
        (
            "services:\n  web:\n    image: x\n    ports:\n      - target: 80\n        publised: 8080\n",
            "compose.yaml: line 6: services.web.ports.0: additional properties 'publised' not allowed",
        ),
    ];
    for (text, want) in cases {
        let e = load_err(&[("compose.yaml", text)]);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn errors_name_the_right_file_among_several() {
    let files = [
        ("compose.yaml", "services:\n  web:\n    image: x\n"),
        ("compose.override.yaml", "services:\n  web:\n    environment:\n      - A=1\n    imgae: y\n"),
    ];
    let e = load_err(&files);
    assert_eq!(e, "compose.override.yaml: line 5: services.web: additional properties 'imgae' not allowed");
    // A check of the merged project points at the file that wrote the key.
    let e = load_err(&[
        ("compose.yaml", "services:\n  web:\n    image: x\n    networks: [front]\nnetworks:\n  front:\n"),
        ("compose.override.yaml", "services:\n  web:\n    volumes:\n      - ./a:/a\n      - cache:/cache\n"),
    ]);
    assert_eq!(
        e,
        "compose.override.yaml: line 5: services.web.volumes.1: service \"web\" refers to undefined volume cache: invalid compose project"
    );
}

#[test]
fn examples_under_examples_compose_load_and_round_trip() {
    // examples/compose/ is written by the compose examples work; every project in it must
    // load and print valid `config` output.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/compose");
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !model::DEFAULT_FILES.iter().any(|f| dir.join(f).is_file()) {
            continue;
        }
        let o = opts(&dir);
        let p = model::load(&o).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        round_trip(&p, &o);
    }
}
