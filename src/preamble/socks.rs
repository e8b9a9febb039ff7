//! SOCKS proxies: SOCKS4, SOCKS4a and SOCKS5 (RFC 1928) with no
//! authentication or username/password (RFC 1929). After the proxy grants
//! the CONNECT, both directions carry the client's TLS.
//!
//! Input: the client's and the server's (proxy's) stream starts. Output:
//! `None` unless the client's stream begins with a well-formed SOCKS4
//! CONNECT request or SOCKS5 greeting, else a [`Verdict`]: TLS after the
//! request and the grant, with the destination the client asked for
//! (`host:port` for SOCKS4a and SOCKS5 names, the address otherwise) as the
//! authority; a refusal (SOCKS4 91–93, SOCKS5 no acceptable method, failed
//! authentication, a reply other than success) is [`Verdict::NoTls`].

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Kind, Pair, Preamble, Verdict, authority, tls};

const KIND: Kind = Kind::Socks;
/// Longest SOCKS4 user id or SOCKS4a host name read.
const MAX_FIELD: usize = 255;

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    match client.first()? {
        4 => socks4(client, server),
        5 => socks5(client, server),
        _ => None,
    }
}

fn need() -> Verdict {
    Verdict::NeedMore {
        kind: KIND,
        refused: false,
    }
}

/// Outcome of reading one field: present, needs more bytes, or not SOCKS.
enum Read<T> {
    Got(T),
    Need,
    No,
}

/// A NUL-terminated field at `b[at..]` (printable, at most MAX_FIELD bytes):
/// its bytes and the offset after the NUL.
fn nul_field(b: &[u8], at: usize) -> Read<(&[u8], usize)> {
    let rest = b.get(at..).unwrap_or(&[]);
    match rest.iter().take(MAX_FIELD + 1).position(|&c| c == 0) {
        Some(n) if rest[..n].iter().all(|c| c.is_ascii_graphic()) => {
            Read::Got((&rest[..n], at + n + 1))
        }
        Some(_) => Read::No,
        None if rest.len() > MAX_FIELD => Read::No,
        None => Read::Need,
    }
}

fn socks4(client: &[u8], server: &[u8]) -> Option<Verdict> {
    // VN=4 CD=1 DSTPORT(2) DSTIP(4) USERID NUL [HOST NUL]
    let Some(h) = client.get(..8) else {
        return (client.get(1).is_none_or(|&cd| cd == 1)).then(need);
    };
    if h[1] != 1 {
        return None;
    }
    let port = u16::from_be_bytes([h[2], h[3]]);
    let ip = Ipv4Addr::new(h[4], h[5], h[6], h[7]);
    let (_user, mut end) = match nul_field(client, 8) {
        Read::Got(f) => f,
        Read::Need => return Some(need()),
        Read::No => return None,
    };
    // SOCKS4a: 0.0.0.x (x != 0) means a host name follows.
    let dest = if h[4..7] == [0, 0, 0] && h[7] != 0 {
        match nul_field(client, end) {
            Read::Got((host, e)) => {
                end = e;
                format!("{}:{port}", String::from_utf8_lossy(host))
            }
            Read::Need => return Some(need()),
            Read::No => return Some(Verdict::GaveUp(KIND)),
        }
    } else {
        format!("{ip}:{port}")
    };
    // Reply: VN=0 CD DSTPORT DSTIP.
    let Some(reply) = server.get(..8) else {
        return Some(if server.first().is_some_and(|&v| v != 0) {
            Verdict::GaveUp(KIND)
        } else {
            need()
        });
    };
    Some(match reply {
        [0, 90, ..] => tunnel(end, 8, &dest),
        [0, 91..=93, ..] => Verdict::NoTls(KIND),
        _ => Verdict::GaveUp(KIND),
    })
}

