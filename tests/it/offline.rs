//! End to end through the binary: every shipped capture, every event field.

use crate::common::*;
use serde_json::{Value, json};

/// One event on one line: `src_ip:dst_port sni client_max/negotiated
/// alert=… outcome [legacy] [target=how]`, `-` for a missing value and `.B`
/// for `.blob.core.windows.net`. Also checks what every event of these
/// captures shares: the server address, the time format, an ephemeral client
/// port (checked against tshark in tests/tshark.rs).
fn line(e: &Value) -> String {
    let dst = if e["src_ip"].as_str().unwrap_or("").contains(':') {
        "2001:db8::1"
    } else {
        "192.0.2.1"
    };
    assert_eq!(e["dst_ip"], json!(dst), "{e}");
    let ts = e["ts"].as_str().unwrap_or("");
    assert!(
        ts.len() == 27 && ts.ends_with('Z') && ts.starts_with("20"),
        "{e}: ts {ts}"
    );
    assert!(e["src_port"].as_u64().is_some_and(|p| p > 1024), "{e}");
    let s = |k: &str| {
        e[k].as_str()
            .unwrap_or("-")
            .replace(".blob.core.windows.net", ".B")
    };
    let mut l = format!(
        "{}:{} {} {}/{} alert={} {}",
        s("src_ip"),
        e["dst_port"],
        s("sni"),
        s("client_max_version"),
        s("negotiated_version"),
        s("server_alert"),
        s("outcome"),
    );
    if e["legacy"] == json!(true) {
        l.push_str(" legacy");
    }
    // These captures carry no DNS and no --target-cidr is given: a target
    // without SNI can only be known by its certificate.
    if e["target"] == json!(true) {
        l.push_str(&format!(" target={}", s("match")));
    }
    l
}

