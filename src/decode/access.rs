//! Access networks' tunnels over UDP: GTP-U (the mobile core's user
//! plane, 3GPP TS 29.281) and CAPWAP data (RFC 5415: wireless LAN controllers carry every Wi-Fi
//! client's traffic this way, as 802.3 frames or native 802.11 frames).
//!
//! Input: the UDP payload. (PPPoE sessions, an Ethernet encapsulation, are
//! read in [`super::link`].) Output: the inner network layer,
//! [`Network::Other`] when the packet carries nothing for the census
//! (signalling, keep-alives, DTLS-protected or fragmented CAPWAP, protected
//! 802.11 frames), or a [`DecodeError`] naming the layer. Invariant: every
//! length is checked against the bytes at hand; nothing allocates; GTP-U
//! extension headers are bounded by [`MAX_GTP_EXTENSIONS`].

use super::link::{self, Network};
use super::{DecodeError, ErrorKind, Layer, err, get};

/// GTP-U's registered port (both ends).
pub const GTPU_PORT: u16 = 2152;
/// CAPWAP data channel's registered port.
pub const CAPWAP_DATA_PORT: u16 = 5247;
/// GTP-U extension headers read before giving up (real ones hold a few).
pub const MAX_GTP_EXTENSIONS: usize = 8;

const GTP_G_PDU: u8 = 0xff;
const WBID_IEEE80211: u8 = 1;

/// A GTP-U v1 packet: a G-PDU's inner IPv4 or IPv6 packet, after the
/// optional sequence number, N-PDU number and extension headers; echo,
/// error indication and end marker messages are `Other`.
pub fn parse_gtpu(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let h = get(data, 0, 8, Layer::Gtp)?;
    // Version 1, protocol type GTP (GTP' is 0).
    if h[0] >> 5 != 1 || h[0] & 0x10 == 0 {
        return Err(err(Layer::Gtp, ErrorKind::BadHeader));
    }
    if h[1] != GTP_G_PDU {
        return Ok(Network::Other);
    }
    let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let body = &data[8..];
    let body = body.get(..len).unwrap_or(body);
    let mut at = 0;
    if h[0] & 0x07 != 0 {
        // Sequence number, N-PDU number, next extension header type.
        let opt = get(body, 0, 4, Layer::Gtp)?;
        let mut next = opt[3];
        at = 4;
        let mut seen = 0;
        while next != 0 {
            seen += 1;
            if seen > MAX_GTP_EXTENSIONS {
                return Err(err(Layer::Gtp, ErrorKind::TooDeep));
            }
            // Length in 4-byte units, counting itself and the next type.
            let words = usize::from(*get(body, at, 1, Layer::Gtp)?.first().unwrap_or(&0));
            if words == 0 {
                return Err(err(Layer::Gtp, ErrorKind::BadHeader));
            }
            let ext = get(body, at, words * 4, Layer::Gtp)?;
            next = ext[words * 4 - 1];
            at += words * 4;
        }
    }
    let inner = &body[at.min(body.len())..];
    match inner.first().map(|b| b >> 4) {
        Some(4) => Ok(Network::Ipv4(inner)),
        Some(6) => Ok(Network::Ipv6(inner)),
        Some(_) => Ok(Network::Other),
        None => Err(err(Layer::Gtp, ErrorKind::Truncated)),
    }
}

/// A CAPWAP data packet: preamble (version 0, type 0: type 1 is DTLS), the
/// header (HLEN words, RID, WBID, flags T/F/L/W/M/K), then an 802.3 frame,
/// or a native 802.11 frame when T is set and WBID is IEEE 802.11.
/// Fragments and keep-alives (K) are `Other`.
pub fn parse_capwap(data: &[u8]) -> Result<Network<'_>, DecodeError> {
    let h = get(data, 0, 8, Layer::Capwap)?;
    if h[0] >> 4 != 0 {
        return Err(err(Layer::Capwap, ErrorKind::BadHeader));
    }
    if h[0] & 0x0f == 1 {
        return Ok(Network::Other); // DTLS-protected data channel
    }
    if h[0] & 0x0f != 0 {
        return Err(err(Layer::Capwap, ErrorKind::BadHeader));
    }
    let hlen = usize::from(h[1] >> 3) * 4;
    let wbid = (h[2] >> 1) & 0x1f;
    let t = h[2] & 0x01 != 0;
    let f = h[3] & 0x80 != 0;
    let k = h[3] & 0x08 != 0;
    if hlen < 8 {
        return Err(err(Layer::Capwap, ErrorKind::BadHeader));
    }
    let payload = data
        .get(hlen..)
        .ok_or(err(Layer::Capwap, ErrorKind::Truncated))?;
    if f || k {
        return Ok(Network::Other);
    }
    if !t {
        return link::parse_link(link::LINKTYPE_ETHERNET, payload);
    }
    if wbid != WBID_IEEE80211 {
        return Ok(Network::Other);
    }
    ieee80211_data(payload)
}