fn socks5(client: &[u8], server: &[u8]) -> Option<Verdict> {
    // Greeting: VER=5 NMETHODS METHODS...
    let Some(&n) = client.get(1) else {
        return Some(need());
    };
    if n == 0 {
        return None;
    }
    let mut c = 2 + usize::from(n);
    let Some(methods) = client.get(2..c) else {
        return Some(need());
    };
    // Methods: 0 none, 1 GSSAPI, 2 username/password, 3-9 IANA, 0x80-0xfe private.
    if !methods
        .iter()
        .all(|&m| m <= 9 || (0x80..=0xfe).contains(&m))
    {
        return None;
    }
    // Method selection: VER=5 METHOD.
    let method = match server.get(..2) {
        // The proxy picks one of the offered methods, or none (0xff); any
        // other answer means these bytes were not a greeting (the proxy's
        // own "05 02 01 00 ..." reads like one).
        Some([5, m]) if *m == 0xff || methods.contains(m) => *m,
        None if server.first().is_none_or(|&v| v == 5) => return Some(need()),
        _ => return None,
    };
    let mut s = 2;
    match method {
        0 => {}
        2 => {
            // RFC 1929: VER=1 ULEN UNAME PLEN PASSWD, answered VER=1 STATUS.
            let ulen = match client.get(c..c + 2) {
                Some([1, ulen]) => *ulen,
                None => return Some(need()),
                Some(_) => return Some(Verdict::GaveUp(KIND)),
            };
            let p = c + 2 + usize::from(ulen);
            let Some(&plen) = client.get(p) else {
                return Some(need());
            };
            c = p + 1 + usize::from(plen);
            match server.get(s..s + 2) {
                None => return Some(need()),
                Some([1, 0]) => s += 2,
                Some([1, _]) => return Some(Verdict::NoTls(KIND)),
                Some(_) => return Some(Verdict::GaveUp(KIND)),
            }
        }
        0xff => return Some(Verdict::NoTls(KIND)),
        // GSSAPI and private methods encapsulate what follows: not read.
        _ => return Some(Verdict::GaveUp(KIND)),
    }
    // Request: VER=5 CMD=1 RSV=0 ATYP DST.ADDR DST.PORT.
    let (dest, request_end) = match address(client, c) {
        Read::Got(a) => a,
        Read::Need => return Some(need()),
        Read::No => return Some(Verdict::GaveUp(KIND)),
    };
    // Reply: VER=5 REP RSV=0 ATYP BND.ADDR BND.PORT.
    let reply_end = match address(server, s) {
        Read::Got((_, end)) => end,
        Read::Need => return Some(need()),
        Read::No => return Some(Verdict::GaveUp(KIND)),
    };
    Some(match server.get(s + 1) {
        Some(0) => tunnel(request_end, reply_end, &dest),
        _ => Verdict::NoTls(KIND),
    })
}

/// A SOCKS5 request or reply at `b[at..]` (VER=5, a command or reply code,
/// RSV=0, an address and a port): the address as `host:port` and the
/// offset after it. Only CONNECT (1) is a request this module follows.
fn address(b: &[u8], at: usize) -> Read<(String, usize)> {
    let Some(&[ver, _cmd, rsv, atyp]) =
        b.get(at..at + 4).and_then(|h| <&[u8; 4]>::try_from(h).ok())
    else {
        return if b.len() < at + 4 {
            Read::Need
        } else {
            Read::No
        };
    };
    if ver != 5 || rsv != 0 {
        return Read::No;
    }
    let a = at + 4;
    let (host, port_at) = match atyp {
        1 => match b.get(a..a + 4) {
            Some(ip) => (Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(), a + 4),
            None => return Read::Need,
        },
        3 => {
            let Some(&len) = b.get(a) else {
                return Read::Need;
            };
            match b.get(a + 1..a + 1 + usize::from(len)) {
                Some(name) => (
                    String::from_utf8_lossy(name).into_owned(),
                    a + 1 + usize::from(len),
                ),
                None => return Read::Need,
            }
        }
        4 => match b
            .get(a..a + 16)
            .and_then(|ip| <[u8; 16]>::try_from(ip).ok())
        {
            Some(ip) => (format!("[{}]", Ipv6Addr::from(ip)), a + 16),
            None => return Read::Need,
        },
        _ => return Read::No,
    };
    match b.get(port_at..port_at + 2) {
        Some(p) => Read::Got((
            format!("{host}:{}", u16::from_be_bytes([p[0], p[1]])),
            port_at + 2,
        )),
        None => Read::Need,
    }
}

