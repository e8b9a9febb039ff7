//! `tlscensus read`: the offline census over capture files.
//!
//! Input: a [`ReadConfig`]. Output: the inventory snapshot, run totals and
//! one-line messages about inputs that failed. A capture thread reads the files
//! in order as one continuous stream (rotated captures continue each other) and
//! feeds the pipeline; the calling thread shows progress and relays messages.
//! Invariant: a bad input never stops the run; it is reported and counted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, unbounded};

use super::{Pipeline, SendMode, Shared};
use crate::capture::PacketSource;
use crate::capture::filter::Filter;
use crate::capture::offline::OfflineSource;
use crate::config::{Input, ReadConfig, expand_inputs};
use crate::decode::link::is_supported_link;
use crate::error::SetupError;
use crate::events::{EventCounters, EventLog, EventOutput};
use crate::inventory::HostRecord;
use crate::metrics::Metrics;
use crate::report::RunTotals;

pub struct ReadOutcome {
    /// Everything the run built (inventory, metric series): the caller
    /// decides whether freeing it is worth the time (`main` lets the process
    /// exit without: callgrind found a fifth of the main thread's work on a
    /// capture with 2,000 hosts in freeing them entry by entry).
    pub shared: Arc<Shared>,
    pub hosts: Vec<(std::net::IpAddr, HostRecord)>,
    pub totals: RunTotals,
    /// Something went wrong with an input or an output: exit status 2.
    pub errored: bool,
}

/// A message from the capture thread.
enum Note {
    Error(String),
    Info(String),
}

