//! Frame decoding: link layer → IP → TCP, borrowing the frame's bytes.
//!
//! Input: a link type and the captured bytes of one frame. Output: a
//! [`Decoded`] view (TCP segment with addresses, an IP fragment to be joined,
//! or a packet we do not need) or a [`DecodeError`] naming the layer and the
//! reason. Invariant: every length field is checked against the captured bytes;
//! no path panics; nothing is allocated.

pub mod access;
pub mod dns;
pub mod frag;
pub mod ip;
pub mod l4;
pub mod link;
pub mod tunnel;

use std::net::IpAddr;

pub use frag::FragmentCache;
pub use ip::{FragInfo, IpPacket};
pub use l4::TcpSegment;
pub use tunnel::{NamePort, TunnelPorts};

/// Most network layers one frame may nest (an IP packet, each tunnel, the
/// inner packet): enough for VXLAN in GRE in MPLS, and a bound on hostile
/// frames that nest tunnels in themselves.
pub const MAX_TUNNEL_DEPTH: usize = 8;

/// The layer a decode error happened at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    Link,
    Ipv4,
    Ipv6,
    Tcp,
    Udp,
    Gre,
    Vxlan,
    Geneve,
    Erspan,
    Mpls,
    /// The nesting of tunnels as a whole.
    Tunnel,
    Pppoe,
    Gtp,
    Capwap,
}

/// Why a frame could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A header field has an impossible value.
    BadHeader,
    /// More nested headers than the depth limit.
    TooDeep,
    /// A link type we do not decode.
    UnsupportedLinkType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecodeError {
    pub layer: Layer,
    pub kind: ErrorKind,
}

impl DecodeError {
    pub const fn new(layer: Layer, kind: ErrorKind) -> Self {
        DecodeError { layer, kind }
    }

    /// The `reason` label of the decode error counter.
    pub fn reason(self) -> DecodeReason {
        use ErrorKind::*;
        use Layer::*;
        match (self.layer, self.kind) {
            (Link, Truncated) => DecodeReason::LinkTruncated,
            (Link, BadHeader) => DecodeReason::LinkBadHeader,
            (Link, TooDeep) => DecodeReason::LinkTooDeep,
            (Link, UnsupportedLinkType) => DecodeReason::LinkUnsupported,
            (Ipv4, Truncated) => DecodeReason::Ipv4Truncated,
            (Ipv4, BadHeader) => DecodeReason::Ipv4BadHeader,
            (Ipv4, _) => DecodeReason::Ipv4Other,
            (Ipv6, Truncated) => DecodeReason::Ipv6Truncated,
            (Ipv6, BadHeader) => DecodeReason::Ipv6BadHeader,
            (Ipv6, TooDeep) => DecodeReason::Ipv6TooDeep,
            (Ipv6, _) => DecodeReason::Ipv6Other,
            (Tcp, Truncated) => DecodeReason::TcpTruncated,
            (Tcp, BadHeader) => DecodeReason::TcpBadHeader,
            (Tcp, _) => DecodeReason::TcpOther,
            (Udp, Truncated) => DecodeReason::UdpTruncated,
            (Udp, _) => DecodeReason::UdpBadHeader,
            (Gre, Truncated) => DecodeReason::GreTruncated,
            (Gre, _) => DecodeReason::GreBadHeader,
            (Vxlan, Truncated) => DecodeReason::VxlanTruncated,
            (Vxlan, _) => DecodeReason::VxlanBadHeader,
            (Geneve, Truncated) => DecodeReason::GeneveTruncated,
            (Geneve, _) => DecodeReason::GeneveBadHeader,
            (Erspan, Truncated) => DecodeReason::ErspanTruncated,
            (Erspan, _) => DecodeReason::ErspanBadHeader,
            (Mpls, Truncated) => DecodeReason::MplsTruncated,
            (Mpls, TooDeep) => DecodeReason::MplsTooDeep,
            (Mpls, _) => DecodeReason::MplsBadHeader,
            (Tunnel, _) => DecodeReason::TunnelTooDeep,
            (Pppoe, Truncated) => DecodeReason::PppoeTruncated,
            (Pppoe, _) => DecodeReason::PppoeBadHeader,
            (Gtp, Truncated) => DecodeReason::GtpTruncated,
            (Gtp, TooDeep) => DecodeReason::GtpTooDeep,
            (Gtp, _) => DecodeReason::GtpBadHeader,
            (Capwap, Truncated) => DecodeReason::CapwapTruncated,
            (Capwap, _) => DecodeReason::CapwapBadHeader,
        }
    }

