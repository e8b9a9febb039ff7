//! The runtime: the run modes and the threads they start.
//!
//! - [`read`] and [`live`]: `tlscensus read` and `tlscensus live`.
//! - [`dispatch`]: the capture thread's half: decode, join fragments, parse
//!   DNS, hash, batch, send.
//! - [`worker`]: a worker thread: its flow table, passive DNS, matching and
//!   reports.
//! - [`inline`]: the same stages on the calling thread (fuzzing, benchmarks).
//!
//! Invariants: a flow's segments always reach the same worker, in capture
//! order, and every worker sees every DNS response in its place among them;
//! batches are recycled through a return channel, so steady state does not
//! allocate per packet. In [`SendMode::Block`] (offline) the capture thread
//! waits for a worker; in [`SendMode::DropWhenFull`] (live) a full queue drops
//! the batch and counts it.

pub mod dispatch;
pub mod inline;
pub mod live;
pub mod read;
mod upkeep;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use crossbeam_channel::bounded;

use crate::cli::{By, Format};
use crate::config::Config;
use crate::error::SetupError;
use crate::events::EventSink;
use crate::flow::SettledSet;
use crate::hosts::Who;
use crate::hosts::labels::Labels;
use crate::hosts::names::HostNames;
use crate::hosts::resolve::{ResolveSettings, Resolver};
use crate::inventory::{Destinations, HostRecord, Inventory};
use crate::metrics::{Bound, Metrics, ServiceFlows};
use crate::mirror::{MirrorCollector, MirrorHealth};
use crate::policy::PolicySet;
use crate::report::{PolicyTotal, RunTotals};
use crate::targets::passive_dns::PassiveDns;
use crate::targets::prefixes::PrefixSet;
use crate::targets::{Matcher, TargetSet};

pub use dispatch::{Batch, Dispatcher};
pub use inline::InlineCensus;

/// Batches queued per worker.
const QUEUE_BATCHES: usize = 8;

/// Starts the `--resolve` thread; its handle goes into the rules.
fn start_resolver(
    s: &ResolveSettings,
    config: &Config,
    names: &Arc<HostNames>,
    metrics: &Metrics,
) -> Result<Arc<Resolver>, SetupError> {
    let counts = metrics.resolve_counts();
    let max = config.names.max_addresses;
    let (r, _thread) = Resolver::start(s, Arc::clone(names), max, counts)
        .map_err(|e| SetupError::Config(format!("--resolve: cannot reach {}: {e}", s.server)))?;
    // The thread ends when the last handle (the channel) is dropped.
    Ok(Arc::new(r))
}

/// What all threads share.
pub struct Shared {
    /// The settings the run started with. What a reload may change is in
    /// `rules`; read it there.
    pub config: Config,
    /// The matching rules in use (a reload swaps them whole; workers take
    /// the current ones for each batch).
    pub rules: ArcSwap<Rules>,
    pub inventory: Inventory,
    /// Passive host names (the capture thread writes, the others read).
    pub names: Arc<HostNames>,
    /// Per-destination readiness of the target flows.
    pub destinations: Arc<Destinations>,
    pub metrics: Metrics,
    /// What the mirror failed to show (the workers add their tallies).
    pub mirror: Arc<MirrorHealth>,
    /// Live counters for progress display and run totals.
    pub progress: Progress,
}

/// What a reload (SIGHUP in live mode) may change: the targets and the
/// services, the Service Tag prefixes, the proxies, the client labels and
/// `--resolve`, with what hangs on them. Built whole from a checked
/// [`Config`]; the running one is replaced only once a new one is built.
pub struct Rules {
    pub targets: TargetSet,
    /// The chosen service rows (`targets::services::table()` indices).
    pub services: Vec<usize>,
    /// Server addresses that are targets when a flow has no SNI.
    pub prefixes: Arc<PrefixSet>,
    /// Service Tag prefixes that name one chosen service each.
    pub service_prefixes: Arc<Vec<(usize, PrefixSet)>>,
    pub proxies: Arc<PrefixSet>,
    pub labels: Arc<Labels>,
    /// `tlscensus_service_flows_total`'s handles for the chosen rows.
    pub service_flows: ServiceFlows,
    /// `--resolve`: the resolver thread's handle (workers ask, never wait);
    /// the thread ends when the last handle goes.
    pub resolver: Option<Arc<Resolver>>,
    resolve: Option<ResolveSettings>,
}

