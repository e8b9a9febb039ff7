//! A worker thread: owns its flow table and its passive DNS, turns each
//! batch's segments into handshake summaries, matches them to the targets and
//! reports them to the inventory, the counters and the event log.
//!
//! Input: batches from the capture thread. Output: inventory records, metric
//! counts, events. Invariants: the worker's state is its own (no locks on the
//! hot path); DNS responses are learned in their place among the segments and
//! the server is looked up when the ClientHello is read, so a flow is judged by
//! the DNS seen before it; a quiet link still ages flows on the wall clock in
//! live mode.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::dispatch::{Batch, DnsItem};
use super::{Rules, Shared};
use crate::decode::dns::DnsResult;
use crate::error::SetupError;
use crate::events::{EventSink, FlowEvent};
use crate::flow::table::Eviction;
use crate::flow::table::TableStats;
use crate::flow::{FlowTable, SettledSet};
use crate::label::ByLabel;
use crate::metrics::{Anomaly, Bound, FlowCounters, flush_into};
use crate::preamble::Kind as PreambleKind;
use crate::targets::passive_dns::PassiveDns;
use crate::targets::{Match, services};
use crate::tls::HandshakeSummary;
use crate::tls::session::{CertificateResult, ParseProblem};
use crate::tls::session::{SessionStats, TlsCtx, TlsTable};
use crate::tls::summary::DnsLookup;
use crate::tls::version::VersionClass;
use std::rc::Rc;

/// A worker learns one response; the first worker counts what it taught.
fn learn_dns(shared: &Shared, rules: &Rules, dns: &PassiveDns, item: &DnsItem, counting: bool) {
    let l = dns.learn(&item.response, &rules.targets, item.ts);
    if counting {
        let m = &shared.metrics;
        m.bound(Bound::DnsEntries, l.evicted as u64);
        let result = if l.names + l.addresses > 0 {
            DnsResult::Target
        } else {
            DnsResult::NoTarget
        };
        m.by.dns_responses[result].inc();
        m.dns_entries.set(dns.len() as i64);
    }
}

/// Starts worker `id`: its flow table (publishing settled flows to
/// `settled`), its passive DNS, and the loop over the batches from `rx`.
pub(super) fn spawn(
    id: usize,
    shared: Arc<Shared>,
    events: Option<EventSink>,
    settled: Arc<SettledSet>,
    rx: Receiver<Batch>,
    recycle: Sender<Batch>,
) -> Result<JoinHandle<()>, SetupError> {
    std::thread::Builder::new()
        .name(format!("worker-{id}"))
        .spawn(move || {
            // Built here: the table and the passive DNS it asks belong to
            // this thread alone (`Rc`, not `Arc`).
            let (worker, table) = Worker::new(id, shared, events, settled);
            worker_loop(rx, recycle, worker, table)
        })
        .map_err(SetupError::Thread)
}

impl Worker {
    /// The worker's state and its flow table (publishing settled flows to
    /// `settled`), asking its own passive DNS.
    fn new(
        id: usize,
        shared: Arc<Shared>,
        events: Option<EventSink>,
        settled: Arc<SettledSet>,
    ) -> (Worker, TlsTable) {
        let dns = Rc::new(shared.passive_dns());
        let lookup: DnsLookup = {
            let (shared, dns) = (Arc::clone(&shared), Rc::clone(&dns));
            Rc::new(move |server, sni, t| {
                shared
                    .rules
                    .load()
                    .matcher()
                    .dns_at_hello(&dns, server, sni, t)
            })
        };
        let limits = shared.config.table;
        let mut sessions = TlsCtx::new(limits.stream.max_bytes)
            .with_dns_lookup(lookup)
            .with_fingerprints(events.is_some(), shared.config.raw_fingerprints);
        sessions.fingerprints = std::mem::take(&mut sessions.fingerprints)
            .with_policies(Arc::clone(&shared.config.policies));
        let layout = shared.config.event_settings.as_ref().map(|e| e.layout);
        if events.is_some() && layout.is_some_and(|l| l.wants_details()) {
            sessions = sessions.with_details();
        }
        if !shared.config.all {
            // A hello whose name is no target and no alias of one (as far as
            // passive DNS knows, at any time) leads to no inventoried flow.
            let (shared, dns) = (Arc::clone(&shared), Rc::clone(&dns));
            sessions.fingerprints =
                std::mem::take(&mut sessions.fingerprints).only_for(Rc::new(move |sni| {
                    shared.rules.load().targets.matches(sni) || dns.may_alias(sni)
                }));
        }
        let table = FlowTable::new(limits, sessions).with_settled(settled);
        let worker = Worker {
            id,
            shared,
            events,
            dns,
        };
        (worker, table)
    }
}

/// What a worker thread owns besides its flow table.
struct Worker {
    id: usize,
    shared: Arc<Shared>,
    events: Option<EventSink>,
    /// This worker's passive DNS (the table's lookup shares it).
    dns: Rc<PassiveDns>,
}

