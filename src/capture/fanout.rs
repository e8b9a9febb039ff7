//! `live --capture-threads N`: one interface's packets spread over N capture
//! sockets by the kernel (Linux `PACKET_FANOUT`).
//!
//! Each capture thread opens its own libpcap handle (an AF_PACKET socket
//! with its own TPACKET_V3 ring) on every interface; the handles of one
//! interface join one fanout group, which sends each packet to one of them.
//! The choice is made by a classic BPF program of ours
//! (`PACKET_FANOUT_CBPF`), a symmetric hash of the packet's outermost IP
//! address pair. The kernel's own flow hash (`PACKET_FANOUT_HASH`) takes the
//! ports too, which puts apart what must meet: an IPv6 fragment has no
//! ports, so a TCP segment in fragments went to another thread than the rest
//! of its flow (a replay of captures/ipv6-fragments.pcap on 4 threads lost
//! that TLS 1.1 flow: its server's answer reached the worker first), and a
//! VXLAN or Geneve tunnel's two directions are two outer flows with their
//! own source ports. The address pair keeps together every fragment of
//! either family and both directions of a tunnel between two endpoints; the
//! price is that one pair of hosts is never spread over two threads.
//!
//! Input: an active handle. Output: the handle in the interface's group.
//! Invariants: the group's id is chosen by the kernel
//! (`PACKET_FANOUT_FLAG_UNIQUEID`), so two sensors in one network namespace
//! never share a group; a re-created interface (a new index) gets a new
//! group, which the other threads' handles join as they reopen; packets
//! that are not IP (ARP, MPLS, ...) go to the first socket.

use std::os::fd::AsFd;
use std::sync::Mutex;

use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};

/// `SOL_PACKET` and its options (linux/if_packet.h; stable ABI).
const SOL_PACKET: i32 = 263;
const PACKET_FANOUT: i32 = 18;
const PACKET_FANOUT_DATA: i32 = 22;
const PACKET_FANOUT_CBPF: u32 = 6;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

sockopt_impl!(
    /// `PACKET_FANOUT`: join a group (set), or the group joined (get).
    FanoutOpt,
    Both,
    SOL_PACKET,
    PACKET_FANOUT,
    libc::c_int
);

sockopt_impl!(
    /// `PACKET_FANOUT_DATA`: the group's classic BPF program.
    FanoutProgram,
    SetOnly,
    SOL_PACKET,
    PACKET_FANOUT_DATA,
    libc::sock_fprog
);

/// Most capture threads (`--capture-threads`); the kernel allows 256 (later
/// 65536) sockets in a group, and the thread label's set stays small.
pub const MAX_THREADS: usize = 64;

/// One interface's fanout group, shared by its handles in every capture
/// thread.
#[derive(Debug, Default)]
pub struct FanoutGroup {
    /// The interface index the group was made for, and the group's id.
    joined: Mutex<Option<(Option<u32>, u16)>>,
}

fn mode(id: u16, unique: bool) -> libc::c_int {
    let flags = if unique {
        PACKET_FANOUT_FLAG_UNIQUEID
    } else {
        0
    };
    (u32::from(id) | (PACKET_FANOUT_CBPF | flags) << 16) as libc::c_int
}

