//! Issue 12, end to end through the binary: a sensor that cannot be blinded
//! and loses nothing quietly. Crafted traffic (tests/common/craft.rs) breaks
//! exactly one rule per test; each test is named after the item it covers.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::common::craft::*;
use crate::common::*;
use serde_json::{Value, json};

fn client(n: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits(0x0a00_0000 | n)
}

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// Writes `frames` as a capture in `dir`; its path.
fn pcap(dir: &Path, name: &str, frames: &[Frame]) -> String {
    let p = dir.join(name);
    write_pcap(&p, frames);
    p.display().to_string()
}

/// Events of one crafted capture, with `--all`.
fn crafted_events(frames: &[Frame]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let p = pcap(dir.path(), "c.pcap", frames);
    events(&[Path::new(&p)], &["--all"])
}

/// The metrics text of `read EXTRA` over one crafted capture.
fn crafted_metrics(frames: &[Frame], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = pcap(dir.path(), "c.pcap", frames);
    metrics_after_read(&[&p], extra)
}

/// Item 4: ClientHellos with hundreds of different version values make at
/// most the eight version names, in the metrics and in the inventory.
#[test]
fn regression_12_version_labels_closed_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = Vec::new();
    for i in 0..600u32 {
        let hello_version = 0x0200 + (i as u16) * 97; // all over the 16-bit space
        let conn = Conn::new(client(i % 20 + 1), 20000 + i as u16, SERVER);
        let hello = client_hello(hello_version, &[sni_extension("a.blob.core.windows.net")]);
        frames.extend(conn.frames(u64::from(i) * 10_000_000, &[(true, hello)], true));
    }
    let p = pcap(dir.path(), "versions.pcap", &frames);
    let m = metrics_after_read(&[&p], &["--all"]);
    let versions: std::collections::BTreeSet<&str> = m
        .lines()
        .filter(|l| {
            l.starts_with("tlscensus_flows_total{")
                || l.starts_with("tlscensus_legacy_flows_total{")
        })
        .filter_map(|l| l.split("version=\"").nth(1)?.split('"').next())
        .collect();
    let allowed = [
        "SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3", "other", "unknown",
    ];
    assert!(versions.iter().all(|v| allowed.contains(v)), "{versions:?}");
    assert!(versions.contains("other"), "{versions:?}");
    let series = m.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 500, "{series} series");
    // The inventory's legacy versions are names from the same set.
    let out = tlscensus(&["read", "--all", "--format", "json", &p]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for h in report["hosts"].as_array().unwrap() {
        for v in h["legacy_versions"].as_array().unwrap() {
            assert!(allowed.contains(&v.as_str().unwrap()), "{v}");
        }
    }
}

/// Item 9: a warning alert (unrecognized_name) before the ServerHello is no
/// rejection; a fatal alert is.
#[test]
fn regression_12_warning_alert_is_not_rejection() {
    let hello = client_hello(0x0303, &[sni_extension("a.blob.core.windows.net")]);
    let mut answer = alert(1, 112);
    answer.extend(server_hello(0x0303, None));
    let warned = Conn::new(client(1), 30001, SERVER).frames(
        1_000_000_000,
        &[(true, hello.clone()), (false, answer)],
        true,
    );
    let ev = crafted_events(&warned);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["outcome"], json!("negotiated"));
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.2"));
    assert_eq!(ev[0]["server_alert"], Value::Null);

    let fatal = Conn::new(client(1), 30002, SERVER).frames(
        1_000_000_000,
        &[(true, hello), (false, alert(2, 70))],
        true,
    );
    let ev = crafted_events(&fatal);
    assert_eq!(ev[0]["outcome"], json!("rejected"));
    assert_eq!(ev[0]["server_alert"], json!("protocol_version"));
}

/// Item 10: a TLS 1.0-only client "answered" with TLS 1.3 stays legacy, and
/// the anomaly is counted.
#[test]
fn regression_12_version_not_offered_stays_legacy() {
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let frames = Conn::new(client(2), 30003, SERVER).frames(
        1_000_000_000,
        &[(true, hello), (false, server_hello(0x0303, Some(0x0304)))],
        true,
    );
    let ev = crafted_events(&frames);
    assert_eq!(ev[0]["legacy"], json!(true), "{ev:?}");
    let m = crafted_metrics(&frames, &[]);
    has(
        &m,
        r#"tlscensus_anomalies_total{kind="version_not_offered"} 1"#,
    );
    has(
        &m,
        r#"tlscensus_legacy_flows_total{outcome="negotiated",source="10.0.0.2",version="TLSv1.0"} 1"#,
    );
}

