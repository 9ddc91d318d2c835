//! `run` and `create` (flags → ContainerCreateBody), and the attached flow docker follows:
//! attach and wait before start, stdin forwarding, stdcopy demultiplexing, raw terminal,
//! window-size propagation, and the container's exit code as ours.

use std::collections::HashMap;
use std::os::fd::AsFd;

use berth_api::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use berth_api::query;
use berth_api::{Client, ClientError};
use clap::{ArgAction, Args};

use crate::CliError;
use crate::opts;
use crate::output::{err_line, out};

#[cfg_attr(doc, doc = "Flags of `run` and `create` (docker's names and defaults).")]
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print usage
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container
    #[arg(long = "name")]
    pub name: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long = "rm")]
    pub rm: bool,
    /// Run container in background and print container ID
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long = "entrypoint", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname")]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long = "init", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub init: Option<bool>,
    /// IPC mode to use
    #[arg(long = "ipc")]
    pub ipc: Option<String>,
    /// PID namespace to use
    #[arg(long = "pid")]
    pub pid: Option<String>,
    /// Give extended privileges to this container
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    pub cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// GPU devices to add to the container ('all' to pass all GPUs)
    #[arg(long = "gpus")]
    pub gpus: Option<String>,
    /// Add a host device to the container
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Ulimit options
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long = "pull", default_value = "missing")]
    pub pull: String,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart", default_value = "no")]
    pub restart: String,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i64>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Add link to another container
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Sysctl options
    #[arg(long = "sysctl")]
    pub sysctl: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// The health-check flags.
    #[command(flatten)]
    pub health: crate::commands::health::HealthArgs,
    /// Image.
    pub image: String,
    /// Command and its arguments: everything after the image.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The create request built from the flags.
pub struct CreateRequest {
    /// Query (`name`, `platform`).
    pub query: query::CreateContainer,
    /// Body.
    pub body: ContainerCreateBody,
}

fn some_vec(v: &[String]) -> Option<Vec<String>> {
    if v.is_empty() { None } else { Some(v.to_vec()) }
}

