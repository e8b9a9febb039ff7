//! IPv4 and IPv6 (with extension headers), sliced with etherparse.
//!
//! Input: the network-layer bytes of a frame. Output: an [`IpPacket`] view with
//! addresses, the upper protocol, its payload and — for fragments — the fragment
//! fields. Invariant: the payload never extends past the IP length fields nor past
//! the captured bytes; `missing` says how many declared bytes the capture cut off
//! (snap length). At most [`MAX_EXT_HEADERS`] IPv6 extension headers are walked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice,
};

use super::{DecodeError, ErrorKind, Layer};

pub const PROTO_TCP: u8 = 6;
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AUTH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;
const EXT_MOBILITY: u8 = 135;
const EXT_HIP: u8 = 139;
const EXT_SHIM6: u8 = 140;

pub const MAX_EXT_HEADERS: usize = 12;

/// Fragment fields of an IPv4 or IPv6 fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragInfo {
    pub id: u32,
    /// Offset of this fragment's payload in the datagram, in bytes.
    pub offset: u32,
    pub more: bool,
}

/// One IP packet (or fragment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol: for a fragment, the protocol of the joined datagram's
    /// (fragmentable) payload.
    pub proto: u8,
    pub payload: &'a [u8],
    /// Bytes the IP header declares beyond what was captured.
    pub missing: u32,
    pub frag: Option<FragInfo>,
    pub is_v6: bool,
}

/// Slices an IPv4 packet.
pub fn parse_ipv4(data: &[u8]) -> Result<IpPacket<'_>, DecodeError> {
    use etherparse::err::ipv4::HeaderSliceError as E;
    let h = Ipv4HeaderSlice::from_slice(data).map_err(|e| match e {
        E::Len(_) => DecodeError::new(Layer::Ipv4, ErrorKind::Truncated),
        E::Content(_) => DecodeError::new(Layer::Ipv4, ErrorKind::BadHeader),
    })?;
    let header_len = h.slice().len();
    let total = usize::from(h.total_len());
    if total < header_len {
        return Err(DecodeError::new(Layer::Ipv4, ErrorKind::BadHeader));
    }
    let end = total.min(data.len());
    let payload = &data[header_len..end];
    let missing = (total - end) as u32;
    let offset = u32::from(h.fragments_offset().value()) * 8;
    let frag = (h.more_fragments() || offset != 0).then(|| FragInfo {
        id: u32::from(h.identification()),
        offset,
        more: h.more_fragments(),
    });
    Ok(IpPacket {
        src: IpAddr::V4(Ipv4Addr::from(h.source())),
        dst: IpAddr::V4(Ipv4Addr::from(h.destination())),
        proto: h.protocol().0,
        payload,
        missing,
        frag,
        is_v6: false,
    })
}

/// Slices an IPv6 packet and walks its extension headers up to the upper layer,
/// or up to a Fragment header that actually fragments.
pub fn parse_ipv6(data: &[u8]) -> Result<IpPacket<'_>, DecodeError> {
    use etherparse::err::ipv6::HeaderSliceError as E;
    let h = Ipv6HeaderSlice::from_slice(data).map_err(|e| match e {
        E::Len(_) => DecodeError::new(Layer::Ipv6, ErrorKind::Truncated),
        E::Content(_) => DecodeError::new(Layer::Ipv6, ErrorKind::BadHeader),
    })?;
    let after = &data[40..];
    let declared = usize::from(h.payload_length());
    // A zero payload length means a jumbogram: take what was captured.
    let (body, missing) = if declared == 0 {
        (after, 0)
    } else {
        let end = declared.min(after.len());
        (&after[..end], (declared - end) as u32)
    };
    let (proto, payload, frag) = walk_ipv6_exts(h.next_header().0, body)?;
    Ok(IpPacket {
        src: IpAddr::V6(Ipv6Addr::from(h.source())),
        dst: IpAddr::V6(Ipv6Addr::from(h.destination())),
        proto,
        payload,
        missing,
        frag,
        is_v6: true,
    })
}

