//! Prometheus metrics: one registry, counter handles resolved up front, and the
//! text exposition used by `--metrics-file` (and by the live exporter).
//!
//! Names are part of the interface (docs/reference.md lists them, checked by tests/reference.rs). Label values come from
//! small fixed sets, except `source` on `tlscensus_legacy_flows_total`, whose
//! distinct values are capped by `max_legacy_sources`; flows of further hosts
//! are labelled `source="other"` and counted in
//! `tlscensus_bound_hits_total{bound="legacy_sources"}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use std::path::Path;

use crate::decode::DecodeReason;
use crate::decode::dns::DnsResult;
use crate::decode::frag::FragmentResult;
use crate::error::SetupError;
use crate::flow::table::Eviction;
use crate::hosts::learn::NameResult;
use crate::hosts::names::{HostNames, NameSource};
use crate::hosts::resolve::{ResolveCounts, ResolveResult};
use crate::label::{ByLabel, Label};
use crate::preamble::{Kind as PreambleKind, PreambleResult};
use crate::targets::Match;
use crate::tls::extract::Malformed;
use crate::tls::session::{CertificateResult, ParseProblem};
use crate::tls::summary::Outcome;
use crate::tls::version::{Version, VersionClass};

crate::label_set! {
    /// The `bound` label of `tlscensus_bound_hits_total`: every memory bound.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Bound {
        FlowTable = "flow_table",
        StreamBytes = "stream_bytes",
        OooSegments = "ooo_segments",
        BufferBudget = "buffer_budget",
        Hosts = "hosts",
        LegacySources = "legacy_sources",
        Fragments = "fragments",
        ServerNames = "server_names",
        WorkerQueue = "worker_queue",
        DnsEntries = "dns_entries",
        RawFingerprints = "raw_fingerprints",
        HostFingerprints = "host_fingerprints",
        HostNames = "host_names",
        Destinations = "destinations",
        InventoryPage = "inventory_page",
        MirrorBlocks = "mirror_blocks",
    }
}

/// Adds each non-zero local count to its handle and zeroes it.
pub fn flush_into<L: Label, const N: usize>(
    counts: &mut ByLabel<L, u64, N>,
    to: &ByLabel<L, IntCounter, N>,
) {
    for (n, c) in counts.items_mut().iter_mut().zip(to.items()) {
        if *n > 0 {
            c.inc_by(*n);
            *n = 0;
        }
    }
}

crate::label_set! {
    /// Why an event was not written: the `reason` label of
    /// `tlscensus_events_dropped_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum EventDrop {
        /// Live mode: the writer fell behind and its queue was full.
        QueueFull = "queue_full",
        /// The output kept failing and the events held for the retry filled their buffer.
        WriteFailed = "write_failed",
        /// The reader of the pipe is gone (EPIPE): nothing more can be written.
        BrokenPipe = "broken_pipe",
        /// Still queued when the sensor stopped with the output stuck.
        Shutdown = "shutdown",
    }
}

/// `result` values of `tlscensus_http_requests_total`.
pub const HTTP_RESULTS: [&str; 8] = [
    "ok",
    "not_found",
    "bad_request",
    "timeout",
    "rejected",
    "evicted",
    "unauthorized",
    "too_large",
];

crate::label_set! {
    /// `kind` values of `tlscensus_anomalies_total`: traffic that breaks a
    /// protocol rule in a way that could hide or fake a result.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Anomaly {
        /// A ServerHello chose a version above anything the client offered; the
        /// flow is counted under the client's highest version.
        VersionNotOffered = "version_not_offered",
        /// server_name or supported_versions repeated in a ClientHello; the first is kept.
        DuplicateExtension = "duplicate_extension",
        /// Overlapping TCP segments carried different bytes; the first arrival is kept.
        OverlapConflict = "overlap_conflict",
        /// A second SYN-ACK with another ISN; each is kept until the server's
        /// data shows which one its stream continues.
        ServerIsnChanged = "server_isn_changed",
        /// A client SYN retransmitted with another ISN before any byte; kept
        /// beside the first until the client's data shows which is real.
        ClientIsnChanged = "client_isn_changed",
    }
}

/// Handles of every fixed-label series, resolved once when the registry is
/// made: counting is then an atomic add, with no label string looked up on a
/// thread's path. Each array is in the order of its label family's `ALL`
/// (or const array).
pub struct Handles {
    pub bounds: ByLabel<Bound, IntCounter, { Bound::ALL.len() }>,
    pub decode_errors: ByLabel<DecodeReason, IntCounter, { DecodeReason::ALL.len() }>,
    pub dns_responses: ByLabel<DnsResult, IntCounter, { DnsResult::ALL.len() }>,
    pub fragments: ByLabel<FragmentResult, IntCounter, { FragmentResult::ALL.len() }>,
    pub evictions: ByLabel<Eviction, IntCounter, { Eviction::ALL.len() }>,
    pub certificates: ByLabel<CertificateResult, IntCounter, { CertificateResult::ALL.len() }>,
    pub malformed: ByLabel<Malformed, IntCounter, { Malformed::ALL.len() }>,
    pub parse_extra: ByLabel<ParseProblem, IntCounter, { ParseProblem::ALL.len() }>,
    pub target_flows: ByLabel<Match, IntCounter, { Match::ALL.len() }>,
    pub anomalies: ByLabel<Anomaly, IntCounter, { Anomaly::ALL.len() }>,
    pub relayed: ByLabel<
        VersionClass,
        ByLabel<Outcome, IntCounter, { Outcome::ALL.len() }>,
        { VersionClass::ALL.len() },
    >,
    pub preambles: ByLabel<
        PreambleKind,
        ByLabel<PreambleResult, IntCounter, { PreambleResult::ALL.len() }>,
        { PreambleKind::ALL.len() },
    >,
    pub host_names: ByLabel<
        NameSource,
        ByLabel<NameResult, IntCounter, { NameResult::ALL.len() }>,
        { NameSource::ALL.len() },
    >,
}

