//! The per-worker flow table: TCP segments in, [`HandshakeSummary`] values out.
//!
//! Input: [`SegmentIn`] values for the flows this worker owns, in capture order.
//! Output: one summary per TLS flow (pushed to the caller's vector) and counters
//! in [`TableStats`]. The table tracks TCP (the hash table, creation order and
//! eviction, idle expiry, the buffer budget, SYN reuse, FIN/RST) and reassembles
//! each direction's stream start while the flow's [`TlsSession`] wants its
//! bytes; what the bytes mean, and when a flow's facts are complete, is the
//! session's business. Invariants: at most `max_flows` flows, at most
//! `max_buffer_bytes` of stream bytes buffered over all flows, flows idle for
//! `idle_timeout_ns` of capture time are evicted; each bound hit is counted. A
//! direction's buffers are freed as soon as the session needs them no more; a
//! settled flow leaves a small tombstone until FIN/RST or idle timeout.

use std::sync::Arc;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::key::{Direction, FlowKey};
use super::reassembly::{Ingest, StreamLimits, StreamStart};
use super::settled::SettledSet;
use crate::decode::l4::TcpFlags;
use crate::order::CreationOrder;
use crate::tls::certificate::CertificateCache;
use crate::tls::session::{SessionCtx, SessionStats, StreamView, TlsSession};
use crate::tls::summary::{DnsLookup, HandshakeSummary};

#[derive(Clone, Copy, Debug)]
pub struct TableLimits {
    pub max_flows: usize,
    pub idle_timeout_ns: u64,
    pub stream: StreamLimits,
    pub max_buffer_bytes: usize,
}

/// One segment as the table sees it; the payload is borrowed from the batch.
#[derive(Clone, Copy, Debug)]
pub struct SegmentIn<'a> {
    pub ts: u64,
    pub key: FlowKey,
    pub dir: Direction,
    pub seq: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
    /// The capture cut this segment's payload (snap length).
    pub cut: bool,
    /// `key.dispatch_hash()`, computed once by the capture thread.
    pub dispatch_hash: u64,
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
    /// Overlapping segments with bytes other than those kept.
    pub overlap_conflicts: u64,
    /// Flows still in their handshake when the input ended (or at shutdown).
    pub ended_open: u64,
    /// What the flows' TLS sessions counted.
    pub tls: SessionStats,
}

struct Active {
    streams: [StreamStart; 2],
    fin: [bool; 2],
    footprint: usize,
    session: TlsSession,
}

impl Active {
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

enum State {
    Active(Box<Active>),
    /// Settled: facts emitted or not a handshake; waits for RST, a FIN from
    /// each side, or idle timeout, so late packets do not start a bogus flow.
    Done {
        fin: [bool; 2],
    },
}

struct Flow {
    key: FlowKey,
    generation: u64,
    last_seen: u64,
    state: State,
}

pub struct FlowTable {
    /// Flows by key, hashed once per segment with `hasher` (a `HashTable`
    /// takes the hash as an argument: a `HashMap` rehashed the key on each of
    /// the two or three lookups a segment needs).
    map: HashTable<Flow>,
    /// aHash with a random key: flow keys come from the wire, so the hash
    /// must resist crafted collisions, and SipHash was a tenth of the run time.
    hasher: ahash::RandomState,
    /// Creation order, for evicting the oldest when full.
    order: CreationOrder<FlowKey>,
    limits: TableLimits,
    now: u64,
    last_sweep: u64,
    buffered: usize,
    scratch: Vec<u8>,
    certificates: CertificateCache,
    /// Shared with the capture thread, which drops segments of settled flows.
    settled: Option<Arc<SettledSet>>,
    /// Asked when a ClientHello is read (see [`DnsAtHello`]).
    dns_lookup: Option<DnsLookup>,
    pub stats: TableStats,
}

impl FlowTable {
    pub fn new(limits: TableLimits) -> Self {
        FlowTable {
            map: HashTable::new(),
            hasher: ahash::RandomState::new(),
            order: CreationOrder::default(),
            limits,
            now: 0,
            last_sweep: 0,
            buffered: 0,
            scratch: Vec::new(),
            certificates: CertificateCache::default(),
            settled: None,
            dns_lookup: None,
            stats: TableStats::default(),
        }
    }

