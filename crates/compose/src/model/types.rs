//! The typed, normalised compose project: what `docker compose config` prints. Every
//! short syntax has been expanded to its long form, relative paths are absolute, `env_file`
//! contents are merged into `environment`, and variables are interpolated. The loader
//! (`model::load`) produces it; the planner consumes it; `Project::to_yaml` prints it.
//!
//! Key names and key order follow the Compose Specification (and compose-go's output), so
//! serialising a `Project` as YAML is the `config` output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A YAML value kept as written (extensions and the rarely used keys berth passes through).
pub type Value = serde_norway::Value;

/// `x-*` keys kept on the object that carried them.
pub type Extensions = BTreeMap<String, Value>;

/// A loaded compose project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Project name: lower-case, `[a-z0-9_-]`, starting with a letter or digit.
    pub name: String,
    /// The project directory: relative paths were resolved against it.
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The compose files loaded, in order (absolute).
    #[serde(skip)]
    pub config_files: Vec<PathBuf>,
    /// The environment interpolation used: process env over `.env` / `--env-file`.
    #[serde(skip)]
    pub environment: BTreeMap<String, String>,
    /// Active profiles (`--profile`, `COMPOSE_PROFILES`).
    #[serde(skip)]
    pub profiles: Vec<String>,
    /// What compose would warn about while loading (unset variables, …), in order.
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Every service in file order, active or not (see `Project::active_services`).
    #[serde(serialize_with = "ser_sorted", deserialize_with = "de_services", default)]
    pub services: IndexMap<String, Service>,
    /// Top-level networks (each with its engine `name` filled in).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Top-level named volumes (each with its engine `name` filled in).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    /// Top-level configs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level models (passed through; berth runs none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, Value>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One service, normalised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The service's key in `services:` (not serialised: it is the map key).
    #[serde(skip)]
    pub name: String,
    /// Profiles that enable this service; empty = always enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// OCI annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Whether `up` attaches to this service's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    /// How to build the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// `develop` (watch rules), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub develop: Option<Value>,
    /// `blkio_config`, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<Value>,
    /// Capabilities to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// Parent cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// Cgroup namespace mode (`host` or `private`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Windows CPU count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    /// Windows CPU percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CFS period (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// CFS quota (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// Real-time period (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    /// Real-time runtime (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs (fractional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// CPUs the container may run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// Relative CPU weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// Overrides the image's CMD; `Some(vec![])` clears it. A string was split as a shell
    /// would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Configs granted to the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ServiceFileRef>,
    /// Fixed container name (then the service cannot scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Windows credential spec, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<Value>,
    /// Services this one depends on, with the condition to wait for (file order kept;
    /// printed sorted, as compose prints it).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty", serialize_with = "ser_sorted")]
    pub depends_on: IndexMap<String, Dependency>,
    /// Deployment (replicas, resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Device cgroup rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// Devices to map, long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// NIS domain name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Overrides the image's ENTRYPOINT; `Some(vec![])` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Environment: `None` = the name without a value (taken from the caller's env at run).
    /// `env_file` contents are already merged in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    /// The env files that were merged into `environment` (kept for `config`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    /// Ports exposed to linked services only (`"80"`, `"8000-8010/udp"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Links to containers outside the project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// Extra `/etc/hosts` entries: host name -> addresses (printed `host=address`, one a
    /// line, as compose prints them).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty", serialize_with = "ser_hosts")]
    pub extra_hosts: IndexMap<String, Vec<String>>,
    /// Supplementary groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// GPUs (`gpus: all` became one request with `count: all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Image to run (or to tag the build with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Run an init as PID 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// IPC namespace mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// Isolation technology (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Container labels (`label_file` contents merged in).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Label files that were merged into `labels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_file: Vec<String>,
    /// Legacy links (`service` or `service:alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Log driver and options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<Bytes>,
    /// Memory soft limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<Bytes>,
    /// Swappiness (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<i64>,
    /// Memory + swap limit in bytes (-1 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<Bytes>,
    /// Models used by the service, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Value>,
    /// Network mode (`none`, `host`, `service:NAME`, `container:ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Networks joined (key = top-level network key); `None` = no per-network options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    /// Disable the OOM killer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    /// OOM score adjustment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// PID namespace mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// PIDs limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Platform (`linux/amd64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Published ports, one entry per port (ranges expanded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// `post_start` hooks, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Value>,
    /// `pre_stop` hooks, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Value>,
    /// Privileged mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// `provider`, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
    /// Pull policy: `always`, `never`, `missing`, `build`, `if_not_present`, `daily`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<String>,
    /// How long a pulled image stays fresh, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_refresh_after: Option<String>,
    /// Read-only root filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Restart policy (`no`, `always`, `on-failure[:N]`, `unless-stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// OCI runtime name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Number of containers (legacy; `deploy.replicas` is the same thing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Secrets granted to the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ServiceFileRef>,
    /// Security options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// `/dev/shm` size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Bytes>,
    /// Keep stdin open (`docker run -i`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// Time to wait after the stop signal before SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Storage driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    /// Namespaced kernel parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// tmpfs mounts (`/path[:options]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Allocate a TTY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Resource limits by name (`nofile`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Bind the engine's API socket into the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_api_socket: Option<bool>,
    /// User (`uid[:gid]` or names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User namespace mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// UTS namespace mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// Mounts, long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    /// Mount all volumes of another service (`NAME[:ro]`) or container
    /// (`container:NAME[:rw]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// `build:` in long form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// Build context: an absolute directory, or a URL (git or http) left as written.
    pub context: String,
    /// Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Inline Dockerfile content (instead of `dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Entitlements (`network.host`, `security.insecure`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    /// Build arguments; `None` = take the value from the environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    /// Provenance attestation setting, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Value>,
    /// SBOM attestation setting, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<Value>,
    /// SSH agent sockets or keys (`default`, `id=path`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<String>,
    /// Image labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Cache sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Cache destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    /// Build without cache.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
    /// Stages to build without cache, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache_filter: Option<Value>,
    /// Named extra contexts: name -> path (absolute) or URL.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_contexts: BTreeMap<String, String>,
    /// Always pull base images.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pull: bool,
    /// Extra `/etc/hosts` entries during the build (printed as for a service).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty", serialize_with = "ser_hosts")]
    pub extra_hosts: IndexMap<String, Vec<String>>,
    /// Isolation (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Network for RUN steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Target stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Build secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ServiceFileRef>,
    /// `/dev/shm` size for RUN steps, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Bytes>,
    /// Extra tags for the built image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Ulimits for RUN steps.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Target platforms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// Privileged build.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// One `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// What to wait for.
    pub condition: Condition,
    /// Restart this service when the dependency is updated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// When false, a missing or failed dependency is only a warning.
    #[serde(default = "yes")]
    pub required: bool,
}

