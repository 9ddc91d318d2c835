//! The build engine: runs a parsed Dockerfile's stages into layers and an image config.
//! Every instruction's result is cached under a key chained from its parent's key, the
//! instruction after expansion, the build args RUN sees and, for COPY/ADD, a digest of the
//! copied files' content and metadata, so an unchanged step is reused at once and a
//! rebuild with no change yields the very same image id. Stages that do not depend on
//! each other build at the same time, each on its own thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use berth_base::{Digest, Reference};
use berth_image::{ConfigExtras, HealthConfig, Image, ImageStore, Layer};
use oci_spec::image::{Config, HistoryBuilder, ImageConfiguration};
use sha2::Digest as _;

use crate::Error;
use crate::cache::{BuildCache, CachedState};
use crate::executor::{Fetcher, Network, OutputStream, RunSpec, StepExecutor, StepMount};

/// What a build was asked for.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Its name for messages (`Dockerfile`, `train.dockerfile`).
    pub dockerfile_name: String,
    /// Tags for the result.
    pub tags: Vec<Reference>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--label`s for the result.
    pub labels: BTreeMap<String, String>,
    /// Network for RUN steps.
    pub network: Option<Network>,
    /// `--secret id=…,src=…`: id → host file.
    pub secrets: BTreeMap<String, PathBuf>,
    /// `--ssh id=socket`: id → the client's SSH agent socket.
    pub ssh: BTreeMap<String, PathBuf>,
    /// `--platform`: the target platform (`linux/arm64`); the host's when None.
    pub platform: Option<String>,
    /// `--no-cache-filter`: stages (by name or index) whose steps ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `--allow` entitlements (`security.insecure`).
    pub allow: Vec<String>,
    /// `--shm-size` for RUN steps, in bytes (0: the default).
    pub shm_size: u64,
    /// `--add-host` entries (`name:address`) for RUN steps.
    pub extra_hosts: Vec<String>,
}

/// Progress of a build: something happened to step `index` (1-based over the steps of the
/// stages being built, numbered in file order). Steps of independent stages run at the
/// same time, so events of different steps interleave.
#[derive(Debug, Clone)]
pub struct Event {
    /// The step.
    pub index: usize,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a step.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// The step begins.
    Step {
        /// Steps in all.
        total: usize,
        /// The stage's name (`AS name`), if any.
        stage: Option<String>,
        /// `RUN pip install …`, as written.
        text: String,
    },
    /// The step's result came from the cache.
    Cached,
    /// Output of a RUN step.
    Output(OutputStream, Vec<u8>),
    /// The step finished.
    StepDone {
        /// How long it took.
        seconds: f64,
    },
    /// The step failed (the build's error says why).
    Failed,
}

/// A step as the solver runs it, lowered from the parser's typed instructions.
#[derive(Debug, Clone)]
pub enum Step {
    /// `FROM [--platform=p] image [AS name]` (unexpanded).
    From {
        /// Base image or stage name.
        base: String,
        /// `--platform`.
        platform: Option<String>,
    },
    /// `RUN`.
    Run {
        /// Shell form text, or exec form argv.
        cmd: Command,
        /// `--mount` specs.
        mounts: Vec<RunMount>,
        /// `--network`.
        network: Option<Network>,
        /// `--security=insecure`.
        insecure: bool,
    },
    /// `COPY`/`ADD`.
    Copy {
        /// ADD rather than COPY.
        add: bool,
        /// Sources (unexpanded).
        sources: Vec<String>,
        /// Destination (unexpanded).
        dest: String,
        /// `--from`.
        from: Option<String>,
        /// `--chown`.
        chown: Option<String>,
        /// `--chmod` (octal text).
        chmod: Option<String>,
        /// Inline heredoc files: (name, content, whether variables in it are expanded:
        /// the delimiter was not quoted).
        heredocs: Vec<(String, String, bool)>,
        /// `ADD --checksum` (sha256 digest of a URL's body, or a git commit).
        checksum: Option<String>,
        /// `ADD --keep-git-dir`.
        keep_git_dir: bool,
        /// `COPY --parents`.
        parents: bool,
        /// `--exclude` patterns (unexpanded).
        exclude: Vec<String>,
    },
    /// `WORKDIR`.
    Workdir(String),
    /// `ENV`.
    Env(Vec<(String, String)>),
    /// `LABEL`.
    Label(Vec<(String, String)>),
    /// `EXPOSE`.
    Expose(Vec<String>),
    /// `USER`.
    User(String),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL`.
    Shell(Vec<String>),
    /// `ARG name[=default]`.
    Arg(Vec<(String, Option<String>)>),
    /// `ONBUILD` (recorded in the config).
    OnBuild(String),
    /// `MAINTAINER`.
    Maintainer(String),
    /// `HEALTHCHECK` (None for `HEALTHCHECK NONE`).
    Healthcheck(Option<HealthConfig>),
}

/// Shell or exec form.
#[derive(Debug, Clone)]
pub enum Command {
    /// `RUN echo hi`.
    Shell(String),
    /// `RUN ["echo", "hi"]`.
    Exec(Vec<String>),
}

/// A `RUN --mount`.
#[derive(Debug, Clone)]
pub enum RunMount {
    /// `type=cache,target=…[,id=…]`.
    Cache {
        /// Mount point.
        target: String,
        /// Cache id (defaults to the target).
        id: Option<String>,
    },
    /// `type=secret,id=…[,target=…]`.
    Secret {
        /// Secret id.
        id: String,
        /// Mount point (default /run/secrets/<id>).
        target: Option<String>,
        /// Fail when the secret was not given.
        required: bool,
    },
    /// `type=bind[,from=…],source=…,target=…[,rw]`.
    Bind {
        /// Stage or image, or the context when None.
        from: Option<String>,
        /// Path in the source.
        source: String,
        /// Mount point.
        target: String,
        /// Writable (changes are discarded).
        rw: bool,
    },
    /// `type=tmpfs,target=…[,size=…]`.
    Tmpfs {
        /// Mount point.
        target: String,
        /// `size=` in bytes (0: the kernel's default).
        size: i64,
    },
    /// `type=ssh[,id=…][,target=…]`: the client's SSH agent socket.
    Ssh {
        /// Which forwarded agent (`default` when not given).
        id: String,
        /// Mount point (default `/run/buildkit/ssh_agent.<n>`).
        target: Option<String>,
        /// Fail when the build was given no such agent.
        required: bool,
    },
    /// A spec that uses variables, parsed once the step's variables are known.
    Deferred(String),
}

