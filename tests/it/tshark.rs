//! Cross-check against Wireshark's dissector: for every capture tshark can
//! decode, the per-flow ClientHello/ServerHello/alert facts tshark reports must
//! equal tlscensus' events. Runs wherever tshark is installed; under CI
//! (`CI=true`) a missing tshark is a failure, not a skip.

use std::collections::BTreeMap;
use std::process::Command;

use crate::common::*;
use serde_json::Value;

const HRR_RANDOM: &str = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c";

/// Facts per flow keyed by (client ip, client port, server port).
#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct Facts {
    sni: Option<String>,
    client_max: Option<String>,
    negotiated: Option<String>,
    alert: Option<String>,
}

type Key = (String, u64, u64);

fn name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        0x0002 => "SSLv2".into(),
        v if v >> 8 == 0x7f => "TLSv1.3".into(),
        v => format!("0x{v:04x}"),
    }
}

fn hex(s: &str) -> Option<u16> {
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

fn alert_name(code: u64) -> String {
    match code {
        40 => "handshake_failure".into(),
        50 => "decode_error".into(),
        70 => "protocol_version".into(),
        71 => "insufficient_security".into(),
        112 => "unrecognized_name".into(),
        c => format!("0x{c:02x}"),
    }
}

/// The innermost of the addresses tshark lists for a frame's IP layers.
fn innermost<'a>(v4: &'a str, v6: &'a str) -> &'a str {
    let v = if v6.is_empty() { v4 } else { v6 };
    v.rsplit(',').next().unwrap_or("")
}

/// tshark's `-d` (decode as) arguments for a shipped capture: the servers'
/// ports as TLS, and the preamble captures' proxy and STARTTLS ports
/// (make-preamble-captures.sh) Wireshark does not know by default (3128,
/// 1080, 5432, 3306 and 1433 it dissects as HTTP, SOCKS, PostgreSQL, MySQL
/// and TDS, each handing the TLS that follows to its TLS dissector).
fn decode_as(file: &std::path::Path) -> Vec<&'static str> {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let servers = if name.starts_with("client-stacks") {
        // fingerprints/make-catalogue.sh: a server port per client (4420
        // is NVMe/TCP's to Wireshark).
        "tcp.port==4400-4431,tls"
    } else if made_apart(file) || name.starts_with("names-") || name.starts_with("services") {
        "tcp.port==443,tls"
    } else {
        "tcp.port==40000-42999,tls"
    };
    let mut args = vec!["-d", servers];
    if name.starts_with("tunnel-capwap") {
        // The frame control field as RFC 5415 sends it (Wireshark swaps it
        // by default, for older controllers).
        args.extend(["-o", "capwap.swap_fc:FALSE"]);
    }
    if name.starts_with("rdp-") {
        // Wireshark's TPKT/RDP dissector reads the X.224 negotiation but
        // does not hand the TLS after it on; as TLS from the first byte,
        // the negotiation packets are skipped and the handshake read.
        args.extend(["-d", "tcp.port==3389,tls"]);
    }
    for d in [
        "tcp.port==8888,http",
        "tcp.port==2501,smtp",
        "tcp.port==2587,smtp",
        "tcp.port==2502,imap",
        "tcp.port==2503,pop",
        "tcp.port==2504,ftp",
        "tcp.port==8443,tls",
        "tcp.port==8444,tls",
        "tcp.port==1081,socks",
        "tcp.port==2389,ldap",
        "tcp.port==2522,xmpp",
    ] {
        args.extend(["-d", d]);
    }
    args
}