// Classic BPF opcodes (linux/filter.h).
const LD_H_ABS: u16 = 0x28;
const LD_W_IND: u16 = 0x40;
const LD_H_IND: u16 = 0x48;
const LD_MEM: u16 = 0x60;
const LDX_IMM: u16 = 0x01;
const LDX_MEM: u16 = 0x61;
const ST: u16 = 0x02;
const XOR_X: u16 = 0xac;
const MUL_K: u16 = 0x24;
const RSH_K: u16 = 0x74;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
const RET_A: u16 = 0x16;
/// Ancillary load of `skb->protocol` (SKF_AD_OFF + SKF_AD_PROTOCOL).
const SKB_PROTOCOL: u32 = (-0x1000i32) as u32;
/// Loads relative to the network header (SKF_NET_OFF): the same offsets
/// for received and sent packets, whatever the link header.
const NET: u32 = (-0x10_0000i32) as u32;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The fanout program: `skb->protocol` says what the network header holds
/// (IPv4, IPv6, or a second VLAN tag the kernel left, then X = 4 skips
/// it); the address words are xored (symmetric), mixed, and returned; the
/// kernel takes the value modulo the group's size.
pub fn address_pair_program() -> Vec<libc::sock_filter> {
    let mut p = vec![
        // 0: A = skb->protocol; X = 0
        insn(LD_H_ABS, 0, 0, SKB_PROTOCOL),
        insn(LDX_IMM, 0, 0, 0),
        // 2: a tag left in the packet (QinQ): its type field, X = 4
        insn(JEQ_K, 1, 0, 0x8100),
        insn(JEQ_K, 0, 2, 0x88a8),
        insn(LD_H_IND, 0, 0, NET.wrapping_add(2)),
        insn(LDX_IMM, 0, 0, 4),
        // 6: IPv4 or IPv6, else the first socket
        insn(JEQ_K, 2, 0, 0x0800),
        insn(JEQ_K, 6, 0, 0x86dd),
        insn(RET_K, 0, 0, 0),
        // 9: IPv4: M[0] = source, M[1] = destination, jump to the fold of 2
        insn(LD_W_IND, 0, 0, NET.wrapping_add(12)),
        insn(ST, 0, 0, 0),
        insn(LD_W_IND, 0, 0, NET.wrapping_add(16)),
        insn(ST, 0, 0, 1),
    ];
    // 13: jump over the IPv6 loads to the IPv4 fold (filled in below).
    let ja_at = p.len();
    p.push(insn(0x05, 0, 0, 0));
    // 14: IPv6: M[0..8] = the 8 address words
    for i in 0..8u32 {
        p.push(insn(LD_W_IND, 0, 0, NET.wrapping_add(8 + 4 * i)));
        p.push(insn(ST, 0, 0, i));
    }
    // A = M[0] ^ ... ^ M[7]
    p.push(insn(LD_MEM, 0, 0, 0));
    for i in 1..8u32 {
        p.push(insn(LDX_MEM, 0, 0, i));
        p.push(insn(XOR_X, 0, 0, 0));
    }
    let v6_done = p.len();
    p.push(insn(0x05, 0, 0, 0)); // to the mix
    // IPv4 fold: A = M[0] ^ M[1]
    let v4_fold = p.len();
    p.push(insn(LD_MEM, 0, 0, 0));
    p.push(insn(LDX_MEM, 0, 0, 1));
    p.push(insn(XOR_X, 0, 0, 0));
    // Mix (Fibonacci hashing: the high bits of the product).
    let mix = p.len();
    p.push(insn(MUL_K, 0, 0, 0x9e37_79b1));
    p.push(insn(RSH_K, 0, 0, 16));
    p.push(insn(RET_A, 0, 0, 0));
    p[ja_at].k = (v4_fold - ja_at - 1) as u32;
    p[v6_done].k = (mix - v6_done - 1) as u32;
    p
}

