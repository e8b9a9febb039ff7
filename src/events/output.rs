//! The event log's output: a bounded queue from the workers to one writer
//! thread, the writer (chunked writes, retries with the unwritten lines
//! held), and the counters and health it reports.
//!
//! Input: [`FlowEvent`] values over a bounded channel. Output: NDJSON lines
//! in a file or on stdout. Invariants: as the parent module says.

use crate::label::ByLabel;
use crate::policy::PolicySet;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use prometheus::IntCounter;

use super::sink::{
    Destination, FileSink, Rotation, Sink, SyslogFormat, SyslogSettings, SyslogSink,
};
use super::{FlowEvent, Layout};
use crate::error::SetupError;
pub use crate::metrics::Metrics;

/// Events queued between the workers and the writer, at most.
const QUEUE_EVENTS: usize = 4096;
/// Events a worker sends at a time (the queue holds batches: one
/// channel operation per batch, not per event).
const EVENT_BATCH: usize = 64;
/// Bytes of whole event lines held while the output fails (retried as they are).
const HOLD_BYTES: usize = 1 << 20;
/// Bytes gathered before a write while events keep coming.
const WRITE_CHUNK: usize = 64 * 1024;
/// The errno of a datagram larger than the socket can send.
const EMSGSIZE: i32 = nix::errno::Errno::EMSGSIZE as i32;
/// Pause between retries of a failing output.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// A writer that has made no progress for this long with events waiting is stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

crate::label_set! {
    /// Why an event was not written: the `reason` label of
    /// `tlscensus_events_dropped_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum EventDrop {
        /// Live mode: the writer fell behind and its queue was full.
        QueueFull = "queue_full",
        /// The output kept failing and the events held for the retry filled their buffer.
        WriteFailed = "write_failed",
        /// The reader of the pipe is gone (EPIPE): nothing more can be written.
        BrokenPipe = "broken_pipe",
        /// Still queued when the sensor stopped with the output stuck.
        Shutdown = "shutdown",
    }
}

/// The counters the writer and the workers keep (handles into the registry).
#[derive(Clone)]
pub struct EventCounters {
    pub written: IntCounter,
    pub write_errors: IntCounter,
    pub dropped: ByLabel<EventDrop, IntCounter, { EventDrop::ALL.len() }>,
}

impl EventCounters {
    pub fn from_metrics(m: &Metrics) -> EventCounters {
        EventCounters {
            written: m.events_written.clone(),
            write_errors: m.event_errors.clone(),
            dropped: ByLabel::new(|r: EventDrop| m.events_dropped.with_label_values(&[r.as_str()])),
        }
    }

    pub fn drop(&self, reason: EventDrop, n: u64) {
        self.dropped[reason].inc_by(n);
    }
}

/// What the exporter's `/healthz` reads about the event log.
#[derive(Default)]
pub struct EventHealth {
    /// Milliseconds since `epoch` of the writer's last progress (a write that
    /// moved bytes, or nothing left to write).
    progress_ms: AtomicU64,
    /// Events queued or held unwritten.
    waiting: AtomicBool,
    /// The last write error, while the output is failing.
    error: Mutex<Option<String>>,
    epoch: std::sync::OnceLock<Instant>,
    /// SIGHUP asked the writer to open its file again (logrotate moved it).
    reopen: AtomicBool,
}

