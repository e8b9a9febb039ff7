//! `tlscensus live`: the census on live interfaces, served to Prometheus.
//!
//! Input: a [`LiveConfig`] and a stop flag (set by SIGINT/SIGTERM). Output:
//! `/metrics` and `/healthz` while running, the event log, one-line messages
//! on stderr, and a summary when stopped. Order of setup: open the interfaces
//! and the listener and the event log (which may need root), then drop
//! privileges, then start the workers, the exporter and the capture loop.
//! Invariants: the capture thread never waits on the workers (a full queue
//! drops and counts); flows are aged on the wall clock; on stop every flow in
//! progress is finished and counted and the event log is flushed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Pipeline, SendMode, Shared};
use crate::capture::fanout::FanoutGroup;
use crate::capture::live::{IfaceEvent, KernelStats, LiveSource, wait_readable};
use crate::capture::skip::KernelSkip;
use crate::config::LiveConfig;
use crate::error::SetupError;
use crate::events::{EventCounters, EventLog, EventOutput};
use crate::exporter::{self, Exporter, Health};
use crate::metrics::{LiveMetrics, Metrics, write_atomic};
use crate::privilege::{self, Dropped};

pub use super::upkeep::{Reload, Reread};
use super::upkeep::{spawn_reloader, spawn_state_writer, unix_now, write_state};

/// Frames read from one interface before looking at the others.
const READ_BUDGET: usize = 4096;
/// How often kernel statistics and local counters are published.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Longest the stop waits for the event log to write what is queued.
const SHUTDOWN_EVENTS_WAIT: Duration = Duration::from_secs(3);
/// How often `--metrics-file` is rewritten while running.
const METRICS_FILE_INTERVAL: Duration = Duration::from_secs(15);

pub struct LiveOutcome {
    pub packets: u64,
    pub tls_flows: u64,
    pub kernel_drops: u64,
    pub queue_drops: u64,
    /// The event log or the metrics file failed (exit status 2).
    pub errored: bool,
}

