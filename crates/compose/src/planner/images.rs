//! A project's images: pulled when missing (as `pull_policy` says), built from each
//! service's `build:` (independent services at the same time; the context sent as the
//! docker CLI sends it, `.dockerignore` applied, or by path to a daemon on this machine),
//! and pushed.

use std::path::{Path, PathBuf};

use berth_api::client::distribution::AuthConfig;
use berth_api::{Client, query};
use berth_context::{ContextTar, IgnoreMatcher};

use super::create::image_of;
use super::names;
use super::progress::{Progress, Resource};
use crate::ComposeError;
use crate::model::{Project, Service};

/// Where registry credentials come from (the CLI reads the docker config file).
pub trait Credentials: Send + Sync {
    /// The credentials for `image`'s registry, or none.
    fn auth_for(&self, image: &str) -> AuthConfig;
    /// The `X-Registry-Config` value for builds (all known registries), if any.
    fn registry_config(&self) -> Option<String> {
        None
    }
}

/// No credentials.
#[derive(Debug, Default)]
pub struct Anonymous;

impl Credentials for Anonymous {
    fn auth_for(&self, _image: &str) -> AuthConfig {
        AuthConfig::default()
    }
}

/// How to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--build-arg`s given on the command line (over the file's).
    pub args: Vec<(String, String)>,
}

