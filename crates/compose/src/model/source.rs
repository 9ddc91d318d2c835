//! One compose file as read: its YAML value (anchors expanded, `<<` merge keys applied,
//! keys as strings), the `!reset` / `!override` tags taken out of it, and where each key
//! sits, so that any later error can name the file, the line and the key.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use saphyr_parser::{Event, Parser};
use serde::Deserialize;
use serde_norway::{Mapping, Value};

use crate::error::ComposeError;

/// One step of a key path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A key path from the document root.
pub type KeyPath = Vec<Seg>;

/// Prints a key path as compose does: `services.web.ports[0]`... but with compose-go's
/// dotted indices (`services.web.ports.0`), which is what its messages show.
pub fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match seg {
            Seg::Key(k) => out.push_str(k),
            Seg::Index(n) => out.push_str(&n.to_string()),
        }
    }
    out
}

/// Builds a path from string keys (tests and callers that know the shape).
pub fn keys(parts: &[&str]) -> KeyPath {
    parts.iter().map(|p| Seg::Key((*p).to_string())).collect()
}

/// Where a problem is: the file (as the user would name it), the line of the key when it
/// is known, and the key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, relative to the working directory when it is under it.
    pub file: String,
    /// 1-based line of the key, when the key is in the file as written (not from an alias).
    pub line: Option<usize>,
    /// Dotted key path (`services.web.environment.X`).
    pub key: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ": line {line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        Ok(())
    }
}

/// What a tag asks of the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// `!reset`: drop the value inherited from earlier files.
    Reset,
    /// `!override`: replace the inherited value instead of merging into it.
    Override,
}

/// A parsed compose file.
#[derive(Debug, Clone)]
pub struct Source {
    /// Absolute path.
    pub path: PathBuf,
    /// How errors name it.
    pub display: String,
    /// The document (a mapping; an empty file is an empty mapping).
    pub value: Value,
    /// `!reset` / `!override` tags by the path of the tagged node.
    pub tags: Vec<(KeyPath, TagKind)>,
    lines: HashMap<KeyPath, usize>,
}

impl Source {
    /// Reads and parses `path`; `display` is how errors will name it.
    pub fn read(path: &Path, display: String) -> Result<Source, ComposeError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ComposeError::Read { path: path.to_path_buf(), source })?;
        Source::parse(path, display, &text)
    }

    /// Parses `text` as the file at `path`.
    pub fn parse(path: &Path, display: String, text: &str) -> Result<Source, ComposeError> {
        let lines = index_lines(text);
        // Several documents in one file are merged in order, as compose does.
        let mut docs = Vec::new();
        for doc in serde_norway::Deserializer::from_str(text) {
            let mut value = Value::deserialize(doc).map_err(|e| ComposeError::Yaml {
                file: display.clone(),
                line: e.location().map(|l| l.line()),
                message: yaml_message(&e),
            })?;
            value.apply_merge().map_err(|e| ComposeError::Yaml {
                file: display.clone(),
                line: None,
                message: yaml_message(&e),
            })?;
            docs.push(value);
        }
        if docs.iter().all(Value::is_null) {
            return Err(ComposeError::Yaml { file: display, line: None, message: "empty compose file".into() });
        }
        let mut tags = Vec::new();
        let mut merged = Value::Mapping(Mapping::new());
        for doc in docs {
            let doc = match doc {
                Value::Null => continue,
                Value::Mapping(_) => doc,
                _ => {
                    return Err(ComposeError::Yaml {
                        file: display,
                        line: Some(1),
                        message: "top-level object must be a mapping".into(),
                    });
                }
            };
            let mut path = Vec::new();
            let doc = strip(doc, &mut path, &mut tags, &display, &lines)?;
            deep_merge(&mut merged, doc);
        }
        Ok(Source { path: path.to_path_buf(), display, value: merged, tags, lines })
    }

    /// The location of `path` in this file: the line of the deepest key of `path` that is
    /// written in the file.
    pub fn locate(&self, path: &[Seg]) -> Location {
        Location { file: self.display.clone(), line: self.line_of(path), key: dotted(path) }
    }

    /// The line of the deepest written key along `path`.
    pub fn line_of(&self, path: &[Seg]) -> Option<usize> {
        (1..=path.len()).rev().find_map(|n| self.lines.get(&path[..n]).copied())
    }

    /// Whether `path` (exactly) is written in this file.
    pub fn has(&self, path: &[Seg]) -> bool {
        self.lines.contains_key(path)
    }
}

fn yaml_message(e: &serde_norway::Error) -> String {
    // serde_norway appends " at line N column M"; the line is printed separately.
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Takes `!reset` / `!override` out of the tree (recording where they were), drops other
/// tags, and turns every key into a string, as compose reads keys.
fn strip(
    value: Value,
    path: &mut KeyPath,
    tags: &mut Vec<(KeyPath, TagKind)>,
    display: &str,
    lines: &HashMap<KeyPath, usize>,
) -> Result<Value, ComposeError> {
    Ok(match value {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            match tag.as_str() {
                "!reset" => tags.push((path.clone(), TagKind::Reset)),
                "!override" => tags.push((path.clone(), TagKind::Override)),
                _ => {}
            }
            strip(t.value, path, tags, display, lines)?
        }
        Value::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, v) in m {
                let key = match k {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => "null".to_string(),
                    _ => {
                        let line = (1..=path.len()).rev().find_map(|n| lines.get(&path[..n]).copied());
                        return Err(ComposeError::Yaml {
                            file: display.to_string(),
                            line,
                            message: format!("{}: a mapping key must be a scalar", dotted(path)),
                        });
                    }
                };
                path.push(Seg::Key(key.clone()));
                let v = strip(v, path, tags, display, lines)?;
                path.pop();
                out.insert(Value::String(key), v);
            }
            Value::Mapping(out)
        }
        Value::Sequence(s) => {
            let mut out = Vec::with_capacity(s.len());
            for (i, v) in s.into_iter().enumerate() {
                path.push(Seg::Index(i));
                out.push(strip(v, path, tags, display, lines)?);
                path.pop();
            }
            Value::Sequence(out)
        }
        other => other,
    })
}

