//! One step of a stage: FROM, RUN, COPY/ADD, WORKDIR, and the steps that only change the
//! image config, each in its own function. They share the cache protocol: a key chained
//! from the parent state's key and what the step reads, a cache hit taken as it is, and
//! on a miss the work, then a history entry and the new state recorded under the key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use berth_base::Digest;
use berth_image::{ConfigExtras, HealthConfig, Layer};
use oci_spec::image::{Config, HistoryBuilder, ImageConfiguration};

use super::{
    Ctx, EventKind, FetchDirs, PROXY_ARGS, Solver, State, chain, chrono_now, command_vec, default_config, digest_file,
    ensure_default_path, env_list, expand_simple, url_file_name,
};
use crate::Error;
use crate::bindmount::StepScratch;
use crate::cache::CachedState;
use crate::copy::{CopyOpts, DirRoot, Source, SourceRoot};
use crate::executor::{Network, RunSpec, StepMount};
use crate::plan::{Command, RunMount, Step};
use crate::platform::Platform;

/// What a step of a stage reads besides its state.
pub(super) struct StepCx<'s, 'a> {
    /// The build.
    pub(super) ctx: &'s Ctx<'a>,
    /// States of the earlier stages this stage reads (by index).
    pub(super) done: &'s BTreeMap<usize, State>,
    /// Whether this stage ignores the cache.
    pub(super) no_cache: bool,
    /// Progress of this step.
    pub(super) emit: &'s dyn Fn(EventKind),
}

/// Source sets of a COPY/ADD, each with whether ADD's archive extraction applies to it.
type SourceSets = Vec<(Vec<Source>, bool)>;

