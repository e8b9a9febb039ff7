//! TCP: the segment view the flow table consumes.
//!
//! Input: an IP payload that carries TCP. Output: [`TcpSegment`], ports, sequence
//! numbers, flags and a borrowed payload. Invariant: the header length is checked
//! against the captured bytes (etherparse); `missing` counts payload bytes the
//! capture did not keep.

use etherparse::TcpHeaderSlice;

use super::{DecodeError, ErrorKind, Layer};

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// The flag bits of a TCP header (its 13th byte): FIN, SYN, RST, PSH, ACK,
/// URG, ECE, CWR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub fn syn(self) -> bool {
        self.0 & SYN != 0
    }
    pub fn fin(self) -> bool {
        self.0 & FIN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & RST != 0
    }
    pub fn ack(self) -> bool {
        self.0 & ACK != 0
    }
    /// SYN, FIN or RST: a segment that opens or closes a connection.
    pub fn control(self) -> bool {
        self.0 & (SYN | FIN | RST) != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
    /// Payload bytes declared by IP but not captured.
    pub missing: u32,
}

impl TcpSegment<'_> {
    pub fn syn(&self) -> bool {
        self.flags.syn()
    }
    pub fn fin(&self) -> bool {
        self.flags.fin()
    }
    pub fn rst(&self) -> bool {
        self.flags.rst()
    }
    pub fn has_ack(&self) -> bool {
        self.flags.ack()
    }
}

pub fn parse_tcp(data: &[u8], missing: u32) -> Result<TcpSegment<'_>, DecodeError> {
    use etherparse::err::tcp::HeaderSliceError as E;
    let h = TcpHeaderSlice::from_slice(data).map_err(|e| match e {
        E::Len(_) => DecodeError::new(Layer::Tcp, ErrorKind::Truncated),
        E::Content(_) => DecodeError::new(Layer::Tcp, ErrorKind::BadHeader),
    })?;
    let header = h.slice();
    let flags = TcpFlags(header.get(13).copied().unwrap_or(0));
    Ok(TcpSegment {
        src_port: h.source_port(),
        dst_port: h.destination_port(),
        seq: h.sequence_number(),
        ack: h.acknowledgment_number(),
        flags,
        payload: &data[header.len()..],
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(data_offset: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0xc3, 0x50, 0x01, 0xbb, 0, 0, 0, 100, 0, 0, 0, 0];
        v.push(data_offset << 4);
        v.push(flags);
        v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        v.extend(std::iter::repeat_n(
            1u8,
            (usize::from(data_offset) * 4).saturating_sub(20),
        ));
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn tcp_fields() {
        let s = tcp(5, SYN | ACK, b"hi");
        let seg = parse_tcp(&s, 0).unwrap();
        assert_eq!((seg.src_port, seg.dst_port, seg.seq), (50000, 443, 100));
        assert!(seg.syn() && seg.has_ack() && !seg.fin());
        assert_eq!(seg.payload, b"hi");
    }

    #[test]
    fn tcp_options_skipped() {
        let s = tcp(8, ACK, b"x");
        assert_eq!(parse_tcp(&s, 0).unwrap().payload, b"x");
    }

    #[test]
    fn tcp_bad_offset() {
        let s = tcp(3, ACK, b"");
        assert_eq!(parse_tcp(&s, 0).unwrap_err().kind, ErrorKind::BadHeader);
        let mut s = tcp(15, ACK, b"");
        s.truncate(30);
        assert_eq!(parse_tcp(&s, 0).unwrap_err().kind, ErrorKind::Truncated);
    }
}
