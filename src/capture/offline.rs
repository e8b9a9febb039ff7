//! Offline source: .pcap and .pcapng files.
//!
//! Classic pcap files in the standard formats are read by [`PcapFile`] in
//! 1 MiB blocks (the frames libpcap would deliver, at a third of its I/O cost);
//! everything else — pcapng, other variants, and files that are not captures —
//! goes through libpcap (the `pcap` crate), which also words the errors.
//! libpcap refuses pcapng files whose interfaces have different link types
//! or snapshot lengths ("an interface has a type / snapshot length ...
//! different from the ... of the first interface"). When it does, this source carries on with `pcap-parser`, which
//! knows each interface's own link type, skipping the packets libpcap already
//! delivered. Input: a path. Output: frames with nanosecond timestamps.
//! Invariant: a damaged or cut-off file yields every packet before the damage,
//! then a [`SourceError`].

use std::fs::File;
use std::path::{Path, PathBuf};

use pcap::{Capture, Offline, Precision};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError, PcapNGReader};

use super::pcapfile::PcapFile;
use super::{Frame, PCAP_NSEC_BE, PCAP_NSEC_LE, PacketSource, SourceError};
use crate::error::SetupError;

pub struct OfflineSource {
    path: PathBuf,
    name: String,
    fast: Option<PcapFile>,
    libpcap: Option<(Capture<Offline>, i32)>,
    /// Nanoseconds per unit of libpcap's fractional timestamp (1 or 1000).
    frac_ns: i64,
    pcapng: Option<Box<NgReader>>,
    finished: bool,
    delivered: u64,
}

impl OfflineSource {
    pub fn open(path: &Path) -> Result<OfflineSource, SetupError> {
        let name = path.display().to_string();
        // Opening the file ourselves first gives a clean "not found"/"permission denied".
        let meta = File::open(path)
            .and_then(|f| f.metadata())
            .map_err(|e| SetupError::Open {
                path: name.clone(),
                source: e,
            })?;
        if meta.is_dir() {
            return Err(SetupError::NotCapture {
                path: name,
                reason: "is a directory".into(),
            });
        }
        let open_err = |e| SetupError::Open {
            path: name.clone(),
            source: e,
        };
        if let Some(fast) = PcapFile::open(path).map_err(open_err)? {
            return Ok(OfflineSource {
                path: path.to_path_buf(),
                name,
                fast: Some(fast),
                libpcap: None,
                frac_ns: 1,
                pcapng: None,
                finished: false,
                delivered: 0,
            });
        }
        // Ask libpcap for the file's own precision: converting every timestamp
        // costs as much as a tenth of a read. Nanosecond pcap files keep their
        // nanoseconds; everything else (events print microseconds) is read in µs.
        let mut magic = [0u8; 4];
        let nano = File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && (magic == PCAP_NSEC_LE || magic == PCAP_NSEC_BE);
        let precision = if nano {
            Precision::Nano
        } else {
            Precision::Micro
        };
        let cap = Capture::from_file_with_precision(path, precision).map_err(|e| {
            SetupError::NotCapture {
                path: name.clone(),
                reason: clean_pcap_error(&e.to_string()),
            }
        })?;
        let linktype = cap.get_datalink().0;
        Ok(OfflineSource {
            path: path.to_path_buf(),
            name,
            fast: None,
            libpcap: Some((cap, linktype)),
            frac_ns: if nano { 1 } else { 1_000 },
            pcapng: None,
            finished: false,
            delivered: 0,
        })
    }
}

