//! The typed client of a shim's socket: the only code outside the shim that speaks the shim
//! protocol. A connection subscribes to some streams ([`Streams`]), then sends requests
//! through its [`ShimControl`] half (start, signal, resize, stdin) and reads what the shim
//! reports through its [`ShimEvents`] half (output, start, exit), typed, never as frames.
//! An exec ([`ShimClient::exec`]) is a connection of its own: its halves then carry the
//! exec's stdin, resize, signals, output and exit.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::Error;
use crate::logs::Stream;
use crate::proto::{ClientFrame, Decoder, ShimFrame, encode_client};

/// Which of the container's streams a connection takes part in, told to the shim once when
/// the connection opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streams {
    /// This connection writes the container's stdin (the first one to ask owns
    /// `stdin_once`).
    pub stdin: bool,
    /// Receives stdout (or the tty's output).
    pub stdout: bool,
    /// Receives stderr.
    pub stderr: bool,
}

impl Streams {
    /// A control connection: no output, no input (start, signal, resize, wait for exit).
    pub const NONE: Streams = Streams { stdin: false, stdout: false, stderr: false };
    /// Both output streams, no input (a build step, a log-less watcher).
    pub const OUTPUT: Streams = Streams { stdin: false, stdout: true, stderr: true };
}

/// Something the shim reported on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShimEvent {
    /// The container runs; its init's host pid.
    Started {
        /// Host pid of the container's init.
        pid: u32,
    },
    /// Output the connection subscribed to.
    Output {
        /// Which stream.
        stream: Stream,
        /// The bytes, as the container wrote them.
        data: Vec<u8>,
    },
    /// The container exited with this code (128+signal when killed); the last event.
    Exited {
        /// Exit code.
        code: i32,
    },
    /// A request of this connection failed (a signal or resize the shim could not deliver).
    Failed {
        /// The shim's words.
        message: String,
    },
    /// The exec of this connection runs; its host pid.
    ExecStarted {
        /// Host pid of the exec's process.
        pid: u32,
    },
    /// The exec of this connection exited with this code (128+signal when killed).
    ExecExited {
        /// Exit code.
        code: i32,
    },
    /// The exec of this connection could not start.
    ExecFailed {
        /// The shim's words.
        message: String,
        /// Set for a command that was not found or cannot be executed.
        failure: Option<crate::ExecFailure>,
    },
}

/// How a start ended: the container runs, or it already ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// It runs with this init pid.
    Running {
        /// Host pid of the container's init.
        pid: u32,
    },
    /// It exited before the shim said it had started (it was started by another client and
    /// has already ended).
    Exited {
        /// Exit code.
        code: i32,
    },
}

/// The most one read from a shim takes: output comes in frames of up to this much.
const READ_CHUNK: usize = 64 * 1024;

/// One connection to a shim. Split it to send and receive from different tasks.
#[derive(Debug)]
pub struct ShimClient {
    control: ShimControl,
    events: ShimEvents,
}

/// The sending half of a shim connection: requests to the shim.
#[derive(Debug)]
pub struct ShimControl {
    wr: OwnedWriteHalf,
    socket: PathBuf,
}

/// The receiving half of a shim connection: what the shim reports, in order.
#[derive(Debug)]
pub struct ShimEvents {
    rd: OwnedReadHalf,
    dec: Decoder,
    /// Events read while a request waited for its answer, returned first.
    held: VecDeque<ShimEvent>,
    socket: PathBuf,
}

/// Connects to a unix socket even when its path exceeds sun_path (108 bytes; a data root
/// plus a 64-hex id gets close), through `/proc/self/fd/<dir>/<name>`.
async fn connect_socket(socket: &Path) -> io::Result<UnixStream> {
    if socket.as_os_str().len() < 100 {
        return UnixStream::connect(socket).await;
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    let d = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&d))).join(name);
    let s = UnixStream::connect(short).await;
    drop(d);
    s
}

impl ShimClient {
    /// Connects to the shim listening on `socket` and subscribes to `streams`.
    pub async fn connect(socket: &Path, streams: Streams) -> Result<ShimClient, Error> {
        let stream = connect_socket(socket).await.map_err(|e| Error::io("failed to connect to shim", socket, e))?;
        ShimClient::over(stream, socket, streams).await
    }

    /// Speaks to a shim over an already connected stream (a socketpair in tests); `socket`
    /// only names it in errors.
    pub async fn over(stream: UnixStream, socket: &Path, streams: Streams) -> Result<ShimClient, Error> {
        let mut c = ShimClient::wrap(stream, socket);
        c.control.send(&[hello(streams)]).await?;
        Ok(c)
    }

