//! The HTTP exporter of live mode: `/metrics` (Prometheus text format) and
//! `/healthz`.
//!
//! Input: a bound listener and the shared metrics. Output: HTTP/1.x responses,
//! one per connection. Invariants: scrapes only read atomics and the registry,
//! so they never block the capture thread or the workers; every connection gets
//! its own short-lived thread with a hard deadline and a size cap on the
//! request, and the number of connections is capped (in total and per peer), so
//! a slow or hostile client cannot stall the exporter for the others.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::SetupError;
use crate::metrics::{LiveMetrics, Metrics};

/// Longest a client may take to send its request and read the answer.
const DEADLINE: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_REQUEST: usize = 8192;
/// Connections served at once, in total and from one address.
const MAX_CONNECTIONS: usize = 64;
const MAX_PER_PEER: usize = 8;

/// What `/healthz` reports: set by the capture thread.
#[derive(Default)]
pub struct Health {
    /// Interfaces currently down, with the reason; empty when all are up.
    pub down: Mutex<Vec<String>>,
    pub capturing: AtomicBool,
    /// The event log's state, when there is one.
    pub events: Option<Arc<crate::events::EventHealth>>,
}

pub struct Exporter {
    pub local_addr: SocketAddr,
    handle: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

/// Binds the listen address (before privileges are dropped).
pub fn bind(addr: &str) -> Result<TcpListener, SetupError> {
    let err = |source| SetupError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(err)?;
    // Non-blocking accept, so the loop can notice shutdown.
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

impl Exporter {
    pub fn start(
        listener: TcpListener,
        metrics: Arc<dyn Fn() -> String + Send + Sync>,
        live: Arc<LiveMetrics>,
        health: Arc<Health>,
    ) -> Result<Exporter, SetupError> {
        let local_addr = listener.local_addr().map_err(|source| SetupError::Listen {
            addr: "listener".into(),
            source,
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("exporter".into())
            .spawn(move || accept_loop(listener, metrics, live, health, stop2))
            .map_err(SetupError::Thread)?;
        Ok(Exporter {
            local_addr,
            handle,
            stop,
        })
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// Renders the registry with the uptime refreshed.
pub fn render_metrics(m: &Metrics, live: &LiveMetrics, started: Instant) -> String {
    live.uptime.set(started.elapsed().as_secs() as i64);
    m.render()
}

struct Slots {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

fn accept_loop(
    listener: TcpListener,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
    live: Arc<LiveMetrics>,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) {
    let slots = Arc::new(Mutex::new(Slots {
        total: 0,
        per_peer: HashMap::new(),
    }));
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(_) => {
                // EMFILE and the like: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let admitted = {
            let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
            let mine = s.per_peer.get(&peer.ip()).copied().unwrap_or(0);
            if s.total >= MAX_CONNECTIONS || mine >= MAX_PER_PEER {
                false
            } else {
                s.total += 1;
                *s.per_peer.entry(peer.ip()).or_insert(0) += 1;
                true
            }
        };
        if !admitted {
            live.scrapes.with_label_values(&["rejected"]).inc();
            drop(stream);
            continue;
        }
        let (metrics, live, health, held) = (
            Arc::clone(&metrics),
            Arc::clone(&live),
            Arc::clone(&health),
            Arc::clone(&slots),
        );
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                let result = serve(stream, metrics.as_ref(), &health);
                live.scrapes.with_label_values(&[result]).inc();
                release(&held, peer.ip());
            });
        if spawned.is_err() {
            release(&slots, peer.ip());
        }
    }
}

fn release(slots: &Mutex<Slots>, ip: IpAddr) {
    let mut s = slots.lock().unwrap_or_else(|p| p.into_inner());
    s.total = s.total.saturating_sub(1);
    if let Some(n) = s.per_peer.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            s.per_peer.remove(&ip);
        }
    }
}

/// Serves one request; returns the result label.
fn serve(
    mut stream: TcpStream,
    metrics: &(dyn Fn() -> String + Send + Sync),
    health: &Health,
) -> &'static str {
    let deadline = Instant::now() + DEADLINE;
    if stream.set_nonblocking(false).is_err() {
        return "bad_request";
    }
    let head = match read_head(&mut stream, deadline) {
        Ok(h) => h,
        Err(label) => {
            if label == "bad_request" {
                let _ = respond(
                    &mut stream,
                    deadline,
                    400,
                    "text/plain",
                    b"bad request\n",
                    false,
                );
            }
            return label;
        }
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        let _ = respond(
            &mut stream,
            deadline,
            405,
            "text/plain",
            b"method not allowed\n",
            false,
        );
        return "bad_request";
    }
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body, label) = match path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics().into_bytes(),
            "ok",
        ),
        "/healthz" => {
            let down = health.down.lock().map(|d| d.clone()).unwrap_or_default();
            let events = health.events.as_ref().and_then(|e| e.problem());
            if !health.capturing.load(Ordering::Relaxed) {
                (503, "text/plain", b"not capturing\n".to_vec(), "ok")
            } else if !down.is_empty() {
                let text = format!("interfaces down: {}\n", down.join("; "));
                (503, "text/plain", text.into_bytes(), "ok")
            } else if let Some(problem) = events {
                (503, "text/plain", format!("{problem}\n").into_bytes(), "ok")
            } else {
                (200, "text/plain", b"ok\n".to_vec(), "ok")
            }
        }
        "/" => (
            200,
            "text/html; charset=utf-8",
            b"<html><head><title>tlscensus</title></head><body><h1>tlscensus</h1>\
<p><a href=\"/metrics\">/metrics</a> &middot; <a href=\"/healthz\">/healthz</a></p></body></html>\n"
                .to_vec(),
            "ok",
        ),
        _ => (404, "text/plain", b"not found\n".to_vec(), "not_found"),
    };
    match respond(&mut stream, deadline, status, ctype, &body, head_only) {
        Ok(()) => label,
        Err(_) => "timeout",
    }
}

