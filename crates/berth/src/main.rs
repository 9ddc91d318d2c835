//! The `berth` binary: one executable for the CLI, the daemon (`berth daemon`) and the
//! per-container shim (`berth shim`, started by the daemon, not by users) and the registry
//! server (`berth registry serve`) and the web dashboard (`berth dashboard`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args();
    let _argv0 = args.next();
    let rest: Vec<String> = args.collect();
    // The dashboard serves HTTP, which the CLI crate may not link; it takes the daemon the
    // global flags before it name, as any CLI command would.
    if let Some(i) = berth_cli::args::subcommand_index(&rest).filter(|&i| rest[i] == "dashboard") {
        let code = match berth_cli::client_for_globals(&rest[..i]) {
            Ok(client) => berth_dashboard::main(&rest[i + 1..], client),
            Err(e) => {
                eprintln!("{e}");
                125
            }
        };
        return ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1));
    }
    let code = match rest.first().map(String::as_str) {
        Some("daemon") => berth_daemon::main(rest[1..].to_vec()),
        // The shim must start single-threaded: libcontainer forks and changes the process
        // cwd, which is unsafe once other threads exist.
        Some("shim") => berth_runtime::shim::main(&rest[1..]),
        // The IPv6 side of a container's published ports, started by the daemon.
        Some("netproxy") => berth_daemon::netproxy_main(&rest[1..]),
        // The registry server runs in this process, not behind a daemon: it is a daemon of
        // its own, and the CLI crate may not link server code.
        Some("registry") if rest.get(1).map(String::as_str) == Some("serve") => {
            berth_registry::server::main(&rest[2..])
        }
        _ => berth_cli::main(rest),
    };
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}
