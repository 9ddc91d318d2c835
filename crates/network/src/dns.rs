//! The embedded DNS of user-defined networks, served as Docker serves it: each container
//! on a user network has `nameserver 127.0.0.11` and finds a resolver there, inside its own
//! network namespace, over UDP and TCP. The sockets are made in the container's namespace
//! by a short-lived thread (a socket keeps the namespace it was made in) and served by a
//! thread of the daemon that never leaves the host's namespace, so queries for other names
//! are relayed to the host's resolvers as the host reaches them (loopback ones included).
//! This needs no NAT rule inside the container (Docker's iptables DNAT from port 53 costs
//! an `iptables` run per container): the sockets are bound on port 53 itself.
//!
//! The resolver answers A queries for the names of the containers on the container's
//! networks (names, aliases, short ids, host names), gives an empty NOERROR answer to any
//! other type of query for those names (AAAA included, as Docker answers names without
//! IPv6), and relays everything else unless every network of the container is internal.
//! Messages are read and written with `hickory-proto`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::error::{Error, Result};

/// The address of the embedded resolver inside every container on a user network.
pub const RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// How long an upstream resolver gets to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Names on one network: lowercase name (no trailing dot) → addresses.
#[derive(Debug, Default)]
pub struct Names {
    by_endpoint: HashMap<String, (Vec<String>, Ipv4Addr)>,
}

/// One network's names, shared by the resolvers of the containers on it.
pub type Table = Arc<RwLock<Names>>;

impl Names {
    /// Records an endpoint's names.
    pub fn add(&mut self, endpoint: &str, names: Vec<String>, ip: Ipv4Addr) {
        let names = names.into_iter().map(|n| n.to_ascii_lowercase()).collect();
        self.by_endpoint.insert(endpoint.to_owned(), (names, ip));
    }

    /// Forgets an endpoint.
    pub fn remove(&mut self, endpoint: &str) {
        self.by_endpoint.remove(endpoint);
    }

    /// The addresses of `name`.
    pub fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        let mut v: Vec<Ipv4Addr> =
            self.by_endpoint.values().filter(|(names, _)| names.contains(&n)).map(|(_, ip)| *ip).collect();
        v.sort();
        v
    }
}

/// What one container's resolver knows: the name tables of its networks (by network id)
/// and where other names go.
#[derive(Debug, Default)]
pub struct View {
    /// Name tables of the container's user networks.
    pub networks: Vec<(String, Table)>,
    /// The resolvers other names are relayed to (empty: answer only our names).
    pub upstream: Vec<SocketAddr>,
}