/// Item 11: a repeated server_name keeps the first, counted as an anomaly.
#[test]
fn regression_12_duplicate_extension_counted() {
    let hello = client_hello(
        0x0303,
        &[
            sni_extension("a.blob.core.windows.net"),
            sni_extension("decoy.example"),
        ],
    );
    let frames = Conn::new(client(3), 30004, SERVER).frames(
        1_000_000_000,
        &[(true, hello), (false, server_hello(0x0303, None))],
        true,
    );
    let ev = crafted_events(&frames);
    assert_eq!(ev[0]["sni"], json!("a.blob.core.windows.net"));
    let m = crafted_metrics(&frames, &[]);
    has(
        &m,
        r#"tlscensus_anomalies_total{kind="duplicate_extension"} 1"#,
    );
}

/// Item 15: a HelloRetryRequest that is the server's last message still
/// shows as hello_retry; unknown version values do not outrank TLS 1.3.
#[test]
fn regression_12_hello_retry_last_and_unknown_versions() {
    let hello = client_hello(
        0x0303,
        &[
            sni_extension("a.blob.core.windows.net"),
            supported_versions_extension(&[0xfb1a, 0x0304, 0x7e01, 0x0303]),
        ],
    );
    let hrr = server_hello_with_random(0x0303, Some(0x0304), HRR_RANDOM);
    let frames = Conn::new(client(4), 30005, SERVER).frames(
        1_000_000_000,
        &[(true, hello), (false, hrr)],
        false,
    );
    let ev = crafted_events(&frames);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["hello_retry"], json!(true));
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.3"));
    assert_eq!(ev[0]["client_max_version"], json!("TLSv1.3"));
}

/// Item 2: `read --events - | head` ends quietly with status 0.
#[test]
fn regression_12_events_to_closed_pipe_quiet() {
    let mut frames = Vec::new();
    for i in 0..3000u32 {
        let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
        let conn = Conn::new(client(i % 200 + 1), 10000 + i as u16, SERVER);
        frames.extend(conn.frames(u64::from(i) * 1_000_000, &[(true, hello)], true));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = pcap(dir.path(), "many.pcap", &frames);
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{}' read --events - '{p}' 2>'{}/err' | head -n 2 >/dev/null",
            env!("CARGO_BIN_EXE_tlscensus"),
            dir.path().display()
        ))
        .output()
        .unwrap();
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("error"), "{err}");
}

/// Item 2: a full disk is said at once, and the counters are the truth:
/// nothing counted as written that was not.
#[test]
fn regression_12_event_write_errors_counted() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("m.prom");
    let out = tlscensus(&[
        "read",
        "--all",
        "--events",
        "/dev/full",
        "--metrics-file",
        prom.to_str().unwrap(),
        capture("openssl-tls10.pcap").to_str().unwrap(),
        capture("openssl-tls12.pcap").to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("event log /dev/full: No space left"), "{err}");
    let m = std::fs::read_to_string(&prom).unwrap();
    has(&m, "tlscensus_events_written_total 0");
    assert!(
        value(&m, "tlscensus_event_write_errors_total").unwrap() >= 1.0,
        "{m}"
    );
    has(
        &m,
        r#"tlscensus_events_dropped_total{reason="write_failed"} 2"#,
    );
}

