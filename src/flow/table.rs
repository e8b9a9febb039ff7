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

use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::key::FlowKey;
use super::mirror::{Ledger, Seen};
use super::reassembly::{Ingest, SpareBuffers, StreamLimits, StreamStart};
pub use super::segment::{Segment, SegmentIn, Span};
use super::session::{Session, StreamEvent, StreamView};
use super::settled::SettledSet;
pub use super::stats::{Eviction, TableStats};

#[derive(Clone, Copy, Debug)]
pub struct TableLimits {
    pub max_flows: usize,
    /// Most flows in their handshake (each holds its streams' state and
    /// its session's: several hundred bytes, where a settled flow holds
    /// under a hundred).
    pub max_handshakes: usize,
    pub idle_timeout_ns: u64,
    pub stream: StreamLimits,
    pub max_buffer_bytes: usize,
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

    /// Frees direction `d`'s buffered bytes (its buffer to `spare`);
    /// returns how many.
    fn release(&mut self, d: usize, spare: &mut SpareBuffers) -> usize {
        let freed = self.streams[d].footprint();
        self.streams[d].release(spare);
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

/// No flow (the ends of a list).
const NIL: u32 = u32::MAX;
/// Links of a flow that is not on a list.
const OUT: u32 = u32::MAX - 1;

/// The lists a flow is on, each oldest first: every flow is on
/// [`List::Created`]; flows in their handshake (an [`Active`] state, the
/// costly one) also on [`List::Handshakes`].
#[derive(Clone, Copy)]
enum List {
    Created = 0,
    Handshakes = 1,
}

struct Flow<S> {
    key: FlowKey,
    /// Per [`List`], the flows just before and just after this one on it
    /// (indexes into [`FlowTable::flows`], [`NIL`] at an end; [`OUT`]
    /// when not on it).
    links: [[u32; 2]; 2],
    last_seen: u64,
    /// The capture thread its first segment came from, or [`SPLIT`].
    thread: u8,
    /// The interface its first segment came from.
    iface: u8,
    seen: Seen,
    state: State<S>,
}

/// A flow's hash in the table: its dispatch hash (keyed with a secret
/// per process: flow keys come from the wire, so the hash must resist
/// crafted collisions), which the capture thread computed already, turned
/// so that the bits a hash table indexes by are not the ones that chose
/// this worker.
#[inline]
fn slot_hash_of(dispatch_hash: u64) -> u64 {
    dispatch_hash.rotate_left(32)
}

/// [`slot_hash_of`] a key.
#[inline]
fn slot_hash(key: &FlowKey) -> u64 {
    slot_hash_of(key.dispatch_hash())
}

pub struct FlowTable<S: Session> {
    /// The flows, packed: a flow that leaves is replaced by the last one.
    /// Memory follows the flows held, not the hash table's spare room,
    /// which holds only 4-byte indexes (a hash table grows by doubling,
    /// and to twice that while it moves: with the flows in it, a full
    /// table of held hellos spent more on empty slots than on the flows).
    flows: Vec<Flow<S>>,
    /// Indexes into `flows` by key, hashed with [`slot_hash`] (a
    /// `HashTable` takes the hash as an argument: a `HashMap` rehashed the
    /// key on each of the two or three lookups a segment needs).
    map: HashTable<u32>,
    /// Per [`List`], its oldest and newest flow, for evicting the oldest
    /// when full; and how many flows are in their handshake.
    ends: [[u32; 2]; 2],
    handshakes: usize,
    limits: TableLimits,
    now: u64,
    last_sweep: u64,
    buffered: usize,
    /// Buffers settled directions released, for the next streams.
    spare: SpareBuffers,
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
            flows: Vec::new(),
            map: HashTable::new(),
            ends: [[NIL; 2]; 2],
            handshakes: 0,
            limits,
            now: 0,
            last_sweep: 0,
            buffered: 0,
            spare: SpareBuffers::default(),
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
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The index of the flow `key` (hashed `hash`), if held.
    fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let flows = &self.flows;
        (self.map)
            .find(hash, |&i| flows[i as usize].key == *key)
            .copied()
    }

    /// Puts flow `i` on `list` as its newest.
    fn link(&mut self, list: List, i: u32) {
        let l = list as usize;
        let newest = self.ends[l][1];
        self.flows[i as usize].links[l] = [newest, NIL];
        match newest {
            NIL => self.ends[l][0] = i,
            n => self.flows[n as usize].links[l][1] = i,
        }
        self.ends[l][1] = i;
        self.handshakes += usize::from(matches!(list, List::Handshakes));
    }

    /// Takes flow `i` off `list` (nothing if it is not on it).
    fn unlink(&mut self, list: List, i: u32) {
        let l = list as usize;
        let [older, newer] = self.flows[i as usize].links[l];
        if older == OUT {
            return;
        }
        match older {
            NIL => self.ends[l][0] = newer,
            o => self.flows[o as usize].links[l][1] = newer,
        }
        match newer {
            NIL => self.ends[l][1] = older,
            n => self.flows[n as usize].links[l][0] = older,
        }
        self.flows[i as usize].links[l] = [OUT; 2];
        self.handshakes -= usize::from(matches!(list, List::Handshakes));
    }

    /// Flow `i` was moved there from another index: its neighbours on
    /// `list` point to it again.
    fn relink(&mut self, list: List, i: u32) {
        let l = list as usize;
        let [older, newer] = self.flows[i as usize].links[l];
        if older == OUT {
            return;
        }
        match older {
            NIL => self.ends[l][0] = i,
            o => self.flows[o as usize].links[l][1] = i,
        }
        match newer {
            NIL => self.ends[l][1] = i,
            n => self.flows[n as usize].links[l][0] = i,
        }
    }

    /// Takes flow `i` (its key hashed `hash`) out of the table, its lists
    /// and `flows`, where the last flow takes its place.
    fn take(&mut self, hash: u64, i: u32) -> Flow<S> {
        if let Ok(e) = self.map.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        self.unlink(List::Created, i);
        self.unlink(List::Handshakes, i);
        let last = (self.flows.len() - 1) as u32;
        let flow = self.flows.swap_remove(i as usize);
        if i != last {
            // The last flow moved to `i`: its index and its neighbours' links.
            let h = slot_hash(&self.flows[i as usize].key);
            if let Some(at) = self.map.find_mut(h, |&j| j == last) {
                *at = i;
            }
            self.relink(List::Created, i);
            self.relink(List::Handshakes, i);
        }
        flow
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
        // The capture thread hashed the key already (the same keyed hash).
        debug_assert_eq!(seg.dispatch_hash, key.dispatch_hash());
        let hash = slot_hash_of(seg.dispatch_hash);
        if syn && let Some(i) = self.find(hash, &key) {
            let flow = &mut self.flows[i as usize];
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
                self.remove_at(hash, i, out);
            }
        }

        // A full table makes room before a new flow goes in (a second probe,
        // only when full: the table never holds more than `max_flows` flows,
        // nor more than `max_handshakes` in their handshake).
        let creates = !(seg.payload.is_empty() && !syn || seg.flags.rst());
        if creates
            && (self.flows.len() >= self.limits.max_flows
                || self.handshakes >= self.limits.max_handshakes)
            && self.find(hash, &key).is_none()
        {
            if self.flows.len() >= self.limits.max_flows {
                self.evict_oldest(List::Created, out);
            }
            if self.handshakes >= self.limits.max_handshakes {
                self.evict_oldest(List::Handshakes, out);
            }
        }
        // One probe of the hash table: the flow, or the slot for a new one.
        let flows = &self.flows;
        let i = match self.map.entry(
            hash,
            |&i| flows[i as usize].key == key,
            |&i| slot_hash(&flows[i as usize].key),
        ) {
            Entry::Occupied(o) => *o.get(),
            Entry::Vacant(v) => {
                if !creates {
                    return; // a bare ACK/FIN/RST of a flow we do not know: nothing to learn
                }
                let i = flows.len() as u32;
                v.insert(i);
                self.stats.flows_created += 1;
                self.flows.push(Flow {
                    key,
                    links: [[OUT; 2]; 2],
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
                });
                self.link(List::Created, i);
                self.link(List::Handshakes, i);
                i
            }
        };
        let flow = &mut self.flows[i as usize];
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
                if seg.flags.rst() || *fin == [true, true] {
                    let flow = self.take(hash, i);
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
            active.streams[d].lend(&mut self.spare);
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
                let freed = active.release(d, &mut self.spare);
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
                active.release(dir, &mut self.spare);
            }
            self.stats.tally(flow.iface).add_ledgers(&active.ledgers);
            if seg.flags.rst() || active.fin == [true, true] {
                let flow = self.take(hash, i);
                self.stats.note_sides(&flow.key, flow.iface, flow.seen);
            } else {
                flow.state = State::Done { fin: active.fin };
                self.unlink(List::Handshakes, i);
                if let Some(set) = &self.settled {
                    set.mark_flow(seg.dispatch_hash, &seg.key, seg.ts);
                }
            }
        } else if closed {
            self.remove_at(hash, i, out);
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
        for _ in 0..max {
            let Some(last) = self.flows.len().checked_sub(1) else {
                break;
            };
            let hash = slot_hash(&self.flows[last].key);
            let flow = self.take(hash, last as u32);
            self.stats.note_sides(&flow.key, flow.iface, flow.seen);
            if let State::Active(mut active) = flow.state {
                self.stats.ended_open += 1;
                self.stats.close_active(flow.iface, &active.ledgers, |d| {
                    active.session.wants_bytes(d)
                });
                self.buffered -= active.footprint.min(self.buffered);
                let first_ts = active.first_ts();
                active
                    .session
                    .finish(&mut self.ctx, &flow.key, first_ts, out);
            }
        }
        !self.flows.is_empty()
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
        let stale: Vec<FlowKey> = (self.flows.iter())
            .filter(|f| f.last_seen < cutoff)
            .map(|f| f.key)
            .collect();
        for k in stale {
            self.stats.evicted_idle += 1;
            self.remove(&k, out);
        }
    }

