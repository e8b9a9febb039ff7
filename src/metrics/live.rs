//! The live sensor's own series: capture, interfaces, the exporter's
//! requests, reloads; made once per run, beside the census' [`super::Metrics`].

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::*;

crate::label_set! {
    /// `result` values of `tlscensus_http_requests_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum HttpResult {
        Ok = "ok",
        NotFound = "not_found",
        BadRequest = "bad_request",
        Timeout = "timeout",
        /// No connection could be evicted to make room.
        Rejected = "rejected",
        /// Cut off to make room for another.
        Evicted = "evicted",
        Unauthorized = "unauthorized",
        /// An `/inventory` view over `--max-inventory-mib`.
        TooLarge = "too_large",
    }
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
        for t in 0..capture_threads.max(1) {
            l.thread_packets.with_label_values(&[&t.to_string()]);
        }
        for r in HttpResult::ALL {
            l.scrapes.with_label_values(&[r.as_str()]);
        }
        Ok(l)
    }
}