impl EventHealth {
    fn now_ms(&self) -> u64 {
        let epoch = self.epoch.get_or_init(Instant::now);
        u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn progressed(&self) {
        self.progress_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Asks the writer to open its file again (within a second): after
    /// logrotate moved it away. A syslog connection is made anew.
    pub fn request_reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// `None` when healthy; else why the event log is not keeping up.
    pub fn problem(&self) -> Option<String> {
        if let Some(e) = crate::sync::lock(&self.error).clone() {
            return Some(format!("event log failing: {e}"));
        }
        let idle = self
            .now_ms()
            .saturating_sub(self.progress_ms.load(Ordering::Relaxed));
        if self.waiting.load(Ordering::Relaxed) && idle >= STUCK_AFTER.as_millis() as u64 {
            return Some(format!(
                "event log stuck: no write has completed for {} s",
                idle / 1000
            ));
        }
        None
    }
}

/// Where events go and how they are written (`--events` and the options
/// around it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSettings {
    pub dest: Destination,
    pub layout: Layout,
    pub rotation: Rotation,
    /// `None`: the receiver kind's default.
    pub syslog_format: Option<SyslogFormat>,
    pub syslog_facility: u8,
    /// The server policies whose verdicts events carry (--policy).
    pub policies: Arc<PolicySet>,
}

impl EventSettings {
    /// `dest` in `layout`, no rotation, syslog defaults (facility local0).
    pub fn new(dest: Destination, layout: Layout) -> EventSettings {
        EventSettings {
            dest,
            layout,
            rotation: Rotation::default(),
            syslog_format: None,
            syslog_facility: 16,
            policies: Arc::default(),
        }
    }
}

/// An opened event output, before the writer starts (opening may need the
/// privileges the sensor drops).
pub struct EventOutput {
    sink: Sink,
    name: String,
    layout: Layout,
    policies: Arc<PolicySet>,
}

impl EventOutput {
    /// Opens the destination. `append` keeps what a file holds (live mode:
    /// a restart must not erase the log, and `copytruncate` rotation works
    /// with appending writes). A syslog receiver is connected to at once.
    pub fn open(settings: &EventSettings, append: bool) -> Result<EventOutput, SetupError> {
        let name = settings.dest.name();
        let failed = |source| SetupError::Write {
            what: "event log",
            path: name.clone(),
            source,
        };
        let sink = match &settings.dest {
            Destination::Stdout => Sink::Stream(Box::new(io::stdout())),
            Destination::File(path) => {
                Sink::File(FileSink::open(path, append, settings.rotation).map_err(failed)?)
            }
            Destination::Syslog(target) => {
                let syslog =
                    SyslogSettings::new(target, settings.syslog_format, settings.syslog_facility);
                Sink::Syslog(SyslogSink::connect(target.clone(), syslog).map_err(failed)?)
            }
        };
        Ok(EventOutput {
            sink,
            name: name.clone(),
            layout: settings.layout,
            policies: Arc::clone(&settings.policies),
        })
    }

    /// An output for tests and benchmarks.
    pub fn from_writer(out: Box<dyn Write + Send>, name: &str) -> EventOutput {
        EventOutput {
            sink: Sink::Stream(out),
            name: name.to_string(),
            layout: Layout::Native,
            policies: Arc::default(),
        }
    }
}

/// The workers' side: a cheap clone each. In live mode a full queue drops
/// the event (counted); offline, the worker waits for the writer.
#[derive(Clone)]
pub struct EventSink {
    tx: Sender<Vec<FlowEvent>>,
    /// Events in the queue (its batches' lengths summed).
    queued: Arc<AtomicU64>,
    wait: bool,
    counters: EventCounters,
}

impl EventSink {
    /// Sends one event on its own.
    pub fn send(&self, ev: FlowEvent) {
        self.send_batch(vec![ev]);
    }

    /// Adds `ev` to a worker's `pending` events, sending them when they
    /// make a batch.
    pub fn push(&self, pending: &mut Vec<FlowEvent>, ev: FlowEvent) {
        pending.push(ev);
        if pending.len() >= EVENT_BATCH {
            self.flush(pending);
        }
    }

    /// Sends a worker's `pending` events.
    pub fn flush(&self, pending: &mut Vec<FlowEvent>) {
        if !pending.is_empty() {
            // (a batch's room: the queue holds at most QUEUE_EVENTS events' worth)
            self.send_batch(std::mem::replace(pending, Vec::with_capacity(EVENT_BATCH)));
        }
    }

