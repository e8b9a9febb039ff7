//! Mirror health: what the workers' flow tables found missing, per
//! interface and per block of client addresses, as counters, a sliding-window
//! loss ratio and the client blocks seen in one direction only.
//!
//! Input: each worker's [`MirrorTally`] per interface and the client blocks
//! of the flows that left its table ([`crate::flow::mirror`]), handed over
//! with its other counters after each batch. Output: the series below, and
//! [`MirrorSummary`] for `read`'s summary. Invariants: the block store holds
//! at most [`MAX_BLOCKS`] blocks (a block beyond is counted as
//! `bound="mirror_blocks"` and not tracked); at most [`MAX_NAMED_BLOCKS`]
//! blocks are named in labels; one mutex, taken once per batch by the
//! workers that ended flows and at each scrape.
//!
//! - `tlscensus_capture_loss_window_bytes_total{interface}`,
//!   `tlscensus_capture_loss_bytes_total{interface}`: the sequence space
//!   observed in flows' handshake phase, and the part never captured.
//! - `tlscensus_capture_loss_ratio{interface}`: their ratio over the last
//!   five minutes (over the whole run for `read`).
//! - `tlscensus_handshake_gaps_total{interface}`: flows that ended before
//!   their facts were complete, with bytes they needed missing.
//! - `tlscensus_mirror_flows_total{interface,seen}`: flows whose opening was
//!   captured, by the directions that came.
//! - `tlscensus_mirror_one_sided_blocks{interface}`,
//!   `tlscensus_mirror_one_sided_block{interface,block}`: client blocks seen
//!   one way only over the last ten minutes.

use crate::label::ByLabel;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Gauge, LabelPair, Metric, MetricFamily};
use prometheus::{IntCounter, Registry};
use serde::Serialize;

use crate::flow::mirror::{Block, MirrorTally, Sides};
use crate::metrics::{counter_vec, gauge_family, label_pair};

/// Client blocks tracked for the one-sided verdict.
pub const MAX_BLOCKS: usize = 4096;
/// One-sided blocks named in `tlscensus_mirror_one_sided_block`, per scrape.
pub const MAX_NAMED_BLOCKS: usize = 32;
/// A block's evidence is kept for two windows of this much capture time.
pub const BLOCK_WINDOW_NS: u64 = 5 * 60 * 1_000_000_000;
/// One-way flows a block (or a capture) needs before it is called one-sided.
pub const MIN_ONE_WAY: u64 = 10;
/// The sliding window of `tlscensus_capture_loss_ratio`.
pub const LOSS_WINDOW: Duration = Duration::from_secs(300);

/// One direction only: enough one-way flows, and under one in twenty both
/// ways (a scanner's answered probes, or two mirrored ports of one
/// conversation, leave a few).
pub fn one_sided(both: u64, one_way: u64) -> bool {
    one_way >= MIN_ONE_WAY && both * 20 < one_way
}

/// `[both, one way]` flow counts of one block.
#[derive(Clone, Copy, Debug, Default)]
struct BlockCounts {
    current: [u64; 2],
    previous: [u64; 2],
    total: [u64; 2],
}

struct Blocks {
    map: HashMap<(u8, Block), BlockCounts, ahash::RandomState>,
    window_start: u64,
    /// Live: blocks quiet for two windows are forgotten. `read` keeps them
    /// (its summary is about the whole capture).
    forget: bool,
}

impl Blocks {
    /// Starts a new window when `now` (capture time) is past the current one.
    fn roll(&mut self, now: u64) {
        if self.window_start == 0 {
            self.window_start = now;
        }
        if now < self.window_start.saturating_add(BLOCK_WINDOW_NS) {
            return;
        }
        let skipped = now.saturating_sub(self.window_start) / BLOCK_WINDOW_NS;
        self.window_start = now;
        for c in self.map.values_mut() {
            c.previous = if skipped == 1 { c.current } else { [0; 2] };
            c.current = [0; 2];
        }
        if self.forget {
            self.map.retain(|_, c| c.previous != [0; 2]);
        }
    }

    /// The one-sided blocks, most one-way flows first.
    fn one_sided(&self) -> Vec<(u8, Block, u64)> {
        let mut v: Vec<(u8, Block, u64)> = self
            .map
            .iter()
            .filter_map(|(&(i, b), c)| {
                let [both, one] = if self.forget {
                    [c.current[0] + c.previous[0], c.current[1] + c.previous[1]]
                } else {
                    c.total
                };
                one_sided(both, one).then_some((i, b, one))
            })
            .collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
        v
    }
}

