//! LDAP StartTLS (RFC 4511 4.14): the client sends an ExtendedRequest named
//! 1.3.6.1.4.1.1466.20037, the server answers with an ExtendedResponse, and
//! on success both directions carry TLS.
//!
//! Input: the client's and the server's stream starts. Output: `None` unless
//! the client's stream begins with an LDAPMessage (a BER SEQUENCE holding a
//! message ID and an ExtendedRequest naming StartTLS), else a [`Verdict`]:
//! TLS after the request and a success response, no TLS after any other
//! result code. BER lengths are read in their short and long (up to 3
//! bytes) forms and checked against what is present.

use super::{Kind, Pair, Verdict, tls};

const KIND: Kind = Kind::Ldap;
const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
const SEQUENCE: u8 = 0x30;
const EXTENDED_REQUEST: u8 = 0x77; // [APPLICATION 23], constructed
const EXTENDED_RESPONSE: u8 = 0x78; // [APPLICATION 24], constructed
const ENUMERATED: u8 = 0x0a;

/// A BER element at `b[at..]`: its tag, and where its contents start and end
/// (`None` while the header is incomplete; `Some(Err)` when it is broken).
fn element(b: &[u8], at: usize) -> Option<Result<(u8, usize, usize), ()>> {
    let tag = *b.get(at)?;
    let first = *b.get(at + 1)?;
    let (len, header) = if first & 0x80 == 0 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return Some(Err(()));
        }
        let bytes = b.get(at + 2..at + 2 + n)?;
        (
            bytes.iter().fold(0usize, |l, &x| l << 8 | usize::from(x)),
            2 + n,
        )
    };
    Some(Ok((tag, at + header, at + header + len)))
}

/// The protocol operation of the LDAPMessage at the start of `b`: its tag,
/// its contents, and the message's end. `Err(true)`: not an LDAPMessage;
/// `Err(false)`: incomplete.
fn message(b: &[u8]) -> Result<(u8, &[u8], usize), bool> {
    let Some(seq) = element(b, 0) else {
        return Err(false);
    };
    let (tag, start, end) = seq.map_err(|_| true)?;
    if tag != SEQUENCE {
        return Err(true);
    }
    // messageID INTEGER (1 to 4 bytes).
    let (id_tag, _, id_end) = element(b, start).ok_or(false)?.map_err(|_| true)?;
    if id_tag != 0x02 || id_end > end {
        return Err(true);
    }
    let (op, op_start, op_end) = element(b, id_end).ok_or(false)?.map_err(|_| true)?;
    if op_end > end {
        return Err(true);
    }
    let contents = b.get(op_start..op_end).ok_or(false)?;
    if b.len() < end {
        return Err(false);
    }
    Ok((op, contents, end))
}

pub fn parse((client, server): Pair<'_>) -> Option<Verdict> {
    let need = Verdict::NeedMore {
        kind: KIND,
        refused: false,
    };
    if client.first() != Some(&SEQUENCE) {
        return None;
    }
    let (op, contents, client_end) = match message(client) {
        Ok(m) => m,
        // Incomplete: an LDAP message starts this way; wait while it is short.
        Err(false) => return (client.len() < 64).then_some(need),
        Err(true) => return None,
    };
    // requestName [0] IMPLICIT LDAPOID.
    let named = contents
        .strip_prefix(&[0x80, STARTTLS_OID.len() as u8][..])
        .is_some_and(|rest| rest.starts_with(STARTTLS_OID));
    if op != EXTENDED_REQUEST || !named {
        return None;
    }
    let (op, contents, server_end) = match message(server) {
        Ok(m) => m,
        Err(false) => return Some(need),
        Err(true) => return Some(Verdict::GaveUp(KIND)),
    };
    if op != EXTENDED_RESPONSE {
        return Some(Verdict::GaveUp(KIND));
    }
    // LDAPResult: resultCode ENUMERATED first; 0 is success.
    Some(match contents {
        [ENUMERATED, 1, 0, ..] => Verdict::Tls(tls(KIND, client_end, server_end)),
        [ENUMERATED, ..] => Verdict::NoTls(KIND),
        _ => Verdict::GaveUp(KIND),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What OpenSSL's `s_client -starttls ldap` sends, and a success answer.
    fn request() -> Vec<u8> {
        let mut op = vec![0x80, STARTTLS_OID.len() as u8];
        op.extend(STARTTLS_OID);
        let mut m = vec![0x02, 0x01, 0x01, EXTENDED_REQUEST, op.len() as u8];
        m.extend(op);
        let mut v = vec![SEQUENCE, m.len() as u8];
        v.extend(m);
        v
    }

    fn response(code: u8) -> Vec<u8> {
        vec![
            SEQUENCE,
            0x0c,
            0x02,
            0x01,
            0x01,
            EXTENDED_RESPONSE,
            0x07,
            ENUMERATED,
            1,
            code,
            0x04,
            0,
            0x04,
            0,
        ]
    }

    #[test]
    fn ldap_starttls() {
        let (c, s) = (request(), response(0));
        let Some(Verdict::Tls(p)) = parse((&c, &s)) else {
            panic!("{:?}", parse((&c, &s)));
        };
        assert_eq!(p.tls_at, [c.len(), s.len()]);
        for cut in 1..c.len() {
            assert!(
                matches!(parse((&c[..cut], b"")), Some(Verdict::NeedMore { .. })),
                "{cut}"
            );
        }
        for cut in 0..s.len() {
            assert!(
                matches!(parse((&c, &s[..cut])), Some(Verdict::NeedMore { .. })),
                "{cut}"
            );
        }
        // unavailable (52): no TLS.
        assert_eq!(parse((&c, &response(52))), Some(Verdict::NoTls(KIND)));
        // A bind request is LDAP but not StartTLS: not this module's.
        let bind = [
            SEQUENCE, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0, 0x80, 0,
        ];
        assert_eq!(parse((&bind, b"")), None);
        // Long-form lengths.
        let mut long = vec![SEQUENCE, 0x81, (c.len() - 2) as u8];
        long.extend(&c[2..]);
        assert!(matches!(parse((&long, &s)), Some(Verdict::Tls(_))));
    }
}
