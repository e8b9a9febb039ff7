//! Classic pcap files (not pcapng) read in large blocks.
//!
//! libpcap reads a savefile through stdio, whose buffer is 4 KiB on Linux:
//! a read(2) per 4 KiB and a copy of every packet out of that buffer. On a
//! page-cached file those two cost about two thirds of the bare libpcap read
//! loop (perf, docs/benchmarks.md). This reader does the same job with 1 MiB
//! read(2) calls and hands out frames borrowed from its buffer.
//!
//! Input: a file. Output: frames, exactly as libpcap delivers them — the same
//! link type (LINKTYPE_RAW as DLT_RAW, FCS bits masked), timestamps in the
//! file's own precision, records longer than the file's snap length cut to
//! it, a record over 256 KiB an error, a file cut inside a record every frame
//! before it and then `SourceError::Truncated`. Invariants: `open` recognises
//! the standard microsecond and nanosecond formats and Kuznetsov's modified
//! one (version 2.4, either byte order) and leaves everything else — pcapng,
//! older versions, damaged headers — to libpcap; memory is one buffer of at
//! most 1 MiB + 256 KiB.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use super::{
    Frame, PCAP_KUZNETSOV_BE, PCAP_KUZNETSOV_LE, PCAP_NSEC_BE, PCAP_NSEC_LE, PCAP_USEC_BE,
    PCAP_USEC_LE, SourceError,
};

const BLOCK: usize = 1 << 20;
/// libpcap's MAXIMUM_SNAPLEN: a longer record is damage, not a packet.
const MAX_RECORD: usize = 262_144;
/// The largest record header (Kuznetsov's); the standard one is 16 bytes.
const RECORD_HEADER: usize = 24;
const LINKTYPE_RAW: u32 = 101;
const DLT_RAW: i32 = 12;

pub struct PcapFile {
    /// The file (any reader in tests and the fuzz target); read in blocks,
    /// so the indirect call is once per MiB.
    file: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    swapped: bool,
    /// Nanoseconds per unit of the record's sub-second field (1 or 1000).
    frac_ns: u64,
    linktype: i32,
    snaplen: usize,
    /// Bytes before each record's data: 16, or 24 in the modified format.
    record_header: usize,
}

impl PcapFile {
    /// Opens `path` if it is a standard classic pcap file; `Ok(None)` for any
    /// other content (libpcap judges those).
    pub fn open(path: &Path) -> std::io::Result<Option<PcapFile>> {
        PcapFile::from_reader(File::open(path)?)
    }

    /// As [`PcapFile::open`], from any reader.
    pub fn from_reader(mut file: impl Read + Send + 'static) -> std::io::Result<Option<PcapFile>> {
        let mut header = [0u8; 24];
        if let Err(e) = file.read_exact(&mut header) {
            return match e.kind() {
                ErrorKind::UnexpectedEof => Ok(None),
                _ => Err(e),
            };
        }
        let magic = [header[0], header[1], header[2], header[3]];
        let (swapped, frac_ns, record_header) = match magic {
            PCAP_USEC_LE => (false, 1_000, 16),
            PCAP_USEC_BE => (true, 1_000, 16),
            PCAP_NSEC_LE => (false, 1, 16),
            PCAP_NSEC_BE => (true, 1, 16),
            // The extra bytes (interface index, protocol, packet type) are
            // skipped, as libpcap skips them.
            PCAP_KUZNETSOV_LE => (false, 1_000, 24),
            PCAP_KUZNETSOV_BE => (true, 1_000, 24),
            _ => return Ok(None),
        };
        let u16_at = |i: usize| {
            let v = u16::from_le_bytes([header[i], header[i + 1]]);
            if swapped { v.swap_bytes() } else { v }
        };
        let u32_at = |i: usize| {
            let v = u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
            if swapped { v.swap_bytes() } else { v }
        };
        if (u16_at(4), u16_at(6)) != (2, 4) {
            // Archaic (before 2.4 the lengths could be swapped) or unknown
            // versions: libpcap's call.
            return Ok(None);
        }
        let linktype = match u32_at(20) & 0x03ff_ffff {
            LINKTYPE_RAW => DLT_RAW,
            other => i32::try_from(other).unwrap_or(i32::MAX),
        };
        let snaplen = match u32_at(16) as usize {
            0 => MAX_RECORD,
            n => n.min(MAX_RECORD),
        };
        Ok(Some(PcapFile {
            file: Box::new(file),
            buf: vec![0; BLOCK + MAX_RECORD + RECORD_HEADER],
            start: 0,
            end: 0,
            eof: false,
            swapped,
            frac_ns,
            linktype,
            snaplen,
            record_header,
        }))
    }

    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Makes at least `n` unread bytes available unless the file ends first;
    /// returns how many are available.
    fn fill(&mut self, n: usize) -> Result<usize, SourceError> {
        while self.end - self.start < n && !self.eof {
            if self.start > 0 {
                // Move the partial record (less than `n` bytes) to the front:
                // the read below then has room for a whole block.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let room = (self.buf.len() - self.end).min(BLOCK);
            match self.file.read(&mut self.buf[self.end..self.end + room]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Read(e.to_string())),
            }
        }
        Ok(self.end - self.start)
    }

