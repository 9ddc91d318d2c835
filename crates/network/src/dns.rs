//! The embedded DNS server of a user-defined network: bound on the network's gateway
//! address (port 53, UDP), it answers A queries for the names of the containers on that
//! network (names, aliases, short ids, host names) and relays everything else to the
//! host's resolvers, unless the network is internal. Messages are read and written with
//! `hickory-proto`; one thread per network, stopped when the network goes.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::error::{Error, Result};

/// Names on one network: lowercase name (no trailing dot) → addresses.
#[derive(Debug, Default)]
pub struct Names {
    by_endpoint: HashMap<String, (Vec<String>, Ipv4Addr)>,
}

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

/// A running server; dropping it stops the thread.
pub struct Server {
    stop: Arc<AtomicBool>,
    names: Arc<RwLock<Names>>,
}

impl Server {
    /// Binds `ip:53` and serves from a thread. `upstream` are the host's resolvers (empty:
    /// answer only our names).
    pub fn start(ip: Ipv4Addr, upstream: Vec<SocketAddr>) -> Result<Server> {
        let sock = UdpSocket::bind((ip, 53)).map_err(|e| Error::io(format!("bind DNS on {ip}:53"), e))?;
        sock.set_read_timeout(Some(Duration::from_millis(250))).map_err(|e| Error::io("set DNS timeout", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let names = Arc::new(RwLock::new(Names::default()));
        let (s2, n2) = (stop.clone(), names.clone());
        std::thread::Builder::new()
            .name(format!("dns-{ip}"))
            .spawn(move || serve(sock, &s2, &n2, &upstream))
            .map_err(|e| Error::io("start DNS thread", e))?;
        Ok(Server { stop, names })
    }

    /// The name table.
    pub fn names(&self) -> &Arc<RwLock<Names>> {
        &self.names
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(sock: UdpSocket, stop: &AtomicBool, names: &RwLock<Names>, upstream: &[SocketAddr]) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
        let answer = match names.read() {
            Ok(g) => answer(&buf[..n], &g, upstream),
            Err(p) => answer(&buf[..n], &p.into_inner(), upstream),
        };
        if let Some(a) = answer {
            let _ = sock.send_to(&a, from);
        }
    }
}

/// The reply to one query: ours for our names (NXDOMAIN-free: other types of our names
/// get an empty answer), the upstream's for the rest, SERVFAIL when it cannot be had.
pub fn answer(query: &[u8], names: &Names, upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let msg = Message::from_vec(query).ok()?;
    let q = msg.queries().first()?.clone();
    let ips = names.lookup(&q.name().to_utf8());
    if !ips.is_empty() {
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
        return r.to_vec().ok();
    }
    for up in upstream {
        if let Some(a) = relay(query, *up) {
            return Some(a);
        }
    }
    let code = if upstream.is_empty() { ResponseCode::NXDomain } else { ResponseCode::ServFail };
    let mut r = Message::error_msg(msg.id(), msg.op_code(), code);
    r.add_query(q).set_recursion_desired(msg.recursion_desired()).set_recursion_available(true);
    r.to_vec().ok()
}

fn relay(query: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let s = UdpSocket::bind(if up.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.send_to(query, up).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

/// The host's resolvers from resolv.conf text, port 53.
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

    #[test]
    fn answers_our_names_and_refuses_the_rest_without_upstream() {
        let mut n = Names::default();
        n.add("e1", vec!["Web".into(), "site".into()], "10.1.0.2".parse().unwrap());
        let a = Message::from_vec(&answer(&query("web.", RecordType::A), &n, &[]).unwrap()).unwrap();
        assert_eq!(a.id(), 7);
        assert_eq!(a.answers().len(), 1);
        assert_eq!(a.answers()[0].data(), &RData::A(A("10.1.0.2".parse().unwrap())));
        let a = Message::from_vec(&answer(&query("site", RecordType::AAAA), &n, &[]).unwrap()).unwrap();
        assert_eq!((a.response_code(), a.answers().len()), (ResponseCode::NoError, 0));
        let a = Message::from_vec(&answer(&query("other.example.", RecordType::A), &n, &[]).unwrap()).unwrap();
        assert_eq!(a.response_code(), ResponseCode::NXDomain);
        n.remove("e1");
        assert!(n.lookup("web").is_empty());
        assert_eq!(upstreams("nameserver 10.0.0.1\nsearch x\nnameserver ::1\n").len(), 2);
    }
}
