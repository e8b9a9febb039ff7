//! TLS after an opening no parser knows (NoMachine's `NXSH-` banner,
//! Gnutella's `Upgrade: TLS/1.0`, a vendor's own greeting): the first bytes
//! of each direction are searched for a ClientHello record from the client
//! and, from the server, a ServerHello or an alert that answers it.
//!
//! Input: the client's and the server's stream starts (the client is known
//! from the SYN; without it nothing is searched). Output: a [`Verdict`]:
//! TLS at the two records' offsets ([`Kind::Unknown`]), more bytes needed,
//! or [`Verdict::Absent`] when neither happens within [`WINDOW`] bytes.
//!
//! A claim needs both sides, each record's lengths consistent with the
//! messages inside: a ClientHello whose record length covers its handshake
//! length, with a TLS version, a session id of at most 32 bytes and a
//! non-empty even cipher-suite list that fit the message; and a ServerHello
//! of the same shape, or an alert record of exactly two bytes with a known
//! level. Plain traffic carries such a pair by chance about never; the
//! shipped captures and public corpora measure it (the operator guide).

use super::{Kind, Pair, Verdict, tls};

/// How far into each direction the records are looked for.
pub const WINDOW: usize = 4096;

const KIND: Kind = Kind::Unknown;

fn need() -> Verdict {
    Verdict::NeedMore {
        kind: KIND,
        refused: false,
    }
}

/// What starts at an offset of a stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// A record that fits the message sought.
    Found,
    /// Bytes that may still grow into one.
    Partial,
    No,
}

/// A TLS record header for `content` at the start of `b`: its length.
fn record(b: &[u8], content: u8) -> Result<usize, Shape> {
    match *b {
        [t, ..] if t != content => Err(Shape::No),
        [_, maj, ..] if maj != 3 => Err(Shape::No),
        [_, _, min, ..] if min > 4 => Err(Shape::No),
        [_, _, _, hi, lo, ..] => {
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            if len == 0 || len > 16384 + 2048 {
                Err(Shape::No)
            } else {
                Ok(len)
            }
        }
        _ => Err(Shape::Partial),
    }
}

/// A ClientHello (`hs_type` 1) or ServerHello (2) record at the start of
/// `b`: the handshake header within the record, a TLS version, the random,
/// a session id of at most 32 bytes, then for a ClientHello a non-empty
/// even cipher-suite list and compression methods, for a ServerHello one
/// suite and one compression method, all inside the handshake length.
fn hello(b: &[u8], hs_type: u8) -> Shape {
    let rec = match record(b, 22) {
        Ok(len) => len,
        Err(s) => return s,
    };
    let body = &b[5..];
    let Some(&[t, h0, h1, h2]) = body.get(..4) else {
        return Shape::Partial;
    };
    let hs_len = (usize::from(h0) << 16) | (usize::from(h1) << 8) | usize::from(h2);
    if t != hs_type || hs_len + 4 > rec || hs_len < 38 {
        return Shape::No;
    }
    let msg = &body[4..body.len().min(4 + hs_len)];
    let complete = msg.len() == hs_len;
    // version, random
    match msg.get(..2) {
        Some(&[3, minor]) if minor <= 4 => {}
        Some(_) => return Shape::No,
        None => return Shape::Partial,
    }
    let Some(&sid) = msg.get(34) else {
        return Shape::Partial;
    };
    if sid > 32 {
        return Shape::No;
    }
    let at = 35 + usize::from(sid);
    if at > hs_len {
        return Shape::No;
    }
    if hs_type == 2 {
        // cipher suite (2), compression method (1)
        return match at + 3 <= hs_len {
            false => Shape::No,
            true if msg.len() >= at + 3 => Shape::Found,
            true => Shape::Partial,
        };
    }
    let Some(&[c0, c1]) = msg.get(at..at + 2) else {
        return if complete { Shape::No } else { Shape::Partial };
    };
    let suites = usize::from(u16::from_be_bytes([c0, c1]));
    if suites == 0 || suites % 2 != 0 || at + 2 + suites + 2 > hs_len {
        return Shape::No;
    }
    match msg.get(at + 2 + suites) {
        Some(&n) if n >= 1 && at + 2 + suites + 1 + usize::from(n) <= hs_len => Shape::Found,
        Some(_) => Shape::No,
        None => Shape::Partial,
    }
}

/// An alert record at the start of `b`: two bytes, level warning or fatal.
fn alert(b: &[u8]) -> Shape {
    match record(b, 21) {
        Ok(2) => match b.get(5) {
            Some(1 | 2) => Shape::Found,
            Some(_) => Shape::No,
            None => Shape::Partial,
        },
        Ok(_) => Shape::No,
        Err(s) => s,
    }
}

