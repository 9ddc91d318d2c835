//! System commands: version, info, inspect (of any object), `system df` (what images,
//! containers and build cache hold on disk), berth's `system check` (the data root's
//! hygiene, as the daemon sees it) and `builder prune`.

use std::collections::BTreeMap;
use std::io::BufRead;

use berth_api::{Client, query};
use clap::{Args, Subcommand};

use super::Res;
use crate::CliError;
use crate::format::{Format, align, human_size_precision, indent_json, render};
use crate::output::{err_line, out};

fn human_size(n: f64) -> String {
    human_size_precision(n, 4)
}

#[cfg_attr(doc, doc = "`version` and `info`.")]
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

#[cfg_attr(doc, doc = "`inspect`.")]
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

/// `system …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(DfArgs),
    /// Check the daemon's data root: permissions, blob digests, unowned directories
    Check,
    /// Remove unused data
    Prune(super::prune::SystemPruneArgs),
}

/// `system check`: lists every finding (kind, path, what is wrong) and fails when there
/// is one. The daemon does the walking; the CLI never touches the data root.
pub async fn check(c: &Client) -> Res {
    let report = c.system_check().await?;
    if report.findings.is_empty() {
        out(&format!("No problems found in {}\n", report.data_root));
        return Ok(());
    }
    let lines: Vec<String> =
        report.findings.iter().map(|f| format!("{}\t{}\t{}", f.kind.to_uppercase(), f.path, f.detail)).collect();
    out(&align(&lines));
    let n = report.findings.len();
    err_line(&format!("{n} problem{} found in {}", if n == 1 { "" } else { "s" }, report.data_root));
    Err(CliError::Status(1))
}

#[cfg_attr(doc, doc = "`system df`.")]
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
}

/// `builder …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum BuilderCmd {
    /// Remove build cache
    Prune(PruneArgs),
}

#[cfg_attr(doc, doc = "`builder prune`.")]
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter")]
    pub filters: Vec<String>,
}

/// Runs `system df`.
pub async fn df(c: &Client, a: DfArgs) -> Result<(), CliError> {
    super::prune::df(c, a.verbose).await
}

/// Runs `builder prune`.
pub async fn prune(c: &Client, a: PruneArgs) -> Result<(), CliError> {
    if !a.force {
        let what = if a.all { "all build cache" } else { "all dangling build cache" };
        eprint!("WARNING! This will remove {what}. Are you sure you want to continue? [y/N] ");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let mut f = query::Filters::default();
    for kv in &a.filters {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| CliError::Message(format!("bad format of filter (expected name=value): {kv}")))?;
        f.add(k, v);
    }
    let r = c.prune_build_cache(a.all, &f).await?;
    if let Some(ids) = r.get("CachesDeleted").and_then(|x| x.as_array())
        && !ids.is_empty()
    {
        out("Deleted build cache objects:\n");
        for id in ids.iter().filter_map(|i| i.as_str()) {
            out(&format!("{id}\n"));
        }
        out("\n");
    }
    let n = r.get("SpaceReclaimed").and_then(|x| x.as_u64()).unwrap_or(0);
    out(&format!("Total reclaimed space: {}\n", human_size(n as f64)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes() {
        assert_eq!(human_binary(16.0 * 1024.0 * 1024.0 * 1024.0), "16GiB");
    }
}
