//! Connections as every listener (unix, TCP, TLS) takes them: accept errors retried with
//! back-off instead of ending the daemon, a bound on concurrent connections sized from the
//! file-descriptor limit with a clear answer to the excess, and the header timeout.
//!
//! - **Accept errors** (`EMFILE` when descriptors run out, `ECONNABORTED`…) are logged and
//!   retried after 5 ms, doubling to 1 s, as Go's `net/http` server does for dockerd. Only
//!   errors that mean the listening socket itself is unusable end the serve loop.
//! - **The connection bound** is process-wide (descriptors are): half of what the soft
//!   `RLIMIT_NOFILE` leaves after [`FD_RESERVE`], since a connection often holds a second
//!   descriptor for what it serves (a log file, an attach pipe, a blob). It is read at each
//!   accept, so raising the limit of a running daemon (`prlimit`) takes effect; berth never
//!   changes its own rlimits. A connection past the bound gets 503
//!   `{"message":"too many connections"}` and is closed (logged at most every 10 s, so a
//!   flood does not flood the log): the client learns why at once,
//!   where leaving it in the kernel's backlog would make it hang with no word (over TLS
//!   the connection is closed without a word, as answering would take a handshake).
//! - **The header timeout** ([`crate::config::Config::api_header_timeout`], dockerd's 5
//!   minutes by default): a request's headers, and a TLS handshake, must arrive within it,
//!   and an idle keep-alive connection is closed after it. It applies only while hyper
//!   waits for a request head: a streaming answer (logs -f, wait, events, build) and a
//!   hijacked attach connection are never cut by it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tower::ServiceExt;

/// Descriptors kept back from connections for the daemon's own use: the state database,
/// listeners, shim sockets, container log and pipe descriptors, files of imports and builds.
pub const FD_RESERVE: u64 = 128;

/// The fewest connections allowed however low the descriptor limit is.
const MIN_CONNECTIONS: usize = 16;

/// Connections being served now, over every listener.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// How many connections may be open at once under the current soft `RLIMIT_NOFILE`.
pub fn max_connections() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
    usize::try_from(soft.saturating_sub(FD_RESERVE) / 2).unwrap_or(usize::MAX).max(MIN_CONNECTIONS)
}

/// A place among the connections being served; dropping it frees the place.
#[derive(Debug)]
pub struct ConnSlot(());

impl ConnSlot {
    /// Takes a place if fewer than `max` connections are open.
    pub fn try_take(max: usize) -> Option<ConnSlot> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| ConnSlot(()))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's stream holding its [`ConnSlot`]: the place is freed when the stream is
/// dropped, so a hijacked attach stream, which outlives the HTTP connection, keeps
/// counting until it closes.
#[derive(Debug)]
pub struct Counted<IO> {
    io: IO,
    _slot: ConnSlot,
}

impl<IO> Counted<IO> {
    /// `io` holding `slot`.
    pub fn new(io: IO, slot: ConnSlot) -> Counted<IO> {
        Counted { io, _slot: slot }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Connections refused since the last warning, and when (seconds since the epoch) that was.
static REFUSED: AtomicU64 = AtomicU64::new(0);
static LAST_WARNING: AtomicU64 = AtomicU64::new(0);

/// Notes a refused connection: a warning at most every 10 s with the count, so a flood of
/// connections cannot flood the log too.
pub fn note_refused(listener: &str) {
    REFUSED.fetch_add(1, Ordering::AcqRel);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let last = LAST_WARNING.load(Ordering::Acquire);
    if now >= last + 10 && LAST_WARNING.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        tracing::warn!(
            listener,
            refused = REFUSED.swap(0, Ordering::AcqRel),
            limit = max_connections(),
            "too many connections: answering 503 until some close (raise the daemon's RLIMIT_NOFILE for more)"
        );
    }
}

/// The answer to a connection past the bound (written before the request is read).
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 35\r\nConnection: close\r\n\r\n{\"message\":\"too many connections\"}\n";

/// Answers a connection past the bound with 503 and closes it. What the client sent is read
/// (for at most a second) before closing, so the close is not a reset that could discard the
/// answer before the client reads it.
pub async fn refuse<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        io.write_all(TOO_MANY).await?;
        io.shutdown().await?;
        let mut buf = [0u8; 4096];
        while io.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// The back-off between failed accepts: 5 ms doubling to 1 s, reset by a success.
#[derive(Debug, Default)]
pub struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    /// After a successful accept.
    pub fn reset(&mut self) {
        self.delay = None;
    }

    /// The delay to wait after a failed accept.
    pub fn next_delay(&mut self) -> Duration {
        let d = match self.delay {
            None => Duration::from_millis(5),
            Some(d) => (d * 2).min(Duration::from_secs(1)),
        };
        self.delay = Some(d);
        d
    }
}

/// Whether an accept error means the listening socket itself is broken (so retrying is
/// pointless), rather than a shortage or a client that went away.
pub fn listener_broken(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|n| {
        let n = Errno::from_raw_os_error(n);
        n == Errno::BADF || n == Errno::INVAL || n == Errno::NOTSOCK || n == Errno::OPNOTSUPP
    })
}

