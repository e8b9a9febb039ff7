//! Bounded IP fragment reassembly (IPv4 and IPv6), run by the capture thread
//! before flow dispatch (fragments after the first carry no ports).
//!
//! Input: fragments ([`IpPacket`] with `frag` set) and their capture time.
//! Output: the joined datagram's payload once every byte from 0 to the end is
//! present. Invariants: at most `max_datagrams` datagrams in progress, each at
//! most [`MAX_DATAGRAM`] bytes and [`MAX_PIECES`] fragments, each dropped after
//! `timeout_ns` of capture time; every bound hit is counted in [`FragStats`].
//! Overlapping fragments: the later bytes win.

use std::collections::HashMap;
use std::net::IpAddr;

use super::ip::{IpPacket, walk_ipv6_exts};

pub const MAX_DATAGRAM: usize = 65535;
pub const MAX_PIECES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct Pending {
    first_ts: u64,
    buf: Vec<u8>,
    /// Sorted, merged byte ranges received.
    covered: Vec<(u32, u32)>,
    total: Option<u32>,
    pieces: usize,
    is_v6: bool,
}

/// Counters of what the cache did; read and reset by the owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragStats {
    pub fragments: u64,
    pub reassembled: u64,
    /// A new datagram arrived while `max_datagrams` were in progress (it was dropped).
    pub table_full: u64,
    pub expired: u64,
    /// Too large, too many pieces, or cut by the snap length.
    pub invalid: u64,
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
    max_datagrams: usize,
    timeout_ns: u64,
    last_sweep: u64,
    pub stats: FragStats,
}

impl FragmentCache {
    pub fn new(max_datagrams: usize, timeout_ns: u64) -> Self {
        FragmentCache {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            max_datagrams,
            timeout_ns,
            last_sweep: 0,
            stats: FragStats::default(),
        }
    }

    pub fn in_progress(&self) -> usize {
        self.map.len()
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
            self.map.remove(&key);
            return None;
        }
        if !self.map.contains_key(&key) && self.map.len() >= self.max_datagrams {
            self.sweep(ts);
            if self.map.len() >= self.max_datagrams {
                self.stats.table_full += 1;
                return None;
            }
        }
        let entry = self.map.entry(key).or_insert_with(|| Pending {
            first_ts: ts,
            buf: Vec::new(),
            covered: Vec::new(),
            total: None,
            pieces: 0,
            is_v6: pkt.is_v6,
        });
        entry.pieces += 1;
        let bad_total = |t: u32| (end as u32) > t;
        if entry.pieces > MAX_PIECES
            || entry.total.is_some_and(bad_total)
            || (!info.more && entry.total.is_some_and(|t| t != end as u32))
            || (!info.more && entry.covered.last().is_some_and(|r| r.1 > end as u32))
        {
            self.stats.invalid += 1;
            self.map.remove(&key);
            return None;
        }
        if !info.more {
            entry.total = Some(end as u32);
        }
        if entry.buf.len() < end {
            entry.buf.resize(end, 0);
        }
        entry.buf[start..end].copy_from_slice(pkt.payload);
        add_range(&mut entry.covered, start as u32, end as u32);
        let total = entry.total?;
        if entry.covered.as_slice() != [(0, total)] {
            return None;
        }
        let done = self.map.remove(&key)?;
        self.stats.reassembled += 1;
        let mut payload = done.buf;
        payload.truncate(total as usize);
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
        self.map
            .retain(|_, p| now.saturating_sub(p.first_ts) < timeout);
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
            let mut cache = FragmentCache::new(8, 30_000_000_000);
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

    #[test]
    fn fragment_table_bound_counted() {
        let mut cache = FragmentCache::new(2, 30_000_000_000);
        for id in 0..3 {
            assert!(cache.ingest(1, &frag(id, 0, true, &[0; 8])).is_none());
        }
        assert_eq!(cache.stats.table_full, 1);
        assert_eq!(cache.in_progress(), 2);
    }

    #[test]
    fn fragment_timeout() {
        let mut cache = FragmentCache::new(2, 1_000_000_000);
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
        let mut cache = FragmentCache::new(4, 30_000_000_000);
        assert!(cache.ingest(1, &frag(1, 65528, false, &[0; 16])).is_none());
        assert_eq!(cache.stats.invalid, 1);
        cache.ingest(1, &frag(2, 0, true, &[0; 16]));
        assert!(cache.ingest(1, &frag(2, 8, false, &[0; 4])).is_none()); // end 12 < 16 received
        assert_eq!(cache.stats.invalid, 2);
    }
}
