//! The per-worker flow table: TCP segments in, [`HandshakeSummary`] values out.
//!
//! Input: [`SegmentIn`] values for the flows this worker owns, in capture order.
//! Output: one summary per TLS flow (pushed to the caller's vector) and counters
//! in [`TableStats`]. Invariants: at most `max_flows` flows, at most
//! `max_buffer_bytes` of stream bytes buffered over all flows, flows idle for
//! `idle_timeout_ns` of capture time are evicted; each bound hit is counted.
//! Only the start of a flow is reassembled: once its handshake facts are known
//! (or it is known not to be a TLS handshake) its buffers are freed and only a
//! small tombstone remains until FIN/RST or idle timeout. A flow whose client
//! sent no server name and whose server negotiated TLS 1.2 or older is read on
//! past the ServerHello up to the server's (clear-text) leaf certificate, within
//! the same stream cap.

use std::collections::VecDeque;
use std::sync::Arc;

use hashbrown::HashTable;

use super::key::{Direction, FlowKey};
use super::reassembly::{Ingest, StreamLimits, StreamStart};
use super::settled::SettledSet;
use crate::decode::l4::TcpFlags;
use crate::tls::certificate::CertificateCache;
use crate::tls::extract::{Malformed, Opening, TlsError, parse_cut_opening, parse_opening};
use crate::tls::summary::{
    ClientFacts, DnsAtHello, DnsLookup, HandshakeSummary, ServerAnswer, ServerCertificate,
};
use crate::tls::version::Version;

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
    pub non_tls: u64,
    pub midstream: u64,
    pub incomplete: u64,
    pub conflicting_roles: u64,
    pub server_not_tls: u64,
    pub reused: u64,
    /// SYN-ACKs whose ISN differs from the server's first one.
    pub server_isn_changed: u64,
    /// Overlapping segments with bytes other than those kept.
    pub overlap_conflicts: u64,
    /// Handshake directions the capture cut (snap length) before their
    /// opening could be read whole.
    pub cut_handshakes: u64,
    /// Flows still in their handshake when the input ended (or at shutdown).
    pub ended_open: u64,
    pub malformed: [u64; Malformed::ALL.len()],
    /// Server certificates looked for (flows without SNI, TLS ≤ 1.2), by
    /// result: names read, no certificate sent, not readable (malformed, over
    /// the stream cap or buffer budget, or the flow ended first).
    pub certificates: CertificateStats,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateStats {
    pub names: u64,
    pub none: u64,
    pub failed: u64,
}

/// What one direction's stream start has told us so far.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DirStatus {
    Empty,
    Pending,
    /// A HelloRetryRequest (selecting this version) and nothing after it yet:
    /// waits like `Pending`, and is the answer if the flow ends here.
    Retried(Version),
    Hello(ClientFacts),
    Answer(ServerAnswer),
    NotTls,
    MidStream,
    Failed,
}

impl DirStatus {
    /// Still reading this direction's opening.
    fn is_open(&self) -> bool {
        matches!(
            self,
            DirStatus::Empty | DirStatus::Pending | DirStatus::Retried(_)
        )
    }

    fn is_terminal_non_hello(&self) -> bool {
        matches!(
            self,
            DirStatus::NotTls | DirStatus::MidStream | DirStatus::Failed
        )
    }
}

/// The server certificate of a flow, looked for only when it can tell which
/// server a client without SNI reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Cert {
    /// Not looked for: the client named the server, the version encrypts the
    /// certificate, or no ServerHello yet.
    #[default]
    Unwanted,
    /// The ServerHello is in: reading the server's stream on to the certificate.
    Waiting,
    /// Looked for: its names, or `None` (none sent, or not readable).
    Read(Option<Arc<ServerCertificate>>),
}

struct Active {
    streams: [StreamStart; 2],
    status: [DirStatus; 2],
    fin: [bool; 2],
    footprint: usize,
    cert: Cert,
    /// The server's direction, once a SYN or SYN-ACK told it.
    server: Option<usize>,
    /// Passive DNS at the ClientHello (see [`FlowTable::with_dns_lookup`]).
    dns: Option<DnsAtHello>,
}

