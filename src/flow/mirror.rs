//! What the mirror failed to show: bytes a flow's peers exchanged that the
//! sensor never saw, and flows seen in one direction only.
//!
//! Input: the sequence and acknowledgement numbers, flags and wire payload
//! lengths of the segments the flow table already handles. Output: per flow,
//! a [`Ledger`] per direction (the sequence space observed and the part of it
//! never captured) and the [`Seen`] bits that say which directions and which
//! opening segments came; both are folded into a [`MirrorTally`] when the
//! flow leaves the handshake phase or ends. Invariants: a few integer
//! operations per segment, no allocation; each ledger tracks at most
//! [`MAX_HOLES`] gaps (more are counted as lost at once); an acknowledgement
//! or a jump more than [`MAX_JUMP`] ahead of what was seen is not believed.
//!
//! The observed window of a direction runs from its first byte (the byte
//! after its SYN, else the first byte seen) to the furthest byte either seen
//! or acknowledged by the peer while the flow table follows the flow. A byte
//! of the window is lost when it never came: a gap that later bytes of the
//! same direction show, or bytes the peer acknowledged beyond the last seen.
//! A gap that reordered bytes fill before the window closes is not lost.
//! Each byte sent is in the window or not whatever happened to it, so the
//! ratio of lost to window bytes estimates the share of packets that the
//! mirror (or anything before the flow table) dropped.

use super::key::{Direction, FlowKey};
use crate::decode::l4::TcpFlags;
use crate::label::ByLabel;

/// Gaps a direction's ledger tracks, waiting for reordered bytes to fill them.
pub const MAX_HOLES: usize = 2;
/// How far past the last byte seen an acknowledgement or a segment may reach
/// and still be believed (a larger jump is another stream, a wrong ISN or a
/// forgery).
pub const MAX_JUMP: u32 = 1 << 20;

/// One direction's sequence space as the sensor observed it. Offsets are
/// relative to the direction's first byte.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ledger {
    anchor: u32,
    anchored: bool,
    n_holes: u8,
    /// One past the furthest byte seen.
    end: u32,
    /// One past the furthest byte the peer acknowledged.
    acked: u32,
    /// Unseen ranges below `end`, `[start, end)`.
    holes: [(u32, u32); MAX_HOLES],
    /// Gap bytes beyond what `holes` can track: counted as lost.
    untracked: u32,
}

impl Ledger {
    /// The direction's SYN: its data starts at `isn + 1`.
    #[inline]
    pub fn on_syn(&mut self, isn: u32) {
        if !self.anchored {
            self.anchor = isn.wrapping_add(1);
            self.anchored = true;
        }
    }

    /// Sequence space `[seq, seq + len)` seen (`len` as on the wire,
    /// including bytes the capture cut; a FIN counts one).
    #[inline]
    pub fn on_data(&mut self, seq: u32, len: u32) {
        if len == 0 {
            return;
        }
        // The common case, in order with no gap open: one comparison.
        if self.anchored && self.n_holes == 0 && seq.wrapping_sub(self.anchor) == self.end {
            self.end = self.end.saturating_add(len);
            return;
        }
        self.on_data_slow(seq, len);
    }

    #[inline(never)]
    fn on_data_slow(&mut self, seq: u32, len: u32) {
        if !self.anchored {
            self.anchor = seq;
            self.anchored = true;
        }
        let rel = seq.wrapping_sub(self.anchor) as i32;
        let (start, end) = if rel < 0 {
            let before = rel.unsigned_abs();
            if before >= len || before > MAX_JUMP {
                return;
            }
            (0, len - before)
        } else {
            let start = rel as u32;
            (start, start.saturating_add(len))
        };
        if start > self.end.max(self.acked).saturating_add(MAX_JUMP) {
            // Not this stream's continuation: start over from here.
            *self = Ledger {
                anchor: seq,
                anchored: true,
                end: len,
                ..Ledger::default()
            };
            return;
        }
        if start < self.end && self.n_holes > 0 {
            self.fill(start, end.min(self.end));
        }
        if start > self.end {
            self.add_hole(self.end, start);
        }
        self.end = self.end.max(end);
    }

    /// The peer acknowledged every byte before `ack`.
    #[inline]
    pub fn on_ack(&mut self, ack: u32) {
        if !self.anchored {
            return;
        }
        let rel = ack.wrapping_sub(self.anchor) as i32;
        if rel <= 0 {
            return;
        }
        let rel = rel as u32;
        if rel > self.acked && rel <= self.end.saturating_add(MAX_JUMP) {
            self.acked = rel;
        }
    }

    fn add_hole(&mut self, start: u32, end: u32) {
        let n = usize::from(self.n_holes);
        if n < MAX_HOLES {
            self.holes[n] = (start, end);
            self.n_holes += 1;
        } else {
            self.untracked = self.untracked.saturating_add(end - start);
        }
    }

