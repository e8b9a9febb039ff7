//! The flow identity: the same [`FlowKey`] for both directions of a TCP
//! connection, plus the [`Direction`] a segment travels in.
//!
//! Input: addresses and ports of one segment. Output: a canonical key (lower
//! endpoint first) and a direction-independent hash for dispatch. Invariant:
//! `FlowKey::new(a, b)` and `FlowKey::new(b, a)` are equal and hash the same.
//!
//! The dispatch hash picks a flow's worker, so it is keyed with a secret
//! drawn once per process: addresses and ports chosen by a sender cannot be
//! made to land every flow on one worker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

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
        dispatch_hash_parts(self.lo.addr, self.lo.port, self.hi.addr, self.hi.port)
    }
}

/// [`FlowKey::dispatch_hash`] of the flow between two IPv4 endpoints, in
/// either order, without building the key (the capture thread's skip test).
#[inline]
pub fn dispatch_hash_v4(a: Ipv4Addr, a_port: u16, b: Ipv4Addr, b_port: u16) -> u64 {
    let (a, b) = ((a.to_bits(), a_port), (b.to_bits(), b_port));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    // The IPv4-mapped address ::ffff:a.b.c.d: 8 zero bytes, then 0, 0, ff, ff, a, b, c, d.
    let low_half = |ip: u32| 0xffff_0000 | u64::from(ip.swap_bytes()) << 32;
    hash_halves([0, low_half(lo.0)], lo.1, [0, low_half(hi.0)], hi.1)
}

/// The per-process secret of the dispatch hash.
#[inline]
fn secret() -> &'static [u64; 4] {
    static SECRET: OnceLock<[u64; 4]> = OnceLock::new();
    SECRET.get_or_init(|| {
        // `RandomState::new` draws its keys from the operating system.
        let r = ahash::RandomState::new();
        [0u64, 1, 2, 3].map(|i| r.hash_one(i) | 1)
    })
}

/// The folded multiply of wyhash and aHash: the high and low halves of the
/// 128-bit product, xored.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The keyed hash of two endpoints, each address as two little-endian
/// halves of its 16 bytes (IPv4 mapped).
#[inline]
fn hash_halves(lo: [u64; 2], lo_port: u16, hi: [u64; 2], hi_port: u16) -> u64 {
    let k = secret();
    let ports = u64::from(lo_port) << 16 | u64::from(hi_port);
    let h = fold(lo[0] ^ k[0], lo[1] ^ k[1]);
    let h = fold(h ^ hi[0] ^ k[2], hi[1] ^ k[3]);
    fold(h ^ ports ^ k[0], k[1])
}

#[inline]
fn dispatch_hash_parts(lo: [u8; 16], lo_port: u16, hi: [u8; 16], hi_port: u16) -> u64 {
    let halves = |a: &[u8; 16]| {
        let (x, y) = a.split_at(8);
        [
            u64::from_le_bytes(x.try_into().unwrap_or([0; 8])),
            u64::from_le_bytes(y.try_into().unwrap_or([0; 8])),
        ]
    };
    hash_halves(halves(&lo), lo_port, halves(&hi), hi_port)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// The IPv4 shortcut equals the key's hash, in both directions, on
    /// addresses and ports that order every way (equal addresses, equal
    /// ports, high bits set).
    #[test]
    fn dispatch_hash_v4_matches_key() {
        let ips = [
            0u32,
            1,
            0x0a00_0001,
            0x0a00_0002,
            0x7f00_0001,
            0xc000_0201,
            0xffff_ffff,
        ];
        let ports = [0u16, 1, 443, 50123, 65535];
        for &a in &ips {
            for &b in &ips {
                for &pa in &ports {
                    for &pb in &ports {
                        let (ia, ib) = (Ipv4Addr::from_bits(a), Ipv4Addr::from_bits(b));
                        let (k, _) = FlowKey::new(
                            Endpoint::new(IpAddr::V4(ia), pa),
                            Endpoint::new(IpAddr::V4(ib), pb),
                        );
                        let want = k.dispatch_hash();
                        assert_eq!(dispatch_hash_v4(ia, pa, ib, pb), want);
                        assert_eq!(dispatch_hash_v4(ib, pb, ia, pa), want);
                    }
                }
            }
        }
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
        // IPv6 too.
        let mut buckets = [0u32; 4];
        for port in 1000..5000u16 {
            let a = Endpoint::new("2001:db8::9".parse().unwrap(), port);
            let b = Endpoint::new("2001:db8::1".parse().unwrap(), 443);
            buckets[(FlowKey::new(a, b).0.dispatch_hash() % 4) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| n > 800), "{buckets:?}");
    }
}
