//! Shell-word expansion as BuildKit's Dockerfile frontend does it (`shell/lex.go`): quotes,
//! escapes, `$VAR`, `${VAR}` with the `:-`, `-`, `:+`, `+`, `:?`, `?`, `#`, `##`, `%`, `%%`,
//! `/` and `//` modifiers, and word splitting after expansion.
//!
//! One deliberate difference: BuildKit's `ProcessWords` shares one buffer between the outer
//! word and a nested `${VAR:-…}`, so `ab${X:-c}d` splits into `cd` there; we keep `abcd`,
//! which is what the shell (and BuildKit's own single-word path) does.

use std::collections::BTreeSet;

use crate::Error;

/// The most bytes one expanded word may hold. Real Dockerfiles stay far below it; a
/// Dockerfile that doubles a variable line after line reaches it after twenty lines and
/// fails there, instead of growing the daemon until the kernel kills it. BuildKit's
/// lexer has no such bound.
pub const MAX_WORD_BYTES: usize = 1 << 20;

/// The error for a word that grew past [`MAX_WORD_BYTES`].
fn too_long() -> LexError {
    LexError(format!("expanded word is longer than {MAX_WORD_BYTES} bytes"))
}

/// Fails once `s` has grown past [`MAX_WORD_BYTES`].
fn bounded(s: &str) -> LexResult<()> {
    if s.len() > MAX_WORD_BYTES { Err(too_long()) } else { Ok(()) }
}

/// An ordered environment: later entries win, as with BuildKit's `EnvsFromSlice`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds an environment from (key, value) pairs in order.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Builds an environment from `KEY=value` strings (a missing `=` means an empty value).
    pub fn from_kv_strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        Self {
            vars: items
                .into_iter()
                .map(|s| {
                    let s = s.as_ref();
                    match s.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (s.to_string(), String::new()),
                    }
                })
                .collect(),
        }
    }

    /// Sets `key` to `value`, replacing an earlier value but keeping its position.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        if let Some(slot) = self.vars.iter_mut().rev().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.vars.push((key, value));
        }
    }

    /// The value of `key` (the last one if it appears more than once).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The (key, value) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

/// Everything one expansion produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word (quotes removed, spaces kept).
    pub result: String,
    /// The expansion split into words.
    pub words: Vec<String>,
    /// Variables referenced that were set (the build args a step depends on).
    pub matched: BTreeSet<String>,
    /// Variables referenced that were not set.
    pub unmatched: BTreeSet<String>,
}

/// BuildKit's shell lexer. The plain fields mirror `shell.Lex`'s options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

/// Why a word could not be expanded: BuildKit's message, before the word is known
/// ([`Error::Shell`] carries both).
#[derive(Debug)]
struct LexError(String);

type LexResult<T> = Result<T, LexError>;

impl Lexer {
    /// A lexer whose escape character is `escape` (`\` or `` ` ``).
    pub fn new(escape: char) -> Self {
        Self { escape, raw_quotes: false, raw_escapes: false, skip_process_quotes: false, skip_unset_env: false }
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expands one word: quote removal and variable expansion, spaces kept.
    pub fn process_word(&self, word: &str, env: &Env) -> Result<String, Error> {
        Ok(self.process_word_with_matches(word, env)?.result)
    }

    /// Expands `input` and splits the result into words like the shell does.
    pub fn process_words(&self, input: &str, env: &Env) -> Result<Vec<String>, Error> {
        Ok(self.process_word_with_matches(input, env)?.words)
    }

    /// Expands `word` and reports which variables it referenced.
    pub fn process_word_with_matches(&self, word: &str, env: &Env) -> Result<Expansion, Error> {
        let mut chars: Vec<char> = word.chars().collect();
        // text/scanner drops a byte-order mark at the very start.
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        let mut sw = ShellWord {
            lex: self,
            chars,
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion { result, words, matched: sw.matched, unmatched: sw.unmatched }),
            Err(LexError(message)) => Err(Error::Shell { word: word.to_string(), message }),
        }
    }
}

