//! `GET /version` and `GET /info`: what the daemon is and what it runs on, with the fields
//! Docker clients print (`docker version` shows blank API versions without Details).

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::models::{PluginsInfo, SystemInfo, SystemVersion, SystemVersionComponents, SystemVersionPlatform};

use crate::engine::Engine;
use crate::record::Status;

/// berth's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn kernel_version() -> String {
    rustix::system::uname().release().to_string_lossy().into_owned()
}

/// Docker's name for the CPU architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn cgroup_version() -> &'static str {
    // On a pure v2 host the root is cgroup2; hybrid and v1 hosts report "1" as Docker does.
    #[allow(clippy::unnecessary_cast)] // f_type's integer type differs between architectures
    match rustix::fs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.f_type as i64 == 0x6367_7270 => "2",
        _ => "1",
    }
}

/// `GET /version`.
pub fn version(_e: &Engine) -> SystemVersion {
    let mut details = HashMap::new();
    details.insert("ApiVersion".to_owned(), berth_api::API_VERSION.to_owned());
    details.insert("MinAPIVersion".to_owned(), berth_api::MIN_API_VERSION.to_owned());
    details.insert("GitCommit".to_owned(), "berth".to_owned());
    details.insert("GoVersion".to_owned(), "n/a (Rust)".to_owned());
    details.insert("Os".to_owned(), "linux".to_owned());
    details.insert("Arch".to_owned(), arch().to_owned());
    details.insert("KernelVersion".to_owned(), kernel_version());
    details.insert("Experimental".to_owned(), "false".to_owned());
    details.insert("BuildTime".to_owned(), String::new());
    SystemVersion {
        platform: Some(SystemVersionPlatform { name: "berth".to_owned() }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".to_owned(),
            version: VERSION.to_owned(),
            details: Some(details),
        }]),
        version: Some(VERSION.to_owned()),
        api_version: Some(berth_api::API_VERSION.to_owned()),
        min_api_version: Some(berth_api::MIN_API_VERSION.to_owned()),
        git_commit: Some("berth".to_owned()),
        go_version: Some("n/a (Rust)".to_owned()),
        os: Some("linux".to_owned()),
        arch: Some(arch().to_owned()),
        kernel_version: Some(kernel_version()),
        experimental: Some(false),
        build_time: Some(String::new()),
    }
}

/// `GET /info`.
pub async fn info(e: &Arc<Engine>) -> SystemInfo {
    let recs = e.records();
    // As dockerd: paused ones apart, restarting ones count as running.
    let paused = recs.iter().filter(|r| r.state.status == Status::Running && r.state.paused).count() as i64;
    let running = recs
        .iter()
        .filter(|r| matches!(r.state.status, Status::Running | Status::Restarting) && !r.state.paused)
        .count() as i64;
    let images = e.list_images(&Default::default()).await.map(|v| v.len() as i64).unwrap_or(0);
    let uts = rustix::system::uname();
    let sys = crate::engine::sysinfo::SysInfo::host();
    let mem_total = rustix::system::sysinfo().totalram as i64 * i64::from(rustix::system::sysinfo().mem_unit);
    let ncpu = std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned())))
        .unwrap_or_else(|| "Linux".to_owned());
    SystemInfo {
        id: Some(e.cfg.data_root.display().to_string()),
        containers: Some(recs.len() as i64),
        containers_running: Some(running),
        containers_paused: Some(paused),
        containers_stopped: Some(recs.len() as i64 - running - paused),
        images: Some(images),
        driver: Some("overlay2".to_owned()),
        driver_status: Some(vec![vec!["Backing Filesystem".to_owned(), "extfs".to_owned()]]),
        docker_root_dir: Some(e.cfg.data_root.display().to_string()),
        plugins: Some(PluginsInfo {
            volume: Some(vec!["local".to_owned()]),
            network: Some(vec!["none".to_owned(), "host".to_owned()]),
            authorization: None,
            log: Some(vec!["json-file".to_owned()]),
        }),
        // A unified host enforces what its cgroup root's controllers allow; v1 as before.
        memory_limit: Some(sys.memory_limit),
        swap_limit: Some(sys.unified && sys.swap_limit),
        cpu_cfs_period: Some(sys.cpu_cfs),
        cpu_cfs_quota: Some(sys.cpu_cfs),
        cpu_shares: Some(sys.cpu_shares),
        cpu_set: Some(sys.cpuset),
        pids_limit: Some(sys.pids_limit),
        oom_kill_disable: Some(false),
        ipv4_forwarding: Some(true),
        debug: Some(e.cfg.log_level == "debug"),
        nfd: Some(0),
        n_goroutines: Some(0),
        system_time: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        logging_driver: Some("json-file".to_owned()),
        cgroup_driver: Some(berth_api::models::SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(if cgroup_version() == "2" {
            berth_api::models::SystemInfoCgroupVersionEnum::_2
        } else {
            berth_api::models::SystemInfoCgroupVersionEnum::_1
        }),
        n_events_listener: Some(0),
        kernel_version: Some(kernel_version()),
        operating_system: Some(os),
        os_version: Some(String::new()),
        os_type: Some("linux".to_owned()),
        architecture: Some(std::env::consts::ARCH.to_owned()),
        ncpu: Some(ncpu),
        mem_total: Some(mem_total),
        index_server_address: Some("https://index.docker.io/v1/".to_owned()),
        name: Some(uts.nodename().to_string_lossy().into_owned()),
        labels: Some(Vec::new()),
        experimental_build: Some(false),
        server_version: Some(VERSION.to_owned()),
        default_runtime: Some("youki".to_owned()),
        live_restore_enabled: Some(true),
        isolation: Some(berth_api::models::SystemInfoIsolationEnum::DEFAULT),
        init_binary: Some(String::new()),
        security_options: Some(vec!["name=seccomp,profile=builtin".to_owned()]),
        warnings: Some(sys.info_warnings()),
        cdi_spec_dirs: Some(e.cfg.cdi_spec_dirs.iter().map(|d| d.display().to_string()).collect()),
        // Docker 28 lists the CDI devices it can inject (a few small files to read).
        discovered_devices: Some(
            berth_runtime::cdi::Registry::load(&e.cfg.cdi_spec_dirs)
                .device_names()
                .into_iter()
                .map(|id| berth_api::models::DeviceInfo { source: Some("cdi".to_owned()), id: Some(id) })
                .collect(),
        ),
        ..Default::default()
    }
}
