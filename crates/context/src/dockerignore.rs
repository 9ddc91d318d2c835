//! `.dockerignore`: Docker's exclusion rules (moby's patternmatcher semantics, not
//! gitignore's), and Go's `filepath.Match` wildcard syntax that COPY sources use too.
//!
//! A pattern is matched against a path relative to the context root and against each of
//! that path's parent directories, so excluding `dir` excludes everything inside it. Patterns
//! are applied in order and the last one that matches decides, which is what lets a later
//! `!dir/keep` re-include a file inside an excluded directory.

use std::path::Path;

use crate::Error;

/// How a pattern is compared, chosen exactly as moby does so that edge cases such as
/// `**foo` (a plain suffix test there) behave the same.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters except `/`.
    Star,
    /// `?`: one character except `/`.
    Any,
    /// `[...]`: a character class, `negated` for `[^...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` not at the end: zero or more whole directories (`(.*/)?`).
    Dirs,
    /// `**` at the end: anything at all.
    Tail,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned text without the leading `!`.
    text: String,
    exclusion: bool,
    kind: MatchType,
    toks: Vec<Tok>,
}

/// The compiled lines of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

/// `filepath.Clean` for slash-separated paths: the one definition lives in `base::fsroot`.
pub use berth_base::fsroot::clean_path;

/// The patterns of a `.dockerignore` file's text, as moby's `ReadAll` gives them: `#`
/// comment lines and blank lines dropped, `!` exceptions kept, leading `/` dropped, each
/// pattern cleaned (`./a/../b` is `b`). BuildKit sessions send these to the client, whose
/// file sync leaves out what they match.
pub fn patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    for line in text.lines() {
        // Comments are recognised before trimming, as docker does: ` #x` is a pattern.
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean_path(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat.remove(0);
            }
        }
        lines.push(if invert { format!("!{pat}") } else { pat });
    }
    lines
}

impl IgnoreMatcher {
    /// Parses the text of a `.dockerignore` file: `#` comment lines, blank lines, `!`
    /// exceptions, leading `/` dropped, each pattern cleaned (`./a/../b` is `b`).
    pub fn parse(text: &str) -> Result<IgnoreMatcher, Error> {
        IgnoreMatcher::from_patterns(&patterns(text))
    }