/// Runs until `stop` is set. `say` prints one line to the user (stderr).
pub fn run(
    cfg: &LiveConfig,
    stop: Arc<AtomicBool>,
    reload: Option<Reload>,
    say: &(dyn Fn(&str) + Sync),
) -> Result<LiveOutcome, SetupError> {
    privilege::raise_permitted();
    // Everything that may need privileges first. Each capture thread has a
    // handle on every interface; above one thread, an interface's handles
    // share its fanout group.
    let threads = cfg.capture_threads.max(1);
    let groups: Vec<Option<Arc<FanoutGroup>>> = cfg
        .interfaces
        .iter()
        .map(|_| (threads > 1).then(Arc::default))
        .collect();
    // The kernel skip is loaded with the first handle, while privileges last.
    let skip =
        (cfg.kernel_skip_flows > 0).then(|| Arc::new(KernelSkip::new(cfg.kernel_skip_flows)));
    let mut source_sets = Vec::with_capacity(threads);
    for _ in 0..threads {
        let mut sources = Vec::with_capacity(cfg.interfaces.len());
        for (name, group) in cfg.interfaces.iter().zip(&groups) {
            sources.push(LiveSource::open_in(
                name,
                &cfg.capture,
                group.clone(),
                skip.clone(),
            )?);
        }
        source_sets.push(sources);
    }
    let listener = exporter::bind(&cfg.listen)?;
    // Read before privileges are dropped: key files are often root's only.
    let web = match &cfg.web_config {
        Some(path) => {
            let w = exporter::web_config::load(path).map_err(SetupError::Config)?;
            for what in &w.ignored {
                say(&format!("note: web config: ignored {what}"));
            }
            Some(w)
        }
        None => None,
    };
    let scheme = if web.as_ref().is_some_and(|w| w.tls.is_some()) {
        "https"
    } else {
        "http"
    };
    let event_output = match &cfg.census.event_settings {
        Some(settings) => Some(EventOutput::open(settings, true)?),
        None => None,
    };
    match privilege::drop_to(&cfg.user)? {
        Dropped::To { user, uid, gid } => say(&format!(
            "running as {user} (uid {uid}, gid {gid}) with only CAP_NET_RAW"
        )),
        Dropped::StayedRoot => say("warning: running as root (--user root)"),
        Dropped::NotRoot => {}
    }

    let census = cfg.census.clone();
    let metrics = Metrics::new(census.max_legacy_sources, Some(cfg.legacy_source_ttl))?
        .with_policies(&census.policies)?;
    let live = Arc::new(LiveMetrics::new(&metrics, &cfg.interfaces, threads)?);
    let started = Instant::now();
    live.start_time.set(unix_now());
    live.config_loaded.set(unix_now());
    // The event series exist whether events are written or not.
    let event_counters = EventCounters::from_metrics(&metrics);
    let event_log = match event_output {
        Some(out) => Some(EventLog::start(out, event_counters, true)?),
        None => None,
    };
    let shared = Arc::new(Shared::with_interfaces(census, metrics, &cfg.interfaces)?);
    let health = Arc::new(Health {
        events: event_log.as_ref().map(EventLog::health),
        ..Health::default()
    });
    let render: Box<dyn Fn() -> String + Send + Sync> = {
        let (shared, live) = (Arc::clone(&shared), Arc::clone(&live));
        Box::new(move || exporter::render_metrics(&shared.metrics, &live, started))
    };
    let inventory: exporter::InventoryRender = {
        let shared = Arc::clone(&shared);
        let max = cfg.max_inventory_bytes;
        Arc::new(move |by, format| shared.inventory_page(by, format, max))
    };
    let exporter = Exporter::start(
        listener,
        render,
        Some(inventory),
        Arc::clone(&live),
        Arc::clone(&health),
        web,
    )?;
    if let Some(path) = &cfg.state_file {
        match crate::state::load(path, &shared.inventory, &shared.destinations) {
            crate::state::Loaded::Missing => {}
            crate::state::Loaded::Restored {
                hosts,
                destinations,
            } => say(&format!(
                "{}: restored {hosts} hosts and {destinations} destinations",
                path.display()
            )),
            crate::state::Loaded::SetAside(why, aside) => say(&format!(
                "error: {}: {why}; set aside as {}, starting with an empty census",
                path.display(),
                aside.display()
            )),
        }
    }
    // The state is written by a thread of its own: serialising a large
    // inventory must not hold up capture.
    let state_writer = cfg
        .state_file
        .clone()
        .map(|path| spawn_state_writer(path, Arc::clone(&shared), Arc::clone(&stop)))
        .transpose()?;
    let (said_tx, said) = crossbeam_channel::bounded::<String>(16);
    let reloader = reload
        .map(|r| {
            spawn_reloader(
                r,
                Arc::clone(&shared),
                Arc::clone(&live),
                Arc::clone(&stop),
                said_tx,
                event_log.as_ref().map(EventLog::health),
            )
        })
        .transpose()?;
    let (mut pipeline, dispatchers) = Pipeline::start_for(
        Arc::clone(&shared),
        SendMode::DropWhenFull,
        event_log.as_ref().map(EventLog::sink),
        threads,
    )?;
    let mut skip_report = skip.map(|k| {
        pipeline.settled().set_kernel(Arc::clone(&k));
        SkipReport::new(k)
    });
    let mut source_sets = source_sets.into_iter();
    let mut first = CaptureThread::new(0, source_sets.next().unwrap_or_default(), &live);
    let mut others = Vec::with_capacity(threads - 1);
    for (sources, mut dispatcher) in source_sets.zip(dispatchers) {
        let mut t = CaptureThread::new(others.len() + 1, sources, &live);
        let (stop, live) = (Arc::clone(&stop), Arc::clone(&live));
        let handle = std::thread::Builder::new()
            .name(format!("capture-{}", t.id))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    t.turn(&mut dispatcher, &live, None);
                }
                t.publish_all(&live);
                dispatcher.close();
                t.reported
            })
            .map_err(SetupError::Thread)?;
        others.push(handle);
    }
    let threads_note = if threads > 1 {
        format!(", {threads} capture threads")
    } else {
        String::new()
    };
    say(&format!(
        "capturing on {}{threads_note} (filter: {}); metrics at {scheme}://{}/metrics",
        cfg.interfaces.join(", "),
        if cfg.capture.bpf.is_empty() {
            "none"
        } else {
            cfg.capture.bpf.as_str()
        },
        exporter.local_addr
    ));
    health.capturing.store(true, Ordering::Relaxed);
    if let Some(r) = &mut skip_report {
        r.publish(&live, say);
        if r.skip.loaded() {
            say(&format!(
                "kernel skip on: settled flows' data stays in the kernel (up to {} flows)",
                cfg.kernel_skip_flows
            ));
        }
    }

    let mut last_file = Instant::now();
    let mut file_failing = false;
    while !stop.load(Ordering::Relaxed) {
        first.turn(&mut pipeline.dispatcher, &live, Some((&health, say)));
        while let Ok(line) = said.try_recv() {
            say(&line);
        }
        if let Some(r) = &mut skip_report
            && r.last.elapsed() >= STATS_INTERVAL
        {
            r.publish(&live, say);
        }
        if let Some(path) = &cfg.metrics_file
            && last_file.elapsed() >= METRICS_FILE_INTERVAL
        {
            last_file = Instant::now();
            let text = exporter::render_metrics(&shared.metrics, &live, started);
            match write_atomic(path, text.as_bytes()) {
                Ok(()) => file_failing = false,
                Err(e) if !file_failing => {
                    file_failing = true;
                    say(&format!("error: {e}"));
                }
                Err(_) => {}
            }
        }
    }

    say("stopping: finishing flows in progress");
    health.capturing.store(false, Ordering::Relaxed);
    first.publish_all(&live);
    if let Some(r) = &mut skip_report {
        r.publish(&live, say);
    }
    let mut reported = std::mem::take(&mut first.reported);
    for h in others {
        // A capture thread that panicked has lost only its own counts.
        if let Ok(r) = h.join() {
            reported.extend(r);
        }
    }
    pipeline.finish();
    let mut errored = false;
    if let Some(msg) = event_log.and_then(|l| l.finish_message(Some(SHUTDOWN_EVENTS_WAIT))) {
        errored = true;
        say(&msg);
    }
    exporter.stop();
    if let Some(h) = reloader {
        let _ = h.join();
    }
    if let Some(h) = state_writer {
        let _ = h.join();
    }
    if let Some(path) = &cfg.state_file
        && let Err(e) = write_state(path, &shared)
    {
        errored = true;
        say(&format!("error: {e}"));
    }
    if let Some(path) = &cfg.metrics_file {
        let text = exporter::render_metrics(&shared.metrics, &live, started);
        if let Err(e) = write_atomic(path, text.as_bytes()) {
            errored = true;
            say(&format!("error: {e}"));
        }
    }
    let m = &shared.metrics;
    Ok(LiveOutcome {
        packets: m.packets.get(),
        tls_flows: shared.progress.tls_flows.load(Ordering::Relaxed),
        kernel_drops: reported.iter().map(|s| s.dropped).sum(),
        queue_drops: m.queue_drops.get(),
        errored,
    })
}

