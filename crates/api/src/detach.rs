//! Detach keys: the sequence (`ctrl-p,ctrl-q` by default) that, typed on an attached
//! stdin, ends an attach or exec session and leaves the process running. Parsed as
//! Docker's `term.ToBytes`; scanned as its escape proxy scans. Shared by the daemon (which
//! watches every attached stdin) and the CLI (which stops reading its terminal).

/// A detach key sequence, parsed as Docker's `term.ToBytes` parses `--detach-keys`
/// (`ctrl-p,ctrl-q`, `ctrl-a`, `a`…): typed on an attached stdin, it ends the attach and
/// leaves the container running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

impl Default for DetachKeys {
    /// ctrl-p ctrl-q.
    fn default() -> Self {
        DetachKeys(vec![16, 17])
    }
}

impl DetachKeys {
    /// Parses a comma-separated sequence; empty is the default.
    pub fn parse(s: &str) -> std::result::Result<DetachKeys, String> {
        if s.is_empty() {
            return Ok(DetachKeys::default());
        }
        let mut out = Vec::new();
        for key in s.split(',') {
            if key.len() == 1 {
                out.push(key.as_bytes()[0]);
                continue;
            }
            let k = key.to_ascii_lowercase();
            let code = match k.strip_prefix("ctrl-").map(str::as_bytes) {
                Some([c @ b'a'..=b'z']) => c - b'a' + 1,
                Some(b"@") => 0,
                Some(b"[") => 27,
                Some(b"\\") => 28,
                Some(b"]") => 29,
                Some(b"^") => 30,
                Some(b"_") => 31,
                _ => return Err(format!("Unknown character: '{key}'")),
            };
            out.push(code);
        }
        Ok(DetachKeys(out))
    }

    /// A scanner of an input stream for this sequence.
    pub fn scanner(&self) -> DetachScanner {
        DetachScanner { keys: self.0.clone(), held: Vec::new() }
    }
}

/// Watches input for the detach sequence, as Docker's escape proxy does: bytes that may
/// begin the sequence are held back until it completes (then they are dropped and the
/// attach ends) or breaks (then they go through).
#[derive(Debug, Clone)]
pub struct DetachScanner {
    keys: Vec<u8>,
    held: Vec<u8>,
}

impl DetachScanner {
    /// Feeds input; returns what to forward, and whether the sequence was typed (whatever
    /// followed it is dropped).
    pub fn feed(&mut self, data: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(data.len());
        if self.keys.is_empty() {
            out.extend_from_slice(data);
            return (out, false);
        }
        for &b in data {
            if b == self.keys[self.held.len()] {
                self.held.push(b);
                if self.held.len() == self.keys.len() {
                    self.held.clear();
                    return (out, true);
                }
                continue;
            }
            out.append(&mut self.held);
            if b == self.keys[0] {
                self.held.push(b);
                if self.keys.len() == 1 {
                    self.held.clear();
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_dockers() {
        assert_eq!(DetachKeys::parse("").unwrap(), DetachKeys::default());
        assert_eq!(DetachKeys::parse("ctrl-p,ctrl-q").unwrap(), DetachKeys(vec![16, 17]));
        assert_eq!(DetachKeys::parse("ctrl-a,x,ctrl-@,ctrl-_").unwrap(), DetachKeys(vec![1, b'x', 0, 31]));
        assert_eq!(DetachKeys::parse("ctrl-foo").unwrap_err(), "Unknown character: 'ctrl-foo'");
        assert!(DetachKeys::parse("ab").is_err());
    }

    #[test]
    fn the_scanner_holds_back_a_partial_sequence() {
        let mut s = DetachKeys::default().scanner();
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"c"), (b"\x10c".to_vec(), false), "a broken sequence goes through");
        assert_eq!(s.feed(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
        let mut s = DetachKeys::parse("ctrl-a").unwrap().scanner();
        assert_eq!(s.feed(b"12\x01"), (b"12".to_vec(), true));
        let mut s = DetachKeys::default().scanner();
        assert_eq!(s.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
