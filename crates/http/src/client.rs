//! Who sent a request: the socket's peer, or, behind trusted proxies, the address they
//! forwarded in `X-Forwarded-For`.
//!
//! [`crate::serve`] puts a [`Client`] into every request before any route runs; handlers
//! read it with [`client`] or [`client_ip`]. `X-Forwarded-For` is believed only from a peer
//! in `EYE_HTTP_TRUSTED_PROXIES` (empty by default: never), since anyone can write any
//! address there. Each proxy appends the address it received the request from, so the list
//! is read from the right, past trusted proxies, to the first address that is not one:
//! whatever lies left of it was written by that client and proves nothing. An entry that
//! is not an address ends the walk at the last address known.

use ipnet::IpNet;
use serde::Deserialize;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use warp::http::HeaderMap;
use warp::Filter;

/// The header proxies append the address they received a request from to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Where a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The TCP peer: the client itself, or the nearest proxy.
    pub peer: SocketAddr,
    /// The client, as far as trusted proxies tell: the peer's address when it is not one.
    pub ip: IpAddr,
}

impl Client {
    /// The client behind `peer`, reading `X-Forwarded-For` in `headers` when `peer` is a
    /// trusted proxy.
    pub fn of(peer: SocketAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        Self {
            peer,
            ip: resolve(peer.ip(), headers, trusted),
        }
    }
}

/// The [`Client`] of the request, when it is served by [`crate::serve`] (always, outside
/// tests that call routes without a socket).
pub fn client() -> impl Filter<Extract = (Option<Client>,), Error = Infallible> + Copy {
    warp::ext::optional::<Client>()
}

/// The client's IP address (see [`Client::ip`]), when served by [`crate::serve`].
pub fn client_ip() -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Copy {
    client().map(|c: Option<Client>| c.map(|c| c.ip))
}

/// `EYE_HTTP_TRUSTED_PROXIES`: addresses and CIDR blocks, comma-separated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TrustedProxies(Vec<IpNet>);

/// An entry of `EYE_HTTP_TRUSTED_PROXIES` that is neither an address nor a block.
#[derive(Debug, thiserror::Error)]
#[error(
    "EYE_HTTP_TRUSTED_PROXIES: {entry:?} is neither an IP address nor a CIDR block \
     (10.0.0.0/8, fd00::/8)"
)]
pub struct TrustedProxyError {
    entry: String,
    #[source]
    source: ipnet::AddrParseError,
}

impl FromStr for TrustedProxies {
    type Err = TrustedProxyError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        if list.trim().is_empty() {
            return Ok(Self::default());
        }
        let entry = |entry: &str| {
            let entry = entry.trim();
            match IpAddr::from_str(entry) {
                Ok(ip) => Ok(IpNet::from(ip.to_canonical())),
                Err(_) => IpNet::from_str(entry).map_err(|source| TrustedProxyError {
                    entry: entry.to_owned(),
                    source,
                }),
            }
        };
        list.split(',')
            .map(entry)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl TryFrom<String> for TrustedProxies {
    type Error = TrustedProxyError;

    fn try_from(list: String) -> Result<Self, Self::Error> {
        list.parse()
    }
}

impl TrustedProxies {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client's address for a request from `peer` carrying `headers` (module docs).
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    // A dual-stack listener sees IPv4 peers as `::ffff:a.b.c.d`; configured blocks and
    // forwarded addresses are written plainly.
    let mut ip = peer.to_canonical();
    // Several lines form one list, in order (RFC 9110 §5.3).
    for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        // A line that is not text holds no address, like an empty entry.
        for hop in line.to_str().unwrap_or("").rsplit(',') {
            if !trusted.contains(ip) {
                return ip;
            }
            match forwarded(hop) {
                Some(next) => ip = next,
                None => return ip,
            }
        }
    }
    ip
}

