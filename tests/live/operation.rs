//! Running a sensor: privileges, bad input, interfaces that go away,
//! signals, state across restarts, configuration files and reload.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;
use super::replays::*;
use crate::common::craft;
use crate::common::{Val, captures, census_settings, example_keys, flags_of, toml_of};

/// Started as root, the sensor runs as the --user with only CAP_NET_RAW; a
/// binary given CAP_NET_RAW with setcap captures as an unprivileged user.
#[test]
fn live_privileges() {
    if !prerequisites("live_privileges") {
        return;
    }
    let mut net = Net::new(1);
    let i1 = net.iface(1);
    let sensor = net.tlscensus(&["-i", &i1, "--user", "nobody"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", sensor.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap()
    };
    assert_eq!(field("Uid:"), "65534 65534 65534 65534");
    assert_eq!(field("CapEff:"), "0000000000002000", "only CAP_NET_RAW");
    assert_eq!(field("CapPrm:"), "0000000000002000");
    assert_eq!(field("Groups:"), field("Gid:").split(' ').next().unwrap());
    // Still captures after the drop.
    net.openssl_server(4431, "");
    net.openssl_client(1, 4431, "-tls1_3 -servername a.blob.core.windows.net");
    sensor.wait_for("a flow after dropping root", |m| {
        !m.family("tlscensus_flows_total").is_empty()
    });
    // The kernel skip, loaded as root, is given settled flows as nobody (a
    // connection that stays open until the test ends: one that closes at
    // once, its FIN read with its answer, is gone before it could be skipped).
    net.openssl_client_held(1, 4431, "-tls1_3 -servername b.blob.core.windows.net");
    sensor.wait_for("a settled flow marked in the kernel as nobody", |m| {
        m.get("tlscensus_capture_kernel_skip_flows_total") >= 1.0
            && m.get("tlscensus_capture_kernel_skip_active") == 1.0
    });
    drop(sensor);

    // An unknown user is an error, not a run as root.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.srv(),
            BIN,
            "live",
            "-i",
            &i1,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--user", "no-such-user-tlsc"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-user-tlsc"));

    // setcap: an unprivileged user with the file capability can capture.
    let bin = net.path("tlscensus-capped");
    std::fs::copy(BIN, &bin).unwrap();
    sh(&format!(
        "chmod 755 {} {} && setcap cap_net_raw+ep {}",
        net.dir.path().display(),
        bin.display(),
        bin.display()
    ));
    let run_as_nobody = |extra: &str| {
        // Started in the background and stopped with SIGTERM once it has
        // said whether the kernel skip is on and holds only CAP_NET_RAW
        // (or after ten seconds, for the assertions to show why not).
        let log = net.path("privileges.log");
        Command::new("sh")
            .args([
                "-c",
                &format!(
                    "ip netns exec {} setpriv --reuid=nobody --regid=nogroup --clear-groups {} live -i {i1} --listen 127.0.0.1:0 {extra} 2>{log} & pid=$!; \
                     for i in $(seq 200); do grep -q 'kernel skip o' {log} && grep -q 'CapEff:.0000000000002000' /proc/$pid/status && break; sleep 0.05; done; \
                     grep CapEff /proc/$pid/status >&2; kill -TERM $pid; wait $pid; st=$?; cat {log} >&2; exit $st",
                    net.srv(),
                    bin.display(),
                    log = log.display()
                ),
            ])
            .output()
            .unwrap()
    };
    let out = run_as_nobody("");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("capturing on"), "{err}");
    // Without CAP_BPF, no kernel skip, said once, and capture as before.
    assert!(
        err.contains(&format!("interface {i1}: kernel skip off:"))
            && !err.contains("kernel skip on"),
        "{err}"
    );
    // With CAP_BPF: the kernel skip is on, and CAP_BPF is given up once it is loaded.
    sh(&format!("setcap cap_net_raw,cap_bpf+ep {}", bin.display()));
    let out = run_as_nobody("");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("kernel skip on"), "{err}");
    assert!(
        err.contains("CapEff:\t0000000000002000"),
        "only CAP_NET_RAW left: {err}"
    );
    // Without the capability: one clear line, exit 2.
    sh(&format!("setcap -r {}", bin.display()));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.srv(),
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
        ])
        .arg("--clear-groups")
        .arg(&bin)
        .args(["live", "-i", &i1, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("CAP_NET_RAW") && err.contains(&i1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Bad input: a missing interface, a bad filter, a taken port: one line each,
/// exit status 2.
#[test]
fn live_bad_input() {
    if !prerequisites("live_bad_input") {
        return;
    }
    let mut net = Net::new(1);
    let (i1, srv) = (net.iface(1), net.srv());
    let run = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &srv, BIN, "live"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["-i", "nosuch0", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("nosuch0") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let (code, err) = run(&["-i", &i1, "--listen", "127.0.0.1:0", "--bpf", "tcp port"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("bad capture filter"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let sensor = net.tlscensus(&["-i", &i1, "--user", "root"]);
    let (code, err) = run(&["-i", &i1, "--listen", &sensor.addr]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("cannot listen") && err.contains(&sensor.addr),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let (code, err) = run(&["-i", &i1, "--listen", "not-an-address"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot listen"), "{err}");
    drop(sensor);

    for n in ["0", "65", "many"] {
        let (code, err) = run(&["-i", &i1, "--listen", "127.0.0.1:0", "--capture-threads", n]);
        assert_eq!(code, Some(2), "{n}: {err}");
        assert!(err.contains("--capture-threads"), "{n}: {err}");
        if n != "many" {
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    let out = Command::new(BIN).args(["live"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// An interface that goes down, or is deleted and re-created, is reported in
/// the log, /healthz and the metrics; capture resumes when it is back.
#[test]
fn live_interface_down_and_back() {
    if !prerequisites("live_interface_down_and_back") {
        return;
    }
    let mut net = Net::new(1);
    let (i1, srv, p) = (net.iface(1), net.srv(), net.p.clone());
    let sensor = net.tlscensus(&["-i", &i1, "--user", "nobody"]);
    let up = format!("tlscensus_interface_up{{interface=\"{i1}\"}}");
    let downs = format!("tlscensus_interface_down_total{{interface=\"{i1}\"}}");

    sh(&format!("ip -n {srv} link set {i1} down"));
    sensor.wait_for("down", |m| m.get(&up) == 0.0 && m.get(&downs) == 1.0);
    let (code, body) = sensor.get("/healthz");
    assert_eq!(code, 503);
    assert!(body.contains(&i1), "{body}");
    sh(&format!("ip -n {srv} link set {i1} up"));
    sensor.wait_for("up again", |m| m.get(&up) == 1.0);

    // Deleted and re-created (a new ifindex): a new handle, as the dropped user.
    sh(&format!("ip -n {srv} link del {i1}"));
    sensor.wait_for("gone", |m| m.get(&up) == 0.0 && m.get(&downs) == 2.0);
    sh(&format!(
        "ip link add {i1} netns {srv} type veth peer name {p}c1 netns {p}c1 && \
         ip -n {srv} addr add 10.77.1.1/24 dev {i1} && ip -n {p}c1 addr add 10.77.1.2/24 dev {p}c1 && \
         ip -n {srv} link set {i1} up && ip -n {p}c1 link set {p}c1 up"
    ));
    sensor.wait_for("re-created", |m| m.get(&up) == 1.0);
    assert_eq!(sensor.get("/healthz").0, 200);
    net.openssl_server(4431, "-min_protocol TLSv1.2");
    net.openssl_client(
        1,
        4431,
        &format!("-tls1 -cipher {LEGACY} -servername back.blob.core.windows.net"),
    );
    sensor.wait_for("a flow on the new interface", |m| {
        !m.family("tlscensus_legacy_flows_total").is_empty()
    });
    let log = sensor.log_text();
    assert!(
        log.contains("capture stopped") && log.contains("capture resumed"),
        "{log}"
    );
}

/// Issue 12 item 1: an event reader that stops reading (`--events -` into a
/// pipe nobody drains) must not stop the census: every flow is still
/// counted, the events that found no room are counted as dropped,
/// `/healthz` names the stuck event log, and SIGTERM ends the sensor within
/// a few seconds.
#[test]
fn regression_12_stalled_event_reader_costs_only_events() {
    if !prerequisites("regression_12_stalled_event_reader_costs_only_events") {
        return;
    }
    use craft::*;
    let mut net = Net::new(1);
    let flows = 6000u32;
    let mut frames = Vec::new();
    for i in 0..flows {
        let hello = client_hello(0x0301, &[sni_extension("a.blob.core.windows.net")]);
        let client = std::net::Ipv4Addr::from_bits(0x0a4d_0100 | (i % 200));
        let conn = Conn::new(
            client,
            10_000 + i as u16,
            std::net::Ipv4Addr::new(10, 77, 1, 1),
        );
        frames.extend(conn.frames(u64::from(i) * 1_000_000, &[(true, hello)], true));
    }
    let pcap = net.path("flows.pcap");
    write_pcap(&pcap, &frames);
    let i1 = net.iface(1);
    let mut sensor = net.tlscensus_to(
        &["-i", &i1, "--user", "root", "--events", "-"],
        Stdio::piped(),
    );
    replay(&net, &[pcap], &["--pps", "30000"]);
    let total = |m: &Metrics| -> f64 { m.family("tlscensus_flows_total").values().sum() };
    let m = sensor.wait_for("every flow counted", |m| total(m) >= f64::from(flows));
    assert_eq!(total(&m), f64::from(flows), "{}", m.dump());
    assert_eq!(m.get("tlscensus_queue_drops_total"), 0.0, "{}", m.dump());
    let dropped = m.get(r#"tlscensus_events_dropped_total{reason="queue_full"}"#);
    let written = m.get("tlscensus_events_written_total");
    assert!(dropped > 0.0, "{}", m.dump());
    // Written counts what reached the pipe (64 KiB of lines at most), not what was queued.
    assert!(written < 1000.0, "{written}");
    // The writer is blocked: after the stuck threshold, /healthz says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = sensor.get("/healthz");
        if code == 503 && body.contains("event log stuck") {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz: {code} {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let started = Instant::now();
    let _ = sensor.stop("TERM");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "SIGTERM took {:?}\n{}",
        started.elapsed(),
        sensor.log_text()
    );
    assert!(
        sensor.log_text().contains("event log"),
        "{}",
        sensor.log_text()
    );
}

/// `--state` (issue 16): the inventory and per-destination readiness
/// survive a restart (written at exit, reloaded at start, served at
/// /inventory before any new traffic); a damaged file is set aside, said,
/// and never fatal.
#[test]
fn live_state_survives_restart() {
    if !prerequisites("live_state_survives_restart") {
        return;
    }
    let mut net = Net::new(1);
    let state = net.path("state.json");
    let i1 = net.iface(1);
    let args = [
        "-i",
        &i1,
        "--user",
        "root",
        "--services",
        "storage,appservice",
        "--state",
        state.to_str().unwrap(),
    ];
    let mut sensor = net.tlscensus(&args);
    let services = captures().join("services.pcap");
    let frames = replay(&net, std::slice::from_ref(&services), &["--topspeed"]);
    sensor.wait_drained(frames);
    let before = wait_destinations(&sensor, 5);
    assert!(sensor.stop("TERM").success(), "{}", sensor.log_text());
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.starts_with("{\"version\":1,"), "{saved}");

    // Restarted: the same views before any packet.
    let mut again = net.tlscensus(&args);
    let after = wait_destinations(&again, 5);
    assert_eq!(after, before);
    let (code, hosts) = again.get("/inventory?format=csv");
    assert_eq!(code, 200);
    assert!(hosts.contains("192.0.2.15"), "{hosts}");
    assert!(
        again.log_text().contains("restored"),
        "{}",
        again.log_text()
    );
    assert!(again.stop("TERM").success());

    // Damaged: set aside, the sensor runs with an empty census.
    std::fs::write(&state, &saved[..saved.len() / 3]).unwrap();
    let mut third = net.tlscensus(&args);
    let (code, body) = third.get("/inventory?by=destination&format=json");
    assert_eq!(code, 200, "{body}");
    let log = third.log_text();
    assert!(log.contains("set aside as"), "{log}");
    assert!(third.stop("TERM").success());
    let aside = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.damaged-")
        });
    assert!(aside, "the damaged file is kept aside");
}

/// SIGHUP rereads the configuration file and the files it names: flows
/// settled after it are matched by the new rules while every counter goes
/// on; a broken configuration or services file is refused, said with its
/// place, counted, and the running rules are kept; an option a reload
/// cannot apply is named.
#[test]
fn live_config_reload() {
    if !prerequisites("live_config_reload") {
        return;
    }
    let mut net = Net::new(1);
    let i1 = net.iface(1);
    let services = net.path("services.toml");
    let config = net.path("sensor.toml");
    let row = |suffix: &str, end: &str| {
        format!(
            "[[service]]\nname = \"onprem-blob\"\nsuffixes = [\"{suffix}\"]\ntls_end = \"{end}\"\n"
        )
    };
    std::fs::write(&services, row("nowhere.example", "2026-06-30")).unwrap();
    let events = net.path("ssl.log");
    let moved = net.path("ssl.log.1");
    let sensor_toml = format!(
        "interface = [\"{i1}\"]\nservices-file = {:?}\nservices = \"onprem-blob\"\nuser = \"root\"\nall = true\nevents = {:?}\nevents-format = \"zeek\"\n",
        services.display().to_string(),
        events.display().to_string()
    );
    let rows = |p: &Path| -> usize {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count()
    };
    std::fs::write(&config, &sensor_toml).unwrap();
    let sensor = net.tlscensus(&["--config", config.to_str().unwrap()]);
    let demo = vec![captures().join("demo.pcapng")];
    let flows = |m: &Metrics, target: &str| -> f64 {
        m.family("tlscensus_flows_total")
            .iter()
            .filter(|(k, _)| k.contains(&format!("target=\"{target}\"")))
            .map(|(_, v)| v)
            .sum()
    };
    let service = |m: &Metrics, name: &str| -> f64 {
        m.family("tlscensus_service_flows_total")
            .iter()
            .filter(|(k, _)| k.contains(&format!("service=\"{name}\"")))
            .map(|(_, v)| v)
            .sum()
    };

    // No demo flow is a target: the one service chosen covers none.
    replay(&net, &demo, &["--topspeed"]);
    let m = sensor.wait_for("the first replay's flows", |m| flows(m, "false") >= 8.0);
    assert_eq!(flows(&m, "true"), 0.0, "{}", m.dump());
    let before = flows(&m, "false");

    // The service now covers Blob Storage: later flows are its targets.
    // logrotate moved the event file away first: SIGHUP opens it again.
    wait_until("the first replay's events", 20, || rows(&events) >= 8);
    std::fs::rename(&events, &moved).unwrap();
    std::fs::write(&services, row("blob.core.windows.net", "2026-06-30")).unwrap();
    sh(&format!("kill -HUP {}", sensor.pid()));
    let log = wait_log(&sensor, "tlscensus: reloaded ", 1);
    assert!(log.contains("services onprem-blob"), "{log}");
    wait_until("the event file opened again", 20, || events.exists());
    replay(&net, &demo, &["--topspeed"]);
    let m = sensor.wait_for("the second replay's flows", |m| flows(m, "true") >= 7.0);
    wait_until("the second replay's events", 20, || rows(&events) >= 8);
    let old = std::fs::read_to_string(&moved).unwrap();
    assert!(old.lines().last().unwrap().starts_with("#close\t"), "{old}");
    assert_eq!(rows(&moved), 8, "{old}");
    let new = std::fs::read_to_string(&events).unwrap();
    assert!(new.starts_with("#separator \\x09\n"), "{new}");
    assert_eq!(
        service(&m, "onprem-blob"),
        flows(&m, "true"),
        "{}",
        m.dump()
    );
    assert_eq!(
        flows(&m, "false"),
        before + 1.0,
        "counters go on: {}",
        m.dump()
    );
    assert_eq!(
        m.get("tlscensus_config_reloads_total{result=\"applied\"}"),
        1.0
    );
    let targets = flows(&m, "true");

    // A broken configuration file, then a broken services file: refused,
    // with their places; the rules in use stay.
    std::fs::write(&config, format!("{sensor_toml}services = [\n")).unwrap();
    sh(&format!("kill -HUP {}", sensor.pid()));
    let log = wait_log(&sensor, "reload refused", 1);
    assert!(
        log.contains(&format!(
            "reload refused: {}:{}: ",
            config.display(),
            sensor_toml.lines().count() + 1
        )),
        "{log}"
    );
    std::fs::write(&config, &sensor_toml).unwrap();
    std::fs::write(&services, row("blob.core.windows.net", "soon")).unwrap();
    sh(&format!("kill -HUP {}", sensor.pid()));
    let log = wait_log(&sensor, "reload refused", 2);
    assert!(
        log.contains("row 1 (\"onprem-blob\"): tls_end \"soon\""),
        "{log}"
    );
    replay(&net, &demo, &["--topspeed"]);
    let m = sensor.wait_for("the third replay's flows", |m| {
        flows(m, "true") >= targets + 7.0
    });
    assert_eq!(
        service(&m, "onprem-blob"),
        flows(&m, "true"),
        "{}",
        m.dump()
    );
    assert_eq!(
        m.get("tlscensus_config_reloads_total{result=\"refused\"}"),
        2.0
    );

    // An option only a restart applies is named, the rest applied.
    std::fs::write(&services, row("blob.core.windows.net", "2026-06-30")).unwrap();
    std::fs::write(&config, format!("{sensor_toml}max-flows = 1000\n")).unwrap();
    sh(&format!("kill -HUP {}", sensor.pid()));
    let log = wait_log(&sensor, "tlscensus: reloaded ", 2);
    assert!(
        log.contains("not applied until a restart: --max-flows"),
        "{log}"
    );
}

/// A configuration file that sets every `live` option gives the events and
/// the metrics that the same options as flags give, on the same replay.
#[test]
fn live_config_file_sets_every_option() {
    if !prerequisites("live_config_file_sets_every_option") {
        return;
    }
    let _one_at_a_time = replaying();
    let mut net = Net::new(1);
    let i1 = net.iface(1);
    let inputs = net.path("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let web = inputs.join("web.yml");
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Sensor: census\n",
    )
    .unwrap();
    let settings = |out: &Path| -> Vec<(&'static str, Val)> {
        let one = |v: &str| Val::One(v.to_string());
        let o = |name: &str| Val::One(out.join(name).display().to_string());
        let mut v = vec![
            ("interface", Val::List(vec![i1.clone()])),
            ("bpf", one("tcp or (udp and port 53)")),
            ("no-promisc", Val::Switch),
            ("snaplen", one("65535")),
            ("buffer-mib", one("16")),
            ("capture-threads", one("2")),
            ("kernel-skip-flows", one("1024")),
            ("listen", one("127.0.0.1:0")),
            ("metrics-file", o("metrics.prom")),
            ("state", o("state.json")),
            ("max-inventory-mib", one("16")),
            ("legacy-source-ttl", one("3600")),
            ("web.config.file", Val::One(web.display().to_string())),
            ("user", one("root")),
        ];
        v.extend(census_settings(&inputs, out));
        v
    };
    let mut listed = example_keys("live");
    let mut keys: Vec<String> = settings(&inputs)
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    listed.sort();
    keys.sort();
    assert_eq!(keys, listed, "every live option has a value in this test");

    let files: Vec<PathBuf> = ["demo.pcapng", "openssl-tls10.pcap", "gnutls-tls11.pcap"]
        .iter()
        .map(|f| captures().join(f))
        .collect();
    let mut results = Vec::new();
    for mode in ["file", "flags"] {
        let out = net.path(mode);
        std::fs::create_dir(&out).unwrap();
        let mut argv: Vec<String> = vec!["live".into()];
        if mode == "file" {
            let config = out.join("sensor.toml");
            std::fs::write(&config, toml_of(&settings(&out))).unwrap();
            argv.push(format!("--config={}", config.display()));
        } else {
            argv.extend(flags_of(&settings(&out)));
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut sensor = net.tlscensus_argv(&argv, Stdio::null());
        let frames = replay(&net, &files, &["--topspeed"]);
        sensor.wait_drained(frames);
        sensor.wait_for("the flows to settle", |m| {
            m.family("tlscensus_flows_total").values().sum::<f64>() >= 9.0
        });
        let status = sensor.stop("TERM");
        assert!(status.success(), "{mode}: {}", sensor.log_text());
        let log = sensor.log_text();
        assert!(log.contains("2 capture threads"), "{mode}: {log}");
        let metrics = Metrics::parse(&std::fs::read_to_string(out.join("metrics.prom")).unwrap());
        let families: Vec<_> = [
            "tlscensus_flows_total",
            "tlscensus_legacy_flows_total",
            "tlscensus_service_flows_total",
            "tlscensus_target_flows_total",
            "tlscensus_non_tls_flows_total",
            "tlscensus_relayed_flows_total",
        ]
        .iter()
        .map(|f| metrics.family(f))
        .collect();
        // Capture times differ between the runs; the rest must not.
        let mut events: Vec<String> = std::fs::read_to_string(out.join("events.ndjson"))
            .unwrap()
            .lines()
            .map(|l| {
                // (ECS: the capture time, and the uid made from it)
                let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
                e.as_object_mut().unwrap().remove("@timestamp");
                e["event"].as_object_mut().unwrap().remove("id");
                e.to_string()
            })
            .collect();
        events.sort();
        assert!(events.len() >= 9, "{mode}: {events:#?}");
        assert!(out.join("state.json").exists(), "{mode}: no state written");
        results.push((families, events));
    }
    assert_eq!(
        results[0], results[1],
        "configuration file (left) vs flags (right)"
    );
}
