//! Who may talk to the dashboard: the holder of its token, from loopback (unless the user
//! asked for another address), through a `Host` that names an address rather than a DNS
//! name (DNS rebinding) and, when a browser says where the request comes from, an `Origin`
//! that is the dashboard itself (cross-site requests and websockets).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Error;

/// The header a non-browser client may carry the token in.
pub const TOKEN_HEADER: &str = "x-berth-token";

/// The checks every request passes before it reaches a route.
#[derive(Debug, Clone)]
pub struct Guard {
    token: String,
    port: u16,
    remote_ok: bool,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer is not on this machine and the user did not ask to listen beyond it.
    Peer,
    /// `Host` is missing, a DNS name other than `localhost`, or another port.
    Host,
    /// `Origin` names another site.
    Origin,
    /// No token, or a wrong one.
    Token,
}

impl Refusal {
    fn response(self) -> Response {
        let (status, msg) = match self {
            Refusal::Peer => (StatusCode::FORBIDDEN, "berth dashboard: requests from other machines are refused"),
            Refusal::Host => (StatusCode::FORBIDDEN, "berth dashboard: unexpected Host header"),
            Refusal::Origin => (StatusCode::FORBIDDEN, "berth dashboard: cross-site request refused"),
            Refusal::Token => (
                StatusCode::UNAUTHORIZED,
                "berth dashboard: this page needs its token; open the URL that `berth dashboard` printed",
            ),
        };
        (status, [(header::CACHE_CONTROL, "no-store")], msg).into_response()
    }
}

/// A fresh random token: 32 bytes from the OS, hex-encoded.
pub fn new_token() -> Result<String, Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| Error::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Compares in time independent of where the strings differ. Written out rather than taken
/// from a crate: five lines, and the token is fixed-length hex.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Guard {
    /// A guard for a dashboard listening on `port`; `remote_ok` when the user chose an
    /// address beyond loopback.
    pub fn new(token: String, port: u16, remote_ok: bool) -> Guard {
        Guard { token, port, remote_ok }
    }

    /// The token this dashboard wants.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The cookie that keeps the token once the page is open; named after the port since
    /// browsers share cookies across the ports of one host.
    pub fn cookie_name(&self) -> String {
        format!("berth_dashboard_{}", self.port)
    }

    /// Whether a peer at `ip` may connect.
    pub fn peer_allowed(&self, ip: IpAddr) -> bool {
        self.remote_ok || ip.is_loopback() || ip.to_canonical().is_loopback()
    }

    /// Whether `host` (the `Host` header) names this dashboard by address: an IP literal or
    /// `localhost`, with our port. A DNS name could be re-pointed at 127.0.0.1 by a hostile
    /// site (DNS rebinding), so none is accepted.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some((name, port)) = host.rsplit_once(':') else { return false };
        if port.parse::<u16>().ok() != Some(self.port) {
            return false;
        }
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.remote_ok || ip.is_loopback(),
            Err(_) => false,
        }
    }

    /// Whether `origin` is this dashboard as reached through `host`.
    pub fn origin_allowed(origin: &str, host: &str) -> bool {
        origin.eq_ignore_ascii_case(&format!("http://{host}"))
    }

    /// The token a request carries: the header, else our cookie.
    fn presented<'a>(&self, headers: &'a HeaderMap) -> Option<std::borrow::Cow<'a, str>> {
        if let Some(v) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
            return Some(v.into());
        }
        let name = self.cookie_name();
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
            |kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.to_owned().into())
            },
        )
    }

    /// The whole decision for one request, before any route runs. `Ok(Some(cookie))` when a
    /// valid token arrived in the query of `/`: the caller sets the cookie and redirects.
    pub fn check(
        &self,
        peer: IpAddr,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Option<String>, Refusal> {
        if !self.peer_allowed(peer) {
            return Err(Refusal::Peer);
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).ok_or(Refusal::Host)?;
        if !self.host_allowed(host) {
            return Err(Refusal::Host);
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            if !Guard::origin_allowed(origin.to_str().map_err(|_| Refusal::Origin)?, host) {
                return Err(Refusal::Origin);
            }
        } else if headers.get(header::UPGRADE).is_some() {
            // Browsers always send Origin with a websocket handshake; only a page of
            // ours may open one.
            return Err(Refusal::Origin);
        }
        if path == "/" {
            let from_query = query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| kv.strip_prefix("token="));
            if let Some(t) = from_query {
                return if same(t, &self.token) {
                    Ok(Some(format!("{}={}; Path=/; HttpOnly; SameSite=Strict", self.cookie_name(), self.token)))
                } else {
                    Err(Refusal::Token)
                };
            }
        }
        match self.presented(headers) {
            Some(t) if same(&t, &self.token) => Ok(None),
            _ => Err(Refusal::Token),
        }
    }
}

