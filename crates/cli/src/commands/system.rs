//! `system df` and `builder prune`: what berth's images, containers and build cache hold on
//! disk, and freeing the build cache.

use std::io::BufRead;

use berth_api::{Client, query};
use clap::{Args, Subcommand};

use crate::format::human_size_precision;

fn human_size(n: f64) -> String {
    human_size_precision(n, 4)
}
use crate::{CliError, out};

/// `system …`.
#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(DfArgs),
}

/// `system df`.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
}

/// `builder …`.
#[derive(Debug, Subcommand)]
pub enum BuilderCmd {
    /// Remove build cache
    Prune(PruneArgs),
}

/// `builder prune`.
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

fn pct(part: i64, total: i64) -> String {
    if total <= 0 { String::new() } else { format!(" ({}%)", part * 100 / total) }
}

/// Runs `system df`.
pub async fn df(c: &Client, _a: DfArgs) -> Result<(), CliError> {
    let v = c.system_df().await?;
    let arr = |k: &str| v.get(k).and_then(|x| x.as_array()).cloned().unwrap_or_default();
    let num = |x: &serde_json::Value, k: &str| x.get(k).and_then(|n| n.as_i64()).unwrap_or(0);
    let images = arr("Images");
    let containers = arr("Containers");
    let cache = arr("BuildCache");
    let img_total: i64 = images.iter().map(|i| num(i, "Size")).sum();
    let img_active = images.iter().filter(|i| num(i, "Containers") > 0).count();
    let img_unused: i64 = images.iter().filter(|i| num(i, "Containers") <= 0).map(|i| num(i, "Size")).sum();
    let running = containers.iter().filter(|c| c.get("State").and_then(|s| s.as_str()) == Some("running")).count();
    let cache_size: i64 = cache.iter().map(|e| num(e, "Size")).sum();
    let rows: [Vec<String>; 5] = [
        vec!["TYPE".into(), "TOTAL".into(), "ACTIVE".into(), "SIZE".into(), "RECLAIMABLE".into()],
        vec![
            "Images".into(),
            images.len().to_string(),
            img_active.to_string(),
            human_size(img_total as f64),
            format!("{}{}", human_size(img_unused as f64), pct(img_unused, img_total)),
        ],
        vec!["Containers".into(), containers.len().to_string(), running.to_string(), "0B".into(), "0B".into()],
        vec!["Local Volumes".into(), "0".into(), "0".into(), "0B".into(), "0B".into()],
        vec![
            "Build Cache".into(),
            cache.len().to_string(),
            "0".into(),
            human_size(cache_size as f64),
            human_size(cache_size as f64),
        ],
    ];
    let lines: Vec<String> = rows.iter().map(|r: &Vec<String>| r.join("\t")).collect();
    out(&crate::format::align(&lines));
    Ok(())
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
