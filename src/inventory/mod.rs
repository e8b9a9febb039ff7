//! The host inventory: one record per client host, shared by all workers.
//!
//! Input: [`HandshakeSummary`] values of inventoried flows. Output: per-host
//! counts by version and outcome, server names, first/last seen. Invariants: at
//! most `max_hosts` hosts (a flow of a host beyond that is counted in
//! `hosts_dropped`, unless a server answered it and a host no server ever
//! answered can make room: see [`HOSTS`]); at most [`MAX_NAMES`] server names and
//! [`MAX_FINGERPRINTS`] client fingerprints per host, and server names of
//! at most `max_name_bytes` in all, each distinct name held once (the rest
//! are counted).
//! `entry()` scopes are short and no `Ref` is held across calls.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

mod destinations;

pub use destinations::*;

use crate::policy::MAX_POLICIES;
use crate::store::{self, Admit, Policy, Upsert};
use crate::tls::fingerprint::Fingerprint;
use crate::tls::version::VersionClass;
use crate::tls::{HandshakeSummary, Outcome, Version};

pub const MAX_NAMES: usize = 16;
/// Distinct client fingerprints (JA4) kept per host: a host runs a handful
/// of TLS stacks; a host cycling through random hellos must not grow.
pub const MAX_FINGERPRINTS: usize = 8;

/// One client fingerprint of a host: the software behind its flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFingerprint {
    /// The first hello with this JA4 (its JA3 hash beside it).
    pub fingerprint: Fingerprint,
    pub flows: u64,
    pub legacy: u64,
    /// Highest version the hellos offered (None when only cut hellos).
    pub max_offered: Option<Version>,
    /// Versions the flows ended with (negotiated, else offered): a bit per
    /// [`VersionClass`].
    pub classes: u8,
    /// Server names of these flows: a bit per entry of the host's
    /// `server_names` (in first-seen order, so bits stay valid).
    pub names: u16,
    /// Server policies (--policy) some of these flows' hellos would fail:
    /// a bit per policy, in configuration order.
    pub policy_fails: u16,
}

impl HostFingerprint {
    /// Names of the versions the flows ended with, in version order.
    pub fn versions(&self) -> Vec<&'static str> {
        class_names(self.classes)
    }
}

/// Names of the version classes set in `bits`, in version order.
pub fn class_names(bits: u8) -> Vec<&'static str> {
    VersionClass::ALL
        .iter()
        .filter(|c| bits & (1 << c.index()) != 0)
        .map(|c| c.as_str())
        .collect()
}

/// Version buckets of the inventory, in column order: the names of
/// [`VersionClass::ALL`].
pub const VERSION_COLUMNS: [&str; 8] = {
    let mut names = [""; 8];
    let mut i = 0;
    while i < 8 {
        names[i] = VersionClass::ALL[i].as_str();
        i += 1;
    }
    names
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostRecord {
    pub flows: u64,
    pub by_version: [u64; 8],
    pub legacy: u64,
    pub rejected: u64,
    pub unanswered: u64,
    /// Legacy versions seen (negotiated, or offered when not negotiated): a
    /// bit per [`VersionClass`], so a host holds at most eight whatever the wire says.
    pub legacy_classes: u8,
    /// Lowercased, in first-seen order (at most [`MAX_NAMES`]).
    /// Shared strings: a snapshot (`/inventory`, the state file) copies
    /// pointers, not up to 16 x 253 bytes per host.
    pub server_names: Vec<std::sync::Arc<str>>,
    /// A hash of each of `server_names` (the inventory's keyed hasher): a
    /// flow's name is looked for by its hash first, not by 16 compares.
    pub(crate) name_hashes: Vec<u64>,
    pub names_dropped: u64,
    /// Distinct client fingerprints, first seen first (at most [`MAX_FINGERPRINTS`]).
    pub fingerprints: Vec<HostFingerprint>,
    /// Flows whose fingerprint was beyond [`MAX_FINGERPRINTS`].
    pub fingerprints_dropped: u64,
    /// Services of the host's target flows: a bit per service row (bit 63:
    /// a target no row covers), and of its legacy target flows.
    pub services: u64,
    pub legacy_services: u64,
    /// Server policies (--policy) some of the host's hellos would fail: a
    /// bit per policy, in configuration order.
    pub policy_fails: u16,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl HostRecord {
    /// Names of the services of a bit set of [`HostRecord::services`].
    pub fn service_names(bits: u64) -> Vec<&'static str> {
        let mut out = Vec::with_capacity(bits.count_ones() as usize);
        let mut rest = bits;
        while rest != 0 {
            let b = rest.trailing_zeros();
            rest &= rest - 1;
            out.push(crate::targets::services::label(
                (b != 63).then_some(b as usize),
            ));
        }
        out
    }

    /// Names of the legacy versions seen, in version order.
    pub fn legacy_versions(&self) -> Vec<&'static str> {
        class_names(self.legacy_classes)
    }

    /// The server names, sorted.
    pub fn sorted_names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.server_names.iter().map(|n| &**n).collect();
        v.sort_unstable();
        v
    }

    /// The server names a fingerprint's flows asked for, sorted.
    pub fn names_of(&self, f: &HostFingerprint) -> Vec<&str> {
        let mut v: Vec<&str> = (self.server_names.iter().enumerate())
            .filter(|(i, _)| f.names & (1 << i) != 0)
            .map(|(_, n)| &**n)
            .collect();
        v.sort_unstable();
        v
    }
}

