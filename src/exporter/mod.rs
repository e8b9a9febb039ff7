//! The HTTP exporter of live mode: `/metrics` (Prometheus text format) and
//! `/healthz`, over HTTP or HTTPS, with optional basic authentication
//! (`--web.config.file`, see [`web_config`]).
//!
//! Input: a bound listener, the page renderer and the health state. Output:
//! one HTTP/1.x response per connection. Invariants:
//! - Scrapes never block the capture thread or the workers, and cost them
//!   little however many come: the page is rendered by one scrape at a time
//!   and shared (one copy in memory) by every scrape within [`PAGE_FRESH`].
//! - Every connection has its own thread, a [`HEAD_DEADLINE`] for the TLS
//!   handshake and request head, a [`WRITE_DEADLINE`] for the answer, and a
//!   size cap on the request.
//! - At most [`MAX_CONNECTIONS`] connections, [`MAX_PER_PEER`] from one
//!   address. A new connection beyond either cap evicts the oldest one still
//!   in its request head (else the oldest), never one whose whole request
//!   head already waits in its socket: slow or idle clients cannot keep
//!   Prometheus out, even from its own address, because a real scrape sends
//!   its request at once and is done in milliseconds, and a burst of new
//!   connections cannot cut off a real request whose thread has not run yet.
//! - Password checks (bcrypt, tens of milliseconds each) run one at a time
//!   and at most [`BCRYPT_PER_SECOND`] a second; credentials that passed are
//!   remembered (a keyed hash, [`AUTH_CACHE`] entries), so a scraper costs
//!   one check, and wrong passwords cannot take a core from the census.

mod http;
pub mod web_config;

pub use http::{HttpError, MAX_REQUEST, Request, find_head_end, parse_request};

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::cli::{By, Format};
use crate::error::SetupError;
use crate::metrics::{LiveMetrics, Metrics};
use web_config::WebConfig;

/// Longest a client may take for the TLS handshake and its request head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// Longest a client may take to read the answer.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections served at once, in total and from one address.
pub const MAX_CONNECTIONS: usize = 64;
pub const MAX_PER_PEER: usize = 8;
/// A rendered page serves every scrape that starts within this time.
pub const PAGE_FRESH: Duration = Duration::from_secs(1);
/// Password checks allowed per second (all clients together).
pub const BCRYPT_PER_SECOND: u32 = 4;
/// Credentials remembered after they passed.
pub const AUTH_CACHE: usize = 16;

pub use crate::metrics::HTTP_RESULTS as RESULTS;

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

/// Renders the registry with the uptime refreshed.
pub fn render_metrics(m: &Metrics, live: &LiveMetrics, started: Instant) -> String {
    live.uptime.set(started.elapsed().as_secs() as i64);
    m.render()
}

/// A page (metrics, an inventory view), rendered by one request at a time
/// and shared by the requests of the next [`PAGE_FRESH`]. A page larger
/// than [`KEEP_BYTES`] is held only while some response still sends it, so
/// a large inventory view does not stay in memory between requests.
pub struct Page {
    render: Box<dyn Fn() -> Option<Vec<u8>> + Send + Sync>,
    state: Mutex<PageState>,
    done: Condvar,
}

/// Pages up to this size stay cached between requests.
pub const KEEP_BYTES: usize = 8 << 20;

enum Cached {
    Kept(Arc<[u8]>),
    Sending(std::sync::Weak<[u8]>),
    /// Over its cap: refused.
    Refused,
}

#[derive(Default)]
struct PageState {
    cached: Option<(Instant, Cached)>,
    rendering: bool,
}

impl Page {
    pub fn new(render: Box<dyn Fn() -> Option<Vec<u8>> + Send + Sync>) -> Page {
        Page {
            render,
            state: Mutex::new(PageState::default()),
            done: Condvar::new(),
        }
    }

    /// A page that is always rendered whole (`/metrics`).
    pub fn always(render: Box<dyn Fn() -> String + Send + Sync>) -> Page {
        Page::new(Box::new(move || Some(render().into_bytes())))
    }

