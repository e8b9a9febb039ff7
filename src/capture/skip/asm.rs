//! An eBPF assembler: instruction encoding, registers, helper calls, map
//! references and labels, enough for the skip program.

/// One eBPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Ins {
    pub(super) code: u8,
    pub(super) dst: u8,
    pub(super) src: u8,
    pub(super) off: i16,
    pub(super) imm: i32,
}

impl Ins {
    pub(super) fn bytes(&self) -> [u8; 8] {
        let o = self.off.to_le_bytes();
        let i = self.imm.to_le_bytes();
        [
            self.code,
            self.dst | self.src << 4,
            o[0],
            o[1],
            i[0],
            i[1],
            i[2],
            i[3],
        ]
    }
}

// Classes, sizes, modes, operations.
pub(super) const C_LD: u8 = 0x00;
pub(super) const C_LDX: u8 = 0x01;
pub(super) const C_ST: u8 = 0x02;
pub(super) const C_STX: u8 = 0x03;
pub(super) const C_ALU: u8 = 0x04;
pub(super) const C_JMP: u8 = 0x05;
pub(super) const C_JMP32: u8 = 0x06;
pub(super) const C_ALU64: u8 = 0x07;
pub(super) const SZ_W: u8 = 0x00;
pub(super) const SZ_H: u8 = 0x08;
pub(super) const SZ_B: u8 = 0x10;
pub(super) const SZ_DW: u8 = 0x18;
pub(super) const M_IMM: u8 = 0x00;
pub(super) const M_ABS: u8 = 0x20;
pub(super) const M_IND: u8 = 0x40;
pub(super) const M_MEM: u8 = 0x60;
pub(super) const SRC_K: u8 = 0x00;
pub(super) const SRC_X: u8 = 0x08;
pub(super) const ADD: u8 = 0x00;
pub(super) const DIV: u8 = 0x30;
pub(super) const AND: u8 = 0x50;
pub(super) const LSH: u8 = 0x60;
pub(super) const RSH: u8 = 0x70;
pub(super) const NEG: u8 = 0x80;
pub(super) const MOD: u8 = 0x90;
pub(super) const MOV: u8 = 0xb0;
pub(super) const END: u8 = 0xd0;
pub(super) const JA: u8 = 0x00;
pub(super) const JEQ: u8 = 0x10;
pub(super) const JGT: u8 = 0x20;
pub(super) const JGE: u8 = 0x30;
pub(super) const JNE: u8 = 0x50;
pub(super) const JLT: u8 = 0xa0;
pub(super) const JLE: u8 = 0xb0;
pub(super) const CALL: u8 = 0x80;
pub(super) const EXIT: u8 = 0x90;

pub(super) const R0: u8 = 0;
pub(super) const R1: u8 = 1;
pub(super) const R2: u8 = 2;
pub(super) const R3: u8 = 3;
pub(super) const R4: u8 = 4;
/// The context (`struct __sk_buff`), which packet loads use implicitly.
pub(super) const R6: u8 = 6;
/// Classic X.
pub(super) const R7: u8 = 7;
pub(super) const R8: u8 = 8;
pub(super) const R9: u8 = 9;
pub(super) const FP: u8 = 10;

// Helpers.
pub(super) const MAP_LOOKUP: i32 = 1;
pub(super) const MAP_UPDATE: i32 = 2;
pub(super) const MAP_DELETE: i32 = 3;
pub(super) const KTIME_GET_TAI_NS: i32 = 208;

// Stack slots (offsets from the frame pointer).
/// Classic scratch memory: M[i] at `SCRATCH + 4 * i`.
pub(super) const SCRATCH: i16 = -64;
pub(super) const KEY: i16 = -104;
pub(super) const INDEX: i16 = -112;
pub(super) const NOW: i16 = -120;

/// The maps, in the order of their definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MapRef {
    Settled = 0,
    Control = 1,
    Stats = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Label(usize);

/// Where a conditional jump compares against.
#[derive(Clone, Copy)]
pub(super) enum Src {
    Imm(i32),
    Reg(u8),
}

/// An assembler with forward and backward labels.
#[derive(Default)]
pub(super) struct Asm {
    pub(super) code: Vec<Ins>,
    pub(super) labels: Vec<Option<usize>>,
    pub(super) jumps: Vec<(usize, Label)>,
    pub(super) maps: Vec<(usize, MapRef)>,
}

pub(super) struct Built {
    pub(super) code: Vec<Ins>,
    pub(super) maps: Vec<(usize, MapRef)>,
}

