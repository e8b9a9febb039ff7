//! TLS after a preamble (issue 14), end to end through the binary: the
//! captures of captures/make-preamble-captures.sh (real clients, proxies and
//! servers), the --proxy flag, and crafted hostile preambles.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::common::craft::*;
use crate::common::*;
use serde_json::Value;

/// One event on one line: `src>dst:port sni client_max/negotiated outcome
/// match=… preamble authority proxied_src`, `-` for a missing value and
/// `.B` for `.blob.core.windows.net`.
fn line(e: &Value) -> String {
    let s = |k: &str| {
        e[k].as_str()
            .unwrap_or("-")
            .replace(".blob.core.windows.net", ".B")
    };
    format!(
        "{}>{}:{} {} {}/{} {} match={} {} {} {}",
        s("src_ip"),
        s("dst_ip"),
        e["dst_port"],
        s("sni"),
        s("client_max_version"),
        s("negotiated_version"),
        s("outcome"),
        s("match"),
        s("preamble"),
        s("connect_authority"),
        s("proxied_src"),
    )
}

/// Every flow of every preamble capture. Both sides of each proxy are in the
/// capture: the client's flow to the proxy (http_connect, socks) and the
/// proxy's own flow to the server (none), each with the client's hello.
/// tests/tshark.rs checks the same captures against Wireshark's dissectors.
#[test]
fn every_preamble_capture_every_flow() {
    let cases: &[(&str, &[&str])] = &[
        // FreeTDS: the handshake inside TDS PRELOGIN packets; the TLS 1.2
        // server's certificate is read through the framing.
        (
            "tds-freetds-tls12.pcap",
            &["192.0.2.11>192.0.2.19:1433 - TLSv1.3/TLSv1.2 negotiated match=certificate tds - -"],
        ),
        (
            "starttls-ldap-openssl-tls12.pcap",
            &["192.0.2.13>192.0.2.19:2389 - TLSv1.2/TLSv1.2 negotiated match=certificate ldap - -"],
        ),
        (
            "starttls-xmpp-openssl-tls11.pcap",
            &["192.0.2.14>192.0.2.19:2522 - TLSv1.1/TLSv1.1 negotiated match=certificate xmpp - -"],
        ),
        (
            "tinyproxy-auth-python-tls12.pcap",
            &[
                "192.0.2.11>192.0.2.1:8888 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni http_connect modern12.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
            ],
        ),
        // Java 17 through dante: two connections, each both sides.
        (
            "dante-socks5-java-tls12.pcap",
            &[
                "192.0.2.14>192.0.2.1:1080 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni socks modern12.B:443 -",
                "192.0.2.14>192.0.2.1:1080 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni socks modern12.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
            ],
        ),
        (
            "proxy-protocol-v2-python-tls12.pcap",
            &[
                "192.0.2.14>192.0.2.19:8444 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni proxy_protocol - [2001:db8:7::7]:51234",
            ],
        ),
        // SOCKS4a (a host name) through OpenSSH's dynamic forwarding.
        (
            "ssh-socks4a-curl-tls12.pcap",
            &[
                "192.0.2.12>192.0.2.1:1081 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni socks modern12.B:443 -",
            ],
        ),
        (
            "tds-freetds-tls13.pcap",
            &["192.0.2.12>192.0.2.19:1433 - TLSv1.3/TLSv1.3 negotiated match=- tds - -"],
        ),
        (
            "squid-auth-407-curl-tls12.pcap",
            &[
                "192.0.2.11>192.0.2.1:3128 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni http_connect modern12.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
            ],
        ),
        (
            "squid-auth-java-tls12.pcap",
            &[
                "192.0.2.12>192.0.2.1:3128 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni http_connect modern12.B:443 -",
                "192.0.2.12>192.0.2.1:3128 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni http_connect modern12.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
            ],
        ),
        ("squid-auth-refused.pcap", &[]),
        (
            "squid-connect-curl-tls10.pcap",
            &[
                "192.0.2.11>192.0.2.1:3128 legacy10.B TLSv1.0/TLSv1.0 negotiated match=sni http_connect legacy10.B:443 -",
                "192.0.2.1>192.0.2.19:443 legacy10.B TLSv1.0/TLSv1.0 negotiated match=sni none - -",
            ],
        ),
        (
            "squid-connect-curl-tls13.pcap",
            &[
                "192.0.2.12>192.0.2.1:3128 modern13.B TLSv1.3/TLSv1.3 negotiated match=sni http_connect modern13.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern13.B TLSv1.3/TLSv1.3 negotiated match=sni none - -",
            ],
        ),
        (
            "squid-connect-openssl-tls10-rejected.pcap",
            &[
                "192.0.2.14>192.0.2.1:3128 rejected10.B TLSv1.0/- rejected match=sni http_connect rejected10.B:443 -",
                "192.0.2.1>192.0.2.19:443 rejected10.B TLSv1.0/- rejected match=sni none - -",
            ],
        ),
        (
            "squid-connect-python-tls12.pcap",
            &[
                "192.0.2.13>192.0.2.1:3128 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni http_connect modern12.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
            ],
        ),
        (
            "tinyproxy-connect-openssl-tls10-nosni.pcap",
            &[
                "192.0.2.14>192.0.2.1:8888 - TLSv1.0/TLSv1.0 negotiated match=connect http_connect legacy10.B:443 -",
                "192.0.2.1>192.0.2.19:443 - TLSv1.0/TLSv1.0 negotiated match=certificate none - -",
            ],
        ),
        (
            "tinyproxy-connect-openssl-tls11.pcap",
            &[
                "192.0.2.13>192.0.2.1:8888 legacy11.B TLSv1.1/TLSv1.1 negotiated match=sni http_connect legacy11.B:443 -",
                "192.0.2.1>192.0.2.19:443 legacy11.B TLSv1.1/TLSv1.1 negotiated match=sni none - -",
            ],
        ),
        (
            "dante-socks4-curl-tls10.pcap",
            &[
                "192.0.2.11>192.0.2.1:1080 legacy10.B TLSv1.0/TLSv1.0 negotiated match=sni socks 192.0.2.19:443 -",
                "192.0.2.1>192.0.2.19:443 legacy10.B TLSv1.0/TLSv1.0 negotiated match=sni none - -",
            ],
        ),
        ("dante-socks4a-refused.pcap", &[]),
        (
            "dante-socks5-auth-curl-tls12.pcap",
            &[
                "192.0.2.13>192.0.2.1:1080 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni socks modern12.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern12.B TLSv1.2/TLSv1.2 negotiated match=sni none - -",
            ],
        ),
        (
            "dante-socks5-curl-tls13.pcap",
            &[
                "192.0.2.12>192.0.2.1:1080 modern13.B TLSv1.3/TLSv1.3 negotiated match=sni socks modern13.B:443 -",
                "192.0.2.1>192.0.2.19:443 modern13.B TLSv1.3/TLSv1.3 negotiated match=sni none - -",
            ],
        ),
        ("postgres-psql-nossl.pcap", &[]),
        (
            "postgres-psql-tls11-rejected.pcap",
            &["192.0.2.13>192.0.2.1:5432 - TLSv1.1/- rejected match=- postgres - -"],
        ),
        (
            "postgres-psql-tls13.pcap",
            &["192.0.2.11>192.0.2.1:5432 - TLSv1.3/TLSv1.3 negotiated match=- postgres - -"],
        ),
        (
            "postgres-python-tls12.pcap",
            &[
                "192.0.2.12>192.0.2.1:5432 - TLSv1.2/TLSv1.2 negotiated match=certificate postgres - -",
            ],
        ),
        (
            "mariadb-client-tls11-rejected.pcap",
            &["192.0.2.13>192.0.2.1:3306 - TLSv1.1/- rejected match=- mysql - -"],
        ),
        (
            "mariadb-client-tls13.pcap",
            &["192.0.2.11>192.0.2.1:3306 - TLSv1.3/TLSv1.3 negotiated match=- mysql - -"],
        ),
        (
            "mariadb-pymysql-tls12.pcap",
            &["192.0.2.12>192.0.2.1:3306 - TLSv1.2/TLSv1.2 negotiated match=certificate mysql - -"],
        ),
        (
            "starttls-ftp-openssl-tls10.pcap",
            &["192.0.2.11>192.0.2.19:2504 - TLSv1.0/TLSv1.0 negotiated match=certificate ftp - -"],
        ),
        (
            "starttls-imap-openssl-tls10.pcap",
            &["192.0.2.11>192.0.2.19:2502 - TLSv1.0/TLSv1.0 negotiated match=certificate imap - -"],
        ),
        (
            "starttls-pop3-openssl-tls10.pcap",
            &["192.0.2.11>192.0.2.19:2503 - TLSv1.0/TLSv1.0 negotiated match=certificate pop3 - -"],
        ),
        (
            "starttls-smtp-openssl-tls10.pcap",
            &["192.0.2.11>192.0.2.19:2501 - TLSv1.0/TLSv1.0 negotiated match=certificate smtp - -"],
        ),
        (
            "starttls-smtp-python-tls13.pcap",
            &["192.0.2.12>192.0.2.19:2587 - TLSv1.3/TLSv1.3 negotiated match=- smtp - -"],
        ),
        (
            "proxy-protocol-v1-python-tls10.pcap",
            &[
                "192.0.2.14>192.0.2.19:8443 legacy10.B TLSv1.0/TLSv1.0 negotiated match=sni proxy_protocol - 198.51.100.7:51234",
            ],
        ),
    ];
    for (file, want) in cases {
        let mut got: Vec<String> = events_all(file).iter().map(line).collect();
        got.sort();
        assert_eq!(got, *want, "{file}");
    }
}