/// Per interface: the handles of its counters.
struct Interface {
    name: String,
    window: IntCounter,
    lost: IntCounter,
    gaps: IntCounter,
    sides: ByLabel<Sides, IntCounter, { Sides::ALL.len() }>,
}

/// Samples of `(window, lost)` per interface for the sliding ratio.
struct LossRing {
    samples: Vec<(Instant, Vec<(u64, u64)>)>,
}

/// What the mirror showed over a whole `read`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MirrorSummary {
    /// Sequence space observed in handshake phases, bytes.
    pub window_bytes: u64,
    /// The part of it never captured.
    pub lost_bytes: u64,
    pub handshake_gaps: u64,
    /// Flows whose opening was captured, seen both ways.
    pub both_ways: u64,
    /// ... seen client to server only.
    pub client_only: u64,
    /// ... seen server to client only.
    pub server_only: u64,
    /// Client blocks seen one way only (at most [`MAX_NAMED_BLOCKS`]).
    pub one_sided_blocks: Vec<String>,
}

impl MirrorSummary {
    pub fn one_way(&self) -> u64 {
        self.client_only + self.server_only
    }

    /// The capture holds one direction only: its one-way flows outnumber
    /// the two-way ones twenty to one. A one-way flow is evidence enough
    /// (a client that goes on after its SYN was answered), so a capture of a
    /// single connection can be one-sided; client blocks, which are many,
    /// need [`MIN_ONE_WAY`] each.
    pub fn one_sided(&self) -> bool {
        self.one_way() > 0 && self.both_ways * 20 < self.one_way()
    }

    /// Lost bytes per window byte.
    pub fn loss_ratio(&self) -> f64 {
        if self.window_bytes == 0 {
            0.0
        } else {
            self.lost_bytes as f64 / self.window_bytes as f64
        }
    }
}

pub struct MirrorHealth {
    interfaces: Vec<Interface>,
    blocks: Mutex<Blocks>,
    ring: Mutex<LossRing>,
    /// `tlscensus_bound_hits_total{bound="mirror_blocks"}`.
    block_bound: IntCounter,
}

impl MirrorHealth {
    /// The counters of `interfaces` (by index, as the capture threads number
    /// them; `read` has one, "file"), registered on `registry`. `live`:
    /// blocks quiet for two windows are forgotten.
    pub fn new(
        registry: &Registry,
        interfaces: &[String],
        block_bound: IntCounter,
        live: bool,
    ) -> prometheus::Result<MirrorHealth> {
        let iface = &["interface"];
        let window = counter_vec(
            registry,
            "tlscensus_capture_loss_window_bytes_total",
            "TCP sequence space observed in flows' handshake phase (from the first byte to the furthest byte seen or acknowledged, both directions), per interface.",
            iface,
        )?;
        let lost = counter_vec(
            registry,
            "tlscensus_capture_loss_bytes_total",
            "The part of tlscensus_capture_loss_window_bytes_total that never reached the sensor: gaps later bytes showed, bytes acknowledged but never seen. Upstream loss when the kernel and queue drop counters stay at 0.",
            iface,
        )?;
        let gaps = counter_vec(
            registry,
            "tlscensus_handshake_gaps_total",
            "Flows that ended before their handshake facts were complete because bytes they needed never reached the sensor, per interface.",
            iface,
        )?;
        let flows = counter_vec(
            registry,
            "tlscensus_mirror_flows_total",
            "TCP flows whose opening was captured, by interface and the directions that came: both, client_only (the client went on after its SYN; nothing of the server came), server_only (the server's SYN-ACK came; nothing of the client).",
            &["interface", "seen"],
        )?;
        let mut names: Vec<String> = interfaces.to_vec();
        if names.is_empty() {
            names.push("file".into());
        }
        let list = names
            .iter()
            .map(|n| Interface {
                name: n.clone(),
                window: window.with_label_values(&[n]),
                lost: lost.with_label_values(&[n]),
                gaps: gaps.with_label_values(&[n]),
                sides: ByLabel::new(|s: Sides| flows.with_label_values(&[n, s.as_str()])),
            })
            .collect();
        Ok(MirrorHealth {
            interfaces: list,
            blocks: Mutex::new(Blocks {
                map: HashMap::default(),
                window_start: 0,
                forget: live,
            }),
            ring: Mutex::new(LossRing {
                samples: vec![(Instant::now(), vec![(0, 0); names.len()])],
            }),
            block_bound,
        })
    }

    fn interface(&self, i: usize) -> &Interface {
        let last = self.interfaces.len() - 1;
        &self.interfaces[i.min(last)]
    }

