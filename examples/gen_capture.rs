//! Benchmark capture generator: writes a deterministic pcap of a chosen size and
//! mix, built from the real handshakes in `captures/`.
//!
//! ```text
//! cargo run --release --example gen_capture -- OUT.pcap [--bytes N] [--handshake-share F]
//!     [--seed S] [--hosts N] [--concurrent N]
//! ```
//!
//! Each synthetic flow replays the TCP payloads of one real handshake (OpenSSL,
//! GnuTLS, Python, curl at TLS 1.0–1.3, rejections, split ClientHellos, HRR)
//! with fresh addresses, ports and sequence numbers, then carries bulk
//! encrypted data (TLS application_data records, full-size segments, mostly
//! server to client, with the client's ACKs), then closes with FIN. Many flows
//! are interleaved; client hosts are drawn from `--hosts` addresses.
//! `--handshake-share` is the share of packets that belong to handshakes (the
//! three-way handshake and every segment up to and including the server's
//! answer); the rest is bulk data and its ACKs. Same arguments, same bytes.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tlscensus::capture::PacketSource;
use tlscensus::capture::offline::OfflineSource;
use tlscensus::decode::{Decoded, decode_frame};

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One real handshake: the payload-carrying segments in order, by direction
/// (false: client to server).
struct Template {
    name: String,
    segments: Vec<(bool, Vec<u8>)>,
}

fn load_templates(dir: &Path) -> Vec<Template> {
    let names = [
        "openssl-tls10-rejected.pcap",
        "openssl-tls11-rejected.pcap",
        "openssl-tls10.pcap",
        "openssl-tls11.pcap",
        "openssl-tls12.pcap",
        "openssl-tls13.pcap",
        "openssl-tls13-hrr.pcap",
        "openssl-downgrade-tls11.pcap",
        "openssl-tls12-split-hello.pcap",
        "openssl-tls10-split-rejected.pcap",
        "gnutls-tls11.pcap",
        "gnutls-tls12.pcap",
        "gnutls-tls13.pcap",
        "python-tls12.pcap",
        "python-tls10-rejected.pcap",
        "curl-tls10-rejected.pcap",
        "curl-tls13.pcap",
        // Clients without SNI: tlscensus reads the server's certificate.
        "cert-openssl-tls10-nosni.pcap",
        "cert-java-tls10-nosni.pcap",
        "cert-gnutls-tls11-nosni.pcap",
        "cert-python-tls12-nosni.pcap",
    ];
    let mut out = Vec::new();
    for n in names {
        let mut src = match OfflineSource::open(&dir.join(n)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("gen_capture: {n}: {e}");
                std::process::exit(2);
            }
        };
        let mut segments = Vec::new();
        let mut client_port = None;
        while let Ok(Some(f)) = src.next_frame() {
            if let Ok(Decoded::Tcp { seg, .. }) = decode_frame(f.linktype, f.data) {
                // The client is the side that sent the first SYN.
                let cp = *client_port.get_or_insert(if seg.flags.syn() && seg.flags.ack() {
                    seg.dst_port
                } else {
                    seg.src_port
                });
                if seg.src_port != cp && seg.dst_port != cp {
                    break; // a second connection: keep the first only
                }
                if !seg.payload.is_empty() {
                    segments.push((seg.src_port != cp, seg.payload.to_vec()));
                }
            }
        }
        // Keep the handshake: up to and including the server's first flight.
        let first_server = segments
            .iter()
            .position(|(s, _)| *s)
            .unwrap_or(segments.len());
        let mut end = first_server;
        while end < segments.len() && segments[end].0 {
            end += 1;
        }
        segments.truncate(end.max(1));
        out.push(Template {
            name: n.to_string(),
            segments,
        });
    }
    out
}

#[derive(Clone, Copy)]
enum Step {
    Syn,
    SynAck,
    Ack,
    Handshake(usize),
    Bulk { from_server: bool, len: usize },
    BulkAck,
    FinClient,
    FinServer,
}

struct Flow {
    client: [u8; 4],
    server: [u8; 4],
    cport: u16,
    sport: u16,
    cseq: u32,
    sseq: u32,
    template: usize,
    steps: VecDeque<Step>,
}

