//! The per-worker flow table: TCP segments in, each flow's session output out.
//!
//! Input: [`SegmentIn`] values for the flows this worker owns, in capture order.
//! Output: what each flow's [`Session`] yields (pushed to the caller's vector)
//! and counters in [`TableStats`]. The table tracks TCP (the hash table,
//! creation order and eviction, idle expiry, the buffer budget, SYN reuse,
//! FIN/RST) and reassembles each direction's stream start while the session
//! wants its bytes; what the bytes mean, and when a flow's facts are complete,
//! is the session's business: the table knows no protocol. Invariants: at most `max_flows` flows, at most
//! `max_buffer_bytes` of stream bytes buffered over all flows, flows idle for
//! `idle_timeout_ns` of capture time are evicted; each bound hit is counted. A
//! direction's buffers are freed as soon as the session needs them no more; a
//! settled flow leaves a small tombstone until FIN/RST or idle timeout. For
//! the mirror's health ([`super::mirror`]) it also keeps, per flow, which
//! sides' segments came and, while the flow is in its handshake phase, each
//! direction's sequence ledger; both are tallied per interface in
//! [`TableStats`] as the flow settles or leaves.

use crate::decode::l4::TcpSegment;
use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::key::{Direction, FlowKey};
use super::mirror::{Block, Ledger, MirrorTally, Seen, Sides};
use super::reassembly::{Ingest, StreamLimits, StreamStart};
use super::session::{Session, StreamEvent, StreamView};
use super::settled::SettledSet;
use crate::decode::l4::TcpFlags;
use crate::order::CreationOrder;

#[derive(Clone, Copy, Debug)]
pub struct TableLimits {
    pub max_flows: usize,
    pub idle_timeout_ns: u64,
    pub stream: StreamLimits,
    pub max_buffer_bytes: usize,
}

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

crate::label_set! {
    /// `reason` values of `tlscensus_flow_evictions_total`: why a flow left
    /// the table before it settled.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Eviction {
        Idle = "idle",
        TableFull = "table_full",
        EndOfCapture = "end_of_capture",
    }
}

impl TableStats {
    /// Flows that left for one reason.
    pub fn evictions(&self, e: Eviction) -> u64 {
        match e {
            Eviction::Idle => self.evicted_idle,
            Eviction::TableFull => self.evicted_table_full,
            Eviction::EndOfCapture => self.ended_open,
        }
    }
}

/// Counters kept by the table; the worker flushes them to metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub flows_created: u64,
    pub evicted_idle: u64,
    pub evicted_table_full: u64,
    pub buffer_budget_hits: u64,
    pub stream_cap_hits: u64,
    pub pending_full: u64,
    pub reused: u64,
    /// SYN-ACKs whose ISN differs from the server's first one.
    pub server_isn_changed: u64,
    /// Client SYNs retransmitted with another ISN before any byte (kept
    /// as candidates, not a new connection).
    pub client_isn_changed: u64,
    /// Overlapping segments with bytes other than those kept.
    pub overlap_conflicts: u64,
    /// Flows still in their handshake when the input ended (or at shutdown).
    pub ended_open: u64,
    /// Flows whose segments came from more than one capture thread.
    pub split_flows: u64,
    /// What the mirror showed, by interface index (see [`FlowTable::set_source`]).
    pub mirror: Vec<MirrorTally>,
    /// Client blocks of flows whose opening was captured, with whether both
    /// directions came, by interface index; the caller takes them.
    pub blocks: Vec<(u8, Block, bool)>,
}

impl TableStats {
    fn tally(&mut self, iface: u8) -> &mut MirrorTally {
        let i = usize::from(iface);
        if self.mirror.len() <= i {
            self.mirror.resize(i + 1, MirrorTally::default());
        }
        &mut self.mirror[i]
    }

    /// A flow leaves the table: how its directions showed.
    fn note_sides(&mut self, key: &FlowKey, iface: u8, seen: Seen) {
        if let Some((sides, client)) = seen.sides() {
            self.tally(iface).sides[sides] += 1;
            self.blocks
                .push((iface, Block::of(key, client), sides == Sides::Both));
        }
    }

