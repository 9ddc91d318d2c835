//! `berth build`: sends a build context to the daemon's `POST /build` and shows the
//! build's progress. A directory context on the daemon's own machine (a unix socket) is
//! handed over by path instead of uploaded as a tar, which is what makes large contexts
//! start building at once; a daemon reached over TCP gets the tar the docker CLI sends
//! (`.dockerignore` applied). The daemon reads the same files either way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_api::{Client, query};
use berth_context::{ContextTar, IgnoreMatcher};
use clap::Args;

use crate::CliError;
use crate::output::out;

#[cfg_attr(doc, doc = "`build`.")]
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Name of the Dockerfile (default: PATH/Dockerfile)
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long = "target")]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long = "pull")]
    pub pull: bool,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long = "iidfile")]
    pub iidfile: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long = "network")]
    pub network: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// SSH agent socket to expose to the build (format: "default|<id>[=<socket>]")
    #[arg(long = "ssh")]
    pub ssh: Vec<String>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet", "legacy")
    #[arg(long = "progress", default_value = "auto")]
    pub progress: String,
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Allow extra privileged entitlement (e.g., "security.insecure")
    #[arg(long = "allow")]
    pub allow: Vec<String>,
    /// Do not cache specified stages
    #[arg(long = "no-cache-filter")]
    pub no_cache_filter: Vec<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long = "rm", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rm: bool,
    /// Build context: a directory, or "-" to read a tar or a Dockerfile from stdin
    pub path: String,
}

fn kv(list: &[String], what: &str) -> Result<BTreeMap<String, String>, CliError> {
    let mut m = BTreeMap::new();
    for s in list {
        match s.split_once('=') {
            Some((k, v)) => {
                m.insert(k.to_owned(), v.to_owned());
            }
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None if what == "build-arg" => {
                if let Ok(v) = std::env::var(s) {
                    m.insert(s.clone(), v);
                }
            }
            None => {
                m.insert(s.clone(), String::new());
            }
        }
    }
    Ok(m)
}

fn parse_secret(s: &str) -> Result<(String, String), CliError> {
    let mut id = None;
    let mut src = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("src" | "source", v)) => src = Some(v.to_owned()),
            Some(("type", "file")) => {}
            _ => return Err(CliError::Message(format!("invalid secret {s:?}: expected id=ID,src=PATH"))),
        }
    }
    let id = id.ok_or_else(|| CliError::Message(format!("invalid secret {s:?}: id is required")))?;
    let src = src.unwrap_or_else(|| id.clone());
    let abs = std::path::absolute(&src).map_err(|e| CliError::Message(format!("secret {id}: {e}")))?;
    if !abs.is_file() {
        return Err(CliError::Message(format!("secret {id}: {} is not a file", abs.display())));
    }
    Ok((id, abs.display().to_string()))
}

/// `--ssh default` (the agent of `$SSH_AUTH_SOCK`) or `--ssh id=/path/to/agent.sock`.
/// Key files are not loaded into an agent of our own: `ssh-add` them to an agent instead.
fn parse_ssh(s: &str) -> Result<(String, String), CliError> {
    let (id, path) = match s.split_once('=') {
        Some((id, p)) => (id.to_owned(), p.split(',').next().unwrap_or(p).to_owned()),
        None => (
            s.to_owned(),
            std::env::var("SSH_AUTH_SOCK").map_err(|_| {
                CliError::Message(format!(
                    "invalid --ssh {s:?}: SSH_AUTH_SOCK is not set (start ssh-agent, or give id=<socket>)"
                ))
            })?,
        ),
    };
    let abs = std::path::absolute(&path).map_err(|e| CliError::Message(format!("--ssh {id}: {e}")))?;
    let is_socket = std::fs::metadata(&abs).map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
    match is_socket {
        Ok(true) => Ok((id, abs.display().to_string())),
        Ok(false) => Err(CliError::Message(format!(
            "--ssh {id}: {} is not an agent socket (berth forwards agents: ssh-add the key and use --ssh {id})",
            abs.display()
        ))),
        Err(e) => Err(CliError::Message(format!("--ssh {id}: {}: {e}", abs.display()))),
    }
}

/// Where the Dockerfile is, relative to the context when inside it, absolute otherwise.
fn dockerfile_param(context: &Path, file: Option<&str>) -> Result<Option<String>, CliError> {
    let Some(f) = file else { return Ok(None) };
    let abs = std::path::absolute(f).map_err(|e| CliError::Message(format!("{f}: {e}")))?;
    if !abs.is_file() {
        return Err(CliError::Message(format!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
            abs.display()
        )));
    }
    Ok(Some(match abs.strip_prefix(context) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => abs.display().to_string(),
    }))
}

