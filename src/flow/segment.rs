//! One TCP segment of a flow, as it travels from the capture thread to
//! the flow table.
//!
//! Input: a decoded TCP segment and its flow key. Output: a [`Segment`]
//! whose payload is borrowed ([`SegmentIn`]) or a [`Span`] of a batch's
//! bytes while it crosses threads. Invariant: one type from dispatch to
//! the table; only the payload's place changes.

use super::key::{Direction, FlowKey};
use crate::decode::l4::{TcpFlags, TcpSegment};

/// One TCP segment of a flow, from the capture thread to the flow table:
/// the one type it travels as. `P` is where its payload is: `&[u8]`
/// borrowed from a frame or a batch ([`SegmentIn`], what the table takes),
/// or a [`Span`] of a batch's byte buffer while it crosses to a worker.
#[derive(Clone, Copy, Debug)]
pub struct Segment<P> {
    pub ts: u64,
    pub key: FlowKey,
    pub dir: Direction,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub payload: P,
    /// Payload bytes on the wire that the capture cut (snap length).
    pub missing: u32,
    /// `key.dispatch_hash()`, computed once by the capture thread.
    pub dispatch_hash: u64,
}

/// A segment as the table takes it, its payload borrowed.
pub type SegmentIn<'a> = Segment<&'a [u8]>;

/// Where a payload is in a batch's byte buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl<'a> Segment<&'a [u8]> {
    /// The segment `tcp` of the flow `key`, going `dir`, seen at `ts`.
    pub fn of(
        ts: u64,
        key: FlowKey,
        dir: Direction,
        dispatch_hash: u64,
        tcp: &TcpSegment<'a>,
    ) -> Self {
        Segment {
            ts,
            key,
            dir,
            seq: tcp.seq,
            ack: tcp.ack,
            flags: tcp.flags,
            payload: tcp.payload,
            missing: tcp.missing,
            dispatch_hash,
        }
    }
}

impl<P> Segment<P> {
    /// The same segment with its payload elsewhere.
    pub fn with_payload<Q>(self, payload: Q) -> Segment<Q> {
        Segment {
            ts: self.ts,
            key: self.key,
            dir: self.dir,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            payload,
            missing: self.missing,
            dispatch_hash: self.dispatch_hash,
        }
    }
}

impl Segment<Span> {
    /// The segment with its payload read from the batch's `bytes` (empty
    /// when the span is not in them).
    pub fn resolve(self, bytes: &[u8]) -> SegmentIn<'_> {
        let Span { start, len } = self.payload;
        let (start, len) = (start as usize, len as usize);
        self.with_payload(bytes.get(start..start + len).unwrap_or(&[]))
    }
}
