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
    let cmd = command_path(args);
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
            if let Some(m) = missing_arguments_text(args, &e) {
                for line in m.lines() {
                    err_line(line);
                }
                return 1;
            }
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
    // docker 28's shape: the message, the command's usage, where to read more.
    let top = built_top();
    err_line(&msg);
    if let Some(c) = deepest_command(&top, &separate_command(&expand_management(args))) {
        err_line("");
        err_line(&format!("Usage:  {cmd} {}", usage(c)));
        err_line("");
        err_line(&format!("Run '{cmd} --help' for more information"));
    } else {
        err_line("");
        err_line("Usage:  berth [OPTIONS] COMMAND [ARG...]");
        err_line("");
        err_line("Run 'berth --help' for more information");
    }
    125
}

/// The command path as the user typed it, as docker names it in errors: `berth image rm`
/// for `image remove` (docker's canonical verbs), `berth network create`, `berth stop`.
fn command_path(typed: &[String]) -> String {
    let top = built_top();
    let Some(mut j) = subcommand_index(typed) else { return "berth".to_owned() };
    let mut path = vec!["berth".to_owned()];
    let mut node = &top;
    while let Some(word) = typed.get(j).filter(|a| !a.starts_with('-')) {
        let group = path.len() == 2 && matches!(path[1].as_str(), "image" | "container" | "system");
        match node.find_subcommand(word) {
            Some(sub) => {
                path.push(sub.get_name().to_owned());
                node = sub;
            }
            // `image rm` and friends are rewritten to the classic commands before clap.
            None if group => path.push(
                match word.as_str() {
                    "remove" => "rm",
                    "list" => "ls",
                    w => w,
                }
                .to_owned(),
            ),
            None => break,
        }
        if path.len() == 3 || !node.has_subcommands() && !group {
            break;
        }
        j += 1;
        while typed.get(j).is_some_and(|a| a.starts_with('-')) {
            j += 1;
        }
    }
    path.join(" ")
}

/// [`missing_arguments`] for the command line `typed` whose parse failed with `e` (None when
/// `e` is not about too few arguments or no subcommand was named).
pub(crate) fn missing_arguments_text(typed: &[String], e: &clap::Error) -> Option<String> {
    use clap::error::ErrorKind;
    if !matches!(
        e.kind(),
        ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues
    ) {
        return None;
    }
    missing_arguments(typed, &separate_command(&expand_management(typed)))
}

/// The docker CLI's report of too few arguments (cobra's `ExactArgs`/`MinimumNArgs`):
///
/// ```text
/// berth: 'berth volume rm' requires at least 1 argument
///
/// Usage:  berth volume rm [OPTIONS] NAME [NAME...]
///
/// See 'berth volume rm --help' for more information
/// ```
///
/// `typed` is the command line as the user wrote it (its command path is what is named:
/// `image rm`, not the `rmi` it runs), `parsed` what clap was given. The count comes from
/// the command's positional arguments: "at least N" when the last one repeats, else
/// exactly N ("Run …" instead of "See …", as docker words the two).
fn missing_arguments(typed: &[String], parsed: &[String]) -> Option<String> {
    let top = built_top();
    let cmd = deepest_command(&top, parsed)?;
    let path = command_path(typed);
    let positionals: Vec<&clap::Arg> = cmd.get_positionals().filter(|a| a.get_id() != "help").collect();
    let needed: usize = positionals
        .iter()
        .filter(|a| a.is_required_set())
        .map(|a| a.get_num_args().map_or(1, |r| r.min_values().max(1)))
        .sum();
    let at_least = positionals.last().is_some_and(|a| repeats(a)) || positionals.iter().any(|a| !a.is_required_set());
    let plural = if needed == 1 { "" } else { "s" };
    let first = if at_least {
        format!("berth: '{path}' requires at least {needed} argument{plural}")
    } else {
        format!("berth: '{path}' requires {needed} argument{plural}")
    };
    let hint = if at_least { "See" } else { "Run" };
    Some(format!("{first}\n\nUsage:  {path} {}\n\n{hint} '{path} --help' for more information", usage(cmd)))
}

/// The top-level command with every subcommand's flags built (they are deferred until a
/// parse selects one): for error reports, which read the flags of the command named.
fn built_top() -> clap::Command {
    use clap::CommandFactory;
    let mut top = Cli::command();
    top.build();
    top
}

/// The subcommand `name` of the top-level command with its flags built (and no other's).
fn built_subcommand(name: &str) -> Option<clap::Command> {
    use clap::CommandFactory;
    let mut sub = Cli::command().find_subcommand(name)?.clone();
    sub.build();
    Some(sub)
}

/// The deepest subcommand named in `parsed` (what clap was given); None for none.
fn deepest_command<'a>(top: &'a clap::Command, parsed: &[String]) -> Option<&'a clap::Command> {
    let mut cmd = top;
    let mut i = subcommand_index(parsed)?;
    while let Some(sub) = parsed.get(i).and_then(|a| cmd.find_subcommand(a)) {
        cmd = sub;
        i += 1;
        while parsed.get(i).is_some_and(|a| a.starts_with('-')) {
            i += 1;
        }
    }
    (!std::ptr::eq(cmd, top)).then_some(cmd)
}

fn repeats(a: &clap::Arg) -> bool {
    a.get_num_args().is_some_and(|r| r.max_values() > 1)
}

/// `cmd`'s arguments in docker's usage notation: `[OPTIONS] NAME [NAME...]`, `[NAME]`,
/// names in the singular.
fn usage(cmd: &clap::Command) -> String {
    let mut usage = Vec::new();
    if cmd.get_arguments().any(|a| !a.is_positional() && a.get_id() != "help") {
        usage.push("[OPTIONS]".to_owned());
    }
    for a in cmd.get_positionals().filter(|a| a.get_id() != "help") {
        let raw = a
            .get_value_names()
            .and_then(|v| v.first())
            .map_or_else(|| a.get_id().as_str().to_owned(), |n| n.to_string());
        let mut name = raw.to_uppercase().replace('-', "_");
        if repeats(a) && name.len() > 1 && name.ends_with('S') && !name.ends_with("SS") {
            name.pop();
        }
        usage.push(match (a.is_required_set(), repeats(a)) {
            (true, true) => format!("{name} [{name}...]"),
            (true, false) => name,
            (false, true) => format!("[{name}...]"),
            (false, false) => format!("[{name}]"),
        });
    }
    usage.join(" ")
}

/// Docker stops parsing `run`/`create` flags at the image (`exec`'s at the container): everything after it is the
/// command. clap cannot stop at a positional, so a `--` is inserted right after the image.
pub fn separate_command(args: &[String]) -> Vec<String> {
    let Some(sub_at) = args.iter().position(|a| a == "run" || a == "create" || a == "exec") else {
        return args.to_vec();
    };
    // Only when run/create is the subcommand, not a value of a global flag.
    if subcommand_name(args).as_deref() != Some(args[sub_at].as_str()) {
        return args.to_vec();
    }
    let Some(sub) = built_subcommand(&args[sub_at]) else {
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
