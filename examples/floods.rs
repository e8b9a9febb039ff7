//! The flood harness' traffic (issue 12): writes one capture per flood, each
//! built to hit one bound of the sensor as hard as the bound allows.
//!
//! ```text
//! cargo run --release --example floods -- OUT_DIR [--scale F] [FLOOD...]
//! ```
//!
//! Floods (at `--scale 1`, the sizes that broke the sensor before issue 12):
//! - `versions`: 2,000 hosts x 771 ClientHello version values, one hello each
//!   (no TCP handshake: a hello needs none), TLS 1.0-1.1 range and beyond.
//! - `sources`: 5,000 spoofed sources' lone TLS 1.0 hellos (each reset, so
//!   reported at once), then 50 real hosts whose TLS 1.0 hellos a server
//!   answers (with an alert): those 50 must be labelled.
//! - `ooo`: 262,144 flows, each direction 32 one-byte out-of-order segments
//!   after a gap that never fills.
//! - `frag_big`: 4,096 lone last fragments at offset 65,520 (8 bytes each).
//! - `frag_lone`: 1,000,000 lone first fragments (distinct IDs).
//! - `syn`: 1,000,000 SYNs from distinct ports (the CPU baseline of `frag_lone`).
//! - `dns`: 32,768 junk DNS answers with a TTL of 2^31-1 s for target names,
//!   then a real answer and an SNI-less TLS 1.0 flow to its address (the
//!   flow must be matched: `tlscensus_target_flows_total{match="dns_address"} 1`).
//! - `preamble` (issue 14): 262,144 flows whose client sends 1 KiB of a
//!   CONNECT request whose headers never end, to a proxy that never answers.
//! - `opening` (issue 27): the same, with an opening no parser knows (1 KiB
//!   of a vendor's text protocol): held while TLS is searched for after it.
//! - `names` (issue 15): a DHCP server names a host (`realhost.corp.test`),
//!   then 1,000,000 spoofed mDNS announcements, each for its own address
//!   and 4 names of 250 bytes, then the named host's TLS 1.0 flow: its
//!   event must still carry its DHCP name (`--max-host-names` holds).
//! - `destinations` (issue 16): 1,000,000 unanswered TLS 1.0 hellos from
//!   65,536 sources, each to its own storage account and with its own
//!   cipher pair (so its own JA4), then a real host's answered TLS 1.0 flow
//!   to `realacct`: the destination table, the fingerprints per host and
//!   the raw-fingerprint budget (run with `--raw-fingerprints`) hold their
//!   bounds, the destination metric stays at 500 series per service and
//!   still names `realacct`, the most recent.
//! - `inventory` (issue 16): the host inventory at its worst: 100,000 hosts
//!   (`--max-hosts`' default), each sending 16 hellos (each reset at once)
//!   to target names of 253 bytes under `blob.core.windows.net`, each hello
//!   with its own cipher pair: every host holds the most server names (16)
//!   and fingerprints (8) a host can.
//! - `regulars`: 100,000 one-flow answered TLS 1.0 sources (a fleet, or a
//!   sender faking both directions), a regular host among them with 50
//!   flows, then a late host making a flow a second for 10 seconds: with
//!   the defaults (`--max-hosts` 100,000, `--max-legacy-sources` 3,000) the
//!   regular keeps its place and label, and the late host is inventoried
//!   and labelled from its second flow.
//! - `blocks`: 262,144 one-way connections (a SYN, then the client's data,
//!   nothing of the server) from 65,536 client /24s: the mirror's block
//!   store holds its bound (4,096 blocks) and counts the rest.
//!
//! The script `scripts/floods.sh` runs `tlscensus read` over each with
//! `/usr/bin/time -v` and prints peak RSS, time, series and bound counters.

#[path = "../tests/it/common/craft.rs"]
mod craft;

use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use craft::*;

struct Out {
    w: BufWriter<File>,
    ts: u64,
}

impl Out {
    fn create(dir: &Path, name: &str) -> Out {
        let path = dir.join(format!("{name}.pcap"));
        let f = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write_pcap_header(&mut w, 262_144);
        eprintln!("writing {}", path.display());
        Out {
            w,
            ts: 1_700_000_000_000_000_000,
        }
    }

    /// One frame, 1 µs after the previous one.
    fn frame(&mut self, data: Vec<u8>) {
        self.ts += 1_000;
        write_frame(
            &mut self.w,
            &Frame {
                ts_ns: self.ts,
                data,
            },
        );
    }