fn tunnel(client_at: usize, server_at: usize, dest: &str) -> Verdict {
    Verdict::Tls(Preamble {
        authority: authority(dest.as_bytes()),
        ..tls(KIND, client_at, server_at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(v: Option<Verdict>) -> ([usize; 2], String) {
        match v {
            Some(Verdict::Tls(p)) => (p.tls_at, p.authority.unwrap_or_default().into()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn socks4_and_4a() {
        let req = [4, 1, 1, 0xbb, 192, 0, 2, 1, b'u', 0];
        let ok = [0, 90, 0, 0, 0, 0, 0, 0];
        assert_eq!(found(parse((&req, &ok))), ([10, 8], "192.0.2.1:443".into()));
        let mut req4a = vec![4, 1, 1, 0xbb, 0, 0, 0, 1, 0];
        req4a.extend(b"acct.blob.core.windows.net\0");
        assert_eq!(
            found(parse((&req4a, &ok))),
            ([req4a.len(), 8], "acct.blob.core.windows.net:443".into())
        );
        for cut in 1..req4a.len() {
            assert!(
                matches!(parse((&req4a[..cut], &ok)), Some(Verdict::NeedMore { .. })),
                "{cut}"
            );
        }
        assert_eq!(
            parse((&req, &[0, 91, 0, 0, 0, 0, 0, 0])),
            Some(Verdict::NoTls(KIND))
        );
        // BIND, or a user id that is not text: not SOCKS as we read it.
        assert_eq!(parse((&[4, 2, 1, 0xbb, 192, 0, 2, 1, 0], &ok)), None);
        assert_eq!(parse((&[4, 1, 1, 0xbb, 192, 0, 2, 1, 7, 0], &ok)), None);
    }

    #[test]
    fn socks5_no_auth_and_password() {
        let mut client = vec![5, 1, 0];
        let mut req = vec![5, 1, 0, 3, 26];
        req.extend(b"acct.blob.core.windows.net");
        req.extend([1, 0xbb]);
        client.extend(&req);
        let mut server = vec![5, 0];
        server.extend([5, 0, 0, 1, 192, 0, 2, 1, 0x10, 0x00]);
        assert_eq!(
            found(parse((&client, &server))),
            (
                [client.len(), server.len()],
                "acct.blob.core.windows.net:443".into()
            )
        );
        for cut in 1..client.len() {
            assert!(matches!(
                parse((&client[..cut], &server)),
                Some(Verdict::NeedMore { .. })
            ));
        }
        for cut in 0..server.len() {
            assert!(matches!(
                parse((&client, &server[..cut])),
                Some(Verdict::NeedMore { .. })
            ));
        }
        // Username/password, then an IPv6 destination.
        let mut client = vec![5, 2, 0, 2, 1, 1, b'u', 1, b'p'];
        let mut req6 = vec![5, 1, 0, 4];
        req6.extend(Ipv6Addr::LOCALHOST.octets());
        req6.extend([1, 0xbb]);
        client.extend(&req6);
        let server = [5, 2, 1, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            found(parse((&client, &server))),
            ([client.len(), server.len()], "[::1]:443".into())
        );
        assert_eq!(parse((&client, &[5, 2, 1, 1])), Some(Verdict::NoTls(KIND)));
        assert_eq!(parse((&[5, 1, 0], &[5, 0xff])), Some(Verdict::NoTls(KIND)));
        let refused = [5, 0, 5, 5, 0, 1, 0, 0, 0, 0, 0, 0];
        let mut c = vec![5, 1, 0];
        c.extend([5, 1, 0, 1, 192, 0, 2, 1, 1, 0xbb]);
        assert_eq!(parse((&c, &refused)), Some(Verdict::NoTls(KIND)));
        assert_eq!(parse((&[5, 0], b"")), None);
        assert_eq!(parse((&[5, 1, 0x42], b"")), None);
        // The proxy's side of an exchange read as a greeting: not SOCKS.
        let proxy_side = [5, 2, 1, 0, 5, 0, 0, 1, 192, 0, 2, 1, 0xde, 0x3c];
        assert_eq!(parse((&proxy_side, &[5, 3, 0, 1, 2])), None);
    }
}
