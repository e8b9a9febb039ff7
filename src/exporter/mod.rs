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
//!   address. A new connection beyond either cap evicts the oldest one that
//!   sent part of its request head (read, or waiting unread in a plain-HTTP
//!   socket), else the oldest that sent nothing yet, else the oldest, never
//!   one whose whole request head already waits in its socket: slow or idle
//!   clients cannot keep Prometheus out, even from its own address and
//!   reconnecting as fast as they are cut off, because a real scrape sends
//!   its request at once and is done in milliseconds, a scrape whose
//!   request is still in flight goes after every slow client, and a burst
//!   of new connections cannot cut off a real request whose thread has not
//!   run yet.
//! - Password checks (bcrypt, tens of milliseconds each) run one at a time
//!   and at most [`BCRYPT_PER_SECOND`] a second; credentials that passed are
//!   remembered (a keyed hash, [`AUTH_CACHE`] entries), so a scraper costs
//!   one check, and wrong passwords cannot take a core from the census.

mod auth;
mod http;
mod page;
mod serve;
mod slots;
#[cfg(test)]
mod tests;
pub mod web_config;

pub use http::{HttpError, MAX_REQUEST, Request, find_head_end, parse_request};
pub use page::{KEEP_BYTES, Page, render_metrics};
pub use serve::InventoryRender;

use auth::Auth;
use serve::serve;
use slots::{PHASE_ANSWER, PHASE_HEAD, PHASE_PARTIAL, Slot, Slots};

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::{By, Format};
use crate::error::SetupError;
use crate::label::ByLabel;
pub use crate::metrics::HttpResult;
use crate::metrics::{LiveMetrics, Metrics};
use clap::ValueEnum;
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

/// Handles of `tlscensus_http_requests_total`, one per result.
type Requests = ByLabel<HttpResult, prometheus::IntCounter, { HttpResult::ALL.len() }>;

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

/// Everything a connection's thread needs.
struct Service {
    page: Page,
    /// `/inventory` in each grouping and format, each rendered at most once
    /// per [`PAGE_FRESH`] however many clients ask; empty: not served.
    views: Vec<(By, Format, Page)>,
    health: Arc<Health>,
    requests: Requests,
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
            // Every grouping and format the command line knows.
            Some(f) => By::value_variants()
                .iter()
                .flat_map(|&by| Format::value_variants().iter().map(move |&fmt| (by, fmt)))
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
            requests: ByLabel::new(|r: HttpResult| live.scrapes.with_label_values(&[r.as_str()])),
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
            service.requests[HttpResult::Rejected].inc();
            continue;
        };
        let phase = Arc::new(AtomicU8::new(PHASE_HEAD));
        let tls = service.web().tls.is_some();
        let id = {
            let mut s = crate::sync::lock(&slots);
            let Some(evicted) = s.make_room(peer.ip()) else {
                drop(s);
                service.requests[HttpResult::Rejected].inc();
                continue;
            };
            if evicted > 0 {
                service.requests[HttpResult::Evicted].inc_by(evicted);
            }
            let id = s.next_id;
            s.next_id += 1;
            s.open.push(Slot {
                id,
                peer: peer.ip(),
                since: Instant::now(),
                phase: Arc::clone(&phase),
                socket,
                tls,
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
                    service2.requests[result].inc();
                }
            });
        if spawned.is_err() {
            crate::sync::lock(&slots).release(id);
            service.requests[HttpResult::Rejected].inc();
        }
    }
}
