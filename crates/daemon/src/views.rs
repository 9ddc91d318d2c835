//! Conversions from engine records to the Engine API's JSON shapes, filling the fields
//! Docker always sends (clients such as the docker CLI print blanks or fail without them).

use std::collections::HashMap;

use berth_api::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig,
    ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, DriverData, ImageConfig, ImageHistoryResponseItem,
    ImageInspect, ImageInspectMetadata, ImageInspectRootFs, ImageSummary, MountPoint, NetworkSettings,
};
use berth_image::Image;
use chrono::{DateTime, Utc};

use crate::engine::{ContainerPaths, DiskUsage, ImageUsage};
use crate::record::{ContainerRecord, Status};

/// Docker's zero time, printed for events that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Docker's `units.HumanDuration`: "Less than a second", "3 seconds", "About a minute", …
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < 1 {
        return "Less than a second".to_owned();
    }
    if secs == 1 {
        return "1 second".to_owned();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let mins = d.num_minutes();
    if mins == 1 {
        return "About a minute".to_owned();
    }
    if mins < 60 {
        return format!("{mins} minutes");
    }
    let hours = (d.num_seconds() as f64 / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".to_owned();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", hours / 24 / 365)
}

/// The `Status` column: `Up 3 minutes`, `Exited (0) 5 seconds ago`, `Created`.
pub fn status_text(rec: &ContainerRecord, now: DateTime<Utc>) -> String {
    match rec.state.status {
        Status::Running => {
            let up = format!("Up {}", human_duration(now - rec.state.started_at.unwrap_or(now)));
            if rec.state.paused { format!("{up} (Paused)") } else { up }
        }
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            rec.state.exit_code,
            human_duration(now - rec.state.finished_at.unwrap_or(now))
        ),
        Status::Exited => match rec.state.finished_at {
            Some(f) => format!("Exited ({}) {} ago", rec.state.exit_code, human_duration(now - f)),
            None => format!("Exited ({})", rec.state.exit_code),
        },
        Status::Created => "Created".to_owned(),
        Status::Removing => "Removal In Progress".to_owned(),
        Status::Dead => "Dead".to_owned(),
    }
}

fn mounts(rec: &ContainerRecord) -> Vec<MountPoint> {
    rec.binds
        .iter()
        .map(|b| MountPoint {
            typ: Some("bind".to_owned()),
            name: None,
            source: Some(b.source.display().to_string()),
            destination: Some(b.destination.clone()),
            driver: None,
            mode: Some(b.mode.clone()),
            rw: Some(!b.readonly),
            propagation: Some("rprivate".to_owned()),
        })
        .chain(rec.volumes.iter().map(|v| MountPoint {
            typ: Some("volume".to_owned()),
            name: Some(v.name.clone()),
            source: Some(v.source.display().to_string()),
            destination: Some(v.destination.clone()),
            driver: Some(v.driver.clone()),
            mode: Some(v.mode.clone()),
            rw: Some(!v.readonly),
            propagation: Some(String::new()),
        }))
        .collect()
}

fn network_mode(rec: &ContainerRecord) -> String {
    match rec.host_config.network_mode.as_deref() {
        None | Some("") | Some("default") => "bridge".to_owned(),
        Some(m) => m.to_owned(),
    }
}

/// One row of `GET /containers/json`.
pub fn container_summary(rec: &ContainerRecord, now: DateTime<Utc>) -> ContainerSummary {
    let state = match rec.state.status {
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running if rec.state.paused => ContainerSummaryStateEnum::PAUSED,
        Status::Running => ContainerSummaryStateEnum::RUNNING,
        Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
        Status::Exited => ContainerSummaryStateEnum::EXITED,
        Status::Removing => ContainerSummaryStateEnum::REMOVING,
        Status::Dead => ContainerSummaryStateEnum::DEAD,
    };
    ContainerSummary {
        id: Some(rec.id.clone()),
        names: Some(vec![format!("/{}", rec.name)]),
        image: Some(rec.image.clone()),
        image_id: Some(rec.image_id.clone()),
        command: Some(rec.command_line()),
        created: Some(rec.created.timestamp()),
        ports: Some(port_summaries(rec)),
        labels: Some(rec.config.labels.clone().unwrap_or_default()),
        state: Some(state),
        status: Some(status_text(rec, now)),
        host_config: Some(ContainerSummaryHostConfig { network_mode: Some(network_mode(rec)), ..Default::default() }),
        network_settings: Some(ContainerSummaryNetworkSettings { networks: Some(endpoint_settings(rec)) }),
        mounts: Some(mounts(rec)),
        ..Default::default()
    }
}

