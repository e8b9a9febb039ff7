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
use crate::inventory::{
    DestinationRecord, HostFingerprint, HostRecord, VERSION_COLUMNS, class_names,
};
use crate::tls::Version;

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

/// The fingerprint a host table names: the one with most legacy flows,
/// then most flows.
fn main_fingerprint(r: &HostRecord) -> Option<&HostFingerprint> {
    r.fingerprints.iter().max_by(|a, b| {
        (a.legacy, a.flows)
            .cmp(&(b.legacy, b.flows))
            .then(b.fingerprint.ja4().cmp(a.fingerprint.ja4()))
    })
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
}

fn rfc3339(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A destination's key and record, as `Destinations::snapshot` gives them.
pub type Destination = ((u16, String), DestinationRecord);

/// A destination's service, its end day, and its readiness as of its last
/// flow: `ready` (no legacy flow), `broken` (legacy flows after the end day),
/// `breaks YYYY-MM-DD` (legacy flows, the day not yet come), `legacy (no
/// capture time)` (legacy flows of a capture without timestamps), `legacy`
/// (a target no service covers).
fn destination_status(service: u16, r: &DestinationRecord) -> (&'static str, &'static str, String) {
    let row = (service != u16::MAX)
        .then(|| crate::targets::services::table().get(usize::from(service)))
        .flatten();
    let name = row.map_or(crate::targets::services::OTHER, |s| s.name);
    let end = row.map_or("", |s| s.tls_end);
    let status = match row {
        _ if r.legacy == 0 => "ready".to_string(),
        Some(s) => match s.broken_at(r.last_legacy_ns) {
            Some(true) => "broken".to_string(),
            Some(false) => format!("breaks {}", s.tls_end),
            None => "legacy (no capture time)".to_string(),
        },
        None => "legacy".to_string(),
    };
    (name, end, status)
}

#[derive(Serialize)]
struct JsonDestination<'a> {
    service: &'static str,
    destination: &'a str,
    status: String,
    service_tls_end: Option<&'static str>,
    legacy_flows: u64,
    modern_flows: u64,
    legacy_hosts: &'a [IpAddr],
    legacy_hosts_dropped: u64,
    first_legacy: Option<String>,
    last_legacy: Option<String>,
    last_seen: String,
}

fn json_destination(d: &Destination) -> JsonDestination<'_> {
    let ((service, name), r) = d;
    let (svc, end, status) = destination_status(*service, r);
    JsonDestination {
        service: svc,
        destination: name,
        status,
        service_tls_end: (!end.is_empty()).then_some(end),
        legacy_flows: r.legacy,
        modern_flows: r.modern,
        legacy_hosts: &r.legacy_sources,
        legacy_hosts_dropped: r.sources_dropped,
        first_legacy: (r.legacy > 0).then(|| rfc3339(r.first_legacy_ns)),
        last_legacy: (r.legacy > 0).then(|| rfc3339(r.last_legacy_ns)),
        last_seen: rfc3339(r.last_ns),
    }
}

