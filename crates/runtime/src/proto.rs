//! The shim socket protocol: length-prefixed frames `[type u8][len u32 BE][payload]`,
//! plain bytes so both the single-threaded shim and the async daemon can speak it. Private
//! to this crate: the shim serves it and [`crate::client::ShimClient`] is its only client.
//! Live restore reattaches a new daemon to shims started by an old one, so the bytes on the
//! wire never change meaning.

use crate::{Error, ProtocolError};

/// Largest payload accepted; bigger frames mean a corrupt or hostile peer.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// What a client (the daemon) sends to the shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// First frame of every connection: which output streams to receive, and whether this
    /// client writes stdin (the first stdin client owns `stdin_once`).
    Hello {
        /// Wants stdin (sends Stdin frames).
        stdin: bool,
        /// Receives stdout (or the tty's output).
        stdout: bool,
        /// Receives stderr.
        stderr: bool,
    },
    /// Start the created container (idempotent).
    Start,
    /// Bytes for the container's stdin.
    Stdin(Vec<u8>),
    /// Close the container's stdin.
    CloseStdin,
    /// Set the tty window size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Send a signal to the container's init (on an exec connection: to the exec's process).
    Signal(i32),
    /// Run a process in the running container (JSON of [`crate::shim::ExecSpec`]). The
    /// connection then belongs to that process: its Stdin, CloseStdin, Resize and Signal
    /// frames go to it and its output comes back as Stdout/Stderr frames. Refused on a
    /// connection that subscribed to the container's output or already runs an exec.
    Exec(Vec<u8>),
}

/// What the shim sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimFrame {
    /// The container runs; pid of its init on the host.
    Started {
        /// Host pid.
        pid: u32,
    },
    /// Output on stdout (or the tty).
    Stdout(Vec<u8>),
    /// Output on stderr.
    Stderr(Vec<u8>),
    /// The container exited with this code (128+signal when killed).
    Exit {
        /// Exit code.
        code: i32,
    },
    /// A request failed.
    Error(String),
    /// The exec of this connection runs; its host pid.
    ExecStarted {
        /// Host pid.
        pid: u32,
    },
    /// The exec of this connection exited with this code (128+signal when killed).
    ExecExit {
        /// Exit code.
        code: i32,
    },
    /// The exec could not start (JSON of `shim::ExecFailed`: the message, and whether the
    /// command was not found or not executable).
    ExecFailed(Vec<u8>),
}

mod tag {
    pub const HELLO: u8 = 1;
    pub const START: u8 = 2;
    pub const STDIN: u8 = 3;
    pub const CLOSE_STDIN: u8 = 4;
    pub const RESIZE: u8 = 5;
    pub const SIGNAL: u8 = 6;
    pub const EXEC: u8 = 7;
    pub const STARTED: u8 = 101;
    pub const STDOUT: u8 = 102;
    pub const STDERR: u8 = 103;
    pub const EXIT: u8 = 104;
    pub const ERROR: u8 = 105;
    pub const EXEC_STARTED: u8 = 106;
    pub const EXEC_EXIT: u8 = 107;
    pub const EXEC_FAILED: u8 = 108;
}

