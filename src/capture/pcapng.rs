//! pcapng files read in large blocks, from any byte stream.
//!
//! Wireshark, dumpcap and tshark write pcapng by default. libpcap reads it
//! through stdio 4 KiB at a time, copies every packet and needs a seekable
//! file of one link type; this reader takes 1 MiB read(2)s from any reader
//! (a file, a pipe, standard input, a decompressor), hands out frames
//! borrowed from its buffer and keeps each interface's own link type.
//!
//! Input: a byte stream that starts with a Section Header Block. Output:
//! frames of Enhanced, Simple and (obsolete) Packet Blocks with nanosecond
//! timestamps (each interface's `if_tsresol` and `if_tsoffset`), their
//! interface's link type (LINKTYPE_RAW as DLT_RAW, as libpcap maps it) and
//! at most its snapshot length of bytes. Every other block (Name
//! Resolution, Interface Statistics, Decryption Secrets, custom) is skipped
//! by its length. Several sections, in either byte order, follow one
//! another; each starts its interfaces anew. Invariants: a block length that
//! is not a multiple of 4, below 12 or above 16 MiB, a packet naming an
//! interface never described, or a trailing length that differs is an error
//! after every frame before it; a stream cut inside a block yields every
//! frame before it and then `SourceError::Truncated`. Memory: one buffer of
//! 1 MiB plus the largest block seen (at most 16 MiB).

use std::io::{ErrorKind, Read};

use super::{Frame, PCAPNG, SourceError};

const BLOCK: usize = 1 << 20;
/// libpcap's limit on a pcapng block: a larger one is damage.
pub const MAX_BLOCK: usize = 16 << 20;
/// libpcap's MAXIMUM_SNAPLEN.
const MAX_SNAPLEN: usize = 262_144;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const LINKTYPE_RAW: i32 = 101;
const DLT_RAW: i32 = 12;
/// Interfaces one section may describe.
const MAX_INTERFACES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interface {
    linktype: i32,
    snaplen: usize,
    /// Timestamp units per second (`if_tsresol`; 10^6 when absent).
    units: u64,
    /// `if_tsoffset`, seconds.
    offset_s: i64,
}

pub struct PcapNgFile {
    reader: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// The current section is big-endian.
    big: bool,
    interfaces: Vec<Interface>,
}

impl PcapNgFile {
    /// Starts reading `reader` if its first four bytes are a Section Header
    /// Block's type; `Ok(None)` (nothing consumed beyond those) otherwise.
    pub fn from_reader(
        mut reader: impl Read + Send + 'static,
    ) -> std::io::Result<Option<PcapNgFile>> {
        let mut magic = [0u8; 4];
        if let Err(e) = reader.read_exact(&mut magic) {
            return match e.kind() {
                ErrorKind::UnexpectedEof => Ok(None),
                _ => Err(e),
            };
        }
        if magic != PCAPNG {
            return Ok(None);
        }
        let mut buf = vec![0u8; BLOCK + 4096];
        buf[..4].copy_from_slice(&magic);
        Ok(Some(PcapNgFile {
            reader: Box::new(reader),
            buf,
            start: 0,
            end: 4,
            eof: false,
            big: false,
            interfaces: Vec::new(),
        }))
    }

    /// Makes at least `n` unread bytes available unless the stream ends
    /// first; returns how many are available.
    fn fill(&mut self, n: usize) -> Result<usize, SourceError> {
        if self.end - self.start >= n {
            return Ok(self.end - self.start);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < n {
            // A block larger than the buffer (at most MAX_BLOCK).
            self.buf.resize(n + BLOCK.min(n), 0);
        }
        while self.end < n && !self.eof {
            let room = (self.buf.len() - self.end).min(BLOCK);
            match self.reader.read(&mut self.buf[self.end..self.end + room]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Read(e.to_string())),
            }
        }
        Ok(self.end - self.start)
    }