/// Runs the census. `say` prints one line to the user (stderr).
pub fn run(cfg: &ReadConfig, say: &mut dyn FnMut(&str)) -> Result<ReadOutcome, SetupError> {
    let census = cfg.census.clone();
    let metrics = Metrics::new(census.max_legacy_sources, None)?.with_policies(&census.policies)?;
    // The event series exist whether events are written or not.
    let event_counters = EventCounters::from_metrics(&metrics);
    let event_log = match &census.event_settings {
        Some(settings) => Some(EventLog::start(
            EventOutput::open(settings, false)?,
            event_counters,
            false,
        )?),
        None => None,
    };
    let shared = Arc::new(Shared::new(census, metrics)?);
    let pipeline = Pipeline::start(
        Arc::clone(&shared),
        SendMode::Block,
        event_log.as_ref().map(EventLog::sink),
    )?;

    let inputs = in_capture_order(expand_inputs(&cfg.inputs));
    let filter_expr = cfg.filter.clone();
    let (note_tx, note_rx) = unbounded::<Note>();
    let capture_shared = Arc::clone(&shared);
    let capture = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut pipeline = pipeline;
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut previous: Option<(PathBuf, u64)> = None;
            // Checked at start-up; compiled here for each link type met.
            let mut filter = filter_expr.and_then(|e| Filter::new(&e, 1).ok());
            for input in inputs {
                let path = match input {
                    Input::File(p) => p,
                    Input::DirNote {
                        dir,
                        not_captures,
                        special,
                    } => {
                        let _ = note_tx.send(Note::Info(dir_note(&dir, not_captures, &special)));
                        continue;
                    }
                    Input::Error(e) => {
                        failed += 1;
                        let _ = note_tx.send(Note::Error(e.to_string()));
                        continue;
                    }
                };
                let mut span = Span::default();
                let result = read_one(
                    &path,
                    &mut pipeline,
                    &mut span,
                    &mut filter,
                    &capture_shared.progress,
                );
                if let (Some((before, end)), Some(first)) = (&previous, span.first)
                    && first < *end
                {
                    let _ = note_tx.send(Note::Info(format!(
                        "{} starts {} before {} ends: time goes backwards between them (handshakes that span the two files may be reported wrong; were they taken from one capture?)",
                        path.display(),
                        humantime::format_duration(std::time::Duration::from_micros((*end - first) / 1_000)),
                        before.display()
                    )));
                }
                if span.first.is_some() {
                    previous = Some((path.clone(), span.last));
                }
                match result {
                    Ok(None) => ok += 1,
                    Ok(Some(note)) => {
                        ok += 1;
                        let _ = note_tx.send(Note::Info(note));
                    }
                    Err(msg) => {
                        failed += 1;
                        let _ = note_tx.send(Note::Error(msg));
                    }
                }
            }
            let m = &capture_shared.metrics;
            m.inputs.with_label_values(&["ok"]).inc_by(ok);
            m.inputs.with_label_values(&["failed"]).inc_by(failed);
            pipeline.finish();
            (ok, failed)
        })
        .map_err(SetupError::Thread)?;

    // Relay messages; show progress on a terminal.
    let started = Instant::now();
    let mut shown = false;
    loop {
        match note_rx.recv_timeout(Duration::from_millis(250)) {
            Ok(note) => {
                if shown {
                    eprint!("\r\x1b[2K");
                    shown = false;
                }
                match note {
                    Note::Error(m) => say(&format!("error: {m}")),
                    Note::Info(m) => say(&format!("note: {m}")),
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if cfg.progress && started.elapsed() > Duration::from_millis(500) {
                    let p = &shared.progress;
                    let compressed = p
                        .compressed
                        .lock()
                        .ok()
                        .and_then(|c| c.as_ref().map(|n| n.load(Ordering::Relaxed)));
                    let read_of = compressed.map_or(String::new(), |n| {
                        format!(" ({:.1} MB of the compressed file)", n as f64 / 1e6)
                    });
                    eprint!(
                        "\r\x1b[2K{:.1} MB{read_of}, {} packets, {} TLS flows",
                        p.bytes.load(Ordering::Relaxed) as f64 / 1e6,
                        p.packets.load(Ordering::Relaxed),
                        p.tls_flows.load(Ordering::Relaxed)
                    );
                    let _ = std::io::stderr().flush();
                    shown = true;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if shown {
        eprint!("\r\x1b[2K");
    }
    let (files_ok, files_failed) = capture
        .join()
        .map_err(|_| SetupError::ThreadPanicked("capture"))?;

    let mut errored = files_failed > 0;
    if let Some(msg) = event_log.and_then(|l| l.finish_message(None)) {
        errored = true;
        say(&msg);
    }

    if let Some(r) = &shared.rules.load().resolver {
        // The report names hosts: let the reverse-DNS answers come in.
        let left = r.wait_idle(Duration::from_secs(30));
        if left > 0 {
            say(&format!(
                "note: --resolve: {left} reverse-DNS queries still waiting after 30 s; those hosts are reported without a name"
            ));
        }
    }
    let hosts = shared.inventory.take_sorted();
    let m = &shared.metrics;
    let cut = m.cut_handshakes.get();
    if cut > 0 {
        say(&format!(
            "note: the capture's snap length cut {cut} TLS handshake direction(s) short: those flows \
             are reported with what their first bytes show (\"incomplete\": true in events; highest \
             offered and negotiated versions unknown). Capture whole packets (tcpdump -s 0) to see them."
        ));
    }
    let totals = RunTotals {
        files_read: files_ok + files_failed,
        files_failed,
        ..shared.totals(&hosts)
    };
    if let Some(path) = &cfg.metrics_file
        && let Err(e) = crate::metrics::write_atomic(path, m.render().as_bytes())
    {
        errored = true;
        say(&format!("error: {e}"));
    }
    Ok(ReadOutcome {
        hosts,
        totals,
        shared,
        errored,
    })
}

/// The files to read in capture order: by the time of each file's first
/// packet (one record read), then in natural name order (`cap.pcap2`
/// before `cap.pcap10`), so rotated sets (`tcpdump -C`, `-G`) are read as
/// they were written and a handshake that straddles two files is seen
/// whole. Standard input, which cannot be read twice, and files whose first
/// packet cannot be read keep the order they were given in, after the
/// others; notes and errors follow the files.
fn in_capture_order(inputs: Vec<Input>) -> Vec<Input> {
    let (files, others): (Vec<Input>, Vec<Input>) = inputs
        .into_iter()
        .partition(|i| matches!(i, Input::File(_)));
    // Files whose first packet cannot be read (errors to be, standard
    // input) keep the order they were given in, after the others.
    let mut keyed: Vec<(Option<u64>, Vec<NamePart>, usize, PathBuf)> = files
        .into_iter()
        .filter_map(|i| match i {
            Input::File(p) => Some(p),
            _ => None,
        })
        .enumerate()
        .map(|(i, p)| (first_packet_ns(&p), natural_key(&p), i, p))
        .collect();
    keyed.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => (x, &a.1).cmp(&(y, &b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.2.cmp(&b.2),
    });
    keyed
        .into_iter()
        .map(|(_, _, _, p)| Input::File(p))
        .chain(others)
        .collect()
}

/// The capture time of a file's first packet; not of standard input or a
/// FIFO, which can be read only once.
fn first_packet_ns(path: &Path) -> Option<u64> {
    if path == Path::new("-") || !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let mut source = OfflineSource::probe(path).ok()?;
    source.next_frame().ok().flatten().map(|f| f.ts_ns)
}

/// A piece of a file name: digits compare as numbers.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum NamePart {
    Number(u128, usize),
    Text(String),
}

/// `cap.pcap10` as ["cap.pcap", 10]: natural order for rotated names.
fn natural_key(path: &Path) -> Vec<NamePart> {
    let s = path.to_string_lossy();
    let mut out = Vec::new();
    let mut rest = s.as_ref();
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let (d, tail) = rest.split_at(digits);
            // Leading zeros and overlong runs still order consistently.
            out.push(NamePart::Number(d.parse().unwrap_or(u128::MAX), d.len()));
            rest = tail;
        } else {
            let text = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
            let (t, tail) = rest.split_at(text);
            out.push(NamePart::Text(t.to_string()));
            rest = tail;
        }
    }
    out
}

/// The note about what a directory argument held besides captures; at most
/// ten entries are named.
fn dir_note(dir: &Path, not_captures: usize, special: &[(PathBuf, &str)]) -> String {
    let mut parts = Vec::new();
    if not_captures > 0 {
        parts.push(format!(
            "skipped {not_captures} file(s) that are not pcap/pcapng captures"
        ));
    }
    if !special.is_empty() {
        let named: Vec<String> = special
            .iter()
            .take(10)
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        let more = special.len().saturating_sub(10);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        parts.push(format!("skipped {}{tail}", named.join(", ")));
    }
    format!("{}: {}", dir.display(), parts.join("; "))
}

/// Reads one file into the pipeline; the error names the file. A note when
/// some of its packets have a link type tlscensus does not decode.
/// Capture times of a file's first and last packets.
#[derive(Clone, Copy, Default)]
struct Span {
    first: Option<u64>,
    last: u64,
}

fn read_one(
    path: &Path,
    pipeline: &mut Pipeline,
    span: &mut Span,
    filter: &mut Option<Filter>,
    progress: &super::Progress,
) -> Result<Option<String>, String> {
    let mut source = OfflineSource::open(path).map_err(|e| e.to_string())?;
    *crate::sync::lock(&progress.compressed) = source.compressed_read();
    let dispatcher = &mut pipeline.dispatcher;
    let mut filter_error = None;
    // The link type changes rarely (pcapng interfaces): test it only then.
    let (mut last, mut supported) = (None, true);
    let (mut unsupported, mut example) = (0u64, 0);
    source
        .for_each_frame(|frame| {
            if span.first.is_none() {
                span.first = Some(frame.ts_ns);
            }
            span.last = frame.ts_ns;
            if let Some(f) = filter.as_mut() {
                match f.keeps(frame.linktype, frame.data, frame.wire_len) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        filter_error.get_or_insert(e);
                        return;
                    }
                }
            }
            if last != Some(frame.linktype) {
                last = Some(frame.linktype);
                supported = is_supported_link(frame.linktype);
            }
            if !supported {
                unsupported += 1;
                example = frame.linktype;
            }
            dispatcher.push(frame)
        })
        .map_err(|e| format!("{}: {e} (packets before it were read)", source.name()))?;
    if let Some(e) = filter_error {
        return Err(format!(
            "{}: {e}; its packets of that link type were skipped",
            source.name()
        ));
    }
    Ok((unsupported > 0).then(|| {
        format!(
            "{}: {unsupported} packet(s) have link type {example}, which tlscensus does not decode \
             (it reads Ethernet, Linux cooked SLL/SLL2, raw IP and BSD loopback); they were skipped",
            source.name()
        )
    }))
}