impl Solver<'_> {
    /// Runs one step after FROM on `st`.
    pub(super) fn step(&self, cx: &StepCx<'_, '_>, st: &mut State, step: &Step, text: &str) -> Result<(), Error> {
        match step {
            // FROM starts a stage (`from_step`); the plan never has one later.
            Step::From { .. } => Ok(()),
            Step::Run { cmd, mounts, network, insecure } => {
                self.run_step(cx, st, text, RunStep { cmd, mounts, network: *network, insecure: *insecure })
            }
            Step::Copy { .. } => self.copy_step(cx, st, step, text),
            Step::Workdir(w) => self.workdir_step(cx, st, w, text),
            config => self.config_step(cx, st, config, text),
        }
    }

    /// `FROM`: the state of an earlier stage, of `scratch`, or of a stored image of the
    /// wanted platform; then the base's ONBUILD triggers run, as the first steps of this
    /// stage, and are not passed on.
    pub(super) fn base_step(
        &self,
        cx: &StepCx<'_, '_>,
        i: usize,
        base: &str,
        platform: Option<&str>,
    ) -> Result<State, Error> {
        let ctx = cx.ctx;
        let plan = ctx.plan;
        let scope = ctx.scope_of_from();
        let base = expand_simple(plan, base, &scope);
        let platform = platform.map(|p| Platform::parse(&expand_simple(plan, p, &scope))).transpose()?;
        let want = platform.as_ref().unwrap_or(&ctx.platforms.target);
        let mut st = if let Some(d) = plan.stage_index(&base).filter(|d| *d < i) {
            let mut s = cx.done.get(&d).cloned().ok_or_else(|| Error::StageNotBuilt { stage: base.clone() })?;
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
                leases: Vec::new(),
            }
        } else {
            let img = self.images.resolve(&base).map_err(|source| Error::BaseImage { name: base.clone(), source })?;
            let have = Platform::of_image(&img.config);
            if !want.matches(&have) {
                return Err(Error::PlatformMismatch {
                    image: base,
                    wanted: want.to_string(),
                    actual: have.to_string(),
                });
            }
            let layers = self.images.image_layers(&img.id)?;
            let lease = self.images.lease(&layers);
            if let Some(gone) = layers.iter().find(|l| !self.images.has_layer(l)) {
                // Removed between the lookup and the lease (an `rmi` right now).
                return Err(Error::BaseImage {
                    name: base.clone(),
                    source: berth_image::Error::LayerNotFound(gone.diff_id.to_string()),
                });
            }
            State {
                layers,
                config: img.config.clone(),
                key: chain(&img.id, &["FROM"]),
                args: Vec::new(),
                extras: img.extras.clone(),
                leases: vec![lease],
            }
        };
        ensure_default_path(&mut st.config);
        if let Some(triggers) = st.extras.on_build.take() {
            // A trigger's output is shown under the FROM step; its start and end are not.
            let quiet = |k: EventKind| {
                if let EventKind::Output(..) = k {
                    (cx.emit)(k)
                }
            };
            let tcx = StepCx { ctx, done: cx.done, no_cache: cx.no_cache, emit: &quiet };
            for t in &triggers {
                let tstep =
                    plan.lowering.trigger(t).map_err(|e| Error::Trigger { trigger: t.clone(), source: Box::new(e) })?;
                self.step(&tcx, &mut st, &tstep, t)?;
            }
        }
        Ok(st)
    }

    /// `RUN`: the command in a root made of the state's layers; what it changes becomes a
    /// layer. The key covers the command and the build args, network and hosts it sees.
    fn run_step(&self, cx: &StepCx<'_, '_>, st: &mut State, text: &str, run: RunStep<'_>) -> Result<(), Error> {
        let req = cx.ctx.req;
        let env = self.env_of(st);
        let mut parts: Vec<String> = st.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(format!("{:?}", req.network));
        if !req.extra_hosts.is_empty() {
            parts.push(req.extra_hosts.join(","));
        }
        parts.extend(self.bind_keys(cx, run.mounts, &env));
        let key = step_key(st, text, parts, &env);
        if self.take_cached(cx, st, &key) {
            return Ok(());
        }
        if run.insecure && !req.allow.iter().any(|a| a == "security.insecure") {
            return Err(Error::InsecureNotAllowed);
        }
        // `scratch` holds the step's writable bind mounts until the step is over.
        let (spec, scratch) = self.run_spec(cx, st, &run, &env)?;
        let layer = crate::rootfs::with_root(self.images, &self.work_root, &st.layers, |dir, rootfs| {
            let mut tail = Vec::new();
            let code = self
                .exec
                .run(dir, rootfs, &spec, &mut |s, d| {
                    tail.extend_from_slice(d);
                    if tail.len() > 4096 {
                        tail.drain(..tail.len() - 4096);
                    }
                    (cx.emit)(EventKind::Output(s, d.to_vec()));
                })
                .map_err(Error::Exec)?;
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            if code != 0 {
                let shown = String::from_utf8_lossy(&tail);
                let mut last: Vec<String> = shown.lines().rev().take(10).map(str::to_owned).collect();
                last.reverse();
                return Err(Error::RunFailed { command: spec.args.join(" "), code, tail: last });
            }
            Ok(())
        });
        drop(scratch);
        let layer = layer?;
        let cfg = st.config.config().clone().unwrap_or_default();
        self.commit(st, cfg, layer, text, key)
    }

    /// What the executor runs for a RUN step: argv, environment (config env, then the
    /// stage's ARGs, then the proxy build args), working dir, user, network and mounts;
    /// with the writable copies its `rw` bind mounts use, to drop when the step is over.
    fn run_spec(
        &self,
        cx: &StepCx<'_, '_>,
        st: &State,
        run: &RunStep<'_>,
        env: &[(String, String)],
    ) -> Result<(RunSpec, StepScratch), Error> {
        let req = cx.ctx.req;
        let cfg = st.config.config().clone().unwrap_or_default();
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
        let mut mounts = Vec::new();
        let mut scratch = StepScratch::default();
        let mut ssh_index = 0;
        for m in run.mounts {
            let m = match m {
                RunMount::Deferred(raw) => cx.ctx.plan.lowering.mount(raw, env)?,
                m => m.clone(),
            };
            // An agent socket's default place is numbered per RUN, and the first one is
            // what SSH_AUTH_SOCK names, as in BuildKit.
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
            mounts.extend(self.step_mount(cx, &m, &mut scratch)?);
        }
        let spec = RunSpec {
            args: command_vec(run.cmd, &st.shell()),
            env: run_env,
            cwd: cfg.working_dir().clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".into()),
            user: cfg.user().clone().unwrap_or_default(),
            network: run.network.or(req.network).unwrap_or(Network::Default),
            mounts,
            hostname: "buildkitsandbox".into(),
            privileged: run.insecure,
            shm_size: req.shm_size,
            extra_hosts: req.extra_hosts.clone(),
        };
        Ok((spec, scratch))
    }

    /// A `RUN --mount` as the executor mounts it; None for an optional secret or agent the
    /// build was not given. A bind of the context sees its filtered view, never the
    /// client's directory; an `rw` bind gets a writable copy in `scratch`.
    fn step_mount(
        &self,
        cx: &StepCx<'_, '_>,
        m: &RunMount,
        scratch: &mut StepScratch,
    ) -> Result<Option<StepMount>, Error> {
        let req = cx.ctx.req;
        match m {
            RunMount::Cache { target, id } => {
                let name = id.clone().unwrap_or_else(|| target.clone());
                let dir = self.cache_mounts.join(Digest::of(name.as_bytes()).hex());
                std::fs::create_dir_all(&dir).map_err(|e| Error::io("create cache mount", &dir, e))?;
                Ok(Some(StepMount::Bind { source: dir, target: target.clone(), readonly: false }))
            }
            RunMount::Secret { id, target, required } => match req.secrets.get(id) {
                Some(src) => Ok(Some(StepMount::Bind {
                    source: src.clone(),
                    target: target.clone().unwrap_or_else(|| format!("/run/secrets/{id}")),
                    readonly: true,
                })),
                None if *required => Err(Error::SecretNotFound { id: id.clone() }),
                None => Ok(None),
            },
            RunMount::Bind { from, source, target, rw } => {
                let root = match from {
                    None => cx.ctx.context_view.root(cx.ctx.context)?,
                    Some(f) => self.mount_from(cx, f)?.0,
                };
                let src = root.join(source.trim_start_matches('/'));
                let bind_err = |e| Error::BindSource { path: source.clone(), source: e };
                let canon = src.canonicalize().map_err(bind_err)?;
                if !canon.starts_with(root.canonicalize().map_err(bind_err)?) {
                    return Err(Error::BindOutside { path: source.clone() });
                }
                // The view and stage roots are shared by the build's steps: writes go to a
                // copy of the step's own, as BuildKit discards them.
                let source = if *rw { scratch.writable(&self.work_root, &canon)? } else { canon };
                Ok(Some(StepMount::Bind { source, target: target.clone(), readonly: !rw }))
            }
            RunMount::Tmpfs { target, size } => Ok(Some(StepMount::Tmpfs { target: target.clone(), size: *size })),
            RunMount::Ssh { id, target, required } => match req.ssh.get(id) {
                Some(sock) => Ok(Some(StepMount::Bind {
                    source: sock.clone(),
                    target: target.clone().unwrap_or_else(|| "/run/buildkit/ssh_agent.0".into()),
                    readonly: false,
                })),
                None if *required => Err(Error::NoSshAgent { id: id.clone() }),
                None => Ok(None),
            },
            // `run_spec` lowers deferred specs before they get here.
            RunMount::Deferred(raw) => Err(Error::instruction(format!("--mount={raw} was not expanded"))),
        }
    }

    /// `COPY`/`ADD`: sources from the context, a stage or image (`--from`), remote URLs
    /// (ADD), or heredocs, written into a root made of the state's layers. The key covers
    /// the sources' content digest.
    fn copy_step(&self, cx: &StepCx<'_, '_>, st: &mut State, step: &Step, text: &str) -> Result<(), Error> {
        let Step::Copy { add, sources, dest, from, chown, chmod, heredocs, checksum, keep_git_dir, parents, exclude } =
            step
        else {
            return Ok(());
        };
        let env = self.env_of(st);
        let lowering = &*cx.ctx.plan.lowering;
        let expand = |s: &str| lowering.expand_word(s, &env);
        let mut parts = Vec::new();
        let mut fetched = FetchDirs(Vec::new());
        let mut sets: SourceSets = Vec::new();
        if heredocs.is_empty() {
            let pats: Vec<String> = sources.iter().map(|s| expand(s)).collect::<Result<_, _>>()?;
            let exclude: Vec<String> = exclude.iter().map(|s| expand(s)).collect::<Result<_, _>>()?;
            let is_remote = |p: &String| crate::remote::is_git_url(p) || crate::remote::is_http_url(p);
            let (remote, local): (Vec<String>, Vec<String>) =
                pats.into_iter().partition(|p| *add && from.is_none() && is_remote(p));
            if checksum.is_some() && (remote.len() != 1 || !local.is_empty()) {
                return Err(Error::ChecksumNotHttp);
            }
            if !local.is_empty() {
                let (srcs, digest) = match from {
                    None => cx.ctx.context.resolve(&local, &exclude)?,
                    Some(f) => {
                        let (root, stage_key) = self.mount_from(cx, f)?;
                        parts.push(stage_key.to_string());
                        DirRoot::new(&root).resolve(&local, &exclude)?
                    }
                };
                parts.push(digest.to_string());
                sets.push((srcs, *add));
            }
            for url in &remote {
                let dir = self.work_root.join(format!("fetch-{}", berth_base::new_id()));
                fetched.0.push(dir.clone());
                let (srcs, digest) = self.fetch_remote(url, &dir, checksum.as_deref(), *keep_git_dir, &exclude)?;
                parts.push(digest.to_string());
                // Downloads are copied as they are: ADD extracts local archives only.
                sets.push((srcs, false));
            }
        }
        let key = step_key(st, text, parts, &env);
        if self.take_cached(cx, st, &key) {
            return Ok(());
        }
        let cfg = st.config.config().clone().unwrap_or_default();
        let dest = expand(dest)?;
        let workdir = cfg.working_dir().clone().unwrap_or_else(|| "/".into());
        let chmod = chmod
            .as_ref()
            .map(|m| u32::from_str_radix(m, 8).map_err(|_| Error::InvalidChmod { mode: m.clone() }))
            .transpose()?;
        let chown = chown.as_ref().map(|c| expand(c)).transpose()?;
        let layer = crate::rootfs::with_root(self.images, &self.work_root, &st.layers, |_dir, rootfs| {
            let owner = chown.as_ref().map(|c| crate::copy::resolve_owner(rootfs, c)).transpose()?;
            if !heredocs.is_empty() {
                let docs = heredocs
                    .iter()
                    .map(|(name, data, expand)| {
                        let data = if *expand { lowering.expand_heredoc(data, &env)? } else { data.clone() };
                        Ok((name.clone(), data))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                return crate::copy::write_heredocs(&docs, &dest, &workdir, rootfs, owner, chmod);
            }
            copy_sets(&sets, &dest, &workdir, rootfs, CopyOpts { chown: owner, chmod, parents: *parents, add: false })
        })?;
        drop(fetched);
        self.commit(st, cfg, layer, text, key)
    }

    /// `WORKDIR`: the directory is made in the root (a layer when it did not exist) and
    /// becomes the config's working dir.
    fn workdir_step(&self, cx: &StepCx<'_, '_>, st: &mut State, w: &str, text: &str) -> Result<(), Error> {
        let env = self.env_of(st);
        let key = step_key(st, text, Vec::new(), &env);
        if self.take_cached(cx, st, &key) {
            return Ok(());
        }
        let mut cfg = st.config.config().clone().unwrap_or_default();
        let w = cx.ctx.plan.lowering.expand_word(w, &env)?;
        let abs = workdir_path(cfg.working_dir().as_deref(), &w);
        // As BuildKit does, directories made under a USER belong to that user.
        let user = cfg.user().clone().filter(|u| !u.is_empty() && u != "root" && u != "0" && u != "0:0");
        let layer = crate::rootfs::with_root(self.images, &self.work_root, &st.layers, |_dir, rootfs| {
            let owner = user.as_deref().map(|u| crate::copy::resolve_owner(rootfs, u)).transpose()?;
            berth_base::fsroot::mkdir_all_in_root_owned(rootfs, &abs, owner).map_err(|e| Error::io("create", &abs, e))
        })?;
        cfg.set_working_dir(Some(abs));
        self.commit(st, cfg, layer, text, key)
    }

    /// The steps that change only the image config (ENV, LABEL, EXPOSE, USER, VOLUME,
    /// STOPSIGNAL, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, MAINTAINER) and ARG,
    /// which also declares the stage's build args.
    fn config_step(&self, cx: &StepCx<'_, '_>, st: &mut State, step: &Step, text: &str) -> Result<(), Error> {
        let env = self.env_of(st);
        let key = step_key(st, text, Vec::new(), &env);
        if self.take_cached(cx, st, &key) {
            // ARG values are not part of the cached state.
            if let Step::Arg(a) = step {
                declare_args(cx.ctx, st, a, &env)?;
            }
            return Ok(());
        }
        let mut cfg = st.config.config().clone().unwrap_or_default();
        apply_config(cx.ctx, st, &mut cfg, step, &env)?;
        if let Step::Arg(a) = step {
            declare_args(cx.ctx, st, a, &env)?;
        }
        self.commit(st, cfg, None, text, key)
    }

    /// Takes the cached result of `key` into `st` when the stage uses the cache and the
    /// entry's layers are all still stored.
    fn take_cached(&self, cx: &StepCx<'_, '_>, st: &mut State, key: &Digest) -> bool {
        if cx.no_cache {
            return false;
        }
        let Some(hit) = self.cache.get(key) else { return false };
        // Leased before the check: an `rmi` after it cannot take the layers away.
        let lease = self.images.lease(&hit.layers);
        if !hit.layers.iter().all(|l| self.images.has_layer(l)) {
            return false;
        }
        if let Some(chains) = &cx.ctx.req.cache_from
            && !chains
                .iter()
                .any(|c| hit.layers.len() <= c.len() && hit.layers.iter().zip(c).all(|(l, d)| &l.diff_id == d))
        {
            return false;
        }
        let Ok(config) = serde_json::from_value::<ImageConfiguration>(hit.config.clone()) else { return false };
        st.layers = hit.layers;
        st.leases.push(lease);
        st.config = config;
        st.extras = ConfigExtras::from_config_json(&hit.config);
        st.key = key.clone();
        (cx.emit)(EventKind::Cached);
        true
    }

    /// Ends a step that ran: its layer (if it changed files), config, a history entry, and
    /// the new state recorded under `key`.
    fn commit(&self, st: &mut State, cfg: Config, layer: Option<Layer>, text: &str, key: Digest) -> Result<(), Error> {
        let empty_layer = layer.is_none();
        st.layers.extend(layer);
        st.config.set_config(Some(cfg));
        let now = chrono_now();
        let history = HistoryBuilder::default()
            .created(now.clone())
            .created_by(text.to_owned())
            .comment("buildkit.dockerfile.v0".to_owned())
            .empty_layer(empty_layer)
            .build()
            .map_err(Error::ImageConfig)?;
        let mut h = st.config.history().clone().unwrap_or_default();
        h.push(history);
        st.config.set_history(Some(h));
        st.config.set_created(Some(now));
        st.key = key.clone();
        let mut config = serde_json::to_value(&st.config).map_err(Error::Json)?;
        st.extras.merge_into(&mut config);
        let size = serde_json::to_vec(&config).map_err(Error::Json)?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(Error::ConfigTooLarge { size, limit: MAX_CONFIG_BYTES });
        }
        let _ = self.cache.put(&key, &CachedState { layers: st.layers.clone(), config, shell: None });
        Ok(())
    }

    /// A stage's or image's root for `COPY --from` and `--mount from=`, mounted read-only,
    /// with the key that stands for its content.
    fn mount_from(&self, cx: &StepCx<'_, '_>, from: &str) -> Result<(std::path::PathBuf, Digest), Error> {
        let (layers, key) = self.source_layers(cx, from)?;
        let root = crate::rootfs::mount_read_only(self.images, &self.work_root, &self.from_roots, &layers, &key)?;
        Ok((root, key))
    }

    /// The layers of a stage or image `from=` names, with the key that stands for them.
    fn source_layers(&self, cx: &StepCx<'_, '_>, from: &str) -> Result<(Vec<Digest>, Digest), Error> {
        Ok(match cx.ctx.plan.stage_index(from).and_then(|i| cx.done.get(&i)) {
            Some(st) => (st.layers.iter().map(|l| l.diff_id.clone()).collect(), st.key.clone()),
            None => {
                let img =
                    self.images.resolve(from).map_err(|source| Error::FromImage { name: from.to_owned(), source })?;
                (img.diff_ids.clone(), img.id.clone())
            }
        })
    }

    /// What a RUN step's bind mounts read, for its cache key, as BuildKit keys a mount by
    /// its content: the digest of the context files a bind of the context sees, the key of
    /// the stage or image a `from=` bind reads. A mount that cannot be resolved adds
    /// nothing here; the step fails on it when it runs.
    fn bind_keys(&self, cx: &StepCx<'_, '_>, mounts: &[RunMount], env: &[(String, String)]) -> Vec<String> {
        let mut out = Vec::new();
        for m in mounts {
            let m = match m {
                RunMount::Deferred(raw) => match cx.ctx.plan.lowering.mount(raw, env) {
                    Ok(m) => m,
                    Err(_) => continue,
                },
                m => m.clone(),
            };
            let RunMount::Bind { from, source, .. } = m else { continue };
            let key = match &from {
                None => cx.ctx.context.resolve(std::slice::from_ref(&source), &[]).map(|(_, d)| d),
                Some(f) => self.source_layers(cx, f).map(|(_, k)| k),
            };
            if let Ok(k) = key {
                out.push(format!("bind {} {source} {k}", from.as_deref().unwrap_or("context")));
            }
        }
        out
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
    ) -> Result<(Vec<Source>, Digest), Error> {
        if crate::remote::is_git_url(url) {
            let co = crate::remote::git_checkout(url, &dir.join("tree"), keep_git_dir)?;
            if let Some(c) = checksum
                && !co.commit.starts_with(c.trim_start_matches("sha1:"))
            {
                return Err(Error::GitChecksum { want: c.to_owned(), got: co.commit });
            }
            return DirRoot::new(&co.root).resolve(&[".".to_owned()], exclude);
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let path_name = url_file_name(url);
        let part = dir.join(".download");
        let meta = self.fetch.fetch(url, &part).map_err(Error::Fetch)?;
        let name = match (path_name.is_empty(), meta.filename) {
            (false, _) => path_name,
            (true, Some(f)) if !f.is_empty() && !f.contains('/') && f != ".." && f != "." => f,
            _ => return Err(Error::NoFileName { url: url.to_owned() }),
        };
        let file = dir.join(&name);
        std::fs::rename(&part, &file).map_err(|e| Error::io("rename download to", &file, e))?;
        if let Some(want) = checksum {
            let want: Digest =
                want.parse().map_err(|source| Error::InvalidChecksum { checksum: want.to_owned(), source })?;
            let got = digest_file(&file)?;
            if got != want {
                return Err(Error::DigestMismatch { url: url.to_owned(), want, got });
            }
        }
        let f = std::fs::File::options().write(true).open(&file).map_err(|e| Error::io("open", &file, e))?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| Error::io("chmod", &file, e))?;
        if let Some(m) = meta.modified {
            f.set_modified(m).map_err(|e| Error::io("set the time of", &file, e))?;
        }
        drop(f);
        DirRoot::new(dir).resolve(&[name], &[])
    }

    /// The variables a step sees: the config's environment, then the stage's ARGs.
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
}