struct ShellWord<'a> {
    lex: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a Env,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() && self.in_word {
            if !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> LexResult<(String, Vec<String>)> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> LexResult<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if !self.lex.skip_process_quotes => Some(self.process_single_quote()?),
                '"' if !self.lex.skip_process_quotes => Some(self.process_double_quote()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                bounded(&result)?;
                if ch == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            self.next();
            let mut ch = ch;
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw_char(ch);
                    result.push(ch);
                }
                match self.next() {
                    None => break,
                    Some(c) => ch = c,
                }
                words.add_raw_char(ch);
            } else {
                words.add_char(ch);
            }
            result.push(ch);
        }
        if let Some(stop) = stop {
            return Err(LexError(format!("unexpected end of statement while looking for matching {stop}")));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> LexResult<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(LexError("unexpected end of statement while looking for matching single-quote".into()));
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> LexResult<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(LexError("unexpected end of statement while looking for matching double-quote".into()));
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                    bounded(&result)?;
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> LexResult<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(LexError("syntax error: missing '}'".into())),
            Some('{' | '}' | ':') => return Err(LexError("syntax error: bad substitution".into())),
            _ => {}
        }
        let name = self.process_name();
        let ch = self.next();
        // Go's string(EOF) is the replacement character.
        let mut chs = String::from(ch.unwrap_or('\u{fffd}'));
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut ch = ch;
                let null_is_unset = ch == Some(':');
                if null_is_unset {
                    ch = self.next();
                    chs.push(ch.unwrap_or('\u{fffd}'));
                }
                let raw = matches!(ch, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(LexError(format!("unsupported modifier ({chs}) in substitution")));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(LexError("syntax error: missing '}'".into()));
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let empty_unset = !set || (null_is_unset && value.is_empty());
                match ch {
                    Some('-') => Ok(if empty_unset { word } else { value }),
                    Some('+') => Ok(if empty_unset { String::new() } else { word }),
                    Some('?') => {
                        if !set {
                            let m = if word.is_empty() { "is not allowed to be unset".to_string() } else { word };
                            return Err(LexError(format!("{name}: {m}")));
                        }
                        if null_is_unset && value.is_empty() {
                            let m = if word.is_empty() { "is not allowed to be empty".to_string() } else { word };
                            return Err(LexError(format!("{name}: {m}")));
                        }
                        Ok(value)
                    }
                    Some(c @ ('%' | '#')) => {
                        let (greedy, pat) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        if c == '%' { trim_suffix(&pat, &value, greedy) } else { trim_prefix(&pat, &value, greedy) }
                    }
                    _ => Err(LexError(format!("unsupported modifier ({chs}) in substitution"))),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(LexError("syntax error: missing '/' in ${}".into()));
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err(LexError("syntax error: missing '}'".into()));
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                }
                let value: Vec<char> = value.unwrap_or_default().chars().collect();
                let pat = compile_pattern(&pattern)
                    .map_err(|LexError(e)| LexError(format!("invalid pattern ({pattern}) in substitution: {e}")))?;
                let out = if replace_all {
                    replace_all_matches(&pat, &value, &replacement)?
                } else {
                    match find_unanchored(&pat, &value, 0) {
                        Some((s, e)) => {
                            let mut out: String = value[..s].iter().collect();
                            out.push_str(&replacement);
                            out.extend(&value[e..]);
                            out
                        }
                        None => value.iter().collect(),
                    }
                };
                bounded(&out)?;
                Ok(out)
            }
            _ => Err(LexError(format!("unsupported modifier ({chs}) in substitution"))),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(c) = self.peek() {
                    if !is_go_digit(c) {
                        break;
                    }
                    self.next();
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut result = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            result.push(c);
            self.next();
        }
        result
    }
}

fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// One element of a shell pattern (`*`, `?`, or a literal character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatTok {
    Star,
    Any,
    Lit(char),
}

/// Compiles a `${VAR#pattern}` pattern following BuildKit's `convertShellPatternToRegex`.
fn compile_pattern(pattern: &str) -> LexResult<Vec<PatTok>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let tok = chars[i];
        i += 1;
        match tok {
            '*' => out.push(PatTok::Star),
            '?' => out.push(PatTok::Any),
            '\\' => {
                // `}` and `/` are escaped only so they do not end the ${} expression.
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                match chars.get(i) {
                    Some(&c @ ('*' | '?' | '\\')) => {
                        i += 1;
                        out.push(PatTok::Lit(c));
                    }
                    Some(&c) => return Err(LexError(format!("invalid escape '\\{c}'"))),
                    None => return Err(LexError("invalid escape '\\\u{fffd}'".into())),
                }
            }
            c => out.push(PatTok::Lit(c)),
        }
    }
    Ok(out)
}

