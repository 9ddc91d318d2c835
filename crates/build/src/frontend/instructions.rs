//! Typed Dockerfile instructions and build stages, from parser nodes, with BuildKit's
//! validation and error wording (`frontend/dockerfile/instructions`).
//!
//! Values stay as written (quotes and `$VAR`s intact): expansion needs the stage's ENV
//! and ARGs, so the build engine runs them through [`crate::frontend::shell::Lexer`] when it
//! dispatches each step, as BuildKit does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::Error;
use crate::frontend::parser::{Dockerfile, Heredoc, Node, chomp_heredoc_content, parse_heredoc};
use crate::frontend::shell::{Env, Lexer, go_quote};

/// A command in shell form (run through the stage's SHELL) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// `RUN echo hi`: the text, continuations joined (`""` when no argument was given).
    Shell(String),
    /// `RUN ["echo", "hi"]`.
    Exec(Vec<String>),
}

impl ShellOrExec {
    fn from_args(args: Vec<String>, json: bool) -> Self {
        if json { Self::Exec(args) } else { Self::Shell(args.join(" ")) }
    }
}

/// `FROM [--platform=p] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The base image or stage name (unexpanded).
    pub image: String,
    /// `--platform` (unexpanded).
    pub platform: Option<String>,
    /// The stage name, lower-cased.
    pub alias: Option<String>,
}

/// `RUN --network=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The builder's default network.
    #[default]
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// The normal sandbox.
    #[default]
    Sandbox,
    /// All capabilities (needs the `security.insecure` entitlement).
    Insecure,
}

/// The kind of a `RUN --mount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountType {
    /// A read-only view of the context, a stage or an image (the default).
    #[default]
    Bind,
    /// A persistent cache directory.
    Cache,
    /// A tmpfs.
    Tmpfs,
    /// A secret file.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

impl MountType {
    fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Cache => "cache",
            Self::Tmpfs => "tmpfs",
            Self::Secret => "secret",
            Self::Ssh => "ssh",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Concurrent writers share it.
    Shared,
    /// A writer in use makes a new instance.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// A parsed `--mount` spec. Empty strings mean "not given", as in BuildKit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// `type=`.
    pub kind: MountType,
    /// `from=`: stage or image for bind/cache.
    pub from: String,
    /// `source=`/`src=`.
    pub source: String,
    /// `target=`/`dst=`/`destination=`.
    pub target: String,
    /// `ro`/`rw`, defaulting to read-only except for cache and tmpfs.
    pub read_only: bool,
    /// `size=` of a tmpfs, in bytes (0 when not given).
    pub size_limit: i64,
    /// `id=` (cache or secret id).
    pub id: String,
    /// `sharing=` of a cache.
    pub sharing: Option<Sharing>,
    /// `required` for secret and ssh mounts.
    pub required: bool,
    /// `env=`: expose the secret as this environment variable.
    pub env: Option<String>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
}

impl Mount {
    /// Parses a `--mount` value, expanding each value with `expand` first (BuildKit's
    /// `parseMount` with an expander).
    pub fn parse(spec: &str, expand: &mut dyn FnMut(&str) -> Result<String, Error>) -> Result<Mount, Error> {
        parse_mount(spec, Some(expand)).map(|m| m.unwrap_or_default())
    }
}

/// One `--mount` of a RUN: the text as written, and its parse when it uses no variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The flag value as written, e.g. `type=cache,target=/root/.cache`.
    pub raw: String,
    /// The parse, when `raw` has no `$` (otherwise it needs the build's variables).
    pub parsed: Option<Mount>,
}

impl MountSpec {
    /// The mount with its values expanded in `env`.
    pub fn resolve(&self, lexer: &Lexer, env: &Env) -> Result<Mount, Error> {
        Mount::parse(&self.raw, &mut |v| lexer.process_word(v, env))
    }
}

/// `RUN --device=name[,required]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The CDI device name.
    pub name: String,
    /// Fail when the device is missing.
    pub required: bool,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command.
    pub cmd: ShellOrExec,
    /// Heredocs (raw content; apply `chomp` and `expand` when running).
    pub heredocs: Vec<Heredoc>,
    /// `--mount`s in order.
    pub mounts: Vec<MountSpec>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: SecurityMode,
    /// `--device`s.
    pub devices: Vec<Device>,
}

/// `HEALTHCHECK CMD …` (durations are zero when not given, meaning "inherit").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", …]` (exec form) or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval: Duration,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--start-period`.
    pub start_period: Duration,
    /// `--start-interval`.
    pub start_interval: Duration,
    /// `--retries` (0 when not given).
    pub retries: u32,
}