    /// Bytes `[start, end)` came after all: they leave the holes they fill.
    fn fill(&mut self, start: u32, end: u32) {
        let mut i = 0;
        while i < usize::from(self.n_holes) {
            let (hs, he) = self.holes[i];
            if end <= hs || start >= he {
                i += 1;
                continue;
            }
            if start <= hs && end >= he {
                self.n_holes -= 1;
                self.holes[i] = self.holes[usize::from(self.n_holes)];
                continue;
            }
            if start <= hs {
                self.holes[i].0 = end;
            } else if end >= he {
                self.holes[i].1 = start;
            } else {
                // The middle of a gap: two gaps remain.
                self.holes[i].1 = start;
                self.add_hole(end, he);
            }
            i += 1;
        }
    }

    /// `(window, lost)` bytes: the sequence space observed, and the part of
    /// it that never came.
    pub fn close(&self) -> (u64, u64) {
        let holes: u64 = self.holes[..usize::from(self.n_holes)]
            .iter()
            .map(|(s, e)| u64::from(e - s))
            .sum();
        let tail = u64::from(self.acked.saturating_sub(self.end));
        let window = u64::from(self.end.max(self.acked));
        let lost = (holes + u64::from(self.untracked) + tail).min(window);
        (window, lost)
    }

    /// Whether bytes of this direction are known to be missing.
    pub fn has_loss(&self) -> bool {
        self.n_holes > 0 || self.untracked > 0 || self.acked > self.end
    }
}

/// Which segments of a flow came, by direction: its SYN (no ACK), its
/// SYN-ACK, anything else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen(u8);

const SYN: u8 = 1;
const SYN_ACK: u8 = 4;
const OTHER: u8 = 16;

crate::label_set! {
    /// How a flow whose opening was captured showed on the mirror: the
    /// `seen` label of `tlscensus_mirror_flows_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Sides {
        /// Segments of both directions came.
        Both = "both",
        /// The client went on after its SYN (so the server answered), and no
        /// segment of the server came.
        ClientOnly = "client_only",
        /// The server's SYN-ACK came (so the client opened), and no segment of
        /// the client came.
        ServerOnly = "server_only",
    }
}

impl Seen {
    #[inline]
    pub fn note(&mut self, dir: Direction, flags: TcpFlags) {
        // SYN alone: SYN; SYN and ACK: SYN_ACK; else OTHER (bits 1, 4, 16).
        let bit = if flags.syn() {
            SYN << (2 * u8::from(flags.ack()))
        } else {
            OTHER
        };
        self.0 |= bit << dir.index();
    }

    fn from(self, d: usize) -> bool {
        self.0 & ((SYN | SYN_ACK | OTHER) << d) != 0
    }

    /// The client's direction: the sender of the SYN, else the receiver of
    /// the SYN-ACK; `None` when the opening was not captured.
    pub fn client(self) -> Option<usize> {
        let syn = self.0 & 0b11;
        let syn_ack = (self.0 >> 2) & 0b11;
        if syn != 0 {
            Some(syn.trailing_zeros() as usize)
        } else if syn_ack != 0 {
            Some(1 - syn_ack.trailing_zeros() as usize)
        } else {
            None
        }
    }

    /// The flow's verdict, with its client's direction; `None` for a flow
    /// whose opening was not captured and for lone SYNs (an unanswered SYN
    /// shows nothing about the mirror).
    pub fn sides(self) -> Option<(Sides, usize)> {
        let c = self.client()?;
        let s = 1 - c;
        let sides = match (self.from(c), self.from(s)) {
            (true, true) => Sides::Both,
            (true, false) if self.0 & (OTHER << c) != 0 => Sides::ClientOnly,
            (false, true) if self.0 & (SYN_ACK << s) != 0 => Sides::ServerOnly,
            _ => return None,
        };
        Some((sides, c))
    }
}

/// What one interface's mirror showed, summed over flows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorTally {
    /// Sequence space observed in the handshake phase (see [`Ledger`]).
    pub window_bytes: u64,
    /// The part of it never captured.
    pub lost_bytes: u64,
    /// Flows that ended before their facts were complete with bytes they
    /// still needed missing.
    pub handshake_gaps: u64,
    /// Flows whose opening was captured, by [`Sides`].
    pub sides: ByLabel<Sides, u64, { Sides::ALL.len() }>,
}