impl OfflineSource {
    /// Hands every frame to `f`, in order, to the end of the file or the first
    /// error: the frames repeated [`PacketSource::next_frame`] calls return,
    /// but libpcap's loop runs here without wrapping each frame in
    /// `Result<Option<_>>` (callgrind: about 60 instructions a packet less on
    /// the capture thread of a bulk capture).
    pub fn for_each_frame(&mut self, mut f: impl FnMut(&Frame<'_>)) -> Result<(), SourceError> {
        if let Some(fast) = self.fast.as_mut() {
            if self.finished {
                return Ok(());
            }
            self.finished = true;
            let delivered = &mut self.delivered;
            return fast.for_each_frame(|frame| {
                *delivered += 1;
                f(frame);
            });
        }
        if !self.finished
            && self.pcapng.is_none()
            && let Some((cap, linktype)) = self.libpcap.as_mut()
        {
            let (linktype, frac_ns) = (*linktype, self.frac_ns);
            let err = loop {
                match cap.next_packet() {
                    Ok(p) => {
                        self.delivered += 1;
                        let ts = p.header.ts;
                        f(&Frame {
                            ts_ns: timeval_ns(ts.tv_sec, ts.tv_usec.saturating_mul(frac_ns)),
                            linktype,
                            data: p.data,
                            wire_len: p.header.len,
                        });
                    }
                    Err(e) => break e,
                }
            };
            let stopped = libpcap_stopped(err, &self.path, self.delivered, &mut self.pcapng);
            self.finished = stopped.is_err() || self.pcapng.is_none();
            stopped?;
        }
        while let Some(frame) = self.next_frame()? {
            f(&frame);
        }
        Ok(())
    }
}

/// libpcap stopped: at the end of the file (`Ok`, no fallback reader), at a
/// pcapng block that needs the fallback reader from here on (`Ok`, the reader
/// set up after `delivered` packets), or at an error.
fn libpcap_stopped(
    e: pcap::Error,
    path: &Path,
    delivered: u64,
    pcapng: &mut Option<Box<NgReader>>,
) -> Result<(), SourceError> {
    if matches!(e, pcap::Error::NoMorePackets) {
        return Ok(());
    }
    let msg = e.to_string();
    let msg = msg.trim_start_matches("libpcap error: ").trim().to_string();
    // libpcap reads a pcapng file only while every interface has the first
    // one's link type and snapshot length; multi-interface captures (npcap,
    // `mergecap -I none`) often differ in either.
    if msg.contains("different from the") && msg.contains("of the first interface") {
        *pcapng = Some(Box::new(
            NgReader::open(path, delivered).map_err(SourceError::Read)?,
        ));
        Ok(())
    } else if msg.contains("truncated") {
        Err(SourceError::Truncated(msg))
    } else {
        Err(SourceError::Read(msg))
    }
}

fn clean_pcap_error(s: &str) -> String {
    let s = s.trim().trim_start_matches("libpcap error: ");
    if s.contains("unknown file format") || s.contains("bad dump file format") {
        "not a pcap or pcapng file".to_string()
    } else if s.contains("truncated") || s.contains("too short") {
        format!("file ends inside its header ({s})")
    } else {
        s.to_string()
    }
}

impl PacketSource for OfflineSource {
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        if self.finished {
            return Ok(None);
        }
        if let Some(fast) = self.fast.as_mut() {
            let out = fast.next_frame();
            match &out {
                Ok(Some(_)) => self.delivered += 1,
                _ => self.finished = true,
            }
            return out;
        }
        if self.pcapng.is_none()
            && let Some((cap, linktype)) = self.libpcap.as_mut()
        {
            match cap.next_packet() {
                Ok(p) => {
                    self.delivered += 1;
                    let ts = p.header.ts;
                    let ts_ns = timeval_ns(ts.tv_sec, ts.tv_usec.saturating_mul(self.frac_ns));
                    return Ok(Some(Frame {
                        ts_ns,
                        linktype: *linktype,
                        data: p.data,
                        wire_len: p.header.len,
                    }));
                }
                Err(e) => {
                    let stopped = libpcap_stopped(e, &self.path, self.delivered, &mut self.pcapng);
                    self.finished = stopped.is_err() || self.pcapng.is_none();
                    stopped?;
                }
            }
        }
        match self.pcapng.as_mut() {
            Some(r) => {
                let out = r.next_frame();
                if !matches!(out, Ok(Some(_))) {
                    self.finished = true;
                }
                out
            }
            None => Ok(None),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Seconds and sub-second nanoseconds (libpcap in nanosecond precision) to
/// nanoseconds since the epoch; times before 1970 clamp to 0.
fn timeval_ns(sec: i64, nsec: i64) -> u64 {
    let ns = sec.saturating_mul(1_000_000_000).saturating_add(nsec);
    u64::try_from(ns).unwrap_or(0)
}

#[derive(Clone, Copy)]
struct Interface {
    linktype: i32,
    resolution: u64,
    offset: i64,
    snaplen: u32,
}

/// A pcapng reader that honours each interface's link type.
struct NgReader {
    reader: PcapNGReader<File>,
    interfaces: Vec<Interface>,
    skip: u64,
    buf: Vec<u8>,
}

const MAX_INTERFACES: usize = 4096;

impl NgReader {
    fn open(path: &Path, skip: u64) -> Result<NgReader, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let reader = PcapNGReader::new(1 << 20, file).map_err(|e| describe(&e))?;
        Ok(NgReader {
            reader,
            interfaces: Vec::new(),
            skip,
            buf: Vec::new(),
        })
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError> {
        loop {
            let (consumed, found) = match self.reader.next() {
                Ok((offset, block)) => {
                    let found = match block {
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                            self.interfaces.clear();
                            None
                        }
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                            if self.interfaces.len() >= MAX_INTERFACES {
                                return Err(SourceError::Read("too many pcapng interfaces".into()));
                            }
                            self.interfaces.push(Interface {
                                linktype: idb.linktype.0,
                                resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                                offset: idb.ts_offset(),
                                snaplen: idb.snaplen,
                            });
                            None
                        }
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let Some(ifc) = self.interfaces.get(epb.if_id as usize).copied() else {
                                return Err(SourceError::Read(format!(
                                    "packet names interface {} that was never described",
                                    epb.if_id
                                )));
                            };
                            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            let ts_ns = scale_ts(raw, ifc.resolution, ifc.offset);
                            let cap = (epb.caplen as usize).min(epb.data.len());
                            Some((ts_ns, ifc.linktype, &epb.data[..cap], epb.origlen))
                        }
                        PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                            let Some(ifc) = self.interfaces.first().copied() else {
                                return Err(SourceError::Read(
                                    "simple packet block before any interface".into(),
                                ));
                            };
                            let mut cap = (spb.origlen as usize).min(spb.data.len());
                            if ifc.snaplen > 0 {
                                cap = cap.min(ifc.snaplen as usize);
                            }
                            Some((0, ifc.linktype, &spb.data[..cap], spb.origlen))
                        }
                        _ => None,
                    };
                    let found = found.map(|(ts, lt, data, wire)| {
                        self.buf.clear();
                        self.buf.extend_from_slice(data);
                        (ts, lt, wire)
                    });
                    (offset, found)
                }
                Err(PcapError::Eof) => return Ok(None),
                Err(PcapError::Incomplete(_)) => {
                    self.reader
                        .refill()
                        .map_err(|e| SourceError::Read(describe(&e)))?;
                    continue;
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(SourceError::Truncated("file ends inside a block".into()));
                }
                Err(e) => return Err(SourceError::Read(describe(&e))),
            };
            self.reader.consume(consumed);
            if let Some((ts_ns, linktype, wire_len)) = found {
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                return Ok(Some(Frame {
                    ts_ns,
                    linktype,
                    data: &self.buf,
                    wire_len,
                }));
            }
        }
    }
}