    /// A flow ends in its handshake phase: its ledgers, and a handshake gap
    /// when bytes a direction still needed are missing.
    fn close_active(&mut self, iface: u8, ledgers: &[Ledger; 2], wants: impl Fn(usize) -> bool) {
        let t = self.tally(iface);
        t.add_ledgers(ledgers);
        if (0..2).any(|d| ledgers[d].has_loss() && wants(d)) {
            t.handshake_gaps += 1;
        }
    }
}

/// [`Flow::thread`] of a flow already counted in `split_flows`.
const SPLIT: u8 = u8::MAX;

struct Active<S> {
    streams: [StreamStart; 2],
    /// Each direction's sequence space, for the loss estimate.
    ledgers: [Ledger; 2],
    fin: [bool; 2],
    footprint: usize,
    session: S,
}

impl<S> Active<S> {
    fn first_ts(&self) -> [Option<u64>; 2] {
        [self.streams[0].first_ts, self.streams[1].first_ts]
    }

    /// Frees direction `d`'s buffered bytes; returns how many.
    fn release(&mut self, d: usize) -> usize {
        let freed = self.streams[d].footprint();
        self.streams[d].release();
        self.footprint -= freed.min(self.footprint);
        freed
    }
}

enum State<S> {
    Active(Box<Active<S>>),
    /// Settled: facts emitted or not a handshake; waits for RST, a FIN from
    /// each side, or idle timeout, so late packets do not start a bogus flow.
    Done {
        fin: [bool; 2],
    },
}

struct Flow<S> {
    key: FlowKey,
    generation: u64,
    last_seen: u64,
    /// The capture thread its first segment came from, or [`SPLIT`].
    thread: u8,
    /// The interface its first segment came from.
    iface: u8,
    seen: Seen,
    state: State<S>,
}

pub struct FlowTable<S: Session> {
    /// Flows by key, hashed once per segment with `hasher` (a `HashTable`
    /// takes the hash as an argument: a `HashMap` rehashed the key on each of
    /// the two or three lookups a segment needs).
    map: HashTable<Flow<S>>,
    /// aHash with a random key: flow keys come from the wire, so the hash
    /// must resist crafted collisions, and SipHash was a tenth of the run time.
    hasher: ahash::RandomState,
    /// Creation order, for evicting the oldest when full.
    order: CreationOrder<FlowKey>,
    limits: TableLimits,
    now: u64,
    last_sweep: u64,
    buffered: usize,
    /// What the sessions share (see [`Session::Ctx`]).
    ctx: S::Ctx,
    /// Shared with the capture thread, which drops segments of settled flows.
    settled: Option<Arc<SettledSet>>,
    /// The capture thread the segments now being ingested came from.
    source: u8,
    /// The interface they came from.
    iface: u8,
    pub stats: TableStats,
}

impl<S: Session> FlowTable<S> {
    pub fn new(limits: TableLimits, ctx: S::Ctx) -> Self {
        FlowTable {
            map: HashTable::new(),
            hasher: ahash::RandomState::new(),
            order: CreationOrder::default(),
            limits,
            now: 0,
            last_sweep: 0,
            buffered: 0,
            ctx,
            settled: None,
            source: 0,
            iface: 0,
            stats: TableStats::default(),
        }
    }

    /// The capture thread the next segments come from (`live
    /// --capture-threads`): a flow fed by two is counted in `split_flows`.
    pub fn set_source(&mut self, thread: u8, iface: u8) {
        self.source = thread.min(SPLIT - 1);
        self.iface = iface;
    }

    /// What the sessions share, e.g. to take their counters.
    pub fn ctx_mut(&mut self) -> &mut S::Ctx {
        &mut self.ctx
    }

