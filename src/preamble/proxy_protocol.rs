//! The PROXY protocol (HAProxy, versions 1 and 2): a load balancer opens
//! each connection to its backend with a header naming the original client,
//! then relays the client's bytes, TLS included.
//!
//! Input: the client's (load balancer's) and the server's stream starts.
//! Output: `None` when the client's stream does not begin with a PROXY
//! header, else a [`Verdict`]: TLS after the header (the server's stream is
//! TLS from its first byte), with the original client address (`PROXY
//! TCP4/TCP6` and v2 `PROXY` over TCP/IPv4 or IPv6; `UNKNOWN` and `LOCAL`
//! carry none). A header longer than the protocol allows (107 bytes for v1,
//! 16 + 65535 for v2) or broken is a give-up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Kind, Pair, Verdict, line_end, tls, tls_follows, trim_eol};

const KIND: Kind = Kind::ProxyProtocol;
const V1: &[u8] = b"PROXY ";
const V1_MAX: usize = 107;
const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

pub fn parse((client, _server): Pair<'_>) -> Option<Verdict> {
    if client.is_empty() {
        return None;
    }
    let n = client.len().min(V2.len());
    if client[..n] == V2[..n] {
        return Some(if n < V2.len() { need() } else { v2(client) });
    }
    let n = client.len().min(V1.len());
    if client[..n] == V1[..n] {
        return Some(if n < V1.len() { need() } else { v1(client) });
    }
    None
}

fn need() -> Verdict {
    Verdict::NeedMore {
        kind: KIND,
        refused: false,
    }
}

fn v1(client: &[u8]) -> Verdict {
    let Some(end) = line_end(&client[..client.len().min(V1_MAX)]) else {
        return if client.len() >= V1_MAX {
            Verdict::GaveUp(KIND)
        } else {
            need()
        };
    };
    let line = trim_eol(&client[..end]);
    let Ok(text) = std::str::from_utf8(line) else {
        return Verdict::GaveUp(KIND);
    };
    let fields: Vec<&str> = text.split(' ').collect();
    let src = match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: Option<IpAddr> = match *proto {
                "TCP4" => src.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
                _ => src.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            };
            match (ip, sport.parse::<u16>()) {
                (Some(ip), Ok(port)) => Some(SocketAddr::new(ip, port)),
                _ => return Verdict::GaveUp(KIND),
            }
        }
        _ => return Verdict::GaveUp(KIND),
    };
    after_header(client, end, src)
}

fn v2(client: &[u8]) -> Verdict {
    let Some(&[ver_cmd, fam, hi, lo]) = client.get(12..16) else {
        return need();
    };
    if ver_cmd >> 4 != 2 || ver_cmd & 0x0f > 1 {
        return Verdict::GaveUp(KIND);
    }
    let len = 16 + usize::from(u16::from_be_bytes([hi, lo]));
    let Some(addrs) = client.get(16..len) else {
        return need();
    };
    let src = match (ver_cmd & 0x0f, fam) {
        // PROXY over TCP/IPv4 and TCP/IPv6.
        (1, 0x11) if addrs.len() >= 12 => {
            let ip = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([addrs[8], addrs[9]]),
            ))
        }
        (1, 0x21) if addrs.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addrs[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                u16::from_be_bytes([addrs[32], addrs[33]]),
            ))
        }
        (1, 0x11 | 0x21) => return Verdict::GaveUp(KIND),
        // LOCAL (health checks), UNSPEC, UDP, UNIX: no client address.
        _ => None,
    };
    after_header(client, len, src)
}

/// TLS after a header of `len` bytes (what follows must look like TLS: the
/// relayed bytes of anything else are not this module's business).
fn after_header(client: &[u8], len: usize, src: Option<SocketAddr>) -> Verdict {
    match tls_follows(client.get(len..).unwrap_or(&[])) {
        None => return need(),
        Some(false) => return Verdict::NoTls(KIND),
        Some(true) => {}
    }
    let mut p = tls(KIND, len, 0);
    p.proxied_src = src;
    Verdict::Tls(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = &[22, 3, 1, 0, 4, 1, 0, 0, 0];

    fn found(v: Option<Verdict>) -> (usize, Option<SocketAddr>) {
        match v {
            Some(Verdict::Tls(p)) => (p.tls_at[0], p.proxied_src),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proxy_v1() {
        let h = b"PROXY TCP4 198.51.100.7 192.0.2.1 51234 443\r\n";
        let s = [&h[..], HELLO].concat();
        assert_eq!(
            found(parse((&s, b""))),
            (h.len(), Some("198.51.100.7:51234".parse().unwrap()))
        );
        let h6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 443\r\n";
        let s = [&h6[..], HELLO].concat();
        assert_eq!(
            found(parse((&s, b""))),
            (h6.len(), Some("[2001:db8::7]:51234".parse().unwrap()))
        );
        assert_eq!(
            found(parse((b"PROXY UNKNOWN\r\n\x16\x03", b""))),
            (15, None)
        );
        // The header alone: TLS is not known to follow yet.
        assert!(matches!(parse((h, b"")), Some(Verdict::NeedMore { .. })));
        for cut in 1..h.len() {
            assert!(matches!(
                parse((&h[..cut], b"")),
                Some(Verdict::NeedMore { .. })
            ));
        }
        assert_eq!(
            parse((b"PROXY TCP4 999.1.1.1 192.0.2.1 1 443\r\n", b"")),
            Some(Verdict::GaveUp(KIND))
        );
        assert_eq!(parse((&[b'P'; 200], b"")), None);
        let long = [&b"PROXY "[..], &[b'x'; 200]].concat();
        assert_eq!(parse((&long, b"")), Some(Verdict::GaveUp(KIND)));
        let plain = [&h[..], b"GET / HTTP/1.1\r\n"].concat();
        assert_eq!(parse((&plain, b"")), Some(Verdict::NoTls(KIND)));
    }

    #[test]
    fn proxy_v2() {
        let mut h = V2.to_vec();
        h.extend([0x21, 0x11, 0, 12 + 5]);
        h.extend([198, 51, 100, 7, 192, 0, 2, 1, 0xc8, 0x22, 1, 0xbb]);
        h.extend([0x04, 0, 2, 0xaa, 0xbb]); // a TLV
        let s = [&h[..], HELLO].concat();
        assert_eq!(
            found(parse((&s, b""))),
            (h.len(), Some("198.51.100.7:51234".parse().unwrap()))
        );
        for cut in 1..h.len() {
            assert!(matches!(
                parse((&h[..cut], b"")),
                Some(Verdict::NeedMore { .. })
            ));
        }
        let mut local = V2.to_vec();
        local.extend([0x20, 0x00, 0, 0, 0x16, 0x03]);
        assert_eq!(found(parse((&local, b""))), (16, None));
        let mut bad = V2.to_vec();
        bad.extend([0x31, 0x11, 0, 0]);
        assert_eq!(parse((&bad, b"")), Some(Verdict::GaveUp(KIND)));
        let mut short = V2.to_vec();
        short.extend([0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse((&short, b"")), Some(Verdict::GaveUp(KIND)));
    }
}