/// `GET /containers/{id}/json`.
pub fn container_inspect(rec: &ContainerRecord, paths: &ContainerPaths) -> ContainerInspectResponse {
    let status = match rec.state.status {
        Status::Created => ContainerStateStatusEnum::CREATED,
        Status::Running if rec.state.paused => ContainerStateStatusEnum::PAUSED,
        Status::Running => ContainerStateStatusEnum::RUNNING,
        Status::Restarting => ContainerStateStatusEnum::RESTARTING,
        Status::Exited => ContainerStateStatusEnum::EXITED,
        Status::Removing => ContainerStateStatusEnum::REMOVING,
        Status::Dead => ContainerStateStatusEnum::DEAD,
    };
    // As dockerd: a container between runs of its restart policy counts as running.
    let running = matches!(rec.state.status, Status::Running | Status::Restarting);
    let mut host_config = rec.host_config.clone();
    if host_config.network_mode.as_deref().is_none_or(str::is_empty) {
        host_config.network_mode = Some("bridge".to_owned());
    }
    // Docker always reports these; clients such as docker-py index into them.
    if host_config.log_config.as_ref().is_none_or(|l| l.typ.as_deref().is_none_or(str::is_empty)) {
        host_config.log_config = Some(berth_api::models::HostConfigLogConfig {
            typ: Some("json-file".to_owned()),
            config: Some(HashMap::new()),
        });
    }
    // Docker records a swap limit of twice the memory limit when only memory was given.
    if host_config.memory.is_some_and(|m| m > 0) && host_config.memory_swap.is_none_or(|s| s == 0) {
        host_config.memory_swap = host_config.memory.map(|m| m * 2);
    }
    if host_config.restart_policy.is_none() {
        host_config.restart_policy = Some(berth_api::models::RestartPolicy {
            name: Some(berth_api::models::RestartPolicyNameEnum::NO),
            maximum_retry_count: Some(0),
        });
    }
    let mut graph = HashMap::new();
    graph.insert("UpperDir".to_owned(), paths.upper.display().to_string());
    graph.insert("WorkDir".to_owned(), paths.work.display().to_string());
    graph.insert("MergedDir".to_owned(), paths.rootfs.display().to_string());
    ContainerInspectResponse {
        id: Some(rec.id.clone()),
        created: Some(rfc3339(&rec.created)),
        path: Some(rec.path.clone()),
        args: Some(rec.args.clone()),
        state: Some(ContainerState {
            status: Some(status),
            running: Some(running),
            paused: Some(rec.state.paused),
            restarting: Some(rec.state.status == Status::Restarting),
            oom_killed: Some(rec.state.oom_killed),
            dead: Some(rec.state.status == Status::Dead),
            pid: Some(i64::from(rec.state.pid)),
            exit_code: Some(rec.state.exit_code),
            error: Some(rec.state.error.clone()),
            started_at: Some(rec.state.started_at.as_ref().map(rfc3339).unwrap_or_else(|| ZERO_TIME.to_owned())),
            finished_at: Some(rec.state.finished_at.as_ref().map(rfc3339).unwrap_or_else(|| ZERO_TIME.to_owned())),
            health: None,
        }),
        image: Some(rec.image_id.clone()),
        resolv_conf_path: Some(paths.resolv_conf.display().to_string()),
        hostname_path: Some(paths.hostname.display().to_string()),
        hosts_path: Some(paths.hosts.display().to_string()),
        log_path: Some(paths.log.display().to_string()),
        name: Some(format!("/{}", rec.name)),
        restart_count: Some(rec.restart_count),
        driver: Some("overlay2".to_owned()),
        platform: Some("linux".to_owned()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(String::new()),
        exec_ids: None,
        host_config: Some(host_config),
        graph_driver: Some(DriverData { name: "overlay2".to_owned(), data: graph }),
        mounts: Some(mounts(rec)),
        config: Some(rec.config.clone()),
        network_settings: Some(NetworkSettings {
            sandbox_id: Some(String::new()),
            sandbox_key: Some(if running { paths.netns.display().to_string() } else { String::new() }),
            ports: Some(port_map(rec)),
            networks: Some(endpoint_settings(rec)),
        }),
        ..Default::default()
    }
}

/// Every `HostConfig` field dockerd sends, with its value for a container that did not set
/// it (`null` where dockerd sends null). Clients read fields such as `Runtime` and
/// `ShmSize` without checking they are there.
fn host_config_defaults(privileged: bool) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::{Value, json};
    let paths = |p: &[&str]| if privileged { Value::Null } else { json!(p) };
    vec![
        ("Binds", Value::Null),
        ("ContainerIDFile", json!("")),
        ("LogConfig", json!({"Type": "json-file", "Config": {}})),
        ("NetworkMode", json!("bridge")),
        ("PortBindings", json!({})),
        ("RestartPolicy", json!({"Name": "no", "MaximumRetryCount": 0})),
        ("AutoRemove", json!(false)),
        ("VolumeDriver", json!("")),
        ("VolumesFrom", Value::Null),
        ("ConsoleSize", json!([0, 0])),
        ("CapAdd", Value::Null),
        ("CapDrop", Value::Null),
        // berth's containers always get their own cgroup namespace.
        ("CgroupnsMode", json!("private")),
        ("Dns", json!([])),
        ("DnsOptions", json!([])),
        ("DnsSearch", json!([])),
        ("ExtraHosts", Value::Null),
        ("GroupAdd", Value::Null),
        ("IpcMode", json!("private")),
        ("Cgroup", json!("")),
        ("Links", Value::Null),
        ("OomScoreAdj", json!(0)),
        ("PidMode", json!("")),
        ("Privileged", json!(false)),
        ("PublishAllPorts", json!(false)),
        ("ReadonlyRootfs", json!(false)),
        ("SecurityOpt", Value::Null),
        ("UTSMode", json!("")),
        ("UsernsMode", json!("")),
        ("ShmSize", json!(64 * 1024 * 1024)),
        ("Runtime", json!("runc")),
        ("Isolation", json!("")),
        ("CpuShares", json!(0)),
        ("Memory", json!(0)),
        ("NanoCpus", json!(0)),
        ("CgroupParent", json!("")),
        ("BlkioWeight", json!(0)),
        ("BlkioWeightDevice", json!([])),
        ("BlkioDeviceReadBps", json!([])),
        ("BlkioDeviceWriteBps", json!([])),
        ("BlkioDeviceReadIOps", json!([])),
        ("BlkioDeviceWriteIOps", json!([])),
        ("CpuPeriod", json!(0)),
        ("CpuQuota", json!(0)),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("CpusetCpus", json!("")),
        ("CpusetMems", json!("")),
        ("Devices", json!([])),
        ("DeviceCgroupRules", Value::Null),
        ("DeviceRequests", Value::Null),
        ("KernelMemory", json!(0)),
        ("KernelMemoryTCP", json!(0)),
        ("MemoryReservation", json!(0)),
        ("MemorySwap", json!(0)),
        ("MemorySwappiness", Value::Null),
        ("OomKillDisable", json!(false)),
        ("PidsLimit", Value::Null),
        ("Ulimits", json!([])),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("IOMaximumBandwidth", json!(0)),
        ("MaskedPaths", paths(berth_runtime::spec::MASKED_PATHS)),
        ("ReadonlyPaths", paths(berth_runtime::spec::READONLY_PATHS)),
    ]
}