    /// [`ShimClient::connect`] then [`ShimClient::start`], with the subscription and the
    /// start sent in one write: the container start path's way in.
    pub async fn connect_and_start(socket: &Path, streams: Streams) -> Result<(ShimClient, StartOutcome), Error> {
        let stream = connect_socket(socket).await.map_err(|e| Error::io("failed to connect to shim", socket, e))?;
        let mut c = ShimClient::wrap(stream, socket);
        c.control.send(&[hello(streams), ClientFrame::Start]).await?;
        let outcome = c.started().await?;
        Ok((c, outcome))
    }

    /// Runs a process in the container on a new connection, which then belongs to it
    /// (stdin, resize and signals go to the exec; its output and [`ShimEvent::ExecExited`]
    /// come back). Returns once it runs, with its host pid; a command that cannot run is
    /// [`Error::Exec`] (Docker's 127/126), a shim too old to exec is [`Error::Refused`].
    pub async fn exec(socket: &Path, spec: &crate::shim::ExecSpec) -> Result<(ShimClient, u32), Error> {
        let stream = connect_socket(socket).await.map_err(|e| Error::io("failed to connect to shim", socket, e))?;
        ShimClient::exec_over(stream, socket, spec).await
    }

    /// [`ShimClient::exec`] over an already connected stream (tests).
    pub async fn exec_over(
        stream: UnixStream,
        socket: &Path,
        spec: &crate::shim::ExecSpec,
    ) -> Result<(ShimClient, u32), Error> {
        let json = serde_json::to_vec(spec)
            .map_err(|source| Error::Json { context: "failed to encode exec request".into(), source })?;
        let mut c = ShimClient::wrap(stream, socket);
        c.control.send(&[hello(Streams::NONE), ClientFrame::Exec(json)]).await?;
        let mut held = VecDeque::new();
        let outcome = loop {
            match c.events.next().await? {
                Some(ShimEvent::ExecStarted { pid }) => break Ok(pid),
                Some(ShimEvent::ExecFailed { message, failure: Some(failure) }) => {
                    break Err(Error::Exec { failure, message });
                }
                Some(ShimEvent::ExecFailed { message, failure: None }) => break Err(Error::Refused(message)),
                Some(ShimEvent::Failed { message }) => break Err(Error::Refused(message)),
                Some(ShimEvent::Exited { .. }) | None => {
                    break Err(Error::ShimGone { during: "before the exec started" });
                }
                Some(other) => held.push_back(other),
            }
        };
        c.events.held = held;
        outcome.map(|pid| (c, pid))
    }

    fn wrap(stream: UnixStream, socket: &Path) -> ShimClient {
        let (rd, wr) = stream.into_split();
        ShimClient {
            control: ShimControl { wr, socket: socket.to_path_buf() },
            events: ShimEvents { rd, dec: Decoder::new(), held: VecDeque::new(), socket: socket.to_path_buf() },
        }
    }

    /// Starts the created container (idempotent: a running one answers with its pid) and
    /// waits for the shim's answer. Output that arrives meanwhile is kept for
    /// [`ShimEvents::next`].
    pub async fn start(&mut self) -> Result<StartOutcome, Error> {
        self.control.start().await?;
        self.started().await
    }

    /// Waits for the answer to a Start, holding back other events.
    async fn started(&mut self) -> Result<StartOutcome, Error> {
        let mut held = VecDeque::new();
        let outcome = loop {
            match self.events.next().await? {
                Some(ShimEvent::Started { pid }) => break Ok(StartOutcome::Running { pid }),
                Some(ShimEvent::Exited { code }) => break Ok(StartOutcome::Exited { code }),
                Some(ShimEvent::Failed { message }) => break Err(Error::Refused(message)),
                Some(other) => held.push_back(other),
                None => break Err(Error::ShimGone { during: "before starting the container" }),
            }
        };
        // Everything held before was popped by the loop above, so order is kept.
        self.events.held = held;
        outcome
    }

    /// Sends a signal to the container's init.
    pub async fn signal(&mut self, signal: i32) -> Result<(), Error> {
        self.control.signal(signal).await
    }

    /// Sets the tty's window size.
    pub async fn resize(&mut self, rows: u16, cols: u16) -> Result<(), Error> {
        self.control.resize(rows, cols).await
    }