/// Builds the create request docker would send for these flags.
pub fn build_create(
    a: &RunArgs,
    cwd: &std::path::Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<CreateRequest, CliError> {
    let mut env = Vec::new();
    for f in &a.env_file {
        let content = std::fs::read_to_string(f).map_err(|e| CliError::Opt(format!("open {f}: {e}")))?;
        env.extend(opts::parse_env_file(&content, lookup)?);
    }
    for e in &a.env {
        if let Some(v) = opts::resolve_env(e, lookup)? {
            env.push(v);
        }
    }
    let mut binds: Vec<String> = Vec::new();
    let mut anonymous: Vec<String> = Vec::new();
    for v in &a.volume {
        match opts::parse_volume(v, cwd)? {
            opts::VolumeArg::Bind(b) => binds.push(b),
            opts::VolumeArg::Anonymous(d) => anonymous.push(d),
        }
    }
    let mounts: Vec<_> = a.mount.iter().map(|m| opts::parse_mount(m, cwd)).collect::<Result<_, _>>()?;
    let mut tmpfs = HashMap::new();
    for t in &a.tmpfs {
        let (dst, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
        if !dst.starts_with('/') {
            return Err(CliError::Opt(format!("invalid tmpfs specification: '{t}'")));
        }
        tmpfs.insert(dst.to_owned(), o.to_owned());
    }
    let mut exposed = Vec::new();
    let mut bindings = PortMap::new();
    for p in &a.publish {
        opts::parse_publish(p, &mut exposed, &mut bindings)?;
    }
    for e in &a.expose {
        let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let (s, t) = match port.split_once('-') {
            Some((s, t)) => (s, t),
            None => (port, port),
        };
        let parse =
            |x: &str| x.parse::<u16>().map_err(|_| CliError::Opt(format!("invalid range format for --expose: {e}")));
        for p in parse(s)?..=parse(t)? {
            let k = format!("{p}/{proto}");
            if !exposed.contains(&k) {
                exposed.push(k);
            }
        }
    }
    let labels = opts::parse_kv_list(&a.label, "--label", false)?;
    let sysctls = opts::parse_kv_list(&a.sysctl, "--sysctl", true)?;
    let (security_opt, unconfined_paths) = opts::take_system_paths(opts::parse_security_opts(&a.security_opt, cwd)?);
    for h in &a.add_host {
        if !h.contains([':', '=']) {
            return Err(CliError::Opt(format!(
                "invalid argument \"{h}\" for \"--add-host\" flag: bad format for add-host: \"{h}\""
            )));
        }
    }
    if !matches!(a.pull.as_str(), "always" | "missing" | "never") {
        return Err(CliError::Opt(format!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            a.pull
        )));
    }
    let (rname, rcount) = opts::parse_restart(&a.restart)?;
    if a.rm && rname != "no" {
        return Err(CliError::Opt("conflicting options: cannot specify both --restart and --rm".to_owned()));
    }
    let restart_name: RestartPolicyNameEnum =
        rname.parse().map_err(|_| CliError::Opt(format!("invalid restart policy {rname}")))?;
    let device_requests = match &a.gpus {
        Some(g) => Some(vec![opts::parse_gpus(g)?]),
        None => None,
    };
    let mut device_requests = device_requests;
    let mut device_mappings = Vec::new();
    let mut cdi_devices = Vec::new();
    for d in &a.device {
        if opts::is_cdi_device(d) {
            cdi_devices.push(d.clone());
        } else {
            device_mappings.push(opts::parse_device(d)?);
        }
    }
    if !cdi_devices.is_empty() {
        // The docker CLI (25+) sends CDI names as one request for the "cdi" driver.
        device_requests.get_or_insert_with(Vec::new).push(DeviceRequest {
            driver: Some("cdi".to_owned()),
            device_ids: Some(cdi_devices),
            ..Default::default()
        });
    }
    for r in &a.device_cgroup_rule {
        opts::check_device_cgroup_rule(r)?;
    }
    let mut ulimits: Vec<berth_api::models::ResourcesUlimits> = Vec::new();
    for u in &a.ulimit {
        let u = opts::parse_ulimit(u)?;
        ulimits.retain(|x| x.name != u.name);
        ulimits.push(u);
    }
    ulimits.sort_by(|x, y| x.name.cmp(&y.name));
    if let Some(adj) = a.oom_score_adj
        && !(-1000..=1000).contains(&adj)
    {
        return Err(CliError::Opt(format!("invalid value {adj}, range for oom score adj is [-1000, 1000]")));
    }
    let memory_swap = match a.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        Some(s) => Some(opts::parse_bytes(s)?),
        None => None,
    };
    let streams: Vec<String> = a.attach.iter().map(|s| s.to_ascii_lowercase()).collect();
    for s in &streams {
        if !matches!(s.as_str(), "stdin" | "stdout" | "stderr") {
            return Err(CliError::Opt(format!(
                "invalid argument \"{s}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
            )));
        }
    }
    if a.detach && !streams.is_empty() {
        return Err(CliError::Opt("conflicting options: cannot specify both --attach and --detach".to_owned()));
    }
    let attached = |s: &str| !a.detach && (streams.is_empty() || streams.iter().any(|x| x == s));
    let attach_stdin = if streams.is_empty() { a.interactive && !a.detach } else { attached("stdin") };
    let (links, endpoint) = opts::network_endpoint(
        a.network.as_deref(),
        a.ip.as_deref(),
        a.mac_address.as_deref(),
        &a.network_alias,
        &a.link,
    )?;
    let host = HostConfig {
        binds: some_vec(&binds),
        volumes_from: some_vec(&a.volumes_from),
        mounts: if mounts.is_empty() { None } else { Some(mounts) },
        tmpfs: if tmpfs.is_empty() { None } else { Some(tmpfs) },
        auto_remove: Some(a.rm),
        network_mode: a.network.clone(),
        port_bindings: if bindings.is_empty() { None } else { Some(bindings) },
        publish_all_ports: Some(a.publish_all),
        init: a.init,
        ipc_mode: a.ipc.clone(),
        pid_mode: a.pid.clone(),
        privileged: Some(a.privileged),
        cap_add: some_vec(&a.cap_add),
        cap_drop: some_vec(&a.cap_drop),
        shm_size: a.shm_size.as_deref().map(opts::parse_bytes).transpose()?,
        memory: a.memory.as_deref().map(opts::parse_bytes).transpose()?,
        nano_cpus: a.cpus.as_deref().map(opts::parse_cpus).transpose()?,
        pids_limit: a.pids_limit,
        cpu_shares: a.cpu_shares,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        memory_reservation: a.memory_reservation.as_deref().map(opts::parse_bytes).transpose()?,
        blkio_weight: a.blkio_weight,
        device_requests,
        devices: (!device_mappings.is_empty()).then_some(device_mappings),
        device_cgroup_rules: some_vec(&a.device_cgroup_rule),
        ulimits: (!ulimits.is_empty()).then_some(ulimits),
        group_add: some_vec(&a.group_add),
        oom_score_adj: a.oom_score_adj,
        memory_swap,
        restart_policy: Some(RestartPolicy {
            name: Some(restart_name),
            maximum_retry_count: Some(rcount.unwrap_or(0)),
        }),
        extra_hosts: some_vec(&a.add_host),
        dns: some_vec(&a.dns),
        dns_search: some_vec(&a.dns_search),
        dns_options: some_vec(&a.dns_option),
        links: some_vec(&links),
        readonly_rootfs: Some(a.read_only),
        security_opt: some_vec(&security_opt),
        masked_paths: unconfined_paths.then(Vec::new),
        readonly_paths: unconfined_paths.then(Vec::new),
        sysctls: if sysctls.is_empty() { None } else { Some(sysctls) },
        log_config: (a.log_driver.is_some() || !a.log_opt.is_empty()).then(|| berth_api::models::HostConfigLogConfig {
            typ: a.log_driver.clone(),
            config: Some(
                a.log_opt
                    .iter()
                    .map(|o| o.split_once('=').unwrap_or((o, "")))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
        }),
        ..Default::default()
    };
    let entrypoint = a.entrypoint.as_ref().map(|e| vec![e.clone()]);
    let body = ContainerCreateBody {
        hostname: a.hostname.clone(),
        user: a.user.clone(),
        attach_stdin: Some(attach_stdin),
        attach_stdout: Some(attached("stdout")),
        attach_stderr: Some(attached("stderr")),
        exposed_ports: some_vec(&exposed),
        tty: Some(a.tty),
        open_stdin: Some(a.interactive),
        stdin_once: Some(attach_stdin),
        env: some_vec(&env),
        cmd: some_vec(&a.command),
        image: Some(a.image.clone()),
        working_dir: a.workdir.clone(),
        entrypoint,
        labels: if labels.is_empty() { None } else { Some(labels) },
        stop_signal: a.stop_signal.clone(),
        stop_timeout: a.stop_timeout,
        healthcheck: a.health.config()?,
        host_config: Some(host),
        volumes: some_vec(&anonymous),
        networking_config: endpoint,
        ..Default::default()
    };
    Ok(CreateRequest { query: query::CreateContainer { name: a.name.clone(), platform: a.platform.clone() }, body })
}

/// Prints a run/create failure docker-style and returns 125.
fn fail(cmd: &str, msg: &str) -> i32 {
    let msg = msg.trim_end_matches('.');
    err_line(&format!("berth: {msg}."));
    err_line("");
    err_line(&format!("Run 'berth {cmd} --help' for more information"));
    125
}

/// A failed create: `run` exits as the docker CLI's toStatusError says (127 for a missing
/// file, such as a `--device` path, 126 for permission denied), `create` with 125.
fn create_failed(cmd: &str, create_only: bool, e: &ClientError) -> i32 {
    fail(cmd, &daemon_msg(e));
    if create_only { 125 } else { start_error_code(&e.to_string()) }
}

fn daemon_msg(e: &ClientError) -> String {
    match e {
        ClientError::Daemon { .. } => format!("Error response from daemon: {e}"),
        e => e.to_string(),
    }
}

/// Docker's exit code for a start failure: 127 not found, 126 not executable, else 125.
pub fn start_error_code(msg: &str) -> i32 {
    let m = msg.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        125
    }
}

