//! What the shim and the monitor share, byte for byte: the hex codec of the hand-over
//! state (the memfd's `key value` lines) and the non-blocking flush of a connection's
//! buffered output. The monitor is built by build.rs with plain rustc and links no crate,
//! so this file is std-only and is compiled into both: as a module of
//! `monitor/monitor.rs`, and through `#[path]` in `src/shim/monitor.rs`.

use std::io::Write;
use std::os::unix::net::UnixStream;

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(b"0123456789abcdef"[usize::from(x >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(x & 15)]));
    }
    s
}

/// The bytes of lower-case hex `s`; None when it is not.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    b.chunks(2).map(|p| Some((d(p[0])? << 4) | d(p[1])?)).collect()
}

/// Writes as much of `out` as the non-blocking socket takes; false when the peer is gone.
pub fn flush(sock: &UnixStream, out: &mut Vec<u8>) -> bool {
    let mut sock = sock;
    while !out.is_empty() {
        match sock.write(out) {
            Ok(0) => return false,
            Ok(n) => {
                out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}
