//! What the flow table counts: evictions by reason, bounds hit, and the
//! mirror's view of the flows that left.
//!
//! Input: the table's events as flows come and go. Output: [`TableStats`],
//! which the worker flushes to the metrics. Invariant: every flow that
//! leaves is tallied once.

use super::key::FlowKey;
use super::mirror::{Block, Ledger, MirrorTally, Seen, Sides};

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
            Eviction::TableFull => self.evicted_table_full + self.evicted_handshakes,
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
    /// Flows evicted in their handshake because `max_handshakes` were.
    pub evicted_handshakes: u64,
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
    /// What the mirror showed, by interface index (see [`super::table::FlowTable::set_source`]).
    pub mirror: Vec<MirrorTally>,
    /// Client blocks of flows whose opening was captured, with whether both
    /// directions came, by interface index; the caller takes them.
    pub blocks: Vec<(u8, Block, bool)>,
}

impl TableStats {
    pub(super) fn tally(&mut self, iface: u8) -> &mut MirrorTally {
        let i = usize::from(iface);
        if self.mirror.len() <= i {
            self.mirror.resize(i + 1, MirrorTally::default());
        }
        &mut self.mirror[i]
    }

    /// A flow leaves the table: how its directions showed.
    pub(super) fn note_sides(&mut self, key: &FlowKey, iface: u8, seen: Seen) {
        if let Some((sides, client)) = seen.sides() {
            self.tally(iface).sides[sides] += 1;
            self.blocks
                .push((iface, Block::of(key, client), sides == Sides::Both));
        }
    }

    /// A flow ends in its handshake phase: its ledgers, and a handshake gap
    /// when bytes a direction still needed are missing.
    pub(super) fn close_active(
        &mut self,
        iface: u8,
        ledgers: &[Ledger; 2],
        wants: impl Fn(usize) -> bool,
    ) {
        let t = self.tally(iface);
        t.add_ledgers(ledgers);
        if (0..2).any(|d| ledgers[d].has_loss() && wants(d)) {
            t.handshake_gaps += 1;
        }
    }
}
