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

mod asm;
mod classic;
mod elf;
mod program;
#[cfg(test)]
mod tests;

use classic::translate;
use elf::elf;
use program::build;

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

/// The settled-flow map, as tlscensus writes it.
type SettledMap = BpfHashMap<MapData, SkipKey, u64>;

thread_local! {
    /// This thread's own handle on the settled-flow map of the kernel skip
    /// (by its id) it last marked a flow in.
    static MARKER: std::cell::RefCell<Option<(u64, Option<SettledMap>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Ids of kernel skips (a thread's handle names the one it belongs to).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The loaded program and the maps tlscensus writes and reads.
struct Loaded {
    ebpf: Ebpf,
    settled: SettledMap,
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
    /// Names this skip to the threads' own map handles.
    id: u64,
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
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
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
    /// Each thread writes through a handle of its own (a duplicate of the
    /// map's descriptor, made once), so workers do not queue on one lock
    /// around the bpf call; if no handle can be made, through the shared one.
    pub fn settle(&self, lo: (&[u8; 16], u16), hi: (&[u8; 16], u16), ts_ns: u64) {
        if !self.writing.load(Ordering::Relaxed) {
            return;
        }
        let key = skip_key(lo, hi);
        let at = ts_ns.saturating_add_signed(self.tai_offset_ns.load(Ordering::Relaxed));
        let own = MARKER.with(|m| {
            let mut m = m.borrow_mut();
            // Made once per thread; a thread that could not make one does
            // not try again.
            if m.as_ref().is_none_or(|(id, _)| *id != self.id) {
                *m = Some((self.id, self.duplicate()));
            }
            m.as_mut()
                .and_then(|(_, h)| h.as_mut())
                .map(|h| h.insert(key, at, 0))
        });
        let written = match own {
            Some(w) => w,
            None => {
                let mut state = self.state();
                let State::Loaded(l) = &mut *state else {
                    return;
                };
                l.settled.insert(key, at, 0)
            }
        };
        match written {
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

    /// A handle of this thread's own on the settled-flow map, if the
    /// program is loaded and the descriptor can be duplicated (before the
    /// program is loaded no flow is marked: `writing` is off).
    fn duplicate(&self) -> Option<SettledMap> {
        use aya::maps::{IterableMap, Map};
        use std::os::fd::AsFd;
        let state = self.state();
        let State::Loaded(l) = &*state else {
            return None;
        };
        let fd = l.settled.map().fd().as_fd().try_clone_to_owned().ok()?;
        let data = MapData::from_fd(fd).ok()?;
        BpfHashMap::try_from(Map::LruHashMap(data)).ok()
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
