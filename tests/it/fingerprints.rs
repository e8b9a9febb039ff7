//! Client fingerprints and labels (issue 15), end to end through the binary:
//! the hellos of every client stack fingerprints/make-catalogue.sh ran
//! (captures/client-stacks.pcap) get the label of their stack from the
//! built-in catalogue, user catalogues in both layouts extend it, the
//! inventory lists each host's fingerprints, `--by fingerprint` groups them,
//! and `--raw-fingerprints` adds the strings behind the hashes.

use std::collections::BTreeMap;

use crate::common::*;
use md5::{Digest, Md5};
use serde_json::Value;

/// port -> label of fingerprints/cases.tsv (what each port's client was).
fn cases() -> BTreeMap<u64, (String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprints/cases.tsv");
    std::fs::read_to_string(path)
        .expect("fingerprints/cases.tsv")
        .lines()
        .skip(1)
        .map(|l| {
            let mut cells = l.split('\t');
            let port = cells.next().and_then(|p| p.parse().ok()).expect("port");
            let host = cells.next().expect("host").to_string();
            (port, (host, cells.next().expect("label").to_string()))
        })
        .collect()
}

/// Every client stack's flow is fingerprinted and labelled with its own
/// stack (joined with the others when two stacks send identical hellos). A
/// change to the JA4 computation breaks this test: the catalogue holds the
/// values the binary gave when the capture was made.
#[test]
fn every_client_stack_is_labelled() {
    let cases = cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let evs = events_all("client-stacks.pcap");
    let mut seen = BTreeMap::new();
    for e in &evs {
        let port = e["dst_port"].as_u64().unwrap();
        let (host, want) = &cases[&port];
        assert_eq!(e["src_ip"].as_str(), Some(host.as_str()), "{e}");
        let ja4 = e["ja4"].as_str().unwrap_or_else(|| panic!("no ja4: {e}"));
        let label = e["client_label"]
            .as_str()
            .unwrap_or_else(|| panic!("{want} ({ja4}) has no label"));
        assert!(
            label.split(" | ").any(|l| l == want),
            "port {port}: {want:?} labelled {label:?}"
        );
        assert!(e["ja3_hash"].as_str().is_some_and(|h| h.len() == 32), "{e}");
        seen.insert(port, e["client_max_version"].clone());
    }
    let missing: Vec<&String> = (cases.iter())
        .filter(|(p, _)| !seen.contains_key(p))
        .map(|(_, (_, l))| l)
        .collect();
    assert!(missing.is_empty(), "no flow for {missing:?}");
    // The legacy cases offered what their labels say.
    for (port, (_, label)) in &cases {
        let offered = seen[port].as_str().unwrap_or("-");
        if label.ends_with("-tls1") || label.ends_with(" TLSv1") || label.contains("TLS 1.0 only") {
            assert_eq!(offered, "TLSv1.0", "{label}");
        }
    }
}