pub fn destinations_json(rows: &[Destination], totals: &RunTotals) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        destinations: Vec<JsonDestination<'a>>,
        summary: &'a RunTotals,
    }
    let mut s = serde_json::to_string_pretty(&Doc {
        destinations: rows.iter().map(json_destination).collect(),
        summary: totals,
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

pub fn destinations_csv(rows: &[Destination]) -> String {
    let mut out = String::from(
        "service,destination,status,service_tls_end,legacy_flows,modern_flows,legacy_hosts,first_legacy,last_legacy,last_seen\n",
    );
    for d in rows {
        let j = json_destination(d);
        let hosts: Vec<String> = j.legacy_hosts.iter().map(IpAddr::to_string).collect();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            j.service,
            csv_cell(j.destination),
            j.status,
            j.service_tls_end.unwrap_or(""),
            j.legacy_flows,
            j.modern_flows,
            hosts.join(";"),
            j.first_legacy.unwrap_or_default(),
            j.last_legacy.unwrap_or_default(),
            j.last_seen,
        );
    }
    out
}

pub fn destinations_table(rows: &[Destination], totals: &RunTotals) -> String {
    let mut table = vec![
        [
            "SERVICE",
            "DESTINATION",
            "STATUS",
            "LEGACY",
            "MODERN",
            "LEGACY HOSTS",
            "FIRST LEGACY",
            "LAST LEGACY",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for d in rows {
        let j = json_destination(d);
        let mut hosts: Vec<String> = j
            .legacy_hosts
            .iter()
            .take(3)
            .map(IpAddr::to_string)
            .collect();
        let more = j.legacy_hosts.len().saturating_sub(3) as u64 + j.legacy_hosts_dropped;
        if more > 0 {
            hosts.push(format!("(+{more})"));
        }
        table.push(vec![
            j.service.to_string(),
            printable(j.destination),
            j.status,
            j.legacy_flows.to_string(),
            j.modern_flows.to_string(),
            if hosts.is_empty() {
                "-".into()
            } else {
                hosts.join(" ")
            },
            j.first_legacy.unwrap_or_else(|| "-".into()),
            j.last_legacy.unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("(no TLS flows to the target servers)\n");
    } else {
        aligned(&table, |c| (3..=4).contains(&c), &mut out);
    }
    out.push_str(&summary_line(totals));
    out.push('\n');
    out
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
            Format::Table => destinations_table(destinations, totals),
            Format::Json => destinations_json(destinations, totals),
            Format::Csv => destinations_csv(destinations),
        },
        By::Host => match format {
            Format::Table => table(hosts, totals, cx),
            Format::Json => json(hosts, totals, cx),
            Format::Csv => csv(hosts, cx),
        },
        By::Fingerprint => {
            let rows = by_fingerprint(hosts, cx);
            match format {
                Format::Table => fingerprints_table(&rows, totals),
                Format::Json => fingerprints_json(&rows, totals),
                Format::Csv => fingerprints_csv(&rows),
            }
        }
    }
}

/// As [`render`], written to `out`; the host reports in CSV and JSON are
/// written as they are made (the table needs every row for its widths).
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
        _ => out.write_all(render(by, format, hosts, destinations, totals, cx).as_bytes()),
    }
}

/// At most about `max` bytes of `s`, cut at a character boundary with `...`.
fn short(s: &str, max: usize) -> String {
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
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
struct JsonFingerprint<'a> {
    ja4: &'a str,
    ja3_hash: Option<String>,
    label: Option<&'a str>,
    flows: u64,
    legacy_flows: u64,
    max_offered_version: Option<String>,
    versions: Vec<&'static str>,
    server_names: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    hosts: HostRows<'a>,
    summary: &'a RunTotals,
}

/// The hosts of a JSON report, each made as it is serialized: a report
/// of 100,000 hosts is never held twice.
struct HostRows<'a> {
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

fn json_host<'a>(ip: IpAddr, r: &'a HostRecord, cx: Context<'a>) -> JsonHost<'a> {
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
            })
            .collect(),
        fingerprints_dropped: r.fingerprints_dropped,
        services: HostRecord::service_names(r.services),
        legacy_services: HostRecord::service_names(r.legacy_services),
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

