//! Image references (`busybox`, `localhost:5000/team/app:1.0`, `repo@sha256:…`) parsed and
//! normalised the way Docker does: a missing registry means `docker.io`, a single-component
//! Docker Hub name gains `library/`, and a missing tag means `latest` where one is needed.

use std::fmt;

use crate::Error;
use crate::digest::Digest;

/// Docker Hub's canonical registry name.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
    let b = s.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_domain(s: &str) -> bool {
    // host[:port], host being dot-separated labels of [a-zA-Z0-9-], or an [ipv6] literal.
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) => {
                if ip.is_empty() || !ip.bytes().all(|c| c.is_ascii_hexdigit() || c == b':') {
                    return false;
                }
                let port = match tail.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if tail.is_empty() => None,
                    None => return false,
                };
                (None, port)
            }
            None => return false,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(s), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    match host {
        None => true,
        Some(h) => {
            !h.is_empty()
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                })
        }
    }
}

fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Splits `name[:tag|@digest]` as the pull endpoint takes it (`fromImage`, `tag`): the
/// familiar name and the tag or digest, `latest` when neither is given; a name that does not
/// parse is passed on whole for the daemon to refuse in its own words.
pub fn pull_parts(image: &str) -> (String, String) {
    match Reference::parse(image) {
        Ok(r) => {
            let tag = r
                .digest()
                .map(|d| d.to_string())
                .or_else(|| r.tag().map(str::to_owned))
                .unwrap_or_else(|| "latest".to_owned());
            (r.familiar_name(), tag)
        }
        Err(_) => (image.to_owned(), "latest".to_owned()),
    }
}

impl Reference {
    /// Parses a reference as a user typed it and normalises it (`bb` → `docker.io/library/bb`).
    /// No tag is added: see [`Reference::with_default_tag`].
    pub fn parse(s: &str) -> Result<Reference, Error> {
        if crate::id::is_full_id(s) {
            return Err(Error::LooksLikeId(s.to_owned()));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|e| Error::ReferenceDigest(Box::new(e)))?)),
            None => (s, None),
        };
        // A tag follows the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !is_tag(t) {
                    return Err(Error::Format);
                }
                (&rest[..last_slash + i], Some(t.to_owned()))
            }
            None => (rest, None),
        };
        if name.is_empty() {
            return Err(Error::Format);
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                if !is_domain(first) {
                    return Err(Error::Format);
                }
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        let domain = if domain == LEGACY_DOMAIN { DEFAULT_DOMAIN.to_owned() } else { domain };
        if path.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::Uppercase(path));
        }
        if !path.split('/').all(is_path_component) {
            return Err(Error::Format);
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{path}")
        } else {
            path
        };
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(Error::TooLong);
        }
        Ok(Reference { domain, path, tag, digest })
    }

    /// Adds `latest` when the reference has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_owned());
        }
        self
    }

    /// Replaces the tag (and drops any digest).
    pub fn with_tag(mut self, tag: &str) -> Result<Reference, Error> {
        if !is_tag(tag) {
            return Err(Error::Format);
        }
        self.tag = Some(tag.to_owned());
        self.digest = None;
        Ok(self)
    }

    /// The registry host, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as Docker prints it: `busybox`, `user/app`, `localhost:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path.strip_prefix(OFFICIAL_REPO_PREFIX).unwrap_or(&self.path).to_owned()
        } else {
            self.name()
        }
    }

    /// The reference as Docker prints it: `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pull_parts_split_name_and_tag() {
        use super::pull_parts;
        assert_eq!(pull_parts("busybox"), ("busybox".to_owned(), "latest".to_owned()));
        assert_eq!(pull_parts("127.0.0.1:5000/x/y:2"), ("127.0.0.1:5000/x/y".to_owned(), "2".to_owned()));
        assert_eq!(pull_parts("docker.io/library/alpine:3.19"), ("alpine".to_owned(), "3.19".to_owned()));
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(pull_parts(&format!("busybox@{d}")), ("busybox".to_owned(), d));
    }

    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().with_default_tag().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("bb"), "docker.io/library/bb:latest");
        assert_eq!(norm("user/app:1.0"), "docker.io/user/app:1.0");
        assert_eq!(norm("index.docker.io/library/bb"), "docker.io/library/bb:latest");
        assert_eq!(norm("localhost:5000/team/app:v2"), "localhost:5000/team/app:v2");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
        assert_eq!(norm("[::1]:5000/app:x"), "[::1]:5000/app:x");
        assert_eq!(norm("iris-train:1.0.0"), "docker.io/library/iris-train:1.0.0");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(norm(&format!("bb@{d}")), format!("docker.io/library/bb@{d}"));
        let r = Reference::parse("localhost:5000/app").unwrap().with_default_tag();
        assert_eq!(r.familiar(), "localhost:5000/app:latest");
        assert_eq!(Reference::parse("bb:1").unwrap().familiar(), "bb:1");
        assert_eq!(Reference::parse("docker.io/library/bb").unwrap().familiar_name(), "bb");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(Reference::parse("Busybox"), Err(Error::Uppercase(n)) if n == "Busybox"));
        for bad in ["", ":tag", "bb:", "bb:-x", "a//b", "a/", "-a", "a b", "a:b:c", "bb@sha256:xyz", "a__-b"] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be rejected");
        }
        let id = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(Reference::parse(id), Err(Error::LooksLikeId(_))));
    }
}
