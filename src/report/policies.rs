//! The policy view: one row per server policy (`--policy`): how many
//! inventoried flows would pass and fail it, why, and which hosts, client
//! stacks and destinations would fail, as JSON, CSV or a table.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use crate::inventory::HostRecord;
use crate::policy::{Outcome, Reason};

use super::*;

/// One policy's flow counts (from `tlscensus_policy_flows_total`) and
/// failing hosts, for the run's totals.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PolicyTotal {
    pub policy: String,
    pub flows: u64,
    pub pass: u64,
    pub fail: u64,
    /// Flows without a whole ClientHello to judge.
    pub unknown: u64,
    /// Failing flows by reason (only reasons that occurred).
    pub reasons: std::collections::BTreeMap<&'static str, u64>,
    /// Hosts held with at least one failing hello.
    pub failing_hosts: u64,
}

impl PolicyTotal {
    /// The totals of one policy from its count per reason.
    pub fn of(
        policy: &str,
        by_reason: impl Iterator<Item = (Reason, u64)>,
        failing_hosts: u64,
    ) -> Self {
        let mut t = PolicyTotal {
            policy: policy.to_string(),
            failing_hosts,
            ..PolicyTotal::default()
        };
        for (r, n) in by_reason {
            t.flows += n;
            match r.outcome() {
                Outcome::Pass => t.pass += n,
                Outcome::Unknown => t.unknown += n,
                Outcome::Fail => {
                    t.fail += n;
                    if n > 0 {
                        t.reasons.insert(r.as_str(), n);
                    }
                }
            }
        }
        t
    }
}

/// One policy with who would fail it.
#[derive(Serialize)]
pub struct PolicyRow<'a> {
    pub policy: &'a str,
    pub title: &'a str,
    pub source: &'a str,
    pub versions: Vec<&'static str>,
    #[serde(flatten)]
    pub totals: PolicyTotal,
    /// Hosts that would fail, most legacy flows first (as the host view).
    pub hosts: Vec<IpAddr>,
    /// Client stacks (JA4) that would fail, and their labels.
    pub fingerprints: Vec<(&'a str, Option<&'a str>)>,
    /// Destinations some failing hello went to (service, destination).
    pub destinations: Vec<(&'static str, &'a str)>,
}

/// The rows of the policy view, in configuration order.
pub fn by_policy<'a>(
    hosts: &'a [(IpAddr, HostRecord)],
    destinations: &'a [Destination],
    totals: &RunTotals,
    cx: Context<'a>,
) -> Vec<PolicyRow<'a>> {
    let mut rows = Vec::with_capacity(cx.policies.len());
    for (i, p) in cx.policies.iter().enumerate() {
        let bit = 1u16 << i;
        let failing: Vec<&(IpAddr, HostRecord)> = hosts
            .iter()
            .filter(|(_, r)| r.policy_fails & bit != 0)
            .collect();
        let mut fingerprints: Vec<(&str, Option<&str>)> = Vec::new();
        for (_, r) in &failing {
            for f in r.fingerprints.iter().filter(|f| f.policy_fails & bit != 0) {
                let ja4 = f.fingerprint.ja4();
                if !fingerprints.iter().any(|(j, _)| *j == ja4) {
                    fingerprints.push((ja4, cx.fp_label(f)));
                }
            }
        }
        let dests = destinations
            .iter()
            .filter(|(_, r)| r.policy_fails & bit != 0)
            .map(|((svc, name), r)| (destination_status(*svc, r).0, name.as_str()))
            .collect();
        let total = (totals.policies.get(i).filter(|t| t.policy == p.name))
            .cloned()
            .unwrap_or_else(|| PolicyTotal {
                policy: p.name.clone(),
                failing_hosts: failing.len() as u64,
                ..PolicyTotal::default()
            });
        rows.push(PolicyRow {
            policy: &p.name,
            title: &p.title,
            source: &p.source,
            versions: p.version_names(),
            totals: total,
            hosts: failing.iter().map(|(ip, _)| *ip).collect(),
            fingerprints,
            destinations: dests,
        });
    }
    rows
}

/// The fail reasons as columns, in label order.
const FAIL_REASONS: [(Reason, &str); 5] = [
    (Reason::NoCommonVersion, "NO VERSION"),
    (Reason::NoCommonSuite, "NO SUITE"),
    (Reason::NoCommonGroup, "NO GROUP"),
    (Reason::NoCommonSigalg, "NO SIGALG"),
    (Reason::MissingRequirement, "MISSING REQ"),
];

fn reason_count(t: &PolicyTotal, r: Reason) -> u64 {
    t.reasons.get(r.as_str()).copied().unwrap_or(0)
}

