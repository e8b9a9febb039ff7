//! Who a full store admits: the frequency sketch (TinyLFU) and the
//! per-rank eviction queues that [`super::Shared`] and [`super::Local`] share.
//!
//! Input: sightings of keys a store turned away, and the store's entries in
//! the order they came. Output: the victim a newcomer displaces, or a
//! refusal. Invariants: the sketch's size is fixed by the cap when made;
//! the queues hold at most about twice the store's entries.

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use super::Admit;

/// Sketch counters saturate here, as in TinyLFU (four bits' worth).
pub(super) const MAX_COUNT: u8 = 15;
const ROWS: usize = 4;
/// Oldest entries of the victim's rank looked at per admission.
const SAMPLE: usize = 4;

/// A count-min sketch of small saturating counters behind a doorkeeper (a
/// Bloom filter that takes each key's first sighting): how often keys the
/// store turned away were seen. One-shot keys only set doorkeeper bits, so
/// a flood of them does not fill the counters; every `period` sightings the
/// counters halve and the doorkeeper clears.
pub(super) struct Sketch {
    counters: Box<[AtomicU8]>,
    mask: usize,
    door: Box<[AtomicU64]>,
    door_mask: u64,
    hasher: ahash::RandomState,
    added: AtomicU64,
    period: u64,
}

impl Sketch {
    pub(super) fn new(cap: usize) -> Sketch {
        let cap = cap.clamp(16, 1 << 24);
        let width = cap.next_power_of_two();
        let period = cap as u64 * 10;
        // About eight doorkeeper bits per sighting of a period: under 3%
        // false positives with three probes.
        let door_bits = (period * 8).next_power_of_two();
        Sketch {
            counters: (0..width * ROWS).map(|_| AtomicU8::new(0)).collect(),
            mask: width - 1,
            door: (0..door_bits / 64).map(|_| AtomicU64::new(0)).collect(),
            door_mask: door_bits - 1,
            hasher: ahash::RandomState::new(),
            added: AtomicU64::new(0),
            period,
        }
    }