    /// Evicts the oldest flow of `list` (counted by list).
    fn evict_oldest(&mut self, list: List, out: &mut Vec<S::Output>) {
        let i = self.ends[list as usize][0];
        if i != NIL {
            match list {
                List::Created => self.stats.evicted_table_full += 1,
                List::Handshakes => self.stats.evicted_handshakes += 1,
            }
            let hash = slot_hash(&self.flows[i as usize].key);
            self.remove_at(hash, i, out);
        }
    }

    /// Removes a flow, emitting a summary if it had unreported facts.
    fn remove(&mut self, key: &FlowKey, out: &mut Vec<S::Output>) {
        let hash = slot_hash(key);
        if let Some(i) = self.find(hash, key) {
            self.remove_at(hash, i, out);
        }
    }

    /// Removes flow `i` (its key hashed `hash`), emitting a summary if it
    /// had unreported facts.
    fn remove_at(&mut self, hash: u64, i: u32, out: &mut Vec<S::Output>) {
        let flow = self.take(hash, i);
        let key = &flow.key;
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
            max_handshakes: max_flows,
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

    /// The flows, the hash table and the creation list agree: each flow's
    /// index is in the table once, and the list walks every flow once,
    /// oldest first.
    fn check_links<S: Session>(t: &FlowTable<S>) -> Vec<FlowKey> {
        assert_eq!(t.map.len(), t.flows.len());
        for (i, f) in t.flows.iter().enumerate() {
            assert_eq!(t.find(slot_hash(&f.key), &f.key), Some(i as u32));
        }
        let walk_list = |l: usize| {
            let (mut walk, mut at, mut prev) = (Vec::new(), t.ends[l][0], NIL);
            while at != NIL {
                let f = &t.flows[at as usize];
                assert_eq!(f.links[l][0], prev);
                walk.push(f.key);
                (prev, at) = (at, f.links[l][1]);
                assert!(walk.len() <= t.flows.len());
            }
            assert_eq!(prev, t.ends[l][1]);
            walk
        };
        let walk = walk_list(0);
        assert_eq!(walk.len(), t.flows.len());
        // The handshake list: the active flows, in creation order.
        let active: Vec<FlowKey> = (walk.iter())
            .filter(|k| {
                let i = t.find(slot_hash(k), k).unwrap();
                matches!(t.flows[i as usize].state, State::Active(_))
            })
            .copied()
            .collect();
        assert_eq!(walk_list(1), active);
        assert_eq!(t.handshakes, active.len());
        walk
    }

    /// Flows leave from anywhere (RST, eviction, reuse): the creation list
    /// stays in creation order and the oldest live flow is the one evicted.
    #[test]
    fn table_creation_list_survives_removal_from_anywhere() {
        let mut t = table(limits(64));
        let mut out = Vec::new();
        let mut live: Vec<FlowKey> = Vec::new();
        let mut x = 0x9e37_79b9u32;
        for n in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x.is_multiple_of(3) && !live.is_empty() {
                let k = live.remove((x as usize / 3) % live.len());
                t.ingest(seg(k, u64::from(n), ACK | RST, b""), &mut out);
            } else {
                let k = key(n);
                t.ingest(seg(k, u64::from(n), ACK, b"partial"), &mut out);
                if live.len() == 64 {
                    live.remove(0); // the oldest was evicted
                }
                live.push(k);
            }
            if n.is_multiple_of(97) {
                assert_eq!(check_links(&t), live);
            }
        }
        assert_eq!(check_links(&t), live);
        t.drain_some(&mut out, 10);
        assert_eq!(check_links(&t).len(), live.len() - 10);
        t.drain(&mut out);
        assert!(check_links(&t).is_empty());
        assert_eq!(t.ends, [[NIL; 2]; 2]);
    }

