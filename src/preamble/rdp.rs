//! Remote Desktop (MS-RDPBCGR 1.3.1.1): the client's X.224 Connection
//! Request in a TPKT packet, with an optional cookie or routing token and an
//! RDP_NEG_REQ naming the security protocols it supports; the server's
//! Connection Confirm with an RDP_NEG_RSP selecting one (PROTOCOL_SSL,
//! HYBRID, RDSTLS, HYBRID_EX, RDSAAD: each then runs a TLS handshake, the
//! client speaking first) or an RDP_NEG_FAILURE. A Connection Confirm
//! without a negotiation response, or one selecting standard RDP security,
//! means no TLS.
//!
//! Input: the client's and the server's stream starts. Output: `None`
//! unless the client's stream begins with a TPKT packet holding an X.224
//! Connection Request whose variable part is empty, a cookie
//! (`Cookie: mstshash=`), a routing token (`Cookie: msts=`) or an
//! RDP_NEG_REQ (other users of X.224 over TPKT, such as ISO-TSAP for S7,
//! carry TSAP parameters there and are not claimed), else a [`Verdict`].

use super::{Kind, Pair, Verdict, tls, tls_follows};

const KIND: Kind = Kind::Rdp;
const TPKT: usize = 4;
const CR: u8 = 0xe0;
const CC: u8 = 0xd0;
const NEG_REQ: u8 = 0x01;
const NEG_RSP: u8 = 0x02;
const NEG_FAILURE: u8 = 0x03;

fn need() -> Verdict {
    Verdict::NeedMore {
        kind: KIND,
        refused: false,
    }
}

/// A TPKT packet's X.224 TPDU at the start of `b`: (code, the variable part
/// after the 7 fixed bytes, the packet's length); `Err(true)` when `b` may
/// still grow into one, `Err(false)` when it cannot.
fn tpdu(b: &[u8]) -> Result<(u8, &[u8], usize), bool> {
    let start_ok = b.first().is_none_or(|&v| v == 3) && b.get(1).is_none_or(|&r| r == 0);
    let Some(&[_, _, hi, lo]) = b.get(..TPKT) else {
        return Err(start_ok);
    };
    if !start_ok {
        return Err(false);
    }
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    // TPKT header, length indicator, code, DST-REF, SRC-REF, class.
    if len < TPKT + 7 {
        return Err(false);
    }
    let Some(packet) = b.get(..len) else {
        // Wait for the packet, as long as its first bytes still fit.
        let li_ok = b.get(4).is_none_or(|&li| usize::from(li) + 5 == len);
        return Err(li_ok && len <= 512);
    };
    let li = usize::from(packet[4]);
    if li + 5 != len {
        return Err(false);
    }
    Ok((packet[5] & 0xf0, &packet[TPKT + 7..], len))
}

