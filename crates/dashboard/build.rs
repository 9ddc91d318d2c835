//! Embeds the built front end (`dashboard/dist` at the repository root) into the crate.
//!
//! Written by hand rather than with rust-embed or include_dir: those derive macros cannot
//! tell cargo to rebuild when the folder changes, and a missing folder (a checkout where
//! `npm run build` has not run) must still give a working binary. This writes a table of
//! `include_bytes!` entries, empty when nothing is built.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push((rel.to_string_lossy().replace('\\', "/"), p.clone()));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dist = manifest.join("../../dashboard/dist");
    // A path that does not exist would rerun this script (and relink berth) on every build:
    // until dist/ is built, watch the folder it will appear in.
    let watch = if dist.exists() { dist.clone() } else { manifest.join("../../dashboard") };
    println!("cargo:rerun-if-changed={}", watch.display());
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    if let Ok(dist) = dist.canonicalize() {
        walk(&dist, &dist, &mut files);
    }
    let mut src = String::from(
        "/// The built front end: (path below dist/, contents).\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        src.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("assets.rs");
    std::fs::write(out, src).expect("write assets.rs");
}