impl Default for Dependency {
    fn default() -> Self {
        Dependency { condition: Condition::ServiceStarted, restart: false, required: true }
    }
}

fn yes() -> bool {
    true
}

/// The condition of a `depends_on` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency's containers have started.
    ServiceStarted,
    /// The dependency's containers are healthy.
    ServiceHealthy,
    /// The dependency's containers exited with status 0.
    ServiceCompletedSuccessfully,
}

/// One published port, long form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    /// Port name (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ingress` (the default) or `host`.
    #[serde(default = "ingress")]
    pub mode: String,
    /// Host address to bind (empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Container port.
    pub target: u16,
    /// Host port or range (`"8080"`, `"8080-8090"`); `None` = an ephemeral port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `tcp` (the default), `udp` or `sctp`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Application protocol (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

fn ingress() -> String {
    "ingress".into()
}

fn tcp() -> String {
    "tcp".into()
}

/// The kind of a service mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    /// A host path.
    Bind,
    /// A named volume (or an anonymous one when `source` is `None`).
    Volume,
    /// A tmpfs.
    Tmpfs,
    /// A Windows named pipe.
    Npipe,
    /// A cluster volume.
    Cluster,
    /// An image's filesystem.
    Image,
}

/// One service mount, long form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceVolume {
    /// The kind of mount.
    #[serde(rename = "type")]
    pub kind: VolumeType,
    /// Absolute host path (bind), the top-level volume key (volume; `None` = anonymous) or
    /// an image reference (image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Path in the container.
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Consistency (macOS only), as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    /// Image mount options, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
}