    fn frames(&mut self, frames: Vec<Frame>) {
        for f in frames {
            self.frame(f.data);
        }
    }
}

fn host(n: u32) -> Ipv4Addr {
    Ipv4Addr::from_bits(0x0a00_0000 | (n & 0x00ff_ffff))
}

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const SNI: &str = "acct.blob.core.windows.net";

fn scaled(n: u64, scale: f64) -> u64 {
    ((n as f64 * scale).round() as u64).max(1)
}

fn versions(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "versions");
    let hosts = scaled(2000, scale.sqrt()) as u32;
    let values = scaled(771, scale.sqrt()) as u32;
    let sni = sni_extension(SNI);
    for v in 0..values {
        // 0x0200..0x0502 in steps of one: SSL 2 framing aside, every value a
        // parser accepts, most of them below TLS 1.2.
        let version = 0x0200u16 + v as u16;
        let hello = client_hello(version, std::slice::from_ref(&sni));
        for h in 0..hosts {
            let port = 1024 + (v % 60_000) as u16;
            o.frame(tcp_frame(
                (host(h), port),
                (SERVER, 443),
                1,
                0,
                ACK | PSH,
                &hello,
            ));
        }
    }
}

fn sources(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "sources");
    let hello = client_hello(0x0301, &[sni_extension(SNI)]);
    for n in 0..scaled(5000, scale) as u32 {
        // A hello and the server's RST (no answer): reported at once.
        let c = (host(0x10_0000 + n), 40000);
        let len = hello.len() as u32;
        o.frame(tcp_frame(c, (SERVER, 443), 1, 0, ACK | PSH, &hello));
        o.frame(tcp_frame((SERVER, 443), c, 1, 1 + len, RST | ACK, &[]));
    }
    for n in 0..50u32 {
        let conn = Conn::new(host(0x20_0000 + n), 50000, SERVER);
        let data = [(true, hello.clone()), (false, alert(2, 70))];
        o.frames(conn.frames(0, &data, true));
    }
}

fn ooo(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "ooo");
    for n in 0..scaled(262_144, scale) as u32 {
        let (c, s) = (
            (host(n / 60_000), 1024 + (n % 60_000) as u16),
            (SERVER, 443),
        );
        o.frame(tcp_frame(c, s, 1000, 0, SYN, &[]));
        o.frame(tcp_frame(s, c, 5000, 1001, SYN | ACK, &[]));
        for i in 0..32u32 {
            // Offsets 1, 3, 5, ...: byte 0 never comes.
            o.frame(tcp_frame(c, s, 1002 + 2 * i, 5001, ACK, b"x"));
            o.frame(tcp_frame(s, c, 5002 + 2 * i, 1001, ACK, b"y"));
        }
    }
}

fn preamble(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "preamble");
    let mut request = format!("CONNECT {SNI}:443 HTTP/1.1\r\n").into_bytes();
    while request.len() < 1024 {
        request.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    unanswered_openings(&mut o, scale, 3128, &request);
}

/// 262,144 flows whose client sends 1 KiB of an opening no parser knows to
/// a server that never answers: each is searched for TLS after it and held
/// until its window or the flow's end.
fn opening(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "opening");
    let mut hello = b"VENDOR-PROTO/2.1 HELLO\n".to_vec();
    while hello.len() < 1024 {
        hello.extend_from_slice(b"option = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
    }
    unanswered_openings(&mut o, scale, 7000, &hello);
}

/// 262,144 connections to `port` of the server, each answered by its
/// SYN-ACK and then sending `opening`, which the server never answers.
fn unanswered_openings(o: &mut Out, scale: f64, port: u16, opening: &[u8]) {
    for n in 0..scaled(262_144, scale) as u32 {
        let (c, s) = (
            (host(n / 60_000), 1024 + (n % 60_000) as u16),
            (SERVER, port),
        );
        o.frame(tcp_frame(c, s, 1000, 0, SYN, &[]));
        o.frame(tcp_frame(s, c, 5000, 1001, SYN | ACK, &[]));
        o.frame(tcp_frame(c, s, 1001, 5001, ACK, opening));
    }
}