impl Rules {
    /// The rules of `config`, with the handles made for them.
    fn of(config: &Config, service_flows: ServiceFlows, resolver: Option<Arc<Resolver>>) -> Rules {
        Rules {
            targets: config.targets.clone(),
            services: config.services.clone(),
            prefixes: Arc::clone(&config.prefixes),
            service_prefixes: Arc::clone(&config.service_prefixes),
            proxies: Arc::clone(&config.proxies),
            labels: Arc::clone(&config.labels),
            service_flows,
            resolver,
            resolve: config.resolve.clone(),
        }
    }

    /// The matching rules over the target names and prefixes.
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            names: &self.targets,
            prefixes: &self.prefixes,
        }
    }

    /// The client labels and host names, to describe a host, and the
    /// running configuration's server policies (never reloaded: verdicts
    /// are by their position).
    pub fn who<'a>(&'a self, names: &'a HostNames, policies: &'a PolicySet) -> Who<'a> {
        Who {
            labels: &self.labels,
            names,
            policies,
        }
    }
}

impl Shared {
    /// For `read`: one source, the capture files.
    pub fn new(config: Config, metrics: Metrics) -> Result<Shared, SetupError> {
        Shared::with_interfaces(config, metrics, &[])
    }

    /// For `live`: the interfaces, in the order the capture threads number
    /// them.
    pub fn with_interfaces(
        config: Config,
        metrics: Metrics,
        interfaces: &[String],
    ) -> Result<Shared, SetupError> {
        let bad = |e: prometheus::Error| SetupError::Config(format!("metrics: {e}"));
        let mirror = Arc::new(
            MirrorHealth::new(
                &metrics.registry,
                interfaces,
                metrics.by.bounds[Bound::MirrorBlocks].clone(),
                !interfaces.is_empty(),
            )
            .map_err(bad)?,
        );
        metrics
            .registry
            .register(Box::new(
                MirrorCollector::new(Arc::clone(&mirror)).map_err(bad)?,
            ))
            .map_err(bad)?;
        let names = Arc::new(HostNames::new(&config.names));
        // One Shared per registry: registering cannot collide.
        let _ = metrics.register_host_info(Arc::clone(&names));
        let resolver = match &config.resolve {
            None => None,
            Some(s) => Some(start_resolver(s, &config, &names, &metrics)?),
        };
        let destinations = Arc::new(Destinations::default());
        let service_flows = ServiceFlows::new(&metrics, &config.services)
            .map_err(|e| SetupError::Config(format!("metrics: {e}")))?;
        let _ = metrics.register_destinations(Arc::clone(&destinations));
        let rules = Rules::of(&config, service_flows, resolver);
        Ok(Shared {
            inventory: Inventory::new(config.max_hosts, config.max_server_name_bytes),
            rules: ArcSwap::from_pointee(rules),
            names,
            destinations,
            metrics,
            mirror,
            progress: Progress::default(),
            config,
        })
    }

    /// Puts the rules of `new` in use (its other settings are not looked
    /// at): flows settled from now on are matched by them; counters,
    /// inventory and flows in progress stay. A resolver whose settings did
    /// not change is kept; one that cannot start leaves the running rules.
    /// `table`: a services file's table, put in use with the rules.
    pub fn reload(
        &self,
        new: &Config,
        table: Option<&crate::targets::services::Candidate>,
    ) -> Result<(), SetupError> {
        let old = self.rules.load_full();
        let resolver = match &new.resolve {
            None => None,
            Some(s) if old.resolve.as_ref() == Some(s) => old.resolver.clone(),
            Some(s) => Some(start_resolver(s, &self.config, &self.names, &self.metrics)?),
        };
        if let Some(t) = table {
            crate::targets::services::install(t);
        }
        let service_flows = old.service_flows.rechoose(&new.services);
        self.rules
            .store(Arc::new(Rules::of(new, service_flows, resolver)));
        Ok(())
    }

