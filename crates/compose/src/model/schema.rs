//! Validation against the Compose Specification's JSON schema (draft-07, embedded: no
//! network), with compose's wording: the most specific failure, e.g.
//! `services.web additional properties 'imgae' not allowed` or
//! `services.web.ports.0.target must be a integer`.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value as Json;
use serde_norway::Value;

use crate::model::source::{KeyPath, Seg};

/// The schema, as published by the compose-spec project (see `SOURCE` in
/// `../shared/testdata/compose-schema/` for the commit).
pub const SCHEMA: &str = include_str!("compose-spec.json");

/// One schema failure: where, and what compose says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFailure {
    /// The node at fault (for an unknown key: the mapping holding it).
    pub path: KeyPath,
    /// The key to point the line at (the unknown key itself, when there is one).
    pub line_path: KeyPath,
    /// Compose's message, without the path.
    pub message: String,
}

fn validator() -> &'static Result<Validator, String> {
    static V: OnceLock<Result<Validator, String>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Json = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
        jsonschema::draft7::options()
            .should_validate_formats(true)
            .with_format("duration", |s: &str| crate::model::types::Duration::parse(s).is_some())
            .build(&schema)
            .map_err(|e| e.to_string())
    })
}

/// Converts a YAML value to JSON for the validator (tags dropped, keys as strings).
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Json::String(n.to_string()), Json::Number)
            }
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Sequence(s) => Json::Array(s.iter().map(to_json).collect()),
        Value::Mapping(m) => Json::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.clone(),
                        other => serde_norway::to_string(other).unwrap_or_default().trim().to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Tagged(t) => to_json(&t.value),
    }
}

/// Validates one file's tree; `Ok(())` or the most specific failure, as compose picks it.
/// An embedded schema that does not compile is reported as a failure at the root.
pub fn validate(value: &Value) -> Result<(), SchemaFailure> {
    let validator = match validator() {
        Ok(v) => v,
        Err(e) => {
            return Err(SchemaFailure {
                path: Vec::new(),
                line_path: Vec::new(),
                message: format!("the compose schema does not compile: {e}"),
            });
        }
    };
    let json = to_json(value);
    let mut best: Option<Candidate> = None;
    for err in validator.iter_errors(&json) {
        consider(&err, &mut best);
    }
    match best {
        None => Ok(()),
        Some(c) => Err(c.into_failure(&json)),
    }
}

struct Candidate {
    path: Vec<String>,
    kind: Kind,
    score: usize,
}

enum Kind {
    Type(Vec<String>),
    Unexpected(Vec<String>),
    Other(String),
}

fn consider(err: &ValidationError<'_>, best: &mut Option<Candidate>) {
    let path: Vec<String> = err.instance_path().iter().map(|s| seg_text(&s)).collect();
    match err.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            for branch in context {
                for e in branch {
                    consider(e, best);
                }
            }
            return;
        }
        _ => {}
    }
    let (kind, bonus) = match err.kind() {
        ValidationErrorKind::Type { kind } => (Kind::Type(type_names(kind)), 0),
        ValidationErrorKind::AdditionalProperties { unexpected } => (Kind::Unexpected(unexpected.clone()), 1),
        ValidationErrorKind::Required { property } => {
            (Kind::Other(format!("missing property '{}'", property.as_str().unwrap_or_default())), 0)
        }
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = match options.as_ref() {
                Json::Array(a) => {
                    a.iter().map(|o| format!("'{}'", o.as_str().map_or_else(|| o.to_string(), String::from))).collect()
                }
                other => vec![other.to_string()],
            };
            (Kind::Other(format!("value must be one of {}", opts.join(", "))), 0)
        }
        ValidationErrorKind::Pattern { pattern } => {
            let instance = err.instance();
            (Kind::Other(format!("'{}' does not match pattern '{pattern}'", instance.as_str().unwrap_or_default())), 0)
        }
        ValidationErrorKind::Format { format } => {
            let instance = err.instance();
            (Kind::Other(format!("'{}' is not valid '{format}'", instance.as_str().unwrap_or_default())), 0)
        }
        ValidationErrorKind::Minimum { limit } => (Kind::Other(format!("must be greater than or equal to {limit}")), 0),
        ValidationErrorKind::Maximum { limit } => (Kind::Other(format!("must be less than or equal to {limit}")), 0),
        ValidationErrorKind::UniqueItems => (Kind::Other("items must be unique".into()), 0),
        ValidationErrorKind::MinItems { limit } => (Kind::Other(format!("minimum {limit} items required")), 0),
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            (Kind::Other("must be valid against exactly one schema, but is valid against more".into()), 0)
        }
        ValidationErrorKind::PropertyNames { .. } => (Kind::Other("has an invalid property name".into()), 0),
        ValidationErrorKind::Not { .. } => (Kind::Other("is not allowed here".into()), 0),
        _ => (Kind::Other(err.to_string()), 0),
    };
    let score = path.len() + bonus;
    match best {
        Some(b) if b.score > score => {}
        Some(b) if b.score == score => {
            // Same depth, both type errors at one place: compose lists every type wanted.
            if let (Kind::Type(have), Kind::Type(more)) = (&mut b.kind, &kind) {
                if b.path == path {
                    for t in more {
                        if !have.contains(t) {
                            have.push(t.clone());
                        }
                    }
                }
            }
        }
        _ => *best = Some(Candidate { path, kind, score }),
    }
}