    /// The page as of at most [`PAGE_FRESH`] ago; renders it if older,
    /// unless another request is rendering it already (then waits for
    /// that). `None`: the page is over its cap.
    pub fn get(&self) -> Option<Arc<[u8]>> {
        let mut st = crate::sync::lock(&self.state);
        loop {
            if let Some((at, cached)) = &st.cached
                && at.elapsed() < PAGE_FRESH
            {
                match cached {
                    Cached::Kept(page) => return Some(Arc::clone(page)),
                    Cached::Sending(weak) => {
                        if let Some(page) = weak.upgrade() {
                            return Some(page);
                        }
                    }
                    Cached::Refused => return None,
                }
            }
            if !st.rendering {
                break;
            }
            st = crate::sync::wait(&self.done, st);
        }
        st.rendering = true;
        // The old page goes before the new one is made: never both.
        st.cached = None;
        drop(st);
        let page: Option<Arc<[u8]>> = (self.render)().map(Arc::from);
        let mut st = crate::sync::lock(&self.state);
        st.rendering = false;
        let cached = match &page {
            Some(p) if p.len() <= KEEP_BYTES => Cached::Kept(Arc::clone(p)),
            Some(p) => Cached::Sending(Arc::downgrade(p)),
            None => Cached::Refused,
        };
        st.cached = Some((Instant::now(), cached));
        self.done.notify_all();
        page
    }
}

/// Basic authentication: the users and what has passed.
struct Auth {
    users: std::collections::HashMap<String, String>,
    /// Keyed hashes of `user:password` strings that passed, newest last.
    passed: Mutex<VecDeque<u64>>,
    hasher: ahash::RandomState,
    /// One bcrypt at a time, and when the last ones ran.
    checks: Mutex<VecDeque<Instant>>,
}

impl Auth {
    fn new(users: std::collections::HashMap<String, String>) -> Auth {
        Auth {
            users,
            passed: Mutex::new(VecDeque::new()),
            hasher: ahash::RandomState::new(),
            checks: Mutex::new(VecDeque::new()),
        }
    }

    /// True when the request may be served.
    fn allows(&self, authorization: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(b64) = authorization.and_then(|a| {
            let (scheme, rest) = a.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        }) else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let Some((user, password)) = std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| s.split_once(':'))
        else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key = self.hasher.hash_one(&raw[..]);
        if self.lock_passed().contains(&key) {
            return true;
        }
        {
            // One check at a time, at most BCRYPT_PER_SECOND a second.
            let mut checks = crate::sync::lock(&self.checks);
            let now = Instant::now();
            while checks
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                checks.pop_front();
            }
            if checks.len() >= BCRYPT_PER_SECOND as usize {
                return false;
            }
            checks.push_back(now);
            if !bcrypt::verify(password, hash).unwrap_or(false) {
                return false;
            }
        }
        let mut passed = self.lock_passed();
        passed.push_back(key);
        if passed.len() > AUTH_CACHE {
            passed.pop_front();
        }
        true
    }

    fn lock_passed(&self) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
        crate::sync::lock(&self.passed)
    }
}

/// Everything a connection's thread needs.
struct Service {
    page: Page,
    /// `/inventory` in each grouping and format, each rendered at most once
    /// per [`PAGE_FRESH`] however many clients ask; empty: not served.
    views: Vec<(By, Format, Page)>,
    health: Arc<Health>,
    live: Arc<LiveMetrics>,
    /// What `--web.config.file` asks for now (replaced when its files change).
    web: std::sync::RwLock<Arc<Web>>,
    /// The web configuration's files and how they looked when last read.
    watch: Option<Mutex<Watch>>,
}

/// The served form of a [`WebConfig`].
struct Web {
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Auth,
    headers: Vec<String>,
}

impl Web {
    fn from_config(web: WebConfig) -> Web {
        Web {
            tls: web.tls,
            auth: Auth::new(web.users),
            headers: web.headers,
        }
    }
}

struct Watch {
    path: std::path::PathBuf,
    files: Vec<std::path::PathBuf>,
    stamp: Vec<Option<(std::time::SystemTime, u64)>>,
    checked: Instant,
}

/// How often the web configuration's files are looked at.
pub const WEB_CONFIG_CHECK: Duration = Duration::from_secs(1);

impl Service {
    fn web(&self) -> Arc<Web> {
        Arc::clone(&crate::sync::read(&self.web))
    }

