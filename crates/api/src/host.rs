//! Daemon addresses as docker writes them (`-H`, `DOCKER_HOST`, daemon.json `hosts`):
//! `unix:///path`, `tcp://host:port`, a bare `host:port` (tcp) or a bare socket path, with
//! docker's defaults — an empty unix path is the default socket, a missing tcp host is
//! `localhost` and a missing port is 2376 with TLS, 2375 without.

use std::fmt;
use std::path::PathBuf;

use crate::DEFAULT_SOCKET;

/// Docker's port for the API over TLS.
pub const DEFAULT_TLS_PORT: u16 = 2376;
/// Docker's port for the API over plain TCP.
pub const DEFAULT_TCP_PORT: u16 = 2375;

/// A parsed daemon address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address; `host` is a name or an IP address (IPv6 without brackets).
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Why an address was refused; the message is docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// A scheme other than unix:// and tcp://.
    #[error("Invalid bind address format: {0}")]
    Format(String),
    /// A tcp address whose port is not a number.
    #[error("invalid bind address ({addr}): invalid port {port:?}")]
    Port {
        /// The address as given.
        addr: String,
        /// The port text.
        port: String,
    },
}

impl Host {
    /// Parses `addr` with docker's rules; `tls` picks the default tcp port (2376 or 2375).
    pub fn parse(addr: &str, tls: bool) -> Result<Host, HostError> {
        let addr = addr.trim();
        if addr.is_empty() {
            return Ok(Host::Unix(PathBuf::from(DEFAULT_SOCKET)));
        }
        if addr.starts_with('/') {
            return Ok(Host::Unix(PathBuf::from(addr)));
        }
        let (scheme, rest) = addr.split_once("://").unwrap_or(("tcp", addr));
        match scheme.to_ascii_lowercase().as_str() {
            "unix" => Ok(Host::Unix(PathBuf::from(if rest.is_empty() { DEFAULT_SOCKET } else { rest }))),
            "tcp" => Self::parse_tcp(addr, rest, tls),
            _ => Err(HostError::Format(addr.to_owned())),
        }
    }

    fn parse_tcp(addr: &str, rest: &str, tls: bool) -> Result<Host, HostError> {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(HostError::Format(addr.to_owned()));
        }
        // `[v6]:port`, `[v6]`, `host:port`, `host`, `:port`.
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| HostError::Format(addr.to_owned()))?;
            match after {
                "" => (h, ""),
                p => (h, p.strip_prefix(':').ok_or_else(|| HostError::Format(addr.to_owned()))?),
            }
        } else if rest.matches(':').count() > 1 {
            return Err(HostError::Format(addr.to_owned()));
        } else {
            rest.split_once(':').unwrap_or((rest, ""))
        };
        let port = if port.is_empty() {
            if tls { DEFAULT_TLS_PORT } else { DEFAULT_TCP_PORT }
        } else {
            port.parse().map_err(|_| HostError::Port { addr: addr.to_owned(), port: port.to_owned() })?
        };
        let host = if host.is_empty() { "localhost" } else { host };
        Ok(Host::Tcp { host: host.to_owned(), port })
    }

    /// Whether this is a unix socket.
    pub fn is_unix(&self) -> bool {
        matches!(self, Host::Unix(_))
    }

    /// `host:port` for a TCP address (IPv6 in brackets), as a socket address string.
    pub fn tcp_addr(&self) -> Option<String> {
        match self {
            Host::Tcp { host, port } if host.contains(':') => Some(format!("[{host}]:{port}")),
            Host::Tcp { host, port } => Some(format!("{host}:{port}")),
            Host::Unix(_) => None,
        }
    }
}

impl fmt::Display for Host {
    /// The canonical form: `unix:///path` or `tcp://host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp { .. } => write!(f, "tcp://{}", self.tcp_addr().unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, tls: bool) -> String {
        Host::parse(s, tls).unwrap().to_string()
    }

    #[test]
    fn docker_defaults() {
        assert_eq!(p("", false), format!("unix://{DEFAULT_SOCKET}"));
        assert_eq!(p("unix://", false), format!("unix://{DEFAULT_SOCKET}"));
        assert_eq!(p("unix:///x.sock", false), "unix:///x.sock");
        assert_eq!(p("/x.sock", false), "unix:///x.sock");
        assert_eq!(p("tcp://1.2.3.4", false), "tcp://1.2.3.4:2375");
        assert_eq!(p("tcp://1.2.3.4", true), "tcp://1.2.3.4:2376");
        assert_eq!(p("tcp://1.2.3.4:99/", true), "tcp://1.2.3.4:99");
        assert_eq!(p("example.com:80", false), "tcp://example.com:80");
        assert_eq!(p("tcp://:2376", false), "tcp://localhost:2376");
        assert_eq!(p("tcp://[::1]:5", false), "tcp://[::1]:5");
        assert_eq!(p("tcp://[::1]", true), "tcp://[::1]:2376");
        assert!(Host::parse("ftp://x", false).is_err());
        assert!(Host::parse("tcp://x:port", false).is_err());
        assert!(Host::parse("tcp://x:1/path", false).is_err());
        assert!(Host::parse("tcp://127.0.0.1:2376", true).is_ok_and(|h| !h.is_unix()));
    }
}
