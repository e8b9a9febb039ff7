//! Passive host names: which name an address had, learned from what crosses
//! the mirror port (DHCP, DHCPv6, NBNS, mDNS, LLMNR, DNS PTR answers,
//! Kerberos AS-REQs of machine accounts).
//!
//! Input: bindings (address, name, source, capture time, lifetime) from the
//! capture thread's [`super::learn::NameLearner`], its only writer. Output:
//! the name of an address at a time, for events, the inventory and the
//! `tlscensus_host_info` series. Invariants: a binding is valid from when it
//! was first seen until its lease ends (DHCP) or its last sighting plus
//! `--name-max-age`, or until it is released or its address is handed to
//! another client (then it ends at that time, so a flow before is still
//! named as it was); several names of one address are kept side by side
//! (never overwritten), at most [`BINDINGS_PER_ADDRESS`]; the answer is the
//! valid binding of the best-ranked source (`--name-sources` order), the
//! latest seen among equals; at most `--max-host-names` addresses are held:
//! when full, bindings that ended are swept (at most once per second of
//! capture time), then the address held longest among those whose best name
//! ranks no better than the new one leaves (so spoofed mDNS or NBNS claims
//! cannot push out DHCP leases, while they push out each other); when every
//! held name ranks better the new one is refused. Both are counted
//! (`bound="host_names"`); the same rule keeps an address's 4 names. The
//! addresses live in the one bounded store ([`crate::store::Shared`]) with
//! [`crate::store::Admit::Newest`] among equal ranks: a name is announced
//! rarely (a DHCP lease once per renewal), so how often an address was
//! named says little, and the newest announcement is the one flows meet.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::store::{self, Admit, Policy, Upsert};

crate::label_set! {
    /// Where a name came from: the `name_source` label (a closed set).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum NameSource {
        Dhcp = "dhcp",
        Dhcpv6 = "dhcpv6",
        Kerberos = "kerberos",
        DnsPtr = "dns_ptr",
        Nbns = "nbns",
        Mdns = "mdns",
        Llmnr = "llmnr",
        /// Active reverse DNS (`--resolve`).
        Rdns = "rdns",
    }
}

/// Names kept per address (a dual-named host, a lease handed on, a
/// NetBIOS name beside a DNS name).
pub const BINDINGS_PER_ADDRESS: usize = 4;
/// Longest name kept (a DNS name's limit); longer claims are not names.
pub const MAX_NAME: usize = 253;
/// Longest lease honoured (an "infinite" DHCP lease is a year).
pub const MAX_LEASE_SECS: u64 = 365 * 86_400;

/// One name of one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub name: Arc<str>,
    pub source: NameSource,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Valid until then (lease end, last sighting + age, or the time it was
    /// released or the address changed hands).
    pub until_ns: u64,
    /// The DHCP client (a hash of its hardware address or DUID), 0 otherwise.
    pub client: u64,
}

impl Binding {
    fn valid_at(&self, t: u64) -> bool {
        self.first_ns <= t && t <= self.until_ns
    }
}

/// How long a binding lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// A lease of this many seconds from now (DHCP, DHCPv6).
    Lease(u64),
    /// Last sighting plus `--name-max-age`.
    Age,
}

/// What [`HostNames::bind`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Stored (new, or an existing binding refreshed).
    Stored,
    /// The address had [`BINDINGS_PER_ADDRESS`] names: the one that ended
    /// first was replaced.
    Replaced,
    /// The store was full of addresses: not stored.
    Full,
}

/// Settings of the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameSettings {
    /// Sources used, best first (`--name-sources`).
    pub sources: Vec<NameSource>,
    /// `--name-max-age`, in nanoseconds.
    pub max_age_ns: u64,
    /// `--max-host-names`: addresses held at most.
    pub max_addresses: usize,
}

impl Default for NameSettings {
    fn default() -> Self {
        NameSettings {
            sources: NameSource::ALL.to_vec(),
            max_age_ns: 86_400 * 1_000_000_000,
            max_addresses: 16_384,
        }
    }
}