impl View {
    fn lookup(&self, name: &str) -> Vec<Ipv4Addr> {
        for (_, t) in &self.networks {
            let found = match t.read() {
                Ok(g) => g.lookup(name),
                Err(p) => p.into_inner().lookup(name),
            };
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }
}

/// One container's resolver; dropping it stops its thread and closes its sockets.
pub struct Resolver {
    stop: Arc<AtomicBool>,
    view: Arc<RwLock<View>>,
}

impl Resolver {
    /// Binds 127.0.0.11:53 (UDP and TCP) in the network namespace at `netns` and serves
    /// `view` from a thread of the caller's namespace.
    pub fn start(netns: &Path, view: View) -> Result<Resolver> {
        let (udp, tcp) = crate::netns::run_in(netns, || {
            let udp = UdpSocket::bind((RESOLVER_IP, 53)).map_err(|e| Error::io("bind DNS on 127.0.0.11:53/udp", e))?;
            let tcp =
                TcpListener::bind((RESOLVER_IP, 53)).map_err(|e| Error::io("bind DNS on 127.0.0.11:53/tcp", e))?;
            Ok((udp, tcp))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let view = Arc::new(RwLock::new(view));
        let (s2, v2) = (stop.clone(), view.clone());
        std::thread::Builder::new()
            .name("dns".into())
            .spawn(move || serve(&udp, &tcp, &s2, &v2))
            .map_err(|e| Error::io("start DNS thread", e))?;
        Ok(Resolver { stop, view })
    }

    /// Changes what the resolver knows (a network connected or disconnected).
    pub fn update(&self, f: impl FnOnce(&mut View)) {
        match self.view.write() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn snapshot(view: &RwLock<View>) -> (Vec<(String, Table)>, Vec<SocketAddr>) {
    let g = match view.read() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    (g.networks.clone(), g.upstream.clone())
}

/// Serves both sockets until `stop`: waits on them a quarter of a second at a time.
/// Queries for our names are answered at once; a relayed query and each TCP connection
/// get a short-lived thread, so a slow upstream holds up nobody else.
fn serve(udp: &UdpSocket, tcp: &TcpListener, stop: &AtomicBool, view: &RwLock<View>) {
    use rustix::event::{PollFd, PollFlags, poll};
    let _ = tcp.set_nonblocking(true);
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(udp, PollFlags::IN), PollFd::new(tcp, PollFlags::IN)];
        let timeout = rustix::event::Timespec { tv_sec: 0, tv_nsec: 250_000_000 };
        if poll(&mut fds, Some(&timeout)).is_err() {
            continue;
        }
        let (udp_ready, tcp_ready) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if udp_ready && let Ok((n, from)) = udp.recv_from(&mut buf) {
            let (nets, upstream) = snapshot(view);
            let v = View { networks: nets, upstream };
            let q = buf[..n].to_vec();
            match local_answer(&q, &v) {
                Some(a) => {
                    let _ = udp.send_to(&a, from);
                }
                None => {
                    if let Ok(s) = udp.try_clone() {
                        std::thread::spawn(move || {
                            if let Some(a) = relay_or_fail(&q, &v.upstream, false) {
                                let _ = s.send_to(&a, from);
                            }
                        });
                    }
                }
            }
        }
        if tcp_ready && let Ok((conn, _)) = tcp.accept() {
            let (nets, upstream) = snapshot(view);
            let v = View { networks: nets, upstream };
            std::thread::spawn(move || serve_tcp(conn, &v));
        }
    }
}

/// Answers the queries of one TCP connection (each framed by a two-byte length).
fn serve_tcp(mut conn: TcpStream, view: &View) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut len = [0u8; 2];
        if conn.read_exact(&mut len).is_err() {
            return;
        }
        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
        if conn.read_exact(&mut q).is_err() {
            return;
        }
        let Some(a) = answer(&q, view, true) else { return };
        let Ok(l) = u16::try_from(a.len()) else { return };
        if conn.write_all(&l.to_be_bytes()).and_then(|()| conn.write_all(&a)).is_err() {
            return;
        }
    }
}

/// The reply to one query: ours for our names, the upstream's for the rest (over TCP when
/// `tcp`), SERVFAIL when it cannot be had (NXDOMAIN when there is no upstream at all).
pub fn answer(query: &[u8], view: &View, tcp: bool) -> Option<Vec<u8>> {
    local_answer(query, view).or_else(|| relay_or_fail(query, &view.upstream, tcp))
}

/// Our answer when the name is one of ours; `None` when it is not (or the query is not one
/// we can read, which the upstream may).
fn local_answer(query: &[u8], view: &View) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    let q = msg.queries().first()?.clone();
    let ips = view.lookup(&q.name().to_utf8());
    if ips.is_empty() {
        return None;
    }
    let mut r = Message::new();
    r.set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(msg.op_code())
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true)
        .add_query(q.clone());
    if q.query_type() == RecordType::A {
        for ip in ips {
            r.add_answer(Record::from_rdata(q.name().clone(), 600, RData::A(A(ip))));
        }
    }
    r.to_vec().ok()
}

fn relay_or_fail(query: &[u8], upstream: &[SocketAddr], tcp: bool) -> Option<Vec<u8>> {
    for up in upstream {
        let got = if tcp { relay_tcp(query, *up) } else { relay_udp(query, *up) };
        if let Some(a) = got {
            return Some(a);
        }
    }
    let msg = Message::from_vec(query).ok()?;
    let code = if upstream.is_empty() { ResponseCode::NXDomain } else { ResponseCode::ServFail };
    let mut r = Message::error_msg(msg.id(), msg.op_code(), code);
    if let Some(q) = msg.queries().first() {
        r.add_query(q.clone());
    }
    r.set_recursion_desired(msg.recursion_desired()).set_recursion_available(true);
    r.to_vec().ok()
}

