//! DHCPv4 (RFC 2131/2132, FQDN option RFC 4702) and DHCPv6 (RFC 8415,
//! Client FQDN option RFC 4704) messages: what they say about an address's
//! host name.
//!
//! Input: a UDP payload (ports 67/68, 546/547). Output: the message's type,
//! transaction, client identity, addresses, host name and lease, borrowed
//! from the payload. Invariants: every read is bounds-checked; an option
//! that runs past its message ends the option walk with what was read
//! (`Malformed` only for a broken fixed header); names in DNS wire format
//! follow no compression (RFC 4702/4704 forbid it) and stop at 255 bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a datagram taught nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Shorter than its fixed header, or not the protocol (bad magic).
    Malformed,
}

pub const DHCP_DISCOVER: u8 = 1;
pub const DHCP_REQUEST: u8 = 3;
pub const DHCP_ACK: u8 = 5;
pub const DHCP_RELEASE: u8 = 7;
pub const DHCP_INFORM: u8 = 8;

/// A DHCPv4 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dhcp4<'a> {
    /// 1: from a client (BOOTREQUEST), 2: from a server (BOOTREPLY).
    pub op: u8,
    /// Option 53.
    pub msg_type: Option<u8>,
    pub xid: u32,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    /// The client hardware address (`hlen` bytes, at most 16).
    pub chaddr: &'a [u8],
    /// Option 12.
    pub host_name: Option<&'a [u8]>,
    /// Option 81's domain name (wire or ASCII encoding, decoded).
    pub fqdn: Option<String>,
    /// Option 15.
    pub domain: Option<&'a [u8]>,
    /// Option 51, seconds.
    pub lease_secs: Option<u32>,
}

impl Dhcp4<'_> {
    /// The name the message gives: the FQDN option, else the host name
    /// option, completed with the domain option when it has no dot.
    pub fn name(&self) -> Option<String> {
        if let Some(f) = self.fqdn.as_ref().filter(|f| !f.is_empty()) {
            return Some(f.clone());
        }
        let host = String::from_utf8_lossy(self.host_name?).into_owned();
        let host = host.trim_end_matches('\0').trim();
        if host.is_empty() {
            return None;
        }
        match self.domain.map(String::from_utf8_lossy) {
            Some(d) if !host.contains('.') && !d.trim_matches('\0').is_empty() => Some(format!(
                "{host}.{}",
                d.trim_matches('\0').trim_end_matches('.')
            )),
            _ => Some(host.to_string()),
        }
    }
}

const MAGIC: [u8; 4] = [99, 130, 83, 99];

fn v4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// Parses a DHCPv4 message (BOOTP header, magic cookie, options).
pub fn parse_dhcp4(p: &[u8]) -> Result<Dhcp4<'_>, NameError> {
    // op htype hlen hops xid(4) secs(2) flags(2) ciaddr yiaddr siaddr giaddr
    // chaddr(16) sname(64) file(128) magic(4)
    let fixed = p.get(..240).ok_or(NameError::Malformed)?;
    if fixed[236..240] != MAGIC || !(1..=2).contains(&fixed[0]) {
        return Err(NameError::Malformed);
    }
    let hlen = usize::from(fixed[2]).min(16);
    let mut m = Dhcp4 {
        op: fixed[0],
        xid: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ciaddr: v4(&fixed[12..16]),
        yiaddr: v4(&fixed[16..20]),
        chaddr: &fixed[28..28 + hlen],
        msg_type: None,
        host_name: None,
        fqdn: None,
        domain: None,
        lease_secs: None,
    };
    let mut rest = &p[240..];
    while let [code, tail @ ..] = rest {
        match code {
            0 => {
                rest = tail;
                continue;
            }
            255 => break,
            _ => {}
        }
        let [len, tail @ ..] = tail else { break };
        let Some(data) = tail.get(..usize::from(*len)) else {
            break;
        };
        rest = &tail[usize::from(*len)..];
        match (code, data) {
            (53, [t, ..]) => m.msg_type = Some(*t),
            (12, d) if !d.is_empty() => m.host_name = Some(d),
            (15, d) if !d.is_empty() => m.domain = Some(d),
            (51, [a, b, c, d]) => m.lease_secs = Some(u32::from_be_bytes([*a, *b, *c, *d])),
            // flags, rcode1, rcode2, name (E flag 0x04: DNS wire format).
            (81, [flags, _, _, name @ ..]) if !name.is_empty() => {
                m.fqdn = if flags & 0x04 != 0 {
                    wire_name(name)
                } else {
                    Some(String::from_utf8_lossy(name).into_owned())
                };
            }
            _ => {}
        }
    }
    Ok(m)
}

