//! Creation order with lazy removal: the queue a bounded table keeps to evict
//! the entry it made first, in O(1) amortized per operation.
//!
//! Input: keys as their entries are made (each gets a serial, which tells an
//! entry from a later one with the same key). Output: the oldest key still
//! live. Invariant: entries removed from the table by other means stay in the
//! queue until met or until [`CreationOrder::compact`] drops them, which it does
//! once they outnumber the live ones, so the queue follows the table's size.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct CreationOrder<K> {
    queue: VecDeque<(K, u64)>,
    next: u64,
}

impl<K> Default for CreationOrder<K> {
    fn default() -> Self {
        CreationOrder {
            queue: VecDeque::new(),
            next: 0,
        }
    }
}

impl<K> CreationOrder<K> {
    /// Records a new entry; returns its serial (store it with the entry).
    pub fn push(&mut self, key: K) -> u64 {
        let serial = self.next;
        self.next += 1;
        self.queue.push_back((key, serial));
        serial
    }

    /// Takes the oldest entry for which `live(key, serial)` holds (the table
    /// still has it, with that serial); entries met on the way are dropped.
    pub fn pop_oldest(&mut self, mut live: impl FnMut(&K, u64) -> bool) -> Option<K> {
        while let Some((key, serial)) = self.queue.pop_front() {
            if live(&key, serial) {
                return Some(key);
            }
        }
        None
    }

    /// Drops the entries of removed ones once the queue is longer than twice
    /// `live_count` plus `slack`: a pass over n entries follows at least n/2
    /// pushes.
    pub fn compact(
        &mut self,
        live_count: usize,
        slack: usize,
        mut live: impl FnMut(&K, u64) -> bool,
    ) {
        if self.queue.len() > live_count.saturating_mul(2) + slack {
            self.queue.retain(|(k, s)| live(k, *s));
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn order_skips_removed_and_reused_keys() {
        let mut live: HashMap<&str, u64> = HashMap::new();
        let mut o = CreationOrder::default();
        for k in ["a", "b", "c"] {
            live.insert(k, o.push(k));
        }
        live.remove("a"); // removed by other means
        live.insert("b", o.push("b")); // made again: the old "b" entry is stale
        let is_live = |l: &HashMap<&str, u64>, k: &&str, s: u64| l.get(k) == Some(&s);
        assert_eq!(o.pop_oldest(|k, s| is_live(&live, k, s)), Some("c"));
        assert_eq!(o.pop_oldest(|k, s| is_live(&live, k, s)), Some("b"));
        assert_eq!(o.pop_oldest(|k, s| is_live(&live, k, s)), None);
    }

    #[test]
    fn order_compacts_to_the_live_size() {
        let mut o = CreationOrder::default();
        for i in 0..100u32 {
            o.push(i);
        }
        o.compact(10, 0, |k, _| *k >= 90);
        assert_eq!(o.len(), 10);
        o.compact(10, 0, |_, _| false); // 10 <= 2 * 10: nothing to do
        assert_eq!(o.len(), 10);
    }
}