/// Runs `build`.
pub async fn build(c: &Client, a: BuildArgs) -> Result<(), CliError> {
    let mut q = query::Build {
        tags: a.tags.clone(),
        build_args: kv(&a.build_args, "build-arg")?,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        labels: kv(&a.labels, "label")?,
        quiet: a.quiet || a.progress == "quiet",
        network_mode: a.network.clone(),
        platform: a.platform.clone(),
        rm: a.rm,
        no_cache_filter: a.no_cache_filter.iter().flat_map(|f| f.split(',')).map(str::to_owned).collect(),
        progress_records: a.progress != "legacy",
        allow: a.allow.iter().flat_map(|f| f.split(',')).map(str::to_owned).collect(),
        shm_size: a.shm_size.as_deref().map(crate::opts::parse_bytes).transpose()?.map(|b| b.max(0) as u64),
        extra_hosts: a.add_hosts.clone(),
        ..Default::default()
    };
    if !matches!(a.progress.as_str(), "auto" | "plain" | "tty" | "quiet" | "legacy") {
        return Err(CliError::Message(format!(
            "invalid progress mode {:?}: use auto, plain, tty, quiet or legacy",
            a.progress
        )));
    }
    for t in &q.tags {
        berth_base::Reference::parse(t)
            .map_err(|e| CliError::Message(format!("invalid argument \"{t}\" for \"-t, --tag\" flag: {e}")))?;
    }
    for s in &a.ssh {
        let (id, path) = parse_ssh(s)?;
        q.ssh.insert(id, path);
    }
    for s in &a.secrets {
        let (id, path) = parse_secret(s)?;
        q.secrets.insert(id, path);
    }
    let stream = if a.path == "-" {
        if a.file.as_deref() == Some("-") {
            return Err(CliError::Message(
                "invalid argument: can't use stdin for both build context and dockerfile".into(),
            ));
        }
        use tokio::io::AsyncReadExt;
        let mut input = Vec::new();
        tokio::io::stdin().read_to_end(&mut input).await?;
        let tar = if is_archive(&input) { input } else { dockerfile_tar(&input)? };
        c.build_image(&q, None, Some(&super::registry::registry_config()?), berth_api::client::full_body(tar)).await?
    } else if is_remote_context(&a.path) {
        // The daemon fetches it (git checkout or download), as it does for docker-py.
        q.remote = Some(a.path.clone());
        q.dockerfile = a.file.clone();
        c.build_image(&q, None, Some(&super::registry::registry_config()?), berth_api::client::empty_body()).await?
    } else {
        let ctx: PathBuf = std::path::absolute(&a.path).map_err(|e| CliError::Message(format!("{}: {e}", a.path)))?;
        if !ctx.is_dir() {
            return Err(CliError::Message(format!("unable to prepare context: path {:?} not found", a.path)));
        }
        // `-f -`: the Dockerfile comes from stdin; it goes through a private temp file that
        // lives until the build's stream ends (a local daemon reads it there, a remote one
        // gets it inside the context tar).
        let stdin_file = if a.file.as_deref() == Some("-") {
            use std::io::Read;
            let mut text = Vec::new();
            std::io::stdin().read_to_end(&mut text)?;
            let dir = std::env::temp_dir().join(format!("berth-dockerfile-{}", berth_base::new_id()));
            std::fs::create_dir(&dir)?;
            let path = dir.join("Dockerfile");
            std::fs::write(&path, text)?;
            Some(dir)
        } else {
            None
        };
        let file = stdin_file.as_ref().map(|d| d.join("Dockerfile").display().to_string()).or(a.file.clone());
        let r = if c.is_local() {
            q.dockerfile = dockerfile_param(&ctx, file.as_deref())?;
            let creds = super::registry::registry_config()?;
            c.build_image(&q, Some(&ctx.display().to_string()), Some(&creds), berth_api::client::empty_body())
                .await
                .map_err(Into::into)
        } else {
            upload_context(c, &mut q, &ctx, file.as_deref()).await
        };
        if let (Err(_), Some(d)) = (&r, &stdin_file) {
            let _ = std::fs::remove_dir_all(d);
        }
        let stream = r?;
        return finish_build(stream, &q, &a, stdin_file).await;
    };
    finish_build(stream, &q, &a, None).await
}

