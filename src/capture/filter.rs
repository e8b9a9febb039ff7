//! `read --filter`: a BPF expression applied to capture-file frames.
//!
//! libpcap compiles the expression for each link type met (pcapng files
//! mix them); tlscensus runs the classic BPF program itself on each frame
//! before decoding, so that `len`, `greater` and `less` see the frame's
//! length on the wire, as tcpdump's do, not its captured length (libpcap's
//! `pcap_offline_filter`, as the `pcap` crate calls it, is given only the
//! captured bytes). Input: an expression. Output: keep or skip per frame.
//! Invariants: compiled once per link type; an expression that does not
//! apply to a file's link type is an error naming it; a load beyond the
//! captured bytes rejects the frame, as in libpcap; the interpreter never
//! panics and never loops (jumps only go forward).

use std::collections::HashMap;

use pcap::{Capture, Linktype};

pub struct Filter {
    expr: String,
    /// By link type: the program, or why it could not be compiled.
    programs: HashMap<i32, Result<Program, String>>,
}

impl Filter {
    /// Compiles `expr` for `linktype` (a check at start-up and the first
    /// program).
    pub fn new(expr: &str, linktype: i32) -> Result<Filter, String> {
        let mut f = Filter {
            expr: expr.to_string(),
            programs: HashMap::new(),
        };
        f.program(linktype).map(|_| ()).map_err(|e| e.to_string())?;
        Ok(f)
    }

    fn program(&mut self, linktype: i32) -> Result<&Program, &str> {
        let expr = &self.expr;
        self.programs
            .entry(linktype)
            .or_insert_with(|| Program::compile(expr, linktype))
            .as_ref()
            .map_err(String::as_str)
    }

    /// Whether a frame of `wire_len` bytes on the wire, `data` captured, is
    /// kept; an error (each time, compiled once) when the expression cannot
    /// be compiled for its link type.
    #[inline]
    pub fn keeps(&mut self, linktype: i32, data: &[u8], wire_len: u32) -> Result<bool, String> {
        if !self.programs.contains_key(&linktype) {
            let _ = self.program(linktype);
        }
        match self.programs.get(&linktype) {
            Some(Ok(p)) => Ok(p.run(data, wire_len) != 0),
            Some(Err(e)) => Err(format!(
                "--filter {:?} does not apply to link type {linktype}: {e}",
                self.expr
            )),
            None => Ok(false),
        }
    }
}

/// One classic BPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A classic BPF program, as libpcap compiled it.
#[derive(Debug)]
struct Program(Vec<Insn>);

// Instruction classes, sizes, modes and operations (the BPF encoding).
pub(crate) const LD: u16 = 0x00;
pub(crate) const LDX: u16 = 0x01;
pub(crate) const ST: u16 = 0x02;
pub(crate) const STX: u16 = 0x03;
pub(crate) const ALU: u16 = 0x04;
pub(crate) const JMP: u16 = 0x05;
pub(crate) const RET: u16 = 0x06;
pub(crate) const MISC: u16 = 0x07;
pub(crate) const W: u16 = 0x00;
pub(crate) const H: u16 = 0x08;
pub(crate) const B: u16 = 0x10;
pub(crate) const IMM: u16 = 0x00;
pub(crate) const ABS: u16 = 0x20;
pub(crate) const IND: u16 = 0x40;
pub(crate) const MEM: u16 = 0x60;
pub(crate) const LEN: u16 = 0x80;
pub(crate) const MSH: u16 = 0xa0;
pub(crate) const SRC_X: u16 = 0x08;
/// Scratch memory words.
pub(crate) const MEMWORDS: usize = 16;

impl Program {
    fn compile(expr: &str, linktype: i32) -> Result<Program, String> {
        let dead = Capture::dead(Linktype(linktype)).map_err(|e| e.to_string())?;
        let compiled = dead.compile(expr, true).map_err(|e| {
            let msg = e.to_string();
            msg.trim_start_matches("libpcap error: ").trim().to_string()
        })?;
        Program::checked(instructions(&compiled)?)
    }

    /// A program that ends in a return on every path and uses only
    /// instructions this interpreter knows.
    fn checked(insns: Vec<Insn>) -> Result<Program, String> {
        if insns.last().is_none_or(|i| i.code & 0x07 != RET) {
            return Err("the compiled filter does not end in a return".into());
        }
        if let Some(bad) = insns.iter().find(|i| !known(i)) {
            return Err(format!("unsupported BPF instruction {:#06x}", bad.code));
        }
        Ok(Program(insns))
    }

