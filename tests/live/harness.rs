//! What the live tests share: namespaces joined by veth pairs ([`Net`]), a
//! sensor run in one ([`Sensor`]) and its metrics, replays of the shipped
//! captures, a Prometheus server, and waits on conditions.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tlscensus");

pub const TOOLS: [&str; 9] = [
    "ip",
    "nft",
    "openssl",
    "curl",
    "tcpreplay",
    "prometheus",
    "setpriv",
    "setcap",
    "python3",
];

pub const LEGACY: &str = "DEFAULT:@SECLEVEL=0";

/// True when the test can run: root and [`TOOLS`] (see `crate::common::require`).
pub fn prerequisites(test: &str) -> bool {
    crate::common::require(test, true, &TOOLS)
}

pub fn sh(cmd: &str) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub static NEXT: AtomicU32 = AtomicU32::new(0);

/// A server namespace joined by one veth pair per client namespace; client `i`
/// is 10.77.i.2, the server is 10.77.i.1 on interface `{p}s{i}`.
/// Everything (namespaces, processes) goes away on drop.
pub struct Net {
    pub p: String,
    pub clients: usize,
    pub children: Vec<Child>,
    pub dir: tempfile::TempDir,
}

impl Net {
    pub fn new(clients: usize) -> Net {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = format!("tc{}x{n}", std::process::id() % 100_000);
        let net = Net {
            p: p.clone(),
            clients,
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        sh(&format!(
            "ip netns add {p}srv && ip -n {p}srv link set lo up"
        ));
        for i in 1..=clients {
            sh(&format!(
                "ip netns add {p}c{i} && ip -n {p}c{i} link set lo up && \
                 ip link add {p}s{i} netns {p}srv type veth peer name {p}c{i} netns {p}c{i} && \
                 ip -n {p}srv addr add 10.77.{i}.1/24 dev {p}s{i} && \
                 ip -n {p}c{i} addr add 10.77.{i}.2/24 dev {p}c{i} && \
                 ip -n {p}srv link set {p}s{i} mtu 9000 up && ip -n {p}c{i} link set {p}c{i} mtu 9000 up"
            ));
        }
        // A certificate for the Azure Blob name pattern.
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj '/CN=*.blob.core.windows.net' \
             -keyout {d}/key.pem -out {d}/cert.pem 2>/dev/null",
            d = net.dir.path().display()
        ));
        net
    }

    pub fn srv(&self) -> String {
        format!("{}srv", self.p)
    }

    pub fn iface(&self, i: usize) -> String {
        format!("{}s{i}", self.p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A switch's mirror (SPAN) session that loses frames: every frame
    /// arriving on the server namespace's interface `from` (from client
    /// `from`, e.g. a replay) is copied out of interface `to` by the kernel
    /// (an nftables ingress hook, `dup to`), except each one with
    /// probability `p` (a random number per frame, `numgen random`). A
    /// sensor on `to` sees the copies as they leave. The frames' sender is
    /// not told of the loss (a drop on its own egress would be: tcpreplay
    /// resends what the kernel refused, and netem, which hides its drops, is
    /// not in every kernel).
    pub fn lossy_mirror(&self, from: usize, to: usize, p: f64) {
        let keep_from = (p * 1e6).round() as u64;
        let (src, dst) = (self.iface(from), self.iface(to));
        sh(&format!(
            "ip netns exec {} nft -f - <<'EOF'\ntable netdev span {{\n  chain in {{\n    type filter hook ingress device \"{src}\" priority 0;\n    numgen random mod 1000000 >= {keep_from} dup to \"{dst}\"\n  }}\n}}\nEOF",
            self.srv()
        ));
    }

    /// Starts an OpenSSL server in the server namespace on `port`.
    pub fn openssl_server(&mut self, port: u16, opts: &str) {
        let d = self.dir.path().display().to_string();
        let child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "exec ip netns exec {} openssl s_server -quiet -accept {port} -cert {d}/cert.pem -key {d}/key.pem {opts}",
                    self.srv()
                ),
            ])
            // `s_server` ends a connection when its input ends: a pipe kept
            // open (with the child) lets a client hold its connection.
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.wait_listening(port);
    }

    /// Waits until a TCP server listens on `port` in the server namespace.
    pub fn wait_listening(&self, port: u16) {
        let srv = self.srv();
        wait_until(&format!("a server listening on port {port}"), 20, || {
            Command::new("ip")
                .args(["netns", "exec", &srv, "ss", "-Hltn"])
                .arg(format!("sport = :{port}"))
                .output()
                .is_ok_and(|o| !o.stdout.is_empty())
        });
    }

    /// An OpenSSL client in client namespace `i` that keeps its connection
    /// open until the test ends.
    pub fn openssl_client_held(&mut self, i: usize, port: u16, opts: &str) {
        let child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "exec ip netns exec {p}c{i} openssl s_client -ign_eof -connect 10.77.{i}.1:{port} {opts}",
                    p = self.p
                ),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// One OpenSSL client handshake from client namespace `i`.
    pub fn openssl_client(&self, i: usize, port: u16, opts: &str) {
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "timeout 10 ip netns exec {p}c{i} openssl s_client -connect 10.77.{i}.1:{port} {opts} </dev/null",
                    p = self.p
                ),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Starts `tlscensus live` in the server namespace; returns once it serves.
    pub fn tlscensus(&mut self, args: &[&str]) -> Sensor {
        self.tlscensus_to(args, Stdio::null())
    }

    /// As [`Net::tlscensus`], with stdout going to `stdout` (a pipe is kept
    /// in the sensor, unread).
    pub fn tlscensus_to(&mut self, args: &[&str], stdout: Stdio) -> Sensor {
        let mut argv = vec!["live", "--listen", "127.0.0.1:0"];
        argv.extend(args);
        self.tlscensus_argv(&argv, stdout)
    }

    /// Starts `tlscensus ARGV` (no option added) in the server namespace
    /// and waits for it to serve /metrics.
    pub fn tlscensus_argv(&mut self, argv: &[&str], stdout: Stdio) -> Sensor {
        let log = self.path(&format!("sensor-{}.log", self.children.len()));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.srv(), BIN])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let unread_stdout = child.stdout.take();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&log2).unwrap();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut addr = None;
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(rest) = line
                        .split("metrics at http://")
                        .nth(1)
                        .or_else(|| line.split("metrics at https://").nth(1))
                    {
                        addr = rest.split('/').next().map(str::to_string);
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        let addr = addr.unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "tlscensus did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Sensor {
            child: Some(child),
            ns: self.srv(),
            addr,
            log,
            _stdout: unread_stdout,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.srv()])
            .status();
        for i in 1..=self.clients {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{}c{i}", self.p)])
                .status();
        }
    }
}

