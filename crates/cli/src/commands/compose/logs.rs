//! `compose logs` (every service's output, with coloured per-container prefixes) and
//! `compose events`.

use std::collections::BTreeMap;

use berth_api::Client;
use berth_api::query::Logs;
use berth_compose::ComposeError;
use berth_compose::planner::logs::{LogEvent, Source, multiplex};
use berth_compose::planner::names;
use berth_compose::planner::state::{self, Oneoff};
use clap::Args;

use super::ProjectOpts;
use crate::CliError;
use crate::commands::container::parse_since;
use crate::output::{err_line, out};

/// `compose logs`.
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

/// `compose events`.
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
    color: bool,
    prefix: bool,
}

impl LinePrinter {
    /// A printer for these sources.
    pub(crate) fn new(sources: &[Source], color: bool, prefix: bool) -> LinePrinter {
        let width = sources.iter().map(|s| s.prefix.chars().count()).max().unwrap_or(0);
        let mut colors = BTreeMap::new();
        let mut services: Vec<&str> = Vec::new();
        for s in sources {
            // Replicas of one service share a colour, as in docker compose.
            let svc = s.prefix.rsplit_once('-').map_or(s.prefix.as_str(), |(a, _)| a);
            let i = match services.iter().position(|x| *x == svc) {
                Some(i) => i,
                None => {
                    services.push(svc);
                    services.len() - 1
                }
            };
            colors.insert(s.prefix.clone(), COLORS[i % COLORS.len()]);
        }
        LinePrinter { width, colors, color, prefix }
    }

    fn head(&self, prefix: &str) -> String {
        if !self.prefix {
            return String::new();
        }
        let p = format!("{prefix:<width$} | ", width = self.width);
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
    pub(crate) fn plain(&self, prefix: &str, text: &str) {
        match (self.color, self.colors.get(prefix)) {
            (true, Some(c)) => out(&format!("\x1b[{c}m{text}\x1b[0m\n")),
            _ => out(&format!("{text}\n")),
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
    let all = state::containers(c, &project.name, Oneoff::Exclude, true).await.map_err(super::cerr)?;
    let sources: Vec<Source> = all
        .iter()
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
    let printer = LinePrinter::new(&sources, use_color(a.no_color), !a.no_log_prefix);
    let mut open = sources.len();
    let mut rx = multiplex(c, sources, &q);
    while open > 0 {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(LogEvent::Line { prefix, stderr, text }) => printer.line(&prefix, stderr, &text),
                Some(LogEvent::Ended { prefix, error }) => {
                    open -= 1;
                    if let Some(e) = error {
                        err_line(&format!("{prefix}: {e}"));
                    }
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
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
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string())
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
                out(&format!("{time} container {action} {id} ({})\n", kv.join(", ")));
            }
        }
    }
    Ok(())
}