    /// Asks `lookup` about the server when a flow's ClientHello is read, and
    /// reports the answer with the flow.
    pub fn with_dns_lookup(mut self, lookup: DnsLookup) -> Self {
        self.dns_lookup = Some(lookup);
        self
    }

    /// Publishes settled flows to `set` (see [`SettledSet`]).
    pub fn with_settled(mut self, set: Arc<SettledSet>) -> Self {
        self.settled = Some(set);
        self
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn session_ctx(&mut self) -> SessionCtx<'_> {
        SessionCtx {
            scratch: &mut self.scratch,
            certificates: &mut self.certificates,
            max_message: self.limits.stream.max_bytes,
            dns_lookup: self.dns_lookup.as_ref(),
            stats: &mut self.stats.tls,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Feeds one segment; summaries of flows that settle are pushed to `out`.
    pub fn ingest(&mut self, seg: SegmentIn<'_>, out: &mut Vec<HandshakeSummary>) {
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
        let is_key = |f: &Flow| f.key == key;
        if syn && let Some(flow) = self.map.find_mut(hash, is_key) {
            // Only a new client SYN starts a new connection. A SYN-ACK with
            // another ISN (a retransmission after a lost ACK, TCP Fast Open
            // fallbacks, a middlebox) does not: it is an anomaly, and the
            // server's stream follows the new ISN if no data came yet.
            let client_syn = !seg.flags.ack();
            let reused = match &mut flow.state {
                State::Done { .. } => client_syn,
                State::Active(a) => {
                    let stream = &mut a.streams[seg.dir.index()];
                    let conflict = stream.conflicts_with_syn(seg.seq);
                    if conflict && !client_syn {
                        self.stats.server_isn_changed += 1;
                        stream.rebase_syn(seg.seq);
                    }
                    conflict && client_syn
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
                    state: State::Active(Box::new(Active {
                        streams: Default::default(),
                        fin: [false; 2],
                        footprint: 0,
                        session: TlsSession::default(),
                    })),
                })
                .into_mut()
            }
        };
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
                    e.remove();
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
            active.session.on_syn(d, seg.flags.ack());
        }
        let mut ctx = SessionCtx {
            scratch: &mut self.scratch,
            certificates: &mut self.certificates,
            max_message: self.limits.stream.max_bytes,
            dns_lookup: self.dns_lookup.as_ref(),
            stats: &mut self.stats.tls,
        };
        if !seg.payload.is_empty() && active.session.wants_bytes(d) {
            let reading_cert = active.session.reading_certificate(d);
            let data_seq = if syn {
                seg.seq.wrapping_add(1)
            } else {
                seg.seq
            };
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
                &mut ctx,
                d,
                [view(&active.streams[0]), view(&active.streams[1])],
                result == Ingest::Grew,
                seg.cut,
                reading_cert,
                &seg.key,
                seg.dir,
                seg.ts,
            );
            let reading_cert = active.session.reading_certificate(d);
            let (capped, budget) = active.session.on_bounds(
                &mut ctx,
                d,
                active.streams[d].cap_reached(),
                self.buffered > self.limits.max_buffer_bytes,
                reading_cert,
            );
            self.stats.stream_cap_hits += u64::from(capped);
            self.stats.buffer_budget_hits += u64::from(budget);
            // A direction that hit a bound, or whose opening is known, needs
            // its bytes no more (unless the certificate is read on): free them
            // now, not when the other side settles, so a flood of lone hellos
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
        let settled = active.session.settle(&mut ctx, &seg.key, first_ts, out);
        let closed = seg.flags.rst() || active.fin == [true, true];
        if settled {
            self.buffered -= active.footprint.min(self.buffered);
            for dir in 0..2 {
                active.release(dir);
            }
            if seg.flags.rst() || active.fin == [true, true] {
                if let Ok(e) = self.map.find_entry(hash, is_key) {
                    e.remove();
                }
            } else {
                flow.state = State::Done { fin: active.fin };
                if let Some(set) = &self.settled {
                    set.mark(seg.dispatch_hash);
                }
            }
        } else if closed {
            self.remove_hashed(hash, &key, out);
        }
    }

