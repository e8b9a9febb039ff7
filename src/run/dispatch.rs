//! The capture thread's half of the pipeline: decode a frame, join IP
//! fragments, parse DNS responses, learn host names, skip segments of
//! settled flows, hash each TCP segment to its worker and batch it.
//!
//! Input: frames in capture order. Output: batches over bounded channels, one
//! per worker, each segment's payload copied once into its batch, and every
//! DNS response queued to every worker in its place among the segments.
//! Invariants: a flow's segments always reach the same worker, in capture
//! order; nothing here allocates per packet in steady state (batches are
//! recycled); counters are kept locally and flushed every 4,096 frames.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{SendMode, Shared};
use crate::capture::Frame;
use crate::decode::DecodeReason;
use crate::decode::dns::DnsResult;
use crate::decode::dns::{self as dns_wire, Response};
use crate::decode::frag::FragStats;
use crate::decode::frag::FragmentResult;
use crate::decode::l4::TcpFlags;
use crate::decode::tunnel::DNS_PORT;
use crate::decode::{self, DecodeError, FragmentCache, NameDatagram, Seen, TunnelPorts};
use crate::flow::key::dispatch_hash_v4;
use crate::flow::{Endpoint, FlowKey, SettledSet};
use crate::flow::{Segment, SegmentIn, Span};
use crate::hosts::learn::NameLearner;
use crate::label::ByLabel;
use crate::metrics::{Bound, flush_into};

const BATCH_SEGMENTS: usize = 512;
const BATCH_BYTES: usize = 256 * 1024;

/// A DNS response for the workers' passive DNS, in its place in the stream:
/// it is learned before segment number `before` of the batch.
pub(super) struct DnsItem {
    pub(super) before: u32,
    pub(super) ts: u64,
    pub(super) response: Arc<Response>,
}

/// Segments for one worker; payloads live in `bytes`. DNS responses travel
/// in every worker's batch, so each worker learns them in capture order,
/// between the same segments as on the wire.
#[derive(Default)]
pub struct Batch {
    pub(super) segs: Vec<Segment<Span>>,
    pub(super) bytes: Vec<u8>,
    pub(super) dns: Vec<DnsItem>,
    /// The capture thread that sent it (`live --capture-threads`).
    pub(super) thread: u8,
    /// The interface its frames came from (an index into the configured
    /// interfaces; 0 for capture files).
    pub(super) iface: u8,
}

impl Batch {
    pub(super) fn clear(&mut self) {
        self.segs.clear();
        self.bytes.clear();
        self.dns.clear();
    }

    fn is_empty(&self) -> bool {
        self.segs.is_empty() && self.dns.is_empty()
    }
}

/// DNS responses gathered in a batch before it is sent anyway.
const BATCH_DNS: usize = 256;

/// The capture thread's half: decode, join fragments, hash, batch, send.
pub struct Dispatcher {
    senders: Vec<Sender<Batch>>,
    recycle: Receiver<Batch>,
    current: Vec<Batch>,
    frag: FragmentCache,
    frag_reported: FragStats,
    mode: SendMode,
    shared: Arc<Shared>,
    packets: u64,
    bytes: u64,
    segments: u64,
    /// Segments of settled flows dropped here, never copied.
    skipped: u64,
    settled: Arc<SettledSet>,
    dropped_batches: u64,
    dropped_segments: u64,
    decode_errors: ByLabel<DecodeReason, u64, { DecodeReason::ALL.len() }>,
    /// DNS responses by result, flushed with the other counters.
    dns_results: ByLabel<DnsResult, u64, { DnsResult::ALL.len() }>,
    tunnels: TunnelPorts,
    /// Passive host names: the capture threads are the store's writers.
    names: NameLearner,
    /// This dispatcher's capture thread, written on each batch it sends.
    thread: u8,
    /// The interface the frames now pushed come from.
    iface: u8,
}

impl Dispatcher {
    /// The settled-flow set this dispatcher consults.
    pub fn settled(&self) -> &SettledSet {
        &self.settled
    }

