//! libpcap's classic BPF, translated instruction by instruction into the
//! skip program's eBPF.

use super::asm::*;
use super::*;

/// `SKF_AD_OFF`: classic loads at this offset and above read packet metadata.
pub(super) const SKF_AD_OFF: i32 = -0x1000;

/// Classic BPF to eBPF, as the kernel itself converts a classic socket
/// filter: A in R0, X in R7, scratch memory on the stack, packet loads as
/// eBPF's legacy packet loads (which also end the program, returning 0,
/// beyond the packet), metadata loads from `struct __sk_buff`.
pub(super) fn translate(a: &mut Asm, prog: &[Classic]) -> Result<(), String> {
    use super::filter::{
        ABS, ALU, B, H, IMM, IND, JMP, LD, LDX, LEN, MEM, MEMWORDS, MISC, MSH, RET, SRC_X as X, ST,
        STX, W,
    };
    if prog.is_empty() || prog.len() > 4096 {
        return Err("the classic filter is empty or too long".into());
    }
    let labels: Vec<Label> = (0..prog.len()).map(|_| a.label()).collect();
    let target = |i: usize, d: usize| -> Result<Label, String> {
        labels
            .get(i + 1 + d)
            .copied()
            .ok_or_else(|| "a classic jump beyond the program".to_string())
    };
    let slot = |k: u32| -> Result<i16, String> {
        if (k as usize) < MEMWORDS {
            Ok(SCRATCH + 4 * k as i16)
        } else {
            Err("a classic scratch-memory index out of range".into())
        }
    };
    let size = |code: u16| match code & 0x18 {
        W => Ok(SZ_W),
        H => Ok(SZ_H),
        B => Ok(SZ_B),
        _ => Err("a classic load of an unknown size".to_string()),
    };
    // Scratch words the program reads start at zero (the verifier wants
    // initialised stack).
    let read: std::collections::BTreeSet<u32> = prog
        .iter()
        .filter(|i| matches!(i.code & 0x07, LD | LDX) && i.code & 0xe0 == MEM)
        .map(|i| i.k)
        .collect();
    for k in read {
        a.st(SZ_W, FP, slot(k)?, 0);
    }
    a.alu32(MOV, R0, 0);
    a.alu32(MOV, R7, 0);
    for (i, c) in prog.iter().enumerate() {
        a.bind(labels[i]);
        let k = c.k as i32;
        let mode = c.code & 0xe0;
        match c.code & 0x07 {
            LD => match mode {
                ABS if (SKF_AD_OFF..SKF_AD_OFF + 0x100).contains(&k) => {
                    ancillary(a, k - SKF_AD_OFF)?
                }
                ABS => a.ld_abs(size(c.code)?, k),
                IND => a.ld_ind(size(c.code)?, R7, k),
                IMM => a.alu32(MOV, R0, k),
                LEN => a.ldx(SZ_W, R0, R6, 0),
                MEM => a.ldx(SZ_W, R0, FP, slot(c.k)?),
                _ => return Err(format!("classic instruction {:#06x}", c.code)),
            },
            LDX => match mode {
                IMM => a.alu32(MOV, R7, k),
                LEN => a.ldx(SZ_W, R7, R6, 0),
                MEM => a.ldx(SZ_W, R7, FP, slot(c.k)?),
                MSH => {
                    a.mov64(R8, R0);
                    a.ld_abs(SZ_B, k);
                    a.alu32(AND, R0, 0x0f);
                    a.alu32(LSH, R0, 2);
                    a.alu32_reg(MOV, R7, R0);
                    a.mov64(R0, R8);
                }
                _ => return Err(format!("classic instruction {:#06x}", c.code)),
            },
            ST => a.stx(SZ_W, FP, slot(c.k)?, R0),
            STX => a.stx(SZ_W, FP, slot(c.k)?, R7),
            ALU => {
                let op = (c.code & 0xf0) as u8;
                if op > 0xa0 {
                    return Err(format!("classic instruction {:#06x}", c.code));
                }
                if op == NEG {
                    a.alu32(NEG, R0, 0);
                } else if c.code & X != 0 {
                    if op == DIV || op == MOD {
                        // Classic: division by zero rejects the packet.
                        let ok = a.label();
                        a.jump(C_JMP32, JNE, R7, Src::Imm(0), ok);
                        a.alu32(MOV, R0, 0);
                        a.exit();
                        a.bind(ok);
                    }
                    a.alu32_reg(op, R0, R7);
                } else if (op == DIV || op == MOD) && k == 0 {
                    a.alu32(MOV, R0, 0);
                    a.exit();
                } else if (op == LSH || op == RSH) && c.k >= 32 {
                    return Err("a classic shift by 32 or more".into());
                } else {
                    a.alu32(op, R0, k);
                }
            }
            JMP => {
                let op = (c.code & 0xf0) as u8;
                if op == JA {
                    a.ja(target(i, c.k as usize)?);
                    continue;
                }
                if op > 0x40 {
                    return Err(format!("classic instruction {:#06x}", c.code));
                }
                let (t, f) = (target(i, c.jt.into())?, target(i, c.jf.into())?);
                let src = if c.code & X != 0 {
                    Src::Reg(R7)
                } else {
                    Src::Imm(k)
                };
                if c.jt == c.jf {
                    a.ja(t);
                    continue;
                }
                a.jump(C_JMP32, op, R0, src, t);
                if c.jf != 0 {
                    a.ja(f);
                }
            }
            RET => {
                match c.code & 0x18 {
                    0x00 => a.alu32(MOV, R0, k),
                    0x10 => {}
                    0x08 => a.alu32_reg(MOV, R0, R7),
                    _ => return Err(format!("classic instruction {:#06x}", c.code)),
                }
                a.exit();
            }
            MISC => match c.code & 0xf8 {
                0x00 => a.alu32_reg(MOV, R7, R0),
                0x80 => a.alu32_reg(MOV, R0, R7),
                _ => return Err(format!("classic instruction {:#06x}", c.code)),
            },
            _ => return Err(format!("classic instruction {:#06x}", c.code)),
        }
    }
    Ok(())
}

/// A classic metadata load (`SKF_AD_*`), from `struct __sk_buff`.
pub(super) fn ancillary(a: &mut Asm, what: i32) -> Result<(), String> {
    // (SKF_AD_*, field offset in __sk_buff, network byte order)
    const FIELDS: [(i32, i16, bool); 9] = [
        (0, 16, true),   // PROTOCOL: protocol
        (4, 4, false),   // PKTTYPE: pkt_type
        (8, 40, false),  // IFINDEX: ifindex
        (20, 8, false),  // MARK: mark
        (24, 12, false), // QUEUE: queue_mapping
        (32, 68, false), // RXHASH: hash
        (44, 24, false), // VLAN_TAG: vlan_tci
        (48, 20, false), // VLAN_TAG_PRESENT: vlan_present
        (60, 28, true),  // VLAN_TPID: vlan_proto
    ];
    let &(_, off, swap) = FIELDS
        .iter()
        .find(|f| f.0 == what)
        .ok_or_else(|| format!("the classic metadata load {what} has no eBPF equivalent here"))?;
    a.ldx(SZ_W, R0, R6, off);
    if swap {
        // To big-endian: the 16-bit value in network order becomes a number.
        a.emit(ins(C_ALU | END | 0x08, R0, 0, 0, 16));
    }
    Ok(())
}