    /// `layer_reason`, the label value used on the decode error counter.
    pub fn label(self) -> &'static str {
        self.reason().as_str()
    }
}

crate::label_set! {
    /// Values of the decode error counter's label: a layer and what was
    /// wrong with it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum DecodeReason {
        LinkTruncated = "link_truncated",
        LinkBadHeader = "link_bad_header",
        LinkTooDeep = "link_too_deep",
        LinkUnsupported = "link_unsupported",
        Ipv4Truncated = "ipv4_truncated",
        Ipv4BadHeader = "ipv4_bad_header",
        Ipv4Other = "ipv4_other",
        Ipv6Truncated = "ipv6_truncated",
        Ipv6BadHeader = "ipv6_bad_header",
        Ipv6TooDeep = "ipv6_too_deep",
        Ipv6Other = "ipv6_other",
        TcpTruncated = "tcp_truncated",
        TcpBadHeader = "tcp_bad_header",
        TcpOther = "tcp_other",
        UdpTruncated = "udp_truncated",
        UdpBadHeader = "udp_bad_header",
        GreTruncated = "gre_truncated",
        GreBadHeader = "gre_bad_header",
        VxlanTruncated = "vxlan_truncated",
        VxlanBadHeader = "vxlan_bad_header",
        GeneveTruncated = "geneve_truncated",
        GeneveBadHeader = "geneve_bad_header",
        ErspanTruncated = "erspan_truncated",
        ErspanBadHeader = "erspan_bad_header",
        MplsTruncated = "mpls_truncated",
        MplsTooDeep = "mpls_too_deep",
        MplsBadHeader = "mpls_bad_header",
        TunnelTooDeep = "tunnel_too_deep",
        PppoeTruncated = "pppoe_truncated",
        PppoeBadHeader = "pppoe_bad_header",
        GtpTruncated = "gtp_truncated",
        GtpTooDeep = "gtp_too_deep",
        GtpBadHeader = "gtp_bad_header",
        CapwapTruncated = "capwap_truncated",
        CapwapBadHeader = "capwap_bad_header",
    }
}

/// A decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A TCP segment, with the IP addresses it travelled between.
    Tcp {
        src: IpAddr,
        dst: IpAddr,
        seg: TcpSegment<'a>,
    },
    /// One fragment of an IP datagram; join it in a [`FragmentCache`].
    Fragment(IpPacket<'a>),
    /// The payload of a UDP datagram from port 53: a DNS response to learn from.
    Dns(&'a [u8]),
    /// A UDP datagram of a service that names hosts (DHCP, NBNS, mDNS...).
    Names(NameDatagram<'a>),
    /// Not IP, or IP but not TCP: nothing for the census.
    Other,
}

/// A decode error of `layer` (the tunnel and access decoders' shorthand).
const fn err(layer: Layer, kind: ErrorKind) -> DecodeError {
    DecodeError::new(layer, kind)
}

/// `len` bytes of a `layer` header at `at`, or that layer's truncation.
fn get(data: &[u8], at: usize, len: usize, layer: Layer) -> Result<&[u8], DecodeError> {
    data.get(at..at.saturating_add(len))
        .ok_or(err(layer, ErrorKind::Truncated))
}

/// Decodes one frame of the given link type (tunnels on their standard ports).
pub fn decode_frame(linktype: i32, data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    decode_frame_with(linktype, data, &TunnelPorts::default())
}

/// Decodes one frame, unwrapping tunnels (VXLAN/Geneve on `ports`, GRE,
/// ERSPAN, MPLS, IP-in-IP, GTP-U, CAPWAP data, PPPoE sessions) up to [`MAX_TUNNEL_DEPTH`] layers: the result is
/// about the innermost packet; tunnel endpoints never appear in it.
pub fn decode_frame_with<'a>(
    linktype: i32,
    data: &'a [u8],
    ports: &TunnelPorts,
) -> Result<Decoded<'a>, DecodeError> {
    decode_network(link::parse_link(linktype, data)?, ports, 0)
}

