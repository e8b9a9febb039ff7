//! Passive host names (issue 15), end to end through the binary on the
//! captures of captures/make-name-captures.sh: real DHCP, DHCPv6, mDNS,
//! NBNS, DNS PTR and Kerberos traffic from real stacks, each followed by a
//! legacy handshake from the named host. Events carry src_name and its
//! source, the inventory a HOST NAME, the metrics tlscensus_host_info.

mod common;

use common::*;
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