    /// Runs the program on a frame; its return value (0: reject).
    fn run(&self, p: &[u8], wire_len: u32) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut mem = [0u32; MEMWORDS];
        let mut pc = 0usize;
        while let Some(&Insn { code, jt, jf, k }) = self.0.get(pc) {
            pc += 1;
            match code & 0x07 {
                LD => {
                    a = match code & 0xe0 {
                        IMM => k,
                        LEN => wire_len,
                        MEM => mem[k as usize % MEMWORDS],
                        ABS | IND => {
                            let base = if code & 0xe0 == IND { x } else { 0 };
                            match load(p, base.wrapping_add(k), base, code & 0x18) {
                                Some(v) => v,
                                None => return 0,
                            }
                        }
                        _ => return 0,
                    }
                }
                LDX => {
                    x = match code & 0xe0 {
                        IMM => k,
                        LEN => wire_len,
                        MEM => mem[k as usize % MEMWORDS],
                        MSH => match p.get(k as usize) {
                            Some(b) => u32::from(b & 0x0f) * 4,
                            None => return 0,
                        },
                        _ => return 0,
                    }
                }
                ST => mem[k as usize % MEMWORDS] = a,
                STX => mem[k as usize % MEMWORDS] = x,
                ALU => {
                    let v = if code & SRC_X != 0 { x } else { k };
                    a = match code & 0xf0 {
                        0x00 => a.wrapping_add(v),
                        0x10 => a.wrapping_sub(v),
                        0x20 => a.wrapping_mul(v),
                        0x30 => match a.checked_div(v) {
                            Some(q) => q,
                            None => return 0,
                        },
                        0x40 => a | v,
                        0x50 => a & v,
                        0x60 => a.checked_shl(v).unwrap_or(0),
                        0x70 => a.checked_shr(v).unwrap_or(0),
                        0x80 => a.wrapping_neg(),
                        0x90 => match a.checked_rem(v) {
                            Some(r) => r,
                            None => return 0,
                        },
                        0xa0 => a ^ v,
                        _ => return 0,
                    }
                }
                JMP => {
                    let v = if code & SRC_X != 0 { x } else { k };
                    let step = match code & 0xf0 {
                        0x00 => k as usize,
                        op => {
                            let taken = match op {
                                0x10 => a == v,
                                0x20 => a > v,
                                0x30 => a >= v,
                                0x40 => a & v != 0,
                                _ => return 0,
                            };
                            usize::from(if taken { jt } else { jf })
                        }
                    };
                    pc = pc.saturating_add(step);
                }
                RET => {
                    return match code & 0x18 {
                        0x00 => k,
                        0x10 => a,
                        0x08 => x,
                        _ => 0,
                    };
                }
                _ => match code & 0xf8 {
                    0x00 => x = a,
                    0x80 => a = x,
                    _ => return 0,
                },
            }
        }
        0
    }
}

/// The instructions of a program libpcap compiled (for the kernel's socket
/// filter, the same as it attaches).
pub fn instructions(compiled: &pcap::BpfProgram) -> Result<Vec<Insn>, String> {
    // The `pcap` crate shows an instruction only as "code jt jf k".
    compiled
        .get_instructions()
        .iter()
        .map(|i| Insn::parse(&i.to_string()))
        .collect::<Option<Vec<Insn>>>()
        .ok_or_else(|| "libpcap gave an instruction tlscensus cannot read".to_string())
}

