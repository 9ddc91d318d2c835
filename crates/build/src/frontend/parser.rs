//! The Dockerfile syntax: parser directives, comments, line continuations, JSON vs shell
//! form, builder flags and heredocs, turned into BuildKit's AST (`parser.Node`).
//!
//! Written here rather than on `parse-dockerfile`: that crate keeps escape+newline inside
//! RUN text and has a different AST, while the BuildKit golden corpus wants the exact
//! `Node.Next` chain; a port of BuildKit's line parsers is the shortest way to match it.

use crate::Error;
use crate::frontend::shell::{Env, Lexer, go_quote};

/// A parser directive from the top of the file (`# syntax=`, `# escape=`, `# check=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-case name.
    pub name: String,
    /// The value as written.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

/// A heredoc attached to an instruction (`RUN <<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (also the file name for COPY/ADD).
    pub name: String,
    /// The file descriptor before `<<` (0 when absent).
    pub file_descriptor: u64,
    /// Whether variables in the content are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the content.
    pub chomp: bool,
    /// The raw content lines, each with its line ending.
    pub content: String,
}

/// One instruction as BuildKit's parser gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction word as written (`RUN`, `run`, `Run`…).
    pub value: String,
    /// The instruction in lower case.
    pub instruction: String,
    /// Builder flags (`--from=x`) in order.
    pub flags: Vec<String>,
    /// The words of the `Node.Next` chain; for ENV and LABEL a flat list of
    /// (key, value, separator) triples where the separator is `=` or empty (legacy form).
    pub args: Vec<String>,
    /// The instruction nested in an ONBUILD.
    pub sub: Option<Box<Node>>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// Heredocs in the order they appear.
    pub heredocs: Vec<Heredoc>,
    /// The instruction line with continuations joined.
    pub original: String,
    /// First line (1-based).
    pub start_line: usize,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
}

impl Node {
    /// The node as one of BuildKit's golden-file s-expressions, e.g. `(run "echo hi")`.
    pub fn dump(&self) -> String {
        let mut s = self.instruction.clone();
        if !self.flags.is_empty() {
            let quoted: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            s.push_str(&format!(" [{}]", quoted.join(" ")));
        }
        for a in &self.args {
            s.push(' ');
            s.push_str(&go_quote(a));
        }
        if let Some(sub) = &self.sub {
            s.push_str(&format!(" ({})", sub.dump()));
        }
        s.trim().to_string()
    }

    /// BuildKit's `nodeArgs`: the arguments, with an ONBUILD trigger flattened in.
    pub fn flat_args(&self) -> Vec<String> {
        let mut out = self.args.clone();
        if let Some(sub) = &self.sub {
            out.push(sub.value.clone());
            out.extend(sub.flat_args());
        }
        out
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.instruction[..], &self.sub) {
            ("onbuild", Some(sub)) => sub,
            _ => self,
        };
        matches!(&node.instruction[..], "add" | "copy" | "run") && !node.json
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives found at the top.
    pub directives: Vec<Directive>,
    /// The escape character in effect (`\` or `` ` ``).
    pub escape: char,
    /// The instructions in order.
    pub nodes: Vec<Node>,
    /// Warnings BuildKit would print (empty continuation lines).
    pub warnings: Vec<String>,
}

impl Dockerfile {
    /// The whole AST in BuildKit's golden-file form, one `(…)` line per instruction.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            s.push('(');
            s.push_str(&n.dump());
            s.push_str(")\n");
        }
        s.trim().to_string()
    }

    /// The value of a parser directive (`syntax`, `escape`, `check`).
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives.iter().find(|d| d.name == name).map(|d| d.value.as_str())
    }
}

/// The longest line BuildKit's scanner accepts.
const MAX_LINE: usize = 64 * 1024;

struct Directives {
    escape: char,
    done: bool,
    line: usize,
    found: Vec<Directive>,
}

