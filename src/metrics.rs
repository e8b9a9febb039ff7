//! Prometheus metrics: one registry, counter handles resolved up front, and the
//! text exposition used by `--metrics-file` (and by the live exporter).
//!
//! Names are part of the interface (README lists them). Label values come from
//! small fixed sets, except `source` on `tlscensus_legacy_flows_total`, whose
//! distinct values are capped by `max_legacy_sources`; flows of further hosts
//! are labelled `source="other"` and counted in
//! `tlscensus_bound_hits_total{bound="legacy_sources"}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::{DashMap, DashSet};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use std::path::Path;

use crate::decode::DecodeError;
use crate::error::SetupError;
use crate::tls::extract::Malformed;
use crate::tls::summary::Outcome;
use crate::tls::version::Version;

/// Every `bound` label value.
pub const BOUNDS: [&str; 10] = [
    "flow_table",
    "stream_bytes",
    "ooo_segments",
    "buffer_budget",
    "hosts",
    "legacy_sources",
    "fragments",
    "server_names",
    "worker_queue",
    "dns_entries",
];

/// `result` values of `tlscensus_dns_responses_total`.
pub const DNS_RESULTS: [&str; 6] = [
    "target",
    "no_target",
    "not_answer",
    "truncated",
    "bad_name",
    "tcp_split",
];

/// `result` values of `tlscensus_server_certificates_total`.
pub const CERTIFICATE_RESULTS: [&str; 3] = ["names", "none", "failed"];

/// `kind` values of the TLS parse error counter besides [`Malformed`] kinds.
pub const PARSE_ERROR_EXTRA: [&str; 3] = ["incomplete", "conflicting_roles", "server_not_tls"];

pub struct Metrics {
    pub registry: Registry,
    pub packets: IntCounter,
    pub bytes: IntCounter,
    pub decode_errors: IntCounterVec,
    pub segments: IntCounter,
    pub settled_skips: IntCounter,
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
    pub inputs: IntCounterVec,
    pub queue_drops: IntCounter,
    pub dns_responses: IntCounterVec,
    pub dns_entries: IntGauge,
    pub target_flows: IntCounterVec,
    pub certificates: IntCounterVec,
    pub build_info: IntGaugeVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
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
    pub start_time: IntGauge,
    pub uptime: IntGauge,
    pub scrapes: IntCounterVec,
}

impl LiveMetrics {
    /// Registers the live series on `m`'s registry for these interfaces.
    pub fn new(m: &Metrics, interfaces: &[String]) -> prometheus::Result<LiveMetrics> {
        let r = &m.registry;
        let iface = &["interface"];
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
        };
        for i in interfaces {
            let i = i.as_str();
            l.received.with_label_values(&[i]);
            l.kernel_drops.with_label_values(&[i]);
            l.interface_drops.with_label_values(&[i]);
            l.interface_down.with_label_values(&[i]);
            l.interface_up.with_label_values(&[i]).set(1);
        }
        for res in ["ok", "not_found", "bad_request", "timeout", "rejected"] {
            l.scrapes.with_label_values(&[res]);
        }
        Ok(l)
    }
}

impl Metrics {
    pub fn new(max_legacy_sources: usize) -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let m = Metrics {
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
            decode_errors: counter_vec(
                &r,
                "tlscensus_decode_errors_total",
                "Frames that failed to decode, by layer and reason.",
                &["reason"],
            )?,
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
            flows: counter_vec(
                &r,
                "tlscensus_flows_total",
                "TLS flows by version (negotiated, else highest offered), outcome and whether the server is a target.",
                &["version", "outcome", "target"],
            )?,
            legacy_flows: {
                let c = Arc::new(LegacyFlows::new(max_legacy_sources)?);
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
            parse_errors: counter_vec(
                &r,
                "tlscensus_tls_parse_errors_total",
                "Flows whose handshake start could not be parsed, by kind.",
                &["kind"],
            )?,
            bound_hits: counter_vec(
                &r,
                "tlscensus_bound_hits_total",
                "Times a configured memory bound was hit, by bound.",
                &["bound"],
            )?,
            evictions: counter_vec(
                &r,
                "tlscensus_flow_evictions_total",
                "Flows removed before they closed, by reason.",
                &["reason"],
            )?,
            flows_tracked: gauge(
                &r,
                "tlscensus_flows_tracked",
                "Flows currently in the flow tables.",
            )?,
            fragments: counter_vec(
                &r,
                "tlscensus_ip_fragments_total",
                "IP fragments and what became of them.",
                &["result"],
            )?,
            inventory_hosts: gauge(&r, "tlscensus_inventory_hosts", "Hosts in the inventory.")?,
            events_written: counter(&r, "tlscensus_events_written_total", "Flow events written.")?,
            event_errors: counter(
                &r,
                "tlscensus_event_write_errors_total",
                "Flow events that could not be written.",
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
            dns_responses: counter_vec(
                &r,
                "tlscensus_dns_responses_total",
                "DNS responses seen (passive DNS), by what they taught: target (a name or address leading to a target), no_target, or why they were not used.",
                &["result"],
            )?,
            dns_entries: gauge(
                &r,
                "tlscensus_dns_entries",
                "Names and addresses held by passive DNS (bounded by --max-dns-entries).",
            )?,
            target_flows: counter_vec(
                &r,
                "tlscensus_target_flows_total",
                "TLS flows to target servers, by how the server was recognised (sni, cname, dns_address, cidr, certificate).",
                &["match"],
            )?,
            certificates: counter_vec(
                &r,
                "tlscensus_server_certificates_total",
                "Server certificates looked for (flows without SNI that negotiated TLS 1.2 or older), by result: names (leaf certificate read), none (the server sent none, e.g. a resumed session), failed (malformed, over a bound, or the flow ended first).",
                &["result"],
            )?,
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
                    m.flows.with_label_values(&[v, o, t]);
                }
            }
        }
        for l in DecodeError::LABELS {
            m.decode_errors.with_label_values(&[l]);
        }
        for k in Malformed::ALL {
            m.parse_errors.with_label_values(&[k.as_str()]);
        }
        for k in PARSE_ERROR_EXTRA {
            m.parse_errors.with_label_values(&[k]);
        }
        for b in BOUNDS {
            m.bound_hits.with_label_values(&[b]);
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for r in ["idle", "table_full", "end_of_capture"] {
            m.evictions.with_label_values(&[r]);
        }
        for r in ["reassembled", "expired", "invalid", "table_full"] {
            m.fragments.with_label_values(&[r]);
        }
        for r in ["ok", "failed"] {
            m.inputs.with_label_values(&[r]);
        }
        for r in DNS_RESULTS {
            m.dns_responses.with_label_values(&[r]);
        }
        for r in CERTIFICATE_RESULTS {
            m.certificates.with_label_values(&[r]);
        }
        for k in crate::dns::Match::ALL {
            m.target_flows.with_label_values(&[k.as_str()]);
        }
        Ok(m)
    }

