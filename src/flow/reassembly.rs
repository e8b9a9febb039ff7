//! Bounded in-order reassembly of the first bytes of one TCP direction.
//!
//! Input: segments (sequence number, payload) in capture order, possibly out of
//! order, retransmitted or overlapping. Output: the contiguous stream prefix from
//! the first byte (the byte after the SYN when one was seen, else the first data
//! segment seen). Invariants: at most `max_bytes` are kept; at most
//! `max_pending` out-of-order segments wait for a gap to fill. Overlap policy:
//! bytes already in the contiguous prefix are never replaced (the "first"
//! policy of Suricata's and Zeek's reassemblers for data already delivered);
//! a waiting out-of-order segment joins the prefix when it touches its end,
//! and only its bytes beyond that end are added. An overlap whose bytes differ
//! from the prefix is counted in `conflicts` (anomaly `overlap_conflict`). Any split or reordering of the same
//! bytes yields the same prefix (see the proptest below).

/// Bounds for one direction.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    pub max_bytes: usize,
    pub max_pending: usize,
}

/// What one ingest did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingest {
    /// The contiguous prefix grew.
    Grew,
    /// Nothing new in order (duplicate, or held out of order).
    NoChange,
    /// Bytes beyond `max_bytes` were dropped.
    CapReached,
    /// An out-of-order segment was dropped: too many were waiting.
    PendingFull,
    /// Data before the stream start (no SYN seen), dropped.
    BeforeStart,
}

#[derive(Debug, Default)]
pub struct StreamStart {
    /// Sequence number of `buf[0]`.
    base: Option<u32>,
    syn_seen: bool,
    buf: Vec<u8>,
    /// Out-of-order segments, while any wait: boxed, since most streams
    /// never hold one and a full table is mostly streams that do not.
    ooo: Option<Box<Ooo>>,
    /// Capture time of the first payload byte seen in this direction.
    pub first_ts: Option<u64>,
    /// Overlapping segments whose bytes differed from those already in the
    /// prefix (which were kept); read and reset by the flow table.
    pub conflicts: u32,
    cap_reached: bool,
    /// Other ISNs (as the first byte's sequence number) that repeated SYNs
    /// or SYN-ACKs offered before any byte came: a spurious SYN-ACK, a
    /// middlebox, SYN-ACKs that alternate between two ISNs, a client that
    /// retransmits its SYN with another ISN. The first data resolves them
    /// (see [`StreamStart::ingest`]). At most [`MAX_ISN_CANDIDATES`].
    alts: [u32; MAX_ISN_CANDIDATES],
    n_alts: u8,
}

/// Segments that came before a gap filled.
#[derive(Debug, Default)]
struct Ooo {
    /// (offset from base, start in `held`, length). Their bytes share one
    /// buffer, so the memory charged to the flow (see
    /// [`StreamStart::footprint`]) is the memory allocated, whatever the
    /// segment sizes: 32 one-byte segments cost 32 bytes plus 12 per entry,
    /// not 32 allocations.
    pending: Vec<(u32, u32, u32)>,
    held: Vec<u8>,
}

/// Other ISNs a stream keeps while it waits for data to show which is real.
pub const MAX_ISN_CANDIDATES: usize = 3;

