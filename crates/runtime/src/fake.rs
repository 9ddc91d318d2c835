//! An in-process fake shim, for unit tests of the code above the runtime (the daemon's
//! container state machine) without root: it listens on the socket a real shim would,
//! speaks the same protocol from threads of the test process, and plays a scripted process
//! derived from the bundle's command instead of running a container. It records what its
//! clients asked for. Only built for tests (`fake` feature).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::exit::ExitInfo;
use crate::logs::Stream;
use crate::proto::{ClientFrame, Decoder, ShimFrame, encode_shim};
use crate::shim::ShimOptions;
use crate::{Error, ExecFailure};

/// What the fake container does once started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeProcess {
    /// Output written at start, in order.
    pub output: Vec<(Stream, Vec<u8>)>,
    /// Exit code right after the output; `None` runs until a signal ends it.
    pub exit: Option<i32>,
    /// Copies stdin to stdout and exits 0 when stdin closes (`cat`).
    pub echo_stdin: bool,
}

impl FakeProcess {
    /// The script for a command line: `true`, `false`, `echo words…`, `exit N`, `cat`; a
    /// command whose name starts with `nosuch` is not found and `noexec…` not executable,
    /// as the real shim reports them; anything else (`sleep 100`, `top`) runs until it is
    /// signalled.
    pub fn from_args(args: &[String]) -> Result<FakeProcess, Error> {
        let cmd = args.first().map(String::as_str).unwrap_or("");
        let name = cmd.rsplit('/').next().unwrap_or(cmd);
        let ends = |code| FakeProcess { output: Vec::new(), exit: Some(code), echo_stdin: false };
        Ok(match name {
            "true" => ends(0),
            "false" => ends(1),
            "exit" => ends(args.get(1).and_then(|c| c.parse().ok()).unwrap_or(0)),
            "echo" => FakeProcess {
                output: vec![(Stream::Stdout, format!("{}\n", args[1..].join(" ")).into_bytes())],
                ..ends(0)
            },
            "cat" => FakeProcess { output: Vec::new(), exit: None, echo_stdin: true },
            n if n.starts_with("nosuch") => {
                return Err(Error::Exec {
                    failure: ExecFailure::NotFound,
                    message: format!("exec: \"{cmd}\": executable file not found in $PATH"),
                });
            }
            n if n.starts_with("noexec") => {
                return Err(Error::Exec {
                    failure: ExecFailure::NotExecutable,
                    message: format!("exec: \"{cmd}\": permission denied"),
                });
            }
            _ => FakeProcess { output: Vec::new(), exit: None, echo_stdin: false },
        })
    }
}

/// What a fake shim's clients asked for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A connection subscribed.
    Hello {
        /// Wants stdin.
        stdin: bool,
        /// Wants stdout.
        stdout: bool,
        /// Wants stderr.
        stderr: bool,
    },
    /// Start.
    Start,
    /// Stdin bytes.
    Stdin(Vec<u8>),
    /// Close stdin.
    CloseStdin,
    /// Resize the tty.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// A signal.
    Signal(i32),
    /// An exec request.
    Exec(crate::shim::ExecSpec),
}

struct Client {
    sock: UnixStream,
    stdout: bool,
    stderr: bool,
}

struct State {
    started: bool,
    exited: Option<i32>,
    clients: Vec<Client>,
    requests: Vec<Request>,
}

struct Shared {
    opts: ShimOptions,
    process: FakeProcess,
    pid: u32,
    state: Mutex<State>,
    listener: UnixListener,
}

/// A running fake shim; cheap to clone, it lives until its process exits.
#[derive(Clone)]
pub struct FakeShim {
    shared: Arc<Shared>,
}

static NEXT_PID: AtomicU32 = AtomicU32::new(40_000);

