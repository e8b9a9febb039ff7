//! The live sensor's chores beside the packets: the state file written
//! every minute (and at stop), and configuration reloads on SIGHUP.
//!
//! Input: the shared census state and the reload requests. Output: the
//! state file and one line per reload on stderr. Invariant: neither ever
//! holds the capture or the workers: each runs on its own thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Shared;
use crate::error::SetupError;
use crate::metrics::{LiveMetrics, write_atomic_with};

/// How often `--state` is written.
const STATE_INTERVAL: Duration = Duration::from_secs(60);

pub(super) fn write_state(path: &std::path::Path, shared: &Shared) -> Result<(), SetupError> {
    write_atomic_with(path, |w| {
        crate::state::write_to(&shared.inventory, &shared.destinations, w)
    })
    .map_err(|e| match e {
        SetupError::Write { path, source, .. } => SetupError::Write {
            what: "state file",
            path,
            source,
        },
        other => other,
    })
}

/// Writes the state every [`STATE_INTERVAL`] until `stop`; an error is said
/// when it starts (and again when it changes), not every minute.
pub(super) fn spawn_state_writer(
    path: std::path::PathBuf,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, SetupError> {
    std::thread::Builder::new()
        .name("state".into())
        .spawn(move || {
            let mut last = Instant::now();
            let mut failing: Option<String> = None;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if last.elapsed() < STATE_INTERVAL {
                    continue;
                }
                last = Instant::now();
                match write_state(&path, &shared) {
                    Ok(()) => failing = None,
                    Err(e) => {
                        let msg = e.to_string();
                        if failing.as_deref() != Some(msg.as_str()) {
                            eprintln!("tlscensus: error: {msg}");
                            failing = Some(msg);
                        }
                    }
                }
            }
        })
        .map_err(SetupError::Thread)
}

/// What SIGHUP does in live mode: read the configuration again and put
/// its rules in use ([`super::Rules`]), on a thread of its own so capture
/// never waits for files to be read.
pub struct Reload {
    /// Set by SIGHUP.
    pub requested: Arc<AtomicBool>,
    /// Reads the command line's configuration file and every file it names
    /// again, and checks them; an error says why (with file and line).
    pub reread: Box<dyn FnMut() -> Result<Reread, String> + Send>,
}

/// A configuration read again, checked, not yet in use.
pub struct Reread {
    pub census: crate::config::Config,
    /// A services file's table.
    pub table: Option<crate::targets::services::Candidate>,
    /// Options that changed and take effect only at the next start.
    pub restart: Vec<String>,
    /// What was read (the configuration file), for the message.
    pub source: String,
}

/// How often the reload thread looks for a SIGHUP.
const RELOAD_POLL: Duration = Duration::from_millis(100);

/// Starts the reload thread: each SIGHUP has the event writer open its
/// file again (`events`), rereads the configuration and, when it is sound,
/// swaps the rules; either way it says what it did on `said` (the capture
/// loop prints it) and counts it.
pub(super) fn spawn_reloader(
    mut reload: Reload,
    shared: Arc<Shared>,
    live: Arc<LiveMetrics>,
    stop: Arc<AtomicBool>,
    said: crossbeam_channel::Sender<String>,
    events: Option<Arc<crate::events::EventHealth>>,
) -> Result<std::thread::JoinHandle<()>, SetupError> {
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(RELOAD_POLL);
                if !reload.requested.swap(false, Ordering::Relaxed) {
                    continue;
                }
                // logrotate's postrotate: the event file is opened again.
                if let Some(e) = &events {
                    e.request_reopen();
                }
                let outcome = (reload.reread)().and_then(|r| {
                    shared
                        .reload(&r.census, r.table.as_ref())
                        .map_err(|e| e.to_string())
                        .map(|()| r)
                });
                let line = match outcome {
                    Ok(r) => {
                        live.reloads_applied.inc();
                        live.config_loaded.set(unix_now());
                        applied_line(&shared, &r)
                    }
                    Err(why) => {
                        live.reloads_refused.inc();
                        format!("reload refused: {why}; the running configuration is kept")
                    }
                };
                let _ = said.try_send(line);
            }
        })
        .map_err(SetupError::Thread)
}

/// What an applied reload put in use, and what waits for a restart.
fn applied_line(shared: &Shared, r: &Reread) -> String {
    let rules = shared.rules.load();
    let services: Vec<&str> = rules
        .services
        .iter()
        .filter_map(|&i| crate::targets::services::table().get(i).map(|s| s.name))
        .collect();
    let mut line = format!(
        "reloaded {}: {} target patterns, {} SNI-less prefix ranges, services {}, {} proxy ranges, {} client labels{}; flows settled from now on are matched by them",
        r.source,
        rules.targets.len(),
        rules.prefixes.ranges(),
        if services.is_empty() {
            "none".to_string()
        } else {
            services.join(", ")
        },
        rules.proxies.ranges(),
        rules.labels.len(),
        if rules.resolver.is_some() {
            ", --resolve on"
        } else {
            ""
        },
    );
    if !r.restart.is_empty() {
        line.push_str(&format!(
            "; not applied until a restart: {}",
            r.restart.join(", ")
        ));
    }
    line
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
