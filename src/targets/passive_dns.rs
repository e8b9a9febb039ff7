//! Passive DNS: which server names and addresses lead to a target.
//!
//! Input: DNS responses seen on the wire (UDP source port 53, or DNS over TCP
//! from port 53 when a segment holds whole length-prefixed messages), parsed
//! by the capture thread and learned by each worker in capture order.
//! Output: the worker's own bounded store, which it asks, for a flow at time T: "does this server name (an alias that
//! resolves through a CNAME chain to a target name) or this server address (an
//! A/AAAA answer of such a chain) lead to a target, and to which storage
//! account?".
//!
//! Invariants: responses come parsed ([`crate::decode::dns`]); at most
//! [`MAX_CHAIN`] CNAME links are followed. An entry is valid from the capture time of its answer to that time plus its
//! TTL (plus `--dns-grace`); a name or address keeps its last
//! [`ANSWERS_PER_KEY`] answers, and a flow is judged by the latest one valid at
//! its ClientHello's time; a TTL is kept only up to `--max-dns-ttl` (junk
//! answers with TTLs of decades cannot pin the store); the store holds at most
//! `--max-dns-entries` entries (names and addresses together); when full it
//! first drops expired entries (at most once per second of capture time), then
//! evicts the entry created first, so the newest answers always get in; each
//! eviction is counted (`bound="dns_entries"`).
//!
//! Each worker owns its store (a [`crate::store::Local`], no locks or atomics);
//! the worker's flow table asks it through the same handle, on the same thread.

use std::cell::{Cell, RefCell};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use super::patterns::{TargetSet, name_key};
use crate::decode::dns::{MAX_TTL, Rdata, Response};
use crate::store::{self, Admit, Policy, Upsert};

pub const MAX_CHAIN: usize = 16;

#[derive(Clone, Debug)]
struct Entry {
    /// The target name the chain leads to.
    target: Arc<str>,
    learned: u64,
    expires: u64,
}

impl Entry {
    fn valid_at(&self, t: u64) -> bool {
        self.learned <= t && t <= self.expires
    }
}

/// Answers kept per name or address: a shared address (a storage stamp serves
/// many accounts) may be answered for several targets in turn, and the worker
/// judging a flow lags the capture thread; the answer valid at the flow's time
/// is the latest one learned before it.
pub const ANSWERS_PER_KEY: usize = 4;

type Answers = Vec<Entry>;

fn valid_at(v: &Answers, t: u64) -> Option<Arc<str>> {
    v.iter()
        .filter(|e| e.valid_at(t))
        .max_by_key(|e| e.learned)
        .map(|e| Arc::clone(&e.target))
}

/// What one response taught.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    pub names: usize,
    pub addresses: usize,
    /// Older entries evicted to make room: the store was full.
    pub evicted: usize,
}

/// A name (lowercase, no trailing dot) or an address the store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DnsKey {
    Name(Box<str>),
    Addr(IpAddr),
}

/// A key as looked up, borrowing the name: hashes as its [`DnsKey`].
enum DnsQuery<'a> {
    Name(&'a str),
    Addr(IpAddr),
}

impl Hash for DnsKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            DnsKey::Name(n) => DnsQuery::Name(n).hash(h),
            DnsKey::Addr(a) => DnsQuery::Addr(*a).hash(h),
        }
    }
}

impl Hash for DnsQuery<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self {
            DnsQuery::Name(n) => {
                h.write_u8(0);
                n.hash(h);
            }
            DnsQuery::Addr(a) => {
                h.write_u8(1);
                a.hash(h);
            }
        }
    }
}

impl hashbrown::Equivalent<DnsKey> for DnsQuery<'_> {
    fn equivalent(&self, key: &DnsKey) -> bool {
        match (self, key) {
            (DnsQuery::Name(q), DnsKey::Name(k)) => **q == **k,
            (DnsQuery::Addr(q), DnsKey::Addr(k)) => q == k,
            _ => false,
        }
    }
}

/// Every answer ranks alike, and the newest gets in.
const ANSWERS: Policy<Answers> = Policy {
    ranks: 1,
    rank: |_| 0,
    uses: |v| v.len() as u64,
    admit: Admit::Newest,
};

/// One worker's store: its thread learns and looks up, nothing else does.
pub struct PassiveDns {
    store: RefCell<store::Local<DnsKey, Answers>>,
    max_entries: usize,
    grace_ns: u64,
    max_ttl: u32,
    last_purge: Cell<u64>,
}

