//! Short syntax to long syntax, one file at a time (after interpolation and validation,
//! before merging): ports, volumes, environment, depends_on, networks, build, command …
//! all in the one shape `docker compose config` prints, with relative paths resolved
//! against the directory the file's paths are relative to.

use std::path::{Component, Path, PathBuf};

use serde_norway::{Mapping, Number, Value};

use crate::error::ComposeError;
use crate::model::source::{KeyPath, Seg, Source};

/// What normalising one file needs.
pub struct Ctx<'a> {
    /// Relative paths in this file are relative to this directory.
    pub base_dir: &'a Path,
    /// `HOME` for `~` in bind sources.
    pub home: Option<&'a str>,
    /// The file (for error locations).
    pub src: &'a Source,
    /// Resolve relative paths (else they are kept as written).
    pub resolve_paths: bool,
}

impl Ctx<'_> {
    fn err(&self, path: &[Seg], message: impl Into<String>) -> ComposeError {
        ComposeError::Invalid { at: self.src.locate(path), message: message.into() }
    }

    /// A host path made absolute (and `~` expanded), lexically cleaned.
    pub fn resolve(&self, p: &str) -> String {
        let expanded = match (p.strip_prefix('~'), self.home) {
            (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => format!("{home}{rest}"),
            _ => p.to_string(),
        };
        if !self.resolve_paths {
            return expanded;
        }
        let path = Path::new(&expanded);
        let joined = if path.is_absolute() { path.to_path_buf() } else { self.base_dir.join(path) };
        clean(&joined).to_string_lossy().into_owned()
    }
}

/// Lexical cleaning (`a/./b/../c` → `a/c`), as Go's `filepath.Clean`.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

fn with(path: &[Seg], more: &[&str]) -> KeyPath {
    let mut p = path.to_vec();
    p.extend(more.iter().map(|k| Seg::Key((*k).to_string())));
    p
}

fn idx(path: &[Seg], i: usize) -> KeyPath {
    let mut p = path.to_vec();
    p.push(Seg::Index(i));
    p
}

/// A scalar as compose reads it into a string field.
pub fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_or_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.iter().filter_map(scalar).map(Value::String).collect(),
        Value::Null => Vec::new(),
        other => scalar(other).map(Value::String).into_iter().collect(),
    }
}

/// `list_or_dict` to a mapping. In list form `KEY=VAL` gives a value and a bare `KEY`
/// gives `bare` (null for environment and args, "" for labels). In map form a null value
/// becomes `bare` too; scalars become strings.
fn list_or_dict(v: &Value, bare: &Value) -> Mapping {
    let mut out = Mapping::new();
    match v {
        Value::Sequence(items) => {
            for item in items {
                let Some(s) = scalar(item) else { continue };
                match s.split_once('=') {
                    Some((k, val)) => out.insert(key(k), Value::String(val.to_string())),
                    None => out.insert(key(&s), bare.clone()),
                };
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m {
                let val = match val {
                    Value::Null => bare.clone(),
                    other => scalar(other).map_or(Value::Null, Value::String),
                };
                out.insert(k.clone(), val);
            }
        }
        _ => {}
    }
    out
}

fn set(m: &mut Mapping, k: &str, v: Value) {
    m.insert(key(k), v);
}

fn get<'m>(m: &'m Mapping, k: &str) -> Option<&'m Value> {
    m.get(k)
}

fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => Some(true),
            "false" | "no" | "n" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn to_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn to_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Fields whose schema type is "boolean or string" / "integer or string" / "number or
/// string": the string form becomes the typed value.
fn coerce(
    m: &mut Mapping,
    path: &[Seg],
    ctx: &Ctx<'_>,
    bools: &[&str],
    ints: &[&str],
    floats: &[&str],
) -> Result<(), ComposeError> {
    for (name, kind) in
        bools.iter().map(|n| (n, 0)).chain(ints.iter().map(|n| (n, 1))).chain(floats.iter().map(|n| (n, 2)))
    {
        let Some(v) = m.get(*name) else { continue };
        if !matches!(v, Value::String(_)) {
            continue;
        }
        let new = match kind {
            0 => to_bool(v).map(Value::Bool),
            1 => to_int(v).map(|n| Value::Number(Number::from(n))),
            _ => to_float(v).map(|n| Value::Number(Number::from(n))),
        };
        match new {
            Some(n) => set(m, name, n),
            None => {
                let what = ["boolean", "integer", "number"][kind];
                return Err(ctx.err(&with(path, &[name]), format!("invalid {what}: {}", scalar(v).unwrap_or_default())));
            }
        }
    }
    Ok(())
}

