//! Reclaiming space and saving containers: `commit`, `container prune`, `image prune`,
//! `system prune` (the docker CLI's composition of the prunes, done here the same way:
//! containers, volumes with `--volumes`, images, build cache, then the total) and `system
//! df [-v]`, each printing docker's prompts, lists and `Total reclaimed space: …`.

use berth_api::Client;
use berth_api::query::{self, Filters};
use clap::{ArgAction, Args, Subcommand};

use super::volume::{confirm, human_size};
use super::{Res, parse_filters, short};
use crate::CliError;
use crate::format::align;
use crate::output::out;

#[cfg_attr(doc, doc = "`commit`.")]
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long = "author")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long = "pause", default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    pub pause: bool,
    /// The container.
    pub container: String,
    /// REPOSITORY[:TAG] for the new image.
    pub reference: Option<String>,
}

/// `container …` verbs that are not classic commands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ContainerCmd {
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
}

/// `image …` verbs that are not classic commands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ImageCmd {
    /// Remove unused images
    Prune(ImagePruneArgs),
    /// Show where an image's size comes from: layers, biggest files, wasted bytes
    Explore(super::explore::ExploreArgs),
}

#[cfg_attr(doc, doc = "`container prune`.")]
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

#[cfg_attr(doc, doc = "`image prune`.")]
#[derive(Debug, Args)]
pub struct ImagePruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

#[cfg_attr(doc, doc = "`system prune`.")]
#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long = "volumes")]
    pub volumes: bool,
}

/// Splits `REPOSITORY[:TAG]` (a `:` after the last `/` starts the tag).
fn split_reference(r: &str) -> (String, Option<String>) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), Some(tag.to_owned())),
        _ => (r.to_owned(), None),
    }
}

/// Runs `commit`: prints the new image's id.
pub async fn commit(c: &Client, a: CommitArgs) -> Res {
    let (repo, tag) = match &a.reference {
        Some(r) => {
            let (repo, tag) = split_reference(r);
            (Some(repo), tag)
        }
        None => (None, None),
    };
    let q = query::Commit {
        container: a.container,
        repo,
        tag,
        comment: a.message,
        author: a.author,
        pause: a.pause,
        changes: a.change,
    };
    let r = c.commit(&q, None).await?;
    out(&format!("{}\n", r.get("Id").and_then(|i| i.as_str()).unwrap_or_default()));
    Ok(())
}

fn cancelled(what: &str) -> CliError {
    CliError::Message(format!("{what} prune has been cancelled"))
}

/// `POST /containers/prune`: the report's text and the bytes freed.
async fn containers_call(c: &Client, f: &Filters) -> Result<(String, u64), CliError> {
    let r = c.prune_containers(f).await?;
    let mut s = String::new();
    if let Some(ids) = r.get("ContainersDeleted").and_then(|x| x.as_array()).filter(|a| !a.is_empty()) {
        s.push_str("Deleted Containers:\n");
        for id in ids.iter().filter_map(|i| i.as_str()) {
            s.push_str(id);
            s.push('\n');
        }
    }
    Ok((s, r.get("SpaceReclaimed").and_then(|x| x.as_u64()).unwrap_or(0)))
}

/// `POST /images/prune`: the report's text and the bytes freed.
async fn images_call(c: &Client, all: bool, f: &Filters) -> Result<(String, u64), CliError> {
    let mut f = f.clone();
    f.add("dangling", if all { "false" } else { "true" });
    let r = c.prune_images(&f).await?;
    let mut s = String::new();
    if let Some(items) = r.get("ImagesDeleted").and_then(|x| x.as_array()).filter(|a| !a.is_empty()) {
        s.push_str("Deleted Images:\n");
        for i in items {
            if let Some(u) = i.get("Untagged").and_then(|x| x.as_str()) {
                s.push_str(&format!("untagged: {u}\n"));
            }
            if let Some(d) = i.get("Deleted").and_then(|x| x.as_str()) {
                s.push_str(&format!("deleted: {d}\n"));
            }
        }
    }
    Ok((s, r.get("SpaceReclaimed").and_then(|x| x.as_u64()).unwrap_or(0)))
}

async fn volumes_call(c: &Client, f: &Filters) -> Result<(String, u64), CliError> {
    let (names, n) = super::volume::prune_call(c, f).await?;
    let mut s = String::new();
    if !names.is_empty() {
        s.push_str("Deleted Volumes:\n");
        for v in names {
            s.push_str(&v);
            s.push('\n');
        }
    }
    Ok((s, n))
}

async fn build_cache_call(c: &Client, all: bool, f: &Filters) -> Result<(String, u64), CliError> {
    let r = c.prune_build_cache(all, f).await?;
    let mut s = String::new();
    if let Some(ids) = r.get("CachesDeleted").and_then(|x| x.as_array()).filter(|a| !a.is_empty()) {
        s.push_str("Deleted build cache objects:\n");
        for id in ids.iter().filter_map(|i| i.as_str()) {
            s.push_str(id);
            s.push('\n');
        }
    }
    Ok((s, r.get("SpaceReclaimed").and_then(|x| x.as_u64()).unwrap_or(0)))
}

