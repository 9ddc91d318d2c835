//! `berth compose`: docker compose v2's commands over berth_compose's model and planner.
//! This file holds the flags every command shares (which project: -f, -p, --env-file,
//! --profile, --project-directory), the subcommand list and the dispatch; one file per
//! group of commands holds their flags and their printing.

mod build;
mod lifecycle;
mod logs;
mod ps;
mod run;
mod up;

use berth_api::Client;
use berth_api::client::distribution::AuthConfig;
use berth_compose::ComposeError;
use berth_compose::model::{LoadOptions, Project};
use berth_compose::planner::converge::Planner;
use berth_compose::planner::images::Credentials;
use berth_compose::planner::progress::{Event, Phase, Progress};
use clap::{Args, Subcommand};

use crate::CliError;
use crate::output::err_line;

/// A planner over `project` printing through `printer`.
pub(crate) fn planner<'a>(c: &'a Client, project: &'a Project, printer: &'a Printer) -> Planner<'a> {
    Planner { client: c, project, progress: printer, creds: &DockerConfigCreds }
}

#[cfg_attr(doc, doc = "`compose`'s own flags and its subcommand.")]
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Which project.
    #[command(flatten)]
    pub project: ProjectOpts,
    /// The subcommand.
    #[command(subcommand)]
    pub cmd: ComposeCmd,
}

#[cfg_attr(doc, doc = "The flags that choose and load the project.")]
#[derive(Debug, Clone, Default, Args)]
pub struct ProjectOpts {
    /// Compose configuration files
    #[arg(short = 'f', long = "file")]
    pub files: Vec<String>,
    /// Project name
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Specify an alternate working directory (default: the path of the, first specified, Compose file)
    #[arg(long = "project-directory")]
    pub project_directory: Option<String>,
    /// Specify an alternate environment file
    #[arg(long = "env-file")]
    pub env_files: Vec<String>,
    /// Specify a profile to enable
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    /// Set type of progress output (auto, tty, plain, json, quiet)
    #[arg(long = "progress")]
    pub progress: Option<String>,
    /// Control when to print ANSI control characters ("never"|"always"|"auto")
    #[arg(long = "ansi", default_value = "auto")]
    pub ansi: String,
    /// Control max parallelism, -1 for unlimited
    #[arg(long = "parallel", default_value_t = -1, allow_negative_numbers = true)]
    pub parallel: i64,
}

