//! Tunnels that mirror ports deliver traffic in: VXLAN and Geneve over UDP
//! (Azure Virtual Network TAP uses VXLAN), GRE carrying Ethernet (transparent
//! bridging), IP, MPLS or ERSPAN types I, II and III, MPLS label stacks, and
//! IP-in-IP.
//!
//! Input: the payload of the outer layer (a UDP datagram, a GRE packet, an MPLS
//! label stack). Output: the inner network layer, [`Network::Other`] when the
//! inner packet is nothing for the census, or a [`DecodeError`] naming the
//! tunnel layer. Invariant: every length is checked against the bytes at hand;
//! nothing allocates; nesting is bounded by the caller's depth loop
//! ([`super::MAX_TUNNEL_DEPTH`]) and here by [`MAX_MPLS_LABELS`].

use super::link::{
    self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_MPLS, ETHERTYPE_MPLS_MULTICAST,
    LINKTYPE_ETHERNET, Network,
};
use super::{DecodeError, ErrorKind, Layer, access, err, get};

pub const PROTO_IPIP: u8 = 4;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_GRE: u8 = 47;

pub const VXLAN_PORT: u16 = 4789;
pub const GENEVE_PORT: u16 = 6081;
/// Most ports per tunnel kind (`--vxlan-port`, `--geneve-port`).
pub const MAX_PORTS: usize = 8;

const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN_I_II: u16 = 0x88be;
const GRE_ERSPAN_III: u16 = 0x22eb;

/// Labels beyond this many in one stack are an error (real stacks hold a few).
pub const MAX_MPLS_LABELS: usize = 16;

/// The UDP ports VXLAN and Geneve are recognised on (destination port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelPorts {
    vxlan: [u16; MAX_PORTS],
    n_vxlan: usize,
    geneve: [u16; MAX_PORTS],
    n_geneve: usize,
}

impl Default for TunnelPorts {
    fn default() -> Self {
        TunnelPorts::new(&[VXLAN_PORT], &[GENEVE_PORT]).unwrap_or(TunnelPorts {
            vxlan: [0; MAX_PORTS],
            n_vxlan: 0,
            geneve: [0; MAX_PORTS],
            n_geneve: 0,
        })
    }
}

impl TunnelPorts {
    /// `None` when a list holds more than [`MAX_PORTS`] ports, a port 0, or a
    /// port in both lists.
    pub fn new(vxlan: &[u16], geneve: &[u16]) -> Option<TunnelPorts> {
        if vxlan.len() > MAX_PORTS
            || geneve.len() > MAX_PORTS
            || vxlan.iter().chain(geneve).any(|&p| p == 0)
            || vxlan.iter().any(|p| geneve.contains(p))
        {
            return None;
        }
        let mut t = TunnelPorts {
            vxlan: [0; MAX_PORTS],
            n_vxlan: vxlan.len(),
            geneve: [0; MAX_PORTS],
            n_geneve: geneve.len(),
        };
        t.vxlan[..vxlan.len()].copy_from_slice(vxlan);
        t.geneve[..geneve.len()].copy_from_slice(geneve);
        Some(t)
    }

    pub fn vxlan(&self) -> &[u16] {
        &self.vxlan[..self.n_vxlan]
    }

    pub fn geneve(&self) -> &[u16] {
        &self.geneve[..self.n_geneve]
    }
}

fn be16(data: &[u8], at: usize, layer: Layer) -> Result<u16, DecodeError> {
    let b = get(data, at, 2, layer)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn rest(data: &[u8], at: usize, layer: Layer) -> Result<&[u8], DecodeError> {
    data.get(at..).ok_or(err(layer, ErrorKind::Truncated))
}

/// An inner Ethernet frame: its network layer (VLAN tags unwrapped).
fn ethernet(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    link::parse_link(LINKTYPE_ETHERNET, data)
}

/// A UDP datagram: the inner layer when its destination port is a VXLAN or
/// Geneve port, GTP-U's (2152), or CAPWAP data's (5247, either way), else
/// `Other`.
pub fn parse_udp<'a>(data: &'a [u8], ports: &TunnelPorts) -> Result<Udp<'a>, DecodeError> {
    let src = be16(data, 0, Layer::Udp)?;
    let dst = be16(data, 2, Layer::Udp)?;
    let len = usize::from(be16(data, 4, Layer::Udp)?);
    if len != 0 && len < 8 {
        return Err(err(Layer::Udp, ErrorKind::BadHeader));
    }
    // The UDP length bounds the payload (Ethernet padding follows short ones);
    // 0 (IPv6 jumbograms) or a longer length: what was captured.
    let payload = rest(data, 8, Layer::Udp)?;
    let payload = if len >= 8 {
        payload.get(..len - 8).unwrap_or(payload)
    } else {
        payload
    };
    Ok(if ports.vxlan().contains(&dst) {
        Udp::Tunnel(parse_vxlan(payload)?)
    } else if ports.geneve().contains(&dst) {
        Udp::Tunnel(parse_geneve(payload)?)
    } else if dst == access::GTPU_PORT {
        Udp::Tunnel(access::parse_gtpu(payload)?)
    } else if dst == access::CAPWAP_DATA_PORT || src == access::CAPWAP_DATA_PORT {
        Udp::Tunnel(access::parse_capwap(payload)?)
    } else if src == DNS_PORT {
        Udp::Dns(payload)
    } else if let Some(kind) = NamePort::of(src, dst) {
        Udp::Names(kind, payload)
    } else {
        Udp::Other
    })
}

