//! Issue 5, end to end through the binary: target flows without a matching
//! SNI, found by passive DNS (real dnsmasq answers, captures/make-dns-captures.sh),
//! by --target-cidr, by the Azure Service Tags file and by the server certificate
//! (captures/make-cert-captures.sh).

use crate::common::*;
use serde_json::{Value, json};

/// (match, account, target_name) of the only event of a capture.
fn only(file: &str, extra: &[&str]) -> Value {
    let mut args = vec!["--all"];
    args.extend(extra);
    let e = events(&[&capture(file)], &args);
    assert_eq!(e.len(), 1, "{file}: {e:#?}");
    e[0].clone()
}

fn matched(e: &Value) -> (Value, Value, Value, Value) {
    (
        e["target"].clone(),
        e["match"].clone(),
        e["account"].clone(),
        e["target_name"].clone(),
    )
}

/// What a flow matched through a target name (from DNS or a certificate)
/// gives: (target, match, account, target_name).
fn via_name(how: &str, account: &str) -> (Value, Value, Value, Value) {
    (
        json!(true),
        json!(how),
        json!(account),
        json!(format!("{account}.blob.core.windows.net")),
    )
}

/// What a flow matched by the server certificate of the sample captures gives
/// (`captures/make-captures.sh`: CN and SAN `*.blob.core.windows.net`).
fn via_certificate() -> (Value, Value, Value, Value) {
    (
        json!(true),
        json!("certificate"),
        json!(null),
        json!("*.blob.core.windows.net"),
    )
}

#[test]
fn passive_dns_finds_flows_without_a_target_sni() {
    // A custom domain: the SNI is files.contoso.example, a CNAME of the account.
    let e = only("dns-cname-custom-domain.pcap", &[]);
    assert_eq!(e["sni"], json!("files.contoso.example"));
    assert_eq!(e["negotiated_version"], json!("TLSv1.0"));
    assert_eq!(matched(&e), via_name("cname", "acct7"));
    // No SNI, to the address of a private endpoint (privatelink chain), rejected.
    let e = only("dns-privatelink-nosni.pcap", &[]);
    assert_eq!(
        (e["sni"].clone(), e["outcome"].clone()),
        (json!(null), json!("rejected"))
    );
    assert_eq!(matched(&e), via_name("dns_address", "acct8"));
    // The answer came over DNS-over-TCP.
    let e = only("dns-tcp-nosni.pcap", &[]);
    assert_eq!(e["negotiated_version"], json!("TLSv1.1"));
    assert_eq!(matched(&e), via_name("dns_address", "acct7"));
    // An unrelated name for the same server address teaches nothing: only
    // the server's (TLS 1.0, clear-text) certificate makes it a target.
    let e = only("dns-unrelated-nosni.pcap", &[]);
    assert_eq!(matched(&e), via_certificate());
    // An SNI match says so and names the account.
    let e = only("openssl-tls10-rejected.pcap", &[]);
    assert_eq!(
        matched(&e),
        (json!(true), json!("sni"), json!("legacy10"), json!(null))
    );
    let e = only("curl-tls10-rejected.pcap", &[]);
    assert_eq!(
        matched(&e),
        (json!(true), json!("sni"), json!("curlacct"), json!(null))
    );
    // Without --all, only the target flows are inventoried: the DNS-matched
    // legacy host is listed with one flow, not its flow to another server.
    let out = tlscensus(&[
        "read",
        "--format",
        "csv",
        capture("dns-cname-custom-domain.pcap").to_str().unwrap(),
        capture("openssl-tls10-other-sni.pcap").to_str().unwrap(),
    ]);
    let csv = text(&out.stdout);
    assert!(csv.contains("192.0.2.12,,,1,1,"), "{csv}");
}

#[test]
fn passive_dns_answer_expires_with_its_ttl() {
    // Resolved with a 5 s TTL, connected 7 s later: not known by DNS (only
    // by the certificate)...
    let e = only("dns-expired-nosni.pcap", &[]);
    assert_eq!(e["negotiated_version"], json!("TLSv1.0"));
    assert_eq!(matched(&e), via_certificate());
    // ...unless answers are kept past their TTL.
    let e = only("dns-expired-nosni.pcap", &["--dns-grace", "10"]);
    assert_eq!(matched(&e), via_name("dns_address", "acct8"));
}

