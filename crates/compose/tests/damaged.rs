//! Damaged compose files never crash the loader: every one-line damage to the full example
//! (line removed, colons dropped, a stray `$`, indentation broken) either loads or fails
//! with an error that names the file.

use std::path::Path;

use berth_compose::model::{self, LoadOptions};

#[test]
fn every_one_line_damage_loads_or_names_the_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/full");
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut failures = 0;
    for i in 0..lines.len() {
        for damage in 0..4 {
            let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            match damage {
                0 => drop(l.remove(i)),
                1 => l[i] = l[i].replace(':', ""),
                2 => l[i].push('$'),
                _ => l[i] = l[i].replacen("  ", " ", 1),
            }
            let o = LoadOptions {
                working_dir: dir.clone(),
                files: vec!["-".into()],
                stdin: Some(l.join("\n")),
                resolve_paths: true,
                ..Default::default()
            };
            if let Err(e) = model::load(&o) {
                failures += 1;
                let msg = e.to_string();
                assert!(msg.starts_with("-: "), "line {}, damage {damage}: {msg}", i + 1);
            }
        }
    }
    assert!(failures > 0, "the damage must break something");
}
