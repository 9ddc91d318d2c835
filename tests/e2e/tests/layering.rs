//! The workspace's dependency edges point down only, as docs/ARCHITECTURE.md draws them:
//! the CLI never links an engine crate, and nothing below the daemon serves HTTP but the
//! registry's server (`berth registry serve`).

use std::collections::BTreeMap;

#[test]
fn crates_depend_only_downward() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(berth_e2e::repo_root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let allowed: BTreeMap<&str, &[&str]> = [
        ("berth-base", &[][..]),
        ("berth-api", &["berth-base"][..]),
        ("berth-image", &["berth-base"][..]),
        ("berth-runtime", &["berth-base"][..]),
        ("berth-network", &["berth-base"][..]),
        ("berth-registry", &["berth-base", "berth-image"][..]),
        ("berth-context", &["berth-base"][..]),
        ("berth-build", &["berth-base", "berth-image", "berth-context"][..]),
        ("berth-compose", &["berth-base", "berth-api", "berth-context"][..]),
        ("berth-cli", &["berth-base", "berth-api", "berth-compose", "berth-context"][..]),
        (
            "berth-daemon",
            &[
                "berth-base",
                "berth-api",
                "berth-image",
                "berth-runtime",
                "berth-network",
                "berth-registry",
                "berth-build",
            ][..],
        ),
        ("berth-dashboard", &["berth-base", "berth-api"][..]),
        ("berth", &["berth-cli", "berth-daemon", "berth-runtime", "berth-registry", "berth-dashboard"][..]),
        ("berth-e2e", &[][..]),
    ]
    .into_iter()
    .collect();
    let server_crates = ["axum", "tower-http"];
    for pkg in meta["packages"].as_array().unwrap() {
        let name = pkg["name"].as_str().unwrap();
        let ok = allowed.get(name).unwrap_or_else(|| panic!("new crate {name}: add its allowed edges to this test"));
        for dep in pkg["dependencies"].as_array().unwrap() {
            let dn = dep["name"].as_str().unwrap();
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            if dn.starts_with("berth") {
                assert!(ok.contains(&dn), "{name} must not depend on {dn}");
            }
            // The registry's server is the distribution protocol itself (docs/ARCHITECTURE.md).
            // The dashboard is a client of the Engine API that serves its page on loopback.
            if name != "berth-daemon" && name != "berth-registry" && name != "berth-dashboard" {
                assert!(!server_crates.contains(&dn), "{name} must not depend on HTTP server code ({dn})");
                if dn == "hyper" {
                    let feats: Vec<&str> =
                        dep["features"].as_array().unwrap().iter().filter_map(|f| f.as_str()).collect();
                    assert!(!feats.contains(&"server"), "{name} enables hyper's server");
                }
            }
        }
    }
}