#[test]
fn every_real_capture_every_field() {
    let cases: &[(&str, &[&str])] = &[
        (
            "openssl-tls10-rejected.pcap",
            &[
                "192.0.2.11:40001 legacy10.B TLSv1.0/- alert=protocol_version rejected legacy target=sni",
            ],
        ),
        (
            "openssl-tls11-rejected.pcap",
            &[
                "192.0.2.11:40002 legacy11.B TLSv1.1/- alert=protocol_version rejected legacy target=sni",
            ],
        ),
        (
            "openssl-tls10.pcap",
            &["192.0.2.12:40003 old10.B TLSv1.0/TLSv1.0 alert=- negotiated legacy target=sni"],
        ),
        (
            "openssl-tls11.pcap",
            &["192.0.2.12:40004 old11.B TLSv1.1/TLSv1.1 alert=- negotiated legacy target=sni"],
        ),
        (
            "openssl-tls10-nosni.pcap",
            &[
                // No SNI, but the server's certificate is *.blob.core.windows.net.
                "192.0.2.12:40005 - TLSv1.0/TLSv1.0 alert=- negotiated legacy target=certificate",
            ],
        ),
        (
            "openssl-tls10-other-sni.pcap",
            &["192.0.2.12:40006 intranet.example.org TLSv1.0/TLSv1.0 alert=- negotiated legacy"],
        ),
        (
            "openssl-tls12.pcap",
            &["192.0.2.13:40007 modern12.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni"],
        ),
        (
            "openssl-tls13.pcap",
            &["192.0.2.13:40008 modern13.B TLSv1.3/TLSv1.3 alert=- negotiated target=sni"],
        ),
        (
            "openssl-tls13-hrr.pcap",
            &["192.0.2.13:40009 retry13.B TLSv1.3/TLSv1.3 alert=- negotiated target=sni"],
        ),
        (
            "openssl-downgrade-tls11.pcap",
            &["192.0.2.13:40010 downgraded.B TLSv1.3/TLSv1.1 alert=- negotiated legacy target=sni"],
        ),
        (
            "openssl-tls12-split-hello.pcap",
            &["192.0.2.18:40011 split.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni"],
        ),
        (
            "openssl-tls10-split-rejected.pcap",
            &[
                "192.0.2.18:40012 splitlegacy.B TLSv1.0/- alert=protocol_version rejected legacy target=sni",
            ],
        ),
        (
            "openssl-tls12-resumption.pcap",
            &[
                "192.0.2.13:40013 resume.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni",
                "192.0.2.13:40013 resume.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni",
            ],
        ),
        (
            "openssl-ipv6-tls11.pcap",
            &["2001:db8::12:40014 v6legacy.B TLSv1.1/TLSv1.1 alert=- negotiated legacy target=sni"],
        ),
        (
            "gnutls-tls11.pcap",
            &["192.0.2.14:40015 gnutls11.B TLSv1.1/TLSv1.1 alert=- negotiated legacy target=sni"],
        ),
        (
            "gnutls-tls12.pcap",
            &["192.0.2.14:40016 gnutls12.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni"],
        ),
        (
            "gnutls-tls13.pcap",
            &["192.0.2.14:40017 gnutls13.B TLSv1.3/TLSv1.3 alert=- negotiated target=sni"],
        ),
        (
            "python-tls12.pcap",
            &["192.0.2.15:40018 py12.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni"],
        ),
        (
            "python-tls10-rejected.pcap",
            &[
                "192.0.2.15:40019 py10.B TLSv1.0/- alert=protocol_version rejected legacy target=sni",
            ],
        ),
        (
            "curl-tls10-rejected.pcap",
            &[
                "192.0.2.16:40020 curlacct.B TLSv1.0/- alert=protocol_version rejected legacy target=sni",
            ],
        ),
        (
            "curl-tls13.pcap",
            &["192.0.2.16:40021 curl13.B TLSv1.3/TLSv1.3 alert=- negotiated target=sni"],
        ),
        // An SSLv2-format hello carries no SNI; the certificate tells the server.
        (
            "raw-sslv2-hello-tls10.pcap",
            &["192.0.2.17:40022 - TLSv1.0/TLSv1.0 alert=- negotiated legacy target=certificate"],
        ),
        (
            "raw-sslv3-hello.pcap",
            &["192.0.2.17:40023 - SSLv3/- alert=handshake_failure rejected legacy"],
        ),
        ("plain-http.pcap", &[]),
        // Asymmetric routing: only the server's packets. The receiver is the client.
        // The TLS 1.2 answer shows the server's certificate, so it is a target.
        (
            "server-only.pcap",
            &[
                "192.0.2.11:40001 - -/- alert=protocol_version rejected",
                "192.0.2.13:40007 - -/TLSv1.2 alert=- negotiated target=certificate",
            ],
        ),
        (
            "client-only.pcap",
            &["192.0.2.13:40008 modern13.B TLSv1.3/- alert=- unanswered target=sni"],
        ),
        // No SYN before the ClientHello; a second flow seen only after its handshake.
        (
            "midflow.pcap",
            &["192.0.2.13:40007 modern12.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni"],
        ),
        (
            "port-reuse.pcap",
            &[
                "192.0.2.11:40001 legacy10.B TLSv1.0/- alert=protocol_version rejected legacy target=sni",
                "192.0.2.11:40001 modern12.B TLSv1.2/TLSv1.2 alert=- negotiated target=sni",
            ],
        ),
        // Cut to 96 bytes: the hello's own version is all that shows
        // (regression_12: it was silently nothing); checked in detail below.
        (
            "snaplen-96.pcap",
            &["192.0.2.13:40007 - -/- alert=- negotiated"],
        ),
    ];
    for (file, want) in cases {
        let got: Vec<String> = events_all(file).iter().map(line).collect();
        assert_eq!(got, *want, "{file}");
    }
}