impl Flow {
    /// Writes the next segment from one side (with `w.payload`) and advances
    /// that side's sequence number by `advance`.
    fn send(
        &mut self,
        w: &mut Writer,
        ts: u64,
        from_server: bool,
        flags: u8,
        handshake: bool,
        advance: u32,
    ) -> std::io::Result<()> {
        let (c, s) = ((self.client, self.cport), (self.server, self.sport));
        if from_server {
            w.packet(
                ts, s.0, c.0, s.1, c.1, self.sseq, self.cseq, flags, handshake,
            )?;
            self.sseq = self.sseq.wrapping_add(advance);
        } else {
            w.packet(
                ts, c.0, s.0, c.1, s.1, self.cseq, self.sseq, flags, handshake,
            )?;
            self.cseq = self.cseq.wrapping_add(advance);
        }
        Ok(())
    }
}

struct Writer {
    out: BufWriter<File>,
    written: u64,
    packets: u64,
    handshake_packets: u64,
    buf: Vec<u8>,
    payload: Vec<u8>,
}

impl Writer {
    fn create(path: &Path) -> std::io::Result<Writer> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        // pcap global header: microseconds, Ethernet, snaplen 262144.
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&1u32.to_le_bytes())?;
        Ok(Writer {
            out,
            written: 24,
            packets: 0,
            handshake_packets: 0,
            buf: Vec::with_capacity(2048),
            payload: Vec::with_capacity(2048),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn packet(
        &mut self,
        ts_us: u64,
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        handshake: bool,
    ) -> std::io::Result<()> {
        let mac = |ip: [u8; 4]| [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]];
        let b = etherparse::PacketBuilder::ethernet2(mac(src), mac(dst))
            .ipv4(src, dst, 64)
            .tcp(sport, dport, seq, 64240);
        let b = if flags & 0x02 != 0 { b.syn() } else { b };
        let b = if flags & 0x10 != 0 { b.ack(ack) } else { b };
        let b = if flags & 0x01 != 0 { b.fin() } else { b };
        let b = if flags & 0x08 != 0 { b.psh() } else { b };
        self.buf.clear();
        b.write(&mut self.buf, &self.payload)
            .map_err(std::io::Error::other)?;
        let len = self.buf.len() as u32;
        self.out
            .write_all(&((ts_us / 1_000_000) as u32).to_le_bytes())?;
        self.out
            .write_all(&((ts_us % 1_000_000) as u32).to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&self.buf)?;
        self.written += 16 + u64::from(len);
        self.packets += 1;
        if handshake {
            self.handshake_packets += 1;
        }
        Ok(())
    }
}

struct Args {
    out: PathBuf,
    bytes: u64,
    share: f64,
    seed: u64,
    hosts: u32,
    concurrent: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::new(),
        bytes: 100 << 20,
        share: 0.07,
        seed: 1,
        hosts: 2000,
        concurrent: 64,
    };
    let mut it = std::env::args().skip(1);
    let mut out = None;
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--bytes" => {
                a.bytes = val("--bytes")?
                    .parse()
                    .map_err(|e| format!("--bytes: {e}"))?
            }
            "--handshake-share" => {
                a.share = val("--handshake-share")?
                    .parse()
                    .map_err(|e| format!("--handshake-share: {e}"))?
            }
            "--seed" => a.seed = val("--seed")?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--hosts" => {
                a.hosts = val("--hosts")?
                    .parse()
                    .map_err(|e| format!("--hosts: {e}"))?
            }
            "--concurrent" => {
                a.concurrent = val("--concurrent")?
                    .parse()
                    .map_err(|e| format!("--concurrent: {e}"))?
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => out = Some(PathBuf::from(s)),
        }
    }
    a.out = out.ok_or("usage: gen_capture OUT.pcap [--bytes N] [--handshake-share F] [--seed S] [--hosts N] [--concurrent N]")?;
    if !(0.01..=1.0).contains(&a.share) {
        return Err("--handshake-share must be between 0.01 and 1".into());
    }
    if a.hosts == 0 || a.hosts > 1 << 20 || a.concurrent == 0 {
        return Err("--hosts must be 1..=1048576 and --concurrent at least 1".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gen_capture: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("gen_capture: {}: {e}", args.out.display());
        std::process::exit(2);
    }
}

