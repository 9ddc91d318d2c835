//! The persistent record of one container: its merged configuration and its lifecycle state,
//! stored as JSON in the `containers` table of state.db.

use std::path::PathBuf;

use berth_api::models::{ContainerConfig, HostConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Lifecycle states, spelled as Docker's API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started (or failed to start).
    #[default]
    Created,
    /// The shim reports the process running.
    Running,
    /// The process ended.
    Exited,
    /// Being removed.
    Removing,
    /// Lost: its shim vanished without recording an exit.
    Dead,
    /// Exited, and its restart policy starts it again after a back-off.
    Restarting,
}

impl Status {
    /// The lowercase API string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Removing => "removing",
            Status::Dead => "dead",
            Status::Restarting => "restarting",
        }
    }
}

/// What the daemon knows about the container's process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Lifecycle state.
    pub status: Status,
    /// The container's init pid while running.
    pub pid: u32,
    /// Exit status of the last run (or 126/127/128 for failed starts, as Docker).
    pub exit_code: i64,
    /// Error of the last failed start.
    pub error: String,
    /// When the last run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the last run ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether the kernel OOM killer ended the last run.
    pub oom_killed: bool,
    /// Frozen by `pause` (the process still runs).
    #[serde(default)]
    pub paused: bool,
    /// The user stopped or killed it (dockerd's HasBeenManuallyStopped): `unless-stopped`
    /// does not bring it back when the daemon starts. Cleared by a manual start.
    #[serde(default)]
    pub manually_stopped: bool,
}

/// A bind mount resolved at create time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BindSpec {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// The mode string as given (`ro`, `rw,z`, …) for inspect.
    pub mode: String,
    /// Created from `--mount` rather than `-v`.
    pub from_mount_flag: bool,
}

/// A volume mounted into a container, resolved at create time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// Its driver (`local`).
    pub driver: String,
    /// Its mountpoint on the host (`volumes/<name>/_data`).
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// The mode inspect shows (`z` for a named local volume, as moby sets it).
    pub mode: String,
    /// Still to be filled from the image at create (moby's copy-up).
    pub copy_data: bool,
    /// Named in the request (`-v name:/p`, `--mount src=name`); anonymous ones go with
    /// `rm -v` and `--rm`.
    pub named: bool,
    /// From `--mount` rather than `-v`.
    pub from_mount_flag: bool,
}

/// Everything persisted about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64-hex id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// The image as the user named it.
    pub image: String,
    /// The image id (`sha256:…`).
    pub image_id: String,
    /// Executable (first element of entrypoint + cmd).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The container config after merging the image's defaults.
    pub config: ContainerConfig,
    /// Host-side configuration as the client sent it.
    pub host_config: HostConfig,
    /// Resolved bind mounts.
    pub binds: Vec<BindSpec>,
    /// Process state.
    pub state: RunState,
    /// How many times a restart policy restarted it.
    pub restart_count: i64,
    /// Volumes mounted into it.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Its endpoints by network name (addresses filled while it runs).
    #[serde(default)]
    pub networks: std::collections::BTreeMap<String, EndpointRecord>,
    /// Its published ports with the host ports actually bound, while it runs.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// Health-check state (`State.Health`) once its monitor has started: status, failing
    /// streak and the last five probe results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<berth_api::models::Health>,
}

impl ContainerRecord {
    /// The command line as `docker ps` shows it: args with spaces are single-quoted.
    pub fn command_line(&self) -> String {
        let mut s = self.path.clone();
        for a in &self.args {
            s.push(' ');
            if a.contains(' ') {
                s.push('\'');
                s.push_str(a);
                s.push('\'');
            } else {
                s.push_str(a);
            }
        }
        s
    }

    /// Docker's `State.Status` string: the status, or `paused` for a frozen running one.
    pub fn state_name(&self) -> &'static str {
        if self.state.status == Status::Running && self.state.paused { "paused" } else { self.state.status.as_str() }
    }

    /// True when the container's log driver is `none`: no log is written or read.
    pub fn log_driver_none(&self) -> bool {
        self.host_config.log_config.as_ref().and_then(|l| l.typ.as_deref()) == Some("none")
    }

    /// True when the container runs with a tty.
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
}

/// A container's endpoint on one network: what was asked at create, and the addresses it
/// holds while it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The network's id.
    pub network_id: String,
    /// `--network-alias`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--link` entries (`name:alias`) given for this endpoint.
    #[serde(default)]
    pub links: Vec<String>,
    /// `--ip`.
    #[serde(default)]
    pub ipv4_request: Option<std::net::Ipv4Addr>,
    /// `--mac-address`.
    #[serde(default)]
    pub mac_request: Option<String>,
    /// Endpoint id while attached.
    #[serde(default)]
    pub endpoint_id: String,
    /// Address while attached.
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Prefix length of the network.
    #[serde(default)]
    pub prefix_len: u8,
    /// The network's gateway while attached.
    #[serde(default)]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// MAC address while attached.
    #[serde(default)]
    pub mac: String,
}

/// A published port as bound at start: `host_ip:host_port` → `container_port/proto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `tcp`, `udp` or `sctp`.
    pub proto: String,
    /// The container's port.
    pub container_port: u16,
    /// The host address (`0.0.0.0` for all IPv4, `::` for all IPv6; the IPv6 side is
    /// served by `berth_network::proxy`). Older records hold IPv4 strings, read the same.
    pub host_ip: std::net::IpAddr,
    /// The host port bound.
    pub host_port: u16,
}
