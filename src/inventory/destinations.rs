//! Per-destination readiness: for each (service, destination) the census
//! saw, legacy and modern flows, the legacy sources and when they were
//! last seen, so an operator knows which storage accounts, servers and
//! vaults can be moved to TLS 1.2 only.
//!
//! Input: the target flows' destinations and outcomes. Output: a sorted
//! snapshot per destination. Invariants: at most [`MAX_DESTINATIONS`]
//! destinations (answered ones kept over unanswered ones, then by use) and
//! [`MAX_DESTINATION_SOURCES`] legacy sources each, the rest counted.

use std::net::IpAddr;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::{self, Admit, Policy, Upsert};

/// Destinations kept (service, destination pairs); beyond, a flow is only
/// counted (`bound="destinations"`), unless a server answered it and a
/// destination no server ever answered can make room ([`DESTINATIONS`]).
pub const MAX_DESTINATIONS: usize = 16_384;
/// Distinct legacy source hosts listed per destination (the rest counted).
pub const MAX_DESTINATION_SOURCES: usize = 64;

/// Readiness of one destination (a storage account, SQL server, namespace,
/// vault): can TLS 1.2 be enforced on it?
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationRecord {
    pub legacy: u64,
    pub modern: u64,
    /// Flows a server answered (negotiated or rejected); 0: perhaps only
    /// spoofed hellos, the first to go when the store is full.
    pub answered: u64,
    /// Distinct legacy source hosts, sorted by address (at most
    /// [`MAX_DESTINATION_SOURCES`]: the first seen; a binary search per
    /// flow finds a known one).
    pub legacy_sources: Vec<IpAddr>,
    pub sources_dropped: u64,
    /// Capture times of the first and last legacy flow (0: none).
    pub first_legacy_ns: u64,
    pub last_legacy_ns: u64,
    pub last_ns: u64,
    /// Server policies (--policy) some hellos to this destination would
    /// fail: a bit per policy, in configuration order.
    pub policy_fails: u16,
}

/// A destination's key: its service row (`u16::MAX`: beyond the rows) and
/// name. Looked up borrowed, as a [`DestView`], so a flow to a known
/// destination allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DestKey {
    service: u16,
    name: Box<str>,
}

/// A destination key, owned or borrowed.
trait DestView {
    fn parts(&self) -> (u16, &str);
}

impl DestView for DestKey {
    fn parts(&self) -> (u16, &str) {
        (self.service, &self.name)
    }
}