/// Merges document `over` into `base`, mappings by key (later documents win).
fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The line of every key and sequence item written in `text` (the first document that
/// writes a path wins). saphyr's event parser gives positions; serde_norway does not keep
/// them in its `Value`, hence this second, cheap pass.
fn index_lines(text: &str) -> HashMap<KeyPath, usize> {
    enum Frame {
        Map { key: Option<String> },
        Seq { next: usize },
    }
    let mut lines = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut path: KeyPath = Vec::new();

    // Called when a node starts: records where it sits, and returns true when this node is
    // a mapping key (so it is not a value).
    fn node_start(
        stack: &mut [Frame],
        path: &mut KeyPath,
        lines: &mut HashMap<KeyPath, usize>,
        line: usize,
        scalar: Option<&str>,
    ) -> bool {
        match stack.last_mut() {
            Some(Frame::Map { key }) if key.is_none() => {
                // A key: a scalar becomes the path step; a complex key is skipped.
                *key = Some(scalar.unwrap_or("?").to_string());
                let mut p = path.clone();
                p.push(Seg::Key(scalar.unwrap_or("?").to_string()));
                lines.entry(p).or_insert(line);
                true
            }
            Some(Frame::Map { .. }) => false,
            Some(Frame::Seq { next }) => {
                let mut p = path.clone();
                p.push(Seg::Index(*next));
                lines.entry(p).or_insert(line);
                false
            }
            None => false,
        }
    }
    // After a value node ends, the mapping above waits for its next key.
    fn value_done(stack: &mut [Frame]) {
        match stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { next }) => *next += 1,
            None => {}
        }
    }
    // The path step of a container about to be opened as a value.
    fn child_step(stack: &[Frame]) -> Option<Seg> {
        match stack.last() {
            Some(Frame::Map { key: Some(k), .. }) => Some(Seg::Key(k.clone())),
            Some(Frame::Seq { next }) => Some(Seg::Index(*next)),
            _ => None,
        }
    }

    let mut parser = Parser::new_from_str(text);
    // A syntax error stops the index; serde_norway reports it with its line.
    while let Some(Ok((event, span))) = parser.next() {
        let line = span.start.line();
        match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            Event::DocumentStart(_) => {
                stack.clear();
                path.clear();
            }
            Event::DocumentEnd => {}
            Event::Scalar(s, ..) => {
                if !node_start(&mut stack, &mut path, &mut lines, line, Some(&s)) {
                    value_done(&mut stack);
                }
            }
            Event::Alias(_) => {
                if !node_start(&mut stack, &mut path, &mut lines, line, None) {
                    value_done(&mut stack);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(event, Event::MappingStart(..));
                let is_key = node_start(&mut stack, &mut path, &mut lines, line, None);
                if is_key {
                    // A complex key: its contents are not indexed; a marker frame keeps
                    // the nesting straight.
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        *key = Some("?".into());
                    }
                }
                if let Some(step) = child_step(&stack) {
                    path.push(step);
                } else {
                    // The root: nothing to push, but keep depth and path in step.
                    path.push(Seg::Key(String::new()));
                }
                stack.push(if is_map { Frame::Map { key: None } } else { Frame::Seq { next: 0 } });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                path.pop();
                value_done(&mut stack);
            }
        }
    }
    // The root frame pushed a placeholder step: paths recorded under it start with "".
    lines
        .into_iter()
        .filter_map(|(mut p, l)| {
            if matches!(p.first(), Some(Seg::Key(k)) if k.is_empty()) {
                p.remove(0);
                Some((p, l))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
x-base: &base
  image: busybox
services:
  web:
    <<: *base
    ports:
      - \"80:80\"
      - target: 81
    environment: !reset {}
  db:
    image: !override postgres
";

    #[test]
    fn keys_have_lines() {
        let s = Source::parse(Path::new("/p/compose.yaml"), "compose.yaml".into(), TEXT).unwrap();
        assert_eq!(s.line_of(&keys(&["services", "web"])), Some(4));
        assert_eq!(s.line_of(&keys(&["services", "web", "ports"])), Some(6));
        let mut p = keys(&["services", "web", "ports"]);
        p.push(Seg::Index(1));
        assert_eq!(s.line_of(&p), Some(8));
        p.push(Seg::Key("target".into()));
        assert_eq!(s.line_of(&p), Some(8));
        // From the anchor: the nearest written ancestor.
        assert_eq!(s.line_of(&keys(&["services", "web", "image"])), Some(4));
        assert_eq!(s.line_of(&keys(&["services", "db", "image"])), Some(11));
        assert_eq!(s.value["services"]["web"]["image"], "busybox");
        assert_eq!(
            s.tags,
            vec![
                (keys(&["services", "web", "environment"]), TagKind::Reset),
                (keys(&["services", "db", "image"]), TagKind::Override)
            ]
        );
        assert_eq!(
            s.locate(&keys(&["services", "db", "image"])).to_string(),
            "compose.yaml: line 11: services.db.image"
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = Source::parse(Path::new("/p/c.yaml"), "c.yaml".into(), "services:\n  web:\n image: [\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("c.yaml: line "), "{msg}");
    }
}
