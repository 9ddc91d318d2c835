//! A service becomes a container create request: the Engine API body docker compose v2
//! sends (image, command, environment, ports, mounts, networks with aliases, healthcheck,
//! limits, devices, secrets and configs as read-only files) with its names and labels.
//! The body is written in the API's own JSON shape and decoded into the typed model, so
//! what is sent is exactly what the reference documents.

use std::collections::BTreeMap;

use berth_api::models::ContainerCreateBody;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use super::names;
use crate::ComposeError;
use crate::model::{DeviceCount, DeviceRequest, Project, Service, VolumeType};

/// What makes one container of a service differ from the others.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// The container name.
    pub name: String,
    /// Replica number (0 for a one-off container).
    pub number: u32,
    /// The one-off slug, for `run` containers.
    pub slug: Option<String>,
    /// The image reference to create from.
    pub image: String,
    /// The image's id, recorded in `com.docker.compose.image`.
    pub image_id: Option<String>,
    /// The service's config hash.
    pub hash: String,
}

/// docker compose's config hash of a service: sha256 of its normalised configuration with
/// what does not call for a new container left out (build, pull policy, scale, replicas,
/// depends_on, profiles).
pub fn config_hash(svc: &Service) -> String {
    let mut v = serde_json::to_value(svc).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        for k in ["build", "pull_policy", "scale", "depends_on", "profiles"] {
            m.remove(k);
        }
        if let Some(d) = m.get_mut("deploy").and_then(Value::as_object_mut) {
            d.remove("replicas");
        }
    }
    hex::encode(sha2::Sha256::digest(v.to_string().as_bytes()))
}

/// The image a service runs: its `image:`, else `{project}-{service}` for a built one.
pub fn image_of(project: &Project, svc: &Service) -> String {
    svc.image.clone().unwrap_or_else(|| names::default_image_name(&project.name, &svc.name))
}

/// The engine name of a service's network key.
pub fn network_name(project: &Project, key: &str) -> String {
    project.networks.get(key).map(|n| n.name.clone()).unwrap_or_else(|| names::scoped_name(&project.name, key))
}

/// The networks a service joins, in priority order (highest first, then by name), as
/// `(key, settings)`; `default` when it names none and uses no other network mode.
pub fn service_networks(svc: &Service) -> Vec<(String, Option<&crate::model::ServiceNetwork>)> {
    if svc.network_mode.is_some() {
        return Vec::new();
    }
    if svc.networks.is_empty() {
        return vec![("default".to_owned(), None)];
    }
    let mut v: Vec<(String, Option<&crate::model::ServiceNetwork>)> =
        svc.networks.iter().map(|(k, n)| (k.clone(), n.as_ref())).collect();
    v.sort_by_key(|(k, n)| (std::cmp::Reverse(n.and_then(|n| n.priority).unwrap_or(0)), k.clone()));
    v
}

/// The labels of a service container.
pub fn labels(project: &Project, svc: &Service, inst: &Instance) -> BTreeMap<String, String> {
    let mut l = svc.labels.clone();
    l.extend(names::project_labels(&project.name));
    l.insert(names::SERVICE.into(), svc.name.clone());
    l.insert(names::CONFIG_HASH.into(), inst.hash.clone());
    l.insert(names::WORKING_DIR.into(), project.working_dir.display().to_string());
    l.insert(
        names::CONFIG_FILES.into(),
        project.config_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(","),
    );
    let deps: Vec<String> = svc
        .depends_on
        .iter()
        .map(|(k, d)| {
            let c = serde_json::to_value(d.condition).ok().and_then(|v| v.as_str().map(str::to_owned));
            format!("{k}:{}:{}", c.unwrap_or_default(), d.restart)
        })
        .collect();
    l.insert(names::DEPENDS_ON.into(), deps.join(","));
    if let Some(id) = &inst.image_id {
        l.insert(names::IMAGE.into(), id.clone());
    }
    match &inst.slug {
        Some(slug) => {
            l.insert(names::ONEOFF.into(), "True".into());
            l.insert(names::SLUG.into(), slug.clone());
            l.insert(names::CONTAINER_NUMBER.into(), "1".into());
        }
        None => {
            l.insert(names::ONEOFF.into(), "False".into());
            l.insert(names::CONTAINER_NUMBER.into(), inst.number.to_string());
        }
    }
    l
}