impl FakeShim {
    /// Does what [`crate::shim::spawn`] does, in process: reads the command from the bundle's
    /// `config.json`, fails as the real shim does for a command that cannot run, else
    /// listens on the shim socket and returns once it does.
    pub fn spawn(opts: &ShimOptions) -> Result<FakeShim, Error> {
        let config = opts.bundle.join("config.json");
        let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| Error::Runtime {
            context: format!("failed to load {}", config.display()),
            message: e.to_string(),
        })?;
        let args = spec.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default();
        FakeShim::with_process(opts, FakeProcess::from_args(&args)?)
    }

    /// A fake shim playing `process`.
    pub fn with_process(opts: &ShimOptions, process: FakeProcess) -> Result<FakeShim, Error> {
        let _ = std::fs::remove_file(&opts.socket);
        let listener =
            UnixListener::bind(&opts.socket).map_err(|e| Error::io("failed to listen on", &opts.socket, e))?;
        listener.set_nonblocking(true).map_err(|e| Error::io("failed to configure", &opts.socket, e))?;
        let shim = FakeShim {
            shared: Arc::new(Shared {
                opts: opts.clone(),
                process,
                pid: NEXT_PID.fetch_add(1, Ordering::Relaxed),
                state: Mutex::new(State { started: false, exited: None, clients: Vec::new(), requests: Vec::new() }),
                listener,
            }),
        };
        let s = shim.clone();
        std::thread::spawn(move || s.accept_loop());
        Ok(shim)
    }

    /// The fake init's pid.
    pub fn pid(&self) -> u32 {
        self.shared.pid
    }

    /// Everything the clients asked for so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The exit code once the process has exited.
    pub fn exited(&self) -> Option<i32> {
        self.lock().exited
    }

    /// Ends the process with `code` as if it exited on its own.
    pub fn exit(&self, code: i32) {
        let mut st = self.lock();
        self.finish(&mut st, code);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepts connections as they come. A connection is taken in, its Hello read, under
    /// the state lock, and a Start drains the queue under the same lock first: a client
    /// that connected before another one started the container sees all its output, as
    /// with the real shim (whose container takes a while to exec).
    fn accept_loop(&self) {
        loop {
            let mut st = self.lock();
            if st.exited.is_some() {
                return;
            }
            let accepted = self.accept_pending(&mut st);
            drop(st);
            if !accepted {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// Takes in every queued connection; false if there was none.
    fn accept_pending(&self, st: &mut State) -> bool {
        let mut any = false;
        while let Ok((sock, _)) = self.shared.listener.accept() {
            any = true;
            let _ = sock.set_nonblocking(false);
            let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
            let mut dec = Decoder::new();
            let mut buf = [0u8; 4096];
            let first = loop {
                match dec.next_client() {
                    Ok(Some(f)) => break Some(f),
                    Ok(None) => {}
                    Err(_) => break None,
                }
                match (&sock).read(&mut buf) {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => dec.feed(&buf[..n]),
                }
            };
            let Some(ClientFrame::Hello { stdin, stdout, stderr }) = first else { continue };
            let _ = sock.set_read_timeout(None);
            let Ok(writer) = sock.try_clone() else { continue };
            st.requests.push(Request::Hello { stdin, stdout, stderr });
            st.clients.push(Client { sock: writer, stdout, stderr });
            let s = self.clone();
            std::thread::spawn(move || s.serve(sock, dec));
        }
        any
    }

    fn serve(&self, mut sock: UnixStream, mut dec: Decoder) {
        let mut buf = [0u8; 4096];
        // The exec this connection runs, as the real shim binds one to its connection.
        let mut exec: Option<FakeProcess> = None;
        loop {
            loop {
                let f = match dec.next_client() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = sock.write_all(&encode_shim(&ShimFrame::Error(e.to_string())));
                        return;
                    }
                };
                let mut st = self.lock();
                if st.exited.is_some() {
                    return;
                }
                if let Some(p) = &exec {
                    let echo = p.echo_stdin;
                    let ended = match f {
                        ClientFrame::Stdin(d) => {
                            if echo {
                                let _ = sock.write_all(&encode_shim(&ShimFrame::Stdout(d.clone())));
                            }
                            st.requests.push(Request::Stdin(d));
                            None
                        }
                        ClientFrame::CloseStdin => {
                            st.requests.push(Request::CloseStdin);
                            echo.then_some(0)
                        }
                        ClientFrame::Signal(sig) => {
                            st.requests.push(Request::Signal(sig));
                            matches!(sig, 1 | 2 | 3 | 6 | 9 | 15).then_some(128 + sig)
                        }
                        ClientFrame::Resize { rows, cols } => {
                            st.requests.push(Request::Resize { rows, cols });
                            None
                        }
                        _ => None,
                    };
                    if let Some(code) = ended {
                        let _ = sock.write_all(&encode_shim(&ShimFrame::ExecExit { code }));
                        exec = None;
                    }
                    continue;
                }
                match f {
                    // Only the first Hello counts (taken at accept).
                    ClientFrame::Hello { .. } => {}
                    ClientFrame::Exec(json) => {
                        let reply = |sock: &mut UnixStream, f: ShimFrame| {
                            let _ = sock.write_all(&encode_shim(&f));
                        };
                        let failed = |message: String, failure| {
                            let j =
                                serde_json::to_vec(&crate::shim::ExecFailed { message, failure }).unwrap_or_default();
                            ShimFrame::ExecFailed(j)
                        };
                        let Ok(spec) = serde_json::from_slice::<crate::shim::ExecSpec>(&json) else {
                            reply(&mut sock, failed("invalid exec request".into(), None));
                            continue;
                        };
                        st.requests.push(Request::Exec(spec.clone()));
                        if !st.started {
                            reply(&mut sock, failed("the container is not running".into(), None));
                            continue;
                        }
                        match FakeProcess::from_args(&spec.args) {
                            Err(e) => reply(&mut sock, failed(e.to_string(), e.exec_failure())),
                            Ok(p) => {
                                reply(
                                    &mut sock,
                                    ShimFrame::ExecStarted { pid: NEXT_PID.fetch_add(1, Ordering::Relaxed) },
                                );
                                for (stream, data) in &p.output {
                                    reply(
                                        &mut sock,
                                        match stream {
                                            Stream::Stdout => ShimFrame::Stdout(data.clone()),
                                            Stream::Stderr => ShimFrame::Stderr(data.clone()),
                                        },
                                    );
                                }
                                match p.exit {
                                    Some(code) => reply(&mut sock, ShimFrame::ExecExit { code }),
                                    None => exec = Some(p),
                                }
                            }
                        }
                    }
                    ClientFrame::Start => {
                        self.accept_pending(&mut st);
                        st.requests.push(Request::Start);
                        let _ = sock.write_all(&encode_shim(&ShimFrame::Started { pid: self.shared.pid }));
                        if !st.started {
                            st.started = true;
                            for (stream, data) in &self.shared.process.output {
                                broadcast(&mut st, *stream, data);
                            }
                            if let Some(code) = self.shared.process.exit {
                                self.finish(&mut st, code);
                                return;
                            }
                        }
                    }
                    ClientFrame::Stdin(d) => {
                        if self.shared.process.echo_stdin && st.started {
                            broadcast(&mut st, Stream::Stdout, &d);
                        }
                        st.requests.push(Request::Stdin(d));
                    }
                    ClientFrame::CloseStdin => {
                        st.requests.push(Request::CloseStdin);
                        if self.shared.process.echo_stdin && st.started {
                            self.finish(&mut st, 0);
                            return;
                        }
                    }
                    ClientFrame::Resize { rows, cols } => st.requests.push(Request::Resize { rows, cols }),
                    ClientFrame::Signal(sig) => {
                        st.requests.push(Request::Signal(sig));
                        // The signals that end a process without a handler.
                        if st.started && matches!(sig, 1 | 2 | 3 | 6 | 9 | 15) {
                            self.finish(&mut st, 128 + sig);
                            return;
                        }
                    }
                }
            }
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => dec.feed(&buf[..n]),
            }
        }
    }

    /// What the real shim does at exit: exit file, socket removed, `Exit` to every client.
    fn finish(&self, st: &mut State, code: i32) {
        if st.exited.is_some() {
            return;
        }
        st.exited = Some(code);
        let finished_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let _ = crate::exit::write(&self.shared.opts.exit_file, &ExitInfo { code, finished_at, oom_killed: false });
        let _ = std::fs::remove_file(&self.shared.opts.socket);
        let frame = encode_shim(&ShimFrame::Exit { code });
        for c in st.clients.drain(..) {
            let mut s = &c.sock;
            let _ = s.write_all(&frame);
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn broadcast(st: &mut State, stream: Stream, data: &[u8]) {
    let frame = encode_shim(&match stream {
        Stream::Stdout => ShimFrame::Stdout(data.to_vec()),
        Stream::Stderr => ShimFrame::Stderr(data.to_vec()),
    });
    for c in &st.clients {
        let wants = match stream {
            Stream::Stdout => c.stdout,
            Stream::Stderr => c.stderr,
        };
        if wants {
            let mut s = &c.sock;
            let _ = s.write_all(&frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ShimClient, ShimEvent, StartOutcome, Streams};

    fn opts(dir: &std::path::Path) -> ShimOptions {
        ShimOptions {
            id: "fake".into(),
            bundle: dir.to_path_buf(),
            state_root: dir.join("state"),
            socket: dir.join("s.sock"),
            log_path: dir.join("log.json"),
            log_max_size: 0,
            log_max_files: 1,
            exit_file: dir.join("exit.json"),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            monitor: None,
            private_parents: Vec::new(),
        }
    }

    #[tokio::test]
    async fn the_fake_speaks_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        let p = FakeProcess::from_args(&["echo".into(), "hi".into()]).unwrap();
        let shim = FakeShim::with_process(&o, p).unwrap();
        let mut watcher = ShimClient::connect(&o.socket, Streams::OUTPUT).await.unwrap();
        let mut c = ShimClient::connect(&o.socket, Streams::NONE).await.unwrap();
        // The watcher's hello must be seen before the start, as it is with a real shim.
        while shim.requests().len() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(c.start().await.unwrap(), StartOutcome::Running { pid: shim.pid() });
        assert_eq!(
            watcher.next_event().await.unwrap(),
            Some(ShimEvent::Output { stream: Stream::Stdout, data: b"hi\n".to_vec() })
        );
        assert_eq!(watcher.wait().await.unwrap(), Some(0));
        assert_eq!(c.wait().await.unwrap(), Some(0));
        assert_eq!(crate::exit::read(&o.exit_file).unwrap().code, 0);
        assert!(!o.socket.exists());
    }

    #[tokio::test]
    async fn the_fake_runs_execs() {
        let dir = tempfile::tempdir().unwrap();
        let o = opts(dir.path());
        let shim = FakeShim::with_process(&o, FakeProcess::from_args(&["sleep".into(), "9".into()]).unwrap()).unwrap();
        let spec = |args: &[&str]| crate::shim::ExecSpec {
            id: "e".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let e = ShimClient::exec(&o.socket, &spec(&["true"])).await.unwrap_err();
        assert!(matches!(e, Error::Refused(ref m) if m.contains("not running")), "{e:?}");
        let mut c = ShimClient::connect(&o.socket, Streams::NONE).await.unwrap();
        c.start().await.unwrap();
        let (x, _) = ShimClient::exec(&o.socket, &spec(&["echo", "hi"])).await.unwrap();
        let (_, mut ev) = x.split();
        assert_eq!(
            ev.next().await.unwrap(),
            Some(ShimEvent::Output { stream: Stream::Stdout, data: b"hi\n".to_vec() })
        );
        assert_eq!(ev.wait_exec().await.unwrap(), Some(0));
        let e = ShimClient::exec(&o.socket, &spec(&["nosuchthing"])).await.unwrap_err();
        assert_eq!(e.exec_failure(), Some(ExecFailure::NotFound));
        let (x, _) = ShimClient::exec(&o.socket, &spec(&["cat"])).await.unwrap();
        let (mut ctl, mut ev) = x.split();
        ctl.stdin(b"abc").await.unwrap();
        ctl.close_stdin().await.unwrap();
        assert_eq!(ev.next().await.unwrap(), Some(ShimEvent::Output { stream: Stream::Stdout, data: b"abc".to_vec() }));
        assert_eq!(ev.wait_exec().await.unwrap(), Some(0));
        assert!(shim.requests().iter().any(|r| matches!(r, Request::Exec(s) if s.args == ["cat"])));
        assert_eq!(shim.exited(), None, "execs leave the container running");
        shim.exit(0);
    }

    #[test]
    fn commands_that_cannot_run_fail_like_the_shim() {
        let e = FakeProcess::from_args(&["nosuchcmd".into()]).unwrap_err();
        assert_eq!(e.exec_failure(), Some(ExecFailure::NotFound));
        let e = FakeProcess::from_args(&["/noexec".into()]).unwrap_err();
        assert_eq!(e.exec_failure(), Some(ExecFailure::NotExecutable));
    }
}