pub fn csv(hosts: &[(IpAddr, HostRecord)], cx: Context<'_>) -> String {
    let mut out = Vec::new();
    let _ = csv_to(hosts, cx, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// The CSV host report, written a row at a time.
pub fn csv_to(
    hosts: &[(IpAddr, HostRecord)],
    cx: Context<'_>,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut out = String::from(
        "host,host_name,host_name_source,flows,legacy_flows,rejected_flows,unanswered_flows",
    );
    for v in VERSION_COLUMNS {
        let _ = write!(out, ",{v}");
    }
    out.push_str(
        ",legacy_versions,server_names,first_seen,last_seen,ja4,client,services,legacy_services\n",
    );
    for (ip, r) in hosts {
        let (name, source) = cx.host_name(*ip, r);
        let _ = write!(
            out,
            "{ip},{},{},{},{},{},{}",
            csv_cell(name.as_deref().unwrap_or("")),
            source.unwrap_or(""),
            r.flows,
            r.legacy,
            r.rejected,
            r.unanswered
        );
        for n in r.by_version {
            let _ = write!(out, ",{n}");
        }
        let lv = r.legacy_versions();
        let fps: Vec<&str> = r.fingerprints.iter().map(|f| f.fingerprint.ja4()).collect();
        let clients: Vec<&str> = r
            .fingerprints
            .iter()
            .filter_map(|f| cx.fp_label(f))
            .collect();
        let _ = writeln!(
            out,
            ",{},{},{},{},{},{},{},{}",
            csv_cell(&lv.join(";")),
            csv_cell(&r.sorted_names().join(";")),
            rfc3339(r.first_ns),
            rfc3339(r.last_ns),
            fps.join(";"),
            csv_cell(&clients.join(";")),
            HostRecord::service_names(r.services).join(";"),
            HostRecord::service_names(r.legacy_services).join(";"),
        );
        if out.len() >= 64 << 10 {
            w.write_all(out.as_bytes())?;
            out.clear();
        }
    }
    w.write_all(out.as_bytes())
}

pub fn table(hosts: &[(IpAddr, HostRecord)], totals: &RunTotals, cx: Context<'_>) -> String {
    let header = [
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
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for (ip, r) in hosts {
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
        let (name, _) = cx.host_name(*ip, r);
        rows.push(vec![
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
        ]);
    }
    let mut out = String::new();
    if hosts.is_empty() {
        out.push_str("(no TLS flows to the target servers)\n");
    } else {
        aligned(&rows, |c| (2..=10).contains(&c), &mut out);
    }
    out.push_str(&summary_line(totals));
    out.push('\n');
    out
}

/// Rows as aligned columns (numeric ones right-aligned; the last one not padded).
fn aligned(rows: &[Vec<String>], numeric: impl Fn(usize) -> bool, out: &mut String) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else if numeric(c) {
                let _ = write!(line, "{cell:>w$}  ", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// One client fingerprint over all hosts: which software, and where.
#[derive(Serialize)]
pub struct FingerprintRow<'a> {
    pub ja4: &'a str,
    pub ja3_hash: Option<String>,
    pub label: Option<&'a str>,
    pub flows: u64,
    pub legacy_flows: u64,
    pub max_offered_version: Option<String>,
    pub versions: Vec<&'static str>,
    /// Hosts that sent it, most legacy flows first.
    pub hosts: Vec<IpAddr>,
    /// Their names (passive host names), where known, in the same order.
    pub host_names: Vec<Option<String>>,
    pub server_names: Vec<&'a str>,
    #[serde(skip)]
    max_offered: Option<Version>,
    #[serde(skip)]
    classes: u8,
    #[serde(skip)]
    host_order: Vec<(u64, u64, IpAddr, Option<String>)>,
}

/// The inventory by fingerprint: most legacy flows first, then most flows.
pub fn by_fingerprint<'a>(
    hosts: &'a [(IpAddr, HostRecord)],
    cx: Context<'a>,
) -> Vec<FingerprintRow<'a>> {
    let mut rows: Vec<FingerprintRow<'a>> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (ip, r) in hosts {
        for f in &r.fingerprints {
            let ja4 = f.fingerprint.ja4();
            let i = *at.entry(ja4).or_insert_with(|| {
                rows.push(FingerprintRow {
                    ja4,
                    ja3_hash: f.fingerprint.ja3_hash(),
                    label: cx.fp_label(f),
                    flows: 0,
                    legacy_flows: 0,
                    max_offered_version: None,
                    versions: Vec::new(),
                    hosts: Vec::new(),
                    host_names: Vec::new(),
                    server_names: Vec::new(),
                    max_offered: None,
                    classes: 0,
                    host_order: Vec::new(),
                });
                rows.len() - 1
            });
            let row = &mut rows[i];
            row.flows += f.flows;
            row.legacy_flows += f.legacy;
            row.max_offered = row.max_offered.max(f.max_offered);
            row.classes |= f.classes;
            row.host_order
                .push((f.legacy, f.flows, *ip, cx.host_name(*ip, r).0));
            // Deduplicated once, below: a JA4 shared by many hosts meets
            // many names (a `contains` per name was quadratic).
            row.server_names.extend(r.names_of(f));
        }
    }
    for row in &mut rows {
        row.max_offered_version = row.max_offered.map(|v| v.to_string());
        row.versions = class_names(row.classes);
        row.host_order
            .sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then(a.2.cmp(&b.2)));
        row.hosts = row.host_order.iter().map(|h| h.2).collect();
        row.host_names = row.host_order.iter().map(|h| h.3.clone()).collect();
        row.server_names.sort_unstable();
        row.server_names.dedup();
    }
    rows.sort_by(|a, b| {
        (b.legacy_flows, b.flows)
            .cmp(&(a.legacy_flows, a.flows))
            .then(a.ja4.cmp(b.ja4))
    });
    rows
}