fn nanos(d: &crate::model::Duration) -> i64 {
    i64::try_from(d.0.as_nanos()).unwrap_or(i64::MAX)
}

fn device_request(d: &DeviceRequest) -> Value {
    let count = match d.count {
        Some(DeviceCount::All) => json!(-1),
        Some(DeviceCount::N(n)) => json!(n),
        None if d.device_ids.is_empty() => json!(-1),
        None => Value::Null,
    };
    json!({
        "Driver": d.driver.clone().unwrap_or_default(),
        "Count": count,
        "DeviceIDs": d.device_ids,
        "Capabilities": [d.capabilities],
        "Options": d.options,
    })
}

/// The create body of one service container. `extra` mounts are appended (e.g. `run -v`).
pub fn create_body(project: &Project, svc: &Service, inst: &Instance) -> Result<ContainerCreateBody, ComposeError> {
    let mut c = Map::new();
    c.insert("Image".into(), json!(inst.image));
    if let Some(h) = &svc.hostname {
        c.insert("Hostname".into(), json!(h));
    }
    if let Some(d) = &svc.domainname {
        c.insert("Domainname".into(), json!(d));
    }
    if let Some(u) = &svc.user {
        c.insert("User".into(), json!(u));
    }
    if let Some(cmd) = &svc.command {
        c.insert("Cmd".into(), json!(cmd));
    }
    if let Some(ep) = &svc.entrypoint {
        c.insert("Entrypoint".into(), json!(ep));
    }
    let env: Vec<String> = svc.environment.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}"))).collect();
    c.insert("Env".into(), json!(env));
    if let Some(w) = &svc.working_dir {
        c.insert("WorkingDir".into(), json!(w));
    }
    c.insert("Tty".into(), json!(svc.tty.unwrap_or(false)));
    c.insert("OpenStdin".into(), json!(svc.stdin_open.unwrap_or(false)));
    c.insert("AttachStdout".into(), json!(true));
    c.insert("AttachStderr".into(), json!(true));
    if let Some(s) = &svc.stop_signal {
        c.insert("StopSignal".into(), json!(s));
    }
    if let Some(g) = &svc.stop_grace_period {
        c.insert("StopTimeout".into(), json!(g.0.as_secs()));
    }
    if let Some(m) = &svc.mac_address {
        c.insert("MacAddress".into(), json!(m));
    }
    let mut exposed = Map::new();
    for e in &svc.expose {
        let p = if e.contains('/') { e.clone() } else { format!("{e}/tcp") };
        exposed.insert(p, json!({}));
    }
    let mut bindings: Map<String, Value> = Map::new();
    for p in &svc.ports {
        let key = format!("{}/{}", p.target, p.protocol);
        exposed.insert(key.clone(), json!({}));
        let b = json!({"HostIp": p.host_ip.clone().unwrap_or_default(), "HostPort": p.published.clone().unwrap_or_default()});
        if let Some(a) = bindings.entry(key).or_insert_with(|| json!([])).as_array_mut() {
            a.push(b);
        }
    }
    if !exposed.is_empty() {
        c.insert("ExposedPorts".into(), Value::Object(exposed));
    }
    if let Some(hc) = &svc.healthcheck {
        let mut h = Map::new();
        if hc.disable {
            h.insert("Test".into(), json!(["NONE"]));
        } else {
            if !hc.test.is_empty() {
                h.insert("Test".into(), json!(hc.test));
            }
            for (k, d) in [
                ("Interval", &hc.interval),
                ("Timeout", &hc.timeout),
                ("StartPeriod", &hc.start_period),
                ("StartInterval", &hc.start_interval),
            ] {
                if let Some(d) = d {
                    h.insert(k.into(), json!(nanos(d)));
                }
            }
            if let Some(r) = hc.retries {
                h.insert("Retries".into(), json!(r));
            }
        }
        c.insert("Healthcheck".into(), Value::Object(h));
    }
    c.insert("Labels".into(), json!(labels(project, svc, inst)));

    let mut hc = Map::new();
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for v in &svc.volumes {
        match v.kind {
            VolumeType::Bind => {
                let src = v.source.clone().unwrap_or_default();
                let create = v.bind.as_ref().is_none_or(|b| b.create_host_path);
                let simple = v.bind.as_ref().is_none_or(|b| b.propagation.is_none() && b.selinux.is_none());
                if create && simple {
                    binds.push(format!("{src}:{}{}", v.target, if v.read_only { ":ro" } else { ":rw" }));
                } else {
                    let mut m = json!({"Type": "bind", "Source": src, "Target": v.target, "ReadOnly": v.read_only});
                    if let Some(b) = &v.bind {
                        let mut o = Map::new();
                        if let Some(p) = &b.propagation {
                            o.insert("Propagation".into(), json!(p));
                        }
                        if !o.is_empty() {
                            m["BindOptions"] = Value::Object(o);
                        }
                    }
                    mounts.push(m);
                }
            }
            VolumeType::Volume => {
                let mut m = json!({"Type": "volume", "Target": v.target, "ReadOnly": v.read_only});
                if let Some(src) = &v.source {
                    let name = project
                        .volumes
                        .get(src)
                        .map(|x| x.name.clone())
                        .unwrap_or_else(|| names::scoped_name(&project.name, src));
                    m["Source"] = json!(name);
                }
                if let Some(o) = &v.volume {
                    let mut vo = Map::new();
                    if o.nocopy {
                        vo.insert("NoCopy".into(), json!(true));
                    }
                    if let Some(s) = &o.subpath {
                        vo.insert("Subpath".into(), json!(s));
                    }
                    if !o.labels.is_empty() {
                        vo.insert("Labels".into(), json!(o.labels));
                    }
                    if !vo.is_empty() {
                        m["VolumeOptions"] = Value::Object(vo);
                    }
                }
                mounts.push(m);
            }
            VolumeType::Tmpfs => {
                let mut m = json!({"Type": "tmpfs", "Target": v.target, "ReadOnly": v.read_only});
                if let Some(t) = &v.tmpfs {
                    let mut to = Map::new();
                    if let Some(s) = t.size {
                        to.insert("SizeBytes".into(), json!(s.0));
                    }
                    if let Some(mode) = t.mode {
                        to.insert("Mode".into(), json!(mode));
                    }
                    if !to.is_empty() {
                        m["TmpfsOptions"] = Value::Object(to);
                    }
                }
                mounts.push(m);
            }
            other => {
                return Err(ComposeError::Unsupported {
                    service: svc.name.clone(),
                    what: format!("volumes of type {:?}", other).to_lowercase(),
                });
            }
        }
    }
    // File-based secrets and configs: the file bind-mounted read-only where compose puts it.
    for (refs, top, dir) in [(&svc.secrets, &project.secrets, "/run/secrets/"), (&svc.configs, &project.configs, "/")] {
        for r in refs {
            let what = if dir == "/" { "config" } else { "secret" };
            let obj = top.get(&r.source).ok_or_else(|| ComposeError::Unsupported {
                service: svc.name.clone(),
                what: format!("{what} {:?}: not defined at the top level", r.source),
            })?;
            let file = obj.file.clone().ok_or_else(|| ComposeError::Unsupported {
                service: svc.name.clone(),
                what: format!("{what} {:?}: only file-based {what}s are supported", r.source),
            })?;
            let target = match &r.target {
                Some(t) if t.starts_with('/') => t.clone(),
                Some(t) => format!("{dir}{t}"),
                None => format!("{dir}{}", r.source),
            };
            mounts.push(json!({"Type": "bind", "Source": file, "Target": target, "ReadOnly": true}));
        }
    }
    if !binds.is_empty() {
        hc.insert("Binds".into(), json!(binds));
    }
    if !mounts.is_empty() {
        hc.insert("Mounts".into(), json!(mounts));
    }
    if !bindings.is_empty() {
        hc.insert("PortBindings".into(), Value::Object(bindings));
    }
    if let Some(r) = &svc.restart {
        let (name, max) = match r.split_once(':') {
            Some((n, m)) => (n.to_owned(), m.parse::<i64>().unwrap_or(0)),
            None => (r.clone(), 0),
        };
        hc.insert("RestartPolicy".into(), json!({"Name": name, "MaximumRetryCount": max}));
    }
    let nets = service_networks(svc);
    let mode = match &svc.network_mode {
        Some(m) => match m.strip_prefix("service:") {
            Some(s) => format!("container:{}", names::container_name(&project.name, s, 1)),
            None => m.clone(),
        },
        None => nets.first().map(|(k, _)| network_name(project, k)).unwrap_or_else(|| "default".into()),
    };
    hc.insert("NetworkMode".into(), json!(mode));
    if let Some(i) = svc.init {
        hc.insert("Init".into(), json!(i));
    }
    if let Some(i) = &svc.ipc {
        hc.insert("IpcMode".into(), json!(i));
    }
    if let Some(p) = &svc.pid {
        hc.insert("PidMode".into(), json!(p));
    }
    if let Some(p) = svc.privileged {
        hc.insert("Privileged".into(), json!(p));
    }
    if let Some(r) = svc.read_only {
        hc.insert("ReadonlyRootfs".into(), json!(r));
    }
    for (k, v) in [
        ("CapAdd", &svc.cap_add),
        ("CapDrop", &svc.cap_drop),
        ("Dns", &svc.dns),
        ("DnsSearch", &svc.dns_search),
        ("DnsOptions", &svc.dns_opt),
        ("GroupAdd", &svc.group_add),
        ("SecurityOpt", &svc.security_opt),
        ("DeviceCgroupRules", &svc.device_cgroup_rules),
    ] {
        if !v.is_empty() {
            hc.insert(k.into(), json!(v));
        }
    }
    if !svc.extra_hosts.is_empty() {
        let hosts: Vec<String> =
            svc.extra_hosts.iter().flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}:{ip}"))).collect();
        hc.insert("ExtraHosts".into(), json!(hosts));
    }
    if !svc.volumes_from.is_empty() {
        let from: Vec<String> = svc
            .volumes_from
            .iter()
            .map(|v| match v.strip_prefix("container:") {
                Some(c) => c.to_owned(),
                None => {
                    let (s, mode) = v.split_once(':').map_or((v.as_str(), None), |(a, b)| (a, Some(b)));
                    let n = names::container_name(&project.name, s, 1);
                    mode.map_or(n.clone(), |m| format!("{n}:{m}"))
                }
            })
            .collect();
        hc.insert("VolumesFrom".into(), json!(from));
    }
    if let Some(s) = svc.shm_size {
        hc.insert("ShmSize".into(), json!(s.0));
    }
    if !svc.sysctls.is_empty() {
        hc.insert("Sysctls".into(), json!(svc.sysctls));
    }
    if !svc.tmpfs.is_empty() {
        let t: BTreeMap<String, String> = svc
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((p, o)) => (p.to_owned(), o.to_owned()),
                None => (t.clone(), String::new()),
            })
            .collect();
        hc.insert("Tmpfs".into(), json!(t));
    }
    if !svc.ulimits.is_empty() {
        let u: Vec<Value> =
            svc.ulimits.iter().map(|(n, l)| json!({"Name": n, "Soft": l.soft, "Hard": l.hard})).collect();
        hc.insert("Ulimits".into(), json!(u));
    }
    if let Some(l) = &svc.logging {
        hc.insert("LogConfig".into(), json!({"Type": l.driver.clone().unwrap_or_default(), "Config": l.options}));
    }
    if !svc.devices.is_empty() {
        let d: Vec<Value> = svc
            .devices
            .iter()
            .map(|d| {
                json!({
                    "PathOnHost": d.source,
                    "PathInContainer": d.target.clone().unwrap_or_else(|| d.source.clone()),
                    "CgroupPermissions": d.permissions.clone().unwrap_or_else(|| "rwm".into()),
                })
            })
            .collect();
        hc.insert("Devices".into(), json!(d));
    }
    let mut requests: Vec<Value> = svc.gpus.iter().map(device_request).collect();
    let limits = svc.deploy.as_ref().and_then(|d| d.resources.limits.as_ref());
    let reservations = svc.deploy.as_ref().and_then(|d| d.resources.reservations.as_ref());
    if let Some(r) = reservations {
        requests.extend(r.devices.iter().map(device_request));
        if let Some(m) = r.memory {
            hc.insert("MemoryReservation".into(), json!(m.0));
        }
    }
    if !requests.is_empty() {
        hc.insert("DeviceRequests".into(), json!(requests));
    }
    if let Some(m) = svc.mem_limit.or(limits.and_then(|l| l.memory)) {
        hc.insert("Memory".into(), json!(m.0));
    }
    if let Some(m) = svc.mem_reservation {
        hc.insert("MemoryReservation".into(), json!(m.0));
    }
    if let Some(m) = svc.memswap_limit {
        hc.insert("MemorySwap".into(), json!(m.0));
    }
    if let Some(cpus) = svc.cpus.or(limits.and_then(|l| l.cpus)) {
        hc.insert("NanoCpus".into(), json!((cpus * 1e9) as i64));
    }
    if let Some(p) = svc.pids_limit.or(limits.and_then(|l| l.pids)) {
        hc.insert("PidsLimit".into(), json!(p));
    }
    for (k, v) in [
        ("CpuShares", svc.cpu_shares),
        ("CpuPeriod", svc.cpu_period),
        ("CpuQuota", svc.cpu_quota),
        ("OomScoreAdj", svc.oom_score_adj),
    ] {
        if let Some(v) = v {
            hc.insert(k.into(), json!(v));
        }
    }
    for (k, v) in [
        ("CpusetCpus", &svc.cpuset),
        ("CgroupParent", &svc.cgroup_parent),
        ("UsernsMode", &svc.userns_mode),
        ("UTSMode", &svc.uts),
        ("Runtime", &svc.runtime),
        ("Cgroup", &svc.cgroup),
    ] {
        if let Some(v) = v {
            hc.insert(k.into(), json!(v));
        }
    }
    c.insert("HostConfig".into(), Value::Object(hc));

    // The first network at create; the others are connected before start.
    if let Some((key, n)) = nets.first() {
        c.insert(
            "NetworkingConfig".into(),
            json!({"EndpointsConfig": {network_name(project, key): endpoint(svc, inst, *n)}}),
        );
    }
    serde_json::from_value(Value::Object(c)).map_err(|e| ComposeError::Unsupported {
        service: svc.name.clone(),
        what: format!("a container configuration the Engine API model refuses: {e}"),
    })
}