impl Active {
    /// The client's hello named the server (SNI): no certificate is needed.
    fn client_named_server(&self) -> bool {
        self.status
            .iter()
            .any(|s| matches!(s, DirStatus::Hello(f) if f.sni.is_some()))
    }

    /// Still reading the certificate, and it still matters.
    fn cert_pending(&self) -> bool {
        self.cert == Cert::Waiting && !self.client_named_server()
    }

    /// Only the server has spoken, and not TLS (a banner on a TLS port):
    /// each direction is judged on its own, so the client's first bytes,
    /// which may be a ClientHello, are still awaited.
    fn server_spoke_first(&self) -> bool {
        self.server
            .is_some_and(|s| self.status[s] == DirStatus::NotTls && self.status[1 - s].is_open())
    }

    /// Direction `d` is the server's, read on for its certificate.
    fn reading_certificate(&self, d: usize) -> bool {
        matches!(self.status[d], DirStatus::Answer(_)) && self.cert_pending()
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
    /// Creation order, for evicting the oldest when full (stale entries skipped).
    order: VecDeque<(FlowKey, u64)>,
    next_gen: u64,
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
            order: VecDeque::new(),
            next_gen: 0,
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
            set.control_processed(seg.key.dispatch_hash());
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

        if self.map.find(hash, is_key).is_none() {
            if seg.payload.is_empty() && !syn || seg.flags.rst() {
                return; // a bare ACK/FIN/RST of a flow we do not know: nothing to learn
            }
            if self.map.len() >= self.limits.max_flows {
                self.evict_oldest(out);
            }
            let generation = self.next_gen;
            self.next_gen += 1;
            self.order.push_back((seg.key, generation));
            // Entries of flows that ended stay until here: drop them once they
            // are as many as the live flows, so the queue follows the live
            // flows (not `max_flows`) and memory stays flat on a long capture.
            // Amortized O(1): a pass over n entries follows at least n/2 pushes.
            if self.order.len() > self.map.len().saturating_mul(2) + 1024 {
                let (map, hasher) = (&self.map, &self.hasher);
                self.order.retain(|(k, g)| {
                    map.find(hasher.hash_one(k), |f| f.key == *k)
                        .is_some_and(|f| f.generation == *g)
                });
            }
            self.stats.flows_created += 1;
            let hasher = &self.hasher;
            self.map.insert_unique(
                hash,
                Flow {
                    key,
                    generation,
                    last_seen: seg.ts,
                    state: State::Active(Box::new(Active {
                        streams: Default::default(),
                        status: [DirStatus::Empty, DirStatus::Empty],
                        fin: [false; 2],
                        footprint: 0,
                        cert: Cert::Unwanted,
                        server: None,
                        dns: None,
                    })),
                },
                |f| hasher.hash_one(f.key),
            );
        }

        let Some(flow) = self.map.find_mut(hash, is_key) else {
            return;
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
            if active.server.is_none() {
                active.server = Some(if seg.flags.ack() { d } else { 1 - d });
            }
        }
        let reading_cert = active.reading_certificate(d);
        let wants_bytes = reading_cert || active.status[d].is_open();
        if !seg.payload.is_empty() && wants_bytes {
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
            let mut status = None;
            match result {
                Ingest::Grew if !reading_cert => {
                    status = Some(parse_status(
                        &active.streams[d],
                        &mut self.scratch,
                        self.limits.stream.max_bytes,
                        &mut self.stats,
                    ));
                }
                Ingest::Grew => {}
                Ingest::PendingFull => self.stats.pending_full += 1,
                Ingest::CapReached | Ingest::NoChange | Ingest::BeforeStart => {}
            }
            // The capture cut this segment (snap length): the bytes after it
            // will never come, so what the stream start shows is all there is.
            if seg.cut
                && !reading_cert
                && matches!(
                    status.as_ref().unwrap_or(&active.status[d]),
                    DirStatus::Pending | DirStatus::Retried(_) | DirStatus::Empty
                )
                && !active.streams[d].bytes().is_empty()
            {
                self.stats.cut_handshakes += 1;
                status = Some(match parse_cut_opening(active.streams[d].bytes()) {
                    Some(Opening::ClientHello(f)) => DirStatus::Hello(f),
                    Some(Opening::Answer(a)) => DirStatus::Answer(a),
                    None => DirStatus::Failed,
                });
            }
            if let Some(mut st) = status {
                // A bare alert is an answer only where the stream start is known
                // (SYN seen) or a ClientHello was seen; mid-flow, it is just a
                // late packet of a connection we missed.
                if matches!(st, DirStatus::Answer(ServerAnswer::Alert { .. }))
                    && !active.streams[d].syn_seen()
                    && !matches!(active.status[1 - d], DirStatus::Hello(_))
                    && !active.streams[1 - d].syn_seen()
                {
                    st = DirStatus::MidStream;
                }
                if let DirStatus::Answer(ServerAnswer::Hello { version, .. }) = st
                    && certificate_in_clear(version)
                    && !active.client_named_server()
                {
                    active.cert = Cert::Waiting;
                }
                if let (DirStatus::Hello(facts), Some(lookup)) = (&st, &self.dns_lookup) {
                    let server = seg.key.endpoints(seg.dir.reverse()).0;
                    let ts = active.streams[d].first_ts.unwrap_or(seg.ts);
                    active.dns = Some(lookup(server.ip(), facts.sni.as_deref(), ts));
                }
                active.status[d] = st;
            }
            if matches!(result, Ingest::Grew) && active.reading_certificate(d) {
                active.cert = read_certificate(
                    active.streams[d].bytes(),
                    &mut self.certificates,
                    &mut self.scratch,
                    self.limits.stream.max_bytes,
                    &mut self.stats,
                );
            }
            let reading_cert = active.reading_certificate(d);
            if (matches!(active.status[d], DirStatus::Pending | DirStatus::Retried(_))
                || reading_cert)
                && active.streams[d].cap_reached()
            {
                self.stats.stream_cap_hits += 1;
                active.give_up(d, &mut self.stats, &mut self.buffered);
            }
            if self.buffered > self.limits.max_buffer_bytes
                && (active.status[d].is_open() || reading_cert)
            {
                // Over the worker's buffer budget: give this direction up.
                self.stats.buffer_budget_hits += 1;
                active.give_up(d, &mut self.stats, &mut self.buffered);
            }
            // A direction whose opening is known needs its bytes no more
            // (unless the certificate is read on): free them now, not when
            // the other side settles, so a flood of lone hellos holds no
            // buffers while the hellos wait for an answer.
            if !active.status[d].is_open()
                && !active.reading_certificate(d)
                && active.streams[d].footprint() > 0
            {
                let freed = active.streams[d].footprint();
                active.streams[d].release();
                self.buffered -= freed.min(self.buffered);
                active.footprint -= freed.min(active.footprint);
            }
        }
        if seg.flags.fin() {
            active.fin[d] = true;
        }

        let settled = settle(&mut *active, &seg.key, &mut self.stats, out);
        let closed = seg.flags.rst() || active.fin == [true, true];
        if settled {
            self.buffered -= active.footprint.min(self.buffered);
            if seg.flags.rst() || active.fin == [true, true] {
                if let Ok(e) = self.map.find_entry(hash, is_key) {
                    e.remove();
                }
            } else {
                flow.state = State::Done { fin: active.fin };
                if let Some(set) = &self.settled {
                    set.mark(seg.key.dispatch_hash());
                }
            }
        } else if closed {
            self.remove_hashed(hash, &key, out);
        }
    }

