//! Host ports of published ports: each one is held by a socket bound (never listening) on
//! the host, as Docker does without its userland proxy, so a port in use is found at
//! start and nothing else takes it while the container runs. Traffic itself never reaches
//! these sockets: the kernel's DNAT (see `nft`) sends it to the container first.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketType};

use crate::error::Error;
use crate::nft::Proto;

/// A held host port.
#[derive(Debug)]
pub struct Reserved {
    /// The protocol.
    pub proto: Proto,
    /// The address bound (`0.0.0.0` for all).
    pub ip: Ipv4Addr,
    /// The port bound (the one chosen when 0 was asked for).
    pub port: u16,
    _sock: OwnedFd,
}

/// Binds `ip:port` for `proto` (port 0: the kernel picks an ephemeral one).
pub fn reserve(proto: Proto, ip: Ipv4Addr, port: u16) -> std::io::Result<Reserved> {
    let (typ, p) = match proto {
        Proto::Tcp => (SocketType::STREAM, None),
        Proto::Udp => (SocketType::DGRAM, None),
        Proto::Sctp => (SocketType::SEQPACKET, Some(rustix::net::ipproto::SCTP)),
    };
    let sock = rustix::net::socket_with(AddressFamily::INET, typ, rustix::net::SocketFlags::CLOEXEC, p)?;
    rustix::net::bind(&sock, &SocketAddrV4::new(ip, port))?;
    let bound = SocketAddrV4::try_from(rustix::net::getsockname(&sock)?).map(|a| a.port()).unwrap_or(port);
    Ok(Reserved { proto, ip, port: bound, _sock: sock })
}

/// Docker's wording for a host port that cannot be bound.
pub fn bind_error(
    endpoint: &str,
    ip: Ipv4Addr,
    port: u16,
    cip: Ipv4Addr,
    cport: u16,
    proto: Proto,
    e: std::io::Error,
) -> Error {
    let why =
        if e.kind() == std::io::ErrorKind::AddrInUse { "address already in use".to_owned() } else { e.to_string() };
    Error::InUse(format!(
        "driver failed programming external connectivity on endpoint {endpoint}: failed to bind host port for {ip}:{port}:{cip}:{cport}/{}: {why}",
        proto.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_cannot_be_taken_twice() {
        let a = reserve(Proto::Tcp, Ipv4Addr::LOCALHOST, 0).unwrap();
        assert_ne!(a.port, 0);
        let e = reserve(Proto::Tcp, Ipv4Addr::LOCALHOST, a.port).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        let u = reserve(Proto::Udp, Ipv4Addr::LOCALHOST, a.port);
        assert!(u.is_ok(), "udp and tcp ports are apart");
        drop(a);
    }
}
