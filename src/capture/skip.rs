//! Kernel skip: the data segments of settled flows dropped by the socket
//! filter, before the kernel copies them to the capture ring.
//!
//! Input: libpcap's compiled capture filter (classic BPF) of an Ethernet
//! handle, and from the workers each settled flow (its two endpoints and the
//! capture time of the segment that settled it). Output: one eBPF socket
//! filter, attached to every such handle in place of libpcap's classic one,
//! which
//! - for an unfragmented TCP segment in IPv4, or right after an IPv6 header
//!   (behind up to two VLAN tags left in the frame), not from port 53 (the
//!   capture thread reads DNS answers over TCP whatever the flow), looks the connection up
//!   in `tlsc_settled` (an LRU hash keyed by the two endpoints, lower first, as
//!   `FlowKey` orders them) and drops the segment if the flow is settled;
//! - lets every SYN, FIN or RST through, after deleting the flow from
//!   `tlsc_settled` and writing its time into `tlsc_control`;
//! - runs libpcap's program, translated instruction by instruction, on all
//!   that it does not drop.
//!
//! Invariant (why results do not change): the kernel drops only data segments
//! of flows the worker has marked settled, and never one that follows a
//! control segment of the same address/port pair: a control segment deletes
//! the mark, and a mark the worker writes after a control segment has already
//! passed (a reused pair, while the control segment is still in the ring) is
//! ignored, because its time (the capture time of the settling segment, on
//! the kernel's TAI clock) is not later than `tlsc_control`'s by more than
//! [`MARGIN_NS`]. The segments it drops are the ones the capture thread's
//! settled set would skip (see `flow::SettledSet`), with one exception: a
//! settled flow whose slot in that set another flow took over (a hash
//! collision there) is still skipped here, where the capture thread would
//! have passed its data to a worker that ignores it, or, once the worker has
//! forgotten the flow, counted it as a new flow seen midstream. What cannot be parsed
//! here (tunnels, IPv6 extension headers, fragments, other link types) goes
//! to the capture thread as before.
//!
//! Bounds: both maps hold `--kernel-skip-flows` entries (112 bytes each),
//! allocated by the kernel when the program is loaded (outside the process'
//! RSS, charged to its memory cgroup); a full map evicts its least recently used flow, whose
//! segments then reach the capture thread, where the settled set skips them.
//! Needs CAP_BPF (or root) at start, Linux 6.1 or later (the TAI clock
//! helper); without them tlscensus says why once and captures as before.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray};
use aya::programs::SocketFilter;
use pcap::{Active, Capture};

use super::filter::{self, Insn as Classic};

/// The program's name in the object and in the kernel.
const PROGRAM: &str = "tlscensus_skip";
const SETTLED_MAP: &str = "tlsc_settled";
const CONTROL_MAP: &str = "tlsc_control";
const STATS_MAP: &str = "tlsc_stats";

/// A mark is ignored when a control segment of the pair passed less than
/// this long before the settling segment's capture time. It covers the gap
/// between the frame's receive timestamp and the filter's clock reading, and
/// segments of one pair seen on two interfaces or CPUs slightly out of order.
pub const MARGIN_NS: i32 = 100_000;

/// Key: the lower endpoint's address as four big-endian words (IPv4 mapped
/// into IPv6), the higher's, then the two ports; native byte order, as the
/// program stores what its loads return.
pub const KEY_LEN: usize = 36;
pub type SkipKey = [u8; KEY_LEN];