/// A running `tlscensus live`.
pub struct Sensor {
    pub child: Option<Child>,
    pub ns: String,
    pub addr: String,
    pub log: PathBuf,
    /// The read end of a stdout pipe nobody reads (a stalled event reader).
    pub _stdout: Option<std::process::ChildStdout>,
}

impl Sensor {
    pub fn get(&self, path: &str) -> (u16, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-s", "--max-time", "10"])
            .args(["-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn metrics(&self) -> Metrics {
        let (code, body) = self.get("/metrics");
        assert_eq!(code, 200, "{body}");
        Metrics::parse(&body)
    }

    /// Polls /metrics until `cond` holds (or fails after a while).
    pub fn wait_for(&self, what: &str, cond: impl Fn(&Metrics) -> bool) -> Metrics {
        self.poll(what, Duration::from_millis(200), cond)
    }

    /// Polls /metrics `every` so often until `cond` holds (or fails after
    /// 30 s).
    pub fn poll(
        &self,
        what: &str,
        every: Duration,
        mut cond: impl FnMut(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.metrics();
            if cond(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; metrics:\n{}\nlog:\n{}",
                m.dump(),
                self.log_text()
            );
            std::thread::sleep(every);
        }
    }

    /// Waits until the sensor has read every frame the kernel passed it
    /// after a replay of `frames` frames: the kernel's count has stopped
    /// growing, and the sensor read as many. (The default filter leaves bare
    /// ACKs in the kernel, so fewer than `frames` may arrive; at least one
    /// must.) The kernel's count is published once a second, so the polls
    /// that compare it are further apart.
    pub fn wait_drained(&self, frames: f64) -> Metrics {
        let mut last = -1.0;
        let what = format!("the replay of {frames} frames to be read");
        self.poll(&what, Duration::from_millis(1100), |m| {
            let r: f64 = m.family("tlscensus_capture_received_total").values().sum();
            let done = r > 0.0 && r == last && m.get("tlscensus_packets_total") >= r;
            last = r;
            done
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal and waits for the exit status.
    pub fn stop(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        sh(&format!("kill -{signal} {}", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                // Let the log reader catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return st;
            }
            assert!(Instant::now() < deadline, "no exit after SIG{signal}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Prometheus text format, series → value.
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(|l| {
                    let (k, v) = l.rsplit_once(' ')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect(),
        )
    }

    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// The non-zero series of one metric.
    pub fn family(&self, name: &str) -> BTreeMap<String, f64> {
        self.0
            .iter()
            .filter(|(k, v)| {
                (k.as_str() == name || k.starts_with(&format!("{name}{{"))) && **v != 0.0
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub fn dump(&self) -> String {
        self.0
            .iter()
            .filter(|(_, v)| **v != 0.0)
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect()
    }
}

/// Expected non-zero series of `name`, one flow each: every row holds the
/// values of `labels` (given in the exposition's alphabetical order).
pub fn one_each<const N: usize>(
    name: &str,
    labels: [&str; N],
    rows: &[[&str; N]],
) -> BTreeMap<String, f64> {
    rows.iter()
        .map(|r| {
            let l: Vec<String> = labels
                .iter()
                .zip(r)
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            (format!("{name}{{{}}}", l.join(",")), 1.0)
        })
        .collect()
}

/// Starts a Prometheus server in the server namespace that scrapes `sensor`
/// every second and evaluates `rules` (if any) every second. Returns a query
/// function over its HTTP API.
pub fn start_prometheus(net: &mut Net, sensor: &Sensor, port: u16, rules: Option<&Path>) {
    start_prometheus_with(net, sensor, port, rules, "");
}

/// As [`start_prometheus`], with `scrape_extra` (YAML lines indented for the
/// scrape config: scheme, tls_config, basic_auth) added to the job.
pub fn start_prometheus_with(
    net: &mut Net,
    sensor: &Sensor,
    port: u16,
    rules: Option<&Path>,
    scrape_extra: &str,
) {
    let config = net.path("prometheus.yml");
    let rule_files = rules.map_or(String::new(), |r| {
        format!("rule_files:\n  - {}\n", r.display())
    });
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  - job_name: tlscensus\n{scrape_extra}    static_configs:\n      - targets: ['{}']\n        labels:\n          sensor: test-mirror\n",
            sensor.addr
        ),
    )
    .unwrap();
    let prom = Command::new("ip")
        .args(["netns", "exec", &net.srv(), "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            net.path("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // Failed scrapes are logged, with their reason, only at debug.
        .arg("--log.level=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(net.path("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    net.children.push(prom);
}

/// Polls `done` every 100 ms until it holds; fails, naming `what`, after
/// `secs` seconds.
pub fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of a Prometheus instant query's first series, if any.
pub fn prom_value(net: &Net, port: u16, query: &str) -> Option<f64> {
    let v = prom_api(net, port, "/api/v1/query", Some(query));
    v["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
}

/// Waits until Prometheus on `port` has scraped the sensor `n` times
/// (its `up` series has `n` samples): the counters' values before what the
/// test does next are stored, so `increase()` sees the rise.
pub fn wait_scrapes(net: &Net, port: u16, n: u32) {
    let q = "count_over_time(up{job=\"tlscensus\"}[10m])";
    wait_until(&format!("{n} scrapes by Prometheus"), 60, || {
        prom_value(net, port, q).is_some_and(|c| c >= f64::from(n))
    });
}

/// Waits until Prometheus on `port` has evaluated its rule groups `n`
/// more times.
pub fn wait_rule_evaluations(net: &Net, port: u16, n: u32) {
    let last = || {
        let v = prom_api(net, port, "/api/v1/rules", None);
        (v["data"]["groups"].as_array().cloned().unwrap_or_default())
            .iter()
            .filter_map(|g| g["lastEvaluation"].as_str().map(str::to_owned))
            .max()
    };
    let (mut seen, mut evaluations) = (last(), 0);
    wait_until(&format!("{n} rule evaluations"), 60, || {
        let now = last();
        if now.is_some() && now != seen {
            evaluations += 1;
            seen = now;
        }
        evaluations >= n
    });
}

/// GET on Prometheus' HTTP API in the server namespace.
pub fn prom_api(net: &Net, port: u16, path: &str, query: Option<&str>) -> serde_json::Value {
    prom_api_in(&net.srv(), port, path, query)
}

/// GET on the HTTP API of a Prometheus listening on 127.0.0.1:`port` in
/// namespace `ns`.
pub fn prom_api_in(ns: &str, port: u16, path: &str, query: Option<&str>) -> serde_json::Value {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "curl", "-s", "--max-time", "5", "-G"])
        .arg(format!("http://127.0.0.1:{port}{path}"));
    if let Some(q) = query {
        cmd.args(["--data-urlencode", &format!("query={q}")]);
    }
    let out = cmd.output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Polls /inventory?by=destination until it lists `n` destinations; returns
/// `service destination status legacy modern` rows.
pub fn wait_destinations(sensor: &Sensor, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = sensor.get("/inventory?by=destination&format=json");
        assert_eq!(code, 200, "{body}");
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let rows: Vec<String> = doc["destinations"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|d| {
                format!(
                    "{} {} {} {} {}",
                    d["service"],
                    d["destination"],
                    d["status"],
                    d["legacy_flows"],
                    d["modern_flows"]
                )
            })
            .collect();
        if rows.len() >= n {
            return rows;
        }
        assert!(Instant::now() < deadline, "{rows:?}\n{}", sensor.log_text());
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A network namespace of its own, deleted on drop.
pub struct Namespace(pub String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Waits until the sensor's log has `n` lines containing `what`.
pub fn wait_log(sensor: &Sensor, what: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = sensor.log_text();
        if log.matches(what).count() >= n {
            return log;
        }
        assert!(Instant::now() < deadline, "no {what:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
