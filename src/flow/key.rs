//! The flow identity: the same [`FlowKey`] for both directions of a TCP
//! connection, plus the [`Direction`] a segment travels in.
//!
//! Input: addresses and ports of one segment. Output: a canonical key (lower
//! endpoint first) and a direction-independent hash for dispatch. Invariant:
//! `FlowKey::new(a, b)` and `FlowKey::new(b, a)` are equal and hash the same.

use std::net::{IpAddr, Ipv6Addr};

/// One endpoint: an address (IPv4 kept as IPv4-mapped IPv6) and a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: [u8; 16],
    pub port: u16,
}

impl Endpoint {
    pub fn new(ip: IpAddr, port: u16) -> Self {
        let addr = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        Endpoint { addr, port }
    }

    pub fn ip(&self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.addr);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

/// Which way a segment goes relative to the canonical key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From `lo` to `hi`.
    LoToHi = 0,
    /// From `hi` to `lo`.
    HiToLo = 1,
}

impl Direction {
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn reverse(self) -> Direction {
        match self {
            Direction::LoToHi => Direction::HiToLo,
            Direction::HiToLo => Direction::LoToHi,
        }
    }
}

/// Canonical TCP connection key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key and the direction of a segment from `src` to `dst`.
    pub fn new(src: Endpoint, dst: Endpoint) -> (FlowKey, Direction) {
        if src <= dst {
            (FlowKey { lo: src, hi: dst }, Direction::LoToHi)
        } else {
            (FlowKey { lo: dst, hi: src }, Direction::HiToLo)
        }
    }

    /// Sender and receiver of a segment going in `dir`.
    pub fn endpoints(&self, dir: Direction) -> (Endpoint, Endpoint) {
        match dir {
            Direction::LoToHi => (self.lo, self.hi),
            Direction::HiToLo => (self.hi, self.lo),
        }
    }

    /// A cheap hash that is the same for both directions (the key is canonical);
    /// used only to pick a worker, so it needs spread, not secrecy.
    pub fn dispatch_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |x: u64| {
            h ^= x;
            h = h.wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
        };
        for ep in [&self.lo, &self.hi] {
            let (a, b) = ep.addr.split_at(8);
            mix(u64::from_le_bytes(a.try_into().unwrap_or([0; 8])));
            mix(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            mix(u64::from(ep.port));
        }
        h ^ (h >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn key_is_symmetric() {
        let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), 50123);
        let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 443);
        let (k1, d1) = FlowKey::new(a, b);
        let (k2, d2) = FlowKey::new(b, a);
        assert_eq!(k1, k2);
        assert_eq!(d1, d2.reverse());
        assert_eq!(k1.dispatch_hash(), k2.dispatch_hash());
        assert_eq!(k1.endpoints(d1), (a, b));
        assert_eq!(k2.endpoints(d2), (b, a));
    }

    #[test]
    fn endpoint_roundtrip() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Endpoint::new(v4, 1).ip(), v4);
        assert_eq!(Endpoint::new(v6, 1).ip(), v6);
    }

    #[test]
    fn dispatch_spreads() {
        let mut buckets = [0u32; 4];
        for port in 1000..5000u16 {
            let a = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), port);
            let b = Endpoint::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 443);
            buckets[(FlowKey::new(a, b).0.dispatch_hash() % 4) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 800), "{buckets:?}");
    }
}
