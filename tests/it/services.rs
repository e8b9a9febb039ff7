//! Service presets and per-destination readiness (issue 16), end to end on
//! captures/services.pcap (make-service-captures.sh: OpenSSL, curl, Python,
//! Java and GnuTLS clients reaching eleven Microsoft service names mapped to
//! a local server, legacy and modern, and a client without SNI that reaches
//! a private endpoint known through passive DNS).

use crate::common::craft::{read_pcap, write_pcapng_simple};
use crate::common::*;
use serde_json::Value;

/// `src sni-or-dash version match service destination broken` per event.
fn flows(extra: &[&str]) -> Vec<String> {
    let path = capture("services.pcap");
    events(&[&path], extra)
        .iter()
        .map(|e: &Value| {
            format!(
                "{} {} {} {} {} {} {}",
                e["src_ip"].as_str().unwrap(),
                e["sni"].as_str().unwrap_or("-"),
                e["negotiated_version"].as_str().unwrap_or("-"),
                e["match"].as_str().unwrap_or("-"),
                e["service"].as_str().unwrap_or("-"),
                e["destination"].as_str().unwrap_or("-"),
                e["service_broken"],
            )
        })
        .collect()
}

#[test]
fn every_flow_has_its_service_destination_and_deadline() {
    assert_eq!(
        flows(&["--services", "microsoft"]),
        [
            "192.0.2.11 legacyacct.blob.core.windows.net TLSv1.0 sni storage-blob legacyacct true",
            "192.0.2.11 srv1.database.windows.net TLSv1.1 sni sql srv1 true",
            "192.0.2.11 ns1.servicebus.windows.net TLSv1.2 sni servicebus ns1 false",
            "192.0.2.11 vault1.vault.azure.net TLSv1.0 sni keyvault vault1 true",
            // App Service's day (2027-05-31) is after the capture: breaks later.
            "192.0.2.12 app1.azurewebsites.net TLSv1.0 sni appservice app1 false",
            "192.0.2.12 acct1.documents.azure.com TLSv1.3 sni cosmosdb acct1 false",
            "192.0.2.12 hub1.azure-devices.net TLSv1.1 sni iothub hub1 true",
            "192.0.2.13 cache1.redis.cache.windows.net TLSv1.0 sni redis cache1 true",
            "192.0.2.13 login.microsoftonline.com TLSv1.3 sni entra login.microsoftonline.com false",
            "192.0.2.14 files1.file.core.windows.net TLSv1.0 sni storage-file files1 true",
            "192.0.2.15 legacyacct.blob.core.windows.net TLSv1.0 sni storage-blob legacyacct true",
            "192.0.2.15 modernacct.blob.core.windows.net TLSv1.3 sni storage-blob modernacct false",
            // No SNI: the address was passive DNS's answer for the private endpoint.
            "192.0.2.16 - TLSv1.0 dns_address storage-blob pe1 true",
        ]
    );
    // The default stays Blob Storage; --services narrows and combines with --target.
    assert_eq!(flows(&[]).len(), 4);
    let sql_and_target = flows(&["--services", "sql", "--target", "*.redis.cache.windows.net"]);
    assert_eq!(
        sql_and_target,
        [
            "192.0.2.11 srv1.database.windows.net TLSv1.1 sni sql srv1 true",
            "192.0.2.13 cache1.redis.cache.windows.net TLSv1.0 sni other cache1 null",
            // Without Storage chosen, the private endpoint's DNS names no
            // target; the server's certificate (it lists every service's
            // names) does, and names no one destination.
            "192.0.2.16 - TLSv1.0 certificate sql *.database.windows.net true",
        ]
    );
}

/// A capture without timestamps (pcapng Simple Packet Blocks) cannot say
/// whether a legacy flow came after its service's day: unknown, not false.
#[test]
fn no_capture_time_leaves_broken_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let spb = dir.path().join("services-spb.pcapng");
    write_pcapng_simple(&spb, &read_pcap(&capture("services.pcap")));
    let got: Vec<String> = events(&[&spb], &["--services", "microsoft"])
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["sni"].as_str().unwrap_or("-"),
                e["legacy"],
                e["service_broken"]
            )
        })
        .collect();
    assert_eq!(got.len(), 13, "{got:?}");
    for line in &got {
        let want = if line.contains(" true ") {
            "null"
        } else {
            "false"
        };
        assert!(line.ends_with(want), "{line}");
    }
    let out = tlscensus(&[
        "read",
        spb.to_str().unwrap(),
        "--services",
        "microsoft",
        "--by",
        "destination",
    ]);
    let report = text(&out.stdout);
    assert!(report.contains("legacy (no capture time)"), "{report}");
    assert!(!report.contains("broken"), "{report}");
}

