//! The destination view: readiness of each storage account, SQL server,
//! namespace or vault to enforce TLS 1.2, as JSON, CSV or a table.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::DestinationRecord;

use super::*;

/// A destination's key and record, as `Destinations::snapshot` gives them.
pub type Destination = ((u16, String), DestinationRecord);

/// A destination's service, its end day, and its readiness as of its last
/// flow: `ready` (no legacy flow), `broken` (legacy flows after the end day),
/// `breaks YYYY-MM-DD` (legacy flows, the day not yet come), `legacy (no
/// capture time)` (legacy flows of a capture without timestamps), `legacy`
/// (a target no service covers).
pub(super) fn destination_status(
    service: u16,
    r: &DestinationRecord,
) -> (&'static str, &'static str, String) {
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
pub(super) struct JsonDestination<'a> {
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
    /// Server policies (--policy) some hello to it would fail (only with policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    policies_failed: Option<Vec<&'a str>>,
}

pub(super) fn json_destination<'a>(d: &'a Destination, cx: Context<'a>) -> JsonDestination<'a> {
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
        policies_failed: super::hosts::failed_names(cx, r.policy_fails),
    }
}

pub fn destinations_json(rows: &[Destination], totals: &RunTotals, cx: Context<'_>) -> String {
    let rows: Vec<JsonDestination<'_>> = rows.iter().map(|d| json_destination(d, cx)).collect();
    json_doc("destinations", &rows, totals)
}

pub fn destinations_csv(rows: &[Destination], cx: Context<'_>) -> String {
    let judged = !cx.policies.is_empty();
    let mut out = String::from(
        "service,destination,status,service_tls_end,legacy_flows,modern_flows,legacy_hosts,first_legacy,last_legacy,last_seen",
    );
    out.push_str(if judged { ",policies_failed\n" } else { "\n" });
    for d in rows {
        let j = json_destination(d, cx);
        let hosts: Vec<String> = j.legacy_hosts.iter().map(IpAddr::to_string).collect();
        let _ = write!(
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
        if let Some(failed) = &j.policies_failed {
            let _ = write!(out, ",{}", failed.join(";"));
        }
        out.push('\n');
    }
    out
}

pub fn destinations_table(rows: &[Destination], totals: &RunTotals, cx: Context<'_>) -> String {
    let judged = !cx.policies.is_empty();
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
    if judged {
        table[0].push("FAILS POLICIES".to_string());
    }
    for d in rows {
        let j = json_destination(d, cx);
        let failed = j.policies_failed.as_ref().map(|f| {
            if f.is_empty() {
                "-".to_string()
            } else {
                f.join(",")
            }
        });
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
        if let (Some(f), Some(row)) = (failed, table.last_mut()) {
            row.push(f);
        }
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