/// Options of a bind mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindOptions {
    /// Propagation (`rprivate`, `shared`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create the host path when missing (short syntax: true; long syntax default: true).
    #[serde(default = "yes")]
    pub create_host_path: bool,
    /// Recursive read-only handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
    /// SELinux relabel (`z` or `Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions { propagation: None, create_host_path: true, recursive: None, selinux: None }
    }
}

/// Options of a volume mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeOptions {
    /// Labels for an anonymous volume created for this mount.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Do not copy the image's content into a new volume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nocopy: bool,
    /// Mount this subdirectory of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// Options of a tmpfs mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsOptions {
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Bytes>,
    /// File mode (octal as written, stored as a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// A service's attachment to one network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    /// Extra DNS names on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Driver options for the endpoint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Default-gateway priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw_priority: Option<i64>,
    /// Interface name in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Static IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Static IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Link-local addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    /// MAC address on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Connection order priority (higher first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// `healthcheck:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// The test, Engine API form: `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time allowed for one check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    /// Grace period after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    /// Interval during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    /// Disable the image's healthcheck.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// `deploy:`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    /// `replicated` or `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Number of containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Service labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Swarm update settings, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<Value>,
    /// Swarm rollback settings, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<Value>,
    /// Limits and reservations.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Swarm restart policy, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<Value>,
    /// Swarm placement, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Value>,
    /// Swarm endpoint mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Hard limits (become container limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    /// Reservations (memory reservation, devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
}

impl Resources {
    /// True when neither limits nor reservations are set.
    pub fn is_empty(&self) -> bool {
        self.limits.is_none() && self.reservations.is_none()
    }
}

/// One set of resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// CPUs (fractional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
    /// PIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Device requests (GPUs through CDI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRequest>,
    /// Generic resources, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_resources: Option<Value>,
}

/// A device request (`gpus`, `deploy.resources.reservations.devices`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    /// Capabilities (`gpu`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Driver (`nvidia`, `cdi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// How many devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<DeviceCount>,
    /// Device ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `count:` of a device request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCount {
    /// Every matching device.
    All,
    /// This many.
    N(u64),
}

impl Serialize for DeviceCount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // compose prints `all` as -1.
            DeviceCount::All => s.serialize_i64(-1),
            DeviceCount::N(n) => s.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for DeviceCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) if n.as_u64().is_some() => Ok(DeviceCount::N(n.as_u64().unwrap_or(0))),
            Value::Number(n) if n.as_i64() == Some(-1) => Ok(DeviceCount::All),
            Value::String(s) if s == "all" => Ok(DeviceCount::All),
            Value::String(s) => s
                .parse()
                .map(DeviceCount::N)
                .map_err(|_| serde::de::Error::custom(format!("invalid count {s:?}: must be \"all\" or a number"))),
            other => Err(serde::de::Error::custom(format!("invalid count {other:?}"))),
        }
    }
}

/// A device mapping (`devices:`), long form.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    /// Host device path (or a CDI name).
    pub source: String,
    /// Path in the container (default: the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// cgroup permissions (`rwm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

/// One `env_file` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFile {
    /// Absolute path.
    pub path: String,
    /// A missing file is an error when true (the default).
    #[serde(default = "yes")]
    pub required: bool,
    /// File format (`raw`), when not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `logging:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    /// Log driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One ulimit (a single number was read as equal soft and hard limits, and is printed
/// back as one number, as compose prints it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // compose prints a single non-zero number for equal limits.
        if self.soft == self.hard && self.soft != 0 {
            return s.serialize_i64(self.soft);
        }
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Ulimit", 2)?;
        st.serialize_field("soft", &self.soft)?;
        st.serialize_field("hard", &self.hard)?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Single(i64),
            Pair { soft: i64, hard: i64 },
        }
        Ok(match Form::deserialize(d)? {
            Form::Single(n) => Ulimit { soft: n, hard: n },
            Form::Pair { soft, hard } => Ulimit { soft, hard },
        })
    }
}