    /// Publishes settled flows to `set` (see [`SettledSet`]).
    pub fn with_settled(mut self, set: Arc<SettledSet>) -> Self {
        self.settled = Some(set);
        self
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// The table's clock: the latest capture time it saw.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Feeds one segment; the output of flows that settle is pushed to `out`.
    pub fn ingest(&mut self, seg: SegmentIn<'_>, out: &mut Vec<S::Output>) {
        if seg.ts > self.now {
            self.now = seg.ts;
        }
        if self.now.saturating_sub(self.last_sweep) >= 1_000_000_000 {
            self.expire(out);
        }
        let syn = seg.flags.syn();
        let control = seg.flags.control();
        if control && let Some(set) = &self.settled {
            set.control_processed(seg.dispatch_hash);
        }

        let key = seg.key;
        let hash = self.hasher.hash_one(key);
        let is_key = |f: &Flow<S>| f.key == key;
        if syn && let Some(flow) = self.map.find_mut(hash, is_key) {
            // Only a new client SYN starts a new connection, and only once
            // the old one carried something. A SYN-ACK with another ISN (a
            // spurious one, a middlebox, SYN-ACKs alternating between two
            // ISNs), or a client SYN retransmitted with another ISN before
            // any byte or FIN, is an ambiguity: each distinct ISN is kept
            // until the first data shows which one the stream continues.
            let client_syn = !seg.flags.ack();
            let reused = match &mut flow.state {
                State::Done { .. } => client_syn,
                State::Active(a) => {
                    let d = seg.dir.index();
                    let conflict = a.streams[d].conflicts_with_syn(seg.seq);
                    let quiet = a.fin == [false, false] && a.streams.iter().all(|s| s.is_empty());
                    let kept = conflict
                        && (!client_syn || quiet)
                        && a.streams[d].add_syn_candidate(seg.seq);
                    if conflict {
                        if client_syn {
                            self.stats.client_isn_changed += u64::from(kept);
                        } else {
                            self.stats.server_isn_changed += 1;
                        }
                    }
                    conflict && client_syn && !kept
                }
            };
            if reused {
                self.stats.reused += 1;
                self.remove_hashed(hash, &key, out);
            }
        }

        // Entries of flows that ended stay in `order` until here: drop them
        // once they are as many as the live flows, so the queue follows the
        // live flows (not `max_flows`) and memory stays flat on a long
        // capture. Amortized O(1): a pass over n entries follows at least n/2
        // pushes.
        let (map, hasher) = (&self.map, &self.hasher);
        self.order.compact(map.len(), 1024, |k, g| {
            map.find(hasher.hash_one(k), |f| f.key == *k)
                .is_some_and(|f| f.generation == g)
        });
        // A full table makes room before a new flow goes in (a second probe,
        // only when full: the table never grows past `max_flows`).
        let creates = !(seg.payload.is_empty() && !syn || seg.flags.rst());
        if creates
            && self.map.len() >= self.limits.max_flows
            && self.map.find(hash, is_key).is_none()
        {
            self.evict_oldest(out);
        }
        // One probe of the hash table: the flow, or the slot for a new one.
        let hasher = &self.hasher;
        let flow = match self.map.entry(hash, is_key, |f| hasher.hash_one(f.key)) {
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                if !creates {
                    return; // a bare ACK/FIN/RST of a flow we do not know: nothing to learn
                }
                let generation = self.order.push(seg.key);
                self.stats.flows_created += 1;
                v.insert(Flow {
                    key,
                    generation,
                    last_seen: seg.ts,
                    thread: self.source,
                    iface: self.iface,
                    seen: Seen::default(),
                    state: State::Active(Box::new(Active {
                        streams: Default::default(),
                        ledgers: Default::default(),
                        fin: [false; 2],
                        footprint: 0,
                        session: S::default(),
                    })),
                })
                .into_mut()
            }
        };
        if flow.thread != self.source && flow.thread != SPLIT {
            flow.thread = SPLIT;
            self.stats.split_flows += 1;
        }
        // A settled flow's data segments reach the table or not depending
        // on how far it lags the capture thread: only its control segments
        // count, so the verdict does not depend on that.
        if control || matches!(flow.state, State::Active(_)) {
            flow.seen.note(seg.dir, seg.flags);
        }
        let active = match &mut flow.state {
            State::Done { fin } => {
                // Only control segments keep a settled flow alive: its data
                // segments reach this table or not depending on how far it
                // lags the capture thread (see `SettledSet`), and the outcome
                // must not depend on that.
                if control {
                    flow.last_seen = flow.last_seen.max(seg.ts);
                }
                if seg.flags.fin() {
                    fin[seg.dir.index()] = true;
                }
                if (seg.flags.rst() || *fin == [true, true])
                    && let Ok(e) = self.map.find_entry(hash, is_key)
                {
                    let (flow, _) = e.remove();
                    self.stats.note_sides(&flow.key, flow.iface, flow.seen);
                }
                return;
            }
            State::Active(a) => {
                flow.last_seen = flow.last_seen.max(seg.ts);
                a
            }
        };

        let d = seg.dir.index();
        if syn {
            active.streams[d].on_syn(seg.seq);
            active.ledgers[d].on_syn(seg.seq);
            active.session.on_syn(d, seg.flags.ack());
        }
        // The loss estimate: the sequence space this segment shows.
        let data_seq = seg.seq.wrapping_add(u32::from(syn));
        let wire = (seg.payload.len() as u32).saturating_add(seg.missing);
        active.ledgers[d].on_data(data_seq, wire);
        if seg.flags.fin() {
            active.ledgers[d].on_data(data_seq.wrapping_add(wire), 1);
        }
        if seg.flags.ack() {
            active.ledgers[1 - d].on_ack(seg.ack);
        }
        let ctx = &mut self.ctx;
        if !seg.payload.is_empty() && active.session.wants_bytes(d) {
            let before = active.streams[d].footprint();
            let result =
                active.streams[d].ingest(seg.ts, data_seq, seg.payload, self.limits.stream);
            let after = active.streams[d].footprint();
            self.stats.overlap_conflicts +=
                u64::from(std::mem::take(&mut active.streams[d].conflicts));
            self.buffered = (self.buffered + after).saturating_sub(before);
            active.footprint = (active.footprint + after).saturating_sub(before);
            if result == Ingest::PendingFull {
                self.stats.pending_full += 1;
            }
            fn view(s: &StreamStart) -> StreamView<'_> {
                StreamView {
                    bytes: s.bytes(),
                    syn_seen: s.syn_seen(),
                    first_ts: s.first_ts,
                }
            }
            active.session.on_stream(
                ctx,
                StreamEvent {
                    d,
                    dir: seg.dir,
                    streams: [view(&active.streams[0]), view(&active.streams[1])],
                    grew: result == Ingest::Grew,
                    cut: seg.missing > 0,
                    key: &seg.key,
                    ts: seg.ts,
                },
            );
            let (capped, budget) = active.session.on_bounds(
                ctx,
                d,
                active.streams[d].cap_reached(),
                self.buffered > self.limits.max_buffer_bytes,
            );
            self.stats.stream_cap_hits += u64::from(capped);
            self.stats.buffer_budget_hits += u64::from(budget);
            // A direction that hit a bound, or whose bytes the session wants
            // no more: free them now, not when the other side settles, so a flood of lone hellos
            // holds no buffers while the hellos wait for an answer.
            if (capped || budget || !active.session.wants_bytes(d))
                && active.streams[d].footprint() > 0
            {
                let freed = active.release(d);
                self.buffered -= freed.min(self.buffered);
            }
        }
        if seg.flags.fin() {
            active.fin[d] = true;
        }