/// `GET /containers/{id}/json` as the JSON dockerd sends: [`container_inspect`] with every
/// `HostConfig` field present (the typed model leaves unset ones out).
pub fn container_inspect_json(rec: &ContainerRecord, paths: &ContainerPaths) -> serde_json::Value {
    inspect_to_json(&container_inspect(rec, paths), rec)
}

/// An inspect answer (perhaps completed with live state: exec ids, health) as the JSON
/// dockerd sends, with the fields it always sends filled in.
pub fn inspect_to_json(resp: &ContainerInspectResponse, rec: &ContainerRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(resp).unwrap_or_default();
    if let Some(top) = v.as_object_mut() {
        top.entry("ExecIDs").or_insert(serde_json::Value::Null);
    }
    if let Some(hc) = v.get_mut("HostConfig").and_then(|h| h.as_object_mut()) {
        for (k, d) in host_config_defaults(rec.host_config.privileged == Some(true)) {
            hc.entry(k).or_insert(d);
        }
        // Docker sends `Config: {}` even for a log driver given without options.
        if let Some(lc) = hc.get_mut("LogConfig").and_then(|l| l.as_object_mut()) {
            lc.entry("Config").or_insert_with(|| serde_json::json!({}));
        }
    }
    v
}

/// The exposed and published ports of a running container as `NetworkSettings.Ports`
/// shows them: every exposed port, `null` when not published (empty when not running).
fn port_map(rec: &ContainerRecord) -> berth_api::models::PortMap {
    let mut m = berth_api::models::PortMap::new();
    if rec.state.status != Status::Running {
        return m;
    }
    for k in rec.config.exposed_ports.iter().flatten() {
        let key = if k.contains('/') { k.clone() } else { format!("{k}/tcp") };
        m.insert(key, None);
    }
    for p in &rec.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let v = m.entry(key).or_insert(None).get_or_insert_with(Vec::new);
        v.push(berth_api::models::PortBinding {
            host_ip: Some(p.host_ip.to_string()),
            host_port: Some(p.host_port.to_string()),
        });
    }
    m
}

