//! `stats`: live resource usage of containers, computed from the daemon's samples exactly
//! as the docker CLI computes it (CPU % from the delta to the previous sample, memory
//! without the inactive file cache, network and block I/O summed).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::Client;
use berth_api::query;
use clap::Args;
use serde_json::Value;

use super::{Res, short};
use crate::CliError;
use crate::format::{Format, bytes_size, human_size, render, string_map};
use crate::output::{out, print_error};

#[cfg_attr(doc, doc = "`stats`.")]
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Containers.
    pub containers: Vec<String>,
}

const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

const HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// One container's figures, as the docker CLI derives them from a sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// The container as the user named it (or its id).
    pub container: String,
    /// Full id.
    pub id: String,
    /// Name without `/`.
    pub name: String,
    /// CPU %.
    pub cpu: f64,
    /// Memory in use, bytes.
    pub mem: f64,
    /// Memory limit, bytes.
    pub limit: f64,
    /// Memory %.
    pub mem_perc: f64,
    /// Network bytes received and sent.
    pub net: (f64, f64),
    /// Block bytes read and written.
    pub blk: (f64, f64),
    /// Number of processes.
    pub pids: u64,
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The docker CLI's calculations over one sample.
pub fn entry(container: &str, v: &Value) -> Entry {
    let cpu = &v["cpu_stats"];
    let pre = &v["precpu_stats"];
    let cpu_delta = num(&cpu["cpu_usage"]["total_usage"]) - num(&pre["cpu_usage"]["total_usage"]);
    let sys_delta = num(&cpu["system_cpu_usage"]) - num(&pre["system_cpu_usage"]);
    let online = match cpu["online_cpus"].as_f64() {
        Some(n) if n > 0.0 => n,
        _ => cpu["cpu_usage"]["percpu_usage"].as_array().map_or(0, Vec::len) as f64,
    };
    let cpu_perc = if sys_delta > 0.0 && cpu_delta > 0.0 { cpu_delta / sys_delta * online * 100.0 } else { 0.0 };
    let m = &v["memory_stats"];
    let usage = num(&m["usage"]);
    let inactive = m["stats"].get("total_inactive_file").or_else(|| m["stats"].get("inactive_file")).map_or(0.0, num);
    let mem = if inactive < usage { usage - inactive } else { usage };
    let limit = num(&m["limit"]);
    let mut net = (0.0, 0.0);
    if let Some(n) = v["networks"].as_object() {
        for i in n.values() {
            net.0 += num(&i["rx_bytes"]);
            net.1 += num(&i["tx_bytes"]);
        }
    }
    let mut blk = (0.0, 0.0);
    for e in v["blkio_stats"]["io_service_bytes_recursive"].as_array().into_iter().flatten() {
        match e["op"].as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => blk.0 += num(&e["value"]),
            Some("write") => blk.1 += num(&e["value"]),
            _ => {}
        }
    }
    Entry {
        container: container.to_owned(),
        id: v["id"].as_str().unwrap_or_default().to_owned(),
        name: v["name"].as_str().unwrap_or_default().trim_start_matches('/').to_owned(),
        cpu: cpu_perc,
        mem,
        limit,
        mem_perc: if limit > 0.0 { mem / limit * 100.0 } else { 0.0 },
        net,
        blk,
        pids: v["pids_stats"]["current"].as_u64().unwrap_or(0),
    }
}

fn row(e: &Entry, trunc: bool) -> gotmpl::Value {
    let id = if trunc { short(&e.id) } else { e.id.clone() };
    string_map(&[
        ("Container", e.container.clone()),
        ("ID", id),
        ("Name", e.name.clone()),
        ("CPUPerc", format!("{:.2}%", e.cpu)),
        ("MemUsage", format!("{} / {}", bytes_size(e.mem), bytes_size(e.limit))),
        ("MemPerc", format!("{:.2}%", e.mem_perc)),
        ("NetIO", format!("{} / {}", human_size(e.net.0), human_size(e.net.1))),
        ("BlockIO", format!("{} / {}", human_size(e.blk.0), human_size(e.blk.1))),
        ("PIDs", e.pids.to_string()),
    ])
}

/// Renders the entries with the format (docker's default table unless given).
pub fn render_entries(entries: &[Entry], format: Option<&str>, trunc: bool) -> Result<String, CliError> {
    let f = match format {
        Some(f) if f != "table" => f,
        _ => DEFAULT_FORMAT,
    };
    let rows: Vec<_> = entries.iter().map(|e| row(e, trunc)).collect();
    let headers: BTreeMap<&str, &str> = HEADERS.iter().copied().collect();
    Ok(render(&Format::new(f), &headers, &rows)?)
}

/// Reads newline-separated JSON documents from a daemon stream, calling `f` on each.
async fn each_doc(mut s: berth_api::client::ByteStream, mut f: impl FnMut(Value)) -> Result<(), CliError> {
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = s.next_chunk().await {
        buf.extend_from_slice(&chunk?);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                f(v);
            }
        }
    }
    Ok(())
}

