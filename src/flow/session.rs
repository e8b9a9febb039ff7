//! What the flow table asks of the protocol reader of each flow.
//!
//! The table ([`super::table`]) tracks TCP and reassembles each direction's
//! stream start; a [`Session`] (one per flow, e.g. `tls::session::TlsSession`)
//! says what the bytes mean: whether it still wants a direction's bytes, when
//! the flow's facts are complete, and what the flow yields. The table knows
//! no protocol: it is generic over the session, so the call is static and
//! inlined. Input to a session: SYNs, each direction's stream start as it
//! grows ([`StreamEvent`]), and the bounds the direction hits. Output: values
//! of [`Session::Output`] pushed once per flow, when settled or ended.

use super::key::{Direction, FlowKey};

/// One direction's stream start as the session reads it.
#[derive(Clone, Copy, Debug)]
pub struct StreamView<'a> {
    /// The contiguous prefix received so far (it only grows).
    pub bytes: &'a [u8],
    /// The direction's SYN was seen: `bytes` starts at the stream's first byte.
    pub syn_seen: bool,
    /// Capture time of the direction's first payload byte.
    pub first_ts: Option<u64>,
}

/// A data segment of direction `d` after reassembly.
#[derive(Clone, Copy, Debug)]
pub struct StreamEvent<'a> {
    /// The direction (0 low-to-high, 1 high-to-low; `dir.index()`).
    pub d: usize,
    pub dir: Direction,
    /// Both directions' stream starts, after the segment.
    pub streams: [StreamView<'a>; 2],
    /// Direction `d`'s in-order prefix grew.
    pub grew: bool,
    /// The capture cut the segment (snap length): the rest never comes.
    pub cut: bool,
    pub key: &'a FlowKey,
    /// Capture time of the segment.
    pub ts: u64,
}

/// The protocol state of one flow.
pub trait Session: Default {
    /// Shared by the sessions of one table (scratch space, caches, counters);
    /// owned by the table and lent to each call.
    type Ctx;
    /// What a flow yields once its facts are complete.
    type Output;

    /// A SYN (`ack`: a SYN-ACK) in direction `d`.
    fn on_syn(&mut self, d: usize, ack: bool);

    /// Whether direction `d`'s bytes still matter; the table reassembles
    /// them only while they do, and frees them as soon as they do not.
    fn wants_bytes(&self, d: usize) -> bool;

    /// Direction `ev.d`'s stream start after a data segment.
    fn on_stream(&mut self, ctx: &mut Self::Ctx, ev: StreamEvent<'_>);

    /// Bounds hit by direction `d` after a segment (`cap`: its stream start
    /// reached the stream cap; `over_budget`: the table's buffers are over
    /// budget). Returns whether each bound stopped the direction (and is
    /// counted as hit).
    fn on_bounds(
        &mut self,
        ctx: &mut Self::Ctx,
        d: usize,
        cap: bool,
        over_budget: bool,
    ) -> (bool, bool);

    /// Whether the flow's facts are complete; pushes its output (if any) and
    /// returns true if so. `first_ts`: each direction's first payload time.
    fn settle(
        &mut self,
        ctx: &mut Self::Ctx,
        key: &FlowKey,
        first_ts: [Option<u64>; 2],
        out: &mut Vec<Self::Output>,
    ) -> bool;

    /// The flow ends (FIN/RST, eviction, end of input) before it settled:
    /// push what is known.
    fn finish(
        &mut self,
        ctx: &mut Self::Ctx,
        key: &FlowKey,
        first_ts: [Option<u64>; 2],
        out: &mut Vec<Self::Output>,
    );
}
