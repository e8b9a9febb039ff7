//! Replays of the shipped and generated captures into a sensor, compared
//! flow by flow with `read` on the same files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::*;
use crate::common::{captures, gen_capture, made_apart};

/// Held by the tests that replay whole captures and compare every flow with
/// `read`: two of them at once on two cores can starve a sensor into kernel
/// drops, which lose flows for reasons that are not the code's.
pub static REPLAYING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn replaying() -> std::sync::MutexGuard<'static, ()> {
    REPLAYING.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shipped Ethernet captures that replay whole (damaged and cut ones test
/// the offline reader), in name order.
pub fn replay_files() -> Vec<PathBuf> {
    let captures = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&captures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // Ethernet captures that are whole (damaged and cut ones test the reader).
            // Passive DNS captures are left out: replayed in one real-time
            // stream, their answers (TTL 5 s) would still be valid for the
            // SNI-less flows of other files to the same server address.
            // Host-name captures are left out too: their DHCP leases run
            // for minutes of capture time (tests/names.rs reads them).
            (name.ends_with(".pcap") || name == "demo.pcapng")
                && !name.starts_with("link-")
                && !name.starts_with("dns-")
                && !name.starts_with("names-")
                && !name.starts_with("services")
                && !["truncated.pcap", "snaplen-96.pcap"].contains(&name.as_str())
                || [
                    "link-vlan.pcap",
                    "link-qinq.pcap",
                    "link-ethernet-nsec-bigendian.pcap",
                ]
                .contains(&name.as_str())
        })
        .filter(|p| !made_apart(p))
        .collect();
    files.sort();
    files
}

/// The preamble captures, in name order (replayed on their own: see
/// `live_replay_preamble_captures_match_offline_read`).
pub fn preamble_replay_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(captures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| made_apart(p))
        .collect();
    files.sort();
    files
}

