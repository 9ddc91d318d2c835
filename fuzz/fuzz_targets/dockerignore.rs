//! Fuzz target: `.dockerignore` parsing and matching. The input is the file's text, a
//! NUL byte, then one path per line to match (a trailing `/` asks as a directory).
#![no_main]

use berth_context::{IgnoreMatcher, clean_path, glob_match, has_wildcards};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (patterns, paths) = text.split_once('\0').unwrap_or((text, "a/b\nx.txt\n.git/\nDockerfile"));
    for line in patterns.lines() {
        let _ = has_wildcards(line);
        let _ = clean_path(line);
        for p in paths.lines().take(8) {
            let _ = glob_match(line, p);
        }
    }
    let Ok(mut m) = IgnoreMatcher::parse(patterns) else { return };
    let _ = (m.is_empty(), m.has_exceptions());
    let check = |m: &IgnoreMatcher| {
        for p in paths.lines().take(64) {
            let (p, is_dir) = match p.strip_suffix('/') {
                Some(d) => (d, true),
                None => (p, false),
            };
            let _ = m.matches(p, is_dir);
            if is_dir {
                let _ = m.may_include_inside(p);
            }
        }
    };
    check(&m);
    m.keep_build_files("Dockerfile");
    check(&m);
});