async fn pull(c: &Client, image: &str, platform: Option<&str>) -> Result<(), CliError> {
    let (name, tag) = berth_base::reference::pull_parts(image);
    let auth = super::registry::load_auth(&super::registry::registry_key(image))?;
    let mut s = c.pull_image_auth(&name, Some(&tag), platform, &auth).await?;
    while let Some(m) = s.next_message().await {
        let m = m?;
        if let Some(e) = m.error.or(m.error_detail.map(|d| d.message)) {
            return Err(CliError::Message(e));
        }
        if let Some(st) = m.status {
            match m.id {
                Some(id) if !id.is_empty() => err_line(&format!("{id}: {st}")),
                _ => err_line(&st),
            }
        }
    }
    Ok(())
}

/// `run` (or `create` when `create_only`): returns the exit code.
pub async fn run(c: &Client, a: RunArgs, create_only: bool) -> i32 {
    let cmd = if create_only { "create" } else { "run" };
    let cwd = std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"));
    let mut req = match build_create(&a, &cwd, &|k| std::env::var(k).ok()) {
        Ok(r) => r,
        Err(e) => return fail(cmd, &format!("Error response from daemon: {e}")),
    };
    // As docker's `run -t` does: the terminal's size goes with the create, so the command
    // sees it from its start (the resize after attaching comes later).
    if a.tty
        && !create_only
        && let (Some(hc), Some((h, w))) = (req.body.host_config.as_mut(), window_size())
    {
        hc.console_size = Some(vec![usize::from(h), usize::from(w)]);
    }
    if a.pull == "always" {
        if let Err(e) = pull(c, &a.image, a.platform.as_deref()).await {
            return fail(cmd, &cli_msg(&e));
        }
    }
    let created = match c.create_container(&req.query, &req.body).await {
        Ok(r) => r,
        Err(e) if e.status() == Some(404) && e.to_string().contains("No such image") && a.pull == "missing" => {
            let (name, tag) = berth_base::reference::pull_parts(&a.image);
            err_line(&format!("Unable to find image '{name}:{tag}' locally"));
            if let Err(e) = pull(c, &a.image, a.platform.as_deref()).await {
                return fail(cmd, &cli_msg(&e));
            }
            match c.create_container(&req.query, &req.body).await {
                Ok(r) => r,
                Err(e) => return create_failed(cmd, create_only, &e),
            }
        }
        Err(e) => return create_failed(cmd, create_only, &e),
    };
    for w in &created.warnings {
        err_line(&format!("WARNING: {w}"));
    }
    let id = created.id;
    if create_only {
        out(&format!("{id}\n"));
        return 0;
    }
    if a.detach {
        if let Err(e) = c.start_container(&id).await {
            let code = start_error_code(&e.to_string());
            if a.rm {
                let _ = c.remove_container(&id, &query::RemoveContainer { force: true, ..Default::default() }).await;
            }
            fail(cmd, &daemon_msg(&e));
            return code;
        }
        out(&format!("{id}\n"));
        return 0;
    }
    let body = &req.body;
    let streams = Streams {
        stdin: body.attach_stdin.unwrap_or(false),
        stdout: body.attach_stdout.unwrap_or(true),
        stderr: body.attach_stderr.unwrap_or(true),
    };
    let cond = if a.rm { "removed" } else { "next-exit" };
    match attached(c, &id, a.tty, streams, cond, a.detach_keys.clone(), true).await {
        Ok(code) => code,
        Err(Attached::Start(e)) => {
            let code = start_error_code(&e.to_string());
            if a.rm {
                let _ = c.remove_container(&id, &query::RemoveContainer { force: true, ..Default::default() }).await;
            }
            fail(cmd, &daemon_msg(&e));
            code
        }
        Err(Attached::Other(e)) => fail(cmd, &cli_msg(&e)),
    }
}

