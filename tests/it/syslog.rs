//! Events to real syslog receivers: rsyslog and syslog-ng from the Debian
//! archive, each listening on a Unix datagram socket, UDP and TCP (octet
//! counting), in RFC 5424 and RFC 3164; every event of a capture arrives
//! whole, as `--events -` writes it. A TCP receiver that accepts and never
//! reads costs events (counted, `write_failed`), never flows: the census of
//! the capture completes. Files: rotation by size keeps N, and the Zeek
//! layout starts each file with its header and ends it with `#close`.
//!
//! rsyslog comes from the Debian package; syslog-ng conflicts with it there,
//! so CI unpacks Debian's syslog-ng-core into `target/syslog-ng` (see
//! `.ci/run`) and the test runs it from there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A free TCP and UDP port on loopback (bound, then released).
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A receiver: its process, the file it writes each message's MSG to, one
/// per line, and its three inputs.
struct Receiver {
    child: Child,
    out: PathBuf,
    socket: PathBuf,
    udp: u16,
    tcp: u16,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    /// Starts the receiver `cmd` and waits until its inputs are there.
    fn start(mut cmd: Command, out: PathBuf, socket: PathBuf, udp: u16, tcp: u16) -> Receiver {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the syslog receiver");
        Receiver {
            child,
            out,
            socket,
            udp,
            tcp,
        }
        .wait_ready()
    }

    fn wait_ready(self) -> Receiver {
        let until = Instant::now() + Duration::from_secs(15);
        while !(self.socket.exists()
            && std::net::TcpStream::connect(("127.0.0.1", self.tcp)).is_ok())
        {
            assert!(Instant::now() < until, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        self
    }

    /// The messages received, once `n` have come (or 15 s passed).
    fn messages(&self, n: usize) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let got: Vec<String> = std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim_start().to_string())
                .collect();
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn rsyslog(dir: &Path) -> Receiver {
    let (udp, tcp) = (free_port(), free_port());
    let (socket, out) = (dir.join("rs.sock"), dir.join("rs.out"));
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{dir}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{udp}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="msg" type="string" string="%msg%\n")
if $programname == "tlscensus" then {{
  action(type="omfile" file="{out}" template="msg")
}}
"#,
            dir = dir.display(),
            socket = socket.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new("rsyslogd");
    cmd.args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rs.pid"));
    Receiver::start(cmd, out, socket, udp, tcp)
}

/// Debian's syslog-ng-core, installed or unpacked into `target/syslog-ng`.
fn syslog_ng_command() -> Option<Command> {
    if have_tool("syslog-ng") {
        return Some(Command::new("syslog-ng"));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/syslog-ng");
    let bin = root.join("usr/sbin/syslog-ng");
    if !bin.exists() {
        return None;
    }
    let lib = root.join("usr/lib/syslog-ng");
    let mut c = Command::new(bin);
    c.env("LD_LIBRARY_PATH", &lib)
        .arg(format!("--module-path={}", lib.join("3.38").display()));
    Some(c)
}

fn syslog_ng(dir: &Path, mut cmd: Command) -> Receiver {
    let (udp, tcp) = (free_port(), free_port());
    let (socket, out) = (dir.join("ng.sock"), dir.join("ng.out"));
    let conf = dir.join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
options {{ log-msg-size(65536); stats-freq(0); }};
source s_tlscensus {{
  unix-dgram("{socket}");
  syslog(ip("127.0.0.1") port({udp}) transport("udp"));
  syslog(ip("127.0.0.1") port({tcp}) transport("tcp"));
}};
destination d_out {{ file("{out}" template("$MSG\n")); }};
filter f_tlscensus {{ program("tlscensus"); }};
log {{ source(s_tlscensus); filter(f_tlscensus); destination(d_out); }};
"#,
            socket = socket.display(),
            out = out.display(),
        ),
    )
    .unwrap();
    cmd.arg("-F")
        .arg(format!("--cfgfile={}", conf.display()))
        .arg(format!(
            "--persist-file={}",
            dir.join("ng.persist").display()
        ))
        .arg(format!("--pidfile={}", dir.join("ng.pid").display()))
        .arg(format!("--control={}", dir.join("ng.ctl").display()));
    Receiver::start(cmd, out, socket, udp, tcp)
}

/// The events of `file` as `--events -` writes them, in `layout`.
fn expected(file: &Path, layout: &str) -> Vec<Value> {
    let mut v: Vec<Value> = event_lines(file, layout, &[])
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by_key(|e| e.to_string());
    v
}

