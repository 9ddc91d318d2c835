//! Joins the builder's parts: lowers the parser's typed instructions into the solver's
//! steps, and adapts the context and copy modules to the solver's [`SourceRoot`] view.

use std::path::Path;

use berth_base::Digest;

use crate::context::Context;
use crate::instructions::{self, Instruction, MountType, NetworkMode, ShellOrExec};
use crate::shell::{Env, Lexer};
use crate::solver::{Command, Plan, RunMount, SourceRoot, StageSteps, Step};

/// A resolved COPY source.
pub type Source = crate::copy::Source;

impl SourceRoot for Context {
    fn resolve(&self, patterns: &[String], exclude: &[String]) -> Result<(Vec<Source>, Digest), String> {
        let sources = crate::copy::resolve_sources_excluding(self, patterns, exclude).map_err(|e| e.to_string())?;
        let digest = crate::copy::hash_sources(&sources).map_err(|e| e.to_string())?;
        Ok((sources, digest))
    }

    fn path(&self) -> &Path {
        &self.root
    }
}

/// A stage's or image's root for `COPY --from`.
pub struct DirRoot(Context);

impl DirRoot {
    /// Wraps a mounted root.
    pub fn new(root: &Path) -> DirRoot {
        DirRoot(Context::stage(root))
    }
}

impl SourceRoot for DirRoot {
    fn resolve(&self, patterns: &[String], exclude: &[String]) -> Result<(Vec<Source>, Digest), String> {
        self.0.resolve(patterns, exclude)
    }

    fn path(&self) -> &Path {
        &self.0.root
    }
}