impl FanoutGroup {
    /// Puts `fd` (an AF_PACKET socket bound to the interface with index
    /// `ifindex`) in the interface's group: the one made for that index, or a
    /// new one.
    pub fn join(&self, fd: &impl AsFd, ifindex: Option<u32>) -> Result<(), String> {
        let mut joined = crate::sync::lock(&self.joined);
        if let Some((index, id)) = *joined
            && index == ifindex
            && nix::sys::socket::setsockopt(fd, FanoutOpt, &mode(id, false)).is_ok()
        {
            return Ok(());
        }
        let needs = "--capture-threads above 1 needs Linux 4.5 or later and an AF_PACKET capture";
        nix::sys::socket::setsockopt(fd, FanoutOpt, &mode(0, true))
            .map_err(|e| format!("cannot make a PACKET_FANOUT group: {e} ({needs})"))?;
        let mut program = address_pair_program();
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        nix::sys::socket::setsockopt(fd, FanoutProgram, &fprog)
            .map_err(|e| format!("cannot set the PACKET_FANOUT program: {e} ({needs})"))?;
        let got = nix::sys::socket::getsockopt(fd, FanoutOpt)
            .map_err(|e| format!("cannot read the PACKET_FANOUT group: {e}"))?;
        *joined = Some((ifindex, (got & 0xffff) as u16));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_mode_bits() {
        assert_eq!(mode(0, true), 0x2006_0000);
        assert_eq!(mode(0x1234, false), 0x0006_1234);
    }

    /// Runs the program as the kernel would on a packet whose network
    /// header holds `net` and whose `skb->protocol` is `proto`.
    fn run(p: &[libc::sock_filter], proto: u16, net: &[u8]) -> u32 {
        let (mut a, mut x, mut m) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0;
        let load = |at: u32, n: usize| -> Option<u32> {
            let at = at.wrapping_sub(NET) as usize;
            let b = net.get(at..at + n)?;
            Some(b.iter().fold(0, |v, &x| v << 8 | u32::from(x)))
        };
        loop {
            let i = p[pc];
            pc += 1;
            match i.code {
                LD_H_ABS => {
                    assert_eq!(i.k, SKB_PROTOCOL);
                    a = u32::from(proto);
                }
                LD_H_IND => match load(x.wrapping_add(i.k), 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_W_IND => match load(x.wrapping_add(i.k), 4) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LD_MEM => a = m[i.k as usize],
                LDX_IMM => x = i.k,
                LDX_MEM => x = m[i.k as usize],
                ST => m[i.k as usize] = a,
                XOR_X => a ^= x,
                MUL_K => a = a.wrapping_mul(i.k),
                RSH_K => a >>= i.k,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                0x05 => pc += i.k as usize,
                RET_K => return i.k,
                RET_A => return a,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    fn v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 40, 0, 0, 0x20, 0, 64, 6, 0, 0];
        h.extend(src);
        h.extend(dst);
        h
    }

    fn v6(src: u8, dst: u8) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0, 0, 20, 44, 64];
        h.extend([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src]);
        h.extend([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, dst]);
        h
    }

    /// Both directions of a pair go to the same socket, in either family
    /// and behind a tag the kernel left; pairs spread over the sockets;
    /// what is not IP goes to the first.
    #[test]
    fn fanout_program_hashes_address_pairs() {
        let p = address_pair_program();
        let mut buckets = [0usize; 4];
        for n in 0..64u8 {
            let (a, b) = ([10, 0, 0, n], [192, 0, 2, 1]);
            let there = run(&p, 0x0800, &v4(a, b));
            assert_eq!(there, run(&p, 0x0800, &v4(b, a)));
            let mut tagged = vec![0, 7, 0x08, 0x00];
            tagged.extend(v4(b, a));
            assert_eq!(there, run(&p, 0x8100, &tagged));
            let six = run(&p, 0x86dd, &v6(n, 1));
            assert_eq!(six, run(&p, 0x86dd, &v6(1, n)));
            buckets[there as usize % 4] += 1;
            buckets[six as usize % 4] += 1;
        }
        assert!(buckets.iter().all(|&b| b > 16), "{buckets:?}");
        assert_eq!(run(&p, 0x0806, &[0; 28]), 0);
        assert_eq!(run(&p, 0x0800, &[0x45; 10]), 0, "cut short");
    }

    /// The program's jumps land inside it, forward; it ends in returns.
    #[test]
    fn fanout_program_shape() {
        let p = address_pair_program();
        assert!(p.len() < 100);
        for (i, ins) in p.iter().enumerate() {
            if ins.code & 0x07 == 0x05 {
                let to = |off: u32| i + 1 + off as usize;
                if ins.code == 0x05 {
                    assert!(to(ins.k) < p.len(), "ja at {i}");
                } else {
                    assert!(to(u32::from(ins.jt)) < p.len() && to(u32::from(ins.jf)) < p.len());
                }
            }
        }
        assert_eq!(p.last().map(|i| i.code), Some(RET_A));
    }
}
