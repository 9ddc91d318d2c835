//! Object ids: 64 lowercase hex digits, as Docker uses for containers and exec sessions.

/// A new random 64-hex-digit id.
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    // The kernel's CSPRNG only fails on ancient kernels without getrandom(2); a
    // time-and-pid fallback keeps ids unique enough there rather than aborting.
    if getrandom::fill(&mut buf).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let seed = format!("{t}-{}", std::process::id());
        use sha2::Digest as _;
        buf.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes()));
    }
    hex::encode(buf)
}

/// The 12-character form Docker prints in tables.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

/// True when `s` is a full 64-hex-digit id.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_hex() {
        let a = new_id();
        let b = new_id();
        assert!(is_full_id(&a) && is_full_id(&b));
        assert_ne!(a, b);
        assert_eq!(short_id(&a).len(), 12);
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
