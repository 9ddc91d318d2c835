//! Variable substitution as the Compose Specification's interpolation section defines it:
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`,
//! `${VAR:+replacement}`, `${VAR+replacement}`, nesting inside the operand, and `$$` for a
//! literal dollar. Applied to values only, never to keys, then the few typed fields that
//! came out as strings are cast back (compose-go's list of paths).
//!
//! Written by hand: shell-expansion crates (`shellexpand`, `envsubst`) implement other
//! dialects (no `:?` with a message, no `+`, different handling of a lone `$`).

use std::collections::BTreeMap;

use serde_norway::{Number, Value};

use crate::model::source::{KeyPath, Seg};

/// Why a template could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `${` without a valid name or closing brace (compose's wording).
    #[error("invalid interpolation format {template:?}: you may need to escape any $ with another $")]
    Invalid {
        /// The whole string.
        template: String,
    },
    /// `${VAR?err}` / `${VAR:?err}` with VAR unset (or empty).
    #[error("required variable {variable} is missing a value{}", if reason.is_empty() { String::new() } else { format!(": {reason}") })]
    MissingRequired {
        /// The variable.
        variable: String,
        /// The message written after `?`, itself interpolated.
        reason: String,
    },
}

/// Where variables come from, and the names that were used while unset.
pub struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Variables read while unset (each becomes a warning, as compose prints one).
    pub unset: Vec<String>,
}

impl<'a> Vars<'a> {
    /// Variables from `lookup`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Vars<'a> {
        Vars { lookup, unset: Vec::new() }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }
}

/// Variables from a map.
pub fn map_lookup(map: &BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> + '_ {
    move |name| map.get(name).cloned()
}

fn is_name_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Substitutes every variable in `template`.
pub fn substitute(template: &str, vars: &mut Vars<'_>) -> Result<String, TemplateError> {
    let invalid = || TemplateError::Invalid { template: template.to_string() };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('{') => {
                let close = closing_brace(after).ok_or_else(invalid)?;
                let body = &after[1..close];
                out.push_str(&braced(body, vars).map_err(|e| match e {
                    TemplateError::Invalid { .. } => invalid(),
                    other => other,
                })?);
                rest = &after[close + 1..];
            }
            Some(c) if is_name_start(c) => {
                let end = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
                let name = &after[..end];
                out.push_str(&plain(name, vars));
                rest = &after[end..];
            }
            // A `$` that starts no variable is kept as written.
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing the `{` at `s[0]`, counting nested braces.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn plain(name: &str, vars: &mut Vars<'_>) -> String {
    match vars.get(name) {
        Some(v) => v,
        None => {
            if !vars.unset.iter().any(|n| n == name) {
                vars.unset.push(name.to_string());
            }
            String::new()
        }
    }
}

/// The inside of `${…}`.
fn braced(body: &str, vars: &mut Vars<'_>) -> Result<String, TemplateError> {
    let invalid = || TemplateError::Invalid { template: String::new() };
    if !body.starts_with(is_name_start) {
        return Err(invalid());
    }
    let end = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    let (name, op) = body.split_at(end);
    if op.is_empty() {
        return Ok(plain(name, vars));
    }
    let (colon, rest) = match op.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, op),
    };
    let mut chars = rest.chars();
    let sym = chars.next().ok_or_else(invalid)?;
    let arg = chars.as_str();
    let value = vars.get(name);
    // With `:`, an empty value counts as unset.
    let set = match &value {
        Some(v) => !(colon && v.is_empty()),
        None => false,
    };
    match sym {
        '-' => {
            if set {
                Ok(value.unwrap_or_default())
            } else {
                substitute(arg, vars)
            }
        }
        '?' => {
            if set {
                Ok(value.unwrap_or_default())
            } else {
                let reason = substitute(arg, vars)?;
                Err(TemplateError::MissingRequired { variable: name.to_string(), reason })
            }
        }
        '+' => {
            if set {
                substitute(arg, vars)
            } else {
                Ok(value.unwrap_or_default())
            }
        }
        _ => Err(invalid()),
    }
}

/// A failure at a place in the tree.
#[derive(Debug)]
pub struct TreeError {
    /// Where.
    pub path: KeyPath,
    /// What.
    pub kind: TreeErrorKind,
}

/// What went wrong interpolating the tree.
#[derive(Debug)]
pub enum TreeErrorKind {
    /// The template.
    Template(TemplateError),
    /// A typed field whose substituted value does not parse (`invalid boolean: maybe`).
    Cast(String),
}

/// Interpolates every string value under `value` (keys untouched), then casts the typed
/// fields compose casts.
pub fn interpolate_tree(value: &mut Value, vars: &mut Vars<'_>) -> Result<(), TreeError> {
    let mut path = Vec::new();
    walk(value, &mut path, vars)
}

fn walk(value: &mut Value, path: &mut KeyPath, vars: &mut Vars<'_>) -> Result<(), TreeError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = substitute(s, vars).map_err(|e| TreeError { path: path.clone(), kind: TreeErrorKind::Template(e) })?;
            if let Some(cast) = cast_for(path) {
                *value = cast(s).map_err(|msg| TreeError { path: path.clone(), kind: TreeErrorKind::Cast(msg) })?;
            }
        }
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                path.push(Seg::Key(k.as_str().unwrap_or_default().to_string()));
                walk(v, path, vars)?;
                path.pop();
            }
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                walk(v, path, vars)?;
                path.pop();
            }
        }
        Value::Tagged(t) => walk(&mut t.value, path, vars)?,
        _ => {}
    }
    Ok(())
}

type Cast = fn(&str) -> Result<Value, String>;

/// The cast for a typed field, by path (compose-go's `interpolateTypeCastMapping`).
fn cast_for(path: &[Seg]) -> Option<Cast> {
    let k: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "[]",
        })
        .collect();
    let to_int: Cast = |s| {
        s.trim()
            .parse::<i64>()
            .map(|n| Value::Number(Number::from(n)))
            .map_err(|_| format!("failed to cast to expected type: invalid integer: {s}"))
    };
    let to_float: Cast = |s| {
        s.trim()
            .parse::<f64>()
            .map(|n| Value::Number(Number::from(n)))
            .map_err(|_| format!("failed to cast to expected type: invalid float: {s}"))
    };
    let to_bool: Cast = |s| match s.to_ascii_lowercase().as_str() {
        "true" | "y" | "yes" | "on" => Ok(Value::Bool(true)),
        "false" | "n" | "no" | "off" => Ok(Value::Bool(false)),
        _ => Err(format!("failed to cast to expected type: invalid boolean: {s}")),
    };
    match k.as_slice() {
        ["services", _, rest @ ..] => match rest {
            [
                "cpu_count" | "cpu_period" | "cpu_quota" | "cpu_rt_period" | "cpu_rt_runtime" | "cpu_shares"
                | "oom_score_adj" | "pids_limit" | "scale",
            ] => Some(to_int),
            ["cpu_percent" | "cpus"] => Some(to_float),
            ["init" | "oom_kill_disable" | "privileged" | "read_only" | "stdin_open" | "tty"] => Some(to_bool),
            ["depends_on", _, "required" | "restart"] => Some(to_bool),
            ["deploy", "replicas"]
            | ["deploy", "update_config" | "rollback_config", "parallelism"]
            | ["deploy", "restart_policy", "max_attempts"]
            | ["deploy", "placement", "max_replicas_per_node"]
            | ["healthcheck", "retries"]
            | ["ports", "[]", "target"]
            | ["ulimits", _]
            | ["ulimits", _, "hard" | "soft"] => Some(to_int),
            ["deploy", "update_config" | "rollback_config", "max_failure_ratio"] => Some(to_float),
            ["healthcheck", "disable"] | ["volumes", "[]", "read_only"] | ["volumes", "[]", "volume", "nocopy"] => {
                Some(to_bool)
            }
            _ => None,
        },
        ["networks", _, "external" | "internal" | "attachable" | "enable_ipv4" | "enable_ipv6"]
        | ["volumes" | "secrets" | "configs", _, "external"] => Some(to_bool),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("FOO", "foo"), ("EMPTY", ""), ("BAR", "bar"), ("lower", "low")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sub(t: &str) -> Result<String, TemplateError> {
        let env = env();
        let lookup = map_lookup(&env);
        let mut vars = Vars::new(&lookup);
        substitute(t, &mut vars)
    }

    // The cases below are the Compose Specification's interpolation text, one by one.
    #[test]
    fn both_syntaxes() {
        assert_eq!(sub("$FOO").unwrap(), "foo");
        assert_eq!(sub("${FOO}").unwrap(), "foo");
        assert_eq!(sub("a${FOO}b$BAR.c").unwrap(), "afoobbar.c");
        assert_eq!(sub("$lower").unwrap(), "low");
    }

    #[test]
    fn defaults() {
        // `:-` when unset or empty; `-` only when unset.
        assert_eq!(sub("${UNSET:-default}").unwrap(), "default");
        assert_eq!(sub("${EMPTY:-default}").unwrap(), "default");
        assert_eq!(sub("${FOO:-default}").unwrap(), "foo");
        assert_eq!(sub("${UNSET-default}").unwrap(), "default");
        assert_eq!(sub("${EMPTY-default}").unwrap(), "");
        assert_eq!(sub("${FOO-default}").unwrap(), "foo");
        assert_eq!(sub("${UNSET:-}").unwrap(), "");
        assert_eq!(sub("${UNSET:-a b:c}").unwrap(), "a b:c");
    }

    #[test]
    fn required() {
        let e = sub("${UNSET:?must be set}").unwrap_err();
        assert_eq!(e.to_string(), "required variable UNSET is missing a value: must be set");
        let e = sub("${EMPTY:?err}").unwrap_err();
        assert_eq!(e.to_string(), "required variable EMPTY is missing a value: err");
        assert_eq!(sub("${EMPTY?err}").unwrap(), "");
        let e = sub("${UNSET?err}").unwrap_err();
        assert_eq!(e.to_string(), "required variable UNSET is missing a value: err");
        let e = sub("${UNSET?}").unwrap_err();
        assert_eq!(e.to_string(), "required variable UNSET is missing a value");
        assert_eq!(sub("${FOO:?err}").unwrap(), "foo");
    }

    #[test]
    fn replacement() {
        assert_eq!(sub("${FOO:+r}").unwrap(), "r");
        assert_eq!(sub("${EMPTY:+r}").unwrap(), "");
        assert_eq!(sub("${EMPTY+r}").unwrap(), "r");
        assert_eq!(sub("${UNSET+r}").unwrap(), "");
    }

    #[test]
    fn nested() {
        assert_eq!(sub("${UNSET:-${FOO}}").unwrap(), "foo");
        assert_eq!(sub("${UNSET:-${UNSET2:-default}}").unwrap(), "default");
        assert_eq!(sub("${UNSET:-$BAR}").unwrap(), "bar");
        assert_eq!(sub("${FOO:-${UNSET:?not evaluated}}").unwrap(), "foo");
        let e = sub("${UNSET?$FOO}").unwrap_err();
        assert_eq!(e.to_string(), "required variable UNSET is missing a value: foo");
        assert_eq!(sub("${UNSET:-${UNSET2:-${BAR}}}x").unwrap(), "barx");
    }

    #[test]
    fn dollars() {
        assert_eq!(sub("$$VAR_NOT_INTERPOLATED_BY_COMPOSE").unwrap(), "$VAR_NOT_INTERPOLATED_BY_COMPOSE");
        assert_eq!(sub("$${FOO}").unwrap(), "${FOO}");
        assert_eq!(sub("cost: 5$").unwrap(), "cost: 5$");
        assert_eq!(sub("$1 $-x $ y").unwrap(), "$1 $-x $ y");
    }

    #[test]
    fn unset_is_blank_and_noted() {
        let env = env();
        let lookup = map_lookup(&env);
        let mut vars = Vars::new(&lookup);
        assert_eq!(substitute("a${NOPE}b$NOPE", &mut vars).unwrap(), "ab");
        assert_eq!(vars.unset, vec!["NOPE".to_string()]);
    }

    #[test]
    fn invalid() {
        for t in ["${}", "${ FOO}", "${FOO", "${FOO/a/b}", "${FOO:1}", "x ${-a}"] {
            let e = sub(t).unwrap_err();
            assert_eq!(e, TemplateError::Invalid { template: t.to_string() }, "{t}");
            assert_eq!(
                e.to_string(),
                format!("invalid interpolation format {t:?}: you may need to escape any $ with another $")
            );
        }
    }

    #[test]
    fn tree_values_not_keys_and_casts() {
        let mut v: Value = serde_norway::from_str(
            "services:\n  $FOO:\n    image: ${FOO}\n    tty: ${T:-true}\n    ports: [{target: '${P:-80}'}]\n    labels: {$FOO: x}\n",
        )
        .unwrap();
        let env = env();
        let lookup = map_lookup(&env);
        let mut vars = Vars::new(&lookup);
        interpolate_tree(&mut v, &mut vars).unwrap();
        let svc = &v["services"]["$FOO"];
        assert_eq!(svc["image"], "foo");
        assert_eq!(svc["tty"], Value::Bool(true));
        assert_eq!(svc["ports"][0]["target"], Value::Number(80.into()));
        assert_eq!(svc["labels"]["$FOO"], "x");
        let mut bad: Value = serde_norway::from_str("services:\n  a:\n    tty: ${T:-maybe}\n").unwrap();
        let err = interpolate_tree(&mut bad, &mut vars).unwrap_err();
        assert!(
            matches!(err.kind, TreeErrorKind::Cast(ref m) if m == "failed to cast to expected type: invalid boolean: maybe")
        );
    }
}