/// Item 12: a second SYN-ACK with another ISN does not restart the flow:
/// one event, with the ServerHello that follows the new ISN, and the
/// anomaly counted.
#[test]
fn regression_12_second_synack_new_isn() {
    let (c, s) = ((client(5), 30006), (SERVER, 443));
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let answer = server_hello(0x0301, None);
    let (cisn, old_isn, new_isn) = (5000u32, 70_000u32, 9_000_000u32);
    let t = |n: u64| 1_000_000_000 + n * 1_000_000;
    // The client has sent its hello when the SYN-ACK comes again, with
    // another ISN; the ServerHello follows the new one.
    let frames = vec![
        Frame {
            ts_ns: t(0),
            data: tcp_frame(c, s, cisn, 0, SYN, &[]),
        },
        Frame {
            ts_ns: t(1),
            data: tcp_frame(s, c, old_isn, cisn + 1, SYN | ACK, &[]),
        },
        Frame {
            ts_ns: t(2),
            data: tcp_frame(c, s, cisn + 1, old_isn + 1, ACK, &[]),
        },
        Frame {
            ts_ns: t(3),
            data: tcp_frame(c, s, cisn + 1, old_isn + 1, ACK | PSH, &hello),
        },
        Frame {
            ts_ns: t(4),
            data: tcp_frame(s, c, new_isn, cisn + 1, SYN | ACK, &[]),
        },
        Frame {
            ts_ns: t(5),
            data: tcp_frame(
                s,
                c,
                new_isn + 1,
                cisn + 1 + hello.len() as u32,
                ACK | PSH,
                &answer,
            ),
        },
    ];
    let ev = crafted_events(&frames);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["outcome"], json!("negotiated"));
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.0"));
    let m = crafted_metrics(&frames, &[]);
    has(
        &m,
        r#"tlscensus_anomalies_total{kind="server_isn_changed"} 1"#,
    );
}

/// regression_27: ambiguous SYN-ACKs, end to end. A spurious second SYN-ACK
/// with another ISN while the server's data follows the first; SYN-ACKs
/// alternating between two ISNs while the data follows the one the client
/// acknowledged. Both were `unanswered` when the last SYN-ACK won.
#[test]
fn regression_27_ambiguous_syn_acks() {
    let (c, s) = ((client(5), 30012), (SERVER, 443));
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let t = |n: u64| 1_000_000_000 + n * 1_000_000;
    let (cisn, a, b) = (5000u32, 70_000u32, 3_000_000_000u32);
    let run = |syn_acks: &[u32], real: u32, version: u16| {
        let mut frames = vec![Frame {
            ts_ns: t(0),
            data: tcp_frame(c, s, cisn, 0, SYN, &[]),
        }];
        for (i, &isn) in syn_acks.iter().enumerate() {
            frames.push(Frame {
                ts_ns: t(1 + i as u64),
                data: tcp_frame(s, c, isn, cisn + 1, SYN | ACK, &[]),
            });
        }
        let n = syn_acks.len() as u64;
        frames.push(Frame {
            ts_ns: t(n + 1),
            data: tcp_frame(c, s, cisn + 1, real + 1, ACK | PSH, &hello),
        });
        frames.push(Frame {
            ts_ns: t(n + 2),
            data: tcp_frame(
                s,
                c,
                real + 1,
                cisn + 1 + hello.len() as u32,
                ACK | PSH,
                &server_hello(version, None),
            ),
        });
        crafted_events(&frames)
    };
    let ev = run(&[a, b], a, 0x0301);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.0"));
    let ev = run(&[a, b, a, b, a, b], b, 0x0303);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.2"));
}

/// Item 13: a plaintext banner from the server before the client's
/// ClientHello does not make the flow non-TLS: the hello is read.
#[test]
fn regression_12_server_banner_before_hello() {
    let hello = client_hello(0x0302, &[sni_extension("a.blob.core.windows.net")]);
    let frames = Conn::new(client(6), 30007, SERVER).frames(
        1_000_000_000,
        &[
            (false, b"220 welcome to the service\r\n".to_vec()),
            (true, hello),
        ],
        true,
    );
    let ev = crafted_events(&frames);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["client_max_version"], json!("TLSv1.1"));
    assert_eq!(ev[0]["legacy"], json!(true));
    // A banner the client never answers is still a non-TLS flow.
    let frames = Conn::new(client(6), 30008, SERVER).frames(
        1_000_000_000,
        &[(false, b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())],
        true,
    );
    let m = crafted_metrics(&frames, &["--all"]);
    has(&m, "tlscensus_non_tls_flows_total 1");
}