/// `--by fingerprint` as a table, JSON or CSV.
pub fn fingerprints_table(rows: &[FingerprintRow<'_>], totals: &RunTotals) -> String {
    let header = [
        "JA4",
        "HOSTS",
        "FLOWS",
        "LEGACY",
        "MAX OFFERED",
        "VERSIONS",
        "HOSTS SEEN",
        "CLIENT",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let mut seen: Vec<String> = (r.hosts.iter().zip(&r.host_names))
            .take(3)
            .map(|(ip, name)| match name {
                Some(n) => format!("{ip} ({})", printable(n)),
                None => ip.to_string(),
            })
            .collect();
        if r.hosts.len() > 3 {
            seen.push(format!("(+{})", r.hosts.len() - 3));
        }
        table.push(vec![
            r.ja4.to_string(),
            r.hosts.len().to_string(),
            r.flows.to_string(),
            r.legacy_flows.to_string(),
            r.max_offered_version.clone().unwrap_or_else(|| "-".into()),
            r.versions.join(","),
            seen.join(" "),
            r.label.map_or_else(|| "-".to_string(), printable),
        ]);
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("(no fingerprinted TLS flows to the target servers)\n");
    } else {
        aligned(&table, |c| (1..=3).contains(&c), &mut out);
    }
    out.push_str(&summary_line(totals));
    out.push('\n');
    out
}

pub fn fingerprints_json(rows: &[FingerprintRow<'_>], totals: &RunTotals) -> String {
    #[derive(Serialize)]
    struct Doc<'a> {
        fingerprints: &'a [FingerprintRow<'a>],
        summary: &'a RunTotals,
    }
    let mut s = serde_json::to_string_pretty(&Doc {
        fingerprints: rows,
        summary: totals,
    })
    .unwrap_or_default();
    s.push('\n');
    s
}

pub fn fingerprints_csv(rows: &[FingerprintRow<'_>]) -> String {
    let mut out = String::from(
        "ja4,ja3_hash,label,hosts,flows,legacy_flows,max_offered_version,versions,host_list,host_names,server_names\n",
    );
    for r in rows {
        let hosts: Vec<String> = r.hosts.iter().map(IpAddr::to_string).collect();
        let names: Vec<&str> = r
            .host_names
            .iter()
            .map(|n| n.as_deref().unwrap_or(""))
            .collect();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.ja4,
            r.ja3_hash.as_deref().unwrap_or(""),
            csv_cell(r.label.unwrap_or("")),
            r.hosts.len(),
            r.flows,
            r.legacy_flows,
            r.max_offered_version.as_deref().unwrap_or(""),
            r.versions.join(";"),
            hosts.join(";"),
            csv_cell(&names.join(";")),
            csv_cell(&r.server_names.join(";")),
        );
    }
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
        r.server_names.push("evil\u{1b}[31m.example".into());
        let labels = crate::hosts::labels::Labels::default();
        let names = crate::hosts::names::HostNames::new(&Default::default());
        let cx = Who {
            labels: &labels,
            names: &names,
        };
        let out = table(
            &[(IpAddr::from([10, 0, 0, 1]), r)],
            &RunTotals::default(),
            cx,
        );
        assert!(!out.contains('\u{1b}'));
        assert!(out.contains("evil?[31m.example"));
    }
}
