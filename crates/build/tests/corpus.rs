//! BuildKit's parser and shell-lexer golden corpus, run against our parser and lexer.

use std::path::PathBuf;

use berth_build::frontend::parser;
use berth_build::frontend::shell::{Env, Lexer, go_quote};

/// The corpus handed to us in `shared/`, beside the project's root.
fn corpus() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/dockerfile-parser");
    assert!(p.is_dir(), "the parser corpus is missing: expected {} (shared/ beside the project root)", p.display());
    p
}

fn dirs(sub: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus().join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn testfiles_match_results() {
    let mut failures = Vec::new();
    let all = dirs("testfiles");
    assert!(all.len() >= 30);
    for dir in &all {
        let src = std::fs::read(dir.join("Dockerfile")).unwrap();
        let src = String::from_utf8_lossy(&src);
        let want = std::fs::read_to_string(dir.join("result")).unwrap();
        match parser::parse(&src) {
            Ok(df) => {
                let got = df.dump() + "\n";
                if got != want {
                    failures.push(format!("{}:\n--- want\n{want}--- got\n{got}", dir.display()));
                }
            }
            Err(e) => failures.push(format!("{}: error {e}", dir.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_testfiles_are_rejected() {
    for dir in dirs("testfiles-negative") {
        let src = std::fs::read_to_string(dir.join("Dockerfile")).unwrap();
        assert!(parser::parse(&src).is_err(), "{} parsed", dir.display());
    }
}

#[test]
fn env_var_test() {
    let lex = Lexer::new('\\');
    let env = Env::from_kv_strings(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let text = std::fs::read_to_string(corpus().join("envVarTest")).unwrap();
    let mut n = 0;
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(parts.len(), 3, "line {}", i + 1);
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        if platform == "W" {
            continue;
        }
        n += 1;
        let got = lex.process_word(source, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(w), e) => e != "error" && w == e,
            _ => false,
        };
        if !ok {
            failures.push(format!("line {}: {source:?} want {expected:?} got {got:?}", i + 1));
        }
    }
    assert!(n > 200);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn words_test() {
    let lex = Lexer::new('\\');
    let text = std::fs::read_to_string(corpus().join("wordsTest")).unwrap();
    let mut envs: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            envs.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 2, "line {}", i + 1);
        let test = parts[0].trim();
        let expected: Vec<&str> = parts[1].trim_start_matches(' ').split(',').collect();
        let got = lex.process_words(test, &Env::from_kv_strings(&envs)).unwrap_or_else(|_| vec!["error".to_string()]);
        if got != expected {
            failures.push(format!("line {}: {test:?} want {expected:?} got {got:?}", i + 1));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn fixture(case: &str, file: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(case).join(file);
    std::fs::read_to_string(p).unwrap()
}

/// BuildKit's `TestParseExtractsHeredoc`, one line per instruction.
#[test]
fn heredoc_fixture() {
    let df = parser::parse(&fixture("heredocs", "input")).unwrap();
    let got: Vec<String> = df
        .nodes
        .iter()
        .map(|n| {
            if n.heredocs.is_empty() {
                return "-".to_string();
            }
            n.heredocs
                .iter()
                .map(|h| {
                    format!(
                        "{}|{}|{}|{}|{}",
                        go_quote(&h.name),
                        h.file_descriptor,
                        h.expand,
                        h.chomp,
                        go_quote(&h.content)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ; ")
        })
        .collect();
    let expected = fixture("heredocs", "expected");
    let want: Vec<&str> = expected.lines().collect();
    assert_eq!(got, want);
}

/// BuildKit's `TestParseIncludesLineNumbers`.
#[test]
fn line_number_fixture() {
    let df = parser::parse(&fixture("line-numbers", "input")).unwrap();
    let got: Vec<String> = df.nodes.iter().map(|n| format!("{} {}", n.start_line, n.end_line)).collect();
    let expected = fixture("line-numbers", "expected");
    let want: Vec<&str> = expected.lines().collect();
    assert_eq!(got, want);
}

#[test]
fn heredoc_words() {
    let cases: &[(&str, &[&str])] = &[
        ("RUN <<-EOF", &["EOF"]),
        // BuildKit splits `<<-` from the word here, so this is no heredoc.
        ("RUN <<- EOF", &[]),
        ("RUN << -EOF", &["-EOF"]),
        ("RUN <<'EOF'", &["EOF"]),
        ("RUN 4<<EOF", &["EOF"]),
        ("RUN <<EOF <<EOF2", &["EOF", "EOF2"]),
        ("RUN '<<EOF'", &[]),
        ("RUN \"<<EOF\"", &[]),
    ];
    for (line, names) in cases {
        let mut src = format!("FROM a\n{line}\n");
        for n in *names {
            src.push_str(&format!("{n}\n"));
        }
        let df = parser::parse(&src).unwrap();
        let got: Vec<&str> = df.nodes[1].heredocs.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(&got, names, "{line}");
    }
    for src in ["<<EOF", "<<'EOF'", "<<\"EOF\"", "<<-EOF", "<<EO\"F\"", "<< EOF", "<<- EOF"] {
        assert_eq!(parser::parse_heredoc(src).unwrap().unwrap().name, "EOF", "{src}");
    }
    for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
        assert!(parser::parse_heredoc(src).unwrap().is_none(), "{src}");
    }
    for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
        assert!(parser::parse_heredoc(src).is_err(), "{src}");
    }
    let df = parser::parse("FROM a\nRUN [\"<<EOF\"]\n").unwrap();
    assert!(df.nodes[1].heredocs.is_empty());
}
