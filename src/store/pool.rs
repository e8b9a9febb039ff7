//! A bounded pool of shared values: each distinct value is held once,
//! however many entries of a store refer to it (the inventory's server
//! names: thousands of hosts name the same few servers).
//!
//! Input: values to hold. Output: a shared handle to the pool's copy, or
//! `None` when a new value does not fit in the byte budget. Invariants:
//! every handle the pool gives out is to a value it counted when it took
//! the value in, and it forgets a value (and its charge) only when no
//! handle to it is left, so the values alive, in the pool or held by
//! anyone, never weigh more than the budget. Each value is charged its
//! bytes plus [`ENTRY_CHARGE`] for the allocation and the map slot. When
//! full, the pool sweeps out values nobody holds any more, at most once
//! per eighth of its entries turned away or released
//! ([`Pool::released`]), so a sweep costs a few entry visits per event.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::sync::lock;

/// Bytes charged per value beyond its own: the shared allocation's
/// counts and allocator overhead, and the map slot with its spare room.
pub const ENTRY_CHARGE: usize = 64;

pub struct Pool<T: ?Sized + Hash + Eq> {
    values: DashMap<Arc<T>, (), ahash::RandomState>,
    bytes: AtomicUsize,
    budget: usize,
    /// Refusals and releases since the last sweep.
    pressure: AtomicUsize,
    sweeping: Mutex<()>,
}

impl<T: ?Sized + Hash + Eq> Pool<T> {
    pub fn new(budget: usize) -> Pool<T> {
        Pool {
            values: DashMap::with_hasher(ahash::RandomState::new()),
            bytes: AtomicUsize::new(0),
            budget,
            pressure: AtomicUsize::new(0),
            sweeping: Mutex::new(()),
        }
    }

    /// The pool's handle to `value`, taking a copy in if it is new and
    /// fits; `None` when it does not (the caller counts it: the inventory as
    /// `bound="server_names"`).
    pub fn intern(&self, value: &T) -> Option<Arc<T>>
    where
        for<'a> Arc<T>: From<&'a T>,
    {
        if let Some(held) = self.values.get(value) {
            return Some(Arc::clone(held.key()));
        }
        let charge = std::mem::size_of_val(value) + ENTRY_CHARGE;
        if !self.reserve(charge) {
            self.sweep_if_due();
            if !self.reserve(charge) {
                self.pressure.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
        let made = Arc::from(value);
        let entry = self.values.entry(made);
        let handle = Arc::clone(entry.key());
        if let dashmap::Entry::Vacant(v) = entry {
            v.insert(());
        } else {
            // Another thread took the same value in meanwhile.
            self.bytes.fetch_sub(charge, Ordering::Relaxed);
        }
        Some(handle)
    }

    /// Tells the pool that `n` handles were dropped (a store removed an
    /// entry that held them): their values may be free to sweep.
    pub fn released(&self, n: usize) {
        if n > 0 {
            self.pressure.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes charged for the values held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn reserve(&self, charge: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                (b + charge <= self.budget).then_some(b + charge)
            })
            .is_ok()
    }

    /// Forgets the values nobody else holds, once enough refusals or
    /// releases came since the last sweep to pay for the pass.
    fn sweep_if_due(&self) {
        let due = (self.values.len() / 8).max(64);
        if self.pressure.load(Ordering::Relaxed) < due {
            return;
        }
        let Ok(_one) = self.sweeping.try_lock() else {
            return; // another thread is sweeping
        };
        self.pressure.store(0, Ordering::Relaxed);
        self.sweep_unlocked();
    }

    /// Forgets every value nobody else holds. The shard lock held while
    /// a value is looked at keeps anyone from taking a new handle to it.
    pub fn sweep(&self) {
        let _one = lock(&self.sweeping);
        self.sweep_unlocked();
    }

    fn sweep_unlocked(&self) {
        let mut freed = 0;
        self.values.retain(|v, _| {
            let keep = Arc::strong_count(v) > 1;
            if !keep {
                freed += std::mem::size_of_val(&**v) + ENTRY_CHARGE;
            }
            keep
        });
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: u32) -> String {
        format!("host{n:04}.example.com") // 20 bytes
    }

    #[test]
    fn pool_holds_each_value_once() {
        let p: Pool<str> = Pool::new(1 << 20);
        let a = p.intern("a.example").unwrap();
        let b = p.intern("a.example").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(p.len(), 1);
        assert_eq!(p.bytes(), 9 + ENTRY_CHARGE);
    }

    #[test]
    fn pool_refuses_beyond_its_budget_and_counts() {
        let p: Pool<str> = Pool::new(10 * (20 + ENTRY_CHARGE));
        let held: Vec<_> = (0..10).map(|n| p.intern(&name(n))).collect();
        assert!(held.iter().all(Option::is_some));
        let refused = (10..1000).filter(|&n| p.intern(&name(n)).is_none()).count();
        assert_eq!(refused, 990);
        assert_eq!(p.len(), 10);
        // What is held is still given out.
        assert!(p.intern(&name(3)).is_some());
    }

    #[test]
    fn pool_makes_room_once_values_are_released() {
        let p: Pool<str> = Pool::new(100 * (20 + ENTRY_CHARGE));
        let mut held: Vec<_> = (0..100).map(|n| p.intern(&name(n))).collect();
        // The holders of half the values go away.
        held.truncate(50);
        p.released(50);
        // Newcomers are refused until the pressure pays for a sweep, then
        // take the freed room; the values still held are never dropped.
        let got = (100..1000)
            .filter(|&n| {
                p.intern(&name(n)).is_some_and(|h| {
                    held.push(Some(h));
                    true
                })
            })
            .count();
        assert_eq!(got, 50);
        assert!(p.bytes() <= 100 * (20 + ENTRY_CHARGE));
        for (n, h) in held.iter().take(50).enumerate() {
            let again = p.intern(&name(n as u32)).unwrap();
            assert!(Arc::ptr_eq(h.as_ref().unwrap(), &again));
        }
    }

    #[test]
    fn pool_sweep_keeps_held_values() {
        let p: Pool<str> = Pool::new(1 << 20);
        let kept = p.intern("kept").unwrap();
        drop(p.intern("gone"));
        p.sweep();
        assert_eq!(p.len(), 1);
        assert_eq!(p.bytes(), 4 + ENTRY_CHARGE);
        assert!(Arc::ptr_eq(&kept, &p.intern("kept").unwrap()));
    }
}