/// UDP services that say which name a host has (passive host names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamePort {
    /// DHCPv4, ports 67/68 either way.
    Dhcp4,
    /// DHCPv6, ports 546/547 either way.
    Dhcp6,
    /// NetBIOS name service, port 137 either way.
    Nbns,
    /// Multicast DNS responses (from port 5353).
    Mdns,
    /// LLMNR responses (from port 5355).
    Llmnr,
    /// Kerberos requests (to port 88).
    Kerberos,
}

pub const KERBEROS_PORT: u16 = 88;

impl NamePort {
    /// The service of a datagram between these ports, if it names hosts.
    pub fn of(src: u16, dst: u16) -> Option<NamePort> {
        Some(match (src, dst) {
            (67 | 68, 67 | 68) => NamePort::Dhcp4,
            (546 | 547, 546 | 547) => NamePort::Dhcp6,
            (137, _) | (_, 137) => NamePort::Nbns,
            (5353, _) => NamePort::Mdns,
            (5355, _) => NamePort::Llmnr,
            (_, KERBEROS_PORT) => NamePort::Kerberos,
            _ => return None,
        })
    }
}

/// DNS responses come from this port (passive DNS, see `crate::dns`).
pub const DNS_PORT: u16 = 53;

/// What a UDP datagram carries for the census.
#[derive(Debug, PartialEq, Eq)]
pub enum Udp<'a> {
    /// VXLAN or Geneve: the encapsulated network layer.
    Tunnel(Network<'a>),
    /// A datagram from port 53.
    Dns(&'a [u8]),
    /// A datagram of a service that names hosts.
    Names(NamePort, &'a [u8]),
    Other,
}

/// RFC 7348: flags (I bit set), reserved, VNI, reserved; then Ethernet.
pub fn parse_vxlan(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let h = get(data, 0, 8, Layer::Vxlan)?;
    if h[0] & 0x08 == 0 {
        return Err(err(Layer::Vxlan, ErrorKind::BadHeader));
    }
    ethernet(&data[8..])
}

/// RFC 8926: version 0, option length in 4-byte words, protocol type.
pub fn parse_geneve(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let h = get(data, 0, 8, Layer::Geneve)?;
    if h[0] >> 6 != 0 {
        return Err(err(Layer::Geneve, ErrorKind::BadHeader));
    }
    let opt_len = usize::from(h[0] & 0x3f) * 4;
    let protocol = u16::from_be_bytes([h[2], h[3]]);
    let inner = rest(data, 8 + opt_len, Layer::Geneve)?;
    by_protocol(protocol, inner)
}

/// An inner payload named by an ethertype-style protocol number.
fn by_protocol(protocol: u16, inner: &[u8]) -> Result<Network<'_>, DecodeError> {
    match protocol {
        GRE_TEB => ethernet(inner),
        ETHERTYPE_IPV4 => Ok(Network::Ipv4(inner)),
        ETHERTYPE_IPV6 => Ok(Network::Ipv6(inner)),
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST => Ok(Network::Mpls(inner)),
        _ => Ok(Network::Other),
    }
}

/// RFC 2784/2890 GRE version 0 (version 1 is PPTP: nothing for us), with
/// ERSPAN (draft-foschiano-erspan): type I has no header of its own (protocol
/// 0x88BE without a sequence number), type II 8 bytes, type III 12 bytes plus
/// an optional 8-byte platform sub-header.
pub fn parse_gre(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let flags = be16(data, 0, Layer::Gre)?;
    let protocol = be16(data, 2, Layer::Gre)?;
    if flags & 0x0007 != 0 {
        return Ok(Network::Other); // version 1 (PPTP) or unknown
    }
    // Routing (R, RFC 1701) is obsolete and variable-length: refuse it.
    if flags & 0x4000 != 0 {
        return Err(err(Layer::Gre, ErrorKind::BadHeader));
    }
    let has_checksum = flags & 0x8000 != 0;
    let has_key = flags & 0x2000 != 0;
    let has_seq = flags & 0x1000 != 0;
    let header = 4 + 4 * (usize::from(has_checksum) + usize::from(has_key) + usize::from(has_seq));
    let inner = rest(data, header, Layer::Gre)?;
    match protocol {
        GRE_ERSPAN_I_II if !has_seq => ethernet(inner),
        GRE_ERSPAN_I_II => {
            let h = get(inner, 0, 8, Layer::Erspan)?;
            if h[0] >> 4 != 1 {
                return Err(err(Layer::Erspan, ErrorKind::BadHeader));
            }
            ethernet(&inner[8..])
        }
        GRE_ERSPAN_III => {
            let h = get(inner, 0, 12, Layer::Erspan)?;
            if h[0] >> 4 != 2 {
                return Err(err(Layer::Erspan, ErrorKind::BadHeader));
            }
            let platform = h[11] & 0x01 != 0; // O bit: platform-specific sub-header
            ethernet(rest(
                inner,
                12 + if platform { 8 } else { 0 },
                Layer::Erspan,
            )?)
        }
        _ => by_protocol(protocol, inner),
    }
}

/// An MPLS label stack (RFC 3032) up to the bottom-of-stack label, then IPv4 or
/// IPv6 by the version nibble, or Ethernet behind a pseudowire control word
/// (first nibble 0, RFC 4385).
pub fn parse_mpls(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let mut at = 0;
    for _ in 0..MAX_MPLS_LABELS {
        let entry = get(data, at, 4, Layer::Mpls)?;
        at += 4;
        if entry[2] & 0x01 != 0 {
            let inner = &data[at..];
            return match inner.first().map(|b| b >> 4) {
                Some(4) => Ok(Network::Ipv4(inner)),
                Some(6) => Ok(Network::Ipv6(inner)),
                Some(0) => ethernet(rest(inner, 4, Layer::Mpls)?),
                Some(_) => Ok(Network::Other),
                None => Err(err(Layer::Mpls, ErrorKind::Truncated)),
            };
        }
    }
    Err(err(Layer::Mpls, ErrorKind::TooDeep))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoded, decode_frame, decode_frame_with};

    /// Ethernet + IPv4 (192.0.2.11 -> 192.0.2.1) + TCP 40000 -> 443, no payload.
    fn inner_frame() -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[
            0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 11, 192, 0, 2, 1,
        ]);
        f.extend_from_slice(&[
            0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        f
    }

    fn outer(proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 3, 2, 0, 0, 0, 0, 4, 0x08, 0x00];
        let len = (20 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (len >> 8) as u8, len as u8, 0, 2, 0, 0, 64, proto]);
        f.extend_from_slice(&[0, 0, 198, 51, 100, 1, 198, 51, 100, 2]);
        f.extend_from_slice(payload);
        f
    }

    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = (8 + payload.len()) as u16;
        let mut u = vec![0xc0, 0, (dport >> 8) as u8, dport as u8];
        u.extend_from_slice(&[(len >> 8) as u8, len as u8, 0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn vxlan(frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0, 0, 0x10, 0x92, 0];
        v.extend_from_slice(frame);
        v
    }

    fn err(layer: Layer, kind: ErrorKind) -> Result<Decoded<'static>, DecodeError> {
        Err(DecodeError::new(layer, kind))
    }

    #[test]
    fn tunnel_vxlan_yields_inner_flow() {
        let plain = inner_frame();
        let want = decode_frame(1, &plain);
        assert!(matches!(want, Ok(Decoded::Tcp { .. })));
        let wrapped = outer(PROTO_UDP, &udp(VXLAN_PORT, &vxlan(&plain)));
        assert_eq!(decode_frame(1, &wrapped), want);
        // Another port: just UDP.
        let other = outer(PROTO_UDP, &udp(8472, &vxlan(&plain)));
        assert_eq!(decode_frame(1, &other), Ok(Decoded::Other));
        let ports = TunnelPorts::new(&[8472], &[GENEVE_PORT]).unwrap();
        assert_eq!(decode_frame_with(1, &other, &ports), want);
    }

    #[test]
    fn tunnel_errors_name_the_layer() {
        let plain = inner_frame();
        let mut no_i_flag = vxlan(&plain);
        no_i_flag[0] = 0;
        let cases: Vec<(Vec<u8>, Result<Decoded<'static>, DecodeError>)> = vec![
            (
                outer(PROTO_UDP, &[0, 1, 2]),
                err(Layer::Udp, ErrorKind::Truncated),
            ),
            (
                outer(PROTO_UDP, &udp(VXLAN_PORT, &[0x08, 0, 0])),
                err(Layer::Vxlan, ErrorKind::Truncated),
            ),
            (
                outer(PROTO_UDP, &udp(VXLAN_PORT, &no_i_flag)),
                err(Layer::Vxlan, ErrorKind::BadHeader),
            ),
            (
                outer(
                    PROTO_UDP,
                    &udp(GENEVE_PORT, &[0x3f, 0, 0x65, 0x58, 0, 0, 0, 0]),
                ),
                err(Layer::Geneve, ErrorKind::Truncated),
            ),
            (
                outer(
                    PROTO_UDP,
                    &udp(GENEVE_PORT, &[0x80, 0, 0x65, 0x58, 0, 0, 0, 0]),
                ),
                err(Layer::Geneve, ErrorKind::BadHeader),
            ),
            (
                outer(PROTO_GRE, &[0x20, 0]),
                err(Layer::Gre, ErrorKind::Truncated),
            ),
            (
                outer(PROTO_GRE, &[0x40, 0, 0x65, 0x58]),
                err(Layer::Gre, ErrorKind::BadHeader),
            ),
            (
                outer(PROTO_GRE, &[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0]),
                err(Layer::Erspan, ErrorKind::Truncated),
            ),
            (
                outer(
                    PROTO_GRE,
                    &[
                        0x10, 0, 0x22, 0xeb, 0, 0, 0, 1, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    ],
                ),
                err(Layer::Erspan, ErrorKind::BadHeader),
            ),
            // PPTP's GRE version 1: not a tunnel we read.
            (
                outer(PROTO_GRE, &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0]),
                Ok(Decoded::Other),
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(decode_frame(1, &frame), want, "{frame:02x?}");
        }
    }

    #[test]
    fn tunnel_mpls_stack_and_depth_limits() {
        let plain = inner_frame();
        let ip = &plain[14..];
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x88, 0x47]);
        f.extend_from_slice(&[0, 0x10, 0x00, 64, 0, 0x20, 0x01, 64]); // two labels, BoS on the second
        f.extend_from_slice(ip);
        assert_eq!(decode_frame(1, &f), decode_frame(1, &plain));
        // A stack without bottom: too deep.
        let mut endless = plain[..12].to_vec();
        endless.extend_from_slice(&[0x88, 0x47]);
        for _ in 0..MAX_MPLS_LABELS + 1 {
            endless.extend_from_slice(&[0, 0x10, 0x00, 64]);
        }
        assert_eq!(
            decode_frame(1, &endless),
            err(Layer::Mpls, ErrorKind::TooDeep)
        );
        // IP-in-IP nested beyond the tunnel depth limit.
        let mut pkt = ip.to_vec();
        for _ in 0..crate::decode::MAX_TUNNEL_DEPTH {
            pkt = outer(PROTO_IPIP, &pkt)[14..].to_vec();
        }
        let mut deep = plain[..14].to_vec();
        deep.extend_from_slice(&pkt);
        assert_eq!(
            decode_frame(1, &deep),
            err(Layer::Tunnel, ErrorKind::TooDeep)
        );
        // One level less decodes.
        let mut ok = plain[..14].to_vec();
        ok.extend_from_slice(&pkt[20..]);
        assert_eq!(decode_frame(1, &ok), decode_frame(1, &plain));
    }

    #[test]
    fn tunnel_ports_validated() {
        assert!(TunnelPorts::new(&[4789], &[6081]).is_some());
        assert!(TunnelPorts::new(&[0], &[6081]).is_none());
        assert!(TunnelPorts::new(&[4789], &[4789]).is_none());
        assert!(TunnelPorts::new(&[1; MAX_PORTS + 1], &[]).is_none());
    }
}
