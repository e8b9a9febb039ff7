//! One connection: the TLS handshake, the request head within its
//! deadline, and the answer.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use super::*;

/// A connection, in clear or in TLS.
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    pub(super) fn socket(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// Serves one request; returns the result label.
pub(super) fn serve(stream: TcpStream, svc: &Service, phase: &AtomicU8) -> HttpResult {
    if stream.set_nonblocking(false).is_err() {
        return HttpResult::BadRequest;
    }
    let web = svc.web();
    let mut conn = match &web.tls {
        None => Conn::Plain(stream),
        Some(cfg) => match rustls::ServerConnection::new(Arc::clone(cfg)) {
            Ok(c) => Conn::Tls(Box::new(rustls::StreamOwned::new(c, stream))),
            Err(_) => return HttpResult::BadRequest,
        },
    };
    let head_deadline = Instant::now() + HEAD_DEADLINE;
    let head = match read_head(&mut conn, head_deadline, phase) {
        Ok(h) => h,
        Err(label) => {
            if label == HttpResult::BadRequest {
                let _ = respond(&mut conn, &web, 400, "text/plain", b"bad request\n", false);
            }
            return label;
        }
    };
    let req = match parse_request(&head) {
        Ok(r) => r,
        Err(_) => {
            let _ = respond(&mut conn, &web, 400, "text/plain", b"bad request\n", false);
            return HttpResult::BadRequest;
        }
    };
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        let _ = respond(
            &mut conn,
            &web,
            405,
            "text/plain",
            b"method not allowed\n",
            false,
        );
        return HttpResult::BadRequest;
    }
    if !web.auth.allows(req.authorization) {
        let _ = respond(&mut conn, &web, 401, "text/plain", b"unauthorized\n", false);
        return HttpResult::Unauthorized;
    }
    let (status, ctype, body, label): (u16, &str, Arc<[u8]>, HttpResult) = match req.path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            svc.page.get().unwrap_or_else(|| Arc::from(&b""[..])),
            HttpResult::Ok,
        ),
        "/healthz" => {
            let (status, text) = health_text(&svc.health);
            (status, "text/plain", Arc::from(text.into_bytes()), HttpResult::Ok)
        }
        "/inventory" if !svc.views.is_empty() => match inventory_view(req.query) {
            Some((by, format)) => {
                let page = svc.views.iter().find(|v| v.0 == by && v.1 == format);
                let ctype = match format {
                    Format::Json => "application/json",
                    Format::Csv => "text/csv; charset=utf-8",
                    Format::Table => "text/plain; charset=utf-8",
                };
                match page.and_then(|v| v.2.get()) {
                    Some(body) => (200, ctype, body, HttpResult::Ok),
                    None => (
                        503,
                        "text/plain",
                        Arc::from(&b"this /inventory view is larger than --max-inventory-mib allows: ask for format=csv (the smallest) or by=destination, raise --max-inventory-mib, or read the whole census from the --state file\n"[..]),
                        HttpResult::TooLarge,
                    ),
                }
            }
            None => (
                400,
                "text/plain",
                Arc::from(&b"bad request: /inventory?by=host|fingerprint|destination|policy&format=json|csv|table\n"[..]),
                HttpResult::BadRequest,
            ),
        },
        "/" => (
            200,
            "text/html; charset=utf-8",
            Arc::from(
                &b"<html><head><title>tlscensus</title></head><body><h1>tlscensus</h1>\
<p><a href=\"/metrics\">/metrics</a> &middot; <a href=\"/healthz\">/healthz</a> &middot; \
<a href=\"/inventory?format=table\">/inventory</a> &middot; \
<a href=\"/inventory?by=fingerprint&amp;format=table\">/inventory?by=fingerprint</a></p></body></html>\n"[..],
            ),
            HttpResult::Ok,
        ),
        _ => (404, "text/plain", Arc::from(&b"not found\n"[..]), HttpResult::NotFound),
    };
    match respond(&mut conn, &web, status, ctype, &body, head_only) {
        Ok(()) => label,
        Err(_) => HttpResult::Timeout,
    }
}