    /// Compiles already-read patterns (`!` marks an exception), as moby's
    /// `patternmatcher.New` does; also used for `COPY --exclude`.
    pub fn from_patterns<S: AsRef<str>>(lines: &[S]) -> Result<IgnoreMatcher, Error> {
        let mut patterns = Vec::new();
        for line in lines {
            let raw = line.as_ref().trim();
            if raw.is_empty() {
                continue;
            }
            let mut body = raw;
            let mut exclusion = false;
            if let Some(rest) = raw.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(Error::BadPattern {
                        pattern: raw.to_owned(),
                        reason: "illegal exclusion pattern: \"!\"".into(),
                    });
                }
                exclusion = true;
                body = rest;
            }
            let p = clean_path(body);
            // Go validates the syntax by matching against "."; we do the same check.
            glob_match(&p, ".")?;
            let (kind, toks) = compile(&p)?;
            patterns.push(Pattern { text: p, exclusion, kind, toks });
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Reads the ignore file for a build: `<dockerfile>.dockerignore` next to the Dockerfile
    /// if there is one (BuildKit's rule), else `.dockerignore` at the context root, else no
    /// patterns. `dockerfile` is the Dockerfile's path (relative paths are taken from `dir`).
    pub fn load(dir: &Path, dockerfile: &Path) -> Result<IgnoreMatcher, Error> {
        let df = if dockerfile.is_absolute() { dockerfile.to_path_buf() } else { dir.join(dockerfile) };
        let mut specific = df.clone().into_os_string();
        specific.push(".dockerignore");
        for candidate in [std::path::PathBuf::from(specific), dir.join(".dockerignore")] {
            match std::fs::read(&candidate) {
                Ok(bytes) => return IgnoreMatcher::parse(&String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("read", &candidate, e)),
            }
        }
        Ok(IgnoreMatcher::default())
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any `!` exception exists.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is excluded. Docker's
    /// patterns do not distinguish files from directories (a trailing `/` is cleaned away),
    /// so `is_dir` only documents what the caller is asking about.
    pub fn matches(&self, rel_path: &str, is_dir: bool) -> bool {
        let _ = is_dir;
        let path = clean_path(rel_path.trim_start_matches('/'));
        if path == "." {
            // The context root itself is never excluded.
            return false;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // An exception cannot change an unmatched path, an exclusion cannot change a
            // matched one: skip the work, as moby does.
            if p.exclusion != matched {
                continue;
            }
            let mut hit = p.matches(&path);
            if !hit {
                let mut prefix = String::new();
                for d in &parents {
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(d);
                    if p.matches(&prefix) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walk must still descend into the excluded directory `dir`, because an
    /// exception might re-include something inside it. Literal exceptions are checked as the
    /// docker CLI does (`!dir/keep`); an exception with wildcards before its last literal
    /// directory may match anywhere, so it keeps every directory open that it could reach.
    pub fn may_include_inside(&self, dir: &str) -> bool {
        let dir = clean_path(dir.trim_start_matches('/'));
        let dir_slash = format!("{dir}/");
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            if format!("{}/", p.text).starts_with(&dir_slash) {
                return true;
            }
            // The literal part before the first wildcard must be compatible with `dir`.
            let lit_end = p.text.find(['*', '?', '[', '\\']).unwrap_or(p.text.len());
            if lit_end == p.text.len() {
                return false;
            }
            let lit = &p.text[..lit_end];
            dir_slash.starts_with(lit) || lit.starts_with(&dir_slash)
        })
    }

    /// Adds the exceptions the docker CLI adds so that the Dockerfile and the ignore file
    /// itself are always sent, even when a pattern excludes them. `dockerfile` is the
    /// Dockerfile's path relative to the context root (`""` when it is not in the context).
    pub fn keep_build_files(&mut self, dockerfile: &str) {
        let df = clean_path(dockerfile.trim_start_matches('/'));
        let mut names = vec![".dockerignore".to_owned()];
        if df != "." {
            names.push(format!("{df}.dockerignore"));
            names.push(df);
        }
        for name in names {
            if self.matches(&name, false) {
                // An exact match, so names with wildcard characters match only themselves.
                self.patterns.push(Pattern { text: name, exclusion: true, kind: MatchType::Exact, toks: Vec::new() });
            }
        }
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchType::Exact => path == self.text,
            MatchType::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.text[2..];
                if path.ends_with(suffix) {
                    return true;
                }
                suffix.strip_prefix('/').is_some_and(|s| s == path)
            }
            MatchType::Regexp => {
                let chars: Vec<char> = path.chars().collect();
                tok_match(&self.toks, &chars)
            }
        }
    }
}

/// Compiles a pattern the way moby's `Pattern.compile` does.
fn compile(pattern: &str) -> Result<(MatchType, Vec<Tok>), Error> {
    let bad = |reason: &str| Error::BadPattern { pattern: pattern.to_owned(), reason: reason.to_owned() };
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut kind = MatchType::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        kind = MatchType::Regexp;
                    }
                    toks.push(Tok::Tail);
                } else {
                    toks.push(Tok::Dirs);
                    kind = MatchType::Regexp;
                }
                if first {
                    kind = MatchType::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                kind = MatchType::Regexp;
            }
            '?' => {
                toks.push(Tok::Any);
                kind = MatchType::Regexp;
            }
            '\\' => match chars.get(i) {
                Some(c) => {
                    toks.push(Tok::Lit(*c));
                    i += 1;
                    kind = MatchType::Regexp;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                let (tok, next) = parse_class(&chars, i).ok_or_else(|| bad("syntax error in pattern"))?;
                toks.push(tok);
                i = next;
                kind = MatchType::Regexp;
            }
            c => toks.push(Tok::Lit(c)),
        }
        first = false;
    }
    Ok((kind, toks))
}

