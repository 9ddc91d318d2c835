//! `volume create|ls|inspect|rm|prune`, with docker's flags, output and prompts.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use berth_api::Client;
use berth_api::models::VolumeCreateRequest;
use clap::{Args, Subcommand};

use super::{Res, parse_filters};
use crate::CliError;
use crate::format::{Format, human_size_precision, indent_json, render, string_map};

/// Docker's `units.HumanSize` (4 significant digits).
pub(crate) fn human_size(n: f64) -> String {
    human_size_precision(n, 4)
}
use crate::opts;
use crate::output::{err_line, out, print_error};

/// `volume` subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum VolumeCmd {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[cfg_attr(doc, doc = "`volume create`.")]
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long = "driver", default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", hide = true)]
    pub name_flag: Option<String>,
    /// The volume's name (generated when none is given).
    pub name: Option<String>,
}

#[cfg_attr(doc, doc = "`volume ls`.")]
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
}

#[cfg_attr(doc, doc = "`volume inspect`.")]
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// The volumes.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[cfg_attr(doc, doc = "`volume rm`.")]
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// The volumes.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[cfg_attr(doc, doc = "`volume prune`.")]
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

/// Runs a `volume` subcommand.
pub async fn run(c: &Client, cmd: VolumeCmd) -> Res {
    match cmd {
        VolumeCmd::Create(a) => create(c, a).await,
        VolumeCmd::Ls(a) => ls(c, a).await,
        VolumeCmd::Inspect(a) => inspect(c, a).await,
        VolumeCmd::Rm(a) => rm(c, a).await,
        VolumeCmd::Prune(a) => prune(c, a).await,
    }
}

async fn create(c: &Client, a: CreateArgs) -> Res {
    if let (Some(f), Some(p)) = (&a.name_flag, &a.name)
        && f != p
    {
        return Err(CliError::Message(
            "conflicting options: cannot specify a volume-name through both --name and as a positional arg".to_owned(),
        ));
    }
    let labels = opts::parse_kv_list(&a.label, "--label", false)?;
    let mut driver_opts = HashMap::new();
    for o in &a.opt {
        let (k, v) = o.split_once('=').ok_or_else(|| {
            CliError::Opt(format!(
                "invalid argument \"{o}\" for \"-o, --opt\" flag: invalid key/value pair format in driver options"
            ))
        })?;
        driver_opts.insert(k.to_owned(), v.to_owned());
    }
    let body = VolumeCreateRequest {
        name: a.name.or(a.name_flag),
        driver: Some(a.driver),
        driver_opts: Some(driver_opts),
        labels: Some(labels),
        cluster_volume_spec: None,
    };
    let v = c.create_volume(&body).await?;
    out(&format!("{}\n", v.get("Name").and_then(|n| n.as_str()).unwrap_or_default()));
    Ok(())
}

/// One volume's fields for `--format`, as docker's volume context names them.
fn row(v: &serde_json::Value) -> gotmpl::Value {
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
    let labels = v.get("Labels").and_then(|l| l.as_object()).map(|m| {
        let mut l: Vec<String> = m.iter().map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or_default())).collect();
        l.sort();
        l.join(",")
    });
    let usage = v.get("UsageData");
    let num = |k: &str| usage.and_then(|u| u.get(k)).and_then(|n| n.as_i64());
    string_map(&[
        ("Name", s("Name")),
        ("Driver", s("Driver")),
        ("Scope", s("Scope")),
        ("Mountpoint", s("Mountpoint")),
        ("Labels", labels.unwrap_or_default()),
        ("CreatedAt", s("CreatedAt")),
        ("Links", num("RefCount").map_or("N/A".to_owned(), |n| n.to_string())),
        ("Size", num("Size").map_or("N/A".to_owned(), |n| human_size(n as f64))),
    ])
}

/// Docker's column titles for the volume fields.
pub(crate) fn headers() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("Name", "VOLUME NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
    ])
}

