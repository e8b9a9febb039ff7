//! Inventory output: an aligned table, JSON or CSV, by host or by client
//! fingerprint, and the one-line summary.
//!
//! Input: a sorted inventory snapshot, run totals and what names hosts and
//! software ([`Who`]: client labels, passive host names). Output: text. Invariant: bytes
//! from the wire (server names) are made printable in the table and defused
//! against spreadsheet formulas in CSV; JSON escapes them itself.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::cli::{By, Format};
use crate::hosts::Who;
use crate::inventory::{HostFingerprint, HostRecord};

mod destinations;
mod fingerprints;
mod hosts;
mod policies;
#[cfg(test)]
mod tests;

pub use destinations::*;
pub use fingerprints::*;
pub use hosts::*;
pub use policies::*;

/// What the report shows beside the inventory: labels and host names.
pub type Context<'a> = Who<'a>;

trait Describe<'a> {
    fn fp_label(self, f: &HostFingerprint) -> Option<&'a str>;
    /// The host's name as of its last flow, and the name's source.
    fn host_name(self, ip: IpAddr, r: &HostRecord) -> (Option<String>, Option<&'static str>);
}

impl<'a> Describe<'a> for Who<'a> {
    fn fp_label(self, f: &HostFingerprint) -> Option<&'a str> {
        self.label(f.fingerprint.ja4())
    }

    fn host_name(self, ip: IpAddr, r: &HostRecord) -> (Option<String>, Option<&'static str>) {
        match self.name(ip, r.last_ns) {
            Some((n, src)) => (Some(n.to_string()), Some(src.as_str())),
            None => (None, None),
        }
    }
}

/// Totals of one run.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RunTotals {
    pub files_read: u64,
    pub files_failed: u64,
    pub packets: u64,
    pub bytes: u64,
    /// TLS flows seen, targets or not.
    pub tls_flows: u64,
    /// Flows in the inventory (targets, or all with --all).
    pub inventoried_flows: u64,
    pub hosts: u64,
    pub legacy_flows: u64,
    pub legacy_hosts: u64,
    pub rejected_flows: u64,
    pub non_tls_flows: u64,
    pub hosts_dropped: u64,
    /// What the capture failed to show: upstream loss, one-way flows.
    pub mirror: crate::mirror::MirrorSummary,
    /// Per server policy (--policy), in configuration order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyTotal>,
}

/// A grouped report as JSON: `{"KEY": rows, "summary": totals}`, pretty,
/// with a final newline (the fingerprint, destination and policy views).
pub(super) fn json_doc<T: Serialize + ?Sized>(
    key: &'static str,
    rows: &T,
    totals: &RunTotals,
) -> String {
    struct Doc<'a, T: ?Sized> {
        key: &'static str,
        rows: &'a T,
        summary: &'a RunTotals,
    }
    impl<T: Serialize + ?Sized> Serialize for Doc<'_, T> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut m = s.serialize_map(Some(2))?;
            m.serialize_entry(self.key, self.rows)?;
            m.serialize_entry("summary", self.summary)?;
            m.end()
        }
    }
    let doc = Doc {
        key,
        rows,
        summary: totals,
    };
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