/// The middleware in front of every route.
pub async fn middleware(
    State(guard): State<Arc<Guard>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let decision = guard.check(peer.ip(), req.uri().path(), req.uri().query(), req.headers());
    match decision {
        Err(r) => r.response(),
        // Keep the token out of the address bar and history: set the cookie, go to `/`.
        Ok(Some(cookie)) => {
            let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(None) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn peers_beyond_loopback_are_refused_unless_asked() {
        let g = Guard::new("t".into(), 8080, false);
        assert!(g.peer_allowed(LO));
        assert!(g.peer_allowed("::1".parse().unwrap()));
        assert!(g.peer_allowed("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!g.peer_allowed("10.0.0.2".parse().unwrap()));
        assert!(!g.peer_allowed("fe80::1".parse().unwrap()));
        let h = headers(&[("host", "127.0.0.1:8080"), ("x-berth-token", "t")]);
        assert_eq!(g.check("192.168.1.9".parse().unwrap(), "/api/_ping", None, &h), Err(Refusal::Peer));
        let remote = Guard::new("t".into(), 8080, true);
        assert!(remote.peer_allowed("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn host_must_be_an_address_with_our_port() {
        let g = Guard::new("t".into(), 8080, false);
        for ok in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST:8080"] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1:8081", "127.0.0.1", "10.1.1.1:8080", "127.0.0.1.nip.io:8080"] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let remote = Guard::new("t".into(), 8080, true);
        assert!(remote.host_allowed("10.1.1.1:8080"));
        assert!(!remote.host_allowed("evil.example:8080"));
    }

    #[test]
    fn token_from_query_cookie_or_header() {
        let g = Guard::new("secret".into(), 9000, false);
        let h = headers(&[("host", "127.0.0.1:9000")]);
        assert_eq!(g.check(LO, "/", None, &h), Err(Refusal::Token));
        assert_eq!(g.check(LO, "/api/_ping", None, &h), Err(Refusal::Token));
        assert_eq!(g.check(LO, "/", Some("token=wrong"), &h), Err(Refusal::Token));
        let set = g.check(LO, "/", Some("token=secret"), &h).unwrap().unwrap();
        assert!(set.starts_with("berth_dashboard_9000=secret;") && set.contains("HttpOnly"), "{set}");
        // The query is honoured on `/` only: elsewhere it would travel on to the daemon.
        assert_eq!(g.check(LO, "/api/_ping", Some("token=secret"), &h), Err(Refusal::Token));
        let c = headers(&[("host", "127.0.0.1:9000"), ("cookie", "a=b; berth_dashboard_9000=secret")]);
        assert_eq!(g.check(LO, "/api/_ping", None, &c), Ok(None));
        let other_port = headers(&[("host", "127.0.0.1:9000"), ("cookie", "berth_dashboard_9001=secret")]);
        assert_eq!(g.check(LO, "/api/_ping", None, &other_port), Err(Refusal::Token));
        let hd = headers(&[("host", "127.0.0.1:9000"), ("x-berth-token", "secret")]);
        assert_eq!(g.check(LO, "/api/_ping", None, &hd), Ok(None));
        let short = headers(&[("host", "127.0.0.1:9000"), ("x-berth-token", "secre")]);
        assert_eq!(g.check(LO, "/api/_ping", None, &short), Err(Refusal::Token));
    }

    #[test]
    fn cross_site_requests_and_websockets_are_refused() {
        let g = Guard::new("s".into(), 9000, false);
        let base = [("host", "127.0.0.1:9000"), ("x-berth-token", "s")];
        let same_site = headers(&[base[0], base[1], ("origin", "http://127.0.0.1:9000")]);
        assert_eq!(g.check(LO, "/api/containers/json", None, &same_site), Ok(None));
        let cross = headers(&[base[0], base[1], ("origin", "http://evil.example")]);
        assert_eq!(g.check(LO, "/api/containers/json", None, &cross), Err(Refusal::Origin));
        let ws_no_origin = headers(&[base[0], base[1], ("upgrade", "websocket")]);
        assert_eq!(g.check(LO, "/ws/logs/x", None, &ws_no_origin), Err(Refusal::Origin));
        let rebound = headers(&[("host", "attacker.example:9000"), ("x-berth-token", "s")]);
        assert_eq!(g.check(LO, "/", None, &rebound), Err(Refusal::Host));
    }
}
