//! `compose start`, `stop`, `restart`, `kill`, `rm`, `pause`, `unpause` and `cp`: one
//! action on the existing containers of the chosen services.

use berth_api::Client;
use berth_api::query::{KillContainer, RemoveContainer, StopContainer};
use berth_compose::ComposeError;
use berth_compose::model::Project;
use berth_compose::planner::progress::{Progress, Resource};
use berth_compose::planner::state::{self, Existing, Oneoff};
use clap::Args;

use super::ProjectOpts;
use crate::CliError;
use crate::output::err_line;

#[cfg_attr(doc, doc = "Commands that take only a list of services.")]
#[derive(Debug, Clone, Default, Args)]
pub struct ServicesArgs {
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose stop` and `restart`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct StopArgs {
    /// Specify a shutdown timeout in seconds
    #[arg(short = 't', long = "timeout")]
    pub timeout: Option<i64>,
    /// Don't restart dependent services
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose kill`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct KillArgs {
    /// SIGNAL to send to the container
    #[arg(short = 's', long = "signal", default_value = "SIGKILL")]
    pub signal: String,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose rm`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct RmArgs {
    /// Don't ask to confirm removal
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Stop the containers, if required, before removing
    #[arg(short = 's', long = "stop")]
    pub stop: bool,
    /// Remove any anonymous volumes attached to containers
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Services
    pub services: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose cp`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct CpArgs {
    /// Index of the container if service has multiple replicas
    #[arg(long = "index")]
    pub index: Option<u32>,
    /// Include containers created by the run command
    #[arg(long = "all")]
    pub all: bool,
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// SERVICE:SRC_PATH or a local path
    pub source: String,
    /// SERVICE:DEST_PATH or a local path
    pub dest: String,
}

/// The project and the containers of the chosen services (all when none is named),
/// dependencies first.
async fn targets(
    c: &Client,
    p: &ProjectOpts,
    services: &[String],
    oneoff: Oneoff,
    all: bool,
) -> Result<(Project, Vec<Existing>), CliError> {
    let project = super::load_or_name(p)?;
    for s in services {
        if !project.services.is_empty() && !project.services.contains_key(s) {
            return Err(super::cerr(ComposeError::NoSuchService { name: s.clone() }));
        }
    }
    let order: Vec<String> =
        project.dependency_order(&[], true).map(|v| v.into_iter().map(str::to_owned).collect()).unwrap_or_default();
    let rank = |s: &str| order.iter().position(|x| x == s).unwrap_or(usize::MAX);
    let mut list: Vec<Existing> = state::containers(c, &project.name, oneoff, all)
        .await
        .map_err(super::cerr)?
        .into_iter()
        .filter(|x| services.is_empty() || services.contains(&x.service))
        .collect();
    list.sort_by_key(|x| (rank(&x.service), x.number));
    Ok((project, list))
}

/// Runs one action per container, reporting `working`/`done` as docker compose does; keeps
/// going after a failure and fails at the end.
async fn each<F, Fut>(
    printer: &super::Printer,
    list: &[Existing],
    working: &str,
    done: &str,
    f: F,
) -> Result<(), CliError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), berth_api::ClientError>>,
{
    let mut first = None;
    for x in list {
        printer.working(Resource::Container, &x.name, working);
        match f(x.id.clone()).await {
            Ok(()) => printer.done(Resource::Container, &x.name, done),
            Err(e) => {
                printer.failed(Resource::Container, &x.name, "Error");
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), |e| Err(e.into()))
}

/// `compose start`.
pub async fn start(c: &Client, p: &ProjectOpts, a: ServicesArgs) -> Result<(), CliError> {
    let (_, list) = targets(c, p, &a.services, Oneoff::Exclude, true).await?;
    let printer = super::Printer::new(p);
    each(&printer, &list, "Starting", "Started", |id| async move { c.start_container(&id).await }).await
}

/// `compose stop`: dependants first.
pub async fn stop(c: &Client, p: &ProjectOpts, a: StopArgs) -> Result<(), CliError> {
    let (_, mut list) = targets(c, p, &a.services, Oneoff::Include, false).await?;
    list.reverse();
    let printer = super::Printer::new(p);
    let q = StopContainer { t: a.timeout, ..Default::default() };
    each(&printer, &list, "Stopping", "Stopped", |id| {
        let q = q.clone();
        async move { c.stop_container(&id, &q).await }
    })
    .await
}

/// `compose restart`.
pub async fn restart(c: &Client, p: &ProjectOpts, a: StopArgs) -> Result<(), CliError> {
    let (_, list) = targets(c, p, &a.services, Oneoff::Exclude, true).await?;
    let printer = super::Printer::new(p);
    let q = StopContainer { t: a.timeout, ..Default::default() };
    each(&printer, &list, "Restarting", "Started", |id| {
        let q = q.clone();
        async move { c.restart_container(&id, &q).await }
    })
    .await
}

/// `compose kill`.
pub async fn kill(c: &Client, p: &ProjectOpts, a: KillArgs) -> Result<(), CliError> {
    let (_, list) = targets(c, p, &a.services, Oneoff::Exclude, false).await?;
    let printer = super::Printer::new(p);
    let q = KillContainer { signal: Some(a.signal.clone()) };
    each(&printer, &list, "Killing", "Killed", |id| {
        let q = q.clone();
        async move { c.kill_container(&id, &q).await }
    })
    .await
}

/// `compose pause` (`pause` true) and `unpause`.
pub async fn pause(c: &Client, p: &ProjectOpts, a: ServicesArgs, pause: bool) -> Result<(), CliError> {
    let (_, list) = targets(c, p, &a.services, Oneoff::Exclude, false).await?;
    let printer = super::Printer::new(p);
    if pause {
        each(&printer, &list, "Pausing", "Paused", |id| async move { c.pause_container(&id).await }).await
    } else {
        each(&printer, &list, "Unpausing", "Unpaused", |id| async move { c.unpause_container(&id).await }).await
    }
}

/// `compose rm`: stopped containers (running ones too with `-s`). docker compose asks for
/// confirmation on a terminal without `-f`; berth asks the same way.
pub async fn rm(c: &Client, p: &ProjectOpts, a: RmArgs) -> Result<(), CliError> {
    let (_, list) = targets(c, p, &a.services, Oneoff::Include, true).await?;
    let printer = super::Printer::new(p);
    if a.stop {
        let running: Vec<Existing> = list.iter().filter(|x| x.is_running()).cloned().collect();
        each(&printer, &running, "Stopping", "Stopped", |id| async move {
            c.stop_container(&id, &StopContainer::default()).await
        })
        .await?;
    }
    let (list, running): (Vec<Existing>, Vec<Existing>) =
        if a.stop { (list, Vec::new()) } else { list.into_iter().partition(|x| !x.is_running()) };
    let _ = running;
    if list.is_empty() {
        err_line("No stopped containers");
        return Ok(());
    }
    if !a.force && rustix::termios::isatty(std::io::stdin()) {
        let names: Vec<&str> = list.iter().map(|x| x.name.as_str()).collect();
        err_line(&format!("Going to remove {}", names.join(", ")));
        eprint!("? Are you sure you want to remove these containers? (y/N) ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !answer.trim().eq_ignore_ascii_case("y") {
            return Ok(());
        }
    }
    let q = RemoveContainer { force: true, v: a.volumes, ..Default::default() };
    each(&printer, &list, "Removing", "Removed", |id| {
        let q = q.clone();
        async move { c.remove_container(&id, &q).await }
    })
    .await
}

/// `compose cp`: `SERVICE:PATH` on either side becomes the service's container.
pub async fn cp(c: &Client, p: &ProjectOpts, a: CpArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    let list = state::containers(c, &project.name, if a.all { Oneoff::Include } else { Oneoff::Exclude }, true)
        .await
        .map_err(super::cerr)?;
    let resolve = |arg: &str| -> Result<String, CliError> {
        match arg.split_once(':') {
            Some((svc, path)) if !svc.contains('/') && !svc.is_empty() => {
                let x = list
                    .iter()
                    .find(|x| x.service == svc && a.index.is_none_or(|i| i == x.number))
                    .ok_or_else(|| super::cerr(ComposeError::NotRunning { service: svc.to_owned() }))?;
                Ok(format!("{}:{path}", x.id))
            }
            _ => Ok(arg.to_owned()),
        }
    };
    let args = crate::commands::cp::CpArgs {
        follow_link: a.follow_link,
        archive: a.archive,
        quiet: false,
        source: resolve(&a.source)?,
        destination: resolve(&a.dest)?,
    };
    crate::commands::cp::cp(c, args).await
}
