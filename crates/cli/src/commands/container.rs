//! Container commands: start, stop, kill, wait, logs, rm, ps, restart, pause, unpause,
//! rename, top, update.

use std::collections::BTreeMap;

use berth_api::Client;
use berth_api::models::ContainerSummary;
use berth_api::query;
use berth_api::stdcopy::{Decoder, Stream};
use clap::Args;

use super::{Res, each, go_time, now, parse_filters, short};
use crate::CliError;
use crate::format::{Format, ago, align, ellipsis, human_size, render, string_map};
use crate::output::{out, out_bytes, print_error};

#[cfg_attr(doc, doc = "`start`.")]
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long = "attach")]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `start`: prints each name, or attaches to the one container with `-a`.
pub async fn start(c: &Client, a: StartArgs) -> Res {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            return Err(CliError::Message("you cannot start and attach multiple containers at once".to_owned()));
        }
        let code = crate::run::start_attached(c, &a.containers[0], a.interactive, a.detach_keys).await?;
        return if code == 0 { Ok(()) } else { Err(CliError::Status(code)) };
    }
    each(&a.containers, |n| async move {
        c.start_container(&n).await?;
        out(&format!("{n}\n"));
        Ok(())
    })
    .await
}

#[cfg_attr(doc, doc = "`stop`.")]
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout")]
    pub time: Option<i64>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `stop`.
pub async fn stop(c: &Client, a: StopArgs) -> Res {
    let q = query::StopContainer { t: a.time, signal: a.signal.clone() };
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            c.stop_container(&n, &q).await?;
            out(&format!("{n}\n"));
            Ok(())
        }
    })
    .await
}

#[cfg_attr(doc, doc = "`kill`.")]
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `kill`.
pub async fn kill(c: &Client, a: KillArgs) -> Res {
    let q = query::KillContainer { signal: a.signal.clone() };
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            c.kill_container(&n, &q).await?;
            out(&format!("{n}\n"));
            Ok(())
        }
    })
    .await
}

#[cfg_attr(doc, doc = "Commands taking only container names.")]
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `wait`: prints each exit code.
pub async fn wait(c: &Client, a: NamesArgs) -> Res {
    each(&a.containers, |n| async move {
        let h = c.wait_container(&n, &query::WaitContainer::default()).await?;
        let r = h.result().await?;
        out(&format!("{}\n", r.status_code));
        Ok(())
    })
    .await
}

#[cfg_attr(doc, doc = "`logs`.")]
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,
    /// Show timestamps
    #[arg(short = 't', long = "timestamps")]
    pub timestamps: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long = "tail", default_value = "all")]
    pub tail: String,
    /// Show logs since timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long = "since")]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative
    #[arg(long = "until")]
    pub until: Option<String>,
    /// Show extra details provided to logs
    #[arg(long = "details")]
    pub details: bool,
    /// Container.
    pub container: String,
}

/// Turns docker's `--since` forms (unix seconds, RFC 3339, relative `42m`) into unix seconds.
pub fn parse_since(s: &str, now: i64) -> Result<String, CliError> {
    if s.is_empty() {
        return Ok(String::new());
    }
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_owned());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        // Nanoseconds kept, as the docker CLI sends them: `logs --since <StartedAt>` must
        // not reach back to the start of that second.
        return Ok(format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos()));
    }
    let bad = || {
        CliError::Message(format!("invalid value for \"since\": failed to parse value as time or duration: \"{s}\""))
    };
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => return Err(bad()),
            }
        };
        total += n * unit;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(((now as f64) - total).floor().to_string())
}

/// `logs`.
pub async fn logs(c: &Client, a: LogsArgs) -> Res {
    let info = c.inspect_container(&a.container, &query::InspectContainer::default()).await?;
    let tty = info.config.as_ref().and_then(|c| c.tty).unwrap_or(false);
    let q = query::Logs {
        follow: a.follow,
        stdout: true,
        stderr: true,
        since: a.since.as_deref().map(|s| parse_since(s, now())).transpose()?,
        until: a.until.as_deref().map(|s| parse_since(s, now())).transpose()?,
        timestamps: a.timestamps,
        tail: Some(a.tail.clone()),
    };
    let mut s = c.container_logs(&a.container, &q).await?;
    let mut d = Decoder::default();
    while let Some(chunk) = s.next_chunk().await {
        let chunk = chunk?;
        if tty {
            out_bytes(Stream::Stdout, &chunk);
            continue;
        }
        d.feed(&chunk);
        while let Some((stream, data)) = d.next_frame()? {
            out_bytes(stream, &data);
        }
    }
    Ok(())
}

