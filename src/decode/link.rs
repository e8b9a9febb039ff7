//! Link layers: Ethernet (with 802.1Q/802.1ad tags, QinQ, and PPPoE sessions,
//! RFC 2516, behind them), Linux cooked capture
//! v1 and v2, raw IP, and BSD loopback (DLT_NULL / DLT_LOOP).
//!
//! Input: a pcap link type and a frame. Output: the network-layer bytes and which
//! IP version they are, or `Other` for non-IP frames. Invariant: at most
//! [`MAX_VLAN_TAGS`] tags are unwrapped; every offset is bounds-checked.

use super::{DecodeError, ErrorKind, Layer};

pub const LINKTYPE_NULL: i32 = 0;
pub const LINKTYPE_ETHERNET: i32 = 1;
/// DLT_RAW as some platforms number it.
pub const LINKTYPE_RAW_ALT1: i32 = 12;
pub const LINKTYPE_RAW_ALT2: i32 = 14;
pub const LINKTYPE_RAW: i32 = 101;
pub const LINKTYPE_LOOP: i32 = 108;
pub const LINKTYPE_LINUX_SLL: i32 = 113;
pub const LINKTYPE_IPV4: i32 = 228;
pub const LINKTYPE_IPV6: i32 = 229;
pub const LINKTYPE_LINUX_SLL2: i32 = 276;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// MPLS unicast and multicast (decoded by `tunnel`, recognised here).
pub const ETHERTYPE_MPLS: u16 = 0x8847;
pub const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD1: u16 = 0x9100;
const ETHERTYPE_QINQ_OLD2: u16 = 0x9200;

/// PPPoE session stage (RFC 2516); discovery (0x8863) carries no IP.
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// How many VLAN tags one frame may carry before we give up.
pub const MAX_VLAN_TAGS: usize = 4;

/// The network layer of a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Network<'a> {
    Ipv4(&'a [u8]),
    Ipv6(&'a [u8]),
    /// An MPLS label stack (ethertype 0x8847/0x8848), unwrapped by the tunnel decoder.
    Mpls(&'a [u8]),
    Other,
}

const fn err(kind: ErrorKind) -> DecodeError {
    DecodeError::new(Layer::Link, kind)
}

/// The link types [`parse_link`] decodes.
pub fn is_supported_link(linktype: i32) -> bool {
    matches!(
        linktype,
        LINKTYPE_ETHERNET
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_LINUX_SLL2
            | LINKTYPE_RAW
            | LINKTYPE_RAW_ALT1
            | LINKTYPE_RAW_ALT2
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_NULL
            | LINKTYPE_LOOP
    )
}

/// Strips the link header of `data`.
pub fn parse_link(linktype: i32, data: &[u8]) -> Result<Network<'_>, DecodeError> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let ethertype = be16(data, 12)?;
            by_ethertype(ethertype, rest(data, 14)?)
        }
        LINKTYPE_LINUX_SLL => {
            let protocol = be16(data, 14)?;
            by_ethertype(protocol, rest(data, 16)?)
        }
        LINKTYPE_LINUX_SLL2 => {
            let protocol = be16(data, 0)?;
            by_ethertype(protocol, rest(data, 20)?)
        }
        LINKTYPE_RAW | LINKTYPE_RAW_ALT1 | LINKTYPE_RAW_ALT2 => by_version_nibble(data),
        LINKTYPE_IPV4 => Ok(Network::Ipv4(data)),
        LINKTYPE_IPV6 => Ok(Network::Ipv6(data)),
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let family = data.get(..4).ok_or(err(ErrorKind::Truncated))?;
            let le = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            let be = u32::from_be_bytes([family[0], family[1], family[2], family[3]]);
            let payload = &data[4..];
            // AF_INET is 2 everywhere; AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS), 10 (Linux).
            let is = |v: u32| [le, be].contains(&v);
            if is(2) {
                Ok(Network::Ipv4(payload))
            } else if is(24) || is(28) || is(30) || is(10) {
                Ok(Network::Ipv6(payload))
            } else {
                Ok(Network::Other)
            }
        }
        _ => Err(err(ErrorKind::UnsupportedLinkType)),
    }
}