    pub fn bound(&self, bound: &str, n: u64) {
        if n > 0 {
            self.bound_hits.with_label_values(&[bound]).inc_by(n);
        }
    }

    /// Counts one inventoried legacy flow of `source`; a source beyond the cap
    /// is counted as `source="other"` and as a `legacy_sources` bound hit.
    pub fn legacy_flow(&self, source: IpAddr, version: Option<Version>, outcome: Outcome) {
        if !self.legacy_flows.inc(source, version, outcome) {
            self.bound("legacy_sources", 1);
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
    std::fs::write(&tmp, data).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// `tlscensus_legacy_flows_total{source,version,outcome}`, the one series set
/// with a per-host label. A collector of its own rather than an
/// `IntCounterVec`: the vec builds and validates a descriptor for every new
/// series (about 9,000 instructions each under callgrind), and a census meets a
/// new legacy source every few flows. Here a new series is one map insertion,
/// and labels are formatted only when scraped. Sources are capped at
/// `max_sources`; further ones share `source="other"`.
pub struct LegacyFlows {
    desc: Desc,
    series: DashMap<LegacyKey, AtomicU64, ahash::RandomState>,
    sources: DashSet<IpAddr, ahash::RandomState>,
    admit: std::sync::Mutex<()>,
    max_sources: usize,
}

/// One series: source (`None`: "other"), version (`None`: "unknown"), outcome.
type LegacyKey = (Option<IpAddr>, Option<Version>, Outcome);

impl LegacyFlows {
    fn new(max_sources: usize) -> prometheus::Result<LegacyFlows> {
        Ok(LegacyFlows {
            desc: Desc::new(
                "tlscensus_legacy_flows_total".into(),
                "Inventoried TLS flows below the minimum version, by source host.".into(),
                vec!["source".into(), "version".into(), "outcome".into()],
                HashMap::new(),
            )?,
            series: DashMap::with_hasher(ahash::RandomState::new()),
            sources: DashSet::with_hasher(ahash::RandomState::new()),
            admit: std::sync::Mutex::new(()),
            max_sources,
        })
    }

    /// Counts one flow; false when `source` was beyond the cap (counted as "other").
    pub fn inc(&self, source: IpAddr, version: Option<Version>, outcome: Outcome) -> bool {
        let admitted = self.admit(source);
        let key = (admitted.then_some(source), version, outcome);
        if let Some(n) = self.series.get(&key) {
            n.fetch_add(1, Ordering::Relaxed);
        } else {
            self.series
                .entry(key)
                .or_insert_with(|| AtomicU64::new(0))
                .fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    fn admit(&self, ip: IpAddr) -> bool {
        if self.sources.contains(&ip) {
            return true;
        }
        // New sources are rare: admit them one at a time so the cap is exact
        // even when several workers race.
        let _admit = self.admit.lock().unwrap_or_else(|p| p.into_inner());
        if self.sources.contains(&ip) || self.sources.len() < self.max_sources {
            self.sources.insert(ip);
            return true;
        }
        false
    }

    /// The value of one series (tests, reports).
    pub fn get(&self, source: Option<IpAddr>, version: Option<Version>, outcome: Outcome) -> u64 {
        self.series
            .get(&(source, version, outcome))
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }
}

struct LegacyFlowsCollector(Arc<LegacyFlows>);

impl Collector for LegacyFlowsCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let pair = |name: &str, value: String| {
            let mut p = LabelPair::default();
            p.set_name(name.to_string());
            p.set_value(value);
            p
        };
        let metrics: Vec<Metric> = self
            .0
            .series
            .iter()
            .map(|e| {
                let (source, version, outcome) = *e.key();
                let mut counter = Counter::default();
                counter.set_value(e.value().load(Ordering::Relaxed) as f64);
                let mut m = Metric::default();
                // Label pairs sorted by name, as the registry expects.
                m.set_label(vec![
                    pair("outcome", outcome.as_str().to_string()),
                    pair(
                        "source",
                        source.map_or_else(|| "other".into(), |ip| ip.to_string()),
                    ),
                    pair(
                        "version",
                        version.map_or_else(|| "unknown".into(), |v| v.to_string()),
                    ),
                ]);
                m.set_counter(counter);
                m
            })
            .collect();
        let mut mf = MetricFamily::default();
        mf.set_name(self.0.desc.fq_name.clone());
        mf.set_help(self.0.desc.help.clone());
        mf.set_field_type(MetricType::COUNTER);
        mf.set_metric(metrics);
        vec![mf]
    }
}

/// A worker's own handles on `tlscensus_flows_total`, one per label set it has
/// met: counting a flow is then one atomic add, without formatting the version
/// or hashing label strings (STYLE: resolve labelled counters once per worker).
/// At most every (version, outcome, target) triple: 65,536 x 3 x 2 entries.
#[derive(Default)]
pub struct FlowCounters {
    handles: HashMap<(Option<Version>, Outcome, bool), IntCounter, ahash::RandomState>,
}

impl FlowCounters {
    pub fn inc(&mut self, m: &Metrics, version: Option<Version>, outcome: Outcome, target: bool) {
        self.handles
            .entry((version, outcome, target))
            .or_insert_with(|| {
                let v = version.map_or_else(|| "unknown".into(), |v| v.to_string());
                let t = if target { "true" } else { "false" };
                m.flows
                    .with_label_values(&[v.as_str(), outcome.as_str(), t])
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_source_cap() {
        let m = Metrics::new(2).unwrap();
        let ip = |n| IpAddr::from([10, 0, 0, n]);
        let (v10, rej) = (Some(Version::TLS10), Outcome::Rejected);
        for n in [1, 2, 3, 1, 4] {
            m.legacy_flow(ip(n), v10, rej);
        }
        let get = |s| m.legacy_flows.get(s, v10, rej);
        assert_eq!((get(Some(ip(1))), get(Some(ip(2))), get(None)), (2, 1, 2));
        assert_eq!(get(Some(ip(3))), 0);
        assert_eq!(m.bound_hits.with_label_values(&["legacy_sources"]).get(), 2);
    }

    /// The collector's exposition is what an `IntCounterVec` would print.
    #[test]
    fn legacy_flows_render() {
        let m = Metrics::new(1).unwrap();
        m.legacy_flow(
            IpAddr::from([10, 0, 0, 1]),
            Some(Version::TLS10),
            Outcome::Rejected,
        );
        m.legacy_flow(IpAddr::from([10, 0, 0, 2]), None, Outcome::Unanswered);
        m.legacy_flow(
            IpAddr::from([10, 0, 0, 1]),
            Some(Version(0x0299)),
            Outcome::Negotiated,
        );
        let text = m.render();
        for line in [
            "# HELP tlscensus_legacy_flows_total Inventoried TLS flows below the minimum version, by source host.",
            "# TYPE tlscensus_legacy_flows_total counter",
            "tlscensus_legacy_flows_total{outcome=\"rejected\",source=\"10.0.0.1\",version=\"TLSv1.0\"} 1",
            "tlscensus_legacy_flows_total{outcome=\"unanswered\",source=\"other\",version=\"unknown\"} 1",
            "tlscensus_legacy_flows_total{outcome=\"negotiated\",source=\"10.0.0.1\",version=\"0x0299\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn flow_counters_cache() {
        let m = Metrics::new(1).unwrap();
        let mut c = FlowCounters::default();
        for _ in 0..3 {
            c.inc(&m, Some(Version::TLS12), Outcome::Negotiated, true);
        }
        c.inc(&m, None, Outcome::Unanswered, false);
        let f = |l: [&str; 3]| m.flows.with_label_values(&l).get();
        assert_eq!(f(["TLSv1.2", "negotiated", "true"]), 3);
        assert_eq!(f(["unknown", "unanswered", "false"]), 1);
        assert_eq!(c.handles.len(), 2);
    }

    #[test]
    fn render_has_names() {
        let m = Metrics::new(1).unwrap();
        m.flows
            .with_label_values(&["TLSv1.0", "rejected", "true"])
            .inc();
        let text = m.render();
        assert!(text.contains(
            "tlscensus_flows_total{outcome=\"rejected\",target=\"true\",version=\"TLSv1.0\"} 1"
        ));
        assert!(text.contains("tlscensus_bound_hits_total{bound=\"flow_table\"} 0"));
    }
}
