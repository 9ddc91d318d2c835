//! Lowering: the frontend's typed instructions become the plan's steps. What can only be
//! lowered while the build runs (words with variables, `--mount` specs with variables,
//! ONBUILD triggers) is lowered by [`Lowerer`], the frontend's side of
//! [`crate::plan::Lowering`].

use std::sync::Arc;

use crate::Error;
use crate::executor::Network;
use crate::frontend::instructions::{self, Instruction, MountType, NetworkMode, ShellOrExec};
use crate::frontend::parser;
use crate::frontend::shell::{Env, Lexer};
use crate::plan::{Command, Lowering, Plan, RunMount, StageSteps, Step};

/// The frontend's side of [`Lowering`], for a Dockerfile with escape character `escape`.
#[derive(Debug, Clone, Copy)]
pub struct Lowerer {
    escape: char,
}

impl Lowerer {
    /// Lowers with the Dockerfile's escape character (`\\` or `` ` ``).
    pub fn new(escape: char) -> Lowerer {
        Lowerer { escape }
    }
}

fn env_of(env: &[(String, String)]) -> Env {
    Env::from_pairs(env.iter().map(|(k, v)| (k.clone(), v.clone())))
}

impl Lowering for Lowerer {
    fn expand_word(&self, word: &str, env: &[(String, String)]) -> Result<String, Error> {
        Lexer::new(self.escape).process_word(word, &env_of(env))
    }

    fn expand_heredoc(&self, data: &str, env: &[(String, String)]) -> Result<String, Error> {
        let mut lexer = Lexer::new(self.escape);
        lexer.skip_process_quotes = true;
        lexer.process_word(data, &env_of(env))
    }

    fn mount(&self, raw: &str, env: &[(String, String)]) -> Result<RunMount, Error> {
        let m = instructions::Mount::parse(raw, &mut |v| self.expand_word(v, env))?;
        Ok(run_mount(&m))
    }

    fn trigger(&self, text: &str) -> Result<Step, Error> {
        let src = if self.escape == '\\' { text.to_owned() } else { format!("# escape={}\n{text}", self.escape) };
        let df = parser::parse(&src)?;
        let node = df.nodes.first().ok_or(Error::EmptyTrigger)?;
        let ins = instructions::parse_instruction(node)?;
        if matches!(ins, Instruction::From(_) | Instruction::OnBuild(_) | Instruction::Maintainer(_)) {
            return Err(Error::TriggerNotAllowed { instruction: node.value.to_uppercase() });
        }
        lower(&ins)
    }
}

/// Parses a Dockerfile and lowers it for the solver. Errors name the file and line.
pub fn plan(text: &str, name: &str) -> Result<Plan, Error> {
    let df = parser::parse(text).map_err(|e| e.in_file(name))?;
    let st = instructions::stages(&df).map_err(|e| e.in_file(name))?;
    let mut stages = Vec::new();
    for s in &st.stages {
        let mut steps =
            vec![(s.line, s.original.clone(), Step::From { base: s.base.clone(), platform: s.platform.clone() })];
        for l in &s.instructions {
            let step = lower(&l.instruction).map_err(|e| Error::Step {
                file: name.to_owned(),
                line: l.start_line,
                instruction: l.original.clone(),
                source: Box::new(e),
            })?;
            steps.push((l.start_line, l.original.clone(), step));
        }
        stages.push(StageSteps { name: s.name.clone(), steps });
    }
    Ok(Plan { global_args: st.global_args.clone(), stages, lowering: Arc::new(Lowerer::new(df.escape)) })
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

fn run_mount(p: &instructions::Mount) -> RunMount {
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

fn lower(ins: &Instruction) -> Result<Step, Error> {
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
                NetworkMode::None => Some(Network::None),
                NetworkMode::Host => Some(Network::Host),
            };
            if let Some(d) = r.devices.first() {
                return Err(Error::CdiDevice { name: d.name.clone() });
            }
            Step::Run { cmd, mounts, network, insecure: r.security == instructions::SecurityMode::Insecure }
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
                return Err(Error::CopyUrl { url: url.clone() });
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
    use super::*;

    #[test]
    fn heredoc_content_expands_variables_and_keeps_quotes() {
        let env = [("name".to_owned(), "world".to_owned())];
        let out = Lowerer::new('\\').expand_heredoc("hello ${name}\n\"quoted $name\" 'single'\n", &env).unwrap();
        assert_eq!(out, "hello world\n\"quoted world\" 'single'\n");
    }

    #[test]
    fn parse_errors_keep_the_file_and_line() {
        let e = plan("FROM busybox\nRUNN echo hi\n", "train.dockerfile").unwrap_err();
        assert!(matches!(&e, Error::Dockerfile { file, source } if file == "train.dockerfile"
            && matches!(**source, Error::Instruction { start_line: 2, .. })));
        assert_eq!(e.location(), Some(("train.dockerfile", 2)));
        assert!(e.to_string().starts_with("train.dockerfile:2: unknown instruction: RUNN"), "{e}");
        let e = plan("FROM busybox\nRUN <<EOF\nno end\n", "Dockerfile").unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:2: unterminated heredoc");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn lowering_errors_name_the_instruction() {
        let e = plan("FROM busybox\n\nCOPY https://h/x /x\n", "Dockerfile").unwrap_err();
        assert!(matches!(&e, Error::Step { line: 3, source, .. } if matches!(**source, Error::CopyUrl { .. })));
        assert_eq!(
            e.to_string(),
            "Dockerfile:3: COPY https://h/x /x: source can't be a URL for COPY: https://h/x (ADD downloads URLs)"
        );
    }

    #[test]
    fn the_plan_has_stages_and_steps_in_file_order() {
        let p =
            plan("ARG B=busybox\nFROM $B AS build\nRUN make\nFROM scratch\nCOPY --from=build /a /a\n", "D").unwrap();
        assert_eq!(p.global_args, vec![("B".to_owned(), Some("busybox".to_owned()))]);
        assert_eq!(p.stages.len(), 2);
        assert!(matches!(&p.stages[0].steps[0], (2, _, Step::From { base, .. }) if base == "$B"));
        assert!(matches!(&p.stages[1].steps[1], (5, _, Step::Copy { from: Some(f), .. }) if f == "build"));
        assert_eq!(p.stage_index("BUILD"), Some(0));
        assert_eq!(p.stage_index("1"), Some(1));
        assert_eq!(p.stage_index("2"), None);
    }

    #[test]
    fn deferred_mounts_and_triggers_are_lowered_on_demand() {
        let l = Lowerer::new('\\');
        let env = [("T".to_owned(), "/cache".to_owned())];
        assert!(
            matches!(l.mount("type=cache,target=$T", &env).unwrap(), RunMount::Cache { target, .. } if target == "/cache")
        );
        assert!(matches!(l.trigger("RUN make").unwrap(), Step::Run { .. }));
        assert_eq!(l.trigger("FROM x").unwrap_err().to_string(), "FROM isn't allowed as an ONBUILD trigger");
        assert!(
            l.trigger("RUNN x")
                .unwrap_err()
                .to_string()
                .starts_with("dockerfile parse error on line 1: unknown instruction")
        );
        let tick = Lowerer::new('`');
        assert_eq!(tick.expand_word("a`$b", &[]).unwrap(), "a$b");
    }
}
