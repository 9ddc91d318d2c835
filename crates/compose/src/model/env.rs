//! Env files (`.env`, `--env-file`, a service's `env_file`) in compose's format: `VAR=VAL`,
//! `export VAR=VAL`, `VAR: VAL`, `#` comments, single quotes literal, double quotes with
//! escapes and interpolation, unquoted values with interpolation and ` #` comments, a bare
//! `VAR` taken from the caller's environment. `raw` format: `VAR=VAL` taken as is.
//!
//! Written by hand: `dotenvy` does not interpolate with compose's operators
//! (`${VAR:?err}`, `${VAR:+r}`) nor takes a bare `VAR` from a given lookup.

use std::collections::BTreeMap;

use crate::model::interpolate::{TemplateError, Vars, substitute};

/// Why an env file does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    /// A name with a character compose does not allow.
    #[error("line {line}: unexpected character {ch:?} in variable name {text:?}")]
    BadName {
        /// 1-based line.
        line: usize,
        /// The character.
        ch: char,
        /// The line's text.
        text: String,
    },
    /// A name with a space inside.
    #[error("line {line}: key cannot contain a space")]
    SpaceInName {
        /// 1-based line.
        line: usize,
    },
    /// A quote never closed.
    #[error("line {line}: unterminated quoted value {text}")]
    Unterminated {
        /// 1-based line.
        line: usize,
        /// The start of the value.
        text: String,
    },
    /// A variable in a value.
    #[error("line {line}: {source}")]
    Template {
        /// 1-based line.
        line: usize,
        /// Why.
        #[source]
        source: TemplateError,
    },
}

/// Parses `text`; values interpolate with the variables defined above them, then
/// `lookup`; a bare `VAR` takes its value from `lookup` (and is left out when unset).
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, EnvFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out: Vec<(String, String)> = Vec::new();
    let mut line = 1usize;
    let mut rest = text;
    loop {
        // Skip blank space and comment lines.
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace());
        line += rest[..rest.len() - trimmed.len()].matches('\n').count();
        rest = trimmed;
        if rest.is_empty() {
            break;
        }
        if rest.starts_with('#') {
            rest = rest.find('\n').map_or("", |i| &rest[i..]);
            continue;
        }
        if let Some(r) = rest.strip_prefix("export") {
            if r.starts_with([' ', '\t']) {
                rest = r.trim_start_matches([' ', '\t']);
            }
        }
        // The name runs to `=`, `:` or the end of the line.
        let first_line = rest.split('\n').next().unwrap_or(rest);
        let mut name_end = None;
        for (i, c) in rest.char_indices() {
            match c {
                '=' | ':' | '\n' => {
                    name_end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' | ' ' | '\t' | '\r' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    return Err(EnvFileError::BadName { line, ch: c, text: first_line.to_string() });
                }
            }
        }
        let (end, sep) = name_end.unwrap_or((rest.len(), '\n'));
        let key = rest[..end].trim_end().to_string();
        if key.contains(' ') || key.contains('\t') {
            return Err(EnvFileError::SpaceInName { line });
        }
        if sep == '\n' {
            // A bare name: inherited from the caller's environment.
            if let Some(v) = lookup(&key) {
                out.push((key, v));
            }
            rest = &rest[end..];
            continue;
        }
        rest = rest[end + 1..].trim_start_matches([' ', '\t', '\r']);
        let lookup_here =
            |name: &str| out.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone()).or_else(|| lookup(name));
        let (value, next, lines_used) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let mut chars: String = String::new();
                let mut escaped = false;
                let mut close = None;
                let mut newlines = 0;
                for (i, c) in rest.char_indices().skip(1) {
                    if c == '\n' {
                        newlines += 1;
                    }
                    if c != q {
                        if !escaped && c == '\\' {
                            escaped = true;
                            continue;
                        }
                        if escaped {
                            escaped = false;
                            chars.push('\\');
                        }
                        chars.push(c);
                        continue;
                    }
                    if escaped {
                        escaped = false;
                        chars.push(c);
                        continue;
                    }
                    close = Some(i);
                    break;
                }
                let Some(close) = close else {
                    let text = rest.split('\n').next().unwrap_or(rest).to_string();
                    return Err(EnvFileError::Unterminated { line, text });
                };
                let value = if q == '"' {
                    let expanded = expand_escapes(&chars);
                    let mut vars = Vars::new(&lookup_here);
                    substitute(&expanded, &mut vars).map_err(|source| EnvFileError::Template { line, source })?
                } else {
                    chars
                };
                // Anything after the closing quote up to the line's end is a comment.
                let after = &rest[close + q.len_utf8()..];
                let next = after.find('\n').map_or("", |i| &after[i..]);
                (value, next, newlines)
            }
            _ => {
                let (raw, next) = match rest.find('\n') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                let raw = raw.split(" #").next().unwrap_or(raw).trim_end();
                let mut vars = Vars::new(&lookup_here);
                let value = substitute(raw, &mut vars).map_err(|source| EnvFileError::Template { line, source })?;
                (value, next, 0)
            }
        };
        line += lines_used;
        out.retain(|(k, _)| *k != key);
        out.push((key, value));
        rest = next;
    }
    Ok(out)
}

