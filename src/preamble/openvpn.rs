//! OpenVPN over TCP: each packet is prefixed with its 16-bit length; the
//! client's P_CONTROL_HARD_RESET_CLIENT and the server's
//! P_CONTROL_HARD_RESET_SERVER open the session, then the TLS handshake
//! travels in the payloads of P_CONTROL_V1 packets, in the order of their
//! message packet-ids (the reliability layer may repeat a packet). Each
//! control packet holds the opcode and key id, the 8-byte session id, with
//! `tls-auth` an HMAC and a replay packet-id and time, the ACK array (with
//! the peer's session id when not empty), the message packet-id and the
//! payload. With `tls-crypt` (and `tls-crypt-v2`) everything after the
//! session id is encrypted: the TLS inside cannot be read, and the flow is
//! counted as hidden.
//!
//! Input: the client's and the server's stream starts. Output: `None` unless
//! the client's stream begins with a hard-reset packet of plausible length,
//! else a [`Verdict`]: TLS framed in control packets
//! ([`Framing::OpenVpn`], with the HMAC length found in the client's first
//! packet; [`unwrap`] gives the handshake bytes), hidden TLS, or a give-up
//! when the server does not answer with its hard reset.

use super::{Framing, Kind, Pair, Preamble, Verdict, tls};

const KIND: Kind = Kind::Openvpn;
const HARD_RESET_CLIENT_V1: u8 = 1;
const HARD_RESET_SERVER_V1: u8 = 2;
const CONTROL_V1: u8 = 4;
const HARD_RESET_CLIENT_V2: u8 = 7;
const HARD_RESET_SERVER_V2: u8 = 8;
const HARD_RESET_CLIENT_V3: u8 = 10;
/// HMAC lengths `tls-auth` may use (MD5 to SHA-512), shortest first.
const HMAC_LENGTHS: [usize; 6] = [16, 20, 28, 32, 48, 64];
/// The longest hard-reset packet: the fixed fields, the longest HMAC, an
/// ACK array, and early-negotiation TLVs or a tls-crypt-v2 wrapped key.
const MAX_RESET: usize = 1024;

fn need() -> Verdict {
    Verdict::NeedMore {
        kind: KIND,
        refused: false,
    }
}

/// The first packet of `b`: (opcode, key id, body after the length prefix);
/// `Err(true)` while it is not whole, `Err(false)` when it cannot be one.
fn packet(b: &[u8]) -> Result<(u8, u8, &[u8]), bool> {
    let Some(&[hi, lo]) = b.get(..2) else {
        // The high byte of a length of at most MAX_RESET.
        return Err(b
            .first()
            .is_none_or(|&hi| usize::from(hi) <= MAX_RESET >> 8));
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if !(10..=MAX_RESET).contains(&len) {
        return Err(false);
    }
    match b.get(2..2 + len) {
        Some(body) => Ok((body[0] >> 3, body[0] & 0x07, body)),
        None => Err(true),
    }
}

/// The HMAC length of a client hard reset whose ACK array is empty and
/// whose message packet-id is 0, as every session's first packet is: 0
/// without `tls-auth`. `None`: those fields are not in clear text
/// (`tls-crypt`), or the packet is not one.
fn hmac_len(body: &[u8]) -> Option<usize> {
    std::iter::once(0).chain(HMAC_LENGTHS).find(|&h| {
        let at = 9 + if h > 0 { h + 8 } else { 0 };
        body.get(at..at + 5) == Some(&[0, 0, 0, 0, 0])
    })
}

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    let (op, key, body) = match packet(client) {
        Ok(p) => p,
        Err(true) => {
            let opens = client.len() < 3
                || matches!(
                    client[2] >> 3,
                    HARD_RESET_CLIENT_V1 | HARD_RESET_CLIENT_V2 | HARD_RESET_CLIENT_V3
                ) && client[2] & 0x07 == 0;
            return (!client.is_empty() && opens).then(need);
        }
        Err(false) => return None,
    };
    if key != 0
        || !matches!(
            op,
            HARD_RESET_CLIENT_V1 | HARD_RESET_CLIENT_V2 | HARD_RESET_CLIENT_V3
        )
    {
        return None;
    }
    let hmac = if op == HARD_RESET_CLIENT_V3 {
        None // tls-crypt-v2: the client's wrapped key, then ciphertext
    } else {
        hmac_len(body)
    };
    // The server answers with its own hard reset.
    let (sop, skey, _) = match packet(server) {
        Ok(p) => p,
        Err(true) => return Some(need()),
        Err(false) => return Some(Verdict::GaveUp(KIND)),
    };
    if skey != 0 || !matches!(sop, HARD_RESET_SERVER_V1 | HARD_RESET_SERVER_V2) {
        return Some(Verdict::GaveUp(KIND));
    }
    Some(match hmac {
        None => Verdict::Hidden(KIND),
        Some(h) => Verdict::Tls(Preamble {
            framing: Framing::OpenVpn { hmac: h as u8 },
            ..tls(KIND, 0, 0)
        }),
    })
}