/// One handle per value of a label set.
fn handles<L: Label, const N: usize>(v: &IntCounterVec) -> ByLabel<L, IntCounter, N> {
    ByLabel::new(|l: L| v.with_label_values(&[l.as_str()]))
}

pub struct Metrics {
    pub registry: Registry,
    pub by: Handles,
    pub packets: IntCounter,
    pub bytes: IntCounter,
    pub decode_errors: IntCounterVec,
    pub segments: IntCounter,
    pub settled_skips: IntCounter,
    /// Flows fed by more than one capture thread (`live --capture-threads`).
    pub split_flows: IntCounter,
    pub flows: IntCounterVec,
    pub legacy_flows: Arc<LegacyFlows>,
    pub non_tls: IntCounter,
    pub midstream: IntCounter,
    pub parse_errors: IntCounterVec,
    pub bound_hits: IntCounterVec,
    pub evictions: IntCounterVec,
    pub flows_tracked: IntGauge,
    pub fragments: IntCounterVec,
    pub inventory_hosts: IntGauge,
    pub events_written: IntCounter,
    pub event_errors: IntCounter,
    pub events_dropped: IntCounterVec,
    pub inputs: IntCounterVec,
    pub queue_drops: IntCounter,
    pub dns_responses: IntCounterVec,
    pub dns_entries: IntGauge,
    pub host_names: IntGauge,
    pub host_name_messages: IntCounterVec,
    pub resolve_queries: IntCounterVec,
    pub target_flows: IntCounterVec,
    pub certificates: IntCounterVec,
    pub anomalies: IntCounterVec,
    pub cut_handshakes: IntCounter,
    pub hellos_not_fingerprinted: IntCounter,
    pub relayed_flows: IntCounterVec,
    pub build_info: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

pub(crate) fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Series only live capture has: per-interface kernel counters and state, uptime.
pub struct LiveMetrics {
    pub received: IntCounterVec,
    pub kernel_drops: IntCounterVec,
    pub interface_drops: IntCounterVec,
    pub interface_up: IntGaugeVec,
    pub interface_down: IntCounterVec,
    /// Frames each capture thread read (`--capture-threads`): an uneven
    /// fanout hash shows here.
    pub thread_packets: IntCounterVec,
    /// `--kernel-skip-flows`: data segments the kernel dropped, flows
    /// marked there, and whether it is on.
    pub kernel_skipped: IntCounter,
    pub kernel_skip_flows: IntCounter,
    pub kernel_skip_active: IntGauge,
    pub start_time: IntGauge,
    pub uptime: IntGauge,
    pub scrapes: IntCounterVec,
    /// SIGHUP reloads of the configuration: `result="applied"` and
    /// `result="refused"`.
    pub reloads_applied: IntCounter,
    pub reloads_refused: IntCounter,
    /// Unix time of the last applied reload (or of the start).
    pub config_loaded: IntGauge,
}

impl LiveMetrics {
    /// Registers the live series on `m`'s registry for these interfaces and
    /// capture threads.
    pub fn new(
        m: &Metrics,
        interfaces: &[String],
        capture_threads: usize,
    ) -> prometheus::Result<LiveMetrics> {
        let r = &m.registry;
        let iface = &["interface"];
        let reloads = counter_vec(
            r,
            "tlscensus_config_reloads_total",
            "Configuration reloads (SIGHUP), by result: applied, or refused (the running configuration kept).",
            &["result"],
        )?;
        let l = LiveMetrics {
            received: counter_vec(
                r,
                "tlscensus_capture_received_total",
                "Packets the kernel passed the capture filter, per interface (libpcap ps_recv).",
                iface,
            )?,
            kernel_drops: counter_vec(
                r,
                "tlscensus_capture_kernel_drops_total",
                "Packets dropped because the capture buffer was full, per interface (libpcap ps_drop).",
                iface,
            )?,
            interface_drops: counter_vec(
                r,
                "tlscensus_capture_interface_drops_total",
                "Packets dropped by the interface or its driver, per interface (libpcap ps_ifdrop).",
                iface,
            )?,
            interface_up: gauge_vec(
                r,
                "tlscensus_interface_up",
                "1 while the interface is being captured, 0 while it is down or missing.",
                iface,
            )?,
            interface_down: counter_vec(
                r,
                "tlscensus_interface_down_total",
                "Times capture on the interface stopped because it went down or disappeared.",
                iface,
            )?,
            thread_packets: counter_vec(
                r,
                "tlscensus_capture_thread_packets_total",
                "Frames read by each capture thread (--capture-threads), all interfaces together.",
                &["thread"],
            )?,
            kernel_skipped: counter(
                r,
                "tlscensus_capture_kernel_skipped_total",
                "Data segments of settled flows the kernel dropped before the capture ring (--kernel-skip-flows); not in tlscensus_capture_received_total.",
            )?,
            kernel_skip_flows: counter(
                r,
                "tlscensus_capture_kernel_skip_flows_total",
                "Settled flows marked in the kernel (--kernel-skip-flows).",
            )?,
            kernel_skip_active: gauge(
                r,
                "tlscensus_capture_kernel_skip_active",
                "1 while the kernel skip program is loaded and given settled flows, else 0.",
            )?,
            start_time: gauge(
                r,
                "tlscensus_start_time_seconds",
                "Unix time the sensor started.",
            )?,
            uptime: gauge(
                r,
                "tlscensus_uptime_seconds",
                "Seconds since the sensor started.",
            )?,
            scrapes: counter_vec(
                r,
                "tlscensus_http_requests_total",
                "HTTP requests to the exporter, by result.",
                &["result"],
            )?,
            reloads_applied: reloads.with_label_values(&["applied"]),
            reloads_refused: reloads.with_label_values(&["refused"]),
            config_loaded: gauge(
                r,
                "tlscensus_config_loaded_timestamp_seconds",
                "Unix time the configuration in use was loaded (the start, or the last applied reload).",
            )?,
        };
        for i in interfaces {
            let i = i.as_str();
            l.received.with_label_values(&[i]);
            l.kernel_drops.with_label_values(&[i]);
            l.interface_drops.with_label_values(&[i]);
            l.interface_down.with_label_values(&[i]);
            l.interface_up.with_label_values(&[i]).set(1);
        }
        for res in HTTP_RESULTS {
            l.scrapes.with_label_values(&[res]);
        }
        for t in 0..capture_threads.max(1) {
            l.thread_packets.with_label_values(&[&t.to_string()]);
        }
        Ok(l)
    }
}

impl Metrics {
    /// `legacy_source_ttl`: seconds after which a quiet legacy source's
    /// series are removed (live mode); `None` keeps them for the whole run.
    pub fn new(
        max_legacy_sources: usize,
        legacy_source_ttl: Option<u64>,
    ) -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let bound_hits = counter_vec(
            &r,
            "tlscensus_bound_hits_total",
            "Times a configured memory bound was hit, by bound.",
            &["bound"],
        )?;
        let decode_errors = counter_vec(
            &r,
            "tlscensus_decode_errors_total",
            "Frames that failed to decode, by layer and reason.",
            &["reason"],
        )?;
        let dns_responses = counter_vec(
            &r,
            "tlscensus_dns_responses_total",
            "DNS responses seen (passive DNS), by what they taught: target (a name or address leading to a target), no_target, or why they were not used.",
            &["result"],
        )?;
        let fragments = counter_vec(
            &r,
            "tlscensus_ip_fragments_total",
            "IP fragments and what became of them.",
            &["result"],
        )?;
        let evictions = counter_vec(
            &r,
            "tlscensus_flow_evictions_total",
            "Flows removed before they closed, by reason.",
            &["reason"],
        )?;
        let certificates = counter_vec(
            &r,
            "tlscensus_server_certificates_total",
            "Server certificates looked for (flows without SNI that negotiated TLS 1.2 or older), by result: names (leaf certificate read), none (the server sent none, e.g. a resumed session), failed (malformed, over a bound, or the flow ended first).",
            &["result"],
        )?;
        let parse_errors = counter_vec(
            &r,
            "tlscensus_tls_parse_errors_total",
            "Flows whose handshake start could not be parsed, by kind.",
            &["kind"],
        )?;
        let target_flows = counter_vec(
            &r,
            "tlscensus_target_flows_total",
            "TLS flows to target servers, by how the server was recognised (sni, cname, dns_address, cidr, certificate).",
            &["match"],
        )?;
        let preambles = counter_vec(
            &r,
            "tlscensus_preambles_total",
            "Flows that did not open with TLS and began with a known preamble (HTTP CONNECT, SOCKS, PROXY protocol, STARTTLS, database SSL requests, RDP, OpenVPN), by kind and result: tls (TLS followed), no_tls (refused, or went on in clear text), gave_up (too long or broken), incomplete (the flow ended first), hidden (TLS encrypted by its wrapper: OpenVPN tls-crypt).",
            &["preamble", "result"],
        )?;
        let anomalies = counter_vec(
            &r,
            "tlscensus_anomalies_total",
            "Traffic that breaks a protocol rule in a way that could hide or fake a result, by kind (docs/reference.md).",
            &["kind"],
        )?;
        let relayed_flows = counter_vec(
            &r,
            "tlscensus_relayed_flows_total",
            "TLS flows from a --proxy address to a server (relaying a client's handshake), by version and outcome; not counted under the proxy's address in tlscensus_legacy_flows_total.",
            &["version", "outcome"],
        )?;
        let host_name_messages = counter_vec(
            &r,
            "tlscensus_host_name_messages_total",
            "Messages of services that name hosts (passive host names), by source (dhcp, dhcpv6, kerberos, dns_ptr, nbns, mdns, llmnr) and result: learned (a name bound, refreshed or ended), nothing (names no host), malformed.",
            &["source", "result"],
        )?;
        let by = Handles {
            host_names: ByLabel::new(|s: NameSource| {
                ByLabel::new(|r: NameResult| {
                    host_name_messages.with_label_values(&[s.as_str(), r.as_str()])
                })
            }),
            relayed: ByLabel::new(|v: VersionClass| {
                ByLabel::new(|o: Outcome| {
                    relayed_flows.with_label_values(&[v.as_str(), o.as_str()])
                })
            }),
            bounds: handles(&bound_hits),
            decode_errors: handles(&decode_errors),
            dns_responses: handles(&dns_responses),
            fragments: handles(&fragments),
            evictions: handles(&evictions),
            certificates: handles(&certificates),
            malformed: handles(&parse_errors),
            parse_extra: handles(&parse_errors),
            target_flows: handles(&target_flows),
            anomalies: handles(&anomalies),
            preambles: ByLabel::new(|k: PreambleKind| {
                ByLabel::new(|r: PreambleResult| {
                    preambles.with_label_values(&[k.as_str(), r.as_str()])
                })
            }),
        };
        let m = Metrics {
            by,
            packets: counter(
                &r,
                "tlscensus_packets_total",
                "Frames read from the packet source.",
            )?,
            bytes: counter(
                &r,
                "tlscensus_bytes_total",
                "Bytes of frames read (length on the wire).",
            )?,
            decode_errors,
            segments: counter(
                &r,
                "tlscensus_tcp_segments_total",
                "TCP segments handed to the flow workers.",
            )?,
            settled_skips: counter(
                &r,
                "tlscensus_settled_segments_total",
                "TCP segments of flows whose handshake was already settled, dropped by the capture thread without copying.",
            )?,
            split_flows: counter(
                &r,
                "tlscensus_capture_split_flows_total",
                "TCP flows whose segments came through more than one capture thread (live --capture-threads: the kernel's fanout hash put them apart, e.g. tunnelled or IPv6-fragmented flows). Their worker still joins them, but not in wire order across threads.",
            )?,
            flows: counter_vec(
                &r,
                "tlscensus_flows_total",
                "TLS flows by version (negotiated, else highest offered), outcome, whether the server is a target, and what preceded TLS in the stream (none, http_connect, socks, proxy_protocol, smtp, imap, pop3, ftp, postgres, mysql, tds, ldap, xmpp).",
                &["version", "outcome", "target", "preamble"],
            )?,
            legacy_flows: {
                let c = Arc::new(LegacyFlows::new(max_legacy_sources, legacy_source_ttl)?);
                r.register(Box::new(LegacyFlowsCollector(Arc::clone(&c))))?;
                c
            },
            non_tls: counter(
                &r,
                "tlscensus_non_tls_flows_total",
                "TCP flows whose first bytes are not TLS (e.g. plain HTTP on port 443).",
            )?,
            midstream: counter(
                &r,
                "tlscensus_midstream_flows_total",
                "TLS flows first seen after their handshake (capture started mid-flow).",
            )?,
            parse_errors,
            bound_hits,
            evictions,
            flows_tracked: gauge(
                &r,
                "tlscensus_flows_tracked",
                "Flows currently in the flow tables.",
            )?,
            fragments,
            inventory_hosts: gauge(&r, "tlscensus_inventory_hosts", "Hosts in the inventory.")?,
            events_written: counter(
                &r,
                "tlscensus_events_written_total",
                "Flow events written to the event log (the whole line reached the file or pipe).",
            )?,
            event_errors: counter(
                &r,
                "tlscensus_event_write_errors_total",
                "Failed writes to the event log (each failed attempt; the lines are held and retried).",
            )?,
            events_dropped: counter_vec(
                &r,
                "tlscensus_events_dropped_total",
                "Flow events not written, by reason: queue_full (live: the writer fell behind), write_failed (the output kept failing and the held lines filled 1 MiB), broken_pipe (the reader went away), shutdown (still queued when a stuck output held the stop).",
                &["reason"],
            )?,
            inputs: counter_vec(
                &r,
                "tlscensus_inputs_total",
                "Capture files read, by result.",
                &["result"],
            )?,
            queue_drops: counter(
                &r,
                "tlscensus_queue_drops_total",
                "TCP segments dropped because a worker queue was full (live mode never waits for workers).",
            )?,
            dns_responses,
            dns_entries: gauge(
                &r,
                "tlscensus_dns_entries",
                "Names and addresses held by passive DNS (bounded by --max-dns-entries).",
            )?,
            host_names: gauge(
                &r,
                "tlscensus_host_names",
                "Addresses passive host names holds names for (bounded by --max-host-names).",
            )?,
            host_name_messages,
            resolve_queries: counter_vec(
                &r,
                "tlscensus_resolve_queries_total",
                "Reverse-DNS queries of --resolve (legacy sources without a passive name), by result: named, no_name, timeout, dropped (queue full).",
                &["result"],
            )?,
            target_flows,
            certificates,
            anomalies,
            cut_handshakes: counter(
                &r,
                "tlscensus_cut_handshakes_total",
                "Handshake directions whose start the capture cut (snap length): reported with what their first bytes show, marked incomplete.",
            )?,
            hellos_not_fingerprinted: counter(
                &r,
                "tlscensus_client_hellos_not_fingerprinted_total",
                "ClientHellos whose JA4 was not computed: their server name leads to no target, so the flow is not inventoried (every hello is fingerprinted with --all).",
            )?,
            relayed_flows,
            build_info: gauge_vec(
                &r,
                "tlscensus_build_info",
                "Always 1; the labels say which build is running.",
                &["version"],
            )?,
            registry: r,
        };
        // Make the fixed-label series exist from the start (rate() needs a zero,
        // and an alert on "no TLS seen" needs a series that stays at zero).
        for v in ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"] {
            for o in ["negotiated", "rejected", "unanswered"] {
                for t in ["true", "false"] {
                    m.flows.with_label_values(&[v, o, t, "none"]);
                }
            }
        }
        for l in DecodeReason::ALL {
            m.decode_errors.with_label_values(&[l.as_str()]);
        }
        for k in Malformed::ALL {
            m.parse_errors.with_label_values(&[k.as_str()]);
        }
        for k in ParseProblem::ALL {
            m.parse_errors.with_label_values(&[k.as_str()]);
        }

        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        for r in ["ok", "failed"] {
            m.inputs.with_label_values(&[r]);
        }
        for r in DnsResult::ALL {
            m.dns_responses.with_label_values(&[r.as_str()]);
        }
        for r in CertificateResult::ALL {
            m.certificates.with_label_values(&[r.as_str()]);
        }
        for r in EventDrop::ALL {
            m.events_dropped.with_label_values(&[r.as_str()]);
        }
        for a in Anomaly::ALL {
            m.anomalies.with_label_values(&[a.as_str()]);
        }
        for k in crate::targets::Match::ALL {
            m.target_flows.with_label_values(&[k.as_str()]);
        }
        Ok(m)
    }

    pub fn bound(&self, bound: Bound, n: u64) {
        if n > 0 {
            self.by.bounds[bound].inc_by(n);
        }
    }

    pub fn anomaly(&self, a: Anomaly, n: u64) {
        if n > 0 {
            self.by.anomalies[a].inc_by(n);
        }
    }

    /// Counts one inventoried legacy flow of `source`; a source beyond the cap
    /// is counted as `source="other"` and as a `legacy_sources` bound hit.
    pub fn legacy_flow(
        &self,
        source: IpAddr,
        version: Option<Version>,
        outcome: Outcome,
        ts_ns: u64,
    ) {
        if !self
            .legacy_flows
            .inc(source, VersionClass::of(version), outcome, ts_ns)
        {
            self.bound(Bound::LegacySources, 1);
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Writes via a temporary file and rename, so a reader never sees half a file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), SetupError> {
    write_atomic_with(path, |w| w.write_all(data))
}

/// As [`write_atomic`], the content written by `fill` as it is made (a
/// large file is never held whole in memory).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), SetupError> {
    use std::io::Write;
    let err = |source| SetupError::Write {
        what: "metrics file",
        path: path.display().to_string(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "metrics".into());
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        fill(&mut w)?;
        w.flush()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// `tlscensus_legacy_flows_total{source,version,outcome}`, the one series set
/// with a per-host label. A collector of its own rather than an
/// `IntCounterVec`: the vec builds and validates a descriptor for every new
/// series (about 9,000 instructions each under callgrind), and a census meets a
/// new legacy source every few flows. Here a source is one store entry holding
/// its counters (one per version class and outcome), and labels are formatted
/// only when scraped.
///
/// At most `max_sources` sources are labelled ([`crate::store::Shared`]).
/// When the set is full, sources not seen for `ttl` (live mode) go first;
/// then [`LEGACY_SOURCES`] decides: a source a server answered displaces one
/// none answered (a ClientHello needs no handshake: spoofed sources must not
/// keep out a host a server really talked to), and among equals a source
/// that keeps making flows displaces one that made fewer, while one-shot
/// sources stay out. A removed source's counts move to `source="other"`, so
/// the series always add up to every legacy flow; flows of a source that
/// finds no room count there too. Both are `legacy_sources` bound hits.
pub struct LegacyFlows {
    desc: Desc,
    sources: store::Shared<IpAddr, SourceSeries>,
    other: [AtomicU64; SERIES],
    /// Capture time of the last sweep of quiet sources.
    last_sweep_ns: AtomicU64,
    /// Latest flow time seen (capture clock), for aging at scrape time.
    now_ns: AtomicU64,
    ttl_ns: Option<u64>,
}

/// Counters per source: version class x outcome.
const SERIES: usize = VersionClass::ALL.len() * 3;

/// Counters of one source (updated under its store shard's lock).
#[derive(Default)]
struct SourceSeries {
    counts: [u64; SERIES],
    flows: u64,
    last_ns: u64,
    answered: bool,
}

/// Who keeps a `source` label when the set is full.
const LEGACY_SOURCES: store::Policy<SourceSeries> = store::Policy {
    ranks: 2,
    rank: |s| u8::from(s.answered),
    uses: |s| s.flows,
    admit: store::Admit::Frequency,
};

impl LegacyFlows {
    fn new(max_sources: usize, ttl_secs: Option<u64>) -> prometheus::Result<LegacyFlows> {
        Ok(LegacyFlows {
            desc: Desc::new(
                "tlscensus_legacy_flows_total".into(),
                "Inventoried TLS flows below the minimum version, by source host.".into(),
                vec!["source".into(), "version".into(), "outcome".into()],
                HashMap::new(),
            )?,
            sources: store::Shared::new(max_sources, LEGACY_SOURCES),
            other: Default::default(),
            last_sweep_ns: AtomicU64::new(0),
            now_ns: AtomicU64::new(0),
            ttl_ns: ttl_secs.map(|s| s.saturating_mul(1_000_000_000)),
        })
    }

    /// Counts one flow at capture time `ts_ns`; false when the cap was hit
    /// (`source` found no room and counts as "other", or displaced another
    /// source).
    pub fn inc(&self, source: IpAddr, version: VersionClass, outcome: Outcome, ts_ns: u64) -> bool {
        let i = version.index() * Outcome::ALL.len() + outcome.index();
        let answered = outcome != Outcome::Unanswered;
        self.now_ns.fetch_max(ts_ns, Ordering::Relaxed);
        if self.ttl_ns.is_some()
            && self.sources.len() >= self.sources.cap()
            && !self.sources.contains(&source)
        {
            self.sweep(ts_ns, false);
        }
        let update = |s: &mut SourceSeries| {
            s.counts[i] += 1;
            s.flows += 1;
            s.last_ns = s.last_ns.max(ts_ns);
            s.answered |= answered;
        };
        match (self.sources).upsert(source, u8::from(answered), SourceSeries::default, update) {
            store::Upsert::Held(()) | store::Upsert::Added(()) => true,
            store::Upsert::Displaced((), _, gone) => {
                self.fold(&gone);
                false
            }
            store::Upsert::Refused => {
                self.other[i].fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn fold(&self, s: &SourceSeries) {
        for (o, n) in self.other.iter().zip(s.counts) {
            if n > 0 {
                o.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Removes sources not seen for the TTL before `now`, at most once a
    /// second of capture time unless `always`.
    fn sweep(&self, now: u64, always: bool) {
        let Some(ttl) = self.ttl_ns else {
            return;
        };
        let last = self.last_sweep_ns.load(Ordering::Relaxed);
        if !always && now.saturating_sub(last) < 1_000_000_000 {
            return;
        }
        self.last_sweep_ns.store(now, Ordering::Relaxed);
        let cutoff = now.saturating_sub(ttl);
        for (_, gone) in self.sources.retain(|_, s| s.last_ns >= cutoff) {
            self.fold(&gone);
        }
    }

    /// Ages sources out at scrape time too, so a quiet network's stale
    /// series go away without new sources arriving.
    fn expire_at_scrape(&self) {
        self.sweep(self.now_ns.load(Ordering::Relaxed), true);
    }

    /// Sources labelled now.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    /// The value of one series (tests, reports); `None` is "other".
    pub fn get(&self, source: Option<IpAddr>, version: Option<Version>, outcome: Outcome) -> u64 {
        let i = VersionClass::of(version).index() * Outcome::ALL.len() + outcome.index();
        match source {
            Some(ip) => self.sources.get(&ip, |s| s.counts[i]).unwrap_or(0),
            None => self.other[i].load(Ordering::Relaxed),
        }
    }
}

struct LegacyFlowsCollector(Arc<LegacyFlows>);

impl Collector for LegacyFlowsCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.expire_at_scrape();
        let pair = |name: &str, value: String| {
            let mut p = LabelPair::default();
            p.set_name(name.to_string());
            p.set_value(value);
            p
        };
        let mut metrics: Vec<Metric> = Vec::new();
        let mut push = |source: String, counts: [u64; SERIES]| {
            for (i, n) in counts.into_iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let outcomes = Outcome::ALL.len();
                let (class, outcome) =
                    (VersionClass::ALL[i / outcomes], Outcome::ALL[i % outcomes]);
                let mut counter = Counter::default();
                counter.set_value(n as f64);
                let mut m = Metric::default();
                // Label pairs sorted by name, as the registry expects.
                m.set_label(vec![
                    pair("outcome", outcome.as_str().to_string()),
                    pair("source", source.clone()),
                    pair("version", class.as_str().to_string()),
                ]);
                m.set_counter(counter);
                metrics.push(m);
            }
        };
        self.0
            .sources
            .for_each(|ip, s| push(ip.to_string(), s.counts));
        push(
            "other".to_string(),
            self.0.other.each_ref().map(|c| c.load(Ordering::Relaxed)),
        );
        let mut mf = MetricFamily::default();
        mf.set_name(self.0.desc.fq_name.clone());
        mf.set_help(self.0.desc.help.clone());
        mf.set_field_type(MetricType::COUNTER);
        mf.set_metric(metrics);
        vec![mf]
    }
}

/// A label of a series a collector builds.
pub(crate) fn label_pair(name: &str, value: String) -> LabelPair {
    let mut p = LabelPair::default();
    p.set_name(name.to_string());
    p.set_value(value);
    p
}

/// The family of a collector's gauges.
pub(crate) fn gauge_family(desc: &Desc, metrics: Vec<Metric>) -> Vec<MetricFamily> {
    let mut mf = MetricFamily::default();
    mf.set_name(desc.fq_name.clone());
    mf.set_help(desc.help.clone());
    mf.set_field_type(MetricType::GAUGE);
    mf.set_metric(metrics);
    vec![mf]
}

/// `tlscensus_host_info{source,host_name,name_source} 1`: the passive host
/// name of each labelled legacy source (as of the latest flow time), so
/// dashboards and alerts can name the host by a join on `source`. At most
/// one series per labelled source (`--max-legacy-sources`).
struct HostInfoCollector {
    desc: Desc,
    legacy: Arc<LegacyFlows>,
    names: Arc<HostNames>,
}

impl Collector for HostInfoCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = self.legacy.now_ns.load(Ordering::Relaxed);
        let mut sources: Vec<IpAddr> = Vec::with_capacity(self.legacy.sources());
        self.legacy.sources.for_each(|ip, _| sources.push(*ip));
        let mut metrics = Vec::new();
        for ip in sources {
            let Some((name, from)) = self.names.lookup(ip, now) else {
                continue;
            };
            let mut g = Gauge::default();
            g.set_value(1.0);
            let mut m = Metric::default();
            m.set_label(vec![
                label_pair("host_name", name.to_string()),
                label_pair("name_source", from.as_str().to_string()),
                label_pair("source", ip.to_string()),
            ]);
            m.set_gauge(g);
            metrics.push(m);
        }
        gauge_family(&self.desc, metrics)
    }
}

impl Metrics {
    /// `tlscensus_resolve_queries_total`'s handles (all results, so they
    /// show as 0 before the first query).
    pub fn resolve_counts(&self) -> ResolveCounts {
        ResolveCounts(ByLabel::new(|r: ResolveResult| {
            self.resolve_queries.with_label_values(&[r.as_str()])
        }))
    }

    /// Exports the passive host names of the labelled legacy sources
    /// (`tlscensus_host_info`).
    pub fn register_host_info(&self, names: Arc<HostNames>) -> prometheus::Result<()> {
        let desc = Desc::new(
            "tlscensus_host_info".into(),
            "1 for each labelled legacy source with a passive host name: join on source to name the host (name_source: dhcp, dhcpv6, kerberos, dns_ptr, nbns, mdns, llmnr).".into(),
            vec!["source".into(), "host_name".into(), "name_source".into()],
            HashMap::new(),
        )?;
        self.registry.register(Box::new(HostInfoCollector {
            desc,
            legacy: Arc::clone(&self.legacy_flows),
            names,
        }))
    }
}

/// Destinations labelled on the readiness series; the rest of each service's
/// are folded into `destination="other"`.
pub const MAX_LABELLED_DESTINATIONS: usize = 500;

/// `tlscensus_destination_legacy_last_seen_timestamp_seconds{service,destination}`:
/// when each destination last saw a legacy flow (capture time), for "no
/// legacy client for 30 days: safe to enforce TLS 1.2". At most
/// [`MAX_LABELLED_DESTINATIONS`] destinations (the most recent), the others
/// of a service as `other` (their latest time); built at scrape time.
struct DestinationCollector {
    desc: Desc,
    destinations: Arc<crate::inventory::Destinations>,
}

impl Collector for DestinationCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snap = self.destinations.snapshot();
        let mut other: HashMap<u16, u64> = HashMap::new();
        let mut metrics = Vec::new();
        let mut push = |service: u16, destination: String, ns: u64| {
            let mut g = Gauge::default();
            g.set_value(ns as f64 / 1e9);
            let mut m = Metric::default();
            let service = crate::targets::services::label(
                (service != u16::MAX).then_some(usize::from(service)),
            );
            m.set_label(vec![
                label_pair("destination", destination),
                label_pair("service", service.to_string()),
            ]);
            m.set_gauge(g);
            metrics.push(m);
        };
        // The snapshot is sorted by the latest legacy flow, newest first.
        for (n, ((service, destination), r)) in
            snap.into_iter().filter(|(_, r)| r.legacy > 0).enumerate()
        {
            if n < MAX_LABELLED_DESTINATIONS {
                push(service, destination, r.last_legacy_ns);
            } else {
                let t = other.entry(service).or_default();
                *t = (*t).max(r.last_legacy_ns);
            }
        }
        for (service, ns) in other {
            push(service, "other".to_string(), ns);
        }
        gauge_family(&self.desc, metrics)
    }
}

impl Metrics {
    /// Exports the destinations' readiness.
    pub fn register_destinations(
        &self,
        destinations: Arc<crate::inventory::Destinations>,
    ) -> prometheus::Result<()> {
        let desc = Desc::new(
            "tlscensus_destination_legacy_last_seen_timestamp_seconds".into(),
            "Capture time of the last legacy TLS flow to each destination (storage account, SQL server, namespace...), by service; at most 500 destinations (the most recent), the rest of a service as destination=\"other\".".into(),
            vec!["service".into(), "destination".into()],
            HashMap::new(),
        )?;
        self.registry
            .register(Box::new(DestinationCollector { desc, destinations }))
    }
}

/// `tlscensus_service_flows_total{service,version,outcome}`: target flows by
/// service (the chosen rows and `other`), version class and outcome, with
/// handles resolved once; and `tlscensus_service_tls_end_timestamp_seconds`.
pub struct ServiceFlows {
    flows: IntCounterVec,
    end: IntGaugeVec,
    /// By chosen row (in `config.services` order, then `other`), version
    /// class, outcome.
    handles: Vec<
        ByLabel<
            VersionClass,
            ByLabel<Outcome, IntCounter, { Outcome::ALL.len() }>,
            { VersionClass::ALL.len() },
        >,
    >,
    chosen: Vec<usize>,
}

impl ServiceFlows {
    pub fn new(m: &Metrics, chosen: &[usize]) -> prometheus::Result<ServiceFlows> {
        let flows = counter_vec(
            &m.registry,
            "tlscensus_service_flows_total",
            "Target TLS flows by service (tlscensus services; other: a --target no service covers), version (negotiated, else highest offered) and outcome.",
            &["service", "version", "outcome"],
        )?;
        let end = gauge_vec(
            &m.registry,
            "tlscensus_service_tls_end_timestamp_seconds",
            "Unix time of the day each chosen service stops accepting TLS 1.0/1.1 (tlscensus services).",
            &["service"],
        )?;
        Ok(ServiceFlows::resolve(flows, end, chosen))
    }

    /// The same families for another choice of rows (a reload): a row
    /// chosen again counts on where it was; a row no longer chosen keeps
    /// its counts and loses its end day.
    pub fn rechoose(&self, chosen: &[usize]) -> ServiceFlows {
        for &i in self.chosen.iter().filter(|i| !chosen.contains(i)) {
            if let Some(s) = crate::targets::services::table().get(i) {
                let _ = self.end.remove_label_values(&[s.name]);
            }
        }
        ServiceFlows::resolve(self.flows.clone(), self.end.clone(), chosen)
    }

    fn resolve(flows: IntCounterVec, end: IntGaugeVec, chosen: &[usize]) -> ServiceFlows {
        let rows = crate::targets::services::table();
        let mut handles = Vec::new();
        let labels: Vec<&str> = chosen
            .iter()
            .filter_map(|&i| rows.get(i).map(|s| s.name))
            .chain([crate::targets::services::OTHER])
            .collect();
        for l in &labels {
            handles.push(ByLabel::new(|v: VersionClass| {
                ByLabel::new(|o: Outcome| flows.with_label_values(&[l, v.as_str(), o.as_str()]))
            }));
        }
        for s in chosen.iter().filter_map(|&i| rows.get(i)) {
            let secs = (s.tls_end_ns() / 1_000_000_000).min(i64::MAX as u64) as i64;
            end.with_label_values(&[s.name]).set(secs);
        }
        ServiceFlows {
            flows,
            end,
            handles,
            chosen: chosen.to_vec(),
        }
    }

    pub fn inc(&self, service: Option<usize>, version: Option<Version>, outcome: Outcome) {
        let row = service
            .and_then(|i| self.chosen.iter().position(|&c| c == i))
            .unwrap_or(self.chosen.len());
        if let Some(h) = self.handles.get(row) {
            h[VersionClass::of(version)][outcome].inc();
        }
    }
}

/// A worker's own handles on `tlscensus_flows_total`, one per label set it has
/// met: counting a flow is then one atomic add, without formatting the version
/// or hashing label strings (STYLE: resolve labelled counters once per worker).
/// At most every (version class, outcome, target, preamble) combination:
/// 8 x 3 x 2 x 10 entries.
#[derive(Default)]
pub struct FlowCounters {
    handles: HashMap<(VersionClass, Outcome, bool, PreambleKind), IntCounter, ahash::RandomState>,
}

impl FlowCounters {
    pub fn inc(
        &mut self,
        m: &Metrics,
        version: Option<Version>,
        outcome: Outcome,
        target: bool,
        preamble: PreambleKind,
    ) {
        let class = VersionClass::of(version);
        self.handles
            .entry((class, outcome, target, preamble))
            .or_insert_with(|| {
                let t = if target { "true" } else { "false" };
                m.flows
                    .with_label_values(&[class.as_str(), outcome.as_str(), t, preamble.as_str()])
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_source_cap() {
        let m = Metrics::new(2, None).unwrap();
        let ip = |n| IpAddr::from([10, 0, 0, n]);
        let (v10, rej) = (Some(Version::TLS10), Outcome::Rejected);
        for n in [1, 2, 3, 1, 4] {
            m.legacy_flow(ip(n), v10, rej, 1);
        }
        let get = |s| m.legacy_flows.get(s, v10, rej);
        assert_eq!((get(Some(ip(1))), get(Some(ip(2))), get(None)), (2, 1, 2));
        assert_eq!(get(Some(ip(3))), 0);
        assert_eq!(m.bound_hits.with_label_values(&["legacy_sources"]).get(), 2);
    }

    /// The collector's exposition is what an `IntCounterVec` would print.
    #[test]
    fn legacy_flows_render() {
        let m = Metrics::new(1, None).unwrap();
        m.legacy_flow(
            IpAddr::from([10, 0, 0, 1]),
            Some(Version::TLS10),
            Outcome::Rejected,
            1,
        );
        m.legacy_flow(IpAddr::from([10, 0, 0, 2]), None, Outcome::Unanswered, 1);
        m.legacy_flow(
            IpAddr::from([10, 0, 0, 1]),
            Some(Version(0x0299)),
            Outcome::Negotiated,
            1,
        );
        let text = m.render();
        for line in [
            "# HELP tlscensus_legacy_flows_total Inventoried TLS flows below the minimum version, by source host.",
            "# TYPE tlscensus_legacy_flows_total counter",
            "tlscensus_legacy_flows_total{outcome=\"rejected\",source=\"10.0.0.1\",version=\"TLSv1.0\"} 1",
            "tlscensus_legacy_flows_total{outcome=\"unanswered\",source=\"other\",version=\"unknown\"} 1",
            "tlscensus_legacy_flows_total{outcome=\"negotiated\",source=\"10.0.0.1\",version=\"other\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    /// regression_12: spoofed hello-only sources filling the cap neither keep
    /// a host whose server answered out, nor stay forever: quiet sources age
    /// out, and their counts move to "other" so the totals stay true.
    #[test]
    fn legacy_sources_age_out_and_answered_wins() {
        const S: u64 = 1_000_000_000;
        let m = Metrics::new(100, Some(600)).unwrap();
        let spoofed = |n: u32| IpAddr::from(std::net::Ipv4Addr::from_bits(0x0a63_0000 + n));
        let v10 = Some(Version::TLS10);
        for n in 0..100 {
            m.legacy_flow(spoofed(n), v10, Outcome::Unanswered, S);
        }
        let real = IpAddr::from([10, 1, 1, 1]);
        let lone = IpAddr::from([10, 1, 1, 2]);
        // A real host's answered handshake takes a spoofed source's place ...
        m.legacy_flow(real, v10, Outcome::Rejected, 2 * S);
        assert_eq!(m.legacy_flows.get(Some(real), v10, Outcome::Rejected), 1);
        assert_eq!(m.legacy_flows.get(None, v10, Outcome::Unanswered), 1);
        // ... a hello-only newcomer does not.
        m.legacy_flow(lone, v10, Outcome::Unanswered, 3 * S);
        assert_eq!(m.legacy_flows.get(Some(lone), v10, Outcome::Unanswered), 0);
        assert_eq!(m.legacy_flows.sources(), 100);
        // Ten minutes later every quiet source is gone, at the next scrape too.
        m.legacy_flow(real, v10, Outcome::Rejected, 700 * S);
        let text = m.render();
        assert!(!text.contains("10.99.0.5\""), "{text}");
        assert_eq!(m.legacy_flows.sources(), 1);
        assert_eq!(m.legacy_flows.get(Some(real), v10, Outcome::Rejected), 2);
        // Nothing was lost: 100 spoofed + 1 lone flow in "other".
        assert_eq!(m.legacy_flows.get(None, v10, Outcome::Unanswered), 101);
        m.legacy_flow(lone, v10, Outcome::Unanswered, 701 * S);
        assert_eq!(m.legacy_flows.get(Some(lone), v10, Outcome::Unanswered), 1);
    }

    #[test]
    fn flow_counters_cache() {
        let m = Metrics::new(1, None).unwrap();
        let mut c = FlowCounters::default();
        for _ in 0..3 {
            c.inc(
                &m,
                Some(Version::TLS12),
                Outcome::Negotiated,
                true,
                PreambleKind::None,
            );
        }
        c.inc(
            &m,
            None,
            Outcome::Unanswered,
            false,
            PreambleKind::HttpConnect,
        );
        let f = |l: [&str; 4]| m.flows.with_label_values(&l).get();
        assert_eq!(f(["TLSv1.2", "negotiated", "true", "none"]), 3);
        assert_eq!(f(["unknown", "unanswered", "false", "http_connect"]), 1);
        assert_eq!(c.handles.len(), 2);
    }

    #[test]
    fn render_has_names() {
        let m = Metrics::new(1, None).unwrap();
        m.flows
            .with_label_values(&["TLSv1.0", "rejected", "true", "none"])
            .inc();
        let text = m.render();
        assert!(text.contains(
            "tlscensus_flows_total{outcome=\"rejected\",preamble=\"none\",target=\"true\",version=\"TLSv1.0\"} 1"
        ));
        assert!(text.contains("tlscensus_bound_hits_total{bound=\"flow_table\"} 0"));
    }
}
