//! The container and image commands other than `run`/`create`: start, stop, kill, wait,
//! logs, rm, ps, images, rmi, inspect, import, tag, history, version, info; plus autostart.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_api::models::{ContainerSummary, ImageSummary};
use berth_api::query::{self, Filters};
use berth_api::stdcopy::{Decoder, Stream};
use berth_api::{Client, ClientError};
use clap::{ArgAction, Args};

use crate::format::{Format, ago, align, ellipsis, human_size, indent_json, render, string_map};
use crate::{CliError, DEFAULT_HOST, err_line, out};

type Res = Result<(), CliError>;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn go_time(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// Runs `f` on each name, printing errors docker-style; exit 1 if any failed.
async fn each<F, Fut>(names: &[String], f: F) -> Res
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let mut failed = false;
    for n in names {
        if let Err(e) = f(n.clone()).await {
            failed = true;
            match e {
                CliError::Client(e @ ClientError::Daemon { .. }) => {
                    err_line(&format!("Error response from daemon: {e}"))
                }
                e => err_line(&e.to_string()),
            }
        }
    }
    if failed { Err(CliError::Status(1)) } else { Ok(()) }
}

/// `start`.
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

/// `stop`.
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

/// `kill`.
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

/// Commands taking only container names.
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

/// `logs`.
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
        return Ok(t.timestamp().to_string());
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
        while let Some((stream, data)) = d.next_frame().map_err(CliError::Message)? {
            out_bytes(stream, &data);
        }
    }
    Ok(())
}

/// Writes container output to the matching local stream.
pub(crate) fn out_bytes(stream: Stream, data: &[u8]) {
    use std::io::Write;
    if stream == Stream::Stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(data);
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(data);
        let _ = o.flush();
    }
}

/// `rm`.
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

fn parse_filters(items: &[String]) -> Result<Filters, CliError> {
    let mut f = Filters::default();
    for i in items {
        let Some((k, v)) = i.split_once('=') else {
            return Err(CliError::Message(format!(
                "invalid argument \"{i}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)"
            )));
        };
        f.add(k.trim().to_ascii_lowercase().as_str(), v);
    }
    Ok(f)
}

/// `ps`.
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

fn ports_string(c: &ContainerSummary) -> String {
    let mut v: Vec<String> = c
        .ports
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let proto = p.typ.map(|t| t.to_string()).filter(|t| !t.is_empty()).unwrap_or_else(|| "tcp".to_owned());
            match p.public_port {
                Some(pp) if pp != 0 => {
                    let ip = p.ip.clone().unwrap_or_default();
                    let ip = if ip.contains(':') { format!("[{ip}]") } else { ip };
                    format!("{ip}:{pp}->{}/{proto}", p.private_port)
                }
                _ => format!("{}/{proto}", p.private_port),
            }
        })
        .collect();
    v.sort();
    v.dedup();
    v.join(", ")
}