/// Parses a class body starting after `[`; returns the token and the index after `]`.
fn parse_class(chars: &[char], mut i: usize) -> Option<(Tok, usize)> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !first {
            return Some((Tok::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = class_char(chars, &mut i)?;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            hi = class_char(chars, &mut i)?;
            if hi < lo {
                return None;
            }
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], i: &mut usize) -> Option<char> {
    let c = *chars.get(*i)?;
    *i += 1;
    if c == '\\' {
        let e = *chars.get(*i)?;
        *i += 1;
        return Some(e);
    }
    if c == '-' || c == ']' {
        // Go rejects an unescaped `-` or `]` where a range character is expected.
        return None;
    }
    Some(c)
}

/// Runs the pattern as a small NFA over `s`, so time stays linear in the path length times
/// the pattern length whatever the pattern (`*a*a*a*b` cannot blow up as backtracking would).
fn tok_match(toks: &[Tok], s: &[char]) -> bool {
    let n = toks.len();
    // State i (0..=n): before token i. State n+1+i: inside the directories a `**` (Dirs)
    // at token i is eating, which may only be left after a `/`.
    let mut cur = vec![false; 2 * (n + 1)];
    let closure = |set: &mut Vec<bool>| {
        // Tokens that can match nothing let the NFA move on; later tokens only get
        // enabled by earlier ones, so one forward pass is enough.
        for i in 0..n {
            if set[i] && matches!(toks[i], Tok::Star | Tok::Dirs | Tok::Tail) {
                set[i + 1] = true;
            }
        }
    };
    cur[0] = true;
    closure(&mut cur);
    for &c in s {
        let mut next = vec![false; 2 * (n + 1)];
        for i in 0..n {
            if cur[n + 1 + i] {
                next[if c == '/' { i } else { n + 1 + i }] = true;
            }
            if !cur[i] {
                continue;
            }
            match &toks[i] {
                Tok::Lit(x) => next[i + 1] |= c == *x,
                Tok::Any => next[i + 1] |= c != '/',
                Tok::Class { negated, ranges } => {
                    next[i + 1] |= c != '/' && ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
                }
                Tok::Star => next[i] |= c != '/',
                Tok::Tail => next[i] = true,
                Tok::Dirs => next[if c == '/' { i } else { n + 1 + i }] = true,
            }
        }
        closure(&mut next);
        if !next.iter().any(|b| *b) {
            return false;
        }
        cur = next;
    }
    cur[n]
}

/// Go's `filepath.Match`: `*` and `?` never match `/`, `[...]` classes (`^` negates),
/// `\` escapes. The whole of `name` must match. A malformed pattern is an error.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, Error> {
    let bad = || Error::BadPattern { pattern: pattern.to_owned(), reason: "syntax error in pattern".into() };
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '\\' => {
                let e = *chars.get(i).ok_or_else(bad)?;
                i += 1;
                toks.push(Tok::Lit(e));
            }
            '[' => {
                let (tok, next) = parse_class(&chars, i).ok_or_else(bad)?;
                toks.push(tok);
                i = next;
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    let name: Vec<char> = name.chars().collect();
    Ok(tok_match(&toks, &name))
}

/// Whether `pattern` has any of Go's wildcard characters.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> IgnoreMatcher {
        IgnoreMatcher::parse(text).unwrap()
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path("./a/../b"), "b");
        assert_eq!(clean_path("/a//b/"), "/a/b");
        assert_eq!(clean_path("../x"), "../x");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(clean_path(""), ".");
    }

    #[test]
    fn basic_rules() {
        let i = m("# comment\n\n/node_modules\n*.log\n!keep.log\n./a/../b\n");
        assert!(i.matches("node_modules", true));
        assert!(i.matches("node_modules/x/y.js", false));
        assert!(i.matches("app.log", false));
        assert!(!i.matches("keep.log", false));
        assert!(!i.matches("sub/app.log", false), "* does not cross directories");
        assert!(i.matches("b", false));
        assert!(i.matches("b/c", false));
        assert!(!i.matches("a", true));
        assert!(!i.matches("# comment", false));
    }

    #[test]
    fn double_star() {
        let i = m("**/*.pyc\nbuild/**\n**tmp\na/**/z");
        assert!(i.matches("x.pyc", false));
        assert!(i.matches("p/q/x.pyc", false));
        assert!(i.matches("build/out", false));
        assert!(!i.matches("build", true), "build/** leaves build itself");
        assert!(i.matches("xtmp", false), "moby's suffix match");
        assert!(i.matches("a/z", false));
        assert!(i.matches("a/b/c/z", false));
        assert!(!i.matches("a/bz", false));
        assert!(m("**").matches("anything/at/all", false));
    }

    #[test]
    fn later_lines_win() {
        let i = m("*.md\n!README*.md\nREADME-secret.md");
        assert!(i.matches("a.md", false));
        assert!(!i.matches("README.md", false));
        assert!(i.matches("README-secret.md", false));
    }

    #[test]
    fn exceptions_inside_excluded_dirs() {
        let i = m("docs\n!docs/keep.md");
        assert!(i.matches("docs", true));
        assert!(i.matches("docs/other.md", false));
        assert!(!i.matches("docs/keep.md", false));
        assert!(i.may_include_inside("docs"));
        assert!(!i.may_include_inside("src"));
        let w = m("vendor\n!vendor/**/LICENSE");
        assert!(w.may_include_inside("vendor"));
        assert!(w.may_include_inside("vendor/a/b"));
        assert!(!w.matches("vendor/a/b/LICENSE", false));
        assert!(!m("x\n").may_include_inside("x"));
    }

    #[test]
    fn keep_build_files() {
        let mut i = m("*\n");
        i.keep_build_files("sub/train.dockerfile");
        assert!(!i.matches(".dockerignore", false));
        assert!(!i.matches("sub/train.dockerfile", false));
        assert!(i.matches("other", false));
    }

    /// Cases from moby's patternmatcher tests (single pattern, parents included).
    #[test]
    fn moby_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**/", "file", true),
            ("**", "dir/file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/dir2/file", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc?def", "abcZdef", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
            ("a\\*b", "a*b", true),
            ("a*", "ab/c", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a?b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("a?b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[x\\-]", "-", true),
            ("*x", "xxx", true),
        ];
        for (pat, text, want) in cases {
            let m = IgnoreMatcher::from_patterns(&[*pat]).unwrap();
            assert_eq!(m.matches(text, false), *want, "pattern {pat:?} text {text:?}");
        }
        for bad in ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a["] {
            assert!(IgnoreMatcher::from_patterns(&[bad]).is_err(), "{bad:?}");
        }
        let multi = IgnoreMatcher::from_patterns(&["**", "!util/docker/web"]).unwrap();
        assert!(!multi.matches("util/docker/web/foo", false));
        let multi = IgnoreMatcher::from_patterns(&["**", "!util/docker/web", "util/docker/web/foo"]).unwrap();
        assert!(multi.matches("util/docker/web/foo", false));
    }

    #[test]
    fn no_exponential_blowup() {
        let pat = "*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let name = "a".repeat(200);
        assert!(!glob_match(pat, &name).unwrap());
        let m = IgnoreMatcher::from_patterns(&["**/*a*a*a*a*a*a*a*a*a*a*a*a*b"]).unwrap();
        assert!(!m.matches(&format!("x/{name}"), false));
    }

    #[test]
    fn go_match() {
        assert!(glob_match("*.txt", "a.txt").unwrap());
        assert!(!glob_match("*.txt", "d/a.txt").unwrap());
        assert!(glob_match("d/?.txt", "d/a.txt").unwrap());
        assert!(glob_match("[a-c]x", "bx").unwrap());
        assert!(!glob_match("[^a-c]x", "bx").unwrap());
        assert!(glob_match("\\*", "*").unwrap());
        assert!(glob_match("[", "x").is_err());
        assert!(IgnoreMatcher::parse("[\n").is_err());
        assert!(IgnoreMatcher::parse("!\n").is_err());
    }
}