    /// Re-reads the web configuration when it or a file it names changed
    /// (certificate rotation); a broken new version is said and the running
    /// one kept.
    fn refresh_web(&self) {
        let Some(watch) = &self.watch else {
            return;
        };
        let mut w = crate::sync::lock(watch);
        if w.checked.elapsed() < WEB_CONFIG_CHECK {
            return;
        }
        w.checked = Instant::now();
        let now = web_config::stamp(&w.files);
        if now == w.stamp {
            return;
        }
        w.stamp = now;
        match web_config::load(&w.path) {
            Ok(cfg) => {
                w.files = cfg.files.clone();
                w.stamp = web_config::stamp(&w.files);
                *crate::sync::write(&self.web) = Arc::new(Web::from_config(cfg));
                eprintln!("tlscensus: {}: reloaded", w.path.display());
            }
            Err(e) => {
                eprintln!("tlscensus: error: {e}; still serving the previous configuration")
            }
        }
    }
}

impl Exporter {
    /// Starts the accept loop. `web`: HTTPS, users and headers from
    /// `--web.config.file`; `None` serves plain HTTP to anyone.
    pub fn start(
        listener: TcpListener,
        render: Box<dyn Fn() -> String + Send + Sync>,
        inventory: Option<InventoryRender>,
        live: Arc<LiveMetrics>,
        health: Arc<Health>,
        web: Option<WebConfig>,
    ) -> Result<Exporter, SetupError> {
        let local_addr = listener.local_addr().map_err(|source| SetupError::Listen {
            addr: "listener".into(),
            source,
        })?;
        let watch = web.as_ref().and_then(|w| {
            let path = w.files.first()?.clone();
            Some(Mutex::new(Watch {
                path,
                files: w.files.clone(),
                stamp: web_config::stamp(&w.files),
                checked: Instant::now(),
            }))
        });
        let web = web.unwrap_or(WebConfig {
            tls: None,
            users: Default::default(),
            headers: Vec::new(),
            ignored: Vec::new(),
            files: Vec::new(),
        });
        let views = match inventory {
            None => Vec::new(),
            Some(f) => [By::Host, By::Fingerprint, By::Destination]
                .into_iter()
                .flat_map(|by| [Format::Json, Format::Csv, Format::Table].map(|fmt| (by, fmt)))
                .map(|(by, fmt)| {
                    let f = Arc::clone(&f);
                    (by, fmt, Page::new(Box::new(move || f(by, fmt))))
                })
                .collect(),
        };
        let service = Arc::new(Service {
            page: Page::always(render),
            views,
            health,
            live,
            web: std::sync::RwLock::new(Arc::new(Web::from_config(web))),
            watch,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("exporter".into())
            .spawn(move || accept_loop(listener, service, stop2))
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

/// A connection's phase, for choosing whom to evict.
const PHASE_HEAD: u8 = 0;
const PHASE_ANSWER: u8 = 1;

/// One admitted connection.
struct Slot {
    id: u64,
    peer: IpAddr,
    since: Instant,
    phase: Arc<AtomicU8>,
    /// A handle on the socket, to shut it down when evicted.
    socket: TcpStream,
}

#[derive(Default)]
struct Slots {
    open: Vec<Slot>,
    next_id: u64,
}

impl Slots {
    /// Makes room for a connection from `peer`: if a cap is reached, evicts
    /// the oldest connection (of that peer when the peer's cap is the one
    /// reached), those still in their request head first; a connection whose
    /// whole request head already waits in its socket (a real client whose
    /// thread has not run yet) is never chosen. `Some(evicted)` when there is
    /// room, `None` when no connection may be evicted (the newcomer is refused).
    fn make_room(&mut self, peer: IpAddr) -> Option<u64> {
        let mut evicted = 0;
        loop {
            let mine = self.open.iter().filter(|s| s.peer == peer).count();
            let over_peer = mine >= MAX_PER_PEER;
            if !over_peer && self.open.len() < MAX_CONNECTIONS {
                return Some(evicted);
            }
            let victim = self
                .open
                .iter()
                .enumerate()
                .filter(|(_, s)| !over_peer || s.peer == peer)
                .filter(|(_, s)| {
                    s.phase.load(Ordering::Relaxed) != PHASE_HEAD || !head_waiting(&s.socket)
                })
                .min_by_key(|(_, s)| (s.phase.load(Ordering::Relaxed) != PHASE_HEAD, s.since))
                .map(|(i, _)| i);
            let i = victim?;
            let s = self.open.swap_remove(i);
            let _ = s.socket.shutdown(Shutdown::Both);
            evicted += 1;
        }
    }

    fn release(&mut self, id: u64) {
        if let Some(i) = self.open.iter().position(|s| s.id == id) {
            self.open.swap_remove(i);
        }
    }
}

/// True when a whole plain-HTTP request head waits unread in the socket
/// (peeked without blocking and without disturbing the reader).
fn head_waiting(socket: &TcpStream) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 2048];
    match recv(
        socket.as_raw_fd(),
        &mut buf,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(n) => find_head_end(&buf[..n]).is_some(),
        Err(_) => false,
    }
}

fn accept_loop(listener: TcpListener, service: Arc<Service>, stop: Arc<AtomicBool>) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Sleep until a connection comes, or 100 ms to see the stop:
                // a busy sensor should not wake for nothing 100 times a second.
                use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                use std::os::fd::AsFd;
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                if poll(&mut fds, PollTimeout::from(100u8)).is_err() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            Err(_) => {
                // EMFILE and the like: back off instead of spinning.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        service.refresh_web();
        let Ok(socket) = stream.try_clone() else {
            service.live.scrapes.with_label_values(&["rejected"]).inc();
            continue;
        };
        let phase = Arc::new(AtomicU8::new(PHASE_HEAD));
        let id = {
            let mut s = crate::sync::lock(&slots);
            let Some(evicted) = s.make_room(peer.ip()) else {
                drop(s);
                service.live.scrapes.with_label_values(&["rejected"]).inc();
                continue;
            };
            if evicted > 0 {
                service
                    .live
                    .scrapes
                    .with_label_values(&["evicted"])
                    .inc_by(evicted);
            }
            let id = s.next_id;
            s.next_id += 1;
            s.open.push(Slot {
                id,
                peer: peer.ip(),
                since: Instant::now(),
                phase: Arc::clone(&phase),
                socket,
            });
            id
        };
        let (service2, held) = (Arc::clone(&service), Arc::clone(&slots));
        let spawned = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                let result = serve(stream, &service2, &phase);
                // An evicted connection was counted when it was evicted.
                let mut s = crate::sync::lock(&held);
                if s.open.iter().any(|slot| slot.id == id) {
                    s.release(id);
                    drop(s);
                    service2.live.scrapes.with_label_values(&[result]).inc();
                }
            });
        if spawned.is_err() {
            crate::sync::lock(&slots).release(id);
            service.live.scrapes.with_label_values(&["rejected"]).inc();
        }
    }
}