/// Whether a Connection Request's variable part is RDP's: nothing, a
/// cookie or routing token line, then at most an RDP_NEG_REQ (and an
/// RDP_NEG_CORRELATION_INFO after it).
fn rdp_request(var: &[u8]) -> bool {
    let mut rest = var;
    if rest.starts_with(b"Cookie: ") {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        if !rest[..end]
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' ')
        {
            return false;
        }
        rest = &rest[end + 2..];
    }
    match rest {
        [] => true,
        [NEG_REQ, _, 8, 0, ..] => rest.len() == 8 || rest.len() == 8 + 36,
        _ => false,
    }
}

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    let (code, var, creq) = match tpdu(client) {
        Ok(t) => t,
        Err(may) => {
            return (may && !client.is_empty() && client.len() < TPKT + 7 + 64).then(need);
        }
    };
    if code != CR || !rdp_request(var) {
        return None;
    }
    let (code, var, cconf) = match tpdu(server) {
        Ok(t) => t,
        Err(true) => return Some(need()),
        Err(false) => return Some(Verdict::GaveUp(KIND)),
    };
    if code != CC {
        return Some(Verdict::GaveUp(KIND));
    }
    let selected = match var {
        // Standard RDP security: no negotiation response.
        [] => return Some(Verdict::NoTls(KIND)),
        [NEG_RSP, _, 8, 0, a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
        [NEG_FAILURE, _, 8, 0, ..] => return Some(Verdict::NoTls(KIND)),
        _ => return Some(Verdict::GaveUp(KIND)),
    };
    if selected == 0 {
        return Some(Verdict::NoTls(KIND));
    }
    // The client opens TLS right after the Connection Confirm.
    Some(match tls_follows(&client[creq..]) {
        None => need(),
        Some(true) => Verdict::Tls(tls(KIND, creq, cconf)),
        Some(false) => Verdict::GaveUp(KIND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &[u8] = &[22, 3, 1, 0, 4, 1, 0, 0, 0];

    /// A TPKT packet holding an X.224 TPDU of `code` with `var` after it.
    fn packet(code: u8, var: &[u8]) -> Vec<u8> {
        let len = TPKT + 7 + var.len();
        let mut p = vec![3, 0, (len >> 8) as u8, len as u8, (len - 5) as u8, code];
        p.extend([0, 0, 0x12, 0x34, 0]);
        p.extend(var);
        p
    }

    fn neg(kind: u8, protocols: u32) -> Vec<u8> {
        let mut v = vec![kind, 0, 8, 0];
        v.extend(protocols.to_le_bytes());
        v
    }

    #[test]
    fn rdp_negotiation_then_tls() {
        // mstsc and FreeRDP: a cookie, then SSL | HYBRID | HYBRID_EX asked.
        let var = [&b"Cookie: mstshash=user\r\n"[..], &neg(NEG_REQ, 0xb)].concat();
        let cr = packet(CR, &var);
        for selected in [1u32, 2, 8] {
            let cc = packet(CC, &neg(NEG_RSP, selected));
            let c = [&cr[..], HELLO].concat();
            match parse((&c, &cc)) {
                Some(Verdict::Tls(p)) => assert_eq!(p.tls_at, [cr.len(), cc.len()]),
                other => panic!("{selected}: {other:?}"),
            }
            // Until the CR and the first two bytes of TLS after it.
            for cut in 1..cr.len() + 2 {
                let v = parse((&c[..cut], &cc));
                assert!(
                    matches!(v, Some(Verdict::NeedMore { .. })),
                    "cut {cut}: {v:?}"
                );
            }
            for cut in 0..cc.len() {
                let v = parse((&c, &cc[..cut]));
                assert!(
                    matches!(v, Some(Verdict::NeedMore { .. })),
                    "cut {cut}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn rdp_without_tls() {
        let cr = packet(CR, &neg(NEG_REQ, 3));
        // Standard RDP security, a refusal, PROTOCOL_RDP selected.
        for cc in [
            packet(CC, &[]),
            packet(CC, &neg(NEG_FAILURE, 2)),
            packet(CC, &neg(NEG_RSP, 0)),
        ] {
            assert_eq!(parse((&cr, &cc)), Some(Verdict::NoTls(Kind::Rdp)));
        }
        // An old client: no negotiation request at all.
        let old = packet(CR, b"Cookie: mstshash=a\r\n");
        assert_eq!(
            parse((&old, &packet(CC, &[]))),
            Some(Verdict::NoTls(Kind::Rdp))
        );
    }

    #[test]
    fn not_rdp() {
        // ISO-TSAP (S7): TSAP parameters in the Connection Request.
        let s7 = packet(CR, &[0xc1, 2, 1, 0, 0xc2, 2, 1, 2, 0xc0, 1, 10]);
        assert_eq!(parse((&s7, b"")), None);
        assert_eq!(parse((b"\x03\x00\x00\x05\x00", b"")), None);
        assert_eq!(parse((b"GET / HTTP/1.1\r\n", b"")), None);
        assert_eq!(parse((b"\x16\x03\x01", b"")), None);
        // A TPKT start waits; a Data TPDU is not a Connection Request.
        assert!(matches!(
            parse((b"\x03\x00", b"")),
            Some(Verdict::NeedMore { .. })
        ));
        assert_eq!(parse((&packet(0xf0, &[]), b"")), None);
    }
}