/// All end positions of matches of `pat` starting at `start` in `s`. Like RE2's `.`,
/// wildcards never match a newline.
fn match_ends(pat: &[PatTok], s: &[char], start: usize) -> Vec<usize> {
    let n = pat.len();
    // states: which pattern positions are reachable; closure over stars (which may match "").
    let closure = |set: &mut Vec<bool>| {
        for k in 0..n {
            if set[k] && pat[k] == PatTok::Star {
                set[k + 1] = true;
            }
        }
    };
    let mut cur = vec![false; n + 1];
    cur[0] = true;
    closure(&mut cur);
    let mut ends = Vec::new();
    let mut pos = start;
    loop {
        if cur[n] {
            ends.push(pos);
        }
        if pos >= s.len() || !cur.iter().any(|b| *b) {
            break;
        }
        let c = s[pos];
        let mut next = vec![false; n + 1];
        for k in 0..n {
            if !cur[k] {
                continue;
            }
            match pat[k] {
                PatTok::Star if c != '\n' => next[k] = true,
                PatTok::Any if c != '\n' => next[k + 1] = true,
                PatTok::Lit(l) if l == c => next[k + 1] = true,
                _ => {}
            }
        }
        closure(&mut next);
        cur = next;
        pos += 1;
    }
    ends
}

fn prefix_match(pat: &[PatTok], s: &[char], greedy: bool) -> Option<usize> {
    let ends = match_ends(pat, s, 0);
    if greedy { ends.last().copied() } else { ends.first().copied() }
}

/// Leftmost, then longest match (the only unanchored use is greedy).
fn find_unanchored(pat: &[PatTok], s: &[char], from: usize) -> Option<(usize, usize)> {
    (from..=s.len()).find_map(|st| match_ends(pat, s, st).last().map(|e| (st, *e)))
}

