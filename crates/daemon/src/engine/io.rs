//! Container I/O as clients see it: attach (a hijacked connection bridged to the shim's
//! socket), logs (the json-file log, optionally followed), and tty resize.

use std::sync::Arc;
use std::time::Duration;

use berth_api::detach::DetachKeys;
use berth_api::stdcopy::{self, Stream};
use berth_runtime::{ShimClient, ShimEvent, Streams};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Container, Engine, blocking};
use crate::error::{Error, Result};
use crate::record::Status;

/// Which streams an attach asked for.
#[derive(Debug, Clone, Default)]
pub struct AttachStreams {
    /// Forward the client's input.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// Replay the log first.
    pub logs: bool,
    /// Stream live output.
    pub stream: bool,
    /// The `detachKeys` sequence (empty: Docker's default, ctrl-p ctrl-q).
    pub detach_keys: String,
}

/// A bidirectional client connection.
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ClientIo for T {}

/// An attach waiting for its container to start.
pub struct Attachment {
    streams: AttachStreams,
    io: AttachIo,
}

/// The client connection of a waiting attach: there already, or still being upgraded.
enum AttachIo {
    Ready(Box<dyn ClientIo>),
    Coming(tokio::sync::oneshot::Receiver<Box<dyn ClientIo>>),
}

/// How long a start waits for an attach it found reserved to finish its upgrade (the 101
/// is already on its way, so this is normally microseconds).
const UPGRADE_WAIT: Duration = Duration::from_secs(10);

impl Attachment {
    /// The streams and connection, once the connection is there (`None`: the upgrade failed
    /// or did not finish in time; the client is gone).
    async fn ready(self) -> Option<(AttachStreams, Box<dyn ClientIo>)> {
        match self.io {
            AttachIo::Ready(io) => Some((self.streams, io)),
            AttachIo::Coming(rx) => match tokio::time::timeout(UPGRADE_WAIT, rx).await {
                Ok(Ok(io)) => Some((self.streams, io)),
                _ => None,
            },
        }
    }
}

/// The attaches waiting for a container's next start. `starting` is set while a start has
/// taken the list: an attach arriving then connects to the running container instead.
#[derive(Default)]
pub struct Pending {
    list: Vec<Attachment>,
    starting: bool,
}

impl Pending {
    /// Takes the waiting attaches for a start that is under way.
    pub(super) fn take_for_start(&mut self) -> Vec<Attachment> {
        self.starting = true;
        std::mem::take(&mut self.list)
    }

    /// The start is over (running, exited or failed).
    pub(super) fn start_done(&mut self) {
        self.starting = false;
    }

    /// Drops every waiting attach (their clients see the connection close).
    pub(super) fn clear(&mut self) {
        self.list.clear();
    }
}

/// A place kept, before the client is answered, for an attach whose connection is still
/// being upgraded: the start the client sends next finds it and waits for the connection,
/// so no output is lost however the two requests race.
pub struct AttachSlot(tokio::sync::oneshot::Sender<Box<dyn ClientIo>>);

/// `GET /containers/{id}/logs` options, decoded.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep streaming.
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after this unix time.
    pub since: Option<f64>,
    /// Only entries before this unix time.
    pub until: Option<f64>,
    /// Prefix RFC 3339 timestamps.
    pub timestamps: bool,
    /// Last N lines only.
    pub tail: Option<usize>,
}

fn encode_chunk(tty: bool, stream: Stream, data: &[u8], out: &mut Vec<u8>) {
    if tty {
        out.extend_from_slice(data);
    } else {
        stdcopy::encode(stream, data, out);
    }
}