fn cli_msg(e: &CliError) -> String {
    match e {
        CliError::Client(c) => daemon_msg(c),
        e => e.to_string(),
    }
}

/// `start -a [-i]`: attaches to an existing container, starts it and returns its exit code.
pub async fn start_attached(
    c: &Client,
    name: &str,
    interactive: bool,
    detach_keys: Option<String>,
) -> Result<i32, CliError> {
    let info = c.inspect_container(name, &query::InspectContainer::default()).await?;
    let cfg = info.config.clone().unwrap_or_default();
    let tty = cfg.tty.unwrap_or(false);
    let streams = Streams { stdin: interactive && cfg.open_stdin.unwrap_or(false), stdout: true, stderr: true };
    let id = info.id.clone().unwrap_or_else(|| name.to_owned());
    match attached(c, &id, tty, streams, "next-exit", detach_keys, true).await {
        Ok(code) => Ok(code),
        Err(Attached::Start(e)) => Err(e.into()),
        Err(Attached::Other(e)) => Err(e),
    }
}

/// Which standard streams to attach.
#[derive(Debug, Clone, Copy)]
pub struct Streams {
    /// Forward our stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
}

enum Attached {
    Start(ClientError),
    Other(CliError),
}

impl From<ClientError> for Attached {
    fn from(e: ClientError) -> Self {
        Attached::Other(e.into())
    }
}