    /// A worker's tallies (by interface index) and the client blocks of the
    /// flows that left its table; `now`: its capture clock.
    pub fn add(&self, tallies: &[MirrorTally], blocks: &[(u8, Block, bool)], now: u64) {
        for (i, t) in tallies.iter().enumerate() {
            if t.is_zero() {
                continue;
            }
            let f = self.interface(i);
            f.window.inc_by(t.window_bytes);
            f.lost.inc_by(t.lost_bytes);
            f.gaps.inc_by(t.handshake_gaps);
            for (c, &n) in f.sides.items().iter().zip(t.sides.items()) {
                c.inc_by(n);
            }
        }
        if blocks.is_empty() {
            return;
        }
        let mut store = crate::sync::lock(&self.blocks);
        store.roll(now);
        let mut refused = 0;
        for &(iface, block, both) in blocks {
            let full = store.map.len() >= MAX_BLOCKS;
            let c = match store.map.get_mut(&(iface, block)) {
                Some(c) => c,
                None if full => {
                    refused += 1;
                    continue;
                }
                None => store.map.entry((iface, block)).or_default(),
            };
            let k = usize::from(!both);
            c.current[k] += 1;
            c.total[k] += 1;
        }
        drop(store);
        self.block_bound.inc_by(refused);
    }

    /// The whole run, for `read`'s summary.
    pub fn summary(&self) -> MirrorSummary {
        let mut s = MirrorSummary::default();
        for f in &self.interfaces {
            s.window_bytes += f.window.get();
            s.lost_bytes += f.lost.get();
            s.handshake_gaps += f.gaps.get();
            s.both_ways += f.sides[Sides::Both].get();
            s.client_only += f.sides[Sides::ClientOnly].get();
            s.server_only += f.sides[Sides::ServerOnly].get();
        }
        let store = crate::sync::lock(&self.blocks);
        s.one_sided_blocks = store
            .one_sided()
            .into_iter()
            .take(MAX_NAMED_BLOCKS)
            .map(|(_, b, _)| b.to_string())
            .collect();
        s
    }

    /// `(window, lost)` over the last [`LOSS_WINDOW`] per interface: a
    /// sample is kept every tenth of the window; the oldest one within it
    /// (or the last before it) is the base.
    fn loss_ratios(&self) -> Vec<f64> {
        let now_counts: Vec<(u64, u64)> = self
            .interfaces
            .iter()
            .map(|f| (f.window.get(), f.lost.get()))
            .collect();
        let now = Instant::now();
        let mut ring = crate::sync::lock(&self.ring);
        let step = LOSS_WINDOW / 10;
        if ring
            .samples
            .last()
            .is_none_or(|(t, _)| now.duration_since(*t) >= step)
        {
            ring.samples.push((now, now_counts.clone()));
        }
        // Keep one sample at or before the window's start as the base.
        while ring.samples.len() > 2 && now.duration_since(ring.samples[1].0) >= LOSS_WINDOW {
            ring.samples.remove(0);
        }
        let base = &ring.samples[0].1;
        now_counts
            .iter()
            .zip(base)
            .map(|((w, l), (w0, l0))| {
                let dw = w.saturating_sub(*w0);
                if dw == 0 {
                    0.0
                } else {
                    l.saturating_sub(*l0) as f64 / dw as f64
                }
            })
            .collect()
    }
}

/// The collector of the gauges (the counters are registered as such).
pub struct MirrorCollector {
    health: std::sync::Arc<MirrorHealth>,
    descs: [Desc; 3],
}

impl MirrorCollector {
    pub fn new(health: std::sync::Arc<MirrorHealth>) -> prometheus::Result<MirrorCollector> {
        let d = |name: &str, help: &str, labels: &[&str]| {
            Desc::new(
                name.into(),
                help.into(),
                labels.iter().map(|l| l.to_string()).collect(),
                HashMap::new(),
            )
        };
        Ok(MirrorCollector {
            health,
            descs: [
                d(
                    "tlscensus_capture_loss_ratio",
                    "Share of the TCP sequence space observed in flows' handshake phase that never reached the sensor, over the last 5 minutes (over the whole run for read), per interface.",
                    &["interface"],
                )?,
                d(
                    "tlscensus_mirror_one_sided_blocks",
                    "Client address blocks (/24, /64) whose flows came in one direction only over the last 10 minutes (at least 10 one-way flows, under 5% both ways), per interface.",
                    &["interface"],
                )?,
                d(
                    "tlscensus_mirror_one_sided_block",
                    "1 for each client block seen in one direction only over the last 10 minutes; at most 32 series, the blocks with most one-way flows.",
                    &["block", "interface"],
                )?,
            ],
        })
    }
}