fn tshark_facts(file: &std::path::Path) -> BTreeMap<Key, Facts> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args(decode_as(file))
        .args([
            "-Y",
            "tls.handshake.type == 1 || tls.handshake.type == 2 || tls.alert_message",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ])
        .args([
            "-e", "ip.src", "-e", "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst",
        ])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tls.handshake.type",
        ])
        .args([
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "tls.handshake.version",
        ])
        .args([
            "-e",
            "tls.handshake.extensions.supported_version",
            "-e",
            "tls.alert_message.desc",
        ])
        .args([
            "-e",
            "tls.handshake.random",
            "-e",
            "tls.record.content_type",
            "-e",
            "frame.protocols",
        ])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark: {}", text(&out.stderr));
    let mut flows: BTreeMap<Key, Facts> = BTreeMap::new();
    for line in text(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        let [
            ip4s,
            ip6s,
            ip4d,
            ip6d,
            sport,
            dport,
            types,
            sni,
            versions,
            supported,
            alert,
            random,
            ctypes,
            protocols,
        ] = f[..]
        else {
            panic!("odd tshark line {line}");
        };
        // In a tunnel capture tshark lists every layer's address, outermost
        // first; the flow is the innermost, of the version of the last IP
        // layer in the frame's protocol stack.
        let inner_v4 = protocols.rsplit(':').find(|p| *p == "ip" || *p == "ipv6") == Some("ip");
        let (src, dst) = if inner_v4 {
            (innermost(ip4s, ""), innermost(ip4d, ""))
        } else {
            (innermost("", ip6s), innermost("", ip6d))
        };
        let (sport, dport): (u64, u64) = (sport.parse().unwrap(), dport.parse().unwrap());
        let first_type = types.split(',').next().unwrap_or("");
        let versions: Vec<u16> = versions.split(',').filter_map(hex).collect();
        let supported: Vec<u16> = supported
            .split(',')
            .filter_map(hex)
            .filter(|v| !is_grease(*v))
            .collect();
        match first_type {
            "1" => {
                let e = flows.entry((src.to_string(), sport, dport)).or_default();
                if e.client_max.is_some() {
                    continue; // the second ClientHello after a HelloRetryRequest
                }
                e.sni = (!sni.is_empty()).then(|| sni.split(',').next().unwrap_or("").to_string());
                let max = supported
                    .iter()
                    .copied()
                    .max_by_key(|v| if v >> 8 == 0x7f { 0x0304 } else { *v });
                e.client_max = max.or(versions.first().copied()).map(name);
            }
            "2" => {
                let e = flows.entry((dst.to_string(), dport, sport)).or_default();
                if random.split(',').next() == Some(HRR_RANDOM)
                    || e.negotiated.is_some()
                    || e.alert.is_some()
                {
                    continue;
                }
                e.negotiated = supported.first().or(versions.first()).copied().map(name);
            }
            _ => {
                // A plaintext alert record answering the hello (before any
                // ServerHello). An alert from a known client is not an answer.
                if flows.contains_key(&(src.to_string(), sport, dport)) {
                    continue;
                }
                let e = flows.entry((dst.to_string(), dport, sport)).or_default();
                let first_ct = ctypes.split(',').next().unwrap_or("");
                if first_ct == "21"
                    && e.negotiated.is_none()
                    && e.alert.is_none()
                    && let Some(code) = alert.split(',').next().and_then(|a| a.parse().ok())
                {
                    e.alert = Some(alert_name(code));
                }
            }
        }
    }
    flows
}

fn our_facts(file: &std::path::Path) -> BTreeMap<Key, Facts> {
    let evs: Vec<Value> = events(&[file], &["--all"]);
    evs.into_iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().map(str::to_string);
            (
                (
                    s("src_ip").unwrap_or_default(),
                    e["src_port"].as_u64().unwrap_or(0),
                    e["dst_port"].as_u64().unwrap_or(0),
                ),
                Facts {
                    sni: s("sni"),
                    client_max: s("client_max_version"),
                    negotiated: s("negotiated_version"),
                    alert: s("server_alert"),
                },
            )
        })
        .collect()
}

/// Whether tshark can run (see `crate::common::require`).
fn tshark_installed(test: &str) -> bool {
    crate::common::require_tools(test, &["tshark"])
}

/// The files in captures/ whose names pass `keep`, in name order.
fn capture_files(keep: impl Fn(&str) -> bool) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(captures())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
        .collect();
    paths.sort();
    paths
}

#[test]
fn tshark_agrees_on_every_capture_it_can_decode() {
    if !tshark_installed("tshark_agrees_on_every_capture_it_can_decode") {
        return;
    }
    let mut compared = 0;
    for path in capture_files(|_| true) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let is_capture = name.ends_with(".pcap") || name.ends_with(".pcapng");
        // tshark reports a truncated file as an error; a 96-byte snap length
        // leaves it nothing to compare; server-only flows have no client port
        // as tshark sees it the same way — keep those in the event tests.
        if !is_capture
            || name == "truncated.pcap"
            || name == "snaplen-96.pcap"
            || name.starts_with("midflow")
        {
            continue;
        }
        let theirs = tshark_facts(&path);
        let mut ours = our_facts(&path);
        if name == "openvpn-tcp.pcap" {
            // Wireshark's OpenVPN dissector guesses a tls-auth HMAC of 20
            // bytes only (host 3 uses SHA256: 32), and does not follow the
            // control channel of the connection the server drops after the
            // client's hello (host 2, port 33094): two flows tshark cannot
            // decode by default.
            let missed = |k: &Key| k.0 == "192.0.2.13" || (k.0 == "192.0.2.12" && k.1 == 33094);
            let before = ours.len();
            ours.retain(|k, _| !missed(k));
            assert_eq!(before - ours.len(), 2, "{name}: the flows tshark misses");
        }
        if name == "starttls-vsftpd.pcap" {
            // curl asks `AUTH SSL` (host 1), which Wireshark's FTP dissector
            // does not follow to TLS (it knows `AUTH TLS`): three flows
            // tshark cannot decode, whatever decode-as says.
            let auth_ssl = |k: &Key| k.0 == "192.0.2.11" && k.2 == 21;
            let before = ours.len();
            ours.retain(|k, _| !auth_ssl(k));
            assert_eq!(before - ours.len(), 3, "{name}: curl's AUTH SSL flows");
        }
        // Resumed sessions and port reuse produce several flows with the same
        // key in tshark's view; compare the set of keys and the last facts.
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}"
        );
        for (k, t) in &theirs {
            if name == "port-reuse.pcap" {
                continue; // two connections share the key; checked in tests/offline.rs
            }
            assert_eq!(ours.get(k), Some(t), "{name} {k:?}");
        }
        compared += 1;
    }
    assert!(compared >= 30, "compared only {compared} captures");
}

