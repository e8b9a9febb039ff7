//! Prometheus metrics: one registry, counter handles resolved up front, and the
//! text exposition used by `--metrics-file` (and by the live exporter).
//!
//! Names are part of the interface (README lists them). Label values come from
//! small fixed sets, except `source` on `tlscensus_legacy_flows_total`, whose
//! distinct values are capped by `max_legacy_sources`; flows of further hosts
//! are labelled `source="other"` and counted in
//! `tlscensus_bound_hits_total{bound="legacy_sources"}`.

use std::net::IpAddr;

use dashmap::DashSet;
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use std::path::Path;

use crate::decode::DecodeError;
use crate::error::SetupError;
use crate::tls::extract::Malformed;

/// Every `bound` label value.
pub const BOUNDS: [&str; 9] = [
    "flow_table",
    "stream_bytes",
    "ooo_segments",
    "buffer_budget",
    "hosts",
    "legacy_sources",
    "fragments",
    "server_names",
    "worker_queue",
];

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
    pub legacy_flows: IntCounterVec,
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
    pub build_info: IntGaugeVec,
    legacy_sources: DashSet<IpAddr, ahash::RandomState>,
    legacy_admit: std::sync::Mutex<()>,
    max_legacy_sources: usize,
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
            legacy_flows: counter_vec(
                &r,
                "tlscensus_legacy_flows_total",
                "Inventoried TLS flows below the minimum version, by source host.",
                &["source", "version", "outcome"],
            )?,
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
            build_info: gauge_vec(
                &r,
                "tlscensus_build_info",
                "Always 1; the labels say which build is running.",
                &["version"],
            )?,
            registry: r,
            legacy_sources: DashSet::with_hasher(ahash::RandomState::new()),
            legacy_admit: std::sync::Mutex::new(()),
            max_legacy_sources,
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
        Ok(m)
    }

    pub fn bound(&self, bound: &str, n: u64) {
        if n > 0 {
            self.bound_hits.with_label_values(&[bound]).inc_by(n);
        }
    }

    /// The `source` label for a legacy flow of `ip`, within the cap.
    pub fn legacy_source_label(&self, ip: IpAddr) -> String {
        if self.legacy_sources.contains(&ip) {
            return ip.to_string();
        }
        {
            // New sources are rare: admit them one at a time so the cap is exact
            // even when several workers race.
            let _admit = self.legacy_admit.lock().unwrap_or_else(|p| p.into_inner());
            if self.legacy_sources.contains(&ip)
                || self.legacy_sources.len() < self.max_legacy_sources
            {
                self.legacy_sources.insert(ip);
                return ip.to_string();
            }
        }
        self.bound("legacy_sources", 1);
        "other".to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_source_cap() {
        let m = Metrics::new(2).unwrap();
        let ip = |n| IpAddr::from([10, 0, 0, n]);
        assert_eq!(m.legacy_source_label(ip(1)), "10.0.0.1");
        assert_eq!(m.legacy_source_label(ip(2)), "10.0.0.2");
        assert_eq!(m.legacy_source_label(ip(3)), "other");
        assert_eq!(m.legacy_source_label(ip(1)), "10.0.0.1");
        assert_eq!(m.bound_hits.with_label_values(&["legacy_sources"]).get(), 1);
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