impl MirrorTally {
    pub fn add_ledgers(&mut self, ledgers: &[Ledger; 2]) {
        for l in ledgers {
            let (w, lost) = l.close();
            self.window_bytes += w;
            self.lost_bytes += lost;
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == MirrorTally::default()
    }
}

/// A block of client addresses: a /24 of IPv4, a /64 of IPv6. Kept as the
/// key's 16-byte form with the host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Block(pub [u8; 16]);

impl Block {
    /// The block of the endpoint on side `d` of `key`.
    pub fn of(key: &FlowKey, d: usize) -> Block {
        let e = if d == 0 { &key.lo } else { &key.hi };
        let mut a = e.addr;
        let v4 = a[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let keep = if v4 { 15 } else { 8 };
        a[keep..].fill(0);
        Block(a)
    }
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v6 = std::net::Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => write!(f, "{v4}/24"),
            None => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::l4::{ACK, SYN as F_SYN};

    fn anchored() -> Ledger {
        let mut l = Ledger::default();
        l.on_syn(999);
        l
    }

    #[test]
    fn ledger_lossless() {
        let mut l = anchored();
        l.on_data(1000, 500);
        l.on_ack(1500);
        l.on_data(1500, 1448);
        assert_eq!(l.close(), (1948, 0));
        assert!(!l.has_loss());
    }

    #[test]
    fn ledger_gap_shown_by_later_bytes() {
        let mut l = anchored();
        l.on_data(1000, 100);
        l.on_data(1200, 100);
        assert_eq!(l.close(), (300, 100));
        assert!(l.has_loss());
    }

    #[test]
    fn ledger_reordered_bytes_fill_the_gap() {
        let mut l = anchored();
        l.on_data(1000, 100);
        l.on_data(1200, 100);
        l.on_data(1100, 100);
        assert_eq!(l.close(), (300, 0));
        // A retransmission of bytes seen changes nothing.
        l.on_data(1000, 300);
        assert_eq!(l.close(), (300, 0));
    }

    #[test]
    fn ledger_partial_fills() {
        let mut l = anchored();
        l.on_data(1000, 100);
        l.on_data(1400, 100); // gap [100, 400)
        l.on_data(1100, 50); // head
        l.on_data(1350, 50); // tail
        assert_eq!(l.close(), (500, 200));
        l.on_data(1200, 50); // middle: [150, 200) and [250, 350) remain
        assert_eq!(l.close(), (500, 150));
    }

    #[test]
    fn ledger_acked_tail_never_seen() {
        let mut l = anchored();
        l.on_data(1000, 1448);
        l.on_ack(1000 + 2 * 1448);
        assert_eq!(l.close(), (2896, 1448));
        // Seen late (mirror reordering between directions): not lost.
        l.on_data(1000 + 1448, 1448);
        assert_eq!(l.close(), (2896, 0));
    }

    #[test]
    fn ledger_old_and_implausible_acks_ignored() {
        let mut l = anchored();
        l.on_data(1000, 100);
        l.on_ack(500);
        l.on_ack(1000u32.wrapping_add(MAX_JUMP + 200));
        assert_eq!(l.close(), (100, 0));
        // No anchor, no evidence.
        let mut u = Ledger::default();
        u.on_ack(12345);
        assert_eq!(u.close(), (0, 0));
    }

    #[test]
    fn ledger_wraps_sequence_numbers() {
        let mut l = Ledger::default();
        l.on_syn(u32::MAX - 10);
        l.on_data(u32::MAX - 9, 100);
        l.on_ack((u32::MAX - 9).wrapping_add(300));
        assert_eq!(l.close(), (300, 200));
    }

    #[test]
    fn ledger_far_jump_starts_over() {
        let mut l = anchored();
        l.on_data(1000, 100);
        l.on_data(1000 + 3 * MAX_JUMP, 100);
        assert_eq!(l.close(), (100, 0));
    }

    #[test]
    fn ledger_more_gaps_than_tracked_count_as_lost() {
        let mut l = anchored();
        for i in 0..5u32 {
            l.on_data(1000 + i * 200, 100);
        }
        assert_eq!(l.close(), (900, 400));
    }

    #[test]
    fn seen_sides() {
        use Direction::{HiToLo, LoToHi};
        let (syn, syn_ack, ack) = (TcpFlags(F_SYN), TcpFlags(F_SYN | ACK), TcpFlags(ACK));
        let mut s = Seen::default();
        s.note(HiToLo, syn);
        assert_eq!(s.sides(), None, "a lone SYN shows nothing");
        s.note(HiToLo, ack);
        assert_eq!(s.sides(), Some((Sides::ClientOnly, 1)));
        s.note(LoToHi, syn_ack);
        assert_eq!(s.sides(), Some((Sides::Both, 1)));
        let mut s = Seen::default();
        s.note(LoToHi, syn_ack);
        assert_eq!(s.sides(), Some((Sides::ServerOnly, 1)));
        let mut s = Seen::default();
        s.note(LoToHi, ack);
        s.note(HiToLo, ack);
        assert_eq!(s.sides(), None, "opening not captured");
    }

    #[test]
    fn blocks() {
        use std::net::IpAddr;
        let k = FlowKey::new(
            crate::flow::Endpoint::new("10.1.2.3".parse::<IpAddr>().unwrap(), 40000),
            crate::flow::Endpoint::new("2001:db8:1:2:3::4".parse::<IpAddr>().unwrap(), 443),
        )
        .0;
        let names: Vec<String> = (0..2).map(|d| Block::of(&k, d).to_string()).collect();
        assert!(names.contains(&"10.1.2.0/24".to_string()), "{names:?}");
        assert!(
            names.contains(&"2001:db8:1:2::/64".to_string()),
            "{names:?}"
        );
    }
}