/// A DNS-wire-format name without compression (RFC 4702/4704): labels up to
/// the root label or the end (a partial name); `None` if broken or empty.
pub fn wire_name(mut b: &[u8]) -> Option<String> {
    let mut out = String::new();
    while let [len, rest @ ..] = b {
        let len = usize::from(*len);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = rest.get(..len)?;
        if out.len() + len + 1 > 255 {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(label));
        b = &rest[len..];
    }
    (!out.is_empty()).then_some(out)
}

pub const V6_SOLICIT: u8 = 1;
pub const V6_REQUEST: u8 = 3;
pub const V6_RENEW: u8 = 5;
pub const V6_REBIND: u8 = 6;
pub const V6_REPLY: u8 = 7;
pub const V6_RELEASE: u8 = 8;

/// Addresses one DHCPv6 message carries (IA_NA/IAADDR), at most this many.
pub const MAX_V6_ADDRESSES: usize = 8;

/// A DHCPv6 message (client/server form; relay messages are not read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dhcp6<'a> {
    pub msg_type: u8,
    pub txid: u32,
    /// Option 1 (DUID).
    pub client_id: Option<&'a [u8]>,
    /// IAADDRs of IA_NA options: address and valid lifetime (seconds).
    pub addresses: Vec<(Ipv6Addr, u32)>,
    /// Option 39's domain name.
    pub fqdn: Option<String>,
}

/// Parses a DHCPv6 message: type, transaction id, options.
pub fn parse_dhcp6(p: &[u8]) -> Result<Dhcp6<'_>, NameError> {
    let [t, a, b, c, opts @ ..] = p else {
        return Err(NameError::Malformed);
    };
    // Relay-forward/reply (12, 13) and unknown types carry nothing here.
    if !(1..=11).contains(t) {
        return Err(NameError::Malformed);
    }
    let mut m = Dhcp6 {
        msg_type: *t,
        txid: u32::from_be_bytes([0, *a, *b, *c]),
        ..Dhcp6::default()
    };
    for (code, data) in options6(opts) {
        match code {
            1 if !data.is_empty() => m.client_id = Some(data),
            // IA_NA: IAID(4) T1(4) T2(4) options.
            3 => {
                for (sub, d) in options6(data.get(12..).unwrap_or(&[])) {
                    if let (5, Some(addr)) = (sub, d.get(..24))
                        && m.addresses.len() < MAX_V6_ADDRESSES
                    {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(&addr[..16]);
                        let valid = u32::from_be_bytes([addr[20], addr[21], addr[22], addr[23]]);
                        m.addresses.push((Ipv6Addr::from(a), valid));
                    }
                }
            }
            39 => m.fqdn = data.get(1..).and_then(wire_name),
            _ => {}
        }
    }
    Ok(m)
}