/// An image's id, if the daemon has it.
pub async fn image_id(client: &Client, image: &str) -> Result<Option<String>, ComposeError> {
    match client.inspect_image(image).await {
        Ok(i) => Ok(i.id),
        Err(e) if e.status() == Some(404) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Pulls `image` through the daemon, reporting `Pulling`/`Pulled` for `service`.
pub async fn pull(
    client: &Client,
    creds: &dyn Credentials,
    progress: &dyn Progress,
    service: &str,
    image: &str,
    platform: Option<&str>,
) -> Result<(), ComposeError> {
    progress.working(Resource::Image, image, "Pulling");
    let (name, tag) = berth_base::reference::pull_parts(image);
    let r = async {
        let mut s = client.pull_image_auth(&name, Some(&tag), platform, &creds.auth_for(image)).await?;
        while let Some(m) = s.next_message().await {
            let m = m?;
            if let Some(e) = m.error.or(m.error_detail.map(|d| d.message)) {
                return Err(ComposeError::Pull { image: image.to_owned(), message: e });
            }
        }
        Ok(())
    }
    .await;
    match r {
        Ok(()) => {
            progress.done(Resource::Image, image, "Pulled");
            Ok(())
        }
        Err(e) => {
            progress.failed(Resource::Image, image, "Error");
            let _ = service;
            Err(match e {
                ComposeError::Api(a) => ComposeError::Pull { image: image.to_owned(), message: a.to_string() },
                e => e,
            })
        }
    }
}

/// The absolute build context of a service (the model resolves it; a relative one is
/// taken against the project directory).
fn context_dir(project: &Project, svc: &Service) -> Option<PathBuf> {
    let b = svc.build.as_ref()?;
    let p = Path::new(&b.context);
    Some(if p.is_absolute() { p.to_owned() } else { project.working_dir.join(p) })
}

/// The build query of a service.
fn build_query(project: &Project, svc: &Service, o: &BuildOptions) -> query::Build {
    let b = svc.build.clone().unwrap_or_default();
    let mut args: std::collections::BTreeMap<String, String> = b
        .args
        .iter()
        .filter_map(|(k, v)| v.clone().or_else(|| project.environment.get(k).cloned()).map(|v| (k.clone(), v)))
        .collect();
    for (k, v) in &o.args {
        args.insert(k.clone(), v.clone());
    }
    let mut labels = b.labels.clone();
    labels.extend(names::project_labels(&project.name));
    labels.insert(names::SERVICE.to_owned(), svc.name.clone());
    let mut tags = vec![image_of(project, svc)];
    tags.extend(b.tags.iter().cloned());
    query::Build {
        tags,
        build_args: args,
        target: b.target.clone(),
        no_cache: o.no_cache || b.no_cache,
        pull: o.pull || b.pull,
        labels,
        network_mode: b.network.clone(),
        platform: b.platforms.first().cloned().or(svc.platform.clone()),
        rm: true,
        progress_records: true,
        cache_from: b.cache_from.clone(),
        extra_hosts: b.extra_hosts.iter().flat_map(|(h, ips)| ips.iter().map(move |ip| format!("{h}:{ip}"))).collect(),
        shm_size: b.shm_size.map(|s| s.0.max(0) as u64),
        ..Default::default()
    }
}

/// Builds one service's image; returns its id. Build output lines go to `progress` as
/// `build_output`.
pub async fn build_service(
    client: &Client,
    creds: &dyn Credentials,
    progress: &dyn Progress,
    project: &Project,
    svc: &Service,
    o: &BuildOptions,
) -> Result<String, ComposeError> {
    let name = svc.name.clone();
    let ctx = context_dir(project, svc).ok_or_else(|| ComposeError::NoImage { service: name.clone() })?;
    if !ctx.is_dir() {
        return Err(ComposeError::Build {
            service: name,
            message: format!("unable to prepare context: path {:?} not found", ctx.display().to_string()),
        });
    }
    let b = svc.build.clone().unwrap_or_default();
    let mut q = build_query(project, svc, o);
    // An inline Dockerfile goes through a private temp file that lives until the build ends.
    let inline_dir = match &b.dockerfile_inline {
        Some(text) => {
            let dir = std::env::temp_dir().join(format!("berth-compose-{}", berth_base::new_id()));
            std::fs::create_dir_all(&dir)
                .map_err(|e| ComposeError::Build { service: name.clone(), message: e.to_string() })?;
            std::fs::write(dir.join("Dockerfile"), text)
                .map_err(|e| ComposeError::Build { service: name.clone(), message: e.to_string() })?;
            Some(dir)
        }
        None => None,
    };
    let dockerfile = match (&inline_dir, &b.dockerfile) {
        (Some(d), _) => d.join("Dockerfile"),
        (None, Some(f)) if Path::new(f).is_absolute() => PathBuf::from(f),
        (None, Some(f)) => ctx.join(f),
        (None, None) => ctx.join("Dockerfile"),
    };
    progress.working(Resource::Service, &name, "Building");
    let r = run_build(client, creds, progress, &name, &ctx, &dockerfile, &mut q).await;
    if let Some(d) = inline_dir {
        let _ = std::fs::remove_dir_all(d);
    }
    match r {
        Ok(id) => {
            progress.done(Resource::Service, &name, "Built");
            Ok(id)
        }
        Err(e) => {
            progress.failed(Resource::Service, &name, "Error");
            Err(e)
        }
    }
}

async fn run_build(
    client: &Client,
    creds: &dyn Credentials,
    progress: &dyn Progress,
    service: &str,
    ctx: &Path,
    dockerfile: &Path,
    q: &mut query::Build,
) -> Result<String, ComposeError> {
    let berr = |message: String| ComposeError::Build { service: service.to_owned(), message };
    if !dockerfile.is_file() {
        return Err(berr(format!(
            "failed to read dockerfile: open {}: no such file or directory",
            dockerfile.display()
        )));
    }
    let reg = creds.registry_config();
    let mut stream = if client.is_local() {
        q.dockerfile = Some(match dockerfile.strip_prefix(ctx) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => dockerfile.display().to_string(),
        });
        client.build_image(q, Some(&ctx.display().to_string()), reg.as_deref(), berth_api::client::empty_body()).await?
    } else {
        let ignore = IgnoreMatcher::load(ctx, dockerfile)
            .map_err(|source| ComposeError::Context { service: service.to_owned(), source })?;
        let plan = ContextTar::new(ctx, dockerfile, &ignore)
            .map_err(|source| ComposeError::Context { service: service.to_owned(), source })?;
        q.dockerfile = Some(plan.dockerfile_name().to_owned());
        // The tar is written on a blocking thread and streamed as it is produced.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        let svc = service.to_owned();
        let writer = tokio::task::spawn_blocking(move || {
            let out = std::io::BufWriter::with_capacity(64 * 1024, berth_api::client::build::UploadWriter(tx.clone()));
            plan.write(out).map_err(|source| {
                let _ = tx.blocking_send(Err(std::io::Error::other(source.to_string())));
                ComposeError::Context { service: svc, source }
            })
        });
        let sent = client.build_image(q, None, reg.as_deref(), berth_api::client::channel_body(rx)).await;
        if let Ok(Err(e)) = writer.await {
            return Err(e);
        }
        sent?
    };
    let mut id = None;
    while let Some(m) = stream.next_message().await {
        let m = m?;
        if let Some(e) = m.error.or(m.error_detail.map(|d| d.message)) {
            return Err(berr(e));
        }
        if m.id.as_deref() == Some(query::BUILD_PROGRESS_ID) {
            if let Some(p) = m.aux.and_then(|v| serde_json::from_value::<query::BuildProgress>(v).ok()) {
                let line = match p.event.as_str() {
                    "start" => p.text.map(|t| format!("#{} {t}", p.index)),
                    "cached" => Some(format!("#{} CACHED", p.index)),
                    "output" => p.data.map(|d| format!("#{} {}", p.index, d.trim_end())),
                    "done" => Some(format!("#{} DONE {:.1}s", p.index, p.seconds.unwrap_or(0.0))),
                    _ => None,
                };
                if let Some(l) = line {
                    progress.build_output(service, &l);
                }
            }
            continue;
        }
        if let Some(s) = &m.stream {
            for l in s.lines().filter(|l| !l.trim().is_empty()) {
                progress.build_output(service, l);
            }
        }
        if let Some(i) = m.aux.as_ref().and_then(|v| v.get("ID")).and_then(|v| v.as_str()) {
            id = Some(i.to_owned());
        }
    }
    id.ok_or_else(|| berr("the build ended without producing an image".into()))
}

/// Builds the given services' images, independent ones at the same time (all of them:
/// builds never depend on each other's containers). Stops at the first failure after every
/// started build has ended, and reports every failure.
pub async fn build_all(
    client: &Client,
    creds: &dyn Credentials,
    progress: &dyn Progress,
    project: &Project,
    services: &[&Service],
    o: &BuildOptions,
) -> Result<(), ComposeError> {
    let futs = services.iter().map(|svc| build_service(client, creds, progress, project, svc, o));
    let results = futures_util::future::join_all(futs).await;
    let mut first = None;
    for r in results {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// Pushes `image` with the user's credentials.
pub async fn push(
    client: &Client,
    creds: &dyn Credentials,
    progress: &dyn Progress,
    image: &str,
) -> Result<(), ComposeError> {
    progress.working(Resource::Image, image, "Pushing");
    let (name, tag) = berth_base::reference::pull_parts(image);
    let mut s = client.push_image(&name, Some(&tag), &creds.auth_for(image)).await?;
    while let Some(m) = s.next_message().await {
        let m = m?;
        if let Some(e) = m.error.or(m.error_detail.map(|d| d.message)) {
            progress.failed(Resource::Image, image, "Error");
            return Err(ComposeError::Push { image: image.to_owned(), message: e });
        }
    }
    progress.done(Resource::Image, image, "Pushed");
    Ok(())
}
