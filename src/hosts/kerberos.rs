//! Kerberos AS-REQ (RFC 4120, port 88): a machine account (`HOST$`) asking
//! for a ticket names the host that sent it.
//!
//! Input: a UDP payload, or the first segment of a TCP stream (a 4-byte
//! length, then the message). Output: the client name and realm of an
//! AS-REQ. Invariants: a DER reader with definite lengths only, every
//! length checked against what is left; at most [`MAX_DEPTH`] nested reads;
//! nothing but AS-REQ (application tag 10) is read.

use super::dhcp::NameError;

/// Nesting levels the reader walks (AS-REQ → KDC-REQ → req-body → cname).
pub const MAX_DEPTH: usize = 8;

/// One DER element: tag byte, contents, rest after it.
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), NameError> {
    let bad = NameError::Malformed;
    let [tag, first, rest @ ..] = b else {
        return Err(bad);
    };
    // High tag numbers (0x1f) are not used by Kerberos.
    if tag & 0x1f == 0x1f {
        return Err(bad);
    }
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(*first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(bad); // indefinite or absurd length
        }
        let bytes = rest.get(..n).ok_or(bad)?;
        let len = bytes.iter().fold(0usize, |a, b| a << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    let body = rest.get(..len).ok_or(bad)?;
    Ok((*tag, body, &rest[len..]))
}

/// The element with context tag `[n]` in a SEQUENCE's contents.
fn field(mut seq: &[u8], n: u8) -> Result<Option<&[u8]>, NameError> {
    while !seq.is_empty() {
        let (tag, body, rest) = tlv(seq)?;
        if tag == 0xa0 | n {
            return Ok(Some(body));
        }
        seq = rest;
    }
    Ok(None)
}

/// The contents of the only element of `b` if its tag is `want`.
fn expect(b: &[u8], want: u8) -> Result<&[u8], NameError> {
    match tlv(b)? {
        (tag, body, _) if tag == want => Ok(body),
        _ => Err(NameError::Malformed),
    }
}

/// An AS-REQ's client: its name components and realm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsReq {
    pub names: Vec<String>,
    pub realm: String,
}

impl AsReq {
    /// The host a machine account names: `host$` in realm `CORP.EXAMPLE` is
    /// `host.corp.example`; `None` for user principals.
    pub fn machine(&self) -> Option<String> {
        let [one] = self.names.as_slice() else {
            return None;
        };
        let host = one.strip_suffix('$').filter(|h| !h.is_empty())?;
        Some(if self.realm.is_empty() {
            host.to_ascii_lowercase()
        } else {
            format!("{host}.{}", self.realm).to_ascii_lowercase()
        })
    }
}

/// The AS-REQ in `payload` (`tcp`: after a 4-byte record mark); `Ok(None)`
/// for other Kerberos messages.
pub fn parse_as_req(payload: &[u8], tcp: bool) -> Result<Option<AsReq>, NameError> {
    let msg = if tcp {
        payload.get(4..).ok_or(NameError::Malformed)?
    } else {
        payload
    };
    let (tag, kdc_req, _) = tlv(msg)?;
    if tag != 0x6a {
        return Ok(None); // not [APPLICATION 10]
    }
    let kdc_req = expect(kdc_req, 0x30)?;
    // msg-type [2] INTEGER 10.
    let Some(t) = field(kdc_req, 2)? else {
        return Err(NameError::Malformed);
    };
    if expect(t, 0x02)? != [10] {
        return Ok(None);
    }
    let Some(body) = field(kdc_req, 4)? else {
        return Err(NameError::Malformed);
    };
    let body = expect(body, 0x30)?;
    let Some(cname) = field(body, 1)? else {
        return Ok(None);
    };
    let realm = match field(body, 2)? {
        Some(r) => String::from_utf8_lossy(expect(r, 0x1b)?).into_owned(),
        None => String::new(),
    };
    let cname = expect(cname, 0x30)?;
    let Some(strings) = field(cname, 1)? else {
        return Err(NameError::Malformed);
    };
    let mut rest = expect(strings, 0x30)?;
    let mut names = Vec::new();
    while !rest.is_empty() && names.len() < MAX_DEPTH {
        let (tag, s, after) = tlv(rest)?;
        if tag != 0x1b {
            return Err(NameError::Malformed);
        }
        names.push(String::from_utf8_lossy(s).into_owned());
        rest = after;
    }
    Ok(Some(AsReq { names, realm }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 128 {
            v.push(body.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    fn as_req(names: &[&str], realm: &str, msg_type: u8) -> Vec<u8> {
        let strings: Vec<u8> = names.iter().flat_map(|n| der(0x1b, n.as_bytes())).collect();
        let cname = der(
            0x30,
            &[der(0xa0, &der(0x02, &[1])), der(0xa1, &der(0x30, &strings))].concat(),
        );
        let body = der(
            0x30,
            &[
                der(0xa0, &der(0x03, &[0, 0x40, 0x81, 0, 0x10])),
                der(0xa1, &cname),
                der(0xa2, &der(0x1b, realm.as_bytes())),
                der(0xa7, &der(0x02, &[0x12, 0x34])),
            ]
            .concat(),
        );
        let req = der(
            0x30,
            &[
                der(0xa1, &der(0x02, &[5])),
                der(0xa2, &der(0x02, &[msg_type])),
                der(0xa3, &der(0x30, &[0u8; 150])),
                der(0xa4, &body),
            ]
            .concat(),
        );
        der(0x6a, &req)
    }

    #[test]
    fn machine_account() {
        let r = parse_as_req(&as_req(&["WS042$"], "CORP.EXAMPLE", 10), false)
            .unwrap()
            .unwrap();
        assert_eq!(r.machine().as_deref(), Some("ws042.corp.example"));
        // Over TCP: a record mark first.
        let m = as_req(&["WS042$"], "CORP.EXAMPLE", 10);
        let mut tcp = (m.len() as u32).to_be_bytes().to_vec();
        tcp.extend(m);
        assert!(parse_as_req(&tcp, true).unwrap().is_some());
        // A user, a service principal: no host.
        let u = parse_as_req(&as_req(&["alice"], "CORP", 10), false)
            .unwrap()
            .unwrap();
        assert_eq!(u.machine(), None);
        let s = parse_as_req(&as_req(&["host", "ws042$"], "CORP", 10), false)
            .unwrap()
            .unwrap();
        assert_eq!(s.machine(), None);
        // A TGS-REQ (12) is not an AS-REQ.
        assert_eq!(parse_as_req(&as_req(&["WS042$"], "C", 12), false), Ok(None));
    }

    #[test]
    fn kerberos_hostile() {
        let good = as_req(&["WS042$"], "CORP.EXAMPLE", 10);
        for cut in 0..good.len() {
            assert!(parse_as_req(&good[..cut], false).is_err(), "cut {cut}");
        }
        // Indefinite and huge lengths.
        assert!(parse_as_req(&[0x6a, 0x80, 0, 0], false).is_err());
        assert!(parse_as_req(&[0x6a, 0x85, 1, 1, 1, 1, 1], false).is_err());
        assert!(parse_as_req(&[0x6a, 0x84, 0xff, 0xff, 0xff, 0xff], false).is_err());
    }
}
