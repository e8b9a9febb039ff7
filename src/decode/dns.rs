//! The DNS wire format, read as the census needs it: the answers of a
//! response (A, AAAA, CNAME, PTR of class IN) and the messages of a UDP
//! datagram or a DNS-over-TCP segment.
//!
//! Input: bytes from the wire. Output: a [`Response`] or a [`DnsError`].
//! Invariants: the parser treats every byte as hostile: every read is
//! bounds-checked, compression pointers must point backwards and are
//! followed at most [`MAX_POINTERS`] times per name, names are at most 255
//! bytes, at most [`MAX_RECORDS`] answer records are looked at. Its users:
//! passive DNS (`targets::passive_dns`) and passive host names (`hosts`).

use std::net::IpAddr;

pub const MAX_POINTERS: usize = 16;
pub const MAX_RECORDS: usize = 64;
/// RFC 2181 section 8: a TTL above 2^31 - 1 is treated as zero.
pub const MAX_TTL: u32 = i32::MAX as u32;

/// Why a DNS message taught nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// Ends before a header, name or record it announces.
    Truncated,
    /// A label longer than 63, a name longer than 255, a forward or looping
    /// compression pointer, a reserved label type.
    BadName,
    /// A query, an error answer (RCODE not 0) or a truncated (TC) answer.
    NotAnswer,
    /// A DNS-over-TCP message that does not end in its segment.
    TcpSplit,
}

crate::label_set! {
    /// `result` values of `tlscensus_dns_responses_total`: what a response
    /// taught passive DNS, or why it was not read.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum DnsResult {
        /// It leads to a target: names or addresses learned.
        Target = "target",
        NoTarget = "no_target",
        NotAnswer = "not_answer",
        Truncated = "truncated",
        BadName = "bad_name",
        TcpSplit = "tcp_split",
    }
}

impl From<DnsError> for DnsResult {
    fn from(e: DnsError) -> DnsResult {
        match e {
            DnsError::Truncated => DnsResult::Truncated,
            DnsError::BadName => DnsResult::BadName,
            DnsError::NotAnswer => DnsResult::NotAnswer,
            DnsError::TcpSplit => DnsResult::TcpSplit,
        }
    }
}

/// A name as read from the wire: lower case, dots between labels, no trailing dot.
pub type Name = String;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rdata {
    Addr(IpAddr),
    Cname(Name),
    /// A PTR answer (reverse DNS; passive host names read it).
    Ptr(Name),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub owner: Name,
    pub ttl: u32,
    pub data: Rdata,
}

/// The parts of a response the census uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The first question's name, if any.
    pub question: Option<Name>,
    /// A, AAAA, CNAME and PTR answers of class IN, in message order.
    pub answers: Vec<Record>,
}

fn be16(m: &[u8], at: usize) -> Result<u16, DnsError> {
    m.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Truncated)
}

/// How a name's byte is kept: letters lowercased, digits, `-` and `_` as
/// they are, anything else `?`.
const NAME_BYTE: [u8; 256] = {
    let mut t = [b'?'; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Reads the name at `at`; returns it and the offset after it (after the first
/// pointer, if the name is compressed).
fn read_name(m: &[u8], mut at: usize) -> Result<(Name, usize), DnsError> {
    let mut name: Vec<u8> = Vec::with_capacity(64);
    let mut end = None;
    let mut pointers = 0;
    // A pointer must go strictly backwards from the name it is part of.
    let mut limit = at;
    loop {
        let len = *m.get(at).ok_or(DnsError::Truncated)?;
        match len >> 6 {
            0 => {
                if len == 0 {
                    // Only ASCII was pushed (see NAME_BYTE).
                    let name = String::from_utf8(name).map_err(|_| DnsError::BadName)?;
                    return Ok((name, end.unwrap_or(at + 1)));
                }
                let label = m
                    .get(at + 1..at + 1 + usize::from(len))
                    .ok_or(DnsError::Truncated)?;
                if name.len() + label.len() + 1 > 255 {
                    return Err(DnsError::BadName);
                }
                if !name.is_empty() {
                    name.push(b'.');
                }
                // Names in the census are host names; other bytes are kept
                // visibly escaped so they never match a pattern by accident.
                name.extend(label.iter().map(|&b| NAME_BYTE[usize::from(b)]));
                at += 1 + usize::from(len);
            }
            3 => {
                let lo = *m.get(at + 1).ok_or(DnsError::Truncated)?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(lo);
                pointers += 1;
                if pointers > MAX_POINTERS || target >= limit {
                    return Err(DnsError::BadName);
                }
                end.get_or_insert(at + 2);
                limit = target;
                at = target;
            }
            _ => return Err(DnsError::BadName),
        }
    }
}

/// Parses a DNS response (RFC 1035 section 4). Only NOERROR answers that are
/// not truncated teach anything; other records (NS, SOA, OPT...) are skipped.
pub fn parse_response(m: &[u8]) -> Result<Response, DnsError> {
    let flags = be16(m, 2)?;
    let (qd, an) = (be16(m, 4)?, be16(m, 6)?);
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let truncated = flags & 0x0200 != 0;
    let rcode = flags & 0xf;
    if !is_response || opcode != 0 || truncated || rcode != 0 {
        return Err(DnsError::NotAnswer);
    }
    let mut at = 12;
    let mut question = None;
    for i in 0..qd {
        let (name, next) = read_name(m, at)?;
        be16(m, next + 2)?; // type and class
        if i == 0 {
            question = Some(name);
        }
        at = next + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..usize::from(an).min(MAX_RECORDS) {
        let (owner, next) = read_name(m, at)?;
        let rtype = be16(m, next)?;
        let class = be16(m, next + 2)?;
        let ttl = m
            .get(next + 4..next + 8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(DnsError::Truncated)?;
        let rdlen = usize::from(be16(m, next + 8)?);
        let start = next + 10;
        let rdata = m.get(start..start + rdlen).ok_or(DnsError::Truncated)?;
        at = start + rdlen;
        // mDNS sets the top bit of the class (cache flush, RFC 6762 10.2).
        if class & 0x7fff != 1 {
            continue;
        }
        let ttl = if ttl > MAX_TTL { 0 } else { ttl };
        let data = match (rtype, rdlen) {
            (1, 4) => Rdata::Addr(IpAddr::from([rdata[0], rdata[1], rdata[2], rdata[3]])),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                Rdata::Addr(IpAddr::from(a))
            }
            (5 | 12, _) => {
                let (target, after) = read_name(m, start)?;
                if after > at {
                    return Err(DnsError::Truncated);
                }
                if rtype == 5 {
                    Rdata::Cname(target)
                } else {
                    Rdata::Ptr(target)
                }
            }
            _ => continue,
        };
        answers.push(Record { owner, ttl, data });
    }
    Ok(Response { question, answers })
}

/// Hands each DNS message a payload holds to `f`: a UDP datagram is one
/// message; a TCP segment from port 53 holds whole messages, each after a
/// 2-byte length (RFC 1035 4.2.2), or part of one, which is reported as
/// [`DnsError::TcpSplit`] (the census does not reassemble DNS streams).
pub fn messages<'a>(payload: &'a [u8], tcp: bool, mut f: impl FnMut(Result<&'a [u8], DnsError>)) {
    if !tcp {
        return f(Ok(payload));
    }
    let mut rest = payload;
    while !rest.is_empty() {
        let len = usize::from(be16(rest, 0).unwrap_or(u16::MAX));
        let Some(msg) = rest.get(2..2 + len) else {
            return f(Err(DnsError::TcpSplit));
        };
        f(Ok(msg));
        rest = &rest[2 + len..];
    }
}