fn type_names(kind: &TypeKind) -> Vec<String> {
    let name = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "object" => "mapping".to_string(),
        other => other.to_string(),
    };
    match kind {
        TypeKind::Single(t) => vec![name(t)],
        TypeKind::Multiple(ts) => ts.iter().map(|t| name(&t)).collect(),
    }
}

fn seg_text(s: &jsonschema::paths::LocationSegment<'_>) -> String {
    match s {
        jsonschema::paths::LocationSegment::Property(p) => p.to_string(),
        jsonschema::paths::LocationSegment::Index(i) => i.to_string(),
    }
}

impl Candidate {
    fn into_failure(self, json: &Json) -> SchemaFailure {
        // Map each step back to key or index by looking at the instance.
        let mut path: KeyPath = Vec::new();
        let mut node = Some(json);
        for step in &self.path {
            match node {
                Some(Json::Array(a)) => {
                    let i = step.parse::<usize>().unwrap_or(0);
                    path.push(Seg::Index(i));
                    node = a.get(i);
                }
                Some(Json::Object(o)) => {
                    path.push(Seg::Key(step.clone()));
                    node = o.get(step);
                }
                _ => {
                    path.push(Seg::Key(step.clone()));
                    node = None;
                }
            }
        }
        let mut line_path = path.clone();
        let message = match self.kind {
            Kind::Type(mut want) => {
                want.sort();
                let list = if want.len() == 1 {
                    want[0].clone()
                } else {
                    let last = want.pop().unwrap_or_default();
                    format!("{} or {last}", want.join(", "))
                };
                format!("must be a {list}")
            }
            Kind::Unexpected(keys) => {
                if let Some(first) = keys.first() {
                    line_path.push(Seg::Key(first.clone()));
                }
                let quoted: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
                format!("additional properties {} not allowed", quoted.join(", "))
            }
            Kind::Other(m) => m,
        };
        SchemaFailure { path, line_path, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::keys;

    fn check(yaml: &str) -> Result<(), SchemaFailure> {
        validate(&serde_norway::from_str(yaml).unwrap())
    }

    #[test]
    fn valid_file_passes() {
        check("services:\n  web:\n    image: busybox\n    ports: ['80:80', {target: 81}]\n    healthcheck: {interval: 1m30s}\n")
            .unwrap();
    }

    #[test]
    fn unknown_key() {
        let f = check("services:\n  web:\n    imgae: busybox\n").unwrap_err();
        assert_eq!(f.path, keys(&["services", "web"]));
        assert_eq!(f.line_path, keys(&["services", "web", "imgae"]));
        assert_eq!(f.message, "additional properties 'imgae' not allowed");
    }

    #[test]
    fn wrong_types() {
        let f = check("services:\n  web:\n    image: busybox\n    ports: [{target: [80]}]\n").unwrap_err();
        let mut p = keys(&["services", "web", "ports"]);
        p.push(Seg::Index(0));
        p.push(Seg::Key("target".into()));
        assert_eq!(f.path, p);
        assert_eq!(f.message, "must be a integer or string");
        let f = check("services:\n  web:\n    image: [busybox]\n").unwrap_err();
        assert_eq!(f.message, "must be a string");
        let f = check("services:\n  web:\n    build: 5\n").unwrap_err();
        assert_eq!(f.path, keys(&["services", "web", "build"]));
        assert_eq!(f.message, "must be a mapping or string");
    }
}