/// An 802.11 data frame: its LLC/SNAP payload's network layer. Management,
/// control, null-data and protected frames are `Other`.
fn ieee80211_data(frame: &[u8]) -> Result<Network<'_>, DecodeError> {
    let fc = get(frame, 0, 2, Layer::Capwap)?;
    // Some controllers send the frame control field byte-swapped: the
    // protocol version (always 0) then reads as the To/From DS flags that
    // every frame between an access point and its controller has.
    let (fc0, fc1) = if fc[0] & 0x03 != 0 && fc[1] & 0x03 == 0 {
        (fc[1], fc[0])
    } else {
        (fc[0], fc[1])
    };
    let (kind, subtype, flags) = ((fc0 >> 2) & 0x3, fc0 >> 4, fc1);
    let (to_ds, from_ds, protected, order) = (
        flags & 0x01 != 0,
        flags & 0x02 != 0,
        flags & 0x40 != 0,
        flags & 0x80 != 0,
    );
    // Type 2 is data; subtypes with bit 2 set carry no data (null, CF-*).
    if kind != 2 || subtype & 0x4 != 0 || protected {
        return Ok(Network::Other);
    }
    let qos = subtype & 0x8 != 0;
    let mut len = 24;
    if to_ds && from_ds {
        len += 6; // a fourth address
    }
    if qos {
        len += 2;
        if order {
            len += 4; // HT control
        }
    }
    let snap = get(frame, len, 8, Layer::Capwap)?;
    if snap[..6] != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return Ok(Network::Other);
    }
    let ethertype = u16::from_be_bytes([snap[6], snap[7]]);
    Ok(match ethertype {
        link::ETHERTYPE_IPV4 => Network::Ipv4(&frame[len + 8..]),
        link::ETHERTYPE_IPV6 => Network::Ipv6(&frame[len + 8..]),
        _ => Network::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &[u8] = &[
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    #[test]
    fn decode_gtpu() {
        let plain = [&[0x30, 0xff, 0, IP.len() as u8, 0, 0, 0, 1][..], IP].concat();
        assert_eq!(parse_gtpu(&plain), Ok(Network::Ipv4(IP)));
        // Sequence number and two extension headers (PDU session container,
        // then a longer one).
        let mut ext = vec![0x36, 0xff, 0, 0, 0, 0, 0, 1, 0, 7, 0, 0x85];
        ext.extend([1, 0x10, 0x01, 0x40]);
        ext.extend([2, 0, 0, 0, 0, 0, 0, 0]);
        ext.extend(IP);
        let n = (ext.len() - 8) as u16;
        ext[2..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(parse_gtpu(&ext), Ok(Network::Ipv4(IP)));
        // Echo request; GTP'; a zero-length extension; a truncated one.
        assert_eq!(
            parse_gtpu(&[0x32, 1, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0]),
            Ok(Network::Other)
        );
        assert_eq!(
            parse_gtpu(&[0x20, 0xff, 0, 0, 0, 0, 0, 0]),
            Err(err(Layer::Gtp, ErrorKind::BadHeader))
        );
        assert_eq!(
            parse_gtpu(&[0x34, 0xff, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0x85, 0, 0, 0, 0]),
            Err(err(Layer::Gtp, ErrorKind::BadHeader))
        );
        assert_eq!(
            parse_gtpu(&[0x34, 0xff, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0x85, 2, 0]),
            Err(err(Layer::Gtp, ErrorKind::Truncated))
        );
        // Extension headers that never end: bounded.
        let mut long = vec![0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85];
        for _ in 0..20 {
            long.extend([1, 0, 0, 0x85]);
        }
        let n = (long.len() - 8) as u16;
        long[2..4].copy_from_slice(&n.to_be_bytes());
        assert_eq!(parse_gtpu(&long), Err(err(Layer::Gtp, ErrorKind::TooDeep)));
    }

    #[test]
    fn decode_capwap_8023_and_80211() {
        // HLEN 2 words, WBID 1; T clear: an Ethernet frame.
        let mut eth = vec![0; 12];
        eth.extend([0x08, 0]);
        eth.extend(IP);
        let hdr = |t: bool| [0, 0x10, 0x02 | u8::from(t), 0, 0, 0, 0, 0];
        let c = [&hdr(false)[..], &eth].concat();
        assert_eq!(parse_capwap(&c), Ok(Network::Ipv4(IP)));
        // T set: an 802.11 QoS data frame to the DS, then LLC/SNAP.
        let mut w = vec![0x88, 0x01];
        w.extend([0; 22]);
        w.extend([0, 0]); // QoS control
        w.extend([0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0]);
        w.extend(IP);
        let c = [&hdr(true)[..], &w].concat();
        assert_eq!(parse_capwap(&c), Ok(Network::Ipv4(IP)));
        // The frame control field byte-swapped.
        let mut swapped = w.clone();
        swapped.swap(0, 1);
        assert_eq!(
            parse_capwap(&[&hdr(true)[..], &swapped].concat()),
            Ok(Network::Ipv4(IP))
        );
        // Protected, management, DTLS, fragment: nothing to read.
        let mut p = w.clone();
        p[1] |= 0x40;
        assert_eq!(
            parse_capwap(&[&hdr(true)[..], &p].concat()),
            Ok(Network::Other)
        );
        let mut m = w.clone();
        m[0] = 0x80;
        assert_eq!(
            parse_capwap(&[&hdr(true)[..], &m].concat()),
            Ok(Network::Other)
        );
        assert_eq!(parse_capwap(&[1, 0, 0, 0, 0, 0, 0, 0]), Ok(Network::Other));
        let mut frag = hdr(false);
        frag[3] = 0x80;
        assert_eq!(
            parse_capwap(&[&frag[..], &eth].concat()),
            Ok(Network::Other)
        );
        assert_eq!(
            parse_capwap(&[0x10, 0x10, 0, 0, 0, 0, 0, 0]),
            Err(err(Layer::Capwap, ErrorKind::BadHeader))
        );
        assert_eq!(
            parse_capwap(&[0, 0x80, 0, 0, 0, 0, 0, 0]),
            Err(err(Layer::Capwap, ErrorKind::Truncated))
        );
    }
}
