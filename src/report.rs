//! Inventory output for offline runs: an aligned table, JSON or CSV, and the
//! one-line summary.
//!
//! Input: a sorted inventory snapshot and run totals. Output: text. Invariant:
//! bytes from the wire (server names) are made printable in the table and
//! defused against spreadsheet formulas in CSV; JSON escapes them itself.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::{HostRecord, VERSION_COLUMNS};

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
}

fn rfc3339(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Replaces anything but printable ASCII with `?` (for terminals).
fn printable(s: &str) -> String {
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

#[derive(Serialize)]
struct JsonHost<'a> {
    host: IpAddr,
    flows: u64,
    legacy_flows: u64,
    rejected_flows: u64,
    unanswered_flows: u64,
    versions: std::collections::BTreeMap<&'static str, u64>,
    legacy_versions: Vec<&'static str>,
    server_names: &'a std::collections::BTreeSet<String>,
    server_names_dropped: u64,
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    hosts: Vec<JsonHost<'a>>,
    summary: &'a RunTotals,
}

pub fn json(hosts: &[(IpAddr, HostRecord)], totals: &RunTotals) -> String {
    let hosts = hosts
        .iter()
        .map(|(ip, r)| JsonHost {
            host: *ip,
            flows: r.flows,
            legacy_flows: r.legacy,
            rejected_flows: r.rejected,
            unanswered_flows: r.unanswered,
            versions: VERSION_COLUMNS
                .iter()
                .zip(r.by_version)
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (*k, n))
                .collect(),
            legacy_versions: r.legacy_versions(),
            server_names: &r.server_names,
            server_names_dropped: r.names_dropped,
            first_seen: rfc3339(r.first_ns),
            last_seen: rfc3339(r.last_ns),
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&JsonReport {
        hosts,
        summary: totals,
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

/// CSV cell: quoted when needed; a leading formula character is defused.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn csv(hosts: &[(IpAddr, HostRecord)]) -> String {
    let mut out = String::from("host,flows,legacy_flows,rejected_flows,unanswered_flows");
    for v in VERSION_COLUMNS {
        let _ = write!(out, ",{v}");
    }
    out.push_str(",legacy_versions,server_names,first_seen,last_seen\n");
    for (ip, r) in hosts {
        let _ = write!(
            out,
            "{ip},{},{},{},{}",
            r.flows, r.legacy, r.rejected, r.unanswered
        );
        for n in r.by_version {
            let _ = write!(out, ",{n}");
        }
        let lv = r.legacy_versions();
        let names: Vec<&str> = r.server_names.iter().map(String::as_str).collect();
        let _ = writeln!(
            out,
            ",{},{},{},{}",
            csv_cell(&lv.join(";")),
            csv_cell(&names.join(";")),
            rfc3339(r.first_ns),
            rfc3339(r.last_ns)
        );
    }
    out
}

pub fn table(hosts: &[(IpAddr, HostRecord)], totals: &RunTotals) -> String {
    let header = [
        "HOST",
        "FLOWS",
        "LEGACY",
        "REJECTED",
        "SSL",
        "TLS1.0",
        "TLS1.1",
        "TLS1.2",
        "TLS1.3",
        "OTHER",
        "FIRST SEEN",
        "LAST SEEN",
        "SERVER NAMES",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for (ip, r) in hosts {
        let v = r.by_version;
        let mut names: Vec<String> = r
            .server_names
            .iter()
            .take(3)
            .map(|n| printable(n))
            .collect();
        let more = r.server_names.len().saturating_sub(3) as u64 + r.names_dropped;
        if more > 0 {
            names.push(format!("(+{more})"));
        }
        rows.push(vec![
            ip.to_string(),
            r.flows.to_string(),
            r.legacy.to_string(),
            r.rejected.to_string(),
            (v[0] + v[1]).to_string(),
            v[2].to_string(),
            v[3].to_string(),
            v[4].to_string(),
            v[5].to_string(),
            (v[6] + v[7]).to_string(),
            rfc3339(r.first_ns),
            rfc3339(r.last_ns),
            names.join(" "),
        ]);
    }
    let cols = header.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    if hosts.is_empty() {
        out.push_str("(no TLS flows to the target servers)\n");
    } else {
        for row in &rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let numeric = (1..=9).contains(&c);
                if c + 1 == cols {
                    line.push_str(cell);
                } else if numeric {
                    let _ = write!(line, "{cell:>w$}  ", w = widths[c]);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.push_str(&summary_line(totals));
    out.push('\n');
    out
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
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_defuses_formulas_and_quotes() {
        assert_eq!(csv_cell("=cmd|x"), "'=cmd|x");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_cell("plain.example"), "plain.example");
    }

    #[test]
    fn table_is_printable() {
        let mut r = HostRecord {
            flows: 1,
            ..Default::default()
        };
        r.server_names.insert("evil\u{1b}[31m.example".into());
        let out = table(&[(IpAddr::from([10, 0, 0, 1]), r)], &RunTotals::default());
        assert!(!out.contains('\u{1b}'));
        assert!(out.contains("evil?[31m.example"));
    }
}