/// Where the reporting thread says interface events: the health and stderr.
type Reporting<'a> = (&'a Health, &'a (dyn Fn(&str) + Sync));

/// One capture thread: its handle on every interface and what it last
/// published of their kernel counters.
struct CaptureThread {
    id: usize,
    sources: Vec<LiveSource>,
    reported: Vec<KernelStats>,
    last_stats: Instant,
    /// `tlscensus_capture_thread_packets_total{thread}` of this thread.
    packets: prometheus::IntCounter,
    /// Frames read since the counter was last published.
    read: u64,
}

impl CaptureThread {
    fn new(id: usize, sources: Vec<LiveSource>, live: &LiveMetrics) -> CaptureThread {
        CaptureThread {
            id,
            reported: vec![KernelStats::default(); sources.len()],
            sources,
            last_stats: Instant::now(),
            packets: live.thread_packets.with_label_values(&[&id.to_string()]),
            read: 0,
        }
    }

    /// Waits for frames (at most the poll interval), reads what is there
    /// and sends it on; once a second publishes the counters and checks the
    /// links. Interface events are said (and shown in the metrics and the
    /// health) by the thread given `report`; the others only act on them:
    /// every thread's handle on an interface sees the same events.
    fn turn(
        &mut self,
        dispatcher: &mut super::Dispatcher,
        live: &LiveMetrics,
        report: Option<Reporting<'_>>,
    ) {
        wait_readable(&self.sources);
        for (i, src) in self.sources.iter_mut().enumerate() {
            dispatcher.set_interface(i);
            let (n, event) = src.read(READ_BUDGET, &mut |f| dispatcher.push(f));
            self.read += n as u64;
            if let (Some(ev), Some((health, say))) = (event, report) {
                on_interface_event(src, ev, live, health, say);
            }
        }
        dispatcher.flush_batches();
        if self.last_stats.elapsed() >= STATS_INTERVAL {
            self.last_stats = Instant::now();
            dispatcher.flush_counters();
            for (src, last) in self.sources.iter_mut().zip(self.reported.iter_mut()) {
                let event = src.check_link();
                if let (Some(ev), Some((health, say))) = (event, report) {
                    on_interface_event(src, ev, live, health, say);
                }
                publish_stats(src, last, live);
            }
            self.packets.inc_by(std::mem::take(&mut self.read));
        }
    }

