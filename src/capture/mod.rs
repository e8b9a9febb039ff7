//! Packet sources: where frames come from. The pipeline sees only the
//! [`PacketSource`] seam, so offline files and (later) live interfaces feed the
//! same decode → dispatch → workers path.
//!
//! Output: [`Frame`] views (capture time, link type, captured bytes) borrowed from
//! the source until the next call. Invariant: a source never panics on a damaged
//! file; it reports a [`SourceError`] and stops.

pub mod live;
pub mod offline;
pub mod pcapfile;

use thiserror::Error;

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