/// Normalises a whole file in place.
pub fn normalize_file(doc: &mut Value, ctx: &Ctx<'_>) -> Result<(), ComposeError> {
    let Value::Mapping(root) = doc else { return Ok(()) };
    root.remove("version");
    if let Some(Value::Mapping(services)) = root.get_mut("services") {
        for (name, svc) in services.iter_mut() {
            let name = name.as_str().unwrap_or_default().to_string();
            if svc.is_null() {
                *svc = Value::Mapping(Mapping::new());
            }
            if let Value::Mapping(m) = svc {
                service(m, &[Seg::Key("services".into()), Seg::Key(name)], ctx)?;
            }
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        if let Some(Value::Mapping(items)) = root.get_mut(section) {
            for (name, item) in items.iter_mut() {
                let name = name.as_str().unwrap_or_default().to_string();
                if item.is_null() {
                    *item = Value::Mapping(Mapping::new());
                }
                if let Value::Mapping(m) = item {
                    let path = [Seg::Key(section.into()), Seg::Key(name)];
                    top_level(section, m, &path, ctx)?;
                }
            }
        }
    }
    Ok(())
}

fn top_level(section: &str, m: &mut Mapping, path: &[Seg], ctx: &Ctx<'_>) -> Result<(), ComposeError> {
    coerce(m, path, ctx, &["external", "internal", "attachable", "enable_ipv4", "enable_ipv6"], &[], &[])?;
    // Legacy `external: {name: x}`.
    if let Some(Value::Mapping(ext)) = m.get("external").cloned() {
        if let Some(n) = ext.get("name").and_then(scalar) {
            set(m, "name", Value::String(n));
        }
        set(m, "external", Value::Bool(true));
    }
    if let Some(l) = m.get("labels") {
        let l = list_or_dict(l, &Value::String(String::new()));
        set(m, "labels", Value::Mapping(l));
    }
    for k in ["driver_opts"] {
        if let Some(Value::Mapping(o)) = m.get(k) {
            let o = list_or_dict(&Value::Mapping(o.clone()), &Value::String(String::new()));
            set(m, k, Value::Mapping(o));
        }
    }
    if section == "networks" {
        if let Some(Value::Mapping(ipam)) = m.get_mut("ipam") {
            if let Some(Value::Sequence(pools)) = ipam.get_mut("config") {
                for pool in pools.iter_mut() {
                    if let Value::Mapping(p) = pool {
                        if let Some(a) = p.get("aux_addresses") {
                            let a = list_or_dict(a, &Value::String(String::new()));
                            set(p, "aux_addresses", Value::Mapping(a));
                        }
                    }
                }
            }
        }
    }
    if section == "secrets" || section == "configs" {
        if let Some(f) = m.get("file").and_then(scalar) {
            set(m, "file", Value::String(ctx.resolve(&f)));
        }
    }
    Ok(())
}

fn service(m: &mut Mapping, path: &[Seg], ctx: &Ctx<'_>) -> Result<(), ComposeError> {
    coerce(
        m,
        path,
        ctx,
        &["init", "oom_kill_disable", "privileged", "read_only", "stdin_open", "tty", "attach", "use_api_socket"],
        &[
            "cpu_count",
            "cpu_period",
            "cpu_quota",
            "cpu_rt_period",
            "cpu_rt_runtime",
            "cpu_shares",
            "mem_swappiness",
            "oom_score_adj",
            "pids_limit",
            "scale",
        ],
        &["cpus", "cpu_percent"],
    )?;

    if let Some(b) = m.get("build").cloned() {
        let p = with(path, &["build"]);
        let mut b = match b {
            Value::Mapping(b) => b,
            other => {
                let mut b = Mapping::new();
                set(&mut b, "context", Value::String(scalar(&other).unwrap_or_default()));
                b
            }
        };
        build(&mut b, &p, ctx)?;
        set(m, "build", Value::Mapping(b));
    }
    for k in ["command", "entrypoint"] {
        match m.get(k).cloned() {
            // Kept: a `!reset` on it must reach the merge; typed, it is "not set".
            Some(Value::Null) => {}
            Some(Value::Sequence(items)) => {
                let items = items.iter().map(|i| Value::String(scalar(i).unwrap_or_default())).collect();
                set(m, k, Value::Sequence(items));
            }
            Some(other) => {
                let s = scalar(&other).unwrap_or_default();
                let words = shlex::split(&s)
                    .ok_or_else(|| ctx.err(&with(path, &[k]), format!("invalid command line string {s:?}")))?;
                set(m, k, Value::Sequence(words.into_iter().map(Value::String).collect()));
            }
            None => {}
        }
    }
    if let Some(e) = m.get("environment") {
        let e = list_or_dict(e, &Value::Null);
        set(m, "environment", Value::Mapping(e));
    }
    for k in ["labels", "annotations", "sysctls", "storage_opt"] {
        if let Some(l) = m.get(k) {
            let l = list_or_dict(l, &Value::String(String::new()));
            set(m, k, Value::Mapping(l));
        }
    }
    if let Some(f) = m.get("env_file").cloned() {
        let items = match f {
            Value::Sequence(s) => s,
            other => vec![other],
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let mut e = Mapping::new();
            match item {
                Value::Mapping(mut o) => {
                    coerce(&mut o, &idx(&with(path, &["env_file"]), i), ctx, &["required"], &[], &[])?;
                    let p = o.get("path").and_then(scalar).unwrap_or_default();
                    set(&mut e, "path", Value::String(ctx.resolve(&p)));
                    set(&mut e, "required", o.get("required").cloned().unwrap_or(Value::Bool(true)));
                    if let Some(fmt) = o.get("format").and_then(scalar) {
                        set(&mut e, "format", Value::String(fmt));
                    }
                }
                other => {
                    let p = scalar(&other).unwrap_or_default();
                    set(&mut e, "path", Value::String(ctx.resolve(&p)));
                    set(&mut e, "required", Value::Bool(true));
                }
            }
            out.push(Value::Mapping(e));
        }
        set(m, "env_file", Value::Sequence(out));
    }
    if let Some(f) = m.get("label_file").cloned() {
        let files = string_or_list(&f)
            .into_iter()
            .map(|v| Value::String(ctx.resolve(v.as_str().unwrap_or_default())))
            .collect();
        set(m, "label_file", Value::Sequence(files));
    }
    for k in [
        "dns",
        "dns_search",
        "tmpfs",
        "expose",
        "profiles",
        "cap_add",
        "cap_drop",
        "dns_opt",
        "security_opt",
        "links",
        "external_links",
        "group_add",
        "volumes_from",
        "device_cgroup_rules",
    ] {
        if let Some(v) = m.get(k) {
            let l = string_or_list(v);
            set(m, k, Value::Sequence(l));
        }
    }
    if let Some(h) = m.get("extra_hosts").cloned() {
        set(m, "extra_hosts", Value::Mapping(extra_hosts(&h, &with(path, &["extra_hosts"]), ctx)?));
    }
    if let Some(Value::Sequence(ports)) = m.get("ports").cloned() {
        let mut out = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            out.extend(port(p, &idx(&with(path, &["ports"]), i), ctx)?);
        }
        set(m, "ports", Value::Sequence(out));
    }
    if let Some(Value::Sequence(vols)) = m.get("volumes").cloned() {
        let mut out = Vec::new();
        for (i, v) in vols.iter().enumerate() {
            out.push(volume(v, &idx(&with(path, &["volumes"]), i), ctx)?);
        }
        set(m, "volumes", Value::Sequence(out));
    }
    if let Some(n) = m.get("networks").cloned() {
        let mut out = Mapping::new();
        match n {
            Value::Sequence(items) => {
                for i in items {
                    out.insert(Value::String(scalar(&i).unwrap_or_default()), Value::Null);
                }
            }
            Value::Mapping(items) => {
                for (k, v) in items {
                    let v = match v {
                        Value::Mapping(mut o) => {
                            if let Some(a) = o.get("aliases") {
                                let a = string_or_list(a);
                                set(&mut o, "aliases", Value::Sequence(a));
                            }
                            if let Some(d) = o.get("driver_opts") {
                                let d = list_or_dict(d, &Value::String(String::new()));
                                set(&mut o, "driver_opts", Value::Mapping(d));
                            }
                            let np = with(path, &["networks", k.as_str().unwrap_or_default()]);
                            coerce(&mut o, &np, ctx, &[], &["priority", "gw_priority"], &[])?;
                            Value::Mapping(o)
                        }
                        _ => Value::Null,
                    };
                    out.insert(k, v);
                }
            }
            _ => {}
        }
        set(m, "networks", Value::Mapping(out));
    }
    if let Some(d) = m.get("depends_on").cloned() {
        let mut out = Mapping::new();
        let default = || {
            let mut d = Mapping::new();
            set(&mut d, "condition", Value::String("service_started".into()));
            set(&mut d, "required", Value::Bool(true));
            d
        };
        match d {
            Value::Sequence(items) => {
                for i in items {
                    out.insert(Value::String(scalar(&i).unwrap_or_default()), Value::Mapping(default()));
                }
            }
            Value::Mapping(items) => {
                for (k, v) in items {
                    let mut dep = default();
                    if let Value::Mapping(o) = v {
                        for (ok, ov) in o {
                            dep.insert(ok, ov);
                        }
                    }
                    let dp = with(path, &["depends_on", k.as_str().unwrap_or_default()]);
                    coerce(&mut dep, &dp, ctx, &["required", "restart"], &[], &[])?;
                    out.insert(k, Value::Mapping(dep));
                }
            }
            _ => {}
        }
        set(m, "depends_on", Value::Mapping(out));
    }
    if let Some(Value::Mapping(mut h)) = m.get("healthcheck").cloned() {
        let hp = with(path, &["healthcheck"]);
        match h.get("test").cloned() {
            Some(Value::Sequence(t)) => {
                let t = t.iter().map(|i| Value::String(scalar(i).unwrap_or_default())).collect();
                set(&mut h, "test", Value::Sequence(t));
            }
            Some(Value::Null) | None => {}
            Some(other) => {
                let s = scalar(&other).unwrap_or_default();
                set(&mut h, "test", Value::Sequence(vec![Value::String("CMD-SHELL".into()), Value::String(s)]));
            }
        }
        coerce(&mut h, &hp, ctx, &["disable"], &["retries"], &[])?;
        set(m, "healthcheck", Value::Mapping(h));
    }
    if let Some(Value::Mapping(mut d)) = m.get("deploy").cloned() {
        deploy(&mut d, &with(path, &["deploy"]), ctx)?;
        set(m, "deploy", Value::Mapping(d));
    } else if m.get("deploy").is_some_and(Value::is_null) {
        m.remove("deploy");
    }
    if let Some(g) = m.get("gpus").cloned() {
        let reqs = match g {
            Value::Sequence(items) => {
                let mut out = Vec::new();
                for (i, r) in items.into_iter().enumerate() {
                    out.push(device_request(r, &idx(&with(path, &["gpus"]), i), ctx)?);
                }
                out
            }
            // `gpus: all`.
            _ => {
                let mut r = Mapping::new();
                set(&mut r, "count", Value::String("all".into()));
                vec![Value::Mapping(r)]
            }
        };
        set(m, "gpus", Value::Sequence(reqs));
    }
    if let Some(Value::Sequence(devs)) = m.get("devices").cloned() {
        let mut out = Vec::new();
        for d in devs {
            out.push(match d {
                Value::Mapping(o) => Value::Mapping(o),
                other => {
                    let s = scalar(&other).unwrap_or_default();
                    let mut parts = s.splitn(3, ':');
                    let mut o = Mapping::new();
                    set(&mut o, "source", Value::String(parts.next().unwrap_or_default().to_string()));
                    if let Some(t) = parts.next() {
                        set(&mut o, "target", Value::String(t.to_string()));
                    }
                    if let Some(p) = parts.next() {
                        set(&mut o, "permissions", Value::String(p.to_string()));
                    }
                    Value::Mapping(o)
                }
            });
        }
        set(m, "devices", Value::Sequence(out));
    }
    if let Some(Value::Mapping(u)) = m.get("ulimits").cloned() {
        set(m, "ulimits", Value::Mapping(ulimits(&u, &with(path, &["ulimits"]), ctx)?));
    }
    if let Some(Value::Mapping(mut l)) = m.get("logging").cloned() {
        if let Some(o) = l.get("options") {
            let o = list_or_dict(o, &Value::String(String::new()));
            set(&mut l, "options", Value::Mapping(o));
        }
        set(m, "logging", Value::Mapping(l));
    }
    for k in ["secrets", "configs"] {
        if let Some(Value::Sequence(items)) = m.get(k).cloned() {
            let mut out = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                out.push(file_ref(item, &idx(&with(path, &[k]), i), ctx)?);
            }
            set(m, k, Value::Sequence(out));
        }
    }
    if let Some(Value::Mapping(mut e)) = m.get("extends").cloned() {
        if let Some(f) = e.get("file").and_then(scalar) {
            set(&mut e, "file", Value::String(ctx.resolve(&f)));
        }
        set(m, "extends", Value::Mapping(e));
    } else if let Some(Value::String(s)) = m.get("extends").cloned() {
        let mut e = Mapping::new();
        set(&mut e, "service", Value::String(s));
        set(m, "extends", Value::Mapping(e));
    }
    // Numbers where compose keeps strings.
    for k in ["mem_limit", "mem_reservation", "memswap_limit", "shm_size"] {
        if let Some(v) = m.get(k) {
            if crate::model::types::Bytes::parse(&scalar(v).unwrap_or_default()).is_none() {
                return Err(ctx.err(&with(path, &[k]), format!("invalid size: '{}'", scalar(v).unwrap_or_default())));
            }
        }
    }
    check_duration(m, "stop_grace_period", path, ctx)?;
    if let Some(Value::Mapping(h)) = m.get("healthcheck") {
        let hp = with(path, &["healthcheck"]);
        for k in ["interval", "timeout", "start_period", "start_interval"] {
            check_duration(h, k, &hp, ctx)?;
        }
    }
    for k in [
        "user",
        "working_dir",
        "hostname",
        "domainname",
        "image",
        "container_name",
        "restart",
        "stop_signal",
        "platform",
        "ipc",
        "pid",
        "uts",
        "userns_mode",
        "network_mode",
        "cgroup",
        "cgroup_parent",
        "cpuset",
        "isolation",
        "mac_address",
        "runtime",
        "pull_policy",
        "volume_driver",
    ] {
        if let Some(v) = m.get(k) {
            if let Some(s) = scalar(v) {
                set(m, k, Value::String(s));
            }
        }
    }
    Ok(())
}

