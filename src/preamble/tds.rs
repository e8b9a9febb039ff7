//! TDS 7.x (Microsoft SQL Server, Azure SQL): the client's PRELOGIN and the
//! server's answer negotiate encryption, then the TLS handshake travels
//! inside TDS PRELOGIN packets (MS-TDS 2.2.6.5): each packet's 8-byte header
//! is followed by raw handshake bytes. Once the handshake ends, TLS records
//! follow without TDS headers. (TDS 8.0 is TLS from the first byte and needs
//! no preamble.)
//!
//! Input: the client's and the server's stream starts. Output: `None` unless
//! the client's stream begins with a well-formed PRELOGIN packet (type 0x12,
//! options starting with VERSION, a terminator, offsets inside the packet),
//! else a [`Verdict`]: TLS after the two PRELOGIN messages, framed in TDS
//! packets ([`Framing::Tds`]: [`unwrap`] gives the handshake bytes), or no
//! TLS when the server does not support encryption (or neither side wants
//! it). [`unwrap`] joins the payloads of consecutive PRELOGIN packets and
//! stops at the first packet of another type.

use super::{Framing, Kind, Pair, Preamble, Verdict, tls};

const KIND: Kind = Kind::Tds;
const HEADER: usize = 8;
const PRELOGIN: u8 = 0x12;
const TABULAR_RESULT: u8 = 0x04;
const OPT_VERSION: u8 = 0x00;
const OPT_ENCRYPTION: u8 = 0x01;
const TERMINATOR: u8 = 0xff;
const ENCRYPT_OFF: u8 = 0x00;
const ENCRYPT_NOT_SUP: u8 = 0x02;

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    let need = Verdict::NeedMore {
        kind: KIND,
        refused: false,
    };
    // The client's PRELOGIN packet.
    let Some((ctype, status, clen)) = header(client) else {
        let start = client.first() == Some(&PRELOGIN) && client.get(1).is_none_or(|&s| s <= 1);
        return start.then_some(need);
    };
    if ctype != PRELOGIN || status & !0x01 != 0 || clen < HEADER + 6 {
        return None;
    }
    let Some(options) = client.get(HEADER..clen) else {
        // A first packet that begins like a PRELOGIN: wait for the rest.
        return (client.len() < clen && client.get(HEADER).is_none_or(|&t| t == OPT_VERSION))
            .then_some(need);
    };
    let client_encryption = prelogin_option(options, OPT_ENCRYPTION)?;
    // The server's answer: a tabular result holding its PRELOGIN options.
    let Some((stype, _, slen)) = header(server) else {
        return Some(if server.len() < HEADER {
            need
        } else {
            Verdict::GaveUp(KIND)
        });
    };
    if stype != TABULAR_RESULT || slen < HEADER {
        return Some(Verdict::GaveUp(KIND));
    }
    let Some(answer) = server.get(HEADER..slen) else {
        return Some(need);
    };
    let Some(server_encryption) = prelogin_option(answer, OPT_ENCRYPTION) else {
        return Some(Verdict::GaveUp(KIND));
    };
    let client_off = client_encryption.first() == Some(&ENCRYPT_NOT_SUP);
    let no_tls = match server_encryption.first() {
        Some(&ENCRYPT_NOT_SUP) | None => true,
        Some(&ENCRYPT_OFF) => client_off,
        Some(_) => false,
    };
    if no_tls {
        return Some(Verdict::NoTls(KIND));
    }
    Some(Verdict::Tls(Preamble {
        framing: Framing::Tds,
        ..tls(KIND, clen, slen)
    }))
}

/// A TDS packet header: type, status, length (header included).
fn header(b: &[u8]) -> Option<(u8, u8, usize)> {
    match b.get(..HEADER)? {
        [t, s, hi, lo, ..] => Some((*t, *s, usize::from(u16::from_be_bytes([*hi, *lo])))),
        _ => None,
    }
}