fn worker_loop(rx: Receiver<Batch>, recycle: Sender<Batch>, worker: Worker, mut table: TlsTable) {
    let counting = worker.id == 0;
    let wall_clock = worker.shared.config.wall_clock;
    let mut out: Vec<HandshakeSummary> = Vec::new();
    let mut reporter = Reporter::new(worker);
    loop {
        let mut batch = match rx.recv_timeout(std::time::Duration::from_secs(1)) {
            Ok(b) => b,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                // A quiet link: idle flows still time out on the wall clock.
                if wall_clock {
                    table.tick(wall_clock_ns(), &mut out);
                    reporter.settle(&mut table, &mut out);
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        let (shared, dns) = (&reporter.worker.shared, &reporter.worker.dns);
        // The rules in use for this batch (a reload takes effect between batches).
        let rules = shared.rules.load_full();
        table.set_source(batch.thread, batch.iface);
        let mut items = batch.dns.iter().peekable();
        for (i, m) in batch.segs.iter().enumerate() {
            while let Some(item) = items.next_if(|d| d.before as usize <= i) {
                learn_dns(shared, &rules, dns, item, counting);
            }
            table.ingest(m.resolve(&batch.bytes), &mut out);
        }
        for item in items {
            learn_dns(shared, &rules, dns, item, counting);
        }
        if wall_clock {
            table.tick(wall_clock_ns(), &mut out);
        }
        reporter.settle(&mut table, &mut out);
        batch.clear();
        let _ = recycle.try_send(batch);
    }
    // In chunks: the summaries of a full table are not all held at once.
    while table.drain_some(&mut out, 4096) {
        reporter.settle(&mut table, &mut out);
    }
    reporter.settle(&mut table, &mut out);
}

fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What a worker keeps between batches to report its settled flows.
struct Reporter {
    worker: Worker,
    counters: FlowCounters,
    /// The rules the classifier was made for.
    rules: Arc<Rules>,
    classifier: services::Classifier,
    /// The flows this worker last added to `flows_tracked`.
    tracked: i64,
    /// Events not yet sent: a batch at a time, the rest at each settle.
    pending: Vec<FlowEvent>,
}

impl Reporter {
    fn new(worker: Worker) -> Self {
        let rules = worker.shared.rules.load_full();
        let classifier =
            services::Classifier::new(&rules.services, Arc::clone(&rules.service_prefixes));
        Reporter {
            worker,
            counters: FlowCounters::default(),
            rules,
            classifier,
            tracked: 0,
            pending: Vec::new(),
        }
    }

    /// Reports the flows `out` holds and the table's counts since the last
    /// call.
    fn settle(&mut self, table: &mut TlsTable, out: &mut Vec<HandshakeSummary>) {
        let Worker {
            shared,
            events,
            dns,
            ..
        } = &self.worker;
        let rules = shared.rules.load_full();
        if !Arc::ptr_eq(&rules, &self.rules) {
            self.classifier =
                services::Classifier::new(&rules.services, Arc::clone(&rules.service_prefixes));
            self.rules = rules;
        }
        report(
            shared,
            &self.rules,
            dns,
            events.as_ref().map(|sink| (sink, &mut self.pending)),
            &mut self.counters,
            &mut self.classifier,
            out,
        );
        if let Some(sink) = events {
            sink.flush(&mut self.pending);
        }
        flush_table_stats(shared, table, &mut self.tracked);
    }
}

/// Sends settled flows to the inventory, the counters and the event log.
fn report(
    shared: &Shared,
    rules: &Rules,
    dns: &PassiveDns,
    mut events: Option<(&EventSink, &mut Vec<FlowEvent>)>,
    counters: &mut FlowCounters,
    classifier: &mut services::Classifier,
    out: &mut Vec<HandshakeSummary>,
) {
    let cfg = &shared.config;
    let m = &shared.metrics;
    let who = rules.who(&shared.names, &shared.config.policies);
    for s in out.drain(..) {
        let matched = rules.matcher().target_match(dns, &s);
        let target = matched.is_some();
        // A target's service and destination (relayed flows too: the
        // proxy's flow reaches the service).
        let service = matched.as_ref().map(|(how, name)| {
            m.by.target_flows[*how].inc();
            let name = match how {
                Match::Sni => s.sni(),
                _ => name.as_deref(),
            };
            classifier.classify(name, s.server_ip)
        });
        if s.version_not_offered() {
            m.anomaly(Anomaly::VersionNotOffered, 1);
        }
        if s.client.as_ref().is_some_and(|c| c.duplicate_extension) {
            m.anomaly(Anomaly::DuplicateExtension, 1);
        }
        let version = s.effective_version();
        let legacy = crate::tls::summary::legacy_at(version, cfg.min_version);
        let outcome = s.outcome();
        let preamble = s.preamble.as_ref().map_or(PreambleKind::None, |p| p.kind);
        counters.inc(m, version, outcome, target, preamble);
        shared.progress.tls_flows.fetch_add(1, Ordering::Relaxed);
        if let Some((svc, _)) = &service {
            rules.service_flows.inc(*svc, version, outcome);
        }
        if !(target || cfg.all) {
            continue;
        }
        let relayed = !rules.proxies.is_empty() && rules.proxies.contains(s.client_ip);
        if relayed {
            m.by.relayed[VersionClass::of(version)][outcome].inc();
            if let Some((sink, pending)) = &mut events {
                let mut e = FlowEvent::new(s, legacy, matched, who).relayed();
                if let Some((svc, dest)) = service {
                    e = e.with_service(svc, dest);
                }
                sink.push(pending, e);
            }
            continue;
        }
        let r = shared
            .inventory
            .record(&s, legacy, service.as_ref().map(|(svc, _)| *svc));
        m.bound(Bound::Hosts, u64::from(r.host_dropped || r.host_evicted));
        m.bound(Bound::ServerNames, u64::from(r.name_dropped));
        m.bound(Bound::HostFingerprints, u64::from(r.fingerprint_dropped));
        let verdicts = s.verdicts();
        m.policy_flow(verdicts);
        if legacy {
            m.legacy_flow(s.client_ip, version, outcome, s.ts_ns);
            if let Some(r) = &rules.resolver
                && who.name(s.client_ip, s.ts_ns).is_none()
            {
                r.ask(s.client_ip, s.ts_ns);
            }
        }
        let service_key = service
            .as_ref()
            .map(|(svc, dest)| (svc.map_or(u16::MAX, |i| i as u16), dest.as_ref()));
        if let Some((svc, dest)) = service_key
            && !shared.destinations.record(
                svc,
                dest,
                s.client_ip,
                legacy,
                outcome != crate::tls::Outcome::Unanswered,
                s.ts_ns,
                verdicts.failed(),
            )
        {
            m.bound(Bound::Destinations, 1);
        }
        if let Some((sink, pending)) = &mut events {
            let mut e = FlowEvent::new(s, legacy, matched, who);
            if let Some((svc, dest)) = service {
                e = e.with_service(svc, dest);
            }
            sink.push(pending, e);
        }
    }
    m.inventory_hosts.set(shared.inventory.len() as i64);
    for (i, p) in m.policies.iter().enumerate() {
        p.failing_hosts
            .set(shared.inventory.policy_failing_hosts(i) as i64);
    }
}

fn flush_table_stats(shared: &Shared, table: &mut TlsTable, tracked: &mut i64) {
    let m = &shared.metrics;
    let mut s: TableStats = std::mem::take(&mut table.stats);
    // The mirror's tallies and blocks go back to the table, emptied, with
    // their allocations.
    shared.mirror.add(&s.mirror, &s.blocks, table.now());
    s.mirror.fill(Default::default());
    s.blocks.clear();
    // A sweep that ended many flows at once does not keep its list's memory.
    if s.blocks.capacity() > 4096 {
        s.blocks = Vec::new();
    }
    table.stats.mirror = std::mem::take(&mut s.mirror);
    table.stats.blocks = std::mem::take(&mut s.blocks);
    let mut tls: SessionStats = std::mem::take(&mut table.ctx_mut().stats);
    flush_into(
        &mut ByLabel::new(|e: Eviction| s.evictions(e)),
        &m.by.evictions,
    );
    m.bound(Bound::FlowTable, s.evicted_table_full);
    m.bound(Bound::Handshakes, s.evicted_handshakes);
    m.bound(Bound::StreamBytes, s.stream_cap_hits);
    m.bound(Bound::OooSegments, s.pending_full);
    m.bound(Bound::BufferBudget, s.buffer_budget_hits);
    let fingerprints = &mut table.ctx_mut().fingerprints;
    m.bound(
        Bound::RawFingerprints,
        std::mem::take(&mut fingerprints.raw_dropped),
    );
    m.bound(
        Bound::HandshakeDetails,
        std::mem::take(&mut fingerprints.details_dropped),
    );
    m.hellos_not_fingerprinted
        .inc_by(std::mem::take(&mut fingerprints.skipped));
    m.anomaly(Anomaly::ServerIsnChanged, s.server_isn_changed);
    m.anomaly(Anomaly::ClientIsnChanged, s.client_isn_changed);
    m.split_flows.inc_by(s.split_flows);
    m.anomaly(Anomaly::OverlapConflict, s.overlap_conflicts);
    m.cut_handshakes.inc_by(tls.cut_handshakes);
    m.non_tls.inc_by(tls.non_tls);
    m.midstream.inc_by(tls.midstream);
    for (results, handles) in tls
        .preambles
        .items_mut()
        .iter_mut()
        .zip(m.by.preambles.items())
    {
        flush_into(results, handles);
    }
    let c = &tls.certificates;
    flush_into(
        &mut ByLabel::new(|r: CertificateResult| c.count(r)),
        &m.by.certificates,
    );
    flush_into(&mut tls.malformed, &m.by.malformed);
    flush_into(
        &mut ByLabel::new(|p: ParseProblem| tls.problems(p)),
        &m.by.parse_extra,
    );
    let now = table.len() as i64;
    m.flows_tracked.add(now - *tracked);
    *tracked = now;
}
