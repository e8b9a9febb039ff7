//! The skip program, tested on crafted frames in an interpreter, and
//! loaded in the kernel where it may be.

use super::classic::SKF_AD_OFF;
use super::*;
use aya::programs::{TestRun, TestRunOptions};
use pcap::Linktype;

use crate::capture::live::default_bpf;
use crate::decode::TunnelPorts;

/// Loading eBPF needs CAP_BPF: without root these tests say so on the
/// terminal ("SKIPPED", past the harness' output capture) and return,
/// except in CI (`CI` set), where they fail.
fn privileged() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run these as root"
        );
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: loading eBPF needs root");
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