/// regression_27: TLS after an opening no parser knows. A server banner
/// (NoMachine's `NXSH-`), the client's hello, the server's answer after its
/// banner: negotiated, preamble `unknown`. An exchange of lines then TLS in
/// both directions (Gnutella's `Upgrade: TLS/1.0`) likewise; and a hello
/// nobody answers after such an exchange is not claimed.
#[test]
fn regression_27_tls_after_unknown_openings() {
    let hello = || client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let frames = Conn::new(client(6), 30010, SERVER).frames(
        1_000_000_000,
        &[
            (false, b"NXSH-1.0.0\n".to_vec()),
            (true, hello()),
            (false, server_hello(0x0301, None)),
        ],
        true,
    );
    let ev = crafted_events(&frames);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.0"));
    assert_eq!(ev[0]["preamble"], json!("unknown"));
    let upgrade = |answer: Vec<u8>| {
        Conn::new(client(6), 30011, SERVER).frames(
            1_000_000_000,
            &[
                (
                    true,
                    b"GNUTELLA CONNECT/0.6\r\nUpgrade: TLS/1.0\r\n\r\n".to_vec(),
                ),
                (
                    false,
                    b"GNUTELLA/0.6 101 Protocol Switch\r\nUpgrade: TLS/1.0\r\n\r\n".to_vec(),
                ),
                (true, hello()),
                (false, answer),
            ],
            true,
        )
    };
    let ev = crafted_events(&upgrade(server_hello(0x0302, None)));
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.1"));
    assert_eq!(ev[0]["preamble"], json!("unknown"));
    let m = crafted_metrics(&upgrade(server_hello(0x0302, None)), &["--all"]);
    has(
        &m,
        r#"tlscensus_preambles_total{preamble="unknown",result="tls"} 1"#,
    );
    // No answer after the exchange: nothing claimed, a non-TLS flow.
    let ev = crafted_events(&upgrade(b"GNUTELLA/0.6 200 OK\r\n".to_vec()));
    assert!(ev.is_empty(), "{ev:?}");
}

/// Item 14: a pcapng whose interfaces have different snapshot lengths
/// (npcap, `mergecap -I none`) is read whole.
#[test]
fn regression_12_pcapng_mixed_snaplens() {
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let frames = Conn::new(client(7), 30009, SERVER).frames(
        1_000_000_000,
        &[(true, hello), (false, server_hello(0x0301, None))],
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mixed.pcapng");
    write_pcapng(&p, &[65535, 262_144], &frames);
    let ev = events(&[&p], &["--all"]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["negotiated_version"], json!("TLSv1.0"));
}

/// Items 15 and 17: `read DIR` descends into subdirectories; a capture it
/// cannot open is an error naming it (status 2); FIFOs, dangling links and
/// loops are named in the note; an unsupported link type is said.
#[test]
fn regression_12_directory_inputs() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sub = root.join("day2");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(capture("openssl-tls10.pcap"), root.join("a.pcap")).unwrap();
    std::fs::copy(capture("openssl-tls12.pcap"), sub.join("b.pcap")).unwrap();
    std::fs::write(root.join("notes.txt"), "not a capture").unwrap();
    symlink(root.join("gone.pcap"), root.join("dangling.pcap")).unwrap();
    symlink(root, sub.join("loop")).unwrap();
    let fifo = root.join("pipe.pcap");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()));
    // Ethernet bytes under link type 105 (802.11).
    let mut wifi = std::fs::read(capture("openssl-tls11.pcap")).unwrap();
    wifi[20..24].copy_from_slice(&105u32.to_le_bytes());
    std::fs::write(sub.join("wifi.pcap"), wifi).unwrap();
    let locked = root.join("locked.pcap");
    std::fs::copy(capture("openssl-tls10.pcap"), &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();

    let bin = env!("CARGO_BIN_EXE_tlscensus");
    let root_s = root.display().to_string();
    let mut cmd = if is_root() {
        // Root reads any file: run as nobody, for whom the file is locked.
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        std::process::Command::new(bin)
    };
    let out = cmd
        .args(["read", "--all", "--no-progress", &root_s])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{err}\n{report}");
    assert!(err.contains("locked.pcap: Permission denied"), "{err}");
    assert!(
        err.contains("skipped 1 file(s) that are not pcap/pcapng captures"),
        "{err}"
    );
    for named in [
        "dangling.pcap (dangling link)",
        "pipe.pcap (FIFO)",
        "loop (directory loop)",
    ] {
        assert!(err.contains(named), "{named} not in {err}");
    }
    assert!(
        err.contains("wifi.pcap: 14 packet(s) have link type 105"),
        "{err}"
    );
    // Both captures were read, the one in the subdirectory too.
    assert!(report.contains("in 4 files"), "{report}");
    assert!(report.contains("2 TLS flows seen"), "{report}");
}