impl Engine {
    /// Bridges an upgraded client connection to the container's output and input. Before
    /// the container starts, the attach waits and is connected by `start`, so no output is
    /// lost; after it runs, it is connected at once.
    /// Keeps a place for an attach to a container that is not running, before the client
    /// gets its 101 and can send a start: [`Engine::attach`] then hands the connection over
    /// through it. `None` when there is nothing to wait for (no live stream asked, or the
    /// container runs or is starting: the attach then joins it as it runs).
    pub fn reserve_attach(&self, c: &Container, streams: &AttachStreams) -> Option<AttachSlot> {
        if !streams.stream {
            return None;
        }
        let mut p = c.pending.lock().ok()?;
        if p.starting || c.snapshot().state.status == Status::Running {
            return None;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        p.list.push(Attachment { streams: streams.clone(), io: AttachIo::Coming(rx) });
        Some(AttachSlot(tx))
    }

    /// Serves an attach on its upgraded connection: the log first when asked, then live
    /// output, through the `slot` kept by [`Engine::reserve_attach`] when there is one.
    pub async fn attach(
        self: &Arc<Self>,
        c: Arc<Container>,
        streams: AttachStreams,
        mut io: Box<dyn ClientIo>,
        slot: Option<AttachSlot>,
    ) {
        let rec = c.snapshot();
        self.emit_container(&rec, "attach", &[]);
        if streams.logs {
            let opts = LogOptions { stdout: streams.stdout, stderr: streams.stderr, ..Default::default() };
            if let Ok(buf) = self.read_logs(&c, &opts).await
                && io.write_all(&buf).await.is_err()
            {
                return;
            }
        }
        if !streams.stream {
            let _ = io.shutdown().await;
            return;
        }
        if let Some(AttachSlot(tx)) = slot {
            // The start takes it from here (now, or at the container's next start); when
            // nobody waits any more the connection is dropped and the client sees it close.
            let _ = tx.send(io);
            return;
        }
        let _op = c.op.lock().await;
        if c.snapshot().state.status == Status::Running {
            if let Err(e) = self.connect_attachment(&c, streams, io).await {
                tracing::debug!(container = %rec.id, error = %e, "attach to running container");
            }
        } else if let Ok(mut p) = c.pending.lock() {
            p.list.push(Attachment { streams, io: AttachIo::Ready(io) });
        }
    }

    /// Connects the attaches a start took, once their connections are there.
    pub(super) async fn connect_pending(&self, c: &Container, pending: Vec<Attachment>) {
        for a in pending {
            let Some((streams, io)) = a.ready().await else { continue };
            if let Err(e) = self.connect_attachment(c, streams, io).await {
                tracing::warn!(container = %c.id, error = %e, "attach failed");
            }
        }
    }

    /// Connects one attachment to the shim and pumps data both ways until the container
    /// exits or the client goes away.
    async fn connect_attachment(&self, c: &Container, a: AttachStreams, io: Box<dyn ClientIo>) -> Result<()> {
        let tty = c.snapshot().tty();
        let streams = Streams { stdin: a.stdin, stdout: a.stdout, stderr: a.stderr };
        let (mut control, mut events) = ShimClient::connect(&self.shim_socket(&c.id), streams).await?.split();
        let (mut crd, mut cwr) = tokio::io::split(io);
        let want_stdin = a.stdin;
        let mut scanner = DetachKeys::parse(&a.detach_keys).unwrap_or_default().scanner();
        let (detach_tx, mut detach_rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut detach_tx = Some(detach_tx);
        let input = tokio::spawn(async move {
            if !want_stdin {
                // Keep the connection open (dropping the write half would end the attach).
                std::future::pending::<()>().await;
            }
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match crd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = control.close_stdin().await;
                        break;
                    }
                    Ok(n) => {
                        let (data, detached) = scanner.feed(&buf[..n]);
                        if !data.is_empty() && control.stdin(&data).await.is_err() {
                            break;
                        }
                        if detached {
                            // The attach ends; the container runs on with its stdin open.
                            if let Some(tx) = detach_tx.take() {
                                let _ = tx.send(()).await;
                            }
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
            // Keep the shim connection open after stdin ends so output still flows.
            std::future::pending::<()>().await;
        });
        tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let ev = tokio::select! {
                    ev = events.next() => ev,
                    Some(()) = detach_rx.recv() => break,
                };
                let Ok(Some(ev)) = ev else { break };
                out.clear();
                match ev {
                    ShimEvent::Output { stream: berth_runtime::logs::Stream::Stdout, data } => {
                        encode_chunk(tty, Stream::Stdout, &data, &mut out)
                    }
                    ShimEvent::Output { stream: berth_runtime::logs::Stream::Stderr, data } => {
                        encode_chunk(tty, Stream::Stderr, &data, &mut out)
                    }
                    ShimEvent::Exited { .. } => break,
                    _ => continue,
                }
                if cwr.write_all(&out).await.is_err() {
                    break;
                }
            }
            let _ = cwr.flush().await;
            let _ = cwr.shutdown().await;
            input.abort();
        });
        Ok(())
    }