/// DHCPv6 options (code, data) until the end or a broken one.
fn options6(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let [c0, c1, l0, l1, rest @ ..] = b else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let data = rest.get(..len)?;
        b = &rest[len..];
        Some((u16::from_be_bytes([*c0, *c1]), data))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dhcp4(op: u8, yiaddr: [u8; 4], options: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 240];
        p[0] = op;
        p[1] = 1;
        p[2] = 6;
        p[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        p[16..20].copy_from_slice(&yiaddr);
        p[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        p[236..240].copy_from_slice(&MAGIC);
        p.extend_from_slice(options);
        p
    }

    #[test]
    fn dhcp4_ack_with_name_domain_and_lease() {
        let opts = [
            53, 1, 5, // ACK
            51, 4, 0, 0, 0x0e, 0x10, // 3600 s
            12, 4, b'p', b'c', b'0', b'1', //
            0,    // pad
            15, 8, b'c', b'o', b'r', b'p', b'.', b'e', b'x', 0, //
            255,
        ];
        let p = dhcp4(2, [10, 0, 0, 5], &opts);
        let m = parse_dhcp4(&p).unwrap();
        assert_eq!(m.msg_type, Some(DHCP_ACK));
        assert_eq!(m.yiaddr, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(m.lease_secs, Some(3600));
        assert_eq!(m.chaddr, [2, 0, 0, 0, 0, 1]);
        assert_eq!(m.name().as_deref(), Some("pc01.corp.ex"));
    }

    #[test]
    fn dhcp4_fqdn_wire_and_ascii() {
        let wire = [
            81, 10, 0x05, 0, 0, 2, b'p', b'c', 2, b'e', b'x', 0, 53, 1, 3,
        ];
        let p = dhcp4(1, [0; 4], &wire);
        let m = parse_dhcp4(&p).unwrap();
        assert_eq!(m.fqdn.as_deref(), Some("pc.ex"));
        assert_eq!(m.msg_type, Some(DHCP_REQUEST));
        let ascii = [81, 8, 0x01, 0, 0, b'h', b'.', b'e', b'x', b'.'];
        let p = dhcp4(1, [0; 4], &ascii);
        let m = parse_dhcp4(&p).unwrap();
        assert_eq!(m.name().as_deref(), Some("h.ex."));
    }

    #[test]
    fn dhcp4_hostile() {
        assert_eq!(parse_dhcp4(&[0; 239]), Err(NameError::Malformed));
        let mut bad = dhcp4(2, [0; 4], &[]);
        bad[236] = 0;
        assert_eq!(parse_dhcp4(&bad), Err(NameError::Malformed));
        // An option past the end, a lease of the wrong size: ignored.
        let p = dhcp4(2, [0; 4], &[51, 3, 0, 0, 1, 12, 200, b'x']);
        let m = parse_dhcp4(&p).unwrap();
        assert_eq!((m.lease_secs, m.host_name), (None, None));
        // Labels too long or looping cannot happen: no compression is read.
        assert_eq!(wire_name(&[64, b'a']), None);
        assert_eq!(wire_name(&[0xc0, 0x00]), None);
        assert_eq!(wire_name(&[3, b'a']), None);
    }

    #[test]
    fn dhcp6_reply() {
        let mut p = vec![V6_REPLY, 0xab, 0xcd, 0xef];
        p.extend_from_slice(&[0, 1, 0, 4, 0, 3, 0, 1]); // client id
        let mut ia = vec![0u8; 12];
        ia.extend_from_slice(&[0, 5, 0, 24]);
        ia.extend_from_slice(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
        ]);
        ia.extend_from_slice(&[0, 0, 0x0e, 0x10, 0, 0, 0x1c, 0x20]);
        p.extend_from_slice(&[0, 3]);
        p.extend_from_slice(&(ia.len() as u16).to_be_bytes());
        p.extend_from_slice(&ia);
        p.extend_from_slice(&[0, 39, 0, 9, 0, 3, b'p', b'c', b'6', 2, b'e', b'x', 0]);
        let m = parse_dhcp6(&p).unwrap();
        assert_eq!(m.txid, 0xabcdef);
        assert_eq!(m.client_id, Some(&[0, 3, 0, 1][..]));
        assert_eq!(m.addresses, vec![("2001:db8::42".parse().unwrap(), 7200)]);
        assert_eq!(m.fqdn.as_deref(), Some("pc6.ex"));
        // A cut option ends the walk; relay messages are not read.
        assert!(parse_dhcp6(&p[..p.len() - 3]).unwrap().fqdn.is_none());
        assert_eq!(parse_dhcp6(&[12, 0, 0, 0]), Err(NameError::Malformed));
        assert_eq!(parse_dhcp6(&[7, 0]), Err(NameError::Malformed));
    }
}