/// A connection, in clear or in TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn socket(&self) -> &TcpStream {
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
fn serve(stream: TcpStream, svc: &Service, phase: &AtomicU8) -> &'static str {
    if stream.set_nonblocking(false).is_err() {
        return "bad_request";
    }
    let web = svc.web();
    let mut conn = match &web.tls {
        None => Conn::Plain(stream),
        Some(cfg) => match rustls::ServerConnection::new(Arc::clone(cfg)) {
            Ok(c) => Conn::Tls(Box::new(rustls::StreamOwned::new(c, stream))),
            Err(_) => return "bad_request",
        },
    };
    let head_deadline = Instant::now() + HEAD_DEADLINE;
    let head = match read_head(&mut conn, head_deadline) {
        Ok(h) => h,
        Err(label) => {
            if label == "bad_request" {
                let _ = respond(&mut conn, &web, 400, "text/plain", b"bad request\n", false);
            }
            return label;
        }
    };
    phase.store(PHASE_ANSWER, Ordering::Relaxed);
    let req = match parse_request(&head) {
        Ok(r) => r,
        Err(_) => {
            let _ = respond(&mut conn, &web, 400, "text/plain", b"bad request\n", false);
            return "bad_request";
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
        return "bad_request";
    }
    if !web.auth.allows(req.authorization) {
        let _ = respond(&mut conn, &web, 401, "text/plain", b"unauthorized\n", false);
        return "unauthorized";
    }
    let (status, ctype, body, label): (u16, &str, Arc<[u8]>, &'static str) = match req.path {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            svc.page.get().unwrap_or_else(|| Arc::from(&b""[..])),
            "ok",
        ),
        "/healthz" => {
            let (status, text) = health_text(&svc.health);
            (status, "text/plain", Arc::from(text.into_bytes()), "ok")
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
                    Some(body) => (200, ctype, body, "ok"),
                    None => (
                        503,
                        "text/plain",
                        Arc::from(&b"this /inventory view is larger than --max-inventory-mib allows: ask for format=csv (the smallest) or by=destination, raise --max-inventory-mib, or read the whole census from the --state file\n"[..]),
                        "too_large",
                    ),
                }
            }
            None => (
                400,
                "text/plain",
                Arc::from(&b"bad request: /inventory?by=host|fingerprint|destination&format=json|csv|table\n"[..]),
                "bad_request",
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
            "ok",
        ),
        _ => (404, "text/plain", Arc::from(&b"not found\n"[..]), "not_found"),
    };
    match respond(&mut conn, &web, status, ctype, &body, head_only) {
        Ok(()) => label,
        Err(_) => "timeout",
    }
}

