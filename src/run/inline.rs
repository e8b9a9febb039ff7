//! The whole per-packet path on the calling thread, without channels or
//! threads: the stages the pipeline runs, in one place, for fuzzing,
//! benchmarks and tests.
//!
//! Input: frames. Output: the handshake summaries of flows that settled.
//! Invariant: the same decode, fragment, flow and TLS stages as the threaded
//! pipeline (DNS responses are parsed but not learned; host names are
//! learned into a store of this census' own).

use crate::capture::Frame;
use crate::config::Config;
use std::sync::Arc;

use crate::decode::dns as dns_wire;
use crate::decode::{FragmentCache, TunnelPorts};
use crate::hosts::learn::NameLearner;
use crate::hosts::names::HostNames;
use crate::tls::HandshakeSummary;
use crate::tls::session::{TlsTable, tls_table};

use super::dispatch::{Item, frame_items};

/// The whole per-packet path on the calling thread, without channels: decode,
/// join fragments, track flows, extract. The threaded pipeline runs exactly
/// these stages; this form serves fuzzing, benchmarks and tests.
pub struct InlineCensus {
    frag: FragmentCache,
    tunnels: TunnelPorts,
    table: TlsTable,
    pub names: NameLearner,
    /// Summaries of flows settled so far.
    pub out: Vec<HandshakeSummary>,
    pub decode_errors: u64,
}

impl InlineCensus {
    pub fn new(config: &Config) -> Self {
        InlineCensus {
            frag: FragmentCache::new(
                config.max_fragments,
                config.max_fragment_bytes,
                config.fragment_timeout_ns,
            ),
            tunnels: config.tunnels,
            table: tls_table(config.table),
            names: NameLearner::new(Arc::new(HostNames::new(&config.names))),
            out: Vec::new(),
            decode_errors: 0,
        }
    }

    pub fn push(&mut self, frame: &Frame<'_>) {
        let InlineCensus {
            frag,
            tunnels,
            table,
            out,
            names,
            ..
        } = self;
        let ts = frame.ts_ns;
        let mut responses = Vec::new();
        let result = frame_items(frame, tunnels, frag, |item| match item {
            Item::Segment(seg) => table.ingest(seg, out),
            Item::Dns { payload, tcp } => dns_wire::messages(payload, tcp, |m| {
                if let Ok(r) = m.and_then(dns_wire::parse_response) {
                    responses.push(r);
                }
            }),
            Item::Names(d) => names.learn(d, ts),
        });
        for r in &responses {
            names.dns_ptr(r, ts);
        }
        if result.is_err() {
            self.decode_errors += 1;
        }
    }

    /// Ends every flow, as at the end of input.
    pub fn finish(&mut self) {
        self.table.drain(&mut self.out);
    }

    pub fn flows_tracked(&self) -> usize {
        self.table.len()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.table.buffered_bytes()
    }
}
