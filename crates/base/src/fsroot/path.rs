//! Lexical path normalisation: the one `clean_path` (Go's `filepath.Clean`) and the
//! components of a path taken below a root. Nothing here touches the file system; what a
//! path means on disk is for the openat2 functions of [`crate::fsroot`].

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// What to do with a `..` that would climb above the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Refuse the path, as Docker does for image layers.
    Reject,
    /// Stay at the root, as `/..` is `/` (build contexts, COPY and ADD destinations).
    Clamp,
}

/// A path taken apart lexically: empty and `.` components dropped, each `..` applied to the
/// component before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexical<'a> {
    /// The path began with `/`.
    pub rooted: bool,
    /// How many `..` found nothing left to remove (they climb above the start).
    pub above: usize,
    /// What remains, in order; never empty, `.` or `..`.
    pub parts: Vec<&'a [u8]>,
}

/// Takes `p` apart lexically (see [`Lexical`]).
pub fn lexical(p: &[u8]) -> Lexical<'_> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut above = 0;
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    above += 1;
                }
            }
            c => parts.push(c),
        }
    }
    Lexical { rooted: p.first() == Some(&b'/'), above, parts }
}

/// Go's `filepath.Clean` for slash-separated paths: no `.` components, `..` resolved
/// lexically (and dropped at the root of a rooted path), no doubled or trailing `/`. An
/// empty result is `.`. `clean_path(&format!("/{p}"))` gives `p` as an absolute path that
/// cannot climb above `/`.
pub fn clean_path(p: &str) -> String {
    let l = lexical(p.as_bytes());
    let mut out: Vec<&str> = Vec::with_capacity(l.above + l.parts.len());
    if !l.rooted {
        out.extend(std::iter::repeat_n("..", l.above));
    }
    // The parts are whole `/`-separated pieces of a `str`, so each is valid UTF-8.
    out.extend(l.parts.iter().map(|b| std::str::from_utf8(b).unwrap_or_default()));
    let joined = out.join("/");
    match (l.rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// `raw` as components below a root: a leading `/` is the root itself, `.` and empty
/// components are dropped, `..` is applied lexically. `None` when a `..` would climb above
/// the root and `escape` is [`Escape::Reject`]. Names keep their exact bytes.
pub fn root_components(raw: &Path, escape: Escape) -> Option<Vec<OsString>> {
    let l = lexical(raw.as_os_str().as_bytes());
    if l.above > 0 && escape == Escape::Reject {
        return None;
    }
    Some(l.parts.into_iter().map(|b| OsString::from_vec(b.to_vec())).collect())
}

/// Joins components into a relative path, `.` for none.
pub fn join_components(comps: &[OsString]) -> std::path::PathBuf {
    if comps.is_empty() { std::path::PathBuf::from(".") } else { comps.iter().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &str, e: Escape) -> Option<Vec<String>> {
        root_components(Path::new(p), e).map(|v| v.into_iter().map(|c| c.into_string().unwrap()).collect())
    }

    #[test]
    fn clean_path_is_go_filepath_clean() {
        // dockerignore's cases.
        assert_eq!(clean_path("./a/../b"), "b");
        assert_eq!(clean_path("/a//b/"), "/a/b");
        assert_eq!(clean_path("../x"), "../x");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(clean_path(""), ".");
        // Go's own table.
        for (i, o) in [
            ("abc", "abc"),
            ("a/b/c", "a/b/c"),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/", "/"),
            ("//abc", "/abc"),
            ("abc/", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/../../././../def", "../../def"),
            ("abc/def/../..", "."),
            ("/abc/def/../../..", "/"),
            ("../a/../..", "../.."),
        ] {
            assert_eq!(clean_path(i), o, "{i}");
        }
        // The solver's use: rooted, never above `/`.
        assert_eq!(clean_path(&format!("/{}", "/a/./b/../c/")), "/a/c");
        assert_eq!(clean_path(&format!("/{}", "app/../../w")), "/w");
    }

    #[test]
    fn root_components_confine() {
        assert_eq!(comps("/a/./b/../c", Escape::Reject).unwrap(), ["a", "c"]);
        assert!(comps("./", Escape::Reject).unwrap().is_empty());
        assert!(comps("a/../../etc/passwd", Escape::Reject).is_none());
        assert!(comps("../../etc/passwd", Escape::Reject).is_none());
        assert!(comps("/../x", Escape::Reject).is_none(), "`..` above `/` is an escape too");
        assert_eq!(comps("../../etc/passwd", Escape::Clamp).unwrap(), ["etc", "passwd"]);
        assert_eq!(comps("a/../../../b/./c//", Escape::Clamp).unwrap(), ["b", "c"]);
        let deep = "../".repeat(1000) + "x";
        assert_eq!(comps(&deep, Escape::Clamp).unwrap(), ["x"]);
        assert!(comps(&deep, Escape::Reject).is_none());
        let name = std::ffi::OsStr::from_bytes(b"a/\xff/b");
        let v = root_components(Path::new(name), Escape::Reject).unwrap();
        assert_eq!(v[1].as_bytes(), b"\xff", "names keep their bytes");
        assert_eq!(join_components(&[]), Path::new("."));
    }
}