/// The fields docker's `ps` formatter exposes, as strings.
pub fn ps_context(c: &ContainerSummary, trunc: bool, now: i64) -> Vec<(&'static str, String)> {
    let id = c.id.clone().unwrap_or_default();
    let cmd = c.command.clone().unwrap_or_default();
    let cmd = format!("\"{}\"", if trunc { ellipsis(&cmd, 20) } else { cmd });
    let mut names: Vec<String> =
        c.names.clone().unwrap_or_default().iter().map(|n| n.trim_start_matches('/').to_owned()).collect();
    if trunc {
        // Docker hides link aliases (names with a further slash) unless --no-trunc.
        names.retain(|n| !n.contains('/'));
    }
    let mut labels: Vec<String> =
        c.labels.clone().unwrap_or_default().iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let mounts: Vec<String> = c
        .mounts
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let n = m.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| m.source.clone().unwrap_or_default());
            if trunc { ellipsis(&n, 15) } else { n }
        })
        .collect();
    let mut nets: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    nets.sort();
    let size = match (c.size_rw, c.size_root_fs) {
        (None, None) => "0B".to_owned(),
        (rw, root) => {
            let s = human_size(rw.unwrap_or(0) as f64);
            match root {
                Some(r) if r > 0 => format!("{s} (virtual {})", human_size(r as f64)),
                _ => s,
            }
        }
    };
    vec![
        ("ID", if trunc { short(&id) } else { id }),
        ("Image", c.image.clone().unwrap_or_default()),
        ("Command", cmd),
        ("CreatedAt", go_time(c.created.unwrap_or(0))),
        ("RunningFor", ago(c.created.unwrap_or(0), now)),
        ("Ports", ports_string(c)),
        ("State", c.state.map(|s| s.to_string()).unwrap_or_default()),
        ("Status", c.status.clone().unwrap_or_default()),
        ("Size", size),
        ("Names", names.join(",")),
        ("Labels", labels.join(",")),
        ("Mounts", mounts.join(",")),
        ("Networks", nets.join(",")),
        (
            "LocalVolumes",
            c.mounts.as_ref().map(|m| m.iter().filter(|m| m.name.is_some()).count()).unwrap_or(0).to_string(),
        ),
    ]
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
        return Ok(list.iter().map(|c| format!("{}\n", ps_context(c, trunc, now)[0].1)).collect());
    }
    let fmt = match &a.format {
        Some(f) if f != "table" => f.clone(),
        _ => {
            let mut f = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
                .to_owned();
            if a.size {
                f.push_str("\t{{.Size}}");
            }
            f
        }
    };
    let rows: Vec<_> = list.iter().map(|c| string_map(&ps_context(c, trunc, now))).collect();
    let headers: BTreeMap<&str, &str> = PS_HEADERS.iter().copied().collect();
    Ok(render(&Format::new(&fmt), &headers, &rows)?)
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

/// `images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long = "digests")]
    pub digests: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Repository to list.
    pub repository: Option<String>,
}

/// One row per repository tag (or one `<none>` row), as docker's image formatter produces.
pub fn image_rows(list: &[ImageSummary], trunc: bool, now: i64) -> Vec<Vec<(&'static str, String)>> {
    let mut rows = Vec::new();
    for i in list {
        let id = if trunc { short(&i.id) } else { i.id.clone() };
        let mut pairs: Vec<(String, String, String)> = Vec::new();
        let digest_of = |repo: &str| -> String {
            i.repo_digests
                .iter()
                .find_map(|d| d.split_once('@').filter(|(r, _)| *r == repo).map(|(_, d)| d.to_owned()))
                .unwrap_or_else(|| "<none>".to_owned())
        };
        for t in &i.repo_tags {
            if t == "<none>:<none>" {
                continue;
            }
            let (repo, tag) = match t.rsplit_once(':') {
                Some((r, tg)) if !tg.contains('/') => (r.to_owned(), tg.to_owned()),
                _ => (t.clone(), "<none>".to_owned()),
            };
            let d = digest_of(&repo);
            pairs.push((repo, tag, d));
        }
        if pairs.is_empty() {
            match i.repo_digests.iter().find(|d| !d.starts_with("<none>")).and_then(|d| d.split_once('@')) {
                Some((r, d)) => pairs.push((r.to_owned(), "<none>".to_owned(), d.to_owned())),
                None => pairs.push(("<none>".to_owned(), "<none>".to_owned(), "<none>".to_owned())),
            }
        }
        for (repo, tag, digest) in pairs {
            rows.push(vec![
                ("Repository", repo),
                ("Tag", tag),
                ("Digest", digest),
                ("ID", id.clone()),
                ("CreatedSince", ago(i.created, now)),
                ("CreatedAt", go_time(i.created)),
                ("Size", human_size(i.size as f64)),
                ("Containers", if i.containers < 0 { "N/A".to_owned() } else { i.containers.to_string() }),
            ]);
        }
    }
    rows
}

const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
];