    fn u32_at(&self, i: usize) -> u32 {
        let b = &self.buf[i..i + 4];
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if self.swapped { v.swap_bytes() } else { v }
    }

    /// The next record: (timestamp, captured bytes range in `buf`, wire
    /// length), consumed; `None` at the end of the file.
    #[inline]
    fn next_record(&mut self) -> Result<Option<(u64, usize, usize, u32)>, SourceError> {
        let hdr = self.record_header;
        let have = self.fill(hdr)?;
        if have == 0 {
            return Ok(None);
        }
        if have < hdr {
            return Err(SourceError::Truncated(format!(
                "truncated dump file; tried to read {hdr} header bytes, only got {have}"
            )));
        }
        let h = self.start;
        let (sec, frac) = (self.u32_at(h), self.u32_at(h + 4));
        let caplen = self.u32_at(h + 8) as usize;
        let wire_len = self.u32_at(h + 12);
        if caplen > MAX_RECORD {
            return Err(SourceError::Read(format!(
                "invalid packet capture length {caplen}, bigger than maximum of {MAX_RECORD}"
            )));
        }
        let have = self.fill(hdr + caplen)?;
        if have < hdr + caplen {
            return Err(SourceError::Truncated(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {}",
                have - hdr
            )));
        }
        let data = self.start + hdr;
        self.start = data + caplen;
        let ts = u64::from(sec) * 1_000_000_000 + u64::from(frac) * self.frac_ns;
        Ok(Some((ts, data, data + caplen.min(self.snaplen), wire_len)))
    }

    /// Hands every frame to `f`, to the end of the file or the first error.
    pub fn for_each_frame(&mut self, mut f: impl FnMut(&Frame<'_>)) -> Result<(), SourceError> {
        while let Some(frame) = self.next_frame()? {
            f(&frame);
        }
        Ok(())
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        Ok(self
            .next_record()?
            .map(|(ts_ns, from, to, wire_len)| Frame {
                ts_ns,
                linktype: self.linktype,
                data: &self.buf[from..to],
                wire_len,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn header(magic: [u8; 4], big: bool, snaplen: u32, linktype: u32) -> Vec<u8> {
        let mut h = magic.to_vec();
        let mut put = |v: &[u8]| h.extend_from_slice(v);
        if big {
            put(&2u16.to_be_bytes());
            put(&4u16.to_be_bytes());
            put(&[0; 8]);
            put(&snaplen.to_be_bytes());
            put(&linktype.to_be_bytes());
        } else {
            put(&2u16.to_le_bytes());
            put(&4u16.to_le_bytes());
            put(&[0; 8]);
            put(&snaplen.to_le_bytes());
            put(&linktype.to_le_bytes());
        }
        h
    }

    fn record(big: bool, sec: u32, frac: u32, data: &[u8], wire: u32) -> Vec<u8> {
        let enc = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut r = Vec::new();
        for v in [sec, frac, data.len() as u32, wire] {
            r.extend_from_slice(&enc(v));
        }
        r.extend_from_slice(data);
        r
    }

    /// (timestamp, link type, bytes, wire length) of one frame.
    type Owned = (u64, i32, Vec<u8>, u32);

    fn frames(f: &tempfile::NamedTempFile) -> (Vec<Owned>, Result<(), SourceError>) {
        let mut r = PcapFile::open(f.path()).unwrap().unwrap();
        let mut out = Vec::new();
        let res =
            r.for_each_frame(|fr| out.push((fr.ts_ns, fr.linktype, fr.data.to_vec(), fr.wire_len)));
        (out, res)
    }

    /// Every classic pcap file shipped in captures/ (real stacks, every link
    /// type, big-endian nanosecond, cut-off and snap-length-cut files) gives
    /// exactly the frames libpcap gives, and stops the same way.
    #[test]
    fn pcapfile_equals_libpcap_on_every_capture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let mut compared = 0;
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        for path in paths {
            let Some(mut ours) = PcapFile::open(&path).unwrap() else {
                continue; // pcapng, scripts, README
            };
            let nano = ours.frac_ns == 1;
            let precision = if nano {
                pcap::Precision::Nano
            } else {
                pcap::Precision::Micro
            };
            let mut cap = pcap::Capture::from_file_with_precision(&path, precision).unwrap();
            assert_eq!(ours.linktype(), cap.get_datalink().0, "{path:?}");
            let mut n = 0;
            let end = loop {
                let theirs = cap.next_packet();
                let mine = ours.next_frame();
                match (theirs, mine) {
                    (Ok(p), Ok(Some(f))) => {
                        let ts = p.header.ts;
                        let frac = if nano { 1 } else { 1_000 };
                        let want = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_usec as u64 * frac;
                        assert_eq!(
                            (f.ts_ns, f.data, f.wire_len),
                            (want, p.data, p.header.len),
                            "{path:?} packet {n}"
                        );
                        n += 1;
                    }
                    (Err(pcap::Error::NoMorePackets), Ok(None)) => break "end",
                    (Err(e), Err(SourceError::Truncated(m))) => {
                        assert!(e.to_string().contains("truncated"), "{path:?}: {e} / {m}");
                        break "truncated";
                    }
                    (t, m) => panic!("{path:?} packet {n}: libpcap {t:?}, ours {m:?}"),
                }
            };
            assert!(n > 0 || end == "truncated", "{path:?}");
            compared += 1;
        }
        assert!(compared >= 60, "compared {compared} files");
    }

    #[test]
    fn pcapfile_both_byte_orders_and_precisions() {
        for (magic, big, frac_ns) in [
            ([0xd4, 0xc3, 0xb2, 0xa1], false, 1_000),
            ([0xa1, 0xb2, 0xc3, 0xd4], true, 1_000),
            ([0x4d, 0x3c, 0xb2, 0xa1], false, 1),
            ([0xa1, 0xb2, 0x3c, 0x4d], true, 1),
        ] {
            let mut b = header(magic, big, 65535, 1);
            b.extend(record(big, 7, 9, b"abc", 60));
            b.extend(record(big, 8, 0, b"", 0));
            let (got, res) = frames(&file_with(&b));
            assert_eq!(res, Ok(()));
            assert_eq!(got.len(), 2);
            assert_eq!(
                got[0],
                (7_000_000_000 + 9 * frac_ns, 1, b"abc".to_vec(), 60)
            );
            assert_eq!(got[1], (8_000_000_000, 1, vec![], 0));
        }
    }

    #[test]
    fn pcapfile_leaves_other_formats_to_libpcap() {
        let pcapng = [
            0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0x1c, 0x4d, 0x3c, 0x2b, 0x1a,
        ];
        for bytes in [
            &pcapng[..],
            b"",
            b"GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(PcapFile::open(file_with(bytes).path()).unwrap().is_none());
        }
        let mut old = header([0xd4, 0xc3, 0xb2, 0xa1], false, 65535, 1);
        old[4] = 1; // version 1.4
        assert!(PcapFile::open(file_with(&old).path()).unwrap().is_none());
        old[4] = 2;
        old[6] = 3; // version 2.3: lengths may be swapped
        assert!(PcapFile::open(file_with(&old).path()).unwrap().is_none());
    }

    /// Kuznetsov's modified pcap: 8 more bytes per record header, skipped;
    /// the frames equal libpcap's in both byte orders.
    #[test]
    fn pcapfile_modified_format() {
        for (magic, big) in [
            ([0x34, 0xcd, 0xb2, 0xa1], false),
            ([0xa1, 0xb2, 0xcd, 0x34], true),
        ] {
            let mut b = header(magic, big, 65535, 1);
            for (sec, data, wire) in [(7, &b"abcdef"[..], 60), (8, b"", 0), (9, b"xy", 2)] {
                let r = record(big, sec, 5, data, wire);
                b.extend(&r[..16]);
                b.extend([0, 0, 0, 3, 8, 0, 4, 0]); // ifindex, protocol, type, pad
                b.extend(&r[16..]);
            }
            let f = file_with(&b);
            let (got, res) = frames(&f);
            assert_eq!(res, Ok(()));
            let mut cap = pcap::Capture::from_file(f.path()).unwrap();
            let mut theirs = Vec::new();
            while let Ok(p) = cap.next_packet() {
                let ts = p.header.ts;
                let ns = (ts.tv_sec * 1_000_000_000 + ts.tv_usec * 1_000) as u64;
                theirs.push((ns, 1, p.data.to_vec(), p.header.len));
            }
            assert_eq!(got, theirs);
            assert_eq!(got.len(), 3);
            assert_eq!(got[0], (7_000_005_000, 1, b"abcdef".to_vec(), 60));
            // Cut inside the last record's extra bytes.
            let (got, res) = frames(&file_with(&b[..b.len() - 6]));
            assert_eq!(got.len(), 2);
            assert!(matches!(res, Err(SourceError::Truncated(_))), "{res:?}");
        }
    }

    #[test]
    fn pcapfile_truncated_and_damaged() {
        let mut b = header([0xd4, 0xc3, 0xb2, 0xa1], false, 65535, 1);
        b.extend(record(false, 1, 0, &[1; 100], 100));
        let whole = b.len();
        b.extend(record(false, 2, 0, &[2; 100], 100));
        // Cut inside the second record's data, then inside its header.
        for (cut, says) in [(b.len() - 1, "captured bytes"), (whole + 5, "header bytes")] {
            let (got, res) = frames(&file_with(&b[..cut]));
            assert_eq!(got.len(), 1, "cut {cut}");
            assert!(
                matches!(&res, Err(SourceError::Truncated(m)) if m.contains(says)),
                "{res:?}"
            );
        }
        // A record claiming more than 256 KiB.
        let mut bad = header([0xd4, 0xc3, 0xb2, 0xa1], false, 65535, 1);
        bad.extend(record(false, 1, 0, b"x", 1));
        bad[24 + 8..24 + 12].copy_from_slice(&(MAX_RECORD as u32 + 1).to_le_bytes());
        let (got, res) = frames(&file_with(&bad));
        assert!(got.is_empty());
        assert!(matches!(res, Err(SourceError::Read(_))), "{res:?}");
    }

    #[test]
    fn pcapfile_snaplen_linktype_and_large_files() {
        // Records longer than the snap length are cut to it (as libpcap does);
        // LINKTYPE_RAW is DLT_RAW; FCS bits are masked.
        let mut b = header(
            [0xd4, 0xc3, 0xb2, 0xa1],
            false,
            4,
            LINKTYPE_RAW | 0x1000_0000,
        );
        b.extend(record(false, 1, 0, b"abcdefgh", 8));
        b.extend(record(false, 1, 1, b"xy", 2));
        let (got, res) = frames(&file_with(&b));
        assert_eq!(res, Ok(()));
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].1, got[0].2.as_slice()), (DLT_RAW, &b"abcd"[..]));
        assert_eq!(got[1].2, b"xy");
        // Records across many buffer refills, including ones of the maximum size.
        let mut b = header([0xd4, 0xc3, 0xb2, 0xa1], false, 0, 1);
        let mut want = Vec::new();
        for i in 0..40u32 {
            let len = if i % 7 == 3 {
                MAX_RECORD
            } else {
                (i as usize * 7919) % 70_000
            };
            let data = vec![i as u8; len];
            b.extend(record(false, i, 0, &data, len as u32));
            want.push(data);
        }
        let (got, res) = frames(&file_with(&b));
        assert_eq!(res, Ok(()));
        let got: Vec<Vec<u8>> = got.into_iter().map(|g| g.2).collect();
        assert!(got == want);
    }
}
