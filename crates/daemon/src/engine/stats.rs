//! `stats` and `top`: a running container's resource counters in Docker's StatsResponse
//! shape (cpu_stats/precpu_stats, memory_stats, blkio_stats, pids_stats, networks), read
//! from its cgroups (v1 or v2) and its network namespace; and its processes as the host's
//! `ps` shows them, filtered to the container's pids as dockerd does.

use std::sync::Arc;
use std::time::Duration;

use berth_api::models::ContainerTopResponse;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::cgroups::{Cgroup, read_kv, read_u64};
use super::{Container, Engine, blocking};
use crate::error::{Error, Result};
use crate::record::{ContainerRecord, Status};
use crate::views::ZERO_TIME;

/// Docker's collector interval.
const INTERVAL: Duration = Duration::from_secs(1);
/// Kernel clock ticks per second (USER_HZ) for cpuacct.stat and /proc/stat.
const USER_HZ: u64 = 100;

/// One raw sample: the JSON without `precpu_stats`/`preread`, plus its cpu part for the next.
struct Sample {
    read: String,
    body: Value,
    cpu: Value,
}

fn empty_cpu() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
    })
}

/// What Docker answers for a container that is not running (stream=false).
fn empty_stats(rec: &ContainerRecord) -> Value {
    json!({
        "read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
        "blkio_stats": {"io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null, "io_wait_time_recursive": null,
            "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null},
        "num_procs": 0, "storage_stats": {}, "cpu_stats": empty_cpu(), "precpu_stats": empty_cpu(),
        "memory_stats": {}, "name": format!("/{}", rec.name), "id": rec.id,
    })
}

fn host_memory() -> u64 {
    read_kv(std::path::Path::new("/proc/meminfo")).get("MemTotal:").map_or(0, |kb| kb * 1024)
}

/// Total host CPU time in ns and the number of online CPUs, from /proc/stat.
fn system_cpu() -> (u64, u32) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0;
    let mut cpus = 0;
    for l in text.lines() {
        let mut it = l.split_whitespace();
        match it.next() {
            Some("cpu") => total = it.take(7).filter_map(|v| v.parse::<u64>().ok()).sum::<u64>(),
            Some(n) if n.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total * (1_000_000_000 / USER_HZ), cpus)
}

fn blkio_v1(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let entries: Vec<Value> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, v] = f.as_slice() else { return None };
            let (maj, min) = dev.split_once(':')?;
            Some(json!({"major": maj.parse::<u64>().ok()?, "minor": min.parse::<u64>().ok()?,
                        "op": op, "value": v.parse::<u64>().ok()?}))
        })
        .collect();
    Value::Array(entries)
}

