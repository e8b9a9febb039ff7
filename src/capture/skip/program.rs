//! The skip program itself: parse Ethernet, VLAN, IPv4/IPv6 and TCP,
//! look the flow up, drop settled data segments, let control segments
//! through (unmarking their flow), then run the capture filter.

use super::asm::*;
use super::*;

/// The program: the settled-flow check, then `classic`.
pub(super) fn build(classic: &[Classic], margin_ns: i32) -> Result<Built, String> {
    let mut a = Asm::default();
    let run_classic = a.label();
    let (tag, l3, v4, tcp, swap, ordered, drop, ret0, control) = (
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
    );
    a.mov64(R6, R1);
    // R9: the offset of the IP header. Every load is checked against the
    // packet's length first.
    a.alu64(MOV, R9, 0);
    a.need(14, run_classic);
    a.alu64(MOV, R9, 14);
    a.ld_abs(SZ_H, 12);
    a.jump(C_JMP, JEQ, R0, Src::Imm(0x8100), tag);
    a.jump(C_JMP, JEQ, R0, Src::Imm(0x88a8), tag);
    a.ja(l3);
    a.bind(tag);
    a.need(4, run_classic);
    a.ld_abs(SZ_H, 16);
    a.alu64(MOV, R9, 18);
    a.jump(C_JMP, JNE, R0, Src::Imm(0x8100), l3);
    a.need(4, run_classic);
    a.ld_abs(SZ_H, 20);
    a.alu64(MOV, R9, 22);
    a.bind(l3);
    a.jump(C_JMP, JEQ, R0, Src::Imm(0x0800), v4);
    a.jump(C_JMP, JNE, R0, Src::Imm(0x86dd), run_classic);
    // IPv6: TCP must be the next header.
    a.need(40, run_classic);
    a.ld_ind(SZ_B, R9, 6);
    a.jump(C_JMP, JNE, R0, Src::Imm(6), run_classic);
    for w in 0..4i16 {
        a.ld_ind(SZ_W, R9, 8 + 4 * i32::from(w));
        a.stx(SZ_W, FP, KEY + 4 * w, R0);
        a.ld_ind(SZ_W, R9, 24 + 4 * i32::from(w));
        a.stx(SZ_W, FP, KEY + 16 + 4 * w, R0);
    }
    a.alu64(ADD, R9, 40);
    a.ja(tcp);
    // IPv4: version 4, TCP, not a fragment.
    a.bind(v4);
    a.need(20, run_classic);
    a.ld_ind(SZ_B, R9, 0);
    a.mov64(R8, R0);
    a.alu64(RSH, R8, 4);
    a.jump(C_JMP, JNE, R8, Src::Imm(4), run_classic);
    a.alu64(AND, R0, 0x0f);
    a.alu64(LSH, R0, 2);
    a.mov64(R8, R0);
    a.jump(C_JMP, JLT, R8, Src::Imm(20), run_classic);
    a.ld_ind(SZ_B, R9, 9);
    a.jump(C_JMP, JNE, R0, Src::Imm(6), run_classic);
    a.ld_ind(SZ_H, R9, 6);
    a.alu64(AND, R0, 0x3fff);
    a.jump(C_JMP, JNE, R0, Src::Imm(0), run_classic);
    for side in [0i16, 16] {
        a.st(SZ_W, FP, KEY + side, 0);
        a.st(SZ_W, FP, KEY + side + 4, 0);
        a.st(SZ_W, FP, KEY + side + 8, 0xffff);
    }
    a.ld_ind(SZ_W, R9, 12);
    a.stx(SZ_W, FP, KEY + 12, R0);
    a.ld_ind(SZ_W, R9, 16);
    a.stx(SZ_W, FP, KEY + 28, R0);
    a.emit(ins(C_ALU64 | ADD | SRC_X, R9, R8, 0, 0));
    // TCP: ports and the control flags (FIN, SYN, RST) into R8.
    a.bind(tcp);
    a.need(14, run_classic);
    a.ld_ind(SZ_H, R9, 0);
    // DNS over TCP: the capture thread reads every answer (passive DNS),
    // settled or not.
    a.jump(C_JMP, JEQ, R0, Src::Imm(53), run_classic);
    a.stx(SZ_H, FP, KEY + 32, R0);
    a.ld_ind(SZ_H, R9, 2);
    a.stx(SZ_H, FP, KEY + 34, R0);
    a.ld_ind(SZ_B, R9, 13);
    a.alu64(AND, R0, 7);
    a.mov64(R8, R0);
    // Lower endpoint first: compare the addresses word by word, then ports.
    for w in 0..4i16 {
        a.ldx(SZ_W, R1, FP, KEY + 4 * w);
        a.ldx(SZ_W, R2, FP, KEY + 16 + 4 * w);
        a.jump(C_JMP, JLT, R1, Src::Reg(R2), ordered);
        a.jump(C_JMP, JGT, R1, Src::Reg(R2), swap);
    }
    a.ldx(SZ_H, R1, FP, KEY + 32);
    a.ldx(SZ_H, R2, FP, KEY + 34);
    a.jump(C_JMP, JLE, R1, Src::Reg(R2), ordered);
    a.bind(swap);
    for w in 0..4i16 {
        a.ldx(SZ_W, R1, FP, KEY + 4 * w);
        a.ldx(SZ_W, R2, FP, KEY + 16 + 4 * w);
        a.stx(SZ_W, FP, KEY + 4 * w, R2);
        a.stx(SZ_W, FP, KEY + 16 + 4 * w, R1);
    }
    a.ldx(SZ_H, R1, FP, KEY + 32);
    a.ldx(SZ_H, R2, FP, KEY + 34);
    a.stx(SZ_H, FP, KEY + 32, R2);
    a.stx(SZ_H, FP, KEY + 34, R1);
    a.bind(ordered);
    a.jump(C_JMP, JNE, R8, Src::Imm(0), control);
    // Data: drop it if the flow is settled, unless a control segment of the
    // pair passed after (or just before) the settling segment.
    a.call_map(MAP_LOOKUP, MapRef::Settled, KEY);
    a.jump(C_JMP, JEQ, R0, Src::Imm(0), run_classic);
    a.ldx(SZ_DW, R9, R0, 0);
    a.call_map(MAP_LOOKUP, MapRef::Control, KEY);
    a.jump(C_JMP, JEQ, R0, Src::Imm(0), drop);
    a.ldx(SZ_DW, R1, R0, 0);
    a.alu64(ADD, R1, margin_ns);
    a.jump(C_JMP, JGE, R1, Src::Reg(R9), run_classic);
    a.bind(drop);
    a.st(SZ_W, FP, INDEX, 0);
    a.call_map(MAP_LOOKUP, MapRef::Stats, INDEX);
    a.jump(C_JMP, JEQ, R0, Src::Imm(0), ret0);
    // A per-CPU value: no other program run writes it meanwhile.
    a.ldx(SZ_DW, R1, R0, 0);
    a.alu64(ADD, R1, 1);
    a.stx(SZ_DW, R0, 0, R1);
    a.bind(ret0);
    a.alu64(MOV, R0, 0);
    a.exit();
    // SYN, FIN or RST: the pair is no longer settled, and the time is kept.
    a.bind(control);
    a.call(KTIME_GET_TAI_NS);
    a.stx(SZ_DW, FP, NOW, R0);
    a.stack_addr(R3, NOW);
    a.alu64(MOV, R4, 0);
    a.call_map(MAP_UPDATE, MapRef::Control, KEY);
    a.call_map(MAP_DELETE, MapRef::Settled, KEY);
    a.bind(run_classic);
    translate(&mut a, classic)?;
    a.finish()
}