#[cfg_attr(doc, doc = "`rm`.")]
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long = "link")]
    pub link: bool,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// `rm`.
pub async fn rm(c: &Client, a: RmArgs) -> Res {
    let q = query::RemoveContainer { force: a.force, v: a.volumes, link: a.link };
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            c.remove_container(n.trim_matches('/'), &q).await?;
            out(&format!("{n}\n"));
            Ok(())
        }
    })
    .await
}

#[cfg_attr(doc, doc = "`ps`.")]
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long = "latest")]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long = "size")]
    pub size: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
}

/// The PORTS column as docker 20.10's `ps` prints it (docker-cli's `DisplayablePorts`):
/// ports sorted by container port, address, host port and protocol; runs of consecutive
/// ports published on the same port number of the host grouped into ranges
/// (`0.0.0.0:8000-8002->8000-8002/tcp`), unpublished ones too (`8000-8002/tcp`); a run
/// that a gap ends is listed at once, the runs still open after all ports in the order
/// they began, and mappings to another host port last.
fn ports_string(c: &ContainerSummary) -> String {
    struct Row {
        private: u16,
        public: u16,
        ip: String,
        proto: String,
    }
    let mut rows: Vec<Row> = c
        .ports
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|p| Row {
            private: p.private_port,
            public: p.public_port.unwrap_or(0),
            ip: p.ip.clone().unwrap_or_default(),
            proto: p.typ.map(|t| t.to_string()).filter(|t| !t.is_empty()).unwrap_or_else(|| "tcp".to_owned()),
        })
        .collect();
    rows.sort_by(|a, b| (a.private, &a.ip, a.public, &a.proto).cmp(&(b.private, &b.ip, b.public, &b.proto)));
    let form = |(ip, proto): &(String, String), first: u16, last: u16| {
        let mut g = first.to_string();
        if first != last {
            g = format!("{g}-{last}");
        }
        if !ip.is_empty() {
            g = format!("{ip}:{g}->{g}");
        }
        format!("{g}/{proto}")
    };
    // Groups in the order their keys first appear; a key's finished runs go out at once.
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut open: Vec<(u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for r in rows {
        if !r.ip.is_empty() && r.public != r.private {
            mappings.push(format!("{}:{}->{}/{}", r.ip, r.public, r.private, r.proto));
            continue;
        }
        let key = (r.ip.clone(), r.proto.clone());
        match keys.iter().position(|k| *k == key) {
            None => {
                keys.push(key);
                open.push((r.private, r.private));
            }
            Some(i) if open[i].1.checked_add(1) == Some(r.private) => open[i].1 = r.private,
            Some(i) => {
                result.push(form(&keys[i], open[i].0, open[i].1));
                open[i] = (r.private, r.private);
            }
        }
    }
    for (k, (first, last)) in keys.iter().zip(open) {
        result.push(form(k, first, last));
    }
    result.extend(mappings);
    result.join(", ")
}

/// The fields docker's `ps` formatter exposes, as strings.
pub fn ps_context(c: &ContainerSummary, trunc: bool, now: i64) -> Vec<(&'static str, String)> {
    PS_HEADERS.iter().map(|(k, _)| (*k, ps_field(c, k, trunc, now))).collect()
}