/// Renders `images` output.
pub fn images_output(list: &[ImageSummary], a: &ImagesArgs, now: i64) -> Result<String, CliError> {
    let trunc = !a.no_trunc;
    if a.quiet && a.format.is_none() {
        let mut seen = Vec::new();
        for i in list {
            let id = if trunc { short(&i.id) } else { i.id.clone() };
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        return Ok(seen.iter().map(|s| format!("{s}\n")).collect());
    }
    let fmt = match &a.format {
        Some(f) if f != "table" => f.clone(),
        _ if a.digests => {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_owned()
        }
        _ => "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".to_owned(),
    };
    let rows: Vec<_> = image_rows(list, trunc, now).iter().map(|r| string_map(r)).collect();
    let headers: BTreeMap<&str, &str> = IMAGE_HEADERS.iter().copied().collect();
    Ok(render(&Format::new(&fmt), &headers, &rows)?)
}

/// `images`.
pub async fn images(c: &Client, a: ImagesArgs) -> Res {
    let mut filters = parse_filters(&a.filter)?;
    if let Some(r) = &a.repository {
        filters.add("reference", r);
    }
    let q = query::ListImages { all: a.all, filters, digests: a.digests };
    let list = c.list_images(&q).await?;
    out(&images_output(&list, &a, now())?);
    Ok(())
}

/// `rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Images.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `rmi`.
pub async fn rmi(c: &Client, a: RmiArgs) -> Res {
    let q = query::RemoveImage { force: a.force, noprune: a.no_prune };
    each(&a.images, |n| {
        let q = q.clone();
        async move {
            for item in c.remove_image(&n, &q).await? {
                if let Some(u) = item.untagged {
                    out(&format!("Untagged: {u}\n"));
                }
                if let Some(d) = item.deleted {
                    out(&format!("Deleted: {d}\n"));
                }
            }
            Ok(())
        }
    })
    .await
}

/// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Only inspect objects of the given type
    #[arg(long = "type")]
    pub typ: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long = "size")]
    pub size: bool,
    /// Names or ids.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `inspect`: container first, then image, like docker.
