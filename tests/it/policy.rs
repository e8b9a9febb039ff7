//! Server policies (`--policy`): the verdicts against real servers, the
//! outputs that carry them, and the policy files.
//!
//! The oracle: `tests/data/policy/oracle.pcap` holds 256 handshakes, each of
//! 32 client configurations (OpenSSL, GnuTLS, Python, curl, Java 17,
//! Node.js, Go; SSL 3.0 and old TLS versions, suite lists, groups and
//! signature schemes) with a
//! real OpenSSL server configured by one of 8 policies
//! (`captures/make-policy-captures.sh`), each pair on its own port;
//! `oracle.csv` says what the real handshake did. tlscensus' verdict on each
//! hello must be what the server did.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::craft::{Conn, Frame, read_pcap, write_pcap};
use crate::common::*;

fn data(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/policy")
        .join(name)
}

/// The policies of the oracle, as `--policy` values, in its order.
fn oracle_policies() -> Vec<String> {
    let mut v: Vec<String> = [
        "mozilla-modern",
        "mozilla-intermediate",
        "nist-800-52r2",
        "ecdhe-aead",
        "tls13-only",
    ]
    .map(String::from)
    .to_vec();
    for f in ["legacy-cbc.toml", "p384-gcm.toml", "pss512.json"] {
        v.push(data(f).display().to_string());
    }
    v
}

fn policy_args(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| ["--policy".to_string(), v.clone()])
        .collect()
}

/// The oracle's rows: port, client, policy, what the real handshake did.
fn oracle_rows() -> Vec<(u64, String, String, bool)> {
    let text = std::fs::read_to_string(data("oracle.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2].to_string(),
                f[3] == "ok",
            )
        })
        .collect()
}

