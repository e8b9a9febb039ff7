//! The one bounded map the census' stores share: the inventory, the labelled
//! legacy sources, passive host names and passive DNS.
//!
//! Input: keys with a value made on first use. Output: the value, or a
//! refusal when the store is full and the newcomer is worth less than every
//! entry it could displace. Invariants: at most `cap` entries (exact: every
//! admission to a full store happens under one lock, or on the one thread
//! that owns a [`Local`] store); every displacement and refusal is returned
//! to the caller, which counts it as a bound hit; bookkeeping is bounded by
//! the cap (the eviction queues hold at most about twice the entries; the
//! frequency sketch holds four one-byte counters and about ten doorkeeper
//! bytes per entry of the cap, rounded up to powers of two).
//!
//! Who is kept is a [`Policy`], a parameter of each store:
//! - a **rank** (`Policy::rank`): a newcomer never displaces an entry of a
//!   higher rank, and displaces the oldest entry of a lower rank at once.
//!   The census ranks hosts a server answered above hosts none answered: a
//!   ClientHello needs no TCP handshake, so spoofed hello floods cannot push
//!   out a host a server really talked to;
//! - between equal ranks, [`Admit::Frequency`] (TinyLFU): a count-min sketch
//!   counts the flows of keys the store turned away, and a newcomer
//!   displaces the least used of a few of the oldest entries of its rank only
//!   when it has been seen more often than that entry was used
//!   (`Policy::uses`, exact). The sketch never underestimates, so a host
//!   that keeps making flows gets in at its second flow when the entries it
//!   meets were used once; it may overestimate (keys sharing counters or
//!   doorkeeper bits), so a one-shot newcomer now and then displaces a
//!   one-shot entry, but estimates stop at 15: an entry used 15 times or
//!   more is never displaced by an equal, whatever the flood. The sketch
//!   halves its counts every ten times the cap of refusals, so a past burst
//!   does not count forever.
//!   [`Admit::Newest`] always lets the newcomer in (passive DNS: the answer
//!   just seen is the one the next flow needs).

mod admission;
pub mod pool;

use std::hash::Hash;
use std::sync::Mutex;

use crate::sync::lock;
use std::sync::atomic::{AtomicUsize, Ordering};

use admission::{Choice, Order, Sketch, Slot};
pub use pool::Pool;

use dashmap::DashMap;

/// Between entries of equal rank, who gets in when the store is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// TinyLFU: the newcomer only if it was seen more often than the entry
    /// it would displace was used.
    Frequency,
    /// The newcomer always, in place of the oldest entry.
    Newest,
}

/// How a store chooses whom to keep.
pub struct Policy<V> {
    /// Ranks `0..ranks` (at most 16); an entry's rank may change as it is used.
    pub ranks: u8,
    /// An entry's rank: higher ranks are kept first.
    pub rank: fn(&V) -> u8,
    /// How often an entry was used (flows, answers): its defence against a
    /// newcomer of equal rank under [`Admit::Frequency`]. At least 1 for an
    /// entry a use made.
    pub uses: fn(&V) -> u64,
    pub admit: Admit,
}

impl<V> Clone for Policy<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Policy<V> {}

/// What an upsert did.
#[derive(Debug, PartialEq, Eq)]
pub enum Upsert<T, K, V> {
    /// The key was held; `T` is what the update returned.
    Held(T),
    /// The key was added, into room the store had.
    Added(T),
    /// The key was added in place of this entry.
    Displaced(T, K, V),
    /// The store is full and the newcomer is worth less than its victims.
    Refused,
}

impl<T, K, V> Upsert<T, K, V> {
    /// What the update returned, unless refused.
    pub fn value(self) -> Option<T> {
        match self {
            Upsert::Held(t) | Upsert::Added(t) | Upsert::Displaced(t, _, _) => Some(t),
            Upsert::Refused => None,
        }
    }
}

/// A bounded map shared between threads: a [`DashMap`] whose admissions to
/// a full store are serialised by one mutex. Lookups and updates of held
/// keys take only the key's shard lock.
pub struct Shared<K, V> {
    map: DashMap<K, Slot<V>, ahash::RandomState>,
    cap: usize,
    count: AtomicUsize,
    /// Made when the store first turns a key away: a store that never
    /// fills never pays for it.
    sketch: std::sync::OnceLock<Sketch>,
    order: Mutex<Order<K>>,
    policy: Policy<V>,
}