/// One field of [`ps_context`] (an empty string for a name it does not have): computed
/// alone, so the default table pays only for its seven columns.
fn ps_field(c: &ContainerSummary, field: &str, trunc: bool, now: i64) -> String {
    match field {
        "ID" => {
            let id = c.id.as_deref().unwrap_or_default();
            if trunc { short(id) } else { id.to_owned() }
        }
        "Image" => c.image.clone().unwrap_or_default(),
        "Command" => {
            let cmd = c.command.as_deref().unwrap_or_default();
            if trunc { format!("\"{}\"", ellipsis(cmd, 20)) } else { format!("\"{cmd}\"") }
        }
        "CreatedAt" => go_time(c.created.unwrap_or(0)),
        "RunningFor" => ago(c.created.unwrap_or(0), now),
        "Ports" => ports_string(c),
        "State" => c.state.map(|s| s.to_string()).unwrap_or_default(),
        "Status" => c.status.clone().unwrap_or_default(),
        "Size" => match (c.size_rw, c.size_root_fs) {
            (None, None) => "0B".to_owned(),
            (rw, root) => {
                let s = human_size(rw.unwrap_or(0) as f64);
                match root {
                    Some(r) if r > 0 => format!("{s} (virtual {})", human_size(r as f64)),
                    _ => s,
                }
            }
        },
        "Names" => {
            let names = c.names.iter().flatten().map(|n| n.trim_start_matches('/'));
            // Docker hides link aliases (names with a further slash) unless --no-trunc.
            names.filter(|n| !trunc || !n.contains('/')).collect::<Vec<_>>().join(",")
        }
        "Labels" => {
            let mut labels: Vec<String> = c.labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            labels.join(",")
        }
        "Mounts" => c
            .mounts
            .iter()
            .flatten()
            .map(|m| {
                let n =
                    m.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| m.source.clone().unwrap_or_default());
                if trunc { ellipsis(&n, 15) } else { n }
            })
            .collect::<Vec<_>>()
            .join(","),
        "Networks" => {
            let mut nets: Vec<&str> = c
                .network_settings
                .iter()
                .filter_map(|n| n.networks.as_ref())
                .flatten()
                .map(|(k, _)| k.as_str())
                .collect();
            nets.sort();
            nets.join(",")
        }
        "LocalVolumes" => {
            c.mounts.as_ref().map(|m| m.iter().filter(|m| m.name.is_some()).count()).unwrap_or(0).to_string()
        }
        _ => String::new(),
    }
}

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
];

/// Renders `ps` output (table or `--format`) from the daemon's list.
pub fn ps_output(list: &[ContainerSummary], a: &PsArgs, now: i64) -> Result<String, CliError> {
    let trunc = !a.no_trunc;
    if a.quiet && a.format.is_none() {
        return Ok(list.iter().map(|c| format!("{}\n", ps_field(c, "ID", trunc, now))).collect());
    }
    let fmt = match &a.format {
        Some(f) if f != "table" => f.clone(),
        _ => return Ok(ps_default_table(list, a.size, trunc, now)),
    };
    let rows: Vec<_> = list.iter().map(|c| string_map(&ps_context(c, trunc, now))).collect();
    let headers: BTreeMap<&str, &str> = PS_HEADERS.iter().copied().collect();
    Ok(render(&Format::new(&fmt), &headers, &rows)?)
}

/// The columns of `ps`'s default table (`--size` adds `Size`).
const PS_TABLE: &[&str] = &["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"];

/// `ps`'s default table, the same text as rendering `table {{.ID}}\t{{.Image}}…` through
/// the template engine (a field prints as its plain string there), written directly: every
/// `ps` without `--format` pays for this, once per container.
fn ps_default_table(list: &[ContainerSummary], size: bool, trunc: bool, now: i64) -> String {
    let cols: Vec<&str> = PS_TABLE.iter().copied().chain(size.then_some("Size")).collect();
    let header = |k: &&str| PS_HEADERS.iter().find(|(f, _)| f == k).map_or("", |(_, h)| h);
    let mut lines = vec![cols.iter().map(header).collect::<Vec<_>>().join("\t")];
    for c in list {
        let row = cols.iter().map(|k| ps_field(c, k, trunc, now)).collect::<Vec<_>>().join("\t");
        // As the template path: a field with a newline continues on the next table line.
        lines.extend(row.split('\n').map(str::to_owned));
    }
    align(&lines)
}

/// `ps`.
pub async fn ps(c: &Client, a: PsArgs) -> Res {
    let limit = if a.latest {
        Some(1)
    } else if a.last > 0 {
        Some(a.last)
    } else {
        None
    };
    let q = query::ListContainers { all: a.all, limit, size: a.size, filters: parse_filters(&a.filter)? };
    let list = c.list_containers(&q).await?;
    out(&ps_output(&list, &a, now())?);
    Ok(())
}

