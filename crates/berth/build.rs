//! Link options of the berth executable.

fn main() {
    // Pack the executable's relative relocations (DT_RELR, glibc >= 2.36): a PIE this size
    // has ~68,000 of them, 1.6 MB of `.rela.dyn` that the dynamic loader reads at every
    // start (daemon, shim and CLI alike) and keeps mapped; packed they take a few KiB. The
    // executable stays position-independent (ASLR is kept).
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=berth=-Wl,-z,pack-relative-relocs");
    }
}