/// 262,144 connections from 65,536 client /24s (four each), whose client
/// goes on after its SYN with no segment of the server ever seen (one-way
/// flows): every block a candidate for the one-sided verdict.
fn blocks(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "blocks");
    for n in 0..scaled(262_144, scale) as u32 {
        let c = (host((n << 8) | 1), 40_000 + (n >> 16) as u16);
        o.frame(tcp_frame(c, (SERVER, 443), 1000, 0, SYN, &[]));
        o.frame(tcp_frame(
            c,
            (SERVER, 443),
            1001,
            5001,
            ACK,
            b"\x16\x03\x01",
        ));
    }
}

fn frag_big(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "frag_big");
    for n in 0..scaled(4096, scale) as u32 {
        o.frame(ipv4_fragment_frame(
            host(n % 250 + 1),
            SERVER,
            6,
            n as u16,
            65520,
            false,
            &[0; 8],
        ));
    }
}

fn frag_lone(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "frag_lone");
    for n in 0..scaled(1_000_000, scale) as u32 {
        o.frame(ipv4_fragment_frame(
            host(n >> 16),
            SERVER,
            6,
            n as u16,
            0,
            true,
            &[0; 24],
        ));
    }
}

fn syn(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "syn");
    for n in 0..scaled(1_000_000, scale) as u32 {
        let c = (host(n >> 16), 1024 + (n & 0xffff) as u16 % 60_000);
        o.frame(tcp_frame(c, (SERVER, 443), n, 0, SYN, &[]));
    }
}

fn dns(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "dns");
    let resolver = (Ipv4Addr::new(192, 0, 2, 53), 53);
    for n in 0..scaled(32_768, scale) as u32 {
        let name = format!("junk{n}.blob.core.windows.net");
        let answer = dns_a_response(&name, host(0x30_0000 + n), i32::MAX as u32);
        o.frame(udp_frame(resolver, (host(1), 5353), &answer));
    }
    let real = Ipv4Addr::new(192, 0, 2, 77);
    let answer = dns_a_response("realacct.blob.core.windows.net", real, 300);
    o.frame(udp_frame(resolver, (host(2), 5353), &answer));
    let conn = Conn {
        client: (host(2), 51000),
        server: (real, 443),
        client_isn: 7,
        server_isn: 9,
    };
    let data = [
        (true, client_hello(0x0301, &[])),
        (false, server_hello(0x0301, None)),
    ];
    o.frames(conn.frames(0, &data, true));
}

fn names(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "names");
    let real = Ipv4Addr::new(192, 0, 2, 88);
    // A DHCP ACK (BOOTREPLY): yiaddr, chaddr, type ACK, a day's lease, host name.
    let mut ack = vec![0u8; 240];
    ack[0] = 2;
    ack[1] = 1;
    ack[2] = 6;
    ack[4..8].copy_from_slice(&0x0bad_cafe_u32.to_be_bytes());
    ack[16..20].copy_from_slice(&real.octets());
    ack[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 0x88]);
    ack[236..240].copy_from_slice(&[99, 130, 83, 99]);
    ack.extend_from_slice(&[53, 1, 5, 51, 4, 0, 1, 0x51, 0x80]);
    let host_name = b"realhost.corp.test";
    ack.push(12);
    ack.push(host_name.len() as u8);
    ack.extend_from_slice(host_name);
    ack.push(255);
    let server = (Ipv4Addr::new(192, 0, 2, 1), 67);
    o.frame(udp_frame(server, (real, 68), &ack));
    let group = (Ipv4Addr::new(224, 0, 0, 251), 5353);
    for n in 0..scaled(1_000_000, scale) as u32 {
        let claimant = host(0x40_0000 + n);
        // Four names per address, each 250 bytes (three 63-byte labels and one more).
        let name = |k: u32| {
            let tag = format!("{n:08x}{k}");
            let pad = "x".repeat(63 - tag.len());
            format!(
                "{tag}{pad}.{}.{}.{}.local",
                "y".repeat(63),
                "z".repeat(63),
                "w".repeat(52)
            )
        };
        for k in 0..4 {
            let answer = dns_a_response(&name(k), claimant, 120);
            o.frame(udp_frame((claimant, 5353), group, &answer));
        }
    }
    let conn = Conn::new(real, 51000, SERVER);
    let data = [
        (true, client_hello(0x0301, &[sni_extension(SNI)])),
        (false, server_hello(0x0301, None)),
    ];
    o.frames(conn.frames(0, &data, true));
}