    /// The dispatcher of capture thread `thread` of `of`: its fragment
    /// cache holds its share of the configured bounds.
    pub(super) fn new(
        senders: Vec<Sender<Batch>>,
        recycle: Receiver<Batch>,
        mode: SendMode,
        shared: Arc<Shared>,
        settled: Arc<SettledSet>,
        (thread, of): (usize, usize),
    ) -> Dispatcher {
        let c = &shared.config;
        let of = of.max(1);
        let frag = FragmentCache::new(
            (c.max_fragments / of).max(1),
            (c.max_fragment_bytes / of).max(1),
            c.fragment_timeout_ns,
        );
        let names = NameLearner::new(Arc::clone(&shared.names));
        Dispatcher {
            names,
            current: (0..senders.len()).map(|_| Batch::default()).collect(),
            senders,
            recycle,
            frag,
            frag_reported: FragStats::default(),
            mode,
            tunnels: c.tunnels,
            shared,
            packets: 0,
            bytes: 0,
            segments: 0,
            skipped: 0,
            settled,
            dropped_batches: 0,
            dropped_segments: 0,
            decode_errors: ByLabel::default(),
            dns_results: ByLabel::default(),
            thread: u8::try_from(thread).unwrap_or(u8::MAX),
            iface: 0,
        }
    }

    /// The frames pushed from now on come from interface `iface` (an index
    /// into the configured interfaces): the batches of the previous one are
    /// sent first, as a batch holds one interface's segments.
    pub fn set_interface(&mut self, iface: usize) {
        let iface = u8::try_from(iface).unwrap_or(u8::MAX);
        if iface != self.iface {
            self.flush_batches();
            self.iface = iface;
        }
    }

    /// Sends the last batches, waiting for the workers even in live mode
    /// (shutdown must not lose them), publishes the counters and closes the
    /// channels so the workers drain and end.
    pub(super) fn close(&mut self) {
        self.mode = SendMode::Block;
        self.flush_batches();
        self.flush_counters();
        self.senders.clear();
    }

    /// Feeds one frame.
    #[inline]
    pub fn push(&mut self, frame: &Frame<'_>) {
        self.packets += 1;
        self.bytes += u64::from(frame.wire_len.max(frame.data.len() as u32));
        if self.packets.is_multiple_of(4096) {
            self.flush_counters();
        }
        // Most packets on a busy link are bulk data of settled flows and bare
        // ACKs. For plain Ethernet/IPv4/TCP, decide that from the header bytes
        // with the IPv4 form of the dispatch hash, before building a flow key;
        // a segment that goes on is batched from the same header read (what
        // frame_items would do with it, without decoding it again).
        if let Some((IpAddr::V4(src), IpAddr::V4(dst), seg)) =
            decode::fast_ipv4_tcp(frame.linktype, frame.data)
            && seg.src_port != DNS_PORT
        {
            if seg.payload.is_empty() && !seg.flags.control() {
                return; // bare ACK: what frame_items leaves out
            }
            let h = dispatch_hash_v4(src, seg.src_port, dst, seg.dst_port);
            if !admit(&self.settled, h, seg.flags) {
                self.skipped += 1;
                return;
            }
            self.push_ipv4_tcp(frame.ts_ns, (src, dst), &seg, h);
            return;
        }
        self.push_segments(frame);
    }

    /// A plain IPv4 TCP segment the header test admitted, with its flow's
    /// dispatch hash `h`.
    #[inline(never)]
    fn push_ipv4_tcp(
        &mut self,
        ts_ns: u64,
        (src, dst): (std::net::Ipv4Addr, std::net::Ipv4Addr),
        seg: &decode::l4::TcpSegment<'_>,
        h: u64,
    ) {
        self.segments += 1;
        let (key, dir) = FlowKey::new(
            Endpoint::new(IpAddr::V4(src), seg.src_port),
            Endpoint::new(IpAddr::V4(dst), seg.dst_port),
        );
        let w = enqueue(&mut self.current, Segment::of(ts_ns, key, dir, h, seg));
        self.send_if_full(w);
    }

    fn send_if_full(&mut self, w: usize) {
        let b = &self.current[w];
        if b.segs.len() >= BATCH_SEGMENTS || b.bytes.len() >= BATCH_BYTES {
            self.send(w);
        }
    }