/// Parses a `format: raw` env file: `VAR=VAL` lines taken literally.
pub fn parse_raw(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in text.lines() {
        let l = l.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        out.retain(|(key, _)| key != k.trim());
        out.push((k.trim().to_string(), v.to_string()));
    }
    out
}

/// `\n`, `\r`, `\t`, `\\`, `\"`, `\'`, `\a`, `\b`, `\f`, `\v`, octal `\0NNN`; `\$` becomes
/// `$$` so that interpolation keeps a literal dollar. Anything else stays as written.
fn expand_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('$') => out.push_str("$$"),
            Some('0') => {
                chars.next();
                let mut digits = String::new();
                while digits.len() < 3 && chars.peek().is_some_and(|d| ('0'..='7').contains(d)) {
                    digits.extend(chars.next());
                }
                match u32::from_str_radix(&digits, 8).ok().and_then(char::from_u32) {
                    Some(ch) if !digits.is_empty() => out.push(ch),
                    _ => {
                        out.push_str("\\0");
                        out.push_str(&digits);
                    }
                }
                continue;
            }
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

/// The env-file pairs as a map (later pairs win).
pub fn to_map(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> BTreeMap<String, String> {
        let lookup = |k: &str| (k == "FROM_ENV").then(|| "outside".to_string());
        to_map(parse(text, &lookup).unwrap())
    }

    // The rules of the Compose Specification's "Env_file format", one by one.
    #[test]
    fn spec_rules() {
        let m = p("# comment\n\nRACK_ENV=development\nVAR=\"quoted\"\nS='single'\n");
        assert_eq!(m["RACK_ENV"], "development");
        assert_eq!(m["VAR"], "quoted");
        assert_eq!(m["S"], "single");
        let m = p("A=VAL # comment\nB=VAL# not a comment\nC=\"VAL # not a comment\"\nD=\"VAL\" # comment\n");
        assert_eq!(m["A"], "VAL");
        assert_eq!(m["B"], "VAL# not a comment");
        assert_eq!(m["C"], "VAL # not a comment");
        assert_eq!(m["D"], "VAL");
        let m = p("O=x\nA='$OTHER'\nB='${OTHER}'\nC='Let\\'s go!'\nD=\"{\\\"hello\\\": \\\"json\\\"}\"\n");
        assert_eq!(m["A"], "$OTHER");
        assert_eq!(m["B"], "${OTHER}");
        assert_eq!(m["C"], "Let's go!");
        assert_eq!(m["D"], "{\"hello\": \"json\"}");
        let m = p("A=\"some\\tvalue\"\nB='some\\tvalue'\nC=some\\tvalue\n");
        assert_eq!(m["A"], "some\tvalue");
        assert_eq!(m["B"], "some\\tvalue");
        assert_eq!(m["C"], "some\\tvalue");
        let m = p("EMPTY=\nFROM_ENV\nNOT_IN_ENV\n");
        assert_eq!(m["EMPTY"], "");
        assert_eq!(m["FROM_ENV"], "outside");
        assert!(!m.contains_key("NOT_IN_ENV"));
    }

    #[test]
    fn interpolation_and_export() {
        let m = p("export A=1\nB=${A}2\nC=\"$A-${FROM_ENV}\"\nD=${NOPE:-dflt}\nE=\\$A\nF=\"\\$A\"\nG: yaml-style\n");
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "12");
        assert_eq!(m["C"], "1-outside");
        assert_eq!(m["D"], "dflt");
        assert_eq!(m["E"], "\\1");
        assert_eq!(m["F"], "$A");
        assert_eq!(m["G"], "yaml-style");
    }

    #[test]
    fn multi_line_and_errors() {
        let m = p("A=\"line1\nline2\"\nB=after\n");
        assert_eq!(m["A"], "line1\nline2");
        assert_eq!(m["B"], "after");
        let lookup = |_: &str| None;
        assert_eq!(
            parse("A=1\nB=\"open\n", &lookup).unwrap_err(),
            EnvFileError::Unterminated { line: 2, text: "\"open".into() }
        );
        assert!(matches!(parse("A=1\nB$=2\n", &lookup), Err(EnvFileError::BadName { line: 2, ch: '$', .. })));
        assert!(matches!(parse("X=${NEED:?set it}\n", &lookup), Err(EnvFileError::Template { line: 1, .. })));
        assert_eq!(
            parse_raw("A=\"q\" $x\n#c\nB=1=2\n"),
            vec![("A".into(), "\"q\" $x".into()), ("B".into(), "1=2".into())]
        );
    }
}
