//! The census on real interfaces: real OpenSSL clients and servers, and the
//! shipped captures replayed, give what `read` gives on the same captures.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::harness::*;
use super::replays::*;

/// Real OpenSSL clients at TLS 1.0 to 1.3 from two hosts, two interfaces:
/// /metrics shows exactly those flows per source address, and SIGTERM ends
/// the run cleanly with the event log complete.
#[test]
fn live_openssl_versions_per_source() {
    if !prerequisites("live_openssl_versions_per_source") {
        return;
    }
    let mut net = Net::new(2);
    let events = net.path("events.ndjson");
    let (i1, i2) = (net.iface(1), net.iface(2));
    let mut sensor = net.tlscensus(&[
        "-i",
        &i1,
        "-i",
        &i2,
        "--user",
        "root",
        "--events",
        events.to_str().unwrap(),
    ]);
    // 4431 behaves like Azure Blob Storage since Feb 2026; 4432 still allows TLS 1.0.
    net.openssl_server(4431, "-min_protocol TLSv1.2");
    net.openssl_server(4432, &format!("-cipher {LEGACY} -min_protocol TLSv1"));
    let b = "blob.core.windows.net";
    net.openssl_client(
        1,
        4431,
        &format!("-tls1 -cipher {LEGACY} -servername acct1.{b}"),
    );
    net.openssl_client(
        1,
        4432,
        &format!("-tls1_1 -cipher {LEGACY} -servername acct2.{b}"),
    );
    net.openssl_client(
        2,
        4431,
        &format!("-tls1_1 -cipher {LEGACY} -servername acct3.{b}"),
    );
    net.openssl_client(2, 4431, &format!("-tls1_2 -servername acct4.{b}"));
    net.openssl_client(2, 4431, &format!("-tls1_3 -servername acct5.{b}"));
    net.openssl_client(2, 4431, "-tls1_3 -servername www.example.org");

    // The kernel's counts are published once a second: wait for them too.
    let m = sensor.wait_for("six flows and the kernel's counts", |m| {
        m.family("tlscensus_flows_total").values().sum::<f64>() >= 6.0
            && [&i1, &i2].iter().all(|i| {
                m.get(&format!(
                    "tlscensus_capture_received_total{{interface=\"{i}\"}}"
                )) > 0.0
            })
    });
    assert_eq!(
        m.family("tlscensus_legacy_flows_total"),
        one_each(
            "tlscensus_legacy_flows_total",
            ["outcome", "source", "version"],
            &[
                ["negotiated", "10.77.1.2", "TLSv1.1"],
                ["rejected", "10.77.1.2", "TLSv1.0"],
                ["rejected", "10.77.2.2", "TLSv1.1"],
            ]
        )
    );
    assert_eq!(
        m.family("tlscensus_flows_total"),
        one_each(
            "tlscensus_flows_total",
            ["outcome", "preamble", "target", "version"],
            &[
                ["negotiated", "none", "false", "TLSv1.3"],
                ["negotiated", "none", "true", "TLSv1.1"],
                ["negotiated", "none", "true", "TLSv1.2"],
                ["negotiated", "none", "true", "TLSv1.3"],
                ["rejected", "none", "true", "TLSv1.0"],
                ["rejected", "none", "true", "TLSv1.1"],
            ]
        )
    );
    for i in [&i1, &i2] {
        assert_eq!(
            m.get(&format!("tlscensus_interface_up{{interface=\"{i}\"}}")),
            1.0
        );
        assert!(
            m.get(&format!(
                "tlscensus_capture_received_total{{interface=\"{i}\"}}"
            )) > 0.0
        );
        assert_eq!(
            m.get(&format!(
                "tlscensus_capture_kernel_drops_total{{interface=\"{i}\"}}"
            )),
            0.0
        );
    }
    assert_eq!(m.get("tlscensus_queue_drops_total"), 0.0);
    assert!(
        m.0.keys()
            .any(|k| k.starts_with("tlscensus_build_info{version="))
    );
    assert!(m.0.contains_key("tlscensus_uptime_seconds"));
    let (code, body) = sensor.get("/healthz");
    assert_eq!((code, body.trim()), (200, "ok"));

    let status = sensor.stop("TERM");
    assert!(status.success(), "exit {status:?}: {}", sensor.log_text());
    let log = sensor.log_text();
    assert!(log.contains("stopped:"), "{log}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "target flows only");
    let rejected10 = lines
        .iter()
        .find(|e| e["sni"] == format!("acct1.{b}"))
        .unwrap();
    assert_eq!(rejected10["src_ip"], "10.77.1.2");
    assert_eq!(rejected10["dst_port"], 4431);
    assert_eq!(rejected10["client_max_version"], "TLSv1.0");
    assert_eq!(rejected10["server_alert"], "protocol_version");
    assert_eq!(rejected10["outcome"], "rejected");
    assert_eq!(rejected10["legacy"], true);
}

/// SIGINT while a handshake waits for its answer: the flow is finished as
/// unanswered and counted, the event log is flushed, exit status 0.
#[test]
fn live_signal_finishes_flows_in_progress() {
    if !prerequisites("live_signal_finishes_flows_in_progress") {
        return;
    }
    let mut net = Net::new(1);
    let events = net.path("events.ndjson");
    let metrics_file = net.path("metrics.prom");
    let i1 = net.iface(1);
    let mut sensor = net.tlscensus(&[
        "-i",
        &i1,
        "--user",
        "root",
        "--events",
        events.to_str().unwrap(),
        "--metrics-file",
        metrics_file.to_str().unwrap(),
    ]);
    // A TCP server that accepts and never answers: the ClientHello stays unanswered.
    let silent = Command::new("ip")
        .args(["netns", "exec", &net.srv(), "python3", "-c"])
        .arg(
            "import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',4433));s.listen(5)\nc=[]\nwhile True:\n  c.append(s.accept())",
        )
        .spawn()
        .unwrap();
    net.children.push(silent);
    net.wait_listening(4433);
    let p = net.p.clone();
    let client = Command::new("sh")
        .args([
            "-c",
            &format!(
                "sleep 30 | exec ip netns exec {p}c1 openssl s_client -connect 10.77.1.1:4433 -tls1_1 -cipher {LEGACY} -servername waiting.blob.core.windows.net"
            ),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    net.children.push(client);
    sensor.wait_for("the ClientHello", |m| {
        m.get("tlscensus_flows_tracked") >= 1.0
    });
    let status = sensor.stop("INT");
    assert!(status.success(), "exit {status:?}: {}", sensor.log_text());
    let ev: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&events).unwrap().trim()).unwrap();
    assert_eq!(ev["outcome"], "unanswered");
    assert_eq!(ev["client_max_version"], "TLSv1.1");
    assert_eq!(ev["legacy"], true);
    let m = Metrics::parse(&std::fs::read_to_string(&metrics_file).unwrap());
    assert_eq!(
        m.get(r#"tlscensus_flow_evictions_total{reason="end_of_capture"}"#),
        1.0
    );
    assert_eq!(
        m.get(r#"tlscensus_legacy_flows_total{outcome="unanswered",source="10.77.1.2",version="TLSv1.1"}"#),
        1.0
    );
    assert_eq!(m.get("tlscensus_flows_tracked"), 0.0);
}

/// The shipped Ethernet captures replayed with tcpreplay into a veth give the
/// same counters as `tlscensus read` on the same files.
#[test]
fn live_replay_matches_offline_read() {
    if !prerequisites("live_replay_matches_offline_read") {
        return;
    }
    let files = replay_files();
    assert!(files.len() >= 30, "{files:?}");
    replay_matches_offline(&files, 5, &[]);
}

/// `--capture-threads 2` and `4`: the kernel spreads the replay over the
/// threads' sockets (each reads a share) and the counters are still those
/// of `read`. No plain flow comes through two threads (a symmetric hash);
/// only flows the outer headers hide can (tunnels: each direction has its
/// own outer flow).
#[test]
fn live_capture_threads_match_offline_read() {
    if !prerequisites("live_capture_threads_match_offline_read") {
        return;
    }
    let all = replay_files();
    let tunnelled = |f: &PathBuf| {
        f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("tunnel-")
    };
    let (tunnels, plain): (Vec<PathBuf>, Vec<PathBuf>) = all.into_iter().partition(tunnelled);
    assert!(
        plain.len() >= 30 && tunnels.len() >= 5,
        "{plain:?} {tunnels:?}"
    );
    for n in [2usize, 4] {
        let threads = n.to_string();
        let live = replay_matches_offline(&plain, 5, &["--capture-threads", &threads]);
        let per_thread = live.family("tlscensus_capture_thread_packets_total");
        assert_eq!(
            per_thread.len(),
            n,
            "every thread reads a share: {per_thread:?}"
        );
        assert_eq!(
            live.get("tlscensus_capture_split_flows_total"),
            0.0,
            "{}",
            live.dump()
        );
    }
    // Tunnels: the counters hold even when a flow's directions are split.
    replay_matches_offline(&tunnels, 1, &["--capture-threads", "2"]);
}

/// The kernel skip (issue 18): replayed at 100,000 packets/s, the bulk mix
/// gives `read`'s counters with the skip on (the default, 1 and 2 capture
/// threads) and off, and with it on, most of its packets never reach the
/// capture ring (settled flows' data segments, dropped by the eBPF filter).
#[test]
fn live_kernel_skip_matches_offline_read() {
    if !prerequisites("live_kernel_skip_matches_offline_read") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bulk = bulk_mix(dir.path());
    let frames = pcap::Capture::from_file(&bulk)
        .map(|mut c| std::iter::from_fn(move || c.next_packet().ok().map(|_| ())).count())
        .unwrap() as f64;
    // What the kernel skip does, not how fast the sensor goes (that is
    // `scripts/live-rate.sh`): a pace the sensor keeps on two shared
    // cores while other live tests run, so no flow is lost to its queue.
    let pace = ["--pps", "50000"];
    let files = [bulk.clone()];
    for args in [&[][..], &["--capture-threads", "2"]] {
        let live = replay_paced_matches_offline(&files, 1, args, &pace);
        let skipped = live.get("tlscensus_capture_kernel_skipped_total");
        assert_eq!(live.get("tlscensus_capture_kernel_skip_active"), 1.0);
        assert!(
            skipped > frames / 2.0,
            "{args:?}: {skipped} of {frames} frames skipped in the kernel\n{}",
            live.dump()
        );
        assert!(live.get("tlscensus_capture_kernel_skip_flows_total") > 100.0);
        // What reached the sensor and what the kernel dropped for it make
        // up the replay, less bare ACKs (the filter leaves them out).
        let read = live.get("tlscensus_packets_total");
        assert!(read + skipped <= frames && read + skipped > frames * 0.6);
    }
    let off = replay_paced_matches_offline(&files, 1, &["--kernel-skip-flows", "0"], &pace);
    assert_eq!(off.get("tlscensus_capture_kernel_skipped_total"), 0.0);
    assert_eq!(off.get("tlscensus_capture_kernel_skip_active"), 0.0);
}

/// The preamble captures (issue 14) replayed on their own: they were made
/// days after the others, and `read` over all files in name order would see
/// capture time jump forward between files and expire flows idle for longer
/// than the timeout, which a replay in one real-time stream keeps (and a
/// later file's copy of the same address/port pair then joins).
#[test]
fn live_replay_preamble_captures_match_offline_read() {
    if !prerequisites("live_replay_preamble_captures_match_offline_read") {
        return;
    }
    let files = preamble_replay_files();
    assert!(files.len() >= 20, "{files:?}");
    replay_matches_offline(&files, 5, &[]);
}

/// Passive DNS live, end to end: the default capture filter lets the DNS
/// answers through (UDP, and TCP port 53), the sensor learns them before the
/// handshakes that follow, and an answer expires by the capture clock. The
/// DNS captures are replayed at their recorded pace (the expired one keeps
/// its 7 s between answer and handshake), and the events equal those of an
/// offline read of the same files.
#[test]
fn live_passive_dns_matches_offline_read() {
    if !prerequisites("live_passive_dns_matches_offline_read") {
        return;
    }
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let files: Vec<PathBuf> = [
        "dns-cname-custom-domain.pcap",
        "dns-privatelink-nosni.pcap",
        "dns-tcp-nosni.pcap",
        "dns-expired-nosni.pcap",
    ]
    .iter()
    .map(|f| captures.join(f))
    .collect();
    // What matters of an event: who, and how the server was recognised.
    let facts = |text: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|e| {
                [
                    "src_ip",
                    "sni",
                    "negotiated_version",
                    "outcome",
                    "match",
                    "account",
                ]
                .map(|k| e[k].to_string())
                .join(" ")
            })
            .collect();
        v.sort();
        v
    };
    let out = Command::new(BIN)
        .args(["read", "--no-progress", "--events", "-"])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline = facts(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(offline.len(), 4, "{offline:#?}");
    assert_eq!(
        offline.iter().filter(|e| e.contains("dns_address")).count(),
        2,
        "{offline:#?}"
    );

    let mut net = Net::new(1);
    let events = net.path("events.jsonl");
    let i1 = net.iface(1);
    let mut sensor = net.tlscensus(&[
        "-i",
        &i1,
        "--user",
        "root",
        "--events",
        events.to_str().unwrap(),
    ]);
    replay(&net, &files, &[]);
    sensor.wait_for("the four flows", |m| {
        m.get("tlscensus_events_written_total") >= 4.0
    });
    let m = sensor.wait_for("the DNS answers", |m| {
        m.get(r#"tlscensus_dns_responses_total{result="target"}"#) >= 4.0
    });
    assert_eq!(m.get(r#"tlscensus_target_flows_total{match="cname"}"#), 1.0);
    let status = sensor.stop("TERM");
    assert!(status.success(), "{}", sensor.log_text());
    let live = facts(&std::fs::read_to_string(&events).unwrap());
    assert_eq!(live, offline, "live (left) vs offline read (right)");
}