/// One `X-Forwarded-For` entry: an address, or an address and port as some proxies write.
fn forwarded(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    IpAddr::from_str(hop)
        .or_else(|_| SocketAddr::from_str(hop).map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                X_FORWARDED_FOR,
                HeaderValue::from_bytes(line).expect("a legal header value"),
            );
        }
        headers
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_wrote() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.168.1.1, fd00::/8".parse().expect("list");
        let cases: [(&str, &str, &[&[u8]], &str); 14] = [
            ("no proxy, no header", "203.0.113.7", &[], "203.0.113.7"),
            (
                "spoofed by an untrusted peer: ignored",
                "203.0.113.7",
                &[b"198.51.100.1"],
                "203.0.113.7",
            ),
            (
                "one trusted proxy",
                "10.0.0.2",
                &[b"203.0.113.7"],
                "203.0.113.7",
            ),
            (
                "two trusted proxies",
                "10.0.0.2",
                &[b"203.0.113.7, 192.168.1.1"],
                "203.0.113.7",
            ),
            (
                "what the client wrote left of its own address is ignored",
                "10.0.0.2",
                &[b"1.2.3.4, 203.0.113.7, 192.168.1.1"],
                "203.0.113.7",
            ),
            (
                "several lines are one list",
                "10.0.0.2",
                &[b"1.2.3.4, 203.0.113.7", b"192.168.1.1"],
                "203.0.113.7",
            ),
            (
                "every hop trusted: the leftmost",
                "10.0.0.2",
                &[b"10.1.1.1, 10.2.2.2"],
                "10.1.1.1",
            ),
            (
                "trusted proxy without the header",
                "10.0.0.2",
                &[],
                "10.0.0.2",
            ),
            (
                "malformed last entry: the proxy itself",
                "10.0.0.2",
                &[b"203.0.113.7, not-an-address"],
                "10.0.0.2",
            ),
            (
                "malformed behind a trusted hop: that hop",
                "10.0.0.2",
                &[b"garbage, 192.168.1.1"],
                "192.168.1.1",
            ),
            (
                "malformed left of the client: never reached",
                "10.0.0.2",
                &[b"garbage, 203.0.113.7"],
                "203.0.113.7",
            ),
            ("empty value", "10.0.0.2", &[b""], "10.0.0.2"),
            (
                "bytes outside ASCII",
                "10.0.0.2",
                &[b"203.0.113.7, \xff"],
                "10.0.0.2",
            ),
            (
                "ports and IPv6, mapped peers",
                "::ffff:10.0.0.2",
                &[b"[2001:db8::1]:443, fd00::5, 198.51.100.1:8080"],
                "198.51.100.1",
            ),
        ];
        for (case, peer, lines, want) in cases {
            let peer: IpAddr = peer.parse().expect("peer");
            let got = resolve(peer, &headers(lines), &trusted);
            assert_eq!(got.to_string(), want, "{case}");
        }
        let ipv6: TrustedProxies = "fd00::/8".parse().expect("list");
        let got = resolve(
            "fd00::1".parse().expect("peer"),
            &headers(&[b"2001:db8::1"]),
            &ipv6,
        );
        assert_eq!(got.to_string(), "2001:db8::1");
    }

    #[test]
    fn nothing_is_trusted_by_default() {
        let none = TrustedProxies::default();
        for peer in ["127.0.0.1", "10.0.0.2", "::1"] {
            let peer: IpAddr = peer.parse().expect("peer");
            assert_eq!(
                resolve(peer, &headers(&[b"203.0.113.7"]), &none),
                peer,
                "{peer}"
            );
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks() {
        let parsed: TrustedProxies = " 10.0.0.0/8,127.0.0.1 ,::1, fd00::/8 "
            .parse()
            .expect("list");
        assert_eq!(
            parsed.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"]
        );
        assert!(TrustedProxies::from_str("").expect("empty").is_empty());
        assert!(TrustedProxies::from_str("  ").expect("blank").is_empty());
        for bad in [
            "10.0.0.0/33",
            "proxy.internal",
            "10.0.0.1,",
            "10.0.0.1,,10.0.0.2",
        ] {
            let e = TrustedProxies::from_str(bad).expect_err(bad).to_string();
            assert!(e.contains("CIDR"), "{bad}: {e}");
        }
    }
}
