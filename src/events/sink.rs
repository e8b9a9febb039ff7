//! Where the event writer's lines go: standard output or a pipe, a file
//! (reopened on request for logrotate, rotated by size or age when asked),
//! or a syslog receiver (RFC 5424 or RFC 3164 messages over a Unix socket,
//! UDP, or TCP with octet-counted framing).
//!
//! Input: the `--events` destination and its settings; then the writer's
//! whole lines or framed messages. Output: bytes on the destination, and for
//! each attempt whether it went out. Invariants: a syslog message is sent
//! whole or not at all (a TCP connection that fails mid-frame is dropped and
//! the frame sent again whole on the next one); every socket has a send
//! timeout, so a receiver that stops reading fails writes (counted and
//! retried by the writer) instead of holding the writer forever; rotation
//! never loses a line (the old file is closed after its last line).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::FlowEvent;

/// How long a send may block before it counts as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Where events go (`--events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
    Syslog(SyslogTarget),
}

impl Destination {
    /// `-`, `syslog`, `syslog:unix:PATH`, `syslog:udp:HOST:PORT`,
    /// `syslog:tcp:HOST:PORT`, or a file's path.
    pub fn parse(s: &str) -> Result<Destination, String> {
        if s == "-" {
            return Ok(Destination::Stdout);
        }
        if s == "syslog" {
            return Ok(Destination::Syslog(SyslogTarget::Unix("/dev/log".into())));
        }
        let Some(rest) = s.strip_prefix("syslog:") else {
            return Ok(Destination::File(PathBuf::from(s)));
        };
        let (kind, addr) = rest.split_once(':').unwrap_or((rest, ""));
        let target = match kind {
            "unix" if !addr.is_empty() => SyslogTarget::Unix(PathBuf::from(addr)),
            "udp" | "tcp" => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .filter(|(h, _)| !h.is_empty())
                    .ok_or_else(|| format!("{s}: expected syslog:{kind}:HOST:PORT"))?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("{s}: {port:?} is not a port"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let remote = (host.to_string(), port);
                if kind == "udp" {
                    SyslogTarget::Udp(remote)
                } else {
                    SyslogTarget::Tcp(remote)
                }
            }
            _ => {
                return Err(format!(
                    "{s}: expected syslog, syslog:unix:PATH, syslog:udp:HOST:PORT or syslog:tcp:HOST:PORT"
                ));
            }
        };
        Ok(Destination::Syslog(target))
    }

    /// What error messages and `/healthz` call it.
    pub fn name(&self) -> String {
        match self {
            Destination::Stdout => "stdout".into(),
            Destination::File(p) => p.display().to_string(),
            Destination::Syslog(t) => t.name(),
        }
    }
}

/// A syslog receiver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// A datagram socket (`/dev/log`).
    Unix(PathBuf),
    Udp((String, u16)),
    /// Octet-counted framing (RFC 6587).
    Tcp((String, u16)),
}

impl SyslogTarget {
    pub fn name(&self) -> String {
        match self {
            SyslogTarget::Unix(p) => format!("syslog:unix:{}", p.display()),
            SyslogTarget::Udp((h, p)) => format!("syslog:udp:{h}:{p}"),
            SyslogTarget::Tcp((h, p)) => format!("syslog:tcp:{h}:{p}"),
        }
    }

    /// The format a receiver of this kind expects when none is asked for:
    /// RFC 3164 on a local socket (what syslog(3) sends), RFC 5424 over
    /// the network.
    pub fn default_format(&self) -> SyslogFormat {
        match self {
            SyslogTarget::Unix(_) => SyslogFormat::Rfc3164,
            _ => SyslogFormat::Rfc5424,
        }
    }
}

/// The syslog message format (`--syslog-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogFormat {
    Rfc5424,
    Rfc3164,
}

/// How events become syslog messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogSettings {
    pub format: SyslogFormat,
    /// 0 (kern) to 23 (local7).
    pub facility: u8,
    /// HOSTNAME of each message.
    pub hostname: String,
}

/// The facilities of RFC 5424, by their names.
pub const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

impl SyslogSettings {
    /// The settings for `target` (`format`: `None` for its default).
    pub fn new(target: &SyslogTarget, format: Option<SyslogFormat>, facility: u8) -> Self {
        SyslogSettings {
            format: format.unwrap_or_else(|| target.default_format()),
            facility,
            hostname: host_name(),
        }
    }

