//! Loading a project: find the files, read the environment (`.env`, `--env-file`, the
//! process env), then per file parse → interpolate → validate → normalise → `include` →
//! `extends`, merge the files in order, and finish with what needs the whole project
//! (project name, env files, default network, resource names, consistency checks, the
//! dependency graph) before typing it into a `Project`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::{Mapping, Value};

use crate::error::ComposeError;
use crate::model::LoadOptions;
use crate::model::env;
use crate::model::interpolate::{TreeErrorKind, Vars, interpolate_tree, substitute};
use crate::model::merge::merge;
use crate::model::normalize::{Ctx, clean, normalize_file, scalar};
use crate::model::schema;
use crate::model::source::{KeyPath, Location, Seg, Source, TagKind, dotted, keys};
use crate::model::types::{Project, Service};

/// Compose file names looked for, in order of preference.
pub const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];
/// Override file names looked for beside the compose file, in order of preference.
pub const OVERRIDE_FILES: [&str; 4] =
    ["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"];

/// State shared while loading one project.
struct Loader<'a> {
    opts: &'a LoadOptions,
    /// Every file read, for locating errors (later files first when searching).
    sources: Vec<Source>,
    /// Parsed, interpolated, validated, normalised files by path (for `extends: file:`).
    cache: HashMap<PathBuf, Loaded>,
    warnings: Vec<String>,
}

/// One file ready to merge.
#[derive(Clone)]
struct Loaded {
    value: Value,
    tags: Vec<(KeyPath, TagKind)>,
    /// Index in `Loader::sources`.
    source: usize,
}

/// Loads, merges, interpolates, validates and normalises a project.
pub fn load(opts: &LoadOptions) -> Result<Project, ComposeError> {
    let working_dir = if opts.working_dir.as_os_str().is_empty() {
        std::env::current_dir().map_err(|source| ComposeError::Read { path: PathBuf::from("."), source })?
    } else {
        opts.working_dir.clone()
    };
    let process = &opts.environment;

    // COMPOSE_* settings may also come from the working directory's .env.
    let cwd_dotenv = read_env_file(&working_dir.join(".env"), process, false)?;
    let setting = |name: &str| process.get(name).or_else(|| cwd_dotenv.get(name)).cloned();

    let files = find_files(opts, &working_dir, &setting)?;
    let project_dir = match &opts.project_directory {
        Some(d) => absolute(&working_dir, d),
        // With `-f -` first, the working directory is the project directory.
        None if files[0].file_name().is_some_and(|n| n == "-") => working_dir.clone(),
        None => files[0].parent().map_or_else(|| working_dir.clone(), Path::to_path_buf),
    };

    // The interpolation environment: env files, then the process environment over them.
    let mut environment = BTreeMap::new();
    let env_files: Vec<PathBuf> = if opts.env_files.is_empty() {
        vec![project_dir.join(".env")]
    } else {
        opts.env_files.iter().map(|f| absolute(&working_dir, f)).collect()
    };
    for f in &env_files {
        let required = !opts.env_files.is_empty();
        let lookup_env = environment.clone();
        for (k, v) in read_env_file(f, &overlay(&lookup_env, process), required)? {
            environment.insert(k, v);
        }
    }
    for (k, v) in process {
        environment.insert(k.clone(), v.clone());
    }

    let profiles: Vec<String> = if opts.profiles.is_empty() {
        environment
            .get("COMPOSE_PROFILES")
            .map(|p| p.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default()
    } else {
        opts.profiles.clone()
    };

    // The name first: files may use ${COMPOSE_PROJECT_NAME}, as compose allows.
    let name = project_name(opts, &environment, &files, &project_dir)?;
    environment.insert("COMPOSE_PROJECT_NAME".into(), name.clone());

    let mut loader = Loader { opts, sources: Vec::new(), cache: HashMap::new(), warnings: Vec::new() };
    let mut model = Value::Mapping(Mapping::new());
    for file in &files {
        let loaded = loader.load_file(file, &project_dir, &environment, &mut vec![file.clone()])?;
        merge(&mut model, loaded.value, &mut Vec::new(), &loaded.tags);
    }

    loader.finish(&mut model, &name, &environment, &project_dir)?;

    let mut project = loader.type_project(model)?;
    project.name = name;
    project.working_dir = project_dir;
    project.config_files = files;
    project.environment = environment;
    project.profiles = profiles;
    if let Err(e) = project.check_dependencies() {
        return Err(loader.relocate(e, &project));
    }
    project.warnings = std::mem::take(&mut loader.warnings);
    Ok(project)
}

fn overlay(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = a.clone();
    out.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    clean(&if p.is_absolute() { p.to_path_buf() } else { base.join(p) })
}

/// Reads an env file into a map; a missing file is an error only when `required`.
fn read_env_file(
    path: &Path,
    lookup: &BTreeMap<String, String>,
    required: bool,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(BTreeMap::new()),
        Err(source) => return Err(ComposeError::Read { path: path.to_path_buf(), source }),
    };
    let f = |k: &str| lookup.get(k).cloned();
    let pairs = env::parse(&text, &f).map_err(|source| ComposeError::EnvFile { path: path.to_path_buf(), source })?;
    Ok(env::to_map(pairs))
}