/// One stage, lowered.
#[derive(Debug, Clone)]
pub struct StageSteps {
    /// `AS name`.
    pub name: Option<String>,
    /// Steps with their 1-based line and original text; the first is `From`.
    pub steps: Vec<(usize, String, Step)>,
}

/// A parsed Dockerfile, lowered for the solver.
#[derive(Debug, Clone)]
pub struct Plan {
    /// ARGs before the first FROM.
    pub global_args: Vec<(String, Option<String>)>,
    /// Stages in file order.
    pub stages: Vec<StageSteps>,
    /// The Dockerfile's escape character.
    pub escape: char,
}

#[derive(Clone)]
struct State {
    layers: Vec<Layer>,
    config: ImageConfiguration,
    key: Digest,
    /// ARGs declared in this stage, with their values.
    args: Vec<(String, String)>,
    /// Healthcheck, SHELL and ONBUILD triggers (the OCI config has no fields for them).
    extras: ConfigExtras,
}

impl State {
    fn shell(&self) -> Vec<String> {
        self.extras.shell.clone().filter(|s| !s.is_empty()).unwrap_or_else(default_shell)
    }
}

fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// Runs builds.
pub struct Solver<'a> {
    /// Layers and the result go here.
    pub images: &'a ImageStore,
    /// Step results.
    pub cache: &'a BuildCache,
    /// Runs RUN steps.
    pub exec: &'a dyn StepExecutor,
    /// Downloads `ADD <url>` sources.
    pub fetch: &'a dyn Fetcher,
    /// Scratch space for step roots (`data_root/builder`).
    pub work_root: PathBuf,
    /// Where `RUN --mount=type=cache` directories live.
    pub cache_mounts: PathBuf,
    /// Set to stop the build; the solver sets it too when a stage fails, to stop the
    /// stages running beside it.
    pub cancel: &'a AtomicBool,
    /// Serialises mounting stage roots for `COPY --from` (stages run concurrently).
    pub from_roots: Mutex<()>,
}

/// Files a COPY reads: the build context, or a stage's or image's root.
pub trait SourceRoot: Sync {
    /// Resolves patterns to sources, leaving out what `exclude` matches, and hashes them
    /// for the cache key.
    fn resolve(&self, patterns: &[String], exclude: &[String]) -> Result<(Vec<crate::glue::Source>, Digest), String>;
    /// Host path of the root (for bind mounts).
    fn path(&self) -> &Path;
}

/// Finds a stage by name or index, as `FROM`, `COPY --from` and `--mount from=` name them.
pub type StageLookup = dyn Fn(&Plan, &str) -> Option<usize> + Sync;

/// What every stage of one build reads.
struct Ctx<'a> {
    plan: &'a Plan,
    req: &'a BuildRequest,
    /// Global ARGs with their values.
    global: &'a [(String, String)],
    /// The automatic platform ARGs (`TARGETARCH`…).
    auto: &'a [(String, String)],
    platforms: &'a Platforms,
    context: &'a dyn SourceRoot,
    lower: &'a StageLookup,
    events: &'a (dyn Fn(Event) + Sync),
}

impl Ctx<'_> {
    /// The variables a FROM line sees: global ARGs, then the automatic platform ones.
    fn scope_of_from(&self) -> Vec<(String, String)> {
        let mut v = self.global.to_vec();
        for (k, x) in self.auto {
            if !v.iter().any(|(g, _)| g == k) {
                v.push((k.clone(), x.clone()));
            }
        }
        v
    }
}

/// The stages `target` needs, dependencies first.
fn needed_stages(deps: &[Vec<usize>], target: usize) -> Vec<usize> {
    fn visit(deps: &[Vec<usize>], i: usize, order: &mut Vec<usize>) {
        if order.contains(&i) {
            return;
        }
        for &d in &deps[i] {
            visit(deps, d, order);
        }
        order.push(i);
    }
    let mut order = Vec::new();
    visit(deps, target, &mut order);
    order
}

/// An OCI platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`…
    pub arch: String,
    /// `v7`, `v8`… when given.
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// The machine berth runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), arch: arch.into(), variant: None }
    }

    /// Parses `linux/amd64`, `linux/arm/v7`, `arm64` (the host's OS), normalising the
    /// names containerd normalises (`x86_64`, `aarch64`, `arm64/v8`).
    pub fn parse(s: &str) -> Result<Platform, String> {
        let bad = || format!("failed to parse platform {s:?}: expected os/arch[/variant]");
        let parts: Vec<String> = s.trim().split('/').map(|p| p.to_ascii_lowercase()).collect();
        if parts.iter().any(String::is_empty) {
            return Err(bad());
        }
        let known_os = |o: &str| matches!(o, "linux" | "windows" | "darwin" | "freebsd");
        let (os, arch, variant) = match parts.as_slice() {
            [a] if !known_os(a) => (Platform::host().os, a.clone(), None),
            [o] => (o.clone(), Platform::host().arch, None),
            [o, a] if known_os(o) => (o.clone(), a.clone(), None),
            [a, v] => (Platform::host().os, a.clone(), Some(v.clone())),
            [o, a, v] => (o.clone(), a.clone(), Some(v.clone())),
            _ => return Err(bad()),
        };
        let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_owned(), v.filter(|v| *v != "v1").map(str::to_owned)),
            ("aarch64" | "arm64", Some("v8") | None) => ("arm64".to_owned(), None),
            ("i386" | "386", _) => ("386".to_owned(), None),
            (a, v) => (a.to_owned(), v.map(str::to_owned)),
        };
        Ok(Platform { os, arch, variant })
    }

    /// The platform an image config declares.
    pub fn of_image(c: &ImageConfiguration) -> Platform {
        let p = format!("{}/{}", c.os(), c.architecture());
        let mut out = Platform::parse(&p).unwrap_or_else(|_| Platform::host());
        out.variant = c.variant().clone().filter(|v| !v.is_empty());
        if out.arch == "arm64" && out.variant.as_deref() == Some("v8") {
            out.variant = None;
        }
        out
    }

    /// Whether an image of platform `have` satisfies this wanted platform (a wanted
    /// variant must match; none wanted accepts any).
    pub fn matches(&self, have: &Platform) -> bool {
        self.os == have.os && self.arch == have.arch && (self.variant.is_none() || self.variant == have.variant)
    }
}