    /// The frames the header test above could not drop: full decode, fragment
    /// joining, flow key, batching. Out of line, so that the common path stays
    /// small (callgrind: fewer register saves per packet).
    #[inline(never)]
    fn push_segments(&mut self, frame: &Frame<'_>) {
        let Dispatcher {
            frag,
            tunnels,
            current,
            segments,
            skipped,
            settled,
            dns_results,
            names,
            ..
        } = self;
        let mut touched = None;
        // Responses are queued to the workers after the frame's segments.
        let mut responses: Vec<Response> = Vec::new();
        let result = frame_items(frame, tunnels, frag, |item| match item {
            Item::Segment(seg) => {
                if !admit(settled, seg.dispatch_hash, seg.flags) {
                    *skipped += 1;
                    return;
                }
                *segments += 1;
                touched = Some(enqueue(current, seg));
            }
            Item::Dns { payload, tcp } => parse_dns(payload, tcp, dns_results, &mut responses),
            Item::Names(d) => names.learn(d, frame.ts_ns),
        });
        if let Err(e) = result {
            self.count_error(e);
        }
        for r in responses {
            self.names.dns_ptr(&r, frame.ts_ns);
            let response = Arc::new(r);
            for b in self.current.iter_mut() {
                b.dns.push(DnsItem {
                    before: b.segs.len() as u32,
                    ts: frame.ts_ns,
                    response: Arc::clone(&response),
                });
            }
        }
        if let Some(w) = touched {
            self.send_if_full(w);
        }
        if self
            .current
            .first()
            .is_some_and(|b| b.dns.len() >= BATCH_DNS)
        {
            self.flush_batches();
        }
    }

    fn count_error(&mut self, e: DecodeError) {
        self.decode_errors[e.reason()] += 1;
    }

    fn send(&mut self, w: usize) {
        if self.current[w].is_empty() {
            return;
        }
        let fresh = self.recycle.try_recv().unwrap_or_default();
        let mut batch = std::mem::replace(&mut self.current[w], fresh);
        batch.thread = self.thread;
        batch.iface = self.iface;
        match self.mode {
            SendMode::Block => {
                // A closed channel means the worker died; the batch is lost with it.
                let _ = self.senders[w].send(batch);
            }
            SendMode::DropWhenFull => match self.senders[w].try_send(batch) {
                Ok(()) => {}
                Err(TrySendError::Full(mut b)) | Err(TrySendError::Disconnected(mut b)) => {
                    self.dropped_batches += 1;
                    self.dropped_segments += b.segs.len() as u64;
                    b.clear();
                    self.current[w] = b;
                }
            },
        }
    }

    /// Sends every partly filled batch (live mode: packets must not wait in a
    /// batch while the interface is quiet).
    pub fn flush_batches(&mut self) {
        for w in 0..self.senders.len() {
            self.send(w);
        }
    }

    /// Publishes the locally kept counters.
    pub fn flush_counters(&mut self) {
        let m = &self.shared.metrics;
        m.packets.inc_by(self.packets);
        m.bytes.inc_by(self.bytes);
        m.segments.inc_by(self.segments);
        m.settled_skips.inc_by(self.skipped);
        self.skipped = 0;
        self.shared
            .progress
            .packets
            .fetch_add(self.packets, Ordering::Relaxed);
        self.shared
            .progress
            .bytes
            .fetch_add(self.bytes, Ordering::Relaxed);
        self.packets = 0;
        self.bytes = 0;
        self.segments = 0;
        flush_into(&mut self.dns_results, &m.by.dns_responses);
        let names = &mut self.names.stats;
        for (results, handles) in names
            .messages
            .items_mut()
            .iter_mut()
            .zip(m.by.host_names.items())
        {
            flush_into(results, handles);
        }
        m.bound(Bound::HostNames, std::mem::take(&mut names.bound_hits));
        m.host_names.set(self.shared.names.len() as i64);
        flush_into(&mut self.decode_errors, &m.by.decode_errors);
        if self.dropped_batches > 0 {
            m.bound(Bound::WorkerQueue, self.dropped_batches);
            m.queue_drops.inc_by(self.dropped_segments);
            self.dropped_batches = 0;
            self.dropped_segments = 0;
        }
        let s = self.frag.stats;
        let r = self.frag_reported;
        let mut grew = ByLabel::new(|f: FragmentResult| s.count(f) - r.count(f));
        m.bound(Bound::Fragments, grew[FragmentResult::TableFull]);
        flush_into(&mut grew, &m.by.fragments);
        self.frag_reported = s;
    }
}