impl Directives {
    fn set_escape(&mut self, v: &str) -> Result<(), Error> {
        match v {
            "`" => self.escape = '`',
            "\\" => self.escape = '\\',
            _ => return Err(syn(format!("invalid escape token '{v}' does not match ` or \\"))),
        }
        Ok(())
    }

    /// BuildKit's `DirectiveParser.ParseLine` plus the escape handling.
    fn possible_directive(&mut self, line: &str) -> Result<bool, Error> {
        self.line += 1;
        if self.done {
            return Ok(false);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(false);
        };
        let rest = rest.trim_start();
        let Some((name, value)) = match_directive(rest) else {
            self.done = true;
            return Ok(false);
        };
        let name = name.to_ascii_lowercase();
        if !matches!(&name[..], "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(syn(format!("only one {name} parser directive can be used")));
        }
        if name == "escape" {
            self.set_escape(&value)?;
        }
        self.found.push(Directive { name, value, line: self.line });
        Ok(true)
    }
}

fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(s: &str) -> Option<(String, String)> {
    let mut chars = s.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_end = s.char_indices().find(|(_, c)| !c.is_ascii_alphanumeric()).map_or(s.len(), |(i, _)| i);
    let name = &s[..name_end];
    let after = s[name_end..].trim_start_matches(is_re_space);
    let rest = after.strip_prefix('=')?;
    let value = rest.trim_start_matches(is_re_space);
    let value = if value.is_empty() {
        // `.+?` needs one character: the greedy `\s*` gives its last one back.
        rest.chars().last()?.to_string()
    } else {
        value.trim_end_matches(is_re_space).to_string()
    };
    if value.contains('\n') {
        return None;
    }
    Some((name.to_string(), value))
}

