//! Builds berth's `--init` (init/init.rs) and the container monitor (monitor/monitor.rs)
//! as small statically linked executables in OUT_DIR, which the crate embeds with
//! `include_bytes!`.
//!
//! Why this way: the init must run as PID 1 in any image, busybox's included, which has
//! no C library, so it is linked statically (`+crt-static` against glibc's libc.a, from
//! libc6-dev, which the build already needs). It uses std and a few libc calls only, so
//! plain `rustc` (the one cargo runs, `$RUSTC`) builds it in well under a second with no
//! crates, no second Cargo invocation and no lock on the target dir; shipping it inside
//! the berth binary means no host package (tini, docker-init) is needed. The monitor is
//! built the same way for another reason: it stays with every running container, so it
//! must be small and share its pages (see runtime/src/shim/monitor.rs).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    build("init/init.rs", "berth_init", "berth-init");
    build("monitor/monitor.rs", "berth_monitor", "berth-monitor");
    // The monitor's module, also compiled into the shim.
    println!("cargo:rerun-if-changed=monitor/handover.rs");
}

fn build(source: &str, crate_name: &str, file: &str) {
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join(source);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join(file);
    println!("cargo:rerun-if-changed={}", src.display());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let target = std::env::var("TARGET").expect("TARGET");
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-name", crate_name, "--target", &target])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols", "-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run rustc");
    assert!(status.success(), "building {} failed", src.display());
}