/// The endpoint settings of a service container on one network: the service name and
/// configured aliases (one-off containers get none, as in docker compose), and any static
/// address.
pub fn endpoint(svc: &Service, inst: &Instance, n: Option<&crate::model::ServiceNetwork>) -> Value {
    let mut aliases = Vec::new();
    if inst.slug.is_none() {
        aliases.push(inst.name.clone());
        aliases.push(svc.name.clone());
        if let Some(n) = n {
            aliases.extend(n.aliases.iter().cloned());
        }
    }
    let mut e = json!({"Aliases": aliases});
    if let Some(n) = n {
        let mut ipam = Map::new();
        if let Some(a) = &n.ipv4_address {
            ipam.insert("IPv4Address".into(), json!(a));
        }
        if let Some(a) = &n.ipv6_address {
            ipam.insert("IPv6Address".into(), json!(a));
        }
        if !ipam.is_empty() {
            e["IPAMConfig"] = Value::Object(ipam);
        }
        if let Some(m) = &n.mac_address {
            e["MacAddress"] = json!(m);
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        let yaml = r#"
name: demo
services:
  web:
    image: busybox
    command: ["sh", "-c", "exit 0"]
    environment:
      A: "1"
      UNSET: null
    ports:
      - target: 80
        published: "8080"
        host_ip: 127.0.0.1
        protocol: tcp
        mode: ingress
    volumes:
      - type: bind
        source: /srv/site
        target: /site
        read_only: true
      - type: volume
        source: data
        target: /data
      - type: tmpfs
        target: /tmp/x
    depends_on:
      db:
        condition: service_healthy
        required: true
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      retries: 3
    networks:
      back:
        aliases: [api]
        ipv4_address: 10.9.0.5
    restart: on-failure:2
    init: true
    deploy:
      resources:
        limits:
          memory: "67108864"
          cpus: 0.5
  db:
    image: busybox
    secrets:
      - source: pw
      - source: pw
        target: other
    configs:
      - source: conf
        target: /etc/app.conf
secrets:
  pw:
    file: /w/pw.txt
configs:
  conf:
    file: /w/app.conf
networks:
  back:
    name: demo_back
volumes:
  data:
    name: demo_data
"#;
        let mut p: Project = serde_norway::from_str(yaml).unwrap();
        for (k, s) in p.services.iter_mut() {
            s.name = k.clone();
        }
        p.working_dir = "/w".into();
        p.config_files = vec!["/w/compose.yaml".into()];
        p
    }

    #[test]
    fn create_body_has_compose_shape() {
        let p = project();
        let svc = &p.services["web"];
        let inst = Instance {
            name: "demo-web-1".into(),
            number: 1,
            slug: None,
            image: "busybox".into(),
            image_id: Some("sha256:abc".into()),
            hash: config_hash(svc),
        };
        let b = serde_json::to_value(create_body(&p, svc, &inst).unwrap()).unwrap();
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["ExposedPorts"], json!({"80/tcp": {}}));
        let hc = &b["HostConfig"];
        assert_eq!(hc["PortBindings"]["80/tcp"], json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}]));
        assert_eq!(hc["Binds"], json!(["/srv/site:/site:ro"]));
        assert_eq!(hc["Mounts"][0]["Source"], "demo_data");
        assert_eq!(hc["Mounts"][1]["Type"], "tmpfs");
        assert_eq!(hc["RestartPolicy"], json!({"Name": "on-failure", "MaximumRetryCount": 2}));
        assert_eq!(hc["NetworkMode"], "demo_back");
        assert_eq!(hc["Memory"], 64 << 20);
        assert_eq!(hc["NanoCpus"], 500_000_000);
        assert_eq!(hc["Init"], true);
        let ep = &b["NetworkingConfig"]["EndpointsConfig"]["demo_back"];
        assert_eq!(ep["Aliases"], json!(["demo-web-1", "web", "api"]));
        assert_eq!(ep["IPAMConfig"]["IPv4Address"], "10.9.0.5");
        assert_eq!(b["Healthcheck"]["Interval"], 1_000_000_000i64);
        let l = &b["Labels"];
        assert_eq!(l[names::PROJECT], "demo");
        assert_eq!(l[names::SERVICE], "web");
        assert_eq!(l[names::CONTAINER_NUMBER], "1");
        assert_eq!(l[names::ONEOFF], "False");
        assert_eq!(l[names::DEPENDS_ON], "db:service_healthy:false");
        assert_eq!(l[names::CONFIG_FILES], "/w/compose.yaml");
        assert_eq!(l[names::IMAGE], "sha256:abc");
    }

    #[test]
    fn config_hash_ignores_what_needs_no_new_container() {
        let p = project();
        let web = p.services["web"].clone();
        let h = config_hash(&web);
        let mut other = web.clone();
        other.depends_on.clear();
        other.pull_policy = Some("always".into());
        assert_eq!(config_hash(&other), h);
        other.command = Some(vec!["true".into()]);
        assert_ne!(config_hash(&other), h);
        assert_eq!(h.len(), 64);
    }

    #[test]
    fn one_off_containers_have_no_aliases() {
        let p = project();
        let svc = &p.services["db"];
        let inst = Instance { name: "demo-db-run-0123".into(), slug: Some("0123".into()), ..Default::default() };
        let b = serde_json::to_value(create_body(&p, svc, &inst).unwrap()).unwrap();
        assert_eq!(b["HostConfig"]["NetworkMode"], "demo_default");
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"]["demo_default"]["Aliases"], json!([]));
        assert_eq!(b["Labels"][names::ONEOFF], "True");
        assert_eq!(b["Labels"][names::SLUG], "0123");
        let mounts = &b["HostConfig"]["Mounts"];
        assert_eq!(
            mounts[0],
            json!({"Type": "bind", "Source": "/w/pw.txt", "Target": "/run/secrets/pw", "ReadOnly": true})
        );
        assert_eq!(mounts[1]["Target"], "/run/secrets/other");
        assert_eq!(
            mounts[2],
            json!({"Type": "bind", "Source": "/w/app.conf", "Target": "/etc/app.conf", "ReadOnly": true})
        );
    }
}