    pub(super) fn slots(&self, h: u64) -> impl Iterator<Item = usize> + '_ {
        let (a, b) = (h as usize, ((h >> 32) as usize) | 1);
        (0..ROWS).map(move |row| {
            row * (self.mask + 1) + (a.wrapping_add(row.wrapping_mul(b)) & self.mask)
        })
    }

    pub(super) fn door_bits(&self, h: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        let (a, b) = (h.rotate_left(21), (h.rotate_left(42)) | 1);
        (0..3u64).map(move |i| {
            let bit = a.wrapping_add(i.wrapping_mul(b)) & self.door_mask;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    pub(super) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Counts one sighting; returns the estimate after it.
    pub(super) fn add(&self, h: u64) -> u8 {
        let mut first = false;
        for (word, bit) in self.door_bits(h) {
            first |= self.door[word].fetch_or(bit, Ordering::Relaxed) & bit == 0;
        }
        if !first {
            // Conservative update: only the counters at the minimum grow.
            let min = self.counters_min(h);
            if min < MAX_COUNT - 1 {
                for i in self.slots(h) {
                    let c = &self.counters[i];
                    if c.load(Ordering::Relaxed) == min {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if self.added.fetch_add(1, Ordering::Relaxed) + 1 >= self.period {
            self.added.store(0, Ordering::Relaxed);
            for c in self.counters.iter() {
                c.store(c.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
            }
            for w in self.door.iter() {
                w.store(0, Ordering::Relaxed);
            }
            return self.estimate(h);
        }
        // The doorkeeper holds the key now: no need to look again.
        self.counters_min(h) + 1
    }

    pub(super) fn counters_min(&self, h: u64) -> u8 {
        self.slots(h)
            .map(|i| self.counters[i].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Sightings since the last halving (the doorkeeper's one included).
    pub(super) fn estimate(&self, h: u64) -> u8 {
        let door = self
            .door_bits(h)
            .all(|(word, bit)| self.door[word].load(Ordering::Relaxed) & bit != 0);
        self.counters_min(h) + u8::from(door)
    }
}

/// An entry's place in the eviction queues: valid while the entry holds the
/// same ticket (a key removed and added again gets a new one).
pub(super) struct Slot<V> {
    pub(super) value: V,
    pub(super) ticket: u32,
}

/// The eviction queues, one per rank, oldest first. An entry is queued
/// under the rank it had when last looked at; one whose rank changed is
/// moved when met, and stale tickets are dropped when met or compacted.
pub(super) struct Order<K> {
    queues: Vec<VecDeque<(K, u32)>>,
    pub(super) queued: usize,
    next_ticket: u32,
}

/// What [`Order::choose`] decided.
pub(super) enum Choice<K> {
    Victim(K),
    Refuse,
}

impl<K: Clone> Order<K> {
    pub(super) fn new(ranks: u8) -> Order<K> {
        Order {
            queues: (0..ranks.clamp(1, 16)).map(|_| VecDeque::new()).collect(),
            queued: 0,
            next_ticket: 0,
        }
    }

    pub(super) fn top(&self) -> usize {
        self.queues.len() - 1
    }

    pub(super) fn push(&mut self, key: K, rank: u8) -> u32 {
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        let r = usize::from(rank).min(self.top());
        self.queues[r].push_back((key, ticket));
        self.queued += 1;
        ticket
    }

    /// Drops stale tickets once they outnumber the entries.
    pub(super) fn compact(
        &mut self,
        len: usize,
        mut probe: impl FnMut(&K, u32) -> Option<(u8, u64)>,
    ) {
        if self.queued <= 2 * len + 64 {
            return;
        }
        let mut queued = 0;
        for q in &mut self.queues {
            q.retain(|(k, t)| probe(k, *t).is_some());
            queued += q.len();
        }
        self.queued = queued;
    }

    /// The entry a newcomer of `rank`, seen `seen` times, displaces, if any.
    /// `probe`: an entry's rank and uses, `None` when its ticket is stale.
    pub(super) fn choose(
        &mut self,
        rank: u8,
        seen: u8,
        admit: Admit,
        mut probe: impl FnMut(&K, u32) -> Option<(u8, u64)>,
    ) -> Choice<K> {
        let rank = usize::from(rank).min(self.top());
        for r in 0..=rank {
            if r == rank && admit == Admit::Frequency && seen <= 1 {
                // A first sighting beats no entry of its rank (each was
                // used at least once): refused without a look.
                return Choice::Refuse;
            }
            let mut sample: Vec<(K, u32, u64)> = Vec::new();
            while sample.len() < SAMPLE {
                let Some((key, ticket)) = self.queues[r].pop_front() else {
                    break;
                };
                self.queued -= 1;
                match probe(&key, ticket) {
                    None => {}
                    Some((now, _)) if usize::from(now).min(self.top()) != r => {
                        let now = usize::from(now).min(self.top());
                        self.queues[now].push_back((key, ticket));
                        self.queued += 1;
                    }
                    Some((_, uses)) => {
                        if r < rank || admit == Admit::Newest {
                            return Choice::Victim(key);
                        }
                        sample.push((key, ticket, uses));
                    }
                }
            }
            if sample.is_empty() {
                continue;
            }

            // Equal rank: the least used of the sample, if the newcomer beats it.
            let least = (0..sample.len()).min_by_key(|&i| sample[i].2).unwrap_or(0);
            let beaten = sample[least].2 < u64::from(seen);
            let mut victim = None;
            for (i, (key, ticket, _)) in sample.into_iter().enumerate() {
                if beaten && i == least {
                    victim = Some(key);
                } else {
                    self.queues[r].push_back((key, ticket));
                    self.queued += 1;
                }
            }
            return victim.map_or(Choice::Refuse, Choice::Victim);
        }
        Choice::Refuse
    }
}