/// `read --all --events -` of `file` with `extra`: the events.
fn events_of(file: &std::path::Path, extra: &[String]) -> Vec<Value> {
    let mut args: Vec<String> = ["read", "--all", "--no-progress", "--events", "-"]
        .map(String::from)
        .to_vec();
    args.extend(extra.iter().cloned());
    args.push(file.display().to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tlscensus(&argv);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An event's verdict under `policy`: (verdict, reason).
fn verdict_of(e: &Value, policy: &str) -> (String, String) {
    let p = e["policies"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["policy"] == policy))
        .unwrap_or_else(|| panic!("no verdict of {policy} in {e}"));
    (
        p["verdict"].as_str().unwrap().to_string(),
        p["reason"].as_str().unwrap().to_string(),
    )
}

#[test]
fn policy_verdicts_equal_real_servers() {
    let events = events_of(&data("oracle.pcap"), &policy_args(&oracle_policies()));
    let mut by_port: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for e in &events {
        by_port
            .entry(e["dst_port"].as_u64().unwrap())
            .or_default()
            .push(e);
    }
    let rows = oracle_rows();
    // Every client with every policy, once.
    let pairs: std::collections::BTreeSet<(&str, &str)> = rows
        .iter()
        .map(|(_, c, p, _)| (c.as_str(), p.as_str()))
        .collect();
    let clients: std::collections::BTreeSet<&str> = pairs.iter().map(|(c, _)| *c).collect();
    assert_eq!(pairs.len(), rows.len());
    assert_eq!(rows.len(), clients.len() * oracle_policies().len());
    let mut wrong = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (port, client, policy, real_ok) in &rows {
        let flows = by_port
            .get(port)
            .unwrap_or_else(|| panic!("no flow on port {port}"));
        // (a HelloRetryRequest keeps one flow: its first hello is judged)
        assert_eq!(flows.len(), 1, "port {port}");
        let (verdict, reason) = verdict_of(flows[0], policy);
        *reasons.entry(reason.clone()).or_default() += 1;
        if (verdict == "pass") != *real_ok {
            wrong.push(format!(
                "{client} x {policy}: server {real_ok}, tlscensus {verdict} ({reason})"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} pairs differ:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
    // The oracle exercises every step a hello can fail at.
    for r in [
        "none",
        "no_common_version",
        "no_common_suite",
        "no_common_group",
        "no_common_signature_algorithm",
    ] {
        assert!(
            reasons.get(r).copied().unwrap_or(0) >= 4,
            "{r}: {reasons:?}"
        );
    }
}

#[test]
fn policy_views_counters_and_layouts() {
    let policies = oracle_policies();
    let pargs = policy_args(&policies);
    let file = data("oracle.pcap").display().to_string();
    // Failing flows per policy as the events say (the events' verdicts are
    // held to the real servers above): the views and counters must agree.
    let events = events_of(&data("oracle.pcap"), &pargs);
    // Each policy judges every handshake of the oracle.
    let pairs = oracle_rows().len();
    let real_fails = |name: &str| {
        let n = events
            .iter()
            .filter(|e| verdict_of(e, name).0 == "fail")
            .count() as u64;
        assert!(n > 0 && n < pairs as u64, "{name}: {n}");
        n
    };

    // read --by policy, JSON: the counts per policy are the oracle's.
    let mut args: Vec<String> = [
        "read",
        "--all",
        "--no-progress",
        "--by",
        "policy",
        "--format",
        "json",
    ]
    .map(String::from)
    .to_vec();
    args.extend(pargs.iter().cloned());
    args.push(file.clone());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tlscensus(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = doc["policies"].as_array().unwrap();
    assert_eq!(listed.len(), 8);
    for p in listed {
        let name = p["policy"].as_str().unwrap();
        assert_eq!(p["flows"].as_u64(), Some(pairs as u64), "{name}");
        assert_eq!(p["fail"].as_u64().unwrap(), real_fails(name), "{name}");
        assert_eq!(p["unknown"], 0);
        let fails = p["fail"].as_u64().unwrap();
        assert_eq!(p["failing_hosts"], u64::from(fails > 0), "{name}");
        assert_eq!(
            p["hosts"].as_array().unwrap().len() as u64,
            u64::from(fails > 0)
        );
        let by_reason: u64 = p["reasons"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_reason, fails, "{name}");
        assert!(!p["source"].as_str().unwrap().is_empty());
    }
    assert_eq!(doc["summary"]["policies"].as_array().unwrap().len(), 8);

    // Table and CSV name every policy; the CSV's columns add up.
    for format in ["table", "csv"] {
        let mut a = args.clone();
        let at = a.iter().position(|x| x == "json").unwrap();
        a[at] = format.to_string();
        let argv: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = tlscensus(&argv);
        assert_eq!(out.status.code(), Some(0));
        let t = text(&out.stdout);
        for name in ["mozilla-modern", "legacy-cbc", "pss512", "p384-gcm"] {
            assert!(t.contains(name), "{format}: {t}");
        }
        if format == "csv" {
            for line in t.lines().skip(1) {
                let f: Vec<u64> = line
                    .split(',')
                    .skip(1)
                    .take(9)
                    .map(|x| x.parse().unwrap())
                    .collect();
                assert_eq!(f[0], f[1] + f[2] + f[8], "{line}");
                assert_eq!(f[2], f[3..8].iter().sum::<u64>(), "{line}");
            }
        }
    }

    // The counters: every (verdict, reason) of each policy, as the oracle.
    let capture_args: Vec<&str> = pargs.iter().map(String::as_str).chain(["--all"]).collect();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("oracle.pcap");
    std::fs::copy(data("oracle.pcap"), &copy).unwrap();
    let prom = dir.path().join("m.prom");
    let mut a = vec![
        "read",
        "--no-progress",
        "--metrics-file",
        prom.to_str().unwrap(),
    ];
    a.extend(&capture_args);
    a.push(copy.to_str().unwrap());
    let out = tlscensus(&a);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m = std::fs::read_to_string(&prom).unwrap();
    for name in ["mozilla-modern", "mozilla-intermediate", "legacy-cbc"] {
        let fails = real_fails(name);
        has(
            &m,
            &format!(
                "tlscensus_policy_flows_total{{policy=\"{name}\",reason=\"none\",verdict=\"pass\"}} {}",
                pairs as u64 - fails
            ),
        );
        has(
            &m,
            &format!("tlscensus_policy_failing_hosts{{policy=\"{name}\"}} 1"),
        );
        has(
            &m,
            &format!(
                "tlscensus_policy_flows_total{{policy=\"{name}\",reason=\"no_hello\",verdict=\"unknown\"}} 0"
            ),
        );
    }
    let series = m
        .lines()
        .filter(|l| l.starts_with("tlscensus_policy_flows_total{"))
        .count();
    assert_eq!(
        series,
        8 * 7,
        "every (verdict, reason) of each policy exists"
    );

    // The host and fingerprint views say which policies fail.
    for by in ["host", "fingerprint"] {
        let mut a: Vec<String> = [
            "read",
            "--all",
            "--no-progress",
            "--format",
            "json",
            "--by",
            by,
        ]
        .map(String::from)
        .to_vec();
        a.extend(pargs.iter().cloned());
        a.push(file.clone());
        let argv: Vec<&str> = a.iter().map(String::as_str).collect();
        let doc: Value = serde_json::from_slice(&tlscensus(&argv).stdout).unwrap();
        let rows = doc[if by == "host" {
            "hosts"
        } else {
            "fingerprints"
        }]
        .as_array()
        .unwrap()
        .clone();
        let failed: Vec<&str> = rows
            .iter()
            .flat_map(|r| r["policies_failed"].as_array().unwrap())
            .map(|v| v.as_str().unwrap())
            .collect();
        for name in ["mozilla-modern", "legacy-cbc", "pss512"] {
            assert!(failed.contains(&name), "{by}: {failed:?}");
        }
    }
    // Without --policy the views are unchanged: no policy column or key.
    let doc: Value = serde_json::from_slice(
        &tlscensus(&["read", "--all", "--no-progress", "--format", "json", &file]).stdout,
    )
    .unwrap();
    assert!(doc["hosts"][0].get("policies_failed").is_none());
    assert!(doc["summary"].get("policies").is_none());

    // Every layout carries the verdicts.
    for layout in ["native", "ecs", "ocsf", "zeek-json", "zeek"] {
        let mut extra: Vec<&str> = vec!["--policy", "tls13-only", "--policy"];
        let legacy = data("legacy-cbc.toml").display().to_string();
        extra.push(&legacy);
        let lines = event_lines(&data("oracle.pcap"), layout, &extra);
        let body: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(body.len(), pairs, "{layout}");
        let first = body[0];
        match layout {
            "zeek" => {
                assert!(lines.iter().any(|l| l.starts_with("#fields") && l.ends_with("\tpolicy_verdicts")));
                assert!(first.contains("tls13-only:pass,legacy-cbc:pass"), "{first}");
            }
            "zeek-json" => assert!(first.contains("\"policy_verdicts\":[\"tls13-only:pass\",\"legacy-cbc:pass\"]"), "{first}"),
            _ => assert!(
                first.contains("\"policies\":[{\"policy\":\"tls13-only\",\"verdict\":\"pass\",\"reason\":\"none\"}"),
                "{layout}: {first}"
            ),
        }
    }
}

/// The payload of the first client segment of `capture` that starts a TLS
/// handshake record.
fn client_hello_record(capture: &str) -> Vec<u8> {
    for f in read_pcap(&capture_path(capture)) {
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(&f.data) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
            continue;
        };
        let payload = t.payload();
        if payload.len() > 9 && payload[0] == 0x16 && payload[5] == 1 {
            return payload.to_vec();
        }
    }
    panic!("no ClientHello in {capture}");
}

fn capture_path(name: &str) -> PathBuf {
    capture(name)
}

/// A ClientHello record with `groups` put first in supported_groups and,
/// when `share`, a key share of that group (of `share` bytes) put first in
/// key_share; lengths rewritten. `hello` is one record holding one hello.
fn with_groups(hello: &[u8], groups: &[u16], share: Option<usize>) -> Vec<u8> {
    let body = &hello[9..];
    let sid_len = usize::from(body[34]);
    let mut at = 35 + sid_len;
    let cs_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    at += 2 + cs_len;
    let comp_len = usize::from(body[at]);
    at += 1 + comp_len;
    let head = &body[..at];
    let mut rest = &body[at + 2..];
    let mut exts = Vec::new();
    while rest.len() >= 4 {
        let t = u16::from_be_bytes([rest[0], rest[1]]);
        let n = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let mut data = rest[4..4 + n].to_vec();
        rest = &rest[4 + n..];
        if t == 10 {
            let mut list: Vec<u8> = groups.iter().flat_map(|g| g.to_be_bytes()).collect();
            list.extend_from_slice(&data[2..]);
            data = [(list.len() as u16).to_be_bytes().to_vec(), list].concat();
        }
        if t == 51
            && let Some(size) = share
        {
            let mut list = groups[0].to_be_bytes().to_vec();
            list.extend_from_slice(&(size as u16).to_be_bytes());
            list.extend(std::iter::repeat_n(0x42, size));
            list.extend_from_slice(&data[2..]);
            data = [(list.len() as u16).to_be_bytes().to_vec(), list].concat();
        }
        exts.extend_from_slice(&t.to_be_bytes());
        exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
        exts.extend_from_slice(&data);
    }
    let mut body = head.to_vec();
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let hs = tlscensus::tls::craft::handshake(1, &body);
    tlscensus::tls::craft::record(0x16, 0x0301, &hs)
}

#[test]
fn policy_pq_hybrid_on_hellos_made_from_a_real_one() {
    // OpenSSL 3.0 has no ML-KEM: the post-quantum preset is proven on curl's
    // real TLS 1.3 hello, rewritten to offer X25519MLKEM768.
    let real = client_hello_record("curl-tls13.pcap");
    let hellos = [
        ("as sent", real.clone()),
        (
            "offered with a key share",
            with_groups(&real, &[0x11ec], Some(1216)),
        ),
        (
            "offered without a share",
            with_groups(&real, &[0x11ec], None),
        ),
        ("Kyber draft", with_groups(&real, &[0x6399], Some(1216))),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pq.pcap");
    let mut frames: Vec<Frame> = Vec::new();
    for (i, (_, h)) in hellos.iter().enumerate() {
        let conn = Conn::new(
            [192, 0, 2, 11].into(),
            50000 + i as u16,
            [192, 0, 2, 1].into(),
        );
        frames.extend(conn.frames(
            1_700_000_000_000_000_000 + i as u64 * 10_000_000,
            &[(true, h.clone())],
            true,
        ));
    }
    write_pcap(&file, &frames);
    let key_share = dir.path().join("share.toml");
    let preset = text(&tlscensus(&["policies", "pq-hybrid"]).stdout);
    let changed = preset.replace("name = \"pq-hybrid\"", "name = \"pq-share\"")
        + "require = [\"pq-hybrid-key-share\"]\n";
    std::fs::write(&key_share, changed).unwrap();
    let args = policy_args(&[
        "pq-hybrid".to_string(),
        "tls13-only".to_string(),
        key_share.display().to_string(),
    ]);
    let events = events_of(&file, &args);
    assert_eq!(events.len(), 4);
    let by_port = |p: u64| events.iter().find(|e| e["src_port"] == p).unwrap();
    let expect = [
        (("fail", "no_common_group"), ("fail", "no_common_group")),
        (("pass", "none"), ("pass", "none")),
        (("pass", "none"), ("fail", "missing_requirement")),
        (("fail", "no_common_group"), ("fail", "no_common_group")),
    ];
    for (i, (pq, share)) in expect.iter().enumerate() {
        let e = by_port(50000 + i as u64);
        let got = verdict_of(e, "pq-hybrid");
        assert_eq!((got.0.as_str(), got.1.as_str()), *pq, "{}", hellos[i].0);
        let got = verdict_of(e, "pq-share");
        assert_eq!((got.0.as_str(), got.1.as_str()), *share, "{}", hellos[i].0);
        assert_eq!(verdict_of(e, "tls13-only").0, "pass", "{}", hellos[i].0);
    }
    let missing = events.iter().find(|e| e["src_port"] == 50002).unwrap();
    assert!(
        missing
            .to_string()
            .contains("\"requirement\":\"pq-hybrid-key-share\"")
    );
}

#[test]
fn policy_files_and_mistakes() {
    // Every preset prints as a file that reads back and judges the same.
    let dir = tempfile::tempdir().unwrap();
    let list = text(&tlscensus(&["policies"]).stdout);
    for (name, _) in tlscensus::policy::presets::ALL {
        assert!(list.contains(name), "{list}");
        let out = tlscensus(&["policies", name]);
        assert_eq!(out.status.code(), Some(0));
        let copy = dir.path().join(format!("{name}-copy.toml"));
        let renamed = text(&out.stdout).replace(
            &format!("name = \"{name}\""),
            &format!("name = \"{name}-copy\""),
        );
        std::fs::write(&copy, renamed).unwrap();
        let ev = events_of(
            &capture("demo.pcapng"),
            &policy_args(&[name.to_string(), copy.display().to_string()]),
        );
        for e in &ev {
            assert_eq!(verdict_of(e, name), verdict_of(e, &format!("{name}-copy")));
        }
    }
    assert!(list.contains("https://ssl-config.mozilla.org/guidelines/5.7.json"));
    assert!(list.contains("NIST SP 800-52 Rev. 2"));

    // A file is checked and printed whole; its mistakes name the file and line.
    let out = tlscensus(&["policies", data("pss512.json").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("\"rsa_pss_rsae_sha512\""));
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\nversions = [\"TLSv1.2\"]\ncipher_suites = [\n  \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\",\n  \"ECDHE-RSA-AES256-GCM-SHA384\",\n]\ngroups = [\"x25519\"]\nsignature_algorithms = [\"rsa_pss_rsae_sha256\"]\n",
    )
    .unwrap();
    let shown = bad.display().to_string();
    for args in [
        vec!["policies", shown.as_str()],
        vec!["read", "--policy", shown.as_str(), "captures/demo.pcapng"],
    ] {
        let out = tlscensus(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "{shown}:5: unknown cipher suite \"ECDHE-RSA-AES256-GCM-SHA384\""
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"));
    }
    // Unknown names, too many policies, two of one name.
    let out = tlscensus(&["read", "--policy", "mozilla-moden", "captures/demo.pcapng"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("neither a preset (mozilla-modern, "),
        "{}",
        text(&out.stderr)
    );
    let mut many = vec!["read".to_string()];
    for i in 0..9 {
        let f = dir.path().join(format!("p{i}.toml"));
        let t = text(&tlscensus(&["policies", "tls13-only"]).stdout)
            .replace("name = \"tls13-only\"", &format!("name = \"p{i}\""));
        std::fs::write(&f, t).unwrap();
        many.extend(["--policy".to_string(), f.display().to_string()]);
    }
    many.push("captures/demo.pcapng".into());
    let argv: Vec<&str> = many.iter().map(String::as_str).collect();
    let out = tlscensus(&argv);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("9 policies given; at most 8"),
        "{}",
        text(&out.stderr)
    );
    let out = tlscensus(&[
        "read",
        "--policy",
        "tls13-only",
        "--policy",
        "tls13-only",
        "captures/demo.pcapng",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("two policies are named \"tls13-only\""));
    // Hostile files: not UTF-8, too large, a directory.
    let junk = dir.path().join("junk.toml");
    std::fs::write(&junk, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, "#".repeat(70_000)).unwrap();
    for f in [&junk, &huge, &dir.path().to_path_buf()] {
        let out = tlscensus(&["policies", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{f:?}");
        assert!(!text(&out.stderr).contains("panicked"));
    }
}

#[test]
fn policy_from_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("read.toml");
    let file = data("legacy-cbc.toml").display().to_string();
    std::fs::write(
        &cfg,
        format!("all = true\npolicy = [\"tls13-only\", {file:?}]\n"),
    )
    .unwrap();
    let out = tlscensus(&["config", "check", "--for", "read", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = tlscensus(&[
        "read",
        "--config",
        cfg.to_str().unwrap(),
        "--by",
        "policy",
        "--format",
        "csv",
        "captures/demo.pcapng",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.lines().nth(1).unwrap().starts_with("tls13-only,8,"),
        "{t}"
    );
    assert!(
        t.lines().nth(2).unwrap().starts_with("legacy-cbc,8,"),
        "{t}"
    );
}