#[cfg_attr(doc, doc = "docker compose's subcommands.")]
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ComposeCmd {
    /// Create and start containers
    Up(up::UpArgs),
    /// Stop and remove containers, networks
    Down(up::DownArgs),
    /// Creates containers for a service
    Create(up::CreateArgs),
    /// Build or rebuild services
    Build(build::BuildArgs),
    /// Pull service images
    Pull(build::PullArgs),
    /// Push service images
    Push(build::PushArgs),
    /// Run a one-off command on a service
    Run(run::RunArgs),
    /// Execute a command in a running container
    Exec(run::ExecArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// List running compose projects
    Ls(ps::LsArgs),
    /// List images used by the created containers
    Images(ps::ImagesArgs),
    /// Display the running processes
    Top(ps::ServicesArgs),
    /// Print the public port for a port binding
    Port(ps::PortArgs),
    /// Parse, resolve and render compose file in canonical format
    Config(ps::ConfigArgs),
    /// Show the Docker Compose version information
    Version(ps::VersionArgs),
    /// View output from containers
    Logs(logs::LogsArgs),
    /// Receive real time events from containers
    Events(logs::EventsArgs),
    /// Start services
    Start(lifecycle::ServicesArgs),
    /// Stop services
    Stop(lifecycle::StopArgs),
    /// Restart service containers
    Restart(lifecycle::StopArgs),
    /// Force stop service containers
    Kill(lifecycle::KillArgs),
    /// Removes stopped service containers
    Rm(lifecycle::RmArgs),
    /// Pause services
    Pause(lifecycle::ServicesArgs),
    /// Unpause services
    Unpause(lifecycle::ServicesArgs),
    /// Copy files/folders between a service container and the local filesystem
    Cp(lifecycle::CpArgs),
}

/// Runs `berth compose …` and returns the exit code.
pub async fn compose(c: &Client, a: ComposeArgs) -> i32 {
    let p = a.project;
    let res = match a.cmd {
        ComposeCmd::Up(x) => up::up(c, &p, x).await,
        ComposeCmd::Down(x) => up::down(c, &p, x).await,
        ComposeCmd::Create(x) => up::create(c, &p, x).await,
        ComposeCmd::Build(x) => build::build(c, &p, x).await,
        ComposeCmd::Pull(x) => build::pull(c, &p, x).await,
        ComposeCmd::Push(x) => build::push(c, &p, x).await,
        ComposeCmd::Run(x) => run::run(c, &p, x).await,
        ComposeCmd::Exec(x) => run::exec(c, &p, x).await,
        ComposeCmd::Ps(x) => ps::ps(c, &p, x).await,
        ComposeCmd::Ls(x) => ps::ls(c, x).await,
        ComposeCmd::Images(x) => ps::images(c, &p, x).await,
        ComposeCmd::Top(x) => ps::top(c, &p, x).await,
        ComposeCmd::Port(x) => ps::port(c, &p, x).await,
        ComposeCmd::Config(x) => ps::config(&p, x).await,
        ComposeCmd::Version(x) => ps::version(x),
        ComposeCmd::Logs(x) => logs::logs(c, &p, x).await,
        ComposeCmd::Events(x) => logs::events(c, &p, x).await,
        ComposeCmd::Start(x) => lifecycle::start(c, &p, x).await,
        ComposeCmd::Stop(x) => lifecycle::stop(c, &p, x).await,
        ComposeCmd::Restart(x) => lifecycle::restart(c, &p, x).await,
        ComposeCmd::Kill(x) => lifecycle::kill(c, &p, x).await,
        ComposeCmd::Rm(x) => lifecycle::rm(c, &p, x).await,
        ComposeCmd::Pause(x) => lifecycle::pause(c, &p, x, true).await,
        ComposeCmd::Unpause(x) => lifecycle::pause(c, &p, x, false).await,
        ComposeCmd::Cp(x) => lifecycle::cp(c, &p, x).await,
    };
    match res {
        Ok(()) => 0,
        Err(CliError::Status(code)) => code,
        Err(e) => {
            crate::output::print_error(&e);
            1
        }
    }
}

/// The process environment as the model reads it.
fn process_env() -> std::collections::BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Loads the project the flags name.
pub(crate) fn load(p: &ProjectOpts) -> Result<Project, CliError> {
    let cwd = std::env::current_dir()?;
    let project_directory = match &p.project_directory {
        Some(d) => Some(std::path::absolute(d)?),
        None => None,
    };
    let opts = LoadOptions {
        working_dir: cwd,
        project_directory,
        files: p.files.iter().map(std::path::PathBuf::from).collect(),
        project_name: p.project_name.clone(),
        env_files: p.env_files.iter().map(std::path::PathBuf::from).collect(),
        profiles: p.profiles.clone(),
        environment: process_env(),
        resolve_paths: true,
        stdin: None,
    };
    let mut opts = opts;
    if p.files.iter().any(|f| f == "-") {
        use std::io::Read;
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        opts.stdin = Some(text);
    }
    berth_compose::model::load(&opts).map_err(cerr)
}

/// Loads the project, or, when no compose file is found but a project name is given (`-p`
/// or `COMPOSE_PROJECT_NAME`), an empty project of that name: `down`, `ps`, `logs`, `stop`
/// and the like then act on what the daemon has under that name, as docker compose does.
pub(crate) fn load_or_name(p: &ProjectOpts) -> Result<Project, CliError> {
    match load(p) {
        Ok(pr) => Ok(pr),
        Err(e) => {
            let name = p.project_name.clone().or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok());
            match name.filter(|n| !n.is_empty()) {
                Some(n) if p.files.is_empty() => Ok(Project { name: n, ..Default::default() }),
                _ => Err(e),
            }
        }
    }
}

/// Registry credentials from the docker config file, as the CLI's pull and push read them.
pub(crate) struct DockerConfigCreds;

impl Credentials for DockerConfigCreds {
    fn auth_for(&self, image: &str) -> AuthConfig {
        crate::commands::registry::load_auth(&crate::commands::registry::registry_key(image)).unwrap_or_default()
    }

    fn registry_config(&self) -> Option<String> {
        crate::commands::registry::registry_config().ok()
    }
}

/// Prints the planner's progress as docker compose does: on a terminal a `✔` line per
/// finished step with its time; otherwise one plain line per event.
pub(crate) struct Printer {
    tty: bool,
    quiet: bool,
    started: std::sync::Mutex<std::collections::BTreeMap<String, std::time::Instant>>,
}

impl Printer {
    /// A printer for the `--progress` mode asked for.
    pub(crate) fn new(p: &ProjectOpts) -> Printer {
        let mode = p.progress.clone().or_else(|| std::env::var("BUILDKIT_PROGRESS").ok()).unwrap_or_default();
        let tty = match mode.as_str() {
            "tty" => true,
            "plain" | "json" | "quiet" => false,
            _ => rustix::termios::isatty(std::io::stderr()),
        };
        Printer { tty, quiet: mode == "quiet", started: Default::default() }
    }

    /// A printer that prints nothing (`-q`).
    pub(crate) fn quiet() -> Printer {
        Printer { tty: false, quiet: true, started: Default::default() }
    }
}

