//! `compose up`, `create` and `down`: converge the project to its file, attach to it, and
//! take it away again.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_api::Client;
use berth_api::query::{InspectContainer, Logs, StopContainer};
use berth_compose::model::{Condition, Project};
use berth_compose::planner::converge::{BuildPolicy, DownOptions, Recreate, UpOptions};
use berth_compose::planner::images::BuildOptions;
use berth_compose::planner::logs::{LogEvent, Source, multiplex};
use berth_compose::planner::progress::Resource;
use berth_compose::planner::state::Existing;
use clap::Args;

use super::ProjectOpts;
use crate::CliError;
use crate::output::{err_line, out};

#[cfg_attr(doc, doc = "`compose up`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct UpArgs {
    /// Detached mode: Run containers in the background
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Build images before starting containers
    #[arg(long = "build")]
    pub build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long = "no-build")]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long = "force-recreate")]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them. Incompatible with --force-recreate.
    #[arg(long = "no-recreate")]
    pub no_recreate: bool,
    /// Don't start linked services
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Don't start the services after creating them
    #[arg(long = "no-start")]
    pub no_start: bool,
    /// Scale SERVICE to NUM instances. Overrides the `scale` setting in the Compose file if present.
    #[arg(long = "scale")]
    pub scale: Vec<String>,
    /// Wait for services to be running|healthy. Implies detached mode.
    #[arg(long = "wait")]
    pub wait: bool,
    /// Maximum duration in seconds to wait for the project to be running|healthy
    #[arg(long = "wait-timeout")]
    pub wait_timeout: Option<u64>,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Stops all containers if any container was stopped. Incompatible with -d
    #[arg(long = "abort-on-container-exit")]
    pub abort_on_container_exit: bool,
    /// Return the exit code of the selected service container. Implies --abort-on-container-exit
    #[arg(long = "exit-code-from")]
    pub exit_code_from: Option<String>,
    /// Use this timeout in seconds for container shutdown when attached or when containers are already running
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<i64>,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long = "pull", default_value = "policy")]
    pub pull: String,
    /// Produce monochrome output
    #[arg(long = "no-color")]
    pub no_color: bool,
    /// Don't print prefix in logs
    #[arg(long = "no-log-prefix")]
    pub no_log_prefix: bool,
    /// Show timestamps
    #[arg(long = "timestamps")]
    pub timestamps: bool,
    /// Recreate dependent containers
    #[arg(short = 'V', long = "renew-anon-volumes")]
    pub renew_anon_volumes: bool,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose create`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct CreateArgs {
    /// Build images before starting containers
    #[arg(long = "build")]
    pub build: bool,
    /// Don't build an image, even if it's policy
    #[arg(long = "no-build")]
    pub no_build: bool,
    /// Recreate containers even if their configuration and image haven't changed
    #[arg(long = "force-recreate")]
    pub force_recreate: bool,
    /// If containers already exist, don't recreate them. Incompatible with --force-recreate.
    #[arg(long = "no-recreate")]
    pub no_recreate: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Scale SERVICE to NUM instances
    #[arg(long = "scale")]
    pub scale: Vec<String>,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long = "pull", default_value = "policy")]
    pub pull: String,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose down`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct DownArgs {
    /// Remove named volumes declared in the "volumes" section of the Compose file and anonymous volumes attached to containers
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")
    #[arg(long = "rmi")]
    pub rmi: Option<String>,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<i64>,
    /// Services
    pub services: Vec<String>,
}

/// `--scale svc=N` values.
fn parse_scale(items: &[String]) -> Result<BTreeMap<String, u32>, CliError> {
    let mut m = BTreeMap::new();
    for s in items {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| CliError::Message(format!("invalid --scale option {s:?}. Should be SERVICE=NUM")))?;
        let n: u32 =
            v.parse().map_err(|_| CliError::Message(format!("invalid --scale option {s:?}. Should be SERVICE=NUM")))?;
        m.insert(k.to_owned(), n);
    }
    Ok(m)
}

fn pull_mode(p: &str) -> Result<String, CliError> {
    match p {
        "policy" | "always" | "missing" | "never" | "build" => Ok(p.to_owned()),
        _ => Err(CliError::Message(format!("invalid --pull option {p:?}"))),
    }
}

/// `compose up`.
pub async fn up(c: &Client, p: &ProjectOpts, a: UpArgs) -> Result<(), CliError> {
    if a.force_recreate && a.no_recreate {
        return Err(CliError::Message("--force-recreate and --no-recreate are incompatible".into()));
    }
    if a.build && a.no_build {
        return Err(CliError::Message("--build and --no-build are incompatible".into()));
    }
    if a.detach && (a.abort_on_container_exit || a.exit_code_from.is_some()) {
        return Err(CliError::Message(
            "--abort-on-container-exit and --exit-code-from are incompatible with --detach".into(),
        ));
    }
    let project = super::load(p)?;
    let printer = super::Printer::new(p);
    let planner = super::planner(c, &project, &printer);
    let opts = UpOptions {
        services: a.services.clone(),
        no_deps: a.no_deps,
        build: if a.build {
            BuildPolicy::Always
        } else if a.no_build {
            BuildPolicy::Never
        } else {
            BuildPolicy::Missing
        },
        build_options: BuildOptions::default(),
        recreate: if a.force_recreate {
            Recreate::Force
        } else if a.no_recreate {
            Recreate::Never
        } else {
            Recreate::Diverged
        },
        scale: parse_scale(&a.scale)?,
        start: !a.no_start,
        remove_orphans: a.remove_orphans,
        pull: pull_mode(&a.pull)?,
        timeout: a.timeout,
        wait: a.wait,
        wait_timeout: a.wait_timeout.map(Duration::from_secs),
    };
    if let Some(s) = &a.exit_code_from {
        planner.selected(std::slice::from_ref(s)).map_err(super::cerr)?;
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() - 1.0)
        .unwrap_or(0.0);
    let containers = planner.up(&opts).await.map_err(super::cerr)?;
    if a.detach || a.wait || a.no_start {
        return Ok(());
    }
    attach(c, &project, &planner, containers, &a, since).await
}