/// Sends `file`'s events to `dest` and checks that the receiver got each
/// one whole.
fn sends_every_event(r: &Receiver, dest: &str, extra: &[&str], seen: &mut usize) {
    let file = capture("demo.pcapng");
    let want = expected(&file, "ecs");
    assert!(want.len() >= 8, "{}", want.len());
    let mut args = vec![
        "read",
        "--all",
        "--no-progress",
        "--events",
        dest,
        "--events-format",
        "ecs",
    ];
    args.extend_from_slice(extra);
    let f = file.to_string_lossy().into_owned();
    args.push(&f);
    let out = tlscensus(&args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{dest}: {}",
        text(&out.stderr)
    );
    let total = *seen + want.len();
    let got = r.messages(total);
    assert_eq!(got.len(), total, "{dest} {extra:?}: messages received");
    let mut mine: Vec<Value> = got[*seen..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{dest}: {l}: {e}")))
        .collect();
    mine.sort_by_key(|e| e.to_string());
    assert_eq!(mine, want, "{dest} {extra:?}: every event intact");
    *seen = total;
}

fn every_transport(r: &Receiver) {
    let mut seen = 0;
    let unix = format!("syslog:unix:{}", r.socket.display());
    let udp = format!("syslog:udp:127.0.0.1:{}", r.udp);
    let tcp = format!("syslog:tcp:127.0.0.1:{}", r.tcp);
    // (a local socket takes syslog(3)'s format, RFC 3164 without HOSTNAME:
    // neither daemon reads RFC 5424 there unless told to)
    for (dest, format) in [
        (&unix, "rfc3164"),
        (&udp, "rfc5424"),
        (&udp, "rfc3164"),
        (&tcp, "rfc5424"),
        (&tcp, "rfc3164"),
    ] {
        sends_every_event(r, dest, &["--syslog-format", format], &mut seen);
    }
}

#[test]
fn events_reach_rsyslog_whole() {
    if !require_tools("events_reach_rsyslog_whole", &["rsyslogd"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    every_transport(&rsyslog(dir.path()));
}

#[test]
fn events_reach_syslog_ng_whole() {
    let Some(cmd) = syslog_ng_command() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "syslog-ng: neither installed nor unpacked into target/syslog-ng (CI must provide it)"
        );
        eprintln!("SKIPPED: events_reach_syslog_ng_whole: needs syslog-ng");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    every_transport(&syslog_ng(dir.path(), cmd));
}

/// A TCP receiver that accepts and never reads: the census completes; the
/// events the socket could not take are dropped and counted.
#[test]
fn stalled_syslog_receiver_costs_only_events() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    gen_capture(
        &pcap,
        &[
            "--bytes",
            "30000000",
            "--handshake-share",
            "0.9",
            "--seed",
            "7",
        ],
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        drop(conn);
    });
    let prom = dir.path().join("m.prom");
    let started = Instant::now();
    let out = tlscensus(&[
        "read",
        "--all",
        "--no-progress",
        "--events",
        &format!("syslog:tcp:127.0.0.1:{port}"),
        "--events-format",
        "ocsf",
        "--metrics-file",
        prom.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    let took = started.elapsed();
    let m = std::fs::read_to_string(&prom).unwrap();
    let written = value(&m, "tlscensus_events_written_total").unwrap_or(0.0);
    let dropped = value(
        &m,
        "tlscensus_events_dropped_total{reason=\"write_failed\"}",
    )
    .unwrap_or(0.0);
    assert!(took < Duration::from_secs(50), "{took:?}");
    assert!(dropped > 0.0, "nothing dropped: {m}");
    // The census is the one a run without events makes: every flow counted.
    let census = |o: &std::process::Output| {
        text(&o.stdout)
            .lines()
            .find(|l| l.contains("TLS flows inventoried"))
            .map(str::to_string)
    };
    let plain = tlscensus(&["read", "--all", "--no-progress", pcap.to_str().unwrap()]);
    assert!(census(&plain).is_some(), "{}", text(&plain.stdout));
    assert_eq!(census(&out), census(&plain));
    eprintln!("stalled receiver: {written} events written, {dropped} dropped, {took:?}");
    drop(hold);
}

/// Rotation by size: FILE.1 to FILE.N kept, each Zeek file whole (header
/// first, `#close` last), and no event lost across the files.
#[test]
fn event_files_rotate_whole() {
    let file = capture("demo.pcapng");
    let want = event_lines(&file, "zeek", &[])
        .iter()
        .filter(|l| !l.starts_with('#'))
        .count();
    let mut rows = 0;
    // (each write holds one event or more: at most 8 rotations here, so 10
    // kept files hold every event; 1 kept, the newest two files remain)
    for keep in ["1", "10"] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("ssl.log");
        let out = tlscensus(&[
            "read",
            "--all",
            "--no-progress",
            "--workers",
            "1",
            "--events",
            log.to_str().unwrap(),
            "--events-format",
            "zeek",
            "--events-rotate-size",
            "1",
            "--events-keep",
            keep,
            file.to_str().unwrap(),
        ]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            text(&out.stderr)
        );
        let names: Vec<PathBuf> = std::iter::once(log.clone())
            .chain((1..=12).map(|i| dir.path().join(format!("ssl.log.{i}"))))
            .filter(|p| p.exists())
            .collect();
        assert!(
            names.len() <= 1 + keep.parse::<usize>().unwrap(),
            "{names:?}"
        );
        rows = 0;
        for n in &names {
            let t = std::fs::read_to_string(n).unwrap();
            let lines: Vec<&str> = t.lines().collect();
            assert_eq!(lines.first(), Some(&"#separator \\x09"), "{}", n.display());
            assert!(
                lines.last().unwrap().starts_with("#close\t"),
                "{}",
                n.display()
            );
            rows += lines.iter().filter(|l| !l.starts_with('#')).count();
        }
    }
    // With ten kept, every event of this small capture is still there.
    assert_eq!(rows, want);
}

/// Rotation options need a file; Zeek's tab-separated layout is no syslog
/// message: both refused with a clear error.
#[test]
fn event_option_mistakes_are_refused() {
    let file = capture("demo.pcapng");
    for (args, says) in [
        (
            vec!["--events", "-", "--events-rotate-size", "100"],
            "rotate an event file",
        ),
        (
            vec![
                "--events",
                "syslog:udp:127.0.0.1:514",
                "--events-format",
                "zeek",
            ],
            "zeek-json",
        ),
        (vec!["--events", "syslog:tcp:127.0.0.1"], "HOST:PORT"),
        (
            vec!["--events", "-", "--syslog-facility", "local9"],
            "local9",
        ),
    ] {
        let mut a = vec!["read", "--no-progress"];
        a.extend(args.iter().copied());
        let f = file.to_string_lossy().into_owned();
        a.push(&f);
        let out = tlscensus(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