/// The TLS bytes carried by the control packets of `framed` (one
/// direction's stream from its first packet), appended to `out`: the
/// payloads of P_CONTROL_V1 packets of key 0 in message packet-id order,
/// repeats skipped, up to the first gap or the first packet not whole. What
/// `out` receives for a longer `framed` starts with what it received for a
/// shorter one.
pub fn unwrap(framed: &[u8], hmac: u8, out: &mut Vec<u8>) {
    let hmac = usize::from(hmac);
    let skip = 9 + if hmac > 0 { hmac + 8 } else { 0 };
    let mut at = 0;
    let mut next_id: Option<u32> = None;
    while let Some(&[hi, lo]) = framed.get(at..at + 2) {
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(body) = framed.get(at + 2..at + 2 + len) else {
            return;
        };
        at += 2 + len;
        let Some(&first) = body.first() else { continue };
        if first >> 3 != CONTROL_V1 || first & 0x07 != 0 {
            continue;
        }
        // The ACK array: a count, the acknowledged ids, the peer's session.
        let Some(&acks) = body.get(skip) else { return };
        let acks = usize::from(acks);
        let id_at = skip + 1 + if acks > 0 { acks * 4 + 8 } else { 0 };
        let Some(&[a, b, c, d]) = body.get(id_at..id_at + 4) else {
            return;
        };
        let id = u32::from_be_bytes([a, b, c, d]);
        let expected = *next_id.get_or_insert(id);
        if id < expected {
            continue; // a repeat
        }
        if id > expected {
            return; // a gap: nothing after it is in order
        }
        out.extend_from_slice(&body[id_at + 4..]);
        next_id = Some(expected.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-prefixed control packet: opcode, session id, the HMAC
    /// fields (`hmac` bytes, then 8), the ACK array, the message id, the
    /// payload.
    fn control(op: u8, hmac: usize, acks: &[u32], id: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let mut body = vec![op << 3];
        body.extend([0x11; 8]);
        if hmac > 0 {
            body.extend(vec![0xab; hmac]);
            body.extend([0, 0, 0, 1, 0x5f, 0, 0, 0]);
        }
        body.push(acks.len() as u8);
        for a in acks {
            body.extend(a.to_be_bytes());
        }
        if !acks.is_empty() {
            body.extend([0x22; 8]);
        }
        if let Some(id) = id {
            body.extend(id.to_be_bytes());
        }
        body.extend(payload);
        let mut p = (body.len() as u16).to_be_bytes().to_vec();
        p.extend(body);
        p
    }

    #[test]
    fn openvpn_control_channel_carries_tls() {
        for hmac in [0, 20, 32, 64] {
            let c = [
                control(HARD_RESET_CLIENT_V2, hmac, &[], Some(0), b""),
                control(5, hmac, &[0], None, b""), // P_ACK_V1
                control(CONTROL_V1, hmac, &[0], Some(1), b"\x16\x03\x01"),
                control(CONTROL_V1, hmac, &[], Some(2), b"\x00\x04\x01\x00"),
                control(CONTROL_V1, hmac, &[], Some(2), b"\x00\x04\x01\x00"), // repeat
                control(CONTROL_V1, hmac, &[], Some(3), b"\x00\x00"),
            ]
            .concat();
            let s = control(HARD_RESET_SERVER_V2, hmac, &[0], Some(0), b"");
            match parse((&c, &s)) {
                Some(Verdict::Tls(p)) => {
                    assert_eq!(p.framing, Framing::OpenVpn { hmac: hmac as u8 });
                    assert_eq!(p.tls_at, [0, 0]);
                }
                other => panic!("hmac {hmac}: {other:?}"),
            }
            let mut out = Vec::new();
            unwrap(&c, hmac as u8, &mut out);
            assert_eq!(out, b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", "hmac {hmac}");
            // Any prefix unwraps to a prefix.
            for cut in 0..c.len() {
                let mut part = Vec::new();
                unwrap(&c[..cut], hmac as u8, &mut part);
                assert!(out.starts_with(&part), "cut {cut}");
            }
            for cut in 1..s.len() {
                assert!(matches!(
                    parse((&c, &s[..cut])),
                    Some(Verdict::NeedMore { .. })
                ));
            }
        }
    }

    #[test]
    fn openvpn_tls_crypt_is_hidden() {
        // tls-crypt: the fields after the session id are ciphertext.
        let mut c = control(HARD_RESET_CLIENT_V2, 0, &[], Some(0), &[0x9c; 40]);
        c[2 + 9..2 + 14].copy_from_slice(&[0x51, 0x7e, 0x02, 0x33, 0xf0]);
        let s = control(HARD_RESET_SERVER_V2, 0, &[], Some(0), &[0x77; 40]);
        assert_eq!(parse((&c, &s)), Some(Verdict::Hidden(Kind::Openvpn)));
        let v3 = control(HARD_RESET_CLIENT_V3, 0, &[], Some(0), &[0x9c; 300]);
        assert_eq!(parse((&v3, &s)), Some(Verdict::Hidden(Kind::Openvpn)));
    }

    #[test]
    fn not_openvpn() {
        let c = control(HARD_RESET_CLIENT_V2, 0, &[], Some(0), b"");
        // The server answers with something else.
        assert_eq!(
            parse((&c, b"HTTP/1.1 400 Bad\r\n")),
            Some(Verdict::GaveUp(Kind::Openvpn))
        );
        assert_eq!(parse((b"\x00\x0e\x20", b"")), None); // P_DATA first
        assert_eq!(parse((b"GET / HTTP/1.1\r\n", b"")), None);
        assert_eq!(parse((b"\x16\x03\x01\x00\x10", b"")), None);
        assert_eq!(parse((b"\x00\x05\x38", b"")), None); // too short to be one
    }
}
