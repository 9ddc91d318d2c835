//! The grammar of the names in a distribution URL: repository names, tags and upload ids,
//! as the OCI Distribution Spec defines them. Checked by hand, not with a regex crate: the
//! grammar is three short rules, and every name becomes a path below the storage root, so
//! what is accepted must be exactly what is obviously safe there (no `.`/`..` component,
//! no leading `_` that could reach `_uploads` or `_manifests`, no `/` in a tag).

/// The longest repository name accepted (distribution's limit).
pub const MAX_NAME: usize = 255;

/// Whether `name` is a repository name:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, at most
/// [`MAX_NAME`] bytes.
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    // Every run of separators must be `.`, `_`, `__` or one or more `-`.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `tag` is a tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
}

/// A new upload id: a random (version 4) UUID, as distribution hands out.
pub fn new_upload_id() -> String {
    let mut b = [0u8; 16];
    // getrandom fails only without any entropy source, where nothing else would work either;
    // the id then still names a fresh directory (time-based fallback).
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Whether `id` has the shape of an id [`new_upload_id`] makes (so it is safe as a path).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec() {
        for ok in ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z", "0"] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in
            ["", "A", "a/", "/a", "a//b", "a/../b", "..", ".a", "a.", "_a", "a___b", "a._b", "a b", "a:b", "a/_uploads"]
        {
            assert!(!valid_repository(bad), "{bad}");
        }
        assert!(valid_repository(&"a".repeat(255)));
        assert!(!valid_repository(&"a".repeat(256)));
    }

    #[test]
    fn tags_and_upload_ids() {
        assert!(valid_tag("latest") && valid_tag("_x") && valid_tag("V1.2-rc_3"));
        assert!(!valid_tag("") && !valid_tag(".x") && !valid_tag("-x") && !valid_tag("a/b") && !valid_tag("a:b"));
        assert!(valid_tag(&"a".repeat(128)) && !valid_tag(&"a".repeat(129)));
        let id = new_upload_id();
        assert!(valid_upload_id(&id), "{id}");
        assert_ne!(id, new_upload_id());
        assert!(!valid_upload_id("../../../../etc/passwd-000000000000"));
        assert!(!valid_upload_id(&id.to_uppercase()));
    }
}