fn check_duration(m: &Mapping, k: &str, path: &[Seg], ctx: &Ctx<'_>) -> Result<(), ComposeError> {
    if let Some(Value::String(s)) = get(m, k) {
        if crate::model::types::Duration::parse(s).is_none() {
            return Err(ctx.err(&with(path, &[k]), format!("time: invalid duration {s:?}")));
        }
    }
    Ok(())
}

fn is_remote_context(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn build(b: &mut Mapping, path: &[Seg], ctx: &Ctx<'_>) -> Result<(), ComposeError> {
    coerce(b, path, ctx, &["no_cache", "pull", "privileged"], &[], &[])?;
    let context = b.get("context").and_then(scalar).unwrap_or_else(|| ".".into());
    let context = if is_remote_context(&context) { context } else { ctx.resolve(&context) };
    set(b, "context", Value::String(context));
    if let Some(a) = b.get("args") {
        let a = list_or_dict(a, &Value::Null);
        set(b, "args", Value::Mapping(a));
    }
    if let Some(l) = b.get("labels") {
        let l = list_or_dict(l, &Value::String(String::new()));
        set(b, "labels", Value::Mapping(l));
    }
    if let Some(a) = b.get("additional_contexts") {
        let mut a = list_or_dict(a, &Value::String(String::new()));
        for (_, v) in a.iter_mut() {
            if let Some(s) = v.as_str() {
                // Paths are resolved; URLs, `docker-image://…`, `service:…` kept.
                if !is_remote_context(s) && !s.contains(':') {
                    *v = Value::String(ctx.resolve(s));
                }
            }
        }
        set(b, "additional_contexts", Value::Mapping(a));
    }
    for k in ["cache_from", "cache_to", "tags", "platforms", "entitlements"] {
        if let Some(v) = b.get(k) {
            let l = string_or_list(v);
            set(b, k, Value::Sequence(l));
        }
    }
    if let Some(s) = b.get("ssh").cloned() {
        let list = match s {
            Value::Mapping(m) => m
                .iter()
                .map(|(k, v)| {
                    let k = scalar(k).unwrap_or_default();
                    match scalar(v) {
                        Some(v) if !v.is_empty() => Value::String(format!("{k}={v}")),
                        _ => Value::String(k),
                    }
                })
                .collect(),
            other => string_or_list(&other),
        };
        set(b, "ssh", Value::Sequence(list));
    }
    if let Some(h) = b.get("extra_hosts").cloned() {
        let h = extra_hosts(&h, &with(path, &["extra_hosts"]), ctx)?;
        set(b, "extra_hosts", Value::Mapping(h));
    }
    if let Some(Value::Sequence(items)) = b.get("secrets").cloned() {
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            out.push(file_ref(item, &idx(&with(path, &["secrets"]), i), ctx)?);
        }
        set(b, "secrets", Value::Sequence(out));
    }
    if let Some(Value::Mapping(u)) = b.get("ulimits").cloned() {
        let u = ulimits(&u, &with(path, &["ulimits"]), ctx)?;
        set(b, "ulimits", Value::Mapping(u));
    }
    Ok(())
}