/// Refused tunnels and clear-text sessions give no TLS flow; each is counted
/// by kind and result.
#[test]
fn refusals_and_clear_text_are_counted() {
    let m = metrics_after_read(&["squid-auth-refused.pcap"], &[]);
    has(
        &m,
        r#"tlscensus_preambles_total{preamble="http_connect",result="no_tls"} 1"#,
    );
    has(&m, "tlscensus_non_tls_flows_total 1");
    let m = metrics_after_read(&["dante-socks4a-refused.pcap"], &[]);
    has(
        &m,
        r#"tlscensus_preambles_total{preamble="socks",result="no_tls"} 1"#,
    );
    // A 407 then a second CONNECT on the same connection: one TLS flow.
    let m = metrics_after_read(&["squid-auth-407-curl-tls12.pcap"], &[]);
    has(
        &m,
        r#"tlscensus_preambles_total{preamble="http_connect",result="tls"} 1"#,
    );
    has(
        &m,
        r#"tlscensus_flows_total{outcome="negotiated",preamble="http_connect",target="true",version="TLSv1.2"} 1"#,
    );
    // Plain PostgreSQL (sslmode=disable) is not a preamble: just not TLS.
    let m = metrics_after_read(&["postgres-psql-nossl.pcap"], &[]);
    has(&m, "tlscensus_non_tls_flows_total 1");
    let postgres = |l: &&str| l.starts_with(r#"tlscensus_preambles_total{preamble="postgres""#);
    assert!(m.lines().filter(postgres).all(|l| l.ends_with(" 0")), "{m}");
}

/// --proxy: the proxy's outbound flow is relayed, not a legacy host of its
/// own; its client is counted under its own address.
#[test]
fn proxy_outbound_flows_are_relayed() {
    let file = capture("squid-connect-curl-tls10.pcap");
    let evs = events(&[&file], &["--proxy", "192.0.2.1/32"]);
    let relayed: Vec<(&str, bool)> = evs
        .iter()
        .map(|e| (e["src_ip"].as_str().unwrap_or(""), e["relayed"] == true))
        .collect();
    assert!(relayed.contains(&("192.0.2.1", true)), "{relayed:?}");
    assert!(relayed.contains(&("192.0.2.11", false)), "{relayed:?}");
    let m = metrics_after_read(
        &["squid-connect-curl-tls10.pcap"],
        &["--proxy", "192.0.2.1"],
    );
    has(
        &m,
        r#"tlscensus_relayed_flows_total{outcome="negotiated",version="TLSv1.0"} 1"#,
    );
    has(
        &m,
        r#"tlscensus_legacy_flows_total{outcome="negotiated",source="192.0.2.11",version="TLSv1.0"} 1"#,
    );
    assert!(!m.contains(r#"source="192.0.2.1""#), "{m}");
    // Without --proxy, the proxy is a legacy source of its own.
    let m = metrics_after_read(&["squid-connect-curl-tls10.pcap"], &[]);
    assert!(m.contains(r#"source="192.0.2.1""#));
    let bad = tlscensus(&["read", "--proxy", "not-an-address", file.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("--proxy"));
}

fn crafted_metrics(frames: &[Frame], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.pcap");
    write_pcap(&p, frames);
    metrics_after_read(&[p.to_str().unwrap()], extra)
}

/// Hostile preambles get a bounded, counted give-up: a 1 MB CONNECT line,
/// endless headers, a CONNECT answered by garbage, pipelined junk after a
/// refusal; none is a TLS flow, none panics.
#[test]
fn regression_14_hostile_preambles_give_up() {
    let server = Ipv4Addr::new(192, 0, 2, 10);
    let mut frames = Vec::new();
    let mut port = 50000;
    let mut conn = |data: Vec<(bool, Vec<u8>)>| {
        port += 1;
        let c = Conn::new(Ipv4Addr::new(10, 0, 0, 1), port, server);
        frames.extend(c.frames(u64::from(port) * 1_000_000_000, &data, true));
    };
    // A CONNECT line of 1 MB, in 1,000-byte segments.
    let mut long = b"CONNECT ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 1 << 20));
    conn(long.chunks(1000).map(|c| (true, c.to_vec())).collect());
    // Endless headers.
    let mut headers = vec![(
        true,
        b"CONNECT a.blob.core.windows.net:443 HTTP/1.1\r\n".to_vec(),
    )];
    for _ in 0..2000 {
        headers.push((true, b"X-Filler: yes\r\n".to_vec()));
    }
    conn(headers);
    // An answer that is not HTTP.
    conn(vec![
        (
            true,
            b"CONNECT a.blob.core.windows.net:443 HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (false, b"SSH-2.0-OpenSSH_9.2\r\n\r\n".to_vec()),
    ]);
    // A refusal, then junk instead of a second CONNECT.
    conn(vec![
        (
            true,
            b"CONNECT a.blob.core.windows.net:443 HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            false,
            b"HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        (true, vec![0x16; 3000]),
    ]);
    let m = crafted_metrics(&frames, &["--all"]);
    let count = |result: &str| {
        value(
            &m,
            &format!(r#"tlscensus_preambles_total{{preamble="http_connect",result="{result}"}}"#),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("gave_up"), 3.0, "{m}");
    assert_eq!(count("no_tls"), 1.0, "{m}");
    assert_eq!(count("tls"), 0.0);
    assert!(
        !m.contains(r#"preamble="http_connect",target"#),
        "no TLS flow: {m}"
    );
}

/// The preamble of a flow split into single bytes, with the hello in the
/// same segment as the end of the CONNECT: the same flow as in one piece.
#[test]
fn regression_14_connect_split_anywhere() {
    let server = Ipv4Addr::new(192, 0, 2, 10);
    let hello = client_hello(0x0301, &[sni_extension("acct.blob.core.windows.net")]);
    let request = b"CONNECT acct.blob.core.windows.net:443 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let answer = b"HTTP/1.0 200 Connection established\r\n\r\n".to_vec();
    let reply = server_hello(0x0301, None);
    let whole = vec![
        (true, [request.clone(), hello.clone()].concat()),
        (false, [answer.clone(), reply.clone()].concat()),
    ];
    let mut split: Vec<(bool, Vec<u8>)> = request.iter().map(|b| (true, vec![*b])).collect();
    split.extend(answer.iter().map(|b| (false, vec![*b])));
    split.push((true, hello));
    split.push((false, reply));
    let dir = tempfile::tempdir().unwrap();
    let mut got = Vec::new();
    for (i, data) in [whole, split].iter().enumerate() {
        let p = dir.path().join(format!("{i}.pcap"));
        let c = Conn::new(Ipv4Addr::new(10, 0, 0, 1), 50000, server);
        write_pcap(&p, &c.frames(1_000_000_000, data, true));
        let evs = events(&[Path::new(&p)], &["--all"]);
        assert_eq!(evs.len(), 1, "{evs:?}");
        got.push(line(&evs[0]));
    }
    assert_eq!(
        got[0],
        "10.0.0.1>192.0.2.10:443 acct.B TLSv1.0/TLSv1.0 negotiated match=sni http_connect acct.B:443 -"
    );
    assert_eq!(got[0], got[1]);
}
