//! Per-service series: flows by service, version and outcome, and each
//! destination's last legacy flow (readiness to enforce TLS 1.2).

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, Metric, MetricFamily};
use prometheus::{IntCounter, IntCounterVec, IntGaugeVec};

use super::*;

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