/// The first offset within [`WINDOW`] where `is` finds its record, or
/// whether an offset may still become one once more bytes come. An offset
/// not decided yet stops the search there, so the offset found is the same
/// however the stream was segmented.
fn find(b: &[u8], is: impl Fn(&[u8]) -> Shape) -> (Option<usize>, bool) {
    for at in 0..b.len().min(WINDOW) {
        if b[at] != 22 && b[at] != 21 {
            continue;
        }
        match is(&b[at..]) {
            Shape::Found => return (Some(at), false),
            Shape::Partial => return (None, true),
            Shape::No => {}
        }
    }
    (None, false)
}

/// Searches the client's and the server's stream starts (client first).
pub fn search((client, server): Pair<'_>) -> Verdict {
    let (hello_at, hello_may) = find(client, |b| hello(b, 1));
    let Some(c) = hello_at else {
        let more = hello_may || (client.len() < WINDOW && server.len() < WINDOW);
        return if more { need() } else { Verdict::Absent };
    };
    match answer(server) {
        // TLS from the first byte of both directions is no preamble.
        Ok(0) if c == 0 => Verdict::Absent,
        Ok(s) => Verdict::Tls(tls(KIND, c, s)),
        Err(true) => need(),
        Err(false) => Verdict::Absent,
    }
}

/// Where the server's answer (a ServerHello or an alert record) starts in
/// its stream; `Err(true)` while it may still come within [`WINDOW`],
/// `Err(false)` when it did not.
pub fn answer(server: &[u8]) -> Result<usize, bool> {
    let (at, may) = find(server, |b| match hello(b, 2) {
        Shape::No => alert(b),
        s => s,
    });
    at.ok_or(may || server.len() < WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record (TLS 1.0 record, TLS 1.2 hello).
    fn client_hello() -> Vec<u8> {
        crate::tls::craft::client_hello(0x0303, &[])
    }

    fn server_hello() -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([9; 32]);
        body.push(0);
        body.extend([0x00, 0x2f, 0]);
        let mut hs = vec![2, 0, 0, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![22, 3, 3, 0, hs.len() as u8];
        rec.extend(hs);
        rec
    }

    #[test]
    fn unknown_opening_then_tls() {
        // Gnutella's upgrade, NoMachine's banner.
        let (ask, ok) = (
            &b"GNUTELLA CONNECT/0.6\r\nUpgrade: TLS/1.0\r\n\r\n"[..],
            &b"GNUTELLA/0.6 101 Switching\r\nUpgrade: TLS/1.0\r\n\r\n"[..],
        );
        let c = [ask, &client_hello()].concat();
        let s = [ok, &server_hello()].concat();
        assert_eq!(
            search((&c, &s)),
            Verdict::Tls(tls(Kind::Unknown, ask.len(), ok.len()))
        );
        let s = [&b"NXSH-1.0.0\n"[..], &server_hello()].concat();
        assert_eq!(
            search((&client_hello(), &s)),
            Verdict::Tls(tls(Kind::Unknown, 0, 11))
        );
        // An alert answers too.
        let s = [&b"HELLO\n"[..], &[21, 3, 3, 0, 2, 2, 70][..]].concat();
        assert_eq!(
            search((&c, &s)),
            Verdict::Tls(tls(Kind::Unknown, ask.len(), 6))
        );
        // Pieces wait; TLS from the first byte on both sides is no preamble.
        for cut in 0..c.len() {
            assert!(matches!(search((&c[..cut], b"")), Verdict::NeedMore { .. }));
        }
        assert_eq!(search((&client_hello(), &server_hello())), Verdict::Absent);
    }

    #[test]
    fn plain_traffic_is_not_claimed() {
        // A hello-shaped prefix inside text, lengths that do not fit.
        let mut fake = b"GET / HTTP/1.1\r\n\x16\x03\x01\x00\x05\x01\x00\x00\x40\x03\x03".to_vec();
        fake.extend([0; 64]);
        assert!(matches!(
            search((&fake, b"HTTP/1.1 200 OK\r\n")),
            Verdict::NeedMore { .. }
        ));
        let big = vec![b'x'; WINDOW];
        assert_eq!(search((&big, b"")), Verdict::Absent);
        assert_eq!(search((b"GET /\r\n", &big)), Verdict::Absent);
        // A hello no answer follows within the window: no claim.
        let c = [&b"X\n"[..], &client_hello()].concat();
        assert_eq!(search((&c, &big)), Verdict::Absent);
        // Random bytes.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..WINDOW + 2048)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(search((&noise, &noise)), Verdict::Absent);
    }
}
