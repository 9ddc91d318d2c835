//! `compose ps`, `ls`, `images`, `top`, `port`, `config` and `version`: what the project is
//! and what of it runs.

use std::collections::BTreeMap;

use berth_api::Client;
use berth_compose::ComposeError;
use berth_compose::planner::create::{config_hash, image_of};
use berth_compose::planner::names;
use berth_compose::planner::state::{self, Oneoff};
use clap::Args;

use super::ProjectOpts;
use crate::CliError;
use crate::commands::container::ps_context;
use crate::format::{Format, align, human_size, render, string_map};
use crate::output::out;

#[cfg_attr(doc, doc = "`compose ps`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct PsArgs {
    /// Show all stopped containers (including those created by the run command)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only display IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Display services
    #[arg(long = "services")]
    pub services_only: bool,
    /// Format output using a custom template: 'table', 'json' or a Go template
    #[arg(long = "format", default_value = "table")]
    pub format: String,
    /// Filter services by a property (supported filters: status)
    #[arg(long = "filter")]
    pub filter: Option<String>,
    /// Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited]
    #[arg(long = "status")]
    pub status: Vec<String>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose ls`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct LsArgs {
    /// Show all stopped Compose projects
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only display project names
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Format the output. Values: [table | json]
    #[arg(long = "format", default_value = "table")]
    pub format: String,
}

#[cfg_attr(doc, doc = "`compose images`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct ImagesArgs {
    /// Only display IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Format the output. Values: [table | json]
    #[arg(long = "format", default_value = "table")]
    pub format: String,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "Commands that take only a list of services (`top`).")]
#[derive(Debug, Clone, Default, Args)]
pub struct ServicesArgs {
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose port`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct PortArgs {
    /// Index of the container if service has multiple replicas
    #[arg(long = "index", default_value_t = 1)]
    pub index: u32,
    /// tcp or udp
    #[arg(long = "protocol", default_value = "tcp")]
    pub protocol: String,
    /// The service.
    pub service: String,
    /// The private port.
    pub private_port: String,
}