/// Unwraps VLAN tags and maps the final ethertype.
fn by_ethertype(mut ethertype: u16, mut data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let mut tags = 0;
    loop {
        match ethertype {
            ETHERTYPE_IPV4 => return Ok(Network::Ipv4(data)),
            ETHERTYPE_IPV6 => return Ok(Network::Ipv6(data)),
            ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => {
                return Ok(Network::Mpls(data));
            }
            ETHERTYPE_PPPOE_SESSION => return parse_pppoe(data),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD1 | ETHERTYPE_QINQ_OLD2 => {
                tags += 1;
                if tags > MAX_VLAN_TAGS {
                    return Err(err(ErrorKind::TooDeep));
                }
                ethertype = be16(data, 2)?;
                data = rest(data, 4)?;
            }
            _ => return Ok(Network::Other),
        }
    }
}

/// A PPPoE session frame (after the ethertype): version and type 1, code 0,
/// the session id, the payload length; then the PPP protocol (two bytes, or
/// one when compressed: an odd first byte).
pub fn parse_pppoe(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let h = data
        .get(..6)
        .ok_or(DecodeError::new(Layer::Pppoe, ErrorKind::Truncated))?;
    if h[0] != 0x11 || h[1] != 0 {
        return Err(DecodeError::new(Layer::Pppoe, ErrorKind::BadHeader));
    }
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    // The length bounds the payload (Ethernet padding may follow); a frame
    // cut by the snap length keeps what was captured.
    let payload = &data[6..];
    let payload = payload.get(..len).unwrap_or(payload);
    let (protocol, inner) = match payload {
        [p, rest @ ..] if p & 1 == 1 => (u16::from(*p), rest),
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return Err(DecodeError::new(Layer::Pppoe, ErrorKind::Truncated)),
    };
    Ok(match protocol {
        PPP_IPV4 => Network::Ipv4(inner),
        PPP_IPV6 => Network::Ipv6(inner),
        _ => Network::Other, // LCP, IPCP, authentication, ...
    })
}

fn by_version_nibble(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    match data.first().map(|b| b >> 4) {
        Some(4) => Ok(Network::Ipv4(data)),
        Some(6) => Ok(Network::Ipv6(data)),
        Some(_) => Err(err(ErrorKind::BadHeader)),
        None => Err(err(ErrorKind::Truncated)),
    }
}

fn be16(data: &[u8], at: usize) -> Result<u16, DecodeError> {
    match data.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(err(ErrorKind::Truncated)),
    }
}