    /// `line` (one event in its layout, newline included) as a message at
    /// the end of `out` for `target`: a legacy flow at severity warning,
    /// others info; over TCP, with its octet count in front; RFC 3164 to a
    /// local socket without HOSTNAME, as syslog(3) writes it (the local
    /// daemon adds its own).
    pub fn message(&self, ev: &FlowEvent, line: &[u8], target: &SyslogTarget, out: &mut Vec<u8>) {
        let tcp = matches!(target, SyslogTarget::Tcp(_));
        let local = matches!(target, SyslogTarget::Unix(_));
        let start = out.len();
        let severity = if ev.legacy { 4 } else { 6 };
        out.push(b'<');
        super::json::decimal(out, u64::from(self.facility) * 8 + severity);
        out.push(b'>');
        match self.format {
            SyslogFormat::Rfc5424 => {
                out.extend_from_slice(b"1 ");
                super::json::rfc3339_micros(out, ev.flow.ts_ns);
                out.push(b' ');
                out.extend_from_slice(self.hostname.as_bytes());
                out.extend_from_slice(b" tlscensus ");
                super::json::decimal(out, u64::from(std::process::id()));
                out.extend_from_slice(b" flow - ");
            }
            SyslogFormat::Rfc3164 => {
                bsd_time(out, ev.flow.ts_ns);
                if !local {
                    out.push(b' ');
                    out.extend_from_slice(self.hostname.as_bytes());
                }
                out.extend_from_slice(b" tlscensus[");
                super::json::decimal(out, u64::from(std::process::id()));
                out.extend_from_slice(b"]: ");
            }
        }
        out.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
        if tcp {
            let mut count = Vec::with_capacity(8);
            super::json::decimal(&mut count, (out.len() - start) as u64);
            count.push(b' ');
            out.splice(start..start, count);
        }
    }
}

/// `Mmm dd hh:mm:ss` (RFC 3164's TIMESTAMP, UTC).
fn bsd_time(out: &mut Vec<u8>, ns: u64) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let mut iso = Vec::with_capacity(20);
    super::json::rfc3339_seconds(&mut iso, ns);
    // 2026-02-03T04:05:06Z
    let month = usize::from((iso[5] - b'0') * 10 + (iso[6] - b'0'));
    out.extend_from_slice(MONTHS[month.clamp(1, 12) - 1]);
    out.push(b' ');
    out.push(if iso[8] == b'0' { b' ' } else { iso[8] });
    out.push(iso[9]);
    out.push(b' ');
    out.extend_from_slice(&iso[11..19]);
}

/// This machine's name (`-`, the NILVALUE, when unknown); only the
/// characters RFC 5424 allows in HOSTNAME.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if name.is_empty() { "-".into() } else { name }
}

/// When a file is rotated (`--events-rotate-size`, `--events-rotate-interval`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: Option<u64>,
    pub max_age: Option<Duration>,
    /// Rotated files kept (`FILE.1` newest … `FILE.N`).
    pub keep: usize,
}

impl Rotation {
    pub fn is_on(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some()
    }
}

/// An event file.
pub struct FileSink {
    path: PathBuf,
    file: File,
    /// Bytes in the file (for rotation by size).
    bytes: u64,
    opened: Instant,
    rotation: Rotation,
}

impl FileSink {
    /// Opens `path`: appending (live) or truncating it.
    pub fn open(path: &Path, append: bool, rotation: Rotation) -> io::Result<FileSink> {
        let mut opts = OpenOptions::new();
        if append {
            opts.append(true).create(true);
        } else {
            opts.write(true).create(true).truncate(true);
        }
        let file = opts.open(path)?;
        let bytes = file.metadata().map_or(0, |m| m.len());
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
            bytes,
            opened: Instant::now(),
            rotation,
        })
    }

    pub fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.file.write(b)?;
        self.bytes += n as u64;
        Ok(n)
    }

    pub fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        self.file.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    /// The file is due for rotation.
    pub fn due(&self) -> bool {
        self.bytes > 0
            && (self.rotation.max_bytes.is_some_and(|m| self.bytes >= m)
                || self
                    .rotation
                    .max_age
                    .is_some_and(|a| self.opened.elapsed() >= a))
    }

    /// Renames the file to `FILE.1` (the older ones up by one, the oldest
    /// beyond the kept count removed) and starts a new one.
    pub fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.keep;
        let numbered = |i: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(numbered(keep));
            for i in (1..keep).rev() {
                let from = numbered(i);
                if from.exists() {
                    std::fs::rename(&from, numbered(i + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.reopen()
    }

    /// Opens the path again (appending): after logrotate moved the file away.
    pub fn reopen(&mut self) -> io::Result<()> {
        let fresh = FileSink::open(&self.path, true, self.rotation)?;
        let _ = self.file.flush();
        *self = fresh;
        Ok(())
    }
}

/// A connection to a syslog receiver; reconnected after a failure.
pub struct SyslogSink {
    pub target: SyslogTarget,
    pub settings: SyslogSettings,
    conn: Option<Conn>,
}

enum Conn {
    Unix(UnixDatagram),
    Udp(UdpSocket),
    Tcp(TcpStream),
}

impl SyslogSink {
    /// Connects (a local socket that does not exist, a name that does not
    /// resolve or a TCP receiver that refuses are errors at once).
    pub fn connect(target: SyslogTarget, settings: SyslogSettings) -> io::Result<SyslogSink> {
        let mut s = SyslogSink {
            target,
            settings,
            conn: None,
        };
        s.conn = Some(s.open()?);
        Ok(s)
    }

    fn open(&self) -> io::Result<Conn> {
        let resolve = |(host, port): &(String, u16)| -> io::Result<SocketAddr> {
            (host.as_str(), *port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
                })
        };
        Ok(match &self.target {
            SyslogTarget::Unix(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                s.set_write_timeout(Some(SEND_TIMEOUT))?;
                Conn::Unix(s)
            }
            SyslogTarget::Udp(remote) => {
                let to = resolve(remote)?;
                let local: SocketAddr = if to.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let s = UdpSocket::bind(local)?;
                s.connect(to)?;
                s.set_write_timeout(Some(SEND_TIMEOUT))?;
                Conn::Udp(s)
            }
            SyslogTarget::Tcp(remote) => {
                let s = TcpStream::connect_timeout(&resolve(remote)?, SEND_TIMEOUT)?;
                s.set_write_timeout(Some(SEND_TIMEOUT))?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
        })
    }

    /// Drops the connection: the next send makes a new one.
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Sends one message whole; after a failure the connection is dropped
    /// (the next send makes a new one).
    pub fn send(&mut self, message: &[u8]) -> io::Result<()> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(self.open()?),
        };
        let sent = match conn {
            Conn::Unix(s) => s.send(message).map(|_| ()),
            Conn::Udp(s) => s.send(message).map(|_| ()),
            Conn::Tcp(s) => s.write_all(message),
        };
        if sent.is_err() {
            self.conn = None;
        }
        sent
    }
}