#[test]
fn extra_fields() {
    let sslv2 = events_all("raw-sslv2-hello-tls10.pcap");
    assert_eq!(sslv2[0]["sslv2_hello"], json!(true));
    assert_eq!(sslv2[0]["client_hello_version"], json!("TLSv1.0"));
    let hrr = events_all("openssl-tls13-hrr.pcap");
    assert_eq!(hrr[0]["hello_retry"], json!(true));
    assert_eq!(hrr[0]["client_versions"], json!(["TLSv1.3"]));
    let t13 = events_all("curl-tls13.pcap");
    assert_eq!(t13[0]["hello_retry"], json!(false));
    assert_eq!(t13[0]["client_hello_version"], json!("TLSv1.2"));
    let t10 = events_all("openssl-tls10.pcap");
    assert_eq!(t10[0]["client_versions"], Value::Null);
}

fn strip(e: &[Value]) -> Vec<Value> {
    // Timestamps may differ in precision between variants; everything else must not.
    e.iter()
        .map(|v| {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                let ts = o
                    .get("ts")
                    .and_then(|t| t.as_str())
                    .unwrap_or("")
                    .to_string();
                o.insert("ts".into(), json!(ts.get(..19).unwrap_or("")));
            }
            v
        })
        .collect()
}

fn by_port(mut e: Vec<Value>) -> Vec<Value> {
    e.sort_by_key(|v| (v["dst_port"].as_u64(), v["src_port"].as_u64()));
    e
}

/// The events of the three captures derive.py wraps in other link layers and tunnels.
fn plain_link_base() -> Vec<Value> {
    let plain = by_port(events(
        &[
            &capture("openssl-tls10-rejected.pcap"),
            &capture("openssl-tls12.pcap"),
            &capture("openssl-ipv6-tls11.pcap"),
        ],
        &["--all"],
    ));
    assert_eq!(plain.len(), 3);
    plain
}

#[test]
fn link_layers_and_encapsulations_match_plain_ethernet() {
    let plain = plain_link_base();
    for variant in [
        "link-vlan.pcap",
        "link-qinq.pcap",
        "link-sll.pcap",
        "link-sll2.pcap",
        "link-raw.pcap",
        "link-null.pcap",
        "link-loop.pcap",
        "link-ethernet-nsec-bigendian.pcap",
    ] {
        let got = by_port(events_all(variant));
        assert_eq!(strip(&got), strip(&plain), "{variant}");
    }
}

/// Issue 5: mirror-port tunnels, and issue 27's access-network ones (GTP-U
/// over IPv4 and IPv6 with extension headers, PPPoE in QinQ, CAPWAP data with
/// 802.3 and 802.11 frames). The inner flows of every tunnel (and of a
/// tunnel whose outer packets were fragmented) are exactly the plain flows;
/// the tunnel endpoints (198.51.100.1/2) never become hosts.
#[test]
fn tunnels_match_plain_ethernet() {
    let plain = plain_link_base();
    for variant in [
        "tunnel-vxlan.pcap",
        "tunnel-geneve.pcap",
        "tunnel-gre-teb.pcap",
        "tunnel-gre-ip.pcap",
        "tunnel-erspan2.pcap",
        "tunnel-erspan3.pcap",
        "tunnel-mpls.pcap",
        "tunnel-mpls-pw.pcap",
        "tunnel-nested.pcap",
        "tunnel-vxlan-fragmented.pcap",
        "tunnel-gtpu.pcap",
        "tunnel-gtpu-ipv6.pcap",
        "tunnel-pppoe-qinq.pcap",
        "tunnel-capwap-8023.pcap",
        "tunnel-capwap-80211.pcap",
    ] {
        let got = by_port(events_all(variant));
        assert_eq!(strip(&got), strip(&plain), "{variant}");
        for e in &got {
            assert!(!e.to_string().contains("198.51.100."), "{variant}: {e}");
        }
    }
    // VXLAN on a port of its own is decoded only when told.
    let path = capture("tunnel-vxlan-8472.pcap");
    assert!(events(&[&path], &["--all"]).is_empty());
    let got = by_port(events(&[&path], &["--all", "--vxlan-port", "8472"]));
    assert_eq!(strip(&got), strip(&plain));
}