    /// Writes bytes to the container's stdin.
    pub async fn stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        self.control.stdin(data).await
    }

    /// Closes the container's stdin.
    pub async fn close_stdin(&mut self) -> Result<(), Error> {
        self.control.close_stdin().await
    }

    /// The next event; `None` once the shim closed the connection.
    pub async fn next_event(&mut self) -> Result<Option<ShimEvent>, Error> {
        self.events.next().await
    }

    /// Waits for the container's exit, discarding output; `None` if the shim went away
    /// without reporting one.
    pub async fn wait(&mut self) -> Result<Option<i32>, Error> {
        self.events.wait().await
    }

    /// The sending and receiving halves, to be used from different tasks.
    pub fn split(self) -> (ShimControl, ShimEvents) {
        (self.control, self.events)
    }
}

fn hello(s: Streams) -> ClientFrame {
    ClientFrame::Hello { stdin: s.stdin, stdout: s.stdout, stderr: s.stderr }
}

impl ShimControl {
    /// Sends frames in one write.
    async fn send(&mut self, frames: &[ClientFrame]) -> Result<(), Error> {
        let bytes = match frames {
            [f] => encode_client(f),
            _ => frames.iter().fold(Vec::new(), |mut v, f| {
                v.extend_from_slice(&encode_client(f));
                v
            }),
        };
        self.wr.write_all(&bytes).await.map_err(|e| Error::io("failed to write to shim", &self.socket, e))
    }

    /// Starts the container; the answer arrives as [`ShimEvent::Started`] on the events half.
    pub async fn start(&mut self) -> Result<(), Error> {
        self.send(&[ClientFrame::Start]).await
    }

    /// Sends a signal to the container's init (a failure comes back as
    /// [`ShimEvent::Failed`]).
    pub async fn signal(&mut self, signal: i32) -> Result<(), Error> {
        self.send(&[ClientFrame::Signal(signal)]).await
    }

    /// Sets the tty's window size (ignored without a tty).
    pub async fn resize(&mut self, rows: u16, cols: u16) -> Result<(), Error> {
        self.send(&[ClientFrame::Resize { rows, cols }]).await
    }

    /// Writes bytes to the container's stdin (when this connection asked for stdin).
    pub async fn stdin(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send(&[ClientFrame::Stdin(data.to_vec())]).await
    }

    /// Closes the container's stdin once what was written has been delivered.
    pub async fn close_stdin(&mut self) -> Result<(), Error> {
        self.send(&[ClientFrame::CloseStdin]).await
    }
}

