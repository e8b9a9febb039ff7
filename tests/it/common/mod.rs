//! Helpers for end-to-end tests: run the real binary on the shipped captures.
#![allow(dead_code)]

pub mod craft;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

pub fn capture(name: &str) -> PathBuf {
    captures().join(name)
}

pub fn tlscensus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tlscensus"))
        .args(args)
        .output()
        .expect("run tlscensus")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every shipped capture (`captures/*.pcap`, `*.pcapng`), in name order.
pub fn shipped_captures() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(captures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 70, "{}", files.len());
    files
}

/// The event lines `read --all --events - --events-format LAYOUT` (plus
/// `extra`) writes for `file`, as written (a damaged capture, status 2, is
/// read up to the damage).
pub fn event_lines(file: &Path, layout: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "read",
        "--all",
        "--no-progress",
        "--events",
        "-",
        "--events-format",
        layout,
    ];
    args.extend_from_slice(extra);
    let f = file.to_string_lossy().into_owned();
    args.push(&f);
    let out = tlscensus(&args);
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}: {}",
        file.display(),
        text(&out.stderr)
    );
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Runs `read --events -` (plus `extra`) on files; returns the events, sorted.
pub fn events(files: &[&Path], extra: &[&str]) -> Vec<Value> {
    let mut args: Vec<String> = vec!["read".into(), "--events".into(), "-".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(files.iter().map(|p| p.display().to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tlscensus(&argv);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "status {:?}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    let mut evs: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line is JSON"))
        .collect();
    evs.sort_by_key(|e| {
        (
            e["ts"].as_str().unwrap_or("").to_string(),
            e["src_port"].as_u64(),
        )
    });
    evs
}

/// Events of one capture file with `--all`.
pub fn events_all(name: &str) -> Vec<Value> {
    events(&[&capture(name)], &["--all"])
}

/// `tlscensus read EXTRA FILES...` with a metrics file; its text.
pub fn metrics_after_read(files: &[&str], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("m.prom");
    let mut argv = vec!["read", "--metrics-file", prom.to_str().unwrap()];
    argv.extend(extra);
    let paths: Vec<String> = files
        .iter()
        .map(|f| capture(f).display().to_string())
        .collect();
    argv.extend(paths.iter().map(String::as_str));
    let out = tlscensus(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::read_to_string(&prom).unwrap()
}

/// `line` is a line of the metrics text `m`.
pub fn has(m: &str, line: &str) {
    assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
}

/// The value of one series line (exact labels) in the metrics text `m`.
pub fn value(m: &str, series: &str) -> Option<f64> {
    m.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Captures replayed apart from the others in the live tests: TLS after a
/// preamble (captures/make-preamble-captures.sh) and the client stacks
/// (fingerprints/make-catalogue.sh), made on other days than the others and
/// with ports in the range the others' servers use.
pub fn made_apart(file: &Path) -> bool {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    [
        "squid-",
        "tinyproxy-",
        "dante-",
        "postgres-",
        "mariadb-",
        "starttls-",
        "proxy-protocol-",
        "tds-",
        "ssh-",
        "client-stacks",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

/// Whether a test's prerequisites are here: root (when `root`) and each of
/// `tools` on the PATH. When one is missing the test says so on the
/// terminal ("SKIPPED: <test>: needs ...", past the test harness' output
/// capture) and should return; under CI (`CI` set) it fails instead, so CI
/// never passes by skipping.
pub fn require(test: &str, root: bool, tools: &[&str]) -> bool {
    let mut missing: Vec<&str> = Vec::new();
    if root && !is_root() {
        missing.push("root");
    }
    missing.extend(tools.iter().copied().filter(|t| !have_tool(t)));
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{test}: needs {}", missing.join(", "));
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg} (CI must provide them)"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
    false
}

/// [`require`] root.
pub fn require_root(test: &str) -> bool {
    require(test, true, &[])
}

/// [`require`] tools.
pub fn require_tools(test: &str, tools: &[&str]) -> bool {
    require(test, false, tools)
}

/// Whether `tool` is on the PATH.
pub fn have_tool(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// True when the tests run as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}

/// A setting's value, as a configuration file and as flags spell it.
pub enum Val {
    Switch,
    One(String),
    List(Vec<String>),
}

/// Every census setting (the options `read` and `live` share), each with a
/// value that is not its default. Input files are written into `inputs`;
/// the event log goes into `out`.
pub fn census_settings(inputs: &Path, out: &Path) -> Vec<(&'static str, Val)> {
    let write = |name: &str, text: &str| {
        let p = inputs.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let fingerprints = write(
        "labels.csv",
        "ja4,label\nt10d090600_c491f621fb4c_195413a0cc0f,Test legacy client\n",
    );
    let services = write(
        "services.toml",
        "[[service]]\nname = \"onprem-files\"\nsuffixes = [\"files.corp.example\"]\ntls_end = \"2026-06-30\"\nsource = \"change CHG-1\"\n",
    );
    let tags = write(
        "tags.json",
        r#"{"changeNumber": 1, "cloud": "Public", "values": [
  {"name": "Storage", "id": "Storage", "properties": {"changeNumber": 1, "region": "", "platform": "Azure", "systemService": "AzureStorage", "addressPrefixes": ["192.0.2.0/30"]}},
  {"name": "Storage.WestEurope", "id": "Storage.WestEurope", "properties": {"changeNumber": 1, "region": "westeurope", "platform": "Azure", "systemService": "AzureStorage", "addressPrefixes": ["192.0.2.0/30"]}}
]}"#,
    );
    let one = |v: &str| Val::One(v.to_string());
    let list = |v: &[&str]| Val::List(v.iter().map(|s| s.to_string()).collect());
    let o = |name: &str| out.join(name).display().to_string();
    vec![
        ("events", Val::One(o("events.ndjson"))),
        ("events-format", one("ecs")),
        ("events-rotate-size", one("100000000")),
        ("events-rotate-interval", one("86400")),
        ("events-keep", one("3")),
        ("syslog-format", one("rfc5424")),
        ("syslog-facility", one("daemon")),
        ("all", Val::Switch),
        ("policy", list(&["mozilla-intermediate", "tls13-only"])),
        ("fingerprints", Val::List(vec![fingerprints])),
        ("raw-fingerprints", Val::Switch),
        ("services", one("storage,onprem-files")),
        ("services-file", Val::One(services)),
        ("target", list(&["*.example.com", "exact.example.net"])),
        ("target-cidr", list(&["198.51.100.0/24"])),
        ("proxy", list(&["203.0.113.9/32"])),
        ("azure-service-tags", Val::One(tags)),
        ("service-tag", list(&["Storage.WestEurope"])),
        ("max-dns-entries", one("1000")),
        ("dns-grace", one("30")),
        ("max-dns-ttl", one("3600")),
        ("name-sources", one("dhcp,kerberos,dns_ptr")),
        ("resolve", Val::Switch),
        // The discard port on loopback: nothing answers, nothing leaves.
        ("resolve-server", one("127.0.0.1:9")),
        ("resolve-rate", one("5")),
        ("name-max-age", one("3600")),
        ("max-host-names", one("500")),
        ("min-version", one("TLSv1.3")),
        // One worker: with more, flows of one fingerprint may reach the
        // inventory in another order from run to run (its host list).
        ("workers", one("1")),
        ("max-flows", one("5000")),
        ("max-handshakes", one("2000")),
        ("max-stream-bytes", one("8192")),
        ("max-buffer-bytes", one("1048576")),
        ("flow-timeout", one("60")),
        ("max-hosts", one("5000")),
        ("max-server-name-bytes", one("1048576")),
        ("max-legacy-sources", one("100")),
        ("max-fragments", one("100")),
        ("max-fragment-bytes", one("1048576")),
        ("vxlan-port", list(&["4789", "8472"])),
        ("geneve-port", list(&["6081"])),
    ]
}

pub fn toml_of(settings: &[(&str, Val)]) -> String {
    let q = |s: &str| format!("{s:?}");
    settings
        .iter()
        .map(|(k, v)| match v {
            Val::Switch => format!("{k} = true\n"),
            Val::One(s) => format!("{k} = {}\n", q(s)),
            Val::List(l) => format!(
                "{k} = [{}]\n",
                l.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
            ),
        })
        .collect()
}

pub fn flags_of(settings: &[(&str, Val)]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in settings {
        match v {
            Val::Switch => out.push(format!("--{k}")),
            Val::One(s) => out.push(format!("--{k}={s}")),
            Val::List(l) => out.extend(l.iter().map(|s| format!("--{k}={s}"))),
        }
    }
    out
}

/// Every metric name tlscensus exports, offline and live, from its own registry.
pub fn exported_metrics() -> std::collections::BTreeSet<String> {
    // With a server policy: its flow counters and failing-hosts gauge.
    let policies = tlscensus::policy::PolicySet::from_args(&["mozilla-modern".into()]).unwrap();
    let m = tlscensus::metrics::Metrics::new(10, None)
        .unwrap()
        .with_policies(&policies)
        .unwrap();
    let _live = tlscensus::metrics::LiveMetrics::new(&m, &["eth0".to_string()], 1).unwrap();
    // The event counters (each run makes them, events written or not).
    let _events = tlscensus::events::EventCounters::from_metrics(&m);
    // `--resolve`'s counters (their series exist once a resolver starts).
    let _resolve = m.resolve_counts();
    // A legacy source with a passive host name: tlscensus_host_info.
    use tlscensus::hosts::names::{HostNames, Lifetime, NameSource};
    let names = std::sync::Arc::new(HostNames::new(&Default::default()));
    let ip = "10.0.0.1".parse().unwrap();
    names.bind(
        ip,
        "ws1.corp.example",
        NameSource::Dhcp,
        0,
        Lifetime::Age,
        1,
    );
    m.register_host_info(names).unwrap();
    // A service's flows and end day, a destination with a legacy flow.
    let _services = tlscensus::metrics::ServiceFlows::new(&m, &[0]).unwrap();
    let destinations = std::sync::Arc::new(tlscensus::inventory::Destinations::default());
    destinations.record(0, "acct", ip, true, true, 1, 0);
    m.register_destinations(destinations).unwrap();
    // Mirror health, with a client block seen one way only.
    use tlscensus::flow::mirror::{Block, MirrorTally};
    use tlscensus::mirror::{MirrorCollector, MirrorHealth};
    let bound = m.by.bounds[tlscensus::metrics::Bound::MirrorBlocks].clone();
    let mirror =
        std::sync::Arc::new(MirrorHealth::new(&m.registry, &["eth0".into()], bound, true).unwrap());
    m.registry
        .register(Box::new(MirrorCollector::new(mirror.clone()).unwrap()))
        .unwrap();
    let tally = MirrorTally {
        window_bytes: 100,
        lost_bytes: 1,
        handshake_gaps: 1,
        sides: tlscensus::label::ByLabel::new(|_| 1),
    };
    mirror.add(&[tally], &[(0, Block([10; 16]), false); 10], 1);
    m.legacy_flow(
        "10.0.0.1".parse().unwrap(),
        Some(tlscensus::tls::version::Version::TLS10),
        tlscensus::tls::summary::Outcome::Rejected,
        1,
    );
    m.render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// The settings `config example` lists (`#key = value` lines).
pub fn example_keys(for_: &str) -> Vec<String> {
    let out = tlscensus(&["config", "example", "--for", for_]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| !l.starts_with(' ') && l.contains(" = "))
        .map(|l| {
            l.split(" = ")
                .next()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

/// A benchmark mix written by `examples/gen_capture` into `out` (built here
/// when `cargo test` has not built it; real handshakes from the shipped
/// captures, then bulk data). `args`: its options (size, handshake share,
/// seed, concurrency).
pub fn gen_capture(out: &Path, args: &[&str]) {
    let bin = Path::new(env!("CARGO_BIN_EXE_tlscensus"));
    let gen_bin = bin.parent().unwrap().join("examples").join("gen_capture");
    if !gen_bin.exists() {
        let release = bin.parent().unwrap().ends_with("release");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.args(["build", "--quiet", "--example", "gen_capture"]);
        if release {
            cargo.arg("--release");
        }
        let st = cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(st.success() && gen_bin.exists(), "building gen_capture");
    }
    let st = Command::new(&gen_bin)
        .arg(out)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "gen_capture {args:?}");
}

/// The TCP ports of an Ethernet (VLAN tags allowed) IPv4/IPv6 frame.
pub fn tcp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    while ethertype == 0x8100 || ethertype == 0x88a8 {
        at += 4;
        ethertype = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    }
    let ip = at + 2;
    let tcp = match ethertype {
        0x0800 if *frame.get(ip + 9)? == 6 => ip + usize::from(frame.get(ip)? & 0x0f) * 4,
        0x86dd if *frame.get(ip + 6)? == 6 => ip + 40,
        _ => return None,
    };
    let p = |i: usize| Some(u16::from_be_bytes(frame.get(i..i + 2)?.try_into().ok()?));
    Some((p(tcp)?, p(tcp + 2)?))
}

/// A mirror's faults applied to a capture: each TCP frame dropped with
/// probability `loss` (a fixed-seed generator: the same frames each run),
/// and with `one_way`, every frame from the server side (the lower port)
/// too. Other frames pass.
pub fn mirror_faults(src: &Path, dst: &Path, loss: f64, one_way: bool, seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut random = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let frames: Vec<craft::Frame> = craft::read_pcap(src)
        .into_iter()
        .filter(|f| match tcp_ports(&f.data) {
            None => true,
            Some((sport, dport)) => !(one_way && sport < dport) && random() >= loss,
        })
        .collect();
    craft::write_pcap(dst, &frames);
}
