//! The exporter, end to end over loopback sockets.

use super::serve::inventory_view;
use super::*;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};

use base64::Engine;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Every grouping and format the command line knows is served by
/// `/inventory`, from the renderer, each under its own query.
#[test]
fn exporter_serves_every_inventory_view() {
    use clap::ValueEnum;
    let m = Arc::new(Metrics::new(10, None).unwrap());
    let live = Arc::new(LiveMetrics::new(&m, &["eth9".to_string()], 1).unwrap());
    let health = Arc::new(Health::default());
    health.capturing.store(true, Ordering::Relaxed);
    let render: Box<dyn Fn() -> String + Send + Sync> = Box::new(String::new);
    let inventory: InventoryRender =
        Arc::new(|by, format| Some(format!("view {by:?} {format:?}").into_bytes()));
    let listener = bind("127.0.0.1:0").unwrap();
    let ex = Exporter::start(listener, render, Some(inventory), live, health, None).unwrap();
    for by in By::value_variants() {
        for format in Format::value_variants() {
            let name = |v: Option<clap::builder::PossibleValue>| {
                v.map(|p| p.get_name().to_string()).unwrap_or_default()
            };
            let query = format!(
                "by={}&format={}",
                name(by.to_possible_value()),
                name(format.to_possible_value())
            );
            let req = format!("GET /inventory?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
            let answer = get(ex.local_addr, req.as_bytes());
            assert!(answer.starts_with("HTTP/1.1 200"), "{query}: {answer}");
            assert!(
                answer.ends_with(&format!("view {by:?} {format:?}")),
                "{query}: {answer}"
            );
        }
    }
    ex.stop();
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
            tls: false,
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

    // Slow clients reconnecting as fast as they are cut off, from the
    // scraper's own address: the scrape whose request is still in flight
    // (nothing read yet, the oldest) outlasts every slow client, and
    // newcomers push out the slow ones oldest first.
    let mut slots = Slots::default();
    for i in 0..MAX_PER_PEER as u64 {
        let phase = if i == 0 { PHASE_HEAD } else { PHASE_PARTIAL };
        let (s, other) = slot(i, 3, phase);
        slots.open.push(s);
        keep.push(other);
    }
    let peer3 = IpAddr::from([10, 0, 0, 3]);
    for next in 0..3 * MAX_PER_PEER as u64 {
        assert_eq!(slots.make_room(peer3), Some(1));
        assert!(slots.open.iter().any(|s| s.id == 0), "the scrape stays");
        let (s, other) = slot(100 + next, 3, PHASE_PARTIAL);
        slots.open.push(s);
        keep.push(other);
    }
    let left: Vec<u64> = slots
        .open
        .iter()
        .map(|s| s.id)
        .filter(|&id| id != 0)
        .collect();
    assert!(
        left.iter().all(|&id| id >= 100),
        "oldest slow ones first: {left:?}"
    );

    // The same, before the slow clients' threads have run: what they sent
    // waits in their sockets, and marks them as slow as if it were read.
    let mut fresh = Slots::default();
    let slow_part = |id: u64, slots: &mut Slots, keep: &mut Vec<TcpStream>| {
        let (s, mut other) = slot(id, 4, PHASE_HEAD);
        other.write_all(b"GET /met").unwrap();
        slots.open.push(s);
        keep.push(other);
    };
    let (s, other) = slot(0, 4, PHASE_HEAD);
    fresh.open.push(s);
    keep.push(other);
    for i in 1..MAX_PER_PEER as u64 {
        slow_part(i, &mut fresh, &mut keep);
    }
    std::thread::sleep(Duration::from_millis(50));
    let peer4 = IpAddr::from([10, 0, 0, 4]);
    for next in 0..3 * MAX_PER_PEER as u64 {
        assert_eq!(fresh.make_room(peer4), Some(1));
        assert!(fresh.open.iter().any(|s| s.id == 0), "the scrape stays");
        slow_part(100 + next, &mut fresh, &mut keep);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Over TLS, what waits is a handshake, not a slow head: the oldest
    // connection in its head goes first.
    for s in &mut fresh.open {
        s.tls = true;
    }
    assert_eq!(fresh.make_room(peer4), Some(1));
    assert!(
        !fresh.open.iter().any(|s| s.id == 0),
        "the oldest, over TLS"
    );

    // A client whose head came in two pieces: part read (so it counts as
    // partial), the rest with the head's end waiting in its socket. It is
    // the oldest such connection, and it is never chosen.
    assert_eq!(slots.make_room(peer3), Some(1));
    let (s, mut other) = slot(50, 3, PHASE_PARTIAL);
    slots.open.push(s);
    other.write_all(b"rics HTTP/1.1\r\n\r\n").unwrap();
    keep.push(other);
    std::thread::sleep(Duration::from_millis(50));
    for next in 0..2 * MAX_PER_PEER as u64 {
        assert_eq!(slots.make_room(peer3), Some(1));
        assert!(
            slots.open.iter().any(|s| s.id == 50),
            "the rest of its head waits"
        );
        let (s, other) = slot(200 + next, 3, PHASE_PARTIAL);
        slots.open.push(s);
        keep.push(other);
    }
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