/// Walks IPv6 extension headers starting at `next`. Stops at the upper layer, or
/// at a Fragment header that fragments (the rest is then fragment data, whose
/// protocol is the fragment header's next header).
pub fn walk_ipv6_exts(
    mut next: u8,
    mut rest: &[u8],
) -> Result<(u8, &[u8], Option<FragInfo>), DecodeError> {
    let trunc = DecodeError::new(Layer::Ipv6, ErrorKind::Truncated);
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_MOBILITY | EXT_HIP | EXT_SHIM6 => {
                let ext = Ipv6RawExtHeaderSlice::from_slice(rest).map_err(|_| trunc)?;
                next = ext.next_header().0;
                rest = &rest[ext.slice().len()..];
            }
            EXT_AUTH => {
                let ext = IpAuthHeaderSlice::from_slice(rest).map_err(|_| trunc)?;
                next = ext.next_header().0;
                rest = &rest[ext.slice().len()..];
            }
            EXT_FRAGMENT => {
                let ext = Ipv6FragmentHeaderSlice::from_slice(rest).map_err(|_| trunc)?;
                next = ext.next_header().0;
                rest = &rest[ext.slice().len()..];
                let offset = u32::from(ext.fragment_offset().value()) * 8;
                if ext.more_fragments() || offset != 0 {
                    let info = FragInfo {
                        id: ext.identification(),
                        offset,
                        more: ext.more_fragments(),
                    };
                    return Ok((next, rest, Some(info)));
                }
                // An "atomic fragment" (offset 0, no more): carry on.
            }
            _ => return Ok((next, rest, None)),
        }
    }
    Err(DecodeError::new(Layer::Ipv6, ErrorKind::TooDeep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(total_len: u16, flags_frag: u16, proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&total_len.to_be_bytes());
        v.extend_from_slice(&[0x12, 0x34]);
        v.extend_from_slice(&flags_frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn ipv4_payload_and_padding() {
        // total length 24: 4 payload bytes; the two trailing bytes are Ethernet padding
        let p = v4(24, 0, 6, &[1, 2, 3, 4, 0, 0]);
        let ip = parse_ipv4(&p).unwrap();
        assert_eq!(ip.payload, &[1, 2, 3, 4]);
        assert_eq!(ip.missing, 0);
        assert_eq!(ip.frag, None);
    }

    #[test]
    fn ipv4_snaplen_cut() {
        let p = v4(1500, 0, 6, &[1, 2, 3, 4]);
        let ip = parse_ipv4(&p).unwrap();
        assert_eq!(ip.payload.len(), 4);
        assert_eq!(ip.missing, 1500 - 24);
    }

    #[test]
    fn ipv4_fragment_fields() {
        let p = v4(28, 0x2000 | 3, 6, &[0; 8]); // MF, offset 3*8
        let ip = parse_ipv4(&p).unwrap();
        assert_eq!(
            ip.frag,
            Some(FragInfo {
                id: 0x1234,
                offset: 24,
                more: true
            })
        );
    }

    #[test]
    fn ipv4_bad_lengths() {
        let short_total = v4(10, 0, 6, &[]);
        assert_eq!(
            parse_ipv4(&short_total).unwrap_err().kind,
            ErrorKind::BadHeader
        );
        assert_eq!(
            parse_ipv4(&[0x45, 0, 0]).unwrap_err().kind,
            ErrorKind::Truncated
        );
        assert_eq!(
            parse_ipv4(&[0x65; 20]).unwrap_err().kind,
            ErrorKind::BadHeader
        );
    }

    fn v6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.push(next);
        v.push(64);
        v.extend_from_slice(&[0xfd; 16]);
        v.extend_from_slice(&[0xfe; 16]);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn ipv6_extension_chain() {
        // hop-by-hop (8) -> dest opts (8) -> TCP
        let mut exts = vec![60, 0, 1, 4, 0, 0, 0, 0];
        exts.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        exts.extend_from_slice(&[9, 9]);
        let pkt = v6(0, &exts);
        let ip = parse_ipv6(&pkt).unwrap();
        assert_eq!(ip.proto, 6);
        assert_eq!(ip.payload, &[9, 9]);
    }

    #[test]
    fn ipv6_fragment_header() {
        let mut exts = vec![6, 0, 0x00, 0x09, 0, 0, 0, 7]; // offset 1 (8 bytes), MF
        exts.extend_from_slice(&[1, 2, 3]);
        let pkt = v6(44, &exts);
        let ip = parse_ipv6(&pkt).unwrap();
        assert_eq!(
            ip.frag,
            Some(FragInfo {
                id: 7,
                offset: 8,
                more: true
            })
        );
        assert_eq!(ip.proto, 6);
        assert_eq!(ip.payload, &[1, 2, 3]);
    }

    #[test]
    fn ipv6_too_many_extensions() {
        let mut exts = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            exts.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        let err = parse_ipv6(&v6(60, &exts)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep);
    }

    #[test]
    fn ipv6_truncated_extension() {
        let err = parse_ipv6(&v6(0, &[6, 3, 0])).unwrap_err();
        assert_eq!(err, DecodeError::new(Layer::Ipv6, ErrorKind::Truncated));
    }
}
