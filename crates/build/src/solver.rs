//! The build engine: runs a parsed Dockerfile's stages into layers and an image config.
//! Every instruction's result is cached under a key chained from its parent's key, the
//! instruction after expansion, the build args RUN sees and, for COPY/ADD, a digest of the
//! copied files' content and metadata, so an unchanged step is reused at once and a
//! rebuild with no change yields the very same image id. Stages that do not depend on
//! each other build at the same time, each on its own thread.
//!
//! This file schedules: which stages a target needs, in which order, on which thread, and
//! how a stage's steps follow each other; `step.rs` runs one step of each kind. The solver
//! reads only the [`Plan`]; what can only be lowered at solve time goes through the plan's
//! [`crate::plan::Lowering`].

mod step;

pub use self::step::MAX_CONFIG_BYTES;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use berth_base::{Digest, Reference};
use berth_image::{ConfigExtras, Image, ImageStore, Layer};
use oci_spec::image::{Config, ImageConfiguration};
use sha2::Digest as _;

use self::step::StepCx;
use crate::Error;
use crate::bindmount::ContextView;
use crate::cache::BuildCache;
use crate::copy::SourceRoot;
use crate::executor::{Fetcher, Network, OutputStream, StepExecutor};
use crate::plan::{Command, Plan, RunMount, Step};
use crate::platform::Platforms;

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
    /// `--cache-from`, as the legacy builder reads it: when set, a cache entry is used only
    /// if its layers lie on the layer stack of one of these images (each a list of diff
    /// ids, bottom first); named images that are missing add nothing, so `Some(vec![])`
    /// uses no cache at all.
    pub cache_from: Option<Vec<Vec<berth_base::Digest>>>,
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
        /// The stage's index in the Dockerfile.
        stage_index: usize,
        /// The step's index in its stage (0 is its FROM).
        position: usize,
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

#[derive(Clone)]
struct State {
    layers: Vec<Layer>,
    config: ImageConfiguration,
    key: Digest,
    /// ARGs declared in this stage, with their values.
    args: Vec<(String, String)>,
    /// Healthcheck, SHELL and ONBUILD triggers (the OCI config has no fields for them).
    extras: ConfigExtras,
    /// Keeps the base image's layers and those of reused cache entries from an `rmi` that
    /// runs while this build does.
    leases: Vec<berth_image::LayerLease>,
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
    /// What `RUN --mount=type=bind` sees of `context`, made on first use.
    context_view: ContextView,
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
        events: &(dyn Fn(Event) + Sync),
    ) -> Result<Image, Error> {
        let target = match &req.target {
            Some(t) => plan
                .stages
                .iter()
                .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
                .ok_or_else(|| Error::UnknownTarget { target: t.clone() })?,
            None => plan.stages.len().checked_sub(1).ok_or(Error::EmptyPlan)?,
        };
        let platforms = Platforms::new(req.platform.as_deref())?;
        let auto = platforms.args();
        // Global ARGs see the automatic platform args; FROM lines see both.
        let mut global: Vec<(String, String)> = Vec::new();
        for (k, d) in &plan.global_args {
            let scope: Vec<(String, String)> = global.iter().chain(auto.iter()).cloned().collect();
            let v = match (req.build_args.get(k), d) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(d)) => Some(expand_simple(plan, d, &scope)),
                (None, None) => auto.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()),
            };
            if let Some(v) = v {
                global.retain(|(x, _)| x != k);
                global.push((k.clone(), v));
            }
        }
        let ctx = Ctx {
            plan,
            req,
            global: &global,
            auto: &auto,
            platforms: &platforms,
            context,
            context_view: ContextView::new(&self.work_root),
            events,
        };
        let deps: Vec<Vec<usize>> = (0..plan.stages.len()).map(|i| stage_deps(&ctx, i)).collect();
        let needed = needed_stages(&deps, target);
        let mut done = self.schedule(&ctx, &deps, &needed)?;
        let mut state = done.remove(&target).ok_or_else(|| Error::StageNotBuilt { stage: target.to_string() })?;
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

    /// Builds the `needed` stages, each on its own thread as soon as the stages it depends
    /// on are done. The first real failure stops the others and is returned.
    fn schedule(&self, ctx: &Ctx<'_>, deps: &[Vec<usize>], needed: &[usize]) -> Result<BTreeMap<usize, State>, Error> {
        let plan = ctx.plan;
        let total: usize = needed.iter().map(|i| plan.stages[*i].steps.len()).sum();
        let mut first_index = BTreeMap::new();
        let mut n = 0;
        for &i in needed {
            first_index.insert(i, n);
            n += plan.stages[i].steps.len();
        }
        let mut done: BTreeMap<usize, State> = BTreeMap::new();
        let mut failure: Option<Error> = None;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<State, Error>)>();
            let mut pending = needed.to_vec();
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
                        let base = first_index[&i];
                        running += 1;
                        scope.spawn(move || {
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                self.build_stage(ctx, i, &inputs, base, total)
                            }))
                            .unwrap_or(Err(Error::StagePanicked));
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
        match failure {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Builds stage `i` from the states of the stages it depends on (`inputs`). A step's
    /// error comes back as [`Error::Step`], with the Dockerfile's name and the line.
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
            emit(EventKind::Step { total, stage: stage.name.clone(), text: text.clone(), stage_index: i, position: n });
            let started = Instant::now();
            let cx = StepCx { ctx, done: inputs, no_cache, emit: &emit };
            let result = match (step, state.as_mut()) {
                (Step::From { base, platform }, _) => {
                    self.base_step(&cx, i, base, platform.as_deref()).map(|st| state = Some(st))
                }
                (_, Some(st)) => self.step(&cx, st, step, text),
                (_, None) => Err(Error::NoFrom),
            };
            if let Err(e) = result {
                if matches!(e, Error::Cancelled) {
                    return Err(e);
                }
                emit(EventKind::Failed);
                return Err(Error::Step {
                    file: req.dockerfile_name.clone(),
                    line: *line,
                    instruction: text.clone(),
                    source: Box::new(e),
                });
            }
            emit(EventKind::StepDone { seconds: started.elapsed().as_secs_f64() });
        }
        state.ok_or(Error::NoFrom)
    }

    /// Unmounts the roots `COPY --from` and `--mount from=` mounted.
    pub fn cleanup(&self) {
        crate::rootfs::cleanup(self.images, &self.work_root);
    }
}

/// The earlier stages stage `i` reads: its FROM, `COPY --from`, `RUN --mount from=`.
fn stage_deps(ctx: &Ctx<'_>, i: usize) -> Vec<usize> {
    let plan = ctx.plan;
    let mut out = Vec::new();
    for (_, _, step) in &plan.stages[i].steps {
        let names: Vec<String> = match step {
            Step::From { base, .. } => vec![expand_simple(plan, base, &ctx.scope_of_from())],
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
            if let Some(d) = plan.stage_index(&n).filter(|d| *d < i)
                && !out.contains(&d)
            {
                out.push(d);
            }
        }
    }
    out
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

fn digest_file(path: &Path) -> Result<Digest, Error> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io("read", path, e))?;
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

/// Expands a word where BuildKit leaves it as written when it cannot be expanded (FROM
/// names, global ARG defaults).
fn expand_simple(plan: &Plan, s: &str, vars: &[(String, String)]) -> String {
    plan.lowering.expand_word(s, vars).unwrap_or_else(|_| s.to_owned())
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