        let first_ts = active.first_ts();
        let settled = active.session.settle(ctx, &seg.key, first_ts, out);
        let closed = seg.flags.rst() || active.fin == [true, true];
        if settled {
            self.buffered -= active.footprint.min(self.buffered);
            for dir in 0..2 {
                active.release(dir);
            }
            self.stats.tally(flow.iface).add_ledgers(&active.ledgers);
            if seg.flags.rst() || active.fin == [true, true] {
                if let Ok(e) = self.map.find_entry(hash, is_key) {
                    let (flow, _) = e.remove();
                    self.stats.note_sides(&flow.key, flow.iface, flow.seen);
                }
            } else {
                flow.state = State::Done { fin: active.fin };
                if let Some(set) = &self.settled {
                    set.mark_flow(seg.dispatch_hash, &seg.key, seg.ts);
                }
            }
        } else if closed {
            self.remove_hashed(hash, &key, out);
        }
    }

    /// Ends every flow (end of input or shutdown), emitting what is known.
    pub fn drain(&mut self, out: &mut Vec<S::Output>) {
        while self.drain_some(out, usize::MAX) {}
    }

    /// Ends at most `max` flows, emitting what is known; true while flows
    /// remain. A caller that reports `out` between calls never holds the
    /// summaries of a whole full table at once.
    pub fn drain_some(&mut self, out: &mut Vec<S::Output>, max: usize) -> bool {
        let FlowTable {
            map,
            stats,
            ctx,
            buffered,
            ..
        } = self;
        for flow in map.extract_if(|_| true).take(max) {
            stats.note_sides(&flow.key, flow.iface, flow.seen);
            if let State::Active(mut active) = flow.state {
                stats.ended_open += 1;
                stats.close_active(flow.iface, &active.ledgers, |d| {
                    active.session.wants_bytes(d)
                });
                *buffered -= active.footprint.min(*buffered);
                let first_ts = active.first_ts();
                active.session.finish(ctx, &flow.key, first_ts, out);
            }
        }
        if self.map.is_empty() {
            self.order.clear();
            return false;
        }
        true
    }

    /// Advances the table's clock without a packet (live mode: the wall
    /// clock), evicting idle flows when a sweep is due.
    pub fn tick(&mut self, now: u64, out: &mut Vec<S::Output>) {
        if now > self.now {
            self.now = now;
        }
        if self.now.saturating_sub(self.last_sweep) >= 1_000_000_000 {
            self.expire(out);
        }
    }

    /// Evicts flows idle longer than the timeout (capture time).
    pub fn expire(&mut self, out: &mut Vec<S::Output>) {
        self.last_sweep = self.now;
        let cutoff = self.now.saturating_sub(self.limits.idle_timeout_ns);
        let stale: Vec<FlowKey> = self
            .map
            .iter()
            .filter(|f| f.last_seen < cutoff)
            .map(|f| f.key)
            .collect();
        for k in stale {
            self.stats.evicted_idle += 1;
            self.remove(&k, out);
        }
    }

    fn evict_oldest(&mut self, out: &mut Vec<S::Output>) {
        let (map, hasher) = (&self.map, &self.hasher);
        let oldest = self.order.pop_oldest(|k, generation| {
            map.find(hasher.hash_one(k), |f| f.key == *k)
                .is_some_and(|f| f.generation == generation)
        });
        if let Some(k) = oldest {
            self.stats.evicted_table_full += 1;
            self.remove(&k, out);
        }
    }

    /// Removes a flow, emitting a summary if it had unreported facts.
    fn remove(&mut self, key: &FlowKey, out: &mut Vec<S::Output>) {
        self.remove_hashed(self.hasher.hash_one(key), key, out);
    }

    fn remove_hashed(&mut self, hash: u64, key: &FlowKey, out: &mut Vec<S::Output>) {
        let Ok(entry) = self.map.find_entry(hash, |f| f.key == *key) else {
            return;
        };
        let (flow, _) = entry.remove();
        self.stats.note_sides(&flow.key, flow.iface, flow.seen);
        if let State::Active(mut active) = flow.state {
            self.stats.close_active(flow.iface, &active.ledgers, |d| {
                active.session.wants_bytes(d)
            });
            self.buffered -= active.footprint.min(self.buffered);
            let first_ts = active.first_ts();
            active.session.finish(&mut self.ctx, key, first_ts, out);
        }
    }
}

