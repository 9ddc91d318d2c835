//! Docker's stdio multiplexing for attach and logs without a tty: each chunk is framed by
//! an 8-byte header `[stream, 0, 0, 0, len (u32 big-endian)]`; stream 0 is stdin, 1 stdout,
//! 2 stderr. With a tty the stream is raw and unframed.

use crate::ClientError;

/// Which standard stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard input (only ever echoed back by some daemons).
    Stdin = 0,
    /// Standard output.
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
}

/// Appends one framed chunk to `out`.
pub fn encode(stream: Stream, data: &[u8], out: &mut Vec<u8>) {
    out.reserve(8 + data.len());
    out.extend_from_slice(&[stream as u8, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// Incremental decoder: feed bytes as they arrive, take complete frames out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one has arrived. An unknown stream byte is an error.
    pub fn next_frame(&mut self) -> Result<Option<(Stream, Vec<u8>)>, ClientError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let stream = match self.buf[0] {
            0 => Stream::Stdin,
            1 => Stream::Stdout,
            2 => Stream::Stderr,
            b => return Err(ClientError::StreamHeader(b)),
        };
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let data = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Ok(Some((stream, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces() {
        let mut wire = Vec::new();
        encode(Stream::Stdout, b"hello\n", &mut wire);
        encode(Stream::Stderr, b"", &mut wire);
        encode(Stream::Stderr, b"oops", &mut wire);
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in wire.chunks(3) {
            d.feed(b);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![(Stream::Stdout, b"hello\n".to_vec()), (Stream::Stderr, vec![]), (Stream::Stderr, b"oops".to_vec())]
        );
        let mut bad = Decoder::default();
        bad.feed(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert!(bad.next_frame().is_err());
    }
}
