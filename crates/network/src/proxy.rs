//! The IPv6 side of published ports: a small userland proxy, as Docker's `docker-proxy`
//! does for hosts with IPv6 and containers with IPv4 addresses only.
//!
//! Why a proxy and not kernel NAT: our containers have IPv4 addresses only, and the kernel's
//! NAT cannot translate an IPv6 connection into an IPv4 one, so `[::]:P` cannot be DNATed to
//! the container. Giving every network a ULA /64 and every container a v6 address would
//! change what `inspect` reports for every container (Docker leaves `GlobalIPv6Address`
//! empty unless `--ipv6`), so we do what Docker does without `--ipv6`: accept on the host's
//! IPv6 side and copy to the container's IPv4 address.
//!
//! The daemon binds the IPv6 sockets itself ([`bind`]), so a port in use is an error of the
//! container's start, made with `IPV6_V6ONLY` so each shares its number with the IPv4 side.
//! It then hands them to a process of their own, one per container ([`ProxyProcess`],
//! `berth netproxy`, [`main`]), which serves them on a single-threaded runtime: TCP copied
//! with `copy_bidirectional`, UDP relayed per client flow. The process is in a session of its
//! own and outlives the daemon, as Docker's per-port proxy does, so published IPv6 ports keep
//! answering while no daemon runs (`kill -9`, an upgrade); it writes its pid next to its
//! state path under the exec root, where a restarted daemon finds it again
//! ([`ProxyProcess::adopt`]). Stopping it closes its sockets and every connection.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::nft::Proto;

/// How long a UDP flow lives without a reply from the container (Docker's proxy: 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// The first descriptor number of the sockets a proxy process inherits.
const FIRST_FD: RawFd = 3;

/// Whether the host has IPv6: an address in `/proc/net/if_inet6` and IPv6 not disabled.
/// Without it, Docker publishes on IPv4 only, without error.
pub fn host_has_ipv6() -> bool {
    let disabled =
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").map(|s| s.trim() == "1").unwrap_or(true);
    let addrs = std::fs::read_to_string("/proc/net/if_inet6").map(|s| !s.trim().is_empty()).unwrap_or(false);
    addrs && !disabled
}

/// One forwarded port: `[ip]:port` (IPv6) to a container's IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The protocol (TCP or UDP).
    pub proto: Proto,
    /// The IPv6 address listened on (`::` for all).
    pub ip: Ipv6Addr,
    /// The port listened on (the one chosen when 0 was asked for).
    pub port: u16,
    /// Where its traffic goes.
    pub target: SocketAddrV4,
}

/// A bound (for TCP, listening) IPv6 socket of a published port, not yet served. It holds
/// the port until dropped or handed to a [`ProxyProcess`].
#[derive(Debug)]
pub struct Listener {
    /// What it forwards.
    pub forward: Forward,
    fd: OwnedFd,
}

/// Binds `[ip]:port` (port 0: the kernel picks) for `proto`, for traffic to `target`. SCTP
/// is not proxied (Docker's proxy needs a kernel SCTP stack the v6 side rarely has); asking
/// for it is `Unsupported`.
pub fn bind(proto: Proto, ip: Ipv6Addr, port: u16, target: SocketAddrV4) -> io::Result<Listener> {
    let typ = match proto {
        Proto::Tcp => SocketType::STREAM,
        Proto::Udp => SocketType::DGRAM,
        Proto::Sctp => return Err(io::Error::new(io::ErrorKind::Unsupported, "no IPv6 proxy for sctp")),
    };
    let sock = rustix::net::socket_with(AddressFamily::INET6, typ, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, None)?;
    rustix::net::sockopt::set_ipv6_v6only(&sock, true)?;
    if proto == Proto::Tcp {
        // As Go's listeners (and so docker-proxy) do: a restarted proxy can listen again
        // while connections of the earlier one linger in TIME_WAIT.
        rustix::net::sockopt::set_socket_reuseaddr(&sock, true)?;
    }
    rustix::net::bind(&sock, &SocketAddrV6::new(ip, port, 0, 0))?;
    let bound = SocketAddrV6::try_from(rustix::net::getsockname(&sock)?).map(|a| a.port()).unwrap_or(port);
    if proto == Proto::Tcp {
        rustix::net::listen(&sock, 1024)?;
    }
    Ok(Listener { forward: Forward { proto, ip, port: bound, target }, fd: sock })
}