    /// Publishes every counter (at the stop).
    fn publish_all(&mut self, live: &LiveMetrics) {
        for (src, last) in self.sources.iter_mut().zip(self.reported.iter_mut()) {
            publish_stats(src, last, live);
        }
        self.packets.inc_by(std::mem::take(&mut self.read));
    }
}

/// Publishes the kernel skip's counters and says why handles went without it.
struct SkipReport {
    skip: Arc<KernelSkip>,
    last: Instant,
    skipped: u64,
    marked: u64,
}

impl SkipReport {
    fn new(skip: Arc<KernelSkip>) -> SkipReport {
        SkipReport {
            skip,
            last: Instant::now(),
            skipped: 0,
            marked: 0,
        }
    }

    fn publish(&mut self, live: &LiveMetrics, say: &(dyn Fn(&str) + Sync)) {
        self.last = Instant::now();
        self.skip.refresh_clock();
        for note in self.skip.take_notes() {
            say(&note);
        }
        let skipped = self.skip.skipped();
        live.kernel_skipped
            .inc_by(skipped.saturating_sub(self.skipped));
        self.skipped = self.skipped.max(skipped);
        let marked = self.skip.marked.load(Ordering::Relaxed);
        live.kernel_skip_flows
            .inc_by(marked.saturating_sub(self.marked));
        self.marked = marked;
        live.kernel_skip_active.set(i64::from(self.skip.active()));
    }
}

/// Adds the kernel counters' growth since the last call to the metrics.
fn publish_stats(src: &mut LiveSource, last: &mut KernelStats, live: &LiveMetrics) {
    let now = src.stats();
    let name = [src.name.as_str()];
    // libpcap's counters are 32-bit and may wrap; a smaller value is a restart.
    let delta = |new: u64, old: u64| if new >= old { new - old } else { new };
    live.received
        .with_label_values(&name)
        .inc_by(delta(now.received, last.received));
    live.kernel_drops
        .with_label_values(&name)
        .inc_by(delta(now.dropped, last.dropped));
    live.interface_drops
        .with_label_values(&name)
        .inc_by(delta(now.if_dropped, last.if_dropped));
    *last = now;
}

fn on_interface_event(
    src: &LiveSource,
    ev: IfaceEvent,
    live: &LiveMetrics,
    health: &Health,
    say: &(dyn Fn(&str) + Sync),
) {
    let name = src.name.as_str();
    let mut down = crate::sync::lock(&health.down);
    match ev {
        IfaceEvent::Down(reason) => {
            say(&format!(
                "interface {name}: capture stopped: {reason}; it resumes when the interface is back"
            ));
            live.interface_up.with_label_values(&[name]).set(0);
            live.interface_down.with_label_values(&[name]).inc();
            down.retain(|d| !d.starts_with(&format!("{name}:")));
            down.push(format!("{name}: {reason}"));
        }
        IfaceEvent::Up => {
            say(&format!("interface {name}: capture resumed"));
            live.interface_up.with_label_values(&[name]).set(1);
            down.retain(|d| !d.starts_with(&format!("{name}:")));
        }
        IfaceEvent::ReopenFailed(reason) => {
            say(&format!("interface {name}: cannot reopen yet: {reason}"));
        }
    }
}