fn decode_network<'a>(
    mut net: link::Network<'a>,
    ports: &TunnelPorts,
    depth: usize,
) -> Result<Decoded<'a>, DecodeError> {
    for _ in depth..MAX_TUNNEL_DEPTH {
        let pkt = match net {
            link::Network::Ipv4(b) => ip::parse_ipv4(b)?,
            link::Network::Ipv6(b) => ip::parse_ipv6(b)?,
            link::Network::Mpls(b) => {
                net = tunnel::parse_mpls(b)?;
                continue;
            }
            link::Network::Other => return Ok(Decoded::Other),
        };
        // The common case straight out, without building an `Inner` (about
        // half the decoder's time on the criterion frames).
        if pkt.proto == ip::PROTO_TCP && pkt.frag.is_none() {
            return tcp_of(&pkt);
        }
        match inner_of(&pkt, ports)? {
            Inner::Done(d) => return Ok(d),
            Inner::Tunnel(n) => net = n,
        }
    }
    Err(DecodeError::new(Layer::Tunnel, ErrorKind::TooDeep))
}

/// A whole IP packet carrying TCP.
#[inline]
fn tcp_of<'a>(pkt: &IpPacket<'a>) -> Result<Decoded<'a>, DecodeError> {
    Ok(Decoded::Tcp {
        src: pkt.src,
        dst: pkt.dst,
        seg: l4::parse_tcp(pkt.payload, pkt.missing)?,
    })
}

enum Inner<'a> {
    Done(Decoded<'a>),
    Tunnel(link::Network<'a>),
}

/// What an IP packet carries: a TCP segment, a fragment, a tunnel to unwrap.
fn inner_of<'a>(pkt: &IpPacket<'a>, ports: &TunnelPorts) -> Result<Inner<'a>, DecodeError> {
    if pkt.frag.is_some() {
        return Ok(Inner::Done(Decoded::Fragment(*pkt)));
    }
    Ok(match pkt.proto {
        ip::PROTO_TCP => Inner::Done(tcp_of(pkt)?),
        tunnel::PROTO_UDP => match tunnel::parse_udp(pkt.payload, ports)? {
            tunnel::Udp::Tunnel(n) => Inner::Tunnel(n),
            tunnel::Udp::Dns(payload) => Inner::Done(Decoded::Dns(payload)),
            tunnel::Udp::Names(kind, payload) => Inner::Done(Decoded::Names(NameDatagram {
                kind,
                src: pkt.src,
                dst: pkt.dst,
                payload,
                tcp: false,
            })),
            tunnel::Udp::Other => Inner::Done(Decoded::Other),
        },
        tunnel::PROTO_GRE => Inner::Tunnel(tunnel::parse_gre(pkt.payload)?),
        tunnel::PROTO_IPIP => Inner::Tunnel(link::Network::Ipv4(pkt.payload)),
        tunnel::PROTO_IPV6 => Inner::Tunnel(link::Network::Ipv6(pkt.payload)),
        _ => Inner::Done(Decoded::Other),
    })
}

/// Decodes one frame, joining IP fragments in `frag`; hands the TCP segment or
/// DNS response (if any, possibly from a datagram this fragment completed) to
/// `seen`.
pub fn decode_with_fragments(
    ts_ns: u64,
    linktype: i32,
    data: &[u8],
    ports: &TunnelPorts,
    frag: &mut FragmentCache,
    seen: &mut dyn FnMut(Seen<'_, '_>),
) -> Result<(), DecodeError> {
    if let Some((src, dst, seg)) = fast_ipv4_tcp(linktype, data) {
        seen(Seen::Tcp(src, dst, &seg));
        return Ok(());
    }
    let ip = match decode_frame_with(linktype, data, ports)? {
        Decoded::Fragment(ip) => ip,
        d => {
            hand(&d, seen);
            return Ok(());
        }
    };
    let Some(outer) = frag.ingest(ts_ns, &ip) else {
        return Ok(());
    };
    // A joined datagram may itself be a tunnel (a fragmented VXLAN packet),
    // whose inner packet may again be a fragment: join that too, once.
    match decode_joined(&outer, ports)? {
        Decoded::Fragment(inner) => {
            if let Some(d) = frag.ingest(ts_ns, &inner) {
                hand(&decode_joined(&d, ports)?, seen);
            }
        }
        d => hand(&d, seen),
    }
    Ok(())
}

