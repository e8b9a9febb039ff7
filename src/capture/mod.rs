//! Packet sources: where frames come from: capture files ([`offline`], with
//! [`pcapfile`] for classic pcap) and live interfaces ([`live`]). Both feed the
//! same decode → dispatch → workers path; the capture-file magic numbers are
//! defined here, once.
//!
//! Output: [`Frame`] views (capture time, link type, captured bytes) borrowed from
//! the source until the next call. Invariant: a source never panics on a damaged
//! file; it reports a [`SourceError`] and stops.

pub mod compressed;
pub mod fanout;
pub mod filter;
pub mod live;
pub mod offline;
pub mod pcapfile;
pub mod pcapng;
pub mod skip;

use thiserror::Error;

/// Classic pcap, microsecond timestamps, as written by a little-endian host.
pub const PCAP_USEC_LE: [u8; 4] = [0xd4, 0xc3, 0xb2, 0xa1];
/// Classic pcap, microseconds, big-endian writer.
pub const PCAP_USEC_BE: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];
/// Classic pcap, nanosecond timestamps, little-endian writer.
pub const PCAP_NSEC_LE: [u8; 4] = [0x4d, 0x3c, 0xb2, 0xa1];
/// Classic pcap, nanoseconds, big-endian writer.
pub const PCAP_NSEC_BE: [u8; 4] = [0xa1, 0xb2, 0x3c, 0x4d];
/// Alexey Kuznetsov's modified pcap (old Linux tcpdump patches): microseconds,
/// and 8 more bytes in each record header, little-endian writer.
pub const PCAP_KUZNETSOV_LE: [u8; 4] = [0x34, 0xcd, 0xb2, 0xa1];
/// Modified pcap, big-endian writer.
pub const PCAP_KUZNETSOV_BE: [u8; 4] = [0xa1, 0xb2, 0xcd, 0x34];
/// pcapng (the Section Header Block type, the same in both byte orders).
pub const PCAPNG: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
/// Every capture-file magic number tlscensus reads.
pub const CAPTURE_MAGICS: [[u8; 4]; 7] = [
    PCAP_USEC_LE,
    PCAP_USEC_BE,
    PCAP_NSEC_LE,
    PCAP_NSEC_BE,
    PCAP_KUZNETSOV_LE,
    PCAP_KUZNETSOV_BE,
    PCAPNG,
];

/// One captured frame, borrowed from its source.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// pcap LINKTYPE_ value of the interface the frame was captured on.
    pub linktype: i32,
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub wire_len: u32,
}

/// A source stopped: the file ended early or could not be read further.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SourceError {
    #[error("truncated capture: {0}")]
    Truncated(String),
    #[error("read error: {0}")]
    Read(String),
}

/// Anything that yields frames in capture order.
pub trait PacketSource {
    /// The next frame; `Ok(None)` at the end of the source.
    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SourceError>;
    /// A name for messages (file path, interface).
    fn name(&self) -> &str;
}