/// Splits `s` like Go's `regexp.MustCompile("[\t\v\f\r ]+").Split(s, n)`.
fn split_ws(s: &str, n: isize) -> Vec<String> {
    let is_ws = |c: char| matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ');
    if s.is_empty() {
        return vec![String::new()];
    }
    let mut matches = Vec::new();
    let mut i = 0;
    let b: Vec<(usize, char)> = s.char_indices().collect();
    while i < b.len() {
        if is_ws(b[i].1) {
            let st = b[i].0;
            while i < b.len() && is_ws(b[i].1) {
                i += 1;
            }
            let en = if i < b.len() { b[i].0 } else { s.len() };
            matches.push((st, en));
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for (ms, me) in matches {
        if n > 0 && out.len() as isize == n - 1 {
            break;
        }
        end = ms;
        if me != 0 {
            out.push(s[beg..end].to_string());
        }
        beg = me;
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

/// Parses Dockerfile bytes; invalid UTF-8 becomes U+FFFD, as Go's string handling would
/// show it.
pub fn parse_bytes(input: &[u8]) -> Result<Dockerfile, Error> {
    parse(&String::from_utf8_lossy(input))
}

/// Parses a Dockerfile.
pub fn parse(input: &str) -> Result<Dockerfile, Error> {
    let mut d = Directives { escape: '\\', done: false, line: 0, found: Vec::new() };
    let lines = split_lines(input);
    let mut idx = 0;
    let mut current_line = 0usize;
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while idx < lines.len() {
        let mut raw = lines[idx];
        idx += 1;
        if raw.len() > MAX_LINE {
            return Err(too_long(current_line + 1));
        }
        if current_line == 0 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        if is_comment(raw) {
            // Byte-wise like BuildKit, which skips the first byte even when it is a space.
            let c = String::from_utf8_lossy(&raw.as_bytes()[1..]).trim().to_string();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c);
            }
        }
        let (processed, directive_ok) = process_line(&mut d, raw, true).map_err(|e| e.at_lines(current_line + 1, 0))?;
        if directive_ok {
            comments.pop();
        }
        current_line += 1;
        let start_line = current_line;
        let (first, mut eol) = trim_continuation(processed, d.escape);
        if eol && first.is_empty() {
            continue;
        }
        let mut buf = first.to_string();
        let mut has_empty = false;
        while !eol && idx < lines.len() {
            let raw = lines[idx];
            idx += 1;
            if raw.len() > MAX_LINE {
                return Err(too_long(current_line + 1));
            }
            let (p, _) = process_line(&mut d, raw, false).map_err(|e| e.at_lines(current_line + 1, 0))?;
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if p.trim_start().is_empty() {
                has_empty = true;
                continue;
            }
            let (p, e) = trim_continuation(p, d.escape);
            eol = e;
            buf.push_str(p);
        }
        if has_empty {
            warnings.push(format!("Empty continuation line found in: {buf}"));
        }
        let mut node = node_from_line(&buf, d.escape, std::mem::take(&mut comments))
            .map_err(|e| e.at_lines(start_line, current_line))?;
        if node.can_contain_heredoc() && buf.contains("<<") {
            let docs = heredocs_from_line(&buf).map_err(|e| e.at_lines(start_line, current_line))?;
            for mut doc in docs {
                let mut terminated = false;
                while idx < lines.len() {
                    let raw = lines[idx];
                    idx += 1;
                    current_line += 1;
                    let mut term = raw.trim_end_matches(['\r', '\n']);
                    if doc.chomp {
                        term = term.trim_start_matches('\t');
                    }
                    if term == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    return Err(Error::syntax("unterminated heredoc", start_line, current_line));
                }
                node.heredocs.push(doc);
            }
        }
        set_lines(&mut node, start_line, current_line);
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(Error::syntax("file with no instructions", current_line.max(1), 0));
    }
    Ok(Dockerfile { directives: d.found, escape: d.escape, nodes, warnings })
}

fn too_long(line: usize) -> Error {
    Error::syntax(format!("dockerfile line greater than max allowed size of {}", MAX_LINE - 1), line, 0)
}

fn set_lines(node: &mut Node, start: usize, end: usize) {
    node.start_line = start;
    node.end_line = end;
    if let Some(sub) = &mut node.sub {
        set_lines(sub, start, end);
    }
}

/// Lines with their endings kept, like BuildKit's `scanLines`.
fn split_lines(input: &str) -> Vec<&str> {
    input.split_inclusive('\n').collect()
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn process_line<'a>(d: &mut Directives, token: &'a str, strip_left: bool) -> Result<(&'a str, bool), Error> {
    let mut token = token.trim_end_matches(['\r', '\n']);
    if strip_left {
        token = token.trim_start();
    }
    let ok = d.possible_directive(token)?;
    Ok((if is_comment(token) { "" } else { token }, ok))
}

/// `([^\\])\\[ \t]*$|^\\[ \t]*$` replaced by `$1`.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.ends_with(escape) {
        return (line, true);
    }
    (before, false)
}