/// Sends the context directory `ctx` as the tar the docker CLI uploads to a daemon on
/// another machine: `.dockerignore` applied, the Dockerfile and ignore file always sent, a
/// Dockerfile outside the context added under a private name. The tar is written on a
/// blocking thread and streamed as it is produced.
async fn upload_context(
    c: &Client,
    q: &mut query::Build,
    ctx: &Path,
    file: Option<&str>,
) -> Result<berth_api::client::JsonStream, CliError> {
    let dockerfile = match file {
        Some(f) => std::path::absolute(f).map_err(|e| CliError::Message(format!("{f}: {e}")))?,
        None => ctx.join("Dockerfile"),
    };
    if !dockerfile.is_file() {
        return Err(CliError::Message(format!(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
            dockerfile.display()
        )));
    }
    let ignore = IgnoreMatcher::load(ctx, &dockerfile)?;
    let plan = ContextTar::new(ctx, &dockerfile, &ignore)?;
    q.dockerfile = Some(plan.dockerfile_name().to_owned());
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(64 * 1024, berth_api::client::build::UploadWriter(tx.clone()));
        if let Err(e) = plan.write(out) {
            // The daemon sees a broken body; the user sees why.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            return Err(e);
        }
        Ok(())
    });
    let creds = super::registry::registry_config()?;
    let sent = c.build_image(q, None, Some(&creds), berth_api::client::channel_body(rx)).await;
    match writer.await {
        Ok(Err(e)) => Err(e.into()),
        _ => Ok(sent?),
    }
}

/// Whether a build's PATH argument is a remote context (Docker's rules: a git repository
/// or an http(s) URL).
fn is_remote_context(path: &str) -> bool {
    path.starts_with("http://")
        || path.starts_with("https://")
        || path.starts_with("git://")
        || path.starts_with("git@")
        || path.starts_with("ssh://")
        || path.starts_with("github.com/")
}

/// Shows the build's progress, then prints or records the image id.
async fn finish_build(
    mut stream: berth_api::client::JsonStream,
    q: &query::Build,
    a: &BuildArgs,
    cleanup: Option<PathBuf>,
) -> Result<(), CliError> {
    let r = show_build(&mut stream, q, a).await;
    if let Some(d) = cleanup {
        let _ = std::fs::remove_dir_all(d);
    }
    r
}

async fn show_build(
    stream: &mut berth_api::client::JsonStream,
    q: &query::Build,
    a: &BuildArgs,
) -> Result<(), CliError> {
    let mut id = None;
    let live = !q.quiet && crate::progress::wants_live(&a.progress);
    let mut view = crate::progress::BuildView::new(live);
    // Text that arrives while the live view is drawn is shown below its final frame.
    let mut after = String::new();
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(150));
    loop {
        let m = tokio::select! {
            m = stream.next_message() => m,
            _ = ticks.tick() => {
                view.tick();
                continue;
            }
        };
        let Some(m) = m else { break };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                view.finish(true);
                return Err(e.into());
            }
        };
        if let Some(e) = m.error.or(m.error_detail.map(|d| d.message)) {
            view.finish(true);
            out(&after);
            return Err(CliError::Message(format!("ERROR: {e}")));
        }
        if m.id.as_deref() == Some(query::BUILD_PROGRESS_ID) {
            if let Some(p) = m.aux.and_then(|v| serde_json::from_value::<query::BuildProgress>(v).ok()) {
                view.record(p);
            }
            continue;
        }
        if let Some(s) = m.stream {
            // The legacy builder's text (`--progress legacy`) and the closing lines.
            if live { after.push_str(&s) } else { out(&s) }
        }
        if let Some(i) = m.aux.as_ref().and_then(|v| v.get("ID")).and_then(|v| v.as_str()) {
            id = Some(i.to_owned());
        }
    }
    view.finish(false);
    out(&after);
    let id = id.ok_or_else(|| CliError::Message("the build ended without producing an image".into()))?;
    if q.quiet {
        out(&format!("{id}\n"));
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id).map_err(|e| CliError::Message(format!("write {f}: {e}")))?;
    }
    Ok(())
}

fn is_archive(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b])
        || b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (b.len() > 262 && &b[257..262] == b"ustar")
}

/// A context holding only a Dockerfile, for `build - < Dockerfile`.
fn dockerfile_tar(dockerfile: &[u8]) -> Result<Vec<u8>, CliError> {
    let mut h = [0u8; 512];
    let name = b"Dockerfile";
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", dockerfile.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(dockerfile);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_dockerfile_becomes_a_context() {
        let t = dockerfile_tar(b"FROM busybox\n").unwrap();
        assert!(is_archive(&t));
        assert!(!is_archive(b"FROM busybox\n"));
        assert_eq!(t.len() % 512, 0);
    }

    #[test]
    fn build_args_and_secrets() {
        let m = kv(&["A=1".into(), "B=x=y".into()], "build-arg").unwrap();
        assert_eq!(m.get("B").map(String::as_str), Some("x=y"));
        assert!(parse_secret("src=/nonexistent").is_err());
        assert!(parse_secret("id=x,src=/nonexistent/file").is_err());
    }
}