fn networks(pid: u32) -> Option<Value> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut out = serde_json::Map::new();
    for l in text.lines().skip(2) {
        let Some((name, rest)) = l.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 12 {
            continue;
        }
        out.insert(
            name.to_owned(),
            json!({"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                   "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}),
        );
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The keys of dockerd's v2 `memory_stats.stats` (its statsV2), in its order.
const MEMORY_STAT_V2: [&str; 31] = [
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
];

/// `memory_stats` from a v2 cgroup as dockerd reports it through containerd: a file that
/// is not there (no memory controller for the cgroup) reads as 0, so such a host shows
/// usage and limit 0 (`0B / 0B` in `docker stats`), never an error; `max` reads as no
/// limit, which is shown as the host's memory. `failcnt` is memory.events' `oom`.
fn memory_v2(dir: &std::path::Path, host_mem: u64) -> Value {
    let kv = read_kv(&dir.join("memory.stat"));
    let stats: serde_json::Map<String, Value> =
        MEMORY_STAT_V2.iter().map(|k| ((*k).to_owned(), json!(kv.get(*k).copied().unwrap_or(0)))).collect();
    let limit = match std::fs::read_to_string(dir.join("memory.max")) {
        Ok(s) if s.trim() == "max" => host_mem,
        Ok(s) => s.trim().parse::<u64>().map_or(0, |l| if host_mem > 0 && l > host_mem { host_mem } else { l }),
        Err(_) => 0,
    };
    let mut m = json!({"stats": stats, "usage": read_u64(&dir.join("memory.current")).unwrap_or(0), "limit": limit});
    if let Some(oom) = read_kv(&dir.join("memory.events")).get("oom").filter(|n| **n > 0) {
        m["failcnt"] = json!(oom);
    }
    m
}

/// `pids_stats` from a v2 cgroup: dockerd's omits zero fields, so a cgroup without the
/// pids controller answers `{}`; `max` is no limit (omitted too).
fn pids_v2(dir: &std::path::Path) -> Value {
    let mut p = json!({});
    if let Some(n) = read_u64(&dir.join("pids.current")).filter(|n| *n > 0) {
        p["current"] = json!(n);
    }
    if let Some(l) = read_u64(&dir.join("pids.max")).filter(|l| *l > 0) {
        p["limit"] = json!(l);
    }
    p
}

/// Reads one sample of a running container. Blocking.
fn sample(rec: &ContainerRecord) -> std::io::Result<Sample> {
    let pid = rec.state.pid;
    let cg = Cgroup::of_pid(pid)?;
    let host_mem = host_memory();
    let (system, online) = system_cpu();
    let cap = |l: u64| if host_mem > 0 && l > host_mem { host_mem } else { l };
    let (cpu, memory, blkio, pids) = if let Some(dir) = cg.unified() {
        let st = read_kv(&dir.join("cpu.stat"));
        let g = |k: &str| st.get(k).copied().unwrap_or(0);
        let cpu = json!({
            "cpu_usage": {"total_usage": g("usage_usec") * 1000, "usage_in_kernelmode": g("system_usec") * 1000,
                          "usage_in_usermode": g("user_usec") * 1000},
            "system_cpu_usage": system, "online_cpus": online,
            "throttling_data": {"periods": g("nr_periods"), "throttled_periods": g("nr_throttled"),
                                "throttled_time": g("throttled_usec") * 1000},
        });
        let memory = memory_v2(dir, host_mem);
        let mut bytes = Vec::new();
        for l in std::fs::read_to_string(dir.join("io.stat")).unwrap_or_default().lines() {
            let mut it = l.split_whitespace();
            let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else { continue };
            let (Ok(maj), Ok(min)) = (maj.parse::<u64>(), min.parse::<u64>()) else { continue };
            for kv in it {
                let (op, v) = match kv.split_once('=') {
                    Some(("rbytes", v)) => ("read", v),
                    Some(("wbytes", v)) => ("write", v),
                    _ => continue,
                };
                bytes.push(json!({"major": maj, "minor": min, "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
            }
        }
        let blkio = json!({"io_service_bytes_recursive": if bytes.is_empty() { Value::Null } else { Value::Array(bytes) },
            "io_serviced_recursive": null, "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null, "io_time_recursive": null,
            "sectors_recursive": null});
        (cpu, memory, blkio, pids_v2(dir))
    } else {
        let acct = cg.v1("cpuacct");
        let total = acct.and_then(|d| read_u64(&d.join("cpuacct.usage"))).unwrap_or(0);
        let percpu: Vec<u64> = acct
            .and_then(|d| std::fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
            .map(|s| s.split_whitespace().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        let st = acct.map(|d| read_kv(&d.join("cpuacct.stat"))).unwrap_or_default();
        let tick = 1_000_000_000 / USER_HZ;
        let thr = cg.v1("cpu").map(|d| read_kv(&d.join("cpu.stat"))).unwrap_or_default();
        let t = |k: &str| thr.get(k).copied().unwrap_or(0);
        let cpu = json!({
            "cpu_usage": {"total_usage": total, "percpu_usage": percpu,
                          "usage_in_kernelmode": st.get("system").copied().unwrap_or(0) * tick,
                          "usage_in_usermode": st.get("user").copied().unwrap_or(0) * tick},
            "system_cpu_usage": system, "online_cpus": online,
            "throttling_data": {"periods": t("nr_periods"), "throttled_periods": t("nr_throttled"),
                                "throttled_time": t("throttled_time")},
        });
        let memory = match cg.v1("memory") {
            Some(d) => json!({
                "usage": read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0),
                "max_usage": read_u64(&d.join("memory.max_usage_in_bytes")).unwrap_or(0),
                "stats": read_kv(&d.join("memory.stat")),
                "limit": read_u64(&d.join("memory.limit_in_bytes")).map_or(host_mem, cap),
            }),
            None => json!({}),
        };
        let blkio = match cg.v1("blkio") {
            Some(d) => {
                let pick = |name: &str| {
                    let v = blkio_v1(&d.join(format!("blkio.{name}")));
                    if v.as_array().is_none_or(Vec::is_empty) {
                        blkio_v1(&d.join(format!("blkio.throttle.{name}")))
                    } else {
                        v
                    }
                };
                json!({"io_service_bytes_recursive": pick("io_service_bytes_recursive"),
                       "io_serviced_recursive": pick("io_serviced_recursive"),
                       "io_queue_recursive": blkio_v1(&d.join("blkio.io_queued_recursive")),
                       "io_service_time_recursive": blkio_v1(&d.join("blkio.io_service_time_recursive")),
                       "io_wait_time_recursive": blkio_v1(&d.join("blkio.io_wait_time_recursive")),
                       "io_merged_recursive": blkio_v1(&d.join("blkio.io_merged_recursive")),
                       "io_time_recursive": blkio_v1(&d.join("blkio.time_recursive")),
                       "sectors_recursive": blkio_v1(&d.join("blkio.sectors_recursive"))})
            }
            None => json!({}),
        };
        let pids = match cg.v1("pids") {
            Some(d) => {
                let mut p = json!({"current": read_u64(&d.join("pids.current")).unwrap_or(0)});
                if let Some(l) = read_u64(&d.join("pids.max")) {
                    p["limit"] = json!(l);
                }
                p
            }
            None => json!({}),
        };
        (cpu, memory, blkio, pids)
    };
    let read = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut body = json!({
        "read": read, "pids_stats": pids, "blkio_stats": blkio, "num_procs": 0, "storage_stats": {},
        "cpu_stats": cpu, "memory_stats": memory, "name": format!("/{}", rec.name), "id": rec.id,
    });
    if rec.host_config.network_mode.as_deref() != Some("host")
        && let Some(n) = networks(pid)
    {
        body["networks"] = n;
    }
    let cpu = body["cpu_stats"].clone();
    Ok(Sample { read, body, cpu })
}

fn with_pre(s: Sample, pre: Option<(&str, &Value)>) -> Value {
    let mut v = s.body;
    let (pre_read, pre_cpu) = pre.map_or((ZERO_TIME.to_owned(), empty_cpu()), |(r, c)| (r.to_owned(), c.clone()));
    v["preread"] = json!(pre_read);
    v["precpu_stats"] = pre_cpu;
    v
}

impl Engine {
    async fn sample_of(&self, c: &Arc<Container>) -> Option<Sample> {
        let rec = c.snapshot();
        if rec.state.status != Status::Running || rec.state.pid == 0 {
            return None;
        }
        blocking(move || Ok(sample(&rec).ok())).await.ok().flatten()
    }

    /// `GET /containers/{id}/stats`: JSON documents on the returned channel, one per second
    /// with `stream`, else one (after two samples so CPU % can be computed, or at once with
    /// `one_shot`). The stream ends when the receiver is dropped or the container is removed.
    pub async fn stats(self: &Arc<Self>, name: &str, stream: bool, one_shot: bool) -> Result<mpsc::Receiver<Value>> {
        let c = self.get(name)?;
        let (tx, rx) = mpsc::channel(4);
        if !stream {
            let rec = c.snapshot();
            let v = match self.sample_of(&c).await {
                None => empty_stats(&rec),
                Some(first) if one_shot => with_pre(first, None),
                Some(first) => {
                    tokio::time::sleep(INTERVAL).await;
                    match self.sample_of(&c).await {
                        Some(second) => with_pre(second, Some((&first.read, &first.cpu))),
                        None => with_pre(first, None),
                    }
                }
            };
            let _ = tx.send(v).await;
            return Ok(rx);
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let mut pre: Option<(String, Value)> = None;
            loop {
                if c.events.borrow().removed {
                    return;
                }
                match engine.sample_of(&c).await {
                    Some(s) => {
                        let next = (s.read.clone(), s.cpu.clone());
                        let v = with_pre(s, pre.as_ref().map(|(r, c)| (r.as_str(), c)));
                        pre = Some(next);
                        if tx.send(v).await.is_err() {
                            return;
                        }
                    }
                    None => pre = None,
                }
                tokio::select! {
                    _ = tokio::time::sleep(INTERVAL) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }

    /// `GET /containers/{id}/top?ps_args=`: the host's `ps` output filtered to the
    /// container's processes (dockerd's ContainerTop).
    pub async fn top(&self, name: &str, ps_args: Option<&str>) -> Result<ContainerTopResponse> {
        let c = self.get(name)?;
        let rec = c.snapshot();
        match rec.state.status {
            Status::Running => {}
            Status::Restarting => {
                return Err(Error::Conflict(format!(
                    "Container {} is restarting, wait until the container is running",
                    rec.id
                )));
            }
            _ => return Err(Error::Conflict(format!("Container {} is not running", rec.id))),
        }
        let args = ps_args.filter(|a| !a.is_empty()).unwrap_or("-ef").to_owned();
        validate_ps_args(&args)?;
        let pid = rec.state.pid;
        let (out, pids) = blocking(move || {
            let pids = Cgroup::of_pid(pid)
                .and_then(|cg| cg.pids())
                .map_err(|e| Error::io(format!("list the processes of container {}", rec.id), e))?;
            let args: Vec<&str> = args.split(' ').collect();
            let q = format!("-q{}", pids.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
            let run = |extra: Option<&str>| {
                std::process::Command::new("ps").args(&args).args(extra).output().map_err(|e| Error::io("run ps", e))
            };
            let mut out = run(Some(&q))?;
            if !out.status.success() {
                // Some ps options (such as f) cannot be combined with -q.
                out = run(None)?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    return Err(Error::Internal(format!("ps: {}", err.lines().next().unwrap_or("failed"))));
                }
            }
            Ok((String::from_utf8_lossy(&out.stdout).into_owned(), pids))
        })
        .await?;
        let top = parse_ps(&out, &pids)?;
        self.emit_container(&c.snapshot(), "top", &[]);
        Ok(top)
    }
}

/// dockerd refuses `-o x=PID…` style renames of the PID column, which would hide it.
fn validate_ps_args(args: &str) -> Result<()> {
    let words: Vec<&str> = args.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        // `\s+([^\s]*)=\s*(PID[^\s]*)`: a word ending in `=` followed by PID…, or `k=PID…`.
        let (k, v) = match w.split_once('=') {
            Some((k, "")) => (k, words.get(i + 1).copied().unwrap_or("")),
            Some((k, v)) => (k, v),
            None => continue,
        };
        if i > 0 && v.starts_with("PID") && k != "pid" {
            return Err(Error::InvalidArgument(format!("specifying \"{k}={v}\" is not allowed")));
        }
    }
    Ok(())
}

/// dockerd's parsePSOutput: titles from the first line, the rows whose PID is one of the
/// container's (and continuation rows with `-` after such a row), the last column joined.
pub fn parse_ps(out: &str, pids: &[u32]) -> Result<ContainerTopResponse> {
    let mut lines = out.split('\n');
    let titles: Vec<String> = lines.next().unwrap_or("").split_ascii_whitespace().map(str::to_owned).collect();
    let pid_idx = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::Internal("Couldn't find PID field in ps output".to_owned()))?;
    let mut procs = Vec::new();
    let mut prev_in = false;
    let row = |fields: &[&str]| -> Vec<String> {
        let n = titles.len().max(1) - 1;
        let mut r: Vec<String> = fields.iter().take(n).map(|s| (*s).to_owned()).collect();
        r.push(fields.get(n..).map(|f| f.join(" ")).unwrap_or_default());
        r
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(p) = fields.get(pid_idx) else { continue };
        if *p == "-" {
            if prev_in {
                procs.push(row(&fields));
            }
            continue;
        }
        let p: u32 = p.parse().map_err(|e| Error::Internal(format!("Unexpected pid '{p}': {e}")))?;
        prev_in = pids.contains(&p);
        if prev_in {
            procs.push(row(&fields));
        }
    }
    Ok(ContainerTopResponse { titles: Some(titles), processes: Some(procs) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_to_the_containers_pids() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\n\
                   root 42 1 0 10:00 ? 00:00:00 sleep 600 now\nroot 43 42 0 10:00 ? 00:00:00 sh\n";
        let top = parse_ps(out, &[42, 43]).unwrap();
        assert_eq!(top.titles.unwrap().len(), 8);
        let p = top.processes.unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0][1], "42");
        assert_eq!(p[0][7], "sleep 600 now");
        assert!(parse_ps("USER COMMAND\nroot x\n", &[1]).is_err());
    }

    #[test]
    fn ps_args_may_not_rename_pid() {
        assert!(validate_ps_args("-ef").is_ok());
        assert!(validate_ps_args("-o pid,comm").is_ok());
        assert!(validate_ps_args("-o pid= PID").is_ok());
        assert_eq!(validate_ps_args("-o user= PID").unwrap_err().to_string(), "specifying \"user=PID\" is not allowed");
    }

    #[test]
    fn v2_memory_and_pids_without_their_controllers_read_as_dockerd_reports_them() {
        // A cgroup with only the core files: memory and pids controllers not enabled.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cpu.stat"), "usage_usec 10\n").unwrap();
        let m = memory_v2(d.path(), 1 << 30);
        assert_eq!((m["usage"].as_u64(), m["limit"].as_u64()), (Some(0), Some(0)));
        assert_eq!(m["stats"].as_object().unwrap().len(), 31);
        assert!(m.get("failcnt").is_none() && m.get("max_usage").is_none());
        assert_eq!(pids_v2(d.path()), json!({}));
        // With them: usage, a limit capped at the host's memory, `max` as the host's.
        std::fs::write(d.path().join("memory.current"), "4096\n").unwrap();
        std::fs::write(d.path().join("memory.max"), "max\n").unwrap();
        std::fs::write(d.path().join("memory.stat"), "anon 7\nfile 9\nzswap 3\n").unwrap();
        std::fs::write(d.path().join("memory.events"), "low 0\noom 2\noom_kill 1\n").unwrap();
        std::fs::write(d.path().join("pids.current"), "3\n").unwrap();
        std::fs::write(d.path().join("pids.max"), "max\n").unwrap();
        let m = memory_v2(d.path(), 1 << 30);
        assert_eq!(
            (m["usage"].as_u64(), m["limit"].as_u64(), m["failcnt"].as_u64()),
            (Some(4096), Some(1 << 30), Some(2))
        );
        assert_eq!((m["stats"]["anon"].as_u64(), m["stats"].get("zswap")), (Some(7), None));
        std::fs::write(d.path().join("memory.max"), "33554432\n").unwrap();
        assert_eq!(memory_v2(d.path(), 1 << 30)["limit"].as_u64(), Some(32 << 20));
        assert_eq!(pids_v2(d.path()), json!({"current": 3}));
        std::fs::write(d.path().join("pids.max"), "10\n").unwrap();
        assert_eq!(pids_v2(d.path()), json!({"current": 3, "limit": 10}));
    }

    #[test]
    fn own_process_samples() {
        let rec_json = json!({"id": "x", "name": "me", "created": "2024-01-01T00:00:00Z", "image": "i",
            "image_id": "sha256:0", "path": "p", "args": [], "config": {}, "host_config": {}, "binds": [],
            "state": {"status": "running", "pid": std::process::id(), "exit_code": 0, "error": "",
                      "started_at": null, "finished_at": null, "oom_killed": false}, "restart_count": 0});
        let rec: ContainerRecord = serde_json::from_value(rec_json).unwrap();
        let s = sample(&rec).unwrap();
        assert!(s.body["cpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0);
        assert!(s.body["cpu_stats"]["online_cpus"].as_u64().unwrap() >= 1);
        assert_eq!(s.body["name"], "/me");
    }
}