/// Puts the local terminal in raw mode and restores it when dropped (every exit path).
pub(crate) struct RawGuard {
    saved: rustix::termios::Termios,
}

impl RawGuard {
    pub(crate) fn new() -> Option<RawGuard> {
        let fd = std::io::stdin();
        if !rustix::termios::isatty(fd.as_fd()) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(fd.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(fd.as_fd(), rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawGuard { saved })
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin().as_fd(), rustix::termios::OptionalActions::Now, &self.saved);
    }
}

pub(crate) fn window_size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout().as_fd())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin().as_fd()))
        .ok()?;
    if ws.ws_row == 0 || ws.ws_col == 0 { None } else { Some((ws.ws_row, ws.ws_col)) }
}

/// Attach, wait, start (when `start`), pump stdio, and return the exit code.
async fn attached(
    c: &Client,
    id: &str,
    tty: bool,
    streams: Streams,
    condition: &str,
    detach_keys: Option<String>,
    start: bool,
) -> Result<i32, Attached> {
    // The flag, else `detachKeys` from the client's config file, as the docker CLI sends.
    let detach_keys = detach_keys.filter(|k| !k.is_empty()).or_else(crate::commands::exec::configured_detach_keys);
    let q_keys = detach_keys.clone();
    let q = query::AttachContainer {
        stream: true,
        logs: false,
        stdin: streams.stdin,
        stdout: streams.stdout,
        stderr: streams.stderr,
        detach_keys,
    };
    let io = c.attach_container(id, &q).await?;
    let waiter = c.wait_container(id, &query::WaitContainer { condition: Some(condition.to_owned()) }).await?;
    if start {
        c.start_container(id).await.map_err(Attached::Start)?;
    }
    // The config file was read above: once per command.
    let keys = crate::commands::exec::parse_detach_keys(q_keys.as_deref().unwrap_or("")).map_err(Attached::Other)?;
    let ended = crate::commands::exec::pump(io, tty, streams.stdin, keys, |h, w| async move {
        let _ = c.resize_container(id, h, w).await;
    })
    .await
    .map_err(Attached::Other)?;
    if ended == crate::commands::exec::Ended::Detached {
        // The user typed the detach keys: the container runs on; docker's run and start
        // end quietly with 0.
        return Ok(0);
    }
    let status = waiter.result().await?;
    if let Some(msg) = status.error.and_then(|e| e.message).filter(|m| !m.is_empty()) {
        err_line(&format!("berth: {msg}"));
    }
    Ok(i32::try_from(status.status_code).unwrap_or(125))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Cmd};
    use clap::Parser;

    fn args(v: &[&str]) -> RunArgs {
        let mut all = vec!["berth", "run"];
        all.extend_from_slice(v);
        match Cli::try_parse_from(all).unwrap().cmd {
            Some(Cmd::Run(r)) => r,
            _ => panic!("not run"),
        }
    }

    fn build(v: &[&str]) -> Result<CreateRequest, CliError> {
        build_create(&args(v), std::path::Path::new("/w"), &|k| (k == "FOO").then(|| "bar".to_owned()))
    }

    #[test]
    fn create_body() {
        let r = build(&[
            "--name",
            "web",
            "--rm",
            "-e",
            "A=1",
            "-e",
            "FOO",
            "-e",
            "UNSET",
            "-v",
            "./out:/out:ro",
            "-p",
            "8080:80",
            "-it",
            "--entrypoint",
            "",
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--network",
            "none",
            "img",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        assert_eq!(r.query.name.as_deref(), Some("web"));
        let b = r.body;
        assert_eq!(b.env, Some(vec!["A=1".to_owned(), "FOO=bar".to_owned()]));
        assert_eq!(b.cmd, Some(vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()]));
        assert_eq!(b.entrypoint, Some(vec![String::new()]));
        assert_eq!(
            (b.tty, b.open_stdin, b.attach_stdin, b.stdin_once),
            (Some(true), Some(true), Some(true), Some(true))
        );
        assert_eq!(b.exposed_ports, Some(vec!["80/tcp".to_owned()]));
        let h = b.host_config.unwrap();
        assert_eq!(h.binds, Some(vec!["/w/out:/out:ro".to_owned()]));
        assert_eq!(h.auto_remove, Some(true));
        assert_eq!(h.memory, Some(64 << 20));
        assert_eq!(h.nano_cpus, Some(500_000_000));
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        let json = serde_json::to_value(&b.exposed_ports).unwrap();
        assert!(json.is_array() || json.is_object());
        let d = build(&["-d", "img"]).unwrap().body;
        assert_eq!((d.attach_stdout, d.attach_stdin, d.cmd.clone()), (Some(false), Some(false), None));
        assert_eq!(
            build(&["-v", "a:b:c:d", "img"]).err().unwrap().to_string(),
            "invalid volume specification: 'a:b:c:d'"
        );
        assert!(build(&["--rm", "--restart", "always", "img"]).is_err());
        assert!(build(&["--pull", "sometimes", "img"]).is_err());
        let g = build(&["--gpus", "all", "--restart", "on-failure:2", "img"]).unwrap().body.host_config.unwrap();
        assert_eq!(g.device_requests.unwrap()[0].count, Some(-1));
        assert_eq!(g.restart_policy.unwrap().maximum_retry_count, Some(2));
    }

    #[test]
    fn exit_codes() {
        assert_eq!(start_error_code("exec: \"nope\": executable file not found in $PATH"), 127);
        assert_eq!(start_error_code("open /x: no such file or directory"), 127);
        assert_eq!(start_error_code("exec /etc/passwd: permission denied"), 126);
        assert_eq!(start_error_code("something else"), 125);
    }
}