impl ShimEvents {
    /// The next event; `None` once the shim closed the connection.
    pub async fn next(&mut self) -> Result<Option<ShimEvent>, Error> {
        if let Some(e) = self.held.pop_front() {
            return Ok(Some(e));
        }
        loop {
            if let Some(f) = self.dec.next_shim()? {
                return Ok(Some(match f {
                    ShimFrame::Started { pid } => ShimEvent::Started { pid },
                    ShimFrame::Stdout(data) => ShimEvent::Output { stream: Stream::Stdout, data },
                    ShimFrame::Stderr(data) => ShimEvent::Output { stream: Stream::Stderr, data },
                    ShimFrame::Exit { code } => ShimEvent::Exited { code },
                    ShimFrame::Error(message) => ShimEvent::Failed { message },
                    ShimFrame::ExecStarted { pid } => ShimEvent::ExecStarted { pid },
                    ShimFrame::ExecExit { code } => ShimEvent::ExecExited { code },
                    ShimFrame::ExecFailed(json) => match serde_json::from_slice::<crate::shim::ExecFailed>(&json) {
                        Ok(f) => ShimEvent::ExecFailed { message: f.message, failure: f.failure },
                        Err(_) => ShimEvent::ExecFailed {
                            message: String::from_utf8_lossy(&json).into_owned(),
                            failure: None,
                        },
                    },
                }));
            }
            // Wait holding no buffer: the connection of a running container idles until
            // its exit, and a read buffer kept per connection was 64 KiB of the daemon's
            // heap per running container. The decoder takes the bytes in its own buffer,
            // which it frees once they are decoded.
            self.rd.readable().await.map_err(|e| Error::io("failed to read from shim", &self.socket, e))?;
            match self.dec.fill(READ_CHUNK, |b| self.rd.try_read_buf(b)) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Error::io("failed to read from shim", &self.socket, e)),
            }
        }
    }

    /// Waits for the container's exit, discarding everything else; `None` if the shim went
    /// away without reporting one.
    pub async fn wait(&mut self) -> Result<Option<i32>, Error> {
        loop {
            match self.next().await? {
                Some(ShimEvent::Exited { code }) => return Ok(Some(code)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }
}

impl ShimEvents {
    /// Waits for the exit of this connection's exec, discarding output; `None` if the shim
    /// went away without reporting one (the exit file, when asked for, still tells).
    pub async fn wait_exec(&mut self) -> Result<Option<i32>, Error> {
        loop {
            match self.next().await? {
                Some(ShimEvent::ExecExited { code }) => return Ok(Some(code)),
                Some(_) => continue,
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::encode_shim;
    use tokio::io::AsyncReadExt;

    /// A fake shim on the other end of a socketpair: records what the client sends and
    /// answers with `script` once it has seen `after` frames.
    async fn fake(peer: UnixStream, after: usize, script: Vec<ShimFrame>) -> Vec<ClientFrame> {
        let (mut rd, mut wr) = peer.into_split();
        let mut dec = Decoder::new();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while got.len() < after {
            let n = rd.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            dec.feed(&buf[..n]);
            while let Some(f) = dec.next_client().unwrap() {
                got.push(f);
            }
        }
        for f in script {
            wr.write_all(&encode_shim(&f)).await.unwrap();
        }
        drop(wr);
        // Keep reading: what the client sends after the script is recorded too.
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dec.feed(&buf[..n]),
            }
            while let Some(f) = dec.next_client().unwrap() {
                got.push(f);
            }
        }
        got
    }

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().unwrap()
    }

    #[tokio::test]
    async fn start_then_output_then_exit() {
        let (a, b) = pair();
        let shim = tokio::spawn(fake(
            b,
            2,
            vec![
                ShimFrame::Stdout(b"early".to_vec()),
                ShimFrame::Started { pid: 42 },
                ShimFrame::Stderr(b"err".to_vec()),
                ShimFrame::Exit { code: 3 },
            ],
        ));
        let mut c = ShimClient::over(a, Path::new("test.sock"), Streams::OUTPUT).await.unwrap();
        assert_eq!(c.start().await.unwrap(), StartOutcome::Running { pid: 42 });
        let (mut ctl, mut ev) = c.split();
        assert_eq!(
            ev.next().await.unwrap(),
            Some(ShimEvent::Output { stream: Stream::Stdout, data: b"early".to_vec() }),
            "output that came before Started is kept"
        );
        assert_eq!(ev.next().await.unwrap(), Some(ShimEvent::Output { stream: Stream::Stderr, data: b"err".to_vec() }));
        assert_eq!(ev.next().await.unwrap(), Some(ShimEvent::Exited { code: 3 }));
        assert_eq!(ev.next().await.unwrap(), None);
        ctl.signal(9).await.ok();
        drop(ctl);
        let got = shim.await.unwrap();
        assert_eq!(got[0], ClientFrame::Hello { stdin: false, stdout: true, stderr: true });
        assert_eq!(got[1], ClientFrame::Start);
    }

    #[tokio::test]
    async fn requests_are_encoded_as_the_shim_expects() {
        let (a, b) = pair();
        let shim = tokio::spawn(fake(b, 6, vec![ShimFrame::Exit { code: 137 }]));
        let c = ShimClient::over(a, Path::new("test.sock"), Streams { stdin: true, stdout: true, stderr: false })
            .await
            .unwrap();
        let (mut ctl, mut ev) = c.split();
        ctl.resize(24, 80).await.unwrap();
        ctl.stdin(b"abc").await.unwrap();
        ctl.close_stdin().await.unwrap();
        ctl.signal(15).await.unwrap();
        ctl.start().await.unwrap();
        assert_eq!(ev.wait().await.unwrap(), Some(137));
        drop(ctl);
        assert_eq!(
            shim.await.unwrap(),
            vec![
                ClientFrame::Hello { stdin: true, stdout: true, stderr: false },
                ClientFrame::Resize { rows: 24, cols: 80 },
                ClientFrame::Stdin(b"abc".to_vec()),
                ClientFrame::CloseStdin,
                ClientFrame::Signal(15),
                ClientFrame::Start,
            ]
        );
    }

    #[tokio::test]
    async fn refused_start_and_vanished_shim_are_errors() {
        let (a, b) = pair();
        tokio::spawn(fake(b, 2, vec![ShimFrame::Error("failed to start container: boom".into())]));
        let mut c = ShimClient::over(a, Path::new("test.sock"), Streams::NONE).await.unwrap();
        let e = c.start().await.unwrap_err();
        assert!(matches!(&e, Error::Refused(m) if m == "failed to start container: boom"), "{e:?}");

        let (a, b) = pair();
        tokio::spawn(fake(b, 2, vec![]));
        let mut c = ShimClient::over(a, Path::new("test.sock"), Streams::NONE).await.unwrap();
        assert!(matches!(c.start().await, Err(Error::ShimGone { .. })));

        let (a, b) = pair();
        tokio::spawn(fake(b, 1, vec![ShimFrame::Stdout(b"x".to_vec())]));
        let mut c = ShimClient::over(a, Path::new("test.sock"), Streams::OUTPUT).await.unwrap();
        assert_eq!(c.wait().await.unwrap(), None, "no exit reported");
    }

    #[tokio::test]
    async fn connect_and_start_sends_both_frames_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let shim = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            fake(s, 2, vec![ShimFrame::Started { pid: 7 }]).await
        });
        let (c, outcome) = ShimClient::connect_and_start(&path, Streams::NONE).await.unwrap();
        assert_eq!(outcome, StartOutcome::Running { pid: 7 });
        drop(c);
        assert_eq!(
            shim.await.unwrap(),
            [ClientFrame::Hello { stdin: false, stdout: false, stderr: false }, ClientFrame::Start]
        );
    }

    #[tokio::test]
    async fn exec_runs_on_its_own_connection() {
        let (a, b) = pair();
        let shim = tokio::spawn(fake(
            b,
            2,
            vec![
                ShimFrame::ExecStarted { pid: 9 },
                ShimFrame::Stdout(b"hi\n".to_vec()),
                ShimFrame::ExecExit { code: 3 },
            ],
        ));
        let spec =
            crate::shim::ExecSpec { id: "x".into(), args: vec!["echo".into(), "hi".into()], ..Default::default() };
        let (c, pid) = ShimClient::exec_over(a, Path::new("test.sock"), &spec).await.unwrap();
        assert_eq!(pid, 9);
        let (mut ctl, mut ev) = c.split();
        assert_eq!(
            ev.next().await.unwrap(),
            Some(ShimEvent::Output { stream: Stream::Stdout, data: b"hi\n".to_vec() })
        );
        assert_eq!(ev.wait_exec().await.unwrap(), Some(3));
        ctl.resize(10, 20).await.ok();
        drop(ctl);
        let got = shim.await.unwrap();
        assert_eq!(got[0], ClientFrame::Hello { stdin: false, stdout: false, stderr: false });
        let ClientFrame::Exec(json) = &got[1] else { panic!("{got:?}") };
        assert_eq!(serde_json::from_slice::<crate::shim::ExecSpec>(json).unwrap(), spec);

        // A command that cannot run is typed; an old shim's refusal is a plain refusal.
        let (a, b) = pair();
        let failed = crate::shim::ExecFailed {
            message: "exec: \"nope\": executable file not found in $PATH".into(),
            failure: Some(crate::ExecFailure::NotFound),
        };
        tokio::spawn(fake(b, 2, vec![ShimFrame::ExecFailed(serde_json::to_vec(&failed).unwrap())]));
        let e = ShimClient::exec_over(a, Path::new("t"), &spec).await.unwrap_err();
        assert_eq!(e.exec_failure(), Some(crate::ExecFailure::NotFound));
        let (a, b) = pair();
        tokio::spawn(fake(b, 1, vec![ShimFrame::Error("shim protocol: unknown client frame type 7".into())]));
        let e = ShimClient::exec_over(a, Path::new("t"), &spec).await.unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e:?}");
    }

    #[tokio::test]
    async fn a_corrupt_frame_is_a_protocol_error() {
        let (a, b) = pair();
        let mut c = ShimClient::over(a, Path::new("test.sock"), Streams::NONE).await.unwrap();
        let (_, mut wr) = b.into_split();
        wr.write_all(&[250, 0, 0, 0, 0]).await.unwrap();
        let e = c.next_event().await.unwrap_err();
        assert!(matches!(e, Error::Protocol(crate::ProtocolError::UnknownFrame { tag: 250, .. })), "{e:?}");
    }

    #[tokio::test]
    async fn long_socket_paths_connect() {
        let tmp = tempfile::Builder::new().prefix(&"x".repeat(90)).tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = dir.join("shim.sock");
        assert!(path.as_os_str().len() > 108);
        // Bound through the directory's fd, as the shim binds it from inside the directory.
        let d = std::fs::File::open(&dir).unwrap();
        let short = PathBuf::from(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&d))).join("shim.sock");
        let listener = std::os::unix::net::UnixListener::bind(short).unwrap();
        // The accepted end lives until the client has written its Hello.
        let accept = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let c = ShimClient::connect(&path, Streams::NONE).await.unwrap();
        let peer = accept.join().unwrap().unwrap();
        drop((c, peer));
    }
}
