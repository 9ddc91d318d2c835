//! `compose run` (a one-off container of a service) and `compose exec` (a command in a
//! service's running container).

use berth_api::Client;
use berth_api::query::RemoveContainer;
use berth_compose::ComposeError;
use berth_compose::planner::converge::{BuildPolicy, RunOptions};
use berth_compose::planner::state::{self, Oneoff};
use clap::Args;

use super::ProjectOpts;
use crate::CliError;
use crate::output::out;

#[cfg_attr(doc, doc = "`compose run`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Assign a name to the container
    #[arg(long = "name")]
    pub name: Option<String>,
    /// Override the entrypoint of the image
    #[arg(long = "entrypoint")]
    pub entrypoint: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Add or override a label
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Run as specified username or uid
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Run command with all service's ports enabled and mapped to the host
    #[arg(short = 'P', long = "service-ports")]
    pub service_ports: bool,
    /// Use the service's network useAliases in the network(s) the container connects to
    #[arg(long = "use-aliases")]
    pub use_aliases: bool,
    /// Automatically remove the container when it exits
    #[arg(long = "rm")]
    pub rm: bool,
    /// Don't start linked services
    #[arg(long = "no-deps")]
    pub no_deps: bool,
    /// Disable pseudo-TTY allocation (default: auto-detected)
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub interactive: bool,
    /// Build image before starting container
    #[arg(long = "build")]
    pub build: bool,
    /// Remove containers for services not defined in the Compose file
    #[arg(long = "remove-orphans")]
    pub remove_orphans: bool,
    /// Pull image before running ("always"|"missing"|"never")
    #[arg(long = "pull", default_value = "policy")]
    pub pull: String,
    /// Don't print anything to STDOUT
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// The service.
    pub service: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[cfg_attr(doc, doc = "`compose exec`.")]
#[derive(Debug, Clone, Default, Args)]
pub struct ExecArgs {
    /// Detached mode: Run command in the background
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Index of the container if service has multiple replicas
    #[arg(long = "index", default_value_t = 1)]
    pub index: u32,
    /// Disable pseudo-TTY allocation. By default `docker compose exec` allocates a TTY.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub interactive: bool,
    /// Give extended privileges to the process
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Run the command as this user
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Path to workdir directory for this command
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// The service.
    pub service: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// Splits `-e` values: `K=V`, or `K` taken from our environment (dropped when unset).
fn env_pairs(items: &[String]) -> Vec<(String, Option<String>)> {
    items
        .iter()
        .filter_map(|e| match e.split_once('=') {
            Some((k, v)) => Some((k.to_owned(), Some(v.to_owned()))),
            None => std::env::var(e).ok().map(|v| (e.clone(), Some(v))),
        })
        .collect()
}

/// `compose run`: a one-off container of the service, attached unless `-d`; its exit code
/// is ours. With `--rm` it is removed when it ends.
pub async fn run(c: &Client, p: &ProjectOpts, a: RunArgs) -> Result<(), CliError> {
    let project = super::load(p)?;
    let printer = super::Printer::new(p);
    let planner = super::planner(c, &project, &printer);
    let stdin_tty = rustix::termios::isatty(std::io::stdin());
    let tty = !a.no_tty && !a.detach && stdin_tty && rustix::termios::isatty(std::io::stdout());
    let entrypoint = match &a.entrypoint {
        Some(e) if e.is_empty() => Some(vec![String::new()]),
        Some(e) => Some(e.split_whitespace().map(str::to_owned).collect()),
        None => None,
    };
    let mut labels = Vec::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.push((k.to_owned(), v.to_owned()));
    }
    let r = RunOptions {
        command: (!a.command.is_empty()).then(|| a.command.clone()),
        entrypoint,
        env: env_pairs(&a.env),
        labels,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        volumes: a.volumes.clone(),
        publish: a.publish.clone(),
        service_ports: a.service_ports,
        use_aliases: a.use_aliases,
        tty,
        interactive: a.interactive && !a.detach,
        name: a.name.clone(),
        no_deps: a.no_deps,
        build: if a.build { BuildPolicy::Always } else { BuildPolicy::Missing },
        pull: a.pull.clone(),
    };
    let (id, _name) = planner.create_oneoff(&a.service, &r).await.map_err(super::cerr)?;
    if a.detach {
        if let Err(e) = c.start_container(&id).await {
            if a.rm {
                let _ = c.remove_container(&id, &RemoveContainer { force: true, v: true, ..Default::default() }).await;
            }
            return Err(e.into());
        }
        out(&format!("{id}\n"));
        return Ok(());
    }
    let code = crate::run::start_attached(c, &id, r.interactive, None).await;
    if a.rm {
        let _ = c.remove_container(&id, &RemoveContainer { force: true, v: true, ..Default::default() }).await;
    }
    match code? {
        0 => Ok(()),
        n => Err(CliError::Status(n)),
    }
}

/// `compose exec`: the command in the service's container number `--index`.
pub async fn exec(c: &Client, p: &ProjectOpts, a: ExecArgs) -> Result<(), CliError> {
    let project = super::load_or_name(p)?;
    if !project.services.is_empty() && !project.services.contains_key(&a.service) {
        return Err(super::cerr(ComposeError::NoSuchService { name: a.service.clone() }));
    }
    let all = state::containers(c, &project.name, Oneoff::Exclude, false).await.map_err(super::cerr)?;
    let ct = all
        .iter()
        .find(|x| x.service == a.service && x.number == a.index)
        .ok_or_else(|| super::cerr(ComposeError::NotRunning { service: a.service.clone() }))?;
    let tty = !a.no_tty && rustix::termios::isatty(std::io::stdin()) && rustix::termios::isatty(std::io::stdout());
    let args = crate::commands::exec::ExecArgs {
        help: None,
        detach: a.detach,
        detach_keys: None,
        env: a.env.clone(),
        env_file: Vec::new(),
        interactive: a.interactive && !a.detach,
        privileged: a.privileged,
        tty,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        container: ct.id.clone(),
        command: a.command.clone(),
    };
    crate::commands::exec::exec(c, args).await
}
