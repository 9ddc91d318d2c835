//! Debian's `docker-registry` (distribution 2.8), the independent registry implementation
//! the tests push to and pull from: one per test on 127.0.0.1:<free port>, with its own
//! storage, deletes enabled, and optionally behind htpasswd Basic auth (bcrypt entries made
//! by apache2-utils' `htpasswd`). Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `docker-registry`.
pub struct DockerRegistry {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}

impl DockerRegistry {
    /// Starts one, with Basic auth for `(user, password)` when given, and waits until it
    /// accepts connections.
    pub fn start(htpasswd: Option<(&str, &str)>) -> DockerRegistry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut auth = String::new();
        if let Some((u, p)) = htpasswd {
            let out = Command::new("htpasswd").args(["-Bbn", u, p]).output().expect("htpasswd (apache2-utils)");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("write htpasswd");
            auth = format!("auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n", file.display());
        }
        DockerRegistry::start_in(dir, &auth)
    }

    /// Starts one whose configuration ends with `auth` (a YAML `auth:` section, or empty).
    pub fn start_with_auth(auth: &str) -> DockerRegistry {
        DockerRegistry::start_in(tempfile::tempdir().expect("tempdir"), auth)
    }

    fn start_in(dir: tempfile::TempDir, auth: &str) -> DockerRegistry {
        let port = free_port();
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("store").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).expect("write config.yml");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let reg = DockerRegistry { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:<port>/<repo>`.
    pub fn name(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }
}