/// Item 16: a capture cut by its snap length reports what the bytes show,
/// marks the flows incomplete, and says once how to capture them whole.
#[test]
fn regression_12_snaplen_cut_capture() {
    let out = tlscensus(&[
        "read",
        "--all",
        "--events",
        "-",
        capture("snaplen-96.pcap").to_str().unwrap(),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let ev: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["incomplete"], json!(true));
    assert_eq!(ev[0]["client_hello_version"], json!("TLSv1.2"));
    assert_eq!(ev[0]["client_max_version"], Value::Null);
    assert_eq!(ev[0]["negotiated_version"], Value::Null);
    assert_eq!(
        err.matches("snap length cut 2 TLS handshake").count(),
        1,
        "{err}"
    );
    assert!(err.contains("tcpdump -s 0"), "{err}");

    // A TLS 1.0 hello cut after its version, and the server's fatal alert.
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let mut frames = Conn::new(client(8), 30010, SERVER).frames(
        1_000_000_000,
        &[(true, hello), (false, alert(2, 70))],
        true,
    );
    for f in &mut frames {
        f.data.truncate(54 + 20); // Ethernet, IPv4, TCP and 20 bytes of payload
    }
    let ev = crafted_events(&frames);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["client_hello_version"], json!("TLSv1.0"));
    assert_eq!(ev[0]["outcome"], json!("rejected"));
    assert_eq!(ev[0]["server_alert"], json!("protocol_version"));
    assert_eq!(ev[0]["incomplete"], json!(true));
}

/// Item 11: overlapping segments with different bytes: the bytes already
/// received are kept (documented policy) and the conflict is counted.
#[test]
fn regression_12_overlap_conflict_first_bytes_win() {
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let (c, s) = ((client(9), 30011), (SERVER, 443));
    let isn = 7000u32;
    // The first segment ends 4 bytes into the server name; the second starts
    // at the name and says "evil" where the first said "a.bl". Kept bytes
    // win: the name stays; the other policy would give "evilob.core...".
    let at = hello
        .windows(6)
        .position(|w| w == b"a.blob")
        .expect("name in hello");
    let first = &hello[..at + 4];
    let mut forged = hello[at..].to_vec();
    forged[..4].copy_from_slice(b"evil");
    let t = |n: u64| 1_000_000_000 + n * 1_000_000;
    let frames = vec![
        Frame {
            ts_ns: t(0),
            data: tcp_frame(c, s, isn, 0, SYN, &[]),
        },
        Frame {
            ts_ns: t(1),
            data: tcp_frame(s, c, 50, isn + 1, SYN | ACK, &[]),
        },
        Frame {
            ts_ns: t(2),
            data: tcp_frame(c, s, isn + 1, 51, ACK | PSH, first),
        },
        Frame {
            ts_ns: t(3),
            data: tcp_frame(c, s, isn + 1 + at as u32, 51, ACK | PSH, &forged),
        },
        Frame {
            ts_ns: t(4),
            data: tcp_frame(
                s,
                c,
                51,
                isn + 1 + hello.len() as u32,
                ACK | PSH,
                &alert(2, 70),
            ),
        },
    ];
    let ev = crafted_events(&frames);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["sni"], json!("a.blob.core.windows.net"));
    assert_eq!(ev[0]["outcome"], json!("rejected"));
    let m = crafted_metrics(&frames, &[]);
    has(
        &m,
        r#"tlscensus_anomalies_total{kind="overlap_conflict"} 1"#,
    );
}