impl<K: Hash + Eq + Clone, V> Shared<K, V> {
    pub fn new(cap: usize, policy: Policy<V>) -> Shared<K, V> {
        Shared {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            cap: cap.max(1),
            count: AtomicUsize::new(0),
            sketch: std::sync::OnceLock::new(),
            order: Mutex::new(Order::new(policy.ranks)),
            policy,
        }
    }

    /// Entries held (a counter: `DashMap::len` locks every shard).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// `f` of the value of `key`, under that key's shard lock only.
    pub fn get<T>(&self, key: &K, f: impl FnOnce(&V) -> T) -> Option<T> {
        // An empty store (no names learnt on this mirror, say) answers
        // without hashing the key or taking a shard lock.
        if self.is_empty() {
            return None;
        }
        self.map.get(key).map(|s| f(&s.value))
    }

    /// Updates the value of a held key, under its shard lock only.
    pub fn update<T>(&self, key: &K, f: impl FnOnce(&mut V) -> T) -> Option<T> {
        if self.is_empty() {
            return None;
        }
        self.map.get_mut(key).map(|mut s| f(&mut s.value))
    }

    /// Updates the value of `key` with `f`, adding `make()` first when the
    /// key is new and the policy admits a newcomer of rank `rank`.
    pub fn upsert<T>(
        &self,
        key: K,
        rank: u8,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> T,
    ) -> Upsert<T, K, V> {
        if let Some(mut s) = self.map.get_mut(&key) {
            return Upsert::Held(f(&mut s.value));
        }
        self.admit(key, rank, make, f)
    }

    /// As [`Shared::upsert`], looking the key up borrowed: `owned` makes the
    /// key only when it is not held (no allocation per use of a held key).
    pub fn upsert_borrowed<Q, T>(
        &self,
        key: &Q,
        owned: impl FnOnce() -> K,
        rank: u8,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> T,
    ) -> Upsert<T, K, V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(mut s) = self.map.get_mut(key) {
            return Upsert::Held(f(&mut s.value));
        }
        self.admit(owned(), rank, make, f)
    }

    /// The slow path of [`Shared::upsert`]: a key not held.
    fn admit<T>(
        &self,
        key: K,
        rank: u8,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> T,
    ) -> Upsert<T, K, V> {
        let mut order = lock(&self.order);
        if let Some(mut s) = self.map.get_mut(&key) {
            return Upsert::Held(f(&mut s.value));
        }
        let mut displaced = None;
        if self.len() >= self.cap {
            let sketch = self.sketch.get_or_init(|| Sketch::new(self.cap));
            let seen = sketch.add(sketch.hash(&key));
            let probe = |k: &K, t: u32| self.probe(k, t);
            order.compact(self.len(), probe);
            match order.choose(rank, seen, self.policy.admit, probe) {
                Choice::Refuse => return Upsert::Refused,
                Choice::Victim(k) => {
                    if let Some((k, s)) = self.map.remove(&k) {
                        self.count.fetch_sub(1, Ordering::Relaxed);
                        displaced = Some((k, s.value));
                    }
                }
            }
        }
        let ticket = order.push(key.clone(), rank);
        let mut value = make();
        let out = f(&mut value);
        self.map.insert(key, Slot { value, ticket });
        self.count.fetch_add(1, Ordering::Relaxed);
        match displaced {
            Some((k, v)) => Upsert::Displaced(out, k, v),
            None => Upsert::Added(out),
        }
    }

    fn probe(&self, key: &K, ticket: u32) -> Option<(u8, u64)> {
        let s = self.map.get(key)?;
        (s.ticket == ticket).then(|| ((self.policy.rank)(&s.value), (self.policy.uses)(&s.value)))
    }

    /// Puts `value` in when there is room (no displacement: a restored
    /// state file, for one); false when full.
    pub fn insert_if_room(&self, key: K, value: V) -> bool {
        let mut order = lock(&self.order);
        if self.map.contains_key(&key) || self.len() >= self.cap {
            return false;
        }
        let ticket = order.push(key.clone(), (self.policy.rank)(&value));
        self.map.insert(key, Slot { value, ticket });
        self.count.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Keeps the entries `keep` says to (it may change them); returns the
    /// others, removed.
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) -> Vec<(K, V)> {
        let _order = lock(&self.order);
        let dead: Vec<K> = (self.map.iter_mut())
            .filter_map(|mut e| {
                let (k, s) = e.pair_mut();
                (!keep(k, &mut s.value)).then(|| k.clone())
            })
            .collect();
        let gone: Vec<(K, V)> = (dead.iter())
            .filter_map(|k| self.map.remove(k))
            .map(|(k, s)| (k, s.value))
            .collect();
        self.count.fetch_sub(gone.len(), Ordering::Relaxed);
        gone
    }

    /// Calls `f` on every entry (each under its shard's read lock).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for e in self.map.iter() {
            f(e.key(), &e.value().value);
        }
    }

    /// Moves every entry out, leaving the store empty.
    pub fn drain(&self) -> Vec<(K, V)> {
        let mut order = lock(&self.order);
        let keys: Vec<K> = self.map.iter().map(|e| e.key().clone()).collect();
        let v: Vec<(K, V)> = keys
            .iter()
            .filter_map(|k| self.map.remove(k))
            .map(|(k, s)| (k, s.value))
            .collect();
        self.count.store(self.map.len(), Ordering::Relaxed);
        self.map.shrink_to_fit();
        *order = Order::new(self.policy.ranks);
        v
    }
}