fn gauge(labels: Vec<LabelPair>, value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::default();
    m.set_label(labels);
    m.set_gauge(g);
    m
}

impl Collector for MirrorCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let h = &self.health;
        let ratios = h
            .loss_ratios()
            .into_iter()
            .zip(&h.interfaces)
            .map(|(r, f)| gauge(vec![label_pair("interface", f.name.clone())], r))
            .collect();
        let blocks = {
            let store = crate::sync::lock(&h.blocks);
            store.one_sided()
        };
        let counts = h
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let n = blocks.iter().filter(|b| usize::from(b.0) == i).count();
                gauge(vec![label_pair("interface", f.name.clone())], n as f64)
            })
            .collect();
        let named = blocks
            .iter()
            .take(MAX_NAMED_BLOCKS)
            .map(|(i, b, _)| {
                let name = &h.interface(usize::from(*i)).name;
                gauge(
                    vec![
                        label_pair("block", b.to_string()),
                        label_pair("interface", name.clone()),
                    ],
                    1.0,
                )
            })
            .collect();
        [(0, ratios), (1, counts), (2, named)]
            .into_iter()
            .flat_map(|(i, metrics)| gauge_family(&self.descs[i], metrics))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(live: bool) -> MirrorHealth {
        let r = Registry::new();
        let bound = IntCounter::new("b", "b").unwrap();
        MirrorHealth::new(&r, &["eth1".into(), "eth2".into()], bound, live).unwrap()
    }

    fn block(n: u8) -> Block {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12] = 10;
        a[14] = n;
        Block(a)
    }

    #[test]
    fn mirror_one_sided_blocks_need_evidence() {
        let h = health(false);
        let mut flows = Vec::new();
        for _ in 0..12 {
            flows.push((0, block(1), false)); // one way only
            flows.push((1, block(2), true)); // both
            flows.push((1, block(5), false));
        }
        flows.push((1, block(5), true)); // one of 13 both ways: not one-sided
        flows.extend([(1, block(3), false); 25]);
        flows.push((1, block(3), true)); // one of 26: still one-sided
        flows.extend([(0, block(4), false); 9]); // too few to tell
        h.add(&[], &flows, 1);
        let s = h.summary();
        assert_eq!(s.one_sided_blocks, vec!["10.0.3.0/24", "10.0.1.0/24"]);
    }

    #[test]
    fn mirror_live_blocks_age_out() {
        let h = health(true);
        h.add(&[], &[(0, block(1), false); 20], 1);
        assert_eq!(h.summary().one_sided_blocks.len(), 1);
        h.add(&[], &[(0, block(2), true)], 1 + BLOCK_WINDOW_NS);
        assert_eq!(h.summary().one_sided_blocks.len(), 1, "previous window");
        h.add(&[], &[(0, block(2), true)], 1 + 2 * BLOCK_WINDOW_NS);
        assert!(h.summary().one_sided_blocks.is_empty());
        assert_eq!(h.blocks.lock().unwrap().map.len(), 1, "block 1 forgotten");
    }

    #[test]
    fn mirror_block_store_is_bounded() {
        let r = Registry::new();
        let bound = IntCounter::new("b", "b").unwrap();
        let h = MirrorHealth::new(&r, &[], bound.clone(), true).unwrap();
        let flows: Vec<(u8, Block, bool)> = (0..MAX_BLOCKS as u32 + 10)
            .map(|n| {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&n.to_be_bytes());
                (0, Block(a), false)
            })
            .collect();
        h.add(&[], &flows, 1);
        assert_eq!(h.blocks.lock().unwrap().map.len(), MAX_BLOCKS);
        assert_eq!(bound.get(), 10);
    }

    #[test]
    fn mirror_tallies_reach_the_counters_and_the_ratio() {
        let h = health(true);
        let t = MirrorTally {
            window_bytes: 1000,
            lost_bytes: 20,
            handshake_gaps: 1,
            sides: ByLabel::new(|s: Sides| match s {
                Sides::Both => 5,
                Sides::ClientOnly => 1,
                Sides::ServerOnly => 0,
            }),
        };
        h.add(&[MirrorTally::default(), t], &[], 1);
        let s = h.summary();
        assert_eq!((s.window_bytes, s.lost_bytes, s.both_ways), (1000, 20, 5));
        assert_eq!(h.loss_ratios(), vec![0.0, 0.02]);
        assert!(!s.one_sided());
    }
}