/// BuildKit's `newNodeFromLine`: split off the instruction and flags, then dispatch.
fn node_from_line(line: &str, escape: char, comments: Vec<String>) -> Result<Node, Error> {
    let trimmed = line.trim();
    let parts = split_ws(trimmed, 2);
    let cmd = parts.first().cloned().unwrap_or_default();
    let (flags, rest) = if parts.len() == 2 {
        let (rest, flags) = extract_builder_flags(&parts[1], escape);
        (flags, rest.trim().to_string())
    } else {
        (Vec::new(), String::new())
    };
    let instruction = cmd.to_lowercase();
    let mut node = Node {
        value: cmd,
        instruction,
        flags,
        args: Vec::new(),
        sub: None,
        json: false,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        comments,
    };
    match &node.instruction[..] {
        "add" | "copy" | "volume" => {
            (node.args, node.json) = parse_maybe_json_to_list(&rest)?;
        }
        "cmd" | "entrypoint" | "run" | "shell" => {
            (node.args, node.json) = parse_maybe_json(&rest)?;
        }
        "arg" => node.args = parse_words(&rest, escape),
        "env" => node.args = parse_name_val(&rest, "ENV", escape)?,
        "label" => node.args = parse_name_val(&rest, "LABEL", escape)?,
        "expose" | "from" => node.args = parse_ws_delimited(&rest),
        "healthcheck" => (node.args, node.json) = parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !rest.is_empty() {
                node.args = vec![rest];
            }
        }
        "onbuild" => {
            if !rest.is_empty() {
                node.sub = Some(Box::new(node_from_line(&rest, escape, Vec::new())?));
            }
        }
        // BuildKit's parseIgnore leaves one empty word; the instruction layer rejects these.
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

/// Collects leading `--flag` words; returns the rest of the line and the flags.
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let ch = if at_end { '\0' } else { chars[pos].1 };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || chars.get(pos + 1).map(|c| c.1) != Some('-') {
                return (line[chars[pos].0..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[chars[pos].0..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut ch = ch;
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = chars[pos].1;
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut ch = ch;
        if ch == escape {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = chars[pos].1;
        }
        word.push(ch);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: split on spaces, keeping quotes and escapes for later.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let at_end = pos == chars.len();
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !buf.is_empty() {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                buf.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            buf.push(ch);
            pos += 1;
            continue;
        }
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            buf.push(ch);
            ch = chars[pos];
        }
        buf.push(ch);
        pos += 1;
    }
    words
}

fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, Error> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    if !words[0].contains('=') {
        let parts = split_ws(rest, 2);
        if parts.len() < 2 {
            return Err(syn(format!("{key} must have two arguments")));
        }
        return Ok(vec![parts[0].clone(), parts[1].clone(), String::new()]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(syn(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(&w)
            )));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn parse_ws_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ws(rest, -1)
}

enum JsonErr {
    NotStringArray,
    Other,
}

fn parse_json(rest: &str) -> Result<Vec<String>, JsonErr> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonErr::Other);
    }
    let v: serde_json::Value = serde_json::from_str(rest).map_err(|_| JsonErr::Other)?;
    let serde_json::Value::Array(items) = v else {
        return Err(JsonErr::Other);
    };
    items
        .into_iter()
        .map(|i| match i {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(JsonErr::NotStringArray),
        })
        .collect()
}

/// A syntax error whose lines the caller sets ([`Error::at_lines`]).
fn syn(message: String) -> Error {
    Error::syntax(message, 0, 0)
}

const NOT_STRING_ARRAY: &str = "when using JSON array syntax, arrays must be comprised of strings only";

fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), Error> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Ok(v) => Ok((v, true)),
        Err(JsonErr::NotStringArray) => Err(syn(NOT_STRING_ARRAY.into())),
        Err(JsonErr::Other) => Ok((vec![rest.to_string()], false)),
    }
}

fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), Error> {
    match parse_json(rest) {
        Ok(v) => Ok((v, true)),
        Err(JsonErr::NotStringArray) => Err(syn(NOT_STRING_ARRAY.into())),
        Err(JsonErr::Other) => Ok((parse_ws_delimited(rest), false)),
    }
}

fn parse_health_config(rest: &str) -> Result<(Vec<String>, bool), Error> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let cmd = rest[sep..].trim_start();
    let (mut args, json) = parse_maybe_json(cmd)?;
    args.insert(0, rest[..sep].to_string());
    Ok((args, json))
}

fn empty_env() -> Env {
    Env::new()
}

