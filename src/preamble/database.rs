//! Database wrappers: PostgreSQL's SSLRequest and MySQL/MariaDB's SSL
//! request, after which the connection is TLS.
//!
//! Input: the client's and the server's stream starts. Output: `None`
//! unless the client's stream begins with PostgreSQL's SSLRequest (or
//! GSSENCRequest) message, or the server's with a MySQL protocol-10
//! greeting, else a [`Verdict`]. PostgreSQL: the server answers one byte,
//! `S` (TLS follows in both directions) or `N` (no TLS; after a refused
//! GSSENCRequest the client may still send an SSLRequest); PostgreSQL 17's
//! direct TLS opens with a ClientHello and needs no preamble. MySQL: the
//! server's greeting (packet 0) is followed by the client's 32-byte SSL
//! request (packet 1, CLIENT_SSL set), then TLS from both sides; a client
//! that answers the greeting with a full handshake response stays in clear
//! text ([`Verdict::NoTls`]).

use super::{Kind, Pair, Verdict, tls};

/// SSLRequest and GSSENCRequest: length 8, then the request codes.
const PG_SSL: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const PG_GSS: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
/// MySQL capability flag: the client wants TLS.
const CLIENT_SSL: u32 = 0x0800;

pub fn parse(pair: Pair<'_>) -> Option<Verdict> {
    postgres(pair).or_else(|| mysql(pair))
}

fn need(kind: Kind) -> Verdict {
    Verdict::NeedMore {
        kind,
        refused: false,
    }
}

/// Whether `b` is a prefix of (or starts with) `magic`.
fn starts(b: &[u8], magic: &[u8]) -> bool {
    let n = b.len().min(magic.len());
    n > 0 && b[..n] == magic[..n]
}

fn postgres((client, server): Pair<'_>) -> Option<Verdict> {
    const KIND: Kind = Kind::Postgres;
    let gss_first = starts(client, &PG_GSS);
    if !starts(client, &PG_SSL) && !gss_first {
        return None;
    }
    let (mut c, mut s) = (0usize, 0usize);
    if gss_first {
        if client.len() < 8 {
            return Some(need(KIND));
        }
        match server.first() {
            None => return Some(need(KIND)),
            Some(b'N') => {}
            // GSSAPI encryption, not TLS.
            Some(b'G') => return Some(Verdict::NoTls(KIND)),
            Some(_) => return Some(Verdict::GaveUp(KIND)),
        }
        c = 8;
        s = 1;
        match client.get(c..) {
            Some([]) | None => {
                return Some(Verdict::NeedMore {
                    kind: KIND,
                    refused: true,
                });
            }
            Some(rest) if !starts(rest, &PG_SSL) => return Some(Verdict::NoTls(KIND)),
            Some(_) => {}
        }
    }
    if client.len() < c + 8 {
        return Some(need(KIND));
    }
    Some(match server.get(s) {
        None => need(KIND),
        Some(b'S') => Verdict::Tls(tls(KIND, c + 8, s + 1)),
        // 'N', or an ErrorResponse from a server that knows no SSLRequest.
        Some(b'N' | b'E') => Verdict::NoTls(KIND),
        Some(_) => Verdict::GaveUp(KIND),
    })
}

/// A MySQL packet header at `b[at..]`: payload length and sequence id.
fn packet(b: &[u8], at: usize) -> Option<(usize, u8)> {
    match b.get(at..at + 4)? {
        [a, b2, c, seq] => Some((
            usize::from(*a) | usize::from(*b2) << 8 | usize::from(*c) << 16,
            *seq,
        )),
        _ => None,
    }
}

