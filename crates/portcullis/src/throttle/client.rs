//! The client's address: [`ClientIp`] (DRF's `get_ident` and `NUM_PROXIES`)
//! and the [`ClientAddr`] extension a server may insert.

use std::net::{IpAddr, SocketAddr};

use http::HeaderName;

use crate::scheme::RequestHead;

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The peer's address, put in the request extensions by a server that does
/// not use axum's `ConnectInfo` (or that knows better, such as one that
/// speaks the PROXY protocol). It wins over `ConnectInfo`.
///
/// ```
/// use std::net::IpAddr;
/// use portcullis::throttle::{ClientAddr, ClientIp};
/// use portcullis::scheme::RequestHead;
///
/// let mut req = http::Request::get("/").body(()).unwrap();
/// req.extensions_mut().insert(ClientAddr("192.0.2.7".parse().unwrap()));
/// let ip = ClientIp::new().resolve(&RequestHead::from_request(&req));
/// assert_eq!(ip, Some("192.0.2.7".parse::<IpAddr>().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

/// How to find a request's client address; shared by the throttles and the
/// lockout so both count the same client.
///
/// With `num_proxies == 0` (the default) the address is the socket's peer:
/// a [`ClientAddr`] extension, else axum's `ConnectInfo<SocketAddr>`
/// (feature `axum`; serve with `into_make_service_with_connect_info`).
/// `X-Forwarded-For` is ignored, since anyone can send it.
///
/// With `num_proxies == N > 0` (DRF's `NUM_PROXIES`), the application sits
/// behind N proxies that each append the address they saw, so the N-th
/// entry from the right of `X-Forwarded-For` is the client (the leftmost
/// when there are fewer entries, as DRF does). Without the header, or when
/// that entry is not an IP address, the socket's peer is used.
///
/// DRF's default (`NUM_PROXIES = None`) trusts the whole header, which lets
/// any client pick its own throttle key; portcullis has no such mode.
///
/// ```
/// use std::net::IpAddr;
/// use portcullis::throttle::{ClientAddr, ClientIp};
/// use portcullis::scheme::RequestHead;
///
/// let mut req = http::Request::get("/")
///     .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
///     .body(()).unwrap();
/// req.extensions_mut().insert(ClientAddr("10.0.0.1".parse().unwrap()));
/// let head = RequestHead::from_request(&req);
/// let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
/// assert_eq!(ClientIp::new().resolve(&head), ip("10.0.0.1"));
/// assert_eq!(ClientIp::behind_proxies(1).resolve(&head), ip("203.0.113.9"));
/// assert_eq!(ClientIp::behind_proxies(2).resolve(&head), ip("6.6.6.6"));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientIp {
    num_proxies: usize,
}

impl ClientIp {
    /// The socket's address; `X-Forwarded-For` ignored.
    pub fn new() -> Self {
        ClientIp { num_proxies: 0 }
    }

    /// Trusts the last `n` `X-Forwarded-For` hops (DRF's `NUM_PROXIES`).
    pub fn behind_proxies(n: usize) -> Self {
        ClientIp { num_proxies: n }
    }

    /// The number of trusted proxies.
    pub fn num_proxies(&self) -> usize {
        self.num_proxies
    }

    /// The client's address, or `None` when the server left no peer address
    /// and no trusted `X-Forwarded-For` entry names one.
    pub fn resolve(&self, req: &RequestHead<'_>) -> Option<IpAddr> {
        let peer = peer_addr(req);
        if self.num_proxies == 0 {
            return peer;
        }
        match forwarded(req, self.num_proxies) {
            Some(ip) => Some(ip),
            None => peer,
        }
    }
}

/// The socket's address: [`ClientAddr`], else axum's `ConnectInfo`.
fn peer_addr(req: &RequestHead<'_>) -> Option<IpAddr> {
    if let Some(ClientAddr(ip)) = req.extensions.get::<ClientAddr>() {
        return Some(ip.to_canonical());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip().to_canonical());
    }
    None
}

/// The `n`-th entry from the right of every `X-Forwarded-For` line joined.
fn forwarded(req: &RequestHead<'_>, n: usize) -> Option<IpAddr> {
    let mut entries: Vec<&str> = Vec::new();
    for value in req.headers.get_all(&X_FORWARDED_FOR) {
        let Ok(s) = value.to_str() else {
            // A trusted proxy never writes this; ignore the whole header.
            return None;
        };
        entries.extend(s.split(','));
    }
    if entries.is_empty() {
        return None;
    }
    let entry = entries[entries.len() - n.min(entries.len())].trim();
    parse_entry(entry)
}

/// `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:443`.
fn parse_entry(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .or_else(|_| s.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(xff: &[&str], peer: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::get("/");
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        let mut r = b.body(()).unwrap();
        if let Some(p) = peer {
            r.extensions_mut().insert(ClientAddr(p.parse().unwrap()));
        }
        r
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn spoofed_forwarded_for_is_ignored_by_default() {
        let r = req(&["1.1.1.1"], Some("10.0.0.1"));
        assert_eq!(
            ClientIp::new().resolve(&RequestHead::from_request(&r)),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn one_proxy_takes_the_last_entry() {
        let r = req(&["6.6.6.6, 1.1.1.1"], Some("10.0.0.1"));
        let h = RequestHead::from_request(&r);
        assert_eq!(ClientIp::behind_proxies(1).resolve(&h), ip("1.1.1.1"));
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let r = req(&["6.6.6.6", "1.1.1.1, 2.2.2.2"], None);
        let h = RequestHead::from_request(&r);
        assert_eq!(ClientIp::behind_proxies(2).resolve(&h), ip("1.1.1.1"));
        // More proxies than entries: the leftmost, as DRF.
        assert_eq!(ClientIp::behind_proxies(9).resolve(&h), ip("6.6.6.6"));
    }

    #[test]
    fn no_header_or_garbage_falls_back_to_the_peer() {
        let h1 = req(&[], Some("10.0.0.1"));
        assert_eq!(
            ClientIp::behind_proxies(1).resolve(&RequestHead::from_request(&h1)),
            ip("10.0.0.1")
        );
        let h2 = req(&["unknown"], Some("10.0.0.1"));
        assert_eq!(
            ClientIp::behind_proxies(1).resolve(&RequestHead::from_request(&h2)),
            ip("10.0.0.1")
        );
        let h3 = req(&[], None);
        assert_eq!(
            ClientIp::new().resolve(&RequestHead::from_request(&h3)),
            None
        );
    }

    #[test]
    fn ports_and_mapped_addresses_are_normalised() {
        assert_eq!(parse_entry("1.2.3.4:80"), ip("1.2.3.4"));
        assert_eq!(parse_entry("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(parse_entry("::ffff:1.2.3.4"), ip("1.2.3.4"));
    }

    #[cfg(feature = "axum")]
    #[test]
    fn reads_axum_connect_info() {
        let mut r = req(&[], None);
        let sa: SocketAddr = "192.0.2.1:5555".parse().unwrap();
        r.extensions_mut().insert(axum::extract::ConnectInfo(sa));
        assert_eq!(
            ClientIp::new().resolve(&RequestHead::from_request(&r)),
            ip("192.0.2.1")
        );
    }
}