/// The `Ports` of a `ps` row: published ports with their host side, exposed ones without.
fn port_summaries(rec: &ContainerRecord) -> Vec<berth_api::models::PortSummary> {
    use berth_api::models::{PortSummary, PortSummaryTypeEnum};
    let typ = |p: &str| match p {
        "udp" => PortSummaryTypeEnum::UDP,
        "sctp" => PortSummaryTypeEnum::SCTP,
        _ => PortSummaryTypeEnum::TCP,
    };
    let mut out = Vec::new();
    for (k, v) in port_map(rec) {
        let (port, proto) = k.split_once('/').unwrap_or((&k, "tcp"));
        let Ok(port) = port.parse::<u16>() else { continue };
        match v {
            Some(bs) if !bs.is_empty() => {
                for b in bs {
                    out.push(PortSummary {
                        ip: b.host_ip,
                        private_port: port,
                        public_port: b.host_port.and_then(|h| h.parse().ok()),
                        typ: Some(typ(proto)),
                    });
                }
            }
            _ => out.push(PortSummary { ip: None, private_port: port, public_port: None, typ: Some(typ(proto)) }),
        }
    }
    out.sort_by_key(|p| (p.private_port, p.public_port));
    out
}

/// `NetworkSettings.Networks`: one entry per endpoint, addresses filled while running.
fn endpoint_settings(rec: &ContainerRecord) -> HashMap<String, berth_api::models::EndpointSettings> {
    use berth_api::models::{EndpointIpamConfig, EndpointSettings};
    let mut out = HashMap::new();
    match rec.host_config.network_mode.as_deref() {
        Some("host") | Some("none") => {
            let name = rec.host_config.network_mode.clone().unwrap_or_default();
            out.insert(name, EndpointSettings { ..empty_endpoint() });
            return out;
        }
        _ => {}
    }
    for (name, ep) in &rec.networks {
        let ipam =
            ep.ipv4_request.map(|ip| EndpointIpamConfig { ipv4_address: Some(ip.to_string()), ..Default::default() });
        let hostname = rec.config.hostname.clone().unwrap_or_else(|| rec.id.chars().take(12).collect());
        let user_net = name != "bridge";
        let mut dns_names = Vec::new();
        if user_net {
            dns_names.push(rec.name.clone());
            dns_names.extend(ep.aliases.iter().cloned());
            dns_names.push(rec.id.chars().take(12).collect());
            dns_names.push(hostname);
            // moby dedups (an alias equal to the container's name appears once).
            let mut seen = std::collections::HashSet::new();
            dns_names.retain(|n| seen.insert(n.clone()));
        }
        out.insert(
            name.clone(),
            EndpointSettings {
                ipam_config: ipam,
                links: (!ep.links.is_empty()).then(|| ep.links.clone()),
                mac_address: Some(ep.mac.clone()),
                aliases: (!ep.aliases.is_empty()).then(|| ep.aliases.clone()),
                network_id: Some(ep.network_id.clone()),
                endpoint_id: Some(ep.endpoint_id.clone()),
                gateway: Some(ep.gateway.map(|g| g.to_string()).unwrap_or_default()),
                ip_address: Some(ep.ip.map(|g| g.to_string()).unwrap_or_default()),
                ip_prefix_len: Some(i64::from(ep.prefix_len)),
                dns_names: user_net.then_some(dns_names),
                ..empty_endpoint()
            },
        );
    }
    out
}