/// Docker's wording for an IPv6 side that cannot be bound (its proxy's `listen` error).
pub fn start_error(endpoint: &str, ip: Ipv6Addr, port: u16, proto: Proto, e: io::Error) -> crate::Error {
    let why = match e.kind() {
        io::ErrorKind::AddrInUse => "bind: address already in use".to_owned(),
        io::ErrorKind::AddrNotAvailable => "bind: cannot assign requested address".to_owned(),
        _ => e.to_string(),
    };
    crate::Error::InUse(format!(
        "driver failed programming external connectivity on endpoint {endpoint}: Error starting userland proxy: listen {}6 [{ip}]:{port}: {why}",
        proto.as_str()
    ))
}

/// A proxy process serving one container's published IPv6 ports. Dropping it leaves the
/// process running (it is meant to outlive the daemon); [`ProxyProcess::stop`] ends it.
#[derive(Debug)]
pub struct ProxyProcess {
    pidfd: OwnedFd,
    /// Set when this daemon started it (and so reaps it).
    child: Option<Child>,
    /// Its state path (its pid is in `<state>.pid`).
    state: PathBuf,
}

fn pid_file(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".pid");
    PathBuf::from(p)
}

impl ProxyProcess {
    /// Starts `exe netproxy <state> <forwards>` serving `listeners` (inherited as
    /// descriptors 3, 4, …), in a session of its own so that it outlives the daemon. `state`
    /// names it: its pid goes to `<state>.pid`, and its command line carries the path.
    pub fn spawn(exe: &Path, state: &Path, listeners: Vec<Listener>) -> io::Result<ProxyProcess> {
        if let Some(dir) = state.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let forwards: Vec<Forward> = listeners.iter().map(|l| l.forward).collect();
        let json = serde_json::to_string(&forwards).map_err(io::Error::other)?;
        let fds: Vec<RawFd> = listeners.iter().map(|l| l.fd.as_raw_fd()).collect();
        let mut cmd = Command::new(exe);
        cmd.arg("netproxy").arg(state).arg(json).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: between fork and exec the closure calls only async-signal-safe functions
        // (setsid, fcntl, dup2) and allocates nothing; the descriptors it reads stay open in
        // the parent (`listeners` lives until `spawn` returns).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                // First above the target range (close-on-exec), so that no dup2 below
                // overwrites a socket not yet moved; then each to its number, which clears
                // close-on-exec on the copy.
                let top = FIRST_FD + fds.len() as RawFd;
                for (i, fd) in fds.iter().enumerate() {
                    let high = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, top);
                    if high < 0 || libc::dup2(high, FIRST_FD + i as RawFd) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(listeners);
        let pid = rustix::process::Pid::from_child(&child);
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        Ok(ProxyProcess { pidfd, child: Some(child), state: state.to_path_buf() })
    }

    /// The proxy process named by `state` that an earlier daemon started, if it still runs.
    pub fn adopt(state: &Path) -> Option<ProxyProcess> {
        let pid: i32 = std::fs::read_to_string(pid_file(state)).ok()?.trim().parse().ok()?;
        let pid = rustix::process::Pid::from_raw(pid)?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
        // The pid may have been reused: it is ours only if its command line names `state`
        // (read after the pidfd is held, so the pidfd is that process).
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())).ok()?;
        let mut args = cmdline.split(|b| *b == 0);
        let _exe = args.next();
        let ours =
            args.next() == Some(b"netproxy".as_slice()) && args.next() == Some(state.as_os_str().as_encoded_bytes());
        ours.then(|| ProxyProcess { pidfd, child: None, state: state.to_path_buf() })
    }

    /// Ends the process, waits until it is gone (its ports are free then) and removes its
    /// pid file.
    pub fn stop(mut self) {
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, rustix::process::Signal::KILL);
        match self.child.as_mut() {
            Some(c) => {
                let _ = c.wait();
            }
            None => {
                // Not our child: its pidfd turns readable when it has exited.
                let mut fds = [rustix::event::PollFd::new(&self.pidfd, rustix::event::PollFlags::IN)];
                let wait = rustix::event::Timespec { tv_sec: 5, tv_nsec: 0 };
                let _ = rustix::event::poll(&mut fds, Some(&wait));
            }
        }
        let _ = std::fs::remove_file(pid_file(&self.state));
    }

    /// Removes what a proxy process named by `state` left when it is not running.
    pub fn forget(state: &Path) {
        let _ = std::fs::remove_file(pid_file(state));
    }
}