fn frame(t: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(t);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Encodes a client frame.
pub fn encode_client(f: &ClientFrame) -> Vec<u8> {
    match f {
        ClientFrame::Hello { stdin, stdout, stderr } => {
            frame(tag::HELLO, &[u8::from(*stdin), u8::from(*stdout), u8::from(*stderr)])
        }
        ClientFrame::Start => frame(tag::START, &[]),
        ClientFrame::Stdin(d) => frame(tag::STDIN, d),
        ClientFrame::CloseStdin => frame(tag::CLOSE_STDIN, &[]),
        ClientFrame::Resize { rows, cols } => {
            let mut p = rows.to_be_bytes().to_vec();
            p.extend_from_slice(&cols.to_be_bytes());
            frame(tag::RESIZE, &p)
        }
        ClientFrame::Signal(s) => frame(tag::SIGNAL, &s.to_be_bytes()),
        ClientFrame::Exec(spec) => frame(tag::EXEC, spec),
    }
}

/// Encodes a shim frame.
pub fn encode_shim(f: &ShimFrame) -> Vec<u8> {
    match f {
        ShimFrame::Started { pid } => frame(tag::STARTED, &pid.to_be_bytes()),
        ShimFrame::Stdout(d) => frame(tag::STDOUT, d),
        ShimFrame::Stderr(d) => frame(tag::STDERR, d),
        ShimFrame::Exit { code } => frame(tag::EXIT, &code.to_be_bytes()),
        ShimFrame::Error(m) => frame(tag::ERROR, m.as_bytes()),
        ShimFrame::ExecStarted { pid } => frame(tag::EXEC_STARTED, &pid.to_be_bytes()),
        ShimFrame::ExecExit { code } => frame(tag::EXEC_EXIT, &code.to_be_bytes()),
        ShimFrame::ExecFailed(j) => frame(tag::EXEC_FAILED, j),
    }
}

/// Room below which [`Decoder::fill`] grows the buffer before a read.
const MIN_ROOM: usize = 4096;

/// Reassembles frames from a byte stream fed in arbitrary pieces.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

fn arr<const N: usize>(p: &[u8]) -> Result<[u8; N], Error> {
    p.try_into().map_err(|_| Error::Protocol(ProtocolError::BadPayload { len: p.len(), expected: N }))
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder holding bytes received before (a monitor's hand-back).
    pub fn with_pending(buf: Vec<u8>) -> Decoder {
        Decoder { buf }
    }

    /// The bytes received and not yet decoded.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Reads received bytes straight into the decoder: `read` appends to the buffer it is
    /// given (as tokio's `try_read_buf` does), which first gets room for `want` more bytes
    /// unless it has [`MIN_ROOM`] already. Whatever the read gives, a buffer left empty is
    /// freed, so a connection that waits holds no buffer.
    pub fn fill(
        &mut self,
        want: usize,
        read: impl FnOnce(&mut Vec<u8>) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < MIN_ROOM {
            self.buf.reserve(want);
        }
        let r = read(&mut self.buf);
        self.free_if_empty();
        r
    }

    /// Frees the buffer once every byte received was decoded: a connection idles for most
    /// of its life (a running container's shim connection until the exit), and a buffer
    /// kept at the size of its largest burst would stay with it.
    fn free_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
    }

    fn next_raw(&mut self) -> Result<Option<(u8, Vec<u8>)>, Error> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(Error::Protocol(ProtocolError::TooLarge { len }));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let t = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        self.free_if_empty();
        Ok(Some((t, payload)))
    }

    /// The next complete client frame, if one has arrived.
    pub fn next_client(&mut self) -> Result<Option<ClientFrame>, Error> {
        let Some((t, p)) = self.next_raw()? else { return Ok(None) };
        Ok(Some(match t {
            tag::HELLO => {
                let [i, o, e] = arr::<3>(&p)?;
                ClientFrame::Hello { stdin: i != 0, stdout: o != 0, stderr: e != 0 }
            }
            tag::START => ClientFrame::Start,
            tag::STDIN => ClientFrame::Stdin(p),
            tag::CLOSE_STDIN => ClientFrame::CloseStdin,
            tag::RESIZE => {
                let [a, b, c, d] = arr::<4>(&p)?;
                ClientFrame::Resize { rows: u16::from_be_bytes([a, b]), cols: u16::from_be_bytes([c, d]) }
            }
            tag::SIGNAL => ClientFrame::Signal(i32::from_be_bytes(arr::<4>(&p)?)),
            tag::EXEC => ClientFrame::Exec(p),
            other => return Err(Error::Protocol(ProtocolError::UnknownFrame { side: "client", tag: other })),
        }))
    }

    /// The next complete shim frame, if one has arrived.
    pub fn next_shim(&mut self) -> Result<Option<ShimFrame>, Error> {
        let Some((t, p)) = self.next_raw()? else { return Ok(None) };
        Ok(Some(match t {
            tag::STARTED => ShimFrame::Started { pid: u32::from_be_bytes(arr::<4>(&p)?) },
            tag::STDOUT => ShimFrame::Stdout(p),
            tag::STDERR => ShimFrame::Stderr(p),
            tag::EXIT => ShimFrame::Exit { code: i32::from_be_bytes(arr::<4>(&p)?) },
            tag::ERROR => ShimFrame::Error(String::from_utf8_lossy(&p).into_owned()),
            tag::EXEC_STARTED => ShimFrame::ExecStarted { pid: u32::from_be_bytes(arr::<4>(&p)?) },
            tag::EXEC_EXIT => ShimFrame::ExecExit { code: i32::from_be_bytes(arr::<4>(&p)?) },
            tag::EXEC_FAILED => ShimFrame::ExecFailed(p),
            other => return Err(Error::Protocol(ProtocolError::UnknownFrame { side: "shim", tag: other })),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn frames_round_trip_byte_by_byte() {
        let client = vec![
            ClientFrame::Hello { stdin: true, stdout: true, stderr: false },
            ClientFrame::Start,
            ClientFrame::Stdin(b"abc".to_vec()),
            ClientFrame::CloseStdin,
            ClientFrame::Resize { rows: 24, cols: 80 },
            ClientFrame::Signal(15),
        ];
        let bytes: Vec<u8> = client.iter().flat_map(encode_client).collect();
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in bytes {
            d.feed(&[b]);
            while let Some(f) = d.next_client().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, client);

        let shim = vec![
            ShimFrame::Started { pid: 42 },
            ShimFrame::Stdout(b"o".to_vec()),
            ShimFrame::Stderr(vec![]),
            ShimFrame::Exit { code: -1 },
            ShimFrame::Error("bad".into()),
        ];
        let mut d = Decoder::new();
        for f in &shim {
            d.feed(&encode_shim(f));
        }
        for f in &shim {
            assert_eq!(d.next_shim().unwrap().as_ref(), Some(f));
        }
        assert_eq!(d.next_shim().unwrap(), None);
    }

    #[test]
    fn a_decoder_holds_no_buffer_once_everything_is_decoded() {
        let frame = encode_shim(&ShimFrame::Stdout(vec![7; 10_000]));
        let mut d = Decoder::new();
        // A read that gets nothing (would block) leaves nothing allocated.
        let r = d.fill(64 * 1024, |_| Err(std::io::ErrorKind::WouldBlock.into()));
        assert!(r.is_err());
        assert_eq!(d.buf.capacity(), 0);
        // Half a frame is kept, in a buffer with room for the read's size.
        let (head, tail) = frame.split_at(6000);
        assert_eq!(d.fill(64 * 1024, |b| Ok(b.write(head).unwrap())).unwrap(), 6000);
        assert!(d.buf.capacity() >= 64 * 1024);
        assert_eq!(d.next_shim().unwrap(), None);
        assert_eq!(d.pending(), head);
        // The rest completes it; once decoded the buffer is gone.
        d.fill(64 * 1024, |b| Ok(b.write(tail).unwrap())).unwrap();
        assert_eq!(d.next_shim().unwrap(), Some(ShimFrame::Stdout(vec![7; 10_000])));
        assert_eq!(d.buf.capacity(), 0);
        // Two frames in one read: the buffer stays until the second is taken.
        let two: Vec<u8> =
            [ShimFrame::Started { pid: 1 }, ShimFrame::Exit { code: 0 }].iter().flat_map(encode_shim).collect();
        d.fill(64 * 1024, |b| Ok(b.write(&two).unwrap())).unwrap();
        assert_eq!(d.next_shim().unwrap(), Some(ShimFrame::Started { pid: 1 }));
        assert!(d.buf.capacity() > 0);
        assert_eq!(d.next_shim().unwrap(), Some(ShimFrame::Exit { code: 0 }));
        assert_eq!(d.buf.capacity(), 0);
    }

    #[test]
    fn exec_frames_are_new_tags_and_old_bytes_keep_their_meaning() {
        // The bytes of the frames that existed before exec, exactly: a new daemon still
        // speaks to an old shim and an old daemon's frames still decode here.
        assert_eq!(encode_client(&ClientFrame::Signal(9)), [6, 0, 0, 0, 4, 0, 0, 0, 9]);
        assert_eq!(encode_client(&ClientFrame::Start), [2, 0, 0, 0, 0]);
        assert_eq!(encode_shim(&ShimFrame::Exit { code: 3 }), [104, 0, 0, 0, 4, 0, 0, 0, 3]);
        assert_eq!(encode_client(&ClientFrame::Exec(b"{}".to_vec())), [7, 0, 0, 0, 2, b'{', b'}']);
        let shim = [
            ShimFrame::ExecStarted { pid: 7 },
            ShimFrame::ExecExit { code: 127 },
            ShimFrame::ExecFailed(b"{\"message\":\"x\"}".to_vec()),
        ];
        let mut d = Decoder::new();
        for f in &shim {
            d.feed(&encode_shim(f));
        }
        for f in &shim {
            assert_eq!(d.next_shim().unwrap().as_ref(), Some(f));
        }
        let mut d = Decoder::new();
        d.feed(&encode_client(&ClientFrame::Exec(b"[1]".to_vec())));
        assert_eq!(d.next_client().unwrap(), Some(ClientFrame::Exec(b"[1]".to_vec())));
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut d = Decoder::new();
        d.feed(&[99, 0, 0, 0, 0]);
        assert!(d.next_client().is_err());
        let mut d = Decoder::new();
        d.feed(&[1, 0xff, 0, 0, 0]);
        assert!(d.next_client().is_err());
    }
}