#[test]
fn pcapng_with_mixed_link_types() {
    let plain = by_port(events(
        &[
            &capture("openssl-tls10-rejected.pcap"),
            &capture("openssl-tls12.pcap"),
            &capture("openssl-tls11.pcap"),
        ],
        &["--all"],
    ));
    assert_eq!(
        strip(&by_port(events_all("mixed-linktypes.pcapng"))),
        strip(&plain)
    );
}

#[test]
fn fragments_reordering_and_retransmission_do_not_change_results() {
    for (variant, plain) in [
        ("ipv4-fragments.pcap", "openssl-tls10-rejected.pcap"),
        ("ipv6-fragments.pcap", "openssl-ipv6-tls11.pcap"),
        (
            "tcp-reordered-retransmitted.pcap",
            "openssl-tls12-split-hello.pcap",
        ),
    ] {
        assert_eq!(
            strip(&events_all(variant)),
            strip(&events_all(plain)),
            "{variant}"
        );
    }
}

#[test]
fn default_inventories_only_target_servers() {
    let files = [
        capture("openssl-tls10-other-sni.pcap"),
        capture("openssl-tls10-nosni.pcap"),
        capture("openssl-tls12.pcap"),
    ];
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let ev = events(&refs, &[]);
    let mut got: Vec<(Value, Value)> = ev
        .iter()
        .map(|e| (e["sni"].clone(), e["match"].clone()))
        .collect();
    got.sort_by_key(|g| g.0.to_string());
    // The client that named another server is not a target, although that
    // server shows a storage certificate: the SNI is what the client wanted.
    assert_eq!(
        got,
        [
            (json!("modern12.blob.core.windows.net"), json!("sni")),
            (Value::Null, json!("certificate")),
        ]
    );
    // --target replaces the defaults
    let ev = events(&refs, &["--target", "*.EXAMPLE.org"]);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["sni"], json!("intranet.example.org"));
    // --min-version moves the legacy line
    let ev = events(
        &[&capture("openssl-tls12.pcap")],
        &["--min-version", "TLSv1.3"],
    );
    assert_eq!(ev[0]["legacy"], json!(true));
}

#[test]
fn demo_table_lists_legacy_hosts_first() {
    let out = tlscensus(&["read", capture("demo.pcapng").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("HOST"), "{stdout}");
    // 4 legacy hosts first, then the two modern ones.
    let hosts: Vec<&str> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(hosts.len(), 6, "{stdout}");
    let legacy_cols: Vec<u64> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| {
            // HOST, HOST NAME ("-" here), FLOWS, LEGACY
            l.split_whitespace()
                .nth(3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(99)
        })
        .collect();
    assert_eq!(legacy_cols, vec![1, 1, 1, 1, 0, 0], "{stdout}");
    let summary = lines[lines.len() - 1];
    assert!(
        summary.starts_with("6 hosts, 7 TLS flows inventoried (4 legacy from 4 hosts, 2 rejected"),
        "{summary}"
    );
    assert!(summary.contains("8 TLS flows seen in all"), "{summary}");
}

#[test]
fn json_and_csv_formats() {
    let demo = capture("demo.pcapng");
    let out = tlscensus(&["read", "--format", "json", demo.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(v["summary"]["hosts"], json!(6));
    assert_eq!(v["summary"]["legacy_flows"], json!(4));
    let first = &v["hosts"][0];
    assert!(first["legacy_flows"].as_u64() == Some(1));
    assert!(first["first_seen"].as_str().unwrap_or("").ends_with('Z'));
    let host16 = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == json!("192.0.2.16"))
        .unwrap();
    assert_eq!(host16["versions"], json!({"TLSv1.0": 1}));
    assert_eq!(host16["legacy_versions"], json!(["TLSv1.0"]));
    assert_eq!(host16["rejected_flows"], json!(1));
    assert_eq!(
        host16["server_names"],
        json!(["curlacct.blob.core.windows.net"])
    );

    let out = tlscensus(&["read", "--format", "csv", demo.to_str().unwrap()]);
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "host,host_name,host_name_source,flows,legacy_flows,rejected_flows,unanswered_flows,SSLv2,SSLv3,TLSv1.0,TLSv1.1,TLSv1.2,TLSv1.3,other,unknown,legacy_versions,server_names,first_seen,last_seen,ja4,client,services,legacy_services"
        )
    );
    assert_eq!(lines.count(), 6);
    assert!(
        text(&out.stderr).contains("6 hosts"),
        "summary goes to stderr with csv"
    );
}