/// The key of a flow from its two endpoints, lower first.
pub fn skip_key(lo: (&[u8; 16], u16), hi: (&[u8; 16], u16)) -> SkipKey {
    let mut k = [0u8; KEY_LEN];
    for (side, (addr, _)) in [lo, hi].iter().enumerate() {
        for w in 0..4 {
            let v = u32::from_be_bytes([
                addr[4 * w],
                addr[4 * w + 1],
                addr[4 * w + 2],
                addr[4 * w + 3],
            ]);
            let at = 16 * side + 4 * w;
            k[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        }
    }
    k[32..34].copy_from_slice(&lo.1.to_ne_bytes());
    k[34..36].copy_from_slice(&hi.1.to_ne_bytes());
    k
}

/// The loaded program and the maps tlscensus writes and reads.
struct Loaded {
    ebpf: Ebpf,
    settled: BpfHashMap<MapData, SkipKey, u64>,
    stats: PerCpuArray<MapData, u64>,
    /// The classic program it was built from: a handle whose filter compiles
    /// to something else keeps its classic filter.
    classic: Vec<Classic>,
}

enum State {
    NotLoaded,
    Loaded(Box<Loaded>),
    /// Loading failed, for this reason.
    Failed(String),
}

/// The kernel skip shared by the capture threads (which attach it) and the
/// workers (which mark settled flows): see the module documentation.
pub struct KernelSkip {
    capacity: u32,
    state: Mutex<State>,
    /// Marks are written: the program is attached to a handle.
    writing: AtomicBool,
    /// A write failed: no more are tried.
    refused: AtomicBool,
    /// CLOCK_TAI minus CLOCK_REALTIME, whole seconds in nanoseconds.
    tai_offset_ns: AtomicI64,
    /// Why handles kept their classic filter, not yet said.
    notes: Mutex<Vec<String>>,
    /// Flows marked in the kernel.
    pub marked: AtomicU64,
}

impl KernelSkip {
    /// Room for `capacity` settled flows (and as many recent control segments).
    pub fn new(capacity: u32) -> KernelSkip {
        let s = KernelSkip {
            capacity: capacity.max(1),
            state: Mutex::new(State::NotLoaded),
            writing: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            tai_offset_ns: AtomicI64::new(0),
            notes: Mutex::new(Vec::new()),
            marked: AtomicU64::new(0),
        };
        s.refresh_clock();
        s
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// [`KernelSkip::attach`]; a failure is kept, to be said
    /// ([`KernelSkip::take_notes`]), and the handle keeps its filter.
    pub fn attach_or_note(&self, name: &str, cap: &Capture<Active>, expr: &str) {
        if let Err(e) = self.attach(cap, expr) {
            let mut notes = crate::sync::lock(&self.notes);
            // One note per interface and reason, however many threads.
            let note = format!("interface {name}: kernel skip off: {e}");
            if notes.len() < 64 && !notes.contains(&note) {
                notes.push(note);
            }
        }
    }

    /// What went wrong since the last call, to be said once.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *crate::sync::lock(&self.notes))
    }

    /// Replaces the classic filter `expr` of `cap` by the kernel-skip
    /// program. The first call loads the program (this needs CAP_BPF). An
    /// error says why this handle keeps its classic filter.
    pub fn attach(&self, cap: &Capture<Active>, expr: &str) -> Result<(), String> {
        if cap.get_datalink().0 != 1 {
            return Err("the interface is not Ethernet".into());
        }
        let classic = cap
            .compile(expr, true)
            .map_err(|e| format!("compiling the filter: {e}"))
            .and_then(|p| filter::instructions(&p))?;
        let mut state = self.state();
        if let State::NotLoaded = *state {
            match load(&classic, self.capacity) {
                Ok(l) => *state = State::Loaded(Box::new(l)),
                Err(e) => {
                    *state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
        let l = match &*state {
            State::Loaded(l) => l,
            State::Failed(e) => return Err(e.clone()),
            State::NotLoaded => return Err("not loaded".into()),
        };
        if l.classic != classic {
            return Err("its filter compiles differently from the first interface's".into());
        }
        program(&l.ebpf)?
            .attach(cap)
            .map_err(|e| format!("attaching the kernel-skip program: {e}"))?;
        if !self.refused.load(Ordering::Relaxed) {
            self.writing.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Whether the program is loaded.
    pub fn loaded(&self) -> bool {
        matches!(*self.state(), State::Loaded(_))
    }

    /// Whether settled flows are being marked in the kernel.
    pub fn active(&self) -> bool {
        self.writing.load(Ordering::Relaxed)
    }

    /// Worker: the flow with these endpoints settled with a segment captured
    /// at `ts_ns` (Unix time); its later data segments may stay in the kernel.
    pub fn settle(&self, lo: (&[u8; 16], u16), hi: (&[u8; 16], u16), ts_ns: u64) {
        if !self.writing.load(Ordering::Relaxed) {
            return;
        }
        let key = skip_key(lo, hi);
        let at = ts_ns.saturating_add_signed(self.tai_offset_ns.load(Ordering::Relaxed));
        let mut state = self.state();
        let State::Loaded(l) = &mut *state else {
            return;
        };
        match l.settled.insert(key, at, 0) {
            Ok(()) => {
                self.marked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // Typically EPERM: a kernel before 6.5 wants CAP_BPF for map
                // writes, and privileges were dropped. Marking stops; the
                // capture thread still skips settled flows.
                self.writing.store(false, Ordering::Relaxed);
                if !self.refused.swap(true, Ordering::Relaxed) {
                    crate::sync::lock(&self.notes).push(format!(
                        "kernel skip off: the kernel refused a settled flow ({e}); settled flows are skipped in user space only"
                    ));
                }
            }
        }
    }

    /// Data segments the kernel has dropped, since the program was loaded.
    pub fn skipped(&self) -> u64 {
        let state = self.state();
        let State::Loaded(l) = &*state else {
            return 0;
        };
        l.stats
            .get(&0, 0)
            .map_or(0, |v| v.iter().copied().fold(0u64, u64::wrapping_add))
    }

    /// Reads the TAI offset again (it changes when a time daemon sets it).
    pub fn refresh_clock(&self) {
        use nix::time::{ClockId, clock_gettime};
        let ns =
            |c| clock_gettime(c).map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128);
        if let (Ok(tai), Ok(real)) = (ns(ClockId::CLOCK_TAI), ns(ClockId::CLOCK_REALTIME)) {
            // The offset is a whole number of seconds; rounding removes the
            // time between the two readings.
            let secs = (tai - real + 500_000_000).div_euclid(1_000_000_000);
            self.tai_offset_ns
                .store((secs * 1_000_000_000) as i64, Ordering::Relaxed);
        }
    }
}

fn program(ebpf: &Ebpf) -> Result<&SocketFilter, String> {
    ebpf.program(PROGRAM)
        .ok_or("the kernel-skip program is missing")?
        .try_into()
        .map_err(|e| format!("{e}"))
}

/// `what`, the error and its causes, and what to do when it is a matter of
/// privileges.
fn explain(what: &str, e: &dyn std::error::Error) -> String {
    let mut msg = format!("{what}: {e}");
    let mut src = e.source();
    let mut denied = false;
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        denied |= s
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
        src = s.source();
    }
    if denied || msg.contains("Operation not permitted") {
        msg.push_str(
            " (it needs CAP_BPF or root at start: setcap cap_net_raw,cap_bpf+ep, or --kernel-skip-flows 0 to turn it off; in a container, also a seccomp profile that allows the bpf call)",
        );
    }
    msg
}

/// Builds, loads and verifies the program for `classic`.
fn load(classic: &[Classic], capacity: u32) -> Result<Loaded, String> {
    let built = build(classic, MARGIN_NS)?;
    let object = elf(&built, capacity)?;
    // No kernel BTF: the program needs no CO-RE relocation, and parsing
    // /sys/kernel/btf/vmlinux would add about 16 MB to the sensor's RSS.
    let mut ebpf = aya::EbpfLoader::new()
        .btf(None)
        .load(&object)
        .map_err(|e| explain("loading the kernel-skip object", &e))?;
    let prog: &mut SocketFilter = ebpf
        .program_mut(PROGRAM)
        .ok_or("the kernel-skip program is missing")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    prog.load()
        .map_err(|e| explain("the kernel refused the kernel-skip program", &e))?;
    let settled = ebpf
        .take_map(SETTLED_MAP)
        .ok_or("map missing")
        .map_err(String::from)
        .and_then(|m| BpfHashMap::try_from(m).map_err(|e| e.to_string()))?;
    let stats = ebpf
        .take_map(STATS_MAP)
        .ok_or("map missing")
        .map_err(String::from)
        .and_then(|m| PerCpuArray::try_from(m).map_err(|e| e.to_string()))?;
    Ok(Loaded {
        ebpf,
        settled,
        stats,
        classic: classic.to_vec(),
    })
}

// --- eBPF encoding -------------------------------------------------------

/// One eBPF instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ins {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

impl Ins {
    fn bytes(&self) -> [u8; 8] {
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
const C_LD: u8 = 0x00;
const C_LDX: u8 = 0x01;
const C_ST: u8 = 0x02;
const C_STX: u8 = 0x03;
const C_ALU: u8 = 0x04;
const C_JMP: u8 = 0x05;
const C_JMP32: u8 = 0x06;
const C_ALU64: u8 = 0x07;
const SZ_W: u8 = 0x00;
const SZ_H: u8 = 0x08;
const SZ_B: u8 = 0x10;
const SZ_DW: u8 = 0x18;
const M_IMM: u8 = 0x00;
const M_ABS: u8 = 0x20;
const M_IND: u8 = 0x40;
const M_MEM: u8 = 0x60;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const ADD: u8 = 0x00;
const DIV: u8 = 0x30;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const NEG: u8 = 0x80;
const MOD: u8 = 0x90;
const MOV: u8 = 0xb0;
const END: u8 = 0xd0;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JGE: u8 = 0x30;
const JNE: u8 = 0x50;
const JLT: u8 = 0xa0;
const JLE: u8 = 0xb0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
/// The context (`struct __sk_buff`), which packet loads use implicitly.
const R6: u8 = 6;
/// Classic X.
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const FP: u8 = 10;

// Helpers.
const MAP_LOOKUP: i32 = 1;
const MAP_UPDATE: i32 = 2;
const MAP_DELETE: i32 = 3;
const KTIME_GET_TAI_NS: i32 = 208;

// Stack slots (offsets from the frame pointer).
/// Classic scratch memory: M[i] at `SCRATCH + 4 * i`.
const SCRATCH: i16 = -64;
const KEY: i16 = -104;
const INDEX: i16 = -112;
const NOW: i16 = -120;

/// The maps, in the order of their definitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MapRef {
    Settled = 0,
    Control = 1,
    Stats = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

/// Where a conditional jump compares against.
#[derive(Clone, Copy)]
enum Src {
    Imm(i32),
    Reg(u8),
}

/// An assembler with forward and backward labels.
#[derive(Default)]
struct Asm {
    code: Vec<Ins>,
    labels: Vec<Option<usize>>,
    jumps: Vec<(usize, Label)>,
    maps: Vec<(usize, MapRef)>,
}

struct Built {
    code: Vec<Ins>,
    maps: Vec<(usize, MapRef)>,
}

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Ins {
    Ins {
        code,
        dst,
        src,
        off,
        imm,
    }
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    fn bind(&mut self, l: Label) {
        self.labels[l.0] = Some(self.code.len());
    }
    fn emit(&mut self, i: Ins) {
        self.code.push(i);
    }
    fn alu64(&mut self, op: u8, dst: u8, imm: i32) {
        self.emit(ins(C_ALU64 | op | SRC_K, dst, 0, 0, imm));
    }
    fn mov64(&mut self, dst: u8, src: u8) {
        self.emit(ins(C_ALU64 | MOV | SRC_X, dst, src, 0, 0));
    }
    fn alu32(&mut self, op: u8, dst: u8, imm: i32) {
        self.emit(ins(C_ALU | op | SRC_K, dst, 0, 0, imm));
    }
    fn alu32_reg(&mut self, op: u8, dst: u8, src: u8) {
        self.emit(ins(C_ALU | op | SRC_X, dst, src, 0, 0));
    }
    fn ld_abs(&mut self, size: u8, k: i32) {
        self.emit(ins(C_LD | M_ABS | size, 0, 0, 0, k));
    }
    fn ld_ind(&mut self, size: u8, src: u8, k: i32) {
        self.emit(ins(C_LD | M_IND | size, 0, src, 0, k));
    }
    fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.emit(ins(C_LDX | M_MEM | size, dst, src, off, 0));
    }
    fn stx(&mut self, size: u8, dst: u8, off: i16, src: u8) {
        self.emit(ins(C_STX | M_MEM | size, dst, src, off, 0));
    }
    fn st(&mut self, size: u8, dst: u8, off: i16, imm: i32) {
        self.emit(ins(C_ST | M_MEM | size, dst, 0, off, imm));
    }
    fn jump(&mut self, class: u8, op: u8, dst: u8, src: Src, to: Label) {
        self.jumps.push((self.code.len(), to));
        match src {
            Src::Imm(k) => self.emit(ins(class | op | SRC_K, dst, 0, 0, k)),
            Src::Reg(r) => self.emit(ins(class | op | SRC_X, dst, r, 0, 0)),
        }
    }
    fn ja(&mut self, to: Label) {
        self.jump(C_JMP, JA, 0, Src::Imm(0), to);
    }
    fn call(&mut self, helper: i32) {
        self.emit(ins(C_JMP | CALL, 0, 0, 0, helper));
    }
    fn exit(&mut self) {
        self.emit(ins(C_JMP | EXIT, 0, 0, 0, 0));
    }
    /// `dst` = the map's address (a 64-bit load the loader relocates).
    fn ld_map(&mut self, dst: u8, map: MapRef) {
        self.maps.push((self.code.len(), map));
        self.emit(ins(C_LD | SZ_DW | M_IMM, dst, 0, 0, 0));
        self.emit(ins(0, 0, 0, 0, 0));
    }
    /// Goes to `short` unless the packet has `bytes` bytes from offset R9
    /// (a packet load beyond the end would end the program with 0, dropping
    /// what the classic filter might keep). Uses R1 and R2.
    fn need(&mut self, bytes: i32, short: Label) {
        self.ldx(SZ_W, R1, R6, 0);
        self.mov64(R2, R9);
        self.alu64(ADD, R2, bytes);
        self.jump(C_JMP, JGT, R2, Src::Reg(R1), short);
    }
    /// Calls the map helper `helper` on `map` with the key at stack offset
    /// `key` (R1 and R2; a helper with more arguments has them set before).
    fn call_map(&mut self, helper: i32, map: MapRef, key: i16) {
        self.ld_map(R1, map);
        self.stack_addr(R2, key);
        self.call(helper);
    }
    /// `dst` = frame pointer + `off`.
    fn stack_addr(&mut self, dst: u8, off: i16) {
        self.mov64(dst, FP);
        self.alu64(ADD, dst, i32::from(off));
    }

    fn finish(mut self) -> Result<Built, String> {
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

/// The program: the settled-flow check, then `classic`.
fn build(classic: &[Classic], margin_ns: i32) -> Result<Built, String> {
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

/// `SKF_AD_OFF`: classic loads at this offset and above read packet metadata.
const SKF_AD_OFF: i32 = -0x1000;

/// Classic BPF to eBPF, as the kernel itself converts a classic socket
/// filter: A in R0, X in R7, scratch memory on the stack, packet loads as
/// eBPF's legacy packet loads (which also end the program, returning 0,
/// beyond the packet), metadata loads from `struct __sk_buff`.
fn translate(a: &mut Asm, prog: &[Classic]) -> Result<(), String> {
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
fn ancillary(a: &mut Asm, what: i32) -> Result<(), String> {
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

/// A relocatable ELF object holding the program, its maps and its licence,
/// as a C compiler would have written it, for aya's loader.
fn elf(b: &Built, capacity: u32) -> Result<Vec<u8>, String> {
    use object::write::{Object, Relocation, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
        SymbolKind, SymbolScope,
    };
    const LRU_HASH: u32 = 9;
    const PERCPU_ARRAY: u32 = 6;
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let text = obj.add_section(Vec::new(), b"socket".to_vec(), SectionKind::Text);
    let code: Vec<u8> = b.code.iter().flat_map(Ins::bytes).collect();
    obj.append_section_data(text, &code, 8);
    obj.add_symbol(Symbol {
        name: PROGRAM.as_bytes().to_vec(),
        value: 0,
        size: code.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });
    let maps = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
    // struct bpf_map_def: type, key size, value size, entries, flags, id, pinning.
    let defs: [(&str, [u32; 7]); 3] = [
        (
            SETTLED_MAP,
            [LRU_HASH, KEY_LEN as u32, 8, capacity, 0, 0, 0],
        ),
        (
            CONTROL_MAP,
            [LRU_HASH, KEY_LEN as u32, 8, capacity, 0, 0, 0],
        ),
        (STATS_MAP, [PERCPU_ARRAY, 4, 8, 1, 0, 0, 0]),
    ];
    let mut symbols = Vec::new();
    for (name, def) in defs {
        let bytes: Vec<u8> = def.iter().flat_map(|v| v.to_le_bytes()).collect();
        let at = obj.append_section_data(maps, &bytes, 4);
        symbols.push(obj.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: at,
            size: bytes.len() as u64,
            kind: SymbolKind::Data,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(maps),
            flags: SymbolFlags::None,
        }));
    }
    let licence = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(licence, b"Dual MIT/Apache-2.0\0", 1);
    for &(at, map) in &b.maps {
        obj.add_relocation(
            text,
            Relocation {
                offset: at as u64 * 8,
                symbol: symbols[map as usize],
                addend: 0,
                flags: RelocationFlags::Elf {
                    r_type: object::elf::R_BPF_64_64,
                },
            },
        )
        .map_err(|e| e.to_string())?;
    }
    obj.write().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aya::programs::{TestRun, TestRunOptions};
    use pcap::Linktype;

    use crate::capture::live::default_bpf;
    use crate::decode::TunnelPorts;

    /// Loading eBPF needs CAP_BPF: without root these tests say so and
    /// pass, except in CI (`CI` set), where they fail.
    fn privileged() -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run these as root"
            );
            eprintln!("skipped: loading eBPF needs root");
        }
        root
    }

    fn classic(expr: &str) -> Vec<Classic> {
        let p = Capture::dead(Linktype(1))
            .unwrap()
            .compile(expr, true)
            .unwrap();
        filter::instructions(&p).unwrap()
    }

    /// Runs the loaded program on an Ethernet frame as the socket filter
    /// sees it; its return value.
    fn run(l: &Loaded, frame: &[u8]) -> u32 {
        try_run(l, frame).unwrap_or_else(|e| panic!("{e} on a frame of {} bytes", frame.len()))
    }

    fn try_run(l: &Loaded, frame: &[u8]) -> Result<u32, aya::programs::ProgramError> {
        // The test runner strips a link header before a socket filter runs:
        // give it one more, of the frame's own type.
        let mut data = vec![0u8; 12];
        data.extend_from_slice(&frame[12..14]);
        data.extend_from_slice(frame);
        program(&l.ebpf)
            .unwrap()
            .test_run(TestRunOptions {
                data_in: Some(&data),
                repeat: 1,
                ..Default::default()
            })
            .map(|r| r.return_value)
    }

    fn tai_now() -> u64 {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_TAI).unwrap();
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    }

    /// With no flow settled, the program keeps exactly the frames libpcap's
    /// classic program keeps, for the default live filter and for
    /// expressions that use every kind of classic instruction, on every frame
    /// of every shipped Ethernet capture.
    #[test]
    fn skip_program_equals_classic_filter_on_every_capture() {
        if !privileged() {
            return;
        }
        let exprs = [
            default_bpf(&TunnelPorts::default()),
            "tcp port 443".into(),
            "ip[2:2] / ip[9] > 5 or ip6[4:2] % ip6[6] = 1".into(),
            "len % 7 = 3 or len * 3 - 2 > 4000".into(),
            "tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x16".into(),
            "vlan and (tcp or udp)".into(),
            "net 10.0.0.0/8 or ip6 or (ip[8] ^ 0x40 < 3) or (ip[1] | 4 == 4)".into(),
            "(ip[2:2] << 1) - 40 > 200 and (ip[2:2] >> 2) & 0xf != 0".into(),
            "(ip and ip[6:2] & 0x1fff != 0) or pppoes or mpls".into(),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let (mut frames, mut kept, mut untestable, mut mutated) = (0u64, 0u64, 0u64, 0u64);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for expr in &exprs {
            let l = load(&classic(expr), 1024).unwrap_or_else(|e| panic!("{expr}: {e}"));
            let theirs = Capture::dead(Linktype(1))
                .unwrap()
                .compile(expr, true)
                .unwrap();
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let Ok(mut cap) = Capture::from_file(&path) else {
                    continue;
                };
                if cap.get_datalink().0 != 1 {
                    continue;
                }
                while let Ok(p) = cap.next_packet() {
                    if p.data.len() < 14 {
                        continue;
                    }
                    // The kernel's test runner takes frames up to about a
                    // page, and only with a sound IP header.
                    let Ok(ret) = try_run(&l, p.data) else {
                        untestable += 1;
                        continue;
                    };
                    frames += 1;
                    let keep = ret != 0;
                    assert_eq!(keep, theirs.filter(p.data), "{expr} on {path:?}");
                    kept += u64::from(keep);
                    // Hostile bytes: the same frame with a header byte
                    // changed (any byte of the first 80, any value).
                    let mut bad = p.data.to_vec();
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let at = (rng % 80) as usize % bad.len();
                    bad[at] = (rng >> 32) as u8;
                    if let Ok(ret) = try_run(&l, &bad) {
                        mutated += 1;
                        assert_eq!(
                            ret != 0,
                            theirs.filter(&bad),
                            "{expr} on {path:?}, byte {at} changed"
                        );
                    }
                }
            }
            assert_eq!(l.settled.keys().count(), 0, "{expr}: nothing settled");
        }
        assert!(
            frames > 5000 && kept > 2000 && untestable * 20 < frames && mutated * 2 > frames,
            "{frames} frames, {kept} kept, {untestable} the test runner refused, {mutated} mutated"
        );
    }

    /// A metadata load (libpcap's kernel filters use them for VLAN tags the
    /// kernel took out of the frame) reads the packet's metadata.
    #[test]
    fn skip_program_metadata_loads() {
        if !privileged() {
            return;
        }
        // ld #proto (SKF_AD_PROTOCOL) == 0x0800, else ld vlan_avail.
        let prog = [
            Classic {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: (SKF_AD_OFF) as u32,
            },
            Classic {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: 0x0800,
            },
            Classic {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 1000,
            },
            Classic {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: (SKF_AD_OFF + 48) as u32,
            },
            Classic {
                code: 0x15,
                jt: 0,
                jf: 1,
                k: 0,
            },
            Classic {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 7,
            },
            Classic {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0,
            },
        ];
        let l = load(&prog, 16).unwrap();
        let v4 = tcp_frame(false, true, 0, false);
        let v6 = tcp_frame(true, true, 0, false);
        assert_eq!(run(&l, &v4), 1000);
        assert_eq!(run(&l, &v6), 7, "no VLAN tag outside the frame");
        // Unknown metadata is refused, not mistranslated.
        let cpu = [
            Classic {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: (SKF_AD_OFF + 36) as u32,
            },
            prog[2],
        ];
        assert!(load(&cpu, 16).is_err());
    }

    const A6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// A TCP segment between the test hosts (A, port 40000) and (B, port
    /// 443), from A when `from_a`; `flags` 0 is a data segment, else SYN (2)
    /// or FIN (1) with no payload; `vlan` puts a tag in the frame.
    fn tcp_frame(v6: bool, from_a: bool, flags: u8, vlan: bool) -> Vec<u8> {
        use etherparse::PacketBuilder;
        let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
        let (sp, dp) = if from_a { (40000, 443) } else { (443, 40000) };
        let ip = match (v6, from_a) {
            (true, true) => eth.ipv6(A6, B6, 64),
            (true, false) => eth.ipv6(B6, A6, 64),
            (false, true) => eth.ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64),
            (false, false) => eth.ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64),
        };
        let mut t = ip.tcp(sp, dp, 1000, 1000).ack(1);
        if flags & 2 != 0 {
            t = t.syn();
        }
        if flags & 1 != 0 {
            t = t.fin();
        }
        let body: &[u8] = if flags == 0 { &[0x17; 100] } else { &[] };
        let mut out = Vec::new();
        t.write(&mut out, body).unwrap();
        if vlan {
            out.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        }
        out
    }

    fn key_of(v6: bool) -> SkipKey {
        let a4 = std::net::Ipv4Addr::new(10, 0, 0, 1)
            .to_ipv6_mapped()
            .octets();
        let b4 = std::net::Ipv4Addr::new(10, 0, 0, 2)
            .to_ipv6_mapped()
            .octets();
        let (a, b) = if v6 { (A6, B6) } else { (a4, b4) };
        // A < B, so A's endpoint is the lower one.
        skip_key((&a, 40000), (&b, 443))
    }

    /// A settled flow's data segments are dropped in both directions, IPv4
    /// and IPv6, tagged or not, and counted; its control segments pass and
    /// end the skip; a mark older than a control segment of the pair (a
    /// reused pair whose SYN passed before the worker marked the old flow)
    /// drops nothing.
    #[test]
    fn skip_drops_settled_data_only() {
        if !privileged() {
            return;
        }
        let mut l = load(&classic(&default_bpf(&TunnelPorts::default())), 64).unwrap();
        for v6 in [false, true] {
            let key = key_of(v6);
            let data = |from_a, vlan| tcp_frame(v6, from_a, 0, vlan);
            assert_ne!(run(&l, &data(true, false)), 0, "not settled: kept");
            l.settled.insert(key, tai_now() + 1_000_000_000, 0).unwrap();
            let before = l.stats.get(&0, 0).unwrap().iter().sum::<u64>();
            for (from_a, vlan) in [(true, false), (false, false), (true, true), (false, true)] {
                assert_eq!(
                    run(&l, &data(from_a, vlan)),
                    0,
                    "v6 {v6} a {from_a} vlan {vlan}"
                );
            }
            let after = l.stats.get(&0, 0).unwrap().iter().sum::<u64>();
            assert_eq!(after - before, 4, "each drop counted");
            // Another flow of the same hosts is not settled.
            let mut other = data(true, false);
            let at = if v6 { 14 + 40 } else { 14 + 20 };
            other[at..at + 2].copy_from_slice(&40001u16.to_be_bytes());
            assert_ne!(run(&l, &other), 0, "another port pair");
            // A FIN passes and ends the skip.
            assert_ne!(run(&l, &tcp_frame(v6, false, 1, false)), 0);
            assert_ne!(run(&l, &data(true, false)), 0, "after the FIN");
            assert!(l.settled.get(&key, 0).is_err());
            // A SYN passed, then the worker marks the old flow with the time
            // of a segment before it: the new connection's data is kept.
            assert_ne!(run(&l, &tcp_frame(v6, true, 2, false)), 0);
            l.settled.insert(key, tai_now() - 1_000_000, 0).unwrap();
            assert_ne!(run(&l, &data(true, false)), 0, "a mark older than the SYN");
            // A mark well after the last control segment drops again.
            l.settled.insert(key, tai_now() + 1_000_000, 0).unwrap();
            assert_eq!(run(&l, &data(false, false)), 0);
            let _ = l.settled.remove(&key);
        }
        // Frames cut anywhere, settled or not: where the program cannot read
        // the ports and flags, it keeps what the classic filter keeps (a
        // packet load beyond the end would have dropped it).
        let theirs_all = Capture::dead(Linktype(1))
            .unwrap()
            .compile(&default_bpf(&TunnelPorts::default()), true)
            .unwrap();
        let mut cuts = 0;
        for v6 in [false, true] {
            for vlan in [false, true] {
                let full = tcp_frame(v6, true, 0, vlan);
                let l4 = 14 + if vlan { 4 } else { 0 } + if v6 { 40 } else { 20 };
                for settled in [false, true] {
                    if settled {
                        l.settled
                            .insert(key_of(v6), tai_now() + 1_000_000_000, 0)
                            .unwrap();
                    } else {
                        let _ = l.settled.remove(&key_of(v6));
                    }
                    for cut in 14..l4 + 14 {
                        let frame = &full[..cut];
                        let Ok(ret) = try_run(&l, frame) else {
                            continue;
                        };
                        cuts += 1;
                        assert_eq!(
                            ret != 0,
                            theirs_all.filter(frame),
                            "v6 {v6} vlan {vlan} settled {settled} cut at {cut}"
                        );
                    }
                }
            }
        }
        assert!(cuts > 100, "{cuts} cut frames run");
        // An answer from port 53 is kept, settled or not (passive DNS).
        let a4 = std::net::Ipv4Addr::new(10, 0, 0, 1)
            .to_ipv6_mapped()
            .octets();
        let b4 = std::net::Ipv4Addr::new(10, 0, 0, 2)
            .to_ipv6_mapped()
            .octets();
        let mut dns = tcp_frame(false, false, 0, false);
        dns[14 + 20..14 + 22].copy_from_slice(&53u16.to_be_bytes());
        l.settled
            .insert(
                skip_key((&a4, 40000), (&b4, 53)),
                tai_now() + 1_000_000_000,
                0,
            )
            .unwrap();
        assert_ne!(run(&l, &dns), 0, "a DNS answer over TCP");
        let mut query = tcp_frame(false, true, 0, false);
        query[14 + 22..14 + 24].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(
            run(&l, &query),
            0,
            "the query side is the settled flow's data"
        );
        // An IPv4 fragment of a settled pair is not parsed here: kept.
        l.settled
            .insert(key_of(false), tai_now() + 1_000_000_000, 0)
            .unwrap();
        let mut frag = tcp_frame(false, true, 0, false);
        frag[14 + 6] = 0x20; // more fragments
        frag[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        let theirs = Capture::dead(Linktype(1))
            .unwrap()
            .compile(&default_bpf(&TunnelPorts::default()), true)
            .unwrap();
        assert_eq!(run(&l, &frag) != 0, theirs.filter(&frag));
        assert_ne!(run(&l, &frag), 0);
    }

    /// What a worker does, end to end: `KernelSkip::settle` with a flow's
    /// `FlowKey` endpoints and its capture time (Unix time, turned into the
    /// kernel's TAI clock) marks the flow the program then drops, in both
    /// directions; a settle time before the pair's last SYN drops nothing.
    #[test]
    fn skip_settle_marks_what_the_program_drops() {
        if !privileged() {
            return;
        }
        let skip = KernelSkip::new(64);
        let l = load(&classic(&default_bpf(&TunnelPorts::default())), 64).unwrap();
        *skip.state() = State::Loaded(Box::new(l));
        skip.writing.store(true, Ordering::Relaxed);
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let run_now = |frame: &[u8]| match &*skip.state() {
            State::Loaded(l) => run(l, frame),
            _ => unreachable!(),
        };
        for v6 in [false, true] {
            let (a, b) = if v6 {
                (A6, B6)
            } else {
                (
                    std::net::Ipv4Addr::new(10, 0, 0, 1)
                        .to_ipv6_mapped()
                        .octets(),
                    std::net::Ipv4Addr::new(10, 0, 0, 2)
                        .to_ipv6_mapped()
                        .octets(),
                )
            };
            let (key, _) = crate::flow::FlowKey::new(
                crate::flow::Endpoint {
                    addr: a,
                    port: 40000,
                },
                crate::flow::Endpoint { addr: b, port: 443 },
            );
            // The SYN passes and records its time.
            assert_ne!(run_now(&tcp_frame(v6, true, 2, false)), 0);
            // Settled by a segment captured a second before: not dropped.
            skip.settle(
                (&key.lo.addr, key.lo.port),
                (&key.hi.addr, key.hi.port),
                unix_now - 1_000_000_000,
            );
            assert_ne!(
                run_now(&tcp_frame(v6, false, 0, false)),
                0,
                "v6 {v6}: settled before the SYN"
            );
            // Settled by a segment captured after it: dropped both ways.
            skip.settle(
                (&key.lo.addr, key.lo.port),
                (&key.hi.addr, key.hi.port),
                unix_now + 1_000_000_000,
            );
            assert_eq!(run_now(&tcp_frame(v6, false, 0, false)), 0, "v6 {v6}");
            assert_eq!(run_now(&tcp_frame(v6, true, 0, false)), 0, "v6 {v6}");
        }
        assert_eq!(skip.marked.load(Ordering::Relaxed), 4);
        assert_eq!(skip.skipped(), 4);
    }
}
