//! The host view: one row per client host, as JSON, CSV or a table.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::{HostFingerprint, HostRecord, VERSION_COLUMNS};

use super::*;

/// The fingerprint a host table names: the one with most legacy flows,
/// then most flows.
pub(super) fn main_fingerprint(r: &HostRecord) -> Option<&HostFingerprint> {
    r.fingerprints.iter().max_by(|a, b| {
        (a.legacy, a.flows)
            .cmp(&(b.legacy, b.flows))
            .then(b.fingerprint.ja4().cmp(a.fingerprint.ja4()))
    })
}

#[derive(Serialize)]
pub(super) struct JsonHost<'a> {
    host: IpAddr,
    host_name: Option<String>,
    host_name_source: Option<&'static str>,
    flows: u64,
    legacy_flows: u64,
    rejected_flows: u64,
    unanswered_flows: u64,
    versions: std::collections::BTreeMap<&'static str, u64>,
    legacy_versions: Vec<&'static str>,
    server_names: Vec<&'a str>,
    server_names_dropped: u64,
    fingerprints: Vec<JsonFingerprint<'a>>,
    fingerprints_dropped: u64,
    /// Services of the host's target flows, and of its legacy ones.
    services: Vec<&'static str>,
    legacy_services: Vec<&'static str>,
    /// Server policies (--policy) some hello would fail (only with policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    policies_failed: Option<Vec<&'a str>>,
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
pub(super) struct JsonFingerprint<'a> {
    ja4: &'a str,
    ja3_hash: Option<String>,
    label: Option<&'a str>,
    flows: u64,
    legacy_flows: u64,
    max_offered_version: Option<String>,
    versions: Vec<&'static str>,
    server_names: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policies_failed: Option<Vec<&'a str>>,
}

/// The names of the policies in `bits`, when any policy is configured.
pub(super) fn failed_names<'a>(cx: Context<'a>, bits: u16) -> Option<Vec<&'a str>> {
    (!cx.policies.is_empty()).then(|| cx.policy_names(bits))
}

#[derive(Serialize)]
pub(super) struct JsonReport<'a> {
    hosts: HostRows<'a>,
    summary: &'a RunTotals,
}

/// The hosts of a JSON report, each made as it is serialized: a report
/// of 100,000 hosts is never held twice.
pub(super) struct HostRows<'a> {
    hosts: &'a [(IpAddr, HostRecord)],
    cx: Context<'a>,
}

impl Serialize for HostRows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.hosts.len()))?;
        for (ip, r) in self.hosts {
            seq.serialize_element(&json_host(*ip, r, self.cx))?;
        }
        seq.end()
    }
}

pub(super) fn json_host<'a>(ip: IpAddr, r: &'a HostRecord, cx: Context<'a>) -> JsonHost<'a> {
    let (host_name, host_name_source) = cx.host_name(ip, r);
    JsonHost {
        host: ip,
        host_name,
        host_name_source,
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
        server_names: r.sorted_names(),
        server_names_dropped: r.names_dropped,
        fingerprints: r
            .fingerprints
            .iter()
            .map(|f| JsonFingerprint {
                ja4: f.fingerprint.ja4(),
                ja3_hash: f.fingerprint.ja3_hash(),
                label: cx.fp_label(f),
                flows: f.flows,
                legacy_flows: f.legacy,
                max_offered_version: f.max_offered.map(|v| v.to_string()),
                versions: f.versions(),
                server_names: r.names_of(f),
                policies_failed: failed_names(cx, f.policy_fails),
            })
            .collect(),
        fingerprints_dropped: r.fingerprints_dropped,
        services: HostRecord::service_names(r.services),
        legacy_services: HostRecord::service_names(r.legacy_services),
        policies_failed: failed_names(cx, r.policy_fails),
        first_seen: rfc3339(r.first_ns),
        last_seen: rfc3339(r.last_ns),
    }
}