/// Adds an admitted segment to its worker's batch; returns the worker.
#[inline]
fn enqueue(current: &mut [Batch], seg: SegmentIn<'_>) -> usize {
    let w = (seg.dispatch_hash % current.len() as u64) as usize;
    let batch = &mut current[w];
    let span = Span {
        start: batch.bytes.len() as u32,
        len: seg.payload.len() as u32,
    };
    batch.bytes.extend_from_slice(seg.payload);
    batch.segs.push(seg.with_payload(span));
    w
}

/// The capture thread's decision for one segment of the flow with dispatch
/// hash `h`: false drops it (its flow is settled). SYN, FIN and RST segments
/// always go on, and are reported to `settled` (see [`SettledSet`] for why
/// dropping then never changes a result).
#[inline]
fn admit(settled: &SettledSet, h: u64, flags: TcpFlags) -> bool {
    if !flags.control() {
        !settled.is_settled(h)
    } else {
        settled.control(h);
        true
    }
}

/// What a frame holds for the census, in frame order.
pub(super) enum Item<'a> {
    /// A TCP segment that can teach us something, with its flow key,
    /// direction and dispatch hash. Bare ACKs (no payload, no SYN/FIN/RST)
    /// are left out.
    Segment(SegmentIn<'a>),
    /// A DNS payload: UDP from port 53 (`tcp` false), or a TCP segment from
    /// port 53 (`tcp` true; the segment follows as an `Item::Segment`).
    Dns { payload: &'a [u8], tcp: bool },
    /// A UDP datagram of a service that names hosts (Kerberos over TCP is
    /// not read: testing every segment's port for it cost the capture thread
    /// about 70 instructions a segment under callgrind).
    Names(&'a NameDatagram<'a>),
}

/// The front both paths share, from a frame to what it holds: decodes the
/// frame (joining IP fragments) and hands each [`Item`] to `f`.
pub(super) fn frame_items(
    frame: &Frame<'_>,
    tunnels: &TunnelPorts,
    frag: &mut FragmentCache,
    mut f: impl FnMut(Item<'_>),
) -> Result<(), DecodeError> {
    decode::decode_with_fragments(
        frame.ts_ns,
        frame.linktype,
        frame.data,
        tunnels,
        frag,
        &mut |seen| {
            let (src, dst, seg) = match seen {
                Seen::Tcp(src, dst, seg) => (src, dst, seg),
                Seen::Dns(payload) => {
                    return f(Item::Dns {
                        payload,
                        tcp: false,
                    });
                }
                Seen::Names(d) => return f(Item::Names(d)),
            };
            if seg.payload.is_empty() && !seg.flags.control() {
                return;
            }
            if seg.src_port == DNS_PORT && !seg.payload.is_empty() {
                f(Item::Dns {
                    payload: seg.payload,
                    tcp: true,
                });
            }
            let (key, dir) = FlowKey::new(
                Endpoint::new(src, seg.src_port),
                Endpoint::new(dst, seg.dst_port),
            );
            f(Item::Segment(Segment::of(
                frame.ts_ns,
                key,
                dir,
                key.dispatch_hash(),
                seg,
            )));
        },
    )
}

/// Parses the DNS messages of one payload (`tcp`: a DNS-over-TCP segment)
/// on the capture thread into `out`, for every worker to learn in its place
/// among the segments; counts the messages that teach nothing (the first
/// worker counts what the others taught).
fn parse_dns(
    payload: &[u8],
    tcp: bool,
    results: &mut ByLabel<DnsResult, u64, { DnsResult::ALL.len() }>,
    out: &mut Vec<Response>,
) {
    dns_wire::messages(payload, tcp, |msg| {
        match msg.and_then(dns_wire::parse_response) {
            Err(e) => results[DnsResult::from(e)] += 1,
            Ok(r) => out.push(r),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::offline::OfflineSource;
    use crate::config::Config;
    use crate::tls::HandshakeSummary;
    use crate::tls::session::{TlsTable, tls_table};
    use std::collections::VecDeque;

    /// The defaults, with VXLAN also on 8472 (captures/tunnel-vxlan-8472.pcap).
    fn test_config() -> Config {
        let mut c = crate::config::defaults();
        c.tunnels = TunnelPorts::new(&[4789, 8472], &[6081]).unwrap();
        c
    }

    /// An owned segment, as it sits in a batch between the threads.
    type Queued = Segment<Vec<u8>>;

    fn every_segment_of_the_shipped_captures() -> Vec<Queued> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
            .collect();
        files.sort();
        let config = test_config();
        let mut frag = FragmentCache::new(
            config.max_fragments,
            config.max_fragment_bytes,
            config.fragment_timeout_ns,
        );
        let mut segs = Vec::new();
        for f in files {
            let mut source = OfflineSource::open(&f).unwrap();
            let _ = source.for_each_frame(|frame| {
                let _ = frame_items(frame, &config.tunnels, &mut frag, |item| {
                    if let Item::Segment(s) = item {
                        segs.push(s.with_payload(s.payload.to_vec()));
                    }
                });
            });
        }
        segs
    }

    /// Runs the capture thread's decision and a worker that trails it by
    /// `lag` segments; returns the summaries, sorted.
    fn with_lag(segs: &[Queued], lag: usize) -> Vec<String> {
        let config = test_config();
        let settled = Arc::new(SettledSet::new(config.table.max_flows));
        let mut table = tls_table(config.table).with_settled(Arc::clone(&settled));
        let mut out = Vec::new();
        let mut queue: VecDeque<&Queued> = VecDeque::new();
        for q in segs {
            if admit(&settled, q.key.dispatch_hash(), q.flags) {
                queue.push_back(q);
            }
            while queue.len() > lag {
                let q = queue.pop_front().unwrap();
                ingest(&mut table, q, &mut out);
            }
        }
        for q in queue {
            ingest(&mut table, q, &mut out);
        }
        results(table, out)
    }

    fn ingest(table: &mut TlsTable, q: &Queued, out: &mut Vec<HandshakeSummary>) {
        // The payload lent; the header copied (a clone whose bytes go unused).
        let seg = q.clone().with_payload(q.payload.as_slice());
        table.ingest(seg, out);
    }

    /// Ends the table; its summaries (sorted) and then its counters.
    fn results(mut table: TlsTable, mut out: Vec<HandshakeSummary>) -> Vec<String> {
        table.drain(&mut out);
        let mut v: Vec<String> = out.iter().map(|s| format!("{s:?}")).collect();
        v.sort();
        // Flows leave in an order that depends on timing; which ones do not.
        table.stats.blocks.sort();
        v.push(format!("{:?}", table.stats));
        v.push(format!("{:?}", table.ctx_mut().stats));
        v
    }

    /// Dropping segments of settled flows in the capture thread never changes a
    /// result, however far the worker lags: every shipped capture, read as one
    /// stream (so the same address/port pairs recur, with and without SYN),
    /// gives the summaries and counters of a table that sees every segment. Regression: the
    /// live replay test once lost a flow whose 5-tuple recurred in the next file.
    #[test]
    fn settled_skips_never_change_results() {
        let segs = every_segment_of_the_shipped_captures();
        assert!(segs.len() > 500, "{}", segs.len());
        let config = test_config();
        let mut table = tls_table(config.table);
        let mut out = Vec::new();
        for q in &segs {
            ingest(&mut table, q, &mut out);
        }
        let want = results(table, out);
        for lag in [0, 1, 2, 3, 5, 8, 13, 40, 100, 512, 4096, usize::MAX] {
            assert_eq!(
                with_lag(&segs, lag),
                want,
                "worker lagging by {lag} segments"
            );
        }
    }
}