fn new_flow(rng: &mut Rng, a: &Args, templates: &[Template], n: u64) -> Flow {
    let t = rng.below(templates.len() as u64) as usize;
    let h = rng.below(u64::from(a.hosts)) as u32;
    let client = [10, (h >> 16) as u8, (h >> 8) as u8, h as u8];
    let server = [20, 60, (rng.below(4)) as u8, (1 + rng.below(200)) as u8];
    let hs = templates[t].segments.len() + 3; // + SYN, SYN-ACK, ACK
    // Bulk packets (data + ACKs) so that handshake packets make up `share`.
    let bulk_total = ((hs as f64) * (1.0 - a.share) / a.share).round() as usize;
    let mut steps: VecDeque<Step> = [Step::Syn, Step::SynAck, Step::Ack].into_iter().collect();
    steps.extend((0..templates[t].segments.len()).map(Step::Handshake));
    let mut left = bulk_total.saturating_sub(2); // two FINs close the flow
    let mut since_ack = 0;
    while left > 0 {
        if since_ack == 2 {
            steps.push_back(Step::BulkAck);
            since_ack = 0;
        } else {
            let from_server = rng.below(10) < 8;
            let len = if rng.below(8) == 0 {
                200 + rng.below(1000) as usize
            } else {
                1448
            };
            steps.push_back(Step::Bulk { from_server, len });
            since_ack += 1;
        }
        left -= 1;
    }
    steps.push_back(Step::FinClient);
    steps.push_back(Step::FinServer);
    Flow {
        client,
        server,
        cport: 1024 + (n % 60_000) as u16 + (rng.below(4) as u16),
        sport: 443,
        cseq: rng.next() as u32,
        sseq: rng.next() as u32,
        template: t,
        steps,
    }
}

fn run(a: &Args) -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let templates = load_templates(&dir);
    let mut rng = Rng(a.seed);
    let mut w = Writer::create(&a.out)?;
    let mut ts: u64 = 1_798_761_600_000_000; // 2027-01-01T00:00:00Z in µs
    let mut active: Vec<Flow> = Vec::with_capacity(a.concurrent);
    let mut started = 0u64;
    let mut finished = 0u64;
    loop {
        let stop = w.written >= a.bytes;
        while !stop && active.len() < a.concurrent {
            active.push(new_flow(&mut rng, a, &templates, started));
            started += 1;
        }
        if active.is_empty() {
            break;
        }
        let i = rng.below(active.len() as u64) as usize;
        ts += 1 + rng.below(40);
        let f = &mut active[i];
        let Some(step) = f.steps.pop_front() else {
            active.swap_remove(i);
            finished += 1;
            continue;
        };
        w.payload.clear();
        match step {
            Step::Syn => f.send(&mut w, ts, false, 0x02, true, 1)?,
            Step::SynAck => f.send(&mut w, ts, true, 0x12, true, 1)?,
            Step::Ack => f.send(&mut w, ts, false, 0x10, true, 0)?,
            Step::Handshake(k) => {
                let (from_server, bytes) = &templates[f.template].segments[k];
                w.payload.extend_from_slice(bytes);
                f.send(&mut w, ts, *from_server, 0x18, true, bytes.len() as u32)?;
            }
            Step::Bulk { from_server, len } => {
                // One TLS application_data record filling the segment.
                let body = len - 5;
                w.payload.extend_from_slice(&[0x17, 0x03, 0x03]);
                w.payload.extend_from_slice(&(body as u16).to_be_bytes());
                for _ in 0..body / 8 {
                    w.payload.extend_from_slice(&rng.next().to_le_bytes());
                }
                w.payload.resize(len, 0xa5);
                f.send(&mut w, ts, from_server, 0x18, false, len as u32)?;
            }
            Step::BulkAck => f.send(&mut w, ts, false, 0x10, false, 0)?,
            Step::FinClient => f.send(&mut w, ts, false, 0x11, false, 1)?,
            Step::FinServer => f.send(&mut w, ts, true, 0x11, false, 1)?,
        }
    }
    w.out.flush()?;
    let names: Vec<&str> = templates.iter().map(|t| t.name.as_str()).collect();
    eprintln!(
        "gen_capture: {}: {} bytes, {} packets, {} flows ({} finished), {:.1}% handshake packets; templates: {}",
        a.out.display(),
        w.written,
        w.packets,
        started,
        finished,
        100.0 * w.handshake_packets as f64 / w.packets.max(1) as f64,
        names.join(" ")
    );
    Ok(())
}