/// `stats`.
pub async fn stats(c: &Client, a: StatsArgs) -> Res {
    let names: Vec<String> = if a.containers.is_empty() {
        let q = query::ListContainers { all: a.all, ..Default::default() };
        c.list_containers(&q).await?.into_iter().filter_map(|s| s.id).collect()
    } else {
        a.containers.clone()
    };
    let trunc = !a.no_trunc;
    if a.no_stream {
        let mut entries = Vec::new();
        let mut failed = false;
        for n in &names {
            let q = query::Stats { stream: false, one_shot: false };
            match c.container_stats(n, &q).await {
                Ok(s) => {
                    let mut got = None;
                    each_doc(s, |v| got = Some(v)).await?;
                    if let Some(v) = got {
                        entries.push(entry(n, &v));
                    }
                }
                Err(e) => {
                    failed = true;
                    print_error(&e.into());
                }
            }
        }
        if failed && entries.is_empty() {
            return Err(CliError::Status(1));
        }
        out(&render_entries(&entries, a.format.as_deref(), trunc)?);
        return if failed { Err(CliError::Status(1)) } else { Ok(()) };
    }
    // Streaming: one follower per container, the screen redrawn each second. Without
    // names, containers that start later join and removed ones leave, as docker's do.
    let latest: Arc<Mutex<BTreeMap<String, (usize, Entry)>>> = Arc::default();
    let order = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let follow = {
        let (latest, order, c) = (latest.clone(), order.clone(), c.clone());
        move |n: String| {
            let (latest, order, c) = (latest.clone(), order.clone(), c.clone());
            tokio::spawn(async move {
                let Ok(s) = c.container_stats(&n, &query::Stats::default()).await else { return };
                let pos = order.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = each_doc(s, |v| {
                    if let Ok(mut m) = latest.lock() {
                        m.insert(n.clone(), (pos, entry(&n, &v)));
                    }
                })
                .await;
            })
        }
    };
    let mut tasks = Vec::new();
    for n in &names {
        // An unknown name is an error before anything is drawn.
        c.inspect_container(n, &query::InspectContainer::default()).await?;
        tasks.push(follow(n.clone()));
    }
    let watcher = a.containers.is_empty().then(|| {
        let latest = latest.clone();
        let c = c.clone();
        let follow = follow.clone();
        tokio::spawn(async move {
            let mut f = berth_api::query::Filters::default();
            f.add("type", "container");
            for ev in ["start", "destroy"] {
                f.add("event", ev);
            }
            let since = format!("{}", chrono::Utc::now().timestamp());
            let q = query::Events { since: Some(since), until: None, filters: f };
            let Ok(s) = c.events(&q).await else { return };
            let _ = each_doc(s, |v| {
                let id = v["Actor"]["ID"].as_str().unwrap_or_default().to_owned();
                match v["Action"].as_str() {
                    Some("start") if latest.lock().is_ok_and(|m| !m.contains_key(&id)) => {
                        follow(id);
                    }
                    Some("destroy") => {
                        if let Ok(mut m) = latest.lock() {
                            m.remove(&id);
                        }
                    }
                    _ => {}
                }
            })
            .await;
        })
    });
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let entries: Vec<Entry> = match latest.lock() {
            Ok(m) => {
                let mut v: Vec<_> = m.values().cloned().collect();
                v.sort_by_key(|(pos, _)| *pos);
                v.into_iter().map(|(_, e)| e).collect()
            }
            Err(_) => Vec::new(),
        };
        out(&format!("\x1b[2J\x1b[H{}", render_entries(&entries, a.format.as_deref(), trunc)?));
        if watcher.is_none() && tasks.iter().all(|t| t.is_finished()) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn figures_follow_the_docker_cli() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 4_194_304u64 + 1_048_576, "limit": 33_554_432u64,
                             "stats": {"total_inactive_file": 1_048_576}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 0}, "eth1": {"rx_bytes": 500, "tx_bytes": 10}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "write", "value": 8192},
                {"major": 8, "minor": 0, "op": "Total", "value": 12288}]},
            "pids_stats": {"current": 3}
        });
        let e = entry("web", &v);
        assert!((e.cpu - 40.0).abs() < 1e-9);
        assert_eq!((e.mem, e.limit), (4_194_304.0, 33_554_432.0));
        assert!((e.mem_perc - 12.5).abs() < 1e-9);
        assert_eq!((e.net, e.blk, e.pids), ((2000.0, 10.0), (4096.0, 8192.0), 3));
        let out = render_entries(&[e], None, true).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"), "{out}");
        assert!(lines[1].contains("0123456789ab   web       40.00%    4MiB / 32MiB        12.50%"), "{out}");
        assert!(lines[1].contains("2kB / 10B") && lines[1].contains("4.1kB / 8.19kB") && lines[1].ends_with('3'));
        let out = render_entries(&[entry("web", &v)], Some("{{.Name}}: {{.MemUsage}}"), true).unwrap();
        assert_eq!(out, "web: 4MiB / 32MiB\n");
    }

    #[test]
    fn a_stopped_container_shows_zeros() {
        let v = json!({"id": "abc", "name": "/x", "cpu_stats": {}, "precpu_stats": {}, "memory_stats": {}});
        let out = render_entries(&[entry("x", &v)], Some("{{.CPUPerc}} {{.MemUsage}} {{.PIDs}}"), true).unwrap();
        assert_eq!(out, "0.00% 0B / 0B 0\n");
    }
}