/// The data of option `token` in a PRELOGIN option list (`None` when the
/// list is malformed: it must start with VERSION, end with the terminator,
/// and point inside itself).
fn prelogin_option(options: &[u8], token: u8) -> Option<&[u8]> {
    if options.first() != Some(&OPT_VERSION) {
        return None;
    }
    let mut found: &[u8] = &[];
    let mut at = 0;
    loop {
        let t = *options.get(at)?;
        if t == TERMINATOR {
            return Some(found);
        }
        let [oh, ol, lh, ll] = *options.get(at + 1..at + 5)? else {
            return None;
        };
        let off = usize::from(u16::from_be_bytes([oh, ol]));
        let len = usize::from(u16::from_be_bytes([lh, ll]));
        let data = options.get(off..off + len)?;
        if t == token {
            found = data;
        }
        at += 5;
    }
}

/// The handshake bytes carried by the TDS packets at the start of `framed`
/// (appended to `out`): the payloads of consecutive PRELOGIN packets, the
/// last one possibly incomplete; a packet of another type ends them. What
/// `out` receives for a longer `framed` starts with what it received for a
/// shorter one, so a record reader's position in it stays valid.
pub fn unwrap(framed: &[u8], out: &mut Vec<u8>) {
    let mut at = 0;
    while let Some((t, _, len)) = header(framed.get(at..).unwrap_or(&[])) {
        if t != PRELOGIN || len < HEADER {
            return;
        }
        let end = (at + len).min(framed.len());
        out.extend_from_slice(&framed[at + HEADER..end]);
        if end < at + len {
            return;
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(t: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 1];
        v.extend(((payload.len() + HEADER) as u16).to_be_bytes());
        v.extend([0, 0, 1, 0]);
        v.extend(payload);
        v
    }

    /// PRELOGIN options: VERSION (6 bytes), ENCRYPTION (1 byte), terminator.
    fn prelogin(encryption: u8) -> Vec<u8> {
        let mut o = vec![
            OPT_VERSION,
            0,
            11,
            0,
            6,
            OPT_ENCRYPTION,
            0,
            17,
            0,
            1,
            TERMINATOR,
        ];
        o.extend([15, 0, 0x07, 0xd0, 0, 0]);
        o.push(encryption);
        o
    }

    #[test]
    fn tds_prelogin_then_framed_tls() {
        let c = packet(PRELOGIN, &prelogin(1));
        let s = packet(TABULAR_RESULT, &prelogin(1));
        let Some(Verdict::Tls(p)) = parse((&c, &s)) else {
            panic!("{:?}", parse((&c, &s)));
        };
        assert_eq!((p.tls_at, p.framing), ([c.len(), s.len()], Framing::Tds));
        for cut in 1..c.len() {
            assert!(
                matches!(parse((&c[..cut], b"")), Some(Verdict::NeedMore { .. })),
                "{cut}"
            );
        }
        for cut in 0..s.len() {
            assert!(matches!(
                parse((&c, &s[..cut])),
                Some(Verdict::NeedMore { .. })
            ));
        }
        // Encryption not supported by the server, or off on both sides.
        let no = packet(TABULAR_RESULT, &prelogin(ENCRYPT_NOT_SUP));
        assert_eq!(parse((&c, &no)), Some(Verdict::NoTls(KIND)));
        let c_off = packet(PRELOGIN, &prelogin(ENCRYPT_NOT_SUP));
        let s_off = packet(TABULAR_RESULT, &prelogin(ENCRYPT_OFF));
        assert_eq!(parse((&c_off, &s_off)), Some(Verdict::NoTls(KIND)));
        // Not TDS: another first packet type, options without VERSION.
        assert_eq!(parse((&packet(0x10, &prelogin(1)), &s)), None);
        assert_eq!(
            parse((&packet(PRELOGIN, &[OPT_ENCRYPTION, 0, 5, 0, 1, 0xff]), &s)),
            None
        );
    }

    #[test]
    fn tds_unwrap_joins_payloads_and_stops_at_raw_tls() {
        let hello = [22, 3, 1, 0, 4, 1, 0, 0, 0];
        let mut framed = packet(PRELOGIN, &hello[..5]);
        framed.extend(packet(PRELOGIN, &hello[5..]));
        framed.extend([23, 3, 3, 0, 1, 0]); // a raw record after the handshake
        let mut out = Vec::new();
        unwrap(&framed, &mut out);
        assert_eq!(out, hello);
        // Any prefix unwraps to a prefix.
        for cut in 0..framed.len() {
            let mut part = Vec::new();
            unwrap(&framed[..cut], &mut part);
            assert!(out.starts_with(&part), "{cut}");
        }
    }
}