/// The most bytes an image config may take while it is built (a few KiB in real images):
/// each step's result is checked, so many large words cannot add up past it.
pub const MAX_CONFIG_BYTES: usize = 16 << 20;

/// A RUN step's parts.
struct RunStep<'p> {
    cmd: &'p Command,
    mounts: &'p [RunMount],
    network: Option<Network>,
    insecure: bool,
}

/// The cache key of a step: chained from the state's key, the instruction as written, what
/// else the step reads (`parts`), and the variables its text mentions (expansion-sensitive
/// steps see the environment through their expanded text).
fn step_key(st: &State, text: &str, parts: Vec<String>, env: &[(String, String)]) -> Digest {
    let mut all = vec![text.to_owned()];
    all.extend(parts);
    for (k, v) in env {
        if text.contains(k.as_str()) {
            all.push(format!("{k}={v}"));
        }
    }
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    chain(&st.key, &all)
}

/// The absolute, clean path a `WORKDIR w` makes, relative to the current working dir.
fn workdir_path(cur: Option<&str>, w: &str) -> String {
    let cur = cur.unwrap_or("/");
    let abs = if w.starts_with('/') { w.to_owned() } else { format!("{}/{}", cur.trim_end_matches('/'), w) };
    berth_base::fsroot::clean_path(&format!("/{abs}"))
}