/// Reads up to the end of the request head, within the deadline and size cap.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<String, &'static str> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err("timeout");
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err("bad_request"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("timeout");
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err("bad_request"),
        }
        if let Some(end) = find_head_end(&buf) {
            return String::from_utf8(buf[..end].to_vec()).map_err(|_| "bad_request");
        }
        if buf.len() > MAX_REQUEST {
            return Err("bad_request");
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

fn respond(
    stream: &mut TcpStream,
    deadline: Instant,
    status: u16,
    ctype: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    // Write in pieces so the deadline holds against a client that reads slowly.
    for piece in out.chunks(16 * 1024) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        stream.write_all(piece)?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> (Exporter, Arc<Health>) {
        let m = Arc::new(Metrics::new(10, None).unwrap());
        let live = Arc::new(LiveMetrics::new(&m, &["eth9".to_string()]).unwrap());
        let health = Arc::new(Health::default());
        health.capturing.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let (m2, l2) = (Arc::clone(&m), Arc::clone(&live));
        let render: Arc<dyn Fn() -> String + Send + Sync> =
            Arc::new(move || render_metrics(&m2, &l2, started));
        let listener = bind("127.0.0.1:0").unwrap();
        (
            Exporter::start(listener, render, live, Arc::clone(&health)).unwrap(),
            health,
        )
    }

    fn get(addr: SocketAddr, req: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn exporter_serves_metrics_and_health() {
        let (e, health) = start();
        let r = get(e.local_addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains("tlscensus_build_info{version="), "{r}");
        assert!(r.contains("tlscensus_interface_up{interface=\"eth9\"} 1"));
        let r = get(e.local_addr, b"GET /healthz HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("ok\n"), "{r}");
        health.down.lock().unwrap().push("eth9: went down".into());
        let r = get(e.local_addr, b"GET /healthz HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503") && r.contains("eth9"), "{r}");
        let r = get(e.local_addr, b"GET /nope HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = get(e.local_addr, b"POST /metrics HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        let r = get(e.local_addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        e.stop();
    }

    #[test]
    fn exporter_slow_client_does_not_block_others() {
        let (e, _) = start();
        // Idle connections that never send a request hold their own slots only.
        let idle: Vec<TcpStream> = (0..MAX_PER_PEER - 1)
            .map(|_| TcpStream::connect(e.local_addr).unwrap())
            .collect();
        let mut slow = TcpStream::connect(e.local_addr).unwrap();
        slow.write_all(b"GET /met").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        drop(idle);
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let r = get(e.local_addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(t.elapsed() < DEADLINE, "served while a slow client waits");
        drop(slow);
        e.stop();
    }

    #[test]
    fn exporter_oversized_request_rejected() {
        let (e, _) = start();
        let mut req = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', MAX_REQUEST + 10));
        let mut s = TcpStream::connect(e.local_addr).unwrap();
        let _ = s.write_all(&req);
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.is_empty() || out.starts_with("HTTP/1.1 400"), "{out}");
        e.stop();
    }
}
