//! Criterion micro-benchmarks of the per-packet stages, over frames of the
//! shipped captures held in memory: decode, TLS extraction (hellos with
//! their fingerprints, and the server certificate), the whole inline path
//! (decode → fragments → flow table → extraction), and an event's line.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tlscensus::capture::{Frame, PacketSource, offline::OfflineSource};
use tlscensus::decode::tunnel::TunnelPorts;
use tlscensus::decode::{Decoded, decode_frame, decode_frame_with};
use tlscensus::events::{FlowEvent, Layout};
use tlscensus::flow::{Direction, Endpoint, FlowKey, SegmentIn};
use tlscensus::policy::PolicySet;
use tlscensus::run::InlineCensus;
use tlscensus::targets::Match;
use tlscensus::tls::HandshakeSummary;
use tlscensus::tls::certificate::{CertificateCache, parse_server_certificate};
use tlscensus::tls::extract::{Opening, OpeningReader, parse_opening};
use tlscensus::tls::fingerprint::{DETAIL_BUDGET, Fingerprinter};
use tlscensus::tls::session::tls_table;

struct Owned {
    ts: u64,
    linktype: i32,
    data: Vec<u8>,
}

fn load(names: &[&str]) -> Vec<Owned> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut frames = Vec::new();
    for n in names {
        let mut src = OfflineSource::open(&dir.join(n)).expect("capture");
        while let Ok(Some(f)) = src.next_frame() {
            frames.push(Owned {
                ts: f.ts_ns,
                linktype: f.linktype,
                data: f.data.to_vec(),
            });
        }
    }
    frames
}