    /// The run's totals over an inventory snapshot (files left at 0).
    pub fn totals(&self, hosts: &[(std::net::IpAddr, HostRecord)]) -> RunTotals {
        let m = &self.metrics;
        RunTotals {
            packets: m.packets.get(),
            bytes: m.bytes.get(),
            tls_flows: self.progress.tls_flows.load(Ordering::Relaxed),
            inventoried_flows: self.inventory.flows.load(Ordering::Relaxed),
            hosts: hosts.len() as u64,
            // Counted from the flows: a host the inventory could not hold,
            // or gave up, still made them.
            legacy_flows: self.inventory.legacy_flows.load(Ordering::Relaxed),
            legacy_hosts: hosts.iter().filter(|(_, r)| r.legacy > 0).count() as u64,
            rejected_flows: self.inventory.rejected_flows.load(Ordering::Relaxed),
            non_tls_flows: m.non_tls.get(),
            hosts_dropped: self.inventory.hosts_dropped.load(Ordering::Relaxed),
            mirror: self.mirror.summary(),
            policies: self.policy_totals(hosts),
            ..RunTotals::default()
        }
    }

    /// The inventory now, grouped and formatted as asked (`/inventory`),
    /// or `None` when the page would pass `max_bytes` (the host views in
    /// CSV and JSON stop as they reach it; the others are checked when
    /// made). Counted as `bound="inventory_page"`.
    pub fn inventory_page(&self, by: By, format: Format, max_bytes: usize) -> Option<Vec<u8>> {
        let rules = self.rules.load();
        let who = rules.who(&self.names, &self.config.policies);
        let destinations = self.destinations.snapshot();
        let hosts = if by == By::Destination {
            Vec::new()
        } else {
            self.inventory.snapshot()
        };
        let totals = self.view_totals(by, &hosts);
        let mut out = Capped {
            buf: Vec::new(),
            max: max_bytes,
        };
        match crate::report::render_to(by, format, &hosts, &destinations, &totals, who, &mut out) {
            Ok(()) => Some(out.buf),
            Err(_) => {
                self.metrics.bound(crate::metrics::Bound::InventoryPage, 1);
                None
            }
        }
    }

    /// Each policy's flows by verdict (its counters) and failing hosts
    /// (among `hosts`, or the inventory's own count when none are given).
    fn policy_totals(&self, hosts: &[(std::net::IpAddr, HostRecord)]) -> Vec<PolicyTotal> {
        let set = &self.config.policies;
        (set.iter().zip(&self.metrics.policies).enumerate())
            .map(|(i, (p, series))| {
                let failing = if hosts.is_empty() {
                    self.inventory.policy_failing_hosts(i)
                } else {
                    hosts
                        .iter()
                        .filter(|(_, r)| r.policy_fails & (1 << i) != 0)
                        .count() as u64
                };
                let counts = crate::policy::Reason::ALL.map(|r| (r, series.flows[r].get()));
                PolicyTotal::of(&p.name, counts.into_iter(), failing)
            })
            .collect()
    }

    fn view_totals(&self, by: By, hosts: &[(std::net::IpAddr, HostRecord)]) -> RunTotals {
        if by == By::Destination {
            let (hosts, legacy_hosts) = self.inventory.host_counts();
            RunTotals {
                hosts,
                legacy_hosts,
                ..self.totals(&[])
            }
        } else {
            self.totals(hosts)
        }
    }

    /// A worker's own passive DNS store.
    pub fn passive_dns(&self) -> PassiveDns {
        let c = &self.config;
        PassiveDns::new(c.max_dns_entries, c.dns_grace_secs, c.max_dns_ttl_secs)
    }
}

#[derive(Default)]
pub struct Progress {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// TLS flows settled (targets or not).
    pub tls_flows: AtomicU64,
    /// Compressed bytes read of the compressed file being read, if one is.
    pub compressed: std::sync::Mutex<Option<Arc<AtomicU64>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendMode {
    Block,
    DropWhenFull,
}

/// A running pipeline: the dispatcher (owned by the capture thread) and the workers.
pub struct Pipeline {
    pub dispatcher: Dispatcher,
    workers: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// The settled-flow set the workers and the capture threads share.
    pub fn settled(&self) -> &SettledSet {
        self.dispatcher.settled()
    }

