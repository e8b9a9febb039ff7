//! Settled flows, shared from the workers back to the capture thread, so the
//! capture thread can drop the bulk data of flows whose handshake facts are
//! already known without copying it to a worker.
//!
//! Input: the capture thread reports every SYN, FIN or RST segment it sends
//! to a worker ([`SettledSet::control`]) and asks about every other segment;
//! a worker reports each such control segment it has processed and marks a
//! flow when its handshake settles. Output: "settled" or "not known to be
//! settled".
//!
//! Invariant (why skipping never changes a result): a slot says "settled" only
//! if the worker marked the flow when no control segment of that flow was in
//! flight between the capture thread and the worker, and no control segment
//! has been sent since. Every segment the capture thread drops therefore
//! reaches a flow the worker has settled (`Done`), which ignores data; a
//! reused address/port pair (its SYN, or the FIN/RST of the old connection
//! before a new connection whose SYN was missed) always reaches the worker.
//! So `read` gives the same results however far the workers lag behind.
//!
//! In live capture on Ethernet, a flow marked here is also marked in the
//! kernel (`capture::skip`), whose socket filter then drops its data segments
//! before they reach the capture thread, under the same rule.
//!
//! Layout: a fixed array of atomics sized from `--max-flows` (no allocation
//! after start, no locks). A slot holds the flow hash's upper 56 bits (the
//! owner), a 7-bit count of control segments in flight and a settled bit. A
//! false "settled" needs two flows with the same 56-bit hash; colliding flows
//! overwrite each other, which only costs speed, except that a flow whose
//! in-flight count was overwritten may be marked early (this needs a slot
//! collision and a reused address/port pair within the worker's lag). A count
//! that reaches its maximum stays there (the flow is never skipped again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::key::FlowKey;
use crate::capture::skip::KernelSkip;

pub struct SettledSet {
    slots: Box<[AtomicU64]>,
    mask: u64,
    /// Live capture with `--kernel-skip-flows`: marks also go to the kernel.
    kernel: OnceLock<Arc<KernelSkip>>,
}

const SETTLED: u64 = 1;
const COUNT_ONE: u64 = 2;
const COUNT_MAX: u64 = 0x7f;
const OWNER: u64 = !0xff;