/// What [`Inventory::record`] could not keep of a flow (each a bound hit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The inventory is full (`max_hosts`) and the host was worth less than
    /// those it could displace ([`HOSTS`]): the flow was only counted.
    pub host_dropped: bool,
    /// The inventory was full: a host worth less (unanswered, or used
    /// less) was removed to keep this flow's host.
    pub host_evicted: bool,
    /// The host already had [`MAX_NAMES`] server names, or the name was
    /// new and the inventory's names had spent their bytes.
    pub name_dropped: bool,
    /// The host already had [`MAX_FINGERPRINTS`] fingerprints.
    pub fingerprint_dropped: bool,
    /// Policies the host fails from this flow on (bits it did not have).
    pub new_policy_fails: u16,
}

/// Who the inventory keeps when full: hosts a server answered (negotiated
/// or rejected) above hosts none answered (a ClientHello needs no TCP
/// handshake: spoofed hello floods must not push out a host a server
/// talked to); among equals, by frequency, so one-flow sources cannot push
/// out hosts that keep making flows ([`crate::store`]).
pub const HOSTS: Policy<HostRecord> = Policy {
    ranks: 2,
    rank: |r| u8::from(r.unanswered < r.flows),
    uses: |r| r.flows,
    admit: Admit::Frequency,
};

pub struct Inventory {
    hosts: store::Shared<IpAddr, HostRecord>,
    /// The server names hosts hold, each once (see [`store::Pool`]).
    names: store::Pool<str>,
    name_hasher: ahash::RandomState,
    /// Flows of hosts the inventory could not hold.
    pub hosts_dropped: AtomicU64,
    /// Every flow recorded, of hosts held or not (the host table counts only
    /// the flows of the hosts it holds now).
    pub flows: AtomicU64,
    pub legacy_flows: AtomicU64,
    pub rejected_flows: AtomicU64,
    /// Hosts held that would fail each server policy, by policy index.
    policy_hosts: [AtomicU64; MAX_POLICIES],
}