    /// Starts the workers. Each gets its own clone of `events`, so the event log
    /// ends when the last worker does.
    pub fn start(
        shared: Arc<Shared>,
        mode: SendMode,
        events: Option<EventSink>,
    ) -> Result<Pipeline, SetupError> {
        Ok(Pipeline::start_for(shared, mode, events, 1)?.0)
    }

    /// Starts the workers for `capture_threads` capture threads: the
    /// pipeline holds the first one's dispatcher; the others' are returned,
    /// each to be closed ([`Dispatcher::close`]) by its thread before
    /// [`Pipeline::finish`] can end. Every dispatcher sends to the same
    /// workers, so a flow meets its worker whichever thread captured it.
    pub fn start_for(
        shared: Arc<Shared>,
        mode: SendMode,
        events: Option<EventSink>,
        capture_threads: usize,
    ) -> Result<(Pipeline, Vec<Dispatcher>), SetupError> {
        let threads = capture_threads.max(1);
        let n = shared.config.workers;
        let settled = Arc::new(SettledSet::new(
            shared.config.table.max_flows.saturating_mul(n),
        ));
        let (recycle_tx, recycle_rx) = bounded::<Batch>(n * (QUEUE_BATCHES + 2));
        let mut senders = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for id in 0..n {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            workers.push(worker::spawn(
                id,
                Arc::clone(&shared),
                events.clone(),
                Arc::clone(&settled),
                rx,
                recycle_tx.clone(),
            )?);
            senders.push(tx);
        }
        let more = (1..threads)
            .map(|t| {
                Dispatcher::new(
                    senders.clone(),
                    recycle_rx.clone(),
                    mode,
                    Arc::clone(&shared),
                    Arc::clone(&settled),
                    (t, threads),
                )
            })
            .collect();
        let first = Dispatcher::new(senders, recycle_rx, mode, shared, settled, (0, threads));
        Ok((
            Pipeline {
                dispatcher: first,
                workers,
            },
            more,
        ))
    }

    /// Sends what is batched, lets the workers drain every flow, and waits for them.
    pub fn finish(self) {
        let Pipeline {
            mut dispatcher,
            workers,
        } = self;
        // Block for the last batches even in live mode: shutdown must not lose them.
        dispatcher.close();
        for h in workers {
            let _ = h.join();
        }
    }
}

/// A buffer that refuses to grow past `max` bytes.
struct Capped {
    buf: Vec<u8>,
    max: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.max {
            return Err(std::io::Error::other("page over its cap"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `/inventory` page over its cap is refused (`None`) and counted;
    /// under it, every view renders.
    #[test]
    fn inventory_pages_capped() {
        let shared =
            Shared::new(crate::config::defaults(), Metrics::new(100, None).unwrap()).unwrap();
        let hello = |n: u8| crate::tls::HandshakeSummary {
            ts_ns: 1,
            ..crate::tls::HandshakeSummary::hello_for_test(
                [10, 0, 0, n],
                [192, 0, 2, 1],
                0x0301,
                Some(&format!("acct{n}.blob.core.windows.net")),
            )
        };

        for n in 0..50 {
            shared.inventory.record(&hello(n), true, Some(Some(0)));
            shared.destinations.record(
                0,
                &format!("acct{n}"),
                hello(n).client_ip,
                true,
                true,
                1,
                0,
            );
        }
        let bound = |s: &Shared| s.metrics.by.bounds[crate::metrics::Bound::InventoryPage].get();
        for by in [By::Host, By::Fingerprint, By::Destination] {
            for format in [Format::Json, Format::Csv, Format::Table] {
                let page = shared.inventory_page(by, format, 1 << 20).unwrap();
                assert!(page.len() > 100, "{by:?} {format:?}");
                assert!(shared.inventory_page(by, format, 100).is_none());
            }
        }
        assert_eq!(bound(&shared), 9);
    }
}