fn extra_hosts(v: &Value, path: &[Seg], ctx: &Ctx<'_>) -> Result<Mapping, ComposeError> {
    let mut out = Mapping::new();
    let mut add = |host: String, ip: String| {
        let entry = out.entry(Value::String(host)).or_insert_with(|| Value::Sequence(Vec::new()));
        if let Value::Sequence(ips) = entry {
            let ip = Value::String(ip);
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
    };
    match v {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let s = scalar(item).unwrap_or_default();
                // `host=ip`, or the older `host:ip` (the IP may be IPv6, with colons).
                let (h, ip) = s
                    .split_once('=')
                    .or_else(|| s.split_once(':'))
                    .ok_or_else(|| ctx.err(&idx(path, i), format!("invalid extra host {s:?}: expected host=ip")))?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                add(h.to_string(), ip.to_string());
            }
        }
        Value::Mapping(m) => {
            for (h, ips) in m {
                let h = scalar(h).unwrap_or_default();
                for ip in string_or_list(ips) {
                    add(h.clone(), ip.as_str().unwrap_or_default().to_string());
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

fn ulimits(u: &Mapping, path: &[Seg], ctx: &Ctx<'_>) -> Result<Mapping, ComposeError> {
    let mut out = Mapping::new();
    for (k, v) in u {
        let name = scalar(k).unwrap_or_default();
        let p = with(path, &[&name]);
        let (soft, hard) = match v {
            Value::Mapping(o) => {
                let soft = o.get("soft").and_then(to_int);
                let hard = o.get("hard").and_then(to_int);
                match (soft, hard) {
                    (Some(s), Some(h)) => (s, h),
                    _ => return Err(ctx.err(&p, "ulimit needs both soft and hard")),
                }
            }
            other => {
                let n = to_int(other)
                    .ok_or_else(|| ctx.err(&p, format!("invalid ulimit {:?}", scalar(other).unwrap_or_default())))?;
                (n, n)
            }
        };
        let mut o = Mapping::new();
        set(&mut o, "soft", Value::Number(soft.into()));
        set(&mut o, "hard", Value::Number(hard.into()));
        out.insert(Value::String(name), Value::Mapping(o));
    }
    Ok(out)
}

fn file_ref(item: Value, path: &[Seg], ctx: &Ctx<'_>) -> Result<Value, ComposeError> {
    Ok(match item {
        Value::Mapping(mut o) => {
            for k in ["uid", "gid", "target", "source"] {
                if let Some(s) = o.get(k).and_then(scalar) {
                    set(&mut o, k, Value::String(s));
                }
            }
            if let Some(mode) = o.get("mode").cloned() {
                let n = match &mode {
                    Value::Number(n) => n.as_u64(),
                    // A string is octal, as compose reads it.
                    Value::String(s) => u64::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
                    _ => None,
                };
                let n = n.ok_or_else(|| {
                    ctx.err(
                        &with(path, &["mode"]),
                        format!("invalid file mode {:?}", scalar(&mode).unwrap_or_default()),
                    )
                })?;
                set(&mut o, "mode", Value::Number(n.into()));
            }
            Value::Mapping(o)
        }
        other => {
            let mut o = Mapping::new();
            set(&mut o, "source", Value::String(scalar(&other).unwrap_or_default()));
            Value::Mapping(o)
        }
    })
}

fn device_request(r: Value, path: &[Seg], ctx: &Ctx<'_>) -> Result<Value, ComposeError> {
    let Value::Mapping(mut o) = r else { return Err(ctx.err(path, "a device request must be a mapping")) };
    for k in ["capabilities", "device_ids"] {
        if let Some(v) = o.get(k) {
            let l = string_or_list(v);
            set(&mut o, k, Value::Sequence(l));
        }
    }
    if let Some(c) = o.get("count").cloned() {
        let c = match &c {
            Value::String(s) if s == "all" => c,
            other => Value::Number(
                to_int(other)
                    .ok_or_else(|| {
                        ctx.err(
                            &with(path, &["count"]),
                            format!(
                                "invalid count {:?}: must be \"all\" or a number",
                                scalar(other).unwrap_or_default()
                            ),
                        )
                    })?
                    .into(),
            ),
        };
        set(&mut o, "count", c);
    }
    if let Some(opts) = o.get("options") {
        let opts = list_or_dict(opts, &Value::String(String::new()));
        set(&mut o, "options", Value::Mapping(opts));
    }
    Ok(Value::Mapping(o))
}

fn deploy(d: &mut Mapping, path: &[Seg], ctx: &Ctx<'_>) -> Result<(), ComposeError> {
    coerce(d, path, ctx, &[], &["replicas"], &[])?;
    if let Some(l) = d.get("labels") {
        let l = list_or_dict(l, &Value::String(String::new()));
        set(d, "labels", Value::Mapping(l));
    }
    if let Some(Value::Mapping(mut res)) = d.get("resources").cloned() {
        for which in ["limits", "reservations"] {
            if let Some(Value::Mapping(mut r)) = res.get(which).cloned() {
                let rp = with(path, &["resources", which]);
                coerce(&mut r, &rp, ctx, &[], &["pids"], &["cpus"])?;
                if let Some(v) = r.get("memory") {
                    if crate::model::types::Bytes::parse(&scalar(v).unwrap_or_default()).is_none() {
                        return Err(ctx.err(
                            &with(&rp, &["memory"]),
                            format!("invalid size: '{}'", scalar(v).unwrap_or_default()),
                        ));
                    }
                }
                if let Some(Value::Sequence(devs)) = r.get("devices").cloned() {
                    let mut out = Vec::new();
                    for (i, dv) in devs.into_iter().enumerate() {
                        out.push(device_request(dv, &idx(&with(&rp, &["devices"]), i), ctx)?);
                    }
                    set(&mut r, "devices", Value::Sequence(out));
                }
                set(&mut res, which, Value::Mapping(r));
            } else if res.get(which).is_some_and(Value::is_null) {
                res.remove(which);
            }
        }
        set(d, "resources", Value::Mapping(res));
    }
    Ok(())
}

const PROTOCOLS: [&str; 3] = ["tcp", "udp", "sctp"];

fn parse_range(s: &str) -> Option<(u32, u32)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b && b <= 65535).then_some((a, b))
        }
        None => {
            let a: u32 = s.parse().ok()?;
            (a <= 65535).then_some((a, a))
        }
    }
}