/// A pcapng reader's error in words, without the bytes some variants carry
/// (their Debug and Display forms print the whole remaining buffer).
fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::Eof => "pcapng: end of file".into(),
        PcapError::BufferTooSmall => "pcapng: a block is larger than 1 MiB".into(),
        PcapError::UnexpectedEof => "pcapng: file ends inside a block".into(),
        PcapError::ReadError => "pcapng: read error".into(),
        PcapError::Incomplete(n) => format!("pcapng: file ends {n} bytes short of a block"),
        PcapError::HeaderNotRecognized => "not a pcap or pcapng file".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("pcapng: malformed block ({})", kind.description())
        }
    }
}

/// pcapng timestamp units to nanoseconds.
fn scale_ts(raw: u64, resolution: u64, offset_s: i64) -> u64 {
    let secs = raw / resolution;
    let frac = raw % resolution;
    let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(resolution)) as u64;
    let secs = (secs as i64).saturating_add(offset_s).max(0) as u64;
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// regression_12: a parse error never prints the buffer it failed on.
    #[test]
    fn pcapng_errors_name_no_bytes() {
        let big = vec![0x41u8; 3 << 20];
        let e = PcapError::NomError(&big[..], pcap_parser::nom::error::ErrorKind::Verify);
        let msg = describe(&e);
        assert!(msg.len() < 100, "{msg}");
        assert!(!msg.contains("AAAA"), "{msg}");
    }

    #[test]
    fn ts_scaling() {
        assert_eq!(scale_ts(1_500_000, 1_000_000, 0), 1_500_000_000);
        assert_eq!(scale_ts(1_000_000_001, 1_000_000_000, 0), 1_000_000_001);
        assert_eq!(scale_ts(3, 1, 10), 13_000_000_000);
        assert_eq!(timeval_ns(-5, 0), 0);
        assert_eq!(timeval_ns(2, 7), 2_000_000_007);
    }
}
