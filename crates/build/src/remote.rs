//! Sources that live elsewhere: telling URLs and git repositories apart as Docker does,
//! and checking a git repository out for a build context or `ADD <git-url>`.
//!
//! Git is driven through the `git` program, as moby's builder does: it brings every
//! transport (https, ssh, git://), credential helper and proxy setting users already
//! have configured, which no Rust git library covers as a whole.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Whether `s` names a git repository (Docker's rules: `git://`, `git@…`, `github.com/…`,
/// or an http(s) URL whose path ends in `.git`, optionally followed by `#ref[:dir]`).
pub fn is_git_url(s: &str) -> bool {
    if s.starts_with("git://") || s.starts_with("git@") || s.starts_with("github.com/") {
        return true;
    }
    if s.starts_with("http://") || s.starts_with("https://") || s.starts_with("ssh://") {
        let path = s.split('#').next().unwrap_or(s);
        return path.ends_with(".git") || s.starts_with("ssh://");
    }
    false
}

/// Whether `s` is an http(s) URL that is not a git repository.
pub fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && !is_git_url(s)
}

/// A git URL split into what to clone, which ref, and which directory of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// The repository, as `git` takes it.
    pub repo: String,
    /// Branch, tag or commit (`HEAD` when not given).
    pub reference: String,
    /// Sub-directory to use as the root (empty for the whole tree).
    pub subdir: String,
}

impl GitRef {
    /// Parses `repo[#ref[:subdir]]`.
    pub fn parse(url: &str) -> GitRef {
        let url = if url.starts_with("github.com/") { format!("https://{url}") } else { url.to_owned() };
        let (repo, fragment) = match url.split_once('#') {
            Some((r, f)) => (r.to_owned(), f.to_owned()),
            None => (url.clone(), String::new()),
        };
        let (reference, subdir) = match fragment.split_once(':') {
            Some((r, d)) => (r.to_owned(), d.trim_matches('/').to_owned()),
            None => (fragment, String::new()),
        };
        let reference = if reference.is_empty() { "HEAD".to_owned() } else { reference };
        GitRef { repo, reference, subdir }
    }
}

/// What a checkout produced.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The tree's root (the sub-directory, when one was asked for).
    pub root: PathBuf,
    /// The commit checked out.
    pub commit: String,
}

fn git(args: &[&str], cwd: Option<&Path>) -> Result<String, Error> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        // Never wait for a password on a terminal the daemon does not have.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd
        .output()
        .map_err(|e| if e.kind() == std::io::ErrorKind::NotFound { Error::GitNotFound } else { Error::GitSpawn(e) })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::GitCommand { stderr: err.trim().lines().last().unwrap_or("git failed").to_owned() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Checks `url` out into `dir` (created, and left for the caller to remove), shallowly
/// when the server allows it. The `.git` directory is removed unless `keep_git_dir`.
pub fn git_checkout(url: &str, dir: &Path, keep_git_dir: bool) -> Result<Checkout, Error> {
    let r = GitRef::parse(url);
    let fail = |e: Error| Error::Remote { url: url.to_owned(), source: Box::new(e) };
    std::fs::create_dir_all(dir).map_err(|e| fail(Error::io("create", dir, e)))?;
    git(&["init", "-q"], Some(dir)).map_err(fail)?;
    git(&["remote", "add", "origin", &r.repo], Some(dir)).map_err(fail)?;
    // A shallow fetch of the ref; servers without shallow support (dumb http) get a full
    // one. A commit id that the server will not hand out by name is found by fetching
    // everything and checking it out.
    let by_name = git(&["fetch", "-q", "--depth", "1", "origin", &r.reference], Some(dir))
        .or_else(|_| git(&["fetch", "-q", "origin", &r.reference], Some(dir)));
    match by_name {
        Ok(_) => git(&["checkout", "-q", "FETCH_HEAD"], Some(dir)).map_err(fail)?,
        Err(_) if r.reference.len() >= 7 && r.reference.bytes().all(|b| b.is_ascii_hexdigit()) => {
            git(&["fetch", "-q", "--tags", "origin"], Some(dir)).map_err(fail)?;
            git(&["checkout", "-q", &r.reference], Some(dir)).map_err(fail)?
        }
        Err(e) => return Err(fail(e)),
    };
    git(&["submodule", "update", "-q", "--init", "--recursive", "--depth", "1"], Some(dir)).map_err(fail)?;
    let commit = git(&["rev-parse", "HEAD"], Some(dir)).map_err(fail)?;
    if !keep_git_dir {
        let _ = std::fs::remove_dir_all(dir.join(".git"));
    }
    let root = if r.subdir.is_empty() {
        dir.to_path_buf()
    } else {
        let sub = dir.join(&r.subdir);
        let inside = sub.canonicalize().ok().is_some_and(|s| dir.canonicalize().is_ok_and(|d| s.starts_with(d)));
        if !inside || !sub.is_dir() {
            return Err(fail(Error::GitSubdir { subdir: r.subdir.clone() }));
        }
        sub
    };
    Ok(Checkout { root, commit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_classified_as_docker_does() {
        assert!(is_git_url("https://github.com/docker/cli.git"));
        assert!(is_git_url("https://example.com/x.git#v1:sub"));
        assert!(is_git_url("git@github.com:docker/cli.git"));
        assert!(is_git_url("git://127.0.0.1:9418/repo"));
        assert!(is_git_url("github.com/docker/cli"));
        assert!(!is_git_url("https://example.com/file.tar.gz"));
        assert!(is_http_url("https://example.com/file.tar.gz"));
        assert!(!is_http_url("./src"));
        let r = GitRef::parse("https://h/x.git#v1.2:app/");
        assert_eq!((r.repo.as_str(), r.reference.as_str(), r.subdir.as_str()), ("https://h/x.git", "v1.2", "app"));
        assert_eq!(GitRef::parse("git://h/x").reference, "HEAD");
    }
}