/// Finds heredoc words (`<<EOF`, `<<-"EOF"`, `3<<EOF`) in an instruction line.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, Error> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &empty_env()).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Parses one heredoc word (`^(\d*)<<(-?)\s*([^<]*)$`); `None` if `src` is not one.
pub fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, Error> {
    let digits = src.len() - src.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = src[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_re_space);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = if digits == 0 { 0 } else { src[..digits].parse::<u64>().unwrap_or(u64::MAX) };
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &empty_env()).map_err(|e| syn(e.to_string()))?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &empty_env()).map_err(|e| syn(e.to_string()))?;
    if raw.len() != words.len() {
        return Err(syn(format!("internal lexing of heredoc produced inconsistent results: {rest}")));
    }
    let count = |s: &str| s.matches(['\'', '"']).count();
    Ok(Some(Heredoc {
        name: words[0].clone(),
        file_descriptor: fd,
        expand: count(&words[0]) == count(&raw[0]),
        chomp,
        content: String::new(),
    }))
}

/// Removes leading tabs from every line (for `<<-` heredocs).
pub fn chomp_heredoc_content(src: &str) -> String {
    src.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes() {
        assert_eq!(parse_words("foo bar 'abc xyz'", '\\'), ["foo", "bar", "'abc xyz'"]);
        assert_eq!(parse_words("foo\\ bar", '\\'), ["foo\\ bar"]);
        assert_eq!(parse_words("föo bàr \"âbc xÿz\"", '\\'), ["föo", "bàr", "\"âbc xÿz\""]);
    }

    #[test]
    fn directives_and_escape() {
        let df = parse("# syntax=docker/dockerfile:1\n# ESCAPE = `\nFROM a\nRUN x `\n  y\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.directive("syntax"), Some("docker/dockerfile:1"));
        assert_eq!(df.nodes[1].args, ["x   y"]);
        assert_eq!(df.nodes[1].start_line, 4);
        assert_eq!(df.nodes[1].end_line, 5);
        let e = parse("# escape=\\\n# escape=`\nFROM a\n").unwrap_err();
        assert_eq!(e.message(), "only one escape parser directive can be used");
        // A directive after an instruction or comment is a comment.
        let df = parse("# hello\n# escape=`\nFROM a\n").unwrap();
        assert_eq!(df.escape, '\\');
    }

    #[test]
    fn heredocs() {
        let src = "FROM a\nRUN <<EOF cat <<-'END' > /x\necho $A\nEOF\n\tbody\n\tEND\nCOPY <<a.txt /dst\nhi\na.txt\n";
        let df = parse(src).unwrap();
        let run = &df.nodes[1];
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].name, "EOF");
        assert!(run.heredocs[0].expand);
        assert_eq!(run.heredocs[0].content, "echo $A\n");
        assert_eq!(run.heredocs[1].name, "END");
        assert!(run.heredocs[1].chomp);
        assert!(!run.heredocs[1].expand);
        assert_eq!(run.end_line, 6);
        assert_eq!(df.nodes[2].start_line, 7);
        assert_eq!(df.nodes[2].heredocs[0].content, "hi\n");
        let e = parse("FROM a\nRUN <<EOF\nx\n").unwrap_err();
        assert_eq!(e.message(), "unterminated heredoc");
        assert_eq!((e.line(), e.end_line()), (2, 3));
    }

    #[test]
    fn flags_and_errors() {
        let df = parse("FROM a\nCOPY --from=b --chown=\"1 2\" x y\n").unwrap();
        assert_eq!(df.nodes[1].flags, ["--from=b", "--chown=1 2"]);
        assert_eq!(df.nodes[1].args, ["x", "y"]);
        let e = parse("FROM a\n\nENV PATH\n").unwrap_err();
        assert_eq!(e.to_string(), "ENV must have two arguments");
        assert_eq!(e.line(), 3);
        assert_eq!(parse("# c\n\n").unwrap_err().message(), "file with no instructions");
    }

    #[test]
    fn split_ws_like_go() {
        assert_eq!(split_ws("a  b c", 2), ["a", "b c"]);
        assert_eq!(split_ws("a", 2), ["a"]);
        assert_eq!(split_ws("a \tb", -1), ["a", "b"]);
    }
}
