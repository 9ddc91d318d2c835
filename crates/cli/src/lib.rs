//! berth's docker-compatible command line: parses docker's flags with clap and talks to the
//! daemon only through the Engine API (`berth_api::Client`), printing docker's output. This
//! file parses and dispatches; the commands live in `commands/`, one file per object.

pub mod args;
pub mod commands;
pub mod connect;
pub mod error;
pub mod format;
pub mod opts;
pub mod output;
pub mod progress;

use berth_api::Client;
use clap::{Parser, Subcommand};

use args::report_clap_error;
pub use args::{expand_management, separate_command};
pub use commands::{build, run, system};
pub use connect::{DEFAULT_HOST, resolve_host};
pub use error::CliError;
use output::{err_line, out, print_error};

/// berth's top-level flags and subcommands.
#[derive(Debug, Parser)]
#[command(name = "berth", disable_version_flag = true, about = "A self-sufficient runtime for containers")]
pub struct Cli {
    /// Where the daemon is and how to reach it (-H, --tls...).
    #[command(flatten)]
    pub conn: connect::ConnectArgs,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Print version information and quit
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Set the logging level ("debug", "info", "warn", "error", "fatal")
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// The command.
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

/// The subcommands. Each one's flags are built only when it is the one asked for (`defer`,
/// here and on the nested enums): building all of them cost every command, the shim's and
/// daemon's start aside, more than the rest of its start-up. A deferred subcommand's `Args`
/// struct is applied after the variant's doc comment, so its own doc comment would replace
/// the about line docker prints: those structs carry theirs as `#[cfg_attr(doc, doc = ...)]`,
/// which rustdoc reads and clap never sees (`tests::deferred_help_keeps_the_variant_about`).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Cmd {
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(run::RunArgs),
    /// Start one or more stopped containers
    Start(commands::container::StartArgs),
    /// Stop one or more running containers
    Stop(commands::container::StopArgs),
    /// Kill one or more running containers
    Kill(commands::container::KillArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(commands::container::NamesArgs),
    /// Fetch the logs of a container
    Logs(commands::container::LogsArgs),
    /// List port mappings or a specific mapping for the container
    Port(commands::network::PortArgs),
    /// Remove one or more containers
    Rm(commands::container::RmArgs),
    /// Execute a command in a running container
    Exec(commands::exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(commands::exec::AttachArgs),
    /// List containers
    Ps(commands::container::PsArgs),
    /// List images
    Images(commands::image::ImagesArgs),
    /// Remove one or more images
    Rmi(commands::image::RmiArgs),
    /// Return low-level information on Docker objects
    Inspect(commands::system::InspectArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(commands::image::ImportArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(commands::image::TagArgs),
    /// Show the history of an image
    History(commands::image::HistoryArgs),
    /// Show the Docker version information
    Version(commands::system::FormatArgs),
    /// Display system-wide information
    Info(commands::system::FormatArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(commands::cp::CpArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(commands::image::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(commands::image::LoadArgs),
    /// Export a container's filesystem as a tar archive
    Export(commands::container::ExportArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(commands::container::NamesArgs),
    /// Restart one or more containers
    Restart(commands::container::StopArgs),
    /// Pause all processes within one or more containers
    Pause(commands::container::NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(commands::container::NamesArgs),
    /// Rename a container
    Rename(commands::container::RenameArgs),
    /// Display the running processes of a container
    Top(commands::container::TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(commands::stats::StatsArgs),
    /// Update configuration of one or more containers
    Update(commands::container::UpdateArgs),
    /// Get real time events from the server
    Events(commands::events::EventsArgs),
    /// Download an image from a registry
    Pull(commands::registry::PullArgs),
    /// Upload an image to a registry
    Push(commands::registry::PushArgs),
    /// Log in to a registry
    Login(commands::registry::LoginArgs),
    /// Log out from a registry
    Logout(commands::registry::LogoutArgs),
    /// Manage Docker image manifests and manifest lists
    #[command(subcommand)]
    Manifest(commands::registry::ManifestCmd),
    /// Manage berth (disk usage)
    #[command(subcommand)]
    System(system::SystemCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::network::NetworkCmd),
    /// Manage builds (the build cache)
    #[command(subcommand)]
    Builder(system::BuilderCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(commands::volume::VolumeCmd),
    /// Create a new image from a container's changes
    Commit(commands::prune::CommitArgs),
    /// Manage containers (prune, commit)
    #[command(subcommand)]
    Container(commands::prune::ContainerCmd),
    /// Manage images (prune, explore)
    #[command(subcommand)]
    Image(commands::prune::ImageCmd),
    /// Define and run multi-container applications with Docker
    Compose(commands::compose::ComposeArgs),
}

/// The daemon client that the global flags before a subcommand served outside this crate
/// (`berth dashboard`) name, with `BERTH_HOST`/`DOCKER_HOST` and the TLS settings applied as
/// for any command.
pub fn client_for_globals(globals: &[String]) -> Result<Client, error::CliError> {
    let argv = std::iter::once("berth".to_owned()).chain(globals.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| error::CliError::Opt(e.to_string()))?;
    Ok(connect::client(&cli.conn)?)
}

/// Runs the CLI with `args` (without the program name) and returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let typed = args;
    let args = expand_management(&typed);
    let mut argv = vec!["berth".to_owned()];
    argv.extend(separate_command(&args));
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        // Errors name the command as the user typed it (`image rm`, not `rmi`).
        Err(e) => return report_clap_error(e, &typed),
    };
    if cli.version {
        out(&format!("berth version {}, build unknown\n", env!("CARGO_PKG_VERSION")));
        return 0;
    }
    let Some(cmd) = cli.cmd else {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return 0;
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            err_line(&format!("berth: failed to start the runtime: {e}"));
            return 1;
        }
    };
    let code = rt.block_on(dispatch(&cli.conn, cmd));
    // Stdin readers live on blocking threads that cannot be interrupted: do not wait for them.
    rt.shutdown_background();
    code
}

async fn dispatch(conn: &connect::ConnectArgs, cmd: Cmd) -> i32 {
    let client: Client = match connect::client(conn) {
        Ok(c) => c,
        Err(e) => {
            err_line(&e.to_string());
            return 1;
        }
    };
    connect::autostart(&client).await;
    let res = match cmd {
        Cmd::Run(a) => return run::run(&client, a, false).await,
        Cmd::Compose(a) => return commands::compose::compose(&client, a).await,
        Cmd::Create(a) => return run::run(&client, a, true).await,
        Cmd::Build(a) => build::build(&client, a).await,
        Cmd::Start(a) => commands::container::start(&client, a).await,
        Cmd::Stop(a) => commands::container::stop(&client, a).await,
        Cmd::Kill(a) => commands::container::kill(&client, a).await,
        Cmd::Wait(a) => commands::container::wait(&client, a).await,
        Cmd::Logs(a) => commands::container::logs(&client, a).await,
        Cmd::Port(a) => commands::network::port(&client, a).await,
        Cmd::Rm(a) => commands::container::rm(&client, a).await,
        Cmd::Exec(a) => commands::exec::exec(&client, a).await,
        Cmd::Attach(a) => commands::exec::attach(&client, a).await,
        Cmd::Ps(a) => commands::container::ps(&client, a).await,
        Cmd::Images(a) => commands::image::images(&client, a).await,
        Cmd::Rmi(a) => commands::image::rmi(&client, a).await,
        Cmd::Inspect(a) => commands::system::inspect(&client, a).await,
        Cmd::Import(a) => commands::image::import(&client, a).await,
        Cmd::Tag(a) => commands::image::tag(&client, a).await,
        Cmd::History(a) => commands::image::history(&client, a).await,
        Cmd::Version(a) => commands::system::version(&client, a).await,
        Cmd::Info(a) => commands::system::info(&client, a).await,
        Cmd::Cp(a) => commands::cp::cp(&client, a).await,
        Cmd::Save(a) => commands::image::save(&client, a).await,
        Cmd::Load(a) => commands::image::load(&client, a).await,
        Cmd::Export(a) => commands::container::export(&client, a).await,
        Cmd::Diff(a) => commands::container::diff(&client, a).await,
        Cmd::Restart(a) => commands::container::restart(&client, a).await,
        Cmd::Pause(a) => commands::container::pause(&client, a).await,
        Cmd::Unpause(a) => commands::container::unpause(&client, a).await,
        Cmd::Rename(a) => commands::container::rename(&client, a).await,
        Cmd::Top(a) => commands::container::top(&client, a).await,
        Cmd::Stats(a) => commands::stats::stats(&client, a).await,
        Cmd::Update(a) => commands::container::update(&client, a).await,
        Cmd::Events(a) => commands::events::events(&client, a).await,
        Cmd::Pull(a) => commands::registry::pull(&client, a).await,
        Cmd::Push(a) => commands::registry::push(&client, a).await,
        Cmd::Login(a) => commands::registry::login(&client, a).await,
        Cmd::Logout(a) => commands::registry::logout(a).await,
        Cmd::Manifest(m) => commands::registry::manifest(&client, m).await,
        Cmd::System(system::SystemCmd::Df(a)) => system::df(&client, a).await,
        Cmd::System(system::SystemCmd::Check) => system::check(&client).await,
        Cmd::Network(n) => commands::network::network(&client, n).await,
        Cmd::Builder(system::BuilderCmd::Prune(a)) => system::prune(&client, a).await,
        Cmd::Volume(v) => commands::volume::run(&client, v).await,
        Cmd::System(system::SystemCmd::Prune(a)) => commands::prune::system_prune(&client, a).await,
        Cmd::Commit(a) => commands::prune::commit(&client, a).await,
        Cmd::Container(commands::prune::ContainerCmd::Commit(a)) => commands::prune::commit(&client, a).await,
        Cmd::Container(commands::prune::ContainerCmd::Prune(a)) => commands::prune::container_prune(&client, a).await,
        Cmd::Image(commands::prune::ImageCmd::Prune(a)) => commands::prune::image_prune(&client, a).await,
        Cmd::Image(commands::prune::ImageCmd::Explore(a)) => commands::explore::explore(&client, a).await,
    };
    match res {
        Ok(()) => 0,
        Err(CliError::Status(c)) => c,
        Err(e) => {
            print_error(&e);
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (nested) subcommand's about line, before its deferred flags are built and after.
    fn abouts(c: &clap::Command, path: &str, out: &mut Vec<(String, Option<String>)>) {
        for s in c.get_subcommands() {
            let p = format!("{path} {}", s.get_name());
            out.push((p.clone(), s.get_about().map(ToString::to_string)));
            out.push((p.clone() + " (long)", s.get_long_about().map(ToString::to_string)));
            abouts(s, &p, out);
        }
    }

    #[test]
    fn deferred_help_keeps_the_variant_about() {
        use clap::CommandFactory;
        let mut lazy = Vec::new();
        abouts(&Cli::command(), "berth", &mut lazy);
        let mut top = Cli::command();
        top.build();
        let mut built = Vec::new();
        abouts(&top, "berth", &mut built);
        // Nested commands appear only once their parent is built: compare the common ones.
        let built: std::collections::HashMap<_, _> = built.into_iter().collect();
        let mut checked = 0;
        for (path, about) in lazy {
            if let Some(b) = built.get(&path) {
                assert_eq!(b, &about, "{path}: an Args struct's doc comment replaced the about");
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} subcommands compared");
        assert_eq!(
            built.get("berth run").cloned().flatten().as_deref(),
            Some("Create and run a new container from an image")
        );
        assert_eq!(built.get("berth network ls").cloned().flatten().as_deref(), Some("List networks"));
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut v = vec!["berth".to_owned()];
        v.extend(separate_command(&args));
        Cli::try_parse_from(v)
    }

    #[test]
    fn trailing_command_args() {
        let c = parse(&["run", "--rm", "-e", "A=1", "img", "sh", "-c", "exit 3"]).unwrap();
        let Some(Cmd::Run(r)) = c.cmd else { panic!("not run") };
        assert!(r.rm);
        assert_eq!(r.image, "img");
        assert_eq!(r.command, ["sh", "-c", "exit 3"]);
        let c = parse(&["run", "img", "--rm", "-it"]).unwrap();
        let Some(Cmd::Run(r)) = c.cmd else { panic!("not run") };
        assert!(!r.rm);
        assert_eq!(r.command, ["--rm", "-it"]);
        let c = parse(&["run", "-e", "X=1", "--name=a", "-it", "-u", "0", "img", "--", "x"]).unwrap();
        let Some(Cmd::Run(r)) = c.cmd else { panic!("not run") };
        assert_eq!((r.image.as_str(), r.command.clone()), ("img", vec!["--".to_owned(), "x".to_owned()]));
        let c = parse(&["run", "--init", "img", "ps"]).unwrap();
        let Some(Cmd::Run(r)) = c.cmd else { panic!("not run") };
        assert_eq!((r.init, r.image.as_str(), r.command.clone()), (Some(true), "img", vec!["ps".to_owned()]));
        let c = parse(&["run", "--init=false", "img"]).unwrap();
        let Some(Cmd::Run(r)) = c.cmd else { panic!("not run") };
        assert_eq!(r.init, Some(false));
        let c = parse(&["run", "-ite", "A=1", "img", "echo", "-n", "hi"]).unwrap();
        let Some(Cmd::Run(r)) = c.cmd else { panic!("not run") };
        assert_eq!(
            (r.env.clone(), r.command.clone()),
            (vec!["A=1".to_owned()], vec!["echo".to_owned(), "-n".to_owned(), "hi".to_owned()])
        );
        let c = parse(&["-H", "unix:///x.sock", "create", "-h", "box", "-it", "--entrypoint", "", "img"]).unwrap();
        assert_eq!(c.conn.host.as_deref(), Some("unix:///x.sock"));
        let Some(Cmd::Create(r)) = c.cmd else { panic!("not create") };
        assert_eq!(r.hostname.as_deref(), Some("box"));
        assert!(r.interactive && r.tty);
        assert_eq!(r.entrypoint.as_deref(), Some(""));
    }

    #[test]
    fn unknown_flag_exit_code() {
        let args: Vec<String> = ["run", "--bogus", "img"].iter().map(|s| s.to_string()).collect();
        let e = parse(&["run", "--bogus", "img"]).unwrap_err();
        assert_eq!(report_clap_error(e, &args), 125);
        let args: Vec<String> = ["ps", "--bogus"].iter().map(|s| s.to_string()).collect();
        let e = parse(&["ps", "--bogus"]).unwrap_err();
        assert_eq!(report_clap_error(e, &args), 125);
        let c = parse(&["ps", "-a", "-q", "-f", "status=exited", "-n", "3"]).unwrap();
        assert!(matches!(c.cmd, Some(Cmd::Ps(_))));
        let c = parse(&["history", "-H=false", "img"]).unwrap();
        let Some(Cmd::History(h)) = c.cmd else { panic!("not history") };
        assert!(!h.human);
    }

    #[test]
    fn missing_arguments_in_dockers_words() {
        let report = |a: &[&str]| {
            let typed: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            let mut argv = vec!["berth".to_owned()];
            argv.extend(separate_command(&expand_management(&typed)));
            let e = Cli::try_parse_from(&argv).unwrap_err();
            args::missing_arguments_text(&typed, &e)
        };
        assert_eq!(
            report(&["image", "remove"]).unwrap(),
            "berth: 'berth image rm' requires at least 1 argument\n\nUsage:  berth image rm [OPTIONS] IMAGE [IMAGE...]\n\nSee 'berth image rm --help' for more information"
        );
        assert_eq!(
            report(&["network", "connect", "n"]).unwrap().lines().next().unwrap(),
            "berth: 'berth network connect' requires 2 arguments"
        );
        let tag = report(&["tag", "a"]).unwrap();
        assert!(
            tag.starts_with("berth: 'berth tag' requires 2 arguments\n\nUsage:  berth tag SOURCE TARGET\n"),
            "{tag}"
        );
        assert!(tag.ends_with("Run 'berth tag --help' for more information"), "{tag}");
        assert!(
            report(&["-H", "unix:///x", "exec", "c"])
                .unwrap()
                .starts_with("berth: 'berth exec' requires at least 2 arguments")
        );
    }

    #[test]
    fn management_commands() {
        let ex = |a: &[&str]| expand_management(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).join(" ");
        assert_eq!(ex(&["image", "ls", "-q"]), "images -q");
        assert_eq!(ex(&["-H", "unix:///s", "image", "inspect", "bb"]), "-H unix:///s inspect --type image bb");
        assert_eq!(ex(&["container", "run", "--rm", "bb", "image", "ls"]), "run --rm bb image ls");
        assert_eq!(ex(&["container", "ls", "-a"]), "ps -a");
        assert_eq!(ex(&["run", "image", "ls"]), "run image ls");
        assert_eq!(ex(&["image"]), "image");
    }
}