    fn send_batch(&self, batch: Vec<FlowEvent>) {
        let n = batch.len() as u64;
        // Counted before it is sent: the writer subtracts what it takes.
        self.queued.fetch_add(n, Ordering::Relaxed);
        let lost = if self.wait {
            // Disconnected only if the writer died; then nothing can be written.
            self.tx.send(batch).err().map(|_| EventDrop::Shutdown)
        } else {
            match self.tx.try_send(batch) {
                Ok(()) => None,
                Err(TrySendError::Full(_)) => Some(EventDrop::QueueFull),
                Err(TrySendError::Disconnected(_)) => Some(EventDrop::Shutdown),
            }
        };
        if let Some(why) = lost {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.counters.drop(why, n);
        }
    }
}

/// Handle to the writer thread.
pub struct EventLog {
    sink: EventSink,
    done: Receiver<EventStats>,
    health: Arc<EventHealth>,
}

#[derive(Debug, Default)]
pub struct EventStats {
    pub written: u64,
    /// Events not written (any reason but a broken pipe).
    pub lost: u64,
    /// The reader of a pipe went away: not an error (`| head`).
    pub broken_pipe: bool,
    /// The last write error, if writing was failing at the end.
    pub error: Option<String>,
}

impl EventLog {
    /// Starts the writer thread. `live`: workers never wait for it (a full
    /// queue drops events, counted). Errors are said on stderr when they
    /// happen, and when writing resumes.
    pub fn start(
        output: EventOutput,
        counters: EventCounters,
        live: bool,
    ) -> Result<EventLog, SetupError> {
        let (tx, rx) = bounded(QUEUE_EVENTS / EVENT_BATCH);
        let (done_tx, done) = bounded(1);
        let health = Arc::new(EventHealth::default());
        health.progressed();
        let queued = Arc::new(AtomicU64::new(0));
        let mut held = Vec::with_capacity(WRITE_CHUNK);
        (output.layout).header(&output.policies, crate::text::unix_now_ns(), &mut held);
        let writer = Writer {
            layout: output.layout,
            policies: output.policies,
            out: output.sink,
            line: Vec::new(),
            closing: false,
            events_in_file: false,
            said_too_large: false,
            queued: Arc::clone(&queued),
            name: output.name,
            counters: counters.clone(),
            health: Arc::clone(&health),
            held,
            ends: VecDeque::new(),
            done_bytes: 0,
            failing: None,
            failures: 0,
            broken: false,
            stats: EventStats::default(),
        };
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let stats = writer.run(rx);
                let _ = done_tx.send(stats);
            })
            .map_err(SetupError::Thread)?;
        Ok(EventLog {
            sink: EventSink {
                tx,
                queued,
                wait: !live,
                counters,
            },
            done,
            health,
        })
    }

    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    pub fn health(&self) -> Arc<EventHealth> {
        Arc::clone(&self.health)
    }

    /// Waits for the writer to write what is queued (every other sink must be
    /// dropped), at most `limit` (live mode: a stuck disk must not hold the
    /// shutdown); returns the user's one-line error message, if any.
    pub fn finish_message(self, limit: Option<Duration>) -> Option<String> {
        let stats = self.finish(limit);
        if stats.broken_pipe {
            return None;
        }
        stats.error.map(|e| {
            format!(
                "error: event log: {e} ({} events written, {} not written)",
                stats.written, stats.lost
            )
        })
    }

    pub fn finish(self, limit: Option<Duration>) -> EventStats {
        let EventLog { sink, done, .. } = self;
        let counters = sink.counters.clone();
        let queued = sink.queued.load(Ordering::Relaxed);
        drop(sink);
        let got = match limit {
            Some(d) => done.recv_timeout(d).ok(),
            None => done.recv().ok(),
        };
        got.unwrap_or_else(|| {
            counters.drop(EventDrop::Shutdown, queued);
            EventStats {
                written: counters.written.get(),
                lost: queued,
                error: Some(format!(
                    "the output is stuck (no write completed within {} s of stopping)",
                    limit.map_or(0, |d| d.as_secs())
                )),
                ..EventStats::default()
            }
        })
    }
}