    #[inline(always)]
    fn u16_at(&self, i: usize) -> u16 {
        let v = [self.buf[i], self.buf[i + 1]];
        if self.big {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }

    #[inline(always)]
    fn u32_at(&self, i: usize) -> u32 {
        let v = [
            self.buf[i],
            self.buf[i + 1],
            self.buf[i + 2],
            self.buf[i + 3],
        ];
        if self.big {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }

    /// Hands every frame to `f`, to the end of the stream or the first error.
    /// An Enhanced Packet Block wholly in the buffer, of a described
    /// interface with the usual microsecond or nanosecond resolution, takes
    /// the short path below; anything else goes through [`Self::next_frame`]
    /// (the checks are the same).
    pub fn for_each_frame(&mut self, mut f: impl FnMut(&Frame<'_>)) -> Result<(), SourceError> {
        loop {
            if let Some(total) = self.quick_epb(&mut f) {
                self.start += total;
                continue;
            }
            match self.next_frame()? {
                Some(frame) => f(&frame),
                None => return Ok(()),
            }
        }
    }

    /// The short path: an EPB's frame handed to `f`; its length, or `None`
    /// (nothing consumed) when the block needs the general path.
    #[inline(always)]
    fn quick_epb(&self, f: &mut impl FnMut(&Frame<'_>)) -> Option<usize> {
        let h = self.start;
        let hdr: &[u8; 28] = self.buf.get(h..h + 28)?.try_into().ok()?;
        let rd = |i: usize| {
            let b = [hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]];
            if self.big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let total = rd(4) as usize;
        if rd(0) != EPB
            || total < 32
            || !total.is_multiple_of(4)
            || total > self.end - h
            || total > MAX_BLOCK
        {
            return None;
        }
        let caplen = rd(20) as usize;
        let ifc = self.interfaces.get(rd(8) as usize)?;
        let trailer: &[u8; 4] = self.buf.get(h + total - 4..h + total)?.try_into().ok()?;
        let trailer = if self.big {
            u32::from_be_bytes(*trailer)
        } else {
            u32::from_le_bytes(*trailer)
        };
        if caplen > total - 32 || trailer as usize != total || ifc.offset_s != 0 {
            return None;
        }
        let units = (u64::from(rd(12)) << 32) | u64::from(rd(16));
        let ts_ns = match ifc.units {
            1_000_000 => (units / 1_000_000)
                .saturating_mul(1_000_000_000)
                .saturating_add(units % 1_000_000 * 1_000),
            1_000_000_000 => units,
            _ => return None,
        };
        let data = self.buf.get(h + 28..h + 28 + caplen.min(ifc.snaplen))?;
        f(&Frame {
            ts_ns,
            linktype: ifc.linktype,
            data,
            wire_len: rd(24),
        });
        Some(total)
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        loop {
            let Some((kind, at, len)) = self.next_block()? else {
                return Ok(None);
            };
            if let Some((ts_ns, linktype, from, to, wire_len)) = self.packet(kind, at, len)? {
                return Ok(Some(Frame {
                    ts_ns,
                    linktype,
                    data: &self.buf[from..to],
                    wire_len,
                }));
            }
        }
    }

    /// The next block, consumed: (type, offset of its body in `buf`, body
    /// length); section and interface blocks are taken in here. `None` at
    /// the end of the stream.
    #[inline]
    fn next_block(&mut self) -> Result<Option<(u32, usize, usize)>, SourceError> {
        let have = self.fill(12)?;
        if have == 0 {
            return Ok(None);
        }
        if have < 12 {
            return Err(SourceError::Truncated(format!(
                "pcapng: file ends inside a block header ({have} of 12 bytes)"
            )));
        }
        let h = self.start;
        let raw_type = u32::from_le_bytes([
            self.buf[h],
            self.buf[h + 1],
            self.buf[h + 2],
            self.buf[h + 3],
        ]);
        if raw_type == SHB {
            // The byte-order magic says how to read this section, its
            // length included.
            let bom = [
                self.buf[h + 8],
                self.buf[h + 9],
                self.buf[h + 10],
                self.buf[h + 11],
            ];
            self.big = match (u32::from_le_bytes(bom), u32::from_be_bytes(bom)) {
                (BYTE_ORDER_MAGIC, _) => false,
                (_, BYTE_ORDER_MAGIC) => true,
                _ => {
                    return Err(SourceError::Read(
                        "pcapng: section header with an unknown byte-order magic".into(),
                    ));
                }
            };
            self.interfaces.clear();
        }
        let kind = self.u32_at(h);
        let total = self.u32_at(h + 4) as usize;
        if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK {
            return Err(SourceError::Read(format!(
                "pcapng: block of type {kind:#x} has an impossible length {total}"
            )));
        }
        let have = self.fill(total)?;
        if have < total {
            return Err(SourceError::Truncated(format!(
                "pcapng: file ends inside a block of type {kind:#x} ({have} of {total} bytes)"
            )));
        }
        let h = self.start;
        if self.u32_at(h + total - 4) as usize != total {
            return Err(SourceError::Read(format!(
                "pcapng: block of type {kind:#x} ends with another length than it starts with"
            )));
        }
        self.start = h + total;
        let (at, len) = (h + 8, total - 12);
        match kind {
            SHB if len < 16 || self.u16_at(at + 4) != 1 => {
                return Err(SourceError::Read(format!(
                    "pcapng: section header of version {}.x, not 1.x",
                    if len >= 6 { self.u16_at(at + 4) } else { 0 }
                )));
            }
            IDB => {
                if len < 8 {
                    return Err(SourceError::Read(
                        "pcapng: interface description too short".into(),
                    ));
                }
                if self.interfaces.len() >= MAX_INTERFACES {
                    return Err(SourceError::Read(format!(
                        "pcapng: more than {MAX_INTERFACES} interfaces in a section"
                    )));
                }
                let ifc = self.interface(at, len)?;
                self.interfaces.push(ifc);
            }
            _ => {}
        }
        Ok(Some((kind, at, len)))
    }

    /// An Interface Description Block's body.
    fn interface(&self, at: usize, len: usize) -> Result<Interface, SourceError> {
        let linktype = match i32::from(self.u16_at(at)) {
            LINKTYPE_RAW => DLT_RAW,
            other => other,
        };
        let snaplen = match self.u32_at(at + 4) as usize {
            0 => MAX_SNAPLEN,
            n => n.min(MAX_SNAPLEN),
        };
        let mut ifc = Interface {
            linktype,
            snaplen,
            units: 1_000_000,
            offset_s: 0,
        };
        // Options: code, length, value padded to 4 bytes; code 0 ends them.
        let (mut o, end) = (at + 8, at + len);
        while o + 4 <= end {
            let (code, olen) = (self.u16_at(o), usize::from(self.u16_at(o + 2)));
            let value = o + 4;
            if code == 0 || value + olen > end {
                break;
            }
            match (code, olen) {
                (9, 1) => {
                    let v = self.buf[value];
                    let exp = u32::from(v & 0x7f);
                    ifc.units = if v & 0x80 == 0 {
                        10u64.checked_pow(exp)
                    } else {
                        2u64.checked_pow(exp)
                    }
                    .filter(|&u| u > 0)
                    .ok_or_else(|| {
                        SourceError::Read(format!(
                            "pcapng: interface timestamp resolution {v:#04x} out of range"
                        ))
                    })?;
                }
                (14, 8) => {
                    let b: [u8; 8] = self.buf[value..value + 8].try_into().unwrap_or([0; 8]);
                    ifc.offset_s = if self.big {
                        i64::from_be_bytes(b)
                    } else {
                        i64::from_le_bytes(b)
                    };
                }
                _ => {}
            }
            o = value + olen.div_ceil(4) * 4;
        }
        Ok(ifc)
    }

    /// A packet block's frame: (timestamp, link type, bytes in `buf`, wire
    /// length); `None` for any other block.
    #[allow(clippy::type_complexity)]
    #[inline]
    fn packet(
        &self,
        kind: u32,
        at: usize,
        len: usize,
    ) -> Result<Option<(u64, i32, usize, usize, u32)>, SourceError> {
        let (if_id, ts_at, cap_at, data_at) = match kind {
            EPB if len >= 20 => (self.u32_at(at) as usize, at + 4, at + 12, at + 20),
            PB if len >= 20 => (usize::from(self.u16_at(at)), at + 4, at + 12, at + 20),
            SPB if len >= 4 => {
                let ifc = self.described(0)?;
                let wire_len = self.u32_at(at);
                let caplen = (wire_len as usize).min(len - 4).min(ifc.snaplen);
                return Ok(Some((0, ifc.linktype, at + 4, at + 4 + caplen, wire_len)));
            }
            EPB | PB | SPB => {
                return Err(SourceError::Read(format!(
                    "pcapng: packet block of type {kind} too short ({len} bytes)"
                )));
            }
            _ => return Ok(None),
        };
        let ifc = self.described(if_id)?;
        let caplen = self.u32_at(cap_at) as usize;
        let wire_len = self.u32_at(cap_at + 4);
        if caplen > len - 20 {
            return Err(SourceError::Read(format!(
                "pcapng: packet of {caplen} captured bytes in a block of {len}"
            )));
        }
        let units = (u64::from(self.u32_at(ts_at)) << 32) | u64::from(self.u32_at(ts_at + 4));
        let ts_ns = scale_ts(units, ifc.units, ifc.offset_s);
        let to = data_at + caplen.min(ifc.snaplen);
        Ok(Some((ts_ns, ifc.linktype, data_at, to, wire_len)))
    }

    fn described(&self, if_id: usize) -> Result<Interface, SourceError> {
        self.interfaces.get(if_id).copied().ok_or_else(|| {
            SourceError::Read(format!(
                "pcapng: packet names interface {if_id} that was never described"
            ))
        })
    }
}

/// pcapng timestamp units (`units` per second, plus an offset in seconds)
/// to nanoseconds since the epoch; before 1970 clamps to 0.
#[inline]
pub fn scale_ts(raw: u64, units: u64, offset_s: i64) -> u64 {
    // The usual resolutions, by constants (no 128-bit division a packet).
    if offset_s == 0 {
        match units {
            1_000_000 => {
                return (raw / 1_000_000)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(raw % 1_000_000 * 1_000);
            }
            1_000_000_000 => return raw,
            _ => {}
        }
    }
    let units = units.max(1);
    let secs = raw / units;
    let frac = raw % units;
    let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(units)) as u64;
    let secs = i64::try_from(secs)
        .unwrap_or(i64::MAX)
        .saturating_add(offset_s)
        .max(0) as u64;
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of `kind` with `body` (padded), in little- or big-endian.
    fn block(big: bool, kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let w = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = w(kind).to_vec();
        out.extend(w(total));
        out.extend(body);
        out.extend(w(total));
        out
    }

    fn u16b(big: bool, v: u16) -> [u8; 2] {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u32b(big: bool, v: u32) -> [u8; 4] {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn shb(big: bool) -> Vec<u8> {
        let mut b = u32b(big, BYTE_ORDER_MAGIC).to_vec();
        b.extend(u16b(big, 1));
        b.extend(u16b(big, 0));
        b.extend([0xff; 8]);
        block(big, SHB, &b)
    }

    fn idb(big: bool, linktype: u16, snaplen: u32, options: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = u16b(big, linktype).to_vec();
        b.extend([0, 0]);
        b.extend(u32b(big, snaplen));
        for (code, v) in options {
            b.extend(u16b(big, *code));
            b.extend(u16b(big, v.len() as u16));
            b.extend(v);
            while !b.len().is_multiple_of(4) {
                b.push(0);
            }
        }
        if !options.is_empty() {
            b.extend([0, 0, 0, 0]);
        }
        block(big, IDB, &b)
    }

    fn epb(big: bool, if_id: u32, ts: u64, data: &[u8], wire: u32) -> Vec<u8> {
        let mut b = u32b(big, if_id).to_vec();
        b.extend(u32b(big, (ts >> 32) as u32));
        b.extend(u32b(big, ts as u32));
        b.extend(u32b(big, data.len() as u32));
        b.extend(u32b(big, wire));
        b.extend(data);
        block(big, EPB, &b)
    }

    type Got = (u64, i32, Vec<u8>, u32);

    fn frames(bytes: Vec<u8>) -> (Vec<Got>, Result<(), SourceError>) {
        let mut r = PcapNgFile::from_reader(std::io::Cursor::new(bytes))
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        let res =
            r.for_each_frame(|f| out.push((f.ts_ns, f.linktype, f.data.to_vec(), f.wire_len)));
        (out, res)
    }

    #[test]
    fn sections_interfaces_resolutions() {
        let mut f = shb(false);
        f.extend(idb(false, 1, 0, &[]));
        // Nanoseconds, one hour's offset; raw IP.
        f.extend(idb(
            false,
            101,
            4,
            &[(9, vec![9]), (14, 3600i64.to_le_bytes().to_vec())],
        ));
        f.extend(block(false, 4, b"name resolution, skipped"));
        f.extend(epb(false, 0, 1_500_000, b"abcdef", 60));
        f.extend(epb(false, 1, 2_000_000_001, b"abcdef", 6));
        // A big-endian section: interfaces start anew; 2^-10 s units.
        f.extend(shb(true));
        f.extend(idb(true, 228, 0, &[(9, vec![0x8a])]));
        f.extend(epb(true, 0, 1024 * 7 + 512, b"xy", 2));
        let mut spb = u32b(true, 9).to_vec();
        spb.extend(b"simple!!!");
        f.extend(block(true, SPB, &spb));
        let (got, res) = frames(f);
        assert_eq!(res, Ok(()));
        assert_eq!(
            got,
            vec![
                (1_500_000_000, 1, b"abcdef".to_vec(), 60),
                (3_602_000_000_001, 12, b"abcd".to_vec(), 6),
                (7_500_000_000, 228, b"xy".to_vec(), 2),
                (0, 228, b"simple!!!".to_vec(), 9),
            ]
        );
    }

    #[test]
    fn damage_is_an_error_after_the_frames_before_it() {
        let mut good = shb(false);
        good.extend(idb(false, 1, 0, &[]));
        good.extend(epb(false, 0, 1, b"one", 3));
        // Cut inside the next block.
        let mut cut = good.clone();
        cut.extend(&epb(false, 0, 2, b"two", 3)[..10]);
        let (got, res) = frames(cut);
        assert_eq!(got.len(), 1);
        assert!(matches!(res, Err(SourceError::Truncated(_))), "{res:?}");
        // An interface never described.
        let mut bad = good.clone();
        bad.extend(epb(false, 5, 2, b"two", 3));
        let (got, res) = frames(bad);
        assert_eq!(got.len(), 1);
        assert!(
            matches!(&res, Err(SourceError::Read(m)) if m.contains("interface 5")),
            "{res:?}"
        );
        // Impossible lengths.
        for total in [8u32, 13, (MAX_BLOCK + 4) as u32] {
            let mut bad = good.clone();
            bad.extend(6u32.to_le_bytes());
            bad.extend(total.to_le_bytes());
            bad.extend([0u8; 64]);
            let (got, res) = frames(bad);
            assert_eq!(got.len(), 1);
            assert!(matches!(res, Err(SourceError::Read(_))), "{total}: {res:?}");
        }
        // A trailing length that differs.
        let mut bad = good.clone();
        let mut b = epb(false, 0, 2, b"two", 3);
        let n = b.len();
        b[n - 4] ^= 4;
        bad.extend(b);
        assert!(matches!(frames(bad).1, Err(SourceError::Read(_))));
        // Captured length beyond the block.
        let mut bad = good;
        let mut b = epb(false, 0, 2, b"two", 3);
        b[20] = 200;
        bad.extend(b);
        assert!(matches!(frames(bad).1, Err(SourceError::Read(_))));
        // Not pcapng at all.
        assert!(
            PcapNgFile::from_reader(std::io::Cursor::new(vec![0xd4, 0xc3, 0xb2, 0xa1]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn large_blocks_and_small_reads() {
        // A reader that returns 7 bytes at a time, and a block larger than
        // the 1 MiB buffer.
        struct Trickle(std::io::Cursor<Vec<u8>>);
        impl Read for Trickle {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = b.len().min(7);
                self.0.read(&mut b[..n])
            }
        }
        let mut f = shb(false);
        f.extend(idb(false, 1, 0, &[]));
        f.extend(block(false, 0x0bad, &vec![7u8; 3 << 20]));
        for i in 0..50u8 {
            f.extend(epb(false, 0, u64::from(i), &[i; 100], 100));
        }
        let mut r = PcapNgFile::from_reader(Trickle(std::io::Cursor::new(f)))
            .unwrap()
            .unwrap();
        let mut n = 0;
        r.for_each_frame(|fr| {
            assert_eq!(fr.data, &[n as u8; 100][..]);
            n += 1;
        })
        .unwrap();
        assert_eq!(n, 50);
    }

    /// The frames libpcap gives, packet by packet, for every shipped pcapng
    /// and every shipped classic capture converted by editcap (when
    /// installed; CI installs it), except those libpcap cannot read
    /// (interfaces of different link types).
    #[test]
    fn pcapng_equals_libpcap() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let tmp = tempfile::tempdir().unwrap();
        let mut paths: Vec<std::path::PathBuf> = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        let editcap = std::process::Command::new("editcap")
            .arg("-h")
            .output()
            .is_ok();
        for p in entries {
            match p.extension().and_then(|e| e.to_str()) {
                Some("pcapng") => paths.push(p),
                Some("pcap") if editcap => {
                    let out = tmp
                        .path()
                        .join(p.file_name().unwrap())
                        .with_extension("pcapng");
                    let ok = std::process::Command::new("editcap")
                        .args(["-F", "pcapng"])
                        .arg(&p)
                        .arg(&out)
                        .output()
                        .is_ok_and(|o| o.status.success());
                    if ok {
                        paths.push(out);
                    }
                }
                _ => {}
            }
        }
        let mut compared = 0;
        for path in &paths {
            let Ok(mut cap) = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano)
            else {
                continue;
            };
            let file = std::fs::File::open(path).unwrap();
            let mut ours = PcapNgFile::from_reader(file).unwrap().unwrap();
            let linktype = cap.get_datalink().0;
            let mut n = 0;
            loop {
                let theirs = cap.next_packet();
                let mine = ours.next_frame();
                match (theirs, mine) {
                    (Ok(p), Ok(Some(f))) => {
                        let ts = p.header.ts;
                        let want = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_usec as u64;
                        assert_eq!(
                            (f.ts_ns, f.data, f.wire_len, f.linktype),
                            (want, p.data, p.header.len, linktype),
                            "{path:?} packet {n}"
                        );
                        n += 1;
                    }
                    (Err(pcap::Error::NoMorePackets), Ok(None)) => break,
                    (Err(e), _) if e.to_string().contains("different from the") => break,
                    (t, m) => panic!("{path:?} packet {n}: libpcap {t:?}, ours {m:?}"),
                }
            }
            compared += 1;
        }
        assert!(compared >= if editcap { 100 } else { 1 }, "{compared}");
    }

    #[test]
    fn ts_scaling() {
        assert_eq!(scale_ts(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(scale_ts(1_000_000_001, 1_000_000_000, 0), 1_000_000_001);
        assert_eq!(scale_ts(3, 1, 10), 13_000_000_000);
        assert_eq!(scale_ts(5, 1, -10), 0);
        assert_eq!(scale_ts(u64::MAX, 1, i64::MAX), u64::MAX);
    }
}