impl Insn {
    /// "code jt jf k", as the `pcap` crate prints an instruction.
    fn parse(s: &str) -> Option<Insn> {
        let mut f = s.split_ascii_whitespace();
        let insn = Insn {
            code: f.next()?.parse().ok()?,
            jt: f.next()?.parse().ok()?,
            jf: f.next()?.parse().ok()?,
            k: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(insn)
    }
}

/// Whether the interpreter knows the instruction.
fn known(i: &Insn) -> bool {
    let mode = i.code & 0xe0;
    match i.code & 0x07 {
        LD => {
            matches!(mode, IMM | LEN | MEM)
                && i.code & 0x18 == W
                && (mode != MEM || (i.k as usize) < MEMWORDS)
                || matches!(mode, ABS | IND) && matches!(i.code & 0x18, W | H | B)
        }
        LDX => match mode {
            IMM | LEN => i.code & 0x18 == W,
            MEM => i.code & 0x18 == W && (i.k as usize) < MEMWORDS,
            MSH => i.code & 0x18 == B,
            _ => false,
        },
        ST | STX => (i.k as usize) < MEMWORDS,
        ALU => i.code & 0xf0 <= 0xa0,
        JMP => i.code & 0xf0 <= 0x40,
        RET => i.code & 0x18 != 0x18,
        MISC => matches!(i.code & 0xf8, 0x00 | 0x80),
        _ => false,
    }
}

/// A big-endian load of `size` at `at` (`base` is the index register of an
/// indirect load, whose sum must not wrap); `None` beyond the captured bytes.
#[inline]
fn load(p: &[u8], at: u32, base: u32, size: u16) -> Option<u32> {
    if at < base {
        return None;
    }
    let at = at as usize;
    match size {
        W => p
            .get(at..at.checked_add(4)?)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        H => p
            .get(at..at.checked_add(2)?)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
        _ => p.get(at).map(|&b| u32::from(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_link_type() {
        // An Ethernet frame: IPv4 TCP from 10.0.0.1:1234 to 10.0.0.2:443.
        let mut eth = vec![0u8; 12];
        eth.extend([0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend([0x04, 0xd2, 0x01, 0xbb]);
        ip.extend([0u8; 16]);
        eth.extend(&ip);
        let mut f = Filter::new("tcp port 443", 1).unwrap();
        assert_eq!(f.keeps(1, &eth, eth.len() as u32), Ok(true));
        let mut g = Filter::new("tcp port 80", 1).unwrap();
        assert_eq!(g.keeps(1, &eth, eth.len() as u32), Ok(false));
        // Raw IP (DLT_RAW 12): the same packet without the Ethernet header.
        assert_eq!(f.keeps(12, &ip, ip.len() as u32), Ok(true));
        // An expression for Ethernet only.
        let mut v = Filter::new("ether host 01:02:03:04:05:06", 1).unwrap();
        assert!(v.keeps(12, &ip, 0).unwrap_err().contains("link type 12"));
        assert!(Filter::new("tcp port", 1).is_err());
    }

    /// The interpreter agrees with libpcap's on every frame of every shipped
    /// capture (whose frames are whole: the wire length is the captured
    /// length), for expressions that use every kind of instruction libpcap
    /// emits for them.
    #[test]
    fn filter_equals_libpcap_on_every_capture() {
        let exprs = [
            "tcp port 443",
            "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
            "ip[2:2] > 300 and not udp",
            "net 10.0.0.0/8 or ip6",
            "tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x16",
            "vlan and tcp",
            "greater 200",
            "len % 7 = 3 or len * 3 - 2 > 4000",
            "ip6 and tcp port 443",
            "udp port 53 or icmp",
            "mpls or pppoes or (ip and ip[6:2] & 0x1fff != 0)",
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let mut frames = 0u64;
        let mut kept = 0u64;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let Ok(mut cap) = Capture::from_file(&path) else {
                continue;
            };
            let linktype = cap.get_datalink().0;
            let programs: Vec<_> = exprs
                .iter()
                .filter_map(|e| {
                    let ours = Program::compile(e, linktype).ok()?;
                    let theirs = Capture::dead(Linktype(linktype))
                        .unwrap()
                        .compile(e, true)
                        .unwrap();
                    Some((e, ours, theirs))
                })
                .collect();
            while let Ok(p) = cap.next_packet() {
                frames += 1;
                for (e, ours, theirs) in &programs {
                    let keep = ours.run(p.data, p.data.len() as u32) != 0;
                    assert_eq!(keep, theirs.filter(p.data), "{e} on {path:?}");
                    kept += u64::from(keep);
                }
            }
        }
        assert!(frames > 1000 && kept > 1000, "{frames} frames, {kept} kept");
    }

    /// `len` is the length on the wire: a snapped frame is as long as it was.
    #[test]
    fn filter_len_is_wire_length() {
        let mut f = Filter::new("greater 1000", 12).unwrap();
        let ip = [0x45u8; 60];
        assert_eq!(f.keeps(12, &ip, 1500), Ok(true));
        assert_eq!(f.keeps(12, &ip, 60), Ok(false));
        // A load beyond the captured bytes rejects the frame.
        let mut g = Filter::new("ip[100] = 0", 12).unwrap();
        assert_eq!(g.keeps(12, &ip, 1500), Ok(false));
    }

    /// Hostile programs end: no backward jumps, no reads out of bounds,
    /// division by zero rejects the frame.
    #[test]
    fn filter_hostile_programs() {
        let i = |code, jt, jf, k| Insn { code, jt, jf, k };
        assert!(Program::checked(vec![]).is_err());
        assert!(Program::checked(vec![i(0x00, 0, 0, 1)]).is_err());
        assert!(Program::checked(vec![i(0x61, 0, 0, 99), i(0x06, 0, 0, 1)]).is_err());
        // A jump far past the end falls off: rejected.
        let p = Program::checked(vec![i(0x05, 0, 0, u32::MAX), i(0x06, 0, 0, 1)]).unwrap();
        assert_eq!(p.run(&[1, 2, 3], 3), 0);
        // ldx #0; ld #5; div x; ret #1
        let p = Program::checked(vec![
            i(0x01, 0, 0, 0),
            i(0x00, 0, 0, 5),
            i(0x3c, 0, 0, 0),
            i(0x06, 0, 0, 1),
        ])
        .unwrap();
        assert_eq!(p.run(&[], 0), 0);
        // ldx #0xffffffff; ld [x + 2]: the sum wraps, out of bounds.
        let p = Program::checked(vec![
            i(0x01, 0, 0, u32::MAX),
            i(0x50, 0, 0, 2),
            i(0x16, 0, 0, 0),
        ])
        .unwrap();
        assert_eq!(p.run(&[9; 8], 8), 0);
        assert_eq!(Insn::parse("40 0 0 12"), Some(i(40, 0, 0, 12)));
        assert_eq!(Insn::parse("40 0 0"), None);
        assert_eq!(Insn::parse("40 0 0 12 1"), None);
    }
}