/// `restart`.
pub async fn restart(c: &Client, a: StopArgs) -> Res {
    let q = query::StopContainer { t: a.time, signal: a.signal.clone() };
    each(&a.containers, |n| {
        let q = q.clone();
        async move {
            c.restart_container(&n, &q).await?;
            out(&format!("{n}\n"));
            Ok(())
        }
    })
    .await
}

/// `pause`.
pub async fn pause(c: &Client, a: NamesArgs) -> Res {
    each(&a.containers, |n| async move {
        c.pause_container(&n).await?;
        out(&format!("{n}\n"));
        Ok(())
    })
    .await
}

/// `unpause`.
pub async fn unpause(c: &Client, a: NamesArgs) -> Res {
    each(&a.containers, |n| async move {
        c.unpause_container(&n).await?;
        out(&format!("{n}\n"));
        Ok(())
    })
    .await
}

#[cfg_attr(doc, doc = "`rename`.")]
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container.
    pub container: String,
    /// Its new name.
    pub new_name: String,
}

/// `rename`: prints nothing on success, as docker.
pub async fn rename(c: &Client, a: RenameArgs) -> Res {
    let (old, new) = (a.container.trim(), a.new_name.trim());
    if old.is_empty() || new.is_empty() {
        return Err(CliError::Message("Error: Neither old nor new names may be empty".to_owned()));
    }
    if let Err(e) = c.rename_container(old, &query::RenameContainer { name: new.to_owned() }).await {
        print_error(&e.into());
        return Err(CliError::Message(format!("Error: failed to rename container named {old}")));
    }
    Ok(())
}

#[cfg_attr(doc, doc = "`top`.")]
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container.
    pub container: String,
    /// Options for ps.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `top`: the processes in docker's tabwriter layout (min width 20, padding 3).
pub async fn top(c: &Client, a: TopArgs) -> Res {
    let q = query::TopContainer { ps_args: (!a.ps_args.is_empty()).then(|| a.ps_args.join(" ")) };
    let t = c.top_container(&a.container, &q).await?;
    let mut rows = vec![t.titles.unwrap_or_default()];
    rows.extend(t.processes.unwrap_or_default());
    out(&tab_table(&rows, 20, 3));
    Ok(())
}

/// Go's tabwriter with `minwidth` and `padding`: every cell but the last of a row padded.
pub fn tab_table(rows: &[Vec<String>], minwidth: usize, padding: usize) -> String {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut s = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            s.push_str(c);
            if i + 1 < r.len() {
                let w = (widths[i] + padding).max(minwidth);
                s.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
        }
        s.push('\n');
    }
    s
}

#[cfg_attr(doc, doc = "`update`.")]
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart")]
    pub restart: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// The update body docker's CLI sends for these flags.
pub fn update_body(a: &UpdateArgs) -> Result<berth_api::models::ContainerUpdateBody, CliError> {
    use crate::opts::{parse_bytes, parse_cpus, parse_restart};
    let bytes = |v: &Option<String>| -> Result<Option<i64>, CliError> {
        v.as_deref().map(|s| if s == "-1" { Ok(-1) } else { parse_bytes(s) }).transpose()
    };
    let restart_policy = match &a.restart {
        None => None,
        Some(r) => {
            let (name, count) = parse_restart(r)?;
            let name = name.parse().map_err(|_| CliError::Opt(format!("invalid restart policy {name}")))?;
            Some(berth_api::models::RestartPolicy { name: Some(name), maximum_retry_count: count })
        }
    };
    let body = berth_api::models::ContainerUpdateBody {
        blkio_weight: a.blkio_weight,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpu_shares: a.cpu_shares,
        nano_cpus: a.cpus.as_deref().map(parse_cpus).transpose()?,
        cpuset_cpus: a.cpuset_cpus.clone(),
        cpuset_mems: a.cpuset_mems.clone(),
        memory: bytes(&a.memory)?,
        memory_reservation: bytes(&a.memory_reservation)?,
        memory_swap: bytes(&a.memory_swap)?,
        pids_limit: a.pids_limit,
        restart_policy,
        ..Default::default()
    };
    if body == berth_api::models::ContainerUpdateBody::default() {
        return Err(CliError::Message("you must provide one or more flags when using this command".to_owned()));
    }
    Ok(body)
}