/// Expands one word with BuildKit's rules and the given escape character.
pub fn expand_word(escape: char, word: &str, env: &[(String, String)]) -> Result<String, String> {
    let env = Env::from_pairs(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Lexer::new(escape).process_word(word, &env).map_err(|e| e.to_string())
}

/// Expands variables in a COPY/ADD heredoc's content, leaving its quotes as they are
/// (BuildKit's lexer with quote processing skipped).
pub fn expand_heredoc(escape: char, data: &str, env: &[(String, String)]) -> Result<String, String> {
    let env = Env::from_pairs(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut lexer = Lexer::new(escape);
    lexer.skip_process_quotes = true;
    lexer.process_word(data, &env).map_err(|e| e.to_string())
}

/// Resolves `--chown` against the image's /etc/passwd and /etc/group.
pub fn resolve_owner(rootfs: &Path, spec: &str) -> Result<(u32, u32), String> {
    crate::copy::resolve_owner(rootfs, spec).map_err(|e| e.to_string())
}

/// Writes `COPY <<EOF` heredoc files.
pub fn write_heredocs(
    heredocs: &[(String, String)],
    dest: &str,
    workdir: &str,
    rootfs: &Path,
    owner: Option<(u32, u32)>,
    chmod: Option<u32>,
) -> Result<(), String> {
    let into_dir = dest.ends_with('/') || heredocs.len() > 1;
    for (name, content) in heredocs {
        let path = if into_dir { format!("{}/{name}", dest.trim_end_matches('/')) } else { dest.to_owned() };
        crate::copy::write_file(
            rootfs,
            &path,
            workdir,
            content.as_bytes(),
            chmod.unwrap_or(0o644),
            owner.unwrap_or((0, 0)),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Copies resolved sources into `rootfs`.
pub fn copy_sources(
    sources: &[Source],
    dest: &str,
    workdir: &str,
    rootfs: &Path,
    opts: crate::copy::CopyOpts,
) -> Result<(), String> {
    crate::copy::copy_into(sources, dest, workdir, rootfs, opts).map_err(|e| e.to_string())
}

/// Opens a context directory on this machine and reads its Dockerfile (`dockerfile`
/// relative to the context, or absolute). Returns the context, the Dockerfile's text and
/// its name for messages.
pub fn open_context(root: &Path, dockerfile: &str) -> Result<(Context, String, String), String> {
    let ctx = Context::from_dir(root, Path::new(dockerfile)).map_err(|e| format!("unable to prepare context: {e}"))?;
    let text = read_dockerfile(&ctx, dockerfile)?;
    Ok((ctx, text, dockerfile_name(dockerfile)))
}

/// Unpacks an uploaded context under `work_dir` and reads its Dockerfile.
pub fn open_tar_context(
    reader: &mut (dyn std::io::Read + Send),
    work_dir: &Path,
    dockerfile: &str,
) -> Result<(Context, String, String), String> {
    let ctx = Context::from_tar(reader, work_dir, dockerfile).map_err(|e| format!("unable to prepare context: {e}"))?;
    let text = read_dockerfile(&ctx, dockerfile)?;
    Ok((ctx, text, dockerfile_name(dockerfile)))
}

fn dockerfile_name(dockerfile: &str) -> String {
    Path::new(dockerfile).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "Dockerfile".into())
}

fn read_dockerfile(ctx: &Context, dockerfile: &str) -> Result<String, String> {
    let missing = || format!("Cannot locate specified Dockerfile: {dockerfile}");
    let bytes = if Path::new(dockerfile).is_absolute() {
        std::fs::read(dockerfile).map_err(|_| missing())?
    } else {
        berth_base::fsroot::read_in_root(&ctx.root, dockerfile).map_err(|_| missing())?
    };
    String::from_utf8(bytes).map_err(|_| format!("{dockerfile} is not valid UTF-8"))
}

/// Parses a Dockerfile and lowers it for the solver. Errors name the file and line.
pub fn plan(text: &str, name: &str) -> Result<Plan, String> {
    let df = crate::parser::parse(text).map_err(|e| e.located(name))?;
    let st = instructions::stages(&df).map_err(|e| e.located(name))?;
    let mut stages = Vec::new();
    for s in &st.stages {
        let mut steps =
            vec![(s.line, s.original.clone(), Step::From { base: s.base.clone(), platform: s.platform.clone() })];
        for l in &s.instructions {
            let step = lower(&l.instruction).map_err(|m| format!("{name}:{}: {}: {m}", l.start_line, l.original))?;
            steps.push((l.start_line, l.original.clone(), step));
        }
        stages.push(StageSteps { name: s.name.clone(), steps });
    }
    Ok(Plan { global_args: st.global_args.clone(), stages, escape: df.escape })
}

/// A stage by name (case-insensitively) or index, as `FROM` and `COPY --from` name them.
pub fn stage_index(plan: &Plan, name: &str) -> Option<usize> {
    if let Some(i) = plan.stages.iter().position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name))) {
        return Some(i);
    }
    name.parse::<usize>().ok().filter(|i| *i < plan.stages.len())
}

fn command(c: &ShellOrExec) -> Command {
    match c {
        ShellOrExec::Shell(s) => Command::Shell(s.clone()),
        ShellOrExec::Exec(v) => Command::Exec(v.clone()),
    }
}

fn nanos(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn run_mount(p: &crate::instructions::Mount) -> RunMount {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    match p.kind {
        MountType::Cache => RunMount::Cache { target: p.target.clone(), id: opt(&p.id) },
        MountType::Secret => RunMount::Secret { id: p.id.clone(), target: opt(&p.target), required: p.required },
        MountType::Bind => {
            RunMount::Bind { from: opt(&p.from), source: p.source.clone(), target: p.target.clone(), rw: !p.read_only }
        }
        MountType::Tmpfs => RunMount::Tmpfs { target: p.target.clone(), size: p.size_limit },
        MountType::Ssh => RunMount::Ssh {
            id: if p.id.is_empty() { "default".into() } else { p.id.clone() },
            target: opt(&p.target),
            required: p.required,
        },
    }
}

/// A `--mount` spec that uses variables, expanded in the step's variables and lowered.
pub fn lower_mount_spec(raw: &str, escape: char, env: &[(String, String)]) -> Result<RunMount, String> {
    let m = crate::instructions::Mount::parse(raw, &mut |v| expand_word(escape, v, env))?;
    Ok(run_mount(&m))
}

/// Parses and lowers one ONBUILD trigger (`RUN make`), as the child build runs it.
pub fn lower_trigger(text: &str, escape: char) -> Result<Step, String> {
    let src = if escape == '\\' { text.to_owned() } else { format!("# escape={escape}\n{text}") };
    let df = crate::parser::parse(&src).map_err(|e| e.to_string())?;
    let node = df.nodes.first().ok_or("empty trigger")?;
    let ins = instructions::parse_instruction(node).map_err(|e| e.to_string())?;
    if matches!(ins, Instruction::From(_) | Instruction::OnBuild(_) | Instruction::Maintainer(_)) {
        return Err(format!("{} isn't allowed as an ONBUILD trigger", node.value.to_uppercase()));
    }
    lower(&ins)
}

fn lower(ins: &Instruction) -> Result<Step, String> {
    Ok(match ins {
        Instruction::From(f) => Step::From { base: f.image.clone(), platform: f.platform.clone() },
        Instruction::Run(r) => {
            let cmd = match (&r.cmd, r.heredocs.as_slice()) {
                (ShellOrExec::Shell(s), [only]) if s.trim_start().starts_with("<<") => {
                    Command::Shell(only.content.clone())
                }
                (ShellOrExec::Shell(s), docs) if !docs.is_empty() => {
                    // The shell understands heredocs itself: hand it the whole script.
                    let mut script = s.clone();
                    for d in docs {
                        script.push('\n');
                        script.push_str(&d.content);
                        if !d.content.ends_with('\n') {
                            script.push('\n');
                        }
                        script.push_str(&d.name);
                    }
                    Command::Shell(script)
                }
                (c, _) => command(c),
            };
            let mut mounts = Vec::new();
            for m in &r.mounts {
                mounts.push(match &m.parsed {
                    Some(p) => run_mount(p),
                    None => RunMount::Deferred(m.raw.clone()),
                });
            }
            let network = match r.network {
                NetworkMode::Default => None,
                NetworkMode::None => Some(crate::executor::Network::None),
                NetworkMode::Host => Some(crate::executor::Network::Host),
            };
            if let Some(d) = r.devices.first() {
                return Err(format!("RUN --device={} needs CDI devices, which berth does not support", d.name));
            }
            Step::Run { cmd, mounts, network, insecure: r.security == crate::instructions::SecurityMode::Insecure }
        }
        Instruction::Cmd(c) => Step::Cmd(command(c)),
        Instruction::Entrypoint(c) => Step::Entrypoint(command(c)),
        Instruction::Shell(v) => Step::Shell(v.clone()),
        Instruction::Env(kv) => Step::Env(kv.clone()),
        Instruction::Label(kv) => Step::Label(kv.clone()),
        Instruction::Expose(p) => Step::Expose(p.clone()),
        Instruction::Arg(a) => Step::Arg(a.clone()),
        Instruction::Workdir(w) => Step::Workdir(w.clone()),
        Instruction::User(u) => Step::User(u.clone()),
        Instruction::Volume(v) => Step::Volume(v.clone()),
        Instruction::StopSignal(s) => Step::StopSignal(s.clone()),
        Instruction::Healthcheck(h) => Step::Healthcheck(h.as_ref().map(|h| berth_image::HealthConfig {
            test: h.test.clone(),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            start_period: nanos(h.start_period),
            start_interval: nanos(h.start_interval),
            retries: i64::from(h.retries),
        })),
        Instruction::OnBuild(s) => Step::OnBuild(s.clone()),
        Instruction::Maintainer(m) => Step::Maintainer(m.clone()),
        Instruction::Copy(c) => {
            if let Some(url) = c.sources.iter().find(|s| s.starts_with("http://") || s.starts_with("https://")) {
                return Err(format!("source can't be a URL for COPY: {url} (ADD downloads URLs)"));
            }
            Step::Copy {
                add: false,
                sources: c.sources.clone(),
                dest: c.dest.clone(),
                from: c.from.clone(),
                chown: c.chown.clone(),
                chmod: c.chmod.clone(),
                heredocs: c.contents.iter().map(|h| (h.path.clone(), h.data.clone(), h.expand)).collect(),
                checksum: None,
                keep_git_dir: false,
                // `--link` only changes how BuildKit stacks the layer; the files are the same.
                parents: c.parents,
                exclude: c.exclude.clone(),
            }
        }
        Instruction::Add(a) => Step::Copy {
            add: true,
            sources: a.sources.clone(),
            dest: a.dest.clone(),
            from: None,
            chown: a.chown.clone(),
            chmod: a.chmod.clone(),
            heredocs: a.contents.iter().map(|h| (h.path.clone(), h.data.clone(), h.expand)).collect(),
            checksum: a.checksum.clone(),
            keep_git_dir: a.keep_git_dir.unwrap_or(false),
            parents: false,
            exclude: a.exclude.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn heredoc_content_expands_variables_and_keeps_quotes() {
        let env = [("name".to_owned(), "world".to_owned())];
        let out = super::expand_heredoc('\\', "hello ${name}\n\"quoted $name\" 'single'\n", &env).unwrap();
        assert_eq!(out, "hello world\n\"quoted world\" 'single'\n");
    }
}
