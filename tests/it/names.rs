//! Passive host names (issue 15), end to end through the binary on the
//! captures of captures/make-name-captures.sh: real DHCP, DHCPv6, mDNS,
//! NBNS, DNS PTR and Kerberos traffic from real stacks, each followed by a
//! legacy handshake from the named host. Events carry src_name and its
//! source, the inventory a HOST NAME, the metrics tlscensus_host_info.

use crate::common::*;
use serde_json::Value;

/// `src_ip sni-account src_name/source` of each event, in capture order.
fn named(file: &str, extra: &[&str]) -> Vec<String> {
    let path = capture(file);
    events(&[&path], extra)
        .iter()
        .map(|e: &Value| {
            format!(
                "{} {} {}/{}",
                e["src_ip"].as_str().unwrap(),
                e["sni"]
                    .as_str()
                    .unwrap_or("-")
                    .trim_end_matches(".blob.core.windows.net"),
                e["src_name"].as_str().unwrap_or("-"),
                e["src_name_source"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

#[test]
fn each_source_names_its_host() {
    assert_eq!(
        named("names-mdns.pcap", &[]),
        ["192.0.2.14 deltaacct delta.local/mdns"]
    );
    assert_eq!(
        named("names-nbns.pcap", &[]),
        ["192.0.2.15 echoacct echo/nbns"]
    );
    assert_eq!(
        named("names-ptr.pcap", &[]),
        ["192.0.2.15 foxtrotacct foxtrot.corp.test/dns_ptr"]
    );
    assert_eq!(
        named("names-kerberos.pcap", &[]),
        ["192.0.2.16 golfacct golf.corp.test/kerberos"]
    );
}

/// Leases: alpha's address passes to bravo (each flow named by the lease of
/// its time), alpha comes back on another address, charlie is named by
/// DHCPv6, and bravo's flow after its lease ended has no name.
#[test]
fn dhcp_leases_change_hands_and_expire() {
    let got = named("names-dhcp.pcap", &[]);
    assert_eq!(got.len(), 5, "{got:#?}");
    let (x, y) = (ip_of(&got[0]), ip_of(&got[2]));
    assert_ne!(x, y);
    assert_eq!(got[0], format!("{x} alphaacct alpha.corp.test/dhcp"));
    assert_eq!(got[1], format!("{x} bravoacct bravo.corp.test/dhcp"));
    assert_eq!(got[2], format!("{y} alphaacct alpha.corp.test/dhcp"));
    assert!(
        got[3].starts_with("2001:db8::")
            && got[3].ends_with(" charlieacct charlie.corp.test/dhcpv6"),
        "{}",
        got[3]
    );
    assert_eq!(got[4], format!("{x} bravoacct -/-"), "the lease ended");
}

fn ip_of(line: &str) -> &str {
    line.split(' ').next().unwrap()
}

/// `--name-sources` ranks and selects: without nbns the NetBIOS name is not
/// used; an unknown source is a clear error.
#[test]
fn name_sources_select_and_rank() {
    assert_eq!(
        named("names-nbns.pcap", &["--name-sources", "dhcp,mdns"]),
        ["192.0.2.15 echoacct -/-"]
    );
    // 192.0.2.15 registers a NetBIOS name, later its address gets a PTR
    // name: both are kept; the first flow knows only the NetBIOS name, the
    // second is named by the better-ranked source.
    let files = [capture("names-nbns.pcap"), capture("names-ptr.pcap")];
    let names = |extra: &[&str]| -> Vec<String> {
        events(&[&files[0], &files[1]], extra)
            .iter()
            .map(|e| e["src_name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&[]), ["echo", "foxtrot.corp.test"]);
    assert_eq!(names(&["--name-sources", "nbns,dns_ptr"]), ["echo", "echo"]);
    let out = tlscensus(&[
        "read",
        "--name-sources",
        "dhcp,wins",
        files[0].to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("\"wins\" is not one of"),
        "{}",
        text(&out.stderr)
    );
}

/// The inventory names its hosts (table, JSON, CSV), and the metrics join
/// them to the legacy sources (tlscensus_host_info), as dashboards and
/// alert annotations do.
#[test]
fn inventory_and_metrics_carry_names() {
    let files = ["names-mdns.pcap", "names-nbns.pcap", "names-kerberos.pcap"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| capture(f).display().to_string())
        .collect();
    let mut argv = vec!["read"];
    argv.extend(paths.iter().map(String::as_str));
    let table = text(&tlscensus(&argv).stdout);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("HOST ") && header.contains("HOST NAME"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("192.0.2.16") && l.contains("golf.corp.test")),
        "{table}"
    );
    argv.extend(["--format", "json"]);
    let doc: Value = serde_json::from_slice(&tlscensus(&argv).stdout).unwrap();
    let host = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "192.0.2.14")
        .unwrap();
    assert_eq!(host["host_name"], "delta.local");
    assert_eq!(host["host_name_source"], "mdns");

    let m = metrics_after_read(&files, &[]);
    has(
        &m,
        r#"tlscensus_host_info{host_name="golf.corp.test",name_source="kerberos",source="192.0.2.16"} 1"#,
    );
    has(
        &m,
        r#"tlscensus_host_info{host_name="echo",name_source="nbns",source="192.0.2.15"} 1"#,
    );
    assert!(
        value(
            &m,
            r#"tlscensus_host_name_messages_total{result="learned",source="nbns"}"#
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        value(
            &m,
            r#"tlscensus_host_name_messages_total{result="malformed",source="mdns"}"#
        ),
        Some(0.0)
    );
    // delta.local's IPv4 and link-local IPv6 addresses, echo, golf.
    assert_eq!(value(&m, "tlscensus_host_names"), Some(4.0), "{m}");
}

/// `--resolve`: each legacy source without a passive name is asked of a DNS
/// server once (here a Python responder on loopback that names one host and
/// answers NXDOMAIN for the others); the inventory shows the answer with
/// source `rdns`; a host with a passive name is not asked.
#[test]
fn resolve_asks_for_unnamed_legacy_sources() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries.log");
    let server = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
log = open(sys.argv[1], "a")
while True:
    q, peer = s.recvfrom(512)
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
    name = ".".join(labels)
    log.write(name + "\n"); log.flush()
    question = q[12:i + 5]
    if name == "11.2.0.192.in-addr.arpa":
        target = b"".join(bytes([len(l)]) + l for l in [b"ws11", b"corp", b"test"]) + b"\0"
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 12, 1, 300, len(target)) + target
        s.sendto(q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + answer, peer)
    else:
        s.sendto(q[:2] + b"\x81\x83" + struct.pack(">HHHH", 1, 0, 0, 0) + question, peer)
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", server, log.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", port.trim());
    let prom = dir.path().join("m.prom");
    let demo = capture("demo.pcapng");
    let nbns = capture("names-nbns.pcap");
    let out = tlscensus(&[
        "read",
        "--resolve",
        "--resolve-server",
        &addr,
        "--format",
        "json",
        "--metrics-file",
        prom.to_str().unwrap(),
        demo.to_str().unwrap(),
        nbns.to_str().unwrap(),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = |ip: &str| -> Value {
        doc["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == ip)
            .cloned()
            .unwrap()
    };
    assert_eq!(host("192.0.2.11")["host_name"], "ws11.corp.test");
    assert_eq!(host("192.0.2.11")["host_name_source"], "rdns");
    assert_eq!(host("192.0.2.12")["host_name"], Value::Null);
    assert_eq!(host("192.0.2.15")["host_name_source"], "nbns");
    // Each unnamed legacy source asked once; the named one never.
    let asked = std::fs::read_to_string(&log).unwrap();
    let mut asked: Vec<&str> = asked.lines().collect();
    asked.sort_unstable();
    assert_eq!(
        asked,
        [
            "11.2.0.192.in-addr.arpa",
            "12.2.0.192.in-addr.arpa",
            "14.2.0.192.in-addr.arpa",
            "16.2.0.192.in-addr.arpa",
        ],
        "demo's four legacy hosts; names-nbns' 192.0.2.15 has a NetBIOS name"
    );
    let m = std::fs::read_to_string(&prom).unwrap();
    has(&m, r#"tlscensus_resolve_queries_total{result="named"} 1"#);
    has(&m, r#"tlscensus_resolve_queries_total{result="no_name"} 3"#);
    // Without --resolve nothing is asked; --resolve-server alone is an error.
    let out = tlscensus(&["read", "--resolve-server", &addr, demo.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}