/// `-f` files, else `COMPOSE_FILE`, else the default names in the working directory or
/// the nearest parent that has one (plus its override file).
fn find_files(
    opts: &LoadOptions,
    working_dir: &Path,
    setting: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, ComposeError> {
    if !opts.files.is_empty() {
        return Ok(opts.files.iter().map(|f| absolute(working_dir, f)).collect());
    }
    if let Some(list) = setting("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = setting("COMPOSE_PATH_SEPARATOR").filter(|s| !s.is_empty()).unwrap_or_else(|| ":".into());
        return Ok(list
            .split(sep.as_str())
            .filter(|s| !s.is_empty())
            .map(|f| absolute(working_dir, Path::new(f)))
            .collect());
    }
    let mut dir = Some(working_dir);
    while let Some(d) = dir {
        if let Some(main) = DEFAULT_FILES.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
            let mut files = vec![main];
            if let Some(o) = OVERRIDE_FILES.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
                files.push(o);
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(ComposeError::NoComposeFile { dir: working_dir.to_path_buf() })
}

/// What compose-go's normalisation adds to a service: the default Dockerfile name,
/// `if_not_present` spelt `missing`, clean mount targets, and a `depends_on` entry for every
/// service reached through `links`, `network_mode`/`ipc`/`pid`/`uts`/`cgroup: service:X` or
/// `volumes_from` (so that `config` shows every dependency in one place).
fn implicit_defaults(svc: &mut Mapping) {
    if let Some(Value::Mapping(b)) = svc.get_mut("build") {
        if !b.contains_key("dockerfile") && !b.contains_key("dockerfile_inline") {
            b.insert(Value::String("dockerfile".into()), Value::String("Dockerfile".into()));
        }
    }
    if svc.get("pull_policy").and_then(Value::as_str) == Some("if_not_present") {
        svc.insert(Value::String("pull_policy".into()), Value::String("missing".into()));
    }
    if let Some(Value::Sequence(vols)) = svc.get_mut("volumes") {
        for v in vols.iter_mut() {
            if let Some(Value::String(t)) = v.get_mut("target") {
                *t = clean(Path::new(t.as_str())).to_string_lossy().into_owned();
            }
        }
    }
    let mut implied: Vec<(String, bool)> = Vec::new();
    for link in svc.get("links").and_then(Value::as_sequence).into_iter().flatten() {
        if let Some(l) = link.as_str() {
            implied.push((l.split(':').next().unwrap_or(l).to_string(), true));
        }
    }
    for ns in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        if let Some(dep) = svc.get(ns).and_then(Value::as_str).and_then(|m| m.strip_prefix("service:")) {
            implied.push((dep.to_string(), true));
        }
    }
    for from in svc.get("volumes_from").and_then(Value::as_sequence).into_iter().flatten() {
        if let Some(f) = from.as_str().filter(|f| !f.starts_with("container:")) {
            implied.push((f.split(':').next().unwrap_or(f).to_string(), false));
        }
    }
    if implied.is_empty() {
        return;
    }
    let deps = svc.entry(Value::String("depends_on".into())).or_insert_with(|| Value::Mapping(Mapping::new()));
    let Value::Mapping(deps) = deps else { return };
    for (name, restart) in implied {
        deps.entry(Value::String(name)).or_insert_with(|| {
            let mut d = Mapping::new();
            d.insert(Value::String("condition".into()), Value::String("service_started".into()));
            d.insert(Value::String("restart".into()), Value::Bool(restart));
            d.insert(Value::String("required".into()), Value::Bool(true));
            Value::Mapping(d)
        });
    }
}

/// Lower-case letters, digits, `_` and `-`, not starting with `_` or `-`.
pub fn normalize_project_name(s: &str) -> String {
    let kept: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_string()
}

/// `-p`, else `COMPOSE_PROJECT_NAME`, else the last `name:` of the files (interpolated,
/// normalised), else the project directory's name (normalised).
fn project_name(
    opts: &LoadOptions,
    environment: &BTreeMap<String, String>,
    files: &[PathBuf],
    project_dir: &Path,
) -> Result<String, ComposeError> {
    // Given imperatively (-p, COMPOSE_PROJECT_NAME): must already be valid.
    let imperative = opts.project_name.clone().or_else(|| environment.get("COMPOSE_PROJECT_NAME").cloned());
    if let Some(n) = imperative.filter(|n| !n.is_empty()) {
        if normalize_project_name(&n) != n {
            return Err(ComposeError::ProjectName { name: n });
        }
        return Ok(n);
    }
    // A quick look at each file's `name:` only; anything wrong with a file is reported by
    // the full load that follows.
    let mut written: Option<String> = None;
    for f in files {
        let text = match (&opts.stdin, f.file_name()) {
            (Some(t), Some(n)) if n == "-" && !f.exists() => t.clone(),
            _ => std::fs::read_to_string(f).unwrap_or_default(),
        };
        for doc in serde_norway::Deserializer::from_str(&text) {
            let Ok(v) = Value::deserialize(doc) else { break };
            if let Some(n) = v.get("name").and_then(scalar).filter(|n| !n.is_empty()) {
                written = Some(n);
            }
        }
    }
    let lookup = |k: &str| environment.get(k).cloned();
    let from_file = written
        .and_then(|n| substitute(&n, &mut Vars::new(&lookup)).ok())
        .map(|n| normalize_project_name(&n))
        .filter(|n| !n.is_empty());
    let name = from_file.unwrap_or_else(|| {
        normalize_project_name(&project_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    });
    if name.is_empty() {
        return Err(ComposeError::EmptyProjectName);
    }
    Ok(name)
}

fn display_name(path: &Path, opts: &LoadOptions) -> String {
    let base = if opts.working_dir.as_os_str().is_empty() {
        std::env::current_dir().ok()
    } else {
        Some(opts.working_dir.clone())
    };
    match base.as_deref().and_then(|b| path.strip_prefix(b).ok()) {
        Some(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => path.to_string_lossy().into_owned(),
    }
}

impl Loader<'_> {
    /// Reads one file and makes it ready to merge. `base_dir` is what its relative paths
    /// are relative to; `chain` the files being loaded through `include`/`extends` (for
    /// cycles).
    fn load_file(
        &mut self,
        path: &Path,
        base_dir: &Path,
        environment: &BTreeMap<String, String>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Loaded, ComposeError> {
        if let Some(l) = self.cache.get(path) {
            return Ok(l.clone());
        }
        // `-f -`: the file given on standard input, named as compose names it.
        let src = match (&self.opts.stdin, path.file_name()) {
            (Some(text), Some(name)) if name == "-" && !path.exists() => Source::parse(path, "-".into(), text)?,
            _ => Source::read(path, display_name(path, self.opts))?,
        };
        let idx = self.sources.len();
        self.sources.push(src);
        let src = &self.sources[idx];
        let mut value = src.value.clone();

        let lookup = |k: &str| environment.get(k).cloned();
        let mut vars = Vars::new(&lookup);
        interpolate_tree(&mut value, &mut vars).map_err(|e| match e.kind {
            TreeErrorKind::Template(source) => ComposeError::Interpolation { at: src.locate(&e.path), source },
            TreeErrorKind::Cast(message) => ComposeError::Invalid { at: src.locate(&e.path), message },
        })?;
        for v in vars.unset {
            let w = format!("The {v:?} variable is not set. Defaulting to a blank string.");
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }

        if value.get("version").is_some() {
            let w = format!(
                "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                src.display
            );
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        schema::validate(&value).map_err(|f| {
            let mut at = src.locate(&f.line_path);
            at.key = if f.path.is_empty() { "(root)".into() } else { dotted(&f.path) };
            ComposeError::Schema { at, message: f.message }
        })?;

        let home = environment.get("HOME").map(String::as_str);
        let ctx = Ctx { base_dir, home, src, resolve_paths: self.opts.resolve_paths };
        normalize_file(&mut value, &ctx)?;
        let tags = src.tags.clone();
        let file_dir = path.parent().map_or_else(|| base_dir.to_path_buf(), Path::to_path_buf);

        self.apply_include(&mut value, idx, &file_dir, environment, chain)?;
        self.apply_extends(&mut value, idx, &tags, environment, chain)?;

        let loaded = Loaded { value, tags, source: idx };
        self.cache.insert(path.to_path_buf(), loaded.clone());
        Ok(loaded)
    }

    /// `include:`: each entry is loaded as a project of its own (its own directory and
    /// env files) and its resources added; a resource defined on both sides is an error.
    fn apply_include(
        &mut self,
        value: &mut Value,
        idx: usize,
        file_dir: &Path,
        environment: &BTreeMap<String, String>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<(), ComposeError> {
        let Some(Value::Sequence(entries)) = value.as_mapping_mut().and_then(|m| m.remove("include")) else {
            return Ok(());
        };
        for (i, entry) in entries.iter().enumerate() {
            let at = vec![Seg::Key("include".into()), Seg::Index(i)];
            let (paths, project_directory, env_files) = match entry {
                Value::Mapping(m) => {
                    let paths = match m.get("path") {
                        Some(Value::Sequence(s)) => s.iter().filter_map(scalar).collect(),
                        Some(v) => scalar(v).into_iter().collect(),
                        None => Vec::new(),
                    };
                    let env_files: Vec<String> = match m.get("env_file") {
                        Some(Value::Sequence(s)) => s.iter().filter_map(scalar).collect(),
                        Some(v) => scalar(v).into_iter().collect(),
                        None => Vec::new(),
                    };
                    (paths, m.get("project_directory").and_then(scalar), env_files)
                }
                other => (scalar(other).into_iter().collect(), None, Vec::new()),
            };
            let files: Vec<PathBuf> = paths.iter().map(|p| absolute(file_dir, Path::new(p))).collect();
            let Some(first) = files.first() else { continue };
            let dir = match &project_directory {
                Some(d) => absolute(file_dir, Path::new(d)),
                None => first.parent().map_or_else(|| file_dir.to_path_buf(), Path::to_path_buf),
            };
            // The included project's variables: its env files, under ours.
            let mut env_here = BTreeMap::new();
            let (env_paths, required) = if env_files.is_empty() {
                (vec![dir.join(".env")], false)
            } else {
                (env_files.iter().map(|f| absolute(file_dir, Path::new(f))).collect(), true)
            };
            for f in env_paths {
                env_here.extend(read_env_file(&f, environment, required)?);
            }
            env_here.extend(environment.iter().map(|(k, v)| (k.clone(), v.clone())));

            let mut included = Value::Mapping(Mapping::new());
            for f in &files {
                if chain.contains(f) {
                    let mut names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
                    names.push(f.display().to_string());
                    return Err(ComposeError::ReferenceCycle { kind: "include", chain: names });
                }
                if !f.is_file() {
                    return Err(ComposeError::Invalid {
                        at: self.sources[idx].locate(&at),
                        message: format!("include: file {} not found", f.display()),
                    });
                }
                chain.push(f.clone());
                let l = self.load_file(f, &dir, &env_here, chain)?;
                chain.pop();
                merge(&mut included, l.value, &mut Vec::new(), &l.tags);
            }
            let Some(root) = value.as_mapping_mut() else { continue };
            for section in ["services", "networks", "volumes", "secrets", "configs", "models"] {
                let Some(Value::Mapping(theirs)) = included.get(section).cloned() else { continue };
                let ours = root.entry(Value::String(section.into())).or_insert_with(|| Value::Mapping(Mapping::new()));
                if ours.is_null() {
                    *ours = Value::Mapping(Mapping::new());
                }
                let Value::Mapping(ours) = ours else { continue };
                for (k, v) in theirs {
                    if ours.contains_key(&k) {
                        let p = vec![Seg::Key(section.into()), Seg::Key(k.as_str().unwrap_or_default().into())];
                        return Err(ComposeError::Invalid {
                            at: self.sources[idx].locate(&p),
                            message: "conflicts with imported resource".into(),
                        });
                    }
                    ours.insert(k, v);
                }
            }
        }
        Ok(())
    }

    /// Resolves every `extends` in one normalised file.
    fn apply_extends(
        &mut self,
        value: &mut Value,
        idx: usize,
        tags: &[(KeyPath, TagKind)],
        environment: &BTreeMap<String, String>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<(), ComposeError> {
        let names: Vec<String> = match value.get("services") {
            Some(Value::Mapping(s)) => s.keys().filter_map(|k| k.as_str().map(String::from)).collect(),
            _ => return Ok(()),
        };
        let this_file = self.sources[idx].path.clone();
        for name in names {
            let mut seen = vec![(this_file.clone(), name.clone())];
            let resolved =
                self.resolve_service(value, &this_file, idx, &name, &name, tags, environment, chain, &mut seen)?;
            if let Some(Value::Mapping(s)) = value.get_mut("services") {
                s.insert(Value::String(name), resolved);
            }
        }
        Ok(())
    }

    /// The service `name` of `doc` (file `file`) with its `extends` chain merged in,
    /// placed as service `as_name`.
    #[allow(clippy::too_many_arguments)]
    fn resolve_service(
        &mut self,
        doc: &Value,
        file: &Path,
        idx: usize,
        name: &str,
        as_name: &str,
        tags: &[(KeyPath, TagKind)],
        environment: &BTreeMap<String, String>,
        chain: &mut Vec<PathBuf>,
        seen: &mut Vec<(PathBuf, String)>,
    ) -> Result<Value, ComposeError> {
        let svc = doc.get("services").and_then(|s| s.get(name)).cloned().unwrap_or(Value::Null);
        let Some(ext) = svc.get("extends").cloned() else { return Ok(svc) };
        let mut svc = svc;
        if let Some(m) = svc.as_mapping_mut() {
            m.remove("extends");
        }
        let base_name = ext.get("service").and_then(scalar).unwrap_or_default();
        let at = keys(&["services", name, "extends"]);
        let (base_doc, base_file, base_idx, base_tags) = match ext.get("file").and_then(scalar) {
            Some(f) => {
                let f = PathBuf::from(f);
                if !f.is_file() {
                    return Err(ComposeError::Invalid {
                        at: self.sources[idx].locate(&at),
                        message: format!("cannot read {}: no such file or directory", f.display()),
                    });
                }
                let dir = f.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
                // Loading the other file resolves its own extends (relative to it).
                let l = self.load_file(&f, &dir, environment, chain)?;
                (l.value, f, l.source, l.tags)
            }
            None => (doc.clone(), file.to_path_buf(), idx, tags.to_vec()),
        };
        if base_doc.get("services").and_then(|s| s.get(base_name.as_str())).is_none() {
            return Err(ComposeError::Invalid {
                at: self.sources[idx].locate(&at),
                message: format!(
                    "cannot extend service {name:?} in {}: service {base_name:?} not found",
                    base_file.display()
                ),
            });
        }
        let key = (base_file.clone(), base_name.clone());
        if seen.contains(&key) {
            let mut names: Vec<String> = seen.iter().map(|(_, s)| s.clone()).collect();
            names.push(base_name);
            return Err(ComposeError::ReferenceCycle { kind: "extends", chain: names });
        }
        seen.push(key);
        let mut base = self.resolve_service(
            &base_doc,
            &base_file,
            base_idx,
            &base_name,
            as_name,
            &base_tags,
            environment,
            chain,
            seen,
        )?;
        seen.pop();
        // The extending service's own tags, moved to where the merge sees them.
        let moved: Vec<(KeyPath, TagKind)> = tags
            .iter()
            .filter_map(|(p, k)| {
                let prefix = keys(&["services", name]);
                p.starts_with(&prefix).then(|| {
                    let mut q = keys(&["services", as_name]);
                    q.extend_from_slice(&p[prefix.len()..]);
                    (q, *k)
                })
            })
            .collect();
        let mut path = keys(&["services", as_name]);
        merge(&mut base, svc, &mut path, &moved);
        Ok(base)
    }

    /// Where a key path of the merged model was written: the file that writes the most
    /// of it (later files win ties).
    fn locate(&self, path: &[Seg]) -> Location {
        let mut best: Option<(usize, &Source)> = None;
        for src in self.sources.iter().rev() {
            let depth = (1..=path.len()).rev().find(|n| src.has(&path[..*n])).unwrap_or(0);
            if best.is_none_or(|(d, _)| depth > d) {
                best = Some((depth, src));
            }
        }
        match best {
            Some((_, src)) => src.locate(path),
            None => Location { file: String::new(), line: None, key: dotted(path) },
        }
    }

    fn invalid(&self, path: &[Seg], message: impl Into<String>) -> ComposeError {
        ComposeError::Invalid { at: self.locate(path), message: message.into() }
    }

    /// Gives graph errors (cycles, undefined dependencies) a file, line and key.
    fn relocate(&self, e: ComposeError, project: &Project) -> ComposeError {
        match e {
            ComposeError::DependencyCycle { ref cycle } => {
                let first = cycle.first().cloned().unwrap_or_default();
                let second = cycle.get(1).cloned().unwrap_or_default();
                let svc = project.service(&first);
                let p = if svc.is_some_and(|s| s.depends_on.contains_key(&second)) {
                    keys(&["services", &first, "depends_on", &second])
                } else {
                    keys(&["services", &first])
                };
                self.invalid(&p, e.to_string())
            }
            ComposeError::UndefinedDependency { ref service, ref dependency } => {
                let p = if project.service(service).is_some_and(|s| s.depends_on.contains_key(dependency)) {
                    keys(&["services", service, "depends_on", dependency])
                } else {
                    keys(&["services", service])
                };
                self.invalid(&p, e.to_string())
            }
            other => other,
        }
    }

    /// What needs the whole merged model.
    fn finish(
        &mut self,
        model: &mut Value,
        name: &str,
        environment: &BTreeMap<String, String>,
        project_dir: &Path,
    ) -> Result<(), ComposeError> {
        let Some(root) = model.as_mapping_mut() else { return Ok(()) };
        root.insert(Value::String("name".into()), Value::String(name.to_string()));
        if !root.contains_key("services") || root.get("services").is_some_and(Value::is_null) {
            root.insert(Value::String("services".into()), Value::Mapping(Mapping::new()));
        }
        let mut uses_default = false;
        let service_names: Vec<String> = root
            .get("services")
            .and_then(Value::as_mapping)
            .map(|s| s.keys().filter_map(|k| k.as_str().map(String::from)).collect())
            .unwrap_or_default();
        for sname in &service_names {
            let p = keys(&["services", sname]);
            let Some(Value::Mapping(svc)) = root.get_mut("services").and_then(|s| s.get_mut(sname.as_str())) else {
                continue;
            };
            self.service_env(svc, &p, environment, project_dir)?;
            implicit_defaults(svc);
            if !svc.contains_key("network_mode") && !svc.contains_key("provider") {
                let empty = match svc.get("networks") {
                    None | Some(Value::Null) => true,
                    Some(Value::Mapping(m)) => m.is_empty(),
                    _ => false,
                };
                if empty {
                    let mut n = Mapping::new();
                    n.insert(Value::String("default".into()), Value::Null);
                    svc.insert(Value::String("networks".into()), Value::Mapping(n));
                }
            }
            if svc.get("networks").and_then(|n| n.get("default")).is_some() {
                uses_default = true;
            }
            // `scale` and `deploy.replicas` are one thing.
            if let (Some(scale), Some(replicas)) = (
                svc.get("scale").and_then(Value::as_i64),
                svc.get("deploy").and_then(|d| d.get("replicas")).and_then(Value::as_i64),
            ) {
                if scale != replicas {
                    return Err(self.invalid(
                        &p,
                        "can't set distinct values on 'scale' and 'deploy.replicas': invalid compose project",
                    ));
                }
            }
        }
        if uses_default {
            let nets = root.entry(Value::String("networks".into())).or_insert_with(|| Value::Mapping(Mapping::new()));
            if nets.is_null() {
                *nets = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(n) = nets {
                n.entry(Value::String("default".into())).or_insert_with(|| Value::Mapping(Mapping::new()));
            }
        }
        // Engine names of networks, volumes, configs and secrets.
        for section in ["networks", "volumes", "configs", "secrets"] {
            if let Some(Value::Mapping(items)) = root.get_mut(section) {
                for (k, v) in items.iter_mut() {
                    let key = k.as_str().unwrap_or_default().to_string();
                    if v.is_null() {
                        *v = Value::Mapping(Mapping::new());
                    }
                    let Value::Mapping(m) = v else { continue };
                    if m.get("name").and_then(scalar).is_none_or(|n| n.is_empty()) {
                        let external = m.get("external").and_then(Value::as_bool).unwrap_or(false);
                        let n = if external { key.clone() } else { format!("{name}_{key}") };
                        m.insert(Value::String("name".into()), Value::String(n));
                    }
                }
            }
        }
        self.check_consistency(root)
    }

    /// `env_file` and `label_file` contents merged under `environment` / `labels`, and
    /// valueless `environment` entries taken from the project environment.
    fn service_env(
        &self,
        svc: &mut Mapping,
        path: &[Seg],
        environment: &BTreeMap<String, String>,
        project_dir: &Path,
    ) -> Result<(), ComposeError> {
        let mut from_files: Mapping = Mapping::new();
        if let Some(Value::Sequence(files)) = svc.get("env_file") {
            for (i, f) in files.iter().enumerate() {
                let p = f.get("path").and_then(scalar).unwrap_or_default();
                let required = f.get("required").and_then(Value::as_bool).unwrap_or(true);
                let raw = f.get("format").and_then(Value::as_str) == Some("raw");
                let mut at = path.to_vec();
                at.extend([Seg::Key("env_file".into()), Seg::Index(i)]);
                // Kept relative when paths are not resolved; read from the project directory.
                let text = match std::fs::read_to_string(project_dir.join(&p)) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if required {
                            return Err(self
                                .invalid(&at, format!("env file {p} not found: stat {p}: no such file or directory")));
                        }
                        continue;
                    }
                    Err(source) => return Err(ComposeError::Read { path: PathBuf::from(p), source }),
                };
                let pairs = if raw {
                    env::parse_raw(&text)
                } else {
                    let lookup = |k: &str| environment.get(k).cloned();
                    env::parse(&text, &lookup)
                        .map_err(|source| ComposeError::EnvFile { path: PathBuf::from(&p), source })?
                };
                for (k, v) in pairs {
                    from_files.insert(Value::String(k), Value::String(v));
                }
            }
        }
        // Consumed: compose does not print them once merged.
        svc.remove("env_file");
        let declared = svc.get("environment").and_then(Value::as_mapping).cloned().unwrap_or_default();
        if !from_files.is_empty() || !declared.is_empty() {
            let mut env = from_files;
            for (k, v) in declared {
                let v = match v {
                    Value::Null => {
                        k.as_str().and_then(|k| environment.get(k)).map_or(Value::Null, |s| Value::String(s.clone()))
                    }
                    other => other,
                };
                env.insert(k, v);
            }
            svc.insert(Value::String("environment".into()), Value::Mapping(env));
        }
        if let Some(Value::Sequence(files)) = svc.get("label_file").cloned() {
            let mut labels = Mapping::new();
            for (i, f) in files.iter().enumerate() {
                let p = f.as_str().unwrap_or_default();
                let mut at = path.to_vec();
                at.extend([Seg::Key("label_file".into()), Seg::Index(i)]);
                let text = std::fs::read_to_string(p).map_err(|_| {
                    self.invalid(&at, format!("label file {p} not found: stat {p}: no such file or directory"))
                })?;
                for (k, v) in env::parse_raw(&text) {
                    labels.insert(Value::String(k), Value::String(v));
                }
            }
            if let Some(Value::Mapping(own)) = svc.get("labels") {
                for (k, v) in own {
                    labels.insert(k.clone(), v.clone());
                }
            }
            svc.insert(Value::String("labels".into()), Value::Mapping(labels));
            svc.remove("label_file");
        }
        // Build args without a value come from the environment, or are left out.
        if let Some(Value::Mapping(args)) = svc.get_mut("build").and_then(|b| b.get_mut("args")) {
            let mut resolved = Mapping::new();
            for (k, v) in std::mem::take(args) {
                match v {
                    Value::Null => {
                        if let Some(val) = k.as_str().and_then(|k| environment.get(k)) {
                            resolved.insert(k, Value::String(val.clone()));
                        }
                    }
                    other => {
                        resolved.insert(k, other);
                    }
                }
            }
            *args = resolved;
        }
        // A service secret lands in /run/secrets/<source> unless told otherwise.
        if let Some(Value::Sequence(secrets)) = svc.get_mut("secrets") {
            for s in secrets.iter_mut() {
                if let Value::Mapping(m) = s {
                    if !m.contains_key("target") {
                        let src = m.get("source").and_then(Value::as_str).unwrap_or_default().to_string();
                        m.insert(Value::String("target".into()), Value::String(format!("/run/secrets/{src}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// compose-go's consistency checks, with its wording.
    fn check_consistency(&self, root: &Mapping) -> Result<(), ComposeError> {
        let section = |s: &str| root.get(s).and_then(Value::as_mapping).cloned().unwrap_or_default();
        let (networks, volumes, secrets, configs, services) =
            (section("networks"), section("volumes"), section("secrets"), section("configs"), section("services"));
        for (name, svc) in &services {
            let name = name.as_str().unwrap_or_default();
            let p = keys(&["services", name]);
            let has_build = svc.get("build").is_some();
            if !has_build && svc.get("image").is_none() && svc.get("provider").is_none() {
                return Err(self.invalid(
                    &p,
                    format!(
                        "service {name:?} has neither an image nor a build context specified: invalid compose project"
                    ),
                ));
            }
            if let Some(b) = svc.get("build") {
                if b.get("dockerfile").is_some() && b.get("dockerfile_inline").is_some() {
                    return Err(self.invalid(&keys(&["services", name, "build"]), format!("service {name:?} declares mutualy exclusive dockerfile and dockerfile_inline: invalid compose project")));
                }
                let ctx = b.get("context").and_then(scalar).unwrap_or_default();
                if self.opts.resolve_paths && Path::new(&ctx).is_absolute() && !Path::new(&ctx).is_dir() {
                    return Err(self.invalid(
                        &keys(&["services", name, "build", "context"]),
                        format!(
                            "build context {ctx:?} does not exist: unable to prepare context: path {ctx:?} not found"
                        ),
                    ));
                }
                for s in b.get("secrets").and_then(Value::as_sequence).into_iter().flatten() {
                    let src = s.get("source").and_then(scalar).unwrap_or_default();
                    if !secrets.contains_key(src.as_str()) {
                        return Err(self.invalid(
                            &keys(&["services", name, "build", "secrets"]),
                            format!("service {name:?} refers to undefined build secret {src}: invalid compose project"),
                        ));
                    }
                }
            }
            let mode = svc.get("network_mode").and_then(scalar);
            if mode.is_some() && svc.get("networks").is_some_and(|n| n.as_mapping().is_some_and(|m| !m.is_empty())) {
                return Err(self.invalid(&p, format!("service {name} declares mutually exclusive `network_mode` and `networks`: invalid compose project")));
            }
            if let Some(target) = mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
                if !services.contains_key(target) {
                    return Err(self.invalid(
                        &keys(&["services", name, "network_mode"]),
                        format!("service {target:?} not found for network_mode 'service:{target}'"),
                    ));
                }
            }
            for (net, _) in svc.get("networks").and_then(Value::as_mapping).into_iter().flatten() {
                let net = net.as_str().unwrap_or_default();
                if !networks.contains_key(net) {
                    return Err(self.invalid(
                        &keys(&["services", name, "networks", net]),
                        format!("service {name:?} refers to undefined network {net}: invalid compose project"),
                    ));
                }
            }
            for (i, v) in svc.get("volumes").and_then(Value::as_sequence).into_iter().flatten().enumerate() {
                if v.get("type").and_then(Value::as_str) == Some("volume") {
                    if let Some(src) = v.get("source").and_then(scalar) {
                        if !volumes.contains_key(src.as_str()) {
                            let mut at = keys(&["services", name, "volumes"]);
                            at.push(Seg::Index(i));
                            return Err(self.invalid(
                                &at,
                                format!("service {name:?} refers to undefined volume {src}: invalid compose project"),
                            ));
                        }
                    }
                }
            }
            for (kind, defined) in [("secret", &secrets), ("config", &configs)] {
                let key = format!("{kind}s");
                for s in svc.get(key.as_str()).and_then(Value::as_sequence).into_iter().flatten() {
                    let src = s.get("source").and_then(scalar).unwrap_or_default();
                    if !defined.contains_key(src.as_str()) {
                        return Err(self.invalid(
                            &keys(&["services", name, &key]),
                            format!("service {name:?} refers to undefined {kind} {src}: invalid compose project"),
                        ));
                    }
                }
            }
            if let Some(t) =
                svc.get("healthcheck").and_then(|h| h.get("test")).and_then(|t| t.get(0)).and_then(Value::as_str)
            {
                if !["CMD", "CMD-SHELL", "NONE"].contains(&t) {
                    return Err(self.invalid(
                        &keys(&["services", name, "healthcheck", "test"]),
                        "healthcheck.test must start either by \"CMD\", \"CMD-SHELL\" or \"NONE\"",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Types the merged model; a value that does not fit is reported at its service.
    fn type_project(&self, model: Value) -> Result<Project, ComposeError> {
        match serde_norway::from_value::<Project>(model.clone()) {
            Ok(p) => Ok(p),
            Err(e) => {
                if let Some(Value::Mapping(services)) = model.get("services") {
                    for (name, svc) in services {
                        if let Err(se) = serde_norway::from_value::<Service>(svc.clone()) {
                            let name = name.as_str().unwrap_or_default();
                            return Err(self.invalid(&keys(&["services", name]), se.to_string()));
                        }
                    }
                }
                Err(self.invalid(&[], e.to_string()))
            }
        }
    }
}