/// The entry point of `berth netproxy <state> <forwards as JSON>`: serves the inherited
/// sockets (descriptors 3, 4, … in the order of the forwards) until killed. Returns the
/// process exit code.
pub fn main(args: &[String]) -> i32 {
    let (Some(state), Some(json)) = (args.first(), args.get(1)) else {
        eprintln!("usage: berth netproxy STATE FORWARDS");
        return 2;
    };
    let forwards: Vec<Forward> = match serde_json::from_str(json) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("netproxy: invalid forwards: {e}");
            return 2;
        }
    };
    let mut socks = Vec::with_capacity(forwards.len());
    for (i, f) in forwards.iter().enumerate() {
        let raw = FIRST_FD + i as RawFd;
        // SAFETY: fcntl(F_GETFD) only reads the descriptor table; it fails with EBADF on a
        // number that is not open.
        if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
            eprintln!("netproxy: descriptor {raw} for port {} is not open", f.port);
            return 2;
        }
        // SAFETY: the descriptor is open (checked above) and was handed to this process
        // for it alone by `ProxyProcess::spawn`; nothing else here owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if let Err(e) = rustix::io::ioctl_fionbio(&fd, true) {
            eprintln!("netproxy: descriptor {raw}: {e}");
            return 2;
        }
        socks.push((*f, fd));
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netproxy: {e}");
            return 1;
        }
    };
    let pid_path = pid_file(Path::new(state));
    let tmp = pid_path.with_extension("pid.tmp");
    let written = std::fs::write(&tmp, std::process::id().to_string()).and_then(|()| std::fs::rename(&tmp, &pid_path));
    if let Err(e) = written {
        eprintln!("netproxy: write {}: {e}", pid_path.display());
        return 1;
    }
    rt.block_on(serve(socks));
    0
}

/// Serves bound sockets (non-blocking) until every one has failed; inside a runtime.
async fn serve(socks: Vec<(Forward, OwnedFd)>) {
    let mut tasks = JoinSet::new();
    for (f, fd) in socks {
        match f.proto {
            Proto::Tcp => match TcpListener::from_std(std::net::TcpListener::from(fd)) {
                Ok(l) => {
                    tasks.spawn(tcp(l, f.target));
                }
                Err(e) => eprintln!("netproxy: port {}: {e}", f.port),
            },
            _ => match UdpSocket::from_std(std::net::UdpSocket::from(fd)) {
                Ok(u) => {
                    tasks.spawn(udp(Arc::new(u), f.target));
                }
                Err(e) => eprintln!("netproxy: port {}: {e}", f.port),
            },
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn tcp(l: TcpListener, target: SocketAddrV4) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok((mut client, _)) => {
                    conns.spawn(async move {
                        let _ = client.set_nodelay(true);
                        match TcpStream::connect(target).await {
                            Ok(mut up) => {
                                let _ = up.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                            }
                            Err(e) => { let _ = e; },
                        }
                    });
                }
                // EMFILE and the like: wait a little rather than spin.
                Err(e) => {
                    eprintln!("netproxy: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// One UDP flow per client address, each with a socket connected to the container whose
/// replies go back to that client.
async fn udp(sock: Arc<UdpSocket>, target: SocketAddrV4) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut replies: JoinSet<SocketAddr> = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let up = match flows.get(&from) {
                    Some(u) => u.clone(),
                    None => {
                        let Ok(u) = UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).await else { continue };
                        if u.connect(target).await.is_err() {
                            continue;
                        }
                        let u = Arc::new(u);
                        flows.insert(from, u.clone());
                        replies.spawn(udp_replies(u.clone(), sock.clone(), from));
                        u
                    }
                };
                let _ = up.send(&buf[..n]).await;
            }
            Some(Ok(from)) = replies.join_next(), if !replies.is_empty() => {
                flows.remove(&from);
            }
        }
    }
}

