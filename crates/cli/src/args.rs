//! docker's argument shapes around clap: management commands (`image ls`) rewritten to the
//! classic ones, a `--` inserted after `run`'s image so the container's command keeps its
//! flags, and clap's errors printed in docker's words with docker's exit codes.

use crate::output::err_line;
use crate::{Cli, connect};

/// Docker's management-command forms (`image ls`, `container rm`, `system info`) rewritten
/// to the classic commands they mean, before clap sees them.
pub fn expand_management(args: &[String]) -> Vec<String> {
    let Some(i) = subcommand_index(args) else { return args.to_vec() };
    let Some(verb) = args.get(i + 1) else { return args.to_vec() };
    let repl: &[&str] = match (args[i].as_str(), verb.as_str()) {
        ("image", "ls" | "list") => &["images"],
        ("image", "rm" | "remove") => &["rmi"],
        ("image", "inspect") => &["inspect", "--type", "image"],
        ("image", "tag") => &["tag"],
        ("image", "history") => &["history"],
        ("image", "import") => &["import"],
        ("image", "build") => &["build"],
        ("image", "save") => &["save"],
        ("image", "load") => &["load"],
        ("image", "pull") => &["pull"],
        ("image", "push") => &["push"],
        ("container", "ls" | "list" | "ps") => &["ps"],
        ("container", "rm" | "remove") => &["rm"],
        ("container", "inspect") => &["inspect", "--type", "container"],
        (
            "container",
            v @ ("run" | "create" | "start" | "stop" | "kill" | "wait" | "logs" | "cp" | "export" | "diff" | "exec"
            | "attach"),
        )
        | ("container", v @ ("restart" | "pause" | "unpause" | "rename" | "top" | "stats" | "update"))
        | ("system", v @ "events") => {
            return args[..i].iter().cloned().chain([v.to_owned()]).chain(args[i + 2..].iter().cloned()).collect();
        }
        ("system", "info") => &["info"],
        _ => return args.to_vec(),
    };
    args[..i].iter().cloned().chain(repl.iter().map(|s| s.to_string())).chain(args[i + 2..].iter().cloned()).collect()
}

/// Where the subcommand is in `args` (after the global flags), if any.
pub fn subcommand_index(args: &[String]) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if connect::VALUE_FLAGS.contains(&a.as_str()) {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        return Some(i);
    }
    None
}

fn subcommand_name(args: &[String]) -> Option<String> {
    subcommand_index(args).map(|i| args[i].clone())
}

/// Prints a clap error in docker's shape and returns docker's exit code.
pub(crate) fn report_clap_error(e: clap::Error, args: &[String]) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return 0;
        }
        _ => {}
    }
    let cmd = match subcommand_name(args) {
        Some(s) => format!("berth {s}"),
        None => "berth".to_owned(),
    };
    let msg = match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            if arg.starts_with("--") || !arg.starts_with('-') {
                format!("unknown flag: {}", arg.split('=').next().unwrap_or(&arg))
            } else {
                let c = arg.chars().nth(1).unwrap_or('-');
                format!("unknown shorthand flag: '{c}' in {arg}")
            }
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            err_line(&format!("\"{cmd}\" requires at least 1 argument."));
            err_line(&format!("See '{cmd} --help'."));
            return 1;
        }
        ErrorKind::InvalidSubcommand => {
            let sub = subcommand_name(args).unwrap_or_default();
            err_line(&format!("berth: unknown command: berth {sub}"));
            err_line("");
            err_line("Run 'berth --help' for more information");
            return 1;
        }
        _ => {
            let s = e.to_string();
            s.lines().next().unwrap_or("").trim_start_matches("error: ").to_owned()
        }
    };
    err_line(&msg);
    err_line(&format!("See '{cmd} --help'."));
    125
}

/// Docker stops parsing `run`/`create` flags at the image (`exec`'s at the container): everything after it is the
/// command. clap cannot stop at a positional, so a `--` is inserted right after the image.
pub fn separate_command(args: &[String]) -> Vec<String> {
    use clap::CommandFactory;
    let top = Cli::command();
    let Some(sub_at) = args.iter().position(|a| a == "run" || a == "create" || a == "exec") else {
        return args.to_vec();
    };
    // Only when run/create is the subcommand, not a value of a global flag.
    if subcommand_name(args).as_deref() != Some(args[sub_at].as_str()) {
        return args.to_vec();
    }
    let Some(sub) = top.find_subcommand(&args[sub_at]) else {
        return args.to_vec();
    };
    let takes_long = |name: &str| {
        sub.get_arguments().any(|a| {
            (a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name)))
                && a.get_action().takes_values()
                // `--init[=false]` takes its value only after `=`.
                && !a.is_require_equals_set()
        })
    };
    let takes_short = |c: char| sub.get_arguments().any(|a| a.get_short() == Some(c) && a.get_action().takes_values());
    let mut i = sub_at + 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            return args.to_vec();
        }
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') && takes_long(long) {
                i += 1;
            }
        } else if let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (n, c) in shorts.char_indices() {
                if takes_short(c) {
                    if n + c.len_utf8() == shorts.len() {
                        i += 1;
                    }
                    break;
                }
            }
        } else {
            let mut out = args[..=i].to_vec();
            out.push("--".to_owned());
            out.extend_from_slice(&args[i + 1..]);
            return out;
        }
        i += 1;
    }
    args.to_vec()
}