/// Copies the source sets into `rootfs`; `opts.add` is taken from each set.
fn copy_sets(sets: &SourceSets, dest: &str, workdir: &str, rootfs: &Path, opts: CopyOpts) -> Result<(), Error> {
    let count: usize = sets.iter().map(|(s, _)| s.len()).sum();
    if count > 1 && sets.len() > 1 && !dest.ends_with('/') {
        return Err(Error::DestNotDir);
    }
    for (srcs, extract) in sets {
        crate::copy::copy_into(srcs, dest, workdir, rootfs, CopyOpts { add: *extract, ..opts })?;
    }
    Ok(())
}

/// Changes the image config for a config-only step (ARG changes nothing here).
fn apply_config(
    ctx: &Ctx<'_>,
    st: &mut State,
    cfg: &mut Config,
    step: &Step,
    env: &[(String, String)],
) -> Result<(), Error> {
    let lowering = &*ctx.plan.lowering;
    let expand = |s: &str| lowering.expand_word(s, env);
    match step {
        Step::Env(kvs) => {
            // Every value sees the variables as they were before this instruction, as in
            // BuildKit: `ENV a=2 b=$a` gives b the old a.
            let mut e = env_list(cfg);
            for (k, v) in kvs {
                let v = expand(v)?;
                e.retain(|x| x.split('=').next() != Some(k.as_str()));
                e.push(format!("{k}={v}"));
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
                return Err(Error::EmptyShell);
            }
            st.extras.shell = Some(s.clone());
        }
        Step::Healthcheck(h) => {
            st.extras.healthcheck =
                Some(h.clone().unwrap_or_else(|| HealthConfig { test: vec!["NONE".into()], ..Default::default() }));
        }
        Step::OnBuild(t) => st.extras.on_build.get_or_insert_with(Vec::new).push(t.clone()),
        Step::Maintainer(m) => {
            st.config.set_author(Some(m.clone()));
        }
        Step::Arg(_) | Step::From { .. } | Step::Run { .. } | Step::Copy { .. } | Step::Workdir(_) => {}
    }
    Ok(())
}

