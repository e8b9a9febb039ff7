//! The event log: one JSON object per inventoried TLS flow, newline-delimited,
//! written by a dedicated thread so workers never wait on the disk for long.
//!
//! Input: [`FlowEvent`] values over a bounded channel. Output: NDJSON lines in a
//! file or on stdout. Invariant: a write error (full disk, closed pipe) stops
//! the writing, is counted and reported once; it never stops the census.

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use serde::Serialize;

use std::sync::Arc;

use crate::dns::Match;
use crate::error::SetupError;
use crate::target::account_of;
use crate::tls::{HandshakeSummary, Outcome, Version};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FlowEvent {
    /// RFC 3339 capture time of the ClientHello (or of the answer when none was seen).
    pub ts: String,
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub sni: Option<String>,
    pub client_max_version: Option<String>,
    pub negotiated_version: Option<String>,
    pub server_alert: Option<String>,
    pub outcome: Outcome,
    pub legacy: bool,
    pub target: bool,
    /// How the server was recognised as a target (sni, cname, dns_address,
    /// cidr, certificate); null for other flows.
    #[serde(rename = "match")]
    pub matched: Option<Match>,
    /// The storage account, when the target name is known (from the SNI or DNS).
    pub account: Option<String>,
    /// The target name the SNI or address led to through DNS, or the
    /// certificate name that matched a target (often a wildcard).
    pub target_name: Option<String>,
    /// The ClientHello's own version field (legacy_version).
    pub client_hello_version: Option<String>,
    /// supported_versions as offered, GREASE removed; null without the extension.
    pub client_versions: Option<Vec<String>>,
    /// The ClientHello used the SSLv2-compatible record format.
    pub sslv2_hello: bool,
    /// The server sent a HelloRetryRequest before its ServerHello.
    pub hello_retry: bool,
}

impl FlowEvent {
    pub fn new(
        s: &HandshakeSummary,
        legacy: bool,
        matched: Option<(Match, Option<Arc<str>>)>,
    ) -> FlowEvent {
        let (how, name) = match matched {
            Some((how, name)) => (Some(how), name),
            None => (None, None),
        };
        let ts = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(s.ts_ns);
        let client = s.client.as_ref();
        FlowEvent {
            ts: humantime::format_rfc3339_micros(ts).to_string(),
            src_ip: s.client_ip,
            src_port: s.client_port,
            dst_ip: s.server_ip,
            dst_port: s.server_port,
            sni: s.sni().map(str::to_string),
            client_max_version: s.client_max().map(|v| v.to_string()),
            negotiated_version: s.negotiated().map(|v| v.to_string()),
            server_alert: s.alert_name(),
            outcome: s.outcome(),
            legacy,
            target: how.is_some(),
            matched: how,
            account: name.as_deref().and_then(account_of).map(str::to_string),
            target_name: match how {
                Some(Match::Cname | Match::DnsAddress | Match::Certificate) => {
                    name.as_deref().map(str::to_string)
                }
                _ => None,
            },
            client_hello_version: client.map(|c| c.hello_version.to_string()),
            client_versions: client.and_then(|c| {
                c.supported_versions.as_ref().map(|l| {
                    l.iter()
                        .filter(|v| !v.is_grease())
                        .map(Version::to_string)
                        .collect()
                })
            }),
            sslv2_hello: client.is_some_and(|c| c.sslv2_format),
            hello_retry: matches!(
                s.answer,
                Some(crate::tls::ServerAnswer::Hello { retried: true, .. })
            ),
        }
    }
}

/// Handle to the writer thread.
pub struct EventLog {
    pub sender: Sender<FlowEvent>,
    handle: JoinHandle<EventStats>,
}

#[derive(Debug, Default)]
pub struct EventStats {
    pub written: u64,
    pub failed: u64,
    pub error: Option<String>,
}

impl EventLog {
    /// Opens `dest` (a path, or `-` for stdout) and starts the writer thread.
    /// `append` keeps what the file holds (live mode: a restart must not erase
    /// the log, and `copytruncate` rotation works with appending writes).
    pub fn start(dest: &str, append: bool) -> Result<EventLog, SetupError> {
        let out: Box<dyn Write + Send> = if dest == "-" {
            Box::new(io::stdout())
        } else {
            let mut opts = std::fs::OpenOptions::new();
            if append {
                opts.append(true).create(true);
            } else {
                opts.write(true).create(true).truncate(true);
            }
            Box::new(opts.open(dest).map_err(|source| SetupError::Write {
                what: "event log",
                path: dest.to_string(),
                source,
            })?)
        };
        let (sender, rx) = bounded(4096);
        let handle = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || write_loop(rx, out, append))
            .map_err(SetupError::Thread)?;
        Ok(EventLog { sender, handle })
    }

    /// Waits for the writer like [`EventLog::finish`]; returns the one-line
    /// error message for the user when writing failed.
    pub fn finish_message(self) -> Option<String> {
        let EventStats { failed, error, .. } = self.finish();
        error.map(|e| format!("error: event log: {e} ({failed} events not written)"))
    }

    /// Waits for every queued event to be written (all senders must be dropped).
    pub fn finish(self) -> EventStats {
        drop(self.sender);
        self.handle.join().unwrap_or_else(|_| EventStats {
            error: Some("event writer thread panicked".into()),
            ..EventStats::default()
        })
    }
}

fn write_loop(rx: Receiver<FlowEvent>, out: Box<dyn Write + Send>, flush_idle: bool) -> EventStats {
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut stats = EventStats::default();
    let mut line = Vec::with_capacity(512);
    for ev in rx.iter() {
        if stats.error.is_some() {
            stats.failed += 1;
            continue;
        }
        line.clear();
        let res = serde_json::to_writer(&mut line, &ev)
            .map_err(io::Error::other)
            .and_then(|_| {
                line.push(b'\n');
                out.write_all(&line)
            });
        match res {
            // Flush when the queue is empty, so a live log is never behind.
            Ok(()) if flush_idle && rx.is_empty() => match out.flush() {
                Ok(()) => stats.written += 1,
                Err(e) => {
                    stats.failed += 1;
                    stats.error = Some(e.to_string());
                }
            },
            Ok(()) => stats.written += 1,
            Err(e) => {
                stats.failed += 1;
                stats.error = Some(e.to_string());
            }
        }
    }
    if stats.error.is_none()
        && let Err(e) = out.flush()
    {
        stats.error = Some(e.to_string());
    }
    stats
}