/// Natural order (`v2` before `v10`), as docker sorts volume names.
fn natural_less(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(p), Some(q)) if p.is_ascii_digit() && q.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|c| **c == b'0').collect::<Vec<_>>();
                let ty = dy.iter().skip_while(|c| **c == b'0').collect::<Vec<_>>();
                let o = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(&ty)).then_with(|| nx.cmp(&ny));
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(p), Some(q)) => {
                if p != q {
                    return p.cmp(q);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

async fn ls(c: &Client, a: LsArgs) -> Res {
    let f = parse_filters(&a.filter)?;
    let resp = c.list_volumes(&f).await?;
    for w in resp.get("Warnings").and_then(|w| w.as_array()).into_iter().flatten() {
        err_line(w.as_str().unwrap_or_default());
    }
    let mut vols: Vec<serde_json::Value> = resp.get("Volumes").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let name = |v: &serde_json::Value| v.get("Name").and_then(|n| n.as_str()).unwrap_or_default().to_owned();
    vols.sort_by(|x, y| natural_less(&name(x), &name(y)));
    let fmt = match (&a.format, a.quiet) {
        (_, true) => "{{.Name}}".to_owned(),
        (Some(f), false) if !f.is_empty() => f.clone(),
        _ => "table {{.Driver}}\t{{.Name}}".to_owned(),
    };
    let rows: Vec<_> = vols.iter().map(row).collect();
    out(&render(&Format::new(&fmt), &headers(), &rows)?);
    Ok(())
}

async fn inspect(c: &Client, a: InspectArgs) -> Res {
    let mut found = Vec::new();
    let mut failed = false;
    for n in &a.names {
        match c.inspect_volume(n).await {
            Ok(v) => found.push(v),
            Err(e) => {
                failed = true;
                print_error(&e.into());
            }
        }
    }
    match &a.format {
        Some(f) => {
            let rows = found.iter().map(crate::format::to_value).collect::<Result<Vec<_>, _>>()?;
            out(&render(
                &Format { template: f.replace("\\t", "\t").replace("\\n", "\n"), table: false },
                &BTreeMap::new(),
                &rows,
            )?);
        }
        None => {
            let text = serde_json::to_string(&found).map_err(|e| CliError::Message(e.to_string()))?;
            out(&format!("{}\n", indent_json(&text, "    ")));
        }
    }
    if failed { Err(CliError::Status(1)) } else { Ok(()) }
}

async fn rm(c: &Client, a: RmArgs) -> Res {
    let mut failed = false;
    for n in &a.names {
        match c.remove_volume(n, a.force).await {
            Ok(()) => out(&format!("{n}\n")),
            Err(e) => {
                failed = true;
                print_error(&e.into());
            }
        }
    }
    if failed { Err(CliError::Status(1)) } else { Ok(()) }
}

/// Asks docker's question on stderr… on stdout, as docker does; `true` to go on.
pub(crate) fn confirm(warning: &str) -> bool {
    out(&format!("{warning} [y/N] "));
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
}

async fn prune(c: &Client, a: PruneArgs) -> Res {
    let mut f = parse_filters(&a.filter)?;
    let warning = if a.all {
        if !f.get("all").is_empty() {
            return Err(CliError::Message(
                "conflicting options: cannot specify both --all and --filter all=1".to_owned(),
            ));
        }
        f.add("all", "true");
        "WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?"
    } else {
        // Said explicitly, so that a daemon speaking API 1.41 (berth's) prunes only
        // anonymous volumes, as Docker 23 does.
        if f.get("all").is_empty() {
            f.add("all", "false");
        }
        "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?"
    };
    if !a.force && !confirm(warning) {
        return Err(CliError::Message("volume prune has been cancelled".to_owned()));
    }
    let (names, reclaimed) = prune_call(c, &f).await?;
    if !names.is_empty() {
        out("Deleted Volumes:\n");
        for n in &names {
            out(&format!("{n}\n"));
        }
        out("\n");
    }
    out(&format!("Total reclaimed space: {}\n", human_size(reclaimed as f64)));
    Ok(())
}

/// `POST /volumes/prune`: the names removed and the bytes freed.
pub(crate) async fn prune_call(c: &Client, f: &berth_api::query::Filters) -> Result<(Vec<String>, u64), CliError> {
    let r = c.prune_volumes(f).await?;
    let names = r
        .get("VolumesDeleted")
        .and_then(|x| x.as_array())
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok((names, r.get("SpaceReclaimed").and_then(|x| x.as_u64()).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_naturally() {
        let mut v = vec!["v10", "v2", "a", "v1"];
        v.sort_by(|a, b| natural_less(a, b));
        assert_eq!(v, ["a", "v1", "v2", "v10"]);
    }
}