fn empty_endpoint() -> berth_api::models::EndpointSettings {
    berth_api::models::EndpointSettings {
        mac_address: Some(String::new()),
        network_id: Some(String::new()),
        endpoint_id: Some(String::new()),
        gateway: Some(String::new()),
        ip_address: Some(String::new()),
        ip_prefix_len: Some(0),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        driver_opts: None,
        gw_priority: Some(0),
        ..Default::default()
    }
}

/// The top-level `NetworkSettings` fields of API < 1.52 (the default bridge's endpoint),
/// which the docker CLI's templates and older clients still read.
pub fn legacy_network_fields(rec: &ContainerRecord) -> serde_json::Value {
    let ep = rec.networks.get("bridge").filter(|e| e.ip.is_some());
    let s = |v: Option<String>| serde_json::Value::String(v.unwrap_or_default());
    serde_json::json!({
        "Bridge": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": s(ep.map(|e| e.endpoint_id.clone())),
        "Gateway": s(ep.and_then(|e| e.gateway).map(|g| g.to_string())),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": s(ep.and_then(|e| e.ip).map(|g| g.to_string())),
        "IPPrefixLen": ep.map_or(0, |e| e.prefix_len),
        "IPv6Gateway": "",
        "MacAddress": s(ep.map(|e| e.mac.clone())),
    })
}

fn repo_tags(img: &Image) -> Vec<String> {
    if img.repo_tags.is_empty() { vec!["<none>:<none>".to_owned()] } else { img.repo_tags.clone() }
}

fn repo_digests(img: &Image) -> Vec<String> {
    if img.repo_digests.is_empty() && img.repo_tags.is_empty() {
        vec!["<none>@<none>".to_owned()]
    } else {
        img.repo_digests.clone()
    }
}

/// An image's healthcheck in the API's shape (zero durations left out, as Docker does).
pub fn health_config(h: &berth_image::HealthConfig) -> berth_api::models::HealthConfig {
    let nz = |v: i64| (v != 0).then_some(v);
    berth_api::models::HealthConfig {
        test: (!h.test.is_empty()).then(|| h.test.clone()),
        interval: nz(h.interval),
        timeout: nz(h.timeout),
        retries: nz(h.retries),
        start_period: nz(h.start_period),
        start_interval: nz(h.start_interval),
    }
}