/// The DNS captures merged and wrapped in every tunnel give the same events
/// as the plain captures: DNS is learned inside the tunnels too.
#[test]
fn passive_dns_inside_every_tunnel() {
    let plain: Vec<&str> = vec![
        "dns-cname-custom-domain.pcap",
        "dns-privatelink-nosni.pcap",
        "dns-tcp-nosni.pcap",
        "dns-expired-nosni.pcap",
    ];
    let key = |e: &Value| {
        let mut e = e.clone();
        if let Some(o) = e.as_object_mut() {
            o.remove("ts");
        }
        e.to_string()
    };
    let mut want: Vec<String> = plain
        .iter()
        .flat_map(|f| events(&[&capture(f)], &["--all"]))
        .map(|e| key(&e))
        .collect();
    want.sort();
    assert_eq!(want.len(), 4);
    assert_eq!(
        want.iter()
            .filter(|e| e.contains("\"match\":\"dns_address\""))
            .count(),
        2
    );
    for kind in [
        "vxlan", "geneve", "gre-teb", "gre-ip", "erspan2", "erspan3", "mpls", "mpls-pw", "nested",
    ] {
        let file = format!("dns-tunnel-{kind}.pcap");
        let mut got: Vec<String> = events_all(&file).iter().map(key).collect();
        got.sort();
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn target_cidr_finds_flows_without_sni() {
    let nosni = "openssl-tls10-nosni.pcap";
    assert_eq!(matched(&only(nosni, &[])), via_certificate());
    let e = only(
        nosni,
        &[
            "--target-cidr",
            "10.0.0.0/8",
            "--target-cidr",
            "192.0.2.0/28",
        ],
    );
    assert_eq!(
        matched(&e),
        (json!(true), json!("cidr"), json!(null), json!(null))
    );
    // IPv6 prefixes, and a prefix that does not hold the server.
    let e = only(
        "openssl-ipv6-tls11.pcap",
        &["--target-cidr", "2001:db8::/64"],
    );
    assert_eq!(e["match"], json!("sni"), "an SNI match comes first");
    assert_eq!(
        only(nosni, &["--target-cidr", "192.0.2.16/28"])["match"],
        json!("certificate")
    );
    // With target names the certificate does not match, the address decides.
    let names = ["--target", "*.example.net"];
    let e = only(
        nosni,
        &[&names[..], &["--target-cidr", "192.0.2.0/28"]].concat(),
    );
    assert_eq!(e["match"], json!("cidr"));
    let e = only(
        nosni,
        &[&names[..], &["--target-cidr", "192.0.2.16/28"]].concat(),
    );
    assert_eq!(e["target"], json!(false));
    // A flow whose SNI names something else is not a target by its address.
    let other = only(
        "openssl-tls10-other-sni.pcap",
        &["--target-cidr", "192.0.2.0/24"],
    );
    assert_eq!(other["target"], json!(false));
}

const TAGS: &str = r#"{
  "changeNumber": 321, "cloud": "Public",
  "values": [
    {"name": "AzureCloud", "id": "AzureCloud", "properties": {"changeNumber": 1, "region": "", "platform": "Azure", "systemService": "", "addressPrefixes": ["192.0.2.0/24"]}},
    {"name": "Storage", "id": "Storage", "properties": {"changeNumber": 9, "region": "", "platform": "Azure", "systemService": "AzureStorage", "addressPrefixes": ["20.60.0.0/16", "192.0.2.0/30", "2603:1000::/47"]}},
    {"name": "Storage.WestEurope", "id": "Storage.WestEurope", "properties": {"changeNumber": 4, "region": "westeurope", "regionId": 18, "platform": "Azure", "systemService": "AzureStorage", "addressPrefixes": ["192.0.2.0/30"]}},
    {"name": "Storage.EastUS", "id": "Storage.EastUS", "properties": {"changeNumber": 4, "region": "eastus", "platform": "Azure", "systemService": "AzureStorage", "addressPrefixes": ["20.60.0.0/16"]}}
  ]
}"#;

#[test]
fn azure_service_tags_find_flows_without_sni() {
    let dir = tempfile::tempdir().unwrap();
    let tags = dir.path().join("ServiceTags_Public_20261116.json");
    std::fs::write(&tags, TAGS).unwrap();
    let tags = tags.to_str().unwrap();
    let nosni = "openssl-tls10-nosni.pcap";
    let e = only(nosni, &["--azure-service-tags", tags]);
    assert_eq!(
        matched(&e),
        (json!(true), json!("cidr"), json!(null), json!(null))
    );
    let e = only(
        nosni,
        &[
            "--azure-service-tags",
            tags,
            "--service-tag",
            "Storage.WestEurope",
        ],
    );
    assert_eq!(e["match"], json!("cidr"));
    let e = only(
        nosni,
        &[
            "--azure-service-tags",
            tags,
            "--service-tag",
            "Storage.EastUS",
        ],
    );
    assert_eq!(e["match"], json!("certificate"), "not by its address");

    // Clear errors, exit status 2.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"values\": [{\"name\": \"Storage\"}]}").unwrap();
    let nosni_path = capture(nosni);
    let nosni_path = nosni_path.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--azure-service-tags", bad.to_str().unwrap()],
            "not a Service Tags file",
        ),
        (
            vec!["--azure-service-tags", "/nonexistent/tags.json"],
            "/nonexistent/tags.json",
        ),
        (
            vec![
                "--azure-service-tags",
                tags,
                "--service-tag",
                "Storage.Mars",
            ],
            "Storage.Mars",
        ),
        (vec!["--service-tag", "Storage"], "--azure-service-tags"),
        (vec!["--target-cidr", "192.0.2.1/24"], "host bits"),
        (vec!["--target-cidr", "blob"], "not an IP prefix"),
        (vec!["--max-dns-entries", "0"], "--max-dns-entries"),
    ] {
        let mut argv = vec!["read"];
        argv.extend(args.iter().copied());
        argv.push(nosni_path);
        let out = tlscensus(&argv);
        assert_eq!(out.status.code(), Some(2), "{argv:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{argv:?}: {err}"
        );
    }
}