    /// Flows in their handshake have a bound of their own: beyond it the
    /// oldest of them is evicted (its facts reported), not a settled flow,
    /// and settled flows do not count against it.
    #[test]
    fn table_handshake_bound_evicts_the_oldest_handshake() {
        let mut t = table(TableLimits {
            max_handshakes: 4,
            ..limits(100)
        });
        let mut out = Vec::new();
        // Ten flows that settle (a whole line) stay as small settled flows.
        for n in 0..10u32 {
            t.ingest(seg(key(n), 1, ACK, b"GET / HTTP/1.1\r\n\r\n"), &mut out);
        }
        // Then six that stay in their handshake (a line not ended).
        for n in 100..106u32 {
            t.ingest(seg(key(n), 2, ACK, b"partial"), &mut out);
        }
        assert_eq!(t.len(), 14);
        assert_eq!(t.handshakes, 4);
        assert_eq!(t.stats.evicted_handshakes, 2);
        assert_eq!(t.stats.evicted_table_full, 0);
        assert_eq!(t.ctx_mut().unfinished, 2, "the evicted flows were reported");
        for (n, held) in [
            (0, true),
            (100, false),
            (101, false),
            (102, true),
            (105, true),
        ] {
            let h = slot_hash(&key(n));
            assert_eq!(t.find(h, &key(n)).is_some(), held, "flow {n}");
        }
        check_links(&t);
    }