fn image_config(img: &Image) -> ImageConfig {
    let c = img.config.config().clone().unwrap_or_default();
    ImageConfig {
        user: Some(c.user().clone().unwrap_or_default()),
        exposed_ports: c.exposed_ports().clone(),
        env: c.env().clone(),
        cmd: c.cmd().clone(),
        healthcheck: img.extras.healthcheck.as_ref().map(health_config),
        args_escaped: None,
        volumes: c.volumes().clone(),
        working_dir: Some(c.working_dir().clone().unwrap_or_default()),
        entrypoint: c.entrypoint().clone(),
        on_build: img.extras.on_build.clone(),
        labels: c.labels().clone().map(|l| l.into_iter().collect()),
        stop_signal: c.stop_signal().clone(),
        shell: img.extras.shell.clone(),
    }
}

/// One row of `GET /images/json`.
pub fn image_summary(img: &Image, containers: i64) -> ImageSummary {
    let labels = img.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
    ImageSummary {
        id: img.id.to_string(),
        parent_id: String::new(),
        repo_tags: repo_tags(img),
        repo_digests: repo_digests(img),
        created: img.created.timestamp(),
        size: img.size as i64,
        shared_size: -1,
        labels: labels.into_iter().collect(),
        containers,
        manifests: None,
        descriptor: None,
    }
}

/// One row of `GET /images/json`, from an image and its container count.
pub fn image_usage_summary(u: &ImageUsage) -> ImageSummary {
    image_summary(&u.image, u.containers as i64)
}

/// `GET /system/df` in the API 1.41 shape the docker CLI reads.
pub fn disk_usage(du: &DiskUsage, now: DateTime<Utc>) -> serde_json::Value {
    let images: Vec<_> = du.images.iter().map(image_usage_summary).collect();
    let containers: Vec<_> = du
        .containers
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(container_summary(r, now)).unwrap_or_default();
            v["SizeRw"] = serde_json::json!(0);
            v["SizeRootFs"] = serde_json::json!(0);
            v
        })
        .collect();
    serde_json::json!({
        "LayersSize": du.layers_size as i64, "Images": images, "Containers": containers,
        "Volumes": [], "BuildCache": du.build_cache,
    })
}

/// `GET /images/{name}/json`.
pub fn image_inspect(img: &Image) -> ImageInspect {
    ImageInspect {
        id: Some(img.id.to_string()),
        repo_tags: Some(img.repo_tags.clone()),
        repo_digests: Some(img.repo_digests.clone()),
        comment: Some(
            img.config.history().as_ref().and_then(|h| h.last()).and_then(|h| h.comment().clone()).unwrap_or_default(),
        ),
        created: Some(rfc3339(&img.created)),
        author: Some(img.config.author().clone().unwrap_or_default()),
        config: Some(image_config(img)),
        architecture: Some(img.config.architecture().to_string()),
        variant: img.config.variant().clone(),
        os: Some(img.config.os().to_string()),
        size: Some(img.size as i64),
        graph_driver: Some(DriverData { name: "overlay2".to_owned(), data: HashMap::new() }),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".to_owned(),
            layers: Some(img.diff_ids.iter().map(|d| d.to_string()).collect()),
        }),
        metadata: Some(ImageInspectMetadata { last_tag_time: img.last_tag_time.as_ref().map(rfc3339) }),
        ..Default::default()
    }
}

/// One row of `GET /images/{name}/history`.
pub fn history_item(h: &berth_image::HistoryEntry) -> ImageHistoryResponseItem {
    ImageHistoryResponseItem {
        id: h.id.clone(),
        created: h.created,
        created_by: h.created_by.clone(),
        tags: h.tags.clone(),
        size: h.size,
        comment: h.comment.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;
    use chrono::Duration;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(Duration::milliseconds(300)), "Less than a second");
        assert_eq!(human_duration(Duration::seconds(1)), "1 second");
        assert_eq!(human_duration(Duration::seconds(45)), "45 seconds");
        assert_eq!(human_duration(Duration::seconds(70)), "About a minute");
        assert_eq!(human_duration(Duration::minutes(5)), "5 minutes");
        assert_eq!(human_duration(Duration::minutes(65)), "About an hour");
        assert_eq!(human_duration(Duration::hours(5)), "5 hours");
        assert_eq!(human_duration(Duration::days(3)), "3 days");
        assert_eq!(human_duration(Duration::days(30)), "4 weeks");
    }
}