/// Server certificates: wherever tshark sees a server certificate on a flow
/// without SNI, tlscensus says `match: certificate` exactly when one of the
/// leaf's dNSNames is a storage name, and names one of them. (A stream cap
/// large enough for every leaf: the cap itself is tested in tests/targets.rs.)
#[test]
fn tshark_agrees_on_server_certificates() {
    if !tshark_installed("tshark_agrees_on_server_certificates") {
        return;
    }
    let mut compared = 0;
    for path in
        capture_files(|n| n.starts_with("cert-") || n.contains("nosni") || n == "server-only.pcap")
    {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&path)
            .args([
                "-d",
                "tcp.port==40000-42999,tls",
                "-Y",
                "tls.handshake.type == 11",
            ])
            .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"])
            .args(["-E", "aggregator=,", "-e", "ip.dst", "-e", "tcp.dstport"])
            .args(["-e", "x509ce.dNSName"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let ours: BTreeMap<(String, u64), Value> =
            events(&[&path], &["--all", "--max-stream-bytes", "1048576"])
                .into_iter()
                .map(|e| {
                    let k = (
                        e["src_ip"].as_str().unwrap_or("").to_string(),
                        e["src_port"].as_u64().unwrap_or(0),
                    );
                    (k, e)
                })
                .collect();
        for line in text.lines() {
            let f: Vec<&str> = line.split('|').collect();
            let key = (f[0].to_string(), f[1].parse().unwrap_or(0));
            let names: Vec<&str> = f[2].split(',').filter(|n| !n.is_empty()).collect();
            let e = ours
                .get(&key)
                .unwrap_or_else(|| panic!("{name}: no event for {key:?}"));
            let decided = matches!(
                e["match"].as_str(),
                Some("dns_address" | "cidr" | "connect")
            );
            if !e["sni"].is_null() || decided {
                continue; // decided before the certificate
            }
            let storage = names.iter().any(|n| n.ends_with(".blob.core.windows.net"));
            if storage {
                assert_eq!(e["match"], "certificate", "{name} {key:?}");
                let got = e["target_name"].as_str().unwrap_or("");
                assert!(names.contains(&got), "{name}: {got} not in {names:?}");
            } else {
                assert_eq!(e["target"], false, "{name} {key:?} {names:?}");
            }
            compared += 1;
        }
    }
    assert!(compared >= 12, "compared only {compared} certificates");
}

/// JA3 (issue 15): for every ClientHello tshark decodes in the shipped
/// captures, tlscensus' `ja3_hash` equals Wireshark's `tls.handshake.ja3`
/// (the first hello of a flow: a HelloRetryRequest's second hello is not
/// the flow's fingerprint).
#[test]
fn tshark_agrees_on_ja3() {
    if !tshark_installed("tshark_agrees_on_ja3") {
        return;
    }
    let mut compared = 0;
    for path in capture_files(|n| {
        (n.ends_with(".pcap") || n.ends_with(".pcapng"))
            && !["truncated.pcap", "snaplen-96.pcap"].contains(&n)
    }) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&path)
            .args(decode_as(&path))
            .args(["-Y", "tls.handshake.type == 1", "-T", "fields"])
            .args(["-E", "separator=|", "-E", "occurrence=l"])
            .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport"])
            .args(["-e", "tcp.dstport", "-e", "tls.handshake.ja3"])
            .output()
            .unwrap();
        // Every hello of a key (port reuse gives several connections one key).
        let mut theirs: BTreeMap<Key, Vec<String>> = BTreeMap::new();
        for line in text(&out.stdout).lines() {
            let f: Vec<&str> = line.split('|').collect();
            let [ip4, ip6, sport, dport, ja3] = f[..] else {
                continue;
            };
            if ja3.is_empty() {
                continue;
            }
            let key = (
                innermost(ip4, ip6).to_string(),
                sport.parse().unwrap_or(0),
                dport.parse().unwrap_or(0),
            );
            theirs.entry(key).or_default().push(ja3.to_string());
        }
        for e in events(&[&path], &["--all"]) {
            let Some(ours) = e["ja3_hash"].as_str() else {
                continue;
            };
            let key = (
                e["src_ip"].as_str().unwrap_or("").to_string(),
                e["src_port"].as_u64().unwrap_or(0),
                e["dst_port"].as_u64().unwrap_or(0),
            );
            if let Some(t) = theirs.get(&key) {
                assert!(
                    t.iter().any(|j| j == ours),
                    "{name} {key:?}: {ours} not in {t:?}"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 60, "compared only {compared} hellos");
}
