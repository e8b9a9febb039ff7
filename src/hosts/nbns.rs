//! NetBIOS Name Service (RFC 1001/1002, UDP port 137): registrations,
//! refreshes, releases and positive query responses bind a NetBIOS name to
//! an IPv4 address.
//!
//! Input: a UDP payload. Output: what the message does and its
//! (name, address, TTL) entries. Invariants: every read is bounds-checked;
//! names are the first-level encoded 32-byte label (a pointer in a record
//! may only point back to the question's name at offset 12); only unique
//! names (not groups) with the workstation (0x00) or server (0x20) suffix
//! name a host; at most [`MAX_ENTRIES`] entries are read.

use std::net::Ipv4Addr;

use super::dhcp::NameError;

/// Entries read from one message.
pub const MAX_ENTRIES: usize = 8;

/// What an NBNS message does with its names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NbnsOp {
    /// A registration, refresh or positive query response: the names are bound.
    Bind,
    /// A release: the names end.
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbnsEntry {
    /// The name without padding or suffix, as sent (upper case, usually).
    pub name: String,
    pub addr: Ipv4Addr,
    pub ttl: u32,
}

/// The NetBIOS name at `at` (first-level decoded): the 15-character name and
/// the suffix byte, and the offset after it.
fn read_name(m: &[u8], at: usize, question_end: usize) -> Result<(String, u8, usize), NameError> {
    let bad = NameError::Malformed;
    match m.get(at) {
        // A pointer back to the question's name (the usual compression).
        // (The question's own name is read with `question_end` 0: it may
        // not be a pointer, so this never recurses twice.)
        Some(&b) if b & 0xc0 == 0xc0 && question_end > 12 => {
            let lo = *m.get(at + 1).ok_or(bad)?;
            let target = usize::from(b & 0x3f) << 8 | usize::from(lo);
            if target != 12 || at < question_end {
                return Err(bad);
            }
            let (name, suffix, _) = read_name(m, 12, 0)?;
            Ok((name, suffix, at + 2))
        }
        Some(32) => {
            let enc = m.get(at + 1..at + 33).ok_or(bad)?;
            let mut raw = [0u8; 16];
            for (i, pair) in enc.chunks_exact(2).enumerate() {
                let (hi, lo) = (pair[0].wrapping_sub(b'A'), pair[1].wrapping_sub(b'A'));
                if hi > 15 || lo > 15 {
                    return Err(bad);
                }
                raw[i] = hi << 4 | lo;
            }
            // Scope labels (rare) follow until the root label.
            let mut end = at + 33;
            loop {
                let len = usize::from(*m.get(end).ok_or(bad)?);
                if len == 0 {
                    break;
                }
                if len > 63 {
                    return Err(bad);
                }
                end += 1 + len;
            }
            let name = String::from_utf8_lossy(&raw[..15]).trim_end().to_string();
            Ok((name, raw[15], end + 1))
        }
        _ => Err(bad),
    }
}

fn be16(m: &[u8], at: usize) -> Result<u16, NameError> {
    m.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(NameError::Malformed)
}