/// `update`: prints each name that was updated, then every warning the daemon gave, on
/// stdout as docker's CLI prints them.
pub async fn update(c: &Client, a: UpdateArgs) -> Res {
    let body = update_body(&a)?;
    let warnings = std::sync::Mutex::new(Vec::new());
    let res = each(&a.containers, |n| {
        let body = body.clone();
        let warnings = &warnings;
        async move {
            let r = c.update_container(&n, &body).await?;
            out(&format!("{n}\n"));
            if let Ok(mut w) = warnings.lock() {
                w.extend(r.warnings.unwrap_or_default());
            }
            Ok(())
        }
    })
    .await;
    let warnings = warnings.into_inner().unwrap_or_default();
    if !warnings.is_empty() {
        out(&format!("{}\n", warnings.join("\n")));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::{ContainerSummaryStateEnum, PortSummary, PortSummaryTypeEnum};

    fn ps_args() -> PsArgs {
        PsArgs {
            all: true,
            quiet: false,
            no_trunc: false,
            last: -1,
            latest: false,
            size: false,
            format: None,
            filter: vec![],
        }
    }

    fn container() -> ContainerSummary {
        ContainerSummary {
            id: Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned()),
            names: Some(vec!["/web".to_owned()]),
            image: Some("busybox".to_owned()),
            command: Some("sh -c 'sleep 1000; echo done'".to_owned()),
            created: Some(1000),
            state: Some(ContainerSummaryStateEnum::RUNNING),
            status: Some("Up 3 minutes".to_owned()),
            ports: Some(vec![PortSummary {
                ip: Some("0.0.0.0".to_owned()),
                private_port: 80,
                public_port: Some(8080),
                typ: Some(PortSummaryTypeEnum::TCP),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn ps_ports_are_grouped_into_ranges_as_docker_prints_them() {
        let port = |ip: &str, private: u16, public: u16, udp: bool| PortSummary {
            ip: (!ip.is_empty()).then(|| ip.to_owned()),
            private_port: private,
            public_port: (public != 0).then_some(public),
            typ: Some(if udp { PortSummaryTypeEnum::UDP } else { PortSummaryTypeEnum::TCP }),
        };
        let mut c = container();
        let mut ports = Vec::new();
        for p in [8002, 8000, 8001] {
            ports.push(port("0.0.0.0", p, p, false));
            ports.push(port("::", p, p, false));
        }
        c.ports = Some(ports.clone());
        assert_eq!(ports_string(&c), "0.0.0.0:8000-8002->8000-8002/tcp, :::8000-8002->8000-8002/tcp");
        ports.push(port("0.0.0.0", 80, 4000, false));
        ports.push(port("::", 80, 4000, false));
        ports.push(port("", 9000, 0, true));
        ports.push(port("", 9001, 0, true));
        ports.push(port("", 9003, 0, true));
        c.ports = Some(ports);
        assert_eq!(
            ports_string(&c),
            // As docker-cli does: a run a gap ends is listed at once, the open runs after.
            "9000-9001/udp, 0.0.0.0:8000-8002->8000-8002/tcp, :::8000-8002->8000-8002/tcp, 9003/udp, \
             0.0.0.0:4000->80/tcp, :::4000->80/tcp"
        );
    }

    #[test]
    fn ps_table() {
        let out = ps_output(&[container()], &ps_args(), 1005).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                  NAMES"
        );
        assert_eq!(
            lines[1],
            "0123456789ab   busybox   \"sh -c 'sleep 1000; …\"   5 seconds ago   Up 3 minutes   0.0.0.0:8080->80/tcp   web"
        );
        let empty = ps_output(&[], &ps_args(), 0).unwrap();
        assert_eq!(empty, "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n");
        let q = ps_output(&[container()], &PsArgs { quiet: true, ..ps_args() }, 0).unwrap();
        assert_eq!(q, "0123456789ab\n");
        let f = ps_output(&[container()], &PsArgs { format: Some("{{.Names}} {{.State}}".into()), ..ps_args() }, 0)
            .unwrap();
        assert_eq!(f, "web running\n");
        let f =
            ps_output(&[container()], &PsArgs { format: Some("table {{.ID}}\\t{{.Image}}".into()), ..ps_args() }, 0)
                .unwrap();
        assert_eq!(f, "CONTAINER ID   IMAGE\n0123456789ab   busybox\n");
    }

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("1700000000", 0).unwrap(), "1700000000");
        assert_eq!(parse_since("2023-11-14T22:13:20.5Z", 0).unwrap(), "1700000000.500000000");
        assert_eq!(parse_since("2023-11-14T22:13:20Z", 0).unwrap(), "1700000000.000000000");
        assert_eq!(parse_since("10m", 1000).unwrap(), "400");
        assert_eq!(parse_since("1h30m", 10000).unwrap(), "4600");
        assert_eq!(parse_since("2024-01-01T00:00:00Z", 0).unwrap(), "1704067200.000000000");
        assert!(parse_since("yesterday", 0).is_err());
    }
}

#[cfg_attr(doc, doc = "`export`.")]
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// The container.
    pub container: String,
}

/// `export`: the container's filesystem as a tar, to `-o FILE` or a stdout that is not a
/// terminal.
pub async fn export(c: &Client, a: ExportArgs) -> Res {
    use tokio::io::AsyncWriteExt;
    if a.output.is_none() && rustix::termios::isatty(std::io::stdout()) {
        return Err(CliError::Message("cowardly refusing to save to a terminal. Use the -o flag or redirect".into()));
    }
    let mut s = c.export_container(&a.container).await?;
    let mut w: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &a.output {
        Some(o) => Box::new(
            tokio::fs::File::create(o)
                .await
                .map_err(|e| CliError::Message(format!("failed to export container: {e}")))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    while let Some(chunk) = s.next_chunk().await {
        w.write_all(&chunk?).await?;
    }
    w.flush().await?;
    Ok(())
}

/// `diff`: `C /etc`, `A /etc/x`, `D /x`, sorted by path.
pub async fn diff(c: &Client, a: NamesArgs) -> Res {
    for n in &a.containers {
        for ch in c.container_changes(n).await? {
            let letter = match ch.kind {
                berth_api::models::ChangeType::_0 => "C",
                berth_api::models::ChangeType::_1 => "A",
                berth_api::models::ChangeType::_2 => "D",
            };
            out(&format!("{letter} {}\n", ch.path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod ps_table_tests {
    use super::*;

    /// The default table written directly is the text the template engine renders for it.
    #[test]
    fn default_table_is_the_template_s_text() {
        let list: Vec<ContainerSummary> = serde_json::from_value(serde_json::json!([
            {"Id": "0123456789abcdef0123456789abcdef", "Names": ["/web", "/other/alias"], "Image": "nginx:latest",
             "Command": "nginx -g 'daemon off;' with a long tail", "Created": 1_700_000_000, "State": "running",
             "Status": "Up 3 minutes (healthy)", "SizeRw": 12, "SizeRootFs": 4096,
             "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"},
                       {"PrivatePort": 81, "Type": "udp"}],
             "Labels": {"b": "2", "a": "1"}, "Mounts": [{"Name": "data", "Source": "/x"}],
             "NetworkSettings": {"Networks": {"bridge": {}, "apps": {}}}},
            {"Id": "fedcba9876543210", "Names": ["/été"], "Image": "busybox", "Command": "sh -c 'echo a\nb'",
             "Created": 1_700_000_500, "State": "exited", "Status": "Exited (0) 2 seconds ago"},
            {}
        ]))
        .unwrap();
        let now = 1_700_000_600;
        let headers: BTreeMap<&str, &str> = PS_HEADERS.iter().copied().collect();
        for size in [false, true] {
            for trunc in [true, false] {
                let mut fmt =
                    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
                        .to_owned();
                if size {
                    fmt.push_str("\t{{.Size}}");
                }
                let rows: Vec<_> = list.iter().map(|c| string_map(&ps_context(c, trunc, now))).collect();
                let via_template = render(&Format::new(&fmt), &headers, &rows).unwrap();
                assert_eq!(ps_default_table(&list, size, trunc, now), via_template, "size {size} trunc {trunc}");
            }
        }
        assert!(ps_default_table(&list, false, true, now).starts_with("CONTAINER ID   IMAGE"));
    }
}
