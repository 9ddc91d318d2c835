//! Image commands: images, rmi, import, tag, history.

use std::collections::BTreeMap;

use berth_api::Client;
use berth_api::models::ImageSummary;
use berth_api::query;
use clap::{ArgAction, Args};

use super::{Res, each, go_time, now, parse_filters, short};
use crate::CliError;
use crate::format::{Format, ago, ellipsis, human_size, render, string_map};
use crate::output::out;

#[cfg_attr(doc, doc = "`images`.")]
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

#[cfg_attr(doc, doc = "`rmi`.")]
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

#[cfg_attr(doc, doc = "`import`.")]
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

#[cfg_attr(doc, doc = "`tag`.")]
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

#[cfg_attr(doc, doc = "`history`.")]
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

#[cfg_attr(doc, doc = "`save`.")]
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
    /// Images to save.
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `save`: the archive to `-o FILE` (written beside it, then renamed into place) or to
/// stdout, which must not be a terminal (docker's rule).
pub async fn save(c: &Client, a: SaveArgs) -> Res {
    use tokio::io::AsyncWriteExt;
    if a.output.is_none() && rustix::termios::isatty(std::io::stdout()) {
        return Err(CliError::Message(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".to_owned(),
        ));
    }
    if let Some(o) = &a.output {
        let dir = std::path::Path::new(o).parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir
            && !d.is_dir()
        {
            return Err(CliError::Message(format!(
                "failed to save image: invalid output path: directory \"{}\" does not exist",
                d.display()
            )));
        }
    }
    let mut s = c.save_images(&a.images).await?;
    match &a.output {
        None => {
            let mut out = tokio::io::stdout();
            while let Some(chunk) = s.next_chunk().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
        }
        Some(o) => {
            let tmp = format!("{o}.berth-save-{}", std::process::id());
            let res = async {
                let mut f = tokio::fs::File::create(&tmp).await?;
                while let Some(chunk) = s.next_chunk().await {
                    f.write_all(&chunk?).await?;
                }
                f.sync_all().await?;
                tokio::fs::rename(&tmp, o).await?;
                Ok::<(), CliError>(())
            }
            .await;
            if res.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            res?;
        }
    }
    Ok(())
}

#[cfg_attr(doc, doc = "`load`.")]
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long = "input")]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

/// `load`: streams the archive and prints what the daemon reports (progress only on a
/// terminal, as docker).
pub async fn load(c: &Client, a: LoadArgs) -> Res {
    let body = match &a.input {
        Some(p) => {
            let f = tokio::fs::File::open(p).await.map_err(|e| CliError::Message(format!("open {p}: {e}")))?;
            berth_api::client::reader_body(f)
        }
        None => {
            if rustix::termios::isatty(std::io::stdin()) {
                return Err(CliError::Message("requested load from stdin, but stdin is empty".to_owned()));
            }
            berth_api::client::reader_body(tokio::io::stdin())
        }
    };
    let quiet = a.quiet || !rustix::termios::isatty(std::io::stdout());
    let mut s = c.load_images(quiet, body).await?;
    while let Some(m) = s.next_message().await {
        let m = m?;
        if let Some(e) = m.error.or(m.error_detail.map(|d| d.message)) {
            return Err(CliError::Message(e));
        }
        // `-q` hides progress only: "Loaded image" lines still print, as docker's do.
        if let Some(st) = m.stream {
            out(&st);
        }
        if let (Some(st), Some(id)) = (m.status, m.id) {
            crate::output::err_line(&format!("{id}: {st} {}", m.progress.unwrap_or_default()));
        }
    }
    Ok(())
}