/// Parses an NBNS message; `Ok(None)` for messages that bind nothing
/// (queries, negative responses, WACKs).
pub fn parse_nbns(m: &[u8]) -> Result<Option<(NbnsOp, Vec<NbnsEntry>)>, NameError> {
    let flags = be16(m, 2)?;
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let rcode = flags & 0xf;
    let (qd, an, ns, ar) = (be16(m, 4)?, be16(m, 6)?, be16(m, 8)?, be16(m, 10)?);
    let op = match (opcode, response) {
        (0, true) if rcode == 0 && an > 0 => NbnsOp::Bind,
        (5 | 8 | 9, false) => NbnsOp::Bind,
        (6, false) => NbnsOp::Release,
        _ => return Ok(None),
    };
    let mut at = 12;
    for _ in 0..qd.min(1) {
        let (_, _, next) = read_name(m, at, 0)?;
        be16(m, next + 2)?;
        at = next + 4;
    }
    let question_end = at;
    let records = usize::from(an) + usize::from(ns) + usize::from(ar);
    let mut out = Vec::new();
    for _ in 0..records.min(MAX_ENTRIES) {
        let (name, suffix, next) = read_name(m, at, question_end)?;
        let rtype = be16(m, next)?;
        let ttl = m
            .get(next + 4..next + 8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(NameError::Malformed)?;
        let rdlen = usize::from(be16(m, next + 8)?);
        let rdata = m
            .get(next + 10..next + 10 + rdlen)
            .ok_or(NameError::Malformed)?;
        at = next + 10 + rdlen;
        // NB records: (flags, address) entries of 6 bytes; G bit = group.
        if rtype != 0x20 || !(suffix == 0x00 || suffix == 0x20) || name.is_empty() {
            continue;
        }
        for e in rdata.chunks_exact(6) {
            if e[0] & 0x80 != 0 || out.len() >= MAX_ENTRIES {
                continue;
            }
            let addr = Ipv4Addr::new(e[2], e[3], e[4], e[5]);
            if !out
                .iter()
                .any(|o: &NbnsEntry| o.name == name && o.addr == addr)
            {
                out.push(NbnsEntry {
                    name: name.clone(),
                    addr,
                    ttl,
                });
            }
        }
    }
    Ok(Some((op, out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(name: &str, suffix: u8) -> Vec<u8> {
        let mut raw = [b' '; 16];
        raw[..name.len()].copy_from_slice(name.as_bytes());
        raw[15] = suffix;
        let mut v = vec![32];
        for b in raw {
            v.push(b'A' + (b >> 4));
            v.push(b'A' + (b & 0xf));
        }
        v.push(0);
        v
    }

    /// A registration request as Windows broadcasts it: the question, and an
    /// additional NB record pointing back to it.
    fn registration(name: &str, suffix: u8, nb_flags: u8, addr: [u8; 4]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x29, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend(encode(name, suffix));
        m.extend_from_slice(&[0, 0x20, 0, 1]);
        m.extend_from_slice(&[
            0xc0, 0x0c, 0, 0x20, 0, 1, 0, 0x04, 0x93, 0xe0, 0, 6, nb_flags, 0,
        ]);
        m.extend_from_slice(&addr);
        m
    }

    #[test]
    fn nbns_registration() {
        let (op, e) = parse_nbns(&registration("WIN7-PC", 0, 0, [10, 0, 0, 7]))
            .unwrap()
            .unwrap();
        assert_eq!(op, NbnsOp::Bind);
        assert_eq!(
            e,
            vec![NbnsEntry {
                name: "WIN7-PC".into(),
                addr: Ipv4Addr::new(10, 0, 0, 7),
                ttl: 300_000
            }]
        );
        // A group name and a service suffix name no host.
        let (_, e) = parse_nbns(&registration("WORKGROUP", 0, 0x80, [10, 0, 0, 7]))
            .unwrap()
            .unwrap();
        assert!(e.is_empty());
        let (_, e) = parse_nbns(&registration("WIN7-PC", 0x1d, 0, [10, 0, 0, 7]))
            .unwrap()
            .unwrap();
        assert!(e.is_empty());
        // Release: opcode 6.
        let mut r = registration("WIN7-PC", 0, 0, [10, 0, 0, 7]);
        r[2] = 0x30;
        assert_eq!(parse_nbns(&r).unwrap().unwrap().0, NbnsOp::Release);
        // A query binds nothing.
        let mut q = registration("WIN7-PC", 0, 0, [10, 0, 0, 7]);
        q[2] = 0x01;
        assert_eq!(parse_nbns(&q), Ok(None));
    }

    #[test]
    fn nbns_hostile() {
        let good = registration("PC", 0, 0, [10, 0, 0, 7]);
        for cut in 0..good.len() {
            let _ = parse_nbns(&good[..cut]);
        }
        // A question that points to itself (found by fuzzing: it recursed).
        let mut p = good.clone();
        p[12] = 0xc0;
        p[13] = 0x0c;
        assert_eq!(parse_nbns(&p), Err(NameError::Malformed));
        // A pointer anywhere but the question, a bad nibble.
        let mut p = good.clone();
        let at = p.len() - 18;
        p[at + 1] = 0x0d;
        assert_eq!(parse_nbns(&p), Err(NameError::Malformed));
        let mut p = good.clone();
        p[13] = b'Z';
        assert_eq!(parse_nbns(&p), Err(NameError::Malformed));
    }
}
