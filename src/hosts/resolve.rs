//! Optional active reverse DNS (`--resolve`): for networks where nothing
//! passive names the hosts, ask a DNS server for the PTR name of each legacy
//! source that has no name.
//!
//! Input: addresses from the workers (a legacy flow whose source has no
//! passive name), through a bounded queue the workers never wait on.
//! Output: bindings of source `rdns` in [`HostNames`], valid from the flow's
//! capture time for `--name-max-age`. Invariants: never on the packet path
//! (one thread of its own; a full queue drops the request, counted); an
//! address is asked at most once per [`RETRY_AFTER`] (the set of asked
//! addresses is bounded like the store, and cleared when full); at most
//! `--resolve-rate` queries a second; each query waits at most
//! [`QUERY_TIMEOUT`]; an answer is taken only from the server asked, with
//! the query's id and question; the answer is parsed by the passive-DNS
//! parser (every byte hostile).

use crate::label::ByLabel;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use prometheus::IntCounter;

use super::names::{HostNames, Lifetime, NameSource};
use crate::decode::dns::{Rdata, parse_response};

/// Requests queued for the resolver thread.
pub const QUEUE: usize = 1024;
/// How long one query waits for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// An address is asked again only after this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(3600);

crate::label_set! {
    /// The `result` label of `tlscensus_resolve_queries_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ResolveResult {
        /// A PTR name was learned.
        Named = "named",
        /// The server answered without a name (NXDOMAIN, no PTR record).
        NoName = "no_name",
        /// No (valid) answer in time.
        Timeout = "timeout",
        /// The request was dropped: the queue was full.
        Dropped = "dropped",
    }
}

/// `tlscensus_resolve_queries_total` by [`ResolveResult`].
#[derive(Clone)]
pub struct ResolveCounts(pub ByLabel<ResolveResult, IntCounter, { ResolveResult::ALL.len() }>);

impl ResolveCounts {
    fn add(&self, r: ResolveResult) {
        self.0[r].inc();
    }
}

/// The workers' handle: asks for an address's name without waiting.
pub struct Resolver {
    tx: Sender<(IpAddr, u64)>,
    asked: std::sync::Mutex<HashMap<IpAddr, Instant>>,
    max_asked: usize,
    counts: ResolveCounts,
    /// Requests sent and not yet answered (for `wait_idle`).
    pending: Arc<AtomicU64>,
}

/// Settings of `--resolve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveSettings {
    pub server: SocketAddr,
    /// Queries a second at most.
    pub rate: u32,
}

impl Resolver {
    /// Starts the resolver thread.
    pub fn start(
        s: &ResolveSettings,
        names: Arc<HostNames>,
        max_asked: usize,
        counts: ResolveCounts,
    ) -> std::io::Result<(Resolver, JoinHandle<()>)> {
        let bind: SocketAddr = if s.server.is_ipv4() {
            "0.0.0.0:0".parse().map_err(std::io::Error::other)?
        } else {
            "[::]:0".parse().map_err(std::io::Error::other)?
        };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(s.server)?;
        socket.set_read_timeout(Some(QUERY_TIMEOUT))?;
        let (tx, rx) = bounded(QUEUE);
        let pending = Arc::new(AtomicU64::new(0));
        let every = Duration::from_secs(1) / s.rate.max(1);
        let thread = {
            let (counts, pending) = (counts.clone(), Arc::clone(&pending));
            std::thread::Builder::new()
                .name("resolver".into())
                .spawn(move || run(rx, socket, names, counts, pending, every))?
        };
        Ok((
            Resolver {
                tx,
                asked: std::sync::Mutex::new(HashMap::new()),
                max_asked: max_asked.max(1),
                counts,
                pending,
            },
            thread,
        ))
    }

    /// Asks for `ip`'s name (seen in a flow at capture time `ts`) unless it
    /// was asked within [`RETRY_AFTER`]; never waits.
    pub fn ask(&self, ip: IpAddr, ts: u64) {
        {
            let mut asked = crate::sync::lock(&self.asked);
            if asked.get(&ip).is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return;
            }
            if asked.len() >= self.max_asked {
                asked.retain(|_, t| t.elapsed() < RETRY_AFTER);
                if asked.len() >= self.max_asked {
                    asked.clear();
                }
            }
            asked.insert(ip, Instant::now());
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send((ip, ts)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                self.counts.add(ResolveResult::Dropped);
            }
        }
    }

    /// Waits until every request sent has been answered or has timed out,
    /// at most `limit` (the end of an offline read, before the report);
    /// returns how many are still waiting.
    pub fn wait_idle(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.pending.load(Ordering::Relaxed);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn run(
    rx: Receiver<(IpAddr, u64)>,
    socket: UdpSocket,
    names: Arc<HostNames>,
    counts: ResolveCounts,
    pending: Arc<AtomicU64>,
    every: Duration,
) {
    // Query ids an off-path sender cannot guess (with the OS's random port).
    let ids = ahash::RandomState::new();
    let mut n = 0u64;
    loop {
        let (ip, ts) = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let started = Instant::now();
        n += 1;
        let id = ids.hash_one(n) as u16;
        let result = query(&socket, ip, id).map_or(ResolveResult::Timeout, |name| match name {
            Some(n) => {
                names.bind(ip, &n, NameSource::Rdns, ts, Lifetime::Age, 0);
                ResolveResult::Named
            }
            None => ResolveResult::NoName,
        });
        counts.add(result);
        pending.fetch_sub(1, Ordering::Relaxed);
        if let Some(rest) = every.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// The reverse-DNS name of an address (`4.3.2.1.in-addr.arpa`, `ip6.arpa`).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(72);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// One PTR query; `Err` when no valid answer came in time, `Ok(None)` when
/// the answer has no name.
fn query(socket: &UdpSocket, ip: IpAddr, id: u16) -> Result<Option<String>, ()> {
    let qname = reverse_name(ip);
    let mut q = Vec::with_capacity(96);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in qname.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 12, 0, 1]); // root, PTR, IN
    socket.send(&q).map_err(|_| ())?;
    let deadline = Instant::now() + QUERY_TIMEOUT;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let n = socket.recv(&mut buf).map_err(|_| ())?;
        let m = &buf[..n];
        if m.get(..2) != Some(&id.to_be_bytes()[..]) {
            continue; // a late answer to an earlier query
        }
        let rcode = m.get(3).map_or(0, |b| b & 0x0f);
        if rcode == 3 {
            return Ok(None); // NXDOMAIN
        }
        return match parse_response(m) {
            Ok(r) if r.question.as_deref() == Some(qname.as_str()) => {
                Ok(r.answers.iter().find_map(|a| match &a.data {
                    Rdata::Ptr(name) if a.owner == qname => Some(name.clone()),
                    _ => None,
                }))
            }
            Ok(_) => continue,
            Err(_) => Ok(None),
        };
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_round_trip() {
        for ip in ["192.0.2.7", "2001:db8::42"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(
                super::super::learn::reverse_address(&reverse_name(ip)),
                Some(ip)
            );
        }
    }
}