/// The writer thread: whole lines gathered in `held`, written with plain
/// `write` calls so every byte's fate is known; `ends` holds the end offset
/// of each held line, so `written` counts lines whose last byte went out.
struct Writer {
    layout: Layout,
    policies: Arc<PolicySet>,
    out: Sink,
    /// One event's line, before it becomes a syslog message.
    line: Vec<u8>,
    /// The queue is closed: the last lines are being written (no rotation).
    closing: bool,
    /// An event line went into the current file (a file is rotated only then).
    events_in_file: bool,
    /// A message too large for a datagram was reported (once).
    said_too_large: bool,
    /// Events in the queue (the sinks add, the writer subtracts).
    queued: Arc<AtomicU64>,
    name: String,
    counters: EventCounters,
    health: Arc<EventHealth>,
    held: Vec<u8>,
    ends: VecDeque<usize>,
    /// Bytes of `held` already written.
    done_bytes: usize,
    /// The error the output is failing with, and when to retry.
    failing: Option<(String, Instant)>,
    failures: u64,
    broken: bool,
    stats: EventStats,
}

impl Writer {
    fn run(mut self, rx: Receiver<Vec<FlowEvent>>) -> EventStats {
        loop {
            let wait = match &self.failing {
                Some((_, retry_at)) => retry_at.saturating_duration_since(Instant::now()),
                None if self.held.is_empty() => Duration::from_secs(1),
                None => Duration::ZERO,
            };
            match rx.recv_timeout(wait) {
                Ok(batch) => {
                    self.hold_all(&batch);
                    // Gather what is queued, up to a chunk, before writing.
                    while self.held.len() < WRITE_CHUNK
                        && let Ok(batch) = rx.try_recv()
                    {
                        self.hold_all(&batch);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.held.is_empty() {
                self.reopen_if_asked();
            }
            let due = self
                .failing
                .as_ref()
                .is_none_or(|(_, at)| Instant::now() >= *at);
            if due && !self.held.is_empty() {
                // Marked first: a write that blocks (hung disk, stalled
                // reader) must show as stuck while it blocks.
                self.health.waiting.store(true, Ordering::Relaxed);
                self.write_held();
            }
            self.health
                .waiting
                .store(!self.held.is_empty() || !rx.is_empty(), Ordering::Relaxed);
            if self.held.is_empty() {
                self.health.progressed();
            }
        }
        // The queue is closed: a last try for what is held, and the
        // layout's closing lines.
        self.closing = true;
        if !self.broken && self.failing.is_none() {
            self.layout
                .footer(crate::text::unix_now_ns(), &mut self.held);
        }
        if !self.held.is_empty() && !self.broken {
            self.write_held();
        }
        let left = self.ends.len() as u64;
        if left > 0 {
            self.counters.drop(EventDrop::WriteFailed, left);
            self.stats.lost += left;
        }
        self.stats.error = self.failing.take().map(|(e, _)| e);
        self.stats
    }

    /// Holds a batch taken off the queue.
    fn hold_all(&mut self, batch: &[FlowEvent]) {
        self.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        batch.iter().for_each(|ev| self.hold(ev));
    }

    /// Adds one event's line to `held`, or drops it when the output is gone
    /// or failing with the hold buffer full.
    fn hold(&mut self, ev: &FlowEvent) {
        if self.broken {
            self.counters.drop(EventDrop::BrokenPipe, 1);
            return;
        }
        let start = self.held.len();
        match &self.out {
            Sink::Syslog(s) => {
                self.line.clear();
                self.layout.write(ev, &self.policies, &mut self.line);
                s.settings
                    .message(ev, &self.line, &s.target, &mut self.held);
            }
            _ => self.layout.write(ev, &self.policies, &mut self.held),
        }
        if self.failing.is_some() && self.held.len() > HOLD_BYTES {
            self.held.truncate(start);
            self.counters.drop(EventDrop::WriteFailed, 1);
            self.stats.lost += 1;
            return;
        }
        self.ends.push_back(self.held.len());
    }

    /// Writes what is held; counts the lines that went out whole.
    fn write_held(&mut self) {
        while self.done_bytes < self.held.len() {
            match self.send_some() {
                Ok(0) => {
                    self.fail(io::Error::new(io::ErrorKind::WriteZero, "wrote nothing"));
                    return;
                }
                Ok(n) => {
                    self.done_bytes += n;
                    self.health.progressed();
                    let mut whole = 0;
                    while self.ends.front().is_some_and(|&e| e <= self.done_bytes) {
                        self.ends.pop_front();
                        whole += 1;
                    }
                    self.counters.written.inc_by(whole);
                    self.stats.written += whole;
                    self.events_in_file |= whole > 0;
                    if let Some((_, _)) = self.failing.take() {
                        eprintln!(
                            "tlscensus: event log {}: writing again after {} failed attempt(s)",
                            self.name, self.failures
                        );
                        *crate::sync::lock(&self.health.error) = None;
                        self.failures = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A message larger than a datagram can carry (a hello with
                // thousands of suites, in ECS) can never be sent: it alone
                // is dropped, counted, and the writing goes on.
                Err(e)
                    if e.raw_os_error() == Some(EMSGSIZE)
                        && matches!(self.out, Sink::Syslog(_)) =>
                {
                    if let Some(end) = self.ends.pop_front() {
                        self.done_bytes = end;
                    }
                    self.counters.drop(EventDrop::WriteFailed, 1);
                    self.stats.lost += 1;
                    if !std::mem::replace(&mut self.said_too_large, true) {
                        eprintln!(
                            "tlscensus: event log {}: {e}: an event too large for one message is dropped and counted (reason=\"write_failed\"); use syslog over TCP or a file for every event whole",
                            self.name
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    // The reader is gone for good: `| head` is done.
                    self.broken = true;
                    let left = self.ends.len() as u64;
                    self.counters.drop(EventDrop::BrokenPipe, left);
                    self.held.clear();
                    self.ends.clear();
                    self.done_bytes = 0;
                    self.stats.broken_pipe = true;
                    return;
                }
                Err(e) => {
                    self.fail(e);
                    return;
                }
            }
        }
        if let Sink::Stream(out) = &mut self.out {
            let _ = out.flush();
        }
        self.held.clear();
        self.done_bytes = 0;
        // (a file holding no event yet, only a header, is never rotated)
        if let Sink::File(f) = &self.out
            && f.due()
            && self.events_in_file
            && !self.closing
        {
            self.switch_file(FileSink::rotate);
        }
    }

    /// Writes from `done_bytes` on: bytes as the output takes them, or one
    /// syslog message whole.
    fn send_some(&mut self) -> io::Result<usize> {
        let rest = &self.held[self.done_bytes..];
        match &mut self.out {
            Sink::Stream(out) => out.write(rest),
            Sink::File(f) => f.write(rest),
            Sink::Syslog(s) => {
                let end = self.ends.front().map_or(self.held.len(), |&e| e);
                let message = &self.held[self.done_bytes..end];
                s.send(message).map(|()| message.len())
            }
        }
    }

    /// Closes the file (with the layout's closing lines), lets `how` move
    /// it away or open it again, and starts the new one with the layout's
    /// header. Called with nothing held.
    fn switch_file(&mut self, how: fn(&mut FileSink) -> io::Result<()>) {
        let Sink::File(f) = &mut self.out else {
            return;
        };
        let now = crate::text::unix_now_ns();
        let mut lines = Vec::new();
        self.layout.footer(now, &mut lines);
        let closed = f.write_all(&lines);
        match closed.and_then(|()| how(f)) {
            Ok(()) => {
                lines.clear();
                self.layout.header(&self.policies, now, &mut lines);
                self.held.extend_from_slice(&lines);
                self.events_in_file = false;
            }
            Err(e) => self.fail(e),
        }
    }

    /// What SIGHUP asked: the file opened again, or a new syslog connection.
    fn reopen_if_asked(&mut self) {
        if !self.health.reopen.swap(false, Ordering::Relaxed) {
            return;
        }
        match &mut self.out {
            Sink::File(_) => self.switch_file(FileSink::reopen),
            Sink::Syslog(s) => s.disconnect(),
            Sink::Stream(_) => {}
        }
    }

    /// Counts a failed write, says it at once (again only when the error
    /// changes), and schedules a retry.
    fn fail(&mut self, e: io::Error) {
        self.failures += 1;
        let msg = e.to_string();
        let new = self.failing.as_ref().is_none_or(|(m, _)| *m != msg);
        if new {
            eprintln!(
                "tlscensus: error: event log {}: {msg}; retrying every {} s, holding up to {} KiB of events",
                self.name,
                RETRY_EVERY.as_secs(),
                HOLD_BYTES / 1024
            );
            *crate::sync::lock(&self.health.error) = Some(msg.clone());
        }
        self.failing = Some((msg, Instant::now() + RETRY_EVERY));
        // Counted after the health check shows it: a reader that sees the
        // count sees the failure too.
        self.counters.write_errors.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::*;

    /// An output that fails with `error` while `fail` is set, then takes
    /// everything; what it took is in `got`.
    #[derive(Clone, Default)]
    struct Flaky {
        fail: Arc<Mutex<Option<io::ErrorKind>>>,
        got: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Flaky {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if let Some(kind) = *self.fail.lock().unwrap() {
                return Err(io::Error::from(kind));
            }
            // Short writes: at most 100 bytes at a time.
            let n = b.len().min(100);
            self.got.lock().unwrap().extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn event(port: u16) -> FlowEvent {
        let mut flow = HandshakeSummary::hello_for_test([10, 0, 0, 1], [10, 0, 0, 2], 0x0303, None);
        flow.client_port = port;
        flow.ts_ns = 1_767_225_600_000_000_000;
        FlowEvent::of_flow_for_test(flow)
    }

    fn lines(out: &Flaky) -> usize {
        out.got
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// regression_12: after ENOSPC the log is retried and resumes when space
    /// is freed; `written` counts only lines that reached the output; the
    /// failure shows in the health check while it lasts.
    #[test]
    fn event_log_resumes_after_write_errors() {
        let m = Metrics::new(1, None).unwrap();
        let out = Flaky::default();
        *out.fail.lock().unwrap() = Some(io::ErrorKind::StorageFull);
        let log = EventLog::start(
            EventOutput::from_writer(Box::new(out.clone()), "flaky"),
            EventCounters::from_metrics(&m),
            true,
        )
        .unwrap();
        let sink = log.sink();
        let health = log.health();
        for p in 0..10 {
            sink.send(event(p));
        }
        wait_for("the first error", || m.event_errors.get() >= 1);
        assert_eq!(m.events_written.get(), 0);
        assert!(health.problem().is_some_and(|p| p.contains("failing")));
        *out.fail.lock().unwrap() = None; // space freed
        wait_for("the retry", || m.events_written.get() == 10);
        assert_eq!(lines(&out), 10);
        assert_eq!(health.problem(), None);
        sink.send(event(99));
        drop(sink);
        let stats = log.finish(None);
        assert_eq!((stats.written, stats.lost, stats.error), (11, 0, None));
        assert_eq!(m.events_written.get(), 11);
    }

    /// A broken pipe ends the writing quietly; the events are counted as dropped.
    /// logrotate moves the file away and sends SIGHUP: the writer opens the
    /// path again, closing the old file with the layout's last line and
    /// starting the new one with its header; no event is lost.
    #[test]
    fn event_log_reopens_its_file_on_request() {
        let m = Metrics::new(1, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssl.log");
        let moved = dir.path().join("ssl.log.1");
        let settings = EventSettings::new(Destination::File(path.clone()), Layout::Zeek);
        let log = EventLog::start(
            EventOutput::open(&settings, true).unwrap(),
            EventCounters::from_metrics(&m),
            true,
        )
        .unwrap();
        let sink = log.sink();
        let health = log.health();
        for p in 0..3 {
            sink.send(event(p));
        }
        wait_for("the first events", || m.events_written.get() == 3);
        std::fs::rename(&path, &moved).unwrap();
        health.request_reopen();
        wait_for("the new file", || path.exists());
        for p in 3..5 {
            sink.send(event(p));
        }
        drop(sink);
        let stats = log.finish(None);
        assert_eq!((stats.written, stats.lost), (5, 0));
        for (file, rows) in [(&moved, 3), (&path, 2)] {
            let text = std::fs::read_to_string(file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.first(), Some(&"#separator \\x09"), "{text}");
            assert!(lines.last().unwrap().starts_with("#close\t"), "{text}");
            assert_eq!(lines.iter().filter(|l| !l.starts_with('#')).count(), rows);
        }
    }

    /// A message no datagram can carry (an ECS event of a hello offering
    /// 20,000 suites) is dropped and counted; the events after it go out.
    #[test]
    fn event_log_drops_what_no_datagram_carries() {
        use crate::tls::fingerprint::Held;
        use crate::tls::summary::{ClientDetail, SessionId};
        let m = Metrics::new(1, None).unwrap();
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let port = receiver.local_addr().unwrap().port();
        let settings = EventSettings::new(
            Destination::parse(&format!("syslog:udp:127.0.0.1:{port}")).unwrap(),
            Layout::Ecs,
        );
        let log = EventLog::start(
            EventOutput::open(&settings, true).unwrap(),
            EventCounters::from_metrics(&m),
            false,
        )
        .unwrap();
        let sink = log.sink();
        let budget = Arc::new(std::sync::atomic::AtomicUsize::new(1 << 20));
        let mut huge = event(1);
        if let Some(c) = huge.flow.client.as_mut() {
            c.detail = Some(Arc::new(ClientDetail {
                ciphers: (0..20000u16).collect(),
                session_id: SessionId::default(),
                held: Held::take(&budget, 1).unwrap(),
            }));
        }
        sink.send(huge);
        sink.send(event(2));
        drop(sink);
        let stats = log.finish(None);
        assert_eq!((stats.written, stats.lost), (1, 1));
        let mut buf = vec![0u8; 65536];
        let n = receiver.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.contains("\"port\":2,") || text.contains("\"port\":2}"),
            "{text}"
        );
    }

    #[test]
    fn event_log_broken_pipe_is_quiet() {
        let m = Metrics::new(1, None).unwrap();
        let out = Flaky::default();
        *out.fail.lock().unwrap() = Some(io::ErrorKind::BrokenPipe);
        let log = EventLog::start(
            EventOutput::from_writer(Box::new(out), "pipe"),
            EventCounters::from_metrics(&m),
            false,
        )
        .unwrap();
        let sink = log.sink();
        for p in 0..5 {
            sink.send(event(p));
        }
        drop(sink);
        assert_eq!(log.finish_message(None), None);
        let dropped = m.events_dropped.with_label_values(&["broken_pipe"]).get();
        assert_eq!((m.events_written.get(), dropped), (0, 5));
    }

    /// An output that blocks forever.
    struct Hung(crossbeam_channel::Receiver<()>);

    impl Write for Hung {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            Err(io::Error::other("released"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// regression_12: a hung output never blocks the workers in live mode
    /// (a full queue drops and counts), and the stop does not wait for it.
    #[test]
    fn event_log_hung_output_drops_and_stops() {
        let m = Metrics::new(1, None).unwrap();
        let (_release, rx) = crossbeam_channel::bounded::<()>(0);
        let log = EventLog::start(
            EventOutput::from_writer(Box::new(Hung(rx)), "hung"),
            EventCounters::from_metrics(&m),
            true,
        )
        .unwrap();
        let sink = log.sink();
        let started = Instant::now();
        for p in 0..(QUEUE_EVENTS as u16 + 5000) {
            sink.send(event(p));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let full = m.events_dropped.with_label_values(&["queue_full"]).get();
        // (the writer took up to a chunk of lines off the queue before it hung)
        assert!(full >= 4000, "{full}");
        drop(sink);
        let started = Instant::now();
        let msg = log.finish_message(Some(Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(msg.is_some_and(|m| m.contains("stuck")));
        assert!(m.events_dropped.with_label_values(&["shutdown"]).get() > 0);
    }
}