/// The passive DNS store is bounded; hitting the bound is counted, and the
/// responses are counted by what they taught.
#[test]
fn passive_dns_bound_and_counters() {
    let files = [
        "dns-cname-custom-domain.pcap",
        "dns-unrelated-nosni.pcap",
        "dns-tcp-nosni.pcap",
    ];
    let run = |extra: &[&str]| metrics_after_read(&files, extra);
    let m = run(&[]);
    has(&m, r#"tlscensus_dns_responses_total{result="target"} 2"#);
    has(&m, r#"tlscensus_dns_responses_total{result="no_target"} 1"#);
    has(&m, r#"tlscensus_bound_hits_total{bound="dns_entries"} 0"#);
    has(&m, r#"tlscensus_target_flows_total{match="cname"} 1"#);
    has(&m, r#"tlscensus_target_flows_total{match="dns_address"} 1"#);
    // Custom domain: 2 aliases (files.contoso.example and the storage stamp's
    // name) + 1 address; the TCP answer repeats the stamp and the address.
    has(&m, "tlscensus_dns_entries 3");

    // Room for one entry: each new entry evicts the oldest (the newest answer
    // always gets in), and every eviction is counted.
    let m = run(&["--max-dns-entries", "1"]);
    has(&m, "tlscensus_dns_entries 1");
    let evicted: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix(r#"tlscensus_bound_hits_total{bound="dns_entries"} "#))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(evicted >= 2, "{m}");
}

/// Clients without SNI, made by five TLS stacks (captures/make-cert-captures.sh):
/// up to TLS 1.2 the server's clear-text certificate tells the server.
#[test]
fn server_certificate_finds_flows_without_sni() {
    let wildcard = json!("*.blob.core.windows.net");
    // (capture, negotiated version, legacy)
    let cases = [
        ("cert-openssl-tls10-nosni.pcap", "TLSv1.0", true),
        ("cert-openssl-tls12-mtu576-nosni.pcap", "TLSv1.2", false),
        ("cert-python-tls12-nosni.pcap", "TLSv1.2", false),
        ("cert-curl-tls10-ip-nosni.pcap", "TLSv1.0", true),
        ("cert-java-tls10-nosni.pcap", "TLSv1.0", true),
    ];
    for (file, version, legacy) in cases {
        let e = only(file, &[]);
        assert_eq!(e["sni"], json!(null), "{file}");
        assert_eq!(e["negotiated_version"], json!(version), "{file}");
        assert_eq!(e["legacy"], json!(legacy), "{file}");
        assert_eq!(matched(&e), via_certificate(), "{file}");
        assert_eq!(e["target_name"], wildcard);
    }
    // An ECDSA leaf with no CN whose only SAN names the account (GnuTLS, TLS 1.1).
    let e = only("cert-gnutls-tls11-nosni.pcap", &[]);
    assert_eq!(e["negotiated_version"], json!("TLSv1.1"));
    assert_eq!(matched(&e), via_name("certificate", "acct9"));
    // An unrelated certificate; TLS 1.3 (the certificate is encrypted).
    for file in [
        "cert-openssl-tls10-other-nosni.pcap",
        "cert-openssl-tls13-nosni.pcap",
    ] {
        let e = only(file, &[]);
        assert_eq!(
            matched(&e),
            (json!(false), json!(null), json!(null), json!(null)),
            "{file}"
        );
    }
    // Targets are the configured names: a certificate for another target.
    let e = only(
        "cert-openssl-tls10-other-nosni.pcap",
        &["--target", "*.example.org"],
    );
    assert_eq!(e["match"], json!("certificate"));
    assert_eq!(e["target_name"], json!("intranet.example.org"));
    // A resumed session sends no certificate: only the first flow is known.
    let ev = events(
        &[&capture("cert-openssl-tls12-resumed-nosni.pcap")],
        &["--all"],
    );
    let how: Vec<&Value> = ev.iter().map(|e| &e["match"]).collect();
    assert_eq!(how, [&json!("certificate"), &json!(null)]);
}

/// A leaf certificate larger than the stream cap is a counted bound hit, not
/// a silent miss; a larger cap reads it.
#[test]
fn server_certificate_bound_and_counters() {
    let huge = "cert-openssl-tls12-huge-leaf-nosni.pcap";
    let files = [
        huge,
        "cert-openssl-tls12-resumed-nosni.pcap",
        "cert-gnutls-tls11-nosni.pcap",
        "cert-openssl-tls13-nosni.pcap",
        "openssl-tls12.pcap",
    ];
    let run = |extra: &[&str]| metrics_after_read(&files, &[&["--all"], extra].concat());
    let m = run(&[]);
    // Looked for: huge (failed), resumed pair (names, none), gnutls (names);
    // not for TLS 1.3 nor for the flow with SNI.
    has(
        &m,
        r#"tlscensus_server_certificates_total{result="names"} 2"#,
    );
    has(
        &m,
        r#"tlscensus_server_certificates_total{result="none"} 1"#,
    );
    has(
        &m,
        r#"tlscensus_server_certificates_total{result="failed"} 1"#,
    );
    has(&m, r#"tlscensus_bound_hits_total{bound="stream_bytes"} 1"#);
    has(&m, r#"tlscensus_target_flows_total{match="certificate"} 2"#);
    assert_eq!(only(huge, &[])["target"], json!(false));

    let m = run(&["--max-stream-bytes", "65536"]);
    has(
        &m,
        r#"tlscensus_server_certificates_total{result="names"} 3"#,
    );
    has(
        &m,
        r#"tlscensus_server_certificates_total{result="failed"} 0"#,
    );
    has(&m, r#"tlscensus_bound_hits_total{bound="stream_bytes"} 0"#);
    assert_eq!(
        only(huge, &["--max-stream-bytes", "65536"])["match"],
        json!("certificate")
    );
}

/// A flow matched by a Service Tag prefix is named for the service whose
/// tag holds its server, when one chosen service owns that tag's family
/// (`Sql` is SQL's alone; `Storage` is every Storage row's, so with several
/// Storage rows chosen the flow's service is `other`).
#[test]
fn service_tags_name_the_service_of_flows_without_sni() {
    let dir = tempfile::tempdir().unwrap();
    let sql_tags = dir.path().join("sql.json");
    std::fs::write(
        &sql_tags,
        r#"{"values": [
          {"name": "Sql.WestEurope", "properties": {"addressPrefixes": ["192.0.2.0/30"]}},
          {"name": "AzureKeyVault", "properties": {"addressPrefixes": ["198.51.100.0/24"]}},
          {"name": "Storage", "properties": {"addressPrefixes": ["20.60.0.0/16"]}}]}"#,
    )
    .unwrap();
    let storage_tags = dir.path().join("storage.json");
    std::fs::write(&storage_tags, TAGS).unwrap();
    let nosni = "openssl-tls10-nosni.pcap";
    let service = |tags: &std::path::Path, services: &str| {
        let e = only(
            nosni,
            &[
                "--azure-service-tags",
                tags.to_str().unwrap(),
                "--services",
                services,
            ],
        );
        assert_eq!(e["match"], json!("cidr"), "{e}");
        e["service"].clone()
    };
    assert_eq!(
        service(&sql_tags, "sql,keyvault,storage-blob"),
        json!("sql")
    );
    assert_eq!(
        service(&storage_tags, "storage-blob,sql"),
        json!("storage-blob")
    );
    assert_eq!(service(&storage_tags, "storage"), json!("other"));
}
