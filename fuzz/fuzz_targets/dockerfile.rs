//! Fuzz target: the Dockerfile frontend end to end — parser, directives, heredocs, typed
//! instructions with BuildKit's word expansion, and lowering into the solver's plan.
#![no_main]

use berth_build::frontend::{self, parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The byte-level entry point (BOM, CRLF, invalid UTF-8 are its business).
    let _ = parser::parse_bytes(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(df) = parser::parse(text) {
        let _ = df.dump();
        for node in &df.nodes {
            let _ = node.flat_args();
        }
    }
    // Heredoc helpers see whole lines in the parser; give them arbitrary ones too.
    let _ = parser::parse_heredoc(text);
    let _ = parser::chomp_heredoc_content(text);
    let _ = frontend::plan(text, "Dockerfile");
});