/// A TLS 1.0 ClientHello with SNI `name` offering the two cipher suites of
/// `n` (a distinct JA4 per `n` below 2^32, GREASE values aside).
fn hello_with_ciphers(name: &str, n: u32) -> Vec<u8> {
    let mut b = 0x0301u16.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x5a; 32]);
    b.push(0);
    b.extend_from_slice(&[0, 4]);
    b.extend_from_slice(&n.to_be_bytes());
    b.extend_from_slice(&[1, 0]);
    let ext = sni_extension(name);
    b.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    b.extend(ext);
    record(22, 0x0301, &handshake(1, &b))
}

fn destinations(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "destinations");
    for n in 0..scaled(1_000_000, scale) as u32 {
        let hello = hello_with_ciphers(&format!("a{n:08}.blob.core.windows.net"), n + 0x0001_0001);
        let client = (host(0x50_0000 + (n & 0xffff)), 1024 + (n >> 16) as u16);
        o.frame(tcp_frame(client, (SERVER, 443), 1, 0, ACK | PSH, &hello));
    }
    let conn = Conn::new(Ipv4Addr::new(192, 0, 2, 77), 52000, SERVER);
    let data = [
        (
            true,
            client_hello(0x0301, &[sni_extension("realacct.blob.core.windows.net")]),
        ),
        (false, server_hello(0x0301, None)),
    ];
    o.frames(conn.frames(0, &data, true));
}

fn inventory(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "inventory");
    for h in 0..scaled(100_000, scale) as u32 {
        let client = host(0x60_0000 + h);
        for k in 0..16u32 {
            // Four labels: 63 + 63 + 63 + 39 bytes, then the suffix: 253 in all.
            let tag = format!("h{h:07}k{k:02}");
            let name = format!(
                "{tag}{}.{}.{}.{}.blob.core.windows.net",
                "a".repeat(63 - tag.len()),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(39)
            );
            let hello = hello_with_ciphers(&name, 0x0001_0001 + k);
            let c = (client, 20000 + k as u16);
            let len = hello.len() as u32;
            o.frame(tcp_frame(c, (SERVER, 443), 1, 0, ACK | PSH, &hello));
            o.frame(tcp_frame((SERVER, 443), c, 1, 1 + len, RST | ACK, &[]));
        }
    }
}

fn regulars(dir: &Path, scale: f64) {
    let mut o = Out::create(dir, "regulars");
    let hello = client_hello(0x0301, &[sni_extension(SNI)]);
    let data = [(true, hello), (false, server_hello(0x0301, None))];
    let n = scaled(100_000, scale) as u32;
    let every = (n / 50).max(1);
    for h in 0..n {
        if h % every == 0 {
            let port = 30_000 + (h / every) as u16;
            o.frames(Conn::new(Ipv4Addr::new(192, 0, 2, 50), port, SERVER).frames(0, &data, true));
        }
        o.frames(Conn::new(host(0x70_0000 + h), 40_000, SERVER).frames(0, &data, true));
    }
    for k in 0..10u16 {
        // A second apart (the writer spaces frames 1 µs apart).
        o.ts += 1_000_000_000;
        o.frames(
            Conn::new(Ipv4Addr::new(192, 0, 2, 60), 50_000 + k, SERVER).frames(0, &data, true),
        );
    }
}

/// Writes one flood into a directory at a scale.
type Writer = fn(&Path, f64);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut scale = 1.0;
    if let Some(i) = args.iter().position(|a| a == "--scale") {
        scale = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("--scale needs a number"));
        args.drain(i..i + 2);
    }
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: floods OUT_DIR [--scale F] [FLOOD...]");
        std::process::exit(2);
    };
    std::fs::create_dir_all(&dir).expect("create OUT_DIR");
    let all: [(&str, Writer); 14] = [
        ("versions", versions),
        ("sources", sources),
        ("ooo", ooo),
        ("frag_big", frag_big),
        ("frag_lone", frag_lone),
        ("syn", syn),
        ("dns", dns),
        ("preamble", preamble),
        ("opening", opening),
        ("names", names),
        ("destinations", destinations),
        ("inventory", inventory),
        ("blocks", blocks),
        ("regulars", regulars),
    ];
    let wanted = &args[1..];
    for (name, f) in all {
        if wanted.is_empty() || wanted.iter().any(|w| w == name) {
            f(&dir, scale);
        }
    }
}