impl Inventory {
    /// At most `max_hosts` hosts, and server names weighing at most
    /// `max_name_bytes` in all (each distinct name counted once).
    pub fn new(max_hosts: usize, max_name_bytes: usize) -> Self {
        Inventory {
            hosts: store::Shared::new(max_hosts, HOSTS),
            names: store::Pool::new(max_name_bytes),
            name_hasher: ahash::RandomState::new(),
            hosts_dropped: AtomicU64::new(0),
            flows: AtomicU64::new(0),
            legacy_flows: AtomicU64::new(0),
            rejected_flows: AtomicU64::new(0),
            policy_hosts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Hosts held.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one flow; `service`: a target flow's service row (`Some(None)`:
    /// a target no row covers).
    pub fn record(
        &self,
        s: &HandshakeSummary,
        legacy: bool,
        service: Option<Option<usize>>,
    ) -> Recorded {
        self.flows.fetch_add(1, Ordering::Relaxed);
        let outcome = s.outcome();
        if legacy {
            self.legacy_flows.fetch_add(1, Ordering::Relaxed);
        }
        if outcome == Outcome::Rejected {
            self.rejected_flows.fetch_add(1, Ordering::Relaxed);
        }
        let rank = u8::from(outcome != Outcome::Unanswered);
        let names = (&self.names, &self.name_hasher);
        let update = |r: &mut HostRecord| update_host(r, s, outcome, legacy, service, names);
        let result = match self
            .hosts
            .upsert(s.client_ip, rank, HostRecord::default, update)
        {
            Upsert::Held(r) | Upsert::Added(r) => r,
            Upsert::Displaced(r, _, gone) => {
                self.names.released(gone.server_names.len());
                self.policy_hosts_change(gone.policy_fails, false);
                Recorded {
                    host_evicted: true,
                    ..r
                }
            }
            Upsert::Refused => {
                self.hosts_dropped.fetch_add(1, Ordering::Relaxed);
                Recorded {
                    host_dropped: true,
                    ..Recorded::default()
                }
            }
        };
        self.policy_hosts_change(result.new_policy_fails, true);
        result
    }

    /// Counts hosts in (`added`) or out of the failing hosts of each policy
    /// set in `bits`.
    fn policy_hosts_change(&self, bits: u16, added: bool) {
        let mut rest = bits;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if let Some(n) = self.policy_hosts.get(i) {
                if added {
                    n.fetch_add(1, Ordering::Relaxed);
                } else {
                    n.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Hosts held whose hellos would fail policy `i` (by configuration order).
    pub fn policy_failing_hosts(&self, i: usize) -> u64 {
        self.policy_hosts
            .get(i)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Puts back a host saved in a state file (with its server names);
    /// false when the inventory is full.
    pub fn restore(&self, ip: IpAddr, mut record: HostRecord, names: Vec<String>) -> bool {
        if !self.hosts.contains(&ip) && self.len() >= self.hosts.cap() {
            return false;
        }
        record.server_names = Vec::with_capacity(names.len().min(MAX_NAMES));
        for n in names.iter().take(MAX_NAMES) {
            match self.names.intern(n.as_str()) {
                Some(held) => record.server_names.push(held),
                None => record.names_dropped += 1,
            }
        }
        record.name_hashes = (record.server_names.iter())
            .map(|n| self.name_hasher.hash_one(&**n))
            .collect();
        record.fingerprints.truncate(MAX_FINGERPRINTS);
        self.hosts.insert_if_room(ip, record) || self.hosts.contains(&ip)
    }

    /// A sorted copy: hosts with legacy flows first (most first), then by flows, then address.
    pub fn snapshot(&self) -> Vec<(IpAddr, HostRecord)> {
        let mut v: Vec<(IpAddr, HostRecord)> = Vec::with_capacity(self.len());
        self.hosts.for_each(|ip, r| v.push((*ip, r.clone())));
        sorted(v)
    }

    /// The addresses held now, sorted.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = Vec::with_capacity(self.len());
        self.hosts.for_each(|ip, _| v.push(*ip));
        v.sort_unstable();
        v
    }

    /// `f` of one host's record, under that host's lock only.
    pub fn with_host<T>(&self, ip: IpAddr, f: impl FnOnce(IpAddr, &HostRecord) -> T) -> Option<T> {
        self.hosts.get(&ip, |r| f(ip, r))
    }

    /// Hosts held and those of them with legacy flows, counted over the
    /// records in place (no copy).
    pub fn host_counts(&self) -> (u64, u64) {
        let (mut hosts, mut legacy) = (0, 0);
        self.hosts.for_each(|_, r| {
            hosts += 1;
            legacy += u64::from(r.legacy > 0);
        });
        (hosts, legacy)
    }

    /// As [`Inventory::snapshot`], moving the records out and leaving the
    /// inventory empty: at the end of a read, the report does not need a
    /// second copy of every host (server names are up to 16 x 253 bytes).
    pub fn take_sorted(&self) -> Vec<(IpAddr, HostRecord)> {
        sorted(self.hosts.drain())
    }
}

/// One flow's update of its host's record (run only for a host held or
/// admitted); `names`: the pool a new server name is taken from and the
/// hasher of server names.
fn update_host(
    r: &mut HostRecord,
    s: &HandshakeSummary,
    outcome: Outcome,
    legacy: bool,
    service: Option<Option<usize>>,
    (pool, hasher): (&store::Pool<str>, &ahash::RandomState),
) -> Recorded {
    let mut result = Recorded::default();
    if r.flows == 0 || s.ts_ns < r.first_ns {
        r.first_ns = s.ts_ns;
    }
    r.last_ns = r.last_ns.max(s.ts_ns);
    r.flows += 1;
    if let Some(svc) = service {
        let bit = 1u64 << svc.map_or(63, |i| i.min(62));
        r.services |= bit;
        if legacy {
            r.legacy_services |= bit;
        }
    }
    let version = s.effective_version();
    let class = VersionClass::of(version);
    r.by_version[class.index()] += 1;
    match outcome {
        Outcome::Rejected => r.rejected += 1,
        Outcome::Unanswered => r.unanswered += 1,
        Outcome::Negotiated => {}
    }
    if legacy {
        r.legacy += 1;
        r.legacy_classes |= 1 << class.index();
    }
    let policy_fails = s.verdicts().failed();
    result.new_policy_fails = policy_fails & !r.policy_fails;
    r.policy_fails |= policy_fails;
    let mut name_bit = 0u16;
    if let Some(raw) = s.sni() {
        // Lowercased (case does not name another server); copied only
        // when the host meets a new name.
        let name = crate::targets::patterns::lowercase(raw);
        let h = hasher.hash_one(name.as_ref());
        let found = (r.name_hashes.iter().zip(&r.server_names))
            .position(|(nh, n)| *nh == h && **n == *name);
        let held = match found {
            Some(i) => {
                name_bit = 1 << i;
                true
            }
            None if r.server_names.len() < MAX_NAMES => {
                pool.intern(name.as_ref()).is_some_and(|held| {
                    name_bit = 1 << r.server_names.len();
                    r.server_names.push(held);
                    r.name_hashes.push(h);
                    true
                })
            }
            None => false,
        };
        if !held {
            r.names_dropped += 1;
            result.name_dropped = true;
        }
    }
    let client = s.client.as_ref();
    if let Some(fp) = client.and_then(|c| c.fingerprint) {
        let offered = client.and_then(|c| c.max_offered());
        let at = r
            .fingerprints
            .iter()
            .position(|f| f.fingerprint.same_ja4(&fp));
        let at = match at {
            Some(i) => Some(i),
            None if r.fingerprints.len() < MAX_FINGERPRINTS => {
                r.fingerprints.push(HostFingerprint {
                    fingerprint: fp,
                    flows: 0,
                    legacy: 0,
                    max_offered: None,
                    classes: 0,
                    names: 0,
                    policy_fails: 0,
                });
                Some(r.fingerprints.len() - 1)
            }
            None => {
                r.fingerprints_dropped += 1;
                result.fingerprint_dropped = true;
                None
            }
        };
        if let Some(f) = at.and_then(|i| r.fingerprints.get_mut(i)) {
            f.flows += 1;
            f.legacy += u64::from(legacy);
            f.classes |= 1 << class.index();
            f.names |= name_bit;
            f.policy_fails |= policy_fails;
            if offered > f.max_offered {
                f.max_offered = offered;
            }
        }
    }
    result
}

/// Hosts with legacy flows first (most first), then by flows, then address.
fn sorted(v: Vec<(IpAddr, HostRecord)>) -> Vec<(IpAddr, HostRecord)> {
    // Sort small keys, not the records (a few hundred bytes each).
    let mut order: Vec<(
        std::cmp::Reverse<u64>,
        std::cmp::Reverse<u64>,
        IpAddr,
        usize,
    )> = v
        .iter()
        .enumerate()
        .map(|(i, (ip, r))| {
            (
                std::cmp::Reverse(r.legacy),
                std::cmp::Reverse(r.flows),
                *ip,
                i,
            )
        })
        .collect();
    order.sort_unstable();
    let mut slots: Vec<Option<(IpAddr, HostRecord)>> = v.into_iter().map(Some).collect();
    order
        .iter()
        .filter_map(|&(_, _, _, i)| slots.get_mut(i).and_then(Option::take))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::ServerAnswer;

    fn flow(
        ip: [u8; 4],
        v: u16,
        sni: &str,
        answer: Option<ServerAnswer>,
        ts: u64,
    ) -> HandshakeSummary {
        HandshakeSummary {
            ts_ns: ts,
            answer,
            ..HandshakeSummary::hello_for_test(ip, [10, 9, 9, 9], v, Some(sni))
        }
    }

    /// A flow of `ip` whose hello failed the policies set in `fails`.
    fn judged(ip: [u8; 4], fails: u16, answered: bool) -> HandshakeSummary {
        let answer = answered.then_some(ServerAnswer::Hello {
            version: Version(0x0303),
            retried: false,
        });
        let mut s = flow(ip, 0x0303, "a.blob.core.windows.net", answer, 1);
        let mut v = crate::policy::Verdicts::default();
        for i in 0..crate::policy::MAX_POLICIES {
            let verdict = if fails & (1 << i) != 0 {
                crate::policy::Verdict::Fail(crate::policy::Reason::NoCommonSuite, None)
            } else {
                crate::policy::Verdict::Pass
            };
            v.set(i, verdict);
        }
        if let Some(c) = s.client.as_mut() {
            c.verdicts = v;
        }
        s
    }

    #[test]
    fn inventory_counts_failing_hosts_per_policy() {
        let inv = Inventory::new(2, 1 << 20);
        // Two flows of one host count it once; a host held leaves the count
        // when it is displaced.
        inv.record(&judged([10, 0, 0, 1], 0b01, false), false, None);
        inv.record(&judged([10, 0, 0, 1], 0b11, false), false, None);
        inv.record(&judged([10, 0, 0, 2], 0b10, true), false, None);
        assert_eq!(
            (inv.policy_failing_hosts(0), inv.policy_failing_hosts(1)),
            (1, 2)
        );
        // Full: an answered host displaces the unanswered 10.0.0.1.
        let r = inv.record(&judged([10, 0, 0, 3], 0b00, true), false, None);
        assert!(r.host_evicted);
        assert_eq!(
            (inv.policy_failing_hosts(0), inv.policy_failing_hosts(1)),
            (0, 1)
        );
        let hosts = inv.snapshot();
        let bits: Vec<u16> = hosts.iter().map(|(_, r)| r.policy_fails).collect();
        assert_eq!(bits.iter().filter(|b| **b != 0).count(), 1);
        assert_eq!(inv.policy_failing_hosts(crate::policy::MAX_POLICIES), 0);
    }

    #[test]
    fn records_and_sorts() {
        let inv = Inventory::new(10, 1 << 20);
        let alert = Some(ServerAnswer::Alert {
            level: 2,
            description: 70,
        });
        inv.record(
            &flow([10, 0, 0, 1], 0x0303, "A.blob.core.windows.net", None, 5),
            false,
            None,
        );
        inv.record(
            &flow([10, 0, 0, 1], 0x0303, "a.blob.core.windows.net", None, 3),
            false,
            None,
        );
        inv.record(
            &flow([10, 0, 0, 2], 0x0301, "b.blob.core.windows.net", alert, 9),
            true,
            None,
        );
        let snap = inv.snapshot();
        assert_eq!(snap[0].0, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(snap[0].1.rejected, 1);
        assert_eq!(snap[0].1.legacy_versions(), ["TLSv1.0"]);
        let a = &snap[1].1;
        assert_eq!((a.flows, a.first_ns, a.last_ns), (2, 3, 5));
        assert_eq!(a.server_names.len(), 1);
        assert_eq!(a.by_version[4], 2);
    }

    #[test]
    fn inventory_names_are_held_once_and_their_bytes_bounded() {
        use crate::store::pool::ENTRY_CHARGE;
        // Room for 100 names of 20 bytes.
        let inv = Inventory::new(1000, 100 * (20 + ENTRY_CHARGE));
        // 50 hosts name the same server: one copy.
        for h in 0..50u8 {
            inv.record(
                &flow([10, 0, 1, h], 0x0303, "shared.example.test1", None, 1),
                false,
                None,
            );
        }
        let snap = inv.snapshot();
        assert!(
            snap.windows(2)
                .all(|w| std::sync::Arc::ptr_eq(&w[0].1.server_names[0], &w[1].1.server_names[0]))
        );
        // A flood of new names: 99 more fit, the rest are counted per host.
        let mut dropped = 0;
        for n in 0..1000u32 {
            let name = format!("n{n:06}.example.test");
            let r = inv.record(
                &flow([10, 0, 2, (n % 200) as u8], 0x0303, &name, None, 2),
                false,
                None,
            );
            dropped += u32::from(r.name_dropped);
        }
        assert_eq!(dropped, 1000 - 99);
        assert_eq!(inv.names.len(), 100);
        let held: usize = inv
            .snapshot()
            .iter()
            .map(|(_, r)| r.server_names.len())
            .sum();
        let dropped_counted: u64 = inv.snapshot().iter().map(|(_, r)| r.names_dropped).sum();
        assert_eq!((held, dropped_counted), (50 + 99, 901));
    }

    #[test]
    fn host_bound_counted() {
        let inv = Inventory::new(1, 1 << 20);
        assert_eq!(
            inv.record(&flow([10, 0, 0, 1], 0x0303, "x", None, 1), false, None),
            Recorded::default()
        );
        assert!(
            inv.record(&flow([10, 0, 0, 2], 0x0303, "x", None, 1), false, None)
                .host_dropped
        );
        assert_eq!(
            inv.record(&flow([10, 0, 0, 1], 0x0303, "y", None, 1), false, None),
            Recorded::default()
        );
        assert_eq!(inv.hosts_dropped.load(Ordering::Relaxed), 1);
        assert_eq!(inv.len(), 1);
    }

    /// A full inventory gives up hosts no server ever answered (spoofed
    /// hello-only sources), oldest first, for a host whose server answered;
    /// never a host a server answered, and never for another unanswered one.
    #[test]
    fn full_inventory_gives_up_unanswered_hosts() {
        let inv = Inventory::new(3, 1 << 20);
        let alert = Some(ServerAnswer::Alert {
            level: 2,
            description: 70,
        });
        let host = |n: u8| IpAddr::from([10, 0, 0, n]);
        inv.record(&flow([10, 0, 0, 1], 0x0301, "x", None, 1), true, None);
        inv.record(&flow([10, 0, 0, 2], 0x0301, "x", alert, 2), true, None);
        inv.record(&flow([10, 0, 0, 3], 0x0301, "x", None, 3), true, None);
        // Host 1 is answered later: no longer a candidate.
        inv.record(&flow([10, 0, 0, 1], 0x0301, "x", alert, 4), true, None);
        let r = inv.record(&flow([10, 0, 0, 4], 0x0301, "x", None, 5), true, None);
        assert!(r.host_dropped, "an unanswered flow makes no room");
        let r = inv.record(&flow([10, 0, 0, 5], 0x0301, "x", alert, 6), true, None);
        assert!(r.host_evicted && !r.host_dropped);
        let mut held: Vec<IpAddr> = inv.snapshot().into_iter().map(|(ip, _)| ip).collect();
        held.sort();
        assert_eq!(held, [host(1), host(2), host(5)]);
        let r = inv.record(&flow([10, 0, 0, 6], 0x0301, "x", alert, 7), true, None);
        assert!(r.host_dropped, "no unanswered host is left to give up");
        assert_eq!(inv.len(), 3);
    }

    #[test]
    fn names_bound_counted() {
        let inv = Inventory::new(1, 1 << 20);
        for i in 0..(MAX_NAMES + 3) {
            inv.record(
                &flow([10, 0, 0, 1], 0x0303, &format!("n{i}"), None, 1),
                false,
                None,
            );
        }
        let snap = inv.snapshot();
        assert_eq!(snap[0].1.server_names.len(), MAX_NAMES);
        assert_eq!(snap[0].1.names_dropped, 3);
    }
}