impl StreamStart {
    /// The contiguous prefix received so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn syn_seen(&self) -> bool {
        self.syn_seen
    }

    pub fn cap_reached(&self) -> bool {
        self.cap_reached
    }

    /// Memory allocated by this direction, for the table's budget.
    pub fn footprint(&self) -> usize {
        self.buf.capacity()
            + self.ooo.as_ref().map_or(0, |o| {
                o.held.capacity() + o.pending.capacity() * std::mem::size_of::<(u32, u32, u32)>()
            })
    }

    /// The ISN of a SYN: the stream starts at `isn + 1`.
    pub fn on_syn(&mut self, isn: u32) {
        if self.base.is_none() && self.buf.is_empty() {
            self.base = Some(isn.wrapping_add(1));
        }
        self.syn_seen = true;
    }

    /// A SYN (or SYN-ACK) repeated with another ISN before any byte came:
    /// kept as a candidate beside the first until data shows which is real.
    /// False when bytes already came (the stream stays where it is) or the
    /// candidates are full.
    pub fn add_syn_candidate(&mut self, isn: u32) -> bool {
        let start = isn.wrapping_add(1);
        let n = usize::from(self.n_alts);
        if !self.buf.is_empty() || self.ooo.is_some() || self.cap_reached {
            return false;
        }
        if self.base == Some(start) || self.alts[..n].contains(&start) {
            return true;
        }
        if n == MAX_ISN_CANDIDATES {
            return false;
        }
        self.alts[n] = start;
        self.n_alts += 1;
        true
    }

    /// Whether no byte has come in this direction yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.ooo.is_none()
    }

    /// The first data picks the stream's start among the ISNs offered: the
    /// one it continues exactly, else the nearest one it follows within the
    /// cap (a first segment lost), else the first ISN.
    fn resolve_isn(&mut self, seq: u32, max_bytes: usize) {
        let n = std::mem::take(&mut self.n_alts);
        let Some(first) = self.base else { return };
        let offset = |start: u32| {
            let rel = seq.wrapping_sub(start) as i32;
            (rel >= 0 && (rel as usize) < max_bytes).then_some(rel as u32)
        };
        let best = std::iter::once(first)
            .chain(self.alts[..usize::from(n)].iter().copied())
            .filter_map(|start| offset(start).map(|o| (o, start)))
            .min();
        if let Some((_, start)) = best {
            self.base = Some(start);
        }
    }

    /// True when a SYN with this ISN starts a different stream than ours.
    pub fn conflicts_with_syn(&self, isn: u32) -> bool {
        self.syn_seen && self.base != Some(isn.wrapping_add(1))
    }

    pub fn ingest(&mut self, ts: u64, seq: u32, payload: &[u8], limits: StreamLimits) -> Ingest {
        if payload.is_empty() {
            return Ingest::NoChange;
        }
        if self.n_alts > 0 {
            self.resolve_isn(seq, limits.max_bytes);
        }
        let base = *self.base.get_or_insert(seq);
        let rel = seq.wrapping_sub(base) as i32;
        let (offset, data) = if rel < 0 {
            // Starts before our first byte: keep only the part from the start on.
            let skip = rel.unsigned_abs() as usize;
            if skip >= payload.len() {
                return Ingest::BeforeStart;
            }
            (0usize, &payload[skip..])
        } else {
            (rel as usize, payload)
        };
        self.first_ts = Some(self.first_ts.map_or(ts, |t| t.min(ts)));
        if offset >= limits.max_bytes {
            self.cap_reached = true;
            return Ingest::CapReached;
        }
        let room = limits.max_bytes - offset;
        let capped = data.len() > room;
        let data = &data[..data.len().min(room)];
        let end = offset + data.len();
        // Overlap with the prefix: the prefix's bytes stay; different bytes
        // are a conflict (an evasion attempt or a broken middlebox).
        let overlap = end.min(self.buf.len()).saturating_sub(offset);
        if overlap > 0 && self.buf[offset..offset + overlap] != data[..overlap] {
            self.conflicts += 1;
        }
        let mut result = if offset <= self.buf.len() {
            if end > self.buf.len() {
                let new = &data[self.buf.len() - offset..];
                self.buf.extend_from_slice(new);
                self.drain_pending();
                Ingest::Grew
            } else {
                Ingest::NoChange
            }
        } else if self.ooo.as_ref().map_or(0, |o| o.pending.len()) >= limits.max_pending {
            Ingest::PendingFull
        } else {
            let o = self.ooo.get_or_insert_with(Box::default);
            // Offsets and lengths are below max_bytes (at most 2^24).
            o.pending
                .push((offset as u32, o.held.len() as u32, data.len() as u32));
            o.held.extend_from_slice(data);
            Ingest::NoChange
        };
        if capped {
            self.cap_reached = true;
            if result != Ingest::Grew {
                result = Ingest::CapReached;
            }
        }
        result
    }

    /// Moves waiting segments that now touch the prefix into it.
    fn drain_pending(&mut self) {
        let Some(o) = self.ooo.as_mut() else {
            return;
        };
        loop {
            let len = self.buf.len();
            let Some(i) = o
                .pending
                .iter()
                .position(|(off, _, _)| *off as usize <= len)
            else {
                break;
            };
            let (off, at, n) = o.pending.swap_remove(i);
            let (off, at, n) = (off as usize, at as usize, n as usize);
            let end = off + n;
            let overlap = end.min(len) - off;
            if overlap > 0
                && let (Some(old), Some(new)) = (
                    self.buf.get(off..off + overlap),
                    o.held.get(at..at + overlap),
                )
                && old != new
            {
                self.conflicts += 1;
            }
            if end > len
                && let Some(data) = o.held.get(at + (len - off)..at + n)
            {
                self.buf.extend_from_slice(data);
            }
        }
        if o.pending.is_empty() {
            self.ooo = None;
        }
    }

    /// Forgets buffered bytes (the direction is settled) but keeps the
    /// position; the buffer goes to `spare` for another stream.
    pub fn release(&mut self, spare: &mut SpareBuffers) {
        spare.put(std::mem::take(&mut self.buf));
        self.ooo = None;
    }

    /// A direction with no buffer yet takes a spare one, if any.
    pub fn lend(&mut self, spare: &mut SpareBuffers) {
        if self.buf.capacity() == 0
            && let Some(buf) = spare.take()
        {
            self.buf = buf;
        }
    }
}