/// Renders the inventory in a grouping and format (`/inventory`).
/// Renders an `/inventory` view; `None`: larger than the page cap.
pub type InventoryRender = Arc<dyn Fn(By, Format) -> Option<Vec<u8>> + Send + Sync>;

/// `by=host|fingerprint` and `format=json|csv|table` of an `/inventory`
/// query (defaults: host, json); `None` for anything else.
fn inventory_view(query: &str) -> Option<(By, Format)> {
    let (mut by, mut format) = (By::Host, Format::Json);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=')? {
            ("by", "host") => by = By::Host,
            ("by", "fingerprint") => by = By::Fingerprint,
            ("by", "destination") => by = By::Destination,
            ("format", "json") => format = Format::Json,
            ("format", "csv") => format = Format::Csv,
            ("format", "table") => format = Format::Table,
            _ => return None,
        }
    }
    Some((by, format))
}

/// `/healthz`: capturing, interfaces, event log.
fn health_text(health: &Health) -> (u16, String) {
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

/// Reads up to the end of the request head, within the deadline and size cap.
fn read_head(conn: &mut Conn, deadline: Instant) -> Result<Vec<u8>, &'static str> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || conn.socket().set_read_timeout(Some(left)).is_err() {
            return Err("timeout");
        }
        match conn.read(&mut chunk) {
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
            // A failed TLS handshake, a reset, an eviction.
            Err(_) => return Err("bad_request"),
        }
        if let Some(end) = find_head_end(&buf) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST {
            return Err("bad_request");
        }
    }
}