impl Progress for Printer {
    fn event(&self, e: Event) {
        if self.quiet {
            return;
        }
        let key = format!("{} {}", e.resource.word(), e.name);
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if !self.tty {
            err_line(&format!(" {key}  {}", e.status));
            return;
        }
        match e.phase {
            Phase::Working => {
                started.entry(key).or_insert_with(std::time::Instant::now);
            }
            Phase::Done | Phase::Failed => {
                let secs = started.remove(&key).map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
                let mark = if e.phase == Phase::Done { "\x1b[32m✔\x1b[0m" } else { "\x1b[31m✘\x1b[0m" };
                err_line(&format!(" {mark} {key}  {:<10} {secs:.1}s", e.status));
            }
        }
    }

    fn warn(&self, msg: &str) {
        err_line(&logrus_warning(msg, rustix::termios::isatty(std::io::stderr()), chrono::Utc::now()));
    }

    fn build_output(&self, service: &str, line: &str) {
        if !self.quiet {
            err_line(&format!("[{service}] {line}"));
        }
    }
}

/// A warning as docker compose's logger (logrus) writes it: `WARN[0000] msg` to a terminal,
/// `time="…" level=warning msg="…"` (logrus' text format, message quoted) otherwise.
pub(crate) fn logrus_warning(msg: &str, tty: bool, now: chrono::DateTime<chrono::Utc>) -> String {
    if tty {
        return format!("WARN[0000] {msg}");
    }
    let quoted: String =
        msg.chars().flat_map(|c| if matches!(c, '"' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
    format!("time=\"{}\" level=warning msg=\"{quoted}\"", now.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// A compose failure as the CLI reports it: daemon errors keep their "Error response from
/// daemon: " form.
pub(crate) fn cerr(e: ComposeError) -> CliError {
    match e {
        ComposeError::Api(c) => CliError::Client(c),
        e => CliError::Message(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Cli, Cmd};
    use clap::{CommandFactory, Parser};

    fn parse(args: &[&str]) -> super::ComposeArgs {
        let mut v = vec!["berth", "compose"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().cmd {
            Some(Cmd::Compose(c)) => c,
            _ => panic!("not compose"),
        }
    }

    #[test]
    fn warnings_in_logrus_formats() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(super::logrus_warning("a \"b\"", true, t), "WARN[0000] a \"b\"");
        assert_eq!(
            super::logrus_warning("Found orphan containers ([p-b-1]) for this project.", false, t),
            "time=\"2023-11-14T22:13:20Z\" level=warning msg=\"Found orphan containers ([p-b-1]) for this project.\""
        );
        assert_eq!(
            super::logrus_warning("a \"b\"", false, t),
            "time=\"2023-11-14T22:13:20Z\" level=warning msg=\"a \\\"b\\\"\""
        );
    }

    #[test]
    fn flags_parse_as_docker_compose_takes_them() {
        Cli::command().debug_assert();
        let c = parse(&[
            "-f",
            "a.yml",
            "-f",
            "b.yml",
            "-p",
            "demo",
            "--profile",
            "x",
            "up",
            "-d",
            "--scale",
            "web=2",
            "web",
        ]);
        assert_eq!(c.project.files, ["a.yml", "b.yml"]);
        assert_eq!(c.project.project_name.as_deref(), Some("demo"));
        let super::ComposeCmd::Up(u) = c.cmd else { panic!("not up") };
        assert!(u.detach);
        assert_eq!((u.scale.clone(), u.services.clone()), (vec!["web=2".to_owned()], vec!["web".to_owned()]));
        let c = parse(&["run", "--rm", "-e", "A=1", "-p", "8080:80", "-i", "job", "sh", "-c", "echo -n hi"]);
        let super::ComposeCmd::Run(r) = c.cmd else { panic!("not run") };
        assert!(r.rm && r.interactive);
        assert_eq!(r.publish, ["8080:80"]);
        assert_eq!(r.service, "job");
        assert_eq!(r.command, ["sh", "-c", "echo -n hi"]);
        let c = parse(&["exec", "-T", "web", "ls", "-la"]);
        let super::ComposeCmd::Exec(e) = c.cmd else { panic!("not exec") };
        assert!(e.no_tty);
        assert_eq!(e.command, ["ls", "-la"]);
        let c = parse(&["logs", "-f", "--tail", "5", "web"]);
        let super::ComposeCmd::Logs(l) = c.cmd else { panic!("not logs") };
        assert!(l.follow);
        assert_eq!(l.tail, "5");
        let c = parse(&["down", "-v", "--rmi", "local"]);
        let super::ComposeCmd::Down(d) = c.cmd else { panic!("not down") };
        assert!(d.volumes);
        assert_eq!(d.rmi.as_deref(), Some("local"));
    }
}
