//! Crafted traffic for tests and the flood harness: TLS hellos and alerts
//! byte by byte (`tlscensus::tls::craft`), TCP flows around them (etherparse's `PacketBuilder`), and a
//! classic pcap writer. Every field is set on purpose, so a test can break
//! exactly one rule.
#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

/// The TLS byte builders are the crate's own (one builder for unit tests,
/// these tests and the examples).
pub use tlscensus::tls::craft::*;

/// One frame of a capture.
pub struct Frame {
    pub ts_ns: u64,
    pub data: Vec<u8>,
}

/// Classic pcap (µs), Ethernet.
pub fn write_pcap(path: &std::path::Path, frames: &[Frame]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create pcap"));
    write_pcap_to(&mut f, frames);
    f.flush().expect("write pcap");
}

pub fn write_pcap_header(w: &mut impl Write, snaplen: u32) {
    let mut h = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    h.extend_from_slice(&snaplen.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    w.write_all(&h).expect("write pcap header");
}

pub fn write_frame(w: &mut impl Write, f: &Frame) {
    let secs = (f.ts_ns / 1_000_000_000) as u32;
    let usecs = ((f.ts_ns % 1_000_000_000) / 1000) as u32;
    let mut h = Vec::with_capacity(16);
    h.extend_from_slice(&secs.to_le_bytes());
    h.extend_from_slice(&usecs.to_le_bytes());
    h.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
    h.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
    w.write_all(&h).expect("write frame header");
    w.write_all(&f.data).expect("write frame");
}

pub fn write_pcap_to(w: &mut impl Write, frames: &[Frame]) {
    write_pcap_header(w, 262_144);
    for f in frames {
        write_frame(w, f);
    }
}

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;

/// An Ethernet/IPv4/TCP frame.
pub fn tcp_frame(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, seq, 65535);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(ack);
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    if flags & PSH != 0 {
        b = b.psh();
    }
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build frame");
    out
}

/// A TCP connection's frames: handshake, then the data given as (from the
/// client?, bytes) in order, then FINs from both sides.
pub struct Conn {
    pub client: (Ipv4Addr, u16),
    pub server: (Ipv4Addr, u16),
    pub client_isn: u32,
    pub server_isn: u32,
}

impl Conn {
    pub fn new(client: Ipv4Addr, port: u16, server: Ipv4Addr) -> Conn {
        Conn {
            client: (client, port),
            server: (server, 443),
            client_isn: 1000 + u32::from(port) * 7,
            server_isn: 900_000 + u32::from(port) * 13,
        }
    }

    /// Frames starting at `ts_ns`, 1 ms apart.
    pub fn frames(&self, ts_ns: u64, data: &[(bool, Vec<u8>)], close: bool) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut t = ts_ns;
        let mut push = |data: Vec<u8>| {
            out.push(Frame { ts_ns: t, data });
            t += 1_000_000;
        };
        let (c, s) = (self.client, self.server);
        let (mut cseq, mut sseq) = (self.client_isn, self.server_isn);
        push(tcp_frame(c, s, cseq, 0, SYN, &[]));
        push(tcp_frame(s, c, sseq, cseq + 1, SYN | ACK, &[]));
        cseq += 1;
        sseq += 1;
        push(tcp_frame(c, s, cseq, sseq, ACK, &[]));
        for (from_client, bytes) in data {
            if *from_client {
                push(tcp_frame(c, s, cseq, sseq, ACK | PSH, bytes));
                cseq = cseq.wrapping_add(bytes.len() as u32);
            } else {
                push(tcp_frame(s, c, sseq, cseq, ACK | PSH, bytes));
                sseq = sseq.wrapping_add(bytes.len() as u32);
            }
        }
        if close {
            push(tcp_frame(c, s, cseq, sseq, FIN | ACK, &[]));
            push(tcp_frame(s, c, sseq, cseq + 1, FIN | ACK, &[]));
        }
        out
    }
}

