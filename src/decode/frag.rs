//! Bounded IP fragment reassembly (IPv4 and IPv6), run by the capture thread
//! before flow dispatch (fragments after the first carry no ports).
//!
//! Input: fragments ([`IpPacket`] with `frag` set) and their capture time.
//! Output: the joined datagram's payload once every byte from 0 to the end is
//! present. Invariants: at most `max_datagrams` datagrams in progress and at
//! most `max_bytes` held over all of them (each fragment charged its bytes plus
//! [`PIECE_OVERHEAD`], each datagram [`DATAGRAM_OVERHEAD`]): memory follows the
//! bytes that arrived, never the offsets they claim; each datagram at most
//! [`MAX_DATAGRAM`] bytes and [`MAX_PIECES`] fragments, dropped after
//! `timeout_ns` of capture time. When either bound is reached the datagram
//! begun first is evicted (O(1): a creation-order queue), so a flood of lone
//! fragments cannot keep real datagrams out; every bound hit is counted in
//! [`FragStats`]. Overlapping fragments: the later bytes win.

use std::collections::HashMap;

use crate::order::CreationOrder;
use std::net::IpAddr;

use super::ip::{IpPacket, walk_ipv6_exts};

pub const MAX_DATAGRAM: usize = 65535;
pub const MAX_PIECES: usize = 64;
/// Bytes charged per fragment beyond its payload (its box and list entry).
pub const PIECE_OVERHEAD: usize = 48;
/// Bytes charged per datagram in progress (map entry, order entry, ranges).
pub const DATAGRAM_OVERHEAD: usize = 160;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct Pending {
    first_ts: u64,
    /// Creation number, to tell this datagram from a later one with the same key.
    serial: u64,
    /// Fragments in arrival order: (offset, bytes).
    pieces: Vec<(u32, Box<[u8]>)>,
    /// Sorted, merged byte ranges received.
    covered: Vec<(u32, u32)>,
    total: Option<u32>,
    /// Bytes charged to this datagram.
    charged: usize,
    is_v6: bool,
}

/// Counters of what the cache did; read and reset by the owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragStats {
    pub fragments: u64,
    pub reassembled: u64,
    /// Datagrams in progress evicted to make room (the datagram or byte bound was reached).
    pub table_full: u64,
    pub expired: u64,
    /// Too large, too many pieces, or cut by the snap length.
    pub invalid: u64,
}

crate::label_set! {
    /// `result` values of `tlscensus_ip_fragments_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum FragmentResult {
        Reassembled = "reassembled",
        Expired = "expired",
        Invalid = "invalid",
        TableFull = "table_full",
    }
}

impl FragStats {
    /// The count of one result.
    pub fn count(&self, r: FragmentResult) -> u64 {
        match r {
            FragmentResult::Reassembled => self.reassembled,
            FragmentResult::Expired => self.expired,
            FragmentResult::Invalid => self.invalid,
            FragmentResult::TableFull => self.table_full,
        }
    }
}

/// A datagram joined from its fragments.
#[derive(Debug, PartialEq, Eq)]
pub struct Reassembled {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub payload: Vec<u8>,
}

pub struct FragmentCache {
    map: HashMap<FragKey, Pending, ahash::RandomState>,
    /// Datagrams in creation order, for evicting the one begun first.
    order: CreationOrder<FragKey>,
    held: usize,
    max_datagrams: usize,
    max_bytes: usize,
    timeout_ns: u64,
    last_sweep: u64,
    pub stats: FragStats,
}

impl FragmentCache {
    pub fn new(max_datagrams: usize, max_bytes: usize, timeout_ns: u64) -> Self {
        FragmentCache {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            order: CreationOrder::default(),
            held: 0,
            max_datagrams,
            max_bytes,
            timeout_ns,
            last_sweep: 0,
            stats: FragStats::default(),
        }
    }

    pub fn in_progress(&self) -> usize {
        self.map.len()
    }