async fn udp_replies(up: Arc<UdpSocket>, down: Arc<UdpSocket>, client: SocketAddr) -> SocketAddr {
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)).await {
        if down.send_to(&buf[..n], client).await.is_err() {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Serves `listeners` on a runtime of their own, as the proxy process does.
    fn serve_in_thread(listeners: Vec<Listener>) {
        let socks: Vec<(Forward, OwnedFd)> = listeners.into_iter().map(|l| (l.forward, l.fd)).collect();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().unwrap();
            rt.block_on(serve(socks));
        });
    }

    #[test]
    fn tcp_and_udp_reach_an_ipv4_target_from_ipv6() {
        if !host_has_ipv6() {
            eprintln!("skipped: no IPv6 on this host");
            return;
        }
        // TCP: an echo server on 127.0.0.1.
        let srv = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(t) = srv.local_addr().unwrap() else { unreachable!() };
        std::thread::spawn(move || {
            let (mut c, _) = srv.accept().unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).unwrap();
            c.write_all(&b).unwrap();
        });
        let l = bind(Proto::Tcp, Ipv6Addr::LOCALHOST, 0, t).unwrap();
        let port = l.forward.port;
        assert_ne!(port, 0);
        // A second socket on the same port is refused, and the IPv4 side of the same
        // number stays free for the DNAT side's socket.
        let e = bind(Proto::Tcp, Ipv6Addr::LOCALHOST, port, t).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "v6only socket took the IPv4 port too");
        serve_in_thread(vec![l]);
        let mut c = std::net::TcpStream::connect((Ipv6Addr::LOCALHOST, port)).unwrap();
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");

        // UDP: an echo socket on 127.0.0.1.
        let us = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(ut) = us.local_addr().unwrap() else { unreachable!() };
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (n, from) = us.recv_from(&mut b).unwrap();
            us.send_to(&b[..n], from).unwrap();
        });
        let l = bind(Proto::Udp, Ipv6Addr::LOCALHOST, 0, ut).unwrap();
        let uport = l.forward.port;
        serve_in_thread(vec![l]);
        let c = std::net::UdpSocket::bind("[::1]:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"ping", (Ipv6Addr::LOCALHOST, uport)).unwrap();
        let mut b = [0u8; 64];
        let (n, _) = c.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"ping");
    }

    #[test]
    fn sctp_is_not_proxied_and_forwards_round_trip() {
        let t = SocketAddrV4::new(std::net::Ipv4Addr::new(172, 17, 0, 2), 80);
        let e = bind(Proto::Sctp, Ipv6Addr::UNSPECIFIED, 0, t).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        let f = Forward { proto: Proto::Udp, ip: Ipv6Addr::LOCALHOST, port: 5353, target: t };
        let json = serde_json::to_string(&[f]).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Forward>>(&json).unwrap(), vec![f]);
        assert_eq!(pid_file(Path::new("/run/x/netproxy/abc")), PathBuf::from("/run/x/netproxy/abc.pid"));
    }

    #[test]
    fn a_missing_or_foreign_pid_file_is_not_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("c1");
        assert!(ProxyProcess::adopt(&state).is_none());
        // Our own pid: alive, but its command line is not `netproxy <state>`.
        std::fs::write(pid_file(&state), std::process::id().to_string()).unwrap();
        assert!(ProxyProcess::adopt(&state).is_none());
    }
}