/// An Ethernet/IPv4 frame with a hand-set fragment field (`offset` in bytes,
/// a multiple of 8) around `payload` (the bytes of that fragment).
pub fn ipv4_fragment_frame(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    offset: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (20 + payload.len()) as u16;
    let frag = (offset / 8) | if more { 0x2000 } else { 0 };
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let ck = !(sum as u16);
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend(h);
    f.extend_from_slice(payload);
    f
}

/// An Ethernet/IPv4/UDP frame.
pub fn udp_frame(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("build frame");
    out
}

/// A DNS response (id 1, NOERROR) for `name` with one A record.
pub fn dns_a_response(name: &str, addr: Ipv4Addr, ttl: u32) -> Vec<u8> {
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&[0, 1, 0, 1]); // A, IN
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // pointer to the question name, A, IN
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&[0, 4]);
    m.extend_from_slice(&addr.octets());
    m
}

/// A pcapng block of type `t` (little-endian, the body padded to 4 bytes).
fn block(t: u32, mut body: Vec<u8>) -> Vec<u8> {
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = (12 + body.len()) as u32;
    let mut b = t.to_le_bytes().to_vec();
    b.extend_from_slice(&len.to_le_bytes());
    b.extend(body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// A little-endian pcapng section header of unknown length.
fn pcapng_section() -> Vec<u8> {
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(0x0A0D_0D0A, shb)
}

/// A pcapng file: one section, one Ethernet interface per snapshot length in
/// `snaplens`, the frames spread over them in turn (each cut to its
/// interface's snapshot length when that is not 0).
pub fn write_pcapng(path: &std::path::Path, snaplens: &[u32], frames: &[Frame]) {
    let mut out = pcapng_section();
    for snap in snaplens {
        let mut idb = vec![1, 0, 0, 0];
        idb.extend_from_slice(&snap.to_le_bytes());
        out.extend(block(1, idb));
    }
    for (i, f) in frames.iter().enumerate() {
        let ifc = i % snaplens.len().max(1);
        let snap = snaplens.get(ifc).copied().unwrap_or(0) as usize;
        let data = if snap > 0 && f.data.len() > snap {
            &f.data[..snap]
        } else {
            &f.data[..]
        };
        let us = f.ts_ns / 1000;
        let mut epb = (ifc as u32).to_le_bytes().to_vec();
        epb.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(us as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        out.extend(block(6, epb));
    }
    std::fs::write(path, out).expect("write pcapng");
}

/// The frames of a classic pcap file (either byte order, µs or ns).
pub fn read_pcap(path: &std::path::Path) -> Vec<Frame> {
    let b = std::fs::read(path).expect("read pcap");
    let magic = u32::from_le_bytes(b[..4].try_into().unwrap());
    let (le, ns) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        m => panic!("{}: not a classic pcap ({m:#x})", path.display()),
    };
    let u32_at = |at: usize| {
        let w: [u8; 4] = b[at..at + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let (s, frac, cap) = (u32_at(at), u32_at(at + 4), u32_at(at + 8) as usize);
        let ts_ns = u64::from(s) * 1_000_000_000 + u64::from(frac) * if ns { 1 } else { 1000 };
        out.push(Frame {
            ts_ns,
            data: b[at + 16..at + 16 + cap].to_vec(),
        });
        at += 16 + cap;
    }
    out
}

/// A pcapng file of Simple Packet Blocks only (one Ethernet interface): the
/// frames without capture times.
pub fn write_pcapng_simple(path: &std::path::Path, frames: &[Frame]) {
    let mut out = pcapng_section();
    out.extend(block(1, vec![1, 0, 0, 0, 0, 0, 0, 0]));
    for f in frames {
        let mut spb = (f.data.len() as u32).to_le_bytes().to_vec();
        spb.extend_from_slice(&f.data);
        out.extend(block(3, spb));
    }
    std::fs::write(path, out).expect("write pcapng");
}