    /// Flows settle, stay in their handshake, close and are evicted in any
    /// order, under both bounds: the lists stay consistent and neither
    /// bound is ever passed.
    #[test]
    fn table_lists_hold_under_mixed_churn() {
        let mut t = table(TableLimits {
            max_handshakes: 24,
            ..limits(40)
        });
        let mut out = Vec::new();
        let mut x = 0x2545_f491u32;
        for n in 0..30_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let k = key(x % 200);
            let (flags, payload): (u8, &[u8]) = match x % 5 {
                0 => (ACK | RST, b""),
                1 | 2 => (ACK, b"partial"),
                _ => (ACK, b"GET / HTTP/1.1\r\n\r\n"),
            };
            t.ingest(seg(k, u64::from(n), flags, payload), &mut out);
            assert!(t.len() <= 40 && t.handshakes <= 24);
            if n.is_multiple_of(101) {
                check_links(&t);
            }
        }
        check_links(&t);
        assert!(t.stats.evicted_handshakes > 0 && t.stats.evicted_table_full > 0);
        t.drain(&mut out);
        assert!(check_links(&t).is_empty());
    }

    /// Regression (issue 6, memory flat on a 10x capture): the eviction queue
    /// kept an entry per flow ever seen until it reached twice `max_flows`
    /// (25 MB at the default); the creation list is in the flows themselves.
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
            assert!(t.flows.len() <= 1 && t.map.len() == t.flows.len());
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
        let h = slot_hash(&key(10_000));
        assert!(t.find(h, &key(10_000)).is_none(), "the oldest went");
        let h = slot_hash(&key(10_004));
        assert!(t.find(h, &key(10_004)).is_some());
        check_links(&t);
    }

    /// A full table is mostly flows in their handshake (held hellos under a
    /// flood): what each costs besides its bytes stays small.
    #[test]
    fn table_flow_state_stays_small() {
        use std::mem::size_of;
        assert!(size_of::<Active<crate::tls::session::TlsSession>>() <= 384);
        assert!(size_of::<Flow<crate::tls::session::TlsSession>>() <= 80);
    }
}
