//! Offline source: capture files, FIFOs and standard input.
//!
//! Classic pcap in the standard formats is read by [`PcapFile`] and pcapng by
//! [`PcapNgFile`], both in 1 MiB blocks from any reader (a file, a pipe,
//! standard input), frames borrowed from their buffers. Everything else in a
//! regular file (modified pcap formats, files that are not captures) goes to
//! libpcap (the `pcap` crate), the reader of last resort, which also words
//! the errors; a stream (`-`, a FIFO) cannot be reopened, so there only the
//! two standard formats are read. Input: a path, or `-`. Output: frames with
//! nanosecond timestamps. Invariant: a damaged or cut-off capture yields
//! every packet before the damage, then a [`SourceError`].

use std::fs::File;
use std::io::Read;
use std::path::Path;

use pcap::{Capture, Offline, Precision};

use super::compressed::{self, Compression, inflate};

/// How much of a compressed capture [`OfflineSource::probe`] inflates:
/// enough for the headers and first packet of any ordinary capture.
pub const PROBE_BYTES: u64 = 256 << 10;
use super::pcapfile::PcapFile;
use super::pcapng::PcapNgFile;
use super::{CAPTURE_MAGICS, Frame, PCAP_NSEC_BE, PCAP_NSEC_LE, PCAPNG, PacketSource, SourceError};
use crate::error::SetupError;

pub struct OfflineSource {
    name: String,
    reader: Reader,
    /// Compressed bytes read so far, for a compressed capture.
    compressed: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    finished: bool,
}

/// Who reads the frames.
enum Reader {
    Pcap(PcapFile),
    /// pcapng, read by tlscensus' own block reader.
    Ng(PcapNgFile),
    Libpcap {
        cap: Capture<Offline>,
        linktype: i32,
        /// Nanoseconds per unit of libpcap's fractional timestamp (1 or 1000).
        frac_ns: i64,
    },
}

impl OfflineSource {
    fn with(name: String, reader: Reader) -> OfflineSource {
        OfflineSource {
            name,
            reader,
            compressed: None,
            finished: false,
        }
    }

    /// Reads a capture from a stream that cannot seek or be reopened
    /// (standard input, a pipe, a FIFO, a compressed file): classic pcap or
    /// pcapng, by the first bytes, inflated first when they are a gzip,
    /// zstd, xz or lz4 magic number.
    pub fn from_stream(
        name: &str,
        mut reader: Box<dyn Read + Send>,
    ) -> Result<OfflineSource, SetupError> {
        let head = read_head(name, &mut reader, 6)?;
        let stream = Box::new(std::io::Cursor::new(head.clone()).chain(reader));
        match Compression::of(&head) {
            Some(kind) => {
                let inflated = inflate(kind, stream).map_err(|source| SetupError::Open {
                    path: name.to_string(),
                    source,
                })?;
                let counter = std::sync::Arc::clone(&inflated.compressed);
                let mut src = OfflineSource::from_plain(name, Box::new(inflated), Some(kind))?;
                src.compressed = Some(counter);
                Ok(src)
            }
            None => OfflineSource::from_plain(name, stream, None),
        }
    }

    /// A stream of classic pcap or pcapng bytes.
    fn from_plain(
        name: &str,
        mut reader: Box<dyn Read + Send>,
        inside: Option<Compression>,
    ) -> Result<OfflineSource, SetupError> {
        let within = inside.map_or(String::new(), |k| format!(" (inside {})", k.as_str()));
        let not = |reason: String| SetupError::NotCapture {
            path: name.to_string(),
            reason: format!("{reason}{within}"),
        };
        let head = read_head(name, &mut reader, 4)?;
        if head.len() < 4 {
            return Err(not(format!(
                "ends after {} bytes, before a capture header",
                head.len()
            )));
        }
        let magic = [head[0], head[1], head[2], head[3]];
        let stream = std::io::Cursor::new(magic).chain(reader);
        let open_err = |source| SetupError::Open {
            path: name.to_string(),
            source,
        };
        let reader = if magic == PCAPNG {
            PcapNgFile::from_reader(stream)
                .map_err(open_err)?
                .map(Reader::Ng)
        } else if CAPTURE_MAGICS.contains(&magic) {
            PcapFile::from_reader(stream)
                .map_err(open_err)?
                .map(Reader::Pcap)
        } else {
            return Err(not("not a pcap or pcapng stream".into()));
        };
        match reader {
            Some(r) => Ok(OfflineSource::with(name.to_string(), r)),
            None => Err(not(
                "a pcap variant that only uncompressed files can be read in".into(),
            )),
        }
    }

    pub fn open(path: &Path) -> Result<OfflineSource, SetupError> {
        OfflineSource::open_to(path, None)
    }

    /// Opens a capture to look at its start only (is it a capture, when
    /// does it start): a compressed file is inflated on the caller's
    /// thread, no further than its first [`PROBE_BYTES`].
    pub fn probe(path: &Path) -> Result<OfflineSource, SetupError> {
        OfflineSource::open_to(path, Some(PROBE_BYTES))
    }

