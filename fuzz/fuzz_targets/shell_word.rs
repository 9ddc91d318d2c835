//! Fuzz target: BuildKit's shell-word expansion (`$a`, `${a:-x}`, `${a#pat}`, quotes,
//! escapes) with both escape characters and a small fixed environment.
#![no_main]

use berth_build::frontend::shell::{Env, Lexer, go_quote};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    let Ok(word) = std::str::from_utf8(rest) else { return };
    let escape = if first & 1 == 0 { '\\' } else { '`' };
    let lexer = Lexer::new(escape);
    let env = Env::from_pairs([
        ("a", "1"),
        ("empty", ""),
        ("space", "abc  def"),
        ("glob", "*.txt"),
        ("long", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
    ]);
    let _ = lexer.process_word(word, &env);
    let _ = lexer.process_words(word, &env);
    let _ = lexer.process_word_with_matches(word, &env);
    let _ = go_quote(word);
    // The same word as `KEY=VALUE` lines (how ARG/ENV defaults arrive).
    let kv = Env::from_kv_strings(word.lines());
    let _ = lexer.process_word(word, &kv);
});