pub(super) fn rfc3339(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `tlscensus services`: the built-in service table.
pub fn services_table() -> String {
    let mut rows = vec![vec![
        "SERVICE".to_string(),
        "TLS 1.0/1.1 END".to_string(),
        "SERVICE TAGS".to_string(),
        "ENDPOINTS".to_string(),
    ]];
    for s in crate::targets::services::table() {
        rows.push(vec![
            s.name.to_string(),
            s.tls_end.to_string(),
            if s.service_tags.is_empty() {
                "-".to_string()
            } else {
                s.service_tags.join(",")
            },
            crate::targets::services::patterns(s)
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    let mut out = String::new();
    aligned(&rows, |_| false, &mut out);
    out.push_str("\nSources:\n");
    for s in crate::targets::services::table() {
        let _ = writeln!(out, "  {}: {} -- {}", s.name, s.title, s.source);
    }
    out.push_str(
        "\n--services takes these names, storage (every storage-* row) or microsoft (all); the default is storage-blob.\n",
    );
    out
}

/// The inventory grouped `by` host or fingerprint, in `format`.
pub fn render(
    by: By,
    format: Format,
    hosts: &[(IpAddr, HostRecord)],
    destinations: &[Destination],
    totals: &RunTotals,
    cx: Context<'_>,
) -> String {
    match by {
        By::Destination => match format {
            Format::Table => destinations_table(destinations, totals, cx),
            Format::Json => destinations_json(destinations, totals, cx),
            Format::Csv => destinations_csv(destinations, cx),
        },
        By::Policy => {
            let rows = by_policy(hosts, destinations, totals, cx);
            match format {
                Format::Table => policies_table(&rows, totals),
                Format::Json => policies_json(&rows, totals),
                Format::Csv => policies_csv(&rows),
            }
        }
        By::Host => match format {
            Format::Table => table(hosts, totals, cx),
            Format::Json => json(hosts, totals, cx),
            Format::Csv => csv(hosts, cx),
        },
        By::Fingerprint => {
            let rows = by_fingerprint(hosts, cx);
            match format {
                Format::Table => fingerprints_table(&rows, totals, cx),
                Format::Json => fingerprints_json(&rows, totals),
                Format::Csv => fingerprints_csv(&rows, cx),
            }
        }
    }
}

/// As [`render`], written to `out`; the host reports are written as they
/// are made (the table makes its rows twice: for the widths, then to
/// write them).
pub fn render_to(
    by: By,
    format: Format,
    hosts: &[(IpAddr, HostRecord)],
    destinations: &[Destination],
    totals: &RunTotals,
    cx: Context<'_>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match (by, format) {
        (By::Host, Format::Csv) => csv_to(hosts, cx, out),
        (By::Host, Format::Json) => json_to(hosts, totals, cx, out),
        (By::Host, Format::Table) => hosts::table_to(hosts, totals, cx, out),
        _ => out.write_all(render(by, format, hosts, destinations, totals, cx).as_bytes()),
    }
}

/// At most about `max` bytes of `s`, cut at a character boundary with `...`.
pub(super) fn short(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Replaces anything but printable ASCII with `?` (for terminals).
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

pub fn summary_line(t: &RunTotals) -> String {
    let mut s = format!(
        "{} hosts, {} TLS flows inventoried ({} legacy from {} hosts, {} rejected by the server); {} TLS flows seen in all, {} non-TLS; {} packets in {} file{}",
        t.hosts,
        t.inventoried_flows,
        t.legacy_flows,
        t.legacy_hosts,
        t.rejected_flows,
        t.tls_flows,
        t.non_tls_flows,
        t.packets,
        t.files_read,
        if t.files_read == 1 { "" } else { "s" },
    );
    if t.files_failed > 0 {
        let _ = write!(s, ", {} failed", t.files_failed);
    }
    if t.hosts_dropped > 0 {
        let _ = write!(
            s,
            "; {} flows of hosts beyond --max-hosts not listed",
            t.hosts_dropped
        );
    }
    for note in mirror_notes(&t.mirror) {
        let _ = write!(s, "; {note}");
    }
    s
}

/// What the summary says of the capture's blind spots, if anything: one
/// direction only (the whole capture, or client blocks), and upstream loss.
pub fn mirror_notes(m: &crate::mirror::MirrorSummary) -> Vec<String> {
    let mut notes = Vec::new();
    let opened = m.both_ways + m.one_way();
    if m.one_sided() {
        let side = match (m.client_only > 0, m.server_only > 0) {
            (true, false) => "client to server",
            (false, true) => "server to client",
            _ => "one way",
        };
        notes.push(format!(
            "one direction only: {} of {opened} TCP connections whose opening was captured show only {side} (a one-sided mirror, or routes that bypass it)",
            m.one_way()
        ));
    } else if !m.one_sided_blocks.is_empty() {
        let n = m.one_sided_blocks.len();
        let shown: Vec<&str> = m
            .one_sided_blocks
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        notes.push(format!(
            "one direction only for {n} client block{}: {}{}",
            if n == 1 { "" } else { "s" },
            shown.join(", "),
            if n > 3 { ", ..." } else { "" }
        ));
    }
    if m.lost_bytes > 0 {
        notes.push(format!(
            "upstream loss: {:.2}% of the handshake bytes never reached the capture ({} handshake{} lost to gaps)",
            100.0 * m.loss_ratio(),
            m.handshake_gaps,
            if m.handshake_gaps == 1 { "" } else { "s" }
        ));
    }
    notes
}