#[cfg_attr(doc, doc = "`compose config`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Print the service names, one per line.
    #[arg(long = "services")]
    pub services: bool,
    /// Print the volume names, one per line.
    #[arg(long = "volumes")]
    pub volumes: bool,
    /// Print the network names, one per line.
    #[arg(long = "networks")]
    pub networks: bool,
    /// Print the profile names, one per line.
    #[arg(long = "profiles")]
    pub profiles: bool,
    /// Print the image names, one per line.
    #[arg(long = "images")]
    pub images: bool,
    /// Only validate the configuration, don't print anything
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Print the service config hash, one per line.
    #[arg(long = "hash")]
    pub hash: Option<String>,
    /// Format the output. Values: [yaml | json]
    #[arg(long = "format", default_value = "yaml")]
    pub format: String,
    /// Save to file (default to stdout)
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Don't interpolate environment variables
    #[arg(long = "no-interpolate")]
    pub no_interpolate: bool,
    /// Services
    pub service_names: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose version`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct VersionArgs {
    /// Format the output. Values: [pretty | json]
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Shows only Compose's version number
    #[arg(long = "short")]
    pub short: bool,
}

const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("Project", "PROJECT"),
    ("Service", "SERVICE"),
    ("RunningFor", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Health", "HEALTH"),
    ("ExitCode", "EXIT CODE"),
    ("Ports", "PORTS"),
    ("Labels", "LABELS"),
    ("Networks", "NETWORKS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Size", "SIZE"),
];

fn exit_code_of(status: &str) -> String {
    status
        .strip_prefix("Exited (")
        .and_then(|r| r.split_once(')'))
        .map(|(n, _)| n.to_owned())
        .unwrap_or_else(|| "0".to_owned())
}

fn health_of(status: &str) -> String {
    for h in ["healthy", "unhealthy", "starting"] {
        if status.ends_with(&format!("({h})")) || status.contains(&format!("(health: {h})")) {
            return h.to_owned();
        }
    }
    String::new()
}

/// `compose ps`.
pub async fn ps(c: &Client, p: &ProjectOpts, a: PsArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    for s in &a.services {
        if !project.services.is_empty() && !project.services.contains_key(s) {
            return Err(super::cerr(ComposeError::NoSuchService { name: s.clone() }));
        }
    }
    let mut status = a.status.clone();
    if let Some(f) = &a.filter {
        match f.split_once('=') {
            Some(("status", v)) => status.push(v.to_owned()),
            _ => return Err(CliError::Message(format!("invalid filter {f:?}: only status=... is supported"))),
        }
    }
    let oneoff = if a.all { Oneoff::Include } else { Oneoff::Exclude };
    let list = state::containers(c, &project.name, oneoff, a.all || !status.is_empty()).await.map_err(super::cerr)?;
    let list: Vec<_> = list
        .into_iter()
        .filter(|x| a.services.is_empty() || a.services.contains(&x.service))
        .filter(|x| status.is_empty() || status.contains(&x.state))
        .collect();
    if a.services_only {
        let mut seen: Vec<String> = Vec::new();
        for x in &list {
            if !seen.contains(&x.service) {
                seen.push(x.service.clone());
            }
        }
        out(&seen.iter().map(|s| format!("{s}\n")).collect::<String>());
        return Ok(());
    }
    if a.quiet {
        out(&list.iter().map(|x| format!("{}\n", x.id)).collect::<String>());
        return Ok(());
    }
    let now = crate::commands::now();
    let trunc = !a.no_trunc;
    let rows: Vec<Vec<(&str, String)>> = list
        .iter()
        .map(|x| {
            let mut f = ps_context(&x.summary, trunc, now);
            f.push(("Name", x.name.clone()));
            f.push(("Project", project.name.clone()));
            f.push(("Service", x.service.clone()));
            f.push(("Health", health_of(&x.status)));
            f.push(("ExitCode", exit_code_of(&x.status)));
            f
        })
        .collect();
    if a.format == "json" {
        for r in &rows {
            let m: serde_json::Map<String, serde_json::Value> =
                r.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone()))).collect();
            out(&format!("{}\n", serde_json::Value::Object(m)));
        }
        return Ok(());
    }
    let fmt = match a.format.as_str() {
        "table" | "" => {
            "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
                .to_owned()
        }
        f => f.to_owned(),
    };
    let values: Vec<_> = rows.iter().map(|r| string_map(r)).collect();
    let headers: BTreeMap<&str, &str> = PS_HEADERS.iter().copied().collect();
    out(&render(&Format::new(&fmt), &headers, &values)?);
    Ok(())
}

/// `compose ls`.
pub async fn ls(c: &Client, a: LsArgs) -> Result<(), CliError> {
    let projects = state::projects(c, a.all).await.map_err(super::cerr)?;
    if a.quiet {
        out(&projects.keys().map(|k| format!("{k}\n")).collect::<String>());
        return Ok(());
    }
    if a.format == "json" {
        let v: Vec<serde_json::Value> = projects
            .iter()
            .map(|(n, p)| serde_json::json!({"Name": n, "Status": p.status(), "ConfigFiles": p.config_files}))
            .collect();
        out(&format!("{}\n", serde_json::Value::Array(v)));
        return Ok(());
    }
    let mut lines = vec!["NAME\tSTATUS\tCONFIG FILES".to_owned()];
    for (n, p) in &projects {
        lines.push(format!("{n}\t{}\t{}", p.status(), p.config_files));
    }
    out(&align(&lines));
    Ok(())
}

/// `compose images`.
pub async fn images(c: &Client, p: &ProjectOpts, a: ImagesArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    let list = state::containers(c, &project.name, Oneoff::Include, true).await.map_err(super::cerr)?;
    let list: Vec<_> = list.into_iter().filter(|x| a.services.is_empty() || a.services.contains(&x.service)).collect();
    let mut rows = Vec::new();
    for x in &list {
        let image = x.summary.image.clone().unwrap_or_default();
        let info = c.inspect_image(&image).await.ok();
        let id = info.as_ref().and_then(|i| i.id.clone()).or_else(|| x.summary.image_id.clone()).unwrap_or_default();
        let size = info.as_ref().and_then(|i| i.size).unwrap_or(0);
        let (repo, tag) = match image.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((r, t)) => (r.to_owned(), t.to_owned()),
            None => (image.clone(), "latest".to_owned()),
        };
        rows.push((x.name.clone(), repo, tag, id, size));
    }
    if a.quiet {
        let mut ids: Vec<String> = rows.iter().map(|r| r.3.clone()).collect();
        ids.dedup();
        out(&ids.iter().map(|i| format!("{i}\n")).collect::<String>());
        return Ok(());
    }
    if a.format == "json" {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, r, t, i, s)| serde_json::json!({"ContainerName": n, "Repository": r, "Tag": t, "ID": i, "Size": s}))
            .collect();
        out(&format!("{}\n", serde_json::Value::Array(v)));
        return Ok(());
    }
    let mut lines = vec!["CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE".to_owned()];
    for (n, r, t, i, s) in &rows {
        lines.push(format!("{n}\t{r}\t{t}\t{}\t{}", crate::commands::short(i), human_size(*s as f64)));
    }
    out(&align(&lines));
    Ok(())
}

/// `compose top`.
pub async fn top(c: &Client, p: &ProjectOpts, a: ServicesArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    let list = state::containers(c, &project.name, Oneoff::Exclude, false).await.map_err(super::cerr)?;
    for x in list.iter().filter(|x| a.services.is_empty() || a.services.contains(&x.service)) {
        let t = c.top_container(&x.id, &Default::default()).await?;
        out(&format!("{}\n", x.name));
        let mut rows = vec![t.titles.unwrap_or_default()];
        rows.extend(t.processes.unwrap_or_default());
        out(&crate::commands::container::tab_table(&rows, 0, 3));
        out("\n");
    }
    Ok(())
}

/// `compose port`.
pub async fn port(c: &Client, p: &ProjectOpts, a: PortArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    let list = state::containers(c, &project.name, Oneoff::Exclude, false).await.map_err(super::cerr)?;
    let x = list
        .iter()
        .find(|x| x.service == a.service && x.number == a.index)
        .ok_or_else(|| super::cerr(ComposeError::NotRunning { service: a.service.clone() }))?;
    let want: u16 =
        a.private_port.parse().map_err(|_| CliError::Message(format!("invalid port {:?}", a.private_port)))?;
    let ports = x.summary.ports.clone().unwrap_or_default();
    let hit = ports.iter().find(|pt| {
        pt.private_port == want
            && pt.public_port.is_some()
            && pt.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into()) == a.protocol
    });
    match hit {
        Some(pt) => {
            out(&format!("{}:{}\n", pt.ip.clone().unwrap_or_default(), pt.public_port.unwrap_or(0)));
            Ok(())
        }
        None => Err(CliError::Message(format!("no port {want}/{} for container {}", a.protocol, x.name))),
    }
}

/// `compose config`.
pub async fn config(p: &ProjectOpts, a: ConfigArgs) -> Result<(), CliError> {
    let project = super::load(p)?;
    let text = if a.services {
        project.services.keys().map(|s| format!("{s}\n")).collect()
    } else if a.volumes {
        project.volumes.keys().map(|s| format!("{s}\n")).collect()
    } else if a.networks {
        project.networks.keys().map(|s| format!("{s}\n")).collect()
    } else if a.profiles {
        let mut ps: Vec<&String> = project.services.values().flat_map(|s| s.profiles.iter()).collect();
        ps.sort();
        ps.dedup();
        ps.iter().map(|s| format!("{s}\n")).collect()
    } else if a.images {
        project.services.values().map(|s| format!("{}\n", image_of(&project, s))).collect()
    } else if let Some(h) = &a.hash {
        project
            .services
            .values()
            .filter(|s| h == "*" || h.split(',').any(|x| x == s.name))
            .map(|s| format!("{} {}\n", s.name, config_hash(s)))
            .collect()
    } else if a.format == "json" {
        format!("{}\n", project.to_json().map_err(super::cerr)?)
    } else {
        project.to_yaml().map_err(super::cerr)?
    };
    if a.quiet {
        return Ok(());
    }
    match &a.output {
        Some(f) => std::fs::write(f, text).map_err(|e| CliError::Message(format!("{f}: {e}")))?,
        None => out(&text),
    }
    Ok(())
}

/// `compose version`.
pub fn version(a: VersionArgs) -> Result<(), CliError> {
    let v = names::COMPOSE_VERSION;
    if a.short {
        out(&format!("{v}\n"));
    } else if a.format.as_deref() == Some("json") {
        out(&format!("{}\n", serde_json::json!({"version": format!("v{v}")})));
    } else {
        out(&format!("Docker Compose version v{v} (berth {})\n", env!("CARGO_PKG_VERSION")));
    }
    Ok(())
}