fn respond(
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

#[cfg(test)]
mod tests {
    #[test]
    fn inventory_queries() {
        assert_eq!(inventory_view(""), Some((By::Host, Format::Json)));
        assert_eq!(
            inventory_view("by=fingerprint&format=csv"),
            Some((By::Fingerprint, Format::Csv))
        );
        assert_eq!(
            inventory_view("format=table&"),
            Some((By::Host, Format::Table))
        );
        for bad in [
            "by=dest",
            "format=xml",
            "by",
            "x=1",
            "by=host&format=json&by=%00",
        ] {
            assert_eq!(inventory_view(bad), None, "{bad}");
        }
    }

    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn start_with(web: Option<WebConfig>) -> (Exporter, Arc<Health>) {
        let m = Arc::new(Metrics::new(10, None).unwrap());
        let live = Arc::new(LiveMetrics::new(&m, &["eth9".to_string()], 1).unwrap());
        let health = Arc::new(Health::default());
        health.capturing.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let (m2, l2) = (Arc::clone(&m), Arc::clone(&live));
        let render: Box<dyn Fn() -> String + Send + Sync> =
            Box::new(move || render_metrics(&m2, &l2, started));
        let listener = bind("127.0.0.1:0").unwrap();
        (
            Exporter::start(listener, render, None, live, Arc::clone(&health), web).unwrap(),
            health,
        )
    }

    fn start() -> (Exporter, Arc<Health>) {
        start_with(None)
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
        let r = get(e.local_addr, b"GET metrics\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        let r = get(e.local_addr, b"HEAD /metrics HTTP/1.0\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        e.stop();
    }

    /// regression_12: slow or idle connections from the scraper's own
    /// address, as many as the caps allow and more, cannot keep a scrape out.
    #[test]
    fn exporter_slow_clients_cannot_deny_scrapes() {
        let (e, _) = start();
        let mut slow: Vec<TcpStream> = (0..MAX_PER_PEER * 3)
            .map(|_| TcpStream::connect(e.local_addr).unwrap())
            .collect();
        for s in &mut slow {
            let _ = s.write_all(b"GET /met");
        }
        std::thread::sleep(Duration::from_millis(100));
        for _ in 0..5 {
            let t = Instant::now();
            let r = get(e.local_addr, b"GET /metrics HTTP/1.1\r\n\r\n");
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
            assert!(
                t.elapsed() < HEAD_DEADLINE,
                "served while slow clients wait"
            );
        }
        let r = get(e.local_addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(
            r.contains("tlscensus_http_requests_total{result=\"evicted\"}"),
            "{r}"
        );
        drop(slow);
        e.stop();
    }

    /// The eviction order: over the total cap, connections still in their
    /// head go first, oldest first; over a peer's cap, only that peer's.
    #[test]
    fn exporter_eviction_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t0 = Instant::now();
        // A slot (its socket is one end of a connection) and the other end.
        let slot = |id: u64, peer: u8, phase: u8| {
            let c = TcpStream::connect(addr).unwrap();
            let other = listener.accept().unwrap().0;
            let s = Slot {
                id,
                peer: IpAddr::from([10, 0, 0, peer]),
                since: t0 + Duration::from_millis(id),
                phase: Arc::new(AtomicU8::new(phase)),
                socket: c,
            };
            (s, other)
        };
        let mut keep = Vec::new();
        let mut slots = Slots::default();
        for i in 0..MAX_CONNECTIONS as u64 {
            let phase = if i == 3 || i == 5 {
                PHASE_HEAD
            } else {
                PHASE_ANSWER
            };
            let (s, other) = slot(i, (i / 7) as u8, phase);
            slots.open.push(s);
            keep.push(other);
        }
        // Id 3 is in its head too, but its whole request waits unread.
        keep[3].write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(slots.make_room(IpAddr::from([10, 9, 9, 9])), Some(1));
        assert!(!slots.open.iter().any(|s| s.id == 5), "the one in its head");
        let (s, other) = slot(100, 99, PHASE_ANSWER);
        slots.open.push(s);
        keep.push(other);
        assert_eq!(slots.make_room(IpAddr::from([10, 9, 9, 9])), Some(1));
        assert!(!slots.open.iter().any(|s| s.id == 0), "then the oldest");
        assert!(
            slots.open.iter().any(|s| s.id == 3),
            "a waiting request stays"
        );

        let mut slots = Slots::default();
        for i in 0..3 {
            let (s, other) = slot(i, 2, PHASE_HEAD);
            slots.open.push(s);
            keep.push(other);
        }
        for i in 3..3 + MAX_PER_PEER as u64 {
            let (s, other) = slot(i, 1, PHASE_ANSWER);
            slots.open.push(s);
            keep.push(other);
        }
        assert_eq!(slots.make_room(IpAddr::from([10, 0, 0, 1])), Some(1));
        assert!(
            !slots.open.iter().any(|s| s.id == 3),
            "the peer's own oldest"
        );
        let peer2 = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(slots.open.iter().filter(|s| s.peer == peer2).count(), 3);
    }

    /// regression_12: concurrent scrapes share one rendering and one copy.
    #[test]
    fn exporter_page_rendered_once_for_concurrent_scrapes() {
        let renders = Arc::new(AtomicUsize::new(0));
        let r2 = Arc::clone(&renders);
        let page = Arc::new(Page::always(Box::new(move || {
            r2.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
            "x".repeat(1 << 20)
        })));
        let pages: Vec<Option<Arc<[u8]>>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..16)
                .map(|_| {
                    let p = Arc::clone(&page);
                    s.spawn(move || p.get())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(renders.load(Ordering::Relaxed), 1);
        let first = pages[0].clone().unwrap();
        assert!(
            pages
                .iter()
                .all(|p| p.as_ref().is_some_and(|p| Arc::ptr_eq(p, &first)))
        );
        std::thread::sleep(PAGE_FRESH);
        page.get();
        assert_eq!(renders.load(Ordering::Relaxed), 2);
    }

    /// A refused page is refused again without rendering until it is
    /// stale; a page over KEEP_BYTES is shared while held, then let go.
    #[test]
    fn exporter_large_and_refused_pages() {
        let renders = Arc::new(AtomicUsize::new(0));
        let r2 = Arc::clone(&renders);
        let refused = Page::new(Box::new(move || {
            r2.fetch_add(1, Ordering::Relaxed);
            None
        }));
        assert!(refused.get().is_none() && refused.get().is_none());
        assert_eq!(renders.load(Ordering::Relaxed), 1);

        let renders = Arc::new(AtomicUsize::new(0));
        let r2 = Arc::clone(&renders);
        let large = Page::new(Box::new(move || {
            r2.fetch_add(1, Ordering::Relaxed);
            Some(vec![b'x'; KEEP_BYTES + 1])
        }));
        let held = large.get().unwrap();
        let again = large.get().unwrap();
        assert!(Arc::ptr_eq(&held, &again), "shared while held");
        assert_eq!(renders.load(Ordering::Relaxed), 1);
        drop((held, again));
        assert!(large.get().is_some());
        assert_eq!(renders.load(Ordering::Relaxed), 2, "not kept once let go");
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

    fn basic(user: &str, password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    }

    /// Basic authentication: the right password passes (and is remembered),
    /// anything else is 401; checks are limited per second.
    #[test]
    fn exporter_basic_auth() {
        let users = [("prom".to_string(), bcrypt::hash("s3cret", 4).unwrap())]
            .into_iter()
            .collect();
        let web = WebConfig {
            tls: None,
            users,
            headers: vec!["X-Test: 1".into()],
            ignored: Vec::new(),
            files: Vec::new(),
        };
        let (e, _) = start_with(Some(web));
        let req = |auth: Option<String>| {
            let h = auth.map_or(String::new(), |a| format!("Authorization: Basic {a}\r\n"));
            get(
                e.local_addr,
                format!("GET /metrics HTTP/1.1\r\n{h}\r\n").as_bytes(),
            )
        };
        let r = req(None);
        assert!(
            r.starts_with("HTTP/1.1 401") && r.contains("WWW-Authenticate: Basic"),
            "{r}"
        );
        assert!(req(Some(basic("prom", "wrong"))).starts_with("HTTP/1.1 401"));
        assert!(req(Some(basic("nobody", "s3cret"))).starts_with("HTTP/1.1 401"));
        assert!(req(Some("%%%".into())).starts_with("HTTP/1.1 401"));
        let r = req(Some(basic("prom", "s3cret")));
        assert!(
            r.starts_with("HTTP/1.1 200") && r.contains("X-Test: 1"),
            "{r}"
        );
        // Many wrong passwords: at most BCRYPT_PER_SECOND checks a second,
        // and the remembered right one still passes at once.
        for i in 0..20 {
            req(Some(basic("prom", &format!("guess{i}"))));
        }
        let t = Instant::now();
        assert!(req(Some(basic("prom", "s3cret"))).starts_with("HTTP/1.1 200"));
        assert!(t.elapsed() < Duration::from_millis(500));
        e.stop();
    }

    /// The web configuration is re-read when its file changes (a broken
    /// version is refused and the running one kept).
    #[test]
    fn exporter_web_config_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        let write = |user: &str| {
            let hash = bcrypt::hash("pw", 4).unwrap();
            std::fs::write(&path, format!("basic_auth_users:\n  {user}: '{hash}'\n")).unwrap();
        };
        write("alice");
        let (e, _) = start_with(Some(web_config::load(&path).unwrap()));
        let req = |user: &str| {
            let auth = basic(user, "pw");
            get(
                e.local_addr,
                format!("GET /metrics HTTP/1.1\r\nAuthorization: Basic {auth}\r\n\r\n").as_bytes(),
            )
        };
        assert!(req("alice").starts_with("HTTP/1.1 200"));
        std::thread::sleep(WEB_CONFIG_CHECK + Duration::from_millis(100));
        write("bobby");
        std::thread::sleep(WEB_CONFIG_CHECK + Duration::from_millis(100));
        assert!(req("alice").starts_with("HTTP/1.1 401"));
        assert!(req("bobby").starts_with("HTTP/1.1 200"));
        std::fs::write(&path, "basic_auth_users: [broken\n").unwrap();
        std::thread::sleep(WEB_CONFIG_CHECK + Duration::from_millis(100));
        assert!(
            req("bobby").starts_with("HTTP/1.1 200"),
            "the previous one still serves"
        );
        e.stop();
    }
}