#[test]
fn metrics_file_holds_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tlscensus.prom");
    let out = tlscensus(&[
        "read",
        "--metrics-file",
        path.to_str().unwrap(),
        capture("demo.pcapng").to_str().unwrap(),
        capture("plain-http.pcap").to_str().unwrap(),
        capture("snaplen-96.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m = std::fs::read_to_string(&path).unwrap();
    let has = |line: &str| assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    has(
        r#"tlscensus_flows_total{outcome="rejected",preamble="none",target="true",version="TLSv1.0"} 2"#,
    );
    has(
        r#"tlscensus_flows_total{outcome="negotiated",preamble="none",target="false",version="TLSv1.0"} 1"#,
    );
    has(
        r#"tlscensus_flows_total{outcome="negotiated",preamble="none",target="true",version="TLSv1.3"} 1"#,
    );
    has(
        r#"tlscensus_legacy_flows_total{outcome="rejected",source="192.0.2.11",version="TLSv1.0"} 1"#,
    );
    has(
        r#"tlscensus_legacy_flows_total{outcome="negotiated",source="192.0.2.14",version="TLSv1.1"} 1"#,
    );
    has("tlscensus_non_tls_flows_total 1");
    has(r#"tlscensus_tls_parse_errors_total{kind="incomplete"} 0"#);
    has("tlscensus_cut_handshakes_total 2");
    has(r#"tlscensus_bound_hits_total{bound="flow_table"} 0"#);
    has(r#"tlscensus_inputs_total{result="ok"} 3"#);
    // the other-SNI host is not a target: no per-host series for it
    assert!(
        !m.contains(r#"source="192.0.2.12",version="TLSv1.0""#),
        "{m}"
    );
    let packets: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("tlscensus_packets_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(packets > 100);
}

#[test]
fn legacy_source_series_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.prom");
    tlscensus(&[
        "read",
        "--max-legacy-sources",
        "2",
        "--metrics-file",
        path.to_str().unwrap(),
        capture("demo.pcapng").to_str().unwrap(),
    ]);
    let m = std::fs::read_to_string(&path).unwrap();
    let sources: std::collections::BTreeSet<&str> = m
        .lines()
        .filter(|l| l.starts_with("tlscensus_legacy_flows_total{"))
        .filter_map(|l| l.split("source=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(sources.len(), 3, "{sources:?}");
    assert!(sources.contains("other"));
    assert!(
        m.contains(r#"tlscensus_bound_hits_total{bound="legacy_sources"} 2"#),
        "{m}"
    );
}

#[test]
fn bounds_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.prom");
    // One flow slot, tiny stream cap: evictions and cap hits must show.
    let out = tlscensus(&[
        "read",
        "--all",
        "--workers",
        "1",
        "--max-flows",
        "1",
        "--max-stream-bytes",
        "64",
        "--metrics-file",
        path.to_str().unwrap(),
        capture("demo.pcapng").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m = std::fs::read_to_string(&path).unwrap();
    let value = |prefix: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        value(r#"tlscensus_bound_hits_total{bound="stream_bytes"}"#) > 0,
        "{m}"
    );
    assert!(
        value(r#"tlscensus_tls_parse_errors_total{kind="handshake_too_large"}"#) > 0
            || value(r#"tlscensus_bound_hits_total{bound="stream_bytes"}"#) > 0
    );
    assert!(
        value(r#"tlscensus_flows_tracked"#) == 0,
        "all flows drained at the end: {m}"
    );
}

#[test]
fn truncated_capture_keeps_what_came_before() {
    let out = tlscensus(&[
        "read",
        "--all",
        "--events",
        "-",
        capture("truncated.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("truncated.pcap") && stderr.contains("truncated"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "both flows before the cut"
    );
}

#[test]
fn bad_inputs_get_one_line_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all, just text\n").unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let header_only = dir.path().join("half-header.pcap");
    std::fs::write(&header_only, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]).unwrap();
    let missing = dir.path().join("missing.pcap");
    let good = capture("openssl-tls10-rejected.pcap");
    let out = tlscensus(&[
        "read",
        "--events",
        "-",
        missing.to_str().unwrap(),
        junk.to_str().unwrap(),
        empty.to_str().unwrap(),
        header_only.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 4, "{stderr}");
    assert!(
        errors[0].contains("missing.pcap") && errors[0].contains("No such file"),
        "{stderr}"
    );
    assert!(
        errors[1].contains("junk.pcap") && errors[1].contains("not a pcap or pcapng"),
        "{stderr}"
    );
    assert!(errors[2].contains("empty.pcap"), "{stderr}");
    assert!(errors[3].contains("half-header.pcap"), "{stderr}");
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "the good file was still read"
    );
    assert!(!stderr.contains("panicked"));
}

#[cfg(unix)]
#[test]
fn unreadable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = dir.path().join("secret.pcap");
    std::fs::copy(capture("openssl-tls12.pcap"), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bin = env!("CARGO_BIN_EXE_tlscensus");
    // Root reads anything: run as "nobody" then (CI runs as root).
    let out = if is_root() {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                bin,
                "read",
            ])
            .arg(&p)
            .output()
            .expect("setpriv (util-linux)")
    } else {
        tlscensus(&["read", p.to_str().unwrap()])
    };
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("secret.pcap") && stderr.contains("Permission denied"),
        "{stderr}"
    );
}

#[test]
fn directory_argument_reads_captures_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        capture("openssl-tls11-rejected.pcap"),
        dir.path().join("b.pcap"),
    )
    .unwrap();
    std::fs::copy(
        capture("openssl-tls10-rejected.pcap"),
        dir.path().join("a.cap"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a capture").unwrap();
    let out = tlscensus(&[
        "read",
        "--events",
        "-",
        "--workers",
        "1",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        text(&out.stderr).contains("skipped 1 file"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn exit_status_and_argument_errors() {
    let legacy = capture("openssl-tls10-rejected.pcap");
    let modern = capture("openssl-tls13.pcap");
    let code = |args: &[&str]| tlscensus(args).status.code();
    assert_eq!(
        code(&["read", "--fail-on-legacy", legacy.to_str().unwrap()]),
        Some(1)
    );
    assert_eq!(
        code(&["read", "--fail-on-legacy", modern.to_str().unwrap()]),
        Some(0)
    );
    assert_eq!(code(&["read", legacy.to_str().unwrap()]), Some(0));
    for bad in [
        vec!["read"],
        vec!["read", "--min-version", "TLSv9", "x.pcap"],
        vec!["read", "--target", "a*b.com", "x.pcap"],
        vec!["read", "--workers", "0", "x.pcap"],
        vec!["read", "--max-flows", "0", "x.pcap"],
        vec!["read", "--format", "xml", "x.pcap"],
        vec!["frobnicate"],
    ] {
        let out = tlscensus(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let err = text(&out.stderr);
        assert!(
            !err.is_empty() && !err.contains("panicked"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn events_to_a_file_and_report_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("events.ndjson");
    let out = tlscensus(&[
        "read",
        "--events",
        ev.to_str().unwrap(),
        capture("demo.pcapng").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("HOST"));
    assert_eq!(std::fs::read_to_string(&ev).unwrap().lines().count(), 7);
    // an event log that cannot be created is a setup error
    let out = tlscensus(&[
        "read",
        "--events",
        "/nonexistent-dir/x.ndjson",
        capture("demo.pcapng").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent-dir/x.ndjson"));
}

#[test]
fn rotated_files_continue_one_stream() {
    // The two halves of one capture, read as two files: the flow spans both.
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(capture("openssl-tls12.pcap")).unwrap();
    // split after the 5th packet record (classic pcap, little endian)
    let mut off = 24;
    for _ in 0..5 {
        let caplen = u32::from_le_bytes(src[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
    }
    let a = dir.path().join("part0.pcap");
    let b = dir.path().join("part1.pcap");
    std::fs::write(&a, &src[..off]).unwrap();
    let mut second = src[..24].to_vec();
    second.extend_from_slice(&src[off..]);
    std::fs::write(&b, second).unwrap();
    let ev = events(&[&a, &b], &[]);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.2"));
    assert_eq!(ev[0]["client_max_version"], json!("TLSv1.2"));
}

/// A capture made on a faulty mirror says so in its summary and metrics. The
/// generator's handshake-heavy mix (real handshakes), with 1% and 5% of its
/// TCP frames dropped at random, reports that loss within 20% of it (about
/// 23,000 segments are in the window: one standard deviation is 7% of the
/// injected rate at 1%); with its server side removed, it reads "one
/// direction only"; whole, it reports neither.
#[test]
fn lossy_and_one_sided_captures_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("mix.pcap");
    gen_capture(
        &mix,
        &[
            "--bytes",
            "100000000",
            "--handshake-share",
            "0.40",
            "--seed",
            "5",
            "--concurrent",
            "128",
        ],
    );
    let read = |file: &std::path::Path| {
        let prom = dir.path().join("m.prom");
        let out = tlscensus(&[
            "read",
            "--no-progress",
            "--format",
            "csv",
            "--metrics-file",
            prom.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let stderr = text(&out.stderr);
        let summary = stderr.lines().last().unwrap_or_default().to_string();
        (summary, std::fs::read_to_string(&prom).unwrap())
    };
    let get = |m: &str, s: &str| value(m, s).unwrap_or(0.0);
    let iface = "{interface=\"file\"}";

    let (summary, m) = read(&mix);
    assert!(!summary.contains("upstream loss"), "{summary}");
    assert!(!summary.contains("one direction"), "{summary}");
    assert_eq!(
        get(&m, &format!("tlscensus_capture_loss_bytes_total{iface}")),
        0.0
    );
    assert!(
        get(
            &m,
            &format!("tlscensus_capture_loss_window_bytes_total{iface}")
        ) > 1e7
    );
    let both = get(
        &m,
        "tlscensus_mirror_flows_total{interface=\"file\",seen=\"both\"}",
    );
    assert!(both > 5000.0, "{m}");

    for (p, seed) in [(0.01, 3), (0.05, 4)] {
        let lossy = dir.path().join(format!("loss-{p}.pcap"));
        mirror_faults(&mix, &lossy, p, false, seed);
        let (summary, m) = read(&lossy);
        let ratio = get(&m, &format!("tlscensus_capture_loss_ratio{iface}"));
        assert!(
            (ratio - p).abs() <= 0.2 * p,
            "{p} dropped, {ratio} reported\n{summary}"
        );
        assert!(summary.contains("upstream loss: "), "{summary}");
        assert!(get(&m, &format!("tlscensus_handshake_gaps_total{iface}")) > 0.0);
        assert!(!summary.contains("one direction"), "{summary}");
    }

    let one_way = dir.path().join("one-way.pcap");
    mirror_faults(&mix, &one_way, 0.0, true, 1);
    let (summary, m) = read(&one_way);
    assert!(
        summary.contains("one direction only: ") && summary.contains("client to server"),
        "{summary}"
    );
    assert_eq!(
        get(
            &m,
            "tlscensus_mirror_flows_total{interface=\"file\",seen=\"both\"}"
        ),
        0.0
    );
    assert_eq!(
        get(
            &m,
            "tlscensus_mirror_flows_total{interface=\"file\",seen=\"client_only\"}"
        ),
        both
    );
    assert!(
        get(&m, &format!("tlscensus_mirror_one_sided_blocks{iface}")) >= 1.0,
        "{m}"
    );
    // The server's acknowledgements never came: no loss is claimed for
    // bytes nobody was seen to acknowledge.
    assert_eq!(
        get(&m, &format!("tlscensus_capture_loss_bytes_total{iface}")),
        0.0
    );
}