/// One `ports:` entry to one or more long-form entries (ranges expanded).
fn port(p: &Value, path: &[Seg], ctx: &Ctx<'_>) -> Result<Vec<Value>, ComposeError> {
    if let Value::Mapping(o) = p {
        let mut o = o.clone();
        coerce(&mut o, path, ctx, &[], &["target"], &[])?;
        if let Some(v) = o.get("published").and_then(scalar) {
            set(&mut o, "published", Value::String(v));
        }
        if o.get("protocol").is_none() {
            set(&mut o, "protocol", Value::String("tcp".into()));
        }
        if o.get("mode").is_none() {
            set(&mut o, "mode", Value::String("ingress".into()));
        }
        return Ok(vec![Value::Mapping(o)]);
    }
    let spec = scalar(p).unwrap_or_default();
    let bad = |why: &str| ctx.err(path, format!("invalid port {spec:?}: {why}"));
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, proto)) => (r, proto.to_string()),
        None => (spec.as_str(), "tcp".to_string()),
    };
    if !PROTOCOLS.contains(&protocol.as_str()) {
        return Err(bad(&format!("invalid proto: {protocol}")));
    }
    // [host_ip:][published:]target; an IPv6 host IP may be in brackets.
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, r) = r.split_once("]:").ok_or_else(|| bad("unterminated IPv6 address"))?;
        (Some(ip.to_string()), r.to_string())
    } else {
        (None, rest.to_string())
    };
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (target, published, ip) = match (parts.as_slice(), host_ip) {
        ([t], None) => (*t, "", None),
        ([t, p], None) => (*t, *p, None),
        ([t, p, ip], None) => (*t, *p, Some(ip.to_string())),
        ([t, p], Some(ip)) => (*t, *p, Some(ip)),
        ([t], Some(ip)) => (*t, "", Some(ip)),
        _ => return Err(bad("too many colons")),
    };
    let (t0, t1) = parse_range(target).ok_or_else(|| bad(&format!("invalid containerPort: {target}")))?;
    let published_range = if published.is_empty() {
        None
    } else {
        Some(parse_range(published).ok_or_else(|| bad(&format!("invalid hostPort: {published}")))?)
    };
    let mut out = Vec::new();
    let mut entry = |target: u32, published: Option<String>| {
        let mut o = Mapping::new();
        set(&mut o, "mode", Value::String("ingress".into()));
        if let Some(ip) = ip.clone().filter(|s| !s.is_empty()) {
            set(&mut o, "host_ip", Value::String(ip));
        }
        set(&mut o, "target", Value::Number(target.into()));
        if let Some(p) = published {
            set(&mut o, "published", Value::String(p));
        }
        set(&mut o, "protocol", Value::String(protocol.clone()));
        out.push(Value::Mapping(o));
    };
    match published_range {
        None => {
            for t in t0..=t1 {
                entry(t, None);
            }
        }
        Some((p0, p1)) if t0 == t1 => {
            let published = if p0 == p1 { p0.to_string() } else { format!("{p0}-{p1}") };
            entry(t0, Some(published));
        }
        Some((p0, p1)) => {
            if p1 - p0 != t1 - t0 {
                return Err(bad("invalid ranges specified for container and host Ports"));
            }
            for (i, t) in (t0..=t1).enumerate() {
                entry(t, Some((p0 + i as u32).to_string()));
            }
        }
    }
    Ok(out)
}

