//! A real Prometheus server scraping sensors: the legacy series, the
//! dashboard and alert rules, TLS and authentication, slow clients.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::*;
use super::replays::*;

/// A real Prometheus server scrapes the sensor; the legacy series are there
/// through Prometheus' HTTP API, with the source host label.
#[test]
fn live_prometheus_scrapes_legacy_series() {
    if !prerequisites("live_prometheus_scrapes_legacy_series") {
        return;
    }
    let mut net = Net::new(1);
    let i1 = net.iface(1);
    let sensor = net.tlscensus(&["-i", &i1, "--user", "nobody"]);
    net.openssl_server(4431, "-min_protocol TLSv1.2");
    net.openssl_client(
        1,
        4431,
        &format!("-tls1 -cipher {LEGACY} -servername acct.blob.core.windows.net"),
    );
    sensor.wait_for("the legacy flow", |m| {
        !m.family("tlscensus_legacy_flows_total").is_empty()
    });

    start_prometheus(&mut net, &sensor, 19090, None);
    let query = |q: &str| prom_api(&net, 19090, "/api/v1/query", Some(q));
    let deadline = Instant::now() + Duration::from_secs(60);
    let result = loop {
        let v = query("tlscensus_legacy_flows_total");
        if let Some(r) = v["data"]["result"].as_array()
            && !r.is_empty()
        {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had the series: {v}\n{}",
            std::fs::read_to_string(net.path("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(result.len(), 1, "{result:?}");
    let metric = &result[0]["metric"];
    assert_eq!(metric["source"], "10.77.1.2");
    assert_eq!(metric["version"], "TLSv1.0");
    assert_eq!(metric["outcome"], "rejected");
    assert_eq!(metric["sensor"], "test-mirror");
    assert_eq!(result[0]["value"][1], "1");
    let up = query("up{job=\"tlscensus\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    drop(sensor);
}

/// The shipped dashboard and rules against a real Prometheus scraping a live
/// sensor that sees the shipped captures: every panel query and every rule
/// expression runs, every panel query returns data, and the legacy alerts
/// fire naming the right hosts.
#[test]
fn live_dashboard_and_rules_against_prometheus() {
    if !prerequisites("live_dashboard_and_rules_against_prometheus") {
        return;
    }
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut net = Net::new(1);
    let i1 = net.iface(1);
    // With server policies, so the dashboard's policy panels have data.
    let sensor = net.tlscensus(&[
        "-i",
        &i1,
        "--user",
        "nobody",
        "--policy",
        "tls13-only",
        "--policy",
        "mozilla-intermediate",
    ]);
    // The shipped rules, with the recording group evaluated every second.
    let rules_text = std::fs::read_to_string(deploy.join("prometheus/tlscensus.rules.yml"))
        .unwrap()
        .replace("interval: 1m", "interval: 1s");
    let rules = net.path("tlscensus.rules.yml");
    std::fs::write(&rules, &rules_text).unwrap();
    let port = 19091;
    start_prometheus(&mut net, &sensor, port, Some(&rules));
    // Spread the replay over several seconds so rates have samples.
    let files = replay_files();
    replay(&net, &files, &["--pps", "150"]);
    sensor.wait_for("the replayed legacy flows", |m| {
        m.family("tlscensus_legacy_flows_total").len() >= 5
    });

    // Wait until Prometheus has scraped them and evaluated the rules.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = prom_api(
            &net,
            port,
            "/api/v1/query",
            Some("count(tlscensus_legacy_flows_total)"),
        );
        let n: f64 = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        let alerts = prom_api(&net, port, "/api/v1/alerts", None);
        let firing = alerts["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["labels"]["alertname"] == "TLSCensusClientRejected")
        });
        if n >= 5.0 && firing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never got the series/alerts: {v} {alerts}\n{}",
            std::fs::read_to_string(net.path("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Rates need samples: every legacy series has a few before the panels
    // are queried.
    wait_until("three samples of each legacy series", 30, || {
        let q = "min(count_over_time(tlscensus_legacy_flows_total[10m]))";
        prom_value(&net, port, q).is_some_and(|n| n >= 3.0)
    });

    // Every dashboard query, with Grafana's variables as a user would have them.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("grafana/tlscensus.json")).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__rate_interval", "30s")
                .replace("$__range", "10m");
            let v = prom_api(&net, port, "/api/v1/query", Some(&expr));
            assert_eq!(v["status"], "success", "{}: {expr}: {v}", p["title"]);
            let result = v["data"]["result"].as_array().unwrap();
            assert!(
                !result.is_empty(),
                "panel {}: no data for {expr}",
                p["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} panel queries");

    // The legacy-hosts table names exactly the offline read's legacy hosts.
    let table = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "table")
        .unwrap();
    let expr = table["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .replace("$instance", ".*")
        .replace("$__range", "10m");
    let v = prom_api(&net, port, "/api/v1/query", Some(&expr));
    let hosts: std::collections::BTreeSet<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["source"].as_str().unwrap().to_string())
        .collect();
    let legacy_hosts: std::collections::BTreeSet<String> = [
        "192.0.2.11",
        "192.0.2.12",
        "192.0.2.13",
        "192.0.2.14",
        "192.0.2.15",
        "192.0.2.16",
        // raw-sslv2-hello-tls10: no SNI; known by its server certificate
        "192.0.2.17",
        "192.0.2.18",
        "2001:db8::12",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(hosts, legacy_hosts, "the offline read's legacy hosts");

    // /inventory?by=policy names the hosts each policy would break, as
    // `read --by policy` does over the same captures.
    let offline = Command::new(BIN)
        .args(["read", "--no-progress", "--by", "policy", "--format", "csv"])
        .args(["--policy", "tls13-only", "--policy", "mozilla-intermediate"])
        .args(&files)
        .output()
        .unwrap();
    let offline_csv = String::from_utf8_lossy(&offline.stdout).into_owned();
    let header = offline_csv.lines().next().unwrap_or_default();
    let host_list = header.split(',').position(|c| c == "host_list");
    let host_list = host_list.unwrap_or_else(|| panic!("no host_list column: {header}"));
    // (policy, its failing hosts), sorted.
    let policy_rows = |csv: &str| -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = csv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                Some((
                    cells.first()?.to_string(),
                    cells.get(host_list)?.to_string(),
                ))
            })
            .collect();
        rows.sort();
        rows
    };
    let offline_rows = policy_rows(&offline_csv);
    assert_eq!(offline_rows.len(), 2, "{offline_csv}");
    assert!(
        offline_rows
            .iter()
            .all(|(_, hosts)| hosts.contains("192.0.2.11")),
        "{offline_csv}"
    );
    wait_until("/inventory?by=policy to match read --by policy", 30, || {
        let (code, body) = sensor.get("/inventory?by=policy&format=csv");
        assert_eq!(code, 200, "{body}");
        policy_rows(&body) == offline_rows
    });

    // Every rule expression runs; the recording rules and legacy alerts have data.
    let docs = yaml_rust2::YamlLoader::load_from_str(&rules_text).unwrap();
    for g in docs[0]["groups"].as_vec().unwrap() {
        for r in g["rules"].as_vec().unwrap() {
            let expr = r["expr"].as_str().unwrap();
            let name = r["record"].as_str().or(r["alert"].as_str()).unwrap();
            let v = prom_api(&net, port, "/api/v1/query", Some(expr));
            assert_eq!(v["status"], "success", "{name}: {v}");
            let has_data = !v["data"]["result"].as_array().unwrap().is_empty();
            let must = r["record"].as_str().is_some()
                || [
                    "TLSCensusLegacyTLSClient",
                    "TLSCensusClientRejected",
                    "TLSCensusNewLegacyHost",
                ]
                .contains(&name);
            if must {
                assert!(has_data, "{name} has no data: {expr}");
            }
            if [
                "TLSCensusNoTLSSeen",
                "TLSCensusSensorDown",
                "TLSCensusKernelDrops",
                "TLSCensusQueueDrops",
                "TLSCensusMirrorLoss",
                "TLSCensusMirrorOneSided",
            ]
            .contains(&name)
            {
                assert!(
                    !has_data,
                    "{name} should not hold for a healthy sensor: {v}"
                );
            }
        }
    }

    // The alerts name the hosts to fix.
    let alerts = prom_api(&net, port, "/api/v1/alerts", None);
    let list = alerts["data"]["alerts"].as_array().unwrap();
    let find = |name: &str, source: &str, version: &str| {
        list.iter().find(|a| {
            a["labels"]["alertname"] == name
                && a["labels"]["source"] == source
                && a["labels"]["version"] == version
        })
    };
    let a = find("TLSCensusClientRejected", "192.0.2.11", "TLSv1.0")
        .unwrap_or_else(|| panic!("no rejected alert for 192.0.2.11: {alerts}"));
    assert!(a["state"] == "firing" || a["state"] == "pending", "{a}");
    assert_eq!(a["labels"]["sensor"], "test-mirror");
    assert!(
        a["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("192.0.2.11"),
        "{a}"
    );
    assert!(
        find("TLSCensusLegacyTLSClient", "2001:db8::12", "TLSv1.1").is_some(),
        "{alerts}"
    );
    assert!(
        find("TLSCensusLegacyTLSClient", "192.0.2.13", "TLSv1.1").is_some(),
        "{alerts}"
    );
    // Legacy alerts name legacy hosts only.
    for a in list {
        if let Some(src) = a["labels"]["source"].as_str() {
            assert!(legacy_hosts.contains(src), "{a}");
        }
    }
    drop(sensor);
}

/// Issue 12 item 3: the page lists every weak host, so it can be served over
/// HTTPS with client certificates and basic authentication
/// (`--web.config.file`, exporter-toolkit format); a real Prometheus scrapes
/// it that way, and clients without the certificate or the password get nothing.
#[test]
fn live_prometheus_scrapes_over_tls_with_client_cert_and_basic_auth() {
    if !prerequisites("live_prometheus_scrapes_over_tls_with_client_cert_and_basic_auth") {
        return;
    }
    let mut net = Net::new(1);
    let d = net.dir.path().display().to_string();
    sh(&format!(
        "cd {d} && \
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=test CA' -keyout ca.key -out ca.pem 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -subj '/CN=127.0.0.1' -keyout srv.key -out srv.csr 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext && \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile srv.ext -out srv.pem 2>/dev/null && \
         openssl req -newkey rsa:2048 -nodes -subj '/CN=prometheus' -keyout client.key -out client.csr 2>/dev/null && \
         printf 'extendedKeyUsage=clientAuth\\n' > client.ext && \
         openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out client.pem 2>/dev/null && \
         chmod 644 *.key"
    ));
    let hash = bcrypt::hash("s3cret", 6).unwrap();
    let web = net.path("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: srv.pem\n  key_file: srv.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n  min_version: TLS12\nbasic_auth_users:\n  prom: '{hash}'\n"
        ),
    )
    .unwrap();
    let i1 = net.iface(1);
    let sensor = net.tlscensus(&[
        "-i",
        &i1,
        "--user",
        "nobody",
        "--web.config.file",
        web.to_str().unwrap(),
    ]);
    assert!(
        sensor.log_text().contains("metrics at https://"),
        "{}",
        sensor.log_text()
    );
    net.openssl_server(4431, "-min_protocol TLSv1.2");
    net.openssl_client(
        1,
        4431,
        &format!("-tls1 -cipher {LEGACY} -servername acct.blob.core.windows.net"),
    );
    let curl = |extra: &str| -> (String, String) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cd {d} && ip netns exec {} curl -s --max-time 10 --cacert ca.pem {extra} -w '\\n%{{http_code}}' https://{}/metrics",
                net.srv(),
                sensor.addr
            ))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
        (code.trim().to_string(), body.to_string())
    };
    // Plain HTTP, no client certificate, or no password: nothing.
    let plain = Command::new("ip")
        .args(["netns", "exec", &net.srv(), "curl", "-s", "--max-time", "5"])
        .arg(format!("http://{}/metrics", sensor.addr))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("tlscensus_"));
    assert_eq!(curl("-u prom:s3cret").0, "000", "no client certificate");
    assert_eq!(curl("--cert client.pem --key client.key").0, "401");
    assert_eq!(
        curl("--cert client.pem --key client.key -u prom:wrong").0,
        "401"
    );
    let (code, body) = curl("--cert client.pem --key client.key -u prom:s3cret");
    assert_eq!(code, "200");
    assert!(body.contains("tlscensus_build_info"), "{body}");

    let extra = format!(
        "    scheme: https\n    tls_config:\n      ca_file: {d}/ca.pem\n      cert_file: {d}/client.pem\n      key_file: {d}/client.key\n    basic_auth:\n      username: prom\n      password: s3cret\n"
    );
    start_prometheus_with(&mut net, &sensor, 19092, None, &extra);
    let query = |q: &str| prom_api(&net, 19092, "/api/v1/query", Some(q));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = query("tlscensus_legacy_flows_total");
        if let Some(r) = v["data"]["result"].as_array()
            && !r.is_empty()
        {
            assert_eq!(r[0]["metric"]["source"], "10.77.1.2");
            assert_eq!(r[0]["metric"]["version"], "TLSv1.0");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped over TLS: {v}\n{}\n{}",
            std::fs::read_to_string(net.path("prometheus.log")).unwrap_or_default(),
            sensor.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let up = query("up{job=\"tlscensus\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

/// Issue 12 item 3: slow clients from the scraper's own address (64 of them,
/// each sending half a request head and reconnecting when cut off) do not
/// make a real Prometheus miss scrapes.
#[test]
fn live_slow_clients_cannot_starve_prometheus() {
    if !prerequisites("live_slow_clients_cannot_starve_prometheus") {
        return;
    }
    let mut net = Net::new(1);
    let i1 = net.iface(1);
    let sensor = net.tlscensus(&["-i", &i1, "--user", "nobody"]);
    let (host, port) = sensor.addr.rsplit_once(':').unwrap();
    let script = format!(
        r#"
import socket, time
end = time.time() + 25
socks = []
def fresh():
    s = socket.create_connection(("{host}", {port}))
    s.sendall(b"GET /met")
    return s
while time.time() < end:
    while len(socks) < 64:
        try:
            socks.append(fresh())
        except OSError:
            time.sleep(0.05)
            break
    alive = []
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                s.close()
                continue
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            continue
        alive.append(s)
    socks = alive
    time.sleep(0.05)
"#
    );
    let attacker = Command::new("ip")
        .args(["netns", "exec", &net.srv(), "python3", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    net.children.push(attacker);
    // The attack is on (the sensor has begun to cut slow clients off)
    // before the scrapes start.
    sensor.wait_for("the slow clients to fill the connection slots", |m| {
        m.get(r#"tlscensus_http_requests_total{result="evicted"}"#) > 0.0
    });
    start_prometheus(&mut net, &sensor, 19093, None);
    // Twelve seconds of scrapes under attack (one a second), then the
    // window below covers only them.
    wait_scrapes(&net, 19093, 13);
    let query = |q: &str| prom_api(&net, 19093, "/api/v1/query", Some(q));
    // One query for both figures, so they cover the same samples.
    let v = query(
        "count_over_time(up{job=\"tlscensus\"}[12s]) - sum_over_time(up{job=\"tlscensus\"}[12s])",
    );
    let failed: f64 = v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|x| x.parse().ok())
        .unwrap_or(-1.0);
    let scrapes = query("count_over_time(up{job=\"tlscensus\"}[12s])");
    let n: f64 = scrapes["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    assert!(n >= 8.0, "too few scrapes: {scrapes}");
    let log = std::fs::read_to_string(net.path("prometheus.log")).unwrap_or_default();
    let why: Vec<&str> = log.lines().filter(|l| l.contains("crape failed")).collect();
    assert_eq!(
        failed,
        0.0,
        "failed scrapes: {v}\n{}\n{}",
        why.join("\n"),
        sensor.metrics().dump()
    );
    let m = sensor.metrics();
    assert!(
        m.get(r#"tlscensus_http_requests_total{result="evicted"}"#) > 0.0,
        "{}",
        m.dump()
    );
}