/// An opened destination.
pub enum Sink {
    /// Standard output, a pipe, a test's writer: bytes as they come.
    Stream(Box<dyn Write + Send>),
    File(FileSink),
    Syslog(SyslogSink),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::HandshakeSummary;

    #[test]
    fn destinations_parse() {
        assert_eq!(Destination::parse("-"), Ok(Destination::Stdout));
        assert_eq!(
            Destination::parse("/var/log/x.ndjson"),
            Ok(Destination::File("/var/log/x.ndjson".into()))
        );
        assert_eq!(
            Destination::parse("syslog"),
            Ok(Destination::Syslog(SyslogTarget::Unix("/dev/log".into())))
        );
        assert_eq!(
            Destination::parse("syslog:udp:[2001:db8::1]:514"),
            Ok(Destination::Syslog(SyslogTarget::Udp((
                "2001:db8::1".into(),
                514
            ))))
        );
        assert_eq!(
            Destination::parse("syslog:tcp:logs.example:6514"),
            Ok(Destination::Syslog(SyslogTarget::Tcp((
                "logs.example".into(),
                6514
            ))))
        );
        for bad in [
            "syslog:tcp:host",
            "syslog:udp::514",
            "syslog:tcp:h:99999",
            "syslog:x:y",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn syslog_messages() {
        let mut flow = HandshakeSummary::hello_for_test([10, 0, 0, 1], [10, 0, 0, 2], 0x0301, None);
        flow.ts_ns = 1_798_761_600_004_111_999;
        let mut ev = FlowEvent::of_flow_for_test(flow);
        ev.legacy = true;
        let s = |format| SyslogSettings {
            format,
            facility: 16,
            hostname: "sensor1".into(),
        };
        let pid = std::process::id();
        let mut out = Vec::new();
        let udp = SyslogTarget::Udp(("h".into(), 514));
        s(SyslogFormat::Rfc5424).message(&ev, b"{\"a\":1}\n", &udp, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "<132>1 2027-01-01T00:00:00.004111Z sensor1 tlscensus {pid} flow - {{\"a\":1}}"
            )
        );
        let mut out = Vec::new();
        ev.legacy = false;
        let tcp = SyslogTarget::Tcp(("h".into(), 514));
        s(SyslogFormat::Rfc3164).message(&ev, b"{\"a\":1}\n", &tcp, &mut out);
        let text = String::from_utf8(out).unwrap();
        let body = format!("<134>Jan  1 00:00:00 sensor1 tlscensus[{pid}]: {{\"a\":1}}");
        assert_eq!(text, format!("{} {body}", body.len()));
        let mut out = Vec::new();
        let local = SyslogTarget::Unix("/dev/log".into());
        s(SyslogFormat::Rfc3164).message(&ev, b"x\n", &local, &mut out);
        assert_eq!(
            out,
            format!("<134>Jan  1 00:00:00 tlscensus[{pid}]: x").as_bytes()
        );
    }

    #[test]
    fn files_rotate_keeping_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ev.log");
        let rotation = Rotation {
            max_bytes: Some(10),
            max_age: None,
            keep: 2,
        };
        let mut f = FileSink::open(&path, false, rotation).unwrap();
        for i in 0..4 {
            f.write(format!("line {i} ....\n").as_bytes()).unwrap();
            assert!(f.due());
            f.rotate().unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), "");
        assert_eq!(read(&dir.path().join("ev.log.1")), "line 3 ....\n");
        assert_eq!(read(&dir.path().join("ev.log.2")), "line 2 ....\n");
        assert!(!dir.path().join("ev.log.3").exists());
    }
}
