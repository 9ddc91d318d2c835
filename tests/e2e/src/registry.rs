//! `berth registry serve` as a process of its own for one test (its own storage root, an
//! ephemeral 127.0.0.1 port), and a busybox image as an OCI layout to push into it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A registry process for one test; killed when dropped.
pub struct Registry {
    /// Temp dir holding the storage root and the log.
    pub dir: tempfile::TempDir,
    /// The storage root (`--root`).
    pub root: PathBuf,
    args: Vec<String>,
    host: String,
    child: Option<Child>,
}

impl Registry {
    /// Starts `berth registry serve --addr 127.0.0.1:0 --root … EXTRA…` and waits until it
    /// listens.
    pub fn start(extra: &[&str]) -> Registry {
        let dir = tempfile::Builder::new().prefix("breg").tempdir_in("/tmp").expect("tempdir");
        let root = dir.path().join("root");
        let args = extra.iter().map(|s| s.to_string()).collect();
        let mut r = Registry { dir, root, args, host: String::new(), child: None };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log_path = self.dir.path().join("registry.log");
        let before = std::fs::read_to_string(&log_path).map(|s| s.len()).unwrap_or(0);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log");
        let child = Command::new(crate::berth_bin())
            .args(["registry", "serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(&self.root)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start berth registry serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(line) = text[before.min(text.len())..].lines().find(|l| l.contains("listening on ")) {
                let url = line.rsplit(' ').next().unwrap_or_default();
                self.host = url.split("://").nth(1).unwrap_or_default().to_owned();
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("berth registry serve exited with {status}: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("berth registry serve did not listen within 20 s: {}", self.log());
    }

    /// `127.0.0.1:PORT` (a restart picks a new port).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Kills it with SIGKILL (a crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same root and arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Builds the busybox image of scripts/mkbusybox as an OCI image layout at `layout`
/// (tag `latest`, command `/bin/sh`) with umoci, and returns the digest of its manifest.
pub fn busybox_oci_layout(layout: &Path) -> String {
    let run = |cmd: &mut Command| {
        let out = cmd.output().expect("run umoci");
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let image = format!("{}:latest", layout.display());
    let bundle = layout.with_extension("bundle");
    run(Command::new("umoci").args(["init", "--layout"]).arg(layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci").args(["unpack", "--image", &image]).arg(&bundle));
    let tar = Command::new("bash").arg(crate::repo_root().join("scripts/mkbusybox")).output().expect("mkbusybox");
    assert!(tar.status.success(), "mkbusybox: {}", String::from_utf8_lossy(&tar.stderr));
    let out = crate::run_with_stdin(
        {
            let mut c = Command::new("tar");
            c.arg("-x").arg("-C").arg(bundle.join("rootfs"));
            c
        },
        &tar.stdout,
    );
    assert!(out.status.success(), "untar: {}", String::from_utf8_lossy(&out.stderr));
    run(Command::new("umoci").args(["repack", "--image", &image]).arg(&bundle));
    run(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "/bin/sh"]));
    let _ = std::fs::remove_dir_all(&bundle);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json")).expect("index json");
    index["manifests"]
        .as_array()
        .and_then(|m| m.iter().find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "latest"))
        .and_then(|d| d["digest"].as_str())
        .expect("the layout's latest manifest")
        .to_owned()
}
