//! Settled flows, shared from the workers back to the capture thread, so the
//! capture thread can drop the bulk data of flows whose handshake facts are
//! already known without copying it to a worker.
//!
//! Input: workers mark a flow when its handshake settles and unmark it when it
//! closes; the capture thread asks about every TCP segment without SYN, FIN or
//! RST. Output: "settled" or "not known to be settled". Invariants: a fixed
//! array of atomics sized from `--max-flows` (no allocation after start, no
//! locks); a slot holds a 63-bit tag of the flow's hash, so a false "settled"
//! needs two flows with the same 63-bit hash; colliding flows just overwrite
//! each other (a lost mark only costs speed). A SYN seen by the capture thread
//! puts the slot in a "new connection pending" state that a late mark of the
//! old connection cannot overwrite, so a reused address/port pair never has its
//! ClientHello skipped.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct SettledSet {
    slots: Box<[AtomicU64]>,
    mask: u64,
}

#[inline]
fn tag(h: u64) -> u64 {
    h | 1
}

#[inline]
fn pending(h: u64) -> u64 {
    h & !1
}

impl SettledSet {
    /// Room for about `max_flows` settled flows (twice as many slots).
    pub fn new(max_flows: usize) -> SettledSet {
        let n = max_flows
            .saturating_mul(2)
            .next_power_of_two()
            .clamp(1 << 10, 1 << 23);
        SettledSet {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: (n - 1) as u64,
        }
    }

    #[inline]
    fn slot(&self, h: u64) -> &AtomicU64 {
        // The index uses the high bits; the tag keeps every bit but the lowest.
        &self.slots[((h >> 40) & self.mask) as usize]
    }

    /// Capture thread: is the flow with this hash settled?
    #[inline]
    pub fn is_settled(&self, h: u64) -> bool {
        self.slot(h).load(Ordering::Relaxed) == tag(h)
    }

    /// Capture thread: a SYN without ACK starts a (possibly reused) connection.
    #[inline]
    pub fn syn(&self, h: u64) {
        let s = self.slot(h);
        if s.load(Ordering::Relaxed) == tag(h) {
            s.store(pending(h), Ordering::Relaxed);
        }
    }

    /// Worker: the SYN has been processed; marks of the new connection count.
    pub fn syn_processed(&self, h: u64) {
        let _ = self
            .slot(h)
            .compare_exchange(pending(h), 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Worker: the flow's handshake settled; its later segments are not needed.
    pub fn mark(&self, h: u64) {
        let s = self.slot(h);
        let _ = s.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v != pending(h)).then_some(tag(h))
        });
    }

    /// Worker: the flow closed (FIN from both sides, or RST).
    pub fn unmark(&self, h: u64) {
        let _ = self
            .slot(h)
            .compare_exchange(tag(h), 0, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_mark_and_unmark() {
        let s = SettledSet::new(100);
        let h = 0x1234_5678_9abc_def1;
        assert!(!s.is_settled(h));
        s.mark(h);
        assert!(s.is_settled(h));
        s.unmark(h);
        assert!(!s.is_settled(h));
    }

    #[test]
    fn settled_reuse_race() {
        // The old connection's mark arrives after the capture thread saw the new SYN.
        let s = SettledSet::new(100);
        let h = 0xdead_beef_0000_1111;
        s.mark(h);
        s.syn(h);
        assert!(!s.is_settled(h));
        s.mark(h); // late mark of the old connection
        assert!(
            !s.is_settled(h),
            "ClientHello of the new connection must pass"
        );
        s.syn_processed(h);
        s.mark(h); // the new connection settles
        assert!(s.is_settled(h));
    }

    #[test]
    fn settled_collision_is_not_settled() {
        let s = SettledSet::new(16);
        let a = 0x0000_0100_0000_0001u64;
        let b = a ^ 0x10; // same slot, different tag
        s.mark(a);
        assert!(!s.is_settled(b));
        s.mark(b);
        assert!(s.is_settled(b) && !s.is_settled(a));
    }
}