/// Replays the files into client namespace 1's interface; returns frames sent.
pub fn replay(net: &Net, files: &[PathBuf], pace: &[&str]) -> f64 {
    let mut frames = 0.0;
    for f in files {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{}c1", net.p), "tcpreplay"])
            .args(pace)
            .arg("-i")
            .arg(format!("{}c1", net.p))
            .arg(f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let sent: f64 = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Actual: ")?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("tcpreplay output: {text}"));
        frames += sent;
    }
    frames
}

/// VXLAN on its standard port and on 8472 (captures/tunnel-vxlan-8472.pcap):
/// the live default filter is built from these ports, so those frames pass it.
pub const TUNNEL_PORTS: [&str; 4] = ["--vxlan-port", "4789", "--vxlan-port", "8472"];

/// The benchmark generator's bulk mix (real handshakes, then bulk data).
pub fn bulk_mix(dir: &Path) -> PathBuf {
    let out = dir.join("bulk.pcap");
    gen_capture(
        &out,
        &[
            "--bytes",
            "60000000",
            "--handshake-share",
            "0.07",
            "--seed",
            "11",
            "--concurrent",
            "64",
        ],
    );
    out
}

/// Replays `files` into a veth watched by `tlscensus live` and compares its
/// counters with `tlscensus read` of the same files; at least `min_legacy`
/// legacy series must be there. `sensor_args`: more options for the sensor.
/// Returns the sensor's metrics at its stop.
pub fn replay_matches_offline(
    files: &[PathBuf],
    min_legacy: usize,
    sensor_args: &[&str],
) -> Metrics {
    replay_paced_matches_offline(files, min_legacy, sensor_args, &["--topspeed"])
}

/// [`replay_matches_offline`] at the pace `pace` (tcpreplay's options).
pub fn replay_paced_matches_offline(
    files: &[PathBuf],
    min_legacy: usize,
    sensor_args: &[&str],
    pace: &[&str],
) -> Metrics {
    // `read` takes files in capture order (first packet time, then name):
    // the replay sends them in that order too.
    let mut files = files.to_vec();
    files.sort_by_key(|f| {
        let first = pcap::Capture::from_file_with_precision(f, pcap::Precision::Nano)
            .ok()
            .and_then(|mut c| {
                c.next_packet()
                    .ok()
                    .map(|p| p.header.ts.tv_sec as u64 * 1_000_000_000 + p.header.ts.tv_usec as u64)
            });
        (first.unwrap_or(u64::MAX), f.clone())
    });
    let files = &files[..];
    let _one_at_a_time = replaying();
    let mut net = Net::new(1);
    let offline_metrics = net.path("offline.prom");
    let out = Command::new(BIN)
        .args(["read", "--no-progress", "--format", "csv"])
        .args(TUNNEL_PORTS)
        .arg("--metrics-file")
        .arg(&offline_metrics)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline = Metrics::parse(&std::fs::read_to_string(&offline_metrics).unwrap());

    let live_metrics = net.path("live.prom");
    let i1 = net.iface(1);
    let mut args = vec![
        "-i",
        &i1,
        "--user",
        "root",
        "--metrics-file",
        live_metrics.to_str().unwrap(),
    ];
    args.extend(TUNNEL_PORTS);
    args.extend(sensor_args);
    let mut sensor = net.tlscensus(&args);
    // Replay from the client side of the pair, file by file in capture order.
    let frames = replay(&net, files, pace);
    let iface = format!("tlscensus_capture_received_total{{interface=\"{i1}\"}}");
    sensor.wait_drained(frames);
    // /inventory?by=fingerprint serves what `read --by fingerprint` prints,
    // once the flows have settled.
    let fingerprints = |json: &str| -> Vec<(String, u64, u64, Option<String>)> {
        let doc: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let mut rows: Vec<_> = doc["fingerprints"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|r| {
                (
                    r["ja4"].as_str().unwrap_or("").to_string(),
                    r["flows"].as_u64().unwrap_or(0),
                    r["legacy_flows"].as_u64().unwrap_or(0),
                    r["label"].as_str().map(str::to_string),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    let offline_rows = fingerprints(&String::from_utf8_lossy(
        &Command::new(BIN)
            .args([
                "read",
                "--no-progress",
                "--by",
                "fingerprint",
                "--format",
                "json",
            ])
            .args(TUNNEL_PORTS)
            .args(files)
            .output()
            .unwrap()
            .stdout,
    ));
    assert!(!offline_rows.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = sensor.get("/inventory?by=fingerprint&format=json");
        assert_eq!(code, 200, "{body}");
        let live_rows = fingerprints(&body);
        if live_rows == offline_rows {
            break;
        }
        if Instant::now() >= deadline {
            // Lost packets explain missing flows: say whether any were.
            let m = sensor.metrics();
            panic!(
                "/inventory?by=fingerprint (left) vs read --by fingerprint (right); kernel drops {}, queue drops {}\n{live_rows:#?}\n{offline_rows:#?}",
                m.family("tlscensus_capture_kernel_drops_total")
                    .values()
                    .sum::<f64>(),
                m.get("tlscensus_queue_drops_total"),
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let (code, _) = sensor.get("/inventory?by=nonsense");
    assert_eq!(code, 400);
    let status = sensor.stop("TERM");
    assert!(status.success(), "{}", sensor.log_text());
    let live = Metrics::parse(&std::fs::read_to_string(&live_metrics).unwrap());
    assert_eq!(
        live.get(&format!(
            "tlscensus_capture_kernel_drops_total{{interface=\"{i1}\"}}"
        )),
        0.0
    );
    assert_eq!(live.get("tlscensus_queue_drops_total"), 0.0);
    assert_eq!(live.get("tlscensus_packets_total"), live.get(&iface));
    for family in [
        "tlscensus_flows_total",
        "tlscensus_legacy_flows_total",
        "tlscensus_non_tls_flows_total",
        "tlscensus_midstream_flows_total",
    ] {
        assert_eq!(
            live.family(family),
            offline.family(family),
            "{family}: live (left) vs offline read (right)"
        );
    }
    assert!(offline.family("tlscensus_legacy_flows_total").len() >= min_legacy);
    // The mirror's verdicts: no loss where the files have none, the same
    // one-way flows (the interface label aside).
    let by_seen = |m: &Metrics| -> BTreeMap<String, f64> {
        m.family("tlscensus_mirror_flows_total")
            .into_iter()
            .map(|(k, v)| (k.split("seen=").nth(1).unwrap_or("").to_string(), v))
            .collect()
    };
    assert_eq!(
        by_seen(&live),
        by_seen(&offline),
        "mirror flows: live (left) vs read (right)"
    );
    let lost = |m: &Metrics| {
        m.family("tlscensus_capture_loss_bytes_total")
            .values()
            .sum::<f64>()
    };
    assert_eq!(lost(&live), lost(&offline), "{}", live.dump());
    live
}

/// The generator's handshake-heavy mix (real handshakes from the shipped
/// captures): `mb` megabytes, about 1,650 frames and 125 flows each.
pub fn handshake_mix(dir: &Path, mb: u32) -> PathBuf {
    let out = dir.join(format!("handshake-{mb}.pcap"));
    let bytes = (u64::from(mb) * 1_000_000).to_string();
    gen_capture(
        &out,
        &[
            "--bytes",
            &bytes,
            "--handshake-share",
            "0.40",
            "--seed",
            "6",
            "--concurrent",
            "128",
        ],
    );
    out
}