pub async fn inspect(c: &Client, a: InspectArgs) -> Res {
    let typ = a.typ.as_deref().unwrap_or("");
    if !matches!(typ, "" | "container" | "image") {
        return Err(CliError::Message(format!("\"{typ}\" is not a valid value for --type")));
    }
    let mut raws: Vec<String> = Vec::new();
    let mut failed = false;
    for n in &a.names {
        let mut found = None;
        if typ != "image" {
            match c.inspect_container_raw(n, &query::InspectContainer { size: a.size }).await {
                Ok(b) => found = Some(b),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if found.is_none() && typ != "container" {
            match c.inspect_image_raw(n).await {
                Ok(b) => found = Some(b),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match found {
            Some(b) => raws.push(String::from_utf8_lossy(&b).trim().to_owned()),
            None => {
                failed = true;
                let what = match typ {
                    "container" => "container",
                    "image" => "image",
                    _ => "object",
                };
                err_line(&format!("Error: No such {what}: {n}"));
            }
        }
    }
    match &a.format {
        Some(f) => {
            let mut rows = Vec::new();
            for r in &raws {
                let v: serde_json::Value =
                    serde_json::from_str(r).map_err(|e| CliError::Message(format!("invalid inspect output: {e}")))?;
                rows.push(crate::format::to_value(&v)?);
            }
            let text = render(
                &Format { template: f.replace("\\t", "\t").replace("\\n", "\n"), table: false },
                &BTreeMap::new(),
                &rows,
            )?;
            out(&text);
        }
        None => {
            if raws.is_empty() {
                out("[]\n");
            } else {
                out(&format!("{}\n", indent_json(&format!("[{}]", raws.join(",")), "    ")));
            }
        }
    }
    if failed { Err(CliError::Status(1)) } else { Ok(()) }
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// File or `-` for stdin.
    pub file: String,
    /// REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// `import`: streams the tarball and prints the new image id.
pub async fn import(c: &Client, a: ImportArgs) -> Res {
    let (repo, tag) = match &a.reference {
        Some(r) => {
            let parsed = berth_base::Reference::parse(r).map_err(|e| CliError::Message(e.to_string()))?;
            (Some(parsed.familiar_name()), parsed.tag().map(str::to_owned))
        }
        None => (None, None),
    };
    let q = query::CreateImage {
        from_src: Some("-".to_owned()),
        repo,
        tag,
        message: a.message.clone(),
        changes: a.change.clone(),
        platform: a.platform.clone(),
        ..Default::default()
    };
    let body = if a.file == "-" {
        berth_api::client::reader_body(tokio::io::stdin())
    } else if a.file.contains("://") {
        return Err(CliError::Message("importing from a URL is not supported yet".to_owned()));
    } else {
        let f = tokio::fs::File::open(&a.file).await.map_err(|e| CliError::Message(format!("open {}: {e}", a.file)))?;
        berth_api::client::reader_body(f)
    };
    let mut s = c.import_image(&q, body).await?;
    print_progress(&mut s).await
}

/// Prints a JSON-lines progress stream docker-style; an `error` line fails the command.
pub async fn print_progress(s: &mut berth_api::client::JsonStream) -> Res {
    while let Some(m) = s.next_message().await {
        let m = m?;
        if let Some(e) = m.error.or(m.error_detail.map(|d| d.message)) {
            return Err(CliError::Message(e));
        }
        if let Some(st) = m.stream {
            out(&st);
        }
        if let Some(st) = m.status {
            match m.id {
                Some(id) if !id.is_empty() => out(&format!("{id}: {st}\n")),
                _ => out(&format!("{st}\n")),
            }
        }
    }
    Ok(())
}

/// `tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// `tag`.
pub async fn tag(c: &Client, a: TagArgs) -> Res {
    let r = berth_base::Reference::parse(&a.target).map_err(|e| {
        CliError::Message(format!("Error parsing reference: \"{}\" is not a valid repository/tag: {e}", a.target))
    })?;
    if r.digest().is_some() {
        return Err(CliError::Message("refusing to create a tag with a digest reference".to_owned()));
    }
    let q = query::TagImage { repo: r.name(), tag: r.tag().map(str::to_owned) };
    c.tag_image(&a.source, &q).await?;
    Ok(())
}

/// `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long = "human", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Image.
    pub image: String,
}

/// `history`.
pub async fn history(c: &Client, a: HistoryArgs) -> Res {
    let items = c.image_history(&a.image).await?;
    let trunc = !a.no_trunc;
    let n = now();
    let rows: Vec<Vec<(&str, String)>> = items
        .iter()
        .map(|h| {
            let id = if h.id == "<missing>" || h.id.is_empty() {
                "<missing>".to_owned()
            } else if trunc {
                short(&h.id)
            } else {
                h.id.clone()
            };
            let created_by = h.created_by.replace('\t', " ");
            let created_by = if trunc { ellipsis(&created_by, 45) } else { created_by };
            let (since, size) = if a.human {
                (ago(h.created, n), human_size(h.size as f64))
            } else {
                let t = chrono::DateTime::from_timestamp(h.created, 0).map(|t| t.to_rfc3339()).unwrap_or_default();
                (t, h.size.to_string())
            };
            vec![
                ("ID", id),
                ("CreatedSince", since),
                ("CreatedAt", go_time(h.created)),
                ("CreatedBy", created_by),
                ("Size", size),
                ("Comment", h.comment.clone()),
            ]
        })
        .collect();
    if a.quiet && a.format.is_none() {
        out(&rows.iter().map(|r| format!("{}\n", r[0].1)).collect::<String>());
        return Ok(());
    }
    let fmt = match &a.format {
        Some(f) if f != "table" => f.clone(),
        _ => "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".to_owned(),
    };
    let headers: BTreeMap<&str, &str> = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ]
    .into();
    let vals: Vec<_> = rows.iter().map(|r| string_map(r)).collect();
    out(&render(&Format::new(&fmt), &headers, &vals)?);
    Ok(())
}

/// `version` and `info`.
#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
}

/// `version`: Client and Server sections like docker.
pub async fn version(c: &Client, a: FormatArgs) -> Res {
    let client = serde_json::json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": berth_api::API_VERSION,
        "Os": std::env::consts::OS,
        "Arch": std::env::consts::ARCH,
    });
    let server = c.version().await;
    if let Some(f) = &a.format {
        let sv = server.as_ref().ok().and_then(|s| serde_json::to_value(s).ok()).unwrap_or(serde_json::Value::Null);
        let v = serde_json::json!({ "Client": client, "Server": sv });
        out(&render(&Format { template: f.clone(), table: false }, &BTreeMap::new(), &[crate::format::to_value(&v)?])?);
        return server.map(|_| ()).map_err(Into::into);
    }
    let mut s = String::new();
    s.push_str("Client:\n");
    s.push_str(&align(&[
        format!(" Version:\t{}", env!("CARGO_PKG_VERSION")),
        format!(" API version:\t{}", berth_api::API_VERSION),
        format!(" OS/Arch:\t{}/{}", std::env::consts::OS, go_arch(std::env::consts::ARCH)),
    ]));
    out(&s);
    let v = server?;
    let mut lines = vec![
        format!(" Engine:"),
        format!("  Version:\t{}", v.version.clone().unwrap_or_default()),
        format!(
            "  API version:\t{} (minimum version {})",
            v.api_version.clone().unwrap_or_default(),
            v.min_api_version.clone().unwrap_or_default()
        ),
        format!("  OS/Arch:\t{}/{}", v.os.clone().unwrap_or_default(), v.arch.clone().unwrap_or_default()),
    ];
    if let Some(k) = &v.kernel_version {
        lines.push(format!("  Kernel:\t{k}"));
    }
    for comp in v.components.clone().unwrap_or_default() {
        if comp.name == "Engine" {
            continue;
        }
        lines.push(format!(" {}:", comp.name));
        lines.push(format!("  Version:\t{}", comp.version));
    }
    let name = v.platform.as_ref().map(|p| p.name.clone()).unwrap_or_else(|| "berth".to_owned());
    out(&format!("\nServer: {name}\n{}", align(&lines)));
    Ok(())
}