/// An attached `up`: every container's output with its prefix until all have stopped;
/// ctrl-c (or `--abort-on-container-exit`) stops them all.
async fn attach(
    c: &Client,
    project: &Project,
    planner: &berth_compose::planner::converge::Planner<'_>,
    containers: Vec<Existing>,
    a: &UpArgs,
    since: f64,
) -> Result<(), CliError> {
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    // Services others wait to complete (`service_completed_successfully`) are expected to
    // exit: their ending aborts nothing.
    let run_once: Vec<&str> = project
        .services
        .values()
        .flat_map(|s| s.depends_on.iter())
        .filter(|(_, d)| d.condition == Condition::ServiceCompletedSuccessfully)
        .map(|(n, _)| n.as_str())
        .collect();
    let mut sources = Vec::new();
    for ct in &containers {
        let tty = project.services.get(&ct.service).and_then(|s| s.tty).unwrap_or(false);
        sources.push(Source { id: ct.id.clone(), prefix: ct.short_name(&project.name), tty });
    }
    let colors = super::logs::use_color(a.no_color);
    let printer = super::logs::LinePrinter::new(&sources, colors, !a.no_log_prefix);
    out(&format!("Attaching to {}\n", sources.iter().map(|s| s.prefix.as_str()).collect::<Vec<_>>().join(", ")));
    let q = Logs {
        follow: true,
        stdout: true,
        stderr: true,
        since: Some(format!("{since:.9}")),
        timestamps: a.timestamps,
        ..Default::default()
    };
    let mut rx = multiplex(c, sources.clone(), &q);
    let mut open = sources.len();
    let mut exit_code = 0;
    let mut stopping = false;
    while open > 0 {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    LogEvent::Line { prefix, stderr, text } => printer.line(&prefix, stderr, &text),
                    LogEvent::Ended { prefix, .. } => {
                        open -= 1;
                        let Some(ct) = containers.iter().find(|x| x.short_name(&project.name) == prefix) else { continue };
                        let info = c.inspect_container(&ct.id, &InspectContainer::default()).await.ok();
                        let code = info.and_then(|i| i.state).and_then(|s| s.exit_code).unwrap_or(0);
                        printer.plain(&prefix, &format!("{prefix} exited with code {code}"));
                        if a.exit_code_from.as_deref() == Some(ct.service.as_str()) {
                            exit_code = code as i32;
                        }
                        if abort && !stopping && !run_once.contains(&ct.service.as_str()) {
                            stopping = true;
                            if a.exit_code_from.is_none() {
                                exit_code = code as i32;
                            }
                            err_line("Aborting on container exit...");
                            stop_all(c, &containers, a.timeout).await;
                        }
                    }
                }
            }
            _ = tokio::signal::ctrl_c(), if !stopping => {
                stopping = true;
                err_line("Gracefully stopping... (press Ctrl+C again to force)");
                let printer_stop = planner;
                for ct in &containers {
                    printer_stop.progress.working(Resource::Container, &ct.name, "Stopping");
                }
                stop_all(c, &containers, a.timeout).await;
                for ct in &containers {
                    printer_stop.progress.done(Resource::Container, &ct.name, "Stopped");
                }
                exit_code = 130;
            }
        }
    }
    if exit_code != 0 { Err(CliError::Status(exit_code)) } else { Ok(()) }
}

async fn stop_all(c: &Client, containers: &[Existing], timeout: Option<i64>) {
    let futs = containers.iter().map(|ct| async move {
        let _ = c.stop_container(&ct.id, &StopContainer { t: timeout, ..Default::default() }).await;
    });
    futures_util::future::join_all(futs).await;
}

/// `compose create`.
pub async fn create(c: &Client, p: &ProjectOpts, a: CreateArgs) -> Result<(), CliError> {
    let up = UpArgs {
        build: a.build,
        no_build: a.no_build,
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        remove_orphans: a.remove_orphans,
        scale: a.scale,
        pull: a.pull,
        no_start: true,
        detach: true,
        services: a.services,
        ..Default::default()
    };
    self::up(c, p, up).await
}

/// `compose down`.
pub async fn down(c: &Client, p: &ProjectOpts, a: DownArgs) -> Result<(), CliError> {
    if let Some(r) = &a.rmi
        && r != "local"
        && r != "all"
    {
        return Err(CliError::Message(format!("invalid value for --rmi: {r}")));
    }
    let project = super::load_or_name(p)?;
    let printer = super::Printer::new(p);
    let planner = super::planner(c, &project, &printer);
    let o = DownOptions {
        volumes: a.volumes,
        rmi: a.rmi.clone(),
        remove_orphans: a.remove_orphans,
        timeout: a.timeout,
        services: a.services.clone(),
    };
    planner.down(&o).await.map_err(super::cerr)
}