/// A bounded map one thread owns: the same policy as [`Shared`], without
/// locks or atomics on the map.
pub struct Local<K, V> {
    map: hashbrown::HashMap<K, Slot<V>, ahash::RandomState>,
    cap: usize,
    /// Made when the store first turns a key away.
    sketch: Option<Sketch>,
    order: Order<K>,
    policy: Policy<V>,
}

impl<K: Hash + Eq + Clone, V> Local<K, V> {
    pub fn new(cap: usize, policy: Policy<V>) -> Local<K, V> {
        Local {
            map: hashbrown::HashMap::with_hasher(ahash::RandomState::new()),
            cap: cap.max(1),
            sketch: None,
            order: Order::new(policy.ranks),
            policy,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        Q: Hash + hashbrown::Equivalent<K> + ?Sized,
    {
        self.map.get(key).map(|s| &s.value)
    }

    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        Q: Hash + hashbrown::Equivalent<K> + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// As [`Shared::upsert`].
    pub fn upsert<T>(
        &mut self,
        key: K,
        rank: u8,
        make: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> T,
    ) -> Upsert<T, K, V> {
        if let Some(s) = self.map.get_mut(&key) {
            return Upsert::Held(f(&mut s.value));
        }
        let mut displaced = None;
        if self.map.len() >= self.cap {
            let cap = self.cap;
            let sketch = self.sketch.get_or_insert_with(|| Sketch::new(cap));
            let seen = sketch.add(sketch.hash(&key));
            let (map, policy) = (&self.map, self.policy);
            let probe = |k: &K, t: u32| {
                let s = map.get(k)?;
                (s.ticket == t).then(|| ((policy.rank)(&s.value), (policy.uses)(&s.value)))
            };
            self.order.compact(map.len(), probe);
            match self.order.choose(rank, seen, policy.admit, probe) {
                Choice::Refuse => return Upsert::Refused,
                Choice::Victim(k) => {
                    displaced = self.map.remove_entry(&k).map(|(k, s)| (k, s.value))
                }
            }
        }
        let ticket = self.order.push(key.clone(), rank);
        let mut value = make();
        let out = f(&mut value);
        self.map.insert(key, Slot { value, ticket });
        match displaced {
            Some((k, v)) => Upsert::Displaced(out, k, v),
            None => Upsert::Added(out),
        }
    }

    /// Updates the value of a held key.
    pub fn update<Q, T>(&mut self, key: &Q, f: impl FnOnce(&mut V) -> T) -> Option<T>
    where
        Q: Hash + hashbrown::Equivalent<K> + ?Sized,
    {
        self.map.get_mut(key).map(|s| f(&mut s.value))
    }

    /// Keeps the entries `keep` says to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.map.retain(|k, s| keep(k, &mut s.value));
        let (map, policy) = (&self.map, self.policy);
        self.order.compact(map.len(), |k, t| {
            let s = map.get(k)?;
            (s.ticket == t).then(|| ((policy.rank)(&s.value), (policy.uses)(&s.value)))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use admission::MAX_COUNT;

    /// Rank 1 when answered; uses = flows.
    #[derive(Default)]
    struct Host {
        flows: u64,
        answered: bool,
    }

    const HOSTS: Policy<Host> = Policy {
        ranks: 2,
        rank: |h| u8::from(h.answered),
        uses: |h| h.flows,
        admit: Admit::Frequency,
    };

    fn flow(s: &Shared<u32, Host>, key: u32, answered: bool) -> bool {
        let up = s.upsert(key, u8::from(answered), Host::default, |h| {
            h.flows += 1;
            h.answered |= answered;
        });
        up != Upsert::Refused
    }

    impl PartialEq for Host {
        fn eq(&self, o: &Host) -> bool {
            (self.flows, self.answered) == (o.flows, o.answered)
        }
    }

    impl std::fmt::Debug for Host {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Host({}, {})", self.flows, self.answered)
        }
    }

    #[test]
    fn store_one_shots_keep_out_of_regulars_and_a_regular_gets_in() {
        let s = Shared::new(1000, HOSTS);
        // A regular, then a flood of one-shot answered sources.
        for _ in 0..50 {
            assert!(flow(&s, 1, true));
        }
        let mut refused = 0;
        for k in 100..100_100 {
            refused += u32::from(!flow(&s, k, true));
        }
        assert_eq!(s.len(), 1000);
        eprintln!("one-shots refused: {refused} of 100000");
        assert!(refused > 90_000, "{refused}");
        assert_eq!(s.get(&1, |h| h.flows), Some(50));
        // Newcomers making flows get in within two.
        for k in 0..100 {
            let key = 1_000_000 + k;
            let tries = (1..=2).find(|_| flow(&s, key, true));
            assert!(tries.is_some(), "newcomer {k} kept out");
        }
        assert_eq!(s.len(), 1000);
    }

    #[test]
    fn store_answered_displaces_unanswered_at_once() {
        let s = Shared::new(3, HOSTS);
        for k in 0..3 {
            assert!(flow(&s, k, false));
        }
        // Unanswered one-shots do not displace each other.
        assert!(!flow(&s, 10, false));
        // An answered newcomer takes the oldest unanswered one's place.
        let up = s.upsert(11, 1, Host::default, |h| h.flows += 1);
        assert!(matches!(up, Upsert::Displaced((), 0, _)), "{up:?}");
        // An entry answered since it came is not a victim of rank 0.
        assert!(flow(&s, 1, true));
        let up = s.upsert(12, 1, Host::default, |h| h.flows += 1);
        assert!(matches!(up, Upsert::Displaced((), 2, _)), "{up:?}");
        // Now all answered: an unanswered newcomer never gets in.
        for _ in 0..20 {
            assert!(!flow(&s, 13, false));
        }
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn store_newest_always_gets_in() {
        let mut s: Local<u32, Host> = Local::new(
            2,
            Policy {
                admit: Admit::Newest,
                ..HOSTS
            },
        );
        for k in 0..5 {
            assert!(s.upsert(k, 0, Host::default, |h| h.flows += 1) != Upsert::Refused);
        }
        assert_eq!(s.len(), 2);
        assert!(s.contains(&3) && s.contains(&4));
    }

    #[test]
    fn store_tickets_stay_bounded_under_churn() {
        let mut s: Local<u32, Host> = Local::new(8, HOSTS);
        for round in 0..10_000u32 {
            let k = round % 64;
            s.upsert(k, 1, Host::default, |h| h.flows += 1);
            if round % 3 == 0 {
                s.retain(|k, _| k % 2 == 0);
            }
        }
        assert!(s.len() <= 8);
        assert!(s.order.queued <= 2 * 8 + 64 + 1, "{}", s.order.queued);
    }

    #[test]
    fn store_sketch_ages() {
        let sk = Sketch::new(64);
        let h = sk.hash(&42u32);
        for _ in 0..20 {
            sk.add(h);
        }
        assert_eq!(sk.estimate(h), MAX_COUNT);
        for k in 0..640u32 {
            sk.add(sk.hash(&(k + 1000)));
        }
        assert!(sk.estimate(h) <= MAX_COUNT / 2, "{}", sk.estimate(h));
    }

    #[test]
    fn store_retain_returns_removed() {
        let s = Shared::new(10, HOSTS);
        for k in 0..6 {
            flow(&s, k, true);
        }
        let mut gone = s.retain(|k, _| k % 2 == 0);
        gone.sort_by_key(|(k, _)| *k);
        assert_eq!(gone.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 3, 5]);
        assert_eq!(s.len(), 3);
        assert_eq!(s.drain().len(), 3);
        assert!(s.is_empty());
    }
}