pub fn json(hosts: &[(IpAddr, HostRecord)], totals: &RunTotals, cx: Context<'_>) -> String {
    let mut out = Vec::new();
    let _ = json_to(hosts, totals, cx, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The JSON host report, written as it is made.
pub fn json_to(
    hosts: &[(IpAddr, HostRecord)],
    totals: &RunTotals,
    cx: Context<'_>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let doc = JsonReport {
        hosts: HostRows { hosts, cx },
        summary: totals,
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

/// CSV cell: quoted when needed; a leading formula character is defused.
pub(super) fn csv_cell(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    csv_cell_to(&mut out, s);
    String::from_utf8(out).unwrap_or_default()
}

/// [`csv_cell`] appended to `out`.
pub(super) fn csv_cell_to(out: &mut Vec<u8>, s: &str) {
    let defuse = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    // (bytes: a char-set search costs several times as much per byte)
    let quote = s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    if quote {
        out.push(b'"');
    }
    if defuse {
        out.push(b'\'');
    }
    if quote {
        for part in s.split_inclusive('"') {
            out.extend_from_slice(part.as_bytes());
            if part.ends_with('"') {
                out.push(b'"');
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

pub fn csv(hosts: &[(IpAddr, HostRecord)], cx: Context<'_>) -> String {
    let mut out = Vec::new();
    let _ = csv_to(hosts, cx, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The CSV host report, written a row at a time (each cell appended to
/// one buffer: no `String` per cell, no `core::fmt` per number).
pub fn csv_to(
    hosts: &[(IpAddr, HostRecord)],
    cx: Context<'_>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(64 << 10);
    out.extend_from_slice(
        b"host,host_name,host_name_source,flows,legacy_flows,rejected_flows,unanswered_flows",
    );
    for v in VERSION_COLUMNS {
        out.push(b',');
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(
        b",legacy_versions,server_names,first_seen,last_seen,ja4,client,services,legacy_services",
    );
    let judged = !cx.policies.is_empty();
    if judged {
        out.extend_from_slice(b",policies_failed");
    }
    out.push(b'\n');
    let mut joined = String::new();
    // `;`-joined items in one cell, escaped or (names of closed sets,
    // JA4s) as they are.
    let mut cell = |out: &mut Vec<u8>, items: &mut dyn Iterator<Item = &str>, escape: bool| {
        joined.clear();
        for (i, item) in items.enumerate() {
            if i > 0 {
                joined.push(';');
            }
            joined.push_str(item);
        }
        out.push(b',');
        if escape {
            csv_cell_to(out, &joined);
        } else {
            out.extend_from_slice(joined.as_bytes());
        }
    };
    for (ip, r) in hosts {
        let (name, source) = cx.host_name(*ip, r);
        crate::text::ip_text(&mut out, *ip);
        out.push(b',');
        csv_cell_to(&mut out, name.as_deref().unwrap_or(""));
        out.push(b',');
        out.extend_from_slice(source.unwrap_or("").as_bytes());
        for n in [r.flows, r.legacy, r.rejected, r.unanswered]
            .into_iter()
            .chain(r.by_version)
        {
            out.push(b',');
            crate::text::decimal(&mut out, n);
        }
        cell(&mut out, &mut r.legacy_versions().into_iter(), true);
        cell(&mut out, &mut r.sorted_names().into_iter(), true);
        out.push(b',');
        crate::text::rfc3339_seconds(&mut out, r.first_ns);
        out.push(b',');
        crate::text::rfc3339_seconds(&mut out, r.last_ns);
        let fps = &r.fingerprints;
        cell(
            &mut out,
            &mut fps.iter().map(|f| f.fingerprint.ja4()),
            false,
        );
        cell(
            &mut out,
            &mut fps.iter().filter_map(|f| cx.fp_label(f)),
            true,
        );
        let services = HostRecord::service_names(r.services);
        cell(&mut out, &mut services.into_iter(), false);
        let legacy_services = HostRecord::service_names(r.legacy_services);
        cell(&mut out, &mut legacy_services.into_iter(), false);
        if judged {
            let failed = cx.policy_names(r.policy_fails);
            cell(&mut out, &mut failed.into_iter(), false);
        }
        out.push(b'\n');
        if out.len() >= 64 << 10 {
            w.write_all(&out)?;
            out.clear();
        }
    }
    w.write_all(&out)
}

const TABLE_HEADER: [&str; 15] = [
    "HOST",
    "HOST NAME",
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
    "CLIENT",
    "SERVER NAMES",
];

/// One host's row of the table.
fn table_row(ip: IpAddr, r: &HostRecord, cx: Context<'_>) -> Vec<String> {
    let v = r.by_version;
    let mut names: Vec<String> = r
        .sorted_names()
        .into_iter()
        .take(3)
        .map(printable)
        .collect();
    let client = match main_fingerprint(r) {
        None => "-".to_string(),
        Some(f) => {
            let shown = cx
                .fp_label(f)
                .map_or_else(|| f.fingerprint.ja4().to_string(), |l| short(l, 48));
            let others = r.fingerprints.len() - 1 + usize::from(r.fingerprints_dropped > 0);
            if others > 0 {
                format!("{} (+{others})", printable(&shown))
            } else {
                printable(&shown)
            }
        }
    };
    let more = r.server_names.len().saturating_sub(3) as u64 + r.names_dropped;
    if more > 0 {
        names.push(format!("(+{more})"));
    }
    let (name, _) = cx.host_name(ip, r);
    let mut row = vec![
        ip.to_string(),
        name.map_or_else(|| "-".to_string(), |n| printable(&n)),
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
        client,
        names.join(" "),
    ];
    if !cx.policies.is_empty() {
        row.insert(row.len() - 1, policies_cell(cx, r.policy_fails));
    }
    row
}

/// The table cell of the policies in `bits`.
pub(super) fn policies_cell(cx: Context<'_>, bits: u16) -> String {
    let names = cx.policy_names(bits);
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join(",")
    }
}

/// The table header, with the policy column when policies are configured.
fn table_header(cx: Context<'_>) -> Vec<String> {
    let mut h: Vec<String> = TABLE_HEADER.iter().map(|s| s.to_string()).collect();
    if !cx.policies.is_empty() {
        h.insert(h.len() - 1, "FAILS POLICIES".to_string());
    }
    h
}

pub fn table(hosts: &[(IpAddr, HostRecord)], totals: &RunTotals, cx: Context<'_>) -> String {
    let mut out = Vec::new();
    // Writing to a vector cannot fail, and every cell is a `String`.
    let _ = table_to(hosts, totals, cx, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// As [`table`], written to `w` a line at a time: the rows are made twice
/// (once for the column widths, once to write them), so a table of any
/// size holds one row at a time.
pub fn table_to(
    hosts: &[(IpAddr, HostRecord)],
    totals: &RunTotals,
    cx: Context<'_>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    if hosts.is_empty() {
        w.write_all(b"(no TLS flows to the target servers)\n")?;
    } else {
        let rows = || {
            std::iter::once(table_header(cx))
                .chain(hosts.iter().map(|(ip, r)| table_row(*ip, r, cx)))
        };
        aligned_to(rows, |c| (2..=10).contains(&c), w)?;
    }
    w.write_all(summary_line(totals).as_bytes())?;
    w.write_all(b"\n")
}

/// As [`aligned`], over rows made twice by `rows` (for the widths, then
/// to write them), written to `w` a line at a time.
pub(super) fn aligned_to<I: Iterator<Item = Vec<String>>>(
    rows: impl Fn() -> I,
    numeric: impl Fn(usize) -> bool,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows() {
        widths.resize(widths.len().max(row.len()), 0);
        for (c, cell) in row.iter().enumerate() {
            widths[c] = widths[c].max(cell.len());
        }
    }
    let mut line = String::new();
    for row in rows() {
        line.clear();
        format_row(&row, &widths, &numeric, &mut line);
        w.write_all(line.trim_end().as_bytes())?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// One row of aligned columns into `line` (trailing spaces left on).
fn format_row(
    row: &[String],
    widths: &[usize],
    numeric: impl Fn(usize) -> bool,
    line: &mut String,
) {
    let cols = widths.len();
    for (c, cell) in row.iter().enumerate() {
        let w = widths.get(c).copied().unwrap_or(0);
        if c + 1 == cols {
            line.push_str(cell);
        } else if numeric(c) {
            let _ = write!(line, "{cell:>w$}  ");
        } else {
            let _ = write!(line, "{cell:<w$}  ");
        }
    }
}

/// Rows as aligned columns (numeric ones right-aligned; the last one not padded).
pub(super) fn aligned(rows: &[Vec<String>], numeric: impl Fn(usize) -> bool, out: &mut String) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut line = String::new();
    for row in rows {
        line.clear();
        format_row(row, &widths, &numeric, &mut line);
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod csv_tests {
    use proptest::prelude::*;

    /// The rule, written plainly: defuse a leading formula character, then
    /// quote (doubling quotes) when a separator, quote or line break is in.
    fn reference(s: &str) -> String {
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

    proptest! {
        #[test]
        fn csv_cells_escape_by_the_rule(s in "[a=+@\\-\t\r\n,\"'é;]{0,12}") {
            prop_assert_eq!(super::csv_cell(&s), reference(&s));
        }
    }
}