fn mysql((client, server): Pair<'_>) -> Option<Verdict> {
    const KIND: Kind = Kind::Mysql;
    // Greeting: packet 0, protocol 10, a NUL-terminated version string.
    let Some((len, seq)) = packet(server, 0) else {
        // Too short to tell: a greeting's first bytes are a length and 0.
        let may = !server.is_empty() && server.get(3).is_none_or(|&s| s == 0);
        return (may && server.len() < 4).then(|| need(KIND));
    };
    if seq != 0 || !(20..=1024).contains(&len) || server.get(4) != Some(&10) {
        return None;
    }
    let version = server.get(5..(4 + len).min(server.len()))?;
    let nul = version.iter().position(|&b| b == 0);
    let printable = |v: &[u8]| v.iter().all(|b| b.is_ascii_graphic());
    match nul {
        Some(n) if n > 0 && n < 64 && printable(&version[..n]) && version[0].is_ascii_digit() => {}
        None if version.len() < 64 && printable(version) => return Some(need(KIND)),
        _ => return None,
    }
    let server_at = 4 + len;
    if server.len() < server_at {
        return Some(need(KIND));
    }
    // The client's answer: packet 1.
    let Some((clen, cseq)) = packet(client, 0) else {
        return Some(need(KIND));
    };
    if cseq != 1 || clen < 4 {
        return Some(Verdict::GaveUp(KIND));
    }
    let Some(caps) = client.get(4..8) else {
        return Some(need(KIND));
    };
    let caps = u32::from_le_bytes([caps[0], caps[1], caps[2], caps[3]]);
    Some(if caps & CLIENT_SSL != 0 && clen == 32 {
        Verdict::Tls(tls(KIND, 4 + clen, server_at))
    } else {
        Verdict::NoTls(KIND)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(v: Option<Verdict>) -> [usize; 2] {
        match v {
            Some(Verdict::Tls(p)) => p.tls_at,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn postgres_ssl_request() {
        assert_eq!(at(parse((&PG_SSL, b"S"))), [8, 1]);
        assert_eq!(parse((&PG_SSL, b"N")), Some(Verdict::NoTls(Kind::Postgres)));
        assert!(matches!(
            parse((&PG_SSL[..5], b"")),
            Some(Verdict::NeedMore { .. })
        ));
        assert!(matches!(
            parse((&PG_SSL, b"")),
            Some(Verdict::NeedMore { .. })
        ));
        let both = [PG_GSS, PG_SSL].concat();
        assert_eq!(at(parse((&both, b"NS"))), [16, 2]);
        assert_eq!(parse((&PG_GSS, b"G")), Some(Verdict::NoTls(Kind::Postgres)));
        // A startup message (protocol 3.0) is not a preamble.
        assert_eq!(parse((&[0, 0, 0, 0x54, 0, 3, 0, 0], b"")), None);
    }

    fn greeting() -> Vec<u8> {
        let mut p = vec![10];
        p.extend(b"10.11.19-MariaDB-0+deb12u1\0");
        p.extend([1, 0, 0, 0]); // thread id
        p.extend([0x41; 8]);
        p.push(0);
        p.extend(0xffffu16.to_le_bytes()); // capabilities, CLIENT_SSL among them
        p.extend([0x2d, 2, 0, 0xff, 0x81, 21]);
        p.extend([0; 10]);
        p.extend([0x42; 13]);
        p.extend(b"mysql_native_password\0");
        let mut v = (p.len() as u32).to_le_bytes()[..3].to_vec();
        v.push(0);
        v.extend(p);
        v
    }

    #[test]
    fn mysql_ssl_request() {
        let g = greeting();
        let mut req = vec![32, 0, 0, 1];
        req.extend((0x0008_a20du32 | CLIENT_SSL).to_le_bytes());
        req.extend([0, 0, 0, 1, 45]);
        req.extend([0; 23]);
        assert_eq!(at(parse((&req, &g))), [36, g.len()]);
        for cut in 0..g.len() {
            let v = parse((b"", &g[..cut]));
            assert!(
                v.is_none() || matches!(v, Some(Verdict::NeedMore { .. })),
                "{cut}: {v:?}"
            );
        }
        assert!(matches!(
            parse((&req[..6], &g)),
            Some(Verdict::NeedMore { .. })
        ));
        // A full handshake response without CLIENT_SSL: clear text.
        let mut plain = vec![60, 0, 0, 1];
        plain.extend(0x0008_a20du32.to_le_bytes());
        plain.extend([0; 56]);
        assert_eq!(parse((&plain, &g)), Some(Verdict::NoTls(Kind::Mysql)));
        assert_eq!(parse((b"", b"\x20\0\0\0\x0a5.7")), Some(need(Kind::Mysql)));
        assert_eq!(parse((b"", b"HTTP/1.1 200 OK\r\n")), None);
    }
}