/// What [`decode_with_fragments`] found in a frame.
pub enum Seen<'a, 'b> {
    Tcp(IpAddr, IpAddr, &'b TcpSegment<'a>),
    /// A DNS response over UDP (the UDP payload).
    Dns(&'a [u8]),
    /// A datagram of a service that names hosts (by reference: `Seen` stays
    /// as small as the TCP case needs, which every segment moves).
    Names(&'b NameDatagram<'a>),
}

/// A message of a service that names hosts, with the addresses it travelled
/// between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameDatagram<'a> {
    pub kind: NamePort,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub payload: &'a [u8],
    /// A TCP segment (Kerberos over TCP: a record mark first).
    pub tcp: bool,
}

fn hand(d: &Decoded<'_>, seen: &mut dyn FnMut(Seen<'_, '_>)) {
    match d {
        Decoded::Tcp { src, dst, seg } => seen(Seen::Tcp(*src, *dst, seg)),
        Decoded::Dns(payload) => seen(Seen::Dns(payload)),
        Decoded::Names(d) => seen(Seen::Names(d)),
        Decoded::Fragment(_) | Decoded::Other => {}
    }
}

fn decode_joined<'a>(
    d: &'a frag::Reassembled,
    ports: &TunnelPorts,
) -> Result<Decoded<'a>, DecodeError> {
    let pkt = IpPacket {
        src: d.src,
        dst: d.dst,
        proto: d.proto,
        payload: &d.payload,
        missing: 0,
        frag: None,
        is_v6: d.src.is_ipv6(),
    };
    match inner_of(&pkt, ports)? {
        Inner::Done(decoded) => Ok(decoded),
        Inner::Tunnel(net) => decode_network(net, ports, 1),
    }
}

/// The common case without a detour: Ethernet II, IPv4 without options, not a
/// fragment, TCP. `None` whenever anything else is the case (VLAN, IPv6,
/// options, fragments, errors): then [`decode_frame`] decides. For every frame
/// it accepts it yields exactly what `decode_frame` yields (tested against it
/// on every shipped frame and on mutated ones, and fuzzed).
#[inline]
pub fn fast_ipv4_tcp(linktype: i32, data: &[u8]) -> Option<(IpAddr, IpAddr, TcpSegment<'_>)> {
    const ETH: usize = 14;
    if linktype != 1 || data.len() < ETH + 40 || data[12] != 0x08 || data[13] != 0x00 {
        return None;
    }
    let ip = &data[ETH..];
    // Version 4, header length 20, no MF flag, offset 0, protocol TCP.
    if ip[0] != 0x45 || ip[6] & 0x3f != 0 || ip[7] != 0 || ip[9] != ip::PROTO_TCP {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let end = total.min(ip.len());
    if total < 20 || end < 40 {
        return None;
    }
    let tcp = &ip[20..end];
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 || doff > tcp.len() {
        return None;
    }
    let src = IpAddr::V4(std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    let seg = TcpSegment {
        src_port: u16::from_be_bytes([tcp[0], tcp[1]]),
        dst_port: u16::from_be_bytes([tcp[2], tcp[3]]),
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        ack: u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        flags: l4::TcpFlags(tcp[13]),
        payload: &tcp[doff..],
        missing: (total - end) as u32,
    };
    Some((src, dst, seg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::PacketSource;
    use crate::capture::offline::OfflineSource;

    fn check(linktype: i32, data: &[u8]) -> bool {
        match fast_ipv4_tcp(linktype, data) {
            None => false,
            Some((src, dst, seg)) => {
                let full = decode_frame(linktype, data);
                assert_eq!(full, Ok(Decoded::Tcp { src, dst, seg }), "{data:02x?}");
                true
            }
        }
    }

    /// The fast path agrees with the full decoder on every frame it accepts:
    /// all shipped captures, and every single-byte mutation of their headers.
    #[test]
    fn decode_fast_path_matches_full_decoder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let mut taken = 0;
        let mut frames = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let Ok(mut src) = OfflineSource::open(&path) else {
                continue;
            };
            while let Ok(Some(f)) = src.next_frame() {
                frames += 1;
                taken += usize::from(check(f.linktype, f.data));
                let mut m = f.data.to_vec();
                for i in 0..m.len().min(74) {
                    for v in [0x00, 0xff, m[i] ^ 0x40, m[i].wrapping_add(1)] {
                        let old = m[i];
                        m[i] = v;
                        check(f.linktype, &m);
                        m[i] = old;
                    }
                }
                for cut in [m.len().saturating_sub(1), 54, 40, 20] {
                    check(f.linktype, &m[..cut.min(m.len())]);
                }
            }
        }
        assert!(frames > 800 && taken > 400, "{taken} of {frames}");
    }
}