/// Item 8: DNS seen after a flow never changes that flow's match: junk
/// answers that evict the flow's answer from a full store, while the flow
/// waits to be reported, leave it matched; junk with a TTL of decades
/// cannot keep a later real answer out.
#[test]
fn regression_12_dns_after_flow_does_not_change_match() {
    let resolver = (Ipv4Addr::new(192, 0, 2, 53), 53);
    let real = Ipv4Addr::new(192, 0, 2, 77);
    let mut frames = Vec::new();
    let mut t = 1_000_000_000u64;
    let mut push = |data: Vec<u8>, frames: &mut Vec<Frame>| {
        frames.push(Frame { ts_ns: t, data });
        t += 1_000_000;
    };
    // Junk first: a full store of answers that claim to live for decades.
    for n in 0..40u32 {
        let name = format!("junk{n}.blob.core.windows.net");
        let answer = dns_a_response(&name, client(0x30_0000 + n), i32::MAX as u32);
        push(udp_frame(resolver, (client(1), 5353), &answer), &mut frames);
    }
    let answer = dns_a_response("realacct.blob.core.windows.net", real, 300);
    push(udp_frame(resolver, (client(2), 5353), &answer), &mut frames);
    // The SNI-less TLS 1.0 hello; the server never answers.
    let conn = Conn {
        client: (client(2), 51000),
        server: (real, 443),
        client_isn: 7,
        server_isn: 9,
    };
    for f in conn.frames(0, &[(true, client_hello(0x0301, &[]))], false) {
        push(f.data, &mut frames);
    }
    // More junk evicts the real answer while the flow waits.
    for n in 40..80u32 {
        let name = format!("junk{n}.blob.core.windows.net");
        let answer = dns_a_response(&name, client(0x30_0000 + n), i32::MAX as u32);
        push(udp_frame(resolver, (client(1), 5353), &answer), &mut frames);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = pcap(dir.path(), "dns.pcap", &frames);
    let ev = events(&[Path::new(&p)], &["--all", "--max-dns-entries", "8"]);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["match"], json!("dns_address"), "{ev:?}");
    assert_eq!(ev[0]["account"], json!("realacct"));
    assert_eq!(ev[0]["legacy"], json!(true));
    let m = metrics_after_read(&[&p], &["--max-dns-entries", "8"]);
    has(&m, r#"tlscensus_target_flows_total{match="dns_address"} 1"#);
    assert!(
        value(&m, r#"tlscensus_bound_hits_total{bound="dns_entries"}"#).unwrap() >= 70.0,
        "{m}"
    );
    has(&m, "tlscensus_dns_entries 8");
}

/// Item 5: spoofed sources that only sent a hello (each reset, so reported
/// first) fill the labelled sources; hosts whose server answered still get
/// their own series, and every flow is still counted (in `other`).
#[test]
fn regression_12_answered_sources_win_over_spoofed() {
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let mut frames = Vec::new();
    let mut t = 1_000_000_000u64;
    for n in 0..20u32 {
        let c = (client(0x10_0000 + n), 40000);
        let len = hello.len() as u32;
        frames.push(Frame {
            ts_ns: t,
            data: tcp_frame(c, (SERVER, 443), 1, 0, ACK | PSH, &hello),
        });
        frames.push(Frame {
            ts_ns: t + 1000,
            data: tcp_frame((SERVER, 443), c, 1, 1 + len, RST | ACK, &[]),
        });
        t += 1_000_000;
    }
    for n in 0..3u32 {
        let conn = Conn::new(client(0x20_0000 + n), 50000, SERVER);
        frames.extend(conn.frames(t, &[(true, hello.clone()), (false, alert(2, 70))], true));
        t += 100_000_000;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = pcap(dir.path(), "sources.pcap", &frames);
    let m = metrics_after_read(&[&p], &["--max-legacy-sources", "10"]);
    for n in 0..3u32 {
        let series = format!(
            r#"tlscensus_legacy_flows_total{{outcome="rejected",source="{}",version="TLSv1.0"}} 1"#,
            client(0x20_0000 + n)
        );
        has(&m, &series);
    }
    let labelled = m
        .lines()
        .filter(|l| l.starts_with("tlscensus_legacy_flows_total{"))
        .count();
    assert_eq!(labelled, 11, "10 sources and other:\n{m}");
    // 20 spoofed flows: 7 still labelled, 13 in other (10 never admitted, 3 displaced).
    has(
        &m,
        r#"tlscensus_legacy_flows_total{outcome="unanswered",source="other",version="TLSv1.0"} 13"#,
    );
}

/// Issue 16: spoofed hello-only flows to 20,000 made-up storage accounts
/// fill the destination table (16,384), then a real client's answered
/// TLS 1.0 flow to `realacct` must still be listed, and a real host beyond
/// `--max-hosts` still inventoried; what was given up is counted.
#[test]
fn spoofed_names_cannot_keep_real_destinations_out() {
    let mut frames = Vec::new();
    let mut ts = 1_700_000_000_000_000_000u64;
    for n in 0..20_000u32 {
        let hello = client_hello(
            0x0301,
            &[sni_extension(&format!("s{n}.blob.core.windows.net"))],
        );
        ts += 1_000;
        frames.push(Frame {
            ts_ns: ts,
            data: tcp_frame((client(n), 40000), (SERVER, 443), 1, 0, ACK | PSH, &hello),
        });
    }
    let conn = Conn::new(Ipv4Addr::new(192, 0, 2, 77), 52000, SERVER);
    let data = [
        (
            true,
            client_hello(0x0301, &[sni_extension("realacct.blob.core.windows.net")]),
        ),
        (false, server_hello(0x0301, None)),
    ];
    frames.extend(conn.frames(ts + 1_000_000, &data, true));
    let dir = tempfile::tempdir().unwrap();
    let p = pcap(dir.path(), "c.pcap", &frames);
    let prom = dir.path().join("m.prom");
    let out = tlscensus(&[
        "read",
        "--max-hosts",
        "1000",
        "--by",
        "destination",
        "--format",
        "json",
        "--metrics-file",
        prom.to_str().unwrap(),
        &p,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["destinations"].as_array().unwrap();
    assert_eq!(rows.len(), 16_384);
    let real = rows
        .iter()
        .find(|d| d["destination"] == "realacct")
        .expect("realacct listed");
    assert_eq!(real["legacy_hosts"], json!(["192.0.2.77"]));
    let m = std::fs::read_to_string(&prom).unwrap();
    has(
        &m,
        "tlscensus_bound_hits_total{bound=\"destinations\"} 3617",
    );
    has(&m, "tlscensus_bound_hits_total{bound=\"hosts\"} 19001");
    let out = tlscensus(&["read", "--max-hosts", "1000", "--format", "json", &p]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1000);
    assert!(
        hosts.iter().any(|h| h["host"] == "192.0.2.77"),
        "the real host kept"
    );
}

/// A full inventory and a full set of labelled sources, filled by one-flow
/// answered legacy sources (a fleet, or a sender faking both directions):
/// a host that was there first with many flows keeps its place, and a host
/// that comes later and keeps making flows is inventoried and labelled from
/// its second flow. The summary counts every legacy flow, held or not.
#[test]
fn regulars_win_over_one_shot_floods() {
    let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
    let data = [(true, hello.clone()), (false, server_hello(0x0301, None))];
    let regular = Ipv4Addr::new(192, 0, 2, 50);
    let late = Ipv4Addr::new(192, 0, 2, 60);
    let mut frames = Vec::new();
    let mut t = 1_700_000_000_000_000_000u64;
    let mut flow = |frames: &mut Vec<Frame>, ip: Ipv4Addr, port: u16| {
        frames.extend(Conn::new(ip, port, SERVER).frames(t, &data, true));
        t += 10_000_000;
    };
    for n in 0..2_000u32 {
        if n % 100 == 0 {
            flow(&mut frames, regular, 30_000 + (n / 100) as u16);
        }
        flow(&mut frames, client(0x30_0000 + n), 40_000);
    }
    for k in 0..6u16 {
        flow(&mut frames, late, 50_000 + k);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = pcap(dir.path(), "flood.pcap", &frames);
    let limits = ["--max-hosts", "500", "--max-legacy-sources", "100"];
    let m = metrics_after_read(&[&p], &limits);
    let series = |ip: Ipv4Addr| {
        let prefix = format!(
            r#"tlscensus_legacy_flows_total{{outcome="negotiated",source="{ip}",version="TLSv1.0"}} "#
        );
        m.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse::<u64>().ok())
    };
    assert_eq!(series(regular), Some(20), "{m}");
    let late_flows = series(late).expect("the late host labelled");
    assert!(
        (5..=6).contains(&late_flows),
        "labelled from its second flow: {late_flows}"
    );
    let mut args = vec!["read", "--format", "json"];
    args.extend(limits);
    args.push(&p);
    let out = tlscensus(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 500);
    let flows_of = |ip: Ipv4Addr| {
        hosts
            .iter()
            .find(|h| h["host"] == ip.to_string())
            .and_then(|h| h["flows"].as_u64())
    };
    assert_eq!(flows_of(regular), Some(20));
    let late_flows = flows_of(late).expect("the late host inventoried");
    assert!((5..=6).contains(&late_flows), "{late_flows}");
    let mut args = vec!["read"];
    args.extend(limits);
    args.push(&p);
    let summary = text(&tlscensus(&args).stdout);
    assert!(
        summary.contains("(2026 legacy from 500 hosts"),
        "every legacy flow counted: {summary}"
    );
}