impl DestView for (u16, &str) {
    fn parts(&self) -> (u16, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn DestView + 'a> for DestKey {
    fn borrow(&self) -> &(dyn DestView + 'a) {
        self
    }
}

impl std::hash::Hash for DestKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl std::hash::Hash for dyn DestView + '_ {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn DestView + '_ {
    fn eq(&self, o: &Self) -> bool {
        self.parts() == o.parts()
    }
}

impl Eq for dyn DestView + '_ {}

/// Per-destination readiness, shared by all workers like the host inventory.
/// Key: the service (an index of `targets::services::table()`, or
/// `u16::MAX` for a target no service row covers) and the destination,
/// found borrowed ([`DestView`]), so a known destination costs no allocation.
pub struct Destinations {
    map: store::Shared<DestKey, DestinationRecord>,
    pub dropped: AtomicU64,
    /// Destinations no server answered, removed to make room.
    pub evicted: AtomicU64,
}

/// Who the destination store keeps when full: destinations a server
/// answered first; among equals, the newest stay out unless used more.
pub const DESTINATIONS: Policy<DestinationRecord> = Policy {
    ranks: 2,
    rank: |r| u8::from(r.answered > 0),
    uses: |r| r.legacy + r.modern,
    admit: Admit::Frequency,
};

impl Default for Destinations {
    fn default() -> Self {
        Destinations {
            map: store::Shared::new(MAX_DESTINATIONS, DESTINATIONS),
            dropped: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }
}

/// The store's key of a service row (rows beyond the table share one).
fn service_key(service: u16) -> u16 {
    if usize::from(service) >= crate::targets::services::MAX_ROWS {
        u16::MAX
    } else {
        service
    }
}

impl Destinations {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one target flow (`answered`: a server answered it;
    /// `policy_fails`: the policies its hello fails) to its destination;
    /// false when the store is full and the flow was only counted, or
    /// another destination was given up for it.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        service: u16,
        destination: &str,
        src: IpAddr,
        legacy: bool,
        answered: bool,
        ts: u64,
        policy_fails: u16,
    ) -> bool {
        let service = service_key(service);
        let owned = || DestKey {
            service,
            name: Box::from(destination),
        };
        let update = |r: &mut DestinationRecord| {
            r.answered += u64::from(answered);
            r.last_ns = r.last_ns.max(ts);
            r.policy_fails |= policy_fails;
            if !legacy {
                r.modern += 1;
                return;
            }
            r.legacy += 1;
            if r.first_legacy_ns == 0 || ts < r.first_legacy_ns {
                r.first_legacy_ns = ts;
            }
            r.last_legacy_ns = r.last_legacy_ns.max(ts);
            if let Err(at) = r.legacy_sources.binary_search(&src) {
                if r.legacy_sources.len() < MAX_DESTINATION_SOURCES {
                    r.legacy_sources.insert(at, src);
                } else {
                    r.sources_dropped += 1;
                }
            }
        };
        let view: &dyn DestView = &(service, destination);
        let rank = u8::from(answered);
        match (self.map).upsert_borrowed(view, owned, rank, DestinationRecord::default, update) {
            Upsert::Held(()) | Upsert::Added(()) => true,
            Upsert::Displaced(..) => {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                false
            }
            Upsert::Refused => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Puts back a destination saved in a state file; false when full.
    pub fn restore(&self, service: u16, destination: &str, mut record: DestinationRecord) -> bool {
        record.legacy_sources.truncate(MAX_DESTINATION_SOURCES);
        record.legacy_sources.sort_unstable();
        record.legacy_sources.dedup();
        let key = DestKey {
            service: service_key(service),
            name: Box::from(destination),
        };
        self.map.contains(&key) || self.map.insert_if_room(key, record)
    }

    /// A sorted copy: most recent legacy flow first, then most legacy
    /// flows, then by service and name.
    pub fn snapshot(&self) -> Vec<((u16, String), DestinationRecord)> {
        let mut v: Vec<((u16, String), DestinationRecord)> = Vec::with_capacity(self.len());
        self.map
            .for_each(|k, r| v.push(((k.service, k.name.to_string()), r.clone())));
        v.sort_by(|a, b| {
            b.1.last_legacy_ns
                .cmp(&a.1.last_legacy_ns)
                .then(b.1.legacy.cmp(&a.1.legacy))
                .then(a.0.cmp(&b.0))
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_readiness() {
        let d = Destinations::default();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        d.record(0, "acct", ip(1), false, true, 5, 0);
        d.record(0, "acct", ip(1), true, true, 7, 0);
        d.record(0, "acct", ip(2), true, true, 3, 0);
        d.record(0, "acct", ip(1), true, true, 9, 0);
        d.record(6, "srv", ip(3), false, true, 8, 0);
        let snap = d.snapshot();
        assert_eq!(snap[0].0, (0, "acct".to_string()));
        let a = &snap[0].1;
        assert_eq!(
            (a.legacy, a.modern, a.first_legacy_ns, a.last_legacy_ns),
            (3, 1, 3, 9)
        );
        assert_eq!(a.legacy_sources, [ip(1), ip(2)]);
        assert_eq!(snap[1].1.legacy, 0);
        for n in 0..MAX_DESTINATION_SOURCES as u32 + 5 {
            d.record(
                1,
                "many",
                IpAddr::from(std::net::Ipv4Addr::from(n)),
                true,
                true,
                1,
                0,
            );
        }
        let many = d
            .snapshot()
            .into_iter()
            .find(|x| x.0.1 == "many")
            .unwrap()
            .1;
        assert_eq!(many.legacy_sources.len(), MAX_DESTINATION_SOURCES);
        assert_eq!(many.sources_dropped, 5);
    }

    #[test]
    fn full_destinations_give_up_unanswered_ones() {
        let d = Destinations::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        assert!(d.record(0, "real", ip, true, true, 1, 0));
        for n in 1..MAX_DESTINATIONS {
            assert!(d.record(0, &format!("spoof{n}"), ip, true, false, 2, 0));
        }
        // Answered later: kept.
        assert!(d.record(0, "spoof1", ip, true, true, 3, 0));
        assert!(!d.record(3, "spoof-more", ip, true, false, 4, 0));
        assert_eq!(d.dropped.load(Ordering::Relaxed), 1);
        assert!(
            !d.record(3, "late-real", ip, true, true, 5, 0),
            "kept, by giving one up"
        );
        assert_eq!(d.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(d.len(), MAX_DESTINATIONS);
        let names: Vec<String> = d.snapshot().into_iter().map(|((_, n), _)| n).collect();
        for kept in ["real", "spoof1", "late-real"] {
            assert!(names.iter().any(|n| n == kept), "{kept}");
        }
        let spoofs = names.iter().filter(|n| n.starts_with("spoof")).count();
        assert_eq!(spoofs, MAX_DESTINATIONS - 2, "one unanswered one gave way");
    }
}