/// Renders the inventory in a grouping and format (`/inventory`).
/// Renders an `/inventory` view; `None`: larger than the page cap.
pub type InventoryRender = Arc<dyn Fn(By, Format) -> Option<Vec<u8>> + Send + Sync>;

/// `by=host|fingerprint|destination|policy` and `format=json|csv|table` of an `/inventory`
/// query (defaults: host, json); `None` for anything else.
pub(super) fn inventory_view(query: &str) -> Option<(By, Format)> {
    let (mut by, mut format) = (By::Host, Format::Json);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=')? {
            ("by", "host") => by = By::Host,
            ("by", "fingerprint") => by = By::Fingerprint,
            ("by", "destination") => by = By::Destination,
            ("by", "policy") => by = By::Policy,
            ("format", "json") => format = Format::Json,
            ("format", "csv") => format = Format::Csv,
            ("format", "table") => format = Format::Table,
            _ => return None,
        }
    }
    Some((by, format))
}

/// `/healthz`: capturing, interfaces, event log.
pub(super) fn health_text(health: &Health) -> (u16, String) {
    let down = health.down.lock().map(|d| d.clone()).unwrap_or_default();
    let events = health.events.as_ref().and_then(|e| e.problem());
    if !health.capturing.load(Ordering::Relaxed) {
        (503, "not capturing\n".into())
    } else if !down.is_empty() {
        (503, format!("interfaces down: {}\n", down.join("; ")))
    } else if let Some(problem) = events {
        (503, format!("{problem}\n"))
    } else {
        (200, "ok\n".into())
    }
}

/// Reads up to the end of the request head, within the deadline and size
/// cap; `phase` becomes [`PHASE_PARTIAL`] once some of it is read,
/// [`PHASE_ANSWER`] once all of it is.
pub(super) fn read_head(
    conn: &mut Conn,
    deadline: Instant,
    phase: &AtomicU8,
) -> Result<Vec<u8>, HttpResult> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.socket().set_read_timeout(Some(left)).is_err() {
            return Err(HttpResult::Timeout);
        }
        match conn.read(&mut chunk) {
            Ok(0) => return Err(HttpResult::BadRequest),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HttpResult::Timeout);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A failed TLS handshake, a reset, an eviction.
            Err(_) => return Err(HttpResult::BadRequest),
        }
        if let Some(end) = find_head_end(&buf) {
            // At once: the head is no longer in the socket to protect it.
            phase.store(PHASE_ANSWER, Ordering::Relaxed);
            buf.truncate(end);
            return Ok(buf);
        }
        phase.store(PHASE_PARTIAL, Ordering::Relaxed);
        if buf.len() > MAX_REQUEST {
            return Err(HttpResult::BadRequest);
        }
    }
}

pub(super) fn respond(
    conn: &mut Conn,
    web: &Web,
    status: u16,
    ctype: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let deadline = Instant::now() + WRITE_DEADLINE;
    let mut extra = web.headers.clone();
    if status == 401 {
        extra.push("WWW-Authenticate: Basic realm=\"tlscensus\"".into());
    }
    let head = http::response_head(status, ctype, body.len(), &extra);
    let body = if head_only { &[][..] } else { body };
    // Write in pieces so the deadline holds against a client that reads slowly.
    for piece in head.chunks(16 * 1024).chain(body.chunks(16 * 1024)) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        conn.socket().set_write_timeout(Some(left))?;
        conn.write_all(piece)?;
    }
    conn.flush()?;
    if let Conn::Tls(t) = conn {
        t.conn.send_close_notify();
        let _ = t.flush();
    }
    let _ = conn.socket().shutdown(Shutdown::Write);
    Ok(())
}
