//! The IPv6 side of published ports: a small userland proxy per port, as Docker's
//! `docker-proxy` does for hosts with IPv6 and containers with IPv4 addresses only.
//!
//! Why a proxy and not kernel NAT: our containers have IPv4 addresses only, and the kernel's
//! NAT cannot translate an IPv6 connection into an IPv4 one, so `[::]:P` cannot be DNATed to
//! the container. Giving every network a ULA /64 and every container a v6 address would
//! change what `inspect` reports for every container (Docker leaves `GlobalIPv6Address`
//! empty unless `--ipv6`), so we do what Docker does without `--ipv6`: accept on the host's
//! IPv6 side and copy to the container's IPv4 address.
//!
//! The proxy runs in the daemon, on a runtime of its own (so it never competes with the API's
//! tasks), one listening task per port. Its listening socket also holds the IPv6 port for
//! the container's life, as [`crate::portmap`]'s socket holds the IPv4 one; it is made with
//! `IPV6_V6ONLY` so it can share the port number with the IPv4 side. Dropping a [`Proxy`]
//! closes its socket and every connection it carries. Unlike Docker's separate process, the
//! proxy dies with the daemon on `kill -9`: IPv6 clients get refused until the daemon
//! starts again and `restore` starts the proxy anew (the IPv4 DNAT path keeps working).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{AbortHandle, JoinSet};

use crate::nft::Proto;

/// How long a UDP flow lives without a reply from the container (Docker's proxy: 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// Whether the host has IPv6: an address in `/proc/net/if_inet6` and IPv6 not disabled.
/// Without it, Docker publishes on IPv4 only, without error.
pub fn host_has_ipv6() -> bool {
    let disabled =
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").map(|s| s.trim() == "1").unwrap_or(true);
    let addrs = std::fs::read_to_string("/proc/net/if_inet6").map(|s| !s.trim().is_empty()).unwrap_or(false);
    addrs && !disabled
}

fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("port-proxy")
        .enable_io()
        .enable_time()
        .build()?;
    // Another thread may have won the race; its runtime is kept and ours dropped.
    let _ = RT.set(rt);
    RT.get().ok_or_else(|| io::Error::other("proxy runtime"))
}

/// A running proxy from `[ip]:port` (IPv6) to a container's IPv4 address.
#[derive(Debug)]
pub struct Proxy {
    /// The protocol (TCP or UDP).
    pub proto: Proto,
    /// The IPv6 address listened on (`::` for all).
    pub ip: Ipv6Addr,
    /// The port listened on (the one chosen when 0 was asked for).
    pub port: u16,
    task: AbortHandle,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The task owns the socket and a JoinSet of the connections: aborting it closes all.
        self.task.abort();
    }
}

/// Binds `[ip]:port` (port 0: the kernel picks) for `proto` and starts copying what
/// arrives to `target`. SCTP is not proxied (Docker's proxy needs a kernel SCTP stack the
/// v6 side rarely has); asking for it is `Unsupported`.
pub fn start(proto: Proto, ip: Ipv6Addr, port: u16, target: SocketAddrV4) -> io::Result<Proxy> {
    let typ = match proto {
        Proto::Tcp => SocketType::STREAM,
        Proto::Udp => SocketType::DGRAM,
        Proto::Sctp => return Err(io::Error::new(io::ErrorKind::Unsupported, "no IPv6 proxy for sctp")),
    };
    let sock = rustix::net::socket_with(AddressFamily::INET6, typ, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK, None)?;
    rustix::net::sockopt::set_ipv6_v6only(&sock, true)?;
    if proto == Proto::Tcp {
        // As Go's listeners (and so docker-proxy) do: a restarted daemon can listen again
        // while connections of the earlier one linger in TIME_WAIT.
        rustix::net::sockopt::set_socket_reuseaddr(&sock, true)?;
    }
    rustix::net::bind(&sock, &SocketAddrV6::new(ip, port, 0, 0))?;
    let bound = SocketAddrV6::try_from(rustix::net::getsockname(&sock)?).map(|a| a.port()).unwrap_or(port);
    let rt = runtime()?;
    let _in = rt.enter();
    let task = match proto {
        Proto::Tcp => {
            rustix::net::listen(&sock, 1024)?;
            let l = TcpListener::from_std(std::net::TcpListener::from(sock))?;
            rt.spawn(tcp(l, target)).abort_handle()
        }
        _ => {
            let u = UdpSocket::from_std(std::net::UdpSocket::from(sock))?;
            rt.spawn(udp(Arc::new(u), target)).abort_handle()
        }
    };
    Ok(Proxy { proto, ip, port: bound, task })
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
                            Err(e) => tracing::debug!(%target, error = %e, "proxy: container refused"),
                        }
                    });
                }
                // EMFILE and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "proxy: accept");
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
        let p = start(Proto::Tcp, Ipv6Addr::LOCALHOST, 0, t).unwrap();
        assert_ne!(p.port, 0);
        let mut c = std::net::TcpStream::connect((Ipv6Addr::LOCALHOST, p.port)).unwrap();
        c.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello");
        // The IPv4 side of the same number stays free for the DNAT side's socket.
        let v4 = std::net::TcpListener::bind(("127.0.0.1", p.port));
        assert!(v4.is_ok(), "v6only proxy took the IPv4 port too");
        // A second proxy on the same port is refused.
        let e = start(Proto::Tcp, Ipv6Addr::LOCALHOST, p.port, t).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let port = p.port;
        drop(p);
        std::thread::sleep(Duration::from_millis(100));
        assert!(std::net::TcpStream::connect((Ipv6Addr::LOCALHOST, port)).is_err(), "still listening after drop");

        // UDP: an echo socket on 127.0.0.1.
        let us = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(ut) = us.local_addr().unwrap() else { unreachable!() };
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (n, from) = us.recv_from(&mut b).unwrap();
            us.send_to(&b[..n], from).unwrap();
        });
        let p = start(Proto::Udp, Ipv6Addr::LOCALHOST, 0, ut).unwrap();
        let c = std::net::UdpSocket::bind("[::1]:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"ping", (Ipv6Addr::LOCALHOST, p.port)).unwrap();
        let mut b = [0u8; 64];
        let (n, _) = c.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"ping");
    }
}
