//! `compose logs` (every service's output, with coloured per-container prefixes) and
//! `compose events`.

use std::collections::{BTreeMap, BTreeSet};

use berth_api::Client;
use berth_api::query::Logs;
use berth_compose::ComposeError;
use berth_compose::planner::logs::{LogEvent, Source, Started, pump, watch_starts};
use berth_compose::planner::names;
use berth_compose::planner::state::{self, Oneoff};
use clap::Args;
use tokio::sync::mpsc;

use super::ProjectOpts;
use crate::CliError;
use crate::commands::container::parse_since;
use crate::output::{err_line, out};

#[cfg_attr(doc, doc = "`compose logs`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,
    /// Number of lines to show from the end of the logs for each container
    #[arg(short = 'n', long = "tail", default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long = "timestamps")]
    pub timestamps: bool,
    /// Produce monochrome output
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    /// Show logs since timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long = "since")]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m for 42 minutes)
    #[arg(long = "until")]
    pub until: Option<String>,
    /// index of the container if service has multiple replicas
    #[arg(long = "index")]
    pub index: Option<u32>,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose events`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct EventsArgs {
    /// Output events as a stream of json objects
    #[arg(long = "json")]
    pub json: bool,
    /// Show all events created since timestamp
    #[arg(long = "since")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long = "until")]
    pub until: Option<String>,
    /// Services
    pub services: Vec<String>,
}

/// The prefix colours docker compose cycles through.
const COLORS: &[&str] = &["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"];

/// Whether to colour the output: a terminal, no `--no-color`, no `NO_COLOR`.
pub(crate) fn use_color(no_color: bool) -> bool {
    !no_color && std::env::var_os("NO_COLOR").is_none() && rustix::termios::isatty(std::io::stdout())
}

/// Prints lines of several containers with aligned, coloured `name | ` prefixes.
pub(crate) struct LinePrinter {
    width: usize,
    colors: BTreeMap<String, &'static str>,
    services: Vec<String>,
    color: bool,
    prefix: bool,
}

impl LinePrinter {
    /// A printer for these sources.
    pub(crate) fn new(sources: &[Source], color: bool, prefix: bool) -> LinePrinter {
        let mut p = LinePrinter { width: 0, colors: BTreeMap::new(), services: Vec::new(), color, prefix };
        for s in sources {
            p.add(&s.prefix);
        }
        p
    }

    /// Registers a source (one that started while following): its colour, and the prefix
    /// column widened if its name is longer.
    pub(crate) fn add(&mut self, prefix: &str) {
        self.width = self.width.max(prefix.chars().count());
        // Replicas of one service share a colour, as in docker compose.
        let svc = prefix.rsplit_once('-').map_or(prefix, |(a, _)| a);
        let i = match self.services.iter().position(|x| x == svc) {
            Some(i) => i,
            None => {
                self.services.push(svc.to_owned());
                self.services.len() - 1
            }
        };
        self.colors.insert(prefix.to_owned(), COLORS[i % COLORS.len()]);
    }

    fn head(&self, prefix: &str) -> String {
        if !self.prefix {
            return String::new();
        }
        // docker compose pads names to one more than the longest.
        let p = format!("{prefix:<width$} | ", width = self.width + 1);
        match (self.color, self.colors.get(prefix)) {
            (true, Some(c)) => format!("\x1b[{c}m{p}\x1b[0m"),
            _ => p,
        }
    }

    /// One line of a container's output.
    pub(crate) fn line(&self, prefix: &str, stderr: bool, text: &str) {
        let _ = stderr;
        out(&format!("{}{text}\n", self.head(prefix)));
    }

    /// A line about a container (`web-1 exited with code 0`), unprefixed as compose prints it.
    /// docker compose starts it with goterm's RESET_LINE (`\r\x1b[K`), terminal or not.
    pub(crate) fn plain(&self, prefix: &str, text: &str) {
        match (self.color, self.colors.get(prefix)) {
            (true, Some(c)) => out(&format!("\x1b[{c}m\r\x1b[K{text}\x1b[0m\n")),
            _ => out(&format!("\r\x1b[K{text}\n")),
        }
    }
}

/// `compose logs`.
pub async fn logs(c: &Client, p: &ProjectOpts, a: LogsArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    for s in &a.services {
        if !project.services.is_empty() && !project.services.contains_key(s) {
            return Err(super::cerr(ComposeError::NoSuchService { name: s.clone() }));
        }
    }
    let listed_at = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let all = state::containers(c, &project.name, Oneoff::Exclude, true).await.map_err(super::cerr)?;
    let sources: Vec<Source> = all
        .iter()
        // Containers of services no longer in the file (orphans) are not shown, as in docker
        // compose; with no file (`-p` only) every one is.
        .filter(|ct| project.services.is_empty() || project.services.contains_key(&ct.service))
        .filter(|ct| a.services.is_empty() || a.services.contains(&ct.service))
        .filter(|ct| a.index.is_none_or(|i| i == ct.number))
        .map(|ct| Source {
            id: ct.id.clone(),
            prefix: ct.short_name(&project.name),
            tty: project.services.get(&ct.service).and_then(|s| s.tty).unwrap_or(false),
        })
        .collect();
    let now = crate::commands::now();
    let q = Logs {
        follow: a.follow,
        stdout: true,
        stderr: true,
        since: a.since.as_deref().map(|s| parse_since(s, now)).transpose()?,
        until: a.until.as_deref().map(|s| parse_since(s, now)).transpose()?,
        timestamps: a.timestamps,
        tail: Some(a.tail.clone()),
    };
    let mut printer = LinePrinter::new(&sources, use_color(a.no_color), !a.no_log_prefix);
    // Following, docker compose watches the project's events and attaches to containers that
    // start later (`up -d --scale`, `restart`); the watch replays from just before the listing
    // so that none starting in between is missed.
    let (start_tx, mut starts) = mpsc::channel(64);
    if a.follow {
        let since = format!("{}", listed_at / 1_000_000_000 - 1);
        tokio::spawn(watch_starts(c.clone(), project.name.clone(), since, start_tx));
    } else {
        drop(start_tx);
    }
    // The containers being read now (id → prefix), every one read so far (a container seen
    // before that starts again is read from its new start, not from the beginning), and the
    // restarts seen before the read of the previous run ended.
    let mut open: BTreeMap<String, String> = sources.iter().map(|s| (s.id.clone(), s.prefix.clone())).collect();
    let mut seen: BTreeSet<String> = sources.iter().map(|s| s.id.clone()).collect();
    let mut restarted: BTreeMap<String, Started> = BTreeMap::new();
    let (tx, mut rx) = mpsc::channel(256);
    for s in sources {
        tokio::spawn(pump(c.clone(), s, q.clone(), tx.clone()));
    }
    let follow_new = |st: Started, seen: &mut BTreeSet<String>, printer: &mut LinePrinter| {
        let prefix = st.name.strip_prefix(&format!("{}-", project.name)).unwrap_or(&st.name).to_owned();
        let again = !seen.insert(st.id.clone());
        printer.add(&prefix);
        let tty = project.services.get(&st.service).and_then(|s| s.tty).unwrap_or(false);
        let (c, mut sq, tx, id) = (c.clone(), q.clone(), tx.clone(), st.id.clone());
        tokio::spawn(async move {
            if again {
                // Read from the end of its previous run: the start event comes after the
                // process began, so its first lines may be older than the event.
                let since = previous_finish(&c, &id).await.unwrap_or(st.time_nano);
                sq.since = Some(format!("{}.{:09}", since / 1_000_000_000, since % 1_000_000_000));
                sq.tail = Some("all".to_owned());
            }
            pump(c, Source { id, prefix, tty }, sq, tx).await;
        });
        (st.id, st.name.strip_prefix(&format!("{}-", project.name)).unwrap_or(&st.name).to_owned())
    };
    while !open.is_empty() {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(LogEvent::Line { prefix, stderr, text }) => printer.line(&prefix, stderr, &text),
                Some(LogEvent::Ended { prefix, id, error }) => {
                    open.remove(&id);
                    if let Some(e) = error {
                        err_line(&format!("{prefix}: {e}"));
                    } else if a.follow {
                        // Followed to its end: the container stopped, and docker compose says so.
                        let st = c.inspect_container(&id, &Default::default()).await.ok().and_then(|i| i.state);
                        if let Some(st) = st.filter(|s| s.running != Some(true)) {
                            let code = st.exit_code.unwrap_or(0);
                            printer.plain(&prefix, &format!("{prefix} exited with code {code}"));
                        }
                    }
                    if let Some(st) = restarted.remove(&id) {
                        let (id, p) = follow_new(st, &mut seen, &mut printer);
                        open.insert(id, p);
                    }
                }
                None => break,
            },
            Some(st) = starts.recv() => {
                let wanted = (project.services.is_empty() || project.services.contains_key(&st.service))
                    && (a.services.is_empty() || a.services.contains(&st.service))
                    && a.index.is_none_or(|i| i == st.number);
                if !wanted || st.time_nano < listed_at {
                    // Not asked for, or a replayed start from before the listing: that
                    // container is being read already, or it was removed since.
                    continue;
                }
                if open.contains_key(&st.id) {
                    // Restarted before the read of its previous run ended: read on after.
                    restarted.insert(st.id.clone(), st);
                    continue;
                }
                let (id, p) = follow_new(st, &mut seen, &mut printer);
                open.insert(id, p);
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

/// When the container's previous run ended (nanoseconds since the epoch), if it has one.
async fn previous_finish(c: &Client, id: &str) -> Option<i64> {
    let info = c.inspect_container(id, &Default::default()).await.ok()?;
    let t = info.state?.finished_at?;
    let t = chrono::DateTime::parse_from_rfc3339(&t).ok()?;
    // Go's zero time (never finished) is before the epoch.
    t.timestamp_nanos_opt().filter(|n| *n > 0)
}

/// Go's RFC3339Nano, as `compose events --json` writes `time`: trailing zeros of the
/// fraction dropped (`…:17.78Z`, `…:17Z`), `Z` for UTC, else the offset.
fn rfc3339_nano(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    let frac = frac.trim_end_matches('0');
    let dot = if frac.is_empty() { "" } else { "." };
    let zone = if t.offset().local_minus_utc() == 0 { "Z".to_owned() } else { t.format("%:z").to_string() };
    format!("{}{dot}{frac}{zone}", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// `compose events`: the daemon's events about the project's containers.
pub async fn events(c: &Client, p: &ProjectOpts, a: EventsArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    let now = crate::commands::now();
    let mut filters = berth_api::query::Filters::default();
    filters.add("label", &names::project_filter(&project.name));
    filters.add("type", "container");
    let q = berth_api::query::Events {
        since: a.since.as_deref().map(|s| parse_since(s, now)).transpose()?,
        until: a.until.as_deref().map(|s| parse_since(s, now)).transpose()?,
        filters,
    };
    let mut s = c.events(&q).await?;
    let mut buf = Vec::new();
    while let Some(chunk) = s.next_chunk().await {
        buf.extend_from_slice(&chunk?);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else { continue };
            let attrs = v["Actor"]["Attributes"].as_object().cloned().unwrap_or_default();
            let service = attrs.get(names::SERVICE).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
            if !a.services.is_empty() && !a.services.contains(&service) {
                continue;
            }
            let nanos = v["timeNano"].as_i64().unwrap_or(0);
            let time = chrono::DateTime::from_timestamp(nanos / 1_000_000_000, (nanos % 1_000_000_000) as u32)
                .map(|t| {
                    // Go's time.Time in the local zone: RFC3339Nano in JSON, else
                    // "2006-01-02 15:04:05.000000" as docker compose's Event.String() writes it.
                    let t = t.with_timezone(&chrono::Local).fixed_offset();
                    if a.json { rfc3339_nano(t) } else { t.format("%Y-%m-%d %H:%M:%S%.6f").to_string() }
                })
                .unwrap_or_default();
            let action = v["Action"].as_str().unwrap_or_default();
            let id = v["Actor"]["ID"].as_str().unwrap_or_default();
            let shown: BTreeMap<&str, &str> = attrs
                .iter()
                .filter(|(k, _)| !k.starts_with("com.docker.compose."))
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect();
            if a.json {
                let j = serde_json::json!({
                    "time": time, "type": "container", "action": action, "id": id,
                    "service": service, "attributes": shown,
                });
                out(&format!("{j}\n"));
            } else {
                let kv: Vec<String> = shown.iter().map(|(k, v)| format!("{k}={v}")).collect();
                // Event.String() ends in a newline and is printed with Println: a blank line follows.
                out(&format!("{time} container {action} {id} ({})\n\n", kv.join(", ")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_times_as_go_writes_rfc3339_nano() {
        let t = |s, n| chrono::DateTime::from_timestamp(s, n).unwrap().fixed_offset();
        assert_eq!(super::rfc3339_nano(t(1_700_000_000, 781_704_958)), "2023-11-14T22:13:20.781704958Z");
        assert_eq!(super::rfc3339_nano(t(1_700_000_000, 780_000_000)), "2023-11-14T22:13:20.78Z");
        assert_eq!(super::rfc3339_nano(t(1_700_000_000, 0)), "2023-11-14T22:13:20Z");
        let cet = chrono::FixedOffset::east_opt(3600).unwrap();
        assert_eq!(super::rfc3339_nano(t(1_700_000_000, 5).with_timezone(&cet)), "2023-11-14T23:13:20.000000005+01:00");
    }
}