/// What to do after an accept failed on `listener`: log it and wait the back-off (or until
/// `shutdown`); `Err` when the listener cannot recover.
pub async fn accept_failed(
    listener: &str,
    e: std::io::Error,
    backoff: &mut Backoff,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    if listener_broken(&e) {
        return Err(e);
    }
    let delay = backoff.next_delay();
    tracing::error!(listener, error = %e, retry_in = ?delay, "accept failed; retrying");
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
    Ok(())
}

/// Serves one accepted connection (HTTP/1.1 with upgrades, for attach) until it closes:
/// the `/v1.NN` prefix is checked and stripped, then `app` answers; a request head must
/// arrive within `header_timeout`. Any listener — the unix socket, TCP or TLS — calls this
/// with each stream it accepts, wrapped in [`Counted`] so that its [`ConnSlot`] lives as
/// long as the stream (through an attach upgrade too).
pub async fn serve_connection<IO>(app: Router, io: IO, header_timeout: Duration)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move {
            let mut req = req.map(Body::new);
            if let Err(resp) = super::strip_version(&mut req) {
                return Ok::<_, Infallible>(*resp);
            }
            tracing::debug!(method = %req.method(), uri = %req.uri(), "request");
            app.oneshot(req).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_second_and_resets() {
        let mut b = Backoff::default();
        let ds: Vec<_> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ds, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(5));
    }

    #[test]
    fn the_bound_follows_the_descriptor_limit() {
        let max = max_connections();
        assert!(max >= MIN_CONNECTIONS);
        assert_eq!(TOO_MANY.len() - TOO_MANY.iter().position(|&b| b == b'{').unwrap(), 35);
        let emfile = std::io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        assert!(!listener_broken(&emfile));
        assert!(listener_broken(&std::io::Error::from_raw_os_error(rustix::io::Errno::BADF.raw_os_error())));
    }

    /// The one test that counts slots (tests run in parallel, the count is process-wide).
    #[tokio::test]
    async fn a_stream_holds_its_slot_until_dropped() {
        let a = ConnSlot::try_take(usize::MAX).unwrap();
        let now = OPEN.load(Ordering::Acquire);
        assert!(ConnSlot::try_take(now).is_none());
        drop(a);
        assert!(ConnSlot::try_take(now).is_some());

        let (a, mut b) = tokio::io::duplex(64);
        let before = OPEN.load(Ordering::Acquire);
        let mut counted = Counted::new(a, ConnSlot::try_take(usize::MAX).unwrap());
        assert_eq!(OPEN.load(Ordering::Acquire), before + 1);
        counted.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        drop(counted);
        assert_eq!(OPEN.load(Ordering::Acquire), before);
        // A refused connection is told why.
        let (a, mut b) = tokio::io::duplex(256);
        let client = tokio::spawn(async move {
            let mut out = Vec::new();
            b.read_to_end(&mut out).await.unwrap();
            out
        });
        refuse(a).await;
        let out = client.await.unwrap();
        assert!(out.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(out.ends_with(b"\r\n\r\n{\"message\":\"too many connections\"}\n"));
    }
}