impl NameSettings {
    /// Whether names from `s` are wanted.
    pub fn uses(&self, s: NameSource) -> bool {
        self.sources.contains(&s)
    }
}

/// The names of one address, and how the store ranks it: the better its
/// best name's source, the higher.
#[derive(Default)]
struct Named {
    bindings: Vec<Binding>,
    keep: u8,
}

/// Store ranks: one per source rank, 0 for none.
const RANKS: u8 = NameSource::ALL.len() as u8 + 1;

const NAMES: Policy<Named> = Policy {
    ranks: RANKS,
    rank: |n| n.keep,
    uses: |n| n.bindings.len() as u64,
    admit: Admit::Newest,
};

pub struct HostNames {
    map: store::Shared<IpAddr, Named>,
    /// Rank of each source (`NameSource::index`), lower is better; `u8::MAX`: unused.
    rank: [u8; NameSource::ALL.len()],
    max_age_ns: u64,
    max_addresses: usize,
    /// Capture time of the last sweep of ended bindings.
    swept_ns: AtomicU64,
    /// DHCP/DHCPv6 client → the address its name is bound to (a lease that
    /// moves ends on the old address). At most `max_addresses` clients.
    clients: DashMap<u64, IpAddr, ahash::RandomState>,
}

impl HostNames {
    pub fn new(s: &NameSettings) -> HostNames {
        let mut rank = [u8::MAX; NameSource::ALL.len()];
        for (i, src) in s.sources.iter().enumerate() {
            rank[src.index()] = rank[src.index()].min(i as u8);
        }
        HostNames {
            map: store::Shared::new(s.max_addresses.max(1), NAMES),
            rank,
            max_age_ns: s.max_age_ns,
            max_addresses: s.max_addresses.max(1),
            swept_ns: AtomicU64::new(0),
            clients: DashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether names from `s` are used at all.
    pub fn uses(&self, s: NameSource) -> bool {
        self.rank[s.index()] != u8::MAX
    }

    fn until(&self, ts: u64, life: Lifetime) -> u64 {
        match life {
            Lifetime::Lease(secs) => {
                ts.saturating_add(secs.min(MAX_LEASE_SECS).saturating_mul(1_000_000_000))
            }
            Lifetime::Age => ts.saturating_add(self.max_age_ns),
        }
    }

    /// The store rank of a source's names: higher for better sources.
    fn keep(&self, source: NameSource) -> u8 {
        match self.rank[source.index()] {
            u8::MAX => 0,
            r => RANKS.saturating_sub(1).saturating_sub(r).max(1),
        }
    }

    /// Binds `name` to `ip` at capture time `ts`. `client`: the DHCP client
    /// (0 for other sources); its earlier address's binding ends now, and so
    /// does another client's binding of the same source on `ip`.
    pub fn bind(
        &self,
        ip: IpAddr,
        name: &str,
        source: NameSource,
        ts: u64,
        life: Lifetime,
        client: u64,
    ) -> Bound {
        if !self.uses(source) || name.is_empty() || name.len() > MAX_NAME {
            return Bound::Stored;
        }
        let until = self.until(ts, life);
        if client != 0 {
            self.move_client(client, ip, source, ts);
        }
        if !self.map.contains(&ip) && self.len() >= self.max_addresses {
            self.sweep(ts);
        }
        let rank = self.rank[source.index()];
        let keep = self.keep(source);
        let update = |n: &mut Named| {
            let result = self.add_binding(&mut n.bindings, name, source, rank, ts, until, client);
            n.keep = n.keep.max(keep);
            result
        };
        match self.map.upsert(ip, keep, Named::default, update) {
            Upsert::Held(b) | Upsert::Added(b) => b,
            Upsert::Displaced(..) => Bound::Replaced,
            Upsert::Refused => Bound::Full,
        }
    }

    /// Adds or refreshes one binding of an address.
    #[allow(clippy::too_many_arguments)]
    fn add_binding(
        &self,
        v: &mut Vec<Binding>,
        name: &str,
        source: NameSource,
        rank: u8,
        ts: u64,
        until: u64,
        client: u64,
    ) -> Bound {
        if client != 0 {
            // The address changed hands: the other client's lease ended.
            for b in v.iter_mut() {
                if b.source == source && b.client != 0 && b.client != client && b.until_ns > ts {
                    b.until_ns = ts;
                }
            }
        }
        if let Some(b) = v
            .iter_mut()
            .find(|b| b.source == source && &*b.name == name && b.client == client)
        {
            b.last_ns = b.last_ns.max(ts);
            b.until_ns = b.until_ns.max(until);
            return Bound::Stored;
        }
        let mut result = Bound::Stored;
        if v.len() >= BINDINGS_PER_ADDRESS {
            // The binding that ends first among those of a source ranked no
            // better makes room: a flood of self-claimed names (mDNS, NBNS)
            // cannot push out a DHCP lease.
            let victim = (0..v.len())
                .filter(|&i| self.rank[v[i].source.index()] >= rank)
                .min_by_key(|&i| v[i].until_ns);
            match victim {
                Some(i) => {
                    v.swap_remove(i);
                    result = Bound::Replaced;
                }
                None => return Bound::Full,
            }
        }
        v.push(Binding {
            name: Arc::from(name),
            source,
            first_ns: ts,
            last_ns: ts,
            until_ns: until,
            client,
        });
        result
    }

    /// A DHCP client's name moved to `ip`: its binding on the old address ends.
    fn move_client(&self, client: u64, ip: IpAddr, source: NameSource, ts: u64) {
        let old = self.clients.get(&client).map(|e| *e.value());
        match old {
            Some(old) if old == ip => return,
            Some(old) => {
                self.map.update(&old, |n| {
                    for b in n.bindings.iter_mut() {
                        if b.client == client && b.source == source && b.until_ns > ts {
                            b.until_ns = ts;
                        }
                    }
                });
            }
            None if self.clients.len() >= self.max_addresses => {
                // Rare (a flood of clients): forget the index, keep the names.
                self.clients.clear();
            }
            None => {}
        }
        self.clients.insert(client, ip);
    }

    /// Ends `ip`'s bindings from `source` at `ts` (a DHCP release, an NBNS
    /// release, an mDNS goodbye); `name`: only that name's.
    pub fn end(&self, ip: IpAddr, source: NameSource, name: Option<&str>, ts: u64) {
        self.map.update(&ip, |n| {
            for b in n.bindings.iter_mut() {
                if b.source == source && name.is_none_or(|n| *b.name == *n) && b.until_ns > ts {
                    b.until_ns = ts;
                }
            }
        });
    }

    /// The name of `ip` at time `at`: the valid binding of the best-ranked
    /// source, the latest seen among equals.
    pub fn lookup(&self, ip: IpAddr, at: u64) -> Option<(Arc<str>, NameSource)> {
        self.map.get(&ip, |n| {
            n.bindings
                .iter()
                .filter(|b| b.valid_at(at) && self.uses(b.source))
                .min_by(|a, b| {
                    (self.rank[a.source.index()], std::cmp::Reverse(a.last_ns))
                        .cmp(&(self.rank[b.source.index()], std::cmp::Reverse(b.last_ns)))
                })
                .map(|b| (Arc::clone(&b.name), b.source))
        })?
    }

    /// Every binding of `ip` (valid or not), for reports and tests.
    pub fn bindings(&self, ip: IpAddr) -> Vec<Binding> {
        self.map
            .get(&ip, |n| n.bindings.clone())
            .unwrap_or_default()
    }

    /// Drops bindings that ended before `now` and addresses left with none;
    /// at most once per second of capture time.
    pub fn sweep(&self, now: u64) {
        let last = self.swept_ns.load(Ordering::Relaxed);
        if now < last.saturating_add(1_000_000_000) {
            return;
        }
        self.swept_ns.store(now, Ordering::Relaxed);
        let keep = |s: NameSource| self.keep(s);
        self.map.retain(|_, n| {
            n.bindings.retain(|b| b.until_ns >= now);
            n.keep = n.bindings.iter().map(|b| keep(b.source)).max().unwrap_or(0);
            !n.bindings.is_empty()
        });
    }
}

/// A name as the census shows it: lower case, one trailing dot dropped,
/// anything but letters, digits, `-`, `_` and `.` as `?`; `None` when empty
/// or longer than [`MAX_NAME`].
pub fn clean_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\0").unwrap_or(raw);
    if raw.is_empty() || raw.len() > MAX_NAME {
        return None;
    }
    let bytes: Vec<u8> = raw
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                b.to_ascii_lowercase()
            } else {
                b'?'
            }
        })
        .collect();
    // Only ASCII is left.
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn names() -> HostNames {
        HostNames::new(&NameSettings {
            max_age_ns: 100 * S,
            max_addresses: 3,
            ..NameSettings::default()
        })
    }

    /// A DHCP lease of `secs` for `client`'s `name` on 10.0.0.`last` at `at`.
    fn lease(n: &HostNames, last: u8, name: &str, at: u64, secs: u64, client: u64) -> Bound {
        n.bind(
            ip(last),
            name,
            NameSource::Dhcp,
            at,
            Lifetime::Lease(secs),
            client,
        )
    }

    #[test]
    fn lease_expires() {
        let n = names();
        lease(&n, 1, "pc1", 10 * S, 60, 7);
        assert_eq!(n.lookup(ip(1), 5 * S), None, "not before it was seen");
        assert_eq!(n.lookup(ip(1), 69 * S).map(|x| x.1), Some(NameSource::Dhcp));
        assert_eq!(n.lookup(ip(1), 71 * S), None, "lease over");
        // A renewal extends it.
        lease(&n, 1, "pc1", 60 * S, 60, 7);
        assert!(n.lookup(ip(1), 119 * S).is_some());
    }

    #[test]
    fn address_changes_hands_and_name_moves() {
        let n = names();
        lease(&n, 1, "pc1", 10 * S, 3600, 7);
        // Client 8 gets the same address: pc1's lease ended then.
        lease(&n, 1, "pc2", 20 * S, 3600, 8);
        assert_eq!(&*n.lookup(ip(1), 15 * S).unwrap().0, "pc1");
        assert_eq!(&*n.lookup(ip(1), 25 * S).unwrap().0, "pc2");
        // Client 8 moves to another address: its old one has no name after.
        lease(&n, 2, "pc2", 30 * S, 3600, 8);
        assert_eq!(n.lookup(ip(1), 35 * S), None);
        assert_eq!(&*n.lookup(ip(1), 25 * S).unwrap().0, "pc2");
        assert_eq!(&*n.lookup(ip(2), 35 * S).unwrap().0, "pc2");
    }

    #[test]
    fn conflicting_names_kept_and_ranked() {
        let n = names();
        n.bind(
            ip(1),
            "laptop.local",
            NameSource::Mdns,
            10 * S,
            Lifetime::Age,
            0,
        );
        n.bind(ip(1), "LAPTOP", NameSource::Nbns, 11 * S, Lifetime::Age, 0);
        // NBNS ranks above mDNS by default; both are kept.
        assert_eq!(&*n.lookup(ip(1), 12 * S).unwrap().0, "LAPTOP");
        assert_eq!(n.bindings(ip(1)).len(), 2);
        n.end(ip(1), NameSource::Nbns, None, 13 * S);
        assert_eq!(&*n.lookup(ip(1), 14 * S).unwrap().0, "laptop.local");
        // Last seen plus the age.
        assert!(n.lookup(ip(1), 110 * S).is_some());
        assert!(n.lookup(ip(1), 111 * S).is_none());
        // A custom order: mDNS first, NBNS not used.
        let m = HostNames::new(&NameSettings {
            sources: vec![NameSource::Mdns, NameSource::Dhcp],
            ..NameSettings::default()
        });
        m.bind(ip(1), "x", NameSource::Nbns, 1, Lifetime::Age, 0);
        assert!(m.is_empty());
        m.bind(ip(1), "d", NameSource::Dhcp, 1, Lifetime::Age, 5);
        m.bind(ip(1), "m", NameSource::Mdns, 1, Lifetime::Age, 0);
        assert_eq!(&*m.lookup(ip(1), 2).unwrap().0, "m");
    }

    #[test]
    fn bounds_counted() {
        let n = names();
        for i in 0..BINDINGS_PER_ADDRESS as u64 + 2 {
            let got = n.bind(
                ip(1),
                &format!("n{i}"),
                NameSource::Mdns,
                i * S,
                Lifetime::Age,
                0,
            );
            let want = if i < BINDINGS_PER_ADDRESS as u64 {
                Bound::Stored
            } else {
                Bound::Replaced
            };
            assert_eq!(got, want, "{i}");
        }
        assert_eq!(n.bindings(ip(1)).len(), BINDINGS_PER_ADDRESS);
        n.bind(ip(2), "b", NameSource::Mdns, 10 * S, Lifetime::Age, 0);
        n.bind(ip(3), "c", NameSource::Mdns, 10 * S, Lifetime::Age, 0);
        // Full: the address held longest leaves for a name of the same rank.
        let got = n.bind(ip(4), "d", NameSource::Mdns, 11 * S, Lifetime::Age, 0);
        assert_eq!(got, Bound::Replaced);
        assert_eq!(n.len(), 3);
        assert!(n.bindings(ip(1)).is_empty());
        // Once bindings have ended, the sweep makes room.
        let got = n.bind(ip(5), "e", NameSource::Mdns, 500 * S, Lifetime::Age, 0);
        assert_eq!(got, Bound::Stored);
        assert_eq!(n.len(), 1);
    }

    /// A flood of spoofed mDNS claims cannot push DHCP names out: it only
    /// pushes out other self-claimed names, then is refused.
    #[test]
    fn flood_keeps_better_names() {
        let n = names();
        lease(&n, 1, "pc1", S, 3600, 7);
        lease(&n, 2, "pc2", S, 3600, 8);
        for i in 0..1000u32 {
            let spoofed = IpAddr::from([172, 16, (i >> 8) as u8, i as u8]);
            n.bind(
                spoofed,
                "x.local",
                NameSource::Mdns,
                2 * S,
                Lifetime::Age,
                0,
            );
            // Nor can claims on the named address itself.
            n.bind(
                ip(1),
                &format!("fake{i}"),
                NameSource::Nbns,
                2 * S,
                Lifetime::Age,
                0,
            );
        }
        assert_eq!(n.len(), 3);
        assert_eq!(&*n.lookup(ip(1), 3 * S).unwrap().0, "pc1");
        assert_eq!(&*n.lookup(ip(2), 3 * S).unwrap().0, "pc2");
        // A worse-ranked claim (LLMNR) cannot replace the mDNS one; an
        // mDNS claim replaces the mDNS address held longest.
        let got = n.bind(ip(9), "late", NameSource::Llmnr, 3 * S, Lifetime::Age, 0);
        assert_eq!(got, Bound::Full);
        let got = n.bind(
            ip(9),
            "late.local",
            NameSource::Mdns,
            3 * S,
            Lifetime::Age,
            0,
        );
        assert_eq!(got, Bound::Replaced);
        // A better-ranked name still gets in over the self-claimed ones.
        let got = lease(&n, 3, "pc3", 4 * S, 60, 9);
        assert_eq!(got, Bound::Replaced);
        assert_eq!(&*n.lookup(ip(3), 5 * S).unwrap().0, "pc3");
        // Only DHCP names left: an mDNS claim is refused.
        lease(&n, 4, "pc4", 4 * S, 60, 10);
        let got = n.bind(ip(5), "y.local", NameSource::Mdns, 5 * S, Lifetime::Age, 0);
        assert_eq!(got, Bound::Full);
        assert_eq!(n.lookup(ip(5), 6 * S), None);
    }

    #[test]
    fn names_cleaned() {
        assert_eq!(
            clean_name(b"PC-01.Corp.example."),
            Some("pc-01.corp.example".into())
        );
        assert_eq!(clean_name(b"a b\x1b"), Some("a?b?".into()));
        assert_eq!(clean_name(b""), None);
        assert_eq!(clean_name(&[b'a'; 300]), None);
    }
}