/// Prints one prune's report as docker does (its text, a blank line) and the total.
fn report(text: &str, reclaimed: u64) {
    if !text.is_empty() {
        out(&format!("{text}\n"));
    }
    out(&format!("Total reclaimed space: {}\n", human_size(reclaimed as f64)));
}

/// Runs `container prune`.
pub async fn container_prune(c: &Client, a: PruneArgs) -> Res {
    let f = parse_filters(&a.filter)?;
    if !a.force && !confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue?") {
        return Err(cancelled("container"));
    }
    let (text, n) = containers_call(c, &f).await?;
    report(&text, n);
    Ok(())
}

/// Runs `image prune`.
pub async fn image_prune(c: &Client, a: ImagePruneArgs) -> Res {
    let f = parse_filters(&a.filter)?;
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    };
    if !a.force && !confirm(warning) {
        return Err(cancelled("image"));
    }
    let (text, n) = images_call(c, a.all, &f).await?;
    report(&text, n);
    Ok(())
}

/// Runs `system prune`: containers, volumes (with `--volumes`), images, build cache.
pub async fn system_prune(c: &Client, a: SystemPruneArgs) -> Res {
    let f = parse_filters(&a.filter)?;
    if a.volumes && !f.get("until").is_empty() {
        return Err(CliError::Message("ERROR: The \"until\" filter is not supported with \"--volumes\"".to_owned()));
    }
    let mut warnings = vec!["all stopped containers", "all networks not used by at least one container"];
    if a.volumes {
        warnings.push("all anonymous volumes not used by at least one container");
    }
    warnings.push(if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    warnings.push(if a.all { "all build cache" } else { "unused build cache" });
    let mut msg = String::from("WARNING! This will remove:\n");
    for w in &warnings {
        msg.push_str(&format!("  - {w}\n"));
    }
    if !f.is_empty() {
        msg.push_str("\n  Items to be pruned will be filtered with:\n");
        for (k, vs) in &f.0 {
            for v in vs {
                msg.push_str(&format!("  - {k}={v}\n"));
            }
        }
    }
    msg.push_str("\nAre you sure you want to continue?");
    if !a.force && !confirm(&msg) {
        return Err(cancelled("system"));
    }
    let mut total = 0;
    let mut steps: Vec<(String, u64)> = vec![containers_call(c, &f).await?];
    if a.volumes {
        let mut vf = f.clone();
        vf.0.remove("until");
        // Anonymous volumes only, as the warning says (see `volume prune`).
        if vf.get("all").is_empty() {
            vf.add("all", "false");
        }
        steps.push(volumes_call(c, &vf).await?);
    }
    steps.push(images_call(c, a.all, &f).await?);
    steps.push(build_cache_call(c, a.all, &f).await?);
    for (text, n) in steps {
        total += n;
        if !text.is_empty() {
            out(&format!("{text}\n"));
        }
    }
    out(&format!("Total reclaimed space: {}\n", human_size(total as f64)));
    Ok(())
}

fn pct(part: i64, total: i64) -> String {
    if total <= 0 { String::new() } else { format!(" ({}%)", part * 100 / total) }
}

/// Runs `system df [-v]`: docker's summary table, or with `-v` its per-object tables.
pub async fn df(c: &Client, verbose: bool) -> Res {
    let v = c.system_df().await?;
    let arr = |k: &str| v.get(k).and_then(|x| x.as_array()).cloned().unwrap_or_default();
    let num = |x: &serde_json::Value, k: &str| x.get(k).and_then(|n| n.as_i64()).unwrap_or(0);
    let images = arr("Images");
    let containers = arr("Containers");
    let volumes = arr("Volumes");
    let cache = arr("BuildCache");
    let vol_size = |x: &serde_json::Value| x.get("UsageData").map(|u| num(u, "Size").max(0)).unwrap_or(0);
    let vol_refs = |x: &serde_json::Value| x.get("UsageData").map(|u| num(u, "RefCount")).unwrap_or(0);
    if verbose {
        let mut s = String::from("Images space usage:\n\n");
        let mut lines =
            vec!["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS".to_owned()];
        let now = super::now();
        for i in &images {
            let tags: Vec<String> = i
                .get("RepoTags")
                .and_then(|t| t.as_array())
                .map(|t| t.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let tag = tags.first().cloned().unwrap_or_else(|| "<none>:<none>".to_owned());
            let (repo, tag) =
                tag.rsplit_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap_or((tag, String::new()));
            lines.push(format!(
                "{repo}\t{tag}\t{}\t{}\t{}\t0B\t{}\t{}",
                short(i.get("Id").and_then(|x| x.as_str()).unwrap_or_default()),
                crate::format::ago(num(i, "Created"), now),
                human_size(num(i, "Size") as f64),
                human_size(num(i, "Size") as f64),
                num(i, "Containers").max(0)
            ));
        }
        s.push_str(&align(&lines));
        s.push_str("\nContainers space usage:\n\n");
        let mut lines = vec!["CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES".to_owned()];
        for ct in &containers {
            let vols = ct
                .get("Mounts")
                .and_then(|m| m.as_array())
                .map(|m| m.iter().filter(|x| x.get("Type").and_then(|t| t.as_str()) == Some("volume")).count())
                .unwrap_or(0);
            let cmd = ct.get("Command").and_then(|x| x.as_str()).unwrap_or_default();
            let name = ct
                .get("Names")
                .and_then(|n| n.as_array())
                .and_then(|n| n.first())
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned();
            lines.push(format!(
                "{}\t{}\t\"{}\"\t{vols}\t{}\t{}\t{}\t{name}",
                short(ct.get("Id").and_then(|x| x.as_str()).unwrap_or_default()),
                ct.get("Image").and_then(|x| x.as_str()).unwrap_or_default(),
                crate::format::ellipsis(cmd, 20),
                human_size(num(ct, "SizeRw") as f64),
                crate::format::ago(num(ct, "Created"), now),
                ct.get("Status").and_then(|x| x.as_str()).unwrap_or_default(),
            ));
        }
        s.push_str(&align(&lines));
        s.push_str("\nLocal Volumes space usage:\n\n");
        let mut lines = vec!["VOLUME NAME\tLINKS\tSIZE".to_owned()];
        for vol in &volumes {
            lines.push(format!(
                "{}\t{}\t{}",
                vol.get("Name").and_then(|x| x.as_str()).unwrap_or_default(),
                vol_refs(vol),
                human_size(vol_size(vol) as f64)
            ));
        }
        s.push_str(&align(&lines));
        let cache_size: i64 = cache.iter().map(|e| num(e, "Size")).sum();
        s.push_str(&format!("\nBuild cache usage: {}\n\n", human_size(cache_size as f64)));
        let mut lines = vec!["CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED".to_owned()];
        for e in &cache {
            let s = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
            lines.push(format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                s("ID"),
                s("Type"),
                human_size(num(e, "Size") as f64),
                s("CreatedAt"),
                s("LastUsedAt"),
                num(e, "UsageCount"),
                e.get("Shared").and_then(|x| x.as_bool()).unwrap_or(false)
            ));
        }
        s.push_str(&align(&lines));
        out(&s);
        return Ok(());
    }
    let img_total: i64 = images.iter().map(|i| num(i, "Size")).sum();
    let img_active = images.iter().filter(|i| num(i, "Containers") > 0).count();
    let img_unused: i64 = images.iter().filter(|i| num(i, "Containers") <= 0).map(|i| num(i, "Size")).sum();
    let running = |c: &serde_json::Value| c.get("State").and_then(|s| s.as_str()) == Some("running");
    let ct_total: i64 = containers.iter().map(|c| num(c, "SizeRw")).sum();
    let ct_active = containers.iter().filter(|c| running(c)).count();
    let ct_free: i64 = containers.iter().filter(|c| !running(c)).map(|c| num(c, "SizeRw")).sum();
    let vol_total: i64 = volumes.iter().map(vol_size).sum();
    let vol_active = volumes.iter().filter(|x| vol_refs(x) > 0).count();
    let vol_free: i64 = volumes.iter().filter(|x| vol_refs(x) <= 0).map(vol_size).sum();
    let cache_size: i64 = cache.iter().map(|e| num(e, "Size")).sum();
    let rows = [
        "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE".to_owned(),
        format!(
            "Images\t{}\t{img_active}\t{}\t{}{}",
            images.len(),
            human_size(img_total as f64),
            human_size(img_unused as f64),
            pct(img_unused, img_total)
        ),
        format!(
            "Containers\t{}\t{ct_active}\t{}\t{}{}",
            containers.len(),
            human_size(ct_total as f64),
            human_size(ct_free as f64),
            pct(ct_free, ct_total)
        ),
        format!(
            "Local Volumes\t{}\t{vol_active}\t{}\t{}{}",
            volumes.len(),
            human_size(vol_total as f64),
            human_size(vol_free as f64),
            pct(vol_free, vol_total)
        ),
        format!(
            "Build Cache\t{}\t0\t{}\t{}",
            cache.len(),
            human_size(cache_size as f64),
            human_size(cache_size as f64)
        ),
    ];
    out(&align(&rows));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_at_the_tag() {
        assert_eq!(split_reference("app:v1"), ("app".to_owned(), Some("v1".to_owned())));
        assert_eq!(split_reference("localhost:5000/app"), ("localhost:5000/app".to_owned(), None));
        assert_eq!(split_reference("localhost:5000/app:2"), ("localhost:5000/app".to_owned(), Some("2".to_owned())));
    }
}