/// A service's reference to a secret or config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFileRef {
    /// Key in the top-level `secrets`/`configs`.
    pub source: String,
    /// Path in the container (default `/run/secrets/<source>` or `/<source>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Owner gid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// File mode (printed in octal, `"0440"`, as compose prints it).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "octal_mode")]
    pub mode: Option<u32>,
}

/// A file mode printed as compose prints it (`"0440"`) and read from that or a number.
mod octal_mode {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Value;

    pub fn serialize<S: Serializer>(mode: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match mode {
            Some(m) => s.serialize_str(&format!("0{m:o}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid file mode {n}"))),
            Some(Value::String(t)) => u32::from_str_radix(t.trim_start_matches("0o"), 8)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("invalid file mode {t:?}"))),
            Some(other) => Err(serde::de::Error::custom(format!("invalid file mode {other:?}"))),
        }
    }
}

/// A top-level network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Engine name: `<project>_<key>` unless set (or the key itself when external).
    pub name: String,
    /// Driver (default `bridge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// IPAM settings.
    #[serde(default, skip_serializing_if = "Ipam::is_empty")]
    pub ipam: Ipam,
    /// Created outside compose; never created nor removed by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// No outside connectivity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Standalone containers may attach.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// IPv4 on/off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// IPv6 on/off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A network's IPAM settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    /// IPAM driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

impl Ipam {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.driver.is_none() && self.config.is_empty() && self.options.is_empty()
    }
}

/// One IPAM pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamPool {
    /// Subnet (CIDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Allocation range (CIDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Reserved addresses by host name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level named volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// Engine name: `<project>_<key>` unless set (or the key itself when external).
    pub name: String,
    /// Driver (default `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Created outside compose; never created nor removed by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A top-level secret or config (berth supports the file-, environment- and content-based
/// ones; external ones are kept for `config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    /// Name: set by the loader to `<project>_<key>` unless written (or the key itself when
    /// external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Absolute path of the file holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content (configs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Managed outside compose.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Driver (swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options (swarm).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Template driver (swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
    /// `x-*` keys.
    #[serde(flatten)]
    pub extensions: Extensions,
}

/// A size in bytes. Read from a number or a string with an optional unit (`b`, `k`/`kb`,
/// `m`/`mb`, `g`/`gb`, powers of 1024, as docker's `go-units.RAMInBytes`); printed as
/// compose prints it, a quoted decimal string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub i64);

impl Bytes {
    /// Parses `"512m"`, `"1g"`, `"1024"`, `"1.5gb"`, `"-1"`.
    pub fn parse(s: &str) -> Option<Bytes> {
        let t = s.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Some(Bytes(n));
        }
        let lower = t.to_ascii_lowercase();
        let split = lower.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, unit) = lower.split_at(split);
        let num: f64 = num.parse().ok()?;
        let mult: f64 = match unit.trim() {
            "b" => 1.0,
            "k" | "kb" | "kib" => 1024.0,
            "m" | "mb" | "mib" => 1024.0 * 1024.0,
            "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
            "t" | "tb" | "tib" => 1024f64.powi(4),
            "p" | "pb" | "pib" => 1024f64.powi(5),
            _ => return None,
        };
        // Sizes fit in i64 with room to spare; truncation is what go-units does.
        Some(Bytes((num * mult) as i64))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => {
                n.as_i64().map(Bytes).ok_or_else(|| serde::de::Error::custom(format!("invalid size {n}")))
            }
            Value::String(s) => Bytes::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid size {s:?}"))),
            other => Err(serde::de::Error::custom(format!("invalid size {other:?}"))),
        }
    }
}