/// A list's first three items and how many more.
fn first_three(items: Vec<String>) -> String {
    let n = items.len();
    let mut shown: Vec<String> = items.into_iter().take(3).collect();
    if n > 3 {
        shown.push(format!("(+{})", n - 3));
    }
    if shown.is_empty() {
        "-".to_string()
    } else {
        shown.join(" ")
    }
}

pub fn policies_table(rows: &[PolicyRow<'_>], totals: &RunTotals) -> String {
    let mut header = vec!["POLICY", "FLOWS", "PASS", "FAIL"];
    header.extend(FAIL_REASONS.iter().map(|(_, h)| *h));
    header.extend(["UNKNOWN", "HOSTS FAILING", "CLIENTS FAILING", "HOSTS"]);
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let t = &r.totals;
        let mut row = vec![
            r.policy.to_string(),
            t.flows.to_string(),
            t.pass.to_string(),
            t.fail.to_string(),
        ];
        row.extend(
            FAIL_REASONS
                .iter()
                .map(|(reason, _)| reason_count(t, *reason).to_string()),
        );
        row.push(t.unknown.to_string());
        row.push(t.failing_hosts.to_string());
        let clients = r
            .fingerprints
            .iter()
            .map(|(ja4, label)| printable(&label.map_or_else(|| ja4.to_string(), |l| short(l, 28))))
            .collect();
        row.push(first_three(clients));
        row.push(first_three(r.hosts.iter().map(IpAddr::to_string).collect()));
        table.push(row);
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("(no server policy: give one or more with --policy; `tlscensus policies` lists the presets)\n");
    } else {
        aligned(&table, |c| (1..=10).contains(&c), &mut out);
        out.push_str("\nPolicies:\n");
        for r in rows {
            let _ = writeln!(
                out,
                "  {}: {} ({}) -- {}",
                r.policy,
                r.title,
                r.versions.join(", "),
                r.source
            );
        }
    }
    out.push_str(&summary_line(totals));
    out.push('\n');
    out
}

pub fn policies_json(rows: &[PolicyRow<'_>], totals: &RunTotals) -> String {
    json_doc("policies", rows, totals)
}

pub fn policies_csv(rows: &[PolicyRow<'_>]) -> String {
    let mut out = String::from("policy,flows,pass,fail");
    for (r, _) in FAIL_REASONS {
        let _ = write!(out, ",{}", r.as_str());
    }
    out.push_str(",unknown,failing_hosts,host_list,ja4_list,clients,destinations\n");
    for r in rows {
        let t = &r.totals;
        let _ = write!(out, "{},{},{},{}", r.policy, t.flows, t.pass, t.fail);
        for (reason, _) in FAIL_REASONS {
            let _ = write!(out, ",{}", reason_count(t, reason));
        }
        let hosts: Vec<String> = r.hosts.iter().map(IpAddr::to_string).collect();
        let ja4s: Vec<&str> = r.fingerprints.iter().map(|(j, _)| *j).collect();
        let labels: Vec<&str> = r.fingerprints.iter().filter_map(|(_, l)| *l).collect();
        let dests: Vec<String> = r
            .destinations
            .iter()
            .map(|(s, d)| format!("{s}/{d}"))
            .collect();
        let _ = writeln!(
            out,
            ",{},{},{},{},{},{}",
            t.unknown,
            t.failing_hosts,
            hosts.join(";"),
            ja4s.join(";"),
            csv_cell(&labels.join(";")),
            csv_cell(&dests.join(";")),
        );
    }
    out
}

/// `tlscensus policies`: the presets, what each accepts and its source.
pub fn policies_list() -> String {
    let mut rows = vec![
        [
            "POLICY",
            "VERSIONS",
            "SUITES",
            "GROUPS",
            "SIGNATURES",
            "WHAT IT IS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let presets: Vec<_> = crate::policy::presets::ALL
        .iter()
        .filter_map(|(n, _)| crate::policy::presets::get(n))
        .collect();
    for p in &presets {
        rows.push(vec![
            p.name.clone(),
            p.version_names().join(","),
            p.suites.len().to_string(),
            p.groups.len().to_string(),
            p.sigalgs.len().to_string(),
            p.title.clone(),
        ]);
    }
    let mut out = String::new();
    aligned(&rows, |c| (2..=4).contains(&c), &mut out);
    out.push_str("\nSources:\n");
    for p in &presets {
        let _ = writeln!(out, "  {}: {}", p.name, p.source);
    }
    out.push_str(
        "\n`tlscensus policies NAME` prints a preset as a policy file (TOML), a start for your own; `tlscensus policies FILE` checks one. Judge flows with --policy NAME|FILE (repeatable).\n",
    );
    out
}