    /// Bytes charged to the datagrams in progress.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    fn remove(&mut self, key: &FragKey) -> Option<Pending> {
        let p = self.map.remove(key)?;
        self.held -= p.charged.min(self.held);
        Some(p)
    }

    /// Evicts the datagram begun first; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        let map = &self.map;
        let Some(key) = self
            .order
            .pop_oldest(|k, serial| map.get(k).is_some_and(|p| p.serial == serial))
        else {
            return false;
        };
        self.remove(&key);
        self.stats.table_full += 1;
        true
    }

    /// Adds one fragment; returns the datagram when it is complete.
    pub fn ingest(&mut self, ts: u64, pkt: &IpPacket<'_>) -> Option<Reassembled> {
        let info = pkt.frag?;
        self.stats.fragments += 1;
        if ts.saturating_sub(self.last_sweep) >= 1_000_000_000 {
            self.sweep(ts);
        }
        let key = FragKey {
            src: pkt.src,
            dst: pkt.dst,
            id: info.id,
            proto: pkt.proto,
        };
        let start = info.offset as usize;
        let end = start + pkt.payload.len();
        if pkt.missing > 0
            || end > MAX_DATAGRAM
            || (info.more && !pkt.payload.len().is_multiple_of(8))
        {
            self.stats.invalid += 1;
            self.remove(&key);
            return None;
        }
        let new = !self.map.contains_key(&key);
        let charge = pkt.payload.len() + PIECE_OVERHEAD + if new { DATAGRAM_OVERHEAD } else { 0 };
        if new {
            while self.map.len() >= self.max_datagrams && self.evict_oldest() {}
        }
        while self.held + charge > self.max_bytes && self.evict_oldest() {}
        if self.held + charge > self.max_bytes || self.map.len() >= self.max_datagrams && new {
            // Only when the bounds are smaller than one fragment.
            self.stats.table_full += 1;
            return None;
        }
        if new {
            let serial = self.order.push(key);
            let map = &self.map;
            self.order.compact(map.len(), 64, |k, s| {
                map.get(k).is_some_and(|p| p.serial == s)
            });
            self.map.insert(
                key,
                Pending {
                    first_ts: ts,
                    serial,
                    pieces: Vec::new(),
                    covered: Vec::new(),
                    total: None,
                    charged: 0,
                    is_v6: pkt.is_v6,
                },
            );
        }
        let entry = self.map.get_mut(&key)?;
        let bad_total = |t: u32| (end as u32) > t;
        if entry.pieces.len() >= MAX_PIECES
            || entry.total.is_some_and(bad_total)
            || (!info.more && entry.total.is_some_and(|t| t != end as u32))
            || (!info.more && entry.covered.last().is_some_and(|r| r.1 > end as u32))
        {
            self.stats.invalid += 1;
            self.remove(&key);
            return None;
        }
        if !info.more {
            entry.total = Some(end as u32);
        }
        entry.pieces.push((start as u32, Box::from(pkt.payload)));
        entry.charged += charge;
        self.held += charge;
        add_range(&mut entry.covered, start as u32, end as u32);
        let total = entry.total?;
        if entry.covered.as_slice() != [(0, total)] {
            return None;
        }
        let done = self.remove(&key)?;
        self.stats.reassembled += 1;
        // Later fragments overwrite earlier ones where they overlap.
        let mut payload = vec![0u8; total as usize];
        for (off, bytes) in &done.pieces {
            let off = *off as usize;
            if let Some(dst) = payload.get_mut(off..off + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        }
        let proto = if done.is_v6 {
            // The fragmentable part may begin with more extension headers.
            match walk_ipv6_exts(key.proto, &payload) {
                Ok((proto, rest, None)) => {
                    let skip = payload.len() - rest.len();
                    payload.drain(..skip);
                    proto
                }
                _ => {
                    self.stats.invalid += 1;
                    return None;
                }
            }
        } else {
            key.proto
        };
        Some(Reassembled {
            src: key.src,
            dst: key.dst,
            proto,
            payload,
        })
    }

    fn sweep(&mut self, now: u64) {
        self.last_sweep = now;
        let timeout = self.timeout_ns;
        let before = self.map.len();
        let mut freed = 0;
        self.map.retain(|_, p| {
            let keep = now.saturating_sub(p.first_ts) < timeout;
            if !keep {
                freed += p.charged;
            }
            keep
        });
        self.held -= freed.min(self.held);
        self.stats.expired += (before - self.map.len()) as u64;
    }
}

