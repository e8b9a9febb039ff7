//! Prometheus metrics: one registry, counter handles resolved up front, and the
//! text exposition used by `--metrics-file` (and by the live exporter).
//!
//! Names are part of the interface (docs/reference.md lists them, checked by tests/reference.rs). Label values come from
//! small fixed sets, except `source` on `tlscensus_legacy_flows_total`, whose
//! distinct values are capped by `max_legacy_sources`; flows of further hosts
//! are labelled `source="other"` and counted in
//! `tlscensus_bound_hits_total{bound="legacy_sources"}`.

use std::net::IpAddr;
use std::sync::Arc;

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::decode::DecodeReason;
use crate::decode::dns::DnsResult;
use crate::decode::frag::FragmentResult;
use crate::flow::table::Eviction;
use crate::hosts::learn::NameResult;
use crate::hosts::names::{HostNames, NameSource};
use crate::hosts::resolve::{ResolveCounts, ResolveResult};
use crate::label::{ByLabel, Label};
use crate::policy::{PolicySet, Reason, Verdicts};
use crate::preamble::{Kind as PreambleKind, PreambleResult};
use crate::targets::Match;
use crate::tls::extract::Malformed;
use crate::tls::session::{CertificateResult, ParseProblem};
use crate::tls::summary::Outcome;
use crate::tls::version::{Version, VersionClass};

mod file;
mod flows;
mod legacy;
mod live;
mod services;

pub use file::{write_atomic, write_atomic_with};
pub use flows::FlowCounters;
pub use legacy::LegacyFlows;
use legacy::LegacyFlowsCollector;
pub(crate) use legacy::{gauge_family, label_pair};
pub use live::{HttpResult, LiveMetrics};
pub use services::{MAX_LABELLED_DESTINATIONS, ServiceFlows};

crate::label_set! {
    /// The `bound` label of `tlscensus_bound_hits_total`: every memory bound.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Bound {
        FlowTable = "flow_table",
        Handshakes = "handshakes",
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
        HandshakeDetails = "handshake_details",
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
    /// Per server policy (--policy), in configuration order: flows by
    /// verdict and reason, and the inventory's hosts that would fail it.
    pub policies: Vec<PolicySeries>,
}

/// The series of one server policy.
pub struct PolicySeries {
    pub flows: ByLabel<Reason, IntCounter, { Reason::ALL.len() }>,
    pub failing_hosts: IntGauge,
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
            policies: Vec::new(),
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
        for a in Anomaly::ALL {
            m.anomalies.with_label_values(&[a.as_str()]);
        }
        for k in crate::targets::Match::ALL {
            m.target_flows.with_label_values(&[k.as_str()]);
        }
        Ok(m)
    }

    /// Registers the series of each policy of `set` (none for an empty set:
    /// the families then do not appear). Every (policy, verdict, reason)
    /// series exists from the start, at 0.
    pub fn with_policies(mut self, set: &PolicySet) -> prometheus::Result<Metrics> {
        if set.is_empty() {
            return Ok(self);
        }
        let flows = counter_vec(
            &self.registry,
            "tlscensus_policy_flows_total",
            "Inventoried TLS flows judged by each server policy (--policy): verdict pass, fail (reason: no_common_version, no_common_suite, no_common_group, no_common_signature_algorithm, missing_requirement) or unknown (reason no_hello: no whole ClientHello was read).",
            &["policy", "verdict", "reason"],
        )?;
        let hosts = gauge_vec(
            &self.registry,
            "tlscensus_policy_failing_hosts",
            "Hosts in the inventory with at least one hello that would fail the server policy (--policy).",
            &["policy"],
        )?;
        self.policies = set
            .iter()
            .map(|p| PolicySeries {
                flows: ByLabel::new(|r: Reason| {
                    flows.with_label_values(&[&p.name, r.outcome().as_str(), r.as_str()])
                }),
                failing_hosts: hosts.with_label_values(&[&p.name]),
            })
            .collect();
        Ok(self)
    }

    /// Counts one inventoried flow under every policy.
    pub fn policy_flow(&self, verdicts: Verdicts) {
        for (i, p) in self.policies.iter().enumerate() {
            let reason = verdicts.get(i).map_or(Reason::NoHello, |v| v.reason());
            p.flows[reason].inc();
        }
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

impl Metrics {
    /// `tlscensus_resolve_queries_total`'s handles (all results, so they
    /// show as 0 before the first query).
    pub fn resolve_counts(&self) -> ResolveCounts {
        ResolveCounts(ByLabel::new(|r: ResolveResult| {
            self.resolve_queries.with_label_values(&[r.as_str()])
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