/// Flows and segments for the unit tests of the table and of the sessions it
/// drives.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::{IpAddr, Ipv4Addr};

    use super::{SegmentIn, TableLimits};
    use crate::decode::l4::TcpFlags;
    use crate::flow::{Direction, Endpoint, FlowKey, StreamLimits};

    /// A minute's idle timeout, 32 waiting segments, 1 MiB buffered.
    pub fn limits(max_flows: usize, max_bytes: usize) -> TableLimits {
        TableLimits {
            max_flows,
            idle_timeout_ns: 60_000_000_000,
            stream: StreamLimits {
                max_bytes,
                max_pending: 32,
            },
            max_buffer_bytes: 1 << 20,
        }
    }

    /// Client 10.0.0.n:40000 to 192.0.2.1:443.
    pub fn key(n: u32) -> FlowKey {
        let client = Endpoint::new(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | n)), 40000);
        let server = Endpoint::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 443);
        FlowKey::new(client, server).0
    }

    /// A low-to-high segment at sequence number 1000.
    pub fn seg(key: FlowKey, ts: u64, flags: u8, payload: &[u8]) -> SegmentIn<'_> {
        SegmentIn {
            missing: 0,
            ack: 0,
            dispatch_hash: key.dispatch_hash(),
            ts,
            key,
            dir: Direction::LoToHi,
            seq: 1000,
            flags: TcpFlags(flags),
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{key, seg};
    use super::*;
    use crate::decode::l4::{ACK, RST, SYN};

    /// A session that reads lines, to test the table alone: a direction is
    /// done at its first newline, and the flow settles with that line.
    #[derive(Default)]
    struct LineSession {
        done: [bool; 2],
        line: Option<Vec<u8>>,
    }

    /// Lines of flows that ended unsettled, and bound hits seen.
    #[derive(Default)]
    struct LineCtx {
        unfinished: u64,
        bounds: u64,
    }

    impl Session for LineSession {
        type Ctx = LineCtx;
        type Output = Vec<u8>;

        fn on_syn(&mut self, _d: usize, _ack: bool) {}

        fn wants_bytes(&self, d: usize) -> bool {
            !self.done[d]
        }

        fn on_stream(&mut self, _ctx: &mut LineCtx, ev: StreamEvent<'_>) {
            let bytes = ev.streams[ev.d].bytes;
            if let Some(n) = bytes.iter().position(|b| *b == b'\n') {
                self.done[ev.d] = true;
                self.line = Some(bytes[..n].to_vec());
            }
        }

        fn on_bounds(
            &mut self,
            ctx: &mut LineCtx,
            d: usize,
            cap: bool,
            budget: bool,
        ) -> (bool, bool) {
            if (cap || budget) && !self.done[d] {
                self.done[d] = true;
                ctx.bounds += 1;
                return (cap, budget && !cap);
            }
            (false, false)
        }

        fn settle(
            &mut self,
            _ctx: &mut LineCtx,
            _key: &FlowKey,
            _first_ts: [Option<u64>; 2],
            out: &mut Vec<Vec<u8>>,
        ) -> bool {
            match self.line.take() {
                Some(line) => {
                    out.push(line);
                    true
                }
                None => false,
            }
        }

        fn finish(
            &mut self,
            ctx: &mut LineCtx,
            _key: &FlowKey,
            _first_ts: [Option<u64>; 2],
            _out: &mut Vec<Vec<u8>>,
        ) {
            ctx.unfinished += 1;
        }
    }

    fn limits(max_flows: usize) -> TableLimits {
        testing::limits(max_flows, 64)
    }

    fn table(limits: TableLimits) -> FlowTable<LineSession> {
        FlowTable::new(limits, LineCtx::default())
    }

    #[test]
    fn table_reassembles_until_the_session_is_done() {
        let mut t = table(limits(16));
        let mut out = Vec::new();
        let k = key(1);
        t.ingest(
            SegmentIn {
                seq: 999,
                ..seg(k, 0, SYN, b"")
            },
            &mut out,
        );
        // Out of order: the second half first, then the first.
        t.ingest(
            SegmentIn {
                seq: 1004,
                ..seg(k, 1, ACK, b"o\nrest")
            },
            &mut out,
        );
        assert!(out.is_empty());
        assert!(t.buffered_bytes() > 0);
        t.ingest(seg(k, 2, ACK, b"hel"), &mut out);
        assert!(out.is_empty(), "a gap remains");
        t.ingest(
            SegmentIn {
                seq: 1003,
                ..seg(k, 3, ACK, b"l")
            },
            &mut out,
        );
        assert_eq!(out, vec![b"hello".to_vec()]);
        // Settled: its buffers are gone, a tombstone stays until FIN/RST.
        assert_eq!((t.buffered_bytes(), t.len()), (0, 1));
        t.ingest(seg(k, 4, ACK, b"more\n"), &mut out);
        assert_eq!(out.len(), 1, "a settled flow yields once");
        t.ingest(seg(k, 5, ACK | RST, b""), &mut out);
        assert_eq!(t.len(), 0);
        assert_eq!(t.ctx_mut().unfinished, 0);
    }

    #[test]
    fn table_bounds_reach_the_session() {
        let mut t = table(limits(16));
        let mut out = Vec::new();
        t.ingest(seg(key(1), 1, ACK, &[b'x'; 100]), &mut out);
        assert_eq!(t.stats.stream_cap_hits, 1);
        assert_eq!(t.ctx_mut().bounds, 1);
        assert_eq!(t.buffered_bytes(), 0, "freed once the session gave up");
        t.drain(&mut out);
        assert_eq!(t.stats.ended_open, 1);
        assert_eq!(t.ctx_mut().unfinished, 1);
    }

    /// Regression (issue 6, memory flat on a 10x capture): the eviction queue
    /// kept an entry per flow ever seen until it reached twice `max_flows`
    /// (25 MB at the default); it now follows the live flows.
    #[test]
    fn table_order_follows_live_flows() {
        let mut t = table(limits(262_144));
        let mut out = Vec::new();
        for n in 0..100_000u32 {
            let k = key(n);
            t.ingest(
                seg(k, u64::from(n), ACK, b"GET / HTTP/1.1\r\n\r\n"),
                &mut out,
            );
            t.ingest(seg(k, u64::from(n), ACK | RST, b""), &mut out);
            assert!(t.order.len() <= 2 * t.map.len() + 1024 + 1);
        }
        assert_eq!(t.len(), 0);
        assert_eq!(out.len(), 100_000);
    }

    /// The oldest live flow is still the one evicted when the table is full,
    /// after the queue was compacted.
    #[test]
    fn table_full_evicts_oldest_after_compaction() {
        let mut t = table(limits(4));
        let mut out = Vec::new();
        // Many short flows, then four that stay open (a line not ended).
        for n in 0..5000u32 {
            let k = key(n);
            t.ingest(seg(k, 1, ACK, b"GET / HTTP/1.1\r\n\r\n"), &mut out);
            t.ingest(seg(k, 1, ACK | RST, b""), &mut out);
        }
        for n in 10_000..10_005u32 {
            t.ingest(seg(key(n), 2, ACK, b"partial"), &mut out);
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.stats.evicted_table_full, 1);
        assert_eq!(t.ctx_mut().unfinished, 1);
        let h = t.hasher.hash_one(key(10_000));
        assert!(
            t.map.find(h, |f| f.key == key(10_000)).is_none(),
            "the oldest went"
        );
        let h = t.hasher.hash_one(key(10_004));
        assert!(t.map.find(h, |f| f.key == key(10_004)).is_some());
    }

    /// A full table is mostly flows in their handshake (held hellos under a
    /// flood): what each costs besides its bytes stays small.
    #[test]
    fn table_flow_state_stays_small() {
        use std::mem::size_of;
        assert!(size_of::<Active<crate::tls::session::TlsSession>>() <= 384);
        assert!(size_of::<Flow<crate::tls::session::TlsSession>>() <= 72);
    }
}