/// Spare stream buffers: a buffer a settled direction released, emptied,
/// for the next direction that buffers bytes (one table's; most directions
/// need a few hundred bytes to a few KiB, so a reused buffer saves the
/// first allocation and the growth after it). At most [`SPARE_BUFFERS`]
/// buffers of at most [`SPARE_CAPACITY`] bytes (1 MiB a table); a buffer
/// lent to a stream counts in its footprint like one it allocated.
#[derive(Debug, Default)]
pub struct SpareBuffers {
    bufs: Vec<Vec<u8>>,
}

pub const SPARE_BUFFERS: usize = 64;
pub const SPARE_CAPACITY: usize = 16 << 10;

impl SpareBuffers {
    pub fn put(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.capacity() <= SPARE_CAPACITY && self.bufs.len() < SPARE_BUFFERS
        {
            buf.clear();
            self.bufs.push(buf);
        }
    }

    pub fn take(&mut self) -> Option<Vec<u8>> {
        self.bufs.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: StreamLimits = StreamLimits {
        max_bytes: 4096,
        max_pending: 32,
    };

    #[test]
    fn reassembly_in_order() {
        let mut s = StreamStart::default();
        s.on_syn(999);
        assert_eq!(s.ingest(1, 1000, b"abc", LIMITS), Ingest::Grew);
        assert_eq!(s.ingest(2, 1003, b"def", LIMITS), Ingest::Grew);
        assert_eq!(s.bytes(), b"abcdef");
        assert_eq!(s.first_ts, Some(1));
    }

    #[test]
    fn reassembly_out_of_order() {
        let mut s = StreamStart::default();
        s.on_syn(0);
        assert_eq!(s.ingest(2, 4, b"def", LIMITS), Ingest::NoChange);
        assert_eq!(s.bytes(), b"");
        assert_eq!(s.ingest(1, 1, b"abc", LIMITS), Ingest::Grew);
        assert_eq!(s.bytes(), b"abcdef");
        assert_eq!(s.first_ts, Some(1));
    }

    #[test]
    fn reassembly_overlap_first_wins() {
        let mut s = StreamStart::default();
        s.on_syn(0);
        s.ingest(1, 1, b"abcd", LIMITS);
        assert_eq!(s.ingest(2, 3, b"XXef", LIMITS), Ingest::Grew);
        assert_eq!(s.bytes(), b"abcdef");
        assert_eq!(s.ingest(3, 1, b"abcdef", LIMITS), Ingest::NoChange);
    }

    /// regression_12: overlaps with different bytes keep the prefix and are
    /// counted; identical retransmissions are not.
    #[test]
    fn reassembly_overlap_conflicts_counted() {
        let mut s = StreamStart::default();
        s.on_syn(0);
        s.ingest(1, 1, b"abcd", LIMITS);
        s.ingest(2, 1, b"abcd", LIMITS);
        assert_eq!(s.conflicts, 0);
        s.ingest(3, 3, b"XXef", LIMITS);
        assert_eq!((s.bytes(), s.conflicts), (&b"abcdef"[..], 1));
        // Out of order, then the prefix reaches it with other bytes.
        s.ingest(4, 9, b"ghij", LIMITS);
        s.ingest(5, 7, b"gHIj", LIMITS);
        assert_eq!(s.bytes(), b"abcdefgHIjij");
        assert_eq!(s.conflicts, 2);
    }

    #[test]
    fn reassembly_sequence_wraps() {
        let mut s = StreamStart::default();
        s.on_syn(u32::MAX - 1);
        s.ingest(1, u32::MAX, b"ab", LIMITS);
        s.ingest(1, 1, b"cd", LIMITS);
        assert_eq!(s.bytes(), b"abcd");
    }

    #[test]
    fn reassembly_cap() {
        let limits = StreamLimits {
            max_bytes: 4,
            max_pending: 2,
        };
        let mut s = StreamStart::default();
        s.on_syn(0);
        assert_eq!(s.ingest(1, 1, b"abcdef", limits), Ingest::Grew);
        assert_eq!(s.bytes(), b"abcd");
        assert!(s.cap_reached());
        assert_eq!(s.ingest(1, 7, b"gh", limits), Ingest::CapReached);
    }

    #[test]
    fn reassembly_pending_bound() {
        let limits = StreamLimits {
            max_bytes: 100,
            max_pending: 1,
        };
        let mut s = StreamStart::default();
        s.on_syn(0);
        assert_eq!(s.ingest(1, 10, b"x", limits), Ingest::NoChange);
        assert_eq!(s.ingest(1, 20, b"y", limits), Ingest::PendingFull);
    }

    /// regression_12: many one-byte out-of-order segments are charged what
    /// they really take (one shared buffer plus 12 bytes each), and leave
    /// nothing behind once joined.
    #[test]
    fn reassembly_pending_footprint_is_allocated_memory() {
        let mut s = StreamStart::default();
        s.on_syn(0);
        for i in 0..32u32 {
            assert_eq!(s.ingest(1, 2 + 2 * i, b"x", LIMITS), Ingest::NoChange);
        }
        let f = s.footprint();
        assert!((32 + 32 * 12..=2 * (32 + 32 * 12)).contains(&f), "{f}");
        // Fill every gap: the prefix runs through all of them.
        for i in 0..33u32 {
            s.ingest(2, 1 + 2 * i, b"y", LIMITS);
        }
        assert_eq!(s.bytes().len(), 65);
        assert_eq!(s.bytes()[..4], *b"yxyx");
    }

    #[test]
    fn reassembly_without_syn_starts_at_first_segment() {
        let mut s = StreamStart::default();
        s.ingest(1, 500, b"hello", LIMITS);
        assert_eq!(s.ingest(1, 498, b"xxhe", LIMITS), Ingest::NoChange);
        assert_eq!(s.ingest(1, 490, b"xx", LIMITS), Ingest::BeforeStart);
        assert_eq!(s.bytes(), b"hello");
    }

    #[test]
    fn syn_conflict_detects_reuse() {
        let mut s = StreamStart::default();
        s.on_syn(100);
        assert!(!s.conflicts_with_syn(100));
        assert!(s.conflicts_with_syn(5000));
    }

    proptest! {
        /// Any split and any delivery order (with duplicates) of the same bytes
        /// gives the same stream start.
        #[test]
        fn reassembly_any_split_any_order(
            data in proptest::collection::vec(any::<u8>(), 1..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            order_seed in any::<u64>(),
            isn in any::<u32>(),
            dup in any::<prop::sample::Index>(),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len())).collect();
            points.push(0);
            points.push(data.len());
            points.sort_unstable();
            points.dedup();
            let mut segs: Vec<(usize, usize)> = points.windows(2).map(|w| (w[0], w[1])).collect();
            segs.push(segs[dup.index(segs.len())]);
            // Fisher-Yates with a tiny LCG
            let mut r = order_seed | 1;
            for i in (1..segs.len()).rev() {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                segs.swap(i, (r >> 33) as usize % (i + 1));
            }
            let mut s = StreamStart::default();
            s.on_syn(isn);
            for (a, b) in segs {
                s.ingest(1, isn.wrapping_add(1).wrapping_add(a as u32), &data[a..b], LIMITS);
            }
            prop_assert_eq!(s.bytes(), &data[..]);
        }
    }
}