fn benches(c: &mut Criterion) {
    let frames = load(&[
        "demo.pcapng",
        "openssl-tls12-split-hello.pcap",
        "link-vlan.pcap",
    ]);
    let mut g = c.benchmark_group("per_packet");
    g.throughput(Throughput::Elements(frames.len() as u64));
    // The ports set up once, as the capture thread holds them.
    let ports = TunnelPorts::default();
    g.bench_function("decode", |b| {
        b.iter(|| {
            for f in &frames {
                let _ = black_box(decode_frame_with(f.linktype, &f.data, &ports));
            }
        })
    });
    let cfg = tlscensus::config::defaults();
    g.bench_function("inline_census", |b| {
        b.iter(|| {
            let mut census = InlineCensus::new(&cfg);
            for f in &frames {
                census.push(&Frame {
                    ts_ns: f.ts,
                    linktype: f.linktype,
                    data: &f.data,
                    wire_len: f.data.len() as u32,
                });
            }
            census.finish();
            black_box(census.out.len())
        })
    });
    // The flow table alone: the TCP segments of those frames, decoded once
    // up front, ingested by a fresh table (reassembly, TLS extraction, settling).
    // (ts, key, dispatch hash as the capture thread computes it, dir, seq, flags, payload)
    type Seg = (
        u64,
        FlowKey,
        u64,
        Direction,
        (u32, u32),
        tlscensus::decode::l4::TcpFlags,
        Vec<u8>,
    );
    let segs: Vec<Seg> = frames
        .iter()
        .filter_map(|f| match decode_frame(f.linktype, &f.data) {
            Ok(Decoded::Tcp { src, dst, seg }) => {
                let (key, dir) = FlowKey::new(
                    Endpoint::new(src, seg.src_port),
                    Endpoint::new(dst, seg.dst_port),
                );
                let h = key.dispatch_hash();
                Some((
                    f.ts,
                    key,
                    h,
                    dir,
                    (seg.seq, seg.ack),
                    seg.flags,
                    seg.payload.to_vec(),
                ))
            }
            _ => None,
        })
        .collect();
    g.throughput(Throughput::Elements(segs.len() as u64));
    g.bench_function("flow_table", |b| {
        b.iter(|| {
            let mut table = tls_table(cfg.table);
            let mut out = Vec::new();
            for (ts, key, hash, dir, (seq, ack), flags, payload) in &segs {
                table.ingest(
                    SegmentIn {
                        dispatch_hash: *hash,
                        missing: 0,
                        ts: *ts,
                        key: *key,
                        dir: *dir,
                        seq: *seq,
                        ack: *ack,
                        flags: *flags,
                        payload,
                    },
                    &mut out,
                );
            }
            table.drain(&mut out);
            black_box(out.len())
        })
    });
    g.finish();

    // A real TLS 1.3 ClientHello (curl) and a TLS 1.2 server flight (OpenSSL).
    let hello = tcp_payloads("curl-tls13.pcap", 0);
    let server = tcp_payloads("openssl-tls12.pcap", 1);
    let mut g = c.benchmark_group("tls_extract");
    g.throughput(Throughput::Elements(1));
    let mut scratch = Vec::new();
    g.bench_function("client_hello", |b| {
        b.iter(|| black_box(parse_opening(&hello, &mut scratch, 16384)))
    });
    // As a flow table reads hellos: its fingerprinter (and cache) persists.
    let mut fingerprints = Fingerprinter::ja4_only();
    g.bench_function("client_hello_warm", |b| {
        b.iter(|| {
            black_box(OpeningReader::default().read(
                &hello,
                &mut scratch,
                16384,
                Some(&mut fingerprints),
            ))
        })
    });
    // With events on, the fingerprinter computes JA3 too (cached likewise).
    let mut with_ja3 = Fingerprinter::with_ja3();
    g.bench_function("client_hello_warm_ja3", |b| {
        b.iter(|| {
            black_box(OpeningReader::default().read(
                &hello,
                &mut scratch,
                16384,
                Some(&mut with_ja3),
            ))
        })
    });
    // Judged by every preset (six server policies) in the same walk.
    let all_presets =
        PolicySet::from_args(&tlscensus::policy::presets::ALL.map(|(n, _)| n.to_string()))
            .expect("the presets");
    let mut judging = Fingerprinter::ja4_only().with_policies(std::sync::Arc::new(all_presets));
    g.bench_function("client_hello_warm_six_policies", |b| {
        b.iter(|| {
            black_box(OpeningReader::default().read(
                &hello,
                &mut scratch,
                16384,
                Some(&mut judging),
            ))
        })
    });
    g.bench_function("server_hello", |b| {
        b.iter(|| black_box(parse_opening(&server, &mut scratch, 16384)))
    });
    // A real TLS 1.2 server flight (OpenSSL, no SNI): the leaf certificate
    // parsed by x509-parser each time, and through a worker's cache.
    let flight: &[u8] = include_bytes!("../tests/data/tls/server-flight-tls12.bin");
    g.bench_function("server_certificate", |b| {
        b.iter(|| black_box(parse_server_certificate(flight, &mut scratch, 16384)))
    });
    let mut cache = CertificateCache::default();
    let mut opening = OpeningReader::default();
    let _ = opening.read(flight, &mut scratch, 16384, None);
    g.bench_function("server_certificate_cached", |b| {
        b.iter(|| {
            let mut after_hello = opening.records;
            black_box(cache.read(&mut after_hello, flight, &mut scratch, 16384))
        })
    });
    g.finish();

    // One event line, as the writer thread writes it: the hello above,
    // answered (the server flight above, its details kept), a target flow
    // with its service; in each layout.
    let mut detailed = Fingerprinter::with_ja3().with_details(DETAIL_BUDGET);
    let Ok(Opening::ClientHello(client)) =
        OpeningReader::default().read(&hello, &mut scratch, 16384, Some(&mut detailed))
    else {
        panic!("the hello reads");
    };
    let Ok(Opening::Answer(answer, server)) =
        OpeningReader::default().read(flight, &mut scratch, 16384, Some(&mut detailed))
    else {
        panic!("the server hello reads");
    };
    assert!(client.detail.is_some() && server.is_some());
    let event = FlowEvent {
        flow: HandshakeSummary {
            ts_ns: 1_798_761_600_004_111_000,
            client_ip: [10, 0, 4, 192].into(),
            client_port: 51_161,
            server_ip: [20, 60, 3, 125].into(),
            server_port: 443,
            client: Some(client),
            answer: Some(answer),
            certificate: None,
            dns: None,
            preamble: None,
            server,
        },
        legacy: false,
        matched: Some(Match::Sni),
        name: Some("acct.blob.core.windows.net".into()),
        relayed: false,
        service: None,
        client_label: Some("curl 7.88 / OpenSSL 3.0".into()),
        src_name: None,
    }
    .with_service(Some(0), "acct".into());
    let mut g = c.benchmark_group("events");
    g.throughput(Throughput::Elements(1));
    let mut line = Vec::with_capacity(4096);
    let no_policies = PolicySet::default();
    for (name, layout) in [
        ("event_line", Layout::Native),
        ("event_line_ecs", Layout::Ecs),
        ("event_line_zeek", Layout::Zeek),
        ("event_line_zeek_json", Layout::ZeekJson),
        ("event_line_ocsf", Layout::Ocsf),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                line.clear();
                layout.write(black_box(&event), &no_policies, &mut line);
                black_box(line.len())
            })
        });
    }
    g.finish();
}

/// The first TCP payload of the capture in the given direction (0 client, 1 server).
fn tcp_payloads(name: &str, which: usize) -> Vec<u8> {
    let frames = load(&[name]);
    let mut seen = 0;
    for f in &frames {
        if let Ok(Decoded::Tcp { seg, .. }) = decode_frame(f.linktype, &f.data)
            && !seg.payload.is_empty()
        {
            let from_server = (40000..41000).contains(&seg.src_port);
            if usize::from(from_server) == which {
                return seg.payload.to_vec();
            }
            seen += 1;
        }
    }
    panic!("no payload in {name} ({seen} seen)");
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