/// `ARG name[=default]`: the value is the build arg, else the default (expanded), else
/// the global ARG's or the automatic platform ARG's value. Unlike ENV's, each default
/// sees the ARGs declared before it on the same line (`ARG a=2 b=$a` gives b=2), as in
/// BuildKit's dispatchArg; an ENV of the same name still wins, as in [`Solver::env_of`].
fn declare_args(
    ctx: &Ctx<'_>,
    st: &mut State,
    args: &[(String, Option<String>)],
    env: &[(String, String)],
) -> Result<(), Error> {
    let lowering = &*ctx.plan.lowering;
    let from_env: Vec<String> = env_list(&st.config.config().clone().unwrap_or_default())
        .into_iter()
        .map(|e| e.split_once('=').map_or(e.clone(), |(k, _)| k.to_owned()))
        .collect();
    let mut scope = env.to_vec();
    for (k, default) in args {
        let v = match ctx.req.build_args.get(k) {
            Some(v) => Some(v.clone()),
            None => match default {
                Some(d) => Some(lowering.expand_word(d, &scope)?),
                // `ARG name` inside a stage takes the global value, if any, or the
                // automatic platform value (`ARG TARGETARCH`).
                None => ctx.global.iter().chain(ctx.auto.iter()).find(|(g, _)| g == k).map(|(_, v)| v.clone()),
            },
        };
        st.args.retain(|(x, _)| x != k);
        if let Some(v) = v {
            if !from_env.contains(k) {
                scope.retain(|(x, _)| x != k);
                scope.push((k.clone(), v.clone()));
            }
            st.args.push((k.clone(), v));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use berth_image::ImageStore;

    use super::*;
    use crate::cache::BuildCache;
    use crate::executor::{BoxError, Fetched, Fetcher, OutputStream, StepExecutor};
    use crate::platform::Platforms;
    use crate::solver::{BuildRequest, Event};

    /// An executor that must not be reached: these tests never mount a root.
    struct NoExec;

    impl StepExecutor for NoExec {
        fn run(
            &self,
            _: &Path,
            _: &Path,
            _: &RunSpec,
            _: &mut dyn FnMut(OutputStream, &[u8]),
        ) -> Result<i32, BoxError> {
            Err("no executor in unit tests".into())
        }
    }

    impl Fetcher for NoExec {
        fn fetch(&self, url: &str, _: &Path) -> Result<Fetched, BoxError> {
            Err(format!("no downloads in unit tests: {url}").into())
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        images: ImageStore,
        cache: BuildCache,
        cancel: AtomicBool,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().to_path_buf();
            let images = ImageStore::open(&root).unwrap();
            let cache = BuildCache::open(&root).unwrap();
            Fixture { _dir: dir, root, images, cache, cancel: AtomicBool::new(false) }
        }

        fn solver(&self) -> Solver<'_> {
            Solver {
                images: &self.images,
                cache: &self.cache,
                exec: &NoExec,
                fetch: &NoExec,
                work_root: self.root.join("builder"),
                cache_mounts: self.root.join("cache-mounts"),
                cancel: &self.cancel,
                from_roots: Mutex::new(()),
            }
        }

        /// Builds `dockerfile` (from scratch, so no root is mounted) and returns the result
        /// and the events.
        fn build(&self, dockerfile: &str, req: BuildRequest) -> (Result<berth_image::Image, Error>, Vec<Event>) {
            let plan = crate::frontend::plan(dockerfile, "Dockerfile").unwrap();
            let ctx_dir = self.root.join("context");
            std::fs::create_dir_all(&ctx_dir).unwrap();
            let context = DirRoot::new(&ctx_dir);
            let events = Mutex::new(Vec::new());
            let req = BuildRequest { dockerfile_name: "Dockerfile".into(), ..req };
            // A failed build sets the flag to stop its other stages.
            self.cancel.store(false, std::sync::atomic::Ordering::Relaxed);
            let r = self.solver().build(&plan, &req, &context, &|e| events.lock().unwrap().push(e));
            (r, events.into_inner().unwrap())
        }
    }

    fn config_of(img: &berth_image::Image) -> Config {
        img.config.config().clone().unwrap()
    }

    #[test]
    fn config_steps_change_the_config_and_are_cached() {
        let f = Fixture::new();
        let df = "FROM scratch\nARG V=2\nENV A=1 B=${A}x\nLABEL l=$V\nEXPOSE 80\nUSER app\nVOLUME /data\n\
                  STOPSIGNAL SIGINT\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\nONBUILD RUN true\n";
        let (img, events) = f.build(df, BuildRequest::default());
        let img = img.unwrap();
        let cfg = config_of(&img);
        let env = cfg.env().clone().unwrap();
        // `${A}` is A before this ENV (unset), as in Docker: B=x, not 1x.
        assert!(env.contains(&"A=1".to_owned()) && env.contains(&"B=x".to_owned()), "{env:?}");
        assert_eq!(cfg.labels().clone().unwrap()["l"], "2");
        assert_eq!(cfg.exposed_ports().clone().unwrap(), vec!["80/tcp"]);
        assert_eq!(cfg.user().as_deref(), Some("app"));
        assert_eq!(cfg.volumes().clone().unwrap(), vec!["/data"]);
        assert_eq!(cfg.stop_signal().as_deref(), Some("SIGINT"));
        assert_eq!(cfg.cmd().clone().unwrap(), vec!["/bin/bash", "-c", "echo hi"]);
        assert_eq!(img.extras.on_build, Some(vec!["RUN true".to_owned()]));
        assert!(!events.iter().any(|e| matches!(e.kind, EventKind::Cached)));

        let (again, events) = f.build(df, BuildRequest::default());
        assert_eq!(again.unwrap().id, img.id, "an unchanged build gives the same image");
        let cached = events.iter().filter(|e| matches!(e.kind, EventKind::Cached)).count();
        assert_eq!(cached, 10, "every step after FROM comes from the cache");

        let no_cache = BuildRequest { no_cache: true, ..Default::default() };
        let (_, events) = f.build(df, no_cache);
        assert!(!events.iter().any(|e| matches!(e.kind, EventKind::Cached)));
    }

    #[test]
    fn a_build_arg_changes_only_the_steps_that_read_it() {
        let f = Fixture::new();
        let df = "FROM scratch\nARG V=1\nLABEL a=b\nLABEL v=$V\n";
        f.build(df, BuildRequest::default()).0.unwrap();
        let req = BuildRequest { build_args: [("V".to_owned(), "2".to_owned())].into(), ..Default::default() };
        let (img, events) = f.build(df, req);
        assert_eq!(config_of(&img.unwrap()).labels().clone().unwrap()["v"], "2");
        let cached: Vec<usize> =
            events.iter().filter(|e| matches!(e.kind, EventKind::Cached)).map(|e| e.index).collect();
        assert_eq!(cached, vec![2, 3], "ARG and the first LABEL are cached, `LABEL v=$V` is not");
    }

    #[test]
    fn a_failing_step_keeps_its_file_and_line() {
        let f = Fixture::new();
        let (r, events) = f.build("FROM scratch\nENV A=1\nUSER ${NOPE:?must be set}\n", BuildRequest::default());
        let e = r.unwrap_err();
        assert_eq!(e.location(), Some(("Dockerfile", 3)));
        assert!(matches!(&e, Error::Step { source, .. } if matches!(**source, Error::Shell { .. })), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Dockerfile:3: USER ${NOPE:?must be set}: failed to process \"${NOPE:?must be set}\": NOPE: must be set"
        );
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept as the source");
        assert!(events.iter().any(|e| e.index == 3 && matches!(e.kind, EventKind::Failed)));
    }

    #[test]
    fn env_and_label_pairs_see_the_values_from_before_the_instruction() {
        let f = Fixture::new();
        let df = "FROM scratch\nENV a=1\nENV a=2 b=$a c=${b:-unset}\nLABEL l=1\nLABEL l=2 m=$l\n";
        let (img, _) = f.build(df, BuildRequest::default());
        let cfg = config_of(&img.unwrap());
        let env = cfg.env().clone().unwrap();
        assert!(env.contains(&"a=2".to_owned()), "{env:?}");
        assert!(env.contains(&"b=1".to_owned()) && env.contains(&"c=unset".to_owned()), "{env:?}");
        // LABEL values see the environment, never other labels.
        assert_eq!(cfg.labels().clone().unwrap()["m"], "");
    }

    #[test]
    fn arg_defaults_see_the_args_before_them_on_the_same_line() {
        let f = Fixture::new();
        let df = "FROM scratch\nARG a=1\nARG a=2 b=$a\nENV e=1\nARG e=2 c=$e\nLABEL b=$b c=$c\n";
        let (img, _) = f.build(df, BuildRequest::default());
        let labels = config_of(&img.unwrap()).labels().clone().unwrap();
        assert_eq!(labels["b"], "2", "as BuildKit's dispatchArg");
        assert_eq!(labels["c"], "1", "an ENV of the same name wins over the ARG");
    }

    #[test]
    fn a_doubling_env_bomb_fails_at_its_line() {
        let f = Fixture::new();
        let mut df = String::from("FROM scratch\nENV V0=x\n");
        for n in 1..=40 {
            df.push_str(&format!("ENV V{n}=$V{}$V{}\n", n - 1, n - 1));
        }
        let started = std::time::Instant::now();
        let (r, _) = f.build(&df, BuildRequest::default());
        let e = r.unwrap_err();
        // V20 is 1 MiB, the bound itself; V21 (line 23) would pass it.
        assert_eq!(e.location(), Some(("Dockerfile", 23)), "{e}");
        assert!(e.to_string().contains("expanded word is longer than 1048576 bytes"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "fails fast");
    }

    #[test]
    fn many_large_words_cannot_grow_the_config_past_its_bound() {
        let f = Fixture::new();
        let mut df = String::from("FROM scratch\nENV V0=x\n");
        for n in 1..=20 {
            df.push_str(&format!("ENV V{n}=$V{}$V{}\n", n - 1, n - 1));
        }
        // Each LABEL adds 2 MiB (a 1 MiB key's value, twice); the config passes 16 MiB
        // after a few.
        for n in 0..10 {
            df.push_str(&format!("LABEL l{n}=$V20 m{n}=$V20\n"));
        }
        let (r, _) = f.build(&df, BuildRequest::default());
        let e = r.unwrap_err();
        assert!(matches!(&e, Error::Step { source, .. } if matches!(**source, Error::ConfigTooLarge { .. })), "{e}");
        let (_, line) = e.location().unwrap();
        assert!((23..=32).contains(&line), "{e}");
    }

    #[test]
    fn bind_mounts_key_run_steps_by_what_they_read() {
        let f = Fixture::new();
        let solver = f.solver();
        let plan = crate::frontend::plan(
            "FROM scratch\nRUN --mount=type=bind,source=src,target=/s --mount=type=cache,target=/c true\n",
            "Dockerfile",
        )
        .unwrap();
        let Step::Run { mounts, .. } = &plan.stages[0].steps[1].2 else { panic!("not a RUN") };
        let req = BuildRequest::default();
        let platforms = Platforms::new(None).unwrap();
        let ctx_dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(ctx_dir.path().join("src")).unwrap();
        std::fs::write(ctx_dir.path().join("src/a"), "1").unwrap();
        let context = DirRoot::new(ctx_dir.path());
        let ctx = Ctx {
            plan: &plan,
            req: &req,
            global: &[],
            auto: &[],
            platforms: &platforms,
            context: &context,
            context_view: crate::bindmount::ContextView::new(&f.root.join("builder")),
            events: &|_| {},
        };
        let done = BTreeMap::new();
        let cx = StepCx { ctx: &ctx, done: &done, no_cache: false, emit: &|_| {} };
        let first = solver.bind_keys(&cx, mounts, &[]);
        assert_eq!(first.len(), 1, "only the bind mount counts: {first:?}");
        assert_eq!(solver.bind_keys(&cx, mounts, &[]), first);
        std::fs::write(ctx_dir.path().join("src/a"), "2").unwrap();
        assert_ne!(solver.bind_keys(&cx, mounts, &[]), first, "a changed source changes the key");
    }

    #[test]
    fn run_needs_its_entitlement_before_anything_runs() {
        let f = Fixture::new();
        let (r, _) = f.build("FROM scratch\nRUN --security=insecure true\n", BuildRequest::default());
        let e = r.unwrap_err();
        assert!(matches!(&e, Error::Step { line: 2, source, .. } if matches!(**source, Error::InsecureNotAllowed)));
        assert!(e.to_string().contains("security.insecure"), "{e}");
    }

    #[test]
    fn copy_of_a_missing_source_fails_in_dockers_words() {
        let f = Fixture::new();
        let (r, _) = f.build("FROM scratch\nCOPY missing.txt /x\n", BuildRequest::default());
        let e = r.unwrap_err();
        assert_eq!(e.location(), Some(("Dockerfile", 2)));
        assert!(e.to_string().contains("missing.txt: file does not exist"), "{e}");
    }

    #[test]
    fn from_an_unknown_image_or_platform_fails_at_the_from_line() {
        let f = Fixture::new();
        let (r, _) = f.build("FROM scratch\nLABEL a=b\nFROM nosuchbase\n", BuildRequest::default());
        let e = r.unwrap_err();
        assert_eq!(e.location(), Some(("Dockerfile", 3)));
        assert!(e.to_string().contains("failed to resolve base image nosuchbase"), "{e}");
        let (r, _) = f.build("FROM --platform=linux/ scratch\n", BuildRequest::default());
        let e = r.unwrap_err();
        assert!(e.to_string().contains("failed to parse platform"), "{e}");
    }

    #[test]
    fn the_run_spec_has_the_steps_environment_and_mounts() {
        let f = Fixture::new();
        let solver = f.solver();
        let plan = crate::frontend::plan(
            "FROM scratch\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,target=$T --mount=type=ssh echo\n",
            "Dockerfile",
        )
        .unwrap();
        let Step::Run { cmd, mounts, network, insecure } = &plan.stages[0].steps[1].2 else { panic!("not a RUN") };
        assert!(matches!(mounts[1], RunMount::Deferred(_)), "a spec with variables waits for them");
        let req = BuildRequest {
            build_args: [("HTTP_PROXY".to_owned(), "http://p".to_owned())].into(),
            ssh: [("default".to_owned(), PathBuf::from("/tmp/agent.sock"))].into(),
            ..Default::default()
        };
        let platforms = Platforms::new(None).unwrap();
        let ctx_dir = tempfile::tempdir().unwrap();
        let context = DirRoot::new(ctx_dir.path());
        let ctx = Ctx {
            plan: &plan,
            req: &req,
            global: &[],
            auto: &[],
            platforms: &platforms,
            context: &context,
            context_view: crate::bindmount::ContextView::new(&f.root.join("builder")),
            events: &|_| {},
        };
        let done = BTreeMap::new();
        let cx = StepCx { ctx: &ctx, done: &done, no_cache: false, emit: &|_| {} };
        let mut config = default_config();
        let mut cfg = Config::default();
        cfg.set_env(Some(vec!["PATH=/bin".into(), "T=/scratch".into()]));
        config.set_config(Some(cfg));
        let st = State {
            layers: Vec::new(),
            config,
            key: Digest::of(b"k"),
            args: vec![("A".into(), "1".into())],
            extras: ConfigExtras::default(),
            leases: Vec::new(),
        };
        let run = RunStep { cmd, mounts, network: *network, insecure: *insecure };
        let (spec, _scratch) = solver.run_spec(&cx, &st, &run, &solver.env_of(&st)).unwrap();
        assert_eq!(spec.args, vec!["/bin/sh", "-c", "echo"]);
        assert_eq!(
            spec.env,
            vec!["PATH=/bin", "T=/scratch", "A=1", "HTTP_PROXY=http://p", "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"]
        );
        assert_eq!((spec.cwd.as_str(), spec.network), ("/", Network::Default));
        let targets: Vec<&str> = spec
            .mounts
            .iter()
            .map(|m| match m {
                StepMount::Bind { target, .. } | StepMount::Tmpfs { target, .. } => target.as_str(),
            })
            .collect();
        assert_eq!(targets, vec!["/c", "/scratch", "/run/buildkit/ssh_agent.0"]);
    }

    #[test]
    fn workdir_paths_are_absolute_and_clean() {
        assert_eq!(workdir_path(None, "app"), "/app");
        assert_eq!(workdir_path(Some("/srv/"), "app/../data/"), "/srv/data");
        assert_eq!(workdir_path(Some("/srv"), "/abs/./x"), "/abs/x");
        assert_eq!(workdir_path(Some("/"), "../.."), "/");
    }

    #[test]
    fn several_source_sets_need_a_directory_destination() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "a").unwrap();
        std::fs::write(dir.path().join("b"), "b").unwrap();
        let (a, _) = DirRoot::new(dir.path()).resolve(&["a".to_owned()], &[]).unwrap();
        let (b, _) = DirRoot::new(dir.path()).resolve(&["b".to_owned()], &[]).unwrap();
        let sets = vec![(a, false), (b, false)];
        let out = tempfile::tempdir().unwrap();
        let e = copy_sets(&sets, "/x", "/", out.path(), CopyOpts::default()).unwrap_err();
        assert!(matches!(e, Error::DestNotDir), "{e:?}");
        copy_sets(&sets, "/x/", "/", out.path(), CopyOpts::default()).unwrap();
        assert_eq!(std::fs::read_to_string(out.path().join("x/b")).unwrap(), "b");
    }

    #[test]
    fn step_keys_cover_the_variables_the_text_names() {
        let st = State {
            layers: Vec::new(),
            config: default_config(),
            key: Digest::of(b"parent"),
            args: Vec::new(),
            extras: ConfigExtras::default(),
            leases: Vec::new(),
        };
        let env = |v: &str| vec![("FOO".to_owned(), v.to_owned()), ("BAR".to_owned(), "x".to_owned())];
        let k = |text: &str, a: &str| step_key(&st, text, Vec::new(), &env(a));
        assert_ne!(k("LABEL l=$FOO", "1"), k("LABEL l=$FOO", "2"));
        assert_eq!(k("LABEL l=$BAR", "1"), k("LABEL l=$BAR", "2"));
        assert_ne!(
            step_key(&st, "COPY a /", vec!["d1".into()], &[]),
            step_key(&st, "COPY a /", vec!["d2".into()], &[])
        );
    }
}
