//! A worker's handles on `tlscensus_flows_total`, resolved once per label
//! combination it meets.

use std::collections::HashMap;

use prometheus::IntCounter;

use super::*;

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
    use crate::metrics::Metrics;

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
}