/// A user catalogue in FoxIO's layout and one in tlscensus' layout: the
/// later file wins for a JA4 both name; events, the host inventory and the
/// fingerprint view show the label.
#[test]
fn user_catalogues_extend_and_override() {
    let ja4 = events_all("curl-tls13.pcap")[0]["ja4"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let foxio = dir.path().join("ja4plus-mapping.csv");
    std::fs::write(
        &foxio,
        format!(
            "Application,Library,Device,OS,ja4,ja4s,ja4h,ja4x,ja4t,ja4tscan,Notes\n\
             Backup agent,OpenSSL,,Linux,{ja4},,,,,,\n\
             ,,,,,,,,,1460_2-4-8-1-3_65535_7,\n"
        ),
    )
    .unwrap();
    let f = foxio.to_str().unwrap();
    let file = capture("curl-tls13.pcap");
    let evs = events(&[&file], &["--all", "--fingerprints", f]);
    assert_eq!(
        evs[0]["client_label"].as_str(),
        Some("Backup agent / OpenSSL / Linux")
    );
    let own = dir.path().join("mine.csv");
    std::fs::write(&own, format!("ja4,label\n{ja4},nightly-sync.sh\n")).unwrap();
    let o = own.to_str().unwrap();
    let evs = events(
        &[&file],
        &["--all", "--fingerprints", f, "--fingerprints", o],
    );
    assert_eq!(evs[0]["client_label"].as_str(), Some("nightly-sync.sh"));

    let path = file.to_str().unwrap();
    let out = tlscensus(&["read", "--all", "--fingerprints", o, path]);
    let table = text(&out.stdout);
    assert!(table.lines().next().unwrap().contains("CLIENT"), "{table}");
    assert!(table.contains("nightly-sync.sh"), "{table}");
    let out = tlscensus(&[
        "read",
        "--all",
        "--format",
        "json",
        "--fingerprints",
        o,
        path,
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fps = &doc["hosts"][0]["fingerprints"];
    assert_eq!(fps[0]["ja4"].as_str(), Some(ja4.as_str()));
    assert_eq!(fps[0]["label"].as_str(), Some("nightly-sync.sh"));
    assert_eq!(fps[0]["flows"], 1);

    // A broken catalogue is a clear error naming the file and line.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "ja4,label\nt13d_nope,x\n").unwrap();
    let out = tlscensus(&["read", "--fingerprints", bad.to_str().unwrap(), path]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.csv:2:") && err.contains("not a JA4"),
        "{err}"
    );
    let out = tlscensus(&["read", "--fingerprints", "/nonexistent.csv", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent.csv"));
}

/// `--by fingerprint`: one row per JA4 over all hosts, most legacy first,
/// with hosts, flows, the highest offered version and the label; as a
/// table, JSON and CSV.
#[test]
fn by_fingerprint_view() {
    let path = capture("client-stacks.pcap");
    let p = path.to_str().unwrap();
    let out = tlscensus(&[
        "read",
        "--all",
        "--by",
        "fingerprint",
        "--format",
        "json",
        p,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["fingerprints"].as_array().unwrap();
    let evs = events_all("client-stacks.pcap");
    let distinct: std::collections::BTreeSet<&str> =
        evs.iter().filter_map(|e| e["ja4"].as_str()).collect();
    assert_eq!(rows.len(), distinct.len());
    let total: u64 = rows.iter().map(|r| r["flows"].as_u64().unwrap()).sum();
    assert_eq!(total, evs.len() as u64);
    // Legacy rows first; each row's figures agree with its events.
    let legacy: Vec<u64> = rows
        .iter()
        .map(|r| r["legacy_flows"].as_u64().unwrap())
        .collect();
    assert!(legacy.windows(2).all(|w| w[0] >= w[1]), "{legacy:?}");
    for r in rows {
        let ja4 = r["ja4"].as_str().unwrap();
        let mine: Vec<&Value> = evs.iter().filter(|e| e["ja4"] == ja4).collect();
        assert_eq!(r["flows"].as_u64(), Some(mine.len() as u64), "{ja4}");
        let legacy = mine.iter().filter(|e| e["legacy"] == true).count() as u64;
        assert_eq!(r["legacy_flows"].as_u64(), Some(legacy), "{ja4}");
        let mut hosts: Vec<&str> = r["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        hosts.sort_unstable();
        let mut want: Vec<&str> = mine.iter().map(|e| e["src_ip"].as_str().unwrap()).collect();
        want.sort_unstable();
        want.dedup();
        assert_eq!(hosts, want, "{ja4}");
        assert_eq!(r["label"], mine[0]["client_label"], "{ja4}");
        let max = mine
            .iter()
            .filter_map(|e| e["client_max_version"].as_str())
            .max();
        assert_eq!(r["max_offered_version"].as_str(), max, "{ja4}");
        assert_eq!(r["server_names"], serde_json::json!(["catalogue.test"]));
    }
    let out = tlscensus(&["read", "--all", "--by", "fingerprint", p]);
    let table = text(&out.stdout);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("JA4") && header.contains("CLIENT"),
        "{table}"
    );
    assert!(table.contains("Java"), "{table}");
    let out = tlscensus(&["read", "--all", "--by", "fingerprint", "--format", "csv", p]);
    let csv = text(&out.stdout);
    assert_eq!(csv.lines().count(), rows.len() + 1, "{csv}");
    assert!(csv.starts_with("ja4,ja3_hash,label,hosts,flows,legacy_flows"));
}

/// `--raw-fingerprints`: JA4_r names the JA4 prefix and its lists, and the
/// JA3 string hashes to the JA3 hash; without the flag neither is written.
#[test]
fn raw_fingerprints_on_request() {
    let path = capture("client-stacks.pcap");
    let evs = events(&[&path], &["--all", "--raw-fingerprints"]);
    assert!(!evs.is_empty());
    for e in &evs {
        let (ja4, ja4_r) = (e["ja4"].as_str().unwrap(), e["ja4_r"].as_str().unwrap());
        assert_eq!(ja4[..11], ja4_r[..11], "{e}");
        let ja3 = e["ja3"].as_str().unwrap();
        let md5: String = Md5::digest(ja3.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(e["ja3_hash"].as_str(), Some(md5.as_str()), "{ja3}");
    }
    let plain = events(&[&path], &["--all"]);
    assert!(
        plain
            .iter()
            .all(|e| e.get("ja4_r").is_none() && e.get("ja3").is_none())
    );
}

/// A hello is fingerprinted only when its flow can be inventoried: a server
/// name that is no target and no alias of one (and no `--all`) skips the
/// JA4, counted; targets, CNAME aliases of targets and `--all` flows all
/// carry theirs.
#[test]
fn only_inventoried_hellos_fingerprinted() {
    // (skipped, flows, target flows)
    let counts = |extra: &[&str]| {
        let m = metrics_after_read(&["services.pcap"], extra);
        let sum = |family: &str| -> f64 {
            m.lines()
                .filter(|l| l.starts_with(family) && !l.starts_with('#'))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        (
            value(&m, "tlscensus_client_hellos_not_fingerprinted_total").unwrap(),
            sum("tlscensus_flows_total{"),
            sum("tlscensus_target_flows_total{"),
        )
    };
    // services.pcap: 13 flows, 4 of them Blob Storage (the default target).
    assert_eq!(counts(&[]), (9.0, 13.0, 4.0));
    let (skipped, flows, targets) = counts(&["--services", "storage"]);
    assert!(
        targets > 4.0 && skipped == flows - targets,
        "{skipped} {flows} {targets}"
    );
    assert_eq!(counts(&["--all"]).0, 0.0);
    for (file, extra) in [
        ("services.pcap", &[][..]),
        ("services.pcap", &["--all"][..]),
        ("dns-cname-custom-domain.pcap", &[][..]),
    ] {
        let evs = events(&[capture(file).as_path()], extra);
        assert!(!evs.is_empty(), "{file}");
        for e in &evs {
            assert!(e["ja4"].is_string(), "{file} {extra:?}: {e}");
        }
    }
}