/// A duration, read and printed as Go's `time.Duration` is (`"1m30s"`, `"500ms"`), which is
/// what the Compose Specification uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Parses Go's duration syntax: a sequence of decimal numbers with units `ns`, `us`
    /// (`µs`), `ms`, `s`, `m`, `h`, e.g. `"1h2m3.5s"`; `"0"` alone is allowed.
    pub fn parse(s: &str) -> Option<Duration> {
        let s = s.trim();
        if s == "0" {
            return Some(Duration(std::time::Duration::ZERO));
        }
        if s.is_empty() || s.starts_with('-') {
            return None;
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let mut rest = s;
        let mut nanos: f64 = 0.0;
        while !rest.is_empty() {
            let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            if num_end == 0 {
                return None;
            }
            let num: f64 = rest[..num_end].parse().ok()?;
            rest = &rest[num_end..];
            let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let mult = match &rest[..unit_end] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return None,
            };
            rest = &rest[unit_end..];
            nanos += num * mult;
        }
        // Whole nanoseconds, as Go's parser keeps.
        Some(Duration(std::time::Duration::from_nanos(nanos.round() as u64)))
    }
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String()`: `"1h0m0s"`, `"1m30s"`, `"1.5s"`, `"500ms"`, `"0s"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total < 1_000_000_000 {
            let (unit, div) = if total < 1_000 {
                ("ns", 1u128)
            } else if total < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{}{unit}", frac(total, div));
        }
        let h = total / 3_600_000_000_000;
        let m = (total / 60_000_000_000) % 60;
        let s_nanos = total % 60_000_000_000;
        if h > 0 {
            write!(f, "{h}h{m}m")?;
        } else if m > 0 {
            write!(f, "{m}m")?;
        }
        write!(f, "{}s", frac(s_nanos, 1_000_000_000))
    }
}

/// `n / div` as a decimal without trailing zeros.
fn frac(n: u128, div: u128) -> String {
    let whole = n / div;
    let rem = n % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => {
                Duration::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("time: invalid duration {s:?}")))
            }
            // A bare number is seconds, as compose-go's decoder reads it.
            Value::Number(n) => n
                .as_f64()
                .filter(|f| *f >= 0.0)
                .map(|f| Duration(std::time::Duration::from_secs_f64(f)))
                .ok_or_else(|| serde::de::Error::custom(format!("time: invalid duration {n}"))),
            other => Err(serde::de::Error::custom(format!("time: invalid duration {other:?}"))),
        }
    }
}

/// Serialises a map sorted by key (compose prints services sorted; we keep file order).
fn ser_sorted<S: Serializer, V: Serialize>(map: &IndexMap<String, V>, s: S) -> Result<S::Ok, S::Error> {
    let sorted: BTreeMap<&String, &V> = map.iter().collect();
    sorted.serialize(s)
}

/// `extra_hosts` as compose prints it: `host=address` strings.
fn ser_hosts<S: Serializer>(hosts: &IndexMap<String, Vec<String>>, s: S) -> Result<S::Ok, S::Error> {
    let lines: Vec<String> = hosts.iter().flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}={ip}"))).collect();
    lines.serialize(s)
}

/// Reads `services:` and fills each `Service::name` from its key.
fn de_services<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Service>, D::Error> {
    let mut map = IndexMap::<String, Service>::deserialize(d)?;
    for (name, svc) in map.iter_mut() {
        svc.name.clone_from(name);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        for (input, printed) in [
            ("30s", "30s"),
            ("1m30s", "1m30s"),
            ("90s", "1m30s"),
            ("1h", "1h0m0s"),
            ("1.5s", "1.5s"),
            ("500ms", "500ms"),
            ("10us", "10µs"),
            ("0", "0s"),
            ("2h45m", "2h45m0s"),
        ] {
            let d = Duration::parse(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(d.to_string(), printed, "{input}");
            assert_eq!(Duration::parse(printed), Some(d));
        }
        for bad in ["", "10", "1x", "-1s", "s"] {
            assert_eq!(Duration::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn byte_sizes_take_units() {
        assert_eq!(Bytes::parse("512m"), Some(Bytes(512 << 20)));
        assert_eq!(Bytes::parse("1g"), Some(Bytes(1 << 30)));
        assert_eq!(Bytes::parse("1GB"), Some(Bytes(1 << 30)));
        assert_eq!(Bytes::parse("100"), Some(Bytes(100)));
        assert_eq!(Bytes::parse("-1"), Some(Bytes(-1)));
        assert_eq!(Bytes::parse("1.5k"), Some(Bytes(1536)));
        assert_eq!(Bytes::parse("lots"), None);
    }
}