#[inline]
fn count(v: u64) -> u64 {
    (v >> 1) & COUNT_MAX
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
            kernel: OnceLock::new(),
        }
    }

    /// Settled flows are also marked in the kernel (live capture).
    pub fn set_kernel(&self, k: Arc<KernelSkip>) {
        let _ = self.kernel.set(k);
    }

    #[inline]
    fn slot(&self, h: u64) -> &AtomicU64 {
        // The index uses the high bits; the owner keeps bits 8 to 63.
        &self.slots[((h >> 40) & self.mask) as usize]
    }

    /// Capture thread: is the flow with this hash settled?
    #[inline]
    pub fn is_settled(&self, h: u64) -> bool {
        self.slot(h).load(Ordering::Relaxed) == (h & OWNER) | SETTLED
    }

    /// Capture thread: a SYN, FIN or RST segment of this flow goes to a worker.
    /// The flow stops being settled until the worker has processed it.
    #[inline]
    pub fn control(&self, h: u64) {
        let owner = h & OWNER;
        let _ = self
            .slot(h)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(if v & OWNER == owner {
                    owner | (count(v) + 1).min(COUNT_MAX) << 1
                } else {
                    owner | COUNT_ONE
                })
            });
    }

    /// Worker: it has processed one control segment of this flow.
    pub fn control_processed(&self, h: u64) {
        let owner = h & OWNER;
        let _ = self
            .slot(h)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                let c = count(v);
                (v & OWNER == owner && c > 0 && c < COUNT_MAX).then(|| owner | (c - 1) << 1)
            });
    }

    /// Worker: the flow's handshake settled; its later segments are not
    /// needed, unless a control segment of this address/port pair is still in
    /// flight (then the mark is refused). Whether it was marked.
    pub fn mark(&self, h: u64) -> bool {
        self.slot(h)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (count(v) == 0).then_some((h & OWNER) | SETTLED)
            })
            .is_ok()
    }

    /// [`SettledSet::mark`], and in the kernel too (see `capture::skip`) when
    /// marked: `ts` is the capture time of the segment that settled it.
    pub fn mark_flow(&self, h: u64, key: &FlowKey, ts: u64) {
        if self.mark(h)
            && let Some(k) = self.kernel.get()
        {
            k.settle((&key.lo.addr, key.lo.port), (&key.hi.addr, key.hi.port), ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_mark_and_close() {
        let s = SettledSet::new(100);
        let h = 0x1234_5678_9abc_def1;
        assert!(!s.is_settled(h));
        s.mark(h);
        assert!(s.is_settled(h));
        // The FIN goes to the worker: what follows it reaches the worker too.
        s.control(h);
        assert!(!s.is_settled(h));
        s.control_processed(h);
        assert!(!s.is_settled(h));
    }

    #[test]
    fn settled_reuse_race() {
        // The old connection's mark arrives after the capture thread saw the new SYN.
        let s = SettledSet::new(100);
        let h = 0xdead_beef_0000_1111;
        s.mark(h);
        s.control(h); // SYN of the new connection
        assert!(!s.is_settled(h));
        s.mark(h); // late mark of the old connection
        assert!(
            !s.is_settled(h),
            "ClientHello of the new connection must pass"
        );
        s.control_processed(h);
        s.mark(h); // the new connection settles
        assert!(s.is_settled(h));
    }

    #[test]
    fn settled_reuse_race_mark_after_syn() {
        // The capture thread sees the new SYN before the worker has even
        // processed the old connection's handshake (it lags by a batch); the
        // old mark then lands before the new ClientHello reaches the capture
        // thread. Found by the live replay test: a reused 5-tuple lost its flow.
        let s = SettledSet::new(100);
        let h = 0x0bad_cafe_0000_2223;
        s.control(h);
        s.mark(h); // the old connection settles only now
        assert!(
            !s.is_settled(h),
            "the new ClientHello must reach the worker"
        );
        s.control_processed(h);
        assert!(!s.is_settled(h));
        s.mark(h);
        assert!(s.is_settled(h));
    }

    #[test]
    fn settled_every_control_in_flight_counts() {
        // Old connection: FIN, FIN; new connection seen without its SYN. The
        // worker settles the old one between them: refused until both FINs
        // are processed, so the new connection's data is never skipped.
        let s = SettledSet::new(100);
        let h = 0x7777_0000_1234_5679;
        s.control(h);
        s.control(h);
        s.mark(h);
        s.control_processed(h);
        s.mark(h);
        assert!(!s.is_settled(h));
        s.control_processed(h);
        assert!(!s.is_settled(h), "a processed FIN does not settle a flow");
        s.mark(h);
        assert!(s.is_settled(h));
    }

    #[test]
    fn settled_count_saturates_and_sticks() {
        let s = SettledSet::new(100);
        let h = 0x4242_0000_0000_0001;
        for _ in 0..200 {
            s.control(h);
        }
        for _ in 0..200 {
            s.control_processed(h);
        }
        s.mark(h);
        assert!(!s.is_settled(h), "a saturated count is never trusted");
    }

    #[test]
    fn settled_collision_is_not_settled() {
        let s = SettledSet::new(16);
        let a = 0x0000_0100_0000_0101u64;
        let b = a ^ 0x1000; // same slot, different owner
        s.mark(a);
        assert!(!s.is_settled(b));
        s.mark(b);
        assert!(s.is_settled(b) && !s.is_settled(a));
        // A control segment of `a` takes the slot over: `b` is not settled.
        s.control(a);
        assert!(!s.is_settled(b) && !s.is_settled(a));
    }
}