/// An inline file from a heredoc in COPY/ADD sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// The file name (the heredoc delimiter).
    pub path: String,
    /// The content (leading tabs already removed for `<<-`).
    pub data: String,
    /// Whether variables in `data` are to be expanded.
    pub expand: bool,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// Source paths (unexpanded).
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub contents: Vec<SourceContent>,
    /// Destination (unexpanded).
    pub dest: String,
    /// `--from`.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude`s.
    pub exclude: Vec<String>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Add {
    /// Source paths or URLs (unexpanded).
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub contents: Vec<SourceContent>,
    /// Destination (unexpanded).
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude`s.
    pub exclude: Vec<String>,
    /// `--checksum`.
    pub checksum: Option<String>,
    /// `--keep-git-dir`, when given.
    pub keep_git_dir: Option<bool>,
    /// `--unpack`, when given.
    pub unpack: Option<bool>,
}

/// One typed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM`.
    From(From),
    /// `RUN`.
    Run(Run),
    /// `CMD`.
    Cmd(ShellOrExec),
    /// `ENTRYPOINT` (`Exec(vec![])` for `ENTRYPOINT []`).
    Entrypoint(ShellOrExec),
    /// `SHELL` (always exec form).
    Shell(Vec<String>),
    /// `ENV` pairs (values unexpanded, quotes intact).
    Env(Vec<(String, String)>),
    /// `LABEL` pairs (unexpanded).
    Label(Vec<(String, String)>),
    /// `EXPOSE` ports, sorted as BuildKit sorts them.
    Expose(Vec<String>),
    /// `ARG name[=default]` (defaults unexpanded).
    Arg(Vec<(String, Option<String>)>),
    /// `WORKDIR`.
    Workdir(String),
    /// `USER`.
    User(String),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`; `None` for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// `ONBUILD`: the trigger's text (heredocs appended), to be parsed in the child build.
    OnBuild(String),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Add),
    /// `MAINTAINER`.
    Maintainer(String),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The instruction.
    pub instruction: Instruction,
    /// First line (1-based).
    pub start_line: usize,
    /// Last line.
    pub end_line: usize,
    /// The instruction as written, continuations joined.
    pub original: String,
}

/// A build stage: a FROM and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base image or stage (unexpanded).
    pub base: String,
    /// `--platform` (unexpanded).
    pub platform: Option<String>,
    /// The instructions after FROM.
    pub instructions: Vec<Located>,
    /// The FROM's line.
    pub line: usize,
    /// The FROM as written.
    pub original: String,
}

/// A Dockerfile as stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stages {
    /// ARGs before the first FROM.
    pub global_args: Vec<(String, Option<String>)>,
    /// Stages in file order.
    pub stages: Vec<Stage>,
}

/// Every instruction name, upper case, for "did you mean" suggestions.
const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Splits a parsed Dockerfile into stages of typed instructions (BuildKit's
/// `instructions.Parse`).
pub fn stages(df: &Dockerfile) -> Result<Stages, Error> {
    let mut out = Stages { global_args: Vec::new(), stages: Vec::new() };
    for node in &df.nodes {
        let instruction = parse_instruction(node)?;
        match instruction {
            Instruction::Arg(args) if out.stages.is_empty() => out.global_args.extend(args),
            Instruction::From(f) => out.stages.push(Stage {
                name: f.alias,
                base: f.image,
                platform: f.platform,
                instructions: Vec::new(),
                line: node.start_line,
                original: node.original.trim().to_string(),
            }),
            instruction => {
                let Some(stage) = out.stages.last_mut() else {
                    return Err(Error::syntax("no build stage in current context", node.start_line, node.end_line));
                };
                stage.instructions.push(Located {
                    instruction,
                    start_line: node.start_line,
                    end_line: node.end_line,
                    original: node.original.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Types one node; errors read `dockerfile parse error on line N: …`.
pub fn parse_instruction(node: &Node) -> Result<Instruction, Error> {
    parse_node(node).map_err(|e| e.at_lines(node.start_line, node.end_line.max(node.start_line)))
}

/// An instruction error whose lines [`parse_instruction`] sets.
fn bad(message: String) -> Error {
    Error::instruction(message)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    Str,
    Strs,
}

#[derive(Default)]
struct Flags {
    bools: BTreeMap<String, bool>,
    strs: BTreeMap<String, String>,
    lists: BTreeMap<String, Vec<String>>,
    used: BTreeSet<String>,
}

impl Flags {
    fn str(&self, name: &str) -> Option<String> {
        self.strs.get(name).cloned()
    }
    fn bool(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }
    fn used_bool(&self, name: &str) -> Option<bool> {
        self.used.contains(name).then(|| self.bool(name))
    }
    fn list(&self, name: &str) -> Vec<String> {
        self.lists.get(name).cloned().unwrap_or_default()
    }
}

/// BuildKit's `BFlags.Parse`.
fn parse_flags(args: &[String], defs: &[(&str, FlagKind)]) -> Result<Flags, Error> {
    let mut flags = Flags::default();
    for a in args {
        if a == "--" {
            break;
        }
        if !a.starts_with("--") {
            return Err(bad(format!("arg should start with -- : {a}")));
        }
        let (flag_name, value, has_value) = match a.split_once('=') {
            Some((n, v)) => (n, v, true),
            None => (a.as_str(), "", false),
        };
        let arg = &flag_name[2..];
        let Some(&(_, kind)) = defs.iter().find(|(n, _)| *n == arg) else {
            let names: Vec<&str> = defs.iter().map(|(n, _)| *n).collect();
            return Err(bad(suggest(format!("unknown flag: {flag_name}"), arg, &names, true)));
        };
        if flags.used.contains(arg) && kind != FlagKind::Strs {
            return Err(bad(format!("duplicate flag specified: {flag_name}")));
        }
        flags.used.insert(arg.to_string());
        match kind {
            FlagKind::Bool => {
                if has_value && value.is_empty() {
                    return Err(bad(format!("missing a value on flag: {flag_name}")));
                }
                let b = match value.to_lowercase().as_str() {
                    "true" | "" => true,
                    "false" => false,
                    _ => {
                        return Err(bad(format!("expecting boolean value for flag {flag_name}, not: {value}")));
                    }
                };
                flags.bools.insert(arg.to_string(), b);
            }
            FlagKind::Str => {
                if !has_value {
                    return Err(bad(format!("missing a value on flag: {flag_name}")));
                }
                flags.strs.insert(arg.to_string(), value.to_string());
            }
            FlagKind::Strs => {
                if !has_value {
                    return Err(bad(format!("missing a value on flag: {flag_name}")));
                }
                flags.lists.entry(arg.to_string()).or_default().push(value.to_string());
            }
        }
    }
    Ok(flags)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// BuildKit's `suggest.WrapError`: adds ` (did you mean X?)` for a close option.
fn suggest(err: String, val: &str, options: &[&str], case_sensitive: bool) -> String {
    let v = if case_sensitive { val.to_string() } else { val.to_lowercase() };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let o = if case_sensitive { opt.to_string() } else { opt.to_lowercase() };
        if o == v {
            return err;
        }
        let d = levenshtein(&v, &o);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                o
            } else if val == val.to_lowercase() {
                o.to_lowercase()
            } else if val == val.to_uppercase() {
                o.to_uppercase()
            } else {
                o
            });
        }
    }
    match best {
        Some(m) => format!("{err} (did you mean {m}?)"),
        None => err,
    }
}

fn parse_node(node: &Node) -> Result<Instruction, Error> {
    let args = node.flat_args();
    let flags = &node.flags;
    let no_flags = || parse_flags(flags, &[]).map(|_| ());
    match node.instruction.as_str() {
        "env" | "label" => {
            no_flags()?;
            let name = node.instruction.to_uppercase();
            if args.is_empty() {
                return Err(bad(format!("{name} requires at least one argument")));
            }
            if args.chunks(3).any(|t| t.len() != 3) {
                return Err(bad(format!("Bad input to {name}, too many arguments")));
            }
            let mut pairs = Vec::new();
            for t in args.chunks(3) {
                if t[0].is_empty() {
                    return Err(bad(format!("{name} names can not be blank")));
                }
                pairs.push((t[0].clone(), t[1].clone()));
            }
            Ok(if name == "ENV" { Instruction::Env(pairs) } else { Instruction::Label(pairs) })
        }
        "maintainer" => {
            let [m] = exactly_one(&args, "MAINTAINER")?;
            no_flags()?;
            Ok(Instruction::Maintainer(m))
        }
        "add" => parse_add(node, &args),
        "copy" => parse_copy(node, &args),
        "from" => {
            let alias = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_lowercase();
                    if !valid_stage_name(&name) {
                        return Err(bad(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            go_quote(&args[2])
                        )));
                    }
                    Some(name)
                }
                1 => None,
                _ => return Err(bad("FROM requires either one or three arguments".into())),
            };
            let f = parse_flags(flags, &[("platform", FlagKind::Str)])?;
            Ok(Instruction::From(From { image: args[0].clone(), platform: f.str("platform"), alias }))
        }
        "onbuild" => {
            if args.is_empty() {
                return Err(bad("ONBUILD requires at least one argument".into()));
            }
            no_flags()?;
            let trigger = args[0].trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(bad("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()));
                }
                "MAINTAINER" | "FROM" => {
                    return Err(bad(format!("{trigger} isn't allowed as an ONBUILD trigger")));
                }
                _ => {}
            }
            let mut expr = strip_onbuild(&node.original).to_string();
            for h in &node.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Ok(Instruction::OnBuild(expr))
        }
        "workdir" => {
            let [p] = exactly_one(&args, "WORKDIR")?;
            no_flags()?;
            Ok(Instruction::Workdir(p))
        }
        "run" => parse_run(node, args),
        "cmd" => {
            no_flags()?;
            Ok(Instruction::Cmd(ShellOrExec::from_args(args, node.json)))
        }
        "entrypoint" => {
            no_flags()?;
            Ok(Instruction::Entrypoint(ShellOrExec::from_args(args, node.json)))
        }
        "healthcheck" => parse_healthcheck(node, &args),
        "expose" => {
            if args.is_empty() {
                return Err(bad("EXPOSE requires at least one argument".into()));
            }
            no_flags()?;
            let mut ports = args;
            ports.sort();
            Ok(Instruction::Expose(ports))
        }
        "user" => {
            let [u] = exactly_one(&args, "USER")?;
            no_flags()?;
            Ok(Instruction::User(u))
        }
        "volume" => {
            if args.is_empty() {
                return Err(bad("VOLUME requires at least one argument".into()));
            }
            no_flags()?;
            let mut vols = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err(bad("VOLUME specified can not be an empty string".into()));
                }
                vols.push(v.to_string());
            }
            Ok(Instruction::Volume(vols))
        }
        // BuildKit does not parse STOPSIGNAL's or ARG's flags, so they are ignored.
        "stopsignal" => {
            let [s] = exactly_one(&args, "STOPSIGNAL")?;
            Ok(Instruction::StopSignal(s))
        }
        "arg" => {
            if args.is_empty() {
                return Err(bad("ARG requires at least one argument".into()));
            }
            let mut out = Vec::new();
            for a in args {
                match a.split_once('=') {
                    Some(("", _)) => return Err(bad("ARG names can not be blank".into())),
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((a, None)),
                }
            }
            Ok(Instruction::Arg(out))
        }
        "shell" => {
            no_flags()?;
            if args.is_empty() {
                return Err(bad("SHELL requires at least one argument".into()));
            }
            if !node.json {
                return Err(bad("SHELL requires the arguments to be in JSON form".into()));
            }
            Ok(Instruction::Shell(args))
        }
        _ => {
            let msg = format!("unknown instruction: {}", node.value);
            Err(bad(suggest(msg, &node.value, &INSTRUCTIONS, false)))
        }
    }
}

fn exactly_one(args: &[String], name: &str) -> Result<[String; 1], Error> {
    match args {
        [a] => Ok([a.clone()]),
        _ => Err(bad(format!("{name} requires exactly one argument"))),
    }
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch))
}

/// `(?i)^\s*ONBUILD\s*` removed.
fn strip_onbuild(original: &str) -> &str {
    let is_sp = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let s = original.trim_start_matches(is_sp);
    match s.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("onbuild") => s[7..].trim_start_matches(is_sp),
        _ => original,
    }
}

struct SourcesAndDest {
    sources: Vec<String>,
    contents: Vec<SourceContent>,
    dest: String,
}

fn sources_and_dest(node: &Node, args: &[String], cmd: &str) -> Result<SourcesAndDest, Error> {
    let (dest, srcs) = args.split_last().ok_or_else(|| bad(format!("{cmd} requires at least two arguments")))?;
    if matches!(parse_heredoc(dest), Ok(Some(_))) {
        return Err(bad(format!("{cmd} cannot accept a heredoc as a destination")));
    }
    let mut out = SourcesAndDest { sources: Vec::new(), contents: Vec::new(), dest: dest.clone() };
    for src in srcs {
        match parse_heredoc(src) {
            Ok(Some(h)) => {
                // BuildKit looks heredocs up by name; the last one with that name wins.
                let mut data = node
                    .heredocs
                    .iter()
                    .rev()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                if h.chomp {
                    data = chomp_heredoc_content(&data);
                }
                out.contents.push(SourceContent { path: h.name, data, expand: h.expand });
            }
            _ => out.sources.push(src.clone()),
        }
    }
    Ok(out)
}

fn no_dest(cmd: &str) -> String {
    format!("{cmd} requires at least two arguments, but only one was provided. Destination could not be determined")
}

fn parse_add(node: &Node, args: &[String]) -> Result<Instruction, Error> {
    if args.len() < 2 {
        return Err(bad(no_dest("ADD")));
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("chown", FlagKind::Str),
            ("chmod", FlagKind::Str),
            ("link", FlagKind::Bool),
            ("keep-git-dir", FlagKind::Bool),
            ("checksum", FlagKind::Str),
            ("unpack", FlagKind::Bool),
            ("exclude", FlagKind::Strs),
        ],
    )?;
    let sd = sources_and_dest(node, args, "ADD")?;
    Ok(Instruction::Add(Add {
        sources: sd.sources,
        contents: sd.contents,
        dest: sd.dest,
        chown: f.str("chown").filter(|s| !s.is_empty()),
        chmod: f.str("chmod").filter(|s| !s.is_empty()),
        link: f.bool("link"),
        exclude: f.list("exclude"),
        checksum: f.str("checksum").filter(|s| !s.is_empty()),
        keep_git_dir: f.used_bool("keep-git-dir"),
        unpack: f.used_bool("unpack"),
    }))
}

fn parse_copy(node: &Node, args: &[String]) -> Result<Instruction, Error> {
    if args.len() < 2 {
        return Err(bad(no_dest("COPY")));
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("chown", FlagKind::Str),
            ("from", FlagKind::Str),
            ("chmod", FlagKind::Str),
            ("link", FlagKind::Bool),
            ("exclude", FlagKind::Strs),
            ("parents", FlagKind::Bool),
        ],
    )?;
    let sd = sources_and_dest(node, args, "COPY")?;
    Ok(Instruction::Copy(Copy {
        sources: sd.sources,
        contents: sd.contents,
        dest: sd.dest,
        from: f.str("from").filter(|s| !s.is_empty()),
        chown: f.str("chown").filter(|s| !s.is_empty()),
        chmod: f.str("chmod").filter(|s| !s.is_empty()),
        link: f.bool("link"),
        parents: f.bool("parents"),
        exclude: f.list("exclude"),
    }))
}

fn parse_run(node: &Node, args: Vec<String>) -> Result<Instruction, Error> {
    let f = parse_flags(
        &node.flags,
        &[
            ("mount", FlagKind::Strs),
            ("network", FlagKind::Str),
            ("security", FlagKind::Str),
            ("device", FlagKind::Strs),
        ],
    )?;
    let mut mounts = Vec::new();
    for raw in f.list("mount") {
        let parsed = if raw.contains('$') {
            // Values with variables wait for the build's environment, as in BuildKit;
            // only `from=` is checked now since it can never use variables.
            parse_mount(&raw, None)?;
            None
        } else {
            parse_mount(&raw, Some(&mut |v: &str| Ok(v.to_string())))?
        };
        mounts.push(MountSpec { raw, parsed });
    }
    let network = match f.str("network").as_deref() {
        None | Some("default") => NetworkMode::Default,
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(v) => return Err(bad(format!("invalid network mode {}", go_quote(v)))),
    };
    let security = match f.str("security").as_deref() {
        None | Some("sandbox") => SecurityMode::Sandbox,
        Some("insecure") => SecurityMode::Insecure,
        Some(v) => return Err(bad(format!("security {} is not valid", go_quote(v)))),
    };
    let devices = f.list("device").iter().map(|d| parse_device(d)).collect::<Result<Vec<_>, _>>()?;
    Ok(Instruction::Run(Run {
        cmd: ShellOrExec::from_args(args, node.json),
        heredocs: node.heredocs.clone(),
        mounts,
        network,
        security,
        devices,
    }))
}

fn parse_healthcheck(node: &Node, args: &[String]) -> Result<Instruction, Error> {
    let Some(first) = args.first() else {
        return Err(bad("HEALTHCHECK requires at least one argument".into()));
    };
    let typ = first.to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(bad("HEALTHCHECK NONE takes no arguments".into()));
        }
        return Ok(Instruction::Healthcheck(None));
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("interval", FlagKind::Str),
            ("timeout", FlagKind::Str),
            ("start-period", FlagKind::Str),
            ("start-interval", FlagKind::Str),
            ("retries", FlagKind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(bad(format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&typ))));
    }
    if rest.is_empty() {
        return Err(bad("Missing command after HEALTHCHECK CMD".into()));
    }
    let test = if node.json {
        std::iter::once("CMD".to_string()).chain(rest.iter().cloned()).collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let interval = |name: &str| -> Result<Duration, Error> {
        let Some(v) = f.str(name).filter(|s| !s.is_empty()) else {
            return Ok(Duration::ZERO);
        };
        let nanos = parse_go_duration(&v)?;
        if nanos == 0 {
            return Ok(Duration::ZERO);
        }
        if nanos < 1_000_000 {
            return Err(bad(format!("Interval {} cannot be less than 1ms", go_quote(name))));
        }
        Ok(Duration::from_nanos(nanos.unsigned_abs()))
    };
    let retries = match f.str("retries").filter(|s| !s.is_empty()) {
        None => 0,
        Some(v) => {
            let n = v.parse::<i32>().map_err(|e| {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
                    _ => "invalid syntax",
                };
                bad(format!("strconv.ParseInt: parsing {}: {why}", go_quote(&v)))
            })?;
            u32::try_from(n).map_err(|_| bad(format!("--retries cannot be negative ({n})")))?
        }
    };
    Ok(Instruction::Healthcheck(Some(Healthcheck {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })))
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_go_duration(orig: &str) -> Result<i64, Error> {
    let invalid = || bad(format!("time: invalid duration {}", go_quote(orig)));
    let mut s = orig;
    let mut neg = false;
    if let Some(r) = s.strip_prefix('-') {
        neg = true;
        s = r;
    } else if let Some(r) = s.strip_prefix('+') {
        s = r;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part: u128 = if int_len > 0 { s[..int_len].parse().map_err(|_| invalid())? } else { 0 };
        s = &s[int_len..];
        let mut frac = 0f64;
        let mut frac_len = 0;
        if let Some(r) = s.strip_prefix('.') {
            frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            if frac_len > 0 {
                frac = format!("0.{}", &r[..frac_len]).parse().unwrap_or(0.0);
            }
            s = &r[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = s.bytes().take_while(|c| *c != b'.' && !c.is_ascii_digit()).count();
        if unit_len == 0 {
            return Err(bad(format!("time: missing unit in duration {}", go_quote(orig))));
        }
        let u = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u128 = match u {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(bad(format!("time: unknown unit {} in duration {}", go_quote(u), go_quote(orig))));
            }
        };
        total += int_part * unit + (frac * unit as f64) as u128;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    let t = i64::try_from(total).map_err(|_| invalid())?;
    Ok(if neg { -t } else { t })
}

/// One CSV record, as Go's `encoding/csv` reads it with default settings.
fn csv_fields(s: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        let mut field = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(bad(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            i + 1
                        )));
                    }
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            match chars.get(i) {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {
                    out.push(field);
                    i += 1;
                }
                Some(_) => {
                    return Err(bad(format!(
                        "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                        i + 1
                    )));
                }
            }
        } else {
            while let Some(&c) = chars.get(i) {
                if c == ',' {
                    break;
                }
                if c == '"' {
                    return Err(bad(format!("parse error on line 1, column {}: bare \" in non-quoted-field", i + 1)));
                }
                field.push(c);
                i += 1;
            }
            out.push(field);
            if i >= chars.len() {
                return Ok(out);
            }
            i += 1;
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: `64m`, `1g`, `1.5GiB`, `1024`.
fn ram_in_bytes(v: &str) -> Option<i64> {
    let num_len = v.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != '.').map_or(v.len(), |(i, _)| i);
    let (num, mut rest) = v.split_at(num_len);
    if num.is_empty() || !num.as_bytes()[0].is_ascii_digit() || num.ends_with('.') {
        return None;
    }
    let size: f64 = num.parse().ok()?;
    rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut mul: f64 = 1.0;
    if let Some(c) = rest.chars().next() {
        let m = match c.to_ascii_lowercase() {
            'k' => Some(1024f64),
            'm' => Some(1024f64.powi(2)),
            'g' => Some(1024f64.powi(3)),
            't' => Some(1024f64.powi(4)),
            'p' => Some(1024f64.powi(5)),
            _ => None,
        };
        if let Some(m) = m {
            mul = m;
            rest = &rest[1..];
        }
    }
    rest = rest.strip_prefix(['i', 'I']).unwrap_or(rest);
    rest = rest.strip_prefix(['b', 'B']).unwrap_or(rest);
    if !rest.is_empty() {
        return None;
    }
    Some((size * mul) as i64)
}

type Expander<'a> = &'a mut dyn FnMut(&str) -> Result<String, Error>;

/// BuildKit's `parseMount`. Without an expander, values are only checked for the
/// `from=$VAR` rule (their parse waits for the build's variables) and `Ok(None)` returns.
fn parse_mount(val: &str, mut expander: Option<Expander<'_>>) -> Result<Option<Mount>, Error> {
    let fields = csv_fields(val).map_err(|e| bad(format!("failed to parse csv mounts: {}", e.message())))?;
    let mut m = Mount::default();
    let mut ro_auto = true;
    for field in fields {
        let (key, value, has_eq) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), v.to_string(), true),
            None => (field.to_lowercase(), String::new(), false),
        };
        if !has_eq {
            if expander.is_none() {
                continue;
            }
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                    continue;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                    continue;
                }
                "required" => {
                    if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        m.required = true;
                        continue;
                    }
                    return Err(bad(format!("unexpected key '{key}' for mount type '{}'", m.kind.name())));
                }
                _ => return Err(bad(format!("invalid field '{field}' must be a key=value pair"))),
            }
        }
        let value = match expander.as_mut() {
            Some(e) => e(&value)?,
            None => {
                if key == "from" && value.find('$').is_some_and(|i| i != value.len() - 1) {
                    return Err(bad(format!("'{key}' doesn't support variable expansion, define alias stage instead")));
                }
                continue;
            }
        };
        let bad_value = || Error::instruction(format!("invalid value for {key}: {value}"));
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        return Err(bad(suggest(
                            format!("unsupported mount type {}", go_quote(&value)),
                            &value,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                            true,
                        )));
                    }
                }
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.read_only = parse_go_bool(&value).ok_or_else(bad_value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.read_only = !parse_go_bool(&value).ok_or_else(bad_value)?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(bad(format!("unexpected key '{key}' for mount type '{}'", m.kind.name())));
                }
                m.required = parse_go_bool(&value).ok_or_else(bad_value)?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(bad(format!("unexpected key '{key}' for mount type '{}'", m.kind.name())));
                }
                m.size_limit = ram_in_bytes(&value).ok_or_else(bad_value)?;
            }
            "id" => m.id = value,
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    _ => {
                        return Err(bad(suggest(
                            format!("unsupported sharing value {}", go_quote(&value)),
                            &value,
                            &["shared", "private", "locked"],
                            true,
                        )));
                    }
                })
            }
            "mode" => {
                let ok = !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b));
                let mode = ok
                    .then(|| u32::from_str_radix(&value, 8).ok())
                    .flatten()
                    .ok_or_else(|| bad(format!("invalid value {value} for mode")))?;
                m.mode = Some(mode);
            }
            "uid" | "gid" => {
                let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                let n = ok
                    .then(|| value.parse::<u32>().ok())
                    .flatten()
                    .ok_or_else(|| bad(format!("invalid value {value} for {key}")))?;
                if key == "uid" {
                    m.uid = Some(n);
                } else {
                    m.gid = Some(n);
                }
            }
            "env" => m.env = Some(value),
            _ => {
                const ALL: [&str; 19] = [
                    "type",
                    "from",
                    "source",
                    "target",
                    "readonly",
                    "id",
                    "sharing",
                    "required",
                    "size",
                    "mode",
                    "uid",
                    "gid",
                    "src",
                    "dst",
                    "destination",
                    "ro",
                    "rw",
                    "readwrite",
                    "env",
                ];
                return Err(bad(suggest(format!("unexpected key '{key}' in '{field}'"), &key, &ALL, true)));
            }
        }
    }
    if expander.is_none() {
        return Ok(None);
    }
    let kind = m.kind.name();
    if !matches!(m.kind, MountType::Secret | MountType::Ssh | MountType::Cache) {
        if m.mode.is_some() {
            return Err(bad(format!("mode not allowed for {} type mounts", go_quote(kind))));
        }
        if m.uid.is_some() {
            return Err(bad(format!("uid not allowed for {} type mounts", go_quote(kind))));
        }
        if m.gid.is_some() {
            return Err(bad(format!("gid not allowed for {} type mounts", go_quote(kind))));
        }
    }
    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(bad("secret mount should not have a from".into()));
        }
        if m.sharing.is_some() {
            return Err(bad("secret mount should not define sharing".into()));
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err(bad("invalid secret mount. one of source, target required".into()));
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err(bad("both source and id can't be set".into()));
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(bad(format!("invalid cache sharing set for {kind} mount")));
    }
    Ok(Some(m))
}

/// BuildKit's `ParseDevice`.
fn parse_device(val: &str) -> Result<Device, Error> {
    let fields = csv_fields(val).map_err(|e| bad(format!("failed to parse csv devices: {}", e.message())))?;
    let mut d = Device { name: String::new(), required: false };
    for field in fields {
        let (key, value, has_eq) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), v.to_string(), true),
            None => (field.to_lowercase(), String::new(), false),
        };
        if !has_eq {
            if key == "required" {
                d.required = true;
            } else if d.name.is_empty() {
                d.name = field;
            } else {
                return Err(bad(format!("invalid field '{field}' must be a key=value pair")));
            }
            continue;
        }
        match key.as_str() {
            "name" => {
                if !d.name.is_empty() {
                    return Err(bad(format!("device name already set to {}", d.name)));
                }
                d.name = value;
            }
            "required" => {
                d.required = parse_go_bool(&value).ok_or_else(|| bad(format!("invalid value for {key}: {value}")))?;
            }
            _ => {
                if d.name.is_empty() {
                    d.name = field;
                    continue;
                }
                return Err(bad(suggest(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    &["name", "required"],
                    true,
                )));
            }
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::parser::parse;

    fn one(src: &str) -> Result<Instruction, Error> {
        let df = parse(&format!("FROM scratch\n{src}\n")).unwrap();
        parse_instruction(&df.nodes[1])
    }

    fn err(src: &str) -> String {
        one(src).unwrap_err().to_string()
    }

    #[test]
    fn stages_and_global_args() {
        let df =
            parse("ARG V=1\nARG B\nFROM --platform=$P img:$V AS Build\nRUN x\nFROM build\nCOPY --from=build /a /b\n")
                .unwrap();
        let s = stages(&df).unwrap();
        assert_eq!(s.global_args, [("V".to_string(), Some("1".to_string())), ("B".to_string(), None)]);
        assert_eq!(s.stages.len(), 2);
        assert_eq!(s.stages[0].name.as_deref(), Some("build"));
        assert_eq!(s.stages[0].base, "img:$V");
        assert_eq!(s.stages[0].platform.as_deref(), Some("$P"));
        assert_eq!(s.stages[0].line, 3);
        assert_eq!(s.stages[1].instructions[0].start_line, 6);
        let Instruction::Copy(c) = &s.stages[1].instructions[0].instruction else {
            panic!("not a copy");
        };
        assert_eq!(c.from.as_deref(), Some("build"));
        let e = stages(&parse("RUN x\n").unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "no build stage in current context");
    }

    #[test]
    fn unknown_instruction_with_line() {
        let df = parse("FROM a\n\n\n\n\n\nRUNN x\n").unwrap();
        let e = stages(&df).unwrap_err();
        assert_eq!(e.to_string(), "dockerfile parse error on line 7: unknown instruction: RUNN (did you mean RUN?)");
        assert_eq!(e.located("Dockerfile"), "Dockerfile:7: unknown instruction: RUNN (did you mean RUN?)");
        assert_eq!(err("FOOBARBAZ x"), "dockerfile parse error on line 2: unknown instruction: FOOBARBAZ");
    }

    #[test]
    fn run_flags_and_mounts() {
        let Instruction::Run(r) = one("RUN --mount=type=cache,target=/root/.cache,sharing=locked,id=pip --mount=type=secret,id=tok,required --network=none --security=insecure pip install x").unwrap() else {
            panic!()
        };
        assert_eq!(r.cmd, ShellOrExec::Shell("pip install x".into()));
        assert_eq!(r.network, NetworkMode::None);
        assert_eq!(r.security, SecurityMode::Insecure);
        let cache = r.mounts[0].parsed.clone().unwrap();
        assert_eq!(cache.kind, MountType::Cache);
        assert_eq!(cache.target, "/root/.cache");
        assert_eq!(cache.sharing, Some(Sharing::Locked));
        assert!(!cache.read_only);
        let secret = r.mounts[1].parsed.clone().unwrap();
        assert!(secret.required && secret.read_only);
        assert_eq!(secret.id, "tok");

        let Instruction::Run(r) = one("RUN --mount=type=bind,source=$SRC,target=/x,rw true").unwrap() else { panic!() };
        assert!(r.mounts[0].parsed.is_none());
        let m = r.mounts[0].resolve(&Lexer::new('\\'), &Env::from_pairs([("SRC", "/s")])).unwrap();
        assert_eq!((m.source.as_str(), m.read_only), ("/s", false));

        let Instruction::Run(r) = one("RUN [\"echo\", \"hi\"]").unwrap() else { panic!() };
        assert_eq!(r.cmd, ShellOrExec::Exec(vec!["echo".into(), "hi".into()]));

        assert_eq!(
            err("RUN --mount=type=foo,target=/x true"),
            "dockerfile parse error on line 2: unsupported mount type \"foo\""
        );
        assert_eq!(
            err("RUN --mount=type=tmpfs,target=/x,uid=1 true"),
            "dockerfile parse error on line 2: uid not allowed for \"tmpfs\" type mounts"
        );
        assert_eq!(
            err("RUN --mount=type=secret true"),
            "dockerfile parse error on line 2: invalid secret mount. one of source, target required"
        );
        assert_eq!(
            err("RUN --mount=from=$X,target=/x true"),
            "dockerfile parse error on line 2: 'from' doesn't support variable expansion, define alias stage instead"
        );
        assert_eq!(
            err("RUN --network=bridge true"),
            "dockerfile parse error on line 2: invalid network mode \"bridge\""
        );
        assert_eq!(
            err("RUN --mont=x true"),
            "dockerfile parse error on line 2: unknown flag: --mont (did you mean mount?)"
        );
        let Instruction::Run(r) = one("RUN --mount=type=tmpfs,target=/t,size=64m true").unwrap() else { panic!() };
        assert_eq!(r.mounts[0].parsed.as_ref().unwrap().size_limit, 64 << 20);
    }

    #[test]
    fn copy_add_and_heredocs() {
        let df = parse("FROM a\nCOPY --chown=1:2 --chmod=755 --link --exclude=*.md --exclude=x <<-EOT a b /dst/\n\thello\nEOT\nADD --checksum=sha256:abc --keep-git-dir=false https://x/y /z\n").unwrap();
        let Instruction::Copy(c) = parse_instruction(&df.nodes[1]).unwrap() else { panic!() };
        assert_eq!(c.sources, ["a", "b"]);
        assert_eq!(c.dest, "/dst/");
        assert_eq!(c.chown.as_deref(), Some("1:2"));
        assert_eq!(c.chmod.as_deref(), Some("755"));
        assert!(c.link);
        assert_eq!(c.exclude, ["*.md", "x"]);
        assert_eq!(c.contents, [SourceContent { path: "EOT".into(), data: "hello\n".into(), expand: true }]);
        let Instruction::Add(a) = parse_instruction(&df.nodes[2]).unwrap() else { panic!() };
        assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
        assert_eq!(a.keep_git_dir, Some(false));
        assert_eq!(a.unpack, None);
        assert_eq!(
            err("COPY a"),
            "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        assert_eq!(
            err("COPY --link=maybe a b"),
            "dockerfile parse error on line 2: expecting boolean value for flag --link, not: maybe"
        );
        assert_eq!(err("COPY --from a b"), "dockerfile parse error on line 2: missing a value on flag: --from");
        assert_eq!(
            err("COPY --from=x --from=y a b"),
            "dockerfile parse error on line 2: duplicate flag specified: --from"
        );
    }

    #[test]
    fn env_label_arg_and_friends() {
        assert_eq!(
            one("ENV A=1 B=\"two words\"").unwrap(),
            Instruction::Env(vec![("A".into(), "1".into()), ("B".into(), "\"two words\"".into())])
        );
        assert_eq!(one("ENV A b c").unwrap(), Instruction::Env(vec![("A".into(), "b c".into())]));
        assert_eq!(err("ENV"), "dockerfile parse error on line 2: ENV requires at least one argument");
        assert_eq!(
            one("ARG a b=").unwrap(),
            Instruction::Arg(vec![("a".into(), None), ("b".into(), Some(String::new()))])
        );
        assert_eq!(err("ARG =x"), "dockerfile parse error on line 2: ARG names can not be blank");
        assert_eq!(
            one("EXPOSE 8080 443/tcp 80").unwrap(),
            Instruction::Expose(vec!["443/tcp".into(), "80".into(), "8080".into()])
        );
        assert_eq!(
            err("SHELL /bin/bash -c"),
            "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"
        );
        assert_eq!(one("WORKDIR a b").unwrap(), Instruction::Workdir("a b".into()));
        assert_eq!(err("WORKDIR"), "dockerfile parse error on line 2: WORKDIR requires exactly one argument");
        assert_eq!(one("ENTRYPOINT []").unwrap(), Instruction::Entrypoint(ShellOrExec::Exec(vec![])));
        assert_eq!(one("ONBUILD RUN echo hi").unwrap(), Instruction::OnBuild("RUN echo hi".into()));
        assert_eq!(err("ONBUILD FROM x"), "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger");
        assert_eq!(
            err("FROM a AS 1x"),
            "dockerfile parse error on line 2: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
        );
    }

    #[test]
    fn healthcheck() {
        assert_eq!(one("HEALTHCHECK NONE").unwrap(), Instruction::Healthcheck(None));
        let Instruction::Healthcheck(Some(h)) =
            one("HEALTHCHECK --interval=1m30s --timeout=1.5s --retries=3 CMD curl -f http://x/").unwrap()
        else {
            panic!()
        };
        assert_eq!(h.test, ["CMD-SHELL", "curl -f http://x/"]);
        assert_eq!(h.interval, Duration::from_secs(90));
        assert_eq!(h.timeout, Duration::from_millis(1500));
        assert_eq!(h.retries, 3);
        let Instruction::Healthcheck(Some(h)) = one("HEALTHCHECK CMD [\"true\"]").unwrap() else { panic!() };
        assert_eq!(h.test, ["CMD", "true"]);
        assert_eq!(
            err("HEALTHCHECK --interval=1us CMD x"),
            "dockerfile parse error on line 2: Interval \"interval\" cannot be less than 1ms"
        );
        assert_eq!(
            err("HEALTHCHECK --timeout=5 CMD x"),
            "dockerfile parse error on line 2: time: missing unit in duration \"5\""
        );
        assert_eq!(
            err("HEALTHCHECK --retries=-1 CMD x"),
            "dockerfile parse error on line 2: --retries cannot be negative (-1)"
        );
        assert_eq!(
            err("HEALTHCHECK FOO x"),
            "dockerfile parse error on line 2: Unknown type \"FOO\" in HEALTHCHECK (try CMD)"
        );
    }

    #[test]
    fn csv_and_sizes() {
        assert_eq!(csv_fields("a,\"b,c\",d").unwrap(), ["a", "b,c", "d"]);
        assert!(csv_fields("a\"b").is_err());
        assert_eq!(ram_in_bytes("1.5GiB"), Some(1610612736));
        assert_eq!(ram_in_bytes("1024"), Some(1024));
        assert_eq!(ram_in_bytes("x"), None);
    }
}