    /// `POST /containers/{id}/resize`.
    pub async fn resize(&self, name: &str, rows: u16, cols: u16) -> Result<()> {
        let c = self.get(name)?;
        let mut ctl = c.control.lock().await;
        match ctl.as_mut() {
            Some(w) => w.resize(rows, cols).await?,
            None => return Err(Error::Conflict(format!("Container {} is not running", c.id))),
        }
        self.emit_container(&c.snapshot(), "resize", &[("height", rows.to_string()), ("width", cols.to_string())]);
        Ok(())
    }

    async fn read_logs(&self, c: &Container, opts: &LogOptions) -> Result<Vec<u8>> {
        let path = self.log_path(&c.id);
        let max_files = self.cfg.log_max_files;
        let entries = blocking(move || match berth_runtime::logs::read(&path, max_files) {
            Ok(e) => Ok(e),
            Err(e) if e.kind() == berth_base::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::from(e)),
        })
        .await?;
        let tty = c.snapshot().tty();
        let selected = select_entries(&entries, opts);
        let mut out = Vec::new();
        for e in selected {
            format_entry(tty, opts.timestamps, e, &mut out);
        }
        Ok(out)
    }

    /// `GET /containers/{id}/logs`: the log so far, then (with follow) new output until the
    /// container stops. Returns whether the stream is raw (tty) and the byte chunks.
    pub async fn logs(self: &Arc<Self>, name: &str, opts: LogOptions) -> Result<(bool, mpsc::Receiver<Bytes>)> {
        if !opts.stdout && !opts.stderr {
            return Err(Error::InvalidArgument("You must choose at least one stream".to_owned()));
        }
        let c = self.get(name)?;
        if c.snapshot().log_driver_none() {
            return Err(Error::NotImplemented("configured logging driver does not support reading".to_owned()));
        }
        let tty = c.snapshot().tty();
        let path = self.log_path(&c.id);
        let (tx, rx) = mpsc::channel(64);
        // Position the follower before reading so nothing written in between is missed.
        let follower = if opts.follow {
            let p = path.clone();
            Some(blocking(move || Ok(berth_runtime::logs::Follower::at_end(&p)?)).await?)
        } else {
            None
        };
        let first = self.read_logs(&c, &opts).await?;
        let mut rx_state = c.subscribe();
        tokio::spawn(async move {
            if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
                return;
            }
            let Some(mut follower) = follower else { return };
            let mut follow_opts = opts.clone();
            follow_opts.tail = None;
            loop {
                let running = rx_state.borrow_and_update().running;
                let (f, batch) = match tokio::task::spawn_blocking(move || {
                    let r = follower.poll_new();
                    (follower, r)
                })
                .await
                {
                    Ok((f, Ok(b))) => (f, b),
                    _ => return,
                };
                follower = f;
                let mut out = Vec::new();
                for e in select_entries(&batch, &follow_opts) {
                    format_entry(tty, opts.timestamps, e, &mut out);
                }
                if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                    return;
                }
                if !running {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = rx_state.changed() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok((tty, rx))
    }
}

fn select_entries<'a>(
    entries: &'a [berth_runtime::logs::LogEntry],
    opts: &LogOptions,
) -> Vec<&'a berth_runtime::logs::LogEntry> {
    let mut v: Vec<_> = entries
        .iter()
        .filter(|e| match e.stream {
            berth_runtime::logs::Stream::Stdout => opts.stdout,
            berth_runtime::logs::Stream::Stderr => opts.stderr,
        })
        .filter(|e| {
            let t = e.time.timestamp() as f64 + f64::from(e.time.timestamp_subsec_nanos()) / 1e9;
            opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t < u)
        })
        .collect();
    if let Some(n) = opts.tail
        && v.len() > n
    {
        v.drain(..v.len() - n);
    }
    v
}

fn format_entry(tty: bool, timestamps: bool, e: &berth_runtime::logs::LogEntry, out: &mut Vec<u8>) {
    let stream = match e.stream {
        berth_runtime::logs::Stream::Stdout => Stream::Stdout,
        berth_runtime::logs::Stream::Stderr => Stream::Stderr,
    };
    if timestamps {
        let mut line = e.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).into_bytes();
        line.push(b' ');
        line.extend_from_slice(&e.data);
        encode_chunk(tty, stream, &line, out);
    } else {
        encode_chunk(tty, stream, &e.data, out);
    }
}