    /// [`OfflineSource::open`], or [`OfflineSource::probe`] with a limit.
    fn open_to(path: &Path, limit: Option<u64>) -> Result<OfflineSource, SetupError> {
        if path == Path::new("-") {
            widen_pipe(&std::io::stdin());
            return OfflineSource::from_stream("standard input", Box::new(std::io::stdin()));
        }
        let name = path.display().to_string();
        // Opening the file ourselves first gives a clean "not found"/"permission denied".
        // One open: a FIFO opened twice loses its writer in between.
        let mut file = File::open(path).map_err(|e| SetupError::Open {
            path: name.clone(),
            source: e,
        })?;
        let meta = file.metadata().map_err(|e| SetupError::Open {
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
        if !meta.is_file() {
            // A FIFO or a device: read once, as a stream.
            widen_pipe(&file);
            return OfflineSource::from_stream(&name, Box::new(file));
        }
        let head = read_head(&name, &mut file, 6)?;
        if let Some(kind) = Compression::of(&head) {
            let rest = Box::new(std::io::Cursor::new(head).chain(file));
            return match limit {
                None => OfflineSource::from_stream(&name, rest),
                Some(n) => {
                    let start = compressed::head(kind, rest, n).map_err(open_err)?;
                    OfflineSource::from_plain(&name, start, Some(kind))
                }
            };
        }
        if let Some(fast) = PcapFile::open(path).map_err(open_err)? {
            return Ok(OfflineSource::with(name, Reader::Pcap(fast)));
        }
        if let Some(ng) =
            PcapNgFile::from_reader(File::open(path).map_err(open_err)?).map_err(open_err)?
        {
            return Ok(OfflineSource::with(name, Reader::Ng(ng)));
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
        let frac_ns = if nano { 1 } else { 1_000 };
        Ok(OfflineSource::with(
            name,
            Reader::Libpcap {
                cap,
                linktype,
                frac_ns,
            },
        ))
    }
}

impl OfflineSource {
    /// For a compressed capture, the count of compressed bytes read so far.
    pub fn compressed_read(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        self.compressed.clone()
    }

    /// Hands every frame to `f`, in order, to the end of the file or the first
    /// error: the frames repeated [`PacketSource::next_frame`] calls return,
    /// but libpcap's loop runs here without wrapping each frame in
    /// `Result<Option<_>>` (callgrind: about 60 instructions a packet less on
    /// the capture thread of a bulk capture).
    pub fn for_each_frame(&mut self, mut f: impl FnMut(&Frame<'_>)) -> Result<(), SourceError> {
        if std::mem::replace(&mut self.finished, true) {
            return Ok(());
        }
        match &mut self.reader {
            Reader::Pcap(r) => r.for_each_frame(f),
            Reader::Ng(r) => r.for_each_frame(f),
            Reader::Libpcap {
                cap,
                linktype,
                frac_ns,
            } => loop {
                match cap.next_packet() {
                    Ok(p) => f(&libpcap_frame(&p, *linktype, *frac_ns)),
                    Err(e) => return libpcap_stopped(e),
                }
            },
        }
    }
}

fn libpcap_frame<'a>(p: &pcap::Packet<'a>, linktype: i32, frac_ns: i64) -> Frame<'a> {
    let ts = p.header.ts;
    Frame {
        ts_ns: timeval_ns(ts.tv_sec, ts.tv_usec.saturating_mul(frac_ns)),
        linktype,
        data: p.data,
        wire_len: p.header.len,
    }
}

/// Asks for a 1 MiB pipe buffer when `fd` is a pipe or FIFO (Linux's
/// default is 64 KiB): the writer and tlscensus then trade 16 times fewer
/// wake-ups. Not being allowed (over /proc/sys/fs/pipe-max-size) is fine.
fn widen_pipe(fd: &impl std::os::fd::AsFd) {
    let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
}

/// Up to `n` first bytes of a stream (fewer when it ends first).
fn read_head(name: &str, reader: &mut dyn Read, n: usize) -> Result<Vec<u8>, SetupError> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match reader.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(SetupError::Open {
                    path: name.to_string(),
                    source,
                });
            }
        }
    }
    head.truncate(got);
    Ok(head)
}

/// libpcap stopped: at the end of the file (`Ok`) or at an error.
fn libpcap_stopped(e: pcap::Error) -> Result<(), SourceError> {
    if matches!(e, pcap::Error::NoMorePackets) {
        return Ok(());
    }
    let msg = e.to_string();
    let msg = msg.trim_start_matches("libpcap error: ").trim().to_string();
    if msg.contains("truncated") {
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
        let out = match &mut self.reader {
            Reader::Pcap(r) => r.next_frame(),
            Reader::Ng(r) => r.next_frame(),
            Reader::Libpcap {
                cap,
                linktype,
                frac_ns,
            } => match cap.next_packet() {
                Ok(p) => Ok(Some(libpcap_frame(&p, *linktype, *frac_ns))),
                Err(e) => libpcap_stopped(e).map(|()| None),
            },
        };
        if !matches!(out, Ok(Some(_))) {
            self.finished = true;
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_scaling() {
        assert_eq!(timeval_ns(-5, 0), 0);
        assert_eq!(timeval_ns(2, 7), 2_000_000_007);
    }
}