fn rest(data: &[u8], at: usize) -> Result<&[u8], DecodeError> {
    data.get(at..).ok_or(err(ErrorKind::Truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP4: [u8; 2] = [0x45, 0x00];

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 12];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decode_pppoe_session() {
        const IP: &[u8] = &[
            0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let mut f = vec![0x11, 0, 0x12, 0x34, 0, (IP.len() + 2) as u8, 0, 0x21];
        f.extend(IP);
        f.extend([0; 6]); // Ethernet padding
        assert_eq!(parse_pppoe(&f), Ok(Network::Ipv4(IP)));
        // Protocol field compression, IPv6, LCP.
        let pfc = [&[0x11, 0, 0, 1, 0, 21, 0x21][..], IP].concat();
        assert_eq!(parse_pppoe(&pfc), Ok(Network::Ipv4(IP)));
        assert_eq!(
            parse_pppoe(&[0x11, 0, 0, 1, 0, 4, 0xc0, 0x21, 1, 1]),
            Ok(Network::Other)
        );
        assert_eq!(
            parse_pppoe(&[0x11, 0x09, 0, 0, 0, 0]),
            Err(DecodeError::new(Layer::Pppoe, ErrorKind::BadHeader))
        );
        assert_eq!(
            parse_pppoe(&[0x11, 0]),
            Err(DecodeError::new(Layer::Pppoe, ErrorKind::Truncated))
        );
    }

    #[test]
    fn decode_ethernet() {
        let f = eth(ETHERTYPE_IPV4, &IP4);
        assert_eq!(
            parse_link(LINKTYPE_ETHERNET, &f),
            Ok(Network::Ipv4(&IP4[..]))
        );
    }

    #[test]
    fn decode_qinq() {
        let mut inner = vec![0x00, 0x0a];
        inner.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        inner.extend_from_slice(&[0x00, 0x14]);
        inner.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        inner.extend_from_slice(&[0x60, 0]);
        let f = eth(ETHERTYPE_QINQ, &inner);
        assert_eq!(
            parse_link(LINKTYPE_ETHERNET, &f),
            Ok(Network::Ipv6(&[0x60, 0][..]))
        );
    }

    #[test]
    fn decode_vlan_too_deep() {
        let mut inner = Vec::new();
        for _ in 0..=MAX_VLAN_TAGS {
            inner.extend_from_slice(&[0, 1]);
            inner.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        }
        let f = eth(ETHERTYPE_VLAN, &inner);
        assert_eq!(
            parse_link(LINKTYPE_ETHERNET, &f),
            Err(err(ErrorKind::TooDeep))
        );
    }

    #[test]
    fn decode_truncated() {
        assert_eq!(
            parse_link(LINKTYPE_ETHERNET, &[0; 13]),
            Err(err(ErrorKind::Truncated))
        );
        let f = eth(ETHERTYPE_VLAN, &[0, 1, 0x08]);
        assert_eq!(
            parse_link(LINKTYPE_ETHERNET, &f),
            Err(err(ErrorKind::Truncated))
        );
        assert_eq!(
            parse_link(LINKTYPE_LINUX_SLL2, &[0x08, 0]),
            Err(err(ErrorKind::Truncated))
        );
        assert_eq!(
            parse_link(LINKTYPE_NULL, &[2, 0]),
            Err(err(ErrorKind::Truncated))
        );
    }

    #[test]
    fn decode_non_ip() {
        let arp = eth(0x0806, &[0; 28]);
        assert_eq!(parse_link(LINKTYPE_ETHERNET, &arp), Ok(Network::Other));
    }

    #[test]
    fn decode_sll_and_sll2() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        sll.extend_from_slice(&IP4);
        assert_eq!(
            parse_link(LINKTYPE_LINUX_SLL, &sll),
            Ok(Network::Ipv4(&IP4[..]))
        );
        let mut sll2 = ETHERTYPE_IPV6.to_be_bytes().to_vec();
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&[0x60]);
        assert_eq!(
            parse_link(LINKTYPE_LINUX_SLL2, &sll2),
            Ok(Network::Ipv6(&[0x60][..]))
        );
    }

    #[test]
    fn decode_loopback_both_byte_orders() {
        let le = [2, 0, 0, 0, 0x45];
        let be = [0, 0, 0, 2, 0x45];
        let v6 = [30, 0, 0, 0, 0x60];
        assert_eq!(
            parse_link(LINKTYPE_NULL, &le),
            Ok(Network::Ipv4(&[0x45][..]))
        );
        assert_eq!(
            parse_link(LINKTYPE_LOOP, &be),
            Ok(Network::Ipv4(&[0x45][..]))
        );
        assert_eq!(
            parse_link(LINKTYPE_NULL, &v6),
            Ok(Network::Ipv6(&[0x60][..]))
        );
    }

    #[test]
    fn decode_raw() {
        assert_eq!(parse_link(LINKTYPE_RAW, &IP4), Ok(Network::Ipv4(&IP4[..])));
        assert_eq!(
            parse_link(LINKTYPE_RAW, &[0x70]),
            Err(err(ErrorKind::BadHeader))
        );
        assert_eq!(
            parse_link(147, &IP4),
            Err(err(ErrorKind::UnsupportedLinkType))
        );
    }
}
