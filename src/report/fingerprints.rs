//! The fingerprint view: one row per client TLS stack (JA4), with the
//! hosts that run it, as JSON, CSV or a table.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::{HostRecord, class_names};
use crate::tls::Version;

use super::*;

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
    /// Server policies (--policy) some of its hellos would fail (only with policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies_failed: Option<Vec<&'a str>>,
    #[serde(skip)]
    policy_fails: u16,
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
                    policies_failed: None,
                    policy_fails: 0,
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
            row.policy_fails |= f.policy_fails;
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
        row.policies_failed = super::hosts::failed_names(cx, row.policy_fails);
    }
    rows.sort_by(|a, b| {
        (b.legacy_flows, b.flows)
            .cmp(&(a.legacy_flows, a.flows))
            .then(a.ja4.cmp(b.ja4))
    });
    rows
}

/// `--by fingerprint` as a table, JSON or CSV.
pub fn fingerprints_table(
    rows: &[FingerprintRow<'_>],
    totals: &RunTotals,
    cx: Context<'_>,
) -> String {
    let judged = !cx.policies.is_empty();
    let mut header = vec![
        "JA4",
        "HOSTS",
        "FLOWS",
        "LEGACY",
        "MAX OFFERED",
        "VERSIONS",
        "HOSTS SEEN",
        "CLIENT",
    ];
    if judged {
        header.insert(header.len() - 1, "FAILS POLICIES");
    }
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
        let mut row = vec![
            r.ja4.to_string(),
            r.hosts.len().to_string(),
            r.flows.to_string(),
            r.legacy_flows.to_string(),
            r.max_offered_version.clone().unwrap_or_else(|| "-".into()),
            r.versions.join(","),
            seen.join(" "),
            r.label.map_or_else(|| "-".to_string(), printable),
        ];
        if judged {
            row.insert(
                row.len() - 1,
                super::hosts::policies_cell(cx, r.policy_fails),
            );
        }
        table.push(row);
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
    json_doc("fingerprints", rows, totals)
}

pub fn fingerprints_csv(rows: &[FingerprintRow<'_>], cx: Context<'_>) -> String {
    let judged = !cx.policies.is_empty();
    let mut out = String::from(
        "ja4,ja3_hash,label,hosts,flows,legacy_flows,max_offered_version,versions,host_list,host_names,server_names",
    );
    out.push_str(if judged { ",policies_failed\n" } else { "\n" });
    for r in rows {
        let hosts: Vec<String> = r.hosts.iter().map(IpAddr::to_string).collect();
        let names: Vec<&str> = r
            .host_names
            .iter()
            .map(|n| n.as_deref().unwrap_or(""))
            .collect();
        let _ = write!(
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
        if judged {
            let _ = write!(out, ",{}", cx.policy_names(r.policy_fails).join(";"));
        }
        out.push('\n');
    }
    out
}