fn is_path(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

/// One `volumes:` entry to its long form.
fn volume(v: &Value, path: &[Seg], ctx: &Ctx<'_>) -> Result<Value, ComposeError> {
    if let Value::Mapping(o) = v {
        let mut o = o.clone();
        coerce(&mut o, path, ctx, &["read_only"], &[], &[])?;
        let kind = o.get("type").and_then(scalar).unwrap_or_default();
        if kind == "bind" {
            if let Some(s) = o.get("source").and_then(scalar) {
                set(&mut o, "source", Value::String(ctx.resolve(&s)));
            }
            if let Some(Value::Mapping(mut b)) = o.get("bind").cloned() {
                coerce(&mut b, &with(path, &["bind"]), ctx, &["create_host_path"], &[], &[])?;
                set(&mut o, "bind", Value::Mapping(b));
            }
        }
        if let Some(Value::Mapping(mut vo)) = o.get("volume").cloned() {
            coerce(&mut vo, &with(path, &["volume"]), ctx, &["nocopy"], &[], &[])?;
            if let Some(l) = vo.get("labels") {
                let l = list_or_dict(l, &Value::String(String::new()));
                set(&mut vo, "labels", Value::Mapping(l));
            }
            set(&mut o, "volume", Value::Mapping(vo));
        }
        if let Some(Value::Mapping(mut t)) = o.get("tmpfs").cloned() {
            if let Some(mode) = t.get("mode").cloned() {
                let n = match &mode {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => u64::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
                    _ => None,
                };
                let n = n.ok_or_else(|| {
                    ctx.err(
                        &with(path, &["tmpfs", "mode"]),
                        format!("invalid file mode {:?}", scalar(&mode).unwrap_or_default()),
                    )
                })?;
                set(&mut t, "mode", Value::Number(n.into()));
            }
            if let Some(sz) = t.get("size") {
                if crate::model::types::Bytes::parse(&scalar(sz).unwrap_or_default()).is_none() {
                    return Err(ctx.err(
                        &with(path, &["tmpfs", "size"]),
                        format!("invalid size: '{}'", scalar(sz).unwrap_or_default()),
                    ));
                }
            }
            set(&mut o, "tmpfs", Value::Mapping(t));
        }
        return Ok(Value::Mapping(o));
    }
    let spec = scalar(v).unwrap_or_default();
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [s, t] => (Some(*s), *t, None),
        [s, t, m] => (Some(*s), *t, Some(*m)),
        _ => return Err(ctx.err(path, format!("invalid spec: {spec}: too many colons"))),
    };
    if target.is_empty() || !target.starts_with('/') {
        return Err(ctx.err(path, format!("invalid spec: {spec}: the mount target must be an absolute path")));
    }
    let mut o = Mapping::new();
    let bind = source.is_some_and(is_path);
    set(&mut o, "type", Value::String(if bind { "bind" } else { "volume" }.into()));
    if let Some(s) = source.filter(|s| !s.is_empty()) {
        set(&mut o, "source", Value::String(if bind { ctx.resolve(s) } else { s.to_string() }));
    }
    set(&mut o, "target", Value::String(target.to_string()));
    let mut bind_opts = Mapping::new();
    let mut vol_opts = Mapping::new();
    for opt in mode.into_iter().flat_map(|m| m.split(',')) {
        match opt {
            "ro" => set(&mut o, "read_only", Value::Bool(true)),
            "rw" => {}
            "z" | "Z" => set(&mut bind_opts, "selinux", Value::String(opt.into())),
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                set(&mut bind_opts, "propagation", Value::String(opt.into()))
            }
            "nocopy" => set(&mut vol_opts, "nocopy", Value::Bool(true)),
            "consistent" | "cached" | "delegated" => set(&mut o, "consistency", Value::String(opt.into())),
            other => return Err(ctx.err(path, format!("invalid spec: {spec}: unknown option {other:?}"))),
        }
    }
    if bind {
        set(&mut bind_opts, "create_host_path", Value::Bool(true));
        set(&mut o, "bind", Value::Mapping(bind_opts));
    } else {
        set(&mut o, "volume", Value::Mapping(vol_opts));
    }
    Ok(Value::Mapping(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(yaml: &str) -> Value {
        let src = Source::parse(Path::new("/proj/compose.yaml"), "compose.yaml".into(), yaml).unwrap();
        let mut v = src.value.clone();
        let ctx = Ctx { base_dir: Path::new("/proj"), home: Some("/home/u"), src: &src, resolve_paths: true };
        normalize_file(&mut v, &ctx).unwrap();
        v
    }

    fn norm_err(yaml: &str) -> String {
        let src = Source::parse(Path::new("/proj/compose.yaml"), "compose.yaml".into(), yaml).unwrap();
        let mut v = src.value.clone();
        let ctx = Ctx { base_dir: Path::new("/proj"), home: None, src: &src, resolve_paths: true };
        normalize_file(&mut v, &ctx).unwrap_err().to_string()
    }

    #[test]
    fn ports_short_to_long() {
        let v = norm(
            "services:\n  a:\n    ports: ['80', '8080:80', '127.0.0.1:8081:81/udp', '9000-9001:90-91', '[::1]:53:53', '7000-7010:70', 3000]\n",
        );
        let got: Vec<String> = v["services"]["a"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| serde_norway::to_string(p).unwrap().replace('\n', " "))
            .collect();
        assert_eq!(
            got,
            vec![
                "mode: ingress target: 80 protocol: tcp ",
                "mode: ingress target: 80 published: '8080' protocol: tcp ",
                "mode: ingress host_ip: 127.0.0.1 target: 81 published: '8081' protocol: udp ",
                "mode: ingress target: 90 published: '9000' protocol: tcp ",
                "mode: ingress target: 91 published: '9001' protocol: tcp ",
                "mode: ingress host_ip: ::1 target: 53 published: '53' protocol: tcp ",
                "mode: ingress target: 70 published: 7000-7010 protocol: tcp ",
                "mode: ingress target: 3000 protocol: tcp ",
            ]
        );
        assert!(
            norm_err("services:\n  a:\n    image: x\n    ports: ['80:x']\n")
                .starts_with("compose.yaml: line 4: services.a.ports.0: invalid port \"80:x\"")
        );
    }

    #[test]
    fn volumes_short_to_long() {
        let v = norm(
            "services:\n  a:\n    volumes: ['data:/data:ro,nocopy', './src:/src:z', '~/x:/x', '/anon', '../up:/up:rshared']\n",
        );
        let vols = &v["services"]["a"]["volumes"];
        assert_eq!(vols[0]["type"], "volume");
        assert_eq!(vols[0]["source"], "data");
        assert_eq!(vols[0]["read_only"], Value::Bool(true));
        assert_eq!(vols[0]["volume"]["nocopy"], Value::Bool(true));
        assert_eq!(vols[1]["type"], "bind");
        assert_eq!(vols[1]["source"], "/proj/src");
        assert_eq!(vols[1]["bind"]["selinux"], "z");
        assert_eq!(vols[1]["bind"]["create_host_path"], Value::Bool(true));
        assert_eq!(vols[2]["source"], "/home/u/x");
        assert_eq!(vols[3]["type"], "volume");
        assert!(vols[3].get("source").is_none());
        assert_eq!(vols[4]["source"], "/up");
        assert_eq!(vols[4]["bind"]["propagation"], "rshared");
    }

    #[test]
    fn the_rest() {
        let v = norm(
            "services:\n  a:\n    build: ./app\n    command: sh -c 'echo \"hi there\"'\n    environment: [A=1, B]\n    labels: [x=y, z]\n    depends_on: [db]\n    networks: [front]\n    healthcheck: {test: curl -f localhost, retries: '3'}\n    extra_hosts: ['h:1.2.3.4', 'h=5.6.7.8']\n    ulimits: {nofile: 1024}\n    secrets: [s]\n    gpus: all\n    tty: 'true'\n    env_file: .env.a\n",
        );
        let a = &v["services"]["a"];
        assert_eq!(a["build"]["context"], "/proj/app");
        assert_eq!(a["command"], serde_norway::from_str::<Value>("[sh, -c, echo \"hi there\"]").unwrap());
        assert_eq!(a["environment"]["A"], "1");
        assert_eq!(a["environment"]["B"], Value::Null);
        assert_eq!(a["labels"]["z"], "");
        assert_eq!(a["depends_on"]["db"]["condition"], "service_started");
        assert_eq!(a["depends_on"]["db"]["required"], Value::Bool(true));
        assert_eq!(a["networks"]["front"], Value::Null);
        assert_eq!(a["healthcheck"]["test"][0], "CMD-SHELL");
        assert_eq!(a["healthcheck"]["retries"], Value::Number(3.into()));
        assert_eq!(a["extra_hosts"]["h"], serde_norway::from_str::<Value>("['1.2.3.4', '5.6.7.8']").unwrap());
        assert_eq!(a["ulimits"]["nofile"]["soft"], Value::Number(1024.into()));
        assert_eq!(a["secrets"][0]["source"], "s");
        assert_eq!(a["gpus"][0]["count"], "all");
        assert_eq!(a["tty"], Value::Bool(true));
        assert_eq!(a["env_file"][0]["path"], "/proj/.env.a");
        assert!(norm_err("services:\n  a:\n    command: \"echo 'unbalanced\"\n").contains("services.a.command"));
    }
}