fn add_range(ranges: &mut Vec<(u32, u32)>, start: u32, end: u32) {
    if start >= end {
        return;
    }
    ranges.push((start, end));
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *ranges = merged;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ip::FragInfo;
    use std::net::Ipv4Addr;

    fn frag(id: u32, offset: u32, more: bool, payload: &[u8]) -> IpPacket<'_> {
        IpPacket {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            proto: 6,
            payload,
            missing: 0,
            frag: Some(FragInfo { id, offset, more }),
            is_v6: false,
        }
    }

    #[test]
    fn fragments_in_any_order() {
        let data: Vec<u8> = (0..40u8).collect();
        let parts = [(0, true), (16, true), (32, false)];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let mut cache = FragmentCache::new(8, 1 << 20, 30_000_000_000);
            let mut out = None;
            for &i in &order {
                let (off, more) = parts[i];
                let end = if more { off as usize + 16 } else { 40 };
                out = cache.ingest(1, &frag(9, off, more, &data[off as usize..end]));
            }
            let r = out.expect("complete");
            assert_eq!(r.payload, data);
            assert_eq!(cache.in_progress(), 0);
        }
    }

    /// A full table evicts the datagram begun first: a flood of lone
    /// fragments cannot keep a real datagram out, and it is counted.
    #[test]
    fn fragment_table_bound_counted() {
        let mut cache = FragmentCache::new(2, 1 << 20, 30_000_000_000);
        for id in 0..3 {
            assert!(cache.ingest(1, &frag(id, 0, true, &[0; 8])).is_none());
        }
        assert_eq!(cache.stats.table_full, 1);
        assert_eq!(cache.in_progress(), 2);
        // id 0 went; 1 and 2 are still joinable.
        assert!(cache.ingest(1, &frag(0, 8, false, &[0; 8])).is_none());
        assert!(cache.ingest(1, &frag(2, 8, false, &[0; 8])).is_some());
    }

    /// regression_12: memory follows the bytes that arrived: a lone last
    /// fragment at offset 65,520 is charged its 8 bytes, not 64 KiB, and the
    /// byte bound evicts the oldest datagrams.
    #[test]
    fn fragment_memory_follows_bytes() {
        let mut cache = FragmentCache::new(4096, 64 * 1024, 30_000_000_000);
        assert!(cache.ingest(1, &frag(1, 65520, false, &[0; 8])).is_none());
        assert_eq!(cache.held_bytes(), 8 + PIECE_OVERHEAD + DATAGRAM_OVERHEAD);
        for id in 2..2000 {
            cache.ingest(1, &frag(id, 65520, false, &[0; 8]));
        }
        assert!(cache.held_bytes() <= 64 * 1024);
        assert!(cache.stats.table_full > 1000, "{:?}", cache.stats);
        // The newest is still there and completes.
        let first = vec![7u8; 65520];
        let r = cache.ingest(2, &frag(1999, 0, true, &first));
        assert!(r.is_none(), "byte bound smaller than the datagram");
        let mut big = FragmentCache::new(4096, 1 << 20, 30_000_000_000);
        big.ingest(1, &frag(5, 65520, false, &[1; 8]));
        let r = big.ingest(2, &frag(5, 0, true, &first)).expect("complete");
        assert_eq!(r.payload.len(), 65528);
        assert_eq!(big.held_bytes(), 0);
    }

    #[test]
    fn fragment_timeout() {
        let mut cache = FragmentCache::new(2, 1 << 20, 1_000_000_000);
        cache.ingest(0, &frag(1, 0, true, &[0; 8]));
        cache.ingest(5_000_000_000, &frag(2, 0, true, &[0; 8]));
        assert_eq!(cache.stats.expired, 1);
        assert!(
            cache
                .ingest(5_000_000_001, &frag(1, 8, false, &[0; 8]))
                .is_none()
        );
    }

    #[test]
    fn fragment_too_large_or_inconsistent() {
        let mut cache = FragmentCache::new(4, 1 << 20, 30_000_000_000);
        assert!(cache.ingest(1, &frag(1, 65528, false, &[0; 16])).is_none());
        assert_eq!(cache.stats.invalid, 1);
        cache.ingest(1, &frag(2, 0, true, &[0; 16]));
        assert!(cache.ingest(1, &frag(2, 8, false, &[0; 4])).is_none()); // end 12 < 16 received
        assert_eq!(cache.stats.invalid, 2);
    }
}