fn relay_udp(query: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let s = UdpSocket::bind(if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).ok()?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    s.connect(up).ok()?;
    s.send(query).ok()?;
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn relay_tcp(query: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&up, UPSTREAM_TIMEOUT).ok()?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    let l = u16::try_from(query.len()).ok()?;
    s.write_all(&l.to_be_bytes()).ok()?;
    s.write_all(query).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut a = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut a).ok()?;
    Some(a)
}

/// The resolvers in resolv.conf text, port 53.
pub fn upstreams(resolv: &str) -> Vec<SocketAddr> {
    resolv
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7).set_recursion_desired(true).add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn view(n: Names, upstream: Vec<SocketAddr>) -> View {
        View { networks: vec![("n1".into(), Arc::new(RwLock::new(n)))], upstream }
    }

    #[test]
    fn answers_our_names_and_refuses_the_rest_without_upstream() {
        let mut n = Names::default();
        n.add("e1", vec!["Web".into(), "site".into()], "10.1.0.2".parse().unwrap());
        let v = view(n, vec![]);
        let a = Message::from_vec(&answer(&query("web.", RecordType::A), &v, false).unwrap()).unwrap();
        assert_eq!(a.id(), 7);
        assert_eq!(a.answers().len(), 1);
        assert_eq!(a.answers()[0].data(), &RData::A(A("10.1.0.2".parse().unwrap())));
        let a = Message::from_vec(&answer(&query("site", RecordType::AAAA), &v, false).unwrap()).unwrap();
        assert_eq!((a.response_code(), a.answers().len()), (ResponseCode::NoError, 0), "AAAA: empty NOERROR");
        let a = Message::from_vec(&answer(&query("other.example.", RecordType::A), &v, false).unwrap()).unwrap();
        assert_eq!(a.response_code(), ResponseCode::NXDomain);
        v.networks[0].1.write().unwrap().remove("e1");
        assert!(v.lookup("web").is_empty());
        assert_eq!(upstreams("nameserver 10.0.0.1\nsearch x\nnameserver ::1\n").len(), 2);
    }

    #[test]
    fn other_names_are_relayed_over_udp_and_tcp() {
        // A tiny upstream on 127.0.0.1 that answers every query with one A record.
        let up_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = up_udp.local_addr().unwrap();
        let up_tcp = TcpListener::bind(addr).unwrap();
        let reply = |q: &[u8]| {
            let m = Message::from_vec(q).unwrap();
            let mut r = Message::new();
            r.set_id(m.id()).set_message_type(MessageType::Response).add_query(m.queries()[0].clone());
            r.add_answer(Record::from_rdata(
                m.queries()[0].name().clone(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 9))),
            ));
            r.to_vec().unwrap()
        };
        std::thread::spawn(move || {
            let mut b = [0u8; 512];
            let (n, from) = up_udp.recv_from(&mut b).unwrap();
            up_udp.send_to(&reply(&b[..n]), from).unwrap();
            let (mut c, _) = up_tcp.accept().unwrap();
            let mut l = [0u8; 2];
            c.read_exact(&mut l).unwrap();
            let mut q = vec![0u8; u16::from_be_bytes(l) as usize];
            c.read_exact(&mut q).unwrap();
            let a = reply(&q);
            c.write_all(&(a.len() as u16).to_be_bytes()).unwrap();
            c.write_all(&a).unwrap();
        });
        let v = view(Names::default(), vec![addr]);
        for tcp in [false, true] {
            let a = Message::from_vec(&answer(&query("example.org.", RecordType::A), &v, tcp).unwrap()).unwrap();
            assert_eq!(a.answers()[0].data(), &RData::A(A(Ipv4Addr::new(192, 0, 2, 9))), "tcp: {tcp}");
        }
    }
}
