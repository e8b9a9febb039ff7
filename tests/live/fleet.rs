//! Services and fleets against a real Prometheus: the service alerts, and
//! many sensors scraped by one central server.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;
use super::replays::*;
use crate::common::captures;

/// The service alerts fire on a real Prometheus scraping a live sensor:
/// services.pcap replayed now makes legacy flows to services whose day has
/// passed (Storage, SQL, Key Vault...: `TLSCensusServiceAlreadyBroken`) and
/// to App Service, whose day a services file moves to 10 days from now
/// (`TLSCensusServiceBreaksSoon`); a destination restored from the state
/// file whose last legacy flow is 40 days old is `TLSCensusSafeToEnforce`,
/// while the replayed legacy destinations are not.
#[test]
fn live_service_alerts_against_prometheus() {
    if !prerequisites("live_service_alerts_against_prometheus") {
        return;
    }
    let mut net = Net::new(1);
    let i1 = net.iface(1);
    let soon = Command::new("date")
        .args(["-u", "-d", "+10 days", "+%F"])
        .output()
        .unwrap();
    let soon = String::from_utf8(soon.stdout).unwrap().trim().to_string();
    let services = net.path("services.toml");
    std::fs::write(
        &services,
        format!(
            "[[service]]\nname = \"appservice\"\nsuffixes = [\"azurewebsites.net\"]\ntls_end = {soon}\nsource = \"test: 10 days from now\"\n"
        ),
    )
    .unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let day = 86_400_000_000_000u64;
    let state = net.path("state.json");
    std::fs::write(
        &state,
        serde_json::json!({
            "version": 1,
            "written_unix": now_ns / 1_000_000_000,
            "hosts": [],
            "destinations": [{
                "service": "storage-blob",
                "destination": "oldacct",
                "legacy": 3,
                "modern": 0,
                "answered": 3,
                "legacy_sources": ["192.0.2.99"],
                "sources_dropped": 0,
                "first_legacy_ns": now_ns - 50 * day,
                "last_legacy_ns": now_ns - 40 * day,
                "last_ns": now_ns - 40 * day
            }]
        })
        .to_string(),
    )
    .unwrap();
    let sensor = net.tlscensus(&[
        "-i",
        &i1,
        "--user",
        "root",
        "--services",
        "microsoft",
        "--services-file",
        services.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    let rules_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/tlscensus.rules.yml"),
    )
    .unwrap()
    .replace("interval: 1m", "interval: 1s");
    let rules = net.path("tlscensus.rules.yml");
    std::fs::write(&rules, &rules_text).unwrap();
    let port = 19094;
    start_prometheus(&mut net, &sensor, port, Some(&rules));
    // Let Prometheus see the counters at zero first, so increase() counts the replay.
    sensor.wait_for("the restored destination", |m| {
        !m.family("tlscensus_destination_legacy_last_seen_timestamp_seconds")
            .is_empty()
    });
    wait_scrapes(&net, port, 3);
    let pcap = captures().join("services.pcap");
    let frames = replay(&net, std::slice::from_ref(&pcap), &["--pps", "100"]);
    sensor.wait_drained(frames);

    let firing = |alerts: &serde_json::Value, name: &str, label: &str, value: &str| {
        alerts["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["labels"]["alertname"] == name
                    && x["labels"][label] == value
                    && x["state"] == "firing"
            })
        })
    };
    let wanted = [
        ("TLSCensusServiceAlreadyBroken", "service", "storage-blob"),
        ("TLSCensusServiceAlreadyBroken", "service", "sql"),
        ("TLSCensusServiceAlreadyBroken", "service", "keyvault"),
        ("TLSCensusServiceBreaksSoon", "service", "appservice"),
        ("TLSCensusSafeToEnforce", "destination", "oldacct"),
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    let alerts = loop {
        let alerts = prom_api(&net, port, "/api/v1/alerts", None);
        if wanted.iter().all(|(n, l, v)| firing(&alerts, n, l, v)) {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "alerts never fired: {alerts}\n{}",
            std::fs::read_to_string(net.path("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let any = |name: &str, label: &str, value: &str| {
        alerts["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == name && x["labels"][label] == value)
        })
    };
    // Each service in the one alert its day says; recent destinations are not safe.
    assert!(
        !any("TLSCensusServiceBreaksSoon", "service", "storage-blob"),
        "{alerts}"
    );
    assert!(
        !any("TLSCensusServiceAlreadyBroken", "service", "appservice"),
        "{alerts}"
    );
    for busy in ["legacyacct", "srv1", "app1"] {
        assert!(
            !any("TLSCensusSafeToEnforce", "destination", busy),
            "{alerts}"
        );
    }
    // Modern-only services raise nothing.
    for quiet in ["cosmosdb", "servicebus", "entra"] {
        assert!(
            !any("TLSCensusServiceAlreadyBroken", "service", quiet),
            "{alerts}"
        );
    }
    drop(sensor);
}

/// Many sensors, one view: three sensors, each in its own namespace with its
/// own capture link, `site` and `sensor` labels, and a Prometheus agent
/// (deploy/prometheus/agent.yml) that scrapes it and remote-writes to a
/// central Prometheus (deploy/prometheus/central.yml, the remote-write
/// receiver on) in a fourth namespace, reached over a veth pair per site.
/// The central server evaluates the shipped rules: each legacy alert names
/// the host and the sensor that saw it (and no other sensor), and a sensor
/// that dies raises TLSCensusSensorDown there, naming it.
#[test]
fn live_many_sensors_one_central_prometheus() {
    if !prerequisites("live_many_sensors_one_central_prometheus") {
        return;
    }
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let agent_yml = std::fs::read_to_string(deploy.join("agent.yml")).unwrap();
    let central_yml = std::fs::read_to_string(deploy.join("central.yml")).unwrap();
    // The shipped rules, evaluated every second, "sensor down" and "sensor
    // silent" after 3 s (and a series stale after 5 s, not 5 minutes).
    let rules_text = std::fs::read_to_string(deploy.join("tlscensus.rules.yml"))
        .unwrap()
        .replace("interval: 1m", "interval: 1s");
    let down_rule = "expr: up{job=\"tlscensus\"} == 0\n        for: 5m";
    assert!(rules_text.contains(down_rule));
    let silent_rule = "unless up{job=\"tlscensus\"}\n        for: 5m";
    assert!(rules_text.contains(silent_rule));
    let rules_text = rules_text
        .replace(
            down_rule,
            "expr: up{job=\"tlscensus\"} == 0\n        for: 3s",
        )
        .replace(silent_rule, "unless up{job=\"tlscensus\"}\n        for: 3s");

    let central = Namespace(format!("tccen{}", std::process::id() % 100_000));
    sh(&format!(
        "ip netns add {0} && ip -n {0} link set lo up",
        central.0
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tlscensus.rules.yml"), &rules_text).unwrap();
    std::fs::write(
        dir.path().join("central.yml"),
        central_yml.replace("evaluation_interval: 30s", "evaluation_interval: 1s"),
    )
    .unwrap();
    let port = 19391;
    let prom_log = dir.path().join("central.log");
    let mut central_prom = Command::new("ip")
        .args(["netns", "exec", &central.0, "prometheus"])
        .arg(format!(
            "--config.file={}",
            dir.path().join("central.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=0.0.0.0:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .arg("--query.lookback-delta=5s")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&prom_log).unwrap())
        .spawn()
        .unwrap();

    // (site, sensor, capture, legacy host, version, rejected)
    let sites = [
        (
            "dc1",
            "core-span",
            "gnutls-tls11.pcap",
            "192.0.2.14",
            "TLSv1.1",
        ),
        (
            "dc1",
            "dmz-tap",
            "openssl-tls10-rejected.pcap",
            "192.0.2.11",
            "TLSv1.0",
        ),
        (
            "branch7",
            "wan-mirror",
            "openssl-ipv6-tls11.pcap",
            "2001:db8::12",
            "TLSv1.1",
        ),
    ];
    let mut nets = Vec::new();
    let mut sensors = Vec::new();
    for (k, (site, name, file, _, _)) in sites.iter().enumerate() {
        let k = k + 1;
        let mut net = Net::new(1);
        // The site's link to the centre: 10.88.k.2 here, 10.88.k.1 there.
        sh(&format!(
            "ip link add {p}up{k} netns {srv} type veth peer name {p}cn{k} netns {c} && \
             ip -n {srv} addr add 10.88.{k}.2/24 dev {p}up{k} && ip -n {srv} link set {p}up{k} up && \
             ip -n {c} addr add 10.88.{k}.1/24 dev {p}cn{k} && ip -n {c} link set {p}cn{k} up",
            p = net.p,
            srv = net.srv(),
            c = central.0
        ));
        let i1 = net.iface(1);
        let sensor = net.tlscensus(&["-i", &i1, "--user", "nobody", "--all"]);
        let agent = net.path("agent.yml");
        let config = agent_yml
            .replace("'127.0.0.1:9814'", &format!("'{}'", sensor.addr))
            .replace("site: dc1", &format!("site: {site}"))
            .replace("sensor: core-span", &format!("sensor: {name}"))
            .replace(
                "http://prometheus-central.example.net:9090",
                &format!("http://10.88.{k}.1:{port}"),
            )
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("scrape_timeout: 10s", "scrape_timeout: 1s");
        assert!(config.contains(&sensor.addr) && config.contains(&format!("10.88.{k}.1")));
        std::fs::write(&agent, config).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &net.srv(), "prometheus"])
            .arg("--enable-feature=agent")
            .arg(format!("--config.file={}", agent.display()))
            .arg(format!(
                "--storage.agent.path={}",
                net.path("agent-wal").display()
            ))
            .arg("--web.listen-address=127.0.0.1:19392")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(net.path("agent.log")).unwrap())
            .spawn()
            .unwrap();
        net.children.push(child);
        replay(&net, &[captures().join(file)], &["--pps", "200"]);
        nets.push(net);
        sensors.push(sensor);
    }

    let alerts = || prom_api_in(&central.0, port, "/api/v1/alerts", None);
    let find = |all: &serde_json::Value, alert: &str, sensor: &str, source: &str| {
        all["data"]["alerts"].as_array().and_then(|list| {
            list.iter()
                .find(|a| {
                    a["labels"]["alertname"] == alert
                        && a["labels"]["sensor"] == sensor
                        && (source.is_empty() || a["labels"]["source"] == source)
                })
                .cloned()
        })
    };
    let agent_logs: Vec<PathBuf> = nets.iter().map(|n| n.path("agent.log")).collect();
    let wait = |what: &str, cond: &dyn Fn(&serde_json::Value) -> bool| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let all = alerts();
            if cond(&all) {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "central Prometheus: no {what}: {all}\n{}\nagents:\n{}",
                std::fs::read_to_string(&prom_log).unwrap_or_default(),
                agent_logs
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // Each sensor's legacy host is named, with its site and sensor, and by
    // no other sensor.
    let all = wait("legacy alert for every sensor", &|all| {
        sites.iter().all(|(_, name, _, host, _)| {
            find(all, "TLSCensusLegacyTLSClient", name, host).is_some()
        })
    });
    for (site, name, _, host, version) in &sites {
        let a = find(&all, "TLSCensusLegacyTLSClient", name, host).unwrap();
        assert_eq!(a["labels"]["site"], *site, "{a}");
        assert_eq!(a["labels"]["version"], *version, "{a}");
        assert!(
            a["annotations"]["summary"]
                .as_str()
                .unwrap_or("")
                .contains(host),
            "{a}"
        );
        for (_, other, _, _, _) in &sites {
            if other != name {
                assert!(
                    find(&all, "TLSCensusLegacyTLSClient", other, host).is_none(),
                    "{host} seen by {other} too: {all}"
                );
            }
        }
    }
    assert!(find(&all, "TLSCensusClientRejected", "dmz-tap", "192.0.2.11").is_some());
    // The recording rules run over all sensors: one legacy host each. (Polled:
    // with the lookback shortened to 5 s, an evaluation between two late
    // remote writes of one agent may miss its sensor for a moment.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = prom_api_in(
            &central.0,
            port,
            "/api/v1/query",
            Some("count by (site, sensor) (tlscensus:legacy_source:present)"),
        );
        let rows = v["data"]["result"].as_array().cloned().unwrap_or_default();
        if rows.len() == 3 {
            assert!(rows.iter().all(|r| r["value"][1] == "1"), "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not one legacy host per sensor: {v}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(find(&all, "TLSCensusSensorDown", "dmz-tap", "").is_none());

    // A sensor dies: its agent's scrapes fail, and the centre says which.
    let mut dead = sensors.remove(1);
    dead.stop("KILL");
    let all = wait("TLSCensusSensorDown for dmz-tap", &|all| {
        find(all, "TLSCensusSensorDown", "dmz-tap", "").is_some_and(|a| a["state"] == "firing")
    });
    let a = find(&all, "TLSCensusSensorDown", "dmz-tap", "").unwrap();
    assert_eq!(a["labels"]["site"], "dc1", "{a}");
    for alive in ["core-span", "wan-mirror"] {
        assert!(
            find(&all, "TLSCensusSensorDown", alive, "").is_none(),
            "{all}"
        );
    }
    // Its agent still reports it (up = 0): it is down, not silent.
    assert!(
        find(&all, "TLSCensusSensorSilent", "dmz-tap", "").is_none(),
        "{all}"
    );
    // A whole site goes dark (sensor and agent): nothing more arrives, and
    // the centre says which.
    for c in &mut nets[2].children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let all = wait("TLSCensusSensorSilent for wan-mirror", &|all| {
        find(all, "TLSCensusSensorSilent", "wan-mirror", "").is_some_and(|a| a["state"] == "firing")
    });
    assert!(
        find(&all, "TLSCensusSensorSilent", "core-span", "").is_none(),
        "{all}"
    );
    let _ = central_prom.kill();
    let _ = central_prom.wait();
    drop(sensors);
    drop(nets);
}
