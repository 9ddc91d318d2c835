//! The daemon's network settings (`--bip`, `--fixed-cidr`, daemon.json's `bip`,
//! `fixed-cidr` and `default-address-pools`): a bad value stops the daemon at start with a
//! clear error naming it, before it listens or touches the host's network.

use std::process::{Command, Stdio};

use berth_e2e::{berth_bin, text};

/// Starts `berth daemon` with `daemon_json` and `flags`; returns its exit status and stderr
/// (it must exit by itself: a bad setting never gets as far as serving).
fn start(daemon_json: &str, flags: &[&str]) -> (bool, String) {
    let tmp = tempfile::Builder::new().prefix("be2e-netcfg").tempdir_in("/tmp").unwrap();
    let config = tmp.path().join("daemon.json");
    std::fs::write(&config, daemon_json).unwrap();
    let mut child = Command::new(berth_bin())
        .arg("daemon")
        .arg("-H")
        .arg(format!("unix://{}", tmp.path().join("api.sock").display()))
        .arg("--data-root")
        .arg(tmp.path().join("data"))
        .arg("--exec-root")
        .arg(tmp.path().join("run"))
        .arg("--config-file")
        .arg(&config)
        .args(["--bridge", "bcfg0", "--nft-table", "berth_cfgtest"])
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth daemon");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline || tmp.path().join("api.sock").exists() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("the daemon started with {daemon_json} {flags:?}: {}", text(&out.stderr));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.success(), text(&out.stderr))
}

#[test]
fn bad_network_settings_stop_the_daemon_at_start() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("{}", &["--bip", "nonsense"], "invalid bip: \"nonsense\" is not an IPv4 CIDR"),
        ("{}", &["--bip", "10.97.0.1/31"], "invalid bip 10.97.0.1/31: a /31 subnet has no address for containers"),
        ("{}", &["--fixed-cidr", "10.97.0/24"], "invalid fixed-cidr"),
        (
            "{}",
            &["--bip", "10.97.0.1/24", "--fixed-cidr", "10.98.0.0/25"],
            "fixed-cidr 10.98.0.0/25 is not within bip 10.97.0.1/24",
        ),
        (
            r#"{"bip": "10.97.0.1/24", "fixed-cidr": "10.97.1.0/24"}"#,
            &[],
            "fixed-cidr 10.97.1.0/24 is not within bip 10.97.0.1/24",
        ),
        (r#"{"bip": 17}"#, &[], "bip must be a string"),
        (
            r#"{"default-address-pools": [{"base": "10.0.0.0/8", "size": 4}]}"#,
            &[],
            "invalid default-address-pools size 4 for 10.0.0.0/8",
        ),
        (
            r#"{"default-address-pools": [{"base": "10.0.0.0/8", "size": 31}]}"#,
            &[],
            "invalid default-address-pools size 31",
        ),
        (
            r#"{"default-address-pools": [{"base": "fd00::/8", "size": 24}]}"#,
            &[],
            "invalid default-address-pools: \"fd00::/8\" is not an IPv4 CIDR",
        ),
        (r#"{"default-address-pools": [{"size": 24}]}"#, &[], "default-address-pools: base must be a string"),
        (r#"{"default-address-pools": {"base": "10.0.0.0/8"}}"#, &[], "default-address-pools must be a list"),
    ];
    for (json, flags, want) in cases {
        let (success, err) = start(json, flags);
        assert!(!success, "{json} {flags:?}");
        assert!(err.contains(want), "{json} {flags:?}: want {want:?} in {err}");
    }
    // Nothing of ours was made on the host by any of them.
    assert!(!std::path::Path::new("/sys/class/net/bcfg0").exists());
    let t = Command::new("nft").args(["list", "table", "inet", "berth_cfgtest"]).output().unwrap();
    assert!(!t.status.success(), "no table was made");
}