    /// Ends every flow (end of input or shutdown), emitting what is known.
    pub fn drain(&mut self, out: &mut Vec<HandshakeSummary>) {
        let FlowTable {
            map,
            scratch,
            certificates,
            limits,
            dns_lookup,
            stats,
            buffered,
            ..
        } = self;
        for flow in map.drain() {
            if let State::Active(mut active) = flow.state {
                stats.ended_open += 1;
                *buffered -= active.footprint.min(*buffered);
                let mut ctx = SessionCtx {
                    scratch,
                    certificates,
                    max_message: limits.stream.max_bytes,
                    dns_lookup: dns_lookup.as_ref(),
                    stats: &mut stats.tls,
                };
                let first_ts = active.first_ts();
                active.session.finish(&mut ctx, &flow.key, first_ts, out);
            }
        }
        self.order.clear();
    }

    /// Advances the table's clock without a packet (live mode: the wall
    /// clock), evicting idle flows when a sweep is due.
    pub fn tick(&mut self, now: u64, out: &mut Vec<HandshakeSummary>) {
        if now > self.now {
            self.now = now;
        }
        if self.now.saturating_sub(self.last_sweep) >= 1_000_000_000 {
            self.expire(out);
        }
    }

    /// Evicts flows idle longer than the timeout (capture time).
    pub fn expire(&mut self, out: &mut Vec<HandshakeSummary>) {
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

    fn evict_oldest(&mut self, out: &mut Vec<HandshakeSummary>) {
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
    fn remove(&mut self, key: &FlowKey, out: &mut Vec<HandshakeSummary>) {
        self.remove_hashed(self.hasher.hash_one(key), key, out);
    }

    fn remove_hashed(&mut self, hash: u64, key: &FlowKey, out: &mut Vec<HandshakeSummary>) {
        let Ok(entry) = self.map.find_entry(hash, |f| f.key == *key) else {
            return;
        };
        let (flow, _) = entry.remove();
        if let State::Active(mut active) = flow.state {
            self.buffered -= active.footprint.min(self.buffered);
            let mut ctx = self.session_ctx();
            let first_ts = active.first_ts();
            active.session.finish(&mut ctx, key, first_ts, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::l4::{ACK, RST};
    use crate::flow::Endpoint;
    use crate::tls::session::CertificateStats;
    use std::net::{IpAddr, Ipv4Addr};

    fn limits(max_flows: usize) -> TableLimits {
        TableLimits {
            max_flows,
            idle_timeout_ns: 60_000_000_000,
            stream: StreamLimits {
                max_bytes: 16384,
                max_pending: 32,
            },
            max_buffer_bytes: 1 << 20,
        }
    }

    fn key(n: u32) -> FlowKey {
        let client = Endpoint::new(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 | n)), 40000);
        let server = Endpoint::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 443);
        FlowKey::new(client, server).0
    }

    fn seg(key: FlowKey, ts: u64, flags: u8, payload: &[u8]) -> SegmentIn<'_> {
        SegmentIn {
            cut: false,
            dispatch_hash: key.dispatch_hash(),
            ts,
            key,
            dir: Direction::LoToHi,
            seq: 1000,
            flags: TcpFlags(flags),
            payload,
        }
    }

    /// A ClientHello (TLS 1.2, no extensions or one server_name).
    fn client_hello(sni: Option<&str>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7; 32]);
        body.extend([0, 0, 2, 0, 0x2f, 1, 0]);
        if let Some(name) = sni {
            let n = name.len() as u16;
            let mut ext = vec![0, 0];
            ext.extend((n + 5).to_be_bytes());
            ext.extend((n + 3).to_be_bytes());
            ext.push(0);
            ext.extend(n.to_be_bytes());
            ext.extend(name.as_bytes());
            body.extend((ext.len() as u16).to_be_bytes());
            body.extend(ext);
        }
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    /// One handshake: the ClientHello, then a real OpenSSL TLS 1.2 server
    /// flight (ServerHello, Certificate, ...) in two segments.
    fn handshake(
        t: &mut FlowTable,
        sni: Option<&str>,
        out: &mut Vec<HandshakeSummary>,
    ) -> [usize; 2] {
        let flight: &[u8] = include_bytes!("../../tests/data/tls/server-flight-tls12.bin");
        let k = key(1);
        let hello = client_hello(sni);
        t.ingest(seg(k, 1, ACK, &hello), out);
        let server = |seq: u32, payload| SegmentIn {
            dir: Direction::HiToLo,
            seq,
            ..seg(k, 2, ACK, payload)
        };
        t.ingest(server(5000, &flight[..200]), out);
        let after_first = out.len();
        t.ingest(server(5200, &flight[200..]), out);
        [after_first, out.len()]
    }