fn go_arch(a: &str) -> &str {
    match a {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `info`.
pub async fn info(c: &Client, a: FormatArgs) -> Res {
    let v = c.info_raw().await?;
    if let Some(f) = &a.format {
        out(&render(&Format { template: f.clone(), table: false }, &BTreeMap::new(), &[crate::format::to_value(&v)?])?);
        return Ok(());
    }
    let g = |k: &str| -> String {
        match v.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    };
    let mut s = String::new();
    s.push_str("Client:\n");
    s.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    s.push_str(" Context:    default\n Debug Mode: false\n\nServer:\n");
    s.push_str(&format!(" Containers: {}\n", g("Containers")));
    s.push_str(&format!("  Running: {}\n", g("ContainersRunning")));
    s.push_str(&format!("  Paused: {}\n", g("ContainersPaused")));
    s.push_str(&format!("  Stopped: {}\n", g("ContainersStopped")));
    s.push_str(&format!(" Images: {}\n", g("Images")));
    s.push_str(&format!(" Server Version: {}\n", g("ServerVersion")));
    s.push_str(&format!(" Storage Driver: {}\n", g("Driver")));
    s.push_str(&format!(" Logging Driver: {}\n", g("LoggingDriver")));
    s.push_str(&format!(" Cgroup Driver: {}\n", g("CgroupDriver")));
    s.push_str(&format!(" Cgroup Version: {}\n", g("CgroupVersion")));
    s.push_str(&format!(" Kernel Version: {}\n", g("KernelVersion")));
    s.push_str(&format!(" Operating System: {}\n", g("OperatingSystem")));
    s.push_str(&format!(" OSType: {}\n", g("OSType")));
    s.push_str(&format!(" Architecture: {}\n", g("Architecture")));
    s.push_str(&format!(" CPUs: {}\n", g("NCPU")));
    let mem = v.get("MemTotal").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    s.push_str(&format!(" Total Memory: {}\n", human_binary(mem)));
    s.push_str(&format!(" Name: {}\n", g("Name")));
    s.push_str(&format!(" ID: {}\n", g("ID")));
    s.push_str(&format!(" Docker Root Dir: {}\n", g("DockerRootDir")));
    s.push_str(&format!(" Debug Mode: {}\n", g("Debug")));
    s.push_str(&format!(" Experimental: {}\n", g("ExperimentalBuild")));
    s.push_str(&format!(" Live Restore Enabled: {}\n", g("LiveRestoreEnabled")));
    out(&s);
    Ok(())
}

/// Docker's `units.BytesSize`: binary units, `%.4g`, e.g. `15.5GiB`.
fn human_binary(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1024.0 && i + 1 < UNITS.len() {
        s /= 1024.0;
        i += 1;
    }
    let t = format!("{s:.2}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    format!("{t}{}", UNITS[i])
}

/// Starts `berth daemon` in the background when the default socket has no listener, we
/// are root and `BERTH_NO_AUTOSTART` is unset; waits up to 10 s for `/_ping`.
pub async fn autostart(c: &Client) {
    if c.host() != DEFAULT_HOST
        || std::env::var_os("BERTH_NO_AUTOSTART").is_some()
        || !rustix::process::geteuid().is_root()
    {
        return;
    }
    if tokio::net::UnixStream::connect(c.socket()).await.is_ok() {
        return;
    }
    let log_path = "/run/berth/daemon.log";
    if std::fs::create_dir_all("/run/berth").is_err() {
        return;
    }
    let Ok(log) = std::fs::OpenOptions::new().create(true).append(true).open(log_path) else {
        return;
    };
    let Ok(log2) = log.try_clone() else {
        return;
    };
    // The resolved path, so `ps` shows `berth daemon` rather than `exe daemon`.
    let exe = std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from("/proc/self/exe"));
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("daemon").stdin(std::process::Stdio::null()).stdout(log).stderr(log2);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it
        // detaches the daemon from our session so it outlives this terminal.
        unsafe {
            cmd.pre_exec(|| rustix::process::setsid().map(|_| ()).map_err(std::io::Error::from));
        }
    }
    if cmd.spawn().is_err() {
        return;
    }
    err_line(&format!("berth: starting the daemon (log: {log_path})"));
    for _ in 0..100 {
        if c.ping().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    fn images_table() {
        let img = ImageSummary {
            id: "sha256:abcdef0123456789abcdef".to_owned(),
            repo_tags: vec!["busybox:latest".to_owned(), "localhost:5000/bb:v1".to_owned()],
            created: 0,
            size: 4_262_912,
            ..Default::default()
        };
        let dangling =
            ImageSummary { id: "sha256:ffff00001111".to_owned(), created: 0, size: 100, ..Default::default() };
        let a = ImagesArgs {
            all: false,
            quiet: false,
            no_trunc: false,
            digests: false,
            format: None,
            filter: vec![],
            repository: None,
        };
        let out = images_output(&[img, dangling], &a, 7200).unwrap();
        assert_eq!(
            out,
            "REPOSITORY         TAG       IMAGE ID       CREATED       SIZE\n\
             busybox            latest    abcdef012345   2 hours ago   4.26MB\n\
             localhost:5000/bb  v1        abcdef012345   2 hours ago   4.26MB\n\
             <none>             <none>    ffff00001111   2 hours ago   100B\n"
                .replace("localhost:5000/bb  v1", "localhost:5000/bb   v1")
                .replace("REPOSITORY         TAG", "REPOSITORY          TAG")
                .replace("busybox            latest", "busybox             latest")
                .replace("<none>             <none>", "<none>              <none>")
        );
    }

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("1700000000", 0).unwrap(), "1700000000");
        assert_eq!(parse_since("10m", 1000).unwrap(), "400");
        assert_eq!(parse_since("1h30m", 10000).unwrap(), "4600");
        assert_eq!(parse_since("2024-01-01T00:00:00Z", 0).unwrap(), "1704067200");
        assert!(parse_since("yesterday", 0).is_err());
        assert_eq!(human_binary(16.0 * 1024.0 * 1024.0 * 1024.0), "16GiB");
    }
}
