//! `compose build`, `pull` and `push`: the project's images.

use berth_api::Client;
use berth_compose::model::Service;
use berth_compose::planner::images::{self, BuildOptions};
use berth_compose::planner::progress::Progress;
use clap::Args;

use super::{DockerConfigCreds, ProjectOpts};
use crate::CliError;

#[cfg_attr(doc, doc = "`compose build`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct BuildArgs {
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long = "pull")]
    pub pull: bool,
    /// Don't print anything to STDOUT
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Set build-time variables for services
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Also build dependencies (transitively)
    #[arg(long = "with-dependencies")]
    pub with_dependencies: bool,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose pull`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct PullArgs {
    /// Ignore images that can be built
    #[arg(long = "ignore-buildable")]
    pub ignore_buildable: bool,
    /// Pull what it can and ignores images with pull failures
    #[arg(long = "ignore-pull-failures")]
    pub ignore_pull_failures: bool,
    /// Pull without printing progress information
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Also pull services declared as dependencies
    #[arg(long = "include-deps")]
    pub include_deps: bool,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose push`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct PushArgs {
    /// Push what it can and ignores images with push failures
    #[arg(long = "ignore-push-failures")]
    pub ignore_push_failures: bool,
    /// Push without printing progress information
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Also push images of services declared as dependencies
    #[arg(long = "include-deps")]
    pub include_deps: bool,
    /// Services
    pub services: Vec<String>,
}

/// `compose build`: the selected services that have `build:` (their dependencies' too with
/// `--with-dependencies`), all at once.
pub async fn build(c: &Client, p: &ProjectOpts, a: BuildArgs) -> Result<(), CliError> {
    let project = super::load(p)?;
    let printer = if a.quiet { super::Printer::quiet() } else { super::Printer::new(p) };
    let planner = super::planner(c, &project, &printer);
    let names = planner.ordered(&a.services, a.with_dependencies).map_err(super::cerr)?;
    let svcs: Vec<&Service> =
        names.iter().filter_map(|n| project.services.get(n)).filter(|s| s.build.is_some()).collect();
    let mut args = Vec::new();
    for s in &a.build_args {
        match s.split_once('=') {
            Some((k, v)) => args.push((k.to_owned(), v.to_owned())),
            None => {
                if let Ok(v) = std::env::var(s) {
                    args.push((s.clone(), v));
                }
            }
        }
    }
    let o = BuildOptions { no_cache: a.no_cache, pull: a.pull, args };
    images::build_all(c, &DockerConfigCreds, &printer, &project, &svcs, &o).await.map_err(super::cerr)
}

/// The project, its printer (quiet or not) and the selected services in dependency order:
/// what `pull` and `push` start from.
fn selected(
    c: &Client,
    p: &ProjectOpts,
    services: &[String],
    include_deps: bool,
    quiet: bool,
) -> Result<(super::Project, super::Printer, Vec<String>), CliError> {
    let project = super::load(p)?;
    let printer = if quiet { super::Printer::quiet() } else { super::Printer::new(p) };
    let names = super::planner(c, &project, &printer).ordered(services, include_deps).map_err(super::cerr)?;
    Ok((project, printer, names))
}

/// `compose pull`: the images of the selected services (not those only built).
pub async fn pull(c: &Client, p: &ProjectOpts, a: PullArgs) -> Result<(), CliError> {
    let (project, printer, names) = selected(c, p, &a.services, a.include_deps, a.quiet)?;
    let mut failed = None;
    for n in names {
        let Some(svc) = project.services.get(&n) else { continue };
        let Some(image) = &svc.image else { continue };
        // A buildable service's failed pull is only a warning (below); --ignore-buildable
        // does not try it at all.
        if svc.build.is_some() && a.ignore_buildable {
            continue;
        }
        if svc.pull_policy.as_deref() == Some("build") {
            continue;
        }
        if let Err(e) = images::pull(c, &DockerConfigCreds, &printer, &n, image, svc.platform.as_deref()).await {
            if svc.build.is_some() || a.ignore_pull_failures {
                printer.warn(&e.to_string());
                continue;
            }
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), |e| Err(super::cerr(e)))
}

/// `compose push`: the images of the selected services that name one.
pub async fn push(c: &Client, p: &ProjectOpts, a: PushArgs) -> Result<(), CliError> {
    let (project, printer, names) = selected(c, p, &a.services, a.include_deps, a.quiet)?;
    let mut failed = None;
    for n in names {
        let Some(svc) = project.services.get(&n) else { continue };
        let Some(image) = &svc.image else { continue };
        if let Err(e) = images::push(c, &DockerConfigCreds, &printer, image).await {
            if a.ignore_push_failures {
                printer.warn(&e.to_string());
                continue;
            }
            failed.get_or_insert(e);
        }
    }
    failed.map_or(Ok(()), |e| Err(super::cerr(e)))
}