/// The build's platforms: where it runs and what it is for.
struct Platforms {
    build: Platform,
    target: Platform,
}

impl Platforms {
    fn new(target: Option<&str>) -> Result<Platforms, String> {
        let build = Platform::host();
        let target = match target.filter(|t| !t.is_empty()) {
            Some(t) => Platform::parse(t)?,
            None => build.clone(),
        };
        Ok(Platforms { build, target })
    }

    /// BuildKit's automatic ARGs (`BUILDPLATFORM`, `TARGETARCH`…): usable in FROM lines
    /// at once, and in a stage after `ARG NAME`.
    fn args(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (prefix, p) in [("BUILD", &self.build), ("TARGET", &self.target)] {
            v.push((format!("{prefix}PLATFORM"), p.to_string()));
            v.push((format!("{prefix}OS"), p.os.clone()));
            v.push((format!("{prefix}ARCH"), p.arch.clone()));
            v.push((format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default()));
        }
        v
    }
}

/// Build args every RUN sees without an `ARG` line, and that never enter the cache key
/// or the history (Docker's predefined proxy args).
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

fn chain(parent: &Digest, parts: &[&str]) -> Digest {
    let mut h = sha2::Sha256::new();
    h.update(parent.to_string().as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    Digest::from_hasher(h)
}

fn default_config() -> ImageConfiguration {
    let mut c = ImageConfiguration::default();
    c.set_config(Some(Config::default()));
    c
}

impl Solver<'_> {
    /// Builds `plan` from `context` and records the image with the request's tags.
    pub fn build(
        &self,
        plan: &Plan,
        req: &BuildRequest,
        context: &dyn SourceRoot,
        lower: &StageLookup,
        events: &(dyn Fn(Event) + Sync),
    ) -> Result<Image, Error> {
        let target = match &req.target {
            Some(t) => plan
                .stages
                .iter()
                .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| Error::Parse(format!("failed to reach build target {t} in Dockerfile")))?,
            None => plan.stages.len().checked_sub(1).ok_or_else(|| Error::Parse("file with no instructions".into()))?,
        };
        let platforms = Platforms::new(req.platform.as_deref()).map_err(Error::Parse)?;
        let auto = platforms.args();
        // Global ARGs see the automatic platform args; FROM lines see both.
        let mut global: Vec<(String, String)> = Vec::new();
        for (k, d) in &plan.global_args {
            let scope: Vec<(String, String)> = global.iter().chain(auto.iter()).cloned().collect();
            let v = match (req.build_args.get(k), d) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(expand_simple(plan.escape, d, &scope)),
                (None, None) => auto.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()),
            };
            if let Some(v) = v {
                global.retain(|(x, _)| x != k);
                global.push((k.clone(), v));
            }
        }
        let ctx = Ctx { plan, req, global: &global, auto: &auto, platforms: &platforms, context, lower, events };
        let deps: Vec<Vec<usize>> = (0..plan.stages.len()).map(|i| self.stage_deps(&ctx, i)).collect();
        let needed = needed_stages(&deps, target);
        let total: usize = needed.iter().map(|i| plan.stages[*i].steps.len()).sum();
        let mut first_index = BTreeMap::new();
        let mut n = 0;
        for &i in &needed {
            first_index.insert(i, n);
            n += plan.stages[i].steps.len();
        }
        let mut done: BTreeMap<usize, State> = BTreeMap::new();
        let mut failure: Option<Error> = None;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<State, Error>)>();
            let mut pending = needed.clone();
            let mut running = 0usize;
            loop {
                if failure.is_none() {
                    let ready: Vec<usize> =
                        pending.iter().copied().filter(|i| deps[*i].iter().all(|d| done.contains_key(d))).collect();
                    for i in ready {
                        pending.retain(|p| *p != i);
                        let inputs: BTreeMap<usize, State> =
                            deps[i].iter().filter_map(|d| done.get(d).map(|s| (*d, s.clone()))).collect();
                        let tx = tx.clone();
                        let ctx = &ctx;
                        let base = first_index[&i];
                        running += 1;
                        scope.spawn(move || {
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                self.build_stage(ctx, i, &inputs, base, total)
                            }))
                            .unwrap_or_else(|_| Err(Error::Parse("a build stage panicked".into())));
                            let _ = tx.send((i, r));
                        });
                    }
                }
                if running == 0 {
                    break;
                }
                let Ok((i, r)) = rx.recv() else { break };
                running -= 1;
                match r {
                    Ok(st) => {
                        done.insert(i, st);
                    }
                    Err(e) => {
                        // The first real failure wins; the stages stopped because of it
                        // report Cancelled.
                        if failure.as_ref().is_none_or(|f| matches!(f, Error::Cancelled)) {
                            failure = Some(e);
                        }
                        self.cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let mut state = done.remove(&target).ok_or_else(|| Error::Parse("target stage was not built".into()))?;
        if !req.labels.is_empty() {
            let mut cfg = state.config.config().clone().unwrap_or_default();
            let mut l = cfg.labels().clone().unwrap_or_default();
            l.extend(req.labels.clone());
            cfg.set_labels(Some(l));
            state.config.set_config(Some(cfg));
        }
        state.config.rootfs_mut().set_diff_ids(Vec::new());
        Ok(self.images.create_image(state.config, &state.extras, &state.layers, &req.tags)?)
    }

    /// The earlier stages stage `i` reads: its FROM, `COPY --from`, `RUN --mount from=`.
    fn stage_deps(&self, ctx: &Ctx<'_>, i: usize) -> Vec<usize> {
        let plan = ctx.plan;
        let mut out = Vec::new();
        for (_, _, step) in &plan.stages[i].steps {
            let names: Vec<String> = match step {
                Step::From { base, .. } => vec![expand_simple(plan.escape, base, &ctx.scope_of_from())],
                Step::Copy { from: Some(f), .. } => vec![f.clone()],
                Step::Run { mounts, .. } => mounts
                    .iter()
                    .filter_map(|m| match m {
                        RunMount::Bind { from: Some(f), .. } => Some(f.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for n in names {
                if let Some(d) = (ctx.lower)(plan, &n).filter(|d| *d < i)
                    && !out.contains(&d)
                {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Builds stage `i` from the states of the stages it depends on (`inputs`).
    fn build_stage(
        &self,
        ctx: &Ctx<'_>,
        i: usize,
        inputs: &BTreeMap<usize, State>,
        first_index: usize,
        total: usize,
    ) -> Result<State, Error> {
        let (plan, req) = (ctx.plan, ctx.req);
        let stage = &plan.stages[i];
        let no_cache = req.no_cache
            || req.no_cache_filter.iter().any(|f| {
                stage.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(f)) || f.parse::<usize>() == Ok(i)
            });
        let mut state: Option<State> = None;
        for (n, (line, text, step)) in stage.steps.iter().enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let index = first_index + n + 1;
            let emit = |kind: EventKind| (ctx.events)(Event { index, kind });
            emit(EventKind::Step { total, stage: stage.name.clone(), text: text.clone() });
            let started = Instant::now();
            let fail = |message: String| Error::Step {
                file: req.dockerfile_name.clone(),
                line: *line,
                instruction: text.clone(),
                message,
            };
            let result = (|| -> Result<(), Error> {
                if let Step::From { base, platform } = step {
                    let scope = ctx.scope_of_from();
                    let base = expand_simple(plan.escape, base, &scope);
                    let platform = match platform {
                        Some(p) => Some(Platform::parse(&expand_simple(plan.escape, p, &scope)).map_err(fail)?),
                        None => None,
                    };
                    let want = platform.as_ref().unwrap_or(&ctx.platforms.target);
                    let st = if let Some(d) = (ctx.lower)(plan, &base).filter(|d| *d < i) {
                        let mut s =
                            inputs.get(&d).cloned().ok_or_else(|| fail(format!("stage {base} was not built")))?;
                        s.args.clear();
                        s
                    } else if base == "scratch" {
                        let mut config = default_config();
                        config.set_architecture(want.arch.as_str().into());
                        config.set_os(want.os.as_str().into());
                        if let Some(v) = &want.variant {
                            config.set_variant(Some(v.clone()));
                        }
                        State {
                            layers: Vec::new(),
                            config,
                            key: chain(&Digest::of(b"scratch"), &[&want.to_string()]),
                            args: Vec::new(),
                            extras: ConfigExtras::default(),
                        }
                    } else {
                        let img = self.images.resolve(&base).map_err(|e| {
                            fail(format!("failed to resolve base image {base}: {e} (berth cannot pull images yet: import or build it first)"))
                        })?;
                        let have = Platform::of_image(&img.config);
                        if !want.matches(&have) {
                            return Err(fail(format!(
                                "image with reference {base} was found but does not match the specified platform: wanted {want}, actual: {have}"
                            )));
                        }
                        let layers = self.images.image_layers(&img.id).map_err(|e| fail(e.to_string()))?;
                        State {
                            layers,
                            config: img.config.clone(),
                            key: chain(&img.id, &["FROM"]),
                            args: Vec::new(),
                            extras: img.extras.clone(),
                        }
                    };
                    let mut st = st;
                    ensure_default_path(&mut st.config);
                    // The base's ONBUILD triggers run now, as the first steps of this stage, and
                    // are not passed on to this image.
                    if let Some(triggers) = st.extras.on_build.take() {
                        for t in &triggers {
                            let tstep = crate::glue::lower_trigger(t, plan.escape)
                                .map_err(|m| fail(format!("ONBUILD trigger {t:?}: {m}")))?;
                            let quiet = |k: EventKind| {
                                if let EventKind::Output(..) = k {
                                    emit(k)
                                }
                            };
                            self.step(ctx, &mut st, &tstep, t, inputs, no_cache, &fail, &quiet)?;
                        }
                    }
                    state = Some(st);
                    return Ok(());
                }
                let st = state.as_mut().ok_or_else(|| fail("no FROM before this instruction".into()))?;
                self.step(ctx, st, step, text, inputs, no_cache, &fail, &emit)
            })();
            if let Err(e) = result {
                if !matches!(e, Error::Cancelled) {
                    emit(EventKind::Failed);
                }
                return Err(e);
            }
            emit(EventKind::StepDone { seconds: started.elapsed().as_secs_f64() });
        }
        state.ok_or_else(|| Error::Parse("stage without FROM".into()))
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        ctx: &Ctx<'_>,
        st: &mut State,
        step: &Step,
        text: &str,
        done: &BTreeMap<usize, State>,
        no_cache: bool,
        fail: &dyn Fn(String) -> Error,
        emit: &dyn Fn(EventKind),
    ) -> Result<(), Error> {
        let (plan, req, global, context, lower) = (ctx.plan, ctx.req, ctx.global, ctx.context, ctx.lower);
        let env = self.env_of(st);
        let expand =
            |s: &str| -> Result<String, Error> { crate::glue::expand_word(plan.escape, s, &env).map_err(fail) };
        // The key covers what the step reads; COPY adds its sources' digest below.
        let mut key_parts: Vec<String> = vec![text.to_owned()];
        // Source sets to copy, each with whether ADD's tar extraction applies to it.
        let mut copy_sources: Option<Vec<(Vec<crate::glue::Source>, bool)>> = None;
        let mut fetched = FetchDirs(Vec::new());
        match step {
            Step::Run { .. } => {
                for (k, v) in st.args.iter() {
                    key_parts.push(format!("{k}={v}"));
                }
                key_parts.push(format!("{:?}", req.network));
                if !req.extra_hosts.is_empty() {
                    key_parts.push(req.extra_hosts.join(","));
                }
            }
            Step::Copy { add, sources, from, heredocs, checksum, keep_git_dir, exclude, .. } if heredocs.is_empty() => {
                let pats: Vec<String> = sources.iter().map(|s| expand(s)).collect::<Result<_, _>>()?;
                let exclude: Vec<String> = exclude.iter().map(|s| expand(s)).collect::<Result<_, _>>()?;
                let is_remote = |p: &String| crate::remote::is_git_url(p) || crate::remote::is_http_url(p);
                let (remote, local): (Vec<String>, Vec<String>) =
                    pats.into_iter().partition(|p| *add && from.is_none() && is_remote(p));
                if checksum.is_some() && (remote.len() != 1 || !local.is_empty()) {
                    return Err(fail("checksum can't be specified for non-HTTP(S) sources".into()));
                }
                let mut sets = Vec::new();
                if !local.is_empty() {
                    let (srcs, digest) = match from {
                        None => context.resolve(&local, &exclude).map_err(fail)?,
                        Some(f) => {
                            let (root, stage_key) = self.mount_from_root(f, done, plan, lower).map_err(fail)?;
                            key_parts.push(stage_key.to_string());
                            crate::glue::DirRoot::new(&root).resolve(&local, &exclude).map_err(fail)?
                        }
                    };
                    key_parts.push(digest.to_string());
                    sets.push((srcs, *add));
                }
                for url in &remote {
                    let dir = self.work_root.join(format!("fetch-{}", berth_base::new_id()));
                    fetched.0.push(dir.clone());
                    let (srcs, digest) =
                        self.fetch_remote(url, &dir, checksum.as_deref(), *keep_git_dir, &exclude).map_err(fail)?;
                    key_parts.push(digest.to_string());
                    // Downloads are copied as they are: ADD extracts local archives only.
                    sets.push((srcs, false));
                }
                copy_sources = Some(sets);
            }
            _ => {}
        }
        for (k, v) in &env {
            // Expansion-sensitive steps see the environment through their expanded text.
            if text.contains(k.as_str()) {
                key_parts.push(format!("{k}={v}"));
            }
        }
        let parts: Vec<&str> = key_parts.iter().map(String::as_str).collect();
        let key = chain(&st.key, &parts);
        if !no_cache
            && let Some(hit) = self.cache.get(&key)
            && hit.layers.iter().all(|l| self.images.has_layer(l))
            && let Ok(config) = serde_json::from_value::<ImageConfiguration>(hit.config.clone())
        {
            st.layers = hit.layers;
            st.config = config;
            st.extras = ConfigExtras::from_config_json(&hit.config);
            st.key = key;
            if let Step::Arg(a) = step {
                self.declare_args(st, a, req, global, ctx.auto, &expand)?;
            }
            emit(EventKind::Cached);
            let _ = copy_sources;
            return Ok(());
        }
        let mut empty_layer = true;
        let mut cfg = st.config.config().clone().unwrap_or_default();
        match step {
            Step::From { .. } => {}
            Step::Run { cmd, mounts, network, insecure } => {
                if *insecure && !req.allow.iter().any(|a| a == "security.insecure") {
                    return Err(fail(
                        "RUN --security=insecure needs the security.insecure entitlement: build with --allow security.insecure"
                            .into(),
                    ));
                }
                let args = command_vec(cmd, &st.shell());
                let mut run_env = env_list(&cfg);
                for (k, v) in &st.args {
                    if !run_env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                        run_env.push(format!("{k}={v}"));
                    }
                }
                for (k, v) in req.build_args.iter().filter(|(k, _)| PROXY_ARGS.contains(&k.as_str())) {
                    if !run_env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                        run_env.push(format!("{k}={v}"));
                    }
                }
                let mut step_mounts = Vec::new();
                let mut ssh_index = 0;
                for m in mounts {
                    let m = match m {
                        RunMount::Deferred(raw) => {
                            crate::glue::lower_mount_spec(raw, plan.escape, &env).map_err(fail)?
                        }
                        m => m.clone(),
                    };
                    // An agent socket's default place is numbered per RUN, and the first
                    // one is what SSH_AUTH_SOCK names, as in BuildKit.
                    let m = match m {
                        RunMount::Ssh { id, target, required } => {
                            let t = target.unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_index}"));
                            ssh_index += 1;
                            if req.ssh.contains_key(&id) && !run_env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                                run_env.push(format!("SSH_AUTH_SOCK={t}"));
                            }
                            RunMount::Ssh { id, target: Some(t), required }
                        }
                        m => m,
                    };
                    step_mounts.push(self.run_mount(&m, req, context, done, plan, lower).map_err(fail)?);
                }
                let spec = RunSpec {
                    args,
                    env: run_env,
                    cwd: cfg.working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
                    user: cfg.user().clone().unwrap_or_default(),
                    network: network.or(req.network).unwrap_or(Network::Host),
                    mounts: step_mounts.into_iter().flatten().collect(),
                    hostname: "buildkitsandbox".into(),
                    privileged: *insecure,
                    shm_size: req.shm_size,
                    extra_hosts: req.extra_hosts.clone(),
                };
                let layer = self.with_root(st, |dir, rootfs| {
                    let mut tail = Vec::new();
                    let code = self
                        .exec
                        .run(dir, rootfs, &spec, &mut |s, d| {
                            tail.extend_from_slice(d);
                            if tail.len() > 4096 {
                                tail.drain(..tail.len() - 4096);
                            }
                            emit(EventKind::Output(s, d.to_vec()));
                        })
                        .map_err(fail)?;
                    if self.cancel.load(Ordering::Relaxed) {
                        return Err(Error::Cancelled);
                    }
                    if code != 0 {
                        let shown = String::from_utf8_lossy(&tail);
                        let last: Vec<&str> =
                            shown.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
                        return Err(fail(format!(
                            "process \"{}\" did not complete successfully: exit code: {code}{}",
                            spec.args.join(" "),
                            if last.is_empty() { String::new() } else { format!("\n{}", last.join("\n")) }
                        )));
                    }
                    Ok(())
                })?;
                if let Some(l) = layer {
                    st.layers.push(l);
                    empty_layer = false;
                }
            }
            Step::Copy { dest, chown, chmod, heredocs, parents, .. } => {
                let dest = expand(dest)?;
                let workdir = cfg.working_dir().clone().unwrap_or_else(|| "/".into());
                let chmod = match chmod {
                    Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| fail(format!("invalid chmod: {m}")))?),
                    None => None,
                };
                let chown = chown.as_ref().map(|c| expand(c)).transpose()?;
                let layer = self.with_root(st, |_dir, rootfs| {
                    let owner = match &chown {
                        Some(c) => Some(crate::glue::resolve_owner(rootfs, c).map_err(fail)?),
                        None => None,
                    };
                    if !heredocs.is_empty() {
                        let docs = heredocs
                            .iter()
                            .map(|(name, data, expand)| {
                                let data = if *expand {
                                    crate::glue::expand_heredoc(plan.escape, data, &env)?
                                } else {
                                    data.clone()
                                };
                                Ok((name.clone(), data))
                            })
                            .collect::<Result<Vec<_>, String>>()
                            .map_err(fail)?;
                        return crate::glue::write_heredocs(&docs, &dest, &workdir, rootfs, owner, chmod).map_err(fail);
                    }
                    let sets = copy_sources.as_ref().ok_or_else(|| fail("no sources".into()))?;
                    let count: usize = sets.iter().map(|(s, _)| s.len()).sum();
                    if count > 1 && sets.len() > 1 && !dest.ends_with('/') {
                        return Err(fail(Error::DestNotDir.to_string()));
                    }
                    for (srcs, extract) in sets {
                        let opts = crate::copy::CopyOpts { chown: owner, chmod, parents: *parents, add: *extract };
                        crate::glue::copy_sources(srcs, &dest, &workdir, rootfs, opts).map_err(fail)?;
                    }
                    Ok(())
                })?;
                if let Some(l) = layer {
                    st.layers.push(l);
                    empty_layer = false;
                }
            }
            Step::Workdir(w) => {
                let w = expand(w)?;
                let cur = cfg.working_dir().clone().unwrap_or_else(|| "/".into());
                let abs = if w.starts_with('/') { w } else { format!("{}/{}", cur.trim_end_matches('/'), w) };
                let abs = berth_base::fsroot::clean_path(&format!("/{abs}"));
                let layer = self.with_root(st, |_dir, rootfs| {
                    berth_base::fsroot::mkdir_all_in_root(rootfs, &abs).map_err(|e| fail(e.to_string()))
                })?;
                if let Some(l) = layer {
                    st.layers.push(l);
                    empty_layer = false;
                }
                cfg.set_working_dir(Some(abs));
            }
            Step::Env(kvs) => {
                let mut e = env_list(&cfg);
                let mut scope = env.clone();
                for (k, v) in kvs {
                    let v = crate::glue::expand_word(plan.escape, v, &scope).map_err(fail)?;
                    e.retain(|x| x.split('=').next() != Some(k.as_str()));
                    e.push(format!("{k}={v}"));
                    scope.retain(|(x, _)| x != k);
                    scope.push((k.clone(), v));
                }
                cfg.set_env(Some(e));
            }
            Step::Label(kvs) => {
                let mut l = cfg.labels().clone().unwrap_or_default();
                for (k, v) in kvs {
                    l.insert(expand(k)?, expand(v)?);
                }
                cfg.set_labels(Some(l));
            }
            Step::Expose(ports) => {
                let mut p = cfg.exposed_ports().clone().unwrap_or_default();
                for port in ports {
                    let port = expand(port)?;
                    let port = if port.contains('/') { port } else { format!("{port}/tcp") };
                    if !p.contains(&port) {
                        p.push(port);
                    }
                }
                cfg.set_exposed_ports(Some(p));
            }
            Step::User(u) => {
                cfg.set_user(Some(expand(u)?));
            }
            Step::Volume(v) => {
                let mut vols = cfg.volumes().clone().unwrap_or_default();
                for x in v {
                    let x = expand(x)?;
                    if !vols.contains(&x) {
                        vols.push(x);
                    }
                }
                cfg.set_volumes(Some(vols));
            }
            Step::StopSignal(s) => {
                cfg.set_stop_signal(Some(expand(s)?));
            }
            Step::Cmd(c) => {
                cfg.set_cmd(Some(command_vec(c, &st.shell())));
            }
            Step::Entrypoint(c) => {
                cfg.set_entrypoint(Some(command_vec(c, &st.shell())));
                // A new ENTRYPOINT resets a CMD inherited from the base, as Docker does.
                cfg.set_cmd(None);
            }
            Step::Shell(s) => {
                if s.is_empty() {
                    return Err(fail("SHELL requires at least one argument".into()));
                }
                st.extras.shell = Some(s.clone());
            }
            Step::Arg(a) => self.declare_args(st, a, req, global, ctx.auto, &expand)?,
            Step::Healthcheck(h) => {
                st.extras.healthcheck =
                    Some(h.clone().unwrap_or_else(|| HealthConfig { test: vec!["NONE".into()], ..Default::default() }));
            }
            Step::OnBuild(t) => st.extras.on_build.get_or_insert_with(Vec::new).push(t.clone()),
            Step::Maintainer(_) => {}
        }
        if let Step::Maintainer(m) = step {
            st.config.set_author(Some(m.clone()));
        }
        st.config.set_config(Some(cfg));
        let now = chrono_now();
        let history = HistoryBuilder::default()
            .created(now.clone())
            .created_by(text.to_owned())
            .comment("buildkit.dockerfile.v0".to_owned())
            .empty_layer(empty_layer)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let mut h = st.config.history().clone().unwrap_or_default();
        h.push(history);
        st.config.set_history(Some(h));
        st.config.set_created(Some(now));
        st.key = key.clone();
        let mut config = serde_json::to_value(&st.config).map_err(|e| fail(e.to_string()))?;
        st.extras.merge_into(&mut config);
        let _ = self.cache.put(&key, &CachedState { layers: st.layers.clone(), config, shell: None });
        Ok(())
    }

    fn declare_args(
        &self,
        st: &mut State,
        args: &[(String, Option<String>)],
        req: &BuildRequest,
        global: &[(String, String)],
        auto: &[(String, String)],
        expand: &dyn Fn(&str) -> Result<String, Error>,
    ) -> Result<(), Error> {
        for (k, default) in args {
            let v = match req.build_args.get(k) {
                Some(v) => Some(v.clone()),
                None => match default {
                    Some(d) => Some(expand(d)?),
                    // `ARG name` inside a stage takes the global value, if any, or the
                    // automatic platform value (`ARG TARGETARCH`).
                    None => global.iter().chain(auto.iter()).find(|(g, _)| g == k).map(|(_, v)| v.clone()),
                },
            };
            st.args.retain(|(x, _)| x != k);
            if let Some(v) = v {
                st.args.push((k.clone(), v));
            }
        }
        Ok(())
    }

    fn env_of(&self, st: &State) -> Vec<(String, String)> {
        let cfg = st.config.config().clone().unwrap_or_default();
        let mut env: Vec<(String, String)> = env_list(&cfg)
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (e, String::new()),
            })
            .collect();
        for (k, v) in &st.args {
            if !env.iter().any(|(x, _)| x == k) {
                env.push((k.clone(), v.clone()));
            }
        }
        env
    }

    /// Mounts the current layers, runs `f` on the root, and turns the changes into a layer
    /// (None when nothing changed). The scratch directory is always removed.
    fn with_root(&self, st: &State, f: impl FnOnce(&Path, &Path) -> Result<(), Error>) -> Result<Option<Layer>, Error> {
        let dir = self.work_root.join(berth_base::new_id());
        std::fs::create_dir_all(&dir).map_err(|e| Error::Parse(format!("create {}: {e}", dir.display())))?;
        let diff_ids: Vec<Digest> = st.layers.iter().map(|l| l.diff_id.clone()).collect();
        let result = (|| {
            let rootfs = self.images.mount_layers(&diff_ids, &dir)?;
            let r = f(&dir, &rootfs);
            self.images.unmount_rootfs(&dir)?;
            r?;
            let upper = dir.join("upper");
            let changed = std::fs::read_dir(&upper).map(|mut d| d.next().is_some()).unwrap_or(false);
            if !changed {
                return Ok(None);
            }
            Ok(Some(self.images.diff_layer(&dir)?))
        })();
        let _ = self.images.unmount_rootfs(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// A stage's or image's root for `COPY --from`, mounted read-only under the work root.
    fn mount_from_root(
        &self,
        from: &str,
        done: &BTreeMap<usize, State>,
        plan: &Plan,
        lower: &dyn Fn(&Plan, &str) -> Option<usize>,
    ) -> Result<(PathBuf, Digest), String> {
        let (layers, key) = match lower(plan, from).and_then(|i| done.get(&i)) {
            Some(st) => (st.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(), st.key.clone()),
            None => {
                let img = self.images.resolve(from).map_err(|e| format!("failed to resolve --from={from}: {e}"))?;
                (img.diff_ids.clone(), img.id.clone())
            }
        };
        let dir = self.work_root.join(format!("from-{}", key.hex()));
        let _one_at_a_time = self.from_roots.lock().unwrap_or_else(|p| p.into_inner());
        if !dir.join("rootfs").is_dir()
            || std::fs::read_dir(dir.join("rootfs")).map(|mut d| d.next().is_none()).unwrap_or(true)
        {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            self.images.mount_layers(&layers, &dir).map_err(|e| e.to_string())?;
        }
        Ok((dir.join("rootfs"), key))
    }

    /// Fetches one `ADD` URL into `dir`: a git repository's tree, or a downloaded file
    /// (mode 0600 and the server's Last-Modified time, as Docker gives it). Returns the
    /// sources to copy and their digest for the cache key.
    fn fetch_remote(
        &self,
        url: &str,
        dir: &Path,
        checksum: Option<&str>,
        keep_git_dir: bool,
        exclude: &[String],
    ) -> Result<(Vec<crate::glue::Source>, Digest), String> {
        if crate::remote::is_git_url(url) {
            let co = crate::remote::git_checkout(url, &dir.join("tree"), keep_git_dir).map_err(|e| e.to_string())?;
            if let Some(c) = checksum
                && !co.commit.starts_with(c.trim_start_matches("sha1:"))
            {
                return Err(format!("expected checksum to match {c}, got {}", co.commit));
            }
            return crate::glue::DirRoot::new(&co.root).resolve(&[".".to_owned()], exclude);
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let path_name = url_file_name(url);
        let part = dir.join(".download");
        let meta = self.fetch.fetch(url, &part)?;
        let name = match (path_name.is_empty(), meta.filename) {
            (false, _) => path_name,
            (true, Some(f)) if !f.is_empty() && !f.contains('/') && f != ".." && f != "." => f,
            _ => return Err(format!("cannot determine a file name from URL {url}: give the destination's file name")),
        };
        let file = dir.join(&name);
        std::fs::rename(&part, &file).map_err(|e| format!("rename download: {e}"))?;
        if let Some(want) = checksum {
            let want: Digest = want.parse().map_err(|e| format!("invalid checksum {want}: {e}"))?;
            let got = digest_file(&file)?;
            if got != want {
                return Err(format!("digest mismatch for {url}: expected {want}, got {got}"));
            }
        }
        let f = std::fs::File::options().write(true).open(&file).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if let Some(m) = meta.modified {
            f.set_modified(m).map_err(|e| e.to_string())?;
        }
        drop(f);
        crate::glue::DirRoot::new(dir).resolve(&[name], &[])
    }

    /// Unmounts the roots `from_root` mounted.
    pub fn cleanup(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.work_root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("from-") {
                    let _ = self.images.unmount_rootfs(&e.path());
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    fn run_mount(
        &self,
        m: &RunMount,
        req: &BuildRequest,
        context: &dyn SourceRoot,
        done: &BTreeMap<usize, State>,
        plan: &Plan,
        lower: &dyn Fn(&Plan, &str) -> Option<usize>,
    ) -> Result<Option<StepMount>, String> {
        match m {
            RunMount::Cache { target, id } => {
                let name = id.clone().unwrap_or_else(|| target.clone());
                let dir = self.cache_mounts.join(Digest::of(name.as_bytes()).hex());
                std::fs::create_dir_all(&dir).map_err(|e| format!("create cache mount: {e}"))?;
                Ok(Some(StepMount::Bind { source: dir, target: target.clone(), readonly: false }))
            }
            RunMount::Secret { id, target, required } => match req.secrets.get(id) {
                Some(src) => Ok(Some(StepMount::Bind {
                    source: src.clone(),
                    target: target.clone().unwrap_or_else(|| format!("/run/secrets/{id}")),
                    readonly: true,
                })),
                None if *required => Err(format!("secret {id} not found")),
                None => Ok(None),
            },
            RunMount::Bind { from, source, target, rw } => {
                let root = match from {
                    None => context.path().to_path_buf(),
                    Some(f) => self.mount_from_root(f, done, plan, lower)?.0,
                };
                let src = root.join(source.trim_start_matches('/'));
                let canon = src.canonicalize().map_err(|e| format!("bind source {source}: {e}"))?;
                if !canon.starts_with(root.canonicalize().map_err(|e| e.to_string())?) {
                    return Err(format!("bind source {source} is outside its root"));
                }
                Ok(Some(StepMount::Bind { source: canon, target: target.clone(), readonly: !rw }))
            }
            RunMount::Tmpfs { target, size } => Ok(Some(StepMount::Tmpfs { target: target.clone(), size: *size })),
            RunMount::Ssh { id, target, required } => match req.ssh.get(id) {
                Some(sock) => Ok(Some(StepMount::Bind {
                    source: sock.clone(),
                    target: target.clone().unwrap_or_else(|| "/run/buildkit/ssh_agent.0".into()),
                    readonly: false,
                })),
                None if *required => {
                    Err(format!("no SSH agent {id:?} forwarded from the client (build --ssh {id}=<socket>)"))
                }
                None => Ok(None),
            },
            RunMount::Deferred(raw) => Err(format!("--mount={raw} was not expanded")),
        }
    }
}

/// The last segment of a URL's path, percent-decoded (`http://h/a/model%201.bin` gives
/// `model 1.bin`); empty when the path has none, or names `.` or `..`.
fn url_file_name(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    let name = percent_encoding::percent_decode_str(last).decode_utf8_lossy().into_owned();
    if name == "." || name == ".." || name.contains('/') { String::new() } else { name }
}

/// Scratch directories of `ADD <url>` downloads, removed when the step ends.
struct FetchDirs(Vec<PathBuf>);

impl Drop for FetchDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn digest_file(path: &Path) -> Result<Digest, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(Digest::from_hasher(h))
}

fn env_list(cfg: &Config) -> Vec<String> {
    cfg.env().clone().unwrap_or_default()
}

/// BuildKit gives an image without PATH the default one, so RUN finds its programs.
fn ensure_default_path(config: &mut ImageConfiguration) {
    let mut cfg = config.config().clone().unwrap_or_default();
    let mut env = cfg.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned());
        cfg.set_env(Some(env));
        config.set_config(Some(cfg));
    }
}

fn command_vec(c: &Command, shell: &[String]) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut a = shell.to_vec();
            a.push(s.clone());
            a
        }
    }
}

fn expand_simple(escape: char, s: &str, vars: &[(String, String)]) -> String {
    crate::glue::expand_word(escape, s, vars).unwrap_or_else(|_| s.to_owned())
}

fn chrono_now() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format_rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

/// RFC 3339 UTC with nanoseconds, without a date crate (civil-from-days, Howard Hinnant's
/// algorithm).
fn format_rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_from_urls() {
        assert_eq!(super::url_file_name("https://h.example/models/model%201.bin?x=1#f"), "model 1.bin");
        assert_eq!(super::url_file_name("http://127.0.0.1:8000"), "");
        assert_eq!(super::url_file_name("http://h/dir/"), "");
        assert_eq!(super::url_file_name("http://h/a/.."), "");
        assert_eq!(super::url_file_name("http://h/a%2Fb"), "");
    }

    #[test]
    fn rfc3339() {
        assert_eq!(super::format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(super::format_rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(berth_base::fsroot::clean_path(&format!("/{}", "/a/./b/../c/")), "/a/c");
    }
}
