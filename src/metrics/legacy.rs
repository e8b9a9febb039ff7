//! The per-source legacy series (`tlscensus_legacy_flows_total`) and the
//! passive host names of the sources it labels (`tlscensus_host_info`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

use super::*;
use crate::store;

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
    pub(super) fn new(
        max_sources: usize,
        ttl_secs: Option<u64>,
    ) -> prometheus::Result<LegacyFlows> {
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

pub(super) struct LegacyFlowsCollector(pub(super) Arc<LegacyFlows>);

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

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
}