impl PassiveDns {
    /// `max_ttl_secs` caps the TTL an answer is kept for.
    pub fn new(max_entries: usize, grace_secs: u64, max_ttl_secs: u32) -> PassiveDns {
        PassiveDns {
            store: RefCell::new(store::Local::new(max_entries, ANSWERS)),
            max_entries: max_entries.max(1),
            grace_ns: grace_secs.saturating_mul(1_000_000_000),
            max_ttl: max_ttl_secs,
            last_purge: Cell::new(0),
        }
    }

    /// Names and addresses held.
    pub fn len(&self) -> usize {
        self.store.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` is held as an alias of a target, at any time.
    pub fn may_alias(&self, name: &str) -> bool {
        !self.is_empty() && (self.store.borrow()).contains(&DnsQuery::Name(name_key(name).as_ref()))
    }

    /// The target name `name` is an alias of, at capture time `t`.
    pub fn alias_of(&self, name: &str, t: u64) -> Option<Arc<str>> {
        let key = name_key(name);
        valid_at(self.store.borrow().get(&DnsQuery::Name(key.as_ref()))?, t)
    }

    /// The target name `addr` was an answer for, at capture time `t`.
    pub fn target_of(&self, addr: IpAddr, t: u64) -> Option<Arc<str>> {
        valid_at(self.store.borrow().get(&DnsQuery::Addr(addr))?, t)
    }

    /// When full, drops expired entries, at most once per second of
    /// capture time (or when the clock went back).
    fn purge(&self, store: &mut store::Local<DnsKey, Answers>, now: u64) {
        if store.len() < self.max_entries {
            return;
        }
        let last = self.last_purge.get();
        if now.saturating_sub(last) >= 1_000_000_000 || now < last {
            self.last_purge.set(now);
            store.retain(|_, v| {
                v.retain(|e| e.expires >= now);
                !v.is_empty()
            });
        }
    }

    fn put(&self, key: DnsKey, entry: Entry, learned: &mut Learned) {
        let mut store = self.store.borrow_mut();
        let query = match &key {
            DnsKey::Name(n) => DnsQuery::Name(n),
            DnsKey::Addr(a) => DnsQuery::Addr(*a),
        };
        if !store.contains(&query) {
            self.purge(&mut store, entry.learned);
        }
        let update = |v: &mut Answers| {
            // The latest answer repeated while still valid is confirmed (it
            // keeps the time it was first learned); any other answer is added,
            // and beyond ANSWERS_PER_KEY the earliest learned goes.
            let same = v.iter_mut().max_by_key(|e| e.learned).filter(|e| {
                e.target == entry.target && e.learned <= entry.learned && entry.learned <= e.expires
            });
            match same {
                Some(e) => e.expires = e.expires.max(entry.expires),
                None => {
                    v.push(entry);
                    if v.len() > ANSWERS_PER_KEY
                        && let Some(i) = (0..v.len()).min_by_key(|&i| v[i].learned)
                    {
                        v.swap_remove(i);
                    }
                }
            }
        };
        if let Upsert::Displaced(..) = store.upsert(key, 0, Vec::new, update) {
            learned.evicted += 1;
        }
    }

    /// Learns from one response seen at capture time `ts`.
    pub fn learn(&self, r: &Response, targets: &TargetSet, ts: u64) -> Learned {
        let mut learned = Learned::default();
        // The chain from the question (or the first answer's owner).
        let Some(start) = r
            .question
            .as_deref()
            .or_else(|| r.answers.first().map(|a| a.owner.as_str()))
        else {
            return learned;
        };
        let mut chain: Vec<(&str, u32)> = vec![(start, MAX_TTL)];
        while chain.len() <= MAX_CHAIN {
            let last = chain[chain.len() - 1].0;
            let next = r.answers.iter().find_map(|a| match &a.data {
                Rdata::Cname(t) if a.owner == last => Some((t.as_str(), a.ttl)),
                _ => None,
            });
            match next {
                Some((t, ttl)) if !chain.iter().any(|(n, _)| *n == t) => chain.push((t, ttl)),
                _ => break,
            }
        }
        // The first name of the chain that is a target (or a known alias of one).
        let target: Option<Arc<str>> = chain.iter().find_map(|(n, _)| {
            if targets.matches(n) {
                Some(Arc::from(*n))
            } else {
                self.alias_of(n, ts)
            }
        });
        let Some(target) = target else {
            return learned;
        };
        let expiry = |ttl: u32| {
            ts.saturating_add(u64::from(ttl.min(self.max_ttl)).saturating_mul(1_000_000_000))
                .saturating_add(self.grace_ns)
        };
        // Every other name of the chain is an alias of the target, valid for
        // the TTL of the CNAME record that names it (or that it owns).
        for (i, (name, _)) in chain.iter().enumerate() {
            if **name == *target || targets.matches(name) {
                continue;
            }
            let ttl = chain
                .get(i + 1)
                .map_or(chain[i].1, |(_, t)| *t)
                .min(chain[i].1);
            let entry = Entry {
                target: Arc::clone(&target),
                learned: ts,
                expires: expiry(ttl),
            };
            self.put(DnsKey::Name(Box::from(*name)), entry, &mut learned);
            learned.names += 1;
        }
        for a in &r.answers {
            if let Rdata::Addr(ip) = a.data
                && chain.iter().any(|(n, _)| *n == a.owner)
            {
                let entry = Entry {
                    target: Arc::clone(&target),
                    learned: ts,
                    expires: expiry(a.ttl),
                };
                self.put(DnsKey::Addr(ip), entry, &mut learned);
                learned.addresses += 1;
            }
        }
        learned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::dns::*;

    /// Builds a response: question name, answers (owner, type, ttl, rdata).
    fn msg(flags: u16, q: Option<&str>, answers: &[(&str, u16, u32, Vec<u8>)]) -> Vec<u8> {
        fn name(n: &str) -> Vec<u8> {
            let mut v = Vec::new();
            for l in n.split('.').filter(|l| !l.is_empty()) {
                v.push(l.len() as u8);
                v.extend_from_slice(l.as_bytes());
            }
            v.push(0);
            v
        }
        let mut m = vec![0x12, 0x34];
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&(q.is_some() as u16).to_be_bytes());
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        if let Some(q) = q {
            m.extend(name(q));
            m.extend_from_slice(&[0, 1, 0, 1]);
        }
        for (owner, t, ttl, rdata) in answers {
            m.extend(name(owner));
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            let rd = if *t == 5 {
                name(std::str::from_utf8(rdata).unwrap())
            } else {
                rdata.clone()
            };
            m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            m.extend(rd);
        }
        m
    }

    const OK: u16 = 0x8180;
    const S: u64 = 1_000_000_000;

    fn custom_domain() -> Vec<u8> {
        msg(
            OK,
            Some("files.example.com"),
            &[
                (
                    "files.example.com",
                    5,
                    3600,
                    b"acct.blob.core.windows.net".to_vec(),
                ),
                (
                    "acct.blob.core.windows.net",
                    5,
                    300,
                    b"blob.ams23prdstr02a.store.core.windows.net".to_vec(),
                ),
                (
                    "blob.ams23prdstr02a.store.core.windows.net",
                    1,
                    60,
                    vec![20, 60, 1, 2],
                ),
            ],
        )
    }

    #[test]
    fn dns_parse_chain() {
        let r = parse_response(&custom_domain()).unwrap();
        assert_eq!(r.question.as_deref(), Some("files.example.com"));
        assert_eq!(r.answers.len(), 3);
        assert_eq!(r.answers[2].data, Rdata::Addr("20.60.1.2".parse().unwrap()));
        assert_eq!(
            r.answers[0].data,
            Rdata::Cname("acct.blob.core.windows.net".into())
        );
    }

    #[test]
    fn dns_learn_custom_domain_and_address() {
        let d = PassiveDns::new(100, 0, 86_400);
        let t = TargetSet::defaults();
        let r = parse_response(&custom_domain()).unwrap();
        let l = d.learn(&r, &t, 10 * S);
        assert_eq!((l.names, l.addresses, l.evicted), (2, 1, 0));
        let ip = "20.60.1.2".parse().unwrap();
        assert_eq!(
            d.alias_of("FILES.example.com.", 11 * S).as_deref(),
            Some("acct.blob.core.windows.net")
        );
        assert_eq!(
            d.target_of(ip, 70 * S).as_deref(),
            Some("acct.blob.core.windows.net")
        );
        // Expired after its TTL (60 s for the address), and not valid before it was seen.
        assert_eq!(d.target_of(ip, 71 * S), None);
        assert_eq!(d.target_of(ip, 9 * S), None);
        assert!(d.alias_of("files.example.com", 3610 * S).is_some());
        assert!(d.alias_of("files.example.com", 3611 * S).is_none());
    }

    #[test]
    fn dns_grace_extends_validity() {
        let d = PassiveDns::new(100, 600, 86_400);
        d.learn(
            &parse_response(&custom_domain()).unwrap(),
            &TargetSet::defaults(),
            10 * S,
        );
        assert!(d.target_of("20.60.1.2".parse().unwrap(), 670 * S).is_some());
    }

    #[test]
    fn dns_shared_address_answers_by_time() {
        // One storage stamp address answered for two accounts in turn; a flow
        // is judged by the answer valid at its own time, even when a later
        // answer has already been learned (the worker lags the capture thread).
        let d = PassiveDns::new(100, 0, 86_400);
        let t = TargetSet::defaults();
        let answer = |acct: &str| {
            let n = format!("{acct}.blob.core.windows.net");
            parse_response(&msg(OK, Some(&n), &[(&n, 1, 10, vec![20, 60, 7, 7])])).unwrap()
        };
        d.learn(&answer("acct1"), &t, 100 * S);
        d.learn(&answer("acct2"), &t, 103 * S);
        d.learn(&answer("acct1"), &t, 105 * S); // confirms acct1's answer
        let ip = "20.60.7.7".parse().unwrap();
        assert_eq!(
            d.target_of(ip, 102 * S).as_deref(),
            Some("acct1.blob.core.windows.net")
        );
        assert_eq!(
            d.target_of(ip, 104 * S).as_deref(),
            Some("acct2.blob.core.windows.net")
        );
        assert_eq!(
            d.target_of(ip, 106 * S).as_deref(),
            Some("acct1.blob.core.windows.net")
        );
        assert_eq!(
            d.target_of(ip, 115 * S).as_deref(),
            Some("acct1.blob.core.windows.net")
        );
        assert_eq!(d.target_of(ip, 116 * S), None);
        d.learn(&answer("acct1"), &t, 108 * S); // the latest answer, confirmed
        assert_eq!(d.store.borrow().get(&DnsQuery::Addr(ip)).unwrap().len(), 3);
        assert_eq!(
            d.target_of(ip, 117 * S).as_deref(),
            Some("acct1.blob.core.windows.net")
        );
        for i in 0..10u64 {
            d.learn(&answer(&format!("acct{}", 10 + i)), &t, (200 + i) * S);
        }
        assert_eq!(
            d.store.borrow().get(&DnsQuery::Addr(ip)).unwrap().len(),
            ANSWERS_PER_KEY
        );
        assert_eq!(
            d.target_of(ip, 209 * S).as_deref(),
            Some("acct19.blob.core.windows.net")
        );
    }

    #[test]
    fn dns_unrelated_answers_teach_nothing() {
        let d = PassiveDns::new(100, 0, 86_400);
        let m = msg(
            OK,
            Some("www.example.com"),
            &[("www.example.com", 1, 60, vec![93, 184, 216, 34])],
        );
        let l = d.learn(&parse_response(&m).unwrap(), &TargetSet::defaults(), S);
        assert_eq!(l, Learned::default());
        assert!(d.is_empty());
    }

    /// regression_12: a full store evicts its oldest entry instead of
    /// refusing the newest, and purges expired ones first.
    #[test]
    fn dns_evicts_oldest_when_full_and_purges_expired() {
        let d = PassiveDns::new(2, 0, 86_400);
        let t = TargetSet::defaults();
        let one = |i: u8, ttl: u32| {
            let n = format!("a{i}.blob.core.windows.net");
            parse_response(&msg(OK, Some(&n), &[(&n, 1, ttl, vec![20, 60, 0, i])])).unwrap()
        };
        let ip = |i: u8| IpAddr::from([20, 60, 0, i]);
        assert_eq!(d.learn(&one(1, 10), &t, S).addresses, 1);
        assert_eq!(d.learn(&one(2, 10), &t, S).addresses, 1);
        let l = d.learn(&one(3, 10), &t, 2 * S);
        assert_eq!((l.addresses, l.evicted), (1, 1));
        assert!(d.target_of(ip(1), 2 * S).is_none());
        assert!(d.target_of(ip(3), 2 * S).is_some());
        // Known entries are updated in place when full.
        assert_eq!(d.learn(&one(3, 10), &t, 2 * S).evicted, 0);
        // After both expired, the purge makes room without evicting.
        let l = d.learn(&one(4, 10), &t, 30 * S);
        assert_eq!((l.addresses, l.evicted), (1, 0));
        assert_eq!(d.len(), 1);
    }

    /// regression_12: junk answers with a TTL of decades are kept only for
    /// --max-dns-ttl, and cannot keep a real answer out.
    #[test]
    fn dns_ttl_capped_and_junk_cannot_pin() {
        let d = PassiveDns::new(8, 0, 3_600);
        let t = TargetSet::defaults();
        let answer = |name: &str, addr: [u8; 4], ttl: u32| {
            parse_response(&msg(OK, Some(name), &[(name, 1, ttl, addr.to_vec())])).unwrap()
        };
        for i in 0..64u8 {
            let n = format!("junk{i}.blob.core.windows.net");
            d.learn(&answer(&n, [10, 9, 0, i], i32::MAX as u32), &t, S);
        }
        assert!(
            d.target_of(IpAddr::from([10, 9, 0, 63]), 3_000 * S)
                .is_some()
        );
        assert!(
            d.target_of(IpAddr::from([10, 9, 0, 63]), 3_602 * S)
                .is_none()
        );
        let real = answer("real.blob.core.windows.net", [10, 1, 2, 3], 60);
        assert_eq!(d.learn(&real, &t, 2 * S).addresses, 1);
        assert!(d.target_of(IpAddr::from([10, 1, 2, 3]), 3 * S).is_some());
        assert!(d.len() <= 8);
    }

    #[test]
    fn dns_not_answers() {
        let q = msg(0x0100, Some("a.blob.core.windows.net"), &[]);
        assert_eq!(parse_response(&q), Err(DnsError::NotAnswer));
        let nx = msg(0x8183, Some("a.blob.core.windows.net"), &[]);
        assert_eq!(parse_response(&nx), Err(DnsError::NotAnswer));
        let tc = msg(0x8380, Some("a.blob.core.windows.net"), &[]);
        assert_eq!(parse_response(&tc), Err(DnsError::NotAnswer));
    }

    #[test]
    fn dns_truncated_everywhere() {
        let m = custom_domain();
        for cut in 0..m.len() {
            assert!(parse_response(&m[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn dns_compression() {
        // Question at 12; the answer's owner is a pointer to it (0xc00c).
        let mut m = msg(OK, Some("x.blob.core.windows.net"), &[]);
        m[7] = 1; // ANCOUNT 1
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 20, 60, 9, 9]);
        let r = parse_response(&m).unwrap();
        assert_eq!(r.answers[0].owner, "x.blob.core.windows.net");
        // A pointer to itself, forwards, or a reserved label type is refused.
        let at = m.len() - 16;
        for bad in [[0xc0u8, at as u8], [0xc0, 200], [0x80, 12], [0x40, 12]] {
            let mut b = m.clone();
            b[at] = bad[0];
            b[at + 1] = bad[1];
            assert_eq!(parse_response(&b), Err(DnsError::BadName), "{bad:02x?}");
        }
    }

    #[test]
    fn dns_long_name_refused() {
        let long = vec!["a".repeat(63); 5].join(".");
        let m = msg(OK, Some(&long), &[]);
        assert_eq!(parse_response(&m), Err(DnsError::BadName));
    }

    #[test]
    fn dns_over_tcp_framing() {
        let a = custom_domain();
        let mut p = (a.len() as u16).to_be_bytes().to_vec();
        p.extend_from_slice(&a);
        p.extend_from_slice(&p.clone());
        let all = |p: &[u8], tcp| {
            let mut v = Vec::new();
            messages(p, tcp, |m| v.push(m.map(<[u8]>::to_vec)));
            v
        };
        assert_eq!(all(&p, true), vec![Ok(a.clone()), Ok(a.clone())]);
        assert_eq!(
            all(&p[..p.len() - 1], true),
            vec![Ok(a.clone()), Err(DnsError::TcpSplit)]
        );
        assert_eq!(all(&p[..1], true), vec![Err(DnsError::TcpSplit)]);
        assert_eq!(all(&a, false), vec![Ok(a.clone())]);
    }

    #[test]
    fn dns_cname_loop_is_bounded() {
        let m = msg(
            OK,
            Some("a.example"),
            &[
                ("a.example", 5, 60, b"b.example".to_vec()),
                ("b.example", 5, 60, b"a.example".to_vec()),
            ],
        );
        let d = PassiveDns::new(10, 0, 86_400);
        assert_eq!(
            d.learn(&parse_response(&m).unwrap(), &TargetSet::defaults(), S),
            Learned::default()
        );
    }
}
