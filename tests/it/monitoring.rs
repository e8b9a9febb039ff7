//! The shipped Prometheus rules and Grafana dashboard (deploy/): promtool
//! checks and unit tests, and a review of the dashboard JSON against the
//! metrics tlscensus really exports. (tests/live.rs runs every query against
//! a real Prometheus scraping a live sensor.)

use std::collections::BTreeSet;

use crate::common::exported_metrics as exported;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Metric names an expression uses: `tlscensus_*` and recording-rule `tlscensus:*` names.
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("tlscensus") {
        let start = i + pos;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_' || b[end] == b':')
        {
            end += 1;
        }
        let preceded = start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        if !preceded {
            out.insert(expr[start..end].to_string());
        }
        i = end.max(start + 1);
    }
    out
}

#[test]
fn names_in_finds_metrics() {
    let n =
        names_in(r#"sum(rate(tlscensus_flows_total{job="tlscensus"}[5m])) / tlscensus:x:rate5m"#);
    assert_eq!(
        n,
        ["tlscensus:x:rate5m", "tlscensus_flows_total", "tlscensus"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn promtool_checks_and_unit_tests_rules() {
    if !crate::common::require_tools("promtool_checks_and_unit_tests_rules", &["promtool"]) {
        return;
    }
    let dir = deploy().join("prometheus");
    for args in [
        vec!["check", "rules", "tlscensus.rules.yml"],
        vec!["test", "rules", "tlscensus.rules.test.yml"],
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "config", "central.yml"],
        vec!["check", "config", "--agent", "agent.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Rules as (alert or recorded name, expr, is_recording).
fn rules() -> Vec<(String, String, bool)> {
    use yaml_rust2::YamlLoader;
    let text = std::fs::read_to_string(deploy().join("prometheus/tlscensus.rules.yml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let mut list = Vec::new();
    for g in docs[0]["groups"].as_vec().unwrap() {
        for r in g["rules"].as_vec().unwrap() {
            let expr = r["expr"].as_str().unwrap().to_string();
            if let Some(name) = r["record"].as_str() {
                list.push((name.to_string(), expr, true));
            } else {
                list.push((r["alert"].as_str().unwrap().to_string(), expr, false));
            }
        }
    }
    list
}

#[test]
fn rules_name_only_exported_metrics_and_cover_every_alert() {
    let exported = exported();
    let rules = rules();
    let recorded: BTreeSet<String> = rules.iter().filter(|r| r.2).map(|r| r.0.clone()).collect();
    for (name, expr, _) in &rules {
        for metric in names_in(expr) {
            if metric == "tlscensus" {
                continue; // the job name
            }
            assert!(
                exported.contains(&metric) || recorded.contains(&metric),
                "rule {name} uses {metric}, which tlscensus does not export"
            );
        }
    }
    let alerts: BTreeSet<&str> = rules
        .iter()
        .filter(|r| !r.2)
        .map(|r| r.0.as_str())
        .collect();
    for a in [
        "TLSCensusLegacyTLSClient",
        "TLSCensusClientRejected",
        "TLSCensusNewLegacyHost",
        "TLSCensusKernelDrops",
        "TLSCensusQueueDrops",
        "TLSCensusSensorDown",
        "TLSCensusSensorMissing",
        "TLSCensusSensorSilent",
        "TLSCensusNoTLSSeen",
        "TLSCensusServiceAlreadyBroken",
        "TLSCensusServiceBreaksSoon",
        "TLSCensusSafeToEnforce",
    ] {
        assert!(alerts.contains(a), "missing alert {a}");
    }
    // Every alert is exercised by the promtool unit tests.
    let tests =
        std::fs::read_to_string(deploy().join("prometheus/tlscensus.rules.test.yml")).unwrap();
    for a in &alerts {
        assert!(
            tests.contains(&format!(
                "alertname: {a}\n        exp_alerts:\n          - exp_labels"
            )),
            "no firing test for {a}"
        );
        assert!(
            tests.contains(&format!("alertname: {a}\n        exp_alerts: []")),
            "no not-firing test for {a}"
        );
    }
}

/// The dashboard's queries: (panel title, expression).
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[test]
fn dashboard_is_valid_and_uses_exported_metrics() {
    let path = deploy().join("grafana/tlscensus.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        d["schemaVersion"].as_u64().unwrap() >= 36,
        "Grafana 10+ schema"
    );
    assert!(d["uid"].is_string() && d["title"].is_string());

    // Variables: a Prometheus data source and a multi-value sensor selector.
    let vars = d["templating"]["list"].as_array().unwrap();
    let ds = vars.iter().find(|v| v["name"] == "datasource").unwrap();
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let inst = vars.iter().find(|v| v["name"] == "instance").unwrap();
    assert_eq!(inst["type"], "query");
    assert_eq!(inst["datasource"]["uid"], "${datasource}");
    assert_eq!(inst["multi"], true);
    assert_eq!(inst["includeAll"], true);
    assert_eq!(inst["allValue"], ".*");
    assert!(
        inst["definition"]
            .as_str()
            .unwrap()
            .contains("tlscensus_build_info")
    );

    // Panels: unique ids, grid positions inside 24 columns, the data source variable.
    let panels = d["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len());
    for p in panels {
        let g = &p["gridPos"];
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24);
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        assert!(!p["targets"].as_array().unwrap().is_empty());
    }
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    let has = |kind: &str, words: &str| {
        panels.iter().any(|p| {
            p["type"] == kind
                && p["title"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .contains(&words.to_lowercase())
        })
    };
    assert!(has("table", "legacy hosts"), "{titles:?}");
    assert!(has("timeseries", "legacy vs modern"), "{titles:?}");
    assert!(has("timeseries", "rejected"), "{titles:?}");
    assert!(has("piechart", "share of versions"), "{titles:?}");
    assert!(has("timeseries", "drops"), "{titles:?}");
    assert!(has("timeseries", "flows tracked"), "{titles:?}");

    // Every query is limited to the chosen sensors and names only exported metrics.
    let exported = exported();
    // Recording rules count only when the shipped rules really record them.
    let recorded: BTreeSet<String> = rules().into_iter().filter(|r| r.2).map(|r| r.0).collect();
    for (title, expr) in dashboard_queries(&d) {
        assert!(
            expr.contains(r#"instance=~"$instance""#),
            "{title}: {expr} ignores the sensor variable"
        );
        for metric in names_in(&expr) {
            if metric == "tlscensus" {
                continue;
            }
            assert!(
                exported.contains(&metric) || recorded.contains(&metric),
                "panel {title:?} uses {metric}, which neither tlscensus nor the rules export"
            );
        }
    }
    // The legacy table shows host, version, outcome and the flow count.
    let table = panels.iter().find(|p| p["type"] == "table").unwrap();
    let expr = table["targets"][0]["expr"].as_str().unwrap();
    for label in ["source", "version", "outcome"] {
        assert!(expr.contains(label), "{expr}");
    }
}

#[test]
fn dashboard_matches_its_generator() {
    if !crate::common::require_tools("dashboard_matches_its_generator", &["python3"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("d.json");
    let out = Command::new("python3")
        .arg(deploy().join("grafana/make-dashboard.py"))
        .arg(&fresh)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&fresh).unwrap(),
        std::fs::read_to_string(deploy().join("grafana/tlscensus.json")).unwrap(),
        "deploy/grafana/tlscensus.json is stale: run python3 deploy/grafana/make-dashboard.py"
    );
}
