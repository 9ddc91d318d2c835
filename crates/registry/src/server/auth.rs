//! HTTP Basic authentication against an htpasswd file of bcrypt entries (`htpasswd -B`),
//! as distribution's htpasswd access controller does: every request needs credentials,
//! a failure is answered 401 with `WWW-Authenticate: Basic realm="…"`, and the file is
//! read again when it changes, so users can be added without a restart. Entries in
//! other formats (MD5, SHA, crypt) are refused with a warning, as distribution only
//! understands bcrypt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine as _;
use sha2::Digest as _;

use crate::Error;

/// The realm named in the challenge.
pub const REALM: &str = "berth-registry";

/// A bcrypt hash compared against when the user is unknown, so that a wrong user name
/// costs the same time as a wrong password and does not reveal which users exist.
const DUMMY_HASH: &str = "$2y$05$SZNkEQcTavEUCHfY6A57yOYgy/39n1NvZ/ujlbWax7oRFGuROIMqm";

#[derive(Default)]
struct Loaded {
    modified: Option<SystemTime>,
    users: HashMap<String, String>,
    /// Credentials already verified against the current file: the user and the SHA-256 of
    /// the password. bcrypt is slow on purpose; a pull makes dozens of requests.
    verified: HashMap<String, [u8; 32]>,
}

/// The users of an htpasswd file.
pub struct Htpasswd {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

fn parse(text: &str, path: &Path) -> HashMap<String, String> {
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            tracing::warn!(file = %path.display(), line = n + 1, "htpasswd: not USER:HASH; ignored");
            continue;
        };
        if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
            tracing::warn!(file = %path.display(), user, "htpasswd: not a bcrypt entry (make it with `htpasswd -B`); this user cannot log in");
            continue;
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    users
}

impl Htpasswd {
    /// Reads the file at `path`; it must exist and be readable.
    pub fn load(path: &Path) -> Result<Htpasswd, Error> {
        let h = Htpasswd { path: path.to_owned(), loaded: Mutex::new(Loaded::default()) };
        h.refresh()?;
        Ok(h)
    }

    /// Reads the file again if it changed since it was last read.
    fn refresh(&self) -> Result<(), Error> {
        let io = |source| Error::Htpasswd { path: self.path.clone(), source };
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).map_err(io)?;
        let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if l.modified == Some(modified) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path).map_err(io)?;
        *l = Loaded { modified: Some(modified), users: parse(&text, &self.path), verified: HashMap::new() };
        Ok(())
    }

    /// Whether an `Authorization` header value carries a user and password of the file.
    /// Blocking: bcrypt takes milliseconds by design.
    pub fn authorized(&self, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        if let Err(e) = self.refresh() {
            // The file went away or became unreadable: nobody gets in until it is back.
            tracing::error!(error = %e, "htpasswd file unreadable; refusing every request");
            return false;
        }
        let pw_hash: [u8; 32] = sha2::Sha256::digest(password.as_bytes()).into();
        let hash = {
            let l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if l.verified.get(&user) == Some(&pw_hash) {
                return true;
            }
            l.users.get(&user).cloned()
        };
        let ok = match &hash {
            Some(h) => bcrypt::verify(&password, h).unwrap_or(false),
            None => {
                let _ = bcrypt::verify(&password, DUMMY_HASH);
                false
            }
        };
        if ok {
            let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if l.users.get(&user) == hash.as_ref() {
                l.verified.insert(user, pw_hash);
            }
        }
        ok
    }
}

/// The user and password of a `Basic` Authorization header.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pw: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))).into_bytes()
    }

    #[test]
    fn bcrypt_entries_only_and_reload_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        // `htpasswd -Bbn dummy dummy-password`, and an MD5 entry distribution cannot use.
        std::fs::write(&p, format!("# users\ndummy:{DUMMY_HASH}\nmd5user:$apr1$k7A2KxjV$Zre28q6kCBE.Vi2PcC.7j1\n"))
            .unwrap();
        let h = Htpasswd::load(&p).unwrap();
        assert!(h.authorized(Some(&header("dummy", "dummy-password"))));
        assert!(h.authorized(Some(&header("dummy", "dummy-password"))), "cached");
        assert!(!h.authorized(Some(&header("dummy", "wrong"))));
        assert!(!h.authorized(Some(&header("md5user", "pw"))));
        assert!(!h.authorized(Some(&header("nobody", "dummy-password"))));
        assert!(!h.authorized(None));
        assert!(!h.authorized(Some(b"Bearer abc")));
        assert!(!h.authorized(Some(b"Basic !!!")));
        // Removing the user takes effect without a restart, cached success or not.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, "other:$2y$05$SZNkEQcTavEUCHfY6A57yOYgy/39n1NvZ/ujlbWax7oRFGuROIMqm\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(later).unwrap();
        assert!(!h.authorized(Some(&header("dummy", "dummy-password"))));
        assert!(h.authorized(Some(&header("other", "dummy-password"))));
        assert!(Htpasswd::load(&dir.path().join("missing")).is_err());
    }
}