fn replace_all_matches(pat: &[PatTok], s: &[char], template: &str) -> LexResult<String> {
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= s.len() {
        let Some((a0, a1)) = find_unanchored(pat, s, search) else {
            break;
        };
        out.extend(&s[last_end..a0]);
        // Go skips an empty match right after a previous match.
        if a1 > last_end || a0 == 0 {
            expand_template(&mut out, template, &s[a0..a1]);
        }
        // Every match may add the whole replacement: stop before that multiplies.
        bounded(&out)?;
        last_end = a1;
        search = if search + 1 > a1 { search + 1 } else { a1 };
    }
    out.extend(&s[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without groups: `$0` is the match, `$$` a dollar.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (brace, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len: usize =
            body.chars().take_while(|c| c.is_alphabetic() || is_go_digit(*c) || *c == '_').map(char::len_utf8).sum();
        if name_len == 0 || (brace && !body[name_len..].starts_with('}')) {
            out.push('$');
            continue;
        }
        let name = &body[..name_len];
        rest = &body[name_len + usize::from(brace)..];
        if name == "0" {
            out.extend(matched);
        }
    }
    out.push_str(rest);
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> LexResult<String> {
    let pat = compile_pattern(pattern)
        .map_err(|LexError(e)| LexError(format!("invalid pattern ({pattern}) in substitution: {e}")))?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match prefix_match(&pat, &chars, greedy) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Reverses a pattern without splitting escapes: `a\*c` becomes `c\*a`.
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let tok = p[i];
        let o = last - i;
        if tok == '\\' && i != last {
            out[o - 1] = tok;
            out[o] = p[i + 1];
            i += 2;
        } else {
            out[o] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> LexResult<String> {
    // The shortest rightmost match is the shortest leftmost match of the reversed strings.
    let rp = reverse_pattern(pattern);
    let rv: String = value.chars().rev().collect();
    let r = trim_prefix(&rp, &rv, greedy)?;
    Ok(r.chars().rev().collect())
}

/// Quotes `s` the way Go's `strconv.Quote` does (used in error messages and AST dumps).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if !go_is_print(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` without Unicode tables: controls, spaces
/// other than U+0020, format characters and private-use characters are not printable.
fn go_is_print(c: char) -> bool {
    if c.is_control() || (c.is_whitespace() && c != ' ') {
        return false;
    }
    let u = c as u32;
    !matches!(u,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x206f | 0xd800..=0xdfff | 0xe000..=0xf8ff
        | 0xfeff | 0xfff9..=0xfffb | 0xf0000..=0x10ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    /// Found by the `shell_word` fuzz target: nested replace-alls multiply the word by the
    /// variable's length at each level (five levels asked for about 1 GiB).
    #[test]
    fn nested_replace_all_is_bounded() {
        let l = Lexer::new('\\');
        let e = env(&[("long", &"a".repeat(64))]);
        let err = l.process_word("${long//a/${long//a/${long//a/${long//a/${long//a/x}}}}}", &e).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    #[test]
    fn modifiers_and_matches() {
        let l = Lexer::new('\\');
        let e = env(&[("FOO", "xxx"), ("BAR", "")]);
        let r = l.process_word_with_matches("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &e).unwrap();
        assert_eq!(r.result, "xxx bbb ccc");
        assert_eq!(r.matched.into_iter().collect::<Vec<_>>(), ["BAR", "FOO"]);
        assert_eq!(r.unmatched.into_iter().collect::<Vec<_>>(), ["BAZ"]);
        assert_eq!(l.process_word("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", &e).unwrap(), "aaa bbb ");
        assert!(l.process_word("${BAR:?bbb}", &e).is_err());
        assert_eq!(l.process_word("${BAR?bbb}", &e).unwrap(), "");
        let err = l.process_word("${BAZ?msg}", &e).unwrap_err();
        assert_eq!(err.to_string(), "failed to process \"${BAZ?msg}\": BAZ: msg");
        assert!(l.process_word("${FOO=aaa}", &e).is_err());
        assert!(l.process_word("${FOO:#}", &e).is_err());
    }

    #[test]
    fn patterns() {
        let l = Lexer::new('\\');
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", &[("FOO", "()[]{}^$.*?|\\x")], "x"),
            ("${FOO%%\\**}", &[("FOO", "xx**")], "xx"),
            ("${FOO#*x*y}", &[("FOO", "xxyy")], "y"),
            ("${FOO#*}", &[("FOO", "xxyy")], "xxyy"),
            ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], "xyy"),
            ("${FOO##*x}", &[("FOO", "xxyy")], "yy"),
            ("${FOO#?\\?}", &[("FOO", "???y")], "?y"),
            ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], ".xxyy."),
            ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], "a"),
            (
                "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
                &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
                "/foo.*/*.txt - /foo..*.txt",
            ),
            (
                "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
                &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
                "/tmp/bar.txt - /bar.txt",
            ),
            (
                "${FOO/$NEEDLE/$R} - ${FOO//$NEEDLE/$R}",
                &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("R", "/")],
                "/foo/b/c.txt - /foo/c.txt",
            ),
            ("${FOO//\\//\\/}", &[("FOO", "/tmp/foo.txt")], "\\/tmp\\/foo.txt"),
            ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], "wwxxyy"),
            ("${FOO///}", &[("FOO", "xxyy")], "xxyy"),
        ];
        for (input, e, want) in cases {
            assert_eq!(l.process_word(input, &env(e)).unwrap(), *want, "{input}");
        }
        assert!(l.process_word("${FOO//ww}", &env(&[("FOO", "x")])).is_err());
        assert!(l.process_word("${FOO#\\x}", &env(&[("FOO", "x")])).is_err());
    }

    #[test]
    fn reverse_pattern_keeps_escapes() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
    }

    #[test]
    fn words_split_after_expansion() {
        let l = Lexer::new('\\');
        let e = env(&[("A", "x  y")]);
        assert_eq!(l.process_words("ab${X:-c}d", &e).unwrap(), ["abcd"]);
        assert_eq!(l.process_words("1 $A \"$A\" '$A'", &e).unwrap(), ["1", "x", "y", "x  y", "$A"]);
        let mut raw = Lexer::new('\\');
        raw.raw_quotes = true;
        raw.skip_unset_env = true;
        assert_eq!(raw.process_words("<<'EOF' $U ${U:-x}", &e).unwrap(), ["<<'EOF'", "$U", "${U:-x}"]);
    }

    #[test]
    fn expanded_words_are_bounded() {
        let lex = Lexer::default();
        let half = "x".repeat(MAX_WORD_BYTES / 2);
        let e = env(&[("H", &half)]);
        assert_eq!(lex.process_word("$H$H", &e).unwrap().len(), MAX_WORD_BYTES);
        for word in ["$H$H$H", "\"$H$H${H}\"", "${H//x/xxx}", "a${H:+$H$H}"] {
            let err = lex.process_word(word, &e).unwrap_err();
            assert!(err.to_string().contains("longer than 1048576 bytes"), "{word}: {err}");
        }
        // A replacement that multiplies stops at the bound, long before the product.
        let r = "y".repeat(1000);
        let e = env(&[("H", &half), ("R", &r)]);
        assert!(lex.process_word("${H//x/$R}", &e).is_err());
    }

    #[test]
    fn backtick_escape() {
        let l = Lexer::new('`');
        assert_eq!(l.process_word("a`$X\\b", &env(&[("X", "1")])).unwrap(), "a$X\\b");
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(go_quote("a\"b\\\n\t\u{1}é"), "\"a\\\"b\\\\\\n\\t\\x01é\"");
        assert_eq!(go_quote("\u{a0}"), "\"\\u00a0\"");
    }
}