    /// Ends every flow (end of input or shutdown), emitting what is known.
    pub fn drain(&mut self, out: &mut Vec<HandshakeSummary>) {
        for flow in self.map.drain() {
            if let State::Active(mut active) = flow.state {
                self.stats.ended_open += 1;
                self.buffered -= active.footprint.min(self.buffered);
                finish(&mut active, &flow.key, &mut self.stats, out);
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
        while let Some((k, generation)) = self.order.pop_front() {
            let found = self.map.find(self.hasher.hash_one(k), |f| f.key == k);
            if found.is_some_and(|f| f.generation == generation) {
                self.stats.evicted_table_full += 1;
                self.remove(&k, out);
                return;
            }
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
            finish(&mut active, key, &mut self.stats, out);
        }
    }
}

fn parse_status(
    stream: &StreamStart,
    scratch: &mut Vec<u8>,
    max: usize,
    stats: &mut TableStats,
) -> DirStatus {
    match parse_opening(stream.bytes(), scratch, max) {
        Ok(Opening::ClientHello(f)) => DirStatus::Hello(f),
        Ok(Opening::Answer(a)) => DirStatus::Answer(a),
        Err(TlsError::NeedMore) => DirStatus::Pending,
        Err(TlsError::AfterRetry(v)) => DirStatus::Retried(v),
        Err(TlsError::NotTls) => DirStatus::NotTls,
        Err(TlsError::MidStream) => DirStatus::MidStream,
        Err(TlsError::Malformed(m)) => {
            stats.count_malformed(m);
            DirStatus::Failed
        }
    }
}

impl TableStats {
    fn count_malformed(&mut self, m: Malformed) {
        if let Some(i) = Malformed::ALL.iter().position(|x| *x == m) {
            self.malformed[i] += 1;
        }
    }
}

/// The server's stream start, read for its certificate (through the worker's
/// cache of parsed leaves), with the result counted.
fn read_certificate(
    server: &[u8],
    cache: &mut CertificateCache,
    scratch: &mut Vec<u8>,
    max: usize,
    stats: &mut TableStats,
) -> Cert {
    match cache.read(server, scratch, max) {
        Ok(Some(c)) => {
            stats.certificates.names += 1;
            Cert::Read(Some(c))
        }
        Ok(None) => {
            stats.certificates.none += 1;
            Cert::Read(None)
        }
        Err(TlsError::NeedMore) => Cert::Waiting,
        Err(e) => {
            if let TlsError::Malformed(m) = e {
                stats.count_malformed(m);
            }
            stats.certificates.failed += 1;
            Cert::Read(None)
        }
    }
}

impl Active {
    /// A bound stops direction `d`: its stream start, or the certificate read
    /// after it. Its bytes are freed at once (and taken off `buffered`), so a
    /// flow that hit a bound holds no buffer while it waits to end.
    fn give_up(&mut self, d: usize, stats: &mut TableStats, buffered: &mut usize) {
        if self.reading_certificate(d) {
            stats.certificates.failed += 1;
            self.cert = Cert::Read(None);
        } else {
            self.status[d] = DirStatus::Failed;
        }
        let freed = self.streams[d].footprint();
        self.streams[d].release();
        *buffered -= freed.min(*buffered);
        self.footprint -= freed.min(self.footprint);
    }
}

/// SSL 3.0 to TLS 1.2 send the server's certificate in clear text.
fn certificate_in_clear(v: Version) -> bool {
    (Version::SSL3.0..=Version::TLS12.0).contains(&v.0)
}

/// Decides whether the flow's facts are complete; emits and returns true if so.
fn settle(
    a: &mut Active,
    key: &FlowKey,
    stats: &mut TableStats,
    out: &mut Vec<HandshakeSummary>,
) -> bool {
    use DirStatus::*;
    let hellos = a.status.iter().filter(|s| matches!(s, Hello(_))).count();
    let answers = a.status.iter().filter(|s| matches!(s, Answer(_))).count();
    let done = if hellos == 2 || answers == 2 {
        stats.conflicting_roles += 1;
        true
    } else if a.cert_pending() {
        false
    } else if hellos == 1 && answers == 1 {
        emit(a, key, out);
        true
    } else if hellos + answers == 1 {
        // One side spoke TLS; settle once the other side can add nothing.
        let other = a
            .status
            .iter()
            .find(|s| !matches!(s, Hello(_) | Answer(_)))
            .unwrap_or(&Empty);
        if other.is_terminal_non_hello() {
            if *other == NotTls && hellos == 1 {
                stats.server_not_tls += 1;
            }
            emit(a, key, out);
            true
        } else {
            false
        }
    } else if a.status.contains(&NotTls) && !a.server_spoke_first() {
        stats.non_tls += 1;
        true
    } else if a.status.contains(&MidStream) {
        stats.midstream += 1;
        true
    } else {
        a.status == [Failed, Failed]
    };
    if done {
        for s in &mut a.streams {
            s.release();
        }
    }
    done
}

/// A flow ends before it settled: report what is known.
fn finish(a: &mut Active, key: &FlowKey, stats: &mut TableStats, out: &mut Vec<HandshakeSummary>) {
    if a.cert_pending() {
        stats.certificates.failed += 1;
    }
    // A HelloRetryRequest that was the server's last word is its answer.
    for st in &mut a.status {
        if let DirStatus::Retried(version) = *st {
            *st = DirStatus::Answer(ServerAnswer::Hello {
                version,
                retried: true,
            });
        }
    }
    let known = a
        .status
        .iter()
        .any(|s| matches!(s, DirStatus::Hello(_) | DirStatus::Answer(_)));
    if known {
        emit(a, key, out);
    } else if a.status.contains(&DirStatus::NotTls) {
        // A server banner the client never answered.
        stats.non_tls += 1;
    } else if a.status.contains(&DirStatus::Pending) {
        stats.incomplete += 1;
    }
}

fn emit(a: &mut Active, key: &FlowKey, out: &mut Vec<HandshakeSummary>) {
    let mut client = None;
    let mut answer = None;
    let mut client_dir = None;
    for (i, st) in a.status.iter().enumerate() {
        let dir = if i == 0 {
            Direction::LoToHi
        } else {
            Direction::HiToLo
        };
        match st {
            DirStatus::Hello(f) => {
                client = Some(f.clone());
                client_dir = Some(dir);
            }
            DirStatus::Answer(ans) => {
                answer = Some((*ans, dir));
            }
            _ => {}
        }
    }
    // The client sent the ClientHello; with only the answer seen, it received it.
    let (dir, ts) = match (client_dir, answer) {
        (Some(d), _) => (d, a.streams[d.index()].first_ts),
        (None, Some((_, d))) => (d.reverse(), a.streams[d.index()].first_ts),
        (None, None) => return,
    };
    let (c, s) = key.endpoints(dir);
    out.push(HandshakeSummary {
        ts_ns: ts.unwrap_or(0),
        client_ip: c.ip(),
        client_port: c.port,
        server_ip: s.ip(),
        server_port: s.port,
        client,
        answer: answer.map(|(ans, _)| ans),
        dns: a.dns.take(),
        certificate: match std::mem::take(&mut a.cert) {
            Cert::Read(c) => c,
            Cert::Unwanted | Cert::Waiting => None,
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::l4::{ACK, RST};
    use crate::flow::Endpoint;
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
            t.stats.certificates,
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
        assert_eq!(t.stats.certificates, CertificateStats::default());
        // A stream cap the leaf does not fit in: counted, the flow still reported.
        let mut l = limits(16);
        l.stream.max_bytes = 300;
        let mut t = FlowTable::new(l);
        let mut out = Vec::new();
        assert_eq!(handshake(&mut t, None, &mut out), [0, 1]);
        assert_eq!(out[0].certificate, None);
        assert!(out[0].negotiated().is_some());
        assert_eq!(t.stats.stream_cap_hits, 1);
        assert_eq!(t.stats.certificates.failed, 1);
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
        assert_eq!(t.stats.certificates.failed, 1);
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
        assert_eq!(t.stats.non_tls, 100_000);
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