#[test]
fn by_destination_and_metrics() {
    let path = capture("services.pcap");
    let p = path.to_str().unwrap();
    let out = tlscensus(&[
        "read",
        "--services",
        "storage,sql,appservice",
        "--by",
        "destination",
        "--format",
        "json",
        p,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<String> = doc["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {} {} legacy={} modern={} hosts={}",
                d["service"].as_str().unwrap(),
                d["destination"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
                d["legacy_flows"],
                d["modern_flows"],
                d["legacy_hosts"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "storage-blob pe1 broken legacy=1 modern=0 hosts=1",
            "storage-blob legacyacct broken legacy=2 modern=0 hosts=2",
            "storage-file files1 broken legacy=1 modern=0 hosts=1",
            "appservice app1 breaks 2027-05-31 legacy=1 modern=0 hosts=1",
            "sql srv1 broken legacy=1 modern=0 hosts=1",
            "storage-blob modernacct ready legacy=0 modern=1 hosts=0",
        ]
    );
    let table =
        text(&tlscensus(&["read", "--services", "storage", "--by", "destination", p]).stdout);
    assert!(table.starts_with("SERVICE "), "{table}");
    let m = metrics_after_read(&["services.pcap"], &["--services", "microsoft"]);
    has(
        &m,
        r#"tlscensus_service_flows_total{outcome="negotiated",service="storage-blob",version="TLSv1.0"} 3"#,
    );
    has(
        &m,
        r#"tlscensus_service_flows_total{outcome="negotiated",service="sql",version="TLSv1.1"} 1"#,
    );
    has(
        &m,
        r#"tlscensus_service_tls_end_timestamp_seconds{service="appservice"} 1811721600"#,
    );
    let legacyacct = m
        .lines()
        .find(|l| l.starts_with(r#"tlscensus_destination_legacy_last_seen_timestamp_seconds{destination="legacyacct",service="storage-blob"}"#))
        .unwrap_or_else(|| panic!("{m}"));
    let secs: f64 = legacyacct.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 1.7e9, "{legacyacct}");
    assert!(
        !m.contains(r#"destination="modernacct""#),
        "modern-only destinations have no legacy time"
    );
}

#[test]
fn services_listed_and_checked() {
    let out = tlscensus(&["services"]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    for want in [
        "storage-blob",
        "2026-02-03",
        "sql",
        "2025-08-31",
        "login.microsoftonline.com",
        "https://",
    ] {
        assert!(t.contains(want), "{want}: {t}");
    }
    let out = tlscensus(&[
        "read",
        "--services",
        "bogus",
        capture("demo.pcapng").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("\"bogus\" is not a service"),
        "{}",
        text(&out.stderr)
    );
}

/// `--services-file`: a row with a built-in name replaces it (here Blob
/// Storage's day moved after the capture: its legacy destinations break
/// later instead of being broken), a new row adds a service; a bad file is
/// a clear error naming the row.
#[test]
fn services_file_overrides_and_adds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.json");
    std::fs::write(
        &file,
        r#"[{"name": "storage-blob", "suffixes": ["blob.core.windows.net"], "tls_end": "2027-01-01", "source": "our own date"},
            {"name": "vaults", "title": "Key Vault by another name", "suffixes": ["vault.azure.net"], "tls_end": "2025-01-01"}]"#,
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let got = flows(&["--services-file", f, "--services", "storage-blob,vaults"]);
    assert!(got.contains(&"192.0.2.11 legacyacct.blob.core.windows.net TLSv1.0 sni storage-blob legacyacct false".to_string()), "{got:#?}");
    assert!(
        got.contains(
            &"192.0.2.11 vault1.vault.azure.net TLSv1.0 sni vaults vault1 true".to_string()
        ),
        "{got:#?}"
    );
    let listed = text(&tlscensus(&["services", "--services-file", f]).stdout);
    assert!(listed.contains("our own date"), "{listed}");
    // The same rows in TOML, the date bare as TOML writes dates.
    let toml = dir.path().join("services.toml");
    std::fs::write(
        &toml,
        "[[service]]\nname = \"storage-blob\"\nsuffixes = [\"blob.core.windows.net\"]\ntls_end = 2027-01-01\nsource = \"our own date\"\n\n[[service]]\nname = \"vaults\"\nsuffixes = [\"vault.azure.net\"]\ntls_end = \"2025-01-01\"\n",
    )
    .unwrap();
    let from_toml = flows(&[
        "--services-file",
        toml.to_str().unwrap(),
        "--services",
        "storage-blob,vaults",
    ]);
    assert_eq!(from_toml, got);
    std::fs::write(
        &file,
        r#"[{"name": "x", "suffixes": ["a.example"], "tls_end": "soon"}]"#,
    )
    .unwrap();
    let out = tlscensus(&[
        "read",
        "--services-file",
        f,
        capture("services.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("row 1") && err.contains("\"soon\" is not YYYY-MM-DD"),
        "{err}"
    );
}