pub(super) fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Ins {
    Ins {
        code,
        dst,
        src,
        off,
        imm,
    }
}

impl Asm {
    pub(super) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    pub(super) fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }
    pub(super) fn emit(&mut self, i: Ins) {
        self.code.push(i);
    }
    pub(super) fn alu64(&mut self, op: u8, dst: u8, imm: i32) {
        self.emit(ins(C_ALU64 | op | SRC_K, dst, 0, 0, imm));
    }
    pub(super) fn mov64(&mut self, dst: u8, src: u8) {
        self.emit(ins(C_ALU64 | MOV | SRC_X, dst, src, 0, 0));
    }
    pub(super) fn alu32(&mut self, op: u8, dst: u8, imm: i32) {
        self.emit(ins(C_ALU | op | SRC_K, dst, 0, 0, imm));
    }
    pub(super) fn alu32_reg(&mut self, op: u8, dst: u8, src: u8) {
        self.emit(ins(C_ALU | op | SRC_X, dst, src, 0, 0));
    }
    pub(super) fn ld_abs(&mut self, size: u8, k: i32) {
        self.emit(ins(C_LD | M_ABS | size, 0, 0, 0, k));
    }
    pub(super) fn ld_ind(&mut self, size: u8, src: u8, k: i32) {
        self.emit(ins(C_LD | M_IND | size, 0, src, 0, k));
    }
    pub(super) fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.emit(ins(C_LDX | M_MEM | size, dst, src, off, 0));
    }
    pub(super) fn stx(&mut self, size: u8, dst: u8, off: i16, src: u8) {
        self.emit(ins(C_STX | M_MEM | size, dst, src, off, 0));
    }
    pub(super) fn st(&mut self, size: u8, dst: u8, off: i16, imm: i32) {
        self.emit(ins(C_ST | M_MEM | size, dst, 0, off, imm));
    }
    pub(super) fn jump(&mut self, class: u8, op: u8, dst: u8, src: Src, to: Label) {
        self.jumps.push((self.code.len(), to));
        match src {
            Src::Imm(k) => self.emit(ins(class | op | SRC_K, dst, 0, 0, k)),
            Src::Reg(r) => self.emit(ins(class | op | SRC_X, dst, r, 0, 0)),
        }
    }
    pub(super) fn ja(&mut self, to: Label) {
        self.jump(C_JMP, JA, 0, Src::Imm(0), to);
    }
    pub(super) fn call(&mut self, helper: i32) {
        self.emit(ins(C_JMP | CALL, 0, 0, 0, helper));
    }
    pub(super) fn exit(&mut self) {
        self.emit(ins(C_JMP | EXIT, 0, 0, 0, 0));
    }
    /// `dst` = the map's address (a 64-bit load the loader relocates).
    pub(super) fn ld_map(&mut self, dst: u8, map: MapRef) {
        self.maps.push((self.code.len(), map));
        self.emit(ins(C_LD | SZ_DW | M_IMM, dst, 0, 0, 0));
        self.emit(ins(0, 0, 0, 0, 0));
    }
    /// Goes to `short` unless the packet has `bytes` bytes from offset R9
    /// (a packet load beyond the end would end the program with 0, dropping
    /// what the classic filter might keep). Uses R1 and R2.
    pub(super) fn need(&mut self, bytes: i32, short: Label) {
        self.ldx(SZ_W, R1, R6, 0);
        self.mov64(R2, R9);
        self.alu64(ADD, R2, bytes);
        self.jump(C_JMP, JGT, R2, Src::Reg(R1), short);
    }
    /// Calls the map helper `helper` on `map` with the key at stack offset
    /// `key` (R1 and R2; a helper with more arguments has them set before).
    pub(super) fn call_map(&mut self, helper: i32, map: MapRef, key: i16) {
        self.ld_map(R1, map);
        self.stack_addr(R2, key);
        self.call(helper);
    }
    /// `dst` = frame pointer + `off`.
    pub(super) fn stack_addr(&mut self, dst: u8, off: i16) {
        self.mov64(dst, FP);
        self.alu64(ADD, dst, i32::from(off));
    }

    pub(super) fn finish(mut self) -> Result<Built, String> {
        for &(at, Label(l)) in &self.jumps {
            let to = self.labels[l].ok_or("a jump to an unbound label")?;
            let off = to as i64 - at as i64 - 1;
            self.code[at].off =
                i16::try_from(off).map_err(|_| "the program is too long for a jump")?;
        }
        Ok(Built {
            code: self.code,
            maps: self.maps,
        })
    }
}