    #[test]
    fn table_reads_the_certificate_only_without_sni() {
        // No SNI: the flow waits past the ServerHello for the certificate.
        let mut t = FlowTable::new(limits(16));
        let mut out = Vec::new();
        assert_eq!(handshake(&mut t, None, &mut out), [0, 1]);
        let names: Vec<&str> = out[0].certificate.as_ref().unwrap().names().collect();
        assert!(names.contains(&"*.blob.core.windows.net"), "{names:?}");
        assert_eq!(
            t.stats.tls.certificates,
            CertificateStats {
                names: 1,
                none: 0,
                failed: 0
            }
        );
        // With SNI: settled at the ServerHello, no certificate read.
        let mut t = FlowTable::new(limits(16));
        let mut out = Vec::new();
        assert_eq!(handshake(&mut t, Some("a.example"), &mut out), [1, 1]);
        assert_eq!(out[0].certificate, None);
        assert_eq!(t.stats.tls.certificates, CertificateStats::default());
        // A stream cap the leaf does not fit in: counted, the flow still reported.
        let mut l = limits(16);
        l.stream.max_bytes = 300;
        let mut t = FlowTable::new(l);
        let mut out = Vec::new();
        assert_eq!(handshake(&mut t, None, &mut out), [0, 1]);
        assert_eq!(out[0].certificate, None);
        assert!(out[0].negotiated().is_some());
        assert_eq!(t.stats.stream_cap_hits, 1);
        assert_eq!(t.stats.tls.certificates.failed, 1);
        // The flow ends before the certificate is complete: reported without it.
        let mut t = FlowTable::new(limits(16));
        let mut out = Vec::new();
        let k = key(1);
        let flight: &[u8] = include_bytes!("../../tests/data/tls/server-flight-tls12.bin");
        t.ingest(seg(k, 1, ACK, &client_hello(None)), &mut out);
        t.ingest(
            SegmentIn {
                dir: Direction::HiToLo,
                seq: 5000,
                ..seg(k, 2, ACK, &flight[..200])
            },
            &mut out,
        );
        t.ingest(seg(k, 3, ACK | RST, b""), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].certificate, None);
        assert_eq!(t.stats.tls.certificates.failed, 1);
    }

    /// Regression (issue 6, memory flat on a 10x capture): the eviction queue
    /// kept an entry per flow ever seen until it reached twice `max_flows`
    /// (25 MB at the default); it now follows the live flows.
    #[test]
    fn table_order_follows_live_flows() {
        let mut t = FlowTable::new(limits(262_144));
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
        assert_eq!(t.stats.tls.non_tls, 100_000);
        assert!(out.is_empty());
    }

    /// The oldest live flow is still the one evicted when the table is full,
    /// after the queue was compacted.
    #[test]
    fn table_full_evicts_oldest_after_compaction() {
        let mut t = FlowTable::new(limits(4));
        let mut out = Vec::new();
        // Many short flows, then four that stay open (half a ClientHello each).
        for n in 0..5000u32 {
            let k = key(n);
            t.ingest(seg(k, 1, ACK, b"GET / HTTP/1.1\r\n\r\n"), &mut out);
            t.ingest(seg(k, 1, ACK | RST, b""), &mut out);
        }
        for n in 10_000..10_005u32 {
            t.ingest(
                seg(key(n), 2, ACK, &[0x16, 0x03, 0x01, 0x00, 0x40, 0x01]),
                &mut out,
            );
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.stats.evicted_table_full, 1);
        let h = t.hasher.hash_one(key(10_000));
        assert!(
            t.map.find(h, |f| f.key == key(10_000)).is_none(),
            "the oldest went"
        );
        let h = t.hasher.hash_one(key(10_004));
        assert!(t.map.find(h, |f| f.key == key(10_004)).is_some());
    }
}
