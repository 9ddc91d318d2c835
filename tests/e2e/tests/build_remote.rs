//! Sources that are not on this machine: `ADD <url>` (with `--checksum`), `ADD` of a git
//! repository, and building from a remote context (`build git://…#ref:dir`, `build
//! http://…/Dockerfile`), against an HTTP server and a git daemon on 127.0.0.1.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use berth_e2e::{Daemon, ok, text};

/// A small static HTTP/1.1 server: path → body, with a fixed Last-Modified.
fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let files = files.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                r.read_line(&mut first).unwrap();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                        break;
                    }
                }
                let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let resp = match files.get(&path) {
                    Some(body) => {
                        let mut v = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        v.extend_from_slice(body);
                        v
                    }
                    None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                };
                let _ = s.write_all(&resp);
            });
        }
    });
    format!("http://{addr}")
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_downloads_urls_and_checks_their_checksum() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let model = b"weights: 0.1 0.2 0.3\n".to_vec();
    let archive = tar_of("inside.txt", b"packed\n");
    let base =
        serve(HashMap::from([("/models/model.bin".to_owned(), model.clone()), ("/dist/pkg.tar".to_owned(), archive)]));
    let p = d.dir_with(
        "add",
        &format!(
            "FROM busybox\nADD --checksum={} {base}/models/model.bin /opt/\nADD {base}/dist/pkg.tar /opt/pkg.tar\n\
             ADD --chmod=644 {base}/models/model.bin /opt/renamed.bin\n",
            sha256(&model)
        ),
    );
    let out = d.build_plain(&p, &["-t", "add:1", "."]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(ok(&d.berth(&["run", "--rm", "add:1", "cat", "/opt/model.bin"])), text(&model));
    let ls = ok(&d.berth(&[
        "run",
        "--rm",
        "add:1",
        "stat",
        "-c",
        "%n %a %Y",
        "/opt/model.bin",
        "/opt/pkg.tar",
        "/opt/renamed.bin",
    ]));
    assert_eq!(
        ls, "/opt/model.bin 600 1445412480\n/opt/pkg.tar 600 1445412480\n/opt/renamed.bin 644 1445412480\n",
        "downloads are 0600 with the server's mtime, and a remote tar is not extracted"
    );
    // Unchanged content: cached.
    let log = ok(&d.build_plain(&p, &["-t", "add:1", "."]));
    assert_eq!(log.lines().filter(|l| l.ends_with(" CACHED")).count(), 3, "{log}");

    // A wrong checksum, a missing file and an unreachable server fail clearly.
    let cases = [
        (
            format!("FROM busybox\nADD --checksum={} {base}/models/model.bin /x\n", sha256(b"other")),
            "digest mismatch".to_owned(),
        ),
        (format!("FROM busybox\nADD {base}/missing.bin /x\n"), "404".to_owned()),
        ("FROM busybox\nADD http://127.0.0.1:1/x.bin /x\n".to_owned(), "Connection refused".to_owned()),
        (format!("FROM busybox\nCOPY {base}/models/model.bin /x\n"), "source can't be a URL for COPY".to_owned()),
    ];
    for (df, want) in cases {
        let p = d.dir_with("bad", &df);
        let out = d.build_plain(&p, &["-t", "bad:1", "."]);
        assert!(!out.status.success(), "{df}");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(all.contains(&want), "{df}: expected {want:?} in {all}");
    }
    assert!(!d.berth(&["image", "inspect", "bad:1"]).status.success());
}

struct GitDaemon(Child);

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@e")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@e")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// A repository with `app/` holding a Dockerfile, served by `git daemon` on 127.0.0.1.
fn git_repo(d: &Daemon) -> (GitDaemon, String) {
    let root = d.dir.path().join("git");
    let work = root.join("src");
    std::fs::create_dir_all(work.join("app")).unwrap();
    std::fs::write(
        work.join("app/Dockerfile"),
        "FROM busybox\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
    )
    .unwrap();
    std::fs::write(work.join("app/hello.txt"), "hello from git\n").unwrap();
    std::fs::write(work.join("README"), "top\n").unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "first"]);
    git(&work, &["tag", "v1"]);
    git(&root, &["clone", "-q", "--bare", "src", "repo.git"]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("git")
        .args(["daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
        .arg(format!("--base-path={}", root.display()))
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "git daemon did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (GitDaemon(child), format!("git://127.0.0.1:{port}/repo.git"))
}

#[test]
fn git_repositories_and_urls_as_contexts_and_sources() {
    let d = Daemon::start();
    d.import_busybox("busybox:latest");
    let (_daemon, url) = git_repo(&d);

    // A git context with a ref and a sub-directory.
    let out = d.berth(&["build", "--progress", "plain", "-t", "fromgit:1", &format!("{url}#v1:app")]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(ok(&d.berth(&["run", "--rm", "fromgit:1"])), "hello from git\n");

    // A commit id (abbreviated) works too, though the server does not hand out commits by id.
    let work = d.dir.path().join("git/src");
    let sha =
        text(&Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(&work).output().unwrap().stdout);
    let out = d.berth(&["build", "--progress", "plain", "-t", "fromgit:sha", &format!("{url}#{}:app", sha.trim())]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(ok(&d.berth(&["run", "--rm", "fromgit:sha"])), "hello from git\n");

    // ADD of a repository: its tree, without .git.
    let p = d.dir_with("addgit", &format!("FROM busybox\nADD {url}#main /src\n"));
    ok(&d.build_plain(&p, &["-t", "addgit:1", "."]));
    let ls = ok(&d.berth(&["run", "--rm", "addgit:1", "ls", "-A", "/src"]));
    assert_eq!(ls, "README\napp\n");

    // A Dockerfile served over HTTP is a context of its own.
    let base = serve(HashMap::from([(
        "/Dockerfile".to_owned(),
        b"FROM busybox\nRUN echo remote > /r\nCMD [\"cat\", \"/r\"]\n".to_vec(),
    )]));
    ok(&d.berth(&["build", "--progress", "plain", "-t", "fromurl:1", &format!("{base}/Dockerfile")]));
    assert_eq!(ok(&d.berth(&["run", "--rm", "fromurl:1"])), "remote\n");

    // A ref that does not exist fails clearly and leaves nothing behind.
    let out = d.berth(&["build", "-t", "nope:1", &format!("{url}#no-such-ref")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no-such-ref"), "{}", text(&out.stderr));
    let leftovers: Vec<_> = std::fs::read_dir(d.data_root.join("builder")).unwrap().flatten().collect();
    assert!(leftovers.is_empty(), "scratch left in builder/: {leftovers:?}");
}
