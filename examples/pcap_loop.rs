//! The throughput baselines: bare read loops that only count packets and bytes.
//!
//! - default: libpcap (the `pcap` crate's `next_packet`, i.e. `pcap_next_ex`).
//!   Nothing a libpcap-based tool does can be faster than this on the same file.
//! - `--blocks`: tlscensus' own classic-pcap reader (`capture::pcapfile`, 1 MiB
//!   reads, frames borrowed from its buffer), which `tlscensus read` uses for
//!   classic pcap files: the limit for tlscensus on such files.
//!
//! ```text
//! cargo run --release --example pcap_loop -- [--blocks] FILE...
//! ```

use tlscensus::capture::pcapfile::PcapFile;

fn main() {
    let mut packets = 0u64;
    let mut bytes = 0u64;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let blocks = args.first().is_some_and(|a| a == "--blocks");
    if blocks {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("usage: pcap_loop [--blocks] FILE...");
        std::process::exit(2);
    }
    for f in &args {
        if blocks {
            let mut file = match PcapFile::open(std::path::Path::new(f)) {
                Ok(Some(file)) => file,
                Ok(None) => {
                    eprintln!("pcap_loop: {f}: not a classic pcap file");
                    std::process::exit(2);
                }
                Err(e) => {
                    eprintln!("pcap_loop: {f}: {e}");
                    std::process::exit(2);
                }
            };
            let _ = file.for_each_frame(|frame| {
                packets += 1;
                bytes += frame.data.len() as u64;
            });
            continue;
        }
        let mut cap = match pcap::Capture::from_file(f) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pcap_loop: {f}: {e}");
                std::process::exit(2);
            }
        };
        while let Ok(p) = cap.next_packet() {
            packets += 1;
            bytes += p.data.len() as u64;
        }
    }
    println!("{packets} packets, {bytes} bytes");
}
